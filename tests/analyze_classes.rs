//! Every failure class of the catalogue has at least one fixture (written
//! for these tests in tests/fixtures/classes/, in the formats real programs
//! and kernels print) that `c1m analyze` classifies correctly: the finding
//! id, the side, how sure, and the evidence line (file and line number).
//! Plus the command's behaviour: bad paths, exit statuses, stdin and gzip,
//! the plot.
use std::collections::BTreeSet;
use std::io::Write;
use std::process::Stdio;

use c1m::diagnosis::FailureId;
use serde_json::Value;

mod common;

use common::*;

/// A fixture of tests/fixtures/classes/.
fn class_fixture(name: &str) -> String {
    fixture(&format!("classes/{name}"))
}

/// (fixture, id, side, certainty, an evidence line number)
const CASES: &[(&str, &str, &str, &str, u64)] = &[
    (
        "connect_failed_wrk_summary.txt",
        "connect_failed",
        "seen_by_client",
        "certain",
        7,
    ),
    (
        "server_connection_limit_nginx_error.log",
        "server_connection_limit",
        "server",
        "certain",
        7,
    ),
    (
        "server_connection_limit_flood.log",
        "server_connection_limit",
        "server",
        "certain",
        2,
    ),
    (
        "protocol_mismatch_flood.log",
        "protocol_mismatch",
        "seen_by_client",
        "certain",
        2,
    ),
    (
        "protocol_refused_flood.log",
        "protocol_refused",
        "server",
        "certain",
        2,
    ),
    (
        "server_process_died_serve.log",
        "server_process_died",
        "server",
        "certain",
        2,
    ),
    (
        "server_stalled_lab.log",
        "server_stalled",
        "server",
        "certain",
        2,
    ),
    ("packet_loss_lab.log", "packet_loss", "host", "certain", 2),
    (
        "reconnect_storm_flood.log",
        "reconnect_storm",
        "client",
        "certain",
        2,
    ),
    (
        "client_process_died_lab.log",
        "client_process_died",
        "client",
        "certain",
        2,
    ),
    (
        "fd_limit_server_perror.log",
        "fd_limit",
        "server",
        "certain",
        4,
    ),
    (
        "fd_limit_client_socket.log",
        "fd_limit",
        "client",
        "certain",
        3,
    ),
    (
        "fd_limit_nginx_error.log",
        "fd_limit",
        "server",
        "certain",
        2,
    ),
    (
        "fd_limit_rust_os_error.log",
        "fd_limit",
        "client",
        "certain",
        2,
    ),
    ("fd_limit_musl.log", "fd_limit", "client", "certain", 2),
    (
        "system_fd_limit_dmesg.log",
        "system_fd_limit",
        "host",
        "certain",
        1,
    ),
    (
        "system_fd_limit_enfile.log",
        "system_fd_limit",
        "host",
        "certain",
        1,
    ),
    (
        "ephemeral_ports_go.log",
        "ephemeral_ports_exhausted",
        "client",
        "certain",
        2,
    ),
    (
        "accept_queue_dmesg.log",
        "accept_queue_overflow",
        "server",
        "certain",
        2,
    ),
    (
        "accept_queue_nstat_snapshots.txt",
        "accept_queue_overflow",
        "server",
        "certain",
        5,
    ),
    (
        "accept_queue_netstat_s.txt",
        "accept_queue_overflow",
        "server",
        "certain",
        5,
    ),
    (
        "conntrack_full_journald.log",
        "conntrack_full",
        "host",
        "certain",
        2,
    ),
    (
        "conntrack_full_dmesg_plain.log",
        "conntrack_full",
        "host",
        "certain",
        1,
    ),
    (
        "conntrack_full_sysctl.txt",
        "conntrack_full",
        "host",
        "certain",
        1,
    ),
    (
        "tcp_memory_pressure_dmesg.log",
        "tcp_memory_pressure",
        "host",
        "certain",
        1,
    ),
    (
        "tcp_memory_pressure_sockstat.txt",
        "tcp_memory_pressure",
        "host",
        "certain",
        2,
    ),
    (
        "orphan_sockets_dmesg.log",
        "orphan_sockets",
        "host",
        "certain",
        1,
    ),
    (
        "time_wait_overflow_dmesg.log",
        "time_wait_overflow",
        "client",
        "certain",
        1,
    ),
    (
        "time_wait_overflow_nstat.txt",
        "time_wait_overflow",
        "client",
        "certain",
        2,
    ),
    (
        "out_of_memory_dmesg.log",
        "out_of_memory",
        "host",
        "certain",
        2,
    ),
    (
        "out_of_memory_killed_zh.log",
        "out_of_memory",
        "client",
        "certain",
        3,
    ),
    (
        "epoll_watch_limit_perror.log",
        "epoll_watch_limit",
        "either",
        "certain",
        1,
    ),
    (
        "connect_timeout_seed_client2.txt",
        "connect_timeout",
        "seen_by_client",
        "certain",
        18,
    ),
    (
        "connect_timeout_musl.log",
        "connect_timeout",
        "seen_by_client",
        "certain",
        2,
    ),
    (
        "connection_refused_go.log",
        "connection_refused",
        "seen_by_client",
        "certain",
        1,
    ),
    (
        "connection_reset_client.log",
        "connection_reset",
        "client",
        "certain",
        2,
    ),
    (
        "peer_disconnect_server.log",
        "peer_disconnect",
        "either",
        "certain",
        2,
    ),
    (
        "eagain_misuse_seed_client2.txt",
        "eagain_misuse",
        "client_bug",
        "certain",
        11,
    ),
    (
        "wrong_fd_enotsock.log",
        "wrong_fd",
        "client_bug",
        "certain",
        3,
    ),
    (
        "client_cap_seed_client3.txt",
        "client_cap_reached",
        "client",
        "certain",
        4,
    ),
    (
        "unterminated_buffer_seed_client1.txt",
        "unterminated_buffer",
        "client_bug",
        "certain",
        10,
    ),
    (
        "log_corrupted_glued_cut.log",
        "log_corrupted",
        "log",
        "certain",
        3,
    ),
    (
        "memory_ceiling_lab.log",
        "memory_ceiling",
        "host",
        "certain",
        2,
    ),
];

#[test]
fn every_catalogue_class_has_a_fixture_that_classifies() {
    let mut covered = BTreeSet::new();
    for (file, id, side, certainty, line) in CASES {
        let r = analyze_json(&[class_fixture(file)]);
        let found: Vec<&Value> = r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["id"] == *id)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{file}: expected one {id}, got {:#?}",
            r["findings"]
        );
        let f = found[0];
        assert_eq!(f["side"], *side, "{file}: side of {id}");
        assert_eq!(f["certainty"], *certainty, "{file}: certainty of {id}");
        let ev: Vec<(String, u64)> = f["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["file"].as_str().unwrap().to_string(),
                    e["line"].as_u64().unwrap(),
                )
            })
            .collect();
        assert!(
            ev.iter().any(|(p, l)| p.ends_with(file) && l == line),
            "{file}: {id} evidence {ev:?} lacks line {line}"
        );
        assert!(!f["fix"].as_str().unwrap().is_empty());
        covered.insert(id.to_string());
    }
    let all: BTreeSet<String> = FailureId::all().map(|id| id.as_str().to_string()).collect();
    assert_eq!(covered, all, "classes without a fixture");
}

#[test]
fn nothing_is_found_where_nothing_failed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("healthy.log");
    let mut text = String::new();
    for i in 1..=50u64 {
        text.push_str(&format!(
            "connections: {}, sockfd:{}, time_used:1240\n",
            i * 1000 - 1,
            i * 1000 + 2
        ));
    }
    text.push_str("write: No space left on device\nfs.epoll.max_user_watches = 100\n");
    std::fs::write(&path, text).unwrap();
    let r = analyze_json(&[&path]);
    assert_eq!(
        r["findings"].as_array().unwrap().len(),
        0,
        "{:#?}",
        r["findings"]
    );
    assert_eq!(r["sources"][0]["connections_max"], 49_999);
    assert_eq!(r["sources"][0]["closed_by_client"], 0);
    let rate = r["sources"][0]["rate_per_s"].as_f64().unwrap();
    assert!((rate - 806.0).abs() < 1.0, "{rate}");
}

#[test]
fn a_connect_timeout_is_blamed_on_conntrack_when_the_kernel_says_so() {
    // A client log and the server's kernel log analyzed together.
    let client = class_fixture("connect_timeout_seed_client2.txt");
    let kernel = class_fixture("conntrack_full_journald.log");
    let r = analyze_json(&[&client, &kernel]);
    let f = r["findings"].as_array().unwrap();
    let timeout = f.iter().find(|f| f["id"] == "connect_timeout").unwrap();
    assert_eq!(timeout["caused_by"], serde_json::json!(["conntrack_full"]));
    let ct = f.iter().find(|f| f["id"] == "conntrack_full").unwrap();
    assert_eq!(ct["certainty"], "certain");
    assert_eq!(ct["cause_of"], "connect_timeout");
    assert!(!f.iter().any(|f| f["id"] == "accept_queue_overflow"));
}

/// A `lab --target max` folder: a client's echoes timed out on the way
/// up (late echoes as the host slowed), then the lab stopped the ramp at
/// its memory floor. The ceiling is the first finding, because it ended
/// the run; the timeouts, which began earlier, stay a finding of their own
/// after it, and the client's story says the lab held it at the ceiling.
#[test]
fn the_labs_stop_at_the_memory_ceiling_comes_before_what_happened_on_the_way() {
    let dir = tempfile::tempdir().unwrap();
    let client = [
        r#"{"ts":1764700000.0,"role":"flood","pid":14909,"event":"start","settings":{"host":"127.0.0.1","dest":"127.0.0.1","port":8888,"ports":20,"connections":1036035,"protocol":{"name":"echo"}}}"#,
        r#"{"ts":1764700112.4,"role":"flood","pid":14909,"worker":45,"event":"failure","failure":"connect_timeout","call":"recv","errno":110,"count":2,"detail":"connected, but the echo did not come back within 3s (--connect-timeout)","key":"ECHO_TIMEOUT"}"#,
        r#"{"ts":1764700240.0,"role":"flood","pid":14909,"event":"summary","connections":893357,"opened_total":893357,"closed_total":0,"failed_total":2,"failures":{"connect_timeout":2},"elapsed_s":240.0,"details":{"target":1036035,"connect_s":230.3,"stops":["stopped connecting on SIGUSR1 (the lab sends it when its ramp reaches the host's ceiling); holding what was verified"],"verified":893357,"reached":false}}"#,
    ]
    .join("\n");
    std::fs::write(dir.path().join("client-1.log"), client + "\n").unwrap();
    std::fs::copy(
        class_fixture("memory_ceiling_lab.log"),
        dir.path().join("lab.log"),
    )
    .unwrap();
    let r = analyze_json(&[dir.path()]);
    let ids = finding_ids(&r);
    assert_eq!(ids.first(), Some(&"memory_ceiling"), "{ids:?}");
    assert!(ids.contains(&"connect_timeout"), "{ids:?}");
    let stories = r["verdict"].to_string() + &r["sources"].to_string();
    assert!(
        stories.contains("the lab stopped its ramp at the host's ceiling"),
        "{stories}"
    );
}

#[test]
fn flat_listen_overflows_rule_the_accept_queue_out() {
    let dir = tempfile::tempdir().unwrap();
    let nstat = dir.path().join("server.nstat");
    std::fs::write(
        &nstat,
        "TcpExtListenOverflows  7  0.0\nTcpExtListenOverflows  7  0.0\n",
    )
    .unwrap();
    let client = class_fixture("connect_timeout_musl.log");
    let r = analyze_json(&[client.as_str(), nstat.to_str().unwrap()]);
    let f = r["findings"].as_array().unwrap();
    let timeout = f.iter().find(|f| f["id"] == "connect_timeout").unwrap();
    assert_eq!(timeout["caused_by"], serde_json::json!(["conntrack_full"]));
    assert!(
        timeout["explanation"]
            .as_str()
            .unwrap()
            .contains("accept_queue_overflow ruled out")
    );
}

#[test]
fn bad_paths_are_named_exit_2_and_the_other_files_are_still_analyzed() {
    let missing = "/nonexistent/c1m-analyze/client.log";
    let out = c1m(&["analyze", missing, &class_fixture("fd_limit_musl.log")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(missing) && err.contains("No such file"),
        "{err}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fd_limit [certain]"), "{text}");
}

#[test]
fn exit_status_is_0_when_analyzed_and_1_with_fail_on_findings() {
    let bad = class_fixture("fd_limit_musl.log");
    let status = |args: &[&str]| c1m(args).output().unwrap().status.code();
    assert_eq!(status(&["analyze", &bad]), Some(0));
    assert_eq!(status(&["analyze", "--fail-on-findings", &bad]), Some(1));
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.log");
    std::fs::write(&clean, "connections: 999, sockfd:1002, time_used:1241\n").unwrap();
    assert_eq!(
        status(&["analyze", "--fail-on-findings", clean.to_str().unwrap()]),
        Some(0)
    );
    // No path at all is a usage error.
    assert_eq!(status(&["analyze"]), Some(2));
}

#[test]
fn stdin_and_gzip_and_directories_are_read() {
    let data = std::fs::read(class_fixture("connect_timeout_musl.log")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).unwrap();
    let gz = gz.finish().unwrap();
    let mut child = c1m(&["analyze", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&gz).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &r["findings"][0];
    assert_eq!(f["id"], "connect_timeout");
    assert_eq!(f["evidence"][0]["file"], "-");
    assert_eq!(f["evidence"][0]["line"], 2);

    let r = analyze_json(&[fixture("classes")]);
    assert_eq!(r["inputs"].as_array().unwrap().len(), CASES.len());
}

#[test]
fn plot_draws_every_source_with_error_marks() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("seed.svg");
    let seed = fixture("seed.txt");
    let out = c1m(&["analyze", "--plot", svg.to_str().unwrap(), &seed])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"));
    for name in [
        "client 1",
        "客户端1",
        "客户端2",
        "客户端3",
        "114 eagain_misuse",
        "connections",
    ] {
        assert!(text.contains(name), "plot lacks {name}");
    }
    let unwritable = c1m(&["analyze", "--plot", "/nonexistent/dir/p.svg", &seed])
        .output()
        .unwrap();
    assert_eq!(unwritable.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unwritable.stderr).contains("/nonexistent/dir/p.svg"));
}
