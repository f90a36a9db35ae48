//! ARCHITECTURE.md §8 scenario 3, flapping health checks on a healthy fleet: one vantage
//! (seeded) loses its network for seeded windows and, between them, sees seeded
//! endpoints flap; in half of the seeds one endpoint also really flaps, on every
//! vantage.
//!
//! Expect (besides the checker's I1, I4–I7, where I5 is "capacity removed by
//! automation within any window stays within `maxRemovePercent`" and I7 "an
//! impaired checker changes nothing"): quorum holds — no endpoint but the one
//! that really flaps is ever removed — and the really flapping one is removed
//! at most as often as the velocity cap allows.

use super::planner_runs::{Knobs, digest, health, policy, random_pools, run, scenario};
use super::{Rng, run_seeds};
use std::time::Duration;
use veer::sim::{Capability, Event, EventAction};

fn flapping(seed: u64) -> Result<(String, usize), String> {
    let mut rng = Rng::new(seed, 3);
    let pool_count = rng.between(1, 2);
    let pools = random_pools(&mut rng, pool_count, (2, 4));
    let knobs = Knobs::random(&mut rng, (4, 8));
    let policies = policy(&pools, &knobs);
    let endpoints: Vec<String> = pools.iter().flat_map(|(_, e)| e.iter().map(|(id, _)| id.clone())).collect();
    let vantages = ["v1", "v2", "v3"];
    let bad = rng.pick(&vantages).to_string();
    let tick = 2;
    let duration = 2 * rng.between(30, 40);
    let mut events = Vec::new();
    let mut t = 2 * rng.between(1, 4);
    while t + 10 < duration {
        // The bad vantage loses its network for a while…
        let lost = 2 * rng.between(2, 8);
        events.push(Event {
            at: Duration::from_secs(t),
            action: EventAction::Impair { vantage: bad.clone(), impaired: true },
        });
        events.push(Event {
            at: Duration::from_secs(t + lost),
            action: EventAction::Impair { vantage: bad.clone(), impaired: false },
        });
        t += lost + 2;
        // …then sees some endpoints flap.
        for _ in 0..rng.between(1, 4) {
            let id = rng.pick(&endpoints).clone();
            let length = 2 * rng.between(1, 3);
            events.push(health(t, &id, false, Some(vec![bad.clone()])));
            events.push(health(t + length, &id, true, Some(vec![bad.clone()])));
            t += length + 2 * rng.below(2);
        }
        t += 2 * rng.between(1, 4);
    }
    let flapper = rng.chance(0.5).then(|| rng.pick(&endpoints).clone());
    if let Some(id) = &flapper {
        let mut t = 2 * rng.between(2, 6);
        while t + 4 < duration {
            let down_for = 2 * rng.between(2, 5);
            events.push(health(t, id, false, None));
            events.push(health(t + down_for, id, true, None));
            t += down_for + 2 * rng.between(2, 5);
        }
    }
    let timeline = run(&scenario(seed, Capability::Weighted, duration, tick, events), &policies)?;
    for step in &timeline.steps {
        for id in endpoints.iter().filter(|id| Some(*id) != flapper.as_ref()) {
            if step.weights[id] == 0.0 {
                return Err(format!(
                    "{id} was removed at {}s although only the vantage {bad} saw it fail (quorum 50 % of 3)",
                    step.t
                ));
            }
        }
    }
    let removals = flapper.as_ref().map_or(0, |id| {
        timeline.steps.iter().flat_map(|s| &s.decisions).filter(|d| &d.endpoint == id && d.to == 0.0).count()
    });
    Ok((digest(&timeline), removals))
}

#[test]
fn one_vantage_losing_its_network_and_flapping_checks_never_remove_a_healthy_endpoint() {
    let results = run_seeds("flapping", flapping);
    let removals: usize = results.iter().map(|(_, (_, r))| r).sum();
    println!(
        "{} flapping fleets: quorum held (no healthy endpoint removed); the really flapping endpoints were removed \
         {removals} times within the velocity cap",
        results.len()
    );
    assert!(removals > 0, "the really flapping endpoints must be removed sometimes");
}
