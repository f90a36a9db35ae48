//! The admin HTTP listener of a replica (ARCHITECTURE.md §7), read-only part:
//! `GET /healthz` (the process is alive), `GET /readyz` (policies loaded and the
//! store reachable), `GET /metrics` (Prometheus text), `GET /v1/status`
//! (the status report of [`super::status`], as JSON), `GET /` (the same as an
//! HTML page for people, [`super::status_page`]),
//! `GET /v1/plan` (the last plan) and `GET /v1/history[?record=NAME]` (the
//! applied plans kept in the store, newest last, then the drill runs).
//! Overrides: `GET /v1/overrides`, and with the bearer token
//! `POST /v1/overrides[?dryRun=true]` (impact preview; a guard refusal is 409
//! unless forced) and `DELETE /v1/overrides/{ids}[?dryRun=true&author=&reason=]`
//! (several ids joined by `,`; the dry run previews the removal). Overrides go to
//! the store, so a follower accepts them too (I8); each creation and deletion is
//! appended to the audit trail, read with `GET /v1/history/overrides` (newest
//! first). Without a configured token, mutations are off.
//! Drills: `/v1/drills…`, served by [`crate::drill::api`].
//! `GET /v1/vantage`: this replica's latest vantage report, which the leader
//! pulls (see [`super::vantages`]); it needs the bearer token when one is
//! configured, and without one it is served only on a loopback listener.

use super::run::RoundSummary;
use crate::coord::{Coordinator, Key, Space};
use crate::health::VantageReport;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// The bearer token for mutating calls. Never printed.
#[derive(Clone)]
pub struct Token(Arc<String>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from its text (trimmed by the caller).
    pub(crate) fn new(text: String) -> Self {
        Self(Arc::new(text))
    }

    /// Compares in constant time (for equal lengths), so response timing does not
    /// reveal how much of a guess was right.
    fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The `Authorization` header value for requests to other replicas, marked
    /// sensitive so that HTTP tooling never prints it.
    pub(crate) fn authorization(&self) -> axum::http::HeaderValue {
        let mut value = axum::http::HeaderValue::try_from(format!("Bearer {}", self.0))
            .unwrap_or_else(|_| axum::http::HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }
}

/// Reads the admin token named by `admin.tokenFile` or `admin.tokenEnv`, if any.
pub fn load_token(config: &crate::config::LoadedConfig) -> anyhow::Result<Option<Token>> {
    let admin = &config.config.admin;
    let text = if let Some(file) = &admin.token_file {
        let path = config.base_dir().join(&file.value);
        Some(
            std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read admin.tokenFile {}: {e}", path.display()))?,
        )
    } else if let Some(var) = &admin.token_env {
        Some(std::env::var(&var.value).map_err(|_| anyhow::anyhow!("admin.tokenEnv `{}` is not set", var.value))?)
    } else {
        None
    };
    Ok(text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).map(Token::new))
}

/// What the handlers read: snapshots only, never the controller's internals.
#[derive(Clone)]
pub struct AdminState {
    /// The bearer token for mutations; `None` disables them.
    pub token: Option<Token>,
    /// Metrics to render.
    pub metrics: Metrics,
    /// The coordinator (readiness probes the store; status shows leadership).
    pub coordinator: Arc<dyn Coordinator>,
    /// The last round.
    pub summary: watch::Receiver<RoundSummary>,
    /// This replica's vantage report.
    pub vantage: watch::Receiver<Arc<VantageReport>>,
    /// This replica's id.
    pub identity: String,
    /// The drills in force (`/v1/drills…`).
    pub drills: crate::drill::DrillsView,
    /// Whether the listener is a loopback address: only then is `GET /v1/vantage`
    /// served without a configured token.
    pub loopback: bool,
}

/// The router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/vantage", get(vantage))
        .route("/v1/plan", get(plan))
        .route("/v1/history", get(history))
        .route("/v1/history/overrides", get(override_history))
        .route("/v1/overrides", get(list_overrides).post(create_override))
        .route("/v1/overrides/{id}", axum::routing::delete(delete_override))
        .route("/v1/drills", get(crate::drill::api::list))
        .route("/v1/drills/{name}/run", axum::routing::post(crate::drill::api::run))
        .route("/v1/drills/{name}/abort", axum::routing::post(crate::drill::api::abort))
        .route("/v1/drills/{name}/report", get(crate::drill::api::report))
        .with_state(state)
}

/// Binds `listen` and serves until `shutdown` completes.
pub async fn serve(
    listen: SocketAddr,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "admin API listening");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await {
            tracing::warn!(error = %e, "admin API stopped");
        }
    }))
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match state.coordinator.get(&Key::new(Space::Planner, "state")).await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store unreachable: {e}\n")).into_response(),
    }
}

/// The content type of `/metrics`: the OpenMetrics text format it is written in.
pub const EXPOSITION_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn metrics(State(state): State<AdminState>) -> Response {
    let body = axum::body::Body::new(super::exposition::Exposition::start(&state.metrics));
    // prometheus-client writes the OpenMetrics text format (`# EOF`, `_total`
    // counters): say so, or Prometheus parses it as its own format and loses TYPE/HELP.
    ([(header::CONTENT_TYPE, EXPOSITION_CONTENT_TYPE)], body).into_response()
}

async fn plan(State(state): State<AdminState>) -> Response {
    match state.summary.borrow().plan.clone() {
        Some(plan) => Json(plan).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no plan yet: this replica has not led a round\n").into_response(),
    }
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    record: Option<String>,
}

async fn history(
    State(state): State<AdminState>,
    axum::extract::Query(query): axum::extract::Query<HistoryQuery>,
) -> Response {
    let mut names: Vec<String> = match &query.record {
        Some(record) => vec![record.clone()],
        // Every record with a stored history, so that followers answer too.
        None => match state.coordinator.list(Space::Plans, "").await {
            Ok(entries) => {
                entries.into_iter().filter_map(|(name, _)| Some(name.rsplit_once('/')?.0.to_string())).collect()
            }
            Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("store unreachable: {e}\n")).into_response(),
        },
    };
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for record in names {
        match state.coordinator.plans(&record).await {
            Ok(plans) => out.extend(plans.into_iter().map(
                |(generation, plan)| serde_json::json!({ "record": record, "generation": generation, "plan": plan }),
            )),
            Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("store unreachable: {e}\n")).into_response(),
        }
    }
    match crate::drill::api::history(state.coordinator.as_ref(), query.record.as_deref()).await {
        Ok(drills) => out.extend(drills),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("store unreachable: {e}\n")).into_response(),
    }
    Json(out).into_response()
}

async fn status(State(state): State<AdminState>) -> Json<super::status::StatusReport> {
    let now = crate::time::Clock::now(&crate::time::SystemClock::default());
    Json(super::status::gather(&state, now).await)
}

/// The status page: the same report, as HTML for people.
async fn status_page(State(state): State<AdminState>) -> Response {
    let now = crate::time::Clock::now(&crate::time::SystemClock::default());
    let report = super::status::gather(&state, now).await;
    (
        [(header::CACHE_CONTROL, "no-store"), (header::CONTENT_TYPE, "text/html; charset=utf-8")],
        super::status_page::render(&report),
    )
        .into_response()
}

/// This replica's latest vantage report, for the leader's pull.
async fn vantage(State(state): State<AdminState>, headers: axum::http::HeaderMap) -> Response {
    match &state.token {
        Some(token) => {
            if let Err(denied) = check_bearer(token, &headers) {
                return *denied;
            }
        }
        None if state.loopback => {}
        None => {
            return error(
                StatusCode::FORBIDDEN,
                "GET /v1/vantage needs admin.tokenFile or admin.tokenEnv when admin.listen is not a loopback address",
            );
        }
    }
    let report = state.vantage.borrow().clone();
    let served_at = crate::time::Clock::now(&crate::time::SystemClock::default());
    Json(super::vantages::ServedReportRef { report: &report, served_at }).into_response()
}

async fn override_history(State(state): State<AdminState>) -> Response {
    match super::audit::events(state.coordinator.as_ref()).await {
        Ok(events) => Json(events).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &format!("store unreachable: {e}")),
    }
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Checks the bearer token; the error response when it is missing or wrong.
pub(crate) fn authorize(state: &AdminState, headers: &axum::http::HeaderMap) -> Result<(), Box<Response>> {
    let Some(token) = &state.token else {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "mutations are disabled: set admin.tokenFile or admin.tokenEnv",
        )));
    };
    check_bearer(token, headers)
}

/// 401 unless the `Authorization: Bearer` header holds `token`.
fn check_bearer(token: &Token, headers: &axum::http::HeaderMap) -> Result<(), Box<Response>> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if token.matches(given) {
        Ok(())
    } else {
        Err(Box::new(error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")))
    }
}

async fn list_overrides(State(state): State<AdminState>) -> Response {
    let now = crate::time::Clock::now(&crate::time::SystemClock::default());
    match state.coordinator.list_live(Space::Overrides, "", now).await {
        Ok(entries) => Json(entries.into_iter().map(|(_, v)| v).collect::<Vec<_>>()).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &format!("store unreachable: {e}")),
    }
}

/// The overrides in the store at `now` (fresher than the last round's, so that a
/// preview sees an override created a moment ago); `None` when the store fails.
async fn live_overrides(state: &AdminState, now: crate::time::Timestamp) -> Option<Vec<crate::planner::Override>> {
    let entries = state.coordinator.list_live(Space::Overrides, "", now).await.ok()?;
    Some(entries.into_iter().filter_map(|(_, v)| serde_json::from_value(v).ok()).collect())
}

/// Plans with the last round's inputs and `overrides` instead of its overrides
/// (those when `None`), and hands the input to `preview`; `None` before the
/// first round led by this replica.
fn with_last_round<R>(
    state: &AdminState,
    now: crate::time::Timestamp,
    overrides: Option<&[crate::planner::Override]>,
    preview: impl FnOnce(&crate::planner::PlanInput<'_>) -> R,
) -> Option<R> {
    let last = state.summary.borrow().preview.clone()?;
    let inputs: Vec<crate::planner::PolicyInput<'_>> = last
        .setup
        .policies
        .iter()
        .zip(&last.weightings)
        .map(|(l, w)| crate::planner::PolicyInput { policy: &l.policy, hash: &l.hash, weighting: *w })
        .collect();
    Some(preview(&crate::planner::PlanInput {
        policies: &inputs,
        health: &last.health,
        observed: &last.published,
        overrides: overrides.unwrap_or(&last.overrides),
        state: &last.state,
        now,
        seed: now.as_millis(),
    }))
}

/// A new override as operators send it; the server adds id and times.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OverrideRequest {
    action: crate::planner::overrides::OverrideAction,
    reason: String,
    author: String,
    /// `4h`, `30m`, … or `none` (only with `force`); default 4 h.
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default)]
    force: bool,
}

#[derive(Debug, serde::Deserialize)]
struct OverrideQuery {
    #[serde(default, rename = "dryRun")]
    dry_run: bool,
}

static OVERRIDE_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

async fn create_override(
    State(state): State<AdminState>,
    axum::extract::Query(query): axum::extract::Query<OverrideQuery>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(denied) = authorize(&state, &headers) {
        return *denied;
    }
    let request: OverrideRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid override: {e}")),
    };
    let now = crate::time::Clock::now(&crate::time::SystemClock::default());
    let expires_at = match request.ttl.as_deref() {
        None => Some(now.add(crate::planner::overrides::DEFAULT_TTL)),
        Some("none") => None,
        Some(text) => match crate::policy::duration::parse(text) {
            Ok(d) if !d.is_zero() => Some(now.add(d)),
            Ok(_) => return error(StatusCode::BAD_REQUEST, "ttl must be greater than zero"),
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("ttl: {e}")),
        },
    };
    let sequence = OVERRIDE_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let proposed = crate::planner::Override {
        id: format!("o-{}-{sequence}", now.as_millis()),
        action: request.action,
        reason: request.reason,
        author: request.author,
        created_at: now,
        expires_at,
        force: request.force,
    };
    if let Err(e) = proposed.check() {
        return error(StatusCode::BAD_REQUEST, &e.to_string());
    }
    let live = live_overrides(&state, now).await;
    let impact = with_last_round(&state, now, live.as_deref(), |input| crate::planner::impact(input, &proposed));
    let refused = impact.as_ref().is_some_and(|i| i.is_refused()) && !proposed.force;
    let body = serde_json::json!({ "override": proposed, "impact": impact, "refused": refused });
    if query.dry_run {
        return match impact {
            Some(_) => Json(body).into_response(),
            None => error(StatusCode::SERVICE_UNAVAILABLE, "no preview yet: this replica has not led a round"),
        };
    }
    if refused {
        return (StatusCode::CONFLICT, Json(body)).into_response();
    }
    match super::state::put_override(state.coordinator.as_ref(), &proposed).await {
        Ok(()) => {
            tracing::info!(id = %proposed.id, author = %proposed.author, reason = %proposed.reason, "override created");
            let event = super::audit::OverrideEvent::created(&proposed);
            if let Err(e) = super::audit::append(state.coordinator.as_ref(), &event).await {
                tracing::warn!(id = %proposed.id, error = %e, "override created, but not recorded in the audit trail");
            }
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &format!("store unreachable: {e}")),
    }
}

/// Who removes overrides and why (optional, for the audit trail), and whether
/// only to preview the removal.
#[derive(Debug, serde::Deserialize)]
struct DeleteQuery {
    #[serde(default, rename = "dryRun")]
    dry_run: bool,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn delete_override(
    State(state): State<AdminState>,
    axum::extract::Path(ids): axum::extract::Path<String>,
    axum::extract::Query(query): axum::extract::Query<DeleteQuery>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Err(denied) = authorize(&state, &headers) {
        return *denied;
    }
    let ids: Vec<String> = ids.split(',').filter(|id| !id.is_empty()).map(str::to_string).collect();
    // Every id must exist before anything is removed.
    let mut found = Vec::new();
    for id in &ids {
        match state.coordinator.get(&Key::new(Space::Overrides, id)).await {
            Ok(None) => return error(StatusCode::NOT_FOUND, &format!("no override `{id}`")),
            Ok(Some(entry)) => found.push(entry),
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &format!("store unreachable: {e}")),
        }
    }
    let now = crate::time::Clock::now(&crate::time::SystemClock::default());
    if query.dry_run {
        let live = live_overrides(&state, now).await;
        let impact = with_last_round(&state, now, live.as_deref(), |input| crate::planner::removal_impact(input, &ids));
        let removed: Vec<serde_json::Value> = found.into_iter().map(|e| e.value).collect();
        return match impact {
            Some(impact) => Json(serde_json::json!({ "removed": removed, "impact": impact })).into_response(),
            None => error(StatusCode::SERVICE_UNAVAILABLE, "no preview yet: this replica has not led a round"),
        };
    }
    for (id, entry) in ids.iter().zip(found) {
        if let Err(e) = state.coordinator.delete(&Key::new(Space::Overrides, id), crate::coord::Writer::Replica).await {
            return error(StatusCode::SERVICE_UNAVAILABLE, &format!("store unreachable: {e}"));
        }
        tracing::info!(%id, author = ?query.author, reason = ?query.reason, "override deleted");
        if let Ok(item) = serde_json::from_value::<crate::planner::Override>(entry.value) {
            let by = query.author.clone().filter(|a| !a.trim().is_empty()).unwrap_or_else(|| "unknown".into());
            let reason = query.reason.clone().filter(|r| !r.trim().is_empty());
            let event = super::audit::OverrideEvent::deleted(item, by, reason, now);
            if let Err(e) = super::audit::append(state.coordinator.as_ref(), &event).await {
                tracing::warn!(%id, error = %e, "override deleted, but not recorded in the audit trail");
            }
        }
    }
    StatusCode::NO_CONTENT.into_response()
}
