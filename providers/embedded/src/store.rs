//! The zones the embedded server serves: record sets with weights, SOA data and a
//! serial that is bumped on every change.
//!
//! One [`Store`] is shared by the DNS server (readers) and the provider (the only
//! writer in production). A change takes the write lock once, checks every
//! change of the batch against what the caller read, and writes all or nothing,
//! so the in-process compare-and-swap is as strong as a provider-side one.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::RwLock;
use veer_provider::{Answer, ChangeBatch, Observed, ProviderError, RecordName, RecordSet, RecordType};

/// SOA and NS data of one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneConfig {
    /// The zone apex.
    pub apex: RecordName,
    /// The zone's name servers (NS at the apex; the first is the SOA MNAME).
    pub nameservers: Vec<RecordName>,
    /// The SOA RNAME (the hostmaster's mailbox as a name).
    pub hostmaster: RecordName,
    /// TTL of the SOA and NS records.
    pub soa_ttl: u32,
    /// SOA refresh, retry and expire, in seconds.
    pub refresh: i32,
    /// SOA retry.
    pub retry: i32,
    /// SOA expire.
    pub expire: i32,
    /// SOA minimum: the TTL of negative answers (RFC 2308).
    pub negative_ttl: u32,
}

impl ZoneConfig {
    /// A zone with `ns1.<apex>` as its name server and conventional timers.
    pub fn new(apex: RecordName) -> Self {
        let under = |label: &str| RecordName::parse(&format!("{label}.{apex}")).expect("a label under a valid apex");
        Self {
            nameservers: vec![under("ns1")],
            hostmaster: under("hostmaster"),
            apex,
            soa_ttl: 3600,
            refresh: 3600,
            retry: 600,
            expire: 604_800,
            negative_ttl: 60,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Zone {
    pub(crate) config: ZoneConfig,
    /// Bumped (wrapping, RFC 1982) on every change of the zone.
    pub(crate) serial: u32,
    pub(crate) rrsets: BTreeMap<(RecordName, RecordType), RecordSet>,
}

impl Zone {
    /// Whether any record (or the apex) exists at `name` or below it; decides
    /// NODATA (the name exists) versus NXDOMAIN.
    pub(crate) fn name_exists(&self, name: &RecordName) -> bool {
        name == &self.config.apex
            || self.config.nameservers.contains(name)
            || self.rrsets.iter().any(|((n, _), set)| set.live_answers().next().is_some() && n.is_within(name))
    }
}

/// The zones served, behind one lock.
#[derive(Debug)]
pub struct Store {
    zones: RwLock<BTreeMap<RecordName, Zone>>,
}

/// Why a value cannot be stored as a record of its type.
pub(crate) fn check_value(rtype: RecordType, value: &str) -> Result<(), String> {
    let ok = match rtype {
        RecordType::A => value.parse::<Ipv4Addr>().is_ok(),
        RecordType::AAAA => value.parse::<Ipv6Addr>().is_ok(),
        RecordType::CNAME => RecordName::parse(value).is_ok(),
        RecordType::TXT => value.len() <= 255,
    };
    if ok { Ok(()) } else { Err(format!("{value:?} is not valid {rtype} data")) }
}

impl Store {
    /// A store serving `zones`, each empty but for SOA and NS, with serial `initial_serial`.
    pub fn new(zones: Vec<ZoneConfig>, initial_serial: u32) -> Self {
        let zones = zones
            .into_iter()
            .map(|config| (config.apex.clone(), Zone { config, serial: initial_serial, rrsets: BTreeMap::new() }))
            .collect();
        Self { zones: RwLock::new(zones) }
    }

    /// The zone apexes served.
    pub fn apexes(&self) -> Vec<RecordName> {
        self.zones.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    /// The current SOA serial of `apex`.
    pub fn serial(&self, apex: &RecordName) -> Option<u32> {
        self.zones.read().unwrap_or_else(|p| p.into_inner()).get(apex).map(|z| z.serial)
    }

    /// Runs `f` on the zone that contains `name` (the longest matching apex).
    pub(crate) fn with_zone_of<T>(&self, name: &str, f: impl FnOnce(&Zone) -> T) -> Option<T> {
        let zones = self.zones.read().unwrap_or_else(|p| p.into_inner());
        zones
            .values()
            .filter(|z| within(name, z.config.apex.as_str()))
            .max_by_key(|z| z.config.apex.as_str().len())
            .map(f)
    }

    /// What the provider reads: the answers and the ownership record of `name`.
    pub fn observe(&self, name: &RecordName, rtype: RecordType) -> Result<Observed, ProviderError> {
        self.with_zone_of(name.as_str(), |zone| observe(zone, name, rtype))
            .ok_or_else(|| ProviderError::Rejected(format!("{name} is in no zone this server serves")))
    }

    /// Applies a batch atomically if every name still holds what was read; bumps
    /// the zone's serial once. Runs [`ChangeBatch::check`] first.
    pub fn apply(&self, batch: &ChangeBatch, capabilities: &veer_provider::Capabilities) -> Result<(), ProviderError> {
        batch.check(capabilities)?;
        for change in &batch.changes {
            for answer in &change.desired.answers {
                check_value(change.desired.rtype, &answer.value)
                    .map_err(|e| ProviderError::Rejected(format!("{}: {e}", change.name())))?;
            }
        }
        let mut zones = self.zones.write().unwrap_or_else(|p| p.into_inner());
        let zone = zones
            .get_mut(&batch.zone)
            .ok_or_else(|| ProviderError::Rejected(format!("zone {} is not served", batch.zone)))?;
        for change in &batch.changes {
            if observe(zone, change.name(), change.expected.rtype) != change.expected {
                return Err(ProviderError::Conflict(format!("{} changed since it was read", change.name())));
            }
        }
        for change in &batch.changes {
            let name = change.name().clone();
            zone.rrsets.insert((name.clone(), change.expected.rtype), capabilities.published(&change.desired));
            let txt = Answer { set_id: None, value: change.ownership.encode(), weight: None };
            let owner_name = name.ownership_name();
            zone.rrsets.insert(
                (owner_name.clone(), RecordType::TXT),
                RecordSet::new(owner_name, RecordType::TXT, change.desired.ttl, vec![txt]),
            );
        }
        zone.serial = zone.serial.wrapping_add(1);
        Ok(())
    }

    /// Replaces the record set of `name`/`rtype` without any check (empty removes
    /// it); bumps the serial. For tests and operators, never for the enactor.
    pub fn put_unchecked(&self, name: &RecordName, rtype: RecordType, ttl: u32, answers: Vec<Answer>) {
        let mut zones = self.zones.write().unwrap_or_else(|p| p.into_inner());
        let Some(zone) =
            zones.values_mut().filter(|z| name.is_within(&z.config.apex)).max_by_key(|z| z.config.apex.as_str().len())
        else {
            return;
        };
        if answers.is_empty() {
            zone.rrsets.remove(&(name.clone(), rtype));
        } else {
            zone.rrsets.insert((name.clone(), rtype), RecordSet::new(name.clone(), rtype, ttl, answers));
        }
        zone.serial = zone.serial.wrapping_add(1);
    }
}

fn observe(zone: &Zone, name: &RecordName, rtype: RecordType) -> Observed {
    let txt: Vec<String> = zone
        .rrsets
        .get(&(name.ownership_name(), RecordType::TXT))
        .map(|set| set.answers.iter().map(|a| a.value.clone()).collect())
        .unwrap_or_default();
    Observed::from_parts(name.clone(), rtype, zone.rrsets.get(&(name.clone(), rtype)).cloned(), &txt)
}

/// Whether the lowercase name `name` equals `apex` or lies below it.
pub(crate) fn within(name: &str, apex: &str) -> bool {
    apex == "." || name == apex || (name.ends_with(apex) && name.as_bytes()[name.len() - apex.len() - 1] == b'.')
}
