//! The operator commands' client for a replica's admin API (ARCHITECTURE.md §7): where the
//! server is (`--server`, `VEER_SERVER`), the bearer token (`--token-file`,
//! `VEER_TOKEN`), timeouts, and one clear line with a hint for every way a call
//! can fail. The token lives in a [`Secret`]: it is sent, never printed.

use reqwest::{Method, StatusCode, Url};
use std::path::PathBuf;
use std::time::Duration;
use veer_provider::http::Secret;

/// Where the admin API is and how to authenticate; shared by every operator command.
/// Global, so that commands with subcommands (`veer drill run …`) take them on
/// either side of the subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Admin API of a veer replica.
    #[arg(long, env = "VEER_SERVER", default_value = "http://127.0.0.1:9090", value_name = "URL", global = true)]
    pub server: String,
    /// File holding the admin bearer token (else the variable VEER_TOKEN).
    #[arg(long, env = "VEER_TOKEN_FILE", value_name = "FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// Time allowed for each request (connecting takes at most 3 s of it).
    #[arg(long, default_value = "10s", value_parser = parse_timeout, value_name = "DURATION", global = true)]
    pub timeout: Duration,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    crate::policy::duration::parse(text).and_then(|d| if d.is_zero() { Err("must be above 0".into()) } else { Ok(d) })
}

/// Why a call to the admin API failed; each says what to do in [`ClientError::hint`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--server` is not an http(s) URL.
    #[error("invalid --server `{0}`: expected a URL such as http://127.0.0.1:9090")]
    BadServer(String),
    /// The token file cannot be read.
    #[error("cannot read --token-file {path}: {why}")]
    TokenFile {
        /// The file.
        path: String,
        /// The I/O error.
        why: String,
    },
    /// A mutating command without a token.
    #[error("no admin token: mutating commands need the bearer token")]
    NoToken,
    /// Nothing answered.
    #[error("cannot reach veer at {server} ({why})")]
    Unreachable {
        /// The server URL.
        server: String,
        /// Connection refused, name not resolved, …
        why: String,
    },
    /// No answer in time.
    #[error("veer at {server} did not answer within {after:?}")]
    Timeout {
        /// The server URL.
        server: String,
        /// The timeout.
        after: Duration,
    },
    /// 401: the token is missing or wrong.
    #[error("veer at {server} refused the bearer token (401: {message})")]
    Unauthorized {
        /// The server URL.
        server: String,
        /// The server's words.
        message: String,
    },
    /// Another 4xx: the request itself was refused.
    #[error("veer at {server} refused the request ({status}: {message})")]
    Rejected {
        /// The server URL.
        server: String,
        /// The status.
        status: u16,
        /// The server's words.
        message: String,
    },
    /// 5xx: the server failed.
    #[error("veer at {server} failed ({status}: {message})")]
    Server {
        /// The server URL.
        server: String,
        /// The status.
        status: u16,
        /// The server's words.
        message: String,
    },
    /// The answer is not the JSON expected.
    #[error("veer at {server} sent an unreadable answer: {why}")]
    BadResponse {
        /// The server URL.
        server: String,
        /// What did not parse.
        why: String,
    },
}

impl ClientError {
    /// What the operator can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Self::BadServer(_) => "set --server or VEER_SERVER to the admin.listen of a replica",
            Self::TokenFile { .. } => "point --token-file at the file named by admin.tokenFile",
            Self::NoToken => "set VEER_TOKEN or --token-file to the token in admin.tokenFile",
            Self::Unreachable { .. } => "is `veer run` running? set --server or VEER_SERVER",
            Self::Timeout { .. } => "the replica is slow or hung; retry, raise --timeout, or try another replica",
            Self::Unauthorized { .. } => "check VEER_TOKEN or --token-file against admin.tokenFile of the replica",
            Self::Rejected { status: 403, .. } => "configure admin.tokenFile or admin.tokenEnv on the replica",
            Self::Rejected { .. } => return None,
            Self::Server { status: 503, .. } => "the replica is starting or its store is unreachable; retry shortly",
            Self::Server { .. } => "see the replica's log",
            Self::BadResponse { .. } => "is --server a veer admin API of the same version?",
        })
    }

    /// Prints the one-line error with its hint.
    pub fn report(&self) {
        super::error_line(&self.to_string(), self.hint());
    }
}

/// An answer: its status and JSON body (`null` when empty).
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON.
    pub body: serde_json::Value,
}

/// A connection to one replica's admin API.
#[derive(Debug)]
pub struct AdminClient {
    base: Url,
    token: Option<Secret>,
    http: reqwest::Client,
    timeout: Duration,
}

impl AdminClient {
    /// A client for `args`; reads the token (`--token-file`, else `VEER_TOKEN`) when there is one.
    pub fn new(args: &ServerArgs) -> Result<Self, ClientError> {
        let base = Url::parse(args.server.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| ClientError::BadServer(args.server.clone()))?;
        let token = match &args.token_file {
            Some(path) => Some(Secret::new(std::fs::read_to_string(path).map_err(|e| ClientError::TokenFile {
                path: path.display().to_string(),
                why: e.kind().to_string(),
            })?)),
            None => std::env::var("VEER_TOKEN").ok().map(Secret::new),
        }
        .filter(|t| !t.expose().is_empty());
        crate::health::probe::tls::install_default_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(args.timeout.min(Duration::from_secs(3)))
            .timeout(args.timeout)
            .build()
            .map_err(|e| ClientError::BadServer(format!("{}: {e}", args.server)))?;
        Ok(Self { base, token, http, timeout: args.timeout })
    }

    /// Fails unless a token is configured (before any preview is asked for).
    pub fn require_token(&self) -> Result<(), ClientError> {
        if self.token.is_some() { Ok(()) } else { Err(ClientError::NoToken) }
    }

    /// The server as given, for messages.
    pub fn server(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// `path` (with `query` pairs) under the server's base URL.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        let base_path = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base_path}{path}"));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// `GET path`; any status but 200 is an error.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<serde_json::Value, ClientError> {
        Ok(self.call(Method::GET, self.url(path, query), None, &[]).await?.body)
    }

    /// A request with an optional JSON body. 2xx and the statuses in `accept` are
    /// answers; any other status is an error.
    pub async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        accept: &[u16],
    ) -> Result<Reply, ClientError> {
        let server = self.server();
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.transport(&e))?;
        let text = String::from_utf8_lossy(&bytes);
        if status.is_success() || accept.contains(&status.as_u16()) {
            let body = if text.trim().is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_str(&text)
                    .map_err(|e| ClientError::BadResponse { server: server.clone(), why: e.to_string() })?
            };
            return Ok(Reply { status: status.as_u16(), body });
        }
        let message = server_message(&text);
        Err(match status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized { server, message },
            s if s.is_server_error() => ClientError::Server { server, status: s.as_u16(), message },
            s => ClientError::Rejected { server, status: s.as_u16(), message },
        })
    }

    fn transport(&self, e: &reqwest::Error) -> ClientError {
        let server = self.server();
        if e.is_timeout() {
            return ClientError::Timeout { server, after: self.timeout };
        }
        ClientError::Unreachable { server, why: transport_reason(e) }
    }
}

/// The innermost cause of a transport error, in the words operators know.
fn transport_reason(e: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut last = e.to_string();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                std::io::ErrorKind::ConnectionReset => "connection reset".into(),
                std::io::ErrorKind::TimedOut => "connection timed out".into(),
                _ => io.to_string(),
            };
        }
        last = s.to_string();
        source = s.source();
    }
    last
}

/// The `error` field of a JSON error body, or the text itself (first line, trimmed).
fn server_message(text: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string));
    let message = from_json.unwrap_or_else(|| text.lines().next().unwrap_or("").trim().to_string());
    if message.is_empty() { "no message".into() } else { message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(server: &str) -> ServerArgs {
        ServerArgs { server: server.into(), token_file: None, timeout: Duration::from_secs(2) }
    }

    #[test]
    fn the_token_is_never_in_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cr3t-admin-token\n").unwrap();
        let client = AdminClient::new(&ServerArgs { token_file: Some(file), ..args("http://127.0.0.1:1") }).unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(client.require_token().is_ok());
    }

    #[test]
    fn urls_keep_a_base_path_and_encode_the_query() {
        let client = AdminClient::new(&args("http://127.0.0.1:9090/veer/")).unwrap();
        let url = client.url("/v1/overrides/o-1", &[("reason", "a b&c")]);
        assert_eq!(url.as_str(), "http://127.0.0.1:9090/veer/v1/overrides/o-1?reason=a+b%26c");
        assert!(matches!(AdminClient::new(&args("127.0.0.1:9090")), Err(ClientError::BadServer(_))));
    }

    #[tokio::test]
    async fn a_closed_port_is_reported_as_connection_refused_with_a_hint() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = AdminClient::new(&args(&format!("http://127.0.0.1:{port}"))).unwrap();
        let e = client.get("/v1/status", &[]).await.unwrap_err();
        assert_eq!(e.to_string(), format!("cannot reach veer at http://127.0.0.1:{port} (connection refused)"));
        assert!(e.hint().unwrap().contains("VEER_SERVER"));
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout_with_a_hint() {
        // Accepted by the kernel (backlog), never read or answered.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = format!("http://{}", silent.local_addr().unwrap());
        let client = AdminClient::new(&ServerArgs { timeout: Duration::from_millis(500), ..args(&server) }).unwrap();
        let started = std::time::Instant::now();
        let e = client.get("/v1/status", &[]).await.unwrap_err();
        assert!(matches!(e, ClientError::Timeout { .. }), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "gave up in time: {:?}", started.elapsed());
        assert!(e.to_string().starts_with(&format!("veer at {server} did not answer within")), "{e}");
        assert!(e.hint().unwrap().contains("--timeout"));
    }

    #[test]
    fn server_messages_come_from_the_json_error_field_or_the_first_line() {
        assert_eq!(server_message(r#"{"error":"missing or wrong bearer token"}"#), "missing or wrong bearer token");
        assert_eq!(server_message("store unreachable: x\n"), "store unreachable: x");
        assert_eq!(server_message(""), "no message");
    }
}
