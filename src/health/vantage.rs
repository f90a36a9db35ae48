//! What one replica (a vantage) reports about every endpoint it probes.
//! Replicas publish a [`VantageReport`]; the leader combines them into a
//! [`super::HealthView`] with quorum, freshness and impairment rules (ARCHITECTURE.md §6).

use super::EndpointKey;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One vantage's verdict on one endpoint, after hysteresis (`rise`/`fall`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeVerdict {
    /// `rise` consecutive successes (or healthy and not yet `fall` failures).
    Up,
    /// `fall` consecutive failures.
    Down,
    /// Not enough probes yet to say.
    Unknown,
}

/// One endpoint as seen from one vantage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointReport {
    /// The verdict after hysteresis.
    pub verdict: ProbeVerdict,
    /// When the verdict last changed.
    pub since: Timestamp,
    /// Latency of the last probe in milliseconds, when it completed.
    pub last_latency_ms: Option<u64>,
    /// Short reason of the last failure ("connect refused", "timeout 500ms", "status 503").
    pub last_failure: Option<String>,
    /// When the last probe completed, on the reporter's clock (absent before the
    /// first). The combiner judges freshness by it, not by the report's `at`: a
    /// replica resumed after a pause republishes old verdicts under a new `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<Timestamp>,
}

impl EndpointReport {
    /// When this verdict was last confirmed by a probe, within `report_at`:
    /// the report's own time for reporters that do not say (simulations, older replicas).
    pub fn checked_by(&self, report_at: Timestamp) -> Timestamp {
        self.checked.map_or(report_at, |c| c.min(report_at))
    }
}

/// Everything one vantage knows at one instant. Its JSON form (replicas send it
/// to the leader, `GET /v1/vantage`) lists the endpoints as an array of
/// `{policy, endpoint, verdict, since, lastLatencyMs, lastFailure}`, since JSON
/// object keys cannot hold the two-part [`EndpointKey`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VantageReport {
    /// The vantage id (`vantage` in the controller config).
    pub vantage: String,
    /// When the report was made, on the reporting replica's clock.
    pub at: Timestamp,
    /// Per endpoint.
    #[serde(with = "endpoint_list")]
    pub endpoints: BTreeMap<EndpointKey, EndpointReport>,
}

/// The endpoints map as a JSON array of flat entries.
mod endpoint_list {
    use super::{EndpointKey, EndpointReport};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct EntryRef<'a> {
        policy: &'a str,
        endpoint: &'a str,
        #[serde(flatten)]
        report: &'a EndpointReport,
    }

    #[derive(Deserialize)]
    struct Entry {
        policy: String,
        endpoint: String,
        #[serde(flatten)]
        report: EndpointReport,
    }

    pub fn serialize<S: Serializer>(map: &BTreeMap<EndpointKey, EndpointReport>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter().map(|(k, report)| EntryRef { policy: &k.policy, endpoint: &k.endpoint, report }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<EndpointKey, EndpointReport>, D::Error> {
        let entries = Vec::<Entry>::deserialize(d)?;
        Ok(entries.into_iter().map(|e| (EndpointKey::new(e.policy, e.endpoint), e.report)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_round_trips_through_json_with_endpoints_as_an_array() {
        let report = VantageReport {
            vantage: "r1".into(),
            at: Timestamp(5_000),
            endpoints: [
                (
                    EndpointKey::new("api", "a"),
                    EndpointReport {
                        verdict: ProbeVerdict::Down,
                        since: Timestamp(4_000),
                        last_latency_ms: None,
                        last_failure: Some("connect refused".into()),
                        checked: Some(Timestamp(1_000)),
                    },
                ),
                (
                    EndpointKey::new("web", "a"),
                    EndpointReport {
                        verdict: ProbeVerdict::Up,
                        since: Timestamp(0),
                        last_latency_ms: Some(3),
                        last_failure: None,
                        checked: None,
                    },
                ),
            ]
            .into(),
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["endpoints"][0]["policy"], "api");
        assert_eq!(json["endpoints"][0]["verdict"], "down");
        assert_eq!(json["endpoints"][1]["lastLatencyMs"], 3);
        assert_eq!(serde_json::from_value::<VantageReport>(json).unwrap(), report);
    }
}
