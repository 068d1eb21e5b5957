//! The `c1m serve` reactor: an epoll echo server on many ports, spread over
//! as many worker processes as the per-process fd limit requires.
//!
//! * [`listen`] opens the ports (in the parent), [`worker`] is one event
//!   loop (a worker process), [`supervisor`] starts, watches, restarts and
//!   ends the workers and prints what they report (and, elastic, starts
//!   the next as the running ones fill); [`lost`] accounts for the
//!   connections a dead worker took with it. [`Plan`] splits
//!   `--max-connections` into the workers' exact shares.
//!
//! # How workers share the ports (decision and measurements)
//!
//! One process may hold ~20,000 fds here, so a million connections need ~51
//! workers for 20 ports: ports cannot be owned one per worker. Two ways:
//!
//! 1. SO_REUSEPORT, one listener per (worker, port): the kernel hashes each
//!    SYN's 4-tuple onto one listener. The spread is fixed by the hash, not
//!    by what each worker can still hold, and a worker at its cap can only
//!    stop taking connections by closing its listeners, which resets the
//!    connections already queued on them (unless `tcp_migrate_req`, a
//!    per-namespace sysctl we must not rely on, is set).
//! 2. Shared listeners (chosen): the parent opens each port once and the
//!    workers inherit the same sockets. There is one accept queue per port;
//!    every worker polls every listener and removes them from its epoll set
//!    while it is at its cap or pausing after EMFILE, so the others take the
//!    load and nothing queued is lost. To avoid waking every worker for
//!    every connection (thundering herd), listeners are registered with
//!    EPOLLEXCLUSIVE through a raw `epoll_ctl` on mio's epoll fd (mio itself
//!    has no flag for it); `--wake all` (hidden) keeps the plain herd
//!    registration for comparison. With EPOLLEXCLUSIVE the kernel wakes the
//!    first *idle* waiter, so under a steady trickle the spread is
//!    fill-first rather than round-robin; the per-worker cap then hands over
//!    to the next. A worker that stops accepting after being the one woken
//!    would leave a queued connection waiting for the next arrival, so an
//!    accepting worker also tries its listeners every 50 ms.
//!
//! Measured on this host (2 cores, loopback, shared with other load tests):
//!
//! * SO_REUSEPORT drop on close (a Python probe, 2 listeners on one port, 200
//!   connections queued, `tcp_migrate_req` = 0): closing one listener reset
//!   105 of them; the other listener held 95. Hash spread, and a full worker
//!   cannot step aside without losing what is queued: rejected.
//! * Shared listeners, `benches/serve.sh` (100,000 connections, 20 ports,
//!   client-timed connect + echo, CPU = server user+system time):
//!   - 6 workers (`--max-connections 100000`): EPOLLEXCLUSIVE 23,901 conn/s,
//!     1.93 s CPU; herd (`--wake all`) 21,617 conn/s, 1.71 s CPU: within
//!     the noise (an earlier run: herd 0.63x the rate, 1.23x the CPU).
//!     Spread at the end: min 16,665, max 16,667 (every worker at its cap).
//!   - 51 workers (the default plan for 1M): EPOLLEXCLUSIVE 25,826 conn/s,
//!     3.00 s CPU; herd 8,512 conn/s, 12.77 s CPU (4.3x; an earlier run
//!     4.8x). Spread with EPOLLEXCLUSIVE: min 87, max 17,643 (fill-first);
//!     herd: min 533, max 12,374. Neither is even; only the cap matters for
//!     capacity, and the herd's cost grows with the worker count, so
//!     EPOLLEXCLUSIVE it is.
//!   - The minimal C server with the same layout: 22,899 conn/s at 6
//!     processes, 24,540 at 51: c1m is at its rate.
pub mod args;
pub mod listen;
pub mod lost;
pub mod supervisor;
pub mod wire;
pub mod worker;

use crate::argv::MAX_PROCS;
use crate::util::thousands;

/// How a listener wakes the workers polling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Wake {
    /// EPOLLEXCLUSIVE: one (idle) worker per incoming connection.
    One,
    /// Every worker polling the listener (the thundering herd).
    All,
}

impl Wake {
    pub fn as_str(self) -> &'static str {
        match self {
            Wake::One => "one",
            Wake::All => "all",
        }
    }
}

/// The default `--max-connections`: what doctor's capacity estimate says
/// this host can hold as a server (fd limit x processes, fs.file-max,
/// memory...), capped at the C1M goal of one million. If the host cannot be
/// read, half of `fs.file-max` (both ends of a loopback run share it).
pub fn default_max_connections() -> u64 {
    const GOAL: u64 = 1_000_000;
    if let Ok(snap) = crate::tuning::snapshot() {
        let plan = crate::tuning::Plan::new(crate::tuning::Role::Server, GOAL);
        return crate::tuning::capacity::estimate(&snap, &plan)
            .max_connections
            .clamp(1, GOAL);
    }
    let file_max = crate::sys::sysctl::Sysctl::proc()
        .read_u64("fs.file-max")
        .unwrap_or(u64::MAX);
    GOAL.min(file_max / 2).max(1)
}

/// Output style of the parent. Here, not in `supervisor`, so that `args`
/// (which the supervisor imports) and the supervisor both use it without
/// importing each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One summed line per interval, failures and worker events as sentences.
    Human,
    /// The seed reactor-style progress line (`connections: N, sockfd:FD,
    /// time_used:MS`), printed by each worker every 1000 of its accepts.
    Seed,
}

/// How many workers and how many connections each may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Workers when all are running (elastic serve starts with one).
    pub workers: u32,
    /// The largest per-worker cap (see [`Plan::cap_of`]).
    pub cap: u64,
    /// Connections one worker can hold under its fd limit.
    pub usable_fds: u64,
    /// `--max-connections`: the caps of all workers add up to it exactly.
    pub max_connections: u64,
}

impl Plan {
    /// Worker `index`'s cap: its exact share of `--max-connections` (the
    /// first `max % workers` take one more), so that serve stops accepting
    /// at `--max-connections` itself, never up to `workers - 1` above it.
    pub fn cap_of(&self, index: u32) -> u64 {
        let w = u64::from(self.workers.max(1));
        let base = self.max_connections / w;
        let extra = u64::from(u64::from(index) < self.max_connections % w);
        (base + extra).max(1)
    }

    /// Where a running worker is "near its share" and elastic serve starts
    /// the next one: three quarters of its cap.
    pub fn grow_mark(&self, index: u32) -> u64 {
        let cap = self.cap_of(index);
        (cap - cap / 4).max(1)
    }
}

/// Plan the workers for `max_connections` given the per-process fd limit
/// `nofile` and the number of ports (each worker holds every listener).
/// `workers = None` means auto: the fewest processes that each stay under
/// their fd limit. More than [`MAX_PROCS`] workers is an error that says
/// why (never a count truncated to 32 bits, nor thousands of processes
/// forked by mistake).
pub fn plan(
    max_connections: u64,
    nofile: u64,
    ports: u16,
    workers: Option<u32>,
) -> Result<Plan, String> {
    use crate::sys::limits::{processes_for, sockets_per_process};
    let usable = sockets_per_process(nofile, ports as u64);
    let w = match workers {
        Some(n) => u64::from(n.max(1)),
        None => processes_for(max_connections, usable),
    };
    if w > u64::from(MAX_PROCS) {
        return Err(format!(
            "--max-connections {} needs {} worker processes of at most {} connections each (open-files limit {nofile}), more than {MAX_PROCS}: lower --max-connections or raise the open-files limit",
            thousands(max_connections),
            thousands(w),
            thousands(usable)
        ));
    }
    Ok(Plan {
        workers: w as u32,
        cap: max_connections.div_ceil(w).max(1),
        usable_fds: usable,
        max_connections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_plan_keeps_every_worker_under_its_fd_limit() {
        let plan = |m, n, p, w| plan(m, n, p, w).unwrap();
        let p = plan(1_000_000, 20_000, 20, None);
        assert_eq!(p.workers, 51);
        assert!(p.cap <= p.usable_fds);
        assert!(p.cap * p.workers as u64 >= 1_000_000);
        let p = plan(1000, 300, 20, None);
        assert_eq!(p.usable_fds, 300 - 20 - crate::sys::limits::FD_SLACK);
        assert_eq!(p.workers, 5);
        assert_eq!(p.cap, 200);
        let p = plan(100_000, 20_000, 20, None);
        assert_eq!(p.workers, 6);
        let p = plan(10, 20_000, 20, Some(3));
        assert_eq!((p.workers, p.cap), (3, 4));
    }

    #[test]
    fn the_worker_caps_add_up_to_max_connections_exactly() {
        // 10 over 3 workers: 4 + 3 + 3, not 4 + 4 + 4 (12 accepted).
        let p = plan(10, 20_000, 20, Some(3)).unwrap();
        let caps: Vec<u64> = (0..3).map(|i| p.cap_of(i)).collect();
        assert_eq!(caps, [4, 3, 3]);
        for (max, w) in [(1_000_000, None), (1_000, Some(7)), (5, Some(5))] {
            let p = plan(max, 20_000, 20, w).unwrap();
            let sum: u64 = (0..p.workers).map(|i| p.cap_of(i)).sum();
            assert_eq!(sum, max, "{p:?}");
            assert!((0..p.workers).all(|i| p.cap_of(i) <= p.cap));
        }
        // Fewer connections than workers: each still takes one.
        assert_eq!(plan(2, 20_000, 20, Some(4)).unwrap().cap_of(3), 1);
        // The next worker starts at three quarters of the running one's cap.
        let p = plan(1000, 20_000, 20, Some(1)).unwrap();
        assert_eq!(p.grow_mark(0), 750);
        assert_eq!(plan(1, 20_000, 20, Some(1)).unwrap().grow_mark(0), 1);
    }

    #[test]
    fn too_many_workers_is_an_error_not_a_truncated_count() {
        // 2^32 + 1 workers once became 1 (u32 truncation); 5,000 forked.
        for (max, nofile) in [(((1u64 << 32) + 1) * 19_916, 20_000), (5_000_000, 1_084)] {
            let e = plan(max, nofile, 20, None).unwrap_err();
            assert!(e.contains("more than 4096"), "{e}");
            assert!(e.contains("--max-connections"), "{e}");
        }
        assert_eq!(plan(4096 * 19_916, 20_000, 20, None).unwrap().workers, 4096);
    }
}
