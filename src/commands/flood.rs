//! `c1m flood HOST PORT` (and the hidden `c1m flood-shard`, one worker
//! process of a run): flags in (`flood::args`), `crate::flood` does the
//! work. Input errors (unresolvable host, ports beyond 65535, a source
//! address not on this host, zero connections) are refused here with the
//! argument named, exit status 2; a run that misses its target exits 1.
use std::process::ExitCode;

use crate::commands::{EXIT_ERROR, EXIT_FAIL};
use crate::flood::Request;
pub use crate::flood::args::{FloodArgs, FloodShardArgs};
use crate::flood::plan::{self, Plan};
use crate::flood::report::LogFormat;

fn usage(e: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("c1m flood: error: {e}");
    Ok(ExitCode::from(EXIT_ERROR))
}

/// Why `--fast-open` and `--protocol connect` do not go together.
pub const FAST_OPEN_CONNECT: &str = "--fast-open with --protocol connect: a Fast Open connect sends its SYN with the first write, and the connect protocol writes nothing; use a protocol whose client speaks first";

/// Check the arguments and build the run they ask for; the error names
/// the argument at fault.
fn request(args: &FloodArgs) -> Result<Request, String> {
    if args.connections == 0 {
        return Err("--connections: must be at least 1".into());
    }
    if args.window == 0 {
        return Err("--window: must be at least 1".into());
    }
    if args.connect_timeout.is_zero() {
        return Err("--connect-timeout: must be more than 0".into());
    }
    if args.message_interval.is_some_and(|d| d.is_zero()) {
        return Err("--message-interval: must be more than 0".into());
    }
    if args.fast_open && args.proto.protocol == crate::flood::proto::Protocol::Connect {
        return Err(FAST_OPEN_CONNECT.into());
    }
    plan::check_ports(args.port, args.ports).map_err(|e| e.to_string())?;
    let dest = plan::resolve_host(&args.host).map_err(|e| e.to_string())?;
    let sources = match &args.sources {
        Some(s) => plan::parse_sources(s).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let format = if args.json {
        LogFormat::Json
    } else {
        args.log_format.unwrap_or(LogFormat::Human)
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
        message_interval: args
            .message_interval
            .or_else(|| args.proto.default_interval()),
    };
    let proto = crate::flood::proto::Proto::from_args(&args.proto, &args.host)?;
    // A fleet host runs its share (its workers take the same share from the
    // same arguments); only its own block of sources must be local.
    let plan = match args.shard {
        Some(s) => whole
            .fleet_share(s, &args.shard_split)
            .map_err(|e| e.to_string())?,
        None => whole,
    };
    plan::check_sources_local(&plan.sources, dest).map_err(|e| e.to_string())?;
    Ok(Request {
        plan,
        args: args.clone(),
        format,
        shard: None,
        seed_lines: false,
        latency_buckets: false,
        hold_together: false,
        proto,
    })
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAIL)
    }
}

pub fn run(args: FloodArgs) -> anyhow::Result<ExitCode> {
    if args.fast_open
        && let Some(why) = crate::reactor::listen::fast_open_missing(
            &crate::sys::sysctl::Sysctl::proc(),
            crate::reactor::listen::FASTOPEN_CLIENT,
        )
    {
        eprintln!("c1m flood: warning: {why}");
    }
    match request(&args) {
        Ok(req) => Ok(exit(crate::flood::run(req)?)),
        Err(e) => usage(e),
    }
}

/// `c1m flood-shard`: one worker process, started by a flood parent.
pub fn run_shard(args: FloodShardArgs) -> anyhow::Result<ExitCode> {
    if args.index >= args.of {
        return usage(format!(
            "--index {} --of {}: no such shard (internal flags)",
            args.index, args.of
        ));
    }
    match request(&args.run) {
        Ok(mut req) => {
            req.shard = Some((args.index, args.of));
            req.seed_lines = args.seed_lines;
            req.latency_buckets = args.latency_buckets;
            req.hold_together = args.hold_together;
            Ok(exit(crate::flood::run(req)?))
        }
        Err(e) => usage(e),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use clap::Parser;

    use super::*;
    use crate::commands::{Cli, Command};
    use crate::flood::Procs;

    fn parse(line: Vec<OsString>) -> Command {
        let argv = std::iter::once(OsString::from("c1m")).chain(line);
        Cli::try_parse_from(argv).unwrap().command
    }

    #[test]
    fn the_cli_reads_back_what_to_argv_writes() {
        let mut a = FloodArgs::new("127.0.0.1", 9000, 4, 1234).unwrap();
        a.procs = Procs::N(3);
        a.json = true;
        a.shard = Some("2/3".parse().unwrap());
        a.shard_split = vec![plan::SplitWhat::Ports, plan::SplitWhat::Sources];
        a.start_at = Some(plan::parse_start_at("+1m", std::time::SystemTime::now()).unwrap());
        a.host_name = Some("client-2".into());
        match parse(a.command_line()) {
            Command::Flood(b) => assert_eq!(a, b),
            other => panic!("parsed as {other:?}"),
        }
        let s = FloodShardArgs {
            index: 1,
            of: 3,
            seed_lines: false,
            latency_buckets: false,
            hold_together: true,
            run: a,
        };
        match parse(s.command_line()) {
            Command::FloodShard(b) => assert_eq!(s, b),
            other => panic!("parsed as {other:?}"),
        }
    }
}
