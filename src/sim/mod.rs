//! `veer simulate` (ARCHITECTURE.md §7): the planner and the vantage combiner on virtual
//! time, driven by a scripted [`Scenario`], checked by an independent
//! [`check::Checker`] for invariants I1, I4, I5, I6 and I7.
//!
//! Each tick: apply the events whose `at` falls in the tick, build every
//! vantage's report, combine them (quorum, freshness, impairment), plan, and
//! publish the plan as the next tick's observed state (the enactor is assumed to
//! apply every plan). The run starts from a steady fleet: every endpoint (for
//! `failover`, the first pool's) published at full weight, every probe up.

pub mod check;
pub mod render;
pub mod scenario;

pub use scenario::{Capability, Event, EventAction, Health, Scenario};

use crate::health::combine::{CombinerState, combine};
use crate::health::{EndpointKey, EndpointReport, ProbeVerdict, VantageReport};
use crate::planner::{self, ObservedRecord, Override, PlanInput, PlannerState, PolicyInput, Weighting};
use crate::policy::{FailoverPolicy, LoadedPolicy};
use crate::time::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;

/// The weights range simulated weighted providers accept (Route 53's).
pub const SIM_MAX_WEIGHT: u32 = 255;

/// A finished run: the timeline and the invariant violations (ARCHITECTURE.md §7 JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Scenario name.
    pub scenario: String,
    /// Planner seed.
    pub seed: u64,
    /// One per record per tick.
    pub steps: Vec<Step>,
    /// Invariant violations found by the checker, in time order.
    pub violations: Vec<Violation>,
}

/// One record at one tick.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Seconds since the start.
    pub t: f64,
    /// Record name.
    pub record: String,
    /// Every endpoint's share of the published weight, in percent (0: not published).
    pub weights: BTreeMap<String, f64>,
    /// Published addresses, in policy order.
    pub answers: Vec<String>,
    /// Held decisions.
    pub held: Vec<StepHeld>,
    /// Changes, with shares before and after in percent.
    pub decisions: Vec<StepDecision>,
}

/// A held decision in the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepHeld {
    /// The endpoint, if one.
    pub endpoint: Option<String>,
    /// Why.
    pub reason: String,
}

/// A change in the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct StepDecision {
    /// The endpoint.
    pub endpoint: String,
    /// Share before, percent.
    pub from: f64,
    /// Share after, percent.
    pub to: f64,
    /// Why.
    pub reason: String,
}

/// An invariant that broke.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// Seconds since the start.
    pub t: f64,
    /// `I1`, `I4`, `I5`, `I6` or `I7`.
    pub invariant: String,
    /// What was seen.
    pub detail: String,
}

/// Runs `scenario` against `policies`.
pub fn run(scenario: &Scenario, policies: &[LoadedPolicy]) -> Run {
    let weighting = match scenario.capability {
        Capability::Weighted => Weighting::Weighted { max_weight: SIM_MAX_WEIGHT },
        Capability::SetOnly => Weighting::SetOnly,
    };
    let inputs: Vec<PolicyInput<'_>> =
        policies.iter().map(|p| PolicyInput { policy: &p.policy, hash: &p.hash, weighting }).collect();
    let refs: Vec<&FailoverPolicy> = policies.iter().map(|p| &p.policy).collect();

    let mut observed: BTreeMap<String, ObservedRecord> =
        refs.iter().map(|p| (p.name().to_string(), steady(p, weighting))).collect();
    let mut checker = check::Checker::new(&refs, weighting, &observed);
    let mut truth: BTreeMap<(String, EndpointKey), (ProbeVerdict, Timestamp)> = BTreeMap::new();
    for vantage in &scenario.vantages {
        for p in &refs {
            for (_, e) in p.endpoints() {
                let key = EndpointKey::new(p.name(), e.id.value.as_str());
                truth.insert((vantage.clone(), key), (ProbeVerdict::Up, Timestamp(0)));
            }
        }
    }
    let mut impaired: BTreeMap<String, Timestamp> = BTreeMap::new();
    let mut overrides: Vec<Override> = Vec::new();
    let mut state = PlannerState::default();
    let mut combiner = CombinerState::default();
    let mut steps = Vec::new();
    let mut next_event = 0;
    let tick_ms = scenario.tick.as_millis().max(1) as u64;
    let duration_ms = scenario.duration.as_millis() as u64;

    let mut t_ms = 0;
    while t_ms < duration_ms {
        let now = Timestamp(t_ms);
        while let Some(event) = scenario.events.get(next_event).filter(|e| (e.at.as_millis() as u64) < t_ms + tick_ms) {
            apply(event, now, &refs, &mut truth, &mut impaired, &mut overrides);
            next_event += 1;
        }
        let reports: Vec<VantageReport> = scenario
            .vantages
            .iter()
            .map(|v| VantageReport {
                vantage: v.clone(),
                at: now,
                endpoints: truth
                    .iter()
                    .filter(|((vantage, _), _)| vantage == v)
                    .map(|((_, key), (verdict, since))| {
                        let (verdict, since) = match impaired.get(v) {
                            Some(at) => (ProbeVerdict::Down, *at),
                            None => (*verdict, *since),
                        };
                        (
                            key.clone(),
                            EndpointReport { verdict, since, last_latency_ms: None, last_failure: None, checked: None },
                        )
                    })
                    .collect(),
            })
            .collect();
        let (view, next_combiner) = combine(&refs, &reports, &combiner, now);
        combiner = next_combiner;
        overrides.retain(|o| o.expires_at.is_none_or(|end| now < end));
        let plan = planner::plan(&PlanInput {
            policies: &inputs,
            health: &view,
            observed: &observed,
            overrides: &overrides,
            state: &state,
            now,
            seed: scenario.seed,
        });
        let mut published = BTreeMap::new();
        for record in &plan.records {
            let before = &observed[&record.policy];
            steps.push(step(t_ms, record, before, &refs));
            published.insert(record.policy.clone(), record.published());
        }
        checker.observe(now, &view, &overrides, &published);
        observed = published;
        state = plan.state;
        t_ms += tick_ms;
    }
    Run { scenario: scenario.name.clone(), seed: scenario.seed, steps, violations: checker.violations }
}

/// The steady published state a run starts from: every endpoint (`failover`:
/// the first pool's) at full weight.
pub fn steady(policy: &FailoverPolicy, weighting: Weighting) -> ObservedRecord {
    let serving = |pool: usize| match policy.spec.routing.value {
        crate::policy::model::Routing::Weighted => true,
        crate::policy::model::Routing::Failover => pool == 0,
    };
    let top = policy
        .spec
        .pools
        .value
        .iter()
        .enumerate()
        .filter(|(i, _)| serving(*i))
        .flat_map(|(_, p)| p.endpoints.value.iter().map(|e| e.capacity()))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut answers = BTreeMap::new();
    for (i, pool) in policy.spec.pools.value.iter().enumerate().filter(|(i, _)| serving(*i)) {
        let _ = i;
        for e in &pool.endpoints.value {
            let weight = match weighting {
                Weighting::SetOnly => 1,
                Weighting::Weighted { max_weight } => {
                    ((f64::from(e.capacity()) / f64::from(top) * f64::from(max_weight)).round() as u32).max(1)
                }
            };
            answers.insert(e.id.value.clone(), weight);
        }
    }
    ObservedRecord { answers }
}

fn apply(
    event: &Event,
    now: Timestamp,
    policies: &[&FailoverPolicy],
    truth: &mut BTreeMap<(String, EndpointKey), (ProbeVerdict, Timestamp)>,
    impaired: &mut BTreeMap<String, Timestamp>,
    overrides: &mut Vec<Override>,
) {
    match &event.action {
        EventAction::Health { target, vantages, health } => {
            let verdict = match health {
                Health::Up => ProbeVerdict::Up,
                Health::Down => ProbeVerdict::Down,
            };
            for ((vantage, key), value) in truth.iter_mut() {
                if vantages.as_ref().is_some_and(|list| !list.contains(vantage)) {
                    continue;
                }
                let covered = policies.iter().filter(|p| p.name() == key.policy).any(|p| {
                    p.endpoints().any(|(pool, e)| {
                        e.id.value == key.endpoint && target.covers(p.name(), &pool.name.value, &e.id.value)
                    })
                });
                if covered && value.0 != verdict {
                    *value = (verdict, now);
                }
            }
        }
        EventAction::Impair { vantage, impaired: true } => {
            impaired.entry(vantage.clone()).or_insert(now);
        }
        EventAction::Impair { vantage, impaired: false } => {
            if impaired.remove(vantage).is_some() {
                // Probes succeed again: verdicts that were up are up since now.
                for ((v, _), value) in truth.iter_mut().filter(|((v, _), _)| v == vantage) {
                    let _ = v;
                    value.1 = now;
                }
            }
        }
        EventAction::Override(o) => {
            overrides.retain(|x| x.id != o.id);
            overrides.push(o.clone());
        }
        EventAction::Clear(None) => overrides.clear(),
        EventAction::Clear(Some(id)) => overrides.retain(|o| &o.id != id),
    }
}

fn percent(weight: u32, total: u64) -> f64 {
    if total == 0 { 0.0 } else { (f64::from(weight) * 1000.0 / total as f64).round() / 10.0 }
}

fn step(t_ms: u64, record: &planner::RecordPlan, before: &ObservedRecord, policies: &[&FailoverPolicy]) -> Step {
    let policy = policies.iter().find(|p| p.name() == record.policy).expect("planned policies are simulated");
    let total_after: u64 = record.answers.iter().map(|a| u64::from(a.weight)).sum();
    let total_before: u64 = before.answers.values().map(|w| u64::from(*w)).sum();
    let weights = policy
        .endpoints()
        .map(|(_, e)| {
            let w = record.answers.iter().find(|a| a.endpoint == e.id.value).map_or(0, |a| a.weight);
            (e.id.value.clone(), percent(w, total_after))
        })
        .collect();
    Step {
        t: t_ms as f64 / 1000.0,
        record: record.record.to_string(),
        weights,
        answers: record.answers.iter().map(|a| a.address.clone()).collect(),
        held: record.held.iter().map(|h| StepHeld { endpoint: h.endpoint.clone(), reason: h.reason.clone() }).collect(),
        decisions: record
            .changes
            .iter()
            .map(|c| StepDecision {
                endpoint: c.endpoint.clone(),
                from: percent(before.answers.get(&c.endpoint).copied().unwrap_or(0), total_before),
                to: percent(c.to.unwrap_or(0), total_after),
                reason: c.reason.clone(),
            })
            .collect(),
    }
}
