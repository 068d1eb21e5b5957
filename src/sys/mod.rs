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
//! - [`limits`]: RLIMIT_NOFILE of this or another process, CAP_SYS_RESOURCE.
pub mod hosts;
pub mod limits;
pub mod netns;
pub mod probe;
pub mod signals;
pub mod workers;
