//! `c1m flood`: the client that opens, verifies and holds hundreds of
//! thousands of TCP connections. `plan` checks the request and splits it
//! between processes, `engine` is one process's non-blocking connect
//! pipeline and hold, `stats` what a process measures, `report` every
//! output format. This file ties them together: a run that fits one
//! process's descriptor limit runs in-process; a bigger one re-executes
//! this binary as worker shards (`sys::workers::Pool`), each with its
//! share of connections and paths, and merges their JSON lines.
pub mod args;
pub mod engine;
pub mod plan;
pub mod proto;
pub mod report;
pub mod stats;
pub mod wire;

use std::time::{Duration, Instant, SystemTime};

use crate::events::Role;
use crate::metrics::endpoint::MetricsAt;
use crate::metrics::{Endpoint, Labels};
use crate::sys::limits::FD_SLACK;
use crate::sys::signals;
use crate::sys::workers::{Pool, WorkerMsg, WorkerSpec};
use args::{FloodArgs, FloodShardArgs};
use engine::{Engine, EngineOptions};
use plan::Plan;
use report::{LogFormat, Reporter};
use stats::ShardSummary;
use wire::{Received, WorkerLine, WorkerSink};

/// `--procs`: a number or as many as the fd limit requires.
pub use crate::argv::Procs;

/// This machine's hostname (`unknown` when it cannot be read).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The name a fleet host goes by: `--host-name`, or with `--shard` the
/// hostname; none for a run on its own.
pub fn host_name(args: &FloodArgs) -> Option<String> {
    args.host_name
        .clone()
        .or_else(|| args.shard.map(|_| hostname()))
}

/// Sleep until `at` (a fleet's `--start-at`), saying so on stderr; false
/// when Ctrl-C/SIGTERM came first. A time already past starts at once, and
/// says how late (clock skew between hosts shows here).
fn wait_for_start(at: SystemTime, who: &str) -> bool {
    let when = humantime::format_rfc3339_millis(at);
    match at.duration_since(SystemTime::now()) {
        Ok(d) => eprintln!(
            "c1m flood{who}: waiting until {when} ({:.1} s) to start",
            d.as_secs_f64()
        ),
        Err(e) => {
            eprintln!(
                "c1m flood{who}: --start-at {when} was {:.3} s ago; starting now",
                e.duration().as_secs_f64()
            );
            return true;
        }
    }
    while let Ok(left) = at.duration_since(SystemTime::now()) {
        if signals::stop_requested() {
            return false;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
    true
}

/// A request, as the command line gives it (already validated).
#[derive(Debug, Clone)]
pub struct Request {
    pub plan: Plan,
    /// The command line it came from: workers are started with it.
    pub args: FloodArgs,
    pub format: LogFormat,
    /// Set in worker processes: (index, count).
    pub shard: Option<(u32, u32)>,
    pub seed_lines: bool,
    /// Worker processes: send the metric buckets with each interval (the
    /// parent serves `--metrics`).
    pub latency_buckets: bool,
    /// Worker processes: begin the hold on the parent's SIGUSR2 (see
    /// `FloodShardArgs::hold_together`).
    pub hold_together: bool,
    /// What each connection speaks (`--protocol` and its flags).
    pub proto: proto::Proto,
}

impl Request {
    /// Hold each connection's handshake ACK back for its first message?
    /// Unless `--separate-handshake-ack`, when the client speaks first;
    /// not with `--fast-open`, whose first message goes in the SYN.
    fn ack_with_data(&self) -> bool {
        !self.args.separate_handshake_ack
            && !self.args.fast_open
            && self.proto.client_speaks_first()
    }
}

/// The per-process descriptor budget: the hard RLIMIT_NOFILE (the soft
/// limit is raised to it) minus slack.
pub fn per_process_budget() -> u64 {
    use crate::sys::limits;
    limits::sockets_per_process(limits::raise_nofile().hard, 0)
}

fn settings(req: &Request, procs: u32) -> crate::events::FloodStart {
    let p = &req.plan;
    crate::events::FloodStart {
        host: p.host.clone(),
        dest: p.dest.to_string(),
        port: p.first_port,
        ports: p.ports,
        sources: req.args.sources.clone(),
        source_count: p.sources.len() as u64,
        connections: p.connections,
        window: p.window as u64,
        rate: p.rate,
        connect_timeout_s: p.connect_timeout.as_secs_f64(),
        hold_s: p.hold.map(|h| h.as_secs_f64()),
        message_interval_s: p.message_interval.map(|h| h.as_secs_f64()),
        procs,
        host_name: host_name(&req.args),
        shard: req.args.shard.map(|s| s.to_string()),
        shard_split: req.args.shard_split.iter().map(|w| w.to_string()).collect(),
        first_k: p.first_k,
        start_at: req
            .args
            .start_at
            .map(|t| humantime::format_rfc3339_millis(t).to_string()),
        metrics: None,
        protocol: req.args.proto.settings(),
    }
}

fn headline(req: &Request, procs: u32) -> String {
    let p = &req.plan;
    format!(
        "c1m flood: {} connections to {} ports {}..{} from {}, window {}, {} process(es), connect timeout {}, then{} hold {}{}",
        crate::util::thousands(p.connections),
        p.dest,
        p.first_port,
        p.first_port as u32 + p.ports as u32 - 1,
        if p.sources.is_empty() {
            "the default source address".to_string()
        } else {
            format!("{} source addresses", p.sources.len())
        },
        p.window,
        procs,
        humantime::format_duration(p.connect_timeout),
        if req.args.hold_on_signal {
            ", on SIGUSR2,"
        } else {
            ""
        },
        report::human_duration(p.hold),
        match req.args.proto.protocol {
            proto::Protocol::Echo => String::new(),
            _ => format!("; speaking {}", req.args.proto.settings().describe()),
        }
    )
}

/// Run a request; returns whether it succeeded (target reached, verified
/// and held).
pub fn run(req: Request) -> anyhow::Result<bool> {
    signals::install().map_err(|e| anyhow::anyhow!("installing signal handlers: {e}"))?;
    signals::install_ramp_stop()
        .map_err(|e| anyhow::anyhow!("installing the SIGUSR1 handler: {e}"))?;
    let budget = per_process_budget();
    if let Some((index, count)) = req.shard {
        if req.hold_together {
            signals::install_hold_go()
                .map_err(|e| anyhow::anyhow!("installing the SIGUSR2 handler: {e}"))?;
        }
        return Ok(run_worker(&req, index, count));
    }
    // --hold-on-signal: the handler is in place before the first line out,
    // so whoever waits for that line may signal at once.
    if req.args.hold_on_signal {
        signals::install_hold_go()
            .map_err(|e| anyhow::anyhow!("installing the SIGUSR2 handler: {e}"))?;
    }
    // A fleet host: its name and shard on every line, and the common start.
    let host = host_name(&req.args);
    let shard = req.args.shard.map(|s| s.to_string());
    crate::events::set_origin(host.clone(), shard.clone());
    let origin = match (&host, &shard) {
        (Some(h), Some(s)) => Some(format!("{h} {s}")),
        (Some(h), None) => Some(h.clone()),
        _ => None,
    };
    if let Some(at) = req.args.start_at {
        let who = origin
            .as_ref()
            .map(|o| format!(" ({o})"))
            .unwrap_or_default();
        if !wait_for_start(at, &who) {
            eprintln!("c1m flood{who}: stopped before --start-at; nothing was opened");
            return Ok(false);
        }
    }
    let procs = match req.args.procs {
        Procs::Auto => {
            plan::auto_procs(req.plan.connections, budget).map_err(anyhow::Error::msg)?
        }
        Procs::N(n) => n.max(1),
    };
    let mut reporter = Reporter::new(req.format, req.args.output.as_deref(), req.plan.connections)?;
    reporter.hold_text = report::human_duration(req.plan.hold);
    if req.args.quiet {
        reporter.set_quiet();
    }
    reporter.expected_workers = procs as usize;
    reporter.nofile = if procs == 1 {
        crate::sys::limits::raise_nofile().soft
    } else {
        budget + FD_SLACK
    };
    reporter.origin = origin;
    let metrics_at = match (req.args.metrics, req.args.metrics_fd) {
        (Some(a), _) => Some(MetricsAt::Addr(a)),
        (None, Some(fd)) => Some(MetricsAt::Fd(fd)),
        (None, None) => None,
    };
    if let Some(at) = metrics_at {
        let labels = Labels::new(Role::Flood, host.as_deref(), shard.as_deref());
        reporter.metrics = Some(at.start(labels)?);
    }
    let mut start = settings(&req, procs);
    start.metrics = reporter.metrics.as_ref().map(Endpoint::url);
    let mut headline = headline(&req, procs);
    if let Some(url) = &start.metrics {
        headline.push_str(&format!("\nmetrics at {url}"));
    }
    reporter.start(&start, &headline);
    let summary = if procs == 1 {
        let shard = req.plan.shard(0, 1);
        let opts = EngineOptions {
            seed_lines: req.format == LogFormat::Seed,
            proto: req.proto.clone(),
            reconnect: req.args.reconnect.then_some(req.args.reconnect_backoff),
            fast_open: req.args.fast_open,
            ack_with_data: req.ack_with_data(),
            latency_buckets: reporter.metrics.is_some(),
            hold_together: req.args.hold_on_signal,
        };
        let engine = Engine::new(&req.plan, shard, opts, &mut reporter)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let (summary, held) = engine.run();
        let reason = reporter.finish(&summary);
        drop(held); // close after the summary is out
        reporter.linger();
        return Ok(reason.is_none());
    } else {
        run_parent(&req, procs, budget, &mut reporter)?
    };
    let reason = reporter.finish(&summary);
    reporter.linger();
    Ok(reason.is_none())
}

fn run_worker(req: &Request, index: u32, count: u32) -> bool {
    let shard = req.plan.shard(index, count);
    let mut sink = WorkerSink {
        index,
        seed_lines: req.seed_lines,
    };
    let opts = EngineOptions {
        seed_lines: req.seed_lines,
        proto: req.proto.clone(),
        reconnect: req.args.reconnect.then_some(req.args.reconnect_backoff),
        fast_open: req.args.fast_open,
        ack_with_data: req.ack_with_data(),
        latency_buckets: req.latency_buckets,
        hold_together: req.hold_together,
    };
    let (summary, held) = match Engine::new(&req.plan, shard.clone(), opts, &mut sink) {
        Ok(engine) => {
            let (summary, held) = engine.run();
            (summary, Some(held))
        }
        Err(e) => (
            ShardSummary {
                target: shard.connections,
                stops: vec![format!("worker {index}: {e}")],
                ..Default::default()
            },
            None,
        ),
    };
    sink.summary(&summary);
    // Close only now: the parent has what it waits for.
    drop(held);
    summary.success()
}

/// The command line of worker `index` of `count`: the same request, one
/// process, JSON lines out, no log file of its own.
fn worker_args(req: &Request, index: u32, count: u32) -> FloodShardArgs {
    FloodShardArgs {
        index,
        of: count,
        seed_lines: req.format == LogFormat::Seed,
        latency_buckets: req.args.metrics.is_some() || req.args.metrics_fd.is_some(),
        hold_together: count > 1,
        run: FloodArgs {
            procs: Procs::N(1),
            json: false,
            quiet: false,
            log_format: Some(LogFormat::Json),
            output: None,
            // the parent waited for it already
            start_at: None,
            // only the parent serves metrics
            metrics: None,
            metrics_fd: None,
            // the parent waits for --hold-on-signal's SIGUSR2 and passes
            // it on (`hold_together`)
            hold_on_signal: false,
            ..req.args.clone()
        },
    }
}

/// What the parent has heard from its workers.
struct Tally {
    /// Each worker's summary, once sent.
    summaries: Vec<Option<ShardSummary>>,
    /// Workers not yet exited.
    running: usize,
    /// Why a worker's connections were lost without a summary.
    lost: Vec<String>,
    /// Worker i is past its connect phase (or gone): the hold begins when
    /// all are.
    connected: Vec<bool>,
}

impl Tally {
    fn new(procs: usize) -> Tally {
        Tally {
            summaries: vec![None; procs],
            running: procs,
            lost: Vec::new(),
            connected: vec![false; procs],
        }
    }

    fn past_connect(&mut self, index: usize) {
        if let Some(c) = self.connected.get_mut(index) {
            *c = true;
        }
    }

    /// Account one message of a worker and hand it to the log.
    fn take(&mut self, msg: WorkerMsg, reporter: &mut Reporter) {
        match msg {
            WorkerMsg::Line { index, line } => match wire::parse_worker_line(&line) {
                Received::Line(WorkerLine::Interval(snap)) => {
                    if snap.phase != stats::Phase::Connect {
                        self.past_connect(index);
                    }
                    reporter.update(index as u32, *snap)
                }
                Received::Line(WorkerLine::Failure(note)) => {
                    reporter.failure(Some(index as u32), &note)
                }
                Received::Line(WorkerLine::Summary(s)) => {
                    self.summaries[index] = Some(*s);
                    self.past_connect(index);
                    reporter.worker_done(index as u32);
                }
                Received::Raw => reporter.raw(&line),
                Received::Other => {}
            },
            WorkerMsg::Exited { index, status } => {
                self.running = self.running.saturating_sub(1);
                self.past_connect(index);
                let end = crate::sys::workers::WorkerEnd::of(&status);
                let summarised = self.summaries[index].is_some();
                reporter.worker_exit(index as u32, &end, summarised);
                if !summarised {
                    self.lost.push(format!(
                        "worker {index} ended ({end}) without a summary; what it verified was lost with it"
                    ));
                }
            }
        }
    }
}

fn run_parent(
    req: &Request,
    procs: u32,
    budget: u64,
    reporter: &mut Reporter,
) -> anyhow::Result<ShardSummary> {
    let mut pool = Pool::new()?;
    let nofile = budget + FD_SLACK;
    for i in 0..procs {
        let mut spec = WorkerSpec::new(worker_args(req, i, procs).command_line());
        spec.nofile = Some(nofile);
        pool.spawn(spec)?;
    }
    let mut tally = Tally::new(procs as usize);
    let mut next_tick = Instant::now() + Duration::from_secs(1);
    let mut stop_deadline: Option<Instant> = None;
    // SIGUSR1 (the lab at the host's ceiling): every worker stops opening
    // connections and holds what it has. A worker is told once it has
    // said something: by then it handles SIGUSR1 (before, the signal's
    // default action would kill it).
    let mut heard = vec![false; procs as usize];
    let mut told = vec![false; procs as usize];
    // The hold begins in every worker at once (SIGUSR2), when none is
    // still connecting: a worker's lines are not timed against the others'
    // connect phase, and every worker holds over the same seconds. With
    // --hold-on-signal, only once this process has had its own SIGUSR2 too.
    let mut hold_go_sent = false;
    while tally.running > 0 {
        if !hold_go_sent
            && tally.connected.iter().all(|&c| c)
            && (!req.args.hold_on_signal || signals::hold_go_requested())
        {
            hold_go_sent = true;
            // Every worker still running has said it is past connecting,
            // so its SIGUSR2 handler is in place.
            pool.signal_all(nix::sys::signal::Signal::SIGUSR2);
        }
        if signals::ramp_stop_requested() {
            for (i, t) in told.iter_mut().enumerate() {
                if heard[i] && !*t {
                    *t = true;
                    pool.signal(i, nix::sys::signal::Signal::SIGUSR1);
                }
            }
        }
        if signals::stop_requested() && stop_deadline.is_none() {
            // Ask every worker to stop and keep reading: each writes its
            // summary before it exits (closing ~20,000 sockets takes a
            // moment). Workers still there after the grace are killed.
            pool.signal_all(nix::sys::signal::Signal::SIGTERM);
            stop_deadline = Some(Instant::now() + Duration::from_secs(30));
        }
        if stop_deadline.is_some_and(|d| Instant::now() >= d) {
            pool.grace = Duration::from_secs(1);
            for msg in pool.shutdown() {
                tally.take(msg, reporter);
            }
            break;
        }
        // Waiting for --hold-on-signal's SIGUSR2: look for it more often.
        let wait = next_tick.saturating_duration_since(Instant::now()).min(
            if req.args.hold_on_signal && !hold_go_sent {
                Duration::from_millis(20)
            } else {
                Duration::from_millis(200)
            },
        );
        if let Some(msg) = pool.recv_timeout(wait) {
            if let WorkerMsg::Line { index, .. } = &msg
                && let Some(h) = heard.get_mut(*index)
            {
                *h = true;
            }
            tally.take(msg, reporter);
        }
        if Instant::now() >= next_tick {
            reporter.tick();
            next_tick += Duration::from_secs(1);
        }
    }
    let mut total = ShardSummary::default();
    for (i, s) in tally.summaries.iter().enumerate() {
        match s {
            Some(s) => total.merge(s),
            None => {
                total.target += req.plan.shard(i as u32, procs).connections;
                // A worker killed without its summary still verified what
                // its last report said; those connections were verified,
                // then lost with it (closed, `client_process_died`).
                // (Its memory went with it: its last RSS is not added.)
                if let Some(c) = reporter.last_counters(i as u32) {
                    total.counters.add(&crate::events::Counters {
                        rss_bytes: None,
                        ..c.clone()
                    });
                }
            }
        }
    }
    if signals::stop_requested() && total.verified() < total.target {
        total.interrupted = true;
    }
    total.stops.extend(tally.lost);
    Ok(total)
}
