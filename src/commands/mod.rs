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
    let result: anyhow::Result<ExitCode> = match cli.command {
        Command::Doctor(args) => doctor::run(args),
        Command::Lab(args) => lab::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Flood(args) => flood::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::ServeWorker(args) => serve::run_worker(args),
        Command::FloodShard(args) => flood::run_shard(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("c1m: error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
