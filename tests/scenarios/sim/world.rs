//! What scenarios 1, 5 and 6 run on: a seeded fleet (policies generated per
//! seed), the reference in-memory provider behind the [`Recorder`], the shared
//! store, and replicas whose rounds are the controller's own (the production
//! [`Reconciler`]'s round, fenced) through each replica's provider stack —
//! budget and retry layer ([`Resilient`]), optional faults ([`Chaotic`]), and
//! the hooks a scenario needs to pause or kill a replica at a chosen point.

use super::Rng;
use super::coordinator::{SimCoordinator, SimStore};
use super::recorder::{Recorder, TwoStep, Unconditional};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use veer::controller::providers::ProviderSet;
use veer::controller::reconcile::{Reconciler, RoundInput, Writer};
use veer::controller::state::StateSource;
use veer::controller::{self, Setup};
use veer::coord::{Coordinator, Epoch, Timings};
use veer::enactor::{AlwaysLeader, Fence, LeaderFence, Outcome};
use veer::health::{EndpointHealth, EndpointKey, HealthState, HealthView};
use veer::planner::WarmupState;
use veer::policy::source::DocumentText;
use veer::time::Timestamp;
use veer_provider::conformance::MemoryProvider;
use veer_provider::{
    ApiBudget, BudgetConfig, ChangeBatch, Chaotic, FaultRule, Observed, Provider, ProviderFuture, RecordName,
    RecordType, Resilient, RetryBudget, RetryPolicy,
};

/// The zone every generated record lives in.
pub const ZONE: &str = "sim.test.";
/// The provider name in the generated controller config.
pub const PROVIDER: &str = "sim";

/// One generated policy.
#[derive(Debug, Clone)]
pub struct FleetPolicy {
    /// Policy name.
    pub name: String,
    /// `(id, address, capacity)` per endpoint, one pool.
    pub endpoints: Vec<(String, String, u32)>,
    /// Warm-up stages in percent.
    pub stages: Vec<u32>,
    /// Warm-up hold.
    pub hold_s: u64,
    /// `shift.window`.
    pub window_s: u64,
}

impl FleetPolicy {
    /// The record name.
    pub fn record(&self) -> RecordName {
        RecordName::parse(&format!("{}.{ZONE}", self.name)).expect("generated names are valid")
    }

    fn yaml(&self) -> String {
        let endpoints: Vec<String> = self
            .endpoints
            .iter()
            .map(|(id, address, capacity)| format!("{{ id: {id}, address: {address}, capacity: {capacity} }}"))
            .collect();
        let stages: Vec<String> = self.stages.iter().map(u32::to_string).collect();
        format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: {name} }}\nspec:\n  \
             record: {{ name: {record}, type: A, ttl: 30 }}\n  publishTo: [{PROVIDER}]\n  routing: weighted\n  \
             pools: [{{ name: main, endpoints: [{endpoints}] }}]\n  \
             healthCheck: {{ type: tcp, port: 80, interval: 1s, timeout: 500ms }}\n  \
             shift: {{ maxRemovePercent: 100, window: {window}s, maxChangesPerHour: 3600 }}\n  \
             warmup: {{ stages: [{stages}], hold: {hold}s }}\n  \
             guards: {{ minHealthyEndpoints: 1, minCapacityPercent: 0 }}\n",
            name = self.name,
            record = self.record(),
            endpoints = endpoints.join(", "),
            window = self.window_s,
            stages = stages.join(", "),
            hold = self.hold_s,
        )
    }
}

/// A generated set of policies, all published to the one simulated provider.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// The policies.
    pub policies: Vec<FleetPolicy>,
}

impl Fleet {
    /// `records` policies of `endpoints` endpoints each (a range), with seeded
    /// capacities, warm-up stages and windows.
    pub fn random(rng: &mut Rng, records: usize, endpoints: (u64, u64)) -> Self {
        let stage_sets: [&[u32]; 4] = [&[100], &[50, 100], &[25, 50, 100], &[10, 25, 50, 100]];
        let policies = (0..records)
            .map(|r| {
                let count = rng.between(endpoints.0, endpoints.1);
                FleetPolicy {
                    name: format!("r{r}"),
                    endpoints: (0..count)
                        .map(|e| {
                            (
                                format!("e{e}"),
                                format!("192.0.2.{}", 10 + 20 * r as u64 + e),
                                50 + 50 * rng.below(3) as u32,
                            )
                        })
                        .collect(),
                    stages: rng.pick(&stage_sets).to_vec(),
                    hold_s: rng.between(1, 3),
                    window_s: rng.between(5, 20),
                }
            })
            .collect();
        Self { policies }
    }

    /// Every endpoint key.
    pub fn keys(&self) -> Vec<EndpointKey> {
        self.policies.iter().flat_map(|p| p.endpoints.iter().map(|e| EndpointKey::new(&p.name, &e.0))).collect()
    }
}

/// The controller config every world shares (parsed once per thread).
fn controller_config() -> veer::config::LoadedConfig {
    thread_local! {
        static CONFIG: veer::config::LoadedConfig = {
            let text = format!(
                "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: sim\nvantage: v1\n\
                 coordination: {{ leaseDuration: 3s, renewDeadline: 2s, retryPeriod: 500ms }}\n\
                 providers:\n  {PROVIDER}: {{ type: embedded, zones: [{ZONE}] }}\n"
            );
            let path = Path::new("sim/veer.yaml");
            veer::config::parse(path, &DocumentText { text, first_line: 1 }, &BTreeMap::new())
                .unwrap_or_else(|d| panic!("generated config: {d:?}"))
        };
    }
    CONFIG.with(Clone::clone)
}

/// Which backend the provider has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The reference provider (compare-and-swap, atomic batches).
    Memory,
    /// Compare-and-swap switched off ([`Unconditional`]).
    Unconditional,
    /// Atomic writes switched off ([`TwoStep`]).
    TwoStep,
}

/// The fleet, the provider backend behind the recorder, and the store.
pub struct World {
    /// Config and policies.
    pub setup: Arc<Setup>,
    /// The fleet the policies came from.
    pub fleet: Fleet,
    /// The observer in front of the backend.
    pub recorder: Arc<Recorder>,
    /// The coordination store.
    pub store: Arc<Mutex<SimStore>>,
    /// Lease timings of every replica.
    pub timings: Timings,
    started: Instant,
}

impl World {
    /// A world for `fleet` on `backend`, with leases of 3 s (renew deadline 2 s, retry 500 ms).
    pub fn new(fleet: Fleet, backend: Backend) -> Self {
        let config = controller_config();
        let text: Vec<String> = fleet.policies.iter().map(FleetPolicy::yaml).collect();
        let loaded = veer::policy::load_text(Path::new("sim/policies.yaml"), &text.join("---\n"), Some(&config));
        assert!(loaded.is_valid(), "generated policies: {:#?}", loaded.diagnostics);
        Self::with_setup(Arc::new(Setup { config, policies: loaded.policies, drills: Vec::new() }), fleet, backend)
    }

    /// Another world with the same fleet and policies: its own provider and store.
    pub fn sibling(&self, backend: Backend) -> Self {
        Self::with_setup(self.setup.clone(), self.fleet.clone(), backend)
    }

    fn with_setup(setup: Arc<Setup>, fleet: Fleet, backend: Backend) -> Self {
        let timings = Timings::new(Duration::from_secs(3), Duration::from_secs(2), Duration::from_millis(500)).unwrap();
        let memory = MemoryProvider::new(vec![RecordName::parse(ZONE).unwrap()]);
        let backdoor = memory.backdoor();
        let memory: Arc<dyn Provider> = Arc::new(memory);
        let backend: Arc<dyn Provider> = match backend {
            Backend::Memory => memory,
            Backend::Unconditional => Arc::new(Unconditional(memory)),
            Backend::TwoStep => Arc::new(TwoStep { inner: memory, backdoor, gap: Duration::from_millis(50) }),
        };
        let names = fleet.policies.iter().map(|p| (p.record(), RecordType::A)).collect();
        Self {
            setup,
            fleet,
            recorder: Recorder::new(backend, names),
            store: SimStore::shared(),
            timings,
            started: Instant::now(),
        }
    }

    /// Virtual time since the world started, as the planner's clock.
    pub fn now(&self) -> Timestamp {
        Timestamp((Instant::now() - self.started).as_millis() as u64)
    }

    /// Virtual time since the world started.
    pub fn elapsed(&self) -> Duration {
        Instant::now() - self.started
    }

    /// Every managed record name.
    pub fn records(&self) -> Vec<RecordName> {
        self.fleet.policies.iter().map(FleetPolicy::record).collect()
    }

    /// The live answers of every record now, for comparing outcomes.
    pub async fn published(&self) -> BTreeMap<String, Vec<(String, Option<u32>)>> {
        let mut out = BTreeMap::new();
        for name in self.records() {
            out.insert(name.to_string(), self.recorder.answers(&name, RecordType::A).await);
        }
        out
    }
}

/// Endpoint health as the combined view reports it (every vantage agrees).
#[derive(Debug, Clone, PartialEq)]
pub struct Health(pub BTreeMap<EndpointKey, bool>);

impl Health {
    /// Every endpoint up.
    pub fn all_up(fleet: &Fleet) -> Self {
        Self(fleet.keys().into_iter().map(|k| (k, true)).collect())
    }

    /// Flips one endpoint, never taking the last up endpoint of a policy down.
    pub fn flip_random(&mut self, rng: &mut Rng) {
        let keys: Vec<EndpointKey> = self.0.keys().cloned().collect();
        let key = rng.pick(&keys).clone();
        let up_in_policy = self.0.iter().filter(|(k, up)| k.policy == key.policy && **up).count();
        if self.0[&key] && up_in_policy <= 1 {
            return;
        }
        let state = self.0.get_mut(&key).expect("picked from the map");
        *state = !*state;
    }

    /// The planner's view.
    pub fn view(&self) -> HealthView {
        let endpoints = self
            .0
            .iter()
            .map(|(k, up)| {
                let state = if *up { HealthState::Up } else { HealthState::Down };
                (k.clone(), EndpointHealth { state, vantages_down: if *up { 0 } else { 3 }, vantages_fresh: 3 })
            })
            .collect();
        HealthView { impaired: None, endpoints }
    }
}

/// Holds the next apply that passes through it until released: the replica is
/// paused after it read state, built its change and passed the fence, before the
/// change leaves (SIGSTOP at the worst moment). The worst case of a resume is
/// modelled: the held write leaves when released even if its round stopped
/// waiting for it meanwhile (its deadline), and what the provider answered is kept.
#[derive(Default)]
pub struct Gate {
    armed: AtomicBool,
    held: Notify,
    release: Notify,
    delivered: Mutex<Option<Result<(), veer_provider::ProviderError>>>,
    sent: Notify,
}

impl Gate {
    /// The next apply is held.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
    /// Waits until an apply is held.
    pub async fn holding(&self) {
        self.held.notified().await;
    }
    /// Lets the held apply go.
    pub fn release(&self) {
        self.release.notify_one();
    }
    /// Waits until the released apply reached the provider; what it answered.
    pub async fn delivered(&self) -> Result<(), veer_provider::ProviderError> {
        loop {
            let sent = self.sent.notified();
            if let Some(result) = self.delivered.lock().unwrap().clone() {
                return result;
            }
            sent.await;
        }
    }
}

/// Kills the replica at its n-th provider call (or n-th write), before the call
/// reaches the backend or right after the backend processed it (the response
/// never arrives).
pub struct CrashPoint {
    calls: AtomicU64,
    writes: AtomicU64,
    at: AtomicU64,
    writes_only: AtomicBool,
    after: AtomicBool,
    crashed: Notify,
}

impl CrashPoint {
    /// Disarmed.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            calls: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            at: AtomicU64::new(u64::MAX),
            writes_only: AtomicBool::new(false),
            after: AtomicBool::new(false),
            crashed: Notify::new(),
        })
    }
    /// Crash at the `n`-th call (or write, with `writes_only`) from now, 1-based;
    /// after the backend processed it when `after`.
    pub fn arm(&self, n: u64, writes_only: bool, after: bool) {
        let counter = if writes_only { &self.writes } else { &self.calls };
        self.at.store(counter.load(Ordering::SeqCst) + n, Ordering::SeqCst);
        self.writes_only.store(writes_only, Ordering::SeqCst);
        self.after.store(after, Ordering::SeqCst);
    }
    /// No crash any more.
    pub fn disarm(&self) {
        self.at.store(u64::MAX, Ordering::SeqCst);
    }
    /// Completes when the crash point was reached.
    pub async fn crashed(&self) {
        self.crashed.notified().await;
    }
    /// Counts a call; `Some(after)` when this call is the crash point.
    fn hit(&self, write: bool) -> Option<bool> {
        let calls = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let writes =
            if write { self.writes.fetch_add(1, Ordering::SeqCst) + 1 } else { self.writes.load(Ordering::SeqCst) };
        let n = if self.writes_only.load(Ordering::SeqCst) {
            if !write {
                return None;
            }
            writes
        } else {
            calls
        };
        (n == self.at.load(Ordering::SeqCst)).then(|| self.after.load(Ordering::SeqCst))
    }
}

/// Applies [`Gate`] and [`CrashPoint`] hooks around a provider.
struct Hooked {
    inner: Arc<dyn Provider>,
    gate: Option<Arc<Gate>>,
    crash: Option<Arc<CrashPoint>>,
}

impl Hooked {
    async fn die<T>(crash: &CrashPoint) -> T {
        crash.crashed.notify_one();
        std::future::pending().await
    }
}

impl veer_provider::ProviderWrapper for Hooked {
    fn inner(&self) -> &dyn Provider {
        &*self.inner
    }
    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        let crash = self.crash.as_ref().and_then(|c| c.hit(false).map(|after| (c, after)));
        Box::pin(async move {
            match crash {
                Some((c, false)) => Self::die(c).await,
                Some((c, true)) => {
                    let _ = self.inner.read(name, rtype).await;
                    Self::die(c).await
                }
                None => self.inner.read(name, rtype).await,
            }
        })
    }
    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        let crash = self.crash.as_ref().and_then(|c| c.hit(true).map(|after| (c, after)));
        Box::pin(async move {
            if let Some(gate) = &self.gate
                && gate.armed.swap(false, Ordering::SeqCst)
            {
                gate.held.notify_one();
                let (gate, inner, batch) = (gate.clone(), self.inner.clone(), batch.clone());
                let (tx, rx) = tokio::sync::oneshot::channel();
                tokio::spawn(async move {
                    gate.release.notified().await;
                    let result = inner.apply(&batch).await;
                    *gate.delivered.lock().unwrap() = Some(result.clone());
                    gate.sent.notify_waiters();
                    let _ = tx.send(result);
                });
                return rx
                    .await
                    .unwrap_or_else(|_| Err(veer_provider::ProviderError::Ambiguous("held write lost".into())));
            }
            match crash {
                Some((c, false)) => Self::die(c).await,
                Some((c, true)) => {
                    let _ = self.inner.apply(batch).await;
                    Self::die(c).await
                }
                None => self.inner.apply(batch).await,
            }
        })
    }
}

/// Where a replica's [`Gate`] sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateAt {
    /// Between the enactor and the retry layer.
    BeforeRetries,
    /// Inside the retry layer, after the budget admitted the call.
    InsideRetries,
}

/// How one replica reaches the provider.
#[derive(Clone)]
pub struct StackOptions {
    /// Faults injected inside the retry layer, with their seed.
    pub chaos: Option<(Vec<FaultRule>, u64)>,
    /// A pause point.
    pub gate: Option<(Arc<Gate>, GateAt)>,
    /// A crash point, right in front of the backend.
    pub crash: Option<Arc<CrashPoint>>,
    /// Records each call into the retry layer and each attempt it makes.
    pub tap: Option<Arc<TapLog>>,
    /// The API budget.
    pub budget: BudgetConfig,
    /// The retry policy.
    pub policy: RetryPolicy,
    /// The retry budget: reserve and deposit per call.
    pub retries: (u32, f64),
    /// The jitter seed of the retry layer.
    pub seed: u64,
}

impl StackOptions {
    /// The controller's defaults: 20 calls/s, the default retry policy and budget.
    pub fn plain(seed: u64) -> Self {
        Self {
            chaos: None,
            gate: None,
            crash: None,
            tap: None,
            budget: BudgetConfig { calls_per_second: 20.0, burst: 20 },
            policy: RetryPolicy::default(),
            retries: (10, 0.1),
            seed,
        }
    }
}

/// Builds backend → crash point → faults → (gate) → budget and retries → (gate).
fn stack(world: &World, options: &StackOptions) -> ProviderSet {
    let gate_at = |at| options.gate.as_ref().filter(|(_, where_)| *where_ == at).map(|(g, _)| g.clone());
    let mut provider: Arc<dyn Provider> = world.recorder.clone();
    if options.crash.is_some() {
        provider = Arc::new(Hooked { inner: provider, gate: None, crash: options.crash.clone() });
    }
    if let Some((rules, seed)) = &options.chaos {
        provider = Arc::new(Chaotic::new(provider, rules.clone(), *seed));
    }
    if let Some(gate) = gate_at(GateAt::InsideRetries) {
        provider = Arc::new(Hooked { inner: provider, gate: Some(gate), crash: None });
    }
    if let Some(log) = &options.tap {
        provider = Arc::new(Tap { inner: provider, log: log.clone(), layer: Layer::Attempt });
    }
    let budget = Arc::new(ApiBudget::new(options.budget).expect("valid budget"));
    let retries = Arc::new(RetryBudget::new(options.retries.0, options.retries.1));
    provider = Arc::new(Resilient::new(provider, budget.clone(), options.policy, retries, options.seed));
    if let Some(log) = &options.tap {
        provider = Arc::new(Tap { inner: provider, log: log.clone(), layer: Layer::Call });
    }
    if let Some(gate) = gate_at(GateAt::BeforeRetries) {
        provider = Arc::new(Hooked { inner: provider, gate: Some(gate), crash: None });
    }
    ProviderSet {
        providers: BTreeMap::from([(PROVIDER.to_string(), provider)]),
        embedded: BTreeMap::new(),
        servers: Vec::new(),
        budgets: BTreeMap::from([(PROVIDER.to_string(), budget)]),
    }
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundOutcome {
    /// Writes the plan needed.
    pub intents: usize,
    /// The enactor's outcome per intent.
    pub outcomes: Vec<Outcome>,
    /// Whether the plan was saved to the store.
    pub saved: bool,
    /// Nothing left to do for this health: no write needed, nothing held, every
    /// up endpoint at full weight and every down one out.
    pub settled: bool,
}

impl RoundOutcome {
    /// Intents applied.
    pub fn applied(&self) -> usize {
        self.outcomes.iter().filter(|o| matches!(o, Outcome::Applied { .. })).count()
    }
}

/// One controller process.
pub struct Replica {
    /// Its coordinator.
    pub coordinator: Arc<SimCoordinator>,
    /// Its providers.
    pub providers: ProviderSet,
    /// Its renewal task, while it runs.
    renewing: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Writes without checking the fence (the safety mechanism of I3, switched off).
    unfenced: AtomicBool,
    /// What its controller loop keeps between rounds (the production reconciler).
    reconciler: tokio::sync::Mutex<Reconciler>,
}

impl Replica {
    /// A replica named `identity` of `world`.
    pub fn new(world: &World, identity: &str, options: &StackOptions, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            coordinator: SimCoordinator::new(identity, world.store.clone(), world.timings, seed),
            providers: stack(world, options),
            renewing: Mutex::new(None),
            unfenced: AtomicBool::new(false),
            reconciler: tokio::sync::Mutex::new(Reconciler::new(veer::coord::Jitter::new(seed))),
        })
    }

    /// From now on, writes without checking the fence (a test double of a
    /// writer without fencing).
    pub fn disable_fence(&self) {
        self.unfenced.store(true, Ordering::SeqCst);
    }

    /// Campaigns until it leads, then keeps renewing.
    pub async fn lead(&self) -> Epoch {
        let epoch = self.coordinator.campaign().await.expect("the simulated store never fails");
        self.resume_renewing();
        epoch
    }

    /// Stops renewing (SIGSTOP or kill -9: the lease runs out at the store).
    pub fn stop_renewing(&self) {
        if let Some(task) = self.renewing.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Renews again (SIGCONT): the first renewal finds out whether it still leads.
    pub fn resume_renewing(&self) {
        let task = self.coordinator.keep_renewing();
        if let Some(old) = self.renewing.lock().unwrap().replace(task) {
            old.abort();
        }
    }

    /// One round as the controller loop runs it: only while leading.
    pub async fn round(&self, world: &World, health: &Health) -> Result<Option<RoundOutcome>, String> {
        match self.coordinator.epoch() {
            Some(epoch) => self.round_as(world, health, epoch).await.map(Some),
            None => Ok(None),
        }
    }

    /// One observe → plan → enact → save round as the leader of `epoch`, as
    /// `veer run` does it (errors are what the controller would log).
    pub async fn round_as(&self, world: &World, health: &Health, epoch: Epoch) -> Result<RoundOutcome, String> {
        let setup = &world.setup;
        let store = StateSource::Coordinator(self.coordinator.clone());
        let fence: Arc<dyn Fence> = if self.unfenced.load(Ordering::SeqCst) {
            Arc::new(AlwaysLeader { epoch: epoch.0 })
        } else {
            Arc::new(LeaderFence::new(self.coordinator.clone(), epoch))
        };
        let writer = Writer {
            coordinator: self.coordinator.clone(),
            epoch,
            fence,
            expected_write: controller::expected_write(&setup.config.config.coordination),
            history_keep: controller::state::HISTORY_KEEP,
        };
        let view = health.view();
        let input = RoundInput {
            setup,
            providers: &self.providers,
            health: &view,
            state: &store,
            now: world.now(),
            writer: Some(&writer),
        };
        let report = self.reconciler.lock().await.round(input).await.map_err(|e| format!("{e:#}"))?;
        let planned = &report.planned;
        let warmed = planned.plan.state.records.iter().all(|(policy, record)| {
            record.endpoints.iter().all(|(endpoint, warmup)| {
                let up = health.0.get(&EndpointKey::new(policy, endpoint)).copied().unwrap_or(true);
                matches!((up, warmup), (true, WarmupState::Full) | (false, WarmupState::Out { .. }))
            })
        });
        let outcomes = report.enacted.as_ref().map(|r| r.outcomes.iter().map(|(_, _, o)| o.clone()).collect());
        Ok(RoundOutcome {
            intents: planned.intents.len(),
            outcomes: outcomes.unwrap_or_default(),
            saved: report.converged(),
            settled: planned.intents.is_empty() && warmed && planned.plan.records.iter().all(|r| r.held.is_empty()),
        })
    }
}

/// Plan-history generations in the store, per record name.
pub fn history(store: &Mutex<SimStore>) -> BTreeMap<String, BTreeSet<u64>> {
    let mut out: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for name in store.lock().unwrap().names(veer::coord::Space::Plans) {
        if let Some((record, generation)) = name.rsplit_once('/')
            && let Ok(generation) = generation.parse()
        {
            out.entry(record.to_string()).or_default().insert(generation);
        }
    }
    out
}

/// Which side of the retry layer a [`TapEvent`] was seen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// A call into the retry layer (one logical read or write).
    Call,
    /// One attempt the retry layer made (after the budget admitted it).
    Attempt,
}

/// One call or attempt.
#[derive(Debug, Clone)]
pub struct TapEvent {
    /// Call or attempt.
    pub layer: Layer,
    /// Read or write.
    pub operation: veer_provider::Operation,
    /// The names it touched.
    pub key: String,
    /// When it began.
    pub start: Instant,
    /// When it returned (`None`: never, the replica died first).
    pub end: Option<Instant>,
    /// Its error, if it failed.
    pub error: Option<veer_provider::ProviderError>,
}

/// The calls and attempts of one replica, in the order they began.
#[derive(Default)]
pub struct TapLog {
    events: Mutex<Vec<TapEvent>>,
}

impl TapLog {
    /// Everything seen so far.
    pub fn events(&self) -> Vec<TapEvent> {
        self.events.lock().unwrap().clone()
    }

    fn begin(&self, layer: Layer, operation: veer_provider::Operation, key: String) -> usize {
        let mut events = self.events.lock().unwrap();
        events.push(TapEvent { layer, operation, key, start: Instant::now(), end: None, error: None });
        events.len() - 1
    }

    fn end<T>(&self, index: usize, result: &Result<T, veer_provider::ProviderError>) {
        let mut events = self.events.lock().unwrap();
        events[index].end = Some(Instant::now());
        events[index].error = result.as_ref().err().cloned();
    }
}

struct Tap {
    inner: Arc<dyn Provider>,
    log: Arc<TapLog>,
    layer: Layer,
}

impl veer_provider::ProviderWrapper for Tap {
    fn inner(&self) -> &dyn Provider {
        &*self.inner
    }
    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        Box::pin(async move {
            let index = self.log.begin(self.layer, veer_provider::Operation::Read, format!("{name} {rtype}"));
            let result = self.inner.read(name, rtype).await;
            self.log.end(index, &result);
            result
        })
    }
    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            let names: Vec<String> = batch.changes.iter().map(|c| c.name().to_string()).collect();
            let index = self.log.begin(self.layer, veer_provider::Operation::Write, names.join(","));
            let result = self.inner.apply(batch).await;
            self.log.end(index, &result);
            result
        })
    }
}

/// Health changes at given instants: the same schedule for every run of a seed,
/// however long each run's rounds take.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// (milliseconds since the start, health from then on), in time order.
    pub changes: Vec<(u64, Health)>,
}

impl Schedule {
    /// Starting all up, a random flip every `gap` (a range, in ms) until `until_ms`.
    pub fn random(rng: &mut Rng, fleet: &Fleet, gap_ms: (u64, u64), until_ms: u64) -> Self {
        let mut health = Health::all_up(fleet);
        let mut changes = vec![(0, health.clone())];
        let mut t = rng.between(gap_ms.0, gap_ms.1);
        while t < until_ms {
            health.flip_random(rng);
            changes.push((t, health.clone()));
            t += rng.between(gap_ms.0, gap_ms.1);
        }
        Self { changes }
    }

    /// The health at `t_ms`.
    pub fn at(&self, t_ms: u64) -> &Health {
        &self.changes.iter().rev().find(|(at, _)| *at <= t_ms).expect("the schedule starts at 0").1
    }

    /// The health once every change happened.
    pub fn last(&self) -> &Health {
        &self.changes.last().expect("the schedule starts at 0").1
    }
}

/// Rounds every `period` until one plans no write (the provider holds the plan),
/// then `quiet` more rounds that must write nothing (I9). Returns the rounds it
/// took, or why it did not converge within `rounds_max`.
pub async fn converge(
    replica: &Replica,
    world: &World,
    health: &Health,
    period: Duration,
    rounds_max: usize,
) -> Result<usize, String> {
    for round in 1..=rounds_max {
        let outcome = replica.round(world, health).await;
        world.recorder.observe().await;
        if let Ok(Some(outcome)) = outcome
            && outcome.settled
            && outcome.saved
        {
            let writes = world.recorder.writes().len();
            for _ in 0..2 {
                tokio::time::sleep(period).await;
                // A round failed by a provider error writes nothing either.
                let _ = replica.round(world, health).await;
            }
            let extra = world.recorder.writes().len() - writes;
            if extra > 0 {
                return Err(format!("I9: {extra} writes after convergence, in steady state"));
            }
            return Ok(round);
        }
        tokio::time::sleep(period).await;
    }
    Err(format!("no convergence within {rounds_max} rounds"))
}

/// What a fault-free controller publishes for `health` once it settled: a fresh
/// world with the same fleet, one replica, rounds until it converges.
pub async fn settled_answers(
    like: &World,
    health: &Health,
    period: Duration,
) -> Result<BTreeMap<String, Vec<(String, Option<u32>)>>, String> {
    let world = like.sibling(Backend::Memory);
    let replica = Replica::new(&world, "reference", &StackOptions::plain(0), 0);
    replica.lead().await;
    replica.round(&world, &Health::all_up(&world.fleet)).await?;
    tokio::time::sleep(period).await;
    converge(&replica, &world, health, period, 200).await.map_err(|e| format!("the reference run: {e}"))?;
    replica.stop_renewing();
    Ok(world.published().await)
}

/// Landed writes that did not raise the generation by exactly one (a write lost
/// or applied twice would).
pub fn generation_steps(world: &World) -> Vec<String> {
    world
        .recorder
        .writes()
        .iter()
        .filter(|w| w.landed)
        .flat_map(|w| w.generations.iter().map(move |g| (w.at_ms, *g)))
        .filter(|(_, (_, held, written))| *written != held + 1)
        .map(|(at, (_, held, written))| format!("a write at {at} ms took generation {held} to {written}"))
        .collect()
}
