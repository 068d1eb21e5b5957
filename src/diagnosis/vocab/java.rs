//! Java's java.net exceptions as the JVM prints them (`Exception in thread
//! "main" java.net.BindException: Cannot assign requested address`), on
//! their own or after `Caused by:`. Stack frames (`\tat ...`) and `Caused
//! by:` chains are folded by the source: one event, classified by the
//! innermost cause. Examples are lines of tests/fixtures/runtimes/java_*,
//! made by running small programs into each failure (make.sh).
use super::{Entry, Table};
use crate::catalogue::FailureId as F;

pub const TABLE: Table = Table {
    runtime: "java",
    traces: true,
    entries: &[
        Entry::new(
            "java.net.bindexception: cannot assign requested address",
            F::EphemeralPortsExhausted,
            "connect",
            Some(99),
            "Exception in thread \"main\" java.net.BindException: Cannot assign requested address",
        ),
        Entry::new(
            "java.net.connectexception: connection refused",
            F::ConnectionRefused,
            "connect",
            Some(111),
            "Exception in thread \"main\" java.net.ConnectException: Connection refused",
        ),
        Entry::new(
            "java.net.sockettimeoutexception: connect timed out",
            F::ConnectTimeout,
            "connect",
            Some(110),
            "Caused by: java.net.SocketTimeoutException: Connect timed out",
        ),
        Entry::new(
            "java.net.connectexception: connection timed out",
            F::ConnectTimeout,
            "connect",
            Some(110),
            "java.net.ConnectException: Connection timed out",
        ),
        Entry::new(
            "java.net.socketexception: too many open files",
            F::FdLimit,
            "socket",
            Some(24),
            "Exception in thread \"main\" java.net.SocketException: Too many open files",
        )
        .except(&["in system"]),
        Entry::new(
            "java.io.ioexception: too many open files",
            F::FdLimit,
            "accept",
            Some(24),
            "Exception in thread \"main\" java.io.IOException: Too many open files",
        )
        .except(&["in system"]),
        Entry::new(
            "java.net.socketexception: connection reset",
            F::ConnectionReset,
            "recv",
            Some(104),
            "Exception in thread \"main\" java.net.SocketException: Connection reset",
        ),
        Entry::new(
            "java.net.socketexception: broken pipe",
            F::ConnectionReset,
            "send",
            Some(32),
            "java.net.SocketException: Broken pipe",
        ),
        Entry::new(
            "java.io.eofexception",
            F::PeerDisconnect,
            "recv",
            None,
            "Exception in thread \"main\" java.io.EOFException",
        ),
    ],
};
