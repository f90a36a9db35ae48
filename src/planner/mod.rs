//! The planner (ARCHITECTURE.md §1, §7): a pure function from (policies, health, observed
//! DNS state, overrides, persisted planner state, now, seed) to a [`Plan`].
//!
//! Pure means: no I/O, no clock reads, no async runtime, no hidden randomness.
//! Every timing decision takes `now` as input and every jitter derives from
//! `seed`, so the same input always yields the same plan — which is what lets
//! property tests and `veer simulate` run it on virtual time.

mod impact;
pub mod overrides;
mod record;
pub mod state;

pub use impact::{Impact, RecordImpact, impact, removal_impact};
pub use overrides::{FreezeScope, Override, OverrideAction, OverrideError, Target, TargetKind};
pub use state::{Join, PlannerState, RecordState, Removal, WarmupState};

use crate::health::HealthView;
use crate::policy::FailoverPolicy;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
pub use veer_provider::{RecordName, Weighting};

/// One policy to plan, with how its answers are published.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    /// The validated policy.
    pub policy: &'a FailoverPolicy,
    /// Its content hash (written into ownership records).
    pub hash: &'a str,
    /// How the record is published: provider weights, or membership only. When a
    /// policy publishes to both kinds, pass `SetOnly` (the same answers go to each
    /// provider, ARCHITECTURE.md §6): weighted providers then get capacity weights over the members.
    pub weighting: Weighting,
}

/// What a provider currently publishes for one record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedRecord {
    /// Endpoint id → published weight; set-only providers report 1 for members.
    /// Endpoints that are not published are absent.
    pub answers: BTreeMap<String, u32>,
}

/// Everything the planner reads.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The policies to plan, one record each.
    pub policies: &'a [PolicyInput<'a>],
    /// The combined health view (ARCHITECTURE.md §6).
    pub health: &'a HealthView,
    /// Observed published state by policy name; a missing entry means unknown or
    /// absent, planned as "nothing published" (only additions, no removals: the
    /// enactor re-reads before it writes anyway).
    pub observed: &'a BTreeMap<String, ObservedRecord>,
    /// All overrides; inactive (expired or future) ones are ignored.
    pub overrides: &'a [Override],
    /// What the previous plan left behind.
    pub state: &'a PlannerState,
    /// The planning instant.
    pub now: Timestamp,
    /// Seed for the warm-up backoff jitter.
    pub seed: u64,
}

/// The planner's output: one [`RecordPlan`] per policy, and the state to persist
/// once the plan is applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Per record, in input order.
    pub records: Vec<RecordPlan>,
    /// The next planner state (persist it only after the plan is applied).
    pub state: PlannerState,
}

impl Plan {
    /// Whether any record changes.
    pub fn has_changes(&self) -> bool {
        self.records.iter().any(RecordPlan::is_changed)
    }
}

/// How a record's answers were chosen this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanMode {
    /// Health, warm-up, velocity and guards.
    Normal,
    /// Every endpoint unhealthy, `onAllUnhealthy: serve-all` (fail open).
    ServeAll,
    /// Every endpoint unhealthy, `onAllUnhealthy: keep-last` (fail static).
    KeepLast,
    /// The checker is impaired: the last known good answers are held (I7).
    Impaired,
    /// A freeze override holds the record.
    Frozen,
    /// A pin override fixes the weights.
    Pinned,
    /// `maxChangesPerHour` is used up: the record is held.
    ChangeBudget,
}

/// The plan for one record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordPlan {
    /// Policy name.
    pub policy: String,
    /// The managed name.
    pub record: RecordName,
    /// Content hash of the policy.
    pub policy_hash: String,
    /// How the answers are published.
    pub weighting: Weighting,
    /// How the answers were chosen.
    pub mode: PlanMode,
    /// The desired answers, in policy order; never empty once anything is known.
    pub answers: Vec<DesiredAnswer>,
    /// The difference from the observed (or last planned) answers.
    pub changes: Vec<AnswerChange>,
    /// The record's generation: +1 when `changes` is not empty.
    pub generation: u64,
    /// Decisions that were wanted but are held, with why.
    pub held: Vec<Held>,
}

impl RecordPlan {
    /// Whether the record changes.
    pub fn is_changed(&self) -> bool {
        !self.changes.is_empty()
    }

    /// The desired answers in the form a provider reports them back.
    pub fn published(&self) -> ObservedRecord {
        ObservedRecord { answers: self.answers.iter().map(|a| (a.endpoint.clone(), a.weight)).collect() }
    }
}

/// One desired answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredAnswer {
    /// Endpoint id.
    pub endpoint: String,
    /// The record data.
    pub address: String,
    /// Fraction of the record's traffic (0–1); set-only members share equally.
    pub share: f64,
    /// Provider weight: scaled so the largest is `max_weight` (weighted), 1 (set-only).
    pub weight: u32,
}

/// One answer that changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnswerChange {
    /// Endpoint id.
    pub endpoint: String,
    /// Published weight before (`None`: not published).
    pub from: Option<u32>,
    /// Weight after (`None`: removed).
    pub to: Option<u32>,
    /// Why, for people: "use1-a unhealthy (3/3 vantages) → weight 0".
    pub reason: String,
}

/// Why a decision is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldCause {
    /// `shift.maxRemovePercent` per `shift.window` is used up (I5).
    Velocity,
    /// `shift.maxChangesPerHour` is used up (I5).
    ChangeBudget,
    /// A guard refused an override or limited automation (I4).
    Guard,
    /// A freeze override.
    Freeze,
    /// The checker is impaired (I7).
    Impaired,
    /// All endpoints unhealthy with `keep-last` (I7).
    KeepLast,
    /// Set-only re-joining: `warmup.maxJoinPercent` per stage (I6).
    JoinCap,
    /// Waiting for the jittered backoff after a failed warm-up (I6).
    Backoff,
}

/// A held decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Held {
    /// The endpoint concerned, if one.
    pub endpoint: Option<String>,
    /// The override concerned, if one.
    pub override_id: Option<String>,
    /// Category.
    pub cause: HoldCause,
    /// For people.
    pub reason: String,
}

/// Plans every record.
///
/// Rules per endpoint of a `weighted` record (ARCHITECTURE.md §6); `failover` applies them to
/// the serving pool and gives the other pools 0:
///
/// | health    | override        | warm-up state          | desired level            | note                              |
/// |-----------|-----------------|------------------------|--------------------------|-----------------------------------|
/// | up        | –               | full                   | 100 %                    |                                   |
/// | up        | –               | warming s, held ≥ hold | stage s+1                | one stage per plan, never more    |
/// | up        | –               | warming s, held < hold | stage s                  |                                   |
/// | up        | –               | out, backoff passed    | stage 0                  | set-only: within `maxJoinPercent` |
/// | up        | –               | out, backoff pending   | 0                        | held: backoff                     |
/// | down      | –               | published              | 0                        | within the velocity cap, or held  |
/// | unknown   | –               | any                    | as published             | no data yet: keep                 |
/// | any       | drain           | any                    | 0                        | no velocity cap; guards unless forced |
/// | any       | pin             | any                    | pinned weight            | guards unless forced              |
/// | any       | failover (away) | any                    | 0                        | no velocity cap; guards unless forced |
/// | all down  | –               | any                    | serve-all: 100 % / keep-last: as published |                     |
/// | any       | freeze          | any                    | as published             | held                              |
/// | impaired  | –               | any                    | as published             | held (fail static)                |
///
/// Weights are capacity × level, then scaled so the largest is the provider's
/// `max_weight`; set-only records publish members (level > 0) with equal shares.
/// `failover` serves the first pool whose healthy capacity meets the guards against
/// its own capacity (or the pool a failover override names); while a returning
/// higher pool warms up, the pool that served until now keeps serving beside it
/// (the bridge), and leaves once the new pool is at full weight.
///
/// Order of rules: impaired checker → pin → drains → all-unhealthy → serving pool
/// (with a tentative bridge) → warm-up → guard restores → never-empty → bridge end
/// → velocity cap → freeze and change budget (these two hold a plan only when it
/// would change something). Each rule reads only what the rules before it decided,
/// never a forecast of what later rules will do, so re-planning from the published
/// plan retraces the same decisions (I9).
///
/// # Guarantees
/// - Deterministic: equal inputs give equal plans (no clock, no I/O, no global RNG).
/// - I1: a record that has or had answers is never planned empty, even under forced drains.
/// - I4: automation and unforced overrides never take published capacity below
///   `minHealthyEndpoints` / `minCapacityPercent` while healthy capacity could meet them.
/// - I5: automated removals per `shift.window` stay within `maxRemovePercent` of the
///   record's capacity (drains and the pools a failover override moves traffic from
///   are operator changes, outside it; removals from the serving pools stay within
///   it); a record changes at most `maxChangesPerHour` times per hour (forced
///   overrides, fail-open serve-all and first answers excepted); excess is held and
///   reported.
/// - I6: an endpoint rises at most one warm-up stage per plan and per `hold`; a failure
///   during warm-up resets it once it is removed, and it retries after a jittered backoff.
/// - I7: an impaired checker holds the last answers; all-unhealthy follows `onAllUnhealthy`.
/// - I9: re-planning with the plan applied (observed = plan, state = plan's state,
///   same `now`) yields no change.
///
/// # Assumptions
/// - Policies are validated (`veer validate`): unique endpoint ids, stages ascending to 100.
/// - The returned state is persisted only when the plan is applied; the velocity and
///   change ledgers count planned changes as applied.
/// - `now` never goes backwards between plans of one state.
///
/// # Caveats
/// - A removal larger than the whole velocity budget (one endpoint above
///   `maxRemovePercent` of the record) is held until operators act: I5 is strict.
/// - Without stored warm-up state (a new leader), levels are inferred from the
///   observed weights, rounded to the nearest stage within the provider's rounding.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let mut next = PlannerState::default();
    let mut records = Vec::with_capacity(input.policies.len());
    for policy in input.policies {
        let name = policy.policy.name();
        let (record, state) =
            record::plan_record(input, policy, input.observed.get(name), input.state.records.get(name));
        next.records.insert(name.to_string(), state);
        records.push(record);
    }
    Plan { records, state: next }
}

#[cfg(test)]
mod tests;
