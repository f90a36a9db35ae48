//! The provider against a CAS-faithful Route 53 fake (`tests/fake`): round
//! trips, lost races, throttling, ambiguous writes, batching and INSYNC.

mod fake;

use fake::{FakeRoute53, Fault, Op, Set};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use veer_provider::{
    Answer, Change, ChangeBatch, Observed, OwnershipRecord, Provider, ProviderError, RecordName, RecordSet, RecordType,
};
use veer_provider_route53::batch::BatchLimits;
use veer_provider_route53::{InsyncWait, Route53Config, Route53Provider, Secret, StaticCredentials, Timeouts};

/// A recognisable fake secret: no output may ever contain it.
const SECRET: &str = "veerFAKEsecretKEYdoNOTprint0123456789abcd";

fn name(text: &str) -> RecordName {
    RecordName::parse(text).unwrap()
}

fn zone() -> RecordName {
    name("example.com.")
}

fn config(fake: &FakeRoute53) -> Route53Config {
    Route53Config {
        zones: vec![zone()],
        endpoint_url: Some(fake.url.clone()),
        credentials: Some(StaticCredentials {
            access_key_id: "AKIDVEERTEST".into(),
            secret_access_key: Secret::new(SECRET),
            session_token: None,
        }),
        // Generous: the machine is shared; only the hang test wants a short one.
        timeouts: Timeouts { connect: Duration::from_secs(5), operation: Duration::from_secs(15) },
        insync: InsyncWait { enabled: true, interval: Duration::from_millis(10), timeout: Duration::from_secs(10) },
        ..Route53Config::default()
    }
}

async fn provider(fake: &FakeRoute53) -> Route53Provider {
    Route53Provider::connect("route53-test", config(fake)).await.expect("connect to the fake")
}

fn records(n: &str, answers: &[(&str, &str, u32)]) -> RecordSet {
    RecordSet::new(
        name(n),
        RecordType::A,
        30,
        answers
            .iter()
            .map(|(id, value, weight)| Answer {
                set_id: Some(id.to_string()),
                value: value.to_string(),
                weight: Some(*weight),
            })
            .collect(),
    )
}

fn ownership(generation: u64) -> OwnershipRecord {
    OwnershipRecord { owner: "prod-a".into(), generation, epoch: 3, policy_hash: "cafe".into() }
}

fn change(expected: &Observed, desired: RecordSet) -> Change {
    let generation = expected.ownership.as_ref().map_or(0, |o| o.generation) + 1;
    Change { expected: expected.clone(), desired, ownership: ownership(generation), adopt: false }
}

fn batch(changes: Vec<Change>) -> ChangeBatch {
    ChangeBatch { zone: zone(), changes }
}

/// What a read of a name that holds nothing returns.
fn absent(n: &str) -> Observed {
    Observed { name: name(n), rtype: RecordType::A, records: None, ownership: None, foreign_ownership: None }
}

const API: &str = "api.example.com.";

/// Publishes two endpoints on `api.example.com.` and returns what a read then sees.
async fn publish_initial(provider: &Route53Provider) -> Observed {
    let empty = provider.read(&name(API), RecordType::A).await.unwrap();
    let desired = records(API, &[("use1-a", "192.0.2.10", 100), ("use1-b", "192.0.2.11", 100)]);
    provider.apply(&batch(vec![change(&empty, desired)])).await.unwrap();
    provider.read(&name(API), RecordType::A).await.unwrap()
}

#[tokio::test]
async fn read_apply_read_round_trips_answers_weights_and_ownership() {
    let fake = FakeRoute53::start().await;
    let provider = provider(&fake).await;
    let empty = provider.read(&name(API), RecordType::A).await.unwrap();
    assert_eq!(empty.records, None);
    assert_eq!(empty.ownership, None);

    let first = publish_initial(&provider).await;
    assert_eq!(first.records, Some(records(API, &[("use1-a", "192.0.2.10", 100), ("use1-b", "192.0.2.11", 100)])));
    assert_eq!(first.ownership, Some(ownership(1)));
    assert_eq!(first.foreign_ownership, None);
    let txt = fake.sets().into_iter().find(|s| s.rtype == "TXT").unwrap();
    assert_eq!(txt.name, "_veer.api.example.com.");
    assert_eq!(txt.values, vec!["\"owner=prod-a;gen=1;epoch=3;policy=cafe\"".to_string()]);
    assert_eq!(txt.set_id, None, "the ownership record is a simple record set");

    // Shift weight: only the changed weighted set and the ownership record travel.
    let shifted = records(API, &[("use1-a", "192.0.2.10", 100), ("use1-b", "192.0.2.11", 0)]);
    provider.apply(&batch(vec![change(&first, shifted.clone())])).await.unwrap();
    let second = provider.read(&name(API), RecordType::A).await.unwrap();
    assert_eq!(second.records, Some(shifted));
    assert_eq!(second.ownership, Some(ownership(2)));
    let last = fake.calls().last().cloned().unwrap();
    assert_eq!(last.records, 4, "DELETE+CREATE of use1-b and of the ownership TXT, use1-a left out");

    // Remove an endpoint entirely.
    let removed = records(API, &[("use1-a", "192.0.2.10", 100)]);
    provider.apply(&batch(vec![change(&second, removed.clone())])).await.unwrap();
    let third = provider.read(&name(API), RecordType::A).await.unwrap();
    assert_eq!(third.records, Some(removed));
    assert_eq!(fake.sets().iter().filter(|s| s.rtype == "A").count(), 1);
}

#[tokio::test]
async fn a_competing_writer_between_read_and_apply_gets_a_conflict_and_nothing_is_half_applied() {
    let fake = FakeRoute53::start().await;
    let provider = provider(&fake).await;
    let read = publish_initial(&provider).await;

    // Another writer changes one weight after our read.
    let mut theirs = fake.sets().into_iter().find(|s| s.set_id.as_deref() == Some("use1-b")).unwrap();
    theirs.weight = Some(7);
    fake.put(theirs);
    let before = fake.sets();

    let desired = records(API, &[("use1-a", "192.0.2.10", 50), ("use1-b", "192.0.2.11", 50)]);
    let err = provider.apply(&batch(vec![change(&read, desired)])).await.unwrap_err();
    assert!(matches!(&err, ProviderError::Conflict(m) if m.contains("do not match")), "{err}");
    assert_eq!(fake.sets(), before, "the whole batch was refused: nothing applied");
}

#[tokio::test]
async fn a_stale_writer_whose_generation_moved_gets_a_conflict_even_for_other_names_in_the_batch() {
    let fake = FakeRoute53::start().await;
    let provider = provider(&fake).await;
    let read = publish_initial(&provider).await;
    let www = provider.read(&name("www.example.com."), RecordType::A).await.unwrap();

    // A newer leader moved api's generation (only the ownership record differs).
    let newer = provider.read(&name(API), RecordType::A).await.unwrap();
    let same = newer.records.clone().unwrap();
    provider.apply(&batch(vec![change(&newer, same)])).await.unwrap();
    let before = fake.sets();

    let stale = batch(vec![
        change(&www, records("www.example.com.", &[("w", "192.0.2.80", 1)])),
        change(&read, records(API, &[("use1-a", "192.0.2.10", 1), ("use1-b", "192.0.2.11", 1)])),
    ]);
    let err = provider.apply(&stale).await.unwrap_err();
    assert!(matches!(err, ProviderError::Conflict(_)), "{err}");
    assert_eq!(fake.sets(), before, "www was not created either: one call, all or nothing");
}

#[tokio::test]
async fn throttling_is_classified_and_the_sdk_does_not_retry_by_itself() {
    let fake = FakeRoute53::start().await;
    let provider = provider(&fake).await;
    let read = provider.read(&name(API), RecordType::A).await.unwrap();
    let desired = records(API, &[("a", "192.0.2.1", 1)]);

    for fault in [Fault::Throttling, Fault::PriorRequestNotComplete] {
        let calls_before = fake.count(Op::ChangeResourceRecordSets);
        fake.fault(Op::ChangeResourceRecordSets, fault);
        let err = provider.apply(&batch(vec![change(&read, desired.clone())])).await.unwrap_err();
        assert_eq!(err, ProviderError::Throttled { retry_after: None });
        assert_eq!(fake.count(Op::ChangeResourceRecordSets), calls_before + 1, "exactly one request, no SDK retry");
    }

    let reads_before = fake.count(Op::ListResourceRecordSets);
    fake.fault(Op::ListResourceRecordSets, Fault::Throttling);
    let err = provider.read(&name(API), RecordType::A).await.unwrap_err();
    assert!(matches!(err, ProviderError::Throttled { .. }), "{err}");
    assert_eq!(fake.count(Op::ListResourceRecordSets), reads_before + 1);

    let calls_before = fake.count(Op::ChangeResourceRecordSets);
    fake.fault(Op::ChangeResourceRecordSets, Fault::Status(500, "InternalError"));
    let err = provider.apply(&batch(vec![change(&read, desired.clone())])).await.unwrap_err();
    assert!(matches!(err, ProviderError::Ambiguous(_)), "a 500 on a write may hide a landed change: {err}");
    assert_eq!(fake.count(Op::ChangeResourceRecordSets), calls_before + 1, "a 5xx is not retried either");

    fake.fault(Op::ChangeResourceRecordSets, Fault::Status(503, "ServiceUnavailable"));
    let err = provider.apply(&batch(vec![change(&read, desired.clone())])).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");

    fake.fault(Op::ChangeResourceRecordSets, Fault::Status(403, "AccessDenied"));
    let err = provider.apply(&batch(vec![change(&read, desired.clone())])).await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected(_)), "{err}");

    // After the faults the same change still applies: nothing half-done remained.
    provider.apply(&batch(vec![change(&read, desired)])).await.unwrap();
}

#[tokio::test]
async fn a_write_that_landed_but_timed_out_is_ambiguous_and_a_resend_reads_as_conflict() {
    let fake = FakeRoute53::start().await;
    let mut config = config(&fake);
    config.timeouts.operation = Duration::from_secs(3);
    let provider = Route53Provider::connect("route53-test", config).await.unwrap();
    let read = provider.read(&name(API), RecordType::A).await.unwrap();
    let desired = records(API, &[("a", "192.0.2.1", 10)]);
    let the_change = batch(vec![change(&read, desired.clone())]);

    fake.fault(Op::ChangeResourceRecordSets, Fault::LandThenHang(Duration::from_secs(60)));
    let started = Instant::now();
    let err = provider.apply(&the_change).await.unwrap_err();
    assert!(matches!(&err, ProviderError::Ambiguous(m) if m.contains("re-read")), "{err}");
    assert!(err.needs_reread());
    assert!(started.elapsed() < Duration::from_secs(30), "the operation timeout bounds the call");
    assert_eq!(fake.count(Op::ChangeResourceRecordSets), 1, "no SDK retry after the timeout");

    // The re-read settles it: the change is in place.
    let now = provider.read(&name(API), RecordType::A).await.unwrap();
    assert_eq!(now.records, Some(desired));
    assert_eq!(now.ownership, Some(ownership(1)));

    // Sending the same call again (what a blind retry would do) fails as a conflict.
    let err = provider.apply(&the_change).await.unwrap_err();
    assert!(matches!(err, ProviderError::Conflict(_)), "{err}");
}

#[tokio::test]
async fn a_write_that_cannot_connect_is_unavailable_not_ambiguous() {
    let fake = FakeRoute53::start().await;
    let provider = provider(&fake).await;
    let read = provider.read(&name(API), RecordType::A).await.unwrap();
    fake.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = provider.apply(&batch(vec![change(&read, records(API, &[("a", "192.0.2.1", 1)]))])).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "nothing was sent, so nothing can have landed: {err}");
}

#[tokio::test]
async fn a_name_holding_simple_records_is_read_as_unowned_answers_and_adopted_in_one_call() {
    let fake = FakeRoute53::start().await;
    let provider = provider(&fake).await;
    fake.put(Set {
        name: API.into(),
        rtype: "A".into(),
        set_id: None,
        weight: None,
        ttl: 60,
        values: vec!["192.0.2.99".into()],
        health_check_id: None,
    });
    let read = provider.read(&name(API), RecordType::A).await.unwrap();
    let answers = read.records.as_ref().unwrap().answers.clone();
    assert_eq!(answers, vec![Answer { set_id: None, value: "192.0.2.99".into(), weight: None }]);
    assert_eq!(read.ownership, None, "the enactor refuses this name unless the policy adopts it");

    // An adopting change (the enactor allowed it) swaps the simple set for weighted ones atomically.
    let desired = records(API, &[("a", "192.0.2.1", 1)]);
    provider.apply(&batch(vec![change(&read, desired.clone())])).await.unwrap();
    assert_eq!(fake.calls().len(), 1);
    assert_eq!(provider.read(&name(API), RecordType::A).await.unwrap().records, Some(desired));
}

#[tokio::test]
async fn simple_records_next_to_our_ownership_record_are_refused_as_changed_by_hand() {
    let fake = FakeRoute53::start().await;
    let provider = provider(&fake).await;
    publish_initial(&provider).await;
    // Someone replaced veer's weighted sets with a simple record set by hand.
    fake.remove_weighted(API);
    fake.put(Set {
        name: API.into(),
        rtype: "A".into(),
        set_id: None,
        weight: None,
        ttl: 60,
        values: vec!["192.0.2.99".into()],
        health_check_id: None,
    });
    let read = provider.read(&name(API), RecordType::A).await.unwrap();
    assert_eq!(read.ownership, Some(ownership(1)));
    let sent = fake.count(Op::ChangeResourceRecordSets);
    let err = provider.apply(&batch(vec![change(&read, records(API, &[("a", "192.0.2.1", 1)]))])).await.unwrap_err();
    assert!(matches!(&err, ProviderError::NotOwned(m) if m.contains("by hand")), "{err}");
    assert_eq!(fake.count(Op::ChangeResourceRecordSets), sent, "nothing sent");
}

#[tokio::test]
async fn a_simple_record_created_after_the_read_makes_the_write_a_conflict() {
    let fake = FakeRoute53::start().await;
    let provider = provider(&fake).await;
    let read = provider.read(&name(API), RecordType::A).await.unwrap();
    fake.put(Set {
        name: API.into(),
        rtype: "A".into(),
        set_id: None,
        weight: None,
        ttl: 60,
        values: vec!["192.0.2.99".into()],
        health_check_id: None,
    });
    let err = provider.apply(&batch(vec![change(&read, records(API, &[("a", "192.0.2.1", 1)]))])).await.unwrap_err();
    assert!(matches!(&err, ProviderError::Conflict(m) if m.contains("non-weighted")), "{err}");
}

#[tokio::test]
async fn a_foreign_ownership_record_is_reported_and_never_overwritten() {
    let fake = FakeRoute53::start().await;
    let provider = provider(&fake).await;
    fake.put(Set {
        name: "_veer.api.example.com.".into(),
        rtype: "TXT".into(),
        set_id: None,
        weight: None,
        ttl: 300,
        values: vec!["\"heritage=external-dns,owner=other\"".into()],
        health_check_id: None,
    });
    let read = provider.read(&name(API), RecordType::A).await.unwrap();
    assert_eq!(read.foreign_ownership.as_deref(), Some("\"heritage=external-dns,owner=other\""));
    let err = provider.apply(&batch(vec![change(&read, records(API, &[("a", "192.0.2.1", 1)]))])).await.unwrap_err();
    assert!(matches!(err, ProviderError::NotOwned(_)), "{err}");
    assert_eq!(fake.count(Op::ChangeResourceRecordSets), 0);

    // Another cluster's record decodes, and is refused too.
    let mut other = read.clone();
    other.foreign_ownership = None;
    other.ownership = Some(OwnershipRecord { owner: "prod-b".into(), ..ownership(4) });
    let err = provider.apply(&batch(vec![change(&other, records(API, &[("a", "192.0.2.1", 1)]))])).await.unwrap_err();
    assert!(matches!(&err, ProviderError::NotOwned(m) if m.contains("prod-b")), "{err}");
}

#[tokio::test]
async fn health_check_ids_are_passed_through_and_deleted_exactly() {
    let fake = FakeRoute53::start().await;
    let mut config = config(&fake);
    config.health_checks.insert("a".into(), "11111111-2222-3333-4444-555555555555".into());
    let provider = Route53Provider::connect("route53-test", config).await.unwrap();
    let read = provider.read(&name(API), RecordType::A).await.unwrap();
    provider
        .apply(&batch(vec![change(&read, records(API, &[("a", "192.0.2.1", 1), ("b", "192.0.2.2", 1)]))]))
        .await
        .unwrap();
    let a = fake.sets().into_iter().find(|s| s.set_id.as_deref() == Some("a")).unwrap();
    assert_eq!(a.health_check_id.as_deref(), Some("11111111-2222-3333-4444-555555555555"));
    // The exact DELETE must carry the health check id, or Route 53 refuses it.
    let read = provider.read(&name(API), RecordType::A).await.unwrap();
    provider
        .apply(&batch(vec![change(&read, records(API, &[("a", "192.0.2.1", 5), ("b", "192.0.2.2", 1)]))]))
        .await
        .unwrap();
    let a = fake.sets().into_iter().find(|s| s.set_id.as_deref() == Some("a")).unwrap();
    assert_eq!((a.weight, a.health_check_id.is_some()), (Some(5), true));
}

#[tokio::test]
async fn pagination_reads_every_weighted_set_of_a_name_and_stops_past_it() {
    let fake = FakeRoute53::start().await;
    let mut config = config(&fake);
    config.list_page_size = 100;
    let provider = Route53Provider::connect("route53-test", config).await.unwrap();
    let neighbour = |n: &str| Set {
        name: n.into(),
        rtype: "A".into(),
        set_id: None,
        weight: None,
        ttl: 60,
        values: vec!["198.51.100.1".into()],
        health_check_id: None,
    };
    fake.put(neighbour("aaa.example.com."));
    fake.put(neighbour("zzz.example.com."));
    fake.put(neighbour("sub.api.example.com."));
    fake.put(Set { rtype: "AAAA".into(), values: vec!["2001:db8::1".into()], ..neighbour(API) });
    let answers: Vec<(String, String, u32)> =
        (0..250).map(|i| (format!("e{i:03}"), format!("192.0.{}.{}", i / 200, i % 200 + 1), 1)).collect();
    let borrowed: Vec<(&str, &str, u32)> = answers.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), *c)).collect();
    let read = provider.read(&name(API), RecordType::A).await.unwrap();
    provider.apply(&batch(vec![change(&read, records(API, &borrowed))])).await.unwrap();

    let lists_before = fake.count(Op::ListResourceRecordSets);
    let read = provider.read(&name(API), RecordType::A).await.unwrap();
    assert_eq!(read.records, Some(records(API, &borrowed)));
    assert_eq!(read.ownership, Some(ownership(1)));
    // 250 sets at 100 per page: 3 pages, plus one call for the ownership record.
    assert_eq!(fake.count(Op::ListResourceRecordSets) - lists_before, 4);
}

#[tokio::test]
async fn batches_split_at_1000_records_without_splitting_a_name() {
    let fake = FakeRoute53::start().await;
    let provider = provider(&fake).await;
    let mut changes = Vec::new();
    for i in 0..600 {
        let n = format!("n{i:03}.example.com.");
        changes.push(change(&absent(&n), records(&n, &[("a", "192.0.2.1", 1)])));
    }
    provider.apply(&batch(changes)).await.unwrap();
    let calls = fake.calls();
    assert_eq!(calls.len(), 2, "2 records per name: 1200 records need two calls");
    assert_eq!(calls.iter().map(|c| c.records).collect::<Vec<_>>(), vec![1000, 200]);
    let mut all: Vec<String> = calls.iter().flat_map(|c| c.names.clone()).collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!((total, all.len()), (600, 600), "every name in exactly one call");
    let report = provider.last_apply().unwrap();
    assert_eq!((report.calls, report.names, report.cost.records), (2, 600, 1200));
}

#[tokio::test]
async fn batches_split_on_value_characters_and_an_oversized_name_is_refused_before_sending() {
    let fake = FakeRoute53::start().await;
    let mut config = config(&fake);
    config.batch_limits = BatchLimits { records_max: 1000, value_chars_max: 100 };
    let provider = Route53Provider::connect("route53-test", config).await.unwrap();
    let mut changes = Vec::new();
    for i in 0..4 {
        let n = format!("n{i}.example.com.");
        let read = provider.read(&name(&n), RecordType::A).await.unwrap();
        changes.push(change(&read, records(&n, &[("a", "192.0.2.1", 1), ("b", "192.0.2.2", 1)])));
    }
    provider.apply(&batch(changes)).await.unwrap();
    let calls = fake.calls();
    assert!(calls.len() > 1);
    assert!(calls.iter().all(|c| c.value_chars <= 100), "{calls:?}");
    assert_eq!(calls.len(), 4, "about 62 characters per name: one name per call");

    let n = "big.example.com.";
    let read = provider.read(&name(n), RecordType::A).await.unwrap();
    let many: Vec<(String, String)> = (0..40).map(|i| (format!("e{i}"), format!("192.0.2.{i}"))).collect();
    let borrowed: Vec<(&str, &str, u32)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str(), 1)).collect();
    let sent_before = fake.count(Op::ChangeResourceRecordSets);
    let err = provider.apply(&batch(vec![change(&read, records(n, &borrowed))])).await.unwrap_err();
    assert!(matches!(&err, ProviderError::Rejected(m) if m.contains("cannot be split")), "{err}");
    assert_eq!(fake.count(Op::ChangeResourceRecordSets), sent_before, "refused before anything was sent");
}

#[tokio::test]
async fn a_failure_after_an_earlier_call_landed_is_a_conflict_not_a_retryable_error() {
    let fake = FakeRoute53::start().await;
    let provider = provider(&fake).await;
    let mut changes = Vec::new();
    for i in 0..600 {
        let n = format!("n{i:03}.example.com.");
        changes.push(change(&absent(&n), records(&n, &[("a", "192.0.2.1", 1)])));
    }
    // The first call is served normally (a zero hang), the second is throttled.
    fake.fault(Op::ChangeResourceRecordSets, Fault::LandThenHang(Duration::ZERO));
    fake.fault(Op::ChangeResourceRecordSets, Fault::Throttling);
    let provider_batch = batch(changes);
    let err = provider.apply(&provider_batch).await.unwrap_err();
    assert!(matches!(&err, ProviderError::Conflict(m) if m.contains("1 of 2 calls landed")), "{err}");
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn insync_is_awaited_with_a_bounded_poll_and_its_time_reported() {
    let fake = FakeRoute53::start().await;
    fake.with(|s| s.pending_polls = 3);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let provider = provider(&fake).await.with_apply_observer(move |r| sink.lock().unwrap().push(r.clone()));
    let read = provider.read(&name(API), RecordType::A).await.unwrap();
    provider.apply(&batch(vec![change(&read, records(API, &[("a", "192.0.2.1", 1)]))])).await.unwrap();
    let report = provider.last_apply().unwrap();
    assert!(report.insync_after.is_some(), "{report:?}");
    assert_eq!(report.insync_polls, 4, "three PENDING answers, then INSYNC");
    eprintln!("INSYNC after {:?} with {} polls at a 10 ms mean interval", report.insync_after, report.insync_polls);
    assert_eq!(fake.count(Op::GetChange), 4);
    assert_eq!(seen.lock().unwrap().as_slice(), &[report]);

    // A change that never reaches INSYNC: the wait ends at its bound, and the write still counts.
    let fake = FakeRoute53::start().await;
    fake.with(|s| s.pending_polls = u32::MAX);
    let mut config = config(&fake);
    config.insync =
        InsyncWait { enabled: true, interval: Duration::from_millis(20), timeout: Duration::from_millis(300) };
    let provider = Route53Provider::connect("route53-test", config).await.unwrap();
    let read = provider.read(&name(API), RecordType::A).await.unwrap();
    let started = Instant::now();
    provider.apply(&batch(vec![change(&read, records(API, &[("a", "192.0.2.1", 1)]))])).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "bounded: {:?}", started.elapsed());
    let report = provider.last_apply().unwrap();
    assert_eq!(report.insync_after, None);
    assert!(report.insync_polls >= 2, "{report:?}");
}

/// Set in the child process that runs without any AWS credentials.
const NO_CREDENTIALS_CHILD: &str = "VEER_ROUTE53_NO_CREDENTIALS_CHILD";

/// The standard chain reads the process environment, which this crate cannot
/// change without `unsafe`: the test runs itself again with a clean environment.
#[tokio::test]
async fn missing_credentials_are_rejected_at_start_with_a_clear_message() {
    if std::env::var_os(NO_CREDENTIALS_CHILD).is_some() {
        let fake = FakeRoute53::start().await;
        let config = Route53Config { credentials: None, ..config(&fake) };
        let err = Route53Provider::connect("route53-test", config).await.unwrap_err();
        let veer_provider_route53::Route53Error::Lookup { source, .. } = &err else { panic!("{err}") };
        assert!(matches!(source, ProviderError::Rejected(_)), "not retryable: {source:?}");
        assert!(err.to_string().to_lowercase().contains("credentials"), "{err}");
        assert_eq!(fake.count(Op::ListHostedZonesByName), 0, "nothing unsigned was sent");
        println!("child checked: {err}");
        return;
    }
    let test = "missing_credentials_are_rejected_at_start_with_a_clear_message";
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.args([test, "--exact", "--nocapture", "--test-threads=1"]).env(NO_CREDENTIALS_CHILD, "1");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    let output = command
        .env("AWS_CONFIG_FILE", "/nonexistent/veer-test-aws-config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/veer-test-aws-credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("child checked"), "the child ran the check:\n{stdout}");
}

#[tokio::test]
async fn a_failover_of_1000_names_in_one_zone_takes_the_fewest_calls_the_limits_allow() {
    let fake = FakeRoute53::start().await;
    let provider = provider(&fake).await;
    let names: Vec<String> = (0..1000).map(|i| format!("n{i:04}.example.com.")).collect();
    let before: Vec<Change> = names
        .iter()
        .map(|n| change(&absent(n), records(n, &[("use1", "192.0.2.1", 100), ("euw1", "198.51.100.1", 0)])))
        .collect();
    provider.apply(&batch(before)).await.unwrap();
    let published: Vec<Observed> = names
        .iter()
        .map(|n| Observed {
            records: Some(records(n, &[("use1", "192.0.2.1", 100), ("euw1", "198.51.100.1", 0)])),
            ownership: Some(ownership(1)),
            ..absent(n)
        })
        .collect();
    const OPS: [Op; 5] = [
        Op::ListHostedZonesByName,
        Op::GetHostedZone,
        Op::ListResourceRecordSets,
        Op::ChangeResourceRecordSets,
        Op::GetChange,
    ];
    let counts = || OPS.map(|op| fake.count(op));
    let all_before = counts();
    let calls_before = fake.count(Op::ChangeResourceRecordSets);

    // Fail every name over from use1 to euw1: 2 weighted sets + the ownership TXT, deleted and created.
    let failover: Vec<Change> = published
        .iter()
        .map(|o| change(o, records(o.name.as_str(), &[("use1", "192.0.2.1", 0), ("euw1", "198.51.100.1", 100)])))
        .collect();
    let started = Instant::now();
    provider.apply(&batch(failover)).await.unwrap();
    let elapsed = started.elapsed();
    let calls = fake.count(Op::ChangeResourceRecordSets) - calls_before;
    // 6 records per name, names never split: 166 names per call, so 1000 names need 7 calls.
    assert_eq!(calls, 1000usize.div_ceil(1000 / 6));
    let report = provider.last_apply().unwrap();
    assert_eq!((report.calls, report.cost.records), (7, 6000));
    eprintln!(
        "failover of 1000 names: {calls} calls, {elapsed:?} against the fake; \
         under a 5 calls/s budget (burst 5) the calls alone need at least {:?}",
        Duration::from_millis(((calls.saturating_sub(5)) as u64) * 200)
    );
    // The figure `scripts/bench report` reads (provider calls per 1 000-record failover).
    let per_op: serde_json::Map<String, serde_json::Value> =
        OPS.iter().zip(counts()).zip(all_before).map(|((op, n), b)| (format!("{op:?}"), (n - b).into())).collect();
    println!(
        "BENCH_JSON {}",
        serde_json::json!({
            "bench": "route53_failover",
            "names": names.len(),
            "records": report.cost.records,
            "batch_records_max": BatchLimits::default().records_max,
            "change_calls": calls,
            "calls_total": per_op.values().filter_map(serde_json::Value::as_u64).sum::<u64>(),
            "calls_by_operation": per_op,
            "elapsed_s": elapsed.as_secs_f64(),
        })
    );
}

#[tokio::test]
async fn a_throttled_insync_poll_backs_off_and_the_wait_still_completes() {
    let fake = FakeRoute53::start().await;
    fake.with(|s| s.pending_polls = 1);
    fake.fault(Op::GetChange, Fault::Throttling);
    let provider = provider(&fake).await;
    let read = provider.read(&name(API), RecordType::A).await.unwrap();
    provider.apply(&batch(vec![change(&read, records(API, &[("a", "192.0.2.1", 1)]))])).await.unwrap();
    let report = provider.last_apply().unwrap();
    assert_eq!(report.insync_polls, 3, "throttled, PENDING, INSYNC: {report:?}");
    assert!(report.insync_after.is_some());
}
