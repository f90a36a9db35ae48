//! The controller loop (`veer run`): this replica probes continuously (its
//! vantage), campaigns for leadership, and while it leads runs a jittered
//! reconcile loop — observe, combine health, plan, enact through the fence,
//! persist. Every round re-reads the providers: state is observed, not
//! remembered (SPEC §2, §8).
//!
//! This build combines this replica's own vantage only; the exchange of vantage
//! reports between replicas over the admin API is a later step.

use super::providers::{self, ProviderSet};
use super::state::{self, StateSource};
use super::{Planned, Setup};
use crate::coord::{Coordinator, Epoch, Leadership};
use crate::enactor::{Enactor, LeaderFence, Outcome};
use crate::health::combine::{CombinerState, combine};
use crate::health::{Vantage, VantageOptions};
use crate::time::{Clock, SystemClock};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long one provider write may take; the fence refuses when less lease is left.
pub const EXPECTED_WRITE: Duration = Duration::from_secs(5);

/// What the last round did, for observers (`veer demo`, tests, status).
#[derive(Debug, Clone, Default)]
pub struct RoundSummary {
    /// Rounds run so far while leading.
    pub rounds: u64,
    /// The epoch of the last round, if it led.
    pub epoch: Option<u64>,
    /// The last plan, if any.
    pub plan: Option<crate::planner::Plan>,
    /// Provider writes applied over the controller's life.
    pub writes: u64,
    /// The last round's error, if it failed.
    pub error: Option<String>,
}

/// A running controller's handles.
pub struct Controller {
    setup: Setup,
    providers: ProviderSet,
    coordinator: Arc<dyn Coordinator>,
    vantage: Vantage,
    clock: Arc<dyn Clock>,
    summary: watch::Sender<RoundSummary>,
}

/// The reconcile period: the shortest probe interval of the policies, within [250 ms, 5 s].
fn reconcile_period(setup: &Setup) -> Duration {
    let shortest = setup.policies.iter().map(|p| p.policy.spec.health_check.interval()).min();
    shortest.unwrap_or(Duration::from_secs(1)).clamp(Duration::from_millis(250), Duration::from_secs(5))
}

impl Controller {
    /// Builds the providers (starting embedded DNS servers), opens the coordinator
    /// and starts probing. Nothing is written until [`Controller::run`] leads.
    pub async fn start(setup: Setup) -> anyhow::Result<Self> {
        let providers = providers::build(&setup.config, true).await?;
        let coordinator = super::open_coordinator(&setup).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
        let vantage = Vantage::start(setup.config.vantage(), clock.clone(), VantageOptions::default());
        vantage.replace_policies(&setup.policies);
        let (summary, _) = watch::channel(RoundSummary::default());
        Ok(Self { setup, providers, coordinator, vantage, clock, summary })
    }

    /// Round summaries as they happen.
    pub fn summaries(&self) -> watch::Receiver<RoundSummary> {
        self.summary.subscribe()
    }

    /// The running providers (embedded stores, for the demo and tests).
    pub fn providers(&self) -> &ProviderSet {
        &self.providers
    }

    /// Runs until `shutdown` completes, then releases leadership after in-flight
    /// writes (a graceful hand-over).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let period = reconcile_period(&self.setup);
        let mut combiner = CombinerState::default();
        let mut campaign: Option<tokio::task::JoinHandle<()>> = None;
        let jitter = crate::coord::Jitter::new(crate::health::schedule::stable_hash(&[self.vantage.id().as_bytes()]));
        loop {
            let epoch = self.coordinator.leadership().borrow().epoch();
            match epoch {
                Some(epoch) => {
                    if let Err(e) = self.round(epoch, &mut combiner).await {
                        tracing::warn!(error = %format!("{e:#}"), "reconcile round failed; the next round re-reads");
                        self.summary.send_modify(|s| s.error = Some(format!("{e:#}")));
                    }
                }
                None if campaign.as_ref().is_none_or(|c| c.is_finished()) => {
                    let coordinator = self.coordinator.clone();
                    campaign = Some(tokio::spawn(async move {
                        match coordinator.campaign().await {
                            Ok(epoch) => tracing::info!(epoch = epoch.0, "leading"),
                            Err(e) => tracing::warn!(error = %e, "campaign failed; retrying"),
                        }
                    }));
                }
                None => {}
            }
            let pause = period.mul_f64(0.8 + 0.4 * jitter.unit());
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        if let Some(c) = campaign {
            c.abort();
        }
        tracing::info!("shutting down: releasing leadership after in-flight writes");
        self.coordinator.release().await?;
        Ok(())
    }

    async fn round(&self, epoch: Epoch, combiner: &mut CombinerState) -> anyhow::Result<()> {
        let now = self.clock.now();
        let policies: Vec<_> = self.setup.policies.iter().map(|p| &p.policy).collect();
        let report = self.vantage.report();
        let (health, next) = combine(&policies, std::slice::from_ref(&*report), combiner, now);
        *combiner = next;
        if let Some(why) = &health.impaired {
            tracing::warn!(reason = %why, "health checker impaired: holding the published answers");
        }
        let store = StateSource::Coordinator(self.coordinator.clone());
        let Planned { plan, intents } = super::plan_round(&self.setup, &self.providers, &health, &store, now).await?;
        let enactor = Enactor::new(
            self.setup.config.config.cluster_id.value.clone(),
            self.providers.providers.clone(),
            Arc::new(LeaderFence::new(self.coordinator.clone(), epoch)),
            EXPECTED_WRITE,
        );
        let result = enactor.enact(&intents).await;
        let mut applied = 0;
        for ((provider, name, outcome), intent) in result.outcomes.iter().zip(&intents) {
            let record = plan.records.iter().find(|r| r.policy == intent.policy);
            let reasons: Vec<&str> =
                record.map(|r| r.changes.iter().map(|c| c.reason.as_str()).collect()).unwrap_or_default();
            match outcome {
                Outcome::Applied { generation } => {
                    applied += 1;
                    let before: Vec<&str> =
                        intent.base.records.iter().flat_map(|r| r.answers.iter().map(|a| a.value.as_str())).collect();
                    let after: Vec<&str> = intent.desired.live_answers().map(|a| a.value.as_str()).collect();
                    tracing::info!(
                        record = %name, provider = %provider, generation, epoch = epoch.0,
                        before = ?before, after = ?after, reason = %reasons.join("; "),
                        "applied"
                    );
                }
                Outcome::Unchanged => {}
                other => tracing::warn!(record = %name, provider = %provider, outcome = ?other, "not applied"),
            }
        }
        if result.all_converged() {
            state::save(self.coordinator.as_ref(), epoch, &plan).await?;
        }
        self.summary.send_modify(|s| {
            s.rounds += 1;
            s.epoch = Some(epoch.0);
            s.writes += applied;
            s.plan = Some(plan);
            s.error = None;
        });
        if matches!(*self.coordinator.leadership().borrow(), Leadership::Lost { .. }) {
            tracing::warn!(epoch = epoch.0, "leadership lost: writes stopped");
        }
        Ok(())
    }
}
