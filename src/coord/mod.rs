//! Coordination (ARCHITECTURE.md §6): leader election with a fencing epoch, and the durable store.
//!
//! Several replicas run; exactly one may write DNS (I3). Every backend hands out an
//! [`Epoch`] that strictly increases across leaders, keeps a lease alive from its own
//! jittered task, and answers the enactor's question "am I still the leader of epoch E with
//! at least X of lease left?" synchronously, from the monotonic clock, through
//! [`Coordinator::fence`]. A leader that cannot renew before the renew deadline fails that
//! check at once, without waiting for any I/O: the leader stops writing on its own, even
//! when the store is unreachable.
//!
//! The durable store holds overrides (I8), warm-up and planner state, the vantage registry and
//! plan history. Values are JSON ([`Entry`]) under typed key namespaces ([`Space`]) so the store
//! does not depend on the planner's types. Writes to leader-only spaces are fenced at the
//! store itself (etcd: a transaction comparing the election key's create revision;
//! Kubernetes: an epoch stamp checked under `resourceVersion` preconditions; standalone: one
//! process), so a deposed leader's store write fails even when its local view is stale.
//! Overrides may be written by any replica: followers persist operator overrides too.
//!
//! Backends: [`standalone::StandaloneCoordinator`], [`etcd::EtcdCoordinator`],
//! [`kubernetes::KubernetesCoordinator`]; [`open`] picks one from the controller config.

#[cfg(feature = "etcd")]
pub mod etcd;
pub mod kubernetes;
mod leader;
pub mod standalone;

pub use leader::{Event as TenureEvent, Jitter, LeaderCell, Timings, TimingsError, WriteGuard};

use crate::config::{Backend, CoordinationConfig};
use crate::time::Timestamp;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A leader's fencing token. Strictly increases from one leader tenure to the next, across
/// processes and restarts (etcd: the election key's create revision; Kubernetes:
/// `leaseTransitions` after acquisition; standalone: a counter persisted in the state file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a tenure ended. Carried by [`Leadership::Lost`] and [`FenceError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LossReason {
    /// No renewal succeeded before the renew deadline (monotonic clock).
    RenewDeadline,
    /// The backend said the lease or the election key is gone (etcd TTL 0, key deleted).
    LeaseExpired,
    /// Another replica holds the lease now, or a fenced write found a newer epoch.
    Deposed,
    /// [`Coordinator::step_down`] was called.
    SteppedDown,
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RenewDeadline => "no renewal before the renew deadline",
            Self::LeaseExpired => "the lease expired",
            Self::Deposed => "deposed by a newer leader",
            Self::SteppedDown => "stepped down",
        })
    }
}

/// Leadership as a replica sees it, published on a [`watch`] channel
/// ([`Coordinator::leadership`]). Observers react to changes; the enactor does not rely on
/// them for safety (it calls [`Coordinator::fence`] before each write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// Not leading: campaigning, waiting, or not started. `leader` is the holder last seen, if
    /// known.
    ///
    /// Failure edge: none — a follower never writes leader-only state, so losing the store
    /// only delays its campaign.
    Follower {
        /// Identity of the current leader, when the backend reports it.
        leader: Option<String>,
    },
    /// Leading with `epoch`. Writes pass the fence while a renewal succeeded less than the
    /// renew deadline ago and enough lease is left for the write.
    ///
    /// Failure edge: no renewal before the renew deadline → [`Leadership::Lost`] (the fence
    /// fails from that instant, whether or not the renewal task has run); the backend reports
    /// the lease gone or a newer holder → `Lost`; a fenced store write rejected by the backend
    /// → `Lost` with [`LossReason::Deposed`].
    Leader {
        /// The tenure's fencing token.
        epoch: Epoch,
    },
    /// The tenure of `epoch` ended; every fence check for it fails. The replica may campaign
    /// again (a new tenure gets a strictly greater epoch).
    ///
    /// Failure edge: none further; a fresh [`Coordinator::campaign`] moves to `Follower`.
    Lost {
        /// The epoch that ended.
        epoch: Epoch,
        /// Why it ended.
        reason: LossReason,
    },
    /// Graceful shutdown: new writes are refused, writes already past the fence finish, then
    /// the lease is released.
    ///
    /// Failure edge: the lease runs out while waiting → the fence already fails; the release
    /// then only cleans up.
    Releasing {
        /// The epoch being released.
        epoch: Epoch,
    },
    /// Released or shut down; terminal.
    Stopped,
}

impl Leadership {
    /// The epoch if this replica currently leads.
    pub fn epoch(&self) -> Option<Epoch> {
        match self {
            Self::Leader { epoch } => Some(*epoch),
            _ => None,
        }
    }
}

/// Why [`Coordinator::fence`] refused a write. Each is final for the checked epoch except
/// [`FenceError::LeaseTooShort`] right after acquisition, which a renewal can cure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// This replica does not lead.
    #[error("not the leader")]
    NotLeader,
    /// This replica leads, but under another epoch than the writer's.
    #[error("epoch {held} is current, not {asked}")]
    WrongEpoch {
        /// The epoch the writer holds.
        asked: Epoch,
        /// The epoch of the current tenure.
        held: Epoch,
    },
    /// The tenure ended.
    #[error("leadership of epoch {epoch} lost: {reason}")]
    Lost {
        /// The epoch that ended.
        epoch: Epoch,
        /// Why.
        reason: LossReason,
    },
    /// Too little lease is left for the expected write time, or the renew deadline passed.
    #[error("{remaining:?} of lease left, the write needs {needed:?}")]
    LeaseTooShort {
        /// Lease left on the monotonic clock.
        remaining: Duration,
        /// What the writer asked for.
        needed: Duration,
    },
    /// A graceful release is in progress.
    #[error("releasing leadership")]
    Releasing,
}

/// Errors of the coordination layer, named after the step that failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CoordError {
    /// The local fence refused a leader-only write.
    #[error("write fenced: {0}")]
    Fenced(#[from] FenceError),
    /// The backend rejected a fenced write: a newer leader exists.
    #[error("write rejected by the store: epoch {epoch} is no longer the leader's")]
    Deposed {
        /// The writer's epoch.
        epoch: Epoch,
    },
    /// A leader-only space was written without an epoch.
    #[error("{space} is written by the leader only")]
    LeaderOnly {
        /// The space.
        space: Space,
    },
    /// A value is larger than the backend can store.
    #[error("value for {key} is {size} bytes, more than the {limit}-byte limit")]
    TooLarge {
        /// The key.
        key: String,
        /// Serialized size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The backend could not be reached or answered with an error.
    #[error("{step}: {message}")]
    Backend {
        /// The step that failed, e.g. `etcd txn`.
        step: &'static str,
        /// The backend's message.
        message: String,
    },
    /// A call took longer than its timeout.
    #[error("{step}: timed out after {after:?}")]
    Timeout {
        /// The step.
        step: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// Local state file or configuration problem.
    #[error("{0}")]
    Local(String),
    /// The coordinator was released.
    #[error("the coordinator was released")]
    Stopped,
}

impl CoordError {
    /// Whether the error means this replica must stop writing (as opposed to a transient
    /// failure a retry may cure).
    pub fn is_fenced(&self) -> bool {
        matches!(self, Self::Fenced(_) | Self::Deposed { .. } | Self::LeaderOnly { .. } | Self::Stopped)
    }
    pub(crate) fn backend(step: &'static str, e: impl fmt::Display) -> Self {
        Self::Backend { step, message: e.to_string() }
    }
}

/// Typed key namespaces of the store. The namespace decides who may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Space {
    /// Operator overrides (drain, pin, freeze), with their expiry. Any replica writes.
    Overrides,
    /// Warm-up progress per endpoint. Leader only.
    Warmup,
    /// Other planner state (velocity windows, change counters). Leader only.
    Planner,
    /// Vantage registry: replica id → admin URL, last seen. Each replica writes its own
    /// entry, so any replica writes.
    Vantages,
    /// Plan history, `<record>/<generation>`. Leader only; see [`Coordinator::append_plan`].
    Plans,
    /// Drill reports, `<drill>/<start>` (the run's state). Leader only.
    Drills,
    /// Operator requests to run or abort a drill. Any replica writes (the admin API).
    DrillRequests,
    /// The audit trail of overrides (created, deleted, expired), append-only. Any replica
    /// writes, because followers accept overrides too (I8); see `controller::audit`.
    Audit,
}

impl Space {
    /// Every space, in key order.
    pub const ALL: [Space; 8] = [
        Space::Overrides,
        Space::Warmup,
        Space::Planner,
        Space::Vantages,
        Space::Plans,
        Space::Drills,
        Space::DrillRequests,
        Space::Audit,
    ];

    /// The path segment used in keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overrides => "overrides",
            Self::Warmup => "warmup",
            Self::Planner => "planner",
            Self::Vantages => "vantages",
            Self::Plans => "plans",
            Self::Drills => "drills",
            Self::DrillRequests => "drill-requests",
            Self::Audit => "audit",
        }
    }

    /// Parses [`Space::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|space| space.as_str() == s)
    }

    /// Whether only the leader (fenced by its epoch) may write this space.
    pub fn leader_only(self) -> bool {
        matches!(self, Self::Warmup | Self::Planner | Self::Plans | Self::Drills)
    }
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key: a space and a name inside it. Names are free text without control characters;
/// `/` nests (plan history uses `<record>/<generation>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The namespace.
    pub space: Space,
    /// The name inside the namespace.
    pub name: String,
}

impl Key {
    /// A key.
    pub fn new(space: Space, name: impl Into<String>) -> Self {
        Self { space, name: name.into() }
    }
    /// `<space>/<name>`, the layout every backend uses below its own prefix.
    pub fn path(&self) -> String {
        format!("{}/{}", self.space.as_str(), self.name)
    }
    /// Parses [`Key::path`].
    pub fn parse(path: &str) -> Option<Self> {
        let (space, name) = path.split_once('/')?;
        Some(Self { space: Space::parse(space)?, name: name.to_owned() })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// A stored value: JSON, with an optional expiry (overrides have a TTL, I8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    /// The value.
    pub value: serde_json::Value,
    /// Wall-clock expiry; `None` never expires. Readers compare it with a `now` they pass
    /// in ([`Entry::is_live`]), so expiry is testable on virtual time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl Entry {
    /// A value that never expires.
    pub fn new(value: serde_json::Value) -> Self {
        Self { value, expires_at: None }
    }
    /// A value that expires at `expires_at`.
    pub fn expiring(value: serde_json::Value, expires_at: Timestamp) -> Self {
        Self { value, expires_at: Some(expires_at) }
    }
    /// Whether the entry is still in force at `now` (it expires at `expires_at` exactly).
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// Who writes: the leader of an epoch (fenced) or any replica (overrides, own vantage entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// The leader of this epoch; the write fails unless the epoch still leads.
    Leader(Epoch),
    /// Any replica; allowed only in spaces that are not [`Space::leader_only`].
    Replica,
}

/// Election and durable store behind one object (ARCHITECTURE.md §6). Dyn-compatible: the controller
/// holds an `Arc<dyn Coordinator>`.
///
/// Guarantees: epochs strictly increase across tenures; [`Coordinator::fence`] fails from
/// the instant the renew deadline passes without a renewal (monotonic clock), with no I/O;
/// a store write by [`Writer::Leader`] of an epoch that no longer leads fails at the store.
///
/// Caveats: the store is not a cache — every read goes to the backend.
#[async_trait]
pub trait Coordinator: Send + Sync {
    /// This replica's identity (pod name, host name, or configured id).
    fn identity(&self) -> &str;

    /// Leadership changes. The current value is always readable with `borrow()`.
    fn leadership(&self) -> watch::Receiver<Leadership>;

    /// Campaigns until this replica leads, then returns the new epoch. Waits (for as long as
    /// another replica leads) and retries backend failures itself. Returns the current epoch
    /// at once if already leading. Cancel-safe: dropping the future abandons the campaign.
    async fn campaign(&self) -> Result<Epoch, CoordError>;

    /// The epoch of the current tenure, if leading and the fence would pass for zero time.
    fn epoch(&self) -> Option<Epoch>;

    /// Lease left on the monotonic clock before the backend may hand the lease to another
    /// replica, counted from the send time of the last successful renewal. `None` when not
    /// leading.
    fn remaining_lease(&self) -> Option<Duration>;

    /// The check a writer makes immediately before each provider write: "am I the leader of
    /// `epoch`, with at least `expected_write` of lease left, and before my renew deadline?".
    /// Synchronous, no I/O. The returned guard counts the write as in flight until dropped:
    /// a graceful [`Coordinator::release`] waits for it.
    fn fence(&self, epoch: Epoch, expected_write: Duration) -> Result<WriteGuard, FenceError>;

    /// Ends the current tenure now (in-flight writes are not awaited) and gives the lease up
    /// so another replica can take over. The replica may campaign again afterwards.
    async fn step_down(&self) -> Result<(), CoordError>;

    /// Graceful shutdown: refuses new writes, waits for writes already past the fence (at
    /// most until the lease would run out), then releases the lease. Terminal.
    async fn release(&self) -> Result<(), CoordError>;

    /// Reads one entry (expired entries included: callers filter with a `now`).
    async fn get(&self, key: &Key) -> Result<Option<Entry>, CoordError>;

    /// Lists a space as `(name, entry)` pairs sorted by name, optionally under a name prefix.
    async fn list(&self, space: Space, prefix: &str) -> Result<Vec<(String, Entry)>, CoordError>;

    /// Writes one entry. Leader-only spaces need [`Writer::Leader`]; the write is fenced both
    /// locally and at the backend.
    async fn put(&self, key: &Key, entry: &Entry, writer: Writer) -> Result<(), CoordError>;

    /// Deletes one entry (absent is fine). Same writer rules as [`Coordinator::put`].
    async fn delete(&self, key: &Key, writer: Writer) -> Result<(), CoordError>;

    /// Reads one entry's value as JSON text (expired entries included), for values too
    /// large to hold as a parsed `serde_json::Value`: the planner state of 10 000 endpoints
    /// is half a megabyte of text and ten times that parsed. Backends that keep text
    /// answer without parsing.
    async fn get_text(&self, key: &Key) -> Result<Option<String>, CoordError> {
        Ok(self.get(key).await?.map(|entry| entry.value.to_string()))
    }

    /// Writes a never-expiring entry whose value is the JSON text `value` (see
    /// [`Coordinator::get_text`]). Same writer rules as [`Coordinator::put`]; text that is
    /// not JSON is refused.
    async fn put_text(&self, key: &Key, value: String, writer: Writer) -> Result<(), CoordError> {
        let value = serde_json::from_str(&value).map_err(|e| CoordError::Local(format!("not JSON: {e}")))?;
        self.put(key, &Entry::new(value), writer).await
    }

    /// Live entries of a space at `now` (expired ones left out).
    async fn list_live(
        &self,
        space: Space,
        prefix: &str,
        now: Timestamp,
    ) -> Result<Vec<(String, serde_json::Value)>, CoordError> {
        let entries = self.list(space, prefix).await?;
        Ok(entries.into_iter().filter(|(_, e)| e.is_live(now)).map(|(name, e)| (name, e.value)).collect())
    }

    /// Deletes the expired entries of a space at `now`; returns their names.
    async fn prune_expired(&self, space: Space, now: Timestamp, writer: Writer) -> Result<Vec<String>, CoordError> {
        let mut pruned = Vec::new();
        for (name, entry) in self.list(space, "").await? {
            if !entry.is_live(now) {
                self.delete(&Key::new(space, name.clone()), writer).await?;
                pruned.push(name);
            }
        }
        Ok(pruned)
    }

    /// Appends a plan to a record's history (fenced by `epoch`) and prunes the history to
    /// the `keep` newest plans (by generation). Pruning never removes the newest plan, even
    /// with `keep == 0`, and runs after the append, so a failed append deletes nothing.
    async fn append_plan(
        &self,
        epoch: Epoch,
        record: &str,
        generation: u64,
        plan: serde_json::Value,
        keep: usize,
    ) -> Result<(), CoordError> {
        let key = Key::new(Space::Plans, plan_name(record, generation));
        self.put(&key, &Entry::new(plan), Writer::Leader(epoch)).await?;
        let history = self.plans(record).await?;
        let keep = keep.max(1);
        if history.len() > keep {
            for (old, _) in &history[..history.len() - keep] {
                self.delete(&Key::new(Space::Plans, plan_name(record, *old)), Writer::Leader(epoch)).await?;
            }
        }
        Ok(())
    }

    /// A record's plan history, oldest first, as `(generation, plan)`.
    async fn plans(&self, record: &str) -> Result<Vec<(u64, serde_json::Value)>, CoordError> {
        let prefix = format!("{record}/");
        let mut plans: Vec<(u64, serde_json::Value)> = self
            .list(Space::Plans, &prefix)
            .await?
            .into_iter()
            .filter_map(|(name, entry)| {
                let generation = name.strip_prefix(&prefix)?;
                // Only direct children: a record name is never a prefix of another's key.
                (!generation.contains('/')).then_some(())?;
                Some((generation.parse().ok()?, entry.value))
            })
            .collect();
        plans.sort_by_key(|(generation, _)| *generation);
        Ok(plans)
    }
}

/// A replica's entry in the vantage registry ([`Space::Vantages`], keyed by replica id). Each
/// replica writes its own entry; the leader reads them all to find fresh vantages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VantageRecord {
    /// Where the replica's admin API listens.
    pub admin_url: String,
    /// When the replica last registered (wall clock, for display and staleness).
    pub last_seen: Timestamp,
}

/// Registers (or refreshes) this replica in the vantage registry.
pub async fn register_vantage(coord: &dyn Coordinator, record: &VantageRecord) -> Result<(), CoordError> {
    let value = serde_json::to_value(record).map_err(|e| CoordError::Local(e.to_string()))?;
    coord.put(&Key::new(Space::Vantages, coord.identity()), &Entry::new(value), Writer::Replica).await
}

/// Replicas seen at or after `seen_since`, by id. Entries that do not parse are skipped: a
/// newer replica's format must not hide the others.
pub async fn vantages(
    coord: &dyn Coordinator,
    seen_since: Timestamp,
) -> Result<Vec<(String, VantageRecord)>, CoordError> {
    Ok(coord
        .list(Space::Vantages, "")
        .await?
        .into_iter()
        .filter_map(|(id, entry)| Some((id, serde_json::from_value::<VantageRecord>(entry.value).ok()?)))
        .filter(|(_, record)| record.last_seen >= seen_since)
        .collect())
}

/// The plan-history key name: generations zero-padded so names sort like numbers.
pub fn plan_name(record: &str, generation: u64) -> String {
    format!("{record}/{generation:020}")
}

/// Why `backend: etcd` fails in a build without the `etcd` cargo feature, and the way out.
pub const ETCD_NOT_BUILT: &str = "coordination.backend is etcd but this veer was built without etcd support; \
     hint: use the container image, or build with `cargo build --release --features etcd` \
     (needs protoc and its include files: Debian packages protobuf-compiler and libprotobuf-dev)";

/// Opens the configured backend. `identity` is this replica's id (pod name for Kubernetes);
/// `state_file` is the resolved standalone file; `cluster_id` names the default etcd prefix.
pub async fn open(
    config: &CoordinationConfig,
    identity: &str,
    cluster_id: &str,
    state_file: PathBuf,
) -> Result<Arc<dyn Coordinator>, CoordError> {
    let timings = Timings::new(config.lease_duration(), config.renew_deadline(), config.retry_period())
        .map_err(|e| CoordError::Local(e.to_string()))?;
    Ok(match config.backend {
        Backend::Standalone => Arc::new(standalone::StandaloneCoordinator::open(state_file, identity)?),
        #[cfg(not(feature = "etcd"))]
        Backend::Etcd => {
            let _ = cluster_id;
            return Err(CoordError::Local(ETCD_NOT_BUILT.into()));
        }
        #[cfg(feature = "etcd")]
        Backend::Etcd => {
            let etcd = config.etcd.as_ref().ok_or_else(|| CoordError::Local("coordination.etcd is missing".into()))?;
            let prefix = etcd.prefix.clone().unwrap_or_else(|| format!("/veer/{cluster_id}"));
            let options = etcd::EtcdOptions::new(etcd.endpoints.clone(), prefix, identity, timings);
            Arc::new(etcd::EtcdCoordinator::connect(options).await?)
        }
        Backend::Kubernetes => {
            let k = config
                .kubernetes
                .as_ref()
                .ok_or_else(|| CoordError::Local("coordination.kubernetes is missing".into()))?;
            let lease = k.lease_name.clone().unwrap_or_else(|| "veer-leader".into());
            let options = kubernetes::KubernetesOptions::new(k.namespace.clone(), lease, identity, timings);
            Arc::new(kubernetes::KubernetesCoordinator::infer(options).await?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_path() {
        let key = Key::new(Space::Plans, plan_name("api.example.com.", 7));
        assert_eq!(key.path(), "plans/api.example.com./00000000000000000007");
        assert_eq!(Key::parse(&key.path()), Some(key));
        assert_eq!(Key::parse("nope/x"), None);
    }

    #[test]
    fn entries_expire_exactly_at_their_expiry() {
        let entry = Entry::expiring(serde_json::json!(1), Timestamp(1_000));
        assert!(entry.is_live(Timestamp(999)));
        assert!(!entry.is_live(Timestamp(1_000)));
        assert!(Entry::new(serde_json::json!(1)).is_live(Timestamp(u64::MAX)));
    }

    #[tokio::test]
    async fn open_builds_the_standalone_backend_by_default_and_checks_the_timings() {
        let dir = tempfile::tempdir().unwrap();
        let config = CoordinationConfig::default();
        let coord = open(&config, "host-1", "prod-a", dir.path().join("state.json")).await.unwrap();
        assert_eq!(coord.identity(), "host-1");
        let epoch = coord.campaign().await.unwrap();
        assert!(coord.fence(epoch, Duration::from_secs(60)).is_ok());
        assert_eq!(coord.leadership().borrow().epoch(), Some(epoch));
    }

    #[tokio::test]
    async fn replicas_register_in_the_vantage_registry_and_stale_ones_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let a = standalone::StandaloneCoordinator::open(dir.path().join("s.json"), "replica-a").unwrap();
        let record = |ms| VantageRecord { admin_url: "http://10.0.0.1:9090".into(), last_seen: Timestamp(ms) };
        register_vantage(&a, &record(1_000)).await.unwrap();
        assert_eq!(vantages(&a, Timestamp(500)).await.unwrap(), vec![("replica-a".to_owned(), record(1_000))]);
        assert!(vantages(&a, Timestamp(1_001)).await.unwrap().is_empty());
        register_vantage(&a, &record(2_000)).await.unwrap();
        assert_eq!(vantages(&a, Timestamp(1_001)).await.unwrap().len(), 1);
    }

    #[test]
    fn overrides_vantages_drill_requests_and_the_audit_trail_are_the_only_spaces_followers_write() {
        let open: Vec<Space> = Space::ALL.into_iter().filter(|s| !s.leader_only()).collect();
        assert_eq!(open, vec![Space::Overrides, Space::Vantages, Space::DrillRequests, Space::Audit]);
    }
}
