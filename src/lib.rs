//! c1m: take a Linux server past one million concurrent TCP connections, and
//! explain from evidence every place where a run falls short.
//!
//! The crate is one binary with a library behind it. `commands` holds one thin
//! file per subcommand (flags in, rendering out); the real work lives in the
//! other modules so that tests, benches and the lab can call it directly.
pub mod argv;
pub mod catalogue;
pub mod commands;
pub mod diagnosis;
pub mod events;
pub mod flood;
pub mod harness;
pub mod metrics;
pub mod reactor;
pub mod sys;
pub mod tuning;
pub mod util;
