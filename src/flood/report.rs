//! Everything flood shows: one [`Reporter`] takes the counters of one
//! process or of many (merged per worker), and renders them as the human
//! log (a progress bar on a terminal, otherwise a line per second), the
//! seed's exact lines (`connections: N, sockfd:FD, time_used:MS` at every
//! thousand verified connections, `connect: <strerror>` for failed
//! connects), or `events::Record` JSON lines (their flood-specific types are
//! in `wire`, with what workers send their parent). Every line goes to stdout and
//! to `--output` when given, and is flushed at once, so a killed run keeps
//! its log. The run ends with a summary table (comfy-table). In the human
//! log, alike failure lines of several worker processes are said once with
//! the workers and the count (`util::Repeats`); `-q` keeps only the
//! failures and the result line.
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use comfy_table::{ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressStyle};

use super::stats::{FailureNote, Percentiles, Phase, ShardSummary, Sink, Snapshot, percentiles};
use super::wire::{FloodLine, FloodSummary};
use crate::catalogue::FailureId;
use crate::events::{Counters, Event, FloodStart, Record, Role};
use crate::metrics::{Buckets, Endpoint, Figures};
use crate::sys::workers::WorkerEnd;
use crate::util::{Repeats, thousands};

/// A failure class as the human log groups it: id, key, call.
type FailureClass = (Option<FailureId>, String, String);

/// The log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Seed,
    Json,
}

/// Line output: stdout plus an optional file, flushed per line.
struct Out {
    file: Option<File>,
}

impl Out {
    fn line(&mut self, text: &str) {
        let mut so = std::io::stdout().lock();
        let _ = so.write_all(text.as_bytes());
        let _ = so.write_all(b"\n");
        let _ = so.flush();
        if let Some(f) = self.file.as_mut() {
            let _ = f.write_all(text.as_bytes());
            let _ = f.write_all(b"\n");
            let _ = f.flush();
        }
    }
}

/// How long flood waits at the end for a scrape of its final figures.
pub const LINGER: Duration = Duration::from_secs(5);

/// Renders a run's progress (see the module doc).
pub struct Reporter {
    format: LogFormat,
    out: Out,
    bar: Option<ProgressBar>,
    workers: BTreeMap<u32, Snapshot>,
    target: u64,
    start: Instant,
    seed_next: u64,
    seed_at: Instant,
    tick_at: Instant,
    tick_verified: u64,
    ticks: u64,
    hold_announced: bool,
    /// Verified per second over the last tick, for the progress bar.
    bar_rate: u64,
    /// Most verified connections open at once (summed over processes).
    peak: u64,
    /// How long the hold lasts, for the human log ("for 10s").
    pub hold_text: String,
    /// Processes whose counters are summed (the phase is "hold" only once
    /// every one of them has reported it).
    pub expected_workers: usize,
    /// A fleet host's name and shard ("client-2 2/3"), in front of every
    /// one-line human message (JSON lines carry them in the record).
    pub origin: Option<String>,
    /// `--metrics`: the endpoint the summed figures go to once a second.
    pub metrics: Option<Endpoint>,
    /// Processes that exited.
    exited: u64,
    /// The soft RLIMIT_NOFILE of each process (for the fd-use ratio).
    pub nofile: u64,
    /// `-q` (human log only): no headline, progress or table.
    quiet: bool,
    /// The workers' failure lines waiting to be said together.
    repeats: Repeats<FailureClass>,
}

impl Reporter {
    /// A reporter for `target` connections. `output` is opened (created or
    /// truncated) here so a bad path fails before the run starts.
    pub fn new(
        format: LogFormat,
        output: Option<&std::path::Path>,
        target: u64,
    ) -> anyhow::Result<Reporter> {
        let file =
            match output {
                Some(p) => Some(File::create(p).map_err(|e| {
                    anyhow::anyhow!("--output: cannot create '{}': {e}", p.display())
                })?),
                None => None,
            };
        let bar = if format == LogFormat::Human && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(target);
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30.cyan/blue}] {human_pos}/{human_len} {msg}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            Some(bar)
        } else {
            None
        };
        let now = Instant::now();
        Ok(Reporter {
            format,
            out: Out { file },
            bar,
            workers: BTreeMap::new(),
            target,
            start: now,
            seed_next: 1000,
            seed_at: now,
            tick_at: now,
            tick_verified: 0,
            ticks: 0,
            hold_announced: false,
            bar_rate: 0,
            peak: 0,
            hold_text: String::new(),
            expected_workers: 1,
            origin: None,
            metrics: None,
            exited: 0,
            nofile: 0,
            quiet: false,
            repeats: Repeats::default(),
        })
    }

    /// `-q`: the human log keeps the failures and the result line, and
    /// drops the headline, the progress (bar or lines) and the table.
    pub fn set_quiet(&mut self) {
        if self.format != LogFormat::Human {
            return;
        }
        self.quiet = true;
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn say(&mut self, text: &str) {
        let prefixed;
        let text = match &self.origin {
            Some(o) if self.format == LogFormat::Human && !text.contains('\n') => {
                prefixed = format!("[{o}] {text}");
                prefixed.as_str()
            }
            _ => text,
        };
        match &self.bar {
            Some(bar) => bar.suspend(|| self.out.line(text)),
            None => self.out.line(text),
        }
    }

    /// A human line with the seconds since the start in front.
    fn say_stamped(&mut self, text: &str) {
        let line = format!("[{:>7.1}s] {text}", self.start.elapsed().as_secs_f64());
        self.say(&line);
    }

    /// Write one record (`Event` or [`FloodLine`]) as a JSON line.
    fn emit<E: serde::Serialize>(&mut self, worker: Option<u32>, event: E) {
        if let Some(line) = Record::now(Role::Flood, worker, event).to_line() {
            self.say(&line);
        }
    }

    /// The run starts: its settings.
    pub fn start(&mut self, settings: &FloodStart, headline: &str) {
        match self.format {
            LogFormat::Json => {
                let settings = settings.clone();
                self.emit(
                    None,
                    FloodLine::Start {
                        settings: Box::new(settings),
                    },
                )
            }
            // Quiet: only where to scrape, if it was asked for.
            LogFormat::Human if self.quiet => {
                for line in headline.lines().filter(|l| l.starts_with("metrics at")) {
                    self.say(line);
                }
            }
            LogFormat::Human => self.say(headline),
            LogFormat::Seed => {}
        }
    }

    /// Sum of every worker's counters.
    pub fn totals(&self) -> (Counters, u64, Phase) {
        let mut c = Counters::default();
        let mut in_flight = 0;
        let mut phase = Phase::Done;
        for s in self.workers.values() {
            c.add(&s.counters);
            in_flight += s.in_flight;
            phase = match (phase, s.phase) {
                (Phase::Connect, _) | (_, Phase::Connect) => Phase::Connect,
                (Phase::Hold, _) | (_, Phase::Hold) => Phase::Hold,
                _ => Phase::Done,
            };
        }
        if self.workers.len() < self.expected_workers.max(1) {
            // a worker that has not reported yet is still connecting
            phase = Phase::Connect;
        }
        c.rss_bytes = c.rss_bytes.filter(|&rss| rss > 0);
        (c, in_flight, phase)
    }

    /// Worker process `worker` sent its summary: it closes what it held
    /// right after, so from now on it holds nothing (its last interval
    /// would otherwise count its connections as open beside the others').
    pub fn worker_done(&mut self, worker: u32) {
        if let Some(s) = self.workers.get_mut(&worker) {
            s.counters.connections = 0;
            s.in_flight = 0;
            s.phase = Phase::Done;
        }
    }

    /// New counters from process `worker` (0 for a single process).
    pub fn update(&mut self, worker: u32, snap: Snapshot) {
        let fd = snap.last_fd;
        self.workers.insert(worker, snap);
        let (c, in_flight, phase) = self.totals();
        self.peak = self.peak.max(c.connections);
        if self.format == LogFormat::Seed {
            while c.opened_total >= self.seed_next {
                let now = Instant::now();
                let ms = now.duration_since(self.seed_at).as_millis();
                self.seed_at = now;
                let line = format!(
                    "connections: {}, sockfd:{}, time_used:{}",
                    self.seed_next,
                    fd.unwrap_or(-1),
                    ms
                );
                self.say(&line);
                self.seed_next += 1000;
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_position(c.opened_total.min(self.target));
            bar.set_message(if phase == Phase::Connect {
                format!(
                    "verified, {}/s, {} in flight, {} failed",
                    thousands(self.bar_rate),
                    thousands(in_flight),
                    thousands(c.failed_total)
                )
            } else {
                format!(
                    "verified; holding {} open, {} lost",
                    thousands(c.connections),
                    thousands(c.closed_total)
                )
            });
        }
        if phase != Phase::Connect && !self.hold_announced {
            self.hold_announced = true;
            if self.format == LogFormat::Json {
                // Say it now, not at the next tick: whoever waits for every
                // client to hold (the lab, for --hold-on-signal) acts on it.
                let line = FloodLine::Interval {
                    counters: c.clone(),
                    rate: self.bar_rate as f64,
                    target: self.target,
                    in_flight,
                    phase,
                };
                self.emit(None, line);
            }
            if self.format == LogFormat::Human && !self.quiet {
                let what = if c.opened_total >= self.target {
                    "target reached"
                } else {
                    "target NOT reached (see the failures above)"
                };
                let text = format!(
                    "connect phase over, {what}: {} of {} verified, {} open, {} failed attempts; holding {}",
                    thousands(c.opened_total),
                    thousands(self.target),
                    thousands(c.connections),
                    thousands(c.failed_total),
                    self.hold_text
                );
                self.say_stamped(&text);
            }
        }
    }

    /// Failures of one class over one interval, from process `worker`.
    pub fn failure(&mut self, worker: Option<u32>, note: &FailureNote) {
        match self.format {
            LogFormat::Json => {
                if let Some(failure) = note.failure {
                    let line = FloodLine::Failure {
                        failure,
                        call: note.call.clone(),
                        errno: note.errno,
                        count: note.count,
                        detail: note.detail.clone(),
                        key: note.key.clone(),
                    };
                    self.emit(worker, line);
                }
            }
            LogFormat::Seed => {
                // The seed printed perror() after a failed connect: one line
                // per class and interval here (the count is in the summary).
                if matches!(note.call.as_str(), "connect" | "socket" | "bind")
                    && let Some(e) = note.errno
                {
                    let line = format!("{}: {}", note.call, crate::util::errno_text(e));
                    self.say(&line);
                }
            }
            LogFormat::Human => match worker {
                // Said at the next tick, with the other workers' alike.
                Some(w) => self.repeats.add(
                    (note.failure, note.key.clone(), note.call.clone()),
                    w,
                    note.count,
                    &note.detail,
                ),
                None => {
                    let line = failure_line(
                        note.failure,
                        note.count,
                        &note.key,
                        &note.call,
                        &note.detail,
                    );
                    self.say_stamped(&line);
                }
            },
        }
    }

    /// Say the workers' failure lines that waited (every one with `all`):
    /// one line per class, naming the workers that saw it.
    fn say_repeats(&mut self, all: bool) {
        for g in self.repeats.take(all) {
            let (id, key, call) = &g.key;
            // Several workers: whose specifics the line shows.
            let detail = if g.workers.len() == 1 {
                g.example.clone()
            } else {
                format!("worker {}: {}", g.example_worker, g.example)
            };
            let line = format!(
                "{}: {}",
                g.who(),
                failure_line(*id, g.count, key, call, &detail)
            );
            self.say_stamped(&line);
        }
    }

    /// Worker `index` exited (`summary`: whether it reported one first).
    pub fn worker_exit(&mut self, index: u32, end: &WorkerEnd, summary: bool) {
        self.exited += 1;
        let detail = if summary {
            format!("exited ({end})")
        } else {
            format!("exited ({end}) without a summary")
        };
        if !summary {
            self.worker_died(index, end);
        }
        match self.format {
            LogFormat::Json => self.emit(
                None,
                Event::Worker {
                    index,
                    action: "exited".into(),
                    detail,
                },
            ),
            LogFormat::Human if !summary => {
                let line = format!("worker {index} {detail}");
                self.say_stamped(&line);
            }
            _ => {}
        }
    }

    /// Worker `index` died without its summary (killed, crashed): the
    /// connections of its last report died with it. They leave the sums
    /// and are reported once as a `client_process_died` failure.
    fn worker_died(&mut self, index: u32, end: &WorkerEnd) {
        let Some(snap) = self.workers.get_mut(&index) else {
            return;
        };
        let lost = snap.counters.connections;
        snap.counters.connections = 0;
        snap.counters.closed_total += lost;
        snap.in_flight = 0;
        snap.phase = Phase::Done;
        *snap
            .counters
            .failures
            .entry(FailureId::ClientProcessDied)
            .or_default() += lost;
        let note = FailureNote {
            key: "WORKER_DIED".into(),
            failure: Some(FailureId::ClientProcessDied),
            call: "worker".into(),
            errno: None,
            count: lost,
            detail: format!(
                "flood worker {index} {} holding {} verified connections: all lost",
                end.predicate(),
                thousands(lost)
            ),
        };
        self.failure(Some(index), &note);
    }

    /// The counters of worker `index` as its last report left them: for a
    /// worker that died without its summary, what it verified (all lost,
    /// moved to closed and to `client_process_died` by `worker_died`).
    pub fn last_counters(&self, index: u32) -> Option<&Counters> {
        self.workers.get(&index).map(|s| &s.counters)
    }

    /// A line a worker printed that is not JSON (seed per-connection lines).
    pub fn raw(&mut self, line: &str) {
        if self.format == LogFormat::Seed {
            self.say(line);
        } else {
            eprintln!("{line}");
        }
    }

    /// What `--metrics` shows: the processes' figures summed.
    fn figures(&self, c: &Counters) -> Figures {
        let mut latency = Buckets::default();
        let mut rtt = Buckets::default();
        let mut attempts = 0;
        let mut fds = 0;
        for s in self.workers.values() {
            attempts += s.attempts;
            fds = fds.max(s.counters.connections + s.in_flight);
            if let Some(b) = &s.connect_latency {
                latency.add(b);
            }
            if let Some(b) = &s.echo_rtt {
                rtt.add(b);
            }
        }
        let running = (self.expected_workers as u64).saturating_sub(self.exited);
        let rss = c.rss_bytes.unwrap_or(0);
        Figures {
            counters: c.clone(),
            peak: self.peak,
            attempts: Some(attempts),
            target: Some(self.target),
            workers: [("running", running), ("exited", self.exited)]
                .into_iter()
                .collect(),
            user_bytes_per_connection: (c.connections > 0 && rss > 0)
                .then(|| rss as f64 / c.connections as f64),
            fd_use_ratio: (self.nofile > 0).then(|| fds as f64 / self.nofile as f64),
            cap_reached: None,
            connect_latency: Some(latency),
            echo_rtt: Some(rtt),
        }
    }

    /// With `--metrics`: wait (at most [`LINGER`]) until a scraper has read
    /// the final figures, so a run shorter than the scrape interval is seen.
    pub fn linger(&self) {
        if let Some(m) = &self.metrics {
            m.linger(LINGER);
        }
    }

    /// Once a second: the interval line.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let (c, in_flight, phase) = self.totals();
        if let Some(m) = &self.metrics {
            m.publish(self.figures(&c));
        }
        let dt = now.duration_since(self.tick_at).as_secs_f64().max(1e-6);
        let rate = (c.opened_total.saturating_sub(self.tick_verified)) as f64 / dt;
        self.tick_at = now;
        self.tick_verified = c.opened_total;
        self.ticks += 1;
        self.bar_rate = rate.round() as u64;
        if self.format == LogFormat::Human {
            self.say_repeats(false);
        }
        match self.format {
            LogFormat::Json => {
                let line = FloodLine::Interval {
                    counters: c,
                    rate: (rate * 10.0).round() / 10.0,
                    target: self.target,
                    in_flight,
                    phase,
                };
                self.emit(None, line);
            }
            LogFormat::Human
                if self.bar.is_none()
                    && !self.quiet
                    && (phase == Phase::Connect || self.ticks.is_multiple_of(10)) =>
            {
                let what = if phase == Phase::Connect {
                    "connecting"
                } else {
                    "holding"
                };
                let line = format!(
                    "{what}: {}/{} verified, {} open, {} in flight, {} failed, {}/s",
                    thousands(c.opened_total),
                    thousands(self.target),
                    thousands(c.connections),
                    thousands(in_flight),
                    thousands(c.failed_total),
                    thousands(rate.round() as u64)
                );
                self.say_stamped(&line);
            }
            _ => {}
        }
    }

    /// The end: the summary record or lines, then the table. Returns the
    /// reason the run failed, if it did.
    pub fn finish(&mut self, s: &ShardSummary) -> Option<String> {
        if self.format == LogFormat::Human {
            self.say_repeats(true);
        }
        if let Some(m) = &self.metrics {
            // The summary's own figures: a scrape after the end sees them.
            let (mut c, _, _) = self.totals();
            c.opened_total = s.verified();
            c.failures = s.counters.failures.clone();
            m.publish_final(self.figures(&c));
        }
        if let Some(bar) = self.bar.take() {
            bar.set_position(s.verified().min(self.target));
            bar.finish_and_clear();
        }
        let reason = s.reason();
        let lat = percentiles(&s.connect_latency_us);
        let rtt = percentiles(&s.rtt_us);
        match self.format {
            LogFormat::Json => {
                let details = Box::new(FloodSummary::new(s, self.peak));
                let counters = s.counters(None);
                self.emit(
                    None,
                    FloodLine::Summary {
                        counters,
                        elapsed_s: s.elapsed_s,
                        details,
                    },
                );
            }
            LogFormat::Human => {
                let line = match &reason {
                    // The workers begin their holds together once none is
                    // still connecting (SIGUSR2 from the parent); when one
                    // still saw fewer open at once (connections lost and
                    // others verified later, a capped server freeing
                    // slots), they were never all open together: say what
                    // was.
                    None if self.peak > 0 && self.peak < s.open() => format!(
                        "done: {} of {} connections verified, but the most seen open at once was {} (the worker processes' holds did not overlap)",
                        thousands(s.open()),
                        thousands(s.target),
                        thousands(self.peak)
                    ),
                    None => format!(
                        "done: {} of {} connections verified and held",
                        thousands(s.open()),
                        thousands(s.target)
                    ),
                    Some(r) => format!("FAILED: {r}"),
                };
                self.say(&line);
            }
            LogFormat::Seed => {}
        }
        let table = summary_table(s, &lat, &rtt, reason.as_deref());
        // Quiet: the result line above is the verdict.
        match self.format {
            _ if self.quiet => {}
            LogFormat::Human => self.say(&table),
            _ => eprintln!("{table}"),
        }
        reason
    }
}

/// One human failure line: `connection_refused x5 (ECONNREFUSED on
/// connect): <detail>`.
fn failure_line(id: Option<FailureId>, count: u64, key: &str, call: &str, detail: &str) -> String {
    let id = id.map(|f| f.as_str()).unwrap_or("failure");
    format!("{id} x{} ({key} on {call}): {detail}", thousands(count))
}

/// The final table.
pub fn summary_table(
    s: &ShardSummary,
    lat: &Percentiles,
    rtt: &Percentiles,
    reason: Option<&str>,
) -> String {
    let mut t = Table::new();
    t.set_content_arrangement(ContentArrangement::Dynamic);
    t.set_width(110);
    t.set_header(vec!["c1m flood", "value"]);
    t.add_row(vec!["target".to_string(), thousands(s.target)]);
    t.add_row(vec![
        "verified (echo checked)".to_string(),
        thousands(s.verified()),
    ]);
    t.add_row(vec!["open at the end".to_string(), thousands(s.open())]);
    t.add_row(vec!["connect attempts".to_string(), thousands(s.attempts)]);
    t.add_row(vec![
        "failed attempts".to_string(),
        thousands(s.counters.failed_total),
    ]);
    for (k, v) in &s.counters.errors {
        t.add_row(vec![format!("  by class: {k}"), thousands(*v)]);
    }
    for (k, v) in &s.counters.failures {
        t.add_row(vec![format!("  catalogue: {k}"), thousands(*v)]);
    }
    t.add_row(vec![
        "connect rate".to_string(),
        format!(
            "{}/s over {:.2} s",
            thousands(s.connect_rate().round() as u64),
            s.connect_s
        ),
    ]);
    t.add_row(vec![
        format!("connect latency {}", Percentiles::NAMES),
        lat.human(),
    ]);
    if rtt.count > 0 {
        t.add_row(vec![
            format!("message RTT {}", Percentiles::NAMES),
            format!(
                "{} ({} answered of {} sent)",
                rtt.human(),
                thousands(s.messages_answered),
                thousands(s.messages_sent)
            ),
        ]);
    }
    t.add_row(vec![
        "hold".to_string(),
        format!(
            "{:.1} s; lost {} (closed {}, reset {})",
            s.hold_s,
            thousands(s.hold_closed + s.hold_resets),
            thousands(s.hold_closed),
            thousands(s.hold_resets)
        ),
    ]);
    if let Some(r) = &s.reconnect {
        t.add_row(vec![
            "reconnects".to_string(),
            format!(
                "{} of {} lost, {} attempts ({} failed), peak {} attempts/s, backoff {}; back at the target {}",
                thousands(r.reconnects),
                thousands(r.lost),
                thousands(r.attempts),
                thousands(r.failed),
                thousands(r.peak_attempts_per_s),
                r.backoff,
                r.recovered_s
                    .map(|t| format!("{t:.2} s after the first loss"))
                    .unwrap_or_else(|| "never".into())
            ),
        ]);
    }
    t.add_row(vec!["elapsed".to_string(), format!("{:.2} s", s.elapsed_s)]);
    t.add_row(vec![
        "result".to_string(),
        match reason {
            None => "target reached and verified".to_string(),
            Some(r) => r.to_string(),
        },
    ]);
    t.to_string()
}

impl Sink for Reporter {
    fn progress(&mut self, snap: &Snapshot, tick: bool) {
        self.update(0, snap.clone());
        if tick {
            self.tick();
        }
    }

    fn failure(&mut self, note: &FailureNote) {
        Reporter::failure(self, None, note);
    }

    fn conn_line(&mut self, line: &str) {
        if self.format == LogFormat::Seed {
            self.say(line);
        }
    }
}

/// Seconds as a human duration for headlines ("forever" for none).
pub fn human_duration(d: Option<Duration>) -> String {
    match d {
        None => "until Ctrl-C".into(),
        Some(d) => format!("for {}", humantime::format_duration(d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(open: u64) -> Snapshot {
        let mut s = Snapshot::default();
        s.counters.connections = open;
        s.counters.opened_total = open;
        s
    }

    #[test]
    fn a_worker_that_sent_its_summary_holds_nothing_in_the_peak() {
        // Two worker processes: 0 reaches its 65 and ends its hold; only
        // then does 1 get its 65 (a server capped at 100 freed slots).
        let mut r = Reporter::new(LogFormat::Json, None, 130).unwrap();
        r.expected_workers = 2;
        r.update(0, snap(65));
        r.update(1, snap(35));
        r.worker_done(0);
        r.update(1, snap(65));
        // Before, worker 0's last interval still counted: a peak of 130.
        assert_eq!(r.peak, 100);
        assert_eq!(r.totals().0.connections, 65);
        assert_eq!(r.totals().0.opened_total, 130);
    }
}
