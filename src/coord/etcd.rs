//! The `etcd` backend: election under our own short lease, store under a key prefix.
//!
//! Key layout below the prefix `P` (default `/veer/<clusterId>`):
//!
//! | key | holds |
//! |---|---|
//! | `P/election/<lease id>` | election keys (etcd's election API); the leader's key has the lowest create revision |
//! | `P/store/<space>/<name>` | store entries ([`Entry`] as JSON) |
//!
//! Epoch = the leader key's create revision ([`etcd_client::LeaderKey::rev`]): etcd revisions
//! only grow, and every tenure uses a fresh lease, hence a fresh key, hence a greater
//! revision. Every leader write is a transaction guarded by
//! `create_revision(leader key) == epoch`: once the lease of a deposed leader expired (its key
//! is gone) or it resigned, its writes fail at etcd whatever its local clock says.
//!
//! Traps handled (REFERENCE §D): a campaign may return `Ok` with a key whose lease already
//! died, so ownership is verified after it returns; keep-alives are driven by our own task
//! (jittered, with a per-call timeout) and a TTL of 0 means the lease is gone; calls carry
//! per-call timeouts and are retried (the client does not drop dead endpoints);
//! `require_leader` makes calls fail fast when the cluster has lost quorum; HTTP/2 keep-alive
//! is 10 s (etcd refuses pings more often than every 5 s).

use super::{CoordError, Coordinator, Entry, Epoch, FenceError, Key, Leadership, LossReason, Space, Writer};
use super::{Jitter, LeaderCell, TenureEvent, Timings, WriteGuard};
use async_trait::async_trait;
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, LeaderKey, ResignOptions, Txn, TxnOp};
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

/// Settings of the etcd backend.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Client URLs of the members.
    pub endpoints: Vec<String>,
    /// Key prefix, without a trailing `/`.
    pub prefix: String,
    /// This replica's identity, stored as the election value.
    pub identity: String,
    /// Lease timings.
    pub timings: Timings,
    /// Timeout of one call (default [`Timings::call_timeout`]).
    pub call_timeout: Duration,
    /// Attempts per store call before giving up (default 3).
    pub attempts: u32,
    /// Jitter seed (default: from the process id and clock).
    pub seed: Option<u64>,
}

impl EtcdOptions {
    /// Options with defaults derived from the timings.
    pub fn new(endpoints: Vec<String>, prefix: impl Into<String>, identity: &str, timings: Timings) -> Self {
        let prefix: String = prefix.into();
        Self {
            endpoints,
            prefix: prefix.trim_end_matches('/').to_owned(),
            identity: identity.to_owned(),
            call_timeout: timings.call_timeout(),
            timings,
            attempts: 3,
            seed: None,
        }
    }
}

/// One lease and what hangs on it. Serves at most one tenure: a tenure that ended never
/// reuses its lease (its election key would bring the old epoch back).
#[derive(Debug)]
struct Session {
    lease_id: i64,
    /// Send time of the last keep-alive etcd accepted (or of the grant).
    renewed_at: Arc<Mutex<Instant>>,
    /// Turns `true` when the lease is known to be gone (TTL 0, or no renewal within the lease).
    gone: watch::Receiver<bool>,
    keeper: JoinHandle<()>,
    /// The election key once this session leads.
    leader: Option<LeaderKey>,
    /// Set when the session led a tenure; it is then never used for another.
    used: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

struct Inner {
    client: Client,
    options: EtcdOptions,
    cell: LeaderCell,
    jitter: Jitter,
    session: Mutex<Option<Session>>,
    campaigning: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdCoordinator")
            .field("options", &self.options)
            .field("cell", &self.cell)
            .finish_non_exhaustive()
    }
}

/// The etcd coordinator. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct EtcdCoordinator {
    inner: Arc<Inner>,
    ticker: JoinHandle<()>,
}

impl Drop for EtcdCoordinator {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

impl EtcdCoordinator {
    /// Connects to the cluster (lazily: unreachable members surface on the first calls).
    pub async fn connect(options: EtcdOptions) -> Result<Self, CoordError> {
        let connect = ConnectOptions::new()
            .with_require_leader(true)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_connect_timeout(options.call_timeout);
        let client = timeout(options.call_timeout * 2, Client::connect(&options.endpoints, Some(connect)))
            .await
            .map_err(|_| CoordError::Timeout { step: "etcd connect", after: options.call_timeout * 2 })?
            .map_err(|e| CoordError::backend("etcd connect", e))?;
        let jitter = options.seed.map_or_else(Jitter::from_entropy, Jitter::new);
        let inner = Arc::new(Inner {
            client,
            cell: LeaderCell::new(options.timings),
            options,
            jitter,
            session: Mutex::new(None),
            campaigning: tokio::sync::Mutex::new(()),
        });
        let ticker = tokio::spawn(tick(Arc::downgrade(&inner)));
        Ok(Self { inner, ticker })
    }

    /// The election name (`<prefix>/election`).
    pub fn election_name(&self) -> String {
        self.inner.election_name()
    }

    /// The etcd key of a store entry.
    pub fn store_key(&self, key: &Key) -> String {
        self.inner.store_key(key)
    }

    /// The current lease id, if a session exists (tests revoke it to simulate expiry).
    pub fn lease_id(&self) -> Option<i64> {
        self.inner.session().as_ref().map(|s| s.lease_id)
    }
}

/// Applies the renew deadline even when nothing else runs (e.g. right after SIGCONT), so
/// observers of [`Coordinator::leadership`] learn of the loss promptly; and gives up the
/// lease of a tenure that ended, so that a successor does not wait for a replica that no
/// longer writes (its keep-alives might otherwise keep the election key alive).
async fn tick(inner: Weak<Inner>) {
    loop {
        let period = match inner.upgrade() {
            Some(inner) => {
                // Only the session of the tenure that ended: a campaign may be installing a
                // newer one right now.
                let ended = match inner.cell.current() {
                    Leadership::Lost { epoch, .. } => inner
                        .session()
                        .as_ref()
                        .and_then(|s| s.leader.as_ref())
                        .is_some_and(|leader| leader.rev() as u64 == epoch.0),
                    _ => false,
                };
                if ended {
                    inner.take_and_end_session().await;
                }
                (inner.options.timings.retry / 4).max(Duration::from_millis(20))
            }
            None => return,
        };
        sleep(period).await;
    }
}

impl Inner {
    fn election_name(&self) -> String {
        format!("{}/election", self.options.prefix)
    }

    /// Reads who holds the election now and records it for followers (best effort).
    async fn observe_leader(&self, name: &str) {
        if let Ok(Ok(current)) = timeout(self.options.call_timeout, self.client.clone().leader(name)).await {
            let leader = current.kv().and_then(|kv| kv.value_str().ok()).map(str::to_owned);
            self.cell.apply(TenureEvent::Observed { leader }, Instant::now());
        }
    }

    fn store_key(&self, key: &Key) -> String {
        format!("{}/store/{}", self.options.prefix, key.path())
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Option<Session>> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `call` with a per-call timeout, retrying failures (the next attempt may reach
    /// another member) with a short jittered backoff.
    async fn call<T, F, Fut>(&self, step: &'static str, mut call: F) -> Result<T, CoordError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut last = CoordError::Timeout { step, after: self.options.call_timeout };
        for attempt in 0..self.options.attempts.max(1) {
            if attempt > 0 {
                let base = Duration::from_millis(50) * 2u32.pow(attempt.min(6));
                sleep(base.mul_f64(self.jitter.unit())).await;
            }
            match timeout(self.options.call_timeout, call(self.client.clone())).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => last = CoordError::backend(step, e),
                Err(_) => last = CoordError::Timeout { step, after: self.options.call_timeout },
            }
        }
        Err(last)
    }

    /// Grants a lease and starts its keep-alive task.
    async fn new_session(self: &Arc<Self>) -> Result<Session, CoordError> {
        let ttl = self.options.timings.lease_seconds();
        let sent_at = Instant::now();
        let grant = self.call("etcd lease grant", |mut c| async move { c.lease_grant(ttl, None).await }).await?;
        let renewed_at = Arc::new(Mutex::new(sent_at));
        let (gone_tx, gone) = watch::channel(false);
        let keeper = tokio::spawn(keep_alive(Arc::downgrade(self), grant.id(), Arc::clone(&renewed_at), gone_tx));
        Ok(Session { lease_id: grant.id(), renewed_at, gone, keeper, leader: None, used: false })
    }

    /// Ends the session: resigns if it led, revokes the lease (deleting the election key at
    /// once, so a successor need not wait for the TTL). Best effort: on failure the lease
    /// simply expires, since nobody renews it any more.
    async fn end_session(&self, session: Session) {
        session.keeper.abort();
        if let Some(leader) = session.leader.clone() {
            let _ = self
                .call("etcd resign", |mut c| {
                    let leader = leader.clone();
                    async move { c.resign(Some(ResignOptions::new().with_leader(leader))).await }
                })
                .await;
        }
        let id = session.lease_id;
        let _ = self.call("etcd lease revoke", |mut c| async move { c.lease_revoke(id).await }).await;
    }

    async fn take_and_end_session(&self) {
        let session = self.session().take();
        if let Some(session) = session {
            self.end_session(session).await;
        }
    }

    /// Verifies that `leader` is our live key: campaign may return a key whose lease died
    /// while it waited.
    async fn owns(&self, leader: &LeaderKey, lease_id: i64) -> Result<bool, CoordError> {
        let key = leader.key().to_vec();
        let response = self.call("etcd get leader key", |mut c| {
            let key = key.clone();
            async move { c.get(key, None).await }
        });
        let response = response.await?;
        Ok(response.kvs().first().is_some_and(|kv| kv.create_revision() == leader.rev() && kv.lease() == lease_id))
    }

    fn leader_key(&self, epoch: Epoch) -> Result<Vec<u8>, FenceError> {
        let session = self.session();
        match session.as_ref().and_then(|s| s.leader.as_ref()) {
            Some(leader) if leader.rev() as u64 == epoch.0 => Ok(leader.key().to_vec()),
            _ => Err(FenceError::NotLeader),
        }
    }

    /// A fenced transaction: `ops` apply only if the election key of `epoch` still exists
    /// with that create revision. A failed compare deposes this replica.
    async fn fenced(&self, epoch: Epoch, ops: Vec<TxnOp>, step: &'static str) -> Result<(), CoordError> {
        let leader_key = self.leader_key(epoch).map_err(|e| match self.cell.fence(epoch, Duration::ZERO) {
            Err(fence) => CoordError::Fenced(fence),
            Ok(_) => CoordError::Fenced(e),
        })?;
        let mut last = None;
        for attempt in 0..self.options.attempts.max(1) {
            // Re-checked before every attempt: a retry must not outlive the lease.
            let _guard = self.cell.fence(epoch, self.options.call_timeout)?;
            if attempt > 0 {
                sleep(Duration::from_millis(50).mul_f64(1.0 + self.jitter.unit())).await;
            }
            let txn = Txn::new()
                .when([Compare::create_revision(leader_key.clone(), CompareOp::Equal, epoch.0 as i64)])
                .and_then(ops.clone());
            let mut client = self.client.clone();
            match timeout(self.options.call_timeout, client.txn(txn)).await {
                Ok(Ok(response)) if response.succeeded() => return Ok(()),
                Ok(Ok(_)) => {
                    self.cell.apply(TenureEvent::Ended(LossReason::Deposed), Instant::now());
                    return Err(CoordError::Deposed { epoch });
                }
                Ok(Err(e)) => last = Some(CoordError::backend(step, e)),
                Err(_) => last = Some(CoordError::Timeout { step, after: self.options.call_timeout }),
            }
        }
        Err(last.unwrap_or(CoordError::Timeout { step, after: self.options.call_timeout }))
    }

    async fn write(&self, key: &Key, op: TxnOp, writer: Writer, step: &'static str) -> Result<(), CoordError> {
        match writer {
            Writer::Leader(epoch) => self.fenced(epoch, vec![op], step).await,
            Writer::Replica if key.space.leader_only() => Err(CoordError::LeaderOnly { space: key.space }),
            Writer::Replica => {
                self.call(step, |mut c| {
                    let txn = Txn::new().and_then(vec![op.clone()]);
                    async move { c.txn(txn).await }
                })
                .await?;
                Ok(())
            }
        }
    }
}

/// The keep-alive loop of one lease: renews at a jittered interval no longer than the retry
/// period, records the send time of each accepted renewal, and reports the lease gone on
/// TTL 0 or when no renewal succeeded for a whole lease.
async fn keep_alive(inner: Weak<Inner>, lease_id: i64, renewed_at: Arc<Mutex<Instant>>, gone: watch::Sender<bool>) {
    let mut stream = None;
    loop {
        let Some(this) = inner.upgrade() else { return };
        let timings = this.options.timings;
        let call_timeout = this.options.call_timeout;
        let interval = this.jitter.renew_interval(timings.retry);
        let client = this.client.clone();
        drop(this);
        sleep(interval).await;
        let sent_at = Instant::now();
        let renewal = async {
            if stream.is_none() {
                let mut leases = client.lease_client();
                stream = Some(leases.keep_alive(lease_id).await?);
            }
            let (keeper, responses) = stream.as_mut().expect("just set");
            keeper.keep_alive().await?;
            responses.message().await
        };
        let outcome = timeout(call_timeout, renewal).await;
        let Some(this) = inner.upgrade() else { return };
        match outcome {
            Ok(Ok(Some(response))) if response.ttl() > 0 => {
                let mut last = renewed_at.lock().unwrap_or_else(|e| e.into_inner());
                *last = (*last).max(sent_at);
                drop(last);
                // Only the current session's lease speaks for the tenure.
                if this.session().as_ref().is_some_and(|s| s.lease_id == lease_id) {
                    this.cell.apply(TenureEvent::Renewed { sent_at }, Instant::now());
                }
            }
            // TTL 0 (the client reports it as "lease not found" when it opens a stream): the
            // lease is gone.
            Ok(Ok(Some(_))) => return lease_gone(&this, lease_id, &gone),
            Ok(Err(etcd_client::Error::LeaseKeepAliveError(message))) if message.contains("not found") => {
                return lease_gone(&this, lease_id, &gone);
            }
            _ => {
                // A broken or late stream may answer the wrong request later: start afresh.
                stream = None;
                let last = *renewed_at.lock().unwrap_or_else(|e| e.into_inner());
                if Instant::now() >= last + timings.lease {
                    return lease_gone(&this, lease_id, &gone);
                }
                this.cell.current();
            }
        }
    }
}

/// Records that the lease of a session is gone: ends the tenure if this is the current
/// session's lease, and wakes a campaign waiting on it.
fn lease_gone(inner: &Inner, lease_id: i64, gone: &watch::Sender<bool>) {
    if inner.session().as_ref().is_some_and(|s| s.lease_id == lease_id) {
        inner.cell.apply(TenureEvent::Ended(LossReason::LeaseExpired), Instant::now());
    }
    let _ = gone.send(true);
}

/// Ends the session of a campaign that did not finish as leader (its future was dropped):
/// otherwise its election key would stay queued under a lease our keep-alive task renews,
/// and could become a leader that nobody acts for, blocking every other replica.
struct AbandonedCampaign<'a>(&'a Arc<Inner>);

impl Drop for AbandonedCampaign<'_> {
    fn drop(&mut self) {
        if self.0.cell.current().epoch().is_some() {
            return;
        }
        let Some(session) = self.0.session().take() else { return };
        session.keeper.abort();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inner = Arc::clone(self.0);
            runtime.spawn(async move { inner.end_session(session).await });
        }
    }
}

#[async_trait]
impl Coordinator for EtcdCoordinator {
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
        loop {
            match inner.cell.current() {
                Leadership::Leader { epoch } => return Ok(epoch),
                Leadership::Releasing { .. } | Leadership::Stopped => return Err(CoordError::Stopped),
                Leadership::Follower { .. } | Leadership::Lost { .. } => {}
            }
            // A session that led, whose lease is gone, or whose keep-alive task ended, is never
            // reused.
            let stale = inner.session().as_ref().is_some_and(|s| s.used || *s.gone.borrow() || s.keeper.is_finished());
            if stale {
                inner.take_and_end_session().await;
            }
            if inner.session().is_none() {
                match inner.new_session().await {
                    Ok(session) => *inner.session() = Some(session),
                    Err(_) => {
                        sleep(inner.jitter.follower_interval(inner.options.timings.retry)).await;
                        continue;
                    }
                }
            }
            let (lease_id, mut gone) = {
                let session = inner.session();
                let session = session.as_ref().expect("set above");
                (session.lease_id, session.gone.clone())
            };
            let name = inner.election_name();
            inner.observe_leader(&name).await;
            // No timeout on the campaign itself: it blocks while another replica leads, and
            // a client timeout would cancel it and lose our place in the queue. While it
            // waits, the current leader is re-read every retry period, so that a follower
            // that campaigned before anyone led still learns who leads (status names it).
            let mut client = inner.client.clone();
            let campaign = client.campaign(name.clone(), inner.options.identity.clone(), lease_id);
            tokio::pin!(campaign);
            let outcome = loop {
                tokio::select! {
                    outcome = &mut campaign => break Some(outcome),
                    _ = async { gone.wait_for(|gone| *gone).await.is_ok() } => break None,
                    () = sleep(inner.jitter.follower_interval(inner.options.timings.retry)) => {
                        inner.observe_leader(&name).await;
                    }
                }
            };
            let Some(outcome) = outcome else { continue };
            let leader = match outcome {
                Ok(mut response) => response.take_leader(),
                Err(_) => None,
            };
            let Some(leader) = leader else {
                sleep(inner.jitter.follower_interval(inner.options.timings.retry)).await;
                continue;
            };
            match inner.owns(&leader, lease_id).await {
                Ok(true) => {}
                _ => {
                    inner.take_and_end_session().await;
                    continue;
                }
            }
            let epoch = Epoch(leader.rev() as u64);
            let renewed_at = {
                let mut session = inner.session();
                let Some(session) = session.as_mut().filter(|s| s.lease_id == lease_id) else { continue };
                session.leader = Some(leader);
                session.used = true;
                *session.renewed_at.lock().unwrap_or_else(|e| e.into_inner())
            };
            if let Leadership::Leader { epoch } =
                inner.cell.apply(TenureEvent::Acquired { epoch, sent_at: renewed_at }, Instant::now())
            {
                return Ok(epoch);
            }
            // The lease had already run past the renew deadline: start over on a new lease.
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
        self.inner.take_and_end_session().await;
        Ok(())
    }

    async fn release(&self) -> Result<(), CoordError> {
        self.inner.cell.drain_writes().await;
        self.inner.cell.apply(TenureEvent::Stopped, Instant::now());
        self.inner.take_and_end_session().await;
        Ok(())
    }

    async fn get(&self, key: &Key) -> Result<Option<Entry>, CoordError> {
        let etcd_key = self.inner.store_key(key);
        let response = self
            .inner
            .call("etcd get", |mut c| {
                let etcd_key = etcd_key.clone();
                async move { c.get(etcd_key, None).await }
            })
            .await?;
        match response.kvs().first() {
            Some(kv) => Ok(Some(decode(kv.value())?)),
            None => Ok(None),
        }
    }

    async fn list(&self, space: Space, prefix: &str) -> Result<Vec<(String, Entry)>, CoordError> {
        let base = self.inner.store_key(&Key::new(space, ""));
        let start = format!("{base}{prefix}");
        let response = self
            .inner
            .call("etcd list", |mut c| {
                let start = start.clone();
                async move { c.get(start, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let mut entries = Vec::with_capacity(response.kvs().len());
        for kv in response.kvs() {
            let Ok(key) = kv.key_str() else { continue };
            let Some(name) = key.strip_prefix(&base) else { continue };
            entries.push((name.to_owned(), decode(kv.value())?));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    async fn put(&self, key: &Key, entry: &Entry, writer: Writer) -> Result<(), CoordError> {
        let value = serde_json::to_vec(entry).map_err(|e| CoordError::Local(e.to_string()))?;
        let op = TxnOp::put(self.inner.store_key(key), value, None);
        self.inner.write(key, op, writer, "etcd put").await
    }

    async fn delete(&self, key: &Key, writer: Writer) -> Result<(), CoordError> {
        let op = TxnOp::delete(self.inner.store_key(key), None);
        self.inner.write(key, op, writer, "etcd delete").await
    }
}

fn decode(bytes: &[u8]) -> Result<Entry, CoordError> {
    serde_json::from_slice(bytes).map_err(|e| CoordError::backend("etcd decode entry", e))
}
