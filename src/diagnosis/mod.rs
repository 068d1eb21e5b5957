//! Diagnosis: the failure catalogue shared by `doctor` (which setting
//! prevents a failure) and `analyze` (which evidence shows it), plus the log
//! parsers and the classifier that turn log lines into findings.
pub mod classify;
pub mod counts;
pub mod finding;
pub mod hosts;
pub mod input;
pub mod parse;
pub mod plot;
pub mod report;
pub mod rules;
pub mod source;
pub mod story;
pub mod timestamps;
pub mod vocab;

pub use crate::catalogue::{Failure, FailureId, Side};
