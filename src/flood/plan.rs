//! What a flood run is asked to do, checked before any socket is opened: the
//! destination resolved to one address, the port range inside 1..=65535, the
//! source addresses expanded from ranges and lists and proven local (each is
//! bound once), and the split of connections and (source, destination) paths
//! between worker processes. Every refusal names the argument at fault, so
//! the command can exit 2 with a message the user can act on.
//!
//! It also holds the arithmetic of a fleet run (`--shard K/N`, like k6's
//! execution segments): N hosts started with the same command line each take
//! an exact share, so that together they open exactly `--connections`.
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, SystemTime};

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
    /// Global number of the plan's first connection: 0, or a fleet shard's
    /// offset.
    pub first_k: u64,
    pub window: usize,
    /// Connection attempts per second, all shards together.
    pub rate: Option<f64>,
    pub connect_timeout: Duration,
    /// `None` holds until Ctrl-C.
    pub hold: Option<Duration>,
    pub message_interval: Option<Duration>,
}

/// `--shard K/N`: this host is shard K (numbered from 1, like 1/3, 2/3,
/// 3/3) of a fleet of N hosts started with the same command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetShard {
    /// 1..=n.
    pub k: u32,
    pub n: u32,
}

impl std::fmt::Display for FleetShard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl std::str::FromStr for FleetShard {
    type Err = String;

    fn from_str(text: &str) -> Result<FleetShard, String> {
        let bad = || format!("'{text}' is not K/N with 1 <= K <= N (like 2/3)");
        let (k, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let k: u32 = k.trim().parse().map_err(|_| bad())?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        if n == 0 || k == 0 || k > n {
            return Err(format!(
                "'{text}': shards are numbered 1..N (1/{n} to {n}/{n}); K={k} is outside",
                n = n.max(1)
            ));
        }
        Ok(FleetShard { k, n })
    }
}

/// What a fleet run splits between its hosts besides the connections (the
/// `--shard-split` values). By default every host uses the whole port range
/// and its own `--sources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitWhat {
    /// Each host connects to its own block of the port range.
    Ports,
    /// Each host binds its own block of the `--sources` list (the same list
    /// on every host, each host owning some of its addresses).
    Sources,
}

/// The most `--start-at` may lie ahead: a later time is a typo, not a plan.
pub const START_AT_MAX_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// `--start-at`: when every host of a fleet starts connecting. RFC 3339
/// with its offset (`2026-12-02T16:00:00Z`, `...+01:00`, fractions of a
/// second allowed) or a delay from `now` (`+5s`, `+1m 30s`). A time more
/// than [`START_AT_MAX_AHEAD`] ahead is refused; one in the past is taken
/// (the caller starts at once and says how late it is).
pub fn parse_start_at(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let t = text.trim();
    let at = if let Some(delay) = t.strip_prefix('+') {
        let d = humantime::parse_duration(delay.trim())
            .map_err(|e| format!("'{text}': '+{delay}' is not a delay like +5s ({e})"))?;
        now + d
    } else {
        let bad = |why: String| {
            format!(
                "'{text}' is not an RFC 3339 time like 2026-12-02T16:00:00Z or a delay like +5s ({why})"
            )
        };
        let (local, east) =
            split_utc_offset(t).ok_or_else(|| bad("no Z or +HH:MM offset".into()))?;
        let local = humantime::parse_rfc3339_weak(local).map_err(|e| bad(e.to_string()))?;
        if east >= 0 {
            local - Duration::from_secs(east.unsigned_abs())
        } else {
            local + Duration::from_secs(east.unsigned_abs())
        }
    };
    if at.duration_since(now).is_ok_and(|d| d > START_AT_MAX_AHEAD) {
        return Err(format!(
            "'{text}' is more than {} from now",
            humantime::format_duration(START_AT_MAX_AHEAD)
        ));
    }
    Ok(at)
}

/// An RFC 3339 time's local part and its offset east of UTC in seconds:
/// `Z` is 0, `+01:00` 3600. `None` without an offset.
fn split_utc_offset(t: &str) -> Option<(&str, i64)> {
    if let Some(local) = t.strip_suffix(['Z', 'z']) {
        return Some((local, 0));
    }
    let cut = t.len().checked_sub(6)?;
    let (local, off) = (t.get(..cut)?, t.get(cut..)?.as_bytes());
    let sign = match off[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = |a: u8, b: u8| -> Option<i64> {
        (a.is_ascii_digit() && b.is_ascii_digit()).then(|| i64::from((a - b'0') * 10 + (b - b'0')))
    };
    let (h, m) = (digits(off[1], off[2])?, digits(off[4], off[5])?);
    (off[3] == b':' && h < 24 && m < 60).then_some((local, sign * (h * 3600 + m * 60)))
}

impl std::fmt::Display for SplitWhat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SplitWhat::Ports => "ports",
            SplitWhat::Sources => "sources",
        })
    }
}

/// Part `i` (0-based) of `total` things split into `n` contiguous blocks:
/// `(offset, len)`. The first `total % n` blocks take one more, so the
/// blocks cover `0..total` exactly once and differ in size by at most one.
pub fn split_exact(total: u64, n: u64, i: u64) -> (u64, u64) {
    let n = n.max(1);
    let base = total / n;
    let rem = total % n;
    (i * base + i.min(rem), base + u64::from(i < rem))
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
    // Addresses already in `out`: O(1) per address (65,536 of them took
    // 1.65 s with a scan of `out`).
    let mut seen: std::collections::HashSet<IpAddr> = std::collections::HashSet::new();
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
                if seen.insert(ip) {
                    out.push(ip);
                }
            }
        } else {
            let ip: IpAddr = part
                .parse()
                .map_err(|_| err("--sources", format!("'{part}' is not an IP address")))?;
            if seen.insert(ip) {
                out.push(ip);
            }
        }
    }
    if out.is_empty() {
        return Err(err("--sources", "no address given"));
    }
    Ok(out)
}

/// `--sources` as doctor and the lab take it: a count of addresses, or
/// flood's list of addresses and ranges ([`parse_sources`]). One parser,
/// so the syntax is the same in every command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Count(u64),
    List(Vec<IpAddr>),
}

impl SourceSpec {
    /// How many addresses it stands for.
    pub fn count(&self) -> u64 {
        match self {
            SourceSpec::Count(n) => *n,
            SourceSpec::List(v) => v.len() as u64,
        }
    }
}

/// Read a [`SourceSpec`]: digits alone are a count (at least 1), anything
/// else an address list; the error names the input.
pub fn parse_source_spec(text: &str) -> Result<SourceSpec, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return match t.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(SourceSpec::Count(n)),
            Ok(_) => Err("a count of source addresses must be at least 1".into()),
            Err(_) => Err(format!("'{text}' is too large a count of source addresses")),
        };
    }
    parse_sources(t)
        .map(SourceSpec::List)
        .map_err(|e| format!("'{text}' is neither a count nor an address list: {e}"))
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
    /// This host's share of a fleet run, shard `shard` of the plan the
    /// command line describes for the whole fleet: its block of the
    /// connections (numbered from the block's offset, so `client --> k` is
    /// unique over the fleet), of the window and of the rate; and, where
    /// `split` asks, its block of the port range and of the source list.
    /// A block that would be empty is refused, naming the flag.
    pub fn fleet_share(&self, shard: FleetShard, split: &[SplitWhat]) -> Result<Plan, PlanError> {
        let (n, i) = (u64::from(shard.n), u64::from(shard.k - 1));
        let mut p = self.clone();
        let (off, len) = split_exact(self.connections, n, i);
        if len == 0 {
            return Err(err(
                "--shard",
                format!(
                    "{} connections cannot be shared by {n} hosts (host {shard} would open none)",
                    self.connections
                ),
            ));
        }
        p.first_k = self.first_k + off;
        p.connections = len;
        p.window = (split_exact(self.window as u64, n, i).1 as usize).max(1);
        p.rate = self.rate.map(|r| r / n as f64);
        if split.contains(&SplitWhat::Ports) {
            let (off, len) = split_exact(u64::from(self.ports), n, i);
            if len == 0 {
                return Err(err(
                    "--shard-split",
                    format!(
                        "ports: {} ports cannot be split between {n} hosts (--ports)",
                        self.ports
                    ),
                ));
            }
            p.first_port = self.first_port + off as u16;
            p.ports = len as u16;
        }
        if split.contains(&SplitWhat::Sources) {
            if self.sources.is_empty() {
                return Err(err(
                    "--shard-split",
                    "sources: needs --sources, the fleet's whole list",
                ));
            }
            let (off, len) = split_exact(self.sources.len() as u64, n, i);
            if len == 0 {
                return Err(err(
                    "--shard-split",
                    format!(
                        "sources: {} addresses cannot be split between {n} hosts (--sources)",
                        self.sources.len()
                    ),
                ));
            }
            p.sources = self.sources[off as usize..(off + len) as usize].to_vec();
        }
        Ok(p)
    }

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
        let first_k = self.first_k + i * base + i.min(rem);
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
/// connections. More than [`crate::argv::MAX_PROCS`] is an error saying
/// why, not a silent clamp (that left each process more connections than
/// its fd limit).
pub fn auto_procs(connections: u64, per_process: u64) -> Result<u32, String> {
    use crate::argv::MAX_PROCS;
    let n = crate::sys::limits::processes_for(connections, per_process);
    if n > u64::from(MAX_PROCS) {
        return Err(format!(
            "--connections {connections} needs {n} processes of at most {per_process} connections each (the open-files limit), more than {MAX_PROCS}: lower --connections or raise the open-files limit"
        ));
    }
    Ok(n as u32)
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
            first_k: 0,
            window: 1000,
            rate: Some(1000.0),
            connect_timeout: Duration::from_secs(3),
            hold: None,
            message_interval: None,
        }
    }

    #[test]
    fn a_source_spec_is_a_count_or_an_address_list() {
        assert_eq!(parse_source_spec("10"), Ok(SourceSpec::Count(10)));
        assert_eq!(parse_source_spec(" 4 ").map(|s| s.count()), Ok(4));
        let list = parse_source_spec("127.0.1.1-3,127.0.2.1").unwrap();
        assert_eq!(list.count(), 4);
        assert!(
            matches!(&list, SourceSpec::List(v) if v[3] == "127.0.2.1".parse::<IpAddr>().unwrap())
        );
        assert!(parse_source_spec("0").unwrap_err().contains("at least 1"));
        let e = parse_source_spec("ten").unwrap_err();
        assert!(
            e.contains("'ten'") && e.contains("neither a count nor an address list"),
            "{e}"
        );
        assert!(
            parse_source_spec("99999999999999999999999")
                .unwrap_err()
                .contains("too large")
        );
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
    fn sixty_five_thousand_sources_dedup_in_linear_time() {
        // Twice the largest range, overlapping: 65,536 distinct addresses.
        let t = std::time::Instant::now();
        let v = parse_sources("127.1.0.0-127.1.255.255,127.1.0.0-127.1.255.255").unwrap();
        let took = t.elapsed();
        assert_eq!(v.len(), 65_536);
        assert_eq!(v[0].to_string(), "127.1.0.0");
        assert_eq!(v[65_535].to_string(), "127.1.255.255");
        // 1.65 s (release) with the quadratic scan; milliseconds now.
        assert!(took < std::time::Duration::from_millis(400), "{took:?}");
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
        assert_eq!(auto_procs(200_000, 19_936), Ok(11));
        assert_eq!(auto_procs(5, 19_936), Ok(1));
        // 5,000 processes were once clamped to 4,096 silently.
        let e = auto_procs(5_000 * 1_000, 1_000).unwrap_err();
        assert!(
            e.contains("needs 5000 processes") && e.contains("more than 4096"),
            "{e}"
        );
    }

    #[test]
    fn shard_text_is_k_of_n_numbered_from_one() {
        assert_eq!("2/3".parse::<FleetShard>(), Ok(FleetShard { k: 2, n: 3 }));
        assert_eq!(" 1 / 1 ".parse::<FleetShard>().unwrap().to_string(), "1/1");
        for bad in ["0/3", "4/3", "1/0", "3", "a/b", "-1/3", ""] {
            assert!(bad.parse::<FleetShard>().is_err(), "{bad}");
        }
        assert!("0/3".parse::<FleetShard>().unwrap_err().contains("1..N"));
    }

    #[test]
    fn fleet_share_numbers_connections_globally_and_names_empty_blocks() {
        let mut p = plan(10, 20, &["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
        p.window = 7;
        let s = p.fleet_share(FleetShard { k: 2, n: 3 }, &[]).unwrap();
        assert_eq!((s.first_k, s.connections, s.window), (4, 3, 2));
        assert_eq!((s.first_port, s.ports, s.sources.len()), (9000, 20, 3));
        assert_eq!(s.rate, Some(1000.0 / 3.0));
        // its processes keep numbering from the host's offset
        assert_eq!(s.shard(1, 2).first_k, 6);
        let both = [SplitWhat::Ports, SplitWhat::Sources];
        let s = p.fleet_share(FleetShard { k: 3, n: 3 }, &both).unwrap();
        assert_eq!((s.first_port, s.ports), (9014, 6));
        assert_eq!(s.sources, vec!["127.0.0.4".parse::<IpAddr>().unwrap()]);
        let e = plan(2, 20, &[]).fleet_share(FleetShard { k: 3, n: 3 }, &[]);
        assert_eq!(e.unwrap_err().arg, "--shard");
        let e = plan(9, 2, &[]).fleet_share(FleetShard { k: 3, n: 3 }, &both);
        assert_eq!(e.unwrap_err().arg, "--shard-split");
        let e = plan(9, 20, &[]).fleet_share(FleetShard { k: 1, n: 3 }, &both);
        assert!(e.unwrap_err().message.contains("needs --sources"));
    }

    #[test]
    fn start_at_reads_rfc3339_with_offsets_and_delays() {
        let now = humantime::parse_rfc3339("2026-12-02T15:00:00Z").unwrap();
        let at = |t: &str| {
            parse_start_at(t, now).map(|s| humantime::format_rfc3339_millis(s).to_string())
        };
        assert_eq!(
            at("2026-12-02T15:00:05Z").unwrap(),
            "2026-12-02T15:00:05.000Z"
        );
        assert_eq!(
            at("2026-12-02T16:00:05.25+01:00").unwrap(),
            "2026-12-02T15:00:05.250Z"
        );
        assert_eq!(
            at("2026-12-02T10:30:00-04:30").unwrap(),
            "2026-12-02T15:00:00.000Z"
        );
        assert_eq!(at("+5s").unwrap(), "2026-12-02T15:00:05.000Z");
        assert_eq!(at(" +1m 30s ").unwrap(), "2026-12-02T15:01:30.000Z");
        // the past is accepted: the hosts start at once
        assert_eq!(
            at("2026-12-02T14:00:00Z").unwrap(),
            "2026-12-02T14:00:00.000Z"
        );
        for bad in [
            "2026-12-02T15:00:05",
            "tomorrow",
            "+5",
            "+-5s",
            "2026-12-02T15:00:05+1:00",
            "2026-12-04T15:00:00Z",
            "+25h",
        ] {
            let e = at(bad).unwrap_err();
            assert!(e.contains(bad.trim()), "{bad}: {e}");
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// The hosts of a fleet together open exactly --connections,
            /// each connection number once; shares differ by at most one;
            /// the same for split ports and sources.
            #[test]
            fn fleet_shares_are_exact(
                total in 1u64..5_000_000,
                n in 1u32..64,
                ports in 1u16..200,
                nsrc in 1usize..40,
            ) {
                let srcs: Vec<String> = (0..nsrc).map(|i| format!("127.0.{}.{}", i / 200, 1 + i % 200)).collect();
                let srcs: Vec<&str> = srcs.iter().map(String::as_str).collect();
                let p = plan(total, ports, &srcs);
                let split = [SplitWhat::Ports, SplitWhat::Sources];
                let split: &[SplitWhat] = if u64::from(n) <= u64::from(ports) && n as usize <= nsrc { &split } else { &[] };
                let mut next_k = 0;
                let mut next_port = p.first_port;
                let mut seen_src = Vec::new();
                let (mut lo, mut hi) = (u64::MAX, 0);
                let (mut plo, mut phi) = (u16::MAX, 0);
                for k in 1..=n {
                    match p.fleet_share(FleetShard { k, n }, split) {
                        Ok(s) => {
                            prop_assert_eq!(s.first_k, next_k);
                            next_k += s.connections;
                            lo = lo.min(s.connections);
                            hi = hi.max(s.connections);
                            if split.is_empty() {
                                prop_assert_eq!(s.ports, ports);
                                prop_assert_eq!(s.sources.len(), nsrc);
                            } else {
                                prop_assert_eq!(s.first_port, next_port);
                                next_port += s.ports;
                                plo = plo.min(s.ports);
                                phi = phi.max(s.ports);
                                seen_src.extend(s.sources);
                            }
                        }
                        Err(e) => {
                            // only when there are fewer connections than hosts
                            prop_assert!(total < u64::from(n), "{e}");
                            prop_assert_eq!(e.arg, "--shard");
                        }
                    }
                }
                if total >= u64::from(n) {
                    prop_assert_eq!(next_k, total);
                    prop_assert!(hi - lo <= 1);
                    if !split.is_empty() {
                        prop_assert_eq!(next_port, p.first_port + ports);
                        prop_assert!(phi - plo <= 1);
                        prop_assert_eq!(&seen_src, &p.sources);
                    }
                }
            }

            #[test]
            fn split_exact_covers_everything_once(total in 0u64..10_000_000_000, n in 1u64..1000) {
                let mut next = 0;
                let sizes: Vec<u64> = (0..n).map(|i| {
                    let (off, len) = split_exact(total, n, i);
                    assert_eq!(off, next);
                    next += len;
                    len
                }).collect();
                prop_assert_eq!(next, total);
                let (lo, hi) = (sizes.iter().min().copied().unwrap_or(0), sizes.iter().max().copied().unwrap_or(0));
                prop_assert!(hi - lo <= 1);
            }
        }
    }
}
