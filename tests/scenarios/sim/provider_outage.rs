//! Scenario 7 on virtual time: one provider fails while the other keeps working,
//! through the production round ([`Reconciler`]) with two simulated providers and
//! the simulated store. Per seed: two to four records, each published to `good`,
//! to `bad`, or to both (in either order); `bad` fails for a while in one of five
//! ways — down (fails fast), hangs, rejects one name every time, throttles with a
//! five-minute `Retry-After`, or answers for some records only — while endpoints
//! fail and return.
//!
//! The checkers look at what each provider holds after every round:
//! - isolation: every record at `good` holds the round's plan (its answers) at
//!   the end of every round, whatever `bad` does;
//! - detection: an endpoint down for longer than one round plus the round's
//!   deadline is not published at `good`;
//! - I1: no provider ever holds an empty answer set for a name it published;
//! - I2: the ownership generation at each provider never goes backwards;
//! - convergence: once `bad` recovers, every provider holds the plan and a round
//!   has nothing to write.

use super::coordinator::{SimCoordinator, SimStore};
use super::world::Health;
use super::{Rng, on_virtual_time, run_seeds};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use veer::controller::Setup;
use veer::controller::providers::ProviderSet;
use veer::controller::reconcile::{Reconciler, RoundInput, Writer, round_deadline};
use veer::controller::state::StateSource;
use veer::coord::{Coordinator, Timings};
use veer::enactor::AlwaysLeader;
use veer::policy::source::DocumentText;
use veer::time::Timestamp;
use veer_provider::conformance::MemoryProvider;
use veer_provider::{ChangeBatch, Observed, Provider, ProviderError, ProviderFuture, RecordName, RecordType};

const ZONE: &str = "outage.test.";
const PERIOD: Duration = Duration::from_secs(1);
const FAULT_FROM: Duration = Duration::from_secs(5);
const FAULT_UNTIL: Duration = Duration::from_secs(35);

/// How `bad` fails while the fault is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Down,
    Hangs,
    RejectsOne,
    Throttles,
    Partial,
}

const FAULTS: [Fault; 5] = [Fault::Down, Fault::Hangs, Fault::RejectsOne, Fault::Throttles, Fault::Partial];

/// A memory provider that fails as [`Fault`] says while switched on.
struct Faulty {
    inner: Arc<dyn Provider>,
    fault: Fault,
    /// 1 while the fault is on.
    on: AtomicU8,
    recovered: tokio::sync::Notify,
    /// The name `RejectsOne` rejects, and the names `Partial` fails for.
    victims: BTreeSet<String>,
}

impl Faulty {
    fn on(&self) -> bool {
        self.on.load(Ordering::SeqCst) == 1
    }

    fn recover(&self) {
        self.on.store(0, Ordering::SeqCst);
        self.recovered.notify_waiters();
    }

    /// Waits (a hung call) until the fault ends, then answers.
    async fn hang(&self) {
        while self.on() {
            let recovered = self.recovered.notified();
            if !self.on() {
                break;
            }
            recovered.await;
        }
    }

    fn failure(&self, names: &[&RecordName], write: bool) -> Option<ProviderError> {
        if !self.on() {
            return None;
        }
        let hit = names.iter().any(|n| self.victims.contains(n.as_str()));
        match self.fault {
            Fault::Down => Some(ProviderError::Unavailable("simulated outage: connection refused".into())),
            Fault::Throttles => Some(ProviderError::Throttled { retry_after: Some(Duration::from_secs(300)) }),
            Fault::RejectsOne if write && hit => Some(ProviderError::Rejected("simulated: conflicting record".into())),
            Fault::Partial if hit => {
                Some(ProviderError::Unavailable("simulated: this record's API shard is down".into()))
            }
            _ => None,
        }
    }
}

impl veer_provider::ProviderWrapper for Faulty {
    fn inner(&self) -> &dyn Provider {
        &*self.inner
    }

    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        Box::pin(async move {
            if self.on() && self.fault == Fault::Hangs {
                self.hang().await;
            }
            match self.failure(&[name], false) {
                Some(e) => Err(e),
                None => self.inner.read(name, rtype).await,
            }
        })
    }

    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            if self.on() && self.fault == Fault::Hangs {
                self.hang().await;
            }
            let names: Vec<&RecordName> = batch.changes.iter().map(|c| c.name()).collect();
            match self.failure(&names, true) {
                Some(e) => Err(e),
                None => self.inner.apply(batch).await,
            }
        })
    }
}

/// One generated record: its name, where it is published, its endpoints.
#[derive(Debug, Clone)]
struct Record {
    policy: String,
    targets: Vec<&'static str>,
    endpoints: Vec<(String, String)>,
}

impl Record {
    fn name(&self) -> RecordName {
        RecordName::parse(&format!("{}.{ZONE}", self.policy)).expect("a valid name")
    }

    fn yaml(&self) -> String {
        let endpoints: Vec<String> =
            self.endpoints.iter().map(|(id, address)| format!("{{ id: {id}, address: {address} }}")).collect();
        format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: {} }}\nspec:\n  \
             record: {{ name: {}, type: A, ttl: 30 }}\n  publishTo: [{}]\n  routing: weighted\n  \
             pools: [{{ name: main, endpoints: [{}] }}]\n  \
             healthCheck: {{ type: tcp, port: 80, interval: 1s, timeout: 500ms }}\n  \
             shift: {{ maxRemovePercent: 100, window: 5s, maxChangesPerHour: 3600 }}\n  \
             warmup: {{ stages: [50, 100], hold: 2s }}\n  \
             guards: {{ minHealthyEndpoints: 1, minCapacityPercent: 0 }}\n",
            self.policy,
            self.name(),
            self.targets.join(", "),
            endpoints.join(", ")
        )
    }
}

fn setup(records: &[Record]) -> Setup {
    let text = format!(
        "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: sim\nvantage: v1\n\
         providers:\n  good: {{ type: embedded, zones: [{ZONE}] }}\n  bad: {{ type: embedded, zones: [{ZONE}] }}\n"
    );
    let config =
        veer::config::parse(Path::new("sim/veer.yaml"), &DocumentText { text, first_line: 1 }, &BTreeMap::new())
            .unwrap_or_else(|d| panic!("generated config: {d:?}"));
    let text: Vec<String> = records.iter().map(Record::yaml).collect();
    let loaded = veer::policy::load_text(Path::new("sim/policies.yaml"), &text.join("---\n"), Some(&config));
    assert!(loaded.is_valid(), "generated policies: {:#?}", loaded.diagnostics);
    Setup { config, policies: loaded.policies, drills: Vec::new() }
}

/// What a run saw, for determinism checks and the summary.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    fault: Fault,
    rounds: usize,
    converged_after: Duration,
}

/// The live addresses `provider` holds for `name` (`None`: nothing published).
async fn held(provider: &dyn Provider, name: &RecordName) -> (Option<BTreeSet<String>>, u64) {
    let observed = provider.read(name, RecordType::A).await.expect("the raw memory provider answers");
    let generation = observed.ownership.as_ref().map_or(0, |o| o.generation);
    let answers = observed.records.as_ref().map(|r| r.live_answers().map(|a| a.value.clone()).collect());
    (answers, generation)
}

fn run(seed: u64) -> Result<Run, String> {
    on_virtual_time(async move {
        let mut rng = Rng::new(seed, 7);
        let fault = *rng.pick(&FAULTS);
        let placements: [&[&'static str]; 4] = [&["good", "bad"], &["bad", "good"], &["good"], &["bad"]];
        let count = rng.between(2, 4) as usize;
        let records: Vec<Record> = (0..count)
            .map(|r| Record {
                policy: format!("r{r}"),
                targets: rng.pick(&placements).to_vec(),
                endpoints: (0..rng.between(2, 4))
                    .map(|e| (format!("e{e}"), format!("192.0.2.{}", 10 + 10 * r as u64 + e)))
                    .collect(),
            })
            .collect();
        let victims: BTreeSet<String> =
            records.iter().filter(|_| rng.chance(0.5)).map(|r| r.name().to_string()).take(1).collect();
        let setup = Arc::new(setup(&records));
        let zone = vec![RecordName::parse(ZONE).unwrap()];
        let good: Arc<dyn Provider> = Arc::new(MemoryProvider::new(zone.clone()));
        let bad_raw: Arc<dyn Provider> = Arc::new(MemoryProvider::new(zone));
        let bad = Arc::new(Faulty {
            inner: bad_raw.clone(),
            fault,
            on: AtomicU8::new(0),
            recovered: tokio::sync::Notify::new(),
            victims,
        });
        let providers = ProviderSet {
            providers: BTreeMap::from([("good".to_string(), good.clone()), ("bad".to_string(), bad.clone() as _)]),
            embedded: BTreeMap::new(),
            servers: Vec::new(),
            budgets: BTreeMap::new(),
        };
        let raw: BTreeMap<&str, Arc<dyn Provider>> = BTreeMap::from([("good", good), ("bad", bad_raw)]);
        let timings = Timings::new(Duration::from_secs(3), Duration::from_secs(2), Duration::from_millis(500)).unwrap();
        let coordinator = SimCoordinator::new("r1", SimStore::shared(), timings, seed);
        let epoch = coordinator.campaign().await.map_err(|e| e.to_string())?;
        let _renewing = coordinator.keep_renewing();
        let coordinator: Arc<dyn Coordinator> = coordinator;
        let writer = Writer {
            coordinator: coordinator.clone(),
            epoch,
            fence: Arc::new(AlwaysLeader { epoch: epoch.0 }),
            expected_write: Duration::from_secs(1),
            history_keep: 10,
        };
        let mut reconciler = Reconciler::new(veer::coord::Jitter::new(seed));
        let keys: Vec<_> = records
            .iter()
            .flat_map(|r| r.endpoints.iter().map(|(id, _)| veer::health::EndpointKey::new(&r.policy, id)))
            .collect();
        let mut health = Health(keys.iter().map(|k| (k.clone(), true)).collect());
        let mut down_since: BTreeMap<veer::health::EndpointKey, Duration> = BTreeMap::new();
        let started = tokio::time::Instant::now();
        let bound = PERIOD + round_deadline(&setup) + PERIOD;
        let mut published: BTreeSet<(&str, String)> = BTreeSet::new();
        let mut generations: BTreeMap<(&str, String), u64> = BTreeMap::new();
        let mut next_flip = Duration::from_secs(3);
        let mut rounds = 0;
        let mut converged_after = None;
        let store = StateSource::Coordinator(coordinator.clone());
        while started.elapsed() < Duration::from_secs(1_200) {
            let t = started.elapsed();
            if t >= FAULT_FROM && t < FAULT_UNTIL && !bad.on() && rounds > 0 && converged_after.is_none() {
                bad.on.store(1, Ordering::SeqCst);
            }
            if t >= FAULT_UNTIL && bad.on() {
                bad.recover();
            }
            // Endpoints fail and return until the fault ends; then everything is up.
            if t >= FAULT_UNTIL {
                for up in health.0.values_mut() {
                    *up = true;
                }
            } else if t >= next_flip {
                health.flip_random(&mut rng);
                next_flip = t + Duration::from_millis(rng.between(2_000, 6_000));
            }
            for (key, up) in &health.0 {
                if *up {
                    down_since.remove(key);
                } else {
                    down_since.entry(key.clone()).or_insert(t);
                }
            }
            let view = health.view();
            let input = RoundInput {
                setup: &setup,
                providers: &providers,
                health: &view,
                state: &store,
                now: Timestamp(t.as_millis() as u64 + 1_000_000),
                writer: Some(&writer),
            };
            let report = reconciler.round(input).await.map_err(|e| format!("round at {t:?}: {e:#}"))?;
            rounds += 1;
            let at = format!("at {:.1}s ({fault:?})", t.as_secs_f64());
            for (record, loaded) in report.planned.plan.records.iter().zip(&setup.policies) {
                let planned: BTreeSet<String> =
                    record.answers.iter().filter(|a| a.weight > 0).map(|a| a.address.clone()).collect();
                for target in &loaded.policy.spec.publish_to.value {
                    let provider = target.value.as_str();
                    let (answers, generation) = held(&*raw[provider], &record.record).await;
                    let key = (provider, record.record.to_string());
                    match &answers {
                        Some(a) if !a.is_empty() => {
                            published.insert(key.clone());
                        }
                        _ if published.contains(&key) => {
                            return Err(format!("I1: {} is empty at {provider} {at}", record.record));
                        }
                        _ => {}
                    }
                    let before = generations.insert(key.clone(), generation).unwrap_or(0);
                    if generation < before {
                        return Err(format!(
                            "I2: {} went from generation {before} to {generation} at {provider} {at}",
                            record.record
                        ));
                    }
                    if provider == "good" && !planned.is_empty() && answers.as_ref() != Some(&planned) {
                        return Err(format!(
                            "isolation: {} at good holds {answers:?}, the round planned {planned:?} {at}",
                            record.record
                        ));
                    }
                    if provider == "good" {
                        for (key, since) in &down_since {
                            let endpoint = records.iter().find(|r| r.policy == key.policy).and_then(|r| {
                                r.endpoints.iter().find(|(id, _)| *id == key.endpoint).map(|(_, address)| address)
                            });
                            if key.policy == record.policy
                                && t - *since > bound
                                && endpoint.is_some_and(|a| answers.as_ref().is_some_and(|set| set.contains(a)))
                            {
                                return Err(format!(
                                    "detection: {} is down since {:.1}s and still published at good {at}; \
                                     the plan held {:?}, targets {:?}, unread {:?}",
                                    key.endpoint,
                                    since.as_secs_f64(),
                                    record.held.iter().map(|h| h.reason.as_str()).collect::<Vec<_>>(),
                                    records.iter().find(|r| r.policy == record.policy).map(|r| &r.targets),
                                    report.unread,
                                ));
                            }
                        }
                    }
                }
            }
            if t >= FAULT_UNTIL && report.converged() && report.planned.intents.is_empty() && report.late.is_empty() {
                let mut every = true;
                for (record, loaded) in report.planned.plan.records.iter().zip(&setup.policies) {
                    let planned: BTreeSet<String> =
                        record.answers.iter().filter(|a| a.weight > 0).map(|a| a.address.clone()).collect();
                    for target in &loaded.policy.spec.publish_to.value {
                        let (answers, _) = held(&*raw[target.value.as_str()], &record.record).await;
                        every &= planned.is_empty() || answers.as_ref() == Some(&planned);
                    }
                }
                if every {
                    converged_after = Some(t.saturating_sub(FAULT_UNTIL));
                    break;
                }
            }
            // After the fault, rounds come less often: a quarantine or a Retry-After
            // may take minutes to run out.
            tokio::time::sleep(if t < FAULT_UNTIL + Duration::from_secs(30) { PERIOD } else { PERIOD * 5 }).await;
        }
        let converged_after =
            converged_after.ok_or_else(|| format!("never converged after {fault:?} ended ({rounds} rounds)"))?;
        Ok(Run { fault, rounds, converged_after })
    })
}

#[test]
fn a_failing_provider_never_holds_up_the_others_and_everything_converges_once_it_recovers() {
    let results = run_seeds("provider_outage", run);
    let mut by_fault: BTreeMap<String, (usize, Duration)> = BTreeMap::new();
    for (_, r) in &results {
        let entry = by_fault.entry(format!("{:?}", r.fault)).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(r.converged_after);
    }
    for fault in FAULTS {
        assert!(
            by_fault.contains_key(&format!("{fault:?}")) || results.len() < 50,
            "every fault was drawn: {by_fault:?}"
        );
    }
    let summary: Vec<String> = by_fault
        .iter()
        .map(|(f, (n, worst))| format!("{f}: {n} seeds, converged ≤ {:.0}s", worst.as_secs_f64()))
        .collect();
    println!("{} seeds: {}", results.len(), summary.join("; "));
}
