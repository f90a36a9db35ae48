//! The provider trait: capabilities, read, conditional apply (SPEC §5).

use crate::{OwnershipRecord, ProviderError, RecordName, RecordSet, RecordType};
use std::future::Future;
use std::pin::Pin;

/// How a provider expresses a record's weighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Weighting {
    /// Per-answer weights from 0 to `max_weight` (Route 53: 255).
    Weighted {
        /// The largest weight the provider accepts.
        max_weight: u32,
    },
    /// Membership only: an answer is present or absent.
    SetOnly,
}

/// The provider-side primitive that makes an apply conditional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CasPrimitive {
    /// In-process compare of the ownership record (embedded server).
    InProcess,
    /// RFC 2136 value-dependent prerequisite on the ownership TXT.
    Rfc2136Prerequisite,
    /// Batch that deletes the exact current values and creates the new ones.
    ExactDeleteCreate,
    /// HTTP `If-Match` on an entity tag.
    IfMatch,
    /// Read, compare, write: weaker; compensated by a fence re-check and verification.
    PreRead,
}

/// What a provider can do; the planner and enactor adapt to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capabilities {
    /// Weights or membership.
    pub weighting: Weighting,
    /// Most record changes (answers plus ownership records) in one call.
    pub batch_records_max: usize,
    /// Whether one call applies all or nothing.
    pub atomic_batches: bool,
    /// How a write is made conditional.
    pub cas: CasPrimitive,
}

/// A managed name as read from a provider.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Observed {
    /// The name that was read.
    pub name: RecordName,
    /// The record type that was read.
    pub rtype: RecordType,
    /// Its answers, `None` when the name holds no record of this type.
    pub records: Option<RecordSet>,
    /// The decoded ownership record, `None` when `_veer.<name>` is absent.
    pub ownership: Option<OwnershipRecord>,
    /// Raw ownership TXT text that did not decode, kept so the name is never
    /// treated as unowned by mistake.
    pub foreign_ownership: Option<String>,
}

/// One conditional change of one name: applies only if the provider still holds
/// `expected` (answers and ownership as read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What was read and what must still be there.
    pub expected: Observed,
    /// The answers to publish (never empty: invariant I1).
    pub desired: RecordSet,
    /// The ownership record to publish with them.
    pub ownership: OwnershipRecord,
}

/// Changes of one zone applied as one provider call where the provider allows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeBatch {
    /// The zone all changes belong to.
    pub zone: RecordName,
    /// The changes.
    pub changes: Vec<Change>,
}

/// A boxed future, so that providers can be held as `dyn Provider`.
pub type ProviderFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// One DNS provider. Implementations live in their own crates and depend on this
/// crate only.
pub trait Provider: Send + Sync {
    /// The provider's configured name.
    fn name(&self) -> &str;
    /// What the provider can do.
    fn capabilities(&self) -> Capabilities;
    /// The zones this provider serves for veer.
    fn zones(&self) -> &[RecordName];
    /// Reads a name's current answers and ownership record.
    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed>;
    /// Applies a batch as one conditional change; a lost race is [`ProviderError::Conflict`].
    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()>;
}
