//! Other processes as the tests see them, through the `procfs` crate:
//! alive or not, descendants, resident memory, CPU time, and the peak
//! memory of a child that has ended.
use std::process::Child;

use procfs::process::Process;

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    Process::new(pid as i32)
        .and_then(|p| p.stat())
        .is_ok_and(|s| s.state != 'Z')
}

/// Every process whose parent chain leads to `root`.
pub fn descendants(root: u32) -> Vec<u32> {
    let parent: std::collections::HashMap<i32, i32> = procfs::process::all_processes()
        .expect("listing /proc")
        .flatten()
        .filter_map(|p| p.stat().ok())
        .map(|s| (s.pid, s.ppid))
        .collect();
    parent
        .keys()
        .copied()
        .filter(|&p| {
            let mut cur = p;
            for _ in 0..64 {
                match parent.get(&cur) {
                    Some(&pp) if pp == root as i32 => return true,
                    Some(&pp) if pp > 1 => cur = pp,
                    _ => return false,
                }
            }
            false
        })
        .map(|p| p as u32)
        .collect()
}

/// Resident memory of a running process, in bytes.
pub fn rss(pid: u32) -> u64 {
    let statm = Process::new(pid as i32)
        .and_then(|p| p.statm())
        .unwrap_or_else(|e| panic!("statm of {pid}: {e}"));
    statm.resident * procfs::page_size()
}

/// User plus system CPU time of a running process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = Process::new(pid as i32)
        .and_then(|p| p.stat())
        .unwrap_or_else(|e| panic!("stat of {pid}: {e}"));
    stat.utime + stat.stime
}

/// Wait for `child` to end and return its exit code and its peak resident
/// memory in KiB (`ru_maxrss` from `wait4`, exactly this child's, whatever
/// else the test binary runs at the same time). Its stdout and stderr must
/// not be pipes nobody reads.
pub fn wait_peak_rss_kib(child: Child) -> (Option<i32>, u64) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter for wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with valid pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, usage.ru_maxrss as u64)
}

/// Like [`wait_peak_rss_kib`], with a deadline: polls `wait4(WNOHANG)`, and
/// if `child` overruns `limit` kills it (by its pid), reaps it and fails
/// the test naming `what`. Returns the exit code, the peak RSS in KiB and
/// the time it took.
pub fn wait_bounded_peak_rss_kib(
    mut child: Child,
    limit: std::time::Duration,
    what: &str,
) -> (Option<i32>, u64, std::time::Duration) {
    let pid = child.id() as libc::pid_t;
    let start = std::time::Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid out-parameter for wait4.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child, with valid pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
        if r == pid {
            let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            return (code, usage.ru_maxrss as u64, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: did not end within {limit:?} (killed)");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
