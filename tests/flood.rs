//! `c1m flood` against a real echo server on 127.0.0.1: verified
//! connections over several ports, the seed's log format byte for byte,
//! valid JSON lines, sharding under a lowered fd limit, refused ports,
//! timeouts, a server killed during the hold, and bad input.
mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn connections_across_several_ports_are_all_verified() {
    let server = EchoServer::start(5);
    let out = run_flood(&server, 2000, &["--hold", "0s", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let recs = records(&out);
    assert_eq!(recs[0]["event"], "start");
    assert_eq!(recs[0]["settings"]["connections"], 2000);
    let s = summary(&recs);
    assert_eq!(s["opened_total"], 2000);
    assert_eq!(s["details"]["verified"], 2000);
    assert_eq!(s["details"]["reached"], true);
    assert_eq!(s["details"]["reason"], serde_json::Value::Null);
    // every byte sent came back: 2000 lines echoed
    assert_eq!(s["bytes_in"], s["bytes_out"]);
    assert!(s["details"]["connect_latency_ms"]["count"] == 2000);
    assert_eq!(server.total_accepted(), 2000);
    for (i, a) in server.accepted.iter().enumerate() {
        let n = a.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            n, 400,
            "port {} got {n} connections, expected the cycle to spread them evenly",
            i
        );
    }
    for r in &recs {
        if r["event"] == "interval" {
            assert_eq!(r["target"], 2000);
            assert!(r["ts"].as_f64().unwrap() > 1.6e9);
        }
    }
}

/// Parse one seed progress line exactly: `connections: N, sockfd:FD, time_used:MS`.
fn parse_seed(line: &str) -> Option<(u64, i64, u64)> {
    let rest = line.strip_prefix("connections: ")?;
    let (n, rest) = rest.split_once(", sockfd:")?;
    let (fd, ms) = rest.split_once(", time_used:")?;
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !ok(n) || !ok(fd) || !ok(ms) {
        return None;
    }
    let line2 = format!("connections: {n}, sockfd:{fd}, time_used:{ms}");
    (line2 == line).then(|| (n.parse().unwrap(), fd.parse().unwrap(), ms.parse().unwrap()))
}

#[test]
fn seed_log_format_is_byte_exact() {
    let server = EchoServer::start(3);
    let out = run_flood(&server, 3000, &["--hold", "0s", "--log-format", "seed"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout.clone()).expect("utf-8");
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let mut total_ms = 0;
    for (i, l) in lines.iter().enumerate() {
        let (n, fd, ms) = parse_seed(l).unwrap_or_else(|| panic!("not a seed line: {l:?}"));
        assert_eq!(n, 1000 * (i as u64 + 1));
        assert!(fd > 2, "sockfd {fd}");
        total_ms += ms;
    }
    assert!(total_ms < 30_000);
    // the summary goes to stderr, so stdout stays comparable with old logs
    assert!(stderr(&out).contains("target reached and verified"));
}

#[test]
fn more_connections_than_one_process_may_hold_are_sharded() {
    let server = EchoServer::start(4);
    let mut cmd = flood(
        &server,
        1000,
        &["--procs", "auto", "--hold", "500ms", "--json"],
    );
    with_nofile(&mut cmd, 300);
    let out = wait_bounded(cmd.spawn().unwrap(), Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let recs = records(&out);
    let procs = recs[0]["settings"]["procs"].as_u64().unwrap();
    assert!(
        procs >= 4,
        "300 fds per process cannot hold 1000 sockets in {procs} processes"
    );
    let s = summary(&recs);
    assert_eq!(s["details"]["verified"], 1000);
    assert_eq!(s["details"]["established"], 1000);
    assert_eq!(server.total_accepted(), 1000);
}

#[test]
fn one_process_under_a_low_fd_limit_reports_fd_limit_with_the_count() {
    let server = EchoServer::start(2);
    let mut cmd = flood(&server, 1000, &["--procs", "1", "--hold", "0s", "--json"]);
    with_nofile(&mut cmd, 200);
    let out = wait_bounded(cmd.spawn().unwrap(), Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let recs = records(&out);
    let s = summary(&recs);
    let verified = s["details"]["verified"].as_u64().unwrap();
    assert!((150..200).contains(&verified), "verified {verified}");
    assert!(s["failures"]["fd_limit"].as_u64().unwrap() >= 1);
    let reason = s["details"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("EMFILE") && reason.contains("RLIMIT_NOFILE 200"),
        "{reason}"
    );
    assert!(
        recs.iter()
            .any(|r| r["event"] == "failure" && r["failure"] == "fd_limit")
    );
}

#[test]
fn refused_port_is_counted_retired_and_the_run_continues() {
    let server = EchoServer::start_with(&[PortKind::Echo, PortKind::Echo, PortKind::Closed]);
    let out = run_flood(&server, 600, &["--hold", "0s", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let recs = records(&out);
    let s = summary(&recs);
    assert_eq!(s["details"]["verified"], 600);
    let refused = s["failures"]["connection_refused"].as_u64().unwrap();
    assert!(refused >= 8, "refused {refused}");
    assert_eq!(s["errors"]["ECONNREFUSED"].as_u64().unwrap(), refused);
    let retired = &s["details"]["retired"][0];
    assert_eq!(retired["key"], "ECONNREFUSED");
    assert!(
        retired["path"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", server.base + 2))
    );
    let f = recs
        .iter()
        .find(|r| r["event"] == "failure" && r["failure"] == "connection_refused")
        .expect("a failure line");
    assert_eq!(f["call"], "connect");
    assert_eq!(f["errno"], 111);
    assert!(f["count"].as_u64().unwrap() >= 1);
}

#[test]
fn a_listener_that_never_accepts_gives_counted_timeouts() {
    let server = EchoServer::start_with(&[PortKind::Echo, PortKind::NeverAccept]);
    let started = Instant::now();
    let out = run_flood(
        &server,
        200,
        &[
            "--window",
            "40",
            "--rate",
            "400",
            "--connect-timeout",
            "300ms",
            "--hold",
            "0s",
            "--json",
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let recs = records(&out);
    let s = summary(&recs);
    assert_eq!(s["details"]["verified"], 200);
    let timeouts = s["failures"]["connect_timeout"].as_u64().unwrap_or(0);
    assert!(timeouts >= 5, "timeouts {timeouts}: {s}");
    assert!(s["errors"]["ETIMEDOUT"].as_u64().unwrap_or(0) >= 1, "{s}");
    assert!(recs.iter().any(|r| {
        r["event"] == "failure"
            && r["failure"] == "connect_timeout"
            && r["detail"]
                .as_str()
                .is_some_and(|d| d.contains("within 0.3s"))
    }));
    assert_eq!(server.total_accepted(), 200);
}

#[test]
fn a_server_killed_during_the_hold_gives_counted_resets_and_exit_1() {
    let mut server = EchoServer::start(2);
    let child = flood(&server, 500, &["--hold", "20s", "--json"])
        .spawn()
        .unwrap();
    let child = KillOnDrop(Some(child));
    let start = Instant::now();
    while server.total_accepted() < 500 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    server.kill();
    let out = wait_bounded(child.take(), Duration::from_secs(15));
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "the hold did not end when every connection was lost"
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let recs = records(&out);
    let s = summary(&recs);
    assert_eq!(s["details"]["verified"], 500);
    assert_eq!(s["details"]["hold_resets"], 500, "{s}");
    assert_eq!(s["details"]["established"], 0);
    assert_eq!(s["failures"]["connection_reset"], 500);
    let reason = s["details"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("closed 500 of 500") && reason.contains("500 reset"),
        "{reason}"
    );
}

#[test]
fn bad_input_names_the_argument_and_exits_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "flood",
                "no-such-host.invalid",
                "15000",
                "--connections",
                "1",
            ],
            "HOST",
        ),
        (
            &[
                "flood",
                "127.0.0.1",
                "65530",
                "--ports",
                "20",
                "--connections",
                "1",
            ],
            "--ports",
        ),
        (
            &[
                "flood",
                "127.0.0.1",
                "15000",
                "--sources",
                "192.0.2.7",
                "--connections",
                "1",
            ],
            "--sources",
        ),
        (
            &[
                "flood",
                "127.0.0.1",
                "15000",
                "--sources",
                "127.0.0.9-127.0.0.2",
            ],
            "--sources",
        ),
        (
            &["flood", "127.0.0.1", "15000", "--connections", "0"],
            "--connections",
        ),
        (&["flood", "127.0.0.1", "70000"], "PORT"),
        (&["flood", "127.0.0.1", "15000", "--hold", "soon"], "--hold"),
    ];
    for (args, name) in cases {
        let out = run_c1m(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let e = stderr(&out);
        assert!(
            e.contains(name),
            "{args:?}: error does not name {name}: {e}"
        );
        assert!(!e.contains("panicked"), "{e}");
    }
}

#[test]
fn seed_lines_from_shards_and_output_file_match_stdout() {
    let server = EchoServer::start(2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flood.log");
    let out = run_flood(
        &server,
        2000,
        &[
            "--procs",
            "2",
            "--hold",
            "0s",
            "--log-format",
            "seed",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let ns: Vec<u64> = text
        .lines()
        .map(|l| {
            parse_seed(l)
                .unwrap_or_else(|| panic!("not a seed line: {l:?}"))
                .0
        })
        .collect();
    assert_eq!(ns, [1000, 2000]);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text,
        "--output holds the same log"
    );
}

#[test]
fn human_log_without_a_terminal_has_lines_and_the_summary_table() {
    let server = EchoServer::start(2);
    let out = run_flood(
        &server,
        500,
        &["--hold", "1200ms", "--message-interval", "200ms"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        text.starts_with("c1m flood: 500 connections to 127.0.0.1"),
        "{text}"
    );
    assert!(
        text.contains("connect phase over, target reached: 500 of 500 verified"),
        "{text}"
    );
    assert!(
        text.contains("done: 500 of 500 connections verified and held"),
        "{text}"
    );
    for row in [
        "verified (echo checked)",
        "connect latency p50 / p90 / p99 / p99.9 / max",
        "message RTT p50 / p90 / p99 / p99.9 / max",
        "target reached and verified",
    ] {
        assert!(text.contains(row), "table row {row} missing:\n{text}");
    }
}

/// The JSON lines of a running flood (`child`), read on a thread: the
/// lines up to and including the first that says the connect phase is
/// over (`"phase":"hold"`), and the receiver of the rest.
fn lines_until_holding(
    child: &mut std::process::Child,
) -> (Vec<String>, std::sync::mpsc::Receiver<String>) {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let l = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("a line within 20s");
        let holding = l.contains("\"phase\":\"hold\"");
        lines.push(l);
        if holding {
            return (lines, rx);
        }
    }
}

#[test]
fn ctrl_c_during_the_hold_ends_every_worker_and_still_summarises() {
    let server = EchoServer::start(3);
    let child = flood(
        &server,
        900,
        &["--procs", "3", "--hold", "forever", "--json"],
    )
    .spawn()
    .unwrap();
    let mut child = KillOnDrop(Some(child));
    // read lines until every worker holds (--hold forever: until Ctrl-C)
    let (mut lines, rx) = lines_until_holding(child.0.as_mut().unwrap());
    let pid = nix::unistd::Pid::from_raw(child.0.as_ref().unwrap().id() as i32);
    let workers: Vec<u32> = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(workers.len(), 3, "three worker processes");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(20)) {
        lines.push(l);
    }
    let status = child.take().wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "Ctrl-C after the target is a success"
    );
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["event"], "summary");
    assert_eq!(last["details"]["verified"], 900);
    assert_eq!(last["details"]["established"], 900);
    for w in workers {
        assert!(
            std::fs::metadata(format!("/proc/{w}")).is_err(),
            "worker {w} still exists after the parent ended"
        );
    }
}

#[test]
fn alike_failures_of_several_workers_are_one_line_and_quiet_keeps_the_verdict() {
    // Three worker processes, one refused port: each worker refuses alike.
    let server = EchoServer::start_with(&[PortKind::Closed]);
    let out = run_flood(&server, 30, &["--procs", "3", "--hold", "0s", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("connection_refused x"))
        .collect();
    assert_eq!(refused.len(), 1, "one line for the three workers:\n{text}");
    assert!(refused[0].contains("3 workers (0-2)"), "{text}");
    // -q: no headline, progress or table; the verdict last.
    assert!(!text.contains("c1m flood:"), "{text}");
    assert!(!text.contains("connecting:"), "{text}");
    assert!(!text.contains("verified (echo checked)"), "{text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with("FAILED: reached 0 of 30"), "{text}");
}

/// A threaded echo server on `l` whose first echo on each connection
/// waits `delay` (later ones are at once); stops when `stop` is set.
fn delayed_echo(
    l: std::net::TcpListener,
    delay: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let Ok((mut s, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let stop = stop.clone();
            std::thread::spawn(move || {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let mut buf = [0u8; 256];
                let mut first = true;
                while !stop.load(Ordering::SeqCst) {
                    match s.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            if first {
                                std::thread::sleep(delay);
                                first = false;
                            }
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return,
                    }
                }
            });
        }
    })
}

/// Two worker processes, one of which connects 2 s later than the other
/// (its first echoes wait 2 s, under the 3 s connect timeout):
/// the hold (its time and its lines) begins in both only once both are
/// connected, so every connection is held open at the same time.
#[test]
fn workers_begin_the_hold_together() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (base, mut ls) = bind_run(FLOOD_BAND, 2);
    let stop = Arc::new(AtomicBool::new(false));
    let slow = delayed_echo(ls.pop().unwrap(), Duration::from_secs(2), stop.clone());
    let fast = delayed_echo(ls.pop().unwrap(), Duration::ZERO, stop.clone());
    let started = Instant::now();
    let out = run_c1m(&[
        "flood",
        "127.0.0.1",
        &base.to_string(),
        "--ports",
        "2",
        "--procs",
        "2",
        "-c",
        "20",
        "--hold",
        "1s",
        "--message-interval",
        "200ms",
        "--json",
    ]);
    stop.store(true, Ordering::SeqCst);
    let _ = (slow.join(), fast.join());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = summary(&records(&out)).clone();
    assert_eq!(s["details"]["verified"], 20, "{s}");
    // The fast worker's hold waited for the slow one: all 20 were open at
    // once (each worker holding 1 s from its own connect gave 10).
    assert_eq!(s["details"]["peak_connections"], 20, "{s}");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "2 s of connecting and 1 s of hold took {:?}",
        started.elapsed()
    );
    // Lines went both ways in the common hold.
    assert!(
        s["details"]["messages_answered"].as_u64().unwrap() >= 20,
        "{s}"
    );
}

/// `--hold-on-signal`, in one process and in several: once connected,
/// flood waits (holding, sending no line) until SIGUSR2, and only then
/// holds for `--hold` and sends its lines.
#[test]
fn hold_on_signal_waits_for_sigusr2_then_holds() {
    let server = EchoServer::start(2);
    for procs in ["1", "2"] {
        let child = flood(
            &server,
            40,
            &[
                "--procs",
                procs,
                "--hold",
                "1s",
                "--message-interval",
                "100ms",
                "--hold-on-signal",
                "--json",
            ],
        )
        .spawn()
        .unwrap();
        let mut child = KillOnDrop(Some(child));
        let (mut lines, rx) = lines_until_holding(child.0.as_mut().unwrap());
        // Connected: a 1 s hold would be over by now had it begun.
        std::thread::sleep(Duration::from_secs(2));
        assert!(
            child.0.as_mut().unwrap().try_wait().unwrap().is_none(),
            "--procs {procs}: flood ended before SIGUSR2: {lines:?}"
        );
        let pid = nix::unistd::Pid::from_raw(child.0.as_ref().unwrap().id() as i32);
        let signalled = Instant::now();
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR2).unwrap();
        while let Ok(l) = rx.recv_timeout(Duration::from_secs(20)) {
            lines.push(l);
        }
        let status = child.take().wait().unwrap();
        let held = signalled.elapsed();
        assert_eq!(status.code(), Some(0), "--procs {procs}: {lines:?}");
        assert!(
            held >= Duration::from_millis(900),
            "--procs {procs}: the hold began before SIGUSR2 (ended {held:?} after it)"
        );
        let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        assert_eq!(last["event"], "summary", "--procs {procs}");
        assert_eq!(last["details"]["verified"], 40, "--procs {procs}: {last}");
        assert!(
            last["details"]["messages_answered"].as_u64().unwrap() >= 40,
            "--procs {procs}: lines went out after SIGUSR2: {last}"
        );
    }
}
