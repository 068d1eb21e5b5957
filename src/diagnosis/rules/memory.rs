//! TCP memory and orphans, from `/proc/net/sockstat` against the sysctls:
//! pages in use at `tcp_mem`'s pressure threshold (certain at its limit),
//! and orphaned sockets at 90% of `tcp_max_orphans` (certain at it).
use super::super::finding::{Certainty, Finding};
use super::super::parse::SysctlKey;
use super::super::source::Source;
use super::sysctl;
use crate::catalogue::{FailureId, Side};
use crate::util::thousands;

pub fn findings(s: &Source, sources: &[Source], out: &mut Vec<Finding>) {
    let Some((v, ev)) = &s.sockstat else {
        return;
    };
    let name = s.name();
    if let Some((mem, _)) = sysctl(s, sources, SysctlKey::TcpMem)
        && mem[1] > 0
        && v[3] >= mem[1]
    {
        let hard = mem[2] > 0 && v[3] >= mem[2];
        let certainty = if hard {
            Certainty::Certain
        } else {
            Certainty::Likely
        };
        let mut f = Finding::new(FailureId::TcpMemoryPressure, Side::Host, certainty, &name);
        f.count = v[3];
        f.evidence.push(ev.clone());
        out.push(f.detail(format!(
            "TCP sockets use {} pages, tcp_mem is {} {} {} (pressure from the second, limit at the third)",
            thousands(v[3]),
            mem[0],
            mem[1],
            mem[2]
        )));
    }
    if let Some((orph, _)) = sysctl(s, sources, SysctlKey::TcpMaxOrphans)
        && orph[0] > 0
        && (v[1] as u128) * 10 >= (orph[0] as u128) * 9
    {
        let certainty = if v[1] >= orph[0] {
            Certainty::Certain
        } else {
            Certainty::Likely
        };
        let mut f = Finding::new(FailureId::OrphanSockets, Side::Host, certainty, &name);
        f.count = v[1];
        f.evidence.push(ev.clone());
        out.push(f.detail(format!(
            "{} orphaned sockets, tcp_max_orphans is {}",
            thousands(v[1]),
            thousands(orph[0])
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{findings, of};
    use super::*;

    const SETTINGS: &str = "net.ipv4.tcp_mem = 1000 2000 3000\nnet.ipv4.tcp_max_orphans = 100\n";

    #[test]
    fn pages_at_the_limit_are_certain_pressure() {
        let text = format!("{SETTINGS}TCP: inuse 5 orphan 0 tw 0 alloc 6 mem 3000\n");
        let f = findings(&[("host.txt", &text)]);
        let m = of(&f, FailureId::TcpMemoryPressure);
        assert_eq!(m.len(), 1, "{f:#?}");
        assert_eq!((m[0].certainty, m[0].count), (Certainty::Certain, 3000));
        let text = format!("{SETTINGS}TCP: inuse 5 orphan 0 tw 0 alloc 6 mem 2500\n");
        let f = findings(&[("host.txt", &text)]);
        assert_eq!(
            of(&f, FailureId::TcpMemoryPressure)[0].certainty,
            Certainty::Likely
        );
    }

    #[test]
    fn orphans_near_the_limit_are_found() {
        let text = format!("{SETTINGS}TCP: inuse 5 orphan 95 tw 0 alloc 6 mem 1\n");
        let f = findings(&[("host.txt", &text)]);
        let o = of(&f, FailureId::OrphanSockets);
        assert_eq!(o.len(), 1, "{f:#?}");
        assert_eq!((o[0].certainty, o[0].count), (Certainty::Likely, 95));
    }

    #[test]
    fn a_quiet_host_is_no_finding() {
        let text = format!("{SETTINGS}TCP: inuse 5 orphan 3 tw 0 alloc 6 mem 10\n");
        let f = findings(&[("host.txt", &text)]);
        assert!(of(&f, FailureId::TcpMemoryPressure).is_empty(), "{f:#?}");
        assert!(of(&f, FailureId::OrphanSockets).is_empty(), "{f:#?}");
    }
}
