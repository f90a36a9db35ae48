//! The drill runner's decisions, pure: from (a run's [`Report`], what the leader's
//! last round planned and what the providers hold right after it, `now`) to the
//! next report and the [`Action`]s the I/O shell ([`super::driver`]) carries out.
//! No clock, no I/O: the state machine is tested on virtual time.
//!
//! ```text
//!  preflight ──refused──► finished (refused)
//!      │ ok
//!      ▼
//!  draining ──drain read back at every provider──► holding ──duration over──► restoring
//!      │ abort / not read back in time                │ abort / drain gone         │ every stage read back
//!      └──────────────────── lift at once ────────────┴──────────► restoring      ▼
//!                                                                  finished (ok | aborted | failed)
//!  leader: preflight ──► handing-over (step down) ──new leader's first round──► finished
//! ```

use super::model::{Definition, DrillTarget};
use super::report::{Measures, Outcome, Phase, RecordGenerations, Report, StepKind, Trigger, TriggerKind, millis};
use crate::health::{EndpointKey, HealthState, HealthView};
use crate::planner::{
    HoldCause, ObservedRecord, Override, OverrideAction, Plan, PlanInput, PlanMode, PlannerState, PolicyInput,
    RecordPlan, WarmupState, Weighting,
};
use crate::policy::FailoverPolicy;
use crate::policy::duration::format as fmt_duration;
use crate::time::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a drain may take to show at every provider before the run gives up.
pub const DRAIN_VERIFY_TIMEOUT: Duration = Duration::from_secs(60);
/// The drain override lives this much longer than the drill's duration, so that it
/// lifts itself if no leader is left to lift it (and covers the drain's verification).
pub const DRAIN_TTL_MARGIN: Duration = Duration::from_secs(120);
/// How long the leader that stepped down may still be seen leading.
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(120);
/// Slack for percentage comparisons.
const EPSILON: f64 = 1e-6;

/// What the I/O shell must do, in order, after saving the report.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write this drain override through the store (the audited override path).
    Drain(Override),
    /// Delete this override.
    Lift(String),
    /// Step down as leader (the report says so first).
    StepDown,
}

/// What the leader's last round planned from and planned.
#[derive(Debug, Clone, Copy)]
pub struct World<'a> {
    /// The instant of the decision.
    pub now: Timestamp,
    /// The policies in force, as the planner reads them.
    pub policies: &'a [PolicyInput<'a>],
    /// The combined health view of the round.
    pub health: &'a HealthView,
    /// What the round saw published, per policy (the planner's input).
    pub published: &'a BTreeMap<String, ObservedRecord>,
    /// The planner state the round started from.
    pub state: &'a PlannerState,
    /// The overrides in force during the round.
    pub overrides: &'a [Override],
    /// The round's plan (its state is the warm-up after the round).
    pub plan: &'a Plan,
}

impl<'a> World<'a> {
    fn policy(&self, name: &str) -> Option<&'a FailoverPolicy> {
        self.policies.iter().find(|p| p.policy.name() == name).map(|p| p.policy)
    }

    fn record_plan(&self, policy: &str) -> Option<&'a RecordPlan> {
        self.plan.records.iter().find(|r| r.policy == policy)
    }

    fn warmup(&self, policy: &str, endpoint: &str) -> Option<WarmupState> {
        self.plan.state.records.get(policy).and_then(|r| r.endpoints.get(endpoint)).copied()
    }
}

/// Who asks for a run, and what else is going on.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Scheduled or on request.
    pub kind: TriggerKind,
    /// Who asked (`veer` for the schedule).
    pub author: &'a str,
    /// Another drill currently running, if any.
    pub running: Option<&'a str>,
    /// The coordination backend is standalone (nobody to hand over to).
    pub standalone: bool,
    /// The operator request this run serves, by its time.
    pub requested_at: Option<Timestamp>,
}

/// A preflight that passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Cleared {
    /// The drain to write (none for a leader drill).
    pub drain: Option<Override>,
    /// What was checked, for the report and the dry run.
    pub detail: String,
    /// The drain's impact on the record (answers before → after), as previewed.
    pub impact: Option<crate::planner::RecordImpact>,
}

/// The endpoints a drain drill takes out, in policy order.
pub fn target_endpoints<'p>(definition: &Definition, policy: &'p FailoverPolicy) -> Vec<&'p str> {
    let DrillTarget::Drain { target, .. } = &definition.target else { return Vec::new() };
    policy
        .endpoints()
        .filter(|(pool, e)| target.covers(policy.name(), &pool.name.value, &e.id.value))
        .map(|(_, e)| e.id.value.as_str())
        .collect()
}

/// The id of the drain override of the run of `drill` started at `started_at`.
pub fn drain_override_id(drill: &str, started_at: Timestamp) -> String {
    format!("drill-{drill}-{}", started_at.as_millis())
}

/// The drain override a drill writes: reason `drill:<name>`, a TTL slightly above
/// its duration, never forced (guards apply).
pub fn drain_override(definition: &Definition, author: &str, now: Timestamp) -> Option<Override> {
    let DrillTarget::Drain { target, .. } = &definition.target else { return None };
    Some(Override {
        id: drain_override_id(&definition.name, now),
        action: OverrideAction::Drain { target: target.clone() },
        reason: format!("drill:{}", definition.name),
        author: author.to_string(),
        created_at: now,
        expires_at: Some(now.add(definition.duration + DRAIN_TTL_MARGIN)),
        force: false,
    })
}

/// Why a drill may not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// One line for people.
    pub reason: String,
    /// The cause passes by itself soon (health not known yet, warm-up in progress):
    /// a scheduled drill waits without recording a refusal.
    pub transient: bool,
}

impl Refusal {
    fn firm(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), transient: false }
    }
    fn passing(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), transient: true }
    }
}

/// Why the record of `policy` is not calm enough for a drill, if it is not:
/// an impaired checker, an override or freeze on it (when `overrides` count), an
/// endpoint not healthy or still warming up, or changes held.
fn unsettled(world: &World<'_>, policy: &FailoverPolicy, overrides: bool) -> Option<Refusal> {
    let name = policy.name();
    if let Some(why) = &world.health.impaired {
        return Some(Refusal::firm(format!("the health checker is impaired ({why})")));
    }
    let applicable = crate::planner::overrides::Applicable::select(world.overrides, policy, world.now);
    let other = applicable.drains.first().copied().or(applicable.pin).or(applicable.freeze).or(applicable.failover);
    if let Some(o) = other.filter(|_| overrides) {
        let kind = match &o.action {
            OverrideAction::Drain { .. } => "drain",
            OverrideAction::Pin { .. } => "pin",
            OverrideAction::Freeze { .. } => "freeze",
            OverrideAction::FailoverToPool { .. } => "failover",
        };
        return Some(Refusal::firm(format!("{kind} override {} ({}, by {}) affects {name}", o.id, o.reason, o.author)));
    }
    for (_, e) in policy.endpoints() {
        let id = e.id.value.as_str();
        match world.health.state(&EndpointKey::new(name, id)) {
            HealthState::Up => {}
            HealthState::Down => return Some(Refusal::firm(format!("endpoint {id} of {name} is unhealthy"))),
            HealthState::Unknown => {
                return Some(Refusal::passing(format!("the health of endpoint {id} of {name} is not known yet")));
            }
        }
        if let Some(WarmupState::Warming { .. }) = world.warmup(name, id) {
            return Some(Refusal::passing(format!("endpoint {id} of {name} is still warming up")));
        }
    }
    let Some(record) = world.record_plan(name) else {
        return Some(Refusal::passing(format!("{name} has not been planned yet")));
    };
    if record.mode != PlanMode::Normal {
        return Some(Refusal::firm(format!("{name} is not planned normally (mode {:?})", record.mode)));
    }
    record.held.first().map(|h| {
        let why = format!("changes of {name} are held: {}", h.reason);
        if matches!(h.cause, HoldCause::Backoff | HoldCause::JoinCap) {
            Refusal::passing(why)
        } else {
            Refusal::firm(why)
        }
    })
}

/// Decides whether a drill may start now. Refusals say why in one line; the
/// impact preview (the planner's, as `POST /v1/overrides?dryRun=true` shows it)
/// decides the guards and the removed share.
pub fn preflight(definition: &Definition, world: &World<'_>, request: &Request<'_>) -> Result<Cleared, Refusal> {
    if let Some(other) = request.running {
        return Err(Refusal::firm(format!("drill `{other}` is running: one drill at a time")));
    }
    match &definition.target {
        DrillTarget::Leader => {
            if request.standalone {
                return Err(Refusal::firm("the coordination backend is standalone: no other replica can take over"));
            }
            // Overrides are durable (I8): a hand-over with one in force rehearses that too.
            for input in world.policies {
                if let Some(Refusal { reason, transient }) = unsettled(world, input.policy, false) {
                    return Err(Refusal {
                        reason: format!("{reason}: a hand-over rehearsal needs a calm fleet"),
                        transient,
                    });
                }
            }
            Ok(Cleared {
                drain: None,
                detail: "fleet calm; stepping down to hand leadership over".into(),
                impact: None,
            })
        }
        DrillTarget::Drain { policy: name, target } => {
            let policy = world.policy(name).ok_or_else(|| Refusal::firm(format!("policy `{name}` is not loaded")))?;
            if let Some(refusal) = unsettled(world, policy, true) {
                return Err(refusal);
            }
            let drain = drain_override(definition, request.author, world.now).expect("a drain drill has a drain");
            let input = PlanInput {
                policies: world.policies,
                health: world.health,
                observed: world.published,
                overrides: world.overrides,
                state: world.state,
                now: world.now,
                seed: world.now.as_millis(),
            };
            let impact = crate::planner::impact(&input, &drain);
            let record = impact
                .records
                .iter()
                .find(|r| r.policy == *name)
                .ok_or_else(|| Refusal::firm(format!("draining {target} changes no published answer of {name}")))?;
            if let Some(guard) = &record.refused_by {
                return Err(Refusal::firm(format!("refused by a guard: {guard}")));
            }
            let removed = record.healthy_capacity_percent_before - record.healthy_capacity_percent_after;
            if removed > definition.max_capacity_percent + EPSILON {
                return Err(Refusal::firm(format!(
                    "draining {target} removes {removed:.0}% of {name}'s capacity, above maxCapacityPercent {}%",
                    definition.max_capacity_percent
                )));
            }
            let detail = format!(
                "draining {target} removes {removed:.0}% of {} (≤ {}%), {:.0}% stays published (minCapacityPercent {}%)",
                record.record,
                definition.max_capacity_percent,
                record.healthy_capacity_percent_after,
                policy.spec.guards.min_capacity_percent()
            );
            Ok(Cleared { drain: Some(drain), detail, impact: Some(record.clone()) })
        }
    }
}

/// A new run: refused, or started with its first actions. `leader` is this
/// replica's (identity, epoch); `before` the generations read before a leader drill.
pub fn start(
    definition: &Definition,
    world: &World<'_>,
    request: &Request<'_>,
    preflight: Result<Cleared, Refusal>,
    leader: (&str, u64),
    before: Vec<RecordGenerations>,
) -> (Report, Vec<Action>) {
    let now = world.now;
    let policy = definition.target.policy().and_then(|p| world.policy(p));
    let mut report = Report {
        drill: definition.name.clone(),
        target: definition.target.to_string(),
        policy: definition.target.policy().map(str::to_string),
        record: policy.map(|p| p.record_name().to_string()),
        trigger: Trigger { kind: request.kind, author: request.author.to_string(), requested_at: request.requested_at },
        started_at: now,
        finished_at: None,
        phase: Phase::Finished,
        outcome: None,
        reason: None,
        failed: false,
        steps: Vec::new(),
        measures: Measures::default(),
    };
    match preflight {
        Err(Refusal { reason: why, .. }) => {
            report.step(now, StepKind::Refused, why.clone());
            report.reason = Some(why);
            report.finish(now, Outcome::Refused, "refused by the preflight checks");
            (report, Vec::new())
        }
        Ok(Cleared { drain: Some(drain), detail, .. }) => {
            report.step(now, StepKind::Preflight, detail);
            let ttl = drain.expires_at.map_or(Duration::ZERO, |at| at.since(now));
            report.step(
                now,
                StepKind::Drain,
                format!("drain override {} ({}) written, TTL {}", drain.id, drain.reason, fmt_duration(ttl)),
            );
            report.phase = Phase::Draining { override_id: drain.id.clone(), since: now };
            (report, vec![Action::Drain(drain)])
        }
        Ok(Cleared { drain: None, detail, .. }) => {
            let (identity, epoch) = leader;
            report.step(now, StepKind::Preflight, detail);
            let history: Vec<String> = before
                .iter()
                .map(|r| format!("{} at generation {}", r.record, r.history.last().copied().unwrap_or(0)))
                .collect();
            report.step(
                now,
                StepKind::StepDown,
                format!("{identity} steps down as leader of epoch {epoch} ({})", history.join(", ")),
            );
            report.phase =
                Phase::HandingOver { from_epoch: epoch, from_identity: identity.to_string(), at: now, before };
            (report, vec![Action::StepDown])
        }
    }
}

/// After a refused scheduled attempt, the schedule tries again no sooner than this
/// (or the drill's spacing, when shorter).
pub const RETRY_AFTER_REFUSAL: Duration = Duration::from_secs(600);

/// When a scheduled drill may start next, given its earlier `runs` (any order):
/// in a window that holds its duration, `minSpacing` after the last run that
/// started, and a while after a refused scheduled attempt. `None`: not scheduled,
/// or no window holds it.
pub fn next_scheduled(definition: &Definition, runs: &[Report], now: Timestamp) -> Option<Timestamp> {
    let schedule = definition.schedule.as_ref()?;
    let last_start = runs.iter().filter(|r| r.outcome != Some(Outcome::Refused)).map(|r| r.started_at).max();
    let mut earliest = last_start.map_or(now, |last| now.max(last.add(schedule.min_spacing)));
    let refused = runs
        .iter()
        .filter(|r| r.outcome == Some(Outcome::Refused) && r.trigger.kind == TriggerKind::Schedule)
        .map(|r| r.started_at)
        .max();
    if let Some(refused) = refused {
        earliest = earliest.max(refused.add(RETRY_AFTER_REFUSAL.min(schedule.min_spacing)));
    }
    let length = match definition.target {
        DrillTarget::Leader => Duration::ZERO,
        DrillTarget::Drain { .. } => definition.duration,
    };
    super::schedule::next_start(&schedule.windows, earliest, length)
}

/// What a drain drill sees at one tick, besides the round.
#[derive(Debug, Clone, Copy)]
pub struct Tick<'a> {
    /// The round.
    pub world: &'a World<'a>,
    /// The drill, or `None` when a reload removed it.
    pub definition: Option<&'a Definition>,
    /// The record read back from each of its providers right after the round
    /// (`None`: the read failed).
    pub read_back: &'a BTreeMap<String, Option<ObservedRecord>>,
    /// Whether the run's drain override is still in the store.
    pub override_live: bool,
    /// The operator who asked to abort, if one did.
    pub abort: Option<&'a str>,
}

/// Why the run must stop now, if it must.
fn abort_reason(tick: &Tick<'_>, policy: Option<&FailoverPolicy>, targets: &[&str]) -> Option<String> {
    if let Some(author) = tick.abort {
        return Some(format!("aborted by {author}"));
    }
    let Some(definition) = tick.definition else {
        return Some("the drill is no longer loaded (removed by a policy reload)".into());
    };
    let Some(policy) = policy else {
        return Some("its policy is no longer loaded (removed by a policy reload)".into());
    };
    let flags = definition.abort_on;
    let world = tick.world;
    if flags.checker_impaired
        && let Some(why) = &world.health.impaired
    {
        return Some(format!("the health checker is impaired ({why})"));
    }
    if flags.other_endpoint_unhealthy {
        for (_, e) in policy.endpoints().filter(|(_, e)| !targets.contains(&e.id.value.as_str())) {
            let key = EndpointKey::new(policy.name(), e.id.value.as_str());
            if let Some(h) = world.health.endpoints.get(&key).filter(|h| h.state == HealthState::Down) {
                return Some(format!(
                    "endpoint {} of {} is unhealthy ({}/{} vantages)",
                    e.id.value,
                    policy.name(),
                    h.vantages_down,
                    h.vantages_fresh
                ));
            }
        }
    }
    // A new leader's first rounds know no health yet; the planner then notes guard
    // holds that say nothing about the record: judge holds once health is known.
    let health_known = policy.endpoints().all(|(_, e)| {
        world.health.state(&EndpointKey::new(policy.name(), e.id.value.as_str())) != HealthState::Unknown
    });
    if flags.guard_or_velocity_hold && health_known {
        let held = world.record_plan(policy.name()).and_then(|r| {
            r.held.iter().find(|h| matches!(h.cause, HoldCause::Guard | HoldCause::Velocity | HoldCause::ChangeBudget))
        });
        if let Some(h) = held {
            return Some(format!("a {} hold on {}: {}", cause_name(h.cause), policy.name(), h.reason));
        }
    }
    None
}

fn cause_name(cause: HoldCause) -> &'static str {
    match cause {
        HoldCause::Guard => "guard",
        HoldCause::Velocity => "velocity",
        HoldCause::ChangeBudget => "change-budget",
        _ => "other",
    }
}

/// The weight `endpoint` has at one provider's read-back (0: not published).
fn weight_at(read: &ObservedRecord, endpoint: &str) -> u32 {
    read.answers.get(endpoint).copied().unwrap_or(0)
}

/// Providers that still publish any of `targets` (or could not be read).
fn still_published(tick: &Tick<'_>, targets: &[&str]) -> Vec<String> {
    tick.read_back
        .iter()
        .filter(|(_, read)| read.as_ref().is_none_or(|r| targets.iter().any(|t| weight_at(r, t) > 0)))
        .map(|(provider, _)| provider.clone())
        .collect()
}

/// Stops the run at once: records why and lifts the drain (the target returns
/// through warm-up).
fn abort(report: &mut Report, tick: &Tick<'_>, override_id: &str, why: String, targets: &[&str]) -> Vec<Action> {
    let now = tick.world.now;
    report.step(now, StepKind::Abort, why.clone());
    report.reason.get_or_insert(why);
    lift(report, tick, override_id, "aborted: drain override removed at once", targets)
}

/// Removes the drain and starts watching the return.
fn lift(report: &mut Report, tick: &Tick<'_>, override_id: &str, detail: &str, targets: &[&str]) -> Vec<Action> {
    let now = tick.world.now;
    report.step(now, StepKind::Lift, format!("{detail} ({override_id})"));
    let policy = report.policy.clone().unwrap_or_default();
    // Only endpoints that left service have stages to come back through.
    let left: BTreeMap<String, Vec<f64>> = targets
        .iter()
        .filter(|t| {
            let out = tick.world.warmup(&policy, t).is_some_and(|w| w != WarmupState::Full);
            let unpublished = tick.read_back.values().any(|r| r.as_ref().is_some_and(|r| weight_at(r, t) == 0));
            out || unpublished
        })
        .map(|t| (t.to_string(), Vec::new()))
        .collect();
    report.phase = Phase::Restoring { since: now, stages: left };
    vec![Action::Lift(override_id.to_string())]
}

/// How long a restoration may take: every stage's hold three times over, plus a minute.
pub fn restore_timeout(policy: &FailoverPolicy) -> Duration {
    let stages = policy.spec.warmup.stages().len() as u32;
    policy.spec.warmup.hold() * (stages + 1) * 3 + Duration::from_secs(60)
}

/// One tick of a drain drill (draining, holding or restoring).
pub fn step_drain(report: &Report, tick: &Tick<'_>) -> (Report, Vec<Action>) {
    let mut r = report.clone();
    let world = tick.world;
    let now = world.now;
    let policy = report.policy.as_deref().and_then(|p| world.policy(p));
    let targets: Vec<&str> = match (tick.definition, policy) {
        (Some(d), Some(p)) => target_endpoints(d, p),
        _ => Vec::new(),
    };
    let mut actions = Vec::new();
    if let Phase::Draining { override_id, since } = &report.phase {
        let pending = still_published(tick, &targets);
        if pending.is_empty() && !targets.is_empty() {
            let providers: Vec<&str> = tick.read_back.keys().map(String::as_str).collect();
            r.step(
                now,
                StepKind::Drained,
                format!(
                    "{} read back without {} at {}",
                    r.record.clone().unwrap_or_default(),
                    targets.join(", "),
                    providers.join(", ")
                ),
            );
            r.measures.time_to_detect_ms = Some(millis(now.since(*since)));
            let duration = tick.definition.map_or(Duration::ZERO, |d| d.duration);
            r.phase = Phase::Holding { override_id: override_id.clone(), until: now.add(duration) };
        } else if let Some(why) = abort_reason(tick, policy, &targets) {
            actions = abort(&mut r, tick, override_id, why, &targets);
            return (r, actions);
        } else if now.since(*since) > DRAIN_VERIFY_TIMEOUT {
            r.failed = true;
            let why = format!(
                "the drain was not read back within {} (still published at {})",
                fmt_duration(DRAIN_VERIFY_TIMEOUT),
                pending.join(", ")
            );
            actions = abort(&mut r, tick, override_id, why, &targets);
            return (r, actions);
        } else {
            return (r, actions);
        }
    }
    let snapshot = r.phase.clone();
    match &snapshot {
        Phase::Holding { override_id, until } => {
            if let Some(why) = abort_reason(tick, policy, &targets) {
                actions = abort(&mut r, tick, override_id, why, &targets);
            } else if !tick.override_live {
                actions = lift(&mut r, tick, override_id, "the drain override is gone (expired or removed)", &targets);
            } else if now >= *until {
                let held = tick.definition.map_or(Duration::ZERO, |d| d.duration);
                r.step(now, StepKind::Held, format!("held drained for {}", fmt_duration(held)));
                actions = lift(&mut r, tick, override_id, "drain override removed", &targets);
            }
        }
        Phase::Restoring { since, stages } => restore(&mut r, tick, policy, *since, stages.clone()),
        _ => {}
    }
    (r, actions)
}

/// Reads the return back: each warm-up stage the planner is at, once every
/// provider publishes the planned weight, is recorded; full weight everywhere ends
/// the run.
fn restore(
    r: &mut Report,
    tick: &Tick<'_>,
    policy: Option<&FailoverPolicy>,
    since: Timestamp,
    mut stages: BTreeMap<String, Vec<f64>>,
) {
    let now = tick.world.now;
    let Some(policy) = policy else {
        r.reason.get_or_insert_with(|| "its policy is no longer loaded".into());
        r.failed = true;
        r.finish(now, Outcome::Failed, "cannot verify the restoration: the policy is gone");
        return;
    };
    let name = policy.name();
    let levels = policy.spec.warmup.stages();
    let record = tick.world.record_plan(name);
    let set_only = record.is_some_and(|r| matches!(r.weighting, Weighting::SetOnly));
    let mut all_full = true;
    for (endpoint, seen) in stages.iter_mut() {
        let warm = tick.world.warmup(name, endpoint).unwrap_or(WarmupState::Out { retry_at: now, attempts: 0 });
        let desired = record.and_then(|r| r.answers.iter().find(|a| &a.endpoint == endpoint)).map_or(0, |a| a.weight);
        let matches = |read: &ObservedRecord| {
            let published = weight_at(read, endpoint);
            if set_only { (published > 0) == (desired > 0) } else { published == desired }
        };
        let verified = tick.read_back.values().all(|read| read.as_ref().is_some_and(matches));
        let percent = warm.percent(&levels);
        if verified && desired > 0 && seen.last().is_none_or(|last| (last - percent).abs() > EPSILON) {
            seen.push(percent);
            let providers: Vec<&str> = tick.read_back.keys().map(String::as_str).collect();
            r.step(
                now,
                StepKind::Stage,
                format!("{endpoint} at {percent}% (weight {desired}) read back at {}", providers.join(", ")),
            );
        }
        all_full &= verified && warm == WarmupState::Full;
    }
    if all_full {
        r.measures.time_to_restore_ms = Some(millis(now.since(since)));
        r.step(
            now,
            StepKind::Restored,
            format!("{} back at full weight at every provider", stages.keys().cloned().collect::<Vec<_>>().join(", ")),
        );
        for (endpoint, seen) in &stages {
            let missing: Vec<String> = levels
                .iter()
                .filter(|l| !seen.iter().any(|s| (s - *l).abs() < EPSILON))
                .map(|l| format!("{l}%"))
                .collect();
            if !missing.is_empty() {
                r.failed = true;
                let why = format!("warm-up stage(s) {} of {endpoint} never read back", missing.join(", "));
                r.step(now, StepKind::Verify, why.clone());
                r.reason.get_or_insert(why);
            }
        }
        let outcome = if r.failed {
            Outcome::Failed
        } else if r.reason.is_some() {
            Outcome::Aborted
        } else {
            Outcome::Ok
        };
        r.finish(now, outcome, format!("{}: target restored through warm-up", outcome.as_str()));
        return;
    }
    if now.since(since) > restore_timeout(policy) {
        let progress: Vec<String> =
            stages.iter().map(|(e, s)| format!("{e} at {}%", s.last().copied().unwrap_or(0.0))).collect();
        let why = format!("not restored within {} ({})", fmt_duration(restore_timeout(policy)), progress.join(", "));
        r.failed = true;
        r.step(now, StepKind::Verify, why.clone());
        r.reason.get_or_insert(why);
        r.finish(now, Outcome::Failed, "failed: the restoration was not read back in time");
        return;
    }
    r.phase = Phase::Restoring { since, stages };
}

/// What a leader drill's successor sees.
#[derive(Debug, Clone, Copy)]
pub struct Handover<'a> {
    /// The instant of the decision.
    pub now: Timestamp,
    /// This replica.
    pub identity: &'a str,
    /// Its epoch.
    pub epoch: u64,
    /// When its first round as leader of `epoch` started.
    pub led_since: Timestamp,
    /// Generations now, per record.
    pub after: &'a [RecordGenerations],
}

/// One tick of a leader drill, on whichever replica leads.
pub fn step_handover(report: &Report, h: &Handover<'_>) -> Report {
    let mut r = report.clone();
    let Phase::HandingOver { from_epoch, from_identity, at, before } = &report.phase else { return r };
    if h.epoch == *from_epoch {
        if h.now.since(*at) > HANDOVER_TIMEOUT {
            r.failed = true;
            let why = format!("{} still leads epoch {from_epoch}: the step-down did not take", h.identity);
            r.reason = Some(why.clone());
            r.step(h.now, StepKind::Verify, why);
            r.finish(h.now, Outcome::Failed, "failed: no hand-over");
        }
        return r;
    }
    let take_over = h.led_since.since(*at);
    r.measures.take_over_ms = Some(millis(take_over));
    r.measures.time_to_detect_ms = Some(millis(take_over));
    r.step(
        h.now,
        StepKind::TakeOver,
        format!(
            "{} leads with epoch {} after {} (was {from_identity}, epoch {from_epoch})",
            h.identity,
            h.epoch,
            fmt_duration(take_over)
        ),
    );
    let mut problems = Vec::new();
    if h.identity == from_identity {
        problems.push(format!("no other replica took over: {from_identity} took leadership back"));
    }
    if h.epoch < *from_epoch {
        problems.push(format!("the new epoch {} is not above {from_epoch}", h.epoch));
    }
    for line in verify_generations(before, h.after) {
        match line {
            Ok(detail) => r.step(h.now, StepKind::Verify, detail),
            Err(problem) => {
                r.step(h.now, StepKind::Verify, problem.clone());
                problems.push(problem);
            }
        }
    }
    r.measures.time_to_restore_ms = Some(millis(h.now.since(*at)));
    if let Some(first) = problems.first() {
        r.failed = true;
        r.reason = Some(first.clone());
        r.finish(h.now, Outcome::Failed, format!("failed: {}", problems.join("; ")));
    } else {
        r.finish(h.now, Outcome::Ok, "ok: leadership handed over, no write lost or repeated");
    }
    r
}

/// Checks, per record, that no write was lost or applied twice across a hand-over:
/// the plan history is contiguous and still holds the newest plan from before, and
/// every provider moved by exactly as many generations as plans were added.
pub fn verify_generations(before: &[RecordGenerations], after: &[RecordGenerations]) -> Vec<Result<String, String>> {
    let mut out = Vec::new();
    for b in before {
        let Some(a) = after.iter().find(|a| a.record == b.record) else {
            out.push(Err(format!("{}: no longer managed after the hand-over", b.record)));
            continue;
        };
        let gaps: Vec<String> =
            a.history.windows(2).filter(|w| w[1] != w[0] + 1).map(|w| format!("{}→{}", w[0], w[1])).collect();
        let newest_before = b.history.last().copied().unwrap_or(0);
        let newest_after = a.history.last().copied().unwrap_or(0);
        if !gaps.is_empty() {
            out.push(Err(format!("{}: plan history is not contiguous ({})", a.record, gaps.join(", "))));
        } else if newest_after < newest_before {
            out.push(Err(format!(
                "{}: plan history lost generations (newest {newest_after}, was {newest_before})",
                a.record
            )));
        } else {
            out.push(Ok(format!(
                "{}: plan history contiguous, generations {}..{newest_after} ({} since the hand-over)",
                a.record,
                a.history.first().copied().unwrap_or(0),
                newest_after - newest_before
            )));
        }
        let added = newest_after.saturating_sub(newest_before);
        for (provider, was) in &b.providers {
            let now = a.providers.get(provider).copied().unwrap_or(0);
            if now < *was || now - was != added {
                out.push(Err(format!(
                    "{}: provider {provider} at generation {now}, was {was}, while {added} plan(s) were added: a write was lost or applied twice",
                    a.record
                )));
            } else {
                out.push(Ok(format!("{}: provider {provider} generation {was} → {now}", a.record)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
