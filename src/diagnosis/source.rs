//! Per-source state: everything `analyze` learns from one client's, one
//! server's, one kernel's or one counter snapshot's lines, kept in a fixed
//! amount of memory whatever the log size (counts, first/last/max records,
//! the first few evidence lines per failure, a decimated plot series).
//!
//! A file is one source, except when it holds several programs' outputs
//! under Markdown level-2 headers, as the seed does (`## 客户端1`,
//! `## 客户端2`...): then each section is its own source, named after its
//! header, and repeated headers continue the same source. Sections without
//! a single record (prose, the author's notes) are read and counted but do
//! not become sources.
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Read;

use serde::Serialize;

use super::input::{Batch, read_batches_probing};
use super::parse::{self, Bytes, Detail, Line, Scratch, SysctlKey};
use crate::catalogue::FailureId;
use crate::events::{Event, FloodStart, Record, Role};
use crate::flood::wire::FloodSummary;

/// How many evidence lines a finding keeps.
pub const MAX_EVIDENCE: usize = 3;
/// Plot points kept per source (older points are thinned, not dropped).
pub const MAX_POINTS: usize = 2048;
/// Error marks kept per source for the plot.
pub const MAX_MARKS: usize = 400;
/// The seed client prints a progress line every this many connections.
pub const SEED_STEP: u64 = 1000;
/// Evidence lines are cut to this many characters.
pub const EVIDENCE_CHARS: usize = 110;

/// What kind of program or file a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Client,
    Server,
    Kernel,
    Counters,
    Log,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Client => "client",
            Kind::Server => "server",
            Kind::Kernel => "kernel",
            Kind::Counters => "counters",
            Kind::Log => "log",
        }
    }
}

/// One line quoted as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub file: String,
    pub line: u64,
    /// The line, decoded lossily, control bytes shown as `·`, cut to a
    /// readable length.
    pub text: String,
}

impl Evidence {
    pub fn new(file: &str, line: u64, raw: &[u8]) -> Evidence {
        Evidence {
            file: file.to_string(),
            line,
            text: printable(raw, EVIDENCE_CHARS),
        }
    }
}

/// `raw` trimmed, decoded lossily, control bytes shown as `·`, cut to
/// `max` characters (the cut marked with `…`).
pub fn printable(raw: &[u8], max: usize) -> String {
    let lossy = String::from_utf8_lossy(parse::trim(raw));
    let mut text = String::new();
    for (n, c) in lossy.chars().enumerate() {
        if n == max {
            text.push('…');
            break;
        }
        text.push(if c.is_control() && c != '\t' { '·' } else { c });
    }
    text
}

/// A line of a file quoted as a sample of what it holds (shown when no
/// line of the file was recognised).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SampleLine {
    pub line: u64,
    /// Printable, cut to [`SAMPLE_CHARS`] characters.
    pub text: String,
}

/// Sample lines kept per file, and their length.
pub const SAMPLES: usize = 3;
pub const SAMPLE_CHARS: usize = 100;

/// A line kept as bytes (in a reused buffer) until the end, for evidence
/// that changes on most lines (the highest count, the last offset drop):
/// building the text only once keeps the per-line cost flat.
#[derive(Debug, Clone, Default)]
pub struct Lazy {
    line: u64,
    raw: Vec<u8>,
    set: bool,
    /// Where the line is in the batch being read (start, length), when the
    /// fast path set it: `settle` copies it at the end of the batch, so a
    /// line replaced within its batch (most are) is never copied.
    pending: Option<(usize, usize)>,
}

/// Bytes of a line a [`Lazy`] keeps.
const LAZY_BYTES: usize = 512;

impl Lazy {
    fn set(&mut self, line: u64, raw: &[u8]) {
        self.line = line;
        self.raw.clear();
        self.raw
            .extend_from_slice(&raw[..raw.len().min(LAZY_BYTES)]);
        self.set = true;
        self.pending = None;
    }

    /// `set` for line `raw` found at `at` in the batch being read (or, with
    /// no place, copied now).
    fn set_in_batch(&mut self, line: u64, raw: &[u8], at: Option<usize>) {
        match at {
            Some(at) => {
                self.line = line;
                self.set = true;
                self.pending = Some((at, raw.len().min(LAZY_BYTES)));
            }
            None => self.set(line, raw),
        }
    }

    /// Copy a pending line out of the batch `data` before it is reused.
    fn settle(&mut self, data: &[u8]) {
        if let Some((at, len)) = self.pending.take() {
            self.raw.clear();
            self.raw
                .extend_from_slice(data.get(at..at + len).unwrap_or_default());
        }
    }

    fn get(&self, file: &str) -> Option<Evidence> {
        debug_assert!(self.pending.is_none(), "a lazy line read before it settled");
        self.set.then(|| Evidence::new(file, self.line, &self.raw))
    }
}

/// One failure record of c1m's JSON lines with its time, for linking
/// effects to causes across sources (`rules::faults`).
#[derive(Debug, Clone)]
pub struct Timed {
    /// Seconds since the Unix epoch.
    pub ts: f64,
    pub id: FailureId,
    pub count: u64,
    pub detail: String,
    pub evidence: Evidence,
}

/// At most this many timed failure records are kept per source (one per
/// class per second: an hour of a few classes).
pub const MAX_TIMED: usize = 16_384;

/// Everything seen of one failure class in one source.
#[derive(Debug, Clone, Default)]
pub struct Obs {
    pub count: u64,
    pub evidence: Vec<Evidence>,
    /// The first call named ("connect", "accept"...), empty if none.
    pub call: &'static str,
    pub errno: Option<i32>,
    /// Seen in a kernel line.
    pub kernel: bool,
    pub detail: Option<String>,
    /// When it was first seen: the timestamp of its first line (or of the
    /// stamped line above it), or its first c1m record's time.
    pub first_ts: Option<f64>,
}

impl Obs {
    fn add(&mut self, n: u64, ev: impl FnOnce() -> Evidence) {
        self.count = self.count.saturating_add(n);
        if self.evidence.len() < MAX_EVIDENCE {
            self.evidence.push(ev());
        }
    }
}

/// What a source's timestamps say (see `super::timestamps`), and the
/// processes of its file.
#[derive(Debug, Clone, Default)]
pub struct Stamps {
    /// Lines that carried a stamp.
    pub lines: u64,
    /// The latest stamp: a line without one (a stack frame) belongs to it.
    now: Option<f64>,
    /// When the file mixes several processes' lines and this source is
    /// one of them: what to say about it.
    pub process_note: Option<String>,
    /// The first stamp and its line, and the last stamp.
    pub first: Option<(f64, u64)>,
    pub last: Option<f64>,
    /// Times a stamp was more than [`BACK_S`] older than the one before:
    /// lines of two writers mixed, and by how much at most.
    pub back: u64,
    pub back_max: f64,
    pub back_evidence: Option<Evidence>,
}

/// A stamp this much older than the previous one is out of order (less is
/// the jitter of threads writing one log).
pub const BACK_S: f64 = 1.0;

/// A progress record of the seed format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub line: u64,
    pub conns: u64,
    pub fd: u64,
    pub ms: u64,
}

/// What the seed client's progress lines tell.
#[derive(Debug, Clone, Default)]
pub struct SeedState {
    pub progress_lines: u64,
    pub first: Option<Progress>,
    pub last: Option<Progress>,
    pub max: Option<Progress>,
    pub max_evidence: Option<Evidence>,
    max_lazy: Lazy,
    pub first_evidence: Option<Evidence>,
    /// Smallest positive step between progress lines.
    pub step: Option<u64>,
    /// Connections and milliseconds over regular intervals (for the rate).
    pub rate_conns: u64,
    pub rate_ms: u64,
    pub total_ms: u64,
    /// `sockfd - connections` on the first line with a real fd, and last.
    pub first_offset: Option<i64>,
    pub last_offset: Option<i64>,
    pub first_drop: Option<Evidence>,
    pub last_drop: Option<Evidence>,
    drop_lazy: Lazy,
    pub zero_fd_lines: u64,
    pub zero_fd_evidence: Option<Evidence>,
    /// Repeats of the same count with `sockfd:0`: the client's cap.
    pub cap_repeats: u64,
    pub cap_value: Option<u64>,
    pub cap_evidence: Option<Evidence>,
    /// Jumps larger than one step: progress lines missing from the log.
    pub gaps: u64,
    pub missing_lines: u64,
    pub gap_evidence: Option<(Evidence, u64, u64)>,
    /// Count went down: a restarted client in the same log.
    pub restarts: u64,
    /// Intervals that took whole extra seconds (SYN retransmissions).
    pub retrans_intervals: u64,
    pub retrans_waits: u64,
    pub retrans_evidence: Option<Evidence>,
    pub retrans_first_conns: u64,
    /// (index, ms) with increasing ms: the minimum of the last 32 regular
    /// intervals is at the front (a monotonic queue, O(1) per line).
    window: VecDeque<(u64, u64)>,
    window_seen: u64,
    pub recv_buffers: u64,
    pub recv_garbage: u64,
    pub recv_evidence: Vec<Evidence>,
    open_recv: Option<u32>,
    recv_lazy: Lazy,
    pub seed_errors: u64,
}

/// A counter followed through the snapshots of a source.
#[derive(Debug, Clone)]
pub struct CounterTrack {
    pub first: u64,
    pub last: u64,
    pub snapshots: u64,
    pub first_evidence: Evidence,
    pub last_evidence: Evidence,
}

/// c1m's own JSON lines.
#[derive(Debug, Clone, Default)]
pub struct JsonState {
    pub records: u64,
    pub role: Option<Role>,
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
    parent: Option<u64>,
    workers: BTreeMap<u64, u64>,
    pub current: u64,
    pub max: u64,
    pub max_ts: f64,
    pub max_evidence: Option<Evidence>,
    max_lazy: Lazy,
    pub target: Option<u64>,
    pub summary_connections: Option<u64>,
    pub summary_opened: u64,
    pub summary_elapsed: f64,
    /// The connect phase of the summaries (flood's `connect_s`, the
    /// longest) and the connections they verified: the rate c1m reports.
    pub summary_connect_s: f64,
    pub summary_verified: u64,
    /// flood stopped connecting on the lab's SIGUSR1 (`lab --target max`
    /// at the host's ceiling) and held what it had verified.
    pub ramp_stopped: bool,
    /// Seconds from the first record to the last one at 0 connections
    /// before the count rose: the rise starts there.
    pub rise_start: f64,
    pub summary_failures: BTreeMap<FailureId, u64>,
    pub summary_evidence: Option<Evidence>,
    pub worker_events: u64,
    pub worker_evidence: Option<Evidence>,
    pub failure_records: u64,
    /// What a flood's connections spoke (its `start` settings), when said.
    pub protocol: Option<crate::events::ProtocolSettings>,
    /// flood's `--reconnect` account (its summary's `reconnect`, the
    /// process that lost most), with the summary line: what
    /// `rules::faults` judges a reconnect storm from.
    pub reconnect: Option<(crate::flood::engine::ReconnectSummary, Evidence)>,
}

/// Line accounting for a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LineCounts {
    pub read: u64,
    /// Lines that carried a record (progress, error, kernel, counter, JSON).
    pub recognized: u64,
    /// Lines with nothing to use (prose, blank, Markdown, unknown output).
    pub skipped: u64,
    /// Lines with broken bytes, glued records, or cut.
    pub corrupted: u64,
}

/// Kinds of corruption, counted separately.
#[derive(Debug, Clone, Default)]
pub struct Corruption {
    pub control_or_invalid: u64,
    pub glued: u64,
    pub cut_long: u64,
    pub bad_json: u64,
    /// Non-ASCII bytes in a program's ASCII output (counted as corrupted
    /// only in sources of the seed format).
    pub non_ascii: u64,
    pub unterminated_last: bool,
    pub evidence: Vec<Evidence>,
    pub non_ascii_evidence: Option<Evidence>,
}

/// One source being read.
#[derive(Debug, Clone)]
pub struct Source {
    /// Shared with every evidence closure, so feeding a line never copies it.
    pub file: std::rc::Rc<str>,
    pub section: Option<String>,
    kind_hint: Option<Kind>,
    pub command: Option<String>,
    pub lines: LineCounts,
    pub seed: SeedState,
    pub json: JsonState,
    pub obs: BTreeMap<FailureId, Obs>,
    pub counters: BTreeMap<&'static str, CounterTrack>,
    pub sysctl: BTreeMap<SysctlKey, ([u64; 3], Evidence)>,
    pub sockstat: Option<([u64; 4], Evidence)>,
    pub corruption: Corruption,
    /// Lines per source category, to decide the kind.
    pub program_lines: u64,
    pub kernel_lines: u64,
    pub counter_lines: u64,
    accept_errors: u64,
    connect_errors: u64,
    pub mentions_reactor: bool,
    last_error: Option<(u64, i32)>,
    /// The runtime exception being printed (stack frames, `Caused by:`,
    /// Node's error object), folded into one event.
    exception: Option<OpenException>,
    /// An exception header no vocabulary entry matched (`Exception in
    /// thread "main" java.lang.RuntimeException: ...`): the wrapper, kept
    /// as context when a `Caused by:` below it is recognised.
    wrapper: Option<String>,
    /// Counts from free-form progress lines, one series per form.
    pub free: super::counts::FreeCounts,
    /// The highest line of each series (boxed, made at the first count:
    /// a file may hold tens of thousands of sources without one).
    free_lazy: Option<Box<[Lazy; 8]>>,
    /// The highest line of the series `free.pick()` chose (set at the end).
    pub free_max_evidence: Option<Evidence>,
    pub salvaged_evidence: Option<Evidence>,
    /// Plot: (seconds, connections), thinned to MAX_POINTS.
    pub points: Vec<(f64, f64)>,
    /// One point in this many is kept (a power of two, doubled at each
    /// thinning).
    stride: u64,
    seen_points: u64,
    last_point: Option<(f64, f64)>,
    pub marks: Vec<(f64, f64, FailureId)>,
    x: f64,
    /// c1m's failure records with their times.
    pub timed: Vec<Timed>,
    /// The timestamps of the lines (boxed, made at the first stamp or
    /// process note: most sources have none, and a file may hold tens of
    /// thousands of sources).
    time: Option<Box<Stamps>>,
}

impl Source {
    pub fn new(file: &str, section: Option<String>) -> Source {
        let kind_hint = section.as_deref().and_then(kind_from_title);
        Source {
            file: std::rc::Rc::from(file),
            section,
            kind_hint,
            command: None,
            lines: LineCounts::default(),
            seed: SeedState::default(),
            json: JsonState::default(),
            obs: BTreeMap::new(),
            counters: BTreeMap::new(),
            sysctl: BTreeMap::new(),
            sockstat: None,
            corruption: Corruption::default(),
            program_lines: 0,
            kernel_lines: 0,
            counter_lines: 0,
            accept_errors: 0,
            connect_errors: 0,
            mentions_reactor: false,
            last_error: None,
            exception: None,
            wrapper: None,
            free: Default::default(),
            free_lazy: None,
            free_max_evidence: None,
            salvaged_evidence: None,
            points: Vec::new(),
            stride: 1,
            seen_points: 0,
            last_point: None,
            marks: Vec::new(),
            x: 0.0,
            timed: Vec::new(),
            time: None,
        }
    }

    /// What the source's timestamps say (all zero when it has none).
    pub fn stamps(&self) -> &Stamps {
        static NONE: Stamps = Stamps {
            lines: 0,
            now: None,
            process_note: None,
            first: None,
            last: None,
            back: 0,
            back_max: 0.0,
            back_evidence: None,
        };
        self.time.as_deref().unwrap_or(&NONE)
    }

    /// The time of the line being fed, when the source's lines carry stamps.
    fn now(&self) -> Option<f64> {
        self.time.as_ref().and_then(|t| t.now)
    }

    /// The name shown in tables: the file, and the section if any.
    pub fn name(&self) -> String {
        match &self.section {
            Some(s) => format!("{} [{}]", self.file, s),
            None => self.file.to_string(),
        }
    }

    /// Whether the source holds the seed client's records.
    pub fn is_seed_format(&self) -> bool {
        self.seed.progress_lines > 0 || self.seed.seed_errors > 0 || self.seed.recv_buffers > 0
    }

    /// What the source is: from its header, its JSON role, or its lines.
    pub fn kind(&self) -> Kind {
        if let Some(k) = self.kind_hint {
            return k;
        }
        match self.json.role {
            Some(Role::Serve) => return Kind::Server,
            Some(Role::Flood) => return Kind::Client,
            _ => {}
        }
        if self.seed.progress_lines > 0 || self.connect_errors > 0 {
            return Kind::Client;
        }
        if self.accept_errors > 0 {
            return Kind::Server;
        }
        if self.kernel_lines > 0 && self.kernel_lines >= self.program_lines {
            return Kind::Kernel;
        }
        if self.counter_lines > 0 && self.program_lines == 0 {
            return Kind::Counters;
        }
        Kind::Log
    }

    /// True when the source holds anything worth reporting.
    pub fn has_records(&self) -> bool {
        self.lines.recognized > 0
    }

    fn point(&mut self, x: f64, y: f64) {
        self.last_point = Some((x, y));
        self.seen_points += 1;
        // The stride is a power of two: a mask, not a division per line.
        if (self.seen_points - 1) & (self.stride - 1) != 0 {
            return;
        }
        if self.points.len() >= MAX_POINTS {
            let mut i = 0;
            self.points.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.stride *= 2;
        }
        self.points.push((x, y));
    }

    fn mark(&mut self, id: FailureId) {
        if self.marks.len() < MAX_MARKS {
            let y = self.last_point.map(|p| p.1).unwrap_or(0.0);
            self.marks.push((self.x, y, id));
        }
    }

    fn observe(&mut self, id: FailureId, n: u64, ev: impl FnOnce() -> Evidence) -> &mut Obs {
        let o = self.obs.entry(id).or_default();
        o.add(n, ev);
        if o.first_ts.is_none() {
            o.first_ts = self.time.as_ref().and_then(|t| t.now);
        }
        o
    }

    /// The timestamp of line `no` (before it is fed): lines after it
    /// without one belong to its time; a stamp much older than the last
    /// one says two writers share the file.
    pub fn stamp(&mut self, file: &str, no: u64, raw: &[u8], ts: f64) {
        let st = self.time.get_or_insert_with(Default::default);
        st.lines += 1;
        let (t0, _) = *st.first.get_or_insert((ts, no));
        if let Some(last) = st.last
            && ts < last - BACK_S
        {
            st.back += 1;
            st.back_max = st.back_max.max(last - ts);
            if st.back_evidence.is_none() {
                st.back_evidence = Some(Evidence::new(file, no, raw));
            }
        }
        st.last = Some(st.last.map_or(ts, |l| l.max(ts)));
        st.now = Some(ts);
        if self.json.records == 0 && !self.is_seed_format() {
            // The plot's x axis: seconds since the first stamp.
            self.x = (ts - t0).max(0.0);
        }
    }

    /// Feed one line.
    pub fn feed(&mut self, file: &str, no: u64, raw: &[u8], parsed: &parse::Parsed<'_>, cut: bool) {
        self.lines.read += 1;
        let ev = || Evidence::new(file, no, raw);
        let Bytes {
            control,
            invalid_utf8,
            non_ascii,
        } = parsed.bytes;
        let glued = matches!(parsed.line, Line::Progress { glued: true, .. });
        let hard = control || invalid_utf8 || glued || cut;
        if hard {
            self.lines.corrupted += 1;
            if control || invalid_utf8 {
                self.corruption.control_or_invalid += 1;
            }
            if glued {
                self.corruption.glued += 1;
            }
            if cut {
                self.corruption.cut_long += 1;
            }
            if self.corruption.evidence.len() < MAX_EVIDENCE {
                self.corruption.evidence.push(ev());
            }
        } else if non_ascii
            && matches!(
                parsed.line,
                Line::Other | Line::Blank | Line::RecvBuffer { .. } | Line::Progress { .. }
            )
        {
            self.corruption.non_ascii += 1;
            if self.corruption.non_ascii_evidence.is_none() {
                self.corruption.non_ascii_evidence = Some(ev());
            }
        }
        // An open ` RecvBuffer:` spills over the next lines until its 128
        // bytes end; garbage there means the buffer was not terminated.
        if let Some(left) = self.seed.open_recv.take() {
            if non_ascii || control {
                self.seed.recv_garbage += 1;
                if self.seed.recv_evidence.len() < MAX_EVIDENCE
                    && let Some(rb) = self.seed.recv_lazy.get(file)
                {
                    self.seed.recv_evidence.push(rb);
                }
            } else if left > 1 && matches!(parsed.line, Line::Other | Line::Blank) {
                self.seed.open_recv = Some(left - 1);
            }
        }
        if (self.exception.is_some() || self.wrapper.is_some()) && self.fold(no, raw, parsed, &ev) {
            return;
        }
        match &parsed.line {
            Line::Blank | Line::Header { .. } | Line::Fence | Line::Other => {
                self.lines.skipped += 1;
                if matches!(parsed.line, Line::Other) && exception_header(raw) {
                    // Kept as context for a `Caused by:` below it.
                    self.wrapper = Some(header_text(raw));
                }
                let t = parse::trim(raw);
                if matches!(parsed.line, Line::Other)
                    && matches!(t.first(), Some(b'#') | Some(b'.'))
                    && parse::find(t, b"reactor").is_some()
                {
                    self.mentions_reactor = true;
                }
            }
            Line::Prompt { command } => {
                self.lines.skipped += 1;
                if self.command.is_none() {
                    self.command = Some(String::from_utf8_lossy(command).into_owned());
                }
                if parse::find(command, b"reactor").is_some() {
                    self.mentions_reactor = true;
                }
            }
            Line::Progress { conns, fd, ms, .. } => {
                self.lines.recognized += 1;
                self.program_lines += 1;
                self.progress(
                    Progress {
                        line: no,
                        conns: *conns,
                        fd: *fd,
                        ms: *ms,
                    },
                    raw,
                    None,
                    &ev,
                );
            }
            Line::SeedError { errno, .. } => {
                self.lines.recognized += 1;
                self.program_lines += 1;
                self.seed.seed_errors += 1;
                // The seed prints it when recv() fails in its event loop.
                if let Some(id) = FailureId::from_errno("recv", *errno) {
                    self.observe(id, 1, ev).errno = Some(*errno);
                    self.mark(id);
                }
            }
            Line::RecvBuffer { garbage } => {
                self.lines.recognized += 1;
                self.program_lines += 1;
                self.seed.recv_buffers += 1;
                if *garbage {
                    self.seed.recv_garbage += 1;
                    if self.seed.recv_evidence.len() < MAX_EVIDENCE {
                        self.seed.recv_evidence.push(ev());
                    }
                } else {
                    self.seed.open_recv = Some(12);
                    self.seed.recv_lazy.set(no, raw);
                }
            }
            Line::Disconnect { .. } => {
                self.lines.recognized += 1;
                self.program_lines += 1;
                self.observe(FailureId::PeerDisconnect, 1, ev);
            }
            Line::Error { id, call, errno } => {
                self.lines.recognized += 1;
                self.program_lines += 1;
                match *call {
                    "accept" => self.accept_errors += 1,
                    "connect" => self.connect_errors += 1,
                    _ => {}
                }
                // `connect: X` then `error : X`: one failure, two lines.
                let cont = matches!((self.last_error, errno), (Some((l, e)), Some(e2)) if no <= l + 2 && e == *e2 && call.is_empty());
                let o = self.obs.entry(*id).or_default();
                if o.first_ts.is_none() {
                    o.first_ts = self.time.as_ref().and_then(|t| t.now);
                }
                if cont {
                    if o.evidence.len() < MAX_EVIDENCE {
                        o.evidence.push(ev());
                    }
                } else {
                    o.add(1, ev);
                    if o.call.is_empty() {
                        o.call = call;
                    }
                    o.errno = o.errno.or(*errno);
                    self.mark(*id);
                }
                if let Some(e) = errno {
                    self.last_error = Some((no, *e));
                }
            }
            Line::Runtime(hit) => self.runtime(no, hit, &ev),
            Line::Evidence { id, kernel, detail } => {
                self.lines.recognized += 1;
                if *kernel {
                    self.kernel_lines += 1;
                } else {
                    self.program_lines += 1;
                }
                let text = describe(*id, detail);
                let o = self.observe(*id, 1, ev);
                o.kernel |= *kernel;
                if o.detail.is_none() {
                    o.detail = text;
                }
                self.mark(*id);
            }
            Line::Counter { name, value } => {
                self.lines.recognized += 1;
                self.counter_lines += 1;
                let e = ev();
                self.counters
                    .entry(name)
                    .and_modify(|c| {
                        c.last = *value;
                        c.snapshots += 1;
                        c.last_evidence = e.clone();
                    })
                    .or_insert_with(|| CounterTrack {
                        first: *value,
                        last: *value,
                        snapshots: 1,
                        first_evidence: e.clone(),
                        last_evidence: e,
                    });
            }
            Line::Sockstat {
                inuse,
                orphan,
                tw,
                mem,
            } => {
                self.lines.recognized += 1;
                self.counter_lines += 1;
                let v = [*inuse, *orphan, *tw, *mem];
                // Keep the snapshot with the most memory in use.
                if self.sockstat.as_ref().is_none_or(|(old, _)| v[3] >= old[3]) {
                    self.sockstat = Some((v, ev()));
                }
            }
            Line::Sysctl { key, values } => {
                self.lines.recognized += 1;
                self.counter_lines += 1;
                let keep_max = matches!(key, SysctlKey::ConntrackCount | SysctlKey::FileNr);
                let replace = match self.sysctl.get(key) {
                    Some((old, _)) if keep_max => values[0] >= old[0],
                    _ => true,
                };
                if replace {
                    self.sysctl.insert(*key, (*values, ev()));
                }
            }
            Line::Count(sample) => self.count(no, raw, sample, &ev),
            Line::Json => self.json_line(no, raw, &ev),
        }
    }

    /// Whether `feed_fast` takes a line the fast path recognised as `fast`:
    /// the kinds it added for the seed's RecvBuffer prints go through
    /// `feed` while a runtime exception is being printed, whose folding
    /// they must not skip.
    pub fn takes_fast(&self, fast: parse::Fast) -> bool {
        use parse::Fast;
        match fast {
            Fast::Progress { .. } | Fast::SeedError { .. } | Fast::Chatter { non_ascii: false } => {
                true
            }
            Fast::RecvBuffer | Fast::Chatter { non_ascii: true } => {
                self.exception.is_none() && self.wrapper.is_none()
            }
        }
    }

    /// Copy the lines kept for evidence out of the batch `data` they were
    /// fed from (`feed_fast`'s `at`), before the batch is reused.
    pub fn settle(&mut self, data: &[u8]) {
        self.seed.max_lazy.settle(data);
        self.seed.drop_lazy.settle(data);
    }

    /// Feed a clean seed record recognised by the fast path (when
    /// `takes_fast` says so), found at `at` in the batch being read (call
    /// `settle` with the batch before it is reused): the same effect as
    /// `feed` with its parsed line, without the general checks.
    pub fn feed_fast(&mut self, file: &str, no: u64, raw: &[u8], at: usize, fast: parse::Fast) {
        self.lines.read += 1;
        if self.exception.is_some() || self.wrapper.is_some() {
            // A record or plain chatter ends any exception being printed,
            // unless it is indented like a frame.
            if super::vocab::continuation(raw) == super::vocab::Continuation::No {
                self.exception = None;
                self.wrapper = None;
            }
        }
        if let parse::Fast::Chatter { non_ascii } = fast {
            self.lines.skipped += 1;
            if !non_ascii {
                // Clean ASCII that is no record: a RecvBuffer spill-over
                // line keeps its window open, like `feed` does for
                // `Line::Other`.
                self.seed.open_recv = self
                    .seed
                    .open_recv
                    .and_then(|left| left.checked_sub(1))
                    .filter(|&l| l > 0);
                return;
            }
            // Bytes >= 0x80 in program output: counted (as corruption in
            // a source of the seed format), and garbage in an open
            // RecvBuffer's spill-over, as `feed` does.
            self.corruption.non_ascii += 1;
            if self.corruption.non_ascii_evidence.is_none() {
                self.corruption.non_ascii_evidence = Some(Evidence::new(file, no, raw));
            }
            if self.seed.open_recv.take().is_some() {
                self.seed.recv_garbage += 1;
                if self.seed.recv_evidence.len() < MAX_EVIDENCE
                    && let Some(rb) = self.seed.recv_lazy.get(file)
                {
                    self.seed.recv_evidence.push(rb);
                }
            }
            return;
        }
        self.lines.recognized += 1;
        self.program_lines += 1;
        // A record ends an open ` RecvBuffer:` (it was clean ASCII).
        self.seed.open_recv = None;
        let ev = || Evidence::new(file, no, raw);
        match fast {
            parse::Fast::Progress { conns, fd, ms } => {
                self.progress(
                    Progress {
                        line: no,
                        conns,
                        fd,
                        ms,
                    },
                    raw,
                    Some(at),
                    &ev,
                );
            }
            parse::Fast::Chatter { .. } => {}
            parse::Fast::RecvBuffer => {
                self.seed.recv_buffers += 1;
                self.seed.open_recv = Some(12);
                self.seed.recv_lazy.set(no, raw);
            }
            parse::Fast::SeedError { errno, .. } => {
                self.seed.seed_errors += 1;
                if let Some(id) = FailureId::from_errno("recv", errno) {
                    self.observe(id, 1, ev).errno = Some(errno);
                    self.mark(id);
                }
            }
        }
    }

    /// A count from a free-form progress line (or a damaged seed line).
    fn count(
        &mut self,
        no: u64,
        raw: &[u8],
        sample: &super::counts::Sample,
        ev: &dyn Fn() -> Evidence,
    ) {
        self.lines.recognized += 1;
        self.program_lines += 1;
        let i = super::counts::Form::ALL
            .iter()
            .position(|f| *f == sample.form)
            .unwrap_or(0);
        let before = self.free.series[i].max;
        let first = self.free.series[i].samples == 0;
        self.free.add(sample, no, self.now());
        if first || sample.value > before {
            self.free_lazy.get_or_insert_with(Default::default)[i].set(no, raw);
        }
        if sample.salvaged && self.salvaged_evidence.is_none() {
            self.salvaged_evidence = Some(ev());
        }
        if !self.is_seed_format() {
            // One step per line when there is no clock to place it by.
            if self.now().is_none() {
                self.x += 1.0;
            }
            let x = self.x;
            self.point(x, sample.value as f64);
        }
    }

    /// A line of a runtime's vocabulary: a summary of counted failures
    /// (each field its own count), or one exception, which stays open so
    /// that its frames and causes fold into it.
    fn runtime(&mut self, no: u64, hit: &super::vocab::Hit, ev: &dyn Fn() -> Evidence) {
        self.lines.recognized += 1;
        self.program_lines += 1;
        match hit.call {
            "accept" => self.accept_errors += 1,
            "connect" | "socket" => self.connect_errors += 1,
            _ => {}
        }
        if hit.is_tally() {
            for (id, n) in hit.counted() {
                let o = self.observe(id, n, ev);
                if o.call.is_empty() {
                    o.call = hit.call;
                }
                o.detail
                    .get_or_insert_with(|| format!("counted by {}", hit.runtime));
                self.mark(id);
            }
            return;
        }
        let wrapper = self.wrapper.take();
        let o = self.observe(hit.id, 1, ev);
        if o.call.is_empty() {
            o.call = hit.call;
        }
        o.errno = o.errno.or(hit.errno);
        if o.detail.is_none()
            && let Some(w) = wrapper
        {
            o.detail = Some(format!("the innermost cause, wrapped in {w}"));
        }
        self.mark(hit.id);
        if let Some(e) = hit.errno {
            // perror's `connect: X` then `error : X`: one failure, two lines.
            self.last_error = Some((no, e));
        }
        if hit.traces {
            self.exception = Some(OpenException {
                id: hit.id,
                line: no,
                chained: false,
            });
        }
    }

    /// Lines that continue the exception above them: frames and error
    /// objects fold into it (recognised, not counted again); Java's
    /// `Caused by:` moves the event to the deeper cause, keeping the
    /// wrapper as context; the exception Python prints after "The above
    /// exception was the direct cause..." is the wrapper of the one above.
    /// Returns true when the line was consumed.
    fn fold(
        &mut self,
        no: u64,
        raw: &[u8],
        parsed: &parse::Parsed<'_>,
        ev: &dyn Fn() -> Evidence,
    ) -> bool {
        use super::vocab::Continuation;
        let cont = super::vocab::continuation(raw);
        let hit_id = match &parsed.line {
            Line::Runtime(h) if !h.is_tally() => Some(h.id),
            Line::Error { id, .. } => Some(*id),
            Line::Evidence {
                id, kernel: false, ..
            } => Some(*id),
            _ => None,
        };
        let header = matches!(parsed.line, Line::Other) && exception_header(raw);
        if header {
            self.wrapper = Some(header_text(raw));
        } else if cont == Continuation::No && hit_id.is_none() {
            self.wrapper = None;
        }
        let Some(open) = self.exception.as_mut() else {
            return false;
        };
        if header && cont == Continuation::No {
            // A new exception whose own text names no failure.
            self.exception = None;
            return false;
        }
        if parse::trim(raw).starts_with(b"Traceback (most recent call last)") {
            // A traceback printed after a logged message belongs to it
            // (Python's logging, asyncio's exception handler).
            open.chained = true;
        }
        match (cont, hit_id) {
            (Continuation::No, Some(_)) if open.chained => {
                // Python's wrapper of the cause above, or the exception of
                // a traceback logged with the message: context only.
                open.chained = false;
                let (id, line) = (open.id, open.line);
                self.lines.recognized += 1;
                self.program_lines += 1;
                let text = header_text(raw);
                if let Some(o) = self.obs.get_mut(&id)
                    && o.detail.is_none()
                {
                    o.detail = Some(format!(
                        "the innermost cause (line {line}), wrapped in {text}"
                    ));
                }
                true
            }
            (Continuation::No, _) => {
                self.exception = None;
                self.wrapper = None;
                false
            }
            (Continuation::Chained, _) => {
                open.chained = true;
                false
            }
            (Continuation::CausedBy, Some(id)) => {
                let (old, line) = (open.id, open.line);
                open.id = id;
                open.line = no;
                self.lines.recognized += 1;
                self.program_lines += 1;
                if id == old {
                    return true;
                }
                let mut wrapper_text = None;
                if let Some(o) = self.obs.get_mut(&old) {
                    o.count = o.count.saturating_sub(1);
                    if o.evidence.last().is_some_and(|e| e.line == line) {
                        wrapper_text = o.evidence.pop().map(|e| e.text);
                    }
                    if o.count == 0 {
                        self.obs.remove(&old);
                    }
                }
                let o = self.observe(id, 1, ev);
                if o.detail.is_none()
                    && let Some(w) = wrapper_text
                {
                    o.detail = Some(format!("the innermost cause, wrapped in {w}"));
                }
                self.mark(id);
                true
            }
            (Continuation::Frame, Some(_)) => {
                // Node's `code: 'ECONNREFUSED'`, a frame naming the error.
                self.lines.recognized += 1;
                self.program_lines += 1;
                true
            }
            _ => false,
        }
    }

    /// A progress record, on line `raw` (at `at` in the batch being read
    /// when the fast path found it: then its evidence is copied once per
    /// batch, by `settle`).
    fn progress(&mut self, p: Progress, raw: &[u8], at: Option<usize>, ev: &dyn Fn() -> Evidence) {
        let s = &mut self.seed;
        s.progress_lines += 1;
        s.total_ms = s.total_ms.saturating_add(p.ms);
        if s.first.is_none() {
            s.first = Some(p);
            s.first_evidence = Some(ev());
            // A log that starts at the beginning: its first line covers the
            // first connections.
            if p.conns <= SEED_STEP && p.fd != 0 {
                s.rate_conns = s.rate_conns.saturating_add(p.conns);
                s.rate_ms = s.rate_ms.saturating_add(p.ms);
            }
        }
        if p.fd == 0 {
            s.zero_fd_lines += 1;
            if s.zero_fd_evidence.is_none() {
                s.zero_fd_evidence = Some(ev());
            }
        }
        if let Some(last) = s.last {
            if p.conns == last.conns && p.fd == 0 {
                s.cap_repeats += 1;
                if s.cap_value != Some(p.conns) {
                    s.cap_value = Some(p.conns);
                    s.cap_evidence = Some(ev());
                }
            } else if p.conns > last.conns {
                let d = p.conns - last.conns;
                let step = s.step.map_or(d, |st| st.min(d));
                s.step = Some(step);
                if d.saturating_mul(2) <= step.saturating_mul(3) {
                    s.rate_conns = s.rate_conns.saturating_add(d);
                    s.rate_ms = s.rate_ms.saturating_add(p.ms);
                    // Whole extra seconds over the recent floor: connects
                    // that waited for a SYN retransmission (1 s, then 3 s).
                    if s.window_seen >= 3
                        && let Some(&(_, floor)) = s.window.front()
                    {
                        let excess = p.ms.saturating_sub(floor);
                        let k = excess.saturating_add(300) / 1000;
                        if k >= 1 && excess.abs_diff(k.saturating_mul(1000)) <= 300 {
                            s.retrans_intervals += 1;
                            s.retrans_waits = s.retrans_waits.saturating_add(k);
                            if s.retrans_evidence.is_none() {
                                s.retrans_evidence = Some(ev());
                                s.retrans_first_conns = p.conns;
                            }
                        }
                    }
                    while s.window.back().is_some_and(|&(_, v)| v >= p.ms) {
                        s.window.pop_back();
                    }
                    s.window.push_back((s.window_seen, p.ms));
                    s.window_seen += 1;
                    while s
                        .window
                        .front()
                        .is_some_and(|&(i, _)| i + 32 < s.window_seen)
                    {
                        s.window.pop_front();
                    }
                } else {
                    s.gaps += 1;
                    s.missing_lines = s.missing_lines.saturating_add((d - 1) / step.max(1));
                    if s.gap_evidence.is_none() {
                        s.gap_evidence = Some((ev(), last.conns, p.conns));
                    }
                }
            } else if p.conns < last.conns {
                s.restarts += 1;
                s.window.clear();
                s.window_seen = 0;
            }
        }
        if p.fd != 0 {
            let off = (p.fd as i128 - p.conns as i128)
                .clamp(i64::MIN as i128 / 4, i64::MAX as i128 / 4) as i64;
            match s.last_offset {
                None => s.first_offset = Some(off),
                Some(prev) if off < prev => {
                    if s.first_drop.is_none() {
                        s.first_drop = Some(ev());
                    }
                    s.drop_lazy.set_in_batch(p.line, raw, at);
                }
                _ => {}
            }
            s.last_offset = Some(off);
        }
        if s.max.is_none_or(|m| p.conns > m.conns) {
            s.max = Some(p);
            s.max_lazy.set_in_batch(p.line, raw, at);
        }
        s.last = Some(p);
        self.x += p.ms as f64 * 0.001;
        let x = self.x;
        self.point(x, p.conns as f64);
    }

    fn json_line(&mut self, no: u64, raw: &[u8], ev: &dyn Fn() -> Evidence) {
        let record = std::str::from_utf8(raw).ok().and_then(Record::parse);
        let Some(r) = record else {
            let lower = raw.to_ascii_lowercase();
            if let Some(sample) = super::counts::sample(&lower)
                && parse::find(raw, b"\"event\"").is_none()
            {
                self.count(no, raw, &sample, ev);
                return;
            }
            if parse::find(raw, b"\"event\"").is_some() {
                self.lines.corrupted += 1;
                self.corruption.bad_json += 1;
                if self.corruption.evidence.len() < MAX_EVIDENCE {
                    self.corruption.evidence.push(ev());
                }
            } else {
                self.lines.skipped += 1;
            }
            return;
        };
        self.lines.recognized += 1;
        self.program_lines += 1;
        let j = &mut self.json;
        j.records += 1;
        if j.role.is_none() || r.role != Role::Lab {
            j.role = Some(r.role);
        }
        let t0 = *j.first_ts.get_or_insert(r.ts);
        j.last_ts = Some(r.ts);
        self.x = (r.ts - t0).max(0.0);
        match r.event {
            Event::Interval {
                counters, target, ..
            } => {
                match r.worker {
                    Some(w) => {
                        j.workers.insert(w as u64, counters.connections);
                    }
                    None => j.parent = Some(counters.connections),
                }
                j.current = match j.parent {
                    Some(p) => p,
                    None => j.workers.values().fold(0u64, |a, b| a.saturating_add(*b)),
                };
                if j.current == 0 && j.max == 0 {
                    j.rise_start = r.ts - t0;
                }
                if j.current > j.max || !j.max_lazy.set {
                    j.max = j.current;
                    j.max_ts = r.ts - t0;
                    j.max_lazy.set(no, raw);
                }
                if target.is_some() {
                    j.target = target;
                }
                let (x, y) = (self.x, j.current as f64);
                self.point(x, y);
            }
            Event::Failure {
                failure,
                call,
                errno,
                count,
                detail,
            } => {
                j.failure_records += 1;
                if self.timed.len() < MAX_TIMED {
                    self.timed.push(Timed {
                        ts: r.ts,
                        id: failure,
                        count,
                        detail: detail.clone(),
                        evidence: ev(),
                    });
                }
                if call == "accept" {
                    self.accept_errors += 1;
                }
                if call == "connect" {
                    self.connect_errors += 1;
                }
                let o = self.obs.entry(failure).or_default();
                o.add(count, ev);
                if o.first_ts.is_none() {
                    o.first_ts = Some(r.ts);
                }
                if o.call.is_empty() {
                    o.call = static_call(&call);
                }
                o.errno = o.errno.or(errno);
                if o.detail.is_none() && !detail.is_empty() {
                    o.detail = Some(detail);
                }
                self.mark(failure);
            }
            // Expected by the writer, not seen: no failure to count.
            Event::Warning { .. } => {}
            // Elastic serve adding a worker: growth, not an exit.
            Event::Worker { action, .. } if action == "started" => {}
            // A worker that finished its share and exited with status 0 is
            // the normal end of a run, not an event worth a note.
            Event::Worker { action, detail, .. }
                if action == "exited" && detail.ends_with("(exit status: 0)") => {}
            Event::Worker { .. } => {
                j.worker_events += 1;
                if j.worker_evidence.is_none() {
                    j.worker_evidence = Some(ev());
                }
            }
            Event::Summary {
                counters,
                elapsed_s,
                details,
            } => {
                // flood's details (serve's have neither field: both stay 0).
                if let Some(d) = crate::events::typed::<FloodSummary>(&details) {
                    j.summary_connect_s = j.summary_connect_s.max(d.shard.connect_s);
                    j.summary_verified = j.summary_verified.saturating_add(d.verified);
                    if d.shard
                        .stops
                        .iter()
                        .any(|s| s == crate::flood::engine::RAMP_STOP_TEXT)
                    {
                        j.ramp_stopped = true;
                    }
                    if let Some(rc) = d.shard.reconnect
                        && j.reconnect.as_ref().is_none_or(|(r, _)| rc.lost > r.lost)
                    {
                        j.reconnect = Some((rc, ev()));
                    }
                }
                let sc = j.summary_connections.get_or_insert(0);
                *sc = sc.saturating_add(counters.connections);
                j.summary_opened = j.summary_opened.saturating_add(counters.opened_total);
                j.summary_elapsed = j.summary_elapsed.max(elapsed_s);
                for (id, n) in counters.failures {
                    let e = j.summary_failures.entry(id).or_default();
                    *e = e.saturating_add(n);
                }
                if counters.connections > j.max || !j.max_lazy.set {
                    j.max = counters.connections;
                    j.max_ts = r.ts - t0;
                    j.max_lazy.set(no, raw);
                }
                j.summary_evidence = Some(ev());
            }
            Event::Start { settings } => {
                // flood's own start (typed); another writer's may say "target".
                let start = crate::events::typed::<FloodStart>(&settings);
                if let Some(p) = start.as_ref().map(|s| &s.protocol)
                    && !p.name.is_empty()
                {
                    j.protocol = Some(p.clone());
                }
                let flood = start.map(|s| s.connections).filter(|&n| n > 0);
                if let Some(t) = flood.or_else(|| settings.get("target").and_then(|v| v.as_u64())) {
                    j.target = Some(t);
                }
            }
        }
    }

    /// Close what is still open at the end of the input.
    pub fn finish(&mut self, unterminated_last: bool) {
        self.seed.open_recv = None;
        self.seed.max_evidence = self.seed.max_lazy.get(&self.file);
        self.seed.last_drop = self.seed.drop_lazy.get(&self.file);
        self.json.max_evidence = self.json.max_lazy.get(&self.file);
        if let Some((form, _, _)) = self.free.pick() {
            let i = super::counts::Form::ALL
                .iter()
                .position(|f| *f == form)
                .unwrap_or(0);
            self.free_max_evidence = self.free_lazy.as_ref().and_then(|l| l[i].get(&self.file));
        }
        if unterminated_last {
            self.corruption.unterminated_last = true;
        }
        // Failures only the summary counted (no failure lines).
        if self.json.failure_records == 0
            && let Some(ev) = self.json.summary_evidence.clone()
        {
            for (id, n) in self.json.summary_failures.clone() {
                let o = self.obs.entry(id).or_default();
                o.add(n, || ev.clone());
            }
        }
        if self.is_seed_format() && self.corruption.non_ascii > 0 {
            self.lines.corrupted += self.corruption.non_ascii;
            if let Some(e) = self.corruption.non_ascii_evidence.clone()
                && self.corruption.evidence.len() < MAX_EVIDENCE
            {
                self.corruption.evidence.push(e);
                self.corruption.evidence.sort_by_key(|e| e.line);
            }
        }
        if let Some(p) = self.last_point
            && self.points.last() != Some(&p)
        {
            self.points.push(p);
        }
    }

    /// Highest connection count the source printed.
    pub fn max_connections(&self) -> Option<u64> {
        if self.json.records > 0 && self.json.max_lazy.set {
            return Some(self.json.max);
        }
        self.seed
            .max
            .map(|p| p.conns)
            .or_else(|| self.free.pick().map(|(_, s, _)| s.max))
    }

    /// The line that shows the highest count (seed or free-form).
    pub fn max_evidence(&self) -> Option<&Evidence> {
        if self.seed.max.is_some() {
            return self.seed.max_evidence.as_ref();
        }
        self.free_max_evidence.as_ref()
    }

    /// Last connection count the source printed.
    pub fn last_connections(&self) -> Option<u64> {
        if self.json.records > 0 && self.json.max_lazy.set {
            return Some(self.json.summary_connections.unwrap_or(self.json.current));
        }
        self.seed
            .last
            .map(|p| p.conns)
            .or_else(|| self.free.pick().map(|(_, s, _)| s.last))
    }

    /// Connections per second while connecting: from `time_used` over
    /// regular intervals; for c1m's JSON logs the summary's own connect
    /// phase (verified / connect_s); else the span over which the count
    /// rose (last record at 0 to the first at the peak). Never over the
    /// whole log: a hold or a teardown is not connecting.
    pub fn rate(&self) -> Option<f64> {
        if self.seed.rate_ms > 0 && self.seed.rate_conns > 0 {
            return Some(self.seed.rate_conns as f64 * 1000.0 / self.seed.rate_ms as f64);
        }
        let j = &self.json;
        if j.summary_connect_s > 0.0 && j.summary_verified > 0 {
            return Some(j.summary_verified as f64 / j.summary_connect_s);
        }
        let rise = j.max_ts - j.rise_start;
        if rise > 0.0 && j.max > 0 {
            return Some(j.max as f64 / rise);
        }
        self.stamped_rate().map(|(r, _, _)| r)
    }

    /// Connections per second of a free-form count from its lines'
    /// timestamps: (rate, connections, seconds).
    pub fn stamped_rate(&self) -> Option<(f64, u64, f64)> {
        if self.seed.max.is_some() || self.json.records > 0 {
            return None;
        }
        self.free.pick()?.1.stamped_rate()
    }

    /// Seconds the source covers (summed `time_used`, or timestamps).
    pub fn elapsed(&self) -> Option<f64> {
        if self.seed.total_ms > 0 {
            return Some(self.seed.total_ms as f64 / 1000.0);
        }
        let st = self.stamps();
        match (self.json.first_ts, self.json.last_ts, st.first) {
            (Some(a), Some(b), _) if b > a => Some(b - a),
            (None, _, Some((a, _))) => st.last.map(|b| b - a).filter(|&d| d > 0.0),
            _ => None,
        }
    }
}

/// An exception being printed over several lines.
#[derive(Debug, Clone)]
struct OpenException {
    /// The id it counts as now (the innermost cause so far).
    id: FailureId,
    /// The line of that event.
    line: u64,
    /// The next exception line belongs to this event: Python said it wraps
    /// this one ("The above exception was the direct cause..."), or a
    /// traceback followed the logged message.
    chained: bool,
}

/// `Exception in thread "main" x.y.SomeException: ...` or a bare
/// `x.y.SomeException: ...` / `SomeError: ...` at the start of a line.
fn exception_header(raw: &[u8]) -> bool {
    let t = parse::trim(raw);
    if t.starts_with(b"Exception in thread ") {
        return true;
    }
    let word = t
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'$')
        .count();
    let name = &t[..word];
    (name.ends_with(b"Exception") || name.ends_with(b"Error"))
        && matches!(t.get(word), None | Some(b':'))
        && word > 5
}

/// The exception named by a header line, for context.
fn header_text(raw: &[u8]) -> String {
    let t = parse::trim(raw);
    let t = t
        .strip_prefix(b"Exception in thread ")
        .map(|r| match memchr::memchr(b' ', r) {
            Some(sp) => &r[sp + 1..],
            None => r,
        })
        .unwrap_or(t);
    let mut s = String::from_utf8_lossy(&t[..t.len().min(100)]).into_owned();
    if t.len() > 100 {
        s.push('…');
    }
    s
}

fn kind_from_title(title: &str) -> Option<Kind> {
    let t = title.to_lowercase();
    if t.contains("客户端") || t.contains("client") {
        Some(Kind::Client)
    } else if t.contains("服务器") || t.contains("服务端") || t.contains("server") {
        Some(Kind::Server)
    } else {
        None
    }
}

fn static_call(call: &str) -> &'static str {
    match call {
        "connect" => "connect",
        "accept" | "accept4" => "accept",
        "socket" => "socket",
        "bind" => "bind",
        "send" => "send",
        "recv" => "recv",
        "epoll_ctl" => "epoll_ctl",
        "" => "",
        _ => "other",
    }
}

fn describe(id: FailureId, d: &Detail) -> Option<String> {
    match id {
        FailureId::AcceptQueueOverflow => d.port.map(|p| format!("SYNs dropped on port {p}")),
        FailureId::OutOfMemory => match (d.pid, d.anon_rss_kb) {
            (Some(pid), Some(kb)) => Some(format!(
                "pid {pid} killed with {} MiB of anon-rss ({})",
                kb / 1024,
                if kb >= 1024 * 1024 {
                    "large: application buffers"
                } else {
                    "small: the memory was kernel socket buffers"
                }
            )),
            (Some(pid), None) => Some(format!("pid {pid} killed")),
            _ => None,
        },
        _ => None,
    }
}

/// Per-file accounting.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileStat {
    pub path: String,
    pub lines: u64,
    pub bytes: u64,
    /// Sources the file was split into.
    pub sources: usize,
    /// Lines outside any source (sections with no records).
    pub lines_without_records: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The first non-blank lines of a file in which no line was
    /// recognised, so the reader sees what it holds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<SampleLine>,
    /// The processes whose lines the file mixes (each read as a source of
    /// its own), when there are two or more, and whether their lines are
    /// interleaved (rather than one process's after the other's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interleaved: bool,
}

/// Lines of several processes in one file, told apart by the process each
/// line names (`timestamps::process`): per section (keyed by the index of
/// its source), the processes seen and how often the writer changed.
#[derive(Default)]
struct Procs {
    scopes: HashMap<usize, Scope>,
}

#[derive(Default)]
struct Scope {
    /// (key, label, source index), in order of appearance; the first
    /// process stays in the section's own source.
    procs: Vec<(Vec<u8>, String, usize)>,
    last: Option<usize>,
    switches: u64,
    /// Lines of processes beyond [`MAX_PROCS`], read with the first one.
    overflow: u64,
}

/// Processes told apart per section; the lines of any more stay with the
/// first (a file naming a new pid on every line cannot grow memory).
pub const MAX_PROCS: usize = 16;

impl Procs {
    /// The source of a line of process `p` in the section whose source is
    /// `base`, created at its first line.
    fn route(
        &mut self,
        base: usize,
        p: super::timestamps::Process<'_>,
        sections: &mut Vec<Source>,
        name: &str,
    ) -> usize {
        let scope = self.scopes.entry(base).or_default();
        let key = p.key();
        let i = match scope.procs.iter().position(|(k, _, _)| k == key) {
            Some(i) => i,
            None if scope.procs.len() >= MAX_PROCS => {
                scope.overflow += 1;
                0
            }
            None => {
                let label = p.label();
                let idx = if scope.procs.is_empty() {
                    base
                } else {
                    let title = titled(sections[base].section.as_deref(), &label);
                    sections.push(Source::new(name, Some(title)));
                    sections.len() - 1
                };
                scope.procs.push((key.to_vec(), label, idx));
                scope.procs.len() - 1
            }
        };
        if scope.last.is_some_and(|l| l != i) {
            scope.switches += 1;
        }
        scope.last = Some(i);
        scope.procs[i].2
    }

    /// Name the sources of sections that mixed several processes after
    /// them, tell each so, and record the processes in the file's stat.
    fn finish(self, sections: &mut [Source], stat: &mut FileStat) {
        let mut scopes: Vec<(usize, Scope)> = self.scopes.into_iter().collect();
        scopes.sort_by_key(|(base, _)| *base);
        for (base, scope) in scopes {
            if scope.procs.len() < 2 {
                continue;
            }
            // Back to a process seen before: their lines alternate.
            let interleaved = scope.switches >= scope.procs.len() as u64;
            let labels: Vec<String> = scope.procs.iter().map(|(_, l, _)| l.clone()).collect();
            let first = titled(sections[base].section.as_deref(), &labels[0]);
            sections[base].kind_hint = kind_from_title(&first).or(sections[base].kind_hint);
            sections[base].section = Some(first);
            let how = if interleaved {
                "interleaves the lines of"
            } else {
                "holds, one after the other, the lines of"
            };
            let mut note = format!(
                "the file {how} {} processes ({}): each is read as a source of its own",
                labels.len(),
                labels.join(", ")
            );
            if scope.overflow > 0 {
                note.push_str(&format!(
                    "; {} line{} of further processes are read with {}",
                    scope.overflow,
                    if scope.overflow == 1 { "" } else { "s" },
                    labels[0]
                ));
            }
            for (_, _, idx) in &scope.procs {
                let time = sections[*idx].time.get_or_insert_with(Default::default);
                time.process_note = Some(note.clone());
            }
            stat.processes.extend(labels);
            stat.interleaved |= interleaved;
        }
    }
}

/// The name of a process's source: the section's title, then the process.
fn titled(section: Option<&str>, label: &str) -> String {
    match section {
        Some(h) => format!("{h} / {label}"),
        None => label.to_string(),
    }
}

/// Read one input to its end, splitting it into sources. An I/O error
/// midway keeps what was read and is returned in the stat.
const BATCH_BYTES: usize = 1 << 20;

/// What the reading thread found out about a line.
#[derive(Clone, Copy)]
enum Tag {
    /// A fast record, parsed.
    Fast(parse::Fast),
    /// Not a fast record (or cut): the general classifier.
    Slow,
    /// Not looked at: try the fast records first.
    Unknown,
}

/// Read one input to its end, splitting it into sources. Two stages on two
/// threads: one reads blocks, splits lines and parses the frequent records
/// (`parse::fast_record_prefix`); this one keeps the state. A bounded channel keeps
/// memory flat (a few batches of 1 MiB in flight). An I/O error midway
/// keeps what was read and is returned in the stat.
pub fn read_input(name: &str, reader: impl Read + Send) -> (Vec<Source>, FileStat) {
    read_input_with(name, reader, true)
}

/// [`read_input`], with the fast path (`parse::fast_record`) or without it
/// (every line through the general classifier: what the tests compare the
/// fast path with). Longer than most functions: both stages and the
/// per-line routing (sections, processes, fast or general path) share the
/// state declared here, and the per-line path stays in one closure.
fn read_input_with(
    name: &str,
    reader: impl Read + Send,
    fast_path: bool,
) -> (Vec<Source>, FileStat) {
    let mut scratch = Scratch::default();
    let mut sections: Vec<Source> = vec![Source::new(name, None)];
    let mut current = 0usize;
    // Section title -> index in `sections`.
    let mut by_title: HashMap<String, usize> = HashMap::new();
    let mut stat = FileStat {
        path: name.to_string(),
        ..Default::default()
    };
    let mut no: u64 = 0;
    let mut last_unterminated = false;
    // The source of the current section, before any process split.
    let mut base = 0usize;
    let mut procs = Procs::default();
    // The sources the fast path fed from the batch being read.
    let mut touched: Vec<usize> = Vec::new();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch<Tag>>(4);
    // Emptied batches go back to the reader, so the buffers are reused
    // instead of faulted in afresh.
    let (back_tx, back_rx) = std::sync::mpsc::sync_channel::<Batch<Tag>>(8);
    let result = std::thread::scope(|scope| {
        let reading = scope.spawn(move || {
            read_batches_probing(
                reader,
                BATCH_BYTES,
                // Progress and error records are parsed here, where they
                // also spare the newline search; the other fast records
                // (chatter, RecvBuffer prints) on the analyzing thread,
                // which balances the two.
                |rest| {
                    if !fast_path {
                        return None;
                    }
                    parse::fast_record_prefix(rest).map(|(f, len)| (len, Tag::Fast(f)))
                },
                |line, meta| {
                    let first = line.iter().find(|&&b| b != b' ' && b != b'\t');
                    match (meta.cut_bytes, first) {
                        (0, Some(b'c')) if fast_path => match parse::fast_record(line) {
                            Some(f) => Tag::Fast(f),
                            None => Tag::Slow,
                        },
                        (0, _) if fast_path => Tag::Unknown,
                        _ => Tag::Slow,
                    }
                },
                || {
                    back_rx
                        .try_recv()
                        .unwrap_or_else(|_| Batch::with_capacity(BATCH_BYTES))
                },
                |batch| tx.send(batch).is_ok(),
            )
        });
        for mut batch in rx {
            // Per batch, not per line: only an input's last line can be
            // unterminated, and it is the last line of its batch.
            stat.bytes = stat.bytes.saturating_add(batch.bytes());
            last_unterminated = batch
                .metas
                .last()
                .is_some_and(|(i, m)| m.unterminated && *i + 1 == batch.spans.len());
            batch.for_each_at(|line, at, meta, fast| {
                no += 1;
                if stat.samples.len() < SAMPLES && !parse::trim(line).is_empty() {
                    stat.samples.push(SampleLine {
                        line: no,
                        text: printable(line, SAMPLE_CHARS),
                    });
                }
                let fast = match *fast {
                    Tag::Fast(f) => Some(f),
                    Tag::Unknown => parse::fast_record(line),
                    Tag::Slow => None,
                };
                if let Some(fast) = fast
                    && sections[current].takes_fast(fast)
                {
                    if touched.last() != Some(&current) {
                        touched.push(current);
                    }
                    sections[current].feed_fast(name, no, line, at, fast);
                    return;
                }
                let parsed = parse::parse_line(line, &mut scratch);
                let stamp = super::timestamps::parse(line);
                if let Line::Header { level: 2, title } = parsed.line {
                    let title = String::from_utf8_lossy(title).into_owned();
                    // A map, not a scan of the sections: a file of 20,000
                    // headers stays linear.
                    current = match by_title.entry(title) {
                        Entry::Occupied(e) => *e.get(),
                        Entry::Vacant(e) => {
                            sections.push(Source::new(name, Some(e.key().clone())));
                            *e.insert(sections.len() - 1)
                        }
                    };
                    base = current;
                } else if let Some(p) = super::timestamps::process(line, stamp.as_ref()) {
                    current = procs.route(base, p, &mut sections, name);
                }
                if let Some(st) = stamp {
                    sections[current].stamp(name, no, line, st.secs);
                }
                sections[current].feed(name, no, line, &parsed, meta.cut_bytes > 0);
            });
            // The evidence lines the batch's fast records left in it are
            // copied out before it goes back to be read into.
            for i in touched.drain(..) {
                sections[i].settle(batch.data());
            }
            batch.clear();
            let _ = back_tx.try_send(batch);
        }
        reading
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the reading thread panicked")))
    });
    if let Err(e) = result {
        stat.error = Some(format!("read error after line {no}: {e}"));
    }
    if last_unterminated {
        stat.bytes = stat.bytes.saturating_sub(1);
    }
    stat.lines = no;
    procs.finish(&mut sections, &mut stat);
    let reactor = sections.iter().any(|s| s.mentions_reactor);
    let mut out = Vec::new();
    for (i, mut s) in sections.into_iter().enumerate() {
        s.finish(last_unterminated && i == current);
        s.mentions_reactor |= reactor;
        if s.has_records() {
            out.push(s);
        } else {
            stat.lines_without_records += s.lines.read;
        }
    }
    stat.sources = out.len();
    if !out.is_empty() {
        // Samples are for files in which nothing was recognised.
        stat.samples.clear();
    }
    (out, stat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_trimmed_cut_and_shows_control_bytes() {
        let e = Evidence::new("f.log", 7, b"\t connections: 1\x01\x02, x \xff");
        assert_eq!(e.line, 7);
        assert_eq!(e.text, "connections: 1··, x \u{fffd}");
        let long = vec![b'a'; 500];
        let e = Evidence::new("f.log", 1, &long);
        assert_eq!(e.text.chars().count(), EVIDENCE_CHARS + 1);
        assert!(e.text.ends_with('…'));
    }

    #[test]
    fn a_worker_that_exits_with_status_0_is_no_event_and_a_killed_one_is() {
        let lines = concat!(
            r#"{"ts":1.0,"role":"flood","pid":7,"event":"worker","index":2,"action":"exited","detail":"exited (exit status: 0)"}"#,
            "\n",
            r#"{"ts":2.0,"role":"serve","pid":7,"event":"worker","index":0,"action":"restarted","detail":"killed by SIGKILL; restarted as pid 9"}"#,
            "\n",
        );
        let (sources, _) = read_input("c.log", std::io::Cursor::new(lines.as_bytes()));
        let events: u64 = sources.iter().map(|s| s.json.worker_events).sum();
        assert_eq!(events, 1);
    }

    #[test]
    fn repeated_headers_continue_a_source_and_prose_sections_are_dropped() {
        let text = "## 客户端1\nconnections: 999, sockfd:1002, time_used:1\n\
                    ## notes\nsome prose\n\
                    ## 客户端1\nconnections: 1999, sockfd:2002, time_used:1\n";
        let (sources, stat) = read_input("t.md", std::io::Cursor::new(text.as_bytes()));
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].section.as_deref(), Some("客户端1"));
        assert_eq!(sources[0].seed.progress_lines, 2);
        assert_eq!(sources[0].kind(), Kind::Client);
        assert_eq!(stat.lines, 6);
        assert_eq!(stat.lines_without_records, 2);
    }

    fn read(text: &str) -> (Vec<Source>, FileStat) {
        read_input("j.log", std::io::Cursor::new(text.as_bytes()))
    }

    #[test]
    fn interleaved_processes_become_sources_of_their_own() {
        let (sources, stat) = read(
            "Dec 02 22:43:05 h client[11]: connections: 100\n\
             Dec 02 22:43:05 h client[12]: connections: 50\n\
             Dec 02 22:43:06 h client[11]: connections: 200\n\
             Dec 02 22:43:06 h client[12]: connect: Connection refused\n\
             Dec 02 22:43:07 h client[12]: connections: 90\n",
        );
        let names: Vec<String> = sources.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["j.log [client[11]]", "j.log [client[12]]"]);
        let max: Vec<Option<u64>> = sources.iter().map(|s| s.max_connections()).collect();
        assert_eq!(max, [Some(200), Some(90)]);
        assert!(sources[1].obs.contains_key(&FailureId::ConnectionRefused));
        assert!(!sources[0].obs.contains_key(&FailureId::ConnectionRefused));
        assert_eq!(stat.processes, ["client[11]", "client[12]"]);
        assert!(stat.interleaved);
        let note = sources[0].stamps().process_note.as_deref().unwrap();
        assert!(
            note.contains("interleaves the lines of 2 processes"),
            "{note}"
        );
    }

    #[test]
    fn one_process_after_another_is_not_interleaved_and_one_alone_keeps_the_file() {
        let (sources, stat) = read(
            "ts=1 pid=7 connections: 10\nts=2 pid=7 connections: 20\n\
             ts=3 pid=9 connections: 5\n    at a stack frame of pid 9\n",
        );
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[1].section.as_deref(), Some("pid 9"));
        assert_eq!(sources[1].lines.read, 2, "a line naming no process stays");
        assert!(!stat.interleaved);
        let (sources, stat) = read(
            "Dec 02 22:43:05 h kernel: Out of memory: Killed process 7 (c1m)\n\
             Dec 02 22:43:06 h kernel: oom-kill:constraint=CONSTRAINT_NONE,pid=7\n",
        );
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].section, None);
        assert!(stat.processes.is_empty());
    }

    #[test]
    fn a_new_pid_on_every_line_cannot_grow_the_sources() {
        let text: String = (0..1000)
            .map(|i| format!("pid={i} connections: {i}\n"))
            .collect();
        let (sources, stat) = read(&text);
        assert_eq!(sources.len(), MAX_PROCS);
        assert_eq!(stat.processes.len(), MAX_PROCS);
        let note = sources[0].stamps().process_note.as_deref().unwrap();
        assert!(note.contains("984 lines of further processes"), "{note}");
    }

    #[test]
    fn timestamps_give_the_rate_and_when_each_failure_began() {
        let (sources, _) = read(
            "2026-12-02 22:43:05,000 INFO connections: 100\n\
             2026-12-02 22:43:05,500 INFO connections: 200\n\
             2026-12-02 22:43:06,000 INFO connections: 300\n\
             2026-12-02 22:43:07,250 ERROR connect: Connection refused\n\
             2026-12-02 22:43:09,000 INFO connections: 300\n",
        );
        let s = &sources[0];
        assert_eq!(s.stamped_rate(), Some((200.0, 200, 1.0)));
        assert_eq!(s.rate(), Some(200.0));
        assert_eq!(s.elapsed(), Some(4.0));
        let t = s.obs[&FailureId::ConnectionRefused].first_ts.unwrap();
        assert_eq!(super::super::timestamps::clock(t), "22:43:07.250");
        assert_eq!(s.stamps().back, 0);
    }

    #[test]
    fn stamps_that_go_back_say_two_writers_share_the_file() {
        let (sources, _) = read(
            "2026/12/02 10:00:05 connections: 10\n2026/12/02 10:00:01 connections: 3\n\
             2026/12/02 10:00:06 connections: 20\n",
        );
        assert_eq!(sources[0].stamps().back, 1);
        assert_eq!(sources[0].stamps().back_max, 4.0);
    }

    #[test]
    fn the_fast_path_reads_a_seed_log_as_the_general_classifier_does() {
        // benches/gen_seed_log.py's mixture (progress, EAGAIN errors, a
        // RecvBuffer print with its spill-over ending in garbage bytes),
        // plus chatter that holds free-form counts, a runtime exception
        // around seed lines, and a timestamped line naming a process.
        let mut log = Vec::new();
        let (mut conns, mut off) = (999u64, 3i64);
        for block in 0..400u64 {
            let fd = (conns as i64 + off) as u64;
            log.extend(format!("\tconnections: {conns}, sockfd:{fd}, time_used:1240\n").bytes());
            if block % 2 == 1 {
                log.extend(format!("\t Error clientfd:{}, errno:11\n", fd - 1000).bytes());
                off -= 1;
            }
            if block % 10 == 5 {
                log.extend(
                    format!("\t RecvBuffer:Hello Server: client --> {}\n", conns - 1).bytes(),
                );
                for k in 4..=10 {
                    log.extend(format!("\tdata from {k}\n").bytes());
                }
                log.extend_from_slice(b"\tdata from 1\xf3\x87\xb9\x9e\n");
            }
            if block == 100 {
                log.extend_from_slice(b"opened 1013 connections\nsent 5 of 10\nactive 1003\n");
                log.extend_from_slice(b"ts=1 pid=7 note\nbroken \xff\xfe bytes\n");
            }
            if block == 200 {
                log.extend_from_slice(
                    b"Exception in thread \"main\" java.lang.RuntimeException: x\n",
                );
                log.extend_from_slice(b"\t RecvBuffer:Hello\n\tdata from \xf3\x87\xb9\x9e\n");
                log.extend_from_slice(
                    b"Caused by: java.net.ConnectException: Connection refused\n",
                );
                log.extend_from_slice(b"\tat java.base/sun.nio.ch.Net.connect0(Native Method)\n");
            }
            conns += 1000;
        }
        let read = |fast| read_input_with("s.log", std::io::Cursor::new(&log), fast);
        let (fast, fast_stat) = read(true);
        let (general, general_stat) = read(false);
        assert_eq!(format!("{fast:#?}"), format!("{general:#?}"));
        assert_eq!(format!("{fast_stat:?}"), format!("{general_stat:?}"));
        let s = &fast[0];
        assert_eq!(s.seed.progress_lines, 400);
        assert_eq!((s.seed.recv_buffers, s.seed.recv_garbage), (41, 41));
        assert!(s.corruption.non_ascii > 40);
    }

    #[test]
    fn a_file_with_no_record_keeps_sample_lines() {
        let long = "x".repeat(300);
        let text = format!("\nshopping list\n\x01eggs\n{long}\nmilk\n");
        let (sources, stat) = read(&text);
        assert!(sources.is_empty());
        let got: Vec<(u64, usize)> = stat
            .samples
            .iter()
            .map(|s| (s.line, s.text.chars().count()))
            .collect();
        assert_eq!(got, [(2, 13), (3, 5), (4, SAMPLE_CHARS + 1)]);
        assert_eq!(stat.samples[1].text, "·eggs");
        assert!(stat.samples[2].text.ends_with('…'));
        let (_, stat) = read("notes\nsocket: Too many open files\n");
        assert!(stat.samples.is_empty());
    }
}
