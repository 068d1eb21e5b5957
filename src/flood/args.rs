//! What a flood process is told: [`FloodArgs`] (the `c1m flood` command
//! line) and [`FloodShardArgs`] (the hidden `c1m flood-shard` a parent
//! starts for each worker process), with their value parsers and
//! `to_argv()`. Everything that starts a flood (the parent of shards, the
//! lab, the scenarios) builds the child's command line from these types, so
//! a renamed or retyped flag is a compile error, not a child that refuses
//! its arguments at run time. `commands::flood` only turns them into a run.
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser};

use super::Procs;
use super::plan::{FleetShard, SplitWhat};
use super::proto::ProtoArgs;
use super::report::LogFormat;
use crate::argv::{self, Argv, parse_procs};
use crate::util::{parse_count, parse_duration};

/// Open, verify and hold many TCP connections to an echo server, or to a
/// server of another protocol (--protocol).
#[derive(Debug, Clone, PartialEq, Args)]
#[command(
    long_about = "Open --connections TCP connections to HOST on ports PORT..PORT+ports-1 (cycling, like the seed's client), \
send `Hello Server: client --> k` on connection k and count it only when the echo comes back intact; then hold them. \
With --protocol connect|line|http|websocket|redis|mqtt, speak that protocol instead and count a connection when its reply verifies. \
Failures are counted by class and never end the run; what stopped it is said at the end with the fix. \
Exit status: 0 target reached, verified and held; 1 not (with the reason); 2 usage errors."
)]
pub struct FloodArgs {
    /// Server address or name.
    pub host: String,
    /// First destination port.
    pub port: u16,
    /// Number of consecutive destination ports (PORT..PORT+ports-1).
    #[arg(long, default_value_t = 20)]
    pub ports: u16,
    /// Connections to open and verify (5000, 100k, 1M); the default is the seed's count.
    #[arg(short = 'c', long, default_value = "340000", value_parser = parse_count)]
    pub connections: u64,
    /// Connection attempts in flight at most (all processes together).
    #[arg(short = 'w', long, default_value_t = 1000)]
    pub window: usize,
    /// Pace connection attempts: per second, all processes together (5000,
    /// 5k/s); tcpkali's --connect-rate is an alias.
    #[arg(short = 'r', long, visible_alias = "connect-rate", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Local source addresses: ranges and lists (127.0.0.2-127.0.0.40,127.0.1.1).
    #[arg(long)]
    pub sources: Option<String>,
    /// Worker processes: `auto` (as many as the fd limit requires) or a
    /// number from 1 to 4096; the same flag as serve's.
    #[arg(long, default_value = "auto", value_parser = parse_procs)]
    pub procs: Procs,
    /// Give up on an attempt not connected and echoed within this time.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Keep the connections open this long after the target, then close
    /// them and exit (like tcpkali -T, wrk -d); "forever" keeps them until
    /// Ctrl-C.
    #[arg(short = 'T', long, default_value = "10s", value_parser = parse_hold)]
    pub hold: Hold,
    /// During the hold, send a line on every connection this often and time the echo.
    #[arg(long, value_parser = parse_duration)]
    pub message_interval: Option<Duration>,
    /// Once connected, wait for SIGUSR2 (at most 300 s) before the hold
    /// and its message lines begin: for several flood processes that must
    /// hold over the same seconds, whoever starts them signals each once
    /// all say they are holding (c1m lab does).
    #[arg(long)]
    pub hold_on_signal: bool,
    /// During the hold, replace every verified connection that is lost
    /// (EOF, reset) with a new one, after --reconnect-backoff.
    #[arg(long)]
    pub reconnect: bool,
    /// Reconnect delay: exponential backoff with full jitter, MIN..MAX
    /// (each attempt waits a random time up to MIN x 2^attempt, at most
    /// MAX), or 0 to reconnect at once (a naive client: a reconnect storm).
    #[arg(long, default_value = "100ms..30s", value_parser = super::engine::parse_backoff)]
    pub reconnect_backoff: super::engine::Backoff,
    /// TCP Fast Open (TCP_FASTOPEN_CONNECT): once the server's cookie is
    /// known, each connect carries its first message in the SYN, and the
    /// connect latency runs to that message's answer. Needs a server with
    /// Fast Open (c1m serve --fast-open, net.ipv4.tcp_fastopen = 3).
    #[arg(long)]
    pub fast_open: bool,
    /// Send the handshake's last ACK in a packet of its own, as a plain
    /// client does. By default a connection whose client speaks first
    /// (every --protocol but connect; not with --fast-open) sets
    /// TCP_DEFER_ACCEPT on its socket, so the kernel holds that ACK back
    /// and the first message carries it: one packet fewer per connection.
    #[arg(long)]
    pub separate_handshake_ack: bool,
    /// JSON lines (same as --log-format json).
    #[arg(short, long)]
    pub json: bool,
    /// Only what matters: the failures and the result line (no headline,
    /// progress or table), as `-q` means in every command.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Log format: human, seed (the original client's lines), json.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Also write the log to this file.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// This host's share of a fleet run: shard K of N (1/3, 2/3, 3/3), every
    /// host started with the same command line; --connections, --window and
    /// --rate are the fleet's totals.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<FleetShard>,
    /// With --shard, also give each host its own block of these: `ports`
    /// (of PORT..PORT+ports-1), `sources` (of the --sources list).
    #[arg(long, value_enum, value_delimiter = ',', requires = "shard")]
    pub shard_split: Vec<SplitWhat>,
    /// Start connecting at this time, so the hosts of a fleet start
    /// together: RFC 3339 (2026-12-02T16:00:00Z) or a delay (+5s).
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<SystemTime>,
    /// This host's name in every log line and the summary (default with
    /// --shard: the hostname).
    #[arg(long)]
    pub host_name: Option<String>,
    /// Serve OpenMetrics at http://ADDR:PORT/metrics from the parent
    /// process, summing its shards (PORT alone or :PORT binds 127.0.0.1).
    #[arg(long, value_name = "ADDR:PORT", value_parser = crate::metrics::endpoint::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,
    /// `--metrics` on an inherited listening socket (the lab's).
    #[arg(long, hide = true, conflicts_with = "metrics")]
    pub metrics_fd: Option<std::os::fd::RawFd>,
    #[command(flatten)]
    pub proto: ProtoArgs,
}

fn parse_start_at(text: &str) -> Result<SystemTime, String> {
    super::plan::parse_start_at(text, SystemTime::now())
}

/// `c1m flood-shard`: one worker process of a flood run. It runs the same
/// request as its parent (`run`), takes shard `index` of `of`, and writes
/// JSON lines for the parent (see `flood::wire`).
#[derive(Debug, Clone, PartialEq, Args)]
pub struct FloodShardArgs {
    /// Which shard this process runs (0-based).
    #[arg(long)]
    pub index: u32,
    /// How many shards the parent started.
    #[arg(long)]
    pub of: u32,
    /// Also print the seed's per-connection lines (the parent's log format
    /// is seed).
    #[arg(long)]
    pub seed_lines: bool,
    /// Send the latency histograms' metric buckets with each interval
    /// record (the parent serves `--metrics`); without it the worker skips
    /// the pass over its histograms that they take every second.
    #[arg(long)]
    pub latency_buckets: bool,
    /// Begin the hold (its time and its lines) only when the parent sends
    /// SIGUSR2, once every worker has finished connecting, so that no
    /// worker's lines are timed against the others' connect phase.
    #[arg(long)]
    pub hold_together: bool,
    #[command(flatten)]
    pub run: FloodArgs,
}

/// `--hold`: a duration or forever.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hold(pub Option<Duration>);

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("forever"),
            Some(d) => f.write_str(&argv::duration(d)),
        }
    }
}

fn parse_hold(text: &str) -> Result<Hold, String> {
    match text.trim() {
        "forever" | "inf" | "infinite" => Ok(Hold(None)),
        t => parse_duration(t).map(|d| Hold(Some(d))),
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let t = text.trim().trim_end_matches("/s");
    let v = parse_count(t)? as f64;
    if v <= 0.0 {
        return Err(format!("'{text}' is not a rate > 0 (5000 or 5k/s)"));
    }
    Ok(v)
}

/// The flags of one subcommand alone, to parse what `to_argv` wrote.
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct Only<A: Args> {
    #[command(flatten)]
    args: A,
}

impl FloodArgs {
    /// The subcommand that takes these arguments.
    pub const COMMAND: &'static str = "flood";

    /// The arguments as `c1m flood` would parse them from `argv` (after
    /// the subcommand name): the lab and the scenarios start from
    /// `FloodArgs::parse_from([host, port])` to get the command's defaults.
    pub fn try_parse_from<I, S>(argv: I) -> Result<FloodArgs, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString> + Clone,
    {
        Only::<FloodArgs>::try_parse_from(argv).map(|o| o.args)
    }

    /// A flood of `connections` to `host`, ports `port..port+ports-1`, with
    /// every other setting at the command's default.
    pub fn new(
        host: &str,
        port: u16,
        ports: u16,
        connections: u64,
    ) -> Result<FloodArgs, clap::Error> {
        let mut a = FloodArgs::try_parse_from([host.to_string(), port.to_string()])?;
        a.ports = ports;
        a.connections = connections;
        Ok(a)
    }

    /// The command line (after the subcommand name) that parses back into
    /// these arguments.
    pub fn to_argv(&self) -> Vec<OsString> {
        self.argv().into_vec()
    }

    /// `flood` and [`to_argv`](Self::to_argv): what a child is started with.
    pub fn command_line(&self) -> Vec<OsString> {
        let mut v = vec![OsString::from(Self::COMMAND)];
        v.extend(self.to_argv());
        v
    }

    fn argv(&self) -> Argv {
        let mut a = Argv::new()
            .arg(self.host.as_str())
            .arg(self.port.to_string())
            .opt("ports", self.ports)
            .opt("connections", self.connections)
            .opt("window", self.window)
            .opt_some("rate", self.rate)
            .opt_some("sources", self.sources.as_deref())
            .opt("procs", self.procs)
            .duration("connect-timeout", self.connect_timeout)
            .opt("hold", self.hold)
            .opt_some(
                "message-interval",
                self.message_interval.map(argv::duration),
            )
            .flag("hold-on-signal", self.hold_on_signal)
            .flag("reconnect", self.reconnect)
            .opt("reconnect-backoff", self.reconnect_backoff)
            .flag("fast-open", self.fast_open)
            .flag("separate-handshake-ack", self.separate_handshake_ack)
            .flag("json", self.json)
            .flag("quiet", self.quiet);
        if let Some(f) = &self.log_format {
            a = a.value_enum("log-format", f);
        }
        if let Some(o) = &self.output {
            a = a.opt_os("output", o.as_os_str());
        }
        let a = a
            .opt_some("shard", self.shard)
            .list("shard-split", &self.shard_split)
            .opt_some(
                "start-at",
                self.start_at.map(humantime::format_rfc3339_nanos),
            )
            .opt_some("host-name", self.host_name.as_deref())
            .opt_some("metrics", self.metrics)
            .opt_some("metrics-fd", self.metrics_fd);
        self.proto.argv(a)
    }
}

impl FloodShardArgs {
    /// The hidden subcommand of a flood worker process.
    pub const COMMAND: &'static str = "flood-shard";

    pub fn try_parse_from<I, S>(argv: I) -> Result<FloodShardArgs, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString> + Clone,
    {
        Only::<FloodShardArgs>::try_parse_from(argv).map(|o| o.args)
    }

    pub fn to_argv(&self) -> Vec<OsString> {
        Argv::new()
            .opt("index", self.index)
            .opt("of", self.of)
            .flag("seed-lines", self.seed_lines)
            .flag("latency-buckets", self.latency_buckets)
            .flag("hold-together", self.hold_together)
            .into_vec()
            .into_iter()
            .chain(self.run.to_argv())
            .collect()
    }

    pub fn command_line(&self) -> Vec<OsString> {
        let mut v = vec![OsString::from(Self::COMMAND)];
        v.extend(self.to_argv());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(a: &FloodArgs) {
        let back = FloodArgs::try_parse_from(a.to_argv())
            .unwrap_or_else(|e| panic!("{:?} did not parse: {e}", a.to_argv()));
        assert_eq!(&back, a);
    }

    #[test]
    fn defaults_and_hand_built_cases_round_trip() {
        let d = FloodArgs::new("127.0.0.1", 9000, 20, 340_000).unwrap();
        round_trip(&d);
        assert_eq!(d.procs, Procs::Auto);
        // A bounded first try: 10 s of hold unless told otherwise.
        assert_eq!(d.hold, Hold(Some(Duration::from_secs(10))));
        assert_eq!(d.connect_timeout, Duration::from_secs(3));
        let mut a = FloodArgs::new("localhost", 1, 3, 5).unwrap();
        a.rate = Some(5000.0);
        a.sources = Some("127.0.0.2-127.0.0.40,127.0.1.1".into());
        a.procs = Procs::N(7);
        a.connect_timeout = Duration::from_millis(2500);
        a.hold = Hold(Some(Duration::new(61, 5)));
        a.message_interval = Some(Duration::from_millis(250));
        a.hold_on_signal = true;
        a.fast_open = true;
        a.separate_handshake_ack = true;
        a.json = true;
        a.log_format = Some(LogFormat::Seed);
        a.output = Some(PathBuf::from("/tmp/a dir/with spaces.log"));
        round_trip(&a);
        let q = FloodArgs::try_parse_from(["127.0.0.1", "9000", "-q"]).unwrap();
        assert!(q.quiet);
        round_trip(&q);
        assert!(
            FloodArgs::try_parse_from(["127.0.0.1", "9000", "-q", "-j"]).is_err(),
            "-q and -j conflict, as in serve"
        );
        let mut p = a.clone();
        p.proto = ProtoArgs {
            protocol: crate::flood::proto::Protocol::Line,
            message: Some("-starts with a dash {n}\\n".into()),
            expect: Some("/^ok/".into()),
            path: "/x".into(),
            headers: vec!["X-A: b, c".into(), "X-B: d".into()],
            prefix: "dev-{n}".into(),
            keepalive: Duration::from_secs(5),
        };
        round_trip(&p);
        let shard = FloodShardArgs {
            index: 3,
            of: 4,
            seed_lines: true,
            latency_buckets: true,
            hold_together: true,
            run: a,
        };
        assert_eq!(
            FloodShardArgs::try_parse_from(shard.to_argv()).unwrap(),
            shard
        );
    }

    proptest! {
        #[test]
        fn any_flood_args_round_trip(
            host in "[a-z0-9][a-z0-9.:-]{0,19}",
            port in 1u16..,
            ports in 1u16..,
            connections in 0u64..(1 << 50),
            window in 1usize..1_000_000,
            rate in proptest::option::of(1u64..10_000_000),
            procs in proptest::option::of(1u32..=crate::argv::MAX_PROCS),
            timeout_ns in 0u64..(1 << 40),
            hold_ns in proptest::option::of(0u64..(1 << 45)),
            interval_ms in proptest::option::of(1u64..100_000),
            json in any::<bool>(),
            fast_open in any::<bool>(),
            hold_on_signal in any::<bool>(),
            separate_ack in any::<bool>(),
            format in proptest::option::of(0usize..3),
        ) {
            let mut a = FloodArgs::new("x", port, ports, connections).unwrap();
            a.host = host;
            a.window = window;
            a.rate = rate.map(|r| r as f64);
            a.procs = procs.map_or(Procs::Auto, Procs::N);
            a.connect_timeout = Duration::from_nanos(timeout_ns);
            a.hold = Hold(hold_ns.map(Duration::from_nanos));
            a.message_interval = interval_ms.map(Duration::from_millis);
            a.json = json;
            a.fast_open = fast_open;
            a.hold_on_signal = hold_on_signal;
            a.separate_handshake_ack = separate_ack;
            // Not with --json (they conflict).
            a.quiet = !json && window % 2 == 0;
            a.log_format = format.map(|i| [LogFormat::Human, LogFormat::Seed, LogFormat::Json][i]);
            round_trip(&a);
        }
    }
}
