//! [`Resilient`]: the API budget, the one retry layer and the re-read after an
//! ambiguous failure, wrapped around any provider.
//!
//! # Expected flow
//! Every attempt (read, apply, or re-read) first waits for a token of the shared
//! [`ApiBudget`]. Reads are idempotent and retried on `Throttled`, `Unavailable`
//! and `Ambiguous`. Applies are conditional (they carry what was read), so a retry
//! cannot overwrite a newer state; they are retried on `Throttled` and
//! `Unavailable` only. `Conflict`, `NotOwned`, `WouldEmpty` and `Rejected` are
//! returned at once: a conflict means re-read and re-plan, never retry blindly.
//!
//! # Re-read after an ambiguous failure
//! When an apply fails ambiguously (timeout or lost response after sending), the
//! write may have landed. Retrying it blindly would then fail with a misleading
//! `Conflict` (the provider now holds our own new state), and reporting failure
//! would make the caller re-plan from a wrong picture. So every name of the batch
//! is read again and the batch is [settled](settle):
//! - every name holds the desired answers and ownership record → the write landed:
//!   `Ok(())`;
//! - every name still holds what was expected → it did not land: retried like an
//!   `Unavailable` failure (it is still conditional);
//! - anything else (another writer, or a non-atomic provider that applied part)
//!   → `Conflict`, so that the caller re-reads and re-plans;
//! - the re-read itself fails → the original `Ambiguous` error: the state is
//!   unknown and the caller must read before planning again.
//!
//! # Caveats
//! Throttling honours the provider's `retry_after`: the sleep is the larger of it
//! and the jittered delay. Sleeps use tokio time (virtual in tests).

use crate::budget::ApiBudget;
use crate::provider::{ChangeBatch, Observed, Provider, ProviderFuture};
use crate::retry::{RetryBudget, RetryPolicy};
use crate::{ProviderError, RecordName, RecordType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What an ambiguous apply turned out to be, after re-reading every name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Every name holds the desired answers and ownership record.
    Landed,
    /// Every name still holds exactly what the change expected.
    NotLanded,
    /// Neither: someone else wrote, or part of a non-atomic batch landed.
    Diverged(String),
}

/// Re-reads every name of `batch` from `provider` and tells whether it landed.
pub async fn settle(provider: &dyn Provider, batch: &ChangeBatch) -> Result<Settled, ProviderError> {
    let capabilities = provider.capabilities();
    let (mut landed, mut untouched) = (0usize, 0usize);
    let mut first_divergence = None;
    for change in &batch.changes {
        let now = provider.read(change.name(), change.expected.rtype).await?;
        let published = capabilities.published(&change.desired);
        if now.records.as_ref() == Some(&published) && now.ownership.as_ref() == Some(&change.ownership) {
            landed += 1;
        } else if now == change.expected {
            untouched += 1;
        } else if first_divergence.is_none() {
            first_divergence = Some(format!("{} holds neither the expected nor the desired state", change.name()));
        }
    }
    let total = batch.changes.len();
    Ok(if landed == total {
        Settled::Landed
    } else if untouched == total {
        Settled::NotLanded
    } else {
        Settled::Diverged(first_divergence.unwrap_or_else(|| format!("{landed} of {total} changes landed")))
    })
}

/// A provider behind the API budget and the retry layer (see the module docs).
pub struct Resilient {
    inner: Arc<dyn Provider>,
    budget: Arc<ApiBudget>,
    policy: RetryPolicy,
    retries: Arc<RetryBudget>,
    /// Derives one jitter seed per call, so that a run is reproducible from its seed.
    seeds: Mutex<StdRng>,
}

impl std::fmt::Debug for Resilient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resilient")
            .field("provider", &self.inner.name())
            .field("budget", &self.budget.config())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Resilient {
    /// Wraps `inner`. `budget` and `retries` are shared by every user of the same
    /// provider account; `seed` makes the jitter reproducible.
    pub fn new(
        inner: Arc<dyn Provider>,
        budget: Arc<ApiBudget>,
        policy: RetryPolicy,
        retries: Arc<RetryBudget>,
        seed: u64,
    ) -> Self {
        Self { inner, budget, policy, retries, seeds: Mutex::new(StdRng::seed_from_u64(seed)) }
    }

    fn next_seed(&self) -> u64 {
        self.seeds.lock().unwrap_or_else(|p| p.into_inner()).next_u64()
    }

    /// Sleeps before retry `attempt` (1-based) or returns false when retries are over.
    async fn back_off(&self, attempt: u32, delays: &mut impl Iterator<Item = Duration>, error: &ProviderError) -> bool {
        if attempt >= self.policy.attempts_max || !self.retries.try_withdraw() {
            return false;
        }
        let jittered = delays.next().unwrap_or(self.policy.cap);
        let delay = match error {
            ProviderError::Throttled { retry_after: Some(after) } => jittered.max(*after),
            _ => jittered,
        };
        tokio::time::sleep(delay).await;
        true
    }

    async fn read_with_retries(&self, name: &RecordName, rtype: RecordType) -> Result<Observed, ProviderError> {
        self.retries.deposit();
        let mut delays = self.policy.delays(self.next_seed());
        let mut attempt = 1;
        loop {
            self.budget.acquire().await;
            let error = match self.inner.read(name, rtype).await {
                Ok(observed) => return Ok(observed),
                Err(e) if e.is_retryable() => e,
                Err(e) => return Err(e),
            };
            if !self.back_off(attempt, &mut delays, &error).await {
                return Err(error);
            }
            attempt += 1;
        }
    }

    async fn apply_with_retries(&self, batch: &ChangeBatch) -> Result<(), ProviderError> {
        batch.check(&self.inner.capabilities())?;
        self.retries.deposit();
        let mut delays = self.policy.delays(self.next_seed());
        let mut attempt = 1;
        loop {
            self.budget.acquire().await;
            let error = match self.inner.apply(batch).await {
                Ok(()) => return Ok(()),
                Err(e @ (ProviderError::Throttled { .. } | ProviderError::Unavailable(_))) => e,
                Err(ProviderError::Ambiguous(why)) => match settle(self, batch).await {
                    Ok(Settled::Landed) => return Ok(()),
                    Ok(Settled::NotLanded) => {
                        ProviderError::Unavailable(format!("not applied after an ambiguous failure: {why}"))
                    }
                    Ok(Settled::Diverged(what)) => {
                        return Err(ProviderError::Conflict(format!("after an ambiguous failure ({why}): {what}")));
                    }
                    Err(_) => return Err(ProviderError::Ambiguous(why)),
                },
                Err(e) => return Err(e),
            };
            if !self.back_off(attempt, &mut delays, &error).await {
                return Err(error);
            }
            attempt += 1;
        }
    }
}

impl crate::ProviderWrapper for Resilient {
    fn inner(&self) -> &dyn Provider {
        &*self.inner
    }

    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        Box::pin(self.read_with_retries(name, rtype))
    }

    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        Box::pin(self.apply_with_retries(batch))
    }
}
