//! The whole analysis and its two renderings: `analyze` reads every input
//! into sources, classifies them together, and renders the result as
//! tables and findings for people, or as one JSON document with stable
//! field names (documented in the README) for programs.
use std::fmt::Write as _;
use std::path::PathBuf;

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use serde::Serialize;

use super::classify::{self, Finding, SourceSummary, Totals};
use super::input::{self, Input};
use super::source::{self, FileStat, Kind, Source};
use crate::catalogue::FailureId;
use crate::util::thousands;

/// An input that could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct InputProblem {
    pub path: String,
    pub error: String,
}

/// What the plot needs of a source.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub kind: Kind,
    /// The x axis: seconds of summed `time_used` or of timestamps.
    pub points: Vec<(f64, f64)>,
    pub marks: Vec<(f64, f64, FailureId)>,
}

/// The result of `c1m analyze`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Schema version of this JSON document.
    pub version: u32,
    pub inputs: Vec<FileStat>,
    pub sources: Vec<SourceSummary>,
    pub totals: Totals,
    pub findings: Vec<Finding>,
    /// Inputs that could not be opened or read to the end.
    pub input_errors: Vec<InputProblem>,
    /// Logs from several hosts: a row per host and findings across them
    /// (see `diagnosis::hosts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<super::hosts::HostView>,
    #[serde(skip)]
    pub series: Vec<Series>,
}

/// Analyze the inputs named on the command line. Unreadable inputs are
/// reported in `errors`; the others are analyzed all the same.
pub fn analyze(paths: &[PathBuf]) -> Report {
    let (inputs, bad) = input::expand(paths);
    let mut errors: Vec<InputProblem> = bad
        .into_iter()
        .map(|e| InputProblem {
            path: e.path,
            error: e.error,
        })
        .collect();
    let mut sources: Vec<Source> = Vec::new();
    let mut stats = Vec::new();
    for inp in &inputs {
        let name = inp.name();
        match inp.open() {
            Ok(reader) => {
                let (srcs, stat) = source::read_input(&name, reader);
                if let Some(e) = &stat.error {
                    errors.push(InputProblem {
                        path: name.clone(),
                        error: e.clone(),
                    });
                }
                sources.extend(srcs);
                stats.push(stat);
            }
            Err(e) => errors.push(InputProblem {
                path: name,
                error: match inp {
                    Input::Stdin => format!("cannot read stdin: {e}"),
                    Input::File(_) => format!("cannot open: {e}"),
                },
            }),
        }
    }
    let mut report = from_sources(sources, stats, errors);
    report.hosts = super::hosts::view(paths, &report.sources, &report.findings);
    report
}

/// Classify already-read sources into a report.
pub fn from_sources(
    sources: Vec<Source>,
    inputs: Vec<FileStat>,
    errors: Vec<InputProblem>,
) -> Report {
    let c = classify::classify(&sources);
    let series = sources
        .iter()
        .zip(&c.sources)
        .filter(|(s, _)| !s.points.is_empty())
        .map(|(s, sum)| Series {
            name: sum.name.clone(),
            kind: sum.kind,
            points: s.points.clone(),
            marks: s.marks.clone(),
        })
        .collect();
    Report {
        version: 1,
        inputs,
        sources: c.sources,
        totals: c.totals,
        findings: c.findings,
        input_errors: errors,
        hosts: None,
        series,
    }
}

fn opt(n: Option<u64>) -> String {
    n.map(thousands).unwrap_or_else(|| "-".into())
}

/// Wrap `text` at `width` columns, each line after the first indented.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut col = 0;
    for word in text.split_whitespace() {
        let w = word.chars().count();
        if col > 0 && col + 1 + w > width {
            out.push('\n');
            out.push_str(indent);
            col = 0;
        } else if col > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += w;
    }
    out
}

impl Report {
    /// The human rendering: a table per source and totals, then findings,
    /// most important first.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let lines: u64 = self.inputs.iter().map(|i| i.lines).sum();
        let _ = writeln!(
            out,
            "c1m analyze: {} input{}, {} source{}, {} lines",
            self.inputs.len(),
            if self.inputs.len() == 1 { "" } else { "s" },
            self.sources.len(),
            if self.sources.len() == 1 { "" } else { "s" },
            thousands(lines)
        );
        let mut table = Table::new();
        table
            .load_style(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(150)
            .set_header(vec![
                "source",
                "kind",
                "last",
                "highest",
                "live (est.)",
                "closed",
                "conn/s",
                "time",
                "errors",
                "lines read/skip/bad",
            ]);
        for s in &self.sources {
            let errors: Vec<String> = s
                .errors
                .iter()
                .map(|(id, n)| format!("{id} {}", thousands(*n)))
                .collect();
            table.add_row(vec![
                Cell::new(&s.name),
                Cell::new(s.kind.as_str()),
                Cell::new(opt(s.connections_last)).set_alignment(CellAlignment::Right),
                Cell::new(opt(s.connections_max)).set_alignment(CellAlignment::Right),
                Cell::new(opt(s.connections_live_estimate)).set_alignment(CellAlignment::Right),
                Cell::new(opt(s.closed_by_client)).set_alignment(CellAlignment::Right),
                Cell::new(
                    s.rate_per_s
                        .map(|r| format!("{r:.0}"))
                        .unwrap_or_else(|| "-".into()),
                )
                .set_alignment(CellAlignment::Right),
                Cell::new(
                    s.elapsed_s
                        .map(|e| format!("{e:.0} s"))
                        .unwrap_or_else(|| "-".into()),
                )
                .set_alignment(CellAlignment::Right),
                Cell::new(if errors.is_empty() {
                    "-".to_string()
                } else {
                    errors.join("\n")
                }),
                Cell::new(format!(
                    "{}/{}/{}",
                    thousands(s.lines.read),
                    thousands(s.lines.skipped),
                    thousands(s.lines.corrupted)
                )),
            ]);
        }
        let t = &self.totals;
        if t.clients > 0 {
            table.add_row(vec![
                Cell::new(format!("all {} clients", t.clients)),
                Cell::new("total"),
                Cell::new(""),
                Cell::new(thousands(t.client_connections_printed))
                    .set_alignment(CellAlignment::Right),
                Cell::new(format!(
                    "{}{}",
                    if t.live_estimate_exact { "" } else { "≤ " },
                    thousands(t.client_connections_live_estimate)
                ))
                .set_alignment(CellAlignment::Right),
                Cell::new(thousands(t.client_closed_by_client)).set_alignment(CellAlignment::Right),
                Cell::new(
                    t.client_rate_mean_per_s
                        .map(|r| format!("{r:.0} avg"))
                        .unwrap_or_else(|| "-".into()),
                )
                .set_alignment(CellAlignment::Right),
                Cell::new(""),
                Cell::new(""),
                Cell::new(""),
            ]);
        }
        let _ = writeln!(out, "{table}");
        for s in &self.sources {
            for n in &s.notes {
                let _ = writeln!(out, "  {}: {}", s.name, wrap(n, 100, "      "));
            }
        }
        for n in &t.notes {
            let _ = writeln!(out, "  total: {}", wrap(n, 100, "      "));
        }
        for e in &self.input_errors {
            let _ = writeln!(out, "  error: {}: {}", e.path, e.error);
        }
        if let Some(h) = &self.hosts {
            let _ = write!(out, "\n{}", h.render());
        }
        let _ = writeln!(out);
        if self.findings.is_empty() {
            let _ = writeln!(out, "No failure found.");
            return out;
        }
        let _ = writeln!(out, "Findings, most important first:");
        let mut n = 0;
        for f in &self.findings {
            let cause = f.cause_of.is_some();
            let lead = if cause {
                "   ↳ cause:".to_string()
            } else {
                n += 1;
                format!("{n:>2}.")
            };
            let _ = writeln!(
                out,
                "\n{lead} {} [{}] {}, side: {}, {}in {}",
                f.id,
                f.certainty.as_str(),
                f.title,
                f.side,
                if f.count > 0 {
                    format!("seen {}x ", thousands(f.count))
                } else {
                    String::new()
                },
                f.source
            );
            let pad = if cause { "        " } else { "    " };
            for e in &f.evidence {
                let _ = writeln!(out, "{pad}{}:{}  {}", e.file, e.line, e.text);
            }
            let _ = writeln!(
                out,
                "{pad}what: {}",
                wrap(&f.explanation, 96, &format!("{pad}      "))
            );
            let _ = writeln!(
                out,
                "{pad}fix:  {}",
                wrap(&f.fix, 96, &format!("{pad}      "))
            );
            // A symptom's causes follow it, each with what to collect.
            let collect: &[String] = if f.caused_by.is_empty() {
                &f.collect
            } else {
                &[]
            };
            for c in collect {
                let _ = writeln!(
                    out,
                    "{pad}collect: {}",
                    wrap(c, 96, &format!("{pad}      "))
                );
            }
        }
        out
    }

    /// The JSON rendering (pretty-printed).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}
