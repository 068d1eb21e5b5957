//! tcpkali: the summary line of a ramp-up that did not reach its target
//! (`Could not create 2000 connections in allotted time (10s)`). Its
//! progress ribbon (`|====>----| 1013 of 2000 (7484)`) and traffic line
//! (`(conns 0↓ 1013↑ 987⇡; seen 7484)`) are counts, read by
//! `diagnosis::counts`.
use super::{Entry, Table};
use crate::catalogue::FailureId as F;

pub const TABLE: Table = Table {
    runtime: "tcpkali",
    traces: false,
    entries: &[Entry::new(
        "connections in allotted time",
        F::ConnectFailed,
        "connect",
        None,
        "Could not create 2000 connections in allotted time (10s)",
    )
    .also(&["could not create"])],
};
