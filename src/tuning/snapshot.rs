//! One reading of everything that bounds how many connections a host and a
//! process can hold: open-files limits and capabilities, `fs.*` tables,
//! the ephemeral port range, memory, conntrack and epoll. A [`Snapshot`] is
//! plain data so that the capacity arithmetic can be tested on made-up
//! hosts; [`take`] fills one from the running system (sysctls through
//! [`Sysctl`], so `C1M_SYSCTL_ROOT` applies; meminfo, sockstat and the
//! process's limits through the leaf layer's `sys::procfs` and
//! `sys::limits`).
use anyhow::Result;
use serde::Serialize;

use super::sysctl::Sysctl;
use crate::sys::limits::{self, Nofile, Target};
use crate::sys::procfs;

/// The state of connection tracking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Conntrack {
    /// nf_conntrack is not loaded: no table to fill.
    NotLoaded,
    /// Loaded; `count` entries of `max`. A count of 0 means nothing is
    /// tracked here (no rule uses conntrack in this network namespace).
    Loaded { max: u64, count: u64 },
}

impl Conntrack {
    /// Loaded and tracking connections (count above zero).
    pub fn tracking(&self) -> bool {
        matches!(self, Conntrack::Loaded { count, .. } if *count > 0)
    }
}

/// Everything the capacity estimate and the checks read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// The process the limits are about (None: doctor itself).
    pub pid: Option<i32>,
    pub nofile: Nofile,
    pub cap_sys_resource: bool,
    pub nr_open: Option<u64>,
    pub file_max: Option<u64>,
    /// First field of fs.file-nr: file structures allocated now.
    pub files_in_use: Option<u64>,
    pub port_range: Option<(u64, u64)>,
    /// Ranges of net.ipv4.ip_local_reserved_ports.
    pub reserved_ports: Vec<(u64, u64)>,
    pub mem_total: Option<u64>,
    pub mem_available: Option<u64>,
    pub page_size: u64,
    pub conntrack: Conntrack,
    pub epoll_max_user_watches: Option<u64>,
    /// net.ipv4.tcp_mem (pages): min, pressure, max.
    pub tcp_mem: Option<Vec<u64>>,
    /// TCP buffer pages in use now (`mem` of /proc/net/sockstat).
    pub tcp_mem_in_use: Option<u64>,
    /// Whether /proc/sys (or the test root) is mounted writable.
    pub sysctl_writable: bool,
}

/// Read the host and a process (this one, or `--pid`).
pub fn take(sysctl: &Sysctl, target: Target) -> Result<Snapshot> {
    let nofile = limits::nofile(target)?;
    let cap_sys_resource = limits::has_cap_sys_resource(target)?;
    let meminfo = procfs::meminfo().ok();
    let sockstat = procfs::sockstat_tcp().unwrap_or_default();
    let conntrack = match (
        sysctl.read_u64("net.netfilter.nf_conntrack_max"),
        sysctl.read_u64("net.netfilter.nf_conntrack_count"),
    ) {
        (Some(max), Some(count)) => Conntrack::Loaded { max, count },
        _ => Conntrack::NotLoaded,
    };
    Ok(Snapshot {
        pid: match target {
            Target::This => None,
            Target::Pid(p) => Some(p),
        },
        nofile,
        cap_sys_resource,
        nr_open: sysctl.read_u64("fs.nr_open"),
        file_max: sysctl.read_u64("fs.file-max"),
        files_in_use: sysctl.read_u64("fs.file-nr"),
        port_range: sysctl
            .read_numbers("net.ipv4.ip_local_port_range")
            .filter(|v| v.len() == 2)
            .map(|v| (v[0], v[1])),
        reserved_ports: sysctl
            .read("net.ipv4.ip_local_reserved_ports")
            .map(|s| parse_port_list(&s))
            .unwrap_or_default(),
        mem_total: meminfo.map(|m| m.total),
        mem_available: meminfo.and_then(|m| m.available),
        page_size: crate::util::page_size(),
        conntrack,
        epoll_max_user_watches: sysctl.read_u64("fs.epoll.max_user_watches"),
        tcp_mem: sysctl.read_numbers("net.ipv4.tcp_mem"),
        tcp_mem_in_use: sockstat.mem_pages,
        sysctl_writable: sysctl.tree_writable(),
    })
}

/// Parse `ip_local_reserved_ports`: "8000-8100,9000" (empty: none).
pub fn parse_port_list(text: &str) -> Vec<(u64, u64)> {
    text.split(',')
        .filter_map(|part| {
            let part = part.trim();
            if part.is_empty() {
                return None;
            }
            match part.split_once('-') {
                Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
                None => {
                    let p = part.parse().ok()?;
                    Some((p, p))
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_port_lists_parse() {
        assert_eq!(parse_port_list(""), vec![]);
        assert_eq!(
            parse_port_list("8000-8100,9000"),
            vec![(8000, 8100), (9000, 9000)]
        );
    }
}
