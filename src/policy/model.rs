//! The FailoverPolicy v1 document (ARCHITECTURE.md §6), as parsed.
//!
//! Structs are flat and `deny_unknown_fields` (internally tagged enums lose error
//! positions); values that semantic checks point at are [`Spanned`]. Optional
//! settings are `Option`s so that validation can tell "given" from "defaulted";
//! the accessor methods return the effective value.

use super::duration::PolicyDuration;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use std::time::Duration;
pub use veer_provider::RecordName;

/// The only apiVersion this build reads.
pub const API_VERSION: &str = "veer/v1";

/// Every veer document: the header all kinds share and a kind's `spec`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Document<Spec> {
    /// Must be `veer/v1`.
    pub api_version: Spanned<String>,
    /// The kind (`FailoverPolicy`, `Drill`, `Chaos`, `Scenario`).
    pub kind: Spanned<String>,
    /// The document's name.
    pub metadata: Metadata,
    /// The kind's body.
    pub spec: Spec,
}

impl<Spec> Document<Spec> {
    /// Reports an `apiVersion` other than [`API_VERSION`].
    pub fn check_api_version(&self, f: &mut super::diagnostic::Findings<'_>) {
        if self.api_version.value != API_VERSION {
            f.error(
                &self.api_version,
                format!("unsupported apiVersion `{}` (expected `{API_VERSION}`)", self.api_version.value),
            );
        }
    }
}

/// One failover policy: a DNS name, its endpoints in pools, and how veer moves traffic.
pub type FailoverPolicy = Document<PolicySpec>;

/// Document metadata.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// Unique across all loaded policies.
    pub name: Spanned<String>,
}

/// The body of a policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySpec {
    /// The managed DNS name.
    pub record: RecordSpec,
    /// Provider names from the controller config; the same answers go to each.
    pub publish_to: Spanned<Vec<Spanned<String>>>,
    /// Take over a name that has answers but no ownership record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,
    /// `weighted` or `failover`.
    pub routing: Spanned<Routing>,
    /// Endpoints grouped in pools; order matters for `failover`.
    pub pools: Spanned<Vec<Pool>>,
    /// How endpoints are probed.
    pub health_check: HealthCheck,
    /// Velocity caps on automated removals.
    #[serde(default)]
    pub shift: Shift,
    /// Staged return to service.
    #[serde(default)]
    pub warmup: Warmup,
    /// Capacity floors.
    #[serde(default)]
    pub guards: Guards,
}

/// The DNS name a policy manages.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecordSpec {
    /// Fully qualified, trailing dot.
    pub name: Spanned<RecordName>,
    /// `A`, `AAAA` or `CNAME`.
    #[serde(rename = "type")]
    pub record_type: Spanned<RecordKind>,
    /// Time to live in seconds (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Spanned<u32>>,
}

impl RecordSpec {
    /// Effective TTL in seconds.
    pub fn ttl(&self) -> u32 {
        self.ttl.as_ref().map_or(30, |t| t.value)
    }
}

/// Record types a policy may manage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum RecordKind {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    AAAA,
    /// One target name.
    CNAME,
}

impl RecordKind {
    /// The provider model's record type.
    pub fn record_type(self) -> veer_provider::RecordType {
        match self {
            RecordKind::A => veer_provider::RecordType::A,
            RecordKind::AAAA => veer_provider::RecordType::AAAA,
            RecordKind::CNAME => veer_provider::RecordType::CNAME,
        }
    }
}

/// How answers are chosen (ARCHITECTURE.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    /// Every healthy endpoint serves, weighted by capacity.
    Weighted,
    /// The first pool with enough healthy capacity serves.
    Failover,
}

/// A named group of endpoints (a region, a cloud).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pool {
    /// Pool name, unique within the policy.
    pub name: Spanned<String>,
    /// The pool's endpoints (at least one).
    pub endpoints: Spanned<Vec<Endpoint>>,
}

/// One answer candidate.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Endpoint {
    /// Unique within the policy; used in overrides, metrics and provider set ids.
    pub id: Spanned<String>,
    /// IPv4 for A, IPv6 for AAAA, a fully qualified name for CNAME.
    pub address: Spanned<String>,
    /// Relative capacity (default 100); weights are proportional to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Spanned<u32>>,
    /// Per-endpoint probe settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<EndpointCheck>,
}

impl Endpoint {
    /// Effective capacity.
    pub fn capacity(&self) -> u32 {
        self.capacity.as_ref().map_or(100, |c| c.value)
    }
}

/// Per-endpoint overrides of the policy's health check.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndpointCheck {
    /// Host header and TLS SNI for http/https probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Spanned<String>>,
    /// Probe this port instead of the policy's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Spanned<u16>>,
    /// Probe this address instead of the endpoint's (e.g. the backend behind a CNAME).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Spanned<String>>,
}

/// Probe kinds (ARCHITECTURE.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    /// HTTP GET, status in `expectStatus`.
    Http,
    /// HTTPS GET with certificate verification.
    Https,
    /// TCP connect.
    Tcp,
    /// A DNS query for `query` answered by the endpoint.
    Dns,
}

/// How endpoints are probed. Flat on purpose: per-type rules are checked semantically.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthCheck {
    /// `http`, `https`, `tcp` or `dns`.
    #[serde(rename = "type")]
    pub kind: Spanned<ProbeKind>,
    /// Port (default: 80 http, 443 https, 53 dns; required for tcp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Spanned<u16>>,
    /// HTTP path (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Spanned<String>>,
    /// Accepted HTTP statuses (default `[200]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<Spanned<Vec<Spanned<u16>>>>,
    /// A substring the HTTP body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Spanned<String>>,
    /// Host header and SNI for every endpoint (an endpoint's `check.host` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Spanned<String>>,
    /// PEM file of CA certificates for https (default: the system roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<Spanned<String>>,
    /// https only: accept any certificate. For labs; never the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<Spanned<bool>>,
    /// dns only: the name to query at the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Spanned<RecordName>>,
    /// Time between probes of one endpoint (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Spanned<PolicyDuration>>,
    /// Per-probe timeout, less than `interval` (default 500ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Spanned<PolicyDuration>>,
    /// Consecutive successes to count healthy (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<Spanned<u32>>,
    /// Consecutive failures to count unhealthy (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<Spanned<u32>>,
    /// Percent of fresh vantages that must see an endpoint down (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<Spanned<f64>>,
}

impl HealthCheck {
    /// Effective port.
    pub fn port(&self) -> Option<u16> {
        self.port.as_ref().map(|p| p.value).or(match self.kind.value {
            ProbeKind::Http => Some(80),
            ProbeKind::Https => Some(443),
            ProbeKind::Dns => Some(53),
            ProbeKind::Tcp => None,
        })
    }
    /// Effective HTTP path.
    pub fn path(&self) -> &str {
        self.path.as_ref().map_or("/", |p| p.value.as_str())
    }
    /// Effective accepted statuses.
    pub fn expect_status(&self) -> Vec<u16> {
        self.expect_status.as_ref().map_or_else(|| vec![200], |s| s.value.iter().map(|v| v.value).collect())
    }
    /// Effective probe interval.
    pub fn interval(&self) -> Duration {
        self.interval.as_ref().map_or(Duration::from_secs(1), |d| d.value.get())
    }
    /// Effective probe timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout.as_ref().map_or(Duration::from_millis(500), |d| d.value.get())
    }
    /// Effective rise count.
    pub fn rise(&self) -> u32 {
        self.rise.as_ref().map_or(2, |v| v.value)
    }
    /// Effective fall count.
    pub fn fall(&self) -> u32 {
        self.fall.as_ref().map_or(3, |v| v.value)
    }
    /// Effective quorum percent.
    pub fn quorum(&self) -> f64 {
        self.quorum.as_ref().map_or(50.0, |v| v.value)
    }
    /// Whether https probes skip certificate verification.
    pub fn insecure_skip_verify(&self) -> bool {
        self.insecure_skip_verify.as_ref().is_some_and(|v| v.value)
    }
}

/// Velocity caps (ARCHITECTURE.md §6, invariant I5).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Shift {
    /// Percent of the record's capacity automation may remove per `window` (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_remove_percent: Option<Spanned<f64>>,
    /// The sliding window for `maxRemovePercent` (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Spanned<PolicyDuration>>,
    /// Most applied changes of this record per hour (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_changes_per_hour: Option<Spanned<u32>>,
}

impl Shift {
    /// Effective removal cap in percent.
    pub fn max_remove_percent(&self) -> f64 {
        self.max_remove_percent.as_ref().map_or(50.0, |v| v.value)
    }
    /// Effective window.
    pub fn window(&self) -> Duration {
        self.window.as_ref().map_or(Duration::from_secs(300), |d| d.value.get())
    }
    /// Effective change cap per hour.
    pub fn max_changes_per_hour(&self) -> u32 {
        self.max_changes_per_hour.as_ref().map_or(60, |v| v.value)
    }
}

/// Staged warm-up (ARCHITECTURE.md §6, invariant I6).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Warmup {
    /// Ascending percents of full weight, ending at 100 (default `[10, 25, 50, 100]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Spanned<Vec<Spanned<f64>>>>,
    /// Continuous healthy time per stage before the next (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Spanned<PolicyDuration>>,
    /// Set-only providers: percent of capacity that may rejoin per stage (default 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_join_percent: Option<Spanned<f64>>,
}

impl Warmup {
    /// Effective stages.
    pub fn stages(&self) -> Vec<f64> {
        self.stages
            .as_ref()
            .map_or_else(|| vec![10.0, 25.0, 50.0, 100.0], |s| s.value.iter().map(|v| v.value).collect())
    }
    /// Effective hold per stage.
    pub fn hold(&self) -> Duration {
        self.hold.as_ref().map_or(Duration::from_secs(30), |d| d.value.get())
    }
    /// Effective join cap in percent.
    pub fn max_join_percent(&self) -> f64 {
        self.max_join_percent.as_ref().map_or(25.0, |v| v.value)
    }
}

/// What happens when every endpoint is unhealthy (invariant I7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnAllUnhealthy {
    /// Fail open: publish every endpoint.
    ServeAll,
    /// Fail static: keep the last published answers.
    KeepLast,
}

/// Capacity floors (ARCHITECTURE.md §6, invariant I4).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Guards {
    /// Fewest endpoints that must stay published (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_healthy_endpoints: Option<Spanned<u32>>,
    /// Least capacity, in percent of the total, that must stay published (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_capacity_percent: Option<Spanned<f64>>,
    /// `serve-all` (default) or `keep-last`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_all_unhealthy: Option<Spanned<OnAllUnhealthy>>,
}

impl Guards {
    /// Effective minimum endpoint count.
    pub fn min_healthy_endpoints(&self) -> u32 {
        self.min_healthy_endpoints.as_ref().map_or(1, |v| v.value)
    }
    /// Effective capacity floor in percent.
    pub fn min_capacity_percent(&self) -> f64 {
        self.min_capacity_percent.as_ref().map_or(30.0, |v| v.value)
    }
    /// Effective all-unhealthy behaviour.
    pub fn on_all_unhealthy(&self) -> OnAllUnhealthy {
        self.on_all_unhealthy.as_ref().map_or(OnAllUnhealthy::ServeAll, |v| v.value)
    }
}

impl FailoverPolicy {
    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.metadata.name.value
    }
    /// The managed record name.
    pub fn record_name(&self) -> &RecordName {
        &self.spec.record.name.value
    }
    /// Every endpoint with its pool, in pool order.
    pub fn endpoints(&self) -> impl Iterator<Item = (&Pool, &Endpoint)> {
        self.spec.pools.value.iter().flat_map(|p| p.endpoints.value.iter().map(move |e| (p, e)))
    }
    /// Sum of all endpoints' capacities.
    pub fn total_capacity(&self) -> u64 {
        self.endpoints().map(|(_, e)| u64::from(e.capacity())).sum()
    }
}
