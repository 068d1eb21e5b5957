//! The classifier: turns what the sources saw into findings (a catalogue
//! id, the side it belongs to, how sure we are, the evidence lines, a plain
//! explanation and the fix), per-source summaries and totals. This file
//! holds the types, the order the rules run in, the order findings are
//! shown in, and the summaries; each failure family's rule is in
//! [`super::rules`].
//!
//! Direct evidence (an error line, a kernel line, a rising counter) is
//! `certain`. Inferences from numbers (the `sockfd - connections` offset, a
//! plateau at a known table size, whole-second delays in `time_used`) are
//! `likely` or `possible`. Symptoms are linked to causes: a connect timeout
//! is blamed on `conntrack_full` or `accept_queue_overflow` when a kernel
//! line, a counter or a sysctl shows it; otherwise the causes that remain
//! are listed with what to collect to settle it.
use std::collections::BTreeMap;

use serde::Serialize;

pub use super::finding::{Certainty, Finding};
use super::rules::{
    Ctx, cap, client_bugs, conntrack, counters, eagain, faults, fd, log, memory, observed, plateau,
    plural, timeout,
};
use super::source::{Kind, LineCounts, SEED_STEP, Source};
use super::timestamps;
use crate::catalogue::FailureId;
use crate::util::thousands;

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
    /// What a flood client spoke (`http (path /)`), from its start line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
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
    /// The client stopped connecting because the lab told it to: its ramp
    /// reached the host's ceiling (`lab --target max`), not a failure.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ramp_stopped: bool,
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
/// Classify all sources together (so a client's symptom can be linked to
/// a server's kernel line or counter): the per-source rules, then the
/// host rules, then the links from symptoms to causes and the plateaus.
pub fn classify(sources: &[Source]) -> Classified {
    let (healthy, learned) = eagain::healthy_offset(sources);
    let mut findings: Vec<Finding> = Vec::new();
    let mut summaries = Vec::new();
    let any_reactor = sources.iter().any(|s| s.mentions_reactor);
    for s in sources {
        let cx = Ctx {
            s,
            name: s.name(),
            kind: s.kind(),
            closed: eagain::closed_of(s, healthy),
            healthy,
            learned,
        };
        let mut notes = Vec::new();
        observed::findings(&cx, &mut findings);
        eagain::findings(&cx, &mut findings);
        cap::findings(&cx, &mut findings, &mut notes);
        client_bugs::findings(&cx, &mut findings);
        log::findings(&cx, &mut findings);
        summaries.push(summarize(&cx, notes));
    }
    for s in sources {
        counters::findings(s, &mut findings);
        conntrack::findings(s, sources, &mut findings);
        memory::findings(s, sources, &mut findings);
        fd::findings(s, sources, &mut findings);
    }
    let plateau_used = timeout::link_causes(sources, &mut findings, any_reactor);
    plateau::findings(sources, &plateau_used, &mut findings);
    let findings = faults::link(sources, order(findings));
    let totals = totals(&summaries, sources);
    Classified {
        sources: summaries,
        totals,
        findings,
    }
}

/// What one source amounts to, with the notes the rules left and the
/// source's own (late start, rate, retransmissions, target, workers).
fn summarize(cx: &Ctx, mut notes: Vec<String>) -> SourceSummary {
    let s = cx.s;
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
    if s.seed.max.is_none()
        && s.json.records == 0
        && let Some((form, series, sure)) = s.free.pick()
    {
        notes.push(format!(
            "connections read from {} lines ({} line{}){}",
            form.as_str(),
            thousands(series.samples),
            plural(series.samples),
            if sure {
                String::new()
            } else {
                ": likely a connection count, not certain (a bare number or one that also falls)"
                    .to_string()
            }
        ));
    }
    if s.free.salvaged > 0 {
        notes.push(format!(
            "{} damaged progress line{} still gave {} count (salvaged){}",
            thousands(s.free.salvaged),
            plural(s.free.salvaged),
            if s.free.salvaged == 1 { "its" } else { "their" },
            s.salvaged_evidence
                .as_ref()
                .map(|e| format!(", first at line {}", e.line))
                .unwrap_or_default()
        ));
    }
    if let Some(p) = s.json.protocol.as_ref().filter(|p| p.name() != "echo") {
        notes.push(format!("the client spoke {}", p.describe()));
    }
    if s.json.worker_events > 0 {
        notes.push(format!(
            "{} worker exit/restart record(s)",
            s.json.worker_events
        ));
    }
    let closed_total = cx.closed.as_ref().map(|c| c.total());
    let live = match (s.max_connections(), closed_total) {
        (Some(m), Some(c)) => Some(m.saturating_sub(c)),
        _ => None,
    };
    if s.json.ramp_stopped {
        notes.push(
            "stopped connecting on the lab's SIGUSR1: its ramp reached the host's ceiling (lab --target max), and the client held what it had verified".into(),
        );
    }
    time_notes(s, &mut notes);
    let mut errors = BTreeMap::new();
    for (id, o) in &s.obs {
        errors.insert(*id, o.count);
    }
    SourceSummary {
        name: cx.name.clone(),
        file: s.file.to_string(),
        section: s.section.clone(),
        kind: cx.kind,
        command: s.command.clone(),
        protocol: s.json.protocol.as_ref().map(|p| p.describe()),
        connections_last: s.last_connections(),
        connections_max: s.max_connections(),
        closed_by_client: closed_total,
        connections_live_estimate: live,
        rate_per_s: rate,
        elapsed_s: s.elapsed(),
        errors,
        lines: s.lines,
        notes,
        ramp_stopped: s.json.ramp_stopped,
    }
}

/// What the timestamps of a source's lines say: the processes the file
/// mixes, the connect rate by the clock, stamps out of order, and which
/// failure began first.
fn time_notes(s: &Source, notes: &mut Vec<String>) {
    let st = s.stamps();
    if let Some(n) = &st.process_note {
        notes.push(n.clone());
    }
    if let Some((r, n, dt)) = s.stamped_rate() {
        notes.push(format!(
            "{r:.0} connections/s by the timestamps ({} connections in {dt:.1} s, up to the first line at the peak)",
            thousands(n)
        ));
    }
    if st.back > 0 {
        notes.push(format!(
            "the timestamps go back {} time{} (by up to {:.0} s, first at line {}): two processes may be writing into this file, and their lines name no process or pid to tell them apart",
            thousands(st.back),
            plural(st.back),
            st.back_max,
            st.back_evidence.as_ref().map_or(0, |e| e.line)
        ));
    }
    if st.lines == 0 {
        return;
    }
    let mut began: Vec<(f64, FailureId, u64)> = s
        .obs
        .iter()
        .filter_map(|(id, o)| {
            let line = o.evidence.first().map_or(0, |e| e.line);
            o.first_ts.map(|t| (t, *id, line))
        })
        .collect();
    if began.len() >= 2 {
        began.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
        let order: Vec<String> = began
            .iter()
            .map(|(t, id, line)| format!("{id} at {} (line {line})", timestamps::clock(*t)))
            .collect();
        notes.push(format!(
            "failures in the order they began: {}",
            order.join(", then ")
        ));
    }
}

fn class(id: FailureId) -> u8 {
    use FailureId::*;
    match id {
        ConnectTimeout | ConnectionRefused | ConnectionReset | ConnectFailed => 0,
        FdLimit
        | SystemFdLimit
        | EphemeralPortsExhausted
        | AcceptQueueOverflow
        | ConntrackFull
        | TcpMemoryPressure
        | OrphanSockets
        | TimeWaitOverflow
        | OutOfMemory
        | EpollWatchLimit
        | ServerConnectionLimit
        | ProtocolMismatch
        | ProtocolRefused => 0,
        // Faults: root causes (see rules::faults, which also puts them first).
        ServerProcessDied | ServerStalled | PacketLoss | ReconnectStorm | ClientProcessDied => 0,
        // The lab's stop at the host's ceiling (see `order`, which puts it first).
        MemoryCeiling => 0,
        EagainMisuse => 1,
        ClientCapReached => 2,
        WrongFd => 3,
        PeerDisconnect => 4,
        UnterminatedBuffer => 5,
        LogCorrupted => 6,
    }
}

/// Whether a finding is the lab's stop at the host's ceiling: what ended
/// the ramp comes before anything that happened on the way there (late
/// echoes near the floor began earlier, but did not stop the run).
fn stopped_the_ramp(f: &Finding) -> bool {
    f.id == FailureId::MemoryCeiling
}

/// Most important first (the lab's stop at the ceiling before all);
/// causes right after the symptom they explain.
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
    // Of findings of equal weight, the one that began first by the clock
    // (those with no time after those with one), then input order.
    let when = |f: &Finding| f.first_ts.unwrap_or(f64::INFINITY);
    idx.sort_by(|&a, &b| {
        let (fa, fb) = (&findings[a], &findings[b]);
        (!stopped_the_ramp(fa), class(fa.id), fa.certainty)
            .cmp(&(!stopped_the_ramp(fb), class(fb.id), fb.certainty))
            .then_with(|| when(fa).total_cmp(&when(fb)))
            .then_with(|| (pos(fa), a).cmp(&(pos(fb), b)))
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

/// Which failure began first across sources whose lines carry
/// timestamps (at most three, in time order).
fn first_across(sources: &[Source], notes: &mut Vec<String>) {
    let mut began: Vec<(f64, FailureId, String)> = sources
        .iter()
        .filter(|s| s.stamps().lines > 0)
        .flat_map(|s| {
            let who = super::story::short_name(&s.name());
            s.obs
                .iter()
                .filter_map(move |(id, o)| o.first_ts.map(|t| (t, *id, who.clone())))
        })
        .collect();
    let stamped = sources
        .iter()
        .filter(|s| s.stamps().lines > 0 && s.obs.values().any(|o| o.first_ts.is_some()))
        .count();
    if stamped < 2 {
        return;
    }
    began.sort_by(|a, b| a.0.total_cmp(&b.0));
    let order: Vec<String> = began
        .iter()
        .take(3)
        .map(|(t, id, who)| format!("{id} in {who} at {}", timestamps::clock(*t)))
        .collect();
    notes.push(format!(
        "by the timestamps, the first failure was {}",
        order.join(", then ")
    ));
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
    first_across(sources, &mut t.notes);
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

#[cfg(test)]
mod tests {
    use super::super::rules::testing::sources;
    use super::*;

    #[test]
    fn a_client_says_what_it_spoke_from_its_start_line() {
        let http = concat!(
            r#"{"ts":1.0,"role":"flood","pid":7,"event":"start","settings":{"host":"127.0.0.1","port":80,"connections":10,"protocol":{"name":"http","path":"/health"}}}"#,
            "\n",
            r#"{"ts":2.0,"role":"flood","pid":7,"event":"interval","connections":10,"opened_total":10,"rate":10.0}"#,
            "\n"
        );
        let echo = http.replace(r#""name":"http","path":"/health""#, r#""name":"echo""#);
        let old = http.replace(r#","protocol":{"name":"http","path":"/health"}"#, "");
        let c = classify(&sources(&[
            ("http.jsonl", http),
            ("echo.jsonl", &echo),
            ("old.jsonl", &old),
        ]));
        let by = |f: &str| {
            c.sources
                .iter()
                .find(|s| s.file.ends_with(f))
                .unwrap_or_else(|| panic!("{f}: {:#?}", c.sources))
        };
        let s = by("http.jsonl");
        assert_eq!(s.protocol.as_deref(), Some("http (path /health)"), "{s:#?}");
        assert!(
            s.notes
                .iter()
                .any(|n| n == "the client spoke http (path /health)"),
            "{:?}",
            s.notes
        );
        // echo is said in the JSON, not as a note; a log from before the
        // field says nothing.
        let s = by("echo.jsonl");
        assert_eq!(s.protocol.as_deref(), Some("echo"));
        assert!(
            !s.notes.iter().any(|n| n.contains("spoke")),
            "{:?}",
            s.notes
        );
        assert_eq!(by("old.jsonl").protocol, None);
    }
}
