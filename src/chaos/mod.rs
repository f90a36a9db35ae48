//! Game days (`veer run --chaos FILE`): a `kind: Chaos` document names providers
//! and the faults to inject into their calls (throttling, 5xx, timeouts, delays,
//! lost responses; per operation, within time windows), and can make this
//! replica's probes fail — every endpoint, as when a vantage loses its network,
//! or listed ones.
//!
//! Provider faults are injected by [`veer_provider::Chaotic`] *inside* the API
//! budget and the retry layer, where a real provider's failures appear, so the
//! game day exercises the same backoff, budget and ambiguity handling a real
//! outage would. Windows are measured from the start of `veer run`. The same
//! seed breaks the same calls.
//!
//! Chaos is for test zones: `veer run` logs it loudly at start, every
//! injected error says "injected by chaos", and every injected fault is logged
//! (`CHAOS: fault injected`, with the generations a write carries) as the call
//! arrives — before a stall or a timeout runs its course.

pub mod document;

pub use document::{ChaosDocument, Known};

use crate::health::probe::{ProbeFailure, ProbeResult, ProbeTarget};
use crate::policy::diagnostic::Diagnostic;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use veer_provider::{ChaosCall, Chaotic, FaultRule, Provider};

/// A resolved chaos document.
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosPlan {
    /// The game day's name.
    pub name: String,
    /// The file it came from.
    pub path: PathBuf,
    /// Seed of every fault draw.
    pub seed: u64,
    /// Fault rules per provider name, in document order (the first open window decides a call).
    pub providers: BTreeMap<String, Vec<FaultRule>>,
    /// Probe faults of this replica.
    pub probes: Vec<ProbeFault>,
}

/// How a failing probe fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeFailureMode {
    /// The network drops packets: the probe waits its timeout, then fails.
    Timeout,
    /// The connection is refused at once.
    Refused,
}

/// Probes of some endpoints (or all) fail within a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFault {
    /// The window opens this long after the start.
    pub from: Duration,
    /// The window closes this long after the start (`None`: never).
    pub until: Option<Duration>,
    /// Endpoint ids whose probes fail; `None`: every endpoint.
    pub endpoints: Option<BTreeSet<String>>,
    /// How they fail.
    pub failure: ProbeFailureMode,
}

impl ProbeFault {
    fn covers(&self, endpoint: &str, elapsed: Duration) -> bool {
        elapsed >= self.from
            && self.until.is_none_or(|until| elapsed < until)
            && self.endpoints.as_ref().is_none_or(|ids| ids.contains(endpoint))
    }
}

/// Reads a chaos file and checks it against the controller's providers and the
/// policies' endpoints; every error is a positioned diagnostic.
pub fn load(path: &Path, setup: &crate::controller::Setup) -> Result<ChaosPlan, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![Diagnostic::error_in_file(path, format!("cannot read chaos file: {e}"))])?;
    let document = document::parse(path, &text)?;
    let endpoints = endpoint_ids(setup.policies.iter().map(|p| &p.policy));
    let known = Known { providers: Some(&setup.config.config.providers), endpoints: Some(&endpoints) };
    document::resolve(path, &document, known)
}

/// Every endpoint id of `policies`.
pub fn endpoint_ids<'p>(policies: impl Iterator<Item = &'p crate::policy::FailoverPolicy>) -> BTreeSet<String> {
    policies.flat_map(|p| p.endpoints().map(|(_, e)| e.id.value.clone())).collect()
}

impl ChaosPlan {
    /// `inner` behind this plan's faults for `provider`, or `inner` itself when
    /// the plan names no fault for it. Each provider draws from its own seed.
    pub fn wrap(&self, provider: &str, inner: Arc<dyn Provider>) -> Arc<dyn Provider> {
        match self.providers.get(provider) {
            Some(rules) => {
                let seed = crate::health::schedule::stable_hash(&[&self.seed.to_le_bytes(), provider.as_bytes()]);
                let name = provider.to_string();
                let log = move |call: &ChaosCall| {
                    if let Some(result) = &call.delivered {
                        let outcome = match result {
                            Ok(()) => "applied".to_string(),
                            Err(e) => format!("{e:?}"),
                        };
                        tracing::info!(
                            provider = %name, generations = ?call.generations, outcome = %outcome,
                            "CHAOS: a stalled write reached the provider"
                        );
                        return;
                    }
                    let fault = call.injected.map(|i| i.to_string()).unwrap_or_default();
                    tracing::info!(
                        provider = %name, operation = %call.operation, fault = %fault, generations = ?call.generations,
                        "CHAOS: fault injected"
                    );
                };
                Arc::new(Chaotic::new(inner, rules.clone(), seed).observed(Arc::new(log)))
            }
            None => inner,
        }
    }

    /// The probe faults, with their windows starting now.
    pub fn probe_chaos(&self) -> Option<Arc<ProbeChaos>> {
        (!self.probes.is_empty()).then(|| Arc::new(ProbeChaos { faults: self.probes.clone(), started: Instant::now() }))
    }

    /// Logs, loudly, that chaos is on and what it breaks.
    pub fn announce(&self) {
        tracing::warn!(
            chaos = %self.name, file = %self.path.display(), seed = self.seed,
            "CHAOS IS ON: injecting faults into provider calls and probes — for game days against test zones only"
        );
        for (provider, rules) in &self.providers {
            for rule in rules {
                let r = &rule.rates;
                tracing::warn!(
                    chaos = %self.name, provider = %provider, reads = rule.reads, writes = rule.writes,
                    from = %crate::policy::duration::format(rule.from),
                    until = %rule.until.map_or_else(|| "stop".into(), crate::policy::duration::format),
                    throttled_percent = r.throttled * 100.0, unavailable_percent = r.unavailable * 100.0,
                    timeout_percent = r.timeout * 100.0, lost_response_percent = r.lost_response * 100.0,
                    delayed_percent = r.delayed * 100.0, stalled_percent = r.stalled * 100.0,
                    stall_ms = r.stall_for.as_millis() as u64,
                    "CHAOS: provider faults"
                );
            }
        }
        for fault in &self.probes {
            let endpoints = fault.endpoints.as_ref().map_or_else(
                || "every endpoint (this replica loses its network)".to_string(),
                |ids| ids.iter().cloned().collect::<Vec<_>>().join(", "),
            );
            tracing::warn!(
                chaos = %self.name, endpoints = %endpoints, failure = ?fault.failure,
                from = %crate::policy::duration::format(fault.from),
                until = %fault.until.map_or_else(|| "stop".into(), crate::policy::duration::format),
                "CHAOS: probes fail"
            );
        }
    }
}

/// This replica's probe faults at run time (tokio time, windows from `started`).
#[derive(Debug)]
pub struct ProbeChaos {
    faults: Vec<ProbeFault>,
    started: Instant,
}

impl ProbeChaos {
    /// The failure mode for a probe of `endpoint` now, if a fault covers it.
    pub fn failure_for(&self, endpoint: &str) -> Option<ProbeFailureMode> {
        let elapsed = Instant::now().saturating_duration_since(self.started);
        self.faults.iter().find(|f| f.covers(endpoint, elapsed)).map(|f| f.failure)
    }

    /// A failed probe of `target` as `mode` makes it: a timeout waits the probe's
    /// timeout first, as a network that drops packets would.
    pub async fn fail(mode: ProbeFailureMode, target: &ProbeTarget) -> ProbeResult {
        match mode {
            ProbeFailureMode::Timeout => {
                tokio::time::sleep(target.timeout).await;
                ProbeResult { outcome: Err(ProbeFailure::Timeout(target.timeout)), latency: target.timeout }
            }
            ProbeFailureMode::Refused => {
                ProbeResult { outcome: Err(ProbeFailure::ConnectRefused), latency: Duration::ZERO }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(from: u64, until: Option<u64>, endpoints: Option<&[&str]>) -> ProbeFault {
        ProbeFault {
            from: Duration::from_secs(from),
            until: until.map(Duration::from_secs),
            endpoints: endpoints.map(|ids| ids.iter().map(|s| s.to_string()).collect()),
            failure: ProbeFailureMode::Timeout,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn probe_faults_cover_their_endpoints_inside_their_window() {
        let chaos = ProbeChaos {
            faults: vec![fault(10, Some(20), Some(&["a"])), fault(30, None, None)],
            started: Instant::now(),
        };
        assert_eq!(chaos.failure_for("a"), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(chaos.failure_for("a"), Some(ProbeFailureMode::Timeout));
        assert_eq!(chaos.failure_for("b"), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(chaos.failure_for("a"), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(chaos.failure_for("a").is_some() && chaos.failure_for("b").is_some(), "the whole network is gone");
    }

    #[test]
    fn providers_without_faults_are_left_unwrapped() {
        let plan = ChaosPlan {
            name: "t".into(),
            path: "c.yaml".into(),
            seed: 1,
            providers: BTreeMap::from([("lab".to_string(), vec![])]),
            probes: vec![],
        };
        let memory: Arc<dyn Provider> = Arc::new(veer_provider::conformance::MemoryProvider::new(vec![]));
        assert!(Arc::ptr_eq(&plan.wrap("other", memory.clone()), &memory));
        assert!(!Arc::ptr_eq(&plan.wrap("lab", memory.clone()), &memory));
        assert!(plan.probe_chaos().is_none());
    }
}
