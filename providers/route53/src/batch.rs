//! Splitting one zone's changes into `ChangeResourceRecordSets` calls.
//!
//! Route 53 refuses a call with more than 1000 `ResourceRecord` elements or more
//! than 32 000 characters in all `Value` elements together. A name's change (the
//! DELETE of what was read plus the CREATE of what is wanted, ownership record
//! included) is the unit of compare-and-swap, so it always travels in one call:
//! splitting it would publish half a change. A name whose change alone exceeds a
//! limit is refused before anything is sent.

use crate::records::NameChange;
use veer_provider::RecordName;

/// Per-call limits of `ChangeResourceRecordSets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most `ResourceRecord` elements in one call.
    pub records_max: usize,
    /// Most characters in all `Value` elements of one call.
    pub value_chars_max: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self { records_max: 1000, value_chars_max: 32_000 }
    }
}

/// What one call (or one name's change) costs against [`BatchLimits`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchCost {
    /// `ResourceRecord` elements.
    pub records: usize,
    /// Characters in `Value` elements.
    pub value_chars: usize,
}

impl BatchCost {
    fn fits(self, limits: BatchLimits) -> bool {
        self.records <= limits.records_max && self.value_chars <= limits.value_chars_max
    }

    fn plus(self, other: BatchCost) -> BatchCost {
        BatchCost { records: self.records + other.records, value_chars: self.value_chars + other.value_chars }
    }
}

/// One name's change is larger than a whole call may be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the change of {name} needs {} records and {} value characters in one call, above Route 53's limits \
     ({} records, {} characters); it cannot be split without losing its atomicity",
    cost.records, cost.value_chars, limits.records_max, limits.value_chars_max
)]
pub struct OversizeChange {
    /// The name whose change does not fit.
    pub name: RecordName,
    /// What it costs.
    pub cost: BatchCost,
    /// The limits it exceeds.
    pub limits: BatchLimits,
}

/// What a name's change costs: every value of every DELETE and CREATE.
pub fn cost_of(change: &NameChange) -> BatchCost {
    change.changes.iter().fold(BatchCost::default(), |cost, c| {
        cost.plus(BatchCost {
            records: c.rrset.values.len(),
            value_chars: c.rrset.values.iter().map(|v| v.chars().count()).sum(),
        })
    })
}

/// Packs name changes, in order, into as few calls as the limits allow without
/// splitting any name's change. Empty input gives no calls.
pub fn split_batches(changes: Vec<NameChange>, limits: BatchLimits) -> Result<Vec<Vec<NameChange>>, OversizeChange> {
    let mut calls: Vec<Vec<NameChange>> = Vec::new();
    let mut current = BatchCost::default();
    for change in changes {
        let cost = cost_of(&change);
        if !cost.fits(limits) {
            return Err(OversizeChange { name: change.name, cost, limits });
        }
        match calls.last_mut() {
            Some(call) if current.plus(cost).fits(limits) => {
                current = current.plus(cost);
                call.push(change);
            }
            _ => {
                current = cost;
                calls.push(vec![change]);
            }
        }
    }
    debug_assert!(calls.iter().all(|call| !call.is_empty()));
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Action, RrChange, Rrset};
    use veer_provider::RecordType;

    fn name(i: usize) -> RecordName {
        RecordName::parse(&format!("n{i}.example.com.")).unwrap()
    }

    /// A name change replacing `answers` weighted sets, each value `value_len` characters long,
    /// plus the ownership TXT (DELETE and CREATE).
    fn change(i: usize, answers: usize, value_len: usize) -> NameChange {
        let mut changes = Vec::new();
        for action in [Action::Delete, Action::Create] {
            for a in 0..answers {
                changes.push(RrChange {
                    action,
                    rrset: Rrset {
                        name: name(i),
                        rtype: RecordType::A,
                        set_id: Some(format!("e{a}")),
                        weight: Some(if action == Action::Delete { 1 } else { 2 }),
                        ttl: 30,
                        values: vec!["x".repeat(value_len)],
                        health_check_id: None,
                    },
                });
            }
            changes.push(RrChange {
                action,
                rrset: Rrset {
                    name: name(i).ownership_name(),
                    rtype: RecordType::TXT,
                    set_id: None,
                    weight: None,
                    ttl: 300,
                    values: vec!["\"o\"".into()],
                    health_check_id: None,
                },
            });
        }
        NameChange { name: name(i), changes }
    }

    fn names(calls: &[Vec<NameChange>]) -> Vec<Vec<RecordName>> {
        calls.iter().map(|c| c.iter().map(|n| n.name.clone()).collect()).collect()
    }

    #[test]
    fn no_changes_make_no_calls() {
        assert!(split_batches(Vec::new(), BatchLimits::default()).unwrap().is_empty());
    }

    #[test]
    fn changes_that_fit_go_in_one_call() {
        let calls = split_batches((0..10).map(|i| change(i, 4, 10)).collect(), BatchLimits::default()).unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].len(), 10);
    }

    #[test]
    fn a_call_holds_at_most_1000_records_and_no_name_is_split() {
        // Each name costs 2 × (4 + 1) = 10 records: exactly 100 names per call.
        let calls = split_batches((0..250).map(|i| change(i, 4, 10)).collect(), BatchLimits::default()).unwrap();
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![100, 100, 50]);
        // A 12-record name does not divide 1000: calls close below the limit rather than split it.
        let calls = split_batches((0..300).map(|i| change(i, 5, 10)).collect(), BatchLimits::default()).unwrap();
        for call in &calls {
            let records: usize = call.iter().map(|c| cost_of(c).records).sum();
            assert!(records <= 1000, "{records} records in one call");
        }
        assert_eq!(calls.len(), 300usize.div_ceil(1000 / 12));
        let flattened: Vec<RecordName> = names(&calls).into_iter().flatten().collect();
        assert_eq!(flattened, (0..300).map(name).collect::<Vec<_>>(), "order kept, every name exactly once");
    }

    #[test]
    fn a_call_holds_at_most_32000_value_characters() {
        // Each name: 2 × 2 values of 1000 characters + 2 × 3 characters of ownership TXT = 4006.
        let calls = split_batches((0..20).map(|i| change(i, 2, 1000)).collect(), BatchLimits::default()).unwrap();
        for call in &calls {
            let chars: usize = call.iter().map(|c| cost_of(c).value_chars).sum();
            assert!(chars <= 32_000, "{chars} characters in one call");
        }
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![7, 7, 6]);
    }

    #[test]
    fn a_name_larger_than_a_call_is_refused_before_anything_is_packed() {
        let mut input: Vec<NameChange> = (0..3).map(|i| change(i, 1, 10)).collect();
        input.push(change(3, 600, 5));
        let err = split_batches(input, BatchLimits::default()).unwrap_err();
        assert_eq!(err.name, name(3));
        assert_eq!(err.cost.records, 1202);
        assert!(err.to_string().contains("cannot be split"), "{err}");
        let err = split_batches(vec![change(4, 10, 2000)], BatchLimits::default()).unwrap_err();
        assert!(err.cost.value_chars > 32_000);
    }

    #[test]
    fn a_name_exactly_at_the_limit_fits_alone() {
        let limits = BatchLimits { records_max: 10, value_chars_max: 1000 };
        let calls = split_batches(vec![change(0, 4, 1), change(1, 4, 1)], limits).unwrap();
        assert_eq!(names(&calls), vec![vec![name(0)], vec![name(1)]]);
    }
}
