//! The enactor: the only code that writes DNS (ARCHITECTURE.md §1, §5, §9).
//!
//! # Expected flow
//! The controller reads every managed name from its providers, plans against
//! what it read, and hands the enactor one [`Intent`] per (provider, record):
//! the desired answers plus the [`Observed`] state the plan was built from.
//!
//! # Guarantees
//! - **I1 never empty**: an intent without a live answer is refused before any I/O.
//! - **I11 ownership**: a name owned by another cluster, with an undecodable
//!   ownership record, or with answers but no ownership record (unless the
//!   policy adopts) is never written.
//! - **I2 no stale writes**: the name is re-read immediately before writing; if
//!   it no longer matches the state the plan was built from, the intent is a
//!   [`Outcome::Conflict`] (re-plan), never applied. The write itself is a
//!   provider-side compare-and-swap on that state, including the ownership
//!   record, so a race after the re-read also fails at the provider.
//! - **I3 fencing**: [`Fence::check`] runs immediately before every provider
//!   call; when it fails, no further call is made in this round.
//! - **I9 no churn**: an intent whose answers are already published makes no write.
//!
//! # Isolation
//! The unit of work is one record at one provider. Providers are written
//! concurrently, each on its own, so a slow or failing provider holds up only its
//! own intents. A rejected batch is split in halves until the changes that fail are
//! alone, and the rest is applied in the same round: one bad name never blocks its
//! zone. A write is never cancelled by the enactor: the controller runs each
//! provider's share as its own task and stops *waiting* for one that is slow.
//!
//! # Assumptions
//! Providers are wrapped in [`veer_provider::Resilient`]: the API budget, the one
//! retry layer and the re-read that settles an ambiguous write live there.
//!
//! # Errors
//! A `Conflict` is reported, not retried: the caller re-reads and re-plans. An
//! ambiguous failure that the retry layer could not settle is reported as such,
//! and the caller reads before planning again.

mod fence;

pub use fence::{AlwaysLeader, Fence, FenceError, LeaderFence};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use veer_provider::{Change, ChangeBatch, Observed, OwnershipRecord, Provider, ProviderError, RecordName, RecordSet};

/// What the plan wants published for one record at one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// The provider's configured name.
    pub provider: String,
    /// The policy the plan came from.
    pub policy: String,
    /// Its content hash, written into the ownership record.
    pub policy_hash: String,
    /// Whether the policy may take over a name that has answers but no ownership record.
    pub adopt: bool,
    /// The answers to publish, in the provider's weight scale (`None` weights on set-only providers).
    pub desired: RecordSet,
    /// The state the plan was built from; the write applies only if it still holds.
    pub base: Observed,
}

/// What happened to one intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already published: no write (I9).
    Unchanged,
    /// Written; the provider now holds this generation.
    Applied {
        /// The new generation in the ownership record.
        generation: u64,
    },
    /// Refused before any write: the change would leave the name empty (I1).
    WouldEmpty,
    /// Refused before any write: the name is not ours (I11).
    NotOwned(String),
    /// The provider no longer holds the state the plan was built from: re-plan.
    Conflict(String),
    /// Not attempted because the fence failed earlier in this round.
    Fenced,
    /// Not attempted: the name keeps failing at this provider and waits out its backoff.
    Quarantined(String),
    /// Sent, and still running at the provider when the round stopped waiting; its
    /// outcome is reported when it ends.
    InFlight,
    /// The provider call failed.
    Failed(ProviderError),
}

impl Outcome {
    /// True when the round should be re-planned (the state moved under us).
    pub fn needs_replan(&self) -> bool {
        matches!(self, Outcome::Conflict(_) | Outcome::Failed(ProviderError::Ambiguous(_)))
    }
}

/// The result of one enactment round.
#[derive(Debug, Default)]
pub struct Report {
    /// One entry per intent, in input order: (provider, name, outcome).
    pub outcomes: Vec<(String, RecordName, Outcome)>,
    /// Provider write calls made.
    pub writes: usize,
    /// Set when the fence failed; no write followed it.
    pub fence_lost: Option<FenceError>,
    /// How long each provider's share took.
    pub durations: BTreeMap<String, Duration>,
}

impl Report {
    /// True when every intent is unchanged or applied.
    pub fn all_converged(&self) -> bool {
        self.outcomes.iter().all(|(_, _, o)| matches!(o, Outcome::Unchanged | Outcome::Applied { .. }))
    }
}

/// The single writer. Not `Clone`: one enactor per process.
pub struct Enactor {
    owner: String,
    providers: BTreeMap<String, Arc<dyn Provider>>,
    fence: Arc<dyn Fence>,
    expected_write: Duration,
}

/// What the providers' concurrent tasks share within one enactment.
#[derive(Default)]
struct Shared {
    fence_lost: std::sync::Mutex<Option<FenceError>>,
    writes: std::sync::atomic::AtomicUsize,
}

/// Whether a failed batch may be split to find the changes that fail: errors that
/// belong to some change (its compare-and-swap, its content), not to the provider.
fn splittable(error: &ProviderError) -> bool {
    matches!(
        error,
        ProviderError::Conflict(_)
            | ProviderError::Rejected(_)
            | ProviderError::NotOwned(_)
            | ProviderError::WouldEmpty(_)
    )
}

impl Enactor {
    /// An enactor writing as `owner` (the cluster id) through `providers`,
    /// checking `fence` before each write; `expected_write` is how long a write
    /// may take (the fence refuses when less lease than that remains).
    pub fn new(
        owner: impl Into<String>,
        providers: BTreeMap<String, Arc<dyn Provider>>,
        fence: Arc<dyn Fence>,
        expected_write: Duration,
    ) -> Self {
        Self { owner: owner.into(), providers, fence, expected_write }
    }

    /// Applies the intents; see the module documentation for the guarantees.
    pub async fn enact(&self, intents: &[Intent]) -> Report {
        let mut by_provider: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, intent) in intents.iter().enumerate() {
            by_provider.entry(intent.provider.as_str()).or_default().push(index);
        }
        let shared = Shared::default();
        let per_provider = futures_util::future::join_all(by_provider.into_iter().map(|(provider, indices)| {
            let shared = &shared;
            async move {
                let started = tokio::time::Instant::now();
                let outcomes = self.enact_at(provider, indices, intents, shared).await;
                (provider, started.elapsed(), outcomes)
            }
        }))
        .await;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; intents.len()];
        let mut durations = BTreeMap::new();
        for (provider, took, done) in per_provider {
            durations.insert(provider.to_string(), took);
            for (index, outcome) in done {
                outcomes[index] = Some(outcome);
            }
        }
        Report {
            outcomes: intents
                .iter()
                .zip(outcomes)
                .map(|(i, o)| (i.provider.clone(), i.desired.name.clone(), o.expect("every intent has an outcome")))
                .collect(),
            writes: shared.writes.into_inner(),
            fence_lost: shared.fence_lost.into_inner().unwrap_or_else(|e| e.into_inner()),
            durations,
        }
    }

    /// One provider's share of [`Enactor::enact`]: re-reads, then per-zone batches.
    async fn enact_at(
        &self,
        provider_name: &str,
        indices: Vec<usize>,
        intents: &[Intent],
        shared: &Shared,
    ) -> Vec<(usize, Outcome)> {
        let mut outcomes = Vec::new();
        // Per zone: indices of intents that need a write, with their change.
        let mut pending: BTreeMap<RecordName, Vec<(usize, Change)>> = BTreeMap::new();
        for index in indices {
            match self.prepare(&intents[index]).await {
                Ok(Some((zone, change))) => pending.entry(zone).or_default().push((index, change)),
                Ok(None) => outcomes.push((index, Outcome::Unchanged)),
                Err(outcome) => outcomes.push((index, outcome)),
            }
        }
        let Some(provider) = self.providers.get(provider_name) else { return outcomes };
        // Each change writes two record sets: the answers and the ownership record.
        let per_batch = (provider.capabilities().batch_records_max / 2).max(1);
        for (zone, changes) in pending {
            for chunk in chunk_changes(changes, per_batch) {
                self.apply_isolating(provider.as_ref(), &zone, chunk, shared, &mut outcomes).await;
            }
        }
        outcomes
    }

    /// Applies `chunk` as one batch; when the batch fails for a reason that belongs
    /// to some of its changes, applies each half on its own, down to single changes,
    /// so that the changes that can be applied are, in this round.
    async fn apply_isolating(
        &self,
        provider: &dyn Provider,
        zone: &RecordName,
        chunk: Vec<(usize, Change)>,
        shared: &Shared,
        outcomes: &mut Vec<(usize, Outcome)>,
    ) {
        let mut batches = vec![chunk];
        while let Some(batch) = batches.pop() {
            let fenced = shared.fence_lost.lock().unwrap_or_else(|e| e.into_inner()).is_some();
            let permit = if fenced {
                None
            } else {
                match self.fence.check(self.expected_write) {
                    Ok(permit) => Some(permit),
                    Err(e) => {
                        tracing::warn!(error = %e, "fence lost: no further writes this round");
                        *shared.fence_lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                        None
                    }
                }
            };
            let Some(_permit) = permit else {
                outcomes.extend(batch.iter().map(|(index, _)| (*index, Outcome::Fenced)));
                continue;
            };
            let changes = ChangeBatch { zone: zone.clone(), changes: batch.iter().map(|(_, c)| c.clone()).collect() };
            shared.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let result = provider.apply(&changes).await;
            match result {
                Err(e) if batch.len() > 1 && splittable(&e) => {
                    tracing::debug!(error = %e, changes = batch.len(), "batch failed: applying each half on its own");
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    batches.push(second);
                    batches.push(first);
                }
                result => outcomes.extend(batch.iter().map(|(index, change)| {
                    (
                        *index,
                        match &result {
                            Ok(()) => Outcome::Applied { generation: change.ownership.generation },
                            Err(ProviderError::Conflict(why)) => Outcome::Conflict(why.clone()),
                            Err(other) => Outcome::Failed(other.clone()),
                        },
                    )
                })),
            }
        }
    }

    /// Checks one intent and builds its change; `Ok(None)` when nothing is to be written.
    async fn prepare(&self, intent: &Intent) -> Result<Option<(RecordName, Change)>, Outcome> {
        if intent.desired.live_answers().next().is_none() {
            return Err(Outcome::WouldEmpty);
        }
        let provider = self.providers.get(&intent.provider).ok_or_else(|| {
            Outcome::Failed(ProviderError::Rejected(format!("no provider named `{}`", intent.provider)))
        })?;
        let zone = provider
            .zones()
            .iter()
            .filter(|z| intent.desired.name.is_within(z))
            .max_by_key(|z| z.as_str().len())
            .cloned()
            .ok_or_else(|| {
                Outcome::Failed(ProviderError::Rejected(format!(
                    "{} is outside every zone of provider `{}`",
                    intent.desired.name, intent.provider
                )))
            })?;
        let current = provider.read(&intent.desired.name, intent.desired.rtype).await.map_err(Outcome::Failed)?;
        current.check_owner(&self.owner, intent.adopt).map_err(|e| Outcome::NotOwned(e.to_string()))?;
        if current != intent.base {
            return Err(Outcome::Conflict(format!(
                "{} changed since it was planned (generation {} → {}): re-plan",
                intent.desired.name,
                generation(&intent.base),
                generation(&current)
            )));
        }
        if current.records.as_ref() == Some(&provider.capabilities().published(&intent.desired)) {
            return Ok(None);
        }
        let ownership = OwnershipRecord {
            owner: self.owner.clone(),
            generation: generation(&current) + 1,
            epoch: self.fence.epoch(),
            policy_hash: intent.policy_hash.clone(),
        };
        Ok(Some((zone, Change { expected: current, desired: intent.desired.clone(), ownership, adopt: intent.adopt })))
    }
}

fn generation(observed: &Observed) -> u64 {
    observed.ownership.as_ref().map_or(0, |o| o.generation)
}

/// Splits changes into batches of at most `per_batch` changes.
fn chunk_changes(changes: Vec<(usize, Change)>, per_batch: usize) -> Vec<Vec<(usize, Change)>> {
    let mut chunks: Vec<Vec<(usize, Change)>> = Vec::new();
    for (index, change) in changes {
        match chunks.last_mut() {
            Some(last) if last.len() < per_batch => last.push((index, change)),
            _ => chunks.push(vec![(index, change)]),
        }
    }
    chunks
}

#[cfg(test)]
mod tests;
