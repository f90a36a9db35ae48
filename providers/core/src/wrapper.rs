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
