//! `c1m analyze` tells the story first: the seed's verdict in the first six
//! lines with the numbers counted by hand from the file (941,999 printed,
//! the 340,000 caps, client 2's death at 261,999 on connect timeouts, its
//! 114 ` Error clientfd:N, errno:11` lines); one finding per cause listing
//! its sources, clean lines first as evidence; c1m's own connect rate from
//! the summary's connect phase, not the whole log; a server's teardown is
//! "closing", not lost connections; nothing recognized exits 2; a missing
//! path is said once; nothing wider than 80 columns at width 80.
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use unicode_width::UnicodeWidthStr;

const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/seed.txt");

fn analyze(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_c1m"))
        .arg("analyze")
        .args(args)
        .env_remove("COLUMNS")
        .output()
        .expect("run c1m")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_seed_verdict_comes_in_the_first_six_lines() {
    for width in ["80", "100", "200"] {
        let o = analyze(&[SEED, "--width", width]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = stdout(&o);
        let head: String = out.lines().take(6).collect::<Vec<_>>().join("\n");
        for needle in [
            "verdict: 941,999 connections printed, at most 941,782 really alive",
            "client 1, client 3: stopped at their cap of 340,000",
            "client 2: died at 261,999 on connect timeouts",
            "accept queue overflow",
            "114 by client 2",
            "first: listen() with a large backlog",
        ] {
            assert!(
                head.contains(needle),
                "width {width}: {needle:?} not in\n{head}"
            );
        }
    }
    // The JSON carries the same verdict.
    let v: Value = serde_json::from_slice(&analyze(&["--json", SEED]).stdout).unwrap();
    assert!(
        v["verdict"][0].as_str().unwrap().contains("941,999"),
        "{}",
        v["verdict"]
    );
}

#[test]
fn one_finding_per_cause_lists_its_sources_with_clean_evidence_first() {
    let out = stdout(&analyze(&[SEED]));
    let caps: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("client_cap_reached ["))
        .collect();
    assert_eq!(caps.len(), 1, "{out}");
    let at = out.find("client_cap_reached [").unwrap();
    let block = &out[at..];
    let heading: String = block[..200]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(heading.contains("client 1, client 3"), "{block}");
    // The first example is a clean line (1479), not line 959, which is
    // glued to blog prose.
    let first_evidence = block.lines().nth(2).unwrap();
    assert!(first_evidence.contains("seed.txt:1479"), "{block}");
    // Each cause once: the EAGAIN bug is one finding for both clients.
    assert_eq!(out.matches("eagain_misuse [").count(), 1, "{out}");
    assert_eq!(out.matches("wrong_fd [").count(), 1, "{out}");
}

#[test]
fn nothing_over_80_columns_at_width_80() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server) = lab_logs(dir.path());
    for args in [
        vec![SEED, "--width", "80"],
        vec![
            client.to_str().unwrap(),
            server.to_str().unwrap(),
            "--width",
            "80",
        ],
    ] {
        let out = stdout(&analyze(&args));
        for l in out.lines() {
            assert!(l.width() <= 80, "{} columns: {l}\n{out}", l.width());
        }
        let out = Command::new(env!("CARGO_BIN_EXE_c1m"))
            .arg("analyze")
            .args(&args[..args.len() - 2])
            .env("COLUMNS", "80")
            .output()
            .unwrap();
        for l in stdout(&out).lines() {
            assert!(l.width() <= 80, "COLUMNS=80: {} columns: {l}", l.width());
        }
    }
}

/// A flood client and a serve log as `c1m lab --target 5000` writes them:
/// 5,000 connections in 0.4987 s of connect phase, held 10 s, then the
/// server closing (1,863 left when it wrote its summary).
fn lab_logs(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let t0 = 1_796_226_930.0;
    let iv = |role: &str, t: f64, c: u64| {
        json!({"ts": t0 + t, "role": role, "pid": 7, "event": "interval",
            "connections": c, "opened_total": c, "closed_total": 0, "failed_total": 0,
            "bytes_in": 0, "bytes_out": 0, "rate": 0.0})
        .to_string()
    };
    let mut client: Vec<String> = vec![iv("flood", 0.0, 0)];
    let mut server: Vec<String> = vec![iv("serve", 0.0, 0)];
    for t in 1..=10 {
        client.push(iv("flood", t as f64, 5000));
        server.push(iv("serve", t as f64, 5000));
    }
    client.push(
        json!({"ts": t0 + 10.7, "role": "flood", "pid": 7, "event": "summary",
            "connections": 5000, "opened_total": 5000, "closed_total": 0, "failed_total": 0,
            "bytes_in": 0, "bytes_out": 0, "elapsed_s": 10.7,
            "details": {"connect_s": 0.4987, "verified": 5000, "connect_rate": 10026.1}})
        .to_string(),
    );
    server.push(
        json!({"ts": t0 + 11.2, "role": "serve", "pid": 8, "event": "summary",
            "connections": 1863, "opened_total": 5000, "closed_total": 3137, "failed_total": 0,
            "bytes_in": 0, "bytes_out": 0, "elapsed_s": 11.2,
            "details": {"peak_connections": 5000}})
        .to_string(),
    );
    let (c, s) = (dir.join("client-1.log"), dir.join("serve.log"));
    std::fs::write(&c, client.join("\n") + "\n").unwrap();
    std::fs::write(&s, server.join("\n") + "\n").unwrap();
    (c, s)
}

#[test]
fn the_connect_rate_is_the_connect_phase_and_a_teardown_is_closing() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server) = lab_logs(dir.path());
    let (c, s) = (client.to_str().unwrap(), server.to_str().unwrap());
    let v: Value = serde_json::from_slice(&analyze(&["--json", c, s]).stdout).unwrap();
    let rate = v["sources"][0]["rate_per_s"].as_f64().unwrap();
    // verified / connect_s = 5000 / 0.4987, not 5000 / 10.7 s of log.
    assert!((rate - 5000.0 / 0.4987).abs() < 1.0, "{rate}");
    // The server's count rose from 0 to 5,000 in the first second.
    let srate = v["sources"][1]["rate_per_s"].as_f64().unwrap();
    assert!((srate - 5000.0).abs() < 1.0, "{srate}");
    let out = stdout(&analyze(&[c, s, "--width", "100"]));
    assert!(out.contains("10,026"), "{out}");
    // The table's row (the verdict line says "serve.log: peak 5,000").
    let row = out
        .lines()
        .find(|l| l.contains("serve.log") && !l.contains("peak"))
        .unwrap();
    assert!(
        row.contains("closing") && !row.contains("1,863"),
        "{row}\n{out}"
    );
    assert!(out.contains("No failure found."), "{out}");
}

#[test]
fn no_recognized_record_exits_2_and_a_missing_path_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = analyze(&[empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no C1M records recognized in"),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("No failure found"), "{}", stdout(&o));

    let prose = dir.path().join("notes.txt");
    std::fs::write(&prose, "shopping list\neggs\nmilk\n").unwrap();
    let o = analyze(&[prose.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no C1M records recognized in"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("notes.txt"), "{}", stderr(&o));
    // What the file holds is shown, in the report and in the JSON.
    let out = stdout(&o);
    assert!(out.contains("no C1M records recognised"), "{out}");
    assert!(
        out.contains("notes.txt:1  shopping list") && out.contains("notes.txt:3  milk"),
        "{out}"
    );
    let o = analyze(&["--json", prose.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("a JSON report");
    assert_eq!(
        v["inputs"][0]["samples"],
        json!([
            {"line": 1, "text": "shopping list"},
            {"line": 2, "text": "eggs"},
            {"line": 3, "text": "milk"}
        ])
    );

    let empty_file = dir.path().join("empty.log");
    std::fs::write(&empty_file, "").unwrap();
    let o = analyze(&[empty_file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let missing = dir.path().join("no-such.log");
    let o = analyze(&[missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert_eq!(all.matches("no-such.log").count(), 1, "{all}");
    assert!(!all.contains("No failure found"), "{all}");
}

/// A client that `c1m lab --target max` stopped at the host's ceiling
/// (SIGUSR1: its summary's stops say so) held what it had: its story is
/// that stop, not "died on connect timeouts" from the few echoes that
/// timed out as memory ran low (the 2,699,861-connection ceiling run).
#[test]
fn a_client_the_lab_stopped_at_the_ceiling_held_what_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let stop = "stopped connecting on SIGUSR1 (the lab sends it when its ramp reaches the host's ceiling); holding what was verified";
    let mut log = String::new();
    log.push_str(r#"{"ts":1796274370.0,"role":"flood","pid":7,"event":"start","settings":{"connections":1000}}"#);
    log.push('\n');
    for (i, n) in [200u64, 500, 893].iter().enumerate() {
        log.push_str(&format!(
            r#"{{"ts":{},"role":"flood","pid":7,"event":"interval","connections":{n},"opened_total":{n},"closed_total":0,"failed_total":0}}"#,
            1796274371.0 + i as f64
        ));
        log.push('\n');
    }
    for k in 0..3 {
        log.push_str(&format!(
            r#"{{"ts":{},"role":"flood","pid":7,"worker":{k},"event":"failure","failure":"connect_timeout","call":"recv","errno":110,"count":2,"detail":"connected, but the echo did not come back within 3s (--connect-timeout)","key":"ECHO_TIMEOUT"}}"#,
            1796274373.5 + k as f64 * 0.1
        ));
        log.push('\n');
    }
    let details = json!({
        "connections": 893, "opened_total": 893, "closed_total": 0, "failed_total": 6,
        "failures": {"connect_timeout": 6}, "target": 1000, "connect_s": 3.0,
        "elapsed_s": 5.0, "interrupted": true, "stops": [stop], "verified": 893,
        "established": 893, "peak_connections": 893, "reached": false
    });
    log.push_str(&format!(
        r#"{{"ts":1796274376.0,"role":"flood","pid":7,"event":"summary","connections":893,"opened_total":893,"closed_total":0,"failed_total":6,"failures":{{"connect_timeout":6}},"elapsed_s":5.0,"details":{details}}}"#
    ));
    log.push('\n');
    let f = dir.path().join("client-1.log");
    std::fs::write(&f, log).unwrap();
    let o = analyze(&[f.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(
        out.contains("client-1.log: held 893: the lab stopped its ramp at the host's ceiling"),
        "{out}"
    );
    assert!(!out.contains("died at"), "{out}");
    assert!(
        out.contains("stopped connecting on the lab's SIGUSR1"),
        "{out}"
    );
    // Without the lab's stop, the same log is a client that died on timeouts.
    let plain = std::fs::read_to_string(&f)
        .unwrap()
        .replace(stop, "something else");
    std::fs::write(&f, plain).unwrap();
    let out = stdout(&analyze(&[f.to_str().unwrap()]));
    assert!(!out.contains("the lab stopped its ramp"), "{out}");
}
