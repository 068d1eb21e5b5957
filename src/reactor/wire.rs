//! serve's JSON lines as types, as `flood::wire` is flood's: what a worker
//! process (`c1m serve-worker`) sends its parent, and what the parent
//! writes with `--json`. Each side serializes and deserializes the same
//! struct, so a field renamed on one side is renamed on the other, and no
//! reader picks a field out of free-form JSON by name.
//!
//! Worker to parent, one [`Record`] per line on the worker's stdout:
//! * `start`: its [`ServeWorkerStart`] once it polls the listeners;
//! * `interval`: its [`WorkerInterval`] (its `events::Counters` flattened)
//!   every stats interval, and a last one when it stops;
//! * `failure`: a [`FailureLine`] (one accept errno over one interval).
//!
//! The parent's own lines ([`ServeLine`]): `start` ([`ServeStart`]), one
//! summed `interval` per stats interval ([`ServeInterval`]), once the cap
//! is reached a `failure` of `server_connection_limit` ([`CapReached`]),
//! the `summary` ([`ServeSummaryLine`], with [`ServeSummary`] as its
//! `details`); its
//! `worker` lines and the workers' failures it passes on are
//! `events::Event`s. Every line still reads as an [`crate::events::Event`]
//! for `analyze` and the lab.
use serde::{Deserialize, Serialize};

use crate::catalogue::FailureId;
use crate::events::{Counters, Record, ServeStart, ServeSummary, ServeWorkerStart};

/// A worker's line to its parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerLine {
    Start { settings: ServeWorkerStart },
    Interval(WorkerInterval),
    Failure(FailureLine),
}

/// A worker's counters, once per stats interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerInterval {
    #[serde(flatten)]
    pub counters: Counters,
    /// Accepts per second over the interval.
    #[serde(default)]
    pub rate: f64,
    /// Its cap (connections it may hold).
    #[serde(default)]
    pub cap: u64,
}

impl WorkerInterval {
    /// The worker holds its whole share and accepts nothing more.
    pub fn at_cap(&self) -> bool {
        self.cap > 0 && self.counters.connections >= self.cap
    }
}

/// Failures of one class over one interval (a worker's accept errors; the
/// parent's cap line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureLine {
    pub failure: FailureId,
    /// The system call that failed ("accept").
    pub call: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    pub count: u64,
    /// A sentence with the specifics (limit values).
    pub detail: String,
}

/// What the parent makes of one line of a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Line(Record<WorkerLine>),
    /// Not a worker record: a seed-format line, passed on as it is.
    Raw,
}

/// Parse a worker's line.
pub fn parse_worker_line(line: &str) -> Received {
    match Record::<WorkerLine>::parse_as(line) {
        Some(rec) => Received::Line(rec),
        None => Received::Raw,
    }
}

/// The parent's lines with `--json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ServeLine {
    Start {
        settings: ServeStart,
    },
    Interval(ServeInterval),
    /// Its cap reached: written once, as a `failure` record so that every
    /// reader of `events::Event` (analyze, the lab) counts it.
    Failure(CapReached),
    Summary(ServeSummaryLine),
}

/// serve holds `--max-connections`: every worker at its share and none left
/// to start, so it accepts no more until some close. A `failure` line of
/// `server_connection_limit` (call `accept`, count 1) with the figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapReached {
    pub failure: FailureId,
    pub call: String,
    pub count: u64,
    pub detail: String,
    /// `--max-connections` (given, or the default: doctor's estimate).
    pub max_connections: u64,
    /// Connections open when it was reached.
    pub connections: u64,
    /// Workers running, each at its share.
    pub workers: u32,
    pub per_worker_cap: u64,
    /// The listen backlog new connections now wait in.
    pub backlog: i64,
}

impl CapReached {
    /// The record and the human sentence of a cap reached. `default_max`:
    /// `--max-connections` was not given (doctor's estimate).
    pub fn new(
        max_connections: u64,
        connections: u64,
        workers: u32,
        per_worker_cap: u64,
        backlog: i64,
        default_max: bool,
    ) -> CapReached {
        use crate::util::thousands;
        let which = if default_max {
            "the default --max-connections (what doctor estimates this host can hold)"
        } else {
            "--max-connections"
        };
        let detail = format!(
            "cap reached: serve holds {} connections, {which} {} ({} worker{} at {} each); it accepts no more until some close: new connections wait in the accept queue (backlog {backlog}), then time out; raise --max-connections to hold more",
            thousands(connections),
            thousands(max_connections),
            workers,
            if workers == 1 { "" } else { "s" },
            if workers == 1 {
                thousands(per_worker_cap)
            } else {
                format!("up to {}", thousands(per_worker_cap))
            },
        );
        CapReached {
            failure: FailureId::ServerConnectionLimit,
            call: "accept".into(),
            count: 1,
            detail,
            max_connections,
            connections,
            workers,
            per_worker_cap,
            backlog,
        }
    }
}

/// The workers' counters summed, once per stats interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServeInterval {
    #[serde(flatten)]
    pub counters: Counters,
    /// Accepts per second over the interval (all workers).
    #[serde(default)]
    pub rate: f64,
    /// Worker processes running now.
    #[serde(default)]
    pub workers: u32,
}

/// The parent's last line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServeSummaryLine {
    #[serde(flatten)]
    pub counters: Counters,
    #[serde(default)]
    pub elapsed_s: f64,
    #[serde(default)]
    pub details: ServeSummary,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, Role};

    #[test]
    fn worker_lines_come_back_as_sent() {
        let mut counters = Counters {
            connections: 7,
            opened_total: 9,
            rss_bytes: Some(4096),
            ..Default::default()
        };
        counters.failures.insert(FailureId::FdLimit, 2);
        let lines = [
            WorkerLine::Start {
                settings: ServeWorkerStart {
                    worker: 3,
                    cap: 100,
                    rss_baseline: 1 << 20,
                    ..Default::default()
                },
            },
            WorkerLine::Interval(WorkerInterval {
                counters: counters.clone(),
                rate: 2.5,
                cap: 7,
            }),
            WorkerLine::Failure(FailureLine {
                failure: FailureId::FdLimit,
                call: "accept".into(),
                errno: Some(libc::EMFILE),
                count: 2,
                detail: "EMFILE".into(),
            }),
        ];
        for l in lines {
            let text = Record::now(Role::Serve, Some(3), l.clone())
                .to_line()
                .unwrap();
            match parse_worker_line(&text) {
                Received::Line(rec) => {
                    assert_eq!(rec.event, l);
                    assert_eq!(rec.worker, Some(3));
                }
                other => panic!("{other:?}"),
            }
            // Every worker line is an events line too.
            assert!(Record::parse(&text).is_some(), "{text}");
        }
        let full = WorkerInterval {
            counters,
            rate: 0.0,
            cap: 7,
        };
        assert!(full.at_cap());
        assert!(
            !WorkerInterval {
                cap: 8,
                ..full.clone()
            }
            .at_cap()
        );
        assert_eq!(
            parse_worker_line("connections: 1000, sockfd:1003, time_used:12"),
            Received::Raw
        );
    }

    #[test]
    fn the_cap_record_reads_as_a_server_connection_limit_failure() {
        let cap = CapReached::new(1000, 1000, 2, 500, 4096, false);
        assert!(
            cap.detail.contains("--max-connections 1,000"),
            "{}",
            cap.detail
        );
        assert!(
            cap.detail.contains("2 workers at up to 500 each"),
            "{}",
            cap.detail
        );
        let text = Record::now(Role::Serve, None, ServeLine::Failure(cap.clone()))
            .to_line()
            .unwrap();
        assert_eq!(
            Record::<ServeLine>::parse_as(&text).map(|r| r.event),
            Some(ServeLine::Failure(cap))
        );
        match Record::parse(&text).map(|r| r.event) {
            Some(Event::Failure {
                failure,
                call,
                count,
                detail,
                ..
            }) => {
                assert_eq!(failure, FailureId::ServerConnectionLimit);
                assert_eq!((call.as_str(), count), ("accept", 1));
                assert!(
                    detail.starts_with("cap reached: serve holds 1,000"),
                    "{detail}"
                );
            }
            other => panic!("{other:?}"),
        }
        let default = CapReached::new(19_000, 19_000, 1, 19_000, 4096, true);
        assert!(
            default.detail.contains("doctor estimates"),
            "{}",
            default.detail
        );
        assert!(
            default.detail.contains("1 worker at 19,000"),
            "{}",
            default.detail
        );
    }

    #[test]
    fn the_parent_summary_reads_as_an_events_summary() {
        let line = ServeLine::Summary(ServeSummaryLine {
            counters: Counters {
                connections: 5,
                ..Default::default()
            },
            elapsed_s: 1.5,
            details: ServeSummary {
                peak_connections: 20,
                workers: 2,
                ..Default::default()
            },
        });
        let text = Record::now(Role::Serve, None, line.clone())
            .to_line()
            .unwrap();
        let back = Record::<ServeLine>::parse_as(&text).unwrap();
        assert_eq!(back.event, line);
        match Record::parse(&text).map(|r| r.event) {
            Some(Event::Summary {
                counters, details, ..
            }) => {
                assert_eq!(counters.connections, 5);
                assert_eq!(details["peak_connections"], 20);
            }
            other => panic!("{other:?}"),
        }
    }
}
