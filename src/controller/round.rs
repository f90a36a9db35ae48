//! One observe → plan → enact round (ARCHITECTURE.md §1), shared by `veer plan`,
//! `veer run --once` and the controller loop. Reconcile is observed, not
//! remembered: every round reads the providers, plans against what it read, and
//! writes only what differs.

use super::providers::ProviderSet;
use crate::enactor::Intent;
use crate::health::probe::{ProbeResult, ProbeTarget};
use crate::health::{EndpointHealth, HealthState, HealthView};
use crate::planner::{ObservedRecord, Plan, PolicyInput};
use crate::policy::LoadedPolicy;
use std::collections::{BTreeMap, BTreeSet};
use veer_provider::{Answer, Observed, ProviderError, RecordSet, Weighting};

/// What every provider holds for every policy's record: (policy, provider) → state.
pub type Observations = BTreeMap<(String, String), Observed>;

/// What one round read: every unit it could read, and why the others could not.
#[derive(Debug, Default)]
pub struct Observation {
    /// What the providers hold, per readable (policy, provider).
    pub observed: Observations,
    /// Units not read, with the provider's error (`None`: the provider was
    /// skipped as unavailable, or is not running) and a sentence for people.
    pub failed: BTreeMap<(String, String), (Option<ProviderError>, String)>,
    /// Units read from the provider in this round (not reused).
    pub fresh: BTreeSet<(String, String)>,
    /// Some unit's state is a reused earlier read.
    pub reused: bool,
    /// Providers that gave no answer before the deadline.
    pub timed_out: BTreeSet<String>,
}

/// Every (policy, provider) pair, in policy order.
fn units(policies: &[LoadedPolicy]) -> Vec<(String, String)> {
    policies
        .iter()
        .flat_map(|l| l.policy.spec.publish_to.value.iter().map(|t| (l.policy.name().to_string(), t.value.clone())))
        .collect()
}

/// What one provider's reads of a round returned, per unit.
pub type ReadResults = Vec<((String, String), Result<Observed, ProviderError>)>;

/// One provider's reads of a round, owned so that they can run as their own task
/// and outlive the round's wait for them (a slow provider is not cancelled, it is
/// no longer waited for).
pub struct ReadJob {
    provider: std::sync::Arc<dyn veer_provider::Provider>,
    units: Vec<((String, String), veer_provider::RecordName, veer_provider::RecordType)>,
}

impl ReadJob {
    /// Reads each unit in turn (the provider's rate limits apply to all of them);
    /// after a failure that a later call may cure, the rest fail the same way
    /// without a call.
    pub async fn run(self) -> ReadResults {
        let mut results = Vec::new();
        let mut gave_up: Option<ProviderError> = None;
        for (unit, name, rtype) in self.units {
            if let Some(e) = &gave_up {
                results.push((unit, Err(e.clone())));
                continue;
            }
            let result = self.provider.read(&name, rtype).await;
            if let Err(e) = &result
                && e.is_retryable()
            {
                gave_up = Some(e.clone());
            }
            results.push((unit, result));
        }
        results
    }
}

/// The read jobs for `wanted`, one per provider; units of providers in `skip` (with
/// the reason) or not running fail at once, into `out`.
fn read_jobs(
    policies: &[LoadedPolicy],
    providers: &ProviderSet,
    skip: &BTreeMap<String, String>,
    wanted: Vec<(String, String)>,
    out: &mut Observation,
) -> BTreeMap<String, ReadJob> {
    let mut jobs: BTreeMap<String, ReadJob> = BTreeMap::new();
    for unit in wanted {
        let Some(loaded) = policies.iter().find(|l| l.policy.name() == unit.0) else { continue };
        if let Some(why) = skip.get(&unit.1) {
            let text = format!("provider `{}` is skipped: {why}", unit.1);
            out.failed.insert(unit, (None, text));
        } else if let Some(provider) = providers.providers.get(&unit.1) {
            let (name, rtype) =
                (loaded.policy.record_name().clone(), loaded.policy.spec.record.record_type.value.record_type());
            let job =
                jobs.entry(unit.1.clone()).or_insert_with(|| ReadJob { provider: provider.clone(), units: Vec::new() });
            job.units.push((unit, name, rtype));
        } else {
            let text = format!("provider `{}` is not running (providers are built at start: restart veer)", unit.1);
            out.failed.insert(unit, (None, text));
        }
    }
    jobs
}

/// One unit's read into the observation.
fn record(out: &mut Observation, unit: (String, String), result: Result<Observed, ProviderError>) {
    match result {
        Ok(state) => {
            out.fresh.insert(unit.clone());
            out.observed.insert(unit, state);
        }
        Err(error) => {
            let text = format!("reading {} from provider `{}`: {error}", unit.0, unit.1);
            out.failed.insert(unit, (Some(error), text));
        }
    }
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

    /// Reads every (policy, provider) pair not skipped, reusing each pair's last
    /// read while it is younger than `reuse_for(provider)`. Each provider's reads
    /// run as their own task, waited for until `deadline`: the tasks still running
    /// then are returned (their units fail as not answered in time), not cancelled.
    /// A failed read forgets that pair.
    pub async fn observe(
        &mut self,
        policies: &[LoadedPolicy],
        providers: &ProviderSet,
        skip: &BTreeMap<String, String>,
        reuse_for: impl Fn(&str) -> std::time::Duration,
        deadline: tokio::time::Instant,
    ) -> (Observation, Vec<(String, tokio::task::JoinHandle<ReadResults>)>) {
        let now = std::time::Instant::now();
        let wanted = units(policies);
        self.reads
            .retain(|key, (_, at)| wanted.contains(key) && now.saturating_duration_since(*at) < reuse_for(&key.1));
        let (reusable, to_read): (Vec<_>, Vec<_>) =
            wanted.into_iter().partition(|key| self.reads.contains_key(key) && !skip.contains_key(&key.1));
        let mut out = Observation::default();
        let jobs = read_jobs(policies, providers, skip, to_read, &mut out);
        let waited = futures_util::future::join_all(jobs.into_iter().map(|(name, job)| {
            let units: Vec<(String, String)> = job.units.iter().map(|(u, _, _)| u.clone()).collect();
            let mut task = tokio::spawn(job.run());
            async move {
                match tokio::time::timeout_at(deadline, &mut task).await {
                    Ok(Ok(results)) => (name, units, Ok(results)),
                    Ok(Err(panicked)) => (name, units, Err((None, panicked.to_string()))),
                    Err(_) => (name, units, Err((Some(task), "no answer before the round deadline".to_string()))),
                }
            }
        }))
        .await;
        let mut running = Vec::new();
        for (name, units, result) in waited {
            match result {
                Ok(results) => results.into_iter().for_each(|(unit, result)| record(&mut out, unit, result)),
                Err((task, why)) => {
                    let error = ProviderError::Unavailable(why);
                    for unit in units {
                        record(&mut out, unit, Err(error.clone()));
                    }
                    out.timed_out.insert(name.clone());
                    running.extend(task.map(|t| (name, t)));
                }
            }
        }
        for key in reusable {
            out.reused = true;
            let (state, _) = &self.reads[&key];
            out.observed.insert(key, state.clone());
        }
        for key in out.failed.keys() {
            self.reads.remove(key);
        }
        for key in &out.fresh {
            self.reads.insert(key.clone(), (out.observed[key].clone(), now));
        }
        (out, running)
    }
}

/// How a policy's answers are weighted: in the smallest weight range among its
/// weighted providers; set-only when none is weighted. Each provider then gets its
/// own published form of the plan ([`intents`]): weights where it has weights,
/// membership (the answers with a weight) where it has none.
pub fn weighting_of(loaded: &LoadedPolicy, providers: &ProviderSet) -> Weighting {
    let ranges = loaded.policy.spec.publish_to.value.iter().filter_map(|target| {
        match providers.providers.get(&target.value)?.capabilities().weighting {
            Weighting::SetOnly => None,
            Weighting::Weighted { max_weight } => Some(max_weight),
        }
    });
    ranges.min().map_or(Weighting::SetOnly, |max_weight| Weighting::Weighted { max_weight })
}

/// The planner's inputs for each policy.
pub fn policy_inputs<'a>(policies: &'a [LoadedPolicy], providers: &ProviderSet) -> Vec<PolicyInput<'a>> {
    policies
        .iter()
        .map(|p| PolicyInput { policy: &p.policy, hash: &p.hash, weighting: weighting_of(p, providers) })
        .collect()
}

/// What the planner sees as published, per policy: the read of the provider that
/// holds the record's newest generation (its ownership record), the first of
/// `publishTo` among equals. A provider that lagged behind (down, or rejecting the
/// name) is never planned from: its stale answers would count removals again and
/// again, and it converges to the plan made from the others. Answers are matched
/// to endpoints by set id, or by address for set-only providers. A policy none of
/// whose providers was read is left out.
pub fn planner_observed(policies: &[LoadedPolicy], observed: &Observations) -> BTreeMap<String, ObservedRecord> {
    let mut out = BTreeMap::new();
    for loaded in policies {
        let policy = &loaded.policy;
        let read = policy.spec.publish_to.value.iter().enumerate().filter_map(|(order, t)| {
            let state = observed.get(&(policy.name().to_string(), t.value.clone()))?;
            Some((state.ownership.as_ref().map_or(0, |o| o.generation), std::cmp::Reverse(order), state))
        });
        let Some((_, _, state)) = read.max_by_key(|(generation, order, _)| (*generation, *order)) else { continue };
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
            let Some(provider) = providers.providers.get(&target.value) else { continue };
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
