//! The story of a run, read in ten seconds: the verdict analyze prints
//! first (the total, how many are really alive, one cause per source in
//! words, what to do first) and the findings merged for people (a cause
//! seen on several sources is one finding that lists them, with the
//! cleanest lines as evidence). A pass over the classifier's output: the
//! classifier keeps one finding per source, which the JSON keeps too.
use super::classify::{Certainty, Finding, SourceSummary, Totals};
use super::source::{Evidence, Kind};
use crate::catalogue::{FailureId, Side};
use crate::util::thousands;
use unicode_width::UnicodeWidthStr;

/// A short name for a source: its section label ("客户端2" reads
/// "client 2"), else its file name without the folders, but with the
/// folder of a host when it is one (`client-2/flood.log`: every host of
/// `lab --hosts` or a fetched Ansible run writes the same file names).
pub fn short_name(name: &str) -> String {
    if let Some(open) = name.rfind(" [")
        && name.ends_with(']')
    {
        let label = &name[open + 2..name.len() - 1];
        let digits: String = label.chars().filter(|c| c.is_ascii_digit()).collect();
        let lower = label.to_lowercase();
        if !digits.is_empty() && (label.contains("客户端") || lower.contains("client")) {
            return format!("client {digits}");
        }
        if !digits.is_empty() && (label.contains("服务") || lower.contains("server")) {
            return format!("server {digits}");
        }
        return label.to_string();
    }
    let mut parts = name.rsplit('/');
    let file = parts.next().unwrap_or(name);
    match parts.next() {
        Some(dir) if is_host_folder(dir) => format!("{dir}/{file}"),
        _ => file.to_string(),
    }
}

/// Is `dir` a host's folder: `server`, `client-2`, `client_3`, `host1`?
fn is_host_folder(dir: &str) -> bool {
    ["server", "client", "host"].iter().any(|p| {
        dir.strip_prefix(p).is_some_and(|rest| {
            let digits = rest.trim_start_matches(['-', '_']);
            digits.chars().all(|c| c.is_ascii_digit())
        })
    })
}

/// Join names: "client 1, client 3".
fn names(list: &[String]) -> String {
    list.join(", ")
}

/// A finding as people read it: one per cause, with every source it was
/// seen in, and the causes of a symptom beneath it.
#[derive(Debug, Clone)]
pub struct Merged {
    pub id: FailureId,
    pub title: &'static str,
    pub side: Side,
    pub certainty: Certainty,
    /// Short names of the sources, in order of appearance.
    pub sources: Vec<String>,
    pub count: u64,
    pub evidence: Vec<Evidence>,
    pub explanation: String,
    pub fix: String,
    pub collect: Vec<String>,
    /// Whether this is a cause of the symptom above it.
    pub is_cause: bool,
    /// When it was first seen in any of its sources (by their clocks).
    pub first_ts: Option<f64>,
    pub causes: Vec<Merged>,
}

/// Most evidence lines shown for a merged finding.
const EVIDENCE: usize = 4;

/// Whether an evidence line is clean: printable ASCII only, the record at
/// the start of the line (not glued to prose or terminal noise).
fn clean(e: &Evidence) -> bool {
    let t = e.text.trim_start();
    t.chars().all(|c| c.is_ascii() && !c.is_ascii_control())
        && t.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '{' || c == '[')
}

/// Merge findings with the same id (and, for causes, the same symptom):
/// one entry listing every source, evidence clean lines first.
pub fn merge(findings: &[Finding]) -> Vec<Merged> {
    let mut out: Vec<Merged> = Vec::new();
    let mut i = 0;
    while i < findings.len() {
        let f = &findings[i];
        let mut causes: Vec<&Finding> = Vec::new();
        let mut j = i + 1;
        while j < findings.len() && findings[j].cause_of.is_some() {
            causes.push(&findings[j]);
            j += 1;
        }
        let head = one(f, f.cause_of.is_some());
        let slot = match out.iter().position(|m| m.id == f.id) {
            Some(k) => {
                absorb(&mut out[k], head);
                k
            }
            None => {
                out.push(head);
                out.len() - 1
            }
        };
        for c in causes {
            let cm = one(c, true);
            match out[slot].causes.iter().position(|m| m.id == c.id) {
                Some(k) => absorb(&mut out[slot].causes[k], cm),
                None => out[slot].causes.push(cm),
            }
        }
        i = j;
    }
    for m in &mut out {
        finish(m);
        for c in &mut m.causes {
            finish(c);
        }
    }
    out
}

fn one(f: &Finding, is_cause: bool) -> Merged {
    Merged {
        id: f.id,
        title: f.title,
        side: f.side,
        certainty: f.certainty,
        sources: vec![short_name(&f.source)],
        count: f.count,
        evidence: f.evidence.clone(),
        explanation: f.explanation.clone(),
        fix: f.fix.clone(),
        collect: f.collect.clone(),
        is_cause,
        first_ts: f.first_ts,
        causes: Vec::new(),
    }
}

/// Fold `other` (the same cause in another source) into `m`.
fn absorb(m: &mut Merged, other: Merged) {
    for s in other.sources {
        if !m.sources.contains(&s) {
            m.sources.push(s);
        }
    }
    m.certainty = m.certainty.min(other.certainty);
    m.first_ts = match (m.first_ts, other.first_ts) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    m.count = m.count.saturating_add(other.count);
    m.evidence.extend(other.evidence);
    if other.explanation != m.explanation {
        let who = m.sources.last().cloned().unwrap_or_default();
        m.explanation = join_explanations(&m.explanation, &other.explanation, &who);
    }
    for c in other.collect {
        if !m.collect.contains(&c) {
            m.collect.push(c);
        }
    }
}

/// Two explanations of the same cause: the first whole, the other's own
/// sentences (those the first does not already say) after its source name.
fn join_explanations(first: &str, other: &str, who: &str) -> String {
    let said: Vec<&str> = first.split(". ").map(str::trim).collect();
    let own: Vec<&str> = other
        .split(". ")
        .map(str::trim)
        .filter(|s| !said.contains(s))
        .collect();
    if own.is_empty() {
        return first.to_string();
    }
    let mut text = own.join(". ");
    if !text.ends_with('.') {
        text.push('.');
    }
    format!("{first} In {who}: {text}")
}

/// Evidence: clean lines first, then by file and line; at most
/// [`EVIDENCE`], no line twice.
fn finish(m: &mut Merged) {
    m.evidence
        .sort_by(|a, b| (!clean(a), &a.file, a.line).cmp(&(!clean(b), &b.file, b.line)));
    m.evidence
        .dedup_by(|a, b| a.file == b.file && a.line == b.line);
    m.evidence.truncate(EVIDENCE);
}

/// Whether a finding is what stopped its source (a limit, a cap, a
/// failure seen by the client), not a bug or damage beside it.
fn stops(f: &Finding) -> bool {
    !matches!(f.side, Side::ClientBug | Side::Log)
}

/// What happened to one source, in words (without its name).
fn source_story(s: &SourceSummary, findings: &[Finding]) -> String {
    if s.ramp_stopped {
        // The lab's stop at the host's ceiling, not the failures beside it.
        return format!(
            "held {}: the lab stopped its ramp at the host's ceiling",
            thousands(s.connections_max.unwrap_or(0))
        );
    }
    let top = findings
        .iter()
        .find(|f| f.source == s.name && f.cause_of.is_none() && stops(f));
    let n = s.connections_last.or(s.connections_max).unwrap_or(0);
    let Some(f) = top else {
        return match (s.kind, s.connections_max) {
            (Kind::Server, Some(m)) => format!("peak {}, no failure", thousands(m)),
            (_, Some(m)) => format!("reached {}, no failure", thousands(m)),
            _ => "no failure".into(),
        };
    };
    let cause = findings
        .iter()
        .skip_while(|g| !std::ptr::eq(*g, f))
        .skip(1)
        .take_while(|g| g.cause_of.is_some())
        .next();
    let because = cause
        .map(|c| format!(" ({}, {})", c.title, c.certainty.as_str()))
        .unwrap_or_default();
    match f.id {
        FailureId::ClientCapReached => {
            format!("stopped at its cap of {} (no limit hit)", thousands(n))
        }
        FailureId::ConnectTimeout => {
            format!("died at {} on connect timeouts{because}", thousands(n))
        }
        _ => format!("stopped at {}: {}{because}", thousands(n), f.title),
    }
}

/// The verdict: at most five lines, the numbers a reader came for first.
pub fn verdict(sources: &[SourceSummary], totals: &Totals, findings: &[Finding]) -> Vec<String> {
    let mut lines = Vec::new();
    if totals.clients > 0 {
        lines.push(format!(
            "verdict: {} connections printed, {}{} really alive",
            thousands(totals.client_connections_printed),
            if totals.live_estimate_exact {
                ""
            } else {
                "at most "
            },
            thousands(totals.client_connections_live_estimate)
        ));
    } else if totals.servers > 0 {
        lines.push(format!(
            "verdict: servers peaked at {} connections",
            thousands(totals.server_connections)
        ));
    } else {
        lines.push("verdict: no client or server progress in these inputs".into());
    }
    // One line per story, sources with the same story together.
    let mut stories: Vec<(String, Vec<String>)> = Vec::new();
    for s in sources
        .iter()
        .filter(|s| matches!(s.kind, Kind::Client | Kind::Server))
    {
        let story = source_story(s, findings);
        let name = short_name(&s.name);
        match stories.iter_mut().find(|(t, _)| *t == story) {
            Some((_, who)) => who.push(name),
            None => stories.push((story, vec![name])),
        }
    }
    // Sources that failed first; the quiet ones in one line at the end.
    stories.sort_by_key(|(t, _)| t.ends_with("no failure"));
    let shown = stories.len().min(3);
    for (story, who) in &stories[..shown] {
        let story = if who.len() > 1 {
            story.replace("its cap", "their cap")
        } else {
            story.clone()
        };
        lines.push(format!("  {}: {story}", names(who)));
    }
    if stories.len() > shown {
        let rest: usize = stories[shown..].iter().map(|(_, w)| w.len()).sum();
        lines.push(format!("  and {rest} more source(s): see the table"));
    }
    // The clients' own closes (the seed's EAGAIN bug).
    let eagain: Vec<String> = findings
        .iter()
        .filter(|f| f.id == FailureId::EagainMisuse && f.count > 0)
        .map(|f| format!("{} by {}", thousands(f.count), short_name(&f.source)))
        .collect();
    if !eagain.is_empty() {
        lines.push(format!(
            "  EAGAIN bug: healthy connections closed: {}",
            eagain.join(", ")
        ));
    }
    // What to do first: the fix of the first finding's first cause, or of
    // the first finding that stopped something.
    let first = findings
        .iter()
        .position(|f| f.cause_of.is_none() && stops(f));
    if let Some(i) = first {
        let f = findings
            .get(i + 1)
            .filter(|c| c.cause_of.is_some())
            .unwrap_or(&findings[i]);
        lines.push(format!("first: {} ({})", first_clause(&f.fix), f.id));
    }
    lines
}

/// A fix's first clause: up to its first `,` or `;` outside parentheses,
/// so that "raise X (Redis maxclients, nginx ...)" keeps its bracket.
fn first_clause(fix: &str) -> &str {
    let mut depth = 0u32;
    for (i, c) in fix.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' | ';' if depth == 0 => return fix[..i].trim(),
            _ => {}
        }
    }
    fix.trim()
}

/// Display width of a line (CJK counts 2).
pub fn width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_first_clause_of_a_fix_keeps_its_brackets_whole() {
        assert_eq!(
            first_clause(
                "raise the server's own limit (Redis maxclients, nginx x), and the fd limit"
            ),
            "raise the server's own limit (Redis maxclients, nginx x)"
        );
        assert_eq!(first_clause("raise A; then B"), "raise A");
        assert_eq!(first_clause(" no comma "), "no comma");
        assert_eq!(first_clause("unbalanced ) , rest"), "unbalanced )");
    }

    use super::*;

    fn ev(line: u64, text: &str) -> Evidence {
        Evidence {
            file: "seed.txt".into(),
            line,
            text: text.into(),
        }
    }

    #[test]
    fn short_names_read_like_the_story() {
        assert_eq!(short_name("tests/fixtures/seed.txt [客户端2]"), "client 2");
        assert_eq!(short_name("logs/serve.log"), "serve.log");
        // The hosts of lab --hosts all write flood.log: the host tells them apart.
        assert_eq!(short_name("logs/client-2/flood.log"), "client-2/flood.log");
        assert_eq!(short_name("logs/server/serve.log"), "server/serve.log");
        assert_eq!(short_name("logs/clients/flood.log"), "flood.log");
        assert_eq!(short_name("a.log [服务器]"), "服务器");
    }

    #[test]
    fn clean_lines_come_first_as_evidence() {
        let glued = ev(
            959,
            "dº（一台服务器）connections: 340000, sockfd:0, time_used:414",
        );
        let clean_line = ev(1479, "connections: 340000, sockfd:0, time_used:415");
        assert!(!clean(&glued));
        assert!(clean(&clean_line));
        let mut m = Merged {
            id: FailureId::ClientCapReached,
            title: "cap",
            side: Side::Client,
            certainty: Certainty::Certain,
            sources: vec![],
            count: 0,
            evidence: vec![glued, clean_line],
            explanation: String::new(),
            fix: String::new(),
            collect: vec![],
            is_cause: false,
            first_ts: None,
            causes: vec![],
        };
        finish(&mut m);
        assert_eq!(m.evidence[0].line, 1479);
    }

    #[test]
    fn explanations_of_one_cause_are_said_once() {
        let a = "The count stopped at 340,000, 6 times. No limit was hit.";
        let b = "The count stopped at 340,000, 34 times. No limit was hit.";
        let j = join_explanations(a, b, "client 3");
        assert_eq!(j.matches("No limit was hit").count(), 1, "{j}");
        assert!(j.contains("In client 3: The count stopped at 340,000, 34 times."));
    }
}
