//! `c1m lab --hosts`: the experiment between namespace hosts, its report
//! (a row per host, each host's doctor rows), the conntrack and ports
//! scenarios provoked between hosts, and cleanup: nothing is left behind
//! (no namespace with the lab's prefix, no process, the global conntrack
//! table size restored) on success, Ctrl-C, SIGHUP, and after a SIGKILL
//! through `c1m lab --cleanup`. The root network namespace never gets an
//! address or interface of the lab.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::BIN as C1M;
use common::procs::{alive, descendants};

/// Network namespaces of the lab run by `pid`.
fn namespaces_of(pid: u32) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("c1m-{pid}-")))
        .map(str::to_string)
        .collect()
}

/// What the root namespace shows of the lab's range or interfaces.
fn root_traces() -> Vec<String> {
    let addr = Command::new("ip").args(["-o", "addr"]).output().unwrap();
    let route = Command::new("ip").args(["route"]).output().unwrap();
    String::from_utf8_lossy(&addr.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&route.stdout).lines())
        .filter(|l| l.contains(" 198.18.") || l.contains(" 198.19.") || l.contains("br0"))
        .map(str::to_string)
        .collect()
}

fn lab(args: &[&str], report: &Path) -> Child {
    Command::new(C1M)
        .arg("lab")
        .arg("--hosts")
        .args(args)
        .arg("--report")
        .arg(report)
        // The lab's state and lock live in the test's own folder, never in
        // the host's /var/lib/c1m.
        .env("C1M_STATE_DIR", report.join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for `child`, watching the root namespace; kill it past `limit`.
fn wait_watching_root(mut child: Child, limit: Duration) -> (Output, Vec<String>) {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        seen.extend(root_traces());
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), seen);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("c1m lab --hosts ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// report.json: the last line of `--json` output.
fn report_of(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "no report line ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
#[cfg_attr(
    not(all(c1m_root, c1m_netns)),
    ignore = "needs root: named network namespaces"
)]
fn hosts_lab_reaches_its_target_with_a_row_per_host_and_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let child = lab(
        &[
            "--target",
            "3000",
            "--hold",
            "1s",
            "--sources",
            "2",
            "--json",
        ],
        root.path(),
    );
    let pid = child.id();
    let (out, traces) = wait_watching_root(child, Duration::from_secs(120));
    assert!(
        traces.is_empty(),
        "the root namespace was touched: {traces:?}"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report_of(&out);
    assert_eq!(r["reached"], true);
    assert_eq!(r["verified"], 3000);
    let hosts = r["hosts"].as_array().unwrap();
    let names: Vec<&str> = hosts.iter().map(|h| h["host"].as_str().unwrap()).collect();
    assert_eq!(names, ["server", "client-1", "client-2", "client-3"]);
    assert_eq!(hosts[0]["addresses"], serde_json::json!(["198.18.0.1"]));
    let mut sum = 0;
    for (k, h) in hosts.iter().enumerate().skip(1) {
        assert_eq!(h["netns"], format!("c1m-{pid}-client-{k}"));
        assert_eq!(
            h["addresses"],
            serde_json::json!([format!("198.18.{k}.1"), format!("198.18.{k}.2")])
        );
        assert_eq!(
            h["connections"], h["target"],
            "client-{k} reached its share"
        );
        sum += h["connections"].as_u64().unwrap();
    }
    assert_eq!(sum, 3000);
    for h in hosts {
        // Each host was tuned by doctor inside it, host-wide keys skipped.
        let keys = h["doctor"]["apply"]["keys"].as_array().unwrap();
        assert!(!h["doctor"]["rows"].as_array().unwrap().is_empty());
        assert!(
            keys.iter()
                .any(|k| k["key"].as_str().unwrap().starts_with("fs.") && k["status"] != "applied")
        );
    }
    // One log folder per host, for analyze to group.
    let dir = PathBuf::from(r["report_dir"].as_str().unwrap());
    for h in names {
        assert!(dir.join("logs").join(h).join("counters.nstat").is_file());
    }
    assert!(dir.join("logs/server/serve.log").is_file());
    assert!(dir.join("logs/client-2/flood.log").is_file());
    assert_eq!(
        r["removed"].as_array().unwrap().len(),
        5,
        "4 hosts and the switch"
    );
    assert!(namespaces_of(pid).is_empty(), "{:?}", namespaces_of(pid));
}

/// Start a lab that holds, wait until its clients flood, send `sig`.
fn interrupted(sig: nix::sys::signal::Signal) {
    let root = tempfile::tempdir().unwrap();
    let mut child = lab(
        &["--target", "2000", "--clients", "2", "--hold", "60s"],
        root.path(),
    );
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Both client hosts' floods run (then give them a moment to connect).
    let floods = || {
        descendants(pid)
            .into_iter()
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == b"flood"))
            })
            .count()
    };
    while floods() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(namespaces_of(pid).len(), 4, "server, 2 clients, switch");
    let kids = descendants(pid);
    assert!(kids.len() >= 3, "serve and two floods run: {kids:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "lab did not end after {sig}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.code().is_some(),
        "exited by itself after {sig}: {:?}",
        out.status
    );
    std::thread::sleep(Duration::from_millis(300));
    let left: Vec<u32> = kids.into_iter().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "processes left after {sig}: {left:?}");
    assert!(namespaces_of(pid).is_empty(), "namespaces left after {sig}");
}

#[test]
#[cfg_attr(
    not(all(c1m_root, c1m_netns)),
    ignore = "needs root: named network namespaces"
)]
fn ctrl_c_removes_every_namespace_and_process() {
    interrupted(nix::sys::signal::Signal::SIGINT);
}

#[test]
#[cfg_attr(
    not(all(c1m_root, c1m_netns)),
    ignore = "needs root: named network namespaces"
)]
fn sighup_removes_every_namespace_and_process() {
    interrupted(nix::sys::signal::Signal::SIGHUP);
}

#[test]
#[cfg_attr(
    not(all(c1m_root, c1m_netns)),
    ignore = "needs root: named network namespaces"
)]
fn cleanup_removes_what_a_killed_lab_left_and_says_so() {
    let root = tempfile::tempdir().unwrap();
    let mut child = lab(
        &["--target", "1000", "--clients", "1", "--hold", "60s"],
        root.path(),
    );
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    while namespaces_of(pid).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(namespaces_of(pid).len(), 3, "server, client-1, switch");
    child.kill().unwrap(); // SIGKILL: the lab cannot clean up
    child.wait().unwrap();
    // A process a user started inside a leftover host.
    let mut sleeper = Command::new("ip")
        .args(["netns", "exec", &format!("c1m-{pid}-server"), "sleep", "60"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(namespaces_of(pid).len(), 3, "left behind by SIGKILL");
    let out = Command::new(C1M)
        .args(["lab", "--cleanup"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for ns in ["server", "client-1", "switch"] {
        assert!(
            stdout.contains(&format!("removed network namespace c1m-{pid}-{ns}")),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains(&sleeper.id().to_string()),
        "says which process it killed: {stdout}"
    );
    assert!(namespaces_of(pid).is_empty());
    let status = sleeper.wait().unwrap();
    assert!(!status.success(), "the process inside was killed");
}

/// Run a hosts scenario; returns its report.json line.
fn scenario(name: &str) -> Value {
    let root = tempfile::tempdir().unwrap();
    let child = lab(&["--scenario", name, "--json"], root.path());
    let pid = child.id();
    let (out, traces) = wait_watching_root(child, Duration::from_secs(120));
    assert!(
        traces.is_empty(),
        "the root namespace was touched: {traces:?}"
    );
    let r = report_of(&out);
    assert_eq!(r["named"], true, "analyze named it: {:#}", r["findings"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(namespaces_of(pid).is_empty());
    r
}

#[test]
#[cfg_attr(
    not(all(c1m_root, c1m_netns, c1m_nft)),
    ignore = "needs root, network namespaces and nft (nftables)"
)]
fn conntrack_scenario_is_named_from_the_server_hosts_table_and_the_kernel_line() {
    let max_before = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max").ok();
    let r = scenario("conntrack");
    let server = &r["hosts"][0];
    assert_eq!(server["host"], "server");
    assert_eq!(
        server["conntrack_count"], 256,
        "the server host's table filled"
    );
    for h in r["hosts"].as_array().unwrap().iter().skip(1) {
        assert_eq!(h["conntrack_count"], 0, "client hosts track nothing");
    }
    let found: Vec<String> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "conntrack_full")
        .map(|f| f["source"].as_str().unwrap().to_string())
        .collect();
    assert!(
        found.iter().any(|s| s.ends_with("logs/server/sysctl.txt")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|s| s.ends_with("logs/kernel.log")),
        "{found:?}"
    );
    // The global table size is back.
    let max_after = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max").ok();
    if let Some(before) = max_before {
        assert_eq!(max_after.as_deref(), Some(before.as_str()));
    }
    assert_ne!(max_after.as_deref().map(str::trim), Some("256"));
}

#[test]
#[cfg_attr(
    not(all(c1m_root, c1m_netns)),
    ignore = "needs root: named network namespaces"
)]
fn ports_scenario_is_named_on_the_client_host_with_the_narrow_range_only() {
    let r = scenario("ports");
    let hosts = r["hosts"].as_array().unwrap();
    for h in hosts.iter().skip(1) {
        let exhausted = h["failures"]["ephemeral_ports_exhausted"]
            .as_u64()
            .unwrap_or(0);
        if h["host"] == "client-2" {
            assert!(exhausted > 0, "client-2 ran out: {h:#}");
            assert_eq!(h["connections"], 200, "its 200-port range");
        } else {
            assert_eq!(exhausted, 0, "{h:#}");
            assert_eq!(h["connections"], h["target"]);
        }
    }
}
