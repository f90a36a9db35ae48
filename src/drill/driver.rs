//! The drill runner's I/O shell, driven by the leader's loop after each round.
//!
//! Each tick: read the pending operator requests from the store; step the run in
//! progress (reading its record back from every provider first) or start one
//! (an operator request, else a scheduled drill that is due); save the report as
//! the leader (fenced), then carry out the runner's actions — write or delete the
//! drain override through the store exactly as the admin API does, or step down —
//! and count the metrics. The decisions are [`super::runner`]'s; this module only
//! reads and writes.

use super::model::{Definition, DrillTarget};
use super::report::{Outcome, Phase, RecordGenerations, Report, TriggerKind};
use super::runner::{self, Action, Handover, Request, Tick, World};
use super::store::{self, RequestKind};
use crate::controller::providers::ProviderSet;
use crate::controller::run::PreviewInputs;
use crate::controller::{round, state};
use crate::coord::{CoordError, Coordinator, Epoch};
use crate::metrics::Metrics;
use crate::planner::{ObservedRecord, Plan};
use crate::policy::LoadedPolicy;
use crate::time::Timestamp;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;

/// A drill tick could not read or write the store.
#[derive(Debug, thiserror::Error)]
#[error("drill {step}: {source}")]
pub struct DrillError {
    /// What was being done.
    pub step: &'static str,
    /// The store's error.
    #[source]
    pub source: CoordError,
}

fn at(step: &'static str) -> impl FnOnce(CoordError) -> DrillError {
    move |source| DrillError { step, source }
}

/// What the admin API needs to answer about drills on any replica.
#[derive(Clone)]
pub struct DrillsView {
    /// The drills in force (replaced on reload).
    pub definitions: watch::Receiver<Arc<Vec<Definition>>>,
    /// The coordination backend is standalone (no hand-over possible).
    pub standalone: bool,
}

impl DrillsView {
    /// No drills (admin APIs built without a controller, in tests).
    pub fn empty() -> Self {
        Self { definitions: watch::channel(Arc::new(Vec::new())).1, standalone: true }
    }
}

/// Reports as the current tenure knows them, and when it began.
#[derive(Default)]
struct Memory {
    /// Reports per drill, read from the store when the epoch changes, then kept.
    reports: Option<(Epoch, BTreeMap<String, Vec<Report>>)>,
    /// The first round of the current epoch started then (take-over time).
    led_since: Option<(Epoch, Timestamp)>,
}

/// One replica's drill runner. Only the leader ticks it.
pub struct Driver {
    definitions: watch::Sender<Arc<Vec<Definition>>>,
    standalone: bool,
    metrics: Metrics,
    memory: tokio::sync::Mutex<Memory>,
}

/// What one leader round hands the driver.
pub struct Round<'a> {
    /// The store.
    pub coordinator: &'a Arc<dyn Coordinator>,
    /// The providers, to read records back.
    pub providers: &'a ProviderSet,
    /// This tenure.
    pub epoch: Epoch,
    /// When the round started.
    pub started: Timestamp,
    /// Now (after the round).
    pub now: Timestamp,
    /// The round's plan.
    pub plan: &'a Plan,
    /// What the round planned from.
    pub preview: &'a PreviewInputs,
}

impl Driver {
    /// A driver for `definitions`; every drill's series are created at once (at
    /// zero, and NaN for the figures until a run measures them).
    pub fn new(definitions: Vec<Definition>, standalone: bool, metrics: Metrics) -> Self {
        let driver = Self {
            definitions: watch::channel(Arc::new(Vec::new())).0,
            standalone,
            metrics,
            memory: Default::default(),
        };
        driver.replace(definitions);
        driver
    }

    /// Puts the drills of a reloaded policy set in force.
    pub fn replace(&self, definitions: Vec<Definition>) {
        for d in &definitions {
            let drill = vec![("drill", d.name.clone())];
            for outcome in Outcome::ALL {
                let _ = self.metrics.drill_runs.get_or_create(&labels(&d.name, outcome));
            }
            for gauge in
                [&self.metrics.drill_duration, &self.metrics.drill_time_to_detect, &self.metrics.drill_time_to_restore]
            {
                if gauge.get(&drill).is_none() {
                    // Not measured yet: NaN, not a misleading zero.
                    gauge.get_or_create(&drill).set(f64::NAN);
                }
            }
        }
        self.definitions.send_replace(Arc::new(definitions));
    }

    /// The admin API's view.
    pub fn view(&self) -> DrillsView {
        DrillsView { definitions: self.definitions.subscribe(), standalone: self.standalone }
    }

    /// One tick after a leader round.
    pub async fn after_round(&self, round: Round<'_>) -> Result<(), DrillError> {
        let coordinator = round.coordinator.as_ref();
        let mut memory = self.memory.lock().await;
        if memory.led_since.is_none_or(|(epoch, _)| epoch != round.epoch) {
            memory.led_since = Some((round.epoch, round.started));
        }
        let led_since = memory.led_since.map_or(round.started, |(_, t)| t);
        let reports = match &mut memory.reports {
            Some((epoch, reports)) if *epoch == round.epoch => reports,
            slot => {
                let fresh = store::reports(coordinator).await.map_err(at("reading reports"))?;
                &mut slot.insert((round.epoch, fresh)).1
            }
        };
        let definitions: Vec<&Definition> = round.preview.setup.drills.iter().map(|d| &d.definition).collect();
        let running = reports.values().flatten().find(|r| !r.is_finished()).cloned();
        if definitions.is_empty() && running.is_none() {
            return Ok(());
        }
        let requests = store::requests(coordinator).await.map_err(at("reading requests"))?;
        let inputs = round.preview.policy_inputs();
        let world = World {
            now: round.now,
            policies: &inputs,
            health: &round.preview.health,
            published: &round.preview.published,
            state: &round.preview.state,
            overrides: &round.preview.overrides,
            plan: round.plan,
        };
        let next = match running {
            Some(run) => Some(self.advance(&round, &world, &definitions, run, &requests, led_since).await?),
            None => self.start_one(&round, &world, &definitions, reports, &requests).await?,
        };
        if let Some(report) = next {
            let runs = reports.entry(report.drill.clone()).or_default();
            runs.retain(|r| r.started_at != report.started_at);
            runs.push(report);
        }
        Ok(())
    }

    /// Steps the run in progress.
    async fn advance(
        &self,
        round: &Round<'_>,
        world: &World<'_>,
        definitions: &[&Definition],
        run: Report,
        requests: &[store::Request],
        led_since: Timestamp,
    ) -> Result<Report, DrillError> {
        let coordinator = round.coordinator.as_ref();
        let identity = coordinator.identity().to_string();
        let (next, mut actions) = match &run.phase {
            Phase::HandingOver { from_epoch, from_identity, .. } => {
                if *from_epoch == round.epoch.0 && *from_identity == identity {
                    // Still the leader that should have stepped down (a failed or
                    // interrupted step-down): try again; the runner gives up in time.
                    let report = runner::step_handover(
                        &run,
                        &Handover { now: round.now, identity: &identity, epoch: round.epoch.0, led_since, after: &[] },
                    );
                    let again = if report.is_finished() { Vec::new() } else { vec![Action::StepDown] };
                    (report, again)
                } else {
                    let after = generations(coordinator, &round.preview.setup.policies, round.providers).await;
                    let handover = Handover {
                        now: round.now,
                        identity: &identity,
                        epoch: round.epoch.0,
                        led_since,
                        after: &after,
                    };
                    (runner::step_handover(&run, &handover), Vec::new())
                }
            }
            _ => {
                let definition = definitions.iter().copied().find(|d| d.name == run.drill);
                let policy = run
                    .policy
                    .as_deref()
                    .and_then(|p| round.preview.setup.policies.iter().find(|l| l.policy.name() == p));
                let read_back = match policy {
                    Some(p) => read_back(p, round.providers).await,
                    None => BTreeMap::new(),
                };
                let override_id = runner::drain_override_id(&run.drill, run.started_at);
                let live = state::override_live(coordinator, &override_id, round.now)
                    .await
                    .map_err(at("reading the drain"))?;
                let abort = requests.iter().find(|r| r.kind == RequestKind::Abort && r.drill == run.drill);
                let tick = Tick {
                    world,
                    definition,
                    read_back: &read_back,
                    override_live: live,
                    abort: abort.map(|r| r.author.as_str()),
                };
                let (report, mut actions) = runner::step_drain(&run, &tick);
                // Once lifting, the drain must be gone: delete it again if a lift failed.
                let lifting = matches!(report.phase, Phase::Restoring { .. } | Phase::Finished);
                if lifting && live && !actions.iter().any(|a| matches!(a, Action::Lift(_))) {
                    actions.push(Action::Lift(override_id));
                }
                (report, actions)
            }
        };
        for request in requests.iter().filter(|r| r.kind == RequestKind::Abort && r.drill == run.drill) {
            store::consume(coordinator, request).await.map_err(at("consuming an abort request"))?;
        }
        self.commit(round, Some(&run), &next, &mut actions).await?;
        Ok(next)
    }

    /// Starts one run: the oldest operator request, else a scheduled drill that is due.
    async fn start_one(
        &self,
        round: &Round<'_>,
        world: &World<'_>,
        definitions: &[&Definition],
        reports: &BTreeMap<String, Vec<Report>>,
        requests: &[store::Request],
    ) -> Result<Option<Report>, DrillError> {
        let coordinator = round.coordinator.as_ref();
        for request in requests {
            store::consume(coordinator, request).await.map_err(at("consuming a request"))?;
            let definition = definitions.iter().copied().find(|d| d.name == request.drill);
            match (request.kind, definition) {
                (RequestKind::Abort, _) => {
                    tracing::info!(drill = %request.drill, author = %request.author, "drill abort asked, but it is not running");
                }
                (RequestKind::Run, None) => {
                    tracing::warn!(drill = %request.drill, "drill run asked for a drill that is not loaded");
                }
                (RequestKind::Run, Some(d)) => {
                    let trigger = (TriggerKind::Operator, request.author.as_str(), Some(request.at));
                    return self.start(round, world, d, trigger).await;
                }
            }
        }
        for definition in definitions {
            let runs = reports.get(&definition.name).map_or(&[][..], Vec::as_slice);
            if runner::next_scheduled(definition, runs, round.now).is_some_and(|at| at <= round.now)
                && let Some(report) =
                    self.start(round, world, definition, (TriggerKind::Schedule, "veer", None)).await?
            {
                return Ok(Some(report));
            }
        }
        Ok(None)
    }

    /// Runs the preflight and starts (or refuses) a run. A scheduled drill whose
    /// refusal passes by itself (health not known yet, warm-up) waits unrecorded.
    async fn start(
        &self,
        round: &Round<'_>,
        world: &World<'_>,
        definition: &Definition,
        (kind, author, requested_at): (TriggerKind, &str, Option<Timestamp>),
    ) -> Result<Option<Report>, DrillError> {
        let coordinator = round.coordinator.as_ref();
        let request = Request { kind, author, running: None, standalone: self.standalone, requested_at };
        let cleared = runner::preflight(definition, world, &request);
        if let Err(refusal) = &cleared
            && refusal.transient
            && kind == TriggerKind::Schedule
        {
            tracing::debug!(drill = %definition.name, reason = %refusal.reason, "scheduled drill waits");
            return Ok(None);
        }
        let before = match (&definition.target, &cleared) {
            (DrillTarget::Leader, Ok(_)) => {
                generations(coordinator, &round.preview.setup.policies, round.providers).await
            }
            _ => Vec::new(),
        };
        let identity = coordinator.identity().to_string();
        let (report, mut actions) =
            runner::start(definition, world, &request, cleared, (&identity, round.epoch.0), before);
        self.commit(round, None, &report, &mut actions).await?;
        Ok(Some(report))
    }

    /// Saves `next` (fenced), logs its new steps, carries out `actions` and, when
    /// the run ended, counts it.
    async fn commit(
        &self,
        round: &Round<'_>,
        previous: Option<&Report>,
        next: &Report,
        actions: &mut Vec<Action>,
    ) -> Result<(), DrillError> {
        let coordinator = round.coordinator.as_ref();
        if previous == Some(next) && actions.is_empty() {
            return Ok(());
        }
        store::save(coordinator, round.epoch, next).await.map_err(at("saving the report"))?;
        for step in next.steps.iter().skip(previous.map_or(0, |p| p.steps.len())) {
            tracing::info!(drill = %next.drill, step = ?step.step, detail = %step.detail, "drill");
        }
        for action in actions.drain(..) {
            let result = match &action {
                Action::Drain(o) => {
                    let r = state::put_override(coordinator, o).await;
                    if r.is_ok() {
                        tracing::info!(id = %o.id, author = %o.author, reason = %o.reason, "override created");
                    }
                    r
                }
                Action::Lift(id) => {
                    let r = state::delete_override(coordinator, id).await;
                    if r.is_ok() {
                        tracing::info!(%id, "override deleted");
                    }
                    r
                }
                Action::StepDown => {
                    tracing::info!(epoch = round.epoch.0, drill = %next.drill, "stepping down for a leader drill");
                    coordinator.step_down().await
                }
            };
            if let Err(e) = result {
                // The next tick sees the missing effect and retries or fails the run.
                tracing::warn!(drill = %next.drill, action = ?action, error = %e, "drill action failed");
            }
        }
        if let (Some(outcome), true) = (next.outcome, next.is_finished() && previous.is_none_or(|p| !p.is_finished())) {
            self.count(next, outcome);
        }
        Ok(())
    }

    fn count(&self, report: &Report, outcome: Outcome) {
        self.metrics.drill_runs.get_or_create(&labels(&report.drill, outcome)).inc();
        let drill = vec![("drill", report.drill.clone())];
        let seconds = |ms: Option<u64>| ms.map(|ms| ms as f64 / 1000.0);
        let m = &report.measures;
        for (gauge, value) in [
            (&self.metrics.drill_duration, seconds(m.duration_ms)),
            (&self.metrics.drill_time_to_detect, seconds(m.time_to_detect_ms)),
            (&self.metrics.drill_time_to_restore, seconds(m.time_to_restore_ms)),
        ] {
            if let Some(v) = value {
                gauge.get_or_create(&drill).set(v);
            }
        }
        tracing::info!(
            drill = %report.drill, outcome = outcome.as_str(), reason = report.reason.as_deref().unwrap_or(""),
            "drill finished"
        );
    }
}

fn labels(drill: &str, outcome: Outcome) -> crate::metrics::Labels {
    vec![("drill", drill.to_string()), ("outcome", outcome.as_str().to_string())]
}

/// The record of `policy` read back from each of its providers (`None`: the read failed).
async fn read_back(policy: &LoadedPolicy, providers: &ProviderSet) -> BTreeMap<String, Option<ObservedRecord>> {
    let p = &policy.policy;
    let rtype = p.spec.record.record_type.value.record_type();
    let mut out = BTreeMap::new();
    for target in &p.spec.publish_to.value {
        let Some(provider) = providers.providers.get(&target.value) else { continue };
        let read = match provider.read(p.record_name(), rtype).await {
            Ok(observed) => Some(round::observed_record(p, &observed)),
            Err(e) => {
                tracing::warn!(provider = %target.value, record = %p.record_name(), error = %e, "drill read-back failed");
                None
            }
        };
        out.insert(target.value.clone(), read);
    }
    out
}

/// Every record's plan-history generations and each provider's ownership generation.
async fn generations(
    coordinator: &dyn Coordinator,
    policies: &[LoadedPolicy],
    providers: &ProviderSet,
) -> Vec<RecordGenerations> {
    let mut out = Vec::new();
    for loaded in policies {
        let p = &loaded.policy;
        let record = p.record_name().to_string();
        let history = match coordinator.plans(&record).await {
            Ok(plans) => plans.into_iter().map(|(generation, _)| generation).collect(),
            Err(e) => {
                tracing::warn!(%record, error = %e, "drill: plan history unreadable");
                Vec::new()
            }
        };
        let rtype = p.spec.record.record_type.value.record_type();
        let mut by_provider = BTreeMap::new();
        for target in &p.spec.publish_to.value {
            let Some(provider) = providers.providers.get(&target.value) else { continue };
            if let Ok(observed) = provider.read(p.record_name(), rtype).await {
                by_provider.insert(target.value.clone(), observed.ownership.map_or(0, |o| o.generation));
            }
        }
        out.push(RecordGenerations { record, history, providers: by_provider });
    }
    out
}
