//! Embeds the git revision the binary was built from (`VEER_REVISION`), for
//! `veer --version` and the `veer_build_info` metric. A `VEER_REVISION` set in the
//! environment wins (the container build passes it, having no `.git`); without
//! either, the revision is `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=VEER_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let revision = std::env::var("VEER_REVISION").ok().filter(|r| !r.is_empty()).or_else(|| {
        let out = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
    });
    println!("cargo:rustc-env=VEER_REVISION={}", revision.unwrap_or_else(|| "unknown".into()));
}
