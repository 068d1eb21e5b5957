//! Acceptance of `c1m analyze` on the seed log (tests/fixtures/seed.txt, a
//! copy of the original experiment's notes). Every number asserted here was
//! computed from the file by hand (grep/awk over its progress lines), not
//! taken from the program: 340,000 / 261,999 / 340,000 printed (941,999 in
//! all), client 2's 114 ` Error clientfd:N, errno:11` lines and its
//! `sockfd - connections` offset going from +3 to -111, client 1's offset
//! of -100 at its first visible line, 548,838 ms of time_used over client
//! 2's 262 progress lines.
use serde_json::Value;

mod common;

use common::*;

const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/seed.txt");

fn json_report() -> Value {
    analyze_json(&[SEED])
}

fn source<'a>(r: &'a Value, section: &str) -> &'a Value {
    r["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["section"] == section)
        .unwrap_or_else(|| panic!("no source for section {section}"))
}

fn findings<'a>(r: &'a Value, section: &str, id: &str) -> Vec<&'a Value> {
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["id"] == id
                && f["source"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("[{section}]"))
        })
        .collect()
}

fn one<'a>(r: &'a Value, section: &str, id: &str) -> &'a Value {
    let f = findings(r, section, id);
    assert_eq!(f.len(), 1, "expected one {id} in {section}: {f:#?}");
    f[0]
}

fn evidence_lines(f: &Value) -> Vec<u64> {
    f["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["file"].as_str().unwrap().ends_with("seed.txt"));
            e["line"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn seed_is_split_into_its_three_clients() {
    let r = json_report();
    let sources = r["sources"].as_array().unwrap();
    let sections: Vec<&str> = sources
        .iter()
        .map(|s| s["section"].as_str().unwrap())
        .collect();
    assert_eq!(sections, ["客户端1", "客户端2", "客户端3"]);
    assert!(sources.iter().all(|s| s["kind"] == "client"));
    assert_eq!(r["inputs"][0]["lines"], 1519);
}

#[test]
fn client1_reached_its_cap_with_103_closed_before_the_visible_part_and_a_corrupted_log() {
    let r = json_report();
    let c1 = source(&r, "客户端1");
    assert_eq!(c1["connections_max"], 340_000);
    assert_eq!(c1["closed_by_client"], 103);
    assert_eq!(c1["connections_live_estimate"], 339_897);

    let cap = one(&r, "客户端1", "client_cap_reached");
    assert_eq!(cap["certainty"], "certain");
    assert_eq!(cap["side"], "client");
    // The first 340,000 line is glued to garbage and a sentence.
    assert_eq!(evidence_lines(cap), [959]);

    let closed = one(&r, "客户端1", "eagain_misuse");
    assert_eq!(closed["certainty"], "likely");
    assert_eq!(closed["count"], 103);
    assert_eq!(evidence_lines(closed), [20]);
    let text = closed["explanation"].as_str().unwrap();
    assert!(text.contains("-100") && text.contains("+3"), "{text}");

    let rb = one(&r, "客户端1", "unterminated_buffer");
    assert_eq!(rb["side"], "client_bug");
    assert_eq!(evidence_lines(rb)[0], 21);
    assert!(
        rb["evidence"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("RecvBuffer:")
    );

    let log = one(&r, "客户端1", "log_corrupted");
    assert_eq!(log["side"], "log");
    let lines = evidence_lines(log);
    assert!(lines.contains(&959), "{lines:?}");
    let text = log["explanation"].as_str().unwrap();
    assert!(text.contains("from 319,999 to 340,000"), "{text}");
    assert!(c1["lines"]["corrupted"].as_u64().unwrap() > 0);
}

#[test]
fn client2_died_on_a_connect_timeout_after_114_eagain_closes() {
    let r = json_report();
    let c2 = source(&r, "客户端2");
    assert_eq!(c2["connections_max"], 261_999);
    assert_eq!(c2["connections_last"], 261_999);
    assert_eq!(c2["closed_by_client"], 114);
    assert_eq!(c2["connections_live_estimate"], 261_885);
    assert_eq!(c2["errors"]["eagain_misuse"], 114);
    // 261,999 connections over 548.838 s of summed time_used.
    let rate = c2["rate_per_s"].as_f64().unwrap();
    assert!((rate - 477.4).abs() < 0.5, "{rate}");

    let eagain = one(&r, "客户端2", "eagain_misuse");
    assert_eq!(eagain["certainty"], "certain");
    assert_eq!(eagain["count"], 114);
    assert_eq!(evidence_lines(eagain)[0], 1033);
    let text = eagain["explanation"].as_str().unwrap();
    assert!(
        text.contains("+3 to -111") && text.contains("261,885"),
        "{text}"
    );

    let timeout = one(&r, "客户端2", "connect_timeout");
    assert_eq!(timeout["certainty"], "certain");
    assert_eq!(timeout["side"], "seen_by_client");
    assert_eq!(evidence_lines(timeout), [1470, 1471]);
    assert_eq!(timeout["count"], 1);
    let caused: Vec<&str> = timeout["caused_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(caused, ["accept_queue_overflow", "conntrack_full"]);
    let collect = timeout["collect"].to_string();
    assert!(collect.contains("ListenOverflows") && collect.contains("nf_conntrack: table full"));

    let aq = one(&r, "客户端2", "accept_queue_overflow");
    assert_eq!(aq["certainty"], "likely");
    assert_eq!(aq["side"], "server");
    assert_eq!(aq["cause_of"], "connect_timeout");
    // The first interval with a whole extra second: 6,999 connections.
    assert_eq!(evidence_lines(aq), [979]);
    let ct = one(&r, "客户端2", "conntrack_full");
    assert_eq!(ct["certainty"], "possible");
    assert_eq!(ct["cause_of"], "connect_timeout");
    assert!(ct["explanation"].as_str().unwrap().contains("262,144"));
    assert_eq!(evidence_lines(ct), [1460]);

    let log = one(&r, "客户端2", "log_corrupted");
    let lines = evidence_lines(log);
    assert!(lines.contains(&1110) && lines.contains(&1419), "{lines:?}");
}

#[test]
fn client3_stopped_at_exactly_its_cap_and_totals_match_the_author() {
    let r = json_report();
    let c3 = source(&r, "客户端3");
    assert_eq!(c3["connections_max"], 340_000);
    assert!(c3["closed_by_client"].is_null());
    let cap = one(&r, "客户端3", "client_cap_reached");
    assert_eq!(cap["certainty"], "certain");
    assert_eq!(cap["count"], 34);
    assert!(findings(&r, "客户端3", "connect_timeout").is_empty());

    let t = &r["totals"];
    assert_eq!(t["clients"], 3);
    assert_eq!(t["client_connections_printed"], 941_999);
    assert_eq!(t["client_closed_by_client"], 217);
    assert_eq!(t["client_connections_live_estimate"], 941_782);
    assert_eq!(t["live_estimate_exact"], false);
    let mean = t["client_rate_mean_per_s"].as_f64().unwrap();
    assert!((460.0..=500.0).contains(&mean), "{mean}");
    let notes = t["notes"].to_string();
    assert!(
        notes.contains("blocking connect()") && notes.contains("not the server"),
        "{notes}"
    );
}

#[test]
fn findings_come_most_important_first() {
    let r = json_report();
    let ids = finding_ids(&r);
    assert_eq!(
        &ids[..4],
        [
            "connect_timeout",
            "accept_queue_overflow",
            "conntrack_full",
            "eagain_misuse"
        ]
    );
    assert_eq!(ids.last(), Some(&"log_corrupted"));
}

#[test]
fn human_output_tells_the_story() {
    let out = c1m(&["analyze", SEED]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "941,999",
        "≤ 941,782",
        "261,885",
        "339,897",
        "connect_timeout [certain]",
        "↳ cause: accept_queue_overflow [likely]",
        "↳ cause: conntrack_full [possible]",
        "seed.txt:1470  connect: Connection timed out",
        "client_cap_reached [certain]",
        "unterminated_buffer [certain]",
        "log_corrupted [certain]",
        "collect: on the server during the run: `nstat -az TcpExtListenOverflows",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    // Findings after the table, most important first.
    let t = text.find("connect_timeout [certain]").unwrap();
    let l = text.find("log_corrupted [certain]").unwrap();
    assert!(text.find("all 3 clients").unwrap() < t && t < l);
}
