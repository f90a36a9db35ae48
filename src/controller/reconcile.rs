//! The one reconcile round: observe → plan → enact → persist, for `veer run`'s
//! loop, `veer run --once` and `veer plan` (which stops before enacting).
//!
//! # Isolation
//! The unit of work is one record at one provider. Providers are read and
//! written concurrently, each under the round's deadline; a provider that fails
//! or times out fails only its own units, and every other unit of the round
//! proceeds. A provider that gets no answer within the deadline is *skipped*:
//! later rounds do not wait for it again while one background read retries it
//! with full-jitter backoff; one that answers `Throttled` with a `Retry-After` is
//! skipped that long (capped); one that fails fast is tried again next round. A name whose write keeps being rejected
//! at a provider is *quarantined* with backoff, and never holds up other names.
//!
//! # The deadline
//! Every round has a deadline: twice the shortest probe interval, within
//! [2 s, 20 s] ([`round_deadline`]). Each provider's reads, then its writes, run as
//! their own task; the round waits for reads until half the deadline and for
//! writes until the deadline. A provider still busy then is not waited for and not
//! cancelled (a write cut short would be ambiguous by our own hand): it is *busy*,
//! later rounds skip it until its task ends, and the outcome of its writes is
//! reported then (`late`). A task running for 5 deadlines is abandoned.
//!
//! # State per record
//! A record's planner state (warm-up, velocity and change ledgers, generation)
//! advances when the round left its plan published on at least one of its
//! providers (applied, or already there); otherwise the record keeps the state
//! it had. A provider that lagged converges to the record's *current* plan once
//! it is back, never to an older one (an older plan is not kept to be written).

use super::Setup;
use super::providers::ProviderSet;
use super::round::{self, Observations};
use super::state::{self, StateSource};
use crate::coord::{Coordinator, Epoch};
use crate::enactor::{Enactor, Fence, Intent, Outcome, Report};
use crate::health::HealthView;
use crate::planner::{Plan, PlannerState};
use crate::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use veer_provider::{ProviderError, RecordName};

/// A unit of work: (policy, provider).
pub type Unit = (String, String);

/// The round's deadline for `setup`: twice the shortest probe interval, within
/// [2 s, 20 s]. Long enough for a healthy cloud API's read and write, short
/// enough that a hung provider delays the next round by at most a few intervals.
pub fn round_deadline(setup: &Setup) -> Duration {
    let shortest = setup.policies.iter().map(|p| p.policy.spec.health_check.interval()).min();
    (shortest.unwrap_or(Duration::from_secs(1)) * 2).clamp(Duration::from_secs(2), Duration::from_secs(20))
}

/// Full-jitter backoff: uniform in `[0, min(cap, base · 2^(failures − 1))]`, at
/// least `floor`.
fn full_jitter(unit: f64, failures: u32, base: Duration, cap: Duration, floor: Duration) -> Duration {
    veer_provider::FullJitter::ceiling(base, cap, failures.saturating_sub(1)).mul_f64(unit).max(floor)
}

/// One provider's availability as rounds see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderStatus {
    /// The last call's failure, cleared by the next success (`None`: it answered).
    pub failing: Option<String>,
    /// Rounds skip it: a call got no answer within a round's deadline. Cleared by
    /// a background read that answers.
    pub skipped: bool,
    /// Rounds skip it until then: it asked to be left alone (`Retry-After`, capped).
    pub throttled_until: Option<Instant>,
    /// Consecutive failures (drives the backoff of background reads).
    pub failures: u32,
    /// When the next background read may start.
    pub retry_at: Option<Instant>,
    /// A background read is running.
    pub retrying: bool,
    /// The last successful read, wall clock.
    pub last_read: Option<Timestamp>,
    /// The last successful write, wall clock.
    pub last_write: Option<Timestamp>,
}

impl ProviderStatus {
    fn skipped_now(&self, now: Instant) -> bool {
        self.skipped || self.throttled_until.is_some_and(|at| at > now)
    }

    /// Rounds use it and its last call answered.
    pub fn available(&self, now: Instant) -> bool {
        self.failing.is_none() && !self.skipped_now(now)
    }
}

/// Every provider's availability, shared with the background retries.
#[derive(Debug, Clone, Default)]
pub struct Availability(Arc<Mutex<BTreeMap<String, ProviderStatus>>>);

/// Backoff of background reads of a provider that stopped answering: from 1 s, at most 30 s.
const RETRY_BASE: Duration = Duration::from_secs(1);
const RETRY_CAP: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured (rounds skip a throttled provider that long at most).
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(300);

impl Availability {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, ProviderStatus>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A copy of every provider's status.
    pub fn snapshot(&self) -> BTreeMap<String, ProviderStatus> {
        self.with(|m| m.clone())
    }

    /// Providers that are failing or skipped, with the last failure (status, metrics).
    pub fn unavailable(&self) -> BTreeMap<String, String> {
        let now = Instant::now();
        self.with(|m| {
            m.iter()
                .filter(|(_, s)| s.failing.is_some() || s.skipped_now(now))
                .map(|(k, s)| (k.clone(), s.failing.clone().unwrap_or_else(|| "skipped".into())))
                .collect()
        })
    }

    /// Providers rounds do not call now, with the reason.
    pub fn skipped(&self) -> BTreeMap<String, String> {
        let now = Instant::now();
        self.with(|m| {
            m.iter()
                .filter(|(_, s)| s.skipped_now(now))
                .map(|(k, s)| (k.clone(), s.failing.clone().unwrap_or_else(|| "skipped".into())))
                .collect()
        })
    }

    fn read_ok(&self, provider: &str, now: Timestamp) {
        self.with(|m| {
            let s = m.entry(provider.to_string()).or_default();
            if s.skipped || s.failing.is_some() {
                tracing::info!(provider, "provider answers again");
            }
            (s.failing, s.skipped, s.throttled_until, s.failures, s.retry_at) = (None, false, None, 0, None);
            s.last_read = Some(now);
        })
    }

    fn write_ok(&self, provider: &str, now: Timestamp) {
        self.with(|m| {
            let s = m.entry(provider.to_string()).or_default();
            s.failing = None;
            s.last_write = Some(now);
        })
    }

    /// Counts a failed call. A provider that did not answer within the deadline
    /// (`timed_out`) is skipped by rounds until a background read, after a
    /// full-jitter backoff, gets an answer; one that asked to wait is skipped for
    /// its `Retry-After` (capped); any other failure is tried again next round.
    fn failed(&self, provider: &str, why: &ProviderError, timed_out: bool, unit: f64) {
        self.with(|m| {
            let s = m.entry(provider.to_string()).or_default();
            s.failures += 1;
            if timed_out && !s.skipped {
                let delay = full_jitter(unit, s.failures, RETRY_BASE, RETRY_CAP, Duration::ZERO);
                s.retry_at = Some(Instant::now() + delay);
                tracing::warn!(provider, error = %why, "provider does not answer: rounds skip it (its records wait, the others go on) and a background read retries it");
            }
            s.skipped |= timed_out;
            if let ProviderError::Throttled { retry_after: Some(wait) } = why {
                s.throttled_until = Some(Instant::now() + (*wait).min(RETRY_AFTER_CAP));
            }
            s.failing = Some(why.to_string());
        })
    }

    /// A background read failed: wait longer before the next.
    fn retry_failed(&self, provider: &str, why: &ProviderError, unit: f64) {
        self.with(|m| {
            let s = m.entry(provider.to_string()).or_default();
            s.failures += 1;
            s.retry_at = Some(Instant::now() + full_jitter(unit, s.failures, RETRY_BASE, RETRY_CAP, Duration::ZERO));
            s.failing = Some(why.to_string());
            s.retrying = false;
        })
    }
}

/// Names that keep failing at a provider, waiting out their backoff.
#[derive(Debug, Clone, Default)]
pub struct Quarantine {
    names: BTreeMap<(String, RecordName), Quarantined>,
}

/// One quarantined (provider, name).
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    /// The last rejection.
    pub reason: String,
    /// Rejections in a row.
    pub failures: u32,
    /// Until when no write is attempted.
    pub until: Instant,
}

/// Backoff of quarantined names: from 10 s, at most 10 minutes.
const QUARANTINE_BASE: Duration = Duration::from_secs(10);
const QUARANTINE_CAP: Duration = Duration::from_secs(600);

impl Quarantine {
    /// The quarantined names, by (provider, name).
    pub fn entries(&self) -> &BTreeMap<(String, RecordName), Quarantined> {
        &self.names
    }

    fn holds(&self, provider: &str, name: &RecordName, now: Instant) -> Option<&Quarantined> {
        self.names.get(&(provider.to_string(), name.clone())).filter(|q| q.until > now)
    }

    /// Counts a rejection of `name` at `provider`: the name waits `[d/2, d]` with
    /// `d` doubling from 10 s up to 10 minutes.
    fn rejected(&mut self, provider: &str, name: &RecordName, reason: String, unit: f64) {
        let key = (provider.to_string(), name.clone());
        let failures = self.names.get(&key).map_or(1, |q| q.failures + 1);
        let d = full_jitter(1.0, failures, QUARANTINE_BASE, QUARANTINE_CAP, Duration::ZERO);
        let wait = d / 2 + (d / 2).mul_f64(unit);
        tracing::warn!(provider, name = %name, reason, failures, wait = ?wait, "name quarantined: its writes wait, the others go on");
        self.names.insert(key, Quarantined { reason, failures, until: Instant::now() + wait });
    }

    fn cleared(&mut self, provider: &str, name: &RecordName) {
        if self.names.remove(&(provider.to_string(), name.clone())).is_some() {
            tracing::info!(provider, name = %name, "name out of quarantine: written");
        }
    }
}

/// The leader's means to write: the store, its epoch and the fence.
pub struct Writer {
    /// The coordination store (planner state and history).
    pub coordinator: Arc<dyn Coordinator>,
    /// The epoch this replica leads in.
    pub epoch: Epoch,
    /// Checked before every provider write.
    pub fence: Arc<dyn Fence>,
    /// How long a write may take (the fence refuses when less lease remains).
    pub expected_write: Duration,
    /// How many plans of each record the history keeps.
    pub history_keep: usize,
}

impl Writer {
    /// The writer of the leader of `epoch`: the leader fence at `coordinator`, the
    /// write time and history length of `config`.
    pub fn leader(coordinator: Arc<dyn Coordinator>, epoch: Epoch, config: &crate::config::CoordinationConfig) -> Self {
        Self {
            fence: Arc::new(crate::enactor::LeaderFence::new(coordinator.clone(), epoch)),
            coordinator,
            epoch,
            expected_write: super::expected_write(config),
            history_keep: config.history_keep(),
        }
    }
}

/// What one round is given.
pub struct RoundInput<'a> {
    /// The policies and config in force.
    pub setup: &'a Setup,
    /// The providers.
    pub providers: &'a ProviderSet,
    /// The combined health view.
    pub health: &'a HealthView,
    /// Where planner state and overrides are read.
    pub state: &'a StateSource,
    /// Wall-clock time of the round.
    pub now: Timestamp,
    /// `None` plans only (`veer plan`); `Some` enacts and persists.
    pub writer: Option<&'a Writer>,
}

/// What one round did.
pub struct RoundReport {
    /// Whether the planner state and history were saved (the outcomes stand either way).
    pub saved: Result<(), String>,
    /// The plan, its intents and what they were planned from.
    pub planned: super::Planned,
    /// Units that could not be read this round, with the reason.
    pub unread: BTreeMap<Unit, String>,
    /// The enactment, when the round wrote.
    pub enacted: Option<Report>,
    /// Writes of earlier rounds that ended since (or were abandoned), with their outcome.
    pub late: Vec<(Intent, Outcome)>,
    /// Policies whose planner state advanced (their plan is published somewhere).
    pub advanced: BTreeSet<String>,
    /// The round ran into its deadline.
    pub deadline_missed: bool,
    /// How long it took.
    pub duration: Duration,
}

impl RoundReport {
    /// Every unit read and every intent unchanged or applied.
    pub fn converged(&self) -> bool {
        self.saved.is_ok() && self.unread.is_empty() && self.enacted.as_ref().is_none_or(Report::all_converged)
    }
}

/// The memory a controller keeps between rounds: reusable reads, provider
/// availability, quarantined names. Reconcile is still observed, not remembered:
/// none of this decides answers, it only decides what to read and try.
pub struct Reconciler {
    reads: round::ObservationCache,
    availability: Availability,
    quarantine: Quarantine,
    jitter: Arc<crate::coord::Jitter>,
    /// Providers with a task still running from an earlier round; rounds skip them.
    busy: BTreeMap<String, Busy>,
}

/// A provider's task that a round stopped waiting for.
struct Busy {
    work: Work,
    since: Instant,
}

enum Work {
    Reads(tokio::task::JoinHandle<round::ReadResults>),
    Writes { task: tokio::task::JoinHandle<Report>, intents: Vec<Intent> },
}

impl Work {
    fn is_finished(&self) -> bool {
        match self {
            Work::Reads(task) => task.is_finished(),
            Work::Writes { task, .. } => task.is_finished(),
        }
    }

    fn abort(&self) {
        match self {
            Work::Reads(task) => task.abort(),
            Work::Writes { task, .. } => task.abort(),
        }
    }
}

/// How long a provider's task may keep running past its round before it is
/// abandoned (aborted): a call that never returns must not keep its provider
/// busy for ever. A multiple of the round deadline.
const BUSY_ROUNDS_MAX: u32 = 5;

impl Default for Reconciler {
    fn default() -> Self {
        Self::new(crate::coord::Jitter::from_entropy())
    }
}

impl Reconciler {
    /// A reconciler drawing its backoff jitter from `jitter`.
    pub fn new(jitter: crate::coord::Jitter) -> Self {
        Self {
            reads: Default::default(),
            availability: Default::default(),
            quarantine: Default::default(),
            jitter: Arc::new(jitter),
            busy: BTreeMap::new(),
        }
    }

    /// Collects the tasks of earlier rounds that ended (returning the outcomes of
    /// their writes, which those rounds could not report) and abandons the ones
    /// running for longer than [`BUSY_ROUNDS_MAX`] deadlines.
    fn collect_busy(&mut self, deadline: Duration, now: Timestamp) -> Vec<(Intent, Outcome)> {
        use futures_util::FutureExt;
        let mut late = Vec::new();
        let finished: Vec<String> =
            self.busy.iter().filter(|(_, b)| b.work.is_finished()).map(|(name, _)| name.clone()).collect();
        for name in finished {
            let Some(busy) = self.busy.remove(&name) else { continue };
            match busy.work {
                Work::Writes { task, intents } => {
                    if let Some(Ok(report)) = task.now_or_never() {
                        self.note_writes(&intents, &report, now);
                        late.extend(intents.into_iter().zip(report.outcomes.into_iter().map(|(_, _, o)| o)));
                    }
                }
                // Late reads are not used (the next round reads again), but what the
                // provider answered counts: a throttle's `Retry-After` is honoured.
                Work::Reads(task) => {
                    if let Some(Ok(results)) = task.now_or_never()
                        && let Some(error) = results.iter().find_map(|(_, r)| r.as_ref().err())
                    {
                        self.availability.failed(&name, error, false, self.jitter.unit());
                    }
                }
            }
        }
        let abandoned: Vec<String> = self
            .busy
            .iter()
            .filter(|(_, b)| b.since.elapsed() > deadline * BUSY_ROUNDS_MAX)
            .map(|(name, _)| name.clone())
            .collect();
        for name in abandoned {
            let Some(busy) = self.busy.remove(&name) else { continue };
            busy.work.abort();
            let why = ProviderError::Unavailable(format!(
                "a call got no answer within {:?}: abandoned",
                deadline * BUSY_ROUNDS_MAX
            ));
            tracing::warn!(provider = %name, "a call got no answer for {BUSY_ROUNDS_MAX} round deadlines: abandoned");
            if let Work::Writes { intents, .. } = busy.work {
                let outcome = Outcome::Failed(ProviderError::Ambiguous(why.to_string()));
                late.extend(intents.into_iter().map(|i| (i, outcome.clone())));
            }
            self.availability.failed(&name, &why, true, self.jitter.unit());
        }
        late
    }

    /// Providers with a task from an earlier round still running.
    fn busy_providers(&self) -> BTreeMap<String, String> {
        self.busy
            .iter()
            .map(|(name, b)| (name.clone(), format!("still busy with a call started {:?} ago", b.since.elapsed())))
            .collect()
    }

    /// Forgets reusable reads (a new epoch or policy set).
    pub fn forget_reads(&mut self) {
        self.reads.forget();
    }

    /// Provider availability (status, metrics).
    pub fn availability(&self) -> &Availability {
        &self.availability
    }

    /// Quarantined names (status, metrics).
    pub fn quarantine(&self) -> &Quarantine {
        &self.quarantine
    }

    /// One round; see the module documentation. Errors only when the store cannot
    /// be read; provider failures are per unit, and a failed save is in the report
    /// beside the outcomes it follows.
    pub async fn round(&mut self, input: RoundInput<'_>) -> anyhow::Result<RoundReport> {
        let started = Instant::now();
        let limit = round_deadline(input.setup);
        let deadline = started + limit;
        // Reads get the first half: a provider slow to read leaves the others the
        // second half for their writes.
        let reads_by = started + limit / 2;
        let late = self.collect_busy(limit, input.now);
        self.retry_unavailable(input.setup, input.providers, limit);
        let mut skip = self.availability.skipped();
        skip.extend(self.busy_providers());
        let reuse_for = |provider: &str| {
            input.setup.config.config.providers.get(provider).map_or(Duration::ZERO, |p| p.resync_every())
        };
        let mut observation = self.observe(&input, &skip, &reuse_for, reads_by).await;
        let mut planned = self.plan(&input, &observation.observed).await?;
        if observation.reused && !planned.intents.is_empty() && input.writer.is_some() {
            // Never write from a reused read: read again, plan again.
            self.reads.forget();
            skip.extend(self.busy_providers());
            observation = self.observe(&input, &skip, &reuse_for, reads_by).await;
            planned = self.plan(&input, &observation.observed).await?;
        }
        self.note_reads(&observation, input.now);
        let Some(writer) = input.writer else {
            return Ok(RoundReport {
                saved: Ok(()),
                planned,
                unread: observation.failed.into_iter().map(|(k, (_, why))| (k, why)).collect(),
                enacted: None,
                late,
                advanced: BTreeSet::new(),
                deadline_missed: Instant::now() >= deadline,
                duration: started.elapsed(),
            });
        };
        let enactor = Arc::new(Enactor::new(
            input.setup.config.config.cluster_id.value.clone(),
            input.providers.providers.clone(),
            writer.fence.clone(),
            writer.expected_write,
        ));
        let (report, held) = self.enact(&enactor, &planned.intents, deadline, input.now).await;
        if !planned.intents.is_empty() {
            self.reads.forget();
        }
        let advanced = advanced(&input, &planned, &observation.observed, &report);
        let persisted = persisted(&planned.state, &planned.plan, &advanced);
        let saved = state::save(writer.coordinator.as_ref(), writer.epoch, &persisted, input.now, writer.history_keep)
            .await
            .map_err(|e| format!("saving the planner state: {e}"));
        Ok(RoundReport {
            saved,
            planned,
            unread: observation.failed.into_iter().map(|(k, (_, why))| (k, why)).collect(),
            enacted: Some(report),
            late,
            advanced,
            deadline_missed: held || Instant::now() >= deadline,
            duration: started.elapsed(),
        })
    }

    /// The round's reads; providers still reading at `reads_by` become busy.
    async fn observe(
        &mut self,
        input: &RoundInput<'_>,
        skip: &BTreeMap<String, String>,
        reuse_for: &(dyn Fn(&str) -> Duration + Sync),
        reads_by: Instant,
    ) -> round::Observation {
        let (observation, running) =
            self.reads.observe(&input.setup.policies, input.providers, skip, reuse_for, reads_by).await;
        for (name, task) in running {
            self.busy.insert(name, Busy { work: Work::Reads(task), since: Instant::now() });
        }
        observation
    }

    /// Writes `intents` (quarantined names excepted), each provider's share as its
    /// own task, waited for until `deadline`: a provider still writing then becomes
    /// busy and its intents' outcome is [`Outcome::InFlight`] (reported as `late`
    /// when the task ends). Returns one outcome per intent, in order, and whether
    /// some provider was still writing at the deadline.
    async fn enact(
        &mut self,
        enactor: &Arc<Enactor>,
        intents: &[Intent],
        deadline: Instant,
        now: Timestamp,
    ) -> (Report, bool) {
        let at = Instant::now();
        // Each provider's share, with the intents' positions in `intents`.
        let mut by_provider: BTreeMap<String, (Vec<usize>, Vec<Intent>)> = BTreeMap::new();
        for (index, intent) in intents.iter().enumerate() {
            if self.quarantine.holds(&intent.provider, &intent.desired.name, at).is_none() {
                let (indices, share) = by_provider.entry(intent.provider.clone()).or_default();
                indices.push(index);
                share.push(intent.clone());
            }
        }
        let waited = futures_util::future::join_all(by_provider.into_iter().map(|(name, (indices, share))| {
            let enactor = enactor.clone();
            let owned = share.clone();
            let mut task = tokio::spawn(async move { enactor.enact(&owned).await });
            async move {
                match tokio::time::timeout_at(deadline, &mut task).await {
                    Ok(Ok(report)) => (name, indices, share, Ok(report)),
                    Ok(Err(panicked)) => (name, indices, share, Err((None, panicked.to_string()))),
                    Err(_) => (name, indices, share, Err((Some(task), String::new()))),
                }
            }
        }))
        .await;
        let mut report = Report::default();
        let mut outcomes: Vec<Option<Outcome>> = vec![None; intents.len()];
        let mut held = false;
        for (name, indices, share, result) in waited {
            match result {
                Ok(part) => {
                    self.note_writes(&share, &part, now);
                    report.writes += part.writes;
                    report.fence_lost = report.fence_lost.or(part.fence_lost);
                    report.durations.extend(part.durations);
                    for (index, (_, _, outcome)) in indices.into_iter().zip(part.outcomes) {
                        outcomes[index] = Some(outcome);
                    }
                }
                Err((Some(task), _)) => {
                    held = true;
                    tracing::warn!(provider = %name, "still writing at the round deadline: not waited for; its outcome is reported when it ends");
                    indices.into_iter().for_each(|index| outcomes[index] = Some(Outcome::InFlight));
                    self.busy.insert(name, Busy { work: Work::Writes { task, intents: share }, since: at });
                }
                Err((None, panicked)) => {
                    let outcome =
                        Outcome::Failed(ProviderError::Ambiguous(format!("the write task failed: {panicked}")));
                    indices.into_iter().for_each(|index| outcomes[index] = Some(outcome.clone()));
                }
            }
        }
        // One outcome per intent, in order: the enacted ones, and the quarantined ones.
        report.outcomes = intents
            .iter()
            .zip(outcomes)
            .map(|(intent, outcome)| {
                let outcome = outcome.unwrap_or_else(|| {
                    let q = self.quarantine.holds(&intent.provider, &intent.desired.name, at);
                    let why = q.map_or_else(String::new, |q| {
                        format!("after {} rejections in a row: {}", q.failures, q.reason)
                    });
                    Outcome::Quarantined(why)
                });
                (intent.provider.clone(), intent.desired.name.clone(), outcome)
            })
            .collect();
        (report, held)
    }

    async fn plan(&self, input: &RoundInput<'_>, observed: &Observations) -> anyhow::Result<super::Planned> {
        super::plan_observed(input.setup, input.providers, input.health, input.state, input.now, observed.clone()).await
    }

    /// Read outcomes into provider availability.
    fn note_reads(&self, observation: &round::Observation, now: Timestamp) {
        let mut failed: BTreeMap<&str, &ProviderError> = BTreeMap::new();
        for ((_, provider), (error, _)) in &observation.failed {
            if let Some(error) = error {
                failed.entry(provider.as_str()).or_insert(error);
            }
        }
        for (provider, error) in &failed {
            let timed_out = observation.timed_out.contains(*provider);
            self.availability.failed(provider, error, timed_out, self.jitter.unit());
        }
        let read: BTreeSet<&str> = observation.fresh.iter().map(|(_, p)| p.as_str()).collect();
        for provider in read.into_iter().filter(|p| !failed.contains_key(p)) {
            self.availability.read_ok(provider, now);
        }
    }

    /// Write outcomes into availability and quarantine.
    fn note_writes(&mut self, intents: &[Intent], report: &Report, now: Timestamp) {
        for (intent, (provider, name, outcome)) in intents.iter().zip(&report.outcomes) {
            debug_assert_eq!(&intent.provider, provider);
            match outcome {
                Outcome::Applied { .. } | Outcome::Unchanged => {
                    self.availability.write_ok(provider, now);
                    self.quarantine.cleared(provider, name);
                }
                Outcome::Failed(
                    e @ (ProviderError::Unavailable(_) | ProviderError::Throttled { .. } | ProviderError::Ambiguous(_)),
                ) => self.availability.failed(provider, e, false, self.jitter.unit()),
                Outcome::Failed(e @ (ProviderError::Rejected(_) | ProviderError::WouldEmpty(_))) => {
                    self.quarantine.rejected(provider, name, e.to_string(), self.jitter.unit())
                }
                _ => {}
            }
        }
    }

    /// Starts one background read per unavailable provider whose backoff has
    /// passed; success makes it available for the next round. Rounds never wait
    /// for these reads.
    fn retry_unavailable(&self, setup: &Setup, providers: &ProviderSet, timeout: Duration) {
        let due: Vec<String> = self.availability.with(|m| {
            m.iter_mut()
                // Never beside a call of an earlier round still running at that provider.
                .filter(|(name, s)| {
                    s.skipped
                        && !s.retrying
                        && !self.busy.contains_key(*name)
                        && s.retry_at.is_none_or(|at| at <= Instant::now())
                })
                .map(|(name, s)| {
                    s.retrying = true;
                    name.clone()
                })
                .collect()
        });
        for name in due {
            let probe = setup.policies.iter().find_map(|l| {
                let p = &l.policy;
                p.spec
                    .publish_to
                    .value
                    .iter()
                    .any(|t| t.value == name)
                    .then(|| (p.record_name().clone(), p.spec.record.record_type.value.record_type()))
            });
            let (Some(provider), Some((record, rtype))) = (providers.providers.get(&name).cloned(), probe) else {
                self.availability.with(|m| m.remove(&name));
                continue;
            };
            let (availability, jitter) = (self.availability.clone(), self.jitter.clone());
            tokio::spawn(async move {
                let result = match tokio::time::timeout(timeout, provider.read(&record, rtype)).await {
                    Ok(result) => result,
                    Err(_) => Err(ProviderError::Unavailable(format!("no answer within {timeout:?}"))),
                };
                match result {
                    Ok(_) => {
                        availability.read_ok(&name, crate::time::Clock::now(&crate::time::SystemClock::default()));
                        availability.with(|m| m.entry(name).or_default().retrying = false);
                    }
                    Err(e) => availability.retry_failed(&name, &e, jitter.unit()),
                }
            });
        }
    }
}

/// The policies whose plan the round left published on at least one provider:
/// a unit read and already in sync (no intent), or an intent applied or unchanged.
fn advanced(
    input: &RoundInput<'_>,
    planned: &super::Planned,
    observed: &Observations,
    report: &Report,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for loaded in &input.setup.policies {
        let policy = loaded.policy.name();
        let in_sync = loaded.policy.spec.publish_to.value.iter().any(|target| {
            let unit = (policy.to_string(), target.value.clone());
            observed.contains_key(&unit)
                && !planned.intents.iter().any(|i| i.policy == policy && i.provider == target.value)
        });
        let written = planned
            .intents
            .iter()
            .zip(&report.outcomes)
            .any(|(i, (_, _, o))| i.policy == policy && matches!(o, Outcome::Applied { .. } | Outcome::Unchanged));
        if in_sync || written {
            out.insert(policy.to_string());
        }
    }
    out
}

/// What the store keeps after a round: each advanced record's new state and
/// changed plan; every other record's previous state, and no history entry.
fn persisted(previous: &PlannerState, plan: &Plan, advanced: &BTreeSet<String>) -> Plan {
    let mut state = PlannerState::default();
    for record in &plan.records {
        let source = if advanced.contains(&record.policy) { &plan.state } else { previous };
        if let Some(s) = source.records.get(&record.policy) {
            state.records.insert(record.policy.clone(), s.clone());
        }
    }
    let records = plan.records.iter().filter(|r| advanced.contains(&r.policy)).cloned().collect();
    Plan { records, state }
}

#[cfg(test)]
mod tests;
