//! `veer run` as a process: the embedded DNS server answers, the admin API
//! reports health, readiness, metrics and status, and SIGTERM shuts it down
//! cleanly (exit 0) after releasing leadership.

mod support;

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};
use support::replica::{Replica, dig, free_port, gauge, get, http, require_dig, undeclared_labels, wait_until};

#[test]
fn run_serves_dns_and_the_admin_api_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (dns, admin, http) = (free_port(), free_port(), free_port());
    // A backend that is up: the admin port of a second listener would do, but a
    // plain TCP check against a listener we hold is simplest.
    let backend = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 51), http)).unwrap();
    write_standalone_config(dir.path(), "r1", admin, dns, "run.test.", false);
    std::fs::write(
        dir.path().join("app.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: app }}\nspec:\n  \
             record: {{ name: app.run.test., type: A, ttl: 5 }}\n  publishTo: [local]\n  routing: weighted\n  \
             pools: [{{ name: p, endpoints: [{{ id: a, address: 127.0.0.51 }}] }}]\n  \
             healthCheck: {{ type: tcp, port: {http}, interval: 500ms, timeout: 250ms, rise: 1, fall: 2 }}\n  \
             warmup: {{ stages: [100] }}\n\
             ---\n# A drill run on request only: its series are exported from the start.\n\
             apiVersion: veer/v1\nkind: Drill\nmetadata: {{ name: app-a }}\nspec: {{ target: a, policy: app }}\n"
        ),
    )
    .unwrap();
    let mut child = Replica::start(dir.path(), &[], &[]);
    // Every series the dashboard and the alerts may query (the catalogue they are
    // checked against) must show up in /metrics of the running controller.
    let catalogue = veer::metrics::Metrics::new().series_names();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut metrics = String::new();
    let mut missing = catalogue.clone();
    while Instant::now() < deadline {
        if let Some((200, body)) = get(admin, "/metrics") {
            missing = catalogue
                .iter()
                .filter(|name| {
                    !body.lines().any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
                })
                .cloned()
                .collect();
            metrics = body;
            if missing.is_empty() && metrics.contains("veer_applies_total{provider=\"local\",outcome=\"ok\"}") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(missing.is_empty(), "series missing from /metrics after 30 s: {missing:?}\n{metrics}");
    let undeclared = undeclared_labels(&metrics);
    assert!(undeclared.is_empty(), "labels differ from the catalogue (README metrics table): {undeclared:#?}");
    assert!(metrics.contains("veer_applies_total{provider=\"local\",outcome=\"ok\"}"), "{metrics}");
    assert_eq!(gauge(&metrics, "veer_leader"), Some(1.0), "{metrics}");
    assert!(metrics.contains("veer_record_answers{record=\"app.run.test.\",provider=\"local\"} 1"), "{metrics}");
    assert_eq!(get(admin, "/healthz").map(|r| r.0), Some(200));
    assert_eq!(get(admin, "/readyz").map(|r| r.0), Some(200));
    let (status, body) = get(admin, "/v1/status").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"replica\":\"r1\"") && body.contains("app.run.test."), "{body}");
    let (status, plan) = get(admin, "/v1/plan").unwrap();
    assert_eq!(status, 200);
    assert!(plan.contains("\"record\":\"app.run.test.\""), "{plan}");
    let (status, history) = get(admin, "/v1/history?record=app.run.test.").unwrap();
    assert_eq!(status, 200);
    assert!(history.contains("\"generation\":1"), "the first applied plan is in the history: {history}");
    assert_eq!(dig(dns, "app.run.test."), ["127.0.0.51"]);
    let status = child.terminate(Duration::from_secs(20)).expect("veer stops within 20 s of SIGTERM");
    let stderr = child.log();
    assert!(status.success(), "clean shutdown exits 0: {status:?}\n{stderr}");
    assert!(stderr.contains("applied") && stderr.contains("releasing leadership"), "{stderr}");
    if std::env::var_os("RUST_LOG").is_none() {
        assert!(!stderr.contains("hickory_server"), "the embedded server logs no line per query by default\n{stderr}");
    }
    drop(backend);
}

/// A standalone `veer.yaml` named `id` with an embedded server for `zone` on
/// `dns` and the admin API on `admin` (token from `VEER_TEST_ADMIN_TOKEN` when
/// `token`); policies from `app.yaml`.
fn write_standalone_config(dir: &std::path::Path, id: &str, admin: u16, dns: u16, zone: &str, token: bool) {
    let token = if token { ", tokenEnv: VEER_TEST_ADMIN_TOKEN" } else { "" };
    std::fs::write(
        dir.join("veer.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: {id}\nvantage: {id}\npolicies: [app.yaml]\n\
             admin: {{ listen: 127.0.0.1:{admin}{token} }}\n\
             coordination: {{ backend: standalone, stateFile: state.json }}\n\
             providers:\n  local: {{ type: embedded, listen: 127.0.0.1:{dns}, zones: [{zone}] }}\n"
        ),
    )
    .unwrap();
}

fn policy(address: &str, port: u16, timeout: &str) -> String {
    format!(
        "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: app }}\nspec:\n  \
         record: {{ name: app.reload.test., type: A, ttl: 5 }}\n  publishTo: [local]\n  routing: weighted\n  \
         pools: [{{ name: p, endpoints: [{{ id: a, address: {address} }}] }}]\n  \
         healthCheck: {{ type: tcp, port: {port}, interval: 500ms, timeout: {timeout}, rise: 1, fall: 2 }}\n  \
         warmup: {{ stages: [100] }}\n"
    )
}

#[test]
fn an_invalid_policy_reload_is_rejected_with_positions_and_a_valid_one_takes_effect() {
    require_dig();
    let dir = tempfile::tempdir().unwrap();
    let (dns, admin, tcp) = (free_port(), free_port(), free_port());
    let _first = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 71), tcp)).unwrap();
    let _second = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 72), tcp)).unwrap();
    write_standalone_config(dir.path(), "r2", admin, dns, "reload.test.", false);
    std::fs::write(dir.path().join("app.yaml"), policy("127.0.0.71", tcp, "250ms")).unwrap();
    let mut child = Replica::start(dir.path(), &[], &[]);
    assert!(wait_until(Duration::from_secs(30), || dig(dns, "app.reload.test.") == ["127.0.0.71"]), "first answers");

    // An invalid edit (timeout not below interval): rejected, reported, last good kept.
    std::fs::write(dir.path().join("app.yaml"), policy("127.0.0.72", tcp, "2s")).unwrap();
    let rejected = wait_until(Duration::from_secs(20), || {
        get(admin, "/metrics").is_some_and(|(_, m)| gauge(&m, "veer_policy_reload_ok") == Some(0.0))
    });
    assert!(rejected, "the invalid reload is reported in /metrics");
    let (_, status) = get(admin, "/v1/status").unwrap();
    assert!(status.contains("app.yaml:9:") && status.contains("must be shorter than interval"), "{status}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(dig(dns, "app.reload.test."), ["127.0.0.71"], "the last good policy stays in force");

    // A valid edit takes effect.
    std::fs::write(dir.path().join("app.yaml"), policy("127.0.0.72", tcp, "250ms")).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || dig(dns, "app.reload.test.") == ["127.0.0.72"]),
        "the valid reload is applied"
    );
    assert!(get(admin, "/metrics").is_some_and(|(_, m)| gauge(&m, "veer_policy_reload_ok") == Some(1.0)));

    assert!(child.terminate(Duration::from_secs(20)).is_some(), "stops on SIGTERM");
    let stderr = child.log();
    assert!(stderr.contains("policy reload rejected") && stderr.contains("policies reloaded"), "{stderr}");
}

fn send(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    http(port, method, path, token, body).unwrap_or((0, String::new()))
}

#[test]
fn overrides_need_the_token_are_previewed_refused_by_guards_and_applied_through_the_store() {
    require_dig();
    const TOKEN: &str = "veer-admin-TOKEN-never-logged";
    let dir = tempfile::tempdir().unwrap();
    let (dns, admin, tcp) = (free_port(), free_port(), free_port());
    let _a = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 81), tcp)).unwrap();
    let _b = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 82), tcp)).unwrap();
    write_standalone_config(dir.path(), "r3", admin, dns, "ops.test.", true);
    std::fs::write(
        dir.path().join("app.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: app }}\nspec:\n  \
             record: {{ name: app.ops.test., type: A, ttl: 5 }}\n  publishTo: [local]\n  routing: weighted\n  \
             pools: [{{ name: p, endpoints: [{{ id: a, address: 127.0.0.81 }}, {{ id: b, address: 127.0.0.82 }}] }}]\n  \
             healthCheck: {{ type: tcp, port: {tcp}, interval: 500ms, timeout: 250ms, rise: 1, fall: 2 }}\n  \
             warmup: {{ stages: [100] }}\n  guards: {{ minHealthyEndpoints: 1, minCapacityPercent: 40 }}\n"
        ),
    )
    .unwrap();
    let mut child = Replica::start(dir.path(), &[], &[("VEER_TEST_ADMIN_TOKEN", TOKEN)]);
    let both = ["127.0.0.81".to_string(), "127.0.0.82".to_string()];
    assert!(wait_until(Duration::from_secs(30), || dig(dns, "app.ops.test.") == both), "first answers");
    // Previews plan from the last round: wait until it saw both endpoints healthy.
    let healthy = |m: &str| {
        ["a", "b"]
            .iter()
            .all(|e| m.contains(&format!("veer_endpoint_up{{record=\"app.ops.test.\",endpoint=\"{e}\"}} 1")))
    };
    assert!(wait_until(Duration::from_secs(20), || get(admin, "/metrics").is_some_and(|(_, m)| healthy(&m))));
    std::thread::sleep(Duration::from_secs(1));

    let drain_b =
        r#"{"action":{"kind":"drain","target":{"kind":"endpoint","name":"b"}},"reason":"test","author":"ci"}"#;
    assert_eq!(send(admin, "POST", "/v1/overrides", None, drain_b).0, 401, "no token");
    assert_eq!(send(admin, "POST", "/v1/overrides", Some("wrong"), drain_b).0, 401, "wrong token");

    let (status, preview) = send(admin, "POST", "/v1/overrides?dryRun=true", Some(TOKEN), drain_b);
    assert_eq!(status, 200, "{preview}");
    assert!(preview.contains("\"refused\":false") && preview.contains("\"impact\":{"), "{preview}");
    assert_eq!(dig(dns, "app.ops.test."), both, "a dry run changes nothing");

    let drain_all =
        r#"{"action":{"kind":"drain","target":{"kind":"pool","name":"p"}},"reason":"fat finger","author":"ci"}"#;
    let (status, refused) = send(admin, "POST", "/v1/overrides", Some(TOKEN), drain_all);
    assert_eq!(status, 409, "draining the whole pool breaks the guards: {refused}");

    let (status, created) = send(admin, "POST", "/v1/overrides", Some(TOKEN), drain_b);
    assert_eq!(status, 201, "{created}");
    let id = created.split("\"id\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
    assert!(wait_until(Duration::from_secs(20), || dig(dns, "app.ops.test.") == ["127.0.0.81"]), "b drained");
    assert!(get(admin, "/v1/overrides").is_some_and(|(_, body)| body.contains(&id)));

    assert_eq!(send(admin, "DELETE", &format!("/v1/overrides/{id}"), Some(TOKEN), "").0, 204);
    assert_eq!(send(admin, "DELETE", &format!("/v1/overrides/{id}"), Some(TOKEN), "").0, 404);
    assert!(wait_until(Duration::from_secs(20), || dig(dns, "app.ops.test.") == both), "b back after the undrain");

    assert!(child.terminate(Duration::from_secs(20)).is_some(), "stops on SIGTERM");
    let stderr = child.log();
    assert!(stderr.contains("override created"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "the admin token never appears in the logs");
    let (_, status) = (0, std::fs::read_to_string(dir.path().join("state.json")).unwrap_or_default());
    assert!(!status.contains(TOKEN), "nor in the state file");
}

#[path = "coord_support/etcd.rs"]
#[allow(dead_code)]
mod etcd;

#[test]
fn two_replicas_on_etcd_elect_one_writer_and_the_other_takes_over_after_kill_9() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let Some(etcd) = runtime.block_on(etcd::Etcd::start(1)) else { return };
    let dir = tempfile::tempdir().unwrap();
    let tcp = free_port();
    let _backend = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 95), tcp)).unwrap();
    std::fs::write(
        dir.path().join("veer.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: pair\nvantage: ${{V}}\npolicies: [app.yaml]\n\
             admin: {{ listen: \"127.0.0.1:${{ADMIN}}\" }}\n\
             coordination:\n  backend: etcd\n  etcd: {{ endpoints: [{}] }}\n  \
             leaseDuration: 3s\n  renewDeadline: 2s\n  retryPeriod: 500ms\n\
             providers:\n  local: {{ type: embedded, listen: \"127.0.0.1:${{DNS}}\", zones: [pair.test.] }}\n",
            etcd.endpoints()[0]
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("app.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: app }}\nspec:\n  \
             record: {{ name: app.pair.test., type: A, ttl: 5 }}\n  publishTo: [local]\n  routing: weighted\n  \
             pools: [{{ name: p, endpoints: [{{ id: a, address: 127.0.0.95 }}] }}]\n  \
             healthCheck: {{ type: tcp, port: {tcp}, interval: 500ms, timeout: 250ms, rise: 1, fall: 2 }}\n  \
             warmup: {{ stages: [100] }}\n"
        ),
    )
    .unwrap();
    let replicas: Vec<(u16, u16)> = (0..2).map(|_| (free_port(), free_port())).collect();
    let mut children: Vec<Replica> = replicas
        .iter()
        .enumerate()
        .map(|(i, (admin, dns))| {
            let (v, admin, dns) = (format!("r{i}"), admin.to_string(), dns.to_string());
            Replica::start(dir.path(), &[], &[("V", &v), ("ADMIN", &admin), ("DNS", &dns)])
        })
        .collect();
    let leader_of = |replicas: &[(u16, u16)]| -> Vec<usize> {
        (0..replicas.len())
            .filter(|i| get(replicas[*i].0, "/metrics").is_some_and(|(_, m)| gauge(&m, "veer_leader") == Some(1.0)))
            .collect()
    };
    let mut leaders = Vec::new();
    assert!(wait_until(Duration::from_secs(30), || {
        leaders = leader_of(&replicas);
        leaders.len() == 1
    }));
    let first = leaders[0];
    assert!(
        wait_until(Duration::from_secs(20), || dig(replicas[first].1, "app.pair.test.") == ["127.0.0.95"]),
        "the leader writes"
    );
    assert!(dig(replicas[1 - first].1, "app.pair.test.").is_empty(), "the follower writes nothing");
    // The follower's status names the leader (so clients can follow it) and reports its own vantage.
    let follower_status = || get(replicas[1 - first].0, "/v1/status").map(|(_, body)| body).unwrap_or_default();
    let named = wait_until(Duration::from_secs(10), || {
        let body = follower_status();
        body.contains("\"role\":\"follower\"") && body.contains(&format!("\"leader\":{{\"identity\":\"r{first}\""))
    });
    assert!(named, "{}", follower_status());
    assert!(follower_status().contains("\"desiredWeight\":null"), "a follower does not plan");
    children[first].kill();
    let other = 1 - first;
    assert!(
        wait_until(Duration::from_secs(30), || dig(replicas[other].1, "app.pair.test.") == ["127.0.0.95"]),
        "the other replica takes over and writes"
    );
    let epochs: Vec<f64> =
        get(replicas[other].0, "/metrics").map(|(_, m)| gauge(&m, "veer_leader_epoch")).into_iter().flatten().collect();
    assert!(!epochs.is_empty(), "the successor reports its epoch");
    drop(children);
}

/// A freshly started leader waits until its probes gave every endpoint a verdict
/// before it plans: the first answer it creates holds the live endpoint only,
/// not every endpoint while nothing is known (what never-empty alone would publish).
#[test]
fn the_first_publish_waits_for_a_verdict_on_every_endpoint() {
    require_dig();
    let dir = tempfile::tempdir().unwrap();
    let (dns, admin, port) = (free_port(), free_port(), free_port());
    write_standalone_config(dir.path(), "r1", admin, dns, "first.test.", false);
    // Nothing listens for `b`: Down after two refused probes, within about 1 s.
    std::fs::write(
        dir.path().join("app.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: app }}\nspec:\n  \
             record: {{ name: app.first.test., type: A, ttl: 5 }}\n  publishTo: [local]\n  routing: weighted\n  \
             pools: [{{ name: p, endpoints: [{{ id: a, address: 127.0.0.61 }}, {{ id: b, address: 127.0.0.62 }}] }}]\n  \
             healthCheck: {{ type: tcp, port: {port}, interval: 500ms, timeout: 200ms, rise: 1, fall: 2 }}\n  \
             warmup: {{ stages: [100] }}\n  guards: {{ minHealthyEndpoints: 1, minCapacityPercent: 0 }}\n"
        ),
    )
    .unwrap();
    let _a = support::replica::TcpBackend::start(Ipv4Addr::new(127, 0, 0, 61), port);
    let mut child = Replica::start(dir.path(), &[], &[]);
    let mut first = Vec::new();
    let published = wait_until(Duration::from_secs(20), || {
        first = dig(dns, "app.first.test.");
        !first.is_empty()
    });
    let log = child.log();
    assert!(published, "nothing published within 20 s\n{log}");
    assert_eq!(first, ["127.0.0.61"], "the first answer holds the live endpoint only\n{log}");
    child.kill();
}
