//! The provider trait: capabilities, read, conditional apply (ARCHITECTURE.md §6).

use crate::{Answer, OwnershipRecord, ProviderError, RecordName, RecordSet, RecordType};
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
    /// Whether the provider stores an id per answer (Route 53's `SetIdentifier`).
    /// When it does not (Cloud DNS WRR items, set-only records), answers read back
    /// carry no `set_id`, and [`Capabilities::published`] drops it from what is
    /// compared, so that an unchanged record is not rewritten every round (I9).
    pub answer_ids: bool,
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

impl Observed {
    /// Builds an observation from raw provider data: the answers of the name, and
    /// the TXT values found at `_veer.<name>`. Anything but exactly one TXT value
    /// that decodes is kept as foreign, so the name is never taken for unowned.
    pub fn from_parts(name: RecordName, rtype: RecordType, records: Option<RecordSet>, txt_values: &[String]) -> Self {
        let records = records.filter(|r| !r.answers.is_empty());
        let (ownership, foreign_ownership) = match txt_values {
            [] => (None, None),
            [one] => match OwnershipRecord::decode(one) {
                Ok(o) => (Some(o), None),
                Err(_) => (None, Some(one.clone())),
            },
            many => (None, Some(many.join(" | "))),
        };
        Self { name, rtype, records, ownership, foreign_ownership }
    }

    /// Nothing at the name: no answers of this type and no ownership record.
    pub fn absent(name: RecordName, rtype: RecordType) -> Self {
        Self { name, rtype, records: None, ownership: None, foreign_ownership: None }
    }

    /// Whether `owner` may change this name: it holds the ownership record, or the
    /// name is empty, or (with `adopt`) it has answers but no ownership record.
    /// A record that does not decode or names another owner is never ours (I11).
    pub fn check_owner(&self, owner: &str, adopt: bool) -> Result<(), ProviderError> {
        if let Some(raw) = &self.foreign_ownership {
            return Err(ProviderError::NotOwned(format!("{}: unreadable ownership record {raw:?}", self.name)));
        }
        match &self.ownership {
            Some(o) if o.owner == owner => Ok(()),
            Some(o) => Err(ProviderError::NotOwned(format!("{}: owned by {:?}", self.name, o.owner))),
            None if self.records.as_ref().is_none_or(|r| r.answers.is_empty()) || adopt => Ok(()),
            None => Err(ProviderError::NotOwned(format!("{}: has answers but no ownership record", self.name))),
        }
    }
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
    /// Take over a name that has answers but no ownership record (policy `adopt: true`).
    pub adopt: bool,
}

impl Change {
    /// A change from `expected` to `desired` published under `ownership`, without adoption.
    pub fn new(expected: Observed, desired: RecordSet, ownership: OwnershipRecord) -> Self {
        Self { expected, desired, ownership, adopt: false }
    }

    /// The name this change writes.
    pub fn name(&self) -> &RecordName {
        &self.expected.name
    }
}

/// Changes of one zone applied as one provider call where the provider allows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeBatch {
    /// The zone all changes belong to.
    pub zone: RecordName,
    /// The changes.
    pub changes: Vec<Change>,
}

impl ChangeBatch {
    /// Records (answer sets plus ownership records) this batch writes.
    pub fn records_count(&self) -> usize {
        self.changes.len() * 2
    }

    /// The checks every provider makes before writing anything, so that a bad batch
    /// is refused whole: names inside the zone and consistent, each name once,
    /// within the provider's batch limit, never empty (I1), owned (I11).
    ///
    /// Errors: [`ProviderError::WouldEmpty`], [`ProviderError::NotOwned`],
    /// [`ProviderError::Rejected`] for malformed batches.
    pub fn check(&self, capabilities: &Capabilities) -> Result<(), ProviderError> {
        if self.records_count() > capabilities.batch_records_max {
            return Err(ProviderError::Rejected(format!(
                "batch of {} records exceeds the provider's limit of {}",
                self.records_count(),
                capabilities.batch_records_max
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for change in &self.changes {
            let name = change.name();
            if !name.is_within(&self.zone) {
                return Err(ProviderError::Rejected(format!("{name} is not in zone {}", self.zone)));
            }
            if change.desired.name != *name || change.desired.rtype != change.expected.rtype {
                return Err(ProviderError::Rejected(format!("{name}: desired answers are for another name or type")));
            }
            if change.expected.rtype == RecordType::TXT {
                return Err(ProviderError::Rejected(format!("{name}: TXT is reserved for ownership records")));
            }
            if !seen.insert((name.clone(), change.expected.rtype)) {
                return Err(ProviderError::Rejected(format!("{name} appears twice in one batch")));
            }
            if change.desired.live_answers().next().is_none() {
                return Err(ProviderError::WouldEmpty(name.to_string()));
            }
            change.expected.check_owner(&change.ownership.owner, change.adopt)?;
        }
        Ok(())
    }
}

impl Capabilities {
    /// The form in which this provider stores `desired`, so that what is read back
    /// can be compared with what was written: set-only providers keep the live
    /// answers only, without weights or set ids; weighted providers without
    /// answer ids keep the weights but not the ids.
    pub fn published(&self, desired: &RecordSet) -> RecordSet {
        match self.weighting {
            Weighting::Weighted { .. } if self.answer_ids => desired.clone(),
            Weighting::Weighted { .. } => RecordSet::new(
                desired.name.clone(),
                desired.rtype,
                desired.ttl,
                desired.answers.iter().map(|a| Answer { set_id: None, ..a.clone() }).collect(),
            ),
            Weighting::SetOnly => RecordSet::new(
                desired.name.clone(),
                desired.rtype,
                desired.ttl,
                desired.live_answers().map(|a| Answer { set_id: None, value: a.value.clone(), weight: None }).collect(),
            ),
        }
    }
}

/// A boxed future, so that providers can be held as `dyn Provider`.
pub type ProviderFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// One DNS provider. Implementations live in their own crates and depend on this
/// crate only. The trait is object safe: the controller holds `Arc<dyn Provider>`.
///
/// Implementations do not retry, do not sleep and do not pace themselves: the
/// budget and the single retry layer ([`crate::Resilient`]) wrap them.
///
/// # Guarantees an implementation gives
/// - `read` is idempotent and has no side effect.
/// - `apply` first runs [`ChangeBatch::check`]; when it fails nothing is written.
/// - `apply` writes the answers and the ownership record of every change in one
///   conditional call: if any name no longer holds its `expected` answers and
///   ownership record, nothing is written and the result is
///   [`ProviderError::Conflict`] (when [`Capabilities::atomic_batches`] is false,
///   the same holds per change, in order, and the first conflict stops the batch).
/// - A failure after the request may have reached the provider is
///   [`ProviderError::Ambiguous`], never `Unavailable`.
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

#[cfg(test)]
mod published_form_tests {
    use super::*;

    fn caps(weighting: Weighting, answer_ids: bool) -> Capabilities {
        Capabilities {
            weighting,
            batch_records_max: 10,
            atomic_batches: true,
            cas: CasPrimitive::InProcess,
            answer_ids,
        }
    }

    fn desired() -> RecordSet {
        let name = RecordName::parse("api.example.test.").unwrap();
        let answer = |id: &str, v: &str, w| Answer { set_id: Some(id.into()), value: v.into(), weight: Some(w) };
        RecordSet::new(name, RecordType::A, 30, vec![answer("a", "192.0.2.1", 3), answer("b", "192.0.2.2", 0)])
    }

    #[test]
    fn providers_with_answer_ids_store_the_desired_answers_as_they_are() {
        assert_eq!(caps(Weighting::Weighted { max_weight: 255 }, true).published(&desired()), desired());
    }

    #[test]
    fn weighted_providers_without_answer_ids_keep_weights_but_not_ids() {
        let published = caps(Weighting::Weighted { max_weight: 1000 }, false).published(&desired());
        assert!(published.answers.iter().all(|a| a.set_id.is_none()));
        let weights: Vec<_> = published.answers.iter().map(|a| a.weight).collect();
        assert_eq!(weights, [Some(3), Some(0)]);
    }

    #[test]
    fn set_only_providers_keep_live_members_only() {
        let published = caps(Weighting::SetOnly, false).published(&desired());
        assert_eq!(published.answers.len(), 1);
        assert_eq!((published.answers[0].set_id.as_ref(), published.answers[0].weight), (None, None));
    }
}
