//! Weekly drill windows in UTC and when a drill may start next.
//!
//! Pure arithmetic on [`Timestamp`]s (milliseconds since the Unix epoch, UTC):
//! no clock, no time zones. UTC has no daylight saving, so a week is always
//! 7 × 24 h and windows repeat exactly; 1970-01-01 was a Thursday.
//!
//! A window is a set of weekdays and a time range, `weekdays 10:00-16:00`. A range
//! whose end is not after its start crosses midnight (`fri 22:00-02:00` runs from
//! Friday 22:00 to Saturday 02:00, and `sun 23:00-01:00` into Monday of the next
//! week); `24:00` ends a day. Overlapping or touching occurrences join, so
//! `daily 00:00-24:00` is one endless window. A drill of length `L` may start at
//! `t` when `[t, t + L]` lies inside one joined window.

use crate::time::Timestamp;
use std::fmt;
use std::time::Duration;

const MS_PER_MINUTE: u64 = 60_000;
/// Minutes in a day; `24:00` is this many minutes after midnight.
pub const MINUTES_PER_DAY: u16 = 1440;
const MS_PER_DAY: u64 = 86_400_000;
const MS_PER_WEEK: u64 = 7 * MS_PER_DAY;
/// The Unix epoch fell on a Thursday: Monday-based weekday index 3.
const EPOCH_WEEKDAY: u64 = 3;

/// Day names, Monday first (the index is the weekday number).
const DAY_NAMES: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

/// A set of weekdays; bit `i` is weekday `i` (0 = Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Days(u8);

impl Days {
    /// Every day.
    pub const DAILY: Days = Days(0b111_1111);
    /// Monday to Friday.
    pub const WEEKDAYS: Days = Days(0b001_1111);
    /// Saturday and Sunday.
    pub const WEEKENDS: Days = Days(0b110_0000);

    /// The set holding weekdays `indices` (0 = Monday).
    pub fn of(indices: &[u8]) -> Days {
        Days(indices.iter().filter(|i| **i < 7).fold(0, |bits, i| bits | 1 << i))
    }

    /// Whether weekday `index` (0 = Monday) is in the set.
    pub fn contains(self, index: u8) -> bool {
        index < 7 && self.0 & (1 << index) != 0
    }

    /// Whether no day is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Reads `daily`, `weekdays`, `weekends`, or a comma-separated list of day names
    /// (`mon`, `tuesday`) and ranges (`mon-fri`; `fri-mon` wraps over the weekend).
    pub fn parse(text: &str) -> Result<Days, String> {
        let hint = "expected daily, weekdays, weekends, or days such as mon,wed or mon-fri";
        let text = text.trim().to_ascii_lowercase();
        match text.as_str() {
            "daily" | "everyday" => return Ok(Days::DAILY),
            "weekdays" => return Ok(Days::WEEKDAYS),
            "weekends" => return Ok(Days::WEEKENDS),
            "" => return Err(format!("no days given: {hint}")),
            _ => {}
        }
        let mut days = Days::default();
        for item in text.split(',').map(str::trim) {
            let (first, last) = match item.split_once('-') {
                Some((a, b)) => (day_index(a.trim()), day_index(b.trim())),
                None => (day_index(item), day_index(item)),
            };
            let (Some(first), Some(last)) = (first, last) else {
                return Err(format!("unknown day `{item}`: {hint}"));
            };
            let mut day = first;
            loop {
                days.0 |= 1 << day;
                if day == last {
                    break;
                }
                day = (day + 1) % 7;
            }
        }
        Ok(days)
    }

    /// The days' short names, Monday first.
    pub fn names(self) -> Vec<&'static str> {
        (0..7).filter(|i| self.contains(*i)).map(|i| DAY_NAMES[i as usize].0).collect()
    }
}

fn day_index(name: &str) -> Option<u8> {
    DAY_NAMES.iter().position(|(short, long)| name == *short || name == *long).map(|i| i as u8)
}

impl fmt::Display for Days {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Days::DAILY => f.write_str("daily"),
            Days::WEEKDAYS => f.write_str("weekdays"),
            Days::WEEKENDS => f.write_str("weekends"),
            days => f.write_str(&days.names().join(",")),
        }
    }
}

/// A time of day in minutes after midnight, `00:00` to `24:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// Minutes after midnight (1440 for `24:00`).
    pub fn minutes(self) -> u16 {
        self.0
    }

    /// From minutes after midnight; `None` above 1440.
    pub fn from_minutes(minutes: u16) -> Option<TimeOfDay> {
        (minutes <= MINUTES_PER_DAY).then_some(TimeOfDay(minutes))
    }

    /// Reads `HH:MM` (24-hour clock, UTC); `24:00` is the end of a day.
    pub fn parse(text: &str) -> Result<TimeOfDay, String> {
        let hint = "expected a UTC time such as 09:30 or 24:00";
        let bad = || format!("invalid time `{text}`: {hint}");
        let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
        let digits = |s: &str, len: std::ops::RangeInclusive<usize>| {
            (len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u16>().ok()).flatten()
        };
        let (Some(hours), Some(minutes)) = (digits(h, 1..=2), digits(m, 2..=2)) else { return Err(bad()) };
        if hours > 24 || minutes > 59 || (hours == 24 && minutes > 0) {
            return Err(format!("time `{text}` is out of range: {hint}"));
        }
        Ok(TimeOfDay(hours * 60 + minutes))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// One weekly window: on each of `days`, from `from` to `to` (crossing midnight
/// when `to` is not after `from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// The days the window opens on.
    pub days: Days,
    /// Opening time, UTC.
    pub from: TimeOfDay,
    /// Closing time, UTC; on the next day when not after `from`.
    pub to: TimeOfDay,
}

impl Window {
    /// A window, refused when it has no day or no length (`from` equals `to`, or
    /// `00:00` to `24:00`'s mirror `24:00` to `00:00`).
    pub fn new(days: Days, from: TimeOfDay, to: TimeOfDay) -> Result<Window, String> {
        let window = Window { days, from, to };
        if days.is_empty() {
            return Err("a window needs at least one day".into());
        }
        if window.length_minutes() == 0 {
            return Err(format!(
                "window {from}-{to} is empty: `from` and `to` are the same time of day (a whole day is 00:00-24:00)"
            ));
        }
        Ok(window)
    }

    /// Reads the compact form `DAYS HH:MM-HH:MM`, e.g. `weekdays 10:00-16:00` or
    /// `sat,sun 22:00-02:00`.
    pub fn parse(text: &str) -> Result<Window, String> {
        let hint = "expected DAYS FROM-TO such as `weekdays 10:00-16:00`";
        let text = text.trim();
        let (days, range) =
            text.rsplit_once(char::is_whitespace).ok_or_else(|| format!("invalid window `{text}`: {hint}"))?;
        let (from, to) = range.split_once('-').ok_or_else(|| format!("invalid window `{text}`: {hint}"))?;
        Window::new(Days::parse(days)?, TimeOfDay::parse(from)?, TimeOfDay::parse(to)?)
    }

    /// Minutes from opening to closing (at most a day).
    pub fn length_minutes(self) -> u16 {
        let (from, to) = (self.from.0, self.to.0);
        match to.cmp(&from) {
            std::cmp::Ordering::Greater => to - from,
            std::cmp::Ordering::Equal => 0,
            // Crossing midnight (`24:00-00:00` is empty).
            std::cmp::Ordering::Less => MINUTES_PER_DAY - from + to,
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}-{}", self.days, self.from, self.to)
    }
}

/// Milliseconds of the Monday 00:00 UTC that starts the week holding `at`.
fn week_start(at: Timestamp) -> u64 {
    let day = at.as_millis() / MS_PER_DAY;
    let weekday = (day + EPOCH_WEEKDAY) % 7;
    (day - weekday.min(day)) * MS_PER_DAY
}

/// The weekday (0 = Monday) of `at`.
pub fn weekday(at: Timestamp) -> u8 {
    ((at.as_millis() / MS_PER_DAY + EPOCH_WEEKDAY) % 7) as u8
}

/// Every window occurrence of the weeks from one before `at`'s week to two after,
/// joined where they overlap or touch, sorted: `[start, end)` in milliseconds.
fn joined_occurrences(windows: &[Window], at: Timestamp) -> Vec<(u64, u64)> {
    let base = week_start(at);
    let mut spans = Vec::new();
    for week in 0..4u64 {
        let Some(start_of_week) = (base + week * MS_PER_WEEK).checked_sub(MS_PER_WEEK) else { continue };
        for window in windows {
            for day in (0..7u8).filter(|d| window.days.contains(*d)) {
                let start = start_of_week + u64::from(day) * MS_PER_DAY + u64::from(window.from.0) * MS_PER_MINUTE;
                let end = start + u64::from(window.length_minutes()) * MS_PER_MINUTE;
                if end > start {
                    spans.push((start, end));
                }
            }
        }
    }
    spans.sort_unstable();
    let mut joined: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match joined.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => joined.push((start, end)),
        }
    }
    joined
}

/// The earliest instant at or after `earliest` at which a run of `length` fits
/// inside one (joined) window; `None` when no window is long enough.
///
/// Runs longer than a week are not supported: the search looks three weeks ahead.
pub fn next_start(windows: &[Window], earliest: Timestamp, length: Duration) -> Option<Timestamp> {
    let length = length.as_millis().min(u128::from(u64::MAX)) as u64;
    let earliest = earliest.as_millis();
    joined_occurrences(windows, Timestamp(earliest))
        .into_iter()
        .filter(|(_, end)| *end > earliest)
        .map(|(start, end)| (start.max(earliest), end))
        .find(|(start, end)| start.saturating_add(length) <= *end)
        .map(|(start, _)| Timestamp(start))
}

/// The window occurrence holding `at`, as `[start, end)`, if any.
pub fn window_at(windows: &[Window], at: Timestamp) -> Option<(Timestamp, Timestamp)> {
    joined_occurrences(windows, at)
        .into_iter()
        .find(|(start, end)| *start <= at.as_millis() && at.as_millis() < *end)
        .map(|(start, end)| (Timestamp(start), Timestamp(end)))
}

/// When a scheduled drill is due: a drill of `length` may start at `windows`
/// times, no sooner than `spacing` after its last start (if any) and not before
/// `now`. `None` when no window can hold it.
pub fn next_run(
    windows: &[Window],
    spacing: Duration,
    now: Timestamp,
    last_start: Option<Timestamp>,
    length: Duration,
) -> Option<Timestamp> {
    let earliest = last_start.map_or(now, |last| now.max(last.add(spacing)));
    next_start(windows, earliest, length)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monday 2024-01-01 00:00 UTC.
    const MONDAY: u64 = 1_704_067_200_000;

    fn at(day: u64, hour: u64, minute: u64) -> Timestamp {
        Timestamp(MONDAY + day * MS_PER_DAY + hour * 3_600_000 + minute * MS_PER_MINUTE)
    }

    fn windows(list: &[&str]) -> Vec<Window> {
        list.iter().map(|w| Window::parse(w).unwrap()).collect()
    }

    fn minutes(n: u64) -> Duration {
        Duration::from_secs(n * 60)
    }

    #[test]
    fn the_reference_monday_is_a_monday() {
        assert_eq!(weekday(Timestamp(MONDAY)), 0);
        assert_eq!(weekday(at(6, 23, 59)), 6);
        assert_eq!(weekday(Timestamp(0)), 3, "1970-01-01 was a Thursday");
        assert_eq!(week_start(at(3, 12, 0)), MONDAY);
    }

    #[test]
    fn days_parse_in_every_documented_form() {
        assert_eq!(Days::parse("weekdays").unwrap(), Days::WEEKDAYS);
        assert_eq!(Days::parse("Weekends").unwrap(), Days::WEEKENDS);
        assert_eq!(Days::parse("daily").unwrap(), Days::DAILY);
        assert_eq!(Days::parse("mon-fri").unwrap(), Days::WEEKDAYS);
        assert_eq!(Days::parse("mon, wednesday,fri").unwrap(), Days::of(&[0, 2, 4]));
        assert_eq!(Days::parse("fri-mon").unwrap(), Days::of(&[4, 5, 6, 0]), "ranges wrap over the weekend");
        assert!(Days::parse("funday").unwrap_err().contains("unknown day `funday`"));
        assert!(Days::parse("").is_err());
        assert_eq!(Days::of(&[0, 2]).to_string(), "mon,wed");
    }

    #[test]
    fn times_parse_and_reject_out_of_range_values() {
        assert_eq!(TimeOfDay::parse("09:30").unwrap().minutes(), 570);
        assert_eq!(TimeOfDay::parse("9:30").unwrap().minutes(), 570);
        assert_eq!(TimeOfDay::parse("24:00").unwrap().minutes(), 1440);
        for bad in ["24:01", "25:00", "10:60", "10", "10:5", "ab:cd", "-1:00", ""] {
            assert!(TimeOfDay::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_parse_and_empty_ones_are_refused() {
        let w = Window::parse("weekdays 10:00-16:00").unwrap();
        assert_eq!((w.days, w.from.minutes(), w.to.minutes(), w.length_minutes()), (Days::WEEKDAYS, 600, 960, 360));
        assert_eq!(Window::parse("sat,sun 22:00-02:00").unwrap().length_minutes(), 240);
        assert_eq!(Window::parse("daily 00:00-24:00").unwrap().length_minutes(), 1440);
        assert!(Window::parse("daily 12:00-12:00").unwrap_err().starts_with("window 12:00-12:00 is empty"));
        assert!(Window::parse("daily 24:00-00:00").is_err());
        assert!(Window::parse("10:00-16:00").is_err());
        assert!(Window::parse("weekdays 10:00").is_err());
        assert_eq!(w.to_string(), "weekdays 10:00-16:00");
    }

    /// (windows, now, length in minutes, expected start as (day, hour, minute) or None).
    #[test]
    fn next_start_table() {
        type Case = (&'static [&'static str], (u64, u64, u64), u64, Option<(u64, u64, u64)>);
        let cases: &[Case] = &[
            // Inside a window with room: now.
            (&["weekdays 10:00-16:00"], (0, 11, 0), 30, Some((0, 11, 0))),
            // Before the window opens: at the opening.
            (&["weekdays 10:00-16:00"], (0, 8, 0), 30, Some((0, 10, 0))),
            // Too little left today: tomorrow's opening.
            (&["weekdays 10:00-16:00"], (0, 15, 45), 30, Some((1, 10, 0))),
            // Exactly fits to the closing minute.
            (&["weekdays 10:00-16:00"], (0, 15, 30), 30, Some((0, 15, 30))),
            // Friday evening: next Monday (week boundary).
            (&["weekdays 10:00-16:00"], (4, 17, 0), 30, Some((7, 10, 0))),
            // Crossing midnight: Friday 22:00 to Saturday 02:00, from Saturday 01:00.
            (&["fri 22:00-02:00"], (5, 1, 0), 30, Some((5, 1, 0))),
            (&["fri 22:00-02:00"], (5, 1, 45), 30, Some((11, 22, 0))),
            // Sunday night into Monday of the next week: from Monday 00:30.
            (&["sun 23:00-01:00"], (7, 0, 30), 20, Some((7, 0, 30))),
            (&["sun 23:00-01:00"], (0, 0, 30), 20, Some((0, 0, 30))),
            // Touching windows join: 22:00-24:00 and 00:00-02:00 hold a 3 h run.
            (&["mon 22:00-24:00", "tue 00:00-02:00"], (0, 21, 0), 180, Some((0, 22, 0))),
            // Longer than any window: never.
            (&["weekdays 10:00-11:00"], (0, 9, 0), 61, None),
            // An endless window holds anything up to the search horizon.
            (&["daily 00:00-24:00"], (3, 5, 7), 24 * 60, Some((3, 5, 7))),
            // Several windows: the earliest that fits wins.
            (&["wed 09:00-10:00", "tue 20:00-21:00"], (0, 12, 0), 30, Some((1, 20, 0))),
        ];
        for (list, (d, h, m), length, expected) in cases {
            let got = next_start(&windows(list), at(*d, *h, *m), minutes(*length));
            assert_eq!(got, expected.map(|(d, h, m)| at(d, h, m)), "{list:?} at day {d} {h}:{m:02}, {length} min");
        }
    }

    #[test]
    fn the_spacing_delays_the_next_run_past_the_last_start() {
        let w = windows(&["daily 00:00-24:00"]);
        let spacing = Duration::from_secs(24 * 3600);
        assert_eq!(next_run(&w, spacing, at(0, 12, 0), None, minutes(5)), Some(at(0, 12, 0)));
        assert_eq!(next_run(&w, spacing, at(0, 12, 0), Some(at(0, 1, 0)), minutes(5)), Some(at(1, 1, 0)));
        assert_eq!(next_run(&w, spacing, at(2, 0, 0), Some(at(0, 1, 0)), minutes(5)), Some(at(2, 0, 0)));
        let office = windows(&["weekdays 10:00-16:00"]);
        assert_eq!(next_run(&office, spacing, at(4, 11, 0), Some(at(4, 10, 0)), minutes(5)), Some(at(7, 10, 0)));
    }

    #[test]
    fn window_at_finds_the_occurrence_holding_an_instant() {
        let w = windows(&["fri 22:00-02:00"]);
        assert_eq!(window_at(&w, at(5, 1, 0)), Some((at(4, 22, 0), at(5, 2, 0))));
        assert_eq!(window_at(&w, at(5, 2, 0)), None, "the end is exclusive");
    }
}
