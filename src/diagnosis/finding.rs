//! A finding and how sure it is: the type every rule of [`super::rules`]
//! builds and [`super::classify`] orders, merges and summarizes. Its own
//! module so that the rules and the classifier both import it and neither
//! imports the other (the classifier runs the rules; the rules know nothing
//! of it).
use serde::Serialize;

use super::source::Evidence;
use crate::catalogue::{FailureId, Side};

/// How sure a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Certainty {
    /// A line or counter shows it.
    Certain,
    /// The numbers point to it and nothing else explains them as well.
    Likely,
    /// It fits the evidence but is not shown by it.
    Possible,
}

impl Certainty {
    pub fn as_str(self) -> &'static str {
        match self {
            Certainty::Certain => "certain",
            Certainty::Likely => "likely",
            Certainty::Possible => "possible",
        }
    }
}

/// One explained failure.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: FailureId,
    pub title: &'static str,
    pub side: Side,
    pub certainty: Certainty,
    /// The source it was found in (or the one whose symptom it explains).
    pub source: String,
    /// How many times it was seen (lines, or counter increase).
    pub count: u64,
    pub evidence: Vec<Evidence>,
    pub explanation: String,
    pub fix: String,
    /// Causes this symptom is blamed on (ids of other findings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub caused_by: Vec<FailureId>,
    /// The symptom this finding is a cause of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause_of: Option<FailureId>,
    /// What to collect next to settle an open question.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub collect: Vec<String>,
    /// When it was first seen (`2026-12-02T22:43:05.123`: UTC when the log
    /// gave a zone, else its clock as written), when its lines carried
    /// timestamps or it came from c1m's records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// The same, in seconds since the epoch: findings of equal weight are
    /// ordered by it (the failure that came first, first).
    #[serde(skip)]
    pub first_ts: Option<f64>,
    /// The symptom finding (by index) this possible cause was added for.
    #[serde(skip)]
    pub(super) linked_to: Option<usize>,
}

impl Finding {
    pub(super) fn new(id: FailureId, side: Side, certainty: Certainty, source: &str) -> Finding {
        let info = id.info();
        Finding {
            id,
            title: info.title,
            side,
            certainty,
            source: source.to_string(),
            count: 0,
            evidence: Vec::new(),
            explanation: info.explanation.to_string(),
            fix: info.fix.to_string(),
            caused_by: Vec::new(),
            cause_of: None,
            collect: Vec::new(),
            first_seen: None,
            first_ts: None,
            linked_to: None,
        }
    }

    /// Set when the finding was first seen.
    pub(super) fn seen_at(mut self, ts: Option<f64>) -> Finding {
        self.first_ts = ts;
        self.first_seen = ts.map(super::timestamps::iso);
        self
    }

    /// Put what was seen in front of the catalogue's explanation.
    pub(super) fn detail(mut self, text: String) -> Finding {
        self.explanation = format!("{}. {}.", capitalize(&text), capitalize(&self.explanation));
        self
    }
}

/// `text` with its first letter upper-cased.
pub fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
