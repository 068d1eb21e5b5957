//! Kernel-side evidence for the lab: TCP counters (what `nstat` shows), the
//! memory the kernel spends on sockets (MemAvailable, Slab, sockstat), and
//! new kernel log lines (what `dmesg` would add). Snapshots are taken from
//! `/proc/thread-self/net` (read in [`procfs`]), so a thread inside a private network namespace
//! sees that namespace's counters only. Deltas are written in nstat's text
//! format so that `c1m analyze` reads them like any nstat output.
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

use super::procfs;
use super::sysctl::Sysctl;

pub use super::procfs::CounterSet;

/// This thread's namespace's TCP counters (`net/snmp` and `net/netstat`)
/// under nstat-style names.
pub fn counters() -> io::Result<CounterSet> {
    procfs::net_counters()
}

/// after - before, keeping only counters that moved.
pub fn delta(before: &CounterSet, after: &CounterSet) -> CounterSet {
    after
        .iter()
        .filter_map(|(k, &v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// Render counters as `nstat` prints them ("#kernel" header, name, value, rate).
pub fn nstat_text(set: &CounterSet) -> String {
    let mut out = String::from("#kernel\n");
    for (k, v) in set {
        out.push_str(&format!("{k:<32}{v:>16}{:>16}\n", "0.0"));
    }
    out
}

/// Two snapshots in `nstat -a`'s text format, `before` then `after`, with
/// absolute values and only the counters that moved: a reader (analyze)
/// sees each counter rise between them, as with two `nstat -az` runs.
/// Counters named in `always` (bare names such as "ListenOverflows") are
/// written whether they moved or not: a flat counter is evidence too.
pub fn nstat_snapshots(before: &CounterSet, after: &CounterSet, always: &[&str]) -> String {
    let watched = |name: &str| {
        always.iter().any(|c| {
            name.strip_suffix(c)
                .is_some_and(|p| p == "TcpExt" || p == "Tcp")
        })
    };
    let mut keys: Vec<&String> = after.keys().filter(|k| watched(k)).collect();
    let moved = delta(before, after);
    keys.extend(moved.keys());
    keys.sort();
    keys.dedup();
    let mut out = String::new();
    for snap in [before, after] {
        let only: CounterSet = keys
            .iter()
            .copied()
            .map(|k| (k.clone(), snap.get(k).copied().unwrap_or(0)))
            .collect();
        out.push_str(&nstat_text(&only));
    }
    out
}

/// The kernel tables a run can fill, as `sysctl` prints them
/// (`key = value`), read in this thread's network namespace: conntrack
/// count and max (when the module is loaded), file-nr and file-max, tcp_mem.
pub fn sysctl_text() -> String {
    let tree = Sysctl::proc();
    let mut out = String::new();
    for key in [
        "net.netfilter.nf_conntrack_count",
        "net.netfilter.nf_conntrack_max",
        "fs.file-nr",
        "fs.file-max",
        "net.ipv4.tcp_mem",
        "net.ipv4.tcp_max_orphans",
    ] {
        if let Ok(v) = tree.read(key) {
            out.push_str(&format!(
                "{key} = {}\n",
                v.split_whitespace().collect::<Vec<_>>().join("\t")
            ));
        }
    }
    out
}

/// The memory figures the lab reports: `/proc/meminfo` fields in KiB and
/// this namespace's TCP socket memory (sockstat).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Memory {
    pub mem_available_kib: u64,
    pub slab_kib: u64,
    pub sunreclaim_kib: u64,
    /// Pages of TCP socket memory (sockstat `TCP: ... mem N`).
    pub tcp_mem_pages: u64,
    /// TCP sockets allocated (sockstat `alloc`).
    pub tcp_alloc: u64,
}

/// Read /proc/meminfo and this namespace's sockstat.
pub fn memory() -> io::Result<Memory> {
    let mi = procfs::meminfo()?;
    let mut m = Memory {
        mem_available_kib: mi.available.unwrap_or(0) / 1024,
        slab_kib: mi.slab / 1024,
        sunreclaim_kib: mi.sunreclaim.unwrap_or(0) / 1024,
        ..Memory::default()
    };
    if let Ok(tcp) = procfs::sockstat_tcp() {
        m.tcp_mem_pages = tcp.mem_pages.unwrap_or(0);
        m.tcp_alloc = tcp.alloc.unwrap_or(0);
    }
    Ok(m)
}

/// A reader of kernel log records written after it was opened.
pub struct KmsgTail {
    file: Option<File>,
    /// Why it could not be opened (no permission, no /dev/kmsg).
    pub unavailable: Option<String>,
}

impl KmsgTail {
    /// Open /dev/kmsg and skip what is already there.
    pub fn open() -> KmsgTail {
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .and_then(|mut f| f.seek(SeekFrom::End(0)).map(|_| f));
        match opened {
            Ok(file) => KmsgTail {
                file: Some(file),
                unavailable: None,
            },
            Err(e) => KmsgTail {
                file: None,
                unavailable: Some(format!("/dev/kmsg: {e}")),
            },
        }
    }

    /// New records since the last call, as dmesg-style lines
    /// (`[  123.456789] text`).
    pub fn read_new(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let Some(file) = self.file.as_mut() else {
            return lines;
        };
        let mut buf = vec![0u8; 8192];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(line) = format_kmsg_record(&buf[..n]) {
                        lines.push(line);
                    }
                }
                // EPIPE: records were overwritten before we read them; go on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(_) => break,
            }
        }
        lines
    }
}

/// `6,1234,5678901,-;text` -> `[    5.678901] text`.
pub fn format_kmsg_record(record: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(record);
    let (header, message) = text.split_once(';')?;
    let usec: u64 = header.split(',').nth(2)?.parse().ok()?;
    let message = message.lines().next().unwrap_or("");
    Some(format!(
        "[{:>5}.{:06}] {}",
        usec / 1_000_000,
        usec % 1_000_000,
        message
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_counters_parse_and_delta_keep_what_moved() {
        let text = "TcpExt: SyncookiesSent ListenOverflows\nTcpExt: 1 5\nTcp: RtoAlgorithm MaxConn ActiveOpens\nTcp: 1 -1 10\n";
        let mut before = CounterSet::new();
        procfs::parse_net_counters(text, &mut before);
        assert_eq!(before.get("TcpExtListenOverflows"), Some(&5));
        assert_eq!(before.get("TcpMaxConn"), None);
        let mut after = before.clone();
        after.insert("TcpExtListenOverflows".into(), 12);
        let d = delta(&before, &after);
        assert_eq!(d.len(), 1);
        assert!(nstat_text(&d).contains("TcpExtListenOverflows"));
        assert!(
            nstat_text(&d)
                .lines()
                .nth(1)
                .unwrap()
                .split_whitespace()
                .nth(1)
                == Some("7")
        );
    }

    #[test]
    fn kmsg_records_become_dmesg_lines() {
        assert_eq!(
            format_kmsg_record(b"4,99,5678901,-;nf_conntrack: table full, dropping packet\n"),
            Some("[    5.678901] nf_conntrack: table full, dropping packet".to_string())
        );
        assert_eq!(format_kmsg_record(b"garbage"), None);
    }

    #[test]
    fn live_counters_and_memory_are_readable() {
        let c = counters().unwrap();
        assert!(c.contains_key("TcpActiveOpens"));
        let m = memory().unwrap();
        assert!(m.mem_available_kib > 0);
    }
}
