//! Enactor behaviour against an in-memory provider that validates each whole
//! batch before changing anything (compare-and-swap on the observed state).

use super::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use veer_provider::{Capabilities, CasPrimitive, ProviderFuture, RecordType, Weighting};

type Hook = Box<dyn Fn(&mut BTreeMap<RecordName, Observed>) -> Option<ProviderError> + Send + Sync>;

/// A provider holding names in memory. `before_apply` runs inside `apply`
/// before validation: it can change state (a competing writer) or fail the call.
struct MemoryProvider {
    zones: Vec<RecordName>,
    batch_limit: usize,
    state: Mutex<BTreeMap<RecordName, Observed>>,
    writes: AtomicUsize,
    reads: AtomicUsize,
    before_apply: Mutex<Option<Hook>>,
}

impl MemoryProvider {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            zones: vec![name("example.test.")],
            batch_limit: 1000,
            state: Mutex::default(),
            writes: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            before_apply: Mutex::new(None),
        })
    }
    fn with_batch_limit(limit: usize) -> Arc<Self> {
        let mut p = Arc::into_inner(Self::new()).unwrap();
        p.batch_limit = limit;
        Arc::new(p)
    }
    fn observed(&self, n: &str) -> Observed {
        self.state.lock().unwrap().get(&name(n)).cloned().unwrap_or_else(|| empty(n))
    }
    fn set(&self, observed: Observed) {
        self.state.lock().unwrap().insert(observed.name.clone(), observed);
    }
    fn on_apply(&self, hook: Hook) {
        *self.before_apply.lock().unwrap() = Some(hook);
    }
}

impl Provider for MemoryProvider {
    fn name(&self) -> &str {
        "memory"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            weighting: Weighting::Weighted { max_weight: 255 },
            batch_records_max: self.batch_limit,
            atomic_batches: true,
            cas: CasPrimitive::InProcess,
        }
    }
    fn zones(&self) -> &[RecordName] {
        &self.zones
    }
    fn read<'a>(&'a self, n: &'a RecordName, _: RecordType) -> ProviderFuture<'a, Observed> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let observed = self.observed(n.as_str());
        Box::pin(async move { Ok(observed) })
    }
    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut state = self.state.lock().unwrap();
        let injected = self.before_apply.lock().unwrap().as_ref().and_then(|hook| hook(&mut state));
        let result = match injected {
            Some(e) => Err(e),
            None => {
                let stale = batch.changes.iter().find(|c| {
                    state.get(&c.expected.name).cloned().unwrap_or_else(|| empty(c.expected.name.as_str()))
                        != c.expected
                });
                match stale {
                    Some(c) => Err(ProviderError::Conflict(format!("{} moved", c.expected.name))),
                    None => {
                        for c in &batch.changes {
                            state.insert(c.desired.name.clone(), published(c));
                        }
                        Ok(())
                    }
                }
            }
        };
        Box::pin(async move { result })
    }
}

fn name(n: &str) -> RecordName {
    RecordName::parse(n).unwrap()
}

fn empty(n: &str) -> Observed {
    Observed { name: name(n), rtype: RecordType::A, records: None, ownership: None, foreign_ownership: None }
}

fn published(c: &Change) -> Observed {
    Observed {
        name: c.desired.name.clone(),
        rtype: c.desired.rtype,
        records: Some(c.desired.clone()),
        ownership: Some(c.ownership.clone()),
        foreign_ownership: None,
    }
}

fn answers(values: &[(&str, u32)]) -> Vec<Answer> {
    values
        .iter()
        .map(|(v, w)| Answer { set_id: Some(format!("id-{v}")), value: v.to_string(), weight: Some(*w) })
        .collect()
}

fn intent(n: &str, values: &[(&str, u32)], base: Observed) -> Intent {
    Intent {
        provider: "memory".into(),
        policy: "p".into(),
        policy_hash: "h1".into(),
        adopt: false,
        desired: RecordSet::new(name(n), RecordType::A, 30, answers(values)),
        base,
    }
}

fn enactor(provider: &Arc<MemoryProvider>, fence: Arc<dyn Fence>) -> Enactor {
    let providers: BTreeMap<String, Arc<dyn Provider>> =
        [("memory".to_string(), provider.clone() as Arc<dyn Provider>)].into();
    Enactor::new("cluster-a", providers, fence, Duration::from_secs(1))
}

fn owned(n: &str, values: &[(&str, u32)], owner: &str, generation: u64) -> Observed {
    Observed {
        records: Some(RecordSet::new(name(n), RecordType::A, 30, answers(values))),
        ownership: Some(OwnershipRecord { owner: owner.into(), generation, epoch: 1, policy_hash: "h0".into() }),
        ..empty(n)
    }
}

#[tokio::test]
async fn a_new_name_is_published_with_its_ownership_record_at_generation_one() {
    let p = MemoryProvider::new();
    let e = enactor(&p, Arc::new(AlwaysLeader { epoch: 7 }));
    let report = e.enact(&[intent("api.example.test.", &[("192.0.2.1", 10)], empty("api.example.test."))]).await;
    assert_eq!(report.outcomes[0].2, Outcome::Applied { generation: 1 });
    let now = p.observed("api.example.test.");
    let ownership = now.ownership.unwrap();
    assert_eq!((ownership.owner.as_str(), ownership.generation, ownership.epoch), ("cluster-a", 1, 7));
    assert_eq!(ownership.policy_hash, "h1");
}

#[tokio::test]
async fn publishing_what_is_already_published_makes_no_write() {
    let p = MemoryProvider::new();
    p.set(owned("api.example.test.", &[("192.0.2.1", 10)], "cluster-a", 4));
    let e = enactor(&p, Arc::new(AlwaysLeader { epoch: 7 }));
    let report = e.enact(&[intent("api.example.test.", &[("192.0.2.1", 10)], p.observed("api.example.test."))]).await;
    assert_eq!(report.outcomes[0].2, Outcome::Unchanged);
    assert_eq!((report.writes, p.writes.load(Ordering::SeqCst)), (0, 0));
}

#[tokio::test]
async fn a_change_that_would_empty_a_name_is_refused_without_any_provider_call() {
    let p = MemoryProvider::new();
    p.set(owned("api.example.test.", &[("192.0.2.1", 10)], "cluster-a", 4));
    let e = enactor(&p, Arc::new(AlwaysLeader { epoch: 7 }));
    let zero_weights = intent("api.example.test.", &[("192.0.2.1", 0)], p.observed("api.example.test."));
    let no_answers = intent("api.example.test.", &[], p.observed("api.example.test."));
    let report = e.enact(&[zero_weights, no_answers]).await;
    assert_eq!(report.outcomes[0].2, Outcome::WouldEmpty);
    assert_eq!(report.outcomes[1].2, Outcome::WouldEmpty);
    assert_eq!((p.reads.load(Ordering::SeqCst), p.writes.load(Ordering::SeqCst)), (0, 0));
    assert_eq!(p.observed("api.example.test.").ownership.unwrap().generation, 4);
}

#[tokio::test]
async fn names_owned_by_others_or_unowned_with_answers_are_never_written() {
    let p = MemoryProvider::new();
    p.set(owned("other.example.test.", &[("192.0.2.9", 1)], "cluster-b", 3));
    let mut manual = owned("manual.example.test.", &[("192.0.2.8", 1)], "x", 0);
    manual.ownership = None;
    p.set(manual.clone());
    let mut garbled = empty("garbled.example.test.");
    garbled.foreign_ownership = Some("owner=;gen=?".into());
    p.set(garbled);
    let e = enactor(&p, Arc::new(AlwaysLeader { epoch: 1 }));
    let report = e
        .enact(&[
            intent("other.example.test.", &[("192.0.2.1", 1)], p.observed("other.example.test.")),
            intent("manual.example.test.", &[("192.0.2.1", 1)], p.observed("manual.example.test.")),
            intent("garbled.example.test.", &[("192.0.2.1", 1)], p.observed("garbled.example.test.")),
        ])
        .await;
    for (_, n, outcome) in &report.outcomes {
        assert!(matches!(outcome, Outcome::NotOwned(_)), "{n}: {outcome:?}");
    }
    assert_eq!(p.writes.load(Ordering::SeqCst), 0);
    assert_eq!(p.observed("manual.example.test."), manual);

    let mut adopting = intent("manual.example.test.", &[("192.0.2.1", 1)], manual);
    adopting.adopt = true;
    let report = e.enact(&[adopting]).await;
    assert_eq!(report.outcomes[0].2, Outcome::Applied { generation: 1 });
}

#[tokio::test]
async fn a_plan_built_from_an_older_generation_is_a_conflict_and_writes_nothing() {
    let p = MemoryProvider::new();
    p.set(owned("api.example.test.", &[("192.0.2.1", 10)], "cluster-a", 1));
    let stale_base = p.observed("api.example.test.");
    // A newer leader moves the name on to generation 2 after the plan was built.
    p.set(owned("api.example.test.", &[("192.0.2.2", 10)], "cluster-a", 2));
    let e = enactor(&p, Arc::new(AlwaysLeader { epoch: 1 }));
    let report = e.enact(&[intent("api.example.test.", &[("192.0.2.1", 10)], stale_base)]).await;
    assert!(matches!(&report.outcomes[0].2, Outcome::Conflict(why) if why.contains("generation 1 → 2")), "{report:?}");
    assert_eq!(p.writes.load(Ordering::SeqCst), 0);
    assert_eq!(p.observed("api.example.test."), owned("api.example.test.", &[("192.0.2.2", 10)], "cluster-a", 2));
}

#[tokio::test]
async fn a_competing_write_between_re_read_and_apply_fails_at_the_provider() {
    let p = MemoryProvider::new();
    p.set(owned("api.example.test.", &[("192.0.2.1", 10)], "cluster-a", 1));
    let competitor = owned("api.example.test.", &[("192.0.2.3", 10)], "cluster-a", 2);
    let injected = competitor.clone();
    p.on_apply(Box::new(move |state| {
        state.insert(injected.name.clone(), injected.clone());
        None
    }));
    let e = enactor(&p, Arc::new(AlwaysLeader { epoch: 1 }));
    let report = e.enact(&[intent("api.example.test.", &[("192.0.2.1", 5)], p.observed("api.example.test."))]).await;
    assert!(matches!(report.outcomes[0].2, Outcome::Conflict(_)), "{report:?}");
    assert!(report.outcomes[0].2.needs_replan());
    assert_eq!(p.observed("api.example.test."), competitor, "nothing half-applied");
}

struct FenceAfter {
    allowed: AtomicUsize,
}

impl Fence for FenceAfter {
    fn check(&self, needed: Duration) -> Result<(), FenceError> {
        let left = self.allowed.load(Ordering::SeqCst);
        if left == 0 {
            return Err(FenceError::LeaseTooShort { remaining: Duration::ZERO, needed });
        }
        self.allowed.store(left - 1, Ordering::SeqCst);
        Ok(())
    }
    fn epoch(&self) -> u64 {
        3
    }
}

#[tokio::test]
async fn the_fence_is_checked_before_every_batch_and_a_failure_stops_all_later_writes() {
    let p = MemoryProvider::with_batch_limit(3);
    let e = enactor(&p, Arc::new(FenceAfter { allowed: AtomicUsize::new(1) }));
    let names = ["a.example.test.", "b.example.test.", "c.example.test."];
    let intents: Vec<Intent> = names.iter().map(|n| intent(n, &[("192.0.2.1", 1)], empty(n))).collect();
    let report = e.enact(&intents).await;
    assert_eq!(report.outcomes[0].2, Outcome::Applied { generation: 1 });
    assert_eq!(report.outcomes[1].2, Outcome::Fenced);
    assert_eq!(report.outcomes[2].2, Outcome::Fenced);
    assert_eq!(p.writes.load(Ordering::SeqCst), 1);
    assert!(report.fence_lost.is_some());
    assert!(p.observed("b.example.test.").records.is_none());
}

#[tokio::test]
async fn changes_of_one_zone_share_a_batch_up_to_the_provider_limit_without_splitting_a_change() {
    let p = MemoryProvider::with_batch_limit(7);
    let e = enactor(&p, Arc::new(AlwaysLeader { epoch: 1 }));
    // Each new name with two answers is 4 records: two fit in no batch of 7, so 3 names → 3 calls.
    let names = ["a.example.test.", "b.example.test.", "c.example.test."];
    let intents: Vec<Intent> =
        names.iter().map(|n| intent(n, &[("192.0.2.1", 1), ("192.0.2.2", 1)], empty(n))).collect();
    let report = e.enact(&intents).await;
    assert!(report.all_converged());
    assert_eq!(report.writes, 3);
    let p = MemoryProvider::with_batch_limit(1000);
    let e = enactor(&p, Arc::new(AlwaysLeader { epoch: 1 }));
    let report = e.enact(&intents).await;
    assert_eq!(report.writes, 1, "one call per zone when the limit allows");
}

#[tokio::test]
async fn an_ambiguous_failure_is_settled_by_re_reading() {
    for lands in [true, false] {
        let p = MemoryProvider::new();
        p.on_apply(Box::new(move |state| {
            if lands {
                let mut o = owned("api.example.test.", &[("192.0.2.1", 10)], "cluster-a", 1);
                o.ownership.as_mut().unwrap().epoch = 1;
                o.ownership.as_mut().unwrap().policy_hash = "h1".into();
                state.insert(o.name.clone(), o);
            }
            Some(ProviderError::Ambiguous("timeout after sending".into()))
        }));
        let e = enactor(&p, Arc::new(AlwaysLeader { epoch: 1 }));
        let report = e.enact(&[intent("api.example.test.", &[("192.0.2.1", 10)], empty("api.example.test."))]).await;
        if lands {
            assert_eq!(report.outcomes[0].2, Outcome::Applied { generation: 1 });
        } else {
            assert!(
                matches!(&report.outcomes[0].2, Outcome::Failed(ProviderError::Ambiguous(w)) if w.contains("did not land"))
            );
        }
    }
}
