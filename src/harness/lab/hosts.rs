//! `c1m lab --hosts`: the seed's four machines as namespace hosts on one
//! kernel. `server` and `client-1..N` are network namespaces of their own
//! (`sys::hosts`), each tuned as a real host would be (`c1m doctor --apply
//! --netns-only` inside it, with its role's profile), the server listening
//! on 198.18.0.1 and each client host flooding it from its own addresses.
//! Each host's logs, counters and kernel tables land in `logs/<host>/`, so
//! `c1m analyze` groups them by host exactly as it does a fleet's logs.
//!
//! Host-wide keys (`fs.*`, and the global `nf_conntrack_max` the conntrack
//! scenario lowers) are applied once here, through doctor's saved-state
//! machinery, and rolled back once, also on error, Ctrl-C, SIGHUP or panic
//! (a guard). The namespaces, their links and every process inside them are
//! removed the same way; `c1m lab --cleanup` removes what a lab killed with
//! SIGKILL left behind.
//!
//! Two failures are provoked here the way they happen between real hosts:
//! `conntrack` (a stateful nftables rule on the server host and a small
//! table) and `ports` (one client host's own narrow ephemeral range).
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::BufWriter;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::catalogue::FailureId;
use crate::events::Record;
use crate::flood::Procs as AutoProcs;
use crate::flood::args::{FloodArgs, Hold};
use crate::reactor::args::ServeArgs;
use crate::sys::hosts::{self, SERVER_ADDR, Topology};
use crate::sys::probe::{self, CounterSet, KmsgTail};
use crate::sys::signals;
use crate::sys::workers::{Pool, WorkerMsg, WorkerSpec};
use crate::tuning::apply::{self, ApplyOptions, KeyStatus};
use crate::tuning::sysctl::Sysctl;

use super::faults::{Injector, Scene};
use super::run::{
    Live, absorb, create_log, hold_account, progress, record_line, report_dir, summarize,
};
use super::{
    CLIENT_HOLD_MARGIN, ClientResult, LabConfig, LabReport, SERVER_STOP_GRACE, server_capacity,
    split,
};

/// A failure provoked between namespace hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostsScenario {
    /// A stateful nftables rule on the server host, a small conntrack table.
    Conntrack,
    /// One client host with a 200-port ephemeral range.
    Ports,
}

impl HostsScenario {
    pub fn name(self) -> &'static str {
        match self {
            HostsScenario::Conntrack => "conntrack",
            HostsScenario::Ports => "ports",
        }
    }

    /// The finding analyze must report.
    pub fn expected(self) -> FailureId {
        match self {
            HostsScenario::Conntrack => FailureId::ConntrackFull,
            HostsScenario::Ports => FailureId::EphemeralPortsExhausted,
        }
    }
}

/// nf_conntrack_max during the conntrack scenario (global on this kernel).
pub const SCENARIO_CONNTRACK_MAX: u64 = 256;
/// The narrow range of the ports scenario's client host.
pub const SCENARIO_PORT_RANGE: &str = "40000 40199";
/// Which client host gets it (the others keep the profile's range).
pub const SCENARIO_PORTS_CLIENT: u32 = 2;

/// The lab's stateful firewall for the conntrack scenario: one rule that
/// makes the server host track every connection.
const CONNTRACK_RULESET: &str = "table inet c1m {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    ct state established,related accept\n  }\n}\n";

/// One host's row of the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostRow {
    pub host: String,
    pub role: String,
    pub netns: String,
    pub addresses: Vec<String>,
    pub target: u64,
    /// Connections the host's process verified (clients) or held (server).
    pub connections: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    pub exit_code: Option<i32>,
    /// Counters of this host's namespace that moved during the run.
    pub counters: CounterSet,
    /// nf_conntrack_count of this host at the end of the run.
    pub conntrack_count: Option<u64>,
    /// `c1m doctor --apply --netns-only --json` inside this host: its rows
    /// and what apply did.
    pub doctor: serde_json::Value,
    pub doctor_exit: Option<i32>,
}

/// report.json of a hosts lab: the lab's fields, then a row per host.
#[derive(Debug, Clone, Serialize)]
pub struct HostsReport {
    #[serde(flatten)]
    pub lab: LabReport,
    pub scenario: Option<HostsScenario>,
    pub hosts: Vec<HostRow>,
    /// What apply did to host-wide keys (fs.*, nf_conntrack_max), once.
    pub host_wide: Option<apply::ApplyReport>,
    /// The namespaces removed at the end (and processes killed in them).
    pub removed: Vec<hosts::Removed>,
    /// Whether analyze named the scenario's failure (scenarios only).
    pub named: Option<bool>,
}

/// Host-wide keys written for this lab, rolled back on drop: normal end,
/// error, Ctrl-C (the run returns), panic.
struct HostWide {
    sysctl: Sysctl,
    state: PathBuf,
    done: bool,
    /// One lab applying at a time (the lab's state lock).
    _lock: nix::fcntl::Flock<std::os::fd::OwnedFd>,
}

impl HostWide {
    fn rollback(&mut self) -> Result<apply::RollbackReport> {
        self.done = true;
        apply::rollback(&self.sysctl, &self.state, None)
    }
}

impl Drop for HostWide {
    fn drop(&mut self) {
        if !self.done {
            let result = self.rollback();
            super::preflight::say_failed_rollback("host-wide rollback", result, &self.state);
        }
    }
}

/// The host-wide rows to apply once: the lab profile's non-namespace keys
/// (with `--apply`) and the scenario's conntrack table size.
fn host_wide_rows(
    cfg: &LabConfig,
    profile_name: &str,
    scenario: Option<HostsScenario>,
    sysctl: &Sysctl,
) -> Result<Vec<crate::tuning::check::Row>> {
    use crate::tuning::{Plan, Role, check, profile, snapshot, sysctl::Scope};
    let mut rows = Vec::new();
    if cfg.apply {
        let prof = profile::load(profile_name, &profile::ProfileSource::default_source())
            .with_context(|| format!("loading profile {profile_name}"))?;
        let snap = snapshot::take(sysctl, crate::sys::limits::Target::This)?;
        let plan = Plan {
            sources: u64::from(cfg.clients) * u64::from(cfg.sources_per_client),
            server_ports: u64::from(cfg.ports),
            ..Plan::new(Role::Lab, cfg.target)
        };
        let checked = check::check(sysctl, &snap, &prof, &plan)?;
        rows.extend(
            checked
                .rows
                .into_iter()
                .filter(|r| r.scope == Scope::Global && r.kind == check::Kind::Sysctl),
        );
    }
    if scenario == Some(HostsScenario::Conntrack) {
        let key = "net.netfilter.nf_conntrack_max";
        let current = sysctl
            .read(key)
            .map_err(|e| anyhow::anyhow!("reading {key} (is nf_conntrack loaded?): {e}"))?;
        rows.push(check::Row {
            check: key.into(),
            kind: check::Kind::Sysctl,
            scope: Scope::Global,
            current,
            wanted: format!("= {SCENARIO_CONNTRACK_MAX}"),
            status: check::Status::Fix,
            failure: Some(FailureId::ConntrackFull),
            why: "the conntrack scenario fills a small table on the server host".into(),
            origin: None,
            apply_value: Some(SCENARIO_CONNTRACK_MAX.to_string()),
            // The scenario lowers the limit on purpose: it is the failure
            // to provoke, not a limit that blocks the target.
            blocks: false,
        });
    }
    Ok(rows)
}

/// Apply the host-wide rows once; the guard rolls them back.
fn apply_host_wide(
    rows: &[crate::tuning::check::Row],
    notes: &mut Vec<String>,
) -> Result<(Option<HostWide>, Option<apply::ApplyReport>)> {
    if rows.is_empty() {
        return Ok((None, None));
    }
    let sysctl = Sysctl::from_env();
    // The lab's own state file and lock: what a killed lab left lowered
    // is restored first, by this or any later lab.
    let (lock, state, note) = super::preflight::take_lab_state(&sysctl)?;
    notes.extend(note);
    let rep = apply::apply(
        &sysctl,
        &state,
        rows,
        ApplyOptions {
            netns_only: false,
            raise_own_nofile: true,
        },
    )
    .context("applying host-wide keys")?;
    let guard = HostWide {
        sysctl,
        state,
        done: false,
        _lock: lock,
    };
    let written = rep.written();
    notes.push(format!(
        "host-wide keys applied once (rolled back at the end): {}",
        if written.is_empty() {
            "nothing needed changing".into()
        } else {
            written.join(", ")
        }
    ));
    if !rep.ok() {
        bail!(
            "could not apply host-wide keys: {}",
            rep.aborted.clone().unwrap_or_else(|| rep
                .keys
                .iter()
                .filter(|k| k.status == KeyStatus::Failed)
                .map(|k| format!("{}: {}", k.key, k.reason.as_deref().unwrap_or("failed")))
                .collect::<Vec<_>>()
                .join("; "))
        );
    }
    Ok((Some(guard), Some(rep)))
}

/// The hosts of a lab: the server, then each client host with its sources.
fn plan_hosts(cfg: &LabConfig) -> Result<Vec<(String, Vec<Ipv4Addr>)>> {
    let mut all = vec![("server".to_string(), vec![SERVER_ADDR])];
    for k in 1..=cfg.clients {
        all.push((
            format!("client-{k}"),
            hosts::client_addrs(k, cfg.sources_per_client)?,
        ));
    }
    Ok(all)
}

/// This binary, for the children started inside the hosts.
fn this_exe() -> Result<String> {
    Ok(std::env::current_exe()
        .context("finding this program's path")?
        .display()
        .to_string())
}

/// `c1m doctor --apply --netns-only` inside one host, its JSON kept in
/// `doctor/<host>.json`.
fn doctor_in(
    host: &hosts::Host,
    role: &str,
    target: u64,
    cfg: &LabConfig,
    dir: &Path,
) -> Result<(serde_json::Value, Option<i32>)> {
    let exe = this_exe()?;
    let state = dir.join(format!("{}.state.json", host.name));
    let mut args = hosts::exec_in(&host.netns);
    args.extend(
        [
            exe.as_str(),
            "doctor",
            "--role",
            role,
            "--target",
            &target.to_string(),
            "--sources",
            &host.addrs.len().to_string(),
            "--server-ports",
            &cfg.ports.to_string(),
            "--apply",
            "--netns-only",
            "--state",
            &state.display().to_string(),
            "--json",
        ]
        .map(String::from),
    );
    let out = Command::new("ip")
        .args(&args)
        .output()
        .with_context(|| format!("running c1m doctor inside {}", host.netns))?;
    let path = dir.join(format!("{}.json", host.name));
    std::fs::write(&path, &out.stdout).with_context(|| format!("writing {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "c1m doctor inside {} printed no JSON ({}): {}",
            host.netns,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    let kept = serde_json::json!({
        "rows": v.get("rows").cloned().unwrap_or_default(),
        "apply": v.get("apply").cloned().unwrap_or_default(),
    });
    Ok((kept, out.status.code()))
}

/// `c1m doctor --rollback` inside each host, as a real host would end its
/// run (the namespaces go next, but the state files then say the truth).
fn doctor_rollback(topo: &Topology, dir: &Path, notes: &mut Vec<String>) {
    let Ok(exe) = this_exe() else { return };
    for h in &topo.hosts {
        let state = dir.join(format!("{}.state.json", h.name));
        let out = Command::new("ip")
            .args(hosts::exec_in(&h.netns))
            .arg(&exe)
            .args(["doctor", "--rollback", "--state"])
            .arg(&state)
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => notes.push(format!(
                "{}: doctor --rollback failed ({}): {}",
                h.name,
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => notes.push(format!("{}: doctor --rollback: {e}", h.name)),
        }
    }
}

/// Counters of every host's namespace, in host order.
fn counters_of(topo: &Topology) -> Result<Vec<CounterSet>> {
    topo.hosts
        .iter()
        .map(|h| {
            hosts::in_netns(&h.netns, probe::counters)
                .with_context(|| format!("reading the TCP counters of {}", h.name))
        })
        .collect()
}

/// `sysctl`-style tables (conntrack count...) of every host's namespace.
fn tables_of(topo: &Topology) -> Vec<String> {
    topo.hosts
        .iter()
        .map(|h| hosts::in_netns(&h.netns, || Ok(probe::sysctl_text())).unwrap_or_default())
        .collect()
}

/// The scenario's change to one host, after doctor tuned it.
fn provoke(
    topo: &Topology,
    scenario: Option<HostsScenario>,
    notes: &mut Vec<String>,
) -> Result<()> {
    match scenario {
        Some(HostsScenario::Conntrack) => {
            let server = topo.host("server").context("no server host")?;
            let mut child = Command::new("ip")
                .args(hosts::exec_in(&server.netns))
                .args(["nft", "-f", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .context("running nft in the server host (install nftables)")?;
            if let Some(mut stdin) = child.stdin.take() {
                use std::io::Write;
                stdin
                    .write_all(CONNTRACK_RULESET.as_bytes())
                    .context("writing the nftables rule")?;
            }
            let status = child.wait().context("waiting for nft")?;
            if !status.success() {
                bail!("nft could not load the conntrack rule in the server host ({status})");
            }
            notes.push(
                "server host: nftables rule `ct state established,related accept` (every connection tracked)".into(),
            );
        }
        Some(HostsScenario::Ports) => {
            let name = format!("client-{SCENARIO_PORTS_CLIENT}");
            let host = topo.host(&name).context("no such client host")?;
            hosts::in_netns(&host.netns, || {
                crate::sys::netns::write_sysctl("net.ipv4.ip_local_port_range", SCENARIO_PORT_RANGE)
            })?;
            notes.push(format!(
                "{name}: net.ipv4.ip_local_port_range {SCENARIO_PORT_RANGE} (its own, the other hosts keep theirs)"
            ));
        }
        None => {}
    }
    Ok(())
}

/// The processes of a hosts lab (index 0 the server, then the clients),
/// each started inside its host by `ip netns exec`, with its lines teed to
/// `logs/<host>/<name>.log`.
struct Procs {
    pool: Pool,
    logs: Vec<BufWriter<File>>,
    live: Vec<Live>,
}

impl Procs {
    fn spawn(
        &mut self,
        host: &hosts::Host,
        args: Vec<OsString>,
        dir: &Path,
        log: &str,
    ) -> Result<()> {
        let mut argv: Vec<OsString> = hosts::exec_in(&host.netns)
            .into_iter()
            .map(OsString::from)
            .collect();
        argv.push(this_exe()?.into());
        argv.extend(args);
        let mut spec = WorkerSpec::new(argv);
        spec.stderr = Some(dir.join("stderr").join(format!("{}.txt", host.name)));
        self.pool
            .spawn(spec)
            .with_context(|| format!("starting {log} in {}", host.netns))?;
        let logs = dir.join("logs").join(&host.name);
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        self.logs.push(create_log(&logs, log)?);
        self.live.push(Live::default());
        Ok(())
    }

    /// Take the next message (up to `wait`); true when one came.
    fn pump(&mut self, wait: Duration) -> Option<WorkerMsg> {
        let msg = self.pool.recv_timeout(wait)?;
        match &msg {
            WorkerMsg::Line { index, line } => {
                record_line(&mut self.logs[*index], line);
                if let Some(rec) = Record::parse(line) {
                    absorb(&mut self.live[*index], rec);
                }
            }
            WorkerMsg::Exited { index, status } => {
                self.live[*index].exit = Some(status.code().unwrap_or(
                    128 + std::os::unix::process::ExitStatusExt::signal(status).unwrap_or(0),
                ));
            }
        }
        Some(msg)
    }

    fn stop_clients(&self) {
        for i in 1..self.live.len() {
            self.pool.signal(i, nix::sys::signal::Signal::SIGTERM);
        }
    }
}

/// `c1m serve` in the server host.
fn serve_args(cfg: &LabConfig) -> Result<Vec<OsString>> {
    let mut a = ServeArgs::new(SERVER_ADDR.into(), cfg.base_port, cfg.ports)
        .context("the serve command line")?;
    a.procs = AutoProcs::Auto;
    a.max_connections = Some(server_capacity(cfg.target));
    a.json = true;
    a.defer_accept = cfg.defer_accept;
    Ok(a.command_line())
}

/// `c1m flood` in client host `host` for `share` connections, from the
/// host's own addresses.
fn flood_args(
    cfg: &LabConfig,
    host: &hosts::Host,
    share: u64,
    scenario: Option<HostsScenario>,
) -> Result<Vec<OsString>> {
    let mut a = FloodArgs::new(&SERVER_ADDR.to_string(), cfg.base_port, cfg.ports, share)
        .context("the flood command line")?;
    a.sources = match host.addrs.as_slice() {
        [] => None,
        [one] => Some(one.to_string()),
        [first, .., last] => Some(format!("{first}-{last}")),
    };
    a.procs = AutoProcs::Auto;
    a.json = true;
    a.message_interval = cfg.message_interval;
    a.separate_handshake_ack = cfg.separate_handshake_ack;
    if let Some(b) = cfg.reconnect {
        a.reconnect = true;
        a.reconnect_backoff = b;
    }
    if scenario.is_some() {
        // A failure scenario: give up on a connect after 2 s and end by
        // itself shortly after, whatever was reached.
        a.connect_timeout = Duration::from_secs(2);
        a.hold = Hold(Some(Duration::from_secs(1)));
    } else {
        // The lab ends the hold itself; this is a backstop.
        a.hold = Hold(Some(cfg.hold + CLIENT_HOLD_MARGIN));
    }
    Ok(a.command_line())
}

/// Start serve in the server host and wait until it listens.
fn start_server(p: &mut Procs, topo: &Topology, cfg: &LabConfig, dir: &Path) -> Result<()> {
    let server = topo.host("server").context("no server host")?;
    p.spawn(server, serve_args(cfg)?, dir, "serve.log")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while p.live[0].start.is_none() {
        if signals::stop_requested() {
            bail!("interrupted while the server was starting");
        }
        if Instant::now() > deadline {
            bail!(
                "c1m serve did not report listening within 60 s (see {}/logs/server/serve.log)",
                dir.display()
            );
        }
        if let Some(WorkerMsg::Exited { status, .. }) = p.pump(Duration::from_millis(200)) {
            bail!(
                "c1m serve exited before listening ({status}); see {}/stderr/server.txt",
                dir.display()
            );
        }
    }
    Ok(())
}

/// What the supervision saw.
#[derive(Default)]
struct Seen {
    counters_end: Option<Vec<CounterSet>>,
    counters_end_ts: Option<f64>,
    tables_end: Option<Vec<String>>,
    memory_peak: Option<probe::Memory>,
    /// The clients' verified connections when the hold began, and the
    /// server's when it ended (the hold's account).
    verified_at_hold_start: u64,
    server_at_end: Option<u64>,
}

/// `--fault` between hosts: the injector and the lab's own log
/// (`logs/lab.log`) it writes its record to.
struct HostsFault {
    injector: Injector,
    log: BufWriter<File>,
}

impl HostsFault {
    /// Called on every pass during the hold: inject, or end, the fault.
    fn poll(&mut self, p: &Procs, topo: &Topology, in_hold: Duration) -> Result<()> {
        let serve_workers = p.live[0]
            .serve_start()
            .map(|s| s.worker_pids)
            .unwrap_or_default();
        let mut scene = Scene {
            pool: &p.pool,
            serve_workers,
            server_connections: p.live[0].connections,
            client_connections: p.live[1..].iter().map(|l| l.connections).sum(),
            first_client_connections: p.live.get(1).map_or(0, |l| l.connections),
            log: &mut self.log,
            client_host: topo
                .hosts
                .get(1)
                .map(|h| (h.name.as_str(), h.netns.as_str())),
        };
        self.injector.poll(in_hold, &mut scene)
    }
}

/// Supervise until every client has exited: end the hold (reading every
/// host's counters first), stop on the deadline or a signal.
fn supervise(
    p: &mut Procs,
    topo: &Topology,
    cfg: &LabConfig,
    report: &mut LabReport,
    mut fault: Option<&mut HostsFault>,
) -> Result<Seen> {
    let run_start = Instant::now();
    let mut seen = Seen::default();
    let mut hold_started: Option<Instant> = None;
    let (mut interrupted, mut gave_up) = (false, false);
    let mut last_print = Instant::now();
    while p.live[1..].iter().any(|l| l.exit.is_none()) {
        if hold_started.is_some_and(|t| t.elapsed() >= cfg.hold) && seen.counters_end.is_none() {
            if let Some(f) = fault.as_deref_mut() {
                f.injector.end_of_hold()?;
            }
            seen.counters_end_ts = Some(crate::util::unix_now());
            seen.counters_end = Some(counters_of(topo)?);
            seen.tables_end = Some(tables_of(topo));
            seen.server_at_end = Some(p.live[0].connections);
            p.stop_clients();
        }
        if let (Some(t), Some(f)) = (hold_started, fault.as_deref_mut())
            && seen.counters_end.is_none()
        {
            f.poll(p, topo, t.elapsed())?;
        }
        if signals::stop_requested() && !interrupted {
            interrupted = true;
            report
                .notes
                .push("interrupted (SIGINT/SIGTERM/SIGHUP): all processes stopped".into());
            p.pool.signal_all(nix::sys::signal::Signal::SIGTERM);
        }
        if !gave_up && report.time_to_target_s.is_none() && run_start.elapsed() > cfg.deadline {
            gave_up = true;
            report.notes.push(format!(
                "target not reached within {:?}: clients stopped",
                cfg.deadline
            ));
            seen.tables_end = Some(tables_of(topo));
            p.stop_clients();
        }
        let msg = p.pump(Duration::from_millis(100));
        if let (Some(WorkerMsg::Exited { index: 0, .. }), Some(f)) = (&msg, fault.as_deref_mut())
            && f.injector.server_exited(&mut p.pool)?
        {
            // --fault restart-server stopped it: started again.
            p.live[0].exit = None;
        }
        let established: u64 = p.live[1..].iter().map(|l| l.connections).sum();
        report.peak_connections = report.peak_connections.max(established);
        report.server_peak_connections = report.server_peak_connections.max(p.live[0].connections);
        if let Some(f) = fault.as_deref_mut() {
            f.injector.observe(established, cfg.target);
        }
        if report.time_to_target_s.is_none() && established >= cfg.target {
            report.time_to_target_s = Some(run_start.elapsed().as_secs_f64());
            hold_started = Some(Instant::now());
            seen.memory_peak = probe::memory().ok();
            seen.verified_at_hold_start = established;
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            let server = p.live[0].connections;
            let phase = super::run::phase(hold_started.is_some(), seen.counters_end.is_some());
            progress(cfg, phase, established, server, run_start.elapsed());
        }
    }
    if seen.tables_end.is_none() {
        // Clients that ended by themselves (a scenario): the server still
        // holds what it accepted, so its tables show the run.
        seen.tables_end = Some(tables_of(topo));
    }
    Ok(seen)
}

/// Stop the server, waiting for its summary.
fn stop_server(p: &mut Procs) {
    if p.live[0].exit.is_some() {
        return;
    }
    p.pool.grace = SERVER_STOP_GRACE;
    for msg in p.pool.shutdown() {
        match msg {
            WorkerMsg::Line { index, line } => {
                record_line(&mut p.logs[index], &line);
                if let Some(rec) = Record::parse(&line) {
                    absorb(&mut p.live[index], rec);
                }
            }
            WorkerMsg::Exited { index, status } => p.live[index].exit = status.code(),
        }
    }
    for log in &mut p.logs {
        let _ = std::io::Write::flush(log);
    }
}

/// Write each host's counters and tables into `logs/<host>/`, the kernel's
/// new lines into `logs/kernel.log` (one kernel serves every host here).
fn write_evidence(
    logs: &Path,
    topo: &Topology,
    (before, at_end): (&[CounterSet], &[CounterSet]),
    stamps: (f64, f64),
    tables: &[String],
    kernel: &[String],
) -> Result<()> {
    for (i, h) in topo.hosts.iter().enumerate() {
        let d = logs.join(&h.name);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        let nstat = probe::nstat_snapshots(
            &before[i],
            &at_end[i],
            &crate::catalogue::evidence_counters(),
        );
        std::fs::write(d.join("counters.nstat"), stamped(&nstat, stamps))
            .with_context(|| format!("writing {}/counters.nstat", d.display()))?;
        std::fs::write(d.join("sysctl.txt"), &tables[i])
            .with_context(|| format!("writing {}/sysctl.txt", d.display()))?;
    }
    let path = logs.join("kernel.log");
    std::fs::write(&path, kernel.join("\n") + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// Two nstat snapshots, each after a line with its time (so analyze can
/// line a server's counters up with a client host's failures).
fn stamped(nstat: &str, (t0, t1): (f64, f64)) -> String {
    let mut out = String::new();
    let mut n = 0;
    for line in nstat.split_inclusive('\n') {
        if line.starts_with("#kernel") {
            let t = if n == 0 { t0 } else { t1 };
            out.push_str(&format!("{}{t:.3}\n", crate::diagnosis::hosts::TS_MARK));
            n += 1;
        }
        out.push_str(line);
    }
    out
}

/// nf_conntrack_count from a `sysctl`-style table.
fn conntrack_count(table: &str) -> Option<u64> {
    table
        .lines()
        .find_map(|l| l.strip_prefix("net.netfilter.nf_conntrack_count = "))
        .and_then(|v| v.trim().parse().ok())
}

/// Run a hosts lab. `scenario` provokes one failure instead of a clean run.
// One straight sequence (plan, tune, start, supervise, collect, analyze):
// split into the helpers above; what remains is the order of the steps.
pub fn run_hosts(
    cfg: &LabConfig,
    profile_name: &str,
    scenario: Option<HostsScenario>,
    mut notes: Vec<String>,
) -> Result<HostsReport> {
    if !nix::unistd::geteuid().is_root() {
        bail!("c1m lab --hosts needs root: it creates network namespaces (CAP_SYS_ADMIN)");
    }
    let started = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let dir = report_dir(&cfg.report_root, &started)?;
    for d in ["logs", "stderr", "doctor"] {
        let d = dir.join(d);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    let t0 = Instant::now();
    let sysctl = Sysctl::from_env();
    // The namespaces first (the conntrack rule loads nf_conntrack, whose
    // global max the scenario then lowers), dropped last but one.
    let mut topo = Topology::build(std::process::id(), &plan_hosts(cfg)?)
        .context("building the namespace hosts")?;
    let mut rows = Vec::new();
    let mut doctor = Vec::new();
    let shares = split(cfg.target, cfg.clients);
    for (i, h) in topo.hosts.iter().enumerate() {
        let (role, target) = if i == 0 {
            ("server", cfg.target)
        } else {
            ("client", shares[i - 1])
        };
        doctor.push(doctor_in(h, role, target, cfg, &dir.join("doctor"))?);
    }
    provoke(&topo, scenario, &mut notes)?;
    rows.extend(host_wide_rows(cfg, profile_name, scenario, &sysctl)?);
    let (mut host_wide, host_wide_report) = apply_host_wide(&rows, &mut notes)?;

    let mut report = LabReport {
        started,
        report_dir: dir.display().to_string(),
        private_netns: true,
        applied_profile: cfg.apply,
        target: cfg.target,
        notes,
        ..Default::default()
    };
    let before_ts = crate::util::unix_now();
    let before = counters_of(&topo)?;
    let mut kmsg = KmsgTail::open();
    if let Some(why) = &kmsg.unavailable {
        report.notes.push(format!("kernel log not read: {why}"));
    }
    report.memory_before = probe::memory().context("reading /proc/meminfo before the run")?;
    let mut p = Procs {
        pool: Pool::with_program(PathBuf::from("ip")),
        logs: Vec::new(),
        live: Vec::new(),
    };
    start_server(&mut p, &topo, cfg, &dir)?;
    report.server_workers = p.live[0].serve_start().map_or(0, |s| s.workers.into());
    let run_start_ts = crate::util::unix_now();
    for (i, share) in shares.iter().enumerate() {
        let h = &topo.hosts[i + 1];
        p.spawn(h, flood_args(cfg, h, *share, scenario)?, &dir, "flood.log")?;
        report.clients.push(ClientResult {
            index: i as u32 + 1,
            sources: h
                .addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(","),
            target: *share,
            ..Default::default()
        });
    }
    let mut fault = match cfg.fault {
        Some(f) => Some(HostsFault {
            injector: Injector::new(f, cfg.hold).with_loss_percent(cfg.loss_percent),
            log: create_log(&dir.join("logs"), "lab.log")?,
        }),
        None => None,
    };
    let seen = supervise(&mut p, &topo, cfg, &mut report, fault.as_mut())?;
    report.memory_peak = seen
        .memory_peak
        .unwrap_or_else(|| probe::memory().unwrap_or_default());
    stop_server(&mut p);
    report.elapsed_s = t0.elapsed().as_secs_f64();
    let after = counters_of(&topo)?;
    let at_end_ts = seen.counters_end_ts.unwrap_or_else(crate::util::unix_now);
    let at_end = seen.counters_end.unwrap_or_else(|| after.clone());
    let tables = seen.tables_end.unwrap_or_default();
    report.kernel_lines = kmsg.read_new();
    let logs = dir.join("logs");
    write_evidence(
        &logs,
        &topo,
        (&before, &at_end),
        (before_ts, at_end_ts),
        &tables,
        &report.kernel_lines,
    )?;
    report.counters = total_delta(&before, &at_end);
    report.teardown_counters = total_delta(&at_end, &after);
    summarize(&mut report, &p.live, run_start_ts);
    let injector = fault.map(|mut f| {
        let _ = std::io::Write::flush(&mut f.log);
        f.injector
    });
    hold_account(
        &mut report,
        &p.live,
        seen.verified_at_hold_start,
        seen.server_at_end.unwrap_or(p.live[0].connections),
        injector,
    );
    let host_rows = host_rows(&topo, &report, &p, &before, &at_end, &tables, doctor);
    drop(p);

    let analysis = crate::diagnosis::report::analyze(std::slice::from_ref(&logs));
    if let Err(e) =
        crate::diagnosis::plot::write_svg(&dir.join("connections.svg"), &analysis.series)
    {
        report.notes.push(format!("no chart: {e:#}"));
    }
    report.findings = analysis.findings.clone();
    report.analysis = analysis.render();
    doctor_rollback(&topo, &dir.join("doctor"), &mut report.notes);
    let removed = remove_all(&mut topo, &mut report.notes);
    if let Some(g) = host_wide.as_mut() {
        let rb = g.rollback()?;
        report.notes.push(if rb.ok() {
            format!("host-wide keys rolled back ({} restored)", rb.keys.len())
        } else {
            format!("host-wide rollback errors: {}", rb.errors.join("; "))
        });
    }
    let named = scenario.map(|s| report.findings.iter().any(|f| f.id == s.expected()));
    let out = HostsReport {
        lab: report,
        scenario,
        hosts: host_rows,
        host_wide: host_wide_report,
        removed,
        named,
    };
    write_hosts_reports(&dir, &out)?;
    Ok(out)
}

/// Sum of every host's counter deltas.
fn total_delta(from: &[CounterSet], to: &[CounterSet]) -> CounterSet {
    let mut total = CounterSet::new();
    for (a, b) in from.iter().zip(to) {
        crate::util::add_counts(&mut total, &probe::delta(a, b));
    }
    total
}

/// Remove the namespaces now (not at drop) so the report can list them.
fn remove_all(topo: &mut Topology, notes: &mut Vec<String>) -> Vec<hosts::Removed> {
    let mut removed = Vec::new();
    for r in topo.remove() {
        match r {
            Ok(r) => removed.push(r),
            Err(e) => notes.push(format!("cleanup: {e}")),
        }
    }
    removed
}

fn host_rows(
    topo: &Topology,
    report: &LabReport,
    p: &Procs,
    before: &[CounterSet],
    at_end: &[CounterSet],
    tables: &[String],
    doctor: Vec<(serde_json::Value, Option<i32>)>,
) -> Vec<HostRow> {
    topo.hosts
        .iter()
        .zip(doctor)
        .enumerate()
        .map(|(i, (h, (doc, doc_exit)))| {
            let mut row = HostRow {
                host: h.name.clone(),
                role: if i == 0 { "server" } else { "client" }.into(),
                netns: h.netns.clone(),
                addresses: h.addrs.iter().map(|a| a.to_string()).collect(),
                exit_code: p.live[i].exit,
                counters: probe::delta(&before[i], &at_end[i]),
                conntrack_count: tables.get(i).and_then(|t| conntrack_count(t)),
                doctor: doc,
                doctor_exit: doc_exit,
                ..Default::default()
            };
            if i == 0 {
                row.target = report.target;
                row.connections = report.server_peak_connections;
                row.failures = report
                    .failures
                    .iter()
                    .filter_map(|(k, v)| Some((k.strip_prefix("server:")?.to_string(), *v)))
                    .collect();
            } else if let Some(c) = report.clients.get(i - 1) {
                row.target = c.target;
                row.connections = c.established;
                row.failed = c.failed;
                row.failures = c.failures.clone();
            }
            row
        })
        .collect()
}

fn write_hosts_reports(dir: &Path, r: &HostsReport) -> Result<()> {
    let json = serde_json::to_string_pretty(r).context("encoding report.json")?;
    std::fs::write(dir.join("report.json"), json + "\n")
        .with_context(|| format!("writing {}/report.json", dir.display()))?;
    let mut md = super::markdown(&r.lab);
    md.push_str(&hosts_markdown(r));
    std::fs::write(dir.join("report.md"), md)
        .with_context(|| format!("writing {}/report.md", dir.display()))
}

/// The hosts table of report.md and of the command's output.
pub fn hosts_markdown(r: &HostsReport) -> String {
    use crate::util::thousands;
    let mut s = String::from(
        "\n## Hosts\n\n| host | netns | addresses | target | connections | failed | failures | conntrack | doctor |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for h in &r.hosts {
        let failures: Vec<String> = h
            .failures
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v)))
            .collect();
        let applied = h
            .doctor
            .pointer("/apply/keys")
            .and_then(|k| k.as_array())
            .map(|keys| {
                keys.iter()
                    .filter(|k| k.get("status").and_then(|s| s.as_str()) == Some("applied"))
                    .count()
            })
            .unwrap_or(0);
        let addrs = match h.addresses.as_slice() {
            [one] => one.clone(),
            [first, .., last] => format!("{first}-{last}"),
            [] => "-".into(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} keys applied |\n",
            h.host,
            h.netns,
            addrs,
            thousands(h.target),
            thousands(h.connections),
            thousands(h.failed),
            if failures.is_empty() {
                "-".into()
            } else {
                failures.join(", ")
            },
            h.conntrack_count
                .map(thousands)
                .unwrap_or_else(|| "-".into()),
            applied
        ));
    }
    s
}

/// `c1m lab --cleanup`: remove every lab namespace whose lab is gone (and
/// the processes inside). Returns what was removed.
pub fn cleanup() -> Result<Vec<hosts::Removed>> {
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    for ns in hosts::leftovers().context("listing network namespaces")? {
        match hosts::remove(&ns) {
            Ok(r) => removed.push(r),
            Err(e) => errors.push(format!("{ns}: {e}")),
        }
    }
    if !errors.is_empty() {
        bail!("could not remove: {}", errors.join("; "));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_snapshot_carries_its_time() {
        let text = stamped(
            "#kernel\nTcpExtListenOverflows 1 0.0\n#kernel\nTcpExtListenOverflows 5 0.0\n",
            (10.0, 20.5),
        );
        assert_eq!(
            text,
            "# c1m ts=10.000\n#kernel\nTcpExtListenOverflows 1 0.0\n# c1m ts=20.500\n#kernel\nTcpExtListenOverflows 5 0.0\n"
        );
    }

    #[test]
    fn conntrack_count_is_read_from_the_table() {
        let t = "net.netfilter.nf_conntrack_count = 256\nnet.netfilter.nf_conntrack_max = 256\n";
        assert_eq!(conntrack_count(t), Some(256));
        assert_eq!(conntrack_count("fs.file-nr = 1\t0\t9\n"), None);
    }

    #[test]
    fn every_client_host_floods_the_server_from_its_own_addresses() {
        let cfg = super::super::test_config();
        let hosts = plan_hosts(&cfg).unwrap();
        assert_eq!(hosts.len(), 3);
        let host = hosts::Host {
            name: hosts[2].0.clone(),
            netns: "c1m-1-client-2".into(),
            addrs: hosts[2].1.clone(),
        };
        let argv = flood_args(&cfg, &host, 50, None).unwrap();
        let a = FloodArgs::try_parse_from(&argv[1..]).unwrap();
        assert_eq!(a.host, "198.18.0.1");
        assert_eq!(a.connections, 50);
        assert_eq!(a.sources.as_deref(), Some("198.18.2.1-198.18.2.4"));
    }
}
