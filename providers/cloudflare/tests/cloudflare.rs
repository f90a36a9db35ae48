//! The Cloudflare provider against a stateful fake of the Cloudflare API v4.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::fake::{Fake, TOKEN, start_fake, start_fake_with};
use veer_provider::conformance::ApiFake;
use veer_provider::{
    Answer, Change, ChangeBatch, Observed, OwnershipRecord, Provider, ProviderError, RecordName, RecordSet, RecordType,
};
use veer_provider_cloudflare::{CloudflareConfig, CloudflareProvider, Secret};

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

/// Reads `n`, then publishes `values` on top of what was read, as generation `generation`.
async fn publish(p: &CloudflareProvider, n: &str, values: &[&str], generation: u64) -> Result<(), ProviderError> {
    let before = p.read(&name(n), RecordType::A).await?;
    p.apply(&batch(vec![change(before, set(n, values), ownership("prod-a", generation))])).await
}

fn batches_sent(fake: &Fake) -> usize {
    fake.with(|s| s.batches)
}

#[tokio::test]
async fn a_name_round_trips_through_read_apply_read() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    let first = p.read(&api, RecordType::A).await.unwrap();
    assert_eq!(
        first,
        Observed { name: api.clone(), rtype: RecordType::A, records: None, ownership: None, foreign_ownership: None }
    );

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
    assert_eq!(fake.contents(&api.ownership_name(), "TXT"), vec!["owner=prod-a;gen=2;epoch=3;policy=ab12"]);

    // The second batch kept the answer that stays, deleted one answer and the old TXT, posted two.
    let log = fake.log();
    let bodies: Vec<&Value> =
        log.iter().filter(|l| l.path.ends_with("/batch")).filter_map(|l| l.body.as_ref()).collect();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[1]["deletes"].as_array().unwrap().len(), 2);
    let posts = bodies[1]["posts"].as_array().unwrap();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0]["name"], "api.example.com");
    assert_eq!(posts[0]["content"], "198.51.100.7");
    assert_eq!(posts[1]["type"], "TXT");
    assert!(log.iter().all(|l| l.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))));
    // The zone id was looked up by name once.
    assert_eq!(log.iter().filter(|l| l.path == "/client/v4/zones").count(), 1);
    assert!(log[0].query.contains("name=example.com"));
}

#[tokio::test]
async fn a_change_made_between_read_and_apply_is_a_conflict_found_by_the_pre_read() {
    let (fake, p) = start_fake().await;
    publish(&p, "api.example.com.", &["192.0.2.10"], 1).await.unwrap();
    let api = name("api.example.com.");
    let read = p.read(&api, RecordType::A).await.unwrap();
    fake.set_answers(&api, RecordType::A, &["203.0.113.9"]);
    let before = batches_sent(&fake);

    let result =
        p.apply(&batch(vec![change(read, set("api.example.com.", &["192.0.2.99"]), ownership("prod-a", 2))])).await;
    assert!(matches!(result, Err(ProviderError::Conflict(_))), "{result:?}");
    assert_eq!(batches_sent(&fake), before, "no batch may be sent after a failed pre-read");
    assert_eq!(fake.contents(&api, "A"), vec!["203.0.113.9"]);
}

#[tokio::test]
async fn another_writer_replacing_the_ownership_record_inside_the_pre_read_window_fails_the_whole_batch() {
    let (fake, p) = start_fake().await;
    publish(&p, "api.example.com.", &["192.0.2.10"], 1).await.unwrap();
    let api = name("api.example.com.");
    let read = p.read(&api, RecordType::A).await.unwrap();
    // Another veer writer swaps the ownership record (delete by id, post) after our pre-read.
    fake.with(|s| {
        s.before_batch = Some(Box::new(|s| {
            s.remove("_veer.api.example.com", "TXT");
            s.insert("_veer.api.example.com", "TXT", "owner=prod-b;gen=2;epoch=9;policy=ff", 300);
        }))
    });

    let result =
        p.apply(&batch(vec![change(read, set("api.example.com.", &["192.0.2.99"]), ownership("prod-a", 2))])).await;
    assert!(matches!(result, Err(ProviderError::Conflict(_))), "{result:?}");
    // Nothing of the batch landed: the old answers are still there, never empty.
    assert_eq!(fake.contents(&api, "A"), vec!["192.0.2.10"]);
    assert_eq!(fake.contents(&api.ownership_name(), "TXT"), vec!["owner=prod-b;gen=2;epoch=9;policy=ff"]);
}

#[tokio::test]
async fn another_writer_found_after_the_batch_is_reported_by_post_write_verification() {
    let (fake, p) = start_fake().await;
    publish(&p, "api.example.com.", &["192.0.2.10"], 1).await.unwrap();
    let api = name("api.example.com.");
    let read = p.read(&api, RecordType::A).await.unwrap();
    // A writer that edits the TXT in place (keeping its id) right after our batch.
    fake.with(|s| {
        s.after_batch = Some(Box::new(|s| {
            let txt = s.records.iter_mut().find(|r| r.rtype == "TXT").unwrap();
            txt.content = "owner=prod-b;gen=3;epoch=9;policy=ff".into();
        }))
    });

    let result =
        p.apply(&batch(vec![change(read, set("api.example.com.", &["192.0.2.99"]), ownership("prod-a", 2))])).await;
    match result {
        Err(ProviderError::Conflict(why)) => assert!(why.contains("prod-b"), "{why}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(!fake.contents(&api, "A").is_empty());
}

#[tokio::test]
async fn throttling_is_reported_with_the_retry_after_hint() {
    let (fake, p) = start_fake().await;
    fake.with(|s| s.throttle = Some((1, 7)));
    let result = p.read(&name("api.example.com."), RecordType::A).await;
    assert_eq!(result, Err(ProviderError::Throttled { retry_after: Some(Duration::from_secs(7)) }));
    // The provider does not retry by itself: one request, one answer.
    assert_eq!(fake.log().len(), 1);
    assert!(p.read(&name("api.example.com."), RecordType::A).await.is_ok());
}

#[tokio::test]
async fn a_connection_dropped_after_the_batch_landed_is_ambiguous_and_a_re_read_shows_the_write() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    let read = p.read(&api, RecordType::A).await.unwrap();
    fake.with(|s| s.drop_next_batch_response = true);
    let result =
        p.apply(&batch(vec![change(read, set("api.example.com.", &["192.0.2.10"]), ownership("prod-a", 1))])).await;
    assert!(matches!(result, Err(ProviderError::Ambiguous(_))), "{result:?}");
    let now = p.read(&api, RecordType::A).await.unwrap();
    assert_eq!(now.ownership, Some(ownership("prod-a", 1)));
    assert_eq!(now.records, Some(set("api.example.com.", &["192.0.2.10"])));
}

#[tokio::test]
async fn a_server_error_on_the_batch_is_ambiguous_and_on_a_read_unavailable() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    let read = p.read(&api, RecordType::A).await.unwrap();
    fake.with(|s| s.fail_next_batch = Some(502));
    let result =
        p.apply(&batch(vec![change(read, set("api.example.com.", &["192.0.2.10"]), ownership("prod-a", 1))])).await;
    assert!(matches!(result, Err(ProviderError::Ambiguous(_))), "{result:?}");

    let port = fake.server.addr.port();
    drop(fake);
    let mut config = CloudflareConfig::new("down", vec![name("example.com.")], Secret::new(TOKEN));
    config.endpoint = format!("http://127.0.0.1:{port}/client/v4");
    let unreachable = CloudflareProvider::new(config).unwrap();
    let result = unreachable.read(&api, RecordType::A).await;
    assert!(matches!(result, Err(ProviderError::Unavailable(_))), "{result:?}");
}

#[tokio::test]
async fn reads_follow_every_page_of_the_listing() {
    let (fake, p) = start_fake_with(|c| c.per_page = 2).await;
    let api = name("api.example.com.");
    let values = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"];
    fake.set_answers(&api, RecordType::A, &values);
    let read = p.read(&api, RecordType::A).await.unwrap();
    assert_eq!(read.records.unwrap().answers.len(), 5);
    let pages: Vec<String> = fake
        .log()
        .iter()
        .filter(|l| l.path.ends_with("/dns_records") && l.query.contains("type=A"))
        .map(|l| l.query.clone())
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages[2].contains("page=3") && pages[2].contains("per_page=2"));
}

#[tokio::test]
async fn a_change_with_no_live_answers_is_refused_before_any_request() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    let expected =
        Observed { name: api.clone(), rtype: RecordType::A, records: None, ownership: None, foreign_ownership: None };
    let empty = RecordSet::new(api.clone(), RecordType::A, 60, vec![]);
    let result = p.apply(&batch(vec![change(expected.clone(), empty, ownership("prod-a", 1))])).await;
    assert_eq!(result, Err(ProviderError::WouldEmpty(api.to_string())));
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
async fn a_name_owned_by_another_cluster_is_refused_before_any_request() {
    let (fake, p) = start_fake().await;
    let api = name("api.example.com.");
    fake.set_answers(&api, RecordType::A, &["192.0.2.1"]);
    fake.set_txt(&api.ownership_name(), Some("owner=prod-b;gen=4;epoch=1;policy=x"));
    let read = p.read(&api, RecordType::A).await.unwrap();
    let requests = fake.log().len();
    let result =
        p.apply(&batch(vec![change(read, set("api.example.com.", &["192.0.2.2"]), ownership("prod-a", 5))])).await;
    assert!(matches!(result, Err(ProviderError::NotOwned(_))), "{result:?}");
    assert_eq!(fake.log().len(), requests);
}

#[tokio::test]
async fn the_api_token_never_appears_in_debug_output_errors_or_logs() {
    let logs = veer_provider_testbed::LogCapture::start();
    let (fake, p) = start_fake().await;
    publish(&p, "api.example.com.", &["192.0.2.10"], 1).await.unwrap();
    fake.with(|s| {
        s.token = "another-token".into();
        s.echo_token_in_errors = true;
    });
    let result = p.read(&name("api.example.com."), RecordType::A).await;
    let error = result.unwrap_err();
    assert!(matches!(error, ProviderError::Rejected(_)), "{error:?}");
    assert!(error.to_string().contains("Authentication error"), "{error}");
    for text in [format!("{error}"), format!("{error:?}"), format!("{p:?}")] {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
    let config = CloudflareConfig::new("x", vec![name("example.com.")], Secret::new(TOKEN));
    assert!(!format!("{config:?}").contains(TOKEN));
    let logged = logs.text();
    assert!(logged.contains("sending DNS records batch"), "{logged}");
    assert!(!logged.contains(TOKEN), "the token was logged: {logged}");
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
    let (fake, p) = start_fake_with(|c| c.per_page = 2).await;
    let api = name("api.example.com.");
    fake.set_answers(&api, RecordType::A, &["192.0.2.10", "192.0.2.11", "192.0.2.12"]);
    fake.set_txt(&api.ownership_name(), Some("owner=prod-a;gen=3;epoch=2;policy=ab12"));
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{}{path}", fake.endpoint())).bearer_auth(TOKEN).send();
    let zones: Value = get("/zones?name=example.com").await.unwrap().json().await.unwrap();
    let fixture: Value = serde_json::from_str(include_str!("fixtures/zones_list.json")).unwrap();
    assert_eq!(shape(&zones), shape(&fixture));
    let page: Value =
        get(&format!("/zones/{}/dns_records?name=api.example.com&type=A&page=1&per_page=2", support::fake::ZONE_ID))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let fixture: Value = serde_json::from_str(include_str!("fixtures/dns_records_list_page.json")).unwrap();
    assert_eq!(shape(&page), shape(&fixture));

    let read = p.read(&api, RecordType::A).await.unwrap();
    p.apply(&batch(vec![change(
        read,
        set("api.example.com.", &["192.0.2.10", "198.51.100.7"]),
        ownership("prod-a", 4),
    )]))
    .await
    .unwrap();
    let sent = fake.log().into_iter().find(|l| l.path.ends_with("/batch")).unwrap().body.unwrap();
    let fixture: Value = serde_json::from_str(include_str!("fixtures/batch_request.json")).unwrap();
    assert_eq!(shape(&sent["deletes"]), shape(&fixture["deletes"]));
    assert_eq!(shape(&sent["posts"][0]), shape(&fixture["posts"][0]));
    assert_eq!(shape(sent["posts"].as_array().unwrap().last().unwrap()), shape(&fixture["posts"][1]));
}

#[tokio::test]
async fn a_batch_over_several_names_sends_nothing_when_any_pre_read_conflicts() {
    let (fake, p) = start_fake().await;
    publish(&p, "api.example.com.", &["192.0.2.10"], 1).await.unwrap();
    publish(&p, "www.example.com.", &["192.0.2.20"], 1).await.unwrap();
    let api = p.read(&name("api.example.com."), RecordType::A).await.unwrap();
    let www = p.read(&name("www.example.com."), RecordType::A).await.unwrap();
    fake.set_answers(&name("www.example.com."), RecordType::A, &["203.0.113.7"]);
    let before = batches_sent(&fake);
    let result = p
        .apply(&batch(vec![
            change(api, set("api.example.com.", &["192.0.2.11"]), ownership("prod-a", 2)),
            change(www, set("www.example.com.", &["192.0.2.21"]), ownership("prod-a", 2)),
        ]))
        .await;
    assert!(matches!(result, Err(ProviderError::Conflict(_))), "{result:?}");
    assert_eq!(batches_sent(&fake), before);
    assert_eq!(fake.contents(&name("api.example.com."), "A"), vec!["192.0.2.10"]);
}
