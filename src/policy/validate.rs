//! Semantic checks of policies (ARCHITECTURE.md §6): everything the parser cannot see.
//! Each finding points at the offending node.

use super::diagnostic::Findings;
use super::model::*;
use crate::config::ProviderConfig;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Checks one policy on its own; `providers` is the controller config's provider
/// map when one is known (provider references are checked only then).
pub fn check_policy(p: &FailoverPolicy, providers: Option<&BTreeMap<String, ProviderConfig>>, f: &mut Findings<'_>) {
    p.check_api_version(f);
    check_name(&p.metadata.name, f);
    let spec = &p.spec;
    if let Some(ttl) = spec.record.ttl.as_ref().filter(|t| !(1..=86_400).contains(&t.value)) {
        f.error(ttl, format!("ttl must be between 1 and 86400 seconds, got {}", ttl.value));
    }
    check_publish_to(p, providers, f);
    check_pools(p, f);
    check_health(&spec.health_check, p, f);
    check_shift(&spec.shift, f);
    check_warmup(&spec.warmup, f);
    check_guards(p, f);
}

/// `metadata.name` of any document: 1–63 lowercase letters, digits and `-`.
pub(crate) fn check_name(name: &Spanned<String>, f: &mut Findings<'_>) {
    if name.value.is_empty()
        || name.value.len() > 63
        || !name.value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        f.error(name, "metadata.name must be 1–63 characters of lowercase letters, digits and `-`");
    }
}

fn check_publish_to(p: &FailoverPolicy, providers: Option<&BTreeMap<String, ProviderConfig>>, f: &mut Findings<'_>) {
    let list = &p.spec.publish_to;
    if list.value.is_empty() {
        f.error(list, "publishTo needs at least one provider");
    }
    let mut seen = HashMap::new();
    for target in &list.value {
        if seen.insert(target.value.as_str(), ()).is_some() {
            f.error(target, format!("provider `{}` is listed twice in publishTo", target.value));
            continue;
        }
        let Some(providers) = providers else { continue };
        let Some(provider) = providers.get(&target.value) else {
            let known: Vec<_> = providers.keys().map(|k| format!("`{k}`")).collect();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            f.error(target, format!("unknown provider `{}` (the controller config defines: {known})", target.value));
            continue;
        };
        let record = p.record_name();
        if !provider.zones.value.iter().any(|z| record.is_within(&z.value)) {
            let zones: Vec<_> = provider.zones.value.iter().map(|z| z.value.to_string()).collect();
            f.error(
                target,
                format!("record {record} is outside every zone of provider `{}` ({})", target.value, zones.join(", ")),
            );
        }
    }
}

fn check_pools(p: &FailoverPolicy, f: &mut Findings<'_>) {
    let pools = &p.spec.pools;
    if pools.value.is_empty() {
        f.error(pools, "pools needs at least one pool");
    }
    let kind = p.spec.record.record_type.value;
    let mut pool_names: HashMap<&str, ()> = HashMap::new();
    let mut ids: HashMap<&str, ()> = HashMap::new();
    let mut addresses: HashMap<String, &str> = HashMap::new();
    for pool in &pools.value {
        if pool_names.insert(pool.name.value.as_str(), ()).is_some() {
            f.error(&pool.name, format!("duplicate pool name `{}`", pool.name.value));
        }
        if !is_identifier(&pool.name.value) {
            f.error(&pool.name, "pool names may hold only letters, digits, `-`, `_` and `.`");
        }
        if pool.endpoints.value.is_empty() {
            f.error(&pool.endpoints, format!("pool `{}` needs at least one endpoint", pool.name.value));
        }
        for e in &pool.endpoints.value {
            if ids.insert(e.id.value.as_str(), ()).is_some() {
                f.error(&e.id, format!("duplicate endpoint id `{}`", e.id.value));
            }
            if !is_identifier(&e.id.value) {
                f.error(&e.id, "endpoint ids may hold only letters, digits, `-`, `_` and `.`");
            }
            if let Some(normalised) = check_address(&e.address, kind, f)
                && let Some(first) = addresses.insert(normalised, e.id.value.as_str())
            {
                f.error(&e.address, format!("duplicate address `{}` (also endpoint `{first}`)", e.address.value));
            }
            if let Some(c) = e.capacity.as_ref().filter(|c| c.value == 0) {
                f.error(c, "capacity must be at least 1 (drain an endpoint instead of giving it no capacity)");
            }
            if let Some(check) = &e.check {
                if let Some(a) = check.address.as_ref().filter(|a| a.value.parse::<std::net::IpAddr>().is_err()) {
                    f.error(a, format!("check.address `{}` is not an IP address", a.value));
                }
                if let Some(port) = check.port.as_ref().filter(|v| v.value == 0) {
                    f.error(port, "port must be between 1 and 65535");
                }
            }
        }
    }
    if kind == RecordKind::CNAME {
        let second = match p.spec.routing.value {
            Routing::Weighted => p.endpoints().nth(1).map(|(_, e)| e),
            Routing::Failover => pools.value.iter().find_map(|pool| pool.endpoints.value.get(1)),
        };
        if let Some(e) = second {
            let why = match p.spec.routing.value {
                Routing::Weighted => "a weighted CNAME would publish several targets at once",
                Routing::Failover => "each failover pool of a CNAME record may hold one endpoint",
            };
            f.error(&e.id, format!("CNAME record with more than one live answer: {why}"));
        }
    }
}

/// Checks an address against the record type; returns it normalised when valid.
fn check_address(address: &Spanned<String>, kind: RecordKind, f: &mut Findings<'_>) -> Option<String> {
    let text = address.value.trim();
    let parsed = match kind {
        RecordKind::A => text.parse::<Ipv4Addr>().map(|a| a.to_string()).map_err(|_| "an IPv4 address".to_string()),
        RecordKind::AAAA => text.parse::<Ipv6Addr>().map(|a| a.to_string()).map_err(|_| "an IPv6 address".to_string()),
        RecordKind::CNAME => RecordName::parse(text)
            .map(|n| n.to_string())
            .map_err(|_| "a fully qualified name with a trailing dot".to_string()),
    };
    match parsed {
        Ok(v) => Some(v),
        Err(expected) => {
            let record = match kind {
                RecordKind::A => "an A record",
                RecordKind::AAAA => "an AAAA record",
                RecordKind::CNAME => "a CNAME record",
            };
            f.error(address, format!("`{}` is not {expected}, as {record} needs", address.value));
            None
        }
    }
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn check_health(h: &HealthCheck, p: &FailoverPolicy, f: &mut Findings<'_>) {
    let kind = h.kind.value;
    let http = matches!(kind, ProbeKind::Http | ProbeKind::Https);
    let type_name = match kind {
        ProbeKind::Http => "http",
        ProbeKind::Https => "https",
        ProbeKind::Tcp => "tcp",
        ProbeKind::Dns => "dns",
    };
    let mut not_for = |at: serde_saphyr::Location, field: &str, applies: &str| {
        f.error_at(at, format!("`{field}` applies to {applies} checks only, not {type_name}"));
    };
    if !http {
        if let Some(v) = &h.path {
            not_for(v.referenced, "path", "http and https");
        }
        if let Some(v) = &h.expect_status {
            not_for(v.referenced, "expectStatus", "http and https");
        }
        if let Some(v) = &h.body {
            not_for(v.referenced, "body", "http and https");
        }
        if let Some(v) = &h.host {
            not_for(v.referenced, "host", "http and https");
        }
        for (_, e) in p.endpoints() {
            if let Some(host) = e.check.as_ref().and_then(|c| c.host.as_ref()) {
                not_for(host.referenced, "check.host", "http and https");
            }
        }
    }
    if kind != ProbeKind::Https {
        if let Some(v) = &h.ca_bundle {
            not_for(v.referenced, "caBundle", "https");
        }
        if let Some(v) = &h.insecure_skip_verify {
            not_for(v.referenced, "insecureSkipVerify", "https");
        }
    }
    match (kind, &h.query) {
        (ProbeKind::Dns, None) => f.error(&h.kind, "a dns check needs `query`, the name to ask each endpoint for"),
        (ProbeKind::Dns, Some(_)) | (_, None) => {}
        (_, Some(q)) => f.error(q, format!("`query` applies to dns checks only, not {type_name}")),
    }
    if kind == ProbeKind::Tcp
        && h.port.is_none()
        && p.endpoints().any(|(_, e)| e.check.as_ref().is_none_or(|c| c.port.is_none()))
    {
        f.error(&h.kind, "a tcp check needs `port`");
    }
    if let Some(port) = h.port.as_ref().filter(|v| v.value == 0) {
        f.error(port, "port must be between 1 and 65535");
    }
    if let Some(path) = h.path.as_ref().filter(|v| !v.value.starts_with('/')) {
        f.error(path, "path must start with `/`");
    }
    if let Some(list) = &h.expect_status {
        if list.value.is_empty() {
            f.error(list, "expectStatus needs at least one status");
        }
        for s in list.value.iter().filter(|s| !(100..=599).contains(&s.value)) {
            f.error(s, format!("{} is not an HTTP status (100–599)", s.value));
        }
    }
    for (value, field) in [(&h.rise, "rise"), (&h.fall, "fall")] {
        if let Some(v) = value.as_ref().filter(|v| v.value < 1) {
            f.error(v, format!("{field} must be at least 1"));
        }
    }
    if let Some(v) = h.interval.as_ref().filter(|v| v.value.get().is_zero()) {
        f.error(v, "interval must be greater than zero");
    }
    if let Some(v) = h.timeout.as_ref().filter(|v| v.value.get().is_zero()) {
        f.error(v, "timeout must be greater than zero");
    }
    if h.timeout() >= h.interval() {
        let at = h.timeout.as_ref().or(h.interval.as_ref()).map_or(h.kind.referenced, |v| v.referenced);
        f.error_at(
            at,
            format!(
                "timeout ({}) must be shorter than interval ({})",
                super::duration::format(h.timeout()),
                super::duration::format(h.interval())
            ),
        );
    }
    if let Some(q) = h.quorum.as_ref().filter(|q| !(q.value > 0.0 && q.value <= 100.0)) {
        f.error(q, format!("quorum must be a percentage above 0 and at most 100, got {}", q.value));
    }
}

pub(crate) fn check_percent(value: &Option<Spanned<f64>>, field: &str, zero_allowed: bool, f: &mut Findings<'_>) {
    if let Some(v) = value {
        let low_ok = if zero_allowed { v.value >= 0.0 } else { v.value > 0.0 };
        if !(low_ok && v.value <= 100.0) {
            let low = if zero_allowed { "from 0" } else { "above 0" };
            f.error(v, format!("{field} must be a percentage {low} up to 100, got {}", v.value));
        }
    }
}

fn check_shift(s: &Shift, f: &mut Findings<'_>) {
    check_percent(&s.max_remove_percent, "maxRemovePercent", false, f);
    if let Some(v) = s.window.as_ref().filter(|v| v.value.get().is_zero()) {
        f.error(v, "window must be greater than zero");
    }
    if let Some(v) = s.max_changes_per_hour.as_ref().filter(|v| v.value == 0) {
        f.error(v, "maxChangesPerHour must be at least 1");
    }
}

fn check_warmup(w: &Warmup, f: &mut Findings<'_>) {
    check_percent(&w.max_join_percent, "maxJoinPercent", false, f);
    let Some(stages) = &w.stages else { return };
    if stages.value.is_empty() {
        f.error(stages, "stages needs at least one stage (use [100] for no warm-up)");
        return;
    }
    let mut previous: Option<f64> = None;
    for stage in &stages.value {
        if !(stage.value > 0.0 && stage.value <= 100.0) {
            f.error(stage, format!("stage {} is not a percentage above 0 and at most 100", stage.value));
        } else if let Some(prev) = previous.filter(|prev| stage.value <= *prev) {
            f.error(stage, format!("stages must be strictly ascending: {} follows {prev}", stage.value));
        }
        previous = Some(stage.value);
    }
    let last = stages.value.last().expect("non-empty");
    if last.value != 100.0 {
        f.error(last, format!("the last stage must be 100, got {}", last.value));
    }
}

fn check_guards(p: &FailoverPolicy, f: &mut Findings<'_>) {
    let g = &p.spec.guards;
    check_percent(&g.min_capacity_percent, "minCapacityPercent", true, f);
    let Some(min) = &g.min_healthy_endpoints else { return };
    let (reachable, why) = match p.spec.routing.value {
        Routing::Weighted => (p.endpoints().count(), "the policy has"),
        Routing::Failover => (
            p.spec.pools.value.iter().map(|pool| pool.endpoints.value.len()).max().unwrap_or(0),
            "failover serves one pool at a time and the largest pool has",
        ),
    };
    if min.value as usize > reachable {
        f.error(
            min,
            format!(
                "guards can never be met: minHealthyEndpoints is {} but {why} {reachable} endpoint{}",
                min.value,
                if reachable == 1 { "" } else { "s" }
            ),
        );
    }
}
