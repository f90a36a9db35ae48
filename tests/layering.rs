//! The layering rules of ARCHITECTURE.md §4, checked on the source: the planner
//! does no I/O, provider crates know only providers/core, and the operator
//! commands reach the controller only over HTTP.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The source of `file` without comments (line comments and doc comments), so that
/// prose may name any module.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// Every `forbidden` path used by a file under `dir` (tests modules included: a
/// test of the planner must not need I/O either).
fn uses(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in rust_files(&root().join(dir)) {
        let code = code(&file);
        for path in forbidden {
            if code.contains(path) {
                found.push(format!("{} uses {path}", file.strip_prefix(root()).unwrap().display()));
            }
        }
    }
    found
}

#[test]
fn the_planner_does_no_io() {
    let forbidden = [
        "crate::controller",
        "crate::coord",
        "crate::enactor",
        "crate::cli",
        "crate::chaos",
        "crate::drill",
        "crate::sim",
        "crate::demo",
        "crate::health::probe",
        "crate::health::prober",
        "veer_provider_",
        "tokio::",
        "std::fs",
        "std::net",
        "std::process",
        "SystemTime",
        "Instant::now",
    ];
    let found = uses("src/planner", &forbidden);
    assert!(found.is_empty(), "ARCHITECTURE.md §4: the planner is pure:\n{}", found.join("\n"));
}

#[test]
fn operator_commands_reach_the_controller_only_over_http() {
    let forbidden =
        ["crate::controller", "crate::coord", "crate::enactor", "crate::health", "veer_provider", "crate::demo"];
    let found = uses("src/cli/operator", &forbidden);
    assert!(found.is_empty(), "ARCHITECTURE.md §4: operator commands talk HTTP:\n{}", found.join("\n"));
}

/// The `[dependencies]` (not dev-dependencies) of a manifest, by name.
fn dependencies(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside && let Some((name, _)) = line.split_once('=') {
            out.push(name.trim().to_string());
        }
    }
    out
}

#[test]
fn provider_crates_know_only_providers_core() {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root().join("providers")).unwrap().flatten() {
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
        let crate_name = entry.file_name().to_string_lossy().to_string();
        for dependency in dependencies(&text) {
            let allowed = match dependency.as_str() {
                "veer" => false,
                "veer-provider" => crate_name != "core",
                "veer-provider-rfc2136" => crate_name == "powerdns",
                name if name.starts_with("veer") => false,
                _ => true,
            };
            if !allowed {
                found.push(format!("providers/{crate_name} depends on {dependency}"));
            }
        }
        let code = rust_files(&entry.path().join("src")).iter().map(|f| code(f)).collect::<String>();
        if code.contains("veer::") {
            found.push(format!("providers/{crate_name} uses the veer crate"));
        }
    }
    assert!(found.is_empty(), "ARCHITECTURE.md §4: providers know only providers/core:\n{}", found.join("\n"));
}

#[test]
fn the_rules_can_fail() {
    let manifest = "[dependencies]\nveer = { path = \"../..\" }\nserde = \"1\"\n[dev-dependencies]\nx = \"1\"\n";
    assert_eq!(dependencies(manifest), ["veer", "serde"]);
    let found = uses("src/controller", &["crate::planner"]);
    assert!(!found.is_empty(), "the scanner sees imports that exist");
}
