//! The lab's run: start serve and the clients, tee their lines into the
//! report folder, sample the kernel before, at the peak and after, hold,
//! tear down, and derive the report's figures from what the processes said.
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::catalogue::FailureId;
use crate::events::{Counters, Event, FloodStart, Record, Role, ServeStart, ServeSummary, typed};
use crate::flood::Procs;
use crate::flood::args::{FloodArgs, Hold};
use crate::flood::wire::FloodSummary;
use crate::harness::server::{LabServerArgs, ServerKind};
use crate::reactor::args::ServeArgs;
use crate::sys::probe::{self, CounterSet, KmsgTail};
use crate::sys::signals;
use crate::sys::workers::{Pool, WorkerMsg, WorkerSpec};
use crate::util::thousands;

use super::faults::{self, ClientHold, Injector, Scene, ServerHold};
use super::report::write_reports;
use super::{
    CLIENT_HOLD_MARGIN, Ceiling, ClientResult, LabConfig, LabReport, SERVER_STOP_GRACE,
    server_capacity, split,
};

/// Per-process state while the run goes on.
#[derive(Default)]
pub(super) struct Live {
    pub(super) connections: u64,
    /// Most connections any interval reported.
    peak: u64,
    opened_total: u64,
    /// Highest RSS any interval reported.
    rss: Option<u64>,
    summary: Option<Record>,
    pub(super) start: Option<Record>,
    pub(super) exit: Option<i32>,
    /// A client said its connect phase is over (`"phase":"hold"`), target
    /// reached or not.
    connect_over: bool,
    /// Failures by catalogue id in its last interval (cumulative).
    pub(super) failures: BTreeMap<crate::catalogue::FailureId, u64>,
    /// A client sent SIGUSR1: stop ramping (the ceiling).
    told_to_stop_ramp: bool,
}

impl Live {
    /// serve's typed start settings (its worker count and pids), from its
    /// start record, once it has written one.
    pub(super) fn serve_start(&self) -> Option<ServeStart> {
        match &self.start.as_ref()?.event {
            Event::Start { settings } => typed::<ServeStart>(settings),
            _ => None,
        }
    }
}

/// Does this client line say its connect phase is over?
fn says_holding(line: &str) -> bool {
    line.contains("\"phase\"")
        && serde_json::from_str::<serde_json::Value>(line)
            .is_ok_and(|v| v["phase"] == "hold" || v["phase"] == "done")
}

/// Should the clients (started with `--hold-on-signal`) be told to begin
/// their holds? Once none is still connecting: each has said its connect
/// phase is over, or has exited; and one at least is left to tell. Each
/// has written a line by then, so its SIGUSR2 handler is in place.
fn hold_go_due(clients: &[Live]) -> bool {
    clients.iter().all(|l| l.connect_over || l.exit.is_some())
        && clients.iter().any(|l| l.exit.is_none())
}

/// Run the lab: the caller has already checked capacity and applied the
/// profile if asked. Returns the report (also written to disk).
pub fn run(
    cfg: &LabConfig,
    private_netns: bool,
    applied_profile: bool,
    notes: Vec<String>,
) -> Result<LabReport> {
    let started_wall = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let dir = report_dir(&cfg.report_root, &started_wall)?;
    let mut report = LabReport {
        started: started_wall,
        report_dir: dir.display().to_string(),
        private_netns,
        applied_profile,
        target: cfg.target,
        notes,
        metrics_endpoints: cfg.metrics.iter().map(|(url, _)| url.clone()).collect(),
        ..Default::default()
    };
    let t0 = Instant::now();
    let counters_before = probe::counters().context("reading TCP counters before the run")?;
    let mut kmsg = KmsgTail::open();
    if let Some(why) = &kmsg.unavailable {
        report.notes.push(format!("kernel log not read: {why}"));
    }
    report.memory_before = probe::memory().context("reading /proc/meminfo before the run")?;

    // Server: 0; clients: 1..=clients.
    let mut pool = Pool::new().context("preparing worker processes")?;
    let mut logs: Vec<BufWriter<File>> = Vec::new();
    let mut live: Vec<Live> = Vec::new();
    let mut serve_args = ServeArgs::new(Ipv4Addr::LOCALHOST.into(), cfg.base_port, cfg.ports)
        .context("the serve command line")?;
    serve_args.procs = Procs::Auto;
    serve_args.max_connections = Some(server_capacity(cfg.target));
    serve_args.json = true;
    serve_args.metrics_fd = cfg.metrics.first().map(|&(_, fd)| fd);
    serve_args.defer_accept = cfg.defer_accept;
    serve_args.fast_open = cfg.fast_open;
    let logs_dir = dir.join("logs");
    let stderr_dir = dir.join("stderr");
    for d in [&logs_dir, &stderr_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    // A real server (--server) runs under `c1m lab-server`, which reports
    // like serve; its own log goes to logs/<name>.log.
    let server_ports = cfg.server.ports(cfg.ports);
    let server_name = match &cfg.server {
        ServerKind::Serve => "c1m serve".to_string(),
        k => k.name().to_string(),
    };
    let mut serve_spec = match &cfg.server {
        ServerKind::Serve => WorkerSpec::new(serve_args.command_line()),
        kind => WorkerSpec::new(
            LabServerArgs {
                server: kind.to_string(),
                dir: dir.clone(),
                bind: Ipv4Addr::LOCALHOST.into(),
                port: cfg.base_port,
                ports: server_ports,
                capacity: server_capacity(cfg.target),
            }
            .command_line(),
        ),
    };
    serve_spec.stderr = Some(stderr_dir.join("serve.txt"));
    pool.spawn(serve_spec)
        .with_context(|| format!("starting {server_name}"))?;
    logs.push(create_log(&logs_dir, "serve.log")?);
    live.push(Live::default());

    // Wait for the server to listen.
    let ready_deadline = Instant::now() + Duration::from_secs(60);
    let mut server_ready = false;
    while !server_ready {
        if signals::stop_requested() {
            bail!("interrupted while the server was starting");
        }
        if Instant::now() > ready_deadline {
            bail!(
                "{server_name} did not report listening within 60 s (see {}/serve.log and stderr/)",
                dir.display()
            );
        }
        match pool.recv_timeout(Duration::from_millis(200)) {
            Some(WorkerMsg::Line { index, line }) => {
                record_line(&mut logs[index], &line);
                if let Some(rec) = Record::parse(&line) {
                    if matches!(rec.event, Event::Start { .. }) {
                        server_ready = true;
                    }
                    absorb(&mut live[index], rec);
                }
            }
            Some(WorkerMsg::Exited { status, .. }) => {
                bail!(
                    "{server_name} exited before listening ({status}); see {}/serve.log, logs/ and stderr/serve.txt",
                    dir.display()
                )
            }
            None => {}
        }
    }
    report.server_workers = live[0].serve_start().map_or(0, |s| s.workers.into());

    let mut injector = cfg.fault.map(|f| Injector::new(f, cfg.hold));
    // The lab's own records (a fault it injected, its stop at the memory
    // floor), for analyze to read beside the processes' logs.
    let mut lab_log = if injector.is_some() || cfg.mem_floor.is_some() {
        Some(create_log(&logs_dir, "lab.log")?)
    } else {
        None
    };
    let serve_workers: Vec<u32> = live[0]
        .serve_start()
        .map(|s| s.worker_pids)
        .unwrap_or_default();
    let mut verified_at_hold_start = 0u64;
    let mut server_at_end: Option<u64> = None;

    // Clients. Several begin their holds (and their lines) together, on
    // the lab's SIGUSR2 once none is still connecting (`hold_go_due`).
    let hold_together = cfg.clients > 1;
    let shares = split(cfg.target, cfg.clients);
    for (i, share) in shares.iter().enumerate() {
        let k = i + 1;
        let sources = super::client_source_text(
            cfg.source_list.as_deref(),
            cfg.clients,
            cfg.sources_per_client,
            k as u32,
        );
        let mut args = FloodArgs::new("127.0.0.1", cfg.base_port, server_ports, *share)
            .context("the flood command line")?;
        args.proto.protocol = cfg.server.protocol().unwrap_or(cfg.protocol);
        if args.proto.protocol == crate::flood::proto::Protocol::Mqtt {
            // Each client numbers its connections from 0: a broker drops
            // the older session of a client id it sees twice.
            args.proto.prefix = format!("c1m-{k}-");
        }
        args.sources = Some(sources.clone());
        args.procs = Procs::Auto;
        // The lab ends the hold itself (so that it can read the counters
        // before the teardown); this is only a backstop for a client that
        // never reaches its share.
        args.hold = Hold(Some(cfg.hold + CLIENT_HOLD_MARGIN));
        args.json = true;
        args.message_interval = cfg.message_interval;
        args.hold_on_signal = hold_together;
        args.fast_open = cfg.fast_open;
        args.separate_handshake_ack = cfg.separate_handshake_ack;
        args.metrics_fd = cfg.metrics.get(k).map(|&(_, fd)| fd);
        if let Some(b) = cfg.reconnect {
            args.reconnect = true;
            args.reconnect_backoff = b;
        }
        let mut spec = WorkerSpec::new(args.command_line());
        spec.stderr = Some(stderr_dir.join(format!("client-{k}.txt")));
        pool.spawn(spec)
            .with_context(|| format!("starting client {k}"))?;
        logs.push(create_log(&logs_dir, &format!("client-{k}.log"))?);
        live.push(Live::default());
        report.clients.push(ClientResult {
            index: k as u32,
            sources,
            target: *share,
            ..Default::default()
        });
    }

    // Supervise until every client has exited.
    let run_start = Instant::now();
    let run_start_ts = crate::util::unix_now();
    report.ramp_started_unix = Some(run_start_ts);
    let mut sysctl_at_peak = None;
    let mut last_print = Instant::now();
    // The memory floor (--target max) is checked once a second, four times
    // a second when usable memory is near it.
    let mut last_mem = Instant::now();
    let mut usable_at_last_check = u64::MAX;
    let mut interrupted = false;
    let mut gave_up = false;
    let mut hold_started: Option<Instant> = None;
    // When every client was done connecting short of the target.
    let mut ramp_over_s: Option<f64> = None;
    let mut counters_end_of_hold: Option<CounterSet> = None;
    let mut hold_go_sent = !hold_together;
    let stop_clients = |pool: &Pool| {
        for i in 1..=cfg.clients as usize {
            pool.signal(i, nix::sys::signal::Signal::SIGTERM);
        }
    };
    while live[1..].iter().any(|l| l.exit.is_none()) {
        if let Some(t) = hold_started
            && counters_end_of_hold.is_none()
            && t.elapsed() >= cfg.hold
        {
            // The hold is over: read the counters of the run, then end the
            // clients (their closing is the teardown, counted apart).
            if let Some(inj) = injector.as_mut() {
                inj.end_of_hold()?;
            }
            counters_end_of_hold =
                Some(probe::counters().context("reading TCP counters at the end of the hold")?);
            server_at_end = Some(live[0].connections);
            stop_clients(&pool);
        }
        if let (Some(t), Some(inj), Some(log)) = (hold_started, injector.as_mut(), lab_log.as_mut())
            && counters_end_of_hold.is_none()
        {
            let mut scene = Scene {
                pool: &pool,
                serve_workers: serve_workers.clone(),
                server_connections: live[0].connections,
                client_connections: live[1..].iter().map(|l| l.connections).sum(),
                first_client_connections: live.get(1).map_or(0, |l| l.connections),
                log,
                client_host: None,
            };
            inj.poll(t.elapsed(), &mut scene)?;
        }
        if signals::stop_requested() && !interrupted {
            interrupted = true;
            report
                .notes
                .push("interrupted (SIGINT/SIGTERM/SIGHUP/SIGQUIT): all processes stopped".into());
            pool.signal_all(nix::sys::signal::Signal::SIGTERM);
        }
        if !gave_up
            && hold_started.is_none()
            && report.time_to_target_s.is_none()
            && run_start.elapsed() > cfg.deadline
        {
            gave_up = true;
            report.notes.push(format!(
                "target not reached within {:?}: clients stopped",
                cfg.deadline
            ));
            stop_clients(&pool);
        }
        match pool.recv_timeout(Duration::from_millis(100)) {
            Some(WorkerMsg::Line { index, line }) => {
                record_line(&mut logs[index], &line);
                if index > 0 && !live[index].connect_over && says_holding(&line) {
                    live[index].connect_over = true;
                }
                if !hold_go_sent && hold_go_due(&live[1..]) {
                    hold_go_sent = true;
                    for (k, l) in live.iter().enumerate().skip(1) {
                        if l.exit.is_none() {
                            pool.signal(k, nix::sys::signal::Signal::SIGUSR2);
                        }
                    }
                }
                if let Some(rec) = Record::parse(&line) {
                    absorb(&mut live[index], rec);
                }
            }
            Some(WorkerMsg::Exited { index: 0, .. })
                if match injector.as_mut() {
                    Some(inj) => inj.server_exited(&mut pool)?,
                    None => false,
                } => {}
            Some(WorkerMsg::Exited { index, status }) => {
                live[index].exit = Some(status.code().unwrap_or(
                    128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0),
                ));
                if index == 0 && live[1..].iter().any(|l| l.exit.is_none()) {
                    report
                        .notes
                        .push(format!("{server_name} exited during the run ({status})"));
                }
            }
            None => {}
        }
        let established: u64 = live[1..].iter().map(|l| l.connections).sum();
        report.peak_connections = report.peak_connections.max(established);
        report.server_peak_connections = report.server_peak_connections.max(live[0].connections);
        if let Some(inj) = injector.as_mut() {
            inj.observe(established, cfg.target);
        }
        if report.time_to_target_s.is_none() && established >= cfg.target {
            verified_at_hold_start = established;
            report.time_to_target_s = Some(run_start.elapsed().as_secs_f64());
            hold_started = Some(Instant::now());
            report.memory_peak = probe::memory().unwrap_or_default();
            sysctl_at_peak = Some(probe::sysctl_text());
        }
        if let Some(floor) = cfg.mem_floor
            && report.ceiling.is_none()
            && report.time_to_target_s.is_none()
            && last_mem.elapsed() >= mem_check_every(usable_at_last_check, floor)
        {
            last_mem = Instant::now();
            let (usable, stop) = memory_floor_reached(floor, established, cfg);
            usable_at_last_check = usable;
            if let Some(mut c) = stop {
                c.time_s = Some(run_start.elapsed().as_secs_f64());
                report.memory_peak = probe::memory().unwrap_or_default();
                report.notes.push(format!(
                    "stopped ramping at {} verified connections: usable memory {} MiB (MemAvailable {} MiB minus what the open sockets pin) fell below the floor of {} MiB; the clients stopped connecting and held what they had",
                    thousands(c.connections),
                    c.usable_bytes >> 20,
                    c.mem_available_bytes >> 20,
                    floor >> 20
                ));
                if let Some(log) = lab_log.as_mut() {
                    let _ = ceiling_record(&c).emit(log);
                }
                report.ceiling = Some(c);
                sysctl_at_peak = Some(probe::sysctl_text());
            }
        }
        // The ramp stops at the ceiling: SIGUSR1 to every client that has
        // said it started (then it handles the signal; before, the
        // signal's default action would kill it).
        if report.ceiling.is_some() && counters_end_of_hold.is_none() {
            for (k, l) in live.iter_mut().enumerate().skip(1) {
                if l.start.is_some() && !l.told_to_stop_ramp {
                    l.told_to_stop_ramp = true;
                    pool.signal(k, nix::sys::signal::Signal::SIGUSR1);
                }
            }
        }
        // Holding at the ceiling: should MemAvailable still fall to half
        // the floor (connects that were in flight, echo buffers), end the
        // hold now rather than go on towards the OOM killer.
        if let Some(floor) = cfg.mem_floor
            && report.ceiling.is_some()
            && counters_end_of_hold.is_none()
            && last_mem.elapsed() >= Duration::from_secs(1)
        {
            last_mem = Instant::now();
            if memory_floor_reached(floor / 2, established, cfg)
                .1
                .is_some()
            {
                report.notes.push(format!(
                    "usable memory fell below half the floor ({} MiB) while holding at the ceiling: the hold was cut short",
                    floor >> 21
                ));
                counters_end_of_hold =
                    Some(probe::counters().context("reading TCP counters at the end of the hold")?);
                server_at_end = Some(live[0].connections);
                stop_clients(&pool);
            }
        }
        // Every client is done connecting short of the target (a server
        // that stopped taking clients, or the ramp stopped at the
        // ceiling): hold what they have, rather than wait for their own
        // backstop or the deadline.
        if hold_started.is_none()
            && report.time_to_target_s.is_none()
            && counters_end_of_hold.is_none()
            && live[1..].iter().all(|l| l.connect_over || l.exit.is_some())
        {
            hold_started = Some(Instant::now());
            ramp_over_s = Some(run_start.elapsed().as_secs_f64());
            verified_at_hold_start = established;
            if sysctl_at_peak.is_none() {
                sysctl_at_peak = Some(probe::sysctl_text());
            }
            if report.ceiling.is_none() {
                report.memory_peak = probe::memory().unwrap_or_default();
                report.notes.push(format!(
                    "every client finished connecting at {} of {}: held what they had",
                    thousands(established),
                    thousands(cfg.target)
                ));
            }
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            progress(
                cfg,
                phase(hold_started.is_some(), counters_end_of_hold.is_some()),
                established,
                live[0].connections,
                run_start.elapsed(),
            );
        }
    }
    if report.time_to_target_s.is_none() && report.ceiling.is_none() {
        // Peak memory: sample now, with whatever is open.
        report.memory_peak = probe::memory().unwrap_or_default();
    }

    // Stop the server and collect its summary. Its workers close every
    // connection they still hold before the summary comes: at two million
    // that takes tens of seconds on two cores, so wait longer than the
    // pool's default grace before killing it.
    if live[0].exit.is_none() {
        pool.grace = SERVER_STOP_GRACE;
        for msg in pool.shutdown() {
            match msg {
                WorkerMsg::Line { index, line } => {
                    record_line(&mut logs[index], &line);
                    if let Some(rec) = Record::parse(&line) {
                        absorb(&mut live[index], rec);
                    }
                }
                WorkerMsg::Exited { index, status } => live[index].exit = status.code(),
            }
        }
    }
    for log in &mut logs {
        let _ = log.flush();
    }
    report.elapsed_s = t0.elapsed().as_secs_f64();

    // Kernel side.
    let counters_after = probe::counters().context("reading TCP counters after the run")?;
    let counters_run = counters_end_of_hold.unwrap_or_else(|| counters_after.clone());
    report.counters = probe::delta(&counters_before, &counters_run);
    report.teardown_counters = probe::delta(&counters_run, &counters_after);
    let nstat_path = logs_dir.join("counters.nstat");
    std::fs::write(
        &nstat_path,
        probe::nstat_snapshots(
            &counters_before,
            &counters_run,
            &crate::catalogue::evidence_counters(),
        ),
    )
    .with_context(|| format!("writing {}", nstat_path.display()))?;
    report.kernel_lines = kmsg.read_new();
    let sysctl_path = logs_dir.join("sysctl.txt");
    std::fs::write(
        &sysctl_path,
        sysctl_at_peak.unwrap_or_else(probe::sysctl_text),
    )
    .with_context(|| format!("writing {}", sysctl_path.display()))?;
    let kernel_path = logs_dir.join("kernel.log");

    std::fs::write(&kernel_path, report.kernel_lines.join("\n") + "\n")
        .with_context(|| format!("writing {}", kernel_path.display()))?;

    summarize(&mut report, &live, run_start_ts);
    if let Some(floor) = cfg.mem_floor
        && report.ceiling.is_none()
    {
        report.ceiling = ceiling_without_floor(cfg, &report, floor, ramp_over_s);
    }
    let (kernel, slab) = (
        report.kernel_bytes_per_connection,
        report.slab_bytes_per_connection,
    );
    let verified = report.verified;
    if let Some(c) = report.ceiling.as_mut() {
        c.kernel_bytes_per_connection = kernel;
        c.slab_bytes_per_connection = slab;
        // At the floor, the count is what the clients had reported by the
        // check; those in flight then (up to a second's worth, with the
        // interval lines' lag) were verified too, and held.
        c.connections = c.connections.max(verified);
    }
    if let Some(log) = lab_log.as_mut() {
        let _ = log.flush();
    }
    hold_account(
        &mut report,
        &live,
        verified_at_hold_start,
        server_at_end.unwrap_or(live[0].connections),
        injector,
    );

    // The analysis of everything the run logged, and its chart.
    let analysis = crate::diagnosis::report::analyze(std::slice::from_ref(&logs_dir));
    let svg = dir.join("connections.svg");
    if let Err(e) = crate::diagnosis::plot::write_svg(&svg, &analysis.series) {
        report.notes.push(format!("no chart: {e:#}"));
    }
    report.findings = analysis.findings.clone();
    report.analysis = analysis.render();
    write_reports(&dir, &report)?;
    Ok(report)
}

/// The ramp's memory floor: usable memory now (MemAvailable minus the
/// reclaimable slab the open TCP sockets pin, see
/// [`crate::tuning::capacity::usable_memory`]), and a [`Ceiling`] when it
/// is below `floor` bytes, with `established` verified connections. When
/// /proc/meminfo cannot be read, (u64::MAX, None): the ramp goes on and
/// the next check tries again.
fn memory_floor_reached(floor: u64, established: u64, cfg: &LabConfig) -> (u64, Option<Ceiling>) {
    let Ok(m) = probe::memory() else {
        return (u64::MAX, None);
    };
    let avail = m.mem_available_kib * 1024;
    let usable = crate::tuning::capacity::usable_memory(avail, m.tcp_alloc);
    let stop = (usable < floor).then(|| Ceiling {
        limit: "memory".into(),
        connections: established,
        mem_available_bytes: avail,
        usable_bytes: usable,
        floor_bytes: floor,
        doctor: cfg.max_plan.as_ref().map(|p| p.doctor.clone()),
        ..Default::default()
    });
    (usable, stop)
}

/// The lab's record of its stop at the memory floor (logs/lab.log), so
/// that `analyze` names the ceiling as what ended the ramp: a
/// `memory_ceiling` failure whose count is the connections verified then.
fn ceiling_record(c: &Ceiling) -> Record {
    Record::now(
        Role::Lab,
        None,
        Event::Failure {
            failure: FailureId::MemoryCeiling,
            call: String::new(),
            errno: None,
            count: 1,
            detail: format!(
                "lab --target max stopped its ramp when {} connections were verified: usable memory {} MiB (MemAvailable {} MiB less what the open sockets pin) fell below the floor of {} MiB",
                thousands(c.connections),
                thousands(c.usable_bytes >> 20),
                thousands(c.mem_available_bytes >> 20),
                thousands(c.floor_bytes >> 20)
            ),
        },
    )
}

/// How often the ramp checks the memory floor: once a second, and four
/// times a second once usable memory is within 2 GiB of it (at 20,000
/// connections a second a lab takes about 200 MB a second).
fn mem_check_every(usable: u64, floor: u64) -> Duration {
    if usable < floor.saturating_add(2 << 30) {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(1)
    }
}

/// The ceiling of a ramp that the memory floor did not stop: the limit the
/// clients' failures name when they stopped short of the target on their
/// own, or, for `--target max` that reached its bound, the limit that set
/// the bound (doctor's row as evidence). None when nothing names a limit.
fn ceiling_without_floor(
    cfg: &LabConfig,
    report: &LabReport,
    floor: u64,
    ramp_over_s: Option<f64>,
) -> Option<Ceiling> {
    let (limit, evidence, time_s) = if report.reached {
        let plan = cfg.max_plan.as_ref()?;
        (
            plan.bound_limit.clone(),
            format!(
                "the ramp reached the most {} allows: {}",
                plan.bound_limit, plan.bound_detail
            ),
            report.time_to_target_s,
        )
    } else {
        let (limit, evidence) = super::binding_limit(&report.failures)?;
        (limit, evidence, ramp_over_s)
    };
    let m = report.memory_peak;
    let avail = m.mem_available_kib * 1024;
    Some(Ceiling {
        limit,
        connections: report.peak_connections,
        time_s,
        mem_available_bytes: avail,
        usable_bytes: crate::tuning::capacity::usable_memory(avail, m.tcp_alloc),
        floor_bytes: floor,
        doctor: cfg.max_plan.as_ref().map(|p| p.doctor.clone()),
        evidence: Some(evidence),
        ..Default::default()
    })
}

pub(super) fn absorb(live: &mut Live, rec: Record) {
    match &rec.event {
        Event::Interval { counters, .. } => {
            live.connections = counters.connections;
            live.failures = counters.failures.clone();
            live.peak = live.peak.max(counters.connections);
            live.opened_total = counters.opened_total;
            if let Some(r) = counters.rss_bytes {
                live.rss = Some(live.rss.unwrap_or(0).max(r));
            }
        }
        Event::Start { .. } => live.start = Some(rec),
        Event::Summary { counters, .. } => {
            live.opened_total = counters.opened_total;
            if counters.rss_bytes.is_some() && live.rss.is_none() {
                live.rss = counters.rss_bytes;
            }
            live.summary = Some(rec);
        }
        _ => {}
    }
}

/// Fill the derived fields from what the processes said.
pub(super) fn summarize(report: &mut LabReport, live: &[Live], run_start_ts: f64) {
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    for (i, client) in report.clients.iter_mut().enumerate() {
        let l = &live[i + 1];
        client.exit_code = l.exit;
        client.rss_bytes = l.rss;
        client.protocol = match l.start.as_ref().map(|r| &r.event) {
            Some(Event::Start { settings }) => typed::<FloodStart>(settings)
                .map(|s| s.protocol)
                .filter(|p| !p.name.is_empty()),
            _ => None,
        };
        client.peak_connections = l.peak;
        if let Some((counters, summary)) = flood_summary(l) {
            client.established = counters.opened_total.max(counters.connections);
            client.failed = counters.failed_total;
            client.failures = counters
                .failures
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
            // With --reconnect the counters include the replacements of
            // connections lost during the hold: the client verified its
            // share once, and each replacement is counted apart.
            let replacements = summary.shard.reconnect.as_ref().map_or(0, |r| r.reconnects);
            client.established = client
                .established
                .max(summary.established)
                .max(summary.verified)
                .saturating_sub(replacements);
            client.reconnected = replacements;
            client.peak_connections = client.peak_connections.max(summary.peak_connections);
            client.details = serde_json::to_value(&summary).unwrap_or_default();
        } else {
            client.established = l.opened_total;
        }
        for (k, v) in &client.failures {
            *failures.entry(k.clone()).or_default() += v;
        }
    }
    if let Some(Record {
        event: Event::Summary { counters, .. },
        ..
    }) = &live[0].summary
    {
        for (k, v) in &counters.failures {
            *failures.entry(format!("server:{k}")).or_default() += v;
        }
    }
    report.failures = failures;
    report.protocol = report
        .clients
        .iter()
        .find_map(|c| c.protocol.as_ref())
        .map(|p| p.describe());
    report.verified = report.clients.iter().map(|c| c.established).sum();
    report.reconnected = report.clients.iter().map(|c| c.reconnected).sum();
    // Time to target, precisely: each client's start plus the time it took
    // to reach its share (its summary's connect_s); the last one sets it.
    let reached_at: Option<Vec<f64>> = live[1..]
        .iter()
        .map(|l| {
            let start = l.start.as_ref()?.ts;
            let (_, summary) = flood_summary(l)?;
            summary.reached.then_some(start + summary.shard.connect_s)
        })
        .collect();
    if let Some(times) = reached_at
        && let Some(last) = times.into_iter().reduce(f64::max)
    {
        report.time_to_target_s = Some((last - run_start_ts).max(0.0));
    }
    // The server's own account of its memory.
    if let Some(Record {
        event: Event::Summary { details, .. },
        ..
    }) = &live[0].summary
        && let Some(serve) = typed::<ServeSummary>(details)
    {
        report.server_rss_bytes = (serve.peak_rss_bytes > 0).then_some(serve.peak_rss_bytes);
        report.server_user_bytes_per_connection = serve.user_bytes_per_connection;
        report.server_peak_connections = report.server_peak_connections.max(serve.peak_connections);
    }
    report.server_rss_bytes = report.server_rss_bytes.or(live[0].rss);
    let client_rss: u64 = live[1..].iter().filter_map(|l| l.rss).sum();
    if client_rss > 0 {
        report.client_rss_bytes = Some(client_rss);
    }
    report.reached = report.time_to_target_s.is_some() && report.verified >= report.target;
    if let Some(t) = report.time_to_target_s
        && t > 0.0
    {
        report.connect_rate_per_s = Some(report.target as f64 / t);
    }
    let peak = report.peak_connections.max(1) as f64;
    if report.peak_connections > 0 {
        report.client_user_bytes_per_connection = report.client_rss_bytes.map(|b| b as f64 / peak);
        let before = report.memory_before;
        let at_peak = report.memory_peak;
        if at_peak.mem_available_kib > 0 {
            let used_kib = before
                .mem_available_kib
                .saturating_sub(at_peak.mem_available_kib) as f64;
            // MemAvailable also drops by the processes' RSS; take that out.
            let user = (report.server_rss_bytes.unwrap_or(0) + report.client_rss_bytes.unwrap_or(0))
                as f64;
            report.kernel_bytes_per_connection = Some(((used_kib * 1024.0 - user).max(0.0)) / peak);
            report.slab_bytes_per_connection =
                Some(at_peak.slab_kib.saturating_sub(before.slab_kib) as f64 * 1024.0 / peak);
        }
    }
    // Percentiles: take the worst (max) over clients for each key.
    for l in &live[1..] {
        let Some((_, summary)) = flood_summary(l) else {
            continue;
        };
        for (p, into) in [
            (&summary.rtt_ms, &mut report.rtt_ms),
            (&summary.connect_latency_ms, &mut report.connect_latency_ms),
        ] {
            let Ok(serde_json::Value::Object(obj)) = serde_json::to_value(p) else {
                continue;
            };
            for (k, v) in obj {
                if k == "count" {
                    continue;
                }
                if let Some(x) = v.as_f64() {
                    let e = into.entry(k).or_insert(0.0);
                    *e = e.max(x);
                }
            }
        }
    }
}

/// A client's summary: its counters and its typed details.
fn flood_summary(l: &Live) -> Option<(&Counters, FloodSummary)> {
    match &l.summary {
        Some(Record {
            event: Event::Summary {
                counters, details, ..
            },
            ..
        }) => Some((counters, typed::<FloodSummary>(details)?)),
        _ => None,
    }
}

/// The progress line's phase: connecting until the hold starts (at the
/// target, or where the ramp stopped short of it: the ceiling), then
/// holding, then stopping once the clients were told to end.
pub(super) fn phase(hold_started: bool, hold_ended: bool) -> &'static str {
    match (hold_started, hold_ended) {
        (_, true) => "stopping",
        (true, false) => "holding",
        (false, false) => "connecting",
    }
}

pub(super) fn progress(
    cfg: &LabConfig,
    phase: &str,
    established: u64,
    server: u64,
    elapsed: Duration,
) {
    let mut out = std::io::stdout().lock();
    if cfg.json {
        let line = serde_json::json!({
            "ts": crate::util::unix_now(), "role": "lab", "pid": std::process::id(),
            "event": "interval", "connections": established, "server_connections": server,
            "target": cfg.target, "elapsed_s": elapsed.as_secs_f64(),
        });
        let _ = writeln!(out, "{line}");
    } else {
        let _ = writeln!(
            out,
            "lab: {phase}: clients {} / {} verified, server holds {}, {:.0}s",
            thousands(established),
            thousands(cfg.target),
            thousands(server),
            elapsed.as_secs_f64()
        );
    }
    let _ = out.flush();
}

pub(super) fn report_dir(root: &Path, started: &str) -> Result<PathBuf> {
    let name = started.trim_end_matches('Z').replace(':', "-");
    let mut dir = root.join(&name);
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = root.join(format!("{name}-{n}"));
    }
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating report folder {}", dir.display()))?;
    Ok(dir)
}

pub(super) fn create_log(dir: &Path, name: &str) -> Result<BufWriter<File>> {
    let path = dir.join(name);
    let f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    Ok(BufWriter::new(f))
}

pub(super) fn record_line(log: &mut BufWriter<File>, line: &str) {
    let _ = log.write_all(line.as_bytes());
    let _ = log.write_all(b"\n");
}

/// The hold's account (what was lost, by cause) and the fault's comparison;
/// a loss nobody asked for makes the run "not reached".
pub(super) fn hold_account(
    report: &mut LabReport,
    live: &[Live],
    verified_at_start: u64,
    server_at_end: u64,
    mut injector: Option<Injector>,
) {
    if report.time_to_target_s.is_none() && report.ceiling.is_none() {
        return;
    }
    let clients: Vec<ClientHold> = live[1..]
        .iter()
        .map(|l| {
            let died = l
                .failures
                .get(&crate::catalogue::FailureId::ClientProcessDied)
                .copied()
                .unwrap_or(0);
            match flood_summary(l) {
                Some((_, s)) => ClientHold {
                    eof: s.shard.hold_closed,
                    reset: s.shard.hold_resets,
                    died,
                    open: s.shard.open(),
                },
                // No summary: the client process itself died, and every
                // connection of its last report with it.
                None if l.exit.is_some() => ClientHold {
                    died: died + l.connections,
                    ..Default::default()
                },
                None => ClientHold {
                    died,
                    open: l.connections,
                    ..Default::default()
                },
            }
        })
        .collect();
    let server_lost = match &live[0].summary {
        Some(Record {
            event: Event::Summary { details, .. },
            ..
        }) => typed::<ServeSummary>(details).map_or(0, |s| s.lost_connections),
        _ => 0,
    };
    let server = ServerHold {
        lost: server_lost,
        at_end: server_at_end,
    };
    let hold = faults::account(&clients, verified_at_start, server, injector.as_mut());
    // The clients' own time back at their share (the slowest one's).
    // Without --reconnect no client reports one, and nothing came back.
    let reconnecting: Vec<Option<f64>> = live[1..]
        .iter()
        .filter_map(|l| flood_summary(l)?.1.shard.reconnect)
        .map(|r| r.recovered_s)
        .collect();
    let recovered = if reconnecting.is_empty() {
        None
    } else {
        reconnecting
            .into_iter()
            .try_fold(0.0f64, |acc, r| r.map(|r| acc.max(r)))
    };
    if let (Some(inj), Some(r)) = (injector.as_mut(), recovered)
        && hold.lost > 0
    {
        inj.report.recovered_s = Some(r);
    }
    match injector {
        Some(inj) => {
            report.reached = verified_at_start >= report.target;
            report.notes.push(inj.report.sentence());
            report.fault = Some(inj.report);
        }
        None if hold.lost > 0 => {
            report.reached = false;
            report.notes.push(format!(
                "{} verified connections lost during the hold ({}): not reached",
                thousands(hold.lost),
                hold.lost_by_cause
                    .iter()
                    .map(|(k, v)| format!("{k} {}", thousands(*v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        None => {}
    }
    report.hold = Some(hold);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_holds_once_the_ramp_stopped_short_of_the_target() {
        // At the ceiling the target is never reached, but the hold starts:
        // the line says so (it said "connecting" through hold and teardown).
        assert_eq!(phase(false, false), "connecting");
        assert_eq!(phase(true, false), "holding");
        assert_eq!(phase(true, true), "stopping");
        assert_eq!(phase(false, true), "stopping");
    }

    #[test]
    fn the_floor_is_checked_more_often_near_it() {
        let floor = 1536u64 << 20;
        assert_eq!(mem_check_every(20 << 30, floor), Duration::from_secs(1));
        assert_eq!(mem_check_every(u64::MAX, floor), Duration::from_secs(1));
        assert_eq!(
            mem_check_every(floor + (1 << 30), floor),
            Duration::from_millis(250)
        );
        assert_eq!(mem_check_every(0, floor), Duration::from_millis(250));
    }

    /// A `--target max` lab whose ramp bound is fs.file-max's.
    fn max_config() -> LabConfig {
        LabConfig {
            mem_floor: Some(1536 << 20),
            max: true,
            max_plan: Some(super::super::MaxPlan {
                estimate: 2_900,
                doctor: "doctor's sentences".into(),
                bound_limit: "file-max".into(),
                bound_detail:
                    "fs.file-max 6,449 minus 449 in use = 6,000 files / 2 sockets per connection"
                        .into(),
            }),
            ..super::super::test_config()
        }
    }

    fn memory_at(avail_kib: u64, tcp_alloc: u64) -> probe::Memory {
        probe::Memory {
            mem_available_kib: avail_kib,
            tcp_alloc,
            ..Default::default()
        }
    }

    #[test]
    fn a_max_ramp_that_reached_its_bound_names_the_bounding_limit() {
        let cfg = max_config();
        let report = LabReport {
            target: 3_000,
            reached: true,
            verified: 3_000,
            peak_connections: 3_000,
            time_to_target_s: Some(1.5),
            memory_peak: memory_at(8 << 20, 6_000),
            ..Default::default()
        };
        let c = ceiling_without_floor(&cfg, &report, 1536 << 20, None).unwrap();
        assert_eq!(c.limit, "file-max");
        assert_eq!((c.connections, c.time_s), (3_000, Some(1.5)));
        assert_eq!(c.mem_available_bytes, 8 << 30);
        assert_eq!(c.usable_bytes, (8 << 30) - 6_000 * 1057);
        assert_eq!(c.doctor.as_deref(), Some("doctor's sentences"));
        let s = super::super::ceiling_sentence(&c);
        assert!(
            s.contains("the ramp reached the most file-max allows: fs.file-max 6,449")
                && s.contains("above the floor of 1,536 MiB"),
            "{s}"
        );
        // A numbered target that was reached has no ceiling.
        let cfg = LabConfig {
            max: false,
            max_plan: None,
            ..max_config()
        };
        assert!(ceiling_without_floor(&cfg, &report, 1536 << 20, None).is_none());
    }

    #[test]
    fn a_ramp_that_stopped_short_names_the_limit_its_failures_give() {
        let cfg = max_config();
        let mut report = LabReport {
            target: 3_000,
            verified: 2_100,
            peak_connections: 2_100,
            memory_peak: memory_at(8 << 20, 4_200),
            failures: BTreeMap::from([
                ("connect_timeout".to_string(), 3),
                ("ephemeral_ports_exhausted".to_string(), 900),
            ]),
            ..Default::default()
        };
        let c = ceiling_without_floor(&cfg, &report, 1536 << 20, Some(4.0)).unwrap();
        assert_eq!((c.limit.as_str(), c.connections), ("ports", 2_100));
        assert_eq!(c.time_s, Some(4.0));
        assert!(
            c.evidence
                .as_deref()
                .is_some_and(|e| e.contains("ephemeral_ports_exhausted 900")),
            "{c:?}"
        );
        // Failures that name no host limit: no ceiling, the run failed.
        report.failures = BTreeMap::from([("connect_timeout".to_string(), 3)]);
        assert!(ceiling_without_floor(&cfg, &report, 1536 << 20, Some(4.0)).is_none());
    }

    #[test]
    fn the_clients_begin_their_holds_once_none_is_still_connecting() {
        let client = |over: bool, exit: Option<i32>| Live {
            connect_over: over,
            exit,
            ..Default::default()
        };
        // One still connecting: not yet.
        assert!(!hold_go_due(&[client(true, None), client(false, None)]));
        // All past connecting, or gone: now.
        assert!(hold_go_due(&[client(true, None), client(true, None)]));
        assert!(hold_go_due(&[client(true, None), client(false, Some(1))]));
        // Nobody left to tell.
        assert!(!hold_go_due(&[
            client(true, Some(0)),
            client(false, Some(1))
        ]));
    }
}
