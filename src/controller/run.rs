//! The controller loop (`veer run`): this replica probes continuously (its
//! vantage), campaigns for leadership, and while it leads runs a jittered
//! reconcile loop — observe, combine health, plan, enact through the fence,
//! persist. Every round re-reads the providers: state is observed, not
//! remembered (ARCHITECTURE.md §1, §8).
//!
//! Every replica registers in the store's vantage registry; the leader pulls
//! the others' reports over the admin API and combines them with its own
//! (see [`super::vantages`]).

use super::providers::{self, ProviderSet};
use super::state::StateSource;
use super::vantages::{self, Exchange};
use super::{Planned, Setup};
use crate::coord::{Coordinator, Epoch, Leadership};
use crate::enactor::Outcome;
use crate::health::combine::{CombinerState, combine};
use crate::health::{Vantage, VantageOptions};
use crate::metrics::Metrics;
use crate::time::{Clock, SystemClock};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

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
    /// Why the last policy reload was rejected, while the previous set is in force.
    pub reload_error: Option<String>,
    /// What the last round planned from, for override impact previews.
    pub preview: Option<Arc<PreviewInputs>>,
    /// Every vantage this replica knows (itself first), with freshness; the
    /// leader lists every registered replica, a follower only itself.
    pub vantages: Vec<super::vantages::VantageStatus>,
    /// The policies in force (status reads them on followers too).
    pub setup: Option<Arc<Setup>>,
    /// The last write of each record by this replica, by policy name (status).
    pub applied: std::collections::BTreeMap<String, LastApply>,
    /// How long the last round took.
    pub round_duration: Option<Duration>,
    /// Providers the leader's rounds find failing or skip, with the reason.
    pub unavailable: Vec<super::status::ProviderUnavailable>,
    /// Names whose writes wait out a quarantine.
    pub quarantined: Vec<super::status::QuarantinedName>,
}

/// The outcome of this replica's last write of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastApply {
    /// The round (`RoundSummary::rounds`) that wrote.
    pub round: u64,
    /// When.
    pub at: crate::time::Timestamp,
    /// The first failure across the record's providers, else `ok` (labels of `veer_applies_total`).
    pub outcome: &'static str,
    /// Per provider, for people.
    pub detail: String,
}

/// The inputs of the last round, so that an override's impact can be previewed
/// with the same planner that will apply it.
pub struct PreviewInputs {
    /// The policies in force.
    pub setup: Arc<Setup>,
    /// How each policy is weighted (in policy order).
    pub weightings: Vec<veer_provider::Weighting>,
    /// The combined health view.
    pub health: crate::health::HealthView,
    /// What the providers published, per policy.
    pub published: std::collections::BTreeMap<String, crate::planner::ObservedRecord>,
    /// The planner state the round started from.
    pub state: crate::planner::PlannerState,
    /// The overrides in force.
    pub overrides: Vec<crate::planner::Override>,
}

impl PreviewInputs {
    /// The planner's view of the policies in force.
    pub fn policy_inputs(&self) -> Vec<crate::planner::PolicyInput<'_>> {
        self.setup
            .policies
            .iter()
            .zip(&self.weightings)
            .map(|(l, w)| crate::planner::PolicyInput { policy: &l.policy, hash: &l.hash, weighting: *w })
            .collect()
    }

    /// The impact of `proposed` at `now`, planned from these inputs.
    pub fn impact(&self, proposed: &crate::planner::Override, now: crate::time::Timestamp) -> crate::planner::Impact {
        let inputs = self.policy_inputs();
        crate::planner::impact(
            &crate::planner::PlanInput {
                policies: &inputs,
                health: &self.health,
                observed: &self.published,
                overrides: &self.overrides,
                state: &self.state,
                now,
                seed: now.as_millis(),
            },
            proposed,
        )
    }
}

impl std::fmt::Debug for PreviewInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviewInputs")
            .field("policies", &self.setup.policies.len())
            .field("overrides", &self.overrides.len())
            .finish_non_exhaustive()
    }
}

/// A hash of the policy files the config names (paths and contents), to notice
/// edits, including a mounted ConfigMap's atomic symlink swap.
fn policy_fingerprint(setup: &Setup) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut ignored = Vec::new();
    let files = crate::policy::load::collect_files(&setup.config.policy_paths(), &mut ignored);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        file.hash(&mut hasher);
        std::fs::read(&file).unwrap_or_default().hash(&mut hasher);
    }
    std::fs::read(&setup.config.path).unwrap_or_default().hash(&mut hasher);
    hasher.finish()
}

/// A running controller's handles.
pub struct Controller {
    /// The policies in force; replaced whole by a valid reload (I10).
    setup: std::sync::RwLock<Arc<Setup>>,
    providers: ProviderSet,
    coordinator: Arc<dyn Coordinator>,
    vantage: Vantage,
    /// The registry entry and, while leading, the other replicas' reports.
    exchange: Arc<Exchange>,
    /// The admin bearer token (also sent with the leader's pulls).
    token: Option<super::admin::Token>,
    clock: Arc<dyn Clock>,
    summary: watch::Sender<RoundSummary>,
    metrics: Metrics,
    /// Budget wait already counted, per provider.
    budget_waited: std::sync::Mutex<std::collections::BTreeMap<String, Duration>>,
    /// The drill runner, ticked after each round while leading.
    drills: crate::drill::Driver,
}

/// Policy name → record name, for metric labels.
fn record_names(setup: &Setup) -> std::collections::BTreeMap<String, String> {
    setup.policies.iter().map(|p| (p.policy.name().to_string(), p.policy.record_name().to_string())).collect()
}

/// Probes over the network and counts each result and its latency.
struct MeteredProber {
    metrics: Metrics,
    vantage: String,
    records: std::collections::BTreeMap<String, String>,
    /// Probe failures of a game day (`veer run --chaos`).
    chaos: Option<Arc<crate::chaos::ProbeChaos>>,
}

impl crate::health::prober::Prober for MeteredProber {
    fn probe(&self, target: Arc<crate::health::probe::ProbeTarget>) -> crate::health::prober::ProbeFuture {
        let (metrics, vantage) = (self.metrics.clone(), self.vantage.clone());
        let record = self.records.get(&target.key.policy).cloned().unwrap_or_default();
        let chaos = self.chaos.as_ref().and_then(|c| c.failure_for(&target.key.endpoint));
        Box::pin(async move {
            let result = match chaos {
                Some(mode) => crate::chaos::ProbeChaos::fail(mode, &target).await,
                None => crate::health::probe::probe(&target).await,
            };
            let base = vec![("record", record), ("endpoint", target.key.endpoint.clone()), ("vantage", vantage)];
            let mut with_result = base.clone();
            with_result.push(("result", if result.is_success() { "success" } else { "failure" }.into()));
            metrics.probe_results.get_or_create(&with_result).inc();
            metrics.probe_duration.get_or_create(&base).observe(result.latency.as_secs_f64());
            result
        })
    }
}

/// The shortest probe interval of the policies (1 s without policies).
fn shortest_interval(setup: &Setup) -> Duration {
    let shortest = setup.policies.iter().map(|p| p.policy.spec.health_check.interval()).min();
    shortest.unwrap_or(Duration::from_secs(1))
}

/// Whether an endpoint `before` called Up is not Up in `after`.
fn an_endpoint_left_up_between(before: &crate::health::VantageReport, after: &crate::health::VantageReport) -> bool {
    before.endpoints.iter().any(|(key, e)| {
        e.verdict == crate::health::ProbeVerdict::Up
            && after.endpoints.get(key).is_none_or(|now| now.verdict != crate::health::ProbeVerdict::Up)
    })
}

/// Waits until an endpoint this replica saw Up is seen Down (or Unknown after a
/// target change) by its own probes; `seen` is the last report looked at, kept
/// across calls. Endpoints turning Up do not wake the loop: a start-up round
/// woken by each first Unknown → Up verdict would publish a partial answer set,
/// and recovery is staged anyway. Pending forever once the vantage is gone.
async fn an_endpoint_left_up(
    reports: &mut watch::Receiver<Arc<crate::health::VantageReport>>,
    seen: &mut Arc<crate::health::VantageReport>,
) {
    while reports.changed().await.is_ok() {
        let now = reports.borrow_and_update().clone();
        let left = an_endpoint_left_up_between(seen, &now);
        *seen = now;
        if left {
            return;
        }
    }
    std::future::pending::<()>().await
}

/// How long after start a replica's probes may take to give every endpoint a
/// first verdict, for the slowest policy: up to `fall − 1` failures then `rise`
/// successes, plus the first probe's offset and one timeout.
fn first_verdicts_within(setup: &Setup) -> Duration {
    let per_policy = setup.policies.iter().map(|p| {
        let check = &p.policy.spec.health_check;
        check.interval() * (check.rise() + check.fall()) + check.timeout()
    });
    per_policy.max().unwrap_or(Duration::ZERO)
}

/// Whether every endpoint this replica probes has a verdict. Until then (or
/// until [`first_verdicts_within`] has passed) a freshly started leader does
/// not plan: a first publish from the endpoints that answered first would
/// leave the rest to join later through warm-up.
fn every_verdict_in(report: &crate::health::VantageReport) -> bool {
    report.endpoints.values().all(|e| e.verdict != crate::health::ProbeVerdict::Unknown)
}

/// The reconcile period, also the leader's pull period: the shortest probe
/// interval, within [250 ms, 5 s].
fn reconcile_period(setup: &Setup) -> Duration {
    shortest_interval(setup).clamp(Duration::from_millis(250), Duration::from_secs(5))
}

/// How long a vantage report counts as fresh for status: as the combiner
/// judges it, for the shortest probe interval.
fn fresh_for(setup: &Setup) -> Duration {
    shortest_interval(setup) * crate::health::combine::FRESH_INTERVALS
}

/// How often the prober republishes its report: half the shortest interval,
/// within [100 ms, 1 s], so that a report is never older than a fraction of
/// the combiner's freshness window when the leader reads or pulls it.
fn publish_every(setup: &Setup) -> Duration {
    (shortest_interval(setup) / 2).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

impl Controller {
    /// Builds the providers (starting embedded DNS servers), opens the coordinator
    /// and starts probing. Nothing is written until [`Controller::run`] leads.
    pub async fn start(setup: Setup) -> anyhow::Result<Self> {
        Self::start_with_chaos(setup, None).await
    }

    /// [`Controller::start`] for a game day: `chaos`'s faults go into the
    /// providers it names and into this replica's probes.
    pub async fn start_with_chaos(setup: Setup, chaos: Option<crate::chaos::ChaosPlan>) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        if let Some(plan) = &chaos {
            plan.announce();
        }
        let providers = providers::build_with_chaos(&setup.config, true, &metrics, chaos.as_ref()).await?;
        let coordinator = super::open_coordinator(&setup).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
        crate::health::probe::tls::install_default_provider();
        let prober = Arc::new(MeteredProber {
            metrics: metrics.clone(),
            vantage: setup.config.vantage(),
            records: record_names(&setup),
            chaos: chaos.as_ref().and_then(crate::chaos::ChaosPlan::probe_chaos),
        });
        let options = VantageOptions { publish_every: publish_every(&setup), ..VantageOptions::default() };
        let vantage = Vantage::start_with_prober(setup.config.vantage(), clock.clone(), options, prober);
        vantage.replace_policies(&setup.policies);
        // Policies are loaded once at start in this build: report that load.
        metrics.policy_reloads.get_or_create(&vec![("outcome", "ok".into())]).inc();
        metrics.policy_reload_ok.get_or_create(&vec![]).set(1);
        let standalone = setup.config.config.coordination.backend == crate::config::Backend::Standalone;
        let drills = crate::drill::Driver::new(definitions(&setup), standalone, metrics.clone());
        let token = super::admin::load_token(&setup.config)?;
        let exchange = Arc::new(Exchange::new(
            setup.config.vantage(),
            setup.config.admin_url(),
            token.clone(),
            clock.clone(),
            metrics.clone(),
        ));
        let setup = Arc::new(setup);
        let (summary, _) = watch::channel(RoundSummary { setup: Some(setup.clone()), ..RoundSummary::default() });
        let setup = std::sync::RwLock::new(setup);
        Ok(Self {
            setup,
            providers,
            coordinator,
            vantage,
            exchange,
            token,
            clock,
            summary,
            metrics,
            budget_waited: Default::default(),
            drills,
        })
    }

    /// The policies in force.
    fn setup(&self) -> Arc<Setup> {
        self.setup.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reloads the config's policies when their files changed (or on SIGHUP with
    /// `force`). A valid set replaces the old one at once; an invalid one is
    /// rejected with its positioned errors in the log, the metric and the status,
    /// and the last good set stays in force (I10). Provider and coordination
    /// settings are read at start only.
    fn reload(&self, fingerprint: &mut u64, force: bool) {
        let current = self.setup();
        let now = policy_fingerprint(&current);
        if now == *fingerprint && !force {
            return;
        }
        *fingerprint = now;
        match super::load(&current.config.path) {
            Ok(fresh) => {
                let names: Vec<&str> = fresh.policies.iter().map(|p| p.policy.name()).collect();
                tracing::info!(policies = ?names, "policies reloaded");
                self.vantage.replace_policies(&fresh.policies);
                self.drills.replace(definitions(&fresh));
                let fresh = Arc::new(fresh);
                *self.setup.write().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
                self.summary.send_modify(|s| s.setup = Some(fresh));
                self.metrics.policy_reloads.get_or_create(&vec![("outcome", "ok".into())]).inc();
                self.metrics.policy_reload_ok.get_or_create(&vec![]).set(1);
                self.summary.send_modify(|s| s.reload_error = None);
            }
            Err(diagnostics) => {
                for d in &diagnostics {
                    tracing::error!(diagnostic = %d, "policy reload rejected; the last good policies stay in force");
                }
                let text: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
                self.metrics.policy_reloads.get_or_create(&vec![("outcome", "error".into())]).inc();
                self.metrics.policy_reload_ok.get_or_create(&vec![]).set(0);
                self.summary.send_modify(|s| s.reload_error = Some(text.join("\n")));
            }
        }
    }

    /// Round summaries as they happen.
    pub fn summaries(&self) -> watch::Receiver<RoundSummary> {
        self.summary.subscribe()
    }

    /// The running providers (embedded stores, for the demo and tests).
    pub fn providers(&self) -> &ProviderSet {
        &self.providers
    }

    /// Serves the admin API on the configured listener until the controller stops.
    pub async fn serve_admin(&self) -> anyhow::Result<tokio::sync::oneshot::Sender<()>> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let listen = self.setup().config.config.admin.listen;
        let state = super::admin::AdminState {
            token: self.token.clone(),
            metrics: self.metrics.clone(),
            coordinator: self.coordinator.clone(),
            summary: self.summary.subscribe(),
            vantage: self.vantage.subscribe(),
            identity: self.coordinator.identity().to_string(),
            drills: self.drills.view(),
            loopback: listen.ip().is_loopback(),
        };
        super::admin::serve(listen, state, async {
            let _ = stopped.await;
        })
        .await
        .map_err(|e| anyhow::anyhow!("admin API cannot listen on {listen}: {e}"))?;
        Ok(stop)
    }

    /// Runs until `shutdown` completes, then releases leadership after in-flight
    /// writes (a graceful hand-over).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let period = reconcile_period(&self.setup());
        let mut fingerprint = policy_fingerprint(&self.setup());
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut last_check = tokio::time::Instant::now();
        let mut combiner = CombinerState::default();
        let mut reconciler =
            super::reconcile::Reconciler::new(crate::coord::Jitter::new(crate::health::schedule::stable_hash(&[
                b"reconcile",
                self.vantage.id().as_bytes(),
            ])));
        let (started_at, mut settled) = (tokio::time::Instant::now(), false);
        let mut reads_for: Option<(Epoch, Arc<Setup>)> = None;
        let mut campaign: Option<tokio::task::JoinHandle<()>> = None;
        let jitter = crate::coord::Jitter::new(crate::health::schedule::stable_hash(&[self.vantage.id().as_bytes()]));
        let (pull_period, pull_period_seen) = watch::channel(period);
        // One standalone process has no other vantage to exchange with.
        let shared = self.setup().config.config.coordination.backend != crate::config::Backend::Standalone;
        let exchange_tasks = shared.then(|| {
            [
                tokio::spawn(vantages::keep_registered(
                    self.exchange.clone(),
                    self.coordinator.clone(),
                    crate::coord::Jitter::from_entropy(),
                )),
                tokio::spawn(vantages::pull_while_leading(
                    self.exchange.clone(),
                    self.coordinator.clone(),
                    pull_period_seen,
                    crate::coord::Jitter::from_entropy(),
                )),
            ]
        });
        // Detection-to-DNS is the probes' bound plus one round when a Down
        // verdict starts the round at once, instead of plus up to a whole
        // jittered period of sleep.
        let mut reports = self.vantage.subscribe();
        let mut seen = reports.borrow_and_update().clone();
        loop {
            pull_period.send_if_modified(|p| std::mem::replace(p, reconcile_period(&self.setup())) != *p);
            self.publish_vantages();
            let epoch = self.coordinator.leadership().borrow().epoch();
            self.metrics.leader.get_or_create(&vec![]).set(i64::from(epoch.is_some()));
            if let Some(e) = epoch {
                self.metrics.leader_epoch.get_or_create(&vec![]).set(e.0 as i64);
            }
            let starting = !settled && {
                settled = every_verdict_in(&self.vantage.report())
                    || started_at.elapsed() >= first_verdicts_within(&self.setup());
                !settled
            };
            match epoch {
                Some(_) if starting => tracing::debug!("waiting for a first verdict on every endpoint"),
                Some(epoch) => {
                    let started = self.clock.now();
                    // Reads are reused within one epoch and one policy set only.
                    let setup = self.setup();
                    if reads_for.as_ref().is_none_or(|(e, s)| *e != epoch || !Arc::ptr_eq(s, &setup)) {
                        reconciler.forget_reads();
                        reads_for = Some((epoch, setup));
                    }
                    match self.round(epoch, &mut combiner, &mut reconciler).await {
                        Ok(()) => self.tick_drills(epoch, started).await,
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "reconcile round failed; the next round re-reads");
                            self.summary.send_modify(|s| s.error = Some(format!("{e:#}")));
                        }
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
            let hangup = async {
                match hangups.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
                () = an_endpoint_left_up(&mut reports, &mut seen) => {
                    tracing::debug!("an endpoint left Up: reconciling now");
                }
                _ = hangup => {
                    tracing::info!("SIGHUP: reloading policies");
                    self.reload(&mut fingerprint, true);
                }
            }
            if last_check.elapsed() >= Duration::from_secs(1) {
                last_check = tokio::time::Instant::now();
                self.reload(&mut fingerprint, false);
            }
        }
        if let Some(c) = campaign {
            c.abort();
        }
        if let Some(tasks) = exchange_tasks {
            tasks.iter().for_each(|t| t.abort());
            if let Err(e) = self.exchange.deregister(self.coordinator.as_ref()).await {
                tracing::warn!(error = %e, "cannot remove this replica from the vantage registry; it ages out");
            }
        }
        tracing::info!("shutting down: releasing leadership after in-flight writes");
        self.coordinator.release().await?;
        Ok(())
    }

    async fn round(
        &self,
        epoch: Epoch,
        combiner: &mut CombinerState,
        reconciler: &mut super::reconcile::Reconciler,
    ) -> anyhow::Result<()> {
        let now = self.clock.now();
        let setup = self.setup();
        let policies: Vec<_> = setup.policies.iter().map(|p| &p.policy).collect();
        let own = self.vantage.report();
        let mut reports = vec![(*own).clone()];
        reports.extend(self.exchange.reports().into_iter().filter(|r| r.vantage != own.vantage));
        let (health, next) = combine(&policies, &reports, combiner, now);
        *combiner = next;
        self.record_health(&reports, &health, combiner);
        if let Some(why) = &health.impaired {
            tracing::warn!(reason = %why, "health checker impaired: holding the published answers");
        }
        if let Err(e) = super::audit::expire_overrides(self.coordinator.as_ref(), now).await {
            tracing::warn!(error = %e, "cannot remove expired overrides; the planner ignores them anyway");
        }
        let store = StateSource::Coordinator(self.coordinator.clone());
        let writer =
            super::reconcile::Writer::leader(self.coordinator.clone(), epoch, &setup.config.config.coordination);
        let input = super::reconcile::RoundInput {
            setup: &setup,
            providers: &self.providers,
            health: &health,
            state: &store,
            now,
            writer: Some(&writer),
        };
        let result = reconciler.round(input).await;
        self.record_availability(reconciler);
        let report = match result {
            Ok(report) => report,
            Err(e) => {
                self.record_round("error", None);
                return Err(e);
            }
        };
        let outcome = if report.deadline_missed {
            "deadline"
        } else if report.converged() {
            "ok"
        } else {
            "partial"
        };
        self.record_round(outcome, Some(report.duration));
        let took = report.duration;
        for (unit, why) in &report.unread {
            tracing::debug!(policy = %unit.0, provider = %unit.1, reason = %why, "not read this round");
        }
        let super::reconcile::RoundReport { planned, enacted, saved, late, .. } = report;
        for (intent, outcome) in &late {
            let l = labels(&[("provider", intent.provider.as_str()), ("outcome", outcome_label(outcome))]);
            self.metrics.applies.get_or_create(&l).inc();
            let (record, provider) = (&intent.desired.name, &intent.provider);
            match outcome {
                Outcome::Applied { generation } => {
                    tracing::info!(record = %record, provider = %provider, generation, "applied (an earlier round's write, ended late)")
                }
                other => {
                    tracing::warn!(record = %record, provider = %provider, outcome = ?other, "not applied (an earlier round's write, ended late)")
                }
            }
        }
        let Planned { plan, intents, observed, overrides, state: planned_from, published } = planned;
        let result = enacted.unwrap_or_default();
        for (provider, took) in &result.durations {
            self.metrics
                .apply_duration
                .get_or_create(&labels(&[("provider", provider.as_str())]))
                .observe(took.as_secs_f64());
        }
        let mut applied = 0;
        for ((provider, name, outcome), intent) in result.outcomes.iter().zip(&intents) {
            let record = plan.records.iter().find(|r| r.policy == intent.policy);
            let reasons: Vec<&str> =
                record.map(|r| r.changes.iter().map(|c| c.reason.as_str()).collect()).unwrap_or_default();
            match outcome {
                Outcome::Applied { generation } => {
                    applied += 1;
                    self.metrics
                        .plan_generation
                        .get_or_create(&labels(&[("record", name.as_str()), ("provider", provider)]))
                        .set(*generation as i64);
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
                Outcome::InFlight => {
                    tracing::warn!(record = %name, provider = %provider, "sent; no answer yet at the round deadline")
                }
                other => tracing::warn!(record = %name, provider = %provider, outcome = ?other, "not applied"),
            }
            if *outcome != Outcome::InFlight {
                self.metrics
                    .applies
                    .get_or_create(&labels(&[("provider", provider), ("outcome", outcome_label(outcome))]))
                    .inc();
            }
        }
        self.record_plan(&plan);
        self.record_budgets();
        self.record_published(&observed);
        self.record_overrides(&overrides);
        let weightings = setup.policies.iter().map(|p| super::round::weighting_of(p, &self.providers)).collect();
        let preview = Arc::new(PreviewInputs {
            setup: setup.clone(),
            weightings,
            health,
            published,
            state: planned_from,
            overrides,
        });
        let round = self.summary.borrow().rounds + 1;
        let applies = super::status::last_applies(&intents, &result.outcomes, round, now);
        self.summary.send_modify(|s| {
            s.applied.extend(applies);
            s.rounds += 1;
            s.epoch = Some(epoch.0);
            s.writes += applied;
            s.round_duration = Some(took);
            s.plan = Some(plan);
            s.error = None;
            s.preview = Some(preview);
        });
        if matches!(*self.coordinator.leadership().borrow(), Leadership::Lost { .. }) {
            tracing::warn!(epoch = epoch.0, "leadership lost: writes stopped");
        }
        saved.map_err(anyhow::Error::msg)
    }
}

/// The drills of a policy set, as the runner uses them.
fn definitions(setup: &Setup) -> Vec<crate::drill::Definition> {
    setup.drills.iter().map(|d| d.definition.clone()).collect()
}

impl Controller {
    /// Steps the drills after a round led in `epoch` that started at `started`.
    async fn tick_drills(&self, epoch: Epoch, started: crate::time::Timestamp) {
        let summary = self.summary.borrow().clone();
        let (Some(plan), Some(preview)) = (&summary.plan, &summary.preview) else { return };
        let round = crate::drill::driver::Round {
            coordinator: &self.coordinator,
            providers: &self.providers,
            epoch,
            started,
            now: self.clock.now(),
            plan,
            preview,
        };
        if let Err(e) = self.drills.after_round(round).await {
            tracing::warn!(error = %e, "drill tick failed; the next round retries");
        }
    }
}

fn labels(pairs: &[(&'static str, &str)]) -> crate::metrics::Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

pub(super) fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Unchanged | Outcome::Applied { .. } => "ok",
        Outcome::Conflict(_) => "conflict",
        Outcome::Failed(veer_provider::ProviderError::Throttled { .. }) => "throttled",
        Outcome::Failed(_) => "error",
        Outcome::Fenced => "fenced",
        Outcome::Quarantined(_) => "quarantined",
        Outcome::InFlight => "in_flight",
        Outcome::WouldEmpty | Outcome::NotOwned(_) => "refused",
    }
}

impl Controller {
    /// One finished round into its counter and duration histogram.
    fn record_round(&self, outcome: &str, duration: Option<Duration>) {
        self.metrics.rounds.get_or_create(&labels(&[("outcome", outcome)])).inc();
        if let Some(d) = duration {
            self.metrics.round_duration.get_or_create(&vec![]).observe(d.as_secs_f64());
        }
    }

    /// Provider availability and quarantined names into the gauges and the summary.
    fn record_availability(&self, reconciler: &super::reconcile::Reconciler) {
        let statuses = reconciler.availability().snapshot();
        for name in self.providers.providers.keys() {
            let status = statuses.get(name).cloned().unwrap_or_default();
            let l = labels(&[("provider", name.as_str())]);
            self.metrics
                .provider_available
                .get_or_create(&l)
                .set(i64::from(status.available(tokio::time::Instant::now())));
            if let Some(at) = status.last_read {
                self.metrics.provider_last_read.get_or_create(&l).set(at.as_millis() as f64 / 1000.0);
            }
            if let Some(at) = status.last_write {
                self.metrics.provider_last_write.get_or_create(&l).set(at.as_millis() as f64 / 1000.0);
            }
        }
        let now = tokio::time::Instant::now();
        let quarantined: Vec<super::status::QuarantinedName> = reconciler
            .quarantine()
            .entries()
            .iter()
            .filter(|(_, q)| q.until > now)
            .map(|((provider, name), q)| super::status::QuarantinedName {
                provider: provider.clone(),
                record: name.to_string(),
                reason: q.reason.clone(),
            })
            .collect();
        // Every unit has a series (0 unless quarantined), so alerts and dashboards see them from the start.
        let setup = self.setup();
        for loaded in &setup.policies {
            let record = loaded.policy.record_name();
            for target in &loaded.policy.spec.publish_to.value {
                let held = reconciler.quarantine().entries().get(&(target.value.clone(), record.clone()));
                let l = labels(&[("provider", target.value.as_str()), ("record", record.as_str())]);
                self.metrics.quarantined.get_or_create(&l).set(i64::from(held.is_some_and(|q| q.until > now)));
            }
        }
        let unavailable = reconciler
            .availability()
            .unavailable()
            .into_iter()
            .map(|(provider, reason)| super::status::ProviderUnavailable { provider, reason })
            .collect();
        self.summary.send_modify(|s| {
            s.unavailable = unavailable;
            s.quarantined = quarantined;
        });
    }

    /// Published weight shares per provider, as read at the start of the round.
    fn record_published(&self, observed: &super::round::Observations) {
        for ((_, provider), state) in observed {
            let Some(records) = &state.records else { continue };
            let live: Vec<_> = records.live_answers().collect();
            let total: f64 = live.iter().map(|a| f64::from(a.weight.unwrap_or(1))).sum();
            for a in &live {
                let endpoint = a.set_id.clone().unwrap_or_else(|| a.value.clone());
                let share = if total > 0.0 { f64::from(a.weight.unwrap_or(1)) / total } else { 0.0 };
                let l = labels(&[
                    ("record", state.name.as_str()),
                    ("endpoint", endpoint.as_str()),
                    ("provider", provider.as_str()),
                ]);
                self.metrics.weight_published.get_or_create(&l).set(share);
            }
        }
    }

    /// Active overrides by kind (every kind is reported, zero included).
    fn record_overrides(&self, overrides: &[crate::planner::Override]) {
        use crate::planner::overrides::OverrideAction;
        let mut counts: std::collections::BTreeMap<&str, i64> =
            ["drain", "pin", "freeze", "failover"].into_iter().map(|k| (k, 0)).collect();
        for o in overrides {
            let kind = match o.action {
                OverrideAction::Drain { .. } => "drain",
                OverrideAction::Pin { .. } => "pin",
                OverrideAction::Freeze { .. } => "freeze",
                OverrideAction::FailoverToPool { .. } => "failover",
            };
            *counts.entry(kind).or_default() += 1;
        }
        for (kind, n) in counts {
            self.metrics.overrides_active.get_or_create(&labels(&[("kind", kind)])).set(n);
        }
    }

    /// Adds each provider's new budget wait to its counter.
    fn record_budgets(&self) {
        let mut counted = self.budget_waited.lock().unwrap_or_else(|e| e.into_inner());
        for (name, budget) in &self.providers.budgets {
            let total = budget.total_wait();
            let before = counted.insert(name.clone(), total).unwrap_or_default();
            let delta = total.saturating_sub(before).as_secs_f64();
            self.metrics.provider_budget_wait.get_or_create(&labels(&[("provider", name.as_str())])).inc_by(delta);
        }
    }

    /// Every known vantage with its freshness, into the summary and the gauges.
    fn publish_vantages(&self) {
        let statuses = self.exchange.statuses(&self.vantage.report(), self.clock.now(), fresh_for(&self.setup()));
        self.exchange.record_statuses(&statuses);
        self.summary.send_modify(|s| s.vantages = statuses);
    }

    /// Health gauges: each combined vantage's verdicts and the combined view.
    fn record_health(
        &self,
        reports: &[crate::health::VantageReport],
        health: &crate::health::HealthView,
        combiner: &CombinerState,
    ) {
        use crate::health::{HealthState, ProbeVerdict};
        let setup = self.setup();
        let record_of = |policy: &str| {
            setup
                .policies
                .iter()
                .find(|p| p.policy.name() == policy)
                .map_or_else(String::new, |p| p.policy.record_name().to_string())
        };
        for report in reports {
            for (key, endpoint) in &report.endpoints {
                if endpoint.verdict != ProbeVerdict::Unknown {
                    let record = record_of(&key.policy);
                    let l = labels(&[
                        ("record", record.as_str()),
                        ("endpoint", key.endpoint.as_str()),
                        ("vantage", report.vantage.as_str()),
                    ]);
                    let up = i64::from(endpoint.verdict == ProbeVerdict::Up);
                    self.metrics.endpoint_vantage_up.get_or_create(&l).set(up);
                }
            }
            let impaired = i64::from(combiner.impaired.contains_key(&report.vantage));
            self.metrics.vantage_impaired.get_or_create(&labels(&[("vantage", report.vantage.as_str())])).set(impaired);
        }
        for (key, endpoint) in &health.endpoints {
            if endpoint.state != HealthState::Unknown {
                let record = record_of(&key.policy);
                let l = labels(&[("record", record.as_str()), ("endpoint", key.endpoint.as_str())]);
                self.metrics.endpoint_up.get_or_create(&l).set(i64::from(endpoint.state == HealthState::Up));
            }
        }
        self.metrics.checker_impaired.get_or_create(&vec![]).set(i64::from(health.impaired.is_some()));
    }

    /// Plan gauges: desired weights, answers against the guard, held changes.
    fn record_plan(&self, plan: &crate::planner::Plan) {
        let setup = self.setup();
        for (record, loaded) in plan.records.iter().zip(&setup.policies) {
            let name = record.record.as_str();
            for a in &record.answers {
                let l = labels(&[("record", name), ("endpoint", a.endpoint.as_str())]);
                self.metrics.weight_desired.get_or_create(&l).set(a.share);
            }
            let live = record.answers.iter().filter(|a| a.weight > 0).count() as i64;
            for target in &loaded.policy.spec.publish_to.value {
                self.metrics
                    .record_answers
                    .get_or_create(&labels(&[("record", name), ("provider", target.value.as_str())]))
                    .set(live);
            }
            let min = i64::from(loaded.policy.spec.guards.min_healthy_endpoints());
            self.metrics.record_answers_min.get_or_create(&labels(&[("record", name)])).set(min);
            for reason in
                ["velocity", "change-budget", "guard", "freeze", "impaired", "keep-last", "join-cap", "backoff"]
            {
                let held = record
                    .held
                    .iter()
                    .filter(|h| {
                        serde_json::to_value(h.cause).ok().and_then(|v| v.as_str().map(String::from)).as_deref()
                            == Some(reason)
                    })
                    .count();
                self.metrics
                    .held_changes
                    .get_or_create(&labels(&[("record", name), ("reason", reason)]))
                    .set(held as i64);
            }
        }
    }
}
