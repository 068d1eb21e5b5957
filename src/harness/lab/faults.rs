//! `c1m lab --fault F`: one fault injected for real during the hold, and the
//! hold's account of what it cost. The lab kills or stops one of its own
//! processes a third of the way into the hold (a serve worker with SIGKILL
//! or SIGSTOP/SIGCONT, a flood worker with SIGKILL, or the whole server
//! stopped and started again), writes what it did as a failure record in
//! `logs/lab.log` (so `analyze` sees the cause next to its effects), and
//! compares the connections the clients lost with the ones the server (or
//! the killed client) held. Without a fault, any loss during the hold
//! makes the run "not reached".
//!
//! Between namespace hosts (`--hosts`) two more faults drop packets on
//! client-1's link with nftables rules inside that host's own namespace
//! (never the root namespace's), on what arrives over it: `loss` drops
//! `--loss-percent` (default [`LOSS_PERCENT`]) % of them at random (`numgen random mod 100 < P drop`;
//! this kernel has no netem), `partition` drops them all, for a third of
//! the hold (1 to 3 s); then the rules are removed. A short drop loses no
//! connection: TCP retransmits.
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;

use crate::catalogue::FailureId;
use crate::events::{Event, Record, Role};
use crate::sys::workers::Pool;
use crate::util::thousands;

/// The faults `--fault` injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL one serve worker: its connections die with it.
    KillWorker,
    /// SIGSTOP one serve worker for a few seconds, then SIGCONT.
    StallWorker,
    /// SIGKILL one flood worker process: the server sees its connections end.
    KillClient,
    /// Stop serve (SIGTERM) and start it again.
    RestartServer,
    /// Drop a share of client-1's packets for a few seconds (--hosts).
    Loss,
    /// Drop every packet of client-1 for a few seconds (--hosts).
    Partition,
}

/// The share of packets `--fault loss` drops by default, percent.
pub const LOSS_PERCENT: u8 = 20;

/// The value parser of `--loss-percent`: 1 to 100.
pub fn parse_loss_percent(text: &str) -> Result<u8, String> {
    text.trim()
        .trim_end_matches('%')
        .parse::<u8>()
        .ok()
        .filter(|p| (1..=100).contains(p))
        .ok_or_else(|| format!("{text}: a share of packets from 1 to 100 (percent)"))
}

/// The nftables table the network faults load (in a client host's
/// namespace only).
const NFT_TABLE: &str = "c1m_fault";

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillWorker => "kill-worker",
            Fault::StallWorker => "stall-worker",
            Fault::KillClient => "kill-client",
            Fault::RestartServer => "restart-server",
            Fault::Loss => "loss",
            Fault::Partition => "partition",
        }
    }

    /// A network fault: nftables drops on a namespace host's link, so it
    /// needs `--hosts`.
    pub fn needs_hosts(self) -> bool {
        matches!(self, Fault::Loss | Fault::Partition)
    }

    /// The nftables ruleset that makes this network fault on the link
    /// `iface` of the namespace it is loaded into: it drops what arrives
    /// over the link (the peer's data and ACKs), so neither side's
    /// segments are acknowledged and both retransmit, as across a lossy
    /// or cut wire. A drop in the host's own output hook would not do:
    /// the kernel fails such a send locally (EPERM) and TCP waits instead
    /// of retransmitting, so nothing shows on either side.
    fn ruleset(self, iface: &str, loss_percent: u8) -> String {
        let verdict = match self {
            Fault::Loss => format!("numgen random mod 100 < {loss_percent} drop"),
            _ => "drop".to_string(),
        };
        format!(
            "table inet {NFT_TABLE} {{\n  chain input {{\n    type filter hook input priority -10; policy accept;\n    iifname \"{iface}\" {verdict}\n  }}\n}}\n"
        )
    }

    /// The catalogue id that names this fault.
    pub fn id(self) -> FailureId {
        match self {
            Fault::KillWorker | Fault::RestartServer => FailureId::ServerProcessDied,
            Fault::StallWorker => FailureId::ServerStalled,
            Fault::KillClient => FailureId::ClientProcessDied,
            Fault::Loss | Fault::Partition => FailureId::PacketLoss,
        }
    }
}

/// What the fault did and what it cost (report.json `fault`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FaultReport {
    pub fault: String,
    /// Whether it was injected at all (the hold may end first).
    pub injected: bool,
    /// The process it hit: `serve worker 0 (pid 27012)`.
    pub victim: String,
    /// Unix time of the injection, and seconds into the hold.
    pub ts: Option<f64>,
    pub at_hold_s: Option<f64>,
    /// How long the process was stopped (stall-worker), or the server down
    /// (restart-server), seconds.
    pub duration_s: Option<f64>,
    /// The connections the victim's side says went with it: serve's
    /// `lost_connections` (kill-worker), what the server held when it was
    /// stopped (restart-server), the drop of the server's count
    /// (kill-client); 0 for a stall.
    pub expected_loss: u64,
    /// The verified connections the clients lost during the hold.
    pub clients_lost: u64,
    /// The two agree (within the connections in flight).
    pub agree: bool,
    /// With reconnecting clients: seconds from the fault until the clients
    /// held the target again.
    pub recovered_s: Option<f64>,
    pub detail: String,
}

/// The hold's account (report.json `hold`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct HoldReport {
    /// Verified connections when the hold began.
    pub verified_at_start: u64,
    /// Verified connections still open when it ended.
    pub alive_at_end: u64,
    /// Verified connections lost during it, and by cause (`eof`, `reset`,
    /// `client_process_died`).
    pub lost: u64,
    pub lost_by_cause: BTreeMap<String, u64>,
    /// The server's own count of connections that died with a worker.
    pub server_lost: u64,
    /// No loss, or a loss the requested fault explains.
    pub ok: bool,
}

enum State {
    Pending,
    Stalled {
        pid: i32,
        until: Instant,
    },
    Restarting {
        since: Instant,
    },
    /// Network fault rules loaded until then.
    Dropping {
        rules: LoadedRules,
        until: Instant,
    },
    Done,
}

/// Injects one fault during the hold and keeps its account.
pub struct Injector {
    pub fault: Fault,
    at: Duration,
    stall: Duration,
    state: State,
    injected_at: Option<Instant>,
    pub report: FaultReport,
    /// The server's connections when the fault hit.
    pub server_at_fault: u64,
    /// The clients' connections when the fault hit.
    pub clients_at_fault: u64,
    /// The clients' count fell below the target after the fault.
    dipped: bool,
    /// `--fault loss`: the share of packets dropped, percent.
    loss_percent: u8,
}

/// What the lab knows when the fault is due.
pub struct Scene<'a> {
    pub pool: &'a Pool,
    /// serve's worker pids, from its start record.
    pub serve_workers: Vec<u32>,
    pub server_connections: u64,
    pub client_connections: u64,
    /// Client 1's connections (the kill-client victim's, when it is one
    /// process).
    pub first_client_connections: u64,
    /// The lab's own log (logs/lab.log).
    pub log: &'a mut dyn Write,
    /// `--hosts`: client-1's host name and namespace, whose link the
    /// network faults drop packets on.
    pub client_host: Option<(&'a str, &'a str)>,
}

impl Injector {
    /// A fault a third of the way into a hold of `hold` (at least 0.5 s,
    /// at most 5 s in); a stall lasts a third of the hold, 1 to 3 s.
    pub fn new(fault: Fault, hold: Duration) -> Injector {
        let third = hold / 3;
        Injector {
            fault,
            at: third.clamp(Duration::from_millis(500), Duration::from_secs(5)),
            stall: third.clamp(Duration::from_secs(1), Duration::from_secs(3)),
            state: State::Pending,
            injected_at: None,
            report: FaultReport {
                fault: fault.name().into(),
                ..Default::default()
            },
            server_at_fault: 0,
            clients_at_fault: 0,
            dipped: false,
            loss_percent: LOSS_PERCENT,
        }
    }

    /// `--loss-percent`: the share of packets `--fault loss` drops.
    pub fn with_loss_percent(mut self, percent: u8) -> Injector {
        self.loss_percent = percent;
        self
    }

    /// Called on every pass of the lab's loop during the hold.
    pub fn poll(&mut self, in_hold: Duration, scene: &mut Scene) -> anyhow::Result<()> {
        match self.state {
            State::Pending if in_hold >= self.at => self.inject(in_hold, scene),
            _ => self.end_fault(false),
        }
    }

    /// The hold is over: a fault still in progress (a stopped worker,
    /// loaded rules) ends now, before the clients close.
    pub fn end_of_hold(&mut self) -> anyhow::Result<()> {
        self.end_fault(true)
    }

    /// End a stall or a drop when it is due (or `now`).
    fn end_fault(&mut self, now: bool) -> anyhow::Result<()> {
        let due = |until: Instant| now || Instant::now() >= until;
        match self.state {
            State::Stalled { pid, until } if due(until) => {
                let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
                self.report.duration_s = self.injected_at.map(|t| t.elapsed().as_secs_f64());
                self.state = State::Done;
                Ok(())
            }
            State::Dropping {
                ref mut rules,
                until,
            } if due(until) => {
                let removed = rules.remove();
                self.report.duration_s = self.injected_at.map(|t| t.elapsed().as_secs_f64());
                self.state = State::Done;
                removed.map_err(|e| {
                    anyhow::anyhow!("--fault {}: removing the rules: {e:#}", self.fault.name())
                })
            }
            _ => Ok(()),
        }
    }

    /// Load the network fault's rules in client-1's namespace and say so.
    fn inject_network(&mut self, in_hold: Duration, scene: &mut Scene) -> anyhow::Result<()> {
        let (host, netns) = scene.client_host.ok_or_else(|| {
            anyhow::anyhow!(
                "--fault {} drops packets on a namespace host's link: it needs --hosts",
                self.fault.name()
            )
        })?;
        self.server_at_fault = scene.server_connections;
        self.clients_at_fault = scene.client_connections;
        let iface = crate::sys::hosts::IFACE;
        nft_in(netns, &self.fault.ruleset(iface, self.loss_percent))
            .map_err(|e| anyhow::anyhow!("--fault {}: {e:#}", self.fault.name()))?;
        let now = Instant::now();
        self.injected_at = Some(now);
        self.state = State::Dropping {
            rules: LoadedRules {
                netns: netns.to_string(),
                removed: false,
            },
            until: now + self.stall,
        };
        let what = match self.fault {
            Fault::Loss => format!("{}% of its packets, at random", self.loss_percent),
            _ => "every packet (a partition)".to_string(),
        };
        let detail = format!(
            "lab --fault {}: {host}'s link ({iface} in namespace {netns}) dropped {what} for {:.1} s with nftables, holding {} connections",
            self.fault.name(),
            self.stall.as_secs_f64(),
            thousands(scene.first_client_connections)
        );
        let rec = Record::now(
            Role::Lab,
            None,
            Event::Failure {
                failure: self.fault.id(),
                call: "nft".into(),
                errno: None,
                count: 0,
                detail: detail.clone(),
            },
        );
        let mut log = &mut *scene.log;
        let _ = rec.emit(&mut log);
        self.report.injected = true;
        self.report.victim = format!("{host}'s link");
        self.report.ts = Some(rec.ts);
        self.report.at_hold_s = Some(in_hold.as_secs_f64());
        self.report.detail = detail;
        Ok(())
    }

    fn inject(&mut self, in_hold: Duration, scene: &mut Scene) -> anyhow::Result<()> {
        self.server_at_fault = scene.server_connections;
        self.clients_at_fault = scene.client_connections;
        // What the victim held, where the lab knows it (0: its own
        // process's record says).
        let mut held = 0;
        let (victim, pid, signal) = match self.fault {
            Fault::KillWorker | Fault::StallWorker => {
                let pid = *scene.serve_workers.first().ok_or_else(|| {
                    anyhow::anyhow!("--fault {}: serve named no worker", self.fault.name())
                })?;
                (format!("serve worker 0 (pid {pid})"), pid, None)
            }
            Fault::KillClient => {
                let parent = scene.pool.pid(1).ok_or_else(|| {
                    anyhow::anyhow!("--fault kill-client: client 1 is not running")
                })?;
                // flood's first worker process; a single-process client is
                // its own worker.
                match crate::sys::procfs::children(parent).first() {
                    Some(&pid) => (format!("client 1's flood worker 0 (pid {pid})"), pid, None),
                    None => {
                        held = scene.first_client_connections;
                        (format!("client 1 (pid {parent})"), parent, None)
                    }
                }
            }
            Fault::RestartServer => {
                let pid = scene.pool.pid(0).ok_or_else(|| {
                    anyhow::anyhow!("--fault restart-server: serve is not running")
                })?;
                held = scene.server_connections;
                (
                    format!("the server (c1m serve, pid {pid})"),
                    pid,
                    Some(Signal::SIGTERM),
                )
            }
            Fault::Loss | Fault::Partition => return self.inject_network(in_hold, scene),
        };
        let signal = signal.unwrap_or(match self.fault {
            Fault::StallWorker => Signal::SIGSTOP,
            _ => Signal::SIGKILL,
        });
        kill(Pid::from_raw(pid as i32), signal).map_err(|e| {
            anyhow::anyhow!("--fault {}: {signal} to {victim}: {e}", self.fault.name())
        })?;
        let now = Instant::now();
        self.injected_at = Some(now);
        self.state = match self.fault {
            Fault::StallWorker => State::Stalled {
                pid: pid as i32,
                until: now + self.stall,
            },
            Fault::RestartServer => State::Restarting { since: now },
            _ => State::Done,
        };
        let detail = match self.fault {
            Fault::StallWorker => format!(
                "lab --fault stall-worker: {victim} stopped with SIGSTOP for {:.1} s, holding part of {} connections",
                self.stall.as_secs_f64(),
                thousands(self.server_at_fault)
            ),
            Fault::RestartServer => format!(
                "lab --fault restart-server: {victim} stopped with SIGTERM and started again, holding {} connections",
                thousands(self.server_at_fault)
            ),
            _ => format!(
                "lab --fault {}: {victim} killed by SIGKILL",
                self.fault.name()
            ),
        };
        let rec = Record::now(
            Role::Lab,
            None,
            Event::Failure {
                failure: self.fault.id(),
                call: signal.as_str().into(),
                errno: None,
                count: held,
                detail: detail.clone(),
            },
        );
        let mut log = &mut *scene.log;
        let _ = rec.emit(&mut log);
        self.report.injected = true;
        self.report.victim = victim;
        self.report.ts = Some(rec.ts);
        self.report.at_hold_s = Some(in_hold.as_secs_f64());
        self.report.detail = detail;
        Ok(())
    }

    /// serve (pool index 0) exited: when this fault stopped it, start it
    /// again and say so (true); else it is a real exit (false).
    pub fn server_exited(&mut self, pool: &mut Pool) -> anyhow::Result<bool> {
        let State::Restarting { since } = self.state else {
            return Ok(false);
        };
        pool.restart(0)
            .map_err(|e| anyhow::anyhow!("--fault restart-server: starting serve again: {e}"))?;
        self.report.duration_s = Some(since.elapsed().as_secs_f64());
        self.state = State::Done;
        Ok(true)
    }

    /// The clients hold `clients` verified connections of `target`: note
    /// when they are back at the target after the fault.
    pub fn observe(&mut self, clients: u64, target: u64) {
        if let (Some(t), None) = (self.injected_at, self.report.recovered_s)
            && clients >= target
            && t.elapsed() > Duration::from_millis(100)
            && matches!(self.state, State::Done)
            && self.dipped
        {
            self.report.recovered_s = Some(t.elapsed().as_secs_f64());
        }
        if self.injected_at.is_some() && clients < target {
            self.dipped = true;
        }
    }
}

/// A network fault's rules, loaded in one namespace.
struct LoadedRules {
    netns: String,
    removed: bool,
}

impl LoadedRules {
    fn remove(&mut self) -> anyhow::Result<()> {
        self.removed = true;
        nft_in(&self.netns, &format!("delete table inet {NFT_TABLE}\n"))
    }
}

impl Drop for LoadedRules {
    /// Rules still loaded when the lab ends early (an error, Ctrl-C) go
    /// now; the namespace's removal would take them anyway.
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.remove();
        }
    }
}

/// `nft -f -` with `script`, inside namespace `netns` (`ip netns exec`).
pub(super) fn nft_in(netns: &str, script: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut child = std::process::Command::new("ip")
        .args(crate::sys::hosts::exec_in(netns))
        .args(["nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running nft in {netns} (install nftables)"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .with_context(|| format!("writing the nftables rules for {netns}"))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for nft in {netns}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "nft in {netns} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// One client's hold, from its summary (or its last interval).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientHold {
    /// Verified connections the server ended (EOF) or reset during the hold.
    pub eof: u64,
    pub reset: u64,
    /// Verified connections that died with one of its worker processes.
    pub died: u64,
    /// Verified connections open at the end.
    pub open: u64,
}

/// The server's side of the hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerHold {
    /// Connections that died with a serve worker (serve's summary).
    pub lost: u64,
    /// serve's connections when the hold ended.
    pub at_end: u64,
}

/// The hold's account, and the fault's comparison when there is one.
pub fn account(
    clients: &[ClientHold],
    verified_at_start: u64,
    server: ServerHold,
    injector: Option<&mut Injector>,
) -> HoldReport {
    let mut by_cause = BTreeMap::new();
    let sum = |f: fn(&ClientHold) -> u64| clients.iter().map(f).sum::<u64>();
    for (cause, n) in [
        ("eof", sum(|c| c.eof)),
        ("reset", sum(|c| c.reset)),
        ("client_process_died", sum(|c| c.died)),
    ] {
        if n > 0 {
            by_cause.insert(cause.to_string(), n);
        }
    }
    let lost: u64 = by_cause.values().sum();
    let mut hold = HoldReport {
        verified_at_start,
        alive_at_end: sum(|c| c.open),
        lost,
        lost_by_cause: by_cause,
        server_lost: server.lost,
        ok: lost == 0,
    };
    if let Some(inj) = injector {
        let expected = match inj.fault {
            Fault::KillWorker => server.lost,
            Fault::RestartServer => inj.server_at_fault,
            Fault::KillClient => inj.server_at_fault.saturating_sub(server.at_end),
            // A stall or a drop of a few seconds loses nothing: the
            // peers wait, and TCP retransmits.
            Fault::StallWorker | Fault::Loss | Fault::Partition => 0,
        };
        let r = &mut inj.report;
        r.expected_loss = expected;
        r.clients_lost = lost;
        r.agree = r.injected && expected == lost;
        hold.ok = r.agree;
    }
    hold
}

impl FaultReport {
    /// One sentence: what the fault did and whether both sides agree.
    pub fn sentence(&self) -> String {
        if !self.injected {
            return format!("fault {}: NOT injected (the hold ended first)", self.fault);
        }
        let mut s = format!(
            "fault {} ({}, {:.1} s into the hold): the clients lost {} verified connections, {} {}: {}",
            self.fault,
            self.victim,
            self.at_hold_s.unwrap_or(0.0),
            thousands(self.clients_lost),
            match self.fault.as_str() {
                "kill-client" => "the server's side counts",
                "loss" | "partition" => "a drop of a few seconds should lose (TCP retransmits)",
                _ => "the server's own side counts",
            },
            thousands(self.expected_loss),
            if self.agree {
                "they agree"
            } else {
                "they DISAGREE"
            }
        );
        if let Some(r) = self.recovered_s {
            s.push_str(&format!("; back at the target {r:.1} s after the fault"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_without_a_fault_fails_the_hold_and_a_fault_is_compared() {
        let c = |eof, reset, died, open| ClientHold {
            eof,
            reset,
            died,
            open,
        };
        let clients = [c(0, 0, 0, 500), c(0, 0, 0, 500)];
        let h = account(&clients, 1000, ServerHold::default(), None);
        assert!(h.ok && h.lost == 0 && h.alive_at_end == 1000);
        let clients = [c(300, 20, 0, 200), c(0, 0, 0, 500)];
        let h = account(&clients, 1000, ServerHold::default(), None);
        assert!(!h.ok, "an unasked loss fails");
        assert_eq!(h.lost, 320);
        assert_eq!(h.lost_by_cause["eof"], 300);
        assert_eq!(h.lost_by_cause["reset"], 20);
        let mut inj = Injector::new(Fault::KillWorker, Duration::from_secs(6));
        inj.report.injected = true;
        let server = ServerHold {
            lost: 320,
            at_end: 680,
        };
        let h = account(&clients, 1000, server, Some(&mut inj));
        assert!(h.ok && inj.report.agree, "{:?}", inj.report);
        let server = ServerHold {
            lost: 300,
            at_end: 700,
        };
        let h = account(&clients, 1000, server, Some(&mut inj));
        assert!(!h.ok && !inj.report.agree);
        assert!(inj.report.sentence().contains("DISAGREE"));
    }

    #[test]
    fn a_network_fault_expects_no_loss_and_drops_on_the_host_s_link_only() {
        let clients = [ClientHold {
            open: 1500,
            ..Default::default()
        }];
        let mut inj = Injector::new(Fault::Partition, Duration::from_secs(6));
        inj.report.injected = true;
        let h = account(&clients, 1500, ServerHold::default(), Some(&mut inj));
        assert!(h.ok && inj.report.agree, "{:?}", inj.report);
        assert!(
            inj.report
                .sentence()
                .contains("should lose (TCP retransmits) 0: they agree")
        );
        let lost = [ClientHold {
            eof: 10,
            open: 1490,
            ..Default::default()
        }];
        let h = account(&lost, 1500, ServerHold::default(), Some(&mut inj));
        assert!(!h.ok && !inj.report.agree);
        let loss = Fault::Loss.ruleset("eth0", LOSS_PERCENT);
        assert!(
            loss.contains("iifname \"eth0\" numgen random mod 100 < 20 drop"),
            "{loss}"
        );
        let loss = Fault::Loss.ruleset("eth0", 5);
        assert!(loss.contains("numgen random mod 100 < 5 drop"), "{loss}");
        assert_eq!(parse_loss_percent("35"), Ok(35));
        assert_eq!(parse_loss_percent("100%"), Ok(100));
        for bad in ["0", "101", "-5", "lots"] {
            assert!(parse_loss_percent(bad).is_err(), "{bad}");
        }
        let partition = Fault::Partition.ruleset("eth0", LOSS_PERCENT);
        assert!(partition.contains("iifname \"eth0\" drop\n"), "{partition}");
        assert!(!partition.contains("output"), "{partition}");
        assert!(Fault::Loss.needs_hosts() && !Fault::KillWorker.needs_hosts());
    }
}
