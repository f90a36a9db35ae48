//! Command-line conventions: a usage error has its own exit code (not 2, which
//! `veer plan` uses for "changes pending"), `--version` names the git revision,
//! and `/metrics` says which exposition format it writes.

use std::process::Command;

fn veer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_veer")).args(args).env_remove("VEER_CONFIG").output().expect("veer runs")
}

#[test]
fn an_unknown_flag_is_a_usage_error_with_its_own_exit_code() {
    for args in [&["plan", "--no-such-flag"][..], &["drain"][..], &["no-such-command"][..]] {
        let out = veer(args);
        assert_eq!(out.status.code(), Some(i32::from(veer::cli::USAGE_ERROR)), "veer {args:?}: {out:?}");
        assert_ne!(out.status.code(), Some(2), "2 means changes pending for veer plan");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"), "a hint: {out:?}");
    }
    let help = veer(&["plan", "--help"]);
    assert_eq!(help.status.code(), Some(0), "--help succeeds");
}

#[test]
fn version_prints_the_crate_version_and_the_git_revision() {
    let out = veer(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(&format!("veer {} (revision ", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(!text.contains("revision )"), "a revision is named: {text}");
}

#[test]
fn metrics_are_served_as_openmetrics_with_build_info() {
    let metrics = veer::metrics::Metrics::new();
    let text = metrics.render();
    assert!(text.trim_end().ends_with("# EOF"), "OpenMetrics text ends with # EOF");
    assert!(
        veer::controller::admin::EXPOSITION_CONTENT_TYPE.starts_with("application/openmetrics-text; version=1.0.0")
    );
    let info = text.lines().find(|l| l.starts_with("veer_build_info{")).expect("veer_build_info");
    assert!(info.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))) && info.ends_with(" 1"), "{info}");
}
