//! `GET /metrics` as a stream: the exposition is encoded on a blocking thread in chunks
//! of [`CHUNK`] bytes that go out as they are made, instead of as one string.
//!
//! Why: with 10 000 endpoints the exposition is tens of megabytes (a latency histogram
//! per endpoint), and a whole-string rendering doubled the process's memory for the
//! length of every scrape (ARCHITECTURE.md §9 bounds resident memory). Chunks queue without bound,
//! so that the encoder never waits for the client while it holds the metric families'
//! locks (a probe creating a series would wait behind it): a slow client costs at most
//! one exposition in memory, as a whole-string rendering did, never a stalled controller.

use crate::metrics::Metrics;
use bytes::Bytes;
use http_body::{Body, Frame};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Bytes per chunk: large enough that per-chunk costs vanish, small enough that a
/// client reading at loopback speed keeps only a few in flight.
pub const CHUNK: usize = 64 * 1024;

/// The response body of one scrape. Dropping it (the client went away) stops the encoder.
pub struct Exposition {
    chunks: mpsc::UnboundedReceiver<Bytes>,
}

impl Exposition {
    /// Starts encoding `metrics` on the blocking pool.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(metrics: &Metrics) -> Self {
        let (sender, chunks) = mpsc::unbounded_channel();
        let metrics = metrics.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Chunks { chunk: String::with_capacity(CHUNK), sender };
            // An error means the client went away: nothing to report.
            let _ = metrics.render_into(&mut out).and_then(|()| out.flush());
        });
        Self { chunks }
    }
}

impl Body for Exposition {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut().chunks.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// Collects the encoder's output into chunks that never outgrow their first allocation.
struct Chunks {
    chunk: String,
    sender: mpsc::UnboundedSender<Bytes>,
}

impl Chunks {
    /// Sends the chunk so far; fails once the body is dropped.
    fn flush(&mut self) -> std::fmt::Result {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.chunk, String::with_capacity(CHUNK));
        self.sender.send(Bytes::from(full)).map_err(|_| std::fmt::Error)
    }
}

impl std::fmt::Write for Chunks {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.chunk.len() + s.len() > self.chunk.capacity() {
            self.flush()?;
        }
        self.chunk.push_str(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn metrics_with_series(n: usize) -> Metrics {
        let metrics = Metrics::new();
        for i in 0..n {
            let labels =
                vec![("record", "r.example.test.".into()), ("endpoint", format!("e{i}")), ("vantage", "v".into())];
            metrics.probe_duration.get_or_create(&labels).observe(0.003 * i as f64);
        }
        metrics
    }

    #[tokio::test]
    async fn the_stream_is_the_rendered_text_in_bounded_chunks() {
        let metrics = metrics_with_series(2_000);
        let mut body = Exposition::start(&metrics);
        let mut text = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            assert!(data.len() <= CHUNK, "a chunk of {} bytes", data.len());
            text.extend_from_slice(&data);
        }
        let rendered = metrics.render();
        assert!(rendered.len() > 4 * CHUNK, "the test needs several chunks: {} bytes", rendered.len());
        assert_eq!(String::from_utf8(text).unwrap(), rendered);
    }
}
