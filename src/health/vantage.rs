//! What one replica (a vantage) reports about every endpoint it probes.
//! Replicas publish a [`VantageReport`]; the leader combines them into a
//! [`super::HealthView`] with quorum, freshness and impairment rules (SPEC §6).

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
pub struct EndpointReport {
    /// The verdict after hysteresis.
    pub verdict: ProbeVerdict,
    /// When the verdict last changed.
    pub since: Timestamp,
    /// Latency of the last probe in milliseconds, when it completed.
    pub last_latency_ms: Option<u64>,
    /// Short reason of the last failure ("connect refused", "timeout 500ms", "status 503").
    pub last_failure: Option<String>,
}

/// Everything one vantage knows at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VantageReport {
    /// The vantage id (`vantage` in the controller config).
    pub vantage: String,
    /// When the report was made, on the reporting replica's clock.
    pub at: Timestamp,
    /// Per endpoint.
    pub endpoints: BTreeMap<EndpointKey, EndpointReport>,
}
