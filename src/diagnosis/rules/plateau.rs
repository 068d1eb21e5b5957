//! Plateaus: a source whose count peaked near a value where runs stop on a
//! known limit (a default fd limit, the ephemeral port range, a conntrack
//! table size...) gets a possible finding of that limit. Only for logs
//! that do not name their failures: c1m's own JSON lines report every
//! failure as a record, and their counts are sums over worker processes,
//! so a round target (20,000) is no per-process plateau.
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
        let (Some(max), Some(ev)) = (s.max_connections(), s.seed.max_evidence.clone()) else {
            continue;
        };
        for info in crate::catalogue::CATALOGUE {
            if info.id == FailureId::ClientCapReached
                || out.iter().any(|f| f.id == info.id && f.source == name)
            {
                continue;
            }
            if let Some(p) = info.plateaus.iter().find(|&&p| near_plateau(max, p)) {
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
