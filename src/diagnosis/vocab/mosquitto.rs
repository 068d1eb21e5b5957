//! Mosquitto's log (`1796237667: ...`, or with `log_timestamp_format`).
//! A broker at `max_connections` closes new sockets without a word, so
//! that cap shows only on the clients' side (c1m flood: the broker closed
//! the connection before its CONNACK); its fd limit and refusals do show.
use super::{Entry, Table};
use crate::catalogue::FailureId as F;

pub const TABLE: Table = Table {
    runtime: "mosquitto",
    traces: false,
    entries: &[
        Entry::new(
            "system socket count has been exceeded",
            F::FdLimit,
            "accept",
            Some(24),
            "1796237667: Unable to accept new connection, system socket count has been exceeded. Try increasing \"ulimit -n\" or equivalent.",
        ),
        Entry::new(
            "disconnected, not authorised",
            F::ProtocolRefused,
            "recv",
            None,
            "1796237667: Client c1m-17 disconnected, not authorised.",
        ),
        Entry::new(
            "connection refused: broker unavailable",
            F::ServerConnectionLimit,
            "recv",
            None,
            "1796237667: Connection Refused: broker unavailable",
        ),
        Entry::new(
            "disconnected due to protocol error",
            F::ProtocolMismatch,
            "recv",
            None,
            "1796237667: Client <unknown> disconnected due to protocol error.",
        ),
    ],
};
