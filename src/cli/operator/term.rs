//! The terminal side of the operator commands: colour only when stdout is a
//! terminal (and `NO_COLOR` is unset), times as RFC 3339 UTC, short durations,
//! and the typed confirmation.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

/// ANSI styling, or none. Decided once per command from stdout.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    enabled: bool,
}

impl Style {
    /// Colour when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`.
    pub fn for_stdout() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Self { enabled: std::io::stdout().is_terminal() && !no_color && !dumb }
    }

    /// No styling at all.
    #[cfg(test)]
    pub fn plain() -> Self {
        Self { enabled: false }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.enabled { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }
    /// Bad news.
    pub fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }
    /// Good news.
    pub fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }
    /// Attention.
    pub fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }
    /// Headings.
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
    /// Secondary detail.
    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
    /// A health word in its colour.
    pub fn health(&self, word: &str) -> String {
        match word {
            "up" => self.green(word),
            "down" => self.red(word),
            _ => self.yellow(word),
        }
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-02T10:00:01Z` for milliseconds since the Unix epoch.
pub fn rfc3339(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", t / 3600, t / 60 % 60, t % 60)
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fff]]` with `Z`, `+HH:MM` or nothing (UTC).
pub fn parse_time(text: &str) -> Option<u64> {
    let text = text.trim();
    let (date, rest) = text.split_at_checked(text.len().min(10))?;
    let mut parts = date.split('-');
    let (y, m, d): (i64, u32, u32) =
        (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    let rest = rest.strip_prefix(['T', 't', ' ']).unwrap_or(rest);
    if !rest.is_empty() {
        let (clock, offset) = match rest.find(['Z', 'z', '+', '-']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let mut fields = clock.split(':');
        let h: i64 = fields.next()?.parse().ok()?;
        let min: i64 = fields.next()?.parse().ok()?;
        let sec: f64 = fields.next().map_or(Some(0.0), |s| s.parse().ok())?;
        if fields.next().is_some() || h > 23 || min > 59 || !(0.0..61.0).contains(&sec) {
            return None;
        }
        ms += h * 3_600_000 + min * 60_000 + (sec * 1000.0).round() as i64;
        match offset {
            "" | "Z" | "z" => {}
            o => {
                let sign = if o.starts_with('-') { -1 } else { 1 };
                let (oh, om) = o[1..].split_once(':')?;
                ms -= sign * (oh.parse::<i64>().ok()? * 3_600_000 + om.parse::<i64>().ok()? * 60_000);
            }
        }
    }
    u64::try_from(ms).ok()
}

/// `3h59m`, `12s`, `450ms`: the two largest units.
pub fn short(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    let (days, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) if sec == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m{sec}s"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h{m}m"),
        (_, 0, _) => format!("{days}d"),
        _ => format!("{days}d{h}h"),
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    crate::time::Clock::now(&crate::time::SystemClock::default()).as_millis()
}

/// "expires in 3h59m (2026-…Z)", "no expiry", "expired".
pub fn expiry(expires_at: Option<u64>, now: u64) -> String {
    match expires_at {
        None => "no expiry".into(),
        Some(at) if at <= now => format!("expired {}", rfc3339(at)),
        Some(at) => format!("expires in {} ({})", short(Duration::from_millis(at - now)), rfc3339(at)),
    }
}

/// Asks on stderr to type `word` and reads one line from stdin. `Ok(true)` when
/// the typed text is `word` (surrounding blanks and a trailing dot forgiven for
/// record names); `Ok(false)` on anything else, including end of input.
pub fn confirm(prompt: &str, word: &str) -> std::io::Result<bool> {
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{prompt} Type {word:?} to confirm: ")?;
    stderr.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let typed = line.trim();
    Ok(!typed.is_empty() && typed.trim_end_matches('.') == word.trim_end_matches('.'))
}

/// Breaks `text` into lines of at most `width` characters at spaces; lines after
/// the first start with `indent`. A word longer than a line stays whole.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if line_len > 0 && line_len + 1 + len > width {
            out.push('\n');
            out.push_str(indent);
            line_len = indent.chars().count();
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += len;
    }
    out
}

/// Pads or cuts `text` to `width` characters (cut text ends with `…`).
pub fn fit(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        format!("{text:<width$}")
    } else {
        let cut: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_rfc3339() {
        for ms in [0, 951_782_400_000, 1_793_615_401_000, 4_107_542_399_000] {
            assert_eq!(parse_time(&rfc3339(ms)), Some(ms), "{}", rfc3339(ms));
        }
        assert_eq!(rfc3339(1_793_615_401_000), "2026-11-02T10:30:01Z");
        assert_eq!(parse_time("2026-11-02"), parse_time("2026-11-02T00:00:00Z"));
        assert_eq!(parse_time("2026-11-02T12:30:01+02:00"), parse_time("2026-11-02T10:30:01Z"));
        assert_eq!(parse_time("2026-11-02T10:30:01.250Z"), Some(1_793_615_401_250));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2026-13-01"), None);
    }

    #[test]
    fn short_durations_show_the_two_largest_units() {
        assert_eq!(short(Duration::from_millis(450)), "450ms");
        assert_eq!(short(Duration::from_secs(12)), "12s");
        assert_eq!(short(Duration::from_secs(4 * 3600 - 60)), "3h59m");
        assert_eq!(short(Duration::from_secs(90)), "1m30s");
        assert_eq!(short(Duration::from_secs(2 * 86_400 + 3600)), "2d1h");
    }

    #[test]
    fn wrap_breaks_at_spaces_and_indents_the_rest() {
        assert_eq!(wrap("aa bb cc dd", 5, "  "), "aa bb\n  cc\n  dd");
        assert_eq!(wrap("short", 80, "  "), "short");
    }

    #[test]
    fn fit_pads_and_cuts() {
        assert_eq!(fit("ab", 4), "ab  ");
        assert_eq!(fit("abcdef", 4), "abc…");
    }

    #[test]
    fn plain_style_adds_no_escapes() {
        assert_eq!(Style::plain().red("down"), "down");
        assert_eq!(Style { enabled: true }.red("down"), "\x1b[31mdown\x1b[0m");
    }
}
