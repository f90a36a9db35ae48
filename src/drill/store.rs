//! Where drills live in the coordination store:
//!
//! | space | key | value | written by |
//! |---|---|---|---|
//! | `drills` | `<drill>/<start ms, 20 digits>` | [`Report`] | the leader (fenced) |
//! | `drill-requests` | `run/<drill>`, `abort/<drill>` | [`Request`] | any replica (the admin API) |
//!
//! Requests go through the store so that `veer drill run|abort` works against any
//! replica; the leader's loop consumes them.

use super::report::{REPORTS_KEPT, Report};
use crate::coord::{CoordError, Coordinator, Entry, Epoch, Key, Space, Writer};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What an operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestKind {
    /// `veer drill run`.
    Run,
    /// `veer drill abort`.
    Abort,
}

impl RequestKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Abort => "abort",
        }
    }
}

/// A pending operator request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Run or abort.
    pub kind: RequestKind,
    /// The drill.
    pub drill: String,
    /// Who asked.
    pub author: String,
    /// When (identifies the request: the run's report carries it).
    pub at: Timestamp,
}

impl Request {
    fn key(&self) -> Key {
        Key::new(Space::DrillRequests, format!("{}/{}", self.kind.as_str(), self.drill))
    }
}

fn decode<T: serde::de::DeserializeOwned>(name: &str, entry: Entry) -> Option<T> {
    match serde_json::from_value(entry.value) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(key = %name, error = %e, "skipping an unreadable drill entry");
            None
        }
    }
}

/// Every stored report, per drill, oldest first.
pub async fn reports(coordinator: &dyn Coordinator) -> Result<BTreeMap<String, Vec<Report>>, CoordError> {
    let mut out: BTreeMap<String, Vec<Report>> = BTreeMap::new();
    for (name, entry) in coordinator.list(Space::Drills, "").await? {
        if let Some(report) = decode::<Report>(&name, entry) {
            out.entry(report.drill.clone()).or_default().push(report);
        }
    }
    for runs in out.values_mut() {
        runs.sort_by_key(|r| r.started_at);
    }
    Ok(out)
}

/// The runs of one drill, oldest first.
pub async fn runs(coordinator: &dyn Coordinator, drill: &str) -> Result<Vec<Report>, CoordError> {
    let mut runs: Vec<Report> = coordinator
        .list(Space::Drills, &format!("{drill}/"))
        .await?
        .into_iter()
        .filter_map(|(name, entry)| decode::<Report>(&name, entry))
        .filter(|r| r.drill == drill)
        .collect();
    runs.sort_by_key(|r| r.started_at);
    Ok(runs)
}

/// Saves a report as the leader of `epoch`; a finished run also prunes the drill's
/// oldest reports down to [`REPORTS_KEPT`].
pub async fn save(coordinator: &dyn Coordinator, epoch: Epoch, report: &Report) -> Result<(), CoordError> {
    let value = serde_json::to_value(report).map_err(|e| CoordError::Local(e.to_string()))?;
    coordinator.put(&Key::new(Space::Drills, report.key()), &Entry::new(value), Writer::Leader(epoch)).await?;
    if report.is_finished() {
        let names: Vec<String> =
            coordinator.list(Space::Drills, &format!("{}/", report.drill)).await?.into_iter().map(|(n, _)| n).collect();
        for old in names.iter().take(names.len().saturating_sub(REPORTS_KEPT)) {
            coordinator.delete(&Key::new(Space::Drills, old.clone()), Writer::Leader(epoch)).await?;
        }
    }
    Ok(())
}

/// Pending requests, oldest first.
pub async fn requests(coordinator: &dyn Coordinator) -> Result<Vec<Request>, CoordError> {
    let mut out: Vec<Request> = coordinator
        .list(Space::DrillRequests, "")
        .await?
        .into_iter()
        .filter_map(|(name, entry)| decode::<Request>(&name, entry))
        .collect();
    out.sort_by_key(|r| r.at);
    Ok(out)
}

/// Files a request (any replica).
pub async fn file(coordinator: &dyn Coordinator, request: &Request) -> Result<(), CoordError> {
    let value = serde_json::to_value(request).map_err(|e| CoordError::Local(e.to_string()))?;
    coordinator.put(&request.key(), &Entry::new(value), Writer::Replica).await
}

/// Removes a request once served.
pub async fn consume(coordinator: &dyn Coordinator, request: &Request) -> Result<(), CoordError> {
    coordinator.delete(&request.key(), Writer::Replica).await
}
