//! Credentials never appear in `Debug` output, errors or logs (ARCHITECTURE.md §9).
//!
//! Alone in its test binary: the log capture is the process-wide subscriber,
//! because a thread-scoped one misses events whose call sites another test
//! thread registered first.

mod fake;

use fake::{FakeRoute53, Fault, Op};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use veer_provider::{Answer, Change, ChangeBatch, OwnershipRecord, Provider, RecordName, RecordSet, RecordType};
use veer_provider_route53::{InsyncWait, Route53Config, Route53Provider, Secret, StaticCredentials};

/// A recognisable fake secret: no output may ever contain it.
const SECRET: &str = "veerFAKEsecretKEYdoNOTprint0123456789abcd";
const API: &str = "api.example.com.";

fn name(text: &str) -> RecordName {
    RecordName::parse(text).unwrap()
}

fn records(weight: u32) -> RecordSet {
    let answer = Answer { set_id: Some("a".into()), value: "192.0.2.1".into(), weight: Some(weight) };
    RecordSet::new(name(API), RecordType::A, 30, vec![answer])
}

fn batch(expected: &veer_provider::Observed, weight: u32) -> ChangeBatch {
    let ownership = OwnershipRecord { owner: "prod-a".into(), generation: 1, epoch: 1, policy_hash: "x".into() };
    ChangeBatch {
        zone: name("example.com."),
        changes: vec![Change { expected: expected.clone(), desired: records(weight), ownership, adopt: false }],
    }
}

/// A `MakeWriter` collecting every log line in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn credentials_never_appear_in_debug_output_errors_or_logs() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fake = FakeRoute53::start().await;
    let config = Route53Config {
        zones: vec![name("example.com.")],
        endpoint_url: Some(fake.url.clone()),
        credentials: Some(StaticCredentials {
            access_key_id: "AKIDVEERTEST".into(),
            secret_access_key: Secret::new(SECRET),
            session_token: Some(Secret::new(format!("{SECRET}-token"))),
        }),
        insync: InsyncWait { enabled: true, interval: Duration::from_millis(10), timeout: Duration::from_secs(10) },
        ..Route53Config::default()
    };
    let mut texts = vec![format!("{config:?}"), format!("{:?}", config.credentials)];
    let provider = Route53Provider::connect("route53-test", config).await.unwrap();
    texts.push(format!("{provider:?}"));
    let read = provider.read(&name(API), RecordType::A).await.unwrap();
    provider.apply(&batch(&read, 1)).await.unwrap();
    for fault in [Fault::Status(403, "SignatureDoesNotMatch"), Fault::Throttling, Fault::Status(500, "InternalError")] {
        fake.fault(Op::ChangeResourceRecordSets, fault);
        let err = provider.apply(&batch(&read, 2)).await.unwrap_err();
        texts.push(format!("{err} {err:?}"));
    }
    fake.stop();
    let err = provider.read(&name(API), RecordType::A).await.unwrap_err();
    texts.push(format!("{err} {err:?}"));

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("route53 change applied"), "the capture works");
    assert!(logged.len() > 1000, "trace-level SDK logs were captured too");
    texts.push(logged);
    for text in texts {
        assert!(!text.contains(SECRET), "secret key leaked into: {text}");
    }
}
