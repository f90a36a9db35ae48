//! Fully qualified, normalised DNS names.

use std::fmt;

/// A fully qualified DNS name: lowercase ASCII, trailing dot, labels of 1–63
/// octets, at most 253 octets without the final dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct RecordName(String);

/// Why a string is not a valid [`RecordName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name lacks the trailing dot that makes it fully qualified.
    #[error("name {0:?} is not fully qualified (add the trailing dot)")]
    NotFullyQualified(String),
    /// A label is empty, too long, or has a character DNS does not allow here.
    #[error("name {name:?} has an invalid label {label:?}")]
    BadLabel {
        /// The whole name.
        name: String,
        /// The offending label.
        label: String,
    },
    /// The name is longer than 253 octets.
    #[error("name {0:?} is longer than 253 characters")]
    TooLong(String),
}

impl RecordName {
    /// Parses and normalises (lowercases) a fully qualified name.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        if text == "." {
            return Ok(Self(".".into()));
        }
        let Some(body) = text.strip_suffix('.') else {
            return Err(NameError::NotFullyQualified(text.into()));
        };
        if body.len() > 253 {
            return Err(NameError::TooLong(text.into()));
        }
        for label in body.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(NameError::BadLabel { name: text.into(), label: label.into() });
            }
        }
        Ok(Self(text.to_ascii_lowercase()))
    }

    /// The name as text, with its trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `self` equals `zone` or lies below it.
    pub fn is_within(&self, zone: &RecordName) -> bool {
        zone.0 == "."
            || self.0 == zone.0
            || (self.0.ends_with(&zone.0) && self.0.as_bytes()[self.0.len() - zone.0.len() - 1] == b'.')
    }

    /// The name of the ownership TXT record for this name: `_veer.<name>`.
    pub fn ownership_name(&self) -> RecordName {
        RecordName(format!("_veer.{}", self.0))
    }
}

impl fmt::Display for RecordName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RecordName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for RecordName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RecordName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a fully qualified DNS name with a trailing dot")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RecordName, E> {
                RecordName::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_lowercases_fully_qualified_names() {
        assert_eq!(RecordName::parse("API.Example.com.").unwrap().as_str(), "api.example.com.");
    }

    #[test]
    fn rejects_relative_and_malformed_names() {
        assert!(matches!(RecordName::parse("api.example.com"), Err(NameError::NotFullyQualified(_))));
        assert!(matches!(RecordName::parse("api..example.com."), Err(NameError::BadLabel { .. })));
        assert!(matches!(RecordName::parse("a b.example."), Err(NameError::BadLabel { .. })));
        assert!(matches!(RecordName::parse("-a.example."), Err(NameError::BadLabel { .. })));
    }

    #[test]
    fn zone_membership_respects_label_boundaries() {
        let zone = RecordName::parse("example.com.").unwrap();
        assert!(RecordName::parse("api.example.com.").unwrap().is_within(&zone));
        assert!(RecordName::parse("example.com.").unwrap().is_within(&zone));
        assert!(!RecordName::parse("badexample.com.").unwrap().is_within(&zone));
        assert!(!RecordName::parse("example.org.").unwrap().is_within(&zone));
    }

    #[test]
    fn ownership_name_is_prefixed() {
        let n = RecordName::parse("api.example.com.").unwrap();
        assert_eq!(n.ownership_name().as_str(), "_veer.api.example.com.");
    }
}
