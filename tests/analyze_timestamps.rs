//! Timestamps in real programs' logs (tests/fixtures/timestamps, made by
//! its make.sh: Python's logging asctime, Node's toISOString,
//! java.util.logging's two-line form, and two Python processes appending
//! `NAME[pid]:` lines to one file): the connect rate comes from the clock,
//! each finding says when it was first seen, the failure that began first
//! comes first, and interleaved processes are said and separated. Plus
//! nginx's Go-style stamps and journalctl's short form on existing fixtures.
use serde_json::Value;

mod common;

use common::*;

/// The source of `report` whose name ends with `name`.
fn source<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["name"].as_str().is_some_and(|f| f.ends_with(name)))
        .unwrap_or_else(|| panic!("no source {name}: {:#}", report["sources"]))
}

/// The finding `id` of the source named `name` (its full name).
fn finding<'a>(report: &'a Value, id: &str, name: &str) -> &'a Value {
    findings_with(report, id)
        .into_iter()
        .find(|f| f["source"] == name)
        .unwrap_or_else(|| panic!("no {id} in {name}: {:#}", report["findings"]))
}

#[test]
fn stamped_runs_get_their_failure_count_and_a_rate_by_the_clock() {
    for (file, count, stamp) in [
        ("python_logging.log", 300, "2026-12-02T"),
        ("node_iso.log", 300, "2026-12-02T"),
        ("java_logging.log", 300, "2026-12-02T"),
    ] {
        let report = analyze_json(&[fixture(&format!("timestamps/{file}"))]);
        let s = source(&report, file);
        assert_eq!(s["connections_max"], count, "{file}");
        // The programs pause 50 ms after every 10 connections: at most
        // 200 connections/s by the clock, and the lines span seconds.
        let rate = s["rate_per_s"].as_f64().unwrap_or(0.0);
        assert!(rate > 20.0 && rate <= 200.0, "{file}: {rate}");
        let elapsed = s["elapsed_s"].as_f64().unwrap_or(0.0);
        assert!(elapsed >= 1.5, "{file}: {elapsed}");
        let notes = s["notes"].to_string();
        assert!(notes.contains("connections/s by the timestamps"), "{notes}");
        let name = s["name"].as_str().unwrap();
        let f = finding(&report, "connection_refused", name);
        let seen = f["first_seen"].as_str().unwrap_or("");
        assert!(seen.starts_with(stamp), "{file}: first seen {seen:?}");
    }
}

#[test]
fn interleaved_processes_are_said_and_separated_and_the_first_failure_leads() {
    let path = fixture("timestamps/interleaved.log");
    let report = analyze_json(&[&path]);
    let input = &report["inputs"][0];
    let procs: Vec<&str> = input["processes"]
        .as_array()
        .expect("the processes of the file")
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(procs.len(), 2, "{procs:?}");
    assert!(
        procs[0].starts_with("alpha[") && procs[1].starts_with("beta["),
        "{procs:?}"
    );
    assert_eq!(input["interleaved"], true);
    let alpha = source(&report, &format!("[{}]", procs[0]));
    let beta = source(&report, &format!("[{}]", procs[1]));
    // alpha ran out of its 128 descriptors; beta was refused after 50.
    let alpha_max = alpha["connections_max"].as_u64().unwrap();
    assert!((100..128).contains(&alpha_max), "{alpha_max}");
    assert_eq!(beta["connections_max"], 50);
    let fd = finding(&report, "fd_limit", alpha["name"].as_str().unwrap());
    let refused = finding(
        &report,
        "connection_refused",
        beta["name"].as_str().unwrap(),
    );
    assert!(findings_with(&report, "connection_refused").len() == 1);
    // beta's refusal began first by the clock, though alpha's lines come
    // first in the file: it leads the findings.
    assert!(
        refused["first_seen"].as_str() < fd["first_seen"].as_str(),
        "{refused:#}\n{fd:#}"
    );
    let ids = finding_ids(&report);
    let at = |id: &str| ids.iter().position(|i| *i == id).unwrap();
    assert!(at("connection_refused") < at("fd_limit"), "{ids:?}");
    let totals = report["totals"]["notes"].to_string();
    assert!(
        totals.contains("the first failure was connection_refused in beta["),
        "{totals}"
    );
    // The human report says the file mixes two processes.
    let out = run_c1m(&["analyze", "--width", "200", &path]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("interleaves the lines of 2 processes"),
        "{text}"
    );
}

#[test]
fn go_style_and_journal_stamps_date_their_findings() {
    // nginx's error.log (a real run, tests/fixtures/runtimes/make.sh)
    // stamps its lines as Go's log package does: `2026/12/02 18:58:26`.
    let report = analyze_json(&[fixture("runtimes/nginx_fd.log")]);
    let fd = &findings_with(&report, "fd_limit")[0];
    let seen = fd["first_seen"].as_str().unwrap_or("");
    assert!(seen.starts_with("2026-12-02T18:58:2"), "{seen:?}");
    // journalctl's short form has no year: the time of day is what it says.
    let report = analyze_json(&[fixture("classes/conntrack_full_journald.log")]);
    let ct = &findings_with(&report, "conntrack_full")[0];
    let seen = ct["first_seen"].as_str().unwrap_or("");
    assert!(seen.ends_with("-11-29T03:12:44.000"), "{seen:?}");
}
