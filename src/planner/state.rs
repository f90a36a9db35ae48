//! What the planner remembers between plans: warm-up per endpoint, the velocity
//! and change ledgers per record, and the last generation. The store persists
//! it so that warm-up and velocity survive a leader change (ARCHITECTURE.md §6).

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The planner's persisted state, keyed by policy name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlannerState {
    /// Per policy (one record each).
    pub records: BTreeMap<String, RecordState>,
}

/// One record's memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordState {
    /// Warm-up per endpoint id.
    pub endpoints: BTreeMap<String, WarmupState>,
    /// Automated removals inside the longest window that still matters
    /// (`shift.window`), oldest first: the velocity ledger (I5).
    pub removals: Vec<Removal>,
    /// When the record changed during the last hour, oldest first (`maxChangesPerHour`).
    pub changes: Vec<Timestamp>,
    /// Set-only staged re-joining: capacity that joined, and when.
    pub joins: Vec<Join>,
    /// The generation of the last plan that changed the record (+1 per change).
    pub generation: u64,
}

/// One automated removal in the velocity ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// When it was planned.
    pub at: Timestamp,
    /// The endpoint removed.
    pub endpoint: String,
    /// Its capacity.
    pub capacity: u64,
}

/// One set-only re-join in the join ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    /// When it was planned.
    pub at: Timestamp,
    /// The endpoint that joined.
    pub endpoint: String,
    /// Its capacity.
    pub capacity: u64,
}

/// Where an endpoint is on its way back to full service (I6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum WarmupState {
    /// Not published. It may start warming once healthy and `now ≥ retry_at`.
    Out {
        /// Earliest start of the next warm-up attempt (jittered backoff after a
        /// failure during warm-up, otherwise the time it left).
        retry_at: Timestamp,
        /// Failed warm-up attempts in a row (drives the backoff).
        attempts: u32,
    },
    /// Published at `stages[stage]` % of full weight since `since` (continuous health).
    Warming {
        /// Index into `warmup.stages`, never the last (that is `Full`).
        stage: usize,
        /// Start of the current stage's continuous health.
        since: Timestamp,
        /// Failed attempts before this one.
        attempts: u32,
    },
    /// Published at full weight.
    Full,
}

impl WarmupState {
    /// Fraction of full weight (0–1) for `stages` in percent.
    pub fn level(&self, stages: &[f64]) -> f64 {
        match self {
            WarmupState::Out { .. } => 0.0,
            WarmupState::Warming { stage, .. } => stages.get(*stage).copied().unwrap_or(100.0) / 100.0,
            WarmupState::Full => 1.0,
        }
    }

    /// Percent of full weight, for reasons.
    pub fn percent(&self, stages: &[f64]) -> f64 {
        self.level(stages) * 100.0
    }
}

/// The next attempt's delay after `attempts` failed warm-ups: `hold · 2^(attempts-1)`
/// capped at `16 · hold`, then "equal jitter" (uniform in [d/2, d]) from a hash of
/// the seed and the endpoint, so replicas agree and a simulation is repeatable,
/// while endpoints that failed together do not retry together.
pub fn backoff(seed: u64, policy: &str, endpoint: &str, attempts: u32, hold: Duration) -> Duration {
    let hold_ms = hold.as_millis().max(1) as u64;
    let exponent = attempts.saturating_sub(1).min(4);
    let delay = hold_ms.saturating_mul(1 << exponent);
    let unit = unit_interval(mix(seed, &[policy, endpoint, &attempts.to_string()]));
    Duration::from_millis(delay / 2 + ((delay / 2) as f64 * unit) as u64)
}

/// A deterministic 64-bit hash (FNV-1a folded through SplitMix64): stable across
/// builds and platforms, unlike `std`'s `DefaultHasher`.
pub fn mix(seed: u64, parts: &[&str]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    splitmix(h)
}

/// SplitMix64's finaliser.
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Maps a hash to [0, 1).
pub fn unit_interval(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_repeatable() {
        let hold = Duration::from_secs(30);
        let first = backoff(7, "api", "use1-a", 1, hold);
        assert!(first >= Duration::from_secs(15) && first <= Duration::from_secs(30), "{first:?}");
        let third = backoff(7, "api", "use1-a", 3, hold);
        assert!(third >= Duration::from_secs(60) && third <= Duration::from_secs(120), "{third:?}");
        assert_eq!(first, backoff(7, "api", "use1-a", 1, hold));
        let others: std::collections::BTreeSet<_> =
            (0..20).map(|i| backoff(7, "api", &format!("e{i}"), 1, hold)).collect();
        assert!(others.len() > 10, "endpoints failing together retry apart");
        assert!(backoff(7, "api", "x", 50, hold) <= hold * 16);
    }

    #[test]
    fn levels_follow_the_stages() {
        let stages = [10.0, 25.0, 50.0, 100.0];
        assert_eq!(WarmupState::Out { retry_at: Timestamp(0), attempts: 0 }.level(&stages), 0.0);
        assert_eq!(WarmupState::Warming { stage: 1, since: Timestamp(0), attempts: 0 }.level(&stages), 0.25);
        assert_eq!(WarmupState::Full.level(&stages), 1.0);
    }
}
