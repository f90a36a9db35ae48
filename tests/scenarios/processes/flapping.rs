//! ARCHITECTURE.md §8 scenario 3, flapping health checks on a healthy fleet, with real
//! processes: three `veer run` replicas (three vantages) on a real etcd, writing
//! a real BIND zone, four healthy backends in two pools. Nothing is ever down;
//! only what the vantages see is broken, with each replica's own chaos file
//! (`probes` windows, aligned on one timeline):
//!
//! - A: a follower loses its network (every probe times out);
//! - B: the leader loses its network;
//! - C: two vantages see two endpoints (one per pool) flap: refused, then fine,
//!   then refused again.
//!
//! Expect: A and B fail nothing over (one vantage of three is below the 50 %
//! quorum, and a vantage that sees the whole fleet fail at once is set aside as
//! impaired); in C the two flapping endpoints have a quorum against them, but
//! the velocity cap (`maxRemovePercent: 25`) lets only one of them leave the
//! answers: the capacity removed never exceeds 25 %, the other removal is held.
//! The leader's status proves each fault was seen by the vantage it targeted.

use super::checker::{self, Facts, Velocity, Violation};
use super::etcd::Etcd;
use super::fleet::{
    Backends, ControllerSpec, Coordination, FALL, INTERVAL, NAME, Node, Publish, detection_bound, health_check, leader,
    logs, sum, write_chaos, write_policy,
};
use super::resolver::{Outcome, Resolver, Timeline};
use super::support::replica::{require_dig, wait_until};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;
use veer_provider_testbed::{DnsServer, ServerKind, ZoneSpec};

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, 3, n)
}

/// A probe-fault window on the shared timeline.
#[derive(Debug, Clone, Copy)]
struct Window {
    from: Duration,
    until: Duration,
}

impl Window {
    fn contains(&self, at: Duration) -> bool {
        self.from <= at && at < self.until
    }

    /// The chaos `probes` entry for a replica started at `started`.
    fn probes(&self, started: Duration, extra: &str) -> String {
        let ms = |d: Duration| d.saturating_sub(started).as_millis();
        format!("    - {{ from: {}ms, until: {}ms{extra} }}\n", ms(self.from), ms(self.until))
    }
}

/// What the leader reported at one instant.
#[derive(Debug, Default)]
struct Seen {
    at: Duration,
    /// `(endpoint, vantage)` pairs the leader's status shows down.
    down: BTreeSet<(String, String)>,
    /// Vantages the leader has set aside as impaired.
    impaired: BTreeSet<String>,
    /// Changes the last plan held because of the velocity cap.
    velocity_held: f64,
}

fn seen(leader: &Node, at: Duration) -> Seen {
    let mut seen = Seen { at, ..Seen::default() };
    if let Some(status) = leader.status() {
        for endpoint in status["records"][0]["endpoints"].as_array().into_iter().flatten() {
            let id = endpoint["id"].as_str().unwrap_or_default();
            for (vantage, verdict) in endpoint["perVantage"].as_object().into_iter().flatten() {
                if verdict == "down" {
                    seen.down.insert((id.to_string(), vantage.clone()));
                }
            }
        }
    }
    let metrics = leader.metrics();
    for vantage in ["r0", "r1", "r2"] {
        if sum(&metrics, "veer_vantage_impaired", &[&format!("vantage=\"{vantage}\"")]) > 0.0 {
            seen.impaired.insert(vantage.to_string());
        }
    }
    seen.velocity_held = sum(&metrics, "veer_held_changes", &["reason=\"velocity\""]);
    seen
}

/// Whether the leader saw `vantage` lose its network within `window` (every
/// endpoint down from there, or the vantage set aside as impaired). A replica's
/// windows open when its controller starts, a little after its spawn: a second
/// of grace at the end.
fn saw_network_loss(samples: &[Seen], window: Window, vantage: &str) -> bool {
    let window = Window { until: window.until + Duration::from_secs(1), ..window };
    samples.iter().filter(|s| window.contains(s.at)).any(|s| {
        s.impaired.contains(vantage)
            || ["a1", "a2", "b1", "b2"].iter().all(|e| s.down.contains(&(e.to_string(), vantage.to_string())))
    })
}

#[test]
fn vantages_losing_their_network_or_flapping_fail_nothing_over_beyond_quorum_and_the_velocity_cap() {
    require_dig();
    let timeline = Timeline::start();
    let ids = [("a1", ip(1)), ("a2", ip(2)), ("b1", ip(3)), ("b2", ip(4))];
    let backends = Backends::start(timeline, &ids);
    let Some(etcd) = backends.runtime().block_on(Etcd::start(1)) else { return };
    let Some(bind) = DnsServer::start(ServerKind::Bind, &ZoneSpec::new("example.test.")) else { return };
    let dir = tempfile::tempdir().unwrap();
    let etcd_url = etcd.endpoints()[0].clone();
    ControllerSpec {
        cluster: "flapping",
        publish: Publish::Bind(&bind),
        coordination: Coordination::Etcd(&etcd_url),
        history_keep: None,
        budget: None,
    }
    .write(dir.path());
    let endpoint = |id: &'static str| (id, backends.address(id), 100);
    write_policy(
        dir.path(),
        &[("east", vec![endpoint("a1"), endpoint("a2")]), ("west", vec![endpoint("b1"), endpoint("b2")])],
        &health_check(backends.port(), 50),
        "  warmup: { stages: [50, 100], hold: 1s, maxJoinPercent: 100 }\n  \
         shift: { maxRemovePercent: 25, window: 5m }\n  guards: { minHealthyEndpoints: 1, minCapacityPercent: 25 }\n",
    );
    let secret = bind.key().secret_base64.clone();

    // The schedule, on the timeline; every replica's chaos file is written relative to its own start.
    let start = timeline.now() + Duration::from_secs(12);
    let at = |s: f64| start + Duration::from_secs_f64(s);
    let follower_blind = Window { from: at(0.0), until: at(2.5) };
    let leader_blind = Window { from: at(4.0), until: at(6.5) };
    let flaps = [Window { from: at(8.0), until: at(10.5) }, Window { from: at(11.5), until: at(14.0) }];
    let end = at(16.0);
    let flapping = |started: Duration| {
        flaps.iter().map(|w| w.probes(started, ", endpoints: [a1, b1], failure: refused")).collect::<String>()
    };
    write_chaos(
        dir.path(),
        "r0.yaml",
        "leader-blind",
        &format!("  probes:\n{}", leader_blind.probes(timeline.now(), "")),
    );
    let r0 = Node::start(dir.path(), "r0", &["--chaos", "r0.yaml"], Some(&secret), timeline);
    assert!(wait_until(Duration::from_secs(20), || r0.leads()), "r0 leads first\n{}", r0.log());
    let resolver = Resolver::start(bind.addr(), NAME, timeline);
    let all = backends.up_addresses();
    assert!(resolver.wait_for(Duration::from_secs(20), &all), "r0 publishes\n{}", r0.log());
    let now = timeline.now();
    write_chaos(
        dir.path(),
        "r1.yaml",
        "follower-blind-and-flapping",
        &format!("  probes:\n{}{}", follower_blind.probes(now, ""), flapping(now)),
    );
    write_chaos(dir.path(), "r2.yaml", "flapping", &format!("  probes:\n{}", flapping(now)));
    let r1 = Node::start(dir.path(), "r1", &["--chaos", "r1.yaml"], Some(&secret), timeline);
    let r2 = Node::start(dir.path(), "r2", &["--chaos", "r2.yaml"], Some(&secret), timeline);
    let fresh = |node: &Node| {
        node.status().and_then(|s| s["vantages"].as_array().map(|v| v.iter().filter(|v| v["fresh"] == true).count()))
    };
    assert!(
        wait_until(start.saturating_sub(timeline.now()), || fresh(&r0) == Some(3)),
        "the leader counts three fresh vantages before the first fault: {:?}\n{}",
        r0.status(),
        logs(&[&r0, &r1, &r2])
    );
    assert_eq!(leader(&[&r0, &r1, &r2], Duration::from_secs(1)), Some(0), "r0 still leads");

    let mut samples = Vec::new();
    while timeline.now() < end {
        samples.push(seen(&r0, timeline.now()));
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(
        resolver.wait_for(detection_bound() + Duration::from_secs(5), &all),
        "every endpoint answers again after the flapping: {:?}\n{}",
        resolver.answers(),
        r0.log()
    );
    let recording = resolver.stop();
    assert!(r0.leads(), "r0 led throughout");

    let mut violations: Vec<Violation> = Vec::new();
    // The flapping cannot fail anything before `fall` probes failed in its window:
    // any change before that comes from a blind vantage.
    let flaps_effect = flaps[0].from + INTERVAL * (FALL - 1);
    let (a1, b1) = (backends.address("a1"), backends.address("b1"));
    let steady: BTreeSet<Ipv4Addr> = backends.addresses(&["a2", "b2"]);
    for poll in &recording.polls {
        let Outcome::Answers(answers) = &poll.outcome else { continue };
        if poll.at < flaps_effect && *answers != all {
            violations.push(Violation {
                at: poll.at,
                invariant: "failover",
                detail: format!("a blind vantage failed something over: {answers:?}"),
            });
        }
        if !steady.is_subset(answers) || (!answers.contains(&a1) && !answers.contains(&b1)) {
            violations.push(Violation {
                at: poll.at,
                invariant: "velocity",
                detail: format!("more than one endpoint left the answers: {answers:?}"),
            });
        }
    }
    let context = |samples: &[Seen]| {
        let lines: Vec<String> = samples
            .iter()
            .map(|s| {
                format!(
                    "{:.1}s down {:?} impaired {:?} velocity-held {}",
                    s.at.as_secs_f64(),
                    s.down,
                    s.impaired,
                    s.velocity_held
                )
            })
            .collect();
        format!("{}\n{}", lines.join("\n"), logs(&[&r0, &r1, &r2]))
    };
    assert!(saw_network_loss(&samples, follower_blind, "r1"), "the leader never saw r1 blind\n{}", context(&samples));
    assert!(saw_network_loss(&samples, leader_blind, "r0"), "the leader never saw itself blind\n{}", context(&samples));
    let flapped = samples.iter().any(|s| {
        ["r1", "r2"]
            .iter()
            .all(|v| s.down.contains(&("a1".into(), v.to_string())) && s.down.contains(&("b1".into(), v.to_string())))
    });
    assert!(flapped, "two vantages saw a1 and b1 fail together\n{}", context(&samples));
    assert!(
        samples.iter().any(|s| s.velocity_held > 0.0),
        "the velocity cap held the second removal\n{}",
        context(&samples)
    );
    let facts = Facts { backends: backends.events(), outages: Vec::new() };
    let mut verdict = checker::check(&recording, &facts, detection_bound());
    let cap = Velocity {
        capacities: ids.iter().map(|(_, a)| (*a, 100)).collect(),
        window: Duration::from_secs(300),
        max_remove_percent: 25.0,
    };
    verdict.extend(checker::velocity(&recording, &cap));
    verdict.extend(violations);
    verdict.assert_clean("flapping", context(&samples));
    let impaired: BTreeSet<&String> = samples.iter().flat_map(|s| &s.impaired).collect();
    println!("vantages set aside as impaired at some point: {impaired:?}");
}
