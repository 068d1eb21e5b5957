//! flood's JSON lines as types: what a worker process (`c1m flood-shard`)
//! sends its parent, and the typed parts of what a run writes with
//! `--json` (its start, interval, failure and summary lines). Each
//! side serializes and deserializes the same struct, so a field renamed on
//! one side is renamed on the other; human rendering lives in `report`.
//!
//! Worker to parent, one [`Record`] per line on the worker's stdout:
//! * `interval`: the worker's [`Snapshot`] (its `events::Counters`
//!   flattened, plus in-flight attempts, the last fd and its phase), at
//!   every thousandth verified connection and every second;
//! * `failure`: a [`FailureNote`] (one class over one interval, with or
//!   without a catalogue id);
//! * `summary`: its whole [`ShardSummary`], histograms included, which the
//!   parent merges.
//!
//! Lines that are not JSON (the seed's per-connection lines) pass through.
use std::collections::BTreeMap;
use std::io::Write;

use serde::{Deserialize, Serialize};

use super::stats::{FailureNote, Percentiles, Phase, ShardSummary, Sink, Snapshot};
use crate::catalogue::FailureId;
use crate::events::{Counters, FloodStart, Record, Role};

/// A worker's line to its parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerLine {
    Interval(Box<Snapshot>),
    Failure(FailureNote),
    Summary(Box<ShardSummary>),
}

/// What the parent makes of one line of a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Line(WorkerLine),
    /// Not JSON: a seed-format line, passed on as it is.
    Raw,
    /// JSON, but not a worker line (ignored).
    Other,
}

/// Parse a worker's line back into what its sink was given.
pub fn parse_worker_line(line: &str) -> Received {
    if !line.trim_start().starts_with('{') {
        return Received::Raw;
    }
    match Record::<WorkerLine>::parse_as(line) {
        Some(rec) => Received::Line(rec.event),
        None => Received::Other,
    }
}

/// The sink of a worker process: its lines on stdout for the parent.
pub struct WorkerSink {
    pub index: u32,
    pub seed_lines: bool,
}

impl WorkerSink {
    fn write(&self, line: WorkerLine) {
        if let Some(text) = Record::now(Role::Flood, Some(self.index), line).to_line() {
            let mut so = std::io::stdout().lock();
            let _ = writeln!(so, "{text}");
            let _ = so.flush();
        }
    }

    pub fn summary(&self, s: &ShardSummary) {
        self.write(WorkerLine::Summary(Box::new(s.clone())));
    }
}

impl Sink for WorkerSink {
    fn progress(&mut self, snap: &Snapshot, _tick: bool) {
        self.write(WorkerLine::Interval(Box::new(snap.clone())));
    }

    fn failure(&mut self, note: &FailureNote) {
        self.write(WorkerLine::Failure(note.clone()));
    }

    fn conn_line(&mut self, line: &str) {
        if self.seed_lines {
            let mut so = std::io::stdout().lock();
            let _ = writeln!(so, "{line}");
            let _ = so.flush();
        }
    }
}

/// The lines a flood run writes with `--json` beyond [`crate::events::Event`]'s
/// own fields (readers of `Event` read them too and skip what they do not
/// know).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FloodLine {
    /// The run starts: what it was asked to do.
    Start { settings: Box<FloodStart> },
    /// Progress once a second.
    Interval {
        #[serde(flatten)]
        counters: Counters,
        /// Verified connections per second over the interval.
        rate: f64,
        target: u64,
        /// Attempts in flight now.
        in_flight: u64,
        phase: Phase,
    },
    /// Failures of one class over one interval.
    Failure {
        failure: FailureId,
        call: String,
        errno: Option<i32>,
        count: u64,
        detail: String,
        /// flood's class key ("ECONNREFUSED", "ECHO_TIMEOUT"...).
        key: String,
    },
    /// The last line: the whole run's counters and its [`FloodSummary`].
    Summary {
        #[serde(flatten)]
        counters: Counters,
        elapsed_s: f64,
        details: Box<FloodSummary>,
    },
}

/// The `details` of flood's `summary` line: the merged shard summary
/// (histograms left out) and what is derived from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FloodSummary {
    #[serde(flatten)]
    pub shard: ShardSummary,
    /// Connections whose echo came back intact (the same as the shard's
    /// `opened_total`; the name readers of flood's summary know).
    pub verified: u64,
    /// Verified connections open at the end (the same as `connections`).
    pub established: u64,
    /// Most verified connections open at once (all processes).
    pub peak_connections: u64,
    /// Target reached, verified and held.
    pub reached: bool,
    /// Verified connections per second over the connect phase.
    pub connect_rate: f64,
    /// Failed attempts and losses by class key (the same as `errors`).
    pub failed_by_class: BTreeMap<String, u64>,
    pub connect_latency_ms: Percentiles,
    pub rtt_ms: Percentiles,
    /// Why the run failed; `None` when it succeeded.
    pub reason: Option<String>,
}

impl FloodSummary {
    /// The details of a run's summary `s`, whose open count peaked at
    /// `peak` while it ran.
    pub fn new(s: &ShardSummary, peak: u64) -> FloodSummary {
        let mut shard = s.clone();
        shard.connect_latency_us.clear();
        shard.rtt_us.clear();
        FloodSummary {
            verified: s.verified(),
            established: s.open(),
            peak_connections: peak.max(s.open()),
            reached: s.success(),
            connect_rate: (s.connect_rate() * 10.0).round() / 10.0,
            failed_by_class: s.counters.errors.clone(),
            connect_latency_ms: super::stats::percentiles(&s.connect_latency_us),
            rtt_ms: super::stats::percentiles(&s.rtt_us),
            reason: s.reason(),
            shard,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

    fn line_of(l: WorkerLine) -> String {
        Record::now(Role::Flood, Some(2), l).to_line().unwrap()
    }

    #[test]
    fn worker_lines_come_back_as_sent() {
        let mut snap = Snapshot {
            in_flight: 12,
            attempts: 40,
            last_fd: Some(1002),
            phase: Phase::Hold,
            target: 100,
            ..Default::default()
        };
        snap.counters.connections = 30;
        snap.counters.errors.insert("ECONNREFUSED".into(), 3);
        let note = FailureNote {
            key: "ECHO_TIMEOUT".into(),
            failure: None,
            call: "read".into(),
            errno: None,
            count: 4,
            detail: "no echo".into(),
        };
        let summary = ShardSummary {
            target: 100,
            counters: Counters {
                opened_total: 30,
                ..Default::default()
            },
            connect_latency_us: vec![(100, 2), (250, 1)],
            ..Default::default()
        };
        for l in [
            WorkerLine::Interval(Box::new(snap.clone())),
            WorkerLine::Failure(note),
            WorkerLine::Summary(Box::new(summary)),
        ] {
            assert_eq!(parse_worker_line(&line_of(l.clone())), Received::Line(l));
        }
        // An interval is still an events interval for any other reader.
        match Record::parse(&line_of(WorkerLine::Interval(Box::new(snap)))).map(|r| r.event) {
            Some(Event::Interval {
                counters, target, ..
            }) => assert_eq!((counters.connections, target), (30, Some(100))),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_worker_line("connections: 999, sockfd:1002, time_used:1241"),
            Received::Raw
        );
        assert_eq!(parse_worker_line(r#"{"event":"worker"}"#), Received::Other);
    }

    #[test]
    fn summary_details_round_trip_and_old_ones_parse() {
        let s = ShardSummary {
            target: 10,
            counters: Counters {
                connections: 10,
                opened_total: 10,
                ..Default::default()
            },
            connect_s: 2.0,
            ..Default::default()
        };
        let d = FloodSummary::new(&s, 7);
        assert_eq!(d.peak_connections, 10, "never below what is open");
        assert!(d.reached && d.reason.is_none());
        let v = serde_json::to_value(&d).unwrap();
        assert!(v.get("connect_latency_us").is_none(), "{v}");
        assert_eq!(crate::events::typed::<FloodSummary>(&v), Some(d));
        // A summary written before peak_connections existed.
        let mut old = v.clone();
        old.as_object_mut().unwrap().remove("peak_connections");
        let back: FloodSummary = crate::events::typed(&old).unwrap();
        assert_eq!((back.peak_connections, back.shard.verified()), (0, 10));
    }
}
