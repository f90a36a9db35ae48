//! ARCHITECTURE.md §8 scenario 2, mass recovery, with real processes: one `veer run`
//! publishing weighted answers through its embedded DNS server, six HTTP
//! backends in two pools with mixed capacities. Half of the capacity dies at
//! once and, once it is out of the answers, returns at once.
//!
//! The weights a provider holds are read from `/v1/status` (`publishedWeight`,
//! what the round read back from the provider) every 100 ms; the resolver
//! records the DNS answers. Expect: every returning endpoint's weight, relative
//! to its full weight, climbs the warm-up stages 10 → 25 → 50 → 100 % one at a
//! time, each held for the policy's `hold`; the endpoints that stayed up never
//! carry a larger share during the recovery than during the outage (no endpoint
//! goes above what it already carried); the recovery completes. And the
//! recording is clean: never empty, dead endpoints gone within the bound, the
//! removal within `maxRemovePercent`.

use super::checker::{self, Facts, Velocity, Violation};
use super::fleet::{
    Backends, ControllerSpec, Coordination, NAME, Node, Publish, detection_bound, health_check, write_policy,
};
use super::resolver::{Resolver, Timeline};
use super::support::replica::wait_until;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const STAGES: [f64; 4] = [0.10, 0.25, 0.50, 1.0];
const HOLD: Duration = Duration::from_secs(3);
/// A stage is seen later than it began by up to one round (the status reads the
/// provider at the start of a round) plus one status poll, on a loaded machine.
const SEEN_LATE_MAX: Duration = Duration::from_millis(1_200);
/// Weights are integers of up to 65 535: levels are exact to well within this.
const LEVEL_TOLERANCE: f64 = 0.02;

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, 2, n)
}

/// `(id, pool, address, capacity)` of the fleet; the ones marked `true` fail and return.
const FLEET: [(&str, &str, u8, u32, bool); 6] = [
    ("e1", "east", 1, 100, false),
    ("e2", "east", 2, 200, true),
    ("e3", "east", 3, 100, false),
    ("w1", "west", 4, 100, true),
    ("w2", "west", 5, 200, false),
    ("w3", "west", 6, 100, true),
];

/// Published weights by endpoint id at one instant (0 = not published).
type Weights = BTreeMap<String, u32>;

fn published(node: &Node) -> Option<Weights> {
    let status = node.status()?;
    let endpoints = status["records"][0]["endpoints"].as_array()?;
    Some(
        endpoints
            .iter()
            .map(|e| {
                (e["id"].as_str().unwrap_or_default().to_string(), e["publishedWeight"].as_u64().unwrap_or(0) as u32)
            })
            .collect(),
    )
}

fn capacity(id: &str) -> f64 {
    FLEET.iter().find(|e| e.0 == id).map_or(0.0, |e| f64::from(e.3))
}

/// Each endpoint's weight relative to its full weight: weight per unit of
/// capacity, against the largest such value (an endpoint at full weight).
fn levels(weights: &Weights) -> BTreeMap<String, f64> {
    let full = weights.iter().map(|(id, w)| f64::from(*w) / capacity(id)).fold(0.0, f64::max);
    weights
        .iter()
        .map(|(id, w)| (id.clone(), if full > 0.0 { f64::from(*w) / capacity(id) / full } else { 0.0 }))
        .collect()
}

fn shares(weights: &Weights) -> BTreeMap<String, f64> {
    let total: f64 = weights.values().map(|w| f64::from(*w)).sum();
    weights.iter().map(|(id, w)| (id.clone(), if total > 0.0 { f64::from(*w) / total } else { 0.0 })).collect()
}

/// The stage index (1-based; 0 = out) a level sits at, if it sits at one.
fn stage_of(level: f64) -> Option<usize> {
    if level < LEVEL_TOLERANCE {
        return Some(0);
    }
    STAGES.iter().position(|s| (level - s).abs() <= LEVEL_TOLERANCE).map(|i| i + 1)
}

/// Warm-up expectations over the samples taken from `recovery` on, and each
/// returning endpoint's climb (stage and when it was first seen) for the record.
fn check_warm_up(samples: &[(Duration, Weights)], returning: &[&str]) -> (Vec<Violation>, Vec<String>) {
    let mut violations = Vec::new();
    let mut climbs = Vec::new();
    for id in returning {
        let mut seen: Vec<(usize, Duration)> = Vec::new();
        for (at, weights) in samples {
            let level = levels(weights)[*id];
            let Some(stage) = stage_of(level) else {
                violations.push(Violation {
                    at: *at,
                    invariant: "I6",
                    detail: format!("{id} is published at {:.1} % of its full weight: no stage", level * 100.0),
                });
                continue;
            };
            if seen.last().is_none_or(|(s, _)| *s != stage) {
                seen.push((stage, *at));
            }
        }
        let path: Vec<usize> = seen.iter().map(|(s, _)| *s).collect();
        let steps: Vec<String> = seen.iter().map(|(s, at)| format!("stage {s} at {:.1}s", at.as_secs_f64())).collect();
        climbs.push(format!("{id}: {}", steps.join(", ")));
        let expected: Vec<usize> = (0..=STAGES.len()).collect();
        let starts_out = path.first() == Some(&0);
        if path != expected[usize::from(!starts_out)..] {
            violations.push(Violation {
                at: seen.last().map(|s| s.1).unwrap_or_default(),
                invariant: "I6",
                detail: format!(
                    "{id} went through stages {path:?} (1-based, 0 = out); expected one at a time to {}",
                    STAGES.len()
                ),
            });
        }
        for pair in seen.windows(2).filter(|p| p[0].0 > 0) {
            let held = pair[1].1.saturating_sub(pair[0].1);
            if held + SEEN_LATE_MAX < HOLD {
                violations.push(Violation {
                    at: pair[1].1,
                    invariant: "I6",
                    detail: format!(
                        "{id} left stage {} after {} ms, before its hold of {} ms",
                        pair[0].0,
                        held.as_millis(),
                        HOLD.as_millis()
                    ),
                });
            }
        }
    }
    (violations, climbs)
}

#[test]
fn half_the_fleet_returning_at_once_climbs_every_warm_up_stage_and_never_overloads_the_survivors() {
    let timeline = Timeline::start();
    let ids: Vec<(&str, Ipv4Addr)> = FLEET.iter().map(|e| (e.0, ip(e.2))).collect();
    let mut backends = Backends::start(timeline, &ids);
    let dir = tempfile::tempdir().unwrap();
    let dns = veer_provider_testbed::free_port();
    ControllerSpec {
        cluster: "recovery",
        publish: Publish::Embedded(dns),
        coordination: Coordination::Standalone,
        history_keep: None,
        budget: None,
    }
    .write(dir.path());
    let pool = |name: &str| FLEET.iter().filter(|e| e.1 == name).map(|e| (e.0, ip(e.2), e.3)).collect::<Vec<_>>();
    write_policy(
        dir.path(),
        &[("east", pool("east")), ("west", pool("west"))],
        &health_check(backends.port(), 50),
        &format!(
            "  warmup: {{ stages: [10, 25, 50, 100], hold: {}s }}\n  shift: {{ maxRemovePercent: 50, window: 5m }}\n  \
             guards: {{ minHealthyEndpoints: 1, minCapacityPercent: 30 }}\n",
            HOLD.as_secs()
        ),
    );
    let node = Node::start(dir.path(), "r1", &[], None, timeline);
    let resolver = Resolver::start(SocketAddr::from((Ipv4Addr::LOCALHOST, dns)), NAME, timeline);
    let everyone = backends.up_addresses();
    // At full weight: published, and no longer warming (the first publish warms up too).
    let all_full = |node: &Node| {
        node.status().is_some_and(|s| {
            s["records"][0]["endpoints"].as_array().is_some_and(|eps| {
                eps.len() == FLEET.len()
                    && eps.iter().all(|e| e["publishedWeight"].as_u64().is_some() && e["warmup"].is_null())
            })
        })
    };
    assert!(resolver.wait_for(Duration::from_secs(30), &everyone), "first publish\n{}", node.log());
    assert!(wait_until(Duration::from_secs(30), || all_full(&node)), "the fleet at full weight\n{}", node.log());

    // Half of the capacity dies at once and leaves the answers.
    let returning: Vec<&str> = FLEET.iter().filter(|e| e.4).map(|e| e.0).collect();
    for id in &returning {
        backends.down(id);
    }
    let survivors = backends.up_addresses();
    assert!(
        resolver.wait_for(detection_bound() + Duration::from_secs(5), &survivors),
        "the failed half leaves the answers: {:?}\n{}",
        resolver.answers(),
        node.log()
    );
    let outage_seen = timeline.now();
    let mut samples: Vec<(Duration, Weights)> = Vec::new();
    let sample = |samples: &mut Vec<(Duration, Weights)>| {
        if let Some(w) = published(&node) {
            samples.push((timeline.now(), w));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        sample(&mut samples);
    }

    // It returns at once; the recovery is sampled until every endpoint is at full weight again.
    for id in &returning {
        backends.up(id);
    }
    let recovery = timeline.now();
    let deadline = Instant::now() + Duration::from_secs(40);
    while !(samples
        .last()
        .is_some_and(|(at, w)| *at > recovery && levels(w).values().all(|l| (l - 1.0).abs() < LEVEL_TOLERANCE))
        && all_full(&node))
    {
        assert!(
            Instant::now() < deadline,
            "the recovery did not complete within 40 s: {:?}\n{}",
            samples.last(),
            node.log()
        );
        sample(&mut samples);
    }
    assert!(resolver.wait_for(Duration::from_secs(5), &everyone), "everyone answers again");
    let recording = resolver.stop();

    let during: Vec<&(Duration, Weights)> =
        samples.iter().filter(|(at, _)| *at >= outage_seen && *at < recovery).collect();
    let after: Vec<(Duration, Weights)> = samples.iter().filter(|(at, _)| *at >= recovery).cloned().collect();
    let (mut violations, climbs) = check_warm_up(&after, &returning);
    for id in FLEET.iter().filter(|e| !e.4).map(|e| e.0) {
        let most = during.iter().map(|(_, w)| shares(w)[id]).fold(0.0, f64::max);
        if let Some((at, w)) = after.iter().find(|(_, w)| shares(w)[id] > most + 0.005) {
            violations.push(Violation {
                at: *at,
                invariant: "overload",
                detail: format!(
                    "{id} stayed up and carried {:.1} % during the outage but {:.1} % during the recovery",
                    most * 100.0,
                    shares(w)[id] * 100.0
                ),
            });
        }
    }
    let facts = Facts { backends: backends.events(), outages: Vec::new() };
    let mut verdict = checker::check(&recording, &facts, detection_bound());
    let cap = Velocity {
        capacities: FLEET.iter().map(|e| (ip(e.2), u64::from(e.3))).collect(),
        window: Duration::from_secs(300),
        max_remove_percent: 50.0,
    };
    verdict.extend(checker::velocity(&recording, &cap));
    verdict.extend(violations);
    let climb: Vec<String> = after
        .iter()
        .map(|(at, w)| {
            let l = levels(w);
            format!(
                "{:.1}s {}",
                at.as_secs_f64(),
                returning.iter().map(|id| format!("{id}={:.2}", l[*id])).collect::<Vec<_>>().join(" ")
            )
        })
        .collect();
    verdict.assert_clean(
        "mass_recovery",
        format!("levels during the recovery:\n{}\n--- log ---\n{}", climb.join("\n"), node.log()),
    );
    println!(
        "{} status samples over the recovery (returned at {:.1}s):\n  {}",
        after.len(),
        recovery.as_secs_f64(),
        climbs.join("\n  ")
    );
}
