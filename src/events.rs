//! The JSON-lines schema that `serve` and `flood` write with `--json` and
//! that `analyze` (and the lab, and the parent of worker processes) read
//! back. One object per line, each with the same envelope: a Unix timestamp,
//! the role and process that wrote it, and an `event` tag. Readers ignore
//! fields they do not know, so the schema can grow without breaking old logs.
//!
//! The free-form parts (`start` settings, `summary` details) are typed too:
//! each writer serializes one struct and each reader deserializes the same
//! one ([`ServeStart`], [`ServeWorkerStart`], [`ServeSummary`],
//! [`FloodStart`] here; flood's summary details are `flood::wire::
//! FloodSummary`, built on its shard summary). Every field has a serde
//! default, so a log written before a field existed still parses.
//! [`Record`] is generic over its event so that a writer can add typed
//! fields of its own to a line (flood's interval and failure lines, its
//! workers' lines) while readers of [`Event`] still read it.
use std::collections::BTreeMap;
use std::io::Write;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::catalogue::FailureId;

/// Which program wrote a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Serve,
    Flood,
    Lab,
}

/// One JSON line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record<E = Event> {
    /// Seconds since the Unix epoch.
    pub ts: f64,
    pub role: Role,
    pub pid: u32,
    /// Index of the worker process that wrote it; absent for a parent or a
    /// single-process run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<u32>,
    /// The host that wrote it, in a fleet run (`flood --host-name`, or the
    /// hostname with `--shard`); see [`set_origin`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its fleet shard, `K/N` (`flood --shard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    #[serde(flatten)]
    pub event: E,
}

/// This process's host name and fleet shard, stamped on every record it
/// writes from now on (set once, before the first line).
static ORIGIN: std::sync::OnceLock<(Option<String>, Option<String>)> = std::sync::OnceLock::new();

/// Stamp every later [`Record::now`] of this process with `host` and
/// `shard`. Only the first call counts.
pub fn set_origin(host: Option<String>, shard: Option<String>) {
    let _ = ORIGIN.set((host, shard));
}

/// Counters common to `serve` and `flood` intervals and summaries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Connections open now (serve: accepted and not closed; flood:
    /// established and verified, not closed). Defaults to 0 so that a
    /// summary written before it was flattened in still parses.
    #[serde(default)]
    pub connections: u64,
    /// Connections ever opened (serve: accepted; flood: verified).
    #[serde(default)]
    pub opened_total: u64,
    /// Connections closed (by the peer, by errors or by us).
    #[serde(default)]
    pub closed_total: u64,
    /// Failed attempts (flood: connects that failed; serve: accept errors).
    #[serde(default)]
    pub failed_total: u64,
    #[serde(default)]
    pub bytes_in: u64,
    #[serde(default)]
    pub bytes_out: u64,
    /// Errors by errno name ("EMFILE": 3).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// Failures by catalogue id ("fd_limit": 3).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<FailureId, u64>,
    /// Resident memory of the writing process(es), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
}

impl Counters {
    /// Add another process's counters into these (a parent summing its
    /// workers). RSS adds up where either side has it.
    pub fn add(&mut self, o: &Counters) {
        self.connections += o.connections;
        self.opened_total += o.opened_total;
        self.closed_total += o.closed_total;
        self.failed_total += o.failed_total;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        crate::util::add_counts(&mut self.errors, &o.errors);
        crate::util::add_counts(&mut self.failures, &o.failures);
        self.rss_bytes = match (self.rss_bytes, o.rss_bytes) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
    }
}

/// The event a line carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run starts: what it was asked to do (free-form settings).
    Start {
        #[serde(default)]
        settings: serde_json::Value,
    },
    /// Periodic progress.
    Interval {
        #[serde(flatten)]
        counters: Counters,
        /// Rate over the interval: accepts per second (serve) or verified
        /// connections per second (flood).
        #[serde(default)]
        rate: f64,
        /// The target, where there is one (flood).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<u64>,
    },
    /// A failure observed (rate-limited by the writer: one line per class
    /// per interval, with a count).
    Failure {
        failure: FailureId,
        /// The system call that failed ("connect", "accept", ...).
        #[serde(default)]
        call: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        errno: Option<i32>,
        /// How many times since the last line of this class.
        #[serde(default = "one")]
        count: u64,
        /// A human sentence with the specifics (limit values, addresses).
        #[serde(default)]
        detail: String,
    },
    /// A failure the writer expects from its own settings before any has
    /// happened (serve: workers allowed more connections than their fd
    /// limit leaves room for). Not an observation: analyze counts none.
    Warning {
        failure: FailureId,
        #[serde(default)]
        detail: String,
    },
    /// A worker process exited or was restarted (written by a parent).
    Worker {
        index: u32,
        #[serde(default)]
        action: String,
        #[serde(default)]
        detail: String,
    },
    /// The final summary.
    Summary {
        #[serde(flatten)]
        counters: Counters,
        #[serde(default)]
        elapsed_s: f64,
        /// Everything else the writer wants to report (latency percentiles,
        /// target reached, reason for failure...).
        #[serde(default)]
        details: serde_json::Value,
    },
}

fn one() -> u64 {
    1
}

impl<E: Serialize> Record<E> {
    /// A record stamped now by this process.
    pub fn now(role: Role, worker: Option<u32>, event: E) -> Record<E> {
        let (host, shard) = ORIGIN.get().cloned().unwrap_or_default();
        Record {
            ts: crate::util::unix_now(),
            role,
            pid: std::process::id(),
            worker,
            host,
            shard,
            event,
        }
    }

    /// Write as one JSON line and flush, so a killed process loses nothing.
    pub fn emit(&self, out: &mut impl Write) -> std::io::Result<()> {
        let line = serde_json::to_string(self).map_err(std::io::Error::other)?;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()
    }

    /// The record as one JSON line, without the newline.
    pub fn to_line(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
}

impl<E: DeserializeOwned> Record<E> {
    /// Parse one line as a record of `E`; `None` for anything else.
    pub fn parse_as(line: &str) -> Option<Record<E>> {
        let t = line.trim();
        if !t.starts_with('{') {
            return None;
        }
        serde_json::from_str(t).ok()
    }
}

impl Record {
    /// Parse one line; `None` for anything that is not a c1m record.
    pub fn parse(line: &str) -> Option<Record> {
        Record::parse_as(line)
    }
}

/// Read a typed `start` settings or `summary` details object; `None` when
/// it is not one (a field of the wrong type). Missing fields take their
/// defaults, so older logs parse.
pub fn typed<T: DeserializeOwned>(value: &serde_json::Value) -> Option<T> {
    T::deserialize(value).ok()
}

/// Where a flood process stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Connect,
    Hold,
    Done,
}

/// `start` settings of the `c1m serve` parent, once every worker listens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServeStart {
    pub bind: String,
    /// First and last port.
    pub ports: Vec<u16>,
    /// Workers running now (elastic: 1 at the start).
    pub workers: u32,
    /// Workers when all run: `workers` itself unless `elastic`.
    pub max_workers: u32,
    /// One worker first, the next started as the running ones near their
    /// share (no `--max-connections` nor worker count given).
    pub elastic: bool,
    pub max_connections: u64,
    pub per_worker_cap: u64,
    /// The soft RLIMIT_NOFILE of the workers.
    pub nofile: u64,
    /// The listen backlog (`net.core.somaxconn`).
    pub backlog: i64,
    pub wake: String,
    pub worker_pids: Vec<u32>,
    /// `--metrics`: the URL Prometheus scrapes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
}

/// `start` settings of one serve worker, once it polls the listeners.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServeWorkerStart {
    pub worker: u32,
    pub cap: u64,
    pub listeners: u64,
    pub nofile: u64,
    /// Its RSS before any connection, bytes: the parent takes it off the
    /// RSS it reports per connection.
    pub rss_baseline: u64,
    pub wake: String,
}

/// `summary` details of the `c1m serve` parent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServeSummary {
    /// Most connections open at once (all workers).
    pub peak_connections: u64,
    pub workers: u64,
    pub restarts: u64,
    /// Fewest and most connections one worker held at the end.
    pub per_worker_min: u64,
    pub per_worker_max: u64,
    /// Highest RSS of all workers together, bytes.
    pub peak_rss_bytes: u64,
    /// Workers' RSS above their empty baselines per connection, at the peak.
    pub user_bytes_per_connection: Option<f64>,
    pub max_connections: u64,
    pub per_worker_cap: u64,
    /// Connections that died with a worker (killed, crashed, exited): each
    /// one's last reported live count. Not in `closed_total`.
    pub lost_connections: u64,
    /// Every worker that died while serving, with what it held.
    pub worker_deaths: Vec<WorkerDeath>,
    /// Seconds from the start to when serve first held
    /// `max_connections` (its `cap_reached` record), if it did.
    pub cap_reached_s: Option<f64>,
}

/// A serve worker that died while serving (not at the end of the run): who,
/// when, why, and how many connections died with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerDeath {
    pub index: u32,
    pub pid: u32,
    /// Seconds since the Unix epoch, when the parent saw it end.
    pub ts: f64,
    /// `killed by SIGKILL`, `exited with status 3`.
    pub cause: String,
    /// The signal's name, when a signal ended it.
    pub signal: Option<String>,
    /// Its exit status, when it exited.
    pub exit_code: Option<i32>,
    /// Its last reported live count: the connections lost with it.
    pub connections_lost: u64,
}

/// `start` settings of `c1m flood` (the whole run, not a worker process;
/// on a fleet host, that host's share).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FloodStart {
    pub host: String,
    /// The destination address HOST resolved to.
    pub dest: String,
    pub port: u16,
    pub ports: u16,
    /// `--sources` as given.
    pub sources: Option<String>,
    pub source_count: u64,
    pub connections: u64,
    pub window: u64,
    pub rate: Option<f64>,
    pub connect_timeout_s: f64,
    /// `None`: until Ctrl-C.
    pub hold_s: Option<f64>,
    pub message_interval_s: Option<f64>,
    pub procs: u32,
    /// A fleet host's name (`--host-name`, or the hostname with `--shard`).
    pub host_name: Option<String>,
    /// `--shard K/N`: `connections`, `window`, `rate` (and with
    /// `shard_split` the ports and sources) are then this host's share.
    pub shard: Option<String>,
    pub shard_split: Vec<String>,
    /// Global number of the first connection (a fleet host's offset).
    pub first_k: u64,
    /// `--start-at`, RFC 3339.
    pub start_at: Option<String>,
    /// `--metrics`: the URL Prometheus scrapes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// What the connections speak (`--protocol` and its options).
    pub protocol: ProtocolSettings,
}

/// What a flood's connections speak: `--protocol` and the options that
/// protocol uses (the others are left out), so that analyze and the lab's
/// report can say what the clients spoke.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProtocolSettings {
    /// echo, connect, line, http, websocket, redis, mqtt; empty in a log
    /// written before the field existed (then it was echo).
    pub name: String,
    /// line, websocket: `--message` as given (TEXT or @FILE, `{n}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// line: `--expect` (TEXT or /REGEX/).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// http, websocket: the request path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// http, websocket: extra request headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// mqtt: the client id prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// mqtt: the keep-alive announced in CONNECT, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive_s: Option<f64>,
}

impl ProtocolSettings {
    /// The protocol's name; `echo` for a log older than the field.
    pub fn name(&self) -> &str {
        if self.name.is_empty() {
            "echo"
        } else {
            &self.name
        }
    }

    /// In words: `http (path /health, 1 header)`, `echo`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = &self.message {
            parts.push(format!("message {m:?}"));
        }
        if let Some(e) = &self.expect {
            parts.push(format!("expect {e:?}"));
        }
        if let Some(p) = &self.path {
            parts.push(format!("path {p}"));
        }
        match self.headers.len() {
            0 => {}
            1 => parts.push("1 header".into()),
            n => parts.push(format!("{n} headers")),
        }
        if let Some(p) = &self.prefix {
            parts.push(format!("client ids {p}"));
        }
        if let Some(k) = self.keepalive_s {
            parts.push(format!("keep-alive {k} s"));
        }
        if parts.is_empty() {
            self.name().to_string()
        } else {
            format!("{} ({})", self.name(), parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_unknown_fields_are_ignored() {
        let mut counters = Counters {
            connections: 5,
            ..Default::default()
        };
        counters.errors.insert("EMFILE".into(), 2);
        counters.failures.insert(FailureId::FdLimit, 2);
        let r = Record::now(
            Role::Serve,
            Some(1),
            Event::Interval {
                counters,
                rate: 12.5,
                target: None,
            },
        );
        let mut buf = Vec::new();
        r.emit(&mut buf).unwrap();
        let line = String::from_utf8(buf).unwrap();
        assert!(line.ends_with('\n'));
        assert!(line.contains("\"event\":\"interval\""));
        assert!(line.contains("\"fd_limit\":2"));
        assert_eq!(Record::parse(&line), Some(r));
        let extra = r#"{"ts":1.0,"role":"flood","pid":7,"event":"failure","failure":"connect_timeout","new_field":1}"#;
        let parsed = Record::parse(extra).unwrap();
        assert!(matches!(parsed.event, Event::Failure { count: 1, .. }));
        assert_eq!(
            Record::parse("connections: 999, sockfd:1002, time_used:1241"),
            None
        );
    }

    #[test]
    fn a_flood_start_says_its_protocol_and_an_older_one_reads_as_echo() {
        let old = serde_json::json!({"host": "127.0.0.1", "port": 8888, "connections": 10});
        let s = typed::<FloodStart>(&old).unwrap();
        assert_eq!(
            (s.protocol.name(), s.protocol.describe()),
            ("echo", "echo".to_string())
        );
        let start = FloodStart {
            protocol: ProtocolSettings {
                name: "http".into(),
                path: Some("/health".into()),
                headers: vec!["X-Load: c1m".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let v = serde_json::to_value(&start).unwrap();
        assert_eq!(
            v["protocol"],
            serde_json::json!({"name": "http", "path": "/health", "headers": ["X-Load: c1m"]})
        );
        let back = typed::<FloodStart>(&v).unwrap();
        assert_eq!(back, start);
        assert_eq!(back.protocol.describe(), "http (path /health, 1 header)");
    }

    #[test]
    fn counters_of_several_processes_add_up() {
        let mut a = Counters {
            connections: 3,
            opened_total: 5,
            bytes_in: 10,
            ..Default::default()
        };
        a.errors.insert("EMFILE".into(), 2);
        let mut b = a.clone();
        b.failures.insert(FailureId::FdLimit, 1);
        b.rss_bytes = Some(4096);
        let mut sum = Counters::default();
        sum.add(&a);
        assert_eq!(sum.rss_bytes, None, "no process reported memory");
        sum.add(&b);
        assert_eq!(
            (sum.connections, sum.opened_total, sum.bytes_in),
            (6, 10, 20)
        );
        assert_eq!(sum.errors["EMFILE"], 4);
        assert_eq!(sum.failures[&FailureId::FdLimit], 1);
        assert_eq!(sum.rss_bytes, Some(4096));
    }
}
