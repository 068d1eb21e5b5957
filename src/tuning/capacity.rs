//! The capacity estimate: how many connections a host can hold in a role
//! with its current settings, which limit binds first, and what to do about
//! it. A pure function over a [`Snapshot`] and a [`Plan`], so that `doctor`
//! prints it, `serve` takes its default `--max-connections` from it, and
//! `c1m lab` refuses a target that cannot fit. (`serve --workers auto` and
//! `flood --procs auto` size their process pools by the per-process fd limit
//! alone.)
//!
//! The limits, each turned into a number of connections:
//! - fd per process x processes: one process holds its RLIMIT_NOFILE hard
//!   limit minus [`FD_SLACK`] sockets (or `fs.nr_open` minus the slack when
//!   CAP_SYS_RESOURCE lets the hard limit rise); a run uses as many
//!   processes as the target needs unless the plan fixes the count.
//! - `fs.file-max` minus the file structures already in use.
//! - ports per 4-tuple (client and lab): ephemeral range size (minus
//!   reserved ports) x source addresses x server ports.
//! - memory: MemAvailable / (kernel bytes per socket + c1m's bytes per
//!   socket) / sockets per connection.
//! - conntrack: free entries, only when nf_conntrack is loaded and tracking
//!   (in a fresh network namespace with no rules it tracks nothing).
//! - epoll: `fs.epoll.max_user_watches` (per user, so both ends of a lab).
//!
//! A lab (both ends on one host) uses 2 sockets per connection.
use serde::Serialize;

use super::Role;
use super::snapshot::{Conntrack, Snapshot};
use crate::catalogue::FailureId;
use crate::sys::limits::{FD_SLACK, processes_for, sockets_per_process};
use crate::util::thousands;

/// Kernel memory per TCP socket the estimate counts: 4.5 KiB.
///
/// Where it comes from: `c1m lab --target max --apply` holding 1,977,620
/// connections (3,955,261 TCP sockets, Linux 6.18 x86_64, 24 GiB; report
/// 2026-12-03T00-47-20, `memory_before` and `memory_peak`). Across the run
/// the kernel's unreclaimable slab (`SUnreclaim`) grew by 3,137 B per
/// socket and its reclaimable slab (`SReclaimable`) by 1,936 B. An open
/// socket that an epoll instance watches holds one object in each of these
/// caches (`/proc/slabinfo` object size, and in parentheses with the
/// slab's packing): `TCP` 2,368 (2,521), `sock_inode_cache` 832 (862),
/// `dentry` 192 (195), `filp` 192 (195), `eventpoll_epi` 128,
/// `lsm_inode_cache` 32, `lsm_file_cache` 24, `ep_head` 16: 3,973 B
/// ([`KERNEL_MIN_BYTES_PER_SOCKET`]); a connecting socket adds a 64 B bind
/// bucket. Of the reclaimable 1,936 B, 1,057 B are the socket's inode and
/// dentry ([`PINNED_RECLAIMABLE_BYTES_PER_SOCKET`]); the rest is a
/// `proc_inode_cache` object (696 B) and a second dentry for each open
/// descriptor that something on the host listed in /proc/PID/fd, which the
/// kernel frees under pressure. So a socket costs 3,137 + 1,057 = 4,194 B
/// here; the estimate adds 10% for partly filled slabs and the buffers of a
/// message in flight.
pub const KERNEL_BYTES_PER_SOCKET: u64 = 4608;
/// c1m's own memory per socket (connection state in `serve`/`flood`, and
/// their processes' baselines): 0.5 KiB. The same run measured 392 B: serve's
/// RSS (674 MiB) and the clients' (804 MiB) over the 3,955,261 sockets.
pub const APP_BYTES_PER_SOCKET: u64 = 512;
/// The least kernel memory an open, epoll-watched TCP socket can take on
/// this kernel: the objects listed at [`KERNEL_BYTES_PER_SOCKET`] and
/// nothing else. No connection costs less, so MemAvailable over twice this
/// is a bound a lab can never pass: `--target max` ramps toward it and
/// lets the MemAvailable floor stop it (see [`ramp_bound`]).
pub const KERNEL_MIN_BYTES_PER_SOCKET: u64 = 3973;
/// Reclaimable slab an open socket pins: its inode (`sock_inode_cache`,
/// 862 B with packing) and dentry (195 B). The kernel files both under
/// `SReclaimable`, and MemAvailable counts that as free, but neither can be
/// reclaimed while the socket is open: at 1,977,620 lab connections this
/// was 3.9 GiB of MemAvailable that was not available. See
/// [`usable_memory`].
pub const PINNED_RECLAIMABLE_BYTES_PER_SOCKET: u64 = 1057;

/// What the estimate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub role: Role,
    /// Connections wanted.
    pub target: u64,
    /// Client source addresses (127.0.0.2, 127.0.0.3, ...).
    pub sources: u64,
    /// Server ports the clients connect to.
    pub server_ports: u64,
    /// Processes to use; None: as many as the target needs.
    pub processes: Option<u64>,
    pub kernel_bytes_per_socket: u64,
    pub app_bytes_per_socket: u64,
}

impl Plan {
    /// One source address, one server port, as many processes as needed.
    pub fn new(role: Role, target: u64) -> Plan {
        Plan {
            role,
            target,
            sources: 1,
            server_ports: 1,
            processes: None,
            kernel_bytes_per_socket: KERNEL_BYTES_PER_SOCKET,
            app_bytes_per_socket: APP_BYTES_PER_SOCKET,
        }
    }
}

/// The kinds of limit, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    FdPerProcess,
    FileMax,
    Ports,
    Memory,
    Conntrack,
    EpollWatches,
}

impl LimitKind {
    pub fn label(self) -> &'static str {
        match self {
            LimitKind::FdPerProcess => "fd per process x processes",
            LimitKind::FileMax => "fs.file-max",
            LimitKind::Ports => "ports per 4-tuple",
            LimitKind::Memory => "memory",
            LimitKind::Conntrack => "conntrack",
            LimitKind::EpollWatches => "epoll watches",
        }
    }
}

/// One limit turned into connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limit {
    pub kind: LimitKind,
    pub failure: FailureId,
    /// Connections this limit allows; None when it does not apply here.
    pub max_connections: Option<u64>,
    /// How the number was computed, or why it does not apply.
    pub detail: String,
    /// What to do when this limit binds.
    pub advice: String,
}

/// The estimate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capacity {
    pub role: Role,
    pub target: u64,
    pub sockets_per_connection: u64,
    /// Sockets one process can hold.
    pub per_process_sockets: u64,
    /// Whether the hard open-files limit can rise (CAP_SYS_RESOURCE).
    pub hard_limit_can_rise: bool,
    /// Processes needed to hold the target (both ends for a lab).
    pub processes_needed: u64,
    /// Processes the estimate assumes (the plan's, or `processes_needed`).
    pub processes: u64,
    /// Connections this host can hold: the smallest of the limits.
    pub max_connections: u64,
    /// The limit that gives `max_connections`.
    pub binding: LimitKind,
    /// Whether `max_connections >= target`.
    pub fits: bool,
    pub limits: Vec<Limit>,
}

fn div_ceil(a: u64, b: u64) -> u64 {
    if b == 0 { u64::MAX } else { a.div_ceil(b) }
}

/// Estimate the capacity of the host in `snap` for `plan`.
pub fn estimate(snap: &Snapshot, plan: &Plan) -> Capacity {
    let spc = plan.role.sockets_per_connection();
    let target = plan.target;
    let can_rise = snap.cap_sys_resource;
    let hard = snap.nofile.hard;
    let per_limit = if can_rise {
        snap.nr_open.unwrap_or(hard).max(hard)
    } else {
        hard
    };
    let per_process = sockets_per_process(per_limit, 0);
    // Each end of a lab runs its own processes.
    let processes_needed = processes_for(target, per_process) * spc;
    let processes = plan.processes.unwrap_or(processes_needed).max(1);
    let mut limits = Vec::new();

    let fd_detail = if can_rise {
        format!(
            "{} sockets per process (fs.nr_open {} minus {FD_SLACK} descriptors of slack; CAP_SYS_RESOURCE lets the hard limit rise that far) x {}{}",
            thousands(per_process),
            thousands(per_limit),
            count_processes(processes),
            if spc == 2 {
                " (half of them per end)"
            } else {
                ""
            }
        )
    } else {
        format!(
            "{} sockets per process (RLIMIT_NOFILE hard limit {} minus {FD_SLACK} descriptors of slack) x {}{}",
            thousands(per_process),
            thousands(hard.min(u64::MAX - 1)),
            count_processes(processes),
            if spc == 2 {
                " (half of them per end)"
            } else {
                ""
            }
        )
    };
    let fd_advice = if can_rise {
        "raise the hard limit (limits.d nofile, systemd LimitNOFILE=) up to fs.nr_open, or use more processes".to_string()
    } else {
        format!(
            "the hard limit cannot rise here (no CAP_SYS_RESOURCE), so c1m shards: {} processes of at most {} sockets hold {} connections (serve --workers auto, flood --procs auto)",
            processes_needed,
            thousands(per_process),
            thousands(target)
        )
    };
    limits.push(Limit {
        kind: LimitKind::FdPerProcess,
        failure: FailureId::FdLimit,
        max_connections: Some((processes / spc).saturating_mul(per_process)),
        detail: fd_detail,
        advice: fd_advice,
    });

    limits.push(match (snap.file_max, snap.files_in_use) {
        (Some(max), used) => {
            let free = max.saturating_sub(used.unwrap_or(0));
            Limit {
                kind: LimitKind::FileMax,
                failure: FailureId::SystemFdLimit,
                max_connections: Some(free / spc),
                detail: format!(
                    "fs.file-max {} minus {} in use = {} files{}",
                    thousands(max),
                    thousands(used.unwrap_or(0)),
                    thousands(free),
                    per_conn(spc)
                ),
                // The figure this check needs (what is in use plus the
                // target's files), not the profile's formula, which assumes
                // at most 10,000 in use: after `--apply` wrote that value,
                // asking for it again was no advice at all.
                advice: format!(
                    "raise fs.file-max to at least {} ({} in use + {} for the target; c1m doctor --apply)",
                    thousands(used.unwrap_or(0).saturating_add(spc.saturating_mul(target))),
                    thousands(used.unwrap_or(0)),
                    thousands(spc.saturating_mul(target))
                ),
            }
        }
        (None, _) => na(
            LimitKind::FileMax,
            FailureId::SystemFdLimit,
            "fs.file-max unreadable",
        ),
    });

    limits.push(match (plan.role, snap.port_range) {
        (Role::Server, _) => na(
            LimitKind::Ports,
            FailureId::EphemeralPortsExhausted,
            "a server uses no ephemeral ports",
        ),
        (_, None) => na(
            LimitKind::Ports,
            FailureId::EphemeralPortsExhausted,
            "net.ipv4.ip_local_port_range unreadable",
        ),
        (_, Some((lo, hi))) => {
            let size = (hi + 1).saturating_sub(lo);
            let reserved: u64 = snap
                .reserved_ports
                .iter()
                .map(|&(a, b)| (b.min(hi) + 1).saturating_sub(a.max(lo)))
                .sum();
            let per_tuple = size.saturating_sub(reserved);
            let tuples = plan.sources.max(1) * plan.server_ports.max(1);
            let need_wide = div_ceil(target, 64_512);
            let need_now = div_ceil(target, per_tuple.max(1));
            Limit {
                kind: LimitKind::Ports,
                failure: FailureId::EphemeralPortsExhausted,
                max_connections: Some(per_tuple * tuples),
                detail: format!(
                    "{} ports in {lo}-{hi}{} x {} source address{} x {} server port{}",
                    thousands(per_tuple),
                    if reserved > 0 {
                        format!(" (minus {reserved} reserved)")
                    } else {
                        String::new()
                    },
                    plan.sources.max(1),
                    if plan.sources > 1 { "es" } else { "" },
                    plan.server_ports.max(1),
                    if plan.server_ports > 1 { "s" } else { "" },
                ),
                advice: if lo > 1024 || hi < 65535 {
                    format!(
                        "set net.ipv4.ip_local_port_range = 1024 65535 (64,512 ports per 4-tuple) and use at least {need_wide} (source address, server port) pairs ({need_now} with the current range): more source addresses with IP_BIND_ADDRESS_NO_PORT (flood --sources) or more server ports"
                    )
                } else {
                    format!(
                        "use at least {need_now} (source address, server port) pairs: more source addresses with IP_BIND_ADDRESS_NO_PORT (flood --sources) or more server ports"
                    )
                },
            }
        }
    });

    let per_socket = plan.kernel_bytes_per_socket + plan.app_bytes_per_socket;
    limits.push(match snap.mem_available {
        Some(avail) => Limit {
            kind: LimitKind::Memory,
            failure: FailureId::OutOfMemory,
            max_connections: Some(avail / per_socket.max(1) / spc),
            detail: format!(
                "MemAvailable {} MiB / ({} KiB kernel + {} KiB c1m per socket){}",
                thousands(avail / (1024 * 1024)),
                kib(plan.kernel_bytes_per_socket),
                kib(plan.app_bytes_per_socket),
                per_conn(spc)
            ),
            advice: "add RAM, lower the target, or keep per-connection buffers small (tcp_rmem/tcp_wmem defaults of 4 KiB)".into(),
        },
        None => na(LimitKind::Memory, FailureId::OutOfMemory, "MemAvailable unreadable"),
    });

    limits.push(match snap.conntrack {
        Conntrack::NotLoaded => na(
            LimitKind::Conntrack,
            FailureId::ConntrackFull,
            "nf_conntrack not loaded",
        ),
        Conntrack::Loaded { max, count: 0 } => na(
            LimitKind::Conntrack,
            FailureId::ConntrackFull,
            &format!(
                "nf_conntrack loaded (max {}) but tracking nothing (count 0): no rule uses it here",
                thousands(max)
            ),
        ),
        Conntrack::Loaded { max, count } => Limit {
            kind: LimitKind::Conntrack,
            failure: FailureId::ConntrackFull,
            max_connections: Some(max.saturating_sub(count)),
            detail: format!(
                "nf_conntrack_max {} minus {} tracked (one entry per connection)",
                thousands(max),
                thousands(count)
            ),
            advice: format!(
                "raise net.netfilter.nf_conntrack_max to at least {} (hashsize about max/4), or exempt the test ports with NOTRACK",
                thousands(target * 12 / 10)
            ),
        },
    });

    limits.push(match snap.epoll_max_user_watches {
        Some(w) => Limit {
            kind: LimitKind::EpollWatches,
            failure: FailureId::EpollWatchLimit,
            max_connections: Some(w / spc),
            detail: format!(
                "fs.epoll.max_user_watches {} (per user){}",
                thousands(w),
                per_conn(spc)
            ),
            advice: format!(
                "raise fs.epoll.max_user_watches to at least {}",
                thousands(2 * target)
            ),
        },
        None => na(
            LimitKind::EpollWatches,
            FailureId::EpollWatchLimit,
            "fs.epoll.max_user_watches unreadable",
        ),
    });

    let (binding, max_connections) = limits
        .iter()
        .filter_map(|l| l.max_connections.map(|m| (l.kind, m)))
        .fold((LimitKind::FdPerProcess, u64::MAX), |best, cur| {
            if cur.1 < best.1 { cur } else { best }
        });
    Capacity {
        role: plan.role,
        target,
        sockets_per_connection: spc,
        per_process_sockets: per_process,
        hard_limit_can_rise: can_rise,
        processes_needed,
        processes,
        max_connections,
        binding,
        fits: max_connections >= target,
        limits,
    }
}

/// Shorthand for `estimate(snap, &Plan::new(role, target))`: one source
/// address, one server port, as many processes as needed.
pub fn estimate_for(snap: &Snapshot, role: Role, target: u64) -> Capacity {
    estimate(snap, &Plan::new(role, target))
}

/// The most connections `plan` could ever reach on the host in `snap`:
/// the estimate with memory at [`KERNEL_MIN_BYTES_PER_SOCKET`] a socket
/// and no c1m memory, every other limit as it is. `c1m lab --target max`
/// ramps toward this, past the (calibrated, conservative) estimate, so that
/// a measured limit stops it: the MemAvailable floor, or the first failure
/// that names fs.file-max, ports or conntrack. When another limit than
/// memory binds here, the ramp can reach it, and that limit is the ceiling.
pub fn ramp_bound(snap: &Snapshot, plan: &Plan) -> Capacity {
    estimate(
        snap,
        &Plan {
            kernel_bytes_per_socket: KERNEL_MIN_BYTES_PER_SOCKET,
            app_bytes_per_socket: 0,
            ..*plan
        },
    )
}

/// Memory a ramp can still take: `mem_available` (bytes) minus the
/// reclaimable slab that `tcp_sockets` open sockets pin
/// ([`PINNED_RECLAIMABLE_BYTES_PER_SOCKET`] each), which MemAvailable
/// counts as free. Measured at a ramp's floor, MemAvailable alone would
/// have let a 24 GiB host go on until the OOM killer.
pub fn usable_memory(mem_available: u64, tcp_sockets: u64) -> u64 {
    mem_available.saturating_sub(tcp_sockets.saturating_mul(PINNED_RECLAIMABLE_BYTES_PER_SOCKET))
}

/// Bytes as KiB with at most two decimals: "4.5", "3.88", "5".
pub fn kib(bytes: u64) -> String {
    let s = format!("{:.2}", bytes as f64 / 1024.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// "1 process", "51 processes".
fn count_processes(n: u64) -> String {
    if n == 1 {
        "1 process".into()
    } else {
        format!("{n} processes")
    }
}

fn per_conn(spc: u64) -> &'static str {
    if spc == 2 {
        " / 2 sockets per connection"
    } else {
        ""
    }
}

fn na(kind: LimitKind, failure: FailureId, why: &str) -> Limit {
    Limit {
        kind,
        failure,
        max_connections: None,
        detail: why.to_string(),
        advice: String::new(),
    }
}

impl Capacity {
    /// The limit that binds.
    pub fn binding_limit(&self) -> &Limit {
        self.limits
            .iter()
            .find(|l| l.kind == self.binding)
            .unwrap_or(&self.limits[0])
    }

    /// The estimate as a few plain sentences, for terminals and reports.
    pub fn paragraph(&self) -> String {
        self.sentences().join(" ")
    }

    /// The estimate in parts: the per-process limit, the host's capacity and
    /// binding limit, whether the target fits (and what to do), the other
    /// limits.
    pub fn sentences(&self) -> Vec<String> {
        let mut out = Vec::new();
        let role = self.role.as_str();
        if self.hard_limit_can_rise {
            out.push(format!(
                "One process can hold up to {} sockets: its hard open-files limit can rise (CAP_SYS_RESOURCE) up to fs.nr_open; {} process(es) hold {} connections.",
                thousands(self.per_process_sockets),
                self.processes_needed,
                thousands(self.target)
            ));
        } else {
            out.push(format!(
                "One process can hold at most {} sockets (its hard open-files limit minus {FD_SLACK} spare descriptors), and the hard limit cannot be raised here: the process lacks CAP_SYS_RESOURCE. So c1m shards over processes: {} processes for {} connections{}.",
                thousands(self.per_process_sockets),
                self.processes_needed,
                thousands(self.target),
                if self.sockets_per_connection == 2 {
                    " (half serving, half connecting: 2 sockets per connection on one host)"
                } else {
                    ""
                }
            ));
        }
        let b = self.binding_limit();
        out.push(format!(
            "This host can hold about {} connections as {} with its current settings and {}. Binding limit: {} ({}): {}.",
            thousands(self.max_connections),
            article_role(role),
            count_processes(self.processes),
            self.binding.label(),
            b.failure.as_str(),
            b.detail
        ));
        if self.fits {
            let mut s = format!("The target of {} fits.", thousands(self.target));
            if self.binding == LimitKind::FdPerProcess {
                s.push_str(&format!(" What to do: {}.", b.advice));
            }
            out.push(s);
        } else {
            out.push(format!(
                "The target of {} does NOT fit. What to do: {}.",
                thousands(self.target),
                b.advice
            ));
        }
        let others: Vec<String> = self
            .limits
            .iter()
            .filter(|l| l.kind != self.binding)
            .map(|l| match l.max_connections {
                Some(m) => format!("{} {}", l.kind.label(), thousands(m)),
                None => format!("{} n/a ({})", l.kind.label(), l.detail),
            })
            .collect();
        out.push(format!(
            "Other limits (connections): {}.",
            others.join("; ")
        ));
        out
    }
}

fn article_role(role: &str) -> String {
    match role {
        "lab" => "a lab (both ends on this host)".into(),
        r => format!("a {r}"),
    }
}

/// A server whose process count is fixed, each process holding its
/// clients within its own descriptor limit: Redis and Mosquitto are one
/// process, `c1m serve --workers N` is N.
#[derive(Debug, Clone, Copy)]
pub struct FixedServer<'a> {
    /// How the sentence names it ("redis", "c1m serve --workers 1").
    pub name: &'a str,
    pub processes: u64,
    /// Descriptors each process keeps for itself (Redis: 32; c1m:
    /// [`FD_SLACK`]).
    pub reserved: u64,
    /// What to do instead, after raising the hard limit ("run several
    /// instances").
    pub instead: &'a str,
    /// The catalogue ids the sentence ends with.
    pub failures: &'a [FailureId],
}

/// The most clients `server` holds with the hard RLIMIT_NOFILE in `snap`,
/// whatever else the host allows, and the sentence doctor and the lab say
/// before the run; `None` when the target fits under it.
pub fn fixed_process_server(
    snap: &Snapshot,
    server: &FixedServer,
    target: u64,
) -> Option<(u64, String)> {
    let hard = snap.nofile.hard;
    let processes = server.processes.max(1);
    let cap = hard
        .saturating_sub(server.reserved)
        .saturating_mul(processes);
    if target <= cap {
        return None;
    }
    let rise = if snap.cap_sys_resource {
        format!(
            "raise its hard limit (systemd LimitNOFILE=, ulimit -Hn, up to fs.nr_open {})",
            snap.nr_open.map_or("?".into(), thousands)
        )
    } else {
        "the hard limit cannot rise here (no CAP_SYS_RESOURCE)".to_string()
    };
    let what = if processes == 1 {
        format!(
            "{} is one process: with RLIMIT_NOFILE hard limit {} it holds",
            server.name,
            thousands(hard)
        )
    } else {
        format!(
            "{} is {processes} processes: with RLIMIT_NOFILE hard limit {} each they hold",
            server.name,
            thousands(hard)
        )
    };
    let ids: Vec<&str> = server.failures.iter().map(|f| f.as_str()).collect();
    Some((
        cap,
        format!(
            "{what} at most about {} clients, below the target of {}; {rise}, or {} ({})",
            thousands(cap),
            thousands(target),
            server.instead,
            ids.join(", ")
        ),
    ))
}

/// A server that holds every client in one process (Redis, Mosquitto):
/// whatever the host allows, that process's own descriptor limit caps it.
/// Returns the cap and the sentence doctor and the lab say before the run,
/// or `None` when the target fits under it.
pub fn one_process_server(snap: &Snapshot, server: &str, target: u64) -> Option<(u64, String)> {
    // Redis keeps 32 descriptors for itself (CONFIG_MIN_RESERVED_FDS);
    // other one-process servers need about as many.
    fixed_process_server(
        snap,
        &FixedServer {
            name: server,
            processes: 1,
            reserved: 32,
            instead: "run several instances",
            failures: &[FailureId::ServerConnectionLimit, FailureId::FdLimit],
        },
        target,
    )
}

/// `c1m serve --workers N` (or `--procs N`): N processes, each holding at
/// most its hard limit minus [`FD_SLACK`] descriptors. The sentence doctor
/// says when the target does not fit in them, or `None`.
pub fn fixed_serve_workers(snap: &Snapshot, workers: u64, target: u64) -> Option<(u64, String)> {
    let name = format!("c1m serve --workers {workers}");
    let per_process = sockets_per_process(snap.nofile.hard, 0);
    let instead = format!(
        "use --workers auto ({} processes of at most {} sockets)",
        processes_for(target, per_process),
        thousands(per_process)
    );
    fixed_process_server(
        snap,
        &FixedServer {
            name: &name,
            processes: workers,
            reserved: FD_SLACK,
            instead: &instead,
            failures: &[FailureId::FdLimit],
        },
        target,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::limits::Nofile;

    /// This machine, roughly: hard 20000 without CAP_SYS_RESOURCE, 24 GiB.
    fn host() -> Snapshot {
        Snapshot {
            pid: None,
            nofile: Nofile {
                soft: 20000,
                hard: 20000,
            },
            cap_sys_resource: false,
            nr_open: Some(1_048_576),
            file_max: Some(2_466_183),
            files_in_use: Some(449),
            port_range: Some((32768, 60999)),
            reserved_ports: vec![],
            mem_total: Some(24 << 30),
            mem_available: Some(23 << 30),
            page_size: 4096,
            conntrack: Conntrack::Loaded {
                max: 262_144,
                count: 0,
            },
            epoll_max_user_watches: Some(5_491_533),
            tcp_mem: Some(vec![287901, 383869, 575802]),
            tcp_mem_in_use: Some(192),
            sysctl_writable: true,
        }
    }

    #[test]
    fn server_on_this_host_is_bound_by_fd_per_process_and_shards() {
        let c = estimate(&host(), &Plan::new(Role::Server, 1_000_000));
        assert_eq!(c.per_process_sockets, 20000 - FD_SLACK);
        assert_eq!(c.processes_needed, 1_000_000u64.div_ceil(19_936));
        assert_eq!(c.processes_needed, 51);
        assert_eq!(c.binding, LimitKind::FdPerProcess);
        assert_eq!(c.max_connections, 51 * 19_936);
        assert!(c.fits);
        let ports = c
            .limits
            .iter()
            .find(|l| l.kind == LimitKind::Ports)
            .unwrap();
        assert_eq!(ports.max_connections, None);
        let ct = c
            .limits
            .iter()
            .find(|l| l.kind == LimitKind::Conntrack)
            .unwrap();
        assert_eq!(ct.max_connections, None, "count 0: not tracking");
        let p = c.paragraph();
        assert!(p.contains("19,936 sockets"), "{p}");
        assert!(p.contains("cannot be raised"), "{p}");
        assert!(p.contains("CAP_SYS_RESOURCE"), "{p}");
        assert!(p.contains("51 processes"), "{p}");
    }

    #[test]
    fn client_is_bound_by_ports_per_four_tuple() {
        let c = estimate(&host(), &Plan::new(Role::Client, 200_000));
        assert_eq!(c.binding, LimitKind::Ports);
        assert_eq!(c.max_connections, 28_232);
        assert!(!c.fits);
        assert!(c.paragraph().contains("does NOT fit"));
        // 8 sources on the default range: 8 x 28,232 = 225,856 >= 200k.
        let plan = Plan {
            sources: 8,
            ..Plan::new(Role::Client, 200_000)
        };
        let c = estimate(&host(), &plan);
        assert_eq!(c.limits[2].max_connections, Some(8 * 28_232));
        assert_eq!(c.binding, LimitKind::FdPerProcess);
        assert!(c.fits);
        // Reserved ports inside the range are not usable.
        let mut snap = host();
        snap.reserved_ports = vec![(32768, 32867), (8000, 8100)];
        let c = estimate(&snap, &Plan::new(Role::Client, 10));
        assert_eq!(c.limits[2].max_connections, Some(28_232 - 100));
    }

    #[test]
    fn the_file_max_advice_counts_the_files_in_use_like_the_check() {
        // lab --apply wrote fs.file-max 10,600 (2 x 300 + 10,000) on a host
        // with 10,200 files in use: 200 lab connections fit, not 300.
        let mut snap = host();
        snap.file_max = Some(10_600);
        snap.files_in_use = Some(10_200);
        let c = estimate(&snap, &Plan::new(Role::Lab, 300));
        assert!(!c.fits);
        assert_eq!(c.binding, LimitKind::FileMax);
        let advice = &c.limits[1].advice;
        assert!(
            advice.contains("at least 10,800") && !advice.contains("10,600"),
            "{advice}"
        );
        // The base profile asks for enough with that many in use.
        let prof =
            super::super::profile::load("base", &super::super::profile::ProfileSource::Builtin)
                .unwrap();
        let fm = prof
            .entries
            .iter()
            .find(|e| e.key == "fs.file-max")
            .unwrap();
        let vars = super::super::profile::Vars {
            target: 300,
            mem_pages: 0,
            nofile_hard: 20_000,
            files_in_use: 10_200,
        };
        let want = match fm.wanted(&vars).unwrap() {
            super::super::profile::Wanted::Numbers(v) => v[0],
            other => panic!("{other:?}"),
        };
        snap.file_max = Some(want);
        assert!(estimate(&snap, &Plan::new(Role::Lab, 300)).fits, "{want}");
    }

    #[test]
    fn lab_counts_two_sockets_per_connection() {
        let mut snap = host();
        snap.file_max = Some(1_000_000);
        snap.files_in_use = Some(0);
        let plan = Plan {
            sources: 40,
            ..Plan::new(Role::Lab, 1_000_000)
        };
        let c = estimate(&snap, &plan);
        assert_eq!(c.sockets_per_connection, 2);
        assert_eq!(c.processes_needed, 102);
        assert_eq!(c.binding, LimitKind::FileMax);
        assert_eq!(c.max_connections, 500_000);
        assert!(!c.fits);
        let mem = c
            .limits
            .iter()
            .find(|l| l.kind == LimitKind::Memory)
            .unwrap();
        assert_eq!(mem.max_connections, Some((23u64 << 30) / 5120 / 2));
        assert!(
            mem.detail
                .contains("(4.5 KiB kernel + 0.5 KiB c1m per socket) / 2 sockets"),
            "{}",
            mem.detail
        );
    }

    #[test]
    fn the_ramp_bound_passes_the_memory_estimate_but_not_other_limits() {
        // 23 GiB available and a file-max raised past it: the estimate
        // (5 KiB a socket) binds on memory, the ramp may go on to what
        // memory could hold at the least a socket costs.
        let mut snap = host();
        snap.file_max = Some(20_000_000);
        snap.conntrack = Conntrack::NotLoaded;
        snap.epoll_max_user_watches = Some(20_000_000);
        let plan = Plan {
            sources: 30,
            server_ports: 20,
            ..Plan::new(Role::Lab, 1 << 32)
        };
        let est = estimate(&snap, &plan);
        let bound = ramp_bound(&snap, &plan);
        assert_eq!(est.binding, LimitKind::Memory);
        assert_eq!(bound.binding, LimitKind::Memory);
        assert_eq!(est.max_connections, (23u64 << 30) / 5120 / 2);
        assert_eq!(bound.max_connections, (23u64 << 30) / 3973 / 2);
        assert!(bound.max_connections > est.max_connections * 5 / 4);
        // Other limits are the same in both: the default file-max binds
        // the ramp itself, and the ramp can reach it.
        snap.file_max = Some(2_466_183);
        let bound = ramp_bound(&snap, &plan);
        assert_eq!(bound.binding, LimitKind::FileMax);
        assert_eq!(bound.max_connections, (2_466_183 - 449) / 2);
        assert_eq!(
            estimate(&snap, &plan).max_connections,
            bound.max_connections
        );
    }

    #[test]
    fn kib_reads_short() {
        assert_eq!(kib(4608), "4.5");
        assert_eq!(kib(5120), "5");
        assert_eq!(kib(3973), "3.88");
        assert_eq!(kib(0), "0");
    }

    #[test]
    fn usable_memory_leaves_out_what_open_sockets_pin() {
        // The lab at its peak of 1,977,620 connections (3,955,261 TCP
        // sockets): MemAvailable 11,489,648 KiB, of which 3.9 GiB were the
        // sockets' inodes and dentries.
        let avail = 11_489_648u64 * 1024;
        let usable = usable_memory(avail, 3_955_261);
        assert_eq!(avail - usable, 3_955_261 * 1057);
        assert!((usable >> 20) < 7300 && (usable >> 20) > 7000, "{usable}");
        assert_eq!(usable_memory(1 << 30, 0), 1 << 30);
        assert_eq!(usable_memory(1 << 20, 1 << 20), 0);
    }

    #[test]
    fn memory_conntrack_and_epoll_bind_when_smallest() {
        let mut snap = host();
        snap.mem_available = Some(5120 * 1000);
        let c = estimate(&snap, &Plan::new(Role::Server, 5000));
        assert_eq!((c.binding, c.max_connections), (LimitKind::Memory, 1000));

        let mut snap = host();
        snap.conntrack = Conntrack::Loaded {
            max: 262_144,
            count: 144,
        };
        let c = estimate(&snap, &Plan::new(Role::Server, 1_000_000));
        assert_eq!(
            (c.binding, c.max_connections),
            (LimitKind::Conntrack, 262_000)
        );
        assert!(c.paragraph().contains("conntrack_full"));

        let mut snap = host();
        snap.epoll_max_user_watches = Some(30_000);
        snap.conntrack = Conntrack::NotLoaded;
        let c = estimate(&snap, &Plan::new(Role::Lab, 100_000));
        assert_eq!(
            (c.binding, c.max_connections),
            (LimitKind::EpollWatches, 15_000)
        );
    }

    #[test]
    fn a_capable_process_can_rise_to_nr_open_and_fixed_processes_cap() {
        let mut snap = host();
        snap.cap_sys_resource = true;
        let c = estimate(&snap, &Plan::new(Role::Server, 1_000_000));
        assert!(c.hard_limit_can_rise);
        assert_eq!(c.per_process_sockets, 1_048_576 - FD_SLACK);
        assert_eq!(c.processes_needed, 1);
        let plan = Plan {
            processes: Some(4),
            ..Plan::new(Role::Server, 1_000_000)
        };
        let c = estimate(&host(), &plan);
        assert_eq!(c.max_connections, 4 * 19_936);
        assert_eq!(c.binding, LimitKind::FdPerProcess);
        assert!(!c.fits);
    }

    #[test]
    fn a_one_process_server_is_capped_by_its_fd_limit() {
        let snap = host();
        assert_eq!(one_process_server(&snap, "redis", 19_968), None);
        let (cap, w) = one_process_server(&snap, "redis", 30_000).unwrap();
        assert_eq!(cap, 19_968);
        assert!(
            w.contains("redis is one process") && w.contains("19,968") && w.contains("cannot rise"),
            "{w}"
        );
        assert!(
            w.ends_with("or run several instances (server_connection_limit, fd_limit)"),
            "{w}"
        );
    }

    #[test]
    fn fixed_serve_workers_agree_with_the_estimate_of_that_many_processes() {
        let snap = host();
        // One worker: 20,000 - 64 = 19,936, as the estimate's fd limit.
        assert_eq!(fixed_serve_workers(&snap, 1, 19_936), None);
        let (cap, w) = fixed_serve_workers(&snap, 1, 30_000).unwrap();
        let plan = Plan {
            processes: Some(1),
            ..Plan::new(Role::Server, 30_000)
        };
        let c = estimate(&snap, &plan);
        assert_eq!((cap, c.max_connections, c.fits), (19_936, 19_936, false));
        assert!(
            w.starts_with("c1m serve --workers 1 is one process: with RLIMIT_NOFILE hard limit 20,000 it holds at most about 19,936 clients, below the target of 30,000"),
            "{w}"
        );
        assert!(
            w.ends_with("or use --workers auto (2 processes of at most 19,936 sockets) (fd_limit)"),
            "{w}"
        );
        // Three workers hold three times as much.
        let (cap, w) = fixed_serve_workers(&snap, 3, 100_000).unwrap();
        assert_eq!(cap, 3 * 19_936);
        assert!(
            w.contains("is 3 processes") && w.contains("each they hold"),
            "{w}"
        );
        assert_eq!(fixed_serve_workers(&snap, 3, 59_808), None);
        // A capable process is told it may raise its limit.
        let mut snap = host();
        snap.cap_sys_resource = true;
        let (_, w) = fixed_serve_workers(&snap, 1, 30_000).unwrap();
        assert!(
            w.contains("raise its hard limit") && w.contains("1,048,576"),
            "{w}"
        );
    }
}
