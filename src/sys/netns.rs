//! Throwaway network namespaces. `net.*` sysctls, the loopback device, the
//! TCP counters and the conntrack table are per network namespace, so the lab
//! and its failure scenarios move into a private one to tune `net.*` keys
//! (a narrow port range, a small somaxconn) without touching the host, and to
//! read counters that only their own traffic moved. Leaving is automatic: the
//! namespace disappears with the last process in it.
//!
//! `unshare(CLONE_NEWNET)` moves only the calling thread; threads it spawns
//! and processes it starts afterwards inherit the namespace. Callers enter
//! the namespace first and read `/proc/thread-self/net/...` from that thread.
use std::io;

use super::sysctl::Sysctl;

/// Move the calling thread into a new network namespace and bring its
/// loopback up. Needs CAP_SYS_ADMIN; the error says so.
pub fn enter_private() -> io::Result<()> {
    // SAFETY: unshare takes flags only; it affects the calling thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!(
                "unshare(CLONE_NEWNET) failed ({e}): a private network namespace needs root (CAP_SYS_ADMIN)"
            ),
        ));
    }
    loopback_up()
}

/// Set IFF_UP on `lo` in the current namespace (what `ip link set lo up` does).
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket/ioctl calls on a zeroed ifreq whose name we fill.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut result = Ok(());
        if libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            result = Err(io::Error::last_os_error());
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req) < 0 {
                result = Err(io::Error::last_os_error());
            }
        }
        libc::close(fd);
        result.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("bringing up lo in the new namespace: {e}"),
            )
        })
    }
}

/// Write a `net.*` sysctl of the current thread's namespace, e.g.
/// `("net.ipv4.ip_local_port_range", "40000 40099")`.
pub fn write_sysctl(key: &str, value: &str) -> io::Result<()> {
    Sysctl::proc().write(key, value).map_err(io::Error::from)
}

/// Read a sysctl of the current thread's namespace, trimmed.
pub fn read_sysctl(key: &str) -> io::Result<String> {
    Sysctl::proc().read(key).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_namespace_has_its_own_loopback_and_sysctls() {
        let host_range = read_sysctl("net.ipv4.ip_local_port_range").unwrap();
        // A dedicated thread: only it moves into the namespace.
        let inside = std::thread::spawn(|| -> io::Result<(String, bool)> {
            enter_private()?;
            write_sysctl("net.ipv4.ip_local_port_range", "40000 40099")?;
            let range = read_sysctl("net.ipv4.ip_local_port_range")?;
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let connected = std::net::TcpStream::connect(listener.local_addr()?).is_ok();
            Ok((range, connected))
        })
        .join()
        .unwrap();
        match inside {
            Ok((range, connected)) => {
                assert_eq!(
                    range.split_whitespace().collect::<Vec<_>>(),
                    ["40000", "40099"]
                );
                assert!(connected, "loopback must be up inside the namespace");
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                eprintln!("SKIPPED private_namespace test: {e}");
            }
            Err(e) => panic!("{e}"),
        }
        assert_eq!(
            read_sysctl("net.ipv4.ip_local_port_range").unwrap(),
            host_range,
            "host must be unchanged"
        );
    }
}
