//! What the speed work promises a user, end to end and small: flood's
//! end of hold waits for the lines still in flight (so "unanswered" in
//! `benches/traffic.sh` means lost), `--fast-open` on flood works against
//! any server, and `c1m lab --fast-open` really uses TCP Fast Open inside
//! its own namespace (the namespace's TcpFastOpen counters rise) while the
//! host's `net.ipv4.tcp_fastopen` stays as it was.
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

mod common;

use common::*;

/// An echo server on 127.0.0.1 (a port the kernel picks) that answers each
/// line after `delay`, one thread per connection; it takes `connections`
/// connections and then stops accepting. Returns its port.
fn slow_echo(connections: usize, delay: Duration) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = l.local_addr().expect("local_addr").port();
    std::thread::spawn(move || {
        for s in l.incoming().take(connections) {
            let Ok(s) = s else { continue };
            std::thread::spawn(move || echo_lines(s, delay));
        }
    });
    port
}

fn echo_lines(s: TcpStream, delay: Duration) {
    let mut out = s.try_clone().expect("clone the stream");
    let mut r = BufReader::new(s);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        std::thread::sleep(delay);
        if out.write_all(&line).is_err() {
            return;
        }
    }
}

/// `c1m flood` of `n` connections to `port`, one process, JSON lines.
fn flood(port: u16, n: u64, extra: &[&str]) -> std::process::Output {
    let (port, n) = (port.to_string(), n.to_string());
    let mut args = vec![
        "flood",
        "127.0.0.1",
        &port,
        "--ports",
        "1",
        "--connections",
        &n,
        "--procs",
        "1",
        "--json",
    ];
    args.extend_from_slice(extra);
    wait_bounded(c1m(&args).spawn().unwrap(), Duration::from_secs(60))
}

/// Hold messages every 200 ms, echoed 300 ms late: when the hold's second
/// is up most connections have a line out. Every one of them comes back
/// in the drain, so nothing counts as unanswered, and the hold's own time
/// does not include the drain.
#[test]
fn the_end_of_the_hold_waits_for_the_lines_in_flight() {
    let n = 20;
    let port = slow_echo(n, Duration::from_millis(300));
    let out = flood(
        port,
        n as u64,
        &["--hold", "1s", "--message-interval", "200ms"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let recs = records(&out);
    let s = summary(&recs);
    let d = &s["details"];
    let sent = d["messages_sent"].as_u64().unwrap();
    let answered = d["messages_answered"].as_u64().unwrap();
    assert!(
        sent >= n as u64,
        "{sent} lines sent in the hold\n{}",
        text(&out)
    );
    assert_eq!(answered, sent, "lines cut off at the end\n{}", text(&out));
    let hold = d["hold_s"].as_f64().unwrap();
    assert!((0.9..1.5).contains(&hold), "hold_s {hold}");
    let elapsed = d["elapsed_s"].as_f64().unwrap();
    assert!(
        elapsed < hold + 3.5,
        "the drain is bounded: elapsed {elapsed}, hold {hold}"
    );
}

/// `--fast-open` against a server that has no Fast Open (nor, on most
/// hosts, the server bit of the sysctl): an ordinary handshake, every
/// connection verified.
#[test]
fn fast_open_falls_back_to_a_handshake_and_verifies_every_connection() {
    let n = 50;
    let port = slow_echo(n, Duration::ZERO);
    let out = flood(port, n as u64, &["--hold", "0s", "--fast-open"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let recs = records(&out);
    let s = summary(&recs);
    assert_eq!(s["opened_total"], n as u64, "{}", text(&out));
    assert_eq!(s["failed_total"], 0, "{}", text(&out));
}

/// A connect-only run sends nothing, so a Fast Open connect (its SYN goes
/// with the first write) would never leave the host: refused up front.
#[test]
fn fast_open_with_the_connect_protocol_is_a_usage_error() {
    let out = run_c1m(&[
        "flood",
        "127.0.0.1",
        "9",
        "-c",
        "1",
        "--protocol",
        "connect",
        "--fast-open",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("--fast-open with --protocol connect"),
        "{}",
        text(&out)
    );
}

fn host_fastopen() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_fastopen").unwrap()
}

/// `c1m lab --fast-open`: the lab's namespace gets tcp_fastopen = 3, serve
/// takes data in the SYN (TcpExtTCPFastOpenPassive) and the clients send
/// it (TcpExtTCPFastOpenActive), every connection verified; the host's
/// sysctl is what it was.
#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
fn the_lab_connects_with_fast_open_in_its_own_namespace() {
    let before = host_fastopen();
    let root = tempfile::tempdir().unwrap();
    let out = Lab::new(3000)
        .clients(1)
        .ports(2)
        .hold("1s")
        .netns_on()
        .json()
        .args(&["--fast-open", "--message-interval", "off"])
        .run(root.path(), Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(host_fastopen(), before, "the host's sysctl changed");
    let report = lab_report(&out);
    assert_eq!(report["verified"], 3000);
    let notes = report["notes"].to_string();
    assert!(notes.contains("tcp_fastopen set to 3"), "{notes}");
    let c = &report["counters"];
    for key in ["TcpExtTCPFastOpenPassive", "TcpExtTCPFastOpenActive"] {
        assert!(c[key].as_u64().unwrap_or(0) > 0, "{key} did not rise: {c}");
    }
}
