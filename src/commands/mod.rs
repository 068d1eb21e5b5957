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

/// The version and the git revision the binary was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("C1M_GIT_REV"),
    ")"
);

const MAIN_HELP: &str = "\
Examples:
  c1m doctor -n 1M                      can this host hold a million connections?
  c1m lab                               the whole experiment here, 100,000 connections
  c1m serve --bind localhost            the echo server on 8888-8907
  c1m flood 127.0.0.1 8888 -c 5000      open, verify and hold 5,000 connections for 10 s
  c1m analyze tests/fixtures/seed.txt   the seed's story, verdict first
  c1m completions bash > /etc/bash_completion.d/c1m
  c1m man > c1m.1

Exit status: 0 success, 1 the check or run failed, 2 usage or internal error.";

const DOCTOR_HELP: &str = "\
Examples:
  c1m doctor -n 1M                        server role, a million connections
  c1m doctor --role lab -n 1000 --all     both ends here, every row
  c1m doctor --role client -n 200k --sources 127.0.0.2-127.0.0.11
  sudo c1m doctor --apply --persist       write the failing settings, keep them
  sudo c1m doctor --rollback              put everything back

Exit status: 0 the target fits as things stand (failing rows that do not
block it are recommendations); 1 something blocks the target (the verdict
names it, and whether --apply fixes it), or --apply/--rollback failed; 2
usage or internal error.";

const LAB_HELP: &str = "\
Examples:
  c1m lab                           100,000 connections, 3 clients, 20 ports
  c1m lab -n 1M                     the full experiment
  c1m lab -n 1.5M --apply           apply the lab profile, roll it back after
  c1m lab --scenario all            provoke every failure; analyze must name it

Exit status: 0 the target was reached and verified (or every scenario was
named); 1 not; 2 usage or internal error.";

const SERVE_HELP: &str = "\
Examples:
  c1m serve                                       0.0.0.0:8888-8907
  c1m serve --bind localhost --port 11000 --max-connections 100k
  c1m serve -j > serve.log                        JSON lines for c1m analyze

Exit status: 0 stopped by a signal after a clean run, 1 a worker failed, 2
usage or internal error.";

const FLOOD_HELP: &str = "\
Examples:
  c1m flood 127.0.0.1 8888 -c 5000               5,000 connections, held 10 s
  c1m flood 127.0.0.1 8888 -c 200k -r 5k -T forever --sources 127.0.0.2-127.0.0.20
  c1m flood localhost 8888 -c 1000 -j > client.log
  c1m flood 127.0.0.1 8888 -c 5000 -q            failures and verdict only

Exit status: 0 target reached, verified and held; 1 not (with the reason);
2 usage error.";

const ANALYZE_HELP: &str = "\
Examples:
  c1m analyze tests/fixtures/seed.txt        verdict, table, findings
  c1m analyze -j reports/latest/logs/        one JSON document
  dmesg | c1m analyze client.log -           stdin too
  c1m analyze --width 80 --format plain logs/

Exit status: 0 analyzed, whatever it found (1 with --fail-on-findings and a
certain or likely finding); 2 usage error, an input that cannot be read, or
no C1M record recognized in the inputs.";

#[derive(Debug, Parser)]
#[command(
    name = "c1m",
    version = VERSION,
    about = "Take a Linux server past one million concurrent TCP connections, and explain every shortfall",
    after_help = MAIN_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check this host for a C1M run: limits, kernel settings, capacity;
    /// apply, persist or roll back a tuning profile.
    #[command(after_help = DOCTOR_HELP)]
    Doctor(doctor::DoctorArgs),
    /// Run the whole C1M experiment on this machine and write a report.
    #[command(after_help = LAB_HELP)]
    Lab(lab::LabArgs),
    /// Multi-port, multi-process epoll echo server for a million connections.
    #[command(after_help = SERVE_HELP)]
    Serve(serve::ServeArgs),
    /// Open, verify and hold many TCP connections (the multi-port client).
    #[command(after_help = FLOOD_HELP)]
    Flood(flood::FloodArgs),
    /// Explain every failure in C1M client and server logs.
    #[command(after_help = ANALYZE_HELP)]
    Analyze(analyze::AnalyzeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell).
    #[command(
        after_help = "Examples:\n  c1m completions bash > /etc/bash_completion.d/c1m\n  c1m completions zsh > ~/.zfunc/_c1m\n  c1m completions fish > ~/.config/fish/completions/c1m.fish\n\nExit status: 0 printed, 2 usage error."
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of c1m, or of one command.
    #[command(
        after_help = "Examples:\n  c1m man > c1m.1 && man ./c1m.1\n  c1m man doctor > c1m-doctor.1\n\nExit status: 0 printed, 2 usage or write error."
    )]
    Man {
        /// A command (doctor, lab, serve, flood, analyze).
        command: Option<String>,
    },
    /// One worker process of `c1m serve` (started by serve itself).
    #[command(hide = true)]
    ServeWorker(serve::ServeWorkerArgs),
    /// One worker process of `c1m flood` (started by flood itself).
    #[command(hide = true)]
    FloodShard(flood::FloodShardArgs),
    /// A real server for `c1m lab --server` (started by the lab itself).
    #[command(hide = true)]
    LabServer(crate::harness::server::LabServerArgs),
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
    let name = cli.command.name();
    quiet_on_broken_pipe();
    // A print to a closed stdout (`c1m doctor | head -1`) panics in std's
    // print macros; unwinding still runs every destructor (the lab's
    // rollback), then the process ends the way `ls | head` does.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(cli)));
    match result {
        Ok(Ok(code)) => code,
        Ok(Err(err)) if is_broken_pipe(&err) => die_of_sigpipe(),
        Ok(Err(err)) => {
            // One style for every error: `c1m <command>: error: ...`.
            eprintln!("c1m {name}: error: {err:#}");
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
        Command::Completions { shell } => completions(shell),
        Command::Man { command } => man(command),
        Command::ServeWorker(args) => serve::run_worker(args),
        Command::FloodShard(args) => flood::run_shard(args),
        Command::LabServer(args) => crate::harness::server::run(args),
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

impl Command {
    /// The subcommand's name, for error prefixes.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Doctor(_) => "doctor",
            Command::Lab(_) => "lab",
            Command::Serve(_) => "serve",
            Command::Flood(_) => "flood",
            Command::Analyze(_) => "analyze",
            Command::Completions { .. } => "completions",
            Command::Man { .. } => "man",
            Command::ServeWorker(_) => "serve-worker",
            Command::FloodShard(_) => "flood-shard",
            Command::LabServer(_) => "lab-server",
        }
    }
}

/// `c1m completions SHELL`: the completion script on stdout.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "c1m", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// `c1m man [COMMAND]`: the manual page of c1m, or of one command.
fn man(command: Option<String>) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use clap::CommandFactory;
    use std::io::Write;
    let cmd = Cli::command();
    let page = match &command {
        None => cmd,
        Some(name) => match cmd
            .get_subcommands()
            .find(|s| s.get_name() == name && !s.is_hide_set())
        {
            Some(sub) => sub.clone().bin_name(format!("c1m {name}")),
            None => anyhow::bail!(
                "no command '{name}' (doctor, lab, serve, flood, analyze, completions, man)"
            ),
        },
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .context("rendering the manual page")?;
    std::io::stdout()
        .lock()
        .write_all(&out)
        .context("writing the manual page to stdout")?;
    Ok(ExitCode::SUCCESS)
}
