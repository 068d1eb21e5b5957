//! Root-safe state and no lost originals (issue 10, items 1-4), each attack
//! reproduced as the issue describes it, on a fake sysctl tree, a state
//! directory and persist directories in temporary directories: a planted
//! key naming a file outside the tree, a state file or directory another
//! user owns or may write, symlinks at the temporary and persist names,
//! `--netns-only --persist`, a state from a namespace that is gone, and
//! kill -9 at every point of `doctor --apply` and `lab --apply` followed by
//! `c1m doctor --rollback`, which must restore every byte.
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{BIN, text};

/// The fake host's keys, as the kernel shows them (tabs, newline).
const FAKE: &[(&str, &str)] = &[
    ("fs.nr_open", "1048576\n"),
    ("fs.file-max", "5000\n"),
    ("fs.file-nr", "449\t0\t5000\n"),
    ("fs.epoll.max_user_watches", "5000\n"),
    ("net.core.somaxconn", "4096\n"),
    ("net.ipv4.tcp_rmem", "4096\t131072\t6291456\n"),
];

/// Five keys to write (for doctor's target and the lab's alike).
const PROFILE: &str = "\
fs.nr_open >= max(2097152, target + 1000) | fd_limit
fs.file-max >= 10600 | system_fd_limit
fs.epoll.max_user_watches >= 10000 | epoll_watch_limit
net.core.somaxconn >= 65535 | accept_queue_overflow
net.ipv4.tcp_rmem = 4096 4096 16777216 | tcp_memory_pressure
";
const WRITES: usize = 5;

struct Host {
    _dir: tempfile::TempDir,
    root: PathBuf,
    state_dir: PathBuf,
    sysctl_d: PathBuf,
    limits_d: PathBuf,
    profile: PathBuf,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("sys");
        for (k, v) in FAKE {
            let p = root.join(k.replace('.', "/"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, v).unwrap();
        }
        let profile = dir.path().join("fake.conf");
        std::fs::write(&profile, PROFILE).unwrap();
        Host {
            root,
            state_dir: dir.path().join("state"),
            sysctl_d: dir.path().join("sysctl.d"),
            limits_d: dir.path().join("limits.d"),
            profile,
            _dir: dir,
        }
    }

    fn dir(&self) -> &Path {
        self._dir.path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("C1M_SYSCTL_ROOT", &self.root)
            .env("C1M_STATE_DIR", &self.state_dir)
            .env("C1M_SYSCTL_D", &self.sysctl_d)
            .env("C1M_LIMITS_D", &self.limits_d)
            .env_remove("C1M_TEST_KILL_AFTER_WRITES");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `c1m doctor --target 5000 --apply --profile FAKE EXTRA...` on this
    /// host, run to its end.
    fn apply(&self, extra: &[&str]) -> Output {
        self.cmd(&[])
            .args(self.apply_args())
            .args(extra)
            .output()
            .unwrap()
    }

    fn apply_args(&self) -> Vec<String> {
        ["doctor", "--target", "5000", "--apply", "--profile"]
            .iter()
            .map(|s| s.to_string())
            .chain([self.profile.display().to_string()])
            .collect()
    }

    /// Every key's file, byte for byte.
    fn tree(&self) -> BTreeMap<String, Vec<u8>> {
        FAKE.iter()
            .map(|(k, _)| {
                let p = self.root.join(k.replace('.', "/"));
                (k.to_string(), std::fs::read(p).unwrap())
            })
            .collect()
    }

    fn original(&self) -> BTreeMap<String, Vec<u8>> {
        FAKE.iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn write_state(&self, path: &Path, netns: &str, keys: &[(&str, &str)], persisted: &[&Path]) {
        let s = serde_json::json!({
            "version": 1, "written_by": "test", "created_unix": 0.0,
            "sysctl_root": self.root.display().to_string(), "netns": netns,
            "keys": keys.iter().map(|(k, o)| serde_json::json!({"key": k, "original": o})).collect::<Vec<_>>(),
            "persisted": persisted.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        });
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::set_permissions(
            path.parent().unwrap(),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::fs::write(path, s.to_string()).unwrap();
    }
}

/// A directory whose path has no dot, so that a key naming a file in it
/// survives the old `.` -> `/` mapping unchanged (as in the issue).
fn dotless_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("c1mvictim")
        .tempdir_in("/tmp")
        .unwrap()
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback and lab --apply refuse other users"
)]
fn a_planted_key_naming_a_file_outside_the_tree_is_refused_by_rollback_and_lab() {
    let host = Host::new();
    let victims = dotless_dir();
    let victim = victims.path().join("victim");
    assert!(!victim.to_str().unwrap().contains('.'));
    std::fs::write(&victim, "precious\n").unwrap();
    let key = victim.to_str().unwrap();

    // doctor --rollback --state FILE with a tampered file.
    let state = host.dir().join("tampered/s.json");
    host.write_state(&state, "net:[1]", &[(key, "planted")], &[]);
    let o = host.run(&["doctor", "--rollback", "--state", state.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is not a sysctl name"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");

    // The lab's own state file, planted before `lab --apply`.
    host.write_state(
        &host.state_dir.join("lab-state.json"),
        "net:[1]",
        &[(key, "planted")],
        &[],
    );
    let o = host
        .cmd(&[
            "lab", "--apply", "--netns", "off", "--force", "--target", "100",
        ])
        .arg("--profile")
        .arg(&host.profile)
        .arg("--report")
        .arg(host.dir().join("reports"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is not a sysctl name"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(host.tree(), host.original(), "nothing written");
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback and lab --apply refuse other users"
)]
fn a_state_file_or_directory_another_user_could_write_is_refused() {
    let host = Host::new();
    let state = host.state_dir.join("doctor-state.json");
    let st = state.to_str().unwrap();
    host.write_state(&state, "net:[1]", &[("fs.file-max", "1")], &[]);
    let refused = |why: &str| {
        let o = host.run(&["doctor", "--rollback", "--state", st]);
        assert_eq!(o.status.code(), Some(2), "{why}: {}", text(&o));
        assert!(text(&o).contains("refusing"), "{why}: {}", text(&o));
        assert_eq!(host.tree(), host.original(), "{why}: nothing written");
    };
    nix::unistd::chown(&state, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    refused("owned by nobody");
    nix::unistd::chown(&state, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o666)).unwrap();
    refused("world-writable file");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&host.state_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    refused("world-writable directory");
    // And apply will not save its originals there either.
    let o = host.apply(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(host.tree(), host.original());
    // A symlinked state directory is refused too.
    std::fs::set_permissions(&host.state_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = host.dir().join("link");
    std::os::unix::fs::symlink(&host.state_dir, &link).unwrap();
    let o = host
        .cmd(&["doctor", "--rollback", "--state"])
        .arg(link.join("doctor-state.json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("symbolic link"), "{}", text(&o));
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback and lab --apply refuse other users"
)]
fn a_new_state_directory_is_private_to_root() {
    let host = Host::new();
    let o = host.apply(&[]);
    assert!(o.status.code().is_some(), "{}", text(&o));
    let meta = std::fs::metadata(&host.state_dir).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    let state = std::fs::metadata(host.state_dir.join("doctor-state.json")).unwrap();
    assert_eq!(
        state.permissions().mode() & 0o077,
        0,
        "state readable by root only"
    );
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback and lab --apply refuse other users"
)]
fn symlinks_at_the_temporary_state_and_persist_names_are_never_followed() {
    let host = Host::new();
    let victims = dotless_dir();
    let victim = victims.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::create_dir_all(&host.state_dir).unwrap();
    std::fs::set_permissions(&host.state_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // The old temporary names (`<state>.tmp`, `doctor-state.json.tmp`).
    for name in ["doctor-state.json.tmp", "doctor-state.tmp"] {
        std::os::unix::fs::symlink(&victim, host.state_dir.join(name)).unwrap();
    }
    // A persist file that is a symlink to a file that does not exist yet
    // (the old code created it through the link).
    std::fs::create_dir_all(&host.sysctl_d).unwrap();
    let created = victims.path().join("created");
    std::os::unix::fs::symlink(&created, host.sysctl_d.join("90-c1m.conf")).unwrap();
    let o = host.apply(&["--persist"]);
    let out = text(&o);
    assert!(out.contains("symbolic link"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious\n",
        "{out}"
    );
    assert!(!created.exists(), "nothing created through the link: {out}");
    assert!(
        !host.limits_d.join("90-c1m.conf").exists(),
        "no file half-persisted"
    );
    // A symlink at the state file itself is refused, not read or replaced.
    std::fs::remove_file(host.sysctl_d.join("90-c1m.conf")).unwrap();
    let o = host.run(&["doctor", "--rollback"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::os::unix::fs::symlink(&victim, host.state_dir.join("doctor-state.json")).unwrap();
    let o = host.apply(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("symbolic link"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback and lab --apply refuse other users"
)]
fn netns_only_with_persist_is_refused_before_anything_is_written() {
    let host = Host::new();
    let o = host.apply(&["--netns-only", "--persist"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--netns-only"), "{}", text(&o));
    assert_eq!(host.tree(), host.original());
    assert!(!host.sysctl_d.exists() && !host.limits_d.exists() && !host.state_dir.exists());
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback and lab --apply refuse other users"
)]
fn rollback_restores_host_wide_keys_and_persisted_files_whatever_the_namespace() {
    let host = Host::new();
    // What an apply in a namespace that is gone now left: fs.file-max
    // changed, a net key of that namespace, and a persisted file.
    std::fs::write(host.root.join("fs/file-max"), "10600\n").unwrap();
    std::fs::create_dir_all(&host.sysctl_d).unwrap();
    let persisted = host.sysctl_d.join("90-c1m.conf");
    std::fs::write(&persisted, "# Written by c1m doctor --apply --persist\n").unwrap();
    let state = host.state_dir.join("doctor-state.json");
    host.write_state(
        &state,
        "net:[1]",
        &[("fs.file-max", "5000"), ("net.core.somaxconn", "128")],
        &[&persisted],
    );
    let o = host.run(&["doctor", "--rollback"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(host.tree(), host.original(), "{out}");
    assert!(!persisted.exists(), "{out}");
    assert!(out.contains("no longer exists"), "{out}");
    assert!(!state.exists(), "{out}");
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback and lab --apply refuse other users"
)]
fn per_namespace_keys_of_a_namespace_that_still_exists_stay_in_the_state() {
    if !Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("skipped: unshare -n not allowed here");
        return;
    }
    let host = Host::new();
    std::fs::write(host.root.join("fs/file-max"), "10600\n").unwrap();
    let state = host.state_dir.join("doctor-state.json");
    let here = std::fs::read_link("/proc/self/ns/net").unwrap();
    host.write_state(
        &state,
        here.to_str().unwrap(),
        &[("fs.file-max", "5000"), ("net.core.somaxconn", "128")],
        &[],
    );
    // Rolled back from another namespace: the host-wide key is restored,
    // the net key is kept for a rollback inside its (living) namespace.
    let o = {
        let mut c = Command::new("unshare");
        c.args(["-n", BIN, "doctor", "--rollback"])
            .env("C1M_SYSCTL_ROOT", &host.root)
            .env("C1M_STATE_DIR", &host.state_dir)
            .env("C1M_SYSCTL_D", &host.sysctl_d)
            .env("C1M_LIMITS_D", &host.limits_d);
        c.output().unwrap()
    };
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(
        std::fs::read(host.root.join("fs/file-max")).unwrap(),
        b"5000\n"
    );
    assert!(out.contains("still exists"), "{out}");
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(kept["keys"].as_array().unwrap().len(), 1, "{kept}");
    assert_eq!(kept["keys"][0]["key"], "net.core.somaxconn");
    // Inside that namespace (here), the rest is restored and the state goes.
    let o = host.run(&["doctor", "--rollback"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read(host.root.join("net/core/somaxconn")).unwrap(),
        b"128\n"
    );
    assert!(!state.exists());
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback and lab --apply refuse other users"
)]
fn kill_9_at_every_point_of_doctor_apply_then_rollback_restores_every_byte() {
    for n in 0..=WRITES {
        let host = Host::new();
        let o = host
            .cmd(&[])
            .args(host.apply_args())
            .env("C1M_TEST_KILL_AFTER_WRITES", n.to_string())
            .output()
            .unwrap();
        assert_eq!(
            o.status.signal(),
            Some(9),
            "killed after {n} writes: {}",
            text(&o)
        );
        let changed = host
            .tree()
            .iter()
            .filter(|(k, v)| host.original()[*k] != **v)
            .count();
        assert_eq!(changed, n, "{n} keys written before the kill");
        let o = host.run(&["doctor", "--rollback"]);
        assert_eq!(o.status.code(), Some(0), "after {n} writes: {}", text(&o));
        assert_eq!(
            host.tree(),
            host.original(),
            "after {n} writes: {}",
            text(&o)
        );
        assert!(!host.state_dir.join("doctor-state.json").exists());
    }
}

/// The first of two free consecutive loopback ports.
fn free_port_pair() -> u16 {
    loop {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < 65000 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// `c1m lab --apply` on the fake host, in the host's network namespace (so
/// that its net keys live in the fake tree, not in a namespace that dies
/// with it), small and on loopback.
fn lab(host: &Host, hold: &str) -> Command {
    let mut c = host.cmd(&[
        "lab",
        "--apply",
        "--netns",
        "off",
        "--force",
        "--target",
        "200",
        "--clients",
        "1",
        "--ports",
        "2",
        "--sources",
        "1",
        "--hold",
        hold,
    ]);
    c.arg("--profile")
        .arg(&host.profile)
        .arg("--port")
        .arg(free_port_pair().to_string())
        .arg("--report")
        .arg(host.dir().join("reports"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    c
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback and lab --apply refuse other users"
)]
fn kill_9_at_every_point_of_lab_apply_then_rollback_restores_every_byte() {
    for n in 0..=WRITES {
        let host = Host::new();
        let o = lab(&host, "1s")
            .env("C1M_TEST_KILL_AFTER_WRITES", n.to_string())
            .output()
            .unwrap();
        assert_eq!(
            o.status.signal(),
            Some(9),
            "killed after {n} writes: {}",
            text(&o)
        );
        let o = host.run(&["doctor", "--rollback"]);
        assert_eq!(o.status.code(), Some(0), "after {n} writes: {}", text(&o));
        assert_eq!(
            host.tree(),
            host.original(),
            "after {n} writes: {}",
            text(&o)
        );
        assert!(!host.state_dir.join("lab-state.json").exists());
    }
}

/// Start a lab with a long hold and wait until its profile is applied
/// (the state file exists and fs.file-max changed).
fn lab_holding(host: &Host) -> std::process::Child {
    let mut child = lab(host, "60s").spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if host.state_dir.join("lab-state.json").exists()
            && std::fs::read(host.root.join("fs/file-max")).unwrap() != b"5000\n"
        {
            std::thread::sleep(Duration::from_millis(300));
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill_group(&child, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
    panic!("the lab did not apply its profile within 30 s");
}

fn kill_group(child: &std::process::Child, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), sig);
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback and lab --apply refuse other users"
)]
fn a_lab_killed_mid_run_is_restored_by_the_next_lab_or_by_doctor_rollback() {
    let host = Host::new();
    // Killed -9 while it runs (the whole group: serve and flood too).
    let mut child = lab_holding(&host);
    kill_group(&child, nix::sys::signal::Signal::SIGKILL);
    child.wait().unwrap();
    assert_ne!(host.tree(), host.original(), "the profile was applied");
    // The next lab restores the originals first, then applies and rolls
    // back its own: the host ends as it started (not at 10600).
    let o = lab(&host, "1s").output().unwrap();
    let out = text(&o);
    assert!(out.contains("restored its originals first"), "{out}");
    assert!(out.contains("fs.file-max 5000"), "{out}");
    assert_eq!(host.tree(), host.original(), "{out}");
    // Killed again; this time doctor --rollback restores it.
    let mut child = lab_holding(&host);
    kill_group(&child, nix::sys::signal::Signal::SIGKILL);
    child.wait().unwrap();
    let o = host.run(&["doctor", "--rollback"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(host.tree(), host.original(), "{}", text(&o));
}

#[test]
#[cfg_attr(
    not(c1m_root),
    ignore = "needs root: doctor --apply/--rollback and lab --apply refuse other users"
)]
fn sighup_and_sigquit_roll_the_lab_back_like_ctrl_c() {
    for sig in [
        nix::sys::signal::Signal::SIGHUP,
        nix::sys::signal::Signal::SIGQUIT,
    ] {
        let host = Host::new();
        let child = lab_holding(&host);
        let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pgid, sig).unwrap();
        let start = Instant::now();
        let mut child = child;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(60) {
                kill_group(&child, nix::sys::signal::Signal::SIGKILL);
                panic!("lab did not end after {sig}");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let o = child.wait_with_output().unwrap();
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        assert!(
            status.code().is_some(),
            "{sig}: exited, not killed: {}",
            text(&o)
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("profile rolled back"),
            "{sig}: {}",
            text(&o)
        );
        assert_eq!(host.tree(), host.original(), "{sig}");
        assert!(!host.state_dir.join("lab-state.json").exists());
    }
}
