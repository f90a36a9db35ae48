//! A Vantage probing a real HTTP server over the network, on real time.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use support::{HttpServer, Script};
use veer::health::{EndpointKey, ProbeVerdict, Vantage, VantageOptions, VantageReport};
use veer::policy::{LoadedPolicy, policy_hash};
use veer::time::SystemClock;

/// Waits (generously) until the published report satisfies `done`.
async fn wait_for(vantage: &Vantage, what: &str, done: impl Fn(&VantageReport) -> bool) -> Arc<VantageReport> {
    let mut reports = vantage.subscribe();
    let wait = reports.wait_for(|r| done(r));
    match tokio::time::timeout(Duration::from_secs(30), wait).await {
        Ok(Ok(report)) => report.clone(),
        _ => panic!("no report where {what} within 30 s; last: {:?}", vantage.report()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vantage_sees_a_real_endpoint_rise_then_fall_with_the_reason() {
    let server = HttpServer::start(Script::ok("ok")).await;
    let check = format!(
        "{{ type: http, port: {}, path: /healthz, interval: 200ms, timeout: 150ms, rise: 2, fall: 2 }}",
        server.addr.port()
    );
    let policy = support::policy("api", &check, &["{ id: e1, address: 192.0.2.10, check: { address: 127.0.0.1 } }"]);
    let loaded = LoadedPolicy { path: PathBuf::from("api.yaml"), hash: policy_hash(&policy), policy };
    let vantage = Vantage::start("v1", Arc::new(SystemClock::default()), VantageOptions::default());
    vantage.replace_policies(&[loaded]);
    let key = EndpointKey::new("api", "e1");
    let verdict = |r: &VantageReport| r.endpoints.get(&key).map(|e| e.verdict);

    let report = wait_for(&vantage, "e1 is up", |r| verdict(r) == Some(ProbeVerdict::Up)).await;
    assert_eq!(report.endpoints[&key].last_failure, None);

    server.set(Script::status(503));
    let report = wait_for(&vantage, "e1 is down", |r| verdict(r) == Some(ProbeVerdict::Down)).await;
    assert_eq!(report.endpoints[&key].last_failure.as_deref(), Some("status 503"));
    assert!(vantage.probes_started() >= 4);
    assert!(vantage.probes_passed() >= 2);
}
