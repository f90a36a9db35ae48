//! Previewing an override before it is made (`veer drain … --dry-run`, and the
//! impact every mutating command prints, ARCHITECTURE.md §7): plan without it, plan with it,
//! and compare. Pure, like the planner.

use super::{DesiredAnswer, HoldCause, Override, PlanInput, RecordPlan, plan};
use crate::health::HealthState;
use serde::Serialize;

/// What an override would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Impact {
    /// The override previewed.
    pub override_id: String,
    /// Records whose answers would change, or where a guard refuses the override.
    pub records: Vec<RecordImpact>,
}

impl Impact {
    /// Whether a guard would refuse the override on some record.
    pub fn is_refused(&self) -> bool {
        self.records.iter().any(|r| r.refused_by.is_some())
    }
}

/// The override's effect on one record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordImpact {
    /// Policy name.
    pub policy: String,
    /// Record name.
    pub record: String,
    /// Answers planned without the override.
    pub before: Vec<DesiredAnswer>,
    /// Answers planned with it.
    pub after: Vec<DesiredAnswer>,
    /// Published healthy capacity before, in percent of the record's capacity.
    pub healthy_capacity_percent_before: f64,
    /// Published healthy capacity after.
    pub healthy_capacity_percent_after: f64,
    /// The guard that refuses the override, as the planner words it.
    pub refused_by: Option<String>,
    /// For a forced override: the guard it overrides, if any.
    pub guard_bypassed: Option<String>,
}

/// Previews `proposed` against `input` (which must not already hold it): the
/// records it changes, answers before → after, the remaining healthy capacity, and
/// which guard refuses it — or, when forced, which guard it bypasses.
pub fn impact(input: &PlanInput<'_>, proposed: &Override) -> Impact {
    let mut proposed = proposed.clone();
    proposed.created_at = proposed.created_at.min(input.now);
    let base = plan(input);
    let with_overrides: Vec<Override> = input.overrides.iter().cloned().chain([proposed.clone()]).collect();
    let with = plan(&PlanInput { overrides: &with_overrides, ..*input });
    let unforced = proposed.force.then(|| {
        let mut o = proposed.clone();
        o.force = false;
        let list: Vec<Override> = input.overrides.iter().cloned().chain([o]).collect();
        plan(&PlanInput { overrides: &list, ..*input })
    });
    let refusal = |r: &RecordPlan| {
        r.held
            .iter()
            .find(|h| h.cause == HoldCause::Guard && h.override_id.as_deref() == Some(proposed.id.as_str()))
            .map(|h| h.reason.clone())
    };
    let mut records = Vec::new();
    for (index, (b, w)) in base.records.iter().zip(&with.records).enumerate() {
        let refused_by = refusal(w);
        let guard_bypassed = unforced.as_ref().and_then(|u| refusal(&u.records[index]));
        if b.answers == w.answers && refused_by.is_none() && guard_bypassed.is_none() {
            continue;
        }
        records.push(record_impact(input, index, b, w, refused_by, guard_bypassed));
    }
    Impact { override_id: proposed.id, records }
}

/// Previews removing the overrides `ids` from `input.overrides` (`veer undrain`,
/// `unpin`, `unfreeze`): the records whose answers change, before → after.
/// Removing an override hands the record back to the rules, which keep the
/// guards, so nothing refuses a removal.
pub fn removal_impact(input: &PlanInput<'_>, ids: &[String]) -> Impact {
    let base = plan(input);
    let rest: Vec<Override> = input.overrides.iter().filter(|o| !ids.contains(&o.id)).cloned().collect();
    let after = plan(&PlanInput { overrides: &rest, ..*input });
    let records = base
        .records
        .iter()
        .zip(&after.records)
        .enumerate()
        .filter(|(_, (b, a))| b.answers != a.answers)
        .map(|(index, (b, a))| record_impact(input, index, b, a, None, None))
        .collect();
    Impact { override_id: ids.join(","), records }
}

/// One record's answers before → after, with the published healthy capacity of each.
fn record_impact(
    input: &PlanInput<'_>,
    index: usize,
    before: &RecordPlan,
    after: &RecordPlan,
    refused_by: Option<String>,
    guard_bypassed: Option<String>,
) -> RecordImpact {
    let policy = input.policies[index].policy;
    let total = policy.total_capacity().max(1) as f64;
    let healthy = |answers: &[DesiredAnswer]| {
        let capacity: u64 = answers
            .iter()
            .filter(|a| a.weight > 0)
            .filter_map(|a| policy.endpoints().find(|(_, e)| e.id.value == a.endpoint))
            .filter(|(_, e)| {
                input.health.state(&crate::health::EndpointKey::new(policy.name(), e.id.value.as_str()))
                    == HealthState::Up
            })
            .map(|(_, e)| u64::from(e.capacity()))
            .sum();
        capacity as f64 * 100.0 / total
    };
    RecordImpact {
        policy: before.policy.clone(),
        record: before.record.to_string(),
        healthy_capacity_percent_before: healthy(&before.answers),
        healthy_capacity_percent_after: healthy(&after.answers),
        before: before.answers.clone(),
        after: after.answers.clone(),
        refused_by,
        guard_bypassed,
    }
}
