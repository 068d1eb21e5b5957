//! A small `c1m lab` run for a test: the flags every lab test repeats (the
//! target, two clients, four server ports, a short hold, the report folder,
//! and when asked the private namespace and JSON) in one builder, so that
//! a test writes only what it is about. A flag is given once: clap refuses
//! a repeated one, so the builder keeps each in its own field.
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::{BIN, text, wait_bounded};

/// `c1m lab --target N --clients 2 --ports 4 --hold 2s --report DIR`, and
/// what a test adds.
#[derive(Debug, Clone)]
pub struct Lab {
    /// `--target`: a count, or "max".
    target: String,
    clients: u32,
    ports: u16,
    hold: String,
    netns_on: bool,
    json: bool,
    extra: Vec<String>,
}

impl Lab {
    /// A lab of `target` connections: 2 clients, 4 server ports, a 2 s hold.
    pub fn new(target: u64) -> Lab {
        Lab {
            target: target.to_string(),
            clients: 2,
            ports: 4,
            hold: "2s".into(),
            netns_on: false,
            json: false,
            extra: Vec::new(),
        }
    }

    /// `--target max`: the host's ceiling, otherwise as [`Lab::new`].
    pub fn max() -> Lab {
        Lab {
            target: "max".into(),
            ..Lab::new(0)
        }
    }

    pub fn clients(mut self, n: u32) -> Lab {
        self.clients = n;
        self
    }

    pub fn ports(mut self, n: u16) -> Lab {
        self.ports = n;
        self
    }

    pub fn hold(mut self, hold: &str) -> Lab {
        self.hold = hold.into();
        self
    }

    /// `--netns on`: fail rather than run on the host's loopback.
    pub fn netns_on(mut self) -> Lab {
        self.netns_on = true;
        self
    }

    /// `--json`: progress on stderr, report.json as the last stdout line.
    pub fn json(mut self) -> Lab {
        self.json = true;
        self
    }

    /// Any other flags (`--fault kill-worker`, `--server redis`, ...).
    pub fn args(mut self, args: &[&str]) -> Lab {
        self.extra.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// The command line after `c1m`.
    pub fn argv(&self, report: &Path) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "lab".into(),
            "--target".into(),
            self.target.clone(),
            "--clients".into(),
            self.clients.to_string(),
            "--ports".into(),
            self.ports.to_string(),
            "--hold".into(),
            self.hold.clone(),
        ];
        if self.netns_on {
            a.extend(["--netns".into(), "on".into()]);
        }
        if self.json {
            a.push("--json".into());
        }
        a.extend(self.extra.iter().cloned());
        a.push("--report".into());
        a.push(report.display().to_string());
        a
    }

    /// The command, stdin closed, stdout and stderr piped.
    pub fn command(&self, report: &Path) -> Command {
        let mut c = Command::new(BIN);
        c.args(self.argv(report))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Run it to its end; killed (by its pid) past `limit`.
    pub fn run(&self, report: &Path, limit: Duration) -> Output {
        let child = self
            .command(report)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {BIN} {:?}: {e}", self.argv(report)));
        wait_bounded(child, limit)
    }
}

/// report.json as `c1m lab --json` prints it: its last stdout line that
/// holds `report_dir`.
pub fn lab_report(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.contains("\"report_dir\""))
        .unwrap_or_else(|| panic!("no report line: {}", text(out)));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("report line ({e}): {line}"))
}
