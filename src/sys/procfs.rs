//! Every read of `/proc` in c1m goes through this module: memory
//! (`meminfo`), a process's limits, capabilities, resident memory, name
//! and liveness (`/proc/PID/{limits,status,statm,stat}`), the TCP counters and socket
//! memory of this thread's network namespace (`net/snmp`, `net/netstat`,
//! `net/sockstat`), the namespace's identity (`ns/net`), and the root of the
//! sysctl tree ([`SYSCTL_ROOT`], read and written through
//! [`crate::sys::sysctl::Sysctl`]). One place, so that the kernel's file
//! formats are parsed once and a test (`tests/limits_layer.rs`) can check
//! that no other file opens a `/proc` path.
//!
//! Built on the `procfs` crate where it parses the file (meminfo, limits,
//! status, statm, process liveness); `net/{snmp,netstat}` (read here as
//! nstat-style names, which the crate's fixed `Snmp` struct does not give,
//! and with no `netstat` parser at all), `net/sockstat` (not in the crate)
//! and the `ns/net` link are parsed by hand. Network files are read from
//! `/proc/thread-self`, not `/proc/self`: after `unshare(CLONE_NEWNET)` only
//! the calling thread is in the new namespace.
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use ::procfs::process::{Process, StatM};
use ::procfs::{Current, FromRead, Meminfo, ProcError};

/// The root of the sysctl tree (`C1M_SYSCTL_ROOT` replaces it in tests).
pub const SYSCTL_ROOT: &str = "/proc/sys";

/// The system's memory figures.
pub const MEMINFO: &str = "/proc/meminfo";

/// `net.ipv4.tcp_child_ehash_entries` of the host's network namespace, the
/// file [`super::netns::enter_private_with_ehash`] holds open across its
/// `unshare()` (it keeps the namespace it was opened in).
pub const CHILD_EHASH: &str = "/proc/sys/net/ipv4/tcp_child_ehash_entries";

/// A `procfs` error as an `io::Error` of the same kind, naming `what`.
fn io_error(what: &str, e: ProcError) -> io::Error {
    let kind = match &e {
        ProcError::PermissionDenied(_) => io::ErrorKind::PermissionDenied,
        ProcError::NotFound(_) => io::ErrorKind::NotFound,
        ProcError::Io(inner, _) => inner.kind(),
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, format!("reading {what}: {e}"))
}

fn read_text(path: &str) -> io::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {path}: {e}")))
}

/// Which process a reading is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    This,
    Pid(i32),
}

impl Target {
    /// The process, for reading its `file`; the error names
    /// `/proc/PID/file` either way.
    fn process(self, file: &str) -> io::Result<Process> {
        let opened = match self {
            Target::This => Process::myself(),
            Target::Pid(p) => Process::new(p),
        };
        opened.map_err(|e| io_error(&self.path(file), e))
    }

    /// `/proc/self/FILE` or `/proc/PID/FILE`, for messages and links.
    fn path(self, file: &str) -> String {
        match self {
            Target::This => format!("/proc/self/{file}"),
            Target::Pid(p) => format!("/proc/{p}/{file} (is process {p} running?)"),
        }
    }
}

/// RLIMIT_NOFILE of a process as `/proc/PID/limits` shows it: (soft, hard),
/// `u64::MAX` for "unlimited".
pub fn nofile(target: Target) -> io::Result<(u64, u64)> {
    let limits = target
        .process("limits")?
        .limits()
        .map_err(|e| io_error(&target.path("limits"), e))?;
    let value = |v| match v {
        ::procfs::process::LimitValue::Unlimited => u64::MAX,
        ::procfs::process::LimitValue::Value(n) => n,
    };
    let open = limits.max_open_files;
    Ok((value(open.soft_limit), value(open.hard_limit)))
}

/// The effective capability mask (`CapEff` of `/proc/PID/status`).
pub fn cap_eff(target: Target) -> io::Result<u64> {
    target
        .process("status")?
        .status()
        .map(|s| s.capeff)
        .map_err(|e| io_error(&target.path("status"), e))
}

/// Whether process `pid` is still listed under `/proc` (a zombie is; a
/// reaped process is not).
pub fn pid_listed(pid: i32) -> bool {
    Process::new(pid).is_ok()
}

/// The direct child processes of `pid` (its main thread's `children`),
/// oldest first; empty when it has none or is gone.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// How many descriptors process `pid` has open (`/proc/PID/fd`); 0 when
/// it is gone or unreadable.
pub fn fd_count(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// Resident bytes of process `pid` (`/proc/PID/statm`); 0 when it is gone.
pub fn pid_rss_bytes(pid: u32) -> u64 {
    Process::new(pid as i32)
        .and_then(|p| p.statm())
        .map_or(0, |s| s.resident * crate::util::page_size())
}

/// Is a TCP socket of this network namespace listening on `addr`, or on
/// every address at its port? Read from `/proc/net/tcp` and `tcp6`, so
/// asking costs no connection (a refused probe would show in the
/// counters).
pub fn tcp_listening(addr: &std::net::SocketAddr) -> bool {
    let port = format!(":{:04X}", addr.port());
    let exact = match addr.ip() {
        std::net::IpAddr::V4(ip) => format!("{:08X}{port}", u32::from_le_bytes(ip.octets())),
        std::net::IpAddr::V6(_) => String::new(),
    };
    let any4 = format!("00000000{port}");
    let any6 = format!("00000000000000000000000000000000{port}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                let mut fields = l.split_whitespace();
                let local = fields.nth(1).unwrap_or("");
                let state = fields.nth(1);
                state == Some("0A") && (local == exact || local == any4 || local == any6)
            })
        })
    })
}

/// The command name of process `pid` (`comm`, at most 15 bytes: "c1m"),
/// if it is listed.
pub fn comm(pid: i32) -> Option<String> {
    Process::new(pid).ok()?.stat().ok().map(|s| s.comm)
}

/// This process's network namespace as `/proc/self/ns/net` names it
/// (`net:[4026531840]`), or PID `pid`'s.
pub fn netns(target: Target) -> Option<String> {
    let link = match target {
        Target::This => "/proc/self/ns/net".to_string(),
        Target::Pid(p) => format!("/proc/{p}/ns/net"),
    };
    std::fs::read_link(link)
        .ok()
        .map(|p| p.display().to_string())
}

/// Whether the network namespace `id` (`net:[4026532...]`, as [`netns`]
/// names it) still exists: some process is in it, or it is bind-mounted
/// (nsfs, `ip netns add`). True when it cannot be told.
pub fn netns_exists(id: &str) -> bool {
    let Ok(procs) = ::procfs::process::all_processes() else {
        return true;
    };
    for p in procs.flatten() {
        if std::fs::read_link(format!("/proc/{}/ns/net", p.pid()))
            .is_ok_and(|l| l.as_os_str() == id)
        {
            return true;
        }
    }
    Process::myself()
        .and_then(|p| p.mountinfo())
        .map(|m| {
            m.iter()
                .any(|mi| mi.fs_type == "nsfs" && mi.root.contains(id))
        })
        .unwrap_or(true)
}

/// This boot's id (`kernel/random/boot_id`): a value saved under another
/// boot id was reset by the reboot since.
pub fn boot_id() -> Option<String> {
    ::procfs::sys::kernel::random::boot_id()
        .ok()
        .map(|s| s.trim().to_string())
}

/// The fields of `/proc/meminfo` c1m uses, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub total: u64,
    pub available: Option<u64>,
    pub slab: u64,
    pub sunreclaim: Option<u64>,
}

impl From<Meminfo> for Memory {
    fn from(m: Meminfo) -> Memory {
        Memory {
            total: m.mem_total,
            available: m.mem_available,
            slab: m.slab,
            sunreclaim: m.s_unreclaim,
        }
    }
}

/// Read `/proc/meminfo`.
pub fn meminfo() -> io::Result<Memory> {
    Meminfo::current()
        .map(Memory::from)
        .map_err(|e| io_error(MEMINFO, e))
}

/// Parse the text of a `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> io::Result<Memory> {
    Meminfo::from_read(text.as_bytes())
        .map(Memory::from)
        .map_err(|e| io_error("meminfo text", e))
}

/// The `TCP:` line of `net/sockstat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SockstatTcp {
    /// TCP sockets in use (`inuse`).
    pub inuse: Option<u64>,
    /// Orphaned sockets (`orphan`) and sockets in TIME_WAIT (`tw`).
    pub orphan: Option<u64>,
    pub tw: Option<u64>,
    /// TCP sockets allocated (`alloc`).
    pub alloc: Option<u64>,
    /// Pages of TCP socket memory (`mem`).
    pub mem_pages: Option<u64>,
}

/// Read this thread's namespace's `/proc/thread-self/net/sockstat`.
pub fn sockstat_tcp() -> io::Result<SockstatTcp> {
    Ok(parse_sockstat_tcp(&read_text(
        "/proc/thread-self/net/sockstat",
    )?))
}

/// Parse the `TCP:` line of a sockstat text (`TCP: inuse 1 orphan 0 tw 0
/// alloc 1 mem 192`); fields it lacks are `None`.
pub fn parse_sockstat_tcp(text: &str) -> SockstatTcp {
    let mut s = SockstatTcp::default();
    for line in text.lines().filter(|l| l.starts_with("TCP:")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(2) {
            match w[0] {
                "mem" => s.mem_pages = w[1].parse().ok(),
                "alloc" => s.alloc = w[1].parse().ok(),
                "inuse" => s.inuse = w[1].parse().ok(),
                "orphan" => s.orphan = w[1].parse().ok(),
                "tw" => s.tw = w[1].parse().ok(),
                _ => {}
            }
        }
    }
    s
}

/// Counters by nstat name ("TcpExtListenOverflows", "TcpActiveOpens").
pub type CounterSet = BTreeMap<String, u64>;

/// Read `/proc/thread-self/net/{snmp,netstat}` into nstat-style names.
pub fn net_counters() -> io::Result<CounterSet> {
    let mut set = CounterSet::new();
    for path in [
        "/proc/thread-self/net/snmp",
        "/proc/thread-self/net/netstat",
    ] {
        parse_net_counters(&read_text(path)?, &mut set);
    }
    Ok(set)
}

/// Parse the header/value line pairs of `net/snmp` and `net/netstat`
/// (`TcpExt: A B` then `TcpExt: 1 2`) into `TcpExtA = 1`...
pub fn parse_net_counters(text: &str, into: &mut CounterSet) {
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((prefix, names)), Some((_, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            // Signed fields (Tcp MaxConn = -1) are not counters: skip them.
            if let Ok(v) = value.parse::<u64>() {
                into.insert(format!("{prefix}{name}"), v);
            }
        }
    }
}

/// Resident set size of this process in bytes (`/proc/self/statm`).
pub fn rss_bytes() -> Option<u64> {
    // One open and read, as cheap as it was by hand: flood calls this every
    // 1,000 connections.
    let statm = StatM::from_file("/proc/self/statm").ok()?;
    Some(statm.resident * crate::util::page_size())
}

/// Resident bytes from the text of a `/proc/PID/statm` (its second field,
/// in pages).
pub fn statm_rss(statm: &str) -> Option<u64> {
    let statm = StatM::from_read(statm.as_bytes()).ok()?;
    Some(statm.resident * crate::util::page_size())
}

/// `/proc/self/statm` opened once and re-read with `pread`: a process at
/// its fd limit cannot open it any more, and that is when its figures
/// matter; one `pread` per reading also keeps a worker's stats cheap.
#[derive(Debug)]
pub struct StatmFile(File);

impl StatmFile {
    /// Open this process's statm.
    pub fn open() -> io::Result<StatmFile> {
        File::open("/proc/self/statm")
            .map(StatmFile)
            .map_err(|e| io::Error::new(e.kind(), format!("opening /proc/self/statm: {e}")))
    }

    /// Resident bytes now.
    pub fn rss_bytes(&self) -> Option<u64> {
        let mut buf = [0u8; 128];
        let n = self.0.read_at(&mut buf, 0).ok()?;
        statm_rss(std::str::from_utf8(&buf[..n]).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_sockstat_and_statm_texts_parse() {
        let mi = "MemTotal:       24684096 kB\nMemFree: 1 kB\nMemAvailable:   24277420 kB\nBuffers: 0 kB\nCached: 0 kB\nSwapCached: 0 kB\nActive: 0 kB\nInactive: 0 kB\nActive(anon): 0 kB\nInactive(anon): 0 kB\nActive(file): 0 kB\nInactive(file): 0 kB\nUnevictable: 0 kB\nMlocked: 0 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\nDirty: 0 kB\nWriteback: 0 kB\nAnonPages: 0 kB\nMapped: 0 kB\nShmem: 0 kB\nSlab: 300 kB\nSReclaimable: 100 kB\nSUnreclaim: 200 kB\nKernelStack: 0 kB\nPageTables: 0 kB\nNFS_Unstable: 0 kB\nBounce: 0 kB\nWritebackTmp: 0 kB\nCommitLimit: 0 kB\nCommitted_AS: 0 kB\nVmallocTotal: 0 kB\nVmallocUsed: 0 kB\nVmallocChunk: 0 kB\n";
        let m = parse_meminfo(mi).unwrap();
        assert_eq!(m.total, 24684096 * 1024);
        assert_eq!(m.available, Some(24277420 * 1024));
        assert_eq!(m.slab, 300 * 1024);
        assert_eq!(m.sunreclaim, Some(200 * 1024));
        let e = parse_meminfo("garbage").unwrap_err();
        assert!(e.to_string().contains("meminfo"), "{e}");

        let ss =
            "sockets: used 13\nTCP: inuse 1 orphan 2 tw 3 alloc 7 mem 192\nUDP: inuse 0 mem 5\n";
        let t = parse_sockstat_tcp(ss);
        assert_eq!((t.inuse, t.orphan, t.tw), (Some(1), Some(2), Some(3)));
        assert_eq!(t.mem_pages, Some(192));
        assert_eq!(t.alloc, Some(7));
        assert_eq!(
            parse_sockstat_tcp("UDP: inuse 0 mem 5\n"),
            SockstatTcp::default()
        );

        assert_eq!(
            statm_rss("1000 25 3 1 0 40 0\n"),
            Some(25 * crate::util::page_size())
        );
        assert_eq!(statm_rss("1000"), None);
    }

    #[test]
    fn net_counters_take_nstat_names_and_skip_signed_fields() {
        let text = "TcpExt: SyncookiesSent ListenOverflows\nTcpExt: 1 5\nTcp: RtoAlgorithm MaxConn ActiveOpens\nTcp: 1 -1 10\n";
        let mut set = CounterSet::new();
        parse_net_counters(text, &mut set);
        assert_eq!(set.get("TcpExtListenOverflows"), Some(&5));
        assert_eq!(set.get("TcpActiveOpens"), Some(&10));
        assert_eq!(set.get("TcpMaxConn"), None);
    }

    #[test]
    fn this_process_reads_back_from_proc() {
        let (soft, hard) = nofile(Target::This).unwrap();
        let (s, h) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!((soft, hard), (s, h));
        let me = std::process::id() as i32;
        assert_eq!(nofile(Target::Pid(me)).unwrap(), (soft, hard));
        assert!(pid_listed(me));
        let name = comm(me).unwrap();
        assert!(!name.is_empty() && name.len() <= 15, "{name}");
        assert_eq!(comm(i32::MAX), None);
        let statm = StatmFile::open().unwrap();
        let rss = statm.rss_bytes().unwrap();
        assert!(rss > 0);
        assert!(rss_bytes().unwrap() > 0);
        assert!(meminfo().unwrap().total > 0);
        assert!(net_counters().unwrap().contains_key("TcpActiveOpens"));
        assert!(netns(Target::This).unwrap().starts_with("net:["));
        cap_eff(Target::This).unwrap();
        let e = nofile(Target::Pid(i32::MAX)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(
            e.to_string()
                .contains(&format!("/proc/{}/limits", i32::MAX)),
            "{e}"
        );
    }
}
