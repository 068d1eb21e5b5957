//! Python's socket and asyncio errors: `OSError: [Errno N] ...`, the
//! named subclasses (`ConnectionRefusedError`, `ConnectionResetError`,
//! `BrokenPipeError`), the bare `TimeoutError: timed out` of a socket
//! timeout (`socket.timeout` before 3.10), asyncio's
//! `IncompleteReadError` at end of file and its `socket.accept() out of
//! system resource` log line. Tracebacks and chained exceptions are folded
//! by the source. Examples are lines of tests/fixtures/runtimes/python_*.
use super::{Entry, Table};
use crate::catalogue::FailureId as F;

pub const TABLE: Table = Table {
    runtime: "python",
    traces: true,
    entries: &[
        Entry::new(
            "oserror: [errno 99] cannot assign requested address",
            F::EphemeralPortsExhausted,
            "connect",
            Some(99),
            "OSError: [Errno 99] Cannot assign requested address",
        ),
        Entry::new(
            "oserror: [errno 24] too many open files",
            F::FdLimit,
            "socket",
            Some(24),
            "OSError: [Errno 24] Too many open files",
        ),
        Entry::new(
            "socket.accept() out of system resource",
            F::FdLimit,
            "accept",
            Some(24),
            "socket.accept() out of system resource",
        ),
        Entry::new(
            "connectionrefusederror: [errno 111]",
            F::ConnectionRefused,
            "connect",
            Some(111),
            "ConnectionRefusedError: [Errno 111] Connection refused",
        ),
        Entry::new(
            "timeouterror: timed out",
            F::ConnectTimeout,
            "connect",
            Some(110),
            "TimeoutError: timed out",
        ),
        Entry::new(
            "socket.timeout: timed out",
            F::ConnectTimeout,
            "connect",
            Some(110),
            "socket.timeout: timed out",
        ),
        Entry::new(
            "timeouterror: [errno 110]",
            F::ConnectTimeout,
            "connect",
            Some(110),
            "TimeoutError: [Errno 110] Connection timed out",
        ),
        Entry::new(
            "connectionreseterror: [errno 104]",
            F::ConnectionReset,
            "recv",
            Some(104),
            "ConnectionResetError: [Errno 104] Connection reset by peer",
        ),
        Entry::new(
            "brokenpipeerror: [errno 32]",
            F::ConnectionReset,
            "send",
            Some(32),
            "BrokenPipeError: [Errno 32] Broken pipe",
        ),
        Entry::new(
            "incompletereaderror:",
            F::PeerDisconnect,
            "recv",
            None,
            "asyncio.exceptions.IncompleteReadError: 0 bytes read on a total of 16 expected bytes",
        ),
    ],
};
