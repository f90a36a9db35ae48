//! [`LogCapture`]: everything a test binary logs, so that tests can search it
//! for secrets (ARCHITECTURE.md §9).

use std::sync::{Arc, Mutex, OnceLock};

/// Captures every event logged by this test binary, at all levels: tests grep it
/// for secrets (ARCHITECTURE.md §9). One process-wide subscriber, because tracing caches
/// per-callsite interest globally and a thread-scoped one misses events when
/// tests run in parallel; so the text holds every test's logs.
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Installs the capture on the first call; every call shares it.
    pub fn start() -> Self {
        static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
        let buffer = BUFFER
            .get_or_init(|| {
                let buffer = Arc::new(Mutex::new(Vec::new()));
                let shared = buffer.clone();
                let subscriber = tracing_subscriber::fmt()
                    .with_max_level(tracing::Level::TRACE)
                    .with_ansi(false)
                    .with_writer(move || Writer(shared.clone()))
                    .finish();
                tracing::subscriber::set_global_default(subscriber).expect("one global subscriber per test binary");
                buffer
            })
            .clone();
        Self { buffer }
    }

    /// Everything logged so far, by every test of the binary.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}
