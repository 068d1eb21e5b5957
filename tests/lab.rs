//! `c1m lab` end to end: every failure scenario provoked for real and named
//! by analyze, a small lab run whose report agrees with what its processes
//! printed, and Ctrl-C leaving no process and no applied setting behind.
//! Everything runs on loopback inside the private network namespace the lab
//! makes for itself; the tests that need one are ignored without it.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::*;

fn scenario(name: &str, expected: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["lab", "--scenario", name, "--json", "--report"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "no outcome line; stdout: {stdout}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let v: Value = serde_json::from_str(line).unwrap();
    if let Some(why) = v["skipped"].as_str() {
        panic!("scenario {name} was skipped by the lab although the test runs: {why}");
    }
    assert_eq!(v["expected"], expected);
    let found: Vec<&str> = v["found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        found.contains(&expected),
        "{name}: analyze found {found:?}, not {expected}"
    );
    assert_eq!(v["named"], true);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    // The evidence is on disk: logs and analyze's JSON.
    let analysis: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(v["dir"].as_str().unwrap()).join("analysis.json"))
            .unwrap(),
    )
    .unwrap();
    let finding = analysis["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == expected)
        .expect("the finding in analysis.json");
    assert!(
        !finding["evidence"].as_array().unwrap().is_empty(),
        "{finding}"
    );
    analysis
}

#[test]
fn scenario_fd_limit_is_named_fd_limit_and_blamed_for_the_timeouts() {
    let analysis = scenario("fd-limit", "fd_limit");
    let timeouts = analysis["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "connect_timeout")
        .expect("the clients' echoes timed out while the server could not accept");
    assert_eq!(
        timeouts["caused_by"],
        serde_json::json!(["fd_limit"]),
        "{timeouts}"
    );
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
fn scenario_ports_is_named_ephemeral_ports_exhausted() {
    scenario("ports", "ephemeral_ports_exhausted");
}

#[test]
fn scenario_refused_is_named_connection_refused() {
    scenario("refused", "connection_refused");
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
fn scenario_backlog_is_named_accept_queue_overflow() {
    scenario("backlog", "accept_queue_overflow");
}

#[test]
fn scenario_cap_is_named_client_cap_reached() {
    scenario("cap", "client_cap_reached");
}

fn only_dir(root: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// The last JSON record of `event` type in a log.
fn last_event(log: &Path, event: &str) -> Value {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == event)
        .unwrap_or_else(|| panic!("no {event} record in {}", log.display()))
}

/// `--ehash-entries N`: the lab's namespace gets a TCP established hash
/// table of its own of N buckets, the report says so, and the host's
/// net.ipv4.tcp_child_ehash_entries (set only for the namespace's
/// creation) is as it was.
#[test]
#[cfg_attr(
    not(c1m_child_ehash),
    ignore = "needs root, namespaces and net.ipv4.tcp_child_ehash_entries (Linux 6.1+)"
)]
fn the_labs_namespace_gets_the_hash_table_asked_for_and_the_host_keeps_its_own() {
    let knob = "/proc/sys/net/ipv4/tcp_child_ehash_entries";
    let before = std::fs::read_to_string(knob).unwrap();
    let root = tempfile::tempdir().unwrap();
    let out = Lab::new(3000)
        .netns_on()
        .hold("1s")
        .args(&["--ehash-entries", "65536"])
        .run(root.path(), Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = only_dir(root.path());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("TCP established hash table of its own: 65,536 buckets"),
        "{notes}"
    );
    assert_eq!(report["verified"], 3000);
    assert_eq!(std::fs::read_to_string(knob).unwrap(), before);
    assert!(!Path::new("/run/c1m.child-ehash.saved").exists());
}

#[test]
fn small_lab_reaches_its_target_and_the_report_matches_the_processes() {
    let root = tempfile::tempdir().unwrap();
    let out = Lab::new(5000)
        .args(&[
            "--message-interval",
            "1s",
            // flood's syntax: one list, a block of it per client
            "--sources",
            "127.0.0.2-127.0.0.5",
        ])
        .run(root.path(), Duration::from_secs(180));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = only_dir(root.path());
    assert!(
        stdout.contains(&dir.display().to_string()),
        "the report's path is printed"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["target"], 5000);
    assert_eq!(report["reached"], true);
    assert_eq!(report["verified"], 5000);
    // Each client's figures are the ones its own summary line printed.
    let clients = report["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 2);
    let mut sum = 0;
    let mut peaks = 0;
    for c in clients {
        let k = c["index"].as_u64().unwrap();
        let summary = last_event(&dir.join("logs").join(format!("client-{k}.log")), "summary");
        assert_eq!(
            c["established"], summary["details"]["verified"],
            "client {k}"
        );
        assert_eq!(c["target"], 2500);
        // What it spoke, as its start line said.
        let start = last_event(&dir.join("logs").join(format!("client-{k}.log")), "start");
        assert_eq!(c["protocol"], start["settings"]["protocol"], "client {k}");
        assert_eq!(c["protocol"]["name"], "echo", "client {k}");
        let block = if k == 1 {
            "127.0.0.2,127.0.0.3"
        } else {
            "127.0.0.4,127.0.0.5"
        };
        assert_eq!(
            c["sources"], block,
            "client {k} binds its block of --sources"
        );
        // Each client held all it verified at once (nothing was lost), and
        // the report's peak is the one its summary gave.
        assert_eq!(c["peak_connections"], c["established"], "client {k}: {c}");
        assert_eq!(
            c["peak_connections"], summary["details"]["peak_connections"],
            "client {k}"
        );
        sum += c["established"].as_u64().unwrap();
        peaks += c["peak_connections"].as_u64().unwrap();
    }
    assert_eq!(sum, 5000);
    assert_eq!(peaks, 5000, "the clients' peaks add up to the target");
    // The clients began their holds (and their timed lines) together, on
    // the lab's signal once none was still connecting: no client's lines
    // were timed against another's connect phase.
    let at = |c: &Value, what: &str| c["details"][what].as_f64().unwrap();
    let connected = clients
        .iter()
        .map(|c| at(c, "connect_ended_unix"))
        .fold(f64::MIN, f64::max);
    for c in clients {
        assert!(
            at(c, "hold_began_unix") >= connected,
            "client {} began its hold at {} before the last client connected at {connected}",
            c["index"],
            at(c, "hold_began_unix")
        );
    }
    // The server's peak is what serve itself said.
    let serve = last_event(&dir.join("logs/serve.log"), "summary");
    assert_eq!(
        report["server_peak_connections"],
        serve["details"]["peak_connections"]
    );
    assert_eq!(report["server_peak_connections"], 5000);
    let t = report["time_to_target_s"].as_f64().unwrap();
    assert!(t > 0.0 && t < 60.0, "{t}");
    let rate = report["connect_rate_per_s"].as_f64().unwrap();
    assert!((rate - 5000.0 / t).abs() < 1.0, "{rate} vs {t}");
    assert!(
        report["rtt_ms"]["p50_ms"].as_f64().is_some(),
        "echoes were timed during the hold"
    );
    // Both ends' sockets moved the namespace's counters.
    assert!(report["counters"]["TcpPassiveOpens"].as_u64().unwrap() >= 5000);
    // A healthy run: analyze finds nothing certain.
    for f in report["findings"].as_array().unwrap() {
        assert_ne!(f["certainty"], "certain", "{f}");
    }
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    // comfy-table's Markdown preset pads the cells.
    assert!(
        md.contains("| time to target ") && md.contains("reached"),
        "{md}"
    );
    assert_eq!(report["protocol"], "echo");
    assert!(md.contains("| clients spoke "), "{md}");
    let svg = std::fs::read_to_string(dir.join("connections.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("client-1"),
        "the chart names the clients"
    );
}

#[test]
#[cfg_attr(
    not(c1m_netns),
    ignore = "needs root: applies a profile inside a network namespace"
)]
fn ctrl_c_leaves_no_process_and_no_applied_setting() {
    let root = tempfile::tempdir().unwrap();
    let profile = fixture("lab-netns-only.conf");
    let host_somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let mut child = Lab::new(60000)
        .hold("30s")
        .args(&["--apply", "--profile", &profile])
        .command(root.path())
        .env("C1M_STATE_DIR", state_dir.path())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the clients are running, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut kids = Vec::new();
    while Instant::now() < deadline {
        kids = descendants(pid);
        if kids.len() >= 3 && root.path().read_dir().unwrap().count() == 1 {
            let dir = only_dir(root.path());
            if dir
                .join("logs/client-2.log")
                .metadata()
                .map(|m| m.len() > 0)
                .unwrap_or(false)
            {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(kids.len() >= 3, "serve and two clients started: {kids:?}");
    kids = descendants(pid); // the workers too
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "lab did not end after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.code().is_some(),
        "exited, not killed by the signal: {status:?}"
    );
    assert!(stdout.contains("profile rolled back"), "{stdout}");
    std::thread::sleep(Duration::from_millis(200));
    let left: Vec<u32> = kids.into_iter().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    assert!(
        !state_dir.path().join("lab-state.json").exists(),
        "state file removed after rollback"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap(),
        host_somaxconn
    );
    // The interrupted run still wrote its report.
    let dir = only_dir(root.path());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["applied_profile"], true);
    assert!(
        report["notes"].to_string().contains("interrupted"),
        "{}",
        report["notes"]
    );
}

/// `c1m lab --target max` on a host whose fs.file-max (a fake sysctl tree:
/// the lab reads its limits through `C1M_SYSCTL_ROOT`, serve and flood the
/// real /proc/sys) leaves room for `connections`: every other limit,
/// memory too, allows far more.
fn max_lab(lab: Lab, connections: u64, root: &Path, limit: Duration) -> std::process::Output {
    let host = tempfile::tempdir().unwrap();
    let file_max = (449 + 2 * connections).to_string();
    let sysctl = fake_tree(
        host.path(),
        &[
            ("fs.file-max", file_max.as_str()),
            ("fs.file-nr", "449\t0\t100000"),
            ("fs.nr_open", "1048576"),
            ("fs.epoll.max_user_watches", "10000000"),
        ],
    );
    let mut cmd = lab.command(root);
    cmd.env("C1M_SYSCTL_ROOT", &sysctl);
    wait_bounded(cmd.spawn().unwrap(), limit)
}

/// `--target max` ramps to the first limit that binds and names it: here
/// fs.file-max, which the ramp reaches with memory far above the floor, so
/// the ceiling is that limit, with doctor's row as the evidence; exit 0.
#[test]
fn target_max_ramps_to_the_first_limit_and_names_it() {
    let root = tempfile::tempdir().unwrap();
    let out = max_lab(
        Lab::max().hold("1s"),
        3_000,
        root.path(),
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains("lab: target max: ramping until a limit binds (usable memory below ")
            && stdout.contains("at most 3,000 connections, 2 clients, 4 ports; host capacity about 3,000 connections")
            && stdout.contains("binding: fs.file-max"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Ceiling: file-max bound at 3,000 verified connections"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lab: target max: ceiling 3,000 (file-max): verified 3,000"),
        "{stdout}"
    );
    let dir = only_dir(root.path());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        (report["target"].as_u64(), report["reached"].as_bool()),
        (Some(3_000), Some(true))
    );
    let c = &report["ceiling"];
    assert_eq!(c["limit"], "file-max", "{report}");
    assert_eq!(c["connections"], 3_000);
    assert!(
        c["evidence"].as_str().unwrap().contains(
            "the ramp reached the most file-max allows: fs.file-max 6,449 minus 449 in use"
        ),
        "{c}"
    );
    assert!(
        c["usable_bytes"].as_u64().unwrap() > c["floor_bytes"].as_u64().unwrap(),
        "{c}"
    );
    assert!(
        c["doctor"]
            .as_str()
            .unwrap()
            .contains("Binding limit: fs.file-max"),
        "{c}"
    );
    assert_eq!(report["hold"]["lost"], 0, "{report}");
}

/// The ramp's safety stop: the memory floor of `--target max`, made to bind
/// at once with the hidden `--mem-floor-mib` set above any host's memory
/// (fs.file-max bounds the ramp at 100,000, far more than the first second
/// connects). The lab stops the clients' ramp after its first memory check,
/// holds what they verified for --hold, reports the limit with its
/// evidence, tears down and exits 0: the ceiling was what it looked for.
#[test]
fn the_memory_floor_stops_the_ramp_and_names_the_limit() {
    let root = tempfile::tempdir().unwrap();
    let out = max_lab(
        Lab::max()
            .hold("1s")
            .args(&["--mem-floor-mib", "100000000"]),
        100_000,
        root.path(),
        Duration::from_secs(180),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout.contains("Ceiling: memory bound at"), "{stdout}");
    assert!(stdout.contains("lab: target max: ceiling "), "{stdout}");
    let dir = only_dir(root.path());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["reached"], false);
    let c = &report["ceiling"];
    assert_eq!(c["limit"], "memory", "{report}");
    assert_eq!(c["floor_bytes"].as_u64(), Some(100_000_000u64 << 20));
    let usable = c["usable_bytes"].as_u64().unwrap();
    assert!(usable < c["floor_bytes"].as_u64().unwrap());
    assert!(usable <= c["mem_available_bytes"].as_u64().unwrap());
    assert!(c["time_s"].as_f64().unwrap() > 0.0, "{c}");
    let at_stop = c["connections"].as_u64().unwrap();
    assert!(at_stop < 100_000, "stopped at {at_stop}");
    assert!(
        report["verified"].as_u64().unwrap() < 100_000,
        "the clients stopped ramping"
    );
    let notes = report["notes"].to_string();
    assert!(notes.contains("stopped ramping"), "{notes}");
    assert!(
        notes.contains("--target max: doctor's capacity estimate is 100,000 connections (binding: fs.file-max: fs.file-max 200,449 minus 449 in use"),
        "{notes}"
    );
    assert!(
        std::fs::read_to_string(dir.join("report.md"))
            .unwrap()
            .contains("Ceiling: memory bound at")
    );
    // Held at the ceiling, not stopped there: what was verified stayed
    // open through the hold, and the clients say why they stopped.
    let hold = &report["hold"];
    assert_eq!(hold["lost"], 0, "{hold}");
    assert!(hold["alive_at_end"].as_u64().unwrap() > 0, "{hold}");
    assert!(
        report["verified"].as_u64().unwrap() >= at_stop,
        "{} verified, {at_stop} at the stop",
        report["verified"]
    );
    assert!(stdout.contains("alive at its end, none lost"), "{stdout}");
    let client = std::fs::read_to_string(dir.join("logs/client-1.log")).unwrap();
    assert!(client.contains("stopped connecting on SIGUSR1"), "{client}");
    // The lab's record of its stop is in logs/lab.log, and analyze (the
    // lab's findings) puts the ceiling first, as what ended the ramp.
    let lab_log = std::fs::read_to_string(dir.join("logs/lab.log")).unwrap();
    assert!(
        lab_log.contains("\"failure\":\"memory_ceiling\""),
        "{lab_log}"
    );
    let first = &report["findings"][0];
    assert_eq!(first["id"], "memory_ceiling", "{}", report["findings"]);
    assert_eq!(first["side"], "host", "{first}");
    assert!(
        first["explanation"]
            .as_str()
            .unwrap()
            .contains("stopped its ramp when"),
        "{first}"
    );
}

/// Each flood connection's handshake ACK rides on its first line (one
/// packet fewer, in the lab's own namespace counters), unless the lab is
/// told `--separate-handshake-ack`; every connection is verified either
/// way, and either way the echo is acknowledged at once, not by a
/// delayed-ACK timer.
#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
fn the_handshake_ack_rides_on_the_first_line_unless_told_otherwise() {
    let n = 3000u64;
    let segments = |extra: &[&str]| {
        let root = tempfile::tempdir().unwrap();
        let mut args = vec!["--message-interval", "off", "--netns", "on"];
        args.extend_from_slice(extra);
        let out = Lab::new(n)
            .hold("1s")
            .args(&args)
            .run(root.path(), Duration::from_secs(120));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = only_dir(root.path());
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap())
                .unwrap();
        assert_eq!(report["verified"], n, "{extra:?}");
        let per_conn =
            |name: &str| report["counters"][name].as_u64().unwrap_or(0) as f64 / n as f64;
        // Holding the ACK must not leave the echo's ACK to a delayed-ACK
        // timer (the kernel's ping-pong mode): flood sets TCP_QUICKACK
        // once its line is out.
        let delayed = per_conn("TcpExtDelayedACKs");
        assert!(
            delayed < 0.1,
            "{extra:?}: {delayed} delayed ACKs per connection"
        );
        per_conn("TcpOutSegs")
    };
    // SYN, SYN-ACK, the line (with the ACK), the server's ACK, the echo,
    // the client's ACK: 6; with the ACK on its own, 7.
    let with_line = segments(&[]);
    let separate = segments(&["--separate-handshake-ack"]);
    assert!(
        (5.5..6.5).contains(&with_line),
        "{with_line} segments out per connection"
    );
    assert!(
        (6.5..7.5).contains(&separate),
        "{separate} segments out per connection with --separate-handshake-ack"
    );
}
