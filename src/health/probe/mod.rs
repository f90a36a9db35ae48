//! Probes (ARCHITECTURE.md §6): one attempt to reach one endpoint the way its policy says,
//! reduced to success or a short reason an operator can read at a glance.
//!
//! A [`ProbeTarget`] is compiled once per endpoint from its policy (address,
//! port, Host/SNI, TLS trust, expected statuses) so that the hot path of the
//! scheduler does no parsing and no file reads; [`probe`] runs one attempt
//! under the policy's timeout.

pub mod dns;
pub mod http;
pub mod tcp;
pub mod tls;

use super::EndpointKey;
use crate::policy::LoadedPolicy;
use crate::policy::model::{Endpoint, FailoverPolicy, HealthCheck, ProbeKind};
use rustls::pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Why a probe failed, rendered as the short reason shown in `veer check`,
/// reports and metrics ("connect refused", "timeout 500ms", "status 503").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeFailure {
    /// Nothing listens on the port (TCP RST, or ICMP port unreachable for UDP).
    #[error("connect refused")]
    ConnectRefused,
    /// Any other failure to open the connection.
    #[error("connect: {0}")]
    Connect(String),
    /// The whole probe took longer than the policy's timeout.
    #[error("timeout {}", crate::policy::duration::format(*.0))]
    Timeout(Duration),
    /// The endpoint's name (CNAME endpoints without `check.address`) did not resolve.
    #[error("resolve {name}: {message}")]
    Resolve {
        /// The name looked up.
        name: String,
        /// What the resolver said.
        message: String,
    },
    /// The TLS handshake failed (untrusted or mismatched certificate, not TLS at all).
    #[error("tls: {0}")]
    Tls(String),
    /// The server did not speak HTTP/1.1 as expected.
    #[error("http: {0}")]
    Http(String),
    /// The HTTP status is not in `expectStatus`.
    #[error("status {0}")]
    Status(u16),
    /// The body prefix read does not contain the expected substring.
    #[error("body lacks {0:?}")]
    BodyLacks(String),
    /// The DNS answer was not NOERROR with at least one record.
    #[error("dns: {0}")]
    Dns(String),
    /// The target cannot be probed as configured (for example an unreadable CA bundle).
    #[error("{0}")]
    Unusable(String),
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// `Ok` when the endpoint passed the check.
    pub outcome: Result<(), ProbeFailure>,
    /// From the start of the probe (before connect) to its verdict.
    pub latency: Duration,
}

impl ProbeResult {
    /// True when the endpoint passed.
    pub fn is_success(&self) -> bool {
        self.outcome.is_ok()
    }
    /// The short failure reason, if it failed.
    pub fn reason(&self) -> Option<String> {
        self.outcome.as_ref().err().map(ToString::to_string)
    }
    /// Latency in whole milliseconds, when the probe reached a verdict before its
    /// timeout (a timeout's latency says nothing about the endpoint).
    pub fn latency_ms(&self) -> Option<u64> {
        match self.outcome {
            Err(ProbeFailure::Timeout(_)) | Err(ProbeFailure::Unusable(_)) => None,
            _ => Some(self.latency.as_millis().min(u128::from(u64::MAX)) as u64),
        }
    }
}

/// Where a probe connects: an IP address, or a name resolved at each probe
/// (CNAME endpoints without `check.address`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TargetHost {
    /// Connect here, whatever DNS says about any name.
    Ip(IpAddr),
    /// Resolve with the system resolver, then connect to the first address.
    Name(String),
}

impl std::fmt::Display for TargetHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            TargetHost::Ip(ip) => write!(f, "{ip}"),
            TargetHost::Name(name) => f.write_str(name),
        }
    }
}

/// What an http or https probe sends and accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// The `Host` header (with `:port` when the port is not the scheme's default).
    pub host_header: String,
    /// Name sent as TLS SNI and verified against the certificate.
    pub server_name: ServerName<'static>,
    /// Request path (with query), starting with `/`.
    pub path: String,
    /// Accepted statuses.
    pub expect_status: Vec<u16>,
    /// A substring the body prefix must contain.
    pub body: Option<String>,
    /// The request, built once.
    pub request: Vec<u8>,
}

/// The probe kind with its compiled settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Plain HTTP GET.
    Http(HttpCheck),
    /// HTTP GET over TLS.
    Https(HttpCheck, tls::TlsSetup),
    /// TCP connect.
    Tcp,
    /// A DNS query over UDP.
    Dns(dns::DnsCheck),
    /// Cannot be probed as configured; every probe fails with this reason, at
    /// the same rate as any other probe (constant work).
    Unusable(String),
}

/// Everything needed to probe one endpoint, compiled once from its policy.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeTarget {
    /// Which endpoint.
    pub key: EndpointKey,
    /// The pool it belongs to (reports and `veer check` show it).
    pub pool: String,
    /// Where to connect.
    pub host: TargetHost,
    /// Port to connect to.
    pub port: u16,
    /// Bound on the whole probe.
    pub timeout: Duration,
    /// What to do once there.
    pub check: Check,
}

impl ProbeTarget {
    /// `host:port` as shown to operators.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
    /// The probe kind's name (`http`, `https`, `tcp`, `dns`).
    pub fn kind_name(&self) -> &'static str {
        match self.check {
            Check::Http(_) => "http",
            Check::Https(..) => "https",
            Check::Tcp => "tcp",
            Check::Dns(_) => "dns",
            Check::Unusable(_) => "-",
        }
    }
}

/// Compiles the targets of every endpoint of `loaded`, sharing TLS settings
/// through `tls` (relative CA bundle paths are taken from the policy's folder).
pub fn targets_for(loaded: &LoadedPolicy, tls: &mut tls::TlsConfigs) -> Vec<ProbeTarget> {
    let base = loaded.path.parent().unwrap_or(Path::new("."));
    targets_for_policy(&loaded.policy, base, tls)
}

/// Compiles the targets of every endpoint of `policy`; `base` resolves a relative `caBundle`.
pub fn targets_for_policy(policy: &FailoverPolicy, base: &Path, tls: &mut tls::TlsConfigs) -> Vec<ProbeTarget> {
    policy.endpoints().map(|(pool, endpoint)| target(policy, &pool.name.value, endpoint, base, tls)).collect()
}

fn target(
    policy: &FailoverPolicy,
    pool: &str,
    endpoint: &Endpoint,
    base: &Path,
    tls: &mut tls::TlsConfigs,
) -> ProbeTarget {
    let h: &HealthCheck = &policy.spec.health_check;
    let check = endpoint.check.as_ref();
    let key = EndpointKey::new(policy.name(), endpoint.id.value.as_str());
    let host = match check.and_then(|c| c.address.as_ref()).map(|a| a.value.as_str()) {
        Some(address) => parse_host(address),
        None => parse_host(&endpoint.address.value),
    };
    let port = check.and_then(|c| c.port.as_ref()).map(|p| p.value).or_else(|| h.port());
    let mut target = ProbeTarget {
        key,
        pool: pool.to_string(),
        host: host.clone(),
        port: port.unwrap_or(0),
        timeout: h.timeout(),
        check: Check::Tcp,
    };
    if port.is_none() {
        target.check = Check::Unusable("no port configured".into());
        return target;
    }
    let port = target.port;
    target.check = match h.kind.value {
        ProbeKind::Tcp => Check::Tcp,
        ProbeKind::Dns => match h.query.as_ref() {
            Some(q) => match dns::DnsCheck::new(q.value.as_str()) {
                Ok(c) => Check::Dns(c),
                Err(e) => Check::Unusable(e),
            },
            None => Check::Unusable("dns check without `query`".into()),
        },
        kind @ (ProbeKind::Http | ProbeKind::Https) => {
            let name = check.and_then(|c| c.host.as_ref()).or(h.host.as_ref()).map(|s| s.value.as_str());
            let default_port = if kind == ProbeKind::Https { 443 } else { 80 };
            match http_check(h, name, &host, port, default_port) {
                Err(reason) => Check::Unusable(reason),
                Ok(http) if kind == ProbeKind::Http => Check::Http(http),
                Ok(http) => {
                    let ca = h.ca_bundle.as_ref().map(|c| base.join(&c.value));
                    Check::Https(http, tls.get(ca, h.insecure_skip_verify()))
                }
            }
        }
    };
    target
}

fn parse_host(text: &str) -> TargetHost {
    match text.parse::<IpAddr>() {
        Ok(ip) => TargetHost::Ip(ip),
        Err(_) => TargetHost::Name(text.trim_end_matches('.').to_string()),
    }
}

fn http_check(
    h: &HealthCheck,
    name: Option<&str>,
    host: &TargetHost,
    port: u16,
    default_port: u16,
) -> Result<HttpCheck, String> {
    let bare = match name {
        Some(n) => n.trim_end_matches('.').to_string(),
        None => host.to_string(),
    };
    let host_header = if port == default_port { bare.clone() } else { format!("{bare}:{port}") };
    let sni = bare.trim_start_matches('[').trim_end_matches(']').to_string();
    let server_name = ServerName::try_from(sni).map_err(|e| format!("host {bare:?} is not a valid TLS name: {e}"))?;
    let path = h.path();
    let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    let request = http::request_bytes(&path, &host_header)
        .ok_or_else(|| format!("path {path:?} or host {host_header:?} holds spaces or control characters"))?;
    Ok(HttpCheck {
        host_header,
        server_name,
        path,
        expect_status: h.expect_status(),
        body: h.body.as_ref().map(|b| b.value.clone()),
        request,
    })
}

/// Runs one probe of `target` under its timeout. Never panics, never retries:
/// a failed probe is one data point for the hysteresis, not a reason to probe again.
pub async fn probe(target: &ProbeTarget) -> ProbeResult {
    let started = Instant::now();
    let mut verdict = None;
    // One timer covers the verdict and the drain that follows it (see `http`:
    // the server should close first); a timeout during the drain keeps the verdict.
    let run = async {
        let (outcome, leftover) = attempt(target).await;
        verdict = Some(ProbeResult { outcome, latency: started.elapsed() });
        if let Some(connection) = leftover {
            connection.drain().await;
        }
    };
    let _ = tokio::time::timeout_at(started + target.timeout, run).await;
    verdict.unwrap_or_else(|| ProbeResult {
        outcome: Err(ProbeFailure::Timeout(target.timeout)),
        latency: started.elapsed(),
    })
}

async fn attempt(target: &ProbeTarget) -> (Result<(), ProbeFailure>, Option<http::Leftover>) {
    if let Check::Unusable(reason) = &target.check {
        return (Err(ProbeFailure::Unusable(reason.clone())), None);
    }
    let addr = match resolve(&target.host, target.port).await {
        Ok(addr) => addr,
        Err(e) => return (Err(e), None),
    };
    match &target.check {
        Check::Http(check) => http::probe(addr, check, None).await,
        Check::Https(check, setup) => http::probe(addr, check, Some(setup)).await,
        Check::Tcp => (tcp::probe(addr).await, None),
        Check::Dns(check) => (check.probe(addr).await, None),
        Check::Unusable(_) => unreachable!("handled above"),
    }
}

async fn resolve(host: &TargetHost, port: u16) -> Result<SocketAddr, ProbeFailure> {
    match host {
        TargetHost::Ip(ip) => Ok(SocketAddr::new(*ip, port)),
        TargetHost::Name(name) => {
            let failure = |message: String| ProbeFailure::Resolve { name: name.clone(), message };
            let mut addrs = tokio::net::lookup_host((name.as_str(), port)).await.map_err(|e| failure(e.to_string()))?;
            addrs.next().ok_or_else(|| failure("no address".into()))
        }
    }
}

/// Maps an I/O error from connect or a socket read to a short reason.
pub(crate) fn io_failure(e: &std::io::Error) -> ProbeFailure {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => ProbeFailure::ConnectRefused,
        ConnectionReset => ProbeFailure::Connect("connection reset".into()),
        HostUnreachable => ProbeFailure::Connect("host unreachable".into()),
        NetworkUnreachable => ProbeFailure::Connect("network unreachable".into()),
        AddrNotAvailable => ProbeFailure::Connect("address not available".into()),
        TimedOut => ProbeFailure::Connect("timed out".into()),
        _ => ProbeFailure::Connect(e.to_string()),
    }
}

/// Probes every target once, at most `concurrency` at a time, in input order.
pub async fn probe_all(targets: Vec<ProbeTarget>, concurrency: usize) -> Vec<(ProbeTarget, ProbeResult)> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let tasks: Vec<_> = targets
        .into_iter()
        .map(|target| {
            let permits = permits.clone();
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore is never closed");
                let result = probe(&target).await;
                (target, result)
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.expect("a probe never panics"));
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_read_as_short_phrases() {
        assert_eq!(ProbeFailure::ConnectRefused.to_string(), "connect refused");
        assert_eq!(ProbeFailure::Timeout(Duration::from_millis(500)).to_string(), "timeout 500ms");
        assert_eq!(ProbeFailure::Timeout(Duration::from_secs(2)).to_string(), "timeout 2s");
        assert_eq!(ProbeFailure::Status(503).to_string(), "status 503");
        assert_eq!(ProbeFailure::BodyLacks("ok".into()).to_string(), "body lacks \"ok\"");
    }

    #[test]
    fn a_timeout_has_no_latency_but_a_refusal_does() {
        let timeout = ProbeResult {
            outcome: Err(ProbeFailure::Timeout(Duration::from_millis(500))),
            latency: Duration::from_millis(500),
        };
        assert_eq!(timeout.latency_ms(), None);
        let refused = ProbeResult { outcome: Err(ProbeFailure::ConnectRefused), latency: Duration::from_millis(3) };
        assert_eq!(refused.latency_ms(), Some(3));
        assert_eq!(refused.reason().as_deref(), Some("connect refused"));
    }
}
