//! The engine's bookkeeping of what went wrong: failures counted by
//! [`FailKey`] and mapped to the catalogue, handed to the sink once per
//! tick as one note per key; paths given up after repeated failures of one
//! kind; process-wide stops; and the end of an attempt or of a verified
//! connection. None of this runs for a connection that succeeds.
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::Engine;
use super::failure::FailKey;
use crate::catalogue::FailureId;
use crate::flood::plan::Path;
use crate::flood::stats::{FailureNote, Phase, Retired, fix_for};

/// One path and how it has fared.
pub(super) struct PathState {
    pub path: Path,
    consecutive: u32,
    last_key: Option<FailKey>,
    pub established: u64,
    /// When a connection on this path was last verified.
    last_success: Option<Instant>,
    retired: bool,
}

impl PathState {
    pub fn new(path: Path) -> PathState {
        PathState {
            path,
            consecutive: 0,
            last_key: None,
            established: 0,
            last_success: None,
            retired: false,
        }
    }

    /// A connection on this path was verified at `now`.
    pub fn succeeded(&mut self, now: Instant) {
        self.established += 1;
        self.last_success = Some(now);
        self.consecutive = 0;
        self.last_key = None;
    }
}

/// Failures of one key since the last tick.
pub(super) struct Pending {
    failure: Option<FailureId>,
    call: &'static str,
    errno: Option<i32>,
    count: u64,
    detail: String,
}

impl Engine<'_> {
    /// Hand the failures counted since the last flush to the sink, one
    /// note per key, in the order of the key names.
    pub(super) fn flush_failures(&mut self) {
        for (key, p) in std::mem::take(&mut self.pending) {
            self.sink.failure(&FailureNote {
                key: key.as_str().to_string(),
                failure: p.failure,
                call: p.call.to_string(),
                errno: p.errno,
                count: p.count,
                detail: p.detail,
            });
        }
    }

    /// The next path in turn that is still in use.
    pub(super) fn next_path(&mut self) -> Option<usize> {
        let n = self.paths.len();
        for _ in 0..n {
            let i = self.cursor;
            self.cursor = (self.cursor + 1) % n;
            if !self.paths[i].retired {
                return Some(i);
            }
        }
        None
    }

    /// Stop opening connections (process-wide), saying why once.
    pub(super) fn stop(&mut self, why: String) {
        if !self.stopped.contains(&why) {
            self.stopped.push(why);
        }
    }

    pub(super) fn count_failure(
        &mut self,
        key: FailKey,
        call: &'static str,
        errno: Option<i32>,
        detail: &str,
    ) {
        let failure = key.failure(call, errno);
        self.count_error(key);
        if let Some(f) = failure {
            *self.counters.failures.entry(f).or_default() += 1;
        }
        let p = self.pending.entry(key).or_insert(Pending {
            failure,
            call,
            errno,
            count: 0,
            detail: String::new(),
        });
        p.count += 1;
        if p.detail.is_empty() || p.count == 1 {
            p.detail = detail.to_string();
        }
    }

    /// One more of `key` in the counters' error classes.
    pub(super) fn count_error(&mut self, key: FailKey) {
        match self.counters.errors.get_mut(key.as_str()) {
            Some(n) => *n += 1,
            None => {
                self.counters.errors.insert(key.as_str().to_string(), 1);
            }
        }
    }

    /// A failure on path `pi`: give the path up after enough consecutive
    /// failures of one key.
    pub(super) fn path_failed(&mut self, pi: usize, key: FailKey) {
        if self.phase == Phase::Hold && self.reconnect.is_some() {
            // Reconnects back off on their own; a path is not given up
            // while its server restarts.
            return;
        }
        let give_up_after = self.timing.connect_timeout * 4 + Duration::from_secs(1);
        let p = &mut self.paths[pi];
        if p.last_key == Some(key) {
            p.consecutive += 1;
        } else {
            p.last_key = Some(key);
            p.consecutive = 1;
        }
        // Timeouts on a path that works are congestion (a full accept
        // queue answers SYNs late), not a dead path: give such a path up
        // only when nothing succeeded on it for a while.
        let quiet = p.last_success.is_none_or(|t| t.elapsed() >= give_up_after);
        if p.retired || p.consecutive < key.retire_after() || (key.is_timeout() && !quiet) {
            return;
        }
        p.retired = true;
        self.live_paths -= 1;
        let failure = key.failure("connect", key.errno());
        let r = Retired {
            path: p.path.to_string(),
            key: key.as_str().to_string(),
            failure,
            established: p.established,
            consecutive: p.consecutive,
        };
        let detail = format!(
            "stopped using {} after {} consecutive {} ({} verified on it so far, {} path(s) left); fix: {}",
            r.path,
            r.consecutive,
            key,
            r.established,
            self.live_paths,
            fix_for(failure, key.as_str())
        );
        if let Some(pend) = self.pending.get_mut(&key) {
            // What the server said matters more than the path's fate.
            pend.detail = match key {
                FailKey::Protocol(_) => format!("{}; {detail}", pend.detail),
                _ => detail,
            };
        }
        self.s.retired.push(r);
        self.retired_idx.push(pi);
    }

    /// An attempt that was not verified ends: close it, count it, and let
    /// its number be used again.
    pub(super) fn fail_attempt(
        &mut self,
        slot: u32,
        key: FailKey,
        call: &'static str,
        errno: Option<i32>,
        detail: &str,
    ) {
        let c = &mut self.conns[slot as usize];
        let Some(stream) = c.stream.take() else {
            return;
        };
        drop(stream);
        let (k, pi, epoch) = (c.k, c.path as usize, c.epoch);
        self.free.push(slot);
        self.retry_k.push(k);
        self.in_flight -= 1;
        if let Some(r) = self.reconnect.as_mut() {
            r.failed(Instant::now(), slot, epoch);
        }
        self.counters.failed_total += 1;
        self.count_failure(key, call, errno, detail);
        self.path_failed(pi, key);
    }

    /// A send or recv failed: a verified connection is lost, an attempt
    /// fails.
    pub(super) fn io_failed(&mut self, slot: u32, call: &'static str, e: &std::io::Error) {
        let errno = super::failure::errno_of(e);
        let key = FailKey::from_errno(errno);
        if self.conns[slot as usize].st.verified() {
            self.lose(slot, key, Some(errno));
        } else {
            self.fail_attempt(slot, key, call, Some(errno), &format!("{call}: {e}"));
        }
    }

    /// A verified connection ends (the server closed or reset it).
    pub(super) fn lose(&mut self, slot: u32, key: FailKey, errno: Option<i32>) {
        let c = &mut self.conns[slot as usize];
        let Some(stream) = c.stream.take() else {
            return;
        };
        let fd = stream.as_raw_fd();
        drop(stream);
        self.free.push(slot);
        self.counters.connections -= 1;
        if self.phase == Phase::Hold
            && let Some(r) = self.reconnect.as_mut()
        {
            r.lost(Instant::now());
        }
        self.counters.closed_total += 1;
        let reset = key != FailKey::Eof;
        if reset {
            self.s.lost_resets += 1;
        } else {
            self.s.lost_eof += 1;
        }
        if self.phase == Phase::Hold {
            if reset {
                self.s.hold_resets += 1;
            } else {
                self.s.hold_closed += 1;
            }
        }
        if self.opts.seed_lines {
            let line = match errno {
                Some(e) => format!(" Error clientfd:{fd}, errno:{e}"),
                None => format!(" Disconnect clientfd:{fd}"),
            };
            self.sink.conn_line(&line);
        }
        let detail = match errno {
            Some(e) => format!(
                "a verified connection failed: {}",
                crate::util::errno_text(e)
            ),
            None => "the server closed a verified connection (EOF)".to_string(),
        };
        self.count_failure(key, "recv", errno, &detail);
    }
}
