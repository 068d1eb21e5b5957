//! The seed client's EAGAIN bug: it treats EAGAIN from recv() as an error
//! and closes a healthy connection, yet keeps counting it. Its progress
//! lines show it: `sockfd - connections` falls by one per close. This rule
//! measures that offset (against the offset of a healthy start, learned
//! from the logs that begin at the beginning) and says how many printed
//! connections were really closed.
use std::collections::BTreeMap;

use super::super::finding::{Certainty, Finding};
use super::super::source::{SEED_STEP, Source};
use super::{Ctx, signed};
use crate::catalogue::{FailureId, Side};
use crate::util::thousands;

/// The `sockfd - connections` of a healthy client at its start: the most
/// common first offset of the logs that start at the beginning; 3 (stdin,
/// stdout, stderr and the epoll fd come first, sockets from fd 4) if none.
pub fn healthy_offset(sources: &[Source]) -> (i64, bool) {
    let mut seen: BTreeMap<i64, u32> = BTreeMap::new();
    for s in sources {
        if let (Some(first), Some(off)) = (s.seed.first, s.seed.first_offset)
            && first.conns <= SEED_STEP
            && first.fd != 0
        {
            *seen.entry(off).or_default() += 1;
        }
    }
    match seen.into_iter().max_by_key(|(_, n)| *n) {
        Some((off, _)) => (off, true),
        None => (3, false),
    }
}

/// Connections a client closed itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    /// Before its first line in the log (a log that starts late).
    pub before: u64,
    /// Within the visible lines.
    pub visible: u64,
}

impl Closed {
    pub fn total(&self) -> u64 {
        self.before.saturating_add(self.visible)
    }
}

/// What `s`'s offsets say it closed, given a healthy start's offset.
pub fn closed_of(s: &Source, healthy: i64) -> Option<Closed> {
    let first = s.seed.first?;
    let fo = s.seed.first_offset?;
    let lo = s.seed.last_offset?;
    let before = if first.conns > SEED_STEP || first.fd == 0 {
        healthy.saturating_sub(fo).max(0) as u64
    } else {
        0
    };
    Some(Closed {
        before,
        visible: fo.saturating_sub(lo).max(0) as u64,
    })
}

/// Add to the EAGAIN error lines' finding what they cost: the healthy
/// connections they closed.
pub fn closed_by_errors(cx: &Ctx, f: &mut Finding, what: &mut String) {
    let s = cx.s;
    if let Some(c) = &cx.closed
        && c.visible > 0
        && let (Some(fo), Some(lo), Some(max)) =
            (s.seed.first_offset, s.seed.last_offset, s.seed.max)
    {
        what.push_str(&format!(
            "; each closed a healthy connection: sockfd - connections fell from {} to {} ({} descriptors freed), so about {} of the {} counted were alive",
            signed(fo),
            signed(lo),
            thousands(c.visible),
            thousands(max.conns.saturating_sub(c.total())),
            thousands(max.conns)
        ));
        if let Some(ev) = &s.seed.last_drop
            && f.evidence.len() < 4
        {
            f.evidence.push(ev.clone());
        }
    }
}

/// Closed connections without error lines: the offset alone.
pub fn findings(cx: &Ctx, out: &mut Vec<Finding>) {
    let s = cx.s;
    if s.obs.contains_key(&FailureId::EagainMisuse) {
        return;
    }
    let (Some(c), Some(ev)) = (&cx.closed, s.seed.first_evidence.clone()) else {
        return;
    };
    if c.total() == 0 {
        return;
    }
    let mut f = Finding::new(
        FailureId::EagainMisuse,
        Side::ClientBug,
        Certainty::Likely,
        &cx.name,
    );
    f.count = c.total();
    f.evidence.push(ev);
    let mut text = String::new();
    if c.before > 0 {
        text = format!(
            "{} connections were already closed by the client before the visible part of its log: sockfd - connections is {} at its first line, {} on a healthy start{}",
            thousands(c.before),
            signed(s.seed.first_offset.unwrap_or(0)),
            signed(cx.healthy),
            if cx.learned {
                ""
            } else {
                " (fds 0-2 and the epoll fd come first)"
            }
        );
    }
    if c.visible > 0 {
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(&format!(
            "{} more closed in the visible part (the offset fell to {})",
            thousands(c.visible),
            signed(s.seed.last_offset.unwrap_or(0))
        ));
    }
    text.push_str(", the mark of the seed's EAGAIN bug (` Error clientfd:N, errno:11` closes a healthy connection)");
    out.push(f.detail(text));
}

#[cfg(test)]
mod tests {
    use super::super::testing::{findings, of, sources};
    use super::*;

    /// Seed progress lines: `connections: N, sockfd:FD, time_used:MS`.
    fn progress(rows: &[(u64, u64)]) -> String {
        rows.iter()
            .map(|(n, fd)| format!("connections: {n}, sockfd:{fd}, time_used:1000\n"))
            .collect()
    }

    #[test]
    fn a_falling_offset_is_the_eagain_bug() {
        // Healthy start (+3), then the offset falls by 5: five closed.
        let log = progress(&[(999, 1002), (1999, 2002), (2999, 2997)]);
        let src = sources(&[("client.txt", &log)]);
        assert_eq!(healthy_offset(&src), (3, true));
        assert_eq!(
            closed_of(&src[0], 3),
            Some(Closed {
                before: 0,
                visible: 5
            })
        );
        let f = findings(&[("client.txt", &log)]);
        let e = of(&f, FailureId::EagainMisuse);
        assert_eq!(e.len(), 1, "{f:#?}");
        assert_eq!((e[0].certainty, e[0].count), (Certainty::Likely, 5));
        assert!(
            e[0].explanation.contains("5 more closed"),
            "{}",
            e[0].explanation
        );
    }

    #[test]
    fn a_log_that_starts_late_counts_what_was_closed_before() {
        // Another client shows the healthy +3; this one starts at 290,999
        // with -100: 103 closed before its first line.
        let healthy = progress(&[(999, 1002), (1999, 2002)]);
        let late = progress(&[(290_999, 290_899), (291_999, 291_899)]);
        let f = findings(&[("a.txt", &healthy), ("b.txt", &late)]);
        let e = of(&f, FailureId::EagainMisuse);
        assert_eq!(e.len(), 1, "{f:#?}");
        assert_eq!(e[0].source, "b.txt");
        assert_eq!(e[0].count, 103);
        assert!(e[0].explanation.contains("before the visible part"));
    }

    #[test]
    fn a_steady_offset_is_no_finding() {
        let log = progress(&[(999, 1002), (1999, 2002), (2999, 3002)]);
        let f = findings(&[("client.txt", &log)]);
        assert!(of(&f, FailureId::EagainMisuse).is_empty(), "{f:#?}");
    }
}
