//! ARCHITECTURE.md §8 scenario 2, mass recovery: half of a seeded fleet (one or two
//! pools, mixed capacities, weighted or set-only publishing, seeded warm-up
//! stages, holds and caps) fails at once, then all of it returns at once.
//!
//! Expect (besides the checker's I1, I4–I7, where I6 is "a returning endpoint
//! enters at the first stage and never skips one; set-only: at most
//! `maxJoinPercent` rejoins per hold"): the endpoints that stayed up never carry
//! more than they did during the outage — recovery only relieves them, so no
//! endpoint goes above its capacity — and the recovery completes: every
//! endpoint ends at its full share.

use super::planner_runs::{Knobs, digest, health, policy, random_pools, run, scenario};
use super::{Rng, run_seeds};
use std::collections::BTreeSet;
use veer::sim::Capability;

/// Shares are percentages rounded to a tenth; allow that much and a little more.
const ROUNDING: f64 = 0.15;

fn mass_recovery(seed: u64) -> Result<(String, bool), String> {
    let mut rng = Rng::new(seed, 2);
    let pool_count = rng.between(1, 2);
    let pools = random_pools(&mut rng, pool_count, (2, 5));
    let knobs = Knobs::random(&mut rng, (4, 8));
    let policies = policy(&pools, &knobs);
    let endpoints: Vec<&str> = pools.iter().flat_map(|(_, e)| e.iter().map(|(id, _)| id.as_str())).collect();
    // Half of the fleet (rounded up) fails and returns.
    let mut order: Vec<&str> = endpoints.clone();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let returning: BTreeSet<&str> = order[..endpoints.len().div_ceil(2)].iter().copied().collect();
    let capability = if rng.chance(0.3) { Capability::SetOnly } else { Capability::Weighted };
    let tick = 2;
    let down = 2 * rng.between(2, 5);
    let up = down + 2 * rng.between(8, 16);
    let stages = knobs.stages.len() as u64;
    let joins = 100u64.div_ceil(knobs.max_join);
    let duration = up + (stages + joins + 2) * knobs.hold_s + 10;
    let mut events = Vec::new();
    for id in &returning {
        events.push(health(down, id, false, None));
        events.push(health(up, id, true, None));
    }
    let timeline = run(&scenario(seed, capability, duration, tick, events), &policies)?;

    let outage: Vec<_> = timeline.steps.iter().filter(|s| s.t >= down as f64 && s.t < up as f64).collect();
    for id in endpoints.iter().filter(|id| !returning.contains(*id)) {
        let most = outage.iter().map(|s| s.weights[*id]).fold(0.0, f64::max);
        for step in timeline.steps.iter().filter(|s| s.t >= up as f64) {
            if step.weights[*id] > most + ROUNDING {
                return Err(format!(
                    "{id} stayed up and carried {:.1} % during the outage, but {:.1} % at {}s of the recovery",
                    most, step.weights[*id], step.t
                ));
            }
        }
    }
    let first = timeline.steps.first().expect("a run has steps");
    let last = timeline.steps.last().expect("a run has steps");
    for id in &endpoints {
        if (last.weights[*id] - first.weights[*id]).abs() > ROUNDING {
            return Err(format!(
                "the recovery did not complete: {id} ends at {:.1} %, its full share is {:.1} % ({capability:?}, \
                 stages {:?}, hold {}s)",
                last.weights[*id], first.weights[*id], knobs.stages, knobs.hold_s
            ));
        }
    }
    let all_out = outage.iter().any(|s| returning.iter().all(|id| s.weights[*id] == 0.0));
    Ok((digest(&timeline), all_out))
}

#[test]
fn half_the_fleet_returning_at_once_walks_the_warm_up_stages_and_never_overloads_the_survivors() {
    let results = run_seeds("mass_recovery", mass_recovery);
    let all_out = results.iter().filter(|(_, (_, out))| *out).count();
    println!(
        "{} mass recoveries ({all_out} with the whole failed half out before it returned, the others held by the \
         velocity cap or a guard): warm-up stages and join caps held, survivors never above their outage load",
        results.len()
    );
    assert!(all_out * 4 >= results.len(), "most runs must take the failed half out: only {all_out}");
}
