//! The provider conformance suite: the same battery of tests for every provider.
//!
//! Each provider's tests build a [`Harness`] (the provider, its zone, and a
//! [`Backdoor`] that writes behind veer's back, as a competing writer or a human
//! would) and invoke [`provider_battery!`](crate::provider_battery), which expands
//! into one `#[tokio::test]` per property (providers tested against a stateful
//! fake of their API implement [`ApiFake`] for it and need nothing else):
//!
//! - read → apply → read round trips (create, change, remove answers);
//! - an apply built on a stale read is a `Conflict` and nothing is half-applied;
//! - a change leaving zero answers is `WouldEmpty`, without any write;
//! - names veer does not own are `NotOwned` and untouched;
//! - the API budget bounds the call rate;
//! - an ambiguous apply is settled by a re-read.
//!
//! Every test uses its own names under the zone, so one server may serve them all.
//! Also here: [`MemoryProvider`] (the reference implementation, which the suite
//! itself is tested on), and the [`Counting`] and [`Faulty`] (scripted faults)
//! wrappers; seeded faults are [`Chaotic`]'s.

use crate::{
    Answer, ApiBudget, BudgetConfig, Capabilities, CasPrimitive, Change, ChangeBatch, Chaotic, FaultRates, FaultRule,
    Observed, OwnershipRecord, Provider, ProviderError, ProviderFuture, RecordName, RecordSet, RecordType, Resilient,
    RetryBudget, RetryPolicy, Weighting,
};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A boxed future without an error type, for [`Backdoor`].
pub type BackdoorFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Writes to the provider behind veer's back (unconditionally), to play a competing
/// writer or an operator. Panics on failure: it is test scaffolding.
pub trait Backdoor: Send + Sync {
    /// Replaces the answers of `name`/`rtype` with `values` (empty: removes them).
    fn set_answers<'a>(&'a self, name: &'a RecordName, rtype: RecordType, values: &'a [String]) -> BackdoorFuture<'a>;
    /// Replaces the TXT values at `name` with `text` (`None`: removes them).
    fn set_txt<'a>(&'a self, name: &'a RecordName, text: Option<&'a str>) -> BackdoorFuture<'a>;
}

/// What the battery needs from a provider's test setup.
#[derive(Clone)]
pub struct Harness {
    /// The provider under test.
    pub provider: Arc<dyn Provider>,
    /// A zone the provider serves, where the battery may create names.
    pub zone: RecordName,
    /// A way to write behind the provider's back.
    pub backdoor: Arc<dyn Backdoor>,
    /// Something that must live as long as the harness (a server, a temp dir).
    pub keep_alive: Arc<dyn std::any::Any + Send + Sync>,
}

impl Harness {
    /// A harness on a stateful API fake: `provider` talks to `fake`, the battery
    /// uses the fake's zone and writes behind the provider's back by editing the
    /// fake's state. The fake (and the server it runs) lives as long as the harness.
    pub fn on_fake<F: ApiFake>(fake: F, provider: impl Provider + 'static) -> Self {
        let fake = Arc::new(fake);
        Harness {
            provider: Arc::new(provider),
            zone: fake.zone().clone(),
            backdoor: Arc::new(FakeBackdoor(fake.clone())),
            keep_alive: fake,
        }
    }
}

/// A stateful in-process fake of a provider's API, as the HTTP providers' tests
/// serve on loopback: its back door edits its state directly, at once.
/// [`provider_battery!`](crate::provider_battery)`(fake: start)` runs the
/// battery on one, where `start` is an async function returning the fake and a
/// provider pointed at it.
pub trait ApiFake: Send + Sync + 'static {
    /// The zone the fake serves, where the battery may create names.
    fn zone(&self) -> &RecordName;
    /// Replaces the answers of `name`/`rtype` with `values` (empty: removes them).
    fn set_answers(&self, name: &RecordName, rtype: RecordType, values: &[&str]);
    /// Replaces the TXT values at `name` with `text` (`None`: removes them).
    fn set_txt(&self, name: &RecordName, text: Option<&str>);
}

/// An [`ApiFake`] seen as a [`Backdoor`].
struct FakeBackdoor<F>(Arc<F>);

impl<F: ApiFake> Backdoor for FakeBackdoor<F> {
    fn set_answers<'a>(&'a self, name: &'a RecordName, rtype: RecordType, values: &'a [String]) -> BackdoorFuture<'a> {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        self.0.set_answers(name, rtype, &values);
        Box::pin(async {})
    }
    fn set_txt<'a>(&'a self, name: &'a RecordName, text: Option<&'a str>) -> BackdoorFuture<'a> {
        self.0.set_txt(name, text);
        Box::pin(async {})
    }
}

/// The owner id the battery writes as.
pub const OWNER: &str = "veer-conformance";

/// Expands into one `#[tokio::test]` per conformance property. `$make` is an async
/// function returning `Option<Harness>`; `None` skips the test (a server binary is
/// missing outside CI). `fake: $start` runs it on an [`ApiFake`](crate::conformance::ApiFake): `$start` is an
/// async function returning the fake and a provider pointed at it.
#[macro_export]
macro_rules! provider_battery {
    (fake: $start:path) => {
        async fn harness_on_fake() -> Option<$crate::conformance::Harness> {
            let (fake, provider) = $start().await;
            Some($crate::conformance::Harness::on_fake(fake, provider))
        }
        $crate::provider_battery!(harness_on_fake);
    };
    ($make:path) => {
        mod provider_battery {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn read_apply_read_round_trips() {
                if let Some(h) = $make().await {
                    $crate::conformance::read_apply_read_round_trips(&h).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_stale_apply_conflicts_and_changes_nothing() {
                if let Some(h) = $make().await {
                    $crate::conformance::a_stale_apply_conflicts_and_changes_nothing(&h).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_change_to_zero_answers_is_refused_without_a_write() {
                if let Some(h) = $make().await {
                    $crate::conformance::a_change_to_zero_answers_is_refused_without_a_write(&h).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn names_veer_does_not_own_are_never_changed() {
                if let Some(h) = $make().await {
                    $crate::conformance::names_veer_does_not_own_are_never_changed(&h).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_api_budget_bounds_the_call_rate() {
                if let Some(h) = $make().await {
                    $crate::conformance::the_api_budget_bounds_the_call_rate(&h).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_throttling_storm_converges_within_the_budget() {
                if let Some(h) = $make().await {
                    $crate::conformance::a_throttling_storm_converges_within_the_budget(&h).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_ambiguous_apply_is_settled_by_a_re_read() {
                if let Some(h) = $make().await {
                    $crate::conformance::an_ambiguous_apply_is_settled_by_a_re_read(&h).await;
                }
            }
        }
    };
}

fn name_in(h: &Harness, label: &str) -> RecordName {
    RecordName::parse(&format!("{label}.{}", h.zone)).expect("test names are valid")
}

fn ownership(generation: u64) -> OwnershipRecord {
    OwnershipRecord { owner: OWNER.into(), generation, epoch: 1, policy_hash: "c0ffee".into() }
}

/// Desired answers in the provider's style: weighted providers get set ids and
/// weights, set-only providers plain values.
fn answers(caps: &Capabilities, name: &RecordName, values: &[(&str, u32)]) -> RecordSet {
    let weighted = matches!(caps.weighting, Weighting::Weighted { .. });
    let answers = values
        .iter()
        .filter(|(_, weight)| weighted || *weight > 0)
        .map(|(value, weight)| Answer {
            set_id: weighted.then(|| format!("ep-{value}")),
            value: (*value).into(),
            weight: weighted.then_some(*weight),
        })
        .collect();
    RecordSet::new(name.clone(), RecordType::A, 60, answers)
}

async fn read(h: &Harness, name: &RecordName) -> Observed {
    h.provider.read(name, RecordType::A).await.unwrap_or_else(|e| panic!("read of {name} failed: {e}"))
}

async fn apply_one(h: &Harness, change: Change) -> Result<(), ProviderError> {
    h.provider.apply(&ChangeBatch { zone: h.zone.clone(), changes: vec![change] }).await
}

/// Creates `name` with the given answers through the provider and returns what is read back.
async fn create(h: &Harness, name: &RecordName, values: &[(&str, u32)], generation: u64) -> Observed {
    let before = read(h, name).await;
    let desired = answers(&h.provider.capabilities(), name, values);
    apply_one(h, Change::new(before, desired, ownership(generation))).await.expect("creating a fresh name works");
    read(h, name).await
}

fn assert_holds(caps: &Capabilities, observed: &Observed, desired: &RecordSet, generation: u64) {
    assert_eq!(observed.records.as_ref(), Some(&caps.published(desired)), "answers of {}", observed.name);
    assert_eq!(observed.ownership, Some(ownership(generation)), "ownership record of {}", observed.name);
    assert_eq!(observed.foreign_ownership, None);
}

/// read → apply → read: create, change and remove answers; each read shows the
/// answers and the ownership record just written.
pub async fn read_apply_read_round_trips(h: &Harness) {
    let caps = h.provider.capabilities();
    let name = name_in(h, "round-trip");
    let fresh = read(h, &name).await;
    assert_eq!(fresh, Observed::absent(name.clone(), RecordType::A), "the battery starts on an empty name");

    let steps: [&[(&str, u32)]; 3] = [
        &[("192.0.2.1", 10), ("192.0.2.2", 20)],
        &[("192.0.2.1", 5), ("192.0.2.3", 20), ("192.0.2.4", 0)],
        &[("192.0.2.3", 20)],
    ];
    let mut observed = fresh;
    for (i, step) in steps.iter().enumerate() {
        let generation = i as u64 + 1;
        let desired = answers(&caps, &name, step);
        apply_one(h, Change::new(observed.clone(), desired.clone(), ownership(generation)))
            .await
            .unwrap_or_else(|e| panic!("step {generation} failed: {e}"));
        observed = read(h, &name).await;
        assert_holds(&caps, &observed, &desired, generation);
    }
}

/// A change built from a stale read (a competing writer changed the ownership
/// record, or the answers, in between) fails with `Conflict`, and no part of its
/// batch is applied.
pub async fn a_stale_apply_conflicts_and_changes_nothing(h: &Harness) {
    let caps = h.provider.capabilities();
    let fresh_name = name_in(h, "conflict-fresh");
    let stale_name = name_in(h, "conflict-stale");
    let fresh = create(h, &fresh_name, &[("192.0.2.10", 1)], 1).await;
    let stale = create(h, &stale_name, &[("192.0.2.20", 1)], 1).await;

    // A competing writer bumps the ownership record of one name after our read.
    let theirs = OwnershipRecord { generation: 2, ..ownership(1) };
    h.backdoor.set_txt(&stale_name.ownership_name(), Some(&theirs.encode())).await;

    let change_fresh = Change::new(fresh.clone(), answers(&caps, &fresh_name, &[("192.0.2.11", 1)]), ownership(2));
    let change_stale = Change::new(stale.clone(), answers(&caps, &stale_name, &[("192.0.2.21", 1)]), ownership(2));
    // A non-atomic provider applies in order and stops at the first conflict, so
    // the stale change goes first there; an atomic one must hold with it last.
    let changes = if caps.atomic_batches { vec![change_fresh, change_stale] } else { vec![change_stale, change_fresh] };
    let result = h.provider.apply(&ChangeBatch { zone: h.zone.clone(), changes }).await;
    assert!(matches!(result, Err(ProviderError::Conflict(_))), "expected a conflict, got {result:?}");
    assert_eq!(read(h, &fresh_name).await, fresh, "the fresh half of the batch was not applied");
    let now = read(h, &stale_name).await;
    assert_eq!(now.records, stale.records, "the stale name keeps its answers");
    assert_eq!(now.ownership, Some(theirs), "the competing writer's ownership record stays");

    // Stale answers (same ownership record) conflict too.
    let again = read(h, &stale_name).await;
    h.backdoor.set_answers(&stale_name, RecordType::A, &["192.0.2.29".to_string()]).await;
    let result =
        apply_one(h, Change::new(again, answers(&caps, &stale_name, &[("192.0.2.22", 1)]), ownership(3))).await;
    assert!(matches!(result, Err(ProviderError::Conflict(_))), "expected a conflict, got {result:?}");
    let now = read(h, &stale_name).await;
    assert_eq!(
        now.records.map(|r| r.answers.into_iter().map(|a| a.value).collect::<Vec<_>>()),
        Some(vec!["192.0.2.29".to_string()])
    );
}

/// A change that would leave a name with no answers is refused as `WouldEmpty`
/// and nothing is written, neither answers nor the ownership record.
pub async fn a_change_to_zero_answers_is_refused_without_a_write(h: &Harness) {
    let caps = h.provider.capabilities();
    let name = name_in(h, "never-empty");
    let before = create(h, &name, &[("192.0.2.30", 1)], 1).await;

    let empty = RecordSet::new(name.clone(), RecordType::A, 60, Vec::new());
    let result = apply_one(h, Change::new(before.clone(), empty, ownership(2))).await;
    assert_eq!(result, Err(ProviderError::WouldEmpty(name.to_string())));

    if matches!(caps.weighting, Weighting::Weighted { .. }) {
        let all_zero = answers(&caps, &name, &[("192.0.2.30", 0), ("192.0.2.31", 0)]);
        let result = apply_one(h, Change::new(before.clone(), all_zero, ownership(2))).await;
        assert_eq!(result, Err(ProviderError::WouldEmpty(name.to_string())));
    }
    assert_eq!(read(h, &name).await, before, "nothing was written");

    // One empty change spoils the whole batch.
    let other = name_in(h, "never-empty-other");
    let other_before = read(h, &other).await;
    let batch = ChangeBatch {
        zone: h.zone.clone(),
        changes: vec![
            Change::new(other_before.clone(), answers(&caps, &other, &[("192.0.2.32", 1)]), ownership(1)),
            Change::new(before.clone(), RecordSet::new(name.clone(), RecordType::A, 60, Vec::new()), ownership(2)),
        ],
    };
    assert!(matches!(h.provider.apply(&batch).await, Err(ProviderError::WouldEmpty(_))));
    assert_eq!(read(h, &other).await, other_before, "the valid half of the batch was not written");
}

/// Names with answers but no ownership record, with another owner's record, or
/// with an unreadable one, are refused as `NotOwned` and left as they are. A caller
/// that claims ownership it does not have gets `Conflict`, still without a write.
pub async fn names_veer_does_not_own_are_never_changed(h: &Harness) {
    let caps = h.provider.capabilities();
    let cases: [(&str, Option<String>); 3] = [
        ("unowned", None),
        ("foreign", Some(OwnershipRecord { owner: "someone-else".into(), ..ownership(4) }.encode())),
        ("garbled", Some("hello world".into())),
    ];
    for (label, txt) in cases {
        let name = name_in(h, label);
        h.backdoor.set_answers(&name, RecordType::A, &["198.51.100.7".to_string()]).await;
        if let Some(txt) = &txt {
            h.backdoor.set_txt(&name.ownership_name(), Some(txt)).await;
        }
        let before = read(h, &name).await;
        assert!(before.records.is_some(), "{label}: the planted answer is visible");
        let desired = answers(&caps, &name, &[("192.0.2.40", 1)]);
        let result = apply_one(h, Change::new(before.clone(), desired.clone(), ownership(1))).await;
        assert!(matches!(result, Err(ProviderError::NotOwned(_))), "{label}: expected NotOwned, got {result:?}");
        assert_eq!(read(h, &name).await, before, "{label}: untouched");

        // Lying about the state (claiming our own ownership record) does not help.
        let forged = Observed { ownership: Some(ownership(1)), foreign_ownership: None, ..before.clone() };
        let result = apply_one(h, Change::new(forged, desired, ownership(2))).await;
        assert!(matches!(result, Err(ProviderError::Conflict(_))), "{label}: expected Conflict, got {result:?}");
        assert_eq!(read(h, &name).await, before, "{label}: still untouched");
    }
}

/// Every call through [`Resilient`] waits for the shared budget: over any span of
/// the recorded calls, their number stays within `burst + rate · span`.
pub async fn the_api_budget_bounds_the_call_rate(h: &Harness) {
    let config = BudgetConfig { calls_per_second: 40.0, burst: 3 };
    let counting = Arc::new(Counting::new(h.provider.clone()));
    let resilient = Arc::new(Resilient::new(
        counting.clone(),
        Arc::new(ApiBudget::new(config).expect("valid budget")),
        RetryPolicy { base: Duration::from_millis(5), cap: Duration::from_millis(50), attempts_max: 3 },
        Arc::new(RetryBudget::default()),
        1,
    ));
    let caps = h.provider.capabilities();
    let mut tasks = Vec::new();
    for i in 0..12u32 {
        let resilient = resilient.clone();
        let name = name_in(h, &format!("budget-{i}"));
        let desired = answers(&caps, &name, &[("192.0.2.50", 1)]);
        let zone = h.zone.clone();
        tasks.push(tokio::spawn(async move {
            let before = resilient.read(&name, RecordType::A).await.expect("read");
            let batch = ChangeBatch { zone, changes: vec![Change::new(before, desired, ownership(1))] };
            resilient.apply(&batch).await.expect("apply");
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let calls = counting.calls();
    assert_eq!(calls.len(), 24, "one read and one apply per name");
    // On real time a timer may fire late (more so on a loaded machine), which can
    // shorten the observed span between two admitted calls. 20 ms of slack is less
    // than one call at this rate, while a missing budget would show 24 calls at once.
    assert_rate_within(&calls, config, Duration::from_millis(20));
}

/// A storm: 30 % of calls (seeded) are answered `Throttled` by [`Chaotic`] before
/// they reach the provider. Through [`Resilient`], every change still lands exactly
/// once, in order, and all calls, throttled or not, stay within the budget.
pub async fn a_throttling_storm_converges_within_the_budget(h: &Harness) {
    const SEED: u64 = 30;
    let config = BudgetConfig { calls_per_second: 40.0, burst: 3 };
    let storm = Arc::new(
        Chaotic::new(
            h.provider.clone(),
            vec![FaultRule::always(FaultRates { throttled: 0.3, ..FaultRates::NONE })],
            SEED,
        )
        .recording(),
    );
    let resilient = Resilient::new(
        storm.clone(),
        Arc::new(ApiBudget::new(config).expect("valid budget")),
        RetryPolicy { base: Duration::from_millis(5), cap: Duration::from_millis(80), attempts_max: 10 },
        Arc::new(RetryBudget::new(100, 1.0)),
        SEED,
    );
    let caps = h.provider.capabilities();
    let name = name_in(h, "storm");
    for generation in 1..=8u64 {
        let before = resilient.read(&name, RecordType::A).await.expect("reads converge through the storm");
        let value = format!("192.0.2.{}", 60 + generation);
        let desired = answers(&caps, &name, &[(value.as_str(), 1)]);
        let batch =
            ChangeBatch { zone: h.zone.clone(), changes: vec![Change::new(before, desired, ownership(generation))] };
        resilient.apply(&batch).await.expect("writes converge through the storm");
    }
    let after = read(h, &name).await;
    assert_eq!(after.ownership.map(|o| o.generation), Some(8), "every generation applied once, in order (seed {SEED})");
    let throttled = storm.stats().throttled;
    assert!(throttled >= 3, "the storm throttled {throttled} calls (seed {SEED})");
    let all: Vec<Instant> = storm.calls().iter().map(|c| c.at).collect();
    assert_rate_within(&all, config, Duration::from_millis(20));
}

/// Asserts that the calls at `times` never exceed `config` over any span, where
/// each span may be observed up to `timer_slack` shorter than it was.
pub fn assert_rate_within(times: &[Instant], config: BudgetConfig, timer_slack: Duration) {
    if let Some(excess) = budget_excess(times, config, timer_slack) {
        panic!("{excess}");
    }
}

/// The first span over which the calls at `times` exceed `config` (each span may
/// be observed up to `timer_slack` shorter than it was), described; `None` when
/// the calls stay within the budget.
pub fn budget_excess(times: &[Instant], config: BudgetConfig, timer_slack: Duration) -> Option<String> {
    let mut times = times.to_vec();
    times.sort();
    for i in 0..times.len() {
        for j in i..times.len() {
            let span = (times[j] - times[i] + timer_slack).as_secs_f64();
            let allowed = f64::from(config.burst) + config.calls_per_second * span + 1e-6;
            let count = (j - i + 1) as f64;
            if count > allowed {
                return Some(format!("{count} calls within {span:.3} s exceed the budget {config:?}"));
            }
        }
    }
    None
}

/// An apply whose response is lost after it landed is reported as success after a
/// re-read (and not retried into a false conflict); one lost before it landed is
/// retried and lands once.
pub async fn an_ambiguous_apply_is_settled_by_a_re_read(h: &Harness) {
    let caps = h.provider.capabilities();
    let faulty = Arc::new(Faulty::new(h.provider.clone()));
    let counting = Arc::new(Counting::new(faulty.clone()));
    let resilient = Resilient::new(
        counting.clone(),
        Arc::new(ApiBudget::new(BudgetConfig { calls_per_second: 1000.0, burst: 100 }).expect("valid budget")),
        RetryPolicy { base: Duration::from_millis(5), cap: Duration::from_millis(50), attempts_max: 3 },
        Arc::new(RetryBudget::default()),
        2,
    );

    let name = name_in(h, "ambiguous");
    let before = resilient.read(&name, RecordType::A).await.expect("read");
    let desired = answers(&caps, &name, &[("192.0.2.60", 1)]);
    faulty.push_apply_fault(Fault::AmbiguousAfterWrite);
    let batch = ChangeBatch { zone: h.zone.clone(), changes: vec![Change::new(before, desired.clone(), ownership(1))] };
    resilient.apply(&batch).await.expect("the landed write is recognised");
    assert_eq!((counting.applies(), counting.reads()), (1, 2), "one apply, then one re-read, no blind retry");
    assert_holds(&caps, &read(h, &name).await, &desired, 1);

    let before = resilient.read(&name, RecordType::A).await.expect("read");
    let desired = answers(&caps, &name, &[("192.0.2.61", 1)]);
    faulty.push_apply_fault(Fault::AmbiguousBeforeWrite);
    let batch = ChangeBatch { zone: h.zone.clone(), changes: vec![Change::new(before, desired.clone(), ownership(2))] };
    resilient.apply(&batch).await.expect("the lost write is retried");
    assert_eq!((counting.applies(), counting.reads()), (3, 4), "re-read, then one conditional retry");
    assert_holds(&caps, &read(h, &name).await, &desired, 2);

    // A competing writer acts while our response is lost: neither state is there.
    let before = resilient.read(&name, RecordType::A).await.expect("read");
    faulty.push_apply_fault(Fault::AmbiguousBeforeWrite);
    h.backdoor.set_answers(&name, RecordType::A, &["192.0.2.69".to_string()]).await;
    let desired = answers(&caps, &name, &[("192.0.2.62", 1)]);
    let batch = ChangeBatch { zone: h.zone.clone(), changes: vec![Change::new(before, desired, ownership(3))] };
    let result = resilient.apply(&batch).await;
    assert!(matches!(result, Err(ProviderError::Conflict(_))), "expected a conflict, got {result:?}");
}

/// Records every call made through it, with its (tokio) time.
pub struct Counting {
    inner: Arc<dyn Provider>,
    calls: Mutex<Vec<(Instant, bool)>>,
}

impl Counting {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Provider>) -> Self {
        Self { inner, calls: Mutex::new(Vec::new()) }
    }

    fn record(&self, is_apply: bool) {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push((Instant::now(), is_apply));
    }

    /// Times of all calls so far.
    pub fn calls(&self) -> Vec<Instant> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|c| c.0).collect()
    }

    /// Applies so far.
    pub fn applies(&self) -> usize {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|c| c.1).count()
    }

    /// Reads so far.
    pub fn reads(&self) -> usize {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|c| !c.1).count()
    }
}

impl crate::ProviderWrapper for Counting {
    fn inner(&self) -> &dyn Provider {
        &*self.inner
    }
    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        self.record(false);
        self.inner.read(name, rtype)
    }
    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        self.record(true);
        self.inner.apply(batch)
    }
}

/// A scripted failure for [`Faulty`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Write, then report `Ambiguous` (the response was lost).
    AmbiguousAfterWrite,
    /// Report `Ambiguous` without writing (the request was lost).
    AmbiguousBeforeWrite,
    /// Report this error without calling the provider.
    Fail(ProviderError),
}

/// Injects scripted faults in front of a provider: each queued fault applies to the next call.
pub struct Faulty {
    inner: Arc<dyn Provider>,
    apply_faults: Mutex<VecDeque<Fault>>,
    read_faults: Mutex<VecDeque<ProviderError>>,
}

impl Faulty {
    /// Wraps `inner` with no fault queued.
    pub fn new(inner: Arc<dyn Provider>) -> Self {
        Self { inner, apply_faults: Mutex::default(), read_faults: Mutex::default() }
    }

    /// Queues a fault for the next apply without one.
    pub fn push_apply_fault(&self, fault: Fault) {
        self.apply_faults.lock().unwrap_or_else(|p| p.into_inner()).push_back(fault);
    }

    /// Queues an error for the next read without one.
    pub fn push_read_fault(&self, error: ProviderError) {
        self.read_faults.lock().unwrap_or_else(|p| p.into_inner()).push_back(error);
    }
}

impl crate::ProviderWrapper for Faulty {
    fn inner(&self) -> &dyn Provider {
        &*self.inner
    }
    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        let fault = self.read_faults.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        match fault {
            Some(error) => Box::pin(async move { Err(error) }),
            None => self.inner.read(name, rtype),
        }
    }
    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        let fault = self.apply_faults.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        Box::pin(async move {
            match fault {
                None => self.inner.apply(batch).await,
                Some(Fault::AmbiguousAfterWrite) => {
                    self.inner.apply(batch).await?;
                    Err(ProviderError::Ambiguous("injected: response lost after the write".into()))
                }
                Some(Fault::AmbiguousBeforeWrite) => {
                    Err(ProviderError::Ambiguous("injected: request lost before the write".into()))
                }
                Some(Fault::Fail(error)) => Err(error),
            }
        })
    }
}

/// The reference provider: an in-memory, weighted, atomic store with the exact
/// semantics the trait documents. Other providers are measured against it.
pub struct MemoryProvider {
    zones: Vec<RecordName>,
    state: Arc<Mutex<MemoryState>>,
}

#[derive(Default)]
struct MemoryState {
    answers: BTreeMap<(RecordName, RecordType), RecordSet>,
    txt: BTreeMap<RecordName, Vec<String>>,
}

impl MemoryState {
    fn observe(&self, name: &RecordName, rtype: RecordType) -> Observed {
        let txt = self.txt.get(&name.ownership_name()).cloned().unwrap_or_default();
        Observed::from_parts(name.clone(), rtype, self.answers.get(&(name.clone(), rtype)).cloned(), &txt)
    }
}

impl MemoryProvider {
    /// A provider serving `zones`, all empty.
    pub fn new(zones: Vec<RecordName>) -> Self {
        Self { zones, state: Arc::default() }
    }

    /// A backdoor into this provider's store.
    pub fn backdoor(&self) -> Arc<dyn Backdoor> {
        Arc::new(MemoryBackdoor(self.state.clone()))
    }

    /// A harness for the battery, on the first zone.
    pub fn harness(self) -> Harness {
        let zone = self.zones[0].clone();
        let backdoor = self.backdoor();
        Harness { provider: Arc::new(self), zone, backdoor, keep_alive: Arc::new(()) }
    }
}

impl Provider for MemoryProvider {
    fn name(&self) -> &str {
        "memory"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            weighting: Weighting::Weighted { max_weight: 255 },
            batch_records_max: 1000,
            atomic_batches: true,
            cas: CasPrimitive::InProcess,
            answer_ids: true,
        }
    }
    fn zones(&self) -> &[RecordName] {
        &self.zones
    }
    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        let observed = self.state.lock().unwrap_or_else(|p| p.into_inner()).observe(name, rtype);
        Box::pin(async move { Ok(observed) })
    }
    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        let result = (|| {
            batch.check(&self.capabilities())?;
            if !self.zones.contains(&batch.zone) {
                return Err(ProviderError::Rejected(format!("zone {} is not served", batch.zone)));
            }
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            for change in &batch.changes {
                if state.observe(change.name(), change.expected.rtype) != change.expected {
                    return Err(ProviderError::Conflict(format!("{} changed since it was read", change.name())));
                }
            }
            for change in &batch.changes {
                let published = self.capabilities().published(&change.desired);
                state.answers.insert((change.name().clone(), change.expected.rtype), published);
                state.txt.insert(change.name().ownership_name(), vec![change.ownership.encode()]);
            }
            Ok(())
        })();
        Box::pin(async move { result })
    }
}

struct MemoryBackdoor(Arc<Mutex<MemoryState>>);

impl Backdoor for MemoryBackdoor {
    fn set_answers<'a>(&'a self, name: &'a RecordName, rtype: RecordType, values: &'a [String]) -> BackdoorFuture<'a> {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let key = (name.clone(), rtype);
        if values.is_empty() {
            state.answers.remove(&key);
        } else {
            let answers = values.iter().map(|v| Answer { set_id: None, value: v.clone(), weight: Some(1) }).collect();
            state.answers.insert(key, RecordSet::new(name.clone(), rtype, 60, answers));
        }
        Box::pin(async {})
    }
    fn set_txt<'a>(&'a self, name: &'a RecordName, text: Option<&'a str>) -> BackdoorFuture<'a> {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match text {
            Some(text) => state.txt.insert(name.clone(), vec![text.to_string()]),
            None => state.txt.remove(name),
        };
        Box::pin(async {})
    }
}
