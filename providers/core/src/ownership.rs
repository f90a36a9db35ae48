//! The ownership record codec: `_veer.<name>` TXT with
//! `owner=<cluster id>;gen=<generation>;epoch=<leader epoch>;policy=<hash>`.
//!
//! Every apply changes the answers and this record in one conditional change, so
//! a writer whose view is stale fails at the provider (ARCHITECTURE.md §6, invariant I2).

use std::fmt;

/// Who owns a managed name and which generation of its plan is published.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct OwnershipRecord {
    /// The owning controller cluster (`clusterId` in the controller config).
    pub owner: String,
    /// Generation of the published plan; +1 on every applied change.
    pub generation: u64,
    /// Leader epoch (fencing token) of the writer that published it.
    pub epoch: u64,
    /// Content hash of the policy the plan came from.
    pub policy_hash: String,
}

/// Why a TXT value is not an ownership record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnershipError {
    /// A required field is missing.
    #[error("ownership record lacks `{0}`")]
    Missing(&'static str),
    /// A field appears twice or is unknown.
    #[error("ownership record has an unexpected field `{0}`")]
    Unexpected(String),
    /// A number field does not parse.
    #[error("ownership record field `{field}` is not a number: {value:?}")]
    NotANumber {
        /// Field name.
        field: &'static str,
        /// Its text.
        value: String,
    },
}

impl OwnershipRecord {
    /// Encodes the record as its TXT value.
    pub fn encode(&self) -> String {
        self.to_string()
    }

    /// Decodes a TXT value (surrounding quotes are tolerated).
    pub fn decode(text: &str) -> Result<Self, OwnershipError> {
        let text = text.trim().trim_matches('"');
        let (mut owner, mut generation, mut epoch, mut policy) = (None, None, None, None);
        for part in text.split(';').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| OwnershipError::Unexpected(part.into()))?;
            let slot_taken = match key {
                "owner" => owner.replace(value.to_string()).is_some(),
                "gen" => generation.replace(number("gen", value)?).is_some(),
                "epoch" => epoch.replace(number("epoch", value)?).is_some(),
                "policy" => policy.replace(value.to_string()).is_some(),
                _ => true,
            };
            if slot_taken {
                return Err(OwnershipError::Unexpected(key.into()));
            }
        }
        Ok(Self {
            owner: owner.ok_or(OwnershipError::Missing("owner"))?,
            generation: generation.ok_or(OwnershipError::Missing("gen"))?,
            epoch: epoch.ok_or(OwnershipError::Missing("epoch"))?,
            policy_hash: policy.ok_or(OwnershipError::Missing("policy"))?,
        })
    }
}

fn number(field: &'static str, value: &str) -> Result<u64, OwnershipError> {
    value.parse().map_err(|_| OwnershipError::NotANumber { field, value: value.into() })
}

impl fmt::Display for OwnershipRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "owner={};gen={};epoch={};policy={}", self.owner, self.generation, self.epoch, self.policy_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> OwnershipRecord {
        OwnershipRecord { owner: "prod-a".into(), generation: 42, epoch: 7, policy_hash: "ab12".into() }
    }

    #[test]
    fn encodes_in_the_documented_format() {
        assert_eq!(sample().encode(), "owner=prod-a;gen=42;epoch=7;policy=ab12");
    }

    #[test]
    fn round_trips_and_tolerates_quotes() {
        assert_eq!(OwnershipRecord::decode(&sample().encode()).unwrap(), sample());
        assert_eq!(OwnershipRecord::decode("\"owner=prod-a;gen=42;epoch=7;policy=ab12\"").unwrap(), sample());
    }

    #[test]
    fn rejects_missing_duplicate_and_malformed_fields() {
        assert_eq!(OwnershipRecord::decode("owner=a;gen=1;epoch=2"), Err(OwnershipError::Missing("policy")));
        assert!(matches!(
            OwnershipRecord::decode("owner=a;gen=1;gen=2;epoch=2;policy=x"),
            Err(OwnershipError::Unexpected(_))
        ));
        assert!(matches!(
            OwnershipRecord::decode("owner=a;gen=x;epoch=2;policy=x"),
            Err(OwnershipError::NotANumber { field: "gen", .. })
        ));
        assert!(matches!(OwnershipRecord::decode("hello"), Err(OwnershipError::Unexpected(_))));
    }
}
