//! What scenarios 2–4 run on: a seeded fleet written as a policy, a scenario
//! built in code, and `veer simulate`'s engine (the planner and the vantage
//! combiner on virtual time) with its independent checker (I1, I4–I7).

use super::Rng;
use std::path::Path;
use std::time::Duration;
use veer::planner::{Override, OverrideAction, Target, TargetKind};
use veer::policy::LoadedPolicy;
use veer::sim::{self, Capability, Event, EventAction, Health, Run, Scenario};
use veer::time::Timestamp;

/// The knobs of a generated policy.
#[derive(Debug, Clone)]
pub struct Knobs {
    /// Warm-up stages in percent.
    pub stages: Vec<u32>,
    /// Warm-up hold.
    pub hold_s: u64,
    /// `shift.maxRemovePercent`.
    pub max_remove: u64,
    /// `shift.window`.
    pub window_s: u64,
    /// `guards.minCapacityPercent`.
    pub min_capacity: u64,
    /// `warmup.maxJoinPercent`.
    pub max_join: u64,
}

impl Knobs {
    /// Seeded knobs: warm-up of up to four stages held `hold` (a range, seconds).
    pub fn random(rng: &mut Rng, hold_s: (u64, u64)) -> Self {
        let stage_sets: [&[u32]; 4] = [&[50, 100], &[25, 50, 100], &[10, 25, 50, 100], &[20, 60, 100]];
        Self {
            stages: rng.pick(&stage_sets).to_vec(),
            hold_s: rng.between(hold_s.0, hold_s.1),
            max_remove: rng.between(30, 100),
            window_s: rng.between(20, 60),
            min_capacity: rng.between(0, 30),
            max_join: rng.between(20, 50),
        }
    }
}

/// One pool: its name and `(id, capacity)` per endpoint.
pub type Pool = (String, Vec<(String, u32)>);

/// Seeded pools: `pools` pools of `per_pool` endpoints (a range), capacities 50, 100 or 150.
pub fn random_pools(rng: &mut Rng, pools: u64, per_pool: (u64, u64)) -> Vec<Pool> {
    (0..pools)
        .map(|p| {
            let count = rng.between(per_pool.0, per_pool.1);
            let endpoints = (0..count).map(|e| (format!("p{p}-e{e}"), 50 * rng.between(1, 3) as u32)).collect();
            (format!("pool{p}"), endpoints)
        })
        .collect()
}

/// The policy for `pools` with `knobs`, loaded and validated.
pub fn policy(pools: &[Pool], knobs: &Knobs) -> Vec<LoadedPolicy> {
    let mut address = 10;
    let pools_yaml: Vec<String> = pools
        .iter()
        .map(|(name, endpoints)| {
            let list: Vec<String> = endpoints
                .iter()
                .map(|(id, capacity)| {
                    address += 1;
                    format!("{{ id: {id}, address: 192.0.2.{address}, capacity: {capacity} }}")
                })
                .collect();
            format!("    - {{ name: {name}, endpoints: [{}] }}\n", list.join(", "))
        })
        .collect();
    let stages: Vec<String> = knobs.stages.iter().map(u32::to_string).collect();
    let text = format!(
        "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: fleet }}\nspec:\n  \
         record: {{ name: fleet.example.test., type: A, ttl: 30 }}\n  publishTo: [sim]\n  routing: weighted\n  \
         pools:\n{pools}  healthCheck: {{ type: tcp, port: 80, quorum: 50 }}\n  \
         shift: {{ maxRemovePercent: {remove}, window: {window}s, maxChangesPerHour: 600 }}\n  \
         warmup: {{ stages: [{stages}], hold: {hold}s, maxJoinPercent: {join} }}\n  \
         guards: {{ minHealthyEndpoints: 1, minCapacityPercent: {capacity} }}\n",
        pools = pools_yaml.concat(),
        remove = knobs.max_remove,
        window = knobs.window_s,
        stages = stages.join(", "),
        hold = knobs.hold_s,
        join = knobs.max_join,
        capacity = knobs.min_capacity,
    );
    let loaded = veer::policy::load_text(Path::new("generated.yaml"), &text, None);
    assert!(loaded.is_valid(), "{:#?}\n{text}", loaded.diagnostics);
    loaded.policies
}

/// A scenario over `duration` (ticks of `tick_s`) with `events`.
pub fn scenario(seed: u64, capability: Capability, duration_s: u64, tick_s: u64, mut events: Vec<Event>) -> Scenario {
    events.sort_by_key(|e| e.at);
    Scenario {
        name: format!("seed-{seed}"),
        capability,
        duration: Duration::from_secs(duration_s),
        tick: Duration::from_secs(tick_s),
        seed,
        vantages: ["v1", "v2", "v3"].map(String::from).to_vec(),
        events,
    }
}

/// A health event at `at_s` for an endpoint, on `vantages` (`None`: all).
pub fn health(at_s: u64, endpoint: &str, up: bool, vantages: Option<Vec<String>>) -> Event {
    Event {
        at: Duration::from_secs(at_s),
        action: EventAction::Health {
            target: Target { policy: None, kind: TargetKind::Endpoint, name: endpoint.into() },
            vantages,
            health: if up { Health::Up } else { Health::Down },
        },
    }
}

/// An operator drain of `pool` at `at_s`.
pub fn drain_pool(at_s: u64, id: &str, pool: &str, force: bool) -> Event {
    let created_at = Timestamp(at_s * 1000);
    Event {
        at: Duration::from_secs(at_s),
        action: EventAction::Override(Override {
            id: id.into(),
            action: OverrideAction::Drain {
                target: Target { policy: None, kind: TargetKind::Pool, name: pool.into() },
            },
            reason: if force { "confirmed".into() } else { "decommission one endpoint (typo: the whole pool)".into() },
            author: "sim".into(),
            created_at,
            expires_at: Some(created_at.add(Duration::from_secs(3_600))),
            force,
        }),
    }
}

/// Runs the scenario; the checker's first violation is an error.
pub fn run(scenario: &Scenario, policies: &[LoadedPolicy]) -> Result<Run, String> {
    let run = sim::run(scenario, policies);
    match run.violations.first() {
        Some(v) => Err(format!("{} at {}s: {}", v.invariant, v.t, v.detail)),
        None => Ok(run),
    }
}

/// A digest of the timeline, for the determinism re-run.
pub fn digest(run: &Run) -> String {
    let json = sim::render::json(run);
    format!("{} bytes, hash {:016x}", json.len(), veer::health::schedule::stable_hash(&[json.as_bytes()]))
}
