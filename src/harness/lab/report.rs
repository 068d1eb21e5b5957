//! The lab's report files: report.json (stable field names) and report.md
//! (the same figures as tables, comfy-table's Markdown preset). report.md
//! shows only figures that mean something: a kernel memory figure below the
//! slab figure is noise (MemAvailable moves by less than the processes' RSS
//! at small targets) and says so; percentiles come in the order p50, p90,
//! p99, p99.9, max; rates and counts carry digit separators.
use std::path::Path;

use anyhow::{Context, Result};
use comfy_table::{Table, presets};

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

/// A figure rounded to a whole number, with digit separators.
fn whole(v: Option<f64>, unit: &str) -> String {
    v.map(|x| format!("{}{unit}", thousands(x.round().max(0.0) as u64)))
        .unwrap_or_else(|| "n/a".into())
}

/// A Markdown table with this header.
fn md_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::ASCII_MARKDOWN)
        .set_header(header.to_vec());
    t
}

/// Where a percentile key (`p50_ms`, `p99.9_ms`, `max_ms`) goes: p50, p90,
/// p99, p99.9, max, then anything else.
fn percentile_rank(key: &str) -> (u8, String) {
    let k = key.trim_end_matches("_ms");
    match k.strip_prefix('p').and_then(|n| n.parse::<f64>().ok()) {
        Some(n) => (0, format!("{:012.4}", n)),
        None if k == "max" => (1, String::new()),
        None => (2, k.to_string()),
    }
}

/// Percentiles in reading order: p50, p90, p99, p99.9, max.
fn ordered(map: &std::collections::BTreeMap<String, f64>) -> Vec<(&String, &f64)> {
    let mut v: Vec<(&String, &f64)> = map.iter().filter(|(k, _)| *k != "count").collect();
    v.sort_by_key(|(k, _)| percentile_rank(k));
    v
}

/// Kernel memory per connection: MemAvailable's drop minus the processes'
/// RSS. Below the slab figure (a part of it) it is noise: said so.
fn kernel_memory(r: &LabReport) -> String {
    match (r.kernel_bytes_per_connection, r.slab_bytes_per_connection) {
        (Some(k), Some(s)) if k < s => format!(
            "not measurable at this target (MemAvailable moved less than the slab's {} B per connection)",
            thousands(s.round() as u64)
        ),
        (Some(k), _) if k <= 0.0 => "not measurable at this target".into(),
        (k, _) => whole(k, " B"),
    }
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
    if let Some(c) = &r.ceiling {
        s.push_str(&format!("{}\n\n", super::ceiling_sentence(c)));
    }
    let mut t = md_table(&["measure", "value"]);
    let rows: Vec<(&str, String)> = vec![
        ("time to target", opt(r.time_to_target_s, " s")),
        ("connect rate", whole(r.connect_rate_per_s, " /s")),
        ("elapsed", format!("{:.1} s", r.elapsed_s)),
        ("server workers", thousands(r.server_workers)),
        (
            "clients spoke",
            r.protocol.clone().unwrap_or_else(|| "n/a".into()),
        ),
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
            kernel_memory(r),
        ),
        (
            "slab per connection",
            whole(r.slab_bytes_per_connection, " B"),
        ),
        ("private network namespace", r.private_netns.to_string()),
        ("lab profile applied", r.applied_profile.to_string()),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    s.push_str(&format!("{t}\n"));
    for (title, map) in [
        ("Echo round trip during the hold", &r.rtt_ms),
        (
            "Connect latency (connect + first echo)",
            &r.connect_latency_ms,
        ),
    ] {
        if !map.is_empty() {
            s.push_str(&format!("\n## {title}, worst client\n\n"));
            let mut t = md_table(&["percentile", "ms"]);
            for (k, v) in ordered(map) {
                t.add_row(vec![
                    k.trim_end_matches("_ms").to_string(),
                    format!("{v:.2}"),
                ]);
            }
            s.push_str(&format!("{t}\n"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_md_says_noise_orders_percentiles_and_separates_digits() {
        let mut r = LabReport {
            target: 5000,
            kernel_bytes_per_connection: Some(0.0),
            slab_bytes_per_connection: Some(9018.6),
            connect_rate_per_s: Some(22_860.4),
            ..Default::default()
        };
        for k in ["max_ms", "p50_ms", "p99.9_ms", "p90_ms", "p99_ms"] {
            r.connect_latency_ms.insert(k.into(), 1.0);
        }
        let md = markdown(&r);
        assert!(!md.contains("0.0 B"), "{md}");
        assert!(md.contains("not measurable at this target"), "{md}");
        assert!(md.contains("9,019 B"), "{md}");
        assert!(md.contains("22,860 /s"), "{md}");
        let at = |k: &str| {
            md.find(&format!("| {k} "))
                .unwrap_or_else(|| panic!("{k}: {md}"))
        };
        assert!(at("p50") < at("p90") && at("p90") < at("p99 ") && at("p99 ") < at("p99.9"));
        assert!(at("p99.9") < at("max"), "{md}");
        // A real kernel figure above the slab is shown, whole.
        r.kernel_bytes_per_connection = Some(11_234.4);
        assert!(markdown(&r).contains("| 11,234 B"), "{}", markdown(&r));
    }
}
