//! Fleet runs. `flood --shard K/N` on loopback: three hosts started with
//! one command line open exactly the total, each its block, numbered on,
//! from --start-at, with its host and shard on every line. Then the fleet
//! playbook (`deploy/ansible/c1m-fleet.yml`) run for real, end to end: `deploy/ansible/netns-fleet.sh run` makes a server, three client
//! hosts and a controller as network namespaces on one bridge, each host
//! with its own sshd, and runs ansible-core's `ansible-playbook` from the
//! controller over SSH. 60,000 connections in all, `--shard K/3` each.
//! Checked: every host's logs came back, every client line carries its host
//! and shard, the shares add up to the total exactly, and `c1m analyze`'s
//! total equals the sum of what the clients verified; with `-e
//! c1m_metrics=true`, that every host's OpenMetrics endpoint answered a
//! scrape at the peak and the file_sd targets list them; then that nothing is
//! left behind (namespaces, sshd and c1m processes, files, fs.* sysctls,
//! files under /etc). Needs root, sshd (openssh-server) and
//! ansible-playbook (pip install ansible-core): ignored without them.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use common::{BIN, EchoServer, KillOnDrop, flood, records, stderr, summary, wait_bounded};
const TOTAL: u64 = 60_000;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/ansible/netns-fleet.sh")
}

/// Tears the fleet down if the test ends early (the script's own traps
/// cover its own errors; this covers a panic in between).
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["down", "--id", &self.0])
            .status();
    }
}

/// What must be the same after the run as before it.
#[derive(Debug, PartialEq)]
struct HostState {
    fs_sysctls: Vec<(String, String)>,
    etc_files: Vec<String>,
    run_sshd: bool,
}

fn host_state() -> HostState {
    let fs_sysctls = ["fs/file-max", "fs/nr_open", "fs/inotify/max_user_watches"]
        .iter()
        .map(|k| {
            let v = std::fs::read_to_string(Path::new("/proc/sys").join(k)).unwrap_or_default();
            (k.to_string(), v.trim().to_string())
        })
        .collect();
    let mut etc_files = Vec::new();
    for d in ["/etc/sysctl.d", "/etc/security/limits.d", "/etc/ssh"] {
        if let Ok(rd) = std::fs::read_dir(d) {
            etc_files.extend(rd.flatten().map(|e| e.path().display().to_string()));
        }
    }
    etc_files.sort();
    HostState {
        fs_sysctls,
        etc_files,
        run_sshd: Path::new("/run/sshd").exists(),
    }
}

/// Processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && !cmd.contains("deps/fleet-") {
                found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} did not come back: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

#[test]
fn shards_of_one_command_line_open_the_total_exactly_from_start_at() {
    // 3 does not divide 1001, nor 7 ports; two processes per host.
    let server = EchoServer::start(7);
    let t0 = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let hosts: Vec<KillOnDrop> = (1..=3)
        .map(|k| {
            let (shard, name) = (format!("{k}/3"), format!("h-{k}"));
            let extra = [
                "--shard",
                &shard,
                "--shard-split",
                "ports",
                "--start-at",
                "+2s",
                "--host-name",
                &name,
                "--procs",
                "2",
                "--hold",
                "0s",
                "--json",
            ];
            KillOnDrop(Some(flood(&server, 1001, &extra).spawn().unwrap()))
        })
        .collect();
    let outs: Vec<_> = hosts
        .into_iter()
        .map(|h| wait_bounded(h.take(), Duration::from_secs(60)))
        .collect();
    let (mut verified, mut next_k, mut next_port) = (0, 0, server.base as u64);
    for (i, out) in outs.iter().enumerate() {
        let k = i + 1;
        assert_eq!(out.status.code(), Some(0), "host {k}: {}", stderr(out));
        let recs = records(out);
        for r in &recs {
            assert_eq!(r["host"], format!("h-{k}"), "{r}");
            assert_eq!(r["shard"], format!("{k}/3"), "{r}");
        }
        let start = &recs[0];
        assert_eq!(start["event"], "start");
        assert!(
            start["ts"].as_f64().unwrap() >= t0 + 1.9,
            "started before --start-at"
        );
        let set = &start["settings"];
        let share = if k < 3 { 334 } else { 333 };
        assert_eq!(set["connections"], share);
        assert_eq!(set["first_k"], next_k);
        assert_eq!(set["port"], next_port);
        assert_eq!(set["ports"], if k == 1 { 3 } else { 2 });
        assert_eq!(set["host"], "127.0.0.1");
        next_k += share;
        next_port += set["ports"].as_u64().unwrap();
        // this host's connections went to its own block of ports only
        let first = (set["port"].as_u64().unwrap() - server.base as u64) as usize;
        let block: u64 = server.accepted[first..first + set["ports"].as_u64().unwrap() as usize]
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum();
        assert_eq!(block, share);
        verified += summary(&recs)["details"]["verified"].as_u64().unwrap();
    }
    assert_eq!(verified, 1001);
    assert_eq!(server.total_accepted(), 1001);

    // Human lines carry the host and shard in front.
    let out = common::run_flood(
        &server,
        10,
        &["--shard", "1/1", "--host-name", "solo", "--hold", "0s"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .starts_with("[solo 1/1] c1m flood: 10 connections"),
        "{text}"
    );
    // Bad shards are refused naming the flag.
    for bad in [
        &["--shard", "0/3"][..],
        &["--shard", "4/3"],
        &["--shard-split", "ports"],
        &["--shard", "1/3", "--shard-split", "sources"],
        &["--start-at", "yesterday"],
    ] {
        let out = common::run_flood(&server, 10, bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(stderr(&out).contains(bad[0]), "{bad:?}: {}", stderr(&out));
    }
}

#[test]
#[cfg_attr(
    not(all(c1m_root, c1m_netns, c1m_sshd, c1m_ansible_playbook)),
    ignore = "needs root, network namespaces, sshd (openssh-server) and ansible-playbook (ansible-core)"
)]
fn playbook_runs_a_three_client_fleet_over_ssh_and_leaves_nothing() {
    let id = format!("t{}", std::process::id());
    let before = host_state();
    let report = tempfile::tempdir().expect("temp dir for the report");
    let sd_file = report.path().join("c1m-fleet-sd.json");
    let guard = Down(id.clone());
    let out = Command::new("bash")
        .arg(script())
        .args(["run", "--id", &id, "--"])
        .args(["-e", &format!("c1m_binary={BIN}")])
        .args(["-e", &format!("c1m_report_dir={}", report.path().display())])
        .args(["-e", &format!("c1m_connections={TOTAL}")])
        .args(["-e", "c1m_hold=5s", "-e", "c1m_max_run_s=240"])
        .args(["-e", "c1m_metrics=true"])
        .args([
            "-e",
            &format!("c1m_prometheus_sd_file={}", sd_file.display()),
        ])
        .output()
        .expect("running netns-fleet.sh");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "playbook failed:\n{log}");
    drop(guard);

    // Every host's logs came back, each to logs/<host>/.
    let logs = report.path().join("logs");
    for host in ["server", "client-1", "client-2", "client-3"] {
        let d = logs.join(host);
        for f in ["counters.nstat", "kernel.log"] {
            assert!(d.join(f).is_file(), "{host}: no {f}\n{log}");
        }
        let doctor = report.path().join("doctor").join(format!("{host}.json"));
        let doctor: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&doctor).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{}: {e}", doctor.display()));
        assert!(doctor["rows"].is_array(), "{host}: doctor --json kept");
        // --apply changed this host's namespace, and the rollback undid it
        let run = report.path().join("run").join(host);
        let apply = std::fs::read_to_string(run.join("doctor-apply.txt")).unwrap_or_default();
        let back = std::fs::read_to_string(run.join("doctor-rollback.txt")).unwrap_or_default();
        assert!(apply.contains(" applied "), "{host}: {apply}");
        assert!(
            back.contains("restored") && back.contains("as it was before"),
            "{host}: {back}"
        );
    }
    let serve = json_lines(&logs.join("server/serve.jsonl"));
    assert!(
        serve.iter().any(|r| r["event"] == "start"),
        "serve's ready line"
    );

    // -e c1m_metrics=true: every host served OpenMetrics on its own
    // address, the controller wrote the file_sd targets Prometheus reads,
    // and each host's endpoint answered a scrape at the peak.
    let sd: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&sd_file).unwrap_or_else(|e| panic!("{}: {e}", sd_file.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", sd_file.display()));
    let sd = sd.as_array().expect("file_sd: a list of target groups");
    assert_eq!(sd.len(), 2, "{sd:?}");
    for (group, role, count, host) in [
        (&sd[0], "serve", 1, "server"),
        (&sd[1], "flood", 3, "client-1"),
    ] {
        assert_eq!(group["labels"]["c1m_role"], role, "{group}");
        let targets = group["targets"].as_array().expect("targets");
        assert_eq!(targets.len(), count, "{group}");
        assert!(
            targets
                .iter()
                .all(|t| t.as_str().is_some_and(|t| t.ends_with(":9400"))),
            "{group}"
        );
        // The start line says where it served, and it is a listed target.
        let log = if role == "serve" {
            logs.join(host).join("serve.jsonl")
        } else {
            logs.join(host).join("flood.jsonl")
        };
        let start = json_lines(&log)
            .into_iter()
            .find(|r| r["event"] == "start")
            .expect("start line");
        let url = start["settings"]["metrics"].as_str().unwrap_or_default();
        assert!(
            targets
                .iter()
                .any(|t| url == format!("http://{}/metrics", t.as_str().unwrap_or_default())),
            "{host}: {url} not in {group}"
        );
    }
    for host in ["server", "client-1", "client-2", "client-3"] {
        let role = if host == "server" { "serve" } else { "flood" };
        let scrape = report.path().join("run").join(host).join("metrics.txt");
        let body = std::fs::read_to_string(&scrape)
            .unwrap_or_else(|e| panic!("{host}: {}: {e}\n{log}", scrape.display()));
        let live = body.lines().find_map(|l| {
            let rest = l.strip_prefix("c1m_connections{")?;
            let (labels, value) = rest.split_once("} ")?;
            labels
                .contains(&format!("role=\"{role}\""))
                .then(|| value.trim().parse::<f64>().ok())?
        });
        assert!(
            live.is_some_and(|v| v > 0.0),
            "{host}: c1m_connections at the peak: {live:?}\n{body}"
        );
    }

    // Each client ran its own exact share, with its host and shard on
    // every line, numbered on from the previous share.
    let mut verified = 0;
    let mut next_k = 0;
    for k in 1..=3u64 {
        let host = format!("client-{k}");
        let recs = json_lines(&logs.join(&host).join("flood.jsonl"));
        for r in &recs {
            assert_eq!(r["host"], host.as_str(), "{r}");
            assert_eq!(r["shard"], format!("{k}/3"), "{r}");
        }
        let start = recs
            .iter()
            .find(|r| r["event"] == "start")
            .expect("start line");
        assert_eq!(start["settings"]["first_k"], next_k, "{host}");
        assert_eq!(start["settings"]["connections"], TOTAL / 3, "{host}");
        next_k += TOTAL / 3;
        let summary = recs
            .iter()
            .find(|r| r["event"] == "summary")
            .expect("summary line");
        assert_eq!(summary["details"]["reached"], true, "{host}: {summary}");
        verified += summary["details"]["verified"].as_u64().expect("verified");
    }
    assert_eq!(verified, TOTAL);

    // One analysis over all hosts; its total is the clients' sum.
    let analysis: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report.path().join("analysis.json")).expect("analysis.json"),
    )
    .expect("analysis.json is JSON");
    assert_eq!(analysis["totals"]["clients"], 3, "{analysis}");
    assert_eq!(analysis["totals"]["client_connections_printed"], verified);
    assert!(log.contains("c1m analyze:"), "findings printed:\n{log}");

    // Nothing left behind.
    let netns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(
        !netns.contains(&format!("c1mf-{id}-")),
        "namespaces left: {netns}"
    );
    let dir = format!("/tmp/c1m-fleet-{id}");
    assert!(!Path::new(&dir).exists(), "{dir} left behind");
    assert_eq!(processes_with(&dir), Vec::<String>::new(), "processes left");
    assert_eq!(
        processes_with(BIN),
        Vec::<String>::new(),
        "c1m processes left"
    );
    assert_eq!(host_state(), before, "the host changed");
}
