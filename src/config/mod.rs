//! The controller configuration, `veer.yaml` (ARCHITECTURE.md §6): providers, coordination,
//! admin listener and policy paths, layered with `VEER_*` environment variables.
//!
//! The file is parsed with positions like a policy. Environment layering happens
//! after: `VEER_ADMIN__LISTEN=0.0.0.0:9090` sets `admin.listen` (`__` separates
//! levels, `_` inside a level starts a camelCase word, provider names match with
//! `-` written as `_`). `${NAME}` inside a string value is replaced by that
//! environment variable. Secrets are only ever named (a file or a variable),
//! never written inline: there is no field that could hold one.

mod admin_url;
mod env;

use crate::policy::diagnostic::{Diagnostic, Findings};
use crate::policy::duration::PolicyDuration;
use crate::policy::source::{self, DocumentKind};
use serde::{Deserialize, Serialize};
use serde_saphyr::{Location, Spanned};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use veer_provider::RecordName;

pub use admin_url::{AdminUrl, AdminUrlError};
pub use env::{apply_environment, expand_variables};

/// Environment variables, as a sorted map (tests pass their own).
pub type Environment = BTreeMap<String, String>;

/// The controller configuration document.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ControllerConfig {
    /// Must be `veer/v1`.
    pub api_version: Spanned<String>,
    /// Must be `ControllerConfig`.
    pub kind: Spanned<String>,
    /// Owner id written into ownership records.
    pub cluster_id: Spanned<String>,
    /// This replica's vantage id (default: the host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vantage: Option<Spanned<String>>,
    /// Policy files, folders or globs, relative to this file.
    #[serde(default)]
    pub policies: Vec<Spanned<String>>,
    /// The admin API listener.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Leader election and state store.
    #[serde(default)]
    pub coordination: CoordinationConfig,
    /// DNS providers by name.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
}

/// The admin API listener and its token.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdminConfig {
    /// Listen address (default 127.0.0.1:9090).
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// File holding the bearer token for mutating calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<Spanned<PathBuf>>,
    /// Environment variable holding the bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<Spanned<String>>,
    /// The URL other replicas reach this admin API at (`http://HOST:PORT`); the
    /// leader fetches this replica's vantage report from it. Default: derived from
    /// `listen` when that is a concrete address; required with a shared backend
    /// when `listen` is `0.0.0.0`/`[::]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_url: Option<Spanned<String>>,
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { listen: default_admin_listen(), token_file: None, token_env: None, advertise_url: None }
    }
}

/// Coordination backends (ARCHITECTURE.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// One process, always leader, state in a local file.
    #[default]
    Standalone,
    /// etcd election and keys.
    Etcd,
    /// Kubernetes Lease and ConfigMaps.
    Kubernetes,
}

/// Leader election and the durable store.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CoordinationConfig {
    /// `standalone` (default), `etcd` or `kubernetes`.
    #[serde(default)]
    pub backend: Backend,
    /// standalone: the state file (default `veer-state.json` beside the config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_file: Option<PathBuf>,
    /// etcd settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdConfig>,
    /// kubernetes settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesConfig>,
    /// Lease duration (default 15s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration: Option<Spanned<PolicyDuration>>,
    /// Renew deadline (default 10s), shorter than the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_deadline: Option<Spanned<PolicyDuration>>,
    /// Retry period (default 2s), shorter than the renew deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_period: Option<Spanned<PolicyDuration>>,
    /// Applied plans kept per record in the store's plan history (default 50, at
    /// least 1); the leader deletes older ones after each apply, so the history
    /// cannot grow without bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_keep: Option<Spanned<u32>>,
}

impl CoordinationConfig {
    /// Effective lease duration.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration.as_ref().map_or(Duration::from_secs(15), |d| d.value.get())
    }
    /// Effective renew deadline.
    pub fn renew_deadline(&self) -> Duration {
        self.renew_deadline.as_ref().map_or(Duration::from_secs(10), |d| d.value.get())
    }
    /// Effective retry period.
    pub fn retry_period(&self) -> Duration {
        self.retry_period.as_ref().map_or(Duration::from_secs(2), |d| d.value.get())
    }
    /// Plans kept per record in the history (at least 1).
    pub fn history_keep(&self) -> usize {
        self.history_keep.as_ref().map_or(crate::controller::state::HISTORY_KEEP, |k| k.value.max(1) as usize)
    }
}

/// etcd connection settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EtcdConfig {
    /// Client URLs.
    pub endpoints: Vec<String>,
    /// Key prefix for election and state (default `/veer/<clusterId>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Kubernetes settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesConfig {
    /// Namespace of the Lease and ConfigMaps.
    pub namespace: String,
    /// Lease name (default `veer-leader`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_name: Option<String>,
}

/// DNS provider types (ARCHITECTURE.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderType {
    /// veer's own authoritative server.
    Embedded,
    /// RFC 2136 dynamic update with TSIG (BIND, Knot).
    Rfc2136,
    /// PowerDNS Authoritative.
    Powerdns,
    /// Amazon Route 53.
    Route53,
    /// Cloudflare DNS.
    Cloudflare,
    /// Google Cloud DNS.
    Gcloud,
    /// Azure DNS.
    Azure,
}

/// One provider's settings. Flat; which fields apply depends on `type`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderConfig {
    /// The provider type.
    #[serde(rename = "type")]
    pub kind: Spanned<ProviderType>,
    /// Zones veer manages through this provider.
    pub zones: Spanned<Vec<Spanned<RecordName>>>,
    /// embedded: UDP and TCP listen address (default 127.0.0.1:5353).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<Spanned<SocketAddr>>,
    /// rfc2136 / powerdns: the DNS server receiving updates, `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<Spanned<String>>,
    /// rfc2136 / powerdns: the TSIG key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig: Option<Spanned<TsigConfig>>,
    /// powerdns / cloudflare / route53: API base URL (route53: endpoint override).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<Spanned<String>>,
    /// File holding the API key or token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<Spanned<PathBuf>>,
    /// Environment variable holding the API key or token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<Spanned<String>>,
    /// powerdns: write through the HTTP API (last-writer-wins with a pre-read and
    /// verification, weaker) instead of RFC 2136 with TSIG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_writes: Option<Spanned<bool>>,
    /// route53: AWS region of the API (default us-east-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Spanned<String>>,
    /// route53: named AWS profile (default: the standard credential chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Spanned<String>>,
    /// gcloud: the Google Cloud project of the managed zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<Spanned<String>>,
    /// gcloud: a service-account key file (default: the metadata server, Workload Identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<Spanned<PathBuf>>,
    /// azure: the subscription of the DNS zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<Spanned<String>>,
    /// azure: the resource group of the DNS zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<Spanned<String>>,
    /// azure: directory (tenant) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<Spanned<String>>,
    /// azure: application (client) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Spanned<String>>,
    /// azure: workload identity's projected token file (instead of a client secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_token_file: Option<Spanned<PathBuf>>,
    /// route53: hosted zone ids instead of lookup by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted_zone_ids: Option<Vec<String>>,
    /// Provider API budget (default: route53 5/s, others 20/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Spanned<BudgetConfig>>,
    /// How long a read of a record that nothing wants to change stands in for a
    /// new one (default: every round for servers veer reaches directly, 30 s for
    /// the cloud APIs, whose budgets are shared with every record). A round that
    /// would write always reads again first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync_every: Option<Spanned<PolicyDuration>>,
}

impl ProviderConfig {
    /// Effective resync period: zero (every round) for embedded, rfc2136 and
    /// powerdns; 30 s for the cloud APIs.
    pub fn resync_every(&self) -> Duration {
        self.resync_every.as_ref().map(|d| d.value.get()).unwrap_or(match self.kind.value {
            ProviderType::Embedded | ProviderType::Rfc2136 | ProviderType::Powerdns => Duration::ZERO,
            _ => Duration::from_secs(30),
        })
    }

    /// Effective API budget.
    pub fn budget(&self) -> BudgetConfig {
        self.budget.as_ref().map(|b| b.value.clone()).unwrap_or(match self.kind.value {
            ProviderType::Route53 => BudgetConfig { calls_per_second: 5.0, burst: 5 },
            _ => BudgetConfig { calls_per_second: 20.0, burst: 20 },
        })
    }
}

/// A TSIG key, named by file or environment variable.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TsigConfig {
    /// Key name as the server knows it.
    pub name: String,
    /// `hmac-sha256` or `hmac-sha512`.
    pub algorithm: TsigAlgorithm,
    /// File holding the base64 secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the base64 secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
}

/// TSIG algorithms veer signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TsigAlgorithm {
    /// HMAC-SHA256.
    HmacSha256,
    /// HMAC-SHA512.
    HmacSha512,
}

/// A token bucket: sustained calls per second and burst.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BudgetConfig {
    /// Sustained rate.
    pub calls_per_second: f64,
    /// Bucket size.
    pub burst: u32,
}

/// A controller config with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The file.
    pub path: PathBuf,
    /// The configuration, environment applied.
    pub config: ControllerConfig,
}

impl LoadedConfig {
    /// The folder policy paths are relative to.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The vantage id: configured, or the host name.
    pub fn vantage(&self) -> String {
        self.config.vantage.as_ref().map(|v| v.value.clone()).unwrap_or_else(host_name)
    }

    /// The URL other replicas reach this replica's admin API at: `admin.advertiseUrl`,
    /// else `http://` + `admin.listen` when that is a concrete address; `None`
    /// when listening on every address without an advertised URL.
    pub fn admin_url(&self) -> Option<String> {
        let admin = &self.config.admin;
        match &admin.advertise_url {
            Some(url) => Some(url.value.trim_end_matches('/').to_string()),
            None if admin.listen.ip().is_unspecified() => None,
            None => Some(format!("http://{}", admin.listen)),
        }
    }

    /// The standalone state file, relative paths taken from the config's folder.
    pub fn state_file(&self) -> PathBuf {
        let file = self.config.coordination.state_file.clone().unwrap_or_else(|| "veer-state.json".into());
        self.base_dir().join(file)
    }

    /// Policy path patterns resolved against the config's folder.
    pub fn policy_paths(&self) -> Vec<PathBuf> {
        self.config.policies.iter().map(|p| self.base_dir().join(&p.value)).collect()
    }
}

/// The machine's host name, for the default vantage id.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Reads, parses, layers and checks a controller config file.
pub fn load(path: &Path) -> Result<LoadedConfig, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![Diagnostic::error_in_file(path, format!("cannot read controller config: {e}"))])?;
    let docs = source::split_documents(&text);
    let mut configs = Vec::new();
    for doc in &docs {
        match source::document_kind(path, doc) {
            Ok((DocumentKind::ControllerConfig, _)) => configs.push(doc),
            Ok((other, at)) => {
                return Err(vec![Diagnostic::error_at(
                    path,
                    at,
                    format!("expected kind `ControllerConfig`, found `{}`", other.name()),
                )]);
            }
            Err(d) => return Err(vec![d]),
        }
    }
    let [doc] = configs.as_slice() else {
        return Err(vec![Diagnostic::error_in_file(
            path,
            format!("expected exactly one ControllerConfig document, found {}", configs.len()),
        )]);
    };
    parse(path, doc, &std::env::vars().collect())
}

/// Parses one ControllerConfig document and layers the environment over it.
pub fn parse(path: &Path, doc: &source::DocumentText, env: &Environment) -> Result<LoadedConfig, Vec<Diagnostic>> {
    let expanded = expand_variables(path, doc, env)?;
    let mut config: ControllerConfig = source::parse_document(path, &expanded).map_err(|d| vec![d])?;
    let mut findings = Findings::new(path, config.kind.referenced);
    check(&config, &mut findings);
    if !findings.list.is_empty() {
        return Err(findings.list);
    }
    config = apply_environment(path, config, env)?;
    let mut findings = Findings::new(path, Location::UNKNOWN);
    check(&config, &mut findings);
    if !findings.list.is_empty() {
        return Err(findings.list);
    }
    Ok(LoadedConfig { path: path.to_path_buf(), config })
}

/// Semantic checks of a controller config.
fn check(config: &ControllerConfig, f: &mut Findings<'_>) {
    if config.api_version.value != crate::policy::model::API_VERSION {
        f.error(
            &config.api_version,
            format!("unsupported apiVersion `{}` (expected `veer/v1`)", config.api_version.value),
        );
    }
    if config.cluster_id.value.is_empty() || config.cluster_id.value.contains([';', '=', '"', ' ']) {
        f.error(&config.cluster_id, "clusterId must be non-empty and must not contain `;`, `=`, quotes or spaces");
    }
    let c = &config.coordination;
    for (value, name) in
        [(&c.lease_duration, "leaseDuration"), (&c.renew_deadline, "renewDeadline"), (&c.retry_period, "retryPeriod")]
    {
        if let Some(v) = value.as_ref().filter(|v| v.value.get().is_zero()) {
            f.error(v, format!("{name} must be greater than zero"));
        }
    }
    if let Some(keep) = c.history_keep.as_ref().filter(|k| k.value == 0) {
        f.error(keep, "historyKeep must be at least 1 (the newest plan is always kept)");
    }
    if c.renew_deadline() >= c.lease_duration() {
        let at = c.renew_deadline.as_ref().or(c.lease_duration.as_ref());
        f.error_at(at.map_or(Location::UNKNOWN, |s| s.referenced), "renewDeadline must be shorter than leaseDuration");
    }
    if c.retry_period() >= c.renew_deadline() {
        let at = c.retry_period.as_ref().or(c.renew_deadline.as_ref());
        f.error_at(at.map_or(Location::UNKNOWN, |s| s.referenced), "retryPeriod must be shorter than renewDeadline");
    }
    match c.backend {
        Backend::Etcd if c.etcd.as_ref().is_none_or(|e| e.endpoints.is_empty()) => {
            f.error(&config.kind, "coordination.backend is etcd but coordination.etcd.endpoints is missing or empty")
        }
        Backend::Kubernetes if c.kubernetes.is_none() => {
            f.error(&config.kind, "coordination.backend is kubernetes but coordination.kubernetes is missing")
        }
        _ => {}
    }
    if let (Some(file), Some(_)) = (&config.admin.token_file, &config.admin.token_env) {
        f.error(file, "give admin.tokenFile or admin.tokenEnv, not both");
    }
    check_advertise_url(config, f);
    for (name, provider) in &config.providers {
        check_provider(name, provider, f);
    }
}

/// `admin.advertiseUrl` is a plain `http://HOST[:PORT]` (the admin API serves
/// HTTP), and replicas sharing a store must be reachable by the leader.
fn check_advertise_url(config: &ControllerConfig, f: &mut Findings<'_>) {
    let admin = &config.admin;
    match &admin.advertise_url {
        Some(url) => {
            if let Err(why) = AdminUrl::parse(&url.value) {
                f.error(url, format!("admin.advertiseUrl: {why}"));
            }
        }
        None if admin.listen.ip().is_unspecified() && config.coordination.backend != Backend::Standalone => f.error(
            &config.kind,
            format!(
                "admin.advertiseUrl is required when admin.listen is {} with a shared coordination backend: \
                 the leader fetches each replica's vantage report from it (e.g. `advertiseUrl: http://${{POD_IP}}:{}`)",
                admin.listen,
                admin.listen.port()
            ),
        ),
        None => {}
    }
}

fn check_provider(name: &str, p: &ProviderConfig, f: &mut Findings<'_>) {
    use ProviderType::*;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        f.error(&p.kind, format!("provider name {name:?} may hold only letters, digits, `-` and `_`"));
    }
    if p.zones.value.is_empty() {
        f.error(&p.zones, format!("provider `{name}` needs at least one zone"));
    }
    let kind = p.kind.value;
    let allowed = |field: &str| -> bool {
        match field {
            "listen" => kind == Embedded,
            "server" | "tsig" => matches!(kind, Rfc2136 | Powerdns),
            "apiUrl" => matches!(kind, Powerdns | Route53 | Cloudflare | Gcloud | Azure),
            "apiKey" => matches!(kind, Powerdns | Cloudflare | Azure),
            _ => true,
        }
    };
    let given: [(&str, Option<Location>); 6] = [
        ("listen", p.listen.as_ref().map(|v| v.referenced)),
        ("server", p.server.as_ref().map(|v| v.referenced)),
        ("tsig", p.tsig.as_ref().map(|v| v.referenced)),
        ("apiUrl", p.api_url.as_ref().map(|v| v.referenced)),
        ("apiKey", p.api_key_file.as_ref().map(|v| v.referenced)),
        ("apiKey", p.api_key_env.as_ref().map(|v| v.referenced)),
    ];
    for (field, at) in given {
        if let Some(at) = at.filter(|_| !allowed(field)) {
            f.error_at(at, format!("`{field}` does not apply to a provider of type {}", type_name(kind)));
        }
    }
    if kind == Rfc2136 && p.server.is_none() {
        f.error(&p.kind, format!("provider `{name}` of type rfc2136 needs `server`"));
    }
    let only = |field: &str, at: Option<Location>, applies: ProviderType, f: &mut Findings<'_>| {
        if let Some(at) = at.filter(|_| kind != applies) {
            f.error_at(at, format!("`{field}` does not apply to a provider of type {}", type_name(kind)));
        }
    };
    only("region", p.region.as_ref().map(|v| v.referenced), Route53, f);
    only("profile", p.profile.as_ref().map(|v| v.referenced), Route53, f);
    only("project", p.project.as_ref().map(|v| v.referenced), Gcloud, f);
    only("credentialsFile", p.credentials_file.as_ref().map(|v| v.referenced), Gcloud, f);
    only("subscriptionId", p.subscription_id.as_ref().map(|v| v.referenced), Azure, f);
    only("resourceGroup", p.resource_group.as_ref().map(|v| v.referenced), Azure, f);
    only("tenantId", p.tenant_id.as_ref().map(|v| v.referenced), Azure, f);
    only("clientId", p.client_id.as_ref().map(|v| v.referenced), Azure, f);
    only("federatedTokenFile", p.federated_token_file.as_ref().map(|v| v.referenced), Azure, f);
    if kind == Gcloud && p.project.is_none() {
        f.error(&p.kind, format!("provider `{name}` of type gcloud needs `project`"));
    }
    if kind == Azure {
        for (field, missing) in [
            ("subscriptionId", p.subscription_id.is_none()),
            ("resourceGroup", p.resource_group.is_none()),
            ("tenantId", p.tenant_id.is_none()),
            ("clientId", p.client_id.is_none()),
        ] {
            if missing {
                f.error(&p.kind, format!("provider `{name}` of type azure needs `{field}`"));
            }
        }
        let secret = p.api_key_file.is_some() || p.api_key_env.is_some();
        if secret == p.federated_token_file.is_some() {
            f.error(&p.kind, format!("provider `{name}` of type azure needs a client secret (`apiKeyFile`/`apiKeyEnv`) or `federatedTokenFile`, not both"));
        }
    }
    if kind == Cloudflare && p.api_key_file.is_none() && p.api_key_env.is_none() {
        f.error(
            &p.kind,
            format!("provider `{name}` of type cloudflare needs `apiKeyFile` or `apiKeyEnv` (the API token)"),
        );
    }
    if let Some(w) = p.api_writes.as_ref().filter(|_| kind != Powerdns) {
        f.error(w, format!("`apiWrites` does not apply to a provider of type {}", type_name(kind)));
    }
    let api_writes = p.api_writes.as_ref().is_some_and(|w| w.value);
    if kind == Powerdns && !api_writes && (p.server.is_none() || p.tsig.is_none()) {
        f.error(&p.kind, format!("provider `{name}` of type powerdns writes by RFC 2136: it needs `server` and `tsig` (or `apiWrites: true`)"));
    }
    if kind == Powerdns && p.api_url.is_none() {
        f.error(&p.kind, format!("provider `{name}` of type powerdns needs `apiUrl`"));
    }
    if kind == Powerdns && p.api_key_file.is_none() && p.api_key_env.is_none() {
        f.error(&p.kind, format!("provider `{name}` of type powerdns needs `apiKeyFile` or `apiKeyEnv`"));
    }
    if kind == Rfc2136 && p.tsig.is_none() {
        f.error(&p.kind, format!("provider `{name}` of type rfc2136 needs `tsig` (updates are always signed)"));
    }
    if let Some(tsig) = p.tsig.as_ref().filter(|t| t.value.secret_file.is_some() == t.value.secret_env.is_some()) {
        f.error(tsig, "tsig needs exactly one of secretFile or secretEnv");
    }
    if let (Some(file), Some(_)) = (&p.api_key_file, &p.api_key_env) {
        f.error(file, "give apiKeyFile or apiKeyEnv, not both");
    }
    let bad_budget = |b: &&Spanned<BudgetConfig>| {
        !(b.value.calls_per_second > 0.0 && b.value.calls_per_second.is_finite()) || b.value.burst == 0
    };
    if let Some(b) = p.budget.as_ref().filter(bad_budget) {
        f.error(b, "budget needs callsPerSecond > 0 and burst ≥ 1");
    }
}

fn type_name(kind: ProviderType) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::source::split_documents;

    const TEXT: &str = "apiVersion: veer/v1
kind: ControllerConfig
clusterId: c1
vantage: ${POD:-v-default}
providers:
  lab-bind:
    type: rfc2136
    server: 127.0.0.1:53
    zones: [example.test.]
    tsig: { name: k, algorithm: hmac-sha256, secretEnv: TSIG }
";

    fn parse_with(text: &str, env: &[(&str, &str)]) -> Result<LoadedConfig, Vec<Diagnostic>> {
        let env: Environment = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let docs = split_documents(text);
        parse(Path::new("veer.yaml"), &docs[0], &env)
    }

    #[test]
    fn environment_variables_override_nested_settings() {
        let c = parse_with(
            TEXT,
            &[
                ("VEER_ADMIN__LISTEN", "0.0.0.0:9999"),
                ("VEER_PROVIDERS__LAB_BIND__SERVER", "10.0.0.53:53"),
                ("VEER_COORDINATION__RENEW_DEADLINE", "5s"),
                ("VEER_SERVER", "http://ignored-by-config"),
            ],
        )
        .unwrap();
        assert_eq!(c.config.admin.listen.to_string(), "0.0.0.0:9999");
        assert_eq!(c.config.providers["lab-bind"].server.as_ref().unwrap().value, "10.0.0.53:53");
        assert_eq!(c.config.coordination.renew_deadline(), Duration::from_secs(5));
        assert_eq!(c.vantage(), "v-default");
    }

    #[test]
    fn variables_in_the_file_are_expanded() {
        let c = parse_with(TEXT, &[("POD", "veer-2")]).unwrap();
        assert_eq!(c.vantage(), "veer-2");
    }

    #[test]
    fn an_invalid_environment_value_is_reported_with_its_variable() {
        let errors = parse_with(TEXT, &[("VEER_ADMIN__LISTEN", "not-an-address")]).unwrap_err();
        assert!(errors[0].message.contains("VEER_ADMIN__LISTEN"), "{errors:?}");
    }

    #[test]
    fn an_inline_secret_is_an_unknown_field() {
        let text = TEXT.replace("secretEnv: TSIG", "secret: c2VjcmV0");
        let errors = parse_with(&text, &[]).unwrap_err();
        assert_eq!((errors[0].line, errors[0].message.starts_with("unknown field `secret`")), (10, true), "{errors:?}");
    }

    #[test]
    fn lease_timings_must_nest() {
        let text = format!("{TEXT}coordination:\n  renewDeadline: 20s\n");
        let errors = parse_with(&text, &[]).unwrap_err();
        assert_eq!(errors[0].to_string(), "veer.yaml:12:18: error: renewDeadline must be shorter than leaseDuration");
    }

    #[test]
    fn the_plan_history_keeps_fifty_plans_unless_told_and_at_least_one() {
        assert_eq!(parse_with(TEXT, &[]).unwrap().config.coordination.history_keep(), 50);
        let c = parse_with(TEXT, &[("VEER_COORDINATION__HISTORY_KEEP", "3")]).unwrap();
        assert_eq!(c.config.coordination.history_keep(), 3);
        let errors = parse_with(&format!("{TEXT}coordination:\n  historyKeep: 0\n"), &[]).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "veer.yaml:12:16: error: historyKeep must be at least 1 (the newest plan is always kept)"
        );
    }

    #[test]
    fn rfc2136_needs_a_server_and_a_key() {
        let text = TEXT
            .replace("    server: 127.0.0.1:53\n", "")
            .replace("    tsig: { name: k, algorithm: hmac-sha256, secretEnv: TSIG }\n", "    listen: 127.0.0.1:53\n");
        let lines: Vec<String> = parse_with(&text, &[]).unwrap_err().iter().map(|d| d.to_string()).collect();
        assert!(
            lines.iter().any(|l| l.ends_with("`listen` does not apply to a provider of type rfc2136")),
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l.contains("needs `server`")), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("needs `tsig`")), "{lines:?}");
    }

    #[test]
    fn the_advertised_admin_url_is_derived_from_a_concrete_listen_address_or_required() {
        let c = parse_with(&format!("{TEXT}admin: {{ listen: 127.0.0.2:9191 }}\n"), &[]).unwrap();
        assert_eq!(c.admin_url().as_deref(), Some("http://127.0.0.2:9191"));
        let c = parse_with(&format!("{TEXT}admin: {{ listen: \"[::1]:9191\" }}\n"), &[]).unwrap();
        assert_eq!(c.admin_url().as_deref(), Some("http://[::1]:9191"));
        let everywhere = format!("{TEXT}admin: {{ listen: 0.0.0.0:9090 }}\n");
        assert_eq!(parse_with(&everywhere, &[]).unwrap().admin_url(), None, "standalone needs none");
        let shared =
            [("VEER_COORDINATION__BACKEND", "etcd"), ("VEER_COORDINATION__ETCD__ENDPOINTS", "[http://e:2379]")];
        let errors = parse_with(&everywhere, &shared).unwrap_err();
        assert!(errors[0].message.starts_with("admin.advertiseUrl is required when admin.listen is 0.0.0.0:9090"));
        assert!(errors[0].message.contains("http://${POD_IP}:9090"), "{errors:?}");
        let advertised = format!("{TEXT}admin: {{ listen: 0.0.0.0:9090, advertiseUrl: \"http://${{IP}}:9090/\" }}\n");
        let c =
            parse_with(&advertised, &[("IP", "10.1.2.3")].iter().copied().chain(shared).collect::<Vec<_>>()).unwrap();
        assert_eq!(c.admin_url().as_deref(), Some("http://10.1.2.3:9090"));
        let https = format!("{TEXT}admin: {{ advertiseUrl: \"https://veer-0:9090\" }}\n");
        let errors = parse_with(&https, &[]).unwrap_err();
        assert_eq!(errors[0].line, 11, "{errors:?}");
        assert!(errors[0].message.contains("must start with http://"), "{errors:?}");
    }

    #[test]
    fn cloud_providers_need_their_identity_settings_and_refuse_others() {
        let text = "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: c1\nproviders:\n  \
                    g:\n    type: gcloud\n    zones: [example.test.]\n    region: us-east-1\n  \
                    a:\n    type: azure\n    zones: [example.test.]\n    tenantId: t\n  \
                    c:\n    type: cloudflare\n    zones: [example.test.]\n";
        let lines: Vec<String> = parse_with(text, &[]).unwrap_err().iter().map(|d| d.to_string()).collect();
        for expected in [
            "veer.yaml:8:13: error: `region` does not apply to a provider of type gcloud",
            "provider `g` of type gcloud needs `project`",
            "provider `a` of type azure needs `subscriptionId`",
            "provider `a` of type azure needs a client secret (`apiKeyFile`/`apiKeyEnv`) or `federatedTokenFile`, not both",
            "provider `c` of type cloudflare needs `apiKeyFile` or `apiKeyEnv` (the API token)",
        ] {
            assert!(lines.iter().any(|l| l.contains(expected)), "missing {expected:?} in {lines:#?}");
        }
    }
}
