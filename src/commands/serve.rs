//! `c1m serve`: the multi-port, multi-process epoll echo server. Flags in,
//! `reactor` does the work. The hidden `--worker-*`/`--listen-fds` flags are
//! how the parent starts its worker processes (this same binary).
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::reactor::supervisor::{LogFormat, ServeOptions};
use crate::reactor::{Wake, worker};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// First port.
    #[arg(long, default_value_t = 8888, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Number of consecutive ports, from --port.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..))]
    pub ports: u16,
    /// Worker processes: "auto" (enough that each stays under its fd limit
    /// for --max-connections) or a number.
    #[arg(long, default_value = "auto", value_parser = parse_workers)]
    pub workers: WorkersArg,
    /// Connections to plan for (100k, 1M...); each worker stops accepting
    /// at its share. Default: what `c1m doctor` estimates this host can
    /// hold as a server, at most 1M (half of fs.file-max if the host cannot
    /// be read).
    #[arg(long, value_parser = crate::util::parse_count)]
    pub max_connections: Option<u64>,
    /// Time between progress lines.
    #[arg(long, default_value = "1s", value_parser = crate::util::parse_duration)]
    pub stats_interval: Duration,
    /// JSON lines on stdout instead of human text.
    #[arg(long)]
    pub json: bool,
    /// "seed": the seed reactor-style line `connections: N, sockfd:FD,
    /// time_used:MS` every 1000 accepts of each worker (N = that worker's
    /// open connections, FD = the fd just accepted, MS = milliseconds since
    /// that worker's previous such line).
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// How listeners wake workers (one: EPOLLEXCLUSIVE; all: the herd).
    #[arg(long, value_enum, default_value = "one", hide = true)]
    pub wake: Wake,
    #[arg(long, hide = true)]
    pub worker_index: Option<u32>,
    #[arg(long, hide = true)]
    pub worker_of: Option<u32>,
    #[arg(long, hide = true, value_delimiter = ',')]
    pub listen_fds: Vec<i32>,
    #[arg(long, hide = true)]
    pub worker_cap: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
pub enum WorkersArg {
    Auto,
    Count(u32),
}

fn parse_workers(s: &str) -> Result<WorkersArg, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(WorkersArg::Auto);
    }
    match s.parse::<u32>() {
        Ok(n) if (1..=4096).contains(&n) => Ok(WorkersArg::Count(n)),
        _ => Err(format!(
            "'{s}' is not \"auto\" or a worker count from 1 to 4096"
        )),
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(index) = args.worker_index {
        let cap = args
            .worker_cap
            .context("--worker-index needs --worker-cap")?;
        worker::run(worker::WorkerConfig {
            index,
            listen_fds: args.listen_fds,
            cap,
            stats_interval: args.stats_interval,
            seed_log: args.log_format == LogFormat::Seed,
            wake: args.wake,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.ports as u32 + args.port as u32 - 1 > 65535 {
        anyhow::bail!(
            "--port {} with --ports {} goes beyond port 65535",
            args.port,
            args.ports
        );
    }
    if args.stats_interval < Duration::from_millis(10) {
        anyhow::bail!("--stats-interval must be at least 10ms");
    }
    let max_connections = args
        .max_connections
        .unwrap_or_else(crate::reactor::default_max_connections);
    if max_connections == 0 {
        anyhow::bail!("--max-connections must be at least 1");
    }
    let status = crate::reactor::supervisor::run(ServeOptions {
        bind: args.bind,
        port: args.port,
        ports: args.ports,
        workers: match args.workers {
            WorkersArg::Auto => None,
            WorkersArg::Count(n) => Some(n),
        },
        max_connections,
        stats_interval: args.stats_interval,
        json: args.json,
        log_format: args.log_format,
        wake: args.wake,
    })?;
    Ok(ExitCode::from(status))
}
