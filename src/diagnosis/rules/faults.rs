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
//!
//! Three causes are also found without a record naming them: an OOM kill
//! in the kernel log whose pid is the dead process's (the kill is then the
//! root cause, the death and its effects under it), packet loss from the
//! kernel counters (data retransmissions and loss probes that no
//! accept-queue overflow explains), and a reconnect storm from flood's
//! `--reconnect` account (every lost connection retried within one
//! second, with no backoff or into an overflowing accept queue).
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
    let kills = oom_kills(sources);
    let mut roots = Vec::new();
    // (source name, id) of effects explained by an incident.
    let mut explained: BTreeMap<(String, FailureId), (u64, u64)> = BTreeMap::new();
    // Pids of OOM kills that are an incident's root cause.
    let mut oom_used: Vec<u32> = Vec::new();
    for inc in &incidents {
        let kill = oom_of(inc, &kills);
        if let Some(k) = kill {
            oom_used.push(k.pid);
        }
        roots.push(root_finding(inc, sources, kill, &mut explained));
    }
    if !incidents.iter().any(|i| i.id == FailureId::PacketLoss) {
        roots.extend(loss_from_counters(sources));
    }
    if !incidents.iter().any(|i| i.id == FailureId::ReconnectStorm) {
        roots.extend(storms(sources));
    }
    if roots.is_empty() {
        return findings;
    }
    let cause_ids: Vec<FailureId> = incidents.iter().map(|i| i.id).collect();
    // The source a finding was made from.
    let source_of = |f: &Finding| sources.iter().find(|s| s.name() == f.source);
    let explained_fully = |f: &Finding| {
        if incidents.is_empty() || !EFFECTS.contains(&f.id) {
            return false;
        }
        match source_of(f) {
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
    // An OOM finding whose every kill is a root cause above is folded in.
    let oom_explained = |f: &Finding| {
        f.id == FailureId::OutOfMemory
            && source_of(f)
                .and_then(|s| s.obs.get(&FailureId::OutOfMemory))
                .is_some_and(|o| {
                    let pids: Vec<Option<u32>> =
                        o.evidence.iter().map(|e| oom_pid(&e.text)).collect();
                    o.count as usize == pids.len()
                        && pids
                            .iter()
                            .all(|p| p.is_some_and(|p| oom_used.contains(&p)))
                })
    };
    // TCPTimeouts counts every retransmission timeout, not only SYNs: when
    // packets were lost, a connect timeout read from the counters alone is
    // the loss's RTOs (the loss finding counts them), not a second cause.
    let lost_packets = roots.iter().any(|r| r.id == FailureId::PacketLoss);
    let loss_explained = |f: &Finding| {
        lost_packets
            && f.id == FailureId::ConnectTimeout
            && source_of(f).is_some_and(|s| s.kind() == Kind::Counters)
    };
    let rest = findings.into_iter().filter(|f| {
        !cause_ids.contains(&f.id) && !explained_fully(f) && !oom_explained(f) && !loss_explained(f)
    });
    roots.into_iter().chain(rest).collect()
}

/// An OOM kill in a kernel log: the pid it killed and its line.
struct OomKill<'a> {
    pid: u32,
    evidence: &'a Evidence,
}

/// Every OOM kill the kernel logs show with a pid.
fn oom_kills(sources: &[Source]) -> Vec<OomKill<'_>> {
    sources
        .iter()
        .filter_map(|s| s.obs.get(&FailureId::OutOfMemory))
        .flat_map(|o| o.evidence.iter())
        .filter_map(|e| {
            Some(OomKill {
                pid: oom_pid(&e.text)?,
                evidence: e,
            })
        })
        .collect()
}

/// The pid an OOM-killer line names: `Out of memory: Killed process 27012
/// (c1m)`, the older `Kill process 27012 (c1m) score ...`, or the
/// `oom-kill:...,task=c1m,pid=27012,uid=0` summary.
fn oom_pid(line: &str) -> Option<u32> {
    let lower = line.to_ascii_lowercase();
    ["killed process ", "kill process ", ",pid="]
        .iter()
        .find_map(|key| number_after(&lower, key))
}

/// The number right after `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<u32> {
    let at = text.find(key)? + key.len();
    let digits: &str = text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or("");
    digits.parse().ok()
}

/// The OOM kill of the process a death incident names (`(pid 27012)` in
/// serve's or the lab's record), if the kernel log has one.
fn oom_of<'a>(inc: &Incident, kills: &'a [OomKill<'a>]) -> Option<&'a OomKill<'a>> {
    if !matches!(
        inc.id,
        FailureId::ServerProcessDied | FailureId::ClientProcessDied
    ) {
        return None;
    }
    let pid = inc
        .causes
        .iter()
        .find_map(|c| number_after(&c.t.detail, "(pid "))?;
    kills.iter().find(|k| k.pid == pid)
}

/// A counter's rise between the first and last snapshot of a source.
fn rise(s: &Source, name: &str) -> u64 {
    s.counters
        .get(name)
        .filter(|t| t.snapshots >= 2)
        .map_or(0, |t| t.last.saturating_sub(t.first))
}

/// The counters source that retransmitted most data segments
/// (TcpRetransSegs less the SYNs, TCPSynRetrans), and how many.
fn most_retransmitted(sources: &[Source]) -> Option<(&Source, u64)> {
    sources
        .iter()
        .filter(|s| s.kind() == Kind::Counters)
        .map(|s| {
            let data = rise(s, "TcpRetransSegs").saturating_sub(rise(s, "TCPSynRetrans"));
            (s, data)
        })
        .max_by_key(|(_, d)| *d)
}

/// Retransmissions below this many are a healthy network's noise.
const LOSS_MIN_RETRANS: u64 = 50;

/// Counters of an accept queue that overflowed: dropped handshakes make
/// the peers retransmit too, so they explain retransmissions.
const OVERFLOW_COUNTERS: [&str; 3] = ["ListenOverflows", "ListenDrops", "TCPReqQFullDrop"];

/// Packet loss from the kernel counters: data segments retransmitted
/// (TcpRetransSegs less the SYNs, TCPSynRetrans) and tail-loss probes,
/// on a host whose accept queue did not overflow. One finding, for the
/// counters source that retransmitted most.
fn loss_from_counters(sources: &[Source]) -> Option<Finding> {
    let overflowed = sources
        .iter()
        .any(|s| OVERFLOW_COUNTERS.iter().any(|c| rise(s, c) > 0));
    if overflowed {
        return None;
    }
    let (s, data) = most_retransmitted(sources)?;
    let probes = rise(s, "TCPLossProbes");
    if data < LOSS_MIN_RETRANS || probes == 0 {
        return None;
    }
    let name = s.name();
    let mut f = Finding::new(FailureId::PacketLoss, Side::Host, Certainty::Likely, &name);
    f.count = data;
    for c in ["TcpRetransSegs", "TCPLossProbes", "TCPTimeouts"] {
        if let Some(t) = s.counters.get(c)
            && t.last > t.first
        {
            f.evidence.push(t.last_evidence.clone());
        }
    }
    let timeouts = rise(s, "TCPTimeouts");
    let mut text = format!(
        "{} data segment{} retransmitted (TcpRetransSegs less the SYNs) and {} tail-loss probe{} sent during the run ({name})",
        thousands(data),
        plural(data),
        thousands(probes),
        plural(probes)
    );
    if timeouts > 0 {
        text.push_str(&format!(
            ", {} retransmission timeout{}",
            thousands(timeouts),
            plural(timeouts)
        ));
    }
    text.push_str(
        ", with no accept-queue overflow to explain them: packets were lost between the hosts",
    );
    Some(f.detail(text))
}

/// Processes that lost at least this many connections can storm.
const STORM_MIN_LOST: u64 = 100;

/// Reconnect storms from flood's `--reconnect` accounts: a process whose
/// peak reconnect attempts in one second reached what it lost (everyone
/// came back at once), with no backoff (`--reconnect-backoff 0`), or
/// while an accept queue overflowed.
fn storms(sources: &[Source]) -> Vec<Finding> {
    let overflow = sources.iter().find_map(|s| {
        OVERFLOW_COUNTERS.iter().find_map(|c| {
            let n = rise(s, c);
            (n > 0).then(|| (*c, n, s.counters.get(*c).map(|t| t.last_evidence.clone())))
        })
    });
    let mut out = Vec::new();
    for s in sources {
        let Some((rc, ev)) = &s.json.reconnect else {
            continue;
        };
        let together = rc.lost >= STORM_MIN_LOST && rc.peak_attempts_per_s >= rc.lost;
        let naive = rc.backoff == "0";
        if !together || !(naive || overflow.is_some()) {
            continue;
        }
        let name = s.name();
        let mut f = Finding::new(
            FailureId::ReconnectStorm,
            Side::Client,
            Certainty::Certain,
            &name,
        );
        f.count = rc.peak_attempts_per_s;
        f.evidence.push(ev.clone());
        let mut text = format!(
            "{} verified connection{} lost in {name}, and up to {} reconnect attempt{} started within one second ({}",
            thousands(rc.lost),
            plural(rc.lost),
            thousands(rc.peak_attempts_per_s),
            plural(rc.peak_attempts_per_s),
            if naive {
                "--reconnect-backoff 0: no backoff".to_string()
            } else {
                format!("backoff {}", rc.backoff)
            }
        );
        text.push_str(&format!(
            "; {} attempt{} in all, {} failed",
            thousands(rc.attempts),
            plural(rc.attempts),
            thousands(rc.failed)
        ));
        if let Some((counter, n, ev)) = &overflow {
            text.push_str(&format!(
                "; the accept queue overflowed meanwhile ({counter} rose by {})",
                thousands(*n)
            ));
            f.evidence.extend(ev.clone());
        }
        match rc.recovered_s {
            Some(t) => text.push_str(&format!(
                "; back at the target {t:.1} s after the first loss)"
            )),
            None => text.push_str("; never back at the target)"),
        }
        out.push(f.detail(text));
    }
    out
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
    oom: Option<&OomKill>,
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
            let names = match inc.id {
                FailureId::PacketLoss => ["TcpRetransSegs", "TCPLossProbes"],
                _ => ["TcpEstabResets", "TcpOutRsts"],
            };
            for name in names {
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
    // An OOM kill of the dead process is the root cause of its death.
    let mut f = Finding::new(
        if oom.is_some() {
            FailureId::OutOfMemory
        } else {
            inc.id
        },
        side,
        Certainty::Certain,
        own.map(|c| c.source.as_str()).unwrap_or(""),
    );
    let effects_total: u64 = seen.values().sum();
    f.count = inc.lost().unwrap_or(effects_total);
    if let Some(k) = oom {
        f.evidence.push(k.evidence.clone());
    }
    for c in &inc.causes {
        f.evidence.push(c.t.evidence.clone());
    }
    // The cause's own lines first, then what the clients saw (counters
    // only when no client line shows it).
    if effect_evidence.is_empty() {
        f.evidence.extend(counter_evidence);
    }
    f.evidence.extend(effect_evidence);
    let mut text = match oom {
        Some(k) => oom_headline(inc, k),
        None => headline(inc),
    };
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
    if inc.id == FailureId::PacketLoss
        && let Some((s, data)) = most_retransmitted(sources)
        && data > 0
    {
        text.push_str(&format!(
            "; {}: {} data segment{} retransmitted and {} tail-loss probe{} during the run",
            s.name(),
            thousands(data),
            plural(data),
            thousands(rise(s, "TCPLossProbes")),
            plural(rise(s, "TCPLossProbes"))
        ));
        let timeouts = rise(s, "TCPTimeouts");
        if timeouts > 0 {
            text.push_str(&format!(
                ", {} retransmission timeout{}",
                thousands(timeouts),
                plural(timeouts)
            ));
        }
    }
    let explanation = f.explanation.clone();
    f.explanation = format!(
        "{}. {}.",
        super::capitalize(&text),
        super::capitalize(&explanation)
    );
    if oom.is_some() {
        // The kill's fix first, then what the death asks of clients.
        f.fix = format!("{}; {}", f.fix, info.fix);
    }
    f
}

/// The death of an incident told as the OOM kill it was:
/// `the kernel's OOM killer killed server worker 0 (pid 27012) at
/// 12:34:56 (Out of memory: Killed process 27012 (c1m) ...); 3,000
/// connections it held were lost`.
fn oom_headline(inc: &Incident, kill: &OomKill) -> String {
    let at = clock(inc.ts());
    let own = inc.own();
    let d = own.map_or("", |c| c.t.detail.as_str());
    let d = match d.strip_prefix("lab --fault ") {
        Some(rest) => rest.split_once(": ").map_or(rest, |(_, r)| r),
        None => d,
    };
    let who = d
        .split(" killed by ")
        .next()
        .unwrap_or(d)
        .split(" exited")
        .next()
        .unwrap_or(d)
        .split(" holding ")
        .next()
        .unwrap_or(d);
    let who = match own.and_then(|c| c.role) {
        Some(Role::Serve) => format!("server {who}"),
        _ => who.to_string(),
    };
    let line = kill.evidence.text.as_str();
    let lower = line.to_ascii_lowercase();
    let from = [
        "out of memory",
        "killed process",
        "kill process",
        "oom-kill",
    ]
    .iter()
    .filter_map(|k| lower.find(k))
    .min()
    .unwrap_or(0);
    let quoted: String = line.get(from..).unwrap_or(line).chars().take(100).collect();
    let lost = own.map_or(0, |c| c.t.count);
    let mut text = format!("the kernel's OOM killer killed {who} at {at} (kernel: \"{quoted}\")");
    if lost > 0 && inc.id != FailureId::ServerStalled {
        text.push_str(&format!(
            "; {} connection{} it held {} lost",
            thousands(lost),
            plural(lost),
            if lost == 1 { "was" } else { "were" }
        ));
    }
    text
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
    use super::super::testing::{findings, of};
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

    /// serve's record of worker 0 (pid `pid`) killed, and client EOFs.
    fn killed_worker(pid: u32) -> (String, String) {
        let serve = rec(
            1_796_236_826.4,
            "serve",
            10,
            "server_process_died",
            3000,
            &format!("worker 0 (pid {pid}) killed by SIGKILL holding 3,000 connections: all lost"),
        ) + "\n";
        let c1 = rec(1_796_236_826.6, "flood", 11, "peer_disconnect", 3000, "eof") + "\n";
        (serve, c1)
    }

    #[test]
    fn an_oom_kill_of_the_dead_worker_is_the_root_cause() {
        let (serve, c1) = killed_worker(27012);
        let kernel = "[ 5012.331] c1m invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0\n\
[ 5012.402] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=c1m,pid=27012,uid=0\n\
[ 5012.402] Out of memory: Killed process 27012 (c1m) total-vm:912000kB, anon-rss:880000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1800kB oom_score_adj:0\n";
        let f = findings(&[
            ("serve.log", &serve),
            ("client-1.log", &c1),
            ("kernel.log", kernel),
        ]);
        assert_eq!(f[0].id, FailureId::OutOfMemory, "{f:#?}");
        let text = &f[0].explanation;
        assert!(
            text.starts_with("The kernel's OOM killer killed server worker 0 (pid 27012) at "),
            "{text}"
        );
        assert!(
            text.contains("(kernel: \"Out of memory: Killed process 27012 (c1m)")
                && text.contains("3,000 connections it held were lost: clients saw 3,000 EOFs"),
            "{text}"
        );
        assert_eq!(f[0].count, 3000);
        let files: Vec<&str> = f[0].evidence.iter().map(|e| e.file.as_str()).collect();
        assert_eq!(files[..2], ["kernel.log", "serve.log"], "{files:?}");
        assert!(files.contains(&"client-1.log"), "{files:?}");
        // The death and the kill are that one finding, not three.
        assert_eq!(of(&f, FailureId::OutOfMemory).len(), 1, "{f:#?}");
        assert!(of(&f, FailureId::ServerProcessDied).is_empty(), "{f:#?}");
        assert!(of(&f, FailureId::PeerDisconnect).is_empty(), "{f:#?}");
    }

    #[test]
    fn an_oom_kill_of_another_pid_is_not_the_worker_s_cause() {
        let (serve, c1) = killed_worker(27012);
        // journalctl -k's form, another process.
        let kernel = "Dec 02 22:43:05 lab kernel: Out of memory: Killed process 4242 (java) total-vm:9120000kB, anon-rss:8800000kB, file-rss:0kB\n";
        let f = findings(&[
            ("serve.log", &serve),
            ("client-1.log", &c1),
            ("kernel.log", kernel),
        ]);
        assert_eq!(f[0].id, FailureId::ServerProcessDied, "{f:#?}");
        assert_eq!(of(&f, FailureId::OutOfMemory).len(), 1, "{f:#?}");
    }

    #[test]
    fn oom_lines_name_their_pid_in_every_form() {
        assert_eq!(
            oom_pid("[ 5.1] Out of memory: Killed process 1234 (c1m) total-vm:1kB"),
            Some(1234)
        );
        assert_eq!(
            oom_pid("Out of memory: Kill process 99 (c1m) score 900 or sacrifice child"),
            Some(99)
        );
        assert_eq!(
            oom_pid("oom-kill:constraint=CONSTRAINT_NONE,task=c1m,pid=27012,uid=0"),
            Some(27012)
        );
        assert_eq!(
            oom_pid("TCP: out of memory -- consider tuning tcp_mem"),
            None
        );
    }

    fn nstat(pairs: &[(&str, u64, u64)]) -> String {
        let mut s = String::new();
        for snap in 0..2 {
            s.push_str("#kernel\n");
            for (name, a, b) in pairs {
                s.push_str(&format!("{name} {} 0.0\n", if snap == 0 { a } else { b }));
            }
        }
        s
    }

    #[test]
    fn retransmitted_data_with_loss_probes_is_packet_loss() {
        let text = nstat(&[
            ("TcpRetransSegs", 10, 910),
            ("TcpExtTCPSynRetrans", 5, 15),
            ("TcpExtTCPLossProbes", 0, 120),
            ("TcpExtTCPTimeouts", 0, 40),
        ]);
        let f = findings(&[("client-1/counters.nstat", &text)]);
        let loss = of(&f, FailureId::PacketLoss);
        assert_eq!(loss.len(), 1, "{f:#?}");
        assert_eq!(loss[0].count, 890);
        assert_eq!(loss[0].certainty, Certainty::Likely);
        assert!(
            loss[0].explanation.contains(
                "890 data segments retransmitted (TcpRetransSegs less the SYNs) and 120 tail-loss probes"
            ) && loss[0].explanation.contains("40 retransmission timeouts"),
            "{}",
            loss[0].explanation
        );
        assert_eq!(f[0].id, FailureId::PacketLoss, "{f:#?}");
        // The 40 timeouts are the loss's, not a connect timeout of their own.
        assert!(of(&f, FailureId::ConnectTimeout).is_empty(), "{f:#?}");
    }

    #[test]
    fn the_lab_s_loss_explains_the_counters_timeouts() {
        let lab = rec(
            100.0,
            "lab",
            5,
            "packet_loss",
            0,
            "lab --fault loss: client-1's link (eth0 in namespace c1m-9-client-1) dropped 20% of its packets, at random for 3.0 s with nftables, holding 3,000 connections",
        );
        let counters = nstat(&[
            ("TcpRetransSegs", 10, 910),
            ("TcpExtTCPLossProbes", 0, 120),
            ("TcpExtTCPTimeouts", 0, 74),
        ]);
        let f = findings(&[
            ("lab.log", &(lab + "\n")),
            ("client-1/counters.nstat", &counters),
        ]);
        assert_eq!(f[0].id, FailureId::PacketLoss, "{f:#?}");
        assert!(
            f[0].explanation.contains("74 retransmission timeouts"),
            "{}",
            f[0].explanation
        );
        assert!(of(&f, FailureId::ConnectTimeout).is_empty(), "{f:#?}");
    }

    #[test]
    fn retransmissions_an_overflowing_accept_queue_explains_are_not_loss() {
        let overflow = nstat(&[
            ("TcpRetransSegs", 10, 910),
            ("TcpExtTCPLossProbes", 0, 120),
            ("TcpExtListenOverflows", 0, 300),
        ]);
        let f = findings(&[("counters.nstat", &overflow)]);
        assert!(of(&f, FailureId::PacketLoss).is_empty(), "{f:#?}");
        assert!(!of(&f, FailureId::AcceptQueueOverflow).is_empty(), "{f:#?}");
        // SYN retransmissions only, or a handful: no loss either.
        let syns = nstat(&[
            ("TcpRetransSegs", 10, 910),
            ("TcpExtTCPSynRetrans", 10, 910),
            ("TcpExtTCPLossProbes", 0, 3),
        ]);
        let few = nstat(&[("TcpRetransSegs", 10, 20), ("TcpExtTCPLossProbes", 0, 3)]);
        for text in [syns, few] {
            let f = findings(&[("counters.nstat", &text)]);
            assert!(of(&f, FailureId::PacketLoss).is_empty(), "{f:#?}");
        }
    }

    fn flood_summary(backoff: &str, lost: u64, attempts: u64, peak: u64) -> String {
        format!(
            r#"{{"ts":1796236840.0,"role":"flood","pid":11,"event":"summary","connections":{lost},"opened_total":{},"elapsed_s":20.0,"details":{{"reconnect":{{"backoff":"{backoff}","lost":{lost},"attempts":{attempts},"failed":{},"reconnects":{lost},"peak_attempts_per_s":{peak},"recovered_s":0.7}}}}}}"#,
            lost * 2,
            attempts - lost
        ) + "\n"
    }

    #[test]
    fn clients_that_all_reconnect_at_once_without_backoff_are_a_storm() {
        let f = findings(&[("client-1.log", &flood_summary("0", 3000, 9000, 8000))]);
        let storm = of(&f, FailureId::ReconnectStorm);
        assert_eq!(storm.len(), 1, "{f:#?}");
        assert_eq!(storm[0].count, 8000);
        let text = &storm[0].explanation;
        assert!(
            text.contains("3,000 verified connections lost in client-1.log, and up to 8,000 reconnect attempts started within one second (--reconnect-backoff 0: no backoff; 9,000 attempts in all, 6,000 failed; back at the target 0.7 s after the first loss)"),
            "{text}"
        );
        assert_eq!(storm[0].evidence[0].file, "client-1.log");
    }

    #[test]
    fn jittered_reconnects_are_a_storm_only_into_an_overflowing_queue() {
        let jitter = flood_summary("100ms..30s", 3000, 4000, 3500);
        let f = findings(&[("client-1.log", &jitter)]);
        assert!(of(&f, FailureId::ReconnectStorm).is_empty(), "{f:#?}");
        let overflow = nstat(&[("TcpExtListenOverflows", 0, 700)]);
        let f = findings(&[("client-1.log", &jitter), ("counters.nstat", &overflow)]);
        let storm = of(&f, FailureId::ReconnectStorm);
        assert_eq!(storm.len(), 1, "{f:#?}");
        assert!(
            storm[0]
                .explanation
                .contains("the accept queue overflowed meanwhile (ListenOverflows rose by 700)"),
            "{}",
            storm[0].explanation
        );
        // Spread out (fewer attempts a second than were lost): no storm.
        let spread = flood_summary("0", 3000, 3000, 900);
        let f = findings(&[("client-1.log", &spread), ("counters.nstat", &overflow)]);
        assert!(of(&f, FailureId::ReconnectStorm).is_empty(), "{f:#?}");
    }
}
