//! Records and answers as veer sees them at a provider.

use crate::RecordName;
use serde::{Deserialize, Serialize};

/// The record types veer manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RecordType {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    AAAA,
    /// One canonical name.
    CNAME,
    /// Text; veer uses it for ownership records only.
    TXT,
}

impl std::fmt::Display for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordType::A => "A",
            RecordType::AAAA => "AAAA",
            RecordType::CNAME => "CNAME",
            RecordType::TXT => "TXT",
        })
    }
}

/// One answer of a record: a value and, for weighted providers, its weight and the
/// provider-side identifier (Route 53's `SetIdentifier`, for example).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Answer {
    /// The endpoint id this answer belongs to, when the provider stores one.
    pub set_id: Option<String>,
    /// The record data: an address or a target name.
    pub value: String,
    /// The weight, in the provider's own range; `None` on set-only providers.
    pub weight: Option<u32>,
}

/// All answers of one name and type, as held by a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSet {
    /// The owner name.
    pub name: RecordName,
    /// The record type.
    pub rtype: RecordType,
    /// Time to live in seconds.
    pub ttl: u32,
    /// The answers, sorted by (set id, value) so that equal sets compare equal.
    pub answers: Vec<Answer>,
}

impl RecordSet {
    /// Builds a record set with its answers in canonical order.
    pub fn new(name: RecordName, rtype: RecordType, ttl: u32, mut answers: Vec<Answer>) -> Self {
        answers.sort();
        Self { name, rtype, ttl, answers }
    }

    /// Answers that a resolver may be given: on weighted providers those with a
    /// weight above zero, on set-only providers all of them.
    pub fn live_answers(&self) -> impl Iterator<Item = &Answer> {
        self.answers.iter().filter(|a| a.weight != Some(0))
    }
}
