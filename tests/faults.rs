//! Faults during the hold, end to end: `c1m lab --fault F` injects each
//! fault for real (3,000 connections, two clients, seconds each), and the
//! report counts the lost connections exactly (the clients' count and the
//! server's agree), the lab exits as documented, and analyze's first
//! finding names the fault with its evidence. And a worker killed by hand
//! during a plain lab's hold fails the run. Each lab runs in the private
//! network namespace it makes for itself (ignored without one), and every
//! process it starts ends with it.
//!
//! Between namespace hosts (`--hosts`, root and nft), `loss` and
//! `partition` drop client-1's packets with nftables inside its own
//! namespace (the root namespace's tables are watched: never there) and
//! analyze names the drop; the process faults count as on the loopback. And
//! analyze finds causes no record names: an OOM kill in a report's kernel
//! log (a fixture) is the root cause of the worker death with its pid, and
//! naive reconnects after a restart are a reconnect storm.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::*;

/// `c1m lab -n 3000 --clients 2 --ports 4 --hold 6s <extra> --json` in a
/// fresh report folder: its exit status and report.json.
fn lab(extra: &[&str], dir: &Path) -> (Option<i32>, Value) {
    let out = Lab::new(3000)
        .hold("6s")
        .netns_on()
        .json()
        .args(extra)
        .run(dir, Duration::from_secs(120));
    (out.status.code(), lab_report(&out))
}

/// The first finding's id, and whether its evidence cites `file`.
fn first_finding(report: &Value) -> (&str, Vec<String>) {
    let f = &report["findings"][0];
    let files = f["evidence"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|x| x["file"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    (f["id"].as_str().unwrap_or("none"), files)
}

fn cites(files: &[String], name: &str) -> bool {
    files.iter().any(|f| f.ends_with(name))
}

/// The fault's account: injected, both sides agree, `lost` lost.
fn assert_fault(report: &Value, fault: &str, lost: u64) {
    let f = &report["fault"];
    assert_eq!(f["fault"], fault, "{f}");
    assert_eq!(f["injected"], true, "{f}");
    assert_eq!(f["clients_lost"], lost, "{f}");
    assert_eq!(f["expected_loss"], lost, "{f}");
    assert_eq!(f["agree"], true, "{f}");
    assert_eq!(report["hold"]["lost"], lost, "{}", report["hold"]);
    assert_eq!(report["hold"]["verified_at_start"], 3000);
    assert_eq!(report["reached"], true);
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
fn kill_worker_loses_what_the_worker_held_and_analyze_names_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let (code, r) = lab(&["--fault", "kill-worker"], dir.path());
    assert_eq!(code, Some(0), "{r}");
    // One serve worker holds all 3,000 (auto workers at this size).
    assert_fault(&r, "kill-worker", 3000);
    assert_eq!(r["hold"]["server_lost"], 3000);
    // Nothing reconnects without --reconnect: no time back at the target.
    assert!(r["fault"]["recovered_s"].is_null(), "{}", r["fault"]);
    let by_cause = &r["hold"]["lost_by_cause"];
    let eof = by_cause["eof"].as_u64().unwrap_or(0);
    let reset = by_cause["reset"].as_u64().unwrap_or(0);
    assert_eq!(eof + reset, 3000, "{by_cause}");
    let (id, files) = first_finding(&r);
    assert_eq!(id, "server_process_died", "{}", r["findings"]);
    assert!(
        cites(&files, "serve.log") && cites(&files, "lab.log"),
        "{files:?}"
    );
    let what = r["findings"][0]["explanation"].as_str().unwrap();
    assert!(
        what.contains("was killed by SIGKILL at ")
            && what.contains("3,000 connections it held were lost")
            && what.contains("injected by c1m lab --fault kill-worker"),
        "{what}"
    );
    // The effects are under it, not findings of their own.
    let ids = finding_ids(&r);
    assert!(
        !ids.contains(&"peer_disconnect") && !ids.contains(&"connection_reset"),
        "{ids:?}"
    );
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
fn stall_worker_loses_nothing_and_analyze_names_the_stall() {
    let dir = tempfile::tempdir().unwrap();
    let (code, r) = lab(&["--fault", "stall-worker"], dir.path());
    assert_eq!(code, Some(0), "{r}");
    assert_fault(&r, "stall-worker", 0);
    assert!(
        r["fault"]["duration_s"].as_f64().unwrap() >= 1.0,
        "{}",
        r["fault"]
    );
    assert_eq!(r["hold"]["alive_at_end"], 3000);
    let (id, files) = first_finding(&r);
    assert_eq!(id, "server_stalled", "{}", r["findings"]);
    assert!(cites(&files, "lab.log"), "{files:?}");
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
fn kill_client_loses_that_client_s_share_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let (code, r) = lab(&["--fault", "kill-client"], dir.path());
    assert_eq!(code, Some(0), "{r}");
    // Client 1 held its share, 1,500; the server saw as many end.
    assert_fault(&r, "kill-client", 1500);
    assert_eq!(r["hold"]["lost_by_cause"]["client_process_died"], 1500);
    assert_eq!(r["hold"]["alive_at_end"], 1500);
    let (id, files) = first_finding(&r);
    assert_eq!(id, "client_process_died", "{}", r["findings"]);
    assert!(cites(&files, "lab.log"), "{files:?}");
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
fn restart_server_loses_everything_and_analyze_names_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (code, r) = lab(&["--fault", "restart-server"], dir.path());
    assert_eq!(code, Some(0), "{r}");
    assert_fault(&r, "restart-server", 3000);
    let (id, files) = first_finding(&r);
    assert_eq!(id, "server_process_died", "{}", r["findings"]);
    assert!(cites(&files, "lab.log"), "{files:?}");
    let what = r["findings"][0]["explanation"].as_str().unwrap();
    assert!(
        what.contains("stopped with SIGTERM and started again"),
        "{what}"
    );
}

/// The command line of `pid` (NUL-separated arguments as spaces).
fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
fn a_worker_killed_by_hand_during_a_plain_hold_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Lab::new(3000)
        .hold("8s")
        .netns_on()
        .command(dir.path())
        .spawn()
        .unwrap();
    let lab_pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    // Wait for the hold, then kill the serve worker with SIGKILL.
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("lab: holding") {
            break;
        }
        assert!(Instant::now() < deadline, "no hold: {seen}");
    }
    // serve knows what a worker holds from its interval lines (one a
    // second): let one pass after the ramp, as a person's kill during a
    // hold would, so the worker's last report holds its 3,000.
    std::thread::sleep(Duration::from_secs(2));
    let worker = descendants(lab_pid)
        .into_iter()
        .find(|p| cmdline(*p).contains("serve-worker"))
        .unwrap_or_else(|| panic!("no serve worker under the lab: {seen}"));
    unsafe { libc::kill(worker as i32, libc::SIGKILL) };
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let out = wait_bounded(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{seen}");
    let last = seen.lines().last().unwrap_or("");
    assert!(
        last.contains("NOT reached") && last.contains("3,000 LOST"),
        "{last}"
    );
    let report_dir = last.rsplit("report in ").next().unwrap().trim();
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(report_dir).join("report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(r["reached"], false);
    assert_eq!(r["hold"]["lost"], 3000, "{}", r["hold"]);
    assert_eq!(r["hold"]["server_lost"], 3000, "{}", r["hold"]);
    let (id, files) = first_finding(&r);
    assert_eq!(id, "server_process_died", "{}", r["findings"]);
    assert!(cites(&files, "serve.log"), "{files:?}");
    let what = r["findings"][0]["explanation"].as_str().unwrap();
    assert!(
        what.starts_with(&format!(
            "Server worker 0 (pid {worker}) was killed by SIGKILL at "
        )),
        "{what}"
    );
}

/// `--fault restart-server --reconnect --reconnect-backoff BACKOFF`: the
/// run exits 0 and both sides count the 3,000 lost; its report.
fn restart_with_reconnect(backoff: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let (code, r) = lab(
        &[
            "--fault",
            "restart-server",
            "--reconnect",
            "--reconnect-backoff",
            backoff,
        ],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{r}");
    assert_fault(&r, "restart-server", 3000);
    r
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
fn restart_server_with_reconnecting_clients_recovers_to_the_target() {
    let r = restart_with_reconnect("50ms..2s");
    assert_eq!(r["hold"]["alive_at_end"], 3000, "{}", r["hold"]);
    // Verified once each; the replacements are counted apart.
    assert_eq!(r["verified"], 3000, "{}", r["verified"]);
    assert_eq!(r["reconnected"], 3000, "{}", r["reconnected"]);
    let back = r["fault"]["recovered_s"].as_f64();
    assert!(back.is_some_and(|t| t > 0.0 && t < 6.0), "{}", r["fault"]);
    for c in r["clients"].as_array().unwrap() {
        let rc = &c["details"]["reconnect"];
        assert_eq!(rc["backoff"], "50ms..2s", "{rc}");
        assert_eq!(rc["lost"], 1500, "{rc}");
        assert_eq!(rc["reconnects"], 1500, "{rc}");
        assert!(rc["attempts"].as_u64().unwrap() >= 1500, "{rc}");
        assert!(rc["peak_attempts_per_s"].as_u64().unwrap() > 0, "{rc}");
    }
}

#[test]
fn an_oom_kill_in_the_report_s_kernel_log_is_the_root_cause_of_the_worker_s_death() {
    // A lab's report folder: serve says worker 0 (pid 27012) was killed,
    // the clients saw their connections end, and the kernel log the lab
    // kept has the OOM killer's lines for that pid (dmesg's form).
    let r = analyze_json(&[fixture("faults/oom/logs")]);
    let f = &r["findings"][0];
    assert_eq!(f["id"], "out_of_memory", "{}", r["findings"]);
    let what = f["explanation"].as_str().unwrap();
    assert!(
        what.starts_with("The kernel's OOM killer killed server worker 0 (pid 27012) at ")
            && what.contains("Out of memory: Killed process 27012 (c1m)")
            && what.contains(
                "3,000 connections it held were lost: clients saw 2,950 EOFs and 50 resets within 1 s"
            ),
        "{what}"
    );
    let files: Vec<String> = f["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["file"].as_str().unwrap().to_string())
        .collect();
    assert!(
        files[0].ends_with("kernel.log") && files[1].ends_with("serve.log"),
        "{files:?}"
    );
    // The kill, the death and the clients' EOFs are that one finding.
    let ids = finding_ids(&r);
    for id in ["server_process_died", "peer_disconnect", "connection_reset"] {
        assert!(!ids.contains(&id), "{ids:?}");
    }
    assert_eq!(findings_with(&r, "out_of_memory").len(), 1, "{ids:?}");
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
fn a_naive_reconnect_after_a_restart_is_named_a_reconnect_storm() {
    let r = restart_with_reconnect("0");
    // The restart stays the root cause; the storm is named from the
    // clients' own account, with the summary line as evidence.
    let (id, _) = first_finding(&r);
    assert_eq!(id, "server_process_died", "{}", r["findings"]);
    let storms = findings_with(&r, "reconnect_storm");
    assert!(!storms.is_empty(), "{}", r["findings"]);
    for s in storms {
        let what = s["explanation"].as_str().unwrap();
        assert!(
            what.contains("1,500 verified connections lost")
                && what.contains("--reconnect-backoff 0: no backoff"),
            "{what}"
        );
        let file = s["evidence"][0]["file"].as_str().unwrap();
        assert!(
            file.ends_with("client-1.log") || file.ends_with("client-2.log"),
            "{file}"
        );
    }
}

#[test]
fn loss_percent_without_fault_loss_is_a_usage_error() {
    for args in [
        &["lab", "-n", "100", "--loss-percent", "5"][..],
        &[
            "lab",
            "-n",
            "100",
            "--fault",
            "kill-worker",
            "--loss-percent",
            "5",
        ][..],
        &[
            "lab",
            "--hosts",
            "-n",
            "100",
            "--fault",
            "loss",
            "--loss-percent",
            "0",
        ][..],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = c1m(args).arg("--report").arg(dir.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = stderr(&out);
        assert!(err.contains("--loss-percent"), "{args:?}: {err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

#[test]
fn loss_and_partition_without_hosts_are_a_usage_error() {
    for fault in ["loss", "partition"] {
        let dir = tempfile::tempdir().unwrap();
        let out = c1m(&["lab", "-n", "100", "--fault", fault, "--report"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("--fault {fault} drops packets")) && err.contains("add --hosts"),
            "{err}"
        );
        // Nothing ran: no report folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

/// `c1m lab --hosts -n 3000 --clients 2 --sources 2 --hold 6s --fault F
/// --json`: its exit status and report.json; the root namespace's
/// nftables tables are read while it runs.
fn hosts_lab(fault: &str, extra: &[&str], dir: &Path) -> (Option<i32>, Value, Vec<String>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let child = Lab::new(3000)
        .hold("6s")
        .json()
        .args(&["--hosts", "--sources", "2", "--fault", fault])
        .args(extra)
        .command(dir)
        // The lab's state and lock live in the test's folder.
        .env("C1M_STATE_DIR", dir.join("state"))
        .spawn()
        .unwrap();
    // The root namespace's tables, read while the lab runs.
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let out = Command::new("nft")
                    .args(["list", "tables"])
                    .output()
                    .unwrap();
                seen.extend(
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .filter(|l| l.contains("c1m_fault"))
                        .map(str::to_string),
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            seen
        })
    };
    let out = wait_bounded(child, Duration::from_secs(180));
    done.store(true, Ordering::Relaxed);
    let root_tables = watcher.join().unwrap();
    (out.status.code(), lab_report(&out), root_tables)
}

/// A network fault between hosts: injected in client-1's namespace only,
/// nothing lost (TCP retransmits through a few seconds of drops), and
/// analyze's first finding names it with its evidence.
fn network_fault(fault: &str, extra: &[&str], what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (code, r, root_tables) = hosts_lab(fault, extra, dir.path());
    assert!(
        root_tables.is_empty(),
        "the root namespace got {root_tables:?}"
    );
    assert_eq!(code, Some(0), "{r}");
    let f = &r["fault"];
    assert_eq!(f["fault"], fault, "{f}");
    assert_eq!(f["injected"], true, "{f}");
    assert_eq!(f["victim"], "client-1's link", "{f}");
    assert_eq!(f["clients_lost"], 0, "{f}");
    assert_eq!(f["agree"], true, "{f}");
    assert!(f["duration_s"].as_f64().unwrap() >= 1.0, "{f}");
    assert_eq!(r["hold"]["alive_at_end"], 3000, "{}", r["hold"]);
    assert_eq!(r["reached"], true);
    let (id, files) = first_finding(&r);
    assert_eq!(id, "packet_loss", "{}", r["findings"]);
    assert!(cites(&files, "lab.log"), "{files:?}");
    let text = r["findings"][0]["explanation"].as_str().unwrap();
    assert!(
        text.starts_with("Client-1's link (eth0 in namespace c1m-")
            && text.contains(what)
            && text.contains(&format!("(injected by c1m lab --fault {fault})"))
            && text.contains("data segments retransmitted"),
        "{text}"
    );
}

#[test]
#[cfg_attr(
    not(all(c1m_root, c1m_netns, c1m_nft)),
    ignore = "needs root and nft: namespace hosts"
)]
fn loss_drops_a_share_of_one_client_host_s_packets_and_analyze_names_it() {
    // --loss-percent: the share asked for, not the default 20%.
    network_fault(
        "loss",
        &["--loss-percent", "35"],
        "dropped 35% of its packets, at random",
    );
}

#[test]
#[cfg_attr(
    not(all(c1m_root, c1m_netns, c1m_nft)),
    ignore = "needs root and nft: namespace hosts"
)]
fn partition_drops_every_packet_of_one_client_host_and_analyze_names_it() {
    network_fault("partition", &[], "dropped every packet (a partition)");
}

#[test]
#[cfg_attr(
    not(all(c1m_root, c1m_netns, c1m_nft)),
    ignore = "needs root and nft: namespace hosts"
)]
fn every_process_fault_runs_between_hosts_as_on_the_loopback() {
    for (fault, first, lost) in [
        ("kill-worker", "server_process_died", 3000),
        ("stall-worker", "server_stalled", 0),
        ("kill-client", "client_process_died", 1500),
        ("restart-server", "server_process_died", 3000),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (code, r, _) = hosts_lab(fault, &[], dir.path());
        assert_eq!(code, Some(0), "{fault}: {r}");
        let f = &r["fault"];
        assert_eq!(f["injected"], true, "{fault}: {f}");
        assert_eq!(f["agree"], true, "{fault}: {f}");
        assert_eq!(f["clients_lost"], lost, "{fault}: {f}");
        assert_eq!(r["hold"]["lost"], lost, "{fault}: {}", r["hold"]);
        let (id, files) = first_finding(&r);
        assert_eq!(id, first, "{fault}: {}", r["findings"]);
        assert!(cites(&files, "lab.log"), "{fault}: {files:?}");
    }
}
