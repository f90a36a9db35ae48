//! I2 + I3 against real servers: three writer processes elect a leader on a real
//! etcd cluster and write a real BIND zone through the fenced enactor. The leader
//! is paused (SIGSTOP) *after* its fence check passed and its change was built,
//! *before* the UPDATE is sent — the racing-writer shape of ARCHITECTURE.md §5. A new
//! leader then applies newer generations. When the old leader resumes, its
//! stale UPDATE reaches BIND and fails the ownership compare-and-swap; it then
//! observes its loss and writes nothing more. The record is never empty.

#[path = "coord_support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::etcd::Etcd;
use support::{Helper, Lines};
use veer::coord::etcd::{EtcdCoordinator, EtcdOptions};
use veer::coord::{Coordinator, Timings};
use veer::enactor::{Enactor, Intent, LeaderFence, Outcome};
use veer_provider::{Answer, ChangeBatch, Provider, ProviderFuture, RecordName, RecordSet, RecordType};
use veer_provider_rfc2136::{Rfc2136Config, Rfc2136Provider, TsigAlgorithm, TsigKey};
use veer_provider_testbed::{DnsServer, ServerKind, ZoneSpec};

const NAME: &str = "api.example.test.";

/// Holds every apply in a window after announcing it, so the parent can pause the
/// process between the fence check and the UPDATE reaching the server.
struct SendWindow(Arc<dyn Provider>);

impl veer_provider::ProviderWrapper for SendWindow {
    fn inner(&self) -> &dyn Provider {
        &*self.0
    }
    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            let generation = batch.changes[0].ownership.generation;
            println!("@ SENDING {generation}");
            tokio::time::sleep(Duration::from_millis(1500)).await;
            self.0.apply(batch).await
        })
    }
}

/// Helper mode: a writer process. While leading, publishes one answer naming
/// itself and a sequence number, every 300 ms, through the fenced enactor.
#[test]
fn helper_dns_writer() {
    if std::env::var("VEER_COORD_HELPER").as_deref() != Ok("dns-writer") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(write_while_leading());
}

async fn write_while_leading() {
    let var = |k: &str| std::env::var(k).unwrap();
    let id: usize = var("VEER_ID").parse().unwrap();
    let endpoints: Vec<String> = var("VEER_ETCD_ENDPOINTS").split(',').map(str::to_owned).collect();
    let timings = Timings::new(Duration::from_secs(3), Duration::from_secs(2), Duration::from_millis(500)).unwrap();
    let options = EtcdOptions::new(endpoints, "/t/dns-writers".to_owned(), &format!("w{id}"), timings);
    let coordinator: Arc<dyn Coordinator> = loop {
        match EtcdCoordinator::connect(options.clone()).await {
            Ok(c) => break Arc::new(c),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let key =
        TsigKey::from_base64(&var("VEER_TSIG_NAME"), TsigAlgorithm::HmacSha256, &var("VEER_TSIG_SECRET")).unwrap();
    let zone = RecordName::parse("example.test.").unwrap();
    let server = var("VEER_DNS").parse().unwrap();
    let bind: Arc<dyn Provider> =
        Arc::new(Rfc2136Provider::new(Rfc2136Config::new("bind", server, vec![zone], key)).unwrap());
    let provider: Arc<dyn Provider> = Arc::new(SendWindow(bind.clone()));
    let name = RecordName::parse(NAME).unwrap();
    let mut seq = 0u32;
    loop {
        let Ok(epoch) = coordinator.campaign().await else { continue };
        println!("@ LEADER {epoch}");
        let enactor = Enactor::new(
            "writers",
            [("bind".to_string(), provider.clone())].into(),
            Arc::new(LeaderFence::new(coordinator.clone(), epoch)),
            Duration::from_millis(500),
        );
        while coordinator.leadership().borrow().epoch() == Some(epoch) {
            seq += 1;
            let base = bind.read(&name, RecordType::A).await.unwrap();
            let value = format!("192.0.2.{}", id * 60 + (seq as usize % 50) + 1);
            let answer = Answer { set_id: None, value, weight: None };
            let desired = RecordSet::new(name.clone(), RecordType::A, 30, vec![answer]);
            let intent = Intent {
                provider: "bind".into(),
                policy: "p".into(),
                policy_hash: "h".into(),
                adopt: false,
                desired,
                base,
            };
            let report = enactor.enact(&[intent]).await;
            match &report.outcomes[0].2 {
                Outcome::Applied { generation } => println!("@ APPLIED {epoch} {generation}"),
                Outcome::Conflict(_) => println!("@ CONFLICT {epoch}"),
                Outcome::Fenced => println!("@ FENCED {epoch}"),
                other => println!("@ OTHER {epoch} {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        println!("@ LOST {epoch}");
    }
}

fn word(line: &support::Line, i: usize) -> &str {
    line.words.get(i).map_or("", String::as_str)
}

#[test]
fn a_leader_paused_before_sending_has_its_stale_update_refused_by_bind_and_stops_writing() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let Some(etcd) = runtime.block_on(Etcd::start(3)) else { return };
    let Some(bind) = DnsServer::start(ServerKind::Bind, &ZoneSpec::new("example.test.")) else { return };
    let lines = Lines::default();
    let envs = |i: usize| {
        vec![
            ("VEER_COORD_HELPER", "dns-writer".to_owned()),
            ("VEER_ETCD_ENDPOINTS", etcd.endpoints().join(",")),
            ("VEER_ID", i.to_string()),
            ("VEER_DNS", bind.addr().to_string()),
            ("VEER_TSIG_NAME", bind.key().name.clone()),
            ("VEER_TSIG_SECRET", bind.key().secret_base64.clone()),
        ]
    };
    let helpers: Vec<Helper> = (0..3).map(|i| Helper::spawn("helper_dns_writer", &envs(i), i, &lines)).collect();

    // The first leader publishes at least once, then announces its next UPDATE: pause it there.
    let (_, first) = lines.wait_for(0, Duration::from_secs(30), |l| word(l, 0) == "APPLIED").expect("a first write");
    let old = first.proc;
    let (_, sending) = lines
        .wait_for(0, Duration::from_secs(10), |l| l.proc == old && word(l, 0) == "SENDING" && word(l, 1) != "1")
        .expect("the leader's next UPDATE");
    helpers[old].signal("STOP");
    let paused_at = Instant::now();
    let stale_generation = word(&sending, 1).to_owned();

    // A successor takes over and applies newer generations.
    let mark = lines.len();
    lines
        .wait_for(mark, Duration::from_secs(30), |l| l.proc != old && word(l, 0) == "APPLIED")
        .expect("the successor writes");
    let successor_writes = lines.wait_for(mark, Duration::from_secs(15), |l| {
        l.proc != old && word(l, 0) == "APPLIED" && word(l, 2).parse::<u64>().unwrap_or(0) >= 3
    });
    assert!(successor_writes.is_some(), "the successor applied several generations");

    // Resume: the stale UPDATE goes out, BIND refuses it (NXRRSET on the old ownership
    // record), and the old leader observes its loss without any further write.
    let mark = lines.len();
    helpers[old].signal("CONT");
    let (_, refused) = lines
        .wait_for(mark, Duration::from_secs(10), |l| l.proc == old && word(l, 0) != "SENDING")
        .expect("the resumed leader reports its apply");
    assert_eq!(
        word(&refused, 0),
        "CONFLICT",
        "the stale UPDATE (generation {stale_generation}) must fail: {refused:?}"
    );
    lines
        .wait_for(mark, Duration::from_secs(6), |l| l.proc == old && word(l, 0) == "LOST")
        .expect("the resumed leader observes its loss within the renew deadline (plus slack)");
    std::thread::sleep(Duration::from_secs(1));
    let after: Vec<_> = lines.snapshot().into_iter().skip(mark).filter(|l| l.proc == old).collect();
    assert!(after.iter().all(|l| word(l, 0) != "APPLIED"), "the old leader wrote after resuming: {after:?}");

    let answers = bind.dig(NAME, "A");
    assert_eq!(answers.len(), 1, "one answer, never empty: {answers:?}");
    let txt = bind.dig(&format!("_veer.{NAME}"), "TXT").join(" ");
    assert!(txt.contains("owner=writers"), "ownership record: {txt}");
    println!("paused for {:?}; stale generation {stale_generation} refused", paused_at.elapsed());
    drop(helpers);
}
