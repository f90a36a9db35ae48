//! The API budget: one token bucket per provider account, shared by every record.
//!
//! Providers throttle per account, not per record (Route 53: a few requests per
//! second for the whole account), so a controller that paces each record on its
//! own still floods the API during a mass failover. One [`ApiBudget`] is shared
//! (behind an `Arc`) by every caller of one provider account (invariant I12).
//!
//! The bucket is a GCRA (generic cell rate algorithm): it keeps one "theoretical
//! arrival time" instead of a token count, which makes waiting callers line up in
//! arrival order with no thundering herd. Time is tokio's clock, so tests run it
//! on paused (virtual) time.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Configuration of an API budget.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BudgetConfig {
    /// Sustained calls per second.
    pub calls_per_second: f64,
    /// Calls that may go at once after a quiet period (the bucket size), at least 1.
    pub burst: u32,
}

impl BudgetConfig {
    /// Route 53's documented default of 5 requests per second, no burst above it.
    pub const ROUTE53: BudgetConfig = BudgetConfig { calls_per_second: 5.0, burst: 5 };
}

/// Why a budget configuration is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BudgetError {
    /// The rate is zero, negative or not a number.
    #[error("calls per second must be a positive number, got {0}")]
    BadRate(f64),
    /// The burst is zero.
    #[error("burst must be at least 1")]
    ZeroBurst,
}

/// A token bucket shared by all callers of one provider account.
///
/// Guarantees: over any interval of length `t`, at most `burst + calls_per_second · t`
/// calls are admitted. Caveat: a caller whose [`ApiBudget::acquire`] future is
/// dropped while it waits still consumes its slot; the budget errs towards fewer
/// calls, never more.
#[derive(Debug)]
pub struct ApiBudget {
    config: BudgetConfig,
    /// Time between two calls at the sustained rate.
    interval: Duration,
    /// How far ahead of the sustained schedule a burst may run.
    tolerance: Duration,
    /// Theoretical arrival time of the next call; never decreases.
    tat: Mutex<Option<Instant>>,
    /// Total time callers were told to wait, in nanoseconds (for metrics).
    waited_ns: std::sync::atomic::AtomicU64,
}

impl ApiBudget {
    /// A budget with the given rate and burst.
    pub fn new(config: BudgetConfig) -> Result<Self, BudgetError> {
        if !(config.calls_per_second.is_finite() && config.calls_per_second > 0.0) {
            return Err(BudgetError::BadRate(config.calls_per_second));
        }
        if config.burst == 0 {
            return Err(BudgetError::ZeroBurst);
        }
        let interval = Duration::from_secs_f64(1.0 / config.calls_per_second);
        Ok(Self {
            config,
            interval,
            tolerance: interval * (config.burst - 1),
            tat: Mutex::new(None),
            waited_ns: Default::default(),
        })
    }

    /// The configuration this budget enforces.
    pub fn config(&self) -> BudgetConfig {
        self.config
    }

    /// Reserves the next slot and returns the instant at which it may be used.
    fn reserve(&self, now: Instant) -> Instant {
        let mut tat = self.tat.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = tat.map_or(now, |t| t.max(now));
        let allowed_at = current.checked_sub(self.tolerance).map_or(now, |t| t.max(now));
        let next = current + self.interval;
        debug_assert!(tat.is_none_or(|t| next > t), "the theoretical arrival time never decreases");
        *tat = Some(next);
        allowed_at
    }

    /// Waits until the budget admits one call, then returns.
    pub async fn acquire(&self) {
        let now = Instant::now();
        let allowed_at = self.reserve(now);
        let wait = allowed_at.saturating_duration_since(now);
        self.waited_ns
            .fetch_add(wait.as_nanos().min(u128::from(u64::MAX)) as u64, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep_until(allowed_at).await;
    }

    /// Total time [`ApiBudget::acquire`] has made callers wait so far.
    pub fn total_wait(&self) -> Duration {
        Duration::from_nanos(self.waited_ns.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Admits one call now if the budget allows it; otherwise returns how long to
    /// wait, without reserving anything.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut tat = self.tat.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = tat.map_or(now, |t| t.max(now));
        match current.checked_sub(self.tolerance) {
            Some(allowed_at) if allowed_at > now => Err(allowed_at - now),
            _ => {
                *tat = Some(current + self.interval);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn budget(rate: f64, burst: u32) -> Arc<ApiBudget> {
        Arc::new(ApiBudget::new(BudgetConfig { calls_per_second: rate, burst }).unwrap())
    }

    #[test]
    fn rejects_a_zero_rate_and_a_zero_burst() {
        assert_eq!(
            ApiBudget::new(BudgetConfig { calls_per_second: 0.0, burst: 1 }).unwrap_err(),
            BudgetError::BadRate(0.0)
        );
        assert_eq!(
            ApiBudget::new(BudgetConfig { calls_per_second: 1.0, burst: 0 }).unwrap_err(),
            BudgetError::ZeroBurst
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_and_the_rest_follows_the_rate() {
        let b = budget(5.0, 3);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..8 {
            b.acquire().await;
            at.push((Instant::now() - start).as_millis());
        }
        assert_eq!(at, vec![0, 0, 0, 200, 400, 600, 800, 1000]);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_budget() {
        let b = budget(10.0, 1);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                b.acquire().await;
                Instant::now() - start
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap());
        }
        times.sort();
        assert_eq!(times.last().copied(), Some(Duration::from_millis(1900)));
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(100) - Duration::from_micros(1));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn try_acquire_reports_the_wait_without_reserving() {
        let b = budget(2.0, 1);
        assert_eq!(b.try_acquire(), Ok(()));
        assert_eq!(b.try_acquire(), Err(Duration::from_millis(500)));
        assert_eq!(b.try_acquire(), Err(Duration::from_millis(500)));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(b.try_acquire(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_budget_refills_only_up_to_its_burst() {
        let b = budget(1.0, 2);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(b.try_acquire(), Ok(()));
        assert_eq!(b.try_acquire(), Ok(()));
        assert!(b.try_acquire().is_err());
    }
}
