//! The budget and the retry layer around the reference provider, on virtual time.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use veer_provider::conformance::{Counting, Fault, Faulty, Harness, MemoryProvider, OWNER, assert_rate_within};
use veer_provider::{
    Answer, ApiBudget, BudgetConfig, Change, ChangeBatch, FullJitter, OwnershipRecord, Provider, ProviderError,
    RecordName, RecordSet, RecordType, Resilient, RetryBudget, RetryPolicy,
};

async fn memory_harness() -> Option<Harness> {
    Some(MemoryProvider::new(vec![RecordName::parse("example.test.").unwrap()]).harness())
}

veer_provider::provider_battery!(memory_harness);

fn name(label: &str) -> RecordName {
    RecordName::parse(&format!("{label}.example.test.")).unwrap()
}

fn change_for(before: veer_provider::Observed, value: &str) -> ChangeBatch {
    let answers = vec![Answer { set_id: Some("a".into()), value: value.into(), weight: Some(1) }];
    let desired = RecordSet::new(before.name.clone(), RecordType::A, 60, answers);
    let ownership = OwnershipRecord { owner: OWNER.into(), generation: 1, epoch: 1, policy_hash: "p".into() };
    ChangeBatch {
        zone: RecordName::parse("example.test.").unwrap(),
        changes: vec![Change::new(before, desired, ownership)],
    }
}

struct Stack {
    faulty: Arc<Faulty>,
    counting: Arc<Counting>,
    resilient: Arc<Resilient>,
}

fn stack(budget: BudgetConfig, policy: RetryPolicy, retries: RetryBudget, seed: u64) -> Stack {
    let memory: Arc<dyn Provider> = Arc::new(MemoryProvider::new(vec![RecordName::parse("example.test.").unwrap()]));
    let faulty = Arc::new(Faulty::new(memory));
    let counting = Arc::new(Counting::new(faulty.clone()));
    let resilient = Arc::new(Resilient::new(
        counting.clone(),
        Arc::new(ApiBudget::new(budget).unwrap()),
        policy,
        Arc::new(retries),
        seed,
    ));
    Stack { faulty, counting, resilient }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_200_changes_never_exceeds_the_configured_rate() {
    let config = BudgetConfig { calls_per_second: 5.0, burst: 5 };
    let s = stack(config, RetryPolicy::default(), RetryBudget::default(), 1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let resilient = s.resilient.clone();
        tasks.push(tokio::spawn(async move {
            let before = resilient.read(&name(&format!("n{i}")), RecordType::A).await.unwrap();
            resilient.apply(&change_for(before, "192.0.2.1")).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let calls = s.counting.calls();
    assert_eq!(calls.len(), 400);
    assert_rate_within(&calls, config, Duration::ZERO);
    // 400 calls at 5/s after a burst of 5: (400 - 5) / 5 = 79 s of virtual time.
    let elapsed = Instant::now() - start;
    assert!(elapsed >= Duration::from_secs(79) && elapsed < Duration::from_secs(80), "{elapsed:?}");
}

/// The delay between a throttled call and its retry, for one operation.
async fn retry_delays(s: &Stack, faults: usize, retry_after: Option<Duration>) -> Vec<Duration> {
    for _ in 0..faults {
        s.faulty.push_read_fault(ProviderError::Throttled { retry_after });
    }
    let first = s.counting.calls().len();
    s.resilient.read(&name("x"), RecordType::A).await.unwrap();
    let calls = s.counting.calls();
    calls[first..].windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn throttled_responses_back_off_with_full_jitter() {
    let base = Duration::from_millis(100);
    let policy = RetryPolicy { base, cap: Duration::from_secs(10), attempts_max: 10 };
    let budget = BudgetConfig { calls_per_second: 1e6, burst: 1000 };
    let seed = 42;
    let s = stack(budget, policy, RetryBudget::new(100_000, 1.0), seed);

    // The delays are exactly the seeded full-jitter sequence of each call.
    let mut seeds = StdRng::seed_from_u64(seed);
    let observed = retry_delays(&s, 4, None).await;
    let expected: Vec<_> = FullJitter::new(base, policy.cap, seeds.next_u64()).take(4).collect();
    for (o, e) in observed.iter().zip(&expected) {
        assert!(o.abs_diff(*e) < Duration::from_millis(2), "observed {observed:?}, expected {expected:?}");
    }

    // Over many operations, the first retry is uniform in [0, base] and the third in [0, 4·base].
    let (mut first, mut third) = (Vec::new(), Vec::new());
    for _ in 0..1000 {
        let d = retry_delays(&s, 3, None).await;
        first.push(d[0].as_secs_f64());
        third.push(d[2].as_secs_f64());
    }
    for (samples, ceiling) in [(&first, 0.1), (&third, 0.4)] {
        assert!(samples.iter().all(|&x| x <= ceiling + 0.002));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((mean - ceiling / 2.0).abs() < ceiling * 0.06, "mean {mean} for ceiling {ceiling}");
        for q in 0..4 {
            let lo = ceiling * f64::from(q) / 4.0;
            let count = samples.iter().filter(|&&x| x >= lo && x < lo + ceiling / 4.0).count();
            assert!((180..=320).contains(&count), "quarter {q} of [0, {ceiling}] has {count} of 1000");
        }
    }

    // A throttle with retry-after is honoured: never sooner.
    for d in retry_delays(&s, 3, Some(Duration::from_secs(2))).await {
        assert!(d >= Duration::from_secs(2), "{d:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_conflict_is_returned_at_once_and_never_retried() {
    let s =
        stack(BudgetConfig { calls_per_second: 100.0, burst: 10 }, RetryPolicy::default(), RetryBudget::default(), 3);
    let before = s.resilient.read(&name("c"), RecordType::A).await.unwrap();
    s.faulty.push_apply_fault(Fault::Fail(ProviderError::Conflict("lost a race".into())));
    let result = s.resilient.apply(&change_for(before, "192.0.2.1")).await;
    assert_eq!(result, Err(ProviderError::Conflict("lost a race".into())));
    assert_eq!(s.counting.applies(), 1);
}

#[tokio::test(start_paused = true)]
async fn unavailable_writes_are_retried_until_the_retry_budget_is_spent() {
    let s =
        stack(BudgetConfig { calls_per_second: 100.0, burst: 10 }, RetryPolicy::default(), RetryBudget::new(2, 0.0), 4);
    let before = s.resilient.read(&name("u"), RecordType::A).await.unwrap();
    for _ in 0..5 {
        s.faulty.push_apply_fault(Fault::Fail(ProviderError::Unavailable("connection refused".into())));
    }
    let result = s.resilient.apply(&change_for(before, "192.0.2.1")).await;
    assert!(matches!(result, Err(ProviderError::Unavailable(_))));
    assert_eq!(s.counting.applies(), 3, "the first attempt and two retries from the budget");
}

#[tokio::test(start_paused = true)]
async fn refused_batches_never_reach_the_provider() {
    let s =
        stack(BudgetConfig { calls_per_second: 100.0, burst: 10 }, RetryPolicy::default(), RetryBudget::default(), 5);
    let before = s.resilient.read(&name("e"), RecordType::A).await.unwrap();
    let mut batch = change_for(before, "192.0.2.1");
    batch.changes[0].desired.answers[0].weight = Some(0);
    assert!(matches!(s.resilient.apply(&batch).await, Err(ProviderError::WouldEmpty(_))));
    assert_eq!(s.counting.applies(), 0);
}
