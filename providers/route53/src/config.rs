//! Settings of one Route 53 provider: zones, endpoint, region, credentials and the
//! tunables of the INSYNC wait and the SDK timeouts.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use veer_provider::RecordName;

use crate::batch::BatchLimits;

/// The settings of one Route 53 provider (an entry of `providers:` with `type: route53`).
///
/// Credentials come from the standard AWS chain (environment, shared profile,
/// web identity / IRSA, container and instance metadata) unless
/// [`Route53Config::credentials`] is set; secrets are never inline in the
/// controller's YAML (ARCHITECTURE.md §6), so `credentials` is not deserialised: the
/// controller fills it from a file or environment variable name when it must.
///
/// Deserialising uses the YAML key names (`zones`, `hostedZoneIds`, `endpointUrl`,
/// `region`, `profile`, `healthChecks`) and rejects unknown fields; the
/// controller removes its own keys (`type`, `budget`) first.
#[derive(Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Route53Config {
    /// Hosted zones found by name with `ListHostedZonesByName`. A name that
    /// matches several hosted zones (a public and a private one) is refused:
    /// give its id in `hosted_zone_ids` instead.
    pub zones: Vec<RecordName>,
    /// Hosted zones given by id (`Z…` or `/hostedzone/Z…`); their names are
    /// read with `GetHostedZone`, which also proves the credentials at start.
    pub hosted_zone_ids: Vec<String>,
    /// Endpoint override (moto, a fake, a VPC endpoint). Without it the SDK
    /// honours `AWS_ENDPOINT_URL_ROUTE_53` / `AWS_ENDPOINT_URL`, else the public endpoint.
    pub endpoint_url: Option<String>,
    /// Signing region; Route 53 is global and signs in `us-east-1` (the default).
    pub region: Option<String>,
    /// Shared-config profile for the standard chain (else `AWS_PROFILE` or `default`).
    pub profile: Option<String>,
    /// Route 53 health check id per endpoint id (`SetIdentifier`), attached to
    /// that endpoint's weighted record set so Route 53 itself also withholds an
    /// endpoint its own checkers see down. Passed through, never created by veer.
    pub health_checks: BTreeMap<String, String>,
    /// Explicit credentials instead of the standard chain (tests, or a
    /// controller that read them from a secret file). Never printed.
    #[serde(skip)]
    pub credentials: Option<StaticCredentials>,
    /// SDK timeouts; the SDK's own retries are always off (one retry layer: ARCHITECTURE.md §6).
    #[serde(skip)]
    pub timeouts: Timeouts,
    /// How `apply` waits for a change to reach INSYNC.
    #[serde(skip)]
    pub insync: InsyncWait,
    /// Per-call limits of `ChangeResourceRecordSets`.
    #[serde(skip)]
    pub batch_limits: BatchLimits,
    /// `MaxItems` of each `ListResourceRecordSets` page (Route 53 allows 1–300).
    #[serde(skip)]
    pub list_page_size: u32,
}

impl Default for Route53Config {
    fn default() -> Self {
        Self {
            zones: Vec::new(),
            hosted_zone_ids: Vec::new(),
            endpoint_url: None,
            region: None,
            profile: None,
            health_checks: BTreeMap::new(),
            credentials: None,
            timeouts: Timeouts::default(),
            insync: InsyncWait::default(),
            batch_limits: BatchLimits::default(),
            list_page_size: 300,
        }
    }
}

impl fmt::Debug for Route53Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route53Config")
            .field("zones", &self.zones)
            .field("hosted_zone_ids", &self.hosted_zone_ids)
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("profile", &self.profile)
            .field("health_checks", &self.health_checks)
            .field("credentials", &self.credentials)
            .field("timeouts", &self.timeouts)
            .field("insync", &self.insync)
            .field("batch_limits", &self.batch_limits)
            .field("list_page_size", &self.list_page_size)
            .finish()
    }
}

/// A secret string: usable, never printed (its `Debug` is `<redacted>`, it has no `Display`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for handing to the SDK only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An access key pair (and optional session token) used instead of the standard chain.
#[derive(Clone, Debug)]
pub struct StaticCredentials {
    /// The access key id; an identifier, not a secret, so it is shown in `Debug`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// A session token for temporary credentials.
    pub session_token: Option<Secret>,
}

/// SDK timeouts. A write that times out after it was sent is reported as
/// `Ambiguous` (it may have landed); the caller re-reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connection establishment.
    pub connect: Duration,
    /// One whole call, including reading the response.
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: Duration::from_millis(3100), operation: Duration::from_secs(20) }
    }
}

/// The bounded, jittered poll of `GetChange` after a write. Reaching the bound
/// is not an error: the write was accepted (PENDING) and Route 53 propagates it
/// on its own; the apply report then has no INSYNC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InsyncWait {
    /// Whether `apply` waits at all.
    pub enabled: bool,
    /// Mean time between polls; each sleep is drawn from `[interval/2, 3·interval/2)`
    /// so that several controllers never poll in step. Doubled after a throttled poll.
    pub interval: Duration,
    /// The longest `apply` waits for INSYNC after its last write.
    pub timeout: Duration,
}

impl Default for InsyncWait {
    fn default() -> Self {
        // Route 53 usually propagates within 60 s; polls every ~5 s keep the
        // GetChange calls (outside the shared budget) near 0.2/s.
        Self { enabled: true, interval: Duration::from_secs(5), timeout: Duration::from_secs(120) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserialises_the_yaml_keys_and_rejects_unknown_ones() {
        let config: Route53Config = serde_json::from_str(
            r#"{"zones": ["example.com."], "hostedZoneIds": ["Z123"], "endpointUrl": "http://127.0.0.1:5000",
                "region": "us-east-1", "profile": "ops", "healthChecks": {"use1-a": "hc-1"}}"#,
        )
        .unwrap();
        assert_eq!(config.zones, vec![RecordName::parse("example.com.").unwrap()]);
        assert_eq!(config.hosted_zone_ids, vec!["Z123".to_string()]);
        assert_eq!(config.health_checks.get("use1-a").map(String::as_str), Some("hc-1"));
        assert_eq!(config.list_page_size, 300, "defaults fill what YAML does not set");
        let err = serde_json::from_str::<Route53Config>(r#"{"zones": [], "secretAccessKey": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `secretAccessKey`"), "{err}");
        assert!(
            serde_json::from_str::<Route53Config>(r#"{"zones": ["example.com"]}"#).is_err(),
            "zone names are FQDNs"
        );
    }

    #[test]
    fn debug_output_redacts_the_secret_key_and_session_token() {
        let config = Route53Config {
            credentials: Some(StaticCredentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: Secret::new("wJalrXUtnFEMI-very-secret"),
                session_token: Some(Secret::new("session-very-secret")),
            }),
            ..Route53Config::default()
        };
        let text = format!("{config:?}");
        assert!(text.contains("AKIDEXAMPLE") && text.contains("<redacted>"), "{text}");
        assert!(!text.contains("very-secret"), "{text}");
    }
}
