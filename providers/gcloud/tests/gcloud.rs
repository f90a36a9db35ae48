//! The Cloud DNS provider against a stateful fake of Cloud DNS v1 and Google's token endpoints.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::fake::{Fake, start_fake, start_fake_with};
use veer_provider::conformance::ApiFake;
use veer_provider::{
    Answer, Change, ChangeBatch, Observed, OwnershipRecord, Provider, ProviderError, RecordName, RecordSet, RecordType,
};
use veer_provider_gcloud::{GcloudConfig, GcloudCredential, GcloudProvider, ServiceAccountKey};

fn name(n: &str) -> RecordName {
    RecordName::parse(n).unwrap()
}

fn ownership(owner: &str, generation: u64) -> OwnershipRecord {
    OwnershipRecord { owner: owner.into(), generation, epoch: 3, policy_hash: "ab12".into() }
}

fn weighted(n: &str, values: &[(&str, u32)]) -> RecordSet {
    let answers = values.iter().map(|(v, w)| Answer { set_id: None, value: v.to_string(), weight: Some(*w) }).collect();
    RecordSet::new(name(n), RecordType::A, 30, answers)
}

/// The one place that builds a `Change`, so that a new field in the core model is one edit.
fn change(expected: Observed, desired: RecordSet, ownership: OwnershipRecord) -> Change {
    Change::new(expected, desired, ownership)
}

fn batch(changes: Vec<Change>) -> ChangeBatch {
    ChangeBatch { zone: name("example.com."), changes }
}

async fn publish(p: &GcloudProvider, n: &str, values: &[(&str, u32)], generation: u64) -> Result<(), ProviderError> {
    let before = p.read(&name(n), RecordType::A).await?;
    p.apply(&batch(vec![change(before, weighted(n, values), ownership("prod-a", generation))])).await
}

fn change_bodies(fake: &Fake) -> Vec<Value> {
    fake.log()
        .into_iter()
        .filter(|l| l.method == "POST" && l.path.ends_with("/changes"))
        .filter_map(|l| l.body)
        .collect()
}

#[tokio::test]
async fn a_weighted_name_round_trips_through_read_apply_read() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    let first = p.read(&api, RecordType::A).await.unwrap();
    assert_eq!((first.records.clone(), first.ownership.clone()), (None, None));

    let desired = weighted("api.example.com.", &[("192.0.2.10", 70), ("198.51.100.7", 30), ("203.0.113.5", 0)]);
    p.apply(&batch(vec![change(first, desired.clone(), ownership("prod-a", 1))])).await.unwrap();
    let second = p.read(&api, RecordType::A).await.unwrap();
    assert_eq!(second.records, Some(desired));
    assert_eq!(second.ownership, Some(ownership("prod-a", 1)));

    let desired = weighted("api.example.com.", &[("192.0.2.10", 20), ("198.51.100.7", 80)]);
    p.apply(&batch(vec![change(second, desired.clone(), ownership("prod-a", 2))])).await.unwrap();
    let third = p.read(&api, RecordType::A).await.unwrap();
    assert_eq!(third.records, Some(desired));
    assert_eq!(third.ownership, Some(ownership("prod-a", 2)));

    let bodies = change_bodies(&fake);
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["deletions"].as_array().unwrap().len(), 0);
    assert_eq!(bodies[1]["deletions"].as_array().unwrap().len(), 2, "answers and ownership deleted exactly as read");
    let items = &bodies[1]["additions"][0]["routingPolicy"]["wrr"]["items"];
    assert_eq!(items[1]["weight"], 80.0);
    assert_eq!(items[1]["rrdatas"][0], "198.51.100.7");
    let api_calls: Vec<_> = fake.log().into_iter().filter(|l| l.path.starts_with("/dns/v1/")).collect();
    assert!(api_calls.iter().all(|l| l.authorization.as_deref() == Some("Bearer gcp-token-1")));
    assert_eq!(api_calls.iter().filter(|l| l.path.ends_with("/managedZones")).count(), 1, "zone looked up once");
}

#[tokio::test]
async fn answers_changed_between_read_and_apply_fail_the_exact_match_deletion_and_nothing_changes() {
    let (fake, p) = start_fake().await;
    publish(&p, "api.example.com.", &[("192.0.2.10", 100)], 1).await.unwrap();
    let api = name("api.example.com.");
    let read = p.read(&api, RecordType::A).await.unwrap();
    fake.set_answers(&api, RecordType::A, &["203.0.113.9"]);
    let txt_before = fake.rrset(&api.ownership_name(), "TXT");

    let result = p
        .apply(&batch(vec![change(read, weighted("api.example.com.", &[("192.0.2.99", 100)]), ownership("prod-a", 2))]))
        .await;
    match result {
        Err(ProviderError::Conflict(why)) => assert!(why.contains("Precondition not met"), "{why}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(fake.rrset(&api, "A").unwrap()["rrdatas"][0], "203.0.113.9");
    assert_eq!(fake.rrset(&api.ownership_name(), "TXT"), txt_before, "the ownership record is untouched");
}

#[tokio::test]
async fn another_writer_inside_the_window_makes_the_whole_change_a_conflict() {
    let (fake, p) = start_fake().await;
    publish(&p, "api.example.com.", &[("192.0.2.10", 100)], 1).await.unwrap();
    let api = name("api.example.com.");
    let read = p.read(&api, RecordType::A).await.unwrap();
    fake.with(|s| {
        s.before_change = Some(Box::new(|s| {
            s.put_plain("_veer.api.example.com.", "TXT", &["\"owner=prod-b;gen=2;epoch=9;policy=ff\"".into()], 300)
        }))
    });
    let result = p
        .apply(&batch(vec![change(read, weighted("api.example.com.", &[("192.0.2.99", 100)]), ownership("prod-a", 2))]))
        .await;
    assert!(matches!(result, Err(ProviderError::Conflict(_))), "{result:?}");
    let items = fake.rrset(&api, "A").unwrap()["routingPolicy"]["wrr"]["items"].clone();
    assert_eq!(items[0]["rrdatas"][0], "192.0.2.10", "the answers are the old ones, never empty");
}

#[tokio::test]
async fn a_set_created_by_someone_else_is_a_conflict_on_the_addition() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    let read = p.read(&api, RecordType::A).await.unwrap();
    fake.with(|s| {
        s.before_change = Some(Box::new(|s| s.put_plain("api.example.com.", "A", &["203.0.113.1".into()], 60)))
    });
    let result = p
        .apply(&batch(vec![change(read, weighted("api.example.com.", &[("192.0.2.1", 100)]), ownership("prod-a", 1))]))
        .await;
    match result {
        Err(ProviderError::Conflict(why)) => assert!(why.contains("already exists"), "{why}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(fake.rrset(&api.ownership_name(), "TXT").is_none());
}

#[tokio::test]
async fn throttling_is_reported_with_the_retry_after_hint_for_429_and_403_rate_limits() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    fake.with(|s| s.throttle = Some((1, 9)));
    assert_eq!(
        p.read(&api, RecordType::A).await,
        Err(ProviderError::Throttled { retry_after: Some(Duration::from_secs(9)) })
    );
    fake.with(|s| {
        s.throttle = Some((1, 4));
        s.throttle_as_403 = true;
    });
    assert_eq!(
        p.read(&api, RecordType::A).await,
        Err(ProviderError::Throttled { retry_after: Some(Duration::from_secs(4)) })
    );
    assert!(p.read(&api, RecordType::A).await.is_ok());
}

#[tokio::test]
async fn a_connection_dropped_after_the_change_landed_is_ambiguous_and_a_re_read_shows_the_write() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    let read = p.read(&api, RecordType::A).await.unwrap();
    fake.with(|s| s.drop_next_change_response = true);
    let desired = weighted("api.example.com.", &[("192.0.2.10", 100)]);
    let result = p.apply(&batch(vec![change(read, desired.clone(), ownership("prod-a", 1))])).await;
    assert!(matches!(result, Err(ProviderError::Ambiguous(_))), "{result:?}");
    let now = p.read(&api, RecordType::A).await.unwrap();
    assert_eq!((now.records, now.ownership), (Some(desired), Some(ownership("prod-a", 1))));
}

#[tokio::test]
async fn a_server_error_on_the_change_is_ambiguous() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    let read = p.read(&api, RecordType::A).await.unwrap();
    fake.with(|s| s.fail_next_change = Some(503));
    let result = p
        .apply(&batch(vec![change(read, weighted("api.example.com.", &[("192.0.2.1", 1)]), ownership("prod-a", 1))]))
        .await;
    assert!(matches!(result, Err(ProviderError::Ambiguous(_))), "{result:?}");
}

#[tokio::test]
async fn a_pending_change_is_polled_until_done() {
    let (fake, p) = start_fake().await;
    fake.with(|s| s.polls_until_done = 3);
    publish(&p, "api.example.com.", &[("192.0.2.10", 100)], 1).await.unwrap();
    let polls = fake.log().iter().filter(|l| l.method == "GET" && l.path.contains("/changes/")).count();
    assert_eq!(polls, 3);
}

#[tokio::test]
async fn a_change_that_stays_pending_beyond_the_poll_bound_is_ambiguous() {
    let (fake, p) = start_fake().await;
    fake.with(|s| s.polls_until_done = u32::MAX);
    let result = publish(&p, "api.example.com.", &[("192.0.2.10", 100)], 1).await;
    assert!(matches!(result, Err(ProviderError::Ambiguous(_))), "{result:?}");
    let polls = fake.log().iter().filter(|l| l.method == "GET" && l.path.contains("/changes/")).count();
    assert_eq!(polls, 5, "bounded by poll_attempts_max");
}

#[tokio::test]
async fn reads_follow_every_page_of_the_listing() {
    let (fake, p) = start_fake_with(|c| c.page_size = 1).await;
    let api = name("api.example.com.");
    fake.set_answers(&api, RecordType::AAAA, &["2001:db8::1"]);
    fake.set_answers(&api, RecordType::A, &["192.0.2.1", "192.0.2.2"]);
    let read = p.read(&api, RecordType::A).await.unwrap();
    let answers: Vec<String> = read.records.unwrap().answers.into_iter().map(|a| a.value).collect();
    assert_eq!(answers, vec!["192.0.2.1", "192.0.2.2"]);
    let pages: Vec<String> = fake
        .log()
        .iter()
        .filter(|l| l.path.ends_with("/rrsets") && l.query.contains("name=api.example.com."))
        .map(|l| l.query.clone())
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[1].contains("pageToken=1") && pages[1].contains("maxResults=1"));
}

#[tokio::test]
async fn a_change_with_no_live_answers_is_refused_before_any_request() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    let expected =
        Observed { name: api.clone(), rtype: RecordType::A, records: None, ownership: None, foreign_ownership: None };
    for desired in
        [weighted("api.example.com.", &[]), weighted("api.example.com.", &[("192.0.2.1", 0), ("192.0.2.2", 0)])]
    {
        let result = p.apply(&batch(vec![change(expected.clone(), desired, ownership("prod-a", 1))])).await;
        assert_eq!(result, Err(ProviderError::WouldEmpty(api.to_string())));
    }
    assert!(fake.log().is_empty());
}

#[tokio::test]
async fn the_token_is_refreshed_before_it_expires() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    p.read(&api, RecordType::A).await.unwrap();
    fake.advance(Duration::from_secs(3298));
    p.read(&api, RecordType::A).await.unwrap();
    assert_eq!(fake.with(|s| s.issued.len()), 1);
    fake.advance(Duration::from_secs(2));
    p.read(&api, RecordType::A).await.unwrap();
    assert_eq!(fake.with(|s| s.issued.len()), 2);
    assert_eq!(fake.log().last().unwrap().authorization.as_deref(), Some("Bearer gcp-token-2"));
}

#[tokio::test]
async fn the_metadata_server_supplies_tokens_when_configured() {
    let (fake, p) = start_fake_with(|_| {}).await;
    drop(p);
    let endpoint = fake.endpoint();
    let mut config = GcloudConfig::new(
        "gcloud-wi",
        support::fake::PROJECT,
        vec![name("example.com.")],
        GcloudCredential::MetadataServer { endpoint: endpoint.clone() },
    );
    config.endpoint = format!("{endpoint}/dns/v1");
    let p = GcloudProvider::new(config).unwrap();
    p.read(&name("api.example.com."), RecordType::A).await.unwrap();
    let log = fake.log();
    let token_call = log.iter().find(|l| l.path.contains("computeMetadata")).expect("a metadata token request");
    assert_eq!(token_call.metadata_flavor.as_deref(), Some("Google"));
    assert!(token_call.query.contains("scopes="));
    assert!(log.iter().filter(|l| l.path.starts_with("/dns/v1/")).all(|l| l.authorization.is_some()));
}

#[tokio::test]
async fn the_private_key_never_appears_in_debug_output_errors_or_logs() {
    let logs = veer_provider_testbed::LogCapture::start();
    let key = ServiceAccountKey::from_json(support::fake::KEY_FILE).unwrap();
    let marker = key.private_key_id.clone().unwrap();
    let pem_line = support::fake::KEY_FILE.lines().find(|l| l.contains("private_key\"")).unwrap();
    let secret_fragment: String = pem_line.chars().skip(60).take(40).collect();
    let (fake, p) = start_fake().await;
    publish(&p, "api.example.com.", &[("192.0.2.10", 100)], 1).await.unwrap();
    fake.advance(Duration::from_secs(4000));
    // The fake stops accepting the assertion: the error names the reason, not the key.
    fake.with(|s| s.token_uri = "https://elsewhere.invalid/token".into());
    let error = p.read(&name("api.example.com."), RecordType::A).await.unwrap_err();
    assert!(matches!(error, ProviderError::Rejected(_)), "{error:?}");
    assert!(error.to_string().contains("invalid_grant"), "{error}");
    for text in [format!("{error}"), format!("{p:?}"), format!("{key:?}")] {
        assert!(!text.contains(&secret_fragment), "the key leaked: {text}");
        assert!(!text.contains("BEGIN PRIVATE KEY"), "the key leaked: {text}");
    }
    assert!(format!("{key:?}").contains(&marker), "the key id is fine to show");
    let logged = logs.text();
    assert!(logged.contains("fetched a new access token") && logged.contains("sending changes.create"), "{logged}");
    assert!(!logged.contains(&secret_fragment) && !logged.contains("gcp-token-1"), "a credential was logged: {logged}");
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
async fn the_fake_and_the_provider_speak_the_recorded_shapes() {
    let (fake, p) = start_fake_with(|c| c.page_size = 1).await;
    fake.with(|s| s.polls_until_done = 1);
    publish(&p, "api.example.com.", &[("192.0.2.10", 100)], 3).await.unwrap();
    publish(&p, "api.example.com.", &[("192.0.2.10", 70), ("198.51.100.7", 30)], 4).await.unwrap();
    fake.set_answers(&name("api.example.com."), RecordType::AAAA, &["2001:db8::1"]);
    let log = fake.log();
    let fixture = |text: &str| -> Value { serde_json::from_str(text).unwrap() };

    let sent = change_bodies(&fake).pop().unwrap();
    let expected = fixture(include_str!("fixtures/change_create_request.json"));
    assert_eq!(shape(&sent), shape(&expected));
    assert_eq!(shape(&sent["deletions"][1]), shape(&expected["deletions"][1]));

    let client = reqwest::Client::new();
    let token = format!("gcp-token-{}", fake.with(|s| s.issued.len()));
    let base = format!("{}/dns/v1/projects/{}", fake.endpoint(), support::fake::PROJECT);
    let get = |url: String| client.get(url).bearer_auth(&token).send();
    let zones: Value = get(format!("{base}/managedZones?dnsName=example.com.")).await.unwrap().json().await.unwrap();
    assert_eq!(shape(&zones), shape(&fixture(include_str!("fixtures/managed_zones_list.json"))));
    let page: Value = get(format!("{base}/managedZones/example-com/rrsets?name=api.example.com.&maxResults=1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shape(&page), shape(&fixture(include_str!("fixtures/rrsets_list_page.json"))));
    assert!(log.iter().any(|l| l.path.ends_with("/changes/2")));
}

#[tokio::test]
async fn a_batch_over_several_names_is_all_or_nothing() {
    let (fake, p) = start_fake().await;
    publish(&p, "api.example.com.", &[("192.0.2.10", 100)], 1).await.unwrap();
    publish(&p, "www.example.com.", &[("192.0.2.20", 100)], 1).await.unwrap();
    let api = p.read(&name("api.example.com."), RecordType::A).await.unwrap();
    let www = p.read(&name("www.example.com."), RecordType::A).await.unwrap();
    fake.set_answers(&name("www.example.com."), RecordType::A, &["203.0.113.7"]);
    let result = p
        .apply(&batch(vec![
            change(api, weighted("api.example.com.", &[("192.0.2.11", 100)]), ownership("prod-a", 2)),
            change(www, weighted("www.example.com.", &[("192.0.2.21", 100)]), ownership("prod-a", 2)),
        ]))
        .await;
    assert!(matches!(result, Err(ProviderError::Conflict(_))), "{result:?}");
    let api_now = p.read(&name("api.example.com."), RecordType::A).await.unwrap();
    assert_eq!(
        api_now.records,
        Some(weighted("api.example.com.", &[("192.0.2.10", 100)])),
        "the first name is untouched"
    );
    assert_eq!(api_now.ownership, Some(ownership("prod-a", 1)));
}

#[tokio::test]
async fn a_batch_larger_than_the_change_quota_is_refused_before_any_request() {
    let (fake, p) = start_fake_with(|c| c.batch_records_max = 2).await;
    let changes = ["a.example.com.", "b.example.com."]
        .iter()
        .map(|n| {
            let expected = Observed {
                name: name(n),
                rtype: RecordType::A,
                records: None,
                ownership: None,
                foreign_ownership: None,
            };
            change(expected, weighted(n, &[("192.0.2.1", 1)]), ownership("prod-a", 1))
        })
        .collect();
    let result = p.apply(&batch(changes)).await;
    assert!(matches!(result, Err(ProviderError::Rejected(_))), "{result:?}");
    assert!(fake.log().is_empty());
}
