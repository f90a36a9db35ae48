//! `veer run` as a child process, and the small clients tests talk to it with:
//! the admin API over plain HTTP/1.1, `dig` against a DNS port, metric lookups.
//! Every multi-process test builds on these instead of its own copies.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (released before returning; fine for tests).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// A TCP backend on `ip:port` that accepts and closes every connection, so that
/// probes of a long test never fill the accept backlog (a bare listener that
/// never accepts starts timing out after ~128 connections). Closed on drop.
pub struct TcpBackend {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TcpBackend {
    /// Listens on `ip:port`.
    pub fn start(ip: Ipv4Addr, port: u16) -> Self {
        let listener = TcpListener::bind((ip, port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => drop(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self { stop, thread: Some(thread) }
    }
}

impl Drop for TcpBackend {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Polls `done` every 50 ms until it holds or `within` passes.
pub fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port`: the status and the body (de-chunked).
/// `None` when nothing listens or the response is cut.
pub fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\n{auth}content-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding: chunked"));
    Some((status, if chunked { dechunk(body)? } else { body.to_string() }))
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

/// `GET path` on the admin API.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    http(port, "GET", path, None, "")
}

/// The value of an unlabelled series (`name 1` or `name{} 1`) in Prometheus text.
pub fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let rest = rest.strip_prefix("{}").unwrap_or(rest);
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// Samples in Prometheus text whose label names differ from the catalogue's for their
/// family (`le` of histogram buckets aside), or whose family is not catalogued: the
/// README's metrics table lists these labels.
pub fn undeclared_labels(metrics: &str) -> Vec<String> {
    let catalogue = veer::metrics::Metrics::new();
    let mut wrong = Vec::new();
    for line in metrics.lines().filter(|l| l.starts_with("veer_")) {
        let (name, rest) = line.split_at(line.find(['{', ' ']).unwrap_or(line.len()));
        let family = catalogue.families().iter().find(|f| {
            name == f.name
                || (f.kind == "histogram"
                    && ["_bucket", "_sum", "_count"].iter().any(|s| name == format!("{}{s}", f.name)))
        });
        let Some(family) = family else {
            wrong.push(format!("{name}: not in the catalogue"));
            continue;
        };
        let mut keys: Vec<&str> = match rest.strip_prefix('{').and_then(|r| r.split_once('}')) {
            Some((labels, _)) => labels.split("\",").filter_map(|pair| pair.split_once('=').map(|(k, _)| k)).collect(),
            None => Vec::new(),
        };
        keys.retain(|k| !k.is_empty() && *k != "le");
        keys.sort_unstable();
        let mut declared = family.labels.to_vec();
        declared.sort_unstable();
        if keys != declared {
            wrong.push(format!("{line}: labels {keys:?}, catalogue says {declared:?}"));
        }
    }
    wrong
}

/// Fails the test with a clear message when `dig` is missing (scripts/test installs it).
pub fn require_dig() {
    let found = Command::new("dig").arg("-v").output().is_ok();
    assert!(found, "dig not found: install bind9-dnsutils (scripts/test does)");
}

/// The A answers for `name` from the DNS server on 127.0.0.1:`port`, sorted; empty on no
/// answer or timeout.
pub fn dig(port: u16, name: &str) -> Vec<String> {
    let out = Command::new("dig")
        .args(["+short", "+time=1", "+tries=1", "@127.0.0.1", "-p", &port.to_string(), name, "A"])
        .output()
        .expect("dig not found: install bind9-dnsutils (scripts/test does)");
    let mut answers: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(';') && !l.is_empty())
        .map(str::to_owned)
        .collect();
    answers.sort();
    answers
}

/// A `veer run -c veer.yaml` child in `dir`; stderr goes to a file so logs can be read at
/// any time without blocking the child. Killed on drop.
pub struct Replica {
    child: Child,
    log: PathBuf,
}

impl Replica {
    /// Starts `veer run -c veer.yaml` (plus `extra` arguments) in `dir` with `env` set.
    pub fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = dir.join(format!("replica-{}-{n}.log", std::process::id()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_veer"));
        command
            .args(["run", "-c", "veer.yaml"])
            .args(extra)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        Self { child: command.spawn().unwrap(), log }
    }

    /// The process id (for SIGSTOP/SIGCONT/SIGKILL).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `STOP`, `CONT`, `KILL`, `HUP`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.pid().to_string()]).status().unwrap();
        assert!(status.success(), "kill -{name} {}", self.pid());
    }

    /// Everything the replica logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGTERM, then waits up to `within` for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        let mut status = None;
        wait_until(within, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}
