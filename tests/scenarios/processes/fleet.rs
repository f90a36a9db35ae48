//! What every scenario assembles: local HTTP backends that can be killed and
//! restarted (each kill and restart recorded for the checker), the controller
//! config and policy files, and `veer run` replicas with their admin API.
//! Built on the shared harness (`tests/support`); nothing here starts a server
//! of its own kind.

use super::checker::BackendEvent;
use super::resolver::Timeline;
use super::support::replica::{Replica, free_port, gauge, get, wait_until};
use super::support::{HttpServer, Script};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use veer_provider_testbed::DnsServer;

/// Probe interval of every scenario's policy.
pub const INTERVAL: Duration = Duration::from_millis(500);
/// Consecutive failures before an endpoint counts as down.
pub const FALL: u32 = 2;
/// Room for a loaded machine on top of detection and one reconcile round.
const SLACK: Duration = Duration::from_secs(3);

/// How long a dead endpoint may stay in the answers: interval × fall, plus one
/// reconcile period (the interval, jittered by up to 20 %), plus slack.
pub fn detection_bound() -> Duration {
    INTERVAL * FALL + INTERVAL.mul_f64(1.2) + SLACK
}

/// The `healthCheck` of every scenario's policy (HTTP on the backends' port).
pub fn health_check(port: u16, quorum: u32) -> String {
    format!(
        "{{ type: http, port: {port}, path: /healthz, interval: {}ms, timeout: 250ms, rise: 1, fall: {FALL}, \
         quorum: {quorum} }}",
        INTERVAL.as_millis()
    )
}

/// HTTP backends on one port, one loopback address each.
pub struct Backends {
    runtime: tokio::runtime::Runtime,
    port: u16,
    servers: BTreeMap<String, (Ipv4Addr, Option<HttpServer>)>,
    events: Vec<BackendEvent>,
    timeline: Timeline,
}

impl Backends {
    /// Starts one healthy backend per `(id, address)`.
    pub fn start(timeline: Timeline, endpoints: &[(&str, Ipv4Addr)]) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let port = free_port();
        let servers = endpoints.iter().map(|(id, address)| (id.to_string(), (*address, None))).collect();
        let mut backends = Self { runtime, port, servers, events: Vec::new(), timeline };
        let ids: Vec<String> = backends.servers.keys().cloned().collect();
        for id in ids {
            backends.serve(&id);
        }
        backends.events.clear();
        backends
    }

    /// The port every backend listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A runtime for async helpers (etcd).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// The address of `id`.
    pub fn address(&self, id: &str) -> Ipv4Addr {
        self.servers[id].0
    }

    /// Addresses of `ids`.
    pub fn addresses(&self, ids: &[&str]) -> BTreeSet<Ipv4Addr> {
        ids.iter().map(|id| self.address(id)).collect()
    }

    /// Addresses of the backends that are up.
    pub fn up_addresses(&self) -> BTreeSet<Ipv4Addr> {
        self.servers.values().filter(|(_, s)| s.is_some()).map(|(a, _)| *a).collect()
    }

    /// Whether `id` is up.
    pub fn is_up(&self, id: &str) -> bool {
        self.servers[id].1.is_some()
    }

    /// Kills `id`: its port refuses connections from now on.
    pub fn down(&mut self, id: &str) {
        let entry = self.servers.get_mut(id).expect("a known backend");
        let server = entry.1.take().unwrap_or_else(|| panic!("{id} is already down"));
        drop(server);
        // The listener closes when its aborted task is dropped: wait for that.
        let addr = SocketAddr::from((entry.0, self.port));
        let closed = wait_until(Duration::from_secs(5), || std::net::TcpStream::connect(addr).is_err());
        assert!(closed, "{id} still accepts connections on {addr} after it was killed");
        let at = self.timeline.now();
        self.events.push(BackendEvent { at, address: entry.0, up: false });
        println!("{:>8.3}s backend {id} ({}) killed", at.as_secs_f64(), entry.0);
    }

    /// Restarts `id` on its address.
    pub fn up(&mut self, id: &str) {
        assert!(self.servers[id].1.is_none(), "{id} is already up");
        self.serve(id);
        let (address, _) = self.servers[id];
        let at = self.timeline.now();
        self.events.push(BackendEvent { at, address, up: true });
        println!("{:>8.3}s backend {id} ({address}) restarted", at.as_secs_f64());
    }

    fn serve(&mut self, id: &str) {
        let addr = SocketAddr::from((self.servers[id].0, self.port));
        // The previous listener may take a moment to be released.
        let free = wait_until(Duration::from_secs(5), || std::net::TcpListener::bind(addr).is_ok());
        assert!(free, "{addr} stays taken");
        let server = self.runtime.block_on(HttpServer::start_on(addr, Script::ok("ok"), None));
        self.servers.get_mut(id).expect("a known backend").1 = Some(server);
    }

    /// Every kill and restart so far.
    pub fn events(&self) -> Vec<BackendEvent> {
        self.events.clone()
    }
}

/// Where the controller publishes.
pub enum Publish<'a> {
    /// A real BIND over RFC 2136 (the TSIG secret comes from `VEER_TEST_TSIG`).
    Bind(&'a DnsServer),
    /// veer's embedded server on this port (zone `example.test.`).
    Embedded(u16),
}

/// How replicas coordinate.
pub enum Coordination<'a> {
    /// One process, a state file in the run's folder.
    Standalone,
    /// Real etcd at this client URL, with a short lease so that hand-overs are quick.
    Etcd(&'a str),
}

/// The controller config of a scenario (`veer.yaml`); every replica of a run
/// shares it and gets its vantage id and admin port from `V` and `ADMIN`.
pub struct ControllerSpec<'a> {
    /// `clusterId`, the owner in ownership records.
    pub cluster: &'a str,
    /// The provider, named `dns`.
    pub publish: Publish<'a>,
    /// The coordination backend.
    pub coordination: Coordination<'a>,
    /// `coordination.historyKeep`.
    pub history_keep: Option<u32>,
    /// The provider's API budget (calls per second, burst).
    pub budget: Option<(f64, u32)>,
}

/// The admin token of every scenario (from `VEER_TEST_ADMIN_TOKEN`).
pub const TOKEN: &str = "scenario-admin-token-3b9f";

impl ControllerSpec<'_> {
    /// Writes `veer.yaml` into `dir` with the policy file `app.yaml`.
    pub fn write(&self, dir: &Path) {
        let coordination = match self.coordination {
            Coordination::Standalone => "  backend: standalone\n  stateFile: state.json\n".to_string(),
            Coordination::Etcd(url) => format!(
                "  backend: etcd\n  etcd: {{ endpoints: [{url}] }}\n  leaseDuration: 4s\n  renewDeadline: 3s\n  \
                 retryPeriod: 500ms\n"
            ),
        };
        let keep = self.history_keep.map(|k| format!("  historyKeep: {k}\n")).unwrap_or_default();
        let budget = self
            .budget
            .map(|(rate, burst)| format!("    budget: {{ callsPerSecond: {rate}, burst: {burst} }}\n"))
            .unwrap_or_default();
        let provider = match &self.publish {
            Publish::Bind(bind) => {
                let key = bind.key();
                format!(
                    "    type: rfc2136\n    server: {}\n    zones: [example.test.]\n    \
                     tsig: {{ name: {}, algorithm: {}, secretEnv: VEER_TEST_TSIG }}\n",
                    bind.addr(),
                    key.name,
                    key.algorithm
                )
            }
            Publish::Embedded(port) => {
                format!("    type: embedded\n    listen: 127.0.0.1:{port}\n    zones: [example.test.]\n")
            }
        };
        let config = format!(
            "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: {}\nvantage: ${{V}}\npolicies: [app.yaml]\n\
             admin: {{ listen: \"127.0.0.1:${{ADMIN}}\", tokenEnv: VEER_TEST_ADMIN_TOKEN }}\n\
             coordination:\n{coordination}{keep}providers:\n  dns:\n{provider}{budget}",
            self.cluster
        );
        std::fs::write(dir.join("veer.yaml"), config).unwrap();
    }
}

/// The managed name of every scenario.
pub const NAME: &str = "app.example.test.";

/// One endpoint of a policy: id, address, capacity.
pub type Endpoint<'a> = (&'a str, Ipv4Addr, u32);

/// Writes the policy `app.yaml` into `dir`: weighted routing over `pools`, the
/// scenario's health check, and `extra` (warm-up, shift, guards) as YAML lines.
pub fn write_policy(dir: &Path, pools: &[(&str, Vec<Endpoint<'_>>)], health: &str, extra: &str) {
    let mut text = format!(
        "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: app }}\nspec:\n  \
         record: {{ name: {NAME}, type: A, ttl: 1 }}\n  publishTo: [dns]\n  routing: weighted\n  pools:\n"
    );
    for (pool, endpoints) in pools {
        text.push_str(&format!("    - name: {pool}\n      endpoints:\n"));
        for (id, address, capacity) in endpoints {
            text.push_str(&format!("        - {{ id: {id}, address: {address}, capacity: {capacity} }}\n"));
        }
    }
    text.push_str(&format!("  healthCheck: {health}\n{extra}"));
    std::fs::write(dir.join("app.yaml"), text).unwrap();
}

/// One `veer run` replica.
pub struct Node {
    /// Its vantage id.
    pub vantage: String,
    /// Its admin port.
    pub admin: u16,
    /// When it was spawned.
    pub started: Duration,
    replica: Replica,
    dir: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Node {
    /// Spawns `veer run -c veer.yaml` (plus `args`) in `dir` as vantage `vantage`;
    /// `tsig` is BIND's secret, if the run publishes to BIND.
    pub fn start(dir: &Path, vantage: &str, args: &[&str], tsig: Option<&str>, timeline: Timeline) -> Self {
        let admin = free_port();
        let mut env = vec![
            ("V".to_string(), vantage.to_string()),
            ("ADMIN".to_string(), admin.to_string()),
            ("VEER_TEST_ADMIN_TOKEN".to_string(), TOKEN.to_string()),
            // The embedded server logs every query at info: 100 a second from the resolver.
            ("RUST_LOG".to_string(), "info,hickory_server=warn".to_string()),
        ];
        if let Some(secret) = tsig {
            env.push(("VEER_TEST_TSIG".to_string(), secret.to_string()));
        }
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let replica = spawn(dir, &args, &env);
        let started = timeline.now();
        println!("{:>8.3}s {vantage} started (pid {})", started.as_secs_f64(), replica.pid());
        Self { vantage: vantage.into(), admin, started, replica, dir: dir.to_path_buf(), args, env }
    }

    /// kill -9, then the same command again (same admin port, same files).
    pub fn crash_and_restart(&mut self, pause: Duration, timeline: Timeline) -> (Duration, Duration) {
        self.replica.kill();
        let killed = timeline.now();
        std::thread::sleep(pause);
        self.replica = spawn(&self.dir, &self.args, &self.env);
        self.started = timeline.now();
        (killed, self.started)
    }

    /// `/metrics`, or empty when the replica does not answer.
    pub fn metrics(&self) -> String {
        get(self.admin, "/metrics").map(|(_, m)| m).unwrap_or_default()
    }

    /// `/v1/status`, when the replica answers.
    pub fn status(&self) -> Option<Value> {
        let (code, body) = get(self.admin, "/v1/status")?;
        (code == 200).then(|| serde_json::from_str(&body).ok()).flatten()
    }

    /// Whether the replica says it leads.
    pub fn leads(&self) -> bool {
        gauge(&self.metrics(), "veer_leader") == Some(1.0)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.replica.log()
    }

    /// Sends a signal (`STOP`, `CONT`, `KILL`, …).
    pub fn signal(&self, name: &str) {
        self.replica.signal(name);
    }

    /// Waits up to `within` for a log line after the first `skip` lines that
    /// satisfies `matches`; returns its index and text.
    pub fn wait_for_line(
        &self,
        within: Duration,
        skip: usize,
        matches: impl Fn(&str) -> bool,
    ) -> Option<(usize, String)> {
        let mut found = None;
        wait_until(within, || {
            found =
                self.log().lines().enumerate().skip(skip).find(|(_, l)| matches(l)).map(|(i, l)| (i, l.to_string()));
            found.is_some()
        });
        found
    }

    /// Lines logged so far.
    pub fn lines(&self) -> usize {
        self.log().lines().count()
    }
}

fn spawn(dir: &Path, args: &[String], env: &[(String, String)]) -> Replica {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Replica::start(dir, &args, &env)
}

/// The sum of every series of a metric family whose labels contain all of `labels`.
pub fn sum(metrics: &str, family: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Logs of several replicas, for failure messages.
pub fn logs(nodes: &[&Node]) -> String {
    nodes.iter().map(|n| format!("--- {} log ---\n{}", n.vantage, n.log())).collect::<Vec<_>>().join("\n")
}

/// Waits until exactly one of `nodes` leads and returns its index.
pub fn leader(nodes: &[&Node], within: Duration) -> Option<usize> {
    let mut leading = Vec::new();
    wait_until(within, || {
        leading = (0..nodes.len()).filter(|i| nodes[*i].leads()).collect();
        leading.len() == 1
    });
    (leading.len() == 1).then(|| leading[0])
}

/// Writes a chaos file named `file` into `dir` holding `spec` (YAML lines under `spec:`).
pub fn write_chaos(dir: &Path, file: &str, name: &str, spec: &str) {
    let text = format!("apiVersion: veer/v1\nkind: Chaos\nmetadata: {{ name: {name} }}\nspec:\n{spec}");
    std::fs::write(dir.join(file), text).unwrap();
}
