//! Real runs of small Python, Node.js and Java programs and of nginx,
//! each driven into one failure (fd limit, ports, refused, accept-queue
//! timeout, reset, end of file, a server's fd limit) in a private network
//! namespace by tests/fixtures/runtimes/make.sh, analyzed as one folder:
//! every run gets the failure id of its row in expected.tsv and the count
//! the program itself printed last. Plus the load tools' outputs in
//! tests/fixtures/tools/ (tcpkali's ribbon and traffic line, wrk's
//! summary, nginx's error.log).
use serde_json::Value;

mod common;

use common::*;

/// The source of `report` read from a file whose name ends with `name`.
fn source<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["file"].as_str().is_some_and(|f| f.ends_with(name)))
        .unwrap_or_else(|| panic!("no source for {name}: {:#}", report["sources"]))
}

/// The ids of the findings about `source_name`.
fn ids_of(report: &Value, source_name: &str) -> Vec<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["source"] == source_name)
        .map(|f| f["id"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn every_real_run_gets_its_failure_and_its_count() {
    let dir = fixture("runtimes");
    let expected = std::fs::read_to_string(format!("{dir}/expected.tsv")).expect("expected.tsv");
    let report = analyze_json(&[&dir]);
    let mut checked = 0;
    for row in expected.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = row.split('\t').collect();
        let [file, id, count] = cols[..] else {
            panic!("bad row {row:?}");
        };
        let s = source(&report, file);
        let name = s["name"].as_str().unwrap();
        let ids = ids_of(&report, name);
        assert!(
            ids.iter().any(|i| i == id),
            "{file}: expected {id}, got {ids:?}"
        );
        let want: Value = match count {
            "-" => Value::Null,
            n => n.parse::<u64>().expect("count").into(),
        };
        assert_eq!(s["connections_max"], want, "{file}: count");
        checked += 1;
    }
    // Python, Node.js and Java: seven runs each; nginx: two.
    assert_eq!(checked, 23);
}

#[test]
fn a_java_caused_by_chain_is_one_event_of_the_innermost_cause() {
    let report = analyze_json(&[fixture("runtimes/java_timeout.log")]);
    let t = findings_with(&report, "connect_timeout");
    assert_eq!(t.len(), 1);
    assert_eq!(t[0]["count"], 1);
    let text = t[0]["explanation"].as_str().unwrap();
    assert!(
        text.contains("wrapped in java.lang.RuntimeException: pool could not open a connection"),
        "{text}"
    );
    // Frames and the wrapper are no findings of their own.
    assert_eq!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["certainty"] == "certain")
            .count(),
        1
    );
}

#[test]
fn a_node_error_object_is_one_event() {
    // `Error: connect ECONNREFUSED` then `errno: -111,` and `code:
    // 'ECONNREFUSED'` in the object Node prints: one refusal.
    let report = analyze_json(&[fixture("runtimes/node_refused.log")]);
    let r = findings_with(&report, "connection_refused");
    assert_eq!((r.len(), &r[0]["count"]), (1, &Value::from(1)));
}

#[test]
fn tcpkali_ribbon_plateau_names_the_fd_limit_and_its_summary_the_failed_connects() {
    let report = analyze_json(&[fixture("tools/tcpkali_ribbon_fd_limit.txt")]);
    let s = &report["sources"][0];
    assert_eq!(s["connections_max"], 1013);
    let notes = s["notes"].to_string();
    assert!(
        notes.contains("`N of M`") && notes.contains("likely"),
        "{notes}"
    );
    let fd = findings_with(&report, "fd_limit");
    assert_eq!(fd.len(), 1);
    assert!(
        fd[0]["explanation"]
            .as_str()
            .unwrap()
            .contains("11 below 1,024")
    );
    assert_eq!(findings_with(&report, "connect_failed")[0]["count"], 1);
}

#[test]
fn tcpkali_traffic_line_counts_and_a_round_target_is_no_plateau() {
    let report = analyze_json(&[fixture("tools/tcpkali_traffic_clean.txt")]);
    assert_eq!(report["sources"][0]["connections_max"], 1000);
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{:#}",
        report["findings"]
    );
}

#[test]
fn wrk_summary_counts_each_kind_of_socket_error() {
    let report = analyze_json(&[fixture("tools/wrk_summary_connect_errors.txt")]);
    assert_eq!(findings_with(&report, "connect_failed")[0]["count"], 18981);
    assert_eq!(findings_with(&report, "connect_timeout")[0]["count"], 112);
    assert!(findings_with(&report, "connection_reset").is_empty());
    // `4 threads and 20000 connections` is wrk's target, not a count.
    assert_eq!(report["sources"][0]["connections_max"], Value::Null);
}

#[test]
fn nginx_error_log_accept4_emfile_lines_are_the_fd_limit_of_the_server() {
    let report = analyze_json(&[fixture("tools/nginx_error_accept4_emfile.log")]);
    let fd = findings_with(&report, "fd_limit");
    assert_eq!(fd.len(), 1);
    assert_eq!(
        (&fd[0]["count"], &fd[0]["side"]),
        (&Value::from(9), &Value::from("server"))
    );
}
