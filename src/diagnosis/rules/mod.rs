//! The classifier's rules, one file per failure family. Each turns what
//! the sources saw into findings of its family (a catalogue id, a side, a
//! certainty, the evidence and the reason in words) and is tested on its
//! own, on a few lines of input:
//! - [`observed`]: error lines, kernel lines and failure records (every id);
//! - [`eagain`]: connections the seed client closed itself (the EAGAIN bug);
//! - [`cap`]: the seed client's hard-coded cap;
//! - [`client_bugs`]: I/O on fd 0 and unterminated receive buffers;
//! - [`log`]: the log itself damaged;
//! - [`counters`]: kernel counters that rose (nstat, netstat -s);
//! - [`conntrack`], [`memory`], [`fd`]: host tables near their limit
//!   (sysctl, sockstat, file-nr);
//! - [`accept_queue`] and [`conntrack`]: the causes of connect timeouts,
//!   linked to the symptom by [`timeout`];
//! - [`plateau`]: a count that stopped near a known limit;
//! - [`faults`]: effects (EOFs, resets) linked to the process death,
//!   stall or network fault that caused them, as one root-cause finding.
pub mod accept_queue;
pub mod cap;
pub mod client_bugs;
pub mod conntrack;
pub mod counters;
pub mod eagain;
pub mod faults;
pub mod fd;
pub mod log;
pub mod memory;
pub mod observed;
pub mod plateau;
pub mod timeout;

use super::parse::SysctlKey;
use super::source::{Evidence, Kind, Source};
use crate::catalogue::{FailureId, Side};

/// One source, with what was learned across all of them.
pub struct Ctx<'a> {
    pub s: &'a Source,
    pub name: String,
    pub kind: Kind,
    /// Connections the client closed itself, from the fd offset.
    pub closed: Option<eagain::Closed>,
    /// `sockfd - connections` of a healthy start, and whether the logs
    /// showed it (else the default).
    pub healthy: i64,
    pub learned: bool,
}

/// The side a finding of `id` belongs to: the catalogue's, or where it
/// was seen when the catalogue says either.
pub fn side_for(id: FailureId, call: &str, kernel: bool, kind: Kind) -> Side {
    let side = id.info().side;
    if side != Side::Either {
        return side;
    }
    if kernel || matches!(kind, Kind::Kernel | Kind::Counters) {
        return Side::Host;
    }
    match kind {
        Kind::Client => return Side::Client,
        Kind::Server => return Side::Server,
        _ => {}
    }
    match call {
        "accept" | "listen" => Side::Server,
        "connect" | "socket" | "bind" => Side::Client,
        _ => Side::Either,
    }
}

/// Is `count` within 0.5% (at least 8) of `plateau`?
pub fn near_plateau(count: u64, plateau: u64) -> bool {
    let tol = (plateau / 200).max(8);
    count.abs_diff(plateau) <= tol
}

/// `+3`, `0`, `-97`.
pub fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

pub fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub use super::finding::capitalize;

/// A sysctl of this source's host, or of any source when its own logs do
/// not show it.
pub fn sysctl<'a>(
    s: &'a Source,
    sources: &'a [Source],
    key: SysctlKey,
) -> Option<&'a ([u64; 3], Evidence)> {
    s.sysctl
        .get(&key)
        .or_else(|| sources.iter().find_map(|o| o.sysctl.get(&key)))
}

#[cfg(test)]
pub mod testing {
    //! Small inputs for the rules' tests.
    use super::super::classify::{Finding, classify};
    use super::super::source::{Source, read_input};
    use crate::catalogue::FailureId;

    /// Sources read from `(name, text)` pairs, as `analyze` reads files.
    pub fn sources(files: &[(&str, &str)]) -> Vec<Source> {
        files
            .iter()
            .flat_map(|(name, text)| read_input(name, text.as_bytes()).0)
            .collect()
    }

    /// The findings `analyze` makes of these files.
    pub fn findings(files: &[(&str, &str)]) -> Vec<Finding> {
        classify(&sources(files)).findings
    }

    /// The findings of one id.
    pub fn of(findings: &[Finding], id: FailureId) -> Vec<&Finding> {
        findings.iter().filter(|f| f.id == id).collect()
    }
}
