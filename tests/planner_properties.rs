//! Property tests of the planner (ARCHITECTURE.md §2): over random policies, health
//! sequences and overrides, at every step
//! - I1, I4, I5, I6 and I7 hold, as judged by the simulator's independent checker;
//! - the plan is deterministic (same input, same plan);
//! - re-planning right after publishing the plan changes nothing (I9).
//!
//! `PROPTEST_CASES` sets the number of cases (default 256); failures print the
//! minimal input and proptest's seed.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;
use veer::health::{EndpointHealth, EndpointKey, HealthState, HealthView};
use veer::planner::{
    FreezeScope, ObservedRecord, Override, OverrideAction, PlanInput, PlannerState, PolicyInput, Target, TargetKind,
    Weighting, plan,
};
use veer::policy::FailoverPolicy;
use veer::sim::check::Checker;
use veer::time::Timestamp;

#[derive(Debug, Clone)]
struct PolicyShape {
    failover: bool,
    pools: Vec<Vec<u32>>,
    stages: usize,
    hold_s: u64,
    remove_percent: u32,
    window_s: u64,
    changes_per_hour: u32,
    join_percent: u32,
    min_endpoints: u32,
    min_capacity: u32,
    keep_last: bool,
}

const STAGES: [&str; 5] = ["[100]", "[50, 100]", "[10, 25, 50, 100]", "[20, 40, 60, 80, 100]", "[5, 100]"];

impl PolicyShape {
    fn yaml(&self) -> String {
        let mut pools = String::new();
        let mut n = 0;
        for (p, caps) in self.pools.iter().enumerate() {
            pools += &format!("    - name: pool{p}\n      endpoints:\n");
            for cap in caps {
                pools += &format!("        - {{ id: e{n}, address: 192.0.2.{}, capacity: {cap} }}\n", n + 1);
                n += 1;
            }
        }
        let largest = self.pools.iter().map(Vec::len).max().unwrap_or(1) as u32;
        let reachable = if self.failover { largest } else { n as u32 };
        format!(
            "apiVersion: veer/v1
kind: FailoverPolicy
metadata: {{ name: prop }}
spec:
  record: {{ name: prop.example.com., type: A }}
  publishTo: [p]
  routing: {routing}
  pools:
{pools}  healthCheck: {{ type: tcp, port: 1 }}
  shift: {{ maxRemovePercent: {remove}, window: {window}s, maxChangesPerHour: {changes} }}
  warmup: {{ stages: {stages}, hold: {hold}s, maxJoinPercent: {join} }}
  guards: {{ minHealthyEndpoints: {min_endpoints}, minCapacityPercent: {min_capacity}, onAllUnhealthy: {on} }}
",
            routing = if self.failover { "failover" } else { "weighted" },
            remove = self.remove_percent,
            window = self.window_s,
            changes = self.changes_per_hour,
            stages = STAGES[self.stages],
            hold = self.hold_s,
            join = self.join_percent,
            min_endpoints = self.min_endpoints.min(reachable).max(1),
            min_capacity = self.min_capacity,
            on = if self.keep_last { "keep-last" } else { "serve-all" },
        )
    }
}

fn policy_shape() -> impl Strategy<Value = PolicyShape> {
    (
        any::<bool>(),
        prop::collection::vec(prop::collection::vec(1u32..200, 1..5), 1..4),
        0..STAGES.len(),
        prop::sample::select(vec![0u64, 1, 5, 30]),
        prop_oneof![Just(100u32), 10u32..100],
        prop::sample::select(vec![10u64, 60, 300]),
        prop_oneof![Just(1000u32), 1u32..30],
        1u32..101,
        1u32..4,
        prop_oneof![Just(0u32), 0u32..101],
        any::<bool>(),
    )
        .prop_map(
            |(
                failover,
                pools,
                stages,
                hold_s,
                remove_percent,
                window_s,
                changes_per_hour,
                join_percent,
                min_endpoints,
                min_capacity,
                keep_last,
            )| {
                PolicyShape {
                    failover,
                    pools,
                    stages,
                    hold_s,
                    remove_percent,
                    window_s,
                    changes_per_hour,
                    join_percent,
                    min_endpoints,
                    min_capacity,
                    keep_last,
                }
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    Nothing,
    Drain { index: usize, pool: bool, force: bool, ttl_s: u64 },
    Pin { weights: Vec<u32>, force: bool },
    Freeze { ttl_s: u64 },
    Failover { pool: usize, immediate: bool, force: bool },
    ClearAll,
    ClearOldest,
}

fn op() -> impl Strategy<Value = Op> {
    let ttl = prop::sample::select(vec![20u64, 120, 14_400]);
    prop_oneof![
        12 => Just(Op::Nothing),
        2 => (0usize..12, any::<bool>(), prop::bool::weighted(0.3), ttl.clone())
            .prop_map(|(index, pool, force, ttl_s)| Op::Drain { index, pool, force, ttl_s }),
        1 => (prop::collection::vec(0u32..5, 12), prop::bool::weighted(0.3)).prop_map(|(weights, force)| Op::Pin { weights, force }),
        1 => ttl.prop_map(|ttl_s| Op::Freeze { ttl_s }),
        1 => (0usize..3, any::<bool>(), prop::bool::weighted(0.3))
            .prop_map(|(pool, immediate, force)| Op::Failover { pool, immediate, force }),
        1 => Just(Op::ClearAll),
        1 => Just(Op::ClearOldest),
    ]
}

#[derive(Debug, Clone)]
struct Tick {
    dt_s: u64,
    /// Per endpoint: 0–69 up, 70–94 down, 95–99 unknown.
    health: Vec<u8>,
    impaired: bool,
    op: Op,
}

fn tick() -> impl Strategy<Value = Tick> {
    (
        prop::sample::select(vec![0u64, 1, 1, 3, 10, 31, 120, 400]),
        prop::collection::vec(0u8..100, 12),
        prop::bool::weighted(0.05),
        op(),
    )
        .prop_map(|(dt_s, health, impaired, op)| Tick { dt_s, health, impaired, op })
}

fn run(shape: &PolicyShape, set_only: bool, ticks: &[Tick], seed: u64) -> Result<(), TestCaseError> {
    let text = shape.yaml();
    let loaded = veer::policy::load_text(std::path::Path::new("prop.yaml"), &text, None);
    prop_assert!(loaded.is_valid(), "generated an invalid policy: {:?}\n{text}", loaded.diagnostics);
    let policy: &FailoverPolicy = &loaded.policies[0].policy;
    let weighting = if set_only { Weighting::SetOnly } else { Weighting::Weighted { max_weight: 255 } };
    let inputs = [PolicyInput { policy, hash: "h", weighting }];
    let ids: Vec<String> = policy.endpoints().map(|(_, e)| e.id.value.clone()).collect();
    let pools: Vec<String> = policy.spec.pools.value.iter().map(|p| p.name.value.clone()).collect();

    let mut observed: BTreeMap<String, ObservedRecord> =
        [("prop".to_string(), veer::sim::steady(policy, weighting))].into();
    let mut checker = Checker::new(&[policy], weighting, &observed);
    let mut state = PlannerState::default();
    let mut overrides: Vec<Override> = Vec::new();
    let mut now = Timestamp(0);
    for (step, t) in ticks.iter().enumerate() {
        now = now.add(Duration::from_secs(t.dt_s));
        let mut view = HealthView::default();
        for (i, id) in ids.iter().enumerate() {
            let state = match t.health[i] {
                0..70 => HealthState::Up,
                70..95 => HealthState::Down,
                _ => HealthState::Unknown,
            };
            let (down, fresh) = match state {
                HealthState::Up => (0, 3),
                HealthState::Down => (3, 3),
                HealthState::Unknown => (0, 0),
            };
            view.endpoints.insert(
                EndpointKey::new("prop", id.as_str()),
                EndpointHealth { state, vantages_down: down, vantages_fresh: fresh },
            );
        }
        if t.impaired {
            view.impaired = Some("test".into());
        }
        let make = |action: OverrideAction, force: bool, ttl_s: u64| Override {
            id: format!("o{step}"),
            action,
            reason: "property".into(),
            author: "proptest".into(),
            created_at: now,
            expires_at: Some(now.add(Duration::from_secs(ttl_s))),
            force,
        };
        match &t.op {
            Op::Nothing => {}
            Op::Drain { index, pool, force, ttl_s } => {
                let target = if *pool {
                    Target { policy: None, kind: TargetKind::Pool, name: pools[index % pools.len()].clone() }
                } else {
                    Target { policy: None, kind: TargetKind::Endpoint, name: ids[index % ids.len()].clone() }
                };
                overrides.push(make(OverrideAction::Drain { target }, *force, *ttl_s));
            }
            Op::Pin { weights, force } => {
                let weights = ids.iter().zip(weights).map(|(id, w)| (id.clone(), *w)).collect();
                overrides.push(make(OverrideAction::Pin { record: "prop".into(), weights }, *force, 60));
            }
            Op::Freeze { ttl_s } => {
                overrides.push(make(OverrideAction::Freeze { scope: FreezeScope::All }, false, *ttl_s))
            }
            Op::Failover { pool, immediate, force } => overrides.push(make(
                OverrideAction::FailoverToPool {
                    record: "prop.example.com.".into(),
                    pool: pools[pool % pools.len()].clone(),
                    immediate: *immediate,
                },
                *force,
                300,
            )),
            Op::ClearAll => overrides.clear(),
            Op::ClearOldest => {
                if !overrides.is_empty() {
                    overrides.remove(0);
                }
            }
        }
        overrides.retain(|o| o.is_active(now));

        let input = PlanInput {
            policies: &inputs,
            health: &view,
            observed: &observed,
            overrides: &overrides,
            state: &state,
            now,
            seed,
        };
        let planned = plan(&input);
        prop_assert_eq!(&planned, &plan(&input), "step {}: the same input gave another plan", step);
        let record = &planned.records[0];
        let published: BTreeMap<String, ObservedRecord> = [("prop".to_string(), record.published())].into();
        let again = plan(&PlanInput { observed: &published, state: &planned.state, ..input });
        prop_assert!(
            again.records[0].changes.is_empty(),
            "step {step}: re-planning after publishing changed {:?}\nfirst: {:?}",
            again.records[0].changes,
            record.changes
        );
        checker.observe(now, &view, &overrides, &published);
        prop_assert!(
            checker.violations.is_empty(),
            "step {step} at {}s: {:?}\nplan: {record:#?}",
            now.as_millis() / 1000,
            checker.violations
        );
        observed = published;
        state = planned.state;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256), ..ProptestConfig::default() })]

    #[test]
    fn invariants_determinism_and_idempotence_hold_at_every_step(
        shape in policy_shape(),
        set_only in prop::bool::weighted(0.3),
        ticks in prop::collection::vec(tick(), 1..40),
        seed in any::<u64>(),
    ) {
        run(&shape, set_only, &ticks, seed)?;
    }
}
