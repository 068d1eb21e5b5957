//! `c1m doctor`: check this host against a C1M profile, print what will
//! stop a run (table + capacity estimate), and optionally apply, persist or
//! roll back the profile. The logic lives in `crate::tuning`; this file
//! parses flags and renders.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use comfy_table::{ColumnConstraint, Width};
use serde_json::json;

use super::{EXIT_ERROR, EXIT_FAIL, Layout, print_wrapped};
use crate::argv::{Procs, parse_procs};
use crate::sys::limits::{self, Target};
use crate::tuning::apply::{self, ApplyOptions, KeyStatus, PersistDirs};
use crate::tuning::check::{self, Report};
use crate::tuning::profile::{self, ProfileSource};
use crate::tuning::sysctl::{Scope, Sysctl};
use crate::tuning::{self, Plan, Role, snapshot};
use crate::util::{parse_count, thousands};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The role this host plays: server, client, or lab (both ends here).
    #[arg(long, value_enum, default_value = "server")]
    pub role: Role,
    /// Connections the run aims at (1000000, 200k, 1M).
    #[arg(short = 'n', long, default_value = "1000000", value_parser = parse_count)]
    pub target: u64,
    /// Profile name (server, client, lab, base) or a profile file path;
    /// default: the role's profile.
    #[arg(long)]
    pub profile: Option<String>,
    /// Read the open-files limit and capabilities of this running process
    /// (/proc/PID/limits) instead of doctor's own.
    #[arg(long)]
    pub pid: Option<i32>,
    /// Client source addresses the run will use: a count (30) or flood's
    /// address list (127.0.0.2-127.0.0.40,127.0.1.1) [default: client 1,
    /// lab 30 (3 clients x 10, as c1m lab)].
    #[arg(long, value_parser = parse_sources)]
    pub sources: Option<u64>,
    /// Server ports the clients connect to [default: 20, as flood and lab].
    #[arg(long)]
    pub server_ports: Option<u64>,
    /// The run's processes, with serve's flag and values (`--workers` works
    /// too): "auto" (as many as the target needs) or a number from 1 to
    /// 4096 (serve's workers for a server, flood's --procs for a client).
    /// A fixed number caps the run at that many processes of at most their
    /// fd limit each [default: auto].
    #[arg(long, alias = "workers", value_parser = parse_procs)]
    pub procs: Option<Procs>,
    /// Show every row (ok and n/a too), not only what is wrong.
    #[arg(long)]
    pub all: bool,
    /// Print only the verdict line (the exit status says the same).
    #[arg(short, long, conflicts_with = "all")]
    pub quiet: bool,
    /// Write the failing settings (root only): save originals, write,
    /// verify; restore everything if a write fails midway.
    #[arg(long, conflicts_with = "rollback")]
    pub apply: bool,
    /// With --apply: also write sysctl.d and limits.d files (and print a
    /// systemd drop-in). Not with --netns-only: boot files are host-wide.
    #[arg(long, requires = "apply", conflicts_with = "netns_only")]
    pub persist: bool,
    /// With --apply: write only per-network-namespace keys (net.*), never
    /// host-wide ones (fs.*, vm.*): for trying a profile in `unshare -n`.
    #[arg(long, requires = "apply")]
    pub netns_only: bool,
    /// Restore the values saved by --apply and remove persisted files.
    #[arg(long)]
    pub rollback: bool,
    /// State file for --apply/--rollback
    /// [default: $C1M_STATE_DIR/doctor-state.json, else /var/lib/c1m/doctor-state.json].
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Print JSON instead of the table.
    #[arg(short, long)]
    pub json: bool,
    #[command(flatten)]
    pub layout: Layout,
}

/// `--sources`: a count, or flood's list of addresses and ranges (counted).
fn parse_sources(text: &str) -> Result<u64, String> {
    crate::flood::plan::parse_source_spec(text).map(|s| s.count())
}

/// Flood's and the lab's defaults: 20 server ports; one source address for
/// a client (flood without --sources), 3 clients x 10 for a lab.
fn default_sources_and_ports(role: Role) -> (u64, u64) {
    match role {
        Role::Server => (1, 1),
        Role::Client => (1, 20),
        Role::Lab => (30, 20),
    }
}

pub fn run(args: DoctorArgs) -> Result<ExitCode> {
    let sysctl = Sysctl::from_env();
    let state_path = args.state.clone().unwrap_or_else(apply::default_state_path);
    let dirs = PersistDirs::from_env();

    if (args.apply || args.rollback) && !nix::unistd::geteuid().is_root() {
        eprintln!(
            "c1m doctor: --{} must run as root (effective uid {}): it writes kernel settings under {} and the state file {}. Run it with sudo, or run c1m doctor without --{0} to only check.",
            if args.apply { "apply" } else { "rollback" },
            nix::unistd::geteuid(),
            sysctl.root().display(),
            state_path.display()
        );
        return Ok(ExitCode::from(EXIT_ERROR));
    }

    if args.rollback {
        // Without --state, what a lab left behind (killed before its own
        // rollback) is restored too, unless a lab is running (it holds the
        // lock and its state is its own).
        let lab_rep = if args.state.is_none() {
            rollback_lab_leftover(&sysctl)?
        } else {
            None
        };
        if let Some(r) = lab_rep.as_ref().filter(|_| !args.json) {
            print_rollback(r);
        }
        let lab_ok = lab_rep.as_ref().is_none_or(|r| r.ok());
        let rep = apply::rollback(&sysctl, &state_path, Some(&dirs))?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({ "rollback": rep, "lab_rollback": lab_rep }))?
            );
        } else if rep.nothing_to_roll_back {
            println!(
                "Nothing to roll back: no state file at {} and no c1m files in {} or {}.",
                state_path.display(),
                dirs.sysctl_d.display(),
                dirs.limits_d.display()
            );
        } else {
            print_rollback(&rep);
        }
        return Ok(ExitCode::from(if rep.ok() && lab_ok {
            0
        } else {
            EXIT_FAIL
        }));
    }

    let target = match args.pid {
        Some(p) => Target::Pid(p),
        None => Target::This,
    };
    let processes = args.procs.and_then(Procs::count).map(u64::from);
    if args.role == Role::Lab && processes.is_some() {
        eprintln!(
            "c1m doctor: --workers/--procs fixes the processes of one program (serve for --role server, flood for --role client); a lab sizes both of its ends itself: drop it, or check each role on its own."
        );
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    let (sources, server_ports) = default_sources_and_ports(args.role);
    let plan = Plan {
        sources: args.sources.unwrap_or(sources).max(1),
        server_ports: args.server_ports.unwrap_or(server_ports).max(1),
        processes,
        ..Plan::new(args.role, args.target)
    };
    let profile_name = args
        .profile
        .clone()
        .unwrap_or_else(|| args.role.as_str().to_string());
    let profile = profile::load(&profile_name, &ProfileSource::default_source())?;
    let snap = snapshot::take(&sysctl, target)?;
    let report = check::check(&sysctl, &snap, &profile, &plan)?;

    let mut out = serde_json::Map::new();
    let mut apply_failed = false;
    let mut final_report = report.clone();
    if args.apply {
        let global_fixes: Vec<&str> = report
            .rows
            .iter()
            .filter(|r| r.status == check::Status::Fix && r.scope == Scope::Global)
            .map(|r| r.check.as_str())
            .collect();
        if !args.netns_only
            && !global_fixes.is_empty()
            && sysctl.is_real()
            && apply::in_child_netns() == Some(true)
        {
            eprintln!(
                "c1m doctor: note: this is a child network namespace, but {} are host-wide: writing them changes the whole host. Use --netns-only to write only this namespace's keys.",
                global_fixes.join(", ")
            );
        }
        let rep = apply::apply(
            &sysctl,
            &state_path,
            &report.rows,
            ApplyOptions {
                netns_only: args.netns_only,
                raise_own_nofile: args.pid.is_none(),
            },
        )?;
        apply_failed = !rep.ok();
        // Re-read everything after writing.
        let snap = snapshot::take(&sysctl, target)?;
        final_report = check::check(&sysctl, &snap, &profile, &plan)?;
        if !args.json {
            print_apply(&rep, &snap);
        }
        out.insert("apply".into(), serde_json::to_value(&rep)?);
        if args.persist && rep.aborted.is_none() {
            let nr_open = snap.nr_open.unwrap_or(1 << 20);
            let nofile = snap
                .nofile
                .hard
                .max(args.target.saturating_add(1000).min(nr_open));
            let context = format!(
                "role {}, target {}, profile {}",
                args.role.as_str(),
                args.target,
                profile_name
            );
            let p = apply::persist(
                &sysctl,
                &state_path,
                &dirs,
                &final_report.rows,
                nofile,
                &context,
            )
            .context("--persist")?;
            if !args.json {
                println!("Persisted (read at boot and at login):");
                for f in &p.files {
                    println!("  wrote {f}");
                }
                println!(
                    "For a systemd service, add this drop-in and run systemctl daemon-reload:"
                );
                for l in p.systemd_drop_in.lines() {
                    println!("  {l}");
                }
                println!();
            }
            out.insert("persist".into(), serde_json::to_value(&p)?);
        }
    }

    let verdict = final_report.verdict();
    // A server held to a fixed number of workers (`--workers 1`): what one
    // process's fd limit caps it at, in the lab preflight's words.
    let process_cap = match (args.role, processes) {
        (Role::Server, Some(n)) => {
            tuning::capacity::fixed_serve_workers(&final_report.snapshot, n, args.target)
        }
        _ => None,
    };
    if let Some((cap, line)) = &process_cap {
        out.insert(
            "process_cap".into(),
            json!({"processes": processes, "max_connections": cap, "line": line}),
        );
    }
    if args.json {
        let mut v = serde_json::to_value(&final_report)?;
        if let Some(obj) = v.as_object_mut() {
            let (ok, fix, cannot, na) = final_report.counts();
            obj.insert(
                "summary".into(),
                json!({"ok": ok, "fix": fix, "cannot": cannot, "n/a": na,
                    "recommendations": verdict.recommendations, "passed": verdict.fits}),
            );
            obj.insert("verdict".into(), serde_json::to_value(&verdict)?);
            obj.insert(
                "capacity_text".into(),
                json!(final_report.capacity.paragraph()),
            );
            obj.extend(out);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if args.quiet {
        println!("{}", verdict.line);
    } else {
        print_report(
            &final_report,
            &verdict,
            process_cap.as_ref().map(|(_, l)| l.as_str()),
            &args.layout,
            args.all,
        );
    }
    for w in &final_report.warnings {
        eprintln!("c1m doctor: warning: {w}");
    }
    let failed = !verdict.fits || apply_failed;
    Ok(ExitCode::from(if failed { EXIT_FAIL } else { 0 }))
}

/// Roll back what a lab left in its state file, when no lab is running.
fn rollback_lab_leftover(sysctl: &Sysctl) -> Result<Option<apply::RollbackReport>> {
    let path = apply::lab_state_path();
    if apply::State::load(&path)?.is_none() {
        return Ok(None);
    }
    let dir = crate::tuning::safe_fs::Dir::open(&apply::state_dir(), 0o700)?;
    let Some(_lock) = dir.try_lock("lab.lock")? else {
        eprintln!(
            "c1m doctor: a c1m lab is running and will roll back {} itself; left alone.",
            path.display()
        );
        return Ok(None);
    };
    apply::rollback(sysctl, &path, None).map(Some)
}

fn print_rollback(rep: &apply::RollbackReport) {
    println!("Rollback ({}):", rep.state_file);
    for k in &rep.keys {
        let what = match k.status {
            KeyStatus::Applied => "restored",
            KeyStatus::AlreadyOk => "already at its saved value",
            KeyStatus::Skipped => "not written",
            _ => "FAILED",
        };
        println!(
            "  {:<36} {} -> {}  {what}{}",
            k.key,
            k.before.as_deref().unwrap_or("-"),
            k.after.as_deref().unwrap_or("-"),
            k.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    for f in &rep.removed_files {
        println!("  removed {f}");
    }
    for e in &rep.errors {
        println!("  error: {e}");
    }
    if rep.ok() && !rep.kept_in_state.is_empty() {
        println!(
            "  host-wide values restored; {} kept in the state file for a rollback inside its network namespace.",
            rep.kept_in_state.join(", ")
        );
    } else if rep.ok() {
        println!("  state file removed; the host is as it was before --apply.");
    } else {
        println!("  state file kept: fix the errors above and run --rollback again.");
    }
}

fn print_apply(rep: &apply::ApplyReport, snap: &crate::tuning::Snapshot) {
    println!("Apply (originals saved in {}):", rep.state_file);
    for k in &rep.keys {
        let status = match k.status {
            KeyStatus::Applied => "applied",
            KeyStatus::AlreadyOk => "already ok",
            KeyStatus::Skipped => "skipped",
            KeyStatus::Failed => "FAILED",
            KeyStatus::Restored => "restored",
            KeyStatus::NotAttempted => "not attempted",
        };
        let change = match (k.status, &k.before, &k.after) {
            (KeyStatus::Applied, Some(b), Some(a)) => format!("{b} -> {a}"),
            (_, Some(b), _) => b.clone(),
            _ => "-".into(),
        };
        println!(
            "  {:<36} {:<13} {change}{}",
            k.key,
            status,
            k.reason
                .as_deref()
                .map(|r| format!("  ({r})"))
                .unwrap_or_default()
        );
    }
    if let Some(a) = &rep.aborted {
        println!("  ABORTED: {a}");
    }
    if let Some((before, after)) = rep.nofile {
        println!(
            "  RLIMIT_NOFILE of this process: soft {} -> {} (hard {}).",
            limits::show(before.soft),
            limits::show(after.soft),
            limits::show(after.hard)
        );
    }
    println!(
        "  Other processes keep their own limits: use limits.d (--persist; new login sessions, sudo and ssh read it), systemd LimitNOFILE= for services, or `ulimit -n {}` in the shell that starts them.{}",
        limits::show(snap.nofile.hard),
        if snap.cap_sys_resource {
            ""
        } else {
            " Without CAP_SYS_RESOURCE no process here can go above its hard limit."
        }
    );
    println!();
}

/// The human report: header, verdict (and what caps a fixed process
/// count), the rows that are wrong (blocking first; every row with
/// `--all`), the counts, the capacity estimate.
fn print_report(
    report: &Report,
    verdict: &check::Verdict,
    process_cap: Option<&str>,
    layout: &Layout,
    all: bool,
) {
    let width = layout.columns();
    print_wrapped(
        "",
        &format!(
            "c1m doctor: role {}, target {} connections, profile {}",
            report.role.as_str(),
            thousands(report.target),
            report.profile,
        ),
        width,
    );
    print_wrapped("", &verdict.line, width);
    if let Some(line) = process_cap {
        print_wrapped("warning: ", line, width);
    }
    let mut rows: Vec<&check::Row> = report
        .rows
        .iter()
        .filter(|r| all || r.status.fails())
        .collect();
    // What blocks first, then what --apply can fix, then the rest.
    rows.sort_by_key(|r| {
        (
            !r.blocks,
            match r.status {
                check::Status::Fix => 0,
                check::Status::Cannot => 1,
                check::Status::Ok => 2,
                check::Status::NotApplicable => 3,
            },
        )
    });
    let (ok, fix, cannot, na) = report.counts();
    if !rows.is_empty() {
        println!("{}", rows_table(&rows, layout));
    }
    let hidden = if all {
        String::new()
    } else {
        format!(" (--all shows the {} ok and n/a rows)", ok + na)
    };
    print_wrapped(
        "",
        &format!(
            "{ok} ok, {fix} to fix (c1m doctor --apply), {cannot} cannot be fixed here, {na} n/a{hidden}."
        ),
        width,
    );
    println!();
    println!("Capacity estimate:");
    for sentence in report.capacity.sentences() {
        print_wrapped("  - ", &sentence, width);
    }
    print_wrapped("Profile files: ", &report.profile_files.join(", "), width);
}

/// Below this width the table has two columns (status, and the setting
/// with its values and why beneath), so that nothing breaks mid-word.
const WIDE: u16 = 120;

/// The rows as a table: five columns on a wide terminal, two on a narrow
/// one. Keys never break mid-word.
fn rows_table(rows: &[&check::Row], layout: &Layout) -> comfy_table::Table {
    let wide = layout.columns() >= WIDE;
    let mut table = if wide {
        layout.table(&["check", "current", "wanted", "status", "why"])
    } else {
        layout.table(&["status", "check: current -> wanted, why"])
    };
    for r in rows {
        let why = match r.failure {
            Some(f) => format!("{}: {}", f.as_str(), r.why),
            None => r.why.clone(),
        };
        let status = if r.blocks {
            format!("{} (blocks)", r.status.as_str())
        } else {
            r.status.as_str().to_string()
        };
        if wide {
            table.add_row(vec![
                r.check.clone(),
                r.current.clone(),
                r.wanted.clone(),
                status,
                why,
            ]);
        } else {
            table.add_row(vec![
                status,
                format!("{}: {} -> {}\n{why}", r.check, r.current, r.wanted),
            ]);
        }
    }
    if wide {
        let key_width = rows.iter().map(|r| r.check.len()).max().unwrap_or(5);
        if let Some(col) = table.column_mut(0) {
            col.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(
                key_width as u16,
            )));
        }
    }
    table
}
