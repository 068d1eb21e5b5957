//! The connect pipeline of one flood process: non-blocking connects over
//! mio with up to `window` in flight, optional pacing, each connection
//! bound to its path's source address, its line written and the echo
//! checked; only then is it counted. Then the hold: the connections stay
//! open, optionally exchanging a line every interval to measure round
//! trips, and every connection the server closes or resets is counted.
//! When the hold's time is up, the lines still out get up to [`DRAIN`] to
//! come back (no new one is sent), so that a line never answered is a lost
//! line, not one cut off in flight. SIGUSR1 ends the connect phase early
//! (`sys::signals::install_ramp_stop`): the lab's stop at the host's
//! ceiling.
//!
//! The parts:
//! - this file: the loop (admit new connects, end the connect phase, hold,
//!   sleep until the next thing to do) and the summary;
//! - [`conn`]: one connection's state machine and its socket I/O;
//! - [`speak`]: the protocols other than echo (`flood::proto`) on that
//!   machine;
//! - [`dispatch`]: readiness events, deadlines and new connects, wired
//!   from the state machine to the counters;
//! - [`account`]: failures counted by [`FailKey`], paths given up, stops;
//! - [`failure`]: the failure keys;
//! - [`socket`]: socket setup through socket2 and nix.
//!
//! Deadlines live in a FIFO queue (one timeout for every connection, so
//! deadlines are pushed in order and expire from the front: no scan over
//! all sockets). Failures never stop the run: each is counted by class and
//! mapped to the failure catalogue; a path that keeps failing the same way
//! is retired with the reason, a process-wide failure (fd limit) stops new
//! connects.
mod account;
mod conn;
mod dispatch;
mod failure;
mod reconnect;
mod socket;
mod speak;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::{Events, Poll};

pub use conn::{MAX_MSG, message};
pub use failure::FailKey;
pub use reconnect::{Backoff, ReconnectSummary, parse_backoff};

use super::plan::{Plan, Shard};
use super::stats::{Phase, ShardSummary, Sink, Snapshot, hist_pairs, new_hist};
use crate::events::Counters;
use crate::metrics::Buckets;
use crate::sys::signals;
use account::{PathState, Pending};
use conn::Conn;

/// What the engine takes from the whole run's [`Plan`]: its timing. The
/// counts, window, rate and paths come from the [`Shard`] alone (this
/// process's share), so a total cannot be used by mistake.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub connect_timeout: Duration,
    /// `None` holds until a signal.
    pub hold: Option<Duration>,
    pub message_interval: Option<Duration>,
}

impl Timing {
    pub fn of(plan: &Plan) -> Timing {
        Timing {
            connect_timeout: plan.connect_timeout,
            hold: plan.hold,
            message_interval: plan.message_interval,
        }
    }
}

/// Options that do not come from the plan.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Report seed-format lines for errors on single connections.
    pub seed_lines: bool,
    /// `--reconnect`: replace lost connections during the hold, with
    /// this backoff.
    pub reconnect: Option<Backoff>,
    /// What to speak on each connection (echo by default).
    pub proto: crate::flood::proto::Proto,
    /// `--fast-open`: connect with TCP_FASTOPEN_CONNECT, so that the first
    /// write (the line) goes in the SYN once the server's cookie is known.
    pub fast_open: bool,
    /// TCP_DEFER_ACCEPT on each socket: the handshake's last ACK rides on
    /// the first message (see `socket::connect_nonblocking`).
    pub ack_with_data: bool,
    /// Put the latency histograms' metric buckets in each interval
    /// snapshot (for `--metrics`): a pass over both histograms a second.
    pub latency_buckets: bool,
    /// A worker of a multi-process flood: once connected, wait for the
    /// parent's SIGUSR2 (every worker has connected) before the hold's
    /// time and lines begin, at most [`HOLD_GO_MAX`].
    pub hold_together: bool,
}

/// How long a worker waits for the others before it begins its hold
/// anyway (a parent that never says so must not keep it forever).
pub const HOLD_GO_MAX: Duration = Duration::from_secs(300);

/// How long the end of the hold waits for the hold messages still out.
pub const DRAIN: Duration = Duration::from_secs(2);

/// Why connecting stopped on SIGUSR1 (one text for every process, so that
/// merged summaries say it once).
pub const RAMP_STOP_TEXT: &str = "stopped connecting on SIGUSR1 (the lab sends it when its ramp reaches the host's ceiling); holding what was verified";

/// The connections of a finished run, closed when this is dropped.
pub struct Held {
    _conns: Vec<Conn>,
}

/// One process's connect-and-hold run.
pub struct Engine<'s> {
    timing: Timing,
    shard: Shard,
    opts: EngineOptions,
    sink: &'s mut dyn Sink,
    poll: Poll,
    conns: Vec<Conn>,
    free: Vec<u32>,
    /// (deadline, slot, epoch), in deadline order.
    deadlines: VecDeque<(Instant, u32, u32)>,
    paths: Vec<PathState>,
    cursor: usize,
    live_paths: usize,
    next_k: u64,
    retry_k: Vec<u64>,
    in_flight: u64,
    stopped: Vec<String>,
    retired_idx: Vec<usize>,
    pending: BTreeMap<FailKey, Pending>,
    counters: Counters,
    attempts: u64,
    last_fd: Option<i32>,
    phase: Phase,
    latency: Histogram<u64>,
    rtt: Histogram<u64>,
    s: ShardSummary,
    scratch: Vec<u8>,
    /// A protocol's request being written (not echo's).
    out: Vec<u8>,
    /// Requests and replies of other protocols that did not complete in
    /// one go, by slot (see `speak`).
    partial: HashMap<u32, speak::Partial>,
    /// `--reconnect`'s schedule and account.
    reconnect: Option<reconnect::Reconnector>,
}

/// The loop's clocks: when things started and are next due.
struct Clock {
    start: Instant,
    next_tick: Instant,
    hold_start: Option<Instant>,
    /// Connected and waiting for the other workers (`hold_together`):
    /// the hold begins on SIGUSR2 or at this instant.
    hold_go_by: Option<Instant>,
    /// Start of the current message round; each round spreads one line
    /// per connection evenly over the interval (no self-made bursts).
    next_msg: Option<Instant>,
    msg_cursor: usize,
    /// When the hold's time was up, and until when its lines may drain.
    hold_end: Option<Instant>,
    drain_until: Option<Instant>,
    /// Connections before this slot have no line out (see `drained`).
    drain_cursor: usize,
}

/// What one pass of the loop decided.
enum Pass {
    Continue,
    Stop,
}

impl<'s> Engine<'s> {
    pub fn new(
        plan: &Plan,
        shard: Shard,
        opts: EngineOptions,
        sink: &'s mut dyn Sink,
    ) -> std::io::Result<Engine<'s>> {
        let poll = Poll::new().map_err(|e| {
            std::io::Error::new(e.kind(), format!("creating the epoll instance: {e}"))
        })?;
        let paths: Vec<PathState> = shard.paths.iter().map(|p| PathState::new(*p)).collect();
        let live_paths = paths.len();
        let reconnect = opts.reconnect.map(reconnect::Reconnector::new);
        let s = ShardSummary {
            target: shard.connections,
            ..Default::default()
        };
        Ok(Engine {
            timing: Timing::of(plan),
            next_k: shard.first_k,
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
            out: Vec::new(),
            partial: HashMap::new(),
            reconnect,
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
            connect_latency: None,
            echo_rtt: None,
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
        let mut clock = Clock {
            start,
            next_tick: start + Duration::from_secs(1),
            hold_start: None,
            hold_go_by: None,
            next_msg: None,
            msg_cursor: 0,
            hold_end: None,
            drain_until: None,
            drain_cursor: 0,
        };
        // One clock read per pass: the end of each epoll_wait times that
        // pass's events and then the next pass's connects, deadlines and
        // lines (a pass after a large batch starts them that much later).
        let mut now = start;
        loop {
            if signals::stop_requested() {
                if self.phase == Phase::Connect
                    && self.counters.opened_total < self.shard.connections
                {
                    self.s.interrupted = true;
                }
                break;
            }
            if self.phase == Phase::Connect
                && self.stopped.is_empty()
                && signals::ramp_stop_requested()
            {
                self.stopped.push(RAMP_STOP_TEXT.to_string());
            }
            let rate_wait = self.admit(now, clock.start);
            self.admit_reconnects(now);
            self.expire(now);
            if let Pass::Stop = self.end_connect(now, &mut clock) {
                break;
            }
            if let Some(by) = clock.hold_go_by
                && (signals::hold_go_requested() || now >= by)
            {
                clock.hold_go_by = None;
                self.begin_hold(now, &mut clock);
            }
            if let Pass::Stop = self.hold(now, &mut clock) {
                break;
            }
            if now >= clock.next_tick {
                self.tick();
                clock.next_tick += Duration::from_secs(1);
                if clock.next_tick < now {
                    clock.next_tick = now + Duration::from_secs(1);
                }
            }
            let wait = self.next_wake(now, &clock, rate_wait);
            let polled = self.poll.poll(&mut events, Some(wait));
            now = Instant::now();
            if let Err(e) = polled {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                self.stopped.push(format!("epoll_wait failed: {e}"));
                break;
            }
            for ev in events.iter() {
                self.on_event(ev, now);
            }
        }
        self.finish(&clock)
    }

    /// Can another connection be opened now (window, target, paths)?
    fn room(&self) -> bool {
        self.phase == Phase::Connect
            && self.stopped.is_empty()
            && self.live_paths > 0
            && (self.in_flight as usize) < self.shard.window
            && self.counters.opened_total + self.in_flight < self.shard.connections
    }

    /// Open new connections while the window, the pacing and the remaining
    /// target allow it, at most one window per pass. Returns when pacing
    /// allows the next one, if pacing held it back.
    fn admit(&mut self, now: Instant, start: Instant) -> Option<Instant> {
        let mut budget = self.shard.window;
        while budget > 0 && self.room() {
            if let Some(rate) = self.shard.rate {
                let allowed = rate * now.duration_since(start).as_secs_f64() + 1.0;
                if self.attempts as f64 >= allowed {
                    return Some(
                        start + Duration::from_secs_f64((self.attempts as f64) / rate.max(1e-9)),
                    );
                }
            }
            self.open_one();
            budget -= 1;
        }
        None
    }

    /// End the connect phase once the target is verified, or nothing is
    /// in flight and nothing more can be opened. Stops the run when no
    /// connection is left to hold.
    fn end_connect(&mut self, now: Instant, clock: &mut Clock) -> Pass {
        let done = self.counters.opened_total >= self.shard.connections
            || (self.in_flight == 0 && (self.live_paths == 0 || !self.stopped.is_empty()));
        if self.phase != Phase::Connect || !done {
            return Pass::Continue;
        }
        self.s.connect_s = now.duration_since(clock.start).as_secs_f64();
        self.s.connect_ended_unix = Some(crate::util::unix_now());
        self.phase = Phase::Hold;
        self.flush_failures();
        self.sink.progress(&self.snapshot(), false);
        if self.counters.connections == 0 {
            clock.hold_start = Some(now);
            return Pass::Stop;
        }
        if self.opts.hold_together && !signals::hold_go_requested() {
            clock.hold_go_by = Some(now + HOLD_GO_MAX);
        } else {
            self.begin_hold(now, clock);
        }
        Pass::Continue
    }

    /// The hold's time and its message rounds start now.
    fn begin_hold(&mut self, now: Instant, clock: &mut Clock) {
        clock.hold_start = Some(now);
        self.s.hold_began_unix = Some(crate::util::unix_now());
        clock.next_msg = self.timing.message_interval.map(|_| now);
        clock.msg_cursor = 0;
    }

    /// The hold: end it when its time is up or nothing is left, and send
    /// the share of this message round that is due.
    fn hold(&mut self, now: Instant, clock: &mut Clock) -> Pass {
        let Some(hs) = clock.hold_start else {
            return Pass::Continue;
        };
        if let Some(h) = self.timing.hold
            && now >= hs + h
        {
            return self.drain(now, clock);
        }
        if self.counters.connections == 0 && self.reconnect.is_none() {
            return Pass::Stop; // everything was lost: nothing left to hold
        }
        if let (Some(round), Some(iv)) = (clock.next_msg, self.timing.message_interval)
            && now >= round
        {
            let len = self.conns.len();
            let frac = now.duration_since(round).as_secs_f64() / iv.as_secs_f64();
            let due = if frac >= 1.0 {
                len
            } else {
                ((frac * len as f64) as usize).min(len)
            };
            if due > clock.msg_cursor {
                self.send_messages(clock.msg_cursor, due);
                clock.msg_cursor = due;
            }
            if now >= round + iv {
                clock.next_msg = Some(round + iv);
                clock.msg_cursor = 0;
            }
        }
        Pass::Continue
    }

    /// The hold's time is up: with hold messages, wait (at most [`DRAIN`])
    /// for the lines still out; no new one starts meanwhile.
    fn drain(&mut self, now: Instant, clock: &mut Clock) -> Pass {
        let until = match clock.drain_until {
            Some(u) => u,
            None => {
                clock.hold_end = Some(now);
                if self.timing.message_interval.is_none() {
                    return Pass::Stop;
                }
                clock.next_msg = None;
                *clock.drain_until.insert(now + DRAIN)
            }
        };
        if now >= until || self.drained(&mut clock.drain_cursor) {
            Pass::Stop
        } else {
            Pass::Continue
        }
    }

    /// Is no hold message out any more (answered, or its connection
    /// gone)? No line starts during the drain, so a connection found
    /// without one stays so: `cursor` only moves forward, and the whole
    /// drain costs one pass over the connections.
    fn drained(&self, cursor: &mut usize) -> bool {
        while let Some(c) = self.conns.get(*cursor) {
            if c.stream.is_some() && matches!(c.st, conn::St::MsgSending | conn::St::MsgAwait) {
                return false;
            }
            *cursor += 1;
        }
        true
    }

    /// How long epoll may sleep: not at all while connects can be opened,
    /// else until the next tick, deadline, paced connect, hold line due or
    /// the end of the hold (at most 100 ms).
    fn next_wake(&self, now: Instant, clock: &Clock, rate_wait: Option<Instant>) -> Duration {
        if rate_wait.is_none() && self.room() {
            return Duration::ZERO;
        }
        let mut wake = clock.next_tick.min(now + Duration::from_millis(100));
        if let Some(&(d, _, _)) = self.deadlines.front() {
            wake = wake.min(d);
        }
        if let Some(at) = rate_wait {
            wake = wake.min(at);
        }
        if let Some(at) = self.reconnect.as_ref().and_then(|r| r.next_due()) {
            wake = wake.min(at);
        }
        if let (Some(round), Some(iv)) = (clock.next_msg, self.timing.message_interval) {
            // When the next line of the round is due (the first of the
            // next round once all are out): each line goes within about a
            // millisecond of its time, as the C client's do, rather than
            // in 5 ms batches where a line's echo waits for the rest of
            // its batch to be written.
            let share = (clock.msg_cursor + 1) as f64 / self.conns.len().max(1) as f64;
            let next = round + iv.mul_f64(share.min(1.0));
            wake = wake.min(next.max(now + Duration::from_micros(100)));
        }
        match clock.drain_until {
            Some(until) => wake = wake.min(until),
            None => {
                if let (Some(hs), Some(h)) = (clock.hold_start, self.timing.hold) {
                    wake = wake.min(hs + h);
                }
            }
        }
        wake.saturating_duration_since(now)
    }

    /// The summary of the run, and the connections still open.
    fn finish(mut self, clock: &Clock) -> (ShardSummary, Held) {
        let end = Instant::now();
        if self.phase == Phase::Connect {
            self.s.connect_s = end.duration_since(clock.start).as_secs_f64();
        }
        if let Some(hs) = clock.hold_start {
            // The hold itself: the drain after it is not hold time.
            self.s.hold_s = clock
                .hold_end
                .unwrap_or(end)
                .duration_since(hs)
                .as_secs_f64();
        }
        self.phase = Phase::Done;
        self.tick();
        self.s.elapsed_s = end.duration_since(clock.start).as_secs_f64();
        self.s.counters = Counters {
            rss_bytes: None,
            ..self.counters.clone()
        };
        self.s.attempts = self.attempts;
        self.s.stops = self.stopped.clone();
        // Report what each retired path carried in the end (connections
        // in flight when it was given up may have been verified since).
        for (r, &pi) in self.s.retired.iter_mut().zip(&self.retired_idx) {
            r.established = self.paths[pi].established;
        }
        self.s.reconnect = self.reconnect.take().map(|r| r.s);
        self.s.connect_latency_us = hist_pairs(&self.latency);
        self.s.rtt_us = hist_pairs(&self.rtt);
        let held = Held {
            _conns: std::mem::take(&mut self.conns),
        };
        (self.s, held)
    }

    fn tick(&mut self) {
        self.flush_failures();
        let mut snap = self.snapshot();
        // Once a second, and only for --metrics: a pass over the recorded
        // values.
        if self.opts.latency_buckets {
            snap.connect_latency = Some(Buckets::from_hist_us(&self.latency));
            snap.echo_rtt = Some(Buckets::from_hist_us(&self.rtt));
        }
        self.sink.progress(&snap, true);
    }
}

#[cfg(test)]
mod tests;
