//! `c1m doctor` as a user runs it: the real host read-only, apply/rollback
//! of global keys on a fake /proc/sys tree in a temporary directory, a write
//! that fails midway, per-namespace keys really changed inside
//! `unshare -n` (and the host's left alone), non-root refusal, bad input.
use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

mod common;

use common::*;

fn host(key: &str) -> String {
    let p = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn my_nofile() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    (r.rlim_cur, r.rlim_max)
}

fn has_cap_sys_resource() -> bool {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    let mask = u64::from_str_radix(line[7..].trim(), 16).unwrap();
    mask & (1 << 24) != 0
}

#[test]
fn host_check_prints_table_and_capacity_naming_the_fd_limit() {
    let o = doctor(&["--all"], &[]);
    let out = text(&o);
    assert!(matches!(o.status.code(), Some(0) | Some(1)), "{out}");
    for col in ["check", "current", "wanted", "status", "why"] {
        assert!(out.contains(col), "{out}");
    }
    assert!(
        out.contains("rlimit.nofile.hard") && out.contains("fs.file-max"),
        "{out}"
    );
    assert!(out.contains("Capacity estimate"), "{out}");
    let (_, hard) = my_nofile();
    if !has_cap_sys_resource() {
        let per = hard - 64;
        let shown = c1m::util::thousands(per);
        assert!(out.contains(&format!("at most {shown} sockets")), "{out}");
        assert!(out.contains("cannot be raised here"), "{out}");
        assert!(out.contains("shards"), "{out}");
    }
    // The exit status is the verdict: 0 when the target fits.
    let fits = out.contains("verdict: the target of 1,000,000 connections fits");
    assert_eq!(o.status.code(), Some(if fits { 0 } else { 1 }), "{out}");
}

#[test]
fn json_has_the_documented_fields_and_matches_the_host() {
    let o = doctor(&["--json"], &[]);
    let v = json(&o);
    for f in [
        "role",
        "target",
        "profile",
        "profile_files",
        "sysctl_root",
        "rows",
        "warnings",
        "snapshot",
        "capacity",
        "capacity_text",
        "summary",
    ] {
        assert!(v.get(f).is_some(), "missing {f}: {v}");
    }
    assert_eq!(v["role"], "server");
    assert_eq!(v["target"], 1_000_000);
    for r in v["rows"].as_array().unwrap() {
        for f in [
            "check", "kind", "scope", "current", "wanted", "status", "failure", "why", "origin",
        ] {
            assert!(r.get(f).is_some(), "row without {f}: {r}");
        }
        let s = r["status"].as_str().unwrap();
        assert!(["ok", "fix", "cannot", "n/a"].contains(&s), "{r}");
    }
    // The table's current values are the kernel's.
    assert_eq!(row(&v, "fs.file-max")["current"], host("fs.file-max"));
    assert_eq!(
        row(&v, "net.core.somaxconn")["current"],
        host("net.core.somaxconn")
    );
    assert_eq!(row(&v, "fs.file-max")["failure"], "system_fd_limit");
    assert_eq!(row(&v, "net.core.somaxconn")["scope"], "netns");
    assert_eq!(row(&v, "fs.nr_open")["scope"], "global");
    assert!(
        row(&v, "fs.file-max")["origin"]
            .as_str()
            .unwrap()
            .contains("base.conf:")
    );
    let (soft, hard) = my_nofile();
    assert_eq!(row(&v, "rlimit.nofile.soft")["current"], soft.to_string());
    assert_eq!(v["snapshot"]["nofile"]["hard"], hard);
    let cap = &v["capacity"];
    for f in [
        "max_connections",
        "binding",
        "per_process_sockets",
        "processes_needed",
        "processes",
        "fits",
        "limits",
        "hard_limit_can_rise",
        "sockets_per_connection",
    ] {
        assert!(cap.get(f).is_some(), "capacity without {f}: {cap}");
    }
    if !has_cap_sys_resource() {
        assert_eq!(cap["per_process_sockets"], hard - 64);
        assert_eq!(cap["hard_limit_can_rise"], false);
        assert_eq!(cap["processes_needed"], 1_000_000u64.div_ceil(hard - 64));
        // Sharding works around the fixed hard limit.
        assert_eq!(row(&v, "rlimit.nofile.hard")["status"], "ok");
    }
    // Only rows whose limit is below the target block it.
    let blocked = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["blocks"] == true);
    assert_eq!(v["summary"]["passed"], v["verdict"]["fits"]);
    assert_eq!(v["verdict"]["fits"], cap["fits"]);
    assert!(!blocked || cap["fits"] == false);
    let fits = cap["fits"] == true;
    assert_eq!(o.status.code(), Some(if fits { 0 } else { 1 }));
}

#[test]
fn client_capacity_names_ports_per_four_tuple_and_lab_counts_two_sockets() {
    // One server port (flood's default is 20): the ports of one 4-tuple.
    let o = doctor(
        &[
            "--role",
            "client",
            "--target",
            "200k",
            "--server-ports",
            "1",
            "--json",
        ],
        &[],
    );
    let v = json(&o);
    let range: Vec<u64> = host("net.ipv4.ip_local_port_range")
        .split(' ')
        .map(|s| s.parse().unwrap())
        .collect();
    let size = range[1] - range[0] + 1;
    let ports = v["capacity"]["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "ports")
        .unwrap();
    if host("net.ipv4.ip_local_reserved_ports").is_empty() {
        assert_eq!(ports["max_connections"], size);
    }
    if size < 200_000 {
        assert_eq!(v["capacity"]["binding"], "ports");
        assert_eq!(v["capacity"]["fits"], false);
        assert!(
            v["capacity_text"]
                .as_str()
                .unwrap()
                .contains("does NOT fit")
        );
    }
    assert!(row(&v, "net.ipv4.ip_local_port_range")["wanted"] == "= 1024 65535");
    // More sources lift the port limit.
    let o = doctor(
        &[
            "--role",
            "client",
            "--target",
            "200k",
            "--sources",
            "10",
            "--server-ports",
            "1",
            "--json",
        ],
        &[],
    );
    let v = json(&o);
    let ports = v["capacity"]["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "ports")
        .unwrap()
        .clone();
    if host("net.ipv4.ip_local_reserved_ports").is_empty() {
        assert_eq!(ports["max_connections"], 10 * size);
    }
    let o = doctor(&["--role", "lab", "--target", "100000", "--json"], &[]);
    let v = json(&o);
    assert_eq!(v["capacity"]["sockets_per_connection"], 2);
    assert_eq!(v["role"], "lab");
}

#[test]
fn pid_reads_another_process_limits() {
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -Sn 1000; exec sleep 20"])
        .spawn()
        .unwrap();
    // Wait until the shell has exec'd sleep with its new limit.
    let path = format!("/proc/{}/limits", child.id());
    let mut ok = false;
    for _ in 0..200 {
        if std::fs::read_to_string(&path).is_ok_and(|t| {
            t.lines().any(|l| {
                l.starts_with("Max open files") && l.split_whitespace().nth(3) == Some("1000")
            })
        }) {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let o = doctor(&["--pid", &child.id().to_string(), "--json"], &[]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "the child never showed soft limit 1000");
    let v = json(&o);
    let soft = row(&v, "rlimit.nofile.soft");
    assert_eq!(soft["current"], "1000", "{soft}");
    assert_eq!(soft["status"], "fix");
    assert!(soft["why"].as_str().unwrap().contains("prlimit"));
    assert_eq!(v["snapshot"]["pid"], child.id());
    // A process that does not exist is a clear error.
    let o = doctor(&["--pid", "999999999"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/proc/999999999/limits"));
}

#[test]
fn bad_input_names_the_file_and_line_and_unknown_keys_only_warn() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "# mine\nnet.core.somaxconn >= 65535 | accept_queue_overflow\nfs.file-max >> 5 | system_fd_limit\n").unwrap();
    let o = doctor(&["--profile", bad.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}:3:", bad.display())), "{err}");
    assert!(
        err.contains("expected a comparison") || err.contains("fs.file-max"),
        "{err}"
    );

    // Values the kernel refuses or that cripple the host: refused, naming
    // file:line (the check that `--apply` runs first).
    for (value, problem) in [
        ("fs.file-max = 0", "below 1024"),
        ("fs.file-max >= 99999999999999999999999", "above"),
    ] {
        let bounds = dir.path().join("bounds.conf");
        std::fs::write(&bounds, format!("# mine\n{value} | system_fd_limit\n")).unwrap();
        let o = doctor(&["--profile", bounds.to_str().unwrap()], &[]);
        assert_eq!(o.status.code(), Some(2), "{value}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&format!("{}:2:", bounds.display())), "{err}");
        assert!(err.contains(problem), "{value}: {err}");
    }

    let unknown = dir.path().join("unknown.conf");
    std::fs::write(
        &unknown,
        "net.core.somaxconn >= 1 | accept_queue_overflow\nnet.core.no_such_key >= 1 | accept_queue_overflow\n",
    )
    .unwrap();
    let o = doctor(&["--profile", unknown.to_str().unwrap(), "--json"], &[]);
    assert_ne!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown.conf:2: unknown key 'net.core.no_such_key'"),
        "{err}"
    );
    let v = json(&o);
    assert_eq!(row(&v, "net.core.no_such_key")["status"], "n/a");
    assert_eq!(row(&v, "net.core.somaxconn")["status"], "ok");

    for args in [
        vec!["--role", "router"],
        vec!["--target", "lots"],
        vec!["--persist"],
        vec!["--apply", "--rollback"],
        vec!["--profile", "nosuchprofile"],
    ] {
        let o = doctor(&args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(!o.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn apply_as_non_root_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let st = state.to_str().unwrap();
    // As root, drop to nobody with setpriv (util-linux); otherwise this
    // test already runs as a non-root user.
    let (o, uid) = if nix::unistd::geteuid().is_root() {
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .args(["doctor", "--apply", "--state", st])
            .output()
            .expect("setpriv (util-linux) runs c1m as nobody");
        (o, 65534)
    } else {
        let o = doctor(&["--apply", "--state", st], &[]);
        (o, nix::unistd::geteuid().as_raw())
    };
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(err.contains("--apply must run as root"), "{err}");
    assert!(err.contains(&format!("effective uid {uid}")), "{err}");
    assert!(!state.exists(), "nothing may be written");
}

/// The key/`field` pairs of an array of objects that each have a `key`
/// (apply reports, saved originals).
fn by_key(items: &Value, field: &str) -> BTreeMap<String, String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().into(),
                k[field].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback refuse other users"
)]
fn apply_persist_rollback_on_a_fake_tree_restores_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (root, profile) = fake_host(dir.path());
    let before = read_tree(&root, FAKE);
    let state = dir.path().join("state").join("doctor-state.json");
    let sysctl_d = dir.path().join("sysctl.d");
    let limits_d = dir.path().join("limits.d");
    let env = [
        ("C1M_SYSCTL_ROOT", root.as_path()),
        ("C1M_SYSCTL_D", sysctl_d.as_path()),
        ("C1M_LIMITS_D", limits_d.as_path()),
    ];
    let st = state.to_str().unwrap();
    let p = profile.to_str().unwrap();

    let o = doctor(&["--profile", p, "--target", "100000", "--json"], &env);
    let v = json(&o);
    assert_eq!(v["sysctl_root"], root.display().to_string());
    assert_eq!(row(&v, "fs.file-max")["status"], "fix");
    assert_eq!(row(&v, "fs.file-max")["apply_value"], "210000");

    let o = doctor(
        &[
            "--profile",
            p,
            "--target",
            "100000",
            "--apply",
            "--persist",
            "--state",
            st,
        ],
        &env,
    );
    let out = text(&o);
    assert!(out.contains("applied"), "{out}");
    let after = read_tree(&root, FAKE);
    assert_eq!(after["fs.nr_open"], "2097152", "{out}");
    assert_eq!(after["fs.file-max"], "210000");
    assert_eq!(after["fs.epoll.max_user_watches"], "200000");
    assert_eq!(after["net.core.somaxconn"], "65535");
    assert_eq!(after["net.ipv4.tcp_rmem"], "4096 4096 16777216");
    // The state file holds the originals, saved before the first write.
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let originals = by_key(&saved["keys"], "original");
    assert_eq!(originals["fs.file-max"], "100000");
    assert_eq!(originals["net.ipv4.tcp_rmem"], "4096\t131072\t6291456");
    // Persisted files, each with c1m's header.
    let sysctl_file = std::fs::read_to_string(sysctl_d.join("90-c1m.conf")).unwrap();
    assert!(
        sysctl_file.starts_with("# Written by c1m doctor"),
        "{sysctl_file}"
    );
    assert!(
        sysctl_file.contains("fs.file-max = 210000"),
        "{sysctl_file}"
    );
    assert!(sysctl_file.contains("net.ipv4.tcp_rmem = 4096 4096 16777216"));
    let limits_file = std::fs::read_to_string(limits_d.join("90-c1m.conf")).unwrap();
    assert!(limits_file.starts_with("# Written by c1m doctor"));
    assert!(limits_file.contains("hard nofile"), "{limits_file}");
    assert!(out.contains("LimitNOFILE="), "{out}");

    // Checking again: the applied keys pass now.
    let v = json(&doctor(
        &["--profile", p, "--target", "100000", "--json"],
        &env,
    ));
    for k in [
        "fs.nr_open",
        "fs.file-max",
        "net.core.somaxconn",
        "net.ipv4.tcp_rmem",
    ] {
        assert_eq!(row(&v, k)["status"], "ok", "{k}");
    }

    // A second apply with a bigger target keeps the first originals.
    let o = doctor(
        &[
            "--profile",
            p,
            "--target",
            "200000",
            "--apply",
            "--state",
            st,
        ],
        &env,
    );
    assert!(text(&o).contains("already ok"), "{}", text(&o));
    assert_eq!(read_tree(&root, FAKE)["fs.file-max"], "410000");

    let o = doctor(&["--rollback", "--state", st], &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(read_tree(&root, FAKE), before, "{}", text(&o));
    assert!(!state.exists());
    assert!(!sysctl_d.join("90-c1m.conf").exists());
    assert!(!limits_d.join("90-c1m.conf").exists());

    let o = doctor(&["--rollback", "--state", st], &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("Nothing to roll back"), "{}", text(&o));
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback refuse other users"
)]
fn persist_refuses_to_overwrite_a_file_c1m_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let (root, profile) = fake_host(dir.path());
    let sysctl_d = dir.path().join("sysctl.d");
    let limits_d = dir.path().join("limits.d");
    std::fs::create_dir_all(&sysctl_d).unwrap();
    std::fs::write(sysctl_d.join("90-c1m.conf"), "kernel.mine = 1\n").unwrap();
    let env = [
        ("C1M_SYSCTL_ROOT", root.as_path()),
        ("C1M_SYSCTL_D", sysctl_d.as_path()),
        ("C1M_LIMITS_D", limits_d.as_path()),
    ];
    let state = dir.path().join("s.json");
    let o = doctor(
        &[
            "--profile",
            profile.to_str().unwrap(),
            "--apply",
            "--persist",
            "--state",
            state.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("was not written by c1m"));
    assert_eq!(
        std::fs::read_to_string(sysctl_d.join("90-c1m.conf")).unwrap(),
        "kernel.mine = 1\n"
    );
    // The applied values are still undone by a rollback.
    let o = doctor(&["--rollback", "--state", state.to_str().unwrap()], &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        read_tree(&root, FAKE),
        read_tree(&fake_tree(&dir.path().join("orig"), FAKE), FAKE)
    );
    assert!(
        sysctl_d.join("90-c1m.conf").exists(),
        "a foreign file is never removed"
    );
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback refuse other users"
)]
fn a_write_failing_midway_restores_every_key_already_written() {
    let dir = tempfile::tempdir().unwrap();
    let (root, profile) = fake_host(dir.path());
    // somaxconn (the 4th key written) becomes /dev/null: it opens and takes
    // the write, but reads back empty, like a value the kernel rejects.
    let key = root.join("net/core/somaxconn");
    std::fs::remove_file(&key).unwrap();
    std::os::unix::fs::symlink("/dev/null", &key).unwrap();
    let keys: Vec<(&str, &str)> = FAKE
        .iter()
        .copied()
        .filter(|(k, _)| *k != "net.core.somaxconn")
        .collect();
    let before = read_tree(&root, &keys);
    let state = dir.path().join("state.json");
    let env = [("C1M_SYSCTL_ROOT", root.as_path())];
    let o = doctor(
        &[
            "--profile",
            profile.to_str().unwrap(),
            "--apply",
            "--state",
            state.to_str().unwrap(),
            "--json",
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v = json(&o);
    let apply = &v["apply"];
    assert!(
        apply["aborted"]
            .as_str()
            .unwrap()
            .contains("net.core.somaxconn"),
        "{apply}"
    );
    let status = by_key(&apply["keys"], "status");
    assert_eq!(status["fs.nr_open"], "restored");
    assert_eq!(status["fs.file-max"], "restored");
    assert_eq!(status["fs.epoll.max_user_watches"], "restored");
    assert_eq!(status["net.core.somaxconn"], "failed");
    assert_eq!(status["net.ipv4.tcp_rmem"], "not_attempted");
    assert_eq!(read_tree(&root, &keys), before, "every key as it was");
    assert!(
        !state.exists(),
        "nothing changed, so no state is left behind"
    );
    let o = doctor(&["--rollback", "--state", state.to_str().unwrap()], &env);
    assert!(text(&o).contains("Nothing to roll back"), "{}", text(&o));
}

/// Per-namespace keys inside `unshare -n`: apply really changes them there,
/// rollback puts them back, and the host's values never move.
fn netns_round_trip(role: &str, keys: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let watch: Vec<&str> = keys
        .iter()
        .map(|(k, _)| *k)
        .chain(["fs.nr_open", "fs.file-max"])
        .collect();
    let host_before: Vec<String> = watch.iter().map(|k| host(k)).collect();
    let dump = watch
        .iter()
        .map(|k| {
            format!(
                "printf '%s=%s\\n' {k} \"$(cat /proc/sys/{} | tr '\\t' ' ')\"",
                k.replace('.', "/")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let script = format!(
        "echo BEFORE; {dump}; \
         {BIN} doctor --role {role} --apply --netns-only --state {st} >{d}/apply.txt 2>&1; echo APPLY=$?; \
         echo AFTER; {dump}; \
         {BIN} doctor --rollback --state {st} >{d}/rollback.txt 2>&1; echo ROLLBACK=$?; \
         echo ROLLED; {dump}",
        st = state.display(),
        d = dir.path().display()
    );
    let o = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .env_remove("C1M_SYSCTL_ROOT")
        // --rollback also removes c1m's persisted files: never the host's.
        .env("C1M_SYSCTL_D", dir.path().join("sysctl.d"))
        .env("C1M_LIMITS_D", dir.path().join("limits.d"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let logs = format!(
        "{out}\napply:\n{}\nrollback:\n{}",
        std::fs::read_to_string(dir.path().join("apply.txt")).unwrap_or_default(),
        std::fs::read_to_string(dir.path().join("rollback.txt")).unwrap_or_default()
    );
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut cur = String::new();
    for line in out.lines() {
        match line.split_once('=') {
            Some((k, v)) if k.contains('.') => {
                sections
                    .entry(cur.clone())
                    .or_default()
                    .insert(k.into(), v.trim().into());
            }
            Some((k, v)) => {
                sections
                    .entry("status".into())
                    .or_default()
                    .insert(k.into(), v.into());
            }
            None => cur = line.to_string(),
        }
    }
    let st = &sections["status"];
    assert_ne!(st["APPLY"], "2", "{logs}");
    assert_eq!(st["ROLLBACK"], "0", "{logs}");
    let (before, after, rolled) = (&sections["BEFORE"], &sections["AFTER"], &sections["ROLLED"]);
    for (k, want) in keys {
        assert_eq!(
            &after[*k], want,
            "{k} inside the namespace after --apply\n{logs}"
        );
        assert_eq!(rolled[*k], before[*k], "{k} after --rollback\n{logs}");
    }
    // Host-wide keys were not written even inside the namespace.
    assert_eq!(after["fs.nr_open"], before["fs.nr_open"], "{logs}");
    // The profile wants target + 1000 (the default target: 1,000,000).
    if host("fs.nr_open").parse::<u64>().unwrap() < 1_001_000 {
        assert!(logs.contains("not written with --netns-only"), "{logs}");
    }
    // And the host's own values never moved.
    let host_after: Vec<String> = watch.iter().map(|k| host(k)).collect();
    assert_eq!(host_before, host_after, "host values changed!\n{logs}");
    assert!(!state.exists(), "{logs}");
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
fn server_profile_applies_and_rolls_back_inside_a_network_namespace() {
    netns_round_trip(
        "server",
        &[
            ("net.core.somaxconn", "65535"),
            ("net.ipv4.tcp_max_syn_backlog", "65535"),
            ("net.ipv4.tcp_rmem", "4096 4096 16777216"),
            ("net.ipv4.tcp_wmem", "4096 4096 16777216"),
            ("net.ipv4.tcp_fin_timeout", "30"),
            ("net.ipv4.tcp_max_tw_buckets", "2000000"),
        ],
    );
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
fn client_profile_applies_and_rolls_back_inside_a_network_namespace() {
    netns_round_trip(
        "client",
        &[
            ("net.ipv4.ip_local_port_range", "1024 65535"),
            ("net.ipv4.tcp_tw_reuse", "1"),
            ("net.ipv4.tcp_wmem", "4096 4096 16777216"),
        ],
    );
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback refuse other users"
)]
fn a_read_only_key_is_reported_and_the_others_still_apply() {
    let dir = tempfile::tempdir().unwrap();
    let mut keys: Vec<(&str, &str)> = FAKE.to_vec();
    // conntrack loaded and tracking, its max read-only (as in a child
    // network namespace).
    keys.push(("net.netfilter.nf_conntrack_max", "262144"));
    keys.push(("net.netfilter.nf_conntrack_count", "5"));
    let root = fake_tree(dir.path(), &keys);
    let ro = root.join("net/netfilter/nf_conntrack_max");
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
    let profile = dir.path().join("p.conf");
    std::fs::write(
        &profile,
        format!("{FAKE_PROFILE}net.netfilter.nf_conntrack_max >= 12*target/10 | conntrack_full\n"),
    )
    .unwrap();
    let state = dir.path().join("s.json");
    let env = [("C1M_SYSCTL_ROOT", root.as_path())];
    let p = profile.to_str().unwrap();
    let v = json(&doctor(&["--profile", p, "--json"], &env));
    let row_ct = row(&v, "net.netfilter.nf_conntrack_max");
    assert_eq!(row_ct["status"], "cannot", "{row_ct}");
    assert!(
        row_ct["why"].as_str().unwrap().contains("read-only"),
        "{row_ct}"
    );
    assert_eq!(v["snapshot"]["conntrack"]["state"], "loaded");
    assert_eq!(v["snapshot"]["conntrack"]["count"], 5);
    // conntrack tracks: it is a capacity limit now (262,144 - 5).
    let ct = v["capacity"]["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "conntrack")
        .unwrap()
        .clone();
    assert_eq!(ct["max_connections"], 262_139);
    // The fake tree's 5,000 epoll watches are smaller still, and bind.
    assert_eq!(v["capacity"]["binding"], "epoll_watches");
    assert_eq!(v["capacity"]["max_connections"], 5000);

    let o = doctor(
        &[
            "--profile",
            p,
            "--apply",
            "--state",
            state.to_str().unwrap(),
            "--json",
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v = json(&o);
    let k = v["apply"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "net.netfilter.nf_conntrack_max")
        .unwrap()
        .clone();
    assert_eq!(k["status"], "failed");
    assert!(v["apply"]["aborted"].is_null());
    assert_eq!(read_tree(&root, &keys)["fs.file-max"], "2010000");
    assert_eq!(
        read_tree(&root, &keys)["net.netfilter.nf_conntrack_max"],
        "262144"
    );
    let o = doctor(&["--rollback", "--state", state.to_str().unwrap()], &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(read_tree(&root, &keys)["fs.file-max"], "100000");
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback refuse other users"
)]
fn rollback_drops_keys_of_a_gone_namespace_and_refuses_another_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_tree(dir.path(), FAKE);
    let state = dir.path().join("s.json");
    let env = [("C1M_SYSCTL_ROOT", root.as_path())];
    let write_state = |root: &str, netns: &str| {
        let s = serde_json::json!({
            "version": 1, "written_by": "test", "created_unix": 0.0,
            "sysctl_root": root, "netns": netns,
            "keys": [{"key": "net.core.somaxconn", "original": "128"}],
            "persisted": []
        });
        std::fs::write(&state, s.to_string()).unwrap();
    };
    // A namespace that no longer exists took its net.* values with it:
    // said, not written, and the state is done with.
    write_state(root.to_str().unwrap(), "net:[1]");
    let o = doctor(&["--rollback", "--state", state.to_str().unwrap()], &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("network namespace net:[1], which no longer exists"),
        "{}",
        text(&o)
    );
    assert!(!state.exists(), "{}", text(&o));
    write_state("/somewhere/else", "net:[1]");
    let o = doctor(&["--rollback", "--state", state.to_str().unwrap()], &env);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/somewhere/else"),
        "{}",
        text(&o)
    );
    assert_eq!(
        read_tree(&root, FAKE)["net.core.somaxconn"],
        "4096",
        "nothing written"
    );
    assert!(state.exists(), "the state is kept");
    std::fs::write(&state, "{not json").unwrap();
    let o = doctor(&["--rollback", "--state", state.to_str().unwrap()], &env);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a c1m doctor state"));
}
