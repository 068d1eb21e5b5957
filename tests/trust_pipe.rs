//! No command panics on a closed stdout (issue 10, item 11): with the
//! reading end of its stdout closed before it prints, `c1m doctor`,
//! `c1m doctor --json` and `c1m analyze` end quietly as `ls | head` does
//! (killed by SIGPIPE), never with a panic and exit 101.
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_c1m");

fn closed_stdout(args: &[&str]) {
    for _ in 0..5 {
        let mut child = Command::new(BIN)
            .args(args)
            .env_remove("C1M_SYSCTL_ROOT")
            .env(
                "C1M_STATE_DIR",
                std::env::temp_dir().join("c1m-pipe-test-none"),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
        assert!(
            out.status.signal() == Some(13) || out.status.code().is_some(),
            "{args:?}: {:?}",
            out.status
        );
    }
}

#[test]
fn doctor_and_analyze_end_quietly_on_a_closed_stdout() {
    closed_stdout(&["doctor"]);
    closed_stdout(&["doctor", "--json"]);
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/seed.txt");
    closed_stdout(&["analyze", fixture]);
    // The same through a shell pipe into head, as a user runs it.
    for _ in 0..10 {
        let out = Command::new("sh")
            .args(["-c", &format!("{BIN} doctor --json | head -1 >/dev/null")])
            .env_remove("C1M_SYSCTL_ROOT")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
    }
}
