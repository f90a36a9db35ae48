//! Hysteresis (`rise`/`fall`, ARCHITECTURE.md §6): one probe result is a data point, not a
//! verdict. A pure state machine per endpoint per vantage, so that the rules
//! are tested as a table and replayed in simulations.
//!
//! | verdict | success                         | failure                          |
//! |---------|---------------------------------|----------------------------------|
//! | Unknown | `rise` in a row → Up            | `fall` in a row → Down           |
//! | Up      | stays Up, failure count reset   | `fall` in a row → Down           |
//! | Down    | `rise` in a row → Up            | stays Down, success count reset  |
//!
//! A success resets the failure streak and a failure resets the success
//! streak: only consecutive results count.

use super::ProbeVerdict;

/// The verdict of one endpoint from one vantage, with its current streaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hysteresis {
    rise: u32,
    fall: u32,
    verdict: ProbeVerdict,
    /// Consecutive successes; zero whenever the last result was a failure.
    successes: u32,
    /// Consecutive failures; zero whenever the last result was a success.
    failures: u32,
}

impl Hysteresis {
    /// Starts Unknown. `rise` and `fall` below 1 (rejected by validation) are taken as 1.
    pub fn new(rise: u32, fall: u32) -> Self {
        Self { rise: rise.max(1), fall: fall.max(1), verdict: ProbeVerdict::Unknown, successes: 0, failures: 0 }
    }

    /// The current verdict.
    pub fn verdict(&self) -> ProbeVerdict {
        self.verdict
    }

    /// Consecutive successes and failures so far (one of them is zero).
    pub fn streaks(&self) -> (u32, u32) {
        (self.successes, self.failures)
    }

    /// Changes the thresholds (policy reload) and keeps verdict and streaks; a
    /// streak that already meets a lower threshold takes effect at the next result.
    pub fn set_thresholds(&mut self, rise: u32, fall: u32) {
        self.rise = rise.max(1);
        self.fall = fall.max(1);
    }

    /// Feeds one probe result; returns the new verdict when it changed.
    pub fn observe(&mut self, success: bool) -> Option<ProbeVerdict> {
        if success {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
        }
        debug_assert!(self.successes == 0 || self.failures == 0, "streaks are exclusive");
        let next = match self.verdict {
            ProbeVerdict::Up | ProbeVerdict::Unknown if self.failures >= self.fall => ProbeVerdict::Down,
            ProbeVerdict::Down | ProbeVerdict::Unknown if self.successes >= self.rise => ProbeVerdict::Up,
            current => current,
        };
        (next != self.verdict).then(|| {
            self.verdict = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProbeVerdict::*;

    /// Feeds `results` ('+' success, '-' failure) and returns the verdict after each.
    fn run(rise: u32, fall: u32, results: &str) -> Vec<ProbeVerdict> {
        let mut h = Hysteresis::new(rise, fall);
        results
            .chars()
            .map(|c| {
                h.observe(c == '+');
                h.verdict()
            })
            .collect()
    }

    #[test]
    fn a_new_endpoint_is_unknown_until_rise_successes() {
        assert_eq!(Hysteresis::new(2, 3).verdict(), Unknown);
        assert_eq!(run(2, 3, "++"), [Unknown, Up]);
    }

    #[test]
    fn a_new_endpoint_is_down_after_fall_failures() {
        assert_eq!(run(2, 3, "---"), [Unknown, Unknown, Down]);
    }

    #[test]
    fn an_up_endpoint_goes_down_only_after_fall_consecutive_failures() {
        assert_eq!(run(2, 3, "++--+---"), [Unknown, Up, Up, Up, Up, Up, Up, Down]);
    }

    #[test]
    fn a_down_endpoint_comes_back_only_after_rise_consecutive_successes() {
        assert_eq!(run(2, 1, "-+-++"), [Down, Down, Down, Down, Up]);
    }

    #[test]
    fn alternating_results_never_change_a_settled_verdict() {
        let verdicts = run(2, 2, "++-+-+-+-+");
        assert!(verdicts[1..].iter().all(|v| *v == Up), "{verdicts:?}");
        let verdicts = run(2, 2, "--+-+-+-+-");
        assert!(verdicts[1..].iter().all(|v| *v == Down), "{verdicts:?}");
    }

    #[test]
    fn alternating_results_leave_a_new_endpoint_unknown() {
        assert!(run(2, 2, "+-+-+-+-").iter().all(|v| *v == Unknown));
    }

    #[test]
    fn rise_and_fall_of_one_follow_every_result() {
        assert_eq!(run(1, 1, "+-+"), [Up, Down, Up]);
    }

    #[test]
    fn observe_reports_only_changes() {
        let mut h = Hysteresis::new(1, 2);
        assert_eq!(h.observe(true), Some(Up));
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), Some(Down));
        assert_eq!(h.streaks(), (0, 2));
    }

    #[test]
    fn new_thresholds_keep_the_verdict_and_apply_at_the_next_result() {
        let mut h = Hysteresis::new(1, 5);
        h.observe(true);
        h.observe(false);
        h.observe(false);
        assert_eq!(h.verdict(), Up);
        h.set_thresholds(1, 2);
        assert_eq!(h.verdict(), Up);
        assert_eq!(h.observe(false), Some(Down));
    }

    #[test]
    fn zero_thresholds_are_taken_as_one() {
        assert_eq!(run(0, 0, "+-"), [Up, Down]);
    }
}
