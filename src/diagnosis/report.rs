//! The whole analysis and its two renderings: `analyze` reads every input
//! into sources, classifies them together, and renders the result as
//! tables and findings for people, or as one JSON document with stable
//! field names (documented in the README) for programs.
//!
//! The human rendering tells the story first: a verdict of at most five
//! lines (the total, how many are really alive, one cause per source in
//! words, what to do first), then the table, then the findings. Findings
//! are merged for people: a cause seen on several sources is one finding
//! listing them, with the cleanest lines as evidence. The JSON keeps one
//! finding per source (programs match on `source`) and adds the verdict.
use std::fmt::Write as _;
use std::path::PathBuf;

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use serde::Serialize;

use super::classify::{self, Finding, SourceSummary, Totals};
use super::input::{self, Input};
use super::source::{self, FileStat, Kind, Source};
use super::story::{self, verdict};
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
    /// Paths a directory walk left out on purpose (FIFOs, sockets, devices,
    /// a directory reached again through a link), with the reason.
    pub input_skipped: Vec<InputProblem>,
    /// The story in a few lines (the first lines of the human output).
    pub verdict: Vec<String>,
    /// Logs from several hosts: a row per host and findings across them
    /// (see `diagnosis::hosts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<super::hosts::HostView>,
    #[serde(skip)]
    pub series: Vec<Series>,
}

/// How the human rendering is laid out.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Columns to fit.
    pub width: usize,
    /// Table borders.
    pub borders: bool,
}

impl Default for Style {
    fn default() -> Style {
        Style {
            width: 100,
            borders: true,
        }
    }
}

/// Analyze the inputs named on the command line. Unreadable inputs are
/// reported in `errors`; the others are analyzed all the same.
pub fn analyze(paths: &[PathBuf]) -> Report {
    let expanded = input::expand(paths);
    let problem = |e: input::InputError| InputProblem {
        path: e.path,
        error: e.error,
    };
    let mut errors: Vec<InputProblem> = expanded.errors.into_iter().map(problem).collect();
    let skipped: Vec<InputProblem> = expanded.skipped.into_iter().map(problem).collect();
    let inputs = expanded.inputs;
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
                    Input::File(_) | Input::Found(_) => format!("cannot open: {e}"),
                },
            }),
        }
    }
    let mut report = from_sources(sources, stats, errors);
    report.input_skipped = skipped;
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
    let verdict = verdict(&c.sources, &c.totals, &c.findings);
    Report {
        version: 1,
        inputs,
        sources: c.sources,
        totals: c.totals,
        findings: c.findings,
        input_errors: errors,
        input_skipped: Vec::new(),
        verdict,
        hosts: None,
        series,
    }
}

fn opt(n: Option<u64>) -> String {
    n.map(thousands).unwrap_or_else(|| "-".into())
}

/// `first` then `text` wrapped at `width` display columns, each line
/// after the first starting with `indent`.
fn wrap(first: &str, text: &str, width: usize, indent: &str) -> String {
    let mut out = first.to_string();
    let mut col = story::width(first);
    let mut fresh = true;
    for word in text.split_whitespace() {
        let w = story::width(word);
        if !fresh && col + 1 + w > width {
            out.push('\n');
            out.push_str(indent);
            col = story::width(indent);
            fresh = true;
        }
        if !fresh {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += w;
        fresh = false;
    }
    out
}

/// Cut `text` to `width` display columns, marking the cut with `…`.
fn cut(text: &str, width: usize) -> String {
    if story::width(text) <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in text.chars() {
        let cw = story::width(c.encode_utf8(&mut [0; 4]));
        if w + cw + 1 > width {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

impl Report {
    /// Whether any input held a record c1m recognizes (a progress line, an
    /// error line, a kernel line, a counter, a JSON record).
    pub fn recognized(&self) -> bool {
        self.sources.iter().any(|s| s.lines.recognized > 0)
    }

    /// The human rendering when no line of any input was recognised: what
    /// was read, and the first lines of each file, so the reader sees what
    /// the files hold (never a clean run).
    pub fn render_unrecognized(&self) -> String {
        let mut out = String::new();
        let lines: u64 = self.inputs.iter().map(|i| i.lines).sum();
        let _ = writeln!(
            out,
            "c1m analyze: {} input{}, {} lines: no C1M records recognised",
            self.inputs.len(),
            if self.inputs.len() == 1 { "" } else { "s" },
            thousands(lines)
        );
        for i in self.inputs.iter().filter(|i| !i.samples.is_empty()) {
            let file = i.path.rsplit('/').next().unwrap_or(&i.path);
            let _ = writeln!(
                out,
                "{} holds lines like these (the first {}):",
                i.path,
                i.samples.len()
            );
            for s in &i.samples {
                let _ = writeln!(out, "  {file}:{}  {}", s.line, s.text);
            }
        }
        out
    }

    /// The human rendering at the default style (100 columns, borders).
    pub fn render(&self) -> String {
        self.render_with(Style::default())
    }

    /// The human rendering: the verdict, a table per source and totals,
    /// notes, then the findings merged per cause, most important first;
    /// every line fitted to `style.width`.
    pub fn render_with(&self, style: Style) -> String {
        let width = style.width;
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
        for l in &self.verdict {
            let (first, text) = match l.strip_prefix("  ") {
                Some(t) => ("  ", t),
                None => ("", l.as_str()),
            };
            let indent = if first.is_empty() { "  " } else { "    " };
            let _ = writeln!(out, "{}", wrap(first, text, width, indent));
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", self.table(style));
        for s in &self.sources {
            let who = story::short_name(&s.name);
            for n in &s.notes {
                let _ = writeln!(out, "{}", wrap(&format!("  {who}: "), n, width, "      "));
            }
        }
        for n in &self.totals.notes {
            let _ = writeln!(out, "{}", wrap("  total: ", n, width, "      "));
        }
        if let Some(h) = &self.hosts {
            let _ = write!(out, "\n{}", h.render());
        }
        let _ = writeln!(out);
        if self.findings.is_empty() {
            let _ = writeln!(out, "No failure found.");
            return out;
        }
        let _ = writeln!(out, "Findings, most important first (one per cause):");
        for (n, m) in story::merge(&self.findings).iter().enumerate() {
            self.render_finding(&mut out, m, &format!("{:>2}.", n + 1), width);
            for c in &m.causes {
                self.render_finding(&mut out, c, "   ↳ cause:", width);
            }
        }
        out
    }

    fn render_finding(&self, out: &mut String, f: &story::Merged, lead: &str, width: usize) {
        let pad = if f.is_cause { "        " } else { "    " };
        let head = format!(
            "{} [{}] {}, side: {}, {}in {}{}",
            f.id,
            f.certainty.as_str(),
            f.title,
            f.side,
            if f.count > 0 {
                format!("seen {}x ", thousands(f.count))
            } else {
                String::new()
            },
            f.sources.join(", "),
            f.first_ts
                .map(|t| format!(", first at {}", super::timestamps::clock(t)))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "\n{}", wrap(&format!("{lead} "), &head, width, pad));
        for e in &f.evidence {
            let file = e.file.rsplit('/').next().unwrap_or(&e.file);
            let _ = writeln!(
                out,
                "{}",
                cut(&format!("{pad}{file}:{}  {}", e.line, e.text), width)
            );
        }
        let ind = format!("{pad}      ");
        let _ = writeln!(
            out,
            "{}",
            wrap(&format!("{pad}what: "), &f.explanation, width, &ind)
        );
        let _ = writeln!(
            out,
            "{}",
            wrap(&format!("{pad}fix:  "), &f.fix, width, &ind)
        );
        // A symptom's causes follow it, each with what to collect.
        if f.causes.is_empty() {
            for c in &f.collect {
                let _ = writeln!(out, "{}", wrap(&format!("{pad}collect: "), c, width, &ind));
            }
        }
    }

    /// The per-source table. Below 120 columns it keeps the columns a
    /// reader needs (source, last, highest, alive, closed, conn/s, errors).
    fn table(&self, style: Style) -> Table {
        let wide = style.width >= 120;
        let mut table = Table::new();
        table
            .load_style(if style.borders {
                presets::UTF8_FULL_CONDENSED
            } else {
                presets::NOTHING
            })
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(style.width.min(u16::MAX as usize) as u16);
        let mut header = vec![
            "source",
            "kind",
            "last",
            "highest",
            "alive (est.)",
            "closed",
        ];
        header.extend(["conn/s", "time", "errors", "lines read/skip/bad"]);
        if !wide {
            header = vec![
                "source", "last", "highest", "alive", "closed", "conn/s", "errors",
            ];
        }
        table.set_header(header);
        let right = |t: String| Cell::new(t).set_alignment(CellAlignment::Right);
        for s in &self.sources {
            let errors: Vec<String> = s
                .errors
                .iter()
                .map(|(id, n)| format!("{id} {}", thousands(*n)))
                .collect();
            // A server whose count fell without a failure was closing (a
            // normal teardown), not losing connections.
            let last = match (s.kind, s.connections_last, s.connections_max) {
                (Kind::Server, Some(l), Some(m)) if l < m && s.errors.is_empty() => {
                    "closing".to_string()
                }
                (_, l, _) => opt(l),
            };
            let rate = s
                .rate_per_s
                .map(|r| thousands(r.round() as u64))
                .unwrap_or_else(|| "-".into());
            let errors = if errors.is_empty() {
                "-".to_string()
            } else {
                errors.join("\n")
            };
            let name = if wide {
                s.name.clone()
            } else {
                story::short_name(&s.name)
            };
            let mut row = vec![Cell::new(name)];
            if wide {
                row.push(Cell::new(s.kind.as_str()));
            }
            row.extend([
                right(last),
                right(opt(s.connections_max)),
                right(opt(s.connections_live_estimate)),
                right(opt(s.closed_by_client)),
                right(rate),
            ]);
            if wide {
                row.push(right(
                    s.elapsed_s
                        .map(|e| format!("{e:.0} s"))
                        .unwrap_or_else(|| "-".into()),
                ));
            }
            row.push(Cell::new(errors));
            if wide {
                row.push(Cell::new(format!(
                    "{}/{}/{}",
                    thousands(s.lines.read),
                    thousands(s.lines.skipped),
                    thousands(s.lines.corrupted)
                )));
            }
            table.add_row(row);
        }
        let t = &self.totals;
        if t.clients > 0 {
            let mut row = vec![Cell::new(if t.clients == 1 {
                "1 client".to_string()
            } else {
                format!("all {} clients", t.clients)
            })];
            if wide {
                row.push(Cell::new("total"));
            }
            row.extend([
                Cell::new(""),
                right(thousands(t.client_connections_printed)),
                right(format!(
                    "{}{}",
                    if t.live_estimate_exact { "" } else { "≤ " },
                    thousands(t.client_connections_live_estimate)
                )),
                right(thousands(t.client_closed_by_client)),
                right(
                    t.client_rate_mean_per_s
                        .map(|r| format!("{} avg", thousands(r.round() as u64)))
                        .unwrap_or_else(|| "-".into()),
                ),
            ]);
            table.add_row(row);
        }
        table
    }

    /// The JSON rendering (pretty-printed).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}
