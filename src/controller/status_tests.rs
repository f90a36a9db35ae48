//! The status mapping, one concern per test: each fails if its part of the
//! mapping breaks (weights, warm-up, held changes, overrides, freeze, follower view).

use super::*;
use crate::coord::Epoch;
use crate::health::{EndpointHealth, EndpointReport};
use crate::planner::{DesiredAnswer, Held, Plan, PlanMode, RecordPlan, RecordState, TargetKind};
use crate::policy::LoadedPolicy;
use std::path::PathBuf;

const NOW: Timestamp = Timestamp(1_800_000_000_000);

fn policy(name: &str, record: &str) -> FailoverPolicy {
    let yaml = format!(
        "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: {name} }}\nspec:\n  \
         record: {{ name: {record}, type: A }}\n  publishTo: [local]\n  routing: weighted\n  \
         healthCheck: {{ type: tcp, port: 80, interval: 1s }}\n  \
         warmup: {{ stages: [10, 25, 50, 100], hold: 30s }}\n  pools:\n    \
         - name: east\n      endpoints:\n        - {{ id: a, address: 192.0.2.1, capacity: 300 }}\n        \
         - {{ id: b, address: 192.0.2.2 }}\n    - name: west\n      endpoints:\n        \
         - {{ id: c, address: 192.0.2.3 }}\n"
    );
    serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn setup(policies: &[FailoverPolicy]) -> Arc<Setup> {
    let config = serde_saphyr::from_str(
        "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: c\npolicies: []\n\
         providers:\n  local: { type: embedded, zones: [example.com.] }\n",
    )
    .unwrap();
    Arc::new(Setup {
        config: crate::config::LoadedConfig { path: PathBuf::from("veer.yaml"), config },
        policies: policies
            .iter()
            .map(|p| LoadedPolicy { path: PathBuf::from("p.yaml"), policy: p.clone(), hash: "h".into() })
            .collect(),
        drills: Vec::new(),
    })
}

fn answer(endpoint: &str, weight: u32, share: f64) -> DesiredAnswer {
    DesiredAnswer { endpoint: endpoint.into(), address: "192.0.2.9".into(), share, weight }
}

fn health(entries: &[(&str, HealthState, u32, u32)]) -> HealthView {
    HealthView {
        impaired: None,
        endpoints: entries
            .iter()
            .map(|(e, state, down, fresh)| {
                (
                    EndpointKey::new("api", *e),
                    EndpointHealth { state: *state, vantages_down: *down, vantages_fresh: *fresh },
                )
            })
            .collect(),
    }
}

fn report(vantage: &str, at: Timestamp, verdicts: &[(&str, ProbeVerdict)]) -> Arc<VantageReport> {
    Arc::new(VantageReport {
        vantage: vantage.into(),
        at,
        endpoints: verdicts
            .iter()
            .map(|(e, v)| {
                let failure = (*v == ProbeVerdict::Down).then(|| "connect refused".to_string());
                let r = EndpointReport {
                    verdict: *v,
                    since: at,
                    last_latency_ms: None,
                    last_failure: failure,
                    checked: None,
                };
                (EndpointKey::new("api", *e), r)
            })
            .collect(),
    })
}

fn over(id: &str, action: OverrideAction, reason: &str, expires_at: Option<Timestamp>) -> Override {
    Override {
        id: id.into(),
        action,
        reason: reason.into(),
        author: "alice".into(),
        created_at: NOW.sub(Duration::from_secs(60)),
        expires_at,
        force: expires_at.is_none(),
    }
}

/// A leader's round: plan `a=3, b=1` (c out), providers holding `a=1, b=1`.
fn leader_summary(policies: &[FailoverPolicy]) -> RoundSummary {
    let setup = setup(policies);
    let mut state = PlannerState::default();
    state.records.insert(
        "api".into(),
        RecordState {
            endpoints: [
                ("a".to_string(), WarmupState::Full),
                (
                    "b".to_string(),
                    WarmupState::Warming { stage: 1, since: NOW.sub(Duration::from_secs(10)), attempts: 0 },
                ),
                ("c".to_string(), WarmupState::Out { retry_at: NOW.add(Duration::from_secs(5)), attempts: 1 }),
            ]
            .into_iter()
            .collect(),
            ..RecordState::default()
        },
    );
    let plan = Plan {
        records: vec![RecordPlan {
            policy: "api".into(),
            record: policies[0].record_name().clone(),
            policy_hash: "h".into(),
            weighting: veer_provider::Weighting::Weighted { max_weight: 255 },
            mode: PlanMode::Normal,
            answers: vec![answer("a", 3, 0.75), answer("b", 1, 0.25)],
            changes: vec![],
            generation: 4,
            held: vec![Held {
                endpoint: Some("c".into()),
                override_id: None,
                cause: HoldCause::Velocity,
                reason: "velocity: maxRemovePercent 50 reached".into(),
            }],
        }],
        state: state.clone(),
    };
    let published = crate::planner::ObservedRecord { answers: [("a".into(), 1), ("b".into(), 1)].into() };
    let preview = super::super::run::PreviewInputs {
        setup: setup.clone(),
        weightings: vec![],
        health: health(&[("a", HealthState::Up, 0, 2), ("b", HealthState::Up, 0, 2), ("c", HealthState::Down, 2, 2)]),
        published: [("api".to_string(), published)].into(),
        state,
        overrides: vec![],
    };
    RoundSummary {
        rounds: 9,
        epoch: Some(7),
        plan: Some(plan),
        writes: 3,
        setup: Some(setup),
        preview: Some(Arc::new(preview)),
        ..RoundSummary::default()
    }
}

struct Case {
    policies: Vec<FailoverPolicy>,
    leadership: Leadership,
    summary: RoundSummary,
    vantages: Vec<VantageStatus>,
    store: StoreView,
}

impl Case {
    fn leader() -> Self {
        let policies = vec![policy("api", "api.example.com."), policy("web", "web.example.com.")];
        let summary = leader_summary(&policies);
        let own = report("r1", NOW.sub(Duration::from_millis(400)), &[("a", ProbeVerdict::Up)]);
        let peer = report("r2", NOW.sub(Duration::from_secs(10)), &[("a", ProbeVerdict::Down)]);
        Case {
            policies,
            leadership: Leadership::Leader { epoch: Epoch(7) },
            summary,
            vantages: vec![
                VantageStatus { id: "r1".into(), admin_url: None, report: Some(own), fresh: true, report_age_ms: None },
                VantageStatus {
                    id: "r2".into(),
                    admin_url: Some("http://10.0.0.2:9090".into()),
                    report: Some(peer),
                    fresh: false,
                    report_age_ms: None,
                },
            ],
            store: StoreView::default(),
        }
    }

    fn build(&self) -> StatusReport {
        let policies: Vec<&FailoverPolicy> = self.policies.iter().collect();
        build(&StatusInputs {
            replica: "r1",
            admin_url: Some("http://127.0.0.1:9090"),
            leadership: &self.leadership,
            now: NOW,
            policies: &policies,
            summary: &self.summary,
            vantages: &self.vantages,
            store: &self.store,
        })
    }
}

fn endpoint<'r>(report: &'r StatusReport, record: usize, id: &str) -> &'r EndpointStatus {
    report.records[record].endpoints.iter().find(|e| e.id == id).unwrap_or_else(|| panic!("no endpoint {id}"))
}

#[test]
fn the_leader_reports_desired_against_published_weights_per_endpoint() {
    let report = Case::leader().build();
    let (a, b, c) = (endpoint(&report, 0, "a"), endpoint(&report, 0, "b"), endpoint(&report, 0, "c"));
    assert_eq!((a.desired_weight, a.published_weight), (Some(3), Some(1)));
    assert_eq!((b.desired_weight, b.published_weight), (Some(1), Some(1)));
    assert_eq!((c.desired_weight, c.published_weight), (Some(0), None), "c is planned out and not published");
    assert_eq!((a.desired_percent, a.published_percent), (Some(75.0), Some(50.0)));
    assert_eq!(c.published_percent, None);
    assert_eq!((a.pool.as_str(), a.capacity, c.pool.as_str()), ("east", 300, "west"));
    assert_eq!(report.records[0].mode, Some(PlanMode::Normal));
    // Health comes from the leader's combined view, per-vantage marks from the reports.
    assert_eq!((c.health, c.vantages_down, c.vantages_fresh), (HealthState::Down, 2, 2));
    assert_eq!(a.per_vantage.get("r1"), Some(&ProbeVerdict::Up));
    assert_eq!(a.per_vantage.get("r2"), Some(&ProbeVerdict::Down));
    assert_eq!(a.last_failure.as_deref(), Some("r2: connect refused"));
    assert_eq!(b.per_vantage.get("r2"), Some(&ProbeVerdict::Unknown), "no verdict from r2 on b");
}

#[test]
fn a_record_written_in_the_last_round_is_published_as_planned() {
    let mut case = Case::leader();
    let applied = LastApply { round: 9, at: NOW, outcome: "ok", detail: "local: generation 4".into() };
    case.summary.applied.insert("api".into(), applied.clone());
    let report = case.build();
    assert_eq!(endpoint(&report, 0, "a").published_weight, Some(3), "the write landed: providers hold the plan");
    assert_eq!(endpoint(&report, 0, "c").published_weight, None);
    let last = report.records[0].last_apply.as_ref().unwrap();
    assert_eq!((last.outcome.as_str(), last.detail.as_str()), ("ok", "local: generation 4"));
    assert_eq!(last.at.as_deref(), Some(NOW.rfc3339().as_str()));

    // An older write, or a failed one, leaves what the round read.
    case.summary.applied.insert("api".into(), LastApply { round: 8, ..applied.clone() });
    assert_eq!(endpoint(&case.build(), 0, "a").published_weight, Some(1));
    case.summary.applied.insert("api".into(), LastApply { outcome: "conflict", ..applied });
    let report = case.build();
    assert_eq!(endpoint(&report, 0, "a").published_weight, Some(1));
    assert_eq!(report.records[0].last_apply.as_ref().unwrap().outcome, "conflict");
}

#[test]
fn warm_up_shows_the_stage_and_the_time_to_the_next() {
    let report = Case::leader().build();
    assert_eq!(endpoint(&report, 0, "a").warmup, None, "full weight: no warm-up");
    let b = endpoint(&report, 0, "b").warmup.clone().expect("b warms up");
    assert_eq!((b.stage, b.stages, b.percent), (2, 4, 25.0), "index 1 of [10,25,50,100] is stage 2, 25 %");
    assert_eq!(b.next_stage_in_ms, Some(20_000), "30 s hold, 10 s held");
    let c = endpoint(&report, 0, "c").warmup.clone().expect("c waits for its backoff");
    assert_eq!((c.stage, c.percent, c.next_stage_in_ms), (0, 0.0, Some(5_000)));
}

#[test]
fn held_changes_carry_their_cause_and_reason() {
    let report = Case::leader().build();
    let held = &report.records[0].held;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].endpoint.as_deref(), Some("c"));
    assert_eq!(held[0].cause, HoldCause::Velocity);
    assert_eq!(held[0].reason, "velocity: maxRemovePercent 50 reached");
    assert!(report.records[1].held.is_empty(), "web was not planned");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["records"][0]["held"][0]["reason"], "velocity: maxRemovePercent 50 reached");
}

#[test]
fn overrides_are_listed_per_record_they_bear_on_and_a_freeze_marks_the_record_frozen() {
    let mut case = Case::leader();
    let later = Some(NOW.add(Duration::from_secs(3600)));
    let drain_a = OverrideAction::Drain {
        target: crate::planner::Target { policy: Some("api".into()), kind: TargetKind::Endpoint, name: "a".into() },
    };
    let freeze_web = OverrideAction::Freeze { scope: FreezeScope::Record { record: "web.example.com.".into() } };
    let freeze_local = OverrideAction::Freeze { scope: FreezeScope::Provider { provider: "local".into() } };
    case.store.overrides = vec![
        over("o-drain", drain_a, "disk full", later),
        over("o-web", freeze_web, "change window", later),
        over("o-old", OverrideAction::Freeze { scope: FreezeScope::All }, "expired", Some(NOW)),
    ];
    let report = case.build();
    let ids = |r: &RecordStatus| r.overrides.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&report.records[0]), ["o-drain"]);
    assert_eq!(ids(&report.records[1]), ["o-web"]);
    assert_eq!(report.overrides.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["o-drain", "o-web"]);
    let drain = &report.records[0].overrides[0];
    assert_eq!(
        (drain.summary.as_str(), drain.reason.as_str(), drain.author.as_str()),
        ("drain api/endpoint/a", "disk full", "alice")
    );
    assert_eq!(drain.expires_in_ms, Some(3_600_000));
    assert_eq!(drain.expires_at, later.map(Timestamp::rfc3339));
    assert!(report.records[0].frozen.is_none());
    let frozen = report.records[1].frozen.as_ref().expect("web is frozen");
    assert_eq!(
        (frozen.scope.as_str(), frozen.reason.as_str(), frozen.override_id.as_str()),
        ("record", "change window", "o-web")
    );

    // A provider freeze holds every record published there; the newest freeze wins.
    case.store.overrides.push(Override {
        created_at: NOW.sub(Duration::from_secs(1)),
        ..over("o-local", freeze_local, "provider maintenance", None)
    });
    let report = case.build();
    let api = report.records[0].frozen.as_ref().expect("api is frozen through its provider");
    assert_eq!((api.scope.as_str(), api.author.as_str(), api.expires_at.as_deref()), ("provider", "alice", None));
    assert_eq!(report.records[1].frozen.as_ref().unwrap().override_id, "o-local");
}

#[test]
fn the_leader_names_itself_with_its_epoch_and_lists_vantages_with_their_age() {
    let report = Case::leader().build();
    assert_eq!(report.role, Role::Leader);
    let leader = report.leader.as_ref().unwrap();
    assert_eq!((leader.identity.as_str(), leader.epoch), ("r1", Some(7)));
    assert_eq!(leader.admin_url.as_deref(), Some("http://127.0.0.1:9090"), "its own admin URL");
    assert_eq!((report.rounds, report.writes), (9, 3));
    assert_eq!(report.vantages.len(), 2);
    assert_eq!((report.vantages[0].fresh, report.vantages[0].report_age_ms), (true, Some(400)));
    assert_eq!(report.vantages[0].admin_url.as_deref(), Some("http://127.0.0.1:9090"));
    assert_eq!(
        (report.vantages[1].fresh, report.vantages[1].report_age_ms),
        (false, Some(10_000)),
        "older than 3 × 1 s"
    );
    assert_eq!(report.vantages[1].admin_url.as_deref(), Some("http://10.0.0.2:9090"));
    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "replica",
        "role",
        "leader",
        "generatedAt",
        "rounds",
        "writes",
        "lastError",
        "policyReloadError",
        "checker",
        "vantages",
        "records",
        "overrides",
        "recentPlans",
    ] {
        assert!(json.get(key).is_some(), "{key} missing: {json}");
    }
    assert_eq!(json["role"], "leader");
    assert_eq!(json["records"][0]["endpoints"][0]["perVantage"]["r2"], "down");
    assert_eq!(json["records"][0]["endpoints"][1]["warmup"]["nextStageInMs"], 20_000);
}

#[test]
fn a_follower_reports_what_the_store_and_its_own_vantage_know() {
    let mut case = Case::leader();
    // It led once: its summary still holds that round, which is now stale.
    case.leadership = Leadership::Follower { leader: Some("r0".into()) };
    case.vantages = vec![VantageStatus {
        id: "r1".into(),
        admin_url: None,
        fresh: true,
        report_age_ms: None,
        report: Some(report(
            "r1",
            NOW.sub(Duration::from_millis(300)),
            &[("a", ProbeVerdict::Up), ("b", ProbeVerdict::Down)],
        )),
    }];
    let mut stored = PlannerState::default();
    stored.records.insert(
        "api".into(),
        RecordState {
            endpoints: [("a".to_string(), WarmupState::Warming { stage: 0, since: NOW, attempts: 0 })].into(),
            ..RecordState::default()
        },
    );
    case.store.planner_state = Some(stored);
    case.store.registry = [("r0".to_string(), "http://10.0.0.1:9090".to_string())].into();
    let applied = serde_json::json!({
        "answers": [{"endpoint": "a", "weight": 10}, {"endpoint": "b", "weight": 30}],
        "changes": [{"endpoint": "b", "from": null, "to": 30, "reason": "b healthy → stage 1"}],
        "epoch": 5, "appliedAt": NOW.sub(Duration::from_secs(2)).as_millis(),
    });
    case.store.history.insert("api.example.com.".into(), vec![(11, serde_json::json!({"answers": []})), (12, applied)]);
    let report = case.build();
    assert_eq!(report.role, Role::Follower);
    let leader = report.leader.as_ref().unwrap();
    assert_eq!(
        (leader.identity.as_str(), leader.epoch, leader.admin_url.as_deref()),
        ("r0", None, Some("http://10.0.0.1:9090"))
    );
    let (a, b) = (endpoint(&report, 0, "a"), endpoint(&report, 0, "b"));
    assert_eq!((a.desired_weight, b.desired_weight), (None, None), "a follower does not plan");
    assert_eq!((a.published_weight, b.published_weight), (Some(10), Some(30)), "from the newest applied plan");
    assert_eq!(b.published_percent, Some(75.0));
    assert!(report.records[0].held.is_empty() && report.records[0].mode.is_none());
    assert_eq!(
        (b.health, b.vantages_down, b.vantages_fresh),
        (HealthState::Down, 1, 1),
        "combined from its own vantage"
    );
    assert_eq!(a.health, HealthState::Up);
    assert_eq!(a.warmup.as_ref().map(|w| (w.stage, w.percent)), Some((1, 10.0)), "warm-up from the store");
    let record = &report.records[0];
    assert_eq!((record.generation, record.epoch), (Some(12), Some(5)));
    let last = record.last_apply.as_ref().unwrap();
    assert_eq!((last.outcome.as_str(), last.at.clone()), ("ok", Some(NOW.sub(Duration::from_secs(2)).rfc3339())));
    assert_eq!(report.records[1].generation, None, "web has no history");
    assert_eq!(report.recent_plans.len(), 2);
    let newest = &report.recent_plans[0];
    assert_eq!((newest.generation, newest.epoch, newest.changes.len()), (12, Some(5), 1));
    assert_eq!((newest.changes[0].from, newest.changes[0].to), (None, Some(30)));
    assert_eq!(newest.changes[0].reason, "b healthy → stage 1");
    assert_eq!(report.recent_plans[1].at, None, "history without a time stays listed");
}

#[test]
fn without_a_known_leader_the_replica_is_a_candidate() {
    let mut case = Case::leader();
    case.leadership = Leadership::Follower { leader: None };
    let report = case.build();
    assert_eq!((report.role, report.leader.clone()), (Role::Candidate, None));
    case.leadership = Leadership::Lost { epoch: Epoch(7), reason: crate::coord::LossReason::RenewDeadline };
    assert_eq!(case.build().role, Role::Candidate);
}

#[test]
fn an_impaired_checker_and_errors_reach_the_report() {
    let mut case = Case::leader();
    let mut preview = case.summary.preview.as_deref().map(|p| super::super::run::PreviewInputs {
        setup: p.setup.clone(),
        weightings: vec![],
        health: p.health.clone(),
        published: p.published.clone(),
        state: p.state.clone(),
        overrides: vec![],
    });
    preview.as_mut().unwrap().health.impaired = Some("r1 sees 100% down across 2 pools".into());
    case.summary.preview = preview.map(Arc::new);
    case.summary.reload_error = Some("app.yaml:9:14: error: timeout must be shorter than interval".into());
    case.store.error = Some("overrides: etcd unreachable".into());
    let report = case.build();
    assert_eq!(report.checker.impaired.as_deref(), Some("r1 sees 100% down across 2 pools"));
    assert!(report.policy_reload_error.as_deref().unwrap().starts_with("app.yaml:9:14"));
    assert_eq!(report.store_error.as_deref(), Some("overrides: etcd unreachable"));
}

#[test]
fn the_outcome_of_a_round_is_the_first_failure_across_providers() {
    use crate::enactor::Outcome;
    let intent = |provider: &str| {
        let name: crate::planner::RecordName = "api.example.com.".parse().unwrap();
        Intent {
            provider: provider.into(),
            policy: "api".into(),
            policy_hash: "h".into(),
            adopt: false,
            desired: veer_provider::RecordSet::new(name.clone(), veer_provider::RecordType::A, 30, vec![]),
            base: veer_provider::Observed {
                name,
                rtype: veer_provider::RecordType::A,
                records: None,
                ownership: None,
                foreign_ownership: None,
            },
        }
    };
    let name: crate::planner::RecordName = "api.example.com.".parse().unwrap();
    let intents = [intent("one"), intent("two")];
    let outcomes = vec![
        ("one".to_string(), name.clone(), Outcome::Applied { generation: 5 }),
        ("two".to_string(), name.clone(), Outcome::Conflict("generation moved".into())),
    ];
    let applies = last_applies(&intents, &outcomes, 3, NOW);
    let api = &applies["api"];
    assert_eq!((api.round, api.outcome), (3, "conflict"));
    assert_eq!(api.detail, "one: generation 5; two: conflict: generation moved");
    let unchanged = vec![("one".to_string(), name.clone(), Outcome::Unchanged)];
    assert!(last_applies(&intents[..1], &unchanged, 3, NOW).is_empty(), "nothing written, nothing to report");
}

#[tokio::test]
async fn the_drills_in_the_store_reach_the_report_and_its_json() {
    use crate::drill::report::{Outcome as DrillOutcome, Report, sample_run};
    let dir = tempfile::tempdir().unwrap();
    let standalone = crate::coord::standalone::StandaloneCoordinator::open(dir.path().join("s.json"), "r1").unwrap();
    let epoch = standalone.campaign().await.unwrap();
    let aborted = Report {
        reason: Some("endpoint b of api is unhealthy".into()),
        ..sample_run("weekly-a", 1_000, Some(DrillOutcome::Aborted))
    };
    crate::drill::store::save(&standalone, epoch, &aborted).await.unwrap();
    crate::drill::store::save(&standalone, epoch, &sample_run("weekly-b", 90_000, None)).await.unwrap();
    let coordinator: Arc<dyn Coordinator> = Arc::new(standalone);

    let mut case = Case::leader();
    case.store = read_store(&coordinator, &[], &[], NOW).await;
    assert_eq!(case.store.error, None);
    let report = case.build();
    let last = report.drills.last_drill.as_ref().expect("the last finished run");
    assert_eq!((last.drill.as_str(), last.outcome), ("weekly-a", Some(DrillOutcome::Aborted)));
    assert_eq!(last.reason.as_deref(), Some("endpoint b of api is unhealthy"));
    let running = report.drills.running_drill.as_ref().expect("the run in progress");
    assert_eq!((running.drill.as_str(), running.phase.as_str()), ("weekly-b", "restoring"));
    assert_eq!(report.drills.next_drill, None, "no drill in force is scheduled");

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["drills"]["lastDrill"]["outcome"], "aborted", "{json:#}");
    assert_eq!(json["drills"]["runningDrill"]["startedAt"], 90_000, "{json:#}");
    assert_eq!(serde_json::from_value::<StatusReport>(json).unwrap(), report, "the report reads back");
}
