//! Integer `IPPROTO_TCP` socket options that neither socket2 nor nix wraps:
//! TCP_DEFER_ACCEPT (a listener's, and a connecting socket's: see
//! `flood::engine::socket`) and a listener's TCP_FASTOPEN queue.
use std::os::fd::{AsRawFd, RawFd};

/// Set integer option `opt` of `IPPROTO_TCP` on `sock` to `val`.
pub fn set_tcp_int(sock: &impl AsRawFd, opt: libc::c_int, val: libc::c_int) -> std::io::Result<()> {
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `val`.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            opt,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Integer option `opt` of `IPPROTO_TCP` on `fd`, 0 when unset or
/// unreadable.
pub fn get_tcp_int(fd: RawFd, opt: libc::c_int) -> u32 {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `val`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            opt,
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
    fn an_option_set_reads_back_and_a_bad_one_is_an_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(get_tcp_int(l.as_raw_fd(), libc::TCP_DEFER_ACCEPT), 0);
        set_tcp_int(&l, libc::TCP_DEFER_ACCEPT, 3).unwrap();
        // The kernel keeps retransmissions, and gives back seconds.
        assert!(get_tcp_int(l.as_raw_fd(), libc::TCP_DEFER_ACCEPT) >= 3);
        let err = set_tcp_int(&l, 9999, 1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOPROTOOPT));
        assert_eq!(get_tcp_int(-1, libc::TCP_DEFER_ACCEPT), 0);
    }
}
