//! The test harness of the design card: `c1m lab`, the whole experiment on
//! one machine (preflight, run, report) and its failure scenarios. It is
//! the roof: it drives `serve` and `flood` as child processes and reads
//! their results with `tuning` and `diagnosis`; nothing below imports it.
pub mod lab;
pub mod scenarios;
pub mod server;
