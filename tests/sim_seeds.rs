//! Seeded simulation schedules (ARCHITECTURE.md §9: "the §9 invariants hold over seeded
//! simulation schedules, seed printed on failure"). Each seed derives a random
//! scenario — health flips per vantage, vantages losing their network,
//! drains, pins, freezes and failovers — over one of the example policies, runs
//! it through `veer simulate`'s engine, and the independent checker must find no
//! violation of I1, I4, I5, I6 or I7. Every hundredth seed runs twice and must
//! give the same timeline (determinism).
//!
//! `VEER_SIM_SEEDS` sets the number of seeds (default 10 000: ARCHITECTURE.md §9 asks for at
//! least that many schedules per CI run; about a minute on two cores);
//! `VEER_SIM_SEED` runs one seed alone (to replay a failure).

use std::path::Path;
use std::time::Duration;
use veer::planner::{FreezeScope, Override, OverrideAction, Target, TargetKind};
use veer::policy::LoadedPolicy;
use veer::sim::{self, Capability, Event, EventAction, Health, Scenario};
use veer::time::Timestamp;

/// SplitMix64: small, seedable, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn example_policies() -> Vec<Vec<LoadedPolicy>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples");
    [
        "local.yaml",
        "multicloud/weighted.yaml",
        "multicloud/fleet.yaml",
        "multicloud/set-only.yaml",
        "multicloud/ordered-failover.yaml",
    ]
    .iter()
    .map(|file| {
        let loaded = veer::policy::load(&[root.join(file)], None);
        assert!(loaded.is_valid(), "{file}: {:?}", loaded.diagnostics);
        loaded.policies
    })
    .collect()
}

/// A random scenario for `seed` over `policies`.
fn scenario(seed: u64, policies: &[LoadedPolicy]) -> Scenario {
    let mut rng = Rng(seed);
    let policy = &policies[0].policy;
    let endpoints: Vec<String> = policy.endpoints().map(|(_, e)| e.id.value.clone()).collect();
    let pools: Vec<String> = policy.spec.pools.value.iter().map(|p| p.name.value.clone()).collect();
    let vantages: Vec<String> = (1..=3).map(|i| format!("v{i}")).collect();
    let duration_s = 60 + rng.below(61);
    let mut events = Vec::new();
    let mut overrides = 0;
    for _ in 0..(3 + rng.below(12)) {
        let at = Duration::from_secs(rng.below(duration_s));
        let action = match rng.below(10) {
            0..=5 => EventAction::Health {
                target: if rng.chance(75) {
                    Target { policy: None, kind: TargetKind::Endpoint, name: rng.pick(&endpoints).clone() }
                } else {
                    Target { policy: None, kind: TargetKind::Pool, name: rng.pick(&pools).clone() }
                },
                vantages: rng.chance(30).then(|| vec![rng.pick(&vantages).clone()]),
                health: if rng.chance(55) { Health::Down } else { Health::Up },
            },
            6 => EventAction::Impair { vantage: rng.pick(&vantages).clone(), impaired: rng.chance(60) },
            7 if overrides > 0 => EventAction::Clear(rng.chance(50).then(|| format!("o{}", rng.below(overrides) + 1))),
            _ => {
                overrides += 1;
                let action = match rng.below(4) {
                    0 | 1 => OverrideAction::Drain {
                        target: if rng.chance(60) {
                            Target { policy: None, kind: TargetKind::Endpoint, name: rng.pick(&endpoints).clone() }
                        } else {
                            Target { policy: None, kind: TargetKind::Pool, name: rng.pick(&pools).clone() }
                        },
                    },
                    2 => OverrideAction::Pin {
                        record: policy.name().to_string(),
                        weights: endpoints.iter().map(|e| (e.clone(), rng.below(4) as u32)).collect(),
                    },
                    _ if rng.chance(50) => OverrideAction::Freeze { scope: FreezeScope::All },
                    _ => OverrideAction::FailoverToPool {
                        record: policy.name().to_string(),
                        pool: rng.pick(&pools).clone(),
                        immediate: rng.chance(30),
                    },
                };
                let created_at = Timestamp(at.as_millis() as u64);
                EventAction::Override(Override {
                    id: format!("o{overrides}"),
                    action,
                    reason: "seeded".into(),
                    author: "sim".into(),
                    created_at,
                    expires_at: Some(created_at.add(Duration::from_secs(10 + rng.below(60)))),
                    force: rng.chance(25),
                })
            }
        };
        events.push(Event { at, action });
    }
    events.sort_by_key(|e| e.at);
    Scenario {
        name: format!("seed-{seed}"),
        capability: if rng.chance(30) { Capability::SetOnly } else { Capability::Weighted },
        duration: Duration::from_secs(duration_s),
        tick: Duration::from_secs(1),
        seed,
        vantages,
        events,
    }
}

#[test]
fn invariants_hold_over_seeded_simulation_schedules() {
    let examples = example_policies();
    let seeds: Vec<u64> = match std::env::var("VEER_SIM_SEED") {
        Ok(one) => vec![one.parse().expect("VEER_SIM_SEED is a number")],
        Err(_) => {
            let count: u64 = std::env::var("VEER_SIM_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
            (0..count).collect()
        }
    };
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                let (examples, seeds) = (&examples, &seeds);
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for seed in seeds.iter().skip(worker).step_by(workers) {
                        let policies = &examples[(*seed % examples.len() as u64) as usize];
                        let scenario = scenario(*seed, policies);
                        let run = sim::run(&scenario, policies);
                        if seed % 100 == 0 {
                            let again = sim::run(&scenario, policies);
                            if sim::render::json(&again) != sim::render::json(&run) {
                                failures.push(format!("seed {seed}: the same schedule gave another timeline"));
                            }
                        }
                        if let Some(v) = run.violations.first() {
                            failures.push(format!(
                                "seed {seed} ({}): {} at {}s: {} (replay: VEER_SIM_SEED={seed})",
                                policies[0].policy.name(),
                                v.invariant,
                                v.t,
                                v.detail
                            ));
                        }
                    }
                    failures
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("worker")).collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} seeds broke an invariant:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
}
