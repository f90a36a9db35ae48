//! Planner benchmark (SPEC §12: ≤ 50 ms for 100 000 endpoints on one core).
//!
//! One plan over 1 000 weighted records of 100 endpoints each, in steady state
//! with 2 % of the endpoints down (so the velocity, warm-up and guard paths run),
//! and the same at a tenth of the size to show that the cost is linear.
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

/// Median wall time of `runs` plans, printed as the headline figure.
fn headline(records: usize) -> Duration {
    let w = world(records);
    let policies = w.input_policies();
    let input = w.input(&policies, Timestamp(3_600_000));
    let mut times: Vec<Duration> = (0..15)
        .map(|_| {
            let start = Instant::now();
            black_box(plan(black_box(&input)));
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn bench(c: &mut Criterion) {
    for records in [100, 1_000] {
        let median = headline(records);
        println!(
            "planner: one plan over {} endpoints in {records} records: {:.1} ms (median of 15)",
            records * ENDPOINTS_PER_RECORD,
            median.as_secs_f64() * 1000.0
        );
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
