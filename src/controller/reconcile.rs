//! The one reconcile round: observe → plan → enact → persist, for `veer run`'s
//! loop, `veer run --once` and `veer plan` (which stops before enacting).
//!
//! # Isolation
//! The unit of work is one record at one provider. Providers are read and
//! written concurrently, each under the round's deadline; a provider that fails
//! or times out fails only its own units, and every other unit of the round
//! proceeds. Such a provider is marked *unavailable*: later rounds skip it at
//! once (they never wait for it again) while one background read per provider
//! retries it with full-jitter backoff. A name whose write keeps being rejected
//! at a provider is *quarantined* with backoff, and never holds up other names.
//!
//! # The deadline
//! Every round has a deadline: twice the shortest probe interval, within
//! [2 s, 20 s] ([`round_deadline`]). Reads must be done by half of it, so that a
//! provider hanging in a read leaves the others time to write; no provider call
//! outlives the deadline.
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
    let exp = base.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(cap);
    exp.mul_f64(unit).max(floor)
}

/// One provider's availability as rounds see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderStatus {
    /// Why it is unavailable (`None`: available).
    pub unavailable: Option<String>,
    /// Consecutive failed rounds or retries.
    pub failures: u32,
    /// When the next background retry may start.
    pub retry_at: Option<Instant>,
    /// A background retry is running.
    pub retrying: bool,
    /// The last successful read, wall clock.
    pub last_read: Option<Timestamp>,
    /// The last successful write, wall clock.
    pub last_write: Option<Timestamp>,
}

/// Every provider's availability, shared with the background retries.
#[derive(Debug, Clone, Default)]
pub struct Availability(Arc<Mutex<BTreeMap<String, ProviderStatus>>>);

/// Backoff of unavailable providers' retries: from 1 s, at most 60 s.
const RETRY_BASE: Duration = Duration::from_secs(1);
const RETRY_CAP: Duration = Duration::from_secs(60);
/// The longest `Retry-After` honoured before a throttled provider is retried.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(300);

impl Availability {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, ProviderStatus>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A copy of every provider's status.
    pub fn snapshot(&self) -> BTreeMap<String, ProviderStatus> {
        self.with(|m| m.clone())
    }

    /// Providers that rounds skip, with the reason.
    pub fn unavailable(&self) -> BTreeMap<String, String> {
        self.with(|m| m.iter().filter_map(|(k, s)| Some((k.clone(), s.unavailable.clone()?))).collect())
    }

    fn read_ok(&self, provider: &str, now: Timestamp) {
        self.with(|m| {
            let s = m.entry(provider.to_string()).or_default();
            (s.unavailable, s.failures, s.retry_at) = (None, 0, None);
            s.last_read = Some(now);
        })
    }

    fn write_ok(&self, provider: &str, now: Timestamp) {
        self.with(|m| m.entry(provider.to_string()).or_default().last_write = Some(now))
    }

    /// Marks `provider` unavailable for `why`, retried after a full-jitter backoff
    /// (or the provider's own `Retry-After`, capped).
    fn failed(&self, provider: &str, why: &ProviderError, unit: f64) {
        let retry_after = match why {
            ProviderError::Throttled { retry_after } => retry_after.map(|d| d.min(RETRY_AFTER_CAP)),
            _ => None,
        };
        self.with(|m| {
            let s = m.entry(provider.to_string()).or_default();
            s.failures += 1;
            let delay = full_jitter(unit, s.failures, RETRY_BASE, RETRY_CAP, retry_after.unwrap_or_default());
            s.retry_at = Some(Instant::now() + delay);
            if s.unavailable.is_none() {
                tracing::warn!(provider, error = %why, retry_in = ?delay, "provider unavailable: its records wait, the others go on");
            }
            s.unavailable = Some(why.to_string());
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
        let entry = self.names.entry((provider.to_string(), name.clone()));
        let failures = match &entry {
            std::collections::btree_map::Entry::Occupied(o) => o.get().failures + 1,
            std::collections::btree_map::Entry::Vacant(_) => 1,
        };
        let d = full_jitter(1.0, failures, QUARANTINE_BASE, QUARANTINE_CAP, Duration::ZERO);
        let wait = d / 2 + (d / 2).mul_f64(unit);
        tracing::warn!(provider, name = %name, reason, failures, wait = ?wait, "name quarantined: its writes wait, the others go on");
        *entry.or_insert(Quarantined { reason: String::new(), failures: 0, until: Instant::now() }) =
            Quarantined { reason, failures, until: Instant::now() + wait };
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
    /// The plan, its intents and what they were planned from.
    pub planned: super::Planned,
    /// Units that could not be read this round, with the reason.
    pub unread: BTreeMap<Unit, String>,
    /// The enactment, when the round wrote.
    pub enacted: Option<Report>,
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
        self.unread.is_empty() && self.enacted.as_ref().is_none_or(Report::all_converged)
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
}

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
        }
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
    /// be read or written; provider failures are per unit, in the report.
    pub async fn round(&mut self, input: RoundInput<'_>) -> anyhow::Result<RoundReport> {
        let started = Instant::now();
        let deadline = started + round_deadline(input.setup);
        // Reads get the first half: a provider that hangs in its read leaves the
        // others the second half for their writes.
        let reads_by = started + round_deadline(input.setup) / 2;
        self.retry_unavailable(input.setup, input.providers, round_deadline(input.setup));
        let skip = self.availability.unavailable();
        let reuse_for = |provider: &str| {
            input.setup.config.config.providers.get(provider).map_or(Duration::ZERO, |p| p.resync_every())
        };
        let read = self.reads.observe(&input.setup.policies, input.providers, &skip, reuse_for, reads_by).await;
        let mut observation = read;
        let mut planned = self.plan(&input, &observation.observed).await?;
        if observation.reused && !planned.intents.is_empty() && input.writer.is_some() {
            // Never write from a reused read: read again, plan again.
            self.reads.forget();
            observation = self.reads.observe(&input.setup.policies, input.providers, &skip, reuse_for, reads_by).await;
            planned = self.plan(&input, &observation.observed).await?;
        }
        self.note_reads(&observation, input.now);
        let Some(writer) = input.writer else {
            return Ok(RoundReport {
                planned,
                unread: observation.failed.into_iter().map(|(k, (_, why))| (k, why)).collect(),
                enacted: None,
                advanced: BTreeSet::new(),
                deadline_missed: Instant::now() >= deadline,
                duration: started.elapsed(),
            });
        };
        let (intents, _held): (Vec<Intent>, Vec<Intent>) = planned
            .intents
            .iter()
            .cloned()
            .partition(|i| self.quarantine.holds(&i.provider, &i.desired.name, Instant::now()).is_none());
        let enactor = Enactor::new(
            input.setup.config.config.cluster_id.value.clone(),
            input.providers.providers.clone(),
            writer.fence.clone(),
            writer.expected_write,
        )
        .with_deadline(deadline);
        let enacted = enactor.enact(&intents).await;
        self.note_writes(&intents, &enacted, input.now);
        // One outcome per planned intent, in order: the enacted ones, and the held ones.
        let mut enacted_outcomes = enacted.outcomes.into_iter();
        let outcomes = planned
            .intents
            .iter()
            .map(|intent| match self.quarantine.holds(&intent.provider, &intent.desired.name, Instant::now()) {
                Some(q) if !intents.contains(intent) => (
                    intent.provider.clone(),
                    intent.desired.name.clone(),
                    Outcome::Quarantined(format!("after {} rejections in a row: {}", q.failures, q.reason)),
                ),
                _ => enacted_outcomes.next().expect("an outcome per enacted intent"),
            })
            .collect();
        let report = Report { outcomes, writes: enacted.writes, fence_lost: enacted.fence_lost };
        if !planned.intents.is_empty() {
            self.reads.forget();
        }
        let advanced = advanced(&input, &planned, &observation.observed, &report);
        let saved = persisted(&planned.state, &planned.plan, &advanced);
        state::save(writer.coordinator.as_ref(), writer.epoch, &saved, input.now, writer.history_keep).await?;
        Ok(RoundReport {
            planned,
            unread: observation.failed.into_iter().map(|(k, (_, why))| (k, why)).collect(),
            enacted: Some(report),
            advanced,
            deadline_missed: Instant::now() >= deadline,
            duration: started.elapsed(),
        })
    }

    async fn plan(&self, input: &RoundInput<'_>, observed: &Observations) -> anyhow::Result<super::Planned> {
        super::plan_observed(input.setup, input.providers, input.health, input.state, input.now, observed.clone()).await
    }

    /// Read outcomes into provider availability.
    fn note_reads(&self, observation: &round::Observation, now: Timestamp) {
        let failed: BTreeMap<&str, &ProviderError> =
            observation.failed.iter().filter_map(|((_, p), (e, _))| Some((p.as_str(), e.as_ref()?))).collect();
        for (provider, error) in &failed {
            self.availability.failed(provider, error, self.jitter.unit());
        }
        for (_, provider) in observation.observed.keys().chain(observation.fresh.iter()) {
            if !failed.contains_key(provider.as_str()) && observation.fresh.iter().any(|(_, p)| p == provider) {
                self.availability.read_ok(provider, now);
            }
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
                ) => self.availability.failed(provider, e, self.jitter.unit()),
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
                .filter(|(_, s)| {
                    s.unavailable.is_some() && !s.retrying && s.retry_at.is_none_or(|at| at <= Instant::now())
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
                        tracing::info!(provider = %name, "provider available again");
                        availability.read_ok(&name, crate::time::Clock::now(&crate::time::SystemClock::default()));
                    }
                    Err(e) => availability.failed(&name, &e, jitter.unit()),
                }
                availability.with(|m| m.entry(name).or_default().retrying = false);
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
