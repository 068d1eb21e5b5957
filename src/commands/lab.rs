//! `c1m lab`: flags in, the lab run (`harness::lab`) in the middle, the
//! report's path and the analysis out.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::harness::lab::{self, LabConfig, NetnsMode};
use crate::harness::scenarios::{self, Scenario};

use crate::sys::signals;
use crate::util::{parse_count, parse_duration, thousands};

#[derive(Debug, Args)]
pub struct LabArgs {
    /// Concurrent connections to reach (100k, 1M...).
    #[arg(short = 'n', long, default_value = "100000", value_parser = parse_count)]
    pub target: u64,
    /// Number of flood clients, each with its own source addresses.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub clients: u32,
    /// Server ports (consecutive from --port).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub ports: u16,
    /// First server port.
    #[arg(long, default_value_t = 8888, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// How long clients hold their connections once the target is reached.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub hold: Duration,
    /// Echo a message on every connection at this interval during the hold
    /// ("off" for none; "auto": about 10,000 messages a second in all, so
    /// the echoes measure round trips without saturating a small host).
    #[arg(long, default_value = "auto", value_parser = lab::parse_message_interval)]
    pub message_interval: lab::MessageInterval,
    /// Source addresses per client (127.0.K.1 - 127.0.K.N).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=254))]
    pub sources: u32,
    /// Apply the lab profile first, roll it back at the end.
    #[arg(long)]
    pub apply: bool,
    /// Profile --apply uses (a name in profiles/ or a file).
    #[arg(long, default_value = "lab")]
    pub profile: String,
    /// Run even when the capacity estimate says the target cannot fit.
    #[arg(long)]
    pub force: bool,
    /// Run in a private network namespace (auto: when permitted).
    #[arg(long, value_enum, default_value_t = NetnsMode::Auto)]
    pub netns: NetnsMode,
    /// Where report folders go.
    #[arg(long, default_value = "reports")]
    pub report: PathBuf,
    /// Give up if the target is not reached within this time.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub deadline: Duration,
    /// Progress as JSON lines.
    #[arg(short, long)]
    pub json: bool,
    /// Say less: no capacity preamble and no analysis, only the run's
    /// progress and its last line.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Provoke one failure for real and check that analyze names it
    /// ("all" runs every scenario).
    #[arg(long, value_name = "NAME")]
    pub scenario: Option<ScenarioChoice>,
}

/// `--scenario` values: one scenario, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioChoice {
    FdLimit,
    Ports,
    Refused,
    Backlog,
    Cap,
    All,
}

impl ScenarioChoice {
    fn scenarios(self) -> Vec<Scenario> {
        match self {
            ScenarioChoice::FdLimit => vec![Scenario::FdLimit],
            ScenarioChoice::Ports => vec![Scenario::Ports],
            ScenarioChoice::Refused => vec![Scenario::Refused],
            ScenarioChoice::Backlog => vec![Scenario::Backlog],
            ScenarioChoice::Cap => vec![Scenario::Cap],
            ScenarioChoice::All => Scenario::all().to_vec(),
        }
    }
}

/// [`say`], unless `quiet`.
fn say_unless(quiet: bool, json: bool, line: String) {
    if !quiet {
        say(json, line);
    }
}

/// A human line: on stdout, or on stderr when stdout carries JSON lines.
fn say(json: bool, line: String) {
    if json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// Run scenarios: each in its own folder, each checked against analyze.
fn run_scenarios(
    choice: ScenarioChoice,
    private: bool,
    root: &std::path::Path,
    json: bool,
) -> Result<ExitCode> {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .trim_end_matches('Z')
        .replace(':', "-");
    let base = root.join(format!("{stamp}-scenarios"));
    let mut all_named = true;
    for sc in choice.scenarios() {
        let out = scenarios::run(sc, &base.join(sc.name()), private)?;
        if json {
            println!("{}", serde_json::to_string(&out)?);
        } else if let Some(why) = &out.skipped {
            println!("scenario {}: SKIPPED: {why}", sc.name());
        } else {
            println!(
                "scenario {}: {}\n  analyze {} {} (found: {}); logs and analysis in {}",
                sc.name(),
                out.story,
                if out.named { "named" } else { "did NOT name" },
                out.expected,
                out.found
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                out.dir
            );
        }
        if out.skipped.is_none() && !out.named {
            all_named = false;
            if !json {
                println!("{}", out.analysis);
            }
        }
        if signals::stop_requested() {
            break;
        }
    }
    Ok(if all_named {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FAIL)
    })
}

pub fn run(args: LabArgs) -> Result<ExitCode> {
    signals::install()?;
    // First, before any thread exists: the namespace is per thread.
    let (private, note) = lab::enter_netns(args.netns)?;
    if let Some(choice) = args.scenario {
        if let Some(note) = note {
            println!("lab: {note}");
        }
        return run_scenarios(choice, private, &args.report, args.json);
    }
    let message_interval = args.message_interval.resolve(args.target);
    let cfg = LabConfig {
        target: args.target,
        clients: args.clients,
        ports: args.ports,
        base_port: args.port,
        hold: args.hold,
        message_interval,
        sources_per_client: args.sources,
        apply: args.apply,
        force: args.force,
        netns: args.netns,
        report_root: args.report,
        deadline: args.deadline,
        json: args.json,
    };
    let mut pre = lab::preflight(&cfg, &args.profile)?;
    let cap = &pre.capacity;
    say_unless(
        args.quiet,
        args.json,
        format!(
            "lab: {} connections, {} clients, {} ports; host capacity about {} connections ({} processes of at most {} sockets; binding: {}){}",
            thousands(cfg.target),
            cfg.clients,
            cfg.ports,
            thousands(cap.max_connections),
            cap.processes_needed,
            thousands(cap.per_process_sockets),
            cap.binding.label(),
            if private {
                ", in a private network namespace"
            } else {
                ""
            }
        ),
    );
    let mut notes: Vec<String> = note.into_iter().collect();
    notes.append(&mut pre.notes);
    let result = lab::run(&cfg, private, pre.applied.is_some(), notes);
    if let Some(applied) = pre.applied.as_mut() {
        let rb = applied.rollback()?;
        if rb.ok() {
            say(
                args.json,
                format!("lab: profile rolled back ({} keys restored)", rb.keys.len()),
            );
        } else {
            eprintln!("lab: rollback errors: {}", rb.errors.join("; "));
        }
    }
    let report = result?;
    if args.json {
        // The whole report.json as the last line.
        println!("{}", serde_json::to_string(&report)?);
    } else if !args.quiet {
        println!("{}", report.analysis);
    }
    say(
        args.json,
        format!(
            "lab: target {} {}: verified {}, time to target {}, report in {}",
            thousands(report.target),
            if report.reached {
                "reached"
            } else {
                "NOT reached"
            },
            thousands(report.verified),
            report
                .time_to_target_s
                .map(|t| format!("{t:.1} s"))
                .unwrap_or_else(|| "n/a".into()),
            report.report_dir
        ),
    );
    Ok(if report.reached {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FAIL)
    })
}
