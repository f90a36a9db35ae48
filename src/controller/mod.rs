//! The controller's rounds: load config and policies, build providers, observe,
//! plan, enact, persist. `veer run`'s loop, `veer run --once` and `veer plan` all
//! call the one round of [`reconcile`].

pub mod admin;
pub mod audit;
pub mod exposition;
pub mod providers;
pub mod reconcile;
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
    use std::time::Duration;

    fn coordination(lease: u64, retry_ms: u64) -> config::CoordinationConfig {
        let text =
            format!("leaseDuration: {lease}s\nrenewDeadline: {}ms\nretryPeriod: {retry_ms}ms\n", lease * 1000 - 500);
        serde_saphyr::from_str(&text).unwrap()
    }

    #[test]
    fn the_expected_write_time_fits_inside_short_leases_and_is_capped_for_long_ones() {
        assert_eq!(expected_write(&coordination(15, 2000)), Duration::from_secs(5));
        assert_eq!(expected_write(&coordination(3, 500)), Duration::from_millis(1250));
        assert!(expected_write(&coordination(3, 500)) < Duration::from_millis(2500), "a renewed 3 s lease can write");
    }
}
