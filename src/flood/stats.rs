//! What one flood process measures and hands on: the live snapshot sent at
//! every thousand verified connections and every second, the per-interval
//! failure notes, and the final [`ShardSummary`] with its latency histograms
//! in a mergeable form. Worker processes send these as JSON lines; the
//! parent merges them with [`ShardSummary::merge`] so a sharded run reports
//! exactly what one process would have.
use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::catalogue::FailureId;
use crate::events::Counters;
use crate::metrics::Buckets;

pub use crate::events::Phase;

/// A snapshot of one process's counters (cumulative). A worker sends it to
/// its parent as an interval line (`flood::wire`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(flatten)]
    pub counters: Counters,
    pub in_flight: u64,
    pub attempts: u64,
    /// Descriptor of the connection verified last (the seed's `sockfd`).
    pub last_fd: Option<i32>,
    pub phase: Phase,
    pub target: u64,
    /// Connect latency and echo round trips so far, in the metrics'
    /// buckets (on the once-a-second snapshots only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_latency: Option<Buckets>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_rtt: Option<Buckets>,
}

/// Failures of one class over one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureNote {
    /// Class key: an errno name ("ECONNREFUSED") or one of flood's own
    /// ("ECHO_TIMEOUT", "ECHO_MISMATCH", "EOF").
    pub key: String,
    pub failure: Option<FailureId>,
    pub call: String,
    pub errno: Option<i32>,
    pub count: u64,
    pub detail: String,
}

/// Receives what an engine reports while it runs.
pub trait Sink {
    /// Counters changed: `tick` is true once a second, false at each
    /// thousandth verified connection.
    fn progress(&mut self, snap: &Snapshot, tick: bool);
    /// Failures of one class since the last tick.
    fn failure(&mut self, note: &FailureNote);
    /// A seed-format line about one connection (` Error clientfd:...`).
    fn conn_line(&mut self, line: &str);
}

/// Histograms in microseconds, 1 us .. 1 hour, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    // Constant bounds hdrhistogram accepts (low >= 1, high >= 2 x low,
    // sigfig <= 5): this cannot fail at run time.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

/// A histogram as (value, count) pairs, the form that crosses processes.
pub fn hist_pairs(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Percentiles in milliseconds of a pairs list: the five that wrk and oha
/// show (p50, p90, p99, p99.9 and max).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    #[serde(default)]
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// The names of the values [`Percentiles::human`] shows, in its order.
    pub const NAMES: &str = "p50 / p90 / p99 / p99.9 / max";

    /// The five values for people: `1.23 ms / ... / 9.87 ms`.
    pub fn human(&self) -> String {
        [
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
        ]
        .map(|v| format!("{v:.2} ms"))
        .join(" / ")
    }
}

pub fn percentiles(pairs: &[(u64, u64)]) -> Percentiles {
    let mut h = new_hist();
    for &(v, c) in pairs {
        h.saturating_record_n(v.max(1), c);
    }
    if h.is_empty() {
        return Percentiles::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Percentiles {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}

/// The final account of one process (or, merged, of a whole run). Every
/// field has a default, so a summary written before a field existed parses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShardSummary {
    /// `connections` = verified connections still open at the end,
    /// `opened_total` = connections whose echo came back intact (ever),
    /// `failed_total` = failed attempts (before verification),
    /// `closed_total` = verified connections lost (closed or reset by the
    /// server), `errors` / `failures` = failed attempts and losses by class
    /// key and by catalogue id, `bytes_in` / `bytes_out`; `rss_bytes` is
    /// left out (the writer puts its RSS on the record itself).
    #[serde(flatten)]
    pub counters: Counters,
    pub target: u64,
    pub attempts: u64,
    /// Of the lost ones: reset (ECONNRESET/EPIPE) and ended by EOF.
    pub lost_resets: u64,
    pub lost_eof: u64,
    /// Seconds from start to the end of the connect phase.
    pub connect_s: f64,
    pub elapsed_s: f64,
    pub hold_s: f64,
    /// When (Unix seconds) the connect phase ended and the hold began:
    /// with `--hold-on-signal` (or workers held together) the hold waits
    /// for SIGUSR2 in between. Several processes: the latest of each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ended_unix: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_began_unix: Option<f64>,
    /// Losses during the hold: EOF and resets.
    pub hold_closed: u64,
    pub hold_resets: u64,
    pub messages_sent: u64,
    pub messages_answered: u64,
    pub interrupted: bool,
    /// Why connecting stopped early (process-wide, e.g. fd limit), if so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stops: Vec<String>,
    /// Paths given up, with the class and count reached on each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<Retired>,
    /// Connect latency (connect() to handshake done), microseconds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connect_latency_us: Vec<(u64, u64)>,
    /// Hold-message round trips, microseconds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rtt_us: Vec<(u64, u64)>,
    /// `--reconnect`: what replacing lost connections took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect: Option<super::engine::ReconnectSummary>,
}

/// A path the engine stopped using.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retired {
    pub path: String,
    pub key: String,
    pub failure: Option<FailureId>,
    /// Verified connections the path carried when it was given up.
    pub established: u64,
    pub consecutive: u32,
}

impl ShardSummary {
    /// Add another process's summary into this one.
    pub fn merge(&mut self, o: &ShardSummary) {
        self.counters.add(&o.counters);
        self.target += o.target;
        self.attempts += o.attempts;
        self.lost_resets += o.lost_resets;
        self.lost_eof += o.lost_eof;
        self.connect_s = self.connect_s.max(o.connect_s);
        self.elapsed_s = self.elapsed_s.max(o.elapsed_s);
        self.hold_s = self.hold_s.max(o.hold_s);
        let latest = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.connect_ended_unix = latest(self.connect_ended_unix, o.connect_ended_unix);
        self.hold_began_unix = latest(self.hold_began_unix, o.hold_began_unix);
        self.hold_closed += o.hold_closed;
        self.hold_resets += o.hold_resets;
        self.messages_sent += o.messages_sent;
        self.messages_answered += o.messages_answered;
        self.interrupted |= o.interrupted;
        for s in &o.stops {
            if !self.stops.contains(s) {
                self.stops.push(s.clone());
            }
        }
        self.retired.extend(o.retired.iter().cloned());
        self.connect_latency_us = merge_pairs(&self.connect_latency_us, &o.connect_latency_us);
        self.rtt_us = merge_pairs(&self.rtt_us, &o.rtt_us);
        if let Some(r) = &o.reconnect {
            self.reconnect.get_or_insert_with(Default::default).merge(r);
        }
    }

    /// Connections whose echo came back intact (ever).
    pub fn verified(&self) -> u64 {
        self.counters.opened_total
    }

    /// Verified connections still open at the end.
    pub fn open(&self) -> u64 {
        self.counters.connections
    }

    /// The summary as the `events` counters, with the writer's RSS.
    pub fn counters(&self, rss_bytes: Option<u64>) -> Counters {
        Counters {
            rss_bytes,
            ..self.counters.clone()
        }
    }

    /// Verified connections per second over the connect phase.
    pub fn connect_rate(&self) -> f64 {
        if self.connect_s > 0.0 {
            self.verified() as f64 / self.connect_s
        } else {
            0.0
        }
    }

    /// Did the run do what it was asked: every target connection verified
    /// and still open at the end?
    pub fn success(&self) -> bool {
        self.target > 0 && self.verified() >= self.target && self.open() >= self.target
    }

    /// Why the run did not succeed, in one paragraph with the fix; `None`
    /// on success.
    pub fn reason(&self) -> Option<String> {
        if self.success() {
            return None;
        }
        let t = crate::util::thousands;
        if self.verified() < self.target {
            let mut why = format!(
                "reached {} of {} verified connections",
                t(self.verified()),
                t(self.target)
            );
            if self.interrupted {
                why.push_str("; interrupted by a signal before the target");
            }
            for s in grouped_stops(&self.stops) {
                why.push_str("; ");
                why.push_str(&s);
            }
            why.push_str(&self.retired_text());
            why.push_str(&self.plateau_text());
            if !self.interrupted && self.stops.is_empty() && self.retired.is_empty() {
                why.push_str("; a worker ended before reaching its share");
            }
            return Some(why);
        }
        if !self.stops.is_empty() {
            // Verified, then lost on this side: a worker process died.
            let stops = grouped_stops(&self.stops);
            return Some(format!(
                "{} of {} verified connections were lost: {}; {} open at the end",
                t(self.counters.closed_total),
                t(self.verified()),
                stops.join("; "),
                t(self.open())
            ));
        }
        Some(format!(
            "the server closed {} of {} verified connections ({} reset, {} closed by EOF); {} open at the end",
            t(self.counters.closed_total),
            t(self.verified()),
            t(self.lost_resets),
            t(self.lost_eof),
            t(self.open())
        ))
    }

    /// When the count stopped flat on timeouts (paths are given up for a
    /// timeout only after nothing succeeded on them for a while) at a round
    /// figure: the mark of a configured cap, most often the server's.
    pub fn plateau_text(&self) -> String {
        let timeouts = self
            .retired
            .iter()
            .any(|r| r.key == "ECHO_TIMEOUT" || r.key == "ETIMEDOUT");
        let n = self.verified();
        if !timeouts || n == 0 || !n.is_multiple_of(100) {
            return String::new();
        }
        let t = crate::util::thousands(n);
        format!(
            "; the count stopped at exactly {t}, a round figure: the mark of a configured cap, most likely the server's (c1m serve --max-connections {t} says 'cap reached' in its log; nginx worker_connections, Redis maxclients)"
        )
    }

    /// Retired paths grouped by class, with the fix for each class.
    pub fn retired_text(&self) -> String {
        // (id, distinct paths, verified on them, examples); several
        // processes may have given up the same path.
        type Group<'a> = (Option<FailureId>, u64, u64, Vec<&'a str>);
        let mut by: BTreeMap<&str, Group> = BTreeMap::new();
        let mut seen: std::collections::BTreeSet<(&str, &str)> = Default::default();
        for r in &self.retired {
            let e = by.entry(&r.key).or_insert((r.failure, 0, 0, Vec::new()));
            e.2 += r.established;
            if seen.insert((&r.key, &r.path)) {
                e.1 += 1;
                if e.3.len() < 3 {
                    e.3.push(&r.path);
                }
            }
        }
        let mut out = String::new();
        for (key, (failure, paths, est, examples)) in by {
            let name = failure.map(|f| f.as_str()).unwrap_or("failure");
            out.push_str(&format!(
                "; {name} ({key}): stopped using {paths} path(s) after {} verified connections on them (e.g. {})",
                crate::util::thousands(est),
                examples.join(", ")
            ));
            out.push_str(&format!("; fix: {}", fix_for(failure, key)));
        }
        out
    }
}

/// Stops as said once per cause: `worker N<rest>` lines with the same rest
/// (18 workers that failed alike) become `18 workers (0-17)<rest>`; other
/// lines stay as they are, in their order.
pub fn grouped_stops(stops: &[String]) -> Vec<String> {
    fn split(s: &str) -> Option<(u32, &str)> {
        let t = s.strip_prefix("worker ")?;
        let end = t.find(|c: char| !c.is_ascii_digit())?;
        Some((t[..end].parse().ok()?, &t[end..]))
    }
    let mut groups: Vec<(&str, Vec<u32>, &str)> = Vec::new();
    for s in stops {
        match split(s) {
            Some((w, rest)) => match groups.iter_mut().find(|g| !g.1.is_empty() && g.2 == rest) {
                Some(g) => g.1.push(w),
                None => groups.push((s.as_str(), vec![w], rest)),
            },
            None => groups.push((s.as_str(), Vec::new(), "")),
        }
    }
    groups
        .into_iter()
        .map(|(line, mut workers, rest)| {
            if workers.len() < 2 {
                return line.to_string();
            }
            workers.sort_unstable();
            workers.dedup();
            format!(
                "{} workers ({}){rest}",
                workers.len(),
                crate::util::ranges(&workers)
            )
        })
        .collect()
}

/// The advice printed when a class of failure made flood give up paths.
pub fn fix_for(failure: Option<FailureId>, key: &str) -> String {
    match failure {
        Some(FailureId::EphemeralPortsExhausted) => format!(
            "add source addresses (--sources 127.0.0.2-127.0.0.40, bound with IP_BIND_ADDRESS_NO_PORT), connect to more server ports (--ports), or widen net.ipv4.ip_local_port_range (now {}); check with `c1m doctor --role client`",
            local_port_range().unwrap_or_else(|| "unknown".into())
        ),
        Some(FailureId::ConnectionRefused) => {
            "nothing listens on those ports: start the server on every port of PORT..PORT+--ports-1".into()
        }
        // Connected, nothing answered: the server's kernel finished the
        // handshake, its program never took the connection.
        Some(FailureId::ConnectTimeout) if key == "ECHO_TIMEOUT" => {
            "connected, but nothing answered: the server did not accept these connections; most likely it stopped at a connection cap of its own (c1m serve --max-connections says 'cap reached' in its log; nginx worker_connections, Redis maxclients), else its accept loop stalled: see the server's log, and `c1m analyze` on both logs".into()
        }
        Some(FailureId::ConnectTimeout) => {
            "the server's accept queue, conntrack table or accept loop dropped handshakes, or the server stopped accepting at a connection cap of its own (c1m serve --max-connections says 'cap reached' in its log) and its accept queue filled: see `c1m analyze` on the server's log, kernel log and counters, and `c1m doctor --role server`".into()
        }
        Some(FailureId::FdLimit) => {
            "raise RLIMIT_NOFILE or use more processes (--procs auto)".into()
        }
        Some(f) => f.info().fix.to_string(),
        None => format!(
            "{key}: check that the server answers as --protocol expects (echo, the default: every line back byte for byte)"
        ),
    }
}

/// This namespace's `net.ipv4.ip_local_port_range`, "low high".
pub fn local_port_range() -> Option<String> {
    let t = crate::sys::sysctl::Sysctl::proc()
        .read("net.ipv4.ip_local_port_range")
        .ok()?;
    Some(crate::sys::sysctl::squash(&t))
}

fn merge_pairs(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut m: BTreeMap<u64, u64> = a.iter().copied().collect();
    for &(v, c) in b {
        *m.entry(v).or_default() += c;
    }
    m.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_summaries_add_counts_and_histograms() {
        let mut h = new_hist();
        for v in 1..=100u64 {
            h.record(v * 1000).unwrap();
        }
        let a = ShardSummary {
            target: 10,
            counters: Counters {
                connections: 10,
                opened_total: 10,
                ..Default::default()
            },
            connect_s: 2.0,
            connect_latency_us: hist_pairs(&h),
            ..Default::default()
        };
        let mut b = a.clone();
        b.counters.connections = 7;
        b.counters.closed_total = 3;
        b.counters.errors.insert("EOF".into(), 3);
        b.connect_ended_unix = Some(100.5);
        b.hold_began_unix = Some(101.0);
        let mut m = ShardSummary::default();
        m.merge(&a);
        m.merge(&b);
        assert_eq!((m.target, m.verified(), m.open()), (20, 20, 17));
        // The latest worker's end of connecting and start of the hold.
        assert_eq!(
            (m.connect_ended_unix, m.hold_began_unix),
            (Some(100.5), Some(101.0))
        );
        let mut c = a.clone();
        c.connect_ended_unix = Some(102.0);
        let mut m3 = m.clone();
        m3.merge(&c);
        assert_eq!(
            (m3.connect_ended_unix, m3.hold_began_unix),
            (Some(102.0), Some(101.0))
        );
        assert_eq!(m.connect_rate(), 10.0);
        let p = percentiles(&m.connect_latency_us);
        assert_eq!(p.count, 200);
        assert!((p.p50_ms - 50.0).abs() < 0.1, "{p:?}");
        assert!((p.p90_ms - 90.0).abs() < 0.1, "{p:?}");
        assert!((p.p99_ms - 99.0).abs() < 0.1, "{p:?}");
        assert!((p.max_ms - 100.0).abs() < 0.1, "{p:?}");
        assert!(!m.success());
        assert!(m.reason().unwrap().contains("closed 3 of 20"));
        assert!(a.success() && a.reason().is_none());
    }

    #[test]
    fn a_killed_worker_s_connections_are_lost_not_closed_by_the_server() {
        // Everything verified, then a worker died holding 30 of them.
        let mut s = ShardSummary {
            target: 100,
            ..Default::default()
        };
        s.counters.opened_total = 100;
        s.counters.connections = 70;
        s.counters.closed_total = 30;
        s.stops
            .push("worker 1 ended (killed by SIGKILL) without a summary; what it verified was lost with it".into());
        assert!(!s.success());
        let why = s.reason().unwrap();
        assert!(
            why.starts_with(
                "30 of 100 verified connections were lost: worker 1 ended (killed by SIGKILL)"
            ),
            "{why}"
        );
        assert!(!why.contains("the server closed"), "{why}");
    }

    #[test]
    fn alike_stops_of_many_workers_are_said_once() {
        let mut stops: Vec<String> = (0..18)
            .map(|w| format!("worker {w}: --sources: 10.0.0.1 is not on this host"))
            .collect();
        stops.push("socket() failed with EMFILE".into());
        stops.push("worker 3 exited (signal: 9) without a summary".into());
        let said = grouped_stops(&stops);
        assert_eq!(
            said,
            [
                "18 workers (0-17): --sources: 10.0.0.1 is not on this host",
                "socket() failed with EMFILE",
                "worker 3 exited (signal: 9) without a summary",
            ]
        );
    }

    #[test]
    fn echo_timeouts_at_a_flat_round_count_point_at_a_server_cap() {
        let mut s = ShardSummary {
            target: 300,
            counters: Counters {
                connections: 200,
                opened_total: 200,
                ..Default::default()
            },
            ..Default::default()
        };
        s.retired.push(Retired {
            path: "127.0.0.1:10000".into(),
            key: "ECHO_TIMEOUT".into(),
            failure: Some(FailureId::ConnectTimeout),
            established: 200,
            consecutive: 64,
        });
        let why = s.reason().unwrap();
        assert!(
            why.contains("stopped at exactly 200, a round figure"),
            "{why}"
        );
        assert!(why.contains("--max-connections"), "{why}");
        assert!(
            why.contains("connected, but nothing answered"),
            "echo timeouts say the server did not accept: {why}"
        );
        // Not round: no plateau sentence, but the fix still names the cap.
        s.counters.opened_total = 187;
        let why = s.reason().unwrap();
        assert!(!why.contains("round figure"), "{why}");
        assert!(why.contains("cap of its own"), "{why}");
        // Refused paths are no plateau of a cap.
        s.counters.opened_total = 200;
        s.retired[0].key = "ECONNREFUSED".into();
        s.retired[0].failure = Some(FailureId::ConnectionRefused);
        assert!(!s.reason().unwrap().contains("round figure"));
        // Plain connect timeouts name the cap among the causes.
        assert!(fix_for(Some(FailureId::ConnectTimeout), "ETIMEDOUT").contains("cap of its own"));
    }

    #[test]
    fn p999_sits_between_p99_and_max_and_people_see_all_five() {
        // 1 ms x 998, 500 ms once, 900 ms once: p99 is 1 ms, p99.9 the
        // 999th value (500 ms), max the 1000th.
        let pairs = vec![(1000, 998), (500_000, 1), (900_000, 1)];
        let p = percentiles(&pairs);
        assert_eq!(p.count, 1000);
        assert!((p.p99_ms - 1.0).abs() < 0.01, "{p:?}");
        assert!((p.p999_ms - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.max_ms - 900.0).abs() < 1.0, "{p:?}");
        let text = p.human();
        assert_eq!(text.split(" / ").count(), 5, "{text}");
        assert!(
            text.starts_with("1.00 ms / 1.00 ms / 1.00 ms / 500."),
            "{text}"
        );
        assert!(text.ends_with(" ms") && text.contains("/ 900."), "{text}");
        let json = serde_json::to_value(&p).expect("json");
        for key in ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"] {
            assert!(json[key].is_f64(), "{key} missing in {json}");
        }
    }
}
