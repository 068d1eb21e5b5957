//! What a flood run is asked to do, checked before any socket is opened: the
//! destination resolved to one address, the port range inside 1..=65535, the
//! source addresses expanded from ranges and lists and proven local (each is
//! bound once), and the split of connections and (source, destination) paths
//! between worker processes. Every refusal names the argument at fault, so
//! the command can exit 2 with a message the user can act on.
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use thiserror::Error;

/// A usage error: which argument, and what is wrong with it.
#[derive(Debug, Error, PartialEq)]
#[error("{arg}: {message}")]
pub struct PlanError {
    pub arg: &'static str,
    pub message: String,
}

fn err(arg: &'static str, message: impl Into<String>) -> PlanError {
    PlanError {
        arg,
        message: message.into(),
    }
}

/// One way to reach the server: an optional local source address and a
/// destination address and port. The kernel's ephemeral ports are a budget
/// per path, which is why paths are the unit that gets retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    pub source: Option<IpAddr>,
    pub dest: SocketAddr,
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.source {
            Some(s) => write!(f, "{s} -> {}", self.dest),
            None => write!(f, "(any source) -> {}", self.dest),
        }
    }
}

/// The whole run, resolved and validated.
#[derive(Debug, Clone)]
pub struct Plan {
    pub host: String,
    pub dest: IpAddr,
    pub first_port: u16,
    pub ports: u16,
    pub sources: Vec<IpAddr>,
    pub connections: u64,
    pub window: usize,
    /// Connection attempts per second, all shards together.
    pub rate: Option<f64>,
    pub connect_timeout: Duration,
    /// `None` holds until Ctrl-C.
    pub hold: Option<Duration>,
    pub message_interval: Option<Duration>,
}

/// The part of a plan one process runs.
#[derive(Debug, Clone)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
    /// Global number of this shard's first connection (its message says
    /// `client --> k`).
    pub first_k: u64,
    pub connections: u64,
    pub window: usize,
    pub rate: Option<f64>,
    pub paths: Vec<Path>,
}

/// Resolve `host` to one address (IPv4 preferred, as the seed used).
pub fn resolve_host(host: &str) -> Result<IpAddr, PlanError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let addrs: Vec<SocketAddr> = (host, 0u16)
        .to_socket_addrs()
        .map_err(|e| err("HOST", format!("cannot resolve '{host}': {e}")))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .map(|a| a.ip())
        .ok_or_else(|| err("HOST", format!("'{host}' resolves to no address")))
}

/// Check that `PORT .. PORT+ports-1` is a valid range.
pub fn check_ports(first: u16, ports: u16) -> Result<(), PlanError> {
    if first == 0 {
        return Err(err("PORT", "port 0 is not a destination port"));
    }
    if ports == 0 {
        return Err(err("--ports", "at least one port is needed"));
    }
    let last = first as u32 + ports as u32 - 1;
    if last > 65535 {
        return Err(err(
            "--ports",
            format!(
                "ports {first}..{last} go beyond 65535 (PORT {first} + --ports {ports} - 1); lower PORT or --ports"
            ),
        ));
    }
    Ok(())
}

/// Expand a `--sources` value: comma-separated addresses and inclusive
/// IPv4 ranges (`127.0.0.2-127.0.0.40`, or `127.0.0.2-40` for the last
/// octet). Duplicates are dropped, order is kept.
pub fn parse_sources(text: &str) -> Result<Vec<IpAddr>, PlanError> {
    let mut out: Vec<IpAddr> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let start: Ipv4Addr = a.trim().parse().map_err(|_| {
                err(
                    "--sources",
                    format!("'{a}' in '{part}' is not an IPv4 address"),
                )
            })?;
            let b = b.trim();
            let end: Ipv4Addr = match b.parse::<Ipv4Addr>() {
                Ok(e) => e,
                Err(_) => match b.parse::<u8>() {
                    Ok(last) => {
                        let o = start.octets();
                        Ipv4Addr::new(o[0], o[1], o[2], last)
                    }
                    Err(_) => {
                        return Err(err(
                            "--sources",
                            format!(
                                "'{b}' in '{part}' is neither an IPv4 address nor a last octet"
                            ),
                        ));
                    }
                },
            };
            let (s, e) = (u32::from(start), u32::from(end));
            if e < s {
                return Err(err(
                    "--sources",
                    format!("range '{part}' ends before it starts"),
                ));
            }
            if e - s >= 65536 {
                return Err(err(
                    "--sources",
                    format!("range '{part}' has more than 65536 addresses"),
                ));
            }
            for v in s..=e {
                let ip = IpAddr::V4(Ipv4Addr::from(v));
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        } else {
            let ip: IpAddr = part
                .parse()
                .map_err(|_| err("--sources", format!("'{part}' is not an IP address")))?;
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    if out.is_empty() {
        return Err(err("--sources", "no address given"));
    }
    Ok(out)
}

/// Prove every source address is usable here by binding a socket to it
/// (port 0, never listened on). An address that is not on this host fails
/// with EADDRNOTAVAIL, named in the error.
pub fn check_sources_local(sources: &[IpAddr], dest: IpAddr) -> Result<(), PlanError> {
    for src in sources {
        if src.is_ipv4() != dest.is_ipv4() {
            return Err(err(
                "--sources",
                format!("{src} and the destination {dest} are not the same address family"),
            ));
        }
        let domain = if src.is_ipv4() {
            socket2::Domain::IPV4
        } else {
            socket2::Domain::IPV6
        };
        let sock = socket2::Socket::new(domain, socket2::Type::STREAM, None)
            .map_err(|e| err("--sources", format!("socket() to test {src} failed: {e}")))?;
        if let Err(e) = sock.bind(&SocketAddr::new(*src, 0).into()) {
            return Err(err(
                "--sources",
                format!(
                    "{src} is not an address of this host (bind: {e}); add it to an interface or use 127.0.0.x on loopback"
                ),
            ));
        }
    }
    Ok(())
}

impl Plan {
    /// Every path of the run: destination ports vary fastest, as in the
    /// seed, then source addresses.
    pub fn paths(&self) -> Vec<Path> {
        let srcs: Vec<Option<IpAddr>> = if self.sources.is_empty() {
            vec![None]
        } else {
            self.sources.iter().copied().map(Some).collect()
        };
        let mut out = Vec::with_capacity(srcs.len() * self.ports as usize);
        for s in &srcs {
            for p in 0..self.ports {
                out.push(Path {
                    source: *s,
                    dest: SocketAddr::new(self.dest, self.first_port + p),
                });
            }
        }
        out
    }

    /// The share of shard `index` of `count`: connections split evenly
    /// (the first shards take the remainder), paths dealt round-robin so
    /// that no two shards compete for one path's ports; when there are
    /// fewer paths than shards every shard uses them all. Window and rate
    /// are totals, divided between shards.
    pub fn shard(&self, index: u32, count: u32) -> Shard {
        let count = count.max(1);
        let n = count as u64;
        let i = index as u64;
        let base = self.connections / n;
        let rem = self.connections % n;
        let connections = base + u64::from(i < rem);
        let first_k = i * base + i.min(rem);
        let all = self.paths();
        let paths = if all.len() as u64 >= n {
            all.into_iter()
                .enumerate()
                .filter(|(j, _)| (*j as u64) % n == i)
                .map(|(_, p)| p)
                .collect()
        } else {
            all
        };
        Shard {
            index,
            count,
            first_k,
            connections,
            window: self.window.div_ceil(count as usize).max(1),
            rate: self.rate.map(|r| r / count as f64),
            paths,
        }
    }
}

/// How many worker processes `--procs auto` needs: one per `per_process`
/// connections.
pub fn auto_procs(connections: u64, per_process: u64) -> u32 {
    crate::sys::limits::processes_for(connections, per_process).clamp(1, 4096) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(connections: u64, ports: u16, sources: &[&str]) -> Plan {
        Plan {
            host: "127.0.0.1".into(),
            dest: "127.0.0.1".parse().unwrap(),
            first_port: 9000,
            ports,
            sources: sources.iter().map(|s| s.parse().unwrap()).collect(),
            connections,
            window: 1000,
            rate: Some(1000.0),
            connect_timeout: Duration::from_secs(3),
            hold: None,
            message_interval: None,
        }
    }

    #[test]
    fn sources_expand_ranges_lists_and_reject_junk() {
        let v = parse_sources("127.0.0.2-127.0.0.4,127.0.0.9, 127.0.0.3").unwrap();
        let s: Vec<String> = v.iter().map(|a| a.to_string()).collect();
        assert_eq!(s, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"]);
        assert_eq!(parse_sources("127.0.1.1-50").unwrap().len(), 50);
        assert_eq!(parse_sources("10.0.0.255-10.0.1.1").unwrap().len(), 3);
        for bad in ["", "x", "127.0.0.9-127.0.0.2", "127.0.0.1-300", "1.2.3"] {
            let e = parse_sources(bad).unwrap_err();
            assert_eq!(e.arg, "--sources", "{bad}");
        }
    }

    #[test]
    fn ports_beyond_65535_and_zero_are_named() {
        assert!(check_ports(65516, 20).is_ok());
        let e = check_ports(65530, 20).unwrap_err();
        assert_eq!(e.arg, "--ports");
        assert!(e.message.contains("65549"));
        assert_eq!(check_ports(0, 1).unwrap_err().arg, "PORT");
        assert_eq!(check_ports(80, 0).unwrap_err().arg, "--ports");
    }

    #[test]
    fn non_local_source_is_refused_and_loopback_ones_pass() {
        let dest: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(check_sources_local(&["127.0.0.7".parse().unwrap()], dest).is_ok());
        let e = check_sources_local(&["192.0.2.1".parse().unwrap()], dest).unwrap_err();
        assert_eq!(e.arg, "--sources");
        assert!(e.message.contains("192.0.2.1"), "{}", e.message);
        assert!(resolve_host("no-such-host.invalid").is_err());
        assert_eq!(
            resolve_host("127.0.0.1").unwrap(),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn shards_cover_every_connection_once_and_split_paths() {
        let p = plan(1003, 20, &["127.0.0.2", "127.0.0.3"]);
        let shards: Vec<Shard> = (0..4).map(|i| p.shard(i, 4)).collect();
        let total: u64 = shards.iter().map(|s| s.connections).sum();
        assert_eq!(total, 1003);
        let mut next = 0;
        for s in &shards {
            assert_eq!(s.first_k, next);
            next += s.connections;
            assert_eq!(s.paths.len(), 10);
            assert_eq!(s.window, 250);
            assert_eq!(s.rate, Some(250.0));
        }
        let mut all: Vec<Path> = shards.iter().flat_map(|s| s.paths.clone()).collect();
        all.sort_by_key(|p| (p.source, p.dest));
        all.dedup();
        assert_eq!(all.len(), 40, "each path belongs to exactly one shard");
        // fewer paths than shards: every shard gets them all
        let few = plan(100, 2, &[]);
        assert_eq!(few.shard(2, 3).paths.len(), 2);
        assert_eq!(auto_procs(200_000, 19_936), 11);
        assert_eq!(auto_procs(5, 19_936), 1);
    }
}
