//! The log itself: lines with garbage bytes, records glued to noise, cut
//! lines, broken JSON, progress lines missing (the count jumps), and a
//! last line without its newline. One finding per source lists them all.
use super::super::finding::{Certainty, Finding};
use super::{Ctx, plural};
use crate::catalogue::{FailureId, Side};
use crate::util::thousands;

pub fn findings(cx: &Ctx, out: &mut Vec<Finding>) {
    let s = cx.s;
    let c = &s.corruption;
    if s.lines.corrupted == 0 && s.seed.gaps == 0 && !c.unterminated_last {
        return;
    }
    let mut f = Finding::new(
        FailureId::LogCorrupted,
        Side::Log,
        Certainty::Certain,
        &cx.name,
    );
    f.count = s.lines.corrupted;
    f.evidence = c.evidence.clone();
    if let Some((ev, _, _)) = &s.seed.gap_evidence
        && !f.evidence.iter().any(|e| e.line == ev.line)
    {
        f.evidence.push(ev.clone());
    }
    f.evidence.sort_by_key(|e| e.line);
    out.push(f.detail(damage(cx).join(", ")));
}

/// Each kind of damage in words.
fn damage(cx: &Ctx) -> Vec<String> {
    let s = cx.s;
    let c = &s.corruption;
    let seed_corrupt = if s.is_seed_format() { c.non_ascii } else { 0 };
    let mut parts = Vec::new();
    if c.control_or_invalid + seed_corrupt > 0 {
        parts.push(format!(
            "{} line{} with garbage bytes",
            thousands(c.control_or_invalid + seed_corrupt),
            plural(c.control_or_invalid + seed_corrupt)
        ));
    }
    if c.glued > 0 {
        parts.push(format!(
            "{} record{} glued to noise",
            thousands(c.glued),
            plural(c.glued)
        ));
    }
    if let Some((_, from, to)) = &s.seed.gap_evidence {
        parts.push(format!(
            "the count jumps from {} to {} ({} progress line{} missing{})",
            thousands(*from),
            thousands(*to),
            thousands(s.seed.missing_lines),
            plural(s.seed.missing_lines),
            if s.seed.gaps > 1 {
                format!(", {} gaps in all", s.seed.gaps)
            } else {
                String::new()
            }
        ));
    }
    if c.cut_long > 0 {
        parts.push(format!("{} line(s) over 64 KiB cut", c.cut_long));
    }
    if c.bad_json > 0 {
        parts.push(format!("{} broken JSON record(s)", c.bad_json));
    }
    if c.unterminated_last {
        parts.push("the last line is cut (no newline)".to_string());
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::super::testing::{findings, of};
    use super::*;

    #[test]
    fn missing_progress_lines_are_a_gap() {
        let log: String = [999u64, 1999, 2999, 3999, 9999]
            .iter()
            .map(|n| format!("connections: {n}, sockfd:{}, time_used:400\n", n + 3))
            .collect();
        let f = findings(&[("client.txt", &log)]);
        let l = of(&f, FailureId::LogCorrupted);
        assert_eq!(l.len(), 1, "{f:#?}");
        assert!(
            l[0].explanation
                .contains("jumps from 3,999 to 9,999 (5 progress lines missing"),
            "{}",
            l[0].explanation
        );
    }

    #[test]
    fn a_cut_last_line_is_said() {
        let log = "connections: 999, sockfd:1002, time_used:400\nconnections: 1999, sockf";
        let f = findings(&[("client.txt", log)]);
        let l = of(&f, FailureId::LogCorrupted);
        assert_eq!(l.len(), 1, "{f:#?}");
        assert!(
            l[0].explanation.contains("no newline"),
            "{}",
            l[0].explanation
        );
    }

    #[test]
    fn an_intact_log_is_no_finding() {
        let log = "connections: 999, sockfd:1002, time_used:400\nconnections: 1999, sockfd:2002, time_used:400\n";
        let f = findings(&[("client.txt", log)]);
        assert!(of(&f, FailureId::LogCorrupted).is_empty(), "{f:#?}");
    }
}
