//! The command line: one thin file per subcommand, in the manner of cargo's
//! `src/bin/cargo/commands/`. Each file defines its clap `Args` and a `run`
//! that calls into the library and renders the result. Exit statuses are the
//! same for every command: 0 success, 1 the check or run failed, 2 a usage or
//! internal error.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod analyze;
pub mod doctor;
pub mod flood;
pub mod lab;
pub mod serve;

/// Exit status for "the run or check did not pass".
pub const EXIT_FAIL: u8 = 1;
/// Exit status for usage and internal errors (clap uses 2 for usage too).
pub const EXIT_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "c1m",
    version,
    about = "Take a Linux server past one million concurrent TCP connections, and explain every shortfall"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check this host for a C1M run: limits, kernel settings, capacity;
    /// apply, persist or roll back a tuning profile.
    Doctor(doctor::DoctorArgs),
    /// Run the whole C1M experiment on this machine and write a report.
    Lab(lab::LabArgs),
    /// Multi-port, multi-process epoll echo server for a million connections.
    Serve(serve::ServeArgs),
    /// Open, verify and hold many TCP connections (the multi-port client).
    Flood(flood::FloodArgs),
    /// Explain every failure in C1M client and server logs.
    Analyze(analyze::AnalyzeArgs),
    /// One worker process of `c1m serve` (started by serve itself).
    #[command(hide = true)]
    ServeWorker(serve::ServeWorkerArgs),
    /// One worker process of `c1m flood` (started by flood itself).
    #[command(hide = true)]
    FloodShard(flood::FloodShardArgs),
}

/// Parse the process arguments, run the chosen command, map the outcome to
/// an exit status. Errors are printed with their whole context chain.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    quiet_on_broken_pipe();
    // A print to a closed stdout (`c1m doctor | head -1`) panics in std's
    // print macros; unwinding still runs every destructor (the lab's
    // rollback), then the process ends the way `ls | head` does.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(cli)));
    match result {
        Ok(Ok(code)) => code,
        Ok(Err(err)) if is_broken_pipe(&err) => die_of_sigpipe(),
        Ok(Err(err)) => {
            eprintln!("c1m: error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
        Err(payload) if panic_is_broken_pipe(payload.as_ref()) => die_of_sigpipe(),
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Doctor(args) => doctor::run(args),
        Command::Lab(args) => lab::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Flood(args) => flood::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::ServeWorker(args) => serve::run_worker(args),
        Command::FloodShard(args) => flood::run_shard(args),
    }
}

/// Whether a panic is std's "failed printing to stdout: Broken pipe".
fn panic_is_broken_pipe(payload: &(dyn std::any::Any + Send)) -> bool {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    text.contains("failed printing to std") && text.contains("Broken pipe")
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Keep the default panic message for every panic but a broken pipe.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !panic_is_broken_pipe(info.payload()) {
            default(info);
        }
    }));
}

/// End as a process killed by SIGPIPE (what `ls | head` does), quietly.
fn die_of_sigpipe() -> ExitCode {
    use nix::sys::signal::{SigHandler, Signal, raise, signal};
    // SAFETY: restoring the default disposition installs no handler.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
    }
    let _ = raise(Signal::SIGPIPE);
    ExitCode::from(EXIT_ERROR)
}
