//! `veer demo`: a self-contained run of the whole product on loopback — the
//! embedded DNS server, three local HTTP backends in two pools, and the
//! controller (standalone) — narrated live: normal weights, one backend killed,
//! detection and shift (with the measured detection-to-DNS time), the backend
//! back, staged warm-up stage by stage, steady. Answers are read with a real
//! DNS query against the embedded server. Each step must be observed within a
//! bound, or the demo fails (exit 1).

mod backend;

pub use backend::Backend;

use crate::controller::{self, run::Controller};
use crate::planner::Plan;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

const RECORD: &str = "app.demo.test.";
const BACKENDS: [(&str, &str, Ipv4Addr); 3] = [
    ("east-1", "east", Ipv4Addr::new(127, 0, 0, 11)),
    ("east-2", "east", Ipv4Addr::new(127, 0, 0, 12)),
    ("west-1", "west", Ipv4Addr::new(127, 0, 0, 21)),
];

/// How a step went.
struct Step {
    name: &'static str,
    passed: bool,
}

/// Runs the demo; `Ok(true)` when every step was observed.
pub async fn run(keep_running: bool) -> anyhow::Result<bool> {
    let started = Instant::now();
    let say = |text: String| println!("[{:>5.1}s] {text}", started.elapsed().as_secs_f64());
    let dir = tempfile::tempdir()?;
    let dns_port = free_port()?;
    let http_port = free_port()?;
    let admin_port = free_port()?;
    let mut backends = Vec::new();
    for (id, _, ip) in BACKENDS {
        backends.push(Backend::start(id, SocketAddr::from((ip, http_port))).await?);
    }
    write_config(dir.path(), dns_port, http_port, admin_port)?;
    let setup = controller::load(&dir.path().join("veer.yaml")).map_err(|d| {
        anyhow::anyhow!("demo config invalid: {}", d.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
    })?;
    let dns = SocketAddr::from((Ipv4Addr::LOCALHOST, dns_port));
    say(format!(
        "embedded DNS on {dns}; backends {} on port {http_port}",
        BACKENDS.map(|b| b.2.to_string()).join(", ")
    ));
    say("policy: weighted, east-1/east-2 capacity 100, west-1 capacity 200; probes every 500ms, fall 2, rise 2".into());
    let controller = Controller::start(setup).await?;
    let _admin = controller.serve_admin().await?;
    let mut summaries = controller.summaries();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(controller.run(async {
        let _ = stopped.await;
    }));
    let mut steps = Vec::new();

    // 1. Normal weights: all three answer at full weight.
    say("waiting for the first probes and the start-up warm-up (every endpoint walks the stages)".into());
    let full = wait_for(&mut summaries, Duration::from_secs(30), warm).await;
    let answers = query(dns).await.unwrap_or_default();
    say(format!("steady: dig {RECORD} A → {}", answers.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")));
    if let Some(plan) = &full {
        print_weights(&say, plan);
    }
    steps.push(Step { name: "normal weights published", passed: full.is_some() && answers.len() == 3 });

    // 2. Kill east-2; measure until the authoritative answer no longer has it.
    let victim = BACKENDS[1].2;
    say(format!("killing east-2 ({victim}): its port now refuses connections"));
    backends[1].stop();
    let killed_at = Instant::now();
    let mut gone = None;
    while killed_at.elapsed() < Duration::from_secs(20) {
        if query(dns).await.is_some_and(|a| !a.is_empty() && !a.contains(&victim)) {
            gone = Some(killed_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match gone {
        Some(t) => say(format!(
            "east-2 removed from DNS {:.2}s after it died (detection bound: interval × fall = 1.0s + a reconcile round)",
            t.as_secs_f64()
        )),
        None => say("east-2 was still answered 20s after it died".into()),
    }
    // DNS can show the removal before the round that wrote it publishes its
    // summary: wait for that plan, so that the warm-up below starts from it.
    let after = wait_for(&mut summaries, Duration::from_secs(10), |p| stage_of(p, "east-2") == 0).await;
    summaries.borrow_and_update();
    if let Some(plan) = &after {
        print_weights(&say, plan);
    }
    steps.push(Step { name: "failure detected and shifted", passed: gone.is_some() });

    // 3. Bring it back: it must walk the warm-up stages 25% → 50% → 100%.
    say("east-2 is back: warm-up walks 25% → 50% → 100%, holding 2s per stage".into());
    backends[1].start_again().await?;
    let mut seen_stages: Vec<u32> = Vec::new();
    let back_at = Instant::now();
    while back_at.elapsed() < Duration::from_secs(40) {
        if summaries.changed().await.is_err() {
            break;
        }
        let plan = summaries.borrow().plan.clone();
        let Some(plan) = plan else { continue };
        let level = stage_of(&plan, "east-2");
        if level > 0 && seen_stages.last() != Some(&level) {
            seen_stages.push(level);
            say(format!("east-2 warm-up {level}% of full weight"));
            print_weights(&say, &plan);
        }
        if level == 100 {
            break;
        }
    }
    let walked =
        seen_stages.windows(2).all(|w| w[0] < w[1]) && seen_stages.last() == Some(&100) && seen_stages.len() >= 3;
    steps.push(Step { name: "staged warm-up observed stage by stage", passed: walked });

    // 4. Steady again: every backend in the answers.
    let answers = query(dns).await.unwrap_or_default();
    say(format!("steady: dig {RECORD} A → {}", answers.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")));
    let writes = summaries.borrow().writes;
    steps.push(Step { name: "steady state with every backend", passed: answers.len() == 3 });

    println!();
    for step in &steps {
        println!("  {} {}", if step.passed { "ok  " } else { "FAIL" }, step.name);
    }
    println!("  {writes} provider writes in {:.1}s", started.elapsed().as_secs_f64());
    let passed = steps.iter().all(|s| s.passed);
    if keep_running {
        let server = format!("http://127.0.0.1:{admin_port}");
        let token = dir.path().join("admin-token");
        println!("\nstill running (Ctrl-C to stop):");
        println!("  dig @127.0.0.1 -p {dns_port} {RECORD} A");
        println!("  status page: {server}/");
        println!("  veer status --server {server}");
        println!("  veer drain east-1 --reason 'trying veer' --server {server} --token-file {}", token.display());
        crate::cli::shutdown_signal().await;
    }
    let _ = stop.send(());
    task.await??;
    drop(backends);
    Ok(passed)
}

/// Endpoint → share of the record in percent, from the plan.
fn levels(plan: &Plan) -> Vec<(String, f64)> {
    plan.records.iter().flat_map(|r| r.answers.iter().map(|a| (a.endpoint.clone(), a.share * 100.0))).collect()
}

/// The warm-up level of one endpoint in percent of its full weight, from the
/// planner's state (the demo's stages are 25, 50, 100).
fn stage_of(plan: &Plan, endpoint: &str) -> u32 {
    let Some(state) = plan.state.records.get("app").and_then(|r| r.endpoints.get(endpoint)) else { return 0 };
    state.percent(&[25.0, 50.0, 100.0]).round() as u32
}

/// Every endpoint at full weight.
fn warm(plan: &Plan) -> bool {
    BACKENDS.iter().all(|(id, _, _)| stage_of(plan, id) == 100)
}

fn print_weights(say: &impl Fn(String), plan: &Plan) {
    let line: Vec<String> = levels(plan).iter().map(|(e, s)| format!("{e} {s:.1}%")).collect();
    say(format!("  weights: {}", line.join(", ")));
}

async fn wait_for(
    summaries: &mut tokio::sync::watch::Receiver<controller::run::RoundSummary>,
    within: Duration,
    done: impl Fn(&Plan) -> bool,
) -> Option<Plan> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(plan) = summaries.borrow().plan.as_ref().filter(|p| done(p)) {
            return Some(plan.clone());
        }
        if tokio::time::timeout_at(deadline, summaries.changed()).await.is_err() {
            return None;
        }
    }
}

async fn query(server: SocketAddr) -> Option<Vec<Ipv4Addr>> {
    query_a(server, RECORD).await
}

/// One real DNS query over UDP for `name`'s A answers, sorted; `None` when no
/// usable answer came within a second. (Also used by `benches/failover.rs`.)
pub async fn query_a(server: SocketAddr, name: &str) -> Option<Vec<Ipv4Addr>> {
    let mut request = Message::query();
    request.add_query(Query::query(Name::from_ascii(name).ok()?, RecordType::A));
    let wire = request.to_vec().ok()?;
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.ok()?;
    socket.send_to(&wire, server).await.ok()?;
    let mut buffer = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buffer)).await.ok()?.ok()?;
    let response = Message::from_vec(&buffer[..len]).ok()?;
    let mut out: Vec<Ipv4Addr> = response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    out.sort();
    Some(out)
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

fn write_config(dir: &std::path::Path, dns_port: u16, http_port: u16, admin_port: u16) -> std::io::Result<()> {
    // The admin token only guards a loopback demo; it is still not guessable by
    // another local user, and lives in the demo's private temporary folder.
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(dir.join("admin-token"), token)?;
    std::fs::write(
        dir.join("veer.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: demo\nvantage: demo\npolicies: [app.yaml]\n\
             admin: {{ listen: 127.0.0.1:{admin_port}, tokenFile: admin-token }}\n\
             coordination: {{ backend: standalone, stateFile: state.json }}\n\
             providers:\n  local: {{ type: embedded, listen: 127.0.0.1:{dns_port}, zones: [demo.test.] }}\n"
        ),
    )?;
    let endpoints: String = BACKENDS
        .iter()
        .map(|(id, pool, ip)| {
            let capacity = if *pool == "west" { 200 } else { 100 };
            format!("        - {{ id: {id}, address: {ip}, capacity: {capacity} }}\n")
        })
        .collect::<Vec<_>>()
        .chunks(2)
        .enumerate()
        .map(|(i, lines)| format!("    - name: {}\n      endpoints:\n{}", ["east", "west"][i], lines.concat()))
        .collect();
    std::fs::write(
        dir.join("app.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: app }}\nspec:\n  \
             record: {{ name: {RECORD}, type: A, ttl: 5 }}\n  publishTo: [local]\n  routing: weighted\n  pools:\n\
             {endpoints}  healthCheck: {{ type: http, port: {http_port}, path: /healthz, interval: 500ms, timeout: 250ms, \
             rise: 2, fall: 2 }}\n  shift: {{ maxRemovePercent: 50, window: 1m }}\n  \
             warmup: {{ stages: [25, 50, 100], hold: 2s }}\n  \
             guards: {{ minHealthyEndpoints: 1, minCapacityPercent: 20 }}\n"
        ),
    )
}
