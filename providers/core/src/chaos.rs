//! Fault injection: [`Chaotic`] wraps a provider and, seeded and per operation
//! (read or write), answers a share of the calls with the provider's throttle
//! error, a 5xx-like transient error, a timeout, a delayed response, or a write
//! that lands but whose response is lost. Tests use it, and `veer run --chaos`
//! uses it for game days against a test zone.
//!
//! # Where it goes
//! Inside [`crate::Resilient`] (and inside any metering), exactly where a real
//! provider's failures appear: the API budget, the one retry layer and the
//! re-read after an ambiguous failure then see what they would see from a
//! misbehaving provider. Outside `Resilient` the faults would bypass the very
//! layer they are meant to exercise.
//!
//! # What each fault means (as the HTTP providers classify real failures)
//! - `throttled`: `Throttled { retry_after }`, nothing reaches the provider.
//! - `unavailable`: a 5xx before anything happened, `Unavailable`.
//! - `timeout`: the call hangs for `timeout_after`, then fails. A read fails as
//!   `Unavailable`; a write as `Ambiguous`, and it landed or not (seeded, one in two).
//! - `lost_response`: the call reaches the provider and is processed, then its
//!   answer is lost: `Ambiguous` for a write (it may have landed, and usually
//!   did), `Unavailable` for a read.
//! - `delayed`: the answer arrives late, by up to `delay_max` (uniform).
//! - `stalled`: the call waits exactly `stall_for` *before* it reaches the
//!   provider, as a caller held up by its own retries or a long pause would:
//!   the racing writer of ARCHITECTURE.md §5 sends a change it built long ago. Unlike
//!   `delayed`, nothing has happened at the provider while it waits. A stalled
//!   write is in transit: it reaches the provider even if its caller gave up
//!   waiting (a deadline cannot recall a request), and the observer hears what
//!   the provider answered.
//!
//! # Watching it happen
//! [`Chaotic::observed`] hands every injected fault to a callback when the call
//! arrives (before any wait), with the generations a write would publish, so a
//! game day can log it and a test can act inside the window a fault opens.
//!
//! # Determinism
//! Given the seed, the fault of a call depends only on its operation, the names
//! it touches, how many earlier calls of that operation touched the same names,
//! and which rule's window is open — not on how calls for different names
//! interleave. On virtual time (tokio paused) a run therefore replays exactly.
//! Windows are measured from the wrapper's creation on tokio's clock.

use crate::provider::{ChangeBatch, Observed, Provider, ProviderFuture};
use crate::{ProviderError, RecordName, RecordType};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The two kinds of provider call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// [`Provider::read`].
    Read,
    /// [`Provider::apply`].
    Write,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::Read => "read",
            Operation::Write => "write",
        })
    }
}

/// What share of calls (each from 0 to 1) gets which fault. At most one fault
/// per call, so the shares add up to at most 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultRates {
    /// Share answered `Throttled`.
    pub throttled: f64,
    /// The `retry_after` hint of throttled answers.
    pub retry_after: Option<Duration>,
    /// Share answered `Unavailable` (a 5xx before anything happened).
    pub unavailable: f64,
    /// Share that hangs for `timeout_after`, then fails.
    pub timeout: f64,
    /// How long a timed-out call hangs.
    pub timeout_after: Duration,
    /// Share processed by the provider whose answer is then lost.
    pub lost_response: f64,
    /// Share answered late.
    pub delayed: f64,
    /// The longest delay of a late answer.
    pub delay_max: Duration,
    /// Share that waits `stall_for` before reaching the provider.
    pub stalled: f64,
    /// How long a stalled call waits before it is sent (exactly).
    pub stall_for: Duration,
}

impl FaultRates {
    /// No fault at all (timeouts of 5 s, delays of up to 1 s and stalls of 1 s once shares are set).
    pub const NONE: FaultRates = FaultRates {
        throttled: 0.0,
        retry_after: None,
        unavailable: 0.0,
        timeout: 0.0,
        timeout_after: Duration::from_secs(5),
        lost_response: 0.0,
        delayed: 0.0,
        delay_max: Duration::from_secs(1),
        stalled: 0.0,
        stall_for: Duration::from_secs(1),
    };

    fn shares(&self) -> [(&'static str, f64); 6] {
        [
            ("throttled", self.throttled),
            ("unavailable", self.unavailable),
            ("timeout", self.timeout),
            ("lostResponse", self.lost_response),
            ("delayed", self.delayed),
            ("stalled", self.stalled),
        ]
    }

    /// The share of calls that get some fault.
    pub fn total(&self) -> f64 {
        self.shares().iter().map(|(_, s)| s).sum()
    }

    /// Each share is within 0–1 and together at most 1.
    pub fn check(&self) -> Result<(), ChaosError> {
        for (name, share) in self.shares() {
            if !(0.0..=1.0).contains(&share) {
                return Err(ChaosError::BadShare { name, share });
            }
        }
        if self.total() > 1.0 + 1e-9 {
            return Err(ChaosError::SharesAboveOne(self.total()));
        }
        Ok(())
    }
}

/// When and to what a [`FaultRates`] applies.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// Reads get faults.
    pub reads: bool,
    /// Writes get faults.
    pub writes: bool,
    /// The window opens this long after the wrapper was created.
    pub from: Duration,
    /// The window closes this long after the wrapper was created (`None`: never).
    pub until: Option<Duration>,
    /// The faults while the window is open.
    pub rates: FaultRates,
}

impl FaultRule {
    /// `rates` on every call, for the wrapper's whole life.
    pub fn always(rates: FaultRates) -> Self {
        Self { reads: true, writes: true, from: Duration::ZERO, until: None, rates }
    }

    /// Whether the rule applies to `operation` at `elapsed` since the start.
    pub fn applies(&self, operation: Operation, elapsed: Duration) -> bool {
        let operation_matches = match operation {
            Operation::Read => self.reads,
            Operation::Write => self.writes,
        };
        operation_matches && elapsed >= self.from && self.until.is_none_or(|until| elapsed < until)
    }

    /// The rates are valid and the window is not empty.
    pub fn check(&self) -> Result<(), ChaosError> {
        if self.until.is_some_and(|until| until <= self.from) {
            return Err(ChaosError::EmptyWindow);
        }
        self.rates.check()
    }
}

/// Why a fault rule is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChaosError {
    /// A share outside 0–1.
    #[error("`{name}` must be a share between 0 and 1, got {share}")]
    BadShare {
        /// Which share.
        name: &'static str,
        /// Its value.
        share: f64,
    },
    /// The shares add up to more than every call.
    #[error("the fault shares add up to {0}, more than every call")]
    SharesAboveOne(f64),
    /// The window closes before it opens.
    #[error("the window closes before it opens")]
    EmptyWindow,
}

/// A fault injected into one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// Answered `Throttled` without reaching the provider.
    Throttled,
    /// Answered `Unavailable` without reaching the provider.
    Unavailable,
    /// Hung, then failed; for a write, whether it reached the provider first.
    Timeout {
        /// The write was processed before the timeout.
        landed: bool,
    },
    /// Processed by the provider; the answer was lost.
    LostResponse,
    /// Answered late by this much.
    Delayed(Duration),
    /// Held this long before it was sent to the provider.
    Stalled(Duration),
}

impl std::fmt::Display for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Injected::Throttled => f.write_str("throttled"),
            Injected::Unavailable => f.write_str("unavailable (5xx)"),
            Injected::Timeout { landed: true } => f.write_str("timeout (the write lands)"),
            Injected::Timeout { landed: false } => f.write_str("timeout"),
            Injected::LostResponse => f.write_str("lost response"),
            Injected::Delayed(by) => write!(f, "delayed by {}ms after the provider answered", by.as_millis()),
            Injected::Stalled(by) => write!(f, "stalled {}ms before it reaches the provider", by.as_millis()),
        }
    }
}

/// One call that went through a [`Chaotic`] (with [`Chaotic::recording`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosCall {
    /// When the call arrived (tokio time).
    pub at: Instant,
    /// Read or write.
    pub operation: Operation,
    /// The fault injected, if any.
    pub injected: Option<Injected>,
    /// For a write, the generations its ownership records would publish (empty for reads).
    pub generations: Vec<u64>,
    /// For a stalled write, what the provider answered once the write reached it
    /// (reported in a second call of the observer); `None` when the call arrives.
    pub delivered: Option<Result<(), ProviderError>>,
}

/// Called with every call that gets a fault, when the call arrives (see [`Chaotic::observed`]).
pub type FaultObserver = Arc<dyn Fn(&ChaosCall) + Send + Sync>;

/// Counts of what a [`Chaotic`] did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChaosStats {
    /// Reads seen.
    pub reads: u64,
    /// Writes seen.
    pub writes: u64,
    /// Calls answered `Throttled`.
    pub throttled: u64,
    /// Calls answered `Unavailable` at once.
    pub unavailable: u64,
    /// Calls that timed out.
    pub timeouts: u64,
    /// Calls whose answer was lost.
    pub lost_responses: u64,
    /// Calls answered late.
    pub delayed: u64,
    /// Calls held before they were sent.
    pub stalled: u64,
}

impl ChaosStats {
    /// Calls that got any fault (delays included).
    pub fn faults(&self) -> u64 {
        self.throttled + self.unavailable + self.timeouts + self.lost_responses + self.delayed + self.stalled
    }

    fn count(&mut self, operation: Operation, injected: Option<Injected>) {
        match operation {
            Operation::Read => self.reads += 1,
            Operation::Write => self.writes += 1,
        }
        match injected {
            None => {}
            Some(Injected::Throttled) => self.throttled += 1,
            Some(Injected::Unavailable) => self.unavailable += 1,
            Some(Injected::Timeout { .. }) => self.timeouts += 1,
            Some(Injected::LostResponse) => self.lost_responses += 1,
            Some(Injected::Delayed(_)) => self.delayed += 1,
            Some(Injected::Stalled(_)) => self.stalled += 1,
        }
    }
}

/// A provider that injects seeded faults in front of another (see the module docs).
pub struct Chaotic {
    inner: Arc<dyn Provider>,
    rules: Vec<FaultRule>,
    seed: u64,
    started: Instant,
    /// Calls so far per (operation, names) key: the per-key sequence number that,
    /// with the seed, decides a call's fault.
    sequence: Mutex<HashMap<u64, u64>>,
    stats: Mutex<ChaosStats>,
    log: Option<Mutex<Vec<ChaosCall>>>,
    observer: Option<FaultObserver>,
}

impl std::fmt::Debug for Chaotic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chaotic")
            .field("provider", &self.inner.name())
            .field("rules", &self.rules)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl Chaotic {
    /// Wraps `inner`; for each call the first rule that applies decides its fault.
    /// Windows start now (tokio time).
    pub fn new(inner: Arc<dyn Provider>, rules: Vec<FaultRule>, seed: u64) -> Self {
        Self {
            inner,
            rules,
            seed,
            started: Instant::now(),
            sequence: Mutex::default(),
            stats: Mutex::default(),
            log: None,
            observer: None,
        }
    }

    /// Calls `observer` with every call that gets a fault, as the call arrives
    /// (before any wait the fault imposes), so a game day can log what it broke.
    pub fn observed(mut self, observer: FaultObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Also keeps a log of every call ([`Chaotic::calls`]); for tests, as the log grows with every call.
    pub fn recording(mut self) -> Self {
        self.log = Some(Mutex::default());
        self
    }

    /// The rules in force.
    pub fn rules(&self) -> &[FaultRule] {
        &self.rules
    }

    /// What was injected so far.
    pub fn stats(&self) -> ChaosStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every call so far, in arrival order (empty unless [`Chaotic::recording`]).
    pub fn calls(&self) -> Vec<ChaosCall> {
        self.log.as_ref().map(|log| log.lock().unwrap_or_else(|p| p.into_inner()).clone()).unwrap_or_default()
    }

    /// Decides (and records) the fault of one call touching the names hashed into
    /// `key`, with the rates it was drawn from (for the fault's parameters).
    /// `generations` are what a write would publish.
    fn decide(&self, operation: Operation, key: u64, generations: Vec<u64>) -> (Option<Injected>, FaultRates) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.started);
        let number = {
            let mut sequence = self.sequence.lock().unwrap_or_else(|p| p.into_inner());
            let n = sequence.entry(key).or_default();
            *n += 1;
            *n
        };
        let rates = self.rules.iter().find(|r| r.applies(operation, elapsed)).map_or(FaultRates::NONE, |r| r.rates);
        let mut draws = SplitMix(self.seed ^ key.rotate_left(17) ^ number.wrapping_mul(0xA24B_AED4_963E_E407));
        let injected = pick(&rates, operation, &mut draws);
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).count(operation, injected);
        let call = ChaosCall { at: now, operation, injected, generations, delivered: None };
        if let Some(observer) = self.observer.as_ref().filter(|_| injected.is_some()) {
            observer(&call);
        }
        if let Some(log) = &self.log {
            log.lock().unwrap_or_else(|p| p.into_inner()).push(call);
        }
        (injected, rates)
    }
}

/// Draws one call's fault from `rates`.
fn pick(rates: &FaultRates, operation: Operation, draws: &mut SplitMix) -> Option<Injected> {
    let mut point = draws.unit();
    let mut hit = |share: f64| {
        let inside = point < share;
        point -= share;
        inside
    };
    if hit(rates.throttled) {
        Some(Injected::Throttled)
    } else if hit(rates.unavailable) {
        Some(Injected::Unavailable)
    } else if hit(rates.timeout) {
        Some(Injected::Timeout { landed: operation == Operation::Write && draws.unit() < 0.5 })
    } else if hit(rates.lost_response) {
        Some(Injected::LostResponse)
    } else if hit(rates.delayed) {
        Some(Injected::Delayed(rates.delay_max.mul_f64(draws.unit())))
    } else if hit(rates.stalled) {
        Some(Injected::Stalled(rates.stall_for))
    } else {
        None
    }
}

/// SplitMix64: a tiny seeded generator, one per call.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// FNV-1a over the parts, stable across runs and platforms (unlike `DefaultHasher`'s contract).
fn stable_key(parts: &[&[u8]]) -> u64 {
    let mut hash = 0xCBF2_9CE4_8422_2325u64;
    for part in parts {
        for byte in part.iter().chain(&[0xFF]) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    hash
}

fn read_key(name: &RecordName, rtype: RecordType) -> u64 {
    stable_key(&[b"read", name.as_str().as_bytes(), rtype.to_string().as_bytes()])
}

fn write_key(batch: &ChangeBatch) -> u64 {
    let mut names: Vec<String> = batch.changes.iter().map(|c| format!("{} {}", c.name(), c.expected.rtype)).collect();
    names.sort();
    let mut parts: Vec<&[u8]> = vec![b"write", batch.zone.as_str().as_bytes()];
    parts.extend(names.iter().map(|n| n.as_bytes()));
    stable_key(&parts)
}

const INJECTED: &str = "injected by chaos";

impl crate::ProviderWrapper for Chaotic {
    fn inner(&self) -> &dyn Provider {
        &*self.inner
    }

    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        let (injected, rates) = self.decide(Operation::Read, read_key(name, rtype), Vec::new());
        Box::pin(async move {
            match injected {
                None => self.inner.read(name, rtype).await,
                Some(Injected::Throttled) => Err(ProviderError::Throttled { retry_after: rates.retry_after }),
                Some(Injected::Unavailable) => Err(ProviderError::Unavailable(format!("{INJECTED}: HTTP 503"))),
                Some(Injected::Timeout { .. }) => {
                    tokio::time::sleep(rates.timeout_after).await;
                    Err(ProviderError::Unavailable(format!(
                        "{INJECTED}: read timed out after {:?}",
                        rates.timeout_after
                    )))
                }
                Some(Injected::LostResponse) => {
                    let _ = self.inner.read(name, rtype).await;
                    Err(ProviderError::Unavailable(format!("{INJECTED}: the read's response was lost")))
                }
                Some(Injected::Delayed(by)) => {
                    let result = self.inner.read(name, rtype).await;
                    tokio::time::sleep(by).await;
                    result
                }
                Some(Injected::Stalled(by)) => {
                    tokio::time::sleep(by).await;
                    self.inner.read(name, rtype).await
                }
            }
        })
    }

    fn apply<'a>(&'a self, batch: &'a ChangeBatch) -> ProviderFuture<'a, ()> {
        let generations = batch.changes.iter().map(|c| c.ownership.generation).collect();
        let (injected, rates) = self.decide(Operation::Write, write_key(batch), generations);
        Box::pin(async move {
            match injected {
                None => self.inner.apply(batch).await,
                Some(Injected::Throttled) => Err(ProviderError::Throttled { retry_after: rates.retry_after }),
                Some(Injected::Unavailable) => {
                    Err(ProviderError::Unavailable(format!("{INJECTED}: HTTP 503 before the write")))
                }
                Some(Injected::Timeout { landed }) => {
                    if landed {
                        let _ = self.inner.apply(batch).await;
                    }
                    tokio::time::sleep(rates.timeout_after).await;
                    Err(ProviderError::Ambiguous(format!(
                        "{INJECTED}: the write timed out after {:?}; it may have landed",
                        rates.timeout_after
                    )))
                }
                Some(Injected::LostResponse) => {
                    let _ = self.inner.apply(batch).await;
                    Err(ProviderError::Ambiguous(format!("{INJECTED}: the write was sent and its response lost")))
                }
                Some(Injected::Delayed(by)) => {
                    let result = self.inner.apply(batch).await;
                    tokio::time::sleep(by).await;
                    result
                }
                Some(Injected::Stalled(by)) => {
                    // In transit: the write reaches the provider after `by` whether or
                    // not its caller still waits (a deadline cannot recall a request).
                    let (inner, owned, observer) = (self.inner.clone(), batch.clone(), self.observer.clone());
                    let generations = owned.changes.iter().map(|c| c.ownership.generation).collect();
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    tokio::spawn(async move {
                        tokio::time::sleep(by).await;
                        let result = inner.apply(&owned).await;
                        if let Some(observer) = observer {
                            observer(&ChaosCall {
                                at: Instant::now(),
                                operation: Operation::Write,
                                injected: Some(Injected::Stalled(by)),
                                generations,
                                delivered: Some(result.clone()),
                            });
                        }
                        let _ = tx.send(result);
                    });
                    rx.await.unwrap_or_else(|_| {
                        Err(ProviderError::Ambiguous(format!("{INJECTED}: the stalled write was lost")))
                    })
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(throttled: f64, unavailable: f64, timeout: f64, lost: f64, delayed: f64) -> FaultRates {
        FaultRates { throttled, unavailable, timeout, lost_response: lost, delayed, ..FaultRates::NONE }
    }

    #[test]
    fn shares_must_be_within_zero_and_one_and_add_up_to_at_most_one() {
        assert_eq!(rates(0.3, 0.1, 0.1, 0.1, 0.1).check(), Ok(()));
        assert_eq!(rates(1.2, 0.0, 0.0, 0.0, 0.0).check(), Err(ChaosError::BadShare { name: "throttled", share: 1.2 }));
        assert!(matches!(rates(0.5, 0.5, 0.1, 0.0, 0.0).check(), Err(ChaosError::SharesAboveOne(_))));
        let rule = FaultRule {
            from: Duration::from_secs(5),
            until: Some(Duration::from_secs(5)),
            ..FaultRule::always(FaultRates::NONE)
        };
        assert_eq!(rule.check(), Err(ChaosError::EmptyWindow));
    }

    #[test]
    fn a_rule_applies_to_its_operations_inside_its_window_only() {
        let rule = FaultRule {
            reads: false,
            writes: true,
            from: Duration::from_secs(10),
            until: Some(Duration::from_secs(20)),
            rates: FaultRates::NONE,
        };
        assert!(!rule.applies(Operation::Write, Duration::from_secs(9)));
        assert!(rule.applies(Operation::Write, Duration::from_secs(10)));
        assert!(rule.applies(Operation::Write, Duration::from_millis(19_999)));
        assert!(!rule.applies(Operation::Write, Duration::from_secs(20)));
        assert!(!rule.applies(Operation::Read, Duration::from_secs(15)));
    }

    #[test]
    fn draws_follow_the_shares() {
        let r = FaultRates { stalled: 0.1, ..rates(0.3, 0.1, 0.05, 0.05, 0.1) };
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let n = 20_000;
        for i in 0..n {
            let kind = match pick(&r, Operation::Write, &mut SplitMix(i)) {
                None => "none",
                Some(Injected::Throttled) => "throttled",
                Some(Injected::Unavailable) => "unavailable",
                Some(Injected::Timeout { .. }) => "timeout",
                Some(Injected::LostResponse) => "lost",
                Some(Injected::Delayed(d)) => {
                    assert!(d <= r.delay_max);
                    "delayed"
                }
                Some(Injected::Stalled(d)) => {
                    assert_eq!(d, r.stall_for);
                    "stalled"
                }
            };
            *counts.entry(kind).or_default() += 1;
        }
        for (kind, share) in [
            ("none", 0.3),
            ("throttled", 0.3),
            ("unavailable", 0.1),
            ("timeout", 0.05),
            ("lost", 0.05),
            ("stalled", 0.1),
        ] {
            let seen = counts.get(kind).copied().unwrap_or(0) as f64 / n as f64;
            assert!((seen - share).abs() < 0.015, "{kind}: {seen} of calls, expected {share}");
        }
    }
}
