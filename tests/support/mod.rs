//! Real servers on 127.0.0.1 free ports for the health tests: an HTTP/1.1
//! responder with a script (status, body, delay) that records the Host and SNI
//! it saw, the same over TLS with a test CA, a listener that never answers, a
//! refused port, and a UDP DNS responder built on hickory-proto.

#![allow(dead_code)]

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use veer::policy::model::FailoverPolicy;
use veer::policy::source;

pub mod replica;

/// What the HTTP responder answers.
#[derive(Debug, Clone)]
pub struct Script {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    /// Send the body with chunked transfer encoding, in chunks of 3 bytes.
    pub chunked: bool,
}

impl Script {
    pub fn ok(body: &str) -> Self {
        Self { status: 200, body: body.into(), delay: Duration::ZERO, chunked: false }
    }
    pub fn status(status: u16) -> Self {
        Self { status, body: String::new(), delay: Duration::ZERO, chunked: false }
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub host: Option<String>,
    pub sni: Option<String>,
    pub path: String,
}

/// An HTTP (or HTTPS) server on a free loopback port; stops when dropped.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub script: Arc<Mutex<Script>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpServer {
    pub async fn start(script: Script) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), script, None).await
    }

    pub async fn start_tls(script: Script, config: Arc<rustls::ServerConfig>) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), script, Some(config)).await
    }

    pub async fn start_on(addr: SocketAddr, script: Script, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(script));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (script.clone(), seen.clone());
        let task = tokio::spawn(async move {
            let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (script, seen, acceptor) = (s.clone(), v.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        None => serve(stream, None, script, seen).await,
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(stream).await else { return };
                            let sni = tls.get_ref().1.server_name().map(String::from);
                            serve(tls, sni, script, seen).await
                        }
                    }
                });
            }
        });
        Self { addr, script, seen, task }
    }

    pub fn set(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    sni: Option<String>,
    script: Arc<Mutex<Script>>,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if request.first() == Some(&0x16) {
            // A TLS ClientHello on a plain port: answer as web servers do.
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n").await;
            return;
        }
    }
    let text = String::from_utf8_lossy(&request);
    let path = text.split_whitespace().nth(1).unwrap_or_default().to_string();
    let host = text
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("host")).map(|(_, v)| v.trim().into()));
    seen.lock().unwrap().push(Seen { host, sni, path });
    let script = script.lock().unwrap().clone();
    tokio::time::sleep(script.delay).await;
    let response = if script.chunked {
        let chunks: String = script
            .body
            .as_bytes()
            .chunks(3)
            .map(|c| format!("{:x}\r\n{}\r\n", c.len(), String::from_utf8_lossy(c)))
            .collect();
        format!(
            "HTTP/1.1 {} Scripted\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunks}0\r\n\r\n",
            script.status
        )
    } else {
        format!(
            "HTTP/1.1 {} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            script.status,
            script.body.len(),
            script.body
        )
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A listener that accepts connections and never says anything.
pub struct SilentListener {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SilentListener {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Self { addr, task }
    }
}

/// A loopback port with nothing listening (bound, then closed).
pub fn refused_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A CA that signs server certificates for the tests.
pub struct TestCa {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pub pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self { params, key, pem }
    }

    /// Writes the CA certificate as a PEM bundle into `dir`.
    pub fn write_bundle(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.pem).unwrap();
        path
    }

    /// A rustls server config with a certificate for `names`, signed by this CA.
    pub fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }
}

/// A UDP DNS responder: A records for the names in `zone`; names mapped to
/// `None` exist without an A record (NOERROR, no answer); other names get
/// NXDOMAIN. With `silent`, it reads queries and never answers.
pub struct DnsServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DnsServer {
    pub async fn start(zone: BTreeMap<&str, Option<Ipv4Addr>>, silent: bool) -> Self {
        let zone: BTreeMap<Name, Option<Ipv4Addr>> =
            zone.into_iter().map(|(n, ip)| (Name::from_ascii(n).unwrap(), ip)).collect();
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((len, from)) = socket.recv_from(&mut buf).await else { continue };
                if silent {
                    continue;
                }
                let Ok(request) = Message::from_vec(&buf[..len]) else { continue };
                let mut response = Message::new(request.metadata.id, MessageType::Response, request.metadata.op_code);
                response.metadata.authoritative = true;
                response.metadata.recursion_desired = request.metadata.recursion_desired;
                for query in &request.queries {
                    response.add_query(query.clone());
                    match zone.get(query.name()) {
                        None => response.metadata.response_code = ResponseCode::NXDomain,
                        Some(Some(ip)) if query.query_type() == RecordType::A => {
                            response.add_answer(Record::from_rdata(query.name().clone(), 30, RData::from(*ip)));
                        }
                        Some(_) => {}
                    }
                }
                let _ = socket.send_to(&response.to_vec().unwrap(), from).await;
            }
        });
        Self { addr, task }
    }
}

/// A policy named `name` with the given `healthCheck` and endpoints (flow YAML).
pub fn policy(name: &str, health_check: &str, endpoints: &[&str]) -> FailoverPolicy {
    let text = policy_yaml(name, health_check, endpoints);
    let docs = source::split_documents(&text);
    source::parse_document(Path::new("test.yaml"), &docs[0]).unwrap_or_else(|d| panic!("{d}\n{text}"))
}

/// The YAML text of [`policy`].
pub fn policy_yaml(name: &str, health_check: &str, endpoints: &[&str]) -> String {
    let endpoints: String = endpoints.iter().map(|e| format!("        - {e}\n")).collect();
    format!(
        "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: {name} }}\nspec:\n  record: {{ name: {name}.example.test., type: A }}\n  publishTo: [local]\n  routing: weighted\n  pools:\n    - name: main\n      endpoints:\n{endpoints}  healthCheck: {health_check}\n"
    )
}
