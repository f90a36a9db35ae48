//! Scenario documents (`kind: Scenario`, ARCHITECTURE.md §7): the YAML model, parsed with
//! the same positioned errors as policies, and the resolved [`Scenario`].
//!
//! The YAML structs are flat and `deny_unknown_fields`: an event is one struct
//! whose fields say which kind it is (internally tagged enums lose positions).

use crate::planner::{FreezeScope, Override, OverrideAction, Target};
use crate::policy::FailoverPolicy;
use crate::policy::diagnostic::{Diagnostic, Findings};
use crate::policy::duration::PolicyDuration;
use crate::policy::source::{self, DocumentKind};
use crate::time::Timestamp;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// How the simulated providers publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Per-answer weights (0–255, as Route 53).
    Weighted,
    /// Membership only.
    SetOnly,
}

/// A scenario document as written (`kind: Scenario`); its name is printed in the output.
pub type ScenarioDocument = crate::policy::model::Document<ScenarioSpec>;

/// The body of a scenario.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScenarioSpec {
    /// Policy file, relative to the scenario file (`--policy` overrides it).
    #[serde(default)]
    pub policy: Option<Spanned<String>>,
    /// `weighted` (default) or `set-only`.
    #[serde(default)]
    pub capability: Option<Spanned<Capability>>,
    /// Virtual time to run.
    pub duration: Spanned<PolicyDuration>,
    /// Planning period (default 1s).
    #[serde(default)]
    pub tick: Option<Spanned<PolicyDuration>>,
    /// Seed handed to the planner (default 0).
    #[serde(default)]
    pub seed: Option<Spanned<u64>>,
    /// Vantage ids (default `[v1, v2, v3]`).
    #[serde(default)]
    pub vantages: Option<Spanned<Vec<Spanned<String>>>>,
    /// What happens, and when.
    #[serde(default)]
    pub events: Vec<EventDocument>,
}

/// Health of an endpoint as a vantage's probes see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// Probes succeed.
    Up,
    /// Probes fail.
    Down,
}

/// One event as written: exactly one of endpoint/pool + health, vantage +
/// impaired, or override.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDocument {
    /// When: applied at the start of the tick that contains it.
    pub at: Spanned<PolicyDuration>,
    /// An endpoint id.
    #[serde(default)]
    pub endpoint: Option<Spanned<String>>,
    /// A pool name: every endpoint of the pool.
    #[serde(default)]
    pub pool: Option<Spanned<String>>,
    /// The new health.
    #[serde(default)]
    pub health: Option<Spanned<Health>>,
    /// Only these vantages see the change (default: all).
    #[serde(default)]
    pub vantages: Option<Spanned<Vec<Spanned<String>>>>,
    /// A vantage id, with `impaired`.
    #[serde(default)]
    pub vantage: Option<Spanned<String>>,
    /// The vantage loses (`true`) or regains (`false`) its network.
    #[serde(default)]
    pub impaired: Option<Spanned<bool>>,
    /// An operator override, or `clear`.
    #[serde(default, rename = "override")]
    pub override_: Option<OverrideDocument>,
}

/// An override event as written; exactly one of drain, pin, freeze, failover, clear.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OverrideDocument {
    /// Drain target: `pool/NAME`, `endpoint/ID` or `ID`.
    #[serde(default)]
    pub drain: Option<Spanned<String>>,
    /// Pin: endpoint id → relative weight.
    #[serde(default)]
    pub pin: Option<Spanned<BTreeMap<String, u32>>>,
    /// Freeze scope: `all`, `provider/NAME`, `record/NAME`.
    #[serde(default)]
    pub freeze: Option<Spanned<String>>,
    /// Failover to this pool.
    #[serde(default)]
    pub failover: Option<Spanned<String>>,
    /// Remove overrides: `all` or an override id.
    #[serde(default)]
    pub clear: Option<Spanned<String>>,
    /// Pin and failover: policy or record name (default: the first policy).
    #[serde(default)]
    pub record: Option<Spanned<String>>,
    /// Why (required except for `clear`).
    #[serde(default)]
    pub reason: Option<Spanned<String>>,
    /// Bypass the guards.
    #[serde(default)]
    pub force: Option<Spanned<bool>>,
    /// Time to live (default 4h).
    #[serde(default)]
    pub ttl: Option<Spanned<PolicyDuration>>,
    /// Override id (default `o1`, `o2`, … in event order).
    #[serde(default)]
    pub id: Option<Spanned<String>>,
    /// Failover without warm-up.
    #[serde(default)]
    pub immediate: Option<Spanned<bool>>,
}

/// A resolved scenario, ready to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name.
    pub name: String,
    /// How plans are published.
    pub capability: Capability,
    /// Virtual time to run.
    pub duration: Duration,
    /// Planning period.
    pub tick: Duration,
    /// Planner seed.
    pub seed: u64,
    /// Vantage ids.
    pub vantages: Vec<String>,
    /// Events in time order (stable for equal times).
    pub events: Vec<Event>,
}

/// One resolved event.
#[derive(Debug, Clone)]
pub struct Event {
    /// When.
    pub at: Duration,
    /// What.
    pub action: EventAction,
}

/// What an event does.
#[derive(Debug, Clone)]
pub enum EventAction {
    /// Probes of the target's endpoints start succeeding or failing.
    Health {
        /// Endpoint or pool (in every policy that has it).
        target: Target,
        /// The vantages that see it; `None`: all.
        vantages: Option<Vec<String>>,
        /// The new health.
        health: Health,
    },
    /// A vantage loses or regains its network.
    Impair {
        /// The vantage.
        vantage: String,
        /// Lost (`true`) or regained.
        impaired: bool,
    },
    /// An operator creates an override (`created_at` is the event time).
    Override(Override),
    /// An operator removes overrides: `None` all, else one id.
    Clear(Option<String>),
}

/// A scenario with the policies it runs against.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The scenario.
    pub scenario: Scenario,
    /// The policies, validated.
    pub policies: Vec<crate::policy::LoadedPolicy>,
}

/// Reads a scenario file and its policies (`policy_override` replaces
/// `spec.policy`); every error is a positioned diagnostic.
pub fn load(path: &Path, policy_override: Option<&Path>) -> Result<Loaded, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![Diagnostic::error_in_file(path, format!("cannot read scenario: {e}"))])?;
    let document = parse(path, &text)?;
    let policy_path = match (policy_override, &document.spec.policy) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) => path.parent().unwrap_or(Path::new("")).join(&p.value),
        (None, None) => {
            return Err(vec![Diagnostic::error_at(
                path,
                document.kind.referenced,
                "spec.policy is missing (name a policy file, or pass --policy)",
            )]);
        }
    };
    if let (None, Some(given), false) = (policy_override, &document.spec.policy, policy_path.exists()) {
        return Err(vec![Diagnostic::error_at(
            path,
            given.referenced,
            format!("policy file {} not found (spec.policy is relative to the scenario file)", policy_path.display()),
        )]);
    }
    let loaded = crate::policy::load(std::slice::from_ref(&policy_path), None);
    if !loaded.is_valid() {
        return Err(loaded.diagnostics.into_iter().filter(Diagnostic::is_error).collect());
    }
    if loaded.policies.is_empty() {
        let at = document.spec.policy.as_ref().map_or(document.kind.referenced, |p| p.referenced);
        return Err(vec![Diagnostic::error_at(path, at, format!("{} holds no FailoverPolicy", policy_path.display()))]);
    }
    let policies: Vec<&FailoverPolicy> = loaded.policies.iter().map(|p| &p.policy).collect();
    let scenario = resolve(path, &document, &policies)?;
    Ok(Loaded { scenario, policies: loaded.policies })
}

/// Parses the first `Scenario` document of `text`.
pub fn parse(path: &Path, text: &str) -> Result<ScenarioDocument, Vec<Diagnostic>> {
    let docs = source::split_documents(text);
    let mut errors = Vec::new();
    for doc in &docs {
        match source::document_kind(path, doc) {
            Ok((DocumentKind::Scenario, _)) => {
                return source::parse_document::<ScenarioDocument>(path, doc).map_err(|d| vec![d]);
            }
            Ok((kind, at)) => errors.push(Diagnostic::error_at(
                path,
                at,
                format!("expected a Scenario document, found {}", kind.name()),
            )),
            Err(d) => errors.push(d),
        }
    }
    if errors.is_empty() {
        errors.push(Diagnostic::error_in_file(path, "file holds no Scenario document"));
    }
    Err(errors)
}

/// Semantic checks and resolution against the policies.
pub fn resolve(
    path: &Path,
    document: &ScenarioDocument,
    policies: &[&FailoverPolicy],
) -> Result<Scenario, Vec<Diagnostic>> {
    let mut f = Findings::new(path, document.kind.referenced);
    document.check_api_version(&mut f);
    let spec = &document.spec;
    let duration = spec.duration.value.get();
    if duration.is_zero() {
        f.error(&spec.duration, "duration must be greater than zero");
    }
    let tick = spec.tick.as_ref().map_or(Duration::from_secs(1), |t| t.value.get());
    if let Some(t) = spec.tick.as_ref().filter(|t| t.value.get().is_zero() || t.value.get() > duration) {
        f.error(t, "tick must be greater than zero and at most the duration");
    }
    let vantages: Vec<String> = match &spec.vantages {
        Some(list) => {
            if list.value.is_empty() {
                f.error(list, "vantages needs at least one vantage");
            }
            let mut seen = BTreeSet::new();
            for v in &list.value {
                if !seen.insert(v.value.as_str()) {
                    f.error(v, format!("vantage `{}` is listed twice", v.value));
                }
            }
            list.value.iter().map(|v| v.value.clone()).collect()
        }
        None => ["v1", "v2", "v3"].map(String::from).to_vec(),
    };
    let endpoints: BTreeSet<&str> =
        policies.iter().flat_map(|p| p.endpoints().map(|(_, e)| e.id.value.as_str())).collect();
    let pools: BTreeSet<&str> =
        policies.iter().flat_map(|p| p.spec.pools.value.iter().map(|pool| pool.name.value.as_str())).collect();
    let check_vantage = |v: &Spanned<String>, f: &mut Findings<'_>| {
        if !vantages.contains(&v.value) {
            f.error(v, format!("unknown vantage `{}` (the scenario has: {})", v.value, vantages.join(", ")));
        }
    };

    let mut events = Vec::new();
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let mut counter = 0;
    for e in &spec.events {
        let at = e.at.value.get();
        if at >= duration {
            f.error(&e.at, format!("event at {} is not before the end of the scenario", e.at.value));
        }
        let health_event = e.endpoint.is_some() || e.pool.is_some() || e.health.is_some() || e.vantages.is_some();
        let vantage_event = e.vantage.is_some() || e.impaired.is_some();
        let kinds = usize::from(health_event) + usize::from(vantage_event) + usize::from(e.override_.is_some());
        if kinds != 1 {
            f.error(
                &e.at,
                "an event needs exactly one of: endpoint or pool with health, vantage with impaired, or override",
            );
            continue;
        }
        if health_event {
            let target = match (&e.endpoint, &e.pool) {
                (Some(id), None) => {
                    if !endpoints.contains(id.value.as_str()) {
                        f.error(id, format!("unknown endpoint `{}`", id.value));
                    }
                    Target { policy: None, kind: crate::planner::TargetKind::Endpoint, name: id.value.clone() }
                }
                (None, Some(pool)) => {
                    if !pools.contains(pool.value.as_str()) {
                        f.error(pool, format!("unknown pool `{}`", pool.value));
                    }
                    Target { policy: None, kind: crate::planner::TargetKind::Pool, name: pool.value.clone() }
                }
                _ => {
                    f.error(&e.at, "a health event names exactly one of endpoint or pool");
                    continue;
                }
            };
            let Some(health) = &e.health else {
                f.error(&e.at, "a health event needs `health: up` or `health: down`");
                continue;
            };
            if let Some(list) = &e.vantages {
                list.value.iter().for_each(|v| check_vantage(v, &mut f));
            }
            let vantages = e.vantages.as_ref().map(|l| l.value.iter().map(|v| v.value.clone()).collect());
            events.push(Event { at, action: EventAction::Health { target, vantages, health: health.value } });
        } else if vantage_event {
            let (Some(vantage), Some(impaired)) = (&e.vantage, &e.impaired) else {
                f.error(&e.at, "a vantage event needs both `vantage` and `impaired`");
                continue;
            };
            check_vantage(vantage, &mut f);
            events.push(Event {
                at,
                action: EventAction::Impair { vantage: vantage.value.clone(), impaired: impaired.value },
            });
        } else if let Some(o) = &e.override_ {
            counter += 1;
            if let Some(action) = resolve_override(o, at, counter, policies, &mut ids, &e.at, &mut f) {
                events.push(Event { at, action });
            }
        }
    }
    events.sort_by_key(|e| e.at);
    if f.list.is_empty() {
        Ok(Scenario {
            name: document.metadata.name.value.clone(),
            capability: spec.capability.as_ref().map_or(Capability::Weighted, |c| c.value),
            duration,
            tick,
            seed: spec.seed.as_ref().map_or(0, |s| s.value),
            vantages,
            events,
        })
    } else {
        Err(f.list)
    }
}

fn resolve_override(
    o: &OverrideDocument,
    at: Duration,
    counter: usize,
    policies: &[&FailoverPolicy],
    ids: &mut BTreeSet<String>,
    event_at: &Spanned<PolicyDuration>,
    f: &mut Findings<'_>,
) -> Option<EventAction> {
    let chosen = [o.drain.is_some(), o.pin.is_some(), o.freeze.is_some(), o.failover.is_some(), o.clear.is_some()];
    if chosen.iter().filter(|c| **c).count() != 1 {
        f.error(event_at, "an override needs exactly one of: drain, pin, freeze, failover, clear");
        return None;
    }
    if let Some(clear) = &o.clear {
        if clear.value == "all" {
            return Some(EventAction::Clear(None));
        }
        if !ids.contains(&clear.value) {
            f.error(clear, format!("`clear` names no earlier override: `{}` (use `all` or an id)", clear.value));
        }
        return Some(EventAction::Clear(Some(clear.value.clone())));
    }
    let Some(reason) = o.reason.as_ref().filter(|r| !r.value.trim().is_empty()) else {
        f.error(event_at, "an override needs a `reason`");
        return None;
    };
    let record = match &o.record {
        Some(r) => {
            if !policies.iter().any(|p| crate::planner::overrides::names_record(&r.value, p)) {
                f.error(r, format!("no policy or record named `{}`", r.value));
            }
            r.value.clone()
        }
        None => policies[0].name().to_string(),
    };
    let action = if let Some(target) = &o.drain {
        match target.value.parse::<Target>() {
            Ok(t) => {
                if !policies
                    .iter()
                    .any(|p| p.endpoints().any(|(pool, e)| t.covers(p.name(), &pool.name.value, &e.id.value)))
                {
                    f.error(target, format!("drain target `{}` matches no endpoint", target.value));
                }
                OverrideAction::Drain { target: t }
            }
            Err(e) => {
                f.error(target, e.to_string());
                return None;
            }
        }
    } else if let Some(pin) = &o.pin {
        OverrideAction::Pin { record, weights: pin.value.clone() }
    } else if let Some(scope) = &o.freeze {
        match scope.value.parse::<FreezeScope>() {
            Ok(s) => OverrideAction::Freeze { scope: s },
            Err(e) => {
                f.error(scope, e.to_string());
                return None;
            }
        }
    } else if let Some(pool) = &o.failover {
        if !policies.iter().any(|p| p.spec.pools.value.iter().any(|x| x.name.value == pool.value)) {
            f.error(pool, format!("unknown pool `{}`", pool.value));
        }
        OverrideAction::FailoverToPool {
            record,
            pool: pool.value.clone(),
            immediate: o.immediate.as_ref().is_some_and(|v| v.value),
        }
    } else {
        return None;
    };
    let id = o.id.as_ref().map_or_else(|| format!("o{counter}"), |i| i.value.clone());
    if !ids.insert(id.clone()) {
        let at = o.id.as_ref().map_or(event_at.referenced, |i| i.referenced);
        f.error_at(at, format!("override id `{id}` is used twice"));
    }
    let created_at = Timestamp(at.as_millis() as u64);
    let ttl = o.ttl.as_ref().map_or(crate::planner::overrides::DEFAULT_TTL, |t| t.value.get());
    let o = Override {
        id,
        action,
        reason: reason.value.clone(),
        author: "scenario".into(),
        created_at,
        expires_at: Some(created_at.add(ttl)),
        force: o.force.as_ref().is_some_and(|v| v.value),
    };
    if let Err(e) = o.check() {
        f.error(event_at, e.to_string());
    }
    Some(EventAction::Override(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "apiVersion: veer/v1
kind: FailoverPolicy
metadata: { name: api }
spec:
  record: { name: api.example.com., type: A }
  publishTo: [p]
  routing: weighted
  pools:
    - name: aws
      endpoints:
        - { id: a, address: 192.0.2.1 }
  healthCheck: { type: tcp, port: 1 }
";

    fn errors(text: &str) -> Vec<String> {
        let path = Path::new("s.yaml");
        let loaded = crate::policy::load_text(Path::new("p.yaml"), POLICY, None);
        let policies: Vec<&FailoverPolicy> = loaded.policies.iter().map(|p| &p.policy).collect();
        match parse(path, text).and_then(|doc| resolve(path, &doc, &policies)) {
            Ok(_) => Vec::new(),
            Err(ds) => ds.iter().map(ToString::to_string).collect(),
        }
    }

    const HEAD: &str = "apiVersion: veer/v1\nkind: Scenario\nmetadata: { name: t }\nspec:\n  duration: 1m\n  events:\n";

    #[test]
    fn a_valid_scenario_resolves_with_defaults() {
        assert!(errors(&format!("{HEAD}    - {{ at: 5s, endpoint: a, health: down }}\n")).is_empty());
    }

    #[test]
    fn unknown_fields_are_positioned_errors() {
        let e = errors(&format!("{HEAD}    - {{ at: 5s, endpiont: a, health: down }}\n"));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("s.yaml:7:") && e[0].contains("endpiont"), "{e:?}");
    }

    #[test]
    fn semantic_errors_name_the_offending_value_all_at_once() {
        let text = format!(
            "{HEAD}    - {{ at: 5s, endpoint: nope, health: down }}\n    - {{ at: 2m, pool: aws, health: up }}\n    - {{ at: 3s, vantage: v9, impaired: true }}\n    - {{ at: 4s, override: {{ drain: pool/aws }} }}\n    - {{ at: 6s, override: {{ clear: o7 }} }}\n"
        );
        let e = errors(&text);
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(e[0].contains("7:27: error: unknown endpoint `nope`"), "{e:#?}");
        assert!(e[1].contains("8:13: error: event at 2m is not before the end"), "{e:#?}");
        assert!(e[2].contains("unknown vantage `v9`"), "{e:#?}");
        assert!(e[3].contains("an override needs a `reason`"), "{e:#?}");
        assert!(e[4].contains("`clear` names no earlier override"), "{e:#?}");
    }
}
