//! A loopback HTTP server for the fakes: an axum router served by hyper, plus the
//! one fault a router cannot express: closing the connection after the handler
//! ran, without answering (a write that landed whose response was lost).

use std::net::SocketAddr;

use axum::Router;

/// Put into a response's extensions to make the server close the connection
/// instead of sending the response.
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

/// A running server; stops accepting when dropped.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` on a free loopback port.
pub async fn serve(router: Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let router = router.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let router = router.clone();
                    async move {
                        let response =
                            tower::ServiceExt::oneshot(router, request).await.expect("routers are infallible");
                        if response.extensions().get::<DropConnection>().is_some() {
                            Err(std::io::Error::other("fake: connection dropped after the handler ran"))
                        } else {
                            Ok(response)
                        }
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    Server { addr, task }
}
