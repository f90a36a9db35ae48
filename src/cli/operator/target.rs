//! Turning what an operator typed into exactly one thing, against the records the
//! server reports — the guard against slips: `endpoint-id`, `pool/NAME` or
//! `record/NAME` (each may be qualified by its policy: `api/use1-a`,
//! `api/pool/aws-use1`). Unknown or ambiguous names are errors that list close
//! matches (by edit distance) or the qualified forms; globs are refused.

use super::model::RecordStatus;
use crate::planner::{Target, TargetKind};

/// A name that did not resolve to exactly one thing: the message, and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// What is wrong.
    pub message: String,
    /// What to type instead, if there is a good guess.
    pub hint: Option<String>,
}

impl Unresolved {
    fn new(message: impl Into<String>, hint: Option<String>) -> Self {
        Self { message: message.into(), hint }
    }
}

/// A resolved drain target: what to send, and the records it covers.
#[derive(Debug, Clone)]
pub struct Resolved<'r> {
    /// The target, always qualified by its policy.
    pub target: Target,
    /// The record it is in.
    pub record: &'r RecordStatus,
}

impl Resolved<'_> {
    /// The word the operator types to confirm: the endpoint id or the pool name.
    pub fn word(&self) -> &str {
        &self.target.name
    }

    /// "pool aws-use1 of api.example.com." / "endpoint use1-a of …".
    pub fn describe(&self) -> String {
        let kind = match self.target.kind {
            TargetKind::Endpoint => "endpoint",
            TargetKind::Pool => "pool",
        };
        format!("{kind} {} of {}", self.target.name, self.record.name)
    }
}

fn refuse_globs(text: &str) -> Result<(), Unresolved> {
    if text.contains(['*', '?', '[', ']', '{', '}']) {
        return Err(Unresolved::new(
            format!("`{text}`: globs are not accepted for changes"),
            Some("name one endpoint, pool/NAME or record/NAME".into()),
        ));
    }
    Ok(())
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb)).min(above + 1).min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Candidates close to `typed`: within a third of its length in edits (at least 2),
/// or containing it; closest first, at most five.
pub fn close_matches<'c>(typed: &str, candidates: impl IntoIterator<Item = &'c str>) -> Vec<String> {
    let limit = (typed.chars().count() / 3).max(2);
    let lowered = typed.to_lowercase();
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter_map(|c| {
            let d = edit_distance(&lowered, &c.to_lowercase());
            (d <= limit || (lowered.len() >= 2 && c.to_lowercase().contains(&lowered))).then_some((d, c))
        })
        .collect();
    scored.sort();
    scored.dedup();
    scored.into_iter().take(5).map(|(_, c)| c.to_string()).collect()
}

fn did_you_mean(matches: &[String]) -> Option<String> {
    (!matches.is_empty()).then(|| format!("did you mean {}?", matches.join(", ")))
}

/// The one record named `text` (policy name or record name, trailing dot optional;
/// `record/` prefix allowed).
pub fn record<'r>(text: &str, records: &'r [RecordStatus]) -> Result<&'r RecordStatus, Unresolved> {
    refuse_globs(text)?;
    let name = text.strip_prefix("record/").unwrap_or(text);
    if let Some(r) = records.iter().find(|r| r.is_named(name)) {
        return Ok(r);
    }
    let known = records.iter().flat_map(|r| [r.policy.as_str(), r.name.as_str()]);
    let hint = did_you_mean(&close_matches(name, known)).or_else(|| {
        let all: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
        (!all.is_empty()).then(|| format!("records: {}", all.join(", ")))
    });
    Err(Unresolved::new(format!("no record `{name}`"), hint))
}

/// The pool `name` of `record`.
pub fn pool<'r>(record: &'r RecordStatus, name: &str) -> Result<&'r str, Unresolved> {
    refuse_globs(name)?;
    let name = name.strip_prefix("pool/").unwrap_or(name);
    let pools = record.pools();
    if let Some(p) = pools.iter().find(|p| **p == name) {
        return Ok(p);
    }
    let hint = did_you_mean(&close_matches(name, pools.iter().copied()))
        .or_else(|| Some(format!("pools of {}: {}", record.name, pools.join(", "))));
    Err(Unresolved::new(format!("{} has no pool `{name}`", record.name), hint))
}

/// The endpoint `id` of `record`.
pub fn endpoint<'r>(record: &'r RecordStatus, id: &str) -> Result<&'r str, Unresolved> {
    refuse_globs(id)?;
    if let Some(e) = record.endpoints.iter().find(|e| e.id == id) {
        return Ok(&e.id);
    }
    let ids = record.endpoints.iter().map(|e| e.id.as_str());
    let hint = did_you_mean(&close_matches(id, ids)).or_else(|| {
        let all: Vec<&str> = record.endpoints.iter().map(|e| e.id.as_str()).collect();
        Some(format!("endpoints of {}: {}", record.name, all.join(", ")))
    });
    Err(Unresolved::new(format!("{} has no endpoint `{id}`", record.name), hint))
}

/// A provider that some record publishes to.
pub fn provider(name: &str, records: &[RecordStatus]) -> Result<String, Unresolved> {
    refuse_globs(name)?;
    let mut known: Vec<&str> = records.iter().flat_map(|r| r.providers.iter().map(String::as_str)).collect();
    known.sort();
    known.dedup();
    if known.contains(&name) {
        return Ok(name.to_string());
    }
    let hint = did_you_mean(&close_matches(name, known.iter().copied()))
        .or_else(|| (!known.is_empty()).then(|| format!("providers: {}", known.join(", "))));
    Err(Unresolved::new(format!("no record is published to a provider `{name}`"), hint))
}

/// Resolves a drain target: `ID`, `endpoint/ID`, `pool/NAME`, `POLICY/ID`,
/// `POLICY/pool/NAME`. A name found in several records is ambiguous.
pub fn drain_target<'r>(text: &str, records: &'r [RecordStatus]) -> Result<Resolved<'r>, Unresolved> {
    refuse_globs(text)?;
    if let Some(name) = text.strip_prefix("record/") {
        return Err(Unresolved::new(
            format!("cannot drain a whole record (`{text}`): a record is never left without answers"),
            Some(format!("drain its endpoints or pools, `veer freeze {name}`, or `veer failover {name} --to POOL`")),
        ));
    }
    let parsed: Target = text.parse().map_err(|e: crate::planner::OverrideError| {
        Unresolved::new(e.to_string(), Some("e.g. use1-a, pool/aws-use1 or api/pool/aws-use1".into()))
    })?;
    let scope: Vec<&RecordStatus> = match &parsed.policy {
        Some(policy) => {
            let found: Vec<&RecordStatus> = records.iter().filter(|r| r.is_named(policy)).collect();
            if found.is_empty() {
                // `x/y` where x is no policy: maybe a mistyped prefix.
                let known = records.iter().map(|r| r.policy.as_str());
                let hint = did_you_mean(&close_matches(policy, known))
                    .or_else(|| Some("qualify by policy name: POLICY/ID or POLICY/pool/NAME".into()));
                return Err(Unresolved::new(format!("no policy or record `{policy}` (in `{text}`)"), hint));
            }
            found
        }
        None => records.iter().collect(),
    };
    let has = |r: &RecordStatus| match parsed.kind {
        TargetKind::Endpoint => r.endpoints.iter().any(|e| e.id == parsed.name),
        TargetKind::Pool => r.pools().contains(&parsed.name.as_str()),
    };
    let found: Vec<&RecordStatus> = scope.iter().copied().filter(|r| has(r)).collect();
    let qualified = |r: &RecordStatus| match parsed.kind {
        TargetKind::Endpoint => format!("{}/{}", r.policy, parsed.name),
        TargetKind::Pool => format!("{}/pool/{}", r.policy, parsed.name),
    };
    match found.as_slice() {
        [one] => Ok(Resolved {
            target: Target { policy: Some(one.policy.clone()), kind: parsed.kind, name: parsed.name.clone() },
            record: one,
        }),
        [] => {
            let (kind, candidates): (&str, Vec<String>) = match parsed.kind {
                TargetKind::Endpoint => {
                    ("endpoint", scope.iter().flat_map(|r| r.endpoints.iter().map(|e| e.id.clone())).collect())
                }
                TargetKind::Pool => {
                    ("pool", scope.iter().flat_map(|r| r.pools().into_iter().map(str::to_string)).collect())
                }
            };
            // A bare name that is a pool (or `pool/x` that is an endpoint) is the likeliest slip.
            let other_kind = scope.iter().any(|r| match parsed.kind {
                TargetKind::Endpoint => r.pools().contains(&parsed.name.as_str()),
                TargetKind::Pool => r.endpoints.iter().any(|e| e.id == parsed.name),
            });
            let hint = if other_kind {
                Some(match parsed.kind {
                    TargetKind::Endpoint => format!("`{}` is a pool: write pool/{}", parsed.name, parsed.name),
                    TargetKind::Pool => format!("`{}` is an endpoint: write {}", parsed.name, parsed.name),
                })
            } else {
                let shown: Vec<String> = close_matches(&parsed.name, candidates.iter().map(String::as_str))
                    .into_iter()
                    .map(|c| if parsed.kind == TargetKind::Pool { format!("pool/{c}") } else { c })
                    .collect();
                did_you_mean(&shown)
            };
            Err(Unresolved::new(format!("no {kind} `{}`", parsed.name), hint))
        }
        many => {
            let mut forms: Vec<String> = many.iter().map(|r| qualified(r)).collect();
            forms.sort();
            Err(Unresolved::new(
                format!("`{text}` is ambiguous: it is in {} records", many.len()),
                Some(format!("name one: {}", forms.join(", "))),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::operator::model::EndpointStatus;

    fn record(policy: &str, name: &str, endpoints: &[(&str, &str)]) -> RecordStatus {
        RecordStatus {
            name: name.into(),
            policy: policy.into(),
            providers: vec!["local".into()],
            endpoints: endpoints
                .iter()
                .map(|(id, pool)| EndpointStatus { id: (*id).into(), pool: (*pool).into(), ..Default::default() })
                .collect(),
            ..Default::default()
        }
    }

    fn records() -> Vec<RecordStatus> {
        vec![
            record("api", "api.example.com.", &[("use1-a", "aws-use1"), ("use1-b", "aws-use1"), ("euw1-a", "gcp")]),
            record("web", "web.example.com.", &[("use1-a", "aws-use1"), ("web-2", "gcp")]),
        ]
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("use1-a", "use1-a"), 0);
        assert_eq!(edit_distance("use1-a", "use1-b"), 1);
        assert_eq!(edit_distance("use1a", "use1-a"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn unique_names_resolve_and_are_qualified_by_their_policy() {
        let records = records();
        let r = drain_target("euw1-a", &records).unwrap();
        assert_eq!(r.target.to_string(), "api/endpoint/euw1-a");
        assert_eq!(r.word(), "euw1-a");
        let r = drain_target("web/pool/gcp", &records).unwrap();
        assert_eq!((r.record.policy.as_str(), r.target.kind), ("web", TargetKind::Pool));
        assert_eq!(drain_target("api/use1-a", &records).unwrap().record.policy, "api");
    }

    #[test]
    fn names_in_several_records_are_ambiguous_and_list_the_qualified_forms() {
        let records = records();
        let e = drain_target("use1-a", &records).unwrap_err();
        assert!(e.message.contains("ambiguous"), "{e:?}");
        assert_eq!(e.hint.as_deref(), Some("name one: api/use1-a, web/use1-a"));
        let e = drain_target("pool/gcp", &records).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("name one: api/pool/gcp, web/pool/gcp"));
    }

    #[test]
    fn unknown_names_suggest_close_matches() {
        let records = records();
        let e = drain_target("euw1-c", &records).unwrap_err();
        assert_eq!(e.message, "no endpoint `euw1-c`");
        assert_eq!(e.hint.as_deref(), Some("did you mean euw1-a?"));
        let e = drain_target("pool/aws-usе1", &records).unwrap_err(); // Cyrillic е
        assert_eq!(e.hint.as_deref(), Some("did you mean pool/aws-use1?"));
        let e = drain_target("aws-use1", &records).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("`aws-use1` is a pool: write pool/aws-use1"));
        let e = drain_target("ap/use1-a", &records).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean api?"));
        let e = super::record("api.exampel.com", &records).unwrap_err();
        assert!(e.hint.unwrap().contains("api.example.com."));
        let e = provider("lokal", &records).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean local?"));
    }

    #[test]
    fn globs_and_whole_records_are_refused_for_drains() {
        let records = records();
        assert!(drain_target("use1-*", &records).unwrap_err().message.contains("globs"));
        assert!(drain_target("pool/aws-*", &records).unwrap_err().message.contains("globs"));
        assert!(super::record("api*", &records).unwrap_err().message.contains("globs"));
        assert!(drain_target("record/api", &records).unwrap_err().message.contains("whole record"));
    }

    #[test]
    fn records_resolve_by_policy_or_record_name_with_or_without_the_dot() {
        let records = records();
        for name in ["api", "api.example.com.", "api.example.com", "record/api"] {
            assert_eq!(super::record(name, &records).unwrap().policy, "api", "{name}");
        }
        assert_eq!(pool(&records[0], "gcp").unwrap(), "gcp");
        assert_eq!(pool(&records[0], "gcq").unwrap_err().hint.as_deref(), Some("did you mean gcp?"));
        assert_eq!(endpoint(&records[0], "use1-c").unwrap_err().hint.as_deref(), Some("did you mean use1-a, use1-b?"));
    }
}
