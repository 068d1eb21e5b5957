//! What a serve process is told: [`ServeArgs`] (the `c1m serve` command
//! line) and [`ServeWorkerArgs`] (the hidden `c1m serve-worker` the parent
//! starts for each worker process), with their value parsers and
//! `to_argv()`. The supervisor, the lab and the scenarios build the child's
//! command line from these types, so a renamed or retyped flag is a compile
//! error; `commands::serve` only turns them into a run.
use std::ffi::OsString;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use clap::{Args, Parser};

use super::worker::WorkerConfig;
use super::{LogFormat, Wake};
use crate::argv::{Argv, Procs, parse_procs};

#[derive(Debug, Clone, PartialEq, Args)]
pub struct ServeArgs {
    /// Address or name to listen on (0.0.0.0, 127.0.0.1, localhost), like
    /// flood's HOST.
    #[arg(long, default_value = "0.0.0.0", value_parser = parse_bind)]
    pub bind: IpAddr,
    /// First port.
    #[arg(long, default_value_t = 8888, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Number of consecutive ports, from --port.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..))]
    pub ports: u16,
    /// Worker processes: "auto" or a number from 1 to 4096 (a fixed
    /// count); the same flag as flood's (`--workers` is still accepted).
    /// auto with --max-connections: enough that each stays under its fd
    /// limit, all started at once; auto without it: elastic, one worker
    /// first, the next started when the running ones near their share.
    #[arg(long, alias = "workers", default_value = "auto", value_parser = parse_procs)]
    pub procs: Procs,
    /// Connections to hold at most (100k, 1M...); each worker stops
    /// accepting at its share, and serve says once when it holds them all
    /// ("cap reached"). Default: what `c1m doctor` estimates this host can
    /// hold as a server, at most 1M (half of fs.file-max if the host cannot
    /// be read).
    #[arg(long, value_parser = crate::util::parse_count)]
    pub max_connections: Option<u64>,
    /// Time between progress lines.
    #[arg(long, default_value = "1s", value_parser = crate::util::parse_duration)]
    pub stats_interval: Duration,
    /// JSON lines on stdout instead of human text.
    #[arg(short, long)]
    pub json: bool,
    /// No progress line per interval: only what matters (listening, worker
    /// deaths, failures, the summary), as `-q` means in every command.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// "seed": the seed reactor-style line `connections: N, sockfd:FD,
    /// time_used:MS` every 1000 accepts of each worker (N = that worker's
    /// open connections, FD = the fd just accepted, MS = milliseconds since
    /// that worker's previous such line).
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// How listeners wake workers (one: EPOLLEXCLUSIVE; all: the herd).
    #[arg(long, value_enum, default_value = "one", hide = true)]
    pub wake: Wake,
    /// Serve OpenMetrics at http://ADDR:PORT/metrics from the parent
    /// process (PORT alone or :PORT binds 127.0.0.1), for Prometheus.
    #[arg(long, value_name = "ADDR:PORT", value_parser = crate::metrics::endpoint::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,
    /// `--metrics` on an inherited listening socket (the lab's).
    #[arg(long, hide = true, conflicts_with = "metrics")]
    pub metrics_fd: Option<RawFd>,
    /// TCP_DEFER_ACCEPT on the listeners: the kernel hands a connection to
    /// accept() only once its first bytes are in, and the worker echoes
    /// them in the same wake-up (for clients that speak first, as flood
    /// does; a client that waits for the server is accepted after about
    /// 3 s).
    #[arg(long)]
    pub defer_accept: bool,
    /// TCP Fast Open on the listeners (TCP_FASTOPEN, queue = the backlog):
    /// a client that has the server's cookie sends its first line in the
    /// SYN, and the worker echoes it at accept. Needs the server bit of
    /// net.ipv4.tcp_fastopen (set it to 3; serve warns when it is off).
    #[arg(long)]
    pub fast_open: bool,
}

/// `c1m serve-worker`: one worker process of `c1m serve`, polling the
/// listeners it inherited from the parent.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct ServeWorkerArgs {
    /// This worker's index (0-based), for its lines.
    #[arg(long)]
    pub index: u32,
    /// The inherited listening sockets, by fd number.
    #[arg(long, value_delimiter = ',', required = true)]
    pub listen_fds: Vec<RawFd>,
    /// Stop accepting at this many open connections.
    #[arg(long)]
    pub cap: u64,
    /// Time between the worker's interval lines.
    #[arg(long, value_parser = crate::util::parse_duration)]
    pub stats_interval: Duration,
    /// Print the seed's progress line every 1000 accepts.
    #[arg(long)]
    pub seed_log: bool,
    #[arg(long, value_enum)]
    pub wake: Wake,
    /// Send an interval line at once when the open connections reach this
    /// many (elastic serve: the parent starts the next worker then, not up
    /// to a stats interval later).
    #[arg(long)]
    pub report_at: Option<u64>,
}

/// `--bind`: an address, or a name resolved as flood resolves its HOST
/// (`localhost` is 127.0.0.1).
fn parse_bind(text: &str) -> Result<IpAddr, String> {
    crate::flood::plan::resolve_host(text.trim()).map_err(|e| e.to_string())
}

/// The flags of one subcommand alone, to parse what `to_argv` wrote.
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct Only<A: Args> {
    #[command(flatten)]
    args: A,
}

impl ServeArgs {
    /// The subcommand that takes these arguments.
    pub const COMMAND: &'static str = "serve";

    /// The arguments as `c1m serve` would parse them from `argv` (after
    /// the subcommand name).
    pub fn try_parse_from<I, S>(argv: I) -> Result<ServeArgs, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString> + Clone,
    {
        Only::<ServeArgs>::try_parse_from(argv).map(|o| o.args)
    }

    /// A server on `bind`, ports `port..port+ports-1`, every other setting
    /// at the command's default.
    pub fn new(bind: IpAddr, port: u16, ports: u16) -> Result<ServeArgs, clap::Error> {
        let mut a = ServeArgs::try_parse_from(std::iter::empty::<OsString>())?;
        a.bind = bind;
        a.port = port;
        a.ports = ports;
        Ok(a)
    }

    /// The command line (after the subcommand name) that parses back into
    /// these arguments.
    pub fn to_argv(&self) -> Vec<OsString> {
        Argv::new()
            .opt("bind", self.bind)
            .opt("port", self.port)
            .opt("ports", self.ports)
            .opt("procs", self.procs)
            .opt_some("max-connections", self.max_connections)
            .duration("stats-interval", self.stats_interval)
            .flag("json", self.json)
            .flag("quiet", self.quiet)
            .value_enum("log-format", &self.log_format)
            .value_enum("wake", &self.wake)
            .opt_some("metrics", self.metrics)
            .opt_some("metrics-fd", self.metrics_fd)
            .flag("defer-accept", self.defer_accept)
            .flag("fast-open", self.fast_open)
            .into_vec()
    }

    /// `serve` and [`to_argv`](Self::to_argv): what a child is started with.
    pub fn command_line(&self) -> Vec<OsString> {
        let mut v = vec![OsString::from(Self::COMMAND)];
        v.extend(self.to_argv());
        v
    }
}

impl ServeWorkerArgs {
    /// The hidden subcommand of a serve worker process.
    pub const COMMAND: &'static str = "serve-worker";

    pub fn try_parse_from<I, S>(argv: I) -> Result<ServeWorkerArgs, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString> + Clone,
    {
        Only::<ServeWorkerArgs>::try_parse_from(argv).map(|o| o.args)
    }

    pub fn to_argv(&self) -> Vec<OsString> {
        Argv::new()
            .opt("index", self.index)
            .list("listen-fds", &self.listen_fds)
            .opt("cap", self.cap)
            .duration("stats-interval", self.stats_interval)
            .flag("seed-log", self.seed_log)
            .value_enum("wake", &self.wake)
            .opt_some("report-at", self.report_at)
            .into_vec()
    }

    pub fn command_line(&self) -> Vec<OsString> {
        let mut v = vec![OsString::from(Self::COMMAND)];
        v.extend(self.to_argv());
        v
    }
}

impl From<ServeWorkerArgs> for WorkerConfig {
    fn from(a: ServeWorkerArgs) -> WorkerConfig {
        WorkerConfig {
            index: a.index,
            listen_fds: a.listen_fds,
            cap: a.cap,
            stats_interval: a.stats_interval,
            seed_log: a.seed_log,
            wake: a.wake,
            report_at: a.report_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(a: &ServeArgs) {
        let back = ServeArgs::try_parse_from(a.to_argv())
            .unwrap_or_else(|e| panic!("{:?} did not parse: {e}", a.to_argv()));
        assert_eq!(&back, a);
    }

    #[test]
    fn the_old_workers_flag_still_sets_procs() {
        let a = ServeArgs::try_parse_from(["--workers", "3"]).unwrap();
        assert_eq!(a.procs, Procs::N(3));
        assert!(ServeArgs::try_parse_from(["--workers", "zero"]).is_err());
    }

    #[test]
    fn defaults_and_hand_built_cases_round_trip() {
        let d = ServeArgs::new("0.0.0.0".parse().unwrap(), 8888, 20).unwrap();
        assert_eq!(d.procs, Procs::Auto);
        assert_eq!(d.max_connections, None);
        round_trip(&d);
        let a = ServeArgs {
            bind: "::1".parse().unwrap(),
            port: 65535,
            ports: 1,
            procs: Procs::N(4096),
            max_connections: Some(2_000_000),
            stats_interval: Duration::from_millis(10),
            json: true,
            quiet: false,
            log_format: LogFormat::Seed,
            wake: Wake::All,
            metrics: Some("0.0.0.0:9400".parse().unwrap()),
            metrics_fd: None,
            defer_accept: true,
            fast_open: true,
        };
        round_trip(&a);
        let w = ServeWorkerArgs {
            index: 7,
            listen_fds: vec![3, 4, 5],
            cap: 19_936,
            stats_interval: Duration::new(1, 1),
            seed_log: true,
            wake: Wake::One,
            report_at: None,
        };
        assert_eq!(ServeWorkerArgs::try_parse_from(w.to_argv()).unwrap(), w);
        let elastic = ServeWorkerArgs {
            report_at: Some(14_706),
            ..w.clone()
        };
        assert_eq!(
            ServeWorkerArgs::try_parse_from(elastic.to_argv()).unwrap(),
            elastic
        );
        assert!(
            ServeWorkerArgs::try_parse_from(["--index", "0", "--cap", "1"]).is_err(),
            "a worker without listeners is refused"
        );
    }

    proptest! {
        #[test]
        fn any_serve_args_round_trip(
            v4 in any::<u32>(),
            port in 1u16..,
            ports in 1u16..,
            workers in proptest::option::of(1u32..=4096),
            max in proptest::option::of(0u64..(1 << 50)),
            interval_ns in 0u64..(1 << 40),
            json in any::<bool>(),
            seed in any::<bool>(),
            herd in any::<bool>(),
            defer_accept in any::<bool>(),
            fast_open in any::<bool>(),
        ) {
            let a = ServeArgs {
                bind: IpAddr::from(std::net::Ipv4Addr::from(v4)),
                port,
                ports,
                procs: workers.map_or(Procs::Auto, Procs::N),
                max_connections: max,
                stats_interval: Duration::from_nanos(interval_ns),
                json,
                // Not with --json (they conflict).
                quiet: !json && herd,
                log_format: if seed { LogFormat::Seed } else { LogFormat::Human },
                wake: if herd { Wake::All } else { Wake::One },
                metrics: None,
                metrics_fd: if json { Some(7) } else { None },
                defer_accept,
                fast_open,
            };
            round_trip(&a);
        }
    }
}
