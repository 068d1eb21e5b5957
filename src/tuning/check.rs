//! Checking a profile against the host: one row per setting with its
//! current and wanted values, a status (ok / fix / cannot / n/a) and why it
//! matters (the failure id it prevents and one sentence). `fix` means
//! `c1m doctor --apply` can change it; `cannot` means it needs something
//! this host or process does not have (CAP_SYS_RESOURCE, a writable key,
//! more RAM); `n/a` means the setting does not apply here (a module that is
//! not loaded, conntrack that tracks nothing, a key this network namespace
//! does not have).
//!
//! The exit status of doctor answers one question: can this host hold the
//! target? A failing row *blocks* only when the capacity limit it governs
//! (fs.file-max, epoll watches, conntrack, the port range, memory, the fd
//! limit when sharding cannot help) allows fewer connections than the
//! target; every other fix/cannot row is a recommendation. [`Verdict`] says
//! which, naming each blocking limit and whether `--apply` lifts it.
use serde::Serialize;

use super::capacity::{self, Capacity, LimitKind, Plan};
use super::profile::{Entry, Op, Profile, ProfileError, Vars, Wanted};
use super::snapshot::{Conntrack, Snapshot};
use super::sysctl::{Scope, Sysctl, SysctlError, Writable, scope};
use crate::catalogue::FailureId;
use crate::sys::limits::{self, sockets_per_process};
use crate::util::thousands;

/// A row's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    #[serde(rename = "ok")]
    Ok,
    #[serde(rename = "fix")]
    Fix,
    #[serde(rename = "cannot")]
    Cannot,
    #[serde(rename = "n/a")]
    NotApplicable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Fix => "fix",
            Status::Cannot => "cannot",
            Status::NotApplicable => "n/a",
        }
    }

    /// Whether the row counts as a failed check (exit status 1).
    pub fn fails(self) -> bool {
        matches!(self, Status::Fix | Status::Cannot)
    }
}

/// What a row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Sysctl,
    Rlimit,
    Host,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub check: String,
    pub kind: Kind,
    pub scope: Scope,
    pub current: String,
    /// Comparison and value: ">= 2010000".
    pub wanted: String,
    pub status: Status,
    pub failure: Option<FailureId>,
    /// One sentence: why the setting matters, and for fix/cannot/n/a why
    /// the status.
    pub why: String,
    /// `file:line` of the profile line.
    pub origin: Option<String>,
    /// The value `--apply` would write (sysctl rows with status fix).
    pub apply_value: Option<String>,
    /// Whether this row keeps the target from fitting: it fails and the
    /// capacity limit it governs allows fewer connections than the target.
    /// A failing row that does not block is a recommendation.
    pub blocks: bool,
}

/// The result of a check.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub role: super::Role,
    pub target: u64,
    pub profile: String,
    pub profile_files: Vec<String>,
    pub sysctl_root: String,
    pub rows: Vec<Row>,
    pub warnings: Vec<String>,
    pub snapshot: Snapshot,
    pub capacity: Capacity,
}

impl Report {
    /// Whether any row failed (fix or cannot), blocking or not.
    pub fn failed(&self) -> bool {
        self.rows.iter().any(|r| r.status.fails())
    }

    /// Whether the target does not fit as things stand (exit status 1).
    pub fn blocked(&self) -> bool {
        !self.capacity.fits || self.rows.iter().any(|r| r.blocks)
    }

    /// Failing rows that do not block the target.
    pub fn recommendations(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.status.fails() && !r.blocks)
            .count()
    }

    /// The answer to "can this host hold the target?", with every limit
    /// below the target and what lifts it.
    pub fn verdict(&self) -> Verdict {
        verdict(self)
    }

    /// Counts of each status: (ok, fix, cannot, n/a).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let n = |s| self.rows.iter().filter(|r| r.status == s).count();
        (
            n(Status::Ok),
            n(Status::Fix),
            n(Status::Cannot),
            n(Status::NotApplicable),
        )
    }
}

/// Check `profile` against the host in `snap` (sysctls read through
/// `sysctl`) for `plan`.
pub fn check(
    sysctl: &Sysctl,
    snap: &Snapshot,
    profile: &Profile,
    plan: &Plan,
) -> Result<Report, ProfileError> {
    let capacity = capacity::estimate(snap, plan);
    let vars = Vars {
        target: plan.target,
        mem_pages: snap.mem_total.unwrap_or(0) / snap.page_size.max(1),
        nofile_hard: snap.nofile.hard,
        files_in_use: snap.files_in_use.unwrap_or(0),
    };
    let mut rows = Vec::new();
    let mut warnings = profile.warnings.clone();
    for entry in &profile.entries {
        let wanted = entry.wanted(&vars)?;
        let row = if entry.key.starts_with("rlimit.") {
            rlimit_row(entry, &wanted, snap, &capacity)
        } else {
            sysctl_row(sysctl, entry, &wanted, snap, &mut warnings)
        };
        rows.push(row);
    }
    rows.extend(host_rows(snap, plan));
    for row in &mut rows {
        row.blocks = row.status.fails()
            && governed_limit(&row.check)
                .and_then(|k| capacity.limits.iter().find(|l| l.kind == k))
                .and_then(|l| l.max_connections)
                .is_some_and(|m| m < plan.target);
    }
    Ok(Report {
        role: plan.role,
        target: plan.target,
        profile: profile.name.clone(),
        profile_files: profile.files.clone(),
        sysctl_root: sysctl.root().display().to_string(),
        rows,
        warnings,
        snapshot: snap.clone(),
        capacity,
    })
}

fn wanted_text(op: Op, wanted: &Wanted) -> String {
    let w = wanted.to_string();
    if w.is_empty() {
        format!("{} (empty)", op.symbol())
    } else {
        format!("{} {w}", op.symbol())
    }
}

fn why(entry: &Entry) -> String {
    entry
        .why
        .clone()
        .unwrap_or_else(|| entry.prevents.info().explanation.to_string())
}

fn base_row(entry: &Entry, wanted: &Wanted, current: String, status: Status, why: String) -> Row {
    Row {
        check: entry.key.clone(),
        kind: if entry.key.starts_with("rlimit.") {
            Kind::Rlimit
        } else {
            Kind::Sysctl
        },
        scope: scope(&entry.key),
        current,
        wanted: wanted_text(entry.op, wanted),
        status,
        failure: Some(entry.prevents),
        why,
        origin: Some(entry.origin.to_string()),
        apply_value: None,
        blocks: false,
    }
}

fn sysctl_row(
    sysctl: &Sysctl,
    entry: &Entry,
    wanted: &Wanted,
    snap: &Snapshot,
    warnings: &mut Vec<String>,
) -> Row {
    let key = entry.key.as_str();
    if key.starts_with("net.netfilter.nf_conntrack") && !snap.conntrack.tracking() {
        let (current, reason) = match snap.conntrack {
            Conntrack::NotLoaded => (
                "-".to_string(),
                "nf_conntrack is not loaded, so there is no table to fill".to_string(),
            ),
            Conntrack::Loaded { .. } => (
                sysctl.read(key).unwrap_or_else(|_| "-".into()),
                "nf_conntrack is loaded but tracks nothing here (count 0: no rule uses it)"
                    .to_string(),
            ),
        };
        return base_row(entry, wanted, current, Status::NotApplicable, reason);
    }
    let current = match sysctl.read(key) {
        Ok(v) => super::sysctl::squash(&v),
        Err(SysctlError::Absent { path, .. }) => {
            let reason = if scope(key) == Scope::Global && key.starts_with("net.") {
                "absent: a host-wide key this network namespace does not show".to_string()
            } else {
                warnings.push(format!(
                    "{}: unknown key '{key}': {path} does not exist (misspelt, or its module is not loaded); not checked",
                    entry.origin
                ));
                format!("absent ({path}): module not loaded or unknown key")
            };
            return base_row(entry, wanted, "-".into(), Status::NotApplicable, reason);
        }
        Err(e) => {
            return base_row(entry, wanted, "?".into(), Status::Cannot, e.to_string());
        }
    };
    if entry.satisfied(&current, wanted) {
        return base_row(entry, wanted, current, Status::Ok, why(entry));
    }
    let (status, reason) = match sysctl.writable(key) {
        Writable::Yes | Writable::Absent => (Status::Fix, why(entry)),
        Writable::ReadOnlyKey => (
            Status::Cannot,
            format!(
                "{}; read-only here (no write permission on the key)",
                why(entry)
            ),
        ),
        Writable::ReadOnlyMount => (
            Status::Cannot,
            format!(
                "{}; {} is mounted read-only",
                why(entry),
                sysctl.root().display()
            ),
        ),
    };
    let mut row = base_row(entry, wanted, current.clone(), status, reason);
    if status == Status::Fix {
        row.apply_value = Some(entry.value_to_write(&current, wanted));
    }
    row
}

fn rlimit_row(entry: &Entry, wanted: &Wanted, snap: &Snapshot, cap: &Capacity) -> Row {
    let current_value = if entry.key.ends_with(".soft") {
        snap.nofile.soft
    } else {
        snap.nofile.hard
    };
    let current = limits::show(current_value);
    let ok = entry.satisfied(&current_value.to_string(), wanted);
    if ok {
        return base_row(entry, wanted, current, Status::Ok, why(entry));
    }
    let who = match snap.pid {
        None => "this process".to_string(),
        Some(p) => format!("process {p}"),
    };
    if entry.key.ends_with(".soft") {
        let how = match snap.pid {
            None => "--apply raises this process's soft limit to its hard limit; for other processes use limits.d, systemd LimitNOFILE= or ulimit -n".to_string(),
            Some(p) => format!("raise it with prlimit --pid {p} --nofile=HARD:HARD, or restart the process with ulimit -n"),
        };
        return base_row(
            entry,
            wanted,
            current,
            Status::Fix,
            format!("{}; {how}", why(entry)),
        );
    }
    if snap.cap_sys_resource {
        return base_row(
            entry,
            wanted,
            current,
            Status::Fix,
            format!(
                "{}; {who} has CAP_SYS_RESOURCE: raise it with limits.d (--persist) or systemd LimitNOFILE=, up to fs.nr_open",
                why(entry)
            ),
        );
    }
    // The hard limit cannot rise, but c1m shards over processes: the row
    // passes when the processes the target needs are that many processes of
    // at most the usable sockets each (the capacity estimate's fd limit).
    let sharded = cap
        .limits
        .iter()
        .find(|l| l.kind == LimitKind::FdPerProcess)
        .and_then(|l| l.max_connections)
        .is_some_and(|m| m >= cap.target);
    let status = if sharded { Status::Ok } else { Status::Cannot };
    let per_process = thousands(sockets_per_process(current_value, 0));
    // A fixed process count (`--workers N`) too small for the target: what
    // those processes hold, and what the target needs.
    let why = if !sharded && cap.processes < cap.processes_needed {
        format!(
            "{} process{} (a fixed count) of at most {per_process} sockets: {} connections; the target needs {} processes (no CAP_SYS_RESOURCE: the hard limit of {who} cannot rise)",
            cap.processes,
            if cap.processes == 1 { "" } else { "es" },
            thousands(
                cap.limits
                    .iter()
                    .find(|l| l.kind == LimitKind::FdPerProcess)
                    .and_then(|l| l.max_connections)
                    .unwrap_or(0)
            ),
            cap.processes_needed,
        )
    } else {
        format!(
            "sharded, {} processes of at most {per_process} sockets (no CAP_SYS_RESOURCE: the hard limit of {who} cannot rise{})",
            cap.processes_needed,
            if sharded {
                ""
            } else {
                ", and the run's fixed process count is too small"
            }
        )
    };
    base_row(entry, wanted, current, status, why)
}

/// The capacity limit a row's setting governs, if any: the rows whose
/// failure can keep the target from fitting.
fn governed_limit(check: &str) -> Option<LimitKind> {
    Some(match check {
        "rlimit.nofile.hard" => LimitKind::FdPerProcess,
        "fs.file-max" => LimitKind::FileMax,
        "fs.epoll.max_user_watches" => LimitKind::EpollWatches,
        "net.netfilter.nf_conntrack_max" => LimitKind::Conntrack,
        "net.ipv4.ip_local_port_range" => LimitKind::Ports,
        "memory (MemAvailable)" => LimitKind::Memory,
        _ => return None,
    })
}

/// One limit that keeps the target from fitting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    pub limit: LimitKind,
    pub failure: FailureId,
    /// Connections this limit allows.
    pub max_connections: u64,
    /// Whether `c1m doctor --apply` lifts it to the target.
    pub apply_fixes: bool,
    /// What lifts it, in words.
    pub remedy: String,
}

/// doctor's answer: does the target fit as things stand?
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub fits: bool,
    /// Every limit below the target, the binding (smallest) first.
    pub blockers: Vec<Blocker>,
    /// Failing rows that would help but do not block the target.
    pub recommendations: usize,
    /// The verdict in one line.
    pub line: String,
}

fn verdict(report: &Report) -> Verdict {
    let cap = &report.capacity;
    let mut limits: Vec<&capacity::Limit> = cap
        .limits
        .iter()
        .filter(|l| l.max_connections.is_some_and(|m| m < cap.target))
        .collect();
    limits.sort_by_key(|l| l.max_connections);
    let blockers: Vec<Blocker> = limits.iter().map(|l| blocker(report, l)).collect();
    let recommendations = report.recommendations();
    let fits = blockers.is_empty() && !report.blocked();
    let line = if fits {
        format!(
            "verdict: the target of {} connections fits as things stand ({} process{} of at most {} sockets){}.",
            thousands(cap.target),
            cap.processes_needed,
            if cap.processes_needed == 1 { "" } else { "es" },
            thousands(cap.per_process_sockets),
            match recommendations {
                0 => String::new(),
                n => format!(
                    "; {n} recommendation{} would help but do not block it",
                    if n == 1 { "" } else { "s" }
                ),
            }
        )
    } else {
        let parts: Vec<String> = blockers
            .iter()
            .map(|b| {
                format!(
                    "{} allows {} ({})",
                    b.limit.label(),
                    thousands(b.max_connections),
                    b.remedy
                )
            })
            .collect();
        format!(
            "verdict: the target of {} connections does NOT fit: {}.",
            thousands(cap.target),
            if parts.is_empty() {
                "a blocking row below".to_string()
            } else {
                parts.join("; ")
            }
        )
    };
    Verdict {
        fits,
        blockers,
        recommendations,
        line,
    }
}

/// What lifts one blocking limit: `--apply` when its row is a `fix` whose
/// wanted value covers the target, else what would be needed.
fn blocker(report: &Report, limit: &capacity::Limit) -> Blocker {
    let cap = &report.capacity;
    let row = report
        .rows
        .iter()
        .find(|r| governed_limit(&r.check) == Some(limit.kind));
    let max = limit.max_connections.unwrap_or(0);
    let apply_fixes = row.is_some_and(|r| r.status == Status::Fix)
        && match limit.kind {
            // A wide range gives 64,512 ports per (source, server port).
            LimitKind::Ports => {
                let tuples = max
                    .checked_div(ports_per_tuple(&report.snapshot).max(1))
                    .unwrap_or(0);
                tuples.saturating_mul(64_512) >= cap.target
            }
            LimitKind::Memory | LimitKind::FdPerProcess => false,
            _ => true,
        };
    let remedy = if let (true, Some(r)) = (apply_fixes, row) {
        format!(
            "c1m doctor --apply sets {} to {}",
            r.check,
            r.apply_value.as_deref().unwrap_or(&r.wanted)
        )
    } else if limit.kind == LimitKind::Memory {
        let spc = cap.sockets_per_connection;
        let per = capacity::KERNEL_BYTES_PER_SOCKET + capacity::APP_BYTES_PER_SOCKET;
        let short = (cap.target - max).saturating_mul(spc).saturating_mul(per);
        format!(
            "not fixable by --apply: about {:.1} GiB more RAM, or a lower target",
            short as f64 / (1u64 << 30) as f64
        )
    } else {
        format!("not fixable by --apply: {}", limit.advice)
    };
    Blocker {
        limit: limit.kind,
        failure: limit.failure,
        max_connections: max,
        apply_fixes,
        remedy,
    }
}

/// Usable ports per (source, server port) pair with the current range.
fn ports_per_tuple(snap: &Snapshot) -> u64 {
    match snap.port_range {
        Some((lo, hi)) => {
            let reserved: u64 = snap
                .reserved_ports
                .iter()
                .map(|&(a, b)| (b.min(hi) + 1).saturating_sub(a.max(lo)))
                .sum();
            (hi + 1).saturating_sub(lo).saturating_sub(reserved)
        }
        None => 0,
    }
}

fn host_rows(snap: &Snapshot, plan: &Plan) -> Vec<Row> {
    let mut rows = Vec::new();
    rows.push(Row {
        check: format!("{} writable", crate::sys::procfs::SYSCTL_ROOT),
        kind: Kind::Host,
        scope: Scope::Global,
        current: if snap.sysctl_writable {
            "yes"
        } else {
            "no (read-only mount)"
        }
        .into(),
        wanted: "yes".into(),
        status: if snap.sysctl_writable {
            Status::Ok
        } else {
            Status::Cannot
        },
        failure: None,
        why: "--apply writes kernel settings there; containers often mount it read-only".into(),
        origin: None,
        apply_value: None,
        blocks: false,
    });
    let spc = plan.role.sockets_per_connection();
    let per_socket = capacity::KERNEL_BYTES_PER_SOCKET + capacity::APP_BYTES_PER_SOCKET;
    let need = plan.target.saturating_mul(spc).saturating_mul(per_socket);
    let gib = |b: u64| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64);
    rows.push(match snap.mem_available {
        Some(avail) => Row {
            check: "memory (MemAvailable)".into(),
            kind: Kind::Host,
            scope: Scope::Global,
            current: gib(avail),
            wanted: format!(">= {}", gib(need)),
            status: if avail >= need {
                Status::Ok
            } else {
                Status::Cannot
            },
            failure: Some(FailureId::OutOfMemory),
            why: format!(
                "{} sockets x ({} KiB kernel + {} KiB c1m) must fit in RAM",
                thousands(plan.target * spc),
                capacity::kib(capacity::KERNEL_BYTES_PER_SOCKET),
                capacity::kib(capacity::APP_BYTES_PER_SOCKET)
            ),
            origin: None,
            apply_value: None,
            blocks: false,
        },
        None => Row {
            check: "memory (MemAvailable)".into(),
            kind: Kind::Host,
            scope: Scope::Global,
            current: "-".into(),
            wanted: format!(">= {}", gib(need)),
            status: Status::NotApplicable,
            failure: Some(FailureId::OutOfMemory),
            why: format!("{} has no MemAvailable", crate::sys::procfs::MEMINFO),
            origin: None,
            apply_value: None,
            blocks: false,
        },
    });
    if let (Some(in_use), Some(tcp_mem)) = (snap.tcp_mem_in_use, snap.tcp_mem.as_ref())
        && let Some(&pressure) = tcp_mem.get(1)
    {
        let ok = in_use < pressure;
        rows.push(Row {
            check: "sockstat TCP mem (pages)".into(),
            kind: Kind::Host,
            scope: Scope::Global,
            current: thousands(in_use),
            wanted: format!("< {} (tcp_mem pressure)", thousands(pressure)),
            status: if ok { Status::Ok } else { Status::Fix },
            failure: Some(FailureId::TcpMemoryPressure),
            why: if ok {
                "above the pressure threshold the kernel starts shrinking buffers".into()
            } else {
                "TCP is under memory pressure now: raise tcp_mem or drain sockets".into()
            },
            origin: None,
            apply_value: None,
            blocks: false,
        });
    }
    rows
}
