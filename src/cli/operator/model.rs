//! What the operator commands read from the admin API, as typed views: the
//! `GET /v1/status` contract (every field optional, so a replica that knows less —
//! a follower, an older version — still renders), overrides, previews and
//! history entries. Timestamps are accepted as RFC 3339 text or milliseconds.

use crate::planner::OverrideAction;
use serde::{Deserialize, Deserializer};

/// Milliseconds since the Unix epoch, read from a number or an RFC 3339 string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub u64);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => {
                n.as_u64().map(Time).ok_or_else(|| serde::de::Error::custom("a time must be positive milliseconds"))
            }
            serde_json::Value::String(s) => super::term::parse_time(&s)
                .map(Time)
                .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not an RFC 3339 time"))),
            other => Err(serde::de::Error::custom(format!("`{other}` is not a time"))),
        }
    }
}

/// `GET /v1/status` (see the README's operator section for the contract).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    pub replica: String,
    pub role: Option<String>,
    pub leader: Option<Leader>,
    pub generated_at: Option<Time>,
    pub rounds: Option<u64>,
    pub writes: Option<u64>,
    pub last_error: Option<String>,
    pub policy_reload_error: Option<String>,
    pub providers_unavailable: Vec<ProviderUnavailable>,
    pub quarantined: Vec<QuarantinedName>,
    pub checker: Option<Checker>,
    pub vantages: Vec<VantageInfo>,
    pub records: Vec<RecordStatus>,
    pub overrides: Vec<OverrideView>,
    /// The next scheduled drill, the last result, the run in progress (absent from older replicas).
    pub drills: crate::drill::api::DrillsSummary,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProviderUnavailable {
    pub provider: String,
    pub reason: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QuarantinedName {
    pub provider: String,
    pub record: String,
    pub reason: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Leader {
    pub identity: Option<String>,
    pub epoch: Option<u64>,
    pub admin_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Checker {
    pub impaired: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VantageInfo {
    pub id: String,
    pub fresh: Option<bool>,
    pub report_age_ms: Option<u64>,
}

/// One record of the status.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RecordStatus {
    pub name: String,
    pub policy: String,
    pub routing: Option<String>,
    pub providers: Vec<String>,
    pub frozen: Option<Frozen>,
    pub generation: Option<u64>,
    pub epoch: Option<u64>,
    pub last_apply: Option<LastApply>,
    pub endpoints: Vec<EndpointStatus>,
    pub held: Vec<HeldView>,
    pub overrides: Vec<OverrideView>,
}

impl RecordStatus {
    /// Whether `name` designates this record: its policy name, or its record name
    /// with or without the trailing dot.
    pub fn is_named(&self, name: &str) -> bool {
        name == self.policy || name.trim_end_matches('.') == self.name.trim_end_matches('.')
    }

    /// Pool names in policy order, without repeats.
    pub fn pools(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for e in &self.endpoints {
            if !out.contains(&e.pool.as_str()) {
                out.push(&e.pool);
            }
        }
        out
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Frozen {
    pub scope: Option<String>,
    pub reason: Option<String>,
    pub author: Option<String>,
    pub expires_at: Option<Time>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LastApply {
    pub at: Option<Time>,
    pub outcome: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointStatus {
    pub id: String,
    pub pool: String,
    pub address: String,
    pub capacity: Option<u64>,
    pub health: Option<String>,
    pub vantages_down: Option<u64>,
    pub vantages_fresh: Option<u64>,
    pub desired_weight: Option<u64>,
    pub published_weight: Option<u64>,
    pub warmup: Option<Warmup>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Warmup {
    pub stage: Option<u64>,
    pub stages: Option<u64>,
    pub percent: Option<f64>,
    pub next_stage_in_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HeldView {
    pub endpoint: Option<String>,
    pub reason: String,
}

/// An override as the API shows it (`expires_at` or `expiresAt`, either time form).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverrideView {
    pub id: String,
    pub action: OverrideAction,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub author: String,
    #[serde(default, alias = "expires_at")]
    pub expires_at: Option<Time>,
    #[serde(default)]
    pub force: bool,
}

/// One record in an impact preview (`POST /v1/overrides?dryRun=true`).
#[derive(Debug, Clone, Deserialize)]
pub struct RecordImpact {
    pub policy: String,
    pub record: String,
    pub before: Vec<Answer>,
    pub after: Vec<Answer>,
    pub healthy_capacity_percent_before: f64,
    pub healthy_capacity_percent_after: f64,
    #[serde(default)]
    pub refused_by: Option<String>,
    #[serde(default)]
    pub guard_bypassed: Option<String>,
}

/// A planned answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Answer {
    pub endpoint: String,
    pub address: String,
    #[serde(default)]
    pub share: f64,
    pub weight: u64,
}

/// The preview of a change: the records it touches.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Impact {
    pub records: Vec<RecordImpact>,
}

impl Impact {
    /// The first guard refusal, if any.
    pub fn refusal(&self) -> Option<&RecordImpact> {
        self.records.iter().find(|r| r.refused_by.is_some())
    }
}
