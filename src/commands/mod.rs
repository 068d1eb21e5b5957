//! The command line: one thin file per subcommand, in the manner of cargo's
//! `src/bin/cargo/commands/`. Each file defines its clap `Args` and a `run`
//! that calls into the library and renders the result. Exit statuses are the
//! same for every command: 0 success, 1 the check or run failed, 2 a usage or
//! internal error.
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use comfy_table::{ContentArrangement, Table, presets};

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

/// How human tables render: `auto` draws borders on a terminal and plain
/// columns when stdout is a pipe or a file; `table` and `plain` force one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Auto,
    Table,
    Plain,
}

/// The width and style of human output, shared by doctor and analyze.
#[derive(Debug, Clone, clap::Args)]
pub struct Layout {
    /// Table style: auto (borders on a terminal, plain when piped), table,
    /// plain.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
    /// Fit human output to this many columns [default: the terminal's,
    /// else $COLUMNS, else 100].
    #[arg(long, value_parser = clap::value_parser!(u16).range(40..))]
    pub width: Option<u16>,
}

impl Layout {
    /// The width to fit: `--width`, the terminal's, `$COLUMNS`, else 100.
    pub fn columns(&self) -> u16 {
        if let Some(w) = self.width {
            return w;
        }
        if std::io::stdout().is_terminal()
            && let Some((w, _)) = terminal_width()
        {
            return w;
        }
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<u16>().ok())
            .filter(|&w| w >= 40)
            .unwrap_or(100)
    }

    /// Whether to draw borders.
    pub fn borders(&self) -> bool {
        match self.format {
            Format::Auto => std::io::stdout().is_terminal(),
            Format::Table => true,
            Format::Plain => false,
        }
    }

    /// A table in the shared style, fitted to [`Layout::columns`]: cells wrap
    /// at word boundaries and columns shrink to the width.
    pub fn table(&self, header: &[&str]) -> Table {
        let mut t = Table::new();
        t.load_style(if self.borders() {
            presets::UTF8_FULL_CONDENSED
        } else {
            presets::NOTHING
        })
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(self.columns())
        .set_header(header.to_vec());
        t
    }
}

fn terminal_width() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills a winsize; fd 1 is ours.
    let rc = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Wrap `text` at word boundaries into lines of at most `width` characters
/// (a word longer than the width gets a line of its own).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// Print `text` wrapped to `width`, the first line after `first`, the
/// others indented to match.
pub fn print_wrapped(first: &str, text: &str, width: u16) {
    let indent = " ".repeat(first.chars().count());
    let room = usize::from(width).saturating_sub(indent.len()).max(20);
    for (i, line) in wrap(text, room).iter().enumerate() {
        println!("{}{line}", if i == 0 { first } else { &indent });
    }
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
