//! Unit tests of the pieces that need no server: configuration, redaction, the
//! mapping of API RRsets to observations, the PATCH body and the verification.

use super::*;
use veer_provider::{Change, OwnershipRecord};

const KEY: &str = "pdns-api-key-hunter2";

fn rn(s: &str) -> RecordName {
    RecordName::parse(s).unwrap()
}

fn config(writes: WriteMode) -> PowerDnsConfig {
    PowerDnsConfig::new("pdns", "http://127.0.0.1:8081", ApiKey::new(KEY).unwrap(), vec![rn("example.test.")], writes)
}

fn rfc2136_writes() -> WriteMode {
    let key = TsigKey::new("veer-key", TsigAlgorithm::HmacSha256, b"tsig-secret-bytes".to_vec()).unwrap();
    WriteMode::Rfc2136 { server: "127.0.0.1:53".parse().unwrap(), key }
}

fn rrset(name: &str, rtype: &str, ttl: u32, contents: &[(&str, bool)]) -> ApiRrset {
    ApiRrset {
        name: name.into(),
        rtype: rtype.into(),
        ttl,
        records: contents.iter().map(|(c, disabled)| ApiRecord { content: (*c).into(), disabled: *disabled }).collect(),
    }
}

fn ownership(generation: u64, epoch: u64) -> OwnershipRecord {
    OwnershipRecord { owner: "veer".into(), generation, epoch, policy_hash: "p1".into() }
}

fn set(name: &str, values: &[&str]) -> RecordSet {
    let answers = values.iter().map(|v| Answer { set_id: None, value: (*v).into(), weight: None }).collect();
    RecordSet::new(rn(name), RecordType::A, 60, answers)
}

#[test]
fn the_api_key_never_appears_in_debug_output() {
    for writes in [rfc2136_writes(), WriteMode::ApiLastWriterWins] {
        let provider = PowerDnsProvider::new(config(writes)).unwrap();
        let text = format!("{provider:?} {:?} {:?}", provider.config, provider.api);
        assert!(!text.contains(KEY), "{text}");
        assert!(!text.contains("tsig-secret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}

#[test]
fn bad_keys_urls_and_empty_zone_lists_are_refused_without_quoting_secrets() {
    assert_eq!(ApiKey::new("").unwrap_err(), ConfigError::EmptyApiKey);
    assert_eq!(ApiKey::new(" \n").unwrap_err(), ConfigError::EmptyApiKey);
    let error = ApiKey::new(b"hunter2\x01".to_vec()).unwrap_err();
    assert_eq!(error, ConfigError::BadApiKey);
    assert!(!format!("{error} {error:?}").contains("hunter2"));
    // A trailing newline from a key file is not part of the key.
    assert_eq!(ApiKey::new("abc\n").unwrap().expose(), b"abc");

    let mut c = config(WriteMode::ApiLastWriterWins);
    c.zones.clear();
    assert_eq!(PowerDnsProvider::new(c).unwrap_err(), ConfigError::NoZones);
    let mut c = config(WriteMode::ApiLastWriterWins);
    c.api_url = "ftp://pdns".into();
    assert!(matches!(PowerDnsProvider::new(c).unwrap_err(), ConfigError::BadApiUrl(_)));
    let mut c = config(WriteMode::ApiLastWriterWins);
    c.api_url = "http://admin:s3cret@pdns:8081".into();
    let error = PowerDnsProvider::new(c).unwrap_err();
    assert!(!error.to_string().contains("s3cret"), "{error}");
}

#[test]
fn capabilities_follow_the_write_mode() {
    let rfc = PowerDnsProvider::new(config(rfc2136_writes())).unwrap().capabilities();
    assert_eq!(
        (rfc.weighting, rfc.atomic_batches, rfc.cas),
        (Weighting::SetOnly, true, CasPrimitive::Rfc2136Prerequisite)
    );
    let api = PowerDnsProvider::new(config(WriteMode::ApiLastWriterWins)).unwrap().capabilities();
    assert_eq!((api.weighting, api.atomic_batches, api.cas), (Weighting::SetOnly, false, CasPrimitive::PreRead));
    assert_eq!(api.batch_records_max, 200);
}

#[test]
fn an_observation_takes_enabled_answers_and_the_unquoted_ownership_record() {
    let rrsets = vec![
        rrset("WWW.example.test.", "A", 60, &[("192.0.2.2", false), ("192.0.2.1", false), ("192.0.2.9", true)]),
        rrset("www.example.test.", "AAAA", 60, &[("2001:db8::1", false)]),
        rrset("_veer.www.example.test.", "TXT", 60, &[(r#""owner=veer;gen=3;epoch=2;policy=p1""#, false)]),
        rrset("other.example.test.", "A", 60, &[("192.0.2.7", false)]),
    ];
    let observed = observe(&rrsets, &rn("www.example.test."), RecordType::A);
    assert_eq!(observed.records, Some(set("www.example.test.", &["192.0.2.1", "192.0.2.2"])));
    assert_eq!(observed.ownership, Some(ownership(3, 2)));
    assert_eq!(observed.foreign_ownership, None);

    let absent = observe(&rrsets, &rn("nope.example.test."), RecordType::A);
    assert_eq!(absent, Observed::absent(rn("nope.example.test."), RecordType::A));

    // Only disabled answers: PowerDNS serves nothing, so nothing is there.
    let disabled = vec![rrset("d.example.test.", "A", 60, &[("192.0.2.1", true)])];
    assert_eq!(observe(&disabled, &rn("d.example.test."), RecordType::A).records, None);
}

#[test]
fn an_ownership_record_that_does_not_decode_is_kept_as_foreign() {
    let rrsets = vec![
        rrset("x.example.test.", "A", 60, &[("192.0.2.1", false)]),
        rrset("_veer.x.example.test.", "TXT", 60, &[(r#""hello world""#, false)]),
    ];
    let observed = observe(&rrsets, &rn("x.example.test."), RecordType::A);
    assert_eq!(observed.foreign_ownership.as_deref(), Some("hello world"));
    assert!(observed.check_owner("veer", true).is_err());
}

#[test]
fn aaaa_answers_compare_in_canonical_form() {
    assert_eq!(canonical(RecordType::AAAA, "2001:DB8:0:0::1"), "2001:db8::1");
    assert_eq!(canonical(RecordType::CNAME, "Target.Example."), "target.example.");
    assert_eq!(canonical(RecordType::A, "192.0.2.1"), "192.0.2.1");
}

fn batch(expected: Observed, values: &[&str], own: OwnershipRecord) -> ChangeBatch {
    let desired = set(expected.name.as_str(), values);
    ChangeBatch { zone: rn("example.test."), changes: vec![Change::new(expected, desired, own)] }
}

#[test]
fn one_patch_replaces_the_answers_and_the_quoted_ownership_record() {
    let caps = PowerDnsProvider::new(config(WriteMode::ApiLastWriterWins)).unwrap().capabilities();
    let b =
        batch(Observed::absent(rn("www.example.test."), RecordType::A), &["192.0.2.2", "192.0.2.1"], ownership(1, 1));
    let patch = patch_for(&b, &caps);
    let json = serde_json::to_value(&patch).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"name": "www.example.test.", "type": "A", "ttl": 60, "changetype": "REPLACE",
             "records": [{"content": "192.0.2.1", "disabled": false}, {"content": "192.0.2.2", "disabled": false}]},
            {"name": "_veer.www.example.test.", "type": "TXT", "ttl": 60, "changetype": "REPLACE",
             "records": [{"content": "\"owner=veer;gen=1;epoch=1;policy=p1\"", "disabled": false}]}
        ])
    );
}

#[test]
fn verification_finds_another_writer_who_came_right_after() {
    let caps = PowerDnsProvider::new(config(WriteMode::ApiLastWriterWins)).unwrap().capabilities();
    let b = batch(Observed::absent(rn("www.example.test."), RecordType::A), &["192.0.2.1"], ownership(1, 1));
    let ours = vec![
        rrset("www.example.test.", "A", 60, &[("192.0.2.1", false)]),
        rrset("_veer.www.example.test.", "TXT", 60, &[(r#""owner=veer;gen=1;epoch=1;policy=p1""#, false)]),
    ];
    assert_eq!(verify(&b, &caps, &ours), Ok(()));

    let theirs = vec![
        ours[0].clone(),
        rrset("_veer.www.example.test.", "TXT", 60, &[(r#""owner=other;gen=9;epoch=1;policy=q""#, false)]),
    ];
    let result = verify(&b, &caps, &theirs);
    assert!(matches!(&result, Err(ProviderError::Conflict(m)) if m.contains("owner=other")), "{result:?}");

    let answers_changed = vec![rrset("www.example.test.", "A", 60, &[("192.0.2.66", false)]), ours[1].clone()];
    assert!(matches!(verify(&b, &caps, &answers_changed), Err(ProviderError::Conflict(_))));
    assert!(matches!(verify(&b, &caps, &[]), Err(ProviderError::Conflict(m)) if m.contains("no ownership record")));
}
