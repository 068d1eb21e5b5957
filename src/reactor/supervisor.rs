//! The parent process of `c1m serve`: opens the ports, starts the workers
//! (this binary re-executed as the hidden `c1m serve-worker`, see
//! `reactor::args`) with the listening fds inherited, waits until they
//! listen and says so, then reads their JSON lines from the pipes, sums
//! their counters into one line per interval, restarts a worker that dies
//! (and reports it), forwards SIGINT/SIGTERM, and prints the final summary.
//!
//! Elastic serve (no `--max-connections` nor worker count given) starts one
//! worker and the next when every running one holds three quarters of its
//! share (each says so at once with `--report-at`, not a stats interval
//! later). When serve holds `--max-connections` (every worker at its share,
//! none left to start) it says so once: a `cap reached` line, a `failure`
//! record of `server_connection_limit` with the figures (`wire::CapReached`)
//! and the `c1m_cap_reached` gauge. Alike failure lines of several workers
//! in one interval are said once, with the workers and the count.
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::catalogue::FailureId;
use crate::events::{Counters, Event, Record, Role, ServeStart, ServeSummary};
use crate::sys::signals;
use crate::sys::workers::{Pool, WorkerMsg, WorkerSpec};
use crate::util::{Repeats, bytes, thousands};

pub use super::LogFormat;
use super::args::ServeWorkerArgs;
use super::lost::Losses;
use super::wire::{
    self, CapReached, Received, ServeInterval, ServeLine, ServeSummaryLine, WorkerLine,
};
use super::{Plan, Wake};
use crate::metrics::endpoint::MetricsAt;
use crate::metrics::{Endpoint, Figures, Labels};

/// What `c1m serve` was asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub bind: IpAddr,
    pub port: u16,
    pub ports: u16,
    /// `None`: auto.
    pub workers: Option<u32>,
    /// Start one worker and add the next as the running ones fill (neither
    /// `--max-connections` nor a worker count was given).
    pub elastic: bool,
    pub max_connections: u64,
    pub stats_interval: Duration,
    pub json: bool,
    /// `-q`: no progress line per interval.
    pub quiet: bool,
    pub log_format: LogFormat,
    pub wake: Wake,
    /// `--metrics`: where the parent serves OpenMetrics.
    pub metrics: Option<MetricsAt>,
    /// TCP_DEFER_ACCEPT (`--defer-accept`) and TCP Fast Open
    /// (`--fast-open`) on the listeners.
    pub listen: super::listen::ListenOptions,
}

/// The latest state of one worker.
#[derive(Default, Clone)]
struct Slot {
    latest: Counters,
    baseline: Option<u64>,
    pid: u32,
    /// Restarts in the last 10 s (crash-loop guard).
    recent: Vec<Instant>,
}

struct Parent {
    opts: ServeOptions,
    plan: Plan,
    slots: Vec<Slot>,
    /// Totals of worker incarnations that ended (so restarts lose
    /// nothing): no open connections, no RSS.
    retired: Counters,
    restarts: u64,
    peak: u64,
    peak_bytes_per_conn: Option<f64>,
    peak_rss: u64,
    started: Instant,
    /// Workers that died while serving, and what they held.
    losses: Losses,
    /// The workers' soft RLIMIT_NOFILE.
    nofile: u64,
    /// `--metrics`: the endpoint the figures are published to.
    metrics: Option<Endpoint>,
    /// The listen backlog (`net.core.somaxconn`).
    backlog: i64,
    /// Elastic: a worker was started and has not said it listens yet.
    starting: bool,
    /// Elastic: starting a worker failed; no more are tried.
    grow_failed: bool,
    /// Seconds from the start to the cap, once it was reached (and said).
    cap_reached_s: Option<f64>,
    /// Human mode: the workers' failure lines of this interval, by class.
    failures: Repeats<FailureId>,
}

fn out_line(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
}

fn emit<E: serde::Serialize>(worker: Option<u32>, event: E) {
    let _ = Record::now(Role::Serve, worker, event).emit(&mut io::stdout().lock());
}

impl Parent {
    fn total(&self) -> Counters {
        let mut c = self.retired.clone();
        for s in &self.slots {
            c.add(&s.latest);
        }
        c.rss_bytes = Some(c.rss_bytes.unwrap_or(0));
        c
    }

    /// User memory per connection: RSS of all workers minus their empty
    /// baselines, over the connections they hold.
    fn bytes_per_conn(&self) -> Option<f64> {
        let mut grown: i64 = 0;
        let mut conns = 0u64;
        for s in &self.slots {
            let (Some(base), Some(rss)) = (s.baseline, s.latest.rss_bytes) else {
                continue;
            };
            grown += rss as i64 - base as i64;
            conns += s.latest.connections;
        }
        (conns > 0).then(|| grown.max(0) as f64 / conns as f64)
    }

    fn min_max(&self) -> (u64, u64) {
        let it = self.slots.iter().map(|s| s.latest.connections);
        (it.clone().min().unwrap_or(0), it.max().unwrap_or(0))
    }

    /// Worker `i` died while serving (killed, crashed, exited): what it
    /// held is lost, not closed (see `lost`), and said at once.
    fn died(&mut self, i: usize, status: &ExitStatus) {
        let last = std::mem::take(&mut self.slots[i].latest);
        let (death, kept) = self
            .losses
            .record(i as u32, self.slots[i].pid, status, last);
        self.retired.add(&kept);
        self.slots[i].baseline = None;
        if self.opts.json {
            emit(None, death.event());
        } else {
            out_line(&death.sentence());
        }
    }

    /// Take in one line from worker `i`. Returns true for its Start record.
    fn on_line(&mut self, i: usize, line: &str) -> bool {
        let rec = match wire::parse_worker_line(line) {
            Received::Line(rec) => rec,
            Received::Raw => {
                // Seed-format progress lines (and anything else a worker
                // prints) go through as they are.
                if !self.opts.json || self.opts.log_format == LogFormat::Seed {
                    out_line(line);
                }
                return false;
            }
        };
        match rec.event {
            WorkerLine::Start { settings } => {
                self.slots[i].baseline = Some(settings.rss_baseline);
                self.slots[i].pid = rec.pid;
                return true;
            }
            WorkerLine::Interval(interval) => {
                self.slots[i].latest = interval.counters;
            }
            WorkerLine::Failure(f) => {
                if self.opts.json {
                    // As the worker wrote it: its pid and index stay.
                    out_line(line.trim());
                } else {
                    // Said at the next tick, with the other workers' alike.
                    self.failures.add(f.failure, i as u32, f.count, &f.detail);
                }
            }
        }
        false
    }

    /// What `--metrics` shows: the workers' figures summed.
    fn figures(&self, c: &Counters, per: Option<f64>) -> Figures {
        let mut counters = c.clone();
        counters.rss_bytes =
            Some(c.rss_bytes.unwrap_or(0) + crate::sys::procfs::rss_bytes().unwrap_or(0));
        let fds = self
            .slots
            .iter()
            .map(|s| s.latest.connections + u64::from(self.opts.ports))
            .max()
            .unwrap_or(0);
        Figures {
            counters,
            peak: self.peak,
            attempts: None,
            target: Some(self.opts.max_connections),
            workers: [("running", self.slots.len() as u64)].into_iter().collect(),
            user_bytes_per_connection: per,
            fd_use_ratio: (self.nofile > 0).then(|| fds as f64 / self.nofile as f64),
            cap_reached: Some(self.at_cap(c)),
            connect_latency: None,
            echo_rtt: None,
        }
    }

    /// Serve holds `--max-connections`: every worker at its exact share
    /// (the shares add up to it, so only all running can get there).
    fn at_cap(&self, c: &Counters) -> bool {
        c.connections >= self.opts.max_connections
    }

    /// Say the cap once: the line or the record, with the figures.
    fn say_cap(&mut self, connections: u64) {
        self.cap_reached_s = Some(self.started.elapsed().as_secs_f64());
        let rec = CapReached::new(
            self.opts.max_connections,
            connections,
            self.slots.len() as u32,
            self.plan.cap,
            self.backlog,
            self.opts.elastic,
        );
        if self.opts.json {
            emit(None, ServeLine::Failure(rec));
        } else {
            out_line(&rec.detail);
        }
    }

    /// Say the failure lines that waited (all of them with `all`).
    fn say_failures(&mut self, all: bool) {
        for g in self.failures.take(all) {
            let line = if g.workers.len() == 1 {
                format!("{}: {}: {}", g.who(), g.key, g.example)
            } else {
                format!(
                    "{}: {} ({} in all); worker {}: {}",
                    g.who(),
                    g.key,
                    thousands(g.count),
                    g.example_worker,
                    g.example
                )
            };
            out_line(&line);
        }
    }

    /// Elastic serve: start the next worker once every running one holds
    /// three quarters of its share and none is still starting.
    fn grow(&mut self, pool: &mut Pool, fds: &[i32]) {
        let running = self.slots.len() as u32;
        if !self.opts.elastic || self.starting || self.grow_failed || running >= self.plan.workers {
            return;
        }
        let near = self
            .slots
            .iter()
            .enumerate()
            .all(|(i, s)| s.latest.connections >= self.plan.grow_mark(i as u32));
        if !near {
            return;
        }
        let held: u64 = self.slots.iter().map(|s| s.latest.connections).sum();
        let (action, detail) = match pool.spawn(worker_spec(&self.opts, &self.plan, running, fds)) {
            Ok(index) => {
                self.slots.push(Slot::default());
                self.starting = true;
                (
                    "started",
                    format!(
                        "worker {index} started (pid {}): the {running} running held {} connections, near their share of {} each; up to {} workers",
                        pool.pid(index).unwrap_or(0),
                        thousands(held),
                        thousands(self.plan.cap),
                        self.plan.workers
                    ),
                )
            }
            Err(e) => {
                self.grow_failed = true;
                (
                    "start_failed",
                    format!(
                        "starting worker {running} failed ({e}); serve goes on with {running} worker(s), at most {} connections",
                        thousands((0..running).map(|i| self.plan.cap_of(i)).sum())
                    ),
                )
            }
        };
        if self.opts.json {
            emit(
                None,
                Event::Worker {
                    index: running,
                    action: action.into(),
                    detail,
                },
            );
        } else if !self.opts.quiet || action != "started" {
            out_line(&detail);
        }
    }

    fn tick(&mut self, rate: f64) {
        let c = self.total();
        self.peak = self.peak.max(c.connections);
        if !self.opts.json {
            self.say_failures(false);
        }
        if self.cap_reached_s.is_none() && self.at_cap(&c) {
            self.say_cap(c.connections);
        }
        self.peak_rss = self.peak_rss.max(c.rss_bytes.unwrap_or(0));
        let per = self.bytes_per_conn();
        if c.connections >= self.peak && per.is_some() {
            self.peak_bytes_per_conn = per;
        }
        if let Some(m) = &self.metrics {
            m.publish(self.figures(&c, per));
        }
        if self.opts.json {
            emit(
                None,
                ServeLine::Interval(ServeInterval {
                    counters: c,
                    rate,
                    workers: self.slots.len() as u32,
                }),
            );
            return;
        }
        if self.opts.log_format == LogFormat::Seed || self.opts.quiet {
            return;
        }
        let (min, max) = self.min_max();
        let errors: Vec<String> = c.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let per = per.map(|b| format!(" ({b:.1} B/conn)")).unwrap_or_default();
        out_line(&format!(
            "connections {} (+{:.0}/s) closed {} in {} out {} rss {}{} workers {} min {} max {}{}{}",
            thousands(c.connections),
            rate,
            thousands(c.closed_total),
            bytes(c.bytes_in),
            bytes(c.bytes_out),
            bytes(c.rss_bytes.unwrap_or(0)),
            per,
            self.slots.len(),
            thousands(min),
            thousands(max),
            if errors.is_empty() {
                String::new()
            } else {
                format!(" errors {}", errors.join(" "))
            },
            if self.at_cap(&c) { " (at its cap)" } else { "" }
        ));
    }

    fn summary(&mut self) {
        if !self.opts.json {
            self.say_failures(true);
        }
        let c = self.total();
        self.peak = self.peak.max(c.connections);
        let elapsed = self.started.elapsed().as_secs_f64();
        let (min, max) = self.min_max();
        let details = ServeSummary {
            peak_connections: self.peak,
            workers: self.slots.len() as u64,
            restarts: self.restarts,
            per_worker_min: min,
            per_worker_max: max,
            peak_rss_bytes: self.peak_rss,
            user_bytes_per_connection: self.peak_bytes_per_conn,
            max_connections: self.opts.max_connections,
            per_worker_cap: self.plan.cap,
            lost_connections: self.losses.lost(),
            worker_deaths: self.losses.deaths.clone(),
            cap_reached_s: self.cap_reached_s,
        };
        if self.opts.json {
            emit(
                None,
                ServeLine::Summary(ServeSummaryLine {
                    counters: c,
                    elapsed_s: elapsed,
                    details,
                }),
            );
            return;
        }
        let mut t = comfy_table::Table::new();
        t.set_header(vec!["c1m serve", "value"]);
        let rows: Vec<(&str, String)> = vec![
            ("elapsed", format!("{elapsed:.1} s")),
            (
                "workers (restarts)",
                format!("{} ({})", self.slots.len(), self.restarts),
            ),
            ("peak connections", thousands(self.peak)),
            (
                "cap (--max-connections)",
                match self.cap_reached_s {
                    Some(t) => format!(
                        "{} reached at {t:.1} s",
                        thousands(self.opts.max_connections)
                    ),
                    None => format!("{} not reached", thousands(self.opts.max_connections)),
                },
            ),
            ("accepted", thousands(c.opened_total)),
            ("closed", thousands(c.closed_total)),
            ("lost (workers died)", thousands(self.losses.lost())),
            ("accept failures", thousands(c.failed_total)),
            (
                "bytes in / out",
                format!("{} / {}", bytes(c.bytes_in), bytes(c.bytes_out)),
            ),
            ("peak RSS (workers)", bytes(self.peak_rss)),
            (
                "user memory per connection",
                self.peak_bytes_per_conn
                    .map(|b| format!("{b:.1} B (at peak)"))
                    .unwrap_or_else(|| "n/a (no connections)".into()),
            ),
        ];
        for (k, v) in rows {
            t.add_row(vec![k.to_string(), v]);
        }
        for d in &self.losses.deaths {
            t.add_row(vec!["worker died".to_string(), d.sentence()]);
        }
        for (k, v) in &c.errors {
            t.add_row(vec![format!("errors {k}"), thousands(*v)]);
        }
        for (k, v) in &c.failures {
            t.add_row(vec![format!("failure {k}"), thousands(*v)]);
        }
        out_line(&t.to_string());
    }
}

/// The death of one worker, within [`DEATH_WINDOW`] of the first counted,
/// at which it is not restarted again (the README's "5 times in 10 s").
const GIVE_UP_AT: usize = 5;
const DEATH_WINDOW: Duration = Duration::from_secs(10);

/// Count a worker's death at `now` in `recent` (its deaths still inside the
/// window): true when this one is the [`GIVE_UP_AT`]-th.
fn gives_up(recent: &mut Vec<Instant>, now: Instant) -> bool {
    recent.retain(|t| now.duration_since(*t) < DEATH_WINDOW);
    recent.push(now);
    recent.len() >= GIVE_UP_AT
}

fn worker_spec(opts: &ServeOptions, plan: &Plan, index: u32, fds: &[i32]) -> WorkerSpec {
    let args = ServeWorkerArgs {
        index,
        listen_fds: fds.to_vec(),
        cap: plan.cap_of(index),
        stats_interval: opts.stats_interval,
        seed_log: opts.log_format == LogFormat::Seed,
        wake: opts.wake,
        // Only elastic serve needs to hear at once that a worker fills.
        report_at: opts.elastic.then(|| plan.grow_mark(index)),
    };
    WorkerSpec::new(args.command_line())
}

/// Run the parent until SIGINT/SIGTERM. Returns the process exit status.
///
/// Long because it is one sequence over one pool and one set of listeners
/// (plan, open, start, wait for ready, the message loop with its restarts,
/// the shutdown); each step's own work is in `Parent`'s methods.
pub fn run(opts: ServeOptions) -> anyhow::Result<u8> {
    signals::install().context("installing signal handlers")?;
    let nofile = crate::sys::limits::raise_nofile().soft;
    let plan = super::plan(opts.max_connections, nofile, opts.ports, opts.workers)
        .map_err(anyhow::Error::msg)?;
    let last = opts.port.checked_add(opts.ports - 1).with_context(|| {
        format!(
            "--port {} with --ports {} goes beyond 65535",
            opts.port, opts.ports
        )
    })?;
    if plan.cap > plan.usable_fds {
        let detail = format!(
            "each worker may hold {} connections but its fd limit ({nofile}) leaves room for about {}; expect fd_limit (EMFILE) failures",
            thousands(plan.cap),
            thousands(plan.usable_fds)
        );
        // With --json, a record like every other line (not dropped).
        if opts.json {
            emit(
                None,
                Event::Warning {
                    failure: FailureId::FdLimit,
                    detail,
                },
            );
        } else {
            eprintln!("c1m serve: warning: {detail}");
        }
    }
    let listeners = super::listen::open(opts.bind, opts.port, opts.ports, opts.listen)?;
    // Before any worker: a taken metrics port stops the run here.
    let metrics = match opts.metrics {
        Some(at) => Some(at.start(Labels::new(Role::Serve, None, None))?),
        None => None,
    };
    let metrics_url = metrics.as_ref().map(Endpoint::url);
    let fds: Vec<i32> = listeners.iter().map(|s| s.as_raw_fd()).collect();
    let mut pool = Pool::new().context("preparing worker processes")?;
    let first = if opts.elastic { 1 } else { plan.workers };
    let backlog: i64 = super::listen::somaxconn().into();
    let mut parent = Parent {
        opts: opts.clone(),
        plan,
        slots: vec![Slot::default(); first as usize],
        retired: Counters::default(),
        restarts: 0,
        peak: 0,
        peak_bytes_per_conn: None,
        peak_rss: 0,
        started: Instant::now(),
        losses: Losses::default(),
        nofile,
        metrics,
        backlog,
        starting: false,
        grow_failed: false,
        cap_reached_s: None,
        failures: Repeats::default(),
    };
    for i in 0..first {
        pool.spawn(worker_spec(&opts, &plan, i, &fds))
            .with_context(|| format!("starting worker {i}"))?;
    }
    // Ready: every worker has registered the listeners.
    let mut ready = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready < first {
        if signals::stop_requested() {
            pool.shutdown();
            return Ok(0);
        }
        if Instant::now() > deadline {
            bail!("only {ready} of {first} workers started within 30 s");
        }
        match pool.recv_timeout(Duration::from_millis(100)) {
            Some(WorkerMsg::Line { index, line }) if parent.on_line(index, &line) => {
                ready += 1;
            }
            Some(WorkerMsg::Line { .. }) => {}
            Some(WorkerMsg::Exited { index, status }) => {
                bail!(
                    "worker {index} {} before it was ready (see its error above)",
                    crate::sys::workers::describe_status(&status)
                );
            }
            None => {}
        }
    }
    let bind = opts.bind.to_string();
    if opts.json {
        emit(
            None,
            ServeLine::Start {
                settings: ServeStart {
                    bind: bind.clone(),
                    ports: vec![opts.port, last],
                    workers: first,
                    max_workers: plan.workers,
                    elastic: opts.elastic,
                    max_connections: opts.max_connections,
                    per_worker_cap: plan.cap,
                    nofile,
                    backlog,
                    wake: opts.wake.as_str().into(),
                    worker_pids: pool.pids(),
                    metrics: metrics_url.clone(),
                },
            },
        );
    } else {
        let workers = if opts.elastic {
            format!(
                "1 worker, more as they fill (up to {}, {} connections each)",
                plan.workers,
                thousands(plan.cap)
            )
        } else {
            format!("{} workers", plan.workers)
        };
        out_line(&format!(
            "listening on {bind}:{}-{last} ({} ports, {workers}; cap {} connections)",
            opts.port,
            opts.ports,
            thousands(opts.max_connections)
        ));
        if let Some(url) = &metrics_url {
            out_line(&format!("metrics at {url}"));
        }
    }
    // Tick a little after the workers do, so that their lines for this
    // interval are in when the sum is printed.
    let lag = (opts.stats_interval / 5).min(Duration::from_millis(100));
    let mut next_tick = Instant::now() + opts.stats_interval + lag;
    let mut last_tick = Instant::now();
    let mut last_opened = 0u64;
    let mut status = 0u8;
    while !signals::stop_requested() {
        let wait = next_tick
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        match pool.recv_timeout(wait) {
            Some(WorkerMsg::Line { index, line }) => {
                if parent.on_line(index, &line) {
                    parent.starting = false;
                }
                parent.grow(&mut pool, &fds);
            }
            Some(WorkerMsg::Exited { index, status: st }) => {
                if st.success() && !signals::stop_requested() {
                    // A worker exits 0 only on SIGINT/SIGTERM; Ctrl-C reaches
                    // the whole process group, and ours may be a moment late.
                    std::thread::sleep(Duration::from_millis(100));
                }
                if signals::stop_requested() {
                    // Stopping anyway; but a worker killed just before
                    // still lost what it held.
                    if super::lost::died_while_serving(&st) {
                        parent.died(index, &st);
                    }
                    break;
                }
                parent.died(index, &st);
                let slot = &mut parent.slots[index];
                let how = crate::sys::workers::describe_status(&st);
                if gives_up(&mut slot.recent, Instant::now()) {
                    let detail = format!(
                        "worker {index} (pid {}) {how}; it died 5 times within 10 s, giving up",
                        slot.pid
                    );
                    if opts.json {
                        emit(
                            None,
                            Event::Worker {
                                index: index as u32,
                                action: "gave_up".into(),
                                detail: detail.clone(),
                            },
                        );
                    } else {
                        out_line(&detail);
                    }
                    status = 1;
                    break;
                }
                parent.restarts += 1;
                let old_pid = slot.pid;
                let res = pool.restart(index);
                let detail = match &res {
                    Ok(()) => format!(
                        "worker {index} (pid {old_pid}) {how}; restarted as pid {}",
                        pool.pid(index).unwrap_or(0)
                    ),
                    Err(e) => format!("worker {index} (pid {old_pid}) {how}; restart failed: {e}"),
                };
                if opts.json {
                    emit(
                        None,
                        Event::Worker {
                            index: index as u32,
                            action: if res.is_ok() {
                                "restarted"
                            } else {
                                "restart_failed"
                            }
                            .into(),
                            detail,
                        },
                    );
                } else {
                    out_line(&detail);
                }
                if res.is_err() {
                    status = 1;
                    break;
                }
            }
            None => {}
        }
        let now = Instant::now();
        if now >= next_tick {
            let opened = parent.total().opened_total;
            let rate = opened.saturating_sub(last_opened) as f64
                / now.duration_since(last_tick).as_secs_f64().max(1e-3);
            last_opened = opened;
            last_tick = now;
            next_tick = now + opts.stats_interval;
            parent.tick(rate);
        }
    }
    // Stop: workers get SIGTERM, print their last counters, exit.
    for msg in pool.shutdown() {
        match msg {
            WorkerMsg::Line { index, line } => {
                parent.on_line(index, &line);
            }
            // Killed (not stopped by our SIGTERM) while we were stopping.
            WorkerMsg::Exited { index, status } if super::lost::died_while_serving(&status) => {
                parent.died(index, &status);
            }
            WorkerMsg::Exited { .. } => {}
        }
    }
    drop(listeners);
    parent.summary();
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_gives_up_at_the_fifth_death_in_ten_seconds() {
        let t0 = Instant::now();
        let mut recent = Vec::new();
        let deaths: Vec<bool> = (0..5)
            .map(|i| gives_up(&mut recent, t0 + Duration::from_secs(i)))
            .collect();
        assert_eq!(deaths, [false, false, false, false, true]);
        // Deaths older than the window no longer count.
        let mut recent = Vec::new();
        for i in 0..4 {
            assert!(!gives_up(&mut recent, t0 + Duration::from_secs(i)));
        }
        assert!(!gives_up(&mut recent, t0 + Duration::from_secs(11)));
    }
}
