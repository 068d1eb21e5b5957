//! Host tuning for C1M runs: what `c1m doctor` checks, applies, rolls back
//! and persists, and the capacity estimate other commands size themselves
//! with.
//!
//! - [`profile`]: the profile file format (`profiles/*.conf`), includes,
//!   comparisons and target scaling.
//! - [`sysctl`]: key scopes (per network namespace or global); the tree
//!   itself (`/proc/sys`, `C1M_SYSCTL_ROOT` for tests) is
//!   `crate::sys::sysctl`, re-exported there.
//! - RLIMIT_NOFILE and CAP_SYS_RESOURCE are read in `crate::sys::limits`,
//!   `/proc` files in `crate::sys::procfs`.
//! - [`snapshot`](mod@snapshot): one reading of every limit ([`snapshot()`]).
//! - [`capacity`]: `capacity::estimate(&snapshot, &Plan) -> Capacity` with
//!   `max_connections`, `binding`, `per_process_sockets`,
//!   `processes_needed` and every `limits` entry; `Capacity::paragraph()`
//!   says it in words.
//! - [`check`]: a profile against the host, as table rows (ok / fix /
//!   cannot / n/a) naming the failure each setting prevents.
//! - [`apply`]: `apply::apply` (save originals to a state file, write,
//!   verify, restore everything if a write fails midway) and
//!   `apply::rollback`, each returning a report; `apply::persist` writes
//!   `sysctl.d` and `limits.d` files.
//!
//! Reuse from other commands:
//! ```no_run
//! use c1m::tuning::{self, Role, capacity::{self, Plan}};
//! let snap = tuning::snapshot()?;
//! let cap = capacity::estimate(&snap, &Plan::new(Role::Server, 1_000_000));
//! println!("{} workers of {} sockets", cap.processes_needed, cap.per_process_sockets);
//! if !cap.fits { eprintln!("{}", cap.paragraph()); }
//! # Ok::<(), anyhow::Error>(())
//! ```
pub mod apply;
pub mod capacity;
pub mod check;
pub mod profile;
pub mod safe_fs;
pub mod snapshot;
pub mod sysctl;

use serde::Serialize;

pub use capacity::{Capacity, Plan};
pub use snapshot::Snapshot;

/// The role a host plays in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Accepts the connections.
    Server,
    /// Opens the connections.
    Client,
    /// Both ends on this host (2 sockets per connection).
    Lab,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
            Role::Lab => "lab",
        }
    }

    /// Sockets on this host per connection.
    pub fn sockets_per_connection(self) -> u64 {
        match self {
            Role::Lab => 2,
            _ => 1,
        }
    }
}

/// Read the host and this process (sysctls from `C1M_SYSCTL_ROOT` or
/// `/proc/sys`).
pub fn snapshot() -> anyhow::Result<Snapshot> {
    snapshot::take(
        &sysctl::Sysctl::from_env(),
        crate::sys::limits::Target::This,
    )
}
