//! Line classifiers: one byte line in, one [`Parsed`] out, with no state and
//! no allocation on the common path. Every format `analyze` reads is
//! recognised here: the seed client's records (`connections: N, sockfd:N,
//! time_used:N`, ` Error clientfd:N, errno:N`, ` RecvBuffer:`), perror and
//! strerror lines of any program, nginx `accept4() failed (24: ...)`, Go
//! `dial tcp ...: connect: ...`, Rust `(os error N)`, musl texts, kernel
//! lines (dmesg with or without stamps, journald), `nstat` / `netstat -s`
//! counters, `/proc/net/sockstat`, `sysctl` output, Markdown structure, and
//! c1m's own JSON lines (recognised here, decoded by the source).
//!
//! Errno numbers and names are matched first, texts second; texts come from
//! the catalogue (`CATALOGUE[..].texts`) plus the glibc and musl strerror
//! strings, so `doctor` and `analyze` share one list. The fast path (a line
//! that starts with `connections: `) touches each byte once; everything else
//! goes through a lowercased copy in a reusable scratch buffer.
use std::sync::OnceLock;

use crate::catalogue::{CATALOGUE, FailureId};

/// What one line is.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    Blank,
    /// A Markdown header (`## 客户端1`): level and title.
    Header {
        level: u8,
        title: &'a [u8],
    },
    /// A Markdown code fence.
    Fence,
    /// A shell prompt with its command (`[root@h dir]# ./reactor`).
    Prompt {
        command: &'a [u8],
    },
    /// The seed client's progress line. `glued` when noise precedes it.
    Progress {
        conns: u64,
        fd: u64,
        ms: u64,
        glued: bool,
    },
    /// ` Error clientfd:N, errno:N` (or ` clientfd:N, errno:N`).
    SeedError {
        fd: u64,
        errno: i32,
    },
    /// ` RecvBuffer:...`; `garbage` when the line itself holds bytes that a
    /// NUL-terminated echo cannot contain.
    RecvBuffer {
        garbage: bool,
    },
    /// ` Disconnect clientfd:N`.
    Disconnect {
        fd: u64,
    },
    /// An error line of some program mapped to the catalogue through its
    /// errno (number, name or text).
    Error {
        id: FailureId,
        call: &'static str,
        errno: Option<i32>,
    },
    /// A line of a runtime's error vocabulary (`super::vocab`): an
    /// exception, an error object, or a tool's summary of counted failures.
    Runtime(super::vocab::Hit),
    /// A line that shows a failure by its text only (kernel lines, shell
    /// "Killed"). `detail` carries numbers worth quoting.
    Evidence {
        id: FailureId,
        kernel: bool,
        detail: Detail,
    },
    /// A counter of the catalogue with its value (nstat, netstat -s).
    Counter {
        name: &'static str,
        value: u64,
    },
    /// `TCP: inuse N orphan N tw N alloc N mem N` from /proc/net/sockstat.
    Sockstat {
        inuse: u64,
        orphan: u64,
        tw: u64,
        mem: u64,
    },
    /// `key = v1 [v2 v3]` from sysctl for the keys the classifier uses.
    Sysctl {
        key: SysctlKey,
        values: [u64; 3],
    },
    /// A connection count in free-form progress (`super::counts`), or the
    /// count of a damaged seed progress line (salvaged).
    Count(super::counts::Sample),
    /// Starts with `{`: maybe a c1m JSON record.
    Json,
    Other,
}

/// Numbers quoted from evidence lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Detail {
    /// The port of a SYN flood message.
    pub port: Option<u32>,
    /// The pid and anon-rss (kB) of an OOM kill.
    pub pid: Option<u32>,
    pub anon_rss_kb: Option<u64>,
}

/// The sysctl keys that turn counts into findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SysctlKey {
    ConntrackCount,
    ConntrackMax,
    TcpMem,
    TcpMaxOrphans,
    FileNr,
    FileMax,
}

/// Byte-level facts about a line, for the corruption count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bytes {
    /// C0 control bytes other than tab, CR and ESC, or DEL.
    pub control: bool,
    pub invalid_utf8: bool,
    /// Any byte >= 0x80.
    pub non_ascii: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Parsed<'a> {
    pub line: Line<'a>,
    pub bytes: Bytes,
}

/// Reusable scratch space (the lowercased copy of a line).
#[derive(Default)]
pub struct Scratch {
    lower: Vec<u8>,
}

#[inline]
fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r' || b == b'\x0b' || b == b'\x0c'
}

/// Trim ASCII whitespace at both ends.
#[inline]
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_space(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_space(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Parse leading decimal digits: value and how many bytes were used (None
/// when there is none, or the value does not fit a u64, as `str::parse`).
#[inline]
fn digits(s: &[u8]) -> Option<(u64, usize)> {
    const POW10: [u64; 9] = [
        1,
        10,
        100,
        1_000,
        10_000,
        100_000,
        1_000_000,
        10_000_000,
        100_000_000,
    ];
    let mut v: u64 = 0;
    let mut n = 0;
    // Eight bytes at a time while eight remain (the SWAR digit parse: find
    // the first non-digit with carry-free byte arithmetic, then fold the
    // digits pairwise with three multiplications): the counts and fds of a
    // long run have 8 to 11 digits, one at a time they cost a dependent
    // multiply each.
    while let Some(bytes) = s.get(n..n + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        let sub = u64::from_le_bytes(word).wrapping_sub(0x3030_3030_3030_3030);
        let bad = (sub.wrapping_add(0x7676_7676_7676_7676) | sub) & 0x8080_8080_8080_8080;
        let len = if bad == 0 {
            8
        } else {
            (bad.trailing_zeros() / 8) as usize
        };
        if len == 0 {
            break;
        }
        let mut x = sub << (8 * (8 - len));
        x = (x.wrapping_mul(10)).wrapping_add(x >> 8) & 0x00FF_00FF_00FF_00FF;
        x = (x.wrapping_mul(100)).wrapping_add(x >> 16) & 0x0000_FFFF_0000_FFFF;
        x = (x.wrapping_mul(10000)).wrapping_add(x >> 32) & 0x0000_0000_FFFF_FFFF;
        // 19 digits always fit in a u64: no overflow checks up to there.
        v = if n + len <= 19 {
            v * POW10[len] + x
        } else {
            v.checked_mul(POW10[len])?.checked_add(x)?
        };
        n += len;
        if len < 8 {
            return Some((v, n));
        }
    }
    // The last (fewer than eight) bytes one at a time.
    while let Some(&b) = s.get(n) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        v = if n < 19 {
            v * 10 + u64::from(d)
        } else {
            v.checked_mul(10)?.checked_add(u64::from(d))?
        };
        n += 1;
    }
    (n > 0).then_some((v, n))
}

#[inline]
fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

/// Position of `needle` in `hay` (both already in the wanted case).
#[inline]
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Per byte: 1 = a control byte (not tab, CR or ESC) or DEL, 2 = >= 0x80,
/// 4 = ':', '(' or '=' (every error, kernel and setting line has one),
/// 8 = 'E' (an errno name may follow), 16 = a byte that every keyword of a
/// free-form count but ` of ` holds (`n`, `b`, `v` in either case, `/`:
/// `super::counts`), 32 = `f` or `F` (` of ` may follow), 64 = CR or ESC
/// (not control bytes for the corruption count, but not printable), 128 =
/// `=` (besides 4).
const BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        if (c < 0x20 && c != b'\t' && c != b'\r' && c != 0x1b) || c == 0x7f {
            t[i] = 1;
        }
        if c >= 0x80 {
            t[i] = 2;
        }
        if c == b':' || c == b'(' {
            t[i] = 4;
        }
        if c == b'=' {
            t[i] = 4 | 128;
        }
        if c == b'\r' || c == 0x1b {
            t[i] = 64;
        }
        if c == b'E' {
            t[i] = 8;
        }
        if matches!(c, b'n' | b'N' | b'b' | b'B' | b'v' | b'V' | b'/') {
            t[i] = 16;
        }
        if c == b'f' || c == b'F' {
            t[i] = 32;
        }
        i += 1;
    }
    t
};

#[inline]
fn classes(s: &[u8]) -> u8 {
    let mut acc = 0u8;
    for &c in s {
        acc |= BYTE_CLASS[c as usize];
    }
    acc
}

/// A clean line of the seed client's frequent kinds, parsed without the
/// general classifier: what the streaming loop tries first. Each variant is
/// a line that [`parse_line`] classifies the same way (the test
/// `fast_records_agree_with_the_general_classifier` holds them to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fast {
    Progress {
        conns: u64,
        fd: u64,
        ms: u64,
    },
    SeedError {
        fd: u64,
        errno: i32,
    },
    /// ` RecvBuffer:` followed by printable ASCII only (no `=`: a `pid=`
    /// would name a process): `Line::RecvBuffer { garbage: false }`.
    RecvBuffer,
    /// Plain program chatter (`data from 4`): valid UTF-8 starting with a
    /// lowercase letter, with no control byte, no `:`, `(`, `=` or `E` and
    /// no keyword of a free-form count, so no parser of this module can
    /// match it (`Line::Other`); counted as skipped. `non_ascii`: it holds
    /// bytes >= 0x80 (garbage in the seed's ASCII output).
    Chatter {
        non_ascii: bool,
    },
}

#[inline]
fn only_blanks(s: &[u8]) -> bool {
    s.iter().all(|&b| b == b' ' || b == b'\t' || b == b'\r')
}

/// `connections: N, sockfd:N, time_used:N` or ` Error clientfd:N,
/// errno:N`, alone on the line (leading tabs and spaces allowed).
#[inline]
pub fn fast_record(raw: &[u8]) -> Option<Fast> {
    let lead = raw.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    let t = &raw[lead..];
    match t.first() {
        Some(b'c') => {
            let ((conns, fd, ms), rest) = progress(t)?;
            only_blanks(rest).then_some(Fast::Progress { conns, fd, ms })
        }
        Some(b'E') => {
            let ((fd, errno), rest) = seed_error(t)?;
            only_blanks(rest).then_some(Fast::SeedError { fd, errno })
        }
        Some(b'R') => {
            // Printable ASCII and tabs, no `=`.
            let rest = t.strip_prefix(b"RecvBuffer:")?;
            (classes(rest) & (1 | 2 | 64 | 128) == 0).then_some(Fast::RecvBuffer)
        }
        Some(b'a'..=b'z') => chatter(t),
        _ => None,
    }
}

/// `Error clientfd:N, errno:N` at the start of `t`: the numbers and the
/// unparsed rest.
#[inline]
fn seed_error(t: &[u8]) -> Option<((u64, i32), &[u8])> {
    let s = skip_spaces(t.strip_prefix(b"Error clientfd:")?);
    let (fd, n) = digits(s)?;
    let s = skip_spaces(s[n..].strip_prefix(b",")?);
    let s = skip_spaces(s.strip_prefix(b"errno:")?);
    let (errno, n) = digits(s)?;
    Some(((fd, i32::try_from(errno).ok()?), &s[n..]))
}

/// [`fast_record`]'s progress and error records read at the start of `s`,
/// the rest of a buffer not yet split into lines: the record and the length
/// of its line, which a `\n` at `s[len]` ends. The reading thread tries it
/// at each line start, so the lines it parses need no newline search.
#[inline]
pub fn fast_record_prefix(s: &[u8]) -> Option<(Fast, usize)> {
    let lead = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    let t = &s[lead..];
    let (fast, rest) = match t.first()? {
        b'c' => {
            let ((conns, fd, ms), rest) = progress(t)?;
            (Fast::Progress { conns, fd, ms }, rest)
        }
        b'E' => {
            let ((fd, errno), rest) = seed_error(t)?;
            (Fast::SeedError { fd, errno }, rest)
        }
        _ => return None,
    };
    // Nothing but blanks (any `\n` among `rest` ends the line).
    let blanks = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t' || b == b'\r')
        .count();
    (rest.get(blanks) == Some(&b'\n')).then_some((fast, s.len() - rest.len() + blanks))
}

/// [`Fast::Chatter`] for `t`, which starts with a lowercase letter.
#[inline]
fn chatter(t: &[u8]) -> Option<Fast> {
    let c = classes(t);
    // Control bytes, `:`, `(`, `=`, `E`, a count's keyword letters
    // (`active 1003`, `opened 1013 connections`), ` of ` (`sent 5 of 10`).
    if c & (1 | 4 | 8 | 16) != 0 || (c & 32 != 0 && of_word(t)) {
        return None;
    }
    let non_ascii = c & 2 != 0;
    if non_ascii && std::str::from_utf8(t).is_err() {
        return None;
    }
    Some(Fast::Chatter { non_ascii })
}

/// ` of ` in any case.
#[inline]
fn of_word(t: &[u8]) -> bool {
    t.windows(4)
        .any(|w| w[0] == b' ' && w[1] | 0x20 == b'o' && w[2] | 0x20 == b'f' && w[3] == b' ')
}

#[inline]
fn byte_facts(s: &[u8]) -> Bytes {
    let acc = classes(s);
    let mut b = Bytes {
        control: acc & 1 != 0,
        non_ascii: acc & 2 != 0,
        invalid_utf8: false,
    };
    if b.non_ascii {
        b.invalid_utf8 = std::str::from_utf8(s).is_err();
    }
    b
}

/// `connections: N, sockfd:N, time_used:N` at the start of `s`; returns the
/// numbers and the unparsed rest.
type Numbers<'a> = ((u64, u64, u64), &'a [u8]);

#[inline]
fn progress(s: &[u8]) -> Option<Numbers<'_>> {
    progress_exact(s).or_else(|| progress_spaced(s))
}

/// [`progress`] for the record spaced exactly as the seed prints it (one
/// space after `connections:` and after each comma, none after the other
/// colons): fixed comparisons, no space skipping; the reading thread parses
/// eleven million of these per GiB.
#[inline]
fn progress_exact(s: &[u8]) -> Option<Numbers<'_>> {
    let s = s.strip_prefix(b"connections: ")?;
    let (conns, n) = digits(s)?;
    let s = s[n..].strip_prefix(b", sockfd:")?;
    let (fd, n) = digits(s)?;
    let s = s[n..].strip_prefix(b", time_used:")?;
    let (ms, n) = digits(s)?;
    Some(((conns, fd, ms), &s[n..]))
}

/// [`progress`] with any number of spaces where the seed prints one or
/// none.
fn progress_spaced(s: &[u8]) -> Option<Numbers<'_>> {
    let s = s.strip_prefix(b"connections:")?;
    let s = skip_spaces(s);
    let (conns, n) = digits(s)?;
    let s = skip_spaces(s[n..].strip_prefix(b",")?);
    let s = skip_spaces(s.strip_prefix(b"sockfd:")?);
    let (fd, n) = digits(s)?;
    let s = skip_spaces(s[n..].strip_prefix(b",")?);
    let s = skip_spaces(s.strip_prefix(b"time_used:")?);
    let (ms, n) = digits(s)?;
    Some(((conns, fd, ms), &s[n..]))
}

/// `clientfd:N, errno:N` at the start of `s`.
#[inline]
fn clientfd_errno(s: &[u8]) -> Option<(u64, i32)> {
    let s = skip_spaces(s.strip_prefix(b"clientfd:")?);
    let (fd, n) = digits(s)?;
    let s = skip_spaces(s[n..].strip_prefix(b",")?);
    let s = skip_spaces(s.strip_prefix(b"errno:")?);
    let (errno, _) = digits(s)?;
    Some((fd, i32::try_from(errno).ok()?))
}

/// Classify one line (without its newline).
pub fn parse_line<'a>(raw: &'a [u8], scratch: &mut Scratch) -> Parsed<'a> {
    let t = trim(raw);
    if t.is_empty() {
        return Parsed {
            line: Line::Blank,
            bytes: byte_facts(raw),
        };
    }
    // Fast path: a clean progress line.
    if t[0] == b'c'
        && let Some(((conns, fd, ms), rest)) = progress(t)
        && rest.is_empty()
    {
        return Parsed {
            line: Line::Progress {
                conns,
                fd,
                ms,
                glued: false,
            },
            bytes: Bytes::default(),
        };
    }
    let bytes = byte_facts(raw);
    Parsed {
        line: classify_slow(t, scratch, bytes),
        bytes,
    }
}

fn classify_slow<'a>(t: &'a [u8], scratch: &mut Scratch, bytes: Bytes) -> Line<'a> {
    match structure_or_seed(t, bytes) {
        Some(line) => line,
        None => classify_text(t, scratch),
    }
}

/// Markdown structure, JSON, the seed client's records and shell prompts.
#[inline]
fn structure_or_seed(t: &[u8], bytes: Bytes) -> Option<Line<'_>> {
    // Markdown structure.
    if t.starts_with(b"```") {
        return Some(Line::Fence);
    }
    if t[0] == b'#' {
        let level = t.iter().take_while(|&&b| b == b'#').count();
        if level <= 6 && t.get(level) == Some(&b' ') {
            return Some(Line::Header {
                level: level as u8,
                title: trim(&t[level..]),
            });
        }
    }
    if t[0] == b'{' {
        return Some(Line::Json);
    }
    // The seed client's records.
    if let Some(rest) = t.strip_prefix(b"Error ")
        && let Some((fd, errno)) = clientfd_errno(skip_spaces(rest))
    {
        return Some(Line::SeedError { fd, errno });
    }
    if let Some((fd, errno)) = clientfd_errno(t) {
        return Some(Line::SeedError { fd, errno });
    }
    if let Some(rest) = t.strip_prefix(b"RecvBuffer:") {
        return Some(Line::RecvBuffer {
            garbage: rest
                .iter()
                .any(|&b| b >= 0x80 || (b < 0x20 && b != b'\t') || b == 0x7f),
        });
    }
    if let Some(rest) = t.strip_prefix(b"Disconnect clientfd:")
        && let Some((fd, _)) = digits(skip_spaces(rest))
    {
        return Some(Line::Disconnect { fd });
    }
    // A progress record glued to noise before or after it.
    if let Some(at) = find(t, b"connections:")
        && let Some(((conns, fd, ms), rest)) = progress(&t[at..])
    {
        let glued = (at > 0 && !stamped_prefix(&t[..at]))
            || !trim(rest).is_empty()
            || bytes.control
            || bytes.non_ascii;
        return Some(Line::Progress {
            conns,
            fd,
            ms,
            glued,
        });
    }
    // A damaged progress line: `connections: N` intact, garbage after it.
    if (bytes.control || bytes.invalid_utf8)
        && let Some(sample) = super::counts::salvage(t)
    {
        return Some(Line::Count(sample));
    }
    // A shell prompt: `[user@host dir]# cmd` or `$ cmd`.
    if t[0] == b'['
        && let Some(close) = find(t, b"]# ").or_else(|| find(t, b"]$ "))
        && find(&t[..close], b"@").is_some()
    {
        return Some(Line::Prompt {
            command: trim(&t[close + 3..]),
        });
    }
    None
}

/// Whether what precedes a record is a log's own prefix: a timestamp
/// (`super::timestamps`), optionally followed by one to three words the last
/// of which ends with `:` (`client[12]:`, `INFO root:`), not noise.
fn stamped_prefix(prefix: &[u8]) -> bool {
    let Some(st) = super::timestamps::parse(prefix) else {
        return false;
    };
    let rest = trim(&prefix[st.len..]);
    if rest.is_empty() {
        return true;
    }
    let words = rest.split(|&b| b == b' ').filter(|w| !w.is_empty()).count();
    words <= 3 && rest.ends_with(b":") && rest.is_ascii()
}

/// Error, kernel, sysctl, sockstat and counter lines.
fn classify_text<'a>(t: &'a [u8], scratch: &mut Scratch) -> Line<'a> {
    // Error, kernel, sysctl and sockstat lines all hold ':', '(' or '=';
    // other lines can only be counters, a shell's "Killed", or a bare errno
    // name. Checking that first keeps program chatter cheap.
    let class = classes(t);
    let punct = class & 4 != 0;
    let lower = &mut scratch.lower;
    lower.clear();
    if !punct {
        if t[0].is_ascii_digit() || t[0].is_ascii_uppercase() {
            lower.extend(t.iter().map(|b| b.to_ascii_lowercase()));
            if let Some(line) = counter(t, lower) {
                return line;
            }
        }
        if let Some(line) = shell_killed(t) {
            return line;
        }
        if class & 8 != 0 {
            lower.clear();
            lower.extend(t.iter().map(|b| b.to_ascii_lowercase()));
            if let Some(hit) = runtime_line(lower) {
                return hit;
            }
            if let Some(line) = error_line(t, lower) {
                return line;
            }
        }
        return count_line(t, lower);
    }
    lower.extend(t.iter().map(|b| b.to_ascii_lowercase()));
    if let Some(line) = sysctl(t, lower) {
        return line;
    }
    if let Some(line) = sockstat(lower) {
        return line;
    }
    if let Some(line) = counter(t, lower) {
        return line;
    }
    if let Some(hit) = runtime_line(lower) {
        return hit;
    }
    if let Some(line) = evidence_text(lower) {
        return line;
    }
    if let Some(line) = error_line(t, lower) {
        return line;
    }
    if let Some(line) = shell_killed(t) {
        return line;
    }
    count_line(t, lower)
}

/// A free-form progress line (`1013 connections`, `established=1018`...),
/// else nothing known.
fn count_line<'a>(t: &[u8], lower: &mut Vec<u8>) -> Line<'a> {
    if lower.is_empty() {
        lower.extend(t.iter().map(|b| b.to_ascii_lowercase()));
    }
    match super::counts::last_sample(lower) {
        Some(sample) => Line::Count(sample),
        None => Line::Other,
    }
}

/// `net.netfilter.nf_conntrack_count = 262144` and friends.
fn sysctl<'a>(t: &[u8], lower: &[u8]) -> Option<Line<'a>> {
    const KEYS: &[(&[u8], SysctlKey)] = &[
        (
            b"net.netfilter.nf_conntrack_count",
            SysctlKey::ConntrackCount,
        ),
        (b"net.netfilter.nf_conntrack_max", SysctlKey::ConntrackMax),
        (b"net.nf_conntrack_max", SysctlKey::ConntrackMax),
        (b"net.ipv4.tcp_mem", SysctlKey::TcpMem),
        (b"net.ipv4.tcp_max_orphans", SysctlKey::TcpMaxOrphans),
        (b"fs.file-nr", SysctlKey::FileNr),
        (b"fs.file-max", SysctlKey::FileMax),
    ];
    if !lower.starts_with(b"net.") && !lower.starts_with(b"fs.") {
        return None;
    }
    let eq = memchr::memchr(b'=', t)?;
    let key_text = trim(&lower[..eq]);
    if key_text.contains(&b' ') {
        return None;
    }
    // A setting the classifier does not use is still a setting, not evidence.
    let Some(key) = KEYS.iter().find(|(k, _)| *k == key_text).map(|k| k.1) else {
        return Some(Line::Other);
    };
    let mut values = [0u64; 3];
    let mut n = 0;
    for tok in t[eq + 1..]
        .split(|&b| is_space(b))
        .filter(|w| !w.is_empty())
    {
        if n == 3 {
            break;
        }
        values[n] = digits(tok).filter(|(_, used)| *used == tok.len())?.0;
        n += 1;
    }
    if n == 0 {
        return None;
    }
    Some(Line::Sysctl { key, values })
}

/// `TCP: inuse 5 orphan 0 tw 0 alloc 6 mem 1`.
fn sockstat<'a>(lower: &[u8]) -> Option<Line<'a>> {
    let rest = lower.strip_prefix(b"tcp: inuse ")?;
    let mut orphan = 0;
    let mut tw = 0;
    let mut mem = 0;
    let mut toks = rest.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let inuse = toks.next().and_then(digits).map(|d| d.0);
    let toks: Vec<&[u8]> = toks.collect();
    for pair in toks.chunks(2) {
        if let [k, v] = pair {
            let v = digits(v).map(|d| d.0).unwrap_or(0);
            match *k {
                b"orphan" => orphan = v,
                b"tw" => tw = v,
                b"mem" => mem = v,
                _ => {}
            }
        }
    }
    Some(Line::Sockstat {
        inuse: inuse?,
        orphan,
        tw,
        mem,
    })
}

/// netstat -s sentences that carry a catalogue counter.
const NETSTAT_PHRASES: &[(&[u8], &str)] = &[
    (
        b"times the listen queue of a socket overflowed",
        "ListenOverflows",
    ),
    (b"syns to listen sockets dropped", "ListenDrops"),
    (b"tcp ran low on memory", "TCPMemoryPressures"),
    (
        b"connections aborted due to memory pressure",
        "TCPAbortOnMemory",
    ),
    (b"connection resets received", "TcpEstabResets"),
    (b"resets sent", "TcpOutRsts"),
    (b"other tcp timeouts", "TCPTimeouts"),
];

fn counter_names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut v: Vec<&'static str> = CATALOGUE
            .iter()
            .flat_map(|f| f.counters.iter().copied())
            .collect();
        v.sort();
        v.dedup();
        v
    })
}

/// The catalogue counter a name stands for: `ListenOverflows`,
/// `TcpExtListenOverflows` (nstat) or `TcpExtTCPSynRetrans`.
pub fn counter_name(name: &[u8]) -> Option<&'static str> {
    let bare = name.strip_prefix(b"TcpExt").unwrap_or(name);
    counter_names()
        .iter()
        .copied()
        .find(|c| c.as_bytes() == bare || c.as_bytes() == name)
}

fn counter<'a>(t: &[u8], lower: &[u8]) -> Option<Line<'a>> {
    let mut words = t.split(|&b| is_space(b)).filter(|w| !w.is_empty());
    let first = words.next()?;
    if first[0].is_ascii_alphabetic() {
        // nstat: `TcpExtListenOverflows   12   0.0`; netstat -s: `TCPReqQFullDrop: 3`.
        let name = first.strip_suffix(b":").unwrap_or(first);
        let name = counter_name(name)?;
        let (value, _) = digits(words.next()?)?;
        return Some(Line::Counter { name, value });
    }
    if first[0].is_ascii_digit() {
        let (value, used) = digits(first)?;
        if used != first.len() {
            return None;
        }
        let rest = trim(&lower[lower.len() - trim_start_len(t, first)..]);
        let name = NETSTAT_PHRASES.iter().find(|(p, _)| rest.starts_with(p))?.1;
        return Some(Line::Counter { name, value });
    }
    None
}

/// Length of `t` after `first` (the rest of the line).
fn trim_start_len(t: &[u8], first: &[u8]) -> usize {
    let start = first.as_ptr() as usize - t.as_ptr() as usize + first.len();
    t.len() - start
}

struct Needle {
    text: Vec<u8>,
    id: FailureId,
    kernel: bool,
}

/// Catalogue texts that are not strerror strings: kernel lines and program
/// messages, matched on their own.
fn evidence_needles() -> &'static [Needle] {
    static NEEDLES: OnceLock<Vec<Needle>> = OnceLock::new();
    NEEDLES.get_or_init(|| {
        let errno_texts: Vec<&[u8]> = ERRNO_TEXTS.iter().map(|(t, _)| *t).collect();
        let mut v = Vec::new();
        for f in CATALOGUE {
            for text in f.texts {
                let lower = text.to_lowercase().into_bytes();
                let is_errno = errno_texts.contains(&lower.as_slice());
                // Seed records have their own parsers.
                let seed = matches!(
                    f.id,
                    FailureId::PeerDisconnect
                        | FailureId::EagainMisuse
                        | FailureId::WrongFd
                        | FailureId::UnterminatedBuffer
                );
                if is_errno || seed || lower.is_empty() {
                    continue;
                }
                let kernel = lower.is_ascii() && f.id != FailureId::EpollWatchLimit;
                v.push(Needle {
                    text: lower,
                    id: f.id,
                    kernel,
                });
            }
        }
        // Longer texts first, so "out of memory -- consider tuning tcp_mem"
        // wins over shorter overlapping ones.
        v.sort_by_key(|n| std::cmp::Reverse(n.text.len()));
        v
    })
}

fn evidence_text<'a>(lower: &[u8]) -> Option<Line<'a>> {
    let n = evidence_needles()
        .iter()
        .find(|n| find(lower, &n.text).is_some())?;
    let mut detail = Detail::default();
    match n.id {
        FailureId::AcceptQueueOverflow => {
            if let Some(at) = find(lower, b"on port ") {
                let s = &lower[at + 8..];
                // `port 8888.` or `port [::]:8888.`
                let start = s
                    .iter()
                    .position(|b| b.is_ascii_digit())
                    .filter(|&p| p < 8)
                    .unwrap_or(0);
                let s2 = &s[start..];
                let s2 = match find(s2, b"]:") {
                    Some(p) if p < 40 => &s2[p + 2..],
                    _ => s2,
                };
                detail.port = digits(s2).and_then(|(v, _)| u32::try_from(v).ok());
            }
        }
        FailureId::OutOfMemory => {
            if let Some(at) = find(lower, b"killed process ") {
                detail.pid = digits(&lower[at + 15..]).and_then(|(v, _)| u32::try_from(v).ok());
            }
            if let Some(at) = find(lower, b"anon-rss:") {
                detail.anon_rss_kb = digits(&lower[at + 9..]).map(|(v, _)| v);
            }
        }
        _ => {}
    }
    Some(Line::Evidence {
        id: n.id,
        kernel: n.kernel,
        detail,
    })
}

/// strerror texts and errno names: the glibc table's data.
pub use super::vocab::glibc::{CALLS, NAMES as ERRNO_NAMES, STRERROR as ERRNO_TEXTS};

/// An explicit errno number: `errno:11`, `errno 11`, `errno=11`,
/// `(os error 24)`, `failed (24: `, `code: 24`.
fn errno_number(lower: &[u8]) -> Option<i32> {
    const MARKS: &[&[u8]] = &[b"errno:", b"errno=", b"errno ", b"os error ", b"code: "];
    for m in MARKS {
        if let Some(at) = find(lower, m)
            && let Some((v, _)) = digits(skip_spaces(&lower[at + m.len()..]))
        {
            return i32::try_from(v).ok().filter(|&e| e > 0);
        }
    }
    // nginx: `accept4() failed (24: Too many open files)`
    if let Some(at) = find(lower, b"failed (")
        && let Some((v, n)) = digits(&lower[at + 8..])
        && lower.get(at + 8 + n) == Some(&b':')
    {
        return i32::try_from(v).ok().filter(|&e| e > 0);
    }
    None
}

fn errno_name(t: &[u8]) -> Option<i32> {
    for (name, errno) in ERRNO_NAMES {
        if let Some(at) = find(t, name) {
            let before = at.checked_sub(1).map(|i| t[i]);
            let after = t.get(at + name.len()).copied();
            let word = |b: Option<u8>| b.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_');
            if !word(before) && !word(after) {
                return Some(*errno);
            }
        }
    }
    None
}

/// The call a line names: the word before the error text (`connect:`,
/// `accept4() failed`), else any known call word in the line.
fn call_of(lower: &[u8], text_at: usize) -> &'static str {
    let head = &lower[..text_at.min(lower.len())];
    // Last call word before the error text wins.
    let mut best: Option<(usize, &'static str)> = None;
    for (word, call) in CALLS {
        let mut from = 0;
        while let Some(p) = find(&head[from..], word) {
            let at = from + p;
            let before_ok = at == 0 || !head[at - 1].is_ascii_alphanumeric();
            let after = head.get(at + word.len()).copied();
            let after_ok = after.is_none_or(|c| !c.is_ascii_alphanumeric() && c != b'_');
            if before_ok && after_ok && best.is_none_or(|(b, _)| at >= b) {
                best = Some((at, call));
            }
            from = at + 1;
        }
    }
    best.map(|(_, c)| c).unwrap_or("")
}

fn error_line<'a>(t: &[u8], lower: &[u8]) -> Option<Line<'a>> {
    let mut errno = errno_number(lower).or_else(|| errno_name(t));
    let mut text_at = lower.len();
    if let Some(e) = errno {
        // The call is named before the number or the text of that errno.
        if let Some((txt, _)) = ERRNO_TEXTS.iter().find(|(_, n)| *n == e)
            && let Some(at) = find(lower, txt)
        {
            text_at = at;
        } else if let Some(at) = find(lower, b"errno").or_else(|| find(lower, b"error")) {
            text_at = at;
        }
    } else {
        for (txt, e) in ERRNO_TEXTS {
            if let Some(at) = find(lower, txt) {
                errno = Some(*e);
                text_at = at;
                break;
            }
        }
    }
    let errno = errno?;
    let call = call_of(lower, text_at);
    let id = FailureId::from_errno(call, errno)?;
    Some(Line::Error {
        id,
        call,
        errno: Some(errno),
    })
}

/// A line of a runtime's vocabulary; a form that names no call takes the
/// call word of the line.
fn runtime_line<'a>(lower: &[u8]) -> Option<Line<'a>> {
    let mut hit = super::vocab::find(lower)?;
    if hit.call.is_empty() {
        hit.call = call_of(lower, lower.len());
    }
    Some(Line::Runtime(hit))
}

/// A shell reporting a killed job: `Killed`, `[1]+  Killed  ./client`,
/// `已杀死` (zh_CN).
fn shell_killed<'a>(t: &[u8]) -> Option<Line<'a>> {
    let s = if t[0] == b'[' {
        let close = memchr::memchr(b']', t)?;
        let s = &t[close + 1..];
        let s = s
            .strip_prefix(b"+")
            .or_else(|| s.strip_prefix(b"-"))
            .unwrap_or(s);
        trim(s)
    } else {
        t
    };
    let killed = s == b"Killed" || s.starts_with(b"Killed ") || s.starts_with("已杀死".as_bytes());
    killed.then_some(Line::Evidence {
        id: FailureId::OutOfMemory,
        kernel: false,
        detail: Detail::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[u8]) -> Line<'_> {
        let mut scratch = Scratch::default();
        let parsed = parse_line(s, &mut scratch);
        // Lines borrow only from the input; rebuild to drop the scratch.
        parsed.line
    }

    fn id_of(s: &str) -> Option<(FailureId, &'static str)> {
        match p(s.as_bytes()) {
            Line::Error { id, call, .. } => Some((id, call)),
            Line::Runtime(hit) => Some((hit.id, hit.call)),
            Line::Evidence { id, .. } => Some((id, "")),
            _ => None,
        }
    }

    /// What `parse_line` must say of a line `fast_record` took as `f`.
    fn agrees(f: Fast, parsed: &Parsed<'_>) -> bool {
        let clean = Bytes::default();
        match f {
            Fast::Progress { conns, fd, ms } => {
                parsed.line
                    == Line::Progress {
                        conns,
                        fd,
                        ms,
                        glued: false,
                    }
                    && parsed.bytes == clean
            }
            Fast::SeedError { fd, errno } => {
                parsed.line == Line::SeedError { fd, errno } && parsed.bytes == clean
            }
            Fast::RecvBuffer => {
                parsed.line == Line::RecvBuffer { garbage: false } && parsed.bytes == clean
            }
            Fast::Chatter { non_ascii } => {
                parsed.line == Line::Other && parsed.bytes == Bytes { non_ascii, ..clean }
            }
        }
    }

    #[test]
    fn fast_records_agree_with_the_general_classifier() {
        let mut scratch = Scratch::default();
        assert_eq!(
            fast_record(b"\tdata from 4"),
            Some(Fast::Chatter { non_ascii: false })
        );
        assert_eq!(
            fast_record(b"\tdata from 1\xf3\x87\xb9\x9e"),
            Some(Fast::Chatter { non_ascii: true })
        );
        assert_eq!(
            fast_record(b"\t RecvBuffer:Hello Server: client --> 9"),
            Some(Fast::RecvBuffer)
        );
        // Lines some parser takes are never chatter: counts in free form
        // among them (`opened 1013 connections` is a count of 1013).
        for line in [
            &b"data from 1\xff\xfe"[..],
            b"connect: Connection timed out",
            b"epoll_ctl failed with ENOSPC",
            b"net.ipv4.tcp_mem = 1 2 3",
            b"Killed",
            b"{\"ts\":1}",
            b"opened 1013 connections",
            b"established 1018",
            b"sent 5 of 10",
            b"active 1003",
            b"ramp 50/100 users",
            b"RecvBuffer:pid=7",
            b"RecvBuffer:\xf3\x87\xb9\x9e",
        ] {
            let fast = fast_record(line);
            assert!(
                !matches!(fast, Some(Fast::Chatter { .. } | Fast::RecvBuffer)),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert!(matches!(
            parse_line(b"opened 1013 connections", &mut scratch).line,
            Line::Count(_)
        ));
        // Every combination of real pieces: whatever the fast path takes,
        // the general classifier reads the same.
        let leads: &[&[u8]] = &[b"", b"\t", b"  ", b"\t "];
        let bodies: &[&[u8]] = &[
            b"connections: 999, sockfd:1002, time_used:1241",
            b"Error clientfd:59002, errno:11",
            b"RecvBuffer:Hello Server: client --> 1",
            b"RecvBuffer:",
            b"data from 4",
            b"data from 1\xf3\x87\xb9\x9e",
            b"waiting for the server",
            b"ok",
            b"a b c",
        ];
        let tails: &[&[u8]] = &[
            b"",
            b" ",
            b"\r",
            b"\t",
            b"\xf3\x87\xb9\x9e",
            b"\xff",
            b"\x01",
            b"=1",
            b" pid=7",
            b" of 3",
            b" 5 OF 9",
            b" 12/40",
            b" 7 conns",
            b" Connections 9",
            b" ACTIVE 3",
            b" x",
        ];
        let mut taken = 0;
        for lead in leads {
            for body in bodies {
                for tail in tails {
                    let line = [*lead, *body, *tail].concat();
                    let parsed = parse_line(&line, &mut scratch);
                    if let Some(f) = fast_record(&line) {
                        taken += 1;
                        assert!(
                            agrees(f, &parsed),
                            "{:?}: fast {f:?}, general {parsed:?}",
                            String::from_utf8_lossy(&line)
                        );
                    }
                }
            }
        }
        assert!(taken > 100, "{taken}");
        // The same records read at a line start in an unsplit buffer.
        let mut buffer = Vec::new();
        let mut starts = Vec::new();
        for lead in leads {
            for body in bodies {
                for tail in tails {
                    starts.push(buffer.len());
                    buffer.extend_from_slice(&[*lead, *body, *tail, &b"\n"[..]].concat());
                }
            }
        }
        let mut prefixed = 0;
        for (i, &at) in starts.iter().enumerate() {
            let end = starts.get(i + 1).map_or(buffer.len(), |&e| e) - 1;
            let line = &buffer[at..end];
            let want = fast_record(line)
                .filter(|f| matches!(f, Fast::Progress { .. } | Fast::SeedError { .. }))
                .map(|f| (f, line.len()));
            assert_eq!(
                fast_record_prefix(&buffer[at..]),
                want,
                "{:?}",
                String::from_utf8_lossy(line)
            );
            prefixed += usize::from(want.is_some());
        }
        assert!(prefixed > 20, "{prefixed}");
        // A record whose newline is not read yet is not one.
        assert_eq!(
            fast_record_prefix(b"connections: 1, sockfd:4, time_used:2"),
            None
        );
    }

    #[test]
    fn the_exact_progress_reader_agrees_with_the_spaced_one() {
        for line in [
            &b"connections: 999, sockfd:1002, time_used:1241"[..],
            b"connections: 11320999999, sockfd:11315339502, time_used:1241 tail",
            b"connections:999, sockfd:1002, time_used:1241",
            b"connections:  999 ,  sockfd: 1002,time_used:  1241",
            b"connections: 999, sockfd: 1002, time_used:1241",
            b"connections: 999, sockfd:1002, time_used: 1241",
            b"connections: 999,sockfd:1002, time_used:1241",
            b"connections: 999, sockfd:x, time_used:1241",
            b"connections: 99999999999999999999, sockfd:1, time_used:1",
        ] {
            assert_eq!(
                progress(line),
                progress_spaced(line),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert!(progress_exact(b"connections: 999, sockfd:1002, time_used:1241").is_some());
    }

    #[test]
    fn digits_agree_with_str_parse() {
        let cases: &[&[u8]] = &[
            b"0",
            b"7,",
            b"12345678",
            b"1234567x",
            b"99999999999",
            b"1",
            b"0012, sockfd",
            b"18446744073709551615",
            b"18446744073709551616",
            b"x1",
            b"",
            b"999, sockfd:1002",
            b"1234567",
            b"123456789012345678901234",
            b"12345678901, sockfd:1",
            b"1234567890123456789",
            b"12345678901234567890",
            b"99999999999999999999",
            b"000000000000000000000001",
            b"0000000000000000000000000000000018446744073709551615x",
            b"000000000000000000000000000000001844674407370955161512",
            b"1234567812345678",
            b"123456781234567",
            b"12345678x",
        ];
        for c in cases {
            let n = c.iter().take_while(|b| b.is_ascii_digit()).count();
            let want = std::str::from_utf8(&c[..n])
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
                .map(|v| (v, n));
            assert_eq!(digits(c), want, "{:?}", String::from_utf8_lossy(c));
        }
        for v in [
            0u64,
            9,
            10,
            99,
            100,
            1_000_000,
            12_345_678,
            987_654_321,
            11_320_999_999,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let mut text = v.to_string().into_bytes();
            text.extend_from_slice(b", sockfd:1");
            assert_eq!(digits(&text), Some((v, v.to_string().len())));
        }
    }

    #[test]
    fn seed_records_parse_clean_and_glued() {
        assert_eq!(
            p(b"\tconnections: 999, sockfd:1002, time_used:1241"),
            Line::Progress {
                conns: 999,
                fd: 1002,
                ms: 1241,
                glued: false
            }
        );
        assert_eq!(
            p(b"\tXshellconnections: 94999, sockfd:94968, time_used:1449"),
            Line::Progress {
                conns: 94999,
                fd: 94968,
                ms: 1449,
                glued: true
            }
        );
        // A log's own timestamp (and process) before a record is no noise.
        for line in [
            &b"2026-12-02 22:43:05,123 connections: 999, sockfd:1002, time_used:1241"[..],
            b"Dec  2 22:43:05 host client[7]: connections: 999, sockfd:1002, time_used:1241",
        ] {
            assert_eq!(
                p(line),
                Line::Progress {
                    conns: 999,
                    fd: 1002,
                    ms: 1241,
                    glued: false
                }
            );
        }
        assert_eq!(
            p(b"\t Error clientfd:59002, errno:11"),
            Line::SeedError {
                fd: 59002,
                errno: 11
            }
        );
        assert_eq!(
            p(b" RecvBuffer:Hello Server: client --> 1"),
            Line::RecvBuffer { garbage: false }
        );
        assert_eq!(p(b" Disconnect clientfd:12"), Line::Disconnect { fd: 12 });
        assert_eq!(
            p("## 客户端2".as_bytes()),
            Line::Header {
                level: 2,
                title: "客户端2".as_bytes()
            }
        );
        assert_eq!(
            p(b"[root@1084121 reactor]# ./reactor"),
            Line::Prompt {
                command: b"./reactor"
            }
        );
    }

    #[test]
    fn program_error_lines_map_through_errno_and_call() {
        assert_eq!(
            id_of("accept: Too many open files"),
            Some((FailureId::FdLimit, "accept"))
        );
        assert_eq!(
            id_of("socket: Too many open files in system"),
            Some((FailureId::SystemFdLimit, "socket"))
        );
        assert_eq!(
            id_of("2024/01/01 12:00:00 [crit] 7#7: accept4() failed (24: Too many open files)"),
            Some((FailureId::FdLimit, "accept"))
        );
        assert_eq!(
            id_of("dial tcp 10.0.0.1:8888: connect: cannot assign requested address"),
            Some((FailureId::EphemeralPortsExhausted, "connect"))
        );
        assert_eq!(
            id_of("Error: accept failed: Too many open files (os error 24)"),
            Some((FailureId::FdLimit, "accept"))
        );
        assert_eq!(
            id_of("socket: No file descriptors available"),
            Some((FailureId::FdLimit, "socket"))
        );
        assert_eq!(
            id_of("connect: Connection timed out"),
            Some((FailureId::ConnectTimeout, "connect"))
        );
        assert_eq!(
            id_of("epoll_ctl: No space left on device"),
            Some((FailureId::EpollWatchLimit, "epoll_ctl"))
        );
        assert_eq!(id_of("write: No space left on device"), None);
        assert_eq!(id_of("data from 4"), None);
    }

    #[test]
    fn kernel_counters_and_sysctls() {
        assert_eq!(
            id_of("[ 123.456789] nf_conntrack: nf_conntrack: table full, dropping packet"),
            Some((FailureId::ConntrackFull, ""))
        );
        match p(b"Nov 29 03:00:01 h kernel: TCP: request_sock_TCP: Possible SYN flooding on port 8888. Sending cookies.  Check SNMP counters.") {
            Line::Evidence { id, detail, kernel } => {
                assert_eq!(id, FailureId::AcceptQueueOverflow);
                assert_eq!(detail.port, Some(8888));
                assert!(kernel);
            }
            other => panic!("{other:?}"),
        }
        match p(b"[ 5.1] Out of memory: Killed process 1234 (reactor) total-vm:2200000kB, anon-rss:2100000kB, file-rss:0kB") {
            Line::Evidence { id, detail, .. } => {
                assert_eq!(id, FailureId::OutOfMemory);
                assert_eq!(detail.pid, Some(1234));
                assert_eq!(detail.anon_rss_kb, Some(2_100_000));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            id_of("TCP: out of memory -- consider tuning tcp_mem"),
            Some((FailureId::TcpMemoryPressure, ""))
        );
        assert_eq!(
            p(b"TcpExtListenOverflows           1234               0.0"),
            Line::Counter {
                name: "ListenOverflows",
                value: 1234
            }
        );
        assert_eq!(
            p(b"    77 times the listen queue of a socket overflowed"),
            Line::Counter {
                name: "ListenOverflows",
                value: 77
            }
        );
        assert_eq!(
            p(b"TCP: inuse 1000 orphan 3 tw 5 alloc 1002 mem 300"),
            Line::Sockstat {
                inuse: 1000,
                orphan: 3,
                tw: 5,
                mem: 300
            }
        );
        assert_eq!(
            p(b"net.ipv4.tcp_mem = 1 2 3"),
            Line::Sysctl {
                key: SysctlKey::TcpMem,
                values: [1, 2, 3]
            }
        );
        assert_eq!(p(b"fs.epoll.max_user_watches = 100"), Line::Other);
        assert_eq!(
            id_of("[1]+  Killed                  ./client"),
            Some((FailureId::OutOfMemory, ""))
        );
    }
}
