//! The system-wide file table: `fs.file-nr`'s allocated handles at
//! `fs.file-max` (or at file-nr's own third field when file-max is not in
//! the logs). The per-process limit (EMFILE) shows as error lines and is
//! found by [`super::observed`].
use super::super::finding::{Certainty, Finding};
use super::super::parse::SysctlKey;
use super::super::source::Source;
use super::sysctl;
use crate::catalogue::{FailureId, Side};
use crate::util::thousands;

pub fn findings(s: &Source, sources: &[Source], out: &mut Vec<Finding>) {
    let Some((nr, ev)) = s.sysctl.get(&SysctlKey::FileNr) else {
        return;
    };
    let max = sysctl(s, sources, SysctlKey::FileMax)
        .map(|m| m.0[0])
        .unwrap_or(nr[2]);
    if max == 0 || nr[0] < max {
        return;
    }
    let mut f = Finding::new(
        FailureId::SystemFdLimit,
        Side::Host,
        Certainty::Certain,
        &s.name(),
    );
    f.count = nr[0];
    f.evidence.push(ev.clone());
    out.push(f.detail(format!(
        "{} file handles allocated of fs.file-max {}",
        thousands(nr[0]),
        thousands(max)
    )));
}

#[cfg(test)]
mod tests {
    use super::super::testing::{findings, of};
    use super::*;

    #[test]
    fn a_full_file_table_is_the_system_limit() {
        let f = findings(&[("sysctl.txt", "fs.file-nr = 1000 0 1000\n")]);
        let s = of(&f, FailureId::SystemFdLimit);
        assert_eq!(s.len(), 1, "{f:#?}");
        assert_eq!((s[0].certainty, s[0].count), (Certainty::Certain, 1000));
        // fs.file-max, when present, is the limit.
        let f = findings(&[(
            "sysctl.txt",
            "fs.file-nr = 1000 0 5000\nfs.file-max = 1000\n",
        )]);
        assert_eq!(of(&f, FailureId::SystemFdLimit).len(), 1, "{f:#?}");
    }

    #[test]
    fn room_in_the_file_table_is_no_finding() {
        let f = findings(&[(
            "sysctl.txt",
            "fs.file-nr = 1000 0 5000\nfs.file-max = 9000\n",
        )]);
        assert!(of(&f, FailureId::SystemFdLimit).is_empty(), "{f:#?}");
    }
}
