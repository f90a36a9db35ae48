//! The runner on virtual time: the real planner plans each round, a provider
//! publishes what it planned (or fails to be read), and the drill steps after
//! each round, as the leader's loop does.

use super::*;
use crate::drill::model::Drill;
use crate::health::EndpointHealth;
use crate::planner::{PlannerState, plan};
use crate::policy::source::{DocumentText, parse_document};
use std::path::Path;

const POLICY: &str = "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: { name: api }\nspec:\n  \
    record: { name: api.example.test., type: A }\n  publishTo: [local]\n  routing: weighted\n  pools:\n    \
    - { name: east, endpoints: [{ id: a, address: 192.0.2.1 }, { id: b, address: 192.0.2.2 }] }\n    \
    - { name: west, endpoints: [{ id: c, address: 192.0.2.3 }] }\n  healthCheck: { type: tcp, port: 80 }\n  \
    warmup: { stages: [10, 25, 50, 100], hold: 2s }\n  guards: { minCapacityPercent: MIN }\n";

const TICK: Duration = Duration::from_millis(500);

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> T {
    parse_document(Path::new("t.yaml"), &DocumentText { text: text.into(), first_line: 1 }).unwrap()
}

fn definition(spec: &str) -> Definition {
    let drill: Drill =
        parse(&format!("apiVersion: veer/v1\nkind: Drill\nmetadata: {{ name: rehearse }}\nspec:\n{spec}"));
    drill.definition().unwrap()
}

/// A leader, a provider and a drill, on virtual time.
struct Sim {
    policy: FailoverPolicy,
    definition: Definition,
    now: Timestamp,
    health: HealthView,
    state: PlannerState,
    published: ObservedRecord,
    overrides: Vec<Override>,
    report: Option<Report>,
    abort: Option<String>,
    /// Whether the provider cannot be read back, given the target's warm-up after the round.
    blind: Box<dyn Fn(Option<WarmupState>) -> bool>,
    actions: Vec<Action>,
}

impl Sim {
    fn new(min_capacity_percent: u32, drill: &str) -> Sim {
        let mut sim = Sim {
            policy: parse(&POLICY.replace("MIN", &min_capacity_percent.to_string())),
            definition: definition(drill),
            now: Timestamp(1_700_000_000_000),
            health: HealthView::default(),
            state: PlannerState::default(),
            published: ObservedRecord::default(),
            overrides: Vec::new(),
            report: None,
            abort: None,
            blind: Box::new(|_| false),
            actions: Vec::new(),
        };
        for id in ["a", "b", "c"] {
            sim.set(id, HealthState::Up);
        }
        // Converge: every endpoint warms up to full weight.
        for _ in 0..40 {
            sim.round();
            sim.now = sim.now.add(TICK);
        }
        assert!(sim.state.records["api"].endpoints.values().all(|w| *w == WarmupState::Full), "converged");
        sim
    }

    fn set(&mut self, endpoint: &str, state: HealthState) {
        let down = u32::from(state == HealthState::Down);
        self.health.endpoints.insert(
            EndpointKey::new("api", endpoint),
            EndpointHealth { state, vantages_down: down * 2, vantages_fresh: 2 },
        );
    }

    fn inputs(&self) -> [PolicyInput<'_>; 1] {
        [PolicyInput { policy: &self.policy, hash: "h", weighting: Weighting::Weighted { max_weight: 100 } }]
    }

    /// One planned and applied round: (plan, what it saw published, the state it started from).
    fn round(&mut self) -> (Plan, BTreeMap<String, ObservedRecord>, PlannerState) {
        let observed = BTreeMap::from([("api".to_string(), self.published.clone())]);
        let inputs = self.inputs();
        let plan = plan(&PlanInput {
            policies: &inputs,
            health: &self.health,
            observed: &observed,
            overrides: &self.overrides,
            state: &self.state,
            now: self.now,
            seed: 7,
        });
        let before = std::mem::replace(&mut self.state, plan.state.clone());
        self.published = plan.records[0].published();
        (plan, observed, before)
    }

    /// A round, then `decide` with what the leader's loop would hand the drill.
    fn after_round<R>(&mut self, decide: impl FnOnce(&Sim, &World<'_>) -> R) -> R {
        let (plan, observed, before) = self.round();
        let inputs = self.inputs();
        let world = World {
            now: self.now,
            policies: &inputs,
            health: &self.health,
            published: &observed,
            state: &before,
            overrides: &self.overrides,
            plan: &plan,
        };
        decide(self, &world)
    }

    /// A round, then the drill's step (or start), then its actions.
    fn tick(&mut self) {
        let (report, actions) = self.after_round(|sim, world| {
            let target = world.plan.state.records["api"].endpoints.get("a").copied();
            let read = (!(sim.blind)(target)).then(|| sim.published.clone());
            let read_back = BTreeMap::from([("local".to_string(), read)]);
            match &sim.report {
                None => {
                    let request = scheduled();
                    let cleared = preflight(&sim.definition, world, &request);
                    start(&sim.definition, world, &request, cleared, ("r0", 3), Vec::new())
                }
                Some(report) => {
                    let live =
                        sim.overrides.iter().any(|o| o.id == drain_override_id(&report.drill, report.started_at));
                    let tick = Tick {
                        world,
                        definition: Some(&sim.definition),
                        read_back: &read_back,
                        override_live: live,
                        abort: sim.abort.as_deref(),
                    };
                    step_drain(report, &tick)
                }
            }
        });
        for action in &actions {
            match action {
                Action::Drain(o) => self.overrides.push(o.clone()),
                Action::Lift(id) => self.overrides.retain(|o| &o.id != id),
                Action::StepDown => {}
            }
        }
        self.actions.extend(actions);
        self.report = Some(report);
        self.now = self.now.add(TICK);
    }

    fn run_until(&mut self, done: impl Fn(&Report) -> bool) {
        for _ in 0..1_000 {
            self.tick();
            if self.report.as_ref().is_some_and(&done) {
                return;
            }
        }
        panic!("not reached in 1000 ticks: {:#?}", self.report);
    }

    fn report(&self) -> &Report {
        self.report.as_ref().unwrap()
    }

    fn kinds(&self) -> Vec<StepKind> {
        self.report().steps.iter().map(|s| s.step).collect()
    }

    fn weight(&self, endpoint: &str) -> u32 {
        self.published.answers.get(endpoint).copied().unwrap_or(0)
    }
}

fn scheduled() -> Request<'static> {
    Request { kind: TriggerKind::Schedule, author: "veer", running: None, standalone: false, requested_at: None }
}

const DRAIN_A: &str = "  target: a\n  policy: api\n  duration: 5s\n";

#[test]
fn a_drain_drill_drains_holds_and_restores_through_every_stage() {
    let mut sim = Sim::new(30, DRAIN_A);
    sim.tick();
    assert_eq!(sim.kinds(), [StepKind::Preflight, StepKind::Drain]);
    assert!(matches!(&sim.actions[..], [Action::Drain(o)] if o.reason == "drill:rehearse" && !o.force));
    let drain = match &sim.actions[0] {
        Action::Drain(o) => o.clone(),
        _ => unreachable!(),
    };
    assert_eq!(drain.expires_at, Some(drain.created_at.add(Duration::from_secs(5) + DRAIN_TTL_MARGIN)));
    sim.tick();
    assert_eq!(sim.weight("a"), 0, "the next round applies the drain");
    assert_eq!(sim.kinds().last(), Some(&StepKind::Drained));
    assert_eq!(sim.report().measures.time_to_detect_ms, Some(500));
    sim.run_until(|r| r.steps.iter().any(|s| s.step == StepKind::Lift));
    let held = sim.report().steps.iter().find(|s| s.step == StepKind::Held).unwrap().at;
    let drained = sim.report().steps.iter().find(|s| s.step == StepKind::Drained).unwrap().at;
    assert_eq!(held.since(drained), Duration::from_secs(5), "held for the drill's duration");
    sim.run_until(Report::is_finished);
    let report = sim.report();
    assert_eq!(report.outcome, Some(Outcome::Ok), "{report:#?}");
    let stages: Vec<&str> = report
        .steps
        .iter()
        .filter(|s| s.step == StepKind::Stage)
        .map(|s| s.detail.split(" (").next().unwrap())
        .collect();
    assert_eq!(stages, ["a at 10%", "a at 25%", "a at 50%", "a at 100%"]);
    assert_eq!(
        sim.kinds(),
        [
            StepKind::Preflight,
            StepKind::Drain,
            StepKind::Drained,
            StepKind::Held,
            StepKind::Lift,
            StepKind::Stage,
            StepKind::Stage,
            StepKind::Stage,
            StepKind::Stage,
            StepKind::Restored,
            StepKind::Done
        ]
    );
    assert!(report.steps.windows(2).all(|w| w[0].at <= w[1].at), "steps are in time order");
    let restore = report.measures.time_to_restore_ms.unwrap();
    assert!((6_000..=8_000).contains(&restore), "three 2 s holds and a tick: {restore} ms");
    assert!(sim.overrides.is_empty(), "the drain is lifted");
    assert_eq!(sim.weight("a"), sim.weight("b"), "a is back at full weight");
}

#[test]
fn another_endpoint_failing_mid_drill_aborts_and_lifts_at_once() {
    let mut sim = Sim::new(30, DRAIN_A);
    sim.run_until(|r| matches!(r.phase, Phase::Holding { .. }));
    sim.set("b", HealthState::Down);
    sim.tick();
    let report = sim.report();
    assert!(matches!(report.phase, Phase::Restoring { .. }), "{report:#?}");
    let abort = report.steps.iter().find(|s| s.step == StepKind::Abort).unwrap();
    assert!(abort.detail.contains("endpoint b of api is unhealthy"), "{}", abort.detail);
    assert!(matches!(sim.actions.last(), Some(Action::Lift(_))), "lifted in the same tick");
    assert!(sim.overrides.is_empty());
    sim.run_until(Report::is_finished);
    let report = sim.report();
    assert_eq!(report.outcome, Some(Outcome::Aborted), "{report:#?}");
    assert!(report.reason.as_deref().unwrap().contains("endpoint b"));
    assert_eq!(report.steps.iter().filter(|s| s.step == StepKind::Stage).count(), 4, "still through warm-up");
}

#[test]
fn an_operator_abort_and_an_impaired_checker_stop_the_drill() {
    let mut sim = Sim::new(30, DRAIN_A);
    sim.run_until(|r| matches!(r.phase, Phase::Holding { .. }));
    sim.abort = Some("ana".into());
    sim.tick();
    assert_eq!(sim.report().reason.as_deref(), Some("aborted by ana"));
    assert!(sim.overrides.is_empty());

    let mut sim = Sim::new(30, DRAIN_A);
    sim.run_until(|r| matches!(r.phase, Phase::Holding { .. }));
    sim.health.impaired = Some("no fresh vantage".into());
    sim.tick();
    assert!(sim.report().reason.as_deref().unwrap().contains("checker is impaired"), "{:#?}", sim.report());

    let mut sim = Sim::new(30, &format!("{DRAIN_A}  abortOn: {{ checkerImpaired: false }}\n"));
    sim.run_until(|r| matches!(r.phase, Phase::Holding { .. }));
    sim.health.impaired = Some("no fresh vantage".into());
    sim.tick();
    assert!(sim.report().reason.is_none(), "that condition is off");
}

#[test]
fn a_new_leader_without_health_yet_does_not_abort_on_the_guard_notes_of_unknown_health() {
    let mut sim = Sim::new(30, DRAIN_A);
    sim.run_until(|r| matches!(r.phase, Phase::Holding { .. }));
    // A restarted leader whose provider lost its records (an embedded server) and
    // that has no probe results yet: the planner notes an unmet guard.
    sim.health.endpoints.clear();
    sim.published = ObservedRecord::default();
    let held = sim.after_round(|_, world| world.plan.records[0].held.clone());
    assert!(held.iter().any(|h| h.cause == HoldCause::Guard), "{held:#?}");
    sim.published = ObservedRecord::default();
    sim.tick();
    assert!(sim.report().reason.is_none(), "{:#?}", sim.report());
    for id in ["a", "b", "c"] {
        sim.set(id, HealthState::Up);
    }
    sim.run_until(Report::is_finished);
    assert_eq!(sim.report().outcome, Some(Outcome::Ok), "{:#?}", sim.report());
}

#[test]
fn a_drill_that_would_breach_min_capacity_is_refused() {
    let mut sim = Sim::new(70, DRAIN_A);
    sim.tick();
    let report = sim.report();
    assert_eq!(report.outcome, Some(Outcome::Refused));
    let reason = report.reason.as_deref().unwrap();
    assert!(reason.starts_with("refused by a guard") && reason.contains("minCapacityPercent 70"), "{reason}");
    assert!(sim.actions.is_empty() && sim.overrides.is_empty(), "nothing was drained");
}

#[test]
fn a_drill_removing_more_than_its_share_is_refused() {
    let mut sim = Sim::new(10, "  target: pool/east\n  policy: api\n  maxCapacityPercent: 50\n");
    sim.tick();
    let reason = sim.report().reason.clone().unwrap();
    assert!(reason.contains("removes 67%") && reason.contains("above maxCapacityPercent 50%"), "{reason}");
}

#[test]
fn drills_wait_for_a_calm_record() {
    let sim = Sim::new(30, DRAIN_A);
    let check = |sim: &mut Sim| sim.after_round(|sim, world| preflight(&sim.definition, world, &scheduled()));
    let mut frozen = sim;
    frozen.overrides.push(Override {
        id: "f1".into(),
        action: OverrideAction::Freeze { scope: crate::planner::FreezeScope::All },
        reason: "incident".into(),
        author: "bo".into(),
        created_at: frozen.now,
        expires_at: Some(frozen.now.add(Duration::from_secs(3600))),
        force: false,
    });
    let refusal = check(&mut frozen).unwrap_err();
    assert!(!refusal.transient && refusal.reason.contains("freeze override f1"), "{refusal:?}");

    let mut down = Sim::new(30, DRAIN_A);
    down.set("c", HealthState::Down);
    let refusal = check(&mut down).unwrap_err();
    assert!(!refusal.transient && refusal.reason.contains("endpoint c of api is unhealthy"), "{refusal:?}");

    let mut unknown = Sim::new(30, DRAIN_A);
    unknown.health.endpoints.clear();
    assert!(check(&mut unknown).unwrap_err().transient, "unknown health passes by itself");

    let busy = Request { running: Some("other"), ..scheduled() };
    let refusal = Sim::new(30, DRAIN_A).after_round(|sim, world| preflight(&sim.definition, world, &busy));
    assert!(refusal.unwrap_err().reason.contains("drill `other` is running"));
}

#[test]
fn a_drain_never_read_back_fails_and_lifts() {
    let mut sim = Sim::new(30, DRAIN_A);
    sim.blind = Box::new(|_| true);
    sim.run_until(|r| r.steps.iter().any(|s| s.step == StepKind::Abort));
    let report = sim.report();
    assert!(report.failed && report.reason.as_deref().unwrap().contains("not read back within 1m"), "{report:#?}");
    let waited = report.steps.last().unwrap().at.since(report.started_at);
    assert!(waited > DRAIN_VERIFY_TIMEOUT && waited <= DRAIN_VERIFY_TIMEOUT + TICK, "{waited:?}");
    assert!(sim.overrides.is_empty(), "lifted");
    sim.blind = Box::new(|_| false);
    sim.run_until(Report::is_finished);
    assert_eq!(sim.report().outcome, Some(Outcome::Failed));
}

#[test]
fn a_stage_never_read_back_fails_the_verification() {
    let mut sim = Sim::new(30, DRAIN_A);
    // The provider cannot be read while `a` is at 25 %.
    sim.blind = Box::new(|w| matches!(w, Some(WarmupState::Warming { stage: 1, .. })));
    sim.run_until(Report::is_finished);
    let report = sim.report();
    assert_eq!(report.outcome, Some(Outcome::Failed), "{report:#?}");
    assert_eq!(report.reason.as_deref(), Some("warm-up stage(s) 25% of a never read back"));
}

#[test]
fn a_target_that_does_not_come_back_fails_after_the_restore_timeout() {
    let mut sim = Sim::new(30, DRAIN_A);
    sim.run_until(|r| matches!(r.phase, Phase::Holding { .. }));
    sim.set("a", HealthState::Down);
    sim.run_until(Report::is_finished);
    let report = sim.report();
    assert_eq!(report.outcome, Some(Outcome::Failed));
    assert!(report.reason.as_deref().unwrap().starts_with("not restored within"), "{report:#?}");
}

fn generations(history: std::ops::RangeInclusive<u64>, provider: u64) -> Vec<RecordGenerations> {
    vec![RecordGenerations {
        record: "api.example.test.".into(),
        history: history.collect(),
        providers: BTreeMap::from([("bind".to_string(), provider)]),
    }]
}

#[test]
fn a_leader_drill_steps_down_and_the_successor_verifies_the_hand_over() {
    let (refused, (report, actions)) = Sim::new(30, "  target: leader\n").after_round(|sim, world| {
        let standalone = Request { standalone: true, ..scheduled() };
        let refused = preflight(&sim.definition, world, &standalone);
        let cleared = preflight(&sim.definition, world, &scheduled());
        (refused, start(&sim.definition, world, &scheduled(), cleared, ("r0", 7), generations(1..=5, 5)))
    });
    assert!(refused.unwrap_err().reason.contains("standalone"));
    assert_eq!(actions, [Action::StepDown]);
    assert!(matches!(report.phase, Phase::HandingOver { from_epoch: 7, .. }));

    let at = report.started_at;
    let after = generations(1..=6, 6);
    let successor = Handover {
        now: at.add(Duration::from_secs(4)),
        identity: "r1",
        epoch: 9,
        led_since: at.add(Duration::from_secs(3)),
        after: &after,
    };
    let done = step_handover(&report, &successor);
    assert_eq!(done.outcome, Some(Outcome::Ok), "{done:#?}");
    assert_eq!(done.measures.take_over_ms, Some(3_000));
    assert!(done.steps.iter().any(|s| s.detail.contains("r1 leads with epoch 9 after 3s (was r0, epoch 7)")));

    let same = step_handover(&report, &Handover { identity: "r0", ..successor });
    assert!(same.reason.as_deref().unwrap().contains("no other replica took over"), "{same:#?}");
    let gap = generations(1..=6, 6).into_iter().map(|mut g| {
        g.history.remove(3);
        g
    });
    let gap: Vec<_> = gap.collect();
    let lost = step_handover(&report, &Handover { after: &gap, ..successor });
    assert!(lost.reason.as_deref().unwrap().contains("not contiguous (3→5)"), "{lost:#?}");
    let twice = generations(1..=6, 7);
    let repeated = step_handover(&report, &Handover { after: &twice, ..successor });
    assert_eq!(repeated.outcome, Some(Outcome::Failed));
    assert!(repeated.reason.as_deref().unwrap().contains("lost or applied twice"));
    let waiting = step_handover(&report, &Handover { epoch: 7, identity: "r0", ..successor });
    assert!(!waiting.is_finished(), "the old tenure is still seen: wait");
}

#[test]
fn the_schedule_retries_a_refused_attempt_later_and_spaces_runs() {
    let definition =
        definition("  target: a\n  policy: api\n  schedule: { windows: daily 00:00-24:00, minSpacing: 1h }\n");
    let now = Timestamp(1_704_067_200_000);
    assert_eq!(next_scheduled(&definition, &[], now), Some(now));
    let mut refused = Sim::new(70, "  target: a\n  policy: api\n");
    refused.tick();
    let mut run = refused.report().clone();
    run.started_at = now;
    assert_eq!(next_scheduled(&definition, std::slice::from_ref(&run), now), Some(now.add(RETRY_AFTER_REFUSAL)));
    run.outcome = Some(Outcome::Ok);
    assert_eq!(next_scheduled(&definition, &[run], now), Some(now.add(Duration::from_secs(3600))));
    let manual = definition_without_schedule();
    assert_eq!(next_scheduled(&manual, &[], now), None, "no schedule: on request only");
}

fn definition_without_schedule() -> Definition {
    definition("  target: a\n  policy: api\n")
}
