//! Connect timeouts are a symptom: this rule links each certain timeout
//! finding to its causes. A cause the evidence shows (the accept queue or
//! the conntrack table overflowing, a server at its fd limit or at a
//! connection cap of its own, such as c1m serve's `cap reached` record) is
//! blamed directly. Otherwise each cause in [`CAUSES_OF_TIMEOUT`] that the inputs
//! do not rule out is added as a possible (or likely) cause right after
//! the symptom, with what to collect to settle it.
use std::collections::BTreeSet;

use super::super::finding::{Certainty, Finding};
use super::super::source::Source;
use super::{accept_queue, conntrack, plural};
use crate::catalogue::{FailureId, Side};

/// The causes a connect timeout can have that the catalogue tells apart.
pub const CAUSES_OF_TIMEOUT: [FailureId; 2] =
    [FailureId::AcceptQueueOverflow, FailureId::ConntrackFull];

/// Link every certain timeout to its causes. Returns the sources whose
/// plateau was used as evidence of a cause (the plateau rule skips them).
pub fn link_causes(
    sources: &[Source],
    findings: &mut Vec<Finding>,
    any_reactor: bool,
) -> BTreeSet<String> {
    let symptoms: Vec<usize> = findings
        .iter()
        .enumerate()
        .filter(|(_, f)| f.id == FailureId::ConnectTimeout && f.certainty == Certainty::Certain)
        .map(|(i, _)| i)
        .collect();
    let mut plateau_used: BTreeSet<String> = BTreeSet::new();
    for si in symptoms {
        if !blame_shown(findings, si) {
            remaining_causes(sources, findings, si, any_reactor, &mut plateau_used);
        }
    }
    plateau_used
}

/// Blame the causes the evidence shows, if any.
fn blame_shown(findings: &mut [Finding], si: usize) -> bool {
    let shown: Vec<usize> = findings
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            // A server that hit its fd limit stopped accepting: the
            // handshakes wait in its queue until the client gives up.
            let server_fd_limit = f.id == FailureId::FdLimit && f.side == Side::Server;
            // So did a server at a cap of its own (c1m serve's
            // --max-connections, nginx worker_connections, Redis maxclients).
            let server_cap = f.id == FailureId::ServerConnectionLimit;
            // A cause shown once explains every client's timeouts (several
            // client hosts, one server): it may be blamed more than once.
            (CAUSES_OF_TIMEOUT.contains(&f.id) || server_fd_limit || server_cap)
                && f.certainty <= Certainty::Likely
        })
        .map(|(i, _)| i)
        .collect();
    if shown.is_empty() {
        return false;
    }
    for i in shown {
        let id = findings[i].id;
        findings[i].cause_of = Some(FailureId::ConnectTimeout);
        if !findings[si].caused_by.contains(&id) {
            findings[si].caused_by.push(id);
        }
    }
    let blamed: Vec<&str> = findings[si]
        .caused_by
        .iter()
        .map(|id| id.as_str())
        .collect();
    findings[si].explanation = format!(
        "{} Blamed on {} (shown by the evidence of the finding{} below).",
        findings[si].explanation,
        blamed.join(" and "),
        plural(blamed.len() as u64)
    );
    true
}

/// No direct evidence: add the causes that remain, and say which the
/// inputs rule out.
fn remaining_causes(
    sources: &[Source],
    findings: &mut Vec<Finding>,
    si: usize,
    any_reactor: bool,
    plateau_used: &mut BTreeSet<String>,
) {
    let source_name = findings[si].source.clone();
    let src = sources.iter().find(|s| s.name() == source_name);
    let mut excluded = Vec::new();
    for id in CAUSES_OF_TIMEOUT {
        let out = match id {
            FailureId::AcceptQueueOverflow => accept_queue::ruled_out(sources),
            _ => conntrack::ruled_out(sources),
        };
        if let Some(why) = out {
            excluded.push(format!("{id} ruled out: {why}"));
            continue;
        }
        let mut f = Finding::new(id, id.info().side, Certainty::Possible, &source_name);
        f.cause_of = Some(FailureId::ConnectTimeout);
        f.linked_to = Some(si);
        let mut why = Vec::new();
        match id {
            FailureId::AcceptQueueOverflow => {
                accept_queue::possible(src, any_reactor, &mut f, &mut why)
            }
            _ => {
                if conntrack::possible(src, &mut f, &mut why) {
                    plateau_used.insert(source_name.clone());
                }
            }
        }
        if f.evidence.is_empty() {
            f.evidence = findings[si].evidence.iter().take(1).cloned().collect();
        }
        f = f.detail(why.join("; "));
        findings[si].caused_by.push(id);
        for c in &f.collect {
            if !findings[si].collect.contains(c) {
                findings[si].collect.push(c.clone());
            }
        }
        findings.push(f);
    }
    let blamed: Vec<String> = findings
        .iter()
        .filter(|f| f.linked_to == Some(si))
        .map(|f| format!("{} ({})", f.id, f.certainty.as_str()))
        .collect();
    let mut text = findings[si].explanation.clone();
    if blamed.is_empty() {
        text.push_str(" No known cause remains in the catalogue: look at the server (did it stop accepting?).");
    } else {
        text.push_str(&format!(
            " Nothing in these logs shows the cause; it remains {}.",
            blamed.join(" or ")
        ));
    }
    if !excluded.is_empty() {
        text.push_str(&format!(" {}.", excluded.join("; ")));
    }
    findings[si].explanation = text;
}

#[cfg(test)]
mod tests {
    use super::super::testing::{findings, of};
    use super::*;

    const TIMEOUTS: &str = "connect: Connection timed out\nconnect: Connection timed out\n";

    #[test]
    fn a_shown_overflow_is_blamed_for_the_timeouts() {
        let f = findings(&[
            ("client.log", TIMEOUTS),
            (
                "nstat.txt",
                "#kernel\nTcpExtListenOverflows 10 0.0\n#kernel\nTcpExtListenOverflows 900 0.0\n",
            ),
        ]);
        let t = of(&f, FailureId::ConnectTimeout);
        assert_eq!(t.len(), 1, "{f:#?}");
        assert_eq!(t[0].caused_by, [FailureId::AcceptQueueOverflow], "{f:#?}");
        assert!(
            t[0].explanation.contains("Blamed on accept_queue_overflow"),
            "{}",
            t[0].explanation
        );
        let a = of(&f, FailureId::AcceptQueueOverflow);
        assert_eq!(a[0].cause_of, Some(FailureId::ConnectTimeout));
    }

    #[test]
    fn a_serve_that_says_it_reached_its_cap_is_blamed_for_the_echo_timeouts() {
        use crate::events::{Record, Role};
        use crate::reactor::wire::{CapReached, ServeLine};
        let cap = CapReached::new(200, 200, 1, 200, 4096, false);
        let serve = Record::now(Role::Serve, None, ServeLine::Failure(cap))
            .to_line()
            .unwrap();
        let flood = r#"{"ts":1796237201.0,"role":"flood","pid":21100,"event":"failure","failure":"connect_timeout","call":"recv","errno":110,"count":100,"detail":"connected, but the echo did not come back within 1s (--connect-timeout)","key":"ECHO_TIMEOUT"}"#;
        let f = findings(&[("serve.log", &serve), ("flood.log", flood)]);
        let t = of(&f, FailureId::ConnectTimeout);
        assert_eq!(t.len(), 1, "{f:#?}");
        assert_eq!(t[0].caused_by, [FailureId::ServerConnectionLimit], "{f:#?}");
        assert!(
            t[0].explanation
                .contains("Blamed on server_connection_limit"),
            "{}",
            t[0].explanation
        );
        let c = of(&f, FailureId::ServerConnectionLimit);
        assert_eq!(c.len(), 1, "{f:#?}");
        assert_eq!(
            (c[0].side, c[0].certainty),
            (Side::Server, Certainty::Certain)
        );
        assert!(
            c[0].explanation.contains("--max-connections 200"),
            "the finding names the cap: {}",
            c[0].explanation
        );
        // serve's human line says the same.
        let human = "cap reached: serve holds 200 connections, --max-connections 200 (1 worker at 200 each); it accepts no more until some close\n";
        let f = findings(&[("serve.txt", human), ("flood.log", flood)]);
        assert_eq!(of(&f, FailureId::ServerConnectionLimit).len(), 1, "{f:#?}");
    }

    #[test]
    fn without_evidence_both_causes_remain_as_possible() {
        let f = findings(&[("client.log", TIMEOUTS)]);
        let t = of(&f, FailureId::ConnectTimeout);
        assert_eq!(t.len(), 1, "{f:#?}");
        assert_eq!(t[0].caused_by, CAUSES_OF_TIMEOUT, "{f:#?}");
        assert!(
            t[0].explanation
                .contains("Nothing in these logs shows the cause")
        );
        assert!(!t[0].collect.is_empty());
        for id in CAUSES_OF_TIMEOUT {
            let c = of(&f, id);
            assert_eq!(c.len(), 1, "{id}: {f:#?}");
            assert_eq!(
                (c[0].certainty, c[0].cause_of),
                (Certainty::Possible, Some(FailureId::ConnectTimeout))
            );
        }
        // Causes come right after the symptom they explain.
        let at = f
            .iter()
            .position(|x| x.id == FailureId::ConnectTimeout)
            .unwrap_or(usize::MAX);
        assert!(CAUSES_OF_TIMEOUT.contains(&f[at + 1].id), "{f:#?}");
    }

    #[test]
    fn a_cause_the_inputs_rule_out_is_named_as_such() {
        let f = findings(&[
            ("client.log", TIMEOUTS),
            (
                "sysctl.txt",
                "net.netfilter.nf_conntrack_count = 100\nnet.netfilter.nf_conntrack_max = 262144\n",
            ),
        ]);
        let t = of(&f, FailureId::ConnectTimeout);
        assert_eq!(t[0].caused_by, [FailureId::AcceptQueueOverflow], "{f:#?}");
        assert!(
            t[0].explanation.contains("conntrack_full ruled out"),
            "{}",
            t[0].explanation
        );
        assert!(of(&f, FailureId::ConntrackFull).is_empty(), "{f:#?}");
    }
}
