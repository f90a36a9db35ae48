//! Leader discipline shared by the backends: timings, jitter, the tenure state machine and
//! the write fence (ARCHITECTURE.md §6).

use super::{Epoch, FenceError, Leadership, LossReason};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Lease timings. Invariant (checked by [`Timings::new`]): `lease > renew_deadline > retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long the backend keeps the lease without a renewal.
    pub lease: Duration,
    /// A leader that has not renewed for this long stops writing; shorter than `lease`, the
    /// difference being the margin for clock rate differences and a write in flight.
    pub renew_deadline: Duration,
    /// Base period between renewals (leader) and acquisition attempts (followers).
    pub retry: Duration,
}

/// Timings that do not nest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingsError {
    /// `renew_deadline >= lease`.
    #[error("renew deadline {renew:?} must be shorter than the lease {lease:?}")]
    RenewNotShorterThanLease {
        /// Renew deadline.
        renew: Duration,
        /// Lease.
        lease: Duration,
    },
    /// `retry >= renew_deadline`, or zero.
    #[error("retry period {retry:?} must be non-zero and shorter than the renew deadline {renew:?}")]
    BadRetry {
        /// Retry period.
        retry: Duration,
        /// Renew deadline.
        renew: Duration,
    },
}

impl Default for Timings {
    /// ARCHITECTURE.md §6: lease 15 s, renew deadline 10 s, retry 2 s.
    fn default() -> Self {
        Self { lease: Duration::from_secs(15), renew_deadline: Duration::from_secs(10), retry: Duration::from_secs(2) }
    }
}

impl Timings {
    /// Checked timings.
    pub fn new(lease: Duration, renew_deadline: Duration, retry: Duration) -> Result<Self, TimingsError> {
        if renew_deadline >= lease {
            return Err(TimingsError::RenewNotShorterThanLease { renew: renew_deadline, lease });
        }
        if retry.is_zero() || retry >= renew_deadline {
            return Err(TimingsError::BadRetry { retry, renew: renew_deadline });
        }
        Ok(Self { lease, renew_deadline, retry })
    }

    /// Timeout for one backend call: a call may not eat more than half of the slack
    /// between two renewals, so a hung call cannot make the leader miss its deadline.
    pub fn call_timeout(&self) -> Duration {
        ((self.renew_deadline - self.retry) / 2).clamp(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// The lease rounded up to whole seconds (etcd and Kubernetes count in seconds).
    pub fn lease_seconds(&self) -> i64 {
        self.lease.as_secs() as i64 + i64::from(self.lease.subsec_nanos() > 0)
    }
}

/// A small seeded generator for jitter (splitmix64). Seeded per process so replicas never
/// align; tests pass a seed.
#[derive(Debug)]
pub struct Jitter {
    state: Mutex<u64>,
}

impl Jitter {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: Mutex::new(seed) }
    }

    /// A generator seeded from the process id and the wall clock.
    pub fn from_entropy() -> Self {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Self::new(nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// A uniform number in `[0, 1)`.
    pub fn unit(&self) -> f64 {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The leader's renewal interval: uniform in `[retry / 2, retry]`, never later than
    /// configured, so jitter cannot push a renewal past the deadline.
    pub fn renew_interval(&self, retry: Duration) -> Duration {
        retry.mul_f64(0.5 + 0.5 * self.unit())
    }

    /// A follower's retry interval: uniform in `[retry, 1.25 · retry)`, so followers of one
    /// leader do not retry in step.
    pub fn follower_interval(&self, retry: Duration) -> Duration {
        retry.mul_f64(1.0 + 0.25 * self.unit())
    }
}

/// The tenure state machine. Each variant's failure edge is on [`Leadership`], which it
/// publishes.
#[derive(Debug, Clone, PartialEq)]
enum Tenure {
    /// Not leading. Failure edge: none (no writes to stop).
    Follower { leader: Option<String> },
    /// Leading. Failure edge: `Tick` at or past `renewed_at + renew_deadline` → `Lost`
    /// (`RenewDeadline`); `Ended` from the backend → `Lost`.
    ///
    /// Invariant: `renewed_at` is the *send* time of the last renewal the backend accepted
    /// (or of the acquisition), so the backend's own expiry is never earlier than
    /// `renewed_at + lease`. It never decreases within a tenure.
    Leader { epoch: Epoch, renewed_at: Instant },
    /// The tenure of `epoch` ended. Failure edge: none further; `Acquired` with a greater
    /// epoch starts a new tenure.
    Lost { epoch: Epoch, reason: LossReason },
    /// Graceful release: the fence refuses new writes. Failure edge: `Ended` → `Lost`.
    Releasing { epoch: Epoch, renewed_at: Instant },
    /// Terminal.
    Stopped,
}

/// Inputs of the tenure state machine, applied with [`LeaderCell::apply`].
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A follower saw who leads.
    Observed {
        /// The leader's identity, if any.
        leader: Option<String>,
    },
    /// Acquired the lease with `epoch`; the acquiring request was sent at `sent_at`.
    Acquired {
        /// The new epoch.
        epoch: Epoch,
        /// Send time of the acquiring request.
        sent_at: Instant,
    },
    /// A renewal sent at `sent_at` was accepted.
    Renewed {
        /// Send time of the renewal.
        sent_at: Instant,
    },
    /// The tenure ended for `reason` (backend said so, or a local decision).
    Ended(LossReason),
    /// Graceful release started.
    ReleaseStarted,
    /// Release done.
    Stopped,
    /// Time passed; checks the renew deadline.
    Tick,
}

/// The step function: the next tenure after `event` at `now`.
fn step(state: &Tenure, event: Event, now: Instant, timings: &Timings) -> Tenure {
    use Tenure::*;
    let expired = |renewed_at: Instant| now >= renewed_at + timings.renew_deadline;
    match (state, event) {
        (Stopped, _) => Stopped,
        (_, Event::Stopped) => Stopped,
        (Leader { epoch, renewed_at }, Event::Tick) if expired(*renewed_at) => {
            Lost { epoch: *epoch, reason: LossReason::RenewDeadline }
        }
        (Leader { epoch, renewed_at }, Event::Renewed { sent_at }) => {
            if expired(*renewed_at) {
                // The deadline passed before this renewal was processed: writes already
                // stopped, and a late success must not resurrect the tenure.
                Lost { epoch: *epoch, reason: LossReason::RenewDeadline }
            } else {
                Leader { epoch: *epoch, renewed_at: (*renewed_at).max(sent_at) }
            }
        }
        (Releasing { epoch, renewed_at }, Event::Renewed { sent_at }) => {
            Releasing { epoch: *epoch, renewed_at: (*renewed_at).max(sent_at) }
        }
        (Leader { epoch, .. } | Releasing { epoch, .. }, Event::Ended(reason)) => Lost { epoch: *epoch, reason },
        (Leader { epoch, renewed_at }, Event::ReleaseStarted) => Releasing { epoch: *epoch, renewed_at: *renewed_at },
        (Follower { .. } | Lost { .. }, Event::Acquired { epoch, sent_at }) if expired(sent_at) => {
            // Acquired so long ago (a slow reply, a pause) that the deadline already passed.
            Lost { epoch, reason: LossReason::RenewDeadline }
        }
        (Follower { .. } | Lost { .. }, Event::Acquired { epoch, sent_at }) => Leader { epoch, renewed_at: sent_at },
        (Follower { .. } | Lost { .. }, Event::Observed { leader }) => Follower { leader },
        (Follower { .. } | Lost { .. }, Event::ReleaseStarted) => Stopped,
        (state, _) => state.clone(),
    }
}

impl Tenure {
    fn leadership(&self) -> Leadership {
        match self {
            Tenure::Follower { leader } => Leadership::Follower { leader: leader.clone() },
            Tenure::Leader { epoch, .. } => Leadership::Leader { epoch: *epoch },
            Tenure::Lost { epoch, reason } => Leadership::Lost { epoch: *epoch, reason: reason.clone() },
            Tenure::Releasing { epoch, .. } => Leadership::Releasing { epoch: *epoch },
            Tenure::Stopped => Leadership::Stopped,
        }
    }
}

/// The tenure of one replica, shared by its backend's tasks and its writers. Applies
/// [`Event`]s, publishes [`Leadership`] and answers the fence.
#[derive(Debug)]
pub struct LeaderCell {
    timings: Timings,
    state: Mutex<CellState>,
    leadership: watch::Sender<Leadership>,
    in_flight: Arc<watch::Sender<usize>>,
}

#[derive(Debug)]
struct CellState {
    tenure: Tenure,
    /// The greatest epoch this replica ever led with. Invariant: never decreases; an
    /// acquisition with an epoch not greater than it is ignored.
    highest_epoch: Option<Epoch>,
}

impl LeaderCell {
    /// A follower cell.
    pub fn new(timings: Timings) -> Self {
        let tenure = Tenure::Follower { leader: None };
        Self {
            timings,
            leadership: watch::Sender::new(tenure.leadership()),
            state: Mutex::new(CellState { tenure, highest_epoch: None }),
            in_flight: Arc::new(watch::Sender::new(0)),
        }
    }

    /// The timings.
    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// Applies `event` at `now` and publishes the new leadership if it changed. Returns it.
    pub fn apply(&self, event: Event, now: Instant) -> Leadership {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Event::Acquired { epoch, .. } = &event
            && state.highest_epoch.is_some_and(|h| *epoch <= h)
        {
            // A late or duplicate grant (a reply overtaken by a newer tenure): taking it would
            // bring an old epoch back.
            return state.tenure.leadership();
        }
        let next = step(&state.tenure, event, now, &self.timings);
        if let (Tenure::Leader { epoch: a, renewed_at: before }, Tenure::Leader { epoch: b, renewed_at: after }) =
            (&state.tenure, &next)
        {
            debug_assert!(a != b || after >= before, "renewed_at never decreases within a tenure");
        }
        if let Tenure::Leader { epoch, .. } = &next {
            state.highest_epoch = Some(state.highest_epoch.map_or(*epoch, |h| h.max(*epoch)));
        }
        if next != state.tenure {
            state.tenure = next;
            let leadership = state.tenure.leadership();
            self.leadership.send_if_modified(|current| {
                let changed = *current != leadership;
                *current = leadership.clone();
                changed
            });
        }
        state.tenure.leadership()
    }

    /// The current leadership after checking the renew deadline.
    pub fn current(&self) -> Leadership {
        self.apply(Event::Tick, Instant::now())
    }

    /// A receiver of leadership changes.
    pub fn subscribe(&self) -> watch::Receiver<Leadership> {
        self.leadership.subscribe()
    }

    /// The epoch of the running tenure (leading, deadline not passed).
    pub fn epoch(&self) -> Option<Epoch> {
        self.current().epoch()
    }

    /// Lease left on the monotonic clock, when leading or releasing.
    pub fn remaining_lease(&self) -> Option<Duration> {
        let now = Instant::now();
        self.apply(Event::Tick, now);
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.tenure {
            Tenure::Leader { renewed_at, .. } | Tenure::Releasing { renewed_at, .. } => {
                Some((renewed_at + self.timings.lease).saturating_duration_since(now))
            }
            _ => None,
        }
    }

    /// The fence (see [`super::Coordinator::fence`]). Checks the renew deadline at `now` first,
    /// so a leader past its deadline fails here even if its renewal task has not run.
    pub fn fence_at(&self, epoch: Epoch, expected_write: Duration, now: Instant) -> Result<WriteGuard, FenceError> {
        self.apply(Event::Tick, now);
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &state.tenure {
            Tenure::Leader { epoch: held, renewed_at } => {
                if *held != epoch {
                    return Err(FenceError::WrongEpoch { asked: epoch, held: *held });
                }
                let remaining = (*renewed_at + self.timings.lease).saturating_duration_since(now);
                let before_deadline = (*renewed_at + self.timings.renew_deadline).saturating_duration_since(now);
                if remaining < expected_write || before_deadline.is_zero() {
                    return Err(FenceError::LeaseTooShort { remaining, needed: expected_write });
                }
                self.in_flight.send_modify(|n| *n += 1);
                Ok(WriteGuard { in_flight: Arc::clone(&self.in_flight) })
            }
            Tenure::Lost { epoch: lost, reason } if *lost == epoch => {
                Err(FenceError::Lost { epoch: *lost, reason: reason.clone() })
            }
            Tenure::Releasing { .. } => Err(FenceError::Releasing),
            _ => Err(FenceError::NotLeader),
        }
    }

    /// [`LeaderCell::fence_at`] now.
    pub fn fence(&self, epoch: Epoch, expected_write: Duration) -> Result<WriteGuard, FenceError> {
        self.fence_at(epoch, expected_write, Instant::now())
    }

    /// Starts a graceful release and waits until no write is in flight, or until the lease
    /// would run out (after that the fence fails anyway). Returns the epoch being released.
    pub async fn drain_writes(&self) -> Option<Epoch> {
        let leadership = self.apply(Event::ReleaseStarted, Instant::now());
        let Leadership::Releasing { epoch } = leadership else { return None };
        let wait = self.remaining_lease().unwrap_or_default();
        let mut rx = self.in_flight.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|n| *n == 0)).await;
        Some(epoch)
    }

    /// Writes currently past the fence.
    pub fn writes_in_flight(&self) -> usize {
        *self.in_flight.borrow()
    }
}

/// A write that passed the fence; counted as in flight until dropped.
#[derive(Debug)]
#[must_use = "the write is in flight until the guard is dropped"]
pub struct WriteGuard {
    in_flight: Arc<watch::Sender<usize>>,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        self.in_flight.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timings() -> Timings {
        Timings::new(Duration::from_secs(15), Duration::from_secs(10), Duration::from_secs(2)).unwrap()
    }

    #[test]
    fn timings_must_nest() {
        assert!(Timings::new(Duration::from_secs(5), Duration::from_secs(5), Duration::from_secs(1)).is_err());
        assert!(Timings::new(Duration::from_secs(5), Duration::from_secs(4), Duration::from_secs(4)).is_err());
        assert!(Timings::new(Duration::from_secs(5), Duration::from_secs(4), Duration::ZERO).is_err());
        assert_eq!(Timings::default(), timings());
        assert_eq!(
            Timings::new(Duration::from_millis(2500), Duration::from_secs(2), Duration::from_secs(1))
                .unwrap()
                .lease_seconds(),
            3
        );
    }

    #[test]
    fn jitter_stays_inside_its_bounds() {
        let jitter = Jitter::new(7);
        for _ in 0..1000 {
            let renew = jitter.renew_interval(Duration::from_secs(2));
            assert!(renew >= Duration::from_secs(1) && renew <= Duration::from_secs(2));
            let follow = jitter.follower_interval(Duration::from_secs(2));
            assert!(follow >= Duration::from_secs(2) && follow < Duration::from_millis(2500));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_fence_fails_at_the_renew_deadline_without_any_renewal_task_running() {
        let cell = LeaderCell::new(timings());
        let start = Instant::now();
        cell.apply(Event::Acquired { epoch: Epoch(4), sent_at: start }, start);
        let rx = cell.subscribe();
        assert!(cell.fence_at(Epoch(4), Duration::from_secs(1), start + Duration::from_millis(9_999)).is_ok());
        let err = cell.fence_at(Epoch(4), Duration::ZERO, start + Duration::from_secs(10)).unwrap_err();
        assert!(matches!(err, FenceError::Lost { reason: LossReason::RenewDeadline, .. }), "{err}");
        assert_eq!(*rx.borrow(), Leadership::Lost { epoch: Epoch(4), reason: LossReason::RenewDeadline });
    }

    #[tokio::test(start_paused = true)]
    async fn the_fence_refuses_writes_longer_than_the_remaining_lease() {
        let cell = LeaderCell::new(timings());
        let start = Instant::now();
        cell.apply(Event::Acquired { epoch: Epoch(1), sent_at: start }, start);
        let at = start + Duration::from_secs(9);
        assert!(cell.fence_at(Epoch(1), Duration::from_secs(6), at).is_ok());
        assert!(matches!(cell.fence_at(Epoch(1), Duration::from_secs(7), at), Err(FenceError::LeaseTooShort { .. })));
        assert!(matches!(cell.fence_at(Epoch(2), Duration::ZERO, at), Err(FenceError::WrongEpoch { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_renewal_does_not_resurrect_a_tenure_past_its_deadline() {
        let cell = LeaderCell::new(timings());
        let start = Instant::now();
        cell.apply(Event::Acquired { epoch: Epoch(1), sent_at: start }, start);
        let late = start + Duration::from_secs(11);
        let after = cell.apply(Event::Renewed { sent_at: start + Duration::from_secs(1) }, late);
        assert_eq!(after, Leadership::Lost { epoch: Epoch(1), reason: LossReason::RenewDeadline });
    }

    #[tokio::test(start_paused = true)]
    async fn an_acquisition_reported_after_its_deadline_is_not_a_tenure() {
        let cell = LeaderCell::new(timings());
        let sent = Instant::now();
        let state = cell.apply(Event::Acquired { epoch: Epoch(2), sent_at: sent }, sent + Duration::from_secs(10));
        assert_eq!(state, Leadership::Lost { epoch: Epoch(2), reason: LossReason::RenewDeadline });
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_grant_of_an_older_epoch_is_ignored() {
        let cell = LeaderCell::new(timings());
        let now = Instant::now();
        cell.apply(Event::Acquired { epoch: Epoch(6), sent_at: now }, now);
        cell.apply(Event::Ended(LossReason::Deposed), now);
        let after = cell.apply(Event::Acquired { epoch: Epoch(5), sent_at: now }, now);
        assert_eq!(after, Leadership::Lost { epoch: Epoch(6), reason: LossReason::Deposed });
        assert!(cell.fence_at(Epoch(5), Duration::ZERO, now).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn renewals_move_the_deadline_forward_only() {
        let cell = LeaderCell::new(timings());
        let start = Instant::now();
        cell.apply(Event::Acquired { epoch: Epoch(1), sent_at: start }, start);
        cell.apply(Event::Renewed { sent_at: start + Duration::from_secs(5) }, start + Duration::from_secs(6));
        cell.apply(Event::Renewed { sent_at: start + Duration::from_secs(2) }, start + Duration::from_secs(7));
        assert!(cell.fence_at(Epoch(1), Duration::ZERO, start + Duration::from_millis(14_999)).is_ok());
        assert!(cell.fence_at(Epoch(1), Duration::ZERO, start + Duration::from_secs(15)).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_release_waits_for_writes_already_past_the_fence() {
        let cell = Arc::new(LeaderCell::new(timings()));
        let now = Instant::now();
        cell.apply(Event::Acquired { epoch: Epoch(3), sent_at: now }, now);
        let guard = cell.fence(Epoch(3), Duration::ZERO).unwrap();
        let releasing = tokio::spawn({
            let cell = Arc::clone(&cell);
            async move { cell.drain_writes().await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!releasing.is_finished());
        assert!(matches!(cell.fence(Epoch(3), Duration::ZERO), Err(FenceError::Releasing)));
        drop(guard);
        assert_eq!(releasing.await.unwrap(), Some(Epoch(3)));
        assert_eq!(cell.writes_in_flight(), 0);
    }
}
