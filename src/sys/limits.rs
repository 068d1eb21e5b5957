//! The per-process open-files limit (RLIMIT_NOFILE) and what it means for
//! a run: the soft and hard values of this process (getrlimit) or of
//! another one (`/proc/PID/limits`, through [`procfs`]), CAP_SYS_RESOURCE
//! (bit 24 of `CapEff`), the one way c1m raises its own limit
//! ([`raise_nofile`]), and the one sizing rule serve, flood, doctor's
//! capacity estimate and the lab share: a process holds its limit minus
//! [`FD_SLACK`] (and minus the listeners it keeps open) sockets
//! ([`sockets_per_process`]), so N sockets need [`processes_for`] processes.
//! On hosts without CAP_SYS_RESOURCE (containers, this machine) the hard
//! limit is a wall, which is why c1m spreads a run over several processes.
use anyhow::{Context, Result, anyhow};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use serde::Serialize;

use super::procfs;
pub use super::procfs::Target;

/// Bit of CAP_SYS_RESOURCE in the capability masks.
pub const CAP_SYS_RESOURCE_BIT: u32 = 24;

/// Descriptors every c1m process keeps besides its sockets and listeners:
/// stdio, the epoll descriptor, pipes to its parent or workers, log files,
/// `/proc` files held open, and a margin.
pub const FD_SLACK: u64 = 64;

/// An open-files limit; `u64::MAX` stands for "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Nofile {
    pub soft: u64,
    pub hard: u64,
}

/// The open-files limit of a process.
pub fn nofile(target: Target) -> Result<Nofile> {
    let (soft, hard) = match target {
        Target::This => getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(RLIMIT_NOFILE)")?,
        Target::Pid(pid) => {
            procfs::nofile(target).with_context(|| format!("open-files limit of process {pid}"))?
        }
    };
    Ok(Nofile { soft, hard })
}

/// Whether a process has CAP_SYS_RESOURCE in its effective set.
pub fn has_cap_sys_resource(target: Target) -> Result<bool> {
    let mask = procfs::cap_eff(target).map_err(|e| anyhow!("{e}"))?;
    Ok(mask & (1u64 << CAP_SYS_RESOURCE_BIT) != 0)
}

/// Raise this process's soft open-files limit to its hard limit. Returns
/// the limit before and after.
pub fn raise_soft_to_hard() -> Result<(Nofile, Nofile)> {
    let before = nofile(Target::This)?;
    if before.soft < before.hard {
        setrlimit(Resource::RLIMIT_NOFILE, before.hard, before.hard)
            .context("setrlimit(RLIMIT_NOFILE, soft = hard)")?;
    }
    Ok((before, nofile(Target::This)?))
}

/// Raise this process's soft open-files limit to its hard limit (always
/// allowed) and return the limit now in force: what serve and flood size
/// themselves with. If the limit cannot even be read, 1024 for both (the
/// usual default soft limit).
pub fn raise_nofile() -> Nofile {
    match raise_soft_to_hard() {
        Ok((_, now)) => now,
        Err(_) => nofile(Target::This).unwrap_or(Nofile {
            soft: 1024,
            hard: 1024,
        }),
    }
}

/// Sockets one process can hold under open-files limit `limit` when it also
/// keeps `listeners` listening sockets open: the limit minus those and
/// [`FD_SLACK`], at least 1.
pub fn sockets_per_process(limit: u64, listeners: u64) -> u64 {
    limit
        .saturating_sub(FD_SLACK.saturating_add(listeners))
        .max(1)
}

/// Processes needed for `sockets` sockets when one holds `per_process`
/// (from [`sockets_per_process`]): at least 1.
pub fn processes_for(sockets: u64, per_process: u64) -> u64 {
    sockets.div_ceil(per_process.max(1)).max(1)
}

/// Display a limit value ("unlimited" for `u64::MAX`).
pub fn show(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_limit_matches_proc_and_raising_reaches_hard() {
        let me = nofile(Target::This).unwrap();
        let via_proc = nofile(Target::Pid(std::process::id() as i32)).unwrap();
        assert_eq!(me, via_proc);
        let now = raise_nofile();
        assert_eq!(now.soft, now.hard);
        assert_eq!(now.hard, me.hard);
        let e = nofile(Target::Pid(i32::MAX)).unwrap_err();
        assert!(format!("{e:#}").contains(&i32::MAX.to_string()), "{e:#}");
    }

    #[test]
    fn sizing_keeps_the_slack_and_listeners_free() {
        assert_eq!(sockets_per_process(20_000, 0), 20_000 - FD_SLACK);
        assert_eq!(sockets_per_process(20_000, 20), 20_000 - FD_SLACK - 20);
        assert_eq!(sockets_per_process(10, 20), 1);
        // 1M connections at 20,000 fds: 51 processes, each under its limit.
        let per = sockets_per_process(20_000, 20);
        let n = processes_for(1_000_000, per);
        assert_eq!(n, 51);
        assert!(n * per >= 1_000_000 && (n - 1) * per < 1_000_000);
        assert_eq!(processes_for(0, per), 1);
        assert_eq!(processes_for(5, 0), 5);
    }
}
