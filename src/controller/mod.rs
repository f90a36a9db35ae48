//! The controller's rounds: load config and policies, build providers, observe,
//! plan, enact, persist (SPEC §2). The binary's commands (`veer plan`,
//! `veer run --once`) are thin wrappers around [`round`].

pub mod admin;
pub mod audit;
pub mod exposition;
pub mod providers;
pub mod round;
pub mod run;
pub mod state;
pub mod status;
pub mod status_page;
pub mod vantages;

use crate::config::{self, LoadedConfig};
use crate::coord::{self as coordination, Coordinator};
use crate::enactor::Intent;
use crate::health::HealthView;
use crate::planner::{self, Plan, PlanInput};
use crate::policy::{self, Diagnostic, LoadedPolicy};
use crate::time::Timestamp;
use state::StateSource;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A validated controller config with its policies.
#[derive(Debug)]
pub struct Setup {
    /// The controller config.
    pub config: LoadedConfig,
    /// Its policies, validated against it.
    pub policies: Vec<LoadedPolicy>,
    /// The drills found with the policies, checked against them.
    pub drills: Vec<crate::drill::LoadedDrill>,
}

/// Loads the config and the policies it names; any error (I10) is returned with
/// its position, and nothing is used.
pub fn load(config_path: &Path) -> Result<Setup, Vec<Diagnostic>> {
    let config = config::load(config_path)?;
    let loaded = policy::load(&config.policy_paths(), Some(&config));
    if !loaded.is_valid() {
        return Err(loaded.diagnostics);
    }
    if loaded.policies.is_empty() {
        return Err(vec![Diagnostic::error_in_file(config_path, "the config's `policies` match no policy")]);
    }
    Ok(Setup { config, policies: loaded.policies, drills: loaded.drills })
}

/// A plan and the provider writes that would realise it.
pub struct Planned {
    /// The plan.
    pub plan: Plan,
    /// Writes still needed (providers that already publish the plan are left out).
    pub intents: Vec<Intent>,
    /// What the providers held when the round read them.
    pub observed: round::Observations,
    /// The overrides in force.
    pub overrides: Vec<planner::Override>,
    /// The planner state the plan started from.
    pub state: planner::PlannerState,
    /// What the planner saw as published, per policy.
    pub published: std::collections::BTreeMap<String, planner::ObservedRecord>,
}

/// Observes every provider and plans against what it read, with `health`,
/// the stored planner state and the overrides in force at `now`.
pub async fn plan_round(
    setup: &Setup,
    providers: &providers::ProviderSet,
    health: &HealthView,
    state: &StateSource,
    now: Timestamp,
) -> anyhow::Result<Planned> {
    let observed = round::observe(&setup.policies, providers).await?;
    plan_observed(setup, providers, health, state, now, observed).await
}

/// [`plan_round`] for the controller loop: reuses `reads` younger than each
/// provider's `resyncEvery`, but never writes from a reused read — a plan that
/// would write is made again from fresh reads. After a plan that writes, the
/// next round reads everything again whatever the writes' outcome.
pub async fn plan_round_reusing(
    setup: &Setup,
    providers: &providers::ProviderSet,
    health: &HealthView,
    state: &StateSource,
    now: Timestamp,
    reads: &mut round::ObservationCache,
) -> anyhow::Result<Planned> {
    let reuse_for =
        |provider: &str| setup.config.config.providers.get(provider).map_or(Duration::ZERO, |p| p.resync_every());
    let (observed, reused) = reads.observe(&setup.policies, providers, reuse_for, Instant::now()).await?;
    let mut planned = plan_observed(setup, providers, health, state, now, observed).await?;
    if reused && !planned.intents.is_empty() {
        reads.forget();
        let (observed, _) = reads.observe(&setup.policies, providers, reuse_for, Instant::now()).await?;
        planned = plan_observed(setup, providers, health, state, now, observed).await?;
    }
    if !planned.intents.is_empty() {
        reads.forget();
    }
    Ok(planned)
}

/// Plans against `observed` (what the providers hold), with `health`, the
/// stored planner state and the overrides in force at `now`.
pub async fn plan_observed(
    setup: &Setup,
    providers: &providers::ProviderSet,
    health: &HealthView,
    state: &StateSource,
    now: Timestamp,
    observed: round::Observations,
) -> anyhow::Result<Planned> {
    let planner_state = state.planner_state().await?;
    let overrides = state.overrides(now).await?;
    let inputs = round::policy_inputs(&setup.policies, providers);
    let published = round::planner_observed(&setup.policies, &observed);
    let plan = planner::plan(&PlanInput {
        policies: &inputs,
        health,
        observed: &published,
        overrides: &overrides,
        state: &planner_state,
        now,
        seed: now.as_millis(),
    });
    let intents = round::intents(&plan, &setup.policies, &observed, providers);
    Ok(Planned { plan, intents, observed, overrides, state: planner_state, published })
}

/// How long one provider write may take: the fence refuses a write when less
/// lease than this is left. At most 5 s, and at most half of what a leader holds
/// between renewals (`leaseDuration − retryPeriod`), so that short leases still
/// leave room to write.
pub fn expected_write(config: &config::CoordinationConfig) -> std::time::Duration {
    let held = config.lease_duration().saturating_sub(config.retry_period());
    (held / 2).min(std::time::Duration::from_secs(5))
}

/// Opens the configured coordination backend for this replica.
pub async fn open_coordinator(setup: &Setup) -> anyhow::Result<Arc<dyn Coordinator>> {
    let c = &setup.config;
    Ok(coordination::open(&c.config.coordination, &c.vantage(), &c.config.cluster_id.value, c.state_file()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coordination(lease: u64, retry_ms: u64) -> config::CoordinationConfig {
        let text =
            format!("leaseDuration: {lease}s\nrenewDeadline: {}ms\nretryPeriod: {retry_ms}ms\n", lease * 1000 - 500);
        serde_saphyr::from_str(&text).unwrap()
    }

    /// A controller with two endpoints published through the memory provider
    /// `p`, whose reads are counted.
    struct Reusing {
        setup: Setup,
        providers: providers::ProviderSet,
        counting: Arc<veer_provider::conformance::Counting>,
        backdoor: Arc<dyn veer_provider::conformance::Backdoor>,
        reads: round::ObservationCache,
        _dir: tempfile::TempDir,
    }

    impl Reusing {
        fn new(resync: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(
                dir.path().join("veer.yaml"),
                format!(
                    "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: c1\npolicies: [app.yaml]\n\
                     providers:\n  p: {{ type: embedded, zones: [reuse.test.], resyncEvery: {resync} }}\n"
                ),
            )
            .unwrap();
            std::fs::write(
                dir.path().join("app.yaml"),
                "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: { name: app }\nspec:\n  \
                 record: { name: app.reuse.test., type: A }\n  publishTo: [p]\n  routing: weighted\n  \
                 pools: [{ name: a, endpoints: [{ id: a1, address: 192.0.2.1 }, { id: a2, address: 192.0.2.2 }] }]\n  \
                 healthCheck: { type: tcp, port: 80 }\n  warmup: { stages: [100] }\n  shift: { maxRemovePercent: 100 }\n",
            )
            .unwrap();
            let setup = load(&dir.path().join("veer.yaml")).unwrap_or_else(|e| panic!("{e:?}"));
            let memory = veer_provider::conformance::MemoryProvider::new(vec!["reuse.test.".parse().unwrap()]);
            let backdoor = memory.backdoor();
            let counting = Arc::new(veer_provider::conformance::Counting::new(Arc::new(memory)));
            let providers = providers::ProviderSet {
                providers: [("p".to_string(), counting.clone() as Arc<dyn veer_provider::Provider>)].into(),
                embedded: Default::default(),
                servers: Vec::new(),
                budgets: Default::default(),
            };
            Self { setup, providers, counting, backdoor, reads: Default::default(), _dir: dir }
        }

        fn health(&self, down: &[&str]) -> HealthView {
            let mut view = HealthView::default();
            for id in ["a1", "a2"] {
                let state =
                    if down.contains(&id) { crate::health::HealthState::Down } else { crate::health::HealthState::Up };
                view.endpoints.insert(
                    crate::health::EndpointKey::new("app", id),
                    crate::health::EndpointHealth {
                        state,
                        vantages_down: u32::from(down.contains(&id)),
                        vantages_fresh: 1,
                    },
                );
            }
            view
        }

        /// One round: plan (reusing reads), then apply what it asks for.
        async fn round(&mut self, down: &[&str], now: u64) -> Vec<Intent> {
            let health = self.health(down);
            let store = StateSource::Snapshot(Default::default());
            let planned =
                plan_round_reusing(&self.setup, &self.providers, &health, &store, Timestamp(now), &mut self.reads)
                    .await
                    .unwrap();
            let enactor = crate::enactor::Enactor::new(
                "c1",
                self.providers.providers.clone(),
                Arc::new(crate::enactor::AlwaysLeader { epoch: 1 }),
                Duration::from_secs(1),
            );
            let report = enactor.enact(&planned.intents).await;
            assert!(report.all_converged(), "{:?}", report.outcomes);
            planned.intents
        }
    }

    #[tokio::test]
    async fn a_round_with_nothing_to_write_reuses_reads_and_one_that_would_write_reads_again() {
        let mut c = Reusing::new("1h");
        let intents = c.round(&[], 1_000_000).await;
        assert_eq!(intents.len(), 1, "the first round publishes both endpoints");
        let reads = c.counting.reads();
        assert_eq!(c.round(&[], 1_001_000).await.len(), 0);
        let after_write = c.counting.reads();
        assert!(after_write > reads, "after a write the providers are read again");
        for t in 2..10 {
            assert_eq!(c.round(&[], 1_000_000 + t * 1_000).await.len(), 0);
        }
        assert_eq!(c.counting.reads(), after_write, "nothing to write: the last read stands in");

        // Behind veer's back the record changes; the stale read is not written from.
        let name: veer_provider::RecordName = "app.reuse.test.".parse().unwrap();
        c.backdoor.set_answers(&name, veer_provider::RecordType::A, &["192.0.2.9".into()]).await;
        let intents = c.round(&["a2"], 1_020_000).await;
        assert!(c.counting.reads() > after_write, "a round that would write reads again first");
        assert_eq!(intents.len(), 1);
        let base: Vec<&str> =
            intents[0].base.records.iter().flat_map(|r| r.answers.iter().map(|a| a.value.as_str())).collect();
        assert_eq!(base, ["192.0.2.9"], "the write is built on what the provider holds now");
    }

    #[tokio::test]
    async fn without_resync_every_round_reads() {
        let mut c = Reusing::new("0s");
        c.round(&[], 1_000_000).await;
        let reads = c.counting.reads();
        for t in 1..5 {
            c.round(&[], 1_000_000 + t * 1_000).await;
        }
        assert_eq!(c.counting.reads(), reads + 4);
    }

    #[test]
    fn the_expected_write_time_fits_inside_short_leases_and_is_capped_for_long_ones() {
        assert_eq!(expected_write(&coordination(15, 2000)), Duration::from_secs(5));
        assert_eq!(expected_write(&coordination(3, 500)), Duration::from_millis(1250));
        assert!(expected_write(&coordination(3, 500)) < Duration::from_millis(2500), "a renewed 3 s lease can write");
    }
}
