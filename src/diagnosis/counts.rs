//! Connection counts from free-form progress lines, the ones programs other
//! than the seed client print: `connections: 250, time_used: 8 ms` (any
//! tail), `1013 connections`, `established=1018`, `active 1003`, a JSON
//! field named like connections (`{"connections": 52}`), tcpkali's ribbon
//! (`| 1013 of 2000 (7484)`, records separated by carriage returns) and
//! traffic line (`(conns 0↓ 1013↑ 987⇡; seen 7484)`), and `N/M` (k6's
//! `1000/1000 VUs`).
//!
//! [`sample`] reads one line; [`Series`] follows one form through a
//! source; [`FreeCounts::pick`] chooses the series that behaves like a
//! connection count (a named form first, then one that rises more than it
//! falls) and says whether it is sure. The keywords are found with one
//! Aho-Corasick pass, and only on lines no other parser took.
use std::sync::OnceLock;

use aho_corasick::AhoCorasick;

/// How a count was written, most telling first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Form {
    /// `connections: N` with any tail, or `connections = N`.
    ConnectionsColon,
    /// A JSON field named like connections: `"connections": N`.
    Json,
    /// `established=N`, `established: N`.
    Established,
    /// `active N`, `active: N`, `active connections: N`.
    Active,
    /// `N connections` (also `N active connections`).
    NConnections,
    /// tcpkali's traffic line: `(conns IN↓ OUT↑ ...)`.
    Conns,
    /// `N of M` (tcpkali's ribbon).
    OfTotal,
    /// `N/M` (k6's VUs).
    Slash,
}

impl Form {
    pub const ALL: [Form; 8] = [
        Form::ConnectionsColon,
        Form::Json,
        Form::Established,
        Form::Active,
        Form::NConnections,
        Form::Conns,
        Form::OfTotal,
        Form::Slash,
    ];

    /// How the form reads in notes.
    pub fn as_str(self) -> &'static str {
        match self {
            Form::ConnectionsColon => "`connections: N`",
            Form::Json => "a JSON connections field",
            Form::Established => "`established=N`",
            Form::Active => "`active N`",
            Form::NConnections => "`N connections`",
            Form::Conns => "tcpkali's `conns N↓ N↑`",
            Form::OfTotal => "`N of M`",
            Form::Slash => "`N/M`",
        }
    }

    /// Named forms say they count connections; the others are numbers
    /// that may be something else.
    pub fn named(self) -> bool {
        !matches!(self, Form::OfTotal | Form::Slash)
    }
}

/// One count read from a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub value: u64,
    /// The target next to it (`of M`, `/M`).
    pub total: Option<u64>,
    pub form: Form,
    /// Read from a damaged line (the prefix intact, the tail garbage).
    pub salvaged: bool,
}

const KEYWORDS: &[&str] = &[
    "connection",
    "conns ",
    "established",
    "active",
    " of ",
    "/",
    "\"conn",
];

fn keywords() -> Option<&'static AhoCorasick> {
    static AC: OnceLock<Option<AhoCorasick>> = OnceLock::new();
    AC.get_or_init(|| AhoCorasick::new(KEYWORDS).ok()).as_ref()
}

/// Leading decimal digits of `s` (at most 19).
fn number(s: &[u8]) -> Option<(u64, usize)> {
    let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || n > 19 {
        return None;
    }
    let v = std::str::from_utf8(&s[..n]).ok()?.parse().ok()?;
    Some((v, n))
}

/// The number after `at` once spaces, quotes, `:` and `=` are skipped.
fn number_after(s: &[u8], at: usize) -> Option<u64> {
    let rest = s.get(at..)?;
    let skip = rest
        .iter()
        .take_while(|&&b| matches!(b, b' ' | b'\t' | b':' | b'=' | b'"'))
        .count();
    number(&rest[skip..]).map(|(v, _)| v)
}

/// The number that ends just before `at` (spaces between allowed).
fn number_before(s: &[u8], at: usize) -> Option<u64> {
    let head = &s[..at];
    let head = &head[..head.len() - head.iter().rev().take_while(|&&b| b == b' ').count()];
    let n = head.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || n > 19 {
        return None;
    }
    let start = head.len() - n;
    if start > 0 && (head[start - 1].is_ascii_alphanumeric() || head[start - 1] == b'.') {
        return None;
    }
    number(&head[start..]).map(|(v, _)| v)
}

fn word_before(s: &[u8], at: usize) -> bool {
    at == 0 || !s[at - 1].is_ascii_alphanumeric()
}

/// The count a lowercased line holds, in its most telling form.
pub fn sample(lower: &[u8]) -> Option<Sample> {
    if !lower.iter().any(u8::is_ascii_digit) {
        return None;
    }
    let ac = keywords()?;
    let mut best: Option<Sample> = None;
    let mut consider = |value: Option<u64>, total: Option<u64>, form: Form| {
        if let Some(value) = value
            && best.is_none_or(|b| form < b.form)
        {
            best = Some(Sample {
                value,
                total,
                form,
                salvaged: false,
            });
        }
    };
    for m in ac.find_iter(lower) {
        let (at, end) = (m.start(), m.end());
        match KEYWORDS[m.pattern().as_usize()] {
            "connection" => {
                let after = &lower[end..];
                let plural = usize::from(after.first() == Some(&b's'));
                let tail = &after[plural..];
                if tail.starts_with(b"\":") {
                    // A JSON key ending in connections: `"connections": 5`,
                    // `"active_connections": 5`.
                    let key_start = lower[..at].iter().rposition(|&b| b == b'"').unwrap_or(0);
                    let form = if memchr::memmem::find(&lower[key_start..at], b"active").is_some() {
                        Form::Active
                    } else {
                        Form::Json
                    };
                    consider(number_after(lower, end + plural + 1), None, form);
                } else if matches!(tail.first(), Some(b':') | Some(b'=')) {
                    let form = if at >= 7 && &lower[at - 7..at] == b"active " {
                        Form::Active
                    } else {
                        Form::ConnectionsColon
                    };
                    consider(number_after(lower, end + plural), None, form);
                } else if word_before(lower, at)
                    && memchr::memmem::find(&lower[..at], b" threads and ").is_none()
                {
                    // `1013 connections`, `1013 active connections` (not
                    // wrk's `4 threads and 1000 connections`, its target).
                    let mut before = at;
                    for w in [&b"active "[..], b"open ", b"established "] {
                        if lower[..before].ends_with(w) {
                            before -= w.len();
                        }
                    }
                    consider(number_before(lower, before), None, Form::NConnections);
                }
            }
            "\"conn" => {
                // `"conns": 5`, `"connections_active": 5`.
                let close = lower[end..].iter().position(|&b| b == b'"');
                if let Some(c) = close
                    && lower.get(end + c + 1) == Some(&b':')
                {
                    consider(number_after(lower, end + c + 2), None, Form::Json);
                }
            }
            "established" if word_before(lower, at) => {
                consider(number_after(lower, end), None, Form::Established);
            }
            "active" if word_before(lower, at) => {
                let after = &lower[end..];
                if matches!(after.first(), Some(b' ') | Some(b':') | Some(b'=')) {
                    consider(number_after(lower, end), None, Form::Active);
                }
            }
            "conns " => {
                // tcpkali: `(conns 0↓ 1013↑ 987⇡; seen 7484)`: in + out.
                let rest = &lower[end..];
                if let Some((inbound, n)) = number(rest) {
                    let rest = &rest[n..];
                    let skip = rest.iter().take_while(|&&b| !b.is_ascii_digit()).count();
                    if skip <= 5
                        && let Some((out, _)) = number(&rest[skip..])
                    {
                        consider(inbound.checked_add(out), None, Form::Conns);
                    }
                }
            }
            " of " => {
                if let (Some(n), Some(total)) = (number_before(lower, at), number_after(lower, end))
                {
                    consider(Some(n), Some(total), Form::OfTotal);
                }
            }
            "/" => {
                // `1000/1000 VUs`: one slash between two numbers, no date.
                let n = number_before(lower, at);
                let total = number(&lower[end..])
                    .filter(|(_, used)| !matches!(lower.get(end + used), Some(b'/') | Some(b':')));
                let date = at >= 3 && lower[..at].ends_with(b"/");
                if let (Some(n), Some((total, _))) = (n, total)
                    && !date
                    && total >= n
                    && total >= 10
                {
                    consider(Some(n), Some(total), Form::Slash);
                }
            }
            _ => {}
        }
    }
    best
}

/// The count of a damaged seed progress line: `connections: N` intact,
/// garbage after it.
pub fn salvage(t: &[u8]) -> Option<Sample> {
    let at = memchr::memmem::find(t, b"connections:")?;
    let value = number_after(t, at + b"connections:".len())?;
    Some(Sample {
        value,
        total: None,
        form: Form::ConnectionsColon,
        salvaged: true,
    })
}

/// The last count of a line that holds several records separated by
/// carriage returns (tcpkali redraws its ribbon with `\r`).
pub fn last_sample(lower: &[u8]) -> Option<Sample> {
    if memchr::memchr(b'\r', lower).is_none() {
        return sample(lower);
    }
    // The most telling form wins; of that form, the last record.
    let mut best: Option<Sample> = None;
    for seg in lower.split(|&b| b == b'\r') {
        if let Some(s) = sample(seg)
            && best.is_none_or(|b| s.form <= b.form)
        {
            best = Some(s);
        }
    }
    best
}

/// One form's counts through a source.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub samples: u64,
    pub first: u64,
    pub last: u64,
    pub max: u64,
    pub max_line: u64,
    pub total: Option<u64>,
    /// Steps up and down between samples.
    pub rises: u64,
    pub falls: u64,
    /// The last samples equal to the maximum (a plateau at the end).
    pub at_max_tail: u64,
    /// When the lines carry timestamps (boxed: most sources have none, and
    /// a file may hold tens of thousands of sources).
    pub clock: Option<Box<Clock>>,
}

/// The times of a series' samples.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// The time of the first sample whose line had a timestamp, and its
    /// value; the time of the line that first showed the maximum.
    pub first: Option<(f64, u64)>,
    pub max_ts: Option<f64>,
}

impl Series {
    /// Add a sample read on `line`, at time `ts` when the line had a stamp.
    pub fn add(&mut self, s: &Sample, line: u64, ts: Option<f64>) {
        let new_max = self.samples == 0 || s.value > self.max;
        if ts.is_some() || self.clock.is_some() {
            let c = self.clock.get_or_insert_with(Default::default);
            if let Some(t) = ts
                && c.first.is_none()
            {
                c.first = Some((t, s.value));
            }
            if new_max {
                c.max_ts = ts;
            }
        }
        if self.samples == 0 {
            self.first = s.value;
        } else if s.value > self.last {
            self.rises += 1;
        } else if s.value < self.last {
            self.falls += 1;
        }
        if new_max {
            self.max = s.value;
            self.max_line = line;
            self.at_max_tail = 0;
        }
        if s.value == self.max {
            self.at_max_tail += 1;
        } else {
            self.at_max_tail = 0;
        }
        self.samples += 1;
        self.last = s.value;
        if s.total.is_some() {
            self.total = s.total;
        }
    }

    /// Connections per second from the timestamps: the rise from the first
    /// stamped sample to the maximum over the time between their lines,
    /// with the connections and seconds it is made of.
    pub fn stamped_rate(&self) -> Option<(f64, u64, f64)> {
        let c = self.clock.as_deref()?;
        let (t0, v0) = c.first?;
        let dt = c.max_ts? - t0;
        let n = self.max.checked_sub(v0).filter(|&n| n > 0)?;
        (dt > 0.0).then(|| (n as f64 / dt, n, dt))
    }

    /// Rises much more than it falls: a count of things opened.
    pub fn monotone(&self) -> bool {
        self.falls.saturating_mul(4) <= self.rises
    }
}

/// Every free-form series of a source.
#[derive(Debug, Clone, Default)]
pub struct FreeCounts {
    pub series: [Series; 8],
    pub salvaged: u64,
}

impl FreeCounts {
    pub fn add(&mut self, s: &Sample, line: u64, ts: Option<f64>) {
        let i = Form::ALL.iter().position(|f| *f == s.form).unwrap_or(0);
        self.series[i].add(s, line, ts);
        if s.salvaged {
            self.salvaged += 1;
        }
    }

    /// The series that behaves like a connection count: the most telling
    /// form that rises more than it falls (else the most telling one),
    /// and whether that is sure (a named form, several samples, monotone).
    pub fn pick(&self) -> Option<(Form, &Series, bool)> {
        let present = || {
            Form::ALL
                .iter()
                .zip(self.series.iter())
                .filter(|(_, s)| s.samples > 0)
        };
        let (form, series) = present()
            .find(|(_, s)| s.monotone())
            .or_else(|| present().next())?;
        let sure = form.named() && series.samples >= 2 && series.monotone();
        Some((*form, series, sure))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(line: &str) -> Option<(u64, Form)> {
        sample(line.to_lowercase().as_bytes()).map(|s| (s.value, s.form))
    }

    #[test]
    fn every_form_reads_its_count() {
        // Lines of tests/fixtures/runtimes (python, node, java) and tools.
        assert_eq!(
            s("connections: 1019, time_used: 0 ms"),
            Some((1019, Form::ConnectionsColon))
        );
        assert_eq!(s("1004 connections"), Some((1004, Form::NConnections)));
        assert_eq!(s("established=1018"), Some((1018, Form::Established)));
        assert_eq!(s("active 1003"), Some((1003, Form::Active)));
        assert_eq!(s("{\"connections\": 1015}"), Some((1015, Form::Json)));
        assert_eq!(
            s("{\"ts\": 3, \"active_connections\": 77}"),
            Some((77, Form::Active))
        );
        assert_eq!(s("{\"conns_open\": 12}"), Some((12, Form::Json)));
        assert_eq!(
            s("|==========>------| 1013 of 2000 (7484)"),
            Some((1013, Form::OfTotal))
        );
        assert_eq!(
            s("Traffic 0.000↓, 0.001↑ Mbps (conns 0↓ 1013↑ 987⇡; seen 7484)"),
            Some((1013, Form::Conns))
        );
        assert_eq!(
            s("running (0m05.0s), 1000/1000 VUs, 4512 complete and 0 interrupted iterations"),
            Some((1000, Form::Slash))
        );
        // wrk's header names its target, not a count.
        assert_eq!(s("  4 threads and 20000 connections"), None);
    }

    #[test]
    fn dates_paths_and_prose_are_no_counts() {
        assert_eq!(s("2024/05/01 10:00:00 [notice] 1#1: start"), None);
        assert_eq!(s("see /usr/lib/x86_64"), None);
        assert_eq!(s("no connections yet"), None);
        assert_eq!(s("reconnection 5 failed"), None);
    }

    #[test]
    fn a_ribbon_redrawn_with_carriage_returns_gives_its_last_count() {
        let line =
            b"|=>---| 10 of 2000 (10)\r|==>--| 500 of 2000 (600)\r|===>-| 1013 of 2000 (7484)";
        assert_eq!(last_sample(line).map(|s| s.value), Some(1013));
    }

    #[test]
    fn the_series_that_rises_is_picked_and_unsure_forms_say_so() {
        let mut fc = FreeCounts::default();
        for (i, v) in [100u64, 200, 300, 300].iter().enumerate() {
            fc.add(
                &Sample {
                    value: *v,
                    total: None,
                    form: Form::NConnections,
                    salvaged: false,
                },
                i as u64,
                Some(10.0 + i as f64 * 0.5),
            );
        }
        let (form, series, sure) = fc.pick().unwrap();
        // 200 more connections between the first line (at 10 s) and the
        // first at the peak (at 11 s).
        assert_eq!(series.stamped_rate(), Some((200.0, 200, 1.0)));
        assert_eq!((form, series.max, sure), (Form::NConnections, 300, true));
        let mut ribbon = FreeCounts::default();
        ribbon.add(
            &Sample {
                value: 1013,
                total: Some(2000),
                form: Form::OfTotal,
                salvaged: false,
            },
            1,
            None,
        );
        let (_, series, sure) = ribbon.pick().unwrap();
        assert_eq!(series.stamped_rate(), None);
        assert_eq!((series.max, series.total, sure), (1013, Some(2000), false));
    }

    #[test]
    fn a_damaged_progress_line_still_gives_its_count() {
        let got = salvage(b"connections: 94999, sock\xf3\x87fd:9\x01").unwrap();
        assert_eq!((got.value, got.salvaged), (94999, true));
    }
}
