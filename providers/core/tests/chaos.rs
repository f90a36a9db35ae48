//! The fault-injection layer ([`Chaotic`]): each fault does what a misbehaving
//! provider would do, faults replay from their seed, and the conformance battery
//! still passes through [`Resilient`] around a chaotic provider.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use veer_provider::conformance::{Harness, MemoryProvider, OWNER};
use veer_provider::{
    Answer, ApiBudget, BudgetConfig, Change, ChangeBatch, Chaotic, FaultRates, FaultRule, Injected, Observed,
    Operation, OwnershipRecord, Provider, ProviderError, RecordName, RecordSet, RecordType, Resilient, RetryBudget,
    RetryPolicy,
};

fn zone() -> RecordName {
    RecordName::parse("example.test.").unwrap()
}

fn name(label: &str) -> RecordName {
    RecordName::parse(&format!("{label}.example.test.")).unwrap()
}

/// The battery's provider: the reference provider behind chaos (every kind of
/// fault, on reads and writes) and the retry layer, as the controller builds it.
async fn chaotic_memory() -> Option<Harness> {
    let memory = MemoryProvider::new(vec![zone()]);
    let backdoor = memory.backdoor();
    let rates = FaultRates {
        throttled: 0.1,
        unavailable: 0.05,
        timeout: 0.05,
        timeout_after: Duration::from_millis(5),
        lost_response: 0.05,
        delayed: 0.1,
        delay_max: Duration::from_millis(5),
        ..FaultRates::NONE
    };
    let chaotic = Arc::new(Chaotic::new(Arc::new(memory), vec![FaultRule::always(rates)], 11));
    let resilient = Resilient::new(
        chaotic,
        Arc::new(ApiBudget::new(BudgetConfig { calls_per_second: 2000.0, burst: 200 }).unwrap()),
        RetryPolicy { base: Duration::from_millis(1), cap: Duration::from_millis(10), attempts_max: 12 },
        Arc::new(RetryBudget::new(10_000, 1.0)),
        11,
    );
    Some(Harness { provider: Arc::new(resilient), zone: zone(), backdoor, keep_alive: Arc::new(()) })
}

veer_provider::provider_battery!(chaotic_memory);

fn change(before: Observed, value: &str, generation: u64) -> ChangeBatch {
    let answers = vec![Answer { set_id: Some("a".into()), value: value.into(), weight: Some(1) }];
    let desired = RecordSet::new(before.name.clone(), RecordType::A, 60, answers);
    let ownership = OwnershipRecord { owner: OWNER.into(), generation, epoch: 1, policy_hash: "p".into() };
    ChangeBatch { zone: zone(), changes: vec![Change::new(before, desired, ownership)] }
}

fn only(rates: FaultRates) -> Vec<FaultRule> {
    vec![FaultRule::always(rates)]
}

fn memory() -> Arc<dyn Provider> {
    Arc::new(MemoryProvider::new(vec![zone()]))
}

async fn generation(provider: &dyn Provider, label: &str) -> Option<u64> {
    provider.read(&name(label), RecordType::A).await.unwrap().ownership.map(|o| o.generation)
}

#[tokio::test(start_paused = true)]
async fn throttled_calls_never_reach_the_provider_and_carry_the_retry_after_hint() {
    let inner = memory();
    let retry_after = Some(Duration::from_secs(2));
    let chaotic = Chaotic::new(inner.clone(), only(FaultRates { throttled: 1.0, retry_after, ..FaultRates::NONE }), 1);
    let before = inner.read(&name("t"), RecordType::A).await.unwrap();
    assert_eq!(chaotic.apply(&change(before, "192.0.2.1", 1)).await, Err(ProviderError::Throttled { retry_after }));
    assert_eq!(chaotic.read(&name("t"), RecordType::A).await, Err(ProviderError::Throttled { retry_after }));
    assert_eq!(generation(inner.as_ref(), "t").await, None, "nothing was written");
    assert_eq!((chaotic.stats().throttled, chaotic.stats().reads, chaotic.stats().writes), (2, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_5xx_is_unavailable_and_changes_nothing() {
    let inner = memory();
    let chaotic = Chaotic::new(inner.clone(), only(FaultRates { unavailable: 1.0, ..FaultRates::NONE }), 1);
    let before = inner.read(&name("u"), RecordType::A).await.unwrap();
    assert!(matches!(chaotic.apply(&change(before, "192.0.2.1", 1)).await, Err(ProviderError::Unavailable(_))));
    assert_eq!(generation(inner.as_ref(), "u").await, None);
}

#[tokio::test(start_paused = true)]
async fn a_lost_response_hides_a_write_that_landed() {
    let inner = memory();
    let chaotic = Chaotic::new(inner.clone(), only(FaultRates { lost_response: 1.0, ..FaultRates::NONE }), 1);
    let before = inner.read(&name("l"), RecordType::A).await.unwrap();
    let result = chaotic.apply(&change(before, "192.0.2.1", 1)).await;
    assert!(matches!(&result, Err(ProviderError::Ambiguous(why)) if why.contains("injected by chaos")), "{result:?}");
    assert_eq!(generation(inner.as_ref(), "l").await, Some(1), "the write landed");
    assert!(matches!(chaotic.read(&name("l"), RecordType::A).await, Err(ProviderError::Unavailable(_))));
}

#[tokio::test(start_paused = true)]
async fn a_timeout_hangs_for_its_duration_and_the_write_may_or_may_not_have_landed() {
    let after = Duration::from_secs(3);
    let rates = FaultRates { timeout: 1.0, timeout_after: after, ..FaultRates::NONE };
    let (mut landed, mut lost) = (0, 0);
    for seed in 0..40 {
        let inner = memory();
        let chaotic = Chaotic::new(inner.clone(), only(rates), seed).recording();
        let before = inner.read(&name("t"), RecordType::A).await.unwrap();
        let start = Instant::now();
        let result = chaotic.apply(&change(before, "192.0.2.1", 1)).await;
        assert_eq!(Instant::now() - start, after, "seed {seed}");
        assert!(matches!(result, Err(ProviderError::Ambiguous(_))), "seed {seed}: {result:?}");
        let Some(Injected::Timeout { landed: said }) = chaotic.calls()[0].injected else { panic!("seed {seed}") };
        assert_eq!(generation(inner.as_ref(), "t").await.is_some(), said, "seed {seed}: the log tells the truth");
        if said { landed += 1 } else { lost += 1 }
    }
    assert!(landed >= 10 && lost >= 10, "both outcomes happen: {landed} landed, {lost} not");
}

#[tokio::test(start_paused = true)]
async fn a_delayed_response_arrives_late_and_intact() {
    let inner = memory();
    let max = Duration::from_secs(2);
    let chaotic = Chaotic::new(inner.clone(), only(FaultRates { delayed: 1.0, delay_max: max, ..FaultRates::NONE }), 5);
    let before = inner.read(&name("d"), RecordType::A).await.unwrap();
    let start = Instant::now();
    assert_eq!(chaotic.apply(&change(before, "192.0.2.1", 1)).await, Ok(()));
    let took = Instant::now() - start;
    assert!(took > Duration::ZERO && took <= max, "{took:?}");
    assert_eq!(generation(inner.as_ref(), "d").await, Some(1));
}

/// The racing writer's shape (ARCHITECTURE.md §5): a stalled write reaches the provider
/// only after exactly `stall_for`, and nothing changed there while it waited;
/// the observer hears of it when the call arrives, with the generation it carries.
#[tokio::test(start_paused = true)]
async fn a_stalled_write_waits_exactly_its_stall_before_it_reaches_the_provider_and_is_announced_first() {
    let inner = memory();
    let stall = Duration::from_secs(4);
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    let observer = {
        let heard = heard.clone();
        Arc::new(move |call: &veer_provider::ChaosCall| {
            heard.lock().unwrap().push((call.injected, call.generations.clone()))
        })
    };
    let rates = FaultRates { stalled: 1.0, stall_for: stall, ..FaultRates::NONE };
    let chaotic = Arc::new(Chaotic::new(inner.clone(), only(rates), 3).observed(observer));
    let before = inner.read(&name("s"), RecordType::A).await.unwrap();
    let start = Instant::now();
    let write = tokio::spawn({
        let chaotic = chaotic.clone();
        async move { chaotic.apply(&change(before, "192.0.2.7", 1)).await }
    });
    tokio::time::sleep(stall - Duration::from_millis(1)).await;
    assert_eq!(generation(inner.as_ref(), "s").await, None, "nothing reached the provider during the stall");
    assert_eq!(*heard.lock().unwrap(), [(Some(Injected::Stalled(stall)), vec![1])], "announced on arrival");
    assert_eq!(write.await.unwrap(), Ok(()));
    assert_eq!(Instant::now() - start, stall);
    assert_eq!(generation(inner.as_ref(), "s").await, Some(1));
    assert_eq!(chaotic.stats().stalled, 1);
}

#[tokio::test(start_paused = true)]
async fn faults_happen_only_inside_their_window_and_for_their_operations() {
    let inner = memory();
    let rule = FaultRule {
        reads: false,
        writes: true,
        from: Duration::from_secs(10),
        until: Some(Duration::from_secs(20)),
        rates: FaultRates { unavailable: 1.0, ..FaultRates::NONE },
    };
    let chaotic = Chaotic::new(inner.clone(), vec![rule], 1).recording();
    let start = Instant::now();
    let mut outcomes = Vec::new();
    for (at, generation) in [(0u64, 1u64), (12, 2), (25, 2)] {
        tokio::time::sleep_until(start + Duration::from_secs(at)).await;
        let before = chaotic.read(&name("w"), RecordType::A).await.expect("reads never fail");
        outcomes.push(chaotic.apply(&change(before, &format!("192.0.2.{generation}"), generation)).await.is_ok());
    }
    assert_eq!(outcomes, [true, false, true]);
    let faults: Vec<_> = chaotic.calls().iter().map(|c| (c.operation, c.injected.is_some())).collect();
    assert_eq!(
        faults,
        [
            (Operation::Read, false),
            (Operation::Write, false),
            (Operation::Read, false),
            (Operation::Write, true),
            (Operation::Read, false),
            (Operation::Write, false)
        ]
    );
}

/// The faults of one name's calls, in order.
async fn faults_of(chaotic: &Chaotic, label: &str, calls: usize) -> Vec<Option<&'static str>> {
    let mut out = Vec::new();
    for _ in 0..calls {
        out.push(match chaotic.read(&name(label), RecordType::A).await {
            Ok(_) => None,
            Err(ProviderError::Throttled { .. }) => Some("throttled"),
            Err(_) => Some("unavailable"),
        });
    }
    out
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_injects_the_same_faults_whatever_the_interleaving_of_names() {
    let rates = FaultRates { throttled: 0.3, unavailable: 0.2, ..FaultRates::NONE };
    let run = |seed| Chaotic::new(Arc::new(MemoryProvider::new(vec![zone()])), only(rates), seed);
    // a then b, versus b then a: each name sees the same faults.
    let first = run(9);
    let (a1, b1) = (faults_of(&first, "a", 50).await, faults_of(&first, "b", 50).await);
    let second = run(9);
    let (b2, a2) = (faults_of(&second, "b", 50).await, faults_of(&second, "a", 50).await);
    assert_eq!((a1.clone(), b1.clone()), (a2, b2));
    assert_ne!(a1, b1, "names draw independently");
    let other = run(10);
    assert_ne!(faults_of(&other, "a", 50).await, a1, "another seed, other faults");
    assert!(a1.iter().filter(|f| f.is_some()).count() > 10);
}

/// ARCHITECTURE.md §8 item 5 on one record: 30 % throttled plus 5xx, timeouts, lost
/// responses and delays, through the retry layer: every generation lands exactly
/// once and in order, and every call (failed or not) stays within the budget.
#[tokio::test(start_paused = true)]
async fn a_storm_of_every_fault_converges_through_the_retry_layer_within_the_budget() {
    let rates = FaultRates {
        throttled: 0.3,
        retry_after: None,
        unavailable: 0.1,
        timeout: 0.05,
        timeout_after: Duration::from_secs(2),
        lost_response: 0.05,
        delayed: 0.1,
        delay_max: Duration::from_millis(500),
        ..FaultRates::NONE
    };
    let budget = BudgetConfig { calls_per_second: 5.0, burst: 5 };
    for seed in 0..20 {
        let inner = memory();
        let chaotic = Arc::new(Chaotic::new(inner.clone(), only(rates), seed).recording());
        let resilient = Resilient::new(
            chaotic.clone(),
            Arc::new(ApiBudget::new(budget).unwrap()),
            RetryPolicy { base: Duration::from_millis(100), cap: Duration::from_secs(5), attempts_max: 10 },
            Arc::new(RetryBudget::new(100, 1.0)),
            seed,
        );
        // The caller's loop, as the controller's rounds: read, write what is missing;
        // a call the retry layer gave up on is simply tried again next round.
        for generation in 1..=20u64 {
            for round in 0.. {
                assert!(round < 50, "seed {seed}: generation {generation} never landed");
                let Ok(before) = resilient.read(&name("s"), RecordType::A).await else { continue };
                let current = before.ownership.as_ref().map_or(0, |o| o.generation);
                if current == generation {
                    break;
                }
                assert_eq!(current, generation - 1, "seed {seed}: generations land once each, in order");
                match resilient.apply(&change(before, &format!("192.0.2.{generation}"), generation)).await {
                    Ok(()) => break,
                    Err(e) => assert!(e.is_retryable() || e.needs_reread(), "seed {seed}: {e}"),
                }
            }
            assert_eq!(generation_now(&inner).await, Some(generation), "seed {seed}");
        }
        let stats = chaotic.stats();
        assert!(stats.throttled > 0 && stats.faults() > stats.throttled, "seed {seed}: {stats:?}");
        let times: Vec<Instant> = chaotic.calls().iter().map(|c| c.at).collect();
        if let Some(excess) = veer_provider::conformance::budget_excess(&times, budget, Duration::ZERO) {
            panic!("seed {seed}: {excess}");
        }
    }
}

async fn generation_now(inner: &Arc<dyn Provider>) -> Option<u64> {
    generation(inner.as_ref(), "s").await
}
