//! `c1m lab`: the seed's whole experiment (one server, several clients, a
//! hold with echo traffic, then the analysis) on one machine, with a report.
//!
//! The lab is a supervisor. It checks the host with doctor's capacity
//! estimate, optionally applies the lab profile (and always rolls it back),
//! starts `c1m serve` and `--clients` copies of `c1m flood` as worker
//! processes of this binary (each client with its own block of source
//! addresses, 127.0.K.x, so the logs read like separate hosts, or its block
//! of the `--sources` list given: [`client_sources`]), tees every
//! line they print into the report folder, and samples the kernel (counters,
//! memory, new kernel log lines) before, at the peak and after. When the
//! clients have held their connections it stops the server, writes
//! `report.json` and `report.md`, and hands the folder to `analyze`.
//!
//! By default the lab runs inside a private network namespace when it can
//! (root): `net.*` sysctls, loopback, TCP counters and conntrack are then the
//! lab's own, so `--apply` never touches the host's network settings and the
//! counters show only the lab's traffic. `fs.*` keys are global either way.
//!
//! - [`preflight`]: the namespace, the applied profile and the capacity
//!   check, before anything starts.
//! - [`run`](mod@run): serve, the clients, the hold and the teardown, and the
//!   figures derived from what they said.
//! - [`report`](mod@report): report.json and report.md.
//! - [`faults`](mod@faults): `--fault`, one fault injected during the
//!   hold, and the hold's account of what was lost.
//! - [`hosts`](mod@hosts): `--hosts`, the same experiment between namespace
//!   hosts (a server and client hosts on a bridge), and `--cleanup`.
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::sys::probe::{CounterSet, Memory};

pub mod faults;
pub mod hosts;
mod preflight;
mod report;
mod run;

pub use crate::harness::server::ServerKind;
pub use preflight::{
    AppliedProfile, EhashChoice, Preflight, capacity_for, ehash_for, enter_netns, parse_ehash,
    preflight, ramp_bound_for,
};
pub use report::markdown;
pub use run::run;

/// Whether to run in a private network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetnsMode {
    /// A private namespace when this process may create one, else the host's.
    Auto,
    /// A private namespace, or fail.
    On,
    /// The host's network namespace.
    Off,
}

/// What the user asked of the lab.
#[derive(Debug, Clone, Serialize)]
pub struct LabConfig {
    pub target: u64,
    pub clients: u32,
    pub ports: u16,
    pub base_port: u16,
    pub hold: Duration,
    pub message_interval: Option<Duration>,
    pub sources_per_client: u32,
    /// `--sources` as an address list: client K binds the K-th block of it
    /// (else 127.0.K.1-`sources_per_client`; see [`client_sources`]).
    pub source_list: Option<Vec<IpAddr>>,
    pub apply: bool,
    pub force: bool,
    pub netns: NetnsMode,
    pub report_root: PathBuf,
    /// Give up when the target is not reached within this time.
    pub deadline: Duration,
    /// Print JSON lines of progress instead of human lines.
    pub json: bool,
    /// `--metrics`: listening sockets bound on the host's loopback before
    /// the lab moved into its namespace, with their URLs: serve's first,
    /// then client 1..N's. Empty: no metrics.
    pub metrics: Vec<(String, std::os::fd::RawFd)>,
    /// The server: c1m serve, or a real one (`--server`).
    pub server: crate::harness::server::ServerKind,
    /// What the clients speak to a `--server` command line.
    pub protocol: crate::flood::proto::Protocol,
    /// serve --defer-accept (TCP_DEFER_ACCEPT on the listeners).
    pub defer_accept: bool,
    /// serve --fast-open and flood --fast-open (TCP Fast Open; the lab's
    /// namespace gets net.ipv4.tcp_fastopen = 3, see [`enable_fast_open`]).
    pub fast_open: bool,
    /// flood --separate-handshake-ack.
    pub separate_handshake_ack: bool,
    /// Stop ramping when usable memory (MemAvailable minus what the open
    /// sockets pin: [`crate::tuning::capacity::usable_memory`]) falls below
    /// this many bytes (`--target max`, or the hidden `--mem-floor-mib`).
    pub mem_floor: Option<u64>,
    /// `--target max`: ramp to the host's ceiling. Set before the preflight
    /// (which then does not refuse a target past doctor's estimate); the
    /// target and [`LabConfig::max_plan`] come after it.
    pub max: bool,
    /// `--target max`: what the ramp aims at and doctor's estimate.
    pub max_plan: Option<MaxPlan>,
    /// `--fault`: one fault injected during the hold.
    pub fault: Option<faults::Fault>,
    /// `--loss-percent`: the share of packets `--fault loss` drops.
    pub loss_percent: u8,
    /// `--reconnect`: the clients replace lost connections with this
    /// backoff.
    #[serde(skip)]
    pub reconnect: Option<crate::flood::engine::Backoff>,
}

/// One client's outcome, from its summary line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientResult {
    pub index: u32,
    pub sources: String,
    pub target: u64,
    /// Connections verified toward its share, once each (replacements not
    /// counted: see `reconnected`).
    pub established: u64,
    /// Replacements verified for connections lost during the hold
    /// (`--reconnect`).
    #[serde(skip_serializing_if = "is_zero")]
    pub reconnected: u64,
    pub peak_connections: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    pub exit_code: Option<i32>,
    pub rss_bytes: Option<u64>,
    /// What it spoke: its start line's `protocol` (name and options).
    pub protocol: Option<crate::events::ProtocolSettings>,
    /// Everything else the client's summary said (latency, RTT...).
    pub details: serde_json::Value,
}

/// Everything the lab measured. Field names are stable (report.json).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LabReport {
    pub started: String,
    pub report_dir: String,
    pub private_netns: bool,
    pub target: u64,
    pub reached: bool,
    pub verified: u64,
    /// Replacements the clients verified after losses during the hold
    /// (`--reconnect`), apart from `verified`.
    #[serde(skip_serializing_if = "is_zero")]
    pub reconnected: u64,
    pub peak_connections: u64,
    /// When the clients were started (Unix seconds): time to target counts
    /// from here, so a bench can line its own samples up with the ramp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp_started_unix: Option<f64>,
    pub time_to_target_s: Option<f64>,
    pub connect_rate_per_s: Option<f64>,
    pub elapsed_s: f64,
    pub server_workers: u64,
    /// What the clients spoke, in words (`echo`, `http (path /)`), from
    /// their start lines; each client's own is in `clients[].protocol`.
    pub protocol: Option<String>,
    pub server_peak_connections: u64,
    pub server_rss_bytes: Option<u64>,
    pub server_user_bytes_per_connection: Option<f64>,
    pub client_rss_bytes: Option<u64>,
    pub client_user_bytes_per_connection: Option<f64>,
    pub kernel_bytes_per_connection: Option<f64>,
    pub slab_bytes_per_connection: Option<f64>,
    pub memory_before: Memory,
    pub memory_peak: Memory,
    /// Worst client's percentiles (p50_ms, p99_ms, max_ms...).
    pub rtt_ms: BTreeMap<String, f64>,
    pub connect_latency_ms: BTreeMap<String, f64>,
    pub clients: Vec<ClientResult>,
    pub failures: BTreeMap<String, u64>,
    /// Counters that moved from the start to the end of the hold.
    pub counters: CounterSet,
    /// Counters that moved while the clients closed everything (after the
    /// hold): kept apart, since a mass close is not the run.
    pub teardown_counters: CounterSet,
    pub kernel_lines: Vec<String>,
    pub notes: Vec<String>,
    pub applied_profile: bool,
    /// Set when the ramp stopped at a limit before the target
    /// (`--target max`: the host's ceiling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<Ceiling>,
    /// `--metrics`: the endpoints of serve and of each client (URLs).
    pub metrics_endpoints: Vec<String>,
    /// What `c1m analyze` found in the run's logs (logs/).
    pub findings: Vec<crate::diagnosis::classify::Finding>,
    /// The hold's account: alive at its end, lost during it by cause.
    pub hold: Option<faults::HoldReport>,
    /// `--fault`: what was injected and what it cost.
    pub fault: Option<faults::FaultReport>,
    /// analyze's human report, printed by the command.
    #[serde(skip)]
    pub analysis: String,
}

/// `--target max`: the bound the ramp aims at, and doctor's estimate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MaxPlan {
    /// doctor's capacity estimate (its calibrated, conservative memory
    /// cost per socket): the ramp goes past it while memory allows.
    pub estimate: u64,
    /// doctor's capacity sentences for the lab.
    pub doctor: String,
    /// The limit that bounds the ramp ([`limit_name`]): memory at the least
    /// a socket can cost, or a limit that binds before it.
    pub bound_limit: String,
    /// How that bound was computed (doctor's row).
    pub bound_detail: String,
}

/// Where a ramp toward the host's ceiling stopped, and the evidence.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ceiling {
    /// The limit that bound: `memory` (usable memory reached the floor), or
    /// from the clients' failures (see [`binding_limit`]), or the ramp's
    /// bound when it was reached ([`MaxPlan`]): `file-max`, `ports`,
    /// `conntrack`, `fd limit`, `epoll watches`.
    pub limit: String,
    /// Connections the clients verified up to the stop, those in flight
    /// when they were told to stop included: what the lab then held.
    pub connections: u64,
    /// Seconds from the clients' start to the stop.
    pub time_s: Option<f64>,
    pub mem_available_bytes: u64,
    /// MemAvailable minus the reclaimable slab the open sockets pin (their
    /// inodes and dentries): what the floor is checked against.
    pub usable_bytes: u64,
    pub floor_bytes: u64,
    /// Kernel memory per connection at the stop (as the report's: from
    /// MemAvailable, which leaves out the pinned slab).
    pub kernel_bytes_per_connection: Option<f64>,
    /// Slab per connection at the stop (as the report's): all of it.
    pub slab_bytes_per_connection: Option<f64>,
    /// doctor's capacity estimate for this host (the row that gave the
    /// ceiling the ramp aimed at).
    pub doctor: Option<String>,
    /// A limit other than memory: the failures that name it, or the bound
    /// the ramp reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// One sentence about where the ramp stopped, with its evidence.
pub fn ceiling_sentence(c: &Ceiling) -> String {
    let mib = |b: u64| crate::util::thousands(b >> 20);
    let memory = match &c.evidence {
        None => format!(
            "usable memory {} MiB, below the floor of {} MiB: MemAvailable {} MiB minus {} MiB of socket inodes and dentries that the open sockets pin",
            mib(c.usable_bytes),
            mib(c.floor_bytes),
            mib(c.mem_available_bytes),
            mib(c.mem_available_bytes.saturating_sub(c.usable_bytes))
        ),
        Some(e) => format!(
            "{e}; usable memory {} MiB, above the floor of {} MiB",
            mib(c.usable_bytes),
            mib(c.floor_bytes)
        ),
    };
    // MemAvailable moves by less than the processes' RSS at small targets:
    // a figure of 0 is no measurement.
    let per = |v: Option<f64>| match v {
        Some(k) if k > 0.0 => format!("{k:.0} B"),
        _ => "not measured".to_string(),
    };
    format!(
        "Ceiling: {} bound at {} verified connections{} ({memory}; per connection: kernel memory {} from MemAvailable, slab {}){}",
        c.limit,
        crate::util::thousands(c.connections),
        c.time_s
            .map(|t| format!(" after {t:.1} s"))
            .unwrap_or_default(),
        per(c.kernel_bytes_per_connection),
        per(c.slab_bytes_per_connection),
        c.doctor
            .as_ref()
            .map(|d| format!(". doctor: {d}"))
            .unwrap_or_default()
    )
}

/// The lab's name of a capacity limit, as [`binding_limit`] names it from
/// the failures.
pub fn limit_name(kind: crate::tuning::capacity::LimitKind) -> &'static str {
    use crate::tuning::capacity::LimitKind;
    match kind {
        LimitKind::FdPerProcess => "fd limit",
        LimitKind::FileMax => "file-max",
        LimitKind::Ports => "ports",
        LimitKind::Memory => "memory",
        LimitKind::Conntrack => "conntrack",
        LimitKind::EpollWatches => "epoll watches",
    }
}

/// The limit a ramp toward the ceiling stopped at, from the run's failures
/// by catalogue id (the server's prefixed `server:`): the limit's name and
/// the evidence, or `None` when no failure names a host limit.
pub fn binding_limit(failures: &BTreeMap<String, u64>) -> Option<(String, String)> {
    let limit = |id: &str| match id {
        "system_fd_limit" => Some("file-max"),
        "ephemeral_ports_exhausted" => Some("ports"),
        "conntrack_full" => Some("conntrack"),
        "out_of_memory" | "tcp_memory_pressure" => Some("memory"),
        "fd_limit" => Some("fd limit"),
        "epoll_watch_limit" => Some("epoll watches"),
        _ => None,
    };
    let mut by: BTreeMap<&str, (u64, Vec<String>)> = BTreeMap::new();
    for (key, &n) in failures {
        let id = key.strip_prefix("server:").unwrap_or(key);
        if let Some(l) = limit(id) {
            let e = by.entry(l).or_default();
            e.0 += n;
            e.1.push(format!("{key} {}", crate::util::thousands(n)));
        }
    }
    let (name, (_, what)) = by.into_iter().max_by_key(|(_, (n, _))| *n)?;
    Some((
        name.to_string(),
        format!("failed attempts: {}", what.join(", ")),
    ))
}

/// `--fast-open`: TCP Fast Open for both ends, `net.ipv4.tcp_fastopen`
/// with the client and server bits (3), set through `sysctl` (the lab's
/// `/proc/sys`) only when it is the lab's own network namespace (the
/// value goes with the namespace). In the host's namespace the lab changes
/// nothing: there the bits must be on already, else this fails naming the
/// key. Returns the report's note.
pub fn enable_fast_open(
    sysctl: &crate::sys::sysctl::Sysctl,
    private_netns: bool,
) -> anyhow::Result<String> {
    use crate::reactor::listen::{FASTOPEN_CLIENT, FASTOPEN_SERVER};
    const KEY: &str = "net.ipv4.tcp_fastopen";
    let both = FASTOPEN_CLIENT | FASTOPEN_SERVER;
    let was = sysctl
        .read_u64(KEY)
        .ok_or_else(|| anyhow::anyhow!("--fast-open: {KEY} cannot be read in this namespace"))?;
    if was & both == both {
        return Ok(format!(
            "--fast-open: {KEY} is {was} here, Fast Open on for clients and server"
        ));
    }
    if !private_netns {
        anyhow::bail!(
            "--fast-open: {KEY} is {was} and the lab runs in the host's network namespace, where it changes no net.* key: run it in its own namespace (as root, --netns auto or on), or set {KEY} to 3 yourself"
        );
    }
    let now = (was | both).to_string();
    sysctl.write_verified(KEY, &now).map_err(|e| {
        anyhow::anyhow!("--fast-open: setting {KEY} to {now} in the lab's namespace: {e}")
    })?;
    Ok(format!(
        "--fast-open: {KEY} set to {now} in the lab's network namespace (was {was}); serve and the clients use TCP Fast Open"
    ))
}

/// `--target max` on the command line: replaced by doctor's capacity
/// estimate before the run.
pub const TARGET_MAX: u64 = u64::MAX;

/// The value parser of `--target`: a count (100k, 1M) or `max`.
pub fn parse_target(text: &str) -> Result<u64, String> {
    if text.trim().eq_ignore_ascii_case("max") {
        return Ok(TARGET_MAX);
    }
    crate::util::parse_count(text)
}

/// The memory floor of `--target max`: 1.5 GiB or 6% of RAM, whichever
/// is more. The ramp stops when usable memory falls below it, far above the
/// OOM killer.
pub fn mem_floor(mem_total_bytes: u64) -> u64 {
    (1536u64 << 20).max(mem_total_bytes / 100 * 6)
}

/// Messages per second the whole lab aims at during the hold by default.
pub const AUTO_MESSAGES_PER_S: u64 = 10_000;

/// The default message interval: every connection once per interval, about
/// [`AUTO_MESSAGES_PER_S`] messages a second in all, never more often than
/// once a second per connection.
pub fn auto_message_interval(target: u64) -> Duration {
    Duration::from_secs((target / AUTO_MESSAGES_PER_S).max(1))
}

/// `c1m lab --message-interval`: off, auto, or a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageInterval {
    /// No messages during the hold.
    Off,
    /// [`auto_message_interval`] of the target.
    Auto,
    Every(Duration),
}

impl MessageInterval {
    /// The interval the clients are given for `target` connections.
    pub fn resolve(self, target: u64) -> Option<Duration> {
        match self {
            MessageInterval::Off => None,
            MessageInterval::Auto => Some(auto_message_interval(target)),
            MessageInterval::Every(d) => Some(d),
        }
    }
}

/// The value parser of `--message-interval`: "off" (or "none", "0"),
/// "auto", or a duration (250ms, 2s); a zero duration is off.
pub fn parse_message_interval(text: &str) -> Result<MessageInterval, String> {
    match text.trim() {
        "off" | "none" | "0" => Ok(MessageInterval::Off),
        "auto" => Ok(MessageInterval::Auto),
        t => crate::util::parse_duration(t).map(|d| {
            if d.is_zero() {
                MessageInterval::Off
            } else {
                MessageInterval::Every(d)
            }
        }),
    }
}

/// The server's connection limit for a lab target: 5% above the target, so
/// that connections a client gave up on but the server has not yet reaped
/// never keep the last clients out.
pub fn server_capacity(target: u64) -> u64 {
    target + target.div_ceil(20)
}

/// How long the server may take to close everything and write its summary.
pub(super) const SERVER_STOP_GRACE: Duration = Duration::from_secs(120);

/// How much longer than the lab's hold a client would hold on its own.
pub(super) const CLIENT_HOLD_MARGIN: Duration = Duration::from_secs(60);

/// The lab's `--sources` (flood's syntax: a count or an address list) as
/// `(sources_per_client, source_list)`. A count N gives client K the
/// addresses 127.0.K.1-N (198.18.K.1-N with `--hosts`); a list is split
/// into one block per client, and must be IPv4 loopback addresses (the
/// lab runs on 127.0.0.0/8, in a namespace of its own when it can).
pub fn client_sources(
    spec: &crate::flood::plan::SourceSpec,
    clients: u32,
    hosts: bool,
) -> anyhow::Result<(u32, Option<Vec<IpAddr>>)> {
    use crate::flood::plan::SourceSpec;
    match spec {
        SourceSpec::Count(n) => match u32::try_from(*n) {
            Ok(n) if (1..=254).contains(&n) => Ok((n, None)),
            _ => anyhow::bail!(
                "--sources {n}: a count per client must be from 1 to 254 (client K binds {}.K.1-N)",
                if hosts { "198.18" } else { "127.0" }
            ),
        },
        SourceSpec::List(_) if hosts => anyhow::bail!(
            "--sources: with --hosts, client host K carries the addresses 198.18.K.1-N on its own interface; give a count, not a list"
        ),
        SourceSpec::List(list) => {
            if let Some(a) = list
                .iter()
                .find(|a| !matches!(a, IpAddr::V4(v4) if v4.is_loopback()))
            {
                anyhow::bail!(
                    "--sources: {a} is not an IPv4 loopback address; the lab connects to 127.0.0.1 from addresses in 127.0.0.0/8"
                );
            }
            let per = list.len() as u64 / u64::from(clients.max(1));
            if per == 0 {
                anyhow::bail!(
                    "--sources: {} address(es) for {clients} clients; each client needs at least one",
                    list.len()
                );
            }
            Ok((u32::try_from(per).unwrap_or(u32::MAX), Some(list.clone())))
        }
    }
}

/// Client `k`'s (1-based, of `clients`) `--sources` for its flood: its
/// block of `list`, or 127.0.K.1-`per_client`.
pub fn client_source_text(
    list: Option<&[IpAddr]>,
    clients: u32,
    per_client: u32,
    k: u32,
) -> String {
    match list {
        Some(list) => {
            let (off, len) = crate::flood::plan::split_exact(
                list.len() as u64,
                u64::from(clients),
                u64::from(k.saturating_sub(1)),
            );
            list[off as usize..(off + len) as usize]
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(",")
        }
        None => format!("127.0.{k}.1-127.0.{k}.{per_client}"),
    }
}

/// Split `total` into `parts` nearly equal shares.
pub fn split(total: u64, parts: u32) -> Vec<u64> {
    let parts = parts.max(1) as u64;
    (0..parts)
        .map(|i| total / parts + u64::from(i < total % parts))
        .collect()
}

/// A lab configuration for unit tests: 100 connections, 2 clients of 4
/// sources, 3 ports, a 1 s hold, the host's namespace, nothing applied.
#[cfg(test)]
pub(super) fn test_config() -> LabConfig {
    LabConfig {
        server: Default::default(),
        protocol: Default::default(),
        target: 100,
        clients: 2,
        ports: 3,
        base_port: 8888,
        hold: Duration::from_secs(1),
        message_interval: None,
        sources_per_client: 4,
        source_list: None,
        apply: false,
        force: false,
        netns: NetnsMode::Off,
        report_root: PathBuf::from("reports"),
        deadline: Duration::from_secs(10),
        json: false,
        metrics: Vec::new(),
        defer_accept: false,
        fast_open: false,
        separate_handshake_ack: false,
        mem_floor: None,
        max: false,
        max_plan: None,
        fault: None,
        loss_percent: faults::LOSS_PERCENT,
        reconnect: None,
    }
}

/// serde: leave a zero count out of report.json.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_intervals_parse_to_what_the_clients_get() {
        let p = |s| parse_message_interval(s).map(|m| m.resolve(100_000));
        assert_eq!(p("off"), Ok(None));
        assert_eq!(p("0"), Ok(None));
        assert_eq!(p("0s"), Ok(None));
        assert_eq!(p("auto"), Ok(Some(Duration::from_secs(10))));
        assert_eq!(p("250ms"), Ok(Some(Duration::from_millis(250))));
        assert!(parse_message_interval("often").is_err());
    }

    #[test]
    fn target_max_and_its_memory_floor() {
        assert_eq!(parse_target("max"), Ok(TARGET_MAX));
        assert_eq!(parse_target("1M"), Ok(1_000_000));
        assert!(parse_target("most").is_err());
        // 24 GiB: 6% is 1.44 GiB, so the 1.5 GiB minimum holds
        assert_eq!(mem_floor(24 << 30), 1536 << 20);
        // 64 GiB: 6% is more
        assert_eq!(mem_floor(64 << 30), (64u64 << 30) / 100 * 6);
    }

    #[test]
    fn fast_open_is_set_in_the_labs_namespace_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net/ipv4")).unwrap();
        let file = dir.path().join("net/ipv4/tcp_fastopen");
        let sysctl = crate::sys::sysctl::Sysctl::new(dir.path());
        std::fs::write(&file, "1\n").unwrap();
        let err = enable_fast_open(&sysctl, false).unwrap_err().to_string();
        assert!(err.contains("net.ipv4.tcp_fastopen is 1"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "1\n",
            "host untouched"
        );
        let note = enable_fast_open(&sysctl, true).unwrap();
        assert!(
            note.contains("set to 3") && note.contains("(was 1)"),
            "{note}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "3");
        // Already on: nothing to change, in either namespace.
        assert!(enable_fast_open(&sysctl, false).is_ok());
        std::fs::write(&file, "1027\n").unwrap();
        assert!(enable_fast_open(&sysctl, false).is_ok());
    }

    #[test]
    fn the_binding_limit_is_the_most_failed_host_limit() {
        let f = |pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(binding_limit(&f(&[("connect_timeout", 9)])), None);
        let (limit, evidence) = binding_limit(&f(&[
            ("connect_timeout", 900),
            ("system_fd_limit", 40),
            ("server:system_fd_limit", 30),
            ("ephemeral_ports_exhausted", 50),
        ]))
        .unwrap();
        assert_eq!(limit, "file-max");
        assert!(
            evidence.contains("system_fd_limit 40")
                && evidence.contains("server:system_fd_limit 30"),
            "{evidence}"
        );
        let c = Ceiling {
            limit,
            connections: 1234,
            mem_available_bytes: 8 << 30,
            usable_bytes: 7 << 30,
            floor_bytes: 1536 << 20,
            evidence: Some(evidence),
            ..Default::default()
        };
        let s = ceiling_sentence(&c);
        assert!(
            s.starts_with(
                "Ceiling: file-max bound at 1,234 verified connections (failed attempts:"
            ),
            "{s}"
        );
        assert!(
            s.contains("usable memory 7,168 MiB, above the floor of 1,536 MiB"),
            "{s}"
        );
        // At the floor: how much of MemAvailable the sockets pinned, and
        // both memory figures per connection.
        let c = Ceiling {
            limit: "memory".into(),
            connections: 2_000_000,
            time_s: Some(101.3),
            mem_available_bytes: 5 << 30,
            usable_bytes: 1 << 30,
            floor_bytes: 1536 << 20,
            kernel_bytes_per_connection: Some(5555.4),
            slab_bytes_per_connection: Some(10_144.3),
            doctor: Some("This host can hold about 2,300,000 connections.".into()),
            evidence: None,
        };
        assert_eq!(
            ceiling_sentence(&c),
            "Ceiling: memory bound at 2,000,000 verified connections after 101.3 s (usable memory 1,024 MiB, below the floor of 1,536 MiB: MemAvailable 5,120 MiB minus 4,096 MiB of socket inodes and dentries that the open sockets pin; per connection: kernel memory 5555 B from MemAvailable, slab 10144 B). doctor: This host can hold about 2,300,000 connections."
        );
    }

    #[test]
    fn limits_have_the_names_the_failures_give_them() {
        use crate::tuning::capacity::LimitKind;
        let by_failure =
            |id: &str| binding_limit(&BTreeMap::from([(id.to_string(), 1)])).map(|l| l.0);
        for (kind, id) in [
            (LimitKind::FileMax, "system_fd_limit"),
            (LimitKind::Ports, "ephemeral_ports_exhausted"),
            (LimitKind::Memory, "out_of_memory"),
            (LimitKind::Conntrack, "conntrack_full"),
            (LimitKind::FdPerProcess, "fd_limit"),
            (LimitKind::EpollWatches, "epoll_watch_limit"),
        ] {
            assert_eq!(by_failure(id).as_deref(), Some(limit_name(kind)), "{id}");
        }
    }

    #[test]
    fn sources_take_flood_syntax_and_each_client_gets_its_block() {
        use crate::flood::plan::parse_source_spec;
        let spec = |t| parse_source_spec(t).unwrap();
        assert_eq!(client_sources(&spec("10"), 3, false).unwrap(), (10, None));
        assert_eq!(client_sources(&spec("4"), 5, true).unwrap(), (4, None));
        let e = client_sources(&spec("300"), 3, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--sources 300") && e.contains("1 to 254"), "{e}");
        let (per, list) = client_sources(&spec("127.0.0.2-127.0.0.6"), 2, false).unwrap();
        assert_eq!(per, 2);
        // 5 addresses, 2 clients: 3 + 2, every address once.
        let list = list.as_deref();
        assert_eq!(
            client_source_text(list, 2, per, 1),
            "127.0.0.2,127.0.0.3,127.0.0.4"
        );
        assert_eq!(client_source_text(list, 2, per, 2), "127.0.0.5,127.0.0.6");
        assert_eq!(client_source_text(None, 2, 2, 2), "127.0.2.1-127.0.2.2");
        for (text, hosts, says) in [
            ("127.0.0.2-3", true, "with --hosts"),
            (
                "127.0.0.2,10.0.0.1",
                false,
                "10.0.0.1 is not an IPv4 loopback",
            ),
            ("127.0.0.2", false, "1 address(es) for 2 clients"),
        ] {
            let e = client_sources(&spec(text), 2, hosts)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn shares_add_up() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(100_000, 3).iter().sum::<u64>(), 100_000);
        assert_eq!(split(5, 1), vec![5]);
    }
}
