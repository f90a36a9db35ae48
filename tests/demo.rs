//! `veer demo` end to end: the built binary runs the embedded DNS server, local
//! backends and the controller, and exits 0 only if it observed every step.

use std::process::Command;

#[test]
fn the_demo_observes_failover_and_staged_recovery_and_exits_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_veer")).arg("demo").output().expect("veer runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for line in [
        "ok   normal weights published",
        "ok   failure detected and shifted",
        "ok   staged warm-up observed stage by stage",
        "ok   steady state with every backend",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    let stages: Vec<&str> = stdout.lines().filter(|l| l.contains("east-2 warm-up")).collect();
    assert_eq!(stages.len(), 3, "one line per stage, 25 → 50 → 100:\n{stdout}");
    assert!(stages[0].contains("25%") && stages[1].contains("50%") && stages[2].contains("100%"), "{stages:?}");
}
