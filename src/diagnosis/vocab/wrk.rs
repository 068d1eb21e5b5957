//! wrk's summary: `Socket errors: connect N, read N, write N, timeout N`.
//! Each field counts failures: `connect` every failed connect() whatever
//! its errno (wrk does not print it), `read` and `write` mostly resets,
//! `timeout` requests without a response within --timeout.
use super::{Entry, Table};
use crate::catalogue::FailureId as F;

pub const TABLE: Table = Table {
    runtime: "wrk",
    traces: false,
    entries: &[Entry::new(
        "socket errors: connect",
        F::ConnectFailed,
        "connect",
        None,
        "  Socket errors: connect 983, read 0, write 0, timeout 17",
    )
    .fields(&[
        ("connect", F::ConnectFailed),
        ("read", F::ConnectionReset),
        ("write", F::ConnectionReset),
        ("timeout", F::ConnectTimeout),
    ])],
};
