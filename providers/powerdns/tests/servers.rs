//! The PowerDNS provider against a real PowerDNS Authoritative (sqlite3 backend,
//! HTTP API and RFC 2136 with TSIG) started by the test bed, in both write modes.
//! Results are checked with `dig` and with the provider's own reads.

use std::sync::Arc;
use veer_provider::conformance::{Backdoor, BackdoorFuture, Harness};
use veer_provider::{
    Answer, Change, ChangeBatch, Observed, OwnershipRecord, Provider, ProviderError, RecordName, RecordSet, RecordType,
};
use veer_provider_powerdns::{ApiKey, PowerDnsConfig, PowerDnsProvider, TsigAlgorithm, TsigKey, WriteMode};
use veer_provider_testbed::{DnsServer, ServerKind, ZoneSpec, random_secret_base64};

const ZONE: &str = "example.test.";
const OWNER: &str = "veer-test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Rfc2136,
    Api,
}

fn rn(s: &str) -> RecordName {
    RecordName::parse(s).unwrap()
}

fn start() -> Option<Arc<DnsServer>> {
    let spec = ZoneSpec { records: vec!["legacy 300 IN A 192.0.2.99".into()], ..ZoneSpec::new(ZONE) };
    DnsServer::start(ServerKind::PowerDns, &spec).map(Arc::new)
}

fn api_key(server: &DnsServer) -> String {
    server.http_api().expect("PowerDNS has an HTTP API").api_key.clone()
}

fn writes(server: &DnsServer, mode: Mode, key_name: &str) -> WriteMode {
    match mode {
        Mode::Rfc2136 => {
            let algorithm: TsigAlgorithm = server.key().algorithm.parse().unwrap();
            let key = TsigKey::from_base64(key_name, algorithm, &server.key().secret_base64).unwrap();
            WriteMode::Rfc2136 { server: server.addr(), key }
        }
        Mode::Api => WriteMode::ApiLastWriterWins,
    }
}

fn provider_with(server: &DnsServer, mode: Mode, key: &str, zone: &str) -> PowerDnsProvider {
    let api = server.http_api().expect("PowerDNS has an HTTP API");
    let config = PowerDnsConfig::new(
        format!("powerdns-{mode:?}"),
        api.base_url.clone(),
        ApiKey::new(key).unwrap(),
        vec![rn(zone)],
        writes(server, mode, &server.key().name),
    );
    PowerDnsProvider::new(config).unwrap()
}

fn provider(server: &DnsServer, mode: Mode) -> PowerDnsProvider {
    provider_with(server, mode, &api_key(server), ZONE)
}

/// Writes through the HTTP API, unconditionally (PATCH REPLACE/DELETE), as an
/// operator in a PowerDNS UI or another tool would.
struct ApiBackdoor {
    server: Arc<DnsServer>,
    http: reqwest::Client,
}

impl ApiBackdoor {
    fn new(server: Arc<DnsServer>) -> Self {
        Self { server, http: reqwest::Client::builder().no_proxy().build().unwrap() }
    }

    async fn replace(&self, name: &RecordName, rtype: String, contents: Vec<String>) {
        let api = self.server.http_api().unwrap();
        let rrset = if contents.is_empty() {
            serde_json::json!({"name": name.as_str(), "type": rtype, "changetype": "DELETE"})
        } else {
            let records: Vec<_> =
                contents.iter().map(|c| serde_json::json!({"content": c, "disabled": false})).collect();
            serde_json::json!({"name": name.as_str(), "type": rtype, "ttl": 60, "changetype": "REPLACE", "records": records})
        };
        let response = self
            .http
            .patch(format!("{}/api/v1/servers/localhost/zones/{ZONE}", api.base_url))
            .header("X-API-Key", &api.api_key)
            .json(&serde_json::json!({ "rrsets": [rrset] }))
            .send()
            .await
            .expect("the backdoor reaches the API");
        let status = response.status();
        assert!(status.is_success(), "backdoor PATCH: {status}: {}", response.text().await.unwrap_or_default());
    }
}

impl Backdoor for ApiBackdoor {
    fn set_answers<'a>(&'a self, name: &'a RecordName, rtype: RecordType, values: &'a [String]) -> BackdoorFuture<'a> {
        Box::pin(self.replace(name, rtype.to_string(), values.to_vec()))
    }
    fn set_txt<'a>(&'a self, name: &'a RecordName, text: Option<&'a str>) -> BackdoorFuture<'a> {
        let contents = text.map(|t| format!("\"{t}\"")).into_iter().collect();
        Box::pin(self.replace(name, "TXT".into(), contents))
    }
}

/// Writes with `nsupdate`, unconditionally: another RFC 2136 client.
struct NsupdateBackdoor(Arc<DnsServer>);

impl NsupdateBackdoor {
    async fn run(&self, lines: Vec<String>) {
        let server = self.0.clone();
        tokio::task::spawn_blocking(move || server.nsupdate(&lines)).await.unwrap().unwrap();
    }
}

impl Backdoor for NsupdateBackdoor {
    fn set_answers<'a>(&'a self, name: &'a RecordName, rtype: RecordType, values: &'a [String]) -> BackdoorFuture<'a> {
        let mut lines = vec![format!("update delete {name} {rtype}")];
        lines.extend(values.iter().map(|v| format!("update add {name} 60 {rtype} {v}")));
        Box::pin(self.run(lines))
    }
    fn set_txt<'a>(&'a self, name: &'a RecordName, text: Option<&'a str>) -> BackdoorFuture<'a> {
        let mut lines = vec![format!("update delete {name} TXT")];
        lines.extend(text.map(|t| format!("update add {name} 60 TXT \"{t}\"")));
        Box::pin(self.run(lines))
    }
}

mod rfc2136_writes {
    use super::*;
    async fn harness() -> Option<Harness> {
        let server = start()?;
        Some(Harness {
            provider: Arc::new(provider(&server, Mode::Rfc2136)),
            zone: rn(ZONE),
            backdoor: Arc::new(NsupdateBackdoor(server.clone())),
            keep_alive: server,
        })
    }
    veer_provider::provider_battery!(harness);
}

mod api_last_writer_wins {
    use super::*;
    async fn harness() -> Option<Harness> {
        let server = start()?;
        Some(Harness {
            provider: Arc::new(provider(&server, Mode::Api)),
            zone: rn(ZONE),
            backdoor: Arc::new(ApiBackdoor::new(server.clone())),
            keep_alive: server,
        })
    }
    veer_provider::provider_battery!(harness);
}

fn ownership(generation: u64) -> OwnershipRecord {
    OwnershipRecord { owner: OWNER.into(), generation, epoch: 3, policy_hash: "abc123".into() }
}

fn set(name: &str, values: &[&str]) -> RecordSet {
    let answers = values.iter().map(|v| Answer { set_id: None, value: (*v).into(), weight: None }).collect();
    RecordSet::new(rn(name), RecordType::A, 60, answers)
}

async fn apply(p: &PowerDnsProvider, changes: Vec<Change>) -> Result<(), ProviderError> {
    p.apply(&ChangeBatch { zone: rn(ZONE), changes }).await
}

async fn dig(server: &Arc<DnsServer>, name: &str, rtype: &str) -> Vec<String> {
    let (server, name, rtype) = (server.clone(), name.to_string(), rtype.to_string());
    tokio::task::spawn_blocking(move || server.dig(&name, &rtype)).await.unwrap()
}

async fn read(p: &PowerDnsProvider, name: &str) -> Observed {
    p.read(&rn(name), RecordType::A).await.unwrap()
}

async fn create_change_and_remove_answers_are_seen_by_dig(mode: Mode) {
    let Some(server) = start() else { return };
    let p = provider(&server, mode);
    let name = "www.example.test.";
    let steps: [&[&str]; 3] =
        [&["192.0.2.1", "192.0.2.2", "192.0.2.3"], &["192.0.2.2", "192.0.2.3", "192.0.2.4"], &["192.0.2.4"]];
    for (i, step) in steps.iter().enumerate() {
        let generation = i as u64 + 1;
        let before = read(&p, name).await;
        apply(&p, vec![Change::new(before, set(name, step), ownership(generation))]).await.unwrap();
        assert_eq!(dig(&server, name, "A").await, step.to_vec(), "{mode:?} step {generation}");
        let txt = dig(&server, &format!("_veer.{name}"), "TXT").await;
        assert_eq!(txt, vec![format!("\"{}\"", ownership(generation).encode())], "{mode:?} ownership record");
        let observed = read(&p, name).await;
        assert_eq!(observed.ownership, Some(ownership(generation)), "{mode:?}");
        assert_eq!(observed.records, Some(set(name, step)), "{mode:?}");
    }
}

async fn an_unowned_pre_existing_name_is_left_untouched(mode: Mode) {
    let Some(server) = start() else { return };
    let p = provider(&server, mode);
    let name = "legacy.example.test.";
    let before = read(&p, name).await;
    assert_eq!((before.ownership.as_ref(), before.records.is_some()), (None, true), "{mode:?}: {before:?}");
    let result = apply(&p, vec![Change::new(before.clone(), set(name, &["192.0.2.1"]), ownership(1))]).await;
    assert!(matches!(result, Err(ProviderError::NotOwned(_))), "{mode:?}: {result:?}");
    assert_eq!(dig(&server, name, "A").await, vec!["192.0.2.99"]);
    assert!(dig(&server, &format!("_veer.{name}"), "TXT").await.is_empty());
    assert_eq!(read(&p, name).await, before);
}

/// Another writer (here through the API, as an operator would) bumps one name's
/// ownership record between veer's read and its write: the whole batch fails
/// with `Conflict`, and the name that was not touched keeps its old answers.
async fn a_competing_writer_between_read_and_write_makes_apply_conflict_with_nothing_half_applied(mode: Mode) {
    let Some(server) = start() else { return };
    let p = provider(&server, mode);
    let backdoor = ApiBackdoor::new(server.clone());
    let (a, b) = ("a.example.test.", "b.example.test.");
    for name in [a, b] {
        let before = read(&p, name).await;
        apply(&p, vec![Change::new(before, set(name, &["192.0.2.10"]), ownership(1))]).await.unwrap();
    }
    let (read_a, read_b) = (read(&p, a).await, read(&p, b).await);

    let theirs = OwnershipRecord { generation: 2, ..ownership(1) };
    backdoor.set_txt(&rn(b).ownership_name(), Some(&theirs.encode())).await;

    let result = apply(
        &p,
        vec![
            Change::new(read_a.clone(), set(a, &["192.0.2.11"]), ownership(2)),
            Change::new(read_b, set(b, &["192.0.2.11"]), ownership(2)),
        ],
    )
    .await;
    assert!(matches!(result, Err(ProviderError::Conflict(_))), "{mode:?}: {result:?}");
    assert_eq!(dig(&server, a, "A").await, vec!["192.0.2.10"], "{mode:?}: nothing half-applied");
    assert_eq!(read(&p, a).await, read_a);
    assert_eq!(dig(&server, b, "A").await, vec!["192.0.2.10"]);
    assert_eq!(read(&p, b).await.ownership, Some(theirs));
}

async fn a_wrong_api_key_is_a_clear_rejection_and_changes_nothing(mode: Mode) {
    let Some(server) = start() else { return };
    let wrong = random_secret_base64(16);
    let p = provider_with(&server, mode, &wrong, ZONE);
    let name = "www.example.test.";
    let messages = [
        p.read(&rn(name), RecordType::A).await.map(|_| ()),
        p.check_zones().await,
        apply(
            &p,
            vec![Change::new(Observed::absent(rn(name), RecordType::A), set(name, &["192.0.2.1"]), ownership(1))],
        )
        .await,
    ];
    // In RFC 2136 mode the write does not use the API key; the TSIG key is right.
    let api_calls = if mode == Mode::Api { &messages[..] } else { &messages[..2] };
    for result in api_calls {
        let Err(ProviderError::Rejected(message)) = result else {
            panic!("{mode:?}: expected Rejected, got {result:?}")
        };
        eprintln!("{mode:?} wrong API key: {message}");
        assert!(message.contains("401") && message.contains("API key"), "{mode:?}: {message}");
        assert!(!message.contains(&wrong) && !message.contains(&api_key(&server)), "{mode:?}: the key leaked");
    }
    if mode == Mode::Api {
        assert!(dig(&server, name, "A").await.is_empty(), "nothing written");
    }
}

async fn a_zone_powerdns_does_not_serve_is_a_clear_error_from_check_zones(mode: Mode) {
    let Some(server) = start() else { return };
    assert_eq!(provider(&server, mode).check_zones().await, Ok(()), "{mode:?}: the served zone passes");
    let p = provider_with(&server, mode, &api_key(&server), "other.test.");
    let checked = p.check_zones().await;
    eprintln!("{mode:?} zone not served: {checked:?}");
    assert!(
        matches!(&checked, Err(ProviderError::Rejected(m)) if m.contains("does not serve zone other.test.")),
        "{mode:?}: {checked:?}"
    );
    let result = p.read(&rn("www.other.test."), RecordType::A).await;
    assert!(
        matches!(&result, Err(ProviderError::Rejected(m)) if m.contains("404") && m.contains("does not serve zone other.test.")),
        "{mode:?}: {result:?}"
    );
}

mod rfc2136_mode {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_change_and_remove_answers_are_seen_by_dig() {
        super::create_change_and_remove_answers_are_seen_by_dig(Mode::Rfc2136).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unowned_pre_existing_name_is_left_untouched() {
        super::an_unowned_pre_existing_name_is_left_untouched(Mode::Rfc2136).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_competing_writer_between_read_and_write_makes_apply_conflict_with_nothing_half_applied() {
        super::a_competing_writer_between_read_and_write_makes_apply_conflict_with_nothing_half_applied(Mode::Rfc2136)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_api_key_is_a_clear_rejection_and_changes_nothing() {
        super::a_wrong_api_key_is_a_clear_rejection_and_changes_nothing(Mode::Rfc2136).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_zone_powerdns_does_not_serve_is_a_clear_error_from_check_zones() {
        super::a_zone_powerdns_does_not_serve_is_a_clear_error_from_check_zones(Mode::Rfc2136).await;
    }

    /// A key the zone's TSIG-ALLOW-DNSUPDATE does not name is found by
    /// `check_zones`, before any write is refused for it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tsig_key_the_zone_does_not_allow_is_reported_by_check_zones() {
        let Some(server) = start() else { return };
        let api = server.http_api().unwrap();
        let config = PowerDnsConfig::new(
            "pdns",
            api.base_url.clone(),
            ApiKey::new(api.api_key.as_str()).unwrap(),
            vec![rn(ZONE)],
            writes(&server, Mode::Rfc2136, "not-allowed-key"),
        );
        let checked = PowerDnsProvider::new(config).unwrap().check_zones().await;
        eprintln!("key not allowed: {checked:?}");
        assert!(
            matches!(&checked, Err(ProviderError::Rejected(m)) if m.contains("TSIG-ALLOW-DNSUPDATE") && m.contains("not-allowed-key")),
            "{checked:?}"
        );
    }

    /// Ten writers from one read: the server's prerequisites let exactly one win.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_from_one_read_exactly_one_wins() {
        let Some(server) = start() else { return };
        let p = Arc::new(provider(&server, Mode::Rfc2136));
        let name = "race.example.test.";
        let before = read(&p, name).await;
        apply(&p, vec![Change::new(before, set(name, &["192.0.2.1"]), ownership(1))]).await.unwrap();
        let base = read(&p, name).await;
        let mut tasks = Vec::new();
        for i in 0..10u8 {
            let (p, base) = (p.clone(), base.clone());
            tasks.push(tokio::spawn(async move {
                let value = format!("192.0.2.{}", 100 + i);
                apply(&p, vec![Change::new(base, set(name, &[&value]), ownership(2))]).await
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        let wins = results.iter().filter(|r| r.is_ok()).count();
        let conflicts = results.iter().filter(|r| matches!(r, Err(ProviderError::Conflict(_)))).count();
        assert_eq!((wins, conflicts), (1, 9), "{results:?}");
    }
}

mod api_mode {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_change_and_remove_answers_are_seen_by_dig() {
        super::create_change_and_remove_answers_are_seen_by_dig(Mode::Api).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unowned_pre_existing_name_is_left_untouched() {
        super::an_unowned_pre_existing_name_is_left_untouched(Mode::Api).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_competing_writer_before_the_pre_read_makes_apply_conflict_with_nothing_half_applied() {
        super::a_competing_writer_between_read_and_write_makes_apply_conflict_with_nothing_half_applied(Mode::Api)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_api_key_is_a_clear_rejection_and_changes_nothing() {
        super::a_wrong_api_key_is_a_clear_rejection_and_changes_nothing(Mode::Api).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_zone_powerdns_does_not_serve_is_a_clear_error_from_check_zones() {
        super::a_zone_powerdns_does_not_serve_is_a_clear_error_from_check_zones(Mode::Api).await;
    }

    /// A writer holding an older leader epoch than the one that last wrote the
    /// name is refused even when its read is current: it is a deposed leader.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_with_an_older_epoch_than_the_published_one_conflicts() {
        let Some(server) = start() else { return };
        let p = provider(&server, Mode::Api);
        let name = "epoch.example.test.";
        let newer = OwnershipRecord { epoch: 9, ..ownership(1) };
        apply(&p, vec![Change::new(read(&p, name).await, set(name, &["192.0.2.1"]), newer.clone())]).await.unwrap();
        let current = read(&p, name).await;
        let stale = OwnershipRecord { epoch: 8, ..ownership(2) };
        let result = apply(&p, vec![Change::new(current.clone(), set(name, &["192.0.2.2"]), stale)]).await;
        assert!(matches!(&result, Err(ProviderError::Conflict(m)) if m.contains("epoch 9")), "{result:?}");
        assert_eq!(read(&p, name).await, current);
        assert_eq!(dig(&server, name, "A").await, vec!["192.0.2.1"]);
    }
}

/// Not a check: prints the latency of reads and writes in both modes
/// (`cargo test -p veer-provider-powerdns --test servers -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints figures; run explicitly"]
async fn print_read_and_write_latency_in_both_modes() {
    for mode in [Mode::Rfc2136, Mode::Api] {
        let Some(server) = start() else { return };
        let p = provider(&server, mode);
        let name = "latency.example.test.";
        let rounds = 50u32;
        let (mut reading, mut writing) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
        for i in 0..rounds {
            let t = std::time::Instant::now();
            let before = read(&p, name).await;
            reading += t.elapsed();
            let value = format!("192.0.2.{}", i % 200 + 1);
            let t = std::time::Instant::now();
            apply(&p, vec![Change::new(before, set(name, &[&value]), ownership(u64::from(i) + 1))]).await.unwrap();
            writing += t.elapsed();
        }
        eprintln!("{mode:?}: read (API) {:?}/op, apply {:?}/op", reading / rounds, writing / rounds);
    }
}
