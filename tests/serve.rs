//! `c1m serve` end to end: real sockets on 127.0.0.1, the built binary, ports
//! chosen at run time in the 10000-13999 band (every port of the range is
//! checked to bind), every process ended by the test.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c1m::events::{Event, Record};

mod common;

use common::*;

/// Raise this test process's soft fd limit to the hard one (the client side
/// of these tests holds up to a few thousand sockets).
fn raise_nofile() {
    c1m::sys::limits::raise_soft_to_hard().expect("raising the test's soft fd limit");
}

struct Server {
    child: Child,
    lines: Receiver<String>,
    all: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    base: u16,
    ports: u16,
    start: Option<serde_json::Value>,
}

impl Server {
    /// Start `c1m serve --bind 127.0.0.1 --port BASE --ports N <extra>`,
    /// under `ulimit -n <nofile>` if given, and wait for its ready signal
    /// (the `listening on` line, or the Start record with --json). Retries
    /// on another base if a port was taken in between.
    fn start(ports: u16, extra: &[&str], nofile: Option<u32>) -> Server {
        for _ in 0..5 {
            let base = free_base(SERVE_BAND, ports);
            let mut args: Vec<String> = vec![
                "serve".into(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--port".into(),
                base.to_string(),
                "--ports".into(),
                ports.to_string(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            let mut cmd = match nofile {
                Some(n) => {
                    let mut c = Command::new("sh");
                    c.arg("-c")
                        .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                        .arg(BIN)
                        .args(&args);
                    c
                }
                None => {
                    let mut c = Command::new(BIN);
                    c.args(&args);
                    c
                }
            };
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start c1m serve");
            let (tx, rx) = mpsc::channel();
            let all = Arc::new(Mutex::new(Vec::new()));
            let out = child.stdout.take().unwrap();
            let all2 = all.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    all2.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
            let stderr = Arc::new(Mutex::new(String::new()));
            let err = child.stderr.take().unwrap();
            let stderr2 = stderr.clone();
            std::thread::spawn(move || {
                let mut s = String::new();
                let mut r = BufReader::new(err);
                while r.read_line(&mut s).unwrap_or(0) > 0 {
                    stderr2.lock().unwrap().push_str(&s);
                    s.clear();
                }
            });
            let mut srv = Server {
                child,
                lines: rx,
                all,
                stderr,
                base,
                ports,
                start: None,
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match srv.lines.recv_timeout(Duration::from_millis(100)) {
                    Ok(line) => {
                        if line.starts_with("listening on ") {
                            assert!(
                                line.contains(&format!("127.0.0.1:{base}-{}", base + ports - 1)),
                                "{line}"
                            );
                            return srv;
                        }
                        if let Some(Record {
                            worker: None,
                            event: Event::Start { settings },
                            ..
                        }) = Record::parse(&line)
                        {
                            assert_eq!(settings["ports"][0], base as u64);
                            assert_eq!(settings["ports"][1], (base + ports - 1) as u64);
                            assert_eq!(settings["bind"], "127.0.0.1");
                            srv.start = Some(settings);
                            return srv;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                if let Ok(Some(_)) = srv.child.try_wait() {
                    break;
                }
                assert!(Instant::now() < deadline, "serve did not get ready");
            }
            let _ = srv.child.wait();
            std::thread::sleep(Duration::from_millis(100));
            let err = srv.stderr.lock().unwrap().clone();
            if err.contains("Address already in use") || err.contains("binding") {
                continue; // someone took a port in between: try another range
            }
            panic!("serve exited before it was ready: {err}");
        }
        panic!("could not start serve on a free port range");
    }

    fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.base + (i % self.ports as usize) as u16))
    }

    fn worker_pids(&self) -> Vec<u32> {
        let s = self.start.as_ref().expect("--json start record");
        s["worker_pids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect()
    }

    /// Wait for a parsed record matching `pred` (lines already seen are
    /// checked too).
    fn wait_record(&self, secs: u64, pred: impl Fn(&Record) -> bool) -> Option<Record> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = 0;
        while Instant::now() < deadline {
            let lines = self.all.lock().unwrap().clone();
            for l in &lines[seen..] {
                if let Some(r) = Record::parse(l)
                    && pred(&r)
                {
                    return Some(r);
                }
            }
            seen = lines.len();
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // let the reader threads drain the pipes
                std::thread::sleep(Duration::from_millis(200));
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stdout(&self) -> String {
        self.all.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM so that the parent reaps its workers; SIGKILL (the
            // workers then die by PDEATHSIG) if it does not exit in 5 s.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() > deadline {
                    let _ = self.child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.wait();
        }
        let err = self.stderr.lock().unwrap().clone();
        assert!(!err.contains("panicked"), "serve panicked: {err}");
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn echo_ok(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, msg);
}

#[test]
fn echoes_across_many_ports_and_large_writes_with_backpressure() {
    raise_nofile();
    let srv = Server::start(
        8,
        &["--workers", "2", "--max-connections", "2000", "--json"],
        None,
    );
    let mut conns: Vec<TcpStream> = (0..400).map(|i| connect(srv.addr(i))).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(format!("hello from {i}\n").as_bytes()).unwrap();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let want = format!("hello from {i}\n");
        let mut got = vec![0u8; want.len()];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, want.as_bytes());
    }
    // 4 connections each send 8 MiB while reading concurrently: far more
    // than the socket buffers, so the server's pending-write path runs.
    let handles: Vec<_> = (0..4)
        .map(|k| {
            let s = connect(srv.addr(k));
            std::thread::spawn(move || {
                let data: Vec<u8> = (0..8 << 20).map(|i: usize| (i * 7 + k) as u8).collect();
                let mut w = s.try_clone().unwrap();
                let d2 = data.clone();
                let writer = std::thread::spawn(move || {
                    // slow start of the reader: let the server's writes block
                    w.write_all(&d2).unwrap();
                    w.shutdown(Shutdown::Write).unwrap();
                });
                std::thread::sleep(Duration::from_millis(300));
                let mut r = s;
                let mut got = Vec::with_capacity(data.len());
                r.read_to_end(&mut got).unwrap();
                writer.join().unwrap();
                assert_eq!(got.len(), data.len());
                assert!(got == data, "echoed bytes differ");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    drop(conns);
    // the parent's interval lines add up what both workers did
    srv.wait_record(5, |r| {
        matches!(&r.event, Event::Interval { counters, .. }
            if r.worker.is_none()
                && counters.opened_total >= 404
                && counters.bytes_out >= 4 * (8 << 20)
                && counters.bytes_in == counters.bytes_out)
    })
    .expect("an interval with all accepts and all echoed bytes");
}

#[test]
fn a_client_that_sends_and_never_reads_keeps_server_memory_bounded() {
    raise_nofile();
    let srv = Server::start(
        2,
        &["--workers", "1", "--max-connections", "100", "--json"],
        None,
    );
    let pid = srv.worker_pids()[0];
    let before = rss(pid);
    let mut sent_total = 0usize;
    let conns: Vec<TcpStream> = (0..16)
        .map(|i| {
            let mut s = connect(srv.addr(i));
            s.set_write_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let chunk = vec![b'z'; 64 * 1024];
            // write until it blocks for 300 ms (bounded: at most 64 MiB)
            for _ in 0..1024 {
                match s.write(&chunk) {
                    Ok(n) => sent_total += n,
                    Err(_) => break,
                }
            }
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let after = rss(pid);
    let grown = after.saturating_sub(before);
    // each connection may hold at most one 64 KiB pending buffer
    assert!(
        grown < 16 * 64 * 1024 + (2 << 20),
        "server RSS grew by {grown} bytes for 16 blocked clients (sent {sent_total})"
    );
    assert!(sent_total < 16 * 1024 * 64 * 1024, "writes never blocked");
    assert!(alive(pid));
    drop(conns);
}

#[test]
fn holds_more_connections_than_one_process_fd_limit() {
    raise_nofile();
    let srv = Server::start(
        20,
        &["--workers", "auto", "--max-connections", "1000", "--json"],
        Some(300),
    );
    let start = srv.start.clone().unwrap();
    let workers = start["workers"].as_u64().unwrap();
    assert!(
        workers >= 4,
        "auto should need >= 4 workers under 300 fds: {start}"
    );
    assert_eq!(start["max_connections"], 1000);
    let mut conns: Vec<TcpStream> = (0..1000).map(|i| connect(srv.addr(i))).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(format!("{i:06}").as_bytes()).unwrap();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let mut got = [0u8; 6];
        c.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("echo on connection {i}: {e}"));
        assert_eq!(&got, format!("{i:06}").as_bytes());
    }
    for pid in srv.worker_pids() {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count();
        assert!(fds < 300, "worker {pid} holds {fds} fds");
    }
    let rec = srv
        .wait_record(5, |r| {
            matches!(&r.event, Event::Interval { counters, .. }
                if r.worker.is_none() && counters.connections == 1000)
        })
        .expect("an interval line with 1000 connections");
    if let Event::Interval { counters, .. } = rec.event {
        assert!(counters.rss_bytes.unwrap() > 0);
        assert!(counters.errors.is_empty(), "{:?}", counters.errors);
    }
}

#[test]
fn emfile_pauses_accepting_without_spinning_and_recovers() {
    raise_nofile();
    let mut srv = Server::start(
        2,
        &[
            "--workers",
            "1",
            "--max-connections",
            "1000",
            "--json",
            "--stats-interval",
            "500ms",
        ],
        Some(64),
    );
    let pid = srv.worker_pids()[0];
    // 150 connections: the handshakes complete in the kernel's backlog,
    // the worker can accept only ~40 of them before EMFILE.
    let mut conns: Vec<TcpStream> = (0..150).map(|i| connect(srv.addr(i))).collect();
    for c in &mut conns {
        c.write_all(b"x").unwrap();
    }
    let fail = srv
        .wait_record(5, |r| matches!(&r.event, Event::Failure { failure, .. } if failure.as_str() == "fd_limit"))
        .expect("an fd_limit failure line");
    assert_eq!(fail.worker, Some(0));
    assert_eq!(fail.pid, pid);
    if let Event::Failure { errno, detail, .. } = &fail.event {
        assert_eq!(*errno, Some(24));
        assert!(detail.contains("64"), "limit value in: {detail}");
    }
    // the interval lines still carry memory figures at the fd limit
    srv.wait_record(5, |r| {
        matches!(&r.event, Event::Interval { counters, .. }
            if r.worker.is_none()
                && counters.errors.contains_key("EMFILE")
                && counters.rss_bytes.unwrap_or(0) > 0)
    })
    .expect("an interval line with EMFILE counted and RSS measured");
    // saturated: CPU time over 2 s stays low (no spinning on EMFILE)
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - t0;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    assert!(
        used * 1000 / hz < 300,
        "worker used {used} ticks in 2 s while saturated"
    );
    assert!(alive(pid));
    // close the first 100 (accepted ones among them): the rest get accepted
    let mut rest = conns.split_off(100);
    drop(conns);
    for (i, c) in rest.iter_mut().enumerate() {
        let mut b = [0u8; 1];
        c.read_exact(&mut b)
            .unwrap_or_else(|e| panic!("connection {i} never served after fds freed: {e}"));
        assert_eq!(&b, b"x");
        echo_ok(c, b"again");
    }
    assert_eq!(srv.terminate().code(), Some(0));
}

#[test]
fn a_killed_worker_is_restarted_and_sigterm_ends_everything() {
    raise_nofile();
    let mut srv = Server::start(
        4,
        &["--workers", "2", "--max-connections", "200", "--json"],
        None,
    );
    let pids = srv.worker_pids();
    assert_eq!(pids.len(), 2);
    unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
    let rec = srv
        .wait_record(
            10,
            |r| matches!(&r.event, Event::Worker { action, .. } if action == "restarted"),
        )
        .expect("a worker restarted line");
    if let Event::Worker { index, detail, .. } = &rec.event {
        assert_eq!(*index, 0);
        assert!(detail.contains("SIGKILL"), "{detail}");
    }
    // still serves, on every port
    for i in 0..8 {
        echo_ok(&mut connect(srv.addr(i)), b"still here");
    }
    let new_pids: Vec<u32> = std::fs::read_to_string(format!(
        "/proc/{}/task/{}/children",
        srv.child.id(),
        srv.child.id()
    ))
    .unwrap_or_default()
    .split_whitespace()
    .filter_map(|s| s.parse().ok())
    .collect();
    let status = srv.terminate();
    assert_eq!(status.code(), Some(0));
    for p in pids.iter().chain(new_pids.iter()) {
        assert!(!alive(*p), "worker {p} still running after SIGTERM");
    }
    let out = srv.stdout();
    assert!(out.contains("\"event\":\"summary\""), "{out}");
}

#[test]
fn default_max_connections_is_what_doctor_says_a_server_can_hold() {
    // doctor's capacity estimate for a server at the C1M goal, capped there.
    let doc = run_c1m(&[
        "doctor", "--role", "server", "--target", "1000000", "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&doc.stdout)
        .unwrap_or_else(|e| panic!("doctor --json ({e}): {}", text(&doc)));
    let can_hold = doc["capacity"]["max_connections"]
        .as_u64()
        .expect("capacity.max_connections")
        .min(1_000_000);
    raise_nofile();
    let mut srv = Server::start(1, &["--json"], None);
    let settings = srv.start.clone().expect("--json start record");
    srv.terminate();
    let default = settings["max_connections"]
        .as_u64()
        .expect("max_connections");
    // Files in use (fs.file-nr) move between the two reads: 1% of slack.
    assert!(
        default.abs_diff(can_hold) <= can_hold / 100,
        "serve's default --max-connections {default}, doctor says {can_hold}: {settings}"
    );
    // And the workers it planned hold that many, each under its fd limit;
    // with neither --max-connections nor a worker count, one runs at first.
    let workers = settings["max_workers"].as_u64().unwrap();
    let cap = settings["per_worker_cap"].as_u64().unwrap();
    let nofile = settings["nofile"].as_u64().unwrap();
    assert!(workers * cap >= default && cap < nofile, "{settings}");
    assert_eq!(settings["elastic"], true, "{settings}");
    assert_eq!(settings["workers"], 1, "{settings}");
}

#[test]
fn elastic_serve_starts_one_worker_and_the_next_when_it_nears_its_share() {
    raise_nofile();
    // Under an fd limit of 1,100 a worker holds about 1,000 connections:
    // the default --max-connections needs hundreds, elastic starts one.
    let mut srv = Server::start(1, &["--json", "--stats-interval", "200ms"], Some(1100));
    let start = srv.start.clone().unwrap();
    assert_eq!(start["workers"], 1, "{start}");
    assert!(start["max_workers"].as_u64().unwrap() > 2, "{start}");
    let cap = start["per_worker_cap"].as_u64().unwrap();
    assert!((500..1100).contains(&cap), "{start}");
    assert_eq!(srv.worker_pids().len(), 1);
    // Below three quarters of its share: still one worker.
    let mut conns: Vec<TcpStream> = (0..cap / 2)
        .map(|i| connect(srv.addr(i as usize)))
        .collect();
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        srv.wait_record(
            1,
            |r| matches!(&r.event, Event::Worker { action, .. } if action == "started")
        )
        .is_none(),
        "a second worker at half the first one's share"
    );
    // Past three quarters: the second starts, and takes connections.
    conns.extend((0..cap / 2).map(|i| connect(srv.addr(i as usize))));
    let started = srv
        .wait_record(
            10,
            |r| matches!(&r.event, Event::Worker { action, .. } if action == "started"),
        )
        .expect("a worker started as the first neared its share");
    assert!(
        matches!(started.event, Event::Worker { index: 1, .. }),
        "{started:?}"
    );
    srv.wait_record(10, |r| {
        matches!(&r.event, Event::Interval { counters, .. }
            if r.worker.is_none() && counters.connections == 2 * (cap / 2))
    })
    .expect("both workers' connections counted");
    for c in conns.iter_mut().take(3) {
        echo_ok(c, b"still served");
    }
    assert!(srv.terminate().success());
    let out = srv.stdout();
    let summary = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .expect("the summary");
    assert_eq!(summary["details"]["workers"], 2, "{summary}");
}

#[test]
fn a_capped_serve_says_so_once_and_flood_and_analyze_name_the_cap() {
    raise_nofile();
    let mut srv = Server::start(
        1,
        &[
            "--workers",
            "2",
            "--max-connections",
            "100",
            "--json",
            "--stats-interval",
            "200ms",
        ],
        None,
    );
    // 130 connections to a server capped at 100: 30 are connected by the
    // kernel and never answered.
    let out = wait_bounded(
        c1m(&[
            "flood",
            "127.0.0.1",
            &srv.base.to_string(),
            "--ports",
            "1",
            "-c",
            "130",
            "--connect-timeout",
            "500ms",
            "--hold",
            "0s",
            "--json",
        ])
        .spawn()
        .unwrap(),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let flood_log = String::from_utf8(out.stdout.clone()).unwrap();
    let summary = flood_log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .expect("flood's summary");
    assert_eq!(summary["details"]["verified"], 100, "{summary}");
    // flood's account of its echo timeouts names a server cap.
    let reason = summary["details"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("connected, but nothing answered")
            && reason.contains("--max-connections")
            && reason.contains("stopped at exactly 100"),
        "{reason}"
    );
    // serve said it once, with the figure.
    std::thread::sleep(Duration::from_millis(600));
    assert!(srv.terminate().success());
    let serve_log = srv.stdout();
    let caps: Vec<serde_json::Value> = serve_log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "failure" && v["failure"] == "server_connection_limit")
        .collect();
    assert_eq!(caps.len(), 1, "said once:\n{serve_log}");
    assert_eq!(caps[0]["max_connections"], 100);
    assert_eq!(caps[0]["connections"], 100);
    assert_eq!(caps[0]["workers"], 2);
    let detail = caps[0]["detail"].as_str().unwrap();
    assert!(detail.contains("--max-connections 100"), "{detail}");
    let summary = serve_log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .expect("serve's summary");
    assert!(
        summary["details"]["cap_reached_s"].as_f64().is_some(),
        "{summary}"
    );
    // analyze on both logs: the cap is the cause of the echo timeouts.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("serve.log"), &serve_log).unwrap();
    std::fs::write(dir.path().join("flood.log"), &flood_log).unwrap();
    let report = analyze_json(&[dir.path()]);
    let cap = findings_with(&report, "server_connection_limit");
    assert_eq!(cap.len(), 1, "{report}");
    assert!(
        cap[0]["explanation"]
            .as_str()
            .unwrap_or_default()
            .contains("--max-connections 100"),
        "the finding names the cap: {}",
        cap[0]
    );
    let timeouts = findings_with(&report, "connect_timeout");
    assert!(
        timeouts.iter().any(|t| t["caused_by"]
            .as_array()
            .is_some_and(|c| c.contains(&"server_connection_limit".into()))),
        "{report}"
    );
}

#[test]
fn a_capped_serve_says_so_once_in_its_human_log() {
    raise_nofile();
    let mut srv = Server::start(
        1,
        &[
            "--workers",
            "1",
            "--max-connections",
            "5",
            "--stats-interval",
            "100ms",
        ],
        None,
    );
    let conns: Vec<TcpStream> = (0..5).map(|i| connect(srv.addr(i))).collect();
    std::thread::sleep(Duration::from_millis(800));
    assert!(srv.terminate().success());
    drop(conns);
    let out = srv.stdout();
    let said: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("cap reached: "))
        .collect();
    assert_eq!(said.len(), 1, "{out}");
    assert!(
        said[0].contains("--max-connections 5 (1 worker at 5 each)"),
        "{out}"
    );
    assert!(
        out.contains("(at its cap)"),
        "the interval lines say it too: {out}"
    );
    assert!(out.contains("5 reached at"), "the summary table: {out}");
}

#[test]
fn sigterm_prints_the_human_summary_and_exits_zero() {
    raise_nofile();
    let mut srv = Server::start(
        3,
        &[
            "--workers",
            "2",
            "--max-connections",
            "50",
            "--stats-interval",
            "200ms",
        ],
        None,
    );
    let mut c = connect(srv.addr(1));
    echo_ok(&mut c, b"ping");
    std::thread::sleep(Duration::from_millis(600));
    let status = srv.terminate();
    assert_eq!(status.code(), Some(0));
    let out = srv.stdout();
    assert!(
        out.contains("connections 1 "),
        "interval line missing: {out}"
    );
    assert!(out.contains("peak connections"), "summary missing: {out}");
    assert!(out.contains("user memory per connection"), "{out}");
}

#[test]
fn garbage_resets_and_empty_connections_never_hurt_the_server() {
    raise_nofile();
    let srv = Server::start(
        4,
        &["--workers", "2", "--max-connections", "500", "--json"],
        None,
    );
    // random bytes, in odd sizes, some connections closed without reading
    for i in 0..60 {
        let mut s = connect(srv.addr(i));
        let n = random(100_000) as usize;
        let data: Vec<u8> = (0..n).map(|_| random(256) as u8).collect();
        let _ = s.write_all(&data);
        if i % 2 == 0 {
            let mut got = vec![0u8; n];
            s.read_exact(&mut got).unwrap();
            assert!(got == data);
        }
    }
    // zero-length: connect and close, or half-close at once
    for i in 0..40 {
        let s = connect(srv.addr(i));
        if i % 2 == 0 {
            s.shutdown(Shutdown::Write).unwrap();
            let mut r = s;
            let mut buf = Vec::new();
            r.read_to_end(&mut buf).unwrap();
            assert!(buf.is_empty());
        }
    }
    // RST mid-write: send a lot without reading, then close with SO_LINGER 0
    for i in 0..20 {
        let s = socket2::Socket::from(connect(srv.addr(i)));
        s.set_nonblocking(true).unwrap();
        let chunk = vec![7u8; 256 * 1024];
        for _ in 0..8 {
            let _ = s.send(&chunk);
        }
        s.set_linger(Some(Duration::ZERO)).unwrap();
        drop(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..8 {
        echo_ok(&mut connect(srv.addr(i)), b"alive?");
    }
    for p in srv.worker_pids() {
        assert!(alive(p), "worker {p} died");
    }
    assert!(
        !srv.stdout().contains("\"event\":\"worker\""),
        "a worker was restarted"
    );
}

#[test]
fn seed_log_format_prints_the_reactor_line_every_1000_accepts() {
    raise_nofile();
    let mut srv = Server::start(
        20,
        &[
            "--workers",
            "1",
            "--max-connections",
            "2000",
            "--log-format",
            "seed",
        ],
        None,
    );
    let conns: Vec<TcpStream> = (0..1000).map(|i| connect(srv.addr(i))).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let out = srv.stdout();
        if let Some(l) = out
            .lines()
            .find(|l| l.starts_with("connections: 1000, sockfd:"))
        {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no seed line in: {out}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let rest = line.strip_prefix("connections: 1000, sockfd:").unwrap();
    let (fd, ms) = rest.split_once(", time_used:").expect(&line);
    assert!(fd.parse::<u32>().unwrap() > 1000);
    ms.parse::<u64>().unwrap();
    drop(conns);
    assert_eq!(srv.terminate().code(), Some(0));
}

#[test]
fn bad_arguments_are_named_and_exit_2() {
    let out = Command::new(BIN)
        .args(["serve", "--workers", "zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("zero"));
    let out = Command::new(BIN)
        .args(["serve", "--port", "65530", "--ports", "20"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("65535"));
    let out = Command::new(BIN)
        .args(["serve", "--max-connections", "lots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lots"));
}

#[test]
fn quiet_prints_no_progress_line_but_the_summary() {
    let mut srv = Server::start(
        1,
        &["-q", "--stats-interval", "50ms", "--workers", "1"],
        None,
    );
    std::thread::sleep(Duration::from_millis(400));
    assert!(srv.terminate().success());
    let out = srv.stdout();
    assert!(!out.contains("(+"), "no interval line: {out}");
    assert!(out.contains("listening on"), "{out}");
    assert!(out.to_lowercase().contains("peak"), "the summary: {out}");
}

#[test]
fn more_workers_than_the_cap_is_a_clear_error() {
    // Under an fd limit of 1,100, five million connections need over 5,000
    // workers: refused, saying why, before any is forked.
    let mut cmd = c1m(&["serve", "--max-connections", "5000000", "--ports", "1"]);
    let out = wait_bounded(
        with_nofile(&mut cmd, 1100).spawn().unwrap(),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("more than 4096") && err.contains("--max-connections"),
        "{err}"
    );
}

#[test]
fn with_json_the_fd_limit_warning_is_a_record() {
    // One worker allowed 5,000 connections under an fd limit of 1,100.
    let mut srv = Server::start(
        2,
        &["--workers", "1", "--max-connections", "5000", "--json"],
        Some(1100),
    );
    let warning = srv.wait_record(10, |r| matches!(r.event, Event::Warning { .. }));
    srv.terminate();
    match warning.map(|r| r.event) {
        Some(Event::Warning { failure, detail }) => {
            assert_eq!(failure.as_str(), "fd_limit");
            assert!(detail.contains("5,000 connections"), "{detail}");
        }
        other => panic!("no warning record: {other:?}\n{}", srv.stdout()),
    }
    assert!(!srv.stderr.lock().unwrap().contains("warning"));
    // Every line is still a c1m record.
    for line in srv.stdout().lines() {
        assert!(Record::parse(line).is_some(), "{line}");
    }
}

/// Start serve with one worker, open `n` echoed connections, wait until an
/// interval line counts them, and kill the worker with SIGKILL. Returns the
/// server and the connections (still open on this side).
fn kill_worker_holding(n: usize, json: bool) -> (Server, Vec<TcpStream>) {
    raise_nofile();
    let mut extra = vec![
        "--workers",
        "1",
        "--max-connections",
        "1000",
        "--stats-interval",
        "200ms",
    ];
    if json {
        extra.push("--json");
    }
    let srv = Server::start(2, &extra, None);
    let conns: Vec<TcpStream> = (0..n)
        .map(|i| {
            let mut c = connect(srv.addr(i));
            echo_ok(&mut c, b"hold me");
            c
        })
        .collect();
    let worker = if json {
        let seen = srv.wait_record(10, |r| {
            matches!(&r.event, Event::Interval { counters, .. } if r.worker.is_none() && counters.connections == n as u64)
        });
        assert!(seen.is_some(), "no interval with {n}: {}", srv.stdout());
        srv.worker_pids()[0]
    } else {
        let want = format!("connections {n} ");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !srv.stdout().contains(&want) {
            assert!(Instant::now() < deadline, "{}", srv.stdout());
            std::thread::sleep(Duration::from_millis(50));
        }
        descendants(srv.child.id())[0]
    };
    unsafe { libc::kill(worker as i32, libc::SIGKILL) };
    (srv, conns)
}

#[test]
fn a_worker_killed_holding_connections_reports_them_lost_in_json() {
    let (mut srv, _conns) = kill_worker_holding(150, true);
    let died = srv
        .wait_record(10, |r| {
            matches!(&r.event, Event::Failure { failure, .. } if failure.as_str() == "server_process_died")
        })
        .expect("a server_process_died failure line");
    if let Event::Failure { count, detail, .. } = &died.event {
        assert_eq!(*count, 150, "{detail}");
        assert!(
            detail.contains("killed by SIGKILL holding 150 connections"),
            "{detail}"
        );
    }
    assert_eq!(srv.terminate().code(), Some(0));
    let recs: Vec<serde_json::Value> = srv
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let sum = summary(&recs);
    assert_eq!(sum["details"]["lost_connections"], 150, "{sum}");
    assert_eq!(sum["failures"]["server_process_died"], 150, "{sum}");
    assert_eq!(sum["opened_total"], 150, "{sum}");
    assert_eq!(sum["closed_total"], 0, "lost is not closed: {sum}");
    let death = &sum["details"]["worker_deaths"][0];
    assert_eq!(death["signal"], "SIGKILL", "{sum}");
    assert_eq!(death["connections_lost"], 150, "{sum}");
    assert_eq!(sum["details"]["peak_connections"], 150, "{sum}");
}

#[test]
fn a_worker_killed_holding_connections_reports_them_lost_in_the_table() {
    let (mut srv, _conns) = kill_worker_holding(40, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !srv.stdout().contains("restarted as pid") {
        assert!(Instant::now() < deadline, "{}", srv.stdout());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(srv.terminate().code(), Some(0));
    let out = srv.stdout();
    assert!(
        out.contains("killed by SIGKILL holding 40 connections: all lost"),
        "{out}"
    );
    let lost_row = out
        .lines()
        .find(|l| l.contains("lost (workers died)"))
        .unwrap_or_else(|| panic!("no lost row: {out}"));
    assert!(lost_row.contains(" 40 "), "{lost_row}");
}

/// A line followed at once by the client's FIN: the server echoes the line
/// and closes, with or without TCP_DEFER_ACCEPT (the FIN may come in the
/// same edge as the bytes, or in the very accept's wake-up).
fn line_then_fin_is_echoed_and_closed(extra: &[&str]) {
    raise_nofile();
    let mut args = vec!["--workers", "2", "--max-connections", "2000", "--json"];
    args.extend_from_slice(extra);
    let srv = Server::start(4, &args, None);
    let mut conns: Vec<TcpStream> = (0..300).map(|i| connect(srv.addr(i))).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(format!("line {i}\n").as_bytes()).unwrap();
        if i % 2 == 0 {
            c.shutdown(Shutdown::Write).unwrap();
        }
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let want = format!("line {i}\n");
        if i % 2 == 0 {
            // echoed, then the server's own close: read_to_end ends
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            assert_eq!(got, want.as_bytes(), "connection {i}");
        } else {
            let mut got = vec![0u8; want.len()];
            c.read_exact(&mut got).unwrap();
            assert_eq!(got, want.as_bytes(), "connection {i}");
            echo_ok(c, b"second\n");
        }
    }
    srv.wait_record(5, |r| {
        matches!(&r.event, Event::Interval { counters, .. }
            if r.worker.is_none() && counters.opened_total >= 300 && counters.closed_total >= 150)
    })
    .expect("every connection accepted, the half-closed ones closed");
}

#[test]
fn a_line_then_fin_is_echoed_and_closed() {
    line_then_fin_is_echoed_and_closed(&[]);
}

#[test]
fn with_defer_accept_a_first_line_is_echoed_at_accept() {
    line_then_fin_is_echoed_and_closed(&["--defer-accept"]);
}

#[test]
fn alike_failures_of_several_workers_are_one_human_line() {
    raise_nofile();
    // Three workers under an fd limit of 64, 250 connections queued: each
    // runs into EMFILE in the same intervals.
    let mut srv = Server::start(
        1,
        &[
            "--workers",
            "3",
            "--max-connections",
            "3000",
            "--stats-interval",
            "200ms",
        ],
        Some(64),
    );
    let conns: Vec<TcpStream> = (0..250).map(|i| connect(srv.addr(i))).collect();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(srv.terminate().success());
    drop(conns);
    let out = srv.stdout();
    let grouped: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("3 workers (0-2): fd_limit ("))
        .collect();
    assert!(
        !grouped.is_empty(),
        "one line for the three workers:\n{out}"
    );
    assert!(grouped[0].contains("in all); worker "), "{out}");
    assert!(grouped[0].contains("EMFILE"), "{out}");
}
