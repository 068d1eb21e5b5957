//! `c1m lab --server nginx|redis|mosquitto|'CMD ... {port}'`: the lab's
//! server host runs a real server instead of `c1m serve`.
//!
//! [`ServerKind`] says which, what its clients speak (`http`, `redis`,
//! `mqtt`; the lab's `--protocol` for a command), and whether it is one
//! process (Redis and Mosquitto are: the per-process fd limit caps them,
//! which the lab says before the run). [`config`] writes the server's
//! configuration sized for the target and this host (nginx
//! `worker_processes`/`worker_connections`/`worker_rlimit_nofile`, Redis
//! `maxclients`, Mosquitto `max_connections`) into the run's own folder,
//! never under /etc, with the server's log going to `logs/`, where
//! `analyze` reads it.
//!
//! The lab supervises processes that speak c1m's JSON lines, so the server
//! runs under `c1m lab-server` (hidden): it starts the server in a process
//! group of its own (killed with it), waits until the port accepts, and
//! reports `start`, one `interval` a second (the connections the server's
//! processes hold: their open descriptors above the count once listening)
//! and a `summary` after stopping it, as `c1m serve` would.
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::events::{Counters, Event, Record, Role};
use crate::flood::proto::Protocol;
use crate::sys::signals;

/// The server a lab runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerKind {
    /// `c1m serve`, the echo reactor.
    #[default]
    Serve,
    Nginx,
    Redis,
    Mosquitto,
    /// A command line with `{port}` in it, run with `sh -c`.
    Command(String),
}

impl std::str::FromStr for ServerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<ServerKind, String> {
        Ok(match s.trim() {
            "c1m" | "serve" => ServerKind::Serve,
            "nginx" => ServerKind::Nginx,
            "redis" | "redis-server" => ServerKind::Redis,
            "mosquitto" => ServerKind::Mosquitto,
            cmd if cmd.contains("{port}") => ServerKind::Command(cmd.to_string()),
            other => {
                return Err(format!(
                    "'{other}': nginx, redis, mosquitto, serve, or a command line with {{port}} in it"
                ));
            }
        })
    }
}

impl std::fmt::Display for ServerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServerKind::Serve => "serve",
            ServerKind::Nginx => "nginx",
            ServerKind::Redis => "redis",
            ServerKind::Mosquitto => "mosquitto",
            ServerKind::Command(c) => c,
        })
    }
}

impl ServerKind {
    /// Its name in logs and messages (`command` for a command line).
    pub fn name(&self) -> &str {
        match self {
            ServerKind::Command(_) => "command",
            k => match k {
                ServerKind::Serve => "serve",
                ServerKind::Nginx => "nginx",
                ServerKind::Redis => "redis",
                _ => "mosquitto",
            },
        }
    }

    /// What the clients speak to it; `None`: the lab's `--protocol`.
    pub fn protocol(&self) -> Option<Protocol> {
        match self {
            ServerKind::Serve => Some(Protocol::Echo),
            ServerKind::Nginx => Some(Protocol::Http),
            ServerKind::Redis => Some(Protocol::Redis),
            ServerKind::Mosquitto => Some(Protocol::Mqtt),
            ServerKind::Command(_) => None,
        }
    }

    /// A server that holds every client in one process.
    pub fn one_process(&self) -> bool {
        matches!(self, ServerKind::Redis | ServerKind::Mosquitto)
    }

    /// Ports it listens on: nginx and serve take the lab's range, the
    /// others one port.
    pub fn ports(&self, lab_ports: u16) -> u16 {
        match self {
            ServerKind::Serve | ServerKind::Nginx => lab_ports,
            _ => 1,
        }
    }

    /// The program the server needs on this host.
    pub fn program(&self) -> &str {
        match self {
            ServerKind::Nginx => "nginx",
            ServerKind::Redis => "redis-server",
            ServerKind::Mosquitto => "mosquitto",
            _ => "sh",
        }
    }
}

/// Connections the fd limit leaves one server process (Redis keeps 32
/// descriptors for itself; the others about as many).
pub fn one_process_cap(nofile_hard: u64) -> u64 {
    nofile_hard.saturating_sub(32)
}

/// nginx's workers for `capacity` connections: enough that each stays
/// well below the per-process fd limit (reuseport spreads connections
/// nearly evenly, not exactly), at least one per core.
pub fn nginx_sizing(capacity: u64, nofile_hard: u64, ports: u16, cores: u64) -> (u64, u64) {
    let usable = nofile_hard.saturating_sub(64 + u64::from(ports)).max(256);
    let per_worker_goal = usable * 4 / 5;
    let workers = capacity.div_ceil(per_worker_goal).max(cores).max(1);
    let per_worker = capacity.div_ceil(workers);
    let worker_connections = (per_worker + per_worker / 4 + u64::from(ports) + 16).min(usable);
    (workers, worker_connections)
}

/// A server ready to start: its command line and the config it was given.
#[derive(Debug, Clone)]
pub struct ServerPlan {
    pub program: String,
    pub args: Vec<String>,
    /// The configuration file written for it, if any.
    pub config: Option<PathBuf>,
    /// Where its stdout and stderr go (its own log, for analyze).
    pub log: PathBuf,
    /// Its processes (nginx: workers), as configured.
    pub processes: u64,
}

/// Write the configuration of `kind` for `capacity` connections on
/// `bind:port..port+ports-1` into `dir/server/`, logging into
/// `dir/logs/`; return how to start it.
pub fn config(
    kind: &ServerKind,
    dir: &Path,
    bind: IpAddr,
    port: u16,
    ports: u16,
    capacity: u64,
    nofile_hard: u64,
) -> Result<ServerPlan> {
    let conf_dir = dir.join("server");
    let logs = dir.join("logs");
    for d in [&conf_dir, &logs, &conf_dir.join("tmp")] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let log = logs.join(format!("{}.log", kind.name()));
    let write = |name: &str, text: String| -> Result<PathBuf> {
        let p = conf_dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        Ok(p)
    };
    let tmp = conf_dir.join("tmp");
    Ok(match kind {
        ServerKind::Nginx => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
            let (workers, wc) = nginx_sizing(capacity, nofile_hard, ports, cores);
            let listens: String = (0..ports)
                .map(|i| {
                    format!(
                        "        listen {bind}:{} reuseport backlog=65535;\n",
                        port + i
                    )
                })
                .collect();
            let t = tmp.display();
            let text = format!(
                "# c1m lab: nginx for {capacity} connections on this host (RLIMIT_NOFILE hard {nofile_hard})\n\
worker_processes {workers};\nworker_rlimit_nofile {nofile_hard};\ndaemon off;\nmaster_process on;\n\
pid {pid};\nerror_log {err} notice;\n\
events {{\n    worker_connections {wc};\n    multi_accept on;\n}}\n\
http {{\n    access_log off;\n    keepalive_timeout 3600s;\n    keepalive_requests 1000000;\n\
    client_body_temp_path {t}/body;\n    proxy_temp_path {t}/proxy;\n    fastcgi_temp_path {t}/fastcgi;\n\
    uwsgi_temp_path {t}/uwsgi;\n    scgi_temp_path {t}/scgi;\n\
    server {{\n{listens}        location / {{ return 200 \"ok\\n\"; }}\n    }}\n}}\n",
                pid = conf_dir.join("nginx.pid").display(),
                err = log.display(),
            );
            let conf = write("nginx.conf", text)?;
            ServerPlan {
                program: "nginx".into(),
                args: vec![
                    "-p".into(),
                    conf_dir.display().to_string(),
                    "-e".into(),
                    log.display().to_string(),
                    "-c".into(),
                    conf.display().to_string(),
                ],
                config: Some(conf),
                log,
                processes: workers + 1,
            }
        }
        ServerKind::Redis => {
            let text = format!(
                "# c1m lab: redis for {capacity} connections (RLIMIT_NOFILE hard {nofile_hard})\n\
bind {bind}\nport {port}\nprotected-mode no\nmaxclients {capacity}\ntcp-backlog 65535\n\
save \"\"\nappendonly no\ndaemonize no\nlogfile \"\"\ndir {}\n",
                tmp.display()
            );
            let conf = write("redis.conf", text)?;
            ServerPlan {
                program: "redis-server".into(),
                args: vec![conf.display().to_string()],
                config: Some(conf),
                log,
                processes: 1,
            }
        }
        ServerKind::Mosquitto => {
            let text = format!(
                "# c1m lab: mosquitto for {capacity} connections (RLIMIT_NOFILE hard {nofile_hard})\n\
listener {port} {bind}\nallow_anonymous true\nmax_connections {capacity}\npersistence false\n\
connection_messages false\nlog_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            );
            let conf = write("mosquitto.conf", text)?;
            ServerPlan {
                program: "mosquitto".into(),
                args: vec!["-c".into(), conf.display().to_string()],
                config: Some(conf),
                log,
                processes: 1,
            }
        }
        ServerKind::Command(cmd) => ServerPlan {
            program: "sh".into(),
            args: vec!["-c".into(), cmd.replace("{port}", &port.to_string())],
            config: None,
            log,
            processes: 1,
        },
        ServerKind::Serve => bail!("c1m serve is started by the lab itself"),
    })
}

/// `c1m lab-server`: run a real server for the lab (see the module
/// comment). Hidden: the lab starts it.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct LabServerArgs {
    /// nginx, redis, mosquitto, or a command line with {port}.
    #[arg(long)]
    pub server: String,
    /// The lab's run folder (config in server/, log in logs/).
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    #[arg(long)]
    pub port: u16,
    #[arg(long, default_value_t = 1)]
    pub ports: u16,
    /// Connections to configure the server for.
    #[arg(long)]
    pub capacity: u64,
}

impl LabServerArgs {
    pub const COMMAND: &'static str = "lab-server";

    pub fn command_line(&self) -> Vec<std::ffi::OsString> {
        crate::argv::Argv::new()
            .arg(Self::COMMAND)
            .arg(format!("--server={}", self.server))
            .opt_os("dir", self.dir.as_os_str())
            .opt("bind", self.bind)
            .opt("port", self.port)
            .opt("ports", self.ports)
            .opt("capacity", self.capacity)
            .into_vec()
    }
}

/// The server's processes: the leader and its children (nginx's workers).
fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        out.extend(crate::sys::procfs::children(out[i]));
        i += 1;
    }
    out
}

/// Open descriptors and resident bytes of the server's processes.
fn usage(pid: u32) -> (u64, u64) {
    tree(pid).iter().fold((0, 0), |(fds, rss), &p| {
        (
            fds + crate::sys::procfs::fd_count(p),
            rss + crate::sys::procfs::pid_rss_bytes(p),
        )
    })
}

/// Is something listening on `addr` (or on every address at its port)?
/// Asked of the kernel's socket table rather than by connecting: a probe
/// refused before the server listens would be a reset in the lab's TCP
/// counters.
fn listening(addr: &SocketAddr) -> bool {
    crate::sys::procfs::tcp_listening(addr)
}

fn emit(event: Event) {
    let rec = Record::now(Role::Serve, None, event);
    let mut out = std::io::stdout().lock();
    let _ = rec.emit(&mut out);
}

fn spawn(plan: &ServerPlan) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&plan.log)
        .with_context(|| format!("opening {}", plan.log.display()))?;
    let err = log
        .try_clone()
        .with_context(|| format!("opening {}", plan.log.display()))?;
    let mut cmd = Command::new(&plan.program);
    cmd.args(&plan.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0);
    // SAFETY: prctl only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .with_context(|| format!("starting {} (is it installed?)", plan.program))
}

/// Stop the server's process group: SIGTERM, then SIGKILL after `grace`.
fn stop(child: &mut Child, grace: Duration) -> String {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let pg = Pid::from_raw(child.id() as i32);
    let _ = killpg(pg, Signal::SIGTERM);
    let until = Instant::now() + grace;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            let _ = killpg(pg, Signal::SIGKILL); // what it left (nginx workers)
            return st.to_string();
        }
        if Instant::now() >= until {
            let _ = killpg(pg, Signal::SIGKILL);
            return child.wait().map_or_else(
                |e| format!("wait failed: {e}"),
                |s| format!("{s} (killed after {grace:?})"),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run the server until SIGTERM, reporting as `c1m serve` would.
/// Long: start, readiness, the sampling loop and the stop are one story.
pub fn run(args: LabServerArgs) -> Result<ExitCode> {
    signals::install().context("installing signal handlers")?;
    let kind: ServerKind = args.server.parse().map_err(anyhow::Error::msg)?;
    let hard = crate::sys::limits::nofile(crate::sys::limits::Target::This)
        .map(|n| n.hard)
        .unwrap_or(1024);
    let plan = config(
        &kind,
        &args.dir,
        args.bind,
        args.port,
        args.ports,
        args.capacity,
        hard,
    )?;
    let started = Instant::now();
    let mut child = spawn(&plan)?;
    let addr = SocketAddr::new(args.bind, args.port);
    let ready_by = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            bail!(
                "{} exited before listening on {addr} ({st}); its log: {}",
                kind.name(),
                plan.log.display()
            );
        }
        if listening(&addr) {
            break;
        }
        if Instant::now() > ready_by || signals::stop_requested() {
            stop(&mut child, Duration::from_secs(5));
            bail!(
                "{} did not listen on {addr} within 30 s; its log: {}",
                kind.name(),
                plan.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // nginx's workers open their listeners a moment after the master.
    std::thread::sleep(Duration::from_millis(200));
    let pid = child.id();
    let (baseline, _) = usage(pid);
    emit(Event::Start {
        settings: serde_json::json!({
            "bind": args.bind.to_string(),
            "ports": [args.port, args.port + args.ports - 1],
            "workers": plan.processes,
            "max_connections": args.capacity,
            "nofile": hard,
            "server": kind.name(),
            "command": std::iter::once(plan.program.clone()).chain(plan.args.clone()).collect::<Vec<_>>().join(" "),
            "config": plan.config.as_ref().map(|p| p.display().to_string()),
            "log": plan.log.display().to_string(),
            "worker_pids": tree(pid),
        }),
    });
    let mut peak = 0u64;
    let mut peak_rss = 0u64;
    let mut exited = None;
    while !signals::stop_requested() {
        std::thread::sleep(Duration::from_secs(1));
        if let Ok(Some(st)) = child.try_wait() {
            exited = Some(st.to_string());
            break;
        }
        let (fds, rss) = usage(pid);
        let connections = fds.saturating_sub(baseline);
        peak = peak.max(connections);
        peak_rss = peak_rss.max(rss);
        emit(Event::Interval {
            counters: Counters {
                connections,
                opened_total: peak,
                rss_bytes: Some(rss),
                ..Default::default()
            },
            rate: 0.0,
            target: None,
        });
    }
    let status = match exited {
        Some(s) => format!("exited during the run: {s}"),
        None => stop(&mut child, Duration::from_secs(20)),
    };
    emit(Event::Summary {
        counters: Counters {
            opened_total: peak,
            rss_bytes: Some(peak_rss),
            ..Default::default()
        },
        elapsed_s: started.elapsed().as_secs_f64(),
        details: serde_json::json!({
            "server": kind.name(),
            "peak_connections": peak,
            "peak_rss_bytes": peak_rss,
            "status": status,
            "log": plan.log.display().to_string(),
        }),
    });
    let _ = std::io::stdout().flush();
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_parse_and_say_what_their_clients_speak() {
        assert_eq!("nginx".parse::<ServerKind>(), Ok(ServerKind::Nginx));
        assert_eq!(
            "redis".parse::<ServerKind>().unwrap().protocol(),
            Some(Protocol::Redis)
        );
        assert!("redis".parse::<ServerKind>().unwrap().one_process());
        let c: ServerKind = "./srv --port {port}".parse().unwrap();
        assert_eq!(c.protocol(), None);
        assert_eq!(c.ports(20), 1);
        assert!(
            "apache"
                .parse::<ServerKind>()
                .unwrap_err()
                .contains("{port}")
        );
    }

    #[test]
    fn nginx_workers_stay_below_the_fd_limit() {
        let (w, wc) = nginx_sizing(210_000, 20_000, 20, 2);
        assert!(w * wc >= 210_000 + 210_000 / 5, "{w} x {wc}");
        assert!(wc <= 20_000 - 64 - 20, "{wc}");
        assert_eq!(nginx_sizing(5_250, 20_000, 1, 2).0, 2);
        assert_eq!(one_process_cap(20_000), 19_968);
    }

    #[test]
    fn a_listener_is_seen_in_proc_net_tcp() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert!(listening(&addr));
        drop(l);
        assert!(!listening(&addr));
    }

    #[test]
    fn configs_are_written_into_the_run_folder() {
        let d = tempfile::tempdir().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let p = config(&ServerKind::Redis, d.path(), lo, 7000, 1, 31_500, 20_000).unwrap();
        let text = std::fs::read_to_string(p.config.as_ref().unwrap()).unwrap();
        assert!(
            text.contains("maxclients 31500\n") && text.contains("port 7000\n"),
            "{text}"
        );
        assert!(p.config.unwrap().starts_with(d.path()));
        assert_eq!(p.log, d.path().join("logs/redis.log"));
        let n = config(&ServerKind::Nginx, d.path(), lo, 8000, 3, 60_000, 20_000).unwrap();
        let text = std::fs::read_to_string(n.config.unwrap()).unwrap();
        assert!(text.contains("listen 127.0.0.1:8002 reuseport"), "{text}");
        assert!(text.contains("worker_rlimit_nofile 20000;"), "{text}");
        let m = config(&ServerKind::Mosquitto, d.path(), lo, 1883, 1, 100, 20_000).unwrap();
        let text = std::fs::read_to_string(m.config.unwrap()).unwrap();
        assert!(text.contains("max_connections 100\n"), "{text}");
    }
}
