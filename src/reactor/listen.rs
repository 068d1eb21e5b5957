//! The listening sockets of `c1m serve`. The parent opens every port once
//! (non-blocking, SO_REUSEADDR, backlog = the host's `net.core.somaxconn`),
//! and clears close-on-exec so that the worker processes inherit the very
//! same sockets and find them by fd number (`--listen-fds`). One accept queue
//! per port, shared by all workers: a worker that stops accepting leaves its
//! queued connections to the others instead of dropping them.
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

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

/// Open `count` listeners on `bind:first ..= bind:first+count-1`, with
/// TCP_DEFER_ACCEPT when `defer_accept`. Fails naming the first port that
/// cannot be bound.
pub fn open(
    bind: IpAddr,
    first: u16,
    count: u16,
    defer_accept: bool,
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
        if defer_accept {
            set_defer_accept(&sock, DEFER_ACCEPT_SECS)
                .with_context(|| format!("TCP_DEFER_ACCEPT on {addr}"))?;
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

/// TCP_DEFER_ACCEPT (neither socket2 nor nix wraps it).
fn set_defer_accept(sock: &Socket, secs: u32) -> std::io::Result<()> {
    let val = secs as libc::c_int;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `val`.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// TCP_DEFER_ACCEPT's seconds on listener `fd` (0 when unset or
/// unreadable): a worker asks it of the listeners its parent opened.
pub fn defer_accept_secs(fd: std::os::fd::RawFd) -> u32 {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `val`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&mut val as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 { val.max(0) as u32 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_inheritable_and_a_taken_port_is_named() {
        let socks = open("127.0.0.1".parse().unwrap(), 0, 1, false).unwrap();
        let fd = socks[0].as_raw_fd();
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, 0);
        let port = socks[0].local_addr().unwrap().as_socket().unwrap().port();
        let err = open("127.0.0.1".parse().unwrap(), port, 1, false).unwrap_err();
        assert!(format!("{err:#}").contains(&format!("127.0.0.1:{port}")));
    }

    #[test]
    fn defer_accept_is_set_only_when_asked() {
        let get = |s: &Socket| defer_accept_secs(s.as_raw_fd());
        let on = open("127.0.0.1".parse().unwrap(), 0, 1, true).unwrap();
        assert!(get(&on[0]) > 0, "TCP_DEFER_ACCEPT not set");
        let off = open("127.0.0.1".parse().unwrap(), 0, 1, false).unwrap();
        assert_eq!(get(&off[0]), 0);
    }
}
