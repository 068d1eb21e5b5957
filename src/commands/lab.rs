//! `c1m lab`: flags in, the lab run (`harness::lab`) in the middle, the
//! report's path and the analysis out.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::harness::lab::{self, LabConfig, NetnsMode};
use crate::harness::scenarios::{self, Scenario};

use crate::sys::signals;
use crate::util::{parse_duration, thousands};

#[derive(Debug, Args)]
pub struct LabArgs {
    /// Concurrent connections to reach (100k, 1M...), or "max": the host's
    /// ceiling (with --apply: after the lab profile), ramping past doctor's
    /// estimate until usable memory falls to 1.5 GiB or 6% of RAM,
    /// whichever is more, or a limit (file-max, ports, conntrack) stops it.
    #[arg(short = 'n', long, default_value = "100000", value_parser = lab::parse_target)]
    pub target: u64,
    /// Number of flood clients, each with its own source addresses.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub clients: u32,
    /// Server ports (consecutive from --port).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub ports: u16,
    /// First server port.
    #[arg(long, default_value_t = 8888, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// How long clients hold their connections once the target is reached.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub hold: Duration,
    /// Echo a message on every connection at this interval during the hold
    /// ("off" for none; "auto": about 10,000 messages a second in all, so
    /// the echoes measure round trips without saturating a small host).
    #[arg(long, default_value = "auto", value_parser = lab::parse_message_interval)]
    pub message_interval: lab::MessageInterval,
    /// Source addresses, as flood takes them: a count per client (client K
    /// binds 127.0.K.1-N; 198.18.K.1-N with --hosts), or an address list
    /// (127.0.0.2-127.0.0.40,127.0.1.1) split into one block per client.
    #[arg(long, default_value = "10", value_parser = crate::flood::plan::parse_source_spec)]
    pub sources: crate::flood::plan::SourceSpec,
    /// Apply the lab profile first, roll it back at the end.
    #[arg(long)]
    pub apply: bool,
    /// Profile --apply uses (a name in profiles/ or a file).
    #[arg(long, default_value = "lab")]
    pub profile: String,
    /// Run even when the capacity estimate says the target cannot fit.
    #[arg(long)]
    pub force: bool,
    /// Run in a private network namespace (auto: when permitted).
    #[arg(long, value_enum, default_value_t = NetnsMode::Auto)]
    pub netns: NetnsMode,
    /// Buckets of the private namespace's own TCP established hash table
    /// (net.ipv4.tcp_child_ehash_entries, Linux 6.1+): auto (one per lab
    /// socket when the host's table has fewer), a count, or 0 for the host's
    #[arg(long, default_value = "auto", value_name = "auto|N", value_parser = lab::parse_ehash)]
    pub ehash_entries: lab::EhashChoice,
    /// Where report folders go.
    #[arg(long, default_value = "reports")]
    pub report: PathBuf,
    /// Give up if the target is not reached within this time.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub deadline: Duration,
    /// Progress as JSON lines.
    #[arg(short, long)]
    pub json: bool,
    /// Say less: no capacity preamble and no analysis, only the run's
    /// progress and its last line.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Provoke one failure for real and check that analyze names it
    /// ("all" runs every scenario; "conntrack" needs --hosts).
    #[arg(long, value_name = "NAME")]
    pub scenario: Option<ScenarioChoice>,
    /// Inject one fault a third of the way into the hold, for real, and
    /// compare what the clients lost with what the victim held (exit 0
    /// when they agree). loss and partition need --hosts.
    #[arg(long, value_enum, conflicts_with = "scenario")]
    pub fault: Option<lab::faults::Fault>,
    /// The share of client-1's packets `--fault loss` drops, percent
    /// (1-100; default 20).
    #[arg(long, value_name = "P", requires = "fault", value_parser = lab::faults::parse_loss_percent)]
    pub loss_percent: Option<u8>,
    /// The clients replace every connection lost during the hold (flood
    /// --reconnect); the report says how long they took to get back.
    #[arg(long)]
    pub reconnect: bool,
    /// The clients' reconnect backoff: MIN..MAX with full jitter, or 0 (a
    /// naive reconnect storm).
    #[arg(long, default_value = "100ms..30s", value_parser = crate::flood::engine::parse_backoff)]
    pub reconnect_backoff: crate::flood::engine::Backoff,
    /// Run between namespace hosts (server, client-1..N on a bridge,
    /// 198.18.0.0/15) instead of one loopback; root only.
    #[arg(long)]
    pub hosts: bool,
    /// Remove the namespaces (and processes in them) a killed
    /// `lab --hosts` left behind, and say what was removed.
    #[arg(long, conflicts_with_all = ["hosts", "scenario"])]
    pub cleanup: bool,
    /// Turn on serve's and every client's OpenMetrics endpoint: serve on
    /// ADDR:PORT, client K on PORT+K (default 127.0.0.1:9400, 9401...), on
    /// the host's loopback even when the lab runs in its own namespace.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        num_args = 0..=1,
        default_missing_value = "127.0.0.1:9400",
        value_parser = crate::metrics::endpoint::parse_addr,
        conflicts_with_all = ["hosts", "scenario", "cleanup"]
    )]
    pub metrics: Option<std::net::SocketAddr>,
    /// The server: c1m serve (default), nginx, redis, mosquitto (a config
    /// sized for the target is written into the report), or your own
    /// command line with {port} in it.
    #[arg(long, default_value = "serve", value_name = "SERVER", conflicts_with_all = ["hosts", "scenario"])]
    pub server: crate::harness::server::ServerKind,
    /// What the clients speak to a --server command line (nginx: http,
    /// redis: redis, mosquitto: mqtt, serve: echo, whatever this says).
    #[arg(long, value_enum, default_value_t = crate::flood::proto::Protocol::Connect)]
    pub protocol: crate::flood::proto::Protocol,
    /// Start serve with --defer-accept (TCP_DEFER_ACCEPT): a connection
    /// is accepted once its first line is in, and echoed in that wake-up.
    #[arg(long)]
    pub defer_accept: bool,
    /// TCP Fast Open: serve --fast-open and flood --fast-open, with
    /// net.ipv4.tcp_fastopen = 3 set in the lab's own network namespace
    /// (never the host's): a connect carries its first line in the SYN.
    #[arg(long)]
    pub fast_open: bool,
    /// flood --separate-handshake-ack: each connection's handshake ACK in
    /// a packet of its own, as the minimal C client sends it (to measure
    /// what riding it on the first line saves).
    #[arg(long)]
    pub separate_handshake_ack: bool,
    /// Stop ramping when usable memory (MemAvailable minus what the open
    /// sockets pin) falls below this many MiB (the floor of --target max;
    /// set high, it binds at once: for tests).
    #[arg(long, hide = true)]
    pub mem_floor_mib: Option<u64>,
}

/// `--scenario` values: one scenario, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioChoice {
    FdLimit,
    Ports,
    Refused,
    Backlog,
    Cap,
    /// A stateful firewall and a small conntrack table (--hosts only).
    Conntrack,
    All,
}

impl ScenarioChoice {
    fn scenarios(self) -> Vec<Scenario> {
        match self {
            ScenarioChoice::FdLimit => vec![Scenario::FdLimit],
            ScenarioChoice::Ports => vec![Scenario::Ports],
            ScenarioChoice::Refused => vec![Scenario::Refused],
            ScenarioChoice::Backlog => vec![Scenario::Backlog],
            ScenarioChoice::Cap => vec![Scenario::Cap],
            ScenarioChoice::All => Scenario::all().to_vec(),
            ScenarioChoice::Conntrack => Vec::new(),
        }
    }
}

/// [`say`], unless `quiet`.
fn say_unless(quiet: bool, json: bool, line: String) {
    if !quiet {
        say(json, line);
    }
}

/// A human line: on stdout, or on stderr when stdout carries JSON lines.
fn say(json: bool, line: String) {
    if json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// Run scenarios: each in its own folder, each checked against analyze.
fn run_scenarios(
    choice: ScenarioChoice,
    private: bool,
    root: &std::path::Path,
    json: bool,
) -> Result<ExitCode> {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .trim_end_matches('Z')
        .replace(':', "-");
    let base = root.join(format!("{stamp}-scenarios"));
    let mut all_named = true;
    for sc in choice.scenarios() {
        let out = scenarios::run(sc, &base.join(sc.name()), private)?;
        if json {
            println!("{}", serde_json::to_string(&out)?);
        } else if let Some(why) = &out.skipped {
            println!("scenario {}: SKIPPED: {why}", sc.name());
        } else {
            println!(
                "scenario {}: {}\n  analyze {} {} (found: {}); logs and analysis in {}",
                sc.name(),
                out.story,
                if out.named { "named" } else { "did NOT name" },
                out.expected,
                out.found
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                out.dir
            );
        }
        if out.skipped.is_none() && !out.named {
            all_named = false;
            if !json {
                println!("{}", out.analysis);
            }
        }
        if signals::stop_requested() {
            break;
        }
    }
    Ok(if all_named {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FAIL)
    })
}

/// `--cleanup`: what a killed hosts lab left behind.
fn cleanup() -> Result<ExitCode> {
    let removed = lab::hosts::cleanup()?;
    if removed.is_empty() {
        println!("lab: nothing to clean up (no c1m-<pid>-* namespace of a lab that is gone)");
    }
    for r in &removed {
        println!(
            "lab: removed network namespace {}{}",
            r.netns,
            if r.killed.is_empty() {
                String::new()
            } else {
                format!(
                    " and killed {} process(es) in it: {:?}",
                    r.killed.len(),
                    r.killed
                )
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--hosts`: the experiment (or one scenario) between namespace hosts.
fn run_hosts(args: LabArgs) -> Result<ExitCode> {
    use lab::hosts::HostsScenario;
    let scenario = match args.scenario {
        None => None,
        Some(ScenarioChoice::Conntrack) => Some(HostsScenario::Conntrack),
        Some(ScenarioChoice::Ports) => Some(HostsScenario::Ports),
        Some(other) => anyhow::bail!(
            "--hosts runs the conntrack and ports scenarios; {other:?} runs without --hosts"
        ),
    };
    // A scenario is small and short: it provokes a failure, not a million.
    let (target, deadline) = match scenario {
        Some(_) => (
            args.target.min(600 * u64::from(args.clients)),
            args.deadline.min(Duration::from_secs(60)),
        ),
        None => (args.target, args.deadline),
    };
    let cfg = LabConfig {
        server: args.server.clone(),
        protocol: args.protocol,
        target,
        clients: args.clients,
        ports: if scenario.is_some() { 1 } else { args.ports },
        base_port: args.port,
        hold: args.hold,
        message_interval: args.message_interval.resolve(target),
        sources_per_client: if scenario.is_some() {
            1
        } else {
            lab::client_sources(&args.sources, args.clients, true)?.0
        },
        source_list: None,
        apply: args.apply,
        force: args.force,
        netns: args.netns,
        report_root: args.report,
        deadline,
        json: args.json,
        metrics: Vec::new(),
        defer_accept: args.defer_accept,
        fast_open: false,
        separate_handshake_ack: args.separate_handshake_ack,
        fault: args.fault,
        loss_percent: args.loss_percent.unwrap_or(lab::faults::LOSS_PERCENT),
        mem_floor: None,
        max: false,
        max_plan: None,
        reconnect: args.reconnect.then_some(args.reconnect_backoff),
    };
    say(
        args.json,
        format!(
            "lab: {} connections between namespace hosts: server (198.18.0.1, {} ports), {} client hosts with {} addresses each{}{}",
            thousands(cfg.target),
            cfg.ports,
            cfg.clients,
            cfg.sources_per_client,
            scenario
                .map(|s| format!(", scenario {}", s.name()))
                .unwrap_or_default(),
            cfg.fault
                .map(|f| format!(", fault {} during the hold", f.name()))
                .unwrap_or_default()
        ),
    );
    let r = lab::hosts::run_hosts(&cfg, &args.profile, scenario, Vec::new())?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("{}", r.lab.analysis);
        print!("{}", lab::hosts::hosts_markdown(&r));
        for n in &r.lab.notes {
            println!("  note: {n}");
        }
    }
    let ok = match (scenario, r.named) {
        (Some(s), Some(named)) => {
            say(
                args.json,
                format!(
                    "lab: scenario {}: analyze {} {}; report in {}",
                    s.name(),
                    if named { "named" } else { "did NOT name" },
                    s.expected(),
                    r.lab.report_dir
                ),
            );
            named
        }
        _ => {
            say(
                args.json,
                format!(
                    "lab --hosts: target {} {}: verified {}, time to target {}{}, {} namespaces removed, report in {}",
                    thousands(r.lab.target),
                    if r.lab.reached {
                        "reached"
                    } else {
                        "NOT reached"
                    },
                    thousands(r.lab.verified),
                    r.lab
                        .time_to_target_s
                        .map(|t| format!("{t:.1} s"))
                        .unwrap_or_else(|| "n/a".into()),
                    hold_summary(&r.lab),
                    r.removed.len(),
                    r.lab.report_dir
                ),
            );
            r.lab.reached && r.lab.hold.as_ref().is_none_or(|h| h.ok)
        }
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FAIL)
    })
}

pub fn run(args: LabArgs) -> Result<ExitCode> {
    signals::install()?;
    if args.cleanup {
        return cleanup();
    }
    if args.loss_percent.is_some() && args.fault != Some(lab::faults::Fault::Loss) {
        anyhow::bail!(
            "--loss-percent is the share of packets --fault loss drops: add --fault loss"
        );
    }
    if args.hosts {
        if args.target == lab::TARGET_MAX {
            anyhow::bail!("--target max runs on the loopback lab, not with --hosts");
        }
        if args.fast_open {
            anyhow::bail!("--fast-open runs on the loopback lab, not with --hosts");
        }
        return run_hosts(args);
    }
    if let Some(f) = args.fault
        && f.needs_hosts()
    {
        anyhow::bail!(
            "--fault {} drops packets on a namespace host's link (nftables inside client-1's namespace): add --hosts",
            f.name()
        );
    }
    if args.scenario == Some(ScenarioChoice::Conntrack) {
        anyhow::bail!("--scenario conntrack runs between namespace hosts: add --hosts");
    }
    let (sources_per_client, source_list) =
        lab::client_sources(&args.sources, args.clients, false)?;
    // Metrics endpoints on the host's loopback: bound before the lab moves
    // into its namespace, inherited by serve and the clients.
    let mut metrics_listeners = Vec::new();
    let mut metrics = Vec::new();
    if let Some(base) = args.metrics {
        if args.server != lab::ServerKind::Serve {
            anyhow::bail!(
                "--metrics needs c1m serve as the server (not --server {})",
                args.server
            );
        }
        for k in 0..=args.clients {
            let port = u16::try_from(u32::from(base.port()) + k).map_err(|_| {
                anyhow::anyhow!("--metrics {base}: port {base} + {k} is past 65535")
            })?;
            let addr = std::net::SocketAddr::new(base.ip(), port);
            let l = crate::metrics::endpoint::Endpoint::bind_inheritable(addr)?;
            metrics.push((
                format!("http://{addr}/metrics"),
                std::os::fd::AsRawFd::as_raw_fd(&l),
            ));
            metrics_listeners.push(l);
        }
    }
    // First, before any thread exists: the namespace is per thread.
    let host_buckets = crate::sys::netns::ehash_buckets().map_or(0, |(n, _)| n);
    let ehash = match args.scenario {
        Some(_) => None,
        None => lab::ehash_for(args.target, args.ehash_entries, host_buckets),
    };
    let (private, notes) = lab::enter_netns(args.netns, ehash, host_buckets)?;
    if let Some(choice) = args.scenario {
        for note in notes {
            println!("lab: {note}");
        }
        return run_scenarios(choice, private, &args.report, args.json);
    }
    let mut notes = notes;
    if args.fast_open {
        if args.server.protocol().unwrap_or(args.protocol) == crate::flood::proto::Protocol::Connect
        {
            anyhow::bail!(super::flood::FAST_OPEN_CONNECT);
        }
        let note = lab::enable_fast_open(&crate::sys::sysctl::Sysctl::proc(), private)?;
        say_unless(args.quiet, args.json, format!("lab: {note}"));
        notes.push(note);
    }
    // --target max: first doctor's estimate (after the profile, if
    // --apply), then the ramp toward it with the MemAvailable floor.
    let max = args.target == lab::TARGET_MAX;
    let message_interval = args.message_interval.resolve(args.target);
    let mut cfg = LabConfig {
        server: args.server.clone(),
        protocol: args.protocol,
        target: if max { 1 } else { args.target },
        clients: args.clients,
        ports: args.ports,
        base_port: args.port,
        hold: args.hold,
        message_interval,
        sources_per_client,
        source_list,
        apply: args.apply,
        force: args.force,
        netns: args.netns,
        report_root: args.report,
        deadline: args.deadline,
        json: args.json,
        metrics,
        defer_accept: args.defer_accept,
        fast_open: args.fast_open,
        separate_handshake_ack: args.separate_handshake_ack,
        fault: args.fault,
        loss_percent: args.loss_percent.unwrap_or(lab::faults::LOSS_PERCENT),
        mem_floor: args.mem_floor_mib.map(|m| m << 20),
        max,
        max_plan: None,
        reconnect: args.reconnect.then_some(args.reconnect_backoff),
    };
    if max && args.apply {
        // The profile's values scale with the target, and a target of 1
        // would size them below what any host runs with (rlimit.nofile.hard
        // 1,001). Size it for the most memory could ever hold, the bound
        // the ramp goes toward, so that fs.file-max, epoll watches and the
        // rest never bind before memory does; resolve_max then takes the
        // bound and doctor's estimate under the applied profile.
        cfg.target = memory_bound_for_profile(&cfg)?;
    }
    let mut pre = lab::preflight(&cfg, &args.profile)?;
    if max {
        resolve_max(&mut cfg, &mut pre, args.message_interval)?;
    }
    let cap = &pre.capacity;
    say_unless(
        args.quiet,
        args.json,
        format!(
            "lab: {}{} connections, {} clients, {} ports; host capacity about {} connections ({} processes of at most {} sockets; binding: {}){}",
            match (&cfg.max_plan, cfg.mem_floor) {
                (Some(_), Some(floor)) => format!(
                    "target max: ramping until a limit binds (usable memory below {} MiB, or a failure), at most ",
                    thousands(floor >> 20)
                ),
                _ => String::new(),
            },
            thousands(cfg.target),
            cfg.clients,
            cfg.ports,
            thousands(cap.max_connections),
            cap.processes_needed,
            thousands(cap.per_process_sockets),
            cap.binding.label(),
            if private {
                ", in a private network namespace"
            } else {
                ""
            }
        ),
    );
    for (i, (url, _)) in cfg.metrics.iter().enumerate() {
        let who = if i == 0 {
            "serve".to_string()
        } else {
            format!("client {i}")
        };
        say(args.json, format!("lab: metrics of {who} at {url}"));
    }
    if let Some(w) = &pre.server_warning {
        // Before the run, even with -q: it says how the run will end.
        say(args.json, format!("lab: warning: {w}"));
    }
    if cfg.server != lab::ServerKind::Serve {
        say_unless(
            args.quiet,
            args.json,
            format!(
                "lab: server {} (config and log in the report's server/ and logs/), clients speak {}",
                cfg.server,
                cfg.server.protocol().unwrap_or(cfg.protocol)
            ),
        );
    }
    notes.append(&mut pre.notes);
    let result = lab::run(&cfg, private, pre.applied.is_some(), notes);
    drop(metrics_listeners);
    if let Some(applied) = pre.applied.as_mut() {
        let rb = applied.rollback()?;
        if rb.ok() {
            say(
                args.json,
                format!("lab: profile rolled back ({} keys restored)", rb.keys.len()),
            );
        } else {
            eprintln!("lab: rollback errors: {}", rb.errors.join("; "));
        }
    }
    let report = result?;
    if args.json {
        // The whole report.json as the last line.
        println!("{}", serde_json::to_string(&report)?);
    } else if !args.quiet {
        println!("{}", report.analysis);
    }
    if let Some(c) = &report.ceiling {
        say(args.json, format!("lab: {}", lab::ceiling_sentence(c)));
    }
    let hold_ok = report.hold.as_ref().is_none_or(|h| h.ok);
    // --target max asked for the ceiling: found and named (by the floor, a
    // failure, or the ramp's bound), it is the run's result.
    let ceiling = report.ceiling.as_ref().filter(|_| max);
    if let Some(c) = ceiling {
        say(
            args.json,
            format!(
                "lab: target max: ceiling {} ({}): verified {}, time to the ceiling {}{}, report in {}",
                thousands(c.connections),
                c.limit,
                thousands(report.verified),
                c.time_s
                    .map(|t| format!("{t:.1} s"))
                    .unwrap_or_else(|| "n/a".into()),
                hold_summary(&report),
                report.report_dir
            ),
        );
        return Ok(if hold_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(super::EXIT_FAIL)
        });
    }
    say(
        args.json,
        format!(
            "lab: target {} {}: verified {}{}, time to target {}{}, report in {}",
            thousands(report.target),
            if report.reached {
                "reached"
            } else {
                "NOT reached"
            },
            thousands(report.verified),
            if report.reconnected > 0 {
                format!(" (and {} replacements)", thousands(report.reconnected))
            } else {
                String::new()
            },
            report
                .time_to_target_s
                .map(|t| format!("{t:.1} s"))
                .unwrap_or_else(|| "n/a".into()),
            hold_summary(&report),
            report.report_dir
        ),
    );
    Ok(if report.reached && hold_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FAIL)
    })
}

/// Connections memory alone could ever hold in the lab (the memory limit of
/// the ramp's bound, from the same arithmetic `resolve_max` reads), plus
/// 5%: what `--target max --apply` sizes the profile for. The margin keeps
/// the limits the profile raises (epoll watches at exactly 2 x target)
/// above the bound `resolve_max` computes a moment later, when MemAvailable
/// may have grown a little.
fn memory_bound_for_profile(cfg: &LabConfig) -> Result<u64> {
    let open = lab::ramp_bound_for(cfg)?;
    open.limits
        .iter()
        .find(|l| l.kind == crate::tuning::capacity::LimitKind::Memory)
        .and_then(|l| l.max_connections)
        .map(|n| (n + n / 20).max(100_000))
        .ok_or_else(|| {
            anyhow::anyhow!("--target max --apply: doctor's estimate has no memory limit (MemAvailable unreadable) to size the profile for")
        })
}

/// `--target max`, after the preflight (and the profile): the target
/// becomes the ramp's bound, the most any limit could allow (memory at the
/// least a socket costs), doctor's calibrated estimate goes to the report,
/// and the memory floor is set. The ramp then goes past the estimate and
/// stops at the first limit it measures.
fn resolve_max(
    cfg: &mut LabConfig,
    pre: &mut lab::Preflight,
    interval: lab::MessageInterval,
) -> Result<()> {
    use crate::tuning::capacity::{APP_BYTES_PER_SOCKET, KERNEL_BYTES_PER_SOCKET, kib};
    let bound = lab::ramp_bound_for(cfg)?;
    if bound.max_connections == 0 {
        anyhow::bail!(
            "--target max: this host has room for no connection:\n  {}",
            bound.sentences().join("\n  ")
        );
    }
    // doctor's estimate, planned with the processes the bound needs.
    let cap = lab::capacity_for(cfg, bound.max_connections)?;
    let total = crate::sys::procfs::meminfo()
        .map_err(|e| anyhow::anyhow!("reading /proc/meminfo for the memory floor: {e}"))?
        .total;
    cfg.target = bound.max_connections;
    cfg.message_interval = interval.resolve(cfg.target);
    let floor = *cfg.mem_floor.get_or_insert(lab::mem_floor(total));
    let limit = bound.binding_limit();
    cfg.max_plan = Some(lab::MaxPlan {
        estimate: cap.max_connections,
        doctor: cap.sentences().join(" "),
        bound_limit: lab::limit_name(bound.binding).to_string(),
        bound_detail: limit.detail.clone(),
    });
    let toward = if cfg.target > cap.max_connections {
        format!(
            "(binding: {}; memory at {} KiB kernel + {} KiB c1m per socket); the ramp goes on past it toward {}, the most {} allows ({})",
            cap.binding.label(),
            kib(KERNEL_BYTES_PER_SOCKET),
            kib(APP_BYTES_PER_SOCKET),
            thousands(cfg.target),
            bound.binding.label(),
            limit.detail
        )
    } else {
        format!(
            "(binding: {}: {}); the ramp goes toward them",
            cap.binding.label(),
            limit.detail
        )
    };
    pre.notes.push(format!(
        "--target max: doctor's capacity estimate is {} connections {toward}, and stops when usable memory (MemAvailable minus the socket inodes and dentries the open sockets pin) falls below {} MiB, or at the first limit the clients' failures name",
        thousands(cap.max_connections),
        floor >> 20
    ));
    pre.capacity = cap;
    Ok(())
}

/// `; hold: 100,000 alive, none lost` or the fault's comparison.
fn hold_summary(report: &lab::LabReport) -> String {
    let Some(h) = &report.hold else {
        return String::new();
    };
    if let Some(f) = &report.fault {
        return format!("; {}", f.sentence());
    }
    if h.lost == 0 {
        return format!(
            "; hold: {} alive at its end, none lost",
            thousands(h.alive_at_end)
        );
    }
    format!(
        "; hold: {} LOST ({}), {} alive at its end",
        thousands(h.lost),
        h.lost_by_cause
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v)))
            .collect::<Vec<_>>()
            .join(", "),
        thousands(h.alive_at_end)
    )
}
