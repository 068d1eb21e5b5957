//! `c1m flood HOST PORT`: flags in, `crate::flood` does the work. Input
//! errors (unresolvable host, ports beyond 65535, a source address not on
//! this host, zero connections) are refused here with the argument named,
//! exit status 2; a run that misses its target exits 1.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Args;

use crate::commands::{EXIT_ERROR, EXIT_FAIL};
use crate::flood::plan::{self, Plan};
use crate::flood::report::LogFormat;
use crate::flood::{Procs, Request};
use crate::util::{parse_count, parse_duration};

/// Open, verify and hold many TCP connections to an echo server.
#[derive(Debug, Args)]
#[command(
    long_about = "Open --connections TCP connections to HOST on ports PORT..PORT+ports-1 (cycling, like the seed's client), \
send `Hello Server: client --> k` on connection k and count it only when the echo comes back intact; then hold them. \
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
    #[arg(long, default_value = "340000", value_parser = parse_count)]
    pub connections: u64,
    /// Connection attempts in flight at most (all processes together).
    #[arg(long, default_value_t = 1000)]
    pub window: usize,
    /// Pace connection attempts: per second, all processes together (5000, 5k/s).
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Local source addresses: ranges and lists (127.0.0.2-127.0.0.40,127.0.1.1).
    #[arg(long)]
    pub sources: Option<String>,
    /// Worker processes: `auto` (as many as the fd limit requires) or a number.
    #[arg(long, default_value = "auto", value_parser = parse_procs)]
    pub procs: Procs,
    /// Give up on an attempt not connected and echoed within this time.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Keep the connections open this long after the target ("forever" = until Ctrl-C).
    #[arg(long, default_value = "forever", value_parser = parse_hold)]
    pub hold: Hold,
    /// During the hold, send a line on every connection this often and time the echo.
    #[arg(long, value_parser = parse_duration)]
    pub message_interval: Option<Duration>,
    /// JSON lines (same as --log-format json).
    #[arg(long)]
    pub json: bool,
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
    pub shard: Option<plan::FleetShard>,
    /// With --shard, also give each host its own block of these: `ports`
    /// (of PORT..PORT+ports-1), `sources` (of the --sources list).
    #[arg(long, value_enum, value_delimiter = ',', requires = "shard")]
    pub shard_split: Vec<plan::SplitWhat>,
    /// Start connecting at this time, so the hosts of a fleet start
    /// together: RFC 3339 (2026-12-02T16:00:00Z) or a delay (+5s).
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<SystemTime>,
    /// This host's name in every log line and the summary (default with
    /// --shard: the hostname).
    #[arg(long)]
    pub host_name: Option<String>,
    #[arg(long, hide = true)]
    pub shard_index: Option<u32>,
    #[arg(long, hide = true)]
    pub shards: Option<u32>,
    #[arg(long, hide = true)]
    pub seed_lines: bool,
}

/// `--hold`: a duration or forever.
#[derive(Debug, Clone, Copy)]
pub struct Hold(pub Option<Duration>);

fn parse_hold(text: &str) -> Result<Hold, String> {
    match text.trim() {
        "forever" | "inf" | "infinite" => Ok(Hold(None)),
        t => parse_duration(t).map(|d| Hold(Some(d))),
    }
}

fn parse_procs(text: &str) -> Result<Procs, String> {
    match text.trim() {
        "auto" => Ok(Procs::Auto),
        t => match t.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Procs::N(n)),
            _ => Err(format!(
                "'{text}' is not 'auto' or a number of processes >= 1"
            )),
        },
    }
}

fn parse_start_at(text: &str) -> Result<SystemTime, String> {
    plan::parse_start_at(text, SystemTime::now())
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let t = text.trim().trim_end_matches("/s");
    let v = parse_count(t)? as f64;
    if v <= 0.0 {
        return Err(format!("'{text}' is not a rate > 0 (5000 or 5k/s)"));
    }
    Ok(v)
}

fn usage(e: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("c1m flood: error: {e}");
    Ok(ExitCode::from(EXIT_ERROR))
}

pub fn run(args: FloodArgs) -> anyhow::Result<ExitCode> {
    if args.connections == 0 {
        return usage("--connections: must be at least 1");
    }
    if args.window == 0 {
        return usage("--window: must be at least 1");
    }
    if args.connect_timeout.is_zero() {
        return usage("--connect-timeout: must be more than 0");
    }
    if args.message_interval.is_some_and(|d| d.is_zero()) {
        return usage("--message-interval: must be more than 0");
    }
    if let Err(e) = plan::check_ports(args.port, args.ports) {
        return usage(e);
    }
    let dest = match plan::resolve_host(&args.host) {
        Ok(d) => d,
        Err(e) => return usage(e),
    };
    let sources = match args.sources.as_deref().map(plan::parse_sources) {
        Some(Ok(v)) => v,
        Some(Err(e)) => return usage(e),
        None => Vec::new(),
    };
    let format = if args.json {
        LogFormat::Json
    } else {
        args.log_format.unwrap_or(LogFormat::Human)
    };
    let shard = match (args.shard_index, args.shards) {
        (Some(i), Some(n)) if i < n => Some((i, n)),
        (None, None) => None,
        _ => return usage("--shard-index/--shards: inconsistent (internal flags)"),
    };
    let whole = Plan {
        host: args.host.clone(),
        dest,
        first_port: args.port,
        ports: args.ports,
        sources,
        connections: args.connections,
        first_k: 0,
        window: args.window,
        rate: args.rate,
        connect_timeout: args.connect_timeout,
        hold: args.hold.0,
        message_interval: args.message_interval,
    };
    // A fleet host runs its own share; only its own sources must be here.
    let (plan, whole) = match args.shard {
        Some(s) => match whole.fleet_share(s, &args.shard_split) {
            Ok(p) => (p, Some(whole)),
            Err(e) => return usage(e),
        },
        None => (whole, None),
    };
    if let Err(e) = plan::check_sources_local(&plan.sources, dest) {
        return usage(e);
    }
    let fleet = crate::flood::Fleet {
        shard: args.shard,
        split: args.shard_split.clone(),
        start_at: args.start_at,
        host: match (&args.host_name, args.shard) {
            (Some(h), _) => Some(h.clone()),
            (None, Some(_)) => Some(crate::flood::hostname()),
            (None, None) => None,
        },
        whole,
    };
    let req = Request {
        plan,
        fleet,
        sources_arg: args.sources.clone(),
        procs: args.procs,
        format,
        output: args.output.clone(),
        shard,
        seed_lines: args.seed_lines,
    };
    let ok = crate::flood::run(req)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAIL)
    })
}
