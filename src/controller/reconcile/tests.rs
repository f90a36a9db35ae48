//! The round against in-memory providers that hang, fail, reject one name, or are
//! set-only, on paused time: isolation per unit, the deadline, quarantine, state
//! per record, each provider's own published form, read reuse.

use super::*;
use crate::coord::standalone::StandaloneCoordinator;
use crate::enactor::AlwaysLeader;
use crate::health::{EndpointHealth, EndpointKey, HealthState};
use std::sync::atomic::{AtomicBool, Ordering};
use veer_provider::conformance::{Counting, MemoryProvider};
use veer_provider::{Capabilities, ChangeBatch, Observed, Provider, ProviderFuture, RecordType, Weighting};

/// A memory provider that can be made to hang, fail, reject one name, or be set-only.
struct Switch {
    inner: Arc<dyn Provider>,
    hang: AtomicBool,
    fail: AtomicBool,
    set_only: bool,
    reject: Mutex<Option<String>>,
    slow_writes: Mutex<Option<Duration>>,
}

impl Switch {
    fn new(set_only: bool) -> Arc<Self> {
        let memory = MemoryProvider::new(vec!["z.test.".parse().unwrap()]);
        Arc::new(Self {
            inner: Arc::new(memory),
            hang: AtomicBool::new(false),
            fail: AtomicBool::new(false),
            set_only,
            reject: Mutex::new(None),
            slow_writes: Mutex::new(None),
        })
    }
}

impl veer_provider::ProviderWrapper for Switch {
    fn inner(&self) -> &dyn Provider {
        self.inner.as_ref()
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        if self.set_only {
            c.weighting = Weighting::SetOnly;
            c.answer_ids = false;
        }
        c
    }

    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        if self.hang.load(Ordering::SeqCst) {
            return Box::pin(std::future::pending());
        }
        if self.fail.load(Ordering::SeqCst) {
            return Box::pin(async { Err(ProviderError::Unavailable("connection refused".into())) });
        }
        self.inner.read(name, rtype)
    }

    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        if self.hang.load(Ordering::SeqCst) {
            return Box::pin(std::future::pending());
        }
        if let Some(by) = *self.slow_writes.lock().unwrap() {
            return Box::pin(async move {
                tokio::time::sleep(by).await;
                self.inner.apply(batch).await
            });
        }
        let rejected = self.reject.lock().unwrap().clone();
        if let Some(name) = rejected.filter(|n| batch.changes.iter().any(|c| c.name().as_str() == n)) {
            return Box::pin(async move { Err(ProviderError::Rejected(format!("{name}: conflicting record"))) });
        }
        self.inner.apply(batch)
    }
}

/// A controller with providers `a` (weighted) and `b`, policies `both` (a, b) and
/// `only` (a), two endpoints each (capacities 3 and 1), one coordinator.
struct Rig {
    setup: Setup,
    providers: ProviderSet,
    a: Arc<Switch>,
    b: Arc<Switch>,
    counting: Arc<Counting>,
    coordinator: Arc<dyn Coordinator>,
    epoch: Epoch,
    reconciler: Reconciler,
    _dir: tempfile::TempDir,
}

const POLICY: &str = "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: { name: NAME }\nspec:\n  \
    record: { name: NAME.z.test., type: A }\n  publishTo: [TARGETS]\n  routing: weighted\n  \
    pools: [{ name: p, endpoints: [{ id: e1, address: 192.0.2.1, capacity: 3 }, { id: e2, address: 192.0.2.2, capacity: 1 }] }]\n  \
    healthCheck: { type: tcp, port: 80, interval: 1s }\n  warmup: { stages: [100] }\n  shift: { maxRemovePercent: 100 }\n";

impl Rig {
    async fn new(b_set_only: bool, resync: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("veer.yaml"),
            format!(
                "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: c1\npolicies: [both.yaml, only.yaml]\n\
                 providers:\n  a: {{ type: embedded, zones: [z.test.], resyncEvery: {resync} }}\n  \
                 b: {{ type: embedded, zones: [z.test.], resyncEvery: {resync} }}\n"
            ),
        )
        .unwrap();
        for (name, targets) in [("both", "a, b"), ("only", "a")] {
            let text = POLICY.replace("NAME", name).replace("TARGETS", targets);
            std::fs::write(dir.path().join(format!("{name}.yaml")), text).unwrap();
        }
        let setup = super::super::load(&dir.path().join("veer.yaml")).unwrap_or_else(|e| panic!("{e:?}"));
        let (a, b) = (Switch::new(false), Switch::new(b_set_only));
        let counting = Arc::new(Counting::new(a.clone()));
        let providers = ProviderSet {
            providers: [("a".to_string(), counting.clone() as Arc<dyn Provider>), ("b".to_string(), b.clone() as _)]
                .into(),
            embedded: Default::default(),
            servers: Vec::new(),
            budgets: Default::default(),
        };
        let coordinator: Arc<dyn Coordinator> =
            Arc::new(StandaloneCoordinator::open(dir.path().join("state.json"), "r1").unwrap());
        let epoch = coordinator.campaign().await.unwrap();
        Self {
            setup,
            providers,
            a,
            b,
            counting,
            coordinator,
            epoch,
            reconciler: Reconciler::new(crate::coord::Jitter::new(7)),
            _dir: dir,
        }
    }

    fn health(down: &[&str]) -> HealthView {
        let mut view = HealthView::default();
        for policy in ["both", "only"] {
            for id in ["e1", "e2"] {
                let is_down = down.contains(&id);
                let state = if is_down { HealthState::Down } else { HealthState::Up };
                let health = EndpointHealth { state, vantages_down: u32::from(is_down), vantages_fresh: 1 };
                view.endpoints.insert(EndpointKey::new(policy, id), health);
            }
        }
        view
    }

    async fn round(&mut self, down: &[&str], now_s: u64) -> RoundReport {
        let health = Self::health(down);
        let store = StateSource::Coordinator(self.coordinator.clone());
        let writer = Writer {
            coordinator: self.coordinator.clone(),
            epoch: self.epoch,
            fence: Arc::new(AlwaysLeader { epoch: self.epoch.0 }),
            expected_write: Duration::from_secs(1),
            history_keep: 10,
        };
        let input = RoundInput {
            setup: &self.setup,
            providers: &self.providers,
            health: &health,
            state: &store,
            now: Timestamp(1_000_000 + now_s * 1000),
            writer: Some(&writer),
        };
        self.reconciler.round(input).await.unwrap()
    }

    /// The live answers `provider` holds for `policy`, as (address, weight).
    async fn answers(&self, provider: &Switch, policy: &str) -> Vec<(String, Option<u32>)> {
        let name: RecordName = format!("{policy}.z.test.").parse().unwrap();
        let observed = provider.inner.read(&name, RecordType::A).await.unwrap();
        let mut out: Vec<_> =
            observed.records.iter().flat_map(|r| r.live_answers()).map(|a| (a.value.clone(), a.weight)).collect();
        out.sort();
        out
    }

    async fn stored_generation(&self, policy: &str) -> u64 {
        StateSource::Coordinator(self.coordinator.clone()).planner_state().await.unwrap().records[policy].generation
    }
}

fn addresses(answers: &[(String, Option<u32>)]) -> Vec<&str> {
    answers.iter().map(|(a, _)| a.as_str()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_hung_provider_fails_only_its_units_is_skipped_then_converges_to_the_current_plan() {
    let mut rig = Rig::new(false, "0s").await;
    assert!(rig.round(&[], 0).await.converged());
    assert_eq!(addresses(&rig.answers(&rig.b, "both").await), ["192.0.2.1", "192.0.2.2"]);

    rig.b.hang.store(true, Ordering::SeqCst);
    let report = rig.round(&["e2"], 10).await;
    let deadline = round_deadline(&rig.setup);
    assert!(report.duration <= deadline + Duration::from_millis(50), "bounded: {:?}", report.duration);
    assert!(report.unread.contains_key(&("both".to_string(), "b".to_string())), "{:?}", report.unread);
    assert_eq!(addresses(&rig.answers(&rig.a, "both").await), ["192.0.2.1"], "a fails over while b hangs");
    assert_eq!(addresses(&rig.answers(&rig.a, "only").await), ["192.0.2.1"]);
    assert!(rig.reconciler.availability().unavailable().contains_key("b"));

    // The next rounds skip b at once: they never wait for it again.
    let report = rig.round(&["e2"], 11).await;
    assert!(report.duration < Duration::from_millis(100), "b is not waited for: {:?}", report.duration);
    assert!(report.unread[&("both".to_string(), "b".to_string())].contains("skipped"), "{:?}", report.unread);

    // b comes back: a background read finds it, and it gets the current plan, not an older one.
    rig.b.hang.store(false, Ordering::SeqCst);
    let mut converged = false;
    for t in 12..200 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if rig.round(&["e2"], t).await.converged() {
            converged = true;
            break;
        }
    }
    assert!(converged, "b converges once it answers again");
    assert_eq!(addresses(&rig.answers(&rig.b, "both").await), ["192.0.2.1"]);
    assert!(rig.reconciler.availability().unavailable().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_provider_that_fails_reads_holds_back_nothing_else_and_is_tried_again_next_round() {
    let mut rig = Rig::new(false, "0s").await;
    rig.round(&[], 0).await;
    rig.b.fail.store(true, Ordering::SeqCst);
    let report = rig.round(&["e1"], 10).await;
    assert_eq!(report.unread.len(), 1, "{:?}", report.unread);
    assert_eq!(addresses(&rig.answers(&rig.a, "both").await), ["192.0.2.2"]);
    let status = &rig.reconciler.availability().snapshot()["b"];
    assert!(status.failing.as_deref().is_some_and(|w| w.contains("connection refused")), "{status:?}");
    assert!(
        !status.skipped && status.last_read.is_some(),
        "a provider that fails fast is tried every round: {status:?}"
    );
    let before = rig.counting.reads();
    rig.round(&["e1"], 11).await;
    assert!(rig.counting.reads() > before, "a keeps being read");
    assert!(rig.reconciler.availability().unavailable().contains_key("b"), "b is reported while it fails");
}

#[tokio::test(start_paused = true)]
async fn a_name_rejected_every_time_is_quarantined_and_its_zone_neighbours_still_fail_over() {
    let mut rig = Rig::new(false, "0s").await;
    rig.round(&[], 0).await;
    *rig.a.reject.lock().unwrap() = Some("both.z.test.".into());
    let report = rig.round(&["e2"], 10).await;
    let outcomes = &report.enacted.as_ref().unwrap().outcomes;
    let of = |provider: &str, name: &str| {
        outcomes.iter().find(|(p, n, _)| p == provider && n.as_str() == name).map(|(_, _, o)| o.clone())
    };
    assert!(matches!(of("a", "both.z.test."), Some(Outcome::Failed(ProviderError::Rejected(_)))), "{outcomes:?}");
    assert!(matches!(of("a", "only.z.test."), Some(Outcome::Applied { .. })), "the neighbour is applied: {outcomes:?}");
    assert!(matches!(of("b", "both.z.test."), Some(Outcome::Applied { .. })), "{outcomes:?}");
    assert_eq!(addresses(&rig.answers(&rig.a, "only").await), ["192.0.2.1"]);
    assert_eq!(rig.reconciler.quarantine().entries().len(), 1);

    let writes = rig.counting.applies();
    let report = rig.round(&["e2"], 11).await;
    let outcomes = &report.enacted.as_ref().unwrap().outcomes;
    assert!(outcomes.iter().any(|(_, _, o)| matches!(o, Outcome::Quarantined(w) if w.contains("conflicting record"))));
    assert_eq!(rig.counting.applies(), writes, "no write is tried for a quarantined name");

    // Fixed by hand: once its backoff is over, the name is written and leaves quarantine.
    *rig.a.reject.lock().unwrap() = None;
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(rig.round(&["e2"], 30).await.converged());
    assert!(rig.reconciler.quarantine().entries().is_empty());
    assert_eq!(addresses(&rig.answers(&rig.a, "both").await), ["192.0.2.1"]);
}

#[tokio::test(start_paused = true)]
async fn planner_state_advances_per_record_with_what_was_published() {
    let mut rig = Rig::new(false, "0s").await;
    rig.round(&[], 0).await;
    let (both, only) = (rig.stored_generation("both").await, rig.stored_generation("only").await);
    // a fails: `only` reaches no provider, `both` still reaches b.
    rig.a.fail.store(true, Ordering::SeqCst);
    let report = rig.round(&["e2"], 10).await;
    assert!(report.advanced.contains("both") && !report.advanced.contains("only"), "{:?}", report.advanced);
    assert_eq!(rig.stored_generation("both").await, both + 1, "both's removal is remembered");
    assert_eq!(rig.stored_generation("only").await, only, "only keeps the state of what is published");
    assert_eq!(addresses(&rig.answers(&rig.b, "both").await), ["192.0.2.1"]);
}

#[tokio::test(start_paused = true)]
async fn a_weighted_and_a_set_only_provider_each_get_their_own_form_of_the_plan() {
    let mut rig = Rig::new(true, "0s").await;
    assert!(rig.round(&[], 0).await.converged());
    let weighted = rig.answers(&rig.a, "both").await;
    let (w1, w2) = (weighted[0].1.unwrap(), weighted[1].1.unwrap());
    assert_eq!(w1, 3 * w2, "weights proportional to capacity 3:1 on the weighted provider: {weighted:?}");
    let members = rig.answers(&rig.b, "both").await;
    assert_eq!(addresses(&members), ["192.0.2.1", "192.0.2.2"]);
    assert!(members.iter().all(|(_, w)| w.is_none_or(|w| w == 1)), "membership only: {members:?}");
}

#[tokio::test(start_paused = true)]
async fn a_provider_the_policies_name_but_that_is_not_running_fails_its_units_only() {
    let mut rig = Rig::new(false, "0s").await;
    rig.providers.providers.remove("b");
    let report = rig.round(&[], 0).await;
    assert!(report.unread[&("both".to_string(), "b".to_string())].contains("not running"));
    assert_eq!(addresses(&rig.answers(&rig.a, "both").await), ["192.0.2.1", "192.0.2.2"]);
}

#[tokio::test(start_paused = true)]
async fn a_round_with_nothing_to_write_reuses_reads_and_one_that_would_write_reads_again() {
    let mut rig = Rig::new(false, "1h").await;
    let report = rig.round(&[], 0).await;
    assert_eq!(report.planned.intents.len(), 3, "the first round publishes every unit");
    let reads = rig.counting.reads();
    assert!(rig.round(&[], 1).await.planned.intents.is_empty());
    let after_write = rig.counting.reads();
    assert!(after_write > reads, "after a write the providers are read again");
    for t in 2..10 {
        assert!(rig.round(&[], t).await.planned.intents.is_empty());
    }
    assert_eq!(rig.counting.reads(), after_write, "nothing to write: the last read stands in");

    // Behind veer's back the record changes; the stale read is not written from.
    let name: RecordName = "only.z.test.".parse().unwrap();
    let observed = rig.a.inner.read(&name, RecordType::A).await.unwrap();
    let mut changed = observed.records.clone().unwrap();
    changed.answers.retain(|a| a.value == "192.0.2.2");
    let ownership = observed.ownership.clone().unwrap();
    let next = veer_provider::OwnershipRecord { generation: ownership.generation + 1, ..ownership };
    let batch = ChangeBatch {
        zone: "z.test.".parse().unwrap(),
        changes: vec![veer_provider::Change::new(observed, changed, next)],
    };
    rig.a.inner.apply(&batch).await.unwrap();
    let report = rig.round(&["e2"], 20).await;
    assert!(rig.counting.reads() > after_write, "a round that would write reads again first");
    let intent = report.planned.intents.iter().find(|i| i.policy == "only" && i.provider == "a").unwrap();
    let base: Vec<&str> = intent.base.records.iter().flat_map(|r| r.answers.iter().map(|a| a.value.as_str())).collect();
    assert_eq!(base, ["192.0.2.2"], "the write is built on what the provider holds now");
}

#[tokio::test(start_paused = true)]
async fn a_provider_slow_to_write_is_not_waited_for_and_its_write_is_reported_when_it_ends() {
    let mut rig = Rig::new(false, "0s").await;
    rig.round(&[], 0).await;
    *rig.b.slow_writes.lock().unwrap() = Some(Duration::from_secs(5));
    let report = rig.round(&["e2"], 10).await;
    let deadline = round_deadline(&rig.setup);
    assert!(report.duration <= deadline + Duration::from_millis(50), "not waited for: {:?}", report.duration);
    assert!(report.deadline_missed);
    let outcomes = &report.enacted.as_ref().unwrap().outcomes;
    assert!(outcomes.iter().any(|(p, _, o)| p == "b" && *o == Outcome::InFlight), "{outcomes:?}");
    assert_eq!(addresses(&rig.answers(&rig.a, "both").await), ["192.0.2.1"], "a's writes do not wait for b's");
    assert!(!report.advanced.is_empty());

    // While its write runs, b is skipped; when it ends, the next round reports it.
    let report = rig.round(&["e2"], 11).await;
    assert!(report.unread[&("both".to_string(), "b".to_string())].contains("still busy"), "{:?}", report.unread);
    tokio::time::sleep(Duration::from_secs(5)).await;
    *rig.b.slow_writes.lock().unwrap() = None;
    let report = rig.round(&["e2"], 17).await;
    assert!(
        report.late.iter().any(|(i, o)| i.provider == "b" && matches!(o, Outcome::Applied { .. })),
        "the late write is reported: {:?}",
        report.late
    );
    assert_eq!(addresses(&rig.answers(&rig.b, "both").await), ["192.0.2.1"]);
    assert!(rig.round(&["e2"], 18).await.converged());
}

#[tokio::test(start_paused = true)]
async fn a_call_that_never_returns_is_abandoned_after_five_deadlines() {
    let mut rig = Rig::new(false, "0s").await;
    rig.round(&[], 0).await;
    rig.b.hang.store(true, Ordering::SeqCst);
    rig.round(&["e2"], 10).await;
    let limit = round_deadline(&rig.setup) * BUSY_ROUNDS_MAX;
    tokio::time::sleep(limit + Duration::from_secs(1)).await;
    rig.round(&["e2"], 30).await;
    assert!(rig.reconciler.busy.is_empty(), "the hung read was abandoned");
    assert!(rig.reconciler.availability().skipped().contains_key("b"), "and b waits for a background read");
}
