//! Operator overrides (ARCHITECTURE.md §6): drain, pin, freeze and failover-to-pool.
//!
//! These are plain serde values so that the store can persist them, the admin API
//! can accept them and the CLI can build them; the planner only reads them. The
//! JSON form is internally tagged (`{"kind": "drain", …}`): it is never parsed from
//! positioned YAML, so the tag costs no error positions.

use crate::policy::FailoverPolicy;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Default time to live of an override (ARCHITECTURE.md §6: 4 h).
pub const DEFAULT_TTL: std::time::Duration = std::time::Duration::from_secs(4 * 3600);

/// One operator override with its audit fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    /// Unique id (the store assigns it).
    pub id: String,
    /// What the override does.
    pub action: OverrideAction,
    /// Why the operator asked for it.
    pub reason: String,
    /// Who asked for it.
    pub author: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops applying; `None` (no TTL) is accepted only with `force`.
    pub expires_at: Option<Timestamp>,
    /// Bypass the capacity guards (I4). Even a forced override never leaves a record
    /// with zero answers (I1).
    #[serde(default)]
    pub force: bool,
}

impl Override {
    /// Whether the override applies at `now`: created and not yet expired.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.created_at <= now && self.expires_at.is_none_or(|end| now < end)
    }

    /// Checks the audit rules that do not depend on policies.
    pub fn check(&self) -> Result<(), OverrideError> {
        if self.reason.trim().is_empty() {
            return Err(OverrideError::MissingReason);
        }
        if self.expires_at.is_none() && !self.force {
            return Err(OverrideError::NoTtlWithoutForce);
        }
        if let OverrideAction::Pin { weights, .. } = &self.action
            && (weights.is_empty() || weights.values().all(|w| *w == 0))
        {
            return Err(OverrideError::EmptyPin);
        }
        Ok(())
    }
}

/// What an override does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum OverrideAction {
    /// Take an endpoint or a whole pool out of service (weight 0), bypassing the
    /// velocity cap but not the guards (unless forced).
    Drain {
        /// What to drain.
        target: Target,
    },
    /// Publish fixed relative weights for a record; endpoints not listed get 0.
    Pin {
        /// Policy name or record name.
        record: String,
        /// Endpoint id → relative weight.
        weights: BTreeMap<String, u32>,
    },
    /// No changes for the scope while active.
    Freeze {
        /// Which records.
        scope: FreezeScope,
    },
    /// Serve a failover record from this pool, through warm-up unless `immediate`.
    FailoverToPool {
        /// Policy name or record name.
        record: String,
        /// The pool to serve from.
        pool: String,
        /// Skip warm-up (`veer failover --now`).
        #[serde(default)]
        immediate: bool,
    },
}

/// Which records a freeze holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "kebab-case")]
pub enum FreezeScope {
    /// One record, by policy name or record name.
    Record {
        /// Policy name or record name.
        record: String,
    },
    /// Every record published to this provider.
    Provider {
        /// Provider name from the controller config.
        provider: String,
    },
    /// Everything.
    All,
}

impl FromStr for FreezeScope {
    type Err = OverrideError;
    /// Reads `all`, `provider/NAME`, `record/NAME` or a bare record or policy name.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(OverrideError::BadTarget(text.to_string()));
        }
        Ok(if text == "all" {
            FreezeScope::All
        } else if let Some(p) = text.strip_prefix("provider/") {
            FreezeScope::Provider { provider: p.to_string() }
        } else {
            FreezeScope::Record { record: text.strip_prefix("record/").unwrap_or(text).to_string() }
        })
    }
}

/// Whether a drain names an endpoint or a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// One endpoint, by id.
    Endpoint,
    /// Every endpoint of a pool, by pool name.
    Pool,
}

/// A drain target: `endpoint/ID`, `pool/NAME`, a bare endpoint id, each optionally
/// prefixed with `POLICY/` because endpoint ids are unique only within a policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    /// Limit to one policy; `None` matches every policy that has the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Endpoint or pool.
    pub kind: TargetKind,
    /// The endpoint id or pool name.
    pub name: String,
}

impl Target {
    /// Whether the target covers endpoint `endpoint` of pool `pool` in `policy`.
    pub fn covers(&self, policy: &str, pool: &str, endpoint: &str) -> bool {
        self.policy.as_deref().is_none_or(|p| p == policy)
            && match self.kind {
                TargetKind::Endpoint => self.name == endpoint,
                TargetKind::Pool => self.name == pool,
            }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.policy {
            write!(f, "{p}/")?;
        }
        match self.kind {
            TargetKind::Endpoint => write!(f, "endpoint/{}", self.name),
            TargetKind::Pool => write!(f, "pool/{}", self.name),
        }
    }
}

impl FromStr for Target {
    type Err = OverrideError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || OverrideError::BadTarget(text.to_string());
        let parts: Vec<&str> = text.trim().split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let kind = |word: &str| match word {
            "endpoint" => Some(TargetKind::Endpoint),
            "pool" => Some(TargetKind::Pool),
            _ => None,
        };
        let (policy, kind, name) = match parts.as_slice() {
            [name] => (None, TargetKind::Endpoint, *name),
            [k, name] => match kind(k) {
                Some(k) => (None, k, *name),
                None => (Some(*k), TargetKind::Endpoint, *name),
            },
            [policy, k, name] => (Some(*policy), kind(k).ok_or_else(bad)?, *name),
            _ => return Err(bad()),
        };
        Ok(Target { policy: policy.map(str::to_string), kind, name: name.to_string() })
    }
}

/// Why an override is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// Every override needs a reason for the audit trail.
    #[error("an override needs a reason")]
    MissingReason,
    /// `--ttl none` only with `--force`.
    #[error("an override without TTL needs --force")]
    NoTtlWithoutForce,
    /// A pin must leave at least one answer.
    #[error("a pin needs at least one endpoint with a weight above 0")]
    EmptyPin,
    /// The target text does not parse.
    #[error("invalid target `{0}`: expected ENDPOINT, endpoint/ID, pool/NAME or POLICY/pool/NAME")]
    BadTarget(String),
}

/// Whether `name` designates `policy` (by policy name or record name, with or
/// without the trailing dot).
pub fn names_record(name: &str, policy: &FailoverPolicy) -> bool {
    if name == policy.name() {
        return true;
    }
    let record = policy.record_name().to_string();
    let trimmed = record.trim_end_matches('.');
    name == record || name.trim_end_matches('.') == trimmed
}

/// The overrides that bear on one record at `now`, sorted out by kind.
#[derive(Debug, Default)]
pub(crate) struct Applicable<'o> {
    pub drains: Vec<&'o Override>,
    pub pin: Option<&'o Override>,
    pub freeze: Option<&'o Override>,
    pub failover: Option<&'o Override>,
}

impl<'o> Applicable<'o> {
    /// Selects active overrides for `policy`; for pins and failovers the newest wins.
    pub fn select(overrides: &'o [Override], policy: &FailoverPolicy, now: Timestamp) -> Self {
        let mut out = Applicable::default();
        let name = policy.name();
        for o in overrides.iter().filter(|o| o.is_active(now)) {
            match &o.action {
                OverrideAction::Drain { target }
                    if policy.endpoints().any(|(p, e)| target.covers(name, &p.name.value, &e.id.value)) =>
                {
                    out.drains.push(o)
                }
                OverrideAction::Pin { record, .. } if names_record(record, policy) => newest(&mut out.pin, o),
                OverrideAction::FailoverToPool { record, .. } if names_record(record, policy) => {
                    newest(&mut out.failover, o)
                }
                OverrideAction::Freeze { scope } => {
                    let applies = match scope {
                        FreezeScope::All => true,
                        FreezeScope::Record { record } => names_record(record, policy),
                        FreezeScope::Provider { provider } => {
                            policy.spec.publish_to.value.iter().any(|p| &p.value == provider)
                        }
                    };
                    if applies {
                        newest(&mut out.freeze, o);
                    }
                }
                _ => {}
            }
        }
        out.drains.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out
    }
}

fn newest<'o>(slot: &mut Option<&'o Override>, candidate: &'o Override) {
    if slot.is_none_or(|current| (candidate.created_at, &candidate.id) > (current.created_at, &current.id)) {
        *slot = Some(candidate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_in_every_documented_form() {
        let t: Target = "pool/aws-use1".parse().unwrap();
        assert_eq!((t.policy, t.kind, t.name.as_str()), (None, TargetKind::Pool, "aws-use1"));
        let t: Target = "use1-a".parse().unwrap();
        assert_eq!(t.kind, TargetKind::Endpoint);
        let t: Target = "api/use1-a".parse().unwrap();
        assert_eq!((t.policy.as_deref(), t.kind), (Some("api"), TargetKind::Endpoint));
        let t: Target = "api/pool/gcp".parse().unwrap();
        assert_eq!(t.to_string(), "api/pool/gcp");
        assert!("a/b/c/d".parse::<Target>().is_err());
        assert!("api/zone/x".parse::<Target>().is_err());
        assert!("pool/".parse::<Target>().is_err());
    }

    #[test]
    fn an_override_without_ttl_needs_force() {
        let mut o = Override {
            id: "o1".into(),
            action: OverrideAction::Freeze { scope: FreezeScope::All },
            reason: "incident".into(),
            author: "ana".into(),
            created_at: Timestamp(0),
            expires_at: None,
            force: false,
        };
        assert_eq!(o.check(), Err(OverrideError::NoTtlWithoutForce));
        o.force = true;
        assert_eq!(o.check(), Ok(()));
        assert!(o.is_active(Timestamp(u64::MAX)));
        o.expires_at = Some(Timestamp(10));
        assert!(o.is_active(Timestamp(9)) && !o.is_active(Timestamp(10)));
    }

    #[test]
    fn overrides_round_trip_through_json() {
        let o = Override {
            id: "o2".into(),
            action: OverrideAction::Drain { target: "pool/aws-use1".parse().unwrap() },
            reason: "maintenance".into(),
            author: "bo".into(),
            created_at: Timestamp(5),
            expires_at: Some(Timestamp(500)),
            force: false,
        };
        let json = serde_json::to_string(&o).unwrap();
        assert!(json.contains(r#""kind":"drain""#), "{json}");
        assert_eq!(serde_json::from_str::<Override>(&json).unwrap(), o);
    }
}
