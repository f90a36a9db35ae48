//! Two `veer run` replicas on a real etcd, writing a real BIND zone over RFC 2136,
//! probing real HTTP backends: the leader pulls the follower's vantage report over
//! the authenticated admin API and combines it with its own (issue 6).
//!
//! The policy's quorum is 100 %: an endpoint counts as down only when every fresh
//! vantage sees it down, so the plan's reason "(2/2 vantages)" proves the
//! follower's view was counted. A stopped follower goes stale and is left out;
//! nothing fails over because of it.

mod support;

use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::replica::{Replica, free_port, gauge, get, http, require_dig, wait_until};
use support::{HttpServer, Script};
use veer_provider_testbed::{DnsServer, ServerKind, ZoneSpec};

#[path = "coord_support/etcd.rs"]
#[allow(dead_code)]
mod etcd;

const TOKEN: &str = "vantage-exchange-token-7f3a9c";
const NAME: &str = "app.example.test.";
/// Probe interval and fall of the policy: detection takes about interval × fall.
const INTERVAL: Duration = Duration::from_secs(1);
const FALL: u32 = 2;

fn write_config(dir: &Path, bind: &DnsServer, etcd: &str, port: u16) {
    let key = bind.key();
    let config = format!(
        "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: vantages\nvantage: ${{V}}\npolicies: [app.yaml]\n\
         admin: {{ listen: \"127.0.0.1:${{ADMIN}}\", tokenEnv: VEER_TEST_ADMIN_TOKEN }}\n\
         coordination:\n  backend: etcd\n  etcd: {{ endpoints: [{etcd}] }}\n  \
         leaseDuration: 6s\n  renewDeadline: 4s\n  retryPeriod: 1s\n\
         providers:\n  bind:\n    type: rfc2136\n    server: {}\n    zones: [example.test.]\n    \
         tsig: {{ name: {}, algorithm: {}, secretEnv: VEER_TEST_TSIG }}\n",
        bind.addr(),
        key.name,
        key.algorithm
    );
    std::fs::write(dir.join("veer.yaml"), config).unwrap();
    let policy = format!(
        "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: app }}\nspec:\n  \
         record: {{ name: {NAME}, type: A, ttl: 5 }}\n  publishTo: [bind]\n  routing: weighted\n  \
         pools:\n    - name: p\n      endpoints:\n        - {{ id: a, address: 127.0.0.121 }}\n        \
         - {{ id: b, address: 127.0.0.122 }}\n        - {{ id: c, address: 127.0.0.123 }}\n  \
         healthCheck: {{ type: http, port: {port}, path: /healthz, interval: {}s, timeout: 500ms, rise: 1, \
         fall: {FALL}, quorum: 100 }}\n  \
         warmup: {{ stages: [100], maxJoinPercent: 100 }}\n  shift: {{ maxRemovePercent: 50 }}\n  \
         guards: {{ minHealthyEndpoints: 1, minCapacityPercent: 0 }}\n",
        INTERVAL.as_secs()
    );
    std::fs::write(dir.join("app.yaml"), policy).unwrap();
}

fn status(admin: u16) -> Option<Value> {
    let (code, body) = get(admin, "/v1/status")?;
    (code == 200).then(|| serde_json::from_str(&body).ok()).flatten()
}

/// `(id, fresh)` of every vantage the replica lists in `/v1/status`.
fn vantages(admin: u16) -> Vec<(String, bool)> {
    let Some(status) = status(admin) else { return Vec::new() };
    status["vantages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| (v["id"].as_str().unwrap_or_default().to_string(), v["fresh"].as_bool().unwrap_or(false)))
        .collect()
}

fn metrics(admin: u16) -> String {
    get(admin, "/metrics").map(|(_, m)| m).unwrap_or_default()
}

/// The value of one labelled series, e.g. `veer_x{a="b"}`.
fn series(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn two_replicas_exchange_vantage_reports_and_a_stale_follower_fails_nothing_over() {
    require_dig();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let Some(etcd) = runtime.block_on(etcd::Etcd::start(1)) else { return };
    let Some(bind) = DnsServer::start(ServerKind::Bind, &ZoneSpec::new("example.test.")) else { return };
    let port = free_port();
    let backend = |ip: &str| {
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        runtime.block_on(HttpServer::start_on(addr, Script::ok("ok"), None))
    };
    let (_a, b, _c) = (backend("127.0.0.121"), backend("127.0.0.122"), backend("127.0.0.123"));
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &bind, &etcd.endpoints()[0], port);
    let secret = bind.key().secret_base64.clone();
    let admins = [free_port(), free_port()];
    let mut replicas: Vec<Replica> = admins
        .iter()
        .enumerate()
        .map(|(i, admin)| {
            let (v, admin) = (format!("r{i}"), admin.to_string());
            let env =
                [("V", v.as_str()), ("ADMIN", &admin), ("VEER_TEST_TSIG", &secret), ("VEER_TEST_ADMIN_TOKEN", TOKEN)];
            Replica::start(dir.path(), &[], &env)
        })
        .collect();
    let logs = |replicas: &[Replica]| replicas.iter().map(|r| r.log()).collect::<Vec<_>>().join("\n---\n");

    // One leader writes; the follower registers and its report counts.
    let mut leaders = Vec::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            leaders = (0..2).filter(|i| gauge(&metrics(admins[*i]), "veer_leader") == Some(1.0)).collect();
            leaders.len() == 1
        }),
        "one leader within 30 s\n{}",
        logs(&replicas)
    );
    let (leader, follower) = (leaders[0], 1 - leaders[0]);
    let (leader_admin, follower_admin) = (admins[leader], admins[follower]);
    let follower_id = format!("r{follower}");
    let all = ["127.0.0.121", "127.0.0.122", "127.0.0.123"];
    assert!(
        wait_until(Duration::from_secs(30), || bind.dig(NAME, "A") == all),
        "the leader publishes every endpoint to BIND\n{}",
        logs(&replicas)
    );
    let both_fresh = |admin: u16| {
        let mut v = vantages(admin);
        v.sort();
        v == [("r0".to_string(), true), ("r1".to_string(), true)]
    };
    assert!(
        wait_until(Duration::from_secs(20), || both_fresh(leader_admin)),
        "the leader lists both vantages fresh: {:?}\n{}",
        status(leader_admin),
        logs(&replicas)
    );
    let m = metrics(leader_admin);
    assert_eq!(gauge(&m, "veer_vantages_fresh"), Some(2.0), "{m}");
    let fetched = format!("veer_vantage_fetches_total{{vantage=\"{follower_id}\",outcome=\"ok\"}}");
    assert!(series(&m, &fetched).is_some_and(|n| n >= 1.0), "{m}");
    let follower_status = status(follower_admin).unwrap();
    assert_eq!(follower_status["vantages"].as_array().map(Vec::len), Some(1), "a follower lists only itself");

    // The follower's report needs the token.
    assert_eq!(get(follower_admin, "/v1/vantage").map(|r| r.0), Some(401), "no token");
    assert_eq!(http(follower_admin, "GET", "/v1/vantage", Some("wrong"), "").map(|r| r.0), Some(401), "wrong token");
    let (code, body) = http(follower_admin, "GET", "/v1/vantage", Some(TOKEN), "").unwrap();
    assert_eq!(code, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["vantage"], follower_id.as_str(), "{body}");
    assert_eq!(report["endpoints"].as_array().map(Vec::len), Some(3), "{body}");

    // A backend dies: with quorum 100 % both vantages must see it down, and BIND drops it.
    drop(b);
    let killed = Instant::now();
    let bound = INTERVAL * FALL + Duration::from_secs(10);
    assert!(
        wait_until(bound, || !bind.dig(NAME, "A").contains(&"127.0.0.122".to_string())),
        "BIND still answers with the dead backend {bound:?} after it died\n{}",
        logs(&replicas)
    );
    eprintln!("dead backend gone from BIND's answer after {:?} (bound {bound:?})", killed.elapsed());
    assert_eq!(bind.dig(NAME, "A"), ["127.0.0.121", "127.0.0.123"]);
    let (_, history) = get(leader_admin, &format!("/v1/history?record={NAME}")).unwrap();
    assert!(history.contains("b unhealthy (2/2 vantages)"), "the reason counts both vantages: {history}");
    // The leader's status shows the endpoint down from each vantage, per vantage.
    let leader_status = status(leader_admin).unwrap_or_default();
    let b_status =
        leader_status["records"][0]["endpoints"].as_array().unwrap().iter().find(|e| e["id"] == "b").cloned();
    let per_vantage = b_status.as_ref().map(|e| e["perVantage"].clone()).unwrap_or_default();
    assert!(
        per_vantage.as_object().is_some_and(|m| m.len() == 2 && m.values().all(|v| v == "down")),
        "both vantages' verdicts on b in the leader's status: {b_status:?}"
    );

    // The follower stops: its view goes stale, the leader keeps serving the same answers.
    replicas[follower].signal("STOP");
    let stale = |admin: u16| vantages(admin).iter().any(|(id, fresh)| *id == follower_id && !fresh);
    assert!(wait_until(Duration::from_secs(20), || stale(leader_admin)), "{:?}", status(leader_admin));
    let m = metrics(leader_admin);
    assert_eq!(gauge(&m, "veer_vantages_fresh"), Some(1.0), "{m}");
    let still = Instant::now();
    while still.elapsed() < INTERVAL * 4 {
        assert_eq!(
            bind.dig(NAME, "A"),
            ["127.0.0.121", "127.0.0.123"],
            "nothing fails over while the follower is stale"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(gauge(&metrics(leader_admin), "veer_leader"), Some(1.0), "the leader keeps leading");
    let timeouts = format!("veer_vantage_fetches_total{{vantage=\"{follower_id}\",outcome=\"timeout\"}}");
    assert!(
        series(&metrics(leader_admin), &timeouts).is_some_and(|n| n >= 1.0),
        "the pulls of a stopped replica time out"
    );

    replicas[follower].signal("CONT");
    assert!(
        wait_until(Duration::from_secs(20), || both_fresh(leader_admin)),
        "fresh again after SIGCONT: {:?}",
        status(leader_admin)
    );
    assert_eq!(bind.dig(NAME, "A"), ["127.0.0.121", "127.0.0.123"]);

    for r in &mut replicas {
        assert!(r.terminate(Duration::from_secs(20)).is_some_and(|s| s.success()), "clean shutdown\n{}", r.log());
    }
    let all_logs = logs(&replicas);
    assert!(!all_logs.contains(TOKEN), "the admin token never appears in the logs");
    assert!(!all_logs.contains(&secret), "nor the TSIG secret");
    drop(etcd);
}
