//! The engine's side of each connection: opening one (socket setup, epoll
//! registration, its deadline), readiness events fed to the state machine
//! and its outcomes counted, expired deadlines, and the hold's message
//! rounds. This is the hot path: per verified connection it makes
//! socket(), bind() and setsockopt() when a source is set, connect(),
//! epoll_ctl(ADD), one write() and one read() (a short read that emptied
//! the socket is not followed by a read that would only say EAGAIN), plus
//! two clock reads (the connect's start and, per poll, its end).
use std::os::fd::AsRawFd;
use std::time::Instant;

use mio::event::Event;
use mio::{Interest, Token};

use super::Engine;
use super::conn::{Conn, Connect, MAX_MSG, Received, St, message};
use super::failure::{FailKey, errno_of};
use super::socket::{
    ACK_WITH_DATA_CALL, BIND_NO_PORT_CALL, FAST_OPEN_CALL, SetupError, connect_nonblocking,
};
use crate::catalogue::FailureId;
use crate::flood::stats::fix_for;

impl Engine<'_> {
    /// A slot for `conn`: a free one (its epoch bumped) or a new one.
    fn alloc(&mut self, mut conn: Conn) -> u32 {
        if let Some(i) = self.free.pop() {
            if !self.partial.is_empty() {
                self.partial.remove(&i);
            }
            conn.epoch = self.conns[i as usize].epoch.wrapping_add(1);
            self.conns[i as usize] = conn;
            i
        } else {
            self.conns.push(conn);
            (self.conns.len() - 1) as u32
        }
    }

    /// Start one connection on the next path, with the next number; its
    /// slot, or `None` when none could be started.
    pub(super) fn open_one(&mut self) -> Option<u32> {
        let pi = self.next_path()?;
        let path = self.paths[pi].path;
        let k = self.retry_k.pop().unwrap_or_else(|| {
            let k = self.next_k;
            self.next_k += 1;
            k
        });
        self.attempts += 1;
        let (stream, started) =
            match connect_nonblocking(&path, self.opts.fast_open, self.opts.ack_with_data) {
                Ok(s) => s,
                Err(e) => {
                    self.retry_k.push(k);
                    self.setup_failed(pi, e);
                    return None;
                }
            };
        let slot = self.alloc(Conn::connecting(stream, k, pi as u32, started));
        let c = &mut self.conns[slot as usize];
        let epoch = c.epoch;
        let reg = match c.stream.as_mut() {
            Some(s) => self.poll.registry().register(
                s,
                Token(slot as usize),
                Interest::READABLE | Interest::WRITABLE,
            ),
            None => Ok(()),
        };
        if let Err(e) = reg {
            self.conns[slot as usize].stream = None;
            self.free.push(slot);
            self.retry_k.push(k);
            self.register_failed(&e);
            return None;
        }
        self.in_flight += 1;
        self.deadlines
            .push_back((started + self.timing.connect_timeout, slot, epoch));
        Some(slot)
    }

    /// epoll_ctl(ADD) failed (ENOSPC: max_user_watches, ENOMEM): no more
    /// connections in this process.
    fn register_failed(&mut self, e: &std::io::Error) {
        let errno = errno_of(e);
        self.count_failure(
            FailKey::from_errno(errno),
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
    }

    /// socket(), setsockopt(), bind() or connect() failed. Out of
    /// descriptors or memory, or no socket at all, stops this process's
    /// connects; anything else counts against the path.
    fn setup_failed(&mut self, pi: usize, e: SetupError) {
        let SetupError { call, errno } = e;
        let path = self.paths[pi].path;
        self.counters.failed_total += 1;
        let key = FailKey::from_errno(errno);
        // An option this kernel lacks stops the process, naming the fix.
        let (what, syscall, unsupported) = match call {
            BIND_NO_PORT_CALL => (
                "setsockopt(IP_BIND_ADDRESS_NO_PORT)".to_string(),
                call,
                Some(
                    "this kernel cannot bind a source address without reserving a port (Linux 4.2 and later can); fix: run without --sources, or on a newer kernel",
                ),
            ),
            FAST_OPEN_CALL => (
                call.to_string(),
                "setsockopt",
                Some(
                    "this kernel cannot connect with TCP Fast Open (Linux 4.11 and later can); fix: run without --fast-open",
                ),
            ),
            ACK_WITH_DATA_CALL => (
                call.to_string(),
                "setsockopt",
                Some(
                    "this kernel will not hold a connecting socket's handshake ACK for its first message; fix: run with --separate-handshake-ack",
                ),
            ),
            _ => (format!("{call}()"), call, None),
        };
        let detail = format!("{what} on {path}: {}", crate::util::errno_text(errno));
        self.count_failure(key, syscall, Some(errno), &detail);
        let name = crate::util::errno_name(errno);
        let text = crate::util::errno_text(errno);
        if let Some(why) = unsupported {
            self.stop(format!(
                "{what} failed with {name} ({text}) on {path}: {why}"
            ));
        } else if call == "socket"
            || matches!(
                errno,
                libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
            )
        {
            let fix = FailureId::from_errno(call, errno)
                .map(|f| fix_for(Some(f), key.as_str()))
                .unwrap_or_default();
            let limit = if errno == libc::EMFILE {
                crate::sys::limits::nofile(crate::sys::limits::Target::This)
                    .map(|n| format!(" (RLIMIT_NOFILE {})", n.soft))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            self.stop(format!(
                "{call}() failed with {name} ({text}) after {} verified connections{limit}; this process cannot open more; fix: {fix}",
                crate::util::thousands(self.counters.opened_total),
            ));
        } else {
            self.path_failed(pi, key);
        }
    }

    /// Fail every attempt whose deadline has passed: not connected in
    /// time, or connected without its echo in time.
    pub(super) fn expire(&mut self, now: Instant) {
        while let Some(&(d, slot, epoch)) = self.deadlines.front() {
            if d > now {
                break;
            }
            self.deadlines.pop_front();
            let c = &self.conns[slot as usize];
            if c.epoch != epoch || c.stream.is_none() || c.st.verified() {
                continue;
            }
            let secs = self.timing.connect_timeout.as_secs_f64();
            if c.st == super::conn::St::Connecting {
                let detail = format!("connect() not answered within {secs}s (--connect-timeout)");
                let key = FailKey::from_errno(libc::ETIMEDOUT);
                self.fail_attempt(slot, key, "connect", Some(libc::ETIMEDOUT), &detail);
            } else {
                let what = match self.opts.proto {
                    crate::flood::proto::Proto::Echo => "the echo".to_string(),
                    ref p => format!("the {} reply", p.name()),
                };
                let detail = format!(
                    "connected, but {what} did not come back within {secs}s (--connect-timeout)"
                );
                let key = FailKey::EchoTimeout;
                self.fail_attempt(slot, key, "recv", Some(libc::ETIMEDOUT), &detail);
            }
        }
    }

    /// A readiness event: finish the handshake, write what is due, read
    /// what came.
    pub(super) fn on_event(&mut self, ev: &Event, now: Instant) {
        let slot = ev.token().0 as u32;
        let readable = ev.is_readable() || ev.is_read_closed();
        let (writable, error) = (ev.is_writable(), ev.is_error());
        let Some(c) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if c.stream.is_none() {
            return;
        }
        if c.st == super::conn::St::Connecting {
            match c.on_connect_event(writable, error) {
                Connect::Waiting => return,
                Connect::Connected if self.opts.fast_open => {}
                Connect::Connected => {
                    let us = now.duration_since(c.since).as_micros() as u64;
                    self.latency.saturating_record(us.max(1));
                }
                Connect::Failed(e) => {
                    let errno = errno_of(&e);
                    let detail = format!("connect() to {}: {e}", self.paths[c.path as usize].path);
                    let key = FailKey::from_errno(errno);
                    self.fail_attempt(slot, key, "connect", Some(errno), &detail);
                    return;
                }
                Connect::FailedWithoutCode => {
                    let detail = "connect() failed without an error code";
                    let key = FailKey::from_errno(libc::ECONNABORTED);
                    self.fail_attempt(slot, key, "connect", Some(libc::ECONNABORTED), detail);
                    return;
                }
            }
        }
        if self.conns[slot as usize].sending() {
            self.write(slot, now);
        }
        if readable || error {
            // With the peer's close or an error pending, read on until
            // read() says so; else a short read has emptied the socket.
            let drain = ev.is_read_closed() || error;
            self.read(slot, drain, now);
        }
    }

    fn write(&mut self, slot: u32, now: Instant) {
        if !matches!(self.opts.proto, crate::flood::proto::Proto::Echo) {
            return self.write_proto(slot, now);
        }
        let c = &mut self.conns[slot as usize];
        let opening = c.st == St::Sending;
        if let Err(e) = c.send(&mut self.counters.bytes_out) {
            self.io_failed(slot, "send", &e);
            return;
        }
        if opening && self.opts.ack_with_data && c.st == St::Awaiting {
            c.ack_replies_at_once();
        }
    }

    /// Read what came and act on it. Edge-triggered: more data raises a
    /// new event, so reading stops at a short read unless `drain`.
    fn read(&mut self, slot: u32, drain: bool, now: Instant) {
        if !matches!(self.opts.proto, crate::flood::proto::Proto::Echo) {
            return self.read_proto(slot, drain, now);
        }
        loop {
            let c = &mut self.conns[slot as usize];
            let (what, n) = c.receive(&mut self.scratch);
            self.counters.bytes_in += n as u64;
            match what {
                Received::Nothing => return,
                Received::Partial => {}
                Received::Verified => self.verified(slot, now),
                Received::Answered => {
                    let us = now.duration_since(c.since).as_micros() as u64;
                    self.rtt.saturating_record(us.max(1));
                    self.s.messages_answered += 1;
                }
                Received::WrongHoldEcho => self.count_error(FailKey::EchoMismatch),
                Received::Mismatch => {
                    let mut expected = [0u8; MAX_MSG];
                    let len = message(c.k, &mut expected);
                    let detail = format!(
                        "echo of '{}' came back different",
                        String::from_utf8_lossy(&expected[..len - 1])
                    );
                    self.fail_attempt(slot, FailKey::EchoMismatch, "recv", None, &detail);
                    return;
                }
                Received::Eof => {
                    if c.st.verified() {
                        self.lose(slot, FailKey::Eof, None);
                    } else {
                        let detail = "the server closed the connection before echoing";
                        self.fail_attempt(slot, FailKey::EofBeforeEcho, "recv", None, detail);
                    }
                    return;
                }
                Received::Failed(e) => {
                    self.io_failed(slot, "recv", &e);
                    return;
                }
            }
            if !drain && n < self.scratch.len() {
                return;
            }
        }
    }

    /// The first echo came back: the connection counts.
    pub(super) fn verified(&mut self, slot: u32, now: Instant) {
        let c = &self.conns[slot as usize];
        let pi = c.path as usize;
        if self.opts.fast_open {
            // The handshake and the line were one exchange: its latency
            // runs to the echo (the socket was writable before any SYN).
            let us = now.duration_since(c.since).as_micros() as u64;
            self.latency.saturating_record(us.max(1));
        }
        self.last_fd = c.stream.as_ref().map(|s| s.as_raw_fd());
        self.in_flight -= 1;
        self.counters.connections += 1;
        self.counters.opened_total += 1;
        self.paths[pi].succeeded(now);
        let epoch = c.epoch;
        if let Some(r) = self.reconnect.as_mut() {
            r.verified(slot, epoch);
        }
        if self.counters.opened_total.is_multiple_of(1000) {
            let snap = self.snapshot();
            self.sink.progress(&snap, false);
        }
    }

    /// Send the line on the open connections of slots `from..to`, each
    /// timed from its own send; one still waiting for its previous echo is
    /// skipped this round.
    pub(super) fn send_messages(&mut self, from: usize, to: usize) {
        if !self.opts.proto.keeps_alive() {
            return;
        }
        for slot in from as u32..to as u32 {
            let c = &mut self.conns[slot as usize];
            if !c.idle() {
                continue;
            }
            let now = Instant::now();
            c.start_message(now);
            self.s.messages_sent += 1;
            self.write(slot, now);
        }
    }
}
