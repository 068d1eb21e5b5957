//! `--metrics ADDR:PORT`: the OpenMetrics view of a running `serve` or
//! `flood`, for Prometheus. It owns what a supervising process publishes
//! ([`Figures`]: its workers' or shards' counters, already summed from the
//! typed wire), how those figures and the kernel's counters become metric
//! families (through the `prometheus-client` crate's registry and encoder,
//! never a hand-written format), and the endpoint that serves them
//! ([`endpoint`]: a thread of its own with its own listener).
//!
//! The supervising process is the only one that serves: worker processes
//! never know about metrics, and an event loop never waits on a scrape. The
//! supervisor [`Endpoint::publish`]es a fresh [`Figures`] once per stats
//! interval (a short lock and a move); a scrape clones the last one and
//! reads the kernel's counters (`sys::procfs`, `sys::sysctl`) then, at
//! scrape time.
//!
//! Every series carries `role` (`serve` or `flood`) and `host`; flood's
//! carry `shard` (its fleet shard `K/N`, `1/1` when it has none).
pub mod endpoint;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::events::{Counters, Role};

pub use endpoint::Endpoint;

/// Upper bounds, in seconds, of the connect-latency and echo-RTT
/// histograms' buckets (an implicit `+Inf` follows): 100 us (loopback) to
/// 3 s (the first SYN retransmission is at 1 s, the second at 3 s).
pub const LATENCY_BOUNDS_S: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0,
];

/// A latency histogram in [`LATENCY_BOUNDS_S`] buckets: what crosses from
/// a flood process to its parent once a second (cumulative since the
/// start, so the parent keeps the latest of each process and adds them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Buckets {
    /// Observations per bucket (not cumulative), the last one for `+Inf`;
    /// `LATENCY_BOUNDS_S.len() + 1` entries, or none at all.
    pub counts: Vec<u64>,
    /// Sum of the observations, seconds.
    pub sum_s: f64,
}

impl Buckets {
    /// The buckets of a histogram recorded in microseconds.
    pub fn from_hist_us(h: &Histogram<u64>) -> Buckets {
        let mut b = Buckets {
            counts: vec![0; LATENCY_BOUNDS_S.len() + 1],
            sum_s: 0.0,
        };
        for v in h.iter_recorded() {
            let us = v.value_iterated_to();
            let n = v.count_at_value();
            b.add_us(us, n);
        }
        b
    }

    fn add_us(&mut self, us: u64, n: u64) {
        let s = us as f64 / 1e6;
        let i = LATENCY_BOUNDS_S
            .iter()
            .position(|&le| s <= le)
            .unwrap_or(LATENCY_BOUNDS_S.len());
        self.counts[i] += n;
        self.sum_s += s * n as f64;
    }

    /// Add another process's buckets into these.
    pub fn add(&mut self, o: &Buckets) {
        if o.counts.is_empty() {
            return;
        }
        if self.counts.len() != o.counts.len() {
            self.counts = vec![0; o.counts.len()];
        }
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.sum_s += o.sum_s;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// What a supervising process publishes: its processes' figures summed.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Summed counters; `rss_bytes` is the processes' resident memory.
    pub counters: Counters,
    /// Most connections open at once.
    pub peak: u64,
    /// flood: connection attempts started (`c1m_connects_total`).
    pub attempts: Option<u64>,
    /// The connections asked for (flood's target, serve's
    /// `--max-connections`).
    pub target: Option<u64>,
    /// Worker processes by state ("running", "starting", "exited"...).
    pub workers: BTreeMap<&'static str, u64>,
    /// User memory per connection (serve: RSS above the workers' empty
    /// baselines; flood: whole RSS), bytes.
    pub user_bytes_per_connection: Option<f64>,
    /// The highest share of its RLIMIT_NOFILE that one process uses.
    pub fd_use_ratio: Option<f64>,
    /// serve: every worker at its share and none left to start.
    pub cap_reached: Option<bool>,
    /// flood: connect latency and echo round trips.
    pub connect_latency: Option<Buckets>,
    pub echo_rtt: Option<Buckets>,
}

/// The labels on every series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    pub role: Role,
    pub host: String,
    /// flood only.
    pub shard: Option<String>,
}

impl Labels {
    /// This host's labels for `role`: `host` is `name` or else the
    /// hostname.
    pub fn new(role: Role, name: Option<&str>, shard: Option<&str>) -> Labels {
        let host = name.map(str::to_string).unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into())
        });
        Labels {
            role,
            host,
            shard: match role {
                Role::Flood => Some(shard.unwrap_or("1/1").to_string()),
                _ => shard.map(str::to_string),
            },
        }
    }

    fn pairs(&self) -> Vec<(Cow<'static, str>, Cow<'static, str>)> {
        let role = match self.role {
            Role::Serve => "serve",
            Role::Flood => "flood",
            Role::Lab => "lab",
        };
        let mut v = vec![
            (Cow::Borrowed("role"), Cow::Borrowed(role)),
            (Cow::Borrowed("host"), Cow::Owned(self.host.clone())),
        ];
        if let Some(s) = &self.shard {
            v.push((Cow::Borrowed("shard"), Cow::Owned(s.clone())));
        }
        v
    }
}

/// The kernel's counters that explain failures, read at scrape time from
/// this process's network namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kernel {
    pub listen_overflows: Option<u64>,
    pub listen_drops: Option<u64>,
    pub tcp_timeouts: Option<u64>,
    pub tcp_abort_on_memory: Option<u64>,
    pub conntrack_count: Option<u64>,
    pub conntrack_max: Option<u64>,
    pub sockets_inuse: Option<u64>,
    pub sockets_orphan: Option<u64>,
    pub sockets_tw: Option<u64>,
    pub file_handles: Option<u64>,
    pub file_max: Option<u64>,
}

impl Kernel {
    /// Read them now; what cannot be read (conntrack not loaded) is `None`.
    pub fn read() -> Kernel {
        let net = crate::sys::procfs::net_counters().unwrap_or_default();
        let get = |k: &str| net.get(k).copied();
        let ss = crate::sys::procfs::sockstat_tcp().unwrap_or_default();
        let sysctl = crate::sys::sysctl::Sysctl::proc();
        let file_nr = sysctl.read("fs.file-nr").ok();
        let file_nr: Vec<u64> = file_nr
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        Kernel {
            listen_overflows: get("TcpExtListenOverflows"),
            listen_drops: get("TcpExtListenDrops"),
            tcp_timeouts: get("TcpExtTCPTimeouts"),
            tcp_abort_on_memory: get("TcpExtTCPAbortOnMemory"),
            conntrack_count: sysctl.read_u64("net.netfilter.nf_conntrack_count"),
            conntrack_max: sysctl.read_u64("net.netfilter.nf_conntrack_max"),
            sockets_inuse: ss.inuse,
            sockets_orphan: ss.orphan,
            sockets_tw: ss.tw,
            file_handles: file_nr.first().copied(),
            file_max: file_nr.get(2).copied(),
        }
    }
}

/// The figures as metric families: the registry's collector.
#[derive(Debug)]
struct FiguresCollector {
    figures: Figures,
    kernel: Kernel,
    role: Role,
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge<V>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: V,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<V>: EncodeMetric,
{
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn histogram(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    b: &Buckets,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    let mut pairs: Vec<(f64, u64)> = LATENCY_BOUNDS_S
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .map(|le| (le, 0))
        .collect();
    for (p, c) in pairs.iter_mut().zip(&b.counts) {
        p.1 = *c;
    }
    m.encode_histogram::<NoLabelSet>(b.sum_s, b.count(), &pairs, None)
}

impl FiguresCollector {
    fn encode_run(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let f = &self.figures;
        let c = &f.counters;
        gauge(
            enc,
            "c1m_connections",
            "Connections open now (serve: accepted; flood: verified).",
            c.connections as i64,
        )?;
        gauge(
            enc,
            "c1m_connections_peak",
            "Most connections open at once since the start.",
            f.peak as i64,
        )?;
        match self.role {
            Role::Flood => {
                counter(
                    enc,
                    "c1m_connects",
                    "Connection attempts started.",
                    f.attempts.unwrap_or(0),
                )?;
                counter(
                    enc,
                    "c1m_verified",
                    "Connections whose first echo came back intact.",
                    c.opened_total,
                )?;
            }
            _ => counter(enc, "c1m_accepts", "Connections accepted.", c.opened_total)?,
        }
        counter(
            enc,
            "c1m_closed",
            "Connections closed (by the peer, by errors or by us).",
            c.closed_total,
        )?;
        if let Some(t) = f.target {
            gauge(
                enc,
                "c1m_target_connections",
                "Connections asked for (flood: its target; serve: --max-connections).",
                t as i64,
            )?;
        }
        let mut fam = enc.encode_descriptor(
            "c1m_failures",
            "Failures by catalogue id, the ids c1m analyze uses.",
            None,
            MetricType::Counter,
        )?;
        for (id, n) in &c.failures {
            let labels = [("failure", id.as_str())];
            ConstCounter::new(*n).encode(fam.encode_family(&labels)?)?;
        }
        let mut fam = enc.encode_descriptor(
            "c1m_echo_bytes",
            "Echo payload bytes, by direction (in: received, out: sent).",
            None,
            MetricType::Counter,
        )?;
        for (dir, n) in [("in", c.bytes_in), ("out", c.bytes_out)] {
            ConstCounter::new(n).encode(fam.encode_family(&[("direction", dir)])?)?;
        }
        let mut fam = enc.encode_descriptor(
            "c1m_workers",
            "Worker processes by state.",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in &f.workers {
            ConstGauge::new(*n as i64).encode(fam.encode_family(&[("state", *state)])?)?;
        }
        if let Some(b) = f.user_bytes_per_connection {
            gauge(
                enc,
                "c1m_user_bytes_per_connection",
                "User-space memory per open connection, bytes.",
                b,
            )?;
        }
        gauge(
            enc,
            "c1m_process_resident_bytes",
            "Resident memory of the run's processes, bytes.",
            c.rss_bytes.unwrap_or(0) as i64,
        )?;
        if let Some(r) = f.fd_use_ratio {
            gauge(
                enc,
                "c1m_fd_use_ratio",
                "The highest share of its RLIMIT_NOFILE one process uses (0..1).",
                r,
            )?;
        }
        if let Some(cap) = f.cap_reached {
            gauge(
                enc,
                "c1m_cap_reached",
                "1 when serve holds --max-connections: every worker at its share, none left to start.",
                i64::from(cap),
            )?;
        }
        if let Some(b) = &f.connect_latency {
            histogram(
                enc,
                "c1m_connect_latency_seconds",
                "Time from connect() to the handshake's completion.",
                b,
            )?;
        }
        if let Some(b) = &f.echo_rtt {
            histogram(
                enc,
                "c1m_echo_rtt_seconds",
                "Round trip of a hold message and its echo.",
                b,
            )?;
        }
        Ok(())
    }

    fn encode_kernel(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let k = &self.kernel;
        let counters = [
            (
                "c1m_kernel_listen_overflows",
                "TcpExtListenOverflows: SYNs or handshakes dropped because an accept queue was full.",
                k.listen_overflows,
            ),
            (
                "c1m_kernel_listen_drops",
                "TcpExtListenDrops: connections dropped at a listener for any reason.",
                k.listen_drops,
            ),
            (
                "c1m_kernel_tcp_timeouts",
                "TcpExtTCPTimeouts: retransmission timeouts.",
                k.tcp_timeouts,
            ),
            (
                "c1m_kernel_tcp_abort_on_memory",
                "TcpExtTCPAbortOnMemory: connections reset under TCP memory pressure or orphan limits.",
                k.tcp_abort_on_memory,
            ),
        ];
        for (name, help, v) in counters {
            if let Some(v) = v {
                counter(enc, name, help, v)?;
            }
        }
        let gauges = [
            (
                "c1m_kernel_nf_conntrack_entries",
                "nf_conntrack_count: connections the conntrack table holds.",
                k.conntrack_count,
            ),
            (
                "c1m_kernel_nf_conntrack_entries_limit",
                "nf_conntrack_max: the conntrack table's size.",
                k.conntrack_max,
            ),
            (
                "c1m_kernel_tcp_sockets_inuse",
                "TCP sockets in use (net/sockstat).",
                k.sockets_inuse,
            ),
            (
                "c1m_kernel_tcp_sockets_orphan",
                "Orphaned TCP sockets (net/sockstat).",
                k.sockets_orphan,
            ),
            (
                "c1m_kernel_tcp_sockets_timewait",
                "TCP sockets in TIME_WAIT (net/sockstat).",
                k.sockets_tw,
            ),
            (
                "c1m_kernel_file_handles",
                "File handles allocated system-wide (fs.file-nr).",
                k.file_handles,
            ),
            ("c1m_kernel_file_handles_limit", "fs.file-max.", k.file_max),
        ];
        for (name, help, v) in gauges {
            if let Some(v) = v {
                gauge(enc, name, help, v as i64)?;
            }
        }
        Ok(())
    }
}

impl Collector for FiguresCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_run(&mut enc)?;
        self.encode_kernel(&mut enc)
    }
}

/// The exposition formats a scraper may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (what Prometheus asks for).
    OpenMetrics,
    /// Prometheus text 0.0.4 (curl, `promtool check metrics`).
    Prometheus,
}

impl Format {
    /// The Content-Type of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The text of `figures` and `kernel` in `format`, with `labels` on every
/// series.
pub fn render(labels: &Labels, figures: Figures, kernel: Kernel, format: Format) -> String {
    let mut registry = Registry::with_labels(labels.pairs().into_iter());
    registry.register_collector(Box::new(FiguresCollector {
        figures,
        kernel,
        role: labels.role,
    }));
    let mut out = String::with_capacity(8 * 1024);
    let res = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
    };
    if res.is_err() {
        // Writing to a String cannot fail; an encoder error would be ours.
        out.clear();
        if format == Format::OpenMetrics {
            out.push_str("# EOF\n");
        }
    }
    out
}

/// Figures shared between the supervisor (writer) and the endpoint's
/// thread (reader).
#[derive(Debug, Default, Clone)]
pub struct Shared(Arc<Mutex<Figures>>);

impl Shared {
    pub fn set(&self, f: Figures) {
        // A poisoned lock only means a scrape panicked mid-read: the
        // figures themselves are whole.
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *g = f;
    }

    pub fn get(&self) -> Figures {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::FailureId;

    #[test]
    fn figures_render_as_openmetrics_with_the_documented_names() {
        let mut c = Counters {
            connections: 20_000,
            opened_total: 20_100,
            closed_total: 100,
            bytes_in: 10,
            bytes_out: 12,
            rss_bytes: Some(1 << 20),
            ..Default::default()
        };
        c.failures.insert(FailureId::ConnectionRefused, 3);
        let mut h = crate::flood::stats::new_hist();
        h.record(80).unwrap(); // 80 us
        h.record(2_000_000).unwrap(); // 2 s
        h.record(5_000_000).unwrap(); // 5 s: +Inf
        let f = Figures {
            counters: c,
            peak: 20_000,
            attempts: Some(20_103),
            target: Some(20_000),
            workers: [("running", 2)].into_iter().collect(),
            connect_latency: Some(Buckets::from_hist_us(&h)),
            ..Default::default()
        };
        let labels = Labels::new(Role::Flood, Some("client-1"), Some("2/3"));
        let kernel = Kernel {
            listen_overflows: Some(7),
            conntrack_count: None,
            ..Default::default()
        };
        let text = render(&labels, f.clone(), kernel.clone(), Format::OpenMetrics);
        let l = r#"{role="flood",host="client-1",shard="2/3"}"#;
        for want in [
            format!("c1m_connections{l} 20000"),
            format!("c1m_verified_total{l} 20100"),
            format!("c1m_connects_total{l} 20103"),
            format!(
                "c1m_failures_total{},failure=\"connection_refused\"}} 3",
                &l[..l.len() - 1]
            ),
            format!(
                "c1m_echo_bytes_total{},direction=\"out\"}} 12",
                &l[..l.len() - 1]
            ),
            format!("c1m_kernel_listen_overflows_total{l} 7"),
            "# TYPE c1m_connect_latency_seconds histogram".to_string(),
            format!("c1m_connect_latency_seconds_count{l} 3"),
            format!(
                "c1m_connect_latency_seconds_bucket{},le=\"0.0001\"}} 1",
                &l[..l.len() - 1]
            ),
            format!(
                "c1m_connect_latency_seconds_bucket{},le=\"3.0\"}} 2",
                &l[..l.len() - 1]
            ),
            format!(
                "c1m_connect_latency_seconds_bucket{},le=\"+Inf\"}} 3",
                &l[..l.len() - 1]
            ),
        ] {
            assert!(text.contains(&want), "missing {want} in\n{text}");
        }
        assert!(!text.contains("nf_conntrack"), "not loaded: not shown");
        assert!(!text.contains("c1m_accepts"), "serve's counter on flood");
        assert!(text.ends_with("# EOF\n"), "{text}");
        // The Prometheus text format names each family as its samples.
        let text = render(&labels, f, kernel, Format::Prometheus);
        assert!(text.contains("# TYPE c1m_verified_total counter"), "{text}");
        assert!(
            text.contains(&format!("c1m_verified_total{l} 20100")),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn buckets_of_several_processes_add_up() {
        let mut h = crate::flood::stats::new_hist();
        h.record(300).unwrap();
        let a = Buckets::from_hist_us(&h);
        let mut sum = Buckets::default();
        sum.add(&a);
        sum.add(&a);
        sum.add(&Buckets::default());
        assert_eq!(sum.count(), 2);
        assert_eq!(sum.counts[2], 2, "0.25 ms < 0.3 ms <= 0.5 ms");
        assert!((sum.sum_s - 0.0006).abs() < 1e-6, "{}", sum.sum_s);
    }
}
