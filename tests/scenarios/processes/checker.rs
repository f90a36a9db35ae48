//! One checker for every scenario: it judges a resolver [`Recording`] against
//! the facts the harness recorded (when each backend was killed or restarted,
//! when no controller could act), never against what veer says about itself.
//!
//! - **I1**: once the name answered, no poll ever gets an empty answer (NOERROR
//!   without A records, or NXDOMAIN). A SERVFAIL (or another error code) is a
//!   violation too; timeouts are tolerated up to 1 % of the polls (a loaded
//!   machine may starve the resolver), and are reported. Before the first
//!   answer nothing counts: the server may not even listen yet.
//! - **Stale endpoint**: no answer contains the address of a backend that has
//!   been down for longer than the detection bound (interval × fall + reconcile
//!   period + slack). When no controller could act (a paused or killed leader,
//!   a provider storm) the bound restarts at the end of that outage: a new
//!   leader, or a restarted process, probes from scratch.
//! - **I2/I3 at the provider**: the ownership record's generation never goes
//!   backwards, nor does the epoch of the writer that published it.
//! - **Velocity** (on request): the capacity that disappears from the answers
//!   within any window stays within `maxRemovePercent`.

use super::resolver::{Outcome, Recording};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Share of polls that may time out before it counts as a violation.
const TIMEOUT_SHARE_MAX: f64 = 0.01;
/// At most this many violations are listed per invariant (all are counted).
const LISTED_MAX: usize = 5;

/// A backend was killed (`up: false`) or (re)started (`up: true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendEvent {
    /// When.
    pub at: Duration,
    /// The backend's address (as published in the answers).
    pub address: Ipv4Addr,
    /// Up after the event.
    pub up: bool,
}

/// A stretch of time in which no controller could act promptly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// From.
    pub from: Duration,
    /// Until (a restarted process was spawned, a new leader took over, a storm ended).
    pub until: Duration,
    /// For messages.
    pub why: String,
}

/// What the harness did during a run.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Backend kills and restarts, in order.
    pub backends: Vec<BackendEvent>,
    /// Controller outages, in order.
    pub outages: Vec<Outage>,
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// When it was observed.
    pub at: Duration,
    /// Which invariant (`I1`, `stale`, `I2`, `I3`, `rcode`, `timeouts`, `velocity`).
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>8.3}s {}: {}", self.at.as_secs_f64(), self.invariant, self.detail)
    }
}

/// Counts over a recording, printed by every scenario.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Polls of the A record.
    pub polls: usize,
    /// Empty answers after the first answer.
    pub empty: usize,
    /// SERVFAIL and other error codes.
    pub failed: usize,
    /// Timeouts.
    pub timeouts: usize,
    /// The longest time between two polls (the resolver's own starvation).
    pub gap_max: Duration,
    /// Readable ownership records.
    pub ownership_reads: usize,
    /// First and last generation seen at the provider.
    pub generations: Option<(u64, u64)>,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} polls (longest gap {} ms), {} empty, {} SERVFAIL/errors, {} timeouts; {} ownership reads, generations {}",
            self.polls,
            self.gap_max.as_millis(),
            self.empty,
            self.failed,
            self.timeouts,
            self.ownership_reads,
            self.generations.map_or_else(|| "none".into(), |(a, b)| format!("{a} → {b}")),
        )
    }
}

/// The checker's verdict on one recording.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Every violation, in time order per invariant.
    pub violations: Vec<Violation>,
    /// Counts.
    pub stats: Stats,
}

impl Verdict {
    /// The invariants that broke, sorted and deduplicated.
    pub fn broken(&self) -> BTreeSet<&'static str> {
        self.violations.iter().map(|v| v.invariant).collect()
    }

    /// Adds violations found by a scenario's own checks.
    pub fn extend(&mut self, more: Vec<Violation>) {
        self.violations.extend(more);
    }

    /// Panics with the violations (at most a few per invariant) and `context`
    /// unless there are none.
    pub fn assert_clean(&self, scenario: &str, context: impl fmt::Display) {
        if self.violations.is_empty() {
            println!("{scenario}: recording clean: {}", self.stats);
            return;
        }
        let mut listed = String::new();
        for invariant in self.broken() {
            let all: Vec<&Violation> = self.violations.iter().filter(|v| v.invariant == invariant).collect();
            for v in all.iter().take(LISTED_MAX) {
                listed.push_str(&format!("  {v}\n"));
            }
            if all.len() > LISTED_MAX {
                listed.push_str(&format!("  … {} more {invariant} violations\n", all.len() - LISTED_MAX));
            }
        }
        panic!("{scenario}: the resolver's recording breaks {:?}\n{listed}{}\n{context}", self.broken(), self.stats);
    }
}

/// Checks I1, stale endpoints and I2/I3 over `recording`.
pub fn check(recording: &Recording, facts: &Facts, detection: Duration) -> Verdict {
    let mut verdict = Verdict::default();
    let stats = &mut verdict.stats;
    stats.polls = recording.polls.len();
    stats.gap_max = recording.polls.windows(2).map(|w| w[1].at.saturating_sub(w[0].at)).max().unwrap_or_default();
    stats.ownership_reads = recording.ownership.len();
    stats.generations =
        recording.ownership.first().zip(recording.ownership.last()).map(|(a, b)| (a.generation, b.generation));
    let mut stale_reported: BTreeSet<(Ipv4Addr, Duration)> = BTreeSet::new();
    let mut published = false;
    for poll in &recording.polls {
        match &poll.outcome {
            Outcome::Answers(addresses) => {
                published = true;
                for address in addresses {
                    let Some(down_since) = down_since(facts, *address, poll.at) else { continue };
                    let deadline = deadline(down_since, detection, &facts.outages);
                    if poll.at > deadline && stale_reported.insert((*address, down_since)) {
                        verdict.violations.push(Violation {
                            at: poll.at,
                            invariant: "stale",
                            detail: format!(
                                "the answer {} still holds {address}, down since {:.3}s (bound {:.3}s, deadline {:.3}s)",
                                show(addresses),
                                down_since.as_secs_f64(),
                                detection.as_secs_f64(),
                                deadline.as_secs_f64()
                            ),
                        });
                    }
                }
            }
            Outcome::Empty(code) if published => {
                verdict.stats.empty += 1;
                verdict.violations.push(Violation {
                    at: poll.at,
                    invariant: "I1",
                    detail: format!("empty answer ({code}) after the name was published"),
                });
            }
            Outcome::Failed(code) if published => {
                verdict.stats.failed += 1;
                verdict.violations.push(Violation { at: poll.at, invariant: "rcode", detail: code.clone() });
            }
            Outcome::Timeout if published => verdict.stats.timeouts += 1,
            // Before the first answer the server may not even listen yet.
            Outcome::Empty(_) | Outcome::Failed(_) | Outcome::Timeout => {}
        }
    }
    let timeouts = verdict.stats.timeouts;
    if timeouts as f64 > TIMEOUT_SHARE_MAX * verdict.stats.polls.max(1) as f64 {
        let first = recording.polls.iter().find(|p| p.outcome == Outcome::Timeout).map(|p| p.at).unwrap_or_default();
        verdict.violations.push(Violation {
            at: first,
            invariant: "timeouts",
            detail: format!("{timeouts} of {} polls timed out (more than 1 %)", verdict.stats.polls),
        });
    }
    for pair in recording.ownership.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        if after.generation < before.generation {
            verdict.violations.push(Violation {
                at: after.at,
                invariant: "I2",
                detail: format!(
                    "generation went backwards at the provider: {} (epoch {}) at {:.3}s, then {} (epoch {})",
                    before.generation,
                    before.epoch,
                    before.at.as_secs_f64(),
                    after.generation,
                    after.epoch
                ),
            });
        }
        if after.epoch < before.epoch {
            verdict.violations.push(Violation {
                at: after.at,
                invariant: "I3",
                detail: format!(
                    "an older leader's write landed: epoch {} (generation {}) after epoch {} (generation {})",
                    after.epoch, after.generation, before.epoch, before.generation
                ),
            });
        }
    }
    verdict
}

/// Since when `address` has been down at `at`, if it is down then.
fn down_since(facts: &Facts, address: Ipv4Addr, at: Duration) -> Option<Duration> {
    let last = facts.backends.iter().filter(|e| e.address == address && e.at <= at).max_by_key(|e| e.at)?;
    (!last.up).then_some(last.at)
}

/// When an endpoint down since `since` must be gone from the answers: the
/// detection bound after it went down, restarted at the end of every outage
/// that began before the deadline and ended after it went down.
pub fn deadline(since: Duration, detection: Duration, outages: &[Outage]) -> Duration {
    let mut deadline = since + detection;
    let mut sorted: Vec<&Outage> = outages.iter().collect();
    sorted.sort_by_key(|o| o.from);
    for outage in sorted {
        if outage.from < deadline && outage.until > since {
            deadline = deadline.max(outage.until + detection);
        }
    }
    deadline
}

fn show(addresses: &BTreeSet<Ipv4Addr>) -> String {
    let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    format!("[{}]", list.join(", "))
}

/// The velocity cap as seen from outside.
#[derive(Debug, Clone)]
pub struct Velocity {
    /// Capacity of each published address.
    pub capacities: BTreeMap<Ipv4Addr, u64>,
    /// `shift.window`.
    pub window: Duration,
    /// `shift.maxRemovePercent`.
    pub max_remove_percent: f64,
}

/// Every time the capacity that left the answers within one window exceeds the cap.
pub fn velocity(recording: &Recording, cap: &Velocity) -> Vec<Violation> {
    let total: u64 = cap.capacities.values().sum();
    let allowed = cap.max_remove_percent / 100.0 * total as f64;
    let answers: Vec<(Duration, &BTreeSet<Ipv4Addr>)> = recording
        .polls
        .iter()
        .filter_map(|p| match &p.outcome {
            Outcome::Answers(set) => Some((p.at, set)),
            _ => None,
        })
        .collect();
    let mut removals: Vec<(Duration, Ipv4Addr, u64)> = Vec::new();
    for pair in answers.windows(2) {
        let ((_, before), (at, after)) = (pair[0], pair[1]);
        for gone in before.difference(after) {
            removals.push((at, *gone, cap.capacities.get(gone).copied().unwrap_or(0)));
        }
    }
    let mut violations = Vec::new();
    for (i, (at, _, _)) in removals.iter().enumerate() {
        let within: Vec<&(Duration, Ipv4Addr, u64)> =
            removals[..=i].iter().filter(|(t, _, _)| *t + cap.window > *at).collect();
        let removed: u64 = within.iter().map(|(_, _, c)| c).sum();
        if removed as f64 > allowed + 1e-9 {
            let list: Vec<String> =
                within.iter().map(|(t, a, c)| format!("{a} ({c}) at {:.3}s", t.as_secs_f64())).collect();
            violations.push(Violation {
                at: *at,
                invariant: "velocity",
                detail: format!(
                    "{removed} of {total} capacity left the answers within {:?} (cap {}%): {}",
                    cap.window,
                    cap.max_remove_percent,
                    list.join(", ")
                ),
            });
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::super::resolver::{OwnershipSample, Poll};
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 2);
    const C: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 3);
    const BOUND: Duration = Duration::from_secs(2);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A recording polled every 10 ms for `until_ms`, answering `answer(t)`, with
    /// the ownership generation `generation(t)` every 50 ms (epoch 1).
    fn recording(until_ms: u64, answer: impl Fn(u64) -> Outcome, generation: impl Fn(u64) -> (u64, u64)) -> Recording {
        let mut r = Recording::default();
        for t in (0..until_ms).step_by(10) {
            r.polls.push(Poll { at: ms(t), outcome: answer(t) });
            if t % 50 == 0 {
                let (generation, epoch) = generation(t);
                r.ownership.push(OwnershipSample { at: ms(t), generation, epoch });
            }
        }
        r
    }

    fn set(addresses: &[Ipv4Addr]) -> Outcome {
        Outcome::Answers(addresses.iter().copied().collect())
    }

    /// B is killed at 1 s; the controller drops it from the answers at 2.5 s
    /// (within the 2 s bound) and publishes generation 2 then.
    fn failover(t: u64) -> Outcome {
        if t < 2_500 { set(&[A, B, C]) } else { set(&[A, C]) }
    }

    fn facts_b_down_at_1s() -> Facts {
        Facts { backends: vec![BackendEvent { at: ms(1_000), address: B, up: false }], outages: Vec::new() }
    }

    #[test]
    fn a_clean_failover_passes() {
        let r = recording(5_000, failover, |t| (1 + u64::from(t >= 2_500), 1));
        let verdict = check(&r, &facts_b_down_at_1s(), BOUND);
        assert!(verdict.violations.is_empty(), "{:#?}", verdict.violations);
        assert_eq!(verdict.stats.polls, 500);
        assert_eq!(verdict.stats.generations, Some((1, 2)));
    }

    #[test]
    fn an_empty_answer_after_publication_is_an_i1_violation_but_not_before() {
        let r = recording(
            3_000,
            |t| match t {
                0..300 => Outcome::Empty("NXDomain".into()),
                1_200..1_230 => Outcome::Empty("No Error".into()),
                _ => set(&[A, B, C]),
            },
            |_| (1, 1),
        );
        let verdict = check(&r, &Facts::default(), BOUND);
        assert_eq!(verdict.broken(), BTreeSet::from(["I1"]));
        assert_eq!(verdict.stats.empty, 3, "the three polls in 1.20–1.23 s, not the ones before publication");
        assert_eq!(verdict.violations[0].at, ms(1_200));
    }

    #[test]
    fn an_endpoint_still_answered_after_the_detection_bound_is_stale() {
        let late = |t| if t < 3_500 { set(&[A, B, C]) } else { set(&[A, C]) };
        let verdict = check(&recording(5_000, late, |_| (1, 1)), &facts_b_down_at_1s(), BOUND);
        assert_eq!(verdict.broken(), BTreeSet::from(["stale"]));
        assert_eq!(verdict.violations.len(), 1, "reported once per down episode");
        assert_eq!(verdict.violations[0].at, ms(3_010), "first poll after the 3 s deadline");
        assert!(verdict.violations[0].detail.contains("127.1.0.2"), "{}", verdict.violations[0]);
    }

    #[test]
    fn an_outage_of_the_controller_restarts_the_detection_bound() {
        let late = |t| if t < 4_500 { set(&[A, B, C]) } else { set(&[A, C]) };
        let mut facts = facts_b_down_at_1s();
        facts.outages.push(Outage { from: ms(1_500), until: ms(2_800), why: "leader paused".into() });
        assert!(check(&recording(6_000, late, |_| (1, 1)), &facts, BOUND).violations.is_empty());
        assert_eq!(deadline(ms(1_000), BOUND, &facts.outages), ms(4_800));
        // An outage that ended before the endpoint went down changes nothing.
        let earlier = [Outage { from: ms(100), until: ms(900), why: "restart".into() }];
        assert_eq!(deadline(ms(1_000), BOUND, &earlier), ms(3_000));
        // Nor does one that begins after the deadline.
        let later = [Outage { from: ms(3_500), until: ms(9_000), why: "restart".into() }];
        assert_eq!(deadline(ms(1_000), BOUND, &later), ms(3_000));
    }

    #[test]
    fn a_restarted_backend_is_no_longer_stale() {
        let mut facts = facts_b_down_at_1s();
        facts.backends.push(BackendEvent { at: ms(1_500), address: B, up: true });
        let verdict = check(&recording(5_000, |_| set(&[A, B, C]), |_| (1, 1)), &facts, BOUND);
        assert!(verdict.violations.is_empty(), "{:#?}", verdict.violations);
    }

    #[test]
    fn a_generation_going_backwards_at_the_provider_is_an_i2_violation() {
        // The racing writer's shape: generation 5 is published, then a stale write of 2 lands.
        let r = recording(3_000, failover, |t| if t < 2_000 { (5, 2) } else { (2, 2) });
        let verdict = check(&r, &facts_b_down_at_1s(), BOUND);
        assert_eq!(verdict.broken(), BTreeSet::from(["I2"]));
        assert!(verdict.violations[0].detail.contains("5 (epoch 2)"), "{}", verdict.violations[0]);
    }

    #[test]
    fn an_older_epoch_publishing_after_a_newer_one_is_an_i3_violation() {
        let r = recording(3_000, failover, |t| if t < 2_000 { (5, 3) } else { (6, 2) });
        let verdict = check(&r, &facts_b_down_at_1s(), BOUND);
        assert_eq!(verdict.broken(), BTreeSet::from(["I3"]));
    }

    #[test]
    fn servfail_is_a_violation_and_timeouts_only_above_one_percent() {
        let few = |t| if t == 500 { Outcome::Timeout } else { set(&[A]) };
        assert!(check(&recording(2_000, few, |_| (1, 1)), &Facts::default(), BOUND).violations.is_empty());
        let many = |t| if t % 50 == 0 { Outcome::Timeout } else { set(&[A]) };
        let verdict = check(&recording(2_000, many, |_| (1, 1)), &Facts::default(), BOUND);
        assert_eq!(verdict.broken(), BTreeSet::from(["timeouts"]));
        let servfail = |t| if t == 500 { Outcome::Failed("Server Failure".into()) } else { set(&[A]) };
        let verdict = check(&recording(2_000, servfail, |_| (1, 1)), &Facts::default(), BOUND);
        assert_eq!(verdict.broken(), BTreeSet::from(["rcode"]));
    }

    #[test]
    fn capacity_leaving_faster_than_the_velocity_cap_is_flagged() {
        let cap = Velocity {
            capacities: [(A, 100), (B, 100), (C, 200)].into(),
            window: Duration::from_secs(60),
            max_remove_percent: 25.0,
        };
        let one = |t| if t < 1_000 { set(&[A, B, C]) } else { set(&[A, C]) };
        assert!(velocity(&recording(3_000, one, |_| (1, 1)), &cap).is_empty(), "100 of 400 is 25 %");
        let two = |t| match t {
            0..1_000 => set(&[A, B, C]),
            1_000..2_000 => set(&[A, C]),
            2_000..2_500 => set(&[A, B, C]),
            _ => set(&[B, C]),
        };
        let flagged = velocity(&recording(3_000, two, |_| (1, 1)), &cap);
        assert_eq!(flagged.len(), 1, "{flagged:#?}");
        assert_eq!(flagged[0].at, ms(2_500));
    }
}
