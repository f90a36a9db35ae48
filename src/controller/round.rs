//! One observe → plan → enact round (SPEC §2), shared by `veer plan`,
//! `veer run --once` and the controller loop. Reconcile is observed, not
//! remembered: every round reads the providers, plans against what it read, and
//! writes only what differs.

use super::providers::ProviderSet;
use crate::enactor::Intent;
use crate::health::probe::{ProbeResult, ProbeTarget};
use crate::health::{EndpointHealth, HealthState, HealthView};
use crate::planner::{ObservedRecord, Plan, PolicyInput};
use crate::policy::LoadedPolicy;
use std::collections::BTreeMap;
use veer_provider::{Answer, Observed, ProviderError, RecordSet, Weighting};

/// What every provider holds for every policy's record: (policy, provider) → state.
pub type Observations = BTreeMap<(String, String), Observed>;

/// A provider read failed, so the round cannot plan safely.
#[derive(Debug, thiserror::Error)]
#[error("reading {record} from provider `{provider}`: {error}")]
pub struct ObserveError {
    /// The provider.
    pub provider: String,
    /// The record.
    pub record: String,
    /// Why.
    pub error: ProviderError,
}

/// Reads every (policy, provider) pair.
pub async fn observe(policies: &[LoadedPolicy], providers: &ProviderSet) -> Result<Observations, ObserveError> {
    let mut observed = Observations::new();
    for loaded in policies {
        for target in &loaded.policy.spec.publish_to.value {
            let state = read(loaded, providers, &target.value).await?;
            observed.insert((loaded.policy.name().to_string(), target.value.clone()), state);
        }
    }
    Ok(observed)
}

/// The last read of every (policy, provider) pair, reused by rounds that have
/// nothing to write (`providers.<name>.resyncEvery`): in steady state a cloud
/// API's budget is spent on writes, not on re-reading what has not changed.
/// Belongs to one leader epoch and one policy set; [`ObservationCache::forget`]
/// it after every write.
#[derive(Debug, Default)]
pub struct ObservationCache {
    reads: BTreeMap<(String, String), (Observed, std::time::Instant)>,
}

impl ObservationCache {
    /// Forgets every read: the next round reads everything again.
    pub fn forget(&mut self) {
        self.reads.clear();
    }

    /// Reads every (policy, provider) pair whose last read is older than
    /// `reuse_for(provider)` at `now`, reuses the others. Returns what the
    /// providers hold and whether any of it was reused; a failed read forgets
    /// everything.
    pub async fn observe(
        &mut self,
        policies: &[LoadedPolicy],
        providers: &ProviderSet,
        reuse_for: impl Fn(&str) -> std::time::Duration,
        now: std::time::Instant,
    ) -> Result<(Observations, bool), ObserveError> {
        let wanted: Vec<(String, String)> = policies
            .iter()
            .flat_map(|l| l.policy.spec.publish_to.value.iter().map(|t| (l.policy.name().to_string(), t.value.clone())))
            .collect();
        self.reads
            .retain(|key, (_, at)| wanted.contains(key) && now.saturating_duration_since(*at) < reuse_for(&key.1));
        let mut reused = false;
        let mut observed = Observations::new();
        for loaded in policies {
            let policy = &loaded.policy;
            for target in &policy.spec.publish_to.value {
                let key = (policy.name().to_string(), target.value.clone());
                if let Some((state, _)) = self.reads.get(&key) {
                    reused = true;
                    observed.insert(key, state.clone());
                    continue;
                }
                let state = match read(loaded, providers, &target.value).await {
                    Ok(state) => state,
                    Err(e) => {
                        self.forget();
                        return Err(e);
                    }
                };
                self.reads.insert(key.clone(), (state.clone(), now));
                observed.insert(key, state);
            }
        }
        Ok((observed, reused))
    }
}

/// Reads one policy's record from one provider.
async fn read(loaded: &LoadedPolicy, providers: &ProviderSet, provider: &str) -> Result<Observed, ObserveError> {
    let policy = &loaded.policy;
    let rtype = policy.spec.record.record_type.value.record_type();
    providers.providers[provider].read(policy.record_name(), rtype).await.map_err(|error| ObserveError {
        provider: provider.to_string(),
        record: policy.record_name().to_string(),
        error,
    })
}

/// How a policy's answers are weighted: set-only if any of its providers is, else
/// weighted in the smallest range among them.
pub fn weighting_of(loaded: &LoadedPolicy, providers: &ProviderSet) -> Weighting {
    let mut max = u32::MAX;
    for target in &loaded.policy.spec.publish_to.value {
        match providers.providers[&target.value].capabilities().weighting {
            Weighting::SetOnly => return Weighting::SetOnly,
            Weighting::Weighted { max_weight } => max = max.min(max_weight),
        }
    }
    Weighting::Weighted { max_weight: max }
}

/// The planner's inputs for each policy.
pub fn policy_inputs<'a>(policies: &'a [LoadedPolicy], providers: &ProviderSet) -> Vec<PolicyInput<'a>> {
    policies
        .iter()
        .map(|p| PolicyInput { policy: &p.policy, hash: &p.hash, weighting: weighting_of(p, providers) })
        .collect()
}

/// What the planner sees as published, per policy: the first provider of
/// `publishTo` (all providers get the same answers). Answers are matched to
/// endpoints by set id, or by address for set-only providers.
pub fn planner_observed(policies: &[LoadedPolicy], observed: &Observations) -> BTreeMap<String, ObservedRecord> {
    let mut out = BTreeMap::new();
    for loaded in policies {
        let policy = &loaded.policy;
        let Some(primary) = policy.spec.publish_to.value.first() else { continue };
        let Some(state) = observed.get(&(policy.name().to_string(), primary.value.clone())) else { continue };
        out.insert(policy.name().to_string(), observed_record(policy, state));
    }
    out
}

/// What one provider publishes for a policy's record, by endpoint id: answers are
/// matched by set id, or by address for set-only providers; weight 1 without weights.
pub fn observed_record(policy: &crate::policy::FailoverPolicy, state: &Observed) -> ObservedRecord {
    let mut record = ObservedRecord::default();
    for answer in state.records.iter().flat_map(|r| r.live_answers()) {
        let endpoint = policy.endpoints().find(|(_, e)| {
            answer.set_id.as_deref() == Some(e.id.value.as_str()) || same_address(&e.address.value, &answer.value)
        });
        if let Some((_, e)) = endpoint {
            record.answers.insert(e.id.value.clone(), answer.weight.unwrap_or(1));
        }
    }
    record
}

fn same_address(a: &str, b: &str) -> bool {
    match (a.parse::<std::net::IpAddr>(), b.parse::<std::net::IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.')),
    }
}

/// A health view from one probe round taken as definitive (`veer plan`,
/// `veer run --once`): rise/fall do not apply to a single round.
pub fn health_from_round(results: &[(ProbeTarget, ProbeResult)]) -> HealthView {
    let endpoints = results
        .iter()
        .map(|(target, result)| {
            let up = result.is_success();
            let state = if up { HealthState::Up } else { HealthState::Down };
            (target.key.clone(), EndpointHealth { state, vantages_down: u32::from(!up), vantages_fresh: 1 })
        })
        .collect();
    HealthView { impaired: None, endpoints }
}

/// The intents that make each provider hold the plan, leaving out providers that
/// already publish it (no read, no write: I9) and records planned empty (nothing
/// known yet; the enactor would refuse them anyway, I1).
pub fn intents(
    plan: &Plan,
    policies: &[LoadedPolicy],
    observed: &Observations,
    providers: &ProviderSet,
) -> Vec<Intent> {
    let mut out = Vec::new();
    for (record, loaded) in plan.records.iter().zip(policies) {
        let policy = &loaded.policy;
        let answers: Vec<Answer> = record
            .answers
            .iter()
            .filter(|a| a.weight > 0)
            .map(|a| Answer { set_id: Some(a.endpoint.clone()), value: a.address.clone(), weight: Some(a.weight) })
            .collect();
        if answers.is_empty() {
            continue;
        }
        let rtype = policy.spec.record.record_type.value.record_type();
        for target in &policy.spec.publish_to.value {
            let provider = &providers.providers[&target.value];
            let capabilities = provider.capabilities();
            let desired =
                RecordSet::new(policy.record_name().clone(), rtype, policy.spec.record.ttl(), answers.clone());
            let desired = match capabilities.weighting {
                Weighting::Weighted { .. } => desired,
                Weighting::SetOnly => capabilities.published(&desired),
            };
            let Some(base) = observed.get(&(policy.name().to_string(), target.value.clone())) else { continue };
            if base.records.as_ref() == Some(&capabilities.published(&desired)) {
                continue;
            }
            out.push(Intent {
                provider: target.value.clone(),
                policy: policy.name().to_string(),
                policy_hash: loaded.hash.clone(),
                adopt: policy.spec.adopt,
                desired,
                base: base.clone(),
            });
        }
    }
    out
}
