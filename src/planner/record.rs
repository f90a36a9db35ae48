//! Planning one record: the rules of ARCHITECTURE.md §6 in the order they bind.
//!
//! 1. Holds that need no computation: checker impaired (I7).
//! 2. Pin (operator weights), subject to guards unless forced.
//! 3. Otherwise the normal path: drains (guards unless forced), all-unhealthy,
//!    serving pool (failover, with a tentative bridge), warm-up transitions, guard
//!    restores, never-empty, the bridge's end, the velocity cap on automated removals.
//! 4. Holds that need the result: freeze and `maxChangesPerHour` hold a plan only
//!    when it would change something, so the held decisions can be shown.

use super::overrides::Applicable;
use super::state::{Join, RecordState, Removal, WarmupState, backoff};
use super::{
    AnswerChange, DesiredAnswer, Held, HoldCause, ObservedRecord, PlanInput, PlanMode, PolicyInput, RecordPlan,
    Weighting,
};
use crate::health::{EndpointHealth, HealthState};
use crate::policy::model::{OnAllUnhealthy, Routing};
use crate::time::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;

/// The change ledger's window: `maxChangesPerHour`.
const HOUR: Duration = Duration::from_secs(3600);
/// Slack for floating-point capacity comparisons.
const EPSILON: f64 = 1e-9;

/// One endpoint as the record planner sees it.
struct Ep<'p> {
    id: &'p str,
    pool: usize,
    pool_name: &'p str,
    address: &'p str,
    capacity: u64,
    health: EndpointHealth,
}

impl Ep<'_> {
    fn state(&self) -> HealthState {
        self.health.state
    }
}

/// The record's capacity floors (I4).
struct Floor {
    count_min: u32,
    capacity_percent_min: f64,
    routing: Routing,
}

impl Floor {
    /// Why `members` fall short of the floor, or `None` when they meet it. For
    /// `failover`, the floor is met when some pool meets it against its own capacity.
    fn unmet(&self, eps: &[Ep<'_>], members: &[bool], pools: usize) -> Option<String> {
        let check = |filter: &dyn Fn(usize) -> bool| -> Option<String> {
            let reference: u64 = (0..eps.len()).filter(|i| filter(*i)).map(|i| eps[i].capacity).sum();
            let count = (0..eps.len()).filter(|i| filter(*i) && members[*i]).count() as u32;
            let capacity: u64 = (0..eps.len()).filter(|i| filter(*i) && members[*i]).map(|i| eps[i].capacity).sum();
            let percent = if reference == 0 { 0.0 } else { capacity as f64 * 100.0 / reference as f64 };
            if count < self.count_min {
                Some(format!("{count} endpoint(s) left, below minHealthyEndpoints {}", self.count_min))
            } else if percent + EPSILON < self.capacity_percent_min {
                Some(format!("{percent:.0}% of capacity left, below minCapacityPercent {}%", self.capacity_percent_min))
            } else {
                None
            }
        };
        match self.routing {
            Routing::Weighted => check(&|_| true),
            Routing::Failover => {
                let mut first = None;
                for pool in 0..pools {
                    match check(&|i| eps[i].pool == pool) {
                        None => return None,
                        Some(why) => {
                            first.get_or_insert(why);
                        }
                    }
                }
                first
            }
        }
    }
}

/// What was decided for one endpoint, before scaling.
#[derive(Clone)]
struct Decision {
    /// Fraction of full weight (0 = not published).
    level: f64,
    /// The warm-up state if the plan is applied.
    next: WarmupState,
    /// Why it changes, if it does.
    reason: Option<String>,
    /// The change comes from a forced override.
    forced: bool,
}

/// The plan for one record and its next state.
pub(super) fn plan_record(
    input: &PlanInput<'_>,
    policy_input: &PolicyInput<'_>,
    observed: Option<&ObservedRecord>,
    previous: Option<&RecordState>,
) -> (RecordPlan, RecordState) {
    let policy = policy_input.policy;
    let name = policy.name();
    let now = input.now;
    let spec = &policy.spec;
    let stages = spec.warmup.stages();
    let set_only = matches!(policy_input.weighting, Weighting::SetOnly);

    let unknown = EndpointHealth { state: HealthState::Unknown, vantages_down: 0, vantages_fresh: 0 };
    let mut eps = Vec::new();
    for (pool_index, pool) in spec.pools.value.iter().enumerate() {
        for e in &pool.endpoints.value {
            eps.push(Ep {
                id: &e.id.value,
                pool: pool_index,
                pool_name: &pool.name.value,
                address: &e.address.value,
                capacity: u64::from(e.capacity()),
                health: unknown,
            });
        }
    }
    // Endpoint indices in id order: every keyed input (health view, observed
    // answers, stored warm-up) is then read by one merge instead of a lookup each.
    let mut order: Vec<usize> = (0..eps.len()).collect();
    order.sort_unstable_by_key(|i| eps[*i].id);
    let health = merge_by_id(&eps, &order, input.health.policy_endpoints(name).map(|(k, h)| (k, *h)));
    for (e, h) in eps.iter_mut().zip(health) {
        e.health = h.unwrap_or(unknown);
    }
    let pools = spec.pools.value.len();
    let total: u64 = eps.iter().map(|e| e.capacity).sum();

    let empty = RecordState::default();
    let previous = previous.unwrap_or(&empty);
    let window = spec.shift.window();
    let hold = spec.warmup.hold();
    // Only the ledgers carry over as they are; warm-up states are rebuilt.
    let state = RecordState {
        endpoints: BTreeMap::new(),
        removals: previous.removals.iter().filter(|r| now.since(r.at) < window).cloned().collect(),
        changes: previous.changes.iter().filter(|t| now.since(**t) < HOUR).copied().collect(),
        // A join counts for `hold` and at least for the instant it happened (`hold: 0s`).
        joins: previous.joins.iter().filter(|j| now.since(j.at) < hold || j.at >= now).cloned().collect(),
        generation: previous.generation,
    };
    let nothing = BTreeMap::new();
    let published: &BTreeMap<String, u32> = observed.map_or(&nothing, |o| &o.answers);
    let published_weight: Vec<u32> = merge_by_id(&eps, &order, published.iter().map(|(k, w)| (k.as_str(), *w)))
        .into_iter()
        .map(|w| w.unwrap_or(0))
        .collect();
    let stored = merge_by_id(&eps, &order, previous.endpoints.iter().map(|(k, s)| (k.as_str(), *s)));
    let is_published: Vec<bool> = published_weight.iter().map(|w| *w > 0).collect();
    let anything_published = is_published.iter().any(|p| *p);
    let warm = infer_warmup(&eps, &stored, &published_weight, &stages, set_only, now);
    let floor = Floor {
        count_min: spec.guards.min_healthy_endpoints(),
        capacity_percent_min: spec.guards.min_capacity_percent(),
        routing: spec.routing.value,
    };
    let overrides = Applicable::select(input.overrides, policy, now);

    let mut ctx = Ctx {
        input,
        policy_input,
        eps: &eps,
        pools,
        total,
        stages: &stages,
        set_only,
        is_published: &is_published,
        warm: &warm,
        floor,
        held: Vec::new(),
        state: &state,
    };

    // 1. An impaired checker says nothing about the fleet: hold (I7).
    let outcome = if let (Some(why), true) = (&input.health.impaired, anything_published) {
        ctx.held.push(Held {
            endpoint: None,
            override_id: None,
            cause: HoldCause::Impaired,
            reason: format!("checker impaired ({why}): holding the last known good answers"),
        });
        Outcome::hold(PlanMode::Impaired)
    } else {
        let pinned = overrides.pin.and_then(|pin| ctx.pin(pin));
        pinned.unwrap_or_else(|| ctx.normal(&overrides))
    };

    // 2. Weights, diff, and the holds that need the result.
    let mut outcome = outcome;
    let mut weights = ctx.weights(&outcome, &published_weight);
    let mut changes = diff(&eps, published, &published_weight, &weights, &outcome);
    let forced = outcome.decisions.iter().flatten().any(|d| d.forced && d.reason.is_some());
    if !changes.is_empty() && anything_published {
        let hold = if let Some(freeze) = overrides.freeze {
            Some((
                PlanMode::Frozen,
                HoldCause::Freeze,
                format!("frozen by override {} ({}, by {})", freeze.id, freeze.reason, freeze.author),
            ))
        } else if !forced
            && outcome.mode != PlanMode::ServeAll
            && ctx.state.changes.len() >= spec.shift.max_changes_per_hour() as usize
        {
            Some((
                PlanMode::ChangeBudget,
                HoldCause::ChangeBudget,
                format!(
                    "{} changes in the last hour reach maxChangesPerHour {}",
                    ctx.state.changes.len(),
                    spec.shift.max_changes_per_hour()
                ),
            ))
        } else {
            None
        };
        if let Some((mode, cause, why)) = hold {
            for change in &changes {
                ctx.held.push(Held {
                    endpoint: Some(change.endpoint.clone()),
                    override_id: None,
                    cause,
                    reason: format!("{why}: {}", change.reason),
                });
            }
            outcome = Outcome::hold(mode);
            weights = ctx.weights(&outcome, &published_weight);
            changes = Vec::new();
        }
    }

    // 3. Commit: the next state describes the world once the plan is applied.
    let held = std::mem::take(&mut ctx.held);
    let mut next = state;
    if !changes.is_empty() {
        next.generation += 1;
        next.changes.push(now);
        next.removals.extend(outcome.removals.iter().cloned());
        next.joins.extend(outcome.joins.iter().cloned());
    }
    next.endpoints = order
        .iter()
        .map(|&i| {
            let state = match outcome.decisions.get(i) {
                Some(Some(d)) => d.next,
                // Under an impaired checker health says nothing: keep everything.
                _ if outcome.mode == PlanMode::Impaired => warm[i],
                // Held: nothing moves, but health that broke resets the hold clock.
                _ => keep_warm(&warm[i], &eps[i], now),
            };
            (eps[i].id.to_string(), state)
        })
        .collect();
    let total_weight: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    let answers: Vec<DesiredAnswer> = eps
        .iter()
        .zip(&weights)
        .filter(|(_, w)| **w > 0)
        .map(|(e, w)| DesiredAnswer {
            endpoint: e.id.to_string(),
            address: e.address.to_string(),
            share: *w as f64 / total_weight as f64,
            weight: *w,
        })
        .collect();
    let plan = RecordPlan {
        policy: name.to_string(),
        record: policy.record_name().clone(),
        policy_hash: policy_input.hash.to_string(),
        weighting: policy_input.weighting,
        mode: outcome.mode,
        answers,
        changes,
        generation: next.generation,
        held,
    };
    (plan, next)
}

/// Failed warm-up attempts recorded in a state.
fn warm_attempts(warm: &WarmupState) -> u32 {
    match warm {
        WarmupState::Out { attempts, .. } | WarmupState::Warming { attempts, .. } => *attempts,
        WarmupState::Full => 0,
    }
}

/// Whether a stage begun at `since` has lasted its `hold` by `now`. A stage always
/// lasts past the instant it began, even with `hold: 0s`, so that re-planning at
/// the same instant never climbs another stage (I6, I9).
fn stage_done(since: Timestamp, now: Timestamp, hold: Duration) -> bool {
    now > since && now.since(since) >= hold
}

/// Values of a source sorted by id (a `BTreeMap`'s order), one per endpoint:
/// `order` lists endpoint indices in id order, so one merge pass suffices.
fn merge_by_id<'s, V: Copy>(
    eps: &[Ep<'_>],
    order: &[usize],
    source: impl Iterator<Item = (&'s str, V)>,
) -> Vec<Option<V>> {
    let mut out = vec![None; eps.len()];
    let mut source = source.peekable();
    for &i in order {
        let id = eps[i].id;
        while source.next_if(|(k, _)| *k < id).is_some() {}
        if let Some((_, v)) = source.next_if(|(k, _)| *k == id) {
            out[i] = Some(v);
        }
    }
    out
}

/// A warm-up state with nothing applied: a warming endpoint that is not healthy
/// loses its continuous-health clock (I6: each stage needs `hold` of continuous health).
fn keep_warm(warm: &WarmupState, ep: &Ep<'_>, now: Timestamp) -> WarmupState {
    match (*warm, ep.state()) {
        (WarmupState::Warming { stage, attempts, .. }, HealthState::Down) => {
            WarmupState::Warming { stage, since: now, attempts }
        }
        (w, _) => w,
    }
}

/// Warm-up states, taken from the store, or inferred from what is published when
/// the store has none (leader start without state): a published endpoint keeps its
/// relative level rounded to a stage (within the provider's integer rounding), so
/// a new leader does not restart a serving fleet's warm-up.
fn infer_warmup(
    eps: &[Ep<'_>],
    stored: &[Option<WarmupState>],
    published: &[u32],
    stages: &[f64],
    set_only: bool,
    now: Timestamp,
) -> Vec<WarmupState> {
    // Provider weights are rounded integers: compare the most each endpoint's
    // weight could stand for with the least the top one could.
    let upper = |i: usize| (published[i] as f64 + 0.5) / eps[i].capacity.max(1) as f64;
    let lower = |i: usize| (published[i] as f64 - 0.5).max(0.0) / eps[i].capacity.max(1) as f64;
    let top = (0..eps.len()).filter(|i| published[*i] > 0).map(lower).fold(0.0, f64::max);
    let last = stages.len().saturating_sub(1);
    (0..eps.len())
        .map(|i| {
            if let Some(s) = stored[i] {
                return s;
            }
            if published[i] == 0 {
                return WarmupState::Out { retry_at: now, attempts: 0 };
            }
            if set_only {
                return WarmupState::Full;
            }
            let percent = if top > 0.0 { upper(i) / top * 100.0 } else { 100.0 };
            let stage = stages.iter().rposition(|s| *s <= percent + 0.5).unwrap_or(0);
            if stage >= last { WarmupState::Full } else { WarmupState::Warming { stage, since: now, attempts: 0 } }
        })
        .collect()
}

/// The result of a planning path.
struct Outcome {
    mode: PlanMode,
    /// Per endpoint; `None` when the path holds the endpoint as published.
    decisions: Vec<Option<Decision>>,
    /// Pinned relative weights replace capacity × level.
    pinned: Option<Vec<u64>>,
    /// Automated removals to add to the velocity ledger.
    removals: Vec<Removal>,
    /// Set-only joins to add to the join ledger.
    joins: Vec<Join>,
    /// Hold everything as published.
    hold_all: bool,
}

impl Outcome {
    fn hold(mode: PlanMode) -> Self {
        Outcome { mode, decisions: Vec::new(), pinned: None, removals: Vec::new(), joins: Vec::new(), hold_all: true }
    }
}

/// Working context of one record's plan.
struct Ctx<'a, 'p> {
    input: &'a PlanInput<'a>,
    policy_input: &'a PolicyInput<'a>,
    eps: &'a [Ep<'p>],
    pools: usize,
    total: u64,
    stages: &'a [f64],
    set_only: bool,
    is_published: &'a [bool],
    warm: &'a [WarmupState],
    floor: Floor,
    held: Vec<Held>,
    state: &'a RecordState,
}

impl Ctx<'_, '_> {
    fn hold_note(&mut self, endpoint: Option<&str>, override_id: Option<&str>, cause: HoldCause, reason: String) {
        self.held.push(Held {
            endpoint: endpoint.map(str::to_string),
            override_id: override_id.map(str::to_string),
            cause,
            reason,
        });
    }

    fn percent(&self, level: f64) -> String {
        format!("{}%", (level * 1000.0).round() / 10.0)
    }

    /// Whether `pool` alone meets the floor with `members`.
    fn qualifies(&self, pool: usize, members: &[bool]) -> bool {
        let in_pool: Vec<bool> = members.iter().zip(self.eps).map(|(m, e)| *m && e.pool == pool).collect();
        in_pool.iter().any(|m| *m) && self.floor.unmet(self.eps, &in_pool, self.pools).is_none()
    }

    /// Whether endpoint `i` is a member of `bridge`, the pool that served until
    /// now: published at a warm level, it keeps serving while the active pool warms up.
    fn bridges(&self, i: usize, bridge: Option<usize>) -> bool {
        Some(self.eps[i].pool) == bridge && self.is_published[i] && self.warm[i].level(self.stages) > 0.0
    }

    /// Provider weights for an outcome.
    fn weights(&self, outcome: &Outcome, published: &[u32]) -> Vec<u32> {
        if outcome.hold_all {
            return published.to_vec();
        }
        let units: Vec<f64> = match &outcome.pinned {
            Some(pins) => pins.iter().map(|w| *w as f64).collect(),
            None => outcome
                .decisions
                .iter()
                .enumerate()
                .map(|(i, d)| match d {
                    Some(d) => d.level * self.eps[i].capacity as f64,
                    None => f64::NAN,
                })
                .collect(),
        };
        match self.policy_input.weighting {
            Weighting::SetOnly => units
                .iter()
                .enumerate()
                .map(|(i, u)| if u.is_nan() { published[i].min(1) } else { u32::from(*u > 0.0) })
                .collect(),
            Weighting::Weighted { max_weight } => {
                // Endpoints held as published keep their weight; the others scale so
                // that the largest is `max_weight` (or the held maximum, when larger
                // than every computed weight's scale allows).
                let top = units.iter().filter(|u| !u.is_nan()).fold(0.0, |a: f64, b| a.max(*b));
                units
                    .iter()
                    .enumerate()
                    .map(|(i, u)| {
                        if u.is_nan() {
                            published[i]
                        } else if *u <= 0.0 || top <= 0.0 {
                            0
                        } else {
                            ((u / top * f64::from(max_weight)).round() as u32).clamp(1, max_weight)
                        }
                    })
                    .collect()
            }
        }
    }

    /// A pin, unless a guard refuses it (guards do not bind forced pins; nothing
    /// publishes zero answers).
    fn pin(&mut self, pin: &super::Override) -> Option<Outcome> {
        let super::OverrideAction::Pin { weights, .. } = &pin.action else { return None };
        let pins: Vec<u64> = self.eps.iter().map(|e| u64::from(weights.get(e.id).copied().unwrap_or(0))).collect();
        if pins.iter().all(|w| *w == 0) {
            self.hold_note(
                None,
                Some(&pin.id),
                HoldCause::Guard,
                format!("pin {} refused: it names no endpoint of this record with a weight above 0", pin.id),
            );
            return None;
        }
        if !pin.force {
            let members: Vec<bool> =
                self.eps.iter().zip(&pins).map(|(e, w)| *w > 0 && e.state() == HealthState::Up).collect();
            if let Some(why) = self.floor.unmet(self.eps, &members, self.pools) {
                self.hold_note(
                    None,
                    Some(&pin.id),
                    HoldCause::Guard,
                    format!("pin {} refused by guard: {why}", pin.id),
                );
                return None;
            }
        }
        let decisions = self
            .eps
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let level = if pins[i] > 0 { 1.0 } else { 0.0 };
                // Pinned out is like drained: it returns through warm-up when the pin
                // ends. Pinned in from out of service starts warming.
                let now = self.input.now;
                let next = match (pins[i] > 0, self.warm[i]) {
                    (false, _) => WarmupState::Out { retry_at: now, attempts: 0 },
                    (true, WarmupState::Out { attempts, .. }) if self.stages.len() > 1 => {
                        WarmupState::Warming { stage: 0, since: now, attempts }
                    }
                    (true, WarmupState::Out { .. }) => WarmupState::Full,
                    (true, warm) => warm,
                };
                Some(Decision {
                    level,
                    next,
                    reason: Some(format!("{} pinned to {} by {} ({})", e.id, pins[i], pin.id, pin.reason)),
                    forced: pin.force,
                })
            })
            .collect();
        Some(Outcome {
            mode: PlanMode::Pinned,
            decisions,
            pinned: Some(pins),
            removals: Vec::new(),
            joins: Vec::new(),
            hold_all: false,
        })
    }

    /// Health, drains, failover, warm-up, guards, velocity, never-empty.
    fn normal(&mut self, overrides: &Applicable<'_>) -> Outcome {
        let now = self.input.now;
        let policy = self.policy_input.policy;
        let spec = &policy.spec;
        let n = self.eps.len();
        let up: Vec<bool> = self.eps.iter().map(|e| e.state() == HealthState::Up).collect();

        // Drains: operator removals outside the velocity cap, refused as a whole when
        // they would break a guard (unless forced).
        let mut drained: Vec<Option<&super::Override>> = vec![None; n];
        for drain in &overrides.drains {
            let super::OverrideAction::Drain { target } = &drain.action else { continue };
            let covered: Vec<usize> = (0..n)
                .filter(|i| target.covers(policy.name(), self.eps[*i].pool_name, self.eps[*i].id))
                .filter(|i| drained[*i].is_none())
                .collect();
            if !drain.force {
                let before: Vec<bool> = (0..n).map(|i| up[i] && drained[i].is_none()).collect();
                let mut after = before.clone();
                covered.iter().for_each(|i| after[*i] = false);
                if after != before
                    && let Some(why) = self.floor.unmet(self.eps, &after, self.pools)
                {
                    self.hold_note(
                        None,
                        Some(&drain.id),
                        HoldCause::Guard,
                        format!("drain {} of {target} refused by guard: {why} (use force to override)", drain.id),
                    );
                    continue;
                }
            }
            covered.iter().for_each(|i| drained[*i] = Some(drain));
        }
        let available: Vec<bool> = (0..n).map(|i| up[i] && drained[i].is_none()).collect();

        // All unhealthy: fail open or fail static (I7).
        if self.eps.iter().all(|e| e.state() == HealthState::Down) {
            return self.all_unhealthy(&drained);
        }

        // Failover: the serving pool, and the pool that bridges its warm-up. The
        // bridge is tentative here: whether the serving pool is warm is known only
        // once warm-up, guard restores and never-empty have decided its endpoints,
        // and the bridge ends below if it is. Deciding that from those decisions (not
        // from a forecast of them) keeps one answer to "who serves" for every later
        // rule, the same answer that re-planning from the published plan finds (I9).
        let mut serving: Vec<bool> = vec![true; n];
        let mut bridge_pool = None;
        let mut immediate = false;
        let mut forced_pool = false;
        let mut active_pool = None;
        // The serving pool was chosen by an operator's failover override: endpoints
        // of the pools it takes traffic from leave as operator changes, outside the
        // velocity cap (I5 bounds automated removals, as the simulator's checker does).
        let mut operator_pool = false;
        if spec.routing.value == crate::policy::model::Routing::Failover {
            let mut active = None;
            if let Some(o) = overrides.failover
                && let super::OverrideAction::FailoverToPool { pool, immediate: now_flag, .. } = &o.action
            {
                match spec.pools.value.iter().position(|p| &p.name.value == pool) {
                    Some(index) if o.force || self.qualifies(index, &available) => {
                        active = Some(index);
                        immediate = *now_flag;
                        forced_pool = o.force;
                        operator_pool = true;
                    }
                    Some(_) => self.hold_note(
                        None,
                        Some(&o.id),
                        HoldCause::Guard,
                        format!("failover {} to pool {pool} refused by guard: the pool lacks healthy capacity", o.id),
                    ),
                    None => self.hold_note(
                        None,
                        Some(&o.id),
                        HoldCause::Guard,
                        format!("failover {} names unknown pool {pool}", o.id),
                    ),
                }
            }
            let active = active
                .or_else(|| (0..self.pools).find(|p| self.qualifies(*p, &available)))
                .or_else(|| (0..self.pools).find(|p| (0..n).any(|i| available[i] && self.eps[i].pool == *p)));
            if let Some(active) = active {
                active_pool = Some(active);
                // The pool that served until now: the first other pool with healthy
                // published members. A bridge needs an active pool that can warm up.
                let warmable = (0..n).any(|i| self.eps[i].pool == active && available[i]);
                bridge_pool = (0..self.pools)
                    .filter(|p| *p != active && warmable)
                    .find(|p| (0..n).any(|i| available[i] && self.bridges(i, Some(*p))));
                for (i, serves) in serving.iter_mut().enumerate() {
                    *serves = self.eps[i].pool == active || self.bridges(i, bridge_pool);
                }
            }
        }
        let active_name = active_pool.map_or("none", |p| spec.pools.value[p].name.value.as_str());
        let not_serving = |e: &Ep<'_>| Decision {
            level: 0.0,
            next: WarmupState::Out { retry_at: now, attempts: 0 },
            reason: Some(format!(
                "{} pool {} is not serving (failover to {active_name}) → weight 0",
                e.id, e.pool_name
            )),
            forced: false,
        };

        // Warm-up transitions and desired levels.
        let hold = spec.warmup.hold();
        let last = self.stages.len() - 1;
        let join_limit = spec.warmup.max_join_percent() / 100.0 * self.total as f64;
        // At 100 % there is no cap: a rejoin is never held because the first
        // publish (every endpoint joining at once) used the whole window.
        let join_capped = spec.warmup.max_join_percent() < 100.0;
        let mut joined: f64 = self.state.joins.iter().map(|j| j.capacity as f64).sum();
        let mut joined_count = self.state.joins.len();
        let mut joins = Vec::new();
        let mut decisions: Vec<Decision> = Vec::with_capacity(n);
        let start_stage = |attempts: u32| {
            if last == 0 { WarmupState::Full } else { WarmupState::Warming { stage: 0, since: now, attempts } }
        };
        for i in 0..n {
            let e = &self.eps[i];
            let warm = self.warm[i];
            let level_now = warm.level(self.stages);
            let published_level = if self.is_published[i] && level_now == 0.0 { 1.0 } else { level_now };
            let d = if e.state() == HealthState::Unknown {
                // No data yet: keep what is published, advance nothing.
                let level = if self.is_published[i] { published_level } else { 0.0 };
                Decision { level, next: warm, reason: None, forced: false }
            } else if let Some(o) = drained[i] {
                let why = format!(
                    "{} drained by {} ({}, by {}){} → weight 0",
                    e.id,
                    o.id,
                    o.reason,
                    o.author,
                    if o.force { " [forced]" } else { "" }
                );
                Decision {
                    level: 0.0,
                    next: WarmupState::Out { retry_at: now, attempts: 0 },
                    reason: Some(why),
                    forced: o.force,
                }
            } else if e.state() == HealthState::Down {
                let attempts = match warm {
                    WarmupState::Warming { attempts, .. } => attempts + 1,
                    WarmupState::Out { attempts, .. } => attempts,
                    WarmupState::Full => 0,
                };
                let retry_at = match warm {
                    WarmupState::Warming { .. } => {
                        now.add(backoff(self.input.seed, policy.name(), e.id, attempts, hold))
                    }
                    WarmupState::Out { retry_at, .. } => retry_at,
                    WarmupState::Full => now,
                };
                let reason = format!(
                    "{} unhealthy ({}/{} vantages) → weight 0",
                    e.id, e.health.vantages_down, e.health.vantages_fresh
                );
                Decision {
                    level: 0.0,
                    next: WarmupState::Out { retry_at, attempts },
                    reason: Some(reason),
                    forced: false,
                }
            } else if !serving[i] {
                not_serving(e)
            } else {
                match warm {
                    WarmupState::Full => Decision { level: 1.0, next: warm, reason: None, forced: false },
                    WarmupState::Warming { stage, since, attempts } => {
                        if immediate && active_pool == Some(e.pool) {
                            let reason = format!("{} warm-up skipped by failover --now → 100%", e.id);
                            Decision { level: 1.0, next: WarmupState::Full, reason: Some(reason), forced: forced_pool }
                        } else if stage_done(since, now, hold) {
                            let next = if stage + 1 >= last {
                                WarmupState::Full
                            } else {
                                WarmupState::Warming { stage: stage + 1, since: now, attempts }
                            };
                            let level = next.level(self.stages);
                            let reason = format!(
                                "{} warm-up {} → {}",
                                e.id,
                                self.percent(warm.level(self.stages)),
                                self.percent(level)
                            );
                            Decision { level, next, reason: Some(reason), forced: false }
                        } else {
                            Decision { level: level_now, next: warm, reason: None, forced: false }
                        }
                    }
                    WarmupState::Out { retry_at, attempts } => {
                        if now < retry_at {
                            self.hold_note(
                                Some(e.id),
                                None,
                                HoldCause::Backoff,
                                format!(
                                    "{} healthy, next warm-up attempt after backoff at {}s",
                                    e.id,
                                    retry_at.as_millis() / 1000
                                ),
                            );
                            Decision { level: 0.0, next: warm, reason: None, forced: false }
                        } else if self.set_only
                            && join_capped
                            && joined_count > 0
                            && joined + e.capacity as f64 > join_limit + EPSILON
                        {
                            self.hold_note(
                                Some(e.id),
                                None,
                                HoldCause::JoinCap,
                                format!(
                                    "{} waits to rejoin: maxJoinPercent {}% per stage is used",
                                    e.id,
                                    spec.warmup.max_join_percent()
                                ),
                            );
                            Decision { level: 0.0, next: warm, reason: None, forced: false }
                        } else {
                            let next = if immediate && active_pool == Some(e.pool) {
                                WarmupState::Full
                            } else {
                                start_stage(attempts)
                            };
                            if self.set_only {
                                joined += e.capacity as f64;
                                joined_count += 1;
                                joins.push(Join { at: now, endpoint: e.id.to_string(), capacity: e.capacity });
                            }
                            let level = if self.set_only { 1.0 } else { next.level(self.stages) };
                            let skipped = immediate && active_pool == Some(e.pool) && self.stages.len() > 1;
                            let reason = if skipped {
                                format!("{} joins at 100%: warm-up skipped by failover --now", e.id)
                            } else if self.set_only {
                                format!("{} healthy, rejoins (staged re-joining)", e.id)
                            } else {
                                format!("{} healthy, warm-up starts at {}", e.id, self.percent(level))
                            };
                            Decision { level, next, reason: Some(reason), forced: false }
                        }
                    }
                }
            };
            let d = if self.set_only && d.level > 0.0 { Decision { level: 1.0, ..d } } else { d };
            decisions.push(d);
        }

        // Endpoints brought in by a guard or never-empty start warming, except in a
        // pool a `failover --now` override sends traffic to.
        let start_for = |i: usize, attempts: u32| {
            if immediate && active_pool == Some(self.eps[i].pool) { WarmupState::Full } else { start_stage(attempts) }
        };
        // Guards (I4): restore healthy endpoints held back by warm-up pacing when the
        // published set would fall below the floor.
        let members = |decisions: &[Decision]| -> Vec<bool> { decisions.iter().map(|d| d.level > 0.0).collect() };
        if let Some(why) = self.floor.unmet(self.eps, &members(&decisions), self.pools) {
            let mut restored = false;
            for i in 0..n {
                if self.floor.unmet(self.eps, &members(&decisions), self.pools).is_none() {
                    break;
                }
                if available[i] && serving[i] && decisions[i].level == 0.0 {
                    let next = start_for(i, 0);
                    let level = if self.set_only { 1.0 } else { next.level(self.stages) };
                    let reason =
                        format!("{} restored at {}: guard needs it ({why})", self.eps[i].id, self.percent(level));
                    if self.set_only {
                        joins.push(Join {
                            at: now,
                            endpoint: self.eps[i].id.to_string(),
                            capacity: self.eps[i].capacity,
                        });
                    }
                    decisions[i] = Decision { level, next, reason: Some(reason), forced: false };
                    restored = true;
                }
            }
            let still = self.floor.unmet(self.eps, &members(&decisions), self.pools);
            if let Some(still) = still.filter(|_| restored || !available.iter().any(|a| *a)) {
                self.hold_note(
                    None,
                    None,
                    HoldCause::Guard,
                    format!("guard unmet, not enough healthy capacity: {still}"),
                );
            }
        }

        // Never empty (I1): keep something. First what the rules would serve next
        // anyway (healthy endpoints held back by warm-up pacing), then healthy
        // published answers (e.g. under forced drains of everything), then anything
        // healthy, anything published, anything not down, anything — in that order,
        // so that re-planning picks the same answers. Before the velocity cap,
        // which only ever keeps more.
        if decisions.iter().all(|d| d.level <= 0.0) {
            let classes: [&dyn Fn(usize) -> bool; 6] = [
                &|i| available[i] && serving[i],
                &|i| up[i] && self.is_published[i],
                &|i| up[i],
                &|i| self.is_published[i],
                &|i| self.eps[i].state() != HealthState::Down,
                &|_| true,
            ];
            let keep: Vec<usize> = classes
                .iter()
                .map(|class| (0..n).filter(|i| class(*i)).collect::<Vec<_>>())
                .find(|v| !v.is_empty())
                .unwrap_or_default();
            for i in keep {
                let warm = self.warm[i];
                let next = if warm.level(self.stages) > 0.0 { warm } else { start_for(i, warm_attempts(&warm)) };
                let level = if self.set_only { 1.0 } else { next.level(self.stages) };
                if self.set_only && !self.is_published[i] {
                    joins.push(Join { at: now, endpoint: self.eps[i].id.to_string(), capacity: self.eps[i].capacity });
                }
                let reason = format!("{} kept: a record is never left without answers", self.eps[i].id);
                decisions[i] = Decision { level, next, reason: Some(reason), forced: false };
            }
        }

        // The bridge ends once the serving pool is warm, counting what guards and
        // never-empty brought in this very plan: its members are then not serving,
        // decided as the rules above decide a pool that is not serving.
        if let (Some(bridge), Some(active)) = (bridge_pool, active_pool) {
            let warm_now = (0..n)
                .filter(|i| self.eps[*i].pool == active && available[*i])
                .all(|i| decisions[i].next == WarmupState::Full);
            if warm_now {
                for i in (0..n).filter(|i| self.bridges(*i, Some(bridge))) {
                    serving[i] = false;
                    if available[i] {
                        decisions[i] = not_serving(&self.eps[i]);
                    }
                }
            }
        }

        // Velocity (I5): automated removals within maxRemovePercent per window.
        let budget = spec.shift.max_remove_percent() / 100.0 * self.total as f64;
        let mut used: f64 = self.state.removals.iter().map(|r| r.capacity as f64).sum();
        let mut removals = Vec::new();
        let candidates: Vec<usize> = {
            let mut c: Vec<usize> = (0..n)
                .filter(|i| self.is_published[*i] && decisions[*i].level == 0.0 && drained[*i].is_none())
                .filter(|i| self.eps[*i].state() != HealthState::Unknown)
                // Leaving a pool an operator's failover took the traffic from is an
                // operator change; removals from the serving pools stay capped.
                .filter(|i| !operator_pool || serving[*i])
                .collect();
            // Unhealthy endpoints first: they are the removals that protect users.
            c.sort_by_key(|i| (self.eps[*i].state() != HealthState::Down, *i));
            c
        };
        for i in candidates {
            let e = &self.eps[i];
            if used + e.capacity as f64 <= budget + EPSILON {
                used += e.capacity as f64;
                removals.push(Removal { at: now, endpoint: e.id.to_string(), capacity: e.capacity });
            } else {
                self.hold_note(
                    Some(e.id),
                    None,
                    HoldCause::Velocity,
                    format!(
                        "{} removal held: velocity cap maxRemovePercent {}% per {} ({}% used)",
                        e.id,
                        spec.shift.max_remove_percent(),
                        crate::policy::duration::format(spec.shift.window()),
                        (used * 1000.0 / self.total.max(1) as f64).round() / 10.0
                    ),
                );
                let warm = self.warm[i];
                let level = match warm.level(self.stages) {
                    l if l > 0.0 && !self.set_only => l,
                    _ => 1.0,
                };
                decisions[i] = Decision { level, next: keep_warm(&warm, e, now), reason: None, forced: false };
            }
        }

        Outcome {
            mode: PlanMode::Normal,
            decisions: decisions.into_iter().map(Some).collect(),
            pinned: None,
            removals,
            joins,
            hold_all: false,
        }
    }

    /// Every endpoint down: serve all (fail open) or keep the last answers (fail static).
    fn all_unhealthy(&mut self, drained: &[Option<&super::Override>]) -> Outcome {
        let on = self.policy_input.policy.spec.guards.on_all_unhealthy();
        let anything = self.is_published.iter().any(|p| *p);
        if on == OnAllUnhealthy::KeepLast && anything {
            self.hold_note(
                None,
                None,
                HoldCause::KeepLast,
                "every endpoint unhealthy: keep-last holds the last published answers (fail static)".into(),
            );
            return Outcome::hold(PlanMode::KeepLast);
        }
        let all_drained = drained.iter().all(Option::is_some);
        let decisions = self
            .eps
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let serve = all_drained || drained[i].is_none();
                let reason = if serve {
                    format!("{} served: every endpoint unhealthy, serve-all (fail open)", e.id)
                } else {
                    format!("{} stays drained while serving all others (fail open)", e.id)
                };
                Some(Decision {
                    level: f64::from(u8::from(serve)),
                    // Drained out of a fail-open answer set: it returns through warm-up.
                    next: if serve {
                        keep_warm(&self.warm[i], e, self.input.now)
                    } else {
                        WarmupState::Out { retry_at: self.input.now, attempts: 0 }
                    },
                    reason: Some(reason),
                    forced: false,
                })
            })
            .collect();
        Outcome {
            mode: PlanMode::ServeAll,
            decisions,
            pinned: None,
            removals: Vec::new(),
            joins: Vec::new(),
            hold_all: false,
        }
    }
}

/// The answer changes between what is published and the planned weights.
fn diff(
    eps: &[Ep<'_>],
    published: &BTreeMap<String, u32>,
    published_weight: &[u32],
    weights: &[u32],
    outcome: &Outcome,
) -> Vec<AnswerChange> {
    let mut changes = Vec::new();
    for (i, e) in eps.iter().enumerate() {
        let from = Some(published_weight[i]).filter(|w| *w > 0);
        let to = Some(weights[i]).filter(|w| *w > 0);
        if from == to {
            continue;
        }
        let reason = outcome.decisions.get(i).and_then(|d| d.as_ref()).and_then(|d| d.reason.clone()).unwrap_or_else(
            || match (from, to) {
                (None, Some(_)) => format!("{} published", e.id),
                (Some(_), None) => format!("{} removed", e.id),
                _ => format!("{} weight rebalanced", e.id),
            },
        );
        changes.push(AnswerChange { endpoint: e.id.to_string(), from, to, reason });
    }
    let known = published_weight.iter().filter(|w| **w > 0).count();
    let live = published.values().filter(|w| **w > 0).count();
    if !outcome.hold_all && live > known {
        let ids: std::collections::HashSet<&str> = eps.iter().map(|e| e.id).collect();
        for (id, w) in published.iter().filter(|(_, w)| **w > 0) {
            if !ids.contains(id.as_str()) {
                changes.push(AnswerChange {
                    endpoint: id.clone(),
                    from: Some(*w),
                    to: None,
                    reason: format!("{id} is no longer in the policy → removed"),
                });
            }
        }
    }
    changes
}
