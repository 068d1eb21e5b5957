//! The failure zoo: `c1m lab --scenario NAME` provokes one failure of the
//! catalogue for real, with real sockets and real kernel limits, and checks
//! that `analyze` names it from the logs and counters the run left. Each
//! scenario takes seconds; each is also an integration test, so `analyze`
//! is tested against the kernel's real behaviour, not only hand-written
//! fixtures.
//!
//! Scenarios that change a sysctl (`ports`) or read counters (`backlog`)
//! need the private network namespace the lab enters by default; without it
//! they are skipped with the reason, never run against the host.
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::catalogue::FailureId;
use crate::events::{Event, Record};
use crate::flood::Procs as ProcCount;
use crate::flood::args::{FloodArgs, Hold};
use crate::reactor::args::ServeArgs;
use crate::sys::probe;
use crate::sys::workers::{Pool, WorkerMsg, WorkerSpec};
use crate::sys::{netns, signals};

/// The failures the lab can provoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// A server worker under a lowered fd limit, flooded past it.
    FdLimit,
    /// One source address, one port, a narrow ephemeral range.
    Ports,
    /// A port with no listener.
    Refused,
    /// A listener that never accepts, with a tiny backlog.
    Backlog,
    /// A client that stops at a number written into its code, like the
    /// seed's 340,000, scaled down.
    Cap,
}

impl Scenario {
    pub fn all() -> [Scenario; 5] {
        [
            Scenario::FdLimit,
            Scenario::Ports,
            Scenario::Refused,
            Scenario::Backlog,
            Scenario::Cap,
        ]
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::FdLimit => "fd-limit",
            Scenario::Ports => "ports",
            Scenario::Refused => "refused",
            Scenario::Backlog => "backlog",
            Scenario::Cap => "cap",
        }
    }

    /// The finding analyze must report.
    pub fn expected(self) -> FailureId {
        match self {
            Scenario::FdLimit => FailureId::FdLimit,
            Scenario::Ports => FailureId::EphemeralPortsExhausted,
            Scenario::Refused => FailureId::ConnectionRefused,
            Scenario::Backlog => FailureId::AcceptQueueOverflow,
            Scenario::Cap => FailureId::ClientCapReached,
        }
    }

    fn needs_private_netns(self) -> bool {
        matches!(self, Scenario::Ports | Scenario::Backlog)
    }
}

/// What a scenario did and what analyze said.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: Scenario,
    pub expected: FailureId,
    /// Set when the scenario could not run here, with the reason.
    pub skipped: Option<String>,
    /// Every finding id analyze reported, most important first.
    pub found: Vec<FailureId>,
    /// Whether the expected id was among them.
    pub named: bool,
    /// Where the logs and the analysis are.
    pub dir: String,
    /// What was done, in a sentence or two.
    pub story: String,
    /// analyze's human report.
    #[serde(skip)]
    pub analysis: String,
}

/// Run one scenario, writing its logs under `dir`. With `private_netns`
/// the scenario gets a fresh network namespace of its own (on a thread of
/// its own: the namespace is per thread), so a sysctl one scenario sets or
/// the TIME-WAIT sockets it leaves never reach the next.
pub fn run(scenario: Scenario, dir: &Path, private_netns: bool) -> Result<Outcome> {
    let dir = dir.to_path_buf();
    std::thread::Builder::new()
        .name(format!("scenario-{}", scenario.name()))
        .spawn(move || {
            if private_netns {
                netns::enter_private()?;
            }
            run_here(scenario, &dir, private_netns)
        })
        .context("starting the scenario thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the {} scenario panicked", scenario.name()))?
}

fn run_here(scenario: Scenario, dir: &Path, private_netns: bool) -> Result<Outcome> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut outcome = Outcome {
        scenario,
        expected: scenario.expected(),
        skipped: None,
        found: Vec::new(),
        named: false,
        dir: dir.display().to_string(),
        story: String::new(),
        analysis: String::new(),
    };
    if scenario.needs_private_netns() && !private_netns {
        outcome.skipped = Some(format!(
            "the {} scenario changes net.* settings or reads TCP counters, which it does only inside a private network namespace, and none could be made here (needs root)",
            scenario.name()
        ));
        return Ok(outcome);
    }
    let base = free_port_base(8888, 4)?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let counters_before = probe::counters().ok();
    outcome.story = match scenario {
        Scenario::FdLimit => fd_limit(dir, base)?,
        Scenario::Ports => ports(dir, base)?,
        Scenario::Refused => refused(dir, base)?,
        Scenario::Backlog => backlog(dir, base)?,
        Scenario::Cap => cap(dir, base)?,
    };
    std::fs::write(logs.join("sysctl.txt"), probe::sysctl_text())
        .with_context(|| format!("writing {}/sysctl.txt", logs.display()))?;
    if let (Some(before), Ok(after)) = (counters_before, probe::counters()) {
        std::fs::write(
            logs.join("counters.nstat"),
            probe::nstat_snapshots(&before, &after, &crate::catalogue::evidence_counters()),
        )
        .with_context(|| format!("writing {}/counters.nstat", logs.display()))?;
    }
    let report = crate::diagnosis::report::analyze(&[logs]);
    outcome.found = report.findings.iter().map(|f| f.id).collect();
    outcome.named = outcome.found.contains(&scenario.expected());
    outcome.analysis = report.render();
    std::fs::write(dir.join("analysis.txt"), &outcome.analysis)
        .with_context(|| format!("writing {}/analysis.txt", dir.display()))?;
    std::fs::write(dir.join("analysis.json"), report.to_json())
        .with_context(|| format!("writing {}/analysis.json", dir.display()))?;
    Ok(outcome)
}

/// Processes of one scenario, each line teed into `<name>.log`.
struct Procs {
    pool: Pool,
    logs: Vec<BufWriter<File>>,
    exits: Vec<Option<i32>>,
    starts: Vec<bool>,
    dir: PathBuf,
}

impl Procs {
    fn new(dir: &Path) -> Result<Procs> {
        Ok(Procs {
            pool: Pool::new()?,
            logs: Vec::new(),
            exits: Vec::new(),
            starts: Vec::new(),
            dir: dir.to_path_buf(),
        })
    }

    fn spawn(&mut self, name: &str, args: Vec<OsString>, nofile: Option<u64>) -> Result<usize> {
        let mut spec = WorkerSpec::new(args);
        spec.nofile = nofile;
        let stderr_dir = self.dir.join("stderr");
        std::fs::create_dir_all(&stderr_dir)
            .with_context(|| format!("creating {}", stderr_dir.display()))?;
        spec.stderr = Some(stderr_dir.join(format!("{name}.txt")));
        let i = self
            .pool
            .spawn(spec)
            .with_context(|| format!("starting {name}"))?;
        let path = self.dir.join("logs").join(format!("{name}.log"));
        self.logs.push(BufWriter::new(
            File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        ));
        self.exits.push(None);
        self.starts.push(false);
        Ok(i)
    }

    /// Pump lines for up to `timeout` or until `done` says so.
    fn pump(&mut self, timeout: Duration, done: impl Fn(&Procs) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if done(self) {
                return true;
            }
            if signals::stop_requested() {
                return false;
            }
            match self.pool.recv_timeout(Duration::from_millis(50)) {
                Some(WorkerMsg::Line { index, line }) => {
                    let _ = writeln!(self.logs[index], "{line}");
                    if let Some(Record {
                        event: Event::Start { .. },
                        ..
                    }) = Record::parse(&line)
                    {
                        self.starts[index] = true;
                    }
                }
                Some(WorkerMsg::Exited { index, status }) => {
                    self.exits[index] = Some(status.code().unwrap_or(-1));
                }
                None => {}
            }
        }
        done(self)
    }

    fn wait_ready(&mut self, index: usize) -> Result<()> {
        if !self.pump(Duration::from_secs(30), |p| {
            p.starts[index] || p.exits[index].is_some()
        }) || !self.starts[index]
        {
            bail!(
                "process {index} did not start listening (see the logs in {})",
                self.dir.display()
            );
        }
        Ok(())
    }

    fn wait_exit(&mut self, index: usize, timeout: Duration) -> Option<i32> {
        self.pump(timeout, |p| p.exits[index].is_some());
        self.exits[index]
    }

    fn finish(mut self) {
        for msg in self.pool.shutdown() {
            if let WorkerMsg::Line { index, line } = msg {
                let _ = writeln!(self.logs[index], "{line}");
            }
        }
        for log in &mut self.logs {
            let _ = log.flush();
        }
    }
}

/// `c1m serve` on 127.0.0.1, ports `base..base+ports-1`, JSON lines, one
/// worker that holds at most `max_connections`.
fn serve_args(base: u16, ports: u16, max_connections: u64) -> Result<ServeArgs> {
    let mut a = ServeArgs::new(Ipv4Addr::LOCALHOST.into(), base, ports)
        .context("the serve command line")?;
    a.procs = ProcCount::N(1);
    a.max_connections = Some(max_connections);
    a.json = true;
    Ok(a)
}

/// What every scenario's client is told besides its own settings:
/// `connections` to 127.0.0.1:`base`, one process, a 2 s connect timeout,
/// a 1 s hold, JSON lines.
fn client_args(base: u16, connections: u64) -> Result<FloodArgs> {
    let mut a =
        FloodArgs::new("127.0.0.1", base, 1, connections).context("the flood command line")?;
    a.procs = ProcCount::N(1);
    a.connect_timeout = Duration::from_secs(2);
    a.hold = Hold(Some(Duration::from_secs(1)));
    a.json = true;
    Ok(a)
}

/// Run one `c1m flood` client (`client-1`) until it exits or `timeout`
/// passes.
fn run_client(p: &mut Procs, client: &FloodArgs, timeout: Duration) -> Result<()> {
    let cli = p.spawn("client-1", client.command_line(), None)?;
    p.wait_exit(cli, timeout);
    Ok(())
}

/// Start `c1m serve` (with RLIMIT_NOFILE `nofile`) and wait until it
/// listens.
fn start_server(p: &mut Procs, server: &ServeArgs, nofile: Option<u64>) -> Result<()> {
    let srv = p.spawn("serve", server.command_line(), nofile)?;
    p.wait_ready(srv)
}

/// A server worker may hold 128 descriptors; 400 clients come.
fn fd_limit(dir: &Path, base: u16) -> Result<String> {
    let mut p = Procs::new(dir)?;
    let mut server = serve_args(base, 1, 1000)?;
    server.stats_interval = Duration::from_millis(500);
    start_server(&mut p, &server, Some(128))?;
    run_client(&mut p, &client_args(base, 400)?, Duration::from_secs(30))?;
    // Let the server report its interval with the EMFILE count.
    p.pump(Duration::from_millis(700), |_| false);
    p.finish();
    Ok(
        "c1m serve ran one worker with RLIMIT_NOFILE 128; c1m flood opened 400 connections to it"
            .into(),
    )
}

/// A 200-port ephemeral range, one source, one destination port.
fn ports(dir: &Path, base: u16) -> Result<String> {
    netns::write_sysctl("net.ipv4.ip_local_port_range", "40000 40199")?;
    let mut p = Procs::new(dir)?;
    start_server(&mut p, &serve_args(base, 1, 2000)?, None)?;
    run_client(&mut p, &client_args(base, 500)?, Duration::from_secs(30))?;
    p.finish();
    Ok("in a private network namespace with ip_local_port_range 40000 40199, c1m flood opened 500 connections from one source to one port".into())
}

/// Nothing listens on the port.
fn refused(dir: &Path, base: u16) -> Result<String> {
    let mut p = Procs::new(dir)?;
    run_client(&mut p, &client_args(base, 100)?, Duration::from_secs(30))?;
    p.finish();
    Ok(format!(
        "c1m flood opened 100 connections to 127.0.0.1:{base}, where nothing listens"
    ))
}

/// A listener with backlog 1 that never accepts.
fn backlog(dir: &Path, base: u16) -> Result<String> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .context("creating the listener")?;
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, base);
    sock.bind(&addr.into())
        .with_context(|| format!("binding {addr}"))?;
    sock.listen(1)
        .with_context(|| format!("listening on {addr}"))?;
    let mut p = Procs::new(dir)?;
    let mut client = client_args(base, 100)?;
    client.window = 100;
    run_client(&mut p, &client, Duration::from_secs(40))?;
    p.finish();
    drop(sock);
    Ok(format!(
        "a listener on {addr} with backlog 1 never accepted; c1m flood opened 100 connections with a 2 s connect timeout"
    ))
}

/// The seed client's cap, scaled down from 340,000 to 3,400.
pub const SCALED_CAP: u64 = 3_400;

/// A client that works like the seed's (blocking connects cycling over the
/// ports, a progress line per 1000 in the seed's format) and stops creating
/// connections at a number in its code, printing the same line with
/// `sockfd:0` from then on, as the seed's did.
fn cap(dir: &Path, base: u16) -> Result<String> {
    let ports: u16 = 4;
    let mut p = Procs::new(dir)?;
    start_server(&mut p, &serve_args(base, ports, 10_000)?, None)?;
    let path = dir.join("logs").join("client-1.log");

    let mut log = BufWriter::new(
        File::create(&path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut held = Vec::with_capacity(SCALED_CAP as usize);
    let mut last = Instant::now();
    for k in 0..SCALED_CAP {
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, base + (k % u64::from(ports)) as u16);
        let mut conn = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        conn.write_all(format!("Hello Server: client --> {k}\n").as_bytes())
            .with_context(|| format!("sending on connection {k}"))?;
        held.push(conn);
        // The seed prints its 0-based counter: 999, 1999, ...
        if k % 1000 == 999 {
            use std::os::fd::AsRawFd;
            let fd = held.last().map(|c| c.as_raw_fd()).unwrap_or(0);
            writeln!(
                log,
                "connections: {k}, sockfd:{fd}, time_used:{}",
                last.elapsed().as_millis()
            )?;

            last = Instant::now();
        }
    }
    // At the cap the seed's loop keeps printing with sockfd 0.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(100));
        writeln!(
            log,
            "connections: {SCALED_CAP}, sockfd:0, time_used:{}",
            last.elapsed().as_millis()
        )?;
        last = Instant::now();
    }
    log.flush()?;
    drop(held);
    p.finish();
    Ok(format!(
        "a client written like the seed's, with its cap scaled from 340,000 to {SCALED_CAP}, connected to c1m serve on {ports} ports"
    ))
}

/// The first port of `count` consecutive free ports from `from` on 127.0.0.1.
fn free_port_base(from: u16, count: u16) -> Result<u16> {
    'outer: for base in (from..30000).step_by(usize::from(count.max(1))) {
        for port in base..base + count {
            if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
                continue 'outer;
            }
        }
        return Ok(base);
    }
    bail!("no {count} free consecutive ports on 127.0.0.1 between {from} and 30000")
}
