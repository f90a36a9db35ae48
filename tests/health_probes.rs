//! Each probe type against real servers on loopback: success and every failure reason.

mod support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use support::{DnsServer, HttpServer, Script, SilentListener, TestCa, policy, refused_port};
use veer::health::probe::{self, ProbeFailure, ProbeResult, ProbeTarget, tls::TlsConfigs};

fn targets_in(dir: &Path, health_check: &str, endpoints: &[&str]) -> Vec<ProbeTarget> {
    probe::tls::install_default_provider();
    probe::targets_for_policy(&policy("api", health_check, endpoints), dir, &mut TlsConfigs::default())
}

fn target(health_check: &str, endpoint: &str) -> ProbeTarget {
    targets_in(Path::new("."), health_check, &[endpoint]).remove(0)
}

fn http_check(port: u16, extra: &str) -> String {
    format!("{{ type: http, port: {port}, path: /healthz, interval: 10s, timeout: 5s{extra} }}")
}

async fn probe_once(target: &ProbeTarget) -> ProbeResult {
    probe::probe(target).await
}

fn local(addr: SocketAddr) -> String {
    format!("{{ id: e1, address: {} }}", addr.ip())
}

#[tokio::test]
async fn an_http_endpoint_answering_200_is_healthy_with_a_latency() {
    let server = HttpServer::start(Script::ok("ok")).await;
    let result = probe_once(&target(&http_check(server.addr.port(), ""), &local(server.addr))).await;
    assert_eq!(result.outcome, Ok(()));
    assert!(result.latency_ms().is_some());
    assert_eq!(server.seen()[0].path, "/healthz");
}

#[tokio::test]
async fn a_refused_port_fails_with_connect_refused() {
    let addr = refused_port();
    let result = probe_once(&target(&http_check(addr.port(), ""), &local(addr))).await;
    assert_eq!(result.reason().as_deref(), Some("connect refused"));
}

#[tokio::test]
async fn a_listener_that_never_answers_fails_with_the_timeout() {
    let silent = SilentListener::start().await;
    let check = format!("{{ type: http, port: {}, interval: 10s, timeout: 300ms }}", silent.addr.port());
    let result = probe_once(&target(&check, &local(silent.addr))).await;
    assert_eq!(result.reason().as_deref(), Some("timeout 300ms"));
    assert!(result.latency >= Duration::from_millis(300));
    assert_eq!(result.latency_ms(), None);
}

#[tokio::test]
async fn a_slow_answer_past_the_timeout_fails_with_the_timeout() {
    let server = HttpServer::start(Script { delay: Duration::from_secs(3), ..Script::ok("ok") }).await;
    let check = format!("{{ type: http, port: {}, interval: 10s, timeout: 200ms }}", server.addr.port());
    let result = probe_once(&target(&check, &local(server.addr))).await;
    assert_eq!(result.reason().as_deref(), Some("timeout 200ms"));
}

#[tokio::test]
async fn a_status_outside_expect_status_fails_with_the_status() {
    let server = HttpServer::start(Script::status(503)).await;
    let result = probe_once(&target(&http_check(server.addr.port(), ""), &local(server.addr))).await;
    assert_eq!(result.reason().as_deref(), Some("status 503"));
}

#[tokio::test]
async fn any_status_in_expect_status_passes() {
    let server = HttpServer::start(Script::status(204)).await;
    let t = target(&http_check(server.addr.port(), ", expectStatus: [200, 204]"), &local(server.addr));
    assert_eq!(probe_once(&t).await.outcome, Ok(()));
    server.set(Script::status(200));
    assert_eq!(probe_once(&t).await.outcome, Ok(()));
    server.set(Script::status(302));
    assert_eq!(probe_once(&t).await.reason().as_deref(), Some("status 302"));
}

#[tokio::test]
async fn a_body_without_the_expected_substring_fails_and_one_with_it_passes() {
    let server = HttpServer::start(Script::ok("{\"status\":\"degraded\"}")).await;
    let t = target(&http_check(server.addr.port(), ", body: '\"ok\"'"), &local(server.addr));
    assert_eq!(probe_once(&t).await.reason().as_deref(), Some("body lacks \"\\\"ok\\\"\""));
    server.set(Script::ok("{\"status\":\"ok\"}"));
    assert_eq!(probe_once(&t).await.outcome, Ok(()));
}

#[tokio::test]
async fn a_chunked_body_is_decoded_before_the_substring_is_searched() {
    // Chunks of 3 bytes split "healthy" on the wire as "hea", "lth", "y".
    let server = HttpServer::start(Script { chunked: true, ..Script::ok("healthy") }).await;
    let t = target(&http_check(server.addr.port(), ", body: healthy"), &local(server.addr));
    assert_eq!(probe_once(&t).await.outcome, Ok(()));
    server.set(Script { chunked: true, ..Script::ok("unhealthy-ish") });
    let t = target(&http_check(server.addr.port(), ", body: ok"), &local(server.addr));
    assert_eq!(probe_once(&t).await.reason().as_deref(), Some("body lacks \"ok\""));
}

#[tokio::test]
async fn the_body_is_searched_only_in_a_bounded_prefix() {
    let mut body = "x".repeat(probe::http::BODY_PREFIX_BYTES_MAX + 10);
    body.push_str("ok");
    let server = HttpServer::start(Script::ok(&body)).await;
    let t = target(&http_check(server.addr.port(), ", body: ok"), &local(server.addr));
    assert_eq!(probe_once(&t).await.outcome, Err(ProbeFailure::BodyLacks("ok".into())));
}

#[tokio::test]
async fn the_host_header_comes_from_the_endpoint_check_host_then_the_policy_host() {
    let server = HttpServer::start(Script::ok("ok")).await;
    let port = server.addr.port();
    let endpoints = [
        "{ id: e1, address: 127.0.0.1, check: { host: euw1.example.test } }",
        "{ id: e2, address: 192.0.2.99, check: { address: 127.0.0.1 } }",
    ];
    let targets = targets_in(Path::new("."), &http_check(port, ", host: api.example.test"), &endpoints);
    for t in &targets {
        assert_eq!(probe_once(t).await.outcome, Ok(()), "{}", t.key.endpoint);
    }
    let hosts: Vec<_> = server.seen().into_iter().map(|s| s.host.unwrap_or_default()).collect();
    assert_eq!(hosts, [format!("euw1.example.test:{port}"), format!("api.example.test:{port}")]);
}

#[tokio::test]
async fn without_a_host_the_host_header_is_the_probed_address() {
    let server = HttpServer::start(Script::ok("ok")).await;
    let t = target(&http_check(server.addr.port(), ""), &local(server.addr));
    probe_once(&t).await;
    assert_eq!(server.seen()[0].host.as_deref(), Some(format!("127.0.0.1:{}", server.addr.port()).as_str()));
}

#[tokio::test]
async fn the_endpoint_check_port_overrides_the_policy_port() {
    let server = HttpServer::start(Script::ok("ok")).await;
    let endpoint = format!("{{ id: e1, address: 127.0.0.1, check: {{ port: {} }} }}", server.addr.port());
    let t = target(&http_check(refused_port().port(), ""), &endpoint);
    assert_eq!(probe_once(&t).await.outcome, Ok(()));
}

fn https_check(port: u16, extra: &str) -> String {
    format!("{{ type: https, port: {port}, path: /healthz, interval: 10s, timeout: 5s{extra} }}")
}

#[tokio::test]
async fn an_https_endpoint_trusted_through_the_ca_bundle_passes_and_sees_the_sni() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("veer test CA");
    ca.write_bundle(dir.path());
    let server = HttpServer::start_tls(Script::ok("ok"), ca.server_config(&["euw1.example.test"])).await;
    let endpoint = "{ id: e1, address: 127.0.0.1, check: { host: euw1.example.test } }";
    // A relative caBundle is taken from the policy's folder.
    let t = targets_in(dir.path(), &https_check(server.addr.port(), ", caBundle: ca.pem"), &[endpoint]).remove(0);
    assert_eq!(probe_once(&t).await.outcome, Ok(()));
    let seen = server.seen();
    assert_eq!(seen[0].sni.as_deref(), Some("euw1.example.test"));
    assert_eq!(seen[0].host.as_deref(), Some(format!("euw1.example.test:{}", server.addr.port()).as_str()));
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_fails_with_a_tls_reason() {
    let dir = tempfile::tempdir().unwrap();
    TestCa::new("trusted CA").write_bundle(dir.path());
    let other = TestCa::new("someone else's CA");
    let server = HttpServer::start_tls(Script::ok("ok"), other.server_config(&["api.example.test"])).await;
    let check = https_check(server.addr.port(), ", host: api.example.test, caBundle: ca.pem");
    let t = targets_in(dir.path(), &check, &[&local(server.addr)]).remove(0);
    assert_eq!(probe_once(&t).await.reason().as_deref(), Some("tls: certificate not trusted (unknown issuer)"));
}

#[tokio::test]
async fn a_certificate_for_another_name_fails_with_a_tls_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("veer test CA");
    ca.write_bundle(dir.path());
    let server = HttpServer::start_tls(Script::ok("ok"), ca.server_config(&["other.example.test"])).await;
    let check = https_check(server.addr.port(), ", host: api.example.test, caBundle: ca.pem");
    let t = targets_in(dir.path(), &check, &[&local(server.addr)]).remove(0);
    assert_eq!(probe_once(&t).await.reason().as_deref(), Some("tls: certificate not valid for the name"));
}

#[tokio::test]
async fn insecure_skip_verify_accepts_any_certificate() {
    let ca = TestCa::new("unknown CA");
    let server = HttpServer::start_tls(Script::ok("ok"), ca.server_config(&["other.example.test"])).await;
    let t = target(&https_check(server.addr.port(), ", insecureSkipVerify: true"), &local(server.addr));
    assert_eq!(probe_once(&t).await.outcome, Ok(()));
}

#[tokio::test]
async fn an_https_probe_of_a_plain_http_server_fails_in_tls() {
    let server = HttpServer::start(Script::ok("ok")).await;
    let t = target(&https_check(server.addr.port(), ", insecureSkipVerify: true"), &local(server.addr));
    let reason = probe_once(&t).await.reason().unwrap();
    assert!(reason.starts_with("tls: "), "{reason}");
}

#[tokio::test]
async fn a_missing_ca_bundle_fails_every_probe_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = HttpServer::start(Script::ok("ok")).await;
    let check = https_check(server.addr.port(), ", caBundle: missing.pem");
    let t = targets_in(dir.path(), &check, &[&local(server.addr)]).remove(0);
    let reason = probe_once(&t).await.reason().unwrap();
    assert!(reason.starts_with("caBundle ") && reason.contains("missing.pem"), "{reason}");
    assert!(server.seen().is_empty(), "an unusable target sends nothing");
}

#[tokio::test]
async fn a_tcp_probe_passes_on_accept_and_fails_on_refusal() {
    let listener = SilentListener::start().await;
    let check = |port: u16| format!("{{ type: tcp, port: {port}, interval: 10s, timeout: 5s }}");
    assert_eq!(probe_once(&target(&check(listener.addr.port()), &local(listener.addr))).await.outcome, Ok(()));
    let refused = refused_port();
    let result = probe_once(&target(&check(refused.port()), &local(refused))).await;
    assert_eq!(result.reason().as_deref(), Some("connect refused"));
}

fn dns_check(port: u16, query: &str, timeout: &str) -> String {
    format!("{{ type: dns, port: {port}, query: {query}, interval: 10s, timeout: {timeout} }}")
}

async fn dns_server(silent: bool) -> DnsServer {
    let zone =
        BTreeMap::from([("health.example.test.", Some(Ipv4Addr::new(192, 0, 2, 1))), ("empty.example.test.", None)]);
    DnsServer::start(zone, silent).await
}

#[tokio::test]
async fn a_dns_endpoint_answering_the_query_is_healthy() {
    let server = dns_server(false).await;
    let t = target(&dns_check(server.addr.port(), "health.example.test.", "5s"), &local(server.addr));
    assert_eq!(probe_once(&t).await.outcome, Ok(()));
}

#[tokio::test]
async fn a_dns_endpoint_answering_nxdomain_or_nothing_is_unhealthy() {
    let server = dns_server(false).await;
    let nx = target(&dns_check(server.addr.port(), "missing.example.test.", "5s"), &local(server.addr));
    assert_eq!(probe_once(&nx).await.reason().as_deref(), Some("dns: NXDOMAIN"));
    let empty = target(&dns_check(server.addr.port(), "empty.example.test.", "5s"), &local(server.addr));
    assert_eq!(probe_once(&empty).await.reason().as_deref(), Some("dns: no answer"));
}

#[tokio::test]
async fn a_dns_endpoint_that_never_answers_times_out() {
    let server = dns_server(true).await;
    let t = target(&dns_check(server.addr.port(), "health.example.test.", "300ms"), &local(server.addr));
    assert_eq!(probe_once(&t).await.reason().as_deref(), Some("timeout 300ms"));
}

#[tokio::test]
async fn a_dns_probe_of_a_closed_udp_port_fails_fast_as_refused() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    drop(socket);
    let t = target(&dns_check(addr.port(), "health.example.test.", "5s"), &local(addr));
    let result = probe_once(&t).await;
    assert_eq!(result.reason().as_deref(), Some("connect refused"));
    assert!(result.latency < Duration::from_secs(5));
}
