//! ARCHITECTURE.md §8 scenario 5, a provider throttling storm, with a real process: one
//! `veer run --chaos` writing a real BIND zone through an API budget of 1 call
//! per second (burst 2), half of what its rounds would call without one. For 16 s, 30 % of its calls to BIND are throttled, 10 %
//! fail with a 5xx, 5 % time out (the write may land) and 5 % lose their
//! response after the write landed; meanwhile backends die and return.
//!
//! `/metrics` is read every 250 ms. Expect: the provider calls counted never
//! exceed the budget over any stretch of time (burst + rate × elapsed, both
//! ends taken at their widest), the budget did make calls wait, throttling was
//! seen; a backend that died during the storm still left the answers during
//! the storm; after the storm everything converges to the backends that are
//! up (nothing lost); and the resolver's recording is clean (never empty, no
//! generation going backwards; a dead endpoint may linger while the storm lasts).

use super::checker::{self, Facts, Outage};
use super::fleet::{
    Backends, ControllerSpec, Coordination, NAME, Node, Publish, detection_bound, health_check, sum, write_chaos,
    write_policy,
};
use super::resolver::{Outcome, Resolver, Timeline};
use super::support::replica::require_dig;
use std::net::Ipv4Addr;
use std::time::Duration;
use veer_provider_testbed::{DnsServer, ServerKind, ZoneSpec};

/// The budget: half of what the controller would call without one (a read every
/// 500 ms round), so a missing or leaky budget shows at once.
const RATE: f64 = 1.0;
const BURST: u32 = 2;
/// How long the storm's timeouts hang.
const TIMEOUT_AFTER: Duration = Duration::from_secs(1);
/// `veer_provider_calls_total` counts a call when it completes: a call counted
/// in a span may have been admitted up to its duration earlier (a timeout, plus
/// BIND and scheduling on a loaded machine).
const CALL_DURATION_MAX: Duration = Duration::from_millis(1_500);
const STORM_FROM: Duration = Duration::from_secs(8);
const STORM_UNTIL: Duration = Duration::from_secs(24);

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, 5, n)
}

/// One reading of the provider metrics, with the time span it was taken in.
#[derive(Debug, Clone, Copy)]
struct Reading {
    sent: Duration,
    received: Duration,
    calls: f64,
    throttled: f64,
    budget_wait: f64,
}

fn read(node: &Node, timeline: Timeline) -> Option<Reading> {
    let sent = timeline.now();
    let metrics = node.metrics();
    let received = timeline.now();
    (!metrics.is_empty()).then(|| Reading {
        sent,
        received,
        calls: sum(&metrics, "veer_provider_calls_total", &["provider=\"dns\""]),
        throttled: sum(&metrics, "veer_provider_throttled_total", &["provider=\"dns\""]),
        budget_wait: sum(&metrics, "veer_provider_budget_wait_seconds_total", &["provider=\"dns\""]),
    })
}

/// Every pair of readings (and the process start) where more calls were made than
/// the budget allows: at most `burst + rate × t` calls admitted in any span of
/// length `t` (widened by the longest call, as calls are counted when they end).
fn over_budget(readings: &[Reading], started: Duration) -> Vec<String> {
    let mut over = Vec::new();
    let origin = Reading { sent: started, received: started, calls: 0.0, throttled: 0.0, budget_wait: 0.0 };
    let all: Vec<Reading> = std::iter::once(origin).chain(readings.iter().copied()).collect();
    for (i, early) in all.iter().enumerate() {
        for late in &all[i + 1..] {
            let span = (late.received.saturating_sub(early.sent) + CALL_DURATION_MAX).as_secs_f64();
            let allowed = f64::from(BURST) + RATE * span;
            if late.calls - early.calls > allowed + 1e-9 {
                over.push(format!(
                    "{} calls between {:.3}s and {:.3}s, the budget allows {allowed:.1}",
                    late.calls - early.calls,
                    early.sent.as_secs_f64(),
                    late.received.as_secs_f64()
                ));
            }
        }
    }
    over
}

#[test]
fn a_throttling_storm_never_exceeds_the_api_budget_and_everything_converges_after_it() {
    require_dig();
    let timeline = Timeline::start();
    let ids = [("a", ip(1)), ("b", ip(2)), ("c", ip(3))];
    let mut backends = Backends::start(timeline, &ids);
    let Some(bind) = DnsServer::start(ServerKind::Bind, &ZoneSpec::new("example.test.")) else { return };
    let dir = tempfile::tempdir().unwrap();
    ControllerSpec {
        cluster: "storm",
        publish: Publish::Bind(&bind),
        coordination: Coordination::Standalone,
        history_keep: None,
        budget: Some((RATE, BURST)),
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
        "storm.yaml",
        "throttling-storm",
        &format!(
            "  seed: 11\n  providers:\n    - {{ provider: dns, from: {}s, until: {}s, throttled: 30, unavailable: 10, \
             timeout: 5, timeoutAfter: {}ms, lostResponse: 5 }}\n",
            STORM_FROM.as_secs(),
            STORM_UNTIL.as_secs(),
            TIMEOUT_AFTER.as_millis()
        ),
    );
    let node = Node::start(dir.path(), "r1", &["--chaos", "storm.yaml"], Some(&bind.key().secret_base64), timeline);
    let resolver = Resolver::start(bind.addr(), NAME, timeline);
    let all = backends.up_addresses();
    assert!(resolver.wait_for(Duration::from_secs(30), &all), "first publish\n{}", node.log());

    // The storm, with backends dying and returning inside it.
    let storm = (node.started + STORM_FROM, node.started + STORM_UNTIL);
    let schedule = [
        (storm.0 + Duration::from_secs(1), "a", false),
        (storm.0 + Duration::from_secs(2), "b", false),
        (storm.0 + Duration::from_secs(5), "a", true),
        (storm.1 + Duration::from_secs(4), "b", true),
    ];
    let mut readings = Vec::new();
    let mut next = 0;
    while next < schedule.len() {
        let (at, id, up) = schedule[next];
        if timeline.now() >= at {
            if up {
                backends.up(id)
            } else {
                backends.down(id)
            }
            next += 1;
        }
        readings.extend(read(&node, timeline));
        std::thread::sleep(Duration::from_millis(250));
    }
    let expected = backends.up_addresses();
    let converged = super::support::replica::wait_until(Duration::from_secs(30), || {
        readings.extend(read(&node, timeline));
        resolver.answers() == expected
    });
    assert!(converged, "after the storm BIND answers {:?}, expected {expected:?}\n{}", resolver.answers(), node.log());
    readings.extend(read(&node, timeline));
    let recording = resolver.stop();

    let over = over_budget(&readings, node.started);
    assert!(over.is_empty(), "the API budget ({RATE}/s, burst {BURST}) was exceeded:\n{}", over.join("\n"));
    let last = *readings.last().expect("readings");
    let b = backends.address("b");
    let b_gone = recording.polls.iter().find(|p| {
        p.at > schedule[1].0 && p.at < schedule[3].0 && matches!(&p.outcome, Outcome::Answers(set) if !set.contains(&b))
    });
    let faults = node.log().lines().filter(|l| l.contains("CHAOS: fault injected")).count();
    println!(
        "{} provider calls in {:.1}s ({} throttled, {faults} faults injected), {:.1}s waited for the budget",
        last.calls,
        last.received.saturating_sub(node.started).as_secs_f64(),
        last.throttled,
        last.budget_wait
    );
    assert!(last.throttled >= 1.0 && faults >= 5, "the storm happened: {faults} faults, {} throttled", last.throttled);
    assert!(last.budget_wait > 0.0, "the budget made calls wait: {last:?}");
    let b_gone = b_gone.map(|p| p.at.saturating_sub(schedule[1].0));
    assert!(b_gone.is_some(), "b died during the storm and still left the answers before it returned\n{}", node.log());
    println!(
        "b left the answers {:.1}s after it died (the storm lasts {:?})",
        b_gone.unwrap_or_default().as_secs_f64(),
        STORM_UNTIL - STORM_FROM
    );
    let facts = Facts {
        backends: backends.events(),
        // Retries still backing off when the storm ends finish within two seconds.
        outages: vec![Outage { from: storm.0, until: storm.1 + Duration::from_secs(2), why: "provider storm".into() }],
    };
    let verdict = checker::check(&recording, &facts, detection_bound());
    verdict.assert_clean("throttling_storm", node.log());
}
