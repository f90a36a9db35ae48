#!/bin/sh
# Gives every target that the manifests of the workspace members "$@" declare an
# empty source file (src/main.rs, src/lib.rs, each [[bench]], [[test]], [[example]]
# and [[bin]]), so that the image's dependency layer builds from the manifests and
# Cargo.lock alone. Prints every file it created, for removal once the layer is built.
set -eu
for member in "$@"; do
  awk -v dir="$member" '
    function flush() {
      if (kind == "bin") print dir "/" (path != "" ? path : "src/bin/" name ".rs")
      else if (kind == "bench") print dir "/" (path != "" ? path : "benches/" name ".rs")
      else if (kind != "") print dir "/" (path != "" ? path : kind "s/" name ".rs")
      kind = ""; name = ""; path = ""
    }
    BEGIN { print dir "/src/main.rs"; print dir "/src/lib.rs" }
    /^\[\[(bench|test|example|bin)\]\]/ { flush(); kind = $0; gsub(/[][ ]/, "", kind); next }
    /^\[/ { flush(); next }
    kind != "" && /^name *=/ { split($0, a, "\""); name = a[2] }
    kind != "" && /^path *=/ { split($0, a, "\""); path = a[2] }
    END { flush() }' "$member/Cargo.toml"
done | while read -r file; do
  mkdir -p "$(dirname "$file")"
  case "$file" in
    */src/lib.rs) : >"$file" ;;
    *) echo 'fn main() {}' >"$file" ;;
  esac
  echo "$file"
done
