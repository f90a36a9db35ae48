//! Failover latency (ARCHITECTURE.md §9): endpoint down → authoritative answer changed,
//! over many trials, against the embedded server and against BIND (RFC 2136),
//! with `interval: 1s` and `fall: 3`. Prints p50/p95/max and the bound
//! `interval × fall + 250 ms`. `hung`: the record is published to the embedded
//! server and to a BIND that is frozen (SIGSTOP) after the first publish; the
//! latency is measured on the embedded server, with the leader's round durations.
//!
//! `cargo bench --bench failover -- [--trials N] [--provider embedded|bind|both|hung]`
//! (or `scripts/bench failover …`). Everything runs on loopback.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use veer::controller::{self, run::Controller};
use veer::demo::{Backend, query_a};
use veer_provider_testbed::{DnsServer, ServerKind, ZoneSpec, free_port};

const RECORD: &str = "app.bench.test.";
const UP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 33);
const VICTIM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 34);
/// The health check's `interval` (ms) and `fall`, which set the bound `interval × fall + 250 ms`.
const INTERVAL_MS: u64 = 1000;
const FALL: u64 = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let trials: usize = value("--trials").and_then(|v| v.parse().ok()).unwrap_or(50);
    let provider = value("--provider").unwrap_or_else(|| "both".into());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for kind in ["embedded", "bind", "hung"] {
        if provider == kind || (provider == "both" && kind != "hung") {
            runtime.block_on(bench(kind, trials));
        }
    }
}

async fn bench(kind: &str, trials: usize) {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let _up = Backend::start("up", SocketAddr::from((UP, http))).await.unwrap();
    let mut victim = Backend::start("victim", SocketAddr::from((VICTIM, http))).await.unwrap();
    let bind = (kind != "embedded").then(|| DnsServer::start(ServerKind::Bind, &ZoneSpec::new("bench.test.")));
    let (provider_yaml, dns) = match &bind {
        Some(Some(server)) if kind == "hung" => {
            let (port, key) = (free_port(), server.key());
            std::fs::write(dir.path().join("tsig"), &key.secret_base64).unwrap();
            let yaml = format!(
                "  p: {{ type: embedded, listen: 127.0.0.1:{port}, zones: [bench.test.] }}
  b:
    type: rfc2136
    \
                 server: {}
    zones: [bench.test.]
    tsig: {{ name: {}, algorithm: {}, secretFile: tsig }}
",
                server.addr(),
                key.name,
                key.algorithm
            );
            (yaml, port_addr(port))
        }
        None => {
            let port = free_port();
            (format!("  p: {{ type: embedded, listen: 127.0.0.1:{port}, zones: [bench.test.] }}\n"), port_addr(port))
        }
        Some(None) => {
            println!("failover/bind: skipped (BIND not installed)");
            let skipped =
                serde_json::json!({ "bench": "failover", "provider": kind, "skipped": "BIND (named) not installed" });
            println!("BENCH_JSON {skipped}");
            return;
        }
        Some(Some(server)) => {
            let key = server.key();
            std::fs::write(dir.path().join("tsig"), &key.secret_base64).unwrap();
            let yaml = format!(
                "  p:\n    type: rfc2136\n    server: {}\n    zones: [bench.test.]\n    \
                 tsig: {{ name: {}, algorithm: {}, secretFile: tsig }}\n",
                server.addr(),
                key.name,
                key.algorithm
            );
            (yaml, server.addr())
        }
    };
    std::fs::write(
        dir.path().join("veer.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: bench\nvantage: bench\npolicies: [app.yaml]\n\
             admin: {{ listen: 127.0.0.1:{} }}\ncoordination: {{ backend: standalone, stateFile: state.json }}\n\
             providers:\n{provider_yaml}",
            free_port()
        ),
    )
    .unwrap();
    let publish = if kind == "hung" { "p, b" } else { "p" };
    // The victim rejoins in one warm-up stage after 1 s, all at once (BIND is set-only, where
    // `maxJoinPercent` would otherwise pace it over 30 s holds): trials follow each other
    // quickly, and the measured path (endpoint down → answer changed) is untouched.
    std::fs::write(
        dir.path().join("app.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: app }}\nspec:\n  \
             record: {{ name: {RECORD}, type: A, ttl: 5 }}\n  publishTo: [{publish}]\n  routing: weighted\n  \
             pools: [{{ name: p, endpoints: [{{ id: up, address: {UP} }}, {{ id: victim, address: {VICTIM} }}] }}]\n  \
             healthCheck: {{ type: http, port: {http}, path: /healthz, interval: {INTERVAL_MS}ms, timeout: 500ms, rise: 2, fall: {FALL} }}\n  \
             shift: {{ maxRemovePercent: 100, window: 1s, maxChangesPerHour: 100000 }}\n  \
             warmup: {{ stages: [100], hold: 1s, maxJoinPercent: 100 }}\n  guards: {{ minHealthyEndpoints: 1, minCapacityPercent: 0 }}\n"
        ),
    )
    .unwrap();
    let setup = controller::load(&dir.path().join("veer.yaml")).unwrap_or_else(|d| panic!("{d:?}"));
    let controller = Controller::start(setup).await.unwrap();
    let mut summaries = controller.summaries();
    let rounds = tokio::spawn(async move {
        let mut durations = Vec::new();
        while summaries.changed().await.is_ok() {
            let summary = summaries.borrow_and_update();
            if let Some(d) = summary.round_duration
                && durations.len() < summary.rounds as usize
            {
                durations.push(d);
            }
        }
        durations
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(controller.run(async {
        let _ = stopped.await;
    }));
    if kind == "hung"
        && let Some(Some(server)) = &bind
    {
        let both: Vec<String> = [UP, VICTIM].iter().map(ToString::to_string).collect();
        let published = (0..600).any(|_| {
            let mut held = server.dig(RECORD, "A");
            held.sort();
            std::thread::sleep(Duration::from_millis(100));
            held == both
        });
        assert!(published, "failover/hung: BIND never got the first publish");
        server.signal("STOP");
        println!("failover/hung: BIND frozen (SIGSTOP); measuring on the embedded server");
    }
    let mut samples = Vec::new();
    for trial in 0..trials {
        if !wait_for(dns, Duration::from_secs(60), |a| a.contains(&VICTIM) && a.contains(&UP)).await {
            println!("failover/{kind}: trial {trial}: the victim did not come back; stopping");
            break;
        }
        victim.stop();
        let killed = Instant::now();
        if wait_for(dns, Duration::from_secs(30), |a| !a.is_empty() && !a.contains(&VICTIM)).await {
            samples.push(killed.elapsed());
        }
        victim.start_again().await.unwrap();
    }
    let _ = stop.send(());
    let _ = task.await;
    if let Some(Some(server)) = &bind {
        server.signal("CONT");
    }
    let mut durations = rounds.await.unwrap_or_default();
    report(kind, trials, &mut samples, &mut durations);
}

fn port_addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Polls the authoritative server every 10 ms until `done` holds for its answers.
async fn wait_for(dns: SocketAddr, within: Duration, done: impl Fn(&[Ipv4Addr]) -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if query_a(dns, RECORD).await.is_some_and(|a| done(&a)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Prints the figures, then the same as one `BENCH_JSON` line for `scripts/bench report`.
fn report(kind: &str, trials: usize, samples: &mut [Duration], rounds: &mut [Duration]) {
    const BOUND: Duration = Duration::from_millis(INTERVAL_MS * FALL + 250);
    if samples.is_empty() {
        println!("failover/{kind}: no sample");
        let none = serde_json::json!({ "bench": "failover", "provider": kind, "trials": trials, "samples": 0 });
        println!("BENCH_JSON {none}");
        return;
    }
    samples.sort();
    rounds.sort();
    let quantile = |all: &[Duration], q: f64| {
        (!all.is_empty()).then(|| all[((all.len() as f64 * q).ceil() as usize).clamp(1, all.len()) - 1].as_secs_f64())
    };
    let at = |q: f64| quantile(samples, q).unwrap_or(f64::NAN);
    let (round_p50, round_p95) = (quantile(rounds, 0.5), quantile(rounds, 0.95));
    if let (Some(p50), Some(p95)) = (round_p50, round_p95) {
        println!("failover/{kind}: {} leader rounds  duration p50 {:.3}s  p95 {:.3}s", rounds.len(), p50, p95);
    }
    let max = samples[samples.len() - 1].as_secs_f64();
    println!(
        "failover/{kind}: {} trials  p50 {:.2}s  p95 {:.2}s  max {max:.2}s  (bound interval×fall + 250ms = {:.2}s)",
        samples.len(),
        at(0.5),
        at(0.95),
        BOUND.as_secs_f64()
    );
    let figures = serde_json::json!({
        "bench": "failover",
        "provider": kind,
        "trials": trials,
        "samples": samples.len(),
        "interval_s": INTERVAL_MS as f64 / 1000.0,
        "fall": FALL,
        "p50_s": at(0.5),
        "p95_s": at(0.95),
        "max_s": max,
        "bound_s": BOUND.as_secs_f64(),
        "rounds": rounds.len(),
        "round_p50_s": round_p50,
        "round_p95_s": round_p95,
    });
    println!("BENCH_JSON {figures}");
}
