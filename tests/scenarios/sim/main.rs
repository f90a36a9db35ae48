//! The scenarios of ARCHITECTURE.md §8 as seeded, deterministic simulations on virtual
//! time (issue 11, deliverable 1a). Each scenario runs over many seeds; every
//! seed derives its own fleet, schedule and faults, and independent checkers
//! watch what an outsider would see (the provider's answers and ownership
//! records, the store, the calls that reach the provider API).
//!
//! - 1 `racing_writer`: a paused leader resumes after a new leader applied newer
//!   generations and cleaned up the plan history (I1, I2, I3).
//! - 2 `mass_recovery`, 3 `flapping`, 4 `fat_finger`: the planner and the vantage
//!   combiner through `veer simulate`'s engine and its checker (I1, I4–I7),
//!   plus each scenario's own expectations.
//! - 5 `throttling_storm`: the controller round (planner, enactor, store) through
//!   the budget and retry layer against a chaotic provider (I12, full jitter,
//!   convergence, nothing lost).
//! - 6 `crash_restart`: the controller dropped at random points of an apply and
//!   restarted from the store and the provider (I1, I2, convergence).
//! - 7 `provider_outage`: one of two providers is down, hangs, rejects one name,
//!   throttles or answers for some records only, through the production round;
//!   the other keeps the plan, detection holds there, and all converge (I1, I2).
//!
//! `VEER_SIM_SEEDS=N` sets the number of seeds (default 1000; `scripts/test
//! --long` uses 10 000); `VEER_SIM_SEED=S` replays one seed. Failures print the
//! seed. Every hundredth seed runs twice and must give the same result.

mod coordinator;
mod planner_runs;
mod recorder;
mod world;

mod crash_restart;
mod fat_finger;
mod flapping;
mod mass_recovery;
mod provider_outage;
mod racing_writer;
mod throttling_storm;

use std::fmt::Debug;
use std::future::Future;

/// The seeds to run: `VEER_SIM_SEED` alone, else `0..VEER_SIM_SEEDS` (default 1000).
pub fn seeds() -> Vec<u64> {
    match std::env::var("VEER_SIM_SEED") {
        Ok(one) => vec![one.parse().expect("VEER_SIM_SEED is a number")],
        Err(_) => {
            let count: u64 = std::env::var("VEER_SIM_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
            (0..count).collect()
        }
    }
}

/// Runs `scenario` on every seed over two threads and returns each seed's
/// result. A seed fails when the scenario returns an error or panics; every
/// hundredth seed runs twice and must return the same result (determinism).
/// Panics listing every failed seed, with how to replay it.
pub fn run_seeds<T, F>(test: &str, scenario: F) -> Vec<(u64, T)>
where
    T: PartialEq + Debug + Send,
    F: Fn(u64) -> Result<T, String> + Sync,
{
    let seeds = seeds();
    let guarded = |seed: u64| -> Result<T, String> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(seed)))
            .unwrap_or_else(|panic| Err(format!("panicked: {}", panic_text(&panic))))
    };
    let workers = 2;
    let outcomes: Vec<(u64, Result<T, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                let (seeds, guarded) = (&seeds, &guarded);
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for &seed in seeds.iter().skip(worker).step_by(workers) {
                        let mut result = guarded(seed);
                        if seed % 100 == 0
                            && let Ok(first) = &result
                        {
                            match guarded(seed) {
                                Ok(again) if &again == first => {}
                                Ok(again) => {
                                    result = Err(format!(
                                        "not deterministic: the same seed gave\n  {first:?}\nthen\n  {again:?}"
                                    ))
                                }
                                Err(e) => result = Err(format!("not deterministic: the re-run failed: {e}")),
                            }
                        }
                        out.push((seed, result));
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("worker thread")).collect()
    });
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|(seed, r)| {
            r.as_ref().err().map(|e| {
                format!("seed {seed}: {e}\n  replay: VEER_SIM_SEED={seed} cargo test --test scenarios_sim {test}")
            })
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} seeds failed:\n{}", failures.len(), seeds.len(), failures.join("\n"));
    let mut ok: Vec<(u64, T)> =
        outcomes.into_iter().map(|(seed, r)| (seed, r.expect("failures were reported"))).collect();
    ok.sort_by_key(|(seed, _)| *seed);
    ok
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

/// Runs `future` on a fresh single-threaded runtime with paused (virtual) time:
/// timers fire in order as soon as every task waits, so a run is fast and,
/// given its seed, always the same. A run still going after a virtual hour is
/// stuck (a background timer would otherwise keep virtual time going forever).
pub fn on_virtual_time<T>(future: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
        .block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(3_600), future)
                .await
                .unwrap_or_else(|_| Err("stuck: still running after an hour of virtual time".into()))
        })
}

/// A seeded generator for schedules (SplitMix64, through the coordinator's jitter source).
pub struct Rng(veer::coord::Jitter);

impl Rng {
    /// A generator for `seed`; `stream` separates independent uses of one seed.
    pub fn new(seed: u64, stream: u64) -> Self {
        Self(veer::coord::Jitter::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream))
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0.unit()
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.unit() * n as f64) as u64).min(n.saturating_sub(1))
    }
    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}
