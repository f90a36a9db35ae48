//! When each endpoint is probed (ARCHITECTURE.md §6): every `interval`, at a stable
//! per-endpoint phase, plus a small jitter that differs at every tick, so that
//! probes of many endpoints never align and one endpoint's probes from several
//! replicas do not stay in lock-step.
//!
//! The k-th probe of an endpoint is due at `epoch + phase + k·interval + jitter(k)`
//! with `jitter(k)` in `[0, interval/10)`. The grid is fixed: a probe that runs
//! late (semaphore wait, slow endpoint) or a pause (process stopped, clock
//! jump) never shifts it, and ticks that were missed are skipped rather than
//! replayed, so the probe rate stays constant whatever happens (constant work)
//! and a pause never turns into a burst.
//!
//! Everything here is pure arithmetic on durations since an epoch; the
//! runtime loop lives in [`super::prober`].

use super::EndpointKey;
use std::time::Duration;

/// Jitter is at most this fraction of the interval (1/10): large enough to
/// break alignment, small enough that probe spacing stays close to `interval`.
const JITTER_DIVISOR: u32 = 10;

/// A probe is skipped when it wakes more than `interval / LATE_DIVISOR` after
/// its due time: the process was stopped or starved, and catching up would
/// be a burst.
const LATE_DIVISOR: u32 = 4;

/// One endpoint's probe timetable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    interval: Duration,
    phase: Duration,
    jitter_max: Duration,
    /// Mixed into each tick's jitter (the vantage id's hash).
    seed: u64,
    /// Identifies the endpoint in the jitter sequence.
    endpoint_hash: u64,
}

impl Cadence {
    /// The timetable of `key` for a vantage whose jitter seed is `seed`. The
    /// phase depends only on the policy and endpoint, so it is stable across
    /// restarts and reloads. A zero interval is taken as one millisecond.
    pub fn new(key: &EndpointKey, interval: Duration, seed: u64) -> Self {
        let interval = interval.max(Duration::from_millis(1));
        let endpoint_hash = stable_hash(&[key.policy.as_bytes(), key.endpoint.as_bytes()]);
        let phase = fraction_of(interval, endpoint_hash);
        Self { interval, phase, jitter_max: interval / JITTER_DIVISOR, seed, endpoint_hash }
    }

    /// The probe interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The endpoint's phase within the interval.
    pub fn phase(&self) -> Duration {
        self.phase
    }

    /// How late a wake-up may be before its probe is skipped.
    pub fn late_tolerance(&self) -> Duration {
        self.interval / LATE_DIVISOR
    }

    /// Due time of the `k`-th probe, as an offset from the epoch.
    pub fn due(&self, k: u64) -> Duration {
        let jitter = if self.jitter_max.is_zero() {
            Duration::ZERO
        } else {
            fraction_of(self.jitter_max, mix(self.endpoint_hash ^ mix(self.seed ^ k)))
        };
        self.phase + self.interval.saturating_mul(u32::try_from(k).unwrap_or(u32::MAX)) + jitter
    }

    /// The first tick strictly after `elapsed` since the epoch: where a loop
    /// that woke late, or just started, continues.
    pub fn next_after(&self, elapsed: Duration) -> u64 {
        if elapsed < self.phase {
            return 0;
        }
        let since_phase = (elapsed - self.phase).as_nanos();
        let mut k = u64::try_from(since_phase / self.interval.as_nanos()).unwrap_or(u64::MAX);
        // Jitter is non-negative, so tick k may still lie ahead; find the first that does.
        while k > 0 && self.due(k - 1) > elapsed {
            k -= 1;
        }
        while self.due(k) <= elapsed {
            k += 1;
        }
        k
    }
}

/// `d · (h / 2^64)`: maps a hash uniformly onto `[0, d)`.
fn fraction_of(d: Duration, h: u64) -> Duration {
    let nanos = (d.as_nanos() * u128::from(h)) >> 64;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// FNV-1a over the parts with a separator, then a final mix: stable across
/// builds and platforms (unlike `std`'s hasher), which keeps phases stable
/// across restarts.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(std::iter::once(&0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    mix(h)
}

/// The splitmix64 finaliser: spreads nearby inputs over the whole range.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> EndpointKey {
        EndpointKey::new("api", format!("ep-{i}"))
    }

    #[test]
    fn the_phase_is_stable_for_an_endpoint_and_within_the_interval() {
        let a = Cadence::new(&key(1), Duration::from_secs(1), 7);
        let b = Cadence::new(&key(1), Duration::from_secs(1), 99);
        assert_eq!(a.phase(), b.phase(), "the phase depends on policy and endpoint only");
        assert!(a.phase() < Duration::from_secs(1));
    }

    #[test]
    fn due_times_advance_by_about_one_interval_and_never_go_back() {
        let c = Cadence::new(&key(3), Duration::from_secs(1), 1);
        for k in 0..1_000 {
            let gap = c.due(k + 1) - c.due(k);
            assert!(gap > Duration::from_millis(900) && gap < Duration::from_millis(1_100), "gap {gap:?} at {k}");
        }
    }

    #[test]
    fn jitter_differs_from_tick_to_tick() {
        let c = Cadence::new(&key(5), Duration::from_secs(1), 1);
        let offsets: std::collections::BTreeSet<_> =
            (0..20).map(|k| c.due(k) - c.phase() - Duration::from_secs(k)).collect();
        assert!(offsets.len() > 15, "{offsets:?}");
        assert!(offsets.iter().all(|o| *o < Duration::from_millis(100)));
    }

    #[test]
    fn next_after_is_the_first_tick_strictly_after_the_given_time() {
        let c = Cadence::new(&key(9), Duration::from_millis(700), 3);
        for ms in (0..20_000).step_by(37) {
            let t = Duration::from_millis(ms);
            let k = c.next_after(t);
            assert!(c.due(k) > t);
            assert!(k == 0 || c.due(k - 1) <= t, "tick {k} is not the first after {t:?}");
        }
    }

    #[test]
    fn phases_of_a_thousand_endpoints_spread_over_the_interval() {
        let mut buckets = [0u32; 10];
        for i in 0..1_000 {
            let c = Cadence::new(&key(i), Duration::from_secs(1), 0);
            buckets[(c.phase().as_millis() / 100) as usize] += 1;
        }
        assert!(buckets.iter().all(|b| *b <= 200 && *b >= 50), "{buckets:?}");
    }

    #[test]
    fn stable_hash_separates_parts() {
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
        assert_eq!(stable_hash(&[b"api", b"use1-a"]), stable_hash(&[b"api", b"use1-a"]));
    }
}
