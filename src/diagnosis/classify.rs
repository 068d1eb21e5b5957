//! The classifier: turns what the sources saw into findings (a catalogue
//! id, the side it belongs to, how sure we are, the evidence lines, a plain
//! explanation and the fix), per-source summaries and totals.
//!
//! Direct evidence (an error line, a kernel line, a rising counter) is
//! `certain`. Inferences from numbers (the `sockfd - connections` offset, a
//! plateau at a known table size, whole-second delays in `time_used`) are
//! `likely` or `possible`. Symptoms are linked to causes: a connect timeout
//! is blamed on `conntrack_full` or `accept_queue_overflow` when a kernel
//! line, a counter or a sysctl shows it; otherwise the causes that remain
//! are listed with what to collect to settle it.
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::parse::SysctlKey;
use super::source::{Evidence, Kind, LineCounts, SEED_STEP, Source};
use crate::catalogue::{FailureId, Side};
use crate::util::thousands;

/// How sure a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Certainty {
    /// A line or counter shows it.
    Certain,
    /// The numbers point to it and nothing else explains them as well.
    Likely,
    /// It fits the evidence but is not shown by it.
    Possible,
}

impl Certainty {
    pub fn as_str(self) -> &'static str {
        match self {
            Certainty::Certain => "certain",
            Certainty::Likely => "likely",
            Certainty::Possible => "possible",
        }
    }
}

/// One explained failure.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: FailureId,
    pub title: &'static str,
    pub side: Side,
    pub certainty: Certainty,
    /// The source it was found in (or the one whose symptom it explains).
    pub source: String,
    /// How many times it was seen (lines, or counter increase).
    pub count: u64,
    pub evidence: Vec<Evidence>,
    pub explanation: String,
    pub fix: String,
    /// Causes this symptom is blamed on (ids of other findings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub caused_by: Vec<FailureId>,
    /// The symptom this finding is a cause of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause_of: Option<FailureId>,
    /// What to collect next to settle an open question.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub collect: Vec<String>,
    #[serde(skip)]
    linked_to: Option<usize>,
}

impl Finding {
    fn new(id: FailureId, side: Side, certainty: Certainty, source: &str) -> Finding {
        let info = id.info();
        Finding {
            id,
            title: info.title,
            side,
            certainty,
            source: source.to_string(),
            count: 0,
            evidence: Vec::new(),
            explanation: info.explanation.to_string(),
            fix: info.fix.to_string(),
            caused_by: Vec::new(),
            cause_of: None,
            collect: Vec::new(),
            linked_to: None,
        }
    }

    fn detail(mut self, text: String) -> Finding {
        self.explanation = format!("{}. {}.", capitalize(&text), capitalize(&self.explanation));
        self
    }
}

/// What one source amounts to.
#[derive(Debug, Clone, Serialize)]
pub struct SourceSummary {
    pub name: String,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    pub connections_last: Option<u64>,
    pub connections_max: Option<u64>,
    /// Connections closed by the client itself (from the fd offset).
    pub closed_by_client: Option<u64>,
    /// `connections_max - closed_by_client`, when the offset is known.
    pub connections_live_estimate: Option<u64>,
    pub rate_per_s: Option<f64>,
    pub elapsed_s: Option<f64>,
    /// Error lines (and failure records) by failure id.
    pub errors: BTreeMap<FailureId, u64>,
    pub lines: LineCounts,
    pub notes: Vec<String>,
}

/// Sums over the sources.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub clients: usize,
    pub servers: usize,
    /// Sum of the clients' highest printed counts.
    pub client_connections_printed: u64,
    /// Printed minus what the clients closed themselves (an upper bound
    /// when some client's log shows no fd to check).
    pub client_connections_live_estimate: u64,
    pub client_closed_by_client: u64,
    /// False when some client's closes are unknown.
    pub live_estimate_exact: bool,
    pub server_connections: u64,
    /// Mean connections per second of the clients with a known rate.
    pub client_rate_mean_per_s: Option<f64>,
    pub notes: Vec<String>,
}

/// The classifier's output.
#[derive(Debug, Clone, Default)]
pub struct Classified {
    pub sources: Vec<SourceSummary>,
    pub totals: Totals,
    pub findings: Vec<Finding>,
}

fn side_for(id: FailureId, call: &str, kernel: bool, kind: Kind) -> Side {
    let side = id.info().side;
    if side != Side::Either {
        return side;
    }
    if kernel || matches!(kind, Kind::Kernel | Kind::Counters) {
        return Side::Host;
    }
    match kind {
        Kind::Client => return Side::Client,
        Kind::Server => return Side::Server,
        _ => {}
    }
    match call {
        "accept" | "listen" => Side::Server,
        "connect" | "socket" | "bind" => Side::Client,
        _ => Side::Either,
    }
}

fn near_plateau(count: u64, plateau: u64) -> bool {
    let tol = (plateau / 200).max(8);
    count.abs_diff(plateau) <= tol
}

fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

/// The `sockfd - connections` of a healthy client at its start: the most
/// common first offset of the logs that start at the beginning; 3 (stdin,
/// stdout, stderr and the epoll fd come first, sockets from fd 4) if none.
fn healthy_offset(sources: &[Source]) -> (i64, bool) {
    let mut seen: BTreeMap<i64, u32> = BTreeMap::new();
    for s in sources {
        if let (Some(first), Some(off)) = (s.seed.first, s.seed.first_offset)
            && first.conns <= SEED_STEP
            && first.fd != 0
        {
            *seen.entry(off).or_default() += 1;
        }
    }
    match seen.into_iter().max_by_key(|(_, n)| *n) {
        Some((off, _)) => (off, true),
        None => (3, false),
    }
}

struct Closed {
    before: u64,
    visible: u64,
}

fn closed_of(s: &Source, healthy: i64) -> Option<Closed> {
    let first = s.seed.first?;
    let fo = s.seed.first_offset?;
    let lo = s.seed.last_offset?;
    let before = if first.conns > SEED_STEP || first.fd == 0 {
        healthy.saturating_sub(fo).max(0) as u64
    } else {
        0
    };
    Some(Closed {
        before,
        visible: fo.saturating_sub(lo).max(0) as u64,
    })
}

/// Classify all sources together (so a client's symptom can be linked to
/// a server's kernel line or counter).
pub fn classify(sources: &[Source]) -> Classified {
    let (healthy, learned) = healthy_offset(sources);
    let mut findings: Vec<Finding> = Vec::new();
    let mut summaries = Vec::new();
    let any_reactor = sources.iter().any(|s| s.mentions_reactor);

    for s in sources {
        let name = s.name();
        let kind = s.kind();
        let closed = closed_of(s, healthy);
        let mut notes = Vec::new();

        // Direct observations.
        for (id, o) in &s.obs {
            let side = side_for(*id, o.call, o.kernel, kind);
            let mut f = Finding::new(*id, side, Certainty::Certain, &name);
            f.count = o.count;
            f.evidence = o.evidence.clone();
            let mut what = format!("{} line{}", thousands(o.count), plural(o.count));
            if !o.call.is_empty() {
                what.push_str(&format!(" from {}()", o.call));
            }
            if let Some(e) = o.errno {
                what.push_str(&format!(
                    " with {} ({})",
                    crate::util::errno_name(e),
                    crate::util::errno_text(e)
                ));
            }
            if let Some(d) = &o.detail {
                what.push_str(&format!(": {d}"));
            }
            if *id == FailureId::EagainMisuse
                && let Some(c) = &closed
                && c.visible > 0
                && let (Some(fo), Some(lo), Some(max)) =
                    (s.seed.first_offset, s.seed.last_offset, s.seed.max)
            {
                what.push_str(&format!(
                    "; each closed a healthy connection: sockfd - connections fell from {} to {} ({} descriptors freed), so about {} of the {} counted were alive",
                    signed(fo),
                    signed(lo),
                    thousands(c.visible),
                    thousands(max.conns.saturating_sub(c.visible.saturating_add(c.before))),
                    thousands(max.conns)
                ));
                if let Some(ev) = &s.seed.last_drop
                    && f.evidence.len() < 4
                {
                    f.evidence.push(ev.clone());
                }
            }
            findings.push(f.detail(what));
        }

        // Closed connections without error lines: the offset alone.
        if !s.obs.contains_key(&FailureId::EagainMisuse)
            && let Some(c) = &closed
            && c.before.saturating_add(c.visible) > 0
            && let Some(ev) = s.seed.first_evidence.clone()
        {
            let mut f = Finding::new(
                FailureId::EagainMisuse,
                Side::ClientBug,
                Certainty::Likely,
                &name,
            );
            f.count = c.before.saturating_add(c.visible);
            f.evidence.push(ev);
            let mut text = String::new();
            if c.before > 0 {
                text = format!(
                    "{} connections were already closed by the client before the visible part of its log: sockfd - connections is {} at its first line, {} on a healthy start{}",
                    thousands(c.before),
                    signed(s.seed.first_offset.unwrap_or(0)),
                    signed(healthy),
                    if learned {
                        ""
                    } else {
                        " (fds 0-2 and the epoll fd come first)"
                    }
                );
            }
            if c.visible > 0 {
                if !text.is_empty() {
                    text.push_str("; ");
                }
                text.push_str(&format!(
                    "{} more closed in the visible part (the offset fell to {})",
                    thousands(c.visible),
                    signed(s.seed.last_offset.unwrap_or(0))
                ));
            }
            text.push_str(", the mark of the seed's EAGAIN bug (` Error clientfd:N, errno:11` closes a healthy connection)");
            findings.push(f.detail(text));
        }

        // The cap.
        if let (Some(cap), Some(ev)) = (s.seed.cap_value, s.seed.zero_fd_evidence.clone()) {
            let known = FailureId::ClientCapReached.info().plateaus.contains(&cap);
            let mut f = Finding::new(
                FailureId::ClientCapReached,
                Side::Client,
                if known {
                    Certainty::Certain
                } else {
                    Certainty::Likely
                },
                &name,
            );
            f.count = s.seed.cap_repeats.saturating_add(1);
            f.evidence.push(ev);
            findings.push(f.detail(format!(
                "the count stopped at exactly {} and the line repeated {} times with sockfd:0{}",
                thousands(cap),
                thousands(s.seed.cap_repeats.saturating_add(1)),
                if known {
                    " (the seed client's hard-coded cap)"
                } else {
                    ""
                }
            )));
            notes.push(format!("stopped at its cap of {}", thousands(cap)));
        }

        // I/O on fd 0.
        if s.seed.zero_fd_lines > 0
            && !s.obs.contains_key(&FailureId::WrongFd)
            && let Some(ev) = s.seed.zero_fd_evidence.clone()
        {
            let mut f = Finding::new(
                FailureId::WrongFd,
                Side::ClientBug,
                Certainty::Likely,
                &name,
            );
            f.count = s.seed.zero_fd_lines;
            f.evidence.push(ev);
            findings.push(f.detail(format!(
                "{} progress line{} show sockfd:0: once it stops creating, the loop keeps calling send/recv on the last `sockfd`, fd 0 (stdin), which fails with ENOTSOCK",
                thousands(s.seed.zero_fd_lines),
                plural(s.seed.zero_fd_lines)
            )));
        }

        // Unterminated receive buffers.
        if s.seed.recv_garbage > 0 {
            let mut f = Finding::new(
                FailureId::UnterminatedBuffer,
                Side::ClientBug,
                Certainty::Certain,
                &name,
            );
            f.count = s.seed.recv_garbage;
            f.evidence = s.seed.recv_evidence.clone();
            findings.push(f.detail(format!(
                "{} of {} ` RecvBuffer:` prints ran into non-printable bytes",
                thousands(s.seed.recv_garbage),
                thousands(s.seed.recv_buffers)
            )));
        }

        // The log itself.
        let c = &s.corruption;
        let seed_corrupt = if s.is_seed_format() { c.non_ascii } else { 0 };
        if s.lines.corrupted > 0 || s.seed.gaps > 0 || c.unterminated_last {
            let mut parts = Vec::new();
            if c.control_or_invalid + seed_corrupt > 0 {
                parts.push(format!(
                    "{} line{} with garbage bytes",
                    thousands(c.control_or_invalid + seed_corrupt),
                    plural(c.control_or_invalid + seed_corrupt)
                ));
            }
            if c.glued > 0 {
                parts.push(format!(
                    "{} record{} glued to noise",
                    thousands(c.glued),
                    plural(c.glued)
                ));
            }
            if let Some((_, from, to)) = &s.seed.gap_evidence {
                parts.push(format!(
                    "the count jumps from {} to {} ({} progress line{} missing{})",
                    thousands(*from),
                    thousands(*to),
                    thousands(s.seed.missing_lines),
                    plural(s.seed.missing_lines),
                    if s.seed.gaps > 1 {
                        format!(", {} gaps in all", s.seed.gaps)
                    } else {
                        String::new()
                    }
                ));
            }
            if c.cut_long > 0 {
                parts.push(format!("{} line(s) over 64 KiB cut", c.cut_long));
            }
            if c.bad_json > 0 {
                parts.push(format!("{} broken JSON record(s)", c.bad_json));
            }
            if c.unterminated_last {
                parts.push("the last line is cut (no newline)".to_string());
            }
            let mut f = Finding::new(
                FailureId::LogCorrupted,
                Side::Log,
                Certainty::Certain,
                &name,
            );
            f.count = s.lines.corrupted;
            f.evidence = c.evidence.clone();
            if let Some((ev, _, _)) = &s.seed.gap_evidence
                && !f.evidence.iter().any(|e| e.line == ev.line)
            {
                f.evidence.push(ev.clone());
            }
            f.evidence.sort_by_key(|e| e.line);
            findings.push(f.detail(parts.join(", ")));
        }

        // Summary and notes.
        if let Some(first) = s.seed.first
            && first.conns > SEED_STEP
        {
            notes.push(format!(
                "the log starts at {}: earlier output is not in the file",
                thousands(first.conns)
            ));
        }
        let rate = s.rate();
        if s.seed.rate_ms > 0
            && let Some(r) = rate
        {
            notes.push(format!(
                "{:.0} connections/s ({} connections in {:.1} s of time_used, {:.1} ms each)",
                r,
                thousands(s.seed.rate_conns),
                s.seed.rate_ms as f64 / 1000.0,
                1000.0 / r
            ));
        }
        if s.seed.retrans_intervals > 0 {
            notes.push(format!(
                "{} progress interval{} took whole extra seconds: about {} connect{} waited for a SYN retransmission",
                s.seed.retrans_intervals,
                plural(s.seed.retrans_intervals),
                s.seed.retrans_waits,
                plural(s.seed.retrans_waits)
            ));
        }
        if let Some(t) = s.json.target
            && let Some(m) = s.max_connections()
            && m < t
        {
            notes.push(format!(
                "reached {} of its target {}",
                thousands(m),
                thousands(t)
            ));
        }
        if s.json.worker_events > 0 {
            notes.push(format!(
                "{} worker exit/restart record(s)",
                s.json.worker_events
            ));
        }
        let closed_total = closed.as_ref().map(|c| c.before.saturating_add(c.visible));
        let live = match (s.max_connections(), closed_total) {
            (Some(m), Some(c)) => Some(m.saturating_sub(c)),
            _ => None,
        };
        let mut errors = BTreeMap::new();
        for (id, o) in &s.obs {
            errors.insert(*id, o.count);
        }
        summaries.push(SourceSummary {
            name: name.clone(),
            file: s.file.to_string(),
            section: s.section.clone(),
            kind,
            command: s.command.clone(),
            connections_last: s.last_connections(),
            connections_max: s.max_connections(),
            closed_by_client: closed_total,
            connections_live_estimate: live,
            rate_per_s: rate,
            elapsed_s: s.elapsed(),
            errors,
            lines: s.lines,
            notes,
        });
    }

    host_findings(sources, &mut findings);
    link_causes(sources, &mut findings, any_reactor);
    let findings = order(findings);
    let totals = totals(&summaries, sources);
    Classified {
        sources: summaries,
        totals,
        findings,
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Counters, sysctls and sockstat: host-wide evidence.
fn host_findings(sources: &[Source], findings: &mut Vec<Finding>) {
    for s in sources {
        let name = s.name();
        // One finding per failure id, however many of its counters rose.
        let mut by_id: BTreeMap<FailureId, (Finding, Vec<String>)> = BTreeMap::new();
        for (counter, t) in &s.counters {
            let ids: Vec<FailureId> = FailureId::all()
                .filter(|id| id.info().counters.contains(counter))
                .collect();
            let rose = t.snapshots >= 2 && t.last > t.first;
            let single = t.snapshots == 1 && t.last > 0;
            if !rose && !single {
                continue;
            }
            for id in &ids {
                let symptom = matches!(id, FailureId::ConnectTimeout | FailureId::ConnectionReset);
                let certainty = match (rose, ids.len() == 1, symptom) {
                    (_, _, true) if !rose => continue,
                    (_, _, true) => Certainty::Possible,
                    (true, true, _) => Certainty::Certain,
                    (true, false, _) | (false, true, _) => Certainty::Likely,
                    (false, false, _) => Certainty::Possible,
                };
                let text = if rose {
                    format!(
                        "{counter} rose from {} to {} over {} snapshots",
                        thousands(t.first),
                        thousands(t.last),
                        t.snapshots
                    )
                } else {
                    format!(
                        "{counter} is {} in a single snapshot (since boot, or since the previous nstat); take two snapshots during the run to see it rise",
                        thousands(t.last)
                    )
                };
                let count = if rose { t.last - t.first } else { t.last };
                let entry = by_id.entry(*id).or_insert_with(|| {
                    let side = side_for(*id, "", true, Kind::Counters);
                    (Finding::new(*id, side, certainty, &name), Vec::new())
                });
                let f = &mut entry.0;
                f.certainty = f.certainty.min(certainty);
                f.count = f.count.max(count);
                for ev in [Some(&t.first_evidence), rose.then_some(&t.last_evidence)]
                    .into_iter()
                    .flatten()
                {
                    if f.evidence.len() < 4 && !f.evidence.contains(ev) {
                        f.evidence.push(ev.clone());
                    }
                }
                entry.1.push(text);
            }
        }
        for (_, (mut f, texts)) in by_id {
            f.evidence.sort_by_key(|e| e.line);
            findings.push(f.detail(texts.join("; ")));
        }
        let get = |k: SysctlKey| {
            s.sysctl
                .get(&k)
                .or_else(|| sources.iter().find_map(|o| o.sysctl.get(&k)))
        };
        if let (Some((count, ev)), Some((max, _))) = (
            s.sysctl.get(&SysctlKey::ConntrackCount),
            get(SysctlKey::ConntrackMax),
        ) && max[0] > 0
            && (count[0] as u128) * 100 >= (max[0] as u128) * 95
        {
            let full = count[0] >= max[0];
            let mut f = Finding::new(
                FailureId::ConntrackFull,
                Side::Host,
                if full {
                    Certainty::Certain
                } else {
                    Certainty::Likely
                },
                &name,
            );
            f.count = count[0];
            f.evidence.push(ev.clone());
            findings.push(f.detail(format!(
                "nf_conntrack_count {} of nf_conntrack_max {}",
                thousands(count[0]),
                thousands(max[0])
            )));
        }
        if let Some((v, ev)) = &s.sockstat {
            if let Some((mem, _)) = get(SysctlKey::TcpMem)
                && mem[1] > 0
                && v[3] >= mem[1]
            {
                let hard = mem[2] > 0 && v[3] >= mem[2];
                let mut f = Finding::new(
                    FailureId::TcpMemoryPressure,
                    Side::Host,
                    if hard {
                        Certainty::Certain
                    } else {
                        Certainty::Likely
                    },
                    &name,
                );
                f.count = v[3];
                f.evidence.push(ev.clone());
                findings.push(f.detail(format!(
                    "TCP sockets use {} pages, tcp_mem is {} {} {} (pressure from the second, limit at the third)",
                    thousands(v[3]),
                    mem[0],
                    mem[1],
                    mem[2]
                )));
            }
            if let Some((orph, _)) = get(SysctlKey::TcpMaxOrphans)
                && orph[0] > 0
                && (v[1] as u128) * 10 >= (orph[0] as u128) * 9
            {
                let mut f = Finding::new(
                    FailureId::OrphanSockets,
                    Side::Host,
                    if v[1] >= orph[0] {
                        Certainty::Certain
                    } else {
                        Certainty::Likely
                    },
                    &name,
                );
                f.count = v[1];
                f.evidence.push(ev.clone());
                findings.push(f.detail(format!(
                    "{} orphaned sockets, tcp_max_orphans is {}",
                    thousands(v[1]),
                    thousands(orph[0])
                )));
            }
        }
        if let Some((nr, ev)) = s.sysctl.get(&SysctlKey::FileNr) {
            let max = get(SysctlKey::FileMax).map(|m| m.0[0]).unwrap_or(nr[2]);
            if max > 0 && nr[0] >= max {
                let mut f = Finding::new(
                    FailureId::SystemFdLimit,
                    Side::Host,
                    Certainty::Certain,
                    &name,
                );
                f.count = nr[0];
                f.evidence.push(ev.clone());
                findings.push(f.detail(format!(
                    "{} file handles allocated of fs.file-max {}",
                    thousands(nr[0]),
                    thousands(max)
                )));
            }
        }
    }
}

/// Whether the inputs exclude a cause: its counter was captured and stayed
/// flat, or the conntrack table was far from full.
fn ruled_out(sources: &[Source], id: FailureId) -> Option<String> {
    for s in sources {
        match id {
            FailureId::AcceptQueueOverflow => {
                if let Some(t) = s.counters.get("ListenOverflows")
                    && ((t.snapshots >= 2 && t.last == t.first) || t.last == 0)
                {
                    return Some(format!(
                        "ListenOverflows stayed at {} ({}:{})",
                        t.last, t.last_evidence.file, t.last_evidence.line
                    ));
                }
            }
            FailureId::ConntrackFull => {
                if let (Some((count, ev)), Some((max, _))) = (
                    s.sysctl.get(&SysctlKey::ConntrackCount),
                    sources
                        .iter()
                        .find_map(|o| o.sysctl.get(&SysctlKey::ConntrackMax)),
                ) && (count[0] as u128) * 10 < (max[0] as u128) * 9
                {
                    return Some(format!(
                        "nf_conntrack_count peaked at {} of {} ({}:{})",
                        thousands(count[0]),
                        thousands(max[0]),
                        ev.file,
                        ev.line
                    ));
                }
            }
            _ => {}
        }
    }
    None
}

const CAUSES_OF_TIMEOUT: [FailureId; 2] =
    [FailureId::AcceptQueueOverflow, FailureId::ConntrackFull];

fn link_causes(sources: &[Source], findings: &mut Vec<Finding>, any_reactor: bool) {
    let symptoms: Vec<usize> = findings
        .iter()
        .enumerate()
        .filter(|(_, f)| f.id == FailureId::ConnectTimeout && f.certainty == Certainty::Certain)
        .map(|(i, _)| i)
        .collect();
    let mut plateau_used: BTreeSet<String> = BTreeSet::new();
    for &si in &symptoms {
        let source_name = findings[si].source.clone();
        let src = sources.iter().find(|s| s.name() == source_name);
        let shown: Vec<usize> = findings
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                // A server that hit its fd limit stopped accepting: the
                // handshakes wait in its queue until the client gives up.
                let server_fd_limit = f.id == FailureId::FdLimit && f.side == Side::Server;
                // A cause shown once explains every client's timeouts
                // (several client hosts, one server).
                (CAUSES_OF_TIMEOUT.contains(&f.id) || server_fd_limit)
                    && f.certainty <= Certainty::Likely
            })
            .map(|(i, _)| i)
            .collect();
        if !shown.is_empty() {
            for i in shown {
                let id = findings[i].id;
                findings[i].cause_of = Some(FailureId::ConnectTimeout);
                if !findings[si].caused_by.contains(&id) {
                    findings[si].caused_by.push(id);
                }
            }
            let blamed: Vec<&str> = findings[si]
                .caused_by
                .iter()
                .map(|id| id.as_str())
                .collect();
            findings[si].explanation = format!(
                "{} Blamed on {} (shown by the evidence of the finding{} below).",
                findings[si].explanation,
                blamed.join(" and "),
                plural(blamed.len() as u64)
            );
            continue;
        }
        // No direct evidence: list the causes that remain.
        let mut remaining = Vec::new();
        let mut excluded = Vec::new();
        for id in CAUSES_OF_TIMEOUT {
            match ruled_out(sources, id) {
                Some(why) => excluded.push(format!("{id} ruled out: {why}")),
                None => remaining.push(id),
            }
        }
        for id in remaining {
            let mut f = Finding::new(id, id.info().side, Certainty::Possible, &source_name);
            f.cause_of = Some(FailureId::ConnectTimeout);
            f.linked_to = Some(si);
            let mut why = Vec::new();
            match id {
                FailureId::AcceptQueueOverflow => {
                    if let Some(s) = src
                        && s.seed.retrans_intervals >= 3
                        && let Some(ev) = &s.seed.retrans_evidence
                    {
                        f.certainty = Certainty::Likely;
                        f.count = s.seed.retrans_waits;
                        f.evidence.push(ev.clone());
                        why.push(format!(
                            "SYNs were dropped all through the run, not only at the end: {} of {} progress intervals took whole extra seconds (about {} connects waited for a SYN retransmission, 1 s each), the first at {} connections, far below any table limit; a listen queue too short for the connect rate does that",
                            s.seed.retrans_intervals,
                            thousands(s.seed.progress_lines),
                            s.seed.retrans_waits,
                            thousands(s.seed.retrans_first_conns)
                        ));
                    } else {
                        why.push("nothing in these logs shows or excludes it".to_string());
                    }
                    if any_reactor {
                        why.push("the server ran `./reactor`, the seed's server, which calls listen(fd, 10): an accept queue of 10".to_string());
                    }
                    f.collect = vec![
                        "on the server during the run: `nstat -az TcpExtListenOverflows TcpExtListenDrops` twice (rising: accept queue overflow)".to_string(),
                        "on the server: `ss -lnt` (Recv-Q at the backlog on the listening ports)".to_string(),
                    ];
                }
                FailureId::ConntrackFull => {
                    let plateau = src.and_then(|s| {
                        let max = s.seed.max?;
                        let p = id
                            .info()
                            .plateaus
                            .iter()
                            .copied()
                            .find(|&p| near_plateau(max.conns, p))?;
                        Some((max.conns, p, s.seed.max_evidence.clone()?))
                    });
                    if let Some((count, p, ev)) = plateau {
                        plateau_used.insert(source_name.clone());
                        f.count = 1;
                        f.evidence.push(ev);
                        why.push(format!(
                            "the count stopped at {}, {} {} {}, a default nf_conntrack_max: the table of this client's host (or the server's) may have filled",
                            thousands(count),
                            thousands(count.abs_diff(p)),
                            if count <= p { "below" } else { "above" },
                            thousands(p)
                        ));
                    } else {
                        why.push("nothing in these logs shows or excludes it".to_string());
                    }
                    f.collect = vec![
                        "on the server and this client: `dmesg | grep 'nf_conntrack: table full'`".to_string(),
                        "on both hosts: `sysctl net.netfilter.nf_conntrack_count net.netfilter.nf_conntrack_max`".to_string(),
                    ];
                }
                _ => {}
            }
            if f.evidence.is_empty() {
                f.evidence = findings[si].evidence.iter().take(1).cloned().collect();
            }
            f = f.detail(why.join("; "));
            findings[si].caused_by.push(id);
            for c in &f.collect {
                if !findings[si].collect.contains(c) {
                    findings[si].collect.push(c.clone());
                }
            }
            findings.push(f);
        }
        let blamed: Vec<String> = findings
            .iter()
            .filter(|f| f.linked_to == Some(si))
            .map(|f| format!("{} ({})", f.id, f.certainty.as_str()))
            .collect();
        let mut text = findings[si].explanation.clone();
        if blamed.is_empty() {
            text.push_str(" No known cause remains in the catalogue: look at the server (did it stop accepting?).");
        } else {
            text.push_str(&format!(
                " Nothing in these logs shows the cause; it remains {}.",
                blamed.join(" or ")
            ));
        }
        if !excluded.is_empty() {
            text.push_str(&format!(" {}.", excluded.join("; ")));
        }
        findings[si].explanation = text;
    }
    // Plateaus of sources without a timeout: possible limits. Only for
    // logs that do not name their failures: c1m's own JSON lines report
    // every failure as a record, and their counts are sums over worker
    // processes, so a round target (20,000) is no per-process plateau.
    for s in sources {
        let name = s.name();
        if plateau_used.contains(&name) || s.seed.cap_value.is_some() {
            continue;
        }
        let Some(max) = s.max_connections() else {
            continue;
        };
        let Some(ev) = s.seed.max_evidence.clone() else {
            continue;
        };

        for info in crate::catalogue::CATALOGUE {
            if info.id == FailureId::ClientCapReached
                || findings.iter().any(|f| f.id == info.id && f.source == name)
            {
                continue;
            }
            if let Some(p) = info.plateaus.iter().find(|&&p| near_plateau(max, p)) {
                let mut f = Finding::new(info.id, info.side, Certainty::Possible, &name);
                f.count = 1;
                f.evidence.push(ev.clone());
                findings.push(f.detail(format!(
                    "the count peaked at {}, near {} where runs stop on this limit",
                    thousands(max),
                    thousands(*p)
                )));
            }
        }
    }
}

fn class(id: FailureId) -> u8 {
    use FailureId::*;
    match id {
        ConnectTimeout | ConnectionRefused | ConnectionReset => 0,
        FdLimit
        | SystemFdLimit
        | EphemeralPortsExhausted
        | AcceptQueueOverflow
        | ConntrackFull
        | TcpMemoryPressure
        | OrphanSockets
        | TimeWaitOverflow
        | OutOfMemory
        | EpollWatchLimit => 0,
        EagainMisuse => 1,
        ClientCapReached => 2,
        WrongFd => 3,
        PeerDisconnect => 4,
        UnterminatedBuffer => 5,
        LogCorrupted => 6,
    }
}

/// Most important first; causes right after the symptom they explain.
fn order(findings: Vec<Finding>) -> Vec<Finding> {
    let n = findings.len();
    let mut idx: Vec<usize> = (0..n)
        .filter(|&i| findings[i].linked_to.is_none())
        .collect();
    // Findings were made source by source: the first index of a source is
    // its position among the inputs.
    let mut source_pos: Vec<String> = Vec::new();
    for f in &findings {
        if !source_pos.contains(&f.source) {
            source_pos.push(f.source.clone());
        }
    }
    let pos = |f: &Finding| source_pos.iter().position(|s| *s == f.source).unwrap_or(0);
    idx.sort_by(|&a, &b| {
        let (fa, fb) = (&findings[a], &findings[b]);
        (class(fa.id), fa.certainty, pos(fa), a).cmp(&(class(fb.id), fb.certainty, pos(fb), b))
    });
    let mut out_idx = Vec::with_capacity(n);
    for i in idx {
        out_idx.push(i);
        let mut linked: Vec<usize> = (0..n)
            .filter(|&j| findings[j].linked_to == Some(i))
            .collect();
        linked.sort_by_key(|&j| (findings[j].certainty, j));
        out_idx.extend(linked);
    }
    let mut slots: Vec<Option<Finding>> = findings.into_iter().map(Some).collect();
    out_idx
        .into_iter()
        .filter_map(|i| slots[i].take())
        .collect()
}

fn totals(summaries: &[SourceSummary], sources: &[Source]) -> Totals {
    let mut t = Totals {
        live_estimate_exact: true,
        ..Default::default()
    };
    let mut rates = Vec::new();
    let mut seed_clients = 0;
    for (s, src) in summaries.iter().zip(sources) {
        match s.kind {
            Kind::Client => {
                t.clients += 1;
                let printed = s.connections_max.unwrap_or(0);
                t.client_connections_printed = t.client_connections_printed.saturating_add(printed);
                let (closed, live) = match s.closed_by_client {
                    Some(c) => (c, printed.saturating_sub(c)),
                    None => {
                        t.live_estimate_exact = false;
                        (0, printed)
                    }
                };
                t.client_closed_by_client = t.client_closed_by_client.saturating_add(closed);
                t.client_connections_live_estimate =
                    t.client_connections_live_estimate.saturating_add(live);
                if let Some(r) = s.rate_per_s {
                    rates.push(r);
                }
                if src.seed.rate_ms > 0 {
                    seed_clients += 1;
                }
            }
            Kind::Server => {
                t.servers += 1;
                t.server_connections = t
                    .server_connections
                    .saturating_add(s.connections_max.unwrap_or(0));
            }
            _ => {}
        }
    }
    if !rates.is_empty() {
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        t.client_rate_mean_per_s = Some(mean);
        if seed_clients > 0 {
            t.notes.push(format!(
                "clients made about {:.0} connections/s each ({:.1} ms per connection): the seed client opens one socket at a time (blocking connect(), then usleep(500), and a 100 ms epoll_wait every 1,000), so its own loop sets the pace, not the server",
                mean,
                1000.0 / mean
            ));
        }
    }
    if t.clients > 0 && t.client_closed_by_client > 0 {
        t.notes.push(format!(
            "{} connections printed, {} {}: the clients closed {} themselves{}",
            thousands(t.client_connections_printed),
            if t.live_estimate_exact {
                "alive"
            } else {
                "alive at most"
            },
            thousands(t.client_connections_live_estimate),
            thousands(t.client_closed_by_client),
            if t.live_estimate_exact {
                ""
            } else {
                " (some logs show no fd to check)"
            }
        ));
    }
    t
}
