//! Runtime error vocabularies, as data: one table per runtime or tool
//! (glibc, Go, Java, Python, Node.js, Rust, nginx, HAProxy/Envoy, wrk,
//! tcpkali, k6, Redis, Mosquitto), each entry a literal that a real line of that runtime
//! holds, mapped to a catalogue id with the call and errno it stands for.
//! Adding a form is adding a row; the matching engine below is shared.
//!
//! Matching is one Aho-Corasick pass over the lowercased line (built once
//! from every table's needles), then a check of the entry's other literals
//! and word boundaries. It runs only on lines the fast paths did not take
//! (the seed's progress and error records never reach it), so the 1 GiB
//! seed-format bench does not pay for it. Among the entries that match,
//! the most specific one (longest literals) wins.
//!
//! Each entry carries `example`, a real line of its runtime, and the test
//! at the bottom checks that every example matches its own entry.
//! Multi-line exceptions (Java stack traces and `Caused by:`, Python
//! tracebacks and chained exceptions, Node.js error objects) are folded
//! into one event by the source, which asks [`continuation`] whether a
//! line belongs to the exception above it.
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::catalogue::FailureId;

pub mod glibc;
pub mod go;
pub mod java;
pub mod k6;
pub mod mosquitto;
pub mod nginx;
pub mod node;
pub mod proxy;
pub mod python;
pub mod redis;
pub mod rust;
pub mod tcpkali;
pub mod wrk;

/// One form a runtime prints.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// A lowercase literal the line holds (matched on word boundaries at
    /// its alphanumeric ends).
    pub needle: &'static str,
    /// Further lowercase literals that must all be in the line too.
    pub also: &'static [&'static str],
    /// Lowercase literals that must not be in the line (`in system` after
    /// `too many open files` is ENFILE, another failure).
    pub except: &'static [&'static str],
    pub id: FailureId,
    /// The call it failed in ("connect", "accept", "socket", "recv"...), or
    /// "" when the form does not say (the line's own call word is used).
    pub call: &'static str,
    pub errno: Option<i32>,
    /// Counted fields (wrk's `connect 12, read 3`): each word followed by
    /// a number gives that many failures of its id; the entry's own id is
    /// then only a label. Empty for one-event lines.
    pub fields: &'static [(&'static str, FailureId)],
    /// A real line of the runtime that this entry matches.
    pub example: &'static str,
}

impl Entry {
    /// A one-event form: `needle` shows `id` from `call` with `errno`.
    pub const fn new(
        needle: &'static str,
        id: FailureId,
        call: &'static str,
        errno: Option<i32>,
        example: &'static str,
    ) -> Entry {
        Entry {
            needle,
            also: &[],
            except: &[],
            id,
            call,
            errno,
            fields: &[],
            example,
        }
    }

    /// The same, only when the line also holds each of `also`.
    pub const fn also(mut self, also: &'static [&'static str]) -> Entry {
        self.also = also;
        self
    }

    /// The same, unless the line holds one of `except`.
    pub const fn except(mut self, except: &'static [&'static str]) -> Entry {
        self.except = except;
        self
    }

    /// A summary line whose `word N` fields count failures.
    pub const fn fields(mut self, fields: &'static [(&'static str, FailureId)]) -> Entry {
        self.fields = fields;
        self
    }

    fn specificity(&self) -> usize {
        self.needle.len() + self.also.iter().map(|a| a.len()).sum::<usize>()
    }
}

/// The forms of one runtime or tool.
#[derive(Debug)]
pub struct Table {
    /// "java", "python", "nginx"...
    pub runtime: &'static str,
    /// Its errors span several lines (stack traces, tracebacks, error
    /// objects) that fold into one event.
    pub traces: bool,
    pub entries: &'static [Entry],
}

/// Every table, in the order they are listed in the README.
pub const TABLES: &[&Table] = &[
    &glibc::TABLE,
    &go::TABLE,
    &java::TABLE,
    &python::TABLE,
    &node::TABLE,
    &rust::TABLE,
    &nginx::TABLE,
    &proxy::TABLE,
    &wrk::TABLE,
    &tcpkali::TABLE,
    &k6::TABLE,
    &redis::TABLE,
    &mosquitto::TABLE,
];

/// A vocabulary entry found in a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub runtime: &'static str,
    /// The runtime prints multi-line errors (see [`Table::traces`]).
    pub traces: bool,
    pub id: FailureId,
    pub call: &'static str,
    pub errno: Option<i32>,
    /// Up to four counted fields (id, count) of a summary line.
    pub counted: [(FailureId, u64); 4],
    pub n_counted: u8,
}

impl Hit {
    /// The counted fields with a count above zero.
    pub fn counted(&self) -> impl Iterator<Item = (FailureId, u64)> + '_ {
        self.counted[..self.n_counted as usize]
            .iter()
            .copied()
            .filter(|(_, n)| *n > 0)
    }

    /// True for a summary line of counts (wrk's `Socket errors:`).
    pub fn is_tally(&self) -> bool {
        self.n_counted > 0
    }
}

struct Engine {
    ac: AhoCorasick,
    /// Pattern index -> (table, entry).
    owners: Vec<(usize, usize)>,
}

fn engine() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut needles = Vec::new();
            let mut owners = Vec::new();
            for (t, table) in TABLES.iter().enumerate() {
                for (e, entry) in table.entries.iter().enumerate() {
                    needles.push(entry.needle.as_bytes());
                    owners.push((t, e));
                }
            }
            // Standard semantics: every needle that occurs is reported by
            // the overlapping search, so the most specific entry can win.
            AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(needles)
                .ok()
                .map(|ac| Engine { ac, owners })
        })
        .as_ref()
}

#[inline]
fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `needle` at `at` in `hay`, not glued to a word at an alphanumeric end.
fn on_boundary(hay: &[u8], at: usize, needle: &[u8]) -> bool {
    let first = needle.first().copied().unwrap_or(b' ');
    let last = needle.last().copied().unwrap_or(b' ');
    let before_ok = !word_byte(first) || at == 0 || !word_byte(hay[at - 1]);
    let end = at + needle.len();
    let after_ok = !word_byte(last) || end >= hay.len() || !word_byte(hay[end]);
    before_ok && after_ok
}

fn contains_word(hay: &[u8], needle: &[u8]) -> bool {
    let mut from = 0;
    while let Some(p) = memchr::memmem::find(&hay[from..], needle) {
        if on_boundary(hay, from + p, needle) {
            return true;
        }
        from += p + 1;
    }
    false
}

/// The most specific vocabulary entry `lower` (a lowercased line) holds.
pub fn find(lower: &[u8]) -> Option<Hit> {
    let engine = engine()?;
    let mut best: Option<&Entry> = None;
    let mut best_table: Option<&Table> = None;
    for m in engine.ac.find_overlapping_iter(lower) {
        let (t, e) = engine.owners[m.pattern().as_usize()];
        let entry = &TABLES[t].entries[e];
        if best.is_some_and(|b| b.specificity() >= entry.specificity()) {
            continue;
        }
        if !on_boundary(lower, m.start(), entry.needle.as_bytes())
            || !entry
                .also
                .iter()
                .all(|a| contains_word(lower, a.as_bytes()))
            || entry
                .except
                .iter()
                .any(|x| memchr::memmem::find(lower, x.as_bytes()).is_some())
        {
            continue;
        }
        best = Some(entry);
        best_table = Some(TABLES[t]);
    }
    let (entry, table) = (best?, best_table?);
    let mut hit = Hit {
        runtime: table.runtime,
        traces: table.traces,
        id: entry.id,
        call: entry.call,
        errno: entry.errno,
        counted: [(entry.id, 0); 4],
        n_counted: 0,
    };
    for (word, id) in entry.fields.iter().take(4) {
        let n = field_count(lower, word.as_bytes()).unwrap_or(0);
        hit.counted[hit.n_counted as usize] = (*id, n);
        hit.n_counted += 1;
    }
    Some(hit)
}

/// The number after `word` (`connect 12`, `timeout: 3`).
fn field_count(lower: &[u8], word: &[u8]) -> Option<u64> {
    let mut from = 0;
    while let Some(p) = memchr::memmem::find(&lower[from..], word) {
        let at = from + p;
        from = at + 1;
        if !on_boundary(lower, at, word) {
            continue;
        }
        let rest = &lower[at + word.len()..];
        let skip = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b':' || b == b'=')
            .count();
        let digits: &[u8] = &rest[skip..];
        let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        if n > 0 && n <= 19 {
            return std::str::from_utf8(&digits[..n]).ok()?.parse().ok();
        }
    }
    None
}

/// How a line relates to an exception printed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuation {
    /// Not part of it: the exception above is complete.
    No,
    /// A frame or detail of it (Java `at ...`, Node's `{ code: ... }`,
    /// indented lines, blank lines).
    Frame,
    /// Java's `Caused by: X`: X is the deeper cause of the exception above.
    CausedBy,
    /// Python's chain markers: the exception printed next wraps the one
    /// above ("The above exception was the direct cause...", "During
    /// handling of the above exception...").
    Chained,
}

/// Whether `raw` continues the exception above it (one event, not one per
/// frame). Only consulted while an exception is open.
pub fn continuation(raw: &[u8]) -> Continuation {
    let t = super::parse::trim(raw);
    if t.is_empty() {
        return Continuation::Frame;
    }
    if t.starts_with(b"Caused by:") || t.starts_with(b"Suppressed:") {
        return Continuation::CausedBy;
    }
    if t.starts_with(b"The above exception was the direct cause")
        || t.starts_with(b"During handling of the above exception")
    {
        return Continuation::Chained;
    }
    let indented = matches!(raw.first(), Some(b' ') | Some(b'\t'));
    // asyncio's exception handler: `socket: <asyncio.TransportSocket ...>`.
    let word = t
        .iter()
        .take_while(|b| b.is_ascii_lowercase() || **b == b'_')
        .count();
    if word > 0 && t[word..].starts_with(b": <") {
        return Continuation::Frame;
    }
    if indented
        || t.starts_with(b"at ")
        || (t.starts_with(b"... ") && t.ends_with(b" more"))
        || t.starts_with(b"Traceback (most recent call last)")
        || t.starts_with(b"Emitted 'error' event")
        || t == b"}"
        || t == b"{"
        || t == b"^"
    {
        return Continuation::Frame;
    }
    Continuation::No
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example line of every table matches its own entry (or one
    /// with the same id, call and errno).
    #[test]
    fn every_entry_matches_its_real_line() {
        for table in TABLES {
            for entry in table.entries {
                let lower = entry.example.to_ascii_lowercase();
                let hit = find(lower.as_bytes()).unwrap_or_else(|| {
                    panic!("{}: no match for {:?}", table.runtime, entry.example)
                });
                assert_eq!(
                    (hit.id, hit.call, hit.errno),
                    (entry.id, entry.call, entry.errno),
                    "{}: {:?} matched another entry",
                    table.runtime,
                    entry.example
                );
                if !entry.fields.is_empty() {
                    assert!(hit.is_tally(), "{:?}", entry.example);
                    assert!(hit.counted().count() > 0, "{:?}", entry.example);
                }
            }
        }
    }

    #[test]
    fn needles_are_lowercase_and_examples_hold_them() {
        for table in TABLES {
            for entry in table.entries {
                assert_eq!(
                    entry.needle,
                    entry.needle.to_lowercase(),
                    "{}",
                    entry.needle
                );
                let lower = entry.example.to_lowercase();
                assert!(lower.contains(entry.needle), "{:?}", entry.example);
                for a in entry.also {
                    assert_eq!(*a, a.to_lowercase());
                }
            }
        }
    }

    #[test]
    fn words_match_on_boundaries_only() {
        // "eof" inside a word is no end of file.
        assert!(find(b"geofence: loaded").is_none());
        assert!(find(b"the quick brown fox").is_none());
    }

    #[test]
    fn counted_fields_read_their_numbers() {
        let hit = find(b"  socket errors: connect 983, read 12, write 0, timeout 17").unwrap();
        let got: Vec<(FailureId, u64)> = hit.counted().collect();
        assert_eq!(
            got,
            vec![
                (FailureId::ConnectFailed, 983),
                (FailureId::ConnectionReset, 12),
                (FailureId::ConnectTimeout, 17)
            ]
        );
    }

    #[test]
    fn continuation_lines_of_exceptions() {
        use Continuation::*;
        assert_eq!(
            continuation(b"\tat java.base/sun.nio.ch.Net.connect0(Native Method)"),
            Frame
        );
        assert_eq!(continuation(b"\t... 3 more"), Frame);
        assert_eq!(
            continuation(b"Caused by: java.net.ConnectException: Connection refused"),
            CausedBy
        );
        assert_eq!(
            continuation(b"The above exception was the direct cause of the following exception:"),
            Chained
        );
        assert_eq!(continuation(b"  code: 'ECONNREFUSED',"), Frame);
        assert_eq!(continuation(b"}"), Frame);
        assert_eq!(continuation(b"connect: Connection refused"), No);
    }
}
