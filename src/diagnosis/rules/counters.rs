//! Kernel counters (`nstat`, `netstat -s`): a counter of the catalogue that
//! rose between two snapshots shows its failure; a single snapshot only
//! says it is non-zero since boot. One finding per failure id, however many
//! of its counters rose. Counters that several ids share (and the symptom
//! ids, timeouts and resets) give weaker findings than one id's own.
use std::collections::BTreeMap;

use super::super::finding::{Certainty, Finding};
use super::super::source::{CounterTrack, Kind, Source};
use super::side_for;
use crate::catalogue::FailureId;
use crate::util::thousands;

pub fn findings(s: &Source, out: &mut Vec<Finding>) {
    let name = s.name();
    let mut by_id: BTreeMap<FailureId, (Finding, Vec<String>)> = BTreeMap::new();
    for (counter, t) in &s.counters {
        // Retransmissions are packet loss only when nothing else explains
        // them: rules::faults judges them all together.
        let ids: Vec<FailureId> = FailureId::all()
            .filter(|id| id.info().counters.contains(counter) && *id != FailureId::PacketLoss)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let rose = t.snapshots >= 2 && t.last > t.first;
        let single = t.snapshots == 1 && t.last > 0;
        if !rose && !single {
            continue;
        }
        for id in &ids {
            let Some(certainty) = certainty(*id, rose, ids.len() == 1) else {
                continue;
            };
            let count = if rose { t.last - t.first } else { t.last };
            let entry = by_id.entry(*id).or_insert_with(|| {
                let side = side_for(*id, "", true, Kind::Counters);
                (Finding::new(*id, side, certainty, &name), Vec::new())
            });
            let f = &mut entry.0;
            f.certainty = f.certainty.min(certainty);
            f.count = f.count.max(count);
            for ev in [Some(&t.first_evidence), rose.then_some(&t.last_evidence)]
                .into_iter()
                .flatten()
            {
                if f.evidence.len() < 4 && !f.evidence.contains(ev) {
                    f.evidence.push(ev.clone());
                }
            }
            entry.1.push(text(counter, t, rose));
        }
    }
    for (_, (mut f, texts)) in by_id {
        f.evidence.sort_by_key(|e| e.line);
        out.push(f.detail(texts.join("; ")));
    }
}

/// How sure a counter makes `id`: certain when it rose and is this id's
/// alone; a symptom (timeout, reset) only when it rose, and then possible.
fn certainty(id: FailureId, rose: bool, own: bool) -> Option<Certainty> {
    let symptom = matches!(id, FailureId::ConnectTimeout | FailureId::ConnectionReset);
    Some(match (rose, own, symptom) {
        (false, _, true) => return None,
        (true, _, true) => Certainty::Possible,
        (true, true, _) => Certainty::Certain,
        (true, false, _) | (false, true, _) => Certainty::Likely,
        (false, false, _) => Certainty::Possible,
    })
}

fn text(counter: &str, t: &CounterTrack, rose: bool) -> String {
    if rose {
        format!(
            "{counter} rose from {} to {} over {} snapshots",
            thousands(t.first),
            thousands(t.last),
            t.snapshots
        )
    } else {
        format!(
            "{counter} is {} in a single snapshot (since boot, or since the previous nstat); take two snapshots during the run to see it rise",
            thousands(t.last)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{findings, of};
    use super::*;

    #[test]
    fn a_rising_listen_overflow_counter_is_a_certain_overflow() {
        let f = findings(&[(
            "nstat.txt",
            "#kernel\nTcpExtListenOverflows 10 0.0\n#kernel\nTcpExtListenOverflows 250 0.0\n",
        )]);
        let a = of(&f, FailureId::AcceptQueueOverflow);
        assert_eq!(a.len(), 1, "{f:#?}");
        assert_eq!(a[0].count, 240);
        assert!(a[0].certainty <= Certainty::Likely, "{:?}", a[0].certainty);
        assert!(
            a[0].explanation.contains("rose from 10 to 250"),
            "{}",
            a[0].explanation
        );
    }

    #[test]
    fn one_snapshot_is_weaker_than_a_rise() {
        let f = findings(&[("nstat.txt", "#kernel\nTcpExtListenOverflows 250 0.0\n")]);
        let a = of(&f, FailureId::AcceptQueueOverflow);
        assert_eq!(a.len(), 1, "{f:#?}");
        assert!(a[0].certainty >= Certainty::Likely, "{:?}", a[0].certainty);
        assert!(
            a[0].explanation.contains("single snapshot"),
            "{}",
            a[0].explanation
        );
    }

    #[test]
    fn a_flat_counter_shows_nothing() {
        let f = findings(&[(
            "nstat.txt",
            "#kernel\nTcpExtListenOverflows 10 0.0\n#kernel\nTcpExtListenOverflows 10 0.0\n",
        )]);
        assert!(of(&f, FailureId::AcceptQueueOverflow).is_empty(), "{f:#?}");
    }

    #[test]
    fn symptoms_need_a_rise_and_stay_possible() {
        assert_eq!(certainty(FailureId::ConnectTimeout, false, true), None);
        assert_eq!(
            certainty(FailureId::ConnectTimeout, true, true),
            Some(Certainty::Possible)
        );
        assert_eq!(
            certainty(FailureId::AcceptQueueOverflow, true, true),
            Some(Certainty::Certain)
        );
        assert_eq!(
            certainty(FailureId::AcceptQueueOverflow, true, false),
            Some(Certainty::Likely)
        );
        assert_eq!(
            certainty(FailureId::AcceptQueueOverflow, false, false),
            Some(Certainty::Possible)
        );
    }
}
