//! Route 53 record sets as plain values, and the translation between them and
//! veer's model: one weighted record set per endpoint (`SetIdentifier` = the
//! answer's `set_id`), a simple TXT record set `_veer.<name>` for ownership.
//!
//! Kept free of I/O so that what a change deletes and creates can be tested alone.

use std::collections::{BTreeMap, BTreeSet};
use veer_provider::{Answer, Observed, OwnershipRecord, ProviderError, RecordName, RecordSet, RecordType};

/// TTL of the ownership TXT record: resolvers never need it, so it need not
/// follow the record's TTL (and changing it would rewrite it for nothing).
pub const OWNERSHIP_TTL: u32 = 300;

/// Route 53's largest weight.
pub const WEIGHT_MAX: u32 = 255;

/// One Route 53 resource record set, with exactly the fields an exact-match DELETE compares.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rrset {
    /// Owner name.
    pub name: RecordName,
    /// Record type.
    pub rtype: RecordType,
    /// `SetIdentifier`: present on weighted sets.
    pub set_id: Option<String>,
    /// `Weight` 0–255: present on weighted sets.
    pub weight: Option<u32>,
    /// `TTL` in seconds.
    pub ttl: u32,
    /// `ResourceRecord` values, sorted.
    pub values: Vec<String>,
    /// `HealthCheckId`, when one is attached.
    pub health_check_id: Option<String>,
}

/// `ChangeResourceRecordSets` actions veer uses (never UPSERT: it is not conditional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Deletes a record set that must match exactly, or the whole call fails.
    Delete,
    /// Creates a record set that must not exist, or the whole call fails.
    Create,
}

/// One `Change` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrChange {
    /// DELETE or CREATE.
    pub action: Action,
    /// The record set.
    pub rrset: Rrset,
}

/// Everything one name's compare-and-swap sends: DELETEs first, then CREATEs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameChange {
    /// The managed name.
    pub name: RecordName,
    /// Its `Change` elements.
    pub changes: Vec<RrChange>,
}

/// A name as listed: its record sets of one type and its ownership TXT record sets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listed {
    /// Record sets of the managed name and type.
    pub answers: Vec<Rrset>,
    /// Record sets of `_veer.<name>` (type TXT).
    pub ownership: Vec<Rrset>,
}

/// Quotes a TXT value as Route 53 expects it (one character string).
pub fn quote_txt(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Joins the character strings of a Route 53 TXT value (`"a" "b"` → `ab`);
/// `None` when it is not a sequence of quoted strings.
pub fn unquote_txt(value: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = value.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' => continue,
            '"' => loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => out.push(chars.next()?),
                    other => out.push(other),
                }
            },
            _ => return None,
        }
    }
    Some(out)
}

/// Undoes Route 53's octal escapes in names (`\052` is `*`) and lowercases.
pub fn unescape_name(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let text = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(text, 8).ok().filter(|_| text.bytes().all(|b| (b'0'..=b'7').contains(&b)))
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(char::from(byte));
                i += 4;
            }
            (byte, _) => {
                out.push(char::from(byte));
                i += 1;
            }
        }
    }
    out.to_ascii_lowercase()
}

/// Turns what was listed into veer's view of the name.
///
/// Record sets veer cannot represent (different TTLs on one name's weighted
/// sets, one set identifier with two weights) are refused as `Rejected` with a
/// message naming the fix, so that veer never plans against a misread state.
pub fn decode(name: &RecordName, rtype: RecordType, listed: &Listed) -> Result<Observed, ProviderError> {
    let mut answers = Vec::new();
    let mut ttls = BTreeSet::new();
    for rrset in &listed.answers {
        ttls.insert(rrset.ttl);
        for value in &rrset.values {
            answers.push(Answer { set_id: rrset.set_id.clone(), value: value.clone(), weight: rrset.weight });
        }
    }
    if ttls.len() > 1 {
        return Err(ProviderError::Rejected(format!(
            "{name} {rtype} has record sets with different TTLs {ttls:?}; veer manages one TTL per name: \
             make them equal in Route 53"
        )));
    }
    let records = ttls.first().map(|ttl| RecordSet::new(name.clone(), rtype, *ttl, answers));
    let (ownership, foreign_ownership) = match listed.ownership.as_slice() {
        [] => (None, None),
        [only] if only.values.len() == 1 && only.set_id.is_none() => {
            match unquote_txt(&only.values[0]).as_deref().map(OwnershipRecord::decode) {
                Some(Ok(record)) => (Some(record), None),
                _ => (None, Some(only.values[0].clone())),
            }
        }
        several => {
            let all: Vec<&str> = several.iter().flat_map(|r| r.values.iter().map(String::as_str)).collect();
            (None, Some(all.join(" ")))
        }
    };
    Ok(Observed { name: name.clone(), rtype, records, ownership, foreign_ownership })
}

/// The record sets veer writes for a state: one weighted set per set id, the
/// ownership TXT. `health_checks` maps set ids to Route 53 health check ids.
///
/// Answers without a set id are a simple record set (only ever found when
/// adopting a name): they are returned as one set so that they can be deleted
/// exactly as they were created.
pub fn encode(
    name: &RecordName,
    records: Option<&RecordSet>,
    ownership: Option<&OwnershipRecord>,
    health_checks: &BTreeMap<String, String>,
) -> Result<(Vec<Rrset>, Option<Rrset>), ProviderError> {
    let mut sets: BTreeMap<Option<String>, Rrset> = BTreeMap::new();
    if let Some(records) = records {
        if &records.name != name {
            return Err(ProviderError::Rejected(format!("record set {} handed in for {name}", records.name)));
        }
        for answer in &records.answers {
            if let Some(weight) = answer.weight.filter(|w| *w > WEIGHT_MAX) {
                return Err(ProviderError::Rejected(format!(
                    "{name}: weight {weight} of {:?} is above Route 53's maximum {WEIGHT_MAX}",
                    answer.set_id
                )));
            }
            let set = sets.entry(answer.set_id.clone()).or_insert_with(|| Rrset {
                name: name.clone(),
                rtype: records.rtype,
                set_id: answer.set_id.clone(),
                weight: answer.weight,
                ttl: records.ttl,
                values: Vec::new(),
                health_check_id: answer.set_id.as_ref().and_then(|id| health_checks.get(id).cloned()),
            });
            if set.weight != answer.weight {
                return Err(ProviderError::Rejected(format!(
                    "{name}: set id {:?} has two weights ({:?} and {:?}); Route 53 holds one weight per set",
                    answer.set_id, set.weight, answer.weight
                )));
            }
            set.values.push(answer.value.clone());
        }
    }
    let mut sets: Vec<Rrset> = sets.into_values().collect();
    for set in &mut sets {
        set.values.sort();
        set.values.dedup();
    }
    let txt = ownership.map(|o| Rrset {
        name: name.ownership_name(),
        rtype: RecordType::TXT,
        set_id: None,
        weight: None,
        ttl: OWNERSHIP_TTL,
        values: vec![quote_txt(&o.encode())],
        health_check_id: None,
    });
    Ok((sets, txt))
}

/// The record sets a new state needs, refusing what Route 53 cannot hold as weighted sets.
pub fn encode_desired(
    desired: &RecordSet,
    ownership: &OwnershipRecord,
    health_checks: &BTreeMap<String, String>,
) -> Result<(Vec<Rrset>, Rrset), ProviderError> {
    if let Some(answer) = desired.answers.iter().find(|a| a.set_id.is_none() || a.weight.is_none()) {
        return Err(ProviderError::Rejected(format!(
            "{}: answer {:?} lacks a set id or a weight; Route 53 weighted records need both",
            desired.name, answer.value
        )));
    }
    if desired.answers.is_empty() {
        return Err(ProviderError::WouldEmpty(desired.name.to_string()));
    }
    let (sets, txt) = encode(&desired.name, Some(desired), Some(ownership), health_checks)?;
    Ok((sets, txt.expect("ownership was given")))
}

/// The compare-and-swap of one name: DELETE every old set that is not kept
/// unchanged, CREATE every new one that is not already there. The ownership
/// record is always deleted and created, even when unchanged, so the call
/// fails whenever another writer has moved the name's generation.
pub fn diff(name: &RecordName, old: (Vec<Rrset>, Option<Rrset>), new: (Vec<Rrset>, Rrset)) -> NameChange {
    let (old_sets, old_txt) = old;
    let (new_sets, new_txt) = new;
    let kept: BTreeSet<&Rrset> = old_sets.iter().filter(|s| new_sets.contains(s)).collect();
    let mut changes = Vec::new();
    for set in old_sets.iter().filter(|s| !kept.contains(s)).cloned().chain(old_txt) {
        changes.push(RrChange { action: Action::Delete, rrset: set });
    }
    for set in new_sets.iter().filter(|s| !kept.contains(s)).cloned().chain(Some(new_txt)) {
        changes.push(RrChange { action: Action::Create, rrset: set });
    }
    NameChange { name: name.clone(), changes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> RecordName {
        RecordName::parse("api.example.com.").unwrap()
    }

    fn weighted(set_id: &str, value: &str, weight: u32) -> Answer {
        Answer { set_id: Some(set_id.into()), value: value.into(), weight: Some(weight) }
    }

    fn ownership(generation: u64) -> OwnershipRecord {
        OwnershipRecord { owner: "prod-a".into(), generation, epoch: 1, policy_hash: "ab".into() }
    }

    #[test]
    fn txt_quoting_round_trips_and_joins_character_strings() {
        let text = r#"owner=a"b\c;gen=1"#;
        assert_eq!(unquote_txt(&quote_txt(text)).as_deref(), Some(text));
        assert_eq!(unquote_txt(r#""abc" "def""#).as_deref(), Some("abcdef"));
        assert_eq!(unquote_txt("abc"), None);
        assert_eq!(unquote_txt(r#""abc"#), None);
    }

    #[test]
    fn route53_octal_escapes_in_names_are_undone() {
        assert_eq!(unescape_name(r"\052.Example.com."), "*.example.com.");
        assert_eq!(unescape_name(r"a\\b."), r"a\\b.");
    }

    #[test]
    fn weighted_sets_and_ownership_decode_into_one_observed_state() {
        let (sets, txt) =
            encode(&name(), Some(&record(&[("a", "192.0.2.1", 10), ("b", "192.0.2.2", 0)])), Some(&ownership(3)), &{
                BTreeMap::new()
            })
            .unwrap();
        assert_eq!(sets.len(), 2);
        let observed =
            decode(&name(), RecordType::A, &Listed { answers: sets, ownership: txt.into_iter().collect() }).unwrap();
        assert_eq!(observed.records, Some(record(&[("a", "192.0.2.1", 10), ("b", "192.0.2.2", 0)])));
        assert_eq!(observed.ownership, Some(ownership(3)));
        assert_eq!(observed.foreign_ownership, None);
    }

    #[test]
    fn an_undecodable_or_duplicated_ownership_record_is_foreign() {
        let txt = |v: &str| Rrset {
            name: name().ownership_name(),
            rtype: RecordType::TXT,
            set_id: None,
            weight: None,
            ttl: 300,
            values: vec![v.into()],
            health_check_id: None,
        };
        let observed =
            decode(&name(), RecordType::A, &Listed { answers: vec![], ownership: vec![txt("\"heritage=other\"")] })
                .unwrap();
        assert_eq!(observed.foreign_ownership.as_deref(), Some("\"heritage=other\""));
        assert_eq!(observed.ownership, None);
        let mut two = txt(&quote_txt(&ownership(1).encode()));
        two.values.push("\"x\"".into());
        let observed = decode(&name(), RecordType::A, &Listed { answers: vec![], ownership: vec![two] }).unwrap();
        assert!(observed.foreign_ownership.is_some());
    }

    #[test]
    fn weighted_sets_with_different_ttls_are_refused_with_the_fix() {
        let (mut sets, _) =
            encode(&name(), Some(&record(&[("a", "192.0.2.1", 1), ("b", "192.0.2.2", 1)])), None, &BTreeMap::new())
                .unwrap();
        sets[1].ttl = 60;
        let err = decode(&name(), RecordType::A, &Listed { answers: sets, ownership: vec![] }).unwrap_err();
        assert!(matches!(&err, ProviderError::Rejected(m) if m.contains("different TTLs")), "{err}");
    }

    #[test]
    fn unchanged_weighted_sets_are_left_out_and_ownership_is_always_swapped() {
        let old = encode(
            &name(),
            Some(&record(&[("a", "192.0.2.1", 10), ("b", "192.0.2.2", 10)])),
            Some(&ownership(1)),
            &BTreeMap::new(),
        )
        .unwrap();
        let new =
            encode_desired(&record(&[("a", "192.0.2.1", 10), ("b", "192.0.2.2", 0)]), &ownership(2), &BTreeMap::new())
                .unwrap();
        let change = diff(&name(), old, new);
        let summary: Vec<(Action, Option<&str>, Option<u32>)> =
            change.changes.iter().map(|c| (c.action, c.rrset.set_id.as_deref(), c.rrset.weight)).collect();
        assert_eq!(
            summary,
            vec![
                (Action::Delete, Some("b"), Some(10)),
                (Action::Delete, None, None),
                (Action::Create, Some("b"), Some(0)),
                (Action::Create, None, None),
            ]
        );
    }

    #[test]
    fn health_check_ids_are_attached_by_set_id() {
        let checks = BTreeMap::from([("a".to_string(), "hc-1".to_string())]);
        let (sets, _) =
            encode_desired(&record(&[("a", "192.0.2.1", 1), ("b", "192.0.2.2", 1)]), &ownership(1), &checks).unwrap();
        assert_eq!(sets[0].health_check_id.as_deref(), Some("hc-1"));
        assert_eq!(sets[1].health_check_id, None);
    }

    #[test]
    fn desired_answers_without_set_id_or_above_255_are_refused() {
        let mut simple = record(&[("a", "192.0.2.1", 1)]);
        simple.answers[0].set_id = None;
        assert!(matches!(encode_desired(&simple, &ownership(1), &BTreeMap::new()), Err(ProviderError::Rejected(_))));
        let heavy = record(&[("a", "192.0.2.1", 256)]);
        assert!(matches!(encode_desired(&heavy, &ownership(1), &BTreeMap::new()), Err(ProviderError::Rejected(_))));
    }

    fn record(answers: &[(&str, &str, u32)]) -> RecordSet {
        RecordSet::new(name(), RecordType::A, 30, answers.iter().map(|(s, v, w)| weighted(s, v, *w)).collect())
    }
}
