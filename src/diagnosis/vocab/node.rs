//! Node.js errors (`Error: connect EADDRNOTAVAIL 127.0.0.1:9002 - Local
//! (0.0.0.0:0)`, `Error: read ECONNRESET`, `Error: accept EMFILE`...): the
//! syscall word then the errno name. The error object Node prints after
//! them (`errno: -99,`, `code: 'EADDRNOTAVAIL'`...) is folded into the
//! same event by the source. Examples are lines of
//! tests/fixtures/runtimes/node_*.
use super::{Entry, Table};
use crate::catalogue::FailureId as F;

pub const TABLE: Table = Table {
    runtime: "node",
    traces: true,
    entries: &[
        Entry::new(
            "connect eaddrnotavail",
            F::EphemeralPortsExhausted,
            "connect",
            Some(99),
            "Error: connect EADDRNOTAVAIL 127.0.0.1:9002 - Local (0.0.0.0:0)",
        ),
        Entry::new(
            "connect etimedout",
            F::ConnectTimeout,
            "connect",
            Some(110),
            "Error: connect ETIMEDOUT 127.0.0.1:9004",
        ),
        Entry::new(
            "connect econnrefused",
            F::ConnectionRefused,
            "connect",
            Some(111),
            "Error: connect ECONNREFUSED 127.0.0.1:9003",
        ),
        Entry::new(
            "read econnreset",
            F::ConnectionReset,
            "recv",
            Some(104),
            "Error: read ECONNRESET",
        ),
        Entry::new(
            "write epipe",
            F::ConnectionReset,
            "send",
            Some(32),
            "Error: write EPIPE",
        ),
        Entry::new(
            "connect emfile",
            F::FdLimit,
            "socket",
            Some(24),
            "Error: connect EMFILE 127.0.0.1:9001 - Local (undefined:undefined)",
        ),
        Entry::new(
            "accept emfile",
            F::FdLimit,
            "accept",
            Some(24),
            "Error: accept EMFILE",
        ),
        Entry::new(
            "this socket has been ended by the other party",
            F::PeerDisconnect,
            "send",
            Some(32),
            "Error: This socket has been ended by the other party",
        ),
        // The HTTP client's request ended by the server's FIN before any
        // response (Node gives it the code ECONNRESET).
        Entry::new(
            "error: socket hang up",
            F::PeerDisconnect,
            "recv",
            None,
            "Error: socket hang up",
        ),
    ],
};
