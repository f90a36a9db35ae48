//! The RFC 2136 provider against real BIND 9 and Knot servers started by the test
//! bed; results are checked with `dig` and with the provider's own reads.

use std::sync::Arc;
use veer_provider::conformance::{Backdoor, BackdoorFuture, Harness};
use veer_provider::{
    Answer, Change, ChangeBatch, Observed, OwnershipRecord, Provider, ProviderError, RecordName, RecordSet, RecordType,
};
use veer_provider_rfc2136::{Rfc2136Config, Rfc2136Provider, TsigAlgorithm, TsigKey};
use veer_provider_testbed::{DnsServer, ServerKind, ZoneSpec, random_secret_base64};

const ZONE: &str = "example.test.";
const OWNER: &str = "veer-test";

fn rn(s: &str) -> RecordName {
    RecordName::parse(s).unwrap()
}

fn start(kind: ServerKind, algorithm: &str) -> Option<Arc<DnsServer>> {
    let spec = ZoneSpec {
        records: vec!["legacy 300 IN A 192.0.2.99".into()],
        algorithm: algorithm.into(),
        ..ZoneSpec::new(ZONE)
    };
    DnsServer::start(kind, &spec).map(Arc::new)
}

fn provider_for(server: &DnsServer, secret_base64: &str, key_name: &str, zone: &str) -> Rfc2136Provider {
    let algorithm: TsigAlgorithm = server.key().algorithm.parse().unwrap();
    let key = TsigKey::from_base64(key_name, algorithm, secret_base64).unwrap();
    Rfc2136Provider::new(Rfc2136Config::new(format!("{:?}", server.kind()), server.addr(), vec![rn(zone)], key))
        .unwrap()
}

fn provider(server: &DnsServer) -> Rfc2136Provider {
    provider_for(server, &server.key().secret_base64, &server.key().name, ZONE)
}

/// Writes with `nsupdate`, unconditionally: a competing writer.
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

fn harness(kind: ServerKind) -> Option<Harness> {
    let server = start(kind, "hmac-sha256")?;
    Some(Harness {
        provider: Arc::new(provider(&server)),
        zone: rn(ZONE),
        backdoor: Arc::new(NsupdateBackdoor(server.clone())),
        keep_alive: server,
    })
}

mod bind {
    use super::*;
    async fn bind_harness() -> Option<Harness> {
        harness(ServerKind::Bind)
    }
    veer_provider::provider_battery!(bind_harness);
}

mod knot {
    use super::*;
    async fn knot_harness() -> Option<Harness> {
        harness(ServerKind::Knot)
    }
    veer_provider::provider_battery!(knot_harness);
}

fn ownership(generation: u64) -> OwnershipRecord {
    OwnershipRecord { owner: OWNER.into(), generation, epoch: 3, policy_hash: "abc123".into() }
}

fn set(name: &str, values: &[&str]) -> RecordSet {
    let answers = values.iter().map(|v| Answer { set_id: None, value: (*v).into(), weight: None }).collect();
    RecordSet::new(rn(name), RecordType::A, 60, answers)
}

async fn apply(p: &Rfc2136Provider, changes: Vec<Change>) -> Result<(), ProviderError> {
    p.apply(&ChangeBatch { zone: rn(ZONE), changes }).await
}

async fn dig(server: &Arc<DnsServer>, name: &str, rtype: &str) -> Vec<String> {
    let (server, name, rtype) = (server.clone(), name.to_string(), rtype.to_string());
    tokio::task::spawn_blocking(move || server.dig(&name, &rtype)).await.unwrap()
}

async fn read(p: &Rfc2136Provider, name: &str) -> Observed {
    p.read(&rn(name), RecordType::A).await.unwrap()
}

async fn create_change_and_remove_answers_are_seen_by_dig(kind: ServerKind) {
    let Some(server) = start(kind, "hmac-sha256") else { return };
    let p = provider(&server);
    let name = "www.example.test.";
    let steps: [&[&str]; 3] =
        [&["192.0.2.1", "192.0.2.2", "192.0.2.3"], &["192.0.2.2", "192.0.2.3", "192.0.2.4"], &["192.0.2.4"]];
    for (i, step) in steps.iter().enumerate() {
        let generation = i as u64 + 1;
        let before = read(&p, name).await;
        apply(&p, vec![Change::new(before, set(name, step), ownership(generation))]).await.unwrap();
        assert_eq!(dig(&server, name, "A").await, step.to_vec(), "{kind:?} step {generation}");
        let txt = dig(&server, &format!("_veer.{name}"), "TXT").await;
        assert_eq!(txt, vec![format!("\"{}\"", ownership(generation).encode())], "{kind:?} ownership record");
        let observed = read(&p, name).await;
        assert_eq!(observed.ownership, Some(ownership(generation)));
        assert_eq!(observed.records, Some(set(name, step)));
    }
}

async fn an_unowned_pre_existing_name_is_left_untouched(kind: ServerKind) {
    let Some(server) = start(kind, "hmac-sha256") else { return };
    let p = provider(&server);
    let name = "legacy.example.test.";
    let before = read(&p, name).await;
    assert_eq!(before.ownership, None);
    let result = apply(&p, vec![Change::new(before.clone(), set(name, &["192.0.2.1"]), ownership(1))]).await;
    assert!(matches!(result, Err(ProviderError::NotOwned(_))), "{kind:?}: {result:?}");
    assert_eq!(dig(&server, name, "A").await, vec!["192.0.2.99"]);
    assert!(dig(&server, &format!("_veer.{name}"), "TXT").await.is_empty());
}

async fn a_competing_writer_between_read_and_write_makes_apply_conflict(kind: ServerKind) {
    let Some(server) = start(kind, "hmac-sha256") else { return };
    let p = provider(&server);
    let (a, b) = ("a.example.test.", "b.example.test.");
    for name in [a, b] {
        let before = read(&p, name).await;
        apply(&p, vec![Change::new(before, set(name, &["192.0.2.10"]), ownership(1))]).await.unwrap();
    }
    let (read_a, read_b) = (read(&p, a).await, read(&p, b).await);

    // nsupdate, as another controller would, bumps b's ownership record.
    let theirs = OwnershipRecord { generation: 2, ..ownership(1) };
    let s = server.clone();
    let line = format!("update delete _veer.{b} TXT\nupdate add _veer.{b} 60 TXT \"{}\"", theirs.encode());
    tokio::task::spawn_blocking(move || s.nsupdate(&[line])).await.unwrap().unwrap();

    let result = apply(
        &p,
        vec![
            Change::new(read_a.clone(), set(a, &["192.0.2.11"]), ownership(2)),
            Change::new(read_b, set(b, &["192.0.2.11"]), ownership(2)),
        ],
    )
    .await;
    assert!(matches!(result, Err(ProviderError::Conflict(_))), "{kind:?}: {result:?}");
    assert_eq!(dig(&server, a, "A").await, vec!["192.0.2.10"], "nothing half-applied");
    assert_eq!(read(&p, a).await, read_a);
    assert_eq!(dig(&server, b, "A").await, vec!["192.0.2.10"]);
    assert_eq!(read(&p, b).await.ownership, Some(theirs));
}

async fn concurrent_writers_from_one_read_exactly_one_wins(kind: ServerKind) {
    let Some(server) = start(kind, "hmac-sha256") else { return };
    let p = Arc::new(provider(&server));
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
    assert_eq!((wins, conflicts), (1, 9), "{kind:?}: {results:?}");
}

async fn a_wrong_tsig_key_is_a_clear_error_and_changes_nothing(kind: ServerKind) {
    let Some(server) = start(kind, "hmac-sha256") else { return };
    let name = "www.example.test.";
    let wrong_secret = random_secret_base64(32);
    let bad = provider_for(&server, &wrong_secret, &server.key().name, ZONE);
    let before = read(&bad, name).await;
    let result = apply(&bad, vec![Change::new(before.clone(), set(name, &["192.0.2.1"]), ownership(1))]).await;
    let Err(ProviderError::Rejected(message)) = &result else { panic!("{kind:?}: expected Rejected, got {result:?}") };
    // BIND and Knot answer NOTAUTH with the TSIG error; PowerDNS 4.7 answers a
    // plain REFUSED to a badly signed update, which is all there is to report.
    let (bad_secret, bad_key) = match kind {
        ServerKind::PowerDns => ("REFUSED", "REFUSED"),
        _ => ("BADSIG", "BADKEY"),
    };
    eprintln!("{kind:?} wrong secret: {message}");
    assert!(message.contains(bad_secret), "{kind:?}: {message}");
    assert!(!message.contains(&wrong_secret) && !message.contains(&server.key().secret_base64));
    assert!(dig(&server, name, "A").await.is_empty(), "nothing written");

    let unknown = provider_for(&server, &server.key().secret_base64, "no-such-key", ZONE);
    let result = apply(&unknown, vec![Change::new(before, set(name, &["192.0.2.1"]), ownership(1))]).await;
    let Err(ProviderError::Rejected(message)) = &result else { panic!("{kind:?}: expected Rejected, got {result:?}") };
    eprintln!("{kind:?} unknown key: {message}");
    assert!(message.contains(bad_key), "{kind:?}: {message}");
    assert!(dig(&server, name, "A").await.is_empty(), "nothing written");
}

async fn a_zone_the_server_does_not_serve_is_a_clear_error(kind: ServerKind) {
    let Some(server) = start(kind, "hmac-sha256") else { return };
    let p = provider_for(&server, &server.key().secret_base64, &server.key().name, "other.test.");
    let checked = p.check_zones().await;
    assert!(
        matches!(&checked, Err(ProviderError::Rejected(m)) if m.contains("does not serve zone other.test.")),
        "{kind:?}: {checked:?}"
    );
    let result = p.read(&rn("www.other.test."), RecordType::A).await;
    assert!(matches!(&result, Err(ProviderError::Rejected(m)) if m.contains("other.test.")), "{kind:?}: {result:?}");
    let absent = Observed::absent(rn("www.other.test."), RecordType::A);
    let answers = vec![Answer { set_id: None, value: "192.0.2.1".into(), weight: None }];
    let desired = RecordSet::new(rn("www.other.test."), RecordType::A, 60, answers);
    let batch = ChangeBatch { zone: rn("other.test."), changes: vec![Change::new(absent, desired, ownership(1))] };
    let result = p.apply(&batch).await;
    eprintln!("{kind:?} zone not served: {checked:?} / {result:?}");
    assert!(
        matches!(&result, Err(ProviderError::Rejected(m))
            if m.contains("does not serve zone other.test.") && (m.contains("NOTAUTH") || m.contains("REFUSED"))),
        "{kind:?}: {result:?}"
    );
    assert!(provider(&server).check_zones().await.is_ok());
}

async fn hmac_sha512_keys_work(kind: ServerKind) {
    let Some(server) = start(kind, "hmac-sha512") else { return };
    let p = provider(&server);
    let name = "sha512.example.test.";
    let before = read(&p, name).await;
    apply(&p, vec![Change::new(before, set(name, &["192.0.2.5"]), ownership(1))]).await.unwrap();
    assert_eq!(dig(&server, name, "A").await, vec!["192.0.2.5"]);
}

mod powerdns {
    use super::*;
    async fn powerdns_harness() -> Option<Harness> {
        harness(ServerKind::PowerDns)
    }
    veer_provider::provider_battery!(powerdns_harness);
}

/// Not a check: prints the latency of reads and conditional updates
/// (`cargo test -p veer-provider-rfc2136 --test servers -- --ignored --nocapture`).
async fn measure_read_and_update_latency(kind: ServerKind) {
    let Some(server) = start(kind, "hmac-sha256") else { return };
    let p = provider(&server);
    let name = "latency.example.test.";
    let rounds = 50u32;
    let (mut reading, mut updating) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for i in 0..rounds {
        let t = std::time::Instant::now();
        let before = read(&p, name).await;
        reading += t.elapsed();
        let value = format!("192.0.2.{}", i % 200 + 1);
        let t = std::time::Instant::now();
        apply(&p, vec![Change::new(before, set(name, &[&value]), ownership(u64::from(i) + 1))]).await.unwrap();
        updating += t.elapsed();
    }
    eprintln!("{kind:?}: read {:?}/op, conditional update {:?}/op", reading / rounds, updating / rounds);
}

macro_rules! per_server {
    ($($test:ident),* $(,)?) => {
        mod bind_server {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(ServerKind::Bind).await;
                }
            )*
        }
        mod knot_server {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(ServerKind::Knot).await;
                }
            )*
        }
        mod powerdns_server {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(ServerKind::PowerDns).await;
                }
            )*
        }
    };
}

per_server!(
    create_change_and_remove_answers_are_seen_by_dig,
    an_unowned_pre_existing_name_is_left_untouched,
    a_competing_writer_between_read_and_write_makes_apply_conflict,
    concurrent_writers_from_one_read_exactly_one_wins,
    a_wrong_tsig_key_is_a_clear_error_and_changes_nothing,
    a_zone_the_server_does_not_serve_is_a_clear_error,
    hmac_sha512_keys_work,
);

mod measure {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "prints figures; run explicitly"]
    async fn print_read_and_update_latency_on_every_server() {
        for kind in [ServerKind::Bind, ServerKind::Knot, ServerKind::PowerDns] {
            measure_read_and_update_latency(kind).await;
        }
    }
}
