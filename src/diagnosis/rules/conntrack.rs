//! The conntrack table: full or nearly full when `nf_conntrack_count`
//! reaches 95% of `nf_conntrack_max` (a host finding); ruled out as the
//! cause of connect timeouts when the count stayed under 90% of the max;
//! a possible cause when a client's count stopped near a default table
//! size.
use super::super::finding::{Certainty, Finding};
use super::super::parse::SysctlKey;
use super::super::source::Source;
use super::{near_plateau, sysctl};
use crate::catalogue::{FailureId, Side};
use crate::util::thousands;

/// The table near full, from the sysctls.
pub fn findings(s: &Source, sources: &[Source], out: &mut Vec<Finding>) {
    // The count first: only a source that has one looks through the others
    // for the max (20,000 sources stay linear).
    let Some((count, ev)) = s.sysctl.get(&SysctlKey::ConntrackCount) else {
        return;
    };
    let Some((max, _)) = sysctl(s, sources, SysctlKey::ConntrackMax) else {
        return;
    };
    if max[0] == 0 || (count[0] as u128) * 100 < (max[0] as u128) * 95 {
        return;
    }
    let certainty = if count[0] >= max[0] {
        Certainty::Certain
    } else {
        Certainty::Likely
    };
    let mut f = Finding::new(FailureId::ConntrackFull, Side::Host, certainty, &s.name());
    f.count = count[0];
    f.evidence.push(ev.clone());
    out.push(f.detail(format!(
        "nf_conntrack_count {} of nf_conntrack_max {}",
        thousands(count[0]),
        thousands(max[0])
    )));
}

/// Why the table cannot explain timeouts: it stayed far from full.
pub fn ruled_out(sources: &[Source]) -> Option<String> {
    let (max, _) = sources
        .iter()
        .find_map(|o| o.sysctl.get(&SysctlKey::ConntrackMax))?;
    sources.iter().find_map(|s| {
        let (count, ev) = s.sysctl.get(&SysctlKey::ConntrackCount)?;
        ((count[0] as u128) * 10 < (max[0] as u128) * 9).then(|| {
            format!(
                "nf_conntrack_count peaked at {} of {} ({}:{})",
                thousands(count[0]),
                thousands(max[0]),
                ev.file,
                ev.line
            )
        })
    })
}

/// The table as a possible cause of `src`'s timeouts: the reasons and what
/// to collect. True when a plateau near a default table size backs it.
pub fn possible(src: Option<&Source>, f: &mut Finding, why: &mut Vec<String>) -> bool {
    let plateau = src.and_then(|s| {
        let max = s.seed.max?;
        let p = FailureId::ConntrackFull
            .info()
            .plateaus
            .iter()
            .copied()
            .find(|&p| near_plateau(max.conns, p))?;
        Some((max.conns, p, s.seed.max_evidence.clone()?))
    });
    let used = plateau.is_some();
    if let Some((count, p, ev)) = plateau {
        f.count = 1;
        f.evidence.push(ev);
        why.push(format!(
            "the count stopped at {}, {} {} {}, a default nf_conntrack_max: the table of this client's host (or the server's) may have filled",
            thousands(count),
            thousands(count.abs_diff(p)),
            if count <= p { "below" } else { "above" },
            thousands(p)
        ));
    } else {
        why.push("nothing in these logs shows or excludes it".to_string());
    }
    f.collect = vec![
        "on the server and this client: `dmesg | grep 'nf_conntrack: table full'`".to_string(),
        "on both hosts: `sysctl net.netfilter.nf_conntrack_count net.netfilter.nf_conntrack_max`"
            .to_string(),
    ];
    used
}

#[cfg(test)]
mod tests {
    use super::super::testing::{findings, of, sources};
    use super::*;

    fn sysctls(count: u64, max: u64) -> String {
        format!(
            "net.netfilter.nf_conntrack_count = {count}\nnet.netfilter.nf_conntrack_max = {max}\n"
        )
    }

    #[test]
    fn a_full_table_is_certain_and_a_nearly_full_one_likely() {
        let f = findings(&[("sysctl.txt", &sysctls(262_144, 262_144))]);
        let c = of(&f, FailureId::ConntrackFull);
        assert_eq!(c.len(), 1, "{f:#?}");
        assert_eq!(
            (c[0].certainty, c[0].side),
            (Certainty::Certain, Side::Host)
        );
        let f = findings(&[("sysctl.txt", &sysctls(255_000, 262_144))]);
        assert_eq!(
            of(&f, FailureId::ConntrackFull)[0].certainty,
            Certainty::Likely
        );
    }

    #[test]
    fn a_table_far_from_full_is_no_finding_and_rules_the_cause_out() {
        let text = sysctls(1_000, 262_144);
        let f = findings(&[("sysctl.txt", &text)]);
        assert!(of(&f, FailureId::ConntrackFull).is_empty(), "{f:#?}");
        let why = ruled_out(&sources(&[("sysctl.txt", &text)])).expect("ruled out");
        assert!(why.contains("peaked at 1,000 of 262,144"), "{why}");
        assert_eq!(
            ruled_out(&sources(&[("sysctl.txt", &sysctls(250_000, 262_144))])),
            None
        );
    }

    #[test]
    fn a_count_stopped_near_a_default_table_size_backs_the_cause() {
        let log = "connections: 261000, sockfd:261003, time_used:400\nconnections: 262000, sockfd:262003, time_used:400\n";
        let src = sources(&[("client.txt", log)]);
        let mut f = Finding::new(
            FailureId::ConntrackFull,
            Side::Host,
            Certainty::Possible,
            "x",
        );
        let mut why = Vec::new();
        assert!(possible(src.first(), &mut f, &mut why));
        assert!(why[0].contains("a default nf_conntrack_max"), "{why:?}");
        let mut why = Vec::new();
        assert!(!possible(None, &mut f, &mut why));
        assert_eq!(why, ["nothing in these logs shows or excludes it"]);
    }
}
