//! Throwaway network namespaces. `net.*` sysctls, the loopback device, the
//! TCP counters and the conntrack table are per network namespace, so the lab
//! and its failure scenarios move into a private one to tune `net.*` keys
//! (a narrow port range, a small somaxconn) without touching the host, and to
//! read counters that only their own traffic moved. Leaving is automatic: the
//! namespace disappears with the last process in it.
//!
//! `unshare(CLONE_NEWNET)` moves only the calling thread; threads it spawns
//! and processes it starts afterwards inherit the namespace. Callers enter
//! the namespace first and read `/proc/thread-self/net/...` from that thread.
//!
//! A namespace can also get a TCP established-socket hash table of its own
//! ([`enter_private_with_ehash`]): every packet and every connect() looks
//! its 4-tuple up in that table, and the host's, sized at boot from RAM
//! (262,144 buckets on a 24 GiB host), holds about eight sockets per
//! bucket once a lab holds a million connections (two million sockets).
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use super::sysctl::Sysctl;

/// Move the calling thread into a new network namespace and bring its
/// loopback up. Needs CAP_SYS_ADMIN; the error says so.
pub fn enter_private() -> io::Result<()> {
    // SAFETY: unshare takes flags only; it affects the calling thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!(
                "unshare(CLONE_NEWNET) failed ({e}): a private network namespace needs root (CAP_SYS_ADMIN)"
            ),
        ));
    }
    loopback_up()
}

// The host's `net.ipv4.tcp_child_ehash_entries` (Linux 6.1 and later):
// when it is not 0, a network namespace created afterwards gets an
// established-socket hash table of its own of that many buckets instead of
// sharing the host's.
use super::procfs::CHILD_EHASH;
/// Held while the host's value is changed, so that two processes entering
/// at once never put back each other's value. In /run, which only root
/// can write; removed by its holder before it unlocks.
const EHASH_LOCK: &str = "/run/c1m.child-ehash.lock";
/// The host's value while it is changed: a process killed in that window
/// (a few microseconds, SIGKILL only: the other signals are blocked)
/// leaves it, and the next one to take the lock puts it back.
const EHASH_SAVED: &str = "/run/c1m.child-ehash.saved";
/// The most buckets the kernel gives a namespace (2^24).
pub const EHASH_MAX: u32 = 1 << 24;

/// The established hash table a namespace entered with
/// [`enter_private_with_ehash`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ehash {
    /// A table of its own, of this many buckets.
    Own(u64),
    /// The host's table (this many buckets), and why not one of its own.
    Shared { buckets: u64, why: String },
}

/// Move the calling thread into a new network namespace, as
/// [`enter_private`] does, whose TCP established hash table is its own, of
/// `entries` buckets (the kernel rounds up to a power of two; at most
/// [`EHASH_MAX`]; the table is freed with the namespace). The host's
/// tcp_child_ehash_entries is set for the one `unshare()` and put back
/// through the descriptor opened before it: a sysctl file keeps the
/// namespace it was opened in.
///
/// Where the host's value cannot be set (a kernel before 6.1, no root),
/// the namespace shares the host's table and [`Ehash::Shared`] says why.
/// An error is returned only when no namespace could be entered, or when
/// the host's value could not be put back (it is then kept in
/// `/run/c1m.child-ehash.saved`, and the next call puts it back).
pub fn enter_private_with_ehash(entries: u32) -> io::Result<Ehash> {
    match unshare_with_child_ehash(entries) {
        Ok(()) => {
            loopback_up()?;
            let (buckets, own) = ehash_buckets()?;
            Ok(if own {
                Ehash::Own(buckets)
            } else {
                Ehash::Shared {
                    buckets,
                    why: format!(
                        "{CHILD_EHASH} was set, but the kernel gave the namespace the host's table"
                    ),
                }
            })
        }
        Err(Unshared::No(why)) => {
            enter_private()?;
            let (buckets, _) = ehash_buckets()?;
            Ok(Ehash::Shared {
                buckets,
                why: why.to_string(),
            })
        }
        Err(Unshared::NotPutBack(e)) => {
            Err(io::Error::new(e.kind(), HostNotRestored(e.to_string())))
        }
    }
}

/// The error of [`enter_private_with_ehash`] when the thread is in its new
/// namespace but the host's tcp_child_ehash_entries could not be put back:
/// never a reason to go on in the host's namespace instead.
#[derive(Debug)]
pub struct HostNotRestored(pub String);

impl std::fmt::Display for HostNotRestored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostNotRestored {}

/// Whether `e` is a [`HostNotRestored`].
pub fn host_not_restored(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<HostNotRestored>().is_some())
}

/// Why [`unshare_with_child_ehash`] did not give a namespace of its own.
enum Unshared {
    /// Nothing changed and the thread did not move.
    No(io::Error),
    /// The thread moved, but the host's value could not be put back.
    NotPutBack(io::Error),
}

/// Set the host's tcp_child_ehash_entries to `entries`, unshare, put the
/// host's value back: under [`EHASH_LOCK`], with every signal blocked.
fn unshare_with_child_ehash(entries: u32) -> Result<(), Unshared> {
    use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};
    let ctx = |what: &str, path: &str, e: io::Error| {
        io::Error::new(e.kind(), format!("{what} {path}: {e}"))
    };
    let _lock = ehash_lock().map_err(Unshared::No)?;
    let knob = OpenOptions::new()
        .read(true)
        .write(true)
        .open(CHILD_EHASH)
        .map_err(|e| Unshared::No(ctx("opening", CHILD_EHASH, e)))?;
    put_back_saved(&knob).map_err(Unshared::No)?;
    let host = read_knob(&knob).map_err(Unshared::No)?;
    std::fs::write(EHASH_SAVED, &host).map_err(|e| Unshared::No(ctx("writing", EHASH_SAVED, e)))?;
    // No signal handler may run, nor a signal end the process, between
    // the change and its undoing.
    let mut before = SigSet::empty();
    let _ = pthread_sigmask(
        SigmaskHow::SIG_BLOCK,
        Some(&SigSet::all()),
        Some(&mut before),
    );
    let unmask = || {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&before), None);
    };
    if let Err(e) = knob.write_at(entries.min(EHASH_MAX).to_string().as_bytes(), 0) {
        unmask();
        let _ = std::fs::remove_file(EHASH_SAVED);
        return Err(Unshared::No(ctx("writing", CHILD_EHASH, e)));
    }
    // SAFETY: unshare takes flags only; it affects the calling thread.
    let entered = if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    };
    let restored = knob.write_at(host.as_bytes(), 0);
    if restored.is_ok() {
        let _ = std::fs::remove_file(EHASH_SAVED);
    }
    unmask();
    if let Err(e) = restored {
        return Err(Unshared::NotPutBack(ctx(
            &format!("putting back the host's value {host} (kept in {EHASH_SAVED}) into"),
            CHILD_EHASH,
            e,
        )));
    }
    entered.map_err(|e| {
        Unshared::No(io::Error::new(
            e.kind(),
            format!(
                "unshare(CLONE_NEWNET) failed ({e}): a private network namespace needs root (CAP_SYS_ADMIN)"
            ),
        ))
    })
}

/// This namespace's TCP established hash table: its bucket count, and
/// whether it is the namespace's own (the kernel shows a shared table's
/// count negated).
pub fn ehash_buckets() -> io::Result<(u64, bool)> {
    let v = read_sysctl("net.ipv4.tcp_ehash_entries")?;
    let n: i64 = v.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("net.ipv4.tcp_ehash_entries: not a number: {v:?}"),
        )
    })?;
    Ok((n.unsigned_abs(), n > 0))
}

/// [`EHASH_LOCK`], held exclusively; dropping it removes the file, then
/// unlocks, so that nothing is left in /run.
struct EhashLock {
    _locked: nix::fcntl::Flock<File>,
}

impl Drop for EhashLock {
    fn drop(&mut self) {
        // Still locked here: a process waiting on this file finds it gone
        // from the path once it gets the lock, and opens a new one.
        let _ = std::fs::remove_file(EHASH_LOCK);
    }
}

/// Take [`EHASH_LOCK`]: open (or create) it, lock it, and check that the
/// path still names the file locked (its holder removes it before
/// unlocking); else try again.
fn ehash_lock() -> io::Result<EhashLock> {
    use std::os::unix::fs::MetadataExt;
    for _ in 0..1000 {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(EHASH_LOCK)
            .map_err(|e| io::Error::new(e.kind(), format!("opening {EHASH_LOCK}: {e}")))?;
        let locked = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(
            |(_, e)| {
                let e = io::Error::from(e);
                io::Error::new(e.kind(), format!("locking {EHASH_LOCK}: {e}"))
            },
        )?;
        let held = locked
            .metadata()
            .map_err(|e| io::Error::new(e.kind(), format!("fstat {EHASH_LOCK}: {e}")))?;
        match std::fs::symlink_metadata(EHASH_LOCK) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                return Ok(EhashLock { _locked: locked });
            }
            // Removed (or replaced) by the holder before we got it.
            _ => continue,
        }
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        format!("locking {EHASH_LOCK}: it kept being replaced"),
    ))
}

/// A value of tcp_child_ehash_entries, trimmed, read from its start.
fn read_knob(knob: &File) -> io::Result<String> {
    let mut buf = [0u8; 32];
    let n = knob
        .read_at(&mut buf, 0)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {CHILD_EHASH}: {e}")))?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

/// A value saved by a process that was killed between changing the host's
/// tcp_child_ehash_entries and putting it back: put it back now.
fn put_back_saved(knob: &File) -> io::Result<()> {
    let saved = match std::fs::read_to_string(EHASH_SAVED) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("reading {EHASH_SAVED}: {e}"),
            ));
        }
    };
    let value = saved.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        knob.write_at(value.as_bytes(), 0).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("putting back {CHILD_EHASH} = {value} from {EHASH_SAVED}: {e}"),
            )
        })?;
    }
    std::fs::remove_file(EHASH_SAVED)
        .map_err(|e| io::Error::new(e.kind(), format!("removing {EHASH_SAVED}: {e}")))
}

/// Set IFF_UP on `lo` in the current namespace (what `ip link set lo up` does).
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket/ioctl calls on a zeroed ifreq whose name we fill.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut result = Ok(());
        if libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            result = Err(io::Error::last_os_error());
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req) < 0 {
                result = Err(io::Error::last_os_error());
            }
        }
        libc::close(fd);
        result.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("bringing up lo in the new namespace: {e}"),
            )
        })
    }
}

/// Write a `net.*` sysctl of the current thread's namespace, e.g.
/// `("net.ipv4.ip_local_port_range", "40000 40099")`.
pub fn write_sysctl(key: &str, value: &str) -> io::Result<()> {
    Sysctl::proc().write(key, value).map_err(io::Error::from)
}

/// Read a sysctl of the current thread's namespace, trimmed.
pub fn read_sysctl(key: &str) -> io::Result<String> {
    Sysctl::proc().read(key).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host's value is read and compared by these tests: one at a time.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// A namespace of its own TCP hash table: the table has the buckets
    /// asked for (rounded up to a power of two), TCP works in it, and the
    /// host's tcp_child_ehash_entries is as it was, with nothing left in
    /// /run.
    #[test]
    #[cfg_attr(
        not(c1m_child_ehash),
        ignore = "needs root, namespaces and net.ipv4.tcp_child_ehash_entries (Linux 6.1+)"
    )]
    fn a_namespace_gets_a_hash_table_of_its_own_and_the_host_keeps_its_value() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let host_before = std::fs::read_to_string(CHILD_EHASH).unwrap();
        let inside = std::thread::spawn(|| -> io::Result<(Ehash, bool)> {
            let got = enter_private_with_ehash(40_000)?;
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let connected = std::net::TcpStream::connect(listener.local_addr()?).is_ok();
            Ok((got, connected))
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(inside.0, Ehash::Own(65_536));
        assert!(inside.1, "TCP on loopback inside the namespace");
        assert_eq!(std::fs::read_to_string(CHILD_EHASH).unwrap(), host_before);
        assert!(!std::path::Path::new(EHASH_SAVED).exists());
        assert!(
            !std::path::Path::new(EHASH_LOCK).exists(),
            "the lock file is removed"
        );
    }

    /// A process killed between changing the host's value and putting it
    /// back leaves the saved value in /run: the next one puts it back
    /// before anything else.
    #[test]
    #[cfg_attr(
        not(c1m_child_ehash),
        ignore = "needs root, namespaces and net.ipv4.tcp_child_ehash_entries (Linux 6.1+)"
    )]
    fn a_value_left_by_a_killed_process_is_put_back() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let host = std::fs::read_to_string(CHILD_EHASH).unwrap();
        {
            // What the killed process left, written under the lock so that
            // no other caller takes 1024 for the host's value.
            let _held = ehash_lock().unwrap();
            std::fs::write(EHASH_SAVED, host.trim()).unwrap();
            std::fs::write(CHILD_EHASH, "1024").unwrap();
        }
        let got = std::thread::spawn(|| enter_private_with_ehash(4096))
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(got, Ehash::Own(4096));
        assert_eq!(std::fs::read_to_string(CHILD_EHASH).unwrap(), host);
        assert!(!std::path::Path::new(EHASH_SAVED).exists());
    }

    #[test]
    fn private_namespace_has_its_own_loopback_and_sysctls() {
        let host_range = read_sysctl("net.ipv4.ip_local_port_range").unwrap();
        // A dedicated thread: only it moves into the namespace.
        let inside = std::thread::spawn(|| -> io::Result<(String, bool)> {
            enter_private()?;
            write_sysctl("net.ipv4.ip_local_port_range", "40000 40099")?;
            let range = read_sysctl("net.ipv4.ip_local_port_range")?;
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let connected = std::net::TcpStream::connect(listener.local_addr()?).is_ok();
            Ok((range, connected))
        })
        .join()
        .unwrap();
        match inside {
            Ok((range, connected)) => {
                assert_eq!(
                    range.split_whitespace().collect::<Vec<_>>(),
                    ["40000", "40099"]
                );
                assert!(connected, "loopback must be up inside the namespace");
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                eprintln!("SKIPPED private_namespace test: {e}");
            }
            Err(e) => panic!("{e}"),
        }
        assert_eq!(
            read_sysctl("net.ipv4.ip_local_port_range").unwrap(),
            host_range,
            "host must be unchanged"
        );
    }
}
