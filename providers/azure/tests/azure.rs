//! The Azure DNS provider against a stateful fake of ARM record sets and the token endpoint.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::fake::{CLIENT_SECRET, Fake, start_fake, start_fake_with};
use veer_provider::conformance::ApiFake;
use veer_provider::{
    Answer, Change, ChangeBatch, Observed, OwnershipRecord, Provider, ProviderError, RecordName, RecordSet, RecordType,
};
use veer_provider_azure::{AzureCredential, AzureProvider};

fn name(n: &str) -> RecordName {
    RecordName::parse(n).unwrap()
}

fn ownership(owner: &str, generation: u64) -> OwnershipRecord {
    OwnershipRecord { owner: owner.into(), generation, epoch: 3, policy_hash: "ab12".into() }
}

fn set(n: &str, values: &[&str]) -> RecordSet {
    let answers = values.iter().map(|v| Answer { set_id: None, value: v.to_string(), weight: None }).collect();
    RecordSet::new(name(n), RecordType::A, 60, answers)
}

/// The one place that builds a `Change`, so that a new field in the core model is one edit.
fn change(expected: Observed, desired: RecordSet, ownership: OwnershipRecord) -> Change {
    Change::new(expected, desired, ownership)
}

fn batch(changes: Vec<Change>) -> ChangeBatch {
    ChangeBatch { zone: name("example.com."), changes }
}

async fn publish(p: &AzureProvider, n: &str, values: &[&str], generation: u64) -> Result<(), ProviderError> {
    let before = p.read(&name(n), RecordType::A).await?;
    p.apply(&batch(vec![change(before, set(n, values), ownership("prod-a", generation))])).await
}

fn puts(fake: &Fake) -> Vec<(String, Option<String>, Option<String>)> {
    fake.log().into_iter().filter(|l| l.method == "PUT").map(|l| (l.path, l.if_match, l.if_none_match)).collect()
}

#[tokio::test]
async fn a_name_round_trips_through_read_apply_read_with_conditional_puts() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    let first = p.read(&api, RecordType::A).await.unwrap();
    assert_eq!(first.records, None);
    assert_eq!(first.ownership, None);

    p.apply(&batch(vec![change(
        first,
        set("api.example.com.", &["192.0.2.10", "192.0.2.11"]),
        ownership("prod-a", 1),
    )]))
    .await
    .unwrap();
    let second = p.read(&api, RecordType::A).await.unwrap();
    assert_eq!(second.records, Some(set("api.example.com.", &["192.0.2.10", "192.0.2.11"])));
    assert_eq!(second.ownership, Some(ownership("prod-a", 1)));

    p.apply(&batch(vec![change(
        second,
        set("api.example.com.", &["192.0.2.11", "198.51.100.7"]),
        ownership("prod-a", 2),
    )]))
    .await
    .unwrap();
    let third = p.read(&api, RecordType::A).await.unwrap();
    assert_eq!(third.records, Some(set("api.example.com.", &["192.0.2.11", "198.51.100.7"])));
    assert_eq!(third.ownership, Some(ownership("prod-a", 2)));

    let puts = puts(&fake);
    assert_eq!(puts.len(), 4);
    // Creation: If-None-Match on both sets, the ownership record first.
    assert!(puts[0].0.ends_with("/TXT/_veer.api") && puts[0].2.as_deref() == Some("*"));
    assert!(puts[1].0.ends_with("/A/api") && puts[1].2.as_deref() == Some("*"));
    // Update: If-Match with the etags read.
    assert!(puts[2].0.ends_with("/TXT/_veer.api") && puts[2].1.is_some());
    assert!(puts[3].0.ends_with("/A/api") && puts[3].1.is_some());
    let log = fake.log();
    assert!(
        log.iter()
            .filter(|l| !l.path.ends_with("/token"))
            .all(|l| l.authorization.as_deref() == Some("Bearer azure-token-1"))
    );
    assert!(log.iter().filter(|l| !l.path.ends_with("/token")).all(|l| l.query == "api-version=2018-05-01"));
    assert_eq!(log.iter().filter(|l| l.path.ends_with("/token")).count(), 1, "the token is cached");
}

#[tokio::test]
async fn a_stale_ownership_record_is_a_conflict_and_no_answer_is_touched() {
    let (fake, p) = start_fake().await;
    publish(&p, "api.example.com.", &["192.0.2.10"], 1).await.unwrap();
    let api = name("api.example.com.");
    let read = p.read(&api, RecordType::A).await.unwrap();
    // The name is handed to another cluster after our read.
    fake.set_txt(&api.ownership_name(), Some("owner=prod-b;gen=2;epoch=9;policy=ff"));
    let result =
        p.apply(&batch(vec![change(read, set("api.example.com.", &["192.0.2.99"]), ownership("prod-a", 2))])).await;
    assert!(matches!(result, Err(ProviderError::Conflict(_))), "{result:?}");
    assert_eq!(fake.values(&api, "A"), vec!["192.0.2.10"]);
    assert_eq!(fake.values(&api.ownership_name(), "TXT"), vec!["owner=prod-b;gen=2;epoch=9;policy=ff"]);
}

#[tokio::test]
async fn answers_changed_between_read_and_apply_are_a_conflict_that_leaves_them_in_place() {
    let (fake, p) = start_fake().await;
    publish(&p, "api.example.com.", &["192.0.2.10"], 1).await.unwrap();
    let api = name("api.example.com.");
    let read = p.read(&api, RecordType::A).await.unwrap();
    fake.set_answers(&api, RecordType::A, &["203.0.113.9"]);
    let result =
        p.apply(&batch(vec![change(read, set("api.example.com.", &["192.0.2.99"]), ownership("prod-a", 2))])).await;
    assert!(matches!(result, Err(ProviderError::Conflict(_))), "{result:?}");
    // Never half-applied into emptiness: the other writer's answers stand, and the
    // next read shows a generation whose answers are not ours to re-plan from.
    assert_eq!(fake.values(&api, "A"), vec!["203.0.113.9"]);
    let now = p.read(&api, RecordType::A).await.unwrap();
    assert_eq!(now.records, Some(set("api.example.com.", &["203.0.113.9"])));
}

#[tokio::test]
async fn a_record_set_created_by_someone_else_fails_the_create_precondition() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    let read = p.read(&api, RecordType::A).await.unwrap();
    fake.with(|s| {
        s.before_put = Some(Box::new(|s| s.put_set("TXT", "_veer.api", &["owner=prod-b;gen=1;epoch=1;policy=x"], 300)))
    });
    let result =
        p.apply(&batch(vec![change(read, set("api.example.com.", &["192.0.2.1"]), ownership("prod-a", 1))])).await;
    assert!(matches!(result, Err(ProviderError::Conflict(_))), "{result:?}");
    assert!(fake.values(&api, "A").is_empty(), "no answers were written for a name claimed by another");
}

#[tokio::test]
async fn throttling_is_reported_with_the_retry_after_hint() {
    let (fake, p) = start_fake().await;
    fake.with(|s| s.throttle = Some((1, 12)));
    let result = p.read(&name("api.example.com."), RecordType::A).await;
    assert_eq!(result, Err(ProviderError::Throttled { retry_after: Some(Duration::from_secs(12)) }));
    assert!(p.read(&name("api.example.com."), RecordType::A).await.is_ok());
}

#[tokio::test]
async fn a_connection_dropped_after_the_write_landed_is_ambiguous_and_a_re_read_shows_the_write() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    let read = p.read(&api, RecordType::A).await.unwrap();
    fake.with(|s| s.drop_after_put_of = Some("A".into()));
    let result =
        p.apply(&batch(vec![change(read, set("api.example.com.", &["192.0.2.10"]), ownership("prod-a", 1))])).await;
    assert!(matches!(result, Err(ProviderError::Ambiguous(_))), "{result:?}");
    let now = p.read(&api, RecordType::A).await.unwrap();
    assert_eq!(now.ownership, Some(ownership("prod-a", 1)));
    assert_eq!(now.records, Some(set("api.example.com.", &["192.0.2.10"])));
}

#[tokio::test]
async fn a_server_error_on_a_write_is_ambiguous() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    let read = p.read(&api, RecordType::A).await.unwrap();
    fake.with(|s| s.fail_next_put = Some(500));
    let result =
        p.apply(&batch(vec![change(read, set("api.example.com.", &["192.0.2.10"]), ownership("prod-a", 1))])).await;
    assert!(matches!(result, Err(ProviderError::Ambiguous(_))), "{result:?}");
}

#[tokio::test]
async fn a_change_with_no_live_answers_is_refused_before_any_request() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    let expected =
        Observed { name: api.clone(), rtype: RecordType::A, records: None, ownership: None, foreign_ownership: None };
    let zero = RecordSet::new(
        api.clone(),
        RecordType::A,
        60,
        vec![Answer { set_id: None, value: "192.0.2.1".into(), weight: Some(0) }],
    );
    let result = p.apply(&batch(vec![change(expected, zero, ownership("prod-a", 1))])).await;
    assert_eq!(result, Err(ProviderError::WouldEmpty(api.to_string())));
    assert!(fake.log().is_empty());
}

#[tokio::test]
async fn the_token_is_refreshed_before_it_expires() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    p.read(&api, RecordType::A).await.unwrap();
    // 3599 s lifetime, refreshed 300 s ahead: still valid at 3298 s.
    fake.advance(Duration::from_secs(3298));
    p.read(&api, RecordType::A).await.unwrap();
    assert_eq!(fake.with(|s| s.issued.len()), 1);
    fake.advance(Duration::from_secs(2));
    p.read(&api, RecordType::A).await.unwrap();
    assert_eq!(fake.with(|s| s.issued.len()), 2);
    let last = fake.log().into_iter().last().unwrap();
    assert_eq!(last.authorization.as_deref(), Some("Bearer azure-token-2"));
}

#[tokio::test]
async fn workload_identity_sends_the_current_federated_token_and_rereads_it_on_refresh() {
    let dir = std::env::temp_dir().join(format!("veer-azure-wi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("azure-identity-token");
    std::fs::write(&file, "federated-one\n").unwrap();
    let token_file = file.clone();
    let (fake, p) = start_fake_with(move |c| {
        c.credential = AzureCredential::WorkloadIdentity {
            tenant_id: support::fake::TENANT.into(),
            client_id: support::fake::CLIENT_ID.into(),
            token_file,
        }
    })
    .await;
    fake.with(|s| s.federated_assertion = Some("federated-one".into()));
    let api = name("api.example.com.");
    p.read(&api, RecordType::A).await.unwrap();
    std::fs::write(&file, "federated-two\n").unwrap();
    fake.with(|s| s.federated_assertion = Some("federated-two".into()));
    fake.advance(Duration::from_secs(3400));
    p.read(&api, RecordType::A).await.unwrap();
    let assertions: Vec<String> = fake.log().iter().filter_map(|l| l.form.get("client_assertion").cloned()).collect();
    assert_eq!(assertions, vec!["federated-one", "federated-two"]);
    assert!(fake.log().iter().all(|l| !l.form.contains_key("client_secret")));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn credentials_never_appear_in_debug_output_errors_or_logs() {
    let logs = veer_provider_testbed::LogCapture::start();
    let (fake, p) = start_fake().await;
    publish(&p, "api.example.com.", &["192.0.2.10"], 1).await.unwrap();
    fake.advance(Duration::from_secs(4000));
    fake.with(|s| s.client_secret = "a-different-secret".into());
    let error = p.read(&name("api.example.com."), RecordType::A).await.unwrap_err();
    assert!(matches!(error, ProviderError::Rejected(_)), "{error:?}");
    assert!(error.to_string().contains("AADSTS7000215"), "{error}");
    for text in [format!("{error}"), format!("{error:?}"), format!("{p:?}")] {
        assert!(!text.contains(CLIENT_SECRET), "the secret leaked: {text}");
    }
    let logged = logs.text();
    assert!(logged.contains("fetched a new access token"), "{logged}");
    assert!(!logged.contains(CLIENT_SECRET) && !logged.contains("azure-token-1"), "a credential was logged: {logged}");
}

/// JSON shape: object keys (recursively) and value kinds, ignoring values.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::String(_) => Value::String(String::new()),
        Value::Number(_) => Value::from(0),
        Value::Bool(_) => Value::Bool(false),
        Value::Null => Value::Null,
    }
}

#[tokio::test]
async fn the_fake_answers_in_the_recorded_shapes() {
    let (fake, p) = start_fake().await;
    publish(&p, "api.example.com.", &["192.0.2.11", "198.51.100.7"], 1).await.unwrap();
    let client = reqwest::Client::new();
    let base = format!(
        "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/dnsZones/example.com",
        fake.endpoint(),
        support::fake::SUBSCRIPTION,
        support::fake::GROUP
    );
    for (path, fixture) in [
        ("A/api", include_str!("fixtures/recordset_a.json")),
        ("TXT/_veer.api", include_str!("fixtures/recordset_txt.json")),
    ] {
        let got: Value = client
            .get(format!("{base}/{path}?api-version=2018-05-01"))
            .bearer_auth("azure-token-1")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(shape(&got), shape(&serde_json::from_str(fixture).unwrap()), "{path}");
    }
    let sent = fake.log().into_iter().find(|l| l.method == "PUT" && l.path.ends_with("/A/api")).unwrap().body.unwrap();
    let fixture: Value = serde_json::from_str(include_str!("fixtures/put_request_a.json")).unwrap();
    assert_eq!(shape(&sent), shape(&fixture));
}

#[tokio::test]
async fn a_missing_zone_is_a_rejection_not_an_empty_name() {
    let (_fake, p) = start_fake_with(|c| c.zones = vec![name("other.example.")]).await;
    let result = p.read(&name("api.other.example."), RecordType::A).await;
    match result {
        Err(ProviderError::Rejected(why)) => assert!(why.contains("ResourceNotFound"), "{why}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
}
