//! The Vantage's scheduler on paused tokio time, with a scripted prober in
//! place of the network (the scheduler is what is under test): constant work,
//! spread, no burst after a pause, bounded concurrency, hysteresis in the
//! report, and reloads that keep state.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{Instant, advance, sleep};
use veer::health::probe::{ProbeFailure, ProbeResult, ProbeTarget};
use veer::health::prober::{ProbeFuture, Prober, TokioClock};
use veer::health::{EndpointKey, ProbeVerdict, Vantage, VantageOptions};
use veer::policy::{LoadedPolicy, policy_hash};
use veer::time::Timestamp;

/// Answers from a script: endpoints in `down` fail after the full timeout,
/// others pass after 5 ms. Logs every probe start.
#[derive(Default)]
struct ScriptedProber {
    down: Mutex<HashSet<String>>,
    starts: Mutex<Vec<(EndpointKey, Instant)>>,
    in_flight: AtomicUsize,
    in_flight_max: AtomicUsize,
}

impl ScriptedProber {
    fn set_down(&self, endpoint: &str, down: bool) {
        let mut set = self.down.lock().unwrap();
        if down {
            set.insert(endpoint.to_string());
        } else {
            set.remove(endpoint);
        }
    }
    fn count(&self) -> usize {
        self.starts.lock().unwrap().len()
    }
    fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (key, _) in self.starts.lock().unwrap().iter() {
            *counts.entry(key.endpoint.clone()).or_default() += 1;
        }
        counts
    }
}

struct Shared(Arc<ScriptedProber>);

impl Prober for Shared {
    fn probe(&self, target: Arc<ProbeTarget>) -> ProbeFuture {
        let script = self.0.clone();
        Box::pin(async move {
            script.starts.lock().unwrap().push((target.key.clone(), Instant::now()));
            let now = script.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            script.in_flight_max.fetch_max(now, Ordering::SeqCst);
            let down = script.down.lock().unwrap().contains(&target.key.endpoint);
            let latency = if down { target.timeout } else { Duration::from_millis(5) };
            sleep(latency).await;
            script.in_flight.fetch_sub(1, Ordering::SeqCst);
            let outcome = if down { Err(ProbeFailure::Timeout(target.timeout)) } else { Ok(()) };
            ProbeResult { outcome, latency }
        })
    }
}

fn endpoints(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{{ id: ep-{i}, address: 198.18.{}.{} }}", i / 250, i % 250 + 1)).collect()
}

fn loaded(name: &str, health_check: &str, endpoints: &[String]) -> LoadedPolicy {
    let refs: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    let policy = support::policy(name, health_check, &refs);
    LoadedPolicy { path: PathBuf::from("test.yaml"), hash: policy_hash(&policy), policy }
}

const CHECK: &str = "{ type: http, port: 80, interval: 1s, timeout: 500ms, rise: 2, fall: 3 }";

fn start(prober: &Arc<ScriptedProber>, concurrency: usize) -> Vantage {
    let clock = Arc::new(TokioClock::new(Timestamp::from_millis(1_000_000)));
    let options = VantageOptions { concurrency, ..VantageOptions::default() };
    Vantage::start_with_prober("v1", clock, options, Arc::new(Shared(prober.clone())))
}

#[tokio::test(start_paused = true)]
async fn every_endpoint_is_probed_once_per_interval_whether_up_or_down() {
    let prober = Arc::new(ScriptedProber::default());
    for i in 0..50 {
        prober.set_down(&format!("ep-{i}"), true);
    }
    let vantage = start(&prober, 1024);
    vantage.replace_policies(&[loaded("api", CHECK, &endpoints(100))]);
    sleep(Duration::from_secs(20)).await;
    let counts = prober.counts();
    assert_eq!(counts.len(), 100);
    for (endpoint, count) in &counts {
        assert!((19..=21).contains(count), "{endpoint} probed {count} times in 20 intervals");
    }
    let down: usize = (0..50).map(|i| counts[&format!("ep-{i}")]).sum();
    let up: usize = (50..100).map(|i| counts[&format!("ep-{i}")]).sum();
    assert!(down.abs_diff(up) <= 50, "down endpoints {down} probes, up endpoints {up}: work must not depend on health");
}

#[tokio::test(start_paused = true)]
async fn probe_starts_of_a_thousand_endpoints_spread_across_the_interval() {
    let prober = Arc::new(ScriptedProber::default());
    let epoch = Instant::now();
    let vantage = start(&prober, 4096);
    vantage.replace_policies(&[loaded("api", CHECK, &endpoints(1_000))]);
    sleep(Duration::from_secs(5)).await;
    let mut tenths = [0usize; 10];
    let mut seconds = [0usize; 5];
    for (_, at) in prober.starts.lock().unwrap().iter() {
        let offset = at.duration_since(epoch);
        tenths[(offset.subsec_millis() / 100) as usize] += 1;
        if let Some(s) = seconds.get_mut(offset.as_secs() as usize) {
            *s += 1;
        }
    }
    let mean = tenths.iter().sum::<usize>() / 10;
    assert!(tenths.iter().all(|t| *t <= 2 * mean), "per 100 ms of the interval: {tenths:?}");
    assert!(seconds[1..].iter().all(|s| (900..=1_100).contains(s)), "per second: {seconds:?}");
}

#[tokio::test(start_paused = true)]
async fn a_pause_is_followed_by_no_burst_of_missed_probes() {
    let prober = Arc::new(ScriptedProber::default());
    let vantage = start(&prober, 1024);
    vantage.replace_policies(&[loaded("api", CHECK, &endpoints(200))]);
    sleep(Duration::from_secs(3)).await;
    let before = prober.count();
    // The process is stopped for 30 s: every probe timer is overdue at once.
    advance(Duration::from_secs(30)).await;
    sleep(Duration::from_millis(1)).await;
    let at_wake = prober.count() - before;
    assert!(at_wake <= 5, "{at_wake} probes fired on waking from the pause");
    sleep(Duration::from_secs(1)).await;
    let next_second = prober.count() - before;
    assert!(
        (150..=250).contains(&next_second),
        "{next_second} probes in the interval after the pause for 200 endpoints"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrency_never_exceeds_the_bound() {
    let prober = Arc::new(ScriptedProber::default());
    for i in 0..100 {
        prober.set_down(&format!("ep-{i}"), true);
    }
    let vantage = start(&prober, 10);
    vantage.replace_policies(&[loaded("api", CHECK, &endpoints(100))]);
    sleep(Duration::from_secs(5)).await;
    assert_eq!(prober.in_flight_max.load(Ordering::SeqCst), 10);
}

#[tokio::test(start_paused = true)]
async fn the_report_follows_rise_and_fall_and_stays_fresh() {
    let prober = Arc::new(ScriptedProber::default());
    let vantage = start(&prober, 16);
    vantage.replace_policies(&[loaded("api", CHECK, &endpoints(1))]);
    let key = EndpointKey::new("api", "ep-0");
    assert_eq!(vantage.report().endpoints[&key].verdict, ProbeVerdict::Unknown);
    sleep(Duration::from_millis(2_500)).await;
    let report = vantage.report();
    assert_eq!(report.vantage, "v1");
    assert_eq!(report.endpoints[&key].verdict, ProbeVerdict::Up, "{report:?}");
    assert_eq!(report.endpoints[&key].last_latency_ms, Some(5));
    prober.set_down("ep-0", true);
    sleep(Duration::from_secs(2)).await;
    assert_eq!(vantage.report().endpoints[&key].verdict, ProbeVerdict::Up, "two failures are below fall = 3");
    sleep(Duration::from_secs(2)).await;
    let report = vantage.report();
    let endpoint = &report.endpoints[&key];
    assert_eq!(endpoint.verdict, ProbeVerdict::Down);
    assert_eq!(endpoint.last_failure.as_deref(), Some("timeout 500ms"));
    assert!(report.at.since(endpoint.since) < Duration::from_secs(2));
    let at = report.at;
    sleep(Duration::from_secs(3)).await;
    assert!(vantage.report().at.since(at) >= Duration::from_secs(2), "the report is republished while nothing changes");
}

#[tokio::test(start_paused = true)]
async fn a_reload_keeps_the_state_of_unchanged_endpoints_only() {
    let prober = Arc::new(ScriptedProber::default());
    let vantage = start(&prober, 16);
    let before = endpoints(3);
    vantage.replace_policies(&[loaded("api", CHECK, &before)]);
    sleep(Duration::from_secs(3)).await;
    let up = |v: &Vantage, id: &str| v.report().endpoints.get(&EndpointKey::new("api", id)).map(|e| e.verdict);
    assert!((0..3).all(|i| up(&vantage, &format!("ep-{i}")) == Some(ProbeVerdict::Up)));
    // ep-0 unchanged, ep-1 gets another probe port, ep-2 leaves, ep-9 arrives.
    let after = vec![
        before[0].clone(),
        "{ id: ep-1, address: 198.18.0.2, check: { port: 8080 } }".to_string(),
        "{ id: ep-9, address: 198.18.0.9 }".to_string(),
    ];
    let count_before = prober.counts()["ep-0"];
    vantage.replace_policies(&[loaded("api", CHECK, &after)]);
    let report = vantage.report();
    assert_eq!(report.endpoints.len(), 3);
    assert_eq!(up(&vantage, "ep-0"), Some(ProbeVerdict::Up));
    assert_eq!(up(&vantage, "ep-1"), Some(ProbeVerdict::Unknown));
    assert_eq!(up(&vantage, "ep-2"), None);
    assert_eq!(up(&vantage, "ep-9"), Some(ProbeVerdict::Unknown));
    sleep(Duration::from_secs(3)).await;
    let count_after = prober.counts()["ep-0"];
    assert!((2..=4).contains(&(count_after - count_before)), "ep-0 keeps its cadence across the reload");
    assert_eq!(vantage.endpoint_count(), 3);
}

#[tokio::test(start_paused = true)]
async fn new_rise_and_fall_apply_without_losing_the_verdict() {
    let prober = Arc::new(ScriptedProber::default());
    let vantage = start(&prober, 16);
    vantage.replace_policies(&[loaded("api", CHECK, &endpoints(1))]);
    sleep(Duration::from_secs(3)).await;
    let key = EndpointKey::new("api", "ep-0");
    assert_eq!(vantage.report().endpoints[&key].verdict, ProbeVerdict::Up);
    let faster = "{ type: http, port: 80, interval: 1s, timeout: 500ms, rise: 1, fall: 1 }";
    vantage.replace_policies(&[loaded("api", faster, &endpoints(1))]);
    assert_eq!(vantage.report().endpoints[&key].verdict, ProbeVerdict::Up);
    prober.set_down("ep-0", true);
    sleep(Duration::from_millis(1_700)).await;
    assert_eq!(vantage.report().endpoints[&key].verdict, ProbeVerdict::Down);
}
