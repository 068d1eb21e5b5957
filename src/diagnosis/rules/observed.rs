//! Direct observations: every error line, kernel line and failure record a
//! source holds becomes a `certain` finding of its catalogue id, with the
//! call and errno named. The EAGAIN bug's finding also says how many
//! healthy connections it closed (see [`super::eagain`]).
use super::super::finding::{Certainty, Finding};
use super::{Ctx, plural, side_for};
use crate::catalogue::FailureId;
use crate::util::thousands;

pub fn findings(cx: &Ctx, out: &mut Vec<Finding>) {
    for (id, o) in &cx.s.obs {
        let side = side_for(*id, o.call, o.kernel, cx.kind);
        let mut f = Finding::new(*id, side, Certainty::Certain, &cx.name);
        f.count = o.count;
        f.evidence = o.evidence.clone();
        let mut what = format!("{} line{}", thousands(o.count), plural(o.count));
        if !o.call.is_empty() {
            what.push_str(&format!(" from {}()", o.call));
        }
        if let Some(e) = o.errno {
            what.push_str(&format!(
                " with {} ({})",
                crate::util::errno_name(e),
                crate::util::errno_text(e)
            ));
        }
        if let Some(d) = &o.detail {
            what.push_str(&format!(": {d}"));
        }
        if *id == FailureId::EagainMisuse {
            super::eagain::closed_by_errors(cx, &mut f, &mut what);
        }
        out.push(f.detail(what).seen_at(o.first_ts));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{findings, of};
    use crate::catalogue::{FailureId, Side};
    use crate::diagnosis::finding::Certainty;

    #[test]
    fn an_error_line_is_a_certain_finding_with_its_call_and_errno() {
        let f = findings(&[(
            "client.log",
            "socket: Too many open files\nsocket: Too many open files\n",
        )]);
        let fd = of(&f, FailureId::FdLimit);
        assert_eq!(fd.len(), 1, "{f:#?}");
        assert_eq!(fd[0].certainty, Certainty::Certain);
        assert_eq!(fd[0].count, 2);
        assert_eq!(fd[0].evidence.len(), 2);
        assert!(
            fd[0].explanation.contains("2 lines"),
            "{}",
            fd[0].explanation
        );
        assert!(
            fd[0].explanation.contains("EMFILE"),
            "{}",
            fd[0].explanation
        );
    }

    #[test]
    fn a_kernel_line_belongs_to_the_host() {
        let f = findings(&[(
            "dmesg.log",
            "[12345.678901] nf_conntrack: nf_conntrack: table full, dropping packet\n",
        )]);
        let c = of(&f, FailureId::ConntrackFull);
        assert_eq!(c.len(), 1, "{f:#?}");
        assert_eq!(
            (c[0].side, c[0].certainty),
            (Side::Host, Certainty::Certain)
        );
    }

    #[test]
    fn of_equal_findings_the_one_that_began_first_by_the_clock_comes_first() {
        let f = findings(&[
            (
                "a.log",
                "2026-12-02 22:43:09,000 ERROR socket: Too many open files\n",
            ),
            (
                "b.log",
                "2026-12-02 22:43:05,000 ERROR connect: Connection refused\n",
            ),
        ]);
        let ids: Vec<FailureId> = f.iter().map(|f| f.id).collect();
        assert_eq!(
            ids,
            [FailureId::ConnectionRefused, FailureId::FdLimit],
            "{f:#?}"
        );
        assert_eq!(f[0].first_seen.as_deref(), Some("2026-12-02T22:43:05.000"));
        // Without clocks, input order decides.
        let f = findings(&[
            ("a.log", "socket: Too many open files\n"),
            ("b.log", "connect: Connection refused\n"),
        ]);
        assert_eq!(f[0].id, FailureId::FdLimit);
        assert_eq!(f[0].first_seen, None);
    }

    #[test]
    fn clean_output_gives_no_finding() {
        let f = findings(&[("client.log", "connected 100 connections\nall good\n")]);
        assert!(f.is_empty(), "{f:#?}");
    }
}
