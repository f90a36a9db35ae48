//! Enactor behaviour against the reference in-memory provider of the
//! conformance suite (compare-and-swap on the observed state, whole batches).

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use veer_provider::conformance::{Backdoor, Counting, Fault, Faulty, MemoryProvider};
use veer_provider::{Answer, Capabilities, ProviderFuture, RecordType};

const OWNER: &str = "cluster-a";

fn name(n: &str) -> RecordName {
    RecordName::parse(n).unwrap()
}

fn zone() -> RecordName {
    name("example.test.")
}

fn desired(n: &str, values: &[(&str, u32)]) -> RecordSet {
    let answers =
        values.iter().map(|(v, w)| Answer { set_id: Some(format!("id-{v}")), value: v.to_string(), weight: Some(*w) });
    RecordSet::new(name(n), RecordType::A, 30, answers.collect())
}

fn intent(n: &str, values: &[(&str, u32)], base: Observed) -> Intent {
    Intent {
        provider: "memory".into(),
        policy: "p".into(),
        policy_hash: "h1".into(),
        adopt: false,
        desired: desired(n, values),
        base,
    }
}

struct Setup {
    counting: Arc<Counting>,
    backdoor: Arc<dyn Backdoor>,
}

impl Setup {
    fn new() -> (Self, Arc<dyn Provider>) {
        let memory = MemoryProvider::new(vec![zone()]);
        let backdoor = memory.backdoor();
        let counting = Arc::new(Counting::new(Arc::new(memory)));
        (Self { counting: counting.clone(), backdoor }, counting)
    }
    async fn read(&self, n: &str) -> Observed {
        self.counting.read(&name(n), RecordType::A).await.unwrap()
    }
    /// Publishes `values` at `n` as `owner` at `generation`, behind the enactor's back.
    async fn publish(&self, n: &str, values: &[&str], owner: &str, generation: u64) {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        self.backdoor.set_answers(&name(n), RecordType::A, &values).await;
        let txt = OwnershipRecord { owner: owner.into(), generation, epoch: 1, policy_hash: "h0".into() }.encode();
        self.backdoor.set_txt(&name(n).ownership_name(), Some(&txt)).await;
    }
}

fn enactor(provider: Arc<dyn Provider>, fence: Arc<dyn Fence>) -> Enactor {
    Enactor::new(OWNER, [("memory".to_string(), provider)].into(), fence, Duration::from_secs(1))
}

#[tokio::test]
async fn a_new_name_is_published_with_its_ownership_record_at_generation_one() {
    let (s, p) = Setup::new();
    let e = enactor(p, Arc::new(AlwaysLeader { epoch: 7 }));
    let report = e.enact(&[intent("api.example.test.", &[("192.0.2.1", 10)], s.read("api.example.test.").await)]).await;
    assert_eq!(report.outcomes[0].2, Outcome::Applied { generation: 1 });
    let ownership = s.read("api.example.test.").await.ownership.unwrap();
    assert_eq!((ownership.owner.as_str(), ownership.generation, ownership.epoch), (OWNER, 1, 7));
    assert_eq!(ownership.policy_hash, "h1");
}

#[tokio::test]
async fn publishing_what_is_already_published_makes_no_write() {
    let (s, p) = Setup::new();
    let e = enactor(p, Arc::new(AlwaysLeader { epoch: 7 }));
    let first = e.enact(&[intent("api.example.test.", &[("192.0.2.1", 10)], s.read("api.example.test.").await)]).await;
    assert!(first.all_converged());
    let applies = s.counting.applies();
    let again = e.enact(&[intent("api.example.test.", &[("192.0.2.1", 10)], s.read("api.example.test.").await)]).await;
    assert_eq!(again.outcomes[0].2, Outcome::Unchanged);
    assert_eq!((again.writes, s.counting.applies()), (0, applies));
}

#[tokio::test]
async fn a_change_that_would_empty_a_name_is_refused_without_any_provider_call() {
    let (s, p) = Setup::new();
    s.publish("api.example.test.", &["192.0.2.1"], OWNER, 4).await;
    let base = s.read("api.example.test.").await;
    let calls = s.counting.calls().len();
    let e = enactor(p, Arc::new(AlwaysLeader { epoch: 7 }));
    let zero_weights = intent("api.example.test.", &[("192.0.2.1", 0)], base.clone());
    let no_answers = intent("api.example.test.", &[], base);
    let report = e.enact(&[zero_weights, no_answers]).await;
    assert_eq!(report.outcomes[0].2, Outcome::WouldEmpty);
    assert_eq!(report.outcomes[1].2, Outcome::WouldEmpty);
    assert_eq!(s.counting.calls().len(), calls, "no read, no write");
}

#[tokio::test]
async fn names_owned_by_others_or_unowned_with_answers_are_never_written() {
    let (s, p) = Setup::new();
    s.publish("other.example.test.", &["192.0.2.9"], "cluster-b", 3).await;
    s.backdoor.set_answers(&name("manual.example.test."), RecordType::A, &["192.0.2.8".to_string()]).await;
    s.backdoor.set_txt(&name("_veer.garbled.example.test."), Some("owner=;gen=?")).await;
    let e = enactor(p, Arc::new(AlwaysLeader { epoch: 1 }));
    let mut intents = Vec::new();
    for n in ["other.example.test.", "manual.example.test.", "garbled.example.test."] {
        intents.push(intent(n, &[("192.0.2.1", 1)], s.read(n).await));
    }
    let manual_before = s.read("manual.example.test.").await;
    let report = e.enact(&intents).await;
    for (_, n, outcome) in &report.outcomes {
        assert!(matches!(outcome, Outcome::NotOwned(_)), "{n}: {outcome:?}");
    }
    assert_eq!(s.counting.applies(), 0);
    assert_eq!(s.read("manual.example.test.").await, manual_before);

    let mut adopting = intent("manual.example.test.", &[("192.0.2.1", 1)], manual_before);
    adopting.adopt = true;
    let report = e.enact(&[adopting]).await;
    assert_eq!(report.outcomes[0].2, Outcome::Applied { generation: 1 });
}

#[tokio::test]
async fn a_plan_built_from_an_older_generation_is_a_conflict_and_writes_nothing() {
    let (s, p) = Setup::new();
    s.publish("api.example.test.", &["192.0.2.1"], OWNER, 1).await;
    let stale_base = s.read("api.example.test.").await;
    // A newer leader moves the name on to generation 2 after the plan was built.
    s.publish("api.example.test.", &["192.0.2.2"], OWNER, 2).await;
    let newer = s.read("api.example.test.").await;
    let e = enactor(p, Arc::new(AlwaysLeader { epoch: 1 }));
    let report = e.enact(&[intent("api.example.test.", &[("192.0.2.1", 10)], stale_base)]).await;
    assert!(matches!(&report.outcomes[0].2, Outcome::Conflict(why) if why.contains("generation 1 → 2")), "{report:?}");
    assert_eq!(s.counting.applies(), 0);
    assert_eq!(s.read("api.example.test.").await, newer);
}

/// Lets a competing writer publish between the enactor's re-read and its write.
struct RaceBeforeApply {
    inner: Arc<dyn Provider>,
    backdoor: Arc<dyn Backdoor>,
}

impl veer_provider::ProviderWrapper for RaceBeforeApply {
    fn inner(&self) -> &dyn Provider {
        &*self.inner
    }
    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            let txt = OwnershipRecord { owner: OWNER.into(), generation: 9, epoch: 2, policy_hash: "x".into() };
            self.backdoor.set_txt(&name("_veer.api.example.test."), Some(&txt.encode())).await;
            self.inner.apply(batch).await
        })
    }
}

#[tokio::test]
async fn a_competing_write_between_re_read_and_apply_fails_at_the_provider() {
    let (s, p) = Setup::new();
    s.publish("api.example.test.", &["192.0.2.1"], OWNER, 1).await;
    let racing: Arc<dyn Provider> = Arc::new(RaceBeforeApply { inner: p, backdoor: s.backdoor.clone() });
    let e = enactor(racing, Arc::new(AlwaysLeader { epoch: 1 }));
    let report = e.enact(&[intent("api.example.test.", &[("192.0.2.5", 5)], s.read("api.example.test.").await)]).await;
    assert!(matches!(report.outcomes[0].2, Outcome::Conflict(_)), "{report:?}");
    assert!(report.outcomes[0].2.needs_replan());
    let now = s.read("api.example.test.").await;
    assert_eq!(now.ownership.unwrap().generation, 9, "the competitor's write stands");
    let values: Vec<_> = now.records.unwrap().answers.into_iter().map(|a| a.value).collect();
    assert_eq!(values, ["192.0.2.1"], "nothing half-applied");
}

struct FenceAfter {
    allowed: AtomicUsize,
}

impl Fence for FenceAfter {
    fn check(&self, needed: Duration) -> Result<Option<crate::coord::WriteGuard>, FenceError> {
        let left = self.allowed.load(Ordering::SeqCst);
        if left == 0 {
            return Err(FenceError::LeaseTooShort { remaining: Duration::ZERO, needed });
        }
        self.allowed.store(left - 1, Ordering::SeqCst);
        Ok(None)
    }
    fn epoch(&self) -> u64 {
        3
    }
}

/// Reports a batch limit of one change (two record sets) per call.
struct OneChangePerCall(Arc<dyn Provider>);

impl veer_provider::ProviderWrapper for OneChangePerCall {
    fn inner(&self) -> &dyn Provider {
        &*self.0
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities { batch_records_max: 2, ..self.0.capabilities() }
    }
}

#[tokio::test]
async fn the_fence_is_checked_before_every_batch_and_a_failure_stops_all_later_writes() {
    let (s, p) = Setup::new();
    let e = enactor(Arc::new(OneChangePerCall(p)), Arc::new(FenceAfter { allowed: AtomicUsize::new(1) }));
    let mut intents = Vec::new();
    for n in ["a.example.test.", "b.example.test.", "c.example.test."] {
        intents.push(intent(n, &[("192.0.2.1", 1)], s.read(n).await));
    }
    let report = e.enact(&intents).await;
    assert_eq!(report.outcomes[0].2, Outcome::Applied { generation: 1 });
    assert_eq!(report.outcomes[1].2, Outcome::Fenced);
    assert_eq!(report.outcomes[2].2, Outcome::Fenced);
    assert_eq!(s.counting.applies(), 1);
    assert!(report.fence_lost.is_some());
    assert!(s.read("b.example.test.").await.records.is_none());
}

#[tokio::test]
async fn changes_of_one_zone_share_a_batch_up_to_the_provider_limit() {
    for (limited, calls) in [(true, 3), (false, 1)] {
        let (s, p) = Setup::new();
        let provider: Arc<dyn Provider> = if limited { Arc::new(OneChangePerCall(p)) } else { p };
        let e = enactor(provider, Arc::new(AlwaysLeader { epoch: 1 }));
        let mut intents = Vec::new();
        for n in ["a.example.test.", "b.example.test.", "c.example.test."] {
            intents.push(intent(n, &[("192.0.2.1", 1), ("192.0.2.2", 1)], s.read(n).await));
        }
        let report = e.enact(&intents).await;
        assert!(report.all_converged(), "{report:?}");
        assert_eq!((report.writes, s.counting.applies()), (calls, calls));
    }
}

#[tokio::test]
async fn an_ambiguous_write_settled_by_the_retry_layer_counts_as_applied() {
    let (s, p) = Setup::new();
    let faulty = Arc::new(Faulty::new(p));
    faulty.push_apply_fault(Fault::AmbiguousAfterWrite);
    let budget =
        veer_provider::ApiBudget::new(veer_provider::BudgetConfig { calls_per_second: 1000.0, burst: 1000 }).unwrap();
    let retries = Arc::new(veer_provider::RetryBudget::default());
    let resilient = veer_provider::Resilient::new(faulty, Arc::new(budget), Default::default(), retries, 7);
    let e = enactor(Arc::new(resilient), Arc::new(AlwaysLeader { epoch: 1 }));
    let report = e.enact(&[intent("api.example.test.", &[("192.0.2.1", 10)], s.read("api.example.test.").await)]).await;
    assert_eq!(report.outcomes[0].2, Outcome::Applied { generation: 1 });
}
