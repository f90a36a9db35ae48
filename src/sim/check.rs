//! The invariant checker of `veer simulate`: it watches only what an outsider
//! sees — the combined health view, the active overrides and the published
//! answers tick by tick — and keeps its own ledgers, so a bookkeeping bug in the
//! planner cannot hide a violation.
//!
//! What each invariant means here (ARCHITECTURE.md §2):
//! - **I1** a record that had answers never has none.
//! - **I4** published capacity never drops below `minHealthyEndpoints` /
//!   `minCapacityPercent` while the healthy endpoints could meet them, unless a
//!   forced override is active (`failover`: some pool must meet them against its own capacity).
//! - **I5** automated removals (not drains, pins or failover overrides) within any
//!   `shift.window` stay within `maxRemovePercent` of the record's capacity, and
//!   changes per rolling hour within `maxChangesPerHour` (forced overrides and
//!   fail-open excepted).
//! - **I6** weighted: levels are measured against an endpoint that has served at
//!   full weight since the start (the run starts steady); a returning endpoint
//!   enters at the first stage, a rise never skips a stage, and rises are at least
//!   `hold` apart. Set-only: within any `hold`, more than one endpoint rejoins only
//!   within `maxJoinPercent` (guard restores excepted). Pins, freezes, forced or
//!   immediate failovers, an impaired checker and all-unhealthy ticks are exempt.
//! - **I7** while the checker is impaired nothing changes; when every endpoint is
//!   down, `serve-all` publishes every undrained endpoint and `keep-last` changes nothing.

use super::Violation;
use crate::health::{EndpointKey, HealthState, HealthView};
use crate::planner::overrides::names_record;
use crate::planner::{FreezeScope, ObservedRecord, Override, OverrideAction, Weighting};
use crate::policy::FailoverPolicy;
use crate::policy::model::{OnAllUnhealthy, Routing};
use crate::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

/// Watches a run and collects violations.
pub struct Checker<'p> {
    records: Vec<RecordWatch<'p>>,
    /// What broke, in time order.
    pub violations: Vec<Violation>,
}

struct RecordWatch<'p> {
    policy: &'p FailoverPolicy,
    set_only: bool,
    previous: BTreeMap<String, u32>,
    removals: VecDeque<(Timestamp, u64)>,
    changes: VecDeque<Timestamp>,
    joins: VecDeque<(Timestamp, u64)>,
    /// Published at every tick since the start: at full weight by construction.
    veterans: BTreeSet<String>,
    /// Absolute level (fraction of full weight) at the previous tick, with its
    /// rounding tolerance, when measurable.
    levels: BTreeMap<String, (f64, f64)>,
    last_rise: BTreeMap<String, Timestamp>,
    /// Set by an exempt tick, cleared by the next change.
    unmeasured: bool,
}

impl<'p> Checker<'p> {
    /// Starts watching from the published state `initial`.
    pub fn new(
        policies: &[&'p FailoverPolicy],
        weighting: Weighting,
        initial: &BTreeMap<String, ObservedRecord>,
    ) -> Self {
        let records = policies
            .iter()
            .map(|p| {
                let previous = initial.get(p.name()).map(|o| o.answers.clone()).unwrap_or_default();
                RecordWatch {
                    policy: p,
                    set_only: weighting == Weighting::SetOnly,
                    veterans: previous.keys().cloned().collect(),
                    levels: previous.keys().map(|k| (k.clone(), (1.0, 0.01))).collect(),
                    previous,
                    removals: VecDeque::new(),
                    changes: VecDeque::new(),
                    joins: VecDeque::new(),
                    last_rise: BTreeMap::new(),
                    unmeasured: false,
                }
            })
            .collect();
        Checker { records, violations: Vec::new() }
    }

    /// Checks one tick: the health view the planner saw, the active overrides,
    /// and what is published after the tick (by policy name).
    pub fn observe(
        &mut self,
        now: Timestamp,
        view: &HealthView,
        overrides: &[Override],
        published: &BTreeMap<String, ObservedRecord>,
    ) {
        let t = now.as_millis() as f64 / 1000.0;
        for watch in &mut self.records {
            let current = published.get(watch.policy.name()).map(|o| o.answers.clone()).unwrap_or_default();
            let mut found = Vec::new();
            watch.check(now, view, overrides, &current, &mut |invariant: &str, detail: String| {
                found.push(Violation { t, invariant: invariant.to_string(), detail })
            });
            self.violations.extend(found);
            watch.previous = current;
        }
    }
}

/// The overrides that bear on one record.
struct Active<'o> {
    drains: Vec<&'o Override>,
    pinned: bool,
    failover: Option<&'o Override>,
    frozen: bool,
    forced: bool,
}

fn active<'o>(policy: &FailoverPolicy, overrides: &'o [Override], now: Timestamp) -> Active<'o> {
    let mut a = Active { drains: Vec::new(), pinned: false, failover: None, frozen: false, forced: false };
    for o in overrides.iter().filter(|o| o.is_active(now)) {
        let applies = match &o.action {
            OverrideAction::Drain { target } => {
                let covers = policy.endpoints().any(|(p, e)| target.covers(policy.name(), &p.name.value, &e.id.value));
                if covers {
                    a.drains.push(o);
                }
                covers
            }
            OverrideAction::Pin { record, .. } => {
                let hit = names_record(record, policy);
                a.pinned |= hit;
                hit
            }
            OverrideAction::FailoverToPool { record, .. } => {
                let hit = names_record(record, policy);
                if hit {
                    a.failover = Some(o);
                }
                hit
            }
            OverrideAction::Freeze { scope } => {
                let hit = match scope {
                    FreezeScope::All => true,
                    FreezeScope::Record { record } => names_record(record, policy),
                    FreezeScope::Provider { provider } => {
                        policy.spec.publish_to.value.iter().any(|p| &p.value == provider)
                    }
                };
                a.frozen |= hit;
                false
            }
        };
        a.forced |= applies && o.force;
    }
    a
}

fn capacity(policy: &FailoverPolicy, id: &str) -> u64 {
    policy.endpoints().find(|(_, e)| e.id.value == id).map_or(0, |(_, e)| u64::from(e.capacity()))
}

/// Whether `members` meet the floor (`failover`: some pool does, on its own capacity).
fn floor_met(policy: &FailoverPolicy, members: &dyn Fn(&str) -> bool) -> bool {
    match policy.spec.routing.value {
        Routing::Weighted => meets(policy, &mut policy.endpoints().map(|(_, e)| e), members),
        Routing::Failover => {
            policy.spec.pools.value.iter().any(|pool| meets(policy, &mut pool.endpoints.value.iter(), members))
        }
    }
}

/// Whether the members among `endpoints` meet the floor against their capacity.
fn meets<'e>(
    policy: &FailoverPolicy,
    endpoints: &mut dyn Iterator<Item = &'e crate::policy::model::Endpoint>,
    members: &dyn Fn(&str) -> bool,
) -> bool {
    let g = &policy.spec.guards;
    let (mut total, mut count, mut capacity) = (0u64, 0u32, 0u64);
    for e in endpoints {
        total += u64::from(e.capacity());
        if members(&e.id.value) {
            count += 1;
            capacity += u64::from(e.capacity());
        }
    }
    count >= g.min_healthy_endpoints() && capacity as f64 * 100.0 + 1e-9 >= g.min_capacity_percent() * total as f64
}

impl RecordWatch<'_> {
    fn check(
        &mut self,
        now: Timestamp,
        view: &HealthView,
        overrides: &[Override],
        current: &BTreeMap<String, u32>,
        report: &mut dyn FnMut(&str, String),
    ) {
        let policy = self.policy;
        let record = policy.record_name().to_string();
        let state = |id: &str| view.state(&EndpointKey::new(policy.name(), id));
        let ids: Vec<&str> = policy.endpoints().map(|(_, e)| e.id.value.as_str()).collect();
        let total: u64 = policy.total_capacity();
        let all_down = ids.iter().all(|id| state(id) == HealthState::Down);
        let a = active(policy, overrides, now);
        let drained = |id: &str| {
            a.drains.iter().any(|o| match &o.action {
                OverrideAction::Drain { target } => {
                    policy.endpoints().any(|(p, e)| e.id.value == id && target.covers(policy.name(), &p.name.value, id))
                }
                _ => false,
            })
        };
        let previous = &self.previous.clone();
        let changed = current != previous;
        let published_capacity = |m: &BTreeMap<String, u32>| m.keys().map(|id| capacity(policy, id)).sum::<u64>();

        // I1
        if current.is_empty() && !previous.is_empty() {
            report("I1", format!("{record} has no answers"));
        }

        // I4
        if !a.forced && !floor_met(policy, &|id| current.contains_key(id)) {
            let decreased =
                published_capacity(current) < published_capacity(previous) || current.len() < previous.len();
            if decreased && floor_met(policy, &|id| state(id) == HealthState::Up) {
                report(
                    "I4",
                    format!(
                        "{record} published {} endpoint(s), {:.0}% of capacity, below its guards while healthy capacity meets them",
                        current.len(),
                        published_capacity(current) as f64 * 100.0 / total.max(1) as f64
                    ),
                );
            }
        }

        // I5
        let shift = &policy.spec.shift;
        for id in previous.keys().filter(|id| !current.contains_key(*id)) {
            // A failover override moves traffic off the other pools; removals
            // from the pool it serves from are automation's and stay capped.
            let failed_over = a.failover.is_some_and(|o| match &o.action {
                OverrideAction::FailoverToPool { pool, .. } => {
                    policy.endpoints().any(|(p, e)| e.id.value == *id && p.name.value != *pool)
                }
                _ => false,
            });
            let operator = drained(id) || a.pinned || failed_over || a.forced;
            if !operator {
                self.removals.push_back((now, capacity(policy, id)));
            }
        }
        while self.removals.front().is_some_and(|(at, _)| now.since(*at) >= shift.window()) {
            self.removals.pop_front();
        }
        let removed: u64 = self.removals.iter().map(|(_, c)| c).sum();
        if removed as f64 * 100.0 > shift.max_remove_percent() * total as f64 + 1e-6 {
            report(
                "I5",
                format!(
                    "{record}: automation removed {:.0}% of capacity within {} (maxRemovePercent {}%)",
                    removed as f64 * 100.0 / total.max(1) as f64,
                    crate::policy::duration::format(shift.window()),
                    shift.max_remove_percent()
                ),
            );
        }
        if changed && !a.forced && !all_down && !previous.is_empty() {
            self.changes.push_back(now);
        }
        while self.changes.front().is_some_and(|at| now.since(*at) >= HOUR) {
            self.changes.pop_front();
        }
        if self.changes.len() > shift.max_changes_per_hour() as usize {
            report(
                "I5",
                format!(
                    "{record}: {} changes within an hour (maxChangesPerHour {})",
                    self.changes.len(),
                    shift.max_changes_per_hour()
                ),
            );
        }

        // I7
        if let Some(why) = &view.impaired
            && changed
            && !previous.is_empty()
        {
            report("I7", format!("{record} changed while the checker is impaired ({why})"));
        }
        if all_down && view.impaired.is_none() && !a.frozen && !a.pinned {
            match policy.spec.guards.on_all_unhealthy() {
                OnAllUnhealthy::ServeAll => {
                    let all_drained = ids.iter().all(|id| drained(id));
                    let missing: Vec<&str> = ids
                        .iter()
                        .copied()
                        .filter(|id| (all_drained || !drained(id)) && !current.contains_key(*id))
                        .collect();
                    if !missing.is_empty() {
                        report(
                            "I7",
                            format!("{record}: every endpoint down, serve-all left out {}", missing.join(", ")),
                        );
                    }
                }
                OnAllUnhealthy::KeepLast => {
                    if changed && !previous.is_empty() {
                        report("I7", format!("{record}: every endpoint down, keep-last changed the answers"));
                    }
                }
            }
        }

        // I6
        let immediate = a
            .failover
            .is_some_and(|o| o.force || matches!(o.action, OverrideAction::FailoverToPool { immediate: true, .. }));
        // A freeze may hold weights that a pin set: they say nothing about warm-up.
        let exempt = previous.is_empty() || all_down || a.pinned || a.frozen || immediate || view.impaired.is_some();
        self.veterans.retain(|v| current.contains_key(v));
        let stages: Vec<f64> = policy.spec.warmup.stages().iter().map(|s| s / 100.0).collect();
        let hold = policy.spec.warmup.hold();
        if self.set_only {
            if !exempt && !a.forced {
                let joined: Vec<&String> = current.keys().filter(|id| !previous.contains_key(*id)).collect();
                for id in &joined {
                    self.joins.push_back((now, capacity(policy, id)));
                }
                while self.joins.front().is_some_and(|(at, _)| now.since(*at) >= hold) {
                    self.joins.pop_front();
                }
                let sum: u64 = self.joins.iter().map(|(_, c)| c).sum();
                let limit = policy.spec.warmup.max_join_percent() * total as f64 / 100.0;
                // Joins a guard needs (the healthy published set fell below the floor) may exceed the pace.
                // (`failover`: a pool that traffic moves to, judged on its own).
                let kept = |id: &str| previous.contains_key(id) && state(id) != HealthState::Down && !drained(id);
                let restoring = match policy.spec.routing.value {
                    Routing::Weighted => !floor_met(policy, &kept),
                    Routing::Failover => policy.spec.pools.value.iter().any(|pool| {
                        pool.endpoints.value.iter().any(|e| joined.contains(&&e.id.value))
                            && !meets(policy, &mut pool.endpoints.value.iter(), &kept)
                    }),
                };
                if !joined.is_empty() && self.joins.len() > 1 && sum as f64 > limit + 1e-9 && !restoring {
                    report(
                        "I6",
                        format!(
                            "{record}: {:.0}% of capacity rejoined within {} (maxJoinPercent {}%)",
                            sum as f64 * 100.0 / total.max(1) as f64,
                            crate::policy::duration::format(hold),
                            policy.spec.warmup.max_join_percent()
                        ),
                    );
                }
            }
            return;
        }
        if exempt || (self.unmeasured && !changed) {
            // Weights seen through an exemption (and held unchanged after it, e.g.
            // by the change budget) say nothing about warm-up: measure afresh after
            // the next change (rise times stay: the planner's stage clocks only move later).
            self.levels.clear();
            self.unmeasured = true;
            return;
        }
        self.unmeasured = false;
        // The veteran with the largest weight: the smallest rounding error.
        let Some(anchor) =
            self.veterans.iter().filter(|v| previous.contains_key(*v)).max_by_key(|v| current[*v]).cloned()
        else {
            self.levels.clear();
            return;
        };
        let per_capacity = |id: &str, w: u32| f64::from(w) / capacity(policy, id).max(1) as f64;
        let anchor_weight = current[&anchor];
        let scale = per_capacity(&anchor, anchor_weight);
        let mut levels = BTreeMap::new();
        for (id, w) in current {
            let level = per_capacity(id, *w) / scale;
            let tolerance = 0.01 + 1.0 / f64::from((*w).max(1)) + level / f64::from(anchor_weight.max(1));
            levels.insert(id.clone(), (level, tolerance));
            if !previous.contains_key(id) {
                if level > stages[0] + tolerance {
                    report(
                        "I6",
                        format!(
                            "{record}: {id} returned at {:.0}% of full weight, first stage is {}%",
                            level * 100.0,
                            stages[0] * 100.0
                        ),
                    );
                }
                self.last_rise.insert(id.clone(), now);
                continue;
            }
            let Some((before, tolerance_before)) = self.levels.get(id).copied() else { continue };
            let tolerance = tolerance + tolerance_before;
            if level <= before + tolerance {
                continue;
            }
            let next = stages.iter().copied().find(|s| *s > before + tolerance_before).unwrap_or(1.0);
            if level > next + tolerance {
                report(
                    "I6",
                    format!(
                        "{record}: {id} rose from {:.0}% to {:.0}%, past the {:.0}% stage",
                        before * 100.0,
                        level * 100.0,
                        next * 100.0
                    ),
                );
            }
            if let Some(last) = self.last_rise.get(id).filter(|last| now.since(**last) < hold) {
                report(
                    "I6",
                    format!(
                        "{record}: {id} rose {}s after its previous stage, hold is {}",
                        now.since(*last).as_secs(),
                        crate::policy::duration::format(hold)
                    ),
                );
            }
            self.last_rise.insert(id.clone(), now);
        }
        self.levels = levels;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::EndpointHealth;

    fn policy() -> FailoverPolicy {
        serde_saphyr::from_str(
            "apiVersion: veer/v1
kind: FailoverPolicy
metadata: { name: api }
spec:
  record: { name: api.example.com., type: A }
  publishTo: [p]
  routing: weighted
  pools:
    - name: east
      endpoints:
        - { id: a, address: 192.0.2.1 }
        - { id: b, address: 192.0.2.2 }
    - name: west
      endpoints:
        - { id: c, address: 192.0.2.3 }
        - { id: d, address: 192.0.2.4 }
  healthCheck: { type: tcp, port: 1 }
  shift: { maxRemovePercent: 50 }
  warmup: { stages: [10, 25, 50, 100], hold: 30s }
  guards: { minCapacityPercent: 25 }
",
        )
        .unwrap()
    }

    fn published(weights: &[(&str, u32)]) -> BTreeMap<String, ObservedRecord> {
        let answers = weights.iter().map(|(id, w)| (id.to_string(), *w)).collect();
        [("api".to_string(), ObservedRecord { answers })].into()
    }

    fn view(down: &[&str]) -> HealthView {
        let mut v = HealthView::default();
        for id in ["a", "b", "c", "d"] {
            let state = if down.contains(&id) { HealthState::Down } else { HealthState::Up };
            v.endpoints
                .insert(EndpointKey::new("api", id), EndpointHealth { state, vantages_down: 0, vantages_fresh: 3 });
        }
        v
    }

    fn invariants<'c>(checker: &'c Checker<'_>) -> Vec<&'c str> {
        checker.violations.iter().map(|v| v.invariant.as_str()).collect()
    }

    const FULL: [(&str, u32); 4] = [("a", 255), ("b", 255), ("c", 255), ("d", 255)];

    #[test]
    fn the_checker_flags_a_record_left_without_answers() {
        let p = policy();
        let mut c = Checker::new(&[&p], Weighting::Weighted { max_weight: 255 }, &published(&FULL));
        c.observe(Timestamp(1000), &view(&[]), &[], &published(&[]));
        assert!(invariants(&c).contains(&"I1"));
    }

    #[test]
    fn the_checker_flags_removals_beyond_the_velocity_cap() {
        let p = policy();
        let mut c = Checker::new(&[&p], Weighting::Weighted { max_weight: 255 }, &published(&FULL));
        c.observe(Timestamp(1000), &view(&["a", "b"]), &[], &published(&[("c", 255), ("d", 255)]));
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        c.observe(Timestamp(2000), &view(&["a", "b", "c"]), &[], &published(&[("d", 255)]));
        assert_eq!(invariants(&c), ["I5"]);
    }

    #[test]
    fn a_failover_exempts_removals_from_the_pools_it_leaves_not_from_the_one_it_serves() {
        let mut p = policy();
        p.spec.shift = serde_saphyr::from_str("{ maxRemovePercent: 25 }").unwrap();
        let failover = Override {
            id: "o-1".into(),
            action: OverrideAction::FailoverToPool { record: "api".into(), pool: "west".into(), immediate: true },
            reason: "test".into(),
            author: "t".into(),
            created_at: Timestamp(0),
            expires_at: None,
            force: false,
        };
        let overrides = [failover];
        let mut c = Checker::new(&[&p], Weighting::Weighted { max_weight: 255 }, &published(&FULL));
        c.observe(Timestamp(1000), &view(&[]), &overrides, &published(&[("c", 255), ("d", 255)]));
        assert!(c.violations.is_empty(), "east leaving is the operator's change: {:?}", c.violations);
        let mut c = Checker::new(&[&p], Weighting::Weighted { max_weight: 255 }, &published(&FULL));
        c.observe(Timestamp(1000), &view(&["c", "d"]), &overrides, &published(&[("a", 255), ("b", 255)]));
        assert_eq!(invariants(&c), ["I5"], "the served pool's own endpoints leave for health: capped");
    }

    #[test]
    fn the_checker_flags_a_return_at_full_weight_and_a_skipped_stage() {
        let p = policy();
        let mut c = Checker::new(&[&p], Weighting::Weighted { max_weight: 255 }, &published(&FULL));
        c.observe(Timestamp(1000), &view(&["a"]), &[], &published(&[("b", 255), ("c", 255), ("d", 255)]));
        c.observe(Timestamp(2000), &view(&[]), &[], &published(&[("a", 26), ("b", 255), ("c", 255), ("d", 255)]));
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        c.observe(Timestamp(40_000), &view(&[]), &[], &published(&[("a", 128), ("b", 255), ("c", 255), ("d", 255)]));
        assert_eq!(invariants(&c), ["I6"], "10 % → 50 % skips the 25 % stage");
        let mut c = Checker::new(&[&p], Weighting::Weighted { max_weight: 255 }, &published(&FULL));
        c.observe(Timestamp(1000), &view(&["a"]), &[], &published(&[("b", 255), ("c", 255), ("d", 255)]));
        c.observe(Timestamp(2000), &view(&[]), &[], &published(&FULL));
        assert_eq!(invariants(&c), ["I6"]);
    }

    #[test]
    fn the_checker_flags_changes_while_the_checker_is_impaired() {
        let p = policy();
        let mut c = Checker::new(&[&p], Weighting::Weighted { max_weight: 255 }, &published(&FULL));
        let mut v = view(&["a"]);
        v.impaired = Some("no fresh vantage data".into());
        c.observe(Timestamp(1000), &v, &[], &published(&[("b", 255), ("c", 255), ("d", 255)]));
        assert!(invariants(&c).contains(&"I7"));
    }
}
