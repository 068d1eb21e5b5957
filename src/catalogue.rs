//! The failure catalogue: every way a C1M run is known to fall short, with a
//! stable snake_case id for JSON output, what a program sees (errnos and their
//! texts), what else shows it (kernel lines, counters), which side it belongs
//! to, and what fixes it. One list serves both `doctor` (a profile setting
//! names the failure it prevents) and `analyze` (a finding names the failure
//! its evidence shows), so the two commands can never disagree on names.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Stable identifier of a failure class. Serialized as snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureId {
    FdLimit,
    SystemFdLimit,
    EphemeralPortsExhausted,
    AcceptQueueOverflow,
    ConntrackFull,
    TcpMemoryPressure,
    OrphanSockets,
    TimeWaitOverflow,
    OutOfMemory,
    EpollWatchLimit,
    ConnectTimeout,
    ConnectionRefused,
    ConnectionReset,
    PeerDisconnect,
    EagainMisuse,
    WrongFd,
    ClientCapReached,
    UnterminatedBuffer,
    LogCorrupted,
    ServerProcessDied,
    ServerStalled,
    PacketLoss,
    ReconnectStorm,
    ClientProcessDied,
    ServerConnectionLimit,
    ProtocolMismatch,
    ProtocolRefused,
    ConnectFailed,
    MemoryCeiling,
}

/// Where a failure lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Client,
    Server,
    /// Either end, depending on which process reported it.
    Either,
    /// The host as a whole (a system-wide table or limit).
    Host,
    /// Seen by the client, caused by something elsewhere.
    SeenByClient,
    /// A bug in the client program, not a limit.
    ClientBug,
    /// The log file itself.
    Log,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Side::Client => "client",
            Side::Server => "server",
            Side::Either => "either",
            Side::Host => "host",
            Side::SeenByClient => "seen by client",
            Side::ClientBug => "client bug",
            Side::Log => "log",
        };
        f.write_str(s)
    }
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Failure {
    pub id: FailureId,
    /// A short human title.
    pub title: &'static str,
    /// errno values a program sees for this failure (first is the main one).
    pub errnos: &'static [i32],
    /// Substrings (lowercase) of error texts that show it: strerror texts from
    /// glibc and musl, kernel log lines, program messages.
    pub texts: &'static [&'static str],
    /// Counters (nstat / netstat -s names) that rise with it.
    pub counters: &'static [&'static str],
    /// Connection counts at which a run typically plateaus with this failure.
    pub plateaus: &'static [u64],
    pub side: Side,
    /// What happens, in one sentence.
    pub explanation: &'static str,
    /// What fixes it: settings or code changes.
    pub fix: &'static str,
    /// Settings (sysctl keys, or "RLIMIT_NOFILE") that prevent it.
    pub settings: &'static [&'static str],
}

/// The whole catalogue, in the order of `FailureId`.
pub const CATALOGUE: &[Failure] = &[
    Failure {
        id: FailureId::FdLimit,
        title: "per-process open-files limit",
        errnos: &[24],
        texts: &["too many open files", "no file descriptors available"],
        counters: &[],
        plateaus: &[1_020, 2_044, 4_092, 19_990],
        side: Side::Either,
        explanation: "the process reached its RLIMIT_NOFILE soft limit, so socket() and accept() fail with EMFILE",
        fix: "raise RLIMIT_NOFILE (the hard limit needs CAP_SYS_RESOURCE and fs.nr_open above it; limits.d or systemd LimitNOFILE=), or spread the connections over more processes",
        settings: &["RLIMIT_NOFILE", "fs.nr_open"],
    },
    Failure {
        id: FailureId::SystemFdLimit,
        title: "system-wide open-files limit",
        errnos: &[23],
        texts: &["too many open files in system", "file-max limit"],
        counters: &[],
        plateaus: &[],
        side: Side::Host,
        explanation: "the host ran out of file structures (fs.file-max), so every process gets ENFILE",
        fix: "raise fs.file-max to at least twice the target plus headroom when both ends share a host",
        settings: &["fs.file-max"],
    },
    Failure {
        id: FailureId::EphemeralPortsExhausted,
        title: "ephemeral ports exhausted",
        errnos: &[99],
        texts: &["cannot assign requested address"],
        counters: &[],
        plateaus: &[28_232, 64_512],
        side: Side::Client,
        explanation: "every local port of the ephemeral range is in use towards this (source IP, destination IP, destination port), so connect() fails with EADDRNOTAVAIL",
        fix: "widen net.ipv4.ip_local_port_range to 1024 65535, connect to more server ports, and bind more source addresses with IP_BIND_ADDRESS_NO_PORT (c1m flood --sources)",
        settings: &[
            "net.ipv4.ip_local_port_range",
            "net.ipv4.ip_local_reserved_ports",
        ],
    },
    Failure {
        id: FailureId::AcceptQueueOverflow,
        title: "accept queue overflow",
        errnos: &[],
        texts: &["possible syn flooding on port", "sending cookies"],
        counters: &[
            "ListenOverflows",
            "ListenDrops",
            "TCPReqQFullDrop",
            "TCPReqQFullDoCookies",
        ],
        plateaus: &[],
        side: Side::Server,
        explanation: "the server's listen queue was full, so the kernel dropped handshakes; clients retried the SYN after 1, 3, 7 s and finally timed out",
        fix: "listen() with a large backlog, raise net.core.somaxconn and net.ipv4.tcp_max_syn_backlog to 65535, and keep accepting",
        settings: &["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog"],
    },
    Failure {
        id: FailureId::ConntrackFull,
        title: "conntrack table full",
        errnos: &[],
        texts: &[
            "nf_conntrack: table full, dropping packet",
            "table full, dropping packet",
            // Kernels since 6.x name the namespace whose table is full.
            "nf_conntrack: table full in netns",
        ],
        counters: &[],
        plateaus: &[65_536, 131_072, 262_144],
        side: Side::Host,
        explanation: "the netfilter connection tracking table was full, so new connections' packets were dropped while established ones kept working",
        fix: "raise net.netfilter.nf_conntrack_max to at least 1.2 x the target (hashsize about max/4), or exempt the test ports with NOTRACK",
        settings: &["net.netfilter.nf_conntrack_max"],
    },
    Failure {
        id: FailureId::TcpMemoryPressure,
        title: "TCP memory pressure",
        errnos: &[105, 12],
        texts: &[
            "out of memory -- consider tuning tcp_mem",
            "no buffer space available",
        ],
        counters: &["TCPMemoryPressures", "TCPAbortOnMemory"],
        plateaus: &[],
        side: Side::Either,
        explanation: "queued socket data exceeded net.ipv4.tcp_mem, so the kernel stalled, refused buffers or reset connections",
        fix: "size net.ipv4.tcp_mem (in pages) to the spare RAM, use small tcp_rmem/tcp_wmem defaults for idle connections, and drain sockets",
        settings: &["net.ipv4.tcp_mem", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"],
    },
    Failure {
        id: FailureId::OrphanSockets,
        title: "too many orphaned sockets",
        errnos: &[],
        texts: &["too many orphaned sockets"],
        counters: &["TCPAbortOnMemory"],
        plateaus: &[],
        side: Side::Either,
        explanation: "at a mass close more sockets were waiting to finish than tcp_max_orphans allows, so the kernel reset them instead of closing cleanly",
        fix: "raise net.ipv4.tcp_max_orphans, lower tcp_orphan_retries and tcp_fin_timeout, or close gradually",
        settings: &["net.ipv4.tcp_max_orphans"],
    },
    Failure {
        id: FailureId::TimeWaitOverflow,
        title: "TIME-WAIT bucket overflow",
        errnos: &[99],
        texts: &["time wait bucket table overflow"],
        counters: &["TCPTimeWaitOverflow"],
        plateaus: &[],
        side: Side::Client,
        explanation: "the active closer kept more TIME-WAIT sockets than tcp_max_tw_buckets, and reconnects ran out of ports",
        fix: "raise net.ipv4.tcp_max_tw_buckets, set net.ipv4.tcp_tw_reuse = 1 on clients (tcp_tw_recycle is gone since Linux 4.12)",
        settings: &["net.ipv4.tcp_max_tw_buckets", "net.ipv4.tcp_tw_reuse"],
    },
    Failure {
        id: FailureId::OutOfMemory,
        title: "out of memory",
        errnos: &[12],
        texts: &[
            "out of memory: kill",
            "out of memory: killed process",
            "killed process",
            "已杀死",
            "cannot allocate memory",
        ],
        counters: &[],
        plateaus: &[],
        side: Side::Either,
        explanation: "the host ran out of memory and the OOM killer ended a process (small anon-rss: kernel socket memory; large: application buffers)",
        fix: "size RAM for the target, allocate per-connection buffers lazily, and shrink the buffer sysctls",
        settings: &["memory"],
    },
    Failure {
        id: FailureId::EpollWatchLimit,
        title: "epoll watch limit",
        errnos: &[28],
        texts: &["no space left on device", "max_user_watches"],
        counters: &[],
        plateaus: &[],
        side: Side::Either,
        explanation: "epoll_ctl(ADD) failed with ENOSPC: the user reached fs.epoll.max_user_watches",
        fix: "raise fs.epoll.max_user_watches to at least twice the target",
        settings: &["fs.epoll.max_user_watches"],
    },
    Failure {
        id: FailureId::ConnectTimeout,
        title: "connect timed out",
        errnos: &[110],
        texts: &["connection timed out", "operation timed out", "i/o timeout"],
        counters: &["TCPSynRetrans", "TCPTimeouts"],
        plateaus: &[],
        side: Side::SeenByClient,
        explanation: "the SYN went unanswered through its retries: something between the client and the server's accept() dropped it",
        fix: "a symptom: find the cause (conntrack table full, accept queue overflow, a server that stopped accepting) from the server's kernel log and counters",
        settings: &["net.core.netdev_max_backlog"],
    },
    Failure {
        id: FailureId::ConnectionRefused,
        title: "connection refused",
        errnos: &[111],
        texts: &["connection refused"],
        counters: &[],
        plateaus: &[],
        side: Side::SeenByClient,
        explanation: "nothing listened on that address and port (wrong port, or the server exited)",
        fix: "start the server on the right ports; if it died, see its fd limit and memory",
        settings: &[],
    },
    Failure {
        id: FailureId::ConnectionReset,
        title: "connection reset",
        errnos: &[104],
        texts: &["connection reset by peer"],
        counters: &["TcpEstabResets", "TcpOutRsts"],
        plateaus: &[],
        side: Side::Either,
        explanation: "the peer reset the connection: it died, hit a limit, or aborted orphans",
        fix: "usually a consequence: look for the peer's own failure (crash, fd limit, memory, orphans)",
        settings: &[],
    },
    Failure {
        id: FailureId::PeerDisconnect,
        title: "peer disconnected",
        errnos: &[],
        texts: &["disconnect clientfd"],
        counters: &[],
        plateaus: &[],
        side: Side::Either,
        explanation: "the other side closed the connection (EOF)",
        fix: "a consequence of the other side closing: see what made it close",
        settings: &[],
    },
    Failure {
        id: FailureId::EagainMisuse,
        title: "EAGAIN treated as an error",
        errnos: &[11],
        texts: &["resource temporarily unavailable", "errno:11"],
        counters: &[],
        plateaus: &[],
        side: Side::ClientBug,
        explanation: "the client read a non-blocking socket that had no data, got EAGAIN and closed a healthy connection",
        fix: "EAGAIN on a non-blocking socket means try later: wait for readiness, and read the fd the event names",
        settings: &[],
    },
    Failure {
        id: FailureId::WrongFd,
        title: "I/O on the wrong descriptor",
        errnos: &[88],
        texts: &["socket operation on non-socket", "sockfd:0"],
        counters: &[],
        plateaus: &[],
        side: Side::ClientBug,
        explanation: "the client called send/recv on a descriptor that is not the event's socket (fd 0 at the end of the seed's loop)",
        fix: "use the fd carried by the epoll event",
        settings: &[],
    },
    Failure {
        id: FailureId::ClientCapReached,
        title: "client's hard-coded cap",
        errnos: &[],
        texts: &[],
        counters: &[],
        plateaus: &[340_000, 380_000],
        side: Side::Client,
        explanation: "the client stopped creating connections at a number written into its code; no limit was hit",
        fix: "not a limit: make the target a parameter (c1m flood --connections)",
        settings: &[],
    },
    Failure {
        id: FailureId::UnterminatedBuffer,
        title: "unterminated receive buffer printed",
        errnos: &[],
        texts: &[" recvbuffer:"],
        counters: &[],
        plateaus: &[],
        side: Side::ClientBug,
        explanation: "the client printed a receive buffer that recv() filled to the brim, with no terminating NUL, so stack garbage followed",
        fix: "print only the bytes received (printf(\"%.*s\", n, buf))",
        settings: &[],
    },
    Failure {
        id: FailureId::LogCorrupted,
        title: "corrupted log",
        errnos: &[],
        texts: &[],
        counters: &[],
        plateaus: &[],
        side: Side::Log,
        explanation: "the log holds invalid bytes, records glued to terminal noise, or a cut last line (stdout fully buffered when redirected, or a killed process)",
        fix: "flush every line (line-buffered output), and log as JSON lines (c1m --json)",
        settings: &[],
    },
    Failure {
        id: FailureId::ServerProcessDied,
        title: "server process died",
        errnos: &[],
        texts: &[],
        counters: &[],
        plateaus: &[],
        side: Side::Server,
        explanation: "a server process (a serve worker, or the whole server) was killed or exited, and every connection it held died with it: its clients saw EOFs or resets at that moment",
        fix: "find why it died (the signal or exit status, an OOM kill in the kernel log, a crash); clients must reconnect with backoff and jitter (c1m flood --reconnect) so the survivors are not flattened by a reconnect storm",
        settings: &[],
    },
    Failure {
        id: FailureId::ServerStalled,
        title: "server stalled",
        errnos: &[],
        texts: &[],
        counters: &[],
        plateaus: &[],
        side: Side::Server,
        explanation: "a server process stopped running for a while (SIGSTOP, a long GC or swap pause, a blocked syscall): its connections got no echo, and its share of new connects queued up in the accept backlog",
        fix: "find what paused it (signals, page faults, a blocking call in the event loop); keep every blocking call off the event loop, and give clients a request timeout longer than the longest pause you accept",
        settings: &[],
    },
    Failure {
        id: FailureId::PacketLoss,
        title: "packet loss or network partition",
        errnos: &[],
        texts: &[],
        // Judged by rules::faults (data retransmissions, not SYNs, with
        // no accept-queue overflow to explain them), not one by one.
        counters: &["TcpRetransSegs", "TCPLossProbes"],
        plateaus: &[],
        side: Side::Host,
        explanation: "packets between the hosts were dropped (a lossy link, or every packet for a while: a partition): retransmissions rose, echoes and connects timed out, and connections whose retries ran out were lost",
        fix: "find the dropping link or firewall rule (nft list ruleset, interface drop counters); clients must time out and reconnect with backoff and jitter rather than hang",
        settings: &["net.ipv4.tcp_retries2", "net.ipv4.tcp_syn_retries"],
    },
    Failure {
        id: FailureId::ReconnectStorm,
        title: "reconnect storm",
        errnos: &[],
        texts: &[],
        counters: &[],
        plateaus: &[],
        side: Side::Client,
        explanation: "many clients reconnected at the same moment after a failure, so the server's accept queue and SYN backlog overflowed and the recovery took longer than the failure",
        fix: "reconnect with exponential backoff and full jitter (c1m flood --reconnect --reconnect-backoff 100ms..30s), and size net.core.somaxconn and tcp_max_syn_backlog for the burst",
        settings: &["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog"],
    },
    Failure {
        id: FailureId::ClientProcessDied,
        title: "client process died",
        errnos: &[],
        texts: &[],
        counters: &[],
        plateaus: &[],
        side: Side::Client,
        explanation: "a client process was killed or exited, and the kernel closed every connection it held: the server saw them end (EOFs or resets) at that moment",
        fix: "find why the client died (the signal or exit status, an OOM kill in the kernel log); not a server fault",
        settings: &[],
    },
    Failure {
        id: FailureId::ServerConnectionLimit,
        title: "server's own connection limit",
        errnos: &[],
        texts: &[
            "max number of clients reached",
            "worker_connections are not enough",
            "setting the max clients configuration to",
            "max_connections",
            // c1m serve's own line (its JSON record is a failure record).
            "cap reached: serve holds",
        ],
        counters: &[],
        plateaus: &[],
        side: Side::Server,
        explanation: "the server refuses or stops accepting clients at a limit of its own configuration (c1m serve --max-connections, Redis maxclients, nginx worker_connections, Mosquitto max_connections), often lowered by the server itself to what its per-process fd limit allows",
        fix: "raise the server's own limit (c1m serve --max-connections, Redis maxclients, nginx worker_processes x worker_connections, Mosquitto max_connections) and the fd limit it runs with (systemd LimitNOFILE=, ulimit -n); a one-process server (Redis, Mosquitto) cannot hold more clients than its fd limit: run several instances",
        settings: &["RLIMIT_NOFILE"],
    },
    Failure {
        id: FailureId::ProtocolMismatch,
        title: "server does not speak the protocol",
        errnos: &[],
        texts: &["the server does not speak"],
        counters: &[],
        plateaus: &[],
        side: Side::SeenByClient,
        explanation: "the server answered with bytes that are not the protocol the client speaks (an HTTP error page to a Redis PING, a RESP error to an HTTP GET)",
        fix: "point the client at the right port, or pick the server's protocol (c1m flood --protocol echo|connect|line|http|websocket|redis|mqtt)",
        settings: &[],
    },
    Failure {
        id: FailureId::ProtocolRefused,
        title: "server refused the session",
        errnos: &[],
        texts: &[
            "the broker refused connect",
            "answered http",
            "redis answered '-",
        ],
        counters: &[],
        plateaus: &[],
        side: Side::Server,
        explanation: "the server speaks the protocol but said no: an HTTP 4xx/5xx status, a Redis error reply, an MQTT CONNACK refusal code, a WebSocket upgrade refused or closed",
        fix: "send what the server accepts: the right --path and --header (HTTP, WebSocket), credentials or an allowed client id (MQTT, Redis); the server's log says why it refused",
        settings: &[],
    },
    Failure {
        id: FailureId::ConnectFailed,
        title: "connects failed (cause not printed)",
        errnos: &[],
        texts: &[],
        counters: &[],
        plateaus: &[],
        side: Side::SeenByClient,
        explanation: "the tool counted failed connect() calls without saying why (wrk's `connect` errors: refused, out of ports or out of file descriptors all land there)",
        fix: "a symptom: rerun with fewer connections or a client that prints errno, and check the client's ulimit -n, its ephemeral port range and that the server listens",
        settings: &[],
    },
    Failure {
        id: FailureId::MemoryCeiling,
        title: "memory ceiling (the lab's floor)",
        errnos: &[],
        texts: &[],
        counters: &[],
        plateaus: &[],
        side: Side::Host,
        explanation: "the host's usable memory (MemAvailable less the slab that open sockets pin) fell to the floor of `c1m lab --target max`, so the lab stopped its ramp there and held what was verified, rather than go on into reclaim and the OOM killer: each further connection needs kernel memory the host no longer has",
        fix: "the host's ceiling, not a fault: more RAM, less memory per connection (small tcp_rmem/tcp_wmem defaults and no data queued on idle connections), or the connections spread over more hosts",
        settings: &[],
    },
];

impl FailureId {
    /// The catalogue entry for this id.
    pub fn info(self) -> &'static Failure {
        // CATALOGUE is in declaration order; the test below keeps it so.
        &CATALOGUE[self as usize]
    }

    /// The stable snake_case name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureId::FdLimit => "fd_limit",
            FailureId::SystemFdLimit => "system_fd_limit",
            FailureId::EphemeralPortsExhausted => "ephemeral_ports_exhausted",
            FailureId::AcceptQueueOverflow => "accept_queue_overflow",
            FailureId::ConntrackFull => "conntrack_full",
            FailureId::TcpMemoryPressure => "tcp_memory_pressure",
            FailureId::OrphanSockets => "orphan_sockets",
            FailureId::TimeWaitOverflow => "time_wait_overflow",
            FailureId::OutOfMemory => "out_of_memory",
            FailureId::EpollWatchLimit => "epoll_watch_limit",
            FailureId::ConnectTimeout => "connect_timeout",
            FailureId::ConnectionRefused => "connection_refused",
            FailureId::ConnectionReset => "connection_reset",
            FailureId::PeerDisconnect => "peer_disconnect",
            FailureId::EagainMisuse => "eagain_misuse",
            FailureId::WrongFd => "wrong_fd",
            FailureId::ClientCapReached => "client_cap_reached",
            FailureId::UnterminatedBuffer => "unterminated_buffer",
            FailureId::LogCorrupted => "log_corrupted",
            FailureId::ServerProcessDied => "server_process_died",
            FailureId::ServerStalled => "server_stalled",
            FailureId::PacketLoss => "packet_loss",
            FailureId::ReconnectStorm => "reconnect_storm",
            FailureId::ClientProcessDied => "client_process_died",
            FailureId::ServerConnectionLimit => "server_connection_limit",
            FailureId::ProtocolMismatch => "protocol_mismatch",
            FailureId::ProtocolRefused => "protocol_refused",
            FailureId::ConnectFailed => "connect_failed",
            FailureId::MemoryCeiling => "memory_ceiling",
        }
    }

    /// Every id, in catalogue order.
    pub fn all() -> impl Iterator<Item = FailureId> {
        CATALOGUE.iter().map(|f| f.id)
    }

    /// The failure a socket call's errno points to, in the context of a
    /// connection test where EAGAIN on `connect` is the old kernels' way of
    /// saying the ephemeral ports ran out. `call` is "connect", "accept",
    /// "socket", "send", "recv", "epoll_ctl" or anything else.
    pub fn from_errno(call: &str, errno: i32) -> Option<FailureId> {
        Some(match (call, errno) {
            (_, 24) => FailureId::FdLimit,
            (_, 23) => FailureId::SystemFdLimit,
            ("connect", 99) | ("bind", 99) | ("connect", 11) => FailureId::EphemeralPortsExhausted,
            ("epoll_ctl", 28) => FailureId::EpollWatchLimit,
            (_, 110) => FailureId::ConnectTimeout,
            (_, 111) => FailureId::ConnectionRefused,
            (_, 104) | (_, 32) => FailureId::ConnectionReset,
            (_, 105) => FailureId::TcpMemoryPressure,
            (_, 12) => FailureId::OutOfMemory,
            (_, 11) => FailureId::EagainMisuse,
            (_, 88) => FailureId::WrongFd,
            _ => return None,
        })
    }
}

impl fmt::Display for FailureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailureId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FailureId::all()
            .find(|id| id.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not a failure id of the catalogue"))
    }
}

/// Every kernel counter some failure's evidence names ("ListenOverflows"),
/// for writers that must record them even when they did not move.
pub fn evidence_counters() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = CATALOGUE
        .iter()
        .flat_map(|f| f.counters.iter().copied())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_in_id_order_and_ids_round_trip() {
        for (i, f) in CATALOGUE.iter().enumerate() {
            assert_eq!(f.id as usize, i, "{} out of order", f.id);
            assert_eq!(f.id.as_str().parse::<FailureId>(), Ok(f.id));
            let json = serde_json::to_string(&f.id).unwrap();
            assert_eq!(json, format!("\"{}\"", f.id.as_str()));
            assert!(!f.fix.is_empty() && !f.explanation.is_empty());
        }
        assert_eq!(CATALOGUE.len(), 29);
    }

    #[test]
    fn errnos_map_to_the_failures_the_design_names() {
        assert_eq!(
            FailureId::from_errno("accept", 24),
            Some(FailureId::FdLimit)
        );
        assert_eq!(
            FailureId::from_errno("connect", 99),
            Some(FailureId::EphemeralPortsExhausted)
        );
        assert_eq!(
            FailureId::from_errno("connect", 110),
            Some(FailureId::ConnectTimeout)
        );
        assert_eq!(
            FailureId::from_errno("recv", 11),
            Some(FailureId::EagainMisuse)
        );
        assert_eq!(
            FailureId::from_errno("epoll_ctl", 28),
            Some(FailureId::EpollWatchLimit)
        );
        assert_eq!(FailureId::from_errno("write", 28), None);
    }
}
