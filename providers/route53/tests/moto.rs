//! SDK wiring against a real moto server (REFERENCE §B): zone discovery,
//! weighted record sets, the ownership TXT record, pagination, the endpoint
//! override by config and by `AWS_ENDPOINT_URL_ROUTE_53`, credentials from the
//! environment. moto is not faithful for conflicts; `tests/cas.rs` covers those.
//!
//! moto is found through `VEER_MOTO_SERVER` (set by `scripts/test`) or
//! `moto_server` on `PATH`. Without it the tests are skipped loudly, or fail
//! when `CI` is set.

use aws_sdk_route53::Client;
use aws_sdk_route53::config::{Credentials, Region};
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use veer_provider::{
    Answer, ChangeBatch as VeerBatch, Observed, OwnershipRecord, Provider, RecordName, RecordSet, RecordType,
};
use veer_provider_route53::{InsyncWait, Route53Config, Route53Provider, Secret, StaticCredentials};

/// A moto server on a free loopback port, killed (by its own handle) on drop.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VEER_MOTO_SERVER") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "VEER_MOTO_SERVER={} does not exist", path.display());
        return Some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
}

/// Starts moto, or returns `None` (after saying so) when it is not installed.
fn start_moto(test: &str) -> Option<Moto> {
    let Some(binary) = moto_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "moto_server not found: set VEER_MOTO_SERVER (scripts/test does) or put moto_server on PATH"
        );
        eprintln!("SKIPPED {test}: moto_server not found (set VEER_MOTO_SERVER or run scripts/test)");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(&binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "moto did not listen on port {port} within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(moto)
}

fn credentials() -> StaticCredentials {
    StaticCredentials {
        access_key_id: "AKIDMOTOTEST".into(),
        secret_access_key: Secret::new("moto-secret-not-checked"),
        session_token: None,
    }
}

/// A plain SDK client for setting moto up the way an operator would.
fn admin_client(moto: &Moto) -> Client {
    let config = aws_sdk_route53::Config::builder()
        .behavior_version(veer_provider_route53::behavior_version())
        .region(Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .credentials_provider(Credentials::new("AKIDMOTOTEST", "moto-secret-not-checked", None, None, "test"))
        .build();
    Client::from_conf(config)
}

async fn create_zone(client: &Client, zone: &str) -> String {
    let out = client.create_hosted_zone().name(zone).caller_reference(format!("veer-{zone}")).send().await.unwrap();
    out.hosted_zone().unwrap().id().rsplit('/').next().unwrap().to_string()
}

fn config(moto: &Moto, zones: &[&str]) -> Route53Config {
    Route53Config {
        zones: zones.iter().map(|z| RecordName::parse(z).unwrap()).collect(),
        endpoint_url: Some(moto.url.clone()),
        credentials: Some(credentials()),
        insync: InsyncWait { enabled: true, interval: Duration::from_millis(20), timeout: Duration::from_secs(10) },
        ..Route53Config::default()
    }
}

fn name(text: &str) -> RecordName {
    RecordName::parse(text).unwrap()
}

fn weighted(n: &str, answers: &[(String, String, u32)]) -> RecordSet {
    RecordSet::new(
        name(n),
        RecordType::A,
        30,
        answers
            .iter()
            .map(|(id, v, w)| Answer { set_id: Some(id.clone()), value: v.clone(), weight: Some(*w) })
            .collect(),
    )
}

fn answers(list: &[(&str, &str, u32)]) -> Vec<(String, String, u32)> {
    list.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), *c)).collect()
}

fn ownership(generation: u64) -> OwnershipRecord {
    OwnershipRecord { owner: "prod-a".into(), generation, epoch: 1, policy_hash: "f00d".into() }
}

async fn apply(provider: &Route53Provider, zone: &str, expected: &Observed, desired: RecordSet) {
    let generation = expected.ownership.as_ref().map_or(0, |o| o.generation) + 1;
    let change =
        veer_provider::Change { expected: expected.clone(), desired, ownership: ownership(generation), adopt: false };
    provider.apply(&VeerBatch { zone: name(zone), changes: vec![change] }).await.unwrap();
}

#[tokio::test]
async fn moto_finds_zones_and_round_trips_weighted_records_and_ownership() {
    let Some(moto) = start_moto("moto_finds_zones_and_round_trips_weighted_records_and_ownership") else { return };
    let admin = admin_client(&moto);
    let com = create_zone(&admin, "example.com.").await;
    let org = create_zone(&admin, "example.org.").await;

    let mut config = config(&moto, &["example.com."]);
    config.hosted_zone_ids = vec![format!("/hostedzone/{org}")];
    let provider = Route53Provider::connect("route53-moto", config).await.unwrap();
    assert_eq!(provider.zones(), &[name("example.com."), name("example.org.")]);
    assert_eq!(provider.hosted_zone_id(&name("example.com.")), Some(com.as_str()));
    assert_eq!(provider.hosted_zone_id(&name("example.org.")), Some(org.as_str()));

    let api = "api.example.com.";
    let empty = provider.read(&name(api), RecordType::A).await.unwrap();
    assert_eq!((empty.records.as_ref(), empty.ownership.as_ref()), (None, None));

    // Create two weighted endpoints.
    let two = weighted(api, &answers(&[("use1-a", "192.0.2.10", 100), ("use1-b", "192.0.2.11", 100)]));
    apply(&provider, "example.com.", &empty, two.clone()).await;
    let read = provider.read(&name(api), RecordType::A).await.unwrap();
    assert_eq!(read.records, Some(two));
    assert_eq!(read.ownership, Some(ownership(1)));
    assert!(provider.last_apply().unwrap().insync_after.is_some(), "moto reports INSYNC");

    // What moto holds, seen through the plain SDK: weighted sets and a simple TXT.
    let listed = admin.list_resource_record_sets().hosted_zone_id(&com).send().await.unwrap();
    let a_sets: Vec<(Option<&str>, Option<i64>)> = listed
        .resource_record_sets()
        .iter()
        .filter(|s| s.r#type() == &RrType::A)
        .map(|s| (s.set_identifier(), s.weight()))
        .collect();
    assert_eq!(a_sets.len(), 2);
    assert!(a_sets.contains(&(Some("use1-a"), Some(100))) && a_sets.contains(&(Some("use1-b"), Some(100))));
    let txt = listed.resource_record_sets().iter().find(|s| s.r#type() == &RrType::Txt).unwrap();
    assert_eq!(txt.name().trim_end_matches('.'), "_veer.api.example.com");
    assert_eq!(txt.resource_records()[0].value(), "\"owner=prod-a;gen=1;epoch=1;policy=f00d\"");

    // Update a weight, then remove an endpoint.
    let shifted = weighted(api, &answers(&[("use1-a", "192.0.2.10", 100), ("use1-b", "192.0.2.11", 0)]));
    apply(&provider, "example.com.", &read, shifted.clone()).await;
    let read = provider.read(&name(api), RecordType::A).await.unwrap();
    assert_eq!((read.records.clone(), read.ownership.clone()), (Some(shifted), Some(ownership(2))));
    let one = weighted(api, &answers(&[("use1-a", "192.0.2.10", 100)]));
    apply(&provider, "example.com.", &read, one.clone()).await;
    let read = provider.read(&name(api), RecordType::A).await.unwrap();
    assert_eq!((read.records, read.ownership), (Some(one), Some(ownership(3))));

    // The zone given by id works the same way.
    let www = "www.example.org.";
    let empty = provider.read(&name(www), RecordType::A).await.unwrap();
    let desired = weighted(www, &answers(&[("euw1-a", "198.51.100.7", 150)]));
    apply(&provider, "example.org.", &empty, desired.clone()).await;
    assert_eq!(provider.read(&name(www), RecordType::A).await.unwrap().records, Some(desired));
}

/// moto pages across names but not within one name: it neither returns
/// `NextRecordIdentifier` nor honours `StartRecordIdentifier` (another way it is
/// not faithful, next to REFERENCE §B's list). Paging through one name's
/// weighted sets is therefore tested on the fake (`tests/cas.rs`); here a name
/// is read from the middle of a zone of more than 300 record sets, and a page
/// smaller than the name must end in a clear error, never an endless loop.
#[tokio::test]
async fn moto_reads_one_name_from_the_middle_of_a_zone_of_more_than_300_record_sets() {
    let test = "moto_reads_one_name_from_the_middle_of_a_zone_of_more_than_300_record_sets";
    let Some(moto) = start_moto(test) else { return };
    let admin = admin_client(&moto);
    let zone_id = create_zone(&admin, "example.com.").await;

    // Neighbours on both sides of the managed name, written directly.
    let mut changes = Vec::new();
    for i in 0..120 {
        let set = ResourceRecordSet::builder()
            .name(format!("h{i:03}.example.com."))
            .r#type(RrType::A)
            .ttl(60)
            .resource_records(ResourceRecord::builder().value("198.51.100.1").build().unwrap())
            .build()
            .unwrap();
        changes.push(Change::builder().action(ChangeAction::Create).resource_record_set(set).build().unwrap());
    }
    let batch = ChangeBatch::builder().set_changes(Some(changes)).build().unwrap();
    admin.change_resource_record_sets().hosted_zone_id(&zone_id).change_batch(batch).send().await.unwrap();

    let provider = Route53Provider::connect("route53-moto", config(&moto, &["example.com."])).await.unwrap();
    let n = "h050.example.com.";
    let read = provider.read(&name(n), RecordType::A).await.unwrap();
    assert_eq!(read.records.as_ref().map(|r| r.answers.len()), Some(1), "a simple record set, unowned");
    assert_eq!(read.records.as_ref().unwrap().answers[0].set_id, None);
    // Adopt it with 250 weighted endpoints in one call (1 + 250 + 1 records): 371 record sets in the zone.
    let many: Vec<(String, String, u32)> =
        (0..250).map(|i| (format!("e{i:03}"), format!("192.0.{}.{}", i / 200, i % 200 + 1), 1 + i % 255)).collect();
    let desired = weighted(n, &many);
    apply(&provider, "example.com.", &read, desired.clone()).await;

    let read = provider.read(&name(n), RecordType::A).await.unwrap();
    assert_eq!(read.records.as_ref(), Some(&desired));
    assert_eq!(read.ownership, Some(ownership(1)));
    let next = provider.read(&name("h051.example.com."), RecordType::A).await.unwrap();
    assert_eq!(next.records.map(|r| r.answers.len()), Some(1), "the neighbour is read alone");

    let mut small_pages = config(&moto, &["example.com."]);
    small_pages.list_page_size = 100;
    let provider = Route53Provider::connect("route53-moto", small_pages).await.unwrap();
    let started = Instant::now();
    match provider.read(&name(n), RecordType::A).await {
        Ok(read) => assert_eq!(read.records.as_ref(), Some(&desired), "a moto that pages within a name"),
        Err(e) => {
            assert!(e.to_string().contains("did not advance"), "{e}");
            eprintln!("note: this moto cannot page within one name ({e})");
        }
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Set in the child process that runs the environment half of the test.
const CHILD: &str = "VEER_ROUTE53_ENV_CHILD";

/// The SDK's standard chain and endpoint variable are process-wide, and this
/// crate forbids the `unsafe` that `set_var` needs: the test runs itself again
/// as a child process with the environment set.
#[tokio::test]
async fn moto_endpoint_and_credentials_come_from_the_environment() {
    if let Ok(endpoint) = std::env::var(CHILD) {
        // Child: no endpoint and no credentials in the config.
        let config = Route53Config { zones: vec![name("example.com.")], ..Route53Config::default() };
        let provider = Route53Provider::connect("route53-env", config).await.expect("connect through the environment");
        let read = provider.read(&name("api.example.com."), RecordType::A).await.unwrap();
        assert_eq!(read.records, None);
        println!("child reached moto at {endpoint}");
        return;
    }
    let test = "moto_endpoint_and_credentials_come_from_the_environment";
    let Some(moto) = start_moto(test) else { return };
    create_zone(&admin_client(&moto), "example.com.").await;
    let output = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, &moto.url)
        .env("AWS_ENDPOINT_URL_ROUTE_53", &moto.url)
        .env("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
        .env("AWS_SECRET_ACCESS_KEY", "secret-from-env")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_CONFIG_FILE", "/nonexistent/veer-test-aws-config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/veer-test-aws-credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("child reached moto"), "the child ran the check:\n{stdout}");
}
