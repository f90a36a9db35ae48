//! The thin PowerDNS HTTP API client: the few calls veer makes, and the mapping of
//! every failure onto [`ProviderError`] as the [`veer_provider::Provider`] trait
//! documents it.

use crate::ApiKey;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use veer_provider::{ProviderError, RecordName};

/// Longest piece of a server's error text quoted in an error; a misbehaving
/// proxy can answer with a whole HTML page.
const ERROR_TEXT_MAX: usize = 300;

/// Whether a call can have changed anything at the server: decides whether a
/// failure after sending is [`ProviderError::Ambiguous`] or harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    Read,
    Write,
}

/// One RRset as the API returns it (unknown fields are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct ApiRrset {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    #[serde(default)]
    pub ttl: u32,
    #[serde(default)]
    pub records: Vec<ApiRecord>,
}

/// One record of an RRset.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) struct ApiRecord {
    pub content: String,
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Deserialize)]
struct ApiZone {
    #[serde(default)]
    rrsets: Vec<ApiRrset>,
}

#[derive(Deserialize)]
struct ZoneSummary {
    name: String,
}

#[derive(Deserialize)]
struct ConfigSetting {
    name: String,
    #[serde(default)]
    value: serde_json::Value,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    metadata: Vec<String>,
}

/// One entry of a PATCH: replace or delete an RRset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct RrsetPatch {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub ttl: u32,
    pub changetype: &'static str,
    pub records: Vec<ApiRecord>,
}

#[derive(Serialize)]
struct PatchBody<'a> {
    rrsets: &'a [RrsetPatch],
}

/// The HTTP API of one PowerDNS server (one `server_id`).
pub(crate) struct ApiClient {
    http: reqwest::Client,
    base: Url,
    server_id: String,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient").field("base", &self.base.as_str()).field("server_id", &self.server_id).finish()
    }
}

impl ApiClient {
    /// A client that sends `key` as `X-API-Key`, marked sensitive so that no
    /// layer below prints it.
    pub(crate) fn new(
        base: Url,
        server_id: String,
        key: &ApiKey,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, String> {
        let mut value = HeaderValue::from_bytes(key.expose()).map_err(|_| "the API key is not a valid header value")?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("X-API-Key", value);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            // PowerDNS closes every connection after one response ("Connection:
            // close"); a pooled connection the server already closed would turn a
            // harmless write into an ambiguous one.
            .pool_max_idle_per_host(0)
            // The API is a control-plane endpoint: a proxy picked up from the
            // environment must not see the API key.
            .no_proxy()
            // A redirect could carry the key to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { http, base, server_id })
    }

    /// `{base}/api/v1/servers/{server_id}/` followed by `segments`, each
    /// percent-encoded as one path segment.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().expect("the base URL was checked to be http(s)");
            path.pop_if_empty().extend(["api", "v1", "servers", &self.server_id]).extend(segments);
        }
        url
    }

    /// Sends one request and returns the body of a 2xx answer.
    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<String>,
        kind: CallKind,
        what: &str,
    ) -> Result<(StatusCode, String), ProviderError> {
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        let response = request.send().await.map_err(|e| send_error(&e, kind, what))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = match response.text().await {
            Ok(text) => text,
            // The server said yes to a write; only its (unused) body was lost.
            Err(_) if status.is_success() && kind == CallKind::Write => String::new(),
            Err(e) => return Err(send_error(&e, kind, what)),
        };
        if status.is_success() { Ok((status, text)) } else { Err(status_error(status, &headers, &text, kind, what)) }
    }

    /// Every RRset of `zone`, in one consistent read.
    pub(crate) async fn zone_rrsets(&self, zone: &RecordName) -> Result<Vec<ApiRrset>, ProviderError> {
        let what = format!("reading zone {zone}");
        let url = self.url(&["zones", zone.as_str()]);
        let (status, text) =
            self.call(Method::GET, url, None, CallKind::Read, &what).await.map_err(|e| self.zone_not_found(e, zone))?;
        let parsed: ApiZone = serde_json::from_str(&text).map_err(|e| {
            ProviderError::Unavailable(format!(
                "{what}: PowerDNS answered {status} with a body that is not a zone: {e}"
            ))
        })?;
        Ok(parsed.rrsets)
    }

    /// Whether PowerDNS holds `zone` (the zone list filtered by name, which does
    /// not transfer the zone's records).
    pub(crate) async fn zone_exists(&self, zone: &RecordName) -> Result<bool, ProviderError> {
        let what = format!("looking up zone {zone}");
        let mut url = self.url(&["zones"]);
        url.query_pairs_mut().append_pair("zone", zone.as_str());
        let (_, text) = self.call(Method::GET, url, None, CallKind::Read, &what).await?;
        let zones: Vec<ZoneSummary> = serde_json::from_str(&text)
            .map_err(|e| ProviderError::Unavailable(format!("{what}: the zone list does not parse: {e}")))?;
        Ok(zones.iter().any(|z| z.name.eq_ignore_ascii_case(zone.as_str())))
    }

    /// Replaces the given RRsets of `zone` in one PATCH (one transaction at the
    /// server: all or nothing, but unconditional).
    pub(crate) async fn patch_rrsets(&self, zone: &RecordName, rrsets: &[RrsetPatch]) -> Result<(), ProviderError> {
        let what = format!("patching zone {zone}");
        let url = self.url(&["zones", zone.as_str()]);
        let body = serde_json::to_string(&PatchBody { rrsets })
            .map_err(|e| ProviderError::Rejected(format!("{what}: cannot encode the change: {e}")))?;
        self.call(Method::PATCH, url, Some(body), CallKind::Write, &what)
            .await
            .map_err(|e| self.zone_not_found(e, zone))?;
        Ok(())
    }

    /// A server setting (`GET …/config`), `None` when the server does not list it.
    pub(crate) async fn setting(&self, name: &str) -> Result<Option<String>, ProviderError> {
        let what = "reading the server's settings";
        let (_, text) = self.call(Method::GET, self.url(&["config"]), None, CallKind::Read, what).await?;
        let settings: Vec<ConfigSetting> = serde_json::from_str(&text)
            .map_err(|e| ProviderError::Unavailable(format!("{what}: the settings do not parse: {e}")))?;
        Ok(settings.into_iter().find(|s| s.name == name).map(|s| match s.value {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        }))
    }

    /// The values of one metadata kind of `zone`.
    pub(crate) async fn zone_metadata(&self, zone: &RecordName, kind: &str) -> Result<Vec<String>, ProviderError> {
        let what = format!("reading metadata {kind} of zone {zone}");
        let url = self.url(&["zones", zone.as_str(), "metadata", kind]);
        let (_, text) = self.call(Method::GET, url, None, CallKind::Read, &what).await?;
        let parsed: Metadata = serde_json::from_str(&text)
            .map_err(|e| ProviderError::Unavailable(format!("{what}: the metadata does not parse: {e}")))?;
        Ok(parsed.metadata)
    }

    /// PowerDNS answers 404 (plain "Not Found") for a zone it does not hold and
    /// for an unknown server id: say which, in the caller's terms.
    fn zone_not_found(&self, error: ProviderError, zone: &RecordName) -> ProviderError {
        match error {
            ProviderError::Rejected(m) if m.contains("404") => ProviderError::Rejected(format!(
                "{m}: PowerDNS at {} (server id {:?}) does not serve zone {zone}",
                self.base, self.server_id
            )),
            other => other,
        }
    }
}

/// A request that got no HTTP answer. A refused or timed-out connection cannot
/// have written anything; anything later may have, when the call writes.
pub(crate) fn send_error(e: &reqwest::Error, kind: CallKind, what: &str) -> ProviderError {
    if e.is_connect() {
        return ProviderError::Unavailable(format!("{what}: cannot connect to the PowerDNS API: {e}"));
    }
    let cause = if e.is_timeout() { "timed out" } else { "failed" };
    match kind {
        CallKind::Read => ProviderError::Unavailable(format!("{what}: the request {cause}: {e}")),
        CallKind::Write => ProviderError::Ambiguous(format!(
            "{what}: the request {cause} after it was sent, so the change may have been applied: {e}"
        )),
    }
}

/// Maps a non-2xx answer. The server's own `error` text is quoted because it
/// says what is wrong (a bad record, an unknown zone).
pub(crate) fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    kind: CallKind,
    what: &str,
) -> ProviderError {
    let text = error_text(body);
    let said = if text.is_empty() { String::new() } else { format!(": {text}") };
    match status.as_u16() {
        401 | 403 => ProviderError::Rejected(format!(
            "{what}: PowerDNS answered {status}{said} (check the API key and webserver-allow-from)"
        )),
        429 => ProviderError::Throttled { retry_after: retry_after(headers) },
        // A gateway timed out waiting for PowerDNS: the write may have reached it.
        504 if kind == CallKind::Write => {
            ProviderError::Ambiguous(format!("{what}: {status}{said}; the change may have been applied"))
        }
        500..=599 => ProviderError::Unavailable(format!("{what}: PowerDNS answered {status}{said}")),
        _ => ProviderError::Rejected(format!("{what}: PowerDNS answered {status}{said}")),
    }
}

/// PowerDNS's `{"error": "…"}`, or else the start of the body as text.
fn error_text(body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let text = serde_json::from_str::<ErrorBody>(body).map(|b| b.error).unwrap_or_else(|_| body.trim().to_string());
    match text.char_indices().nth(ERROR_TEXT_MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by PowerDNS or the
/// proxies in front of it that throttle).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, body: &str, kind: CallKind) -> ProviderError {
        status_error(StatusCode::from_u16(code).unwrap(), &HeaderMap::new(), body, kind, "doing x")
    }

    #[test]
    fn statuses_are_classified_as_the_trait_documents() {
        let unprocessable = status(422, r#"{"error": "Record x./A 'nope': Parsing record content"}"#, CallKind::Write);
        assert_eq!(
            unprocessable,
            ProviderError::Rejected(
                "doing x: PowerDNS answered 422 Unprocessable Entity: Record x./A 'nope': Parsing record content"
                    .into()
            )
        );
        assert!(
            matches!(status(401, "Unauthorized", CallKind::Read), ProviderError::Rejected(m) if m.contains("401 Unauthorized: Unauthorized"))
        );
        assert!(matches!(status(403, "", CallKind::Write), ProviderError::Rejected(_)));
        assert!(
            matches!(status(500, "{\"error\": \"db locked\"}", CallKind::Write), ProviderError::Unavailable(m) if m.contains("db locked"))
        );
        assert!(matches!(status(503, "", CallKind::Read), ProviderError::Unavailable(_)));
        assert!(matches!(status(504, "", CallKind::Write), ProviderError::Ambiguous(_)));
        assert!(matches!(status(504, "", CallKind::Read), ProviderError::Unavailable(_)));
        assert_eq!(status(429, "", CallKind::Write), ProviderError::Throttled { retry_after: None });
    }

    #[test]
    fn retry_after_seconds_are_passed_on() {
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("7"));
        let e = status_error(StatusCode::TOO_MANY_REQUESTS, &headers, "", CallKind::Read, "x");
        assert_eq!(e, ProviderError::Throttled { retry_after: Some(Duration::from_secs(7)) });
    }

    #[test]
    fn paths_keep_a_base_prefix_and_the_zone_ids_trailing_dot() {
        let key = ApiKey::new("k").unwrap();
        let base = Url::parse("https://proxy.example/pdns/").unwrap();
        let client =
            ApiClient::new(base, "localhost".into(), &key, Duration::from_secs(1), Duration::from_secs(1)).unwrap();
        assert_eq!(
            client.url(&["zones", "example.test."]).as_str(),
            "https://proxy.example/pdns/api/v1/servers/localhost/zones/example.test."
        );
    }

    #[test]
    fn long_error_pages_are_cut() {
        let page = "x".repeat(5000);
        let ProviderError::Rejected(m) = status(400, &page, CallKind::Read) else { panic!() };
        assert!(m.len() < 400, "{}", m.len());
    }
}
