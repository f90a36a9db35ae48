//! The `kubernetes` backend: a small elector on a `coordination.k8s.io/v1` Lease, state in
//! ConfigMaps labelled for veer.
//!
//! Election. Every change to the Lease is a `replace` carrying the `resourceVersion` last
//! read, so two replicas can never both win a change (the API server answers 409 Conflict to
//! the loser). A follower treats the Lease as expired when its `resourceVersion` has not
//! changed for `leaseDurationSeconds` on the follower's own monotonic clock (never by
//! comparing wall-clock timestamps between machines). Acquisition increments
//! `leaseTransitions` — always, even when the holder name is unchanged (a restarted pod):
//! the epoch is `leaseTransitions` after acquisition. Renewals are `replace`s too: a 409 or a
//! missing Lease means another replica took over, and the tenure ends at once.
//!
//! Store. One ConfigMap per key, named `veer-<lease>-<space>-<sha256(name)[..16]>`, labelled
//! `app.kubernetes.io/managed-by=veer`, `veer.io/store=<lease>`, `veer.io/space=<space>`,
//! `veer.io/part=head`; the full name is in the annotation `veer.io/key`, the [`Entry`] JSON in
//! `data.entry`. Values larger than the per-object budget are split: chunk ConfigMaps
//! (`veer.io/part=chunk`, named after the head and the value's digest) are written first,
//! then the head (`data.chunks`, `data.digest`) switches to them in one update, so readers see
//! the old or the new value, never a mix.
//!
//! Fencing of the store: leader writes stamp the annotation `veer.io/epoch` and are
//! conditional on the `resourceVersion` read; a write finding a greater stamp fails and ends
//! the tenure. On acquisition the new leader stamps every existing leader-only ConfigMap with
//! its epoch (and, should a stamp exceed `leaseTransitions` — a Lease deleted and recreated —
//! raises `leaseTransitions` above it first), so a deposed leader's later write to any
//! existing key fails at the API server. Caveat: a key the deposed leader creates for the
//! first time after that stamping is not fenced server-side; the local fence (renew deadline on
//! the monotonic clock) still stops it.

use super::{CoordError, Coordinator, Entry, Epoch, FenceError, Key, Leadership, LossReason, Space, Writer};
use super::{Jitter, LeaderCell, TenureEvent, Timings, WriteGuard};
use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use kube::{Client, Config};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const STORE: &str = "veer.io/store";
const SPACE: &str = "veer.io/space";
const PART: &str = "veer.io/part";
const KEY: &str = "veer.io/key";
const EPOCH: &str = "veer.io/epoch";
/// Chunks larger than this in total are refused: a value that big does not belong here.
const MAX_CHUNKS: usize = 64;

/// Settings of the Kubernetes backend.
#[derive(Debug, Clone)]
pub struct KubernetesOptions {
    /// Namespace of the Lease and the ConfigMaps.
    pub namespace: String,
    /// Lease name; also names the store (`veer.io/store`).
    pub lease_name: String,
    /// Holder identity: the pod name.
    pub identity: String,
    /// Lease timings.
    pub timings: Timings,
    /// Timeout of one API call.
    pub call_timeout: Duration,
    /// Attempts per store call (conflicts and transient failures).
    pub attempts: u32,
    /// Largest `data` payload in one ConfigMap (the API server's limit for a whole object
    /// is 1 MiB; the default 512 KiB leaves room for metadata).
    pub max_object_bytes: usize,
    /// Jitter seed (default: from the process id and clock).
    pub seed: Option<u64>,
}

impl KubernetesOptions {
    /// Options with defaults.
    pub fn new(namespace: impl Into<String>, lease_name: impl Into<String>, identity: &str, timings: Timings) -> Self {
        Self {
            namespace: namespace.into(),
            lease_name: lease_name.into(),
            identity: identity.to_owned(),
            call_timeout: timings.call_timeout(),
            timings,
            attempts: 5,
            max_object_bytes: 512 * 1024,
            seed: None,
        }
    }
}

/// What this replica knows of the Lease while it holds it.
#[derive(Debug, Clone)]
struct Held {
    epoch: Epoch,
    lease: Lease,
    /// Send time of the last Lease write the API server accepted (acquisition or renewal).
    /// Invariant: never decreases.
    renewed_at: Instant,
}

/// A follower's last observation of another holder's Lease.
#[derive(Debug, Clone)]
struct Observed {
    resource_version: String,
    /// When this replica first saw that `resourceVersion` (monotonic clock).
    since: Instant,
}

#[derive(Debug)]
struct Inner {
    leases: Api<Lease>,
    maps: Api<ConfigMap>,
    options: KubernetesOptions,
    cell: LeaderCell,
    jitter: Jitter,
    held: Mutex<Option<Held>>,
    renewer: Mutex<Option<JoinHandle<()>>>,
    campaigning: tokio::sync::Mutex<()>,
}

/// The Kubernetes coordinator.
#[derive(Debug)]
pub struct KubernetesCoordinator {
    inner: Arc<Inner>,
    ticker: JoinHandle<()>,
}

impl Drop for KubernetesCoordinator {
    fn drop(&mut self) {
        self.ticker.abort();
        if let Some(renewer) = self.inner.renewer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            renewer.abort();
        }
    }
}

/// Installs the aws-lc-rs rustls provider as the process default if none is installed yet:
/// kube's TLS needs one, and with several TLS users in one binary rustls cannot pick one
/// itself (REFERENCE §A).
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing the race to another installer is fine: a provider is installed either way.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

impl KubernetesCoordinator {
    /// In-cluster configuration when running in a pod, else the local kubeconfig.
    pub async fn infer(options: KubernetesOptions) -> Result<Self, CoordError> {
        install_crypto_provider();
        let config = Config::infer().await.map_err(|e| CoordError::backend("kubernetes config", e))?;
        Self::with_config(config, options)
    }

    /// From a kubeconfig file (its current context).
    pub async fn from_kubeconfig(path: &Path, options: KubernetesOptions) -> Result<Self, CoordError> {
        install_crypto_provider();
        let kubeconfig =
            kube::config::Kubeconfig::read_from(path).map_err(|e| CoordError::backend("kubernetes kubeconfig", e))?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| CoordError::backend("kubernetes kubeconfig", e))?;
        Self::with_config(config, options)
    }

    fn with_config(mut config: Config, options: KubernetesOptions) -> Result<Self, CoordError> {
        config.read_timeout = Some(options.call_timeout);
        config.write_timeout = Some(options.call_timeout);
        config.connect_timeout = Some(options.call_timeout);
        let client = Client::try_from(config).map_err(|e| CoordError::backend("kubernetes client", e))?;
        Ok(Self::new(client, options))
    }

    /// From an existing client.
    pub fn new(client: Client, options: KubernetesOptions) -> Self {
        let jitter = options.seed.map_or_else(Jitter::from_entropy, Jitter::new);
        let inner = Arc::new(Inner {
            leases: Api::namespaced(client.clone(), &options.namespace),
            maps: Api::namespaced(client, &options.namespace),
            cell: LeaderCell::new(options.timings),
            options,
            jitter,
            held: Mutex::new(None),
            renewer: Mutex::new(None),
            campaigning: tokio::sync::Mutex::new(()),
        });
        let ticker = tokio::spawn(tick(Arc::downgrade(&inner)));
        Self { inner, ticker }
    }

    /// The ConfigMap name of a key.
    pub fn config_map_name(&self, key: &Key) -> String {
        self.inner.head_name(key)
    }
}

/// Applies the renew deadline even when nothing else runs, and clears the holder of a
/// Lease whose tenure ended (if it still names us), so a successor need not wait it out.
async fn tick(inner: Weak<Inner>) {
    loop {
        let period = match inner.upgrade() {
            Some(inner) => {
                // Only the Lease of the tenure that ended: a campaign may hold a newer one.
                let ended = match inner.cell.current() {
                    Leadership::Lost { epoch, .. } => inner.held().as_ref().is_some_and(|h| h.epoch == epoch),
                    _ => false,
                };
                if ended {
                    inner.give_up().await;
                }
                (inner.options.timings.retry / 4).max(Duration::from_millis(20))
            }
            None => return,
        };
        sleep(period).await;
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == code)
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn epoch_of(meta: &ObjectMeta) -> Option<u64> {
    meta.annotations.as_ref()?.get(EPOCH)?.parse().ok()
}

fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Outcome of one attempt at a conditional store write.
enum Attempt {
    Done,
    Conflict,
}

impl Inner {
    async fn call<T, Fut>(&self, step: &'static str, call: Fut) -> Result<T, CoordError>
    where
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        match timeout(self.options.call_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(CoordError::backend(step, e)),
            Err(_) => Err(CoordError::Timeout { step, after: self.options.call_timeout }),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lease_body(&self, base: Option<&Lease>, holder: Option<&str>, transitions: i32, acquire: bool) -> Lease {
        let mut lease = base.cloned().unwrap_or_else(|| Lease {
            metadata: ObjectMeta {
                name: Some(self.options.lease_name.clone()),
                namespace: Some(self.options.namespace.clone()),
                labels: Some(BTreeMap::from([(MANAGED_BY.to_owned(), "veer".to_owned())])),
                ..ObjectMeta::default()
            },
            spec: None,
        });
        let mut spec = lease.spec.take().unwrap_or_else(LeaseSpec::default);
        spec.holder_identity = holder.map(str::to_owned);
        spec.lease_duration_seconds = Some(self.options.timings.lease_seconds() as i32);
        spec.lease_transitions = Some(transitions);
        spec.renew_time = Some(now_micro());
        if acquire {
            spec.acquire_time = spec.renew_time.clone();
        }
        lease.spec = Some(spec);
        lease
    }

    /// One election round. Returns the epoch if this replica acquired the Lease.
    async fn try_acquire(&self, observed: &mut Option<Observed>) -> Result<Option<Epoch>, CoordError> {
        let sent_at = Instant::now();
        let current = self.call("kubernetes get lease", self.leases.get_opt(&self.options.lease_name)).await?;
        let Some(current) = current else {
            let body = self.lease_body(None, Some(&self.options.identity), 1, true);
            return match timeout(self.options.call_timeout, self.leases.create(&PostParams::default(), &body)).await {
                Ok(Ok(lease)) => Ok(Some(self.acquired(lease, sent_at))),
                Ok(Err(e)) if is_status(&e, 409) => Ok(None),
                Ok(Err(e)) => Err(CoordError::backend("kubernetes create lease", e)),
                Err(_) => {
                    Err(CoordError::Timeout { step: "kubernetes create lease", after: self.options.call_timeout })
                }
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let rv = current.metadata.resource_version.clone().unwrap_or_default();
        // The expiry clock of another holder's record starts when we *received* it: the
        // latest moment its renewal can have happened, so we never wait less than a lease.
        let received_at = Instant::now();
        let free = match &holder {
            None => true,
            Some(h) if *h == self.options.identity => true,
            Some(_) => {
                let seen =
                    observed.get_or_insert_with(|| Observed { resource_version: rv.clone(), since: received_at });
                if seen.resource_version != rv {
                    *seen = Observed { resource_version: rv.clone(), since: received_at };
                }
                let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64);
                Instant::now() >= seen.since + duration
            }
        };
        self.cell.apply(TenureEvent::Observed { leader: holder.clone() }, Instant::now());
        if !free {
            return Ok(None);
        }
        let transitions = spec.lease_transitions.unwrap_or(0).saturating_add(1);
        let body = self.lease_body(Some(&current), Some(&self.options.identity), transitions, true);
        let replaced = timeout(
            self.options.call_timeout,
            self.leases.replace(&self.options.lease_name, &PostParams::default(), &body),
        )
        .await;
        match replaced {
            Ok(Ok(lease)) => Ok(Some(self.acquired(lease, sent_at))),
            Ok(Err(e)) if is_status(&e, 409) || is_status(&e, 404) => Ok(None),
            Ok(Err(e)) => Err(CoordError::backend("kubernetes acquire lease", e)),
            Err(_) => Err(CoordError::Timeout { step: "kubernetes acquire lease", after: self.options.call_timeout }),
        }
    }

    fn acquired(&self, lease: Lease, sent_at: Instant) -> Epoch {
        let epoch = Epoch(lease.spec.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0).max(0) as u64);
        *self.held() = Some(Held { epoch, lease, renewed_at: sent_at });
        epoch
    }

    /// Replaces the held Lease (renewal, transition bump or release). 409/404 → deposed.
    async fn replace_held(&self, body: Lease, step: &'static str) -> Result<Lease, CoordError> {
        match timeout(
            self.options.call_timeout,
            self.leases.replace(&self.options.lease_name, &PostParams::default(), &body),
        )
        .await
        {
            Ok(Ok(lease)) => Ok(lease),
            Ok(Err(e)) if is_status(&e, 409) || is_status(&e, 404) => {
                let epoch = self.held().as_ref().map_or(Epoch(0), |h| h.epoch);
                Err(CoordError::Deposed { epoch })
            }
            Ok(Err(e)) => Err(CoordError::backend(step, e)),
            Err(_) => Err(CoordError::Timeout { step, after: self.options.call_timeout }),
        }
    }

    /// After acquisition: makes sure no stamp exceeds our epoch, raising `leaseTransitions`
    /// if one does. Returns the epoch and the store's head ConfigMaps.
    async fn raise_above_stamps(&self, epoch: Epoch) -> Result<(Epoch, Vec<ConfigMap>), CoordError> {
        let heads = self.list_heads(None).await?;
        let highest = heads.iter().filter_map(|cm| epoch_of(&cm.metadata)).max().unwrap_or(0);
        if highest < epoch.0 {
            return Ok((epoch, heads));
        }
        let held = self.held().clone().ok_or(CoordError::Fenced(FenceError::NotLeader))?;
        let transitions = i32::try_from(highest + 1).map_err(|e| CoordError::Local(e.to_string()))?;
        let body = self.lease_body(Some(&held.lease), Some(&self.options.identity), transitions, false);
        let sent_at = Instant::now();
        let lease = self.replace_held(body, "kubernetes raise lease transitions").await?;
        let epoch = Epoch(highest + 1);
        *self.held() = Some(Held { epoch, lease, renewed_at: held.renewed_at.max(sent_at) });
        Ok((epoch, heads))
    }

    /// Stamps every leader-only head ConfigMap with `epoch` (the renewer keeps the Lease
    /// alive meanwhile: a large store takes a while).
    async fn stamp(&self, epoch: Epoch, heads: Vec<ConfigMap>) -> Result<(), CoordError> {
        for head in heads {
            let leader_only = head.metadata.labels.as_ref().and_then(|l| l.get(SPACE)).and_then(|s| Space::parse(s));
            if !leader_only.is_some_and(Space::leader_only) || epoch_of(&head.metadata).is_some_and(|e| e >= epoch.0) {
                continue;
            }
            let name = head.metadata.name.clone().unwrap_or_default();
            for _ in 0..self.options.attempts {
                let Some(mut cm) = self.call("kubernetes get config map", self.maps.get_opt(&name)).await? else {
                    break;
                };
                if epoch_of(&cm.metadata).is_some_and(|e| e >= epoch.0) {
                    break;
                }
                cm.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(EPOCH.into(), epoch.0.to_string());
                match timeout(self.options.call_timeout, self.maps.replace(&name, &PostParams::default(), &cm)).await {
                    Ok(Ok(_)) => break,
                    Ok(Err(e)) if is_status(&e, 409) => continue,
                    Ok(Err(e)) => return Err(CoordError::backend("kubernetes stamp config map", e)),
                    Err(_) => {
                        return Err(CoordError::Timeout {
                            step: "kubernetes stamp config map",
                            after: self.options.call_timeout,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Turns a fresh acquisition into a tenure: epoch above every stamp, renewer running,
    /// store stamped, then the tenure starts from the last accepted Lease write. `None` if
    /// any step failed or the Lease was lost meanwhile.
    async fn establish(self: &Arc<Self>, epoch: Epoch) -> Option<Epoch> {
        let (epoch, heads) = self.raise_above_stamps(epoch).await.ok()?;
        let renewer = tokio::spawn(renew(Arc::downgrade(self), epoch));
        if let Some(old) = self.renewer.lock().unwrap_or_else(|e| e.into_inner()).replace(renewer) {
            old.abort();
        }
        self.stamp(epoch, heads).await.ok()?;
        let renewed_at = self.held().as_ref().filter(|h| h.epoch == epoch)?.renewed_at;
        self.cell.apply(TenureEvent::Acquired { epoch, sent_at: renewed_at }, Instant::now()).epoch()
    }

    /// Gives the Lease up (holder cleared) so a successor need not wait for it to expire.
    async fn give_up(&self) {
        let held = self.held().take();
        if let Some(renewer) = self.renewer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            renewer.abort();
        }
        if let Some(held) = held {
            self.clear_holder(held).await;
        }
    }

    /// Clears the holder of a Lease we held, conditional on its `resourceVersion` (a 409
    /// means someone else has it already: nothing to give up).
    async fn clear_holder(&self, held: Held) {
        let transitions = held.lease.spec.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0);
        let body = self.lease_body(Some(&held.lease), None, transitions, false);
        let _ = self.replace_held(body, "kubernetes release lease").await;
    }

    fn head_name(&self, key: &Key) -> String {
        let hash = digest(key.name.as_bytes());
        format!("veer-{}-{}-{}", self.options.lease_name, key.space.as_str(), &hash[..16])
    }

    async fn list_heads(&self, space: Option<Space>) -> Result<Vec<ConfigMap>, CoordError> {
        let mut selector = format!("{MANAGED_BY}=veer,{STORE}={},{PART}=head", self.options.lease_name);
        if let Some(space) = space {
            selector.push_str(&format!(",{SPACE}={}", space.as_str()));
        }
        let list =
            self.call("kubernetes list config maps", self.maps.list(&ListParams::default().labels(&selector))).await?;
        Ok(list.items)
    }

    /// Decodes a head ConfigMap, fetching and checking its chunks.
    async fn decode(&self, head: &ConfigMap) -> Result<Entry, CoordError> {
        let data = head.data.clone().unwrap_or_default();
        let bytes = if let Some(entry) = data.get("entry") {
            entry.as_bytes().to_vec()
        } else {
            let chunks: usize = data.get("chunks").and_then(|c| c.parse().ok()).unwrap_or(0);
            let want = data.get("digest").cloned().unwrap_or_default();
            let head_name = head.metadata.name.clone().unwrap_or_default();
            let mut bytes = Vec::new();
            for i in 0..chunks {
                let name = chunk_name(&head_name, &want, i);
                let chunk = self.call("kubernetes get chunk", self.maps.get(&name)).await?;
                bytes.extend_from_slice(chunk.data.unwrap_or_default().get("part").map_or(&[][..], |p| p.as_bytes()));
            }
            if digest(&bytes) != want {
                return Err(CoordError::backend("kubernetes read chunks", format!("digest mismatch in {head_name}")));
            }
            bytes
        };
        serde_json::from_slice(&bytes).map_err(|e| CoordError::backend("kubernetes decode entry", e))
    }

    fn labels(&self, space: Space, part: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_BY.to_owned(), "veer".to_owned()),
            (STORE.to_owned(), self.options.lease_name.clone()),
            (SPACE.to_owned(), space.as_str().to_owned()),
            (PART.to_owned(), part.to_owned()),
        ])
    }

    /// Builds the head's data for `entry`, writing chunk ConfigMaps first when it is large.
    /// Returns the data and the chunk names the head will reference.
    async fn prepare(&self, key: &Key, entry: &Entry) -> Result<(BTreeMap<String, String>, Vec<String>), CoordError> {
        let json = serde_json::to_string(entry).map_err(|e| CoordError::Local(e.to_string()))?;
        let limit = self.options.max_object_bytes.max(1024);
        if json.len() <= limit {
            return Ok((BTreeMap::from([("entry".to_owned(), json)]), Vec::new()));
        }
        let parts = split_utf8(&json, limit);
        if parts.len() > MAX_CHUNKS {
            return Err(CoordError::TooLarge { key: key.path(), size: json.len(), limit: limit * MAX_CHUNKS });
        }
        let sum = digest(json.as_bytes());
        let head = self.head_name(key);
        let mut names = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let name = chunk_name(&head, &sum, i);
            let chunk = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(self.labels(key.space, "chunk")),
                    annotations: Some(BTreeMap::from([(KEY.to_owned(), key.name.clone())])),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([("part".to_owned(), (*part).to_owned())])),
                ..ConfigMap::default()
            };
            match timeout(self.options.call_timeout, self.maps.create(&PostParams::default(), &chunk)).await {
                // Chunks are named by content: one that exists already holds the same bytes.
                Ok(Ok(_)) => {}
                Ok(Err(e)) if is_status(&e, 409) => {}
                Ok(Err(e)) => return Err(CoordError::backend("kubernetes write chunk", e)),
                Err(_) => {
                    return Err(CoordError::Timeout {
                        step: "kubernetes write chunk",
                        after: self.options.call_timeout,
                    });
                }
            }
            names.push(name);
        }
        let data = BTreeMap::from([("chunks".to_owned(), parts.len().to_string()), ("digest".to_owned(), sum)]);
        Ok((data, names))
    }

    /// Chunks a head referenced before it was overwritten or deleted: removed afterwards,
    /// best effort (a leftover chunk is garbage, never read).
    async fn remove_chunks(&self, old: &ConfigMap, keep: &[String]) {
        let data = old.data.clone().unwrap_or_default();
        let (Some(chunks), Some(sum)) = (data.get("chunks"), data.get("digest")) else { return };
        let head = old.metadata.name.clone().unwrap_or_default();
        for i in 0..chunks.parse::<usize>().unwrap_or(0) {
            let name = chunk_name(&head, sum, i);
            if !keep.contains(&name) {
                let _ = timeout(self.options.call_timeout, self.maps.delete(&name, &DeleteParams::default())).await;
            }
        }
    }

    /// One conditional write attempt of `key` (put when `entry` is set, else delete).
    async fn write_once(&self, key: &Key, entry: Option<&Entry>, epoch: Option<Epoch>) -> Result<Attempt, CoordError> {
        let name = self.head_name(key);
        let current = self.call("kubernetes get config map", self.maps.get_opt(&name)).await?;
        if let (Some(epoch), Some(current)) = (epoch, &current)
            && epoch_of(&current.metadata).is_some_and(|stamp| stamp > epoch.0)
        {
            self.cell.apply(TenureEvent::Ended(LossReason::Deposed), Instant::now());
            return Err(CoordError::Deposed { epoch });
        }
        if let Some(epoch) = epoch {
            // Re-checked right before the request leaves: a retry must not outlive the lease.
            let _guard = self.cell.fence(epoch, self.options.call_timeout)?;
        }
        let Some(entry) = entry else {
            let Some(current) = current else { return Ok(Attempt::Done) };
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: current.metadata.resource_version.clone(),
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            return match timeout(self.options.call_timeout, self.maps.delete(&name, &params)).await {
                Ok(Ok(_)) => {
                    self.remove_chunks(&current, &[]).await;
                    Ok(Attempt::Done)
                }
                Ok(Err(e)) if is_status(&e, 404) => Ok(Attempt::Done),
                Ok(Err(e)) if is_status(&e, 409) => Ok(Attempt::Conflict),
                Ok(Err(e)) => Err(CoordError::backend("kubernetes delete config map", e)),
                Err(_) => {
                    Err(CoordError::Timeout { step: "kubernetes delete config map", after: self.options.call_timeout })
                }
            };
        };
        let (data, chunks) = self.prepare(key, entry).await?;
        let mut annotations = current.as_ref().and_then(|c| c.metadata.annotations.clone()).unwrap_or_default();
        annotations.insert(KEY.to_owned(), key.name.clone());
        if let Some(epoch) = epoch {
            annotations.insert(EPOCH.to_owned(), epoch.0.to_string());
        }
        let body = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(self.labels(key.space, "head")),
                annotations: Some(annotations),
                resource_version: current.as_ref().and_then(|c| c.metadata.resource_version.clone()),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..ConfigMap::default()
        };
        let result = match &current {
            Some(_) => {
                timeout(self.options.call_timeout, self.maps.replace(&name, &PostParams::default(), &body)).await
            }
            None => timeout(self.options.call_timeout, self.maps.create(&PostParams::default(), &body)).await,
        };
        match result {
            Ok(Ok(_)) => {
                if let Some(current) = &current {
                    self.remove_chunks(current, &chunks).await;
                }
                Ok(Attempt::Done)
            }
            Ok(Err(e)) if is_status(&e, 409) || is_status(&e, 404) => Ok(Attempt::Conflict),
            Ok(Err(e)) => Err(CoordError::backend("kubernetes write config map", e)),
            Err(_) => {
                Err(CoordError::Timeout { step: "kubernetes write config map", after: self.options.call_timeout })
            }
        }
    }

    async fn write(&self, key: &Key, entry: Option<&Entry>, writer: Writer) -> Result<(), CoordError> {
        let epoch = match writer {
            Writer::Leader(epoch) => {
                let held = self.held().as_ref().map(|h| h.epoch);
                if held != Some(epoch) {
                    return Err(self.cell.fence(epoch, Duration::ZERO).err().unwrap_or(FenceError::NotLeader).into());
                }
                Some(epoch)
            }
            Writer::Replica if key.space.leader_only() => return Err(CoordError::LeaderOnly { space: key.space }),
            Writer::Replica => None,
        };
        let mut last = None;
        for attempt in 0..self.options.attempts.max(1) {
            if attempt > 0 {
                sleep(Duration::from_millis(20).mul_f64(1.0 + self.jitter.unit()) * attempt).await;
            }
            let _guard = match epoch {
                Some(epoch) => Some(self.cell.fence(epoch, self.options.call_timeout)?),
                None => None,
            };
            match self.write_once(key, entry, epoch).await {
                Ok(Attempt::Done) => return Ok(()),
                Ok(Attempt::Conflict) => last = Some(CoordError::backend("kubernetes write", "conflict, retrying")),
                Err(e) if e.is_fenced() => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(CoordError::Stopped))
    }
}

fn chunk_name(head: &str, sum: &str, i: usize) -> String {
    format!("{head}-c{i}-{}", &sum[..12.min(sum.len())])
}

/// Splits `s` into pieces of at most `limit` bytes on character boundaries.
fn split_utf8(s: &str, limit: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let mut end = limit.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        parts.push(&rest[..end]);
        rest = &rest[end..];
    }
    parts
}

/// The holder's renewal loop, from acquisition (while the store is stamped) through the
/// tenure and a graceful release: jittered, each renewal a conditional replace. 409/404 end
/// the tenure at once; other failures are retried until the renew deadline ends it.
async fn renew(inner: Weak<Inner>, epoch: Epoch) {
    loop {
        let Some(this) = inner.upgrade() else { return };
        let interval = this.jitter.renew_interval(this.options.timings.retry);
        drop(this);
        sleep(interval).await;
        let Some(this) = inner.upgrade() else { return };
        match this.cell.current() {
            Leadership::Lost { epoch: ended, .. } if ended == epoch => return,
            Leadership::Stopped => return,
            _ => {}
        }
        let Some(held) = this.held().clone().filter(|h| h.epoch == epoch) else { return };
        let transitions = held.lease.spec.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0);
        let body = this.lease_body(Some(&held.lease), Some(&this.options.identity), transitions, false);
        let sent_at = Instant::now();
        match this.replace_held(body, "kubernetes renew lease").await {
            Ok(lease) => {
                let mut guard = this.held();
                if let Some(h) = guard.as_mut().filter(|h| h.epoch == epoch) {
                    h.lease = lease;
                    h.renewed_at = h.renewed_at.max(sent_at);
                }
                drop(guard);
                this.cell.apply(TenureEvent::Renewed { sent_at }, Instant::now());
            }
            Err(CoordError::Deposed { .. }) => {
                this.cell.apply(TenureEvent::Ended(LossReason::Deposed), Instant::now());
                this.held().take();
                return;
            }
            Err(_) => {
                this.cell.current();
            }
        }
    }
}

/// Gives up a Lease a campaign acquired but did not turn into a tenure (its future was
/// dropped mid-way), so successors need not wait for it to expire.
struct AbandonedCampaign<'a>(&'a Arc<Inner>);

impl Drop for AbandonedCampaign<'_> {
    fn drop(&mut self) {
        if self.0.cell.current().epoch().is_some() {
            return;
        }
        let Some(held) = self.0.held().take() else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inner = Arc::clone(self.0);
            runtime.spawn(async move { inner.clear_holder(held).await });
        }
    }
}

#[async_trait]
impl Coordinator for KubernetesCoordinator {
    fn identity(&self) -> &str {
        &self.inner.options.identity
    }

    fn leadership(&self) -> watch::Receiver<Leadership> {
        self.inner.cell.subscribe()
    }

    async fn campaign(&self) -> Result<Epoch, CoordError> {
        let inner = &self.inner;
        let _one_at_a_time = inner.campaigning.lock().await;
        let _cleanup = AbandonedCampaign(inner);
        let mut observed = None;
        loop {
            match inner.cell.current() {
                Leadership::Leader { epoch } => return Ok(epoch),
                Leadership::Releasing { .. } | Leadership::Stopped => return Err(CoordError::Stopped),
                Leadership::Follower { .. } | Leadership::Lost { .. } => {}
            }
            if let Ok(Some(epoch)) = inner.try_acquire(&mut observed).await {
                if let Some(epoch) = inner.establish(epoch).await {
                    return Ok(epoch);
                }
                inner.give_up().await;
            }
            sleep(inner.jitter.follower_interval(inner.options.timings.retry)).await;
        }
    }

    fn epoch(&self) -> Option<Epoch> {
        self.inner.cell.epoch()
    }

    fn remaining_lease(&self) -> Option<Duration> {
        self.inner.cell.remaining_lease()
    }

    fn fence(&self, epoch: Epoch, expected_write: Duration) -> Result<WriteGuard, FenceError> {
        self.inner.cell.fence(epoch, expected_write)
    }

    async fn step_down(&self) -> Result<(), CoordError> {
        self.inner.cell.apply(TenureEvent::Ended(LossReason::SteppedDown), Instant::now());
        self.inner.give_up().await;
        Ok(())
    }

    async fn release(&self) -> Result<(), CoordError> {
        self.inner.cell.drain_writes().await;
        self.inner.cell.apply(TenureEvent::Stopped, Instant::now());
        self.inner.give_up().await;
        Ok(())
    }

    async fn get(&self, key: &Key) -> Result<Option<Entry>, CoordError> {
        let name = self.inner.head_name(key);
        match self.inner.call("kubernetes get config map", self.inner.maps.get_opt(&name)).await? {
            Some(head) => Ok(Some(self.inner.decode(&head).await?)),
            None => Ok(None),
        }
    }

    async fn list(&self, space: Space, prefix: &str) -> Result<Vec<(String, Entry)>, CoordError> {
        let mut entries = Vec::new();
        for head in self.inner.list_heads(Some(space)).await? {
            let Some(name) = head.metadata.annotations.as_ref().and_then(|a| a.get(KEY)).cloned() else { continue };
            if name.starts_with(prefix) {
                entries.push((name, self.inner.decode(&head).await?));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    async fn put(&self, key: &Key, entry: &Entry, writer: Writer) -> Result<(), CoordError> {
        self.inner.write(key, Some(entry), writer).await
    }

    async fn delete(&self, key: &Key, writer: Writer) -> Result<(), CoordError> {
        self.inner.write(key, None, writer).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_values_split_on_character_boundaries() {
        let text = "aé".repeat(1000);
        let parts = split_utf8(&text, 7);
        assert!(parts.iter().all(|p| p.len() <= 7));
        assert_eq!(parts.concat(), text);
    }
}
