//! Go's net package: `dial tcp A:P: connect: ...` on the client side, the
//! http server's `Accept error: ... accept4: too many open files; retrying
//! in 5ms`, `i/o timeout` from deadlines, and `EOF` / `unexpected EOF`
//! when the peer closed. (Documented forms of net.OpError and net/http.)
use super::{Entry, Table};
use crate::catalogue::FailureId as F;

pub const TABLE: Table = Table {
    runtime: "go",
    traces: false,
    entries: &[
        Entry::new(
            "connect: cannot assign requested address",
            F::EphemeralPortsExhausted,
            "connect",
            Some(99),
            "dial tcp 127.0.0.1:8080: connect: cannot assign requested address",
        )
        .also(&["dial tcp"]),
        Entry::new(
            ": i/o timeout",
            F::ConnectTimeout,
            "connect",
            Some(110),
            "dial tcp 127.0.0.1:8080: i/o timeout",
        )
        .also(&["dial tcp"]),
        Entry::new(
            "connect: connection timed out",
            F::ConnectTimeout,
            "connect",
            Some(110),
            "dial tcp 127.0.0.1:8080: connect: connection timed out",
        )
        .also(&["dial tcp"]),
        Entry::new(
            "connect: connection refused",
            F::ConnectionRefused,
            "connect",
            Some(111),
            "dial tcp 127.0.0.1:8080: connect: connection refused",
        )
        .also(&["dial tcp"]),
        Entry::new(
            "socket: too many open files",
            F::FdLimit,
            "socket",
            Some(24),
            "dial tcp 127.0.0.1:8080: socket: too many open files",
        )
        .except(&["in system"])
        .also(&["dial tcp"]),
        Entry::new(
            "accept4: too many open files; retrying in",
            F::FdLimit,
            "accept",
            Some(24),
            "2024/05/01 10:00:00 http: Accept error: accept tcp [::]:8080: accept4: too many open files; retrying in 5ms",
        ),
        Entry::new(
            "read: connection reset by peer",
            F::ConnectionReset,
            "recv",
            Some(104),
            "read tcp 127.0.0.1:40000->127.0.0.1:8080: read: connection reset by peer",
        )
        .also(&["read tcp"]),
        Entry::new(
            "write: broken pipe",
            F::ConnectionReset,
            "send",
            Some(32),
            "write tcp 127.0.0.1:40000->127.0.0.1:8080: write: broken pipe",
        )
        .also(&["write tcp"]),
        Entry::new(
            ": unexpected eof",
            F::PeerDisconnect,
            "recv",
            None,
            "2024/05/01 10:00:01 read 127.0.0.1:8080: unexpected EOF",
        ),
        Entry::new(
            "\": eof",
            F::PeerDisconnect,
            "recv",
            None,
            "Get \"http://127.0.0.1:8080/\": EOF",
        ),
    ],
};
