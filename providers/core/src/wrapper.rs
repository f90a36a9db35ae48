//! [`ProviderWrapper`]: a provider in front of another that states only what it
//! changes.
//!
//! Budgets, retries, fault injection, metering and test doubles all sit in front
//! of a provider and change one or two calls. Writing each of them as a full
//! [`Provider`] repeats the pass-through of every other call, and a forgotten
//! one (a wrapper that reports its own capabilities by mistake) goes unnoticed.
//! A wrapper implements this trait instead: it names its inner provider and
//! overrides the calls it changes; every other call is forwarded unchanged, and
//! the blanket impl makes it a [`Provider`] (also as `dyn Provider`).
//!
//! # Caveat
//! The trait's methods share their names with [`Provider`]'s, so a module that
//! imports both and calls `read` on a concrete wrapper type gets an ambiguity
//! error (E0034). Wrappers are therefore implemented by path, without importing
//! the trait: `impl veer_provider::ProviderWrapper for Metered { … }`.

use crate::provider::{Capabilities, ChangeBatch, Observed, Provider, ProviderFuture};
use crate::{RecordName, RecordType};

/// A provider in front of `inner()`; every call it does not override is
/// forwarded to the inner provider unchanged (see the module docs).
pub trait ProviderWrapper: Send + Sync {
    /// The provider this one wraps.
    fn inner(&self) -> &dyn Provider;

    /// The inner provider's name.
    fn name(&self) -> &str {
        self.inner().name()
    }

    /// The inner provider's capabilities.
    fn capabilities(&self) -> Capabilities {
        self.inner().capabilities()
    }

    /// The inner provider's zones.
    fn zones(&self) -> &[RecordName] {
        self.inner().zones()
    }

    /// Reads through the inner provider.
    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        self.inner().read(name, rtype)
    }

    /// Applies through the inner provider.
    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        self.inner().apply(batch)
    }
}

impl<W: ProviderWrapper> Provider for W {
    fn name(&self) -> &str {
        ProviderWrapper::name(self)
    }

    fn capabilities(&self) -> Capabilities {
        ProviderWrapper::capabilities(self)
    }

    fn zones(&self) -> &[RecordName] {
        ProviderWrapper::zones(self)
    }

    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        ProviderWrapper::read(self, name, rtype)
    }

    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        ProviderWrapper::apply(self, batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CasPrimitive, ProviderError, Weighting};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A provider whose every call is visible: a fixed name, zones and
    /// capabilities, reads that echo the name, applies that fail with the zone.
    struct Fixed {
        zones: Vec<RecordName>,
    }

    impl Provider for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                weighting: Weighting::SetOnly,
                batch_records_max: 7,
                atomic_batches: false,
                cas: CasPrimitive::PreRead,
                answer_ids: false,
            }
        }
        fn zones(&self) -> &[RecordName] {
            &self.zones
        }
        fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
            Box::pin(async move { Ok(Observed::absent(name.clone(), rtype)) })
        }
        fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
            Box::pin(async move { Err(ProviderError::Rejected(batch.zone.to_string())) })
        }
    }

    /// Overrides nothing but counts reads.
    struct CountsReads {
        inner: Arc<dyn Provider>,
        reads: AtomicUsize,
    }

    impl ProviderWrapper for CountsReads {
        fn inner(&self) -> &dyn Provider {
            &*self.inner
        }
        fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.read(name, rtype)
        }
    }

    #[tokio::test]
    async fn a_wrapper_forwards_every_call_it_does_not_override() {
        let zone = RecordName::parse("example.test.").unwrap();
        let inner: Arc<dyn Provider> = Arc::new(Fixed { zones: vec![zone.clone()] });
        let wrapper: Arc<dyn Provider> = Arc::new(CountsReads { inner: inner.clone(), reads: AtomicUsize::new(0) });

        assert_eq!(wrapper.name(), "fixed");
        assert_eq!(wrapper.capabilities(), inner.capabilities());
        assert_eq!(wrapper.zones(), std::slice::from_ref(&zone));
        let name = RecordName::parse("api.example.test.").unwrap();
        assert_eq!(wrapper.read(&name, RecordType::A).await, Ok(Observed::absent(name.clone(), RecordType::A)));
        let batch = ChangeBatch { zone: zone.clone(), changes: Vec::new() };
        assert_eq!(wrapper.apply(&batch).await, Err(ProviderError::Rejected(zone.to_string())));
    }

    #[tokio::test]
    async fn an_overridden_call_replaces_the_forwarding_one() {
        let zone = RecordName::parse("example.test.").unwrap();
        let counting =
            Arc::new(CountsReads { inner: Arc::new(Fixed { zones: vec![zone] }), reads: AtomicUsize::new(0) });
        let wrapper: Arc<dyn Provider> = counting.clone();
        let name = RecordName::parse("api.example.test.").unwrap();
        wrapper.read(&name, RecordType::A).await.unwrap();
        wrapper.read(&name, RecordType::AAAA).await.unwrap();
        assert_eq!(counting.reads.load(Ordering::SeqCst), 2);
    }
}
