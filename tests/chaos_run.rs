//! A game day with a real `veer run --chaos`: 30 % of the provider calls are
//! throttled (and some fail with a 5xx or lose their response) for the whole run,
//! and for a while this replica's probes of one endpoint fail. The embedded DNS
//! server, queried with `dig`, must still follow: the endpoint leaves while its
//! probes fail and comes back after; the throttled-calls metric moves; the log
//! says loudly that chaos is on.

mod support;

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;
use support::replica::{Replica, dig, free_port, get, require_dig, wait_until};

const CHAOS: &str = "apiVersion: veer/v1
kind: Chaos
metadata: { name: storm-and-blackout }
spec:
  seed: 7
  providers:
    - { provider: local, throttled: 30, unavailable: 5, lostResponse: 5, timeout: 2, timeoutAfter: 300ms }
  probes:
    - { from: 8s, until: 16s, endpoints: [b], failure: refused }
";

/// The sum of every series of a counter family whose labels contain `label`.
fn counter(metrics: &str, family: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_game_day_with_throttled_writes_and_a_probe_blackout_still_converges() {
    require_dig();
    let dir = tempfile::tempdir().unwrap();
    let (dns, admin, port) = (free_port(), free_port(), free_port());
    let _a = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 61), port)).unwrap();
    let _b = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 62), port)).unwrap();
    std::fs::write(
        dir.path().join("veer.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: gameday\nvantage: r1\npolicies: [app.yaml]\n\
             admin: {{ listen: 127.0.0.1:{admin} }}\n\
             coordination: {{ backend: standalone, stateFile: state.json }}\n\
             providers:\n  local: {{ type: embedded, listen: 127.0.0.1:{dns}, zones: [chaos.test.] }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("app.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: app }}\nspec:\n  \
             record: {{ name: app.chaos.test., type: A, ttl: 5 }}\n  publishTo: [local]\n  routing: weighted\n  \
             pools: [{{ name: p, endpoints: [{{ id: a, address: 127.0.0.61 }}, {{ id: b, address: 127.0.0.62 }}] }}]\n  \
             healthCheck: {{ type: tcp, port: {port}, interval: 250ms, timeout: 200ms, rise: 1, fall: 2 }}\n  \
             warmup: {{ stages: [100] }}\n  guards: {{ minHealthyEndpoints: 1 }}\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("chaos.yaml"), CHAOS).unwrap();
    let replica = Replica::start(dir.path(), &["--chaos", "chaos.yaml"], &[]);
    let both = ["127.0.0.61", "127.0.0.62"];
    let context = |what: &str| format!("{what}\n--- veer log ---\n{}", replica.log());

    assert!(wait_until(Duration::from_secs(8), || dig(dns, "app.chaos.test.") == both), "{}", context("first publish"));
    assert!(
        wait_until(Duration::from_secs(20), || dig(dns, "app.chaos.test.") == ["127.0.0.61"]),
        "{}",
        context("b leaves while its probes fail (from 8 s)")
    );
    assert!(
        wait_until(Duration::from_secs(25), || dig(dns, "app.chaos.test.") == both),
        "{}",
        context("b returns once its probes pass again (after 16 s)")
    );

    let (_, metrics) = get(admin, "/metrics").expect("metrics");
    let throttled = counter(&metrics, "veer_provider_throttled_total", "provider=\"local\"");
    let calls = counter(&metrics, "veer_provider_calls_total", "provider=\"local\"");
    let applied = counter(&metrics, "veer_applies_total", "outcome=\"ok\"");
    assert!(throttled >= 1.0, "the throttled-calls metric moves: {throttled} of {calls} calls\n{metrics}");
    assert!(applied >= 3.0, "three changes applied through the storm: {applied}\n{metrics}");
    let log = replica.log();
    assert!(log.contains("CHAOS IS ON") && log.contains("storm-and-blackout"), "loud at start:\n{log}");
    assert!(log.contains("CHAOS: probes fail") && log.contains("CHAOS: provider faults"), "{log}");
    println!("{calls} provider calls, {throttled} throttled, {applied} applies ok");
}

#[test]
fn chaos_files_are_validated_with_positioned_errors_and_a_broken_one_never_starts_a_game_day() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let veer = |args: &[&str], dir: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_veer")).args(args).current_dir(dir).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = veer(&["validate", "policies/examples"], root);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("1 chaos document"), "the example game day is validated with the policies: {stdout}");

    let dir = tempfile::tempdir().unwrap();
    let broken = CHAOS.replace("provider: local", "provider: lokal").replace("endpoints: [b]", "endpoints: [z]");
    std::fs::write(dir.path().join("chaos.yaml"), broken).unwrap();
    let examples = root.join("policies/examples");
    let config = examples.join("veer.yaml");
    let local = examples.join("local.yaml");
    let (code, _, stderr) =
        veer(&["validate", "-c", config.to_str().unwrap(), "chaos.yaml", local.to_str().unwrap()], dir.path());
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("chaos.yaml:7:19: error: unknown provider `lokal` (the controller config has: local)"),
        "{stderr}"
    );
    assert!(stderr.contains("chaos.yaml:9:43: error: unknown endpoint `z`"), "{stderr}");
    let (code, _, stderr) = veer(&["run", "-c", config.to_str().unwrap(), "--chaos", "chaos.yaml"], dir.path());
    assert_eq!(code, Some(1), "a broken chaos file stops veer run before it starts: {stderr}");
    assert!(stderr.contains("unknown provider `lokal`") && !stderr.contains("CHAOS IS ON"), "{stderr}");
}
