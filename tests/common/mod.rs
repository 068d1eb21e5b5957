//! What every integration test shares: the `c1m` binary, bounded runs of
//! it, fixtures, c1m's JSON-lines output parsed; and in submodules the echo
//! server flood's tests connect to (`echo_server`), doctor's fake host
//! (`fake_host`), analyze's JSON report (`analyze`), a small `c1m lab` run
//! (`lab`), other processes seen through /proc (`procs`) and free loopback
//! ports (`ports`).
//!
//! # Tests that cannot run here are ignored, never passed
//!
//! libtest cannot skip a test at run time, so `build.rs` probes the machine
//! at build time and sets cfgs; a test that needs something writes
//!
//! ```ignore
//! #[test]
//! #[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
//! fn it_runs_in_a_namespace() { ... }
//! ```
//!
//! and shows as `ignored, needs root: network namespaces` in `cargo test`'s
//! summary where it cannot run. In CI (root, `.ci/run` installs the tools)
//! it runs. Inside such a test, a missing piece is a failure (`panic!`),
//! never an early `return`. The cfgs:
//!
//! - `c1m_root`: effective uid 0 (`doctor --apply`, `--rollback`).
//! - `c1m_netns`: `unshare -n true` works (private network namespaces).
//! - one per external program, `-` written `_`: `c1m_nft`, `c1m_sshd`,
//!   `c1m_ansible_playbook`, `c1m_prometheus`, `c1m_promtool`, `c1m_nginx`,
//!   `c1m_redis_server`, `c1m_mosquitto`;
//! - one per Python module: `c1m_py_websockets`.
//!
//! A new tool goes in `build.rs`'s `TOOLS` (or `PY_MODULES`) and in
//! `.ci/run`. `C1M_TEST_UNPRIVILEGED=1 cargo test --release` builds as if
//! nothing were allowed, to see the skips on a privileged machine.
// Each test binary uses part of what is here.
#![allow(dead_code, unused_imports)]

pub mod analyze;
pub mod echo_server;
pub mod fake_host;
pub mod lab;
pub mod ports;
pub mod procs;

pub use analyze::*;
pub use echo_server::*;
pub use fake_host::*;
pub use lab::*;
pub use ports::*;
pub use procs::*;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `c1m` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_c1m");

/// `c1m` with arguments, stdout and stderr piped.
pub fn c1m(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Wait for a child with a deadline; kill it (by its pid) if it overruns.
pub fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "c1m did not end within {limit:?}; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run `c1m` to completion (bounded).
pub fn run_c1m(args: &[&str]) -> Output {
    wait_bounded(c1m(args).spawn().unwrap(), Duration::from_secs(60))
}

/// Start `cmd` with RLIMIT_NOFILE (soft and hard) lowered to `n`.
pub fn with_nofile(cmd: &mut Command, n: u64) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit only, between fork and exec.
    unsafe { cmd.pre_exec(move || c1m::sys::workers::set_nofile(n)) }
}

/// A file under `tests/fixtures/`.
pub fn fixture(rel: &str) -> String {
    format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// A child's exit status, stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A child's stderr, for assertion messages.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The JSON lines of an output, each parsed; panics on a line that is not
/// a c1m record.
pub fn records(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            assert!(
                c1m::events::Record::parse(l).is_some(),
                "not a c1m record: {l}"
            );
            serde_json::from_str(l).unwrap()
        })
        .collect()
}

pub fn summary(recs: &[serde_json::Value]) -> &serde_json::Value {
    let last = recs.last().expect("no lines");
    assert_eq!(last["event"], "summary", "last line is not the summary");
    last
}

/// A child that is killed (by its pid) and reaped if the test panics first.
pub struct KillOnDrop(pub Option<Child>);

impl KillOnDrop {
    pub fn take(mut self) -> Child {
        self.0.take().expect("child already taken")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
