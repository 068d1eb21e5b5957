//! A fake host for doctor: a /proc/sys tree in a temporary directory (each
//! key a file holding its value, pointed to by `C1M_SYSCTL_ROOT`), a
//! profile for it, and `c1m doctor` run so that it never falls back to the
//! host's state directory, /etc/sysctl.d or /etc/security/limits.d.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use super::BIN;

/// `c1m doctor ARGS` with `env` set; every path doctor could write outside
/// the test (state dir, sysctl.d, limits.d) points at a directory that does
/// not exist unless `env` gives one, and `C1M_SYSCTL_ROOT` is unset unless
/// `env` sets it.
pub fn doctor(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("doctor").args(args);
    // Never let a test fall back to the host's state dir or /etc: the
    // defaults point at a directory that does not exist (a test that needs
    // them gives its own).
    cmd.env_remove("C1M_SYSCTL_ROOT");
    let nowhere = std::env::temp_dir().join("c1m-doctor-test-no-such-dir");
    for k in ["C1M_STATE_DIR", "C1M_SYSCTL_D", "C1M_LIMITS_D"] {
        cmd.env(k, nowhere.join(k));
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run c1m")
}

/// A fake /proc/sys: every key a file holding its value.
pub fn fake_tree(dir: &Path, keys: &[(&str, &str)]) -> PathBuf {
    let root = dir.join("sys");
    for (k, v) in keys {
        let p = root.join(k.replace('.', "/"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("{v}\n")).unwrap();
    }
    root
}

/// The current value of each of `keys` in the fake tree at `root`.
pub fn read_tree(root: &Path, keys: &[(&str, &str)]) -> BTreeMap<String, String> {
    keys.iter()
        .map(|(k, _)| {
            let p = root.join(k.replace('.', "/"));
            (
                k.to_string(),
                std::fs::read_to_string(p).unwrap().trim().to_string(),
            )
        })
        .collect()
}

/// A fake /proc/sys with the [`FAKE`] keys and a profile file holding
/// [`FAKE_PROFILE`], in `dir`: (sysctl root, profile path).
pub fn fake_host(dir: &Path) -> (PathBuf, PathBuf) {
    let root = fake_tree(dir, FAKE);
    let profile = dir.join("fake.conf");
    std::fs::write(&profile, FAKE_PROFILE).unwrap();
    (root, profile)
}

/// The fake host's keys and values (fd limits, epoll, somaxconn, tcp_rmem).
pub const FAKE: &[(&str, &str)] = &[
    ("fs.nr_open", "1048576"),
    ("fs.file-max", "100000"),
    ("fs.file-nr", "449\t0\t100000"),
    ("fs.epoll.max_user_watches", "5000"),
    ("net.core.somaxconn", "4096"),
    ("net.ipv4.tcp_rmem", "4096\t131072\t6291456"),
];

/// A profile over [`FAKE`]'s keys, each line wanting a change.
pub const FAKE_PROFILE: &str = "\
fs.nr_open >= max(2097152, target + 1000) | fd_limit
fs.file-max >= 2*target + 10000 | system_fd_limit
fs.epoll.max_user_watches >= 2*target | epoll_watch_limit
net.core.somaxconn >= 65535 | accept_queue_overflow
net.ipv4.tcp_rmem = 4096 4096 16777216 | tcp_memory_pressure
";

/// `c1m doctor --json`'s output, parsed; panics with the whole output.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", super::text(o)))
}

/// The doctor row whose `check` is `check`.
pub fn row<'a>(v: &'a serde_json::Value, check: &str) -> &'a serde_json::Value {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == check)
        .unwrap_or_else(|| panic!("no row {check}"))
}
