//! Before anything starts: the private network namespace, the lab profile
//! applied for this run (and rolled back on drop), and the capacity check
//! that refuses a target this host cannot hold.
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::sys::netns;
use crate::util::thousands;

use super::{LabConfig, NetnsMode};

/// Enter a private network namespace according to `mode`. Returns whether
/// the lab now runs in one, and a note for the report.
pub fn enter_netns(mode: NetnsMode) -> Result<(bool, Option<String>)> {
    match mode {
        NetnsMode::Off => Ok((
            false,
            Some("ran in the host's network namespace (--netns off)".into()),
        )),
        NetnsMode::On => {
            netns::enter_private()?;
            Ok((true, None))
        }
        NetnsMode::Auto => match netns::enter_private() {
            Ok(()) => Ok((true, None)),
            Err(e) => Ok((
                false,
                Some(format!("ran in the host's network namespace: {e}")),
            )),
        },
    }
}

/// The lab profile applied for this run; rolled back on drop (normal end,
/// error, Ctrl-C or panic), so the host is left as it was.
pub struct AppliedProfile {
    sysctl: crate::tuning::sysctl::Sysctl,
    state_path: PathBuf,
    rolled_back: bool,
    /// What apply did, for the report.
    pub report: crate::tuning::apply::ApplyReport,
}

impl AppliedProfile {
    /// Restore every saved value now; returns what rollback said.
    pub fn rollback(&mut self) -> Result<crate::tuning::apply::RollbackReport> {
        self.rolled_back = true;
        let dirs = crate::tuning::apply::PersistDirs::from_env();
        crate::tuning::apply::rollback(&self.sysctl, &self.state_path, &dirs)
    }
}

impl Drop for AppliedProfile {
    fn drop(&mut self) {
        if !self.rolled_back {
            match self.rollback() {
                Ok(r) if r.ok() => {}
                Ok(r) => eprintln!(
                    "c1m lab: rollback left errors: {}; state kept in {}",
                    r.errors.join("; "),
                    self.state_path.display()
                ),
                Err(e) => eprintln!(
                    "c1m lab: rollback failed: {e:#}; state kept in {}",
                    self.state_path.display()
                ),
            }
        }
    }
}

/// What the lab learned before starting anything.
pub struct Preflight {
    pub capacity: crate::tuning::Capacity,
    pub applied: Option<AppliedProfile>,
    pub notes: Vec<String>,
}

/// Check the host with doctor's code: apply the lab profile when asked
/// (`profile`: a name in profiles/ or a file), then estimate the capacity
/// and refuse a target that does not fit unless `force`.
pub fn preflight(cfg: &LabConfig, profile_name: &str) -> Result<Preflight> {
    use crate::tuning::{self, Plan, Role, apply, check, profile, snapshot};
    let sysctl = tuning::sysctl::Sysctl::from_env();
    let plan = Plan {
        sources: u64::from(cfg.clients) * u64::from(cfg.sources_per_client),
        server_ports: u64::from(cfg.ports),
        ..Plan::new(Role::Lab, cfg.target)
    };
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
        let state_path =
            std::env::temp_dir().join(format!("c1m-lab-{}.state.json", std::process::id()));
        let rep = apply::apply(
            &sysctl,
            &state_path,
            &rows.rows,
            apply::ApplyOptions {
                netns_only: false,
                raise_own_nofile: true,
            },
        )?;
        let written: Vec<String> = rep
            .keys
            .iter()
            .filter(|k| k.status == apply::KeyStatus::Applied)
            .map(|k| {
                format!(
                    "{} {} -> {}",
                    k.key,
                    k.before.as_deref().unwrap_or("?"),
                    k.after.as_deref().unwrap_or("?")
                )
            })
            .collect();
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
            report: rep,
        });
    }
    let snap = snapshot::take(&sysctl, crate::sys::limits::Target::This)?;
    let capacity = tuning::capacity::estimate(&snap, &plan);
    if !capacity.fits {
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
    })
}
