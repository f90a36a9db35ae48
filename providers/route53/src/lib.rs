//! veer's Route 53 provider (ARCHITECTURE.md §6): weighted record sets and an atomic,
//! exact-match compare-and-swap per zone.
//!
//! # Model
//! Every answer of a managed name is one weighted record set (`SetIdentifier` =
//! the answer's `set_id`, `Weight` 0–255, optional `HealthCheckId` from
//! [`Route53Config::health_checks`]). Ownership lives in the simple TXT record
//! set `_veer.<name>`. Simple (non-weighted) answers are read as answers without
//! a set id and weight, so the enactor sees "answers but no ownership record" and
//! refuses the name unless its policy adopts it; an adopting change deletes the
//! simple set and creates the weighted ones in the same call. Simple answers
//! next to veer's own ownership record (weighted sets replaced by hand) are
//! refused as `NotOwned`, for a person to settle.
//!
//! # Guarantees
//! - **Compare-and-swap**: an apply is one `ChangeResourceRecordSets` call per
//!   zone (more only when Route 53's per-call limits force it, never splitting a
//!   name) that DELETEs exactly what was read, ownership TXT included, and
//!   CREATEs the new sets. Route 53 applies a call all or nothing and refuses a
//!   DELETE that does not match exactly, so a stale writer gets
//!   [`ProviderError::Conflict`] and nothing changes. Unchanged weighted sets are
//!   left out; the ownership record is always swapped, so the generation guards the name.
//! - **One retry layer**: the SDK's retries are off; failures are classified
//!   (see [`classify`]) for the shared retry layer around the provider.
//! - **No secrets in output**: credentials are never in `Debug`, errors or logs.
//!
//! # Caveats
//! - **Ambiguous writes**: a write that times out or loses its response is
//!   [`ProviderError::Ambiguous`]. The caller must re-read before anything else:
//!   the same call sent again after its first attempt landed fails with
//!   `InvalidChangeBatch` (its DELETEs no longer match), which reads as a
//!   `Conflict` although the change is in place.
//! - **INSYNC**: after writing, `apply` polls `GetChange` (bounded, jittered)
//!   and reports the time in [`ApplyReport`] (tracing, [`Route53Provider::last_apply`],
//!   [`Route53Provider::with_apply_observer`]). Those polls happen inside `apply`,
//!   outside a budget wrapper around the provider; turn them off with
//!   [`InsyncWait::enabled`] where every call must be budgeted.
//! - **Several calls**: when limits split an apply, a failure after an earlier
//!   call landed is reported as `Conflict` (or `Ambiguous`): the zone has moved
//!   and must be re-read, never re-sent as a whole.

pub mod batch;
pub mod classify;
mod config;
pub mod records;

pub use config::{InsyncWait, Route53Config, Secret, StaticCredentials, Timeouts};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_route53::Client;
use aws_sdk_route53::config::{Credentials, Region};
use aws_sdk_route53::types::{self as sdk, ChangeAction, ChangeStatus, RrType};
use batch::{BatchCost, BatchLimits, cost_of, split_batches};
use classify::{Call, classify};
use records::{Action, Listed, NameChange, Rrset, decode, diff, encode, encode_desired, unescape_name};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use veer_provider::{
    Capabilities, CasPrimitive, Change, ChangeBatch, Observed, Provider, ProviderError, ProviderFuture, RecordName,
    RecordType, Weighting,
};

/// The SDK behaviour version veer was tested with; pinned so that an SDK
/// upgrade cannot silently change defaults (retries, timeouts, checksums).
pub fn behavior_version() -> BehaviorVersion {
    BehaviorVersion::v2026_01_12()
}

/// Why a provider could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Route53Error {
    /// Neither `zones` nor `hostedZoneIds` names a zone.
    #[error("provider `{0}`: no hosted zone configured (set `zones` or `hostedZoneIds`)")]
    NoZones(String),
    /// No hosted zone of that name is visible with these credentials.
    #[error("provider `{provider}`: no hosted zone named {zone} is visible with these credentials")]
    ZoneNotFound {
        /// The provider's configured name.
        provider: String,
        /// The zone looked for.
        zone: RecordName,
    },
    /// A public and a private hosted zone (or several private ones) share the name.
    #[error(
        "provider `{provider}`: {zone} names several hosted zones ({ids}); give the one to manage in `hostedZoneIds`"
    )]
    AmbiguousZone {
        /// The provider's configured name.
        provider: String,
        /// The zone name.
        zone: RecordName,
        /// The matching hosted zone ids, comma separated.
        ids: String,
    },
    /// Route 53 returned a hosted zone name veer cannot parse.
    #[error("provider `{provider}`: hosted zone {id} has a name veer cannot use: {name:?}")]
    BadZoneName {
        /// The provider's configured name.
        provider: String,
        /// The hosted zone id.
        id: String,
        /// The name as returned.
        name: String,
    },
    /// The lookup call failed.
    #[error("provider `{provider}`: looking up hosted zone {zone}: {source}")]
    Lookup {
        /// The provider's configured name.
        provider: String,
        /// The zone name or id looked up.
        zone: String,
        /// The classified failure.
        source: ProviderError,
    },
}

/// What one `apply` did, reported through tracing, [`Route53Provider::last_apply`]
/// and the observer set with [`Route53Provider::with_apply_observer`] (the
/// controller turns it into metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// The zone written.
    pub zone: RecordName,
    /// Names changed.
    pub names: usize,
    /// `ChangeResourceRecordSets` calls made.
    pub calls: usize,
    /// `ResourceRecord` elements and value characters sent, over all calls.
    pub cost: BatchCost,
    /// Route 53 change ids, one per call.
    pub change_ids: Vec<String>,
    /// `GetChange` calls made while waiting.
    pub insync_polls: usize,
    /// From the first write to every change INSYNC; `None` when not waited
    /// for or not INSYNC within [`InsyncWait::timeout`].
    pub insync_after: Option<Duration>,
}

type ApplyObserver = Arc<dyn Fn(&ApplyReport) + Send + Sync>;

/// What `read` saw of a name, kept so that `apply` can DELETE exactly what was
/// listed (health check ids, TXT spelling and TTL are not in [`Observed`]).
struct Snapshot {
    observed: Observed,
    listed: Listed,
}

/// A Route 53 account's hosted zones as one veer provider.
pub struct Route53Provider {
    name: String,
    client: Client,
    zones: Vec<RecordName>,
    zone_ids: BTreeMap<RecordName, String>,
    health_checks: BTreeMap<String, String>,
    insync: InsyncWait,
    batch_limits: BatchLimits,
    list_page_size: i32,
    snapshots: Mutex<HashMap<(RecordName, RecordType), Snapshot>>,
    last_apply: Mutex<Option<ApplyReport>>,
    observer: Option<ApplyObserver>,
}

impl fmt::Debug for Route53Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route53Provider")
            .field("name", &self.name)
            .field("zone_ids", &self.zone_ids)
            .field("health_checks", &self.health_checks)
            .field("insync", &self.insync)
            .field("batch_limits", &self.batch_limits)
            .finish_non_exhaustive()
    }
}

impl Route53Provider {
    /// Builds the SDK client (standard credential chain unless
    /// [`Route53Config::credentials`] is set; SDK retries off; the configured
    /// timeouts and endpoint) and resolves every configured hosted zone, so a
    /// wrong zone or unusable credentials fail at start, not at the first write.
    pub async fn connect(name: impl Into<String>, config: Route53Config) -> Result<Self, Route53Error> {
        let name = name.into();
        let client = sdk_client(&config).await;
        let mut zone_ids = BTreeMap::new();
        for zone in &config.zones {
            let id = zone_id_by_name(&client, &name, zone).await?;
            zone_ids.insert(zone.clone(), id);
        }
        for id in &config.hosted_zone_ids {
            let id = strip_id(id);
            let zone = zone_name_by_id(&client, &name, &id).await?;
            zone_ids.insert(zone, id);
        }
        if zone_ids.is_empty() {
            return Err(Route53Error::NoZones(name));
        }
        tracing::info!(provider = %name, zones = ?zone_ids, "route53 provider ready");
        Ok(Self {
            name,
            client,
            zones: zone_ids.keys().cloned().collect(),
            zone_ids,
            health_checks: config.health_checks,
            insync: config.insync,
            batch_limits: config.batch_limits,
            list_page_size: config.list_page_size.clamp(1, 300) as i32,
            snapshots: Mutex::default(),
            last_apply: Mutex::default(),
            observer: None,
        })
    }

    /// Calls `observer` with the report of every successful apply (for metrics).
    pub fn with_apply_observer(mut self, observer: impl Fn(&ApplyReport) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The report of the last successful apply.
    pub fn last_apply(&self) -> Option<ApplyReport> {
        self.last_apply.lock().expect("last_apply lock").clone()
    }

    /// The hosted zone id serving `zone`.
    pub fn hosted_zone_id(&self, zone: &RecordName) -> Option<&str> {
        self.zone_ids.get(zone).map(String::as_str)
    }

    /// The hosted zone id of the most specific configured zone containing `name`.
    fn zone_of(&self, name: &RecordName) -> Result<&str, ProviderError> {
        self.zone_ids
            .iter()
            .filter(|(zone, _)| name.is_within(zone))
            .max_by_key(|(zone, _)| zone.as_str().len())
            .map(|(_, id)| id.as_str())
            .ok_or_else(|| ProviderError::Rejected(format!("{name} is outside every zone of provider `{}`", self.name)))
    }

    /// Lists the record sets of one name and type, page by page from the name,
    /// stopping at the first record set past it.
    async fn list(&self, zone_id: &str, name: &RecordName, rtype: RecordType) -> Result<Vec<Rrset>, ProviderError> {
        let wanted = rr_type(rtype);
        let mut found = Vec::new();
        let mut start = (name.to_string(), wanted.clone(), None::<String>);
        loop {
            let page = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(zone_id)
                .start_record_name(&start.0)
                .start_record_type(start.1.clone())
                .set_start_record_identifier(start.2.clone())
                .max_items(self.list_page_size)
                .send()
                .await
                .map_err(|e| classify("ListResourceRecordSets", Call::Read, &e))?;
            for set in page.resource_record_sets() {
                if unescape_name(set.name()) != name.as_str() || set.r#type() != &wanted {
                    return Ok(found);
                }
                found.push(from_sdk(name, rtype, set)?);
            }
            let next = match (page.is_truncated(), page.next_record_name(), page.next_record_type()) {
                (true, Some(next_name), Some(next_type))
                    if unescape_name(next_name) == name.as_str() && next_type == &wanted =>
                {
                    (next_name.to_string(), next_type.clone(), page.next_record_identifier().map(str::to_string))
                }
                _ => return Ok(found),
            };
            if next == start {
                return Err(ProviderError::Unavailable(format!(
                    "ListResourceRecordSets for {name} {rtype} did not advance past {:?}",
                    next.2
                )));
            }
            start = next;
        }
    }

    /// The DELETEs and CREATEs of one change, after checking it is ours to make.
    fn name_change(&self, zone: &RecordName, change: &Change) -> Result<NameChange, ProviderError> {
        let name = &change.desired.name;
        if &change.expected.name != name || change.expected.rtype != change.desired.rtype {
            return Err(ProviderError::Rejected(format!(
                "change of {name} {} was read as {} {}",
                change.desired.rtype, change.expected.name, change.expected.rtype
            )));
        }
        if !name.is_within(zone) {
            return Err(ProviderError::Rejected(format!("{name} is not in zone {zone}")));
        }
        // I11 again at the last step: the enactor checks ownership, this refuses
        // a change that would overwrite another owner even if a caller did not.
        if let Some(text) = &change.expected.foreign_ownership {
            return Err(ProviderError::NotOwned(format!("{name} has an ownership record veer cannot read: {text:?}")));
        }
        if let Some(owner) = change.expected.ownership.as_ref().map(|o| &o.owner)
            && owner != &change.ownership.owner
        {
            return Err(ProviderError::NotOwned(format!(
                "{name} is owned by `{owner}`, not `{}`",
                change.ownership.owner
            )));
        }
        // Simple answers are taken over only when adopting (no ownership record:
        // the enactor let the change through because the policy adopts). Next to
        // veer's own ownership record they mean someone replaced veer's weighted
        // sets by hand; that is left for a person to settle.
        let simple = change.expected.records.as_ref().is_some_and(|r| r.answers.iter().any(|a| a.set_id.is_none()));
        if simple && change.expected.ownership.is_some() {
            return Err(ProviderError::NotOwned(format!(
                "{name} holds a simple (non-weighted) record set next to veer's ownership record, so it was \
                 changed by hand: delete the simple set to hand the name back to veer, or delete `{}` and adopt it",
                name.ownership_name()
            )));
        }
        let new = encode_desired(&change.desired, &change.ownership, &self.health_checks)?;
        let key = (name.clone(), change.desired.rtype);
        let snapshot_old = self.snapshots.lock().expect("snapshots lock").get(&key).and_then(|s| {
            (s.observed == change.expected).then(|| (s.listed.answers.clone(), s.listed.ownership.first().cloned()))
        });
        let old = match snapshot_old {
            Some(old) => old,
            None => {
                encode(name, change.expected.records.as_ref(), change.expected.ownership.as_ref(), &self.health_checks)?
            }
        };
        Ok(diff(name, old, new))
    }

    /// Sends one `ChangeResourceRecordSets` call; returns the change id and its status.
    async fn send(&self, zone_id: &str, call: &[NameChange]) -> Result<(String, ChangeStatus), ProviderError> {
        let changes = call
            .iter()
            .flat_map(|n| n.changes.iter())
            .map(|c| {
                let action = match c.action {
                    Action::Delete => ChangeAction::Delete,
                    Action::Create => ChangeAction::Create,
                };
                sdk::Change::builder()
                    .action(action)
                    .resource_record_set(to_sdk(&c.rrset)?)
                    .build()
                    .map_err(build_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let comment = match call {
            [only] => format!("veer: {}", only.name),
            many => format!("veer: {} names", many.len()),
        };
        let batch =
            sdk::ChangeBatch::builder().comment(comment).set_changes(Some(changes)).build().map_err(build_error)?;
        let output = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| classify("ChangeResourceRecordSets", Call::Write, &e))?;
        let info = output.change_info().ok_or_else(|| {
            ProviderError::Ambiguous("ChangeResourceRecordSets answered without ChangeInfo: re-read".into())
        })?;
        Ok((strip_id(info.id()), info.status().clone()))
    }

    /// Polls `GetChange` until every change is INSYNC or the bound passes.
    /// Returns the number of polls and whether all reached INSYNC.
    async fn wait_insync(&self, changes: &[(String, ChangeStatus)], deadline: Instant) -> (usize, bool) {
        let mut polls = 0;
        let mut interval = self.insync.interval;
        for (id, status) in changes {
            if status == &ChangeStatus::Insync {
                continue;
            }
            loop {
                let now = Instant::now();
                if now >= deadline {
                    tracing::warn!(provider = %self.name, change = %id, "change not INSYNC within {:?}", self.insync.timeout);
                    return (polls, false);
                }
                // Uniform in [interval/2, 3·interval/2): never in step with other pollers.
                let sleep = interval.mul_f64(0.5 + fastrand::f64()).min(deadline - now);
                tokio::time::sleep(sleep).await;
                polls += 1;
                match self.client.get_change().id(id).send().await {
                    Ok(out) if out.change_info().is_some_and(|i| i.status() == &ChangeStatus::Insync) => break,
                    Ok(_) => {}
                    Err(e) => match classify("GetChange", Call::Read, &e) {
                        ProviderError::Throttled { .. } => interval = (interval * 2).min(self.insync.timeout),
                        other => {
                            tracing::warn!(provider = %self.name, change = %id, error = %other, "GetChange failed")
                        }
                    },
                }
            }
        }
        (polls, true)
    }

    fn forget(&self, batch: &ChangeBatch) {
        let mut snapshots = self.snapshots.lock().expect("snapshots lock");
        for change in &batch.changes {
            snapshots.remove(&(change.desired.name.clone(), change.desired.rtype));
        }
    }

    async fn apply_batch(&self, batch: &ChangeBatch) -> Result<(), ProviderError> {
        let zone_id = self.zone_ids.get(&batch.zone).ok_or_else(|| {
            ProviderError::Rejected(format!("zone {} is not configured for provider `{}`", batch.zone, self.name))
        })?;
        let names = batch.changes.iter().map(|c| self.name_change(&batch.zone, c)).collect::<Result<Vec<_>, _>>()?;
        let name_count = names.len();
        let cost = names.iter().map(cost_of).fold(BatchCost::default(), |a, b| BatchCost {
            records: a.records + b.records,
            value_chars: a.value_chars + b.value_chars,
        });
        let calls = split_batches(names, self.batch_limits).map_err(|e| ProviderError::Rejected(e.to_string()))?;
        let started = Instant::now();
        let mut landed = Vec::new();
        for (index, call) in calls.iter().enumerate() {
            match self.send(zone_id, call).await {
                Ok(change) => landed.push(change),
                Err(e) => {
                    self.forget(batch);
                    return Err(partial(e, index, calls.len()));
                }
            }
        }
        self.forget(batch);
        let (insync_polls, insync) = if self.insync.enabled {
            self.wait_insync(&landed, started + self.insync.timeout).await
        } else {
            (0, false)
        };
        let report = ApplyReport {
            zone: batch.zone.clone(),
            names: name_count,
            calls: calls.len(),
            cost,
            change_ids: landed.into_iter().map(|(id, _)| id).collect(),
            insync_polls,
            insync_after: insync.then(|| started.elapsed()),
        };
        tracing::info!(
            provider = %self.name,
            zone = %report.zone,
            names = report.names,
            calls = report.calls,
            records = report.cost.records,
            insync_ms = report.insync_after.map(|d| d.as_millis() as u64),
            insync_polls = report.insync_polls,
            "route53 change applied"
        );
        if let Some(observer) = &self.observer {
            observer(&report);
        }
        *self.last_apply.lock().expect("last_apply lock") = Some(report);
        Ok(())
    }
}

impl Provider for Route53Provider {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            weighting: Weighting::Weighted { max_weight: records::WEIGHT_MAX },
            batch_records_max: self.batch_limits.records_max,
            atomic_batches: true,
            cas: CasPrimitive::ExactDeleteCreate,
            answer_ids: true,
        }
    }

    fn zones(&self) -> &[RecordName] {
        &self.zones
    }

    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        Box::pin(async move {
            let zone_id = self.zone_of(name)?;
            let answers = self.list(zone_id, name, rtype).await?;
            let ownership = self.list(zone_id, &name.ownership_name(), RecordType::TXT).await?;
            let listed = Listed { answers, ownership };
            let observed = decode(name, rtype, &listed)?;
            self.snapshots
                .lock()
                .expect("snapshots lock")
                .insert((name.clone(), rtype), Snapshot { observed: observed.clone(), listed });
            Ok(observed)
        })
    }

    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        Box::pin(self.apply_batch(batch))
    }
}

/// After call `index` of `total` failed: if earlier calls landed, the zone has
/// moved under the caller, so a retry of the whole apply must not happen.
fn partial(error: ProviderError, index: usize, total: usize) -> ProviderError {
    if index == 0 {
        return error;
    }
    let landed = format!("{index} of {total} calls landed, then call {} failed", index + 1);
    match error {
        ProviderError::Throttled { .. } | ProviderError::Unavailable(_) | ProviderError::Conflict(_) => {
            ProviderError::Conflict(format!("{landed} ({error}); re-read and re-plan"))
        }
        ProviderError::Ambiguous(why) => ProviderError::Ambiguous(format!("{landed}: {why}")),
        ProviderError::Rejected(why) => ProviderError::Rejected(format!("{landed}: {why}")),
        ProviderError::NotOwned(why) => ProviderError::NotOwned(format!("{landed}: {why}")),
        ProviderError::WouldEmpty(name) => ProviderError::WouldEmpty(name),
    }
}

async fn sdk_client(config: &Route53Config) -> Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.timeouts.connect)
        .operation_timeout(config.timeouts.operation)
        .operation_attempt_timeout(config.timeouts.operation)
        .build();
    let mut loader = aws_config::defaults(behavior_version())
        .region(Region::new(config.region.clone().unwrap_or_else(|| "us-east-1".into())))
        // One retry layer (ARCHITECTURE.md §6): the shared layer around the provider.
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts);
    if let Some(url) = &config.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(profile) = &config.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(c) = &config.credentials {
        loader = loader.credentials_provider(Credentials::new(
            &c.access_key_id,
            c.secret_access_key.expose(),
            c.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "veer-static",
        ));
    }
    let shared = loader.load().await;
    Client::from_conf(aws_sdk_route53::config::Builder::from(&shared).build())
}

async fn zone_id_by_name(client: &Client, provider: &str, zone: &RecordName) -> Result<String, Route53Error> {
    let lookup_error = |source| Route53Error::Lookup { provider: provider.into(), zone: zone.to_string(), source };
    let out = client
        .list_hosted_zones_by_name()
        .dns_name(zone.as_str())
        .max_items(100)
        .send()
        .await
        .map_err(|e| lookup_error(classify("ListHostedZonesByName", Call::Read, &e)))?;
    let ids: Vec<String> =
        out.hosted_zones().iter().filter(|z| zone_name(z.name()) == zone.as_str()).map(|z| strip_id(z.id())).collect();
    match ids.as_slice() {
        [] => Err(Route53Error::ZoneNotFound { provider: provider.into(), zone: zone.clone() }),
        [one] => Ok(one.clone()),
        many => {
            Err(Route53Error::AmbiguousZone { provider: provider.into(), zone: zone.clone(), ids: many.join(", ") })
        }
    }
}

async fn zone_name_by_id(client: &Client, provider: &str, id: &str) -> Result<RecordName, Route53Error> {
    let out = client.get_hosted_zone().id(id).send().await.map_err(|e| Route53Error::Lookup {
        provider: provider.into(),
        zone: id.into(),
        source: classify("GetHostedZone", Call::Read, &e),
    })?;
    let name = out.hosted_zone().map(|z| zone_name(z.name())).unwrap_or_default();
    RecordName::parse(&name).map_err(|_| Route53Error::BadZoneName { provider: provider.into(), id: id.into(), name })
}

/// A hosted zone name as veer spells it: unescaped, lowercase, trailing dot.
fn zone_name(name: &str) -> String {
    let name = unescape_name(name);
    if name.ends_with('.') { name } else { format!("{name}.") }
}

/// `/hostedzone/Z1` and `/change/C1` → `Z1`, `C1`.
fn strip_id(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_string()
}

fn rr_type(rtype: RecordType) -> RrType {
    RrType::from(rtype.to_string().as_str())
}

fn build_error(e: aws_sdk_route53::error::BuildError) -> ProviderError {
    ProviderError::Rejected(format!("building the Route 53 request: {e}"))
}

fn to_sdk(rrset: &Rrset) -> Result<sdk::ResourceRecordSet, ProviderError> {
    let records = rrset
        .values
        .iter()
        .map(|v| sdk::ResourceRecord::builder().value(v).build().map_err(build_error))
        .collect::<Result<Vec<_>, _>>()?;
    sdk::ResourceRecordSet::builder()
        .name(rrset.name.as_str())
        .r#type(rr_type(rrset.rtype))
        .set_set_identifier(rrset.set_id.clone())
        .set_weight(rrset.weight.map(i64::from))
        .ttl(i64::from(rrset.ttl))
        .set_resource_records(Some(records))
        .set_health_check_id(rrset.health_check_id.clone())
        .build()
        .map_err(build_error)
}

/// A listed record set, refusing routing policies veer does not manage.
fn from_sdk(name: &RecordName, rtype: RecordType, set: &sdk::ResourceRecordSet) -> Result<Rrset, ProviderError> {
    let policy = if set.alias_target().is_some() {
        Some("alias")
    } else if set.failover().is_some() {
        Some("failover")
    } else if set.geo_location().is_some() || set.geo_proximity_location().is_some() {
        Some("geolocation")
    } else if set.region().is_some() {
        Some("latency")
    } else if set.multi_value_answer() == Some(true) {
        Some("multivalue")
    } else if set.cidr_routing_config().is_some() {
        Some("IP-based")
    } else if set.traffic_policy_instance_id().is_some() {
        Some("traffic policy")
    } else if set.set_identifier().is_some() != set.weight().is_some() {
        Some("unrecognised")
    } else {
        None
    };
    let refuse = |what: String| {
        ProviderError::Rejected(format!(
            "{name} {rtype}: {what}; veer manages simple and weighted record sets only: \
             remove it in Route 53 or manage this name elsewhere"
        ))
    };
    if let Some(policy) = policy {
        return Err(refuse(format!("record set {:?} uses {policy} routing", set.set_identifier().unwrap_or(""))));
    }
    let weight = match set.weight() {
        Some(w) => Some(u32::try_from(w).map_err(|_| refuse(format!("weight {w} is out of range")))?),
        None => None,
    };
    let ttl = set.ttl().ok_or_else(|| refuse("record set without TTL".into()))?;
    let mut values: Vec<String> = set.resource_records().iter().map(|r| r.value().to_string()).collect();
    values.sort();
    Ok(Rrset {
        name: name.clone(),
        rtype,
        set_id: set.set_identifier().map(str::to_string),
        weight,
        ttl: u32::try_from(ttl).map_err(|_| refuse(format!("TTL {ttl} is out of range")))?,
        values,
        health_check_id: set.health_check_id().map(str::to_string),
    })
}
