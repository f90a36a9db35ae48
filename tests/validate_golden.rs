//! Golden tests of `veer validate`: every malformed policy under
//! `tests/policies/invalid/` must produce exactly the lines of its `.expected`
//! file (PATH:LINE:COL: error: MESSAGE) and exit 1.

use std::path::{Path, PathBuf};
use std::process::Command;

fn invalid_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policies/invalid")
}

fn validate(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_veer"))
        .arg("validate")
        .args(["-c", "../veer.yaml"])
        .args(args)
        .current_dir(dir)
        .env_remove("VEER_CONFIG")
        .output()
        .expect("veer runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(invalid_dir())
        .expect("fixtures exist")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_malformed_policy_gets_its_exact_positioned_errors() {
    let cases = cases();
    assert!(cases.len() >= 25, "expected at least 25 malformed policies, found {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let expected_path = invalid_dir().join(case.replace(".yaml", ".expected"));
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| panic!("missing {expected_path:?}"));
        let (code, stdout, stderr) = validate(&invalid_dir(), &[case]);
        if code != 1 || !stdout.is_empty() || stderr != expected {
            failures.push(format!(
                "{case}: exit {code}\n--- expected\n{expected}--- got stderr\n{stderr}--- got stdout\n{stdout}"
            ));
        }
        for line in expected.lines() {
            assert!(
                line.starts_with(&format!("{case}:")) && line.contains(": error: "),
                "{case}: expected line is not PATH:LINE:COL: error: MESSAGE: {line}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_of_several_files_are_reported_in_one_run() {
    let a = "05-duplicate-endpoint-id.yaml";
    let b = "11-timeout-not-below-interval.yaml";
    let (code, _, stderr) = validate(&invalid_dir(), &[a, b]);
    assert_eq!(code, 1);
    for case in [a, b] {
        let expected = std::fs::read_to_string(invalid_dir().join(case.replace(".yaml", ".expected"))).unwrap();
        for line in expected.lines() {
            assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
        }
    }
    assert!(stderr.contains("duplicate policy name `app`"), "both files name their policy `app`:\n{stderr}");
}

#[test]
fn the_examples_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_veer"))
        .args(["validate", "policies/examples"])
        .current_dir(root)
        .env_remove("VEER_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "veer validate policies/examples failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("ok: "), "{stdout}");
    assert!(!stderr.contains("warning"), "every example policy has a controller config beside it:\n{stderr}");
}

#[test]
fn validate_without_paths_uses_the_configured_policies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples");
    let out = Command::new(env!("CARGO_BIN_EXE_veer")).arg("validate").current_dir(&root).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok: 1 policies, 1 records\n");
}

#[test]
fn a_missing_path_is_one_clear_error() {
    let (code, _, stderr) = validate(&invalid_dir(), &["no-such-policy.yaml"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("no-such-policy.yaml: error: cannot read: "), "{stderr}");
}
