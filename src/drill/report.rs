//! The drill report: one per run, persisted in the store under
//! `drills/<drill>/<start>` after every step, so that a new leader continues a
//! run (and shows it) where the old one left off. The report is also the run's
//! state: its [`Phase`] is what the runner steps from.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Runs kept per drill in the store (older reports are pruned).
pub const REPORTS_KEPT: usize = 20;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Drained, held and restored through every warm-up stage (or handed over), as verified.
    Ok,
    /// Stopped by an abort condition or an operator; restored at once.
    Aborted,
    /// Not started: a preflight check said no.
    Refused,
    /// A verification failed (the drain or the restoration was not seen, a stage
    /// was skipped, a hand-over lost or repeated a write).
    Failed,
}

impl Outcome {
    /// Every outcome, for metric labels.
    pub const ALL: [Outcome; 4] = [Outcome::Ok, Outcome::Aborted, Outcome::Refused, Outcome::Failed];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Aborted => "aborted",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// Who started a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// `schedule` or `operator`.
    pub kind: TriggerKind,
    /// The operator, or `veer` for scheduled runs.
    pub author: String,
    /// The operator request served, by its time (`veer drill run` waits for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<Timestamp>,
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerKind {
    /// Its schedule window came.
    Schedule,
    /// `veer drill run`.
    Operator,
}

/// What one step was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// The preflight checks passed.
    Preflight,
    /// The preflight checks refused the run.
    Refused,
    /// The drain override was written.
    Drain,
    /// The drain was read back at every provider.
    Drained,
    /// The hold ended.
    Held,
    /// An abort condition fired.
    Abort,
    /// The drain override was removed.
    Lift,
    /// A warm-up stage was read back at every provider.
    Stage,
    /// The target was read back at full weight at every provider.
    Restored,
    /// The leader stepped down.
    StepDown,
    /// Another replica leads.
    TakeOver,
    /// A verification passed or failed.
    Verify,
    /// The run ended.
    Done,
}

/// One timestamped step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// When (wall clock of the replica that took it).
    pub at: Timestamp,
    /// What.
    pub step: StepKind,
    /// Details for people.
    pub detail: String,
}

/// Generations of one record as the store and the providers hold them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordGenerations {
    /// The record name.
    pub record: String,
    /// Generations in the plan history, ascending.
    pub history: Vec<u64>,
    /// Generation in each provider's ownership record (0: none).
    pub providers: BTreeMap<String, u64>,
}

/// Where a run is: the runner's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum Phase {
    /// The drain override is written; waiting to read it back at every provider.
    #[serde(rename_all = "camelCase")]
    Draining {
        /// The drain override.
        override_id: String,
        /// When it was written.
        since: Timestamp,
    },
    /// The drain is seen everywhere; the target stays out until `until`.
    #[serde(rename_all = "camelCase")]
    Holding {
        /// The drain override.
        override_id: String,
        /// When the hold ends.
        until: Timestamp,
    },
    /// The drain is lifted; waiting to read back every warm-up stage up to full weight.
    #[serde(rename_all = "camelCase")]
    Restoring {
        /// When the drain was lifted.
        since: Timestamp,
        /// Stages (percent) read back so far, per target endpoint that left service.
        stages: BTreeMap<String, Vec<f64>>,
    },
    /// A leader drill: the leader stepped down; waiting for a leader to take over.
    #[serde(rename_all = "camelCase")]
    HandingOver {
        /// The epoch that stepped down.
        from_epoch: u64,
        /// The replica that stepped down.
        from_identity: String,
        /// When.
        at: Timestamp,
        /// Generations before the step-down.
        before: Vec<RecordGenerations>,
    },
    /// The run is over; `outcome` says how.
    Finished,
}

/// Figures of a run, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Measures {
    /// Drain written → drain read back at every provider (leader drills: step-down → take-over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_detect_ms: Option<u64>,
    /// Drain lifted → full weight read back at every provider (leader drills: step-down →
    /// hand-over verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_restore_ms: Option<u64>,
    /// Leader drills: step-down → the new leader's first round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub take_over_ms: Option<u64>,
    /// Start → end of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// One run of a drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The drill's name.
    pub drill: String,
    /// What was rehearsed (`api/endpoint/use1-a`, `leader`).
    pub target: String,
    /// The policy drained in, for endpoint and pool drills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Its record name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// Who started it.
    pub trigger: Trigger,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Where it is.
    #[serde(flatten)]
    pub phase: Phase,
    /// How it ended (set with `finished_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Why it was refused, aborted or failed. An abort is recorded when it fires;
    /// the outcome follows once the target is back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set when a verification failed, so the run ends `failed` even after an abort.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    /// Every step, oldest first.
    pub steps: Vec<Step>,
    /// Figures.
    pub measures: Measures,
}

impl Report {
    /// The store key name: `<drill>/<start, zero-padded>` so names sort by start.
    pub fn key(&self) -> String {
        key(&self.drill, self.started_at)
    }

    /// Whether the run is over.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
    }

    /// Appends a step.
    pub fn step(&mut self, at: Timestamp, step: StepKind, detail: impl Into<String>) {
        self.steps.push(Step { at, step, detail: detail.into() });
    }

    /// Ends the run.
    pub fn finish(&mut self, at: Timestamp, outcome: Outcome, detail: impl Into<String>) {
        self.phase = Phase::Finished;
        self.outcome = Some(outcome);
        self.finished_at = Some(at);
        self.measures.duration_ms = Some(at.since(self.started_at).as_millis() as u64);
        self.step(at, StepKind::Done, detail);
    }
}

/// The store key name of a run of `drill` started at `started_at`.
pub fn key(drill: &str, started_at: Timestamp) -> String {
    format!("{drill}/{:020}", started_at.as_millis())
}

/// `d` in milliseconds, for measures.
pub fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_show_their_phase_flat() {
        let mut report = Report {
            drill: "d".into(),
            target: "api/endpoint/a".into(),
            policy: Some("api".into()),
            record: Some("api.example.test.".into()),
            trigger: Trigger { kind: TriggerKind::Schedule, author: "veer".into(), requested_at: None },
            started_at: Timestamp(1_000),
            finished_at: None,
            phase: Phase::Holding { override_id: "o".into(), until: Timestamp(9_000) },
            outcome: None,
            reason: None,
            failed: false,
            steps: vec![],
            measures: Measures::default(),
        };
        report.step(Timestamp(1_000), StepKind::Drain, "drain o written");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["phase"], "holding");
        assert_eq!(json["overrideId"], "o");
        assert_eq!(json["steps"][0]["step"], "drain");
        assert_eq!(serde_json::from_value::<Report>(json).unwrap(), report);
        report.finish(Timestamp(5_000), Outcome::Ok, "restored");
        assert_eq!(report.measures.duration_ms, Some(4_000));
        assert_eq!(report.key(), "d/00000000000000001000");
    }
}
