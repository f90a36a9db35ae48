//! veer's Cloudflare DNS provider (ARCHITECTURE.md §6): set-only records, written through
//! the DNS records batch endpoint after a pre-read check.
//!
//! # Model
//! Cloudflare stores one DNS record per value, each with its own id. A managed
//! name is the records of one type at that name (membership only: Cloudflare
//! DNS records carry no weights, so an endpoint is published iff its planned
//! weight is above zero) plus one TXT record at `_veer.<name>`, the ownership
//! record. The API token is given by the caller ([`Secret`]); this crate reads
//! no configuration file and no environment variable.
//!
//! # Why Cloudflare's compare-and-swap is weaker, and how veer compensates
//! The DNS records API has no conditional write: no entity tag, no
//! value-dependent precondition. [`Provider::apply`] therefore
//! 1. **pre-reads** every name of the batch (answers and ownership record) and
//!    refuses with [`ProviderError::Conflict`] unless it still equals the
//!    `expected` state the plan was built from;
//! 2. sends **one** `POST /zones/{zone_id}/dns_records/batch`, which Cloudflare
//!    runs as one database transaction (deletes first, then posts). The old
//!    ownership TXT is always *deleted by id* and a new one posted, never
//!    patched in place: if another veer writer replaced it after our pre-read,
//!    the id is gone and Cloudflare fails the whole batch, which is reported as
//!    a `Conflict`. Between veer writers this is a real compare-and-swap on the
//!    ownership record;
//! 3. **verifies** after the write by reading every name again: if the ownership
//!    record is not exactly the one written (another writer's record, or two
//!    TXT values), or the answers differ, the result is `Conflict`.
//!
//! What remains possible is a race in the window between the pre-read and the
//! batch with a writer that does not follow this protocol (a person editing
//! answers in the dashboard, a tool patching the TXT in place), or two writers
//! both *creating* a name that had no ownership record. Those are detected
//! afterwards by the verification read (and by the next reconcile), not
//! prevented. The enactor narrows the window further: it re-checks its
//! leadership fence immediately before calling `apply` (ARCHITECTURE.md §1), so a deposed
//! leader does not reach step 2.
//!
//! # Errors
//! `429` (with `Retry-After` or the `Ratelimit` header) is
//! [`ProviderError::Throttled`]; a batch that fails because a record it deletes
//! is gone or a record it posts already exists is `Conflict`; connection
//! failures and `5xx` on reads are `Unavailable`, on the batch `Ambiguous`;
//! `400/401/403` are `Rejected` with Cloudflare's message. Nothing here retries.

pub use veer_provider::http::Secret;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use veer_provider::http::{Effect, scrub, status_error, transport_error};
use veer_provider::{
    Answer, Capabilities, CasPrimitive, Change, ChangeBatch, Observed, OwnershipRecord, Provider, ProviderError,
    ProviderFuture, RecordName, RecordSet, RecordType, Weighting,
};

/// Cloudflare's public API base.
pub const DEFAULT_ENDPOINT: &str = "https://api.cloudflare.com/client/v4";

/// Cloudflare error codes that mean "the zone moved under the batch".
const RECORD_GONE: i64 = 81044;
const RECORD_EXISTS: [i64; 2] = [81057, 81058];

/// Settings of one Cloudflare account as the controller passes them in.
#[derive(Debug, Clone)]
pub struct CloudflareConfig {
    /// The provider's name in the controller config.
    pub name: String,
    /// Zones (by name) that veer manages through this account.
    pub zones: Vec<RecordName>,
    /// API token with `Zone:Read` and `DNS:Edit`; never printed.
    pub api_token: Secret,
    /// API base URL; tests point it at a fake.
    pub endpoint: String,
    /// Records per page when listing (Cloudflare's default is 100).
    pub per_page: u32,
    /// Timeout of one HTTP request, connection included.
    pub request_timeout: Duration,
    /// Most operations (deletes plus posts) per batch: 200 is the smallest plan's limit.
    pub batch_records_max: usize,
    /// TTL of the ownership TXT record, in seconds.
    pub ownership_ttl: u32,
}

impl CloudflareConfig {
    /// A configuration with Cloudflare's endpoint and conservative defaults.
    pub fn new(name: impl Into<String>, zones: Vec<RecordName>, api_token: Secret) -> Self {
        Self {
            name: name.into(),
            zones,
            api_token,
            endpoint: DEFAULT_ENDPOINT.into(),
            per_page: 100,
            request_timeout: Duration::from_secs(10),
            batch_records_max: 200,
            ownership_ttl: 300,
        }
    }
}

/// The Cloudflare provider. Cheap to share behind an `Arc<dyn Provider>`.
#[derive(Debug)]
pub struct CloudflareProvider {
    config: CloudflareConfig,
    client: reqwest::Client,
    /// Zone ids by zone name, looked up once (`GET /zones?name=`).
    zone_ids: Mutex<HashMap<RecordName, String>>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    result: Option<T>,
    result_info: Option<ResultInfo>,
}

#[derive(Deserialize)]
struct ApiMessage {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct ResultInfo {
    #[serde(default)]
    page: u32,
    #[serde(default)]
    total_pages: u32,
}

#[derive(Deserialize)]
struct Zone {
    id: String,
    name: String,
}

#[derive(Deserialize, Clone)]
struct DnsRecord {
    id: String,
    content: String,
    #[serde(default)]
    ttl: u32,
}

#[derive(Serialize)]
struct BatchRequest {
    deletes: Vec<RecordId>,
    posts: Vec<NewRecord>,
}

#[derive(Serialize)]
struct RecordId {
    id: String,
}

#[derive(Serialize)]
struct NewRecord {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    content: String,
    ttl: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxied: Option<bool>,
    comment: &'static str,
}

/// The raw records of one managed name.
struct Raw {
    answers: Vec<DnsRecord>,
    ownership: Vec<DnsRecord>,
}

impl CloudflareProvider {
    /// Builds the provider; makes no request (zone ids are looked up on first use).
    pub fn new(config: CloudflareConfig) -> Result<Self, ProviderError> {
        if config.zones.is_empty() {
            return Err(ProviderError::Rejected(format!("provider `{}` has no zones", config.name)));
        }
        let client = veer_provider::http::client(config.request_timeout)?;
        Ok(Self { config, client, zone_ids: Mutex::default() })
    }

    /// One API call: sends, reads the envelope, classifies failures.
    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        effect: Effect,
        what: &str,
    ) -> Result<Envelope<T>, ProviderError> {
        let response = request
            .bearer_auth(self.config.api_token.expose())
            .send()
            .await
            .map_err(|e| transport_error(e, effect, what))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(|e| transport_error(e, effect, what))?;
        let envelope = serde_json::from_str::<Envelope<T>>(&body);
        if status.is_success() {
            return match envelope {
                Ok(envelope) if envelope.success => Ok(envelope),
                Ok(envelope) => Err(self.vendor_error(status, &headers, &envelope.errors, &body, effect, what)),
                Err(e) if effect == Effect::Write => Err(ProviderError::Ambiguous(format!(
                    "{what}: HTTP {status} with a body veer cannot read ({e}); it may have been applied"
                ))),
                Err(e) => Err(ProviderError::Unavailable(format!("{what}: unexpected response body: {e}"))),
            };
        }
        let errors = envelope.map(|e| e.errors).unwrap_or_default();
        Err(self.vendor_error(status, &headers, &errors, &body, effect, what))
    }

    fn vendor_error(
        &self,
        status: reqwest::StatusCode,
        headers: &reqwest::header::HeaderMap,
        errors: &[ApiMessage],
        body: &str,
        effect: Effect,
        what: &str,
    ) -> ProviderError {
        let message = if errors.is_empty() {
            body.to_string()
        } else {
            errors.iter().map(|e| format!("{} ({})", e.message, e.code)).collect::<Vec<_>>().join("; ")
        };
        let message = scrub(&message, &self.config.api_token);
        let moved = errors.iter().any(|e| e.code == RECORD_GONE || RECORD_EXISTS.contains(&e.code));
        if moved && status.is_client_error() && status.as_u16() != 429 {
            return ProviderError::Conflict(format!("{what}: the zone changed under the batch: {message}"));
        }
        status_error(status, headers, &message, effect, what)
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

    async fn zone_id(&self, zone: &RecordName) -> Result<String, ProviderError> {
        if let Some(id) = self.zone_ids.lock().expect("zone id cache").get(zone) {
            return Ok(id.clone());
        }
        let url = format!("{}/zones", self.config.endpoint);
        let request = self.client.get(url).query(&[("name", api_name(zone))]);
        let envelope: Envelope<Vec<Zone>> = self.call(request, Effect::Read, "zone lookup").await?;
        let id = envelope
            .result
            .unwrap_or_default()
            .into_iter()
            .find(|z| z.name.eq_ignore_ascii_case(api_name(zone)))
            .map(|z| z.id)
            .ok_or_else(|| {
                ProviderError::Rejected(format!("zone {zone} not found (or the API token cannot read it)"))
            })?;
        self.zone_ids.lock().expect("zone id cache").insert(zone.clone(), id.clone());
        Ok(id)
    }

    /// Lists every record of `name`/`rtype`, following the pages.
    async fn list(&self, zone_id: &str, name: &RecordName, rtype: RecordType) -> Result<Vec<DnsRecord>, ProviderError> {
        let url = format!("{}/zones/{zone_id}/dns_records", self.config.endpoint);
        let mut records = Vec::new();
        let mut page = 1u32;
        loop {
            let request = self.client.get(&url).query(&[
                ("name", api_name(name).to_string()),
                ("type", rtype.to_string()),
                ("page", page.to_string()),
                ("per_page", self.config.per_page.to_string()),
            ]);
            let envelope: Envelope<Vec<DnsRecord>> = self.call(request, Effect::Read, "list DNS records").await?;
            let batch = envelope.result.unwrap_or_default();
            let done = batch.is_empty()
                || envelope.result_info.as_ref().is_none_or(|info| info.page.max(page) >= info.total_pages);
            records.extend(batch);
            // A bound against a server that never stops paging.
            if done || page >= 10_000 {
                return Ok(records);
            }
            page += 1;
        }
    }

    async fn read_raw(&self, zone_id: &str, name: &RecordName, rtype: RecordType) -> Result<Raw, ProviderError> {
        let answers = self.list(zone_id, name, rtype).await?;
        let ownership = self.list(zone_id, &name.ownership_name(), RecordType::TXT).await?;
        Ok(Raw { answers, ownership })
    }

    async fn read_name(&self, name: &RecordName, rtype: RecordType) -> Result<Observed, ProviderError> {
        let zone_id = self.zone_id(self.zone_of(name)?).await?;
        let raw = self.read_raw(&zone_id, name, rtype).await?;
        Ok(observe(name, rtype, &raw))
    }

    async fn apply_batch(&self, batch: &ChangeBatch) -> Result<(), ProviderError> {
        // The shared checks first (never empty, owned, well-formed): nothing is written otherwise.
        batch.check(&self.capabilities())?;
        check_batch(batch, &self.config.zones)?;
        if batch.changes.is_empty() {
            return Ok(());
        }
        let zone_id = self.zone_id(&batch.zone).await?;
        let mut request = BatchRequest { deletes: Vec::new(), posts: Vec::new() };
        for change in &batch.changes {
            let name = &change.expected.name;
            let raw = self.read_raw(&zone_id, name, change.expected.rtype).await?;
            let current = observe(name, change.expected.rtype, &raw);
            if current != change.expected {
                return Err(ProviderError::Conflict(format!(
                    "{name} changed since it was read (pre-read before the batch): re-read and re-plan"
                )));
            }
            self.plan_change(change, &raw, &mut request);
        }
        let operations = request.deletes.len() + request.posts.len();
        if operations > self.config.batch_records_max {
            return Err(ProviderError::Rejected(format!(
                "batch of {operations} operations exceeds the limit of {}",
                self.config.batch_records_max
            )));
        }
        tracing::debug!(
            zone = %batch.zone,
            changes = batch.changes.len(),
            deletes = request.deletes.len(),
            posts = request.posts.len(),
            "sending DNS records batch"
        );
        let url = format!("{}/zones/{zone_id}/dns_records/batch", self.config.endpoint);
        let _: Envelope<serde_json::Value> =
            self.call(self.client.post(url).json(&request), Effect::Write, "DNS records batch").await?;
        for change in &batch.changes {
            let name = &change.expected.name;
            let now = self.read_name(name, change.expected.rtype).await.map_err(|e| {
                ProviderError::Ambiguous(format!(
                    "{name}: the batch was accepted but the verification read failed: {e}"
                ))
            })?;
            verify(&now, change)
                .inspect_err(|e| tracing::warn!(%name, error = %e, "post-write verification failed"))?;
        }
        Ok(())
    }

    /// Adds the deletes and posts that turn `raw` into `change.desired`: answers
    /// that stay are not touched; the ownership TXT is deleted by id and posted anew.
    fn plan_change(&self, change: &Change, raw: &Raw, request: &mut BatchRequest) {
        let rtype = change.desired.rtype;
        let ttl = change.desired.ttl;
        let desired: BTreeSet<String> = change.desired.live_answers().map(|a| canonical(rtype, &a.value)).collect();
        let mut kept = BTreeSet::new();
        for record in &raw.answers {
            let value = canonical(rtype, &record.content);
            if record.ttl == ttl && desired.contains(&value) && kept.insert(value) {
                continue;
            }
            request.deletes.push(RecordId { id: record.id.clone() });
        }
        let proxied = matches!(rtype, RecordType::A | RecordType::AAAA | RecordType::CNAME).then_some(false);
        for value in desired.difference(&kept) {
            request.posts.push(NewRecord {
                name: api_name(&change.desired.name).into(),
                rtype: rtype.to_string(),
                content: wire_value(rtype, value),
                ttl,
                proxied,
                comment: "managed by veer",
            });
        }
        for record in &raw.ownership {
            request.deletes.push(RecordId { id: record.id.clone() });
        }
        request.posts.push(NewRecord {
            name: api_name(&change.desired.name.ownership_name()).into(),
            rtype: "TXT".into(),
            content: change.ownership.encode(),
            ttl: self.config.ownership_ttl,
            proxied: None,
            comment: "veer ownership record",
        });
    }
}

impl Provider for CloudflareProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            weighting: Weighting::SetOnly,
            batch_records_max: self.config.batch_records_max,
            atomic_batches: true,
            cas: CasPrimitive::PreRead,
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

/// The name as the API writes it: no trailing dot.
fn api_name(name: &RecordName) -> &str {
    name.as_str().trim_end_matches('.')
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

/// The value as Cloudflare stores it: CNAME targets without the trailing dot.
fn wire_value(rtype: RecordType, value: &str) -> String {
    match rtype {
        RecordType::CNAME => value.trim_end_matches('.').to_string(),
        _ => value.to_string(),
    }
}

/// What veer sees at a name: set-only answers and the ownership record. Anything
/// but exactly one decodable TXT value is kept as foreign, so that the name is
/// never taken for unowned.
fn observe(name: &RecordName, rtype: RecordType, raw: &Raw) -> Observed {
    let records = (!raw.answers.is_empty()).then(|| {
        let ttl = raw.answers.iter().map(|r| r.ttl).min().unwrap_or_default();
        let mut values: Vec<String> = raw.answers.iter().map(|r| canonical(rtype, &r.content)).collect();
        values.sort();
        values.dedup();
        let answers = values.into_iter().map(|value| Answer { set_id: None, value, weight: None }).collect();
        RecordSet::new(name.clone(), rtype, ttl, answers)
    });
    let (ownership, foreign_ownership) = match raw.ownership.as_slice() {
        [] => (None, None),
        [one] => match OwnershipRecord::decode(&one.content) {
            Ok(record) => (Some(record), None),
            Err(_) => (None, Some(one.content.clone())),
        },
        many => (None, Some(many.iter().map(|r| r.content.as_str()).collect::<Vec<_>>().join(" | "))),
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

/// Post-write verification: the name must hold exactly what this batch wrote.
fn verify(now: &Observed, change: &Change) -> Result<(), ProviderError> {
    let name = &change.expected.name;
    if now.ownership.as_ref() != Some(&change.ownership) || now.foreign_ownership.is_some() {
        let found = match (&now.ownership, &now.foreign_ownership) {
            (_, Some(raw)) => raw.clone(),
            (Some(o), None) => o.encode(),
            (None, None) => "nothing".into(),
        };
        return Err(ProviderError::Conflict(format!(
            "{name}: after the write the ownership record is {found:?}, not ours: another writer raced this one"
        )));
    }
    if now.records.as_ref() != Some(&published(&change.desired)) {
        return Err(ProviderError::Conflict(format!(
            "{name}: after the write the answers differ from what was written: another writer raced this one"
        )));
    }
    Ok(())
}

/// Checks made before any request, so that a bad batch is refused whole:
/// never empty (I1, defence in depth: the enactor refuses first), names in the
/// zone, no TXT changes, no name veer does not own (I11), each name once.
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
