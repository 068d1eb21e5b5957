//! nginx's error.log (`2024/05/01 10:00:00 [crit] 1234#1234: *5
//! accept4() failed (24: Too many open files)`): the call with `() failed
//! (errno: text)`, and its own cap, `N worker_connections are not enough`.
//! Upstream errors name the connect to the backend.
use super::{Entry, Table};
use crate::catalogue::FailureId as F;

pub const TABLE: Table = Table {
    runtime: "nginx",
    traces: false,
    entries: &[
        Entry::new(
            "accept4() failed (24:",
            F::FdLimit,
            "accept",
            Some(24),
            "2024/05/01 10:00:00 [crit] 1234#1234: accept4() failed (24: Too many open files)",
        ),
        Entry::new(
            "accept() failed (24:",
            F::FdLimit,
            "accept",
            Some(24),
            "2024/05/01 10:00:00 [crit] 1234#1234: accept() failed (24: Too many open files)",
        ),
        Entry::new(
            "accept4() failed (23:",
            F::SystemFdLimit,
            "accept",
            Some(23),
            "2024/05/01 10:00:00 [crit] 1234#1234: accept4() failed (23: Too many open files in system)",
        ),
        Entry::new(
            "worker_connections are not enough",
            F::ServerConnectionLimit,
            "accept",
            None,
            "2024/05/01 10:00:00 [alert] 1234#1234: 1024 worker_connections are not enough",
        ),
        Entry::new(
            "socket() failed (24:",
            F::FdLimit,
            "socket",
            Some(24),
            "2024/05/01 10:00:00 [alert] 1234#1234: *7 socket() failed (24: Too many open files) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\"",
        ),
        Entry::new(
            "failed (99: cannot assign requested address)",
            F::EphemeralPortsExhausted,
            "connect",
            Some(99),
            "2024/05/01 10:00:00 [crit] 1234#1234: *9 connect() to 127.0.0.1:8080 failed (99: Cannot assign requested address) while connecting to upstream, client: 127.0.0.1",
        ),
        Entry::new(
            "failed (111: connection refused) while connecting to upstream",
            F::ConnectionRefused,
            "connect",
            Some(111),
            "2024/05/01 10:00:00 [error] 1234#1234: *3 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _",
        ),
        Entry::new(
            "upstream timed out (110:",
            F::ConnectTimeout,
            "connect",
            Some(110),
            "2024/05/01 10:00:00 [error] 1234#1234: *4 upstream timed out (110: Connection timed out) while connecting to upstream, client: 127.0.0.1",
        ),
        Entry::new(
            "recv() failed (104:",
            F::ConnectionReset,
            "recv",
            Some(104),
            "2024/05/01 10:00:00 [error] 1234#1234: *5 recv() failed (104: Connection reset by peer) while reading response header from upstream",
        ),
        Entry::new(
            "upstream prematurely closed connection",
            F::PeerDisconnect,
            "recv",
            None,
            "2024/05/01 10:00:00 [error] 1234#1234: *6 upstream prematurely closed connection while reading response header from upstream",
        ),
    ],
};
