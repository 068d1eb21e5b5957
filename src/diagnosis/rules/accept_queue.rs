//! The server's accept queue as the cause of connect timeouts. Ruled out
//! when `ListenOverflows` was captured and stayed flat (or at zero). A
//! likely cause, even without a counter, when SYNs were dropped all
//! through the run: many progress intervals that took whole extra seconds
//! (a SYN retransmission each) long before any table limit. The seed's
//! server (`./reactor`, listen backlog 10) is named when the logs show it.
use super::super::finding::{Certainty, Finding};
use super::super::source::Source;
use crate::util::thousands;

/// Why the accept queue cannot explain timeouts: its counter stayed flat.
pub fn ruled_out(sources: &[Source]) -> Option<String> {
    sources.iter().find_map(|s| {
        let t = s.counters.get("ListenOverflows")?;
        ((t.snapshots >= 2 && t.last == t.first) || t.last == 0).then(|| {
            format!(
                "ListenOverflows stayed at {} ({}:{})",
                t.last, t.last_evidence.file, t.last_evidence.line
            )
        })
    })
}

/// The accept queue as a possible (or likely) cause of `src`'s timeouts:
/// the reasons and what to collect.
pub fn possible(src: Option<&Source>, any_reactor: bool, f: &mut Finding, why: &mut Vec<String>) {
    if let Some(s) = src
        && s.seed.retrans_intervals >= 3
        && let Some(ev) = &s.seed.retrans_evidence
    {
        f.certainty = Certainty::Likely;
        f.count = s.seed.retrans_waits;
        f.evidence.push(ev.clone());
        why.push(format!(
            "SYNs were dropped all through the run, not only at the end: {} of {} progress intervals took whole extra seconds (about {} connects waited for a SYN retransmission, 1 s each), the first at {} connections, far below any table limit; a listen queue too short for the connect rate does that",
            s.seed.retrans_intervals,
            thousands(s.seed.progress_lines),
            s.seed.retrans_waits,
            thousands(s.seed.retrans_first_conns)
        ));
    } else {
        why.push("nothing in these logs shows or excludes it".to_string());
    }
    if any_reactor {
        why.push("the server ran `./reactor`, the seed's server, which calls listen(fd, 10): an accept queue of 10".to_string());
    }
    f.collect = vec![
        "on the server during the run: `nstat -az TcpExtListenOverflows TcpExtListenDrops` twice (rising: accept queue overflow)".to_string(),
        "on the server: `ss -lnt` (Recv-Q at the backlog on the listening ports)".to_string(),
    ];
}

#[cfg(test)]
mod tests {
    use super::super::testing::sources;
    use super::*;
    use crate::catalogue::{FailureId, Side};

    fn finding() -> Finding {
        Finding::new(
            FailureId::AcceptQueueOverflow,
            Side::Server,
            Certainty::Possible,
            "client.txt",
        )
    }

    #[test]
    fn a_flat_overflow_counter_rules_the_queue_out() {
        let flat = "#kernel\nTcpExtListenOverflows 7 0.0\n#kernel\nTcpExtListenOverflows 7 0.0\n";
        let why = ruled_out(&sources(&[("nstat.txt", flat)])).expect("ruled out");
        assert!(
            why.starts_with("ListenOverflows stayed at 7 (nstat.txt:"),
            "{why}"
        );
        let rising =
            "#kernel\nTcpExtListenOverflows 7 0.0\n#kernel\nTcpExtListenOverflows 90 0.0\n";
        assert_eq!(ruled_out(&sources(&[("nstat.txt", rising)])), None);
        assert_eq!(ruled_out(&sources(&[("client.txt", "hello\n")])), None);
    }

    #[test]
    fn whole_second_delays_all_through_the_run_make_it_likely() {
        // A regular 100 ms per 1,000 connections, and every few intervals
        // one that took a whole second more (a SYN retransmission).
        let mut log = String::new();
        for i in 1..=40u64 {
            let ms = if i > 6 && i % 4 == 0 { 1100 } else { 100 };
            log.push_str(&format!(
                "connections: {}, sockfd:{}, time_used:{ms}\n",
                i * 1000 - 1,
                i * 1000 + 2
            ));
        }
        let src = sources(&[("client.txt", &log)]);
        let mut f = finding();
        let mut why = Vec::new();
        possible(src.first(), true, &mut f, &mut why);
        assert_eq!(f.certainty, Certainty::Likely, "{why:?}");
        assert!(
            why[0].starts_with("SYNs were dropped all through the run"),
            "{why:?}"
        );
        assert!(why[1].contains("listen(fd, 10)"), "{why:?}");
        assert_eq!(f.collect.len(), 2);
    }

    #[test]
    fn without_delays_it_stays_possible() {
        let log = "connections: 999, sockfd:1002, time_used:100\nconnections: 1999, sockfd:2002, time_used:100\n";
        let src = sources(&[("client.txt", log)]);
        let mut f = finding();
        let mut why = Vec::new();
        possible(src.first(), false, &mut f, &mut why);
        assert_eq!(f.certainty, Certainty::Possible);
        assert_eq!(why, ["nothing in these logs shows or excludes it"]);
    }
}
