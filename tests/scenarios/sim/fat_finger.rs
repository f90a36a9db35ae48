//! ARCHITECTURE.md §8 scenario 4, the fat-finger drain: an operator drains a whole pool
//! that holds most of a seeded fleet's capacity (meaning one endpoint), with
//! `minCapacityPercent` seeded so that the drain breaks it. Then the drain is
//! forced, then every other pool is drained by force too, then all is cleared.
//!
//! Expect (besides the checker's I1, I4–I7): the unforced drain is refused — the
//! impact preview (what `veer drain` prints) shows the capacity it would leave
//! and the guard that refuses it, and the published answers do not move; forced,
//! the pool drains; draining everything by force still never empties the
//! record; after the clear the fleet comes back.

use super::planner_runs::{Knobs, digest, drain_pool, health, policy, random_pools, run, scenario};
use super::{Rng, run_seeds};
use std::collections::BTreeMap;
use std::time::Duration;
use veer::health::{EndpointHealth, EndpointKey, HealthState, HealthView};
use veer::planner::{PlanInput, PlannerState, PolicyInput, Weighting};
use veer::sim::{Capability, Event, EventAction};
use veer::time::Timestamp;

fn fat_finger(seed: u64) -> Result<String, String> {
    let mut rng = Rng::new(seed, 4);
    let pool_count = rng.between(2, 3);
    let mut pools = random_pools(&mut rng, pool_count, (1, 3));
    // The first pool holds most of the capacity.
    let big_count = rng.between(4, 6);
    pools[0].1 = (0..big_count).map(|e| (format!("p0-e{e}"), 100)).collect();
    let capacity = |p: &(String, Vec<(String, u32)>)| p.1.iter().map(|(_, c)| u64::from(*c)).sum::<u64>();
    let total: u64 = pools.iter().map(capacity).sum();
    let others_percent = (total - capacity(&pools[0])) * 100 / total;
    let mut knobs = Knobs::random(&mut rng, (2, 6));
    // The guard the drain breaks: more than what the other pools hold.
    knobs.min_capacity = rng.between(others_percent + 1, (others_percent + 30).min(90));
    let policies = policy(&pools, &knobs);
    let big = pools[0].0.clone();
    let big_ids: Vec<String> = pools[0].1.iter().map(|(id, _)| id.clone()).collect();

    // What `veer drain pool/BIG` shows first: refused, with the capacity it would leave.
    let preview = preview_drain(&policies, &big);
    let impact = preview.records.first().ok_or("the impact preview names no record")?;
    let refusal = impact.refused_by.clone().ok_or_else(|| format!("the drain of {big} was not refused"))?;
    // "drain … refused by guard: 38% of capacity left, below minCapacityPercent 62% (use force to override)"
    let left: Option<f64> = refusal
        .split_once("refused by guard: ")
        .and_then(|(_, rest)| rest.split_once("% of capacity left"))
        .and_then(|(number, _)| number.trim().parse().ok());
    let expected_left = others_percent as f64;
    if !refusal.contains(&format!("minCapacityPercent {}%", knobs.min_capacity))
        || left.is_none_or(|left| (left - expected_left).abs() > 1.0)
    {
        return Err(format!("the impact does not show the capacity left ({expected_left} %) and the guard: {refusal}"));
    }
    if impact.after != impact.before {
        return Err("a refused drain still changes the previewed answers".into());
    }

    let tick = 2;
    let refused_at = 2 * rng.between(2, 5);
    let forced_at = refused_at + 2 * rng.between(3, 8);
    let everything_at = forced_at + 2 * rng.between(3, 8);
    let clear_at = everything_at + 2 * rng.between(3, 6);
    let duration = clear_at + (knobs.stages.len() as u64 + 2) * knobs.hold_s + 10;
    let mut events = vec![drain_pool(refused_at, "typo", &big, false), drain_pool(forced_at, "forced", &big, true)];
    for (i, (pool, _)) in pools.iter().enumerate().skip(1) {
        events.push(drain_pool(everything_at, &format!("all-{i}"), pool, true));
    }
    events.push(Event { at: Duration::from_secs(clear_at), action: EventAction::Clear(None) });
    let others: Vec<String> = pools[1..].iter().flat_map(|(_, e)| e.iter().map(|(id, _)| id.clone())).collect();
    let mut down_when_forced = None;
    if rng.chance(0.3) {
        // An endpoint of another pool fails meanwhile, until after the forced drain.
        let other = rng.pick(&others).clone();
        events.push(health(refused_at + 2, &other, false, None));
        events.push(health(forced_at + 2, &other, true, None));
        down_when_forced = Some(other);
    }
    let timeline = run(&scenario(seed, Capability::Weighted, duration, tick, events), &policies)?;

    let at = |t: u64| timeline.steps.iter().find(|s| s.t == t as f64).ok_or(format!("no step at {t}s"));
    let before = at(refused_at - tick)?;
    let refused = at(refused_at)?;
    if refused.answers != before.answers || !refused.held.iter().any(|h| h.reason.contains("refused by guard")) {
        return Err(format!("the unforced drain was not refused at {refused_at}s: {refused:?}"));
    }
    let forced = at(forced_at)?;
    if others.iter().any(|id| Some(id) != down_when_forced.as_ref()) {
        if big_ids.iter().any(|id| forced.weights[id] > 0.0) {
            return Err(format!("the forced drain left {big} published at {forced_at}s: {:?}", forced.weights));
        }
    } else if forced.answers.is_empty() {
        // Nothing else is up: even a forced drain must leave answers.
        return Err(format!("the forced drain emptied the record at {forced_at}s"));
    }
    for step in timeline.steps.iter().filter(|s| s.t >= everything_at as f64) {
        if step.answers.is_empty() {
            return Err(format!("draining everything by force emptied the record at {}s", step.t));
        }
    }
    let last = timeline.steps.last().expect("a run has steps");
    if last.weights.values().any(|w| *w == 0.0) {
        return Err(format!("after the clear the fleet did not come back: {:?}", last.weights));
    }
    Ok(digest(&timeline))
}

/// The impact preview of an unforced drain of `pool` on the steady fleet.
fn preview_drain(policies: &[veer::policy::LoadedPolicy], pool: &str) -> veer::planner::Impact {
    let weighting = Weighting::Weighted { max_weight: veer::sim::SIM_MAX_WEIGHT };
    let inputs: Vec<PolicyInput<'_>> =
        policies.iter().map(|p| PolicyInput { policy: &p.policy, hash: &p.hash, weighting }).collect();
    let observed: BTreeMap<String, _> =
        policies.iter().map(|p| (p.policy.name().to_string(), veer::sim::steady(&p.policy, weighting))).collect();
    let endpoints = policies
        .iter()
        .flat_map(|p| p.policy.endpoints().map(move |(_, e)| EndpointKey::new(p.policy.name(), e.id.value.as_str())))
        .map(|k| (k, EndpointHealth { state: HealthState::Up, vantages_down: 0, vantages_fresh: 3 }))
        .collect();
    let health = HealthView { impaired: None, endpoints };
    let state = PlannerState::default();
    let input = PlanInput {
        policies: &inputs,
        health: &health,
        observed: &observed,
        overrides: &[],
        state: &state,
        now: Timestamp(0),
        seed: 0,
    };
    let EventAction::Override(drain) = drain_pool(0, "preview", pool, false).action else { unreachable!() };
    veer::planner::impact(&input, &drain)
}

#[test]
fn draining_most_of_the_capacity_is_refused_with_its_impact_and_even_forced_never_empties_the_record() {
    let results = run_seeds("fat_finger", fat_finger);
    println!(
        "{} fat-finger drains: refused with the impact shown; forced ones never emptied the record",
        results.len()
    );
}
