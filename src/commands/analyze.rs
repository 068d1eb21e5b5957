//! `c1m analyze PATH...`: read client, server, kernel and counter logs
//! (files, directories, `-` for stdin, plain or gzip) and explain every
//! failure in them. The work is in `diagnosis::report`; this file only maps
//! flags to it and the outcome to an exit status.
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::{EXIT_ERROR, EXIT_FAIL};
use crate::diagnosis::classify::Certainty;
use crate::diagnosis::{plot, report};

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Log files or directories (walked recursively); `-` reads stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also draw connections over time per source into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Exit with 1 when a certain or likely failure was found (like a
    /// linter); by default analyzing successfully exits 0 whatever it finds.
    #[arg(long)]
    pub fail_on_findings: bool,
}

pub fn run(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let report = report::analyze(&args.paths);
    let text = if args.json {
        report.to_json() + "\n"
    } else {
        report.render()
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .context("cannot write the report to stdout")?;
    if let Some(path) = &args.plot {
        plot::write_svg(path, &report.series)?;
    }
    for e in &report.input_errors {
        eprintln!("c1m: error: {}: {}", e.path, e.error);
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
