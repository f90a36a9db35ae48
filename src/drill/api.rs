//! The drill endpoints of the admin API (ARCHITECTURE.md §7):
//! `GET /v1/drills` (every drill with its next scheduled run and last result),
//! `POST /v1/drills/{name}/run[?dryRun=true]` and `POST /v1/drills/{name}/abort`
//! (bearer token), and `GET /v1/drills/{name}/report` (the latest run's report).
//!
//! Runs and aborts are requests filed in the store, so any replica accepts them
//! and the leader serves them. A replica that led the last round also runs the
//! preflight at once: a refusal is `409` with the reason (`veer drill run` exits
//! 3), a dry run shows what the run would do. [`summary`] is the drills part of
//! `/v1/status` (`nextDrill`, `lastDrill`, `runningDrill`).

use super::model::Definition;
use super::report::{Outcome, Report, TriggerKind};
use super::runner::{self, World};
use super::store::{self, RequestKind};
use crate::controller::admin::{AdminState, authorize, error};
use crate::coord::{CoordError, Coordinator};
use crate::time::{Clock, SystemClock, Timestamp};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

fn now() -> Timestamp {
    SystemClock::default().now()
}

fn unreachable_store(e: CoordError) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, &format!("store unreachable: {e}"))
}

fn find<'d>(definitions: &'d [Definition], name: &str) -> Result<&'d Definition, Box<Response>> {
    definitions.iter().find(|d| d.name == name).ok_or_else(|| {
        let known: Vec<&str> = definitions.iter().map(|d| d.name.as_str()).collect();
        let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
        Box::new(error(StatusCode::NOT_FOUND, &format!("no drill `{name}` (loaded drills: {known})")))
    })
}

/// The latest finished run of a list, oldest first.
fn last_finished(runs: &[Report]) -> Option<&Report> {
    runs.iter().rev().find(|r| r.is_finished())
}

/// `GET /v1/drills`.
pub async fn list(State(state): State<AdminState>) -> Response {
    let now = now();
    let definitions = state.drills.definitions.borrow().clone();
    let reports = match store::reports(state.coordinator.as_ref()).await {
        Ok(r) => r,
        Err(e) => return unreachable_store(e),
    };
    let drills: Vec<serde_json::Value> = definitions
        .iter()
        .map(|d| {
            let runs = reports.get(&d.name).map_or(&[][..], Vec::as_slice);
            let running = runs.iter().find(|r| !r.is_finished());
            json!({
                "name": d.name,
                "target": d.target.to_string(),
                "policy": d.target.policy(),
                "schedule": d.schedule,
                "durationMs": super::report::millis(d.duration),
                "maxCapacityPercent": d.max_capacity_percent,
                "abortOn": d.abort_on,
                "nextRun": runner::next_scheduled(d, runs, now),
                "running": running.map(|r| json!({ "startedAt": r.started_at, "phase": r.phase_name() })),
                "last": last_finished(runs).map(last_result),
            })
        })
        .collect();
    Json(drills).into_response()
}

fn last_result(r: &Report) -> serde_json::Value {
    json!({
        "startedAt": r.started_at, "finishedAt": r.finished_at, "outcome": r.outcome, "reason": r.reason,
        "measures": r.measures,
    })
}

/// The body of a run or abort request (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestBody {
    /// Who asks (default `operator`).
    #[serde(default)]
    pub author: Option<String>,
}

/// `?dryRun=true`.
#[derive(Debug, Deserialize)]
pub struct RunQuery {
    #[serde(default, rename = "dryRun")]
    dry_run: bool,
}

fn author(body: &[u8]) -> Result<String, Box<Response>> {
    let parsed: RequestBody = if body.iter().all(u8::is_ascii_whitespace) {
        RequestBody::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, &format!("invalid request body: {e}"))))?
    };
    Ok(parsed.author.filter(|a| !a.trim().is_empty()).unwrap_or_else(|| "operator".into()))
}

/// `POST /v1/drills/{name}/run[?dryRun=true]`.
pub async fn run(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Query(query): Query<RunQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(denied) = authorize(&state, &headers) {
        return *denied;
    }
    let definitions = state.drills.definitions.borrow().clone();
    let definition = match find(&definitions, &name) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let author = match author(&body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let now = now();
    let reports = match store::reports(state.coordinator.as_ref()).await {
        Ok(r) => r,
        Err(e) => return unreachable_store(e),
    };
    if let Some(running) = reports.values().flatten().find(|r| !r.is_finished()) {
        let reason = format!("drill `{}` is running: one drill at a time", running.drill);
        return (StatusCode::CONFLICT, Json(json!({ "drill": name, "refused": true, "reason": reason })))
            .into_response();
    }
    let summary = state.summary.borrow().clone();
    let preflight = match (&summary.preview, &summary.plan) {
        (Some(preview), Some(plan)) => {
            let inputs = preview.policy_inputs();
            let world = World {
                now,
                policies: &inputs,
                health: &preview.health,
                published: &preview.published,
                state: &preview.state,
                overrides: &preview.overrides,
                plan,
            };
            let request = runner::Request {
                kind: TriggerKind::Operator,
                author: &author,
                running: None,
                standalone: state.drills.standalone,
                requested_at: None,
            };
            Some(runner::preflight(definition, &world, &request))
        }
        _ => None,
    };
    if query.dry_run {
        return match preflight {
            None => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no preview yet: this replica has not led a round (dry runs are answered by the leader)",
            ),
            Some(Ok(cleared)) => Json(json!({
                "drill": name, "refused": false, "detail": cleared.detail, "drain": cleared.drain, "impact": cleared.impact,
            }))
            .into_response(),
            Some(Err(refusal)) => {
                Json(json!({ "drill": name, "refused": true, "reason": refusal.reason })).into_response()
            }
        };
    }
    if let Some(Err(refusal)) = &preflight {
        return (StatusCode::CONFLICT, Json(json!({ "drill": name, "refused": true, "reason": refusal.reason })))
            .into_response();
    }
    let request = store::Request { kind: RequestKind::Run, drill: name.clone(), author, at: now };
    if let Err(e) = store::file(state.coordinator.as_ref(), &request).await {
        return unreachable_store(e);
    }
    tracing::info!(drill = %name, author = %request.author, "drill run requested");
    let detail = preflight.and_then(Result::ok).map(|c| c.detail);
    (StatusCode::ACCEPTED, Json(json!({ "drill": name, "accepted": true, "requestedAt": now, "detail": detail })))
        .into_response()
}

/// `POST /v1/drills/{name}/abort`.
pub async fn abort(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(denied) = authorize(&state, &headers) {
        return *denied;
    }
    let author = match author(&body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let runs = match store::runs(state.coordinator.as_ref(), &name).await {
        Ok(r) => r,
        Err(e) => return unreachable_store(e),
    };
    if !runs.iter().any(|r| !r.is_finished()) {
        let definitions = state.drills.definitions.borrow().clone();
        if let Err(r) = find(&definitions, &name) {
            return *r;
        }
        return error(StatusCode::CONFLICT, &format!("drill `{name}` is not running"));
    }
    let request = store::Request { kind: RequestKind::Abort, drill: name.clone(), author, at: now() };
    if let Err(e) = store::file(state.coordinator.as_ref(), &request).await {
        return unreachable_store(e);
    }
    tracing::info!(drill = %name, author = %request.author, "drill abort requested");
    (StatusCode::ACCEPTED, Json(json!({ "drill": name, "accepted": true, "requestedAt": request.at }))).into_response()
}

/// `GET /v1/drills/{name}/report`: the latest run.
pub async fn report(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    match store::runs(state.coordinator.as_ref(), &name).await {
        Err(e) => unreachable_store(e),
        Ok(runs) => match runs.last() {
            Some(latest) => Json(latest).into_response(),
            None => {
                let definitions = state.drills.definitions.borrow().clone();
                match find(&definitions, &name) {
                    Err(r) => *r,
                    Ok(_) => error(StatusCode::NOT_FOUND, &format!("drill `{name}` has not run yet")),
                }
            }
        },
    }
}

/// Drill runs as `/v1/history` entries (`{"record", "drill", "report"}`), oldest
/// first; with `record`, only the runs on that record (leader drills have none).
pub async fn history(
    coordinator: &dyn Coordinator,
    record: Option<&str>,
) -> Result<Vec<serde_json::Value>, CoordError> {
    let mut runs: Vec<Report> = store::reports(coordinator).await?.into_values().flatten().collect();
    runs.sort_by_key(|r| r.started_at);
    Ok(runs
        .into_iter()
        .filter(|r| record.is_none_or(|name| r.record.as_deref().is_some_and(|mine| same_record(mine, name))))
        .map(|r| json!({ "record": r.record, "drill": r.drill, "report": r }))
        .collect())
}

fn same_record(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The next scheduled drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NextDrill {
    /// The drill.
    pub drill: String,
    /// Its target.
    pub target: String,
    /// When it may start (milliseconds since the Unix epoch, UTC).
    pub at: Timestamp,
}

/// The last finished run of any drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastDrill {
    /// The drill.
    pub drill: String,
    /// What it rehearsed (`app/endpoint/a`, `leader`).
    #[serde(default)]
    pub target: String,
    /// How it ended.
    pub outcome: Option<Outcome>,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// Why it was refused, aborted or failed.
    pub reason: Option<String>,
}

/// The run in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunningDrill {
    /// The drill.
    pub drill: String,
    /// What it rehearses.
    #[serde(default)]
    pub target: String,
    /// When it started.
    pub started_at: Timestamp,
    /// Where it is: `draining`, `holding`, `restoring`, `handing-over`.
    pub phase: String,
}

/// The drills part of the status: what runs next, what ran last, what runs now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DrillsSummary {
    /// The earliest scheduled run to come.
    pub next_drill: Option<NextDrill>,
    /// The latest finished run.
    pub last_drill: Option<LastDrill>,
    /// The run in progress (one at a time).
    pub running_drill: Option<RunningDrill>,
}

/// Builds the drills part of `/v1/status` from the store (works on any replica).
pub async fn summary(
    coordinator: &dyn Coordinator,
    definitions: &[Definition],
    now: Timestamp,
) -> Result<DrillsSummary, CoordError> {
    let reports: BTreeMap<String, Vec<Report>> = store::reports(coordinator).await?;
    let none = Vec::new();
    let next_drill = definitions
        .iter()
        .filter_map(|d| {
            let at = runner::next_scheduled(d, reports.get(&d.name).unwrap_or(&none), now)?;
            Some(NextDrill { drill: d.name.clone(), target: d.target.to_string(), at })
        })
        .min_by_key(|n| n.at);
    let all: Vec<&Report> = reports.values().flatten().collect();
    let last_drill = all.iter().filter(|r| r.is_finished()).max_by_key(|r| r.finished_at).map(|r| LastDrill {
        drill: r.drill.clone(),
        target: r.target.clone(),
        outcome: r.outcome,
        started_at: r.started_at,
        finished_at: r.finished_at,
        reason: r.reason.clone(),
    });
    let running_drill = all.iter().find(|r| !r.is_finished()).map(|r| RunningDrill {
        drill: r.drill.clone(),
        target: r.target.clone(),
        started_at: r.started_at,
        phase: r.phase_name(),
    });
    Ok(DrillsSummary { next_drill, last_drill, running_drill })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coord::standalone::StandaloneCoordinator;
    use crate::drill::report::sample_run as run;

    fn definition(name: &str, schedule: Option<&str>) -> Definition {
        let schedule =
            schedule.map(|w| format!("  schedule: {{ windows: \"{w}\", minSpacing: 1h }}\n")).unwrap_or_default();
        let text = format!(
            "apiVersion: veer/v1\nkind: Drill\nmetadata: {{ name: {name} }}\nspec:\n  target: a\n  policy: app\n{schedule}"
        );
        let doc = crate::policy::source::DocumentText { text, first_line: 1 };
        let drill: crate::drill::Drill =
            crate::policy::source::parse_document(std::path::Path::new("d.yaml"), &doc).unwrap();
        drill.definition().unwrap()
    }

    #[tokio::test]
    async fn the_status_summary_names_the_next_scheduled_drill_the_last_result_and_the_running_one() {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = StandaloneCoordinator::open(dir.path().join("s.json"), "r0").unwrap();
        let epoch = coordinator.campaign().await.unwrap();
        // Monday 2024-01-01 12:00 UTC.
        let now = Timestamp(1_704_110_400_000);
        let definitions = [
            definition("daily", Some("daily 13:00-14:00")),
            definition("weekly", Some("wed 09:00-10:00")),
            definition("manual", None),
        ];
        let empty = summary(&coordinator, &definitions, now).await.unwrap();
        assert_eq!(
            empty.next_drill.as_ref().map(|n| (n.drill.as_str(), n.at)),
            Some(("daily", Timestamp(1_704_114_000_000)))
        );
        assert!(empty.last_drill.is_none() && empty.running_drill.is_none());

        store::save(&coordinator, epoch, &run("weekly", 1_000, Some(Outcome::Aborted))).await.unwrap();
        store::save(&coordinator, epoch, &run("manual", 9_000, None)).await.unwrap();
        let status = summary(&coordinator, &definitions, now).await.unwrap();
        let last = status.last_drill.unwrap();
        assert_eq!((last.drill.as_str(), last.outcome), ("weekly", Some(Outcome::Aborted)));
        assert_eq!(status.running_drill.unwrap().drill, "manual");
        let json = serde_json::to_value(summary(&coordinator, &definitions, now).await.unwrap()).unwrap();
        assert!(json.get("nextDrill").is_some() && json.get("lastDrill").is_some(), "{json}");
    }
}
