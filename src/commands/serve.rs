//! `c1m serve` (and the hidden `c1m serve-worker`, one worker process the
//! parent starts): flags in (`reactor::args`), `reactor` does the work.
use std::process::ExitCode;
use std::time::Duration;

use crate::metrics::endpoint::MetricsAt;
pub use crate::reactor::args::{ServeArgs, ServeWorkerArgs};
use crate::reactor::supervisor::ServeOptions;
use crate::reactor::worker;

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
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
    // Neither --max-connections nor a worker count: start one worker and
    // add the next as the running ones fill (a first try costs one process,
    // not the 25 to 51 a million needs). Either one given: the plan is the
    // user's, every worker started at once (the lab and the benches).
    let elastic = args.max_connections.is_none() && args.procs.count().is_none();
    let max_connections = args
        .max_connections
        .unwrap_or_else(crate::reactor::default_max_connections);
    if max_connections == 0 {
        anyhow::bail!("--max-connections must be at least 1");
    }
    if args.fast_open
        && let Some(why) = crate::reactor::listen::fast_open_missing(
            &crate::sys::sysctl::Sysctl::proc(),
            crate::reactor::listen::FASTOPEN_SERVER,
        )
    {
        eprintln!("c1m serve: warning: {why}");
    }
    let status = crate::reactor::supervisor::run(ServeOptions {
        bind: args.bind,
        port: args.port,
        ports: args.ports,
        workers: args.procs.count(),
        elastic,
        max_connections,
        stats_interval: args.stats_interval,
        json: args.json,
        quiet: args.quiet,
        log_format: args.log_format,
        wake: args.wake,
        metrics: match (args.metrics, args.metrics_fd) {
            (Some(a), _) => Some(MetricsAt::Addr(a)),
            (None, Some(fd)) => Some(MetricsAt::Fd(fd)),
            (None, None) => None,
        },
        listen: crate::reactor::listen::ListenOptions {
            defer_accept: args.defer_accept,
            fast_open: args.fast_open,
        },
    })?;
    Ok(ExitCode::from(status))
}

/// `c1m serve-worker`: one worker process, started by the serve parent.
pub fn run_worker(args: ServeWorkerArgs) -> anyhow::Result<ExitCode> {
    worker::run(args.into())?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::commands::{Cli, Command};
    use crate::reactor::Wake;

    fn parse(line: Vec<OsString>) -> Command {
        let argv = std::iter::once(OsString::from("c1m")).chain(line);
        Cli::try_parse_from(argv).unwrap().command
    }

    #[test]
    fn the_cli_reads_back_what_to_argv_writes() {
        let mut a = ServeArgs::new("127.0.0.1".parse().unwrap(), 9000, 3).unwrap();
        a.procs = crate::argv::Procs::N(2);
        a.max_connections = Some(5000);
        match parse(a.command_line()) {
            Command::Serve(b) => assert_eq!(a, b),
            other => panic!("parsed as {other:?}"),
        }
        let w = ServeWorkerArgs {
            index: 1,
            listen_fds: vec![3, 4, 5],
            cap: 2500,
            stats_interval: Duration::from_millis(500),
            seed_log: false,
            wake: Wake::One,
            report_at: Some(750),
        };
        match parse(w.command_line()) {
            Command::ServeWorker(b) => assert_eq!(w, b),
            other => panic!("parsed as {other:?}"),
        }
    }
}
