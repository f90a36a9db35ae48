//! A coordination backend on virtual time for the simulations: one shared
//! [`SimStore`] (the "etcd": a lease with a holder and an expiry, and the
//! key-value store) and one [`SimCoordinator`] per replica, built on the real
//! tenure state machine and fence ([`LeaderCell`]).
//!
//! As with etcd, the store fences leader writes itself: a write of an epoch that
//! no longer holds an unexpired lease is refused, whatever the writer believes.
//! A replica that is paused or killed stops renewing (its renewal task is
//! aborted); its lease then expires at the store and another replica acquires it
//! with a greater epoch.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use veer::coord::{
    CoordError, Coordinator, Entry, Epoch, FenceError, Jitter, Key, LeaderCell, Leadership, LossReason, Space,
    TenureEvent, Timings, WriteGuard, Writer,
};

/// One write that reached the store, accepted or not.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreWrite {
    /// When.
    pub at: Instant,
    /// The writer's epoch, for leader writes.
    pub epoch: Option<Epoch>,
    /// The key's path.
    pub key: String,
    /// Accepted by the store.
    pub accepted: bool,
}

/// The shared store and lease.
#[derive(Debug, Default)]
pub struct SimStore {
    revision: u64,
    /// (identity, epoch, expiry) of the lease holder.
    holder: Option<(String, Epoch, Instant)>,
    entries: BTreeMap<Key, Entry>,
    /// Every leader write that reached the store.
    pub writes: Vec<StoreWrite>,
}

impl SimStore {
    /// An empty store, shared.
    pub fn shared() -> Arc<Mutex<SimStore>> {
        Arc::new(Mutex::new(SimStore::default()))
    }

    /// Names of the entries in `space`.
    pub fn names(&self, space: Space) -> Vec<String> {
        self.entries.keys().filter(|k| k.space == space).map(|k| k.name.clone()).collect()
    }
}

/// One replica's view of the coordination backend.
pub struct SimCoordinator {
    identity: String,
    store: Arc<Mutex<SimStore>>,
    cell: LeaderCell,
    timings: Timings,
    jitter: Jitter,
}

impl SimCoordinator {
    /// A follower of `store`.
    pub fn new(identity: &str, store: Arc<Mutex<SimStore>>, timings: Timings, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            identity: identity.into(),
            store,
            cell: LeaderCell::new(timings),
            timings,
            jitter: Jitter::new(seed),
        })
    }

    fn store(&self) -> std::sync::MutexGuard<'_, SimStore> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One acquisition attempt: the lease is free or expired → a new epoch.
    pub fn try_acquire(&self) -> Option<Epoch> {
        let now = Instant::now();
        let epoch = {
            let mut store = self.store();
            if store.holder.as_ref().is_some_and(|(_, _, expires)| now < *expires) {
                return None;
            }
            store.revision += 1;
            let epoch = Epoch(store.revision);
            store.holder = Some((self.identity.clone(), epoch, now + self.timings.lease));
            epoch
        };
        self.cell.apply(TenureEvent::Acquired { epoch, sent_at: now }, now).epoch()
    }

    /// One renewal: extends the lease if this replica still holds it; otherwise
    /// the tenure ends (deposed). Returns whether it still leads.
    pub fn renew(&self) -> bool {
        let now = Instant::now();
        let Some(epoch) = self.cell.epoch() else { return false };
        let renewed = {
            let mut store = self.store();
            match &mut store.holder {
                Some((who, held, expires)) if *who == self.identity && *held == epoch && now < *expires => {
                    *expires = now + self.timings.lease;
                    true
                }
                _ => false,
            }
        };
        let event =
            if renewed { TenureEvent::Renewed { sent_at: now } } else { TenureEvent::Ended(LossReason::Deposed) };
        self.cell.apply(event, now).epoch().is_some()
    }

    /// Renews every `retry / 2 … retry` (jittered) until the tenure ends. Abort the
    /// returned task to pause or kill the replica.
    pub fn keep_renewing(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(this.jitter.renew_interval(this.timings.retry)).await;
                if !this.renew() {
                    return;
                }
            }
        })
    }

    /// Checks a leader write locally (fence) and at the store (lease held by this epoch).
    fn admit(&self, key: &Key, writer: Writer) -> Result<Option<WriteGuard>, CoordError> {
        let Writer::Leader(epoch) = writer else {
            return if key.space.leader_only() { Err(CoordError::LeaderOnly { space: key.space }) } else { Ok(None) };
        };
        let guard = self.cell.fence(epoch, Duration::ZERO)?;
        let now = Instant::now();
        let mut store = self.store();
        let holds = store
            .holder
            .as_ref()
            .is_some_and(|(who, held, expires)| *who == self.identity && *held == epoch && now < *expires);
        store.writes.push(StoreWrite { at: now, epoch: Some(epoch), key: key.path(), accepted: holds });
        drop(store);
        if holds {
            Ok(Some(guard))
        } else {
            self.cell.apply(TenureEvent::Ended(LossReason::Deposed), now);
            Err(CoordError::Deposed { epoch })
        }
    }
}

#[async_trait]
impl Coordinator for SimCoordinator {
    fn identity(&self) -> &str {
        &self.identity
    }

    fn leadership(&self) -> watch::Receiver<Leadership> {
        self.cell.subscribe()
    }

    async fn campaign(&self) -> Result<Epoch, CoordError> {
        loop {
            if let Some(epoch) = self.cell.epoch().or_else(|| self.try_acquire()) {
                return Ok(epoch);
            }
            tokio::time::sleep(self.jitter.follower_interval(self.timings.retry)).await;
        }
    }

    fn epoch(&self) -> Option<Epoch> {
        self.cell.epoch()
    }

    fn remaining_lease(&self) -> Option<Duration> {
        self.cell.remaining_lease()
    }

    fn fence(&self, epoch: Epoch, expected_write: Duration) -> Result<WriteGuard, FenceError> {
        self.cell.fence(epoch, expected_write)
    }

    async fn step_down(&self) -> Result<(), CoordError> {
        let now = Instant::now();
        self.cell.apply(TenureEvent::Ended(LossReason::SteppedDown), now);
        let mut store = self.store();
        if store.holder.as_ref().is_some_and(|(who, _, _)| *who == self.identity) {
            store.holder = None;
        }
        Ok(())
    }

    async fn release(&self) -> Result<(), CoordError> {
        self.cell.drain_writes().await;
        self.step_down().await?;
        self.cell.apply(TenureEvent::Stopped, Instant::now());
        Ok(())
    }

    async fn get(&self, key: &Key) -> Result<Option<Entry>, CoordError> {
        Ok(self.store().entries.get(key).cloned())
    }

    async fn list(&self, space: Space, prefix: &str) -> Result<Vec<(String, Entry)>, CoordError> {
        Ok(self
            .store()
            .entries
            .iter()
            .filter(|(k, _)| k.space == space && k.name.starts_with(prefix))
            .map(|(k, e)| (k.name.clone(), e.clone()))
            .collect())
    }

    async fn put(&self, key: &Key, entry: &Entry, writer: Writer) -> Result<(), CoordError> {
        let _guard = self.admit(key, writer)?;
        self.store().entries.insert(key.clone(), entry.clone());
        Ok(())
    }

    async fn delete(&self, key: &Key, writer: Writer) -> Result<(), CoordError> {
        let _guard = self.admit(key, writer)?;
        self.store().entries.remove(key);
        Ok(())
    }
}
