//! Namespace hosts: a small network of "machines" on one kernel, for
//! `c1m lab --hosts`. Each host is a named network namespace
//! (`c1m-<pid>-server`, `c1m-<pid>-client-1`, ...) with its own `eth0`,
//! joined by a veth pair to a bridge that lives in a namespace of its own
//! (`c1m-<pid>-switch`). Addresses come from 198.18.0.0/15 (RFC 2544's
//! benchmarking range) and no namespace has a default route, so nothing
//! routes out.
//!
//! The root network namespace is never touched: every `ip` command that
//! creates something runs inside the switch namespace (`ip -n`), and the
//! host end of each veth pair is created directly in its host's namespace,
//! so no interface, address or route ever appears in the root namespace.
//!
//! Plumbing goes through iproute2's `ip` as a child process (what operators
//! run by hand, and what `ip netns exec` needs anyway). Names carry the
//! lab's pid, so [`leftovers`] finds what a killed lab left behind, and
//! [`remove`] ends the processes inside a namespace before deleting it.
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;

/// Every namespace the lab creates starts with this.
pub const PREFIX: &str = "c1m-";
/// The switch's name inside the lab (`c1m-<pid>-switch`).
pub const SWITCH: &str = "switch";
/// The host's interface name inside every host namespace.
pub const IFACE: &str = "eth0";
/// The network all hosts share.
pub const NETWORK: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 18, 0, 0), 15);
/// The server host's address.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// The addresses of client host `k` (1-based): 198.18.k.1 - 198.18.k.n.
pub fn client_addrs(k: u32, n: u32) -> io::Result<Vec<Ipv4Addr>> {
    if !(1..=250).contains(&k) || !(1..=254).contains(&n) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("client host {k} with {n} addresses: hosts 1-250, 1-254 addresses each"),
        ));
    }
    Ok((1..=n)
        .map(|i| Ipv4Addr::new(198, 18, k as u8, i as u8))
        .collect())
}

/// One host of the lab.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Host {
    /// `server`, `client-1`, ...
    pub name: String,
    /// The network namespace (`c1m-<pid>-<name>`).
    pub netns: String,
    pub addrs: Vec<Ipv4Addr>,
}

/// The lab's namespaces and links. Dropping it removes them all (and ends
/// any process still inside): on success, error, Ctrl-C or panic.
#[derive(Debug)]
pub struct Topology {
    pub hosts: Vec<Host>,
    pub switch: String,
    removed: bool,
}

/// Run `ip ARGS`; an error names the command, its status and its stderr.
pub fn ip(args: &[&str]) -> io::Result<String> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "running `ip {}` (is iproute2 installed?): {e}",
                args.join(" ")
            ),
        )
    })?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The namespace name of host `name` in the lab of process `pid`.
pub fn netns_name(pid: u32, name: &str) -> String {
    format!("{PREFIX}{pid}-{name}")
}

impl Topology {
    /// Build the lab for `pid`: a switch namespace with a bridge, then each
    /// `(name, addresses)` host with its veth pair and addresses. Half-built
    /// labs are removed before the error returns.
    pub fn build(pid: u32, hosts: &[(String, Vec<Ipv4Addr>)]) -> io::Result<Topology> {
        let switch = netns_name(pid, SWITCH);
        ip(&["netns", "add", &switch])?;
        let mut topo = Topology {
            hosts: Vec::new(),
            switch,
            removed: false,
        };
        let sw = topo.switch.clone();
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for (i, (name, addrs)) in hosts.iter().enumerate() {
            let ns = netns_name(pid, name);
            ip(&["netns", "add", &ns])?;
            topo.hosts.push(Host {
                name: name.clone(),
                netns: ns.clone(),
                addrs: addrs.clone(),
            });
            // The switch's end is named by index: interface names stop at
            // 15 bytes.
            let port = format!("p{i}");
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", IFACE, "netns",
                &ns,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            for a in addrs {
                let cidr = format!("{a}/{}", NETWORK.1);
                ip(&["-n", &ns, "addr", "add", &cidr, "dev", IFACE])?;
            }
            ip(&["-n", &ns, "link", "set", IFACE, "up"])?;
        }
        Ok(topo)
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Every namespace of the lab, hosts first, the switch last.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = self.hosts.iter().map(|h| h.netns.clone()).collect();
        all.push(self.switch.clone());
        all
    }

    /// Remove everything now; returns what was removed (and errors).
    pub fn remove(&mut self) -> Vec<io::Result<Removed>> {
        self.removed = true;
        self.namespaces().iter().map(|ns| remove(ns)).collect()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if !self.removed {
            for r in self.remove() {
                if let Err(e) = r {
                    eprintln!("c1m: removing a lab namespace: {e}");
                }
            }
        }
    }
}

/// What [`remove`] did to one namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Removed {
    pub netns: String,
    /// Processes that were still inside, killed.
    pub killed: Vec<u32>,
}

/// Kill every process inside namespace `ns` (SIGKILL), then delete it. Its
/// interfaces go with it (a veth pair dies with either end).
pub fn remove(ns: &str) -> io::Result<Removed> {
    let mut killed = Vec::new();
    // A process inside keeps the namespace alive after `ip netns del`.
    for _ in 0..20 {
        let pids = pids_in(ns)?;
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            if !killed.contains(&pid) {
                killed.push(pid);
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ip(&["netns", "del", ns])?;
    Ok(Removed {
        netns: ns.to_string(),
        killed,
    })
}

/// Processes whose network namespace is `ns` (`ip netns pids`).
pub fn pids_in(ns: &str) -> io::Result<Vec<u32>> {
    Ok(ip(&["netns", "pids", ns])?
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&p| p != std::process::id())
        .collect())
}

/// Every named network namespace whose name starts with [`PREFIX`].
pub fn lab_namespaces() -> io::Result<Vec<String>> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_string)
        .collect())
}

/// The pid a lab namespace name carries (`c1m-<pid>-...`).
pub fn owner_pid(ns: &str) -> Option<u32> {
    ns.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// Whether `pid` is a running c1m (a lab still using its namespaces).
pub fn lab_alive(pid: u32) -> bool {
    super::procfs::comm(pid as i32).is_some_and(|c| c == "c1m")
}

/// Lab namespaces whose lab is gone: what a killed lab left behind.
pub fn leftovers() -> io::Result<Vec<String>> {
    Ok(lab_namespaces()?
        .into_iter()
        .filter(|ns| owner_pid(ns).is_none_or(|p| !lab_alive(p)))
        .collect())
}

/// Run `f` on a thread inside namespace `ns` (its counters, its `net.*`
/// sysctls, its sockets), and return what it returned.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("opening {path}: {e}")))?;
    std::thread::Builder::new()
        .name(format!("in-{ns}"))
        .spawn(move || {
            // SAFETY: setns on an fd we own; it moves this thread only.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(e.kind(), format!("setns({path}): {e}")));
            }
            drop(file);
            f()
        })?
        .join()
        .map_err(|_| io::Error::other(format!("a thread inside {ns} panicked")))?
}

/// The argv prefix that runs a program inside namespace `ns`.
pub fn exec_in(ns: &str) -> Vec<String> {
    vec!["netns".into(), "exec".into(), ns.into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_owner_pid() {
        let ns = netns_name(4242, "client-3");
        assert_eq!(ns, "c1m-4242-client-3");
        assert_eq!(owner_pid(&ns), Some(4242));
        assert_eq!(owner_pid("c1m-x-server"), None);
        assert_eq!(owner_pid("other"), None);
    }

    #[test]
    fn client_addresses_stay_in_the_benchmarking_range() {
        let a = client_addrs(3, 10).unwrap();
        assert_eq!(a.first(), Some(&Ipv4Addr::new(198, 18, 3, 1)));
        assert_eq!(a.last(), Some(&Ipv4Addr::new(198, 18, 3, 10)));
        for k in [1, 250] {
            for x in client_addrs(k, 254).unwrap() {
                let [a, b, ..] = x.octets();
                assert!(a == 198 && (b & 0xfe) == 18, "{x} outside 198.18.0.0/15");
            }
        }
        assert!(client_addrs(0, 1).is_err());
        assert!(client_addrs(1, 255).is_err());
    }
}
