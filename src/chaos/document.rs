//! `kind: Chaos` documents as written: flat structs with `deny_unknown_fields`,
//! parsed with the policies' positioned errors, then resolved into a
//! [`super::ChaosPlan`] with every semantic error at once.

use super::{ChaosPlan, ProbeFailureMode, ProbeFault};
use crate::config::ProviderConfig;
use crate::policy::diagnostic::{Diagnostic, Findings};
use crate::policy::duration::PolicyDuration;
use crate::policy::source::{self, DocumentKind, DocumentText};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use veer_provider::{FaultRates, FaultRule};

/// A chaos document (`kind: Chaos`); its name is logged at start.
pub type ChaosDocument = crate::policy::model::Document<ChaosSpec>;

/// The body of a chaos document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChaosSpec {
    /// Seed of every fault draw (default 0): the same seed breaks the same calls.
    #[serde(default)]
    pub seed: Option<Spanned<u64>>,
    /// Provider faults.
    #[serde(default)]
    pub providers: Vec<ProviderFaultDocument>,
    /// Probe faults of this replica.
    #[serde(default)]
    pub probes: Vec<ProbeFaultDocument>,
}

/// Read or write, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OperationName {
    /// Reads.
    Read,
    /// Writes.
    Write,
}

/// Faults of one provider in one window, shares in percent of calls.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderFaultDocument {
    /// A provider of the controller config.
    pub provider: Spanned<String>,
    /// `read`, `write` (default both).
    #[serde(default)]
    pub operations: Option<Spanned<Vec<Spanned<OperationName>>>>,
    /// The window opens this long after `veer run` starts (default 0s).
    #[serde(default)]
    pub from: Option<Spanned<PolicyDuration>>,
    /// The window closes this long after `veer run` starts (default: never).
    #[serde(default)]
    pub until: Option<Spanned<PolicyDuration>>,
    /// Percent of calls answered with the provider's throttle error.
    #[serde(default)]
    pub throttled: Option<Spanned<f64>>,
    /// The `retry after` hint of throttled answers.
    #[serde(default)]
    pub retry_after: Option<Spanned<PolicyDuration>>,
    /// Percent answered with a transient 5xx-like error.
    #[serde(default)]
    pub unavailable: Option<Spanned<f64>>,
    /// Percent that hang for `timeoutAfter`, then fail (a write may have landed).
    #[serde(default)]
    pub timeout: Option<Spanned<f64>>,
    /// How long a timed-out call hangs (default 5s).
    #[serde(default)]
    pub timeout_after: Option<Spanned<PolicyDuration>>,
    /// Percent whose answer is lost after the provider processed them.
    #[serde(default)]
    pub lost_response: Option<Spanned<f64>>,
    /// Percent answered late.
    #[serde(default)]
    pub delayed: Option<Spanned<f64>>,
    /// The longest delay (default 1s).
    #[serde(default)]
    pub delay_max: Option<Spanned<PolicyDuration>>,
    /// Percent held for `stallFor` before they reach the provider (a writer
    /// delayed after it built its change: the racing writer of ARCHITECTURE.md §5).
    #[serde(default)]
    pub stalled: Option<Spanned<f64>>,
    /// How long a stalled call waits before it is sent, exactly (default 1s).
    #[serde(default)]
    pub stall_for: Option<Spanned<PolicyDuration>>,
}

/// Probe failures of this replica in one window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProbeFaultDocument {
    /// The window opens this long after `veer run` starts (default 0s).
    #[serde(default)]
    pub from: Option<Spanned<PolicyDuration>>,
    /// The window closes this long after `veer run` starts (default: never).
    #[serde(default)]
    pub until: Option<Spanned<PolicyDuration>>,
    /// Endpoint ids whose probes fail (default: every endpoint, the replica loses its network).
    #[serde(default)]
    pub endpoints: Option<Spanned<Vec<Spanned<String>>>>,
    /// `timeout` (default: packets vanish, each probe waits its timeout) or `refused`.
    #[serde(default)]
    pub failure: Option<Spanned<ProbeFailureMode>>,
}

/// Parses the first `Chaos` document of `text`.
pub fn parse(path: &Path, text: &str) -> Result<ChaosDocument, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    for doc in &source::split_documents(text) {
        match source::document_kind(path, doc) {
            Ok((DocumentKind::Chaos, _)) => return parse_document(path, doc).map_err(|d| vec![d]),
            Ok((kind, at)) => {
                errors.push(Diagnostic::error_at(path, at, format!("expected a Chaos document, found {}", kind.name())))
            }
            Err(d) => errors.push(d),
        }
    }
    if errors.is_empty() {
        errors.push(Diagnostic::error_in_file(path, "file holds no Chaos document"));
    }
    Err(errors)
}

/// Parses one document already known to be `kind: Chaos`.
pub fn parse_document(path: &Path, doc: &DocumentText) -> Result<ChaosDocument, Diagnostic> {
    source::parse_document(path, doc)
}

/// What a chaos document is checked against; `None` leaves that check out
/// (`veer validate` without a controller config or without policies).
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    /// The providers of the controller config.
    pub providers: Option<&'a BTreeMap<String, ProviderConfig>>,
    /// Endpoint ids of the policies.
    pub endpoints: Option<&'a BTreeSet<String>>,
}

/// Semantic checks and resolution.
pub fn resolve(path: &Path, document: &ChaosDocument, known: Known<'_>) -> Result<ChaosPlan, Vec<Diagnostic>> {
    let mut f = Findings::new(path, document.kind.referenced);
    document.check_api_version(&mut f);
    let spec = &document.spec;
    if spec.providers.is_empty() && spec.probes.is_empty() {
        f.error(&document.kind, "a Chaos document needs `spec.providers` or `spec.probes` (nothing to break)");
    }
    let mut providers: BTreeMap<String, Vec<FaultRule>> = BTreeMap::new();
    for fault in &spec.providers {
        if let Some(rule) = provider_rule(fault, known, &mut f) {
            providers.entry(fault.provider.value.clone()).or_default().push(rule);
        }
    }
    let probes = spec.probes.iter().filter_map(|p| probe_fault(p, known, &mut f)).collect();
    if f.list.is_empty() {
        Ok(ChaosPlan {
            name: document.metadata.name.value.clone(),
            path: path.to_path_buf(),
            seed: spec.seed.as_ref().map_or(0, |s| s.value),
            providers,
            probes,
        })
    } else {
        Err(f.list)
    }
}

/// The window `[from, until)`, checked.
fn window(
    from: &Option<Spanned<PolicyDuration>>,
    until: &Option<Spanned<PolicyDuration>>,
    f: &mut Findings<'_>,
) -> (Duration, Option<Duration>) {
    let start = from.as_ref().map_or(Duration::ZERO, |d| d.value.get());
    let end = until.as_ref().map(|d| d.value.get());
    if let (Some(until), Some(end)) = (until, end)
        && end <= start
    {
        f.error(until, format!("`until` ({}) must be later than `from`", until.value));
    }
    (start, end)
}

fn share(value: &Option<Spanned<f64>>, name: &str, f: &mut Findings<'_>) -> f64 {
    match value {
        None => 0.0,
        Some(v) if (0.0..=100.0).contains(&v.value) => v.value / 100.0,
        Some(v) => {
            f.error(v, format!("`{name}` is a percentage of calls from 0 to 100, got {}", v.value));
            0.0
        }
    }
}

fn provider_rule(fault: &ProviderFaultDocument, known: Known<'_>, f: &mut Findings<'_>) -> Option<FaultRule> {
    if let Some(providers) = known.providers
        && !providers.contains_key(&fault.provider.value)
    {
        let names: Vec<&str> = providers.keys().map(String::as_str).collect();
        f.error(
            &fault.provider,
            format!("unknown provider `{}` (the controller config has: {})", fault.provider.value, names.join(", ")),
        );
    }
    let (from, until) = window(&fault.from, &fault.until, f);
    let (reads, writes) = match &fault.operations {
        None => (true, true),
        Some(list) => {
            if list.value.is_empty() {
                f.error(list, "`operations` needs `read`, `write` or both");
            }
            let has = |op| list.value.iter().any(|o| o.value == op);
            (has(OperationName::Read), has(OperationName::Write))
        }
    };
    let rates = FaultRates {
        throttled: share(&fault.throttled, "throttled", f),
        retry_after: fault.retry_after.as_ref().map(|d| d.value.get()),
        unavailable: share(&fault.unavailable, "unavailable", f),
        timeout: share(&fault.timeout, "timeout", f),
        timeout_after: fault.timeout_after.as_ref().map_or(FaultRates::NONE.timeout_after, |d| d.value.get()),
        lost_response: share(&fault.lost_response, "lostResponse", f),
        delayed: share(&fault.delayed, "delayed", f),
        delay_max: fault.delay_max.as_ref().map_or(FaultRates::NONE.delay_max, |d| d.value.get()),
        stalled: share(&fault.stalled, "stalled", f),
        stall_for: fault.stall_for.as_ref().map_or(FaultRates::NONE.stall_for, |d| d.value.get()),
    };
    if rates.total() > 1.0 + 1e-9 {
        f.error(
            &fault.provider,
            format!("the fault percentages add up to {:.0}, more than every call (100)", rates.total() * 100.0),
        );
    } else if [
        &fault.throttled,
        &fault.unavailable,
        &fault.timeout,
        &fault.lost_response,
        &fault.delayed,
        &fault.stalled,
    ]
    .iter()
    .all(|share| share.is_none())
    {
        f.error(
            &fault.provider,
            "no fault: give one of throttled, unavailable, timeout, lostResponse, delayed, stalled (percent of calls)",
        );
    }
    for (value, name) in
        [(&fault.timeout_after, "timeoutAfter"), (&fault.delay_max, "delayMax"), (&fault.stall_for, "stallFor")]
    {
        if let Some(v) = value.as_ref().filter(|v| v.value.get().is_zero()) {
            f.error(v, format!("`{name}` must be greater than zero"));
        }
    }
    Some(FaultRule { reads, writes, from, until, rates })
}

fn probe_fault(fault: &ProbeFaultDocument, known: Known<'_>, f: &mut Findings<'_>) -> Option<ProbeFault> {
    let (from, until) = window(&fault.from, &fault.until, f);
    let endpoints = fault.endpoints.as_ref().map(|list| {
        if list.value.is_empty() {
            f.error(list, "`endpoints` is empty: leave it out to fail every probe, or name endpoint ids");
        }
        for id in &list.value {
            if let Some(known) = known.endpoints
                && !known.contains(&id.value)
            {
                f.error(id, format!("unknown endpoint `{}` (no policy has it)", id.value));
            }
        }
        list.value.iter().map(|id| id.value.clone()).collect()
    });
    let failure = fault.failure.as_ref().map_or(ProbeFailureMode::Timeout, |m| m.value);
    Some(ProbeFault { from, until, endpoints, failure })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "apiVersion: veer/v1\nkind: Chaos\nmetadata: { name: t }\nspec:\n";

    fn errors(body: &str) -> Vec<String> {
        let path = Path::new("c.yaml");
        let providers: BTreeMap<String, ProviderConfig> = serde_saphyr::from_str(
            "lab: { type: embedded, zones: [example.test.] }\nother: { type: embedded, zones: [example.org.] }\n",
        )
        .unwrap();
        let endpoints: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        let known = Known { providers: Some(&providers), endpoints: Some(&endpoints) };
        match parse(path, &format!("{HEAD}{body}")).and_then(|doc| resolve(path, &doc, known)) {
            Ok(_) => Vec::new(),
            Err(ds) => ds.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_game_day_resolves_into_rules_and_probe_faults() {
        let path = Path::new("c.yaml");
        let text = format!(
            "{HEAD}  seed: 7\n  providers:\n    - {{ provider: lab, operations: [write], from: 30s, until: 2m, throttled: 30, unavailable: 5 }}\n    - {{ provider: lab, lostResponse: 10, timeout: 5, timeoutAfter: 2s, stalled: 20, stallFor: 3s }}\n  probes:\n    - {{ from: 1m, until: 90s, endpoints: [a] }}\n    - {{ failure: refused }}\n"
        );
        let plan = resolve(path, &parse(path, &text).unwrap(), Known::default()).unwrap();
        assert_eq!(plan.seed, 7);
        let rules = &plan.providers["lab"];
        assert_eq!(rules.len(), 2);
        assert_eq!((rules[0].reads, rules[0].writes), (false, true));
        assert_eq!((rules[0].from, rules[0].until), (Duration::from_secs(30), Some(Duration::from_secs(120))));
        assert!((rules[0].rates.throttled - 0.3).abs() < 1e-9 && (rules[0].rates.unavailable - 0.05).abs() < 1e-9);
        assert_eq!(rules[1].rates.timeout_after, Duration::from_secs(2));
        assert!((rules[1].rates.stalled - 0.2).abs() < 1e-9 && rules[1].rates.stall_for == Duration::from_secs(3));
        assert_eq!(plan.probes.len(), 2);
        assert_eq!(plan.probes[0].endpoints, Some(["a".to_string()].into()));
        assert_eq!((plan.probes[1].endpoints.as_ref(), plan.probes[1].failure), (None, ProbeFailureMode::Refused));
    }

    #[test]
    fn unknown_fields_are_positioned_errors() {
        let e = errors("  providers:\n    - { provider: lab, throttle: 30 }\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("c.yaml:6:") && e[0].contains("throttle"), "{e:?}");
    }

    #[test]
    fn semantic_errors_name_the_offending_value_all_at_once() {
        let e = errors(
            "  providers:\n    - { provider: nope, throttled: 30 }\n    - { provider: lab, throttled: 130 }\n    - { provider: lab, throttled: 60, unavailable: 50 }\n    - { provider: lab }\n    - { provider: lab, delayed: 5, from: 2m, until: 1m }\n  probes:\n    - { endpoints: [zz] }\n",
        );
        assert_eq!(e.len(), 6, "{e:#?}");
        assert!(
            e[0].contains("6:19: error: unknown provider `nope` (the controller config has: lab, other)"),
            "{e:#?}"
        );
        assert!(e[1].contains("7:35: error: `throttled` is a percentage of calls from 0 to 100, got 130"), "{e:#?}");
        assert!(e[2].contains("8:19: error: the fault percentages add up to 110"), "{e:#?}");
        assert!(e[3].contains("9:19: error: no fault"), "{e:#?}");
        assert!(e[4].contains("10:53: error: `until` (1m) must be later than `from`"), "{e:#?}");
        assert!(e[5].contains("12:21: error: unknown endpoint `zz`"), "{e:#?}");
    }

    #[test]
    fn a_stall_needs_a_duration_above_zero() {
        let e = errors("  providers:\n    - { provider: lab, stalled: 5, stallFor: 0s }\n");
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(e[0].starts_with("c.yaml:6:") && e[0].contains("`stallFor` must be greater than zero"), "{e:#?}");
    }

    #[test]
    fn an_empty_document_and_a_wrong_kind_are_refused() {
        assert!(errors("  seed: 1\n")[0].contains("nothing to break"));
        let path = Path::new("c.yaml");
        let e = parse(path, "apiVersion: veer/v1\nkind: Scenario\nmetadata: { name: x }\nspec: {}\n").unwrap_err();
        assert!(e[0].to_string().contains("expected a Chaos document, found Scenario"), "{e:?}");
    }
}
