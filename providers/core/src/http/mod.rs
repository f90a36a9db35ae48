//! Shared by the HTTP API providers (Cloudflare, Cloud DNS, Azure): one HTTP
//! exchange, classified into the provider error taxonomy, and the credential type.
//!
//! Nothing here retries: ARCHITECTURE.md §6 keeps retries in one layer, which wraps the
//! provider from outside. What this module decides is what a failure *means*:
//! whether the request may have changed state at the provider (then it is
//! `Ambiguous` and the caller re-reads), or is known not to have (`Unavailable`).

use std::error::Error as _;
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::ProviderError;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// A credential. Its `Debug` and `Display` never show the value, so that a
/// config or client printed in a log or an error cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential read by the caller (from a file or the environment).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().trim().to_string())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

/// The HTTP client of an HTTP API provider: `timeout` bounds connecting and
/// each whole request; reqwest's own retries are off, because retries belong to
/// the one retry layer outside the provider (ARCHITECTURE.md §6).
pub fn client(timeout: Duration) -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .retry(reqwest::retry::never())
        .user_agent(concat!("veer/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ProviderError::Rejected(format!("cannot build the HTTP client: {e}")))
}

/// Whether a call whose outcome is unknown may have changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A read: an unknown outcome changed nothing.
    Read,
    /// A write: an unknown outcome may have landed.
    Write,
}

/// Classifies a failure to get a response at all.
pub fn transport_error(error: reqwest::Error, effect: Effect, what: &str) -> ProviderError {
    let error = error.without_url();
    let text = chain(&error);
    if error.is_builder() {
        return ProviderError::Rejected(format!("{what}: cannot build the request: {text}"));
    }
    if error.is_connect() {
        return ProviderError::Unavailable(format!("{what}: cannot connect: {text}"));
    }
    match effect {
        Effect::Read => ProviderError::Unavailable(format!("{what}: {text}")),
        Effect::Write => ProviderError::Ambiguous(format!(
            "{what}: the request was sent but no complete answer came back ({text}); it may have been applied"
        )),
    }
}

/// Classifies an unsuccessful status. `message` is the vendor's error text.
pub fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    effect: Effect,
    what: &str,
) -> ProviderError {
    match status.as_u16() {
        429 => ProviderError::Throttled { retry_after: retry_after(headers) },
        409 | 412 => ProviderError::Conflict(format!("{what}: {message}")),
        500..=599 if effect == Effect::Write => ProviderError::Ambiguous(format!(
            "{what}: HTTP {status} after the write was sent ({message}); it may have been applied"
        )),
        500..=599 => ProviderError::Unavailable(format!("{what}: HTTP {status}: {message}")),
        _ => ProviderError::Rejected(format!("{what}: HTTP {status}: {message}")),
    }
}

/// How long the server asks us to wait: `Retry-After` (seconds or an HTTP date),
/// else the reset time `t` of the IETF-draft `Ratelimit` header that some APIs
/// sends (`"default";r=0;t=30`).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(value) = header("retry-after") {
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        if let Ok(at) = httpdate::parse_http_date(value) {
            return Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO));
        }
    }
    header("ratelimit")
        .and_then(|value| {
            value.split(';').find_map(|part| part.trim().strip_prefix("t=")).and_then(|t| t.trim().parse().ok())
        })
        .map(Duration::from_secs)
}

/// The error and its sources on one line (reqwest's own text hides the cause).
fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Keeps vendor text short and free of the credential, should a server echo it.
pub fn scrub(message: &str, secret: &Secret) -> String {
    let mut text: String = message.chars().take(300).collect();
    if !secret.expose().is_empty() {
        text = text.replace(secret.expose(), "[redacted]");
    }
    text
}

pub mod token;

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let secret = Secret::new("azure-SECRET-123");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
    }

    #[test]
    fn retry_after_reads_seconds_and_falls_back_to_the_ratelimit_reset() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit", HeaderValue::from_static("\"default\";r=0;t=30"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn server_errors_on_writes_are_ambiguous_and_on_reads_unavailable() {
        let h = HeaderMap::new();
        let s = StatusCode::BAD_GATEWAY;
        assert!(matches!(status_error(s, &h, "x", Effect::Write, "w"), ProviderError::Ambiguous(_)));
        assert!(matches!(status_error(s, &h, "x", Effect::Read, "r"), ProviderError::Unavailable(_)));
        assert!(matches!(status_error(StatusCode::FORBIDDEN, &h, "x", Effect::Read, "r"), ProviderError::Rejected(_)));
    }

    #[test]
    fn scrubbing_removes_an_echoed_credential() {
        let secret = Secret::new("tok-42");
        assert_eq!(scrub("bad token tok-42", &secret), "bad token [redacted]");
    }
}
