//! Which kernel settings doctor may change where: the scope of a key (per
//! network namespace, host-wide, or a process attribute). Reading and
//! writing the tree itself is the leaf layer's [`crate::sys::sysctl`],
//! re-exported here (`C1M_SYSCTL_ROOT` redirects it for tests).
//!
//! `net.*` keys belong to the current network namespace, except a few that
//! the kernel keeps global (and that a child namespace does not show at
//! all): see [`scope`].
use serde::Serialize;

pub use crate::sys::sysctl::{Sysctl, SysctlError, Writable, same_value, squash, valid_key};

/// Whether a key lives in the network namespace or is host-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Per network namespace: changing it inside `unshare -n` leaves the
    /// host alone.
    Netns,
    /// Host-wide: changing it changes the host whatever the namespace.
    Global,
    /// A process attribute (rlimits).
    Process,
}

/// `net.*` keys that the kernel keeps host-wide (registered for the initial
/// namespace only, or read-only in children).
const GLOBAL_NET_KEYS: &[&str] = &[
    "net.ipv4.tcp_mem",
    "net.ipv4.udp_mem",
    "net.ipv4.tcp_max_orphans",
    "net.core.netdev_max_backlog",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.core.rmem_default",
    "net.core.wmem_default",
    "net.core.optmem_max",
    "net.netfilter.nf_conntrack_max",
    "net.nf_conntrack_max",
];

/// The scope of a key.
pub fn scope(key: &str) -> Scope {
    if key.starts_with("rlimit.") {
        Scope::Process
    } else if key.starts_with("net.") && !GLOBAL_NET_KEYS.contains(&key) {
        Scope::Netns
    } else {
        Scope::Global
    }
}
