//! The `tcp` probe: the endpoint accepts a connection. Also the connect step of http and https.

use super::{ProbeFailure, io_failure};
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// Opens a connection. Nagle stays on: a probe writes its request in one
/// call, and skipping the extra system call matters at 10 000 probes/s.
pub async fn connect(addr: SocketAddr) -> Result<TcpStream, ProbeFailure> {
    TcpStream::connect(addr).await.map_err(|e| io_failure(&e))
}

/// Succeeds when the connection is accepted; the socket is closed at once.
pub async fn probe(addr: SocketAddr) -> Result<(), ProbeFailure> {
    connect(addr).await.map(drop)
}
