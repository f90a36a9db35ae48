//! Planner benchmark (ARCHITECTURE.md §9: ≤ 50 ms for 100 000 endpoints on one core).
//!
//! One plan over 1 000 weighted records of 100 endpoints each, in steady state
//! with 2 % of the endpoints down (so the velocity, warm-up and guard paths run),
//! and the same at a tenth and a hundredth of the size to show that the cost is
//! linear. Each size also prints one `BENCH_JSON` line for `scripts/bench report`.
//!
//!     cargo bench --bench planner

use criterion::{Criterion, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};
use veer::health::{EndpointHealth, EndpointKey, HealthState, HealthView};
use veer::planner::{ObservedRecord, PlanInput, PlannerState, PolicyInput, Weighting, plan};
use veer::policy::FailoverPolicy;
use veer::time::Timestamp;

const ENDPOINTS_PER_RECORD: usize = 100;

struct World {
    policies: Vec<FailoverPolicy>,
    hashes: Vec<String>,
    health: HealthView,
    observed: BTreeMap<String, ObservedRecord>,
    state: PlannerState,
}

fn policy(index: usize) -> FailoverPolicy {
    let mut yaml = format!(
        "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: r{index} }}\nspec:\n  record: {{ name: r{index}.example.com., type: A }}\n  publishTo: [p]\n  routing: weighted\n  healthCheck: {{ type: tcp, port: 1 }}\n  pools:\n"
    );
    for pool in 0..4 {
        yaml += &format!("    - name: pool{pool}\n      endpoints:\n");
        for e in 0..ENDPOINTS_PER_RECORD / 4 {
            let n = pool * ENDPOINTS_PER_RECORD / 4 + e;
            yaml += &format!(
                "        - {{ id: e{n}, address: 10.{}.{}.{}, capacity: {} }}\n",
                index / 250,
                index % 250,
                n,
                50 + n
            );
        }
    }
    serde_saphyr::from_str(&yaml).expect("benchmark policy parses")
}

fn world(records: usize) -> World {
    let policies: Vec<FailoverPolicy> = (0..records).map(policy).collect();
    let hashes = policies.iter().map(veer::policy::policy_hash).collect();
    let mut health = HealthView::default();
    for p in &policies {
        for (i, (_, e)) in p.endpoints().enumerate() {
            let state = if i % 50 == 7 { HealthState::Down } else { HealthState::Up };
            health.endpoints.insert(
                EndpointKey::new(p.name(), e.id.value.as_str()),
                EndpointHealth {
                    state,
                    vantages_down: if state == HealthState::Down { 3 } else { 0 },
                    vantages_fresh: 3,
                },
            );
        }
    }
    let mut w = World { policies, hashes, health, observed: BTreeMap::new(), state: PlannerState::default() };
    // Reach steady state: publish a few plans, far enough apart for warm-up to finish.
    for round in 0..6u64 {
        let next = {
            let input = w.input_policies();
            let p = plan(&w.input(&input, Timestamp(round * 60_000)));
            w.observed = p.records.iter().map(|r| (r.policy.clone(), r.published())).collect();
            p.state
        };
        w.state = next;
    }
    w
}

impl World {
    fn input_policies(&self) -> Vec<PolicyInput<'_>> {
        self.policies
            .iter()
            .zip(&self.hashes)
            .map(|(p, h)| PolicyInput { policy: p, hash: h, weighting: Weighting::Weighted { max_weight: 255 } })
            .collect()
    }

    fn input<'a>(&'a self, policies: &'a [PolicyInput<'a>], now: Timestamp) -> PlanInput<'a> {
        PlanInput {
            policies,
            health: &self.health,
            observed: &self.observed,
            overrides: &[],
            state: &self.state,
            now,
            seed: 1,
        }
    }
}

/// CPU time this thread has used (user + system), from /proc: on a shared
/// machine wall time also counts other processes' turns.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Median wall time of a plan, and mean CPU time per plan, over `runs` plans.
fn headline(records: usize, runs: u32) -> (Duration, Option<Duration>) {
    let w = world(records);
    let policies = w.input_policies();
    let input = w.input(&policies, Timestamp(3_600_000));
    let cpu_start = thread_cpu();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(plan(black_box(&input)));
            start.elapsed()
        })
        .collect();
    let cpu = cpu_start.zip(thread_cpu()).map(|(a, b)| (b - a) / runs);
    times.sort();
    (times[times.len() / 2], cpu)
}

fn bench(c: &mut Criterion) {
    // About a second of plans per size, so that the 10 ms CPU ticks average out.
    for (records, runs) in [(10, 3_000), (100, 300), (1_000, 30)] {
        let (median, cpu) = headline(records, runs);
        let endpoints = records * ENDPOINTS_PER_RECORD;
        println!(
            "planner: one plan over {endpoints} endpoints in {records} records: {:.2} ms wall (median of {runs}), {} CPU (mean)",
            median.as_secs_f64() * 1000.0,
            cpu.map_or_else(|| "n/a".to_string(), |c| format!("{:.2} ms", c.as_secs_f64() * 1000.0))
        );
        let figures = serde_json::json!({
            "bench": "planner",
            "endpoints": endpoints,
            "records": records,
            "runs": runs,
            "wall_ms_median": median.as_secs_f64() * 1000.0,
            "cpu_ms_mean": cpu.map(|c| c.as_secs_f64() * 1000.0),
        });
        println!("BENCH_JSON {figures}");
    }
    let w = world(1_000);
    let policies = w.input_policies();
    let input = w.input(&policies, Timestamp(3_600_000));
    let mut group = c.benchmark_group("planner");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.bench_function("plan 100000 endpoints in 1000 records", |b| b.iter(|| plan(black_box(&input))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
