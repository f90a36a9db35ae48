//! Time as veer's core sees it: a [`Timestamp`] in milliseconds, handed in by a
//! [`Clock`]. The planner and the health logic never read a clock themselves
//! (ARCHITECTURE.md §1), so simulations run them on virtual time.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Milliseconds on the controller's timeline (Unix epoch for [`SystemClock`],
/// zero at the start of a run for virtual clocks). Persisted in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Builds a timestamp from milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }
    /// Milliseconds since the timeline's origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }
    /// `self + d`, saturating.
    #[allow(clippy::should_implement_trait)] // saturating, unlike `Add`
    pub fn add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.as_millis().min(u128::from(u64::MAX)) as u64))
    }
    /// `self - d`, saturating at the origin.
    #[allow(clippy::should_implement_trait)] // saturating, unlike `Sub`
    pub fn sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(d.as_millis().min(u128::from(u64::MAX)) as u64))
    }
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Timestamp {
    /// RFC 3339 in UTC to the second (`2026-11-22T06:56:39Z`), for people and JSON;
    /// only meaningful on the wall-clock timeline of [`SystemClock`].
    pub fn rfc3339(self) -> String {
        let seconds = i64::try_from(self.0 / 1000).unwrap_or(i64::MAX);
        jiff::Timestamp::from_second(seconds).map_or_else(|_| format!("@{}ms", self.0), |t| t.to_string())
    }
}

/// A source of [`Timestamp`]s. Production uses [`SystemClock`]; tests and
/// simulations use [`ManualClock`].
pub trait Clock: Send + Sync {
    /// The current time; never goes backwards for one clock.
    fn now(&self) -> Timestamp;
}

/// Wall-clock milliseconds since the Unix epoch, made monotonic: a step back of
/// the system clock holds time still instead of moving it backwards.
#[derive(Debug, Default)]
pub struct SystemClock {
    last: AtomicU64,
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let wall =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let previous = self.last.fetch_max(wall, Ordering::SeqCst);
        Timestamp(wall.max(previous))
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self { now: AtomicU64::new(start.0) }
    }
    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.now.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new(Timestamp(1_000));
        assert_eq!(clock.now(), Timestamp(1_000));
        clock.advance(Duration::from_millis(250));
        assert_eq!(clock.now(), Timestamp(1_250));
        assert_eq!(clock.now().since(Timestamp(1_000)), Duration::from_millis(250));
    }

    #[test]
    fn timestamps_print_as_rfc3339_to_the_second() {
        assert_eq!(Timestamp(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(1_795_330_599_999).rfc3339(), "2026-11-22T06:56:39Z");
    }

    #[test]
    fn system_clock_never_goes_backwards() {
        let clock = SystemClock::default();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
    }
}
