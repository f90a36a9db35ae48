//! `veer run` in steady state, measured on real processes (ARCHITECTURE.md §9, issue 11).
//!
//! - `--measure writes`: one `veer run` publishing ten records to its embedded
//!   server and to BIND (RFC 2136). Once converged — the last plan changes
//!   nothing and no provider write has happened for `--quiet` seconds — it
//!   counts provider calls (`veer_provider_calls_total` on `/metrics`) over
//!   `--window` seconds in which nothing changes. ARCHITECTURE.md §9: zero writes.
//! - `--measure rss`: one `veer run` probing `--endpoints` HTTP endpoints (100
//!   per record) every second, served by this process on 64 loopback ports, and
//!   publishing to its embedded server. Once every endpoint is published it runs
//!   for `--window` seconds, its `/metrics` scraped every 15 s as Prometheus
//!   would, and reports the process's peak resident memory (VmHWM), its probe
//!   rate, its CPU per probe and the size of one `/metrics` answer.
//!
//! Each prints its figures and one `BENCH_JSON` line for `scripts/bench report`.
//!
//!     cargo bench --bench steady -- --measure writes|rss [--window S] [--quiet S] [--endpoints N]

#[path = "support/procfs.rs"]
mod procfs;
#[allow(dead_code)]
#[path = "../tests/support/replica.rs"]
mod replica;

use procfs::{TICKS_PER_SECOND, cpu_ticks, status_kb};
use replica::{Replica, free_port, get, sum_series, wait_until_every};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use veer::demo::Backend;
use veer_provider_testbed::{DnsServer, ServerKind, ZoneSpec};

const ZONE: &str = "steady.test.";
/// How often the `rss` run's metrics are scraped (a common Prometheus `scrape_interval`).
const SCRAPE_EVERY: Duration = Duration::from_secs(15);
const ENDPOINTS_PER_RECORD: usize = 100;
/// How long `veer run` may take to converge, and how often the bench looks: polling faster
/// would load the controller being measured (a plan over 10 000 endpoints is a large answer).
const CONVERGE_WITHIN: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_secs(1);

struct Options {
    measure: String,
    window: Duration,
    quiet: Duration,
    endpoints: usize,
}

fn options() -> Options {
    let mut o = Options {
        measure: String::new(),
        window: Duration::from_secs(180),
        quiet: Duration::from_secs(15),
        endpoints: 10_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        let seconds = |v: String| Duration::from_secs(v.parse().expect("a whole number of seconds"));
        match arg.as_str() {
            "--measure" => o.measure = value(),
            "--window" => o.window = seconds(value()),
            "--quiet" => o.quiet = seconds(value()),
            "--endpoints" => o.endpoints = value().parse().expect("--endpoints N"),
            _ => {} // cargo bench passes --bench
        }
    }
    o
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    match o.measure.as_str() {
        "writes" => runtime.block_on(writes(&o)),
        "rss" => runtime.block_on(rss(&o)),
        other => {
            eprintln!("steady: unknown --measure `{other}`; hint: --measure writes or --measure rss");
            std::process::exit(2);
        }
    }
}

/// `count` HTTP backends answering 200 on free loopback ports.
async fn backends(count: usize) -> Vec<(u16, Backend)> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let port = free_port();
        let backend = Backend::start("steady", SocketAddr::from(([127, 0, 0, 1], port))).await.expect("bind a backend");
        out.push((port, backend));
    }
    out
}

/// One weighted policy of `endpoints` HTTP endpoints (checked on the given loopback ports, in turn).
fn policy(index: usize, endpoints: usize, ports: &[u16], publish_to: &str) -> String {
    let mut yaml = format!(
        "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: r{index} }}\nspec:\n  \
         record: {{ name: r{index}.{ZONE}, type: A, ttl: 30 }}\n  publishTo: [{publish_to}]\n  routing: weighted\n  \
         healthCheck: {{ type: http, port: 80, path: /healthz, interval: 1s, timeout: 500ms }}\n  \
         pools:\n    - name: main\n      endpoints:\n"
    );
    for e in 0..endpoints {
        let port = ports[(index * endpoints + e) % ports.len()];
        yaml += &format!(
            "        - {{ id: e{e}, address: 198.18.{}.{}, check: {{ address: 127.0.0.1, port: {port} }} }}\n",
            index % 250,
            e + 1
        );
    }
    yaml + "---\n"
}

/// Writes `veer.yaml` (standalone coordination) and `policies.yaml` into `dir`.
fn write_config(dir: &Path, admin: u16, providers_yaml: &str, policies: &str) {
    std::fs::write(
        dir.join("veer.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: steady\nvantage: steady\npolicies: [policies.yaml]\n\
             admin: {{ listen: 127.0.0.1:{admin} }}\ncoordination: {{ backend: standalone, stateFile: state.json }}\n\
             providers:\n{providers_yaml}"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("policies.yaml"), policies).unwrap();
}

/// Whether the last plan changes nothing, holds nothing and publishes
/// `answers` endpoints at a weight above zero in each of its `records` records.
fn plan_settled(admin: u16, records: usize, answers: usize) -> bool {
    let Some((200, body)) = get(admin, "/v1/plan") else { return false };
    let Ok(plan) = serde_json::from_str::<serde_json::Value>(&body) else { return false };
    let Some(list) = plan["records"].as_array() else { return false };
    list.len() == records
        && list.iter().all(|r| {
            let empty = |field: &str| r[field].as_array().is_some_and(Vec::is_empty);
            let live =
                r["answers"].as_array().map_or(0, |a| a.iter().filter(|a| a["weight"].as_u64() > Some(0)).count());
            empty("changes") && empty("held") && live == answers
        })
}

fn metrics(admin: u16) -> String {
    get(admin, "/metrics").map(|(_, body)| body).unwrap_or_default()
}

fn provider_calls(metrics: &str, provider: &str, operation: &str) -> f64 {
    sum_series(metrics, "veer_provider_calls_total", &[("provider", provider), ("operation", operation)])
}

/// Stops the benchmark with the replica's log tail: without a converged controller there is no figure.
fn give_up(replica: &Replica, what: &str) -> ! {
    let log = replica.log();
    let tail: Vec<&str> = log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
    eprintln!("steady: {what}; the last lines of veer run's log:\n{}", tail.join("\n"));
    std::process::exit(1);
}

async fn writes(o: &Options) {
    const RECORDS: usize = 10;
    const ENDPOINTS: usize = 3;
    let Some(bind) = DnsServer::start(ServerKind::Bind, &ZoneSpec::new(ZONE)) else {
        eprintln!("steady: BIND (named) not found; hint: apt-get install bind9 (scripts/test does)");
        std::process::exit(1);
    };
    let dir = tempfile::tempdir().unwrap();
    let served = backends(4).await;
    let ports: Vec<u16> = served.iter().map(|(p, _)| *p).collect();
    let key = bind.key();
    std::fs::write(dir.path().join("tsig"), &key.secret_base64).unwrap();
    let providers = format!(
        "  embedded: {{ type: embedded, listen: 127.0.0.1:{}, zones: [{ZONE}] }}\n  \
         bind:\n    type: rfc2136\n    server: {}\n    zones: [{ZONE}]\n    \
         tsig: {{ name: {}, algorithm: {}, secretFile: tsig }}\n",
        free_port(),
        bind.addr(),
        key.name,
        key.algorithm
    );
    let policies: String = (0..RECORDS).map(|i| policy(i, ENDPOINTS, &ports, "embedded, bind")).collect();
    let admin = free_port();
    write_config(dir.path(), admin, &providers, &policies);
    let replica = Replica::start(dir.path(), &[], &[]);
    let started = Instant::now();

    // Converged: the plan is settled and no write happened for `quiet`.
    let (mut last_writes, mut quiet_since) = (f64::NAN, Instant::now());
    let converged = wait_until_every(CONVERGE_WITHIN, POLL, || {
        let text = metrics(admin);
        let writes = provider_calls(&text, "embedded", "write") + provider_calls(&text, "bind", "write");
        if writes != last_writes || !plan_settled(admin, RECORDS, ENDPOINTS) {
            (last_writes, quiet_since) = (writes, Instant::now());
        }
        writes > 0.0 && quiet_since.elapsed() >= o.quiet
    });
    if !converged {
        give_up(&replica, &format!("veer run did not converge within {CONVERGE_WITHIN:?}"));
    }
    let converged_after = started.elapsed();

    let before = metrics(admin);
    let window_started = Instant::now();
    tokio::time::sleep(o.window).await;
    let after = metrics(admin);
    let window = window_started.elapsed().as_secs_f64();
    let settled = plan_settled(admin, RECORDS, ENDPOINTS);
    let per_hour = |v: f64| v * 3600.0 / window;
    let mut providers = serde_json::Map::new();
    for provider in ["embedded", "bind"] {
        let delta =
            |operation| provider_calls(&after, provider, operation) - provider_calls(&before, provider, operation);
        let (writes, reads) = (delta("write"), delta("read"));
        println!(
            "steady/{provider}: {writes} writes and {reads} reads in {window:.0} s: {:.0} writes/h, {:.0} reads/h",
            per_hour(writes),
            per_hour(reads)
        );
        providers.insert(
            provider.into(),
            serde_json::json!({
                "writes": writes, "reads": reads,
                "writes_per_hour": per_hour(writes), "reads_per_hour": per_hour(reads),
            }),
        );
    }
    let figures = serde_json::json!({
        "bench": "steady_writes",
        "records": RECORDS,
        "endpoints_per_record": ENDPOINTS,
        "interval_s": 1,
        "converged_after_s": converged_after.as_secs_f64(),
        "quiet_s": o.quiet.as_secs_f64(),
        "window_s": window,
        "settled_at_end": settled,
        "providers": providers,
    });
    println!("BENCH_JSON {figures}");
    drop(replica);
    drop(served);
}

async fn rss(o: &Options) {
    let records = o.endpoints.div_ceil(ENDPOINTS_PER_RECORD);
    let per_record = o.endpoints / records;
    let dir = tempfile::tempdir().unwrap();
    let served = backends(64).await;
    let ports: Vec<u16> = served.iter().map(|(p, _)| *p).collect();
    let providers = format!("  embedded: {{ type: embedded, listen: 127.0.0.1:{}, zones: [{ZONE}] }}\n", free_port());
    let policies: String = (0..records).map(|i| policy(i, per_record, &ports, "embedded")).collect();
    let admin = free_port();
    write_config(dir.path(), admin, &providers, &policies);
    println!(
        "steady/rss: veer run probing {} endpoints in {records} records every 1 s, {}s window",
        records * per_record,
        o.window.as_secs()
    );
    let replica = Replica::start(dir.path(), &[], &[]);
    let pid = replica.pid().to_string();
    let started = Instant::now();
    if !wait_until_every(CONVERGE_WITHIN, POLL, || plan_settled(admin, records, per_record)) {
        give_up(&replica, &format!("veer run did not publish every endpoint within {CONVERGE_WITHIN:?}"));
    }
    let converged_after = started.elapsed();
    // Before the first /metrics scrape, whose rendering over 10 000 endpoints costs memory of its own.
    let peak_before_scrapes_mb = status_kb(&pid, "VmHWM") as f64 / 1024.0;

    let probes = |text: &str| sum_series(text, "veer_probe_results_total", &[]);
    let probes_before = probes(&metrics(admin));
    let (cpu_before, window_started) = (cpu_ticks(&pid), Instant::now());
    let mut scrapes = 1;
    while window_started.elapsed() + SCRAPE_EVERY <= o.window {
        tokio::time::sleep(SCRAPE_EVERY).await;
        let _ = metrics(admin);
        scrapes += 1;
    }
    tokio::time::sleep(o.window.saturating_sub(window_started.elapsed())).await;
    let text = metrics(admin);
    let (cpu_after, window) = (cpu_ticks(&pid), window_started.elapsed().as_secs_f64());
    let (peak_mb, now_mb) = (status_kb(&pid, "VmHWM") as f64 / 1024.0, status_kb(&pid, "VmRSS") as f64 / 1024.0);
    let probed = probes(&text) - probes_before;
    let cpu_us_per_probe = (cpu_after - cpu_before) as f64 * 1e6 / TICKS_PER_SECOND as f64 / probed.max(1.0);
    let settled = plan_settled(admin, records, per_record);
    let metrics_mb = text.len() as f64 / 1e6;
    println!(
        "steady/rss: peak RSS {peak_mb:.1} MB ({peak_before_scrapes_mb:.1} MB before /metrics was scraped, \
         now {now_mb:.1} MB), {:.0} probes/s, {cpu_us_per_probe:.1} µs CPU per probe \
         (whole process), converged after {:.0} s; one /metrics answer is {metrics_mb:.1} MB",
        probed / window,
        converged_after.as_secs_f64()
    );
    let figures = serde_json::json!({
        "bench": "steady_rss",
        "endpoints": records * per_record,
        "records": records,
        "interval_s": 1,
        "converged_after_s": converged_after.as_secs_f64(),
        "window_s": window,
        "metrics_scrapes": scrapes + 1,
        "metrics_mb": metrics_mb,
        "peak_rss_mb": peak_mb,
        "peak_rss_mb_before_scrapes": peak_before_scrapes_mb,
        "rss_mb_at_end": now_mb,
        "probes_per_s": probed / window,
        "cpu_us_per_probe": cpu_us_per_probe,
        "settled_at_end": settled,
    });
    println!("BENCH_JSON {figures}");
    drop(replica);
    drop(served);
}
