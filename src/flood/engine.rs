//! The connect pipeline of one flood process: non-blocking connects over
//! mio with up to `window` in flight, optional pacing, each connection
//! bound to its path's source address (IP_BIND_ADDRESS_NO_PORT, so the
//! kernel picks the port at connect time per 4-tuple), its line
//! `Hello Server: client --> k\n` written and the echo checked byte by byte;
//! only then is it counted. Deadlines live in a FIFO queue (one timeout for
//! every connection, so deadlines are pushed in order and expire from the
//! front: no scan over all sockets). Failures never stop the run: each is
//! counted by class and mapped to the failure catalogue; a path that keeps
//! failing the same way is retired with the reason, a process-wide failure
//! (fd limit) stops new connects. Then the hold: the connections stay open,
//! optionally exchanging a line every interval to measure round trips, and
//! every connection the server closes or resets is counted.
use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::plan::{Path, Plan, Shard};
use super::stats::{
    FailureNote, Phase, Retired, ShardSummary, Sink, Snapshot, hist_pairs, new_hist,
};
use crate::catalogue::FailureId;
use crate::events::Counters;
use crate::sys::signals;

/// `IP_BIND_ADDRESS_NO_PORT` from linux/in.h (not exported by every libc).
const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;
const PREFIX: &[u8] = b"Hello Server: client --> ";
const MAX_MSG: usize = 48;

/// Consecutive failures of one class after which a path is given up.
fn retire_after(key: &str) -> u32 {
    match key {
        "EADDRNOTAVAIL" | "EAGAIN" | "ECONNREFUSED" | "ENETUNREACH" | "EHOSTUNREACH" => 8,
        _ => 64,
    }
}

/// The line connection `k` sends; returns its length in `buf`.
pub fn message(k: u64, buf: &mut [u8; MAX_MSG]) -> usize {
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut v = k;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut len = PREFIX.len();
    for i in (0..n).rev() {
        buf[len] = digits[i];
        len += 1;
    }
    buf[len] = b'\n';
    len + 1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Connecting,
    Sending,
    Awaiting,
    Open,
    MsgSending,
    MsgAwait,
}

impl St {
    fn verified(self) -> bool {
        matches!(self, St::Open | St::MsgSending | St::MsgAwait)
    }
}

struct Conn {
    stream: Option<TcpStream>,
    k: u64,
    path: u32,
    st: St,
    wr: u8,
    rd: u8,
    epoch: u32,
    since: Instant,
}

struct PathState {
    path: Path,
    consecutive: u32,
    last_key: String,
    established: u64,
    /// When a connection on this path was last verified.
    last_success: Option<Instant>,
    retired: bool,
}

struct Pending {
    failure: Option<FailureId>,
    call: &'static str,
    errno: Option<i32>,
    count: u64,
    detail: String,
}

/// Options that do not come from the plan.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Report seed-format lines for errors on single connections.
    pub seed_lines: bool,
}

/// The connections of a finished run, closed when this is dropped.
pub struct Held {
    _conns: Vec<Conn>,
}

/// One process's connect-and-hold run.
pub struct Engine<'s> {
    plan: Plan,
    shard: Shard,
    opts: EngineOptions,
    sink: &'s mut dyn Sink,
    poll: Poll,
    conns: Vec<Conn>,
    free: Vec<u32>,
    deadlines: VecDeque<(Instant, u32, u32)>,
    paths: Vec<PathState>,
    cursor: usize,
    live_paths: usize,
    next_k: u64,
    retry_k: Vec<u64>,
    in_flight: u64,
    stopped: Vec<String>,
    retired_idx: Vec<usize>,
    pending: BTreeMap<String, Pending>,
    counters: Counters,
    attempts: u64,
    last_fd: Option<i32>,
    phase: Phase,
    latency: Histogram<u64>,
    rtt: Histogram<u64>,
    s: ShardSummary,
    scratch: Vec<u8>,
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl<'s> Engine<'s> {
    pub fn new(
        plan: Plan,
        shard: Shard,
        opts: EngineOptions,
        sink: &'s mut dyn Sink,
    ) -> std::io::Result<Engine<'s>> {
        let poll = Poll::new().map_err(|e| {
            std::io::Error::new(e.kind(), format!("creating the epoll instance: {e}"))
        })?;
        let paths: Vec<PathState> = shard
            .paths
            .iter()
            .map(|p| PathState {
                path: *p,
                consecutive: 0,
                last_key: String::new(),
                established: 0,
                last_success: None,
                retired: false,
            })
            .collect();
        let live_paths = paths.len();
        let s = ShardSummary {
            target: shard.connections,
            ..Default::default()
        };
        Ok(Engine {
            next_k: shard.first_k,
            plan,
            shard,
            opts,
            sink,
            poll,
            conns: Vec::new(),
            free: Vec::new(),
            deadlines: VecDeque::new(),
            paths,
            cursor: 0,
            live_paths,
            retry_k: Vec::new(),
            in_flight: 0,
            stopped: Vec::new(),
            retired_idx: Vec::new(),
            pending: BTreeMap::new(),
            counters: Counters::default(),
            attempts: 0,
            last_fd: None,
            phase: Phase::Connect,
            latency: new_hist(),
            rtt: new_hist(),
            s,
            scratch: vec![0u8; 4096],
        })
    }

    fn snapshot(&self) -> Snapshot {
        let mut c = self.counters.clone();
        c.rss_bytes = crate::sys::procfs::rss_bytes();
        Snapshot {
            counters: c,
            in_flight: self.in_flight,
            attempts: self.attempts,
            last_fd: self.last_fd,
            phase: self.phase,
            target: self.shard.connections,
        }
    }

    /// Run to the end: connect phase, hold, summary. The connections are
    /// handed back still open in [`Held`]: closing tens of thousands of
    /// sockets takes seconds, so the caller reports the summary first and
    /// drops them after (a parent waiting for the summary after SIGTERM must
    /// not wait for the close).
    pub fn run(mut self) -> (ShardSummary, Held) {
        let start = Instant::now();
        let mut events = Events::with_capacity(1024);
        let mut next_tick = start + Duration::from_secs(1);
        let target = self.shard.connections;
        let mut hold_start: Option<Instant> = None;
        // Start of the current message round; each round spreads one line
        // per connection evenly over the interval (no self-made bursts).
        let mut next_msg: Option<Instant> = None;
        let mut msg_cursor = 0usize;
        let hold = self.plan.hold;
        let timeout = self.plan.connect_timeout;
        'run: loop {
            let now = Instant::now();
            if signals::stop_requested() {
                if self.phase == Phase::Connect && self.counters.opened_total < target {
                    self.s.interrupted = true;
                }
                break;
            }
            // Open new connections while the window, the pacing and the
            // remaining target allow it.
            let mut rate_wait: Option<Instant> = None;
            if self.phase == Phase::Connect && self.stopped.is_empty() {
                let mut budget = self.shard.window;
                while budget > 0
                    && (self.in_flight as usize) < self.shard.window
                    && self.counters.opened_total + self.in_flight < target
                    && self.live_paths > 0
                    && self.stopped.is_empty()
                {
                    if let Some(rate) = self.shard.rate {
                        let allowed = rate * now.duration_since(start).as_secs_f64() + 1.0;
                        if self.attempts as f64 >= allowed {
                            let at = start
                                + Duration::from_secs_f64((self.attempts as f64) / rate.max(1e-9));
                            rate_wait = Some(at);
                            break;
                        }
                    }
                    self.open_one(now, timeout);
                    budget -= 1;
                }
            }
            self.expire(now);
            // End of the connect phase.
            if self.phase == Phase::Connect
                && (self.counters.opened_total >= target
                    || (self.in_flight == 0 && (self.live_paths == 0 || !self.stopped.is_empty())))
            {
                self.s.connect_s = now.duration_since(start).as_secs_f64();
                self.phase = Phase::Hold;
                hold_start = Some(now);
                self.flush_failures();
                self.sink.progress(&self.snapshot(), false);
                if self.counters.connections == 0 {
                    break 'run;
                }
                next_msg = self.plan.message_interval.map(|_| now);
                msg_cursor = 0;
            }
            if let Some(hs) = hold_start {
                if let Some(h) = hold
                    && now >= hs + h
                {
                    break;
                }
                if self.counters.connections == 0 {
                    break; // everything was lost: nothing left to hold
                }
                if let (Some(round), Some(iv)) = (next_msg, self.plan.message_interval)
                    && now >= round
                {
                    let len = self.conns.len();
                    let frac = now.duration_since(round).as_secs_f64() / iv.as_secs_f64();
                    let due = if frac >= 1.0 {
                        len
                    } else {
                        ((frac * len as f64) as usize).min(len)
                    };
                    if due > msg_cursor {
                        self.send_messages(msg_cursor, due, now);
                        msg_cursor = due;
                    }
                    if now >= round + iv {
                        next_msg = Some(round + iv);
                        msg_cursor = 0;
                    }
                }
            }
            if now >= next_tick {
                self.tick();
                next_tick += Duration::from_secs(1);
                if next_tick < now {
                    next_tick = now + Duration::from_secs(1);
                }
            }
            // Sleep until the next thing to do.
            let mut wake = next_tick.min(now + Duration::from_millis(100));
            if let Some(&(d, _, _)) = self.deadlines.front() {
                wake = wake.min(d);
            }
            if let Some(at) = rate_wait {
                wake = wake.min(at);
            }
            if next_msg.is_some() {
                wake = wake.min(now + Duration::from_millis(5));
            }
            if let (Some(hs), Some(h)) = (hold_start, hold) {
                wake = wake.min(hs + h);
            }
            let can_open = self.phase == Phase::Connect
                && rate_wait.is_none()
                && self.stopped.is_empty()
                && self.live_paths > 0
                && (self.in_flight as usize) < self.shard.window
                && self.counters.opened_total + self.in_flight < target;
            let wait = if can_open {
                Duration::ZERO
            } else {
                wake.saturating_duration_since(now)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                self.stopped.push(format!("epoll_wait failed: {e}"));
                break;
            }
            let now = Instant::now();
            for ev in events.iter() {
                let slot = ev.token().0 as u32;
                self.on_event(
                    slot,
                    ev.is_readable() || ev.is_read_closed(),
                    ev.is_writable(),
                    ev.is_error(),
                    now,
                );
            }
        }
        let end = Instant::now();
        if self.phase == Phase::Connect {
            self.s.connect_s = end.duration_since(start).as_secs_f64();
        }
        if let Some(hs) = hold_start {
            self.s.hold_s = end.duration_since(hs).as_secs_f64();
        }
        self.phase = Phase::Done;
        self.tick();
        self.s.elapsed_s = end.duration_since(start).as_secs_f64();
        self.s.verified = self.counters.opened_total;
        self.s.open = self.counters.connections;
        self.s.attempts = self.attempts;
        self.s.failed = self.counters.failed_total;
        self.s.closed = self.counters.closed_total;
        self.s.errors = self.counters.errors.clone();
        self.s.failures = self.counters.failures.clone();
        self.s.bytes_in = self.counters.bytes_in;
        self.s.bytes_out = self.counters.bytes_out;
        self.s.stops = self.stopped.clone();
        // Report what each retired path carried in the end (connections
        // in flight when it was given up may have been verified since).
        for (r, &pi) in self.s.retired.iter_mut().zip(&self.retired_idx) {
            r.established = self.paths[pi].established;
        }
        self.s.connect_latency_us = hist_pairs(&self.latency);
        self.s.rtt_us = hist_pairs(&self.rtt);
        let held = Held {
            _conns: std::mem::take(&mut self.conns),
        };
        (self.s, held)
    }

    fn tick(&mut self) {
        self.flush_failures();
        let snap = self.snapshot();
        self.sink.progress(&snap, true);
    }

    /// Hand the failures counted since the last flush to the sink, one
    /// note per class.
    fn flush_failures(&mut self) {
        for (key, p) in std::mem::take(&mut self.pending) {
            self.sink.failure(&FailureNote {
                key,
                failure: p.failure,
                call: p.call.to_string(),
                errno: p.errno,
                count: p.count,
                detail: p.detail,
            });
        }
    }

    fn next_path(&mut self) -> Option<usize> {
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

    fn alloc(&mut self, conn: Conn) -> u32 {
        if let Some(i) = self.free.pop() {
            let epoch = self.conns[i as usize].epoch.wrapping_add(1);
            self.conns[i as usize] = Conn { epoch, ..conn };
            i
        } else {
            self.conns.push(conn);
            (self.conns.len() - 1) as u32
        }
    }

    fn open_one(&mut self, now: Instant, timeout: Duration) {
        let Some(pi) = self.next_path() else {
            return;
        };
        let path = self.paths[pi].path;
        let k = self.retry_k.pop().unwrap_or_else(|| {
            let k = self.next_k;
            self.next_k += 1;
            k
        });
        self.attempts += 1;
        match connect_nonblocking(&path) {
            Ok(stream) => {
                let slot = self.alloc(Conn {
                    stream: Some(stream),
                    k,
                    path: pi as u32,
                    st: St::Connecting,
                    wr: 0,
                    rd: 0,
                    epoch: 0,
                    since: now,
                });
                let epoch = self.conns[slot as usize].epoch;
                let reg = {
                    let c = &mut self.conns[slot as usize];
                    let stream = c.stream.as_mut().map(|s| s as &mut TcpStream);
                    match stream {
                        Some(s) => self.poll.registry().register(
                            s,
                            Token(slot as usize),
                            Interest::READABLE | Interest::WRITABLE,
                        ),
                        None => Ok(()),
                    }
                };
                if let Err(e) = reg {
                    // epoll_ctl ADD failed (ENOSPC: max_user_watches, ENOMEM)
                    self.conns[slot as usize].stream = None;
                    self.free.push(slot);
                    self.retry_k.push(k);
                    let errno = errno_of(&e);
                    self.count_failure(
                        errno_key(errno),
                        "epoll_ctl",
                        Some(errno),
                        &format!("epoll_ctl(ADD) failed: {e}"),
                    );
                    self.counters.failed_total += 1;
                    self.stop(format!(
                        "epoll_ctl(ADD) failed with {} at {} connections: {}",
                        crate::util::errno_name(errno),
                        crate::util::thousands(self.counters.opened_total),
                        FailureId::from_errno("epoll_ctl", errno)
                            .map(|f| f.info().fix)
                            .unwrap_or("check memory and fs.epoll.max_user_watches")
                    ));
                    return;
                }
                self.in_flight += 1;
                self.deadlines.push_back((now + timeout, slot, epoch));
            }
            Err((call, errno)) => {
                self.retry_k.push(k);
                self.counters.failed_total += 1;
                let key = errno_key(errno);
                let detail = format!("{call}() on {path}: {}", crate::util::errno_text(errno));
                self.count_failure(key, call, Some(errno), &detail);
                if call == "socket"
                    || matches!(
                        errno,
                        libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
                    )
                {
                    let fix = FailureId::from_errno(call, errno)
                        .map(|f| super::stats::fix_for(Some(f), key))
                        .unwrap_or_default();
                    let limit =
                        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                            .map(|(s, _)| format!(" (RLIMIT_NOFILE {s})"))
                            .unwrap_or_default();
                    self.stop(format!(
                        "{call}() failed with {} ({}) after {} verified connections{}; this process cannot open more; fix: {fix}",
                        crate::util::errno_name(errno),
                        crate::util::errno_text(errno),
                        crate::util::thousands(self.counters.opened_total),
                        if errno == libc::EMFILE { limit } else { String::new() },
                    ));
                } else {
                    self.path_failed(pi, key);
                }
            }
        }
    }

    fn stop(&mut self, why: String) {
        if !self.stopped.contains(&why) {
            self.stopped.push(why);
        }
    }

    fn count_failure(&mut self, key: &str, call: &'static str, errno: Option<i32>, detail: &str) {
        let failure = failure_of(key, call, errno);
        *self.counters.errors.entry(key.to_string()).or_default() += 1;
        if let Some(f) = failure {
            *self.counters.failures.entry(f).or_default() += 1;
        }
        let p = self.pending.entry(key.to_string()).or_insert(Pending {
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

    fn path_failed(&mut self, pi: usize, key: &str) {
        let p = &mut self.paths[pi];
        if p.last_key == key {
            p.consecutive += 1;
        } else {
            p.last_key = key.to_string();
            p.consecutive = 1;
        }
        // Timeouts on a path that works are congestion (a full accept
        // queue answers SYNs late), not a dead path: give such a path up
        // only when nothing succeeded on it for a while.
        let slow = matches!(key, "ETIMEDOUT" | "ECHO_TIMEOUT");
        let quiet = p
            .last_success
            .is_none_or(|t| t.elapsed() >= self.plan.connect_timeout * 4 + Duration::from_secs(1));
        if !p.retired && p.consecutive >= retire_after(key) && (!slow || quiet) {
            p.retired = true;
            self.live_paths -= 1;
            let failure = failure_of(key, "connect", crate::util::errno_from_name(key));
            let r = Retired {
                path: p.path.to_string(),
                key: key.to_string(),
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
                super::stats::fix_for(failure, key)
            );
            if let Some(pend) = self.pending.get_mut(key) {
                pend.detail = detail;
            }
            self.s.retired.push(r);
            self.retired_idx.push(pi);
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(d, slot, epoch)) = self.deadlines.front() {
            if d > now {
                break;
            }
            self.deadlines.pop_front();
            let c = &self.conns[slot as usize];
            if c.epoch != epoch || c.stream.is_none() || c.st.verified() {
                continue;
            }
            let key = if c.st == St::Connecting {
                "ETIMEDOUT"
            } else {
                "ECHO_TIMEOUT"
            };
            let secs = self.plan.connect_timeout.as_secs_f64();
            let detail = if key == "ETIMEDOUT" {
                format!("connect() not answered within {secs}s (--connect-timeout)")
            } else {
                format!(
                    "connected, but the echo did not come back within {secs}s (--connect-timeout)"
                )
            };
            self.fail_attempt(
                slot,
                key,
                if key == "ETIMEDOUT" {
                    "connect"
                } else {
                    "recv"
                },
                Some(libc::ETIMEDOUT),
                &detail,
            );
        }
    }

    /// An attempt that was not verified ends: close it, count it, and let
    /// its number be used again.
    fn fail_attempt(
        &mut self,
        slot: u32,
        key: &str,
        call: &'static str,
        errno: Option<i32>,
        detail: &str,
    ) {
        let c = &mut self.conns[slot as usize];
        let Some(stream) = c.stream.take() else {
            return;
        };
        drop(stream);
        let (k, pi) = (c.k, c.path as usize);
        self.free.push(slot);
        self.retry_k.push(k);
        self.in_flight -= 1;
        self.counters.failed_total += 1;
        self.count_failure(key, call, errno, detail);
        self.path_failed(pi, key);
    }

    /// A send or recv failed: a verified connection is lost, an attempt
    /// fails.
    fn io_failed(&mut self, slot: u32, verified: bool, call: &'static str, e: &std::io::Error) {
        let errno = errno_of(e);
        if verified {
            self.lose(slot, errno_key(errno), Some(errno));
        } else {
            self.fail_attempt(
                slot,
                errno_key(errno),
                call,
                Some(errno),
                &format!("{call}: {e}"),
            );
        }
    }

    /// A verified connection ends (the server closed or reset it).
    fn lose(&mut self, slot: u32, key: &str, errno: Option<i32>) {
        let c = &mut self.conns[slot as usize];
        let Some(stream) = c.stream.take() else {
            return;
        };
        let fd = stream.as_raw_fd();
        drop(stream);
        self.free.push(slot);
        self.counters.connections -= 1;
        self.counters.closed_total += 1;
        let reset = key != "EOF";
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

    fn on_event(&mut self, slot: u32, readable: bool, writable: bool, error: bool, now: Instant) {
        let Some(c) = self.conns.get(slot as usize) else {
            return;
        };
        if c.stream.is_none() {
            return;
        }
        if c.st == St::Connecting {
            if !(writable || readable || error) {
                return;
            }
            let stream = c.stream.as_ref();
            let soerr = stream.map(|s| s.take_error());
            match soerr {
                Some(Ok(Some(e))) | Some(Err(e)) => {
                    let errno = errno_of(&e);
                    let detail = format!("connect() to {}: {e}", self.paths[c.path as usize].path);
                    self.fail_attempt(slot, errno_key(errno), "connect", Some(errno), &detail);
                    return;
                }
                _ => {}
            }
            if !writable {
                // A connecting socket becomes writable when the handshake
                // is done; an error shows in SO_ERROR above. Anything else
                // is a spurious wake-up: wait for the next event.
                if error {
                    let detail = "connect() failed without an error code".to_string();
                    self.fail_attempt(
                        slot,
                        "ECONNABORTED",
                        "connect",
                        Some(libc::ECONNABORTED),
                        &detail,
                    );
                }
                return;
            }
            let c = &mut self.conns[slot as usize];
            let us = now.duration_since(c.since).as_micros() as u64;
            self.latency.saturating_record(us.max(1));
            c.st = St::Sending;
            c.wr = 0;
            c.rd = 0;
        }
        let st = self.conns[slot as usize].st;
        if matches!(st, St::Sending | St::MsgSending) {
            self.write_msg(slot);
        }
        if readable || error {
            self.read(slot, now);
        }
    }

    fn write_msg(&mut self, slot: u32) {
        let mut buf = [0u8; MAX_MSG];
        let c = &mut self.conns[slot as usize];
        let len = message(c.k, &mut buf);
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        while (c.wr as usize) < len {
            match stream.write(&buf[c.wr as usize..len]) {
                Ok(0) => break,
                Ok(n) => {
                    c.wr += n as u8;
                    self.counters.bytes_out += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    let verified = c.st.verified();
                    self.io_failed(slot, verified, "send", &e);
                    return;
                }
            }
        }
        if c.wr as usize == len {
            c.st = if c.st == St::Sending {
                St::Awaiting
            } else {
                St::MsgAwait
            };
        }
    }

    fn read(&mut self, slot: u32, now: Instant) {
        let mut expected = [0u8; MAX_MSG];
        loop {
            let c = &mut self.conns[slot as usize];
            let Some(stream) = c.stream.as_mut() else {
                return;
            };
            let n = match stream.read(&mut self.scratch) {
                Ok(0) => {
                    if c.st.verified() {
                        self.lose(slot, "EOF", None);
                    } else {
                        self.fail_attempt(
                            slot,
                            "EOF_BEFORE_ECHO",
                            "recv",
                            None,
                            "the server closed the connection before echoing",
                        );
                    }
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    let verified = c.st.verified();
                    self.io_failed(slot, verified, "recv", &e);
                    return;
                }
            };
            self.counters.bytes_in += n as u64;
            if !matches!(
                c.st,
                St::Awaiting | St::MsgAwait | St::Sending | St::MsgSending
            ) {
                continue; // unsolicited bytes on an idle connection: drained
            }
            let len = message(c.k, &mut expected);
            let from = c.rd as usize;
            let ok = from + n <= len && self.scratch[..n] == expected[from..from + n];
            if !ok {
                if c.st.verified() {
                    // a wrong hold echo: count it, keep the connection
                    *self
                        .counters
                        .errors
                        .entry("ECHO_MISMATCH".into())
                        .or_default() += 1;
                    c.st = St::Open;
                    continue;
                }
                let detail = format!(
                    "echo of '{}' came back different",
                    String::from_utf8_lossy(&expected[..len - 1])
                );
                self.fail_attempt(slot, "ECHO_MISMATCH", "recv", None, &detail);
                return;
            }
            c.rd += n as u8;
            if c.rd as usize == len {
                let fd = stream.as_raw_fd();
                let was = c.st;
                c.st = St::Open;
                c.rd = 0;
                c.wr = 0;
                if was == St::MsgAwait || was == St::MsgSending {
                    let us = now.duration_since(c.since).as_micros() as u64;
                    self.rtt.saturating_record(us.max(1));
                    self.s.messages_answered += 1;
                } else {
                    let pi = c.path as usize;
                    self.in_flight -= 1;
                    self.counters.connections += 1;
                    self.counters.opened_total += 1;
                    self.last_fd = Some(fd);
                    let p = &mut self.paths[pi];
                    p.established += 1;
                    p.last_success = Some(now);
                    p.consecutive = 0;
                    p.last_key.clear();
                    if self.counters.opened_total.is_multiple_of(1000) {
                        let snap = self.snapshot();
                        self.sink.progress(&snap, false);
                    }
                }
            }
        }
    }

    /// Send the line on the open connections of slots `from..to`; one
    /// still waiting for its previous echo is skipped this round.
    fn send_messages(&mut self, from: usize, to: usize, now: Instant) {
        for slot in from as u32..to as u32 {
            let c = &mut self.conns[slot as usize];
            if c.stream.is_none() || c.st != St::Open {
                continue;
            }
            c.st = St::MsgSending;
            c.wr = 0;
            c.rd = 0;
            c.since = now;
            self.s.messages_sent += 1;
            self.write_msg(slot);
        }
    }
}

/// The catalogue id of a failure class: flood's own keys by name, errno
/// keys through `FailureId::from_errno` for the call that failed.
fn failure_of(key: &str, call: &str, errno: Option<i32>) -> Option<FailureId> {
    match key {
        "ETIMEDOUT" | "ECHO_TIMEOUT" => Some(FailureId::ConnectTimeout),
        "EOF" | "EOF_BEFORE_ECHO" => Some(FailureId::PeerDisconnect),
        "ECHO_MISMATCH" => None,
        _ => errno.and_then(|e| FailureId::from_errno(call, e)),
    }
}

fn errno_key(errno: i32) -> &'static str {
    // errno names are a small closed set; leak-free static names for the
    // common ones, a generic name otherwise.
    match errno {
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EAGAIN => "EAGAIN",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNRESET => "ECONNRESET",
        libc::EPIPE => "EPIPE",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOMEM => "ENOMEM",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ENOSPC => "ENOSPC",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EINVAL => "EINVAL",
        _ => "EOTHER",
    }
}

/// socket(), optional bind to the path's source with
/// IP_BIND_ADDRESS_NO_PORT, and a non-blocking connect(). Errors name the
/// call and carry the errno.
fn connect_nonblocking(path: &Path) -> Result<TcpStream, (&'static str, i32)> {
    let domain = match path.dest {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain syscalls on a descriptor we own; it is closed on every
    // error path by the OwnedFd / TcpStream that wraps it.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err((
            "socket",
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        ));
    }
    // SAFETY: fd is a fresh socket owned by nobody else.
    let sock = unsafe { socket2::Socket::from_raw_fd(fd) };
    if let Some(src) = path.source {
        if matches!(src, IpAddr::V4(_)) {
            let one: libc::c_int = 1;
            // SAFETY: valid fd and a c_int option value.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IP,
                    IP_BIND_ADDRESS_NO_PORT,
                    &one as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        if let Err(e) = sock.bind(&SocketAddr::new(src, 0).into()) {
            return Err(("bind", errno_of(&e)));
        }
    }
    match sock.connect(&path.dest.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(("connect", errno_of(&e))),
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(sock)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_the_seed_line() {
        let mut b = [0u8; MAX_MSG];
        let n = message(0, &mut b);
        assert_eq!(&b[..n], b"Hello Server: client --> 0\n");
        let n = message(290998, &mut b);
        assert_eq!(&b[..n], b"Hello Server: client --> 290998\n");
        let n = message(u64::MAX, &mut b);
        assert_eq!(
            &b[..n],
            format!("Hello Server: client --> {}\n", u64::MAX).as_bytes()
        );
    }
}
