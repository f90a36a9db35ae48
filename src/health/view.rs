//! The planner's health input: one combined state per endpoint, and whether the
//! checker itself is impaired (then the planner holds the last known good).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Identifies an endpoint: ids are unique within a policy, not across policies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EndpointKey {
    /// The policy's `metadata.name`.
    pub policy: String,
    /// The endpoint's `id`.
    pub endpoint: String,
}

impl EndpointKey {
    /// Builds a key.
    pub fn new(policy: impl Into<String>, endpoint: impl Into<String>) -> Self {
        Self { policy: policy.into(), endpoint: endpoint.into() }
    }
}

/// Combined health of one endpoint across fresh, unimpaired vantages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthState {
    /// Fewer than `quorum` % of fresh vantages see it down.
    Up,
    /// At least `quorum` % of fresh vantages see it down.
    Down,
    /// No fresh vantage has an opinion yet (start-up): the planner keeps what is published.
    Unknown,
}

/// One endpoint in the combined view, with the counts behind the verdict (for
/// reasons such as "use1-a unhealthy (3/3 vantages)").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointHealth {
    /// The verdict.
    pub state: HealthState,
    /// Fresh vantages that see the endpoint down.
    pub vantages_down: u32,
    /// Fresh, unimpaired vantages that reported on it.
    pub vantages_fresh: u32,
}

/// Everything the planner knows about health at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthView {
    /// Set when no unimpaired vantage with fresh data remains: the checker, not
    /// the fleet, is broken, so automation must hold (invariant I7).
    pub impaired: Option<String>,
    /// Per endpoint; a missing endpoint counts as [`HealthState::Unknown`].
    pub endpoints: BTreeMap<EndpointKey, EndpointHealth>,
}

impl HealthView {
    /// The state of one endpoint.
    pub fn state(&self, key: &EndpointKey) -> HealthState {
        self.endpoints.get(key).map_or(HealthState::Unknown, |e| e.state)
    }
}

impl HealthView {
    /// Every endpoint of one policy with its combined health, in id order, without
    /// allocating a key per lookup (the planner reads 100 000 endpoints per plan).
    pub fn policy_endpoints<'v>(&'v self, policy: &'v str) -> impl Iterator<Item = (&'v str, &'v EndpointHealth)> + 'v {
        self.endpoints
            .range(EndpointKey::new(policy, "")..)
            .take_while(move |(k, _)| k.policy == policy)
            .map(|(k, h)| (k.endpoint.as_str(), h))
    }
}
