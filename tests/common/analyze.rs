//! `c1m analyze --json` run on files and its report parsed, for the tests
//! that check what analyze finds.
use std::ffi::OsStr;

use serde_json::Value;

use super::{c1m, text};

/// `c1m analyze --json PATHS...`: the report, parsed. Fails the test,
/// showing analyze's output, unless it exits 0 and prints one JSON report.
pub fn analyze_json<S: AsRef<OsStr>>(paths: &[S]) -> Value {
    let out = c1m(&["analyze", "--json"])
        .args(paths)
        .output()
        .expect("running c1m analyze");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "analyze --json printed no JSON report ({e}): {}",
            text(&out)
        )
    })
}

/// The findings of a report with id `id`.
pub fn findings_with<'a>(report: &'a Value, id: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("the report has findings")
        .iter()
        .filter(|f| f["id"] == id)
        .collect()
}

/// The ids of a report's findings, in the report's order.
pub fn finding_ids(report: &Value) -> Vec<&str> {
    report["findings"]
        .as_array()
        .expect("the report has findings")
        .iter()
        .map(|f| f["id"].as_str().expect("a finding has an id"))
        .collect()
}
