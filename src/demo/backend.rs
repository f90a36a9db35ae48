//! A local HTTP backend for the demo and the failover benchmark: answers `200 ok` until stopped; a stopped
//! backend's port refuses connections, as a dead process's would.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One backend.
pub struct Backend {
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Backend {
    /// Starts serving on `addr`.
    pub async fn start(_id: &str, addr: SocketAddr) -> std::io::Result<Self> {
        let mut backend = Self { addr, task: None };
        backend.start_again().await?;
        Ok(backend)
    }

    /// Serves again after [`Backend::stop`].
    pub async fn start_again(&mut self) -> std::io::Result<()> {
        let listener = TcpListener::bind(self.addr).await?;
        self.task = Some(tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { continue };
                tokio::spawn(async move {
                    let mut buffer = [0u8; 2048];
                    let _ = stream.read(&mut buffer).await;
                    let _ =
                        stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                    let _ = stream.shutdown().await;
                });
            }
        }));
        Ok(())
    }

    /// Stops serving: the listener closes and connections are refused.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}
