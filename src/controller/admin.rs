//! The admin HTTP listener of a replica (SPEC §10), read-only part:
//! `GET /healthz` (the process is alive), `GET /readyz` (policies loaded and the
//! store reachable), `GET /metrics` (Prometheus text), `GET /v1/status`
//! (leadership, the last round and this replica's vantage report, as JSON),
//! `GET /v1/plan` (the last plan) and `GET /v1/history[?record=NAME]` (the
//! applied plans kept in the store, newest last).
//! Mutating endpoints (overrides, with the bearer token) come with the operator
//! commands.

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

/// What the handlers read: snapshots only, never the controller's internals.
#[derive(Clone)]
pub struct AdminState {
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
}

/// The router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/plan", get(plan))
        .route("/v1/history", get(history))
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

async fn metrics(State(state): State<AdminState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response()
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
        None => state
            .summary
            .borrow()
            .plan
            .as_ref()
            .map(|p| p.records.iter().map(|r| r.record.to_string()).collect())
            .unwrap_or_default(),
    };
    names.sort();
    let mut out = Vec::new();
    for record in names {
        match state.coordinator.plans(&record).await {
            Ok(plans) => out.extend(plans.into_iter().map(
                |(generation, plan)| serde_json::json!({ "record": record, "generation": generation, "plan": plan }),
            )),
            Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("store unreachable: {e}\n")).into_response(),
        }
    }
    Json(out).into_response()
}

async fn status(State(state): State<AdminState>) -> Json<serde_json::Value> {
    let summary = state.summary.borrow().clone();
    let leadership = format!("{:?}", *state.coordinator.leadership().borrow());
    let report = state.vantage.borrow().clone();
    let endpoints: Vec<_> = report
        .endpoints
        .iter()
        .map(|(key, e)| {
            serde_json::json!({
                "policy": key.policy, "endpoint": key.endpoint, "verdict": e.verdict, "since": e.since,
                "latencyMs": e.last_latency_ms, "failure": e.last_failure,
            })
        })
        .collect();
    let vantage = serde_json::json!({ "id": report.vantage, "at": report.at, "endpoints": endpoints });
    Json(serde_json::json!({
        "replica": state.identity,
        "leadership": leadership,
        "epoch": summary.epoch,
        "rounds": summary.rounds,
        "writes": summary.writes,
        "lastError": summary.error,
        "policyReloadError": summary.reload_error,
        "plan": summary.plan,
        "vantage": vantage,
    }))
}
