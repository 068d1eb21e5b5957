//! glibc (and musl) error texts: the strerror strings and errno names any
//! C program prints through perror(3) or strerror(3), the calls a line
//! names, and the perror forms (`connect: Cannot assign requested
//! address`) whose call decides the failure. The strerror and name lists
//! are what the generic error-line parser matches when no runtime table
//! does (`parse::error_line`).
use super::{Entry, Table};
use crate::catalogue::FailureId as F;

/// strerror texts (lowercase) of the errnos a C1M run meets, glibc first,
/// then musl's wording, then Go's (which prints its own).
pub const STRERROR: &[(&[u8], i32)] = &[
    (b"too many open files in system", 23),
    (b"file table overflow", 23),
    (b"too many open files", 24),
    (b"no file descriptors available", 24),
    (b"cannot assign requested address", 99),
    (b"address not available", 99),
    (b"connection timed out", 110),
    (b"operation timed out", 110),
    (b"i/o timeout", 110),
    (b"connection refused", 111),
    (b"connection reset by peer", 104),
    (b"broken pipe", 32),
    (b"resource temporarily unavailable", 11),
    (b"operation would block", 11),
    (b"socket operation on non-socket", 88),
    (b"not a socket", 88),
    (b"no space left on device", 28),
    (b"no buffer space available", 105),
    (b"cannot allocate memory", 12),
    (b"out of memory", 12),
];

/// errno names as programs print them (`EMFILE`, Node's `connect EMFILE`).
pub const NAMES: &[(&[u8], i32)] = &[
    (b"ENFILE", 23),
    (b"EMFILE", 24),
    (b"EADDRNOTAVAIL", 99),
    (b"ETIMEDOUT", 110),
    (b"ECONNREFUSED", 111),
    (b"ECONNRESET", 104),
    (b"EPIPE", 32),
    (b"EAGAIN", 11),
    (b"EWOULDBLOCK", 11),
    (b"ENOTSOCK", 88),
    (b"ENOSPC", 28),
    (b"ENOBUFS", 105),
    (b"ENOMEM", 12),
];

/// Call words (lowercase) and the call they stand for.
pub const CALLS: &[(&[u8], &str)] = &[
    (b"epoll_ctl", "epoll_ctl"),
    (b"accept4", "accept"),
    (b"accept", "accept"),
    (b"connect", "connect"),
    (b"dial", "connect"),
    (b"socket", "socket"),
    (b"bind", "bind"),
    (b"listen", "listen"),
    (b"sendto", "send"),
    (b"sendmsg", "send"),
    (b"send", "send"),
    (b"recvfrom", "recv"),
    (b"recv", "recv"),
    (b"write", "write"),
    (b"read", "read"),
];

/// perror forms whose call matters (the rest go through the generic
/// parser with [`STRERROR`], [`NAMES`] and [`CALLS`]).
pub const TABLE: Table = Table {
    runtime: "glibc",
    traces: false,
    entries: &[
        Entry::new(
            "connect: cannot assign requested address",
            F::EphemeralPortsExhausted,
            "connect",
            Some(99),
            "connect: Cannot assign requested address",
        ),
        Entry::new(
            "connect: address not available",
            F::EphemeralPortsExhausted,
            "connect",
            Some(99),
            "connect: Address not available",
        ),
        Entry::new(
            "socket: too many open files",
            F::FdLimit,
            "socket",
            Some(24),
            "socket: Too many open files",
        )
        .except(&["in system"]),
        Entry::new(
            "accept: too many open files",
            F::FdLimit,
            "accept",
            Some(24),
            "accept: Too many open files",
        )
        .except(&["in system"]),
        Entry::new(
            "socket: no file descriptors available",
            F::FdLimit,
            "socket",
            Some(24),
            "socket: No file descriptors available",
        ),
        Entry::new(
            "connect: connection timed out",
            F::ConnectTimeout,
            "connect",
            Some(110),
            "connect: Connection timed out",
        ),
        Entry::new(
            "connect: connection refused",
            F::ConnectionRefused,
            "connect",
            Some(111),
            "connect: Connection refused",
        ),
        Entry::new(
            "epoll_ctl: no space left on device",
            F::EpollWatchLimit,
            "epoll_ctl",
            Some(28),
            "epoll_ctl: No space left on device",
        ),
    ],
};
