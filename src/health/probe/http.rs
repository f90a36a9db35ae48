//! The `http` and `https` probes: one GET on a new connection to the endpoint's
//! own address (never through DNS), Host and SNI from `check.host`, status in
//! `expectStatus`, and optionally a substring in a bounded prefix of the body.
//!
//! A new connection per probe is deliberate: a pooled connection would keep
//! answering from a process that no longer accepts new clients.
//!
//! The exchange is a lean HTTP/1.1 client rather than a general one: the
//! request bytes are built once per target, the head is parsed with
//! `httparse`, and the body is decoded only when a substring is expected. This
//! keeps a probe within ARCHITECTURE.md §9's budget of 1.3× a bare connect + GET. The
//! request says `Connection: close`, and after the verdict the socket is read
//! to its end (bounded by the timeout), so that the server closes first and
//! TIME_WAIT sockets pile up on the server side, not on the prober's.

use super::tls::{TlsSetup, handshake_failure};
use super::{HttpCheck, ProbeFailure, io_failure, tcp};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How much of the body is searched for `body`: health pages are small, and a
/// probe must not download an arbitrary response.
pub const BODY_PREFIX_BYTES_MAX: usize = 64 * 1024;

/// Largest response head accepted.
const HEAD_BYTES_MAX: usize = 16 * 1024;

/// Headers parsed at most (more is an error: no health endpoint sends them).
const HEADERS_MAX: usize = 64;

/// Bytes read after the verdict while waiting for the server to close.
const DRAIN_BYTES_MAX: usize = 256 * 1024;

/// The request bytes of a GET for `path` on `host_header`. `None` when either
/// holds characters that cannot appear in a request line or header.
pub fn request_bytes(path: &str, host_header: &str) -> Option<Vec<u8>> {
    let clean = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if !clean(path) || !clean(host_header) {
        return None;
    }
    Some(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: veer-probe/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        )
        .into_bytes(),
    )
}

/// A connection whose verdict is known but whose server has not closed yet.
pub enum Leftover {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS (boxed: the session state is large).
    Tls(Box<TlsStream<TcpStream>>),
}

impl Leftover {
    /// Reads until the server closes (or a byte bound), ignoring errors: the
    /// verdict is already made. The caller bounds it in time.
    pub async fn drain(self) {
        async fn to_end<S: AsyncRead + Unpin>(mut s: S) {
            let mut buf = [0u8; 4096];
            let mut total = 0;
            while total < DRAIN_BYTES_MAX {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => total += n,
                }
            }
        }
        match self {
            Leftover::Plain(s) => to_end(s).await,
            Leftover::Tls(s) => to_end(s).await,
        }
    }
}

/// Probes `addr`; with `tls`, over TLS. Returns the verdict and, when the
/// server has not closed yet, the connection to drain.
pub async fn probe(
    addr: SocketAddr,
    check: &HttpCheck,
    tls: Option<&TlsSetup>,
) -> (Result<(), ProbeFailure>, Option<Leftover>) {
    let mut stream = match tcp::connect(addr).await {
        Ok(s) => s,
        Err(e) => return (Err(e), None),
    };
    match tls {
        None => match exchange(&mut stream, check).await {
            (outcome, true) => (outcome, None),
            (outcome, false) => (outcome, Some(Leftover::Plain(stream))),
        },
        Some(setup) => {
            let config = match setup.config.as_ref() {
                Ok(c) => c.clone(),
                Err(e) => return (Err(ProbeFailure::Unusable(e.to_string())), None),
            };
            let mut stream = match TlsConnector::from(config).connect(check.server_name.clone(), stream).await {
                Ok(s) => s,
                Err(e) => return (Err(handshake_failure(&e)), None),
            };
            match exchange(&mut stream, check).await {
                (outcome, true) => (outcome, None),
                (outcome, false) => (outcome, Some(Leftover::Tls(Box::new(stream)))),
            }
        }
    }
}

/// Sends the request and judges the response. The flag says whether the
/// server already closed (nothing left to drain).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    check: &HttpCheck,
) -> (Result<(), ProbeFailure>, bool) {
    if let Err(e) = io.write_all(&check.request).await {
        return (Err(io_failure(&e)), true);
    }
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let (status, framing, head_len) = loop {
        match read_more(io, &mut buf).await {
            Err(e) => return (Err(io_failure(&e)), true),
            Ok(0) => return (Err(ProbeFailure::Http("connection closed before a complete response".into())), true),
            Ok(_) => {}
        }
        match parse_head(&buf) {
            Ok(Some(head)) => break head,
            Ok(None) if buf.len() >= HEAD_BYTES_MAX => {
                return (Err(ProbeFailure::Http("response head too large".into())), false);
            }
            Ok(None) => {}
            Err(reason) => return (Err(ProbeFailure::Http(reason)), false),
        }
    };
    if !check.expect_status.contains(&status) {
        return (Err(ProbeFailure::Status(status)), false);
    }
    let Some(needle) = check.body.as_deref() else { return (Ok(()), false) };
    buf.drain(..head_len);
    let mut body = Body::new(framing);
    let mut eof = false;
    loop {
        body.feed(&mut buf);
        if body.contains(needle.as_bytes()) {
            return (Ok(()), eof);
        }
        if eof || body.complete() || body.decoded.len() >= BODY_PREFIX_BYTES_MAX {
            return (Err(ProbeFailure::BodyLacks(needle.to_string())), eof);
        }
        match read_more(io, &mut buf).await {
            Ok(0) => eof = true,
            Ok(_) => {}
            // A body cut short by a reset still had its chance to contain the needle.
            Err(_) => eof = true,
        }
    }
}

async fn read_more<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.reserve(2048);
    io.read_buf(buf).await
}

/// How the body's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// `(status, framing, head length)` once the head is complete.
type Head = (u16, Framing, usize);

fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("malformed response ({e})")),
        Ok(httparse::Status::Complete(len)) => {
            let status = response.code.unwrap_or(0);
            let mut framing = Framing::UntilClose;
            for h in response.headers.iter() {
                if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    if String::from_utf8_lossy(h.value).to_ascii_lowercase().contains("chunked") {
                        framing = Framing::Chunked;
                    }
                } else if h.name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked {
                    let n = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok());
                    framing = Framing::Length(n.ok_or("malformed content-length")?);
                }
            }
            Ok(Some((status, framing, len)))
        }
    }
}

/// The body decoded so far (a bounded prefix).
struct Body {
    framing: Framing,
    decoded: Vec<u8>,
    /// Chunked: bytes left in the current chunk, or `None` before a size line.
    chunk_left: Option<usize>,
    finished: bool,
    /// Where the previous needle search may resume.
    searched: usize,
}

impl Body {
    fn new(framing: Framing) -> Self {
        Self { framing, decoded: Vec::new(), chunk_left: None, finished: false, searched: 0 }
    }

    fn complete(&self) -> bool {
        self.finished || matches!(self.framing, Framing::Length(n) if self.decoded.len() >= n)
    }

    /// Moves what can be decoded from `raw` into `decoded`; undecodable tails
    /// (a partial size line) stay in `raw` for the next read.
    fn feed(&mut self, raw: &mut Vec<u8>) {
        let room = BODY_PREFIX_BYTES_MAX.saturating_sub(self.decoded.len());
        match self.framing {
            Framing::UntilClose => {
                let take = raw.len().min(room);
                self.decoded.extend_from_slice(&raw[..take]);
                raw.clear();
            }
            Framing::Length(n) => {
                let take = raw.len().min(room).min(n.saturating_sub(self.decoded.len()));
                self.decoded.extend_from_slice(&raw[..take]);
                raw.clear();
            }
            Framing::Chunked => self.feed_chunked(raw),
        }
    }

    fn feed_chunked(&mut self, raw: &mut Vec<u8>) {
        let mut at = 0;
        while !self.finished && at < raw.len() && self.decoded.len() < BODY_PREFIX_BYTES_MAX {
            match self.chunk_left {
                Some(0) => {
                    // The CRLF after a chunk's data.
                    if raw.len() - at < 2 {
                        break;
                    }
                    at += 2;
                    self.chunk_left = None;
                }
                Some(left) => {
                    let take = left.min(raw.len() - at).min(BODY_PREFIX_BYTES_MAX - self.decoded.len());
                    self.decoded.extend_from_slice(&raw[at..at + take]);
                    at += take;
                    self.chunk_left = Some(left - take);
                }
                None => {
                    let Some(end) = raw[at..].windows(2).position(|w| w == b"\r\n") else { break };
                    let line = String::from_utf8_lossy(&raw[at..at + end]);
                    let size = line.split(';').next().and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
                    at += end + 2;
                    match size {
                        Some(0) | None => self.finished = true,
                        Some(n) => self.chunk_left = Some(n),
                    }
                }
            }
        }
        raw.drain(..at);
    }

    fn contains(&mut self, needle: &[u8]) -> bool {
        if needle.is_empty() {
            return true;
        }
        let from = self.searched.saturating_sub(needle.len() - 1);
        let found = self.decoded[from..].windows(needle.len()).any(|w| w == needle);
        self.searched = self.decoded.len();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(framing: Framing, pieces: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut body = Body::new(framing);
        let mut raw = Vec::new();
        for piece in pieces {
            raw.extend_from_slice(piece);
            body.feed(&mut raw);
        }
        (body.decoded.clone(), body.complete())
    }

    #[test]
    fn chunked_bodies_decode_across_arbitrary_read_boundaries() {
        let wire: &[u8] = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n";
        for split in 1..wire.len() {
            let (decoded, complete) = decode(Framing::Chunked, &[&wire[..split], &wire[split..]]);
            assert_eq!(decoded, b"Wikipedia in \r\n\r\nchunks.", "split at {split}");
            assert!(complete);
        }
    }

    #[test]
    fn a_content_length_body_is_complete_at_its_length() {
        let (decoded, complete) = decode(Framing::Length(5), &[b"he", b"llo and more"]);
        assert_eq!(decoded, b"hello");
        assert!(complete);
    }

    #[test]
    fn a_needle_split_between_reads_is_found() {
        let mut body = Body::new(Framing::UntilClose);
        let mut raw = b"status: o".to_vec();
        body.feed(&mut raw);
        assert!(!body.contains(b"ok"));
        raw.extend_from_slice(b"k");
        body.feed(&mut raw);
        assert!(body.contains(b"ok"));
    }

    #[test]
    fn the_head_gives_status_and_framing() {
        let head = b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(head), Ok(Some((503, Framing::Chunked, head.len()))));
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            Ok(Some((200, Framing::Length(2), 38)))
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nConten"), Ok(None));
        assert!(parse_head(b"\x16\x03\x01garbage\r\n\r\n").is_err());
    }

    #[test]
    fn requests_with_line_breaks_in_path_or_host_are_refused() {
        assert!(request_bytes("/healthz", "api.example.com").is_some());
        assert!(request_bytes("/a b", "api.example.com").is_none());
        assert!(request_bytes("/", "api\r\nX-Evil: 1").is_none());
    }
}
