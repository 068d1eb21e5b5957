//! The `/metrics` endpoint: one thread with its own listener and its own
//! small mio loop, in the supervising process only. It answers
//! `GET /metrics` with the last published [`Figures`] and the kernel's
//! counters read then, as OpenMetrics text when the scraper accepts it
//! (Prometheus does) and as Prometheus text 0.0.4 otherwise (curl,
//! `promtool check metrics`), and closes every connection after one answer.
//!
//! Bounded whatever the scrapers do, so that serve and flood never notice
//! them: at most [`MAX_CONNS`] connections at once (a new one closes the
//! one that has done least, oldest first: a silent connection goes before
//! one that sent part of a request, and one being answered goes last, so
//! a burst of idle connects cannot cut off a real scrape), at most [`MAX_REQUEST`] bytes read from each (more, or bytes
//! that are not a request, get a 400 and a close), [`DEADLINE`] for the
//! whole exchange (a scraper that never sends or never reads is dropped),
//! the answer written without blocking. The supervisor only ever takes a
//! short lock to replace the figures ([`Endpoint::publish`]).
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::{Figures, Format, Kernel, Labels, Shared, render};

/// Connections served at once; when one more arrives, the one that has
/// done least goes ([`Conn::stage`]), the oldest of those first.
pub const MAX_CONNS: usize = 64;
/// Bytes of a request read at most (a scrape's request is ~200).
pub const MAX_REQUEST: usize = 8 * 1024;
/// Time a connection may take from accept to the last byte of the answer.
pub const DEADLINE: Duration = Duration::from_secs(2);

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;

/// A running endpoint; dropping it stops the thread.
pub struct Endpoint {
    addr: SocketAddr,
    shared: Shared,
    stop: Arc<AtomicBool>,
    ends: Ends,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl Endpoint {
    /// Bind `addr` now (a taken port is an error here, before the run
    /// starts) and serve from a thread of its own.
    pub fn start(addr: SocketAddr, labels: Labels) -> anyhow::Result<Endpoint> {
        let std_listener = std::net::TcpListener::bind(addr).map_err(|e| {
            let hint = if e.kind() == io::ErrorKind::AddrInUse {
                " (another process listens there: pick another port)"
            } else {
                ""
            };
            anyhow::anyhow!("--metrics {addr}: cannot listen: {e}{hint}")
        })?;
        Endpoint::serve(std_listener, addr, labels)
    }

    /// Bind `addr` for a child process to serve on (`--metrics-fd`): the
    /// socket is left open across exec.
    pub fn bind_inheritable(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
        let l = std::net::TcpListener::bind(addr)
            .map_err(|e| anyhow::anyhow!("--metrics {addr}: cannot listen: {e}"))?;
        crate::sys::fds::set_cloexec(&l, false)
            .map_err(|e| anyhow::anyhow!("--metrics {addr}: clearing FD_CLOEXEC: {e}"))?;
        Ok(l)
    }

    /// Serve on a listening socket inherited as fd `fd` (the lab binds it
    /// before it moves into its private network namespace, so that the
    /// endpoint answers on the host's loopback).
    pub fn start_on_fd(fd: RawFd, labels: Labels) -> anyhow::Result<Endpoint> {
        if !crate::sys::fds::is_listening_socket(fd) {
            anyhow::bail!("--metrics-fd {fd}: not a listening socket inherited from the parent");
        }
        // SAFETY: a listening socket (checked above) this process owns from
        // now on.
        let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        // Our own children (workers) must not inherit it.
        crate::sys::fds::set_cloexec(&l, true)
            .with_context(|| format!("--metrics-fd {fd}: setting FD_CLOEXEC"))?;
        let addr = l
            .local_addr()
            .with_context(|| format!("--metrics-fd {fd}: reading its address"))?;
        Endpoint::serve(l, addr, labels)
    }

    fn serve(
        std_listener: std::net::TcpListener,
        addr: SocketAddr,
        labels: Labels,
    ) -> anyhow::Result<Endpoint> {
        std_listener
            .set_nonblocking(true)
            .with_context(|| format!("--metrics {addr}: making the listener non-blocking"))?;
        let addr = std_listener
            .local_addr()
            .with_context(|| format!("--metrics {addr}: reading the bound address"))?;
        let mut listener = TcpListener::from_std(std_listener);
        let poll = Poll::new().context("--metrics: creating the epoll instance")?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .context("--metrics: registering the listener")?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).context("--metrics: waker")?);
        let shared = Shared::default();
        let stop = Arc::new(AtomicBool::new(false));
        let ends = Ends::default();
        let mut server = Server {
            poll,
            listener,
            conns: Vec::new(),
            shared: shared.clone(),
            labels,
            stop: stop.clone(),
            ends: ends.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("c1m-metrics".into())
            .spawn(move || server.run())
            .context("--metrics: starting the endpoint's thread")?;
        Ok(Endpoint {
            addr,
            shared,
            stop,
            ends,
            waker,
            thread: Some(thread),
        })
    }

    /// Where it listens (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL a scraper uses.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Replace the figures the next scrape shows.
    pub fn publish(&self, figures: Figures) {
        self.shared.set(figures);
    }

    /// Publish the run's final figures: [`Endpoint::linger`] then waits
    /// for a scrape of them.
    pub fn publish_final(&self, figures: Figures) {
        self.shared.set(figures);
        self.ends.published.store(true, Ordering::SeqCst);
    }

    /// Wait until a scraper has read the final figures, at most `max`: a
    /// run that ends between two scrapes still shows its last figures in
    /// Prometheus. Returns whether one did.
    pub fn linger(&self, max: Duration) -> bool {
        let until = Instant::now() + max;
        while Instant::now() < until {
            if self.ends.served.load(Ordering::SeqCst) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// The final figures: published, and served to a scraper since.
#[derive(Debug, Default, Clone)]
struct Ends {
    published: Arc<AtomicBool>,
    served: Arc<AtomicBool>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One scraper's connection.
struct Conn {
    stream: TcpStream,
    since: Instant,
    request: Vec<u8>,
    /// The answer, once the request is in; written from `sent` on.
    answer: Option<Vec<u8>>,
    sent: usize,
}

impl Conn {
    /// How far the exchange got: 0 nothing received, 1 part of a request,
    /// 2 answering. The lowest stage is closed first when the endpoint is
    /// full.
    fn stage(&self) -> u8 {
        if self.answer.is_some() {
            2
        } else if !self.request.is_empty() {
            1
        } else {
            0
        }
    }
}

struct Server {
    poll: Poll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    shared: Shared,
    labels: Labels,
    stop: Arc<AtomicBool>,
    ends: Ends,
}

/// What to do with a connection after an event.
enum Next {
    Keep,
    Close,
}

impl Server {
    fn run(&mut self) {
        let mut events = Events::with_capacity(128);
        while !self.stop.load(Ordering::SeqCst) {
            if let Err(e) = self
                .poll
                .poll(&mut events, Some(Duration::from_millis(250)))
            {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("c1m: metrics endpoint stopped: epoll_wait: {e}");
                return;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => self.ready(t - FIRST_CONN),
                }
            }
            self.expire();
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.adopt(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EMFILE, ECONNABORTED...: try again at the next event.
                Err(_) => return,
            }
        }
    }

    fn adopt(&mut self, mut stream: TcpStream) {
        let live = self.conns.iter().filter(|c| c.is_some()).count();
        if live >= MAX_CONNS {
            // Make room: the one that has done least goes, the oldest of
            // those first.
            let victim = self
                .conns
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.as_ref().map(|c| (i, (c.stage(), c.since))))
                .min_by_key(|&(_, key)| key)
                .map(|(i, _)| i);
            if let Some(i) = victim {
                self.close(i);
            }
        }
        let slot = match self.conns.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        if self
            .poll
            .registry()
            .register(
                &mut stream,
                Token(FIRST_CONN + slot),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            return;
        }
        self.conns[slot] = Some(Conn {
            stream,
            since: Instant::now(),
            request: Vec::new(),
            answer: None,
            sent: 0,
        });
        // Edge-triggered: bytes may be there already.
        self.ready(slot);
    }

    fn close(&mut self, i: usize) {
        if let Some(mut c) = self.conns.get_mut(i).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    fn expire(&mut self) {
        let now = Instant::now();
        for i in 0..self.conns.len() {
            if self.conns[i]
                .as_ref()
                .is_some_and(|c| now.duration_since(c.since) > DEADLINE)
            {
                self.close(i);
            }
        }
    }

    fn ready(&mut self, i: usize) {
        let Some(mut c) = self.conns.get_mut(i).and_then(Option::take) else {
            return;
        };
        let next = self.step(&mut c);
        match next {
            Next::Keep => self.conns[i] = Some(c),
            Next::Close => {
                let _ = self.poll.registry().deregister(&mut c.stream);
            }
        }
    }

    /// Read the request, answer it, write the answer: as far as the socket
    /// lets us without blocking.
    fn step(&self, c: &mut Conn) -> Next {
        if c.answer.is_none() {
            let mut buf = [0u8; 2048];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => return Next::Close,
                    Ok(n) => {
                        c.request.extend_from_slice(&buf[..n]);
                        if c.request.len() > MAX_REQUEST {
                            c.answer = Some(plain(400, "request too large\n"));
                            break;
                        }
                        if let Some(a) = self.answer_for(&c.request) {
                            c.answer = Some(a);
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Keep,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Next::Close,
                }
            }
            c.request = Vec::new();
        }
        let Some(answer) = &c.answer else {
            return Next::Keep;
        };
        while c.sent < answer.len() {
            match c.stream.write(&answer[c.sent..]) {
                Ok(0) => return Next::Close,
                Ok(n) => c.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Keep,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        Next::Close
    }

    /// The answer once `req` holds a whole request head; `None` while it
    /// may still be coming.
    fn answer_for(&self, req: &[u8]) -> Option<Vec<u8>> {
        let line_end = memchr::memmem::find(req, b"\r\n").or_else(|| memchr::memchr(b'\n', req));
        let Some(line_end) = line_end else {
            // No line yet: garbage without a newline is caught by the size
            // bound or the deadline.
            return None;
        };
        let line = &req[..line_end];
        let mut words = line.split(|&b| b == b' ');
        let (method, path, version) = (words.next(), words.next(), words.next());
        let is_http = version.is_some_and(|v| v.starts_with(b"HTTP/1."));
        if !is_http {
            return Some(plain(400, "not an HTTP/1 request\n"));
        }
        if memchr::memmem::find(req, b"\r\n\r\n").is_none()
            && memchr::memmem::find(req, b"\n\n").is_none()
        {
            return None;
        }
        let path = path.unwrap_or(b"/");
        let path = path.split(|&b| b == b'?').next().unwrap_or(path);
        match (method, path) {
            (Some(b"GET"), b"/metrics") => {
                let last = self.ends.published.load(Ordering::SeqCst);
                let format = if memchr::memmem::find(req, b"application/openmetrics-text").is_some()
                {
                    Format::OpenMetrics
                } else {
                    Format::Prometheus
                };
                let body = render(&self.labels, self.shared.get(), Kernel::read(), format);
                if last {
                    self.ends.served.store(true, Ordering::SeqCst);
                }
                Some(response(200, format.content_type(), body.as_bytes()))
            }
            (Some(b"GET"), b"/") => Some(plain(200, "c1m: metrics at /metrics\n")),
            (Some(b"GET"), _) => Some(plain(404, "not found: try /metrics\n")),
            _ => Some(plain(405, "only GET\n")),
        }
    }
}

fn plain(code: u16, text: &str) -> Vec<u8> {
    response(code, "text/plain; charset=utf-8", text.as_bytes())
}

fn response(code: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Where an endpoint listens: an address to bind, or a listening socket
/// inherited from a parent (`--metrics-fd`, the lab's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAt {
    Addr(SocketAddr),
    Fd(RawFd),
}

impl MetricsAt {
    /// Start an endpoint there.
    pub fn start(self, labels: Labels) -> anyhow::Result<Endpoint> {
        match self {
            MetricsAt::Addr(a) => Endpoint::start(a, labels),
            MetricsAt::Fd(fd) => Endpoint::start_on_fd(fd, labels),
        }
    }
}

/// `--metrics`: `ADDR:PORT`, `HOST:PORT` (`localhost:9400`), `:PORT` or
/// `PORT` (127.0.0.1).
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    let bad = || {
        format!("'{text}' is not ADDR:PORT, HOST:PORT or PORT (e.g. 127.0.0.1:9400, :9400, 9400)")
    };
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(a);
    }
    let (host, port) = match t.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => ("", t),
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    let ip = if host.is_empty() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        crate::flood::plan::resolve_host(host.trim_matches(['[', ']']))
            .map_err(|e| e.to_string())?
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_addresses_default_to_loopback() {
        assert_eq!(parse_addr("9400").unwrap().to_string(), "127.0.0.1:9400");
        assert_eq!(parse_addr(":9400").unwrap().to_string(), "127.0.0.1:9400");
        assert_eq!(
            parse_addr("localhost:9400").unwrap().to_string(),
            "127.0.0.1:9400"
        );
        assert_eq!(
            parse_addr("0.0.0.0:9400").unwrap().to_string(),
            "0.0.0.0:9400"
        );
        assert!(parse_addr("9400x").unwrap_err().contains("9400x"));
        assert!(parse_addr("127.0.0.1:99999").is_err());
    }

    /// A burst of silent connects (more than [`MAX_CONNS`]) arrives while a
    /// scraper is half-way through its request: the silent ones are closed
    /// to make room, and the scrape is still answered.
    #[test]
    fn a_burst_of_idle_connects_does_not_cut_off_a_scrape_in_progress() {
        use std::io::{Read, Write};
        let labels = Labels::new(super::super::Role::Serve, Some("t"), None);
        let ep = Endpoint::start("127.0.0.1:0".parse().unwrap(), labels).unwrap();
        let addr = ep.addr();
        let mut scrape = std::net::TcpStream::connect(addr).unwrap();
        scrape.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let idle: Vec<_> = (0..MAX_CONNS * 3)
            .filter_map(|_| std::net::TcpStream::connect(addr).ok())
            .collect();
        assert!(idle.len() > MAX_CONNS, "only {} connected", idle.len());
        // Let the endpoint accept them all (each one past the cap closes
        // another).
        std::thread::sleep(Duration::from_millis(300));
        scrape.write_all(b"Host: t\r\n\r\n").unwrap();
        scrape
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut raw = String::new();
        scrape.read_to_string(&mut raw).unwrap();
        assert!(raw.starts_with("HTTP/1.1 200 OK"), "{raw:?}");
        drop(idle);
    }
}
