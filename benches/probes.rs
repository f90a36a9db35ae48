//! Probe engine cost (ARCHITECTURE.md §9, issue 12): N endpoints on loopback probed every
//! second over HTTP, a new connection per probe, compared with the floor — a
//! bare tokio connect + GET loop at the same rate on the same targets.
//!
//! `cargo bench --bench probes -- [--endpoints 10000] [--seconds 30] [--ports 64] [--blackbox-endpoints 1000]`
//!
//! When `prometheus-blackbox-exporter` (Debian package) is on the PATH, it is
//! measured too, as a peer: driven through its `/probe` API at
//! `--blackbox-endpoints` probes per second (it tops out near 2 000/s on 2
//! cores), its own CPU divided by the probes it ran.
//!
//! The bench runs three processes of itself: an HTTP server on `--ports`
//! loopback ports (many ports, so that client TIME_WAIT sockets do not exhaust
//! one destination's ephemeral ports), then the floor and the engine one after
//! the other, each measuring only its own CPU time (/proc/self/stat) and peak
//! resident memory (VmHWM) over the measured window, after a warm-up.

#[path = "support/procfs.rs"]
mod procfs;

use procfs::{TICKS_PER_SECOND, cpu_ticks, status_kb};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use veer::health::{Vantage, VantageOptions};
use veer::policy::{LoadedPolicy, policy_hash, source};
use veer::time::SystemClock;

const WARMUP: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
struct Options {
    role: String,
    endpoints: usize,
    seconds: u64,
    ports: Vec<u16>,
    port_count: usize,
    blackbox_endpoints: usize,
}

fn options() -> Options {
    let mut o = Options {
        role: "run".into(),
        endpoints: 10_000,
        seconds: 30,
        ports: Vec::new(),
        port_count: 64,
        blackbox_endpoints: 1_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match arg.as_str() {
            "--role" => o.role = value(),
            "--endpoints" => o.endpoints = value().parse().expect("--endpoints N"),
            "--seconds" => o.seconds = value().parse().expect("--seconds S"),
            "--ports" => o.port_count = value().parse().expect("--ports N"),
            "--blackbox-endpoints" => o.blackbox_endpoints = value().parse().expect("--blackbox-endpoints N"),
            "--port-list" => o.ports = value().split(',').map(|p| p.parse().expect("port")).collect(),
            _ => {} // cargo bench passes --bench
        }
    }
    o
}

fn main() {
    let o = options();
    match o.role.as_str() {
        "serve" => runtime().block_on(serve(o.port_count)),
        "floor" => runtime().block_on(measure(&o, floor)),
        "engine" => runtime().block_on(measure(&o, engine)),
        "blackbox" => runtime().block_on(blackbox(&o)),
        _ => orchestrate(&o),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn orchestrate(o: &Options) {
    let exe = std::env::current_exe().expect("own path");
    let mut server = Command::new(&exe)
        .args(["--role", "serve", "--ports", &o.port_count.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start server");
    let mut ports = String::new();
    BufReader::new(server.stdout.take().expect("piped")).read_line(&mut ports).expect("server ports");
    let ports = ports.trim().to_string();
    println!(
        "probes bench: {} endpoints, 1s interval, {} s measured after {} s warm-up, {} server ports",
        o.endpoints,
        o.seconds,
        WARMUP.as_secs(),
        o.port_count
    );
    let mut rows = Vec::new();
    let mut roles = vec![("floor", o.endpoints), ("engine", o.endpoints)];
    let mut blackbox_missing = None;
    if Command::new(BLACKBOX).arg("--version").output().is_ok_and(|out| out.status.success()) {
        roles.push(("blackbox", o.blackbox_endpoints));
    } else {
        println!("({BLACKBOX} not found: peer not measured)");
        blackbox_missing = Some(format!("{BLACKBOX} not found (Debian package prometheus-blackbox-exporter)"));
    }
    for (role, endpoints) in roles {
        let out = Command::new(&exe)
            .args(["--role", role, "--endpoints", &endpoints.to_string(), "--seconds", &o.seconds.to_string()])
            .args(["--port-list", &ports])
            .output()
            .expect("run measurement");
        std::io::stderr().write_all(&out.stderr).ok();
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        rows.push((role, line));
    }
    server.kill().ok();
    server.wait().ok();
    println!("{:<8} {:>10} {:>10} {:>12} {:>12}", "loop", "probes/s", "ok/s", "cpu µs/probe", "peak RSS MB");
    let mut per_probe = std::collections::BTreeMap::new();
    let mut figures = serde_json::json!({
        "bench": "probes",
        "endpoints": o.endpoints,
        "blackbox_endpoints": o.blackbox_endpoints,
        "seconds": o.seconds,
        "interval_s": 1,
        "blackbox_missing": blackbox_missing,
    });
    for (role, line) in &rows {
        let f: Vec<f64> = line.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        let [rate, ok, cpu, rss] = f[..] else {
            println!("{role:<8} failed: {line}");
            continue;
        };
        per_probe.insert(*role, cpu);
        println!("{role:<8} {rate:>10.0} {ok:>10.0} {cpu:>12.1} {rss:>12.1}");
        figures[*role] =
            serde_json::json!({ "probes_per_s": rate, "ok_per_s": ok, "cpu_us_per_probe": cpu, "peak_rss_mb": rss });
    }
    if let (Some(floor), Some(engine)) = (per_probe.get("floor"), per_probe.get("engine")) {
        println!("engine / floor CPU per probe: {:.2}x (target ≤ 1.3x)", engine / floor);
        figures["engine_over_floor"] = (engine / floor).into();
    }
    if let (Some(engine), Some(blackbox)) = (per_probe.get("engine"), per_probe.get("blackbox")) {
        println!("blackbox / engine CPU per probe: {:.1}x (target ≥ 6x)", blackbox / engine);
        figures["blackbox_over_engine"] = (blackbox / engine).into();
    }
    // The same figures on one line for `scripts/bench report`.
    println!("BENCH_JSON {figures}");
}

/// Serves `HTTP/1.1 200 ok` and closes, on `count` ports of 127.0.0.1.
async fn serve(count: usize) {
    let mut ports = Vec::new();
    for _ in 0..count {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        ports.push(listener.local_addr().expect("addr").port());
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { continue };
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let mut seen = 0;
                    loop {
                        match stream.read(&mut buf[seen..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen += n,
                        }
                        if buf[..seen].windows(4).any(|w| w == b"\r\n\r\n") || seen == buf.len() {
                            break;
                        }
                    }
                    let _ =
                        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok").await;
                });
            }
        });
    }
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    println!("{}", list.join(","));
    std::io::stdout().flush().ok();
    std::future::pending::<()>().await;
}

struct Counters {
    probes: Arc<AtomicU64>,
    ok: Arc<AtomicU64>,
}

/// Runs `start` (which begins probing and returns its counters), waits for
/// the warm-up, measures over `seconds`, prints `rate ok_rate cpu_us rss_mb`.
async fn measure<F, Fut>(o: &Options, start: F)
where
    F: FnOnce(Options) -> Fut,
    Fut: std::future::Future<Output = (Counters, Box<dyn std::any::Any>)>,
{
    let (counters, _keep) = start(o.clone()).await;
    tokio::time::sleep(WARMUP).await;
    let (probes0, ok0, cpu0) =
        (counters.probes.load(Ordering::Relaxed), counters.ok.load(Ordering::Relaxed), cpu_ticks("self"));
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let probes = counters.probes.load(Ordering::Relaxed) - probes0;
    let ok = counters.ok.load(Ordering::Relaxed) - ok0;
    let cpu_us = (cpu_ticks("self") - cpu0) as f64 * 1e6 / TICKS_PER_SECOND as f64;
    println!(
        "{:.1} {:.1} {:.1} {:.1}",
        probes as f64 / elapsed,
        ok as f64 / elapsed,
        cpu_us / probes.max(1) as f64,
        status_kb("self", "VmHWM") as f64 / 1024.0
    );
}

/// The floor: per target, a tokio interval at a spread phase; each tick opens
/// a connection, sends a GET, reads the response to the end.
async fn floor(o: Options) -> (Counters, Box<dyn std::any::Any>) {
    let probes = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..o.endpoints {
        let port = o.ports[i % o.ports.len()];
        let (probes, ok) = (probes.clone(), ok.clone());
        let phase = Duration::from_secs(1) * i as u32 / o.endpoints as u32;
        tasks.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + phase, Duration::from_secs(1));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let request = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
            loop {
                ticker.tick().await;
                probes.fetch_add(1, Ordering::Relaxed);
                let attempt = async {
                    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
                    stream.write_all(request.as_bytes()).await.ok()?;
                    let mut response = Vec::with_capacity(128);
                    stream.read_to_end(&mut response).await.ok()?;
                    response.starts_with(b"HTTP/1.1 200").then_some(())
                };
                if let Ok(Some(())) = tokio::time::timeout(Duration::from_millis(500), attempt).await {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    (Counters { probes, ok }, Box::new(AbortAll(tasks)))
}

struct AbortAll(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortAll {
    fn drop(&mut self) {
        self.0.iter().for_each(|t| t.abort());
    }
}

/// The engine: a Vantage probing one policy of N http endpoints.
async fn engine(o: Options) -> (Counters, Box<dyn std::any::Any>) {
    let mut yaml = String::from(
        "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: { name: bench }\nspec:\n  record: { name: bench.example.test., type: A }\n  publishTo: [local]\n  routing: weighted\n  pools:\n    - name: main\n      endpoints:\n",
    );
    for i in 0..o.endpoints {
        let port = o.ports[i % o.ports.len()];
        yaml.push_str(&format!(
            "        - {{ id: e{i}, address: 198.18.{}.{}, check: {{ address: 127.0.0.1, port: {port} }} }}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    yaml.push_str("  healthCheck: { type: http, port: 80, path: /healthz, interval: 1s, timeout: 500ms }\n");
    let docs = source::split_documents(&yaml);
    let path = PathBuf::from("bench.yaml");
    let policy = source::parse_document(&path, &docs[0]).expect("bench policy parses");
    let loaded = LoadedPolicy { path, hash: policy_hash(&policy), policy };
    let vantage = Vantage::start("bench", Arc::new(SystemClock::default()), VantageOptions::default());
    vantage.replace_policies(&[loaded]);
    let vantage = Arc::new(vantage);
    let probes = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    // Mirror the vantage's counters so that `measure` reads them like the floor's.
    let (p, k, v) = (probes.clone(), ok.clone(), vantage.clone());
    let mirror = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        loop {
            ticker.tick().await;
            p.store(v.probes_started(), Ordering::Relaxed);
            k.store(v.probes_passed(), Ordering::Relaxed);
        }
    });
    (Counters { probes, ok }, Box::new((vantage, AbortAll(vec![mirror]))))
}

const BLACKBOX: &str = "prometheus-blackbox-exporter";

/// The peer: starts blackbox_exporter on a free loopback port, asks it for
/// `endpoints` probes per second through `/probe`, and reports its CPU per
/// probe and peak RSS (the driver's own cost is not counted).
async fn blackbox(o: &Options) {
    let dir = std::env::temp_dir().join(format!("veer-bench-blackbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("blackbox.yml");
    std::fs::write(
        &config,
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 500ms\n    http:\n      preferred_ip_protocol: ip4\n      valid_status_codes: [200]\n",
    )
    .expect("write config");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let mut exporter = Command::new(BLACKBOX)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start blackbox_exporter");
    let pid = exporter.id().to_string();
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let probes = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..o.endpoints {
        let target = o.ports[i % o.ports.len()];
        let (probes, ok) = (probes.clone(), ok.clone());
        let phase = Duration::from_secs(1) * i as u32 / o.endpoints as u32;
        tasks.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + phase, Duration::from_secs(1));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let request = format!(
                "GET /probe?module=http_2xx&target=http://127.0.0.1:{target}/healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            );
            loop {
                ticker.tick().await;
                let attempt = async {
                    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
                    stream.write_all(request.as_bytes()).await.ok()?;
                    let mut response = Vec::with_capacity(4096);
                    stream.read_to_end(&mut response).await.ok()?;
                    Some(response.windows(15).any(|w| w == b"probe_success 1"))
                };
                match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                    Ok(Some(true)) => {
                        probes.fetch_add(1, Ordering::Relaxed);
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Some(false)) => {
                        probes.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }));
    }
    tokio::time::sleep(WARMUP).await;
    let (probes0, ok0, cpu0) = (probes.load(Ordering::Relaxed), ok.load(Ordering::Relaxed), cpu_ticks(&pid));
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let n = probes.load(Ordering::Relaxed) - probes0;
    let k = ok.load(Ordering::Relaxed) - ok0;
    let cpu_us = (cpu_ticks(&pid) - cpu0) as f64 * 1e6 / TICKS_PER_SECOND as f64;
    let rss = status_kb(&pid, "VmHWM");
    drop(AbortAll(tasks));
    exporter.kill().ok();
    exporter.wait().ok();
    std::fs::remove_dir_all(&dir).ok();
    println!(
        "{:.1} {:.1} {:.1} {:.1}",
        n as f64 / elapsed,
        k as f64 / elapsed,
        cpu_us / n.max(1) as f64,
        rss as f64 / 1024.0
    );
}
