//! Before anything starts: the private network namespace, the lab profile
//! applied for this run (and rolled back on drop), and the capacity check
//! that refuses a target this host cannot hold.
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::sys::netns;
use crate::util::thousands;

use super::{LabConfig, NetnsMode};

/// Enter a private network namespace according to `mode`, with a TCP
/// established hash table of its own of `ehash` buckets when asked (see
/// [`ehash_for`]; the host's has `host_buckets`). Returns whether the lab
/// now runs in one, and notes for the report.
pub fn enter_netns(
    mode: NetnsMode,
    ehash: Option<u32>,
    host_buckets: u64,
) -> Result<(bool, Vec<String>)> {
    let enter = || -> std::io::Result<Vec<String>> {
        let Some(n) = ehash else {
            netns::enter_private()?;
            return Ok(Vec::new());
        };
        Ok(vec![match netns::enter_private_with_ehash(n)? {
            netns::Ehash::Own(b) => format!(
                "the lab's namespace has a TCP established hash table of its own: {} buckets (net.ipv4.tcp_child_ehash_entries, set for its creation only; the host's table has {})",
                thousands(b),
                thousands(host_buckets)
            ),
            netns::Ehash::Shared { buckets, why } => format!(
                "the lab's namespace shares the host's TCP established hash table ({} buckets): {why}",
                thousands(buckets)
            ),
        }])
    };
    match mode {
        NetnsMode::Off => Ok((
            false,
            vec!["ran in the host's network namespace (--netns off)".into()],
        )),
        NetnsMode::On => Ok((true, enter()?)),
        NetnsMode::Auto => match enter() {
            Ok(notes) => Ok((true, notes)),
            Err(e) if netns::host_not_restored(&e) => Err(e.into()),
            Err(e) => Ok((
                false,
                vec![format!("ran in the host's network namespace: {e}")],
            )),
        },
    }
}

/// `--ehash-entries`: how many buckets the lab's namespace's own TCP
/// established hash table gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EhashChoice {
    /// Sized for the target when the host's table would hold more than one
    /// of the lab's sockets per bucket; else the host's.
    Auto,
    /// This many buckets (0: the host's table).
    Entries(u32),
}

/// The value parser of `--ehash-entries`: `auto`, or a count (2M, 4194304;
/// 0 for the host's table).
pub fn parse_ehash(text: &str) -> Result<EhashChoice, String> {
    if text == "auto" {
        return Ok(EhashChoice::Auto);
    }
    let n = crate::util::parse_count(text)?;
    u32::try_from(n)
        .ok()
        .filter(|n| *n <= netns::EHASH_MAX)
        .map(EhashChoice::Entries)
        .ok_or_else(|| {
            format!(
                "{text}: at most {} buckets (2^24, the kernel's limit)",
                thousands(u64::from(netns::EHASH_MAX))
            )
        })
}

/// The buckets of the lab's own TCP established hash table, or None for the
/// host's. Every packet's socket is looked up in that table, and so is each
/// connect()'s 4-tuple; the lab holds both ends of its connections (two
/// sockets each). `auto` gives a table of its own, one bucket per socket
/// (the next power of two), when the host's has fewer buckets than the lab
/// will have sockets: the host sizes its table at boot from RAM (262,144 on
/// 24 GiB), and a million lab connections would put about eight sockets in
/// each bucket. For `--target max` the sockets are as many as memory can
/// hold at the least a socket costs. The table costs 8 bytes a bucket, and
/// goes with the namespace.
pub fn ehash_for(target: u64, choice: EhashChoice, host_buckets: u64) -> Option<u32> {
    match choice {
        EhashChoice::Entries(0) => None,
        EhashChoice::Entries(n) => Some(n),
        EhashChoice::Auto => {
            let sockets = if target == crate::harness::lab::TARGET_MAX {
                crate::sys::procfs::meminfo()
                    .map(|m| m.total / crate::tuning::capacity::KERNEL_MIN_BYTES_PER_SOCKET)
                    .unwrap_or(0)
            } else {
                target.saturating_mul(2)
            };
            (sockets > host_buckets).then(|| {
                sockets
                    .checked_next_power_of_two()
                    .unwrap_or(u64::MAX)
                    .min(u64::from(netns::EHASH_MAX)) as u32
            })
        }
    }
}

/// The lab profile applied for this run; rolled back on drop (normal end,
/// error, Ctrl-C, SIGHUP, SIGQUIT or panic), so the host is left as it
/// was. What a SIGKILL or the OOM killer prevents, the next lab or
/// `c1m doctor --rollback` restores from the state file.
pub struct AppliedProfile {
    sysctl: crate::tuning::sysctl::Sysctl,
    state_path: PathBuf,
    rolled_back: bool,
    /// Held while the lab runs: another lab --apply waits for none and
    /// refuses, and never takes this lab's state for a leftover.
    _lock: nix::fcntl::Flock<std::os::fd::OwnedFd>,
    /// What apply did, for the report.
    pub report: crate::tuning::apply::ApplyReport,
}

impl AppliedProfile {
    /// Restore every saved value now; returns what rollback said.
    pub fn rollback(&mut self) -> Result<crate::tuning::apply::RollbackReport> {
        self.rolled_back = true;
        crate::tuning::apply::rollback(&self.sysctl, &self.state_path, None)
    }
}

impl Drop for AppliedProfile {
    fn drop(&mut self) {
        if !self.rolled_back {
            let result = self.rollback();
            say_failed_rollback("rollback", result, &self.state_path);
        }
    }
}

/// What a rollback run from a destructor (normal end, error, Ctrl-C,
/// panic) could not do, said on stderr: nothing else can report it, and the
/// state file it names is what `c1m doctor --rollback` restores from.
pub(super) fn say_failed_rollback(
    what: &str,
    result: Result<crate::tuning::apply::RollbackReport>,
    state: &std::path::Path,
) {
    match result {
        Ok(r) if r.ok() => {}
        Ok(r) => eprintln!(
            "c1m lab: {what} left errors: {}; state kept in {}",
            r.errors.join("; "),
            state.display()
        ),
        Err(e) => eprintln!(
            "c1m lab: {what} failed: {e:#}; state kept in {}",
            state.display()
        ),
    }
}

/// Lock the lab's state (one lab --apply at a time) and restore what an
/// earlier lab left changed when it died before its rollback (SIGKILL, OOM
/// killer, power loss). Returns the lock, the state path and a note.
pub(super) fn take_lab_state(
    sysctl: &crate::tuning::sysctl::Sysctl,
) -> Result<(
    nix::fcntl::Flock<std::os::fd::OwnedFd>,
    PathBuf,
    Option<String>,
)> {
    use crate::tuning::{apply, safe_fs::Dir};
    let state_path = apply::lab_state_path();
    let dir = Dir::open(&apply::state_dir(), 0o700)?;
    let Some(lock) = dir.try_lock("lab.lock")? else {
        bail!(
            "another c1m lab --apply is running (it holds {}); wait for it to end",
            dir.join("lab.lock").display()
        );
    };
    if apply::State::load(&state_path)?.is_none() {
        return Ok((lock, state_path, None));
    }
    let how = format!(
        "run c1m doctor --rollback --state {} and fix what it says",
        state_path.display()
    );
    let rep = apply::rollback(sysctl, &state_path, None).with_context(|| {
        format!(
            "an earlier lab left its originals in {}; {how}",
            state_path.display()
        )
    })?;
    if !rep.ok() || !rep.kept_in_state.is_empty() {
        bail!(
            "an earlier lab left its originals in {} and they could not all be restored ({}); {how}",
            state_path.display(),
            if rep.errors.is_empty() {
                format!(
                    "{} are kept for their network namespace",
                    rep.kept_in_state.join(", ")
                )
            } else {
                rep.errors.join("; ")
            }
        );
    }
    let restored: Vec<String> = rep
        .keys
        .iter()
        .filter(|k| k.status == apply::KeyStatus::Applied)
        .map(|k| format!("{} {}", k.key, k.after.as_deref().unwrap_or("?")))
        .collect();
    Ok((
        lock,
        state_path,
        Some(format!(
            "an earlier lab ended without rolling back; restored its originals first: {}",
            if restored.is_empty() {
                "nothing had stayed changed".to_string()
            } else {
                restored.join(", ")
            }
        )),
    ))
}

/// What the lab learned before starting anything.
pub struct Preflight {
    pub capacity: crate::tuning::Capacity,
    pub applied: Option<AppliedProfile>,
    pub notes: Vec<String>,
    /// doctor's warning that a one-process server cannot reach the target.
    pub server_warning: Option<String>,
}

/// doctor's plan for the lab of `cfg` at `target`: its source addresses and
/// server ports, as many processes as it takes.
fn lab_plan(cfg: &LabConfig, target: u64) -> crate::tuning::Plan {
    use crate::tuning::{Plan, Role};
    Plan {
        sources: u64::from(cfg.clients) * u64::from(cfg.sources_per_client),
        server_ports: u64::from(cfg.ports),
        ..Plan::new(Role::Lab, target)
    }
}

/// The host as doctor sees it now (after the profile, when preflight
/// applied it; sysctls from `C1M_SYSCTL_ROOT` when set).
fn snapshot_now() -> Result<crate::tuning::Snapshot> {
    let sysctl = crate::tuning::sysctl::Sysctl::from_env();
    crate::tuning::snapshot::take(&sysctl, crate::sys::limits::Target::This)
}

/// doctor's capacity estimate for the lab of `cfg` at `target`, as the
/// host is now (after the profile, when preflight applied it).
pub fn capacity_for(cfg: &LabConfig, target: u64) -> Result<crate::tuning::Capacity> {
    Ok(crate::tuning::capacity::estimate(
        &snapshot_now()?,
        &lab_plan(cfg, target),
    ))
}

/// `--target max`: the most connections the lab of `cfg` could ever reach
/// on this host as it is now ([`crate::tuning::capacity::ramp_bound`]),
/// planned with as many processes as that takes.
pub fn ramp_bound_for(cfg: &LabConfig) -> Result<crate::tuning::Capacity> {
    use crate::tuning::capacity::ramp_bound;
    let snap = snapshot_now()?;
    // Planned for far more than any host holds, the processes are no
    // limit; then planned again for what the other limits allow.
    let open = ramp_bound(&snap, &lab_plan(cfg, 1 << 32));
    Ok(ramp_bound(
        &snap,
        &lab_plan(cfg, open.max_connections.max(1)),
    ))
}

/// Check the host with doctor's code: apply the lab profile when asked
/// (`profile`: a name in profiles/ or a file), then estimate the capacity
/// and refuse a target that does not fit unless `force`.
pub fn preflight(cfg: &LabConfig, profile_name: &str) -> Result<Preflight> {
    use crate::tuning::{self, apply, check, profile, snapshot};
    let sysctl = tuning::sysctl::Sysctl::from_env();
    let plan = lab_plan(cfg, cfg.target);
    let mut notes = Vec::new();
    let mut applied = None;
    if cfg.apply {
        if !nix::unistd::geteuid().is_root() {
            bail!("--apply needs root: it writes kernel settings under /proc/sys");
        }
        let prof = profile::load(profile_name, &profile::ProfileSource::default_source())
            .with_context(|| format!("loading profile {profile_name}"))?;
        let snap = snapshot::take(&sysctl, crate::sys::limits::Target::This)?;
        let rows = check::check(&sysctl, &snap, &prof, &plan)?;
        let (lock, state_path, restored) = take_lab_state(&sysctl)?;
        if let Some(note) = restored {
            eprintln!("c1m lab: {note}");
            notes.push(note);
        }
        let rep = apply::apply(
            &sysctl,
            &state_path,
            &rows.rows,
            apply::ApplyOptions {
                netns_only: false,
                raise_own_nofile: true,
            },
        )?;
        let written = rep.written();
        let failed: Vec<String> = rep
            .keys
            .iter()
            .filter(|k| k.status == apply::KeyStatus::Failed)
            .map(|k| format!("{}: {}", k.key, k.reason.as_deref().unwrap_or("failed")))
            .collect();
        notes.push(format!(
            "applied profile {profile_name} (rolled back at the end): {}",
            if written.is_empty() {
                "nothing needed changing".to_string()
            } else {
                written.join(", ")
            }
        ));
        if !failed.is_empty() {
            notes.push(format!("could not apply: {}", failed.join("; ")));
        }
        if let Some(why) = &rep.aborted {
            notes.push(format!("apply aborted and restored: {why}"));
        }
        applied = Some(AppliedProfile {
            sysctl: sysctl.clone(),
            state_path,
            rolled_back: false,
            _lock: lock,
            report: rep,
        });
    }
    let snap = snapshot::take(&sysctl, crate::sys::limits::Target::This)?;
    let capacity = tuning::capacity::estimate(&snap, &plan);
    // A one-process server (Redis, Mosquitto) stops at its own fd limit
    // whatever the host allows: said before the run, and the run goes on
    // to show it.
    let server_cap = cfg
        .server
        .one_process()
        .then(|| tuning::capacity::one_process_server(&snap, cfg.server.name(), cfg.target))
        .flatten();
    if let Some((_, warning)) = &server_cap {
        notes.push(format!("doctor: {warning}"));
    }
    if !capacity.fits && !cfg.max {
        if !cfg.force {
            bail!(
                "the target of {} connections does not fit this host:\n  {}\n(use --apply to tune the host for the lab, a smaller --target, or --force to run anyway)",
                thousands(cfg.target),
                capacity.sentences().join("\n  ")
            );
        }
        notes.push(format!(
            "--force: capacity estimate said {} connections at most",
            thousands(capacity.max_connections)
        ));
    }
    Ok(Preflight {
        capacity,
        applied,
        notes,
        server_warning: server_cap.map(|(_, w)| w),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_gets_a_table_of_its_own_only_when_the_hosts_is_too_small() {
        let host = 262_144;
        // 100,000 connections: 200,000 sockets fit the host's table.
        assert_eq!(ehash_for(100_000, EhashChoice::Auto, host), None);
        // A million: two million sockets, one bucket each.
        assert_eq!(
            ehash_for(1_000_000, EhashChoice::Auto, host),
            Some(2_097_152)
        );
        // Never past the kernel's 2^24.
        assert_eq!(
            ehash_for(20_000_000, EhashChoice::Auto, host),
            Some(netns::EHASH_MAX)
        );
        // --target max: as many sockets as memory holds at the least a
        // socket costs (more than the host's table on any host with 2 GiB).
        let max = ehash_for(crate::harness::lab::TARGET_MAX, EhashChoice::Auto, host);
        assert!(
            max.is_some_and(|n| n.is_power_of_two() && u64::from(n) > host),
            "{max:?}"
        );
        // Asked for: as asked; 0 is the host's table.
        assert_eq!(
            ehash_for(1_000, EhashChoice::Entries(65_536), host),
            Some(65_536)
        );
        assert_eq!(ehash_for(1_000_000, EhashChoice::Entries(0), host), None);
    }

    #[test]
    fn ehash_entries_parses_auto_and_counts_and_refuses_past_the_kernels_limit() {
        assert_eq!(parse_ehash("auto"), Ok(EhashChoice::Auto));
        assert_eq!(parse_ehash("0"), Ok(EhashChoice::Entries(0)));
        assert_eq!(parse_ehash("2M"), Ok(EhashChoice::Entries(2_000_000)));
        let e = parse_ehash("20M").unwrap_err();
        assert!(e.contains("at most 16,777,216"), "{e}");
        assert!(parse_ehash("lots").is_err());
    }
}
