//! The vantage combiner (ARCHITECTURE.md §6): many replicas' [`VantageReport`]s in, one
//! [`HealthView`] out, with quorum, freshness and checker-impairment rules.
//!
//! Pure, like the planner: the caller passes `now` and the previous
//! [`CombinerState`], so the leader and `veer simulate` run the same code.

use super::{EndpointHealth, EndpointKey, HealthState, HealthView, ProbeVerdict, VantageReport};
use crate::policy::FailoverPolicy;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// A report older than this many probe intervals is not fresh.
pub const FRESH_INTERVALS: u32 = 3;
/// Percent of all endpoints that, going down from one vantage within one interval
/// across at least [`IMPAIRED_POOLS_MIN`] pools, marks that vantage impaired.
pub const IMPAIRED_DOWN_PERCENT: f64 = 80.0;
/// Fewest pools a mass failure must span to look like the checker's own failure.
pub const IMPAIRED_POOLS_MIN: usize = 2;
/// An impaired vantage clears once it sees fewer than this percent of endpoints down:
/// lower than the trigger, so that a vantage recovering its network does not flap
/// in and out of impairment.
pub const IMPAIRED_CLEAR_PERCENT: f64 = 50.0;

/// What the combiner remembers between rounds (persisted with the planner state).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CombinerState {
    /// Per vantage id, the vantages currently marked impaired.
    pub impaired: BTreeMap<String, Impairment>,
}

/// Why and since when a vantage is excluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impairment {
    /// When it was detected.
    pub since: Timestamp,
    /// For alerts and `veer status`.
    pub reason: String,
}

struct Known {
    interval: Duration,
    quorum: f64,
    pool: (usize, usize),
}

/// Combines the latest report of each vantage into the planner's health view.
///
/// # Guarantees
/// - An endpoint is `Down` only when at least `quorum` % of the fresh, unimpaired
///   vantages with a verdict see it down; `Unknown` when none has a verdict.
/// - A vantage that sees more than 80 % of all endpoints go down within one
///   interval, across at least two pools, is excluded until it sees fewer than
///   50 % down; when no fresh unimpaired vantage remains, `impaired` is set and
///   the planner holds (I7).
///
/// # Assumptions
/// - Report timestamps and `now` are on comparable clocks (lease-grade skew);
///   a report from the future counts as fresh.
pub fn combine(
    policies: &[&FailoverPolicy],
    reports: &[VantageReport],
    previous: &CombinerState,
    now: Timestamp,
) -> (HealthView, CombinerState) {
    let mut known: HashMap<EndpointKey, Known> = HashMap::new();
    for (policy_index, policy) in policies.iter().enumerate() {
        let check = &policy.spec.health_check;
        for (pool_index, pool) in policy.spec.pools.value.iter().enumerate() {
            for e in &pool.endpoints.value {
                known.insert(
                    EndpointKey::new(policy.name(), e.id.value.as_str()),
                    Known { interval: check.interval(), quorum: check.quorum(), pool: (policy_index, pool_index) },
                );
            }
        }
    }
    let total = known.len();
    let interval_max = known.values().map(|k| k.interval).max().unwrap_or(Duration::from_secs(1));

    // The newest report of each vantage.
    let mut latest: BTreeMap<&str, &VantageReport> = BTreeMap::new();
    for report in reports {
        let slot = latest.entry(report.vantage.as_str()).or_insert(report);
        if report.at > slot.at {
            *slot = report;
        }
    }

    // A vantage that stopped reporting stays impaired until a report of its own clears it.
    let mut next = CombinerState {
        impaired: previous
            .impaired
            .iter()
            .filter(|(v, _)| !latest.contains_key(v.as_str()))
            .map(|(v, i)| (v.clone(), i.clone()))
            .collect(),
    };
    for (vantage, report) in &latest {
        let down: Vec<(&EndpointKey, Timestamp)> = report
            .endpoints
            .iter()
            .filter(|(k, r)| r.verdict == ProbeVerdict::Down && known.contains_key(k))
            .map(|(k, r)| (k, r.since))
            .collect();
        let down_percent = if total == 0 { 0.0 } else { down.len() as f64 * 100.0 / total as f64 };
        match previous.impaired.get(*vantage) {
            Some(impairment) if down_percent >= IMPAIRED_CLEAR_PERCENT => {
                next.impaired.insert(vantage.to_string(), impairment.clone());
            }
            Some(_) => {}
            None => {
                if let Some(reason) = mass_failure(vantage, &down, &known, total, interval_max, report.at) {
                    next.impaired.insert(vantage.to_string(), Impairment { since: now, reason });
                }
            }
        }
    }

    // A verdict counts while its last probe is recent, whatever the report's date.
    let fresh = |at: Timestamp, interval: Duration| now.since(at) <= interval * FRESH_INTERVALS;
    let verdict = |report: &VantageReport, key: &EndpointKey, interval: Duration| {
        report.endpoints.get(key).filter(|r| fresh(r.checked_by(report.at), interval)).map(|r| r.verdict)
    };
    let mut view = HealthView::default();
    for (key, k) in &known {
        let (mut fresh_count, mut down_count) = (0u32, 0u32);
        for (vantage, report) in &latest {
            if next.impaired.contains_key(*vantage) || !fresh(report.at, k.interval) {
                continue;
            }
            match verdict(report, key, k.interval) {
                Some(ProbeVerdict::Up) => fresh_count += 1,
                Some(ProbeVerdict::Down) => {
                    fresh_count += 1;
                    down_count += 1;
                }
                Some(ProbeVerdict::Unknown) | None => {}
            }
        }
        let state = if fresh_count == 0 {
            HealthState::Unknown
        } else if down_count > 0 && f64::from(down_count) * 100.0 >= k.quorum * f64::from(fresh_count) {
            HealthState::Down
        } else {
            HealthState::Up
        };
        view.endpoints
            .insert(key.clone(), EndpointHealth { state, vantages_down: down_count, vantages_fresh: fresh_count });
    }

    let usable = latest.iter().any(|(vantage, report)| {
        !next.impaired.contains_key(*vantage)
            && known.iter().any(|(key, k)| fresh(report.at, k.interval) && verdict(report, key, k.interval).is_some())
    });
    if total > 0 && !usable {
        view.impaired = Some(if next.impaired.is_empty() {
            "no fresh vantage data".to_string()
        } else {
            let list: Vec<String> = next.impaired.iter().map(|(v, i)| format!("{v}: {}", i.reason)).collect();
            format!("no fresh unimpaired vantage ({})", list.join("; "))
        });
    }
    (view, next)
}

/// Whether one vantage's down verdicts look like its own failure: more than 80 %
/// of all endpoints turned down within one interval, across at least two pools.
fn mass_failure(
    vantage: &str,
    down: &[(&EndpointKey, Timestamp)],
    known: &HashMap<EndpointKey, Known>,
    total: usize,
    interval: Duration,
    at: Timestamp,
) -> Option<String> {
    let recent_ms = (interval * (FRESH_INTERVALS + 1)).as_millis() as u64;
    let mut recent: Vec<(Timestamp, (usize, usize))> = down
        .iter()
        .filter(|(_, since)| at.as_millis().saturating_sub(since.as_millis()) <= recent_ms)
        .map(|(k, since)| (*since, known[*k].pool))
        .collect();
    recent.sort();
    let width = interval.as_millis() as u64;
    let mut start = 0;
    for end in 0..recent.len() {
        while recent[end].0.as_millis() - recent[start].0.as_millis() > width {
            start += 1;
        }
        let count = end - start + 1;
        if count as f64 * 100.0 > IMPAIRED_DOWN_PERCENT * total as f64 {
            let pools: BTreeSet<(usize, usize)> = recent[start..=end].iter().map(|(_, p)| *p).collect();
            if pools.len() >= IMPAIRED_POOLS_MIN {
                return Some(format!(
                    "{vantage} saw {count}/{total} endpoints in {} pools go down within {}",
                    pools.len(),
                    crate::policy::duration::format(interval)
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::EndpointReport;

    fn policy() -> FailoverPolicy {
        serde_saphyr::from_str(
            "apiVersion: veer/v1
kind: FailoverPolicy
metadata: { name: api }
spec:
  record: { name: api.example.com., type: A }
  publishTo: [p]
  routing: weighted
  pools:
    - name: east
      endpoints:
        - { id: a, address: 192.0.2.1 }
        - { id: b, address: 192.0.2.2 }
    - name: west
      endpoints:
        - { id: c, address: 192.0.2.3 }
        - { id: d, address: 192.0.2.4 }
  healthCheck: { type: tcp, port: 1, interval: 1s, quorum: 50 }
",
        )
        .unwrap()
    }

    fn report(vantage: &str, at: u64, verdicts: &[(&str, ProbeVerdict, u64)]) -> VantageReport {
        VantageReport {
            vantage: vantage.into(),
            at: Timestamp(at),
            endpoints: verdicts
                .iter()
                .map(|(id, verdict, since)| {
                    (
                        EndpointKey::new("api", *id),
                        EndpointReport {
                            verdict: *verdict,
                            since: Timestamp(*since),
                            last_latency_ms: None,
                            last_failure: None,
                            checked: None,
                        },
                    )
                })
                .collect(),
        }
    }

    use ProbeVerdict::{Down, Up};

    fn all(vantage: &str, at: u64, verdict: ProbeVerdict, since: u64) -> VantageReport {
        report(
            vantage,
            at,
            &[("a", verdict, since), ("b", verdict, since), ("c", verdict, since), ("d", verdict, since)],
        )
    }

    #[test]
    fn an_endpoint_is_down_only_when_a_quorum_of_fresh_vantages_sees_it_down() {
        let p = policy();
        let one_down = [
            report("v1", 10_000, &[("a", Down, 9_000), ("b", Up, 0)]),
            all("v2", 10_000, Up, 0),
            all("v3", 10_000, Up, 0),
        ];
        let (view, _) = combine(&[&p], &one_down, &CombinerState::default(), Timestamp(10_000));
        let a = view.endpoints[&EndpointKey::new("api", "a")];
        assert_eq!((a.state, a.vantages_down, a.vantages_fresh), (HealthState::Up, 1, 3));
        let two_down = [one_down[0].clone(), report("v2", 10_000, &[("a", Down, 9_500)]), all("v3", 10_000, Up, 0)];
        let (view, _) = combine(&[&p], &two_down, &CombinerState::default(), Timestamp(10_000));
        assert_eq!(view.state(&EndpointKey::new("api", "a")), HealthState::Down);
        assert_eq!(view.state(&EndpointKey::new("api", "c")), HealthState::Up);
        assert_eq!(view.impaired, None);
    }

    #[test]
    fn a_report_older_than_three_intervals_is_not_fresh() {
        let p = policy();
        let reports = [report("v1", 6_000, &[("a", Down, 5_000)]), all("v2", 10_000, Up, 0)];
        let (view, _) = combine(&[&p], &reports, &CombinerState::default(), Timestamp(10_000));
        let a = view.endpoints[&EndpointKey::new("api", "a")];
        assert_eq!((a.state, a.vantages_fresh), (HealthState::Up, 1));
        let (view, _) = combine(&[&p], &reports[..1], &CombinerState::default(), Timestamp(10_000));
        assert_eq!(view.impaired.as_deref(), Some("no fresh vantage data"));
        assert_eq!(view.state(&EndpointKey::new("api", "a")), HealthState::Unknown);
    }

    #[test]
    fn a_fresh_report_carrying_old_probe_results_does_not_vote() {
        // A replica resumed after a long pause republishes its pre-pause verdicts
        // under a new date before its probes have run again.
        let p = policy();
        let mut resumed = all("v1", 10_000, Down, 1_000);
        for e in resumed.endpoints.values_mut() {
            e.checked = Some(Timestamp(2_000));
        }
        let reports = [resumed.clone(), all("v2", 10_000, Up, 0)];
        let (view, _) = combine(&[&p], &reports, &CombinerState::default(), Timestamp(10_000));
        let a = view.endpoints[&EndpointKey::new("api", "a")];
        assert_eq!((a.state, a.vantages_down, a.vantages_fresh), (HealthState::Up, 0, 1));
        let (view, _) = combine(&[&p], &reports[..1], &CombinerState::default(), Timestamp(10_000));
        assert_eq!(view.impaired.as_deref(), Some("no fresh vantage data"), "alone, it holds the answers");
        // One probe since the pause: that endpoint's verdict counts again.
        resumed.endpoints.get_mut(&EndpointKey::new("api", "a")).unwrap().checked = Some(Timestamp(9_900));
        let (view, _) =
            combine(&[&p], &[resumed, all("v2", 10_000, Up, 0)], &CombinerState::default(), Timestamp(10_000));
        let a = view.endpoints[&EndpointKey::new("api", "a")];
        assert_eq!((a.state, a.vantages_down, a.vantages_fresh), (HealthState::Down, 1, 2));
        assert_eq!(view.state(&EndpointKey::new("api", "b")), HealthState::Up);
    }

    #[test]
    fn a_vantage_partitioned_from_everything_is_impaired_and_makes_nothing_down() {
        let p = policy();
        let reports = [all("v1", 10_000, Up, 0), all("v2", 10_000, Down, 9_800), all("v3", 10_000, Up, 0)];
        let (view, state) = combine(&[&p], &reports, &CombinerState::default(), Timestamp(10_000));
        assert!(state.impaired.contains_key("v2"));
        assert!(state.impaired["v2"].reason.contains("4/4 endpoints in 2 pools"), "{:?}", state.impaired);
        assert!(view.endpoints.values().all(|h| h.state == HealthState::Up && h.vantages_fresh == 2));
        assert_eq!(view.impaired, None);

        // It stays excluded while it still sees most endpoints down, then clears.
        let later = [all("v1", 20_000, Up, 0), all("v2", 20_000, Down, 9_800), all("v3", 20_000, Up, 0)];
        let (_, state) = combine(&[&p], &later, &state, Timestamp(20_000));
        assert!(state.impaired.contains_key("v2"));
        let healed = [all("v1", 30_000, Up, 0), all("v2", 30_000, Up, 29_000), all("v3", 30_000, Up, 0)];
        let (_, state) = combine(&[&p], &healed, &state, Timestamp(30_000));
        assert!(state.impaired.is_empty());
    }

    #[test]
    fn a_vantage_that_stops_reporting_stays_impaired_until_it_reports_healthy() {
        let p = policy();
        let partitioned = [all("v1", 10_000, Up, 0), all("v2", 10_000, Down, 9_800)];
        let (_, state) = combine(&[&p], &partitioned, &CombinerState::default(), Timestamp(10_000));
        let (_, state) = combine(&[&p], &partitioned[..1], &state, Timestamp(20_000));
        assert!(state.impaired.contains_key("v2"), "silent, still impaired");
        let back = [all("v1", 60_000, Up, 0), all("v2", 60_000, Down, 9_800)];
        let (view, state) = combine(&[&p], &back, &state, Timestamp(60_000));
        assert!(state.impaired.contains_key("v2"), "old failures do not count as votes");
        assert!(view.endpoints.values().all(|h| h.state == HealthState::Up));
    }

    #[test]
    fn when_every_vantage_is_impaired_the_view_says_so() {
        let p = policy();
        let reports = [all("v1", 10_000, Down, 9_900), all("v2", 10_000, Down, 9_700)];
        let (view, _) = combine(&[&p], &reports, &CombinerState::default(), Timestamp(10_000));
        assert!(view.impaired.as_deref().unwrap().starts_with("no fresh unimpaired vantage"), "{view:?}");
    }

    #[test]
    fn failures_spread_over_more_than_one_interval_are_not_impairment() {
        let p = policy();
        let spread =
            report("v1", 10_000, &[("a", Down, 6_000), ("b", Down, 7_500), ("c", Down, 9_000), ("d", Down, 9_900)]);
        let (_, state) = combine(&[&p], &[spread], &CombinerState::default(), Timestamp(10_000));
        assert!(state.impaired.is_empty());
        let one_pool = report("v1", 10_000, &[("a", Down, 9_900), ("b", Down, 9_900)]);
        let (_, state) = combine(&[&p], &[one_pool], &CombinerState::default(), Timestamp(10_000));
        assert!(state.impaired.is_empty(), "two of four is not more than 80 %");
    }
}
