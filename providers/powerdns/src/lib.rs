//! veer's PowerDNS provider (ARCHITECTURE.md §6): reads and zone checks through the
//! PowerDNS Authoritative HTTP API, writes through RFC 2136 — or, when the
//! operator opts in, through the API with a weaker guarantee.
//!
//! # Reads
//! [`Provider::read`] fetches the name's zone once (`GET
//! /api/v1/servers/{server_id}/zones/{zone}.`) and picks out the name's RRset and
//! the `_veer.<name>` TXT from that one response, so answers and ownership record
//! come from the same moment. Disabled records are ignored: PowerDNS does not
//! serve them. TXT content arrives in presentation format (quoted) and is
//! unquoted before it is decoded. PowerDNS 4.7 has no per-name filter on this
//! call, so a read transfers the whole zone: fine for the zones veer manages
//! (delegated sub-zones, a few hundred records), worth knowing for huge ones.
//!
//! # Writes: [`WriteMode::Rfc2136`] (the default, and the safe one)
//! The PowerDNS API has no conditional update: a PATCH with `changetype: REPLACE`
//! is last-writer-wins. So by default `apply` is delegated to an inner
//! [`Rfc2136Provider`] pointed at PowerDNS's DNS port (`dnsupdate=yes`, the zone's
//! `TSIG-ALLOW-DNSUPDATE` metadata naming the key): one TSIG-signed UPDATE per
//! batch whose value-dependent prerequisites on the answers and the ownership TXT
//! make it a real compare-and-swap, all or nothing.
//!
//! # Writes: [`WriteMode::ApiLastWriterWins`] (opt-in, weaker)
//! For operators who cannot enable `dnsupdate` (policy, a managed PowerDNS, no
//! TSIG key distribution). Each apply:
//! 1. re-reads the zone through the API immediately before writing and compares
//!    every name with what the caller read (`expected`), refusing with
//!    [`ProviderError::Conflict`] on any difference, and refuses an ownership
//!    record of the same owner written under a higher leader epoch (a newer
//!    leader wrote it: this writer is stale);
//! 2. sends **one** PATCH replacing the answers and the ownership TXT of every
//!    name together (PowerDNS applies one PATCH in one transaction);
//! 3. re-reads and verifies that every name holds what was written, returning
//!    `Conflict` when another writer's ownership record (or answers) is found.
//!
//! **Why this is weaker:** between the check in step 1 and the PATCH in step 2
//! there is a window (one HTTP round trip) in which another writer's change is
//! silently overwritten. Step 3 detects a writer that comes *after* us only if it
//! lands before the verification read; one that lands *between* check and PATCH
//! is lost without a trace at the provider. The fence re-check in the enactor
//! and single-leader operation make such a writer rare, not impossible. Its
//! capabilities say so: [`CasPrimitive::PreRead`] and `atomic_batches: false`.
//!
//! Applies of one provider through the API are serialised (pre-read to
//! verification), so veer never races itself in that window.
//!
//! # Errors
//! 401/403/422 (and other 4xx) are [`ProviderError::Rejected`] with PowerDNS's
//! own `error` text; 429 is [`ProviderError::Throttled`] with `Retry-After`;
//! 5xx and connection failures are [`ProviderError::Unavailable`]; a write whose
//! request was sent but got no answer (timeout, reset, or a gateway's 504) is
//! [`ProviderError::Ambiguous`]. PowerDNS 4.7 on sqlite answers concurrent API
//! writes with 500 "database is locked" after rolling the PATCH back: that is
//! `Unavailable`, and the retry layer tries again.
//!
//! # Secrets
//! The API key and the TSIG secret are given by the caller as bytes or text; this
//! crate reads no files and no environment. Neither appears in `Debug` output,
//! errors or logs; the key travels only in the `X-API-Key` header, marked
//! sensitive. No proxy from the environment is used and redirects are not
//! followed, so the key goes to the configured host only.

mod api;
mod txt;

use api::{ApiClient, ApiRecord, ApiRrset, RrsetPatch};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use veer_provider::{
    Answer, Capabilities, CasPrimitive, ChangeBatch, Observed, Provider, ProviderError, ProviderFuture, RecordName,
    RecordSet, RecordType, Weighting,
};
use veer_provider_rfc2136::{Rfc2136Config, Rfc2136Provider};

pub use veer_provider_rfc2136::{TsigAlgorithm, TsigKey};

/// The PowerDNS API key (`api-key` in pdns.conf). Its `Debug` output and every
/// error leave it out.
#[derive(Clone)]
pub struct ApiKey(Vec<u8>);

impl ApiKey {
    /// A key from its bytes (as read by the caller from a file or a secret store).
    /// It must be non-empty and a valid HTTP header value (no control characters).
    pub fn new(key: impl Into<Vec<u8>>) -> Result<Self, ConfigError> {
        let mut key = key.into();
        // Files usually end with a newline, which is not part of the key.
        while key.last().is_some_and(|b| b.is_ascii_whitespace()) {
            key.pop();
        }
        if key.is_empty() {
            return Err(ConfigError::EmptyApiKey);
        }
        if reqwest::header::HeaderValue::from_bytes(&key).is_err() {
            return Err(ConfigError::BadApiKey);
        }
        Ok(Self(key))
    }

    fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// How `apply` writes (see the crate docs for why there are two).
#[derive(Debug, Clone)]
pub enum WriteMode {
    /// TSIG-signed RFC 2136 UPDATEs with value-dependent prerequisites to
    /// PowerDNS's DNS port: a real compare-and-swap. The default.
    Rfc2136 {
        /// PowerDNS's DNS address (TCP), e.g. `127.0.0.1:53`.
        server: SocketAddr,
        /// A key named in each zone's `TSIG-ALLOW-DNSUPDATE` metadata.
        key: TsigKey,
    },
    /// API PATCH after a pre-read and with a verifying re-read: last-writer-wins
    /// with a race window. Only for operators who cannot enable `dnsupdate`.
    ApiLastWriterWins,
}

/// Where PowerDNS is and how veer may use it.
#[derive(Debug, Clone)]
pub struct PowerDnsConfig {
    /// The provider's name in veer's configuration.
    pub name: String,
    /// The API's base URL, e.g. `http://127.0.0.1:8081` (without `/api/v1`).
    pub api_url: String,
    /// The API's server id; PowerDNS Authoritative always calls itself `localhost`.
    pub server_id: String,
    /// The `X-API-Key`.
    pub api_key: ApiKey,
    /// The zones veer manages there, fully qualified.
    pub zones: Vec<RecordName>,
    /// How writes are made.
    pub writes: WriteMode,
    /// Per-request timeout for API calls (and for RFC 2136 exchanges).
    pub timeout: Duration,
    /// Time to establish a connection to the API; a connect failure is known
    /// to have written nothing, so it is kept shorter than `timeout`.
    pub connect_timeout: Duration,
    /// Records (answer sets plus ownership records) per write.
    pub batch_records_max: usize,
}

impl PowerDnsConfig {
    /// A configuration with server id `localhost`, a 10 s request timeout, a 3 s
    /// connect timeout and batches of up to 200 records.
    pub fn new(
        name: impl Into<String>,
        api_url: impl Into<String>,
        api_key: ApiKey,
        zones: Vec<RecordName>,
        writes: WriteMode,
    ) -> Self {
        Self {
            name: name.into(),
            api_url: api_url.into(),
            server_id: "localhost".into(),
            api_key,
            zones,
            writes,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            batch_records_max: 200,
        }
    }
}

/// Why the provider cannot be built. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The provider has no zone.
    #[error("a powerdns provider needs at least one zone")]
    NoZones,
    /// The API URL does not parse, is not http(s), or carries credentials.
    #[error("PowerDNS API URL: {0}")]
    BadApiUrl(String),
    /// The API key is empty.
    #[error("the PowerDNS API key is empty")]
    EmptyApiKey,
    /// The API key has characters an HTTP header cannot carry (it is not repeated here).
    #[error("the PowerDNS API key contains characters that cannot be sent in an HTTP header")]
    BadApiKey,
    /// The server id is empty.
    #[error("the PowerDNS server id is empty (PowerDNS Authoritative uses \"localhost\")")]
    EmptyServerId,
    /// The RFC 2136 writer's configuration is invalid.
    #[error("RFC 2136 writes: {0}")]
    Rfc2136(#[from] veer_provider_rfc2136::ConfigError),
    /// The HTTP client cannot be built (TLS roots, for example).
    #[error("{0}")]
    HttpClient(String),
}

/// The PowerDNS provider (see the crate docs).
pub struct PowerDnsProvider {
    config: PowerDnsConfig,
    api: ApiClient,
    writer: Writer,
    /// Held from the pre-read to the verification of an API write, so that two
    /// applies of this provider never race each other inside the check-to-PATCH
    /// window (only writers outside this process can), and so that PowerDNS's
    /// sqlite backend is not handed concurrent write transactions, which it
    /// answers with 500 "database is locked".
    api_write: tokio::sync::Mutex<()>,
}

enum Writer {
    Rfc2136(Box<Rfc2136Provider>),
    Api,
}

impl fmt::Debug for PowerDnsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PowerDnsProvider").field("config", &self.config).finish_non_exhaustive()
    }
}

impl PowerDnsProvider {
    /// Checks the configuration and builds the clients; connects to nothing yet
    /// (see [`Self::check_zones`] for a check against the server).
    pub fn new(config: PowerDnsConfig) -> Result<Self, ConfigError> {
        if config.zones.is_empty() {
            return Err(ConfigError::NoZones);
        }
        if config.server_id.is_empty() {
            return Err(ConfigError::EmptyServerId);
        }
        let base = reqwest::Url::parse(&config.api_url)
            .map_err(|e| ConfigError::BadApiUrl(format!("{:?} does not parse: {e}", config.api_url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ConfigError::BadApiUrl(format!("{:?} is not http or https", config.api_url)));
        }
        if !base.username().is_empty() || base.password().is_some() {
            // Not quoted: the URL holds a secret.
            return Err(ConfigError::BadApiUrl("the URL must not carry credentials; give the API key instead".into()));
        }
        let api =
            ApiClient::new(base, config.server_id.clone(), &config.api_key, config.timeout, config.connect_timeout)
                .map_err(ConfigError::HttpClient)?;
        let writer = match &config.writes {
            WriteMode::Rfc2136 { server, key } => {
                let mut inner = Rfc2136Config::new(config.name.clone(), *server, config.zones.clone(), key.clone());
                inner.timeout = config.timeout;
                inner.batch_records_max = config.batch_records_max;
                Writer::Rfc2136(Box::new(Rfc2136Provider::new(inner)?))
            }
            WriteMode::ApiLastWriterWins => Writer::Api,
        };
        Ok(Self { config, api, writer, api_write: tokio::sync::Mutex::new(()) })
    }

    /// Checks, at start, what would otherwise fail at the first write: every
    /// configured zone exists at PowerDNS; with RFC 2136 writes also that
    /// `dnsupdate` is on, that each zone's `TSIG-ALLOW-DNSUPDATE` names the key,
    /// and that the DNS port answers authoritatively for each zone.
    pub async fn check_zones(&self) -> Result<(), ProviderError> {
        for zone in &self.config.zones {
            if !self.api.zone_exists(zone).await? {
                return Err(ProviderError::Rejected(format!(
                    "PowerDNS at {} (server id {:?}) does not serve zone {zone}: create it there \
                     (zone ids need the trailing dot) or remove it from provider {}",
                    self.config.api_url, self.config.server_id, self.config.name
                )));
            }
        }
        let Writer::Rfc2136(inner) = &self.writer else { return Ok(()) };
        let WriteMode::Rfc2136 { key, .. } = &self.config.writes else { return Ok(()) };
        if let Some(value) = self.api.setting("dnsupdate").await?
            && value != "yes"
        {
            return Err(ProviderError::Rejected(format!(
                "PowerDNS at {} has dnsupdate={value}: RFC 2136 writes need dnsupdate=yes \
                 (or opt into the weaker API writes, WriteMode::ApiLastWriterWins)",
                self.config.api_url
            )));
        }
        let wanted = key.name().trim_end_matches('.');
        for zone in &self.config.zones {
            let allowed = self.api.zone_metadata(zone, "TSIG-ALLOW-DNSUPDATE").await?;
            if !allowed.iter().any(|k| k.trim_end_matches('.').eq_ignore_ascii_case(wanted)) {
                return Err(ProviderError::Rejected(format!(
                    "zone {zone}: its TSIG-ALLOW-DNSUPDATE metadata ({allowed:?}) does not name key {wanted:?}, \
                     so PowerDNS would refuse veer's updates (pdnsutil set-meta {zone} TSIG-ALLOW-DNSUPDATE {wanted})"
                )));
            }
        }
        inner.check_zones().await
    }

    fn zone_of(&self, name: &RecordName) -> Result<&RecordName, ProviderError> {
        self.config
            .zones
            .iter()
            .filter(|z| name.is_within(z))
            .max_by_key(|z| z.as_str().len())
            .ok_or_else(|| ProviderError::Rejected(format!("{name} is in no zone of provider {}", self.config.name)))
    }

    async fn read_observed(&self, name: &RecordName, rtype: RecordType) -> Result<Observed, ProviderError> {
        let zone = self.zone_of(name)?;
        let rrsets = self.api.zone_rrsets(zone).await?;
        Ok(observe(&rrsets, name, rtype))
    }

    /// The opt-in API write: pre-read and compare, one PATCH, verify (crate docs).
    async fn apply_via_api(&self, batch: &ChangeBatch) -> Result<(), ProviderError> {
        let capabilities = self.capabilities();
        batch.check(&capabilities)?;
        if !self.config.zones.contains(&batch.zone) {
            return Err(ProviderError::Rejected(format!(
                "zone {} is not configured for {}",
                batch.zone, self.config.name
            )));
        }
        let _serialised = self.api_write.lock().await;
        let before = self.api.zone_rrsets(&batch.zone).await?;
        for change in &batch.changes {
            let now = observe(&before, change.name(), change.expected.rtype);
            if now != change.expected {
                return Err(ProviderError::Conflict(format!(
                    "{} changed since it was read (re-read before writing through the API); nothing was written",
                    change.name()
                )));
            }
            if let Some(live) = &now.ownership
                && live.owner == change.ownership.owner
                && live.epoch > change.ownership.epoch
            {
                return Err(ProviderError::Conflict(format!(
                    "{}: its ownership record was written under leader epoch {}, newer than this writer's {}; \
                     nothing was written",
                    change.name(),
                    live.epoch,
                    change.ownership.epoch
                )));
            }
        }
        self.api.patch_rrsets(&batch.zone, &patch_for(batch, &capabilities)).await?;
        let after = self.api.zone_rrsets(&batch.zone).await.map_err(|e| {
            ProviderError::Ambiguous(format!(
                "the change to zone {} was sent but could not be verified: {e}",
                batch.zone
            ))
        })?;
        verify(batch, &capabilities, &after)
    }
}

/// The observation of `name`/`rtype` in a zone's RRsets.
fn observe(rrsets: &[ApiRrset], name: &RecordName, rtype: RecordType) -> Observed {
    let find = |wanted: &RecordName, rtype: RecordType| {
        rrsets.iter().find(|r| {
            r.rtype.eq_ignore_ascii_case(&rtype.to_string())
                && r.name.trim_end_matches('.').eq_ignore_ascii_case(wanted.as_str().trim_end_matches('.'))
        })
    };
    let records = find(name, rtype).map(|set| {
        let answers = set
            .records
            .iter()
            .filter(|r| !r.disabled)
            .map(|r| Answer { set_id: None, value: canonical(rtype, &r.content), weight: None })
            .collect();
        RecordSet::new(name.clone(), rtype, set.ttl, answers)
    });
    let txt: Vec<String> = find(&name.ownership_name(), RecordType::TXT)
        .map(|set| set.records.iter().filter(|r| !r.disabled).map(|r| txt::unquote(&r.content)).collect())
        .unwrap_or_default();
    Observed::from_parts(name.clone(), rtype, records, &txt)
}

/// A value in the form veer compares: addresses in their canonical text (PowerDNS
/// prints AAAA compressed), names lowercased, TXT unquoted.
fn canonical(rtype: RecordType, content: &str) -> String {
    let content = content.trim();
    match rtype {
        RecordType::A => content.parse::<Ipv4Addr>().map_or_else(|_| content.to_string(), |a| a.to_string()),
        RecordType::AAAA => content.parse::<Ipv6Addr>().map_or_else(|_| content.to_string(), |a| a.to_string()),
        RecordType::CNAME => content.to_ascii_lowercase(),
        RecordType::TXT => txt::unquote(content),
    }
}

/// One PATCH for the whole batch: for each name, REPLACE of its answers and of
/// its ownership TXT.
fn patch_for(batch: &ChangeBatch, capabilities: &Capabilities) -> Vec<RrsetPatch> {
    let mut rrsets = Vec::with_capacity(batch.changes.len() * 2);
    for change in &batch.changes {
        let published = capabilities.published(&change.desired);
        let content = |value: &str| ApiRecord { content: value.to_string(), disabled: false };
        rrsets.push(RrsetPatch {
            name: change.name().to_string(),
            rtype: change.expected.rtype.to_string(),
            ttl: published.ttl,
            changetype: "REPLACE",
            records: published.answers.iter().map(|a| content(&a.value)).collect(),
        });
        rrsets.push(RrsetPatch {
            name: change.name().ownership_name().to_string(),
            rtype: RecordType::TXT.to_string(),
            ttl: published.ttl,
            changetype: "REPLACE",
            records: vec![content(&txt::quote(&change.ownership.encode()))],
        });
    }
    rrsets
}

/// After the PATCH: every name must hold exactly what was written. Anything else
/// means another writer came in right after us.
fn verify(batch: &ChangeBatch, capabilities: &Capabilities, after: &[ApiRrset]) -> Result<(), ProviderError> {
    for change in &batch.changes {
        let now = observe(after, change.name(), change.expected.rtype);
        let published = capabilities.published(&change.desired);
        let written = RecordSet::new(
            published.name.clone(),
            published.rtype,
            published.ttl,
            published
                .answers
                .iter()
                .map(|a| Answer { value: canonical(published.rtype, &a.value), ..a.clone() })
                .collect(),
        );
        let found = match (&now.ownership, &now.foreign_ownership) {
            (Some(o), _) if *o != change.ownership => Some(o.encode()),
            (None, Some(raw)) => Some(raw.clone()),
            (None, None) => Some("no ownership record".into()),
            _ => None,
        };
        if let Some(found) = found {
            return Err(ProviderError::Conflict(format!(
                "{}: another writer replaced the ownership record right after this write (found {found:?}); \
                 last writer wins through the PowerDNS API",
                change.name()
            )));
        }
        if now.records.as_ref() != Some(&written) {
            return Err(ProviderError::Conflict(format!(
                "{}: another writer changed the answers right after this write; last writer wins through the \
                 PowerDNS API",
                change.name()
            )));
        }
    }
    Ok(())
}

impl Provider for PowerDnsProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn capabilities(&self) -> Capabilities {
        match &self.writer {
            Writer::Rfc2136(inner) => inner.capabilities(),
            Writer::Api => Capabilities {
                weighting: Weighting::SetOnly,
                batch_records_max: self.config.batch_records_max,
                // The PATCH is one transaction, but the check before it is not part
                // of it: the batch as a conditional change is not atomic.
                atomic_batches: false,
                cas: CasPrimitive::PreRead,
                answer_ids: false,
            },
        }
    }

    fn zones(&self) -> &[RecordName] {
        &self.config.zones
    }

    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        Box::pin(self.read_observed(name, rtype))
    }

    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        match &self.writer {
            Writer::Rfc2136(inner) => inner.apply(batch),
            Writer::Api => Box::pin(self.apply_via_api(batch)),
        }
    }
}

#[cfg(test)]
mod tests;
