//! The independent observer of the simulations: [`Recorder`] sits in front of the
//! provider's backend (shared by every replica, below every replica's own retry
//! layer and faults) and sees what a resolver would: it reads every managed name
//! before and after each write that reaches the backend, every 10 ms while one
//! is in flight, and whenever the driver asks. From that alone it checks:
//!
//! - **I1** a name that was published never has zero live answers;
//! - **I2** a write lands only over the generation it was built from, and the
//!   generation in the ownership record never goes back;
//! - **I3** the leader epoch in the ownership record never goes back (a deposed
//!   leader's write never lands after a newer leader's).
//!
//! Also here: the test doubles that switch a safety mechanism off, so that the
//! checks are seen to fail ([`Unconditional`], [`TwoStep`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use veer_provider::conformance::Backdoor;
use veer_provider::{ChangeBatch, Observed, Provider, ProviderError, ProviderFuture, RecordName, RecordType};

/// One write that reached the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteAttempt {
    /// Milliseconds since the recorder started.
    pub at_ms: u64,
    /// The writer's epoch (from the ownership record it writes).
    pub epoch: u64,
    /// Per change: (generation it was built from, generation the backend held, generation written).
    pub generations: Vec<(u64, u64, u64)>,
    /// Whether it landed.
    pub landed: bool,
}

#[derive(Debug, Default)]
struct Log {
    /// Names that had answers at some point.
    published: BTreeSet<RecordName>,
    /// Last seen (live answers, generation, epoch) per name.
    last: BTreeMap<RecordName, (usize, u64, u64)>,
    writes: Vec<WriteAttempt>,
    violations: Vec<String>,
}

/// See the module docs.
pub struct Recorder {
    inner: Arc<dyn Provider>,
    names: Vec<(RecordName, RecordType)>,
    started: Instant,
    log: Mutex<Log>,
}

impl Recorder {
    /// Observes `names` at `inner`.
    pub fn new(inner: Arc<dyn Provider>, names: Vec<(RecordName, RecordType)>) -> Arc<Self> {
        Arc::new(Self { inner, names, started: Instant::now(), log: Mutex::default() })
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        (Instant::now() - self.started).as_millis() as u64
    }

    async fn read_inner(&self, name: &RecordName, rtype: RecordType) -> Observed {
        self.inner.read(name, rtype).await.expect("the backend answers reads")
    }

    /// Reads every name, as a resolver polling the provider would, and checks I1,
    /// and that generations and epochs never go back.
    pub async fn observe(&self) {
        for (name, rtype) in &self.names {
            let now = self.read_inner(name, *rtype).await;
            let live = now.records.as_ref().map_or(0, |r| r.live_answers().count());
            let (generation, epoch) = now.ownership.as_ref().map_or((0, 0), |o| (o.generation, o.epoch));
            let t = self.now_ms();
            let mut log = self.log();
            if live > 0 {
                log.published.insert(name.clone());
            } else if log.published.contains(name) {
                log.violations.push(format!("I1: {name} has no answers at {t} ms"));
            }
            if let Some(&(_, was_generation, was_epoch)) = log.last.get(name) {
                if generation < was_generation {
                    log.violations.push(format!(
                        "I2: the generation of {name} went back from {was_generation} to {generation} at {t} ms"
                    ));
                }
                if epoch < was_epoch {
                    log.violations.push(format!(
                        "I3: a write of epoch {epoch} landed on {name} after epoch {was_epoch}'s, at {t} ms"
                    ));
                }
            }
            log.last.insert(name.clone(), (live, generation, epoch));
        }
    }

    /// Every violation seen so far.
    pub fn violations(&self) -> Vec<String> {
        self.log().violations.clone()
    }

    /// Every write that reached the backend so far.
    pub fn writes(&self) -> Vec<WriteAttempt> {
        self.log().writes.clone()
    }

    /// Every write as one line (time, epoch, generations, landed): a run's
    /// fingerprint for the determinism re-run.
    pub fn write_log(&self) -> Vec<String> {
        self.log()
            .writes
            .iter()
            .map(|w| format!("{}ms e{} {:?} {}", w.at_ms, w.epoch, w.generations, w.landed))
            .collect()
    }

    /// The generation `name` holds now.
    pub async fn generation(&self, name: &RecordName, rtype: RecordType) -> u64 {
        self.read_inner(name, rtype).await.ownership.map_or(0, |o| o.generation)
    }

    /// The live answers of `name` now, sorted.
    pub async fn answers(&self, name: &RecordName, rtype: RecordType) -> Vec<(String, Option<u32>)> {
        let now = self.read_inner(name, rtype).await;
        let mut answers: Vec<_> =
            now.records.iter().flat_map(|r| r.live_answers()).map(|a| (a.value.clone(), a.weight)).collect();
        answers.sort();
        answers
    }

    async fn apply_observed(&self, batch: &ChangeBatch) -> Result<(), ProviderError> {
        self.observe().await;
        let mut before = Vec::new();
        for change in &batch.changes {
            before.push(
                self.read_inner(change.name(), change.expected.rtype).await.ownership.map_or(0, |o| o.generation),
            );
        }
        // A resolver polling every 10 ms while the write is in flight.
        let write = self.inner.apply(batch);
        tokio::pin!(write);
        let result = loop {
            tokio::select! {
                biased;
                result = &mut write => break result,
                () = tokio::time::sleep(Duration::from_millis(10)) => self.observe().await,
            }
        };
        let generations: Vec<(u64, u64, u64)> = batch
            .changes
            .iter()
            .zip(&before)
            .map(|(c, held)| (c.expected.ownership.as_ref().map_or(0, |o| o.generation), *held, c.ownership.generation))
            .collect();
        let epoch = batch.changes.first().map_or(0, |c| c.ownership.epoch);
        let t = self.now_ms();
        {
            let mut log = self.log();
            if result.is_ok() {
                for (change, (built_from, held, _)) in batch.changes.iter().zip(&generations) {
                    if built_from != held {
                        log.violations.push(format!(
                            "I2: a change of {} built from generation {built_from} landed over generation {held} at {t} ms",
                            change.name()
                        ));
                    }
                }
            }
            log.writes.push(WriteAttempt { at_ms: t, epoch, generations, landed: result.is_ok() });
        }
        self.observe().await;
        result
    }
}

impl veer_provider::ProviderWrapper for Recorder {
    fn inner(&self) -> &dyn Provider {
        &*self.inner
    }
    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        Box::pin(self.apply_observed(batch))
    }
}

/// A provider without compare-and-swap: it writes whatever the change says,
/// whatever the backend holds (the safety mechanism of I2, switched off).
pub struct Unconditional(pub Arc<dyn Provider>);

impl veer_provider::ProviderWrapper for Unconditional {
    fn inner(&self) -> &dyn Provider {
        &*self.0
    }
    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            let mut blind = batch.clone();
            for change in &mut blind.changes {
                change.expected = self.0.read(change.name(), change.expected.rtype).await?;
            }
            self.0.apply(&blind).await
        })
    }
}

/// A non-atomic provider: it deletes the old answers, waits `gap` (a second API
/// call), then writes the new ones (the atomicity behind I1, switched off). A
/// crash in the gap leaves the name empty.
pub struct TwoStep {
    /// The backend.
    pub inner: Arc<dyn Provider>,
    /// Writes behind the backend's checks (the delete step).
    pub backdoor: Arc<dyn Backdoor>,
    /// Time between the two steps.
    pub gap: Duration,
}

impl veer_provider::ProviderWrapper for TwoStep {
    fn inner(&self) -> &dyn Provider {
        &*self.inner
    }
    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            for change in &batch.changes {
                let now = self.inner.read(change.name(), change.expected.rtype).await?;
                if now != change.expected {
                    return Err(ProviderError::Conflict(format!("{} changed since it was read", change.name())));
                }
            }
            for change in &batch.changes {
                self.backdoor.set_answers(change.name(), change.expected.rtype, &[]).await;
            }
            tokio::time::sleep(self.gap).await;
            let mut rest = batch.clone();
            for change in &mut rest.changes {
                change.expected = self.inner.read(change.name(), change.expected.rtype).await?;
            }
            self.inner.apply(&rest).await
        })
    }
}
