//! The listening sockets of `c1m serve`. The parent opens every port once
//! (non-blocking, SO_REUSEADDR, backlog = the host's `net.core.somaxconn`),
//! and clears close-on-exec so that the worker processes inherit the very
//! same sockets and find them by fd number (`--listen-fds`). One accept queue
//! per port, shared by all workers: a worker that stops accepting leaves its
//! queued connections to the others instead of dropping them. Two opt-in
//! options live here too, both set on the listener before `listen()`:
//! TCP_DEFER_ACCEPT (`--defer-accept`) and TCP Fast Open (`--fast-open`),
//! each read back by the workers so that they read a connection at accept.
use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

use crate::sys::tcpopt::{get_tcp_int, set_tcp_int};

/// `net.core.somaxconn` of this network namespace (4096 if unreadable).
pub fn somaxconn() -> i32 {
    crate::sys::sysctl::Sysctl::proc()
        .read("net.core.somaxconn")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096)
}

/// How long TCP_DEFER_ACCEPT waits for a connection's first bytes.
pub const DEFER_ACCEPT_SECS: u32 = 3;

/// The opt-in options of the listeners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenOptions {
    /// TCP_DEFER_ACCEPT ([`DEFER_ACCEPT_SECS`]).
    pub defer_accept: bool,
    /// TCP_FASTOPEN, with the accept backlog as its queue of pending
    /// Fast Open requests.
    pub fast_open: bool,
}

/// Open `count` listeners on `bind:first ..= bind:first+count-1`, with the
/// options `opts` asks for. Fails naming the first port that cannot be
/// bound.
pub fn open(
    bind: IpAddr,
    first: u16,
    count: u16,
    opts: ListenOptions,
) -> anyhow::Result<Vec<Socket>> {
    let backlog = somaxconn();
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count {
        let port = first
            .checked_add(i)
            .with_context(|| format!("port {first} + {i} is beyond 65535"))?;
        let addr = SocketAddr::new(bind, port);
        let domain = if bind.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let sock = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))
            .with_context(|| format!("socket() for {addr}"))?;
        sock.set_reuse_address(true)
            .with_context(|| format!("SO_REUSEADDR on {addr}"))?;
        sock.bind(&addr.into())
            .with_context(|| format!("binding {addr}"))?;
        if opts.defer_accept {
            set_tcp_int(
                &sock,
                libc::TCP_DEFER_ACCEPT,
                DEFER_ACCEPT_SECS as libc::c_int,
            )
            .with_context(|| format!("TCP_DEFER_ACCEPT on {addr}"))?;
        }
        if opts.fast_open {
            set_tcp_int(&sock, libc::TCP_FASTOPEN, backlog)
                .with_context(|| format!("TCP_FASTOPEN on {addr}"))?;
        }
        sock.listen(backlog)
            .with_context(|| format!("listen({addr}, {backlog})"))?;
        sock.set_nonblocking(true)
            .with_context(|| format!("O_NONBLOCK on {addr}"))?;
        crate::sys::fds::set_cloexec(&sock, false)
            .with_context(|| format!("clearing FD_CLOEXEC on {addr}"))?;
        out.push(sock);
    }
    Ok(out)
}

/// TCP_DEFER_ACCEPT's seconds on listener `fd` (0 when unset or
/// unreadable): a worker asks it of the listeners its parent opened.
pub fn defer_accept_secs(fd: std::os::fd::RawFd) -> u32 {
    get_tcp_int(fd, libc::TCP_DEFER_ACCEPT)
}

/// TCP_FASTOPEN's queue length on listener `fd` (0 when unset or
/// unreadable): a worker asks it of the listeners its parent opened.
pub fn fast_open_queue(fd: std::os::fd::RawFd) -> u32 {
    get_tcp_int(fd, libc::TCP_FASTOPEN)
}

/// `net.ipv4.tcp_fastopen`'s bit for clients (send data in the SYN).
pub const FASTOPEN_CLIENT: u64 = 1;
/// `net.ipv4.tcp_fastopen`'s bit for servers (accept data in the SYN).
pub const FASTOPEN_SERVER: u64 = 2;

/// What `--fast-open` cannot do in this network namespace, if anything:
/// `net.ipv4.tcp_fastopen` (per namespace) lacks `bit`
/// ([`FASTOPEN_CLIENT`] or [`FASTOPEN_SERVER`]). The sockets still work,
/// with ordinary handshakes; the sentence says so and how to fix it.
pub fn fast_open_missing(sysctl: &crate::sys::sysctl::Sysctl, bit: u64) -> Option<String> {
    let side = if bit == FASTOPEN_SERVER {
        "server"
    } else {
        "client"
    };
    match sysctl.read_u64("net.ipv4.tcp_fastopen") {
        Some(v) if v & bit != 0 => None,
        Some(v) => Some(format!(
            "--fast-open: net.ipv4.tcp_fastopen is {v} in this network namespace, without the {side} bit ({bit}): connections use ordinary handshakes; set it to 3 (c1m lab --fast-open does, in its own namespace)"
        )),
        None => Some(format!(
            "--fast-open: net.ipv4.tcp_fastopen cannot be read in this network namespace: the {side} side of Fast Open may be off"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn listeners_are_inheritable_and_a_taken_port_is_named() {
        let socks = open("127.0.0.1".parse().unwrap(), 0, 1, ListenOptions::default()).unwrap();
        let fd = socks[0].as_raw_fd();
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, 0);
        let port = socks[0].local_addr().unwrap().as_socket().unwrap().port();
        let err = open(
            "127.0.0.1".parse().unwrap(),
            port,
            1,
            ListenOptions::default(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains(&format!("127.0.0.1:{port}")));
    }

    #[test]
    fn each_option_is_set_only_when_asked() {
        let lo = "127.0.0.1".parse().unwrap();
        let read = |o: ListenOptions| {
            let s = open(lo, 0, 1, o).unwrap();
            let fd = s[0].as_raw_fd();
            (defer_accept_secs(fd), fast_open_queue(fd))
        };
        assert_eq!(read(ListenOptions::default()), (0, 0));
        let (defer, fo) = read(ListenOptions {
            defer_accept: true,
            fast_open: false,
        });
        assert!(defer > 0, "TCP_DEFER_ACCEPT not set");
        assert_eq!(fo, 0);
        let (defer, fo) = read(ListenOptions {
            defer_accept: false,
            fast_open: true,
        });
        assert_eq!(defer, 0);
        assert_eq!(fo, somaxconn() as u32, "the Fast Open queue is the backlog");
    }

    #[test]
    fn a_namespace_without_the_fast_open_bit_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("net/ipv4");
        std::fs::create_dir_all(&key).unwrap();
        let sysctl = crate::sys::sysctl::Sysctl::new(dir.path());
        std::fs::write(key.join("tcp_fastopen"), "1\n").unwrap();
        assert_eq!(fast_open_missing(&sysctl, FASTOPEN_CLIENT), None);
        let why = fast_open_missing(&sysctl, FASTOPEN_SERVER).unwrap();
        assert!(
            why.contains("tcp_fastopen is 1") && why.contains("server bit"),
            "{why}"
        );
        std::fs::write(key.join("tcp_fastopen"), "3\n").unwrap();
        assert_eq!(fast_open_missing(&sysctl, FASTOPEN_SERVER), None);
        std::fs::remove_file(key.join("tcp_fastopen")).unwrap();
        assert!(fast_open_missing(&sysctl, FASTOPEN_CLIENT).is_some());
    }
}
