//! Effects linked to their cause: a server process that died (a serve
//! worker killed, the server restarted), a server that stalled, a client
//! process that died, packet loss, a reconnect storm. Each such event in
//! c1m's logs (serve's `server_process_died` line, flood's
//! `client_process_died`, the lab's record of a `--fault` it injected) is
//! an incident; the clients' EOFs, resets and refused connects in the
//! seconds after it are its effects. One root-cause finding per incident
//! says what happened, when, what it cost and what the clients saw, with
//! the effects' evidence under it; the effects are not separate findings
//! any more, and root causes come first.
use std::collections::BTreeMap;

use super::plural;
use crate::catalogue::{FailureId, Side};
use crate::diagnosis::finding::{Certainty, Finding};
use crate::diagnosis::source::{Evidence, Kind, Source, Timed};
use crate::events::Role;
use crate::util::thousands;

/// Ids that are causes of connection losses.
const CAUSES: [FailureId; 5] = [
    FailureId::ServerProcessDied,
    FailureId::ServerStalled,
    FailureId::ClientProcessDied,
    FailureId::PacketLoss,
    FailureId::ReconnectStorm,
];

/// Ids that are what the clients see of a cause.
const EFFECTS: [FailureId; 5] = [
    FailureId::PeerDisconnect,
    FailureId::ConnectionReset,
    FailureId::ConnectionRefused,
    FailureId::ConnectTimeout,
    FailureId::ClientProcessDied,
];

/// Effects count from this long before the cause (clocks of processes on
/// one host agree; flood writes a failure line per class per second)...
const BEFORE_S: f64 = 1.0;
/// ...to this long after it.
const AFTER_S: f64 = 3.0;

/// Cause records of one kind this close together are one incident.
const SAME_INCIDENT_S: f64 = 2.0;

/// One cause record, with where it was found.
struct Cause<'a> {
    t: &'a Timed,
    source: String,
    role: Option<Role>,
}

/// Cause records close in time, of one kind.
struct Incident<'a> {
    id: FailureId,
    causes: Vec<Cause<'a>>,
}

impl Incident<'_> {
    fn ts(&self) -> f64 {
        self.causes.iter().map(|c| c.t.ts).fold(f64::MAX, f64::min)
    }

    fn window(&self) -> (f64, f64) {
        let t = self.ts();
        (t - BEFORE_S, t + AFTER_S)
    }

    /// The record the process itself wrote (serve's or flood's), else the
    /// lab's.
    fn own(&self) -> Option<&Cause<'_>> {
        self.causes
            .iter()
            .find(|c| c.role != Some(Role::Lab))
            .or_else(|| self.causes.first())
    }

    /// The `--fault` the lab injected, if it did.
    fn injected(&self) -> Option<String> {
        let lab = self.causes.iter().find(|c| c.role == Some(Role::Lab))?;
        let rest = lab.t.detail.strip_prefix("lab --fault ")?;
        Some(rest.split(':').next().unwrap_or(rest).to_string())
    }

    /// Connections the cause's own record says were lost with it.
    fn lost(&self) -> Option<u64> {
        let own = self.own()?;
        (self.id != FailureId::ServerStalled && own.t.count > 0).then_some(own.t.count)
    }
}

/// Link effects to causes in `findings` (already ordered): the root-cause
/// findings first, the effects they explain folded into them.
pub fn link(sources: &[Source], findings: Vec<Finding>) -> Vec<Finding> {
    let incidents = incidents(sources);
    if incidents.is_empty() {
        return findings;
    }
    let mut roots = Vec::new();
    // (source name, id) of effects explained by an incident.
    let mut explained: BTreeMap<(String, FailureId), (u64, u64)> = BTreeMap::new();
    for inc in &incidents {
        roots.push(root_finding(inc, sources, &mut explained));
    }
    let cause_ids: Vec<FailureId> = incidents.iter().map(|i| i.id).collect();
    let explained_fully = |f: &Finding| {
        if !EFFECTS.contains(&f.id) {
            return false;
        }
        let src = sources.iter().find(|s| s.name() == f.source);
        match src {
            // Counter evidence (TcpEstabResets...) of resets: the incident's.
            Some(s) if s.kind() == Kind::Counters => f.id == FailureId::ConnectionReset,
            Some(s) => {
                let total: u64 = s
                    .timed
                    .iter()
                    .filter(|t| t.id == f.id)
                    .map(|t| t.count)
                    .sum();
                let (n, _) = explained
                    .get(&(f.source.clone(), f.id))
                    .copied()
                    .unwrap_or((0, 0));
                total > 0 && n >= total
            }
            None => false,
        }
    };
    let rest = findings
        .into_iter()
        .filter(|f| !cause_ids.contains(&f.id) && !explained_fully(f));
    roots.into_iter().chain(rest).collect()
}

/// Every incident in the sources, in time order.
fn incidents(sources: &[Source]) -> Vec<Incident<'_>> {
    let mut causes: Vec<Cause> = sources
        .iter()
        .flat_map(|s| {
            s.timed
                .iter()
                .filter(|t| CAUSES.contains(&t.id))
                // flood's own record of a dead worker is a cause only when
                // the lab or serve did not kill it: it is an effect too.
                .map(move |t| Cause {
                    t,
                    source: s.name(),
                    role: s.json.role,
                })
        })
        .collect();
    causes.sort_by(|a, b| a.t.ts.total_cmp(&b.t.ts));
    let mut out: Vec<Incident> = Vec::new();
    for c in causes {
        match out
            .iter_mut()
            .rev()
            .find(|i| i.id == c.t.id && c.t.ts - i.ts() <= SAME_INCIDENT_S)
        {
            Some(i) => i.causes.push(c),
            None => out.push(Incident {
                id: c.t.id,
                causes: vec![c],
            }),
        }
    }
    out
}

/// `12:34:56` (UTC) of a Unix time.
fn clock(ts: f64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(ts.max(0.0));
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.get(11..19).unwrap_or(&s).to_string()
}

/// What happened, in words, from the cause's own record.
fn headline(inc: &Incident) -> String {
    let at = clock(inc.ts());
    let Some(own) = inc.own() else {
        return format!("{} at {at}", inc.id.info().title);
    };
    let d = own.t.detail.as_str();
    let d = match d.strip_prefix("lab --fault ") {
        Some(rest) => rest.split_once(": ").map_or(rest, |(_, r)| r),
        None => d,
    };
    match (inc.id, own.role) {
        (FailureId::ServerProcessDied, Some(Role::Serve)) => {
            // `worker 0 (pid 27012) killed by SIGKILL holding 16,376 connections: all lost`
            let who = d.split(" holding ").next().unwrap_or(d);
            let who = who.replacen(") ", ") was ", 1);
            format!(
                "server {who} at {at}; {} connection{} it held {} lost",
                thousands(own.t.count),
                plural(own.t.count),
                if own.t.count == 1 { "was" } else { "were" }
            )
        }
        (FailureId::ClientProcessDied, Some(Role::Flood)) => {
            let who = d.split(" holding ").next().unwrap_or(d);
            format!(
                "{who} at {at}; {} verified connection{} it held {} lost",
                thousands(own.t.count),
                plural(own.t.count),
                if own.t.count == 1 { "was" } else { "were" }
            )
        }
        _ => format!("{d}, at {at}"),
    }
}

/// The root-cause finding of one incident; records what it explains.
fn root_finding(
    inc: &Incident,
    sources: &[Source],
    explained: &mut BTreeMap<(String, FailureId), (u64, u64)>,
) -> Finding {
    let (from, to) = inc.window();
    let t0 = inc.ts();
    let mut seen: BTreeMap<FailureId, u64> = BTreeMap::new();
    let mut last = t0;
    let mut effect_evidence: Vec<Evidence> = Vec::new();
    let mut counter_evidence: Vec<Evidence> = Vec::new();
    for s in sources {
        if s.kind() == Kind::Counters {
            for name in ["TcpEstabResets", "TcpOutRsts"] {
                if let Some(t) = s.counters.get(name)
                    && t.last > t.first
                    && counter_evidence.len() < 2
                {
                    counter_evidence.push(t.last_evidence.clone());
                }
            }
            continue;
        }
        if s.json.role != Some(Role::Flood) && s.kind() != Kind::Client {
            continue;
        }
        let mut first_here = true;
        for t in &s.timed {
            if !EFFECTS.contains(&t.id) || t.ts < from || t.ts > to || t.id == inc.id {
                continue;
            }
            *seen.entry(t.id).or_default() += t.count;
            last = last.max(t.ts);
            let e = explained.entry((s.name(), t.id)).or_default();
            e.0 += t.count;
            if first_here && effect_evidence.len() < 2 {
                effect_evidence.push(t.evidence.clone());
                first_here = false;
            }
        }
    }
    let info = inc.id.info();
    let side = if info.side == Side::Either {
        Side::Server
    } else {
        info.side
    };
    let own = inc.own();
    let mut f = Finding::new(
        inc.id,
        side,
        Certainty::Certain,
        own.map(|c| c.source.as_str()).unwrap_or(""),
    );
    let effects_total: u64 = seen.values().sum();
    f.count = inc.lost().unwrap_or(effects_total);
    for c in &inc.causes {
        f.evidence.push(c.t.evidence.clone());
    }
    // The cause's own lines first, then what the clients saw (counters
    // only when no client line shows it).
    if effect_evidence.is_empty() {
        f.evidence.extend(counter_evidence);
    }
    f.evidence.extend(effect_evidence);
    let mut text = headline(inc);
    if let Some(fault) = inc.injected() {
        text.push_str(&format!(" (injected by c1m lab --fault {fault})"));
    }
    if effects_total > 0 {
        let words: Vec<String> = EFFECTS
            .iter()
            .filter_map(|id| seen.get(id).map(|n| (id, n)))
            .map(|(id, n)| format!("{} {}", thousands(*n), effect_word(*id, *n)))
            .collect();
        let span = (last - t0).max(0.0).ceil().max(1.0);
        text.push_str(&format!(
            ": clients saw {} within {span:.0} s",
            join_and(&words)
        ));
    } else if inc.id == FailureId::ServerStalled {
        text.push_str(": the clients lost no connection, but their echoes waited for it");
    }
    f.explanation = format!(
        "{}. {}.",
        super::capitalize(&text),
        super::capitalize(info.explanation)
    );
    f
}

fn effect_word(id: FailureId, n: u64) -> String {
    let s = plural(n);
    match id {
        FailureId::PeerDisconnect => format!("EOF{s}"),
        FailureId::ConnectionReset => format!("reset{s}"),
        FailureId::ConnectionRefused => format!("refused connect{s}"),
        FailureId::ConnectTimeout => format!("connect timeout{s}"),
        FailureId::ClientProcessDied => format!("connection{s} lost with a client process"),
        other => other.as_str().to_string(),
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::findings;
    use super::*;

    fn rec(ts: f64, role: &str, pid: u32, failure: &str, count: u64, detail: &str) -> String {
        format!(
            r#"{{"ts":{ts},"role":"{role}","pid":{pid},"event":"failure","failure":"{failure}","call":"recv","count":{count},"detail":"{detail}"}}"#
        )
    }

    #[test]
    fn a_killed_worker_is_the_root_cause_of_the_clients_eofs_and_resets() {
        let serve = [rec(
            1_796_236_826.4,
            "serve",
            10,
            "server_process_died",
            16_376,
            "worker 0 (pid 27012) killed by SIGKILL holding 16,376 connections: all lost",
        )]
        .join("\n")
            + "\n";
        let c1 = [
            rec(
                1_796_236_826.9,
                "flood",
                11,
                "peer_disconnect",
                15_876,
                "eof",
            ),
            rec(
                1_796_236_826.9,
                "flood",
                11,
                "connection_reset",
                500,
                "reset",
            ),
        ]
        .join("\n")
            + "\n";
        // An EOF long after is not this incident's.
        let c2 = rec(1_796_236_900.0, "flood", 12, "peer_disconnect", 3, "eof") + "\n";
        let f = findings(&[
            ("serve.log", &serve),
            ("client-1.log", &c1),
            ("client-2.log", &c2),
        ]);
        assert_eq!(f[0].id, FailureId::ServerProcessDied, "{f:#?}");
        let text = &f[0].explanation;
        assert!(
            text.starts_with("Server worker 0 (pid 27012) was killed by SIGKILL at "),
            "{text}"
        );
        assert!(
            text.contains("16,376 connections it held were lost: clients saw 15,876 EOFs and 500 resets within 1 s"),
            "{text}"
        );
        assert_eq!(f[0].count, 16_376);
        assert!(f[0].evidence.iter().any(|e| e.file == "client-1.log"));
        // client-1's effects are folded in; client-2's late EOF stays.
        assert!(
            !f.iter()
                .any(|x| x.source == "client-1.log" && EFFECTS.contains(&x.id)),
            "{f:#?}"
        );
        assert!(
            f.iter()
                .any(|x| x.source == "client-2.log" && x.id == FailureId::PeerDisconnect)
        );
        assert_eq!(
            f.iter()
                .filter(|x| x.id == FailureId::ServerProcessDied)
                .count(),
            1
        );
    }

    #[test]
    fn the_lab_s_record_names_the_fault_it_injected() {
        let lab = rec(
            100.0,
            "lab",
            5,
            "server_process_died",
            3000,
            "lab --fault restart-server: the server (c1m serve, pid 77) stopped with SIGTERM and started again, holding 3,000 connections",
        );
        let c1 = rec(100.8, "flood", 11, "peer_disconnect", 3000, "eof");
        let f = findings(&[("lab.log", &(lab + "\n")), ("client-1.log", &(c1 + "\n"))]);
        assert_eq!(f[0].id, FailureId::ServerProcessDied, "{f:#?}");
        let text = &f[0].explanation;
        assert!(
            text.starts_with(
                "The server (c1m serve, pid 77) stopped with SIGTERM and started again"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "(injected by c1m lab --fault restart-server): clients saw 3,000 EOFs within 1 s"
            ),
            "{text}"
        );
        assert_eq!(f.len(), 1, "{f:#?}");
    }
}
