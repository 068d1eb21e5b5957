//! doctor's exit status answers "can this host hold --target?": against a
//! fake /proc/sys shaped like this machine (fs.file-max 2,466,183, the
//! default TIME-WAIT table, a 28,232-port range, conntrack not loaded) and
//! the built-in profiles. 0 when the target fits (failing rows that do not
//! block it are recommendations), 1 naming the blocking limit and whether
//! `--apply` lifts it. Memory and the fd limit are this host's own, so the
//! expectations are computed from /proc/meminfo and getrlimit, never typed.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{BIN, fake_tree, json, row, text};

/// A host like this one: defaults of a stock kernel, file-max of 24 GiB.
const HOST: &[(&str, &str)] = &[
    ("fs.nr_open", "1048576"),
    ("fs.file-max", "2466183"),
    ("fs.file-nr", "449\t0\t2466183"),
    ("fs.epoll.max_user_watches", "5491533"),
    ("net.core.somaxconn", "4096"),
    ("net.core.netdev_max_backlog", "1000"),
    ("net.ipv4.tcp_max_syn_backlog", "2048"),
    ("net.ipv4.tcp_syncookies", "1"),
    ("net.ipv4.tcp_mem", "287901\t383869\t575802"),
    ("net.ipv4.tcp_rmem", "4096\t131072\t33554432"),
    ("net.ipv4.tcp_wmem", "4096\t16384\t4194304"),
    ("net.ipv4.tcp_max_orphans", "131072"),
    ("net.ipv4.tcp_fin_timeout", "60"),
    ("net.ipv4.tcp_max_tw_buckets", "131072"),
    ("net.ipv4.ip_local_port_range", "32768\t60999"),
    ("net.ipv4.ip_local_reserved_ports", ""),
    ("net.ipv4.tcp_tw_reuse", "2"),
];

fn fake_host(dir: &Path) -> PathBuf {
    fake_tree(dir, HOST)
}

fn doctor(root: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("doctor")
        .args(args)
        .env("C1M_SYSCTL_ROOT", root)
        .env_remove("C1M_PROFILE_DIR")
        .output()
        .expect("run c1m")
}

/// Connections this host's RAM allows per the estimate (5 KiB a socket:
/// 4.5 KiB kernel, 0.5 KiB c1m).
fn memory_allows(sockets_per_connection: u64) -> u64 {
    let mi = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = mi
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024 / 5120 / sockets_per_connection
}

#[test]
fn a_small_target_fits_and_scaled_values_scale_down() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_host(dir.path());
    for role in ["server", "lab", "client"] {
        let o = doctor(&root, &["--role", role, "--target", "1000", "--json"]);
        assert_eq!(o.status.code(), Some(0), "{role}: {}", text(&o));
        let v = json(&o);
        assert_eq!(v["verdict"]["fits"], true);
        // 131,072 TIME-WAIT buckets are plenty for 1,000 connections.
        let tw = row(&v, "net.ipv4.tcp_max_tw_buckets");
        assert_eq!(tw["status"], "ok", "{tw}");
        assert_eq!(tw["wanted"], ">= 2000");
        assert_eq!(row(&v, "net.core.netdev_max_backlog")["status"], "ok");
    }
    let o = doctor(&root, &["--role", "lab", "--target", "1000"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("verdict: the target of 1,000")),
        "{out}"
    );
}

#[test]
fn a_million_fits_here_with_recommendations_and_the_fd_row_reads_sharded() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_host(dir.path());
    let o = doctor(&root, &["--target", "1000000", "--json"]);
    let v = json(&o);
    let fits = memory_allows(1) >= 1_000_000;
    assert_eq!(
        o.status.code(),
        Some(if fits { 0 } else { 1 }),
        "{}",
        text(&o)
    );
    assert_eq!(v["verdict"]["fits"], fits);
    // Failing rows that do not block (the TIME-WAIT table, somaxconn, ...)
    // are recommendations.
    let tw = row(&v, "net.ipv4.tcp_max_tw_buckets");
    assert_eq!(
        (tw["status"].as_str(), tw["blocks"].as_bool()),
        (Some("fix"), Some(false))
    );
    assert!(
        v["verdict"]["recommendations"].as_u64().unwrap() >= 5,
        "{v}"
    );
    let hard = v["snapshot"]["nofile"]["hard"].as_u64().unwrap();
    if v["snapshot"]["cap_sys_resource"] == false && hard < 1_001_000 {
        let nofile = row(&v, "rlimit.nofile.hard");
        assert_eq!(nofile["status"], "ok", "{nofile}");
        let per = hard - 64;
        let why = nofile["why"].as_str().unwrap();
        let want = format!(
            "sharded, {} processes of at most {}",
            1_000_000u64.div_ceil(per),
            c1m::util::thousands(per)
        );
        assert!(why.starts_with(&want), "{why} vs {want}");
    }
}

#[test]
fn five_million_in_a_lab_does_not_fit_and_names_the_binding_limit() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_host(dir.path());
    let o = doctor(&root, &["--role", "lab", "--target", "5000000", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v = json(&o);
    let blockers = v["verdict"]["blockers"].as_array().unwrap();
    // fs.file-max: (2,466,183 - 449) / 2 sockets per connection.
    let file_max = blockers
        .iter()
        .find(|b| b["limit"] == "file_max")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(file_max["max_connections"], (2_466_183 - 449) / 2);
    assert_eq!(file_max["apply_fixes"], true);
    // The binding (smallest) limit comes first, and is the capacity's.
    assert_eq!(blockers[0]["limit"], v["capacity"]["binding"]);
    let memory = blockers.iter().find(|b| b["limit"] == "memory");
    assert_eq!(memory.is_some(), memory_allows(2) < 5_000_000);
    if let Some(m) = memory {
        assert_eq!(m["apply_fixes"], false);
        assert!(m["remedy"].as_str().unwrap().contains("RAM"), "{m}");
    }
    assert!(row(&v, "fs.file-max")["blocks"].as_bool().unwrap());
    assert!(!row(&v, "net.core.somaxconn")["blocks"].as_bool().unwrap());
    let line = v["verdict"]["line"].as_str().unwrap();
    assert!(
        line.contains("does NOT fit") && line.contains("fs.file-max"),
        "{line}"
    );
    assert!(line.contains("c1m doctor --apply"), "{line}");
}

#[test]
fn a_client_is_sized_with_flood_defaults_and_flood_sources_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_host(dir.path());
    // 28,232 ports x 1 source x flood's 20 server ports = 564,640.
    let o = doctor(&root, &["--role", "client", "--target", "200k", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = json(&o);
    let ports = v["capacity"]["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "ports")
        .unwrap();
    assert_eq!(ports["max_connections"], 28_232 * 20);
    // One server port: 28,232 < 200,000, and the wide range (64,512) is not
    // enough either, so --apply alone does not lift it.
    let o = doctor(
        &root,
        &[
            "--role",
            "client",
            "--target",
            "200k",
            "--server-ports",
            "1",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let b = &json(&o)["verdict"]["blockers"][0];
    assert_eq!(
        (b["limit"].as_str(), b["apply_fixes"].as_bool()),
        (Some("ports"), Some(false))
    );
    // flood's --sources syntax: 10 addresses.
    let o = doctor(
        &root,
        &[
            "--role",
            "client",
            "--target",
            "1M",
            "--sources",
            "127.0.0.2-127.0.0.10,127.0.1.1",
            "--json",
        ],
    );
    let v = json(&o);
    let ports = v["capacity"]["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "ports")
        .unwrap();
    assert_eq!(ports["max_connections"], 28_232 * 20 * 10);
    let o = doctor(&root, &["--role", "client", "--sources", "nonsense"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--sources"), "{}", text(&o));
}

#[test]
fn human_output_fits_80_columns_and_shows_what_is_wrong_first() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_host(dir.path());
    for args in [
        &["--role", "lab", "--target", "5000000"][..],
        &["--target", "1000", "--all"][..],
        &["--role", "client", "--target", "1M"][..],
    ] {
        let mut all = args.to_vec();
        all.extend(["--width", "80"]);
        for env_width in [true, false] {
            let o = if env_width {
                Command::new(BIN)
                    .arg("doctor")
                    .args(args)
                    .env("C1M_SYSCTL_ROOT", &root)
                    .env("COLUMNS", "80")
                    .output()
                    .unwrap()
            } else {
                doctor(&root, &all)
            };
            let out = String::from_utf8_lossy(&o.stdout);
            for l in out.lines() {
                assert!(
                    l.chars().count() <= 80,
                    "{args:?}: {} chars: {l}\n{out}",
                    l.len()
                );
            }
            // No key broken mid-word.
            assert!(!out.contains("tcp_max_tw_buc\n"), "{out}");
        }
    }
    // Without --all, ok rows are hidden and the blocking ones come first.
    let o = doctor(
        &root,
        &["--role", "lab", "--target", "5000000", "--width", "80"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("tcp_syncookies"), "{out}");
    assert!(out.contains("--all shows"), "{out}");
    let first_row = out
        .lines()
        .find(|l| l.contains(" -> ") && !l.contains("check: current"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(first_row.contains("(blocks)"), "{first_row}\n{out}");
    let verdict = out.lines().position(|l| l.starts_with("verdict:")).unwrap();
    assert!(verdict < 5, "{out}");
}

/// doctor as a process whose hard RLIMIT_NOFILE is `hard` and that lacks
/// CAP_SYS_RESOURCE (dropped from the bounding set before exec, so root
/// loses it too): the fd figures are then known whatever the host's are.
fn doctor_limited(root: &Path, hard: u64, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(BIN);
    c.arg("doctor")
        .args(args)
        .env("C1M_SYSCTL_ROOT", root)
        .env_remove("C1M_PROFILE_DIR");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: hard,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // EPERM without CAP_SETPCAP: then there is nothing to drop.
            libc::prctl(libc::PR_CAPBSET_DROP, 24, 0, 0, 0);
            Ok(())
        });
    }
    c.output().expect("run c1m")
}

#[test]
fn one_serve_worker_is_capped_by_the_per_process_fd_limit() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_host(dir.path());
    // A hard limit of 4,096: one process holds 4,096 - 64 = 4,032 sockets.
    let o = doctor_limited(
        &root,
        4096,
        &["--target", "5000", "--workers", "1", "--json"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v = json(&o);
    assert_eq!(v["snapshot"]["cap_sys_resource"], false, "{}", text(&o));
    assert_eq!(v["snapshot"]["nofile"]["hard"], 4096);
    assert_eq!(v["capacity"]["processes"], 1);
    assert_eq!(v["capacity"]["binding"], "fd_per_process");
    assert_eq!(v["capacity"]["max_connections"], 4032);
    assert_eq!(v["verdict"]["blockers"][0]["limit"], "fd_per_process");
    assert_eq!(v["verdict"]["blockers"][0]["failure"], "fd_limit");
    assert_eq!(v["process_cap"]["max_connections"], 4032);
    let nofile = row(&v, "rlimit.nofile.hard");
    assert_eq!(
        (nofile["status"].as_str(), nofile["blocks"].as_bool()),
        (Some("cannot"), Some(true)),
        "{nofile}"
    );

    // The human report says it under the verdict, in the lab's words.
    let o = doctor_limited(&root, 4096, &["--target", "5000", "--workers", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).replace('\n', " ");
    let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    for want in [
        "verdict: the target of 5,000 connections does NOT fit: fd per process x processes allows 4,032",
        "warning: c1m serve --workers 1 is one process: with RLIMIT_NOFILE hard limit 4,096 it holds at most about 4,032 clients, below the target of 5,000",
        "use --workers auto (2 processes of at most 4,032 sockets) (fd_limit)",
    ] {
        assert!(out.contains(want), "{want}\nnot in: {out}");
    }

    // serve's syntax: --procs is the same flag; two workers hold it; auto
    // shards as needed.
    for workers in ["2", "auto"] {
        let o = doctor_limited(
            &root,
            4096,
            &["--target", "5000", "--procs", workers, "--json"],
        );
        assert_eq!(o.status.code(), Some(0), "{workers}: {}", text(&o));
        let v = json(&o);
        assert_eq!(v["capacity"]["processes"], 2, "{workers}");
        assert!(v.get("process_cap").is_none(), "{workers}: {v}");
    }
    for bad in ["0", "many"] {
        let o = doctor_limited(&root, 4096, &["--workers", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("--procs"),
            "{bad}: {}",
            text(&o)
        );
    }
    let o = doctor_limited(&root, 4096, &["--role", "lab", "--workers", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("a lab sizes both of its ends itself"),
        "{}",
        text(&o)
    );
}
