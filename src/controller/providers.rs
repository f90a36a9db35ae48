//! Builds the configured providers: reads their secrets (files or environment
//! variables, never inline), starts embedded servers, sets up the ones that need
//! the network (a failure there does not stop the process: the provider is
//! deferred and retried), and wraps every provider in
//! the API budget and the one retry layer ([`Resilient`]). On a game day
//! (`veer run --chaos`) the faults go innermost, around the raw provider, so the
//! metrics count them and the retry layer handles them as real failures:
//! `Resilient(Metered(Chaotic(provider)))`.

use crate::config::{LoadedConfig, ProviderConfig, ProviderType, TsigAlgorithm};
use crate::metrics::Metrics;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use veer_provider::{ApiBudget, BudgetConfig, Provider, RecordName, Resilient, RetryBudget, RetryPolicy};
use veer_provider_embedded::{EmbeddedProvider, EmbeddedServer, ServerConfig, Store, ZoneConfig};
use veer_provider_powerdns::{ApiKey, PowerDnsConfig, PowerDnsProvider, WriteMode};
use veer_provider_rfc2136::{Rfc2136Config, Rfc2136Provider, TsigKey};

/// Why a provider could not be set up. Messages name files and variables, never secrets.
#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    /// A secret file could not be read.
    #[error("provider `{provider}`: cannot read secret file {path}: {source}")]
    SecretFile {
        /// Provider name.
        provider: String,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A secret variable is unset or empty.
    #[error("provider `{provider}`: environment variable `{variable}` is not set")]
    SecretEnv {
        /// Provider name.
        provider: String,
        /// The variable.
        variable: String,
    },
    /// The provider's settings are unusable.
    #[error("provider `{provider}`: {message}")]
    Config {
        /// Provider name.
        provider: String,
        /// What is wrong.
        message: String,
    },
    /// The embedded server could not listen.
    #[error("provider `{provider}`: cannot listen on {listen}: {source}")]
    Listen {
        /// Provider name.
        provider: String,
        /// The address.
        listen: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The providers of one controller, ready for the enactor.
pub struct ProviderSet {
    /// Each provider behind its budget and retry layer, by configured name.
    pub providers: BTreeMap<String, Arc<dyn Provider>>,
    /// Stores of embedded providers, by name (the servers answer from them).
    pub embedded: BTreeMap<String, Arc<Store>>,
    /// Running embedded servers; dropping the set stops them.
    pub servers: Vec<EmbeddedServer>,
    /// Each provider's API budget, by name (for the budget-wait metric).
    pub budgets: BTreeMap<String, Arc<ApiBudget>>,
}

/// How a provider whose setup needs the network is built, again and again until
/// it succeeds.
type Connect = Box<
    dyn Fn()
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Arc<dyn Provider>, ProviderSetupError>> + Send>>
        + Send
        + Sync,
>;

/// How long setting a provider up (name resolution, zone lookup) may take at start
/// before the process goes on without it.
const CONNECT_AT_START: std::time::Duration = std::time::Duration::from_secs(5);

/// A provider whose setup needs the network (server name resolution, Route 53
/// zone lookup) and failed at start: the process runs without it, and each call
/// tries the setup again (the rounds' backoff paces the tries). Until it is set up
/// its calls fail as unavailable, so only its own units wait.
struct Deferred {
    name: String,
    zones: Vec<RecordName>,
    connect: Connect,
    built: tokio::sync::OnceCell<Arc<dyn Provider>>,
}

impl Deferred {
    async fn inner(&self) -> Result<&Arc<dyn Provider>, veer_provider::ProviderError> {
        self.built
            .get_or_try_init(|| async {
                let connected = tokio::time::timeout(CONNECT_AT_START, (self.connect)()).await;
                match connected {
                    Ok(Ok(provider)) => {
                        tracing::info!(provider = %self.name, "provider set up");
                        Ok(provider)
                    }
                    Ok(Err(e)) => Err(veer_provider::ProviderError::Unavailable(format!("not set up: {e}"))),
                    Err(_) => Err(veer_provider::ProviderError::Unavailable(format!(
                        "not set up: no answer within {CONNECT_AT_START:?}"
                    ))),
                }
            })
            .await
    }
}

impl Provider for Deferred {
    fn name(&self) -> &str {
        &self.name
    }

    /// The real provider's once set up; until then a conservative set-only shape
    /// (nothing is planned for it without a read, which needs it set up).
    fn capabilities(&self) -> veer_provider::Capabilities {
        match self.built.get() {
            Some(inner) => inner.capabilities(),
            None => veer_provider::Capabilities {
                weighting: veer_provider::Weighting::SetOnly,
                batch_records_max: 2,
                atomic_batches: false,
                cas: veer_provider::CasPrimitive::PreRead,
                answer_ids: false,
            },
        }
    }

    fn zones(&self) -> &[RecordName] {
        &self.zones
    }

    fn read<'a>(
        &'a self,
        name: &'a RecordName,
        rtype: veer_provider::RecordType,
    ) -> veer_provider::ProviderFuture<'a, veer_provider::Observed> {
        Box::pin(async move { self.inner().await?.read(name, rtype).await })
    }

    fn apply<'a>(&'a self, batch: &'a veer_provider::ChangeBatch) -> veer_provider::ProviderFuture<'a, ()> {
        Box::pin(async move { self.inner().await?.apply(batch).await })
    }
}

/// Sets up a provider that needs the network; when that fails for a reason other
/// than a missing secret, returns a [`Deferred`] provider that keeps trying.
async fn connect_or_defer(
    name: &str,
    zones: Vec<RecordName>,
    connect: Connect,
) -> Result<Arc<dyn Provider>, ProviderSetupError> {
    match tokio::time::timeout(CONNECT_AT_START, connect()).await {
        Ok(Ok(provider)) => Ok(provider),
        Ok(Err(e @ (ProviderSetupError::SecretFile { .. } | ProviderSetupError::SecretEnv { .. }))) => Err(e),
        outcome => {
            let why = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer within {CONNECT_AT_START:?}"),
            };
            tracing::warn!(provider = name, error = %why, "provider unavailable at start: running without it, retried with backoff");
            Ok(Arc::new(Deferred { name: name.to_string(), zones, connect, built: Default::default() }))
        }
    }
}

/// Counts a provider's real calls (inside the budget and retry layer) and its
/// throttled answers in the metrics.
struct Metered {
    inner: Arc<dyn Provider>,
    metrics: Metrics,
}

impl Metered {
    fn count<T>(&self, operation: &'static str, result: &Result<T, veer_provider::ProviderError>) {
        let provider = self.inner.name().to_string();
        self.metrics
            .provider_calls
            .get_or_create(&vec![("provider", provider.clone()), ("operation", operation.into())])
            .inc();
        if matches!(result, Err(veer_provider::ProviderError::Throttled { .. })) {
            self.metrics.provider_throttled.get_or_create(&vec![("provider", provider)]).inc();
        }
    }
}

impl veer_provider::ProviderWrapper for Metered {
    fn inner(&self) -> &dyn Provider {
        &*self.inner
    }
    fn read<'a>(
        &'a self,
        name: &'a RecordName,
        rtype: veer_provider::RecordType,
    ) -> veer_provider::ProviderFuture<'a, veer_provider::Observed> {
        Box::pin(async move {
            let result = self.inner.read(name, rtype).await;
            self.count("read", &result);
            result
        })
    }
    fn apply<'a>(&'a self, batch: &'a veer_provider::ChangeBatch) -> veer_provider::ProviderFuture<'a, ()> {
        Box::pin(async move {
            let result = self.inner.apply(batch).await;
            self.count("write", &result);
            result
        })
    }
}

/// Reads a secret named by file or environment variable.
fn secret(base: &Path, provider: &str, file: Option<&Path>, env: Option<&str>) -> Result<String, ProviderSetupError> {
    if let Some(path) = file {
        // Relative paths are taken from the controller config's folder, like policies.
        let path = &base.join(path);
        return std::fs::read_to_string(path).map(|s| s.trim().to_string()).map_err(|source| {
            ProviderSetupError::SecretFile { provider: provider.into(), path: path.display().to_string(), source }
        });
    }
    let variable = env.unwrap_or_default();
    std::env::var(variable)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ProviderSetupError::SecretEnv { provider: provider.into(), variable: variable.into() })
}

fn budget_of(config: &ProviderConfig) -> BudgetConfig {
    let b = config.budget();
    BudgetConfig { calls_per_second: b.calls_per_second, burst: b.burst }
}

fn zones_of(config: &ProviderConfig) -> Vec<RecordName> {
    config.zones.value.iter().map(|z| z.value.clone()).collect()
}

/// Builds every configured provider. With `serve_embedded`, embedded providers
/// start their DNS servers; without it (`veer plan`) they are in-memory only.
pub async fn build(
    config: &LoadedConfig,
    serve_embedded: bool,
    metrics: &Metrics,
) -> Result<ProviderSet, ProviderSetupError> {
    build_with_chaos(config, serve_embedded, metrics, None).await
}

/// [`build`], with `chaos`'s faults injected into the providers it names.
pub async fn build_with_chaos(
    config: &LoadedConfig,
    serve_embedded: bool,
    metrics: &Metrics,
    chaos: Option<&crate::chaos::ChaosPlan>,
) -> Result<ProviderSet, ProviderSetupError> {
    let mut set = ProviderSet {
        providers: BTreeMap::new(),
        embedded: BTreeMap::new(),
        servers: Vec::new(),
        budgets: BTreeMap::new(),
    };
    let base = config.base_dir();
    for (name, provider) in &config.config.providers {
        let inner: Arc<dyn Provider> = match provider.kind.value {
            ProviderType::Embedded => {
                let store = Arc::new(Store::new(zones_of(provider).into_iter().map(ZoneConfig::new).collect(), 1));
                if serve_embedded {
                    let listen =
                        provider.listen.as_ref().map_or_else(|| "127.0.0.1:5353".parse().unwrap(), |l| l.value);
                    let server =
                        EmbeddedServer::start(store.clone(), ServerConfig { listen, ..ServerConfig::default() })
                            .await
                            .map_err(|source| ProviderSetupError::Listen {
                                provider: name.clone(),
                                listen: listen.to_string(),
                                source,
                            })?;
                    set.servers.push(server);
                }
                set.embedded.insert(name.clone(), store.clone());
                Arc::new(EmbeddedProvider::new(name.clone(), store))
            }
            ProviderType::Rfc2136 | ProviderType::Powerdns | ProviderType::Route53 => {
                let zones = zones_of(provider);
                let (owned_name, owned_base, owned_provider) = (name.clone(), base.to_path_buf(), provider.clone());
                let connect: Connect = Box::new(move || {
                    let (name, base, provider) = (owned_name.clone(), owned_base.clone(), owned_provider.clone());
                    Box::pin(async move {
                        Ok(match provider.kind.value {
                            ProviderType::Rfc2136 => {
                                Arc::new(rfc2136(&name, &base, &provider).await?) as Arc<dyn Provider>
                            }
                            ProviderType::Powerdns => Arc::new(powerdns(&name, &base, &provider).await?),
                            _ => Arc::new(route53(&name, &provider).await?),
                        })
                    })
                });
                connect_or_defer(name, zones, connect).await?
            }
            ProviderType::Cloudflare => Arc::new(cloudflare(name, base, provider)?),
            ProviderType::Gcloud => Arc::new(gcloud(name, base, provider)?),
            ProviderType::Azure => Arc::new(azure(name, base, provider)?),
        };
        let budget = Arc::new(
            ApiBudget::new(budget_of(provider))
                .map_err(|e| ProviderSetupError::Config { provider: name.clone(), message: e.to_string() })?,
        );
        set.budgets.insert(name.clone(), budget.clone());
        // Series exist from the start (at zero), so dashboards and alerts see them.
        for operation in ["read", "write"] {
            let _ = metrics
                .provider_calls
                .get_or_create(&vec![("provider", name.clone()), ("operation", operation.into())]);
        }
        let _ = metrics.provider_throttled.get_or_create(&vec![("provider", name.clone())]);
        let _ = metrics.provider_budget_wait.get_or_create(&vec![("provider", name.clone())]);
        let inner = match chaos {
            Some(plan) => plan.wrap(name, inner),
            None => inner,
        };
        let inner: Arc<dyn Provider> = Arc::new(Metered { inner, metrics: metrics.clone() });
        let seed = name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let resilient = Resilient::new(inner, budget, RetryPolicy::default(), Arc::new(RetryBudget::default()), seed);
        set.providers.insert(name.clone(), Arc::new(resilient));
    }
    Ok(set)
}

/// The server address and TSIG key of an RFC 2136 writer (rfc2136, powerdns).
async fn update_target(
    name: &str,
    base: &Path,
    provider: &ProviderConfig,
) -> Result<(std::net::SocketAddr, TsigKey), ProviderSetupError> {
    let config_error = |message: String| ProviderSetupError::Config { provider: name.into(), message };
    let server_text =
        provider.server.as_ref().map(|s| s.value.clone()).ok_or_else(|| config_error("needs `server`".into()))?;
    let server = tokio::net::lookup_host(&server_text)
        .await
        .map_err(|e| config_error(format!("cannot resolve server {server_text}: {e}")))?
        .next()
        .ok_or_else(|| config_error(format!("server {server_text} resolves to no address")))?;
    let tsig = provider.tsig.as_ref().map(|t| &t.value).ok_or_else(|| config_error("needs `tsig`".into()))?;
    let secret = secret(base, name, tsig.secret_file.as_deref(), tsig.secret_env.as_deref())?;
    let algorithm = match tsig.algorithm {
        TsigAlgorithm::HmacSha256 => veer_provider_rfc2136::TsigAlgorithm::HmacSha256,
        TsigAlgorithm::HmacSha512 => veer_provider_rfc2136::TsigAlgorithm::HmacSha512,
    };
    let key = TsigKey::from_base64(&tsig.name, algorithm, &secret).map_err(|e| config_error(e.to_string()))?;
    Ok((server, key))
}

async fn rfc2136(name: &str, base: &Path, provider: &ProviderConfig) -> Result<Rfc2136Provider, ProviderSetupError> {
    let (server, key) = update_target(name, base, provider).await?;
    Rfc2136Provider::new(Rfc2136Config::new(name, server, zones_of(provider), key))
        .map_err(|e| ProviderSetupError::Config { provider: name.into(), message: e.to_string() })
}

async fn powerdns(name: &str, base: &Path, provider: &ProviderConfig) -> Result<PowerDnsProvider, ProviderSetupError> {
    let config_error = |message: String| ProviderSetupError::Config { provider: name.into(), message };
    let api_url =
        provider.api_url.as_ref().map(|u| u.value.clone()).ok_or_else(|| config_error("needs `apiUrl`".into()))?;
    let key = secret(
        base,
        name,
        provider.api_key_file.as_ref().map(|f| f.value.as_path()),
        provider.api_key_env.as_ref().map(|e| e.value.as_str()),
    )?;
    let api_key = ApiKey::new(key).map_err(|e| config_error(e.to_string()))?;
    let writes = if provider.api_writes.as_ref().is_some_and(|w| w.value) {
        WriteMode::ApiLastWriterWins
    } else {
        let (server, key) = update_target(name, base, provider).await?;
        WriteMode::Rfc2136 { server, key }
    };
    PowerDnsProvider::new(PowerDnsConfig::new(name, api_url, api_key, zones_of(provider), writes))
        .map_err(|e| config_error(e.to_string()))
}

async fn route53(
    name: &str,
    provider: &ProviderConfig,
) -> Result<veer_provider_route53::Route53Provider, ProviderSetupError> {
    let config = veer_provider_route53::Route53Config {
        zones: zones_of(provider),
        hosted_zone_ids: provider.hosted_zone_ids.clone().unwrap_or_default(),
        endpoint_url: provider.api_url.as_ref().map(|u| u.value.clone()),
        region: provider.region.as_ref().map(|r| r.value.clone()),
        profile: provider.profile.as_ref().map(|p| p.value.clone()),
        // An apply returns once Route 53 accepted the change: waiting for INSYNC
        // (a minute or more) would keep the provider busy, and the next round's read
        // confirms the write. Propagation to Route 53's servers is Route 53's job.
        insync: veer_provider_route53::InsyncWait { enabled: false, ..Default::default() },
        ..veer_provider_route53::Route53Config::default()
    };
    veer_provider_route53::Route53Provider::connect(name, config)
        .await
        .map_err(|e| ProviderSetupError::Config { provider: name.into(), message: e.to_string() })
}

fn cloudflare(
    name: &str,
    base: &Path,
    provider: &ProviderConfig,
) -> Result<veer_provider_cloudflare::CloudflareProvider, ProviderSetupError> {
    let token = secret(
        base,
        name,
        provider.api_key_file.as_ref().map(|f| f.value.as_path()),
        provider.api_key_env.as_ref().map(|e| e.value.as_str()),
    )?;
    let mut config = veer_provider_cloudflare::CloudflareConfig::new(
        name,
        zones_of(provider),
        veer_provider_cloudflare::Secret::new(token),
    );
    if let Some(url) = &provider.api_url {
        config.endpoint = url.value.clone();
    }
    veer_provider_cloudflare::CloudflareProvider::new(config)
        .map_err(|e| ProviderSetupError::Config { provider: name.into(), message: e.to_string() })
}

fn gcloud(
    name: &str,
    base: &Path,
    provider: &ProviderConfig,
) -> Result<veer_provider_gcloud::GcloudProvider, ProviderSetupError> {
    use veer_provider_gcloud::{DEFAULT_METADATA_ENDPOINT, GcloudConfig, GcloudCredential, ServiceAccountKey};
    let config_error = |message: String| ProviderSetupError::Config { provider: name.into(), message };
    let project =
        provider.project.as_ref().map(|p| p.value.clone()).ok_or_else(|| config_error("needs `project`".into()))?;
    let credential = match &provider.credentials_file {
        Some(file) => {
            let text = secret(base, name, Some(file.value.as_path()), None)?;
            GcloudCredential::ServiceAccountKey(
                ServiceAccountKey::from_json(&text).map_err(|e| config_error(e.to_string()))?,
            )
        }
        None => GcloudCredential::MetadataServer { endpoint: DEFAULT_METADATA_ENDPOINT.into() },
    };
    let mut config = GcloudConfig::new(name, project, zones_of(provider), credential);
    if let Some(url) = &provider.api_url {
        config.endpoint = url.value.clone();
    }
    veer_provider_gcloud::GcloudProvider::new(config).map_err(|e| config_error(e.to_string()))
}

fn azure(
    name: &str,
    base: &Path,
    provider: &ProviderConfig,
) -> Result<veer_provider_azure::AzureProvider, ProviderSetupError> {
    use veer_provider_azure::{AzureConfig, AzureCredential, Secret};
    let config_error = |message: String| ProviderSetupError::Config { provider: name.into(), message };
    let text = |v: &Option<serde_saphyr::Spanned<String>>, field: &str| {
        v.as_ref().map(|v| v.value.clone()).ok_or_else(|| config_error(format!("needs `{field}`")))
    };
    let (tenant_id, client_id) = (text(&provider.tenant_id, "tenantId")?, text(&provider.client_id, "clientId")?);
    let credential = match &provider.federated_token_file {
        Some(file) => AzureCredential::WorkloadIdentity { tenant_id, client_id, token_file: base.join(&file.value) },
        None => {
            let client_secret = secret(
                base,
                name,
                provider.api_key_file.as_ref().map(|f| f.value.as_path()),
                provider.api_key_env.as_ref().map(|e| e.value.as_str()),
            )?;
            AzureCredential::ClientSecret { tenant_id, client_id, client_secret: Secret::new(client_secret) }
        }
    };
    let mut config = AzureConfig::new(
        name,
        zones_of(provider),
        text(&provider.subscription_id, "subscriptionId")?,
        text(&provider.resource_group, "resourceGroup")?,
        credential,
    );
    if let Some(url) = &provider.api_url {
        config.management_endpoint = url.value.clone();
    }
    veer_provider_azure::AzureProvider::new(config).map_err(|e| config_error(e.to_string()))
}
