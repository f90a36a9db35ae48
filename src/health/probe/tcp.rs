//! The `tcp` probe: the endpoint accepts a connection. Also the connect step of http and https.

use super::{ProbeFailure, io_failure};
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// Opens a connection with Nagle off (a probe sends one small request).
pub async fn connect(addr: SocketAddr) -> Result<TcpStream, ProbeFailure> {
    let stream = TcpStream::connect(addr).await.map_err(|e| io_failure(&e))?;
    // Best effort: failing to set the option does not make the endpoint unhealthy.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Succeeds when the connection is accepted; the socket is closed at once.
pub async fn probe(addr: SocketAddr) -> Result<(), ProbeFailure> {
    connect(addr).await.map(drop)
}
