//! The leaf layer: processes and the kernel, and nothing above them.
//!
//! `serve`, `flood`, `doctor` and the lab all stand on this layer; it imports
//! no other module of the crate but `util`, so it can be read, tested and
//! reused on its own (a test enforces that, `tests/layers.rs`).
//!
//! - [`workers`]: worker processes (this binary re-executed, each with its
//!   own fd limit, reporting JSON lines over a pipe, ended with their parent).
//! - [`signals`]: the stop flag every long-running command polls.
//! - [`netns`]: throwaway network namespaces.
//! - [`hosts`]: named namespace hosts on a bridge (`c1m lab --hosts`).
//! - [`probe`]: kernel evidence (TCP counters, memory, sockstat, new kernel
//!   log lines).
//! - [`limits`]: RLIMIT_NOFILE of this or another process, CAP_SYS_RESOURCE,
//!   the one way to raise it, and the one sizing rule ("how many processes
//!   for N sockets", one slack constant).
//! - [`procfs`]: every read of `/proc` (meminfo, limits, status, statm, TCP
//!   counters, sockstat, liveness, namespace identity), on the `procfs`
//!   crate where it covers the file.
//! - [`sysctl`]: the `/proc/sys` tree (`C1M_SYSCTL_ROOT` replaces it in
//!   tests).
//! - [`tcpopt`]: the integer TCP socket options no crate wraps
//!   (TCP_DEFER_ACCEPT, a listener's TCP_FASTOPEN).
pub mod fds;
pub mod hosts;
pub mod limits;
pub mod netns;
pub mod probe;
pub mod procfs;
pub mod signals;
pub mod sysctl;
pub mod tcpopt;
pub mod workers;
