//! The `http` and `https` probes: one GET on a new connection to the endpoint's
//! own address (never through DNS), Host and SNI from `check.host`, status in
//! `expectStatus`, and optionally a substring in a bounded prefix of the body.
//!
//! A new connection per probe is deliberate: a pooled connection would keep
//! answering from a process that no longer accepts new clients.

use super::tls::{TlsSetup, handshake_failure};
use super::{HttpCheck, ProbeFailure, tcp};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

/// How much of the body is searched for `body`: health pages are small, and a
/// probe must not download an arbitrary response.
pub const BODY_PREFIX_BYTES_MAX: usize = 64 * 1024;

/// Probes `addr`; with `tls`, over TLS.
pub async fn probe(addr: SocketAddr, check: &HttpCheck, tls: Option<&TlsSetup>) -> Result<(), ProbeFailure> {
    let stream = tcp::connect(addr).await?;
    match tls {
        None => exchange(stream, check).await,
        Some(setup) => {
            let config = setup.config.as_ref().map_err(|e| ProbeFailure::Unusable(e.to_string()))?;
            let connector = TlsConnector::from(config.clone());
            let stream =
                connector.connect(check.server_name.clone(), stream).await.map_err(|e| handshake_failure(&e))?;
            exchange(stream, check).await
        }
    }
}

async fn exchange<S>(io: S, check: &HttpCheck) -> Result<(), ProbeFailure>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(io)).await.map_err(http_failure)?;
    let request = Request::get(check.path.as_str())
        .header(HOST, check.host_header.as_str())
        .header(USER_AGENT, concat!("veer-probe/", env!("CARGO_PKG_VERSION")))
        .header(CONNECTION, "close")
        .body(Empty::new())
        .map_err(|e| ProbeFailure::Unusable(format!("bad request: {e}")))?;
    let work = async move {
        let response = sender.send_request(request).await.map_err(http_failure)?;
        let status = response.status().as_u16();
        if !check.expect_status.contains(&status) {
            return Err(ProbeFailure::Status(status));
        }
        match &check.body {
            None => Ok(()),
            Some(needle) => body_contains(response.into_body(), needle).await,
        }
    };
    // The connection future must be polled for the exchange to progress; it is
    // driven here rather than spawned so that a probe is one task and nothing
    // outlives it. When the connection ends first, the exchange has its answer
    // or its error already queued.
    tokio::pin!(work, connection);
    tokio::select! {
        biased;
        outcome = &mut work => outcome,
        _ = &mut connection => work.await,
    }
}

async fn body_contains(mut body: hyper::body::Incoming, needle: &str) -> Result<(), ProbeFailure> {
    let needle_bytes = needle.as_bytes();
    let mut prefix: Vec<u8> = Vec::new();
    while prefix.len() < BODY_PREFIX_BYTES_MAX {
        let Some(frame) = body.frame().await else { break };
        let frame = frame.map_err(http_failure)?;
        if let Ok(data) = frame.into_data() {
            let take = data.len().min(BODY_PREFIX_BYTES_MAX - prefix.len());
            prefix.extend_from_slice(&data[..take]);
            let from = prefix.len().saturating_sub(take + needle_bytes.len());
            if contains(&prefix[from..], needle_bytes) {
                return Ok(());
            }
        }
    }
    Err(ProbeFailure::BodyLacks(needle.to_string()))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn http_failure(e: hyper::Error) -> ProbeFailure {
    if e.is_incomplete_message() {
        return ProbeFailure::Http("connection closed before a complete response".into());
    }
    if e.is_parse() || e.is_parse_status() {
        return ProbeFailure::Http("malformed response".into());
    }
    let io = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>());
    match io {
        Some(io) => super::io_failure(io),
        None => ProbeFailure::Http(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::contains;

    #[test]
    fn substring_search_finds_a_needle_across_the_whole_prefix() {
        assert!(contains(b"status: ok\n", b"ok"));
        assert!(!contains(b"status: fail\n", b"ok"));
        assert!(contains(b"anything", b""));
    }
}
