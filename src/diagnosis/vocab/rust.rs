//! Rust's std::io::Error in its Debug form (`Os { code: 99, kind:
//! AddrNotAvailable, message: "Cannot assign requested address" }`) and
//! Display form (`Cannot assign requested address (os error 99)`), and
//! tokio's `deadline has elapsed` from a timed-out connect.
use super::{Entry, Table};
use crate::catalogue::FailureId as F;

pub const TABLE: Table = Table {
    runtime: "rust",
    traces: true,
    entries: &[
        Entry::new(
            "kind: addrnotavailable",
            F::EphemeralPortsExhausted,
            "connect",
            Some(99),
            "Error: Os { code: 99, kind: AddrNotAvailable, message: \"Cannot assign requested address\" }",
        ),
        Entry::new(
            "(os error 99)",
            F::EphemeralPortsExhausted,
            "connect",
            Some(99),
            "Error: Cannot assign requested address (os error 99)",
        ),
        Entry::new(
            "(os error 24)",
            F::FdLimit,
            "",
            Some(24),
            "thread 'main' panicked at src/main.rs:12:50: called `Result::unwrap()` on an `Err` value: Too many open files (os error 24)",
        ),
        Entry::new(
            "message: \"too many open files\"",
            F::FdLimit,
            "socket",
            Some(24),
            "Error: Os { code: 24, kind: Uncategorized, message: \"Too many open files\" }",
        )
        .except(&["in system"]),
        Entry::new(
            "kind: timedout",
            F::ConnectTimeout,
            "connect",
            Some(110),
            "Error: Os { code: 110, kind: TimedOut, message: \"Connection timed out\" }",
        ),
        Entry::new(
            "kind: connectionrefused",
            F::ConnectionRefused,
            "connect",
            Some(111),
            "Error: Os { code: 111, kind: ConnectionRefused, message: \"Connection refused\" }",
        ),
        Entry::new(
            "kind: connectionreset",
            F::ConnectionReset,
            "recv",
            Some(104),
            "Error: Os { code: 104, kind: ConnectionReset, message: \"Connection reset by peer\" }",
        ),
        Entry::new(
            "kind: unexpectedeof",
            F::PeerDisconnect,
            "recv",
            None,
            "Error: Kind(UnexpectedEof) kind: UnexpectedEof",
        ),
        Entry::new(
            "deadline has elapsed",
            F::ConnectTimeout,
            "connect",
            Some(110),
            "connect to 127.0.0.1:8080 failed: deadline has elapsed",
        ),
    ],
};
