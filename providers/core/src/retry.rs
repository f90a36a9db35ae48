//! The one retry layer: exponential backoff with full jitter, and a retry budget.
//!
//! Retries happen here and nowhere else (provider crates never retry on their own),
//! so that a failure is not multiplied by nested retry loops. Full jitter
//! (`sleep = rand(0, min(cap, base·2^n))`) spreads the retries of many callers over
//! the whole window instead of synchronising them; the retry budget stops retries
//! from amplifying load when most calls fail (ARCHITECTURE.md §6).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::sync::Mutex;
use std::time::Duration;

/// Backoff parameters of the retry layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetryPolicy {
    /// The first ceiling (attempt 0 sleeps up to `base`).
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
    /// Attempts in all, the first included; 1 means no retry.
    pub attempts_max: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { base: Duration::from_millis(100), cap: Duration::from_secs(10), attempts_max: 5 }
    }
}

impl RetryPolicy {
    /// The delays between attempts, drawn from a generator seeded with `seed`.
    pub fn delays(&self, seed: u64) -> FullJitter {
        FullJitter::new(self.base, self.cap, seed)
    }
}

/// Full-jitter delays: the n-th item (from 0) is uniform in `[0, min(cap, base·2^n)]`.
///
/// Endless; bound it with [`Iterator::take`] or [`RetryPolicy::attempts_max`].
/// Seeded, so that tests and simulations replay the same delays.
#[derive(Debug)]
pub struct FullJitter {
    base: Duration,
    cap: Duration,
    attempt: u32,
    rng: StdRng,
}

impl FullJitter {
    /// A generator starting at attempt 0.
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Self {
        Self { base, cap, attempt: 0, rng: StdRng::seed_from_u64(seed) }
    }

    /// The ceiling of attempt `n`: `min(cap, base·2^n)`, without overflow.
    pub fn ceiling(base: Duration, cap: Duration, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        base.checked_mul(factor).map_or(cap, |d| d.min(cap))
    }
}

impl Iterator for FullJitter {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let ceiling = Self::ceiling(self.base, self.cap, self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Some(Duration::from_nanos(self.rng.random_range(0..=nanos)))
    }
}

/// A retry budget shared by the callers of one provider: every call deposits a
/// fraction of a token, every retry withdraws a whole one. When most calls fail the
/// tokens run out and failures are returned instead of retried, so retries add at
/// most `deposit_per_call` extra load (plus the initial reserve) however bad the outage.
#[derive(Debug)]
pub struct RetryBudget {
    tokens: Mutex<f64>,
    tokens_max: f64,
    deposit_per_call: f64,
}

impl RetryBudget {
    /// A full budget of `tokens_max` retries, refilled by `deposit_per_call` per call.
    pub fn new(tokens_max: u32, deposit_per_call: f64) -> Self {
        let tokens_max = f64::from(tokens_max);
        Self { tokens: Mutex::new(tokens_max), tokens_max, deposit_per_call: deposit_per_call.max(0.0) }
    }

    /// Records a first attempt.
    pub fn deposit(&self) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        *tokens = (*tokens + self.deposit_per_call).min(self.tokens_max);
    }

    /// Takes one retry from the budget; false when it is exhausted.
    pub fn try_withdraw(&self) -> bool {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Default for RetryBudget {
    /// Ten retries in reserve, one more per ten calls.
    fn default() -> Self {
        Self::new(10, 0.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap_without_overflow() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(5));
        let ceilings: Vec<_> = (0..8).map(|n| FullJitter::ceiling(base, cap, n).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(FullJitter::ceiling(base, cap, 500), cap);
        assert_eq!(FullJitter::ceiling(Duration::MAX, cap, 3), cap);
    }

    #[test]
    fn delays_are_reproducible_from_the_seed() {
        let a: Vec<_> = FullJitter::new(Duration::from_millis(10), Duration::from_secs(1), 7).take(20).collect();
        let b: Vec<_> = FullJitter::new(Duration::from_millis(10), Duration::from_secs(1), 7).take(20).collect();
        let c: Vec<_> = FullJitter::new(Duration::from_millis(10), Duration::from_secs(1), 8).take(20).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn full_jitter_is_uniform_over_the_whole_window() {
        // Attempt 3 with base 100 ms has the window [0, 800 ms]. Draw it many times
        // (one fresh generator per sample, seeds 0..N) and check the distribution:
        // mean near 400 ms, every decile populated, nothing above the ceiling.
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(60));
        let samples: Vec<f64> =
            (0..4000u64).map(|seed| FullJitter::new(base, cap, seed).nth(3).unwrap().as_secs_f64()).collect();
        assert!(samples.iter().all(|&s| (0.0..=0.8).contains(&s)));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((mean - 0.4).abs() < 0.03, "mean {mean}");
        let mut deciles = [0usize; 10];
        for s in &samples {
            deciles[((s / 0.08) as usize).min(9)] += 1;
        }
        for (i, count) in deciles.iter().enumerate() {
            assert!((300..=500).contains(count), "decile {i} has {count} of 4000");
        }
        let below_a_tenth = samples.iter().filter(|&&s| s < 0.08).count();
        assert!(below_a_tenth > 0, "full jitter also retries almost at once");
    }

    #[test]
    fn the_retry_budget_runs_out_and_refills_with_calls() {
        let budget = RetryBudget::new(2, 0.5);
        assert!(budget.try_withdraw());
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw());
        budget.deposit();
        assert!(!budget.try_withdraw());
        budget.deposit();
        assert!(budget.try_withdraw());
        for _ in 0..100 {
            budget.deposit();
        }
        assert!(budget.try_withdraw() && budget.try_withdraw() && !budget.try_withdraw());
    }
}
