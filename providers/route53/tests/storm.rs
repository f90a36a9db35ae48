//! Route 53 behind veer's shared budget and retry layer ([`Resilient`]), on the
//! CAS-faithful fake: a throttling storm converges without the call rate ever
//! exceeding the budget, and a write whose response was lost after it landed is
//! settled by a re-read instead of being sent twice.

mod fake;

use fake::{FakeRoute53, Fault, Op};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use veer_provider::conformance::assert_rate_within;
use veer_provider::{
    Answer, ApiBudget, BudgetConfig, Change, ChangeBatch, Observed, OwnershipRecord, Provider, ProviderFuture,
    RecordName, RecordSet, RecordType, Resilient, RetryBudget, RetryPolicy,
};
use veer_provider_route53::{InsyncWait, Route53Config, Route53Provider, Secret, StaticCredentials, Timeouts};

const API: &str = "api.example.com.";
const SEED: u64 = 30;

fn name(text: &str) -> RecordName {
    RecordName::parse(text).unwrap()
}

async fn route53(fake: &FakeRoute53, operation: Duration) -> Route53Provider {
    let config = Route53Config {
        zones: vec![name("example.com.")],
        endpoint_url: Some(fake.url.clone()),
        credentials: Some(StaticCredentials {
            access_key_id: "AKIDVEERTEST".into(),
            secret_access_key: Secret::new("veerFAKEsecretKEYstorm"),
            session_token: None,
        }),
        timeouts: Timeouts { connect: Duration::from_secs(5), operation },
        insync: InsyncWait { enabled: true, interval: Duration::from_millis(10), timeout: Duration::from_secs(10) },
        ..Route53Config::default()
    };
    Route53Provider::connect("route53-test", config).await.expect("connect to the fake")
}

/// Sends every call to the fake, first queueing a `Throttling` answer for 30 % of
/// them (seeded), and records when each call was made.
struct Storm {
    inner: Arc<dyn Provider>,
    fake: Arc<FakeRoute53>,
    rng: Mutex<StdRng>,
    calls: Mutex<Vec<Instant>>,
    throttled: Mutex<usize>,
}

impl Storm {
    fn maybe_throttle(&self, op: Op) {
        self.calls.lock().unwrap().push(Instant::now());
        if self.rng.lock().unwrap().random_bool(0.3) {
            *self.throttled.lock().unwrap() += 1;
            self.fake.fault(op, Fault::Throttling);
        }
    }
}

impl veer_provider::ProviderWrapper for Storm {
    fn inner(&self) -> &dyn Provider {
        &*self.inner
    }
    fn read<'a>(&'a self, n: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        self.maybe_throttle(Op::ListResourceRecordSets);
        self.inner.read(n, rtype)
    }
    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        self.maybe_throttle(Op::ChangeResourceRecordSets);
        self.inner.apply(batch)
    }
}

fn desired(weight: u32) -> RecordSet {
    let answer = |id: &str, v: &str, w| Answer { set_id: Some(id.into()), value: v.into(), weight: Some(w) };
    RecordSet::new(name(API), RecordType::A, 30, vec![answer("a", "192.0.2.1", weight), answer("b", "192.0.2.2", 10)])
}

fn change(expected: Observed, generation: u64, weight: u32) -> ChangeBatch {
    let ownership = OwnershipRecord { owner: "storm".into(), generation, epoch: 1, policy_hash: "h".into() };
    ChangeBatch { zone: name("example.com."), changes: vec![Change::new(expected, desired(weight), ownership)] }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_storm_converges_and_never_exceeds_the_budget() {
    let fake = Arc::new(FakeRoute53::start().await);
    let inner: Arc<dyn Provider> = Arc::new(route53(&fake, Duration::from_secs(15)).await);
    let storm = Arc::new(Storm {
        inner,
        fake: fake.clone(),
        rng: Mutex::new(StdRng::seed_from_u64(SEED)),
        calls: Mutex::default(),
        throttled: Mutex::default(),
    });
    let budget = BudgetConfig { calls_per_second: 5.0, burst: 5 };
    let policy = RetryPolicy { base: Duration::from_millis(100), cap: Duration::from_secs(2), attempts_max: 8 };
    let resilient = Resilient::new(
        storm.clone(),
        Arc::new(ApiBudget::new(budget).unwrap()),
        policy,
        Arc::new(RetryBudget::new(50, 0.5)),
        SEED,
    );
    for generation in 1..=12u64 {
        let before = resilient.read(&name(API), RecordType::A).await.expect("reads converge");
        let weight = 10 + generation as u32;
        resilient.apply(&change(before, generation, weight)).await.expect("writes converge");
    }
    let after = resilient.read(&name(API), RecordType::A).await.unwrap();
    assert_eq!(after.records, Some(desired(22)), "the last change is in place");
    assert_eq!(after.ownership.map(|o| o.generation), Some(12), "every generation applied once, in order");
    let calls = storm.calls.lock().unwrap().clone();
    let throttled = *storm.throttled.lock().unwrap();
    assert!(throttled >= 5, "the storm throttled {throttled} of {} calls (seed {SEED})", calls.len());
    assert_rate_within(&calls, budget, Duration::from_millis(50));
    println!("{} calls, {throttled} throttled, all within {budget:?} (seed {SEED})", calls.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_landed_but_lost_its_response_is_settled_by_a_re_read_and_sent_once() {
    let fake = FakeRoute53::start().await;
    let inner: Arc<dyn Provider> = Arc::new(route53(&fake, Duration::from_secs(2)).await);
    let budget = Arc::new(ApiBudget::new(BudgetConfig { calls_per_second: 50.0, burst: 50 }).unwrap());
    let resilient = Resilient::new(inner, budget, RetryPolicy::default(), Arc::new(RetryBudget::default()), SEED);
    let before = resilient.read(&name(API), RecordType::A).await.unwrap();
    fake.fault(Op::ChangeResourceRecordSets, Fault::LandThenHang(Duration::from_secs(60)));
    resilient.apply(&change(before, 1, 10)).await.expect("the re-read shows the write landed");
    assert_eq!(fake.count(Op::ChangeResourceRecordSets), 1, "not sent a second time");
    let now = resilient.read(&name(API), RecordType::A).await.unwrap();
    assert_eq!(now.records, Some(desired(10)));
}
