//! k6's request warnings (`WARN[0003] Request Failed error="Get
//! \"http://127.0.0.1:8080/\": dial: i/o timeout"`), Go's net errors
//! inside a logfmt `error=` field.
use super::{Entry, Table};
use crate::catalogue::FailureId as F;

pub const TABLE: Table = Table {
    runtime: "k6",
    traces: false,
    entries: &[
        Entry::new(
            "dial: i/o timeout",
            F::ConnectTimeout,
            "connect",
            Some(110),
            "WARN[0003] Request Failed                               error=\"Get \\\"http://127.0.0.1:8080/\\\": dial: i/o timeout\"",
        ),
        Entry::new(
            "read: connection reset by peer",
            F::ConnectionReset,
            "recv",
            Some(104),
            "WARN[0005] Request Failed                               error=\"Get \\\"http://127.0.0.1:8080/\\\": read tcp 127.0.0.1:40000->127.0.0.1:8080: read: connection reset by peer\"",
        )
        .also(&["request failed"]),
        Entry::new(
            "connect: connection refused",
            F::ConnectionRefused,
            "connect",
            Some(111),
            "WARN[0001] Request Failed                               error=\"Get \\\"http://127.0.0.1:8080/\\\": dial tcp 127.0.0.1:8080: connect: connection refused\"",
        )
        .also(&["request failed"]),
        Entry::new(
            "connect: cannot assign requested address",
            F::EphemeralPortsExhausted,
            "connect",
            Some(99),
            "WARN[0012] Request Failed                               error=\"Get \\\"http://127.0.0.1:8080/\\\": dial tcp 127.0.0.1:8080: connect: cannot assign requested address\"",
        )
        .also(&["request failed"]),
    ],
};
