//! veer's Google Cloud DNS provider (ARCHITECTURE.md §6): weighted record sets through the
//! Cloud DNS v1 REST API, every apply one atomic compare-and-swap.
//!
//! # Model
//! A managed name is two resource record sets: the answers (`A`, `AAAA` or
//! `CNAME`) and the ownership record (`TXT` at `_veer.<name>`).
//!
//! **Weights.** Answers are published with the weighted round robin routing
//! policy, **one WRR item per answer**: `routingPolicy.wrr.items[i]` holds one
//! value in `rrdatas` and veer's weight for it in `weight`, unchanged (an
//! integer 0–[`WEIGHT_MAX`]). Cloud DNS picks an item with probability
//! weight / sum of weights, so an endpoint's share is exactly its weight's share,
//! as with Route 53. Items are written sorted by value, and items of weight 0 are
//! kept (the answer stays visible to veer, served with probability 0), so what
//! is read back equals what was written. Reading tolerates hand-made sets: an
//! item with several values gives each value the item's weight, a fractional
//! weight is rounded (a positive one to at least 1), and a set without a routing
//! policy reads as unweighted answers (`weight: None`). WRR items carry no
//! identifier, so answers read back have `set_id: None`.
//!
//! # Compare-and-swap
//! One `changes.create` per batch: `deletions` hold the record sets *exactly as
//! read* (Cloud DNS refuses the whole change with `412 conditionNotMet` unless a
//! deletion matches the current set exactly, and with `409 alreadyExists` when an
//! addition finds a set that was not read), `additions` hold the new ones. Both
//! are [`ProviderError::Conflict`]; nothing is half-applied. The change is then
//! polled with `changes.get` until `done`, a bounded number of times with
//! jittered intervals; if it is still pending after that, the result is
//! `Ambiguous` (it was accepted, and the caller's re-read settles it). This poll
//! is the only loop here: retries belong to the one layer outside the provider.
//!
//! The raw record sets of the last read are kept so that the deletions of an
//! `apply` built on that read are byte-for-byte what the server returned.
//!
//! # Reads
//! `rrsets.list` filtered by name, following `nextPageToken`.
//!
//! # Authentication
//! [`GcloudCredential`]: a service-account key or the metadata server; tokens
//! are cached and refreshed before they expire. Credentials never appear in
//! `Debug` output, errors or logs.

mod auth;

pub use auth::{DEFAULT_METADATA_ENDPOINT, DNS_SCOPE, GcloudCredential, ServiceAccountKey};
pub use veer_provider::http::Secret;
pub use veer_provider::http::token::{Clock, system_clock};

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use veer_provider::http::token::TokenCache;
use veer_provider::http::{Effect, scrub, status_error, transport_error};
use veer_provider::{
    Answer, Capabilities, CasPrimitive, ChangeBatch, Observed, OwnershipRecord, Provider, ProviderError,
    ProviderFuture, RecordName, RecordSet, RecordType, Weighting,
};

/// The Cloud DNS v1 API base.
pub const DEFAULT_ENDPOINT: &str = "https://dns.googleapis.com/dns/v1";
/// The largest weight veer writes into a WRR item.
pub const WEIGHT_MAX: u32 = 1000;

/// Settings of one Google Cloud project as the controller passes them in.
#[derive(Debug, Clone)]
pub struct GcloudConfig {
    /// The provider's name in the controller config.
    pub name: String,
    /// The project holding the managed zones.
    pub project: String,
    /// DNS zones (by DNS name) veer manages.
    pub zones: Vec<RecordName>,
    /// Managed zone names by DNS name; zones missing here are looked up by `dnsName`.
    pub managed_zones: HashMap<RecordName, String>,
    /// How to get tokens.
    pub credential: GcloudCredential,
    /// API base URL; tests point it at a fake.
    pub endpoint: String,
    /// `maxResults` when listing.
    pub page_size: u32,
    /// Timeout of one HTTP request, connection included.
    pub request_timeout: Duration,
    /// Refresh a token this long before it expires (at most half its lifetime).
    pub token_refresh_before: Duration,
    /// Mean interval between two `changes.get` polls (jittered ±50 %).
    pub poll_interval: Duration,
    /// Most `changes.get` polls before the outcome is reported as ambiguous.
    pub poll_attempts_max: u32,
    /// TTL of the ownership TXT record set, in seconds.
    pub ownership_ttl: u32,
    /// Record sets veer may add in one change (two per name). Bounded by the
    /// project quotas `rrsetAdditionsPerChange` / `rrsetDeletionsPerChange`;
    /// 100 stays within them unless they were lowered.
    pub batch_records_max: usize,
}

impl GcloudConfig {
    /// A configuration for the public API with conservative defaults.
    pub fn new(
        name: impl Into<String>,
        project: impl Into<String>,
        zones: Vec<RecordName>,
        credential: GcloudCredential,
    ) -> Self {
        Self {
            name: name.into(),
            project: project.into(),
            zones,
            managed_zones: HashMap::new(),
            credential,
            endpoint: DEFAULT_ENDPOINT.into(),
            page_size: 100,
            request_timeout: Duration::from_secs(10),
            token_refresh_before: Duration::from_secs(300),
            poll_interval: Duration::from_millis(500),
            poll_attempts_max: 20,
            ownership_ttl: 300,
            batch_records_max: 100,
        }
    }
}

/// The raw record sets of a name as the server returned them.
#[derive(Debug, Clone, Default)]
struct Raw {
    answers: Option<Value>,
    ownership: Option<Value>,
}

/// The Cloud DNS provider. Cheap to share behind an `Arc<dyn Provider>`.
pub struct GcloudProvider {
    config: GcloudConfig,
    client: reqwest::Client,
    tokens: TokenCache,
    managed_zones: Mutex<HashMap<RecordName, String>>,
    last_read: Mutex<HashMap<(RecordName, RecordType), (Observed, Raw)>>,
}

impl std::fmt::Debug for GcloudProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcloudProvider").field("config", &self.config).finish_non_exhaustive()
    }
}

impl GcloudProvider {
    /// Builds the provider on the system clock; makes no request.
    pub fn new(config: GcloudConfig) -> Result<Self, ProviderError> {
        Self::with_clock(config, system_clock())
    }

    /// As [`GcloudProvider::new`], with the clock that times token refreshes.
    pub fn with_clock(config: GcloudConfig, clock: Clock) -> Result<Self, ProviderError> {
        if config.zones.is_empty() {
            return Err(ProviderError::Rejected(format!("provider `{}` has no zones", config.name)));
        }
        let client = veer_provider::http::client(config.request_timeout)?;
        let tokens = TokenCache::new(clock, config.token_refresh_before);
        let managed_zones = Mutex::new(config.managed_zones.clone());
        Ok(Self { config, client, tokens, managed_zones, last_read: Mutex::default() })
    }

    async fn token(&self) -> Result<Secret, ProviderError> {
        self.tokens.get(|| auth::fetch(&self.client, &self.config.credential)).await
    }

    /// Sends one API request and returns its JSON body.
    async fn send(&self, request: reqwest::RequestBuilder, effect: Effect, what: &str) -> Result<Value, ProviderError> {
        let token = self.token().await?;
        let response =
            request.bearer_auth(token.expose()).send().await.map_err(|e| transport_error(e, effect, what))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(|e| transport_error(e, effect, what))?;
        let json = serde_json::from_str::<Value>(&body);
        if status.is_success() {
            return match json {
                Ok(json) => Ok(json),
                Err(e) if effect == Effect::Write => Err(ProviderError::Ambiguous(format!(
                    "{what}: HTTP {status} with a body veer cannot read ({e}); it may have been applied"
                ))),
                Err(e) => Err(ProviderError::Unavailable(format!("{what}: unexpected response body: {e}"))),
            };
        }
        let json = json.unwrap_or(Value::Null);
        let message = scrub(json["error"]["message"].as_str().unwrap_or(&body), &token);
        let reasons: Vec<&str> = json["error"]["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["reason"].as_str()).collect())
            .unwrap_or_default();
        // Google APIs also signal rate limits as 403 with these reasons.
        let throttled = ["rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"];
        if status.as_u16() == 403 && reasons.iter().any(|r| throttled.contains(r)) {
            return Err(ProviderError::Throttled { retry_after: veer_provider::http::retry_after(&headers) });
        }
        Err(status_error(status, &headers, &message, effect, what))
    }

    fn zone_of(&self, name: &RecordName) -> Result<&RecordName, ProviderError> {
        self.config
            .zones
            .iter()
            .filter(|z| name.is_within(z))
            .max_by_key(|z| z.as_str().len())
            .ok_or_else(|| ProviderError::Rejected(format!("{name} is outside every zone of `{}`", self.config.name)))
    }

    fn project_url(&self) -> String {
        format!("{}/projects/{}", self.config.endpoint, self.config.project)
    }

    /// The managed zone serving `zone`: from the configuration, else looked up by `dnsName` once.
    async fn managed_zone(&self, zone: &RecordName) -> Result<String, ProviderError> {
        if let Some(name) = self.managed_zones.lock().expect("zone cache").get(zone) {
            return Ok(name.clone());
        }
        let url = format!("{}/managedZones", self.project_url());
        let request = self.client.get(url).query(&[("dnsName", zone.as_str())]);
        let json = self.send(request, Effect::Read, "managed zone lookup").await?;
        let found = json["managedZones"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|z| z["dnsName"].as_str().is_some_and(|d| d.eq_ignore_ascii_case(zone.as_str())))
            .and_then(|z| z["name"].as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                ProviderError::Rejected(format!("no managed zone for {zone} in `{}`", self.config.project))
            })?;
        self.managed_zones.lock().expect("zone cache").insert(zone.clone(), found.clone());
        Ok(found)
    }

    /// Every record set at `name`, following `nextPageToken`.
    async fn list(&self, managed_zone: &str, name: &RecordName) -> Result<Vec<Value>, ProviderError> {
        let url = format!("{}/managedZones/{managed_zone}/rrsets", self.project_url());
        let mut sets = Vec::new();
        let mut page_token: Option<String> = None;
        for _ in 0..10_000 {
            let mut query = vec![("name", name.to_string()), ("maxResults", self.config.page_size.to_string())];
            if let Some(token) = &page_token {
                query.push(("pageToken", token.clone()));
            }
            let json = self.send(self.client.get(&url).query(&query), Effect::Read, "list record sets").await?;
            sets.extend(json["rrsets"].as_array().cloned().unwrap_or_default());
            page_token = json["nextPageToken"].as_str().filter(|t| !t.is_empty()).map(str::to_string);
            if page_token.is_none() {
                break;
            }
        }
        Ok(sets)
    }

    async fn read_raw(&self, name: &RecordName, rtype: RecordType) -> Result<Raw, ProviderError> {
        let managed_zone = self.managed_zone(self.zone_of(name)?).await?;
        let of_type =
            |sets: Vec<Value>, t: RecordType| sets.into_iter().find(|s| s["type"].as_str() == Some(&t.to_string()));
        let answers = of_type(self.list(&managed_zone, name).await?, rtype);
        let ownership = of_type(self.list(&managed_zone, &name.ownership_name()).await?, RecordType::TXT);
        Ok(Raw { answers, ownership })
    }

    async fn read_name(&self, name: &RecordName, rtype: RecordType) -> Result<Observed, ProviderError> {
        let raw = self.read_raw(name, rtype).await?;
        let observed = observe(name, rtype, &raw);
        self.last_read.lock().expect("read cache").insert((name.clone(), rtype), (observed.clone(), raw));
        Ok(observed)
    }

    /// The raw sets behind `expected`: from the read it came from, else a fresh read that must still match.
    async fn raw_of(&self, expected: &Observed) -> Result<Raw, ProviderError> {
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

    async fn apply_batch(&self, batch: &ChangeBatch) -> Result<(), ProviderError> {
        // The shared checks first (never empty, owned, well-formed): nothing is written otherwise.
        batch.check(&self.capabilities())?;
        check_batch(batch, &self.config.zones)?;
        if batch.changes.is_empty() {
            return Ok(());
        }
        if batch.changes.len() * 2 > self.config.batch_records_max {
            return Err(ProviderError::Rejected(format!(
                "a change of {} names adds {} record sets, more than the limit of {}",
                batch.changes.len(),
                batch.changes.len() * 2,
                self.config.batch_records_max
            )));
        }
        let managed_zone = self.managed_zone(&batch.zone).await?;
        let (mut additions, mut deletions) = (Vec::new(), Vec::new());
        for change in &batch.changes {
            let raw = self.raw_of(&change.expected).await?;
            deletions.extend(raw.answers);
            deletions.extend(raw.ownership);
            additions.push(answers_set(&change.desired));
            additions.push(json!({
                "kind": "dns#resourceRecordSet",
                "name": change.desired.name.ownership_name().as_str(),
                "type": "TXT",
                "ttl": self.config.ownership_ttl,
                "rrdatas": [format!("\"{}\"", change.ownership.encode())],
            }));
        }
        {
            let mut cache = self.last_read.lock().expect("read cache");
            for change in &batch.changes {
                cache.remove(&(change.expected.name.clone(), change.expected.rtype));
            }
        }
        tracing::debug!(
            zone = %batch.zone,
            additions = additions.len(),
            deletions = deletions.len(),
            "sending changes.create"
        );
        let url = format!("{}/managedZones/{managed_zone}/changes", self.project_url());
        let body = json!({ "kind": "dns#change", "additions": additions, "deletions": deletions });
        let created = self.send(self.client.post(&url).json(&body), Effect::Write, "changes.create").await?;
        self.wait_done(&url, &created).await
    }

    /// Polls `changes.get` until the change is `done`, a bounded number of times.
    async fn wait_done(&self, url: &str, created: &Value) -> Result<(), ProviderError> {
        let id = created["id"].as_str().unwrap_or_default().to_string();
        let mut status = created["status"].as_str().unwrap_or_default().to_string();
        let mut attempts = 0;
        while status != "done" {
            if id.is_empty() || attempts >= self.config.poll_attempts_max {
                return Err(ProviderError::Ambiguous(format!(
                    "change {id:?} was accepted but is still {status:?} after {attempts} polls; re-read to confirm"
                )));
            }
            attempts += 1;
            let jitter = 0.5 + fastrand::f64();
            tokio::time::sleep(self.config.poll_interval.mul_f64(jitter)).await;
            let polled = self.send(self.client.get(format!("{url}/{id}")), Effect::Read, "changes.get").await;
            match polled {
                Ok(json) => status = json["status"].as_str().unwrap_or_default().to_string(),
                Err(e) => {
                    return Err(ProviderError::Ambiguous(format!(
                        "change {id:?} was accepted but polling it failed ({e}); re-read to confirm"
                    )));
                }
            }
        }
        Ok(())
    }
}

impl Provider for GcloudProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            weighting: Weighting::Weighted { max_weight: WEIGHT_MAX },
            batch_records_max: self.config.batch_records_max,
            atomic_batches: true,
            cas: CasPrimitive::ExactDeleteCreate,
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

/// The WRR record set for `desired`: one item per answer, sorted by value.
fn answers_set(desired: &RecordSet) -> Value {
    let mut answers: Vec<&Answer> = desired.answers.iter().collect();
    answers.sort_by(|a, b| a.value.cmp(&b.value));
    let items: Vec<Value> = answers
        .iter()
        .map(|a| json!({ "weight": f64::from(a.weight.unwrap_or(1)), "rrdatas": [canonical(desired.rtype, &a.value)] }))
        .collect();
    json!({
        "kind": "dns#resourceRecordSet",
        "name": desired.name.as_str(),
        "type": desired.rtype.to_string(),
        "ttl": desired.ttl,
        "routingPolicy": { "wrr": { "items": items } },
    })
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

/// A TXT rrdata as text: character-strings unquoted and joined.
fn txt_text(rrdata: &str) -> String {
    let trimmed = rrdata.trim();
    if !trimmed.starts_with('"') {
        return trimmed.to_string();
    }
    let mut text = String::new();
    let mut inside = false;
    let mut escaped = false;
    for c in trimmed.chars() {
        match (inside, escaped, c) {
            (true, false, '\\') => escaped = true,
            (true, false, '"') => inside = false,
            (true, _, c) => {
                text.push(c);
                escaped = false;
            }
            (false, _, '"') => inside = true,
            _ => {}
        }
    }
    text
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default()
}

/// The answers of a record set: WRR items with their weights, or plain rrdatas unweighted.
fn answers_of(rtype: RecordType, set: &Value) -> Vec<Answer> {
    let mut answers = Vec::new();
    if let Some(items) = set["routingPolicy"]["wrr"]["items"].as_array() {
        for item in items {
            let raw = item["weight"].as_f64().unwrap_or(0.0).max(0.0);
            let weight = if raw > 0.0 { (raw.round() as u32).max(1) } else { 0 };
            for value in strings(&item["rrdatas"]) {
                answers.push(Answer { set_id: None, value: canonical(rtype, &value), weight: Some(weight) });
            }
        }
    } else if set["routingPolicy"].is_object() {
        // Geo, primary-backup and other policies veer does not write: their values
        // count as answers, so that the name is never taken for an empty one.
        let mut values = Vec::new();
        collect_rrdatas(&set["routingPolicy"], &mut values);
        for value in values {
            answers.push(Answer { set_id: None, value: canonical(rtype, &value), weight: None });
        }
    } else {
        for value in strings(&set["rrdatas"]) {
            answers.push(Answer { set_id: None, value: canonical(rtype, &value), weight: None });
        }
    }
    answers
}

/// Every `rrdatas` value anywhere below `value`.
fn collect_rrdatas(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "rrdatas" {
                    out.extend(strings(inner));
                } else {
                    collect_rrdatas(inner, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_rrdatas(item, out)),
        _ => {}
    }
}

/// What veer sees at a name. Anything but exactly one decodable TXT value is kept
/// as foreign, so that the name is never taken for unowned.
fn observe(name: &RecordName, rtype: RecordType, raw: &Raw) -> Observed {
    let records = raw.answers.as_ref().and_then(|set| {
        let answers = answers_of(rtype, set);
        let ttl = set["ttl"].as_u64().unwrap_or_default() as u32;
        (!answers.is_empty()).then(|| RecordSet::new(name.clone(), rtype, ttl, answers))
    });
    let texts: Vec<String> = raw
        .ownership
        .as_ref()
        .map(|set| strings(&set["rrdatas"]).iter().map(|r| txt_text(r)).collect())
        .unwrap_or_default();
    let (ownership, foreign_ownership) = match texts.as_slice() {
        [] => (None, None),
        [one] => match OwnershipRecord::decode(one) {
            Ok(record) => (Some(record), None),
            Err(_) => (None, Some(one.clone())),
        },
        many => (None, Some(many.join(" | "))),
    };
    Observed { name: name.clone(), rtype, records, ownership, foreign_ownership }
}

/// Checks made before any request, so that a bad batch is refused whole:
/// never empty (I1, defence in depth: the enactor refuses first), weights in
/// range, names in the zone, no TXT changes, no name veer does not own (I11),
/// each name once.
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
        if change.desired.answers.iter().any(|a| a.weight.is_some_and(|w| w > WEIGHT_MAX)) {
            return Err(ProviderError::Rejected(format!("{name}: a weight exceeds {WEIGHT_MAX}")));
        }
        let values: BTreeSet<String> =
            change.desired.answers.iter().map(|a| canonical(change.desired.rtype, &a.value)).collect();
        if values.len() != change.desired.answers.len() {
            return Err(ProviderError::Rejected(format!("{name}: the same value appears in two answers")));
        }
        if change.desired.name != *name || change.desired.rtype != change.expected.rtype {
            return Err(ProviderError::Rejected(format!("{name}: desired answers are for another name or type")));
        }
        if change.expected.rtype == RecordType::TXT {
            return Err(ProviderError::Rejected(format!("{name}: TXT is reserved for ownership records")));
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
    fn txt_rrdata_is_unquoted_and_joined() {
        assert_eq!(txt_text("\"owner=a;gen=1\""), "owner=a;gen=1");
        assert_eq!(txt_text("\"abc\" \"def\""), "abcdef");
        assert_eq!(txt_text("plain"), "plain");
        assert_eq!(txt_text(r#""a\"b""#), "a\"b");
    }

    #[test]
    fn weighted_answers_round_trip_through_wrr_items() {
        let name = RecordName::parse("api.example.com.").unwrap();
        let answers = vec![
            Answer { set_id: None, value: "192.0.2.2".into(), weight: Some(0) },
            Answer { set_id: None, value: "192.0.2.1".into(), weight: Some(70) },
        ];
        let desired = RecordSet::new(name.clone(), RecordType::A, 30, answers);
        let set = answers_set(&desired);
        assert_eq!(set["routingPolicy"]["wrr"]["items"][0]["rrdatas"][0], "192.0.2.1");
        let raw = Raw { answers: Some(set), ownership: None };
        assert_eq!(observe(&name, RecordType::A, &raw).records, Some(desired));
    }

    #[test]
    fn sets_with_other_routing_policies_still_count_as_answers() {
        let set = json!({"name": "api.example.com.", "type": "A", "ttl": 60, "routingPolicy": {"geo": {"items": [
            {"location": "us-east1", "rrdatas": ["192.0.2.1"]}, {"location": "europe-west1", "rrdatas": ["192.0.2.2"]}]}}});
        let values: Vec<String> = answers_of(RecordType::A, &set).into_iter().map(|a| a.value).collect();
        assert_eq!(values, vec!["192.0.2.1", "192.0.2.2"]);
    }

    #[test]
    fn hand_made_items_read_with_rounded_weights() {
        let set = json!({"name": "api.example.com.", "type": "A", "ttl": 60, "routingPolicy": {"wrr": {"items": [
            {"weight": 0.4, "rrdatas": ["192.0.2.1", "192.0.2.2"]}, {"weight": 2.6, "rrdatas": ["192.0.2.3"]}]}}});
        let weights: Vec<Option<u32>> = answers_of(RecordType::A, &set).iter().map(|a| a.weight).collect();
        assert_eq!(weights, vec![Some(1), Some(1), Some(3)]);
    }
}
