//! Timestamps at the start of log lines, and the process a line names.
//!
//! Logs people have stamp their lines in a handful of ways; this module
//! reads them so that rates and "which failure came first" come from the
//! clock, not from line order:
//! - ISO 8601 with `T` or a space, with or without fractions (`.123` or
//!   log4j/logback/Python's `,123`) and zone (`Z`, `+01:00`, `+0100`):
//!   `2026-12-02T22:43:05.123Z`, `2026-12-02 22:43:05,123`, journalctl's
//!   `-o short-iso` (`2026-12-02T22:43:05+0000 host name[pid]: ...`);
//! - Go's `log` package (and nginx's error.log): `2006/01/02 15:04:05`,
//!   with `.000000` microseconds or not;
//! - syslog and journalctl's default short form: `Dec  2 22:43:05` and
//!   `Dec 02 22:43:05.123456 host name[pid]: ...` (no year: the current
//!   one, or the one before for a date in the future);
//! - java.util.logging's two-line form: `Dec 02, 2026 10:43:05 PM cls m`
//!   (the message is on the next line, which inherits the stamp).
//!
//! Any stamp may sit in square brackets. [`parse`] is called once per line
//! that the fast seed-record path did not take; it looks at the first byte
//! and a few fixed positions before anything else, so a line without a
//! stamp costs one or two comparisons (the bench of `benches/analyze.sh`
//! holds analyze to twice `grep -c`). It is hand-written for that reason: a
//! date crate would try format strings one after another on every line.
//!
//! A stamp with a zone is converted to UTC; one without is read as written
//! (lines of one host agree with each other, which is what ordering and
//! rates need). [`process`] finds the process that wrote a line: syslog's
//! `name[pid]:` (or `name:` after a syslog or journal stamp and the host
//! name) or a `pid=N` field. Java's thread names (`[main]`,
//! `[pool-1-thread-3]`) are threads of one process and are not read as one.
use std::sync::OnceLock;

/// How a stamp was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// ISO 8601 (and log4j's, Python's `asctime`), no host field after it.
    Iso,
    /// ISO 8601 with `T` and a numeric zone: journalctl's short-iso,
    /// followed by `host name[pid]:`.
    JournalIso,
    /// Go's `log` package and nginx: `2006/01/02 15:04:05`.
    Go,
    /// syslog or journalctl short: `Dec  2 22:43:05`, then `host name:`.
    Syslog,
    /// java.util.logging: `Dec 02, 2026 10:43:05 PM`.
    JavaLogging,
}

/// A timestamp read from the start of a line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stamp {
    /// Seconds since the Unix epoch: UTC when the line gives its zone, the
    /// clock as written when it does not.
    pub secs: f64,
    /// Bytes of the line the stamp took (brackets included).
    pub len: usize,
    pub form: Form,
}

/// The timestamp at the start of `line`, if it has one.
#[inline]
pub fn parse(line: &[u8]) -> Option<Stamp> {
    let first = *line.first()?;
    let (open, s) = if first == b'[' {
        (1, &line[1..])
    } else {
        (0, line)
    };
    let lead = *s.first()?;
    let mut st = if lead.is_ascii_digit() {
        numeric(s)?
    } else if lead.is_ascii_uppercase() {
        named_month(s)?
    } else {
        return None;
    };
    st.len += open;
    if open == 1 && line.get(st.len) == Some(&b']') {
        st.len += 1;
    }
    Some(st)
}

/// `n` decimal digits at `s[at..]`.
#[inline]
fn num(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let d = s.get(at..at + n)?;
    let mut v = 0u32;
    for &b in d {
        let x = b.wrapping_sub(b'0');
        if x > 9 {
            return None;
        }
        v = v * 10 + u32::from(x);
    }
    Some(v)
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian; Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch of a checked civil date and time.
fn epoch(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<f64> {
    let ok = (1..=12).contains(&mo) && (1..=31).contains(&d) && h < 24 && mi < 60 && s <= 60;
    ok.then(|| (days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s)) as f64)
}

/// `.123456` or `,123` at `s[at..]`: the fraction and the bytes it took.
fn fraction(s: &[u8], at: usize) -> (f64, usize) {
    if !matches!(s.get(at), Some(b'.') | Some(b',')) {
        return (0.0, 0);
    }
    let digits = s[at + 1..]
        .iter()
        .take(9)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return (0.0, 0);
    }
    let v = num(s, at + 1, digits).unwrap_or(0);
    (f64::from(v) / 10f64.powi(digits as i32), digits + 1)
}

/// `YYYY-MM-DD[T ]HH:MM:SS...` (ISO) or `YYYY/MM/DD HH:MM:SS...` (Go).
fn numeric(s: &[u8]) -> Option<Stamp> {
    if s.len() < 19 {
        return None;
    }
    let sep = s[4];
    if sep != b'-' && sep != b'/' {
        return None;
    }
    let y = num(s, 0, 4)?;
    let mo = num(s, 5, 2)?;
    let d = num(s, 8, 2)?;
    let t = s[10];
    let iso = sep == b'-';
    if s[7] != sep || !(t == b' ' || (iso && t == b'T')) || s[13] != b':' || s[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(s, 11, 2)?, num(s, 14, 2)?, num(s, 17, 2)?);
    let mut secs = epoch(i64::from(y), mo, d, h, mi, sec)?;
    let (frac, used) = fraction(s, 19);
    secs += frac;
    let mut len = 19 + used;
    let mut form = if iso { Form::Iso } else { Form::Go };
    if iso && let Some((offset, used)) = zone(&s[len..]) {
        // journalctl's short-iso writes a numeric offset (`+0000`); Node's
        // and most programs' UTC stamps end in `Z`, with no host after.
        if t == b'T' && s[len] != b'Z' {
            form = Form::JournalIso;
        }
        secs -= offset;
        len += used;
    }
    Some(Stamp { secs, len, form })
}

/// A zone right after the time: `Z`, `+01:00`, `+0100`, `-05`; its
/// offset east of UTC in seconds and the bytes it took.
fn zone(s: &[u8]) -> Option<(f64, usize)> {
    match s.first()? {
        b'Z' => Some((0.0, 1)),
        &c @ (b'+' | b'-') => {
            let h = num(s, 1, 2)?;
            let (m, used) = match (s.get(3), num(s, 3, 2), num(s, 4, 2)) {
                (Some(b':'), _, Some(m)) => (m, 6),
                (_, Some(m), _) => (m, 5),
                _ => (0, 3),
            };
            if h > 23 || m > 59 {
                return None;
            }
            let off = f64::from(h * 3600 + m * 60);
            Some((if c == b'-' { -off } else { off }, used))
        }
        _ => None,
    }
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `Dec  2 22:43:05` / `Dec 02 22:43:05.123` (syslog, journalctl) or
/// `Dec 02, 2026 10:43:05 PM` (java.util.logging).
fn named_month(s: &[u8]) -> Option<Stamp> {
    if s.len() < 15 || s[3] != b' ' {
        return None;
    }
    let mo = MONTHS.iter().position(|m| &s[..3] == *m)? as u32 + 1;
    // The day: `02`, ` 2` or `2`.
    let (d, mut at) = match (num(s, 4, 2), s[4], num(s, 5, 1), num(s, 4, 1)) {
        (Some(d), _, _, _) => (d, 6),
        (None, b' ', Some(d), _) => (d, 6),
        (None, _, _, Some(d)) => (d, 5),
        _ => return None,
    };
    if s.get(at) == Some(&b',') {
        // java.util.logging: `, 2026 10:43:05 PM`.
        let y = num(s, at + 2, 4)?;
        at += 7;
        let h_len = if s.get(at + 1) == Some(&b':') { 1 } else { 2 };
        let h = num(s, at, h_len)?;
        at += h_len;
        if s.get(at) != Some(&b':') || s.get(at + 3) != Some(&b':') {
            return None;
        }
        let (mi, sec) = (num(s, at + 1, 2)?, num(s, at + 4, 2)?);
        at += 6;
        let pm = match s.get(at..at + 3)? {
            b" PM" | b" pm" => true,
            b" AM" | b" am" => false,
            _ => return None,
        };
        if !(1..=12).contains(&h) {
            return None;
        }
        let h24 = h % 12 + if pm { 12 } else { 0 };
        let secs = epoch(i64::from(y), mo, d, h24, mi, sec)?;
        return Some(Stamp {
            secs,
            len: at + 3,
            form: Form::JavaLogging,
        });
    }
    if s.get(at) != Some(&b' ') || s.get(at + 3) != Some(&b':') || s.get(at + 6) != Some(&b':') {
        return None;
    }
    let (h, mi, sec) = (num(s, at + 1, 2)?, num(s, at + 4, 2)?, num(s, at + 7, 2)?);
    at += 9;
    let (frac, used) = fraction(s, at);
    let (now_year, now) = this_year();
    let mut secs = epoch(now_year, mo, d, h, mi, sec)?;
    if secs > now + 86_400.0 {
        // December's lines read in January: last year's.
        secs = epoch(now_year - 1, mo, d, h, mi, sec)?;
    }
    Some(Stamp {
        secs: secs + frac,
        len: at + used,
        form: Form::Syslog,
    })
}

/// The current UTC year and time, read once (syslog stamps have no year).
fn this_year() -> (i64, f64) {
    static NOW: OnceLock<(i64, f64)> = OnceLock::new();
    *NOW.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        // The year whose first day is the last one not after today.
        let days = (now / 86_400.0).floor() as i64;
        let mut y = 1970 + days / 366;
        while days_from_civil(y + 1, 1, 1) <= days {
            y += 1;
        }
        (y, now)
    })
}

/// The process a line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process<'a> {
    /// syslog's `name[pid]` (as written) or `name` alone.
    Named(&'a [u8]),
    /// The digits of a `pid=N` field.
    Pid(&'a [u8]),
}

impl Process<'_> {
    /// How the process reads in notes and source names.
    pub fn label(&self) -> String {
        match self {
            Process::Named(n) => String::from_utf8_lossy(n).into_owned(),
            Process::Pid(p) => format!("pid {}", String::from_utf8_lossy(p)),
        }
    }

    /// The key lines of one process share.
    pub fn key(&self) -> &[u8] {
        match self {
            Process::Named(n) | Process::Pid(n) => n,
        }
    }
}

fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'@')
}

/// `name[pid]:` as one word: `name[pid]` without the colon.
fn name_pid(w: &[u8]) -> Option<&[u8]> {
    let w = w.strip_suffix(b":")?;
    let inner = w.strip_suffix(b"]")?;
    let open = memchr::memrchr(b'[', inner)?;
    let (name, pid) = (&inner[..open], &inner[open + 1..]);
    (!name.is_empty()
        && name.iter().all(|&b| name_byte(b))
        && (1..=10).contains(&pid.len())
        && pid.iter().all(u8::is_ascii_digit))
    .then_some(w)
}

/// The process that wrote `line` (whose stamp is `stamp`): a `name[pid]:`
/// in the first words after the stamp, syslog's `host name:`, or `pid=N`.
pub fn process<'a>(line: &'a [u8], stamp: Option<&Stamp>) -> Option<Process<'a>> {
    if let Some(st) = stamp
        && let Some(rest) = line.get(st.len..)
    {
        let mut words = rest.split(|&b| b == b' ').filter(|w| !w.is_empty()).take(3);
        let (w0, w1) = (words.next(), words.next());
        for w in [w0, w1, words.next()].into_iter().flatten() {
            if let Some(n) = name_pid(w) {
                return Some(Process::Named(n));
            }
        }
        // syslog and journald: `host name: message`.
        if matches!(st.form, Form::Syslog | Form::JournalIso)
            && let (Some(host), Some(w)) = (w0, w1)
            && host.iter().all(|&b| name_byte(b))
            && let Some(name) = w.strip_suffix(b":")
            && !name.is_empty()
            && name.iter().all(|&b| name_byte(b))
        {
            return Some(Process::Named(name));
        }
    }
    // The first `pid=`, found by its `=` (memchr): most lines have none,
    // and on short lines this beats a substring search.
    let at =
        memchr::memchr_iter(b'=', line).find(|&eq| eq >= 3 && &line[eq - 3..eq] == b"pid")? - 3;
    if at > 0 && !matches!(line[at - 1], b' ' | b'[' | b'(' | b'\t') {
        return None;
    }
    let digits = line[at + 4..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    (1..=10)
        .contains(&digits)
        .then(|| Process::Pid(&line[at + 4..at + 4 + digits]))
}

/// `2026-12-02T22:43:05.123` (UTC, or as written) of a stamp.
pub fn iso(secs: f64) -> String {
    let ms = (secs.max(0.0) * 1000.0).round() as u64;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let s = humantime::format_rfc3339_millis(t).to_string();
    s.trim_end_matches('Z').to_string()
}

/// `22:43:05.123` (UTC, or as written) of a stamp, for notes.
pub fn clock(secs: f64) -> String {
    let day_ms = ((secs * 1000.0).round() as i64).rem_euclid(86_400_000);
    let (whole, ms) = (day_ms / 1000, day_ms % 1000);
    let (h, m, s) = (whole / 3600, whole / 60 % 60, whole % 60);
    if ms == 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{ms:03}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: &str) -> Option<(String, Form, usize)> {
        parse(line.as_bytes()).map(|s| (clock(s.secs), s.form, s.len))
    }

    #[test]
    fn iso_forms_with_and_without_zone_and_fractions() {
        // Node's `new Date().toISOString()`.
        assert_eq!(
            at("2026-12-02T22:43:05.123Z connections: 5"),
            Some(("22:43:05.123".into(), Form::Iso, 24))
        );
        // Python logging's asctime, log4j/logback's ISO8601.
        assert_eq!(
            at("2026-12-02 22:43:05,123 ERROR x"),
            Some(("22:43:05.123".into(), Form::Iso, 23))
        );
        assert_eq!(
            at("2026-12-02 22:43:05 x"),
            Some(("22:43:05".into(), Form::Iso, 19))
        );
        // A zone is converted to UTC.
        let a = parse(b"2026-12-02T23:43:05+01:00 x").unwrap();
        let b = parse(b"2026-12-02T22:43:05Z x").unwrap();
        let c = parse(b"2026-12-02T17:43:05-0500 x").unwrap();
        assert_eq!((a.secs, a.len), (b.secs, 25));
        assert_eq!((c.secs, c.len), (b.secs, 24));
        // The epoch itself, and a known date.
        assert_eq!(parse(b"1970-01-01T00:00:00Z").unwrap().secs, 0.0);
        assert_eq!(
            parse(b"2026-12-02T22:43:05Z").unwrap().secs,
            1_796_251_385.0
        );
        assert_eq!(
            at("[2026-12-02 22:43:05.5] x"),
            Some(("22:43:05.500".into(), Form::Iso, 23))
        );
    }

    #[test]
    fn go_syslog_journal_and_java_logging() {
        // Go's log package and nginx's error.log.
        assert_eq!(
            at("2026/12/02 18:58:26 [notice] 16633#16633: nginx/1.22.1"),
            Some(("18:58:26".into(), Form::Go, 19))
        );
        assert_eq!(
            at("2006/01/02 15:04:05.000123 dial tcp"),
            Some(("15:04:05".into(), Form::Go, 26))
        );
        // syslog pads the day with a space; journalctl short with a zero.
        assert_eq!(
            at("Dec  2 22:43:05 host app[12]: x"),
            Some(("22:43:05".into(), Form::Syslog, 15))
        );
        assert_eq!(
            at("Dec 02 22:43:05.250001 host kernel: x"),
            Some(("22:43:05.250".into(), Form::Syslog, 22))
        );
        // java.util.logging's SimpleFormatter: 12-hour clock.
        assert_eq!(
            at("Dec 02, 2026 10:43:05 PM Stamped main"),
            Some(("22:43:05".into(), Form::JavaLogging, 24))
        );
        assert_eq!(
            at("Dec 2, 2026 9:03:05 AM Stamped main"),
            Some(("09:03:05".into(), Form::JavaLogging, 22))
        );
        assert_eq!(
            at("Dec 02, 2026 12:00:01 AM X y"),
            Some(("00:00:01".into(), Form::JavaLogging, 24))
        );
    }

    #[test]
    fn iso_text_of_a_stamp() {
        assert_eq!(iso(1_796_251_385.123), "2026-12-02T22:43:05.123");
    }

    #[test]
    fn lines_without_a_stamp_are_none() {
        for line in [
            "connections: 1000, sockfd:1003, time_used:1241",
            "1013 connections",
            "2026-13-02 22:43:05 month 13",
            "2026-12-02 25:43:05 hour 25",
            "2026-12-02",
            "Decimal 12 22:43:05",
            "December 2 22:43:05",
            "| 1013 of 2000 (7484)",
            "12:34:56 time only",
            "SEVERE: java.net.ConnectException: Connection refused",
            "",
        ] {
            assert_eq!(parse(line.as_bytes()), None, "{line}");
        }
    }

    #[test]
    fn the_process_of_a_line() {
        let p = |line: &str| {
            let st = parse(line.as_bytes());
            process(line.as_bytes(), st.as_ref()).map(|p| p.label())
        };
        assert_eq!(
            p("Dec 02 22:43:05 host client[1234]: connections: 5"),
            Some("client[1234]".into())
        );
        assert_eq!(
            p("Dec 02 22:43:05 host kernel: Out of memory"),
            Some("kernel".into())
        );
        assert_eq!(
            p("2026-12-02T22:43:05+0000 web-1 c1m[77]: x"),
            Some("c1m[77]".into())
        );
        assert_eq!(
            p("2026-12-02 22:43:05,123 client[4242]: connections: 5"),
            Some("client[4242]".into())
        );
        assert_eq!(p("ts=3 pid=4242 msg=x"), Some("pid 4242".into()));
        // Java's thread names and logger names are not processes.
        assert_eq!(p("2026-12-02 22:43:05,123 [main] INFO Client: x"), None);
        assert_eq!(
            p("2026-12-02 22:43:05,123 [pool-1-thread-3] WARN a.B: x"),
            None
        );
        assert_eq!(p("2026-12-02 22:43:05,123 INFO root: x"), None);
        // The kernel's `pid=N` inside an oom-kill record names the victim.
        assert_eq!(
            p("oom-kill:constraint=CONSTRAINT_NONE,pid=27012,uid=0"),
            None
        );
    }
}
