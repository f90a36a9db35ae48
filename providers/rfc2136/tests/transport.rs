//! Transport failures, without a DNS server: what was surely not sent is
//! `Unavailable`, what may have landed is `Ambiguous` (and settled by a re-read).

use std::time::Duration;
use veer_provider::{
    Answer, Change, ChangeBatch, Observed, OwnershipRecord, Provider, ProviderError, RecordName, RecordSet, RecordType,
};
use veer_provider_rfc2136::{Rfc2136Config, Rfc2136Provider, TsigAlgorithm, TsigKey};

fn rn(s: &str) -> RecordName {
    RecordName::parse(s).unwrap()
}

fn provider_at(addr: std::net::SocketAddr) -> Rfc2136Provider {
    let key = TsigKey::new("k", TsigAlgorithm::HmacSha256, vec![7; 32]).unwrap();
    let mut config = Rfc2136Config::new("test", addr, vec![rn("example.test.")], key);
    config.timeout = Duration::from_millis(500);
    Rfc2136Provider::new(config).unwrap()
}

fn batch() -> ChangeBatch {
    let name = rn("www.example.test.");
    let answers = vec![Answer { set_id: None, value: "192.0.2.1".into(), weight: None }];
    let desired = RecordSet::new(name.clone(), RecordType::A, 60, answers);
    let ownership = OwnershipRecord { owner: "o".into(), generation: 1, epoch: 1, policy_hash: "p".into() };
    ChangeBatch {
        zone: rn("example.test."),
        changes: vec![Change::new(Observed::absent(name, RecordType::A), desired, ownership)],
    }
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_because_nothing_was_sent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let p = provider_at(addr);
    assert!(matches!(p.apply(&batch()).await, Err(ProviderError::Unavailable(_))));
    assert!(matches!(p.read(&rn("www.example.test."), RecordType::A).await, Err(ProviderError::Unavailable(_))));
}

#[tokio::test]
async fn an_update_that_gets_no_reply_is_ambiguous() {
    // A server that accepts the connection and the update, then never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            held.push(socket);
        }
    });
    let result = provider_at(addr).apply(&batch()).await;
    assert!(matches!(&result, Err(ProviderError::Ambiguous(_))), "{result:?}");
    assert!(result.unwrap_err().needs_reread());
    silent.abort();
}

#[tokio::test]
async fn names_outside_the_configured_zones_are_rejected_before_any_io() {
    let p = provider_at("127.0.0.1:9".parse().unwrap());
    let result = p.read(&rn("www.example.org."), RecordType::A).await;
    assert!(matches!(result, Err(ProviderError::Rejected(m)) if m.contains("no zone")));
    let mut other = batch();
    other.zone = rn("test.");
    assert!(matches!(p.apply(&other).await, Err(ProviderError::Rejected(_))));
}
