//! HAProxy and Envoy: HAProxy's alerts when a proxy reaches its `maxconn`
//! or the process fd limit, and `Connect() failed for backend X: no free
//! ports.`; Envoy's `upstream connect error or disconnect/reset before
//! headers. reset reason: overflow` (a circuit breaker) and its delayed
//! connect errors with the errno.
use super::{Entry, Table};
use crate::catalogue::FailureId as F;

pub const TABLE: Table = Table {
    runtime: "haproxy/envoy",
    traces: false,
    entries: &[
        Entry::new(
            "reached the configured maximum connection limit",
            F::ServerConnectionLimit,
            "accept",
            None,
            "[WARNING]  (8) : Proxy fe_main reached the configured maximum connection limit. Please check the global 'maxconn' value.",
        ),
        Entry::new(
            "reached process fd limit",
            F::FdLimit,
            "accept",
            Some(24),
            "[WARNING]  (8) : Proxy fe_main reached process FD limit (maxsock=4096). Please check 'ulimit-n' and restart.",
        ),
        Entry::new(
            "reached system fd limit",
            F::SystemFdLimit,
            "accept",
            Some(23),
            "[WARNING]  (8) : Proxy fe_main reached system FD limit (maxsock=4096). Please check system tunables.",
        ),
        Entry::new(
            "no free ports",
            F::EphemeralPortsExhausted,
            "connect",
            Some(99),
            "[ALERT]    (8) : Connect() failed for backend be_app: no free ports.",
        )
        .also(&["connect() failed for backend"]),
        Entry::new(
            "reset reason: overflow",
            F::ServerConnectionLimit,
            "connect",
            None,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow",
        ),
        Entry::new(
            "delayed connect error: 111",
            F::ConnectionRefused,
            "connect",
            Some(111),
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: delayed connect error: 111",
        ),
        Entry::new(
            "delayed connect error: 99",
            F::EphemeralPortsExhausted,
            "connect",
            Some(99),
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: delayed connect error: 99",
        ),
        Entry::new(
            "reset reason: connection timeout",
            F::ConnectTimeout,
            "connect",
            Some(110),
            "upstream connect error or disconnect/reset before headers. reset reason: connection timeout",
        ),
    ],
};
