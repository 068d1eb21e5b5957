//! Process plumbing shared by `serve`, `flood` and `lab`: worker processes
//! (the same binary re-executed, each with its own fd limit, reporting JSON
//! lines over a pipe) and the shutdown signals every long-running command
//! honours.
pub mod lab;
pub mod netns;
pub mod probe;
pub mod scenarios;
pub mod signals;
pub mod workers;
