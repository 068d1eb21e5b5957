//! `c1m doctor`: check this host against a C1M profile, print what will
//! stop a run (table + capacity estimate), and optionally apply, persist or
//! roll back the profile. The logic lives in `crate::tuning`; this file
//! parses flags and renders.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use comfy_table::{ContentArrangement, Table, presets};
use serde_json::json;

use super::{EXIT_ERROR, EXIT_FAIL};
use crate::sys::limits::{self, Target};
use crate::tuning::apply::{self, ApplyOptions, KeyStatus, PersistDirs};
use crate::tuning::check::{self, Report};
use crate::tuning::profile::{self, ProfileSource};
use crate::tuning::sysctl::{Scope, Sysctl};
use crate::tuning::{Plan, Role, snapshot};
use crate::util::{parse_count, thousands};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The role this host plays: server, client, or lab (both ends here).
    #[arg(long, value_enum, default_value = "server")]
    pub role: Role,
    /// Connections the run aims at (1000000, 200k, 1M).
    #[arg(long, default_value = "1000000", value_parser = parse_count)]
    pub target: u64,
    /// Profile name (server, client, lab, base) or a profile file path;
    /// default: the role's profile.
    #[arg(long)]
    pub profile: Option<String>,
    /// Read the open-files limit and capabilities of this running process
    /// (/proc/PID/limits) instead of doctor's own.
    #[arg(long)]
    pub pid: Option<i32>,
    /// Client source addresses the run will use (capacity estimate).
    #[arg(long, default_value_t = 1)]
    pub sources: u64,
    /// Server ports the clients connect to (capacity estimate).
    #[arg(long, default_value_t = 1)]
    pub server_ports: u64,
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
    #[arg(long)]
    pub json: bool,
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
    let plan = Plan {
        sources: args.sources.max(1),
        server_ports: args.server_ports.max(1),
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

    if args.json {
        let mut v = serde_json::to_value(&final_report)?;
        if let Some(obj) = v.as_object_mut() {
            let (ok, fix, cannot, na) = final_report.counts();
            obj.insert(
                "summary".into(),
                json!({"ok": ok, "fix": fix, "cannot": cannot, "n/a": na, "passed": !final_report.failed()}),
            );
            obj.insert(
                "capacity_text".into(),
                json!(final_report.capacity.paragraph()),
            );
            obj.extend(out);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_report(&final_report);
    }
    for w in &final_report.warnings {
        eprintln!("c1m doctor: warning: {w}");
    }
    let failed = final_report.failed() || apply_failed;
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

fn print_report(report: &Report) {
    println!(
        "c1m doctor: role {}, target {} connections, profile {} ({})",
        report.role.as_str(),
        thousands(report.target),
        report.profile,
        report.profile_files.join(", ")
    );
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec!["check", "current", "wanted", "status", "why"]);
    if table.width().is_none() {
        table.set_width(150);
    }
    for r in &report.rows {
        let why = match r.failure {
            Some(f) => format!("{}: {}", f.as_str(), r.why),
            None => r.why.clone(),
        };
        table.add_row(vec![
            r.check.clone(),
            r.current.clone(),
            r.wanted.clone(),
            r.status.as_str().to_string(),
            why,
        ]);
    }
    println!("{table}");
    let (ok, fix, cannot, na) = report.counts();
    println!(
        "{ok} ok, {fix} to fix (c1m doctor --apply), {cannot} cannot be fixed here, {na} n/a."
    );
    println!();
    println!("Capacity estimate:");
    for sentence in report.capacity.sentences() {
        for (i, line) in wrap(&sentence, 100).iter().enumerate() {
            println!("{}{line}", if i == 0 { "  - " } else { "    " });
        }
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}
