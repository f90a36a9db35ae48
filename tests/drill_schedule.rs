//! Drill windows against a brute-force oracle: for random weekly UTC windows
//! (crossing midnight and the week boundary included), the next start is the
//! earliest minute from which the whole drill fits inside the windows.

use proptest::prelude::*;
use std::time::Duration;
use veer::drill::schedule::{Days, TimeOfDay, Window, next_run, next_start};
use veer::time::Timestamp;

const MINUTE_MS: u64 = 60_000;
const DAY_MINUTES: u64 = 1440;
/// 2020-01-06, a Monday, in minutes since the Unix epoch.
const BASE_MINUTE: u64 = 26_304_480;

/// Whether minute `m` (since the epoch) lies inside one of `windows`, computed
/// directly from weekday and minute of day, independently of the code under test.
fn covered(windows: &[Window], m: u64) -> bool {
    let day = m / DAY_MINUTES;
    let weekday = ((day + 3) % 7) as u8;
    let previous = (weekday + 6) % 7;
    let minute = (m % DAY_MINUTES) as u16;
    windows.iter().any(|w| {
        let (from, to) = (w.from.minutes(), w.to.minutes());
        if to > from {
            w.days.contains(weekday) && from <= minute && minute < to
        } else {
            (w.days.contains(weekday) && minute >= from) || (w.days.contains(previous) && minute < to)
        }
    })
}

/// The earliest minute `t ≥ now` with minutes `t .. t + max(length, 1)` all covered,
/// searching three weeks.
fn oracle(windows: &[Window], now: u64, length: u64) -> Option<u64> {
    let horizon = now + 3 * 7 * DAY_MINUTES + length;
    let cover: Vec<bool> = (now..horizon).map(|m| covered(windows, m)).collect();
    let need = length.max(1) as usize;
    let mut run = 0usize;
    // Scan backwards: run = covered minutes starting at index i.
    let mut runs = vec![0usize; cover.len()];
    for i in (0..cover.len()).rev() {
        run = if cover[i] { run + 1 } else { 0 };
        runs[i] = run;
    }
    (0..cover.len() - length as usize).find(|i| runs[*i] >= need).map(|i| now + i as u64)
}

fn window() -> impl Strategy<Value = Window> {
    (1u8..128, 0u16..=1440, 0u16..=1440).prop_filter_map("empty window", |(bits, from, to)| {
        let days: Vec<u8> = (0..7).filter(|d| bits & (1 << d) != 0).collect();
        Window::new(Days::of(&days), TimeOfDay::from_minutes(from)?, TimeOfDay::from_minutes(to)?).ok()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_next_start_is_the_earliest_minute_from_which_the_drill_fits(
        windows in proptest::collection::vec(window(), 1..4),
        offset in 0u64..(4 * 7 * DAY_MINUTES),
        length in 0u64..900,
    ) {
        let now = BASE_MINUTE + offset;
        let got = next_start(&windows, Timestamp(now * MINUTE_MS), Duration::from_secs(length * 60));
        let expected = oracle(&windows, now, length);
        prop_assert_eq!(got.map(|t| t.as_millis()), expected.map(|m| m * MINUTE_MS),
            "windows {:?}, now minute {}, length {} min", windows.iter().map(ToString::to_string).collect::<Vec<_>>(), now, length);
    }

    #[test]
    fn windows_repeat_every_week_exactly(
        windows in proptest::collection::vec(window(), 1..4),
        offset_ms in 0u64..(7 * DAY_MINUTES * MINUTE_MS),
        length in 0u64..900,
    ) {
        let now = Timestamp(BASE_MINUTE * MINUTE_MS + offset_ms);
        let week = Duration::from_secs(7 * 86_400);
        let length = Duration::from_secs(length * 60);
        let this_week = next_start(&windows, now, length);
        let next_week = next_start(&windows, now.add(week), length);
        prop_assert_eq!(this_week.map(|t| t.add(week)), next_week);
        if let Some(t) = this_week {
            prop_assert!(t >= now);
        }
    }

    #[test]
    fn a_scheduled_run_respects_the_spacing(
        windows in proptest::collection::vec(window(), 1..3),
        offset in 0u64..(7 * DAY_MINUTES),
        since_last in 0u64..(3 * DAY_MINUTES),
        spacing in 1u64..(2 * DAY_MINUTES),
    ) {
        let now = Timestamp((BASE_MINUTE + offset) * MINUTE_MS);
        let last = now.sub(Duration::from_secs(since_last * 60));
        let spacing = Duration::from_secs(spacing * 60);
        if let Some(t) = next_run(&windows, spacing, now, Some(last), Duration::from_secs(300)) {
            prop_assert!(t >= now && t >= last.add(spacing), "{t:?} now {now:?} last {last:?}");
        }
    }

    #[test]
    fn windows_print_in_a_form_that_parses_back(window in window()) {
        prop_assert_eq!(Window::parse(&window.to_string()), Ok(window));
    }
}

#[test]
fn the_oracle_agrees_on_the_documented_examples() {
    let parse = |w: &str| Window::parse(w).unwrap();
    // Friday 2020-01-10 23:30 UTC, a window Friday 22:00 → Saturday 02:00.
    let friday_night = BASE_MINUTE + 4 * DAY_MINUTES + 23 * 60 + 30;
    assert_eq!(oracle(&[parse("fri 22:00-02:00")], friday_night, 120), Some(friday_night));
    assert_eq!(oracle(&[parse("fri 22:00-02:00")], friday_night, 151), Some(friday_night + 7 * DAY_MINUTES - 90));
    // Sunday 23:00 → Monday 01:00 crosses into the next week.
    let sunday = BASE_MINUTE + 6 * DAY_MINUTES + 23 * 60;
    assert!(covered(&[parse("sun 23:00-01:00")], sunday + 90));
    assert!(!covered(&[parse("sun 23:00-01:00")], sunday + 120));
}
