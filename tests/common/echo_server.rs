//! A small echo server for flood's integration tests (c1m serve is built
//! elsewhere): one mio thread, listening on 127.0.0.1 on a run of ports
//! picked at random inside flood's band ([`FLOOD_BAND`]) and checked to
//! all bind. It echoes every byte, counts accepts per port, and can be
//! "killed": every connection reset (SO_LINGER 0) and every listener closed.
//! Some ports can instead get a listener with backlog 1 that never accepts,
//! to make connects time out. Dropping the server stops its thread.
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::{FLOOD_BAND, bind_run, c1m, wait_bounded};

pub struct EchoServer {
    pub base: u16,
    pub ports: u16,
    stop: Arc<AtomicBool>,
    kill: Arc<AtomicBool>,
    pub accepted: Arc<Vec<AtomicU64>>,
    pub open: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    /// Listeners that never accept (kept open until drop).
    _dead: Vec<socket2::Socket>,
}

/// What each port of the run should be.
#[derive(Clone, Copy, PartialEq)]
pub enum PortKind {
    Echo,
    /// Listener with backlog 1 that never accepts.
    NeverAccept,
    /// Nothing listens (the port was free when picked).
    Closed,
}

impl EchoServer {
    pub fn start(ports: u16) -> EchoServer {
        Self::start_with(&vec![PortKind::Echo; ports as usize])
    }

    pub fn start_with(kinds: &[PortKind]) -> EchoServer {
        let (base, std_ls) = bind_run(FLOOD_BAND, kinds.len() as u16);
        let mut listeners = Vec::new();
        let mut dead = Vec::new();
        for (i, l) in std_ls.into_iter().enumerate() {
            match kinds[i] {
                PortKind::Echo => {
                    // listen() again raises std's backlog, so a busy test
                    // machine does not drop SYNs of a 1000-connect window.
                    socket2::SockRef::from(&l).listen(4096).unwrap();
                    l.set_nonblocking(true).unwrap();
                    listeners.push((i, TcpListener::from_std(l)));
                }
                PortKind::NeverAccept => {
                    drop(l);
                    let s =
                        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                            .unwrap();
                    s.set_reuse_address(true).unwrap();
                    let addr: SocketAddr = ([127, 0, 0, 1], base + i as u16).into();
                    s.bind(&addr.into()).unwrap();
                    s.listen(1).unwrap();
                    dead.push(s);
                }
                PortKind::Closed => drop(l),
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let kill = Arc::new(AtomicBool::new(false));
        let accepted: Arc<Vec<AtomicU64>> =
            Arc::new((0..kinds.len()).map(|_| AtomicU64::new(0)).collect());
        let open = Arc::new(AtomicU64::new(0));
        let (s2, k2, a2, o2) = (stop.clone(), kill.clone(), accepted.clone(), open.clone());
        let thread = std::thread::spawn(move || run(listeners, s2, k2, a2, o2));
        EchoServer {
            base,
            ports: kinds.len() as u16,
            stop,
            kill,
            accepted,
            open,
            thread: Some(thread),
            _dead: dead,
        }
    }

    pub fn total_accepted(&self) -> u64 {
        self.accepted.iter().map(|a| a.load(Ordering::SeqCst)).sum()
    }

    /// Reset every connection and close the listeners, as a crashed server.
    pub fn kill(&mut self) {
        self.kill.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    mut listeners: Vec<(usize, TcpListener)>,
    stop: Arc<AtomicBool>,
    kill: Arc<AtomicBool>,
    accepted: Arc<Vec<AtomicU64>>,
    open: Arc<AtomicU64>,
) {
    let mut poll = Poll::new().unwrap();
    for (j, (_, l)) in listeners.iter_mut().enumerate() {
        poll.registry()
            .register(l, Token(j), Interest::READABLE)
            .unwrap();
    }
    let nl = listeners.len();
    let mut conns: HashMap<usize, TcpStream> = HashMap::new();
    let mut next = nl;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 4096];
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if kill.load(Ordering::SeqCst) {
            for (_, c) in conns.drain() {
                let s = socket2::SockRef::from(&c);
                let _ = s.set_linger(Some(Duration::ZERO));
            }
            open.store(0, Ordering::SeqCst);
            return;
        }
        if poll
            .poll(&mut events, Some(Duration::from_millis(20)))
            .is_err()
        {
            continue;
        }
        for ev in events.iter() {
            let t = ev.token().0;
            if t < nl {
                loop {
                    match listeners[t].1.accept() {
                        Ok((mut c, _)) => {
                            accepted[listeners[t].0].fetch_add(1, Ordering::SeqCst);
                            open.fetch_add(1, Ordering::SeqCst);
                            poll.registry()
                                .register(&mut c, Token(next), Interest::READABLE)
                                .unwrap();
                            conns.insert(next, c);
                            next += 1;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let mut close = false;
            if let Some(c) = conns.get_mut(&t) {
                loop {
                    match c.read(&mut buf) {
                        Ok(0) => {
                            close = true;
                            break;
                        }
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                close = true;
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => {
                            close = true;
                            break;
                        }
                    }
                }
            }
            if close {
                conns.remove(&t);
                open.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// `c1m flood 127.0.0.1 BASE --ports N --connections C EXTRA...` against
/// every port of `server`.
pub fn flood(server: &EchoServer, connections: u64, extra: &[&str]) -> Command {
    let (base, ports, n) = (
        server.base.to_string(),
        server.ports.to_string(),
        connections.to_string(),
    );
    let mut args = vec![
        "flood",
        "127.0.0.1",
        &base,
        "--ports",
        &ports,
        "--connections",
        &n,
    ];
    args.extend_from_slice(extra);
    c1m(&args)
}

/// Run [`flood`] to completion (bounded).
pub fn run_flood(server: &EchoServer, connections: u64, extra: &[&str]) -> Output {
    wait_bounded(
        flood(server, connections, extra).spawn().unwrap(),
        Duration::from_secs(60),
    )
}
