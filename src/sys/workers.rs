//! Worker processes. One process may hold only RLIMIT_NOFILE descriptors
//! (20,000 on hosts without CAP_SYS_RESOURCE, and it cannot be raised), so
//! `serve` and `flood` spread a large run over several copies of this very
//! binary. A [`Pool`] starts them with given arguments, reads each one's
//! stdout line by line on a thread and hands the lines to the parent over a
//! channel (JSON lines, see `events`), can restart one, and ends them all
//! when dropped: SIGTERM, a grace period, then SIGKILL. Each child also gets
//! PR_SET_PDEATHSIG so it dies with its parent even if the parent is killed
//! with SIGKILL: no worker is ever left behind.
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// How to start one worker.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// Arguments after the program name (e.g. `serve --worker-index 3 ...`).
    pub args: Vec<OsString>,
    /// Set RLIMIT_NOFILE (soft and hard) to this in the child before exec.
    pub nofile: Option<u64>,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// Append the worker's stderr to this file instead of sharing ours.
    pub stderr: Option<PathBuf>,
}

impl WorkerSpec {
    pub fn new<I, S>(args: I) -> WorkerSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        WorkerSpec {
            args: args.into_iter().map(Into::into).collect(),
            nofile: None,
            env: Vec::new(),
            stderr: None,
        }
    }
}

/// Set this process's RLIMIT_NOFILE, soft and hard, to `n`. Only a
/// setrlimit call: safe between fork and exec (`pre_exec`), which is where
/// the pool and the tests lower a child's limit.
pub fn set_nofile(n: u64) -> std::io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: n as libc::rlim_t,
        rlim_max: n as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we pass; no other effect.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// What the pool reports.
#[derive(Debug)]
pub enum WorkerMsg {
    /// One line the worker printed on stdout (without the newline). Lines
    /// that are not valid UTF-8 are passed lossily.
    Line { index: usize, line: String },
    /// The worker's stdout closed and it exited.
    Exited { index: usize, status: ExitStatus },
}

struct Slot {
    spec: WorkerSpec,
    child: Option<Child>,
    /// Bumped on every (re)start so that a stale reader's exit is ignored.
    generation: u64,
}

/// How a worker ended: by a signal (its name) or with an exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerEnd {
    Killed(String),
    Exited(i32),
}

impl WorkerEnd {
    pub fn of(status: &ExitStatus) -> WorkerEnd {
        match status.signal() {
            Some(sig) => WorkerEnd::Killed(
                Signal::try_from(sig)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|_| format!("signal {sig}")),
            ),
            None => WorkerEnd::Exited(status.code().unwrap_or(-1)),
        }
    }

    /// As the predicate of a sentence about the worker: `was killed by
    /// SIGKILL`, `exited with status 3`.
    pub fn predicate(&self) -> String {
        match self {
            WorkerEnd::Killed(_) => format!("was {self}"),
            WorkerEnd::Exited(_) => self.to_string(),
        }
    }
}

/// `killed by SIGKILL`, `exited with status 3`.
impl std::fmt::Display for WorkerEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerEnd::Killed(sig) => write!(f, "killed by {sig}"),
            WorkerEnd::Exited(code) => write!(f, "exited with status {code}"),
        }
    }
}

/// How a worker ended, in words: `killed by SIGKILL`, `exited with status 3`.
pub fn describe_status(status: &ExitStatus) -> String {
    WorkerEnd::of(status).to_string()
}

/// A set of worker processes of this binary.
pub struct Pool {
    program: PathBuf,
    slots: Vec<Slot>,
    tx: Sender<(usize, u64, ReaderMsg)>,
    rx: Receiver<(usize, u64, ReaderMsg)>,
    /// How long `shutdown` waits after SIGTERM before SIGKILL.
    pub grace: Duration,
}

enum ReaderMsg {
    Line(String),
    Eof,
}

impl Pool {
    /// A pool running the current executable.
    pub fn new() -> std::io::Result<Pool> {
        let program = std::env::current_exe().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("finding this program's path to start workers: {e}"),
            )
        })?;
        Ok(Pool::with_program(program))
    }

    /// A pool running `program` (tests use the built binary's path).
    pub fn with_program(program: PathBuf) -> Pool {
        let (tx, rx) = mpsc::channel();
        Pool {
            program,
            slots: Vec::new(),
            tx,
            rx,
            grace: Duration::from_secs(3),
        }
    }

    /// Start a worker; returns its index.
    pub fn spawn(&mut self, spec: WorkerSpec) -> std::io::Result<usize> {
        let index = self.slots.len();
        self.slots.push(Slot {
            spec,
            child: None,
            generation: 0,
        });
        self.start(index)?;
        Ok(index)
    }

    /// Start worker `index` again with the same spec (after it exited).
    pub fn restart(&mut self, index: usize) -> std::io::Result<()> {
        if let Some(mut old) = self.slots.get_mut(index).and_then(|s| s.child.take()) {
            let _ = old.kill();
            let _ = old.wait();
        }
        self.start(index)
    }

    fn start(&mut self, index: usize) -> std::io::Result<()> {
        let slot = &mut self.slots[index];
        slot.generation += 1;
        let generation = slot.generation;
        let stderr = match &slot.spec.stderr {
            Some(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(Stdio::from)
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "opening {} for worker {index}'s stderr: {e}",
                            path.display()
                        ),
                    )
                })?,
            None => Stdio::inherit(),
        };
        let mut cmd = Command::new(&self.program);
        cmd.args(&slot.spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in &slot.spec.env {
            cmd.env(k, v);
        }
        let nofile = slot.spec.nofile;
        // SAFETY: only async-signal-safe calls (prctl, setrlimit) between
        // fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                match nofile {
                    Some(n) => set_nofile(n),
                    None => Ok(()),
                }
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("starting worker {index} ({}): {e}", self.program.display()),
            )
        })?;
        let stdout = child.stdout.take();
        slot.child = Some(child);
        if let Some(stdout) = stdout {
            let tx = self.tx.clone();
            std::thread::Builder::new()
                .name(format!("worker-{index}-reader"))
                .spawn(move || {
                    let mut reader = BufReader::new(stdout);
                    let mut buf = Vec::new();
                    loop {
                        buf.clear();
                        match reader.read_until(b'\n', &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                while buf.last() == Some(&b'\n') || buf.last() == Some(&b'\r') {
                                    buf.pop();
                                }
                                let line = String::from_utf8_lossy(&buf).into_owned();
                                if tx.send((index, generation, ReaderMsg::Line(line))).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = tx.send((index, generation, ReaderMsg::Eof));
                })?;
        }
        Ok(())
    }

    /// Number of workers (started at least once).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Process id of worker `index`, if running.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.slots.get(index)?.child.as_ref().map(|c| c.id())
    }

    /// Process ids of the running workers.
    pub fn pids(&self) -> Vec<u32> {
        self.slots
            .iter()
            .filter_map(|s| s.child.as_ref().map(|c| c.id()))
            .collect()
    }

    /// Wait up to `timeout` for the next message. `None` on timeout.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<WorkerMsg> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (index, generation, msg) = match self.rx.recv_timeout(left) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None;
                }
            };
            let slot = &mut self.slots[index];
            if generation != slot.generation {
                continue; // a line or EOF from a worker that was replaced
            }
            match msg {
                ReaderMsg::Line(line) => return Some(WorkerMsg::Line { index, line }),
                ReaderMsg::Eof => {
                    let status = match slot.child.take() {
                        Some(mut c) => c.wait().unwrap_or_else(|e| {
                            // Cannot happen for a child we own; never let it
                            // pass for a clean exit (status 0).
                            eprintln!("c1m: waiting for worker {index} (pid {}): {e}", c.id());
                            ExitStatus::from_raw(255 << 8)
                        }),
                        None => continue,
                    };
                    return Some(WorkerMsg::Exited { index, status });
                }
            }
        }
    }

    /// Send a signal to worker `index`, if it is running (a worker gone
    /// meanwhile is not an error: there is nobody left to tell).
    pub fn signal(&self, index: usize, sig: Signal) {
        if let Some(pid) = self.pid(index) {
            let _ = signal::kill(Pid::from_raw(pid as i32), sig);
        }
    }

    /// Send a signal to every running worker.
    pub fn signal_all(&self, sig: Signal) {
        for index in 0..self.slots.len() {
            self.signal(index, sig);
        }
    }

    /// SIGTERM every worker, wait up to `grace`, then SIGKILL the rest; reap
    /// all. Lines still in flight are returned so the caller can count them.
    pub fn shutdown(&mut self) -> Vec<WorkerMsg> {
        self.signal_all(Signal::SIGTERM);
        let deadline = Instant::now() + self.grace;
        let mut tail = Vec::new();
        while self.slots.iter().any(|s| s.child.is_some()) && Instant::now() < deadline {
            match self.recv_timeout(Duration::from_millis(50)) {
                Some(msg) => tail.push(msg),
                None => {
                    // A worker whose stdout we never piped, or a reader that
                    // died: poll exit directly.
                    for (index, slot) in self.slots.iter_mut().enumerate() {
                        if let Some(c) = slot.child.as_mut()
                            && let Ok(Some(status)) = c.try_wait()
                        {
                            slot.child = None;
                            tail.push(WorkerMsg::Exited { index, status });
                        }
                    }
                }
            }
        }
        for slot in &mut self.slots {
            if let Some(mut c) = slot.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        tail
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if self.slots.iter().any(|s| s.child.is_some()) {
            self.grace = self.grace.min(Duration::from_secs(1));
            self.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_worker_end_reads_as_a_predicate_and_as_words() {
        use std::os::unix::process::ExitStatusExt;
        let killed = super::WorkerEnd::of(&std::process::ExitStatus::from_raw(9));
        assert_eq!(killed, super::WorkerEnd::Killed("SIGKILL".into()));
        assert_eq!(killed.to_string(), "killed by SIGKILL");
        assert_eq!(killed.predicate(), "was killed by SIGKILL");
        let exited = super::WorkerEnd::of(&std::process::ExitStatus::from_raw(3 << 8));
        assert_eq!(exited.to_string(), "exited with status 3");
        assert_eq!(exited.predicate(), "exited with status 3");
    }

    use super::*;

    #[test]
    fn pool_reads_lines_reports_exit_and_restarts() {
        let mut pool = Pool::with_program(PathBuf::from("/bin/sh"));
        let i = pool
            .spawn(WorkerSpec::new(["-c", "echo hello; echo world; exit 3"]))
            .unwrap();
        let mut lines = Vec::new();
        let status = loop {
            match pool.recv_timeout(Duration::from_secs(10)).expect("message") {
                WorkerMsg::Line { line, .. } => lines.push(line),
                WorkerMsg::Exited { index, status } => {
                    assert_eq!(index, i);
                    break status;
                }
            }
        };
        assert_eq!(lines, ["hello", "world"]);
        assert_eq!(status.code(), Some(3));
        pool.restart(i).unwrap();
        match pool.recv_timeout(Duration::from_secs(10)).expect("message") {
            WorkerMsg::Line { line, .. } => assert_eq!(line, "hello"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_signal_reaches_the_one_worker_named() {
        let mut pool = Pool::with_program(PathBuf::from("/bin/sh"));
        // Each says it is ready once its trap is set, then waits.
        for _ in 0..2 {
            pool.spawn(WorkerSpec::new([
                "-c",
                "trap 'echo usr2; exit 0' USR2; echo ready; while :; do sleep 0.05; done",
            ]))
            .unwrap();
        }
        for _ in 0..2 {
            match pool.recv_timeout(Duration::from_secs(10)).expect("ready") {
                WorkerMsg::Line { line, .. } => assert_eq!(line, "ready"),
                other => panic!("unexpected {other:?}"),
            }
        }
        pool.signal(1, Signal::SIGUSR2);
        match pool
            .recv_timeout(Duration::from_secs(10))
            .expect("the answer")
        {
            WorkerMsg::Line { index, line } => assert_eq!((index, line.as_str()), (1, "usr2")),
            other => panic!("unexpected {other:?}"),
        }
        match pool
            .recv_timeout(Duration::from_secs(10))
            .expect("its exit")
        {
            WorkerMsg::Exited { index, status } => assert_eq!((index, status.code()), (1, Some(0))),
            other => panic!("unexpected {other:?}"),
        }
        assert!(pool.pid(0).is_some(), "worker 0 was not told");
        // A worker gone: nothing to tell, and no error.
        pool.signal(1, Signal::SIGUSR2);
        pool.shutdown();
    }

    #[test]
    fn shutdown_ends_workers_that_ignore_nothing_and_sets_rlimit() {
        let mut pool = Pool::with_program(PathBuf::from("/bin/sh"));
        let mut spec = WorkerSpec::new(["-c", "ulimit -n; exec sleep 30"]);
        spec.nofile = Some(300);
        pool.spawn(spec).unwrap();
        match pool.recv_timeout(Duration::from_secs(10)).expect("line") {
            WorkerMsg::Line { line, .. } => assert_eq!(line, "300"),
            other => panic!("unexpected {other:?}"),
        }
        let pid = pool.pid(0).unwrap();
        let started = Instant::now();
        pool.shutdown();
        assert!(started.elapsed() < Duration::from_secs(3));
        // A zombie would still be listed; we reaped it, so it must be gone.
        assert!(!crate::sys::procfs::pid_listed(pid as i32));
    }
}
