//! How HTTP failures of the PowerDNS API map onto the trait's error classes, with
//! a scripted HTTP server on loopback: the failures a healthy PowerDNS does not
//! produce on demand (429, 5xx, a reply that never comes, a refused connection).

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use veer_provider::{
    Answer, Change, ChangeBatch, Observed, OwnershipRecord, Provider, ProviderError, RecordName, RecordSet, RecordType,
};
use veer_provider_powerdns::{ApiKey, PowerDnsConfig, PowerDnsProvider, WriteMode};

const KEY: &str = "scripted-api-key-42";

/// What the scripted server does with a request.
#[derive(Clone)]
enum Reply {
    /// Answers with this status line, extra headers and body.
    With(&'static str, &'static str, &'static str),
    /// Reads the request and never answers.
    Hang,
}

/// One request as received: method, path, and the `X-API-Key` header.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    api_key: Option<String>,
}

const EMPTY_ZONE: &str = r#"{"name": "example.test.", "rrsets": []}"#;

/// Serves `get` to GET requests and `patch` to PATCH requests, recording each.
async fn scripted(get: Reply, patch: Reply) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (get, patch, log) = (get.clone(), patch.clone(), log.clone());
            tokio::spawn(async move { serve(stream, get, patch, log).await });
        }
    });
    (url, seen)
}

async fn serve(mut stream: TcpStream, get: Reply, patch: Reply, log: Arc<Mutex<Vec<Seen>>>) {
    let mut buffer = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let Ok(n) = stream.read(&mut chunk).await else { return };
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
        })
    };
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buffer.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or_default().to_string(), words.next().unwrap_or_default().to_string());
    log.lock().unwrap().push(Seen { method: method.clone(), path, api_key: header("x-api-key") });
    match if method == "PATCH" { patch } else { get } {
        Reply::Hang => tokio::time::sleep(Duration::from_secs(60)).await,
        Reply::With(status, headers, body) => {
            let reply = format!(
                "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
        }
    }
}

fn rn(s: &str) -> RecordName {
    RecordName::parse(s).unwrap()
}

fn provider(url: &str) -> PowerDnsProvider {
    let mut config = PowerDnsConfig::new(
        "scripted",
        url,
        ApiKey::new(KEY).unwrap(),
        vec![rn("example.test.")],
        WriteMode::ApiLastWriterWins,
    );
    config.timeout = Duration::from_millis(500);
    config.connect_timeout = Duration::from_millis(500);
    PowerDnsProvider::new(config).unwrap()
}

fn batch() -> ChangeBatch {
    let name = rn("www.example.test.");
    let answers = vec![Answer { set_id: None, value: "192.0.2.1".into(), weight: None }];
    let desired = RecordSet::new(name.clone(), RecordType::A, 60, answers);
    let ownership = OwnershipRecord { owner: "veer".into(), generation: 1, epoch: 1, policy_hash: "p".into() };
    ChangeBatch {
        zone: rn("example.test."),
        changes: vec![Change::new(Observed::absent(name, RecordType::A), desired, ownership)],
    }
}

const OK_ZONE: Reply = Reply::With("200 OK", "Content-Type: application/json\r\n", EMPTY_ZONE);

#[tokio::test]
async fn the_api_key_is_sent_as_x_api_key_and_zone_ids_carry_the_trailing_dot() {
    let (url, seen) = scripted(OK_ZONE, Reply::With("204 No Content", "", "")).await;
    let p = provider(&url);
    let observed = p.read(&rn("www.example.test."), RecordType::A).await.unwrap();
    assert_eq!(observed, Observed::absent(rn("www.example.test."), RecordType::A));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/api/v1/servers/localhost/zones/example.test.");
    assert_eq!(seen[0].api_key.as_deref(), Some(KEY));
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let p = provider(&url);
    let read = p.read(&rn("www.example.test."), RecordType::A).await;
    assert!(matches!(&read, Err(ProviderError::Unavailable(m)) if m.contains("cannot connect")), "{read:?}");
    let apply = p.apply(&batch()).await;
    assert!(matches!(&apply, Err(ProviderError::Unavailable(_))), "{apply:?}");
    assert!(p.check_zones().await.is_err());
}

#[tokio::test]
async fn a_write_that_times_out_after_sending_is_ambiguous_and_a_read_is_unavailable() {
    let (url, seen) = scripted(OK_ZONE, Reply::Hang).await;
    let p = provider(&url);
    let apply = p.apply(&batch()).await;
    assert!(matches!(&apply, Err(ProviderError::Ambiguous(m)) if m.contains("may have been applied")), "{apply:?}");
    assert_eq!(seen.lock().unwrap().iter().map(|s| s.method.as_str()).collect::<Vec<_>>(), ["GET", "PATCH"]);

    let (url, _) = scripted(Reply::Hang, Reply::Hang).await;
    let read = provider(&url).read(&rn("www.example.test."), RecordType::A).await;
    assert!(matches!(&read, Err(ProviderError::Unavailable(m)) if m.contains("timed out")), "{read:?}");
}

#[tokio::test]
async fn throttling_is_reported_with_the_servers_retry_after() {
    let throttled = Reply::With("429 Too Many Requests", "Retry-After: 3\r\n", "slow down");
    let (url, _) = scripted(throttled.clone(), throttled.clone()).await;
    let read = provider(&url).read(&rn("www.example.test."), RecordType::A).await;
    assert_eq!(read, Err(ProviderError::Throttled { retry_after: Some(Duration::from_secs(3)) }));
    let (url, _) = scripted(OK_ZONE, throttled).await;
    let apply = provider(&url).apply(&batch()).await;
    assert_eq!(apply, Err(ProviderError::Throttled { retry_after: Some(Duration::from_secs(3)) }));
}

#[tokio::test]
async fn server_errors_are_unavailable_and_invalid_changes_are_rejected_with_powerdns_text() {
    let locked = Reply::With("500 Internal Server Error", "", r#"{"error": "database is locked"}"#);
    let (url, _) = scripted(OK_ZONE, locked).await;
    let apply = provider(&url).apply(&batch()).await;
    assert!(matches!(&apply, Err(ProviderError::Unavailable(m)) if m.contains("database is locked")), "{apply:?}");

    let invalid = Reply::With("422 Unprocessable Entity", "", r#"{"error": "Record www.example.test./A: bad"}"#);
    let (url, _) = scripted(OK_ZONE, invalid).await;
    let apply = provider(&url).apply(&batch()).await;
    assert!(
        matches!(&apply, Err(ProviderError::Rejected(m)) if m.contains("Record www.example.test./A: bad")),
        "{apply:?}"
    );

    let gateway = Reply::With("504 Gateway Timeout", "", "");
    let (url, _) = scripted(OK_ZONE, gateway).await;
    let apply = provider(&url).apply(&batch()).await;
    assert!(matches!(&apply, Err(ProviderError::Ambiguous(_))), "{apply:?}");

    let unauthorized = Reply::With("401 Unauthorized", "", "Unauthorized");
    let (url, _) = scripted(unauthorized.clone(), unauthorized).await;
    let read = provider(&url).read(&rn("www.example.test."), RecordType::A).await;
    assert!(matches!(&read, Err(ProviderError::Rejected(m)) if m.contains("401") && !m.contains(KEY)), "{read:?}");
}

/// With RFC 2136 writes, `check_zones` reads the server's settings and says so
/// plainly when `dnsupdate` is off, instead of leaving it to the first write.
#[tokio::test]
async fn check_zones_reports_dnsupdate_off_when_writes_use_rfc_2136() {
    // One body serves both GETs: the zone list (entries with a `name`) and the
    // settings (entries with a `name` and a `value`).
    let body = r#"[{"name": "example.test."}, {"name": "dnsupdate", "type": "ConfigSetting", "value": "no"}]"#;
    let (url, _) = scripted(Reply::With("200 OK", "Content-Type: application/json\r\n", body), Reply::Hang).await;
    let key = veer_provider_powerdns::TsigKey::new("k", veer_provider_powerdns::TsigAlgorithm::HmacSha256, vec![1; 32])
        .unwrap();
    let writes = WriteMode::Rfc2136 { server: "127.0.0.1:9".parse().unwrap(), key };
    let config = PowerDnsConfig::new("scripted", url, ApiKey::new(KEY).unwrap(), vec![rn("example.test.")], writes);
    let checked = PowerDnsProvider::new(config).unwrap().check_zones().await;
    assert!(
        matches!(&checked, Err(ProviderError::Rejected(m)) if m.contains("dnsupdate=no") && m.contains("ApiLastWriterWins")),
        "{checked:?}"
    );
}
