//! ARCHITECTURE.md §8 scenario 1, the racing enactor of §1.1, with real processes: two
//! `veer run` replicas on a real etcd write a real BIND zone.
//!
//! The old leader runs with a chaos file that stalls its writes (from 10 s on,
//! 5 s each, *before* they reach BIND). A backend dies; the old leader reads
//! BIND, builds its change and passes its fence; the write stalls and the chaos
//! layer logs it with the generation it carries. The test sees that line and
//! SIGSTOPs the process right there: its change is built and not sent. The
//! lease runs out; the other replica takes over and applies several newer
//! generations (the backend is restarted, another dies and returns), and with
//! `historyKeep: 2` every apply cleans the plan history up — the entries at and
//! below the stale generation are deleted. Then SIGCONT: the stale write goes
//! out. Expect: BIND refuses it (its compare-and-swap on the ownership record),
//! no resolver poll ever sees an empty answer or a generation going backwards,
//! and the old leader observes its loss and writes nothing more.

use super::checker::{self, Facts, Outage};
use super::etcd::Etcd;
use super::fleet::{
    Backends, ControllerSpec, Coordination, NAME, Node, Publish, detection_bound, health_check, logs, sum, write_chaos,
    write_policy,
};
use super::resolver::{Resolver, Timeline};
use super::support::replica::{require_dig, wait_until};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::time::Duration;
use veer_provider_testbed::{DnsServer, ServerKind, ZoneSpec};

/// When the old leader's writes start stalling, after it started.
const STALL_FROM: Duration = Duration::from_secs(10);
/// How long each stalled write waits before it is sent.
const STALL_FOR: Duration = Duration::from_secs(5);

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, 1, n)
}

/// The generations in a `CHAOS: fault injected` line (`generations=[2]`).
fn generations(line: &str) -> Vec<u64> {
    let list = line.split("generations=[").nth(1).and_then(|rest| rest.split(']').next()).unwrap_or_default();
    list.split(',').filter_map(|g| g.trim().parse().ok()).collect()
}

fn is_write_fault(line: &str) -> bool {
    line.contains("CHAOS: fault injected") && line.contains("operation=write")
}

/// `run: applied …` lines (not `not applied`).
fn is_applied(line: &str) -> bool {
    line.contains(": applied ")
}

/// The generations in the plan history `/v1/history?record=NAME` of `node`.
fn history(node: &Node) -> Vec<u64> {
    let body = super::support::replica::get(node.admin, &format!("/v1/history?record={NAME}")).map(|(_, b)| b);
    let entries: Value = body.and_then(|b| serde_json::from_str(&b).ok()).unwrap_or_default();
    entries.as_array().into_iter().flatten().filter_map(|e| e["generation"].as_u64()).collect()
}

#[test]
fn a_leader_paused_between_building_and_sending_its_change_has_it_refused_by_bind_and_stops_writing() {
    require_dig();
    let timeline = Timeline::start();
    let ids = [("a", ip(1)), ("b", ip(2)), ("c", ip(3))];
    let mut backends = Backends::start(timeline, &ids);
    let Some(etcd) = backends.runtime().block_on(Etcd::start(1)) else { return };
    let Some(bind) = DnsServer::start(ServerKind::Bind, &ZoneSpec::new("example.test.")) else { return };
    let dir = tempfile::tempdir().unwrap();
    let etcd_url = etcd.endpoints()[0].clone();
    ControllerSpec {
        cluster: "racing",
        publish: Publish::Bind(&bind),
        coordination: Coordination::Etcd(&etcd_url),
        history_keep: Some(2),
        budget: None,
    }
    .write(dir.path());
    write_policy(
        dir.path(),
        &[("p", ids.iter().map(|(id, address)| (*id, *address, 100)).collect())],
        &health_check(backends.port(), 50),
        "  warmup: { stages: [100], hold: 1s, maxJoinPercent: 100 }\n  shift: { maxRemovePercent: 100, window: 1s }\n  \
         guards: { minHealthyEndpoints: 1, minCapacityPercent: 0 }\n",
    );
    write_chaos(
        dir.path(),
        "stall.yaml",
        "racing-writer",
        &format!(
            "  providers:\n    - {{ provider: dns, operations: [write], from: {}s, stalled: 100, stallFor: {}s }}\n",
            STALL_FROM.as_secs(),
            STALL_FOR.as_secs()
        ),
    );
    let secret = bind.key().secret_base64.clone();
    let old = Node::start(dir.path(), "old", &["--chaos", "stall.yaml"], Some(&secret), timeline);
    assert!(wait_until(Duration::from_secs(30), || old.leads()), "the first replica leads\n{}", old.log());
    let resolver = Resolver::start(bind.addr(), NAME, timeline);
    let all = backends.up_addresses();
    assert!(resolver.wait_for(Duration::from_secs(30), &all), "the old leader publishes\n{}", old.log());
    assert!(
        !old.log().lines().any(is_write_fault),
        "the first publish came after the stall window opened: the machine is too slow for this scenario\n{}",
        old.log()
    );
    let new = Node::start(dir.path(), "new", &[], Some(&secret), timeline);
    let opens = old.started + STALL_FROM + Duration::from_millis(500);
    std::thread::sleep(opens.saturating_sub(timeline.now()));

    // A backend dies: the old leader builds the change that removes it, and its write stalls.
    let skip = old.lines();
    backends.down("c");
    let (_, stalled) = old
        .wait_for_line(Duration::from_secs(20), skip, is_write_fault)
        .unwrap_or_else(|| panic!("the old leader's write never stalled\n{}", old.log()));
    old.signal("STOP");
    let paused = timeline.now();
    let stale = generations(&stalled);
    println!("{:>8.3}s old leader paused holding its write of generation {stale:?}", paused.as_secs_f64());
    assert_eq!(stale.len(), 1, "one record, one change: {stalled}");
    let stale = stale[0];
    assert!(
        !old.log().lines().skip(skip).any(is_applied),
        "the stalled write went out before the pause ({STALL_FOR:?} stall): the scenario did not pause it in time\n{}",
        old.log()
    );

    // The lease runs out; the other replica leads and applies several newer generations.
    assert!(wait_until(Duration::from_secs(30), || new.leads()), "{}", logs(&[&new]));
    let takeover = timeline.now();
    println!("{:>8.3}s the other replica leads", takeover.as_secs_f64());
    let outages = vec![Outage { from: paused, until: takeover, why: "old leader paused, lease running out".into() }];
    let bound = detection_bound();
    for (change, id) in [("down", "c"), ("up", "c"), ("down", "b"), ("up", "b")] {
        match change {
            "up" => backends.up(id),
            _ if backends.is_up(id) => backends.down(id),
            _ => {}
        }
        let expected = backends.up_addresses();
        assert!(
            resolver.wait_for(bound + Duration::from_secs(5), &expected),
            "the new leader publishes {expected:?} after {id} went {change}; BIND answers {:?}\nstatus {}\n{}",
            resolver.answers(),
            new.status().unwrap_or_default(),
            logs(&[&new])
        );
    }
    // The ownership record is read every 50 ms: give it a moment to catch up with the answers.
    wait_until(Duration::from_secs(2), || resolver.ownership().is_some_and(|o| o.generation >= stale + 3));
    let published = resolver.ownership().expect("the ownership record is readable");
    assert!(
        published.generation >= stale + 3,
        "the new leader applied several generations past the stale one ({stale}): BIND holds {published:?}"
    );
    // The plan is stored (then the history pruned) after the write reached BIND:
    // give the clean-up of the last apply a moment too.
    let mut kept = Vec::new();
    let cleaned = wait_until(Duration::from_secs(5), || {
        kept = history(&new);
        !kept.is_empty() && kept.len() <= 2 && kept.iter().all(|g| *g > stale)
    });
    assert!(
        cleaned,
        "the history clean-up deleted every plan at or below the stale generation {stale}: it holds {kept:?}"
    );

    // Resume: the stale write goes out and BIND refuses it.
    let skip = old.lines();
    let new_skip = new.lines();
    let writes_before = sum(&new.metrics(), "veer_provider_calls_total", &["operation=\"write\""]);
    old.signal("CONT");
    let resumed = timeline.now();
    // The write was in transit (stalled): it reaches BIND on resume, whether or not
    // the round that sent it still waits for the answer (its deadline has passed).
    let (_, outcome) = old
        .wait_for_line(Duration::from_secs(15), skip, |l| l.contains("CHAOS: a stalled write reached the provider"))
        .unwrap_or_else(|| panic!("the resumed leader's stale write never reached BIND\n{}", old.log()));
    println!("{:>8.3}s resumed; the stale write: {outcome}", resumed.as_secs_f64());
    assert!(
        outcome.contains("Conflict"),
        "BIND's compare-and-swap must refuse the stale write of generation {stale}: {outcome}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || !old.leads()),
        "the old leader observes its loss within the renew deadline (plus slack)\n{}",
        old.log()
    );
    let old_writes = sum(&old.metrics(), "veer_provider_calls_total", &["operation=\"write\""]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        sum(&old.metrics(), "veer_provider_calls_total", &["operation=\"write\""]),
        old_writes,
        "the old leader sends no write after the refused one"
    );
    assert!(!old.log().lines().skip(skip).any(is_applied), "the old leader applied nothing after resuming");
    assert!(new.leads(), "the new leader still leads");
    let up = backends.up_addresses();
    assert!(
        resolver.wait_for(Duration::from_secs(10), &up),
        "BIND serves the new leader's answers: {:?}",
        resolver.answers()
    );
    let epoch = super::support::replica::gauge(&new.metrics(), "veer_leader_epoch").unwrap_or_default() as u64;
    let last = resolver.ownership().expect("readable");
    assert!(last.generation >= published.generation && last.epoch == epoch, "BIND holds {last:?}, new epoch {epoch}");
    let writes_after = sum(&new.metrics(), "veer_provider_calls_total", &["operation=\"write\""]);

    let recording = resolver.stop();
    let facts = Facts { backends: backends.events(), outages };
    let verdict = checker::check(&recording, &facts, bound);
    verdict.assert_clean("racing_writer", logs(&[&old, &new]));
    println!(
        "stale generation {stale} refused by BIND; the new leader reached generation {} (epoch {epoch}); history {kept:?}; \
         the new leader wrote {} times after the resume",
        last.generation,
        writes_after - writes_before
    );
    for line in new.log().lines().skip(new_skip).filter(|l| is_applied(l)) {
        println!("  new leader after the resume: {line}");
    }
}
