//! The vantage exchange (ARCHITECTURE.md §6): every replica registers the URL of its admin
//! API in the store's vantage registry; the leader pulls each registered
//! replica's latest [`VantageReport`] over `GET /v1/vantage` (bearer token) and
//! hands them, with its own in-process report, to the combiner.
//!
//! Freshness across clocks: a pulled report is re-dated on the leader's clock.
//! The serving replica says how old the report was when it served it (its
//! `servedAt − at`, both on its own clock, so skew cancels); the leader dates
//! the report that long before it *sent* the request — the earliest instant
//! the report can have been served. Skew can therefore never make stale data
//! look fresh, and a replica that stops answering simply ages out (the
//! combiner counts a report fresh for 3 probe intervals).

use super::admin::Token;
use crate::config::AdminUrl;
use crate::coord::{self, Coordinator, Key, Space, VantageRecord, Writer};
use crate::health::VantageReport;
use crate::metrics::Metrics;
use crate::time::{Clock, Timestamp};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How often a replica refreshes its registry entry (±20 %).
pub const REGISTER_EVERY: Duration = Duration::from_secs(5);

/// Registry entries last seen longer ago than this (registrant's clock against
/// the leader's) are not pulled: the replica is gone. Generous, so that a
/// replica whose clock lags by less than this is still asked.
pub const REGISTRY_FRESH_FOR: Duration = Duration::from_secs(60);

/// Largest report body accepted (about 150 bytes per endpoint).
const BODY_BYTES_MAX: usize = 32 * 1024 * 1024;

/// The body of `GET /v1/vantage`: the report and when it was served, on the
/// serving replica's clock.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServedReportRef<'a> {
    /// The report.
    #[serde(flatten)]
    pub report: &'a VantageReport,
    /// When it was served (serving replica's clock).
    pub served_at: Timestamp,
}

/// [`ServedReportRef`] as the leader reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServedReport {
    /// The report.
    #[serde(flatten)]
    pub report: VantageReport,
    /// When it was served (serving replica's clock).
    pub served_at: Timestamp,
}

/// One vantage as this replica knows it: what the last round judged (the
/// summary, the `veer_vantages_fresh` gauge) and, without the report, the JSON
/// of `/v1/status` (`vantages`) and the status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VantageStatus {
    /// The vantage (replica) id.
    pub id: String,
    /// Where its admin API is reached, from the registry.
    pub admin_url: Option<String>,
    /// Whether its report is fresh enough to count (3 of the shortest probe interval).
    pub fresh: bool,
    /// Age of its latest report on this replica's clock; `None` before the first one.
    pub report_age_ms: Option<u64>,
    /// The latest report (re-dated on this replica's clock), for per-vantage health;
    /// never in the JSON.
    #[serde(skip)]
    pub report: Option<Arc<VantageReport>>,
}

/// Why a pull failed; each maps to an `outcome` label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The host name did not resolve.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// No TCP connection.
    #[error("connect: {0}")]
    Connect(String),
    /// No complete answer within the per-request timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// 401 or 403: the replicas do not share the admin token.
    #[error("refused with status {0}: the replicas must share one admin token")]
    Unauthorized(u16),
    /// Another HTTP status.
    #[error("status {0}")]
    Status(u16),
    /// The exchange broke off.
    #[error("http: {0}")]
    Http(String),
    /// The body is not a vantage report.
    #[error("invalid report: {0}")]
    Invalid(String),
    /// The URL answered for another vantage (two registry entries share a URL).
    #[error("answered as vantage `{got}`, registered as `{expected}`")]
    Mismatch {
        /// The registered id.
        expected: String,
        /// The id in the report.
        got: String,
    },
}

impl FetchError {
    /// The `outcome` label of `veer_vantage_fetches_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Resolve(_) | Self::Connect(_) => "unreachable",
            Self::Timeout(_) => "timeout",
            Self::Unauthorized(_) => "unauthorized",
            Self::Status(_) | Self::Http(_) => "error",
            Self::Invalid(_) | Self::Mismatch { .. } => "invalid",
        }
    }
}

/// Aborts a spawned task when dropped (a connection to a stopped peer must not
/// outlive its request).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `GET {url}/v1/vantage` with the bearer token, within `timeout` overall.
pub async fn fetch(url: &AdminUrl, token: Option<&Token>, timeout: Duration) -> Result<ServedReport, FetchError> {
    tokio::time::timeout(timeout, fetch_unbounded(url, token)).await.map_err(|_| FetchError::Timeout(timeout))?
}

async fn fetch_unbounded(url: &AdminUrl, token: Option<&Token>) -> Result<ServedReport, FetchError> {
    let target = format!("{}:{}", url.host, url.port);
    let addr = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or(FetchError::Resolve(target))?;
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| FetchError::Connect(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    let _connection = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let mut request = hyper::Request::get(format!("{}/v1/vantage", url.prefix))
        .header(hyper::header::HOST, &url.authority)
        .header(hyper::header::USER_AGENT, concat!("veer/", env!("CARGO_PKG_VERSION")));
    if let Some(token) = token {
        request = request.header(hyper::header::AUTHORIZATION, token.authorization());
    }
    let request = request.body(Empty::<Bytes>::new()).map_err(|e| FetchError::Http(e.to_string()))?;
    let response = sender.send_request(request).await.map_err(|e| FetchError::Http(e.to_string()))?;
    match response.status().as_u16() {
        200 => {}
        code @ (401 | 403) => return Err(FetchError::Unauthorized(code)),
        code => return Err(FetchError::Status(code)),
    }
    let body = Limited::new(response.into_body(), BODY_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| FetchError::Invalid(e.to_string()))
}

/// The report re-dated on the leader's clock: as old, at `sent_at`, as it was
/// when served. Verdict times (`since`) move by the same offset, so intervals
/// between them and `at` are kept.
pub fn redate(served: ServedReport, sent_at: Timestamp) -> VantageReport {
    let ServedReport { mut report, served_at } = served;
    let at = sent_at.sub(served_at.since(report.at));
    let offset = i128::from(at.as_millis()) - i128::from(report.at.as_millis());
    let shift = |t: Timestamp| Timestamp((i128::from(t.as_millis()) + offset).clamp(0, i128::from(u64::MAX)) as u64);
    for endpoint in report.endpoints.values_mut() {
        endpoint.since = shift(endpoint.since);
        endpoint.checked = endpoint.checked.map(shift);
    }
    report.at = at;
    report
}

/// A pulled report and the state of pulling it.
struct Pulled {
    report: Option<Arc<VantageReport>>,
    failing: bool,
}

#[derive(Default)]
struct State {
    /// Other replicas as last read from the registry (leader only).
    registry: BTreeMap<String, VantageRecord>,
    /// Vantages with a `veer_vantage_report_age_seconds` series, to drop the gone ones.
    aged: std::collections::BTreeSet<String>,
    /// Per other replica, the latest pulled report.
    pulled: BTreeMap<String, Pulled>,
}

/// This replica's side of the exchange: its registry entry, and while leading
/// the reports pulled from the others.
pub struct Exchange {
    id: String,
    url: Option<String>,
    token: Option<Token>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    state: Mutex<State>,
}

impl Exchange {
    /// The exchange of replica `id`, reachable at `url` (none: not registered).
    pub fn new(id: String, url: Option<String>, token: Option<Token>, clock: Arc<dyn Clock>, metrics: Metrics) -> Self {
        // A replica never fetches its own report; the zero series keeps the family exported.
        let _ = metrics.vantage_fetches.get_or_create(&vec![("vantage", id.clone()), ("outcome", "ok".into())]);
        Self { id, url, token, clock, metrics, state: Mutex::default() }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The URL this replica registers, if any.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// Writes (or refreshes) this replica's registry entry.
    pub async fn register(&self, coordinator: &dyn Coordinator) -> Result<(), coord::CoordError> {
        let Some(url) = &self.url else { return Ok(()) };
        let record = VantageRecord { admin_url: url.clone(), last_seen: self.clock.now() };
        coord::register_vantage(coordinator, &record).await
    }

    /// Removes this replica's registry entry (clean shutdown), so the leader stops asking.
    pub async fn deregister(&self, coordinator: &dyn Coordinator) -> Result<(), coord::CoordError> {
        if self.url.is_none() {
            return Ok(());
        }
        coordinator.delete(&Key::new(Space::Vantages, &self.id), Writer::Replica).await
    }

    /// Forgets pulled reports (this replica stopped leading: they would only age).
    pub fn forget(&self) {
        let mut state = self.state();
        state.pulled.clear();
        state.registry.clear();
    }

    /// One pull: reads the registry, then asks every other registered replica
    /// for its report, in parallel, each within `timeout`. A replica that does
    /// not answer keeps its last report, which ages until it is no longer fresh.
    pub async fn pull(&self, coordinator: &dyn Coordinator, timeout: Duration) {
        let now = self.clock.now();
        match coord::vantages(coordinator, now.sub(REGISTRY_FRESH_FOR)).await {
            Ok(entries) => {
                let mut state = self.state();
                state.registry = entries.into_iter().filter(|(id, _)| *id != self.id).collect();
                let State { registry, pulled, .. } = &mut *state;
                pulled.retain(|id, _| registry.contains_key(id));
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the vantage registry; pulling the replicas known before"),
        }
        let targets: Vec<(String, String)> =
            self.state().registry.iter().map(|(id, r)| (id.clone(), r.admin_url.clone())).collect();
        let mut fetches = tokio::task::JoinSet::new();
        for (id, url) in targets {
            let token = self.token.clone();
            let sent_at = self.clock.now();
            fetches.spawn(async move {
                let result = match AdminUrl::parse(&url) {
                    Ok(parsed) => fetch(&parsed, token.as_ref(), timeout).await,
                    Err(e) => Err(FetchError::Invalid(format!("registered URL {url}: {e}"))),
                };
                let result = result.and_then(|served| {
                    if served.report.vantage == id {
                        Ok(redate(served, sent_at))
                    } else {
                        Err(FetchError::Mismatch { expected: id.clone(), got: served.report.vantage })
                    }
                });
                (id, url, result)
            });
        }
        while let Some(done) = fetches.join_next().await {
            let Ok((id, url, result)) = done else { continue };
            self.record(&id, &url, result);
        }
    }

    fn record(&self, id: &str, url: &str, result: Result<VantageReport, FetchError>) {
        let outcome = result.as_ref().err().map_or("ok", FetchError::outcome);
        self.metrics
            .vantage_fetches
            .get_or_create(&vec![("vantage", id.to_string()), ("outcome", outcome.into())])
            .inc();
        let mut state = self.state();
        let pulled = state.pulled.entry(id.to_string()).or_insert(Pulled { report: None, failing: false });
        match result {
            Ok(report) => {
                if pulled.failing {
                    tracing::info!(vantage = %id, %url, "vantage report fetched again");
                }
                pulled.failing = false;
                pulled.report = Some(Arc::new(report));
            }
            Err(e) => {
                if !pulled.failing {
                    tracing::warn!(vantage = %id, %url, error = %e, "cannot fetch the vantage report; it goes stale");
                }
                pulled.failing = true;
            }
        }
    }

    /// The other replicas' latest reports, re-dated on this replica's clock.
    pub fn reports(&self) -> Vec<VantageReport> {
        self.state().pulled.values().filter_map(|p| p.report.as_deref().cloned()).collect()
    }

    /// Every vantage this replica knows, itself first then by id, with its
    /// freshness at `now` (`fresh_for`: how long a report counts).
    pub fn statuses(&self, own: &Arc<VantageReport>, now: Timestamp, fresh_for: Duration) -> Vec<VantageStatus> {
        let status = |id: &str, url: Option<&str>, report: Option<&Arc<VantageReport>>| {
            let age = report.map(|r| now.since(r.at));
            VantageStatus {
                id: id.to_string(),
                admin_url: url.map(str::to_string),
                fresh: age.is_some_and(|a| a <= fresh_for),
                report_age_ms: age.map(|a| a.as_millis() as u64),
                report: report.cloned(),
            }
        };
        let mut out = vec![status(&self.id, self.url(), Some(own))];
        let state = self.state();
        for (id, record) in &state.registry {
            let report = state.pulled.get(id).and_then(|p| p.report.as_ref());
            out.push(status(id, Some(&record.admin_url), report));
        }
        out
    }

    /// Sets the exchange gauges from `statuses`; a vantage no longer known loses its series.
    pub fn record_statuses(&self, statuses: &[VantageStatus]) {
        let fresh = statuses.iter().filter(|s| s.fresh).count();
        self.metrics.vantages_fresh.get_or_create(&vec![]).set(fresh as i64);
        let mut aged = std::collections::BTreeSet::new();
        for s in statuses {
            if let Some(age) = s.report_age_ms {
                let labels = vec![("vantage", s.id.clone())];
                self.metrics.vantage_report_age.get_or_create(&labels).set(age as f64 / 1000.0);
                aged.insert(s.id.clone());
            }
        }
        let before = std::mem::replace(&mut self.state().aged, aged.clone());
        for gone in before.difference(&aged) {
            self.metrics.vantage_report_age.remove(&vec![("vantage", gone.clone())]);
        }
    }
}

/// The per-request timeout of a pull: ¾ of the pull period, within [200 ms, 2 s],
/// so that one replica that does not answer never delays the next pull of the others.
pub fn fetch_timeout(period: Duration) -> Duration {
    (period * 3 / 4).clamp(Duration::from_millis(200), Duration::from_secs(2))
}

/// Refreshes this replica's registry entry every [`REGISTER_EVERY`] ± 20 %
/// until aborted. Followers and the leader alike.
pub async fn keep_registered(exchange: Arc<Exchange>, coordinator: Arc<dyn Coordinator>, jitter: coord::Jitter) {
    if exchange.url().is_none() {
        tracing::info!("not registering as a vantage: admin.listen is 0.0.0.0/[::] and admin.advertiseUrl is unset");
        return;
    }
    let mut failing = false;
    loop {
        match exchange.register(coordinator.as_ref()).await {
            Ok(()) if failing => {
                tracing::info!("registered in the vantage registry again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot register in the vantage registry; retrying");
                }
                failing = true;
            }
        }
        tokio::time::sleep(REGISTER_EVERY.mul_f64(0.8 + 0.4 * jitter.unit())).await;
    }
}

/// While this replica leads, pulls every other replica's report every
/// `period` ± 20 % (the shortest probe interval; it follows reloads) until
/// aborted. On losing leadership the pulled reports are forgotten.
pub async fn pull_while_leading(
    exchange: Arc<Exchange>,
    coordinator: Arc<dyn Coordinator>,
    period: tokio::sync::watch::Receiver<Duration>,
    jitter: coord::Jitter,
) {
    let mut pulled = false;
    loop {
        let every = *period.borrow();
        let started = tokio::time::Instant::now();
        if coordinator.leadership().borrow().epoch().is_some() {
            exchange.pull(coordinator.as_ref(), fetch_timeout(every)).await;
            pulled = true;
        } else if pulled {
            exchange.forget();
            pulled = false;
        }
        // From the start of this pull: a slow pull does not stretch the period.
        tokio::time::sleep_until(started + every.mul_f64(0.8 + 0.4 * jitter.unit())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{EndpointKey, EndpointReport, ProbeVerdict};

    fn report(at: u64, since: u64) -> VantageReport {
        let endpoint = EndpointReport {
            verdict: ProbeVerdict::Down,
            since: Timestamp(since),
            last_latency_ms: None,
            last_failure: None,
            checked: None,
        };
        VantageReport {
            vantage: "r1".into(),
            at: Timestamp(at),
            endpoints: [(EndpointKey::new("api", "a"), endpoint)].into(),
        }
    }

    #[test]
    fn a_report_is_redated_by_its_age_on_its_own_clock_whatever_the_skew() {
        // The remote clock runs an hour ahead; the report was 300 ms old when served.
        let hour = 3_600_000;
        let served = ServedReport { report: report(hour + 10_000, hour + 9_000), served_at: Timestamp(hour + 10_300) };
        let local = redate(served, Timestamp(50_000));
        assert_eq!(local.at, Timestamp(49_700), "dated on the leader's clock, never in its future");
        assert_eq!(local.endpoints[&EndpointKey::new("api", "a")].since, Timestamp(48_700), "intervals kept");
        // An hour behind: the same age, the same local date.
        let served = ServedReport { report: report(10_000, 9_000), served_at: Timestamp(10_300) };
        assert_eq!(redate(served, Timestamp(hour + 50_000)).at, Timestamp(hour + 49_700));
    }

    /// An admin API on a loopback port serving `report` (vantage `r1`).
    async fn admin_api(report: VantageReport, token: Option<&str>, loopback: bool) -> (AdminUrl, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = coord::standalone::StandaloneCoordinator::open(dir.path().join("s.json"), "r1").unwrap();
        let (vantage_sender, vantage) = tokio::sync::watch::channel(Arc::new(report));
        let (summary_sender, summary) = tokio::sync::watch::channel(super::super::run::RoundSummary::default());
        let state = super::super::admin::AdminState {
            token: token.map(|t| Token::new(t.into())),
            metrics: Metrics::new(),
            coordinator: Arc::new(coordinator),
            summary,
            vantage,
            identity: "r1".into(),
            loopback,
            drills: crate::drill::DrillsView::empty(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = AdminUrl::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            let _senders = (vantage_sender, summary_sender);
            axum::serve(listener, super::super::admin::router(state)).await.unwrap();
        });
        (url, dir)
    }

    #[tokio::test]
    async fn a_pull_needs_the_shared_token_and_names_each_way_it_fails() {
        let original = report(10_000, 9_000);
        let (url, _dir) = admin_api(original.clone(), Some("s3cret"), false).await;
        let token = Token::new("s3cret".into());
        let served = fetch(&url, Some(&token), Duration::from_secs(5)).await.unwrap();
        assert_eq!(served.report, original);
        let wrong = Token::new("guess".into());
        assert_eq!(fetch(&url, Some(&wrong), Duration::from_secs(5)).await, Err(FetchError::Unauthorized(401)));
        assert_eq!(fetch(&url, None, Duration::from_secs(5)).await, Err(FetchError::Unauthorized(401)));

        let (open, _dir) = admin_api(original.clone(), None, false).await;
        let refused = fetch(&open, None, Duration::from_secs(5)).await;
        assert_eq!(refused, Err(FetchError::Unauthorized(403)), "no token: only a loopback listener serves it");
        let (loopback, _dir) = admin_api(original, None, true).await;
        assert!(fetch(&loopback, None, Duration::from_secs(5)).await.is_ok());

        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_url = AdminUrl::parse(&format!("http://{}", silent.local_addr().unwrap())).unwrap();
        let timeout = Duration::from_millis(300);
        assert_eq!(fetch(&silent_url, None, timeout).await.unwrap_err().outcome(), "timeout");
        drop(silent);
        assert_eq!(fetch(&silent_url, None, timeout).await.unwrap_err().outcome(), "unreachable");
    }

    #[tokio::test]
    async fn the_leader_pulls_every_registered_replica_but_itself_and_silent_ones_go_stale() {
        let clock: Arc<dyn Clock> = Arc::new(crate::time::SystemClock::default());
        let now = clock.now().as_millis();
        let (url, _dir) = admin_api(report(now, now - 1_000), Some("t"), false).await;
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = coord::standalone::StandaloneCoordinator::open(dir.path().join("s.json"), "r0").unwrap();
        let register = |id: &str, url: String| {
            let value = serde_json::to_value(VantageRecord { admin_url: url, last_seen: clock.now() }).unwrap();
            (Key::new(Space::Vantages, id), coord::Entry::new(value))
        };
        for (key, entry) in [
            register("r0", "http://127.0.0.1:1".into()),
            register("r1", url.to_string()),
            register("r9", format!("http://{}", silent.local_addr().unwrap())),
        ] {
            store.put(&key, &entry, Writer::Replica).await.unwrap();
        }
        let metrics = Metrics::new();
        let exchange = Exchange::new(
            "r0".into(),
            Some("http://127.0.0.1:1".into()),
            Some(Token::new("t".into())),
            clock.clone(),
            metrics.clone(),
        );
        let started = std::time::Instant::now();
        exchange.pull(&store, Duration::from_millis(500)).await;
        assert!(started.elapsed() < Duration::from_secs(2), "in parallel, each within its timeout");
        let pulled = exchange.reports();
        assert_eq!(pulled.len(), 1, "r1 only: r0 is this replica, r9 never answers");
        assert!(clock.now().since(pulled[0].at) < Duration::from_secs(2), "re-dated on the local clock");

        let own = Arc::new(VantageReport { vantage: "r0".into(), at: clock.now(), endpoints: BTreeMap::new() });
        let statuses = exchange.statuses(&own, clock.now(), Duration::from_secs(3));
        let seen: Vec<(&str, bool, bool)> =
            statuses.iter().map(|s| (s.id.as_str(), s.fresh, s.report_age_ms.is_some())).collect();
        assert_eq!(seen, [("r0", true, true), ("r1", true, true), ("r9", false, false)]);
        exchange.record_statuses(&statuses);
        let text = metrics.render();
        for line in [
            "veer_vantage_fetches_total{vantage=\"r1\",outcome=\"ok\"} 1",
            "veer_vantage_fetches_total{vantage=\"r9\",outcome=\"timeout\"} 1",
            "veer_vantages_fresh{} 2",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        let later = clock.now().add(Duration::from_secs(10));
        assert!(exchange.statuses(&own, later, Duration::from_secs(3)).iter().skip(1).all(|s| !s.fresh), "it ages");
    }

    #[test]
    fn the_report_travels_as_json_with_its_serving_time() {
        let original = report(10_000, 9_000);
        let json = serde_json::to_string(&ServedReportRef { report: &original, served_at: Timestamp(10_300) }).unwrap();
        assert!(json.contains("\"servedAt\":10300") && json.contains("\"vantage\":\"r1\""), "{json}");
        let back: ServedReport = serde_json::from_str(&json).unwrap();
        assert_eq!((back.report, back.served_at), (original, Timestamp(10_300)));
    }
}
