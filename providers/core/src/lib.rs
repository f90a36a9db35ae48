//! The provider model shared by veer and every DNS provider crate.
//!
//! This crate knows nothing about the controller: it defines what a DNS record
//! looks like to veer ([`RecordSet`], [`Answer`]), the ownership record that makes
//! every write conditional ([`OwnershipRecord`]), what a provider can do
//! ([`Capabilities`]) and the narrow [`Provider`] trait each provider implements
//! (ARCHITECTURE.md §6); wrappers in front of a provider implement [`ProviderWrapper`].

mod budget;
mod chaos;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
#[cfg(feature = "http")]
pub mod http;
mod name;
mod ownership;
mod provider;
mod record;
mod resilient;
mod retry;
mod wrapper;

pub use budget::{ApiBudget, BudgetConfig, BudgetError};
pub use chaos::{
    ChaosCall, ChaosError, ChaosStats, Chaotic, FaultObserver, FaultRates, FaultRule, Injected, Operation,
};
pub use error::ProviderError;
pub use name::{NameError, RecordName};
pub use ownership::{OwnershipError, OwnershipRecord};
pub use provider::{Capabilities, CasPrimitive, Change, ChangeBatch, Observed, Provider, ProviderFuture, Weighting};
pub use record::{Answer, RecordSet, RecordType};
pub use resilient::{Resilient, Settled, settle};
pub use retry::{FullJitter, RetryBudget, RetryPolicy};
pub use wrapper::ProviderWrapper;
