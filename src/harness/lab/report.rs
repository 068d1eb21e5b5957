//! The lab's report files: report.json (stable field names) and report.md
//! (the same figures as tables).
use std::path::Path;

use anyhow::{Context, Result};

use crate::sys::probe::CounterSet;
use crate::util::thousands;

use super::LabReport;

pub(super) fn write_reports(dir: &Path, report: &LabReport) -> Result<()> {
    let json = serde_json::to_string_pretty(report).context("encoding report.json")?;
    std::fs::write(dir.join("report.json"), json + "\n")
        .with_context(|| format!("writing {}/report.json", dir.display()))?;
    std::fs::write(dir.join("report.md"), markdown(report))
        .with_context(|| format!("writing {}/report.md", dir.display()))?;
    Ok(())
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map(|x| format!("{x:.1}{unit}"))
        .unwrap_or_else(|| "n/a".into())
}

/// report.md: the same numbers as tables.
pub fn markdown(r: &LabReport) -> String {
    let mut s = String::new();
    s.push_str(&format!("# c1m lab report, {}\n\n", r.started));
    s.push_str(&format!(
        "Target **{}** connections: **{}**. Verified {}, peak {}.\n\n",
        thousands(r.target),
        if r.reached { "reached" } else { "not reached" },
        thousands(r.verified),
        thousands(r.peak_connections)
    ));
    s.push_str("| measure | value |\n|---|---|\n");
    let rows: Vec<(&str, String)> = vec![
        ("time to target", opt(r.time_to_target_s, " s")),
        ("connect rate", opt(r.connect_rate_per_s, " /s")),
        ("elapsed", format!("{:.1} s", r.elapsed_s)),
        ("server workers", r.server_workers.to_string()),
        (
            "server peak connections",
            thousands(r.server_peak_connections),
        ),
        (
            "server user memory per connection (RSS above baseline)",
            opt(r.server_user_bytes_per_connection, " B"),
        ),
        (
            "client RSS per connection (incl. process baselines)",
            opt(r.client_user_bytes_per_connection, " B"),
        ),
        (
            "kernel memory per connection (MemAvailable)",
            opt(r.kernel_bytes_per_connection, " B"),
        ),
        (
            "slab per connection",
            opt(r.slab_bytes_per_connection, " B"),
        ),
        ("private network namespace", r.private_netns.to_string()),
        ("lab profile applied", r.applied_profile.to_string()),
    ];
    for (k, v) in rows {
        s.push_str(&format!("| {k} | {v} |\n"));
    }
    for (title, map) in [
        ("Echo round trip during the hold", &r.rtt_ms),
        (
            "Connect latency (connect + first echo)",
            &r.connect_latency_ms,
        ),
    ] {
        if !map.is_empty() {
            s.push_str(&format!(
                "\n## {title}, worst client\n\n| percentile | ms |\n|---|---|\n"
            ));
            for (k, v) in map {
                s.push_str(&format!("| {} | {v:.2} |\n", k.trim_end_matches("_ms")));
            }
        }
    }
    s.push_str("\n## Clients\n\n| client | sources | target | verified | failed | exit |\n|---|---|---|---|---|---|\n");
    for c in &r.clients {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            c.index,
            c.sources,
            thousands(c.target),
            thousands(c.established),
            thousands(c.failed),
            c.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into())
        ));
    }
    if !r.failures.is_empty() {
        s.push_str("\n## Failures by class\n\n| class | count |\n|---|---|\n");
        for (k, v) in &r.failures {
            s.push_str(&format!("| {k} | {} |\n", thousands(*v)));
        }
    }
    // The run's counters next to the teardown's: a mass close moves its own.
    let mut names: Vec<&String> = r
        .counters
        .keys()
        .chain(r.teardown_counters.keys())
        .collect();
    names.sort();
    names.dedup();
    if !names.is_empty() {
        s.push_str(
            "\n## Kernel counters that moved (nstat deltas)\n\n| counter | start to end of hold | teardown |\n|---|---|---|\n",
        );
        let cell = |m: &CounterSet, k: &String| m.get(k).map(|v| thousands(*v)).unwrap_or_default();
        for k in names {
            s.push_str(&format!(
                "| {k} | {} | {} |\n",
                cell(&r.counters, k),
                cell(&r.teardown_counters, k)
            ));
        }
    }

    s.push_str(&format!(
        "\n## Kernel log\n\n{} new line(s)",
        r.kernel_lines.len()
    ));
    if r.kernel_lines.is_empty() {
        s.push_str(".\n");
    } else {
        s.push_str(":\n\n```\n");
        for l in r.kernel_lines.iter().take(50) {
            s.push_str(l);
            s.push('\n');
        }
        s.push_str("```\n");
    }
    s.push_str("\n## Findings (`c1m analyze logs/`)\n\n");
    if r.findings.is_empty() {
        s.push_str("None: no failure shows in the logs or counters.\n");
    }
    for f in &r.findings {
        s.push_str(&format!(
            "- **{}** [{}], {}, {}: {}. Fix: {}\n",
            f.id,
            f.certainty.as_str(),
            f.side,
            f.source,
            f.explanation.trim_end_matches('.'),
            f.fix
        ));
    }
    if !r.notes.is_empty() {
        s.push_str("\n## Notes\n\n");

        for n in &r.notes {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s.push_str("\n![connections over time](connections.svg)\n");
    s
}
