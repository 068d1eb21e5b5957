//! One worker process of `c1m serve`: a single-threaded mio event loop that
//! polls the listening sockets it inherited from the parent, accepts up to
//! its own connection cap, and echoes. It owns the connection table and the
//! one read buffer, and reports its counters to the parent as JSON lines on
//! stdout (see `events`).
//!
//! Memory: the table is a `Vec<Option<TcpStream>>` indexed by file
//! descriptor (the mio token *is* the fd), so there is no slab free list and
//! no hashing: 4 bytes per slot (a mio `TcpStream` is an fd with a niche).
//! Unsent echo bytes live in a small map keyed by fd, and only while that
//! connection's socket is full (bounded by one read, 64 KiB; reading from it
//! stops until they drain). Idle connections own nothing else. The vector's
//! capacity is reserved once for the worker's cap (not its whole fd limit,
//! which may be near 2^30), so growing it rarely copies and untouched pages
//! are never resident.
//!
//! Interest: READABLE only (edge-triggered, mio's default); a connection is
//! switched to WRITABLE only while it has unsent bytes, and back after, so an
//! idle or echoing connection costs no writable wake-ups.
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::TcpListener as StdListener;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::catalogue::FailureId;
use crate::events::{Counters, Record, Role, ServeWorkerStart};
use crate::sys::procfs::StatmFile;
use crate::sys::signals;
use crate::sys::sysctl::Sysctl;

use super::Wake;
use super::wire::{FailureLine, WorkerInterval, WorkerLine};

/// Size of the read buffer shared by all connections of a worker, and the
/// bound on the unsent bytes one connection may hold (it is never more than
/// one read's worth, since reading stops while anything is pending).
pub const BUF_SIZE: usize = 64 * 1024;

/// Tokens at or above this are listeners (index = token - base); below it a
/// token is the connection's fd.
const LISTENER_BASE: usize = 1 << 40;

/// How long accepting pauses after EMFILE/ENFILE (or ENOBUFS/ENOMEM).
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// How often a worker that is accepting tries its listeners even without an
/// event: with EPOLLEXCLUSIVE the kernel wakes one worker per connection, and
/// if that worker then stops accepting (cap, EMFILE) the connection would
/// otherwise wait for the next arrival. A sweep asks `poll(2)` with a zero
/// timeout which listeners have connections queued, and accepts only on
/// those. (Trying `accept()` on every listener cost 20 ports x 20 sweeps a
/// second x 53 workers, about 21,000 failed accepts a second at a million.
/// A second epoll set holding every listener answered in one call too, but
/// its entries sat on each listener's wait queue: every new connection then
/// ran one wake-up callback per worker, 53 at a million, with the queue's
/// lock held and interrupts off. A zero-timeout `poll()` leaves nothing on
/// the queues.)
const SWEEP: Duration = Duration::from_millis(50);

/// Reads (or accepts) per event before yielding to other connections.
const BUDGET: usize = 16;

/// Everything a worker is told by the parent.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub index: u32,
    pub listen_fds: Vec<RawFd>,
    /// Stop accepting at this many open connections.
    pub cap: u64,
    pub stats_interval: Duration,
    /// Print the seed's `connections: N, sockfd:FD, time_used:MS` line every
    /// 1000 accepts.
    pub seed_log: bool,
    pub wake: Wake,
    /// Send an interval line at once when the open connections reach this
    /// many (elastic serve starts the next worker on it).
    pub report_at: Option<u64>,
}

/// Unsent echo bytes of one connection, only while its socket is full.
struct Pending {
    data: Vec<u8>,
    pos: usize,
}

/// The worker's counters (what it sends its parent, RSS aside) and its
/// accept failures since the last interval line.
#[derive(Default)]
struct Stats {
    c: Counters,
    /// accept errno -> count since the last interval line (for Failure lines).
    accept_fail_window: std::collections::BTreeMap<i32, u64>,
}

impl Stats {
    fn error(&mut self, errno: i32) {
        *self
            .c
            .errors
            .entry(crate::util::errno_name(errno))
            .or_default() += 1;
    }

    /// An attempt failed with `errno` in `call`.
    fn failed(&mut self, call: &str, errno: i32) {
        self.error(errno);
        self.c.failed_total += 1;
        if let Some(f) = FailureId::from_errno(call, errno) {
            *self.c.failures.entry(f).or_default() += 1;
        }
    }
}

fn epoll_ctl(epfd: RawFd, op: libc::c_int, fd: RawFd, token: usize, wake: Wake) -> io::Result<()> {
    let mut events = libc::EPOLLIN as u32;
    if wake == Wake::One {
        events |= libc::EPOLLEXCLUSIVE as u32;
    }
    let mut ev = libc::epoll_event {
        events,
        u64: token as u64,
    };
    // SAFETY: a plain epoll_ctl on fds we own; `ev` outlives the call.
    if unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Which listeners have connections waiting in their accept queue: one
/// `poll()` with a zero timeout, which puts no waiter on their queues (an
/// epoll set would keep one there, run at every new connection).
fn queued(listeners: &[TcpListener]) -> io::Result<Vec<usize>> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut fds: Vec<PollFd> = listeners
        .iter()
        .map(|l| PollFd::new(l.as_fd(), PollFlags::POLLIN))
        .collect();
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    }
    Ok(fds
        .iter()
        .enumerate()
        .filter(|(_, f)| f.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)))
        .map(|(i, _)| i)
        .collect())
}

/// The soft RLIMIT_NOFILE of this process.
pub fn nofile_soft() -> u64 {
    crate::sys::limits::nofile(crate::sys::limits::Target::This).map_or(1024, |n| n.soft)
}

struct Worker {
    cfg: WorkerConfig,
    poll: Poll,
    listeners: Vec<TcpListener>,
    /// Are the listeners registered with epoll right now?
    registered: bool,
    /// Accepting paused (EMFILE...) until then.
    paused_until: Option<Instant>,
    conns: Vec<Option<TcpStream>>,
    /// Unsent bytes of the connections whose socket is full, by fd.
    pending: HashMap<usize, Pending>,
    buf: Box<[u8]>,
    /// Connections that used up their budget and still have data to read.
    again: Vec<usize>,
    stats: Stats,
    seed_mark: Instant,
    fd_soft: u64,
    /// /proc/self/statm, opened once: at the fd limit it could not be
    /// opened any more, and that is exactly when its figures matter.
    statm: Option<StatmFile>,
    /// fs.file-max, read at start for the same reason.
    file_max: String,
    /// The listeners have TCP_DEFER_ACCEPT (serve --defer-accept) or Fast
    /// Open (--fast-open): an accepted connection has its first bytes
    /// already, so it is read at once instead of after another epoll_wait.
    defer_accept: bool,
    /// `report_at` may fire: set at each interval line, cleared when it
    /// fires (at most one early line per interval). Never set without it.
    report_armed: bool,
}

/// Slots reserved up front for the connection table (indexed by fd): the
/// worker's cap plus its listeners and some slack (fds are allocated lowest
/// first, so the highest stays near the count open), never more than the fd
/// limit, and never the whole of a huge limit: at 2^30 descriptors that
/// would be 4 GiB of address space, refused under strict overcommit. The
/// table still grows past it if it must.
fn table_slots(fd_soft: u64, cap: u64, listeners: usize) -> usize {
    const MOST: u64 = 1 << 22;
    cap.saturating_add(listeners as u64)
        .saturating_add(crate::sys::limits::FD_SLACK + 16)
        .min(fd_soft.saturating_add(16))
        .min(MOST) as usize
}

/// Run a worker until SIGTERM/SIGINT. Prints a `Start` record (with the
/// worker's empty-baseline RSS) once it listens, then one `Interval` per
/// stats interval, `Failure` lines for fd limits, and a last `Interval`.
pub fn run(cfg: WorkerConfig) -> anyhow::Result<()> {
    signals::install().context("installing signal handlers")?;
    if cfg.listen_fds.is_empty() {
        bail!("--listen-fds: no listening socket given");
    }
    let mut listeners = Vec::new();
    // With TCP_DEFER_ACCEPT or Fast Open on the listeners, a connection
    // mostly has its first bytes at accept: read it at once.
    let defer_accept = cfg.listen_fds.first().is_some_and(|&fd| {
        super::listen::defer_accept_secs(fd) > 0 || super::listen::fast_open_queue(fd) > 0
    });
    for &fd in &cfg.listen_fds {
        if !crate::sys::fds::is_listening_socket(fd) {
            bail!("--listen-fds: fd {fd} is not a listening socket inherited from the parent");
        }
        // SAFETY: the fd is an open listening socket (checked above) that this
        // process owns from now on.
        let std = unsafe { StdListener::from_raw_fd(fd) };
        std.set_nonblocking(true)
            .with_context(|| format!("making listening fd {fd} non-blocking"))?;
        listeners.push(TcpListener::from_std(std));
    }
    let poll = Poll::new().context("creating the epoll instance")?;
    let fd_soft = nofile_soft();
    let mut conns = Vec::new();
    // A slot per fd the cap needs; reserving does not touch the pages.
    conns.reserve_exact(table_slots(fd_soft, cfg.cap, cfg.listen_fds.len()));
    let mut buf = vec![0u8; BUF_SIZE].into_boxed_slice();
    // Touch the buffer now so that it counts in the empty baseline.
    buf.iter_mut().step_by(1024).for_each(|b| *b = 1);
    let mut w = Worker {
        cfg,
        poll,
        listeners,
        registered: false,
        paused_until: None,
        conns,
        pending: HashMap::new(),
        buf,
        again: Vec::new(),
        stats: Stats::default(),
        seed_mark: Instant::now(),
        fd_soft,
        statm: StatmFile::open().ok(),
        file_max: Sysctl::proc()
            .read("fs.file-max")
            .unwrap_or_else(|_| "unknown".into()),
        defer_accept,
        report_armed: false,
    };
    w.report_armed = w.cfg.report_at.is_some();
    w.set_accepting(true)?;
    w.main_loop()
}

impl Worker {
    fn emit(&self, line: WorkerLine) -> anyhow::Result<()> {
        let rec = Record::now(Role::Serve, Some(self.cfg.index), line);
        rec.emit(&mut io::stdout().lock())
            .context("writing to the parent (stdout)")
    }

    fn set_accepting(&mut self, on: bool) -> anyhow::Result<()> {
        if on == self.registered {
            return Ok(());
        }
        let epfd = self.poll.as_raw_fd();
        let op = if on {
            libc::EPOLL_CTL_ADD
        } else {
            libc::EPOLL_CTL_DEL
        };
        for (i, l) in self.listeners.iter().enumerate() {
            epoll_ctl(epfd, op, l.as_raw_fd(), LISTENER_BASE + i, self.cfg.wake)
                .with_context(|| format!("epoll_ctl on listening fd {}", l.as_raw_fd()))?;
        }
        self.registered = on;
        Ok(())
    }

    /// Accept if below cap and not paused; keep registration in line.
    fn want_accepting(&self) -> bool {
        self.stats.c.connections < self.cfg.cap && self.paused_until.is_none()
    }

    fn main_loop(&mut self) -> anyhow::Result<()> {
        let mut events = Events::with_capacity(1024);
        let baseline = self.rss().unwrap_or(0);
        self.emit(WorkerLine::Start {
            settings: ServeWorkerStart {
                worker: self.cfg.index,
                cap: self.cfg.cap,
                listeners: self.listeners.len() as u64,
                nofile: self.fd_soft,
                rss_baseline: baseline,
                wake: self.cfg.wake.as_str().into(),
            },
        })?;
        // One clock read per pass, at the end of epoll_wait: it times the
        // pass's pauses, sweeps and reports, and the next pass's timeout.
        let mut now = Instant::now();
        let mut next_tick = now + self.cfg.stats_interval;
        let mut next_sweep = now + SWEEP;
        let mut last_opened = 0u64;
        let mut last_tick = now;
        loop {
            if signals::stop_requested() {
                break;
            }
            let mut deadline = next_tick.min(next_sweep);
            if let Some(p) = self.paused_until {
                deadline = deadline.min(p);
            }
            let timeout = if self.again.is_empty() {
                deadline.saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            let polled = self.poll.poll(&mut events, Some(timeout));
            now = Instant::now();
            match polled {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("epoll_wait"),
            }
            for ev in events.iter() {
                let t = ev.token().0;
                if t >= LISTENER_BASE {
                    self.accept(t - LISTENER_BASE)?;
                } else {
                    // Drain to EAGAIN only when the peer's FIN or an error
                    // came with this edge: otherwise a short read emptied
                    // the socket and new bytes raise a new edge.
                    self.serve_conn(t, ev.is_read_closed() || ev.is_error());
                }
            }
            let again = std::mem::take(&mut self.again);
            for fd in again {
                self.serve_conn(fd, true);
            }
            if let Some(p) = self.paused_until
                && now >= p
            {
                self.paused_until = None;
            }
            let want = self.want_accepting();
            self.set_accepting(want)?;
            if now >= next_sweep {
                next_sweep = now + SWEEP;
                if want {
                    self.sweep_listeners()?;
                }
            }
            if now >= next_tick {
                let secs = now.duration_since(last_tick).as_secs_f64().max(1e-3);
                let rate = (self.stats.c.opened_total - last_opened) as f64 / secs;
                last_opened = self.stats.c.opened_total;
                last_tick = now;
                next_tick = now + self.cfg.stats_interval;
                self.report(rate)?;
            }
        }
        self.report(0.0)?;
        Ok(())
    }

    /// Accept on the listeners that have connections queued.
    fn sweep_listeners(&mut self) -> anyhow::Result<()> {
        let ready = queued(&self.listeners).context("poll() on the listeners for the sweep")?;
        for i in ready {
            self.accept(i)?;
        }
        Ok(())
    }

    /// Resident set size in bytes, from the statm file held open.
    fn rss(&self) -> Option<u64> {
        self.statm.as_ref()?.rss_bytes()
    }

    fn counters(&self) -> Counters {
        Counters {
            rss_bytes: self.rss(),
            ..self.stats.c.clone()
        }
    }

    fn report(&mut self, rate: f64) -> anyhow::Result<()> {
        let window = std::mem::take(&mut self.stats.accept_fail_window);
        for (errno, count) in window {
            let Some(failure) = FailureId::from_errno("accept", errno) else {
                continue;
            };
            let detail = match errno {
                libc::EMFILE => format!(
                    "accept failed with EMFILE {count} times: RLIMIT_NOFILE of this worker is {} and it holds {} connections; accepting paused {} ms each time",
                    self.fd_soft,
                    self.stats.c.connections,
                    ACCEPT_PAUSE.as_millis()
                ),
                libc::ENFILE => format!(
                    "accept failed with ENFILE {count} times: the system-wide file table is full (fs.file-max {}); accepting paused {} ms each time",
                    self.file_max,
                    ACCEPT_PAUSE.as_millis()
                ),
                _ => format!(
                    "accept failed with {} {count} times",
                    crate::util::errno_name(errno)
                ),
            };
            self.emit(WorkerLine::Failure(FailureLine {
                failure,
                call: "accept".into(),
                errno: Some(errno),
                count,
                detail,
            }))?;
        }
        self.report_armed = self.cfg.report_at.is_some();
        self.emit(WorkerLine::Interval(WorkerInterval {
            counters: self.counters(),
            rate,
            cap: self.cfg.cap,
        }))
    }

    fn accept(&mut self, li: usize) -> anyhow::Result<()> {
        for _ in 0..BUDGET * 4 {
            if !self.want_accepting() {
                return Ok(());
            }
            let res = self.listeners[li].accept();
            match res {
                Ok((stream, _)) => self.adopt(stream)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => {
                    let errno = e.raw_os_error().unwrap_or(0);
                    match errno {
                        libc::EINTR => continue,
                        // The peer gave up before we accepted: not ours.
                        libc::ECONNABORTED | libc::EPROTO | libc::EPERM => {
                            self.stats.error(errno);
                            continue;
                        }
                        _ => {
                            // EMFILE, ENFILE, ENOBUFS, ENOMEM...: retrying now
                            // would spin. Stop accepting for a moment; the
                            // queued connections wait in the backlog (or other
                            // workers take them).
                            self.stats.failed("accept", errno);
                            *self.stats.accept_fail_window.entry(errno).or_default() += 1;
                            self.paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                            self.set_accepting(false)?;
                            return Ok(());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn adopt(&mut self, mut stream: TcpStream) -> anyhow::Result<()> {
        let fd = stream.as_raw_fd() as usize;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(fd), Interest::READABLE)
        {
            // ENOSPC: fs.epoll.max_user_watches. Drop this one connection.
            let errno = e.raw_os_error().unwrap_or(0);
            self.stats.failed("epoll_ctl", errno);
            return Ok(());
        }
        if self.conns.len() <= fd {
            self.conns.resize_with(fd + 1, || None);
        }
        self.conns[fd] = Some(stream);
        self.stats.c.connections += 1;
        self.stats.c.opened_total += 1;
        if self.report_armed && self.cfg.report_at == Some(self.stats.c.connections) {
            // Elastic serve: the parent starts the next worker on this.
            self.report_armed = false;
            self.emit(WorkerLine::Interval(WorkerInterval {
                counters: self.counters(),
                rate: 0.0,
                cap: self.cfg.cap,
            }))?;
        }
        if self.defer_accept {
            // The first bytes are there already (what the kernel waited
            // for, or what the SYN carried): echo them now, not after one
            // more epoll_wait.
            self.serve_conn(fd, false);
        }
        if self.cfg.seed_log && self.stats.c.opened_total.is_multiple_of(1000) {
            let now = Instant::now();
            let ms = now.duration_since(self.seed_mark).as_millis();
            self.seed_mark = now;
            let mut out = io::stdout().lock();
            writeln!(
                out,
                "connections: {}, sockfd:{}, time_used:{}",
                self.stats.c.connections, fd, ms
            )
            .and_then(|_| out.flush())
            .context("writing to the parent (stdout)")?;
        }
        Ok(())
    }

    fn close(&mut self, fd: usize, errno: Option<i32>) {
        if let Some(e) = errno {
            self.stats.error(e);
        }
        self.pending.remove(&fd);
        if let Some(c) = self.conns.get_mut(fd)
            && c.take().is_some()
        {
            self.stats.c.connections -= 1;
            self.stats.c.closed_total += 1;
        }
    }

    /// Handle readiness on connection `fd`; `drain` reads on to EAGAIN
    /// even after a short read.
    fn serve_conn(&mut self, fd: usize, drain: bool) {
        let Some(Some(stream)) = self.conns.get_mut(fd) else {
            return;
        };
        let was_blocked = self.pending.contains_key(&fd);
        let out = echo(
            fd,
            stream,
            &mut self.pending,
            &mut self.buf,
            &mut self.stats,
            drain,
        );
        let blocked = self.pending.contains_key(&fd);
        if !matches!(out, Outcome::Close(_)) && was_blocked != blocked {
            let interest = if blocked {
                Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) = self.poll.registry().reregister(stream, Token(fd), interest) {
                self.close(fd, e.raw_os_error());
                return;
            }
        }
        match out {
            Outcome::Wait => {}
            Outcome::Again => self.again.push(fd),
            Outcome::Close(errno) => self.close(fd, errno),
        }
    }
}

/// What became of a connection after [`echo`].
enum Outcome {
    /// Drained or blocked: the next edge brings it back.
    Wait,
    /// Budget spent with data possibly left: serve it again next round.
    Again,
    /// Closed by the peer (`None`) or by an error.
    Close(Option<i32>),
}

/// Flush what is pending, then read and echo until the socket is drained (a
/// short read, or EAGAIN when `drain`), the write side blocks (the rest goes
/// into `pending` and reading stops: backpressure), or the budget is spent.
fn echo(
    fd: usize,
    stream: &mut TcpStream,
    pending: &mut HashMap<usize, Pending>,
    buf: &mut [u8],
    stats: &mut Stats,
    drain: bool,
) -> Outcome {
    if let Some(p) = pending.get_mut(&fd) {
        while p.pos < p.data.len() {
            match stream.write(&p.data[p.pos..]) {
                Ok(0) => return Outcome::Close(Some(libc::EPIPE)),
                Ok(n) => {
                    p.pos += n;
                    stats.c.bytes_out += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Outcome::Close(e.raw_os_error()),
            }
        }
        pending.remove(&fd);
    }
    // Edge-triggered: a short read emptied the socket, and bytes or a FIN
    // that come later raise a new edge, so the read that would only say
    // EAGAIN is skipped (one system call per message). A FIN that came
    // with this very edge is the exception: the caller then asks to
    // `drain`, and reading goes on until read() returns 0.
    for _ in 0..BUDGET {
        let n = match stream.read(buf) {
            // Orderly close or half-close: everything received was echoed
            // already and nothing more can come.
            Ok(0) => return Outcome::Close(None),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Wait,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Outcome::Close(e.raw_os_error()),
        };
        stats.c.bytes_in += n as u64;
        let mut off = 0;
        while off < n {
            match stream.write(&buf[off..n]) {
                Ok(0) => return Outcome::Close(Some(libc::EPIPE)),
                Ok(m) => {
                    off += m;
                    stats.c.bytes_out += m as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    pending.insert(
                        fd,
                        Pending {
                            data: buf[off..n].to_vec(),
                            pos: 0,
                        },
                    );
                    return Outcome::Wait;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Outcome::Close(e.raw_os_error()),
            }
        }
        if !drain && n < buf.len() {
            return Outcome::Wait;
        }
    }
    Outcome::Again
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_sees_exactly_the_listeners_with_a_connection_queued() {
        let bind = || TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listeners = vec![bind(), bind(), bind()];
        assert_eq!(queued(&listeners).unwrap(), Vec::<usize>::new());
        let _c = std::net::TcpStream::connect(listeners[1].local_addr().unwrap()).unwrap();
        // the handshake completes in the kernel; the connection then waits
        // in listener 1's accept queue
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = queued(&listeners).unwrap();
        while seen.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            seen = queued(&listeners).unwrap();
        }
        assert_eq!(seen, vec![1]);
        let _ = listeners[1].accept().unwrap();
        assert_eq!(queued(&listeners).unwrap(), Vec::<usize>::new());
    }

    #[test]
    fn a_connection_slot_is_4_bytes() {
        assert_eq!(std::mem::size_of::<Option<TcpStream>>(), 4);
    }

    #[test]
    fn the_table_is_reserved_for_the_cap_not_a_huge_fd_limit() {
        let slab = |slots: usize| slots * std::mem::size_of::<Option<TcpStream>>();
        // An fd limit near 2^30 with a cap of 1,000: a few KiB, not 4 GiB.
        let n = table_slots(1 << 30, 1000, 20);
        assert!(n >= 1000 + 20, "{n}");
        assert!(slab(n) < 64 * 1024, "{} bytes", slab(n));
        // A cap as large as the limit: the limit, bounded to 16 MiB.
        assert_eq!(table_slots(20_000, 1 << 40, 20), 20_016);
        assert!(slab(table_slots(1 << 30, 1 << 30, 20)) <= 16 << 20);
    }
}
