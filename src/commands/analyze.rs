//! `c1m analyze PATH...`: read client, server, kernel and counter logs
//! (files, directories, `-` for stdin, plain or gzip) and explain every
//! failure in them. The work is in `diagnosis::report`; this file only maps
//! flags to it and the outcome to an exit status: 0 analyzed (whatever it
//! found, unless --fail-on-findings), 1 a finding with --fail-on-findings,
//! 2 an input that cannot be read or no C1M record recognized at all.
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::{EXIT_ERROR, EXIT_FAIL, Layout};
use crate::diagnosis::classify::Certainty;
use crate::diagnosis::{plot, report};

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Log files or directories (walked recursively); `-` reads stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Print one JSON document instead of tables.
    #[arg(short, long)]
    pub json: bool,
    /// Also draw connections over time per source into this SVG file (a
    /// name ending in another extension, x.png, is written as x.svg).
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Exit with 1 when a certain or likely failure was found (like a
    /// linter); by default analyzing successfully exits 0 whatever it finds.
    #[arg(long)]
    pub fail_on_findings: bool,
    /// Print only the verdict (the first lines of the report).
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    #[command(flatten)]
    pub layout: Layout,
}

pub fn run(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let report = report::analyze(&args.paths);
    // Nothing recognized is not a clean bill of health: say so, exit 2.
    let nothing = !report.recognized();
    let text = if args.json {
        report.to_json() + "\n"
    } else if nothing {
        report.render_unrecognized()
    } else if args.quiet {
        report.verdict.join("\n") + "\n"
    } else {
        report.render_with(report::Style {
            width: usize::from(args.layout.columns()),
            borders: args.layout.borders(),
        })
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .context("cannot write the report to stdout")?;
    for s in &report.input_skipped {
        eprintln!("c1m analyze: note: {}: skipped: {}", s.path, s.error);
    }
    // Each unreadable input is said once, here.
    for e in &report.input_errors {
        eprintln!("c1m analyze: error: {}: {}", e.path, e.error);
    }
    if nothing {
        let read: Vec<String> = report.inputs.iter().map(|i| i.path.clone()).collect();
        let lines: u64 = report.inputs.iter().map(|i| i.lines).sum();
        if !read.is_empty() || report.input_errors.is_empty() {
            eprintln!(
                "c1m analyze: error: no C1M records recognized in {} ({} lines read): expected c1m JSON lines, the seed's client/server output, kernel logs or counters",
                if read.is_empty() {
                    args.paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                } else {
                    read.join(", ")
                },
                crate::util::thousands(lines)
            );
        }
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    if let Some(path) = &args.plot {
        // The plot is SVG: a path with another extension (x.png) gets .svg,
        // and the user is told where it went.
        let is_svg = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
        let svg = if is_svg {
            path.clone()
        } else {
            path.with_extension("svg")
        };
        plot::write_svg(&svg, &report.series)?;
        if !is_svg {
            eprintln!(
                "c1m analyze: note: --plot writes SVG: wrote {} (not {})",
                svg.display(),
                path.display()
            );
        }
    }
    if !report.input_errors.is_empty() {
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    if args.fail_on_findings
        && report
            .findings
            .iter()
            .any(|f| f.certainty <= Certainty::Likely)
    {
        return Ok(ExitCode::from(EXIT_FAIL));
    }
    Ok(ExitCode::SUCCESS)
}
