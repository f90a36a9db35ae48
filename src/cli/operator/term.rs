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

/// `2026-11-02T10:00:01Z` for milliseconds since the Unix epoch.
pub fn rfc3339(ms: u64) -> String {
    crate::time::Timestamp(ms).rfc3339()
}

/// Milliseconds since the Unix epoch of an RFC 3339 time (`2026-11-02T10:30:01Z`,
/// `…+02:00`), or a UTC date or date-time without offset (`2026-11-02`,
/// `2026-11-02T10:30`).
pub fn parse_time(text: &str) -> Option<u64> {
    let text = text.trim();
    let utc = |dt: jiff::civil::DateTime| jiff::tz::Offset::UTC.to_timestamp(dt).ok();
    let at = text
        .parse::<jiff::Timestamp>()
        .ok()
        .or_else(|| text.parse::<jiff::civil::DateTime>().ok().and_then(utc))
        .or_else(|| {
            text.parse::<jiff::civil::Date>().ok().and_then(|d| utc(d.to_datetime(jiff::civil::Time::midnight())))
        })?;
    u64::try_from(at.as_millisecond()).ok()
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
