//! Test bed: real authoritative DNS servers (BIND 9, Knot) started on free loopback
//! ports in temporary directories, killed when dropped.
//!
//! Tests use real servers because the properties veer relies on (value-dependent
//! prerequisites, atomic UPDATEs, TSIG errors) are the servers' behaviour, not a
//! library's. Each server gets one zone with a TSIG key allowed to update it.
//!
//! A missing server binary fails loudly in CI (env `CI` set, with the Debian package
//! to install) and skips the test elsewhere, with a message on stderr.
//!
//! With feature `http-fake`, for the HTTP API providers' tests: [`http_server`]
//! serves their stateful fakes on loopback, and [`LogCapture`] collects what a
//! test binary logs.

#[cfg(feature = "http-fake")]
pub mod http_server;
#[cfg(feature = "http-fake")]
mod log_capture;
#[cfg(feature = "http-fake")]
pub use log_capture::LogCapture;

use std::fmt;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Time a server gets to come up; generous, the machine is shared.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Which server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// ISC BIND 9 (`named`, Debian package `bind9`).
    Bind,
    /// Knot DNS (`knotd`, Debian package `knot`).
    Knot,
    /// PowerDNS Authoritative with the sqlite3 backend, RFC 2136 and the HTTP API
    /// enabled (`pdns_server`, Debian packages `pdns-server`, `pdns-backend-sqlite3`,
    /// and `sqlite3` for the schema).
    PowerDns,
}

impl ServerKind {
    /// The binary and the Debian package that ships it.
    pub fn binary_and_package(self) -> (&'static str, &'static str) {
        match self {
            ServerKind::Bind => ("named", "bind9"),
            ServerKind::Knot => ("knotd", "knot"),
            ServerKind::PowerDns => ("pdns_server", "pdns-server"),
        }
    }

    /// Every binary the kind needs, with its Debian package.
    fn requirements(self) -> Vec<(&'static str, &'static str)> {
        let mut needs = vec![self.binary_and_package(), ("dig", "dnsutils"), ("nsupdate", "dnsutils")];
        if self == ServerKind::PowerDns {
            needs.extend([("pdnsutil", "pdns-server"), ("sqlite3", "sqlite3")]);
        }
        needs
    }
}

/// Where the PowerDNS HTTP API listens, and its key.
#[derive(Clone)]
pub struct HttpApi {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The `X-API-Key` value.
    pub api_key: String,
}

impl fmt::Debug for HttpApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpApi").field("base_url", &self.base_url).field("api_key", &"<redacted>").finish()
    }
}

/// A TSIG key as the servers are configured with it. The secret is test material,
/// but is still kept out of `Debug` output.
#[derive(Clone)]
pub struct TsigMaterial {
    /// Key name.
    pub name: String,
    /// Algorithm name as BIND, Knot and nsupdate spell it (`hmac-sha256`).
    pub algorithm: String,
    /// Base64 secret.
    pub secret_base64: String,
}

impl fmt::Debug for TsigMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigMaterial")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret_base64", &"<redacted>")
            .finish()
    }
}

/// What a server is started with.
#[derive(Debug, Clone)]
pub struct ZoneSpec {
    /// The zone, fully qualified (`example.test.`).
    pub zone: String,
    /// Extra zone file lines (relative or absolute owner names), e.g. an unowned name
    /// veer must leave alone: `legacy 300 IN A 192.0.2.99`.
    pub records: Vec<String>,
    /// TSIG algorithm for the update key (`hmac-sha256` or `hmac-sha512`).
    pub algorithm: String,
}

impl ZoneSpec {
    /// A zone with no extra records and an hmac-sha256 key.
    pub fn new(zone: &str) -> Self {
        Self { zone: zone.into(), records: Vec::new(), algorithm: "hmac-sha256".into() }
    }
}

/// A running server; dropping it kills the process and removes its directory.
pub struct DnsServer {
    kind: ServerKind,
    addr: SocketAddr,
    zone: String,
    key: TsigMaterial,
    http_api: Option<HttpApi>,
    child: Child,
    dir: tempfile::TempDir,
}

impl fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsServer")
            .field("kind", &self.kind)
            .field("addr", &self.addr)
            .field("zone", &self.zone)
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

/// Whether `binary` can be run. In CI a missing binary panics with the package to
/// install; elsewhere it returns false after saying so on stderr.
pub fn require_binary(binary: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/usr/bin", "/sbin"].iter().any(|dir| Path::new(dir).join(binary).is_file());
    if found {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("`{binary}` is not installed; install the Debian package `{package}` (apt-get install -y {package})");
    }
    eprintln!("\n*** SKIPPED: `{binary}` is not installed (Debian package `{package}`); this test did not run ***\n");
    false
}

fn binary_path(binary: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin"] {
        let p = Path::new(dir).join(binary);
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from(binary)
}

/// A loopback port free for both UDP and TCP at the time of the call.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
        let port = tcp.local_addr().expect("local address").port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port found for both UDP and TCP");
}

/// A random base64 secret of `len` bytes, from the kernel's generator.
pub fn random_secret_base64(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).expect("read /dev/urandom");
    base64_encode(&bytes)
}

/// Standard base64 with padding (the test bed keeps no dependency for it).
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl DnsServer {
    /// Starts `kind` serving `spec`, or returns `None` when its binary is missing
    /// outside CI. Panics when the server does not come up (with its log).
    pub fn start(kind: ServerKind, spec: &ZoneSpec) -> Option<DnsServer> {
        for (binary, package) in kind.requirements() {
            if !require_binary(binary, package) {
                return None;
            }
        }
        // A port can be taken between the probe and the server's bind: try again.
        let mut last_error = String::new();
        for _ in 0..3 {
            match Self::try_start(kind, spec) {
                Ok(server) => return Some(server),
                Err(e) => last_error = e,
            }
        }
        panic!("{kind:?} did not start: {last_error}");
    }

    fn try_start(kind: ServerKind, spec: &ZoneSpec) -> Result<DnsServer, String> {
        let dir = tempfile::Builder::new().prefix("veer-testbed-").tempdir().map_err(|e| e.to_string())?;
        let port = free_port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let zone = if spec.zone.ends_with('.') { spec.zone.clone() } else { format!("{}.", spec.zone) };
        let key = TsigMaterial {
            name: "veer-key".into(),
            algorithm: spec.algorithm.clone(),
            secret_base64: random_secret_base64(32),
        };
        let zone_file = dir.path().join("zone.db");
        std::fs::write(&zone_file, zone_file_text(&zone, &spec.records)).map_err(|e| e.to_string())?;
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut http_api = None;
        let mut command = match kind {
            ServerKind::Bind => {
                let conf = dir.path().join("named.conf");
                std::fs::write(&conf, bind_conf(dir.path(), port, &zone, &key)).map_err(|e| e.to_string())?;
                let mut c = Command::new(binary_path("named"));
                c.arg("-g").arg("-c").arg(&conf).arg("-n").arg("1");
                c
            }
            ServerKind::Knot => {
                for sub in ["storage", "run", "db"] {
                    std::fs::create_dir_all(dir.path().join(sub)).map_err(|e| e.to_string())?;
                }
                std::fs::copy(&zone_file, dir.path().join("storage").join(format!("{zone}zone")))
                    .map_err(|e| e.to_string())?;
                let conf = dir.path().join("knot.conf");
                std::fs::write(&conf, knot_conf(dir.path(), port, &zone, &key)).map_err(|e| e.to_string())?;
                let mut c = Command::new(binary_path("knotd"));
                c.arg("-c").arg(&conf);
                c
            }
            ServerKind::PowerDns => {
                let api = HttpApi {
                    base_url: format!("http://127.0.0.1:{}", free_port()),
                    api_key: random_secret_base64(16),
                };
                prepare_powerdns(dir.path(), port, &api, &zone, &key, &zone_file)?;
                http_api = Some(api);
                let mut c = Command::new(binary_path("pdns_server"));
                c.arg(format!("--config-dir={}", dir.path().display()));
                c
            }
        };
        let child = command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("spawn {kind:?}: {e}"))?;
        let mut server = DnsServer { kind, addr, zone, key, http_api, child, dir };
        server.wait_until_ready()?;
        Ok(server)
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}; log:\n{}", self.log()));
            }
            // named answers queries a little before it accepts updates; its log
            // line ending in "running" marks the point where updates work.
            let log_ready = match self.kind {
                ServerKind::Bind => self.log().lines().any(|l| l.trim_end().ends_with("running")),
                ServerKind::Knot => true,
                ServerKind::PowerDns => self.log().contains("Done launching threads"),
            };
            if log_ready && !self.dig(&self.zone.clone(), "SOA").is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after {STARTUP_TIMEOUT:?}; log:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Which server this is.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The zone it serves, with its trailing dot.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The TSIG key allowed to update the zone.
    pub fn key(&self) -> &TsigMaterial {
        &self.key
    }

    /// The HTTP API (PowerDNS only).
    pub fn http_api(&self) -> Option<&HttpApi> {
        self.http_api.as_ref()
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends the server signal `name` (`STOP` freezes it: its API hangs rather than
    /// refusing; `CONT` resumes it).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} {}", self.child.id());
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `dig +tcp +short` for `name`/`rtype`: the answer lines (empty when none).
    pub fn dig(&self, name: &str, rtype: &str) -> Vec<String> {
        let output = Command::new("dig")
            .args(["+tcp", "+short", "+norecurse", "+time=5", "+tries=1"])
            .arg(format!("@{}", self.addr.ip()))
            .args(["-p", &self.addr.port().to_string(), name, rtype])
            .output();
        match output {
            Ok(out) if out.status.success() => {
                let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with(';'))
                    .map(String::from)
                    .collect();
                lines.sort();
                lines
            }
            _ => Vec::new(),
        }
    }

    /// Runs `nsupdate` (over TCP, signed with the zone's key) with the given update
    /// lines, e.g. `update delete x.example.test. A`; a competing writer for tests.
    /// Returns nsupdate's stderr on failure.
    pub fn nsupdate(&self, lines: &[String]) -> Result<(), String> {
        let mut script = format!("server {} {}\nzone {}\n", self.addr.ip(), self.addr.port(), self.zone);
        for line in lines {
            script.push_str(line);
            script.push('\n');
        }
        script.push_str("send\n");
        let key = format!("{}:{}:{}", self.key.algorithm, self.key.name, self.key.secret_base64);
        let mut child = Command::new("nsupdate")
            .args(["-v", "-y", &key])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn nsupdate: {e}"))?;
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), script.as_bytes())
            .map_err(|e| format!("write to nsupdate: {e}"))?;
        let out = child.wait_with_output().map_err(|e| format!("nsupdate: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("nsupdate failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let out = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Writes pdns.conf, creates the sqlite database from Debian's schema, loads the
/// zone file and allows the TSIG key to update the zone.
fn prepare_powerdns(
    dir: &Path,
    port: u16,
    api: &HttpApi,
    zone: &str,
    key: &TsigMaterial,
    zone_file: &Path,
) -> Result<(), String> {
    let d = dir.display();
    let api_port = api.base_url.rsplit(':').next().unwrap_or_default();
    let conf = format!(
        "launch=gsqlite3\ngsqlite3-database={d}/pdns.sqlite3\nlocal-address=127.0.0.1\nlocal-port={port}\n\
         daemon=no\nguardian=no\nsocket-dir={d}\napi=yes\napi-key={api_key}\nwebserver=yes\n\
         webserver-address=127.0.0.1\nwebserver-port={api_port}\nwebserver-allow-from=127.0.0.0/8\n\
         dnsupdate=yes\nallow-dnsupdate-from=127.0.0.0/8\nloglevel=6\n\
         default-soa-content=ns1.@ hostmaster.@ 1 10800 3600 604800 3600\n",
        api_key = api.api_key,
    );
    std::fs::write(dir.join("pdns.conf"), conf).map_err(|e| e.to_string())?;
    let schema = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql";
    let schema_sql =
        std::fs::read(schema).map_err(|e| format!("{schema}: {e} (Debian package pdns-backend-sqlite3)"))?;
    let mut sqlite = Command::new("sqlite3")
        .arg(dir.join("pdns.sqlite3"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("sqlite3: {e}"))?;
    std::io::Write::write_all(sqlite.stdin.as_mut().expect("stdin"), &schema_sql).map_err(|e| e.to_string())?;
    let out = sqlite.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("sqlite3 schema: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let pdnsutil = || {
        let mut c = Command::new("pdnsutil");
        c.arg(format!("--config-dir={d}"));
        c
    };
    let bare = zone.trim_end_matches('.');
    run(pdnsutil().args(["load-zone", bare]).arg(zone_file))?;
    run(pdnsutil().args(["import-tsig-key", &key.name, &key.algorithm, &key.secret_base64]))?;
    run(pdnsutil().args(["set-meta", bare, "TSIG-ALLOW-DNSUPDATE", &key.name]))?;
    run(pdnsutil().args(["set-meta", bare, "SOA-EDIT-DNSUPDATE", "INCREASE"]))?;
    Ok(())
}

fn zone_file_text(zone: &str, records: &[String]) -> String {
    let mut text = format!(
        "$ORIGIN {zone}\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n"
    );
    for r in records {
        text.push_str(r);
        text.push('\n');
    }
    text
}

fn bind_conf(dir: &Path, port: u16, zone: &str, key: &TsigMaterial) -> String {
    let d = dir.display();
    format!(
        r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    notify no;
    allow-transfer {{ none; }};
    dnssec-validation no;
}};
controls {{ }};
key "{name}" {{ algorithm {alg}; secret "{secret}"; }};
zone "{zone}" {{
    type primary;
    file "{d}/zone.db";
    allow-update {{ key "{name}"; }};
}};
"#,
        name = key.name,
        alg = key.algorithm,
        secret = key.secret_base64,
    )
}

fn knot_conf(dir: &Path, port: u16, zone: &str, key: &TsigMaterial) -> String {
    let d = dir.display();
    format!(
        r#"server:
    rundir: "{d}/run"
    listen: 127.0.0.1@{port}
    user: root:root

log:
  - target: stderr
    any: info

database:
    storage: "{d}/db"

key:
  - id: {name}
    algorithm: {alg}
    secret: {secret}

acl:
  - id: veer_update
    key: {name}
    action: update

template:
  - id: default
    storage: "{d}/storage"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: changes

zone:
  - domain: {zone}
    acl: veer_update
"#,
        name = key.name,
        alg = key.algorithm,
        secret = key.secret_base64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn the_key_secret_stays_out_of_debug_output() {
        let key = TsigMaterial { name: "k".into(), algorithm: "hmac-sha256".into(), secret_base64: "c2VjcmV0".into() };
        assert!(!format!("{key:?}").contains("c2VjcmV0"));
    }

    #[test]
    fn bind_starts_answers_and_accepts_signed_updates() {
        let spec = ZoneSpec { records: vec!["legacy 300 IN A 192.0.2.99".into()], ..ZoneSpec::new("example.test.") };
        let Some(server) = DnsServer::start(ServerKind::Bind, &spec) else { return };
        assert_eq!(server.dig("legacy.example.test.", "A"), vec!["192.0.2.99"]);
        server.nsupdate(&["update add new.example.test. 60 A 192.0.2.1".into()]).unwrap();
        assert_eq!(server.dig("new.example.test.", "A"), vec!["192.0.2.1"]);
    }

    #[test]
    fn powerdns_starts_answers_and_accepts_signed_updates() {
        let spec = ZoneSpec { records: vec!["legacy 300 IN A 192.0.2.99".into()], ..ZoneSpec::new("example.test.") };
        let Some(server) = DnsServer::start(ServerKind::PowerDns, &spec) else { return };
        assert!(server.http_api().is_some());
        assert_eq!(server.dig("legacy.example.test.", "A"), vec!["192.0.2.99"]);
        server.nsupdate(&["update add new.example.test. 60 A 192.0.2.1".into()]).unwrap();
        assert_eq!(server.dig("new.example.test.", "A"), vec!["192.0.2.1"]);
    }

    #[test]
    fn knot_starts_answers_and_accepts_signed_updates() {
        let spec = ZoneSpec { records: vec!["legacy 300 IN A 192.0.2.99".into()], ..ZoneSpec::new("example.test.") };
        let Some(server) = DnsServer::start(ServerKind::Knot, &spec) else { return };
        assert_eq!(server.dig("legacy.example.test.", "A"), vec!["192.0.2.99"]);
        server.nsupdate(&["update add new.example.test. 60 A 192.0.2.1".into()]).unwrap();
        assert_eq!(server.dig("new.example.test.", "A"), vec!["192.0.2.1"]);
    }
}
