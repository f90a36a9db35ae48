//! The embedded server's [`Provider`]: weighted, atomic batches, in-process
//! compare-and-swap on the ownership record and the answers.

use crate::store::Store;
use std::sync::Arc;
use veer_provider::{
    Capabilities, CasPrimitive, ChangeBatch, Observed, Provider, ProviderFuture, RecordName, RecordType, Weighting,
};

/// The largest weight accepted; weights are relative, so the range only needs to
/// be wide enough for fine-grained warm-up stages.
pub const MAX_WEIGHT: u32 = 65_535;

/// Reads and writes the zones of a [`Store`] that an [`crate::EmbeddedServer`] serves.
#[derive(Debug, Clone)]
pub struct EmbeddedProvider {
    name: String,
    store: Arc<Store>,
    zones: Vec<RecordName>,
}

impl EmbeddedProvider {
    /// A provider called `name` over `store`.
    pub fn new(name: impl Into<String>, store: Arc<Store>) -> Self {
        let zones = store.apexes();
        Self { name: name.into(), store, zones }
    }

    /// The store written to.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

impl Provider for EmbeddedProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            weighting: Weighting::Weighted { max_weight: MAX_WEIGHT },
            batch_records_max: 10_000,
            atomic_batches: true,
            cas: CasPrimitive::InProcess,
            answer_ids: true,
        }
    }

    fn zones(&self) -> &[RecordName] {
        &self.zones
    }

    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        let result = self.store.observe(name, rtype);
        Box::pin(async move { result })
    }

    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        let result = (|| {
            for change in &batch.changes {
                if let Some(too_heavy) = change.desired.answers.iter().find(|a| a.weight.unwrap_or(0) > MAX_WEIGHT) {
                    return Err(veer_provider::ProviderError::Rejected(format!(
                        "{}: weight {:?} above {MAX_WEIGHT}",
                        change.name(),
                        too_heavy.weight
                    )));
                }
            }
            self.store.apply(batch, &self.capabilities())
        })();
        Box::pin(async move { result })
    }
}
