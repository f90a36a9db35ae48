//! Reading and persisting the planner's memory and the operators' overrides
//! through the coordination store (ARCHITECTURE.md §6, I8).

use crate::coord::{CoordError, Coordinator, Entry, Epoch, Key, Space, Writer};
use crate::planner::{Override, Plan, PlannerState};
use crate::time::Timestamp;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The store key of the planner state.
const PLANNER_STATE: &str = "state";
/// Plans kept per record in the history unless `coordination.historyKeep` says otherwise.
pub const HISTORY_KEEP: usize = 50;

/// Where state is read from: a running coordinator, or a read-only snapshot of a
/// standalone state file (`veer plan` writes nothing, not even an epoch).
pub enum StateSource {
    /// A coordinator (reads go to its backend).
    Coordinator(Arc<dyn Coordinator>),
    /// Entries read from a standalone state file.
    Snapshot(BTreeMap<Key, Entry>),
}

impl StateSource {
    async fn list(&self, space: Space) -> Result<Vec<(String, Entry)>, CoordError> {
        match self {
            Self::Coordinator(c) => c.list(space, "").await,
            Self::Snapshot(entries) => {
                Ok(entries.iter().filter(|(k, _)| k.space == space).map(|(k, e)| (k.name.clone(), e.clone())).collect())
            }
        }
    }

    /// The persisted planner state (empty when none was saved yet). Read as text, not
    /// through a `serde_json::Value`: parsed, 10 000 endpoints' state is megabytes.
    pub async fn planner_state(&self) -> Result<PlannerState, CoordError> {
        let key = Key::new(Space::Planner, PLANNER_STATE);
        let unreadable = |e: serde_json::Error| CoordError::Local(format!("stored planner state is unreadable: {e}"));
        match self {
            Self::Coordinator(c) => match c.get_text(&key).await? {
                Some(text) => serde_json::from_str(&text).map_err(unreadable),
                None => Ok(PlannerState::default()),
            },
            Self::Snapshot(entries) => match entries.get(&key) {
                Some(entry) => PlannerState::deserialize(&entry.value).map_err(unreadable),
                None => Ok(PlannerState::default()),
            },
        }
    }

    /// Overrides in force at `now`; unreadable entries are skipped with a warning.
    pub async fn overrides(&self, now: Timestamp) -> Result<Vec<Override>, CoordError> {
        let mut out = Vec::new();
        for (name, entry) in self.list(Space::Overrides).await? {
            if !entry.is_live(now) {
                continue;
            }
            match serde_json::from_value::<Override>(entry.value) {
                Ok(o) => out.push(o),
                Err(e) => tracing::warn!(override_id = %name, error = %e, "skipping an unreadable override"),
            }
        }
        Ok(out)
    }
}

/// Persists the planner state and the history of the records that changed, as
/// the leader of `epoch` (fenced at the store). Each history entry is the record's
/// plan plus `epoch` and `appliedAt` (`now`, milliseconds), for the audit trail;
/// the history keeps the `keep` newest plans of each record (the clean-up).
pub async fn save(
    coordinator: &dyn Coordinator,
    epoch: Epoch,
    plan: &Plan,
    now: Timestamp,
    keep: usize,
) -> Result<(), CoordError> {
    let state = serde_json::to_string(&plan.state).expect("planner state serializes");
    coordinator.put_text(&Key::new(Space::Planner, PLANNER_STATE), state, Writer::Leader(epoch)).await?;
    for record in plan.records.iter().filter(|r| r.is_changed()) {
        let mut value = serde_json::to_value(record).expect("record plans serialize");
        value["epoch"] = epoch.0.into();
        value["appliedAt"] = now.as_millis().into();
        coordinator.append_plan(epoch, record.record.as_str(), record.generation, value, keep).await?;
    }
    Ok(())
}

/// Stores an operator override (any replica may: I8), expiring at its TTL. The one
/// path overrides take, from the admin API and from drills.
pub async fn put_override(coordinator: &dyn Coordinator, o: &Override) -> Result<(), CoordError> {
    let value = serde_json::to_value(o).map_err(|e| CoordError::Local(e.to_string()))?;
    let entry = match o.expires_at {
        Some(at) => Entry::expiring(value, at),
        None => Entry::new(value),
    };
    coordinator.put(&Key::new(Space::Overrides, &o.id), &entry, Writer::Replica).await
}

/// Whether override `id` is in the store and in force at `now`.
pub async fn override_live(coordinator: &dyn Coordinator, id: &str, now: Timestamp) -> Result<bool, CoordError> {
    Ok(coordinator.get(&Key::new(Space::Overrides, id)).await?.is_some_and(|e| e.is_live(now)))
}

/// Removes override `id` (absent is fine).
pub async fn delete_override(coordinator: &dyn Coordinator, id: &str) -> Result<(), CoordError> {
    coordinator.delete(&Key::new(Space::Overrides, id), Writer::Replica).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::{AnswerChange, PlanMode, RecordName, RecordPlan, Weighting};

    fn changed(generation: u64) -> RecordPlan {
        RecordPlan {
            policy: "api".into(),
            record: RecordName::parse("api.example.test.").unwrap(),
            policy_hash: "h".into(),
            weighting: Weighting::SetOnly,
            mode: PlanMode::Normal,
            answers: Vec::new(),
            changes: vec![AnswerChange { endpoint: "a".into(), from: None, to: Some(1), reason: "a published".into() }],
            generation,
            held: Vec::new(),
        }
    }

    #[tokio::test]
    async fn saving_an_applied_plan_cleans_the_history_up_to_the_newest_kept_plans() {
        let dir = tempfile::tempdir().unwrap();
        let coord = crate::coord::standalone::StandaloneCoordinator::open(dir.path().join("s.json"), "r").unwrap();
        let epoch = coord.campaign().await.unwrap();
        for generation in 1..=5 {
            let plan = Plan { records: vec![changed(generation)], state: PlannerState::default() };
            save(&coord, epoch, &plan, Timestamp(generation * 1_000), 2).await.unwrap();
        }
        let kept: Vec<u64> = coord.plans("api.example.test.").await.unwrap().iter().map(|(g, _)| *g).collect();
        assert_eq!(kept, [4, 5], "generations 1–3 were cleaned up");
        let unchanged = RecordPlan { changes: Vec::new(), generation: 5, ..changed(5) };
        save(&coord, epoch, &Plan { records: vec![unchanged], state: PlannerState::default() }, Timestamp(9_000), 1)
            .await
            .unwrap();
        assert_eq!(
            coord.plans("api.example.test.").await.unwrap().len(),
            2,
            "an unchanged record neither adds nor prunes"
        );
    }
}
