//! Redis's log (`5035:M 02 Dec 2026 19:03:04.276 # ...`) and its error
//! replies as clients print them. A Redis server is one process: when its
//! fd limit is below `maxclients` + 32 it lowers `maxclients` itself and
//! says so at start (Redis 6+: `maxclients has been reduced to N`; before:
//! `Unable to set the max number of files limit ... setting the max clients
//! configuration to N`). Clients past that get `-ERR max number of clients
//! reached`.
use super::{Entry, Table};
use crate::catalogue::FailureId as F;

pub const TABLE: Table = Table {
    runtime: "redis",
    traces: false,
    entries: &[
        Entry::new(
            "maxclients has been reduced to",
            F::FdLimit,
            "setrlimit",
            None,
            "5035:M 02 Dec 2026 19:03:04.276 # Current maximum open files is 20000. maxclients has been reduced to 19968 to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'.",
        ),
        Entry::new(
            "setting the max clients configuration to",
            F::FdLimit,
            "setrlimit",
            None,
            "1234:M 01 May 2016 10:00:00.000 # Unable to set the max number of files limit to 30032 (Operation not permitted), setting the max clients configuration to 19968.",
        ),
        Entry::new(
            "max number of clients reached",
            F::ServerConnectionLimit,
            "recv",
            None,
            "(error) ERR max number of clients reached",
        ),
        Entry::new(
            "error accepting a client connection",
            F::FdLimit,
            "accept",
            Some(24),
            "5035:M 02 Dec 2026 19:03:05.001 # Error accepting a client connection: accept: Too many open files (addr=127.0.0.1:6379 laddr=127.0.0.1:6379)",
        )
        .also(&["too many open files"]),
    ],
};
