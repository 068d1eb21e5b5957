//! What a dead serve worker took with it. When a worker is killed (kill -9,
//! the OOM killer) or crashes, its connections die with it and it never
//! writes a summary: the supervisor only has the live count of its last
//! interval line. This module turns that into an account of the loss (a
//! `server_process_died` failure line when it happens, and
//! `lost_connections` / `worker_deaths` in serve's summary), so that "150
//! accepted, all lost" never reads as "100 opened, 100 closed".
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use crate::catalogue::FailureId;
use crate::events::{Counters, Event, WorkerDeath};

/// The deaths seen so far.
#[derive(Debug, Default)]
pub struct Losses {
    pub deaths: Vec<WorkerDeath>,
}

impl Losses {
    /// Connections lost with every dead worker.
    pub fn lost(&self) -> u64 {
        self.deaths.iter().map(|d| d.connections_lost).sum()
    }

    /// Worker `index` (pid `pid`) ended with `status` while serving;
    /// `last` is its last reported counters. Returns the death, and the
    /// counters to keep for it: everything it did, its open connections
    /// neither open nor closed any more but counted under
    /// `server_process_died` (so the summed counters keep the loss).
    pub fn record(
        &mut self,
        index: u32,
        pid: u32,
        status: &ExitStatus,
        mut last: Counters,
    ) -> (WorkerDeath, Counters) {
        let signal = status.signal().map(|sig| {
            nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| format!("signal {sig}"))
        });
        let cause = match &signal {
            Some(name) => format!("killed by {name}"),
            None => format!("exited with status {}", status.code().unwrap_or(-1)),
        };
        let death = WorkerDeath {
            index,
            pid,
            ts: crate::util::unix_now(),
            cause,
            signal,
            exit_code: status.code(),
            connections_lost: last.connections,
        };
        *last
            .failures
            .entry(FailureId::ServerProcessDied)
            .or_default() += last.connections;
        last.connections = 0;
        last.rss_bytes = None;
        self.deaths.push(death.clone());
        (death, last)
    }
}

/// Whether a worker that ended with `status` died (killed, crashed, failed)
/// rather than stopped on its parent's SIGTERM or SIGINT (exit 0).
pub fn died_while_serving(status: &ExitStatus) -> bool {
    match status.signal() {
        Some(sig) => sig != libc::SIGTERM && sig != libc::SIGINT,
        None => !status.success(),
    }
}

impl WorkerDeath {
    /// The sentence for logs: `worker 0 (pid 27012) killed by SIGKILL
    /// holding 16,376 connections: all lost`.
    pub fn sentence(&self) -> String {
        format!(
            "worker {} (pid {}) {} holding {} connection{}: {}",
            self.index,
            self.pid,
            self.cause,
            crate::util::thousands(self.connections_lost),
            if self.connections_lost == 1 { "" } else { "s" },
            if self.connections_lost == 0 {
                "nothing lost"
            } else {
                "all lost"
            }
        )
    }

    /// The failure line written when it happens.
    pub fn event(&self) -> Event {
        Event::Failure {
            failure: FailureId::ServerProcessDied,
            call: "worker".into(),
            errno: None,
            count: self.connections_lost,
            detail: self.sentence(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_worker_loses_its_last_live_count_not_closes_it() {
        let mut l = Losses::default();
        let last = Counters {
            connections: 150,
            opened_total: 150,
            closed_total: 0,
            rss_bytes: Some(4096),
            ..Default::default()
        };
        // SIGKILL: raw wait status 9.
        let status = ExitStatus::from_raw(9);
        let (death, kept) = l.record(0, 27012, &status, last);
        assert_eq!(death.connections_lost, 150);
        assert_eq!(death.cause, "killed by SIGKILL");
        assert_eq!(death.signal.as_deref(), Some("SIGKILL"));
        assert_eq!((kept.connections, kept.closed_total), (0, 0));
        assert_eq!(kept.opened_total, 150);
        assert_eq!(kept.failures[&FailureId::ServerProcessDied], 150);
        assert_eq!(kept.rss_bytes, None);
        assert_eq!(l.lost(), 150);
        assert_eq!(
            death.sentence(),
            "worker 0 (pid 27012) killed by SIGKILL holding 150 connections: all lost"
        );
        // exit(3): raw wait status 3 << 8.
        let (death, _) = l.record(1, 5, &ExitStatus::from_raw(3 << 8), Counters::default());
        assert_eq!(death.cause, "exited with status 3");
        assert_eq!(death.exit_code, Some(3));
        assert_eq!(l.lost(), 150);
        assert!(died_while_serving(&ExitStatus::from_raw(9)));
        assert!(!died_while_serving(&ExitStatus::from_raw(0)));
        assert!(!died_while_serving(&ExitStatus::from_raw(libc::SIGTERM)));
    }
}
