//! veer's Azure DNS provider (ARCHITECTURE.md §6): set-only record sets through the Azure
//! Resource Manager REST API (`Microsoft.Network/dnsZones`, api-version
//! `2018-05-01`), every write conditional on an entity tag.
//!
//! # Model
//! A managed name is two record sets: the answers (`A`, `AAAA` or `CNAME` at
//! the name; Azure DNS record sets carry no per-value weights, so membership
//! only) and the ownership record (`TXT` at `_veer.<name>`). Each is read with
//! its `etag`, and each write is a `PUT` with `If-Match: <etag>` (or
//! `If-None-Match: *` when the set did not exist); a `412` is a
//! [`ProviderError::Conflict`]. Record sets are never deleted: a change with no
//! answers is refused ([`ProviderError::WouldEmpty`]).
//!
//! # Ordering and atomicity
//! Azure has no multi-record-set transaction, so one change is two conditional
//! writes, in this order:
//! 1. the **ownership TXT**, conditional on the etag read with it. It works as
//!    the claim on the name: a stale writer, or one whose name was handed to
//!    another owner meanwhile, fails here *before touching any answer* (I2, I11);
//! 2. the **answers**, conditional on their own etag.
//!
//! A failure between the two (a crash, a `412` because someone edited the
//! answers, a lost response) leaves the new ownership record with the *old*
//! answers: never empty (the old set is untouched, I1), and visible to the next
//! read as a generation whose answers are not the planned ones, which the
//! enactor re-plans and writes again. The reverse order would be worse: written
//! answers with a failed TXT step means answers changed on a name whose
//! ownership moved to someone else. So a change is *not* atomic here
//! ([`Capabilities::atomic_batches`] is false): each step is, and the order keeps
//! the name safe. A batch is applied change by change; the first failure stops it.
//!
//! # Authentication
//! An [`AzureCredential`]: a client secret, or workload identity (a federated
//! token file, re-read at every refresh because the platform rotates it),
//! exchanged at an overridable Microsoft Entra ID token endpoint. Tokens are
//! cached and refreshed before they expire. Credentials never appear in `Debug`
//! output, errors or logs.
//!
//! # Reads
//! A name is read with two `GET`s of single record sets, so no listing and no
//! pagination is involved. The etags of the last read are kept so that an
//! `apply` built on that read needs no further request before writing.

pub use veer_provider::http::Secret;
pub use veer_provider::http::token::{Clock, system_clock};

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use veer_provider::http::token::{Fetched, TokenCache, lifetime};
use veer_provider::http::{Effect, scrub, status_error, transport_error};
use veer_provider::{
    Answer, Capabilities, CasPrimitive, Change, ChangeBatch, Observed, OwnershipRecord, Provider, ProviderError,
    ProviderFuture, RecordName, RecordSet, RecordType, Weighting,
};

/// The ARM API version whose record set shapes this crate follows.
pub const API_VERSION: &str = "2018-05-01";
/// Azure Resource Manager in the public cloud.
pub const DEFAULT_MANAGEMENT_ENDPOINT: &str = "https://management.azure.com";
/// Microsoft Entra ID in the public cloud.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The token scope for Azure Resource Manager.
pub const DEFAULT_SCOPE: &str = "https://management.azure.com/.default";

/// How veer authenticates to Azure.
#[derive(Debug, Clone)]
pub enum AzureCredential {
    /// An app registration's client secret (OAuth 2.0 client credentials grant).
    ClientSecret {
        /// Directory (tenant) id.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// The client secret; never printed.
        client_secret: Secret,
    },
    /// Workload identity: a federated token in a file (Kubernetes projects it and
    /// rotates it), exchanged as a client assertion.
    WorkloadIdentity {
        /// Directory (tenant) id.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// The projected token file (`AZURE_FEDERATED_TOKEN_FILE` in the pod).
        token_file: PathBuf,
    },
}

impl AzureCredential {
    fn tenant_id(&self) -> &str {
        match self {
            Self::ClientSecret { tenant_id, .. } | Self::WorkloadIdentity { tenant_id, .. } => tenant_id,
        }
    }
}

/// Settings of one Azure DNS account as the controller passes them in.
#[derive(Debug, Clone)]
pub struct AzureConfig {
    /// The provider's name in the controller config.
    pub name: String,
    /// DNS zones (by name) in `resource_group`.
    pub zones: Vec<RecordName>,
    /// Subscription id holding the zones.
    pub subscription_id: String,
    /// Resource group holding the zones.
    pub resource_group: String,
    /// How to get tokens.
    pub credential: AzureCredential,
    /// ARM base URL; tests point it at a fake.
    pub management_endpoint: String,
    /// Token authority base URL (`{authority}/{tenant}/oauth2/v2.0/token`).
    pub authority: String,
    /// Token scope.
    pub scope: String,
    /// Timeout of one HTTP request, connection included.
    pub request_timeout: Duration,
    /// Refresh a token this long before it expires (at most half its lifetime).
    pub token_refresh_before: Duration,
    /// TTL of the ownership TXT record set, in seconds.
    pub ownership_ttl: u32,
}

impl AzureConfig {
    /// A configuration for the public cloud with conservative defaults.
    pub fn new(
        name: impl Into<String>,
        zones: Vec<RecordName>,
        subscription_id: impl Into<String>,
        resource_group: impl Into<String>,
        credential: AzureCredential,
    ) -> Self {
        Self {
            name: name.into(),
            zones,
            subscription_id: subscription_id.into(),
            resource_group: resource_group.into(),
            credential,
            management_endpoint: DEFAULT_MANAGEMENT_ENDPOINT.into(),
            authority: DEFAULT_AUTHORITY.into(),
            scope: DEFAULT_SCOPE.into(),
            request_timeout: Duration::from_secs(10),
            token_refresh_before: Duration::from_secs(300),
            ownership_ttl: 300,
        }
    }
}

/// One record set as read: what veer sees, and the etag that makes a write conditional.
#[derive(Debug, Clone, Default)]
struct Versioned {
    values: Vec<String>,
    ttl: u32,
    etag: Option<String>,
}

/// The two record sets of a name, with their etags.
#[derive(Debug, Clone)]
struct Raw {
    answers: Versioned,
    ownership: Versioned,
}

/// The Azure DNS provider. Cheap to share behind an `Arc<dyn Provider>`.
pub struct AzureProvider {
    config: AzureConfig,
    client: reqwest::Client,
    tokens: TokenCache,
    /// The last read of each name: the observation and the etags it came with.
    last_read: Mutex<HashMap<(RecordName, RecordType), (Observed, Raw)>>,
}

impl std::fmt::Debug for AzureProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureProvider").field("config", &self.config).finish_non_exhaustive()
    }
}

impl AzureProvider {
    /// Builds the provider on the system clock; makes no request.
    pub fn new(config: AzureConfig) -> Result<Self, ProviderError> {
        Self::with_clock(config, system_clock())
    }

    /// As [`AzureProvider::new`], with the clock that times token refreshes.
    pub fn with_clock(config: AzureConfig, clock: Clock) -> Result<Self, ProviderError> {
        if config.zones.is_empty() {
            return Err(ProviderError::Rejected(format!("provider `{}` has no zones", config.name)));
        }
        let client = veer_provider::http::client(config.request_timeout)?;
        let tokens = TokenCache::new(clock, config.token_refresh_before);
        Ok(Self { config, client, tokens, last_read: Mutex::default() })
    }

    async fn token(&self) -> Result<Secret, ProviderError> {
        self.tokens.get(|| self.fetch_token()).await
    }

    /// One token request to Entra ID (client credentials, with a secret or a federated assertion).
    async fn fetch_token(&self) -> Result<Fetched, ProviderError> {
        let url = format!("{}/{}/oauth2/v2.0/token", self.config.authority, self.config.credential.tenant_id());
        let mut form: Vec<(&str, String)> =
            vec![("grant_type", "client_credentials".into()), ("scope", self.config.scope.clone())];
        let secret = match &self.config.credential {
            AzureCredential::ClientSecret { client_id, client_secret, .. } => {
                form.push(("client_id", client_id.clone()));
                form.push(("client_secret", client_secret.expose().into()));
                client_secret.clone()
            }
            AzureCredential::WorkloadIdentity { client_id, token_file, .. } => {
                let assertion = tokio::fs::read_to_string(token_file).await.map_err(|e| {
                    ProviderError::Rejected(format!(
                        "cannot read the federated token file {}: {e}",
                        token_file.display()
                    ))
                })?;
                let assertion = Secret::new(assertion);
                form.push(("client_id", client_id.clone()));
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
                form.push(("client_assertion", assertion.expose().into()));
                assertion
            }
        };
        let what = "Entra ID token request";
        let response =
            self.client.post(url).form(&form).send().await.map_err(|e| transport_error(e, Effect::Read, what))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(|e| transport_error(e, Effect::Read, what))?;
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = match (json["error"].as_str(), json["error_description"].as_str()) {
                (Some(code), Some(text)) => format!("{code}: {text}"),
                _ => body.clone(),
            };
            return Err(status_error(status, &headers, &scrub(&message, &secret), Effect::Read, what));
        }
        let token = json["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ProviderError::Unavailable(format!("{what}: the answer has no access_token")))?;
        Ok(Fetched { token: Secret::new(token), lifetime: lifetime(json.get("expires_in")) })
    }

    /// The configured zone that holds `name` (the longest match).
    fn zone_of(&self, name: &RecordName) -> Result<&RecordName, ProviderError> {
        self.config
            .zones
            .iter()
            .filter(|z| name.is_within(z))
            .max_by_key(|z| z.as_str().len())
            .ok_or_else(|| ProviderError::Rejected(format!("{name} is outside every zone of `{}`", self.config.name)))
    }

    /// The ARM URL of one record set.
    fn url(&self, zone: &RecordName, name: &RecordName, rtype: RecordType) -> String {
        format!(
            "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/dnsZones/{}/{}/{}?api-version={API_VERSION}",
            self.config.management_endpoint,
            self.config.subscription_id,
            self.config.resource_group,
            zone.as_str().trim_end_matches('.'),
            rtype,
            relative(name, zone),
        )
    }

    /// Sends one ARM request and returns the JSON body; `Ok(None)` for a 404 read.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        effect: Effect,
        what: &str,
    ) -> Result<Option<Value>, ProviderError> {
        let token = self.token().await?;
        let response =
            request.bearer_auth(token.expose()).send().await.map_err(|e| transport_error(e, effect, what))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(|e| transport_error(e, effect, what))?;
        let json = serde_json::from_str::<Value>(&body);
        // A missing record set is `NotFound`; a missing zone, group or
        // subscription (`ParentResourceNotFound`, …) is a configuration error.
        let missing_set = json.as_ref().map_or(true, |j| j["error"]["code"].as_str().is_none_or(|c| c == "NotFound"));
        if status == StatusCode::NOT_FOUND && effect == Effect::Read && missing_set {
            return Ok(None);
        }
        if status.is_success() {
            return match json {
                Ok(json) => Ok(Some(json)),
                Err(e) if effect == Effect::Write => Err(ProviderError::Ambiguous(format!(
                    "{what}: HTTP {status} with a body veer cannot read ({e}); it may have been applied"
                ))),
                Err(e) => Err(ProviderError::Unavailable(format!("{what}: unexpected response body: {e}"))),
            };
        }
        let message = match json.as_ref().ok().map(|j| (j["error"]["code"].as_str(), j["error"]["message"].as_str())) {
            Some((Some(code), Some(text))) => format!("{code}: {text}"),
            _ => body,
        };
        Err(status_error(status, &headers, &scrub(&message, &token), effect, what))
    }

    async fn get_set(
        &self,
        zone: &RecordName,
        name: &RecordName,
        rtype: RecordType,
    ) -> Result<Versioned, ProviderError> {
        let what = format!("read {rtype} record set {name}");
        let Some(json) = self.send(self.client.get(self.url(zone, name, rtype)), Effect::Read, &what).await? else {
            return Ok(Versioned::default());
        };
        let values = values_of(rtype, &json["properties"]);
        Ok(Versioned {
            etag: json["etag"].as_str().map(str::to_string),
            ttl: json["properties"]["TTL"].as_u64().unwrap_or_default() as u32,
            values,
        })
    }

    async fn read_raw(&self, name: &RecordName, rtype: RecordType) -> Result<Raw, ProviderError> {
        let zone = self.zone_of(name)?;
        let answers = self.get_set(zone, name, rtype).await?;
        let ownership = self.get_set(zone, &name.ownership_name(), RecordType::TXT).await?;
        Ok(Raw { answers, ownership })
    }

    async fn read_name(&self, name: &RecordName, rtype: RecordType) -> Result<Observed, ProviderError> {
        let raw = self.read_raw(name, rtype).await?;
        let observed = observe(name, rtype, &raw);
        self.last_read.lock().expect("read cache").insert((name.clone(), rtype), (observed.clone(), raw));
        Ok(observed)
    }

    /// The etags that belong to `expected`: from the read it came from, else from a fresh read.
    async fn versions_of(&self, expected: &Observed) -> Result<Raw, ProviderError> {
        let key = (expected.name.clone(), expected.rtype);
        let cached = self.last_read.lock().expect("read cache").get(&key).cloned();
        if let Some((observed, raw)) = cached
            && observed == *expected
        {
            return Ok(raw);
        }
        let raw = self.read_raw(&expected.name, expected.rtype).await?;
        if observe(&expected.name, expected.rtype, &raw) != *expected {
            return Err(ProviderError::Conflict(format!(
                "{} changed since it was read: re-read and re-plan",
                expected.name
            )));
        }
        Ok(raw)
    }

    async fn put(
        &self,
        zone: &RecordName,
        name: &RecordName,
        rtype: RecordType,
        etag: Option<&str>,
        properties: Value,
    ) -> Result<(), ProviderError> {
        let mut headers = HeaderMap::new();
        match etag {
            Some(etag) => headers.insert(
                "if-match",
                HeaderValue::from_str(etag).map_err(|_| ProviderError::Rejected(format!("{name}: unusable etag")))?,
            ),
            None => headers.insert("if-none-match", HeaderValue::from_static("*")),
        };
        let request =
            self.client.put(self.url(zone, name, rtype)).headers(headers).json(&json!({ "properties": properties }));
        self.send(request, Effect::Write, &format!("write {rtype} record set {name}")).await.map(drop)
    }

    async fn apply_change(&self, zone: &RecordName, change: &Change) -> Result<(), ProviderError> {
        let name = &change.expected.name;
        let rtype = change.expected.rtype;
        let raw = self.versions_of(&change.expected).await?;
        self.last_read.lock().expect("read cache").remove(&(name.clone(), rtype));
        let txt = json!({
            "TTL": self.config.ownership_ttl,
            "TXTRecords": [{ "value": [change.ownership.encode()] }],
        });
        tracing::debug!(%name, %rtype, generation = change.ownership.generation, "writing ownership record, then answers");
        // Step 1: the claim. A 412 here means nothing was written.
        self.put(zone, &name.ownership_name(), RecordType::TXT, raw.ownership.etag.as_deref(), txt).await?;
        // Step 2: the answers. The ownership record already names the new generation.
        let values: Vec<String> = published(&change.desired).answers.into_iter().map(|a| a.value).collect();
        let answers = properties(rtype, change.desired.ttl, &values);
        match self.put(zone, name, rtype, raw.answers.etag.as_deref(), answers).await {
            Ok(()) => Ok(()),
            Err(ProviderError::Conflict(why)) => Err(ProviderError::Conflict(format!(
                "{name}: ownership record written, but the answers changed concurrently and were left as they are: {why}"
            ))),
            Err(ProviderError::Rejected(why)) => {
                Err(ProviderError::Rejected(format!("{name}: ownership record written, answers refused: {why}")))
            }
            Err(other) => Err(ProviderError::Ambiguous(format!(
                "{name}: ownership record written, the answers' write did not complete: {other}"
            ))),
        }
    }

    async fn apply_batch(&self, batch: &ChangeBatch) -> Result<(), ProviderError> {
        // The shared checks first (never empty, owned, well-formed): nothing is written otherwise.
        batch.check(&self.capabilities())?;
        check_batch(batch, &self.config.zones)?;
        for change in &batch.changes {
            self.apply_change(&batch.zone, change).await?;
        }
        Ok(())
    }
}

impl Provider for AzureProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            weighting: Weighting::SetOnly,
            // Two record sets per change; many changes per batch, applied in order.
            batch_records_max: 200,
            atomic_batches: false,
            cas: CasPrimitive::IfMatch,
            answer_ids: false,
        }
    }

    fn zones(&self) -> &[RecordName] {
        &self.config.zones
    }

    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        Box::pin(self.read_name(name, rtype))
    }

    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        Box::pin(self.apply_batch(batch))
    }
}

/// The record set name relative to its zone; `@` for the apex.
fn relative(name: &RecordName, zone: &RecordName) -> String {
    if name == zone {
        return "@".into();
    }
    let full = name.as_str();
    full[..full.len() - zone.as_str().len() - 1].to_string()
}

/// The values of a record set's `properties` for `rtype`.
fn values_of(rtype: RecordType, properties: &Value) -> Vec<String> {
    let list = |key: &str, field: &str| -> Vec<String> {
        properties[key]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r[field].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    match rtype {
        RecordType::A => list("ARecords", "ipv4Address"),
        RecordType::AAAA => list("AAAARecords", "ipv6Address"),
        RecordType::CNAME => {
            properties["CNAMERecord"]["cname"].as_str().map(|c| vec![c.to_string()]).unwrap_or_default()
        }
        RecordType::TXT => properties["TXTRecords"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        let parts = r["value"].as_array().cloned().unwrap_or_default();
                        parts.iter().filter_map(Value::as_str).collect::<String>()
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The `properties` of a record set holding `values`.
fn properties(rtype: RecordType, ttl: u32, values: &[String]) -> Value {
    match rtype {
        RecordType::A => {
            json!({ "TTL": ttl, "ARecords": values.iter().map(|v| json!({ "ipv4Address": v })).collect::<Vec<_>>() })
        }
        RecordType::AAAA => {
            json!({ "TTL": ttl, "AAAARecords": values.iter().map(|v| json!({ "ipv6Address": v })).collect::<Vec<_>>() })
        }
        RecordType::CNAME => {
            json!({ "TTL": ttl, "CNAMERecord": { "cname": values.first().cloned().unwrap_or_default() } })
        }
        RecordType::TXT => {
            json!({ "TTL": ttl, "TXTRecords": values.iter().map(|v| json!({ "value": [v] })).collect::<Vec<_>>() })
        }
    }
}

/// The value as veer compares it: CNAME targets fully qualified and lowercase.
fn canonical(rtype: RecordType, value: &str) -> String {
    match rtype {
        RecordType::CNAME => {
            let lower = value.trim().to_ascii_lowercase();
            if lower.ends_with('.') { lower } else { format!("{lower}.") }
        }
        _ => value.trim().to_string(),
    }
}

/// What veer sees at a name. Anything but exactly one decodable TXT value is kept
/// as foreign, so that the name is never taken for unowned.
fn observe(name: &RecordName, rtype: RecordType, raw: &Raw) -> Observed {
    let records = (!raw.answers.values.is_empty()).then(|| {
        let mut values: Vec<String> = raw.answers.values.iter().map(|v| canonical(rtype, v)).collect();
        values.sort();
        values.dedup();
        let answers = values.into_iter().map(|value| Answer { set_id: None, value, weight: None }).collect();
        RecordSet::new(name.clone(), rtype, raw.answers.ttl, answers)
    });
    let (ownership, foreign_ownership) = match raw.ownership.values.as_slice() {
        [] => (None, None),
        [one] => match OwnershipRecord::decode(one) {
            Ok(record) => (Some(record), None),
            Err(_) => (None, Some(one.clone())),
        },
        many => (None, Some(many.join(" | "))),
    };
    Observed { name: name.clone(), rtype, records, ownership, foreign_ownership }
}

/// How `desired` reads back from a set-only provider.
fn published(desired: &RecordSet) -> RecordSet {
    let mut values: Vec<String> = desired.live_answers().map(|a| canonical(desired.rtype, &a.value)).collect();
    values.sort();
    values.dedup();
    let answers = values.into_iter().map(|value| Answer { set_id: None, value, weight: None }).collect();
    RecordSet::new(desired.name.clone(), desired.rtype, desired.ttl, answers)
}

/// Checks made before any request, so that a bad batch is refused whole:
/// never empty (I1, defence in depth: the enactor refuses first), names in the
/// zone, no TXT changes, no name veer does not own (I11), each name once, and
/// at most one CNAME target.
fn check_batch(batch: &ChangeBatch, zones: &[RecordName]) -> Result<(), ProviderError> {
    if !zones.contains(&batch.zone) {
        return Err(ProviderError::Rejected(format!("zone {} is not configured for this provider", batch.zone)));
    }
    let mut seen = BTreeSet::new();
    for change in &batch.changes {
        let name = &change.expected.name;
        if change.desired.live_answers().next().is_none() {
            return Err(ProviderError::WouldEmpty(name.to_string()));
        }
        if change.desired.name != *name || change.desired.rtype != change.expected.rtype {
            return Err(ProviderError::Rejected(format!("{name}: desired answers are for another name or type")));
        }
        if change.expected.rtype == RecordType::TXT {
            return Err(ProviderError::Rejected(format!("{name}: TXT is reserved for ownership records")));
        }
        if change.expected.rtype == RecordType::CNAME && change.desired.live_answers().count() > 1 {
            return Err(ProviderError::Rejected(format!("{name}: a CNAME has exactly one target")));
        }
        if !name.is_within(&batch.zone) {
            return Err(ProviderError::Rejected(format!("{name} is not in zone {}", batch.zone)));
        }
        if !seen.insert((name.clone(), change.expected.rtype)) {
            return Err(ProviderError::Rejected(format!("{name} appears twice in one batch")));
        }
        if let Some(raw) = &change.expected.foreign_ownership {
            return Err(ProviderError::NotOwned(format!("{name}: unreadable ownership record {raw:?}")));
        }
        if let Some(o) = change.expected.ownership.as_ref().filter(|o| o.owner != change.ownership.owner) {
            return Err(ProviderError::NotOwned(format!("{name}: owned by {:?}", o.owner)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_relative_to_their_zone() {
        let zone = RecordName::parse("example.com.").unwrap();
        assert_eq!(relative(&RecordName::parse("api.example.com.").unwrap(), &zone), "api");
        assert_eq!(relative(&RecordName::parse("_veer.api.example.com.").unwrap(), &zone), "_veer.api");
        assert_eq!(relative(&zone, &zone), "@");
    }

    #[test]
    fn record_set_properties_round_trip_for_every_type() {
        for (rtype, values) in [
            (RecordType::A, vec!["192.0.2.1".to_string(), "192.0.2.2".into()]),
            (RecordType::AAAA, vec!["2001:db8::1".into()]),
            (RecordType::CNAME, vec!["target.example.net.".into()]),
            (RecordType::TXT, vec!["owner=a;gen=1;epoch=1;policy=x".into()]),
        ] {
            assert_eq!(values_of(rtype, &properties(rtype, 60, &values)), values);
        }
    }

    #[test]
    fn a_credential_never_shows_in_debug_output() {
        let credential = AzureCredential::ClientSecret {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: Secret::new("az-SECRET-0451"),
        };
        let config = AzureConfig::new("azure", vec![RecordName::parse("example.com.").unwrap()], "s", "rg", credential);
        let provider = AzureProvider::new(config.clone()).unwrap();
        assert!(!format!("{config:?}").contains("az-SECRET-0451"));
        assert!(!format!("{provider:?}").contains("az-SECRET-0451"));
    }
}
