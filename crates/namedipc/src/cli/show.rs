//! How values look to people: owners by user name, permission bits in
//! octal, ages and sizes rounded to one unit, times in UTC, and text from
//! elsewhere (names, reasons) with what a terminal would act on escaped.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// User names by uid, from /etc/passwd (users known only to other name
/// services are shown by number).
pub(super) struct Users(HashMap<u32, String>);

impl Users {
    pub(super) fn load() -> Self {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        Self(
            passwd
                .lines()
                .filter_map(|line| {
                    let mut fields = line.split(':');
                    let name = fields.next()?;
                    let uid = fields.nth(1)?.parse().ok()?;
                    Some((uid, name.to_owned()))
                })
                .collect(),
        )
    }

    /// The user's name, if known.
    pub(super) fn name(&self, uid: u32) -> Option<&str> {
        self.0.get(&uid).map(String::as_str)
    }

    /// The user's name, or the number when the name is unknown.
    pub(super) fn display(&self, uid: Option<u32>) -> String {
        match uid {
            None => "?".to_owned(),
            Some(uid) => self
                .name(uid)
                .map_or_else(|| uid.to_string(), str::to_owned),
        }
    }
}

/// Whether `c` must not reach a terminal as it is: the C0 controls, DEL and
/// the C1 controls (Unicode's category Cc: escape sequences, line breaks,
/// a carriage return that overwrites a line), and the invisible characters
/// that reorder, join or break text (bidirectional controls, zero-width
/// characters, line and paragraph separators), which can make one name
/// look like another or a row like two. The backslash too, so that an
/// escaped text reads back unambiguously.
pub(super) fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

/// `text` as it may be printed on a terminal: every character
/// [`needs_escape`] names is written as Python's `repr` writes it — `\n`,
/// `\r`, `\t`, `\\` for the backslash, `\xNN` for the other characters
/// up to U+00FF (ESC is `\x1b`, DEL `\x7f`, the C1 CSI `\x9b`), `\uNNNN`
/// above — and everything else as it is (docs/cli.md, "Names on a
/// terminal"). Every name and message `ls`, `info` and `rm` print as text
/// goes through this; `--json` is exact instead (JSON's own escapes).
pub(super) fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && u32::from(c) <= 0xff => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Permission bits as four octal digits, e.g. "0600".
pub(super) fn mode(mode: Option<u32>) -> String {
    mode.map_or_else(|| "?".to_owned(), |m| format!("{m:04o}"))
}

/// How long ago `at` was, if it was in the past (clocks can disagree).
pub(super) fn age(at: SystemTime) -> Option<Duration> {
    SystemTime::now().duration_since(at).ok()
}

/// A duration in its largest whole unit: "45s", "12m", "3h", "2d".
pub(super) fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// A size in bytes, in binary units above 1 KiB: "512 bytes", "4.0 KiB".
pub(super) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    // Shown to one decimal: the precision an f64 loses past 2^52 bytes is
    // far below that.
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Seconds since the Unix epoch, for JSON.
pub(super) fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A point in time as "2026-11-22 06:10:03 UTC".
pub(super) fn utc(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day number counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// "1 process", "2 processes".
pub(super) fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661);
        assert_eq!(utc(leap_day), "2000-02-29 01:01:01 UTC");
        let later = UNIX_EPOCH + Duration::from_secs(1_795_324_203);
        assert_eq!(utc(later), "2026-11-22 05:10:03 UTC");
    }

    #[test]
    fn durations_and_sizes_are_rounded_to_one_unit() {
        assert_eq!(duration(Duration::from_secs(59)), "59s");
        assert_eq!(duration(Duration::from_secs(61)), "1m");
        assert_eq!(duration(Duration::from_secs(7200)), "2h");
        assert_eq!(duration(Duration::from_secs(3 * 86_400)), "3d");
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(4096), "4.0 KiB");
        assert_eq!(size(64 << 20), "64.0 MiB");
        assert_eq!(mode(Some(0o600)), "0600");
        assert_eq!(count(1, "slot", "slots"), "1 slot");
    }

    #[test]
    fn control_characters_are_escaped_as_python_repr_does() {
        assert!(matches!(escaped("/jobs-1 é ü 日本"), Cow::Borrowed(_)));
        assert_eq!(escaped("/a\x1b[31mred"), "/a\\x1b[31mred");
        assert_eq!(escaped("/a\nsem /b root 0600"), "/a\\nsem /b root 0600");
        assert_eq!(escaped("\t\r\0\x7f"), "\\t\\r\\x00\\x7f");
        assert_eq!(escaped("\u{9b}2J\u{85}"), "\\x9b2J\\x85");
        assert_eq!(
            escaped("a\u{202e}b\u{2028}c\u{feff}"),
            "a\\u202eb\\u2028c\\ufeff"
        );
        assert_eq!(escaped("back\\slash"), "back\\\\slash");
        // Nothing a terminal acts on is left, whatever the input.
        let every: String = (0..=0x3000u32).filter_map(char::from_u32).collect();
        let shown = escaped(&every);
        assert!(
            !shown.chars().any(|c| c != '\\' && needs_escape(c)),
            "{shown}"
        );
    }
}
