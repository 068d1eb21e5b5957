//! Probes, at build time, what the test machine allows, and tells the tests
//! through cfgs, so a test that cannot run here shows as `ignored` in
//! `cargo test`'s summary instead of passing without checking anything
//! (libtest cannot skip at run time). In CI (root, tools installed by
//! `.ci/run`) every cfg is set and every test runs.
//!
//! The cfgs (each also declared with `cargo::rustc-check-cfg`):
//! - `c1m_root`: the effective uid is 0.
//! - `c1m_netns`: `unshare -n true` works (private network namespaces).
//! - `c1m_child_ehash`: root, namespaces, and a kernel (6.1+) with
//!   `net.ipv4.tcp_child_ehash_entries` (a namespace's own TCP hash table).
//! - `c1m_<tool>` for each external program in [`TOOLS`] found on `PATH`
//!   (or in the sbin directories), `-` written `_`: `c1m_nft`,
//!   `c1m_redis_server`, ...
//! - `c1m_py_<module>` for each Python module in [`PY_MODULES`] that
//!   `python3 -c "import <module>"` can import.
//!
//! It also stamps the binary with the git revision it was built from
//! (`C1M_GIT_REV`, shown by `c1m --version`), "unknown" outside a checkout.
//!
//! A test uses them as
//! `#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]`.
//!
//! The probe reruns when the machine changes: when a directory on `PATH`
//! or a Python site directory changes (a package installed or removed), or
//! when `C1M_TEST_UNPRIVILEGED` changes. Setting `C1M_TEST_UNPRIVILEGED=1`
//! probes as if nothing were allowed (no root, no namespaces, no tools), to
//! see the skips on a privileged machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// External programs the tests start.
const TOOLS: &[&str] = &[
    "nft",
    "sshd",
    "ansible-playbook",
    "prometheus",
    "promtool",
    "nginx",
    "redis-server",
    "mosquitto",
];

/// Python modules the tests import (through `python3`).
const PY_MODULES: &[&str] = &["websockets"];

/// Directories searched for the tools besides `PATH` (sbin is often left
/// out of a user's `PATH`).
const EXTRA_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=C1M_TEST_UNPRIVILEGED");
    let unprivileged = std::env::var_os("C1M_TEST_UNPRIVILEGED").is_some_and(|v| v != "0");

    let netns = !unprivileged && succeeds(Command::new("unshare").args(["-n", "true"]));
    let mut cfgs: Vec<(String, bool)> = vec![
        ("c1m_root".into(), !unprivileged && euid_is_root()),
        ("c1m_netns".into(), netns),
        (
            "c1m_child_ehash".into(),
            netns
                && euid_is_root()
                && Path::new("/proc/sys/net/ipv4/tcp_child_ehash_entries").exists(),
        ),
    ];
    let dirs = search_dirs();
    for tool in TOOLS {
        let found = !unprivileged && dirs.iter().any(|d| is_executable(&d.join(tool)));
        cfgs.push((format!("c1m_{}", tool.replace('-', "_")), found));
    }
    for module in PY_MODULES {
        let found = !unprivileged
            && succeeds(Command::new("python3").args(["-c", &format!("import {module}")]));
        cfgs.push((format!("c1m_py_{module}"), found));
    }
    for (name, on) in &cfgs {
        println!("cargo::rustc-check-cfg=cfg({name})");
        if *on {
            println!("cargo::rustc-cfg={name}");
        }
    }
    // Rerun when a tool or module appears or goes. Only paths that exist:
    // cargo reruns the probe on every build for a missing one.
    for d in dirs.iter().chain(python_site_dirs().iter()) {
        if d.is_dir() {
            println!("cargo::rerun-if-changed={}", d.display());
        }
    }
    git_revision();
}

/// `C1M_GIT_REV`: `git describe --always --dirty` of the source tree, and
/// rerun when HEAD or the branch it points at moves.
fn git_revision() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = git(&["describe", "--always", "--dirty", "--abbrev=10"])
        .unwrap_or_else(|| "unknown".into());
    println!("cargo::rustc-env=C1M_GIT_REV={rev}");
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let head = Path::new(&dir).join("HEAD");
        if head.is_file() {
            println!("cargo::rerun-if-changed={}", head.display());
        }
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let common = git(&["rev-parse", "--git-common-dir"]).unwrap_or(dir.clone());
            let refp = Path::new(&common).join(r);
            if refp.is_file() {
                println!("cargo::rerun-if-changed={}", refp.display());
            }
        }
    }
}

/// The effective uid, from `/proc/self/status` (no libc in a build script).
fn euid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in EXTRA_DIRS {
        dirs.push(PathBuf::from(d));
    }
    let mut seen = Vec::new();
    dirs.retain(|d| {
        let new = !seen.contains(d);
        seen.push(d.clone());
        new
    });
    dirs
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where `pip install` puts modules for the `python3` on `PATH`.
fn python_site_dirs() -> Vec<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import site; print('\\n'.join(site.getsitepackages() + [site.getusersitepackages()]))",
        ])
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(PathBuf::from)
            .collect(),
        _ => Vec::new(),
    }
}
