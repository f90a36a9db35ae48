//! This replica's prober, a [`Vantage`]: it probes every endpoint of every
//! loaded policy on its [`Cadence`], applies hysteresis per endpoint, and
//! publishes a [`VantageReport`] snapshot that the leader's combiner reads.
//!
//! Guarantees:
//! - Constant work: one probe per endpoint per interval, whatever the results;
//!   a failure never triggers an extra probe.
//! - No burst after a pause: ticks missed while the process was stopped or
//!   starved are skipped (see [`super::schedule`]).
//! - Bounded concurrency: at most [`VantageOptions::concurrency`] probes in
//!   flight; a probe's timeout starts once it holds its slot.
//! - Reload keeps state: endpoints whose probe target is unchanged keep their
//!   verdict and streaks; endpoints that left are dropped.
//!
//! Caveats: the report is republished every `publish_every` and at once
//! (coalesced over a few milliseconds) when a verdict changes; between those
//! the latest latencies are not visible. A CA bundle rewritten in place under
//! the same path is read again only for endpoints whose settings change.

use super::hysteresis::Hysteresis;
use super::probe::{self, ProbeResult, ProbeTarget, tls::TlsConfigs};
use super::schedule::{Cadence, stable_hash};
use super::{EndpointKey, EndpointReport, ProbeVerdict, VantageReport};
use crate::policy::LoadedPolicy;
use crate::time::{Clock, Timestamp};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// A probe in flight.
pub type ProbeFuture = Pin<Box<dyn Future<Output = ProbeResult> + Send>>;

/// Runs one probe. The network implementation is [`NetworkProber`]; tests of
/// the scheduler substitute one that answers from a script.
pub trait Prober: Send + Sync + 'static {
    /// Probes `target` once.
    fn probe(&self, target: Arc<ProbeTarget>) -> ProbeFuture;
}

/// Probes over the network with [`probe::probe`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NetworkProber;

impl Prober for NetworkProber {
    fn probe(&self, target: Arc<ProbeTarget>) -> ProbeFuture {
        Box::pin(async move { probe::probe(&target).await })
    }
}

/// A [`Clock`] on tokio's time, so that reports made under
/// `tokio::time::pause()` carry virtual timestamps.
#[derive(Debug)]
pub struct TokioClock {
    origin: Timestamp,
    start: Instant,
}

impl TokioClock {
    /// A clock that reads `origin` now.
    pub fn new(origin: Timestamp) -> Self {
        Self { origin, start: Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.origin.add(self.start.elapsed())
    }
}

/// Tuning of a [`Vantage`].
#[derive(Debug, Clone)]
pub struct VantageOptions {
    /// Most probes in flight at once. Constant work needs about
    /// `endpoints × timeout / interval` when every probe times out (5 000 for
    /// 10 000 endpoints at 1 s with 500 ms timeouts); more would only spend
    /// file descriptors. See [`default_concurrency`].
    pub concurrency: usize,
    /// How often the report is republished when nothing changes (default 1 s;
    /// the combiner counts a vantage fresh for 3 intervals).
    pub publish_every: Duration,
}

impl Default for VantageOptions {
    fn default() -> Self {
        Self { concurrency: default_concurrency(), publish_every: Duration::from_secs(1) }
    }
}

/// 8 192, or half the process's open-file limit when that is lower: running
/// out of descriptors would make every probe fail at once, which is the
/// checker's failure, not the endpoints'.
pub fn default_concurrency() -> usize {
    let soft_limit = std::fs::read_to_string("/proc/self/limits").ok().and_then(|limits| {
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line["Max open files".len()..].split_whitespace().next()?.parse::<usize>().ok()
    });
    soft_limit.map_or(8_192, |n| (n / 2).clamp(64, 8_192))
}

/// Verdict changes arriving within this window go out in one report.
const COALESCE: Duration = Duration::from_millis(20);

/// This replica's prober. Dropping it stops every probe.
pub struct Vantage {
    shared: Arc<Shared>,
    publisher: AbortHandle,
    report: watch::Receiver<Arc<VantageReport>>,
}

struct Shared {
    id: String,
    clock: Arc<dyn Clock>,
    prober: Arc<dyn Prober>,
    permits: Semaphore,
    runtime: Handle,
    /// Origin of every endpoint's probe grid.
    epoch: Instant,
    /// Jitter seed: the vantage id's hash, so replicas do not probe in lock-step.
    seed: u64,
    slots: Mutex<BTreeMap<EndpointKey, Slot>>,
    changed: Notify,
    sender: watch::Sender<Arc<VantageReport>>,
    probes_started: AtomicU64,
    probes_passed: AtomicU64,
}

/// One endpoint's probe loop and state.
struct Slot {
    target: Arc<ProbeTarget>,
    interval: Duration,
    rise: u32,
    fall: u32,
    state: Arc<Mutex<EndpointState>>,
    task: AbortHandle,
}

struct EndpointState {
    hysteresis: Hysteresis,
    report: EndpointReport,
}

impl Vantage {
    /// Starts an empty vantage on the current tokio runtime, probing over the
    /// network. Load policies with [`Vantage::replace_policies`].
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(id: impl Into<String>, clock: Arc<dyn Clock>, options: VantageOptions) -> Self {
        probe::tls::install_default_provider();
        Self::start_with_prober(id, clock, options, Arc::new(NetworkProber))
    }

    /// As [`Vantage::start`], with another way of probing.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start_with_prober(
        id: impl Into<String>,
        clock: Arc<dyn Clock>,
        options: VantageOptions,
        prober: Arc<dyn Prober>,
    ) -> Self {
        let id = id.into();
        let empty = VantageReport { vantage: id.clone(), at: clock.now(), endpoints: BTreeMap::new() };
        let (sender, report) = watch::channel(Arc::new(empty));
        let shared = Arc::new(Shared {
            seed: stable_hash(&[id.as_bytes()]),
            id,
            clock,
            prober,
            permits: Semaphore::new(options.concurrency.max(1)),
            runtime: Handle::current(),
            epoch: Instant::now(),
            slots: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
            sender,
            probes_started: AtomicU64::new(0),
            probes_passed: AtomicU64::new(0),
        });
        let publisher = shared.runtime.spawn(publish_loop(shared.clone(), options.publish_every)).abort_handle();
        Self { shared, publisher, report }
    }

    /// This vantage's id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The latest published report (a cheap clone).
    pub fn report(&self) -> Arc<VantageReport> {
        self.report.borrow().clone()
    }

    /// A receiver that sees every published report.
    pub fn subscribe(&self) -> watch::Receiver<Arc<VantageReport>> {
        self.report.clone()
    }

    /// Probes started since the start (for benchmarks and tests).
    pub fn probes_started(&self) -> u64 {
        self.shared.probes_started.load(Ordering::Relaxed)
    }

    /// Probes that passed since the start.
    pub fn probes_passed(&self) -> u64 {
        self.shared.probes_passed.load(Ordering::Relaxed)
    }

    /// Number of endpoints being probed.
    pub fn endpoint_count(&self) -> usize {
        self.shared.slots().len()
    }

    /// Replaces the probed set with the endpoints of `policies` (start-up and
    /// hot reload). An endpoint whose probe target is unchanged keeps its
    /// verdict and streaks (new `rise`/`fall` apply from its next result);
    /// a changed target starts again from Unknown. Publishes a report at once.
    pub fn replace_policies(&self, policies: &[LoadedPolicy]) {
        let mut tls = TlsConfigs::default();
        let mut wanted = BTreeMap::new();
        for loaded in policies {
            let h = &loaded.policy.spec.health_check;
            for target in probe::targets_for(loaded, &mut tls) {
                wanted.insert(target.key.clone(), (target, h.interval(), h.rise(), h.fall()));
            }
        }
        let now = self.shared.clock.now();
        let mut slots = self.shared.slots();
        slots.retain(|key, slot| {
            let keep = wanted.contains_key(key);
            if !keep {
                slot.task.abort();
            }
            keep
        });
        for (key, (target, interval, rise, fall)) in wanted {
            let previous = slots.remove(&key);
            let slot = match previous {
                Some(slot)
                    if *slot.target == target && (slot.interval, slot.rise, slot.fall) == (interval, rise, fall) =>
                {
                    slot
                }
                Some(slot) if *slot.target == target => {
                    slot.task.abort();
                    lock(&slot.state).hysteresis.set_thresholds(rise, fall);
                    self.spawn_slot(Arc::new(target), interval, rise, fall, slot.state)
                }
                previous => {
                    if let Some(old) = previous {
                        old.task.abort();
                    }
                    let state = Arc::new(Mutex::new(EndpointState {
                        hysteresis: Hysteresis::new(rise, fall),
                        report: EndpointReport {
                            verdict: ProbeVerdict::Unknown,
                            since: now,
                            last_latency_ms: None,
                            last_failure: None,
                            checked: None,
                        },
                    }));
                    self.spawn_slot(Arc::new(target), interval, rise, fall, state)
                }
            };
            slots.insert(key, slot);
        }
        drop(slots);
        self.shared.publish();
    }

    fn spawn_slot(
        &self,
        target: Arc<ProbeTarget>,
        interval: Duration,
        rise: u32,
        fall: u32,
        state: Arc<Mutex<EndpointState>>,
    ) -> Slot {
        let cadence = Cadence::new(&target.key, interval, self.shared.seed);
        let task = self
            .shared
            .runtime
            .spawn(probe_loop(self.shared.clone(), target.clone(), cadence, state.clone()))
            .abort_handle();
        Slot { target, interval, rise, fall, state, task }
    }
}

impl Drop for Vantage {
    fn drop(&mut self) {
        self.publisher.abort();
        for slot in self.shared.slots().values() {
            slot.task.abort();
        }
    }
}

impl std::fmt::Debug for Vantage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vantage").field("id", &self.shared.id).field("endpoints", &self.endpoint_count()).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn slots(&self) -> MutexGuard<'_, BTreeMap<EndpointKey, Slot>> {
        lock(&self.slots)
    }

    fn record(&self, state: &Mutex<EndpointState>, result: &ProbeResult) {
        if result.is_success() {
            self.probes_passed.fetch_add(1, Ordering::Relaxed);
        }
        let mut state = lock(state);
        let changed = state.hysteresis.observe(result.is_success());
        state.report.last_latency_ms = result.latency_ms();
        state.report.last_failure = result.reason();
        state.report.checked = Some(self.clock.now());
        if let Some(verdict) = changed {
            state.report.verdict = verdict;
            state.report.since = self.clock.now();
            drop(state);
            self.changed.notify_one();
        }
    }

    fn publish(&self) {
        let endpoints =
            self.slots().iter().map(|(key, slot)| (key.clone(), lock(&slot.state).report.clone())).collect();
        let report = VantageReport { vantage: self.id.clone(), at: self.clock.now(), endpoints };
        self.sender.send_replace(Arc::new(report));
    }
}

/// Probes one endpoint on its grid until aborted.
async fn probe_loop(shared: Arc<Shared>, target: Arc<ProbeTarget>, cadence: Cadence, state: Arc<Mutex<EndpointState>>) {
    let mut k = cadence.next_after(shared.epoch.elapsed());
    loop {
        let due = shared.epoch + cadence.due(k);
        tokio::time::sleep_until(due).await;
        let woke = Instant::now();
        if woke.saturating_duration_since(due) > cadence.late_tolerance() {
            // Stopped or starved past this tick: skip to the next one on the grid
            // instead of probing now, so that a pause does not become a burst.
            k = cadence.next_after(woke - shared.epoch);
            continue;
        }
        {
            let Ok(_permit) = shared.permits.acquire().await else { return };
            shared.probes_started.fetch_add(1, Ordering::Relaxed);
            let result = shared.prober.probe(target.clone()).await;
            shared.record(&state, &result);
        }
        k = (k + 1).max(cadence.next_after(shared.epoch.elapsed()));
    }
}

/// Republishes the report every `every`, and soon after any verdict change.
async fn publish_loop(shared: Arc<Shared>, every: Duration) {
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shared.changed.notified() => tokio::time::sleep(COALESCE).await,
        }
        shared.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_concurrency_leaves_file_descriptors_to_spare() {
        let n = default_concurrency();
        assert!((64..=8_192).contains(&n), "{n}");
    }
}
