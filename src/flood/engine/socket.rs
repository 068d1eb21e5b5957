//! Socket setup for one connection attempt: a non-blocking, close-on-exec
//! TCP socket (one `socket()` call with both flags, through socket2), the
//! path's source address bound with `IP_BIND_ADDRESS_NO_PORT` (through nix)
//! so the kernel picks the port at connect time per 4-tuple instead of
//! reserving one per bind, and a non-blocking `connect()`. Each failure
//! names the call and carries its errno, so the engine can count it.
//!
//! Unless told otherwise (`--separate-handshake-ack`, or a protocol whose
//! client sends nothing), TCP_DEFER_ACCEPT is set on the connecting socket.
//! On a socket that connects, Linux reads it as "data follows": when the
//! SYN-ACK comes, the socket is connected at once, but the handshake's
//! last ACK waits (at most 200 ms) for the first segment the socket sends,
//! which carries it. The engine writes its line as soon as the socket is
//! writable, so each connection sends one packet fewer (the nstat
//! counters: 6 segments out per echoed connection instead of 7), and the
//! server's kernel builds the accepted socket from the segment that
//! carries the line.
//!
//! Holding that ACK has a side effect, which [`ack_replies_at_once`]
//! undoes: the kernel takes a line sent within 40 ms of the SYN-ACK for a
//! reply in an interactive exchange ("ping-pong" mode) and then delays the
//! ACK of whatever comes back. Each connection's echo would then be
//! acknowledged by a delayed-ACK timer (the nstat counter
//! TcpExtDelayedACKs: one per connection), and on a busy host the
//! server's tail-loss probe fires before that timer does: a retransmitted
//! echo and a DSACK. Once the first line is written, TCP_QUICKACK leaves
//! that mode, so the echo is acknowledged as it arrives, as it is without
//! the option.
//!
//! With `--fast-open`, TCP_FASTOPEN_CONNECT (through nix) is set before
//! `connect()`: once the kernel holds the server's cookie, `connect()`
//! returns at once, the socket reports writable, and the engine's first
//! `write()` of the line sends the SYN with the line in it; without a
//! cookie (the first connection from a source to a server, or a server
//! without Fast Open) it is an ordinary handshake that asks for one.
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use mio::net::TcpStream;
use nix::sys::socket::setsockopt;
use nix::sys::socket::sockopt::{IpBindAddressNoPort, TcpFastOpenConnect};
use socket2::{Domain, Socket, Type};

use super::failure::errno_of;
use crate::flood::plan::Path;

/// The call of [`connect_nonblocking`] that failed, and its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetupError {
    pub call: &'static str,
    pub errno: i32,
}

/// The `call` of a failed `setsockopt(IP_BIND_ADDRESS_NO_PORT)`.
pub const BIND_NO_PORT_CALL: &str = "setsockopt";

/// The `call` of a failed `setsockopt(TCP_FASTOPEN_CONNECT)`.
pub const FAST_OPEN_CALL: &str = "setsockopt(TCP_FASTOPEN_CONNECT)";

/// The `call` of a failed `setsockopt(TCP_DEFER_ACCEPT)`.
pub const ACK_WITH_DATA_CALL: &str = "setsockopt(TCP_DEFER_ACCEPT)";

/// Open a socket on `path` and start connecting (with TCP Fast Open when
/// `fast_open`; with the handshake's ACK held for the first message when
/// `ack_with_data`). Returns the stream and the instant just before
/// `connect()`: the start of this connection's connect latency.
pub fn connect_nonblocking(
    path: &Path,
    fast_open: bool,
    ack_with_data: bool,
) -> Result<(TcpStream, Instant), SetupError> {
    let fail = |call: &'static str| {
        move |e: std::io::Error| SetupError {
            call,
            errno: errno_of(&e),
        }
    };
    let domain = match path.dest {
        SocketAddr::V4(_) => Domain::IPV4,
        SocketAddr::V6(_) => Domain::IPV6,
    };
    // socket2 adds SOCK_CLOEXEC on Linux; the socket is closed on every
    // error path below when `sock` drops.
    let sock = Socket::new(domain, Type::STREAM.nonblocking(), None).map_err(fail("socket"))?;
    if let Some(src) = path.source {
        if matches!(src, IpAddr::V4(_)) {
            setsockopt(&sock, IpBindAddressNoPort, &true).map_err(|e| SetupError {
                call: BIND_NO_PORT_CALL,
                errno: e as i32,
            })?;
        }
        sock.bind(&SocketAddr::new(src, 0).into())
            .map_err(fail("bind"))?;
    }
    if fast_open {
        setsockopt(&sock, TcpFastOpenConnect, &true).map_err(|e| SetupError {
            call: FAST_OPEN_CALL,
            errno: e as i32,
        })?;
    }
    if ack_with_data {
        // Any value above 0 holds the ACK back; the value (seconds) only
        // matters on a listener.
        crate::sys::tcpopt::set_tcp_int(&sock, libc::TCP_DEFER_ACCEPT, 1).map_err(|e| {
            SetupError {
                call: ACK_WITH_DATA_CALL,
                errno: errno_of(&e),
            }
        })?;
    }
    let started = Instant::now();
    match sock.connect(&path.dest.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(fail("connect")(e)),
    }
    Ok((
        TcpStream::from_std(std::net::TcpStream::from(sock)),
        started,
    ))
}

/// The first line of a connection set up with `ack_with_data` is written:
/// acknowledge what comes back at once instead of through a delayed-ACK
/// timer (see the module's notes). Linux only leaves its ping-pong mode
/// here; if it refuses, the echo's ACK is merely late, so that is not an
/// error of the connection.
pub fn ack_replies_at_once(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_socket_is_nonblocking_cloexec_and_bound_without_a_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let path = Path {
            source: Some(IpAddr::from([127, 0, 0, 1])),
            dest: listener.local_addr().expect("local_addr"),
        };
        let (stream, _) = connect_nonblocking(&path, false, false).expect("connect");
        let fd = stream.as_raw_fd();
        // SAFETY: fcntl F_GETFL/F_GETFD on a descriptor this test owns.
        let (fl, fdfl) = unsafe {
            (
                libc::fcntl(fd, libc::F_GETFL),
                libc::fcntl(fd, libc::F_GETFD),
            )
        };
        assert!(fl & libc::O_NONBLOCK != 0, "O_NONBLOCK not set");
        assert!(fdfl & libc::FD_CLOEXEC != 0, "FD_CLOEXEC not set");
        let on = nix::sys::socket::getsockopt(&stream, IpBindAddressNoPort).expect("getsockopt");
        assert!(on, "IP_BIND_ADDRESS_NO_PORT not set");
        let fo = nix::sys::socket::getsockopt(&stream, TcpFastOpenConnect).expect("getsockopt");
        assert!(!fo, "TCP_FASTOPEN_CONNECT set without --fast-open");
    }

    #[test]
    fn fast_open_is_asked_of_the_kernel_before_connect() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let path = Path {
            source: None,
            dest: listener.local_addr().expect("local_addr"),
        };
        let (stream, _) = connect_nonblocking(&path, true, false).expect("connect");
        let on = nix::sys::socket::getsockopt(&stream, TcpFastOpenConnect).expect("getsockopt");
        assert!(on, "TCP_FASTOPEN_CONNECT not set");
    }

    #[test]
    fn the_handshake_ack_is_held_for_data_only_when_asked() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let path = Path {
            source: None,
            dest: listener.local_addr().expect("local_addr"),
        };
        for ask in [true, false] {
            let (stream, _) = connect_nonblocking(&path, false, ask).expect("connect");
            let secs = crate::sys::tcpopt::get_tcp_int(stream.as_raw_fd(), libc::TCP_DEFER_ACCEPT);
            assert_eq!(secs > 0, ask, "TCP_DEFER_ACCEPT {secs} when asked {ask}");
        }
    }

    #[test]
    fn a_refused_setup_names_its_call() {
        // An IPv6 source on an IPv4 socket: bind() refuses it locally,
        // before any packet.
        let path = Path {
            source: Some("::1".parse().expect("address")),
            dest: SocketAddr::from(([127, 0, 0, 1], 9)),
        };
        let err = connect_nonblocking(&path, false, false).expect_err("bind with the wrong family");
        assert_eq!(err.call, "bind");
        assert_ne!(err.errno, 0);
    }
}
