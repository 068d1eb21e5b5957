//! Descriptors handed from a parent to its children across exec: whether an
//! inherited fd number really is a listening socket, and the close-on-exec
//! flag that decides what a child inherits. serve's listeners and the
//! metrics endpoint both pass sockets this way; this is the one place that
//! says how.
use std::io;
use std::os::fd::{AsFd, RawFd};

use nix::fcntl::{FcntlArg, FdFlag, fcntl};

/// Is `fd` an open listening socket? Asked before a process adopts an fd
/// number from its command line, so that a wrong number is an error instead
/// of some other descriptor being taken over (and later closed).
pub fn is_listening_socket(fd: RawFd) -> bool {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `val`; a closed or
    // foreign fd makes it fail (EBADF, ENOTSOCK), which answers no.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut val as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && val == 1
}

/// Set (`on`) or clear FD_CLOEXEC on `fd`: cleared, the descriptor is
/// inherited by the programs this process starts; set, it is not.
pub fn set_cloexec(fd: impl AsFd, on: bool) -> io::Result<()> {
    let fd = fd.as_fd();
    let flags = FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD)?);
    let flags = if on {
        flags | FdFlag::FD_CLOEXEC
    } else {
        flags - FdFlag::FD_CLOEXEC
    };
    fcntl(fd, FcntlArg::F_SETFD(flags))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_listener_is_one_and_a_connected_or_closed_fd_is_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(is_listening_socket(l.as_raw_fd()));
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert!(!is_listening_socket(c.as_raw_fd()));
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(!is_listening_socket(file.as_raw_fd()));
        assert!(!is_listening_socket(-1));
    }

    #[test]
    fn cloexec_is_set_and_cleared() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let flag = |l: &std::net::TcpListener| {
            FdFlag::from_bits_truncate(fcntl(l, FcntlArg::F_GETFD).unwrap())
                .contains(FdFlag::FD_CLOEXEC)
        };
        set_cloexec(&l, false).unwrap();
        assert!(!flag(&l));
        set_cloexec(&l, true).unwrap();
        assert!(flag(&l));
    }
}
