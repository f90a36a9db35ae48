//! ARCHITECTURE.md §8 scenario 6, the controller crashing at random points of an apply,
//! with real processes: one `veer run` (standalone state file) writing a real
//! BIND zone, three HTTP backends. BIND keeps answering while veer is dead, as
//! a real provider would.
//!
//! Each round a backend dies or returns (seeded choice), which makes veer write.
//! Its chaos file holds every write in the window where a crash hurts most:
//! half of them are stalled 400 ms *before* they reach BIND, half land at once
//! and have their answer delayed by up to 400 ms (landed, not yet recorded). As
//! soon as the write starts (the chaos layer logs it), the test waits a seeded
//! random delay (0–700 ms) and kills the process with SIGKILL — before the
//! write, after it landed but before veer knew, or after it saved its state —
//! then starts it again after a seeded pause (0–300 ms).
//!
//! Expect: every restart converges to the answers of the backends that are up;
//! the resolver polling every 10 ms never saw an empty answer, nor a generation
//! or an epoch going backwards; a dead endpoint left the answers within the
//! detection bound (counted from the restart when veer was down).

use super::checker::{self, Facts, Outage};
use super::fleet::{
    Backends, ControllerSpec, Coordination, NAME, Node, Publish, detection_bound, health_check, write_chaos,
    write_policy,
};
use super::resolver::{Resolver, Timeline};
use super::support::replica::require_dig;
use std::net::Ipv4Addr;
use std::time::Duration;
use veer::coord::Jitter;
use veer_provider_testbed::{DnsServer, ServerKind, ZoneSpec};

const ROUNDS: usize = 6;

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, 6, n)
}

#[test]
fn kill_9_at_seeded_points_of_applies_always_restarts_into_the_same_answers_and_never_empties_the_record() {
    require_dig();
    let seed = super::seed("crash_restart");
    let rng = Jitter::new(seed);
    let timeline = Timeline::start();
    let ids = ["a", "b", "c"];
    let endpoints: Vec<(&str, Ipv4Addr)> = ids.iter().enumerate().map(|(i, id)| (*id, ip(i as u8 + 1))).collect();
    let mut backends = Backends::start(timeline, &endpoints);
    let Some(bind) = DnsServer::start(ServerKind::Bind, &ZoneSpec::new("example.test.")) else { return };
    let dir = tempfile::tempdir().unwrap();
    ControllerSpec {
        cluster: "crashes",
        publish: Publish::Bind(&bind),
        coordination: Coordination::Standalone,
        history_keep: None,
        budget: None,
    }
    .write(dir.path());
    write_policy(
        dir.path(),
        &[("p", endpoints.iter().map(|(id, address)| (*id, *address, 100)).collect())],
        &health_check(backends.port(), 50),
        "  warmup: { stages: [100], hold: 1s, maxJoinPercent: 100 }\n  shift: { maxRemovePercent: 100, window: 1s }\n  \
         guards: { minHealthyEndpoints: 1, minCapacityPercent: 0 }\n",
    );
    write_chaos(
        dir.path(),
        "slow-writes.yaml",
        "crash-window",
        &format!(
            "  seed: {seed}\n  providers:\n    - {{ provider: dns, operations: [write], stalled: 50, stallFor: 400ms, \
             delayed: 50, delayMax: 400ms }}\n"
        ),
    );
    let secret = bind.key().secret_base64.clone();
    let mut node = Node::start(dir.path(), "r1", &["--chaos", "slow-writes.yaml"], Some(&secret), timeline);
    let resolver = Resolver::start(bind.addr(), NAME, timeline);
    assert!(resolver.wait_for(Duration::from_secs(30), &backends.up_addresses()), "first publish\n{}", node.log());

    let mut outages = Vec::new();
    let mut crashes = Vec::new();
    for round in 0..ROUNDS {
        // A backend dies or returns; keep at least one up.
        let up: Vec<&str> = ids.iter().copied().filter(|id| backends.is_up(id)).collect();
        let pick = ids[(rng.unit() * ids.len() as f64) as usize % ids.len()];
        let skip = node.lines();
        match (backends.is_up(pick), up.len()) {
            (true, 1) => backends.up(ids.iter().copied().find(|id| !backends.is_up(id)).expect("one is down")),
            (true, _) => backends.down(pick),
            (false, _) => backends.up(pick),
        }
        let expected = backends.up_addresses();
        let write = node.wait_for_line(detection_bound() + Duration::from_secs(5), skip, |l| {
            l.contains("CHAOS: fault injected") && l.contains("operation=write")
        });
        let (_, line) =
            write.unwrap_or_else(|| panic!("round {round}: the health change made no write\n{}", node.log()));
        let fault = if line.contains("stalled") { "stalled" } else { "delayed" };
        let delay = Duration::from_millis((rng.unit() * 700.0) as u64);
        let pause = Duration::from_millis((rng.unit() * 300.0) as u64);
        std::thread::sleep(delay);
        let (killed, restarted) = node.crash_and_restart(pause, timeline);
        let crash = format!(
            "round {round}: kill -9 {} ms into a {fault} write, restarted after {} ms",
            delay.as_millis(),
            pause.as_millis()
        );
        println!("{:>8.3}s {crash}", killed.as_secs_f64());
        crashes.push(crash.clone());
        outages.push(Outage { from: killed, until: restarted, why: crash.clone() });
        assert!(
            resolver.wait_for(detection_bound() + Duration::from_secs(10), &expected),
            "{crash}: the restarted controller never converged to {expected:?}; BIND answers {:?}\n{}",
            resolver.answers(),
            node.log()
        );
    }
    let recording = resolver.stop();
    let facts = Facts { backends: backends.events(), outages };
    let verdict = checker::check(&recording, &facts, detection_bound());
    verdict.assert_clean(
        "crash_restart",
        format!("seed {seed}\n{}\n--- last log ---\n{}", crashes.join("\n"), node.log()),
    );
}
