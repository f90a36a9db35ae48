//! Table tests: one rule each, with hand-computed weights.

use super::*;
use crate::health::{EndpointHealth, EndpointKey, HealthState, HealthView};
use std::time::Duration;

fn policy(body: &str) -> FailoverPolicy {
    let yaml = format!(
        "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: api }}\nspec:\n  record: {{ name: api.example.com., type: A }}\n  publishTo: [p]\n  healthCheck: {{ type: tcp, port: 1 }}\n{body}"
    );
    serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

/// Four endpoints of capacity 100 in two pools, 50 % velocity cap.
const FOUR: &str = "  routing: weighted
  pools:
    - name: east
      endpoints:
        - { id: a, address: 192.0.2.1 }
        - { id: b, address: 192.0.2.2 }
    - name: west
      endpoints:
        - { id: c, address: 192.0.2.3 }
        - { id: d, address: 192.0.2.4 }
  shift: { maxRemovePercent: 50, window: 5m, maxChangesPerHour: 1000 }
  warmup: { stages: [10, 25, 50, 100], hold: 30s }
  guards: { minHealthyEndpoints: 1, minCapacityPercent: 25 }
";

/// A planner driven step by step, publishing every plan it makes.
struct World {
    policy: FailoverPolicy,
    weighting: Weighting,
    health: HealthView,
    observed: BTreeMap<String, ObservedRecord>,
    overrides: Vec<Override>,
    state: PlannerState,
    now: Timestamp,
}

impl World {
    fn new(body: &str) -> Self {
        let policy = policy(body);
        let mut health = HealthView::default();
        for (_, e) in policy.endpoints() {
            health.endpoints.insert(
                EndpointKey::new("api", e.id.value.as_str()),
                EndpointHealth { state: HealthState::Up, vantages_down: 0, vantages_fresh: 3 },
            );
        }
        World {
            policy,
            weighting: Weighting::Weighted { max_weight: 255 },
            health,
            observed: BTreeMap::new(),
            overrides: Vec::new(),
            state: PlannerState::default(),
            now: Timestamp(0),
        }
    }

    fn set(&mut self, id: &str, state: HealthState) {
        let down = if state == HealthState::Down { 3 } else { 0 };
        self.health
            .endpoints
            .insert(EndpointKey::new("api", id), EndpointHealth { state, vantages_down: down, vantages_fresh: 3 });
    }

    fn plan(&self) -> Plan {
        let inputs = [PolicyInput { policy: &self.policy, hash: "h", weighting: self.weighting }];
        plan(&PlanInput {
            policies: &inputs,
            health: &self.health,
            observed: &self.observed,
            overrides: &self.overrides,
            state: &self.state,
            now: self.now,
            seed: 7,
        })
    }

    /// Plans at `now + after` and publishes the plan.
    fn step(&mut self, after: Duration) -> RecordPlan {
        self.now = self.now.add(after);
        let plan = self.plan();
        let record = plan.records[0].clone();
        self.observed.insert("api".into(), record.published());
        self.state = plan.state;
        record
    }

    /// Lets a fresh record's endpoints walk every stage (a first publish warms up too).
    fn settle(&mut self) {
        for _ in 0..4 {
            self.step(Duration::from_secs(60));
        }
    }

    fn weights(record: &RecordPlan) -> Vec<(&str, u32)> {
        record.answers.iter().map(|a| (a.endpoint.as_str(), a.weight)).collect()
    }

    fn drain(&mut self, target: &str, force: bool) {
        self.overrides.push(Override {
            id: format!("o{}", self.overrides.len() + 1),
            action: OverrideAction::Drain { target: target.parse().unwrap() },
            reason: "test".into(),
            author: "ana".into(),
            created_at: self.now,
            expires_at: Some(self.now.add(Duration::from_secs(3600))),
            force,
        });
    }
}

const S: Duration = Duration::from_secs(1);

#[test]
fn weights_are_proportional_to_capacity_and_scaled_to_the_provider_range() {
    let mut w = World::new(
        "  routing: weighted
  pools:
    - name: aws
      endpoints:
        - { id: use1-a, address: 192.0.2.10, capacity: 100 }
        - { id: use1-b, address: 192.0.2.11, capacity: 100 }
    - name: gcp
      endpoints:
        - { id: euw1-a, address: 198.51.100.7, capacity: 150 }
",
    );
    let r = w.step(S);
    // 100 : 100 : 150, the largest scaled to 255: 170, 170, 255.
    assert_eq!(World::weights(&r), [("use1-a", 170), ("use1-b", 170), ("euw1-a", 255)]);
    assert!((r.answers[2].share - 150.0 / 350.0).abs() < 1e-9);
    assert_eq!(r.generation, 1);
    assert_eq!(r.changes.len(), 3);
}

#[test]
fn an_unhealthy_endpoint_goes_to_zero_with_its_vantage_counts_in_the_reason() {
    let mut w = World::new(FOUR);
    w.step(S);
    w.set("a", HealthState::Down);
    let r = w.step(S);
    assert_eq!(World::weights(&r), [("b", 255), ("c", 255), ("d", 255)]);
    assert_eq!(r.changes.len(), 1);
    assert_eq!(r.changes[0].reason, "a unhealthy (3/3 vantages) → weight 0");
    assert_eq!(r.generation, 2);
}

#[test]
fn removals_beyond_the_velocity_cap_are_held_and_reported_until_the_window_passes() {
    let mut w = World::new(FOUR);
    w.step(S);
    for id in ["a", "b", "c"] {
        w.set(id, HealthState::Down);
    }
    let r = w.step(S);
    // 50 % of 400 = 200: a and b go, c is held.
    assert_eq!(World::weights(&r), [("c", 255), ("d", 255)]);
    assert_eq!(r.held.len(), 1);
    assert_eq!(r.held[0].cause, HoldCause::Velocity);
    assert_eq!(r.held[0].endpoint.as_deref(), Some("c"));
    let r = w.step(Duration::from_secs(200));
    assert_eq!(r.held[0].cause, HoldCause::Velocity, "still inside the 5m window");
    let r = w.step(Duration::from_secs(100));
    assert_eq!(World::weights(&r), [("d", 255)]);
    assert!(r.held.is_empty());
}

#[test]
fn a_returning_endpoint_walks_every_stage_one_hold_at_a_time() {
    let mut w = World::new(FOUR);
    w.step(S);
    w.settle();
    w.set("a", HealthState::Down);
    w.step(S);
    w.set("a", HealthState::Up);
    let r = w.step(S);
    // a at 10 % of its capacity next to three at 100 %: 10/100·255 = 25.5 → 26.
    assert_eq!(World::weights(&r)[0], ("a", 26));
    assert_eq!(r.changes[0].reason, "a healthy, warm-up starts at 10%");
    let r = w.step(Duration::from_secs(29));
    assert!(r.changes.is_empty(), "hold not reached");
    let r = w.step(S);
    assert_eq!(World::weights(&r)[0], ("a", 64));
    assert_eq!(r.changes[0].reason, "a warm-up 10% → 25%");
    let r = w.step(Duration::from_secs(600));
    assert_eq!(World::weights(&r)[0], ("a", 128), "one stage per plan, however long the gap");
    let r = w.step(Duration::from_secs(30));
    assert_eq!(World::weights(&r)[0], ("a", 255));
    assert_eq!(r.changes[0].reason, "a warm-up 50% → 100%");
}

#[test]
fn a_failure_during_warm_up_resets_to_zero_and_retries_after_a_jittered_backoff() {
    let mut w = World::new(FOUR);
    w.step(S);
    w.settle();
    w.set("a", HealthState::Down);
    w.step(S);
    w.set("a", HealthState::Up);
    w.step(S);
    w.step(Duration::from_secs(30));
    w.set("a", HealthState::Down);
    let r = w.step(S);
    assert!(r.answers.iter().all(|a| a.endpoint != "a"));
    let WarmupState::Out { retry_at, attempts } = w.state.records["api"].endpoints["a"] else { panic!() };
    assert_eq!(attempts, 1);
    let delay = retry_at.since(w.now);
    assert!(delay >= Duration::from_secs(15) && delay <= Duration::from_secs(30), "{delay:?}");
    w.set("a", HealthState::Up);
    let r = w.step(S);
    assert!(r.held.iter().any(|h| h.cause == HoldCause::Backoff));
    let r = w.step(delay);
    assert_eq!(World::weights(&r)[0], ("a", 26), "retries from the first stage");
}

#[test]
fn unknown_health_keeps_what_is_published() {
    let mut w = World::new(FOUR);
    w.step(S);
    w.health.endpoints.clear();
    let r = w.step(Duration::from_secs(60));
    assert!(r.changes.is_empty());
    assert_eq!(r.answers.len(), 4);
}

#[test]
fn an_impaired_checker_holds_the_last_known_good_answers() {
    let mut w = World::new(FOUR);
    w.step(S);
    w.set("a", HealthState::Down);
    w.health.impaired = Some("no fresh vantage".into());
    let r = w.step(S);
    assert!(r.changes.is_empty());
    assert_eq!(r.mode, PlanMode::Impaired);
    assert_eq!(r.held[0].cause, HoldCause::Impaired);
}

#[test]
fn all_unhealthy_serves_all_with_serve_all_and_keeps_last_with_keep_last() {
    let mut w = World::new(FOUR);
    w.step(S);
    w.set("a", HealthState::Down);
    w.step(S);
    for id in ["b", "c", "d"] {
        w.set(id, HealthState::Down);
    }
    let r = w.step(S);
    assert_eq!(r.mode, PlanMode::ServeAll);
    assert_eq!(World::weights(&r), [("a", 255), ("b", 255), ("c", 255), ("d", 255)]);

    let mut w =
        World::new(&FOUR.replace("minCapacityPercent: 25", "minCapacityPercent: 25, onAllUnhealthy: keep-last"));
    w.step(S);
    w.set("a", HealthState::Down);
    w.step(S);
    for id in ["b", "c", "d"] {
        w.set(id, HealthState::Down);
    }
    let r = w.step(S);
    assert_eq!(r.mode, PlanMode::KeepLast);
    assert_eq!(World::weights(&r), [("b", 255), ("c", 255), ("d", 255)]);
}

#[test]
fn a_drain_bypasses_the_velocity_cap_but_not_the_guards() {
    let mut w = World::new(&FOUR.replace("minCapacityPercent: 25", "minCapacityPercent: 50"));
    w.step(S);
    w.drain("pool/east", false);
    let r = w.step(S);
    assert_eq!(World::weights(&r), [("c", 255), ("d", 255)], "50 % left meets the 50 % floor");
    w.drain("c", false);
    let r = w.step(S);
    assert_eq!(World::weights(&r), [("c", 255), ("d", 255)]);
    assert_eq!(r.held[0].cause, HoldCause::Guard);
    assert_eq!(r.held[0].override_id.as_deref(), Some("o2"));
    assert!(r.held[0].reason.contains("below minCapacityPercent 50%"), "{}", r.held[0].reason);
}

#[test]
fn a_forced_drain_of_everything_still_leaves_answers() {
    let mut w = World::new(FOUR);
    w.step(S);
    w.drain("pool/east", true);
    w.drain("pool/west", true);
    let r = w.step(S);
    assert!(!r.answers.is_empty());
    w.drain("pool/east", true);
    let r = w.step(S);
    assert!(!r.answers.is_empty());
}

#[test]
fn a_pin_fixes_weights_and_a_freeze_holds_every_change() {
    let mut w = World::new(FOUR);
    w.step(S);
    w.overrides.push(Override {
        id: "pin".into(),
        action: OverrideAction::Pin {
            record: "api.example.com.".into(),
            weights: [("a".into(), 3), ("c".into(), 1)].into(),
        },
        reason: "test".into(),
        author: "ana".into(),
        created_at: w.now,
        expires_at: Some(w.now.add(Duration::from_secs(60))),
        force: false,
    });
    let r = w.step(S);
    assert_eq!(r.mode, PlanMode::Pinned);
    assert_eq!(World::weights(&r), [("a", 255), ("c", 85)]);
    w.overrides.push(Override {
        id: "ice".into(),
        action: OverrideAction::Freeze { scope: FreezeScope::All },
        reason: "incident".into(),
        author: "bo".into(),
        created_at: w.now,
        expires_at: Some(w.now.add(Duration::from_secs(600))),
        force: false,
    });
    // The pin expires; the freeze holds the pinned answers.
    let r = w.step(Duration::from_secs(120));
    assert_eq!(r.mode, PlanMode::Frozen);
    assert_eq!(World::weights(&r), [("a", 255), ("c", 85)]);
    assert!(r.held.iter().all(|h| h.cause == HoldCause::Freeze) && !r.held.is_empty());
}

#[test]
fn the_change_budget_holds_a_record_that_changed_too_often() {
    let mut w = World::new(&FOUR.replace("maxChangesPerHour: 1000", "maxChangesPerHour: 2"));
    w.step(S);
    w.set("a", HealthState::Down);
    w.step(S);
    w.set("b", HealthState::Down);
    let r = w.step(S);
    assert_eq!(r.mode, PlanMode::ChangeBudget);
    assert_eq!(r.answers.len(), 3);
    let r = w.step(Duration::from_secs(3600));
    assert_eq!(r.answers.len(), 2, "the hour has passed");
}

#[test]
fn set_only_records_rejoin_in_stages_of_max_join_percent() {
    let mut w = World::new(
        "  routing: weighted
  pools:
    - name: p
      endpoints:
        - { id: a, address: 192.0.2.1 }
        - { id: b, address: 192.0.2.2 }
        - { id: c, address: 192.0.2.3 }
        - { id: d, address: 192.0.2.4 }
  shift: { maxRemovePercent: 100 }
  warmup: { hold: 10s, maxJoinPercent: 25 }
  guards: { minCapacityPercent: 0 }
",
    );
    w.weighting = Weighting::SetOnly;
    let r = w.step(S);
    assert_eq!(World::weights(&r), [("a", 1)], "a fresh record joins 25 % at a time too");
    for id in ["b", "c"] {
        let r = w.step(Duration::from_secs(10));
        assert_eq!(r.answers.last().unwrap().endpoint, id);
    }
    let r = w.step(Duration::from_secs(5));
    assert!(r.changes.is_empty());
    assert!(r.held.iter().any(|h| h.cause == HoldCause::JoinCap));
    assert!((r.answers[0].share - 1.0 / 3.0).abs() < 1e-9, "members share equally");
}

#[test]
fn at_max_join_percent_100_a_rejoin_is_never_held() {
    let mut w = World::new(
        "  routing: weighted
  pools:
    - name: p
      endpoints:
        - { id: a, address: 192.0.2.1 }
        - { id: b, address: 192.0.2.2 }
  shift: { maxRemovePercent: 100 }
  warmup: { stages: [100], hold: 60s, maxJoinPercent: 100 }
  guards: { minCapacityPercent: 0, minHealthyEndpoints: 1 }
",
    );
    w.weighting = Weighting::SetOnly;
    assert_eq!(World::weights(&w.step(S)), [("a", 1), ("b", 1)], "both join at once");
    w.set("b", HealthState::Down);
    assert_eq!(World::weights(&w.step(S)), [("a", 1)]);
    w.set("b", HealthState::Up);
    let r = w.step(S);
    assert!(!r.held.iter().any(|h| h.cause == HoldCause::JoinCap), "{:?}", r.held);
    assert_eq!(World::weights(&r), [("a", 1), ("b", 1)], "b rejoins within the same hold: {:?}", r.held);
}

#[test]
fn failover_serves_the_first_qualifying_pool_and_returns_through_warm_up() {
    let mut w = World::new(
        "  routing: failover
  pools:
    - name: primary
      endpoints:
        - { id: a, address: 192.0.2.1 }
        - { id: b, address: 192.0.2.2 }
    - name: standby
      endpoints:
        - { id: c, address: 192.0.2.3 }
  shift: { maxRemovePercent: 100 }
  warmup: { stages: [50, 100], hold: 10s }
  guards: { minCapacityPercent: 50 }
",
    );
    let r = w.step(S);
    assert_eq!(World::weights(&r), [("a", 255), ("b", 255)]);
    w.settle();
    w.set("a", HealthState::Down);
    w.set("b", HealthState::Down);
    let r = w.step(S);
    assert_eq!(World::weights(&r), [("c", 255)]);
    w.step(Duration::from_secs(10));
    w.set("a", HealthState::Up);
    w.set("b", HealthState::Up);
    let r = w.step(S);
    // The primary warms at 50 % while the standby bridges at 100 %.
    assert_eq!(World::weights(&r), [("a", 128), ("b", 128), ("c", 255)]);
    let r = w.step(Duration::from_secs(10));
    assert_eq!(World::weights(&r), [("a", 255), ("b", 255)], "the primary is warm: the bridge ends");
    assert!(r.changes[2].reason.contains("not serving"), "{:?}", r.changes);
}

#[test]
fn re_planning_after_publishing_changes_nothing() {
    let mut w = World::new(FOUR);
    w.step(S);
    w.set("a", HealthState::Down);
    w.set("b", HealthState::Down);
    w.set("c", HealthState::Down);
    w.step(S);
    let again = w.step(Duration::ZERO);
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    assert_eq!(w.plan(), w.plan(), "deterministic");
}

#[test]
fn impact_previews_a_drain_and_names_the_guard_that_refuses_it() {
    let mut w = World::new(&FOUR.replace("minCapacityPercent: 25", "minCapacityPercent: 60"));
    w.step(S);
    let proposed = Override {
        id: "new".into(),
        action: OverrideAction::Drain { target: "pool/east".parse().unwrap() },
        reason: "fat finger".into(),
        author: "ana".into(),
        created_at: w.now,
        expires_at: None,
        force: false,
    };
    let inputs = [PolicyInput { policy: &w.policy, hash: "h", weighting: w.weighting }];
    let input = PlanInput {
        policies: &inputs,
        health: &w.health,
        observed: &w.observed,
        overrides: &w.overrides,
        state: &w.state,
        now: w.now,
        seed: 7,
    };
    let preview = impact(&input, &proposed);
    assert!(preview.is_refused());
    assert!(preview.records[0].refused_by.as_ref().unwrap().contains("minCapacityPercent 60%"));
    assert_eq!(preview.records[0].before, preview.records[0].after);
    let forced = impact(&input, &Override { force: true, ..proposed });
    assert!(!forced.is_refused());
    assert!(forced.records[0].guard_bypassed.is_some());
    assert_eq!(forced.records[0].after.len(), 2);
    assert!((forced.records[0].healthy_capacity_percent_after - 50.0).abs() < 1e-9);
}

#[test]
fn removal_impact_previews_an_undrain_as_the_drained_endpoint_returning() {
    let mut w = World::new(FOUR);
    w.step(S);
    let drain = Override {
        id: "d1".into(),
        action: OverrideAction::Drain { target: "a".parse().unwrap() },
        reason: "maintenance".into(),
        author: "ana".into(),
        created_at: w.now,
        expires_at: None,
        force: true,
    };
    w.overrides.push(drain);
    w.step(S);
    let inputs = [PolicyInput { policy: &w.policy, hash: "h", weighting: w.weighting }];
    let input = PlanInput {
        policies: &inputs,
        health: &w.health,
        observed: &w.observed,
        overrides: &w.overrides,
        state: &w.state,
        now: w.now,
        seed: 7,
    };
    let preview = removal_impact(&input, &["d1".to_string()]);
    assert_eq!(preview.records.len(), 1, "{preview:?}");
    let r = &preview.records[0];
    assert!(!r.before.iter().any(|a| a.endpoint == "a"), "drained before: {r:?}");
    assert!(r.after.iter().any(|a| a.endpoint == "a"), "back after (warming): {r:?}");
    assert!((r.healthy_capacity_percent_before - 75.0).abs() < 1e-9, "{r:?}");
    assert!((r.healthy_capacity_percent_after - 100.0).abs() < 1e-9, "{r:?}");
    assert!(removal_impact(&input, &["unknown".to_string()]).records.is_empty(), "nothing removed, nothing changes");
}

#[test]
fn a_new_leader_infers_full_weight_from_rounded_provider_weights() {
    let mut w = World::new(
        "  routing: weighted
  pools:
    - name: p
      endpoints:
        - { id: a, address: 192.0.2.1, capacity: 18 }
        - { id: b, address: 192.0.2.2, capacity: 84 }
        - { id: c, address: 192.0.2.3, capacity: 25 }
  warmup: { stages: [50, 100], hold: 0s }
",
    );
    // 18 : 84 : 25 scaled to 255 and rounded: no stage is visible in them.
    w.observed.insert(
        "api".into(),
        ObservedRecord { answers: [("a".into(), 55), ("b".into(), 255), ("c".into(), 76)].into() },
    );
    let r = w.step(Duration::ZERO);
    assert!(r.changes.is_empty());
    assert!(w.state.records["api"].endpoints.values().all(|s| *s == WarmupState::Full), "{:?}", w.state);
}

const TWO_POOLS_FAILOVER: &str = "  routing: failover
  pools:
    - name: primary
      endpoints:
        - { id: a, address: 192.0.2.1 }
        - { id: b, address: 192.0.2.2 }
    - name: standby
      endpoints:
        - { id: c, address: 192.0.2.3 }
        - { id: d, address: 192.0.2.4 }
  shift: { maxRemovePercent: 100 }
  warmup: { stages: [50, 100], hold: 10s }
  guards: { minCapacityPercent: 50 }
";

fn failover_to(w: &mut World, pool: &str, immediate: bool, force: bool) {
    w.overrides.push(Override {
        id: format!("f{}", w.overrides.len() + 1),
        action: OverrideAction::FailoverToPool { record: "api".into(), pool: pool.into(), immediate },
        reason: "drill".into(),
        author: "ana".into(),
        created_at: w.now,
        expires_at: Some(w.now.add(Duration::from_secs(3600))),
        force,
    });
}

#[test]
fn a_failover_override_moves_traffic_through_warm_up_unless_immediate() {
    let mut w = World::new(TWO_POOLS_FAILOVER);
    w.step(S);
    w.settle();
    failover_to(&mut w, "standby", false, false);
    let r = w.step(S);
    // The standby warms at 50 % while the primary bridges at 100 %.
    assert_eq!(World::weights(&r), [("a", 255), ("b", 255), ("c", 128), ("d", 128)]);
    let r = w.step(Duration::from_secs(10));
    assert_eq!(World::weights(&r), [("c", 255), ("d", 255)]);

    let mut w = World::new(TWO_POOLS_FAILOVER);
    w.step(S);
    w.settle();
    failover_to(&mut w, "standby", true, false);
    let r = w.step(S);
    assert_eq!(World::weights(&r), [("c", 255), ("d", 255)]);
    assert!(r.changes.iter().any(|c| c.reason.contains("warm-up skipped")), "{:?}", r.changes);
}

#[test]
fn a_failover_now_moves_the_old_pool_out_in_one_plan_outside_the_velocity_cap() {
    // Automation may remove a quarter of the capacity per window; the primary is half.
    let quarter = TWO_POOLS_FAILOVER.replace("maxRemovePercent: 100", "maxRemovePercent: 25");
    let mut w = World::new(&quarter);
    w.step(S);
    w.settle();
    failover_to(&mut w, "standby", true, false);
    let r = w.step(S);
    assert_eq!(World::weights(&r), [("c", 255), ("d", 255)], "held: {:?}", r.held);
    assert!(r.held.iter().all(|h| h.cause != HoldCause::Velocity), "{:?}", r.held);
    assert!(w.state.records["api"].removals.is_empty(), "an operator change uses no velocity budget");
    assert!(w.step(Duration::ZERO).changes.is_empty(), "re-planning changes nothing");

    // The guard still refuses a failover to a pool without the capacity.
    let mut w = World::new(&quarter);
    w.step(S);
    w.settle();
    w.set("c", HealthState::Down);
    w.set("d", HealthState::Down);
    failover_to(&mut w, "standby", true, false);
    let r = w.step(S);
    assert_eq!(World::weights(&r), [("a", 255), ("b", 255)]);
    assert!(
        r.held.iter().any(|h| h.cause == HoldCause::Guard && h.reason.contains("lacks healthy capacity")),
        "{:?}",
        r.held
    );
}

#[test]
fn under_a_failover_override_removals_for_health_in_the_serving_pool_stay_capped() {
    // 500 of capacity, a fifth per window: one endpoint.
    let mut w = World::new(
        "  routing: failover
  pools:
    - name: primary
      endpoints:
        - { id: a, address: 192.0.2.1 }
        - { id: b, address: 192.0.2.2 }
    - name: standby
      endpoints:
        - { id: c, address: 192.0.2.3 }
        - { id: d, address: 192.0.2.4 }
        - { id: e, address: 192.0.2.5 }
  shift: { maxRemovePercent: 20, window: 5m }
  warmup: { stages: [50, 100], hold: 10s }
  guards: { minCapacityPercent: 30 }
",
    );
    w.step(S);
    w.settle();
    failover_to(&mut w, "standby", true, false);
    let r = w.step(S);
    assert_eq!(World::weights(&r), [("c", 255), ("d", 255), ("e", 255)], "40% left at once: {:?}", r.held);
    w.set("c", HealthState::Down);
    let r = w.step(S);
    assert_eq!(World::weights(&r), [("d", 255), ("e", 255)]);
    w.set("d", HealthState::Down);
    let r = w.step(S);
    assert_eq!(World::weights(&r), [("d", 255), ("e", 255)], "the window's budget is used");
    assert!(
        r.held.iter().any(|h| h.cause == HoldCause::Velocity && h.endpoint.as_deref() == Some("d")),
        "{:?}",
        r.held
    );
}

#[test]
fn a_guard_restore_that_warms_the_serving_pool_ends_the_bridge_as_re_planning_would() {
    // The primary is down to `a` (b failed; its removal used the window's budget), the
    // standby's `d` is healthy but still in its backoff after a failed warm-up. An
    // operator fails over --now: `c` joins at full weight, the guard restores `d` (each
    // pool alone is below minHealthyEndpoints 2), so the standby is warm and the bridge
    // through `a` ends in this very plan — as re-planning from the published plan finds.
    let mut w =
        World::new(&TWO_POOLS_FAILOVER.replace("maxRemovePercent: 100", "maxRemovePercent: 25").replace(
            "guards: { minCapacityPercent: 50 }",
            "guards: { minHealthyEndpoints: 2, minCapacityPercent: 50 }",
        ));
    w.now = Timestamp(100_000);
    w.set("b", HealthState::Down);
    w.observed.insert("api".into(), ObservedRecord { answers: [("a".into(), 255)].into() });
    let out = WarmupState::Out { retry_at: w.now, attempts: 0 };
    let backoff = WarmupState::Out { retry_at: w.now.add(Duration::from_secs(60)), attempts: 1 };
    w.state.records.insert(
        "api".into(),
        RecordState {
            endpoints: [("a", WarmupState::Full), ("b", out), ("c", out), ("d", backoff)]
                .into_iter()
                .map(|(id, s)| (id.to_string(), s))
                .collect(),
            removals: vec![Removal { at: w.now, endpoint: "b".into(), capacity: 100 }],
            ..RecordState::default()
        },
    );
    failover_to(&mut w, "standby", true, false);
    let r = w.step(Duration::ZERO);
    assert_eq!(World::weights(&r), [("c", 255), ("d", 255)], "held: {:?}", r.held);
    assert!(r.changes.iter().any(|c| c.endpoint == "d" && c.reason.contains("guard needs it")), "{:?}", r.changes);
    assert!(r.changes.iter().any(|c| c.endpoint == "a" && c.reason.contains("not serving")), "{:?}", r.changes);
    let again = w.step(Duration::ZERO);
    assert!(again.changes.is_empty(), "{:?}", again.changes);
}

#[test]
fn a_failover_override_to_an_unhealthy_pool_is_refused_unless_forced() {
    let mut w = World::new(TWO_POOLS_FAILOVER);
    w.step(S);
    w.settle();
    w.set("c", HealthState::Down);
    w.set("d", HealthState::Down);
    failover_to(&mut w, "standby", false, false);
    let r = w.step(S);
    assert_eq!(World::weights(&r), [("a", 255), ("b", 255)]);
    assert!(r.held.iter().any(|h| h.cause == HoldCause::Guard && h.reason.contains("lacks healthy capacity")));
    failover_to(&mut w, "standby", true, true);
    let r = w.step(S);
    assert!(!r.answers.is_empty(), "forced into a dead pool, the record still has answers");
}
