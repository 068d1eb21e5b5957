//! The seed client's cap: its count stops at a fixed number and the same
//! progress line repeats with `sockfd:0` (it stopped creating sockets and
//! loops on the last descriptor). At a cap the catalogue knows (the seed's
//! 340,000) the finding is certain; at another value, likely.
use super::super::finding::{Certainty, Finding};
use super::Ctx;
use crate::catalogue::{FailureId, Side};
use crate::util::thousands;

/// The cap finding, and the source's note about it.
pub fn findings(cx: &Ctx, out: &mut Vec<Finding>, notes: &mut Vec<String>) {
    let s = cx.s;
    let (Some(cap), Some(ev)) = (s.seed.cap_value, s.seed.zero_fd_evidence.clone()) else {
        return;
    };
    let known = FailureId::ClientCapReached.info().plateaus.contains(&cap);
    let certainty = if known {
        Certainty::Certain
    } else {
        Certainty::Likely
    };
    let mut f = Finding::new(
        FailureId::ClientCapReached,
        Side::Client,
        certainty,
        &cx.name,
    );
    f.count = s.seed.cap_repeats.saturating_add(1);
    f.evidence.push(ev);
    out.push(f.detail(format!(
        "the count stopped at exactly {} and the line repeated {} times with sockfd:0{}",
        thousands(cap),
        thousands(s.seed.cap_repeats.saturating_add(1)),
        if known {
            " (the seed client's hard-coded cap)"
        } else {
            ""
        }
    )));
    notes.push(format!("stopped at its cap of {}", thousands(cap)));
}

#[cfg(test)]
mod tests {
    use super::super::testing::{findings, of};
    use super::*;

    fn repeated(n: u64, times: usize) -> String {
        let mut log = format!(
            "connections: {}, sockfd:{}, time_used:400\n",
            n - 1000,
            n - 997
        );
        for _ in 0..times {
            log.push_str(&format!("connections: {n}, sockfd:0, time_used:400\n"));
        }
        log
    }

    #[test]
    fn the_seed_cap_repeated_with_fd_zero_is_certain() {
        let f = findings(&[("client3.txt", &repeated(340_000, 4))]);
        let c = of(&f, FailureId::ClientCapReached);
        assert_eq!(c.len(), 1, "{f:#?}");
        assert_eq!((c[0].certainty, c[0].count), (Certainty::Certain, 4));
        assert!(c[0].explanation.contains("340,000"), "{}", c[0].explanation);
    }

    #[test]
    fn another_cap_is_likely() {
        let f = findings(&[("client.txt", &repeated(12_000, 3))]);
        let c = of(&f, FailureId::ClientCapReached);
        assert_eq!(c.len(), 1, "{f:#?}");
        assert_eq!(c[0].certainty, Certainty::Likely);
    }

    #[test]
    fn a_count_that_keeps_rising_has_no_cap() {
        let log = "connections: 999, sockfd:1002, time_used:400\nconnections: 1999, sockfd:2002, time_used:400\n";
        let f = findings(&[("client.txt", log)]);
        assert!(of(&f, FailureId::ClientCapReached).is_empty(), "{f:#?}");
    }
}
