//! Plateaus: a source whose count peaked near a value where runs stop on a
//! known limit (a default fd limit, the ephemeral port range, a conntrack
//! table size...) gets a possible finding of that limit. Only for logs
//! that do not name their failures: c1m's own JSON lines report every
//! failure as a record, and their counts are sums over worker processes,
//! so a round target (20,000) is no per-process plateau. Works on any
//! source with a count: the seed's progress lines or a free-form series
//! (`diagnosis::counts`). Besides the catalogue's plateaus, a count a
//! little below 1,024 or 4,096 (a default open-files soft limit minus the
//! process's other descriptors) names the fd limit, and 32,768 or 65,535
//! the port range.
use std::collections::BTreeSet;

use super::super::finding::{Certainty, Finding};
use super::super::source::Source;
use super::near_plateau;
use crate::catalogue::FailureId;
use crate::util::thousands;

/// `plateau_used`: sources whose plateau already backs a cause.
pub fn findings(sources: &[Source], plateau_used: &BTreeSet<String>, out: &mut Vec<Finding>) {
    for s in sources {
        let name = s.name();
        if plateau_used.contains(&name) || s.seed.cap_value.is_some() {
            continue;
        }
        if s.json.records > 0 && s.json.max_evidence.is_some() {
            continue;
        }
        let (Some(max), Some(ev)) = (s.max_connections(), s.max_evidence().cloned()) else {
            continue;
        };
        // The seed prints every 1,000: its stops near a soft limit are the
        // catalogue's plateaus; the window is for free-form counts.
        if s.seed.max.is_none()
            && let Some(f) = below_soft_limit(s, &name, max, &ev)
            && !out.iter().any(|o| o.id == f.id && o.source == name)
        {
            out.push(f);
            continue;
        }
        for info in crate::catalogue::CATALOGUE {
            if info.id == FailureId::ClientCapReached
                || out.iter().any(|f| f.id == info.id && f.source == name)
            {
                continue;
            }
            let extra = EXTRA_PLATEAUS
                .iter()
                .filter(|(id, _)| *id == info.id)
                .map(|(_, p)| p);
            if let Some(p) = info
                .plateaus
                .iter()
                .chain(extra)
                .find(|&&p| near_plateau(max, p))
            {
                let mut f = Finding::new(info.id, info.side, Certainty::Possible, &name);
                f.count = 1;
                f.evidence.push(ev.clone());
                out.push(f.detail(format!(
                    "the count peaked at {}, near {} where runs stop on this limit",
                    thousands(max),
                    thousands(*p)
                )));
            }
        }
    }
}

/// Plateaus of the port range besides the catalogue's: a range of 32,768
/// ports (32768-65535), and every port.
const EXTRA_PLATEAUS: &[(FailureId, u64)] = &[
    (FailureId::EphemeralPortsExhausted, 32_768),
    (FailureId::EphemeralPortsExhausted, 65_535),
];

/// Default open-files soft limits and how many descriptors below them a
/// process stops (stdio, its listener or epoll, a runtime's own files).
const SOFT_LIMITS: &[u64] = &[1_024, 4_096];
const OTHER_FDS: u64 = 48;

/// A count that stopped a little below a default soft limit: `likely`
/// when the count is a sure series that ended at its peak, else
/// `possible`.
fn below_soft_limit(
    s: &Source,
    name: &str,
    max: u64,
    ev: &super::super::source::Evidence,
) -> Option<Finding> {
    let limit = *SOFT_LIMITS
        .iter()
        .find(|&&l| max < l && max + OTHER_FDS >= l)?;
    // A round number (1,000) or a reached total is a target, not a limit.
    let reached = s
        .free
        .pick()
        .is_some_and(|(_, series, _)| series.total == Some(max));
    if max.is_multiple_of(100) || reached {
        return None;
    }
    let stopped = s
        .free
        .pick()
        .is_some_and(|(_, series, sure)| sure && series.last == series.max);
    let certainty = if stopped {
        Certainty::Likely
    } else {
        Certainty::Possible
    };
    let mut f = Finding::new(
        FailureId::FdLimit,
        FailureId::FdLimit.info().side,
        certainty,
        name,
    );
    f.count = 1;
    f.evidence.push(ev.clone());
    Some(f.detail(format!(
        "the count stopped at {}, {} below {}: a default open-files soft limit (ulimit -n {}) less the process's other descriptors",
        thousands(max),
        limit - max,
        thousands(limit),
        limit
    )))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{findings, of};
    use super::*;

    fn stopped_at(n: u64) -> String {
        format!(
            "connections: {}, sockfd:{}, time_used:400\nconnections: {n}, sockfd:{}, time_used:400\n",
            n - 1000,
            n - 997,
            n + 3
        )
    }

    #[test]
    fn a_count_stopped_near_a_known_limit_is_a_possible_cause() {
        // 28,232: the default ephemeral port range, one destination.
        let f = findings(&[("client.txt", &stopped_at(28_230))]);
        let p = of(&f, FailureId::EphemeralPortsExhausted);
        assert_eq!(p.len(), 1, "{f:#?}");
        assert_eq!(p[0].certainty, Certainty::Possible);
        assert!(
            p[0].explanation.contains("near 28,232"),
            "{}",
            p[0].explanation
        );
    }

    #[test]
    fn a_free_form_count_below_a_default_soft_limit_names_the_fd_limit() {
        // Node's `N connections` stopping at 1,004 under `ulimit -n 1024`.
        let log = "100 connections\n500 connections\n1000 connections\n1004 connections\n";
        let f = findings(&[("client.log", log)]);
        let fd = of(&f, FailureId::FdLimit);
        assert_eq!(fd.len(), 1, "{f:#?}");
        assert_eq!(fd[0].certainty, Certainty::Likely);
        assert!(
            fd[0].explanation.contains("20 below 1,024"),
            "{}",
            fd[0].explanation
        );
        assert_eq!(fd[0].evidence[0].line, 4);
    }

    #[test]
    fn a_count_far_from_every_limit_is_no_finding() {
        let f = findings(&[("client.txt", &stopped_at(50_000))]);
        assert!(f.is_empty(), "{f:#?}");
    }

    #[test]
    fn a_cap_is_not_also_a_plateau() {
        let mut log = stopped_at(19_990);
        log.push_str("connections: 19990, sockfd:0, time_used:400\n");
        let f = findings(&[("client.txt", &log)]);
        assert!(of(&f, FailureId::FdLimit).is_empty(), "{f:#?}");
    }
}
