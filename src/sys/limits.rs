//! The per-process open-files limit (RLIMIT_NOFILE) and whether it can rise:
//! the soft and hard values of this process (getrlimit) or of another one
//! (`/proc/PID/limits`), CAP_SYS_RESOURCE from the `CapEff` mask in
//! `/proc/PID/status` (bit 24), and raising this process's soft limit to its
//! hard limit. On hosts without CAP_SYS_RESOURCE (containers, this machine)
//! the hard limit is a wall: one process holds at most that many sockets,
//! so c1m spreads a run over several processes.
use anyhow::{Context, Result, anyhow};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use serde::Serialize;

/// Bit of CAP_SYS_RESOURCE in the capability masks.
pub const CAP_SYS_RESOURCE_BIT: u32 = 24;

/// An open-files limit; `u64::MAX` stands for "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Nofile {
    pub soft: u64,
    pub hard: u64,
}

/// Which process a reading is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    This,
    Pid(i32),
}

impl Target {
    fn proc_dir(self) -> String {
        match self {
            Target::This => "/proc/self".into(),
            Target::Pid(p) => format!("/proc/{p}"),
        }
    }
}

/// The open-files limit of a process.
pub fn nofile(target: Target) -> Result<Nofile> {
    match target {
        Target::This => {
            let (soft, hard) =
                getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(RLIMIT_NOFILE)")?;
            Ok(Nofile { soft, hard })
        }
        Target::Pid(pid) => {
            let path = format!("/proc/{pid}/limits");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {path} (is process {pid} running?)"))?;
            parse_limits(&text).ok_or_else(|| anyhow!("{path}: no 'Max open files' line"))
        }
    }
}

/// Parse the `Max open files` line of `/proc/PID/limits`.
pub fn parse_limits(text: &str) -> Option<Nofile> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let rest = line.trim_start_matches("Max open files");
    let mut it = rest.split_whitespace();
    let parse = |s: &str| {
        if s == "unlimited" {
            Some(u64::MAX)
        } else {
            s.parse().ok()
        }
    };
    let soft = parse(it.next()?)?;
    let hard = parse(it.next()?)?;
    Some(Nofile { soft, hard })
}

/// Whether a process has CAP_SYS_RESOURCE in its effective set.
pub fn has_cap_sys_resource(target: Target) -> Result<bool> {
    let path = format!("{}/status", target.proc_dir());
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    cap_eff_has(&text, CAP_SYS_RESOURCE_BIT).ok_or_else(|| anyhow!("{path}: no CapEff line"))
}

/// Whether the `CapEff:` mask in a status text has capability `bit`.
pub fn cap_eff_has(status: &str, bit: u32) -> Option<bool> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    let mask = u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()?;
    Some(mask & (1u64 << bit) != 0)
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

/// Sockets one process can hold: the limit minus a slack for stdio, the
/// epoll descriptor, listeners, pipes and log files.
pub const FD_SLACK: u64 = 64;

/// Usable sockets per process for a given limit.
pub fn usable_sockets(limit: u64) -> u64 {
    limit.saturating_sub(FD_SLACK)
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
    fn limits_and_capabilities_parse() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max processes             unlimited            unlimited            processes \n\
Max open files            1024                 20000                files     \n";
        assert_eq!(
            parse_limits(limits),
            Some(Nofile {
                soft: 1024,
                hard: 20000
            })
        );
        let status = "Name:\tx\nCapEff:\t000001fffeffffff\n";
        assert_eq!(cap_eff_has(status, CAP_SYS_RESOURCE_BIT), Some(false));
        assert_eq!(cap_eff_has(status, 21), Some(true));
        let full = "CapEff:\t000001ffffffffff\n";
        assert_eq!(cap_eff_has(full, CAP_SYS_RESOURCE_BIT), Some(true));
        assert_eq!(cap_eff_has("Name: x\n", 24), None);
    }

    #[test]
    fn this_process_limit_matches_proc() {
        let me = nofile(Target::This).unwrap();
        let via_proc = nofile(Target::Pid(std::process::id() as i32)).unwrap();
        assert_eq!(me, via_proc);
        assert!(usable_sockets(20000) >= 19900 && usable_sockets(20000) < 20000);
    }
}
