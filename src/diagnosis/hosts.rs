//! `c1m analyze` over a fleet's logs: which host each source came from, a
//! row per host then the totals, and findings that only a view across
//! hosts can give ("client-2 ran out of ports for 198.18.0.1:8888 while
//! client-1 and client-3 did not"; "the server's ListenOverflows rose by
//! 4,211 during the minute client-2's connects timed out").
//!
//! A source's host is the `host` field of its JSON lines when they carry
//! one (a fleet run's shards say where they ran), else the first folder
//! level under the path given on the command line (`logs/<host>/...`, what
//! `c1m lab --hosts` and the Ansible playbook write). Files directly in
//! that folder (one kernel's log shared by namespace hosts) belong to no
//! host.
//!
//! Clocks: every time compared across hosts is a window of that host's own
//! clock, and windows are matched with [`SKEW_TOLERANCE_S`] of slack on
//! each side, so hosts whose clocks disagree by less than that still line
//! up; nothing is ordered across hosts by its exact timestamp.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::classify::{Finding, SourceSummary};
use super::input::Input;
use super::source::Kind;
use crate::catalogue::FailureId;
use crate::events::{Event, FloodStart, Record, typed};
use crate::util::thousands;

/// Slack, in seconds, on each side of a window compared across hosts.
pub const SKEW_TOLERANCE_S: f64 = 60.0;

/// The prefix of a timestamp line before a counter snapshot
/// (`# c1m ts=1733150000.25`), which `c1m lab --hosts` writes; nstat
/// itself writes none, and a snapshot without one spans the whole run.
pub const TS_MARK: &str = "# c1m ts=";

/// One host's row.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostRow {
    pub host: String,
    pub sources: usize,
    pub clients: usize,
    pub servers: usize,
    /// Sum of the host's clients' highest connection counts.
    pub client_connections: u64,
    /// Highest count of the host's servers.
    pub server_connections: u64,
    /// Error lines and failure records by failure id.
    pub errors: BTreeMap<FailureId, u64>,
    /// Findings whose source is on this host.
    pub findings: usize,
}

/// A finding about hosts compared with each other.
#[derive(Debug, Clone, Serialize)]
pub struct HostFinding {
    pub id: FailureId,
    pub host: String,
    pub text: String,
}

/// The analysis seen host by host.
#[derive(Debug, Clone, Serialize)]
pub struct HostView {
    pub hosts: Vec<HostRow>,
    pub totals: HostRow,
    pub findings: Vec<HostFinding>,
}

/// What a file says that the per-source summary does not keep: the host
/// field, where a client connected to, when its failures happened, and
/// time-stamped counter snapshots.
#[derive(Debug, Clone, Default)]
struct Facts {
    host_field: Option<String>,
    dest: Option<String>,
    /// (timestamp, failure, count) of each failure record.
    failures: Vec<(f64, FailureId, u64)>,
    /// Counter snapshots: (timestamp if marked, counter, value).
    snapshots: Vec<(Option<f64>, BTreeMap<String, u64>)>,
}

/// The host a file belongs to by its place: the first folder level under
/// the command-line path that contains it.
pub fn host_by_folder(file: &Path, roots: &[PathBuf]) -> Option<String> {
    roots.iter().find_map(|root| {
        let rel = file.strip_prefix(root).ok()?;
        let mut parts = rel.components();
        let first = parts.next()?;
        // A file directly in the root belongs to no host.
        parts.next()?;
        Some(first.as_os_str().to_string_lossy().into_owned())
    })
}

/// Where a client sent its connections, from its start record.
fn dest_of(settings: &serde_json::Value) -> Option<String> {
    let s = typed::<FloodStart>(settings)?;
    let host = if s.dest.is_empty() { s.host } else { s.dest };
    if host.is_empty() || s.port == 0 {
        return None;
    }
    Some(if s.ports > 1 {
        format!(
            "{host}:{}-{}",
            s.port,
            u32::from(s.port) + u32::from(s.ports) - 1
        )
    } else {
        format!("{host}:{}", s.port)
    })
}

/// Read one file's facts. Only c1m's JSON lines and counter snapshots are
/// scanned past the first line, so a large foreign log costs one line.
fn scan(path: &Path) -> Facts {
    let mut facts = Facts::default();
    // A second read: never of a FIFO or device (it was drained, or blocks).
    let Ok(reader) = Input::Found(path.to_path_buf()).open() else {
        return facts;
    };
    let mut ts: Option<f64> = None;
    let mut lines = reader.split(b'\n');
    let mut first = true;
    while let Some(Ok(raw)) = lines.next() {
        let line = String::from_utf8_lossy(&raw);
        let t = line.trim();
        if t.starts_with('{') {
            absorb_json(&mut facts, t);
        } else if let Some(v) = t.strip_prefix(TS_MARK) {
            ts = v.trim().parse().ok();
        } else if t.starts_with("#kernel") {
            facts.snapshots.push((ts.take(), BTreeMap::new()));
        } else if let Some((_, snap)) = facts.snapshots.last_mut()
            && let Some((name, value)) = t.split_once(char::is_whitespace)
            && let Some(v) = value.split_whitespace().next().and_then(|v| v.parse().ok())
        {
            snap.insert(name.to_string(), v);
        } else if first {
            // Not c1m's output nor a counter file: nothing more to learn.
            break;
        }
        first = false;
    }
    facts
}

fn absorb_json(facts: &mut Facts, line: &str) {
    if facts.host_field.is_none()
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
        && let Some(h) = v.get("host").and_then(|h| h.as_str())
    {
        facts.host_field = Some(h.to_string());
    }
    let Some(rec) = Record::parse(line) else {
        return;
    };
    match rec.event {
        Event::Start { settings } if facts.dest.is_none() => facts.dest = dest_of(&settings),
        Event::Failure { failure, count, .. } => facts.failures.push((rec.ts, failure, count)),
        _ => {}
    }
}

/// Which host each file belongs to (`None`: no host), and the files' facts.
struct Assigned {
    host_of: BTreeMap<String, Option<String>>,
    facts: BTreeMap<String, Facts>,
}

fn assign(roots: &[PathBuf], files: &BTreeSet<String>) -> Assigned {
    let mut a = Assigned {
        host_of: BTreeMap::new(),
        facts: BTreeMap::new(),
    };
    for f in files {
        let facts = scan(Path::new(f));
        let host = facts
            .host_field
            .clone()
            .or_else(|| host_by_folder(Path::new(f), roots));
        a.host_of.insert(f.clone(), host);
        a.facts.insert(f.clone(), facts);
    }
    a
}

/// The host view of an analysis, when its inputs come from two hosts or
/// more; `None` for one host's logs.
pub fn view(
    roots: &[PathBuf],
    sources: &[SourceSummary],
    findings: &[Finding],
) -> Option<HostView> {
    let files: BTreeSet<String> = sources.iter().map(|s| s.file.clone()).collect();
    let a = assign(roots, &files);
    let hosts: BTreeSet<&String> = a.host_of.values().flatten().collect();
    if hosts.len() < 2 {
        return None;
    }
    let mut rows: BTreeMap<String, HostRow> = hosts
        .iter()
        .map(|h| {
            (
                (*h).clone(),
                HostRow {
                    host: (*h).clone(),
                    ..Default::default()
                },
            )
        })
        .collect();
    for s in sources {
        let Some(Some(h)) = a.host_of.get(&s.file) else {
            continue;
        };
        let Some(row) = rows.get_mut(h) else { continue };
        row.sources += 1;
        match s.kind {
            Kind::Client => {
                row.clients += 1;
                row.client_connections += s.connections_max.unwrap_or(0);
            }
            Kind::Server => {
                row.servers += 1;
                row.server_connections = row.server_connections.max(s.connections_max.unwrap_or(0));
            }
            _ => {}
        }
        crate::util::add_counts(&mut row.errors, &s.errors);
    }
    for f in findings.iter().filter(|f| f.cause_of.is_none()) {
        let file = sources
            .iter()
            .find(|s| s.name == f.source)
            .map(|s| s.file.clone());
        if let Some(Some(h)) = file.and_then(|file| a.host_of.get(&file).cloned())
            && let Some(row) = rows.get_mut(&h)
        {
            row.findings += 1;
        }
    }
    let rows: Vec<HostRow> = rows.into_values().collect();
    let mut totals = HostRow {
        host: format!("all {} hosts", rows.len()),
        ..Default::default()
    };
    for r in &rows {
        totals.sources += r.sources;
        totals.clients += r.clients;
        totals.servers += r.servers;
        totals.client_connections += r.client_connections;
        totals.server_connections += r.server_connections;
        crate::util::add_counts(&mut totals.errors, &r.errors);
        totals.findings += r.findings;
    }
    let mut out = HostView {
        findings: Vec::new(),
        hosts: rows,
        totals,
    };
    out.findings = compare(&out.hosts, &a);
    Some(out)
}

/// "client-1 and client-3", "client-1, client-3 and client-4".
fn and_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// What a client host ran into, in words.
fn verb(id: FailureId, dest: &str) -> String {
    match id {
        FailureId::EphemeralPortsExhausted => format!("ran out of ports for {dest}"),
        FailureId::ConnectTimeout => format!("timed out connecting to {dest}"),
        FailureId::ConnectionRefused => format!("was refused by {dest}"),
        FailureId::ConnectionReset => format!("was reset by {dest}"),
        other => format!("hit {other} ({}) towards {dest}", other.info().title),
    }
}

/// Findings across hosts: a failure some client hosts had and others did
/// not, and server counters that rose while a client host failed.
fn compare(rows: &[HostRow], a: &Assigned) -> Vec<HostFinding> {
    let mut found = Vec::new();
    let clients: Vec<&HostRow> = rows.iter().filter(|r| r.clients > 0).collect();
    let ids: BTreeSet<FailureId> = clients
        .iter()
        .flat_map(|r| r.errors.keys().copied())
        .collect();
    for id in ids {
        let (hit, clean): (Vec<&&HostRow>, Vec<&&HostRow>) =
            clients.iter().partition(|r| r.errors.contains_key(&id));
        if clean.is_empty() {
            continue;
        }
        let clean_names: Vec<&str> = clean.iter().map(|r| r.host.as_str()).collect();
        for r in hit {
            let dest = facts_of(a, &r.host)
                .find_map(|f| f.dest.clone())
                .unwrap_or_else(|| "the server".into());
            found.push(HostFinding {
                id,
                host: r.host.clone(),
                text: format!(
                    "{} {} ({} time{}) while {} did not",
                    r.host,
                    verb(id, &dest),
                    thousands(r.errors[&id]),
                    if r.errors[&id] == 1 { "" } else { "s" },
                    and_list(&clean_names)
                ),
            });
        }
    }
    found.extend(server_rises(rows, a));
    found
}

fn facts_of<'a>(a: &'a Assigned, host: &'a str) -> impl Iterator<Item = &'a Facts> + 'a {
    a.host_of
        .iter()
        .filter(move |(_, h)| h.as_deref() == Some(host))
        .filter_map(|(f, _)| a.facts.get(f))
}

/// A server counter that shows a failure (ListenOverflows...) and rose
/// during the window in which a client host's connects timed out.
fn server_rises(rows: &[HostRow], a: &Assigned) -> Vec<HostFinding> {
    let mut found = Vec::new();
    let watched = crate::catalogue::evidence_counters();
    let servers: Vec<&HostRow> = rows.iter().filter(|r| r.servers > 0).collect();
    for server in servers {
        let snaps: Vec<&(Option<f64>, BTreeMap<String, u64>)> = facts_of(a, &server.host)
            .flat_map(|f| f.snapshots.iter())
            .collect();
        for pair in snaps.windows(2) {
            let (t0, before) = pair[0];
            let (t1, after) = pair[1];
            for (name, &v1) in after {
                let bare = name.trim_start_matches("TcpExt").trim_start_matches("Tcp");
                let rise = v1.saturating_sub(before.get(name).copied().unwrap_or(0));
                if rise == 0 || !watched.contains(&bare) {
                    continue;
                }
                for client in rows.iter().filter(|r| r.clients > 0) {
                    if let Some(text) = rise_during(client, a, bare, rise, (*t0, *t1), &server.host)
                    {
                        found.push(HostFinding {
                            id: FailureId::ConnectTimeout,
                            host: server.host.clone(),
                            text,
                        });
                    }
                }
            }
        }
    }
    found
}

/// The sentence for a server counter's rise over `span` (server clock)
/// when `client`'s connects timed out in a window that overlaps it within
/// the skew tolerance.
fn rise_during(
    client: &HostRow,
    a: &Assigned,
    counter: &str,
    rise: u64,
    span: (Option<f64>, Option<f64>),
    server: &str,
) -> Option<String> {
    let times: Vec<f64> = facts_of(a, &client.host)
        .flat_map(|f| f.failures.iter())
        .filter(|(_, id, _)| *id == FailureId::ConnectTimeout)
        .map(|(t, _, _)| *t)
        .collect();
    let (first, last) = (
        times.iter().copied().reduce(f64::min),
        times.iter().copied().reduce(f64::max),
    );
    if !client.errors.contains_key(&FailureId::ConnectTimeout) {
        return None;
    }
    let (Some(first), Some(last)) = (first, last) else {
        return Some(format!(
            "the {server}'s {counter} rose by {} while {}'s connects timed out",
            thousands(rise),
            client.host
        ));
    };
    if let (Some(t0), Some(t1)) = span
        && (last + SKEW_TOLERANCE_S < t0 || first - SKEW_TOLERANCE_S > t1)
    {
        return None;
    }
    let minutes = ((last - first) / 60.0).ceil().max(1.0) as u64;
    Some(format!(
        "the {server}'s {counter} rose by {} during the {} {}'s connects timed out ({} s on {}'s own clock; clocks may differ by up to {} s)",
        thousands(rise),
        if minutes == 1 {
            "minute".to_string()
        } else {
            format!("{minutes} minutes")
        },
        client.host,
        (last - first).round(),
        client.host,
        SKEW_TOLERANCE_S
    ))
}

impl HostView {
    /// The human rendering: a table of hosts, then the findings.
    pub fn render(&self) -> String {
        use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(100)
            .set_header(vec![
                "host",
                "sources",
                "client conns",
                "server conns",
                "errors",
                "findings",
            ]);
        for r in self.hosts.iter().chain(std::iter::once(&self.totals)) {
            let errors: Vec<String> = r
                .errors
                .iter()
                .map(|(id, n)| format!("{id} {}", thousands(*n)))
                .collect();
            t.add_row(vec![
                Cell::new(&r.host),
                Cell::new(r.sources).set_alignment(CellAlignment::Right),
                Cell::new(thousands(r.client_connections)).set_alignment(CellAlignment::Right),
                Cell::new(thousands(r.server_connections)).set_alignment(CellAlignment::Right),
                Cell::new(if errors.is_empty() {
                    "-".into()
                } else {
                    errors.join("\n")
                }),
                Cell::new(r.findings).set_alignment(CellAlignment::Right),
            ]);
        }
        let mut out = format!("By host:\n{t}\n");
        for f in &self.findings {
            let _ = writeln!(out, "  {}: {}", f.host, f.text);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn host_is_the_first_folder_level_and_root_files_belong_to_none() {
        let roots = vec![PathBuf::from("/x/logs")];
        assert_eq!(
            host_by_folder(Path::new("/x/logs/client-2/flood.log"), &roots).as_deref(),
            Some("client-2")
        );
        assert_eq!(
            host_by_folder(Path::new("/x/logs/kernel.log"), &roots),
            None
        );
        assert_eq!(host_by_folder(Path::new("/y/a/b.log"), &roots), None);
    }

    #[test]
    fn dest_names_the_port_range() {
        let s = serde_json::json!({"dest": "198.18.0.1", "host": "198.18.0.1", "port": 8888, "ports": 20});
        assert_eq!(dest_of(&s).as_deref(), Some("198.18.0.1:8888-8907"));
        let s = serde_json::json!({"host": "10.8.18.121", "port": 8888, "ports": 1});
        assert_eq!(dest_of(&s).as_deref(), Some("10.8.18.121:8888"));
    }

    /// Three client hosts and a server: client-2 runs out of ports and its
    /// connects time out while the server's ListenOverflows rise; its
    /// clock is 40 s ahead of the server's (within the tolerance).
    #[test]
    fn fleet_logs_give_a_row_per_host_and_findings_across_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("logs");
        let start = |t: f64| {
            format!(
                "{{\"event\":\"start\",\"pid\":1,\"role\":\"flood\",\"settings\":{{\"host\":\"198.18.0.1\",\"port\":8888,\"ports\":1}},\"ts\":{t}}}\n"
            )
        };
        let interval = |t: f64, n: u64| {
            format!(
                "{{\"event\":\"interval\",\"pid\":1,\"role\":\"flood\",\"connections\":{n},\"opened_total\":{n},\"failed_total\":0,\"ts\":{t}}}\n"
            )
        };
        for k in [1, 3] {
            write(
                &root,
                &format!("client-{k}/flood.log"),
                &(start(1000.0) + &interval(1001.0, 500)),
            );
        }
        let fail = |t: f64, id: &str| {
            format!(
                "{{\"event\":\"failure\",\"pid\":1,\"role\":\"flood\",\"failure\":\"{id}\",\"call\":\"connect\",\"errno\":110,\"count\":7,\"ts\":{t}}}\n"
            )
        };
        write(
            &root,
            "client-2/flood.log",
            &(start(1040.0)
                + &interval(1041.0, 200)
                + &fail(1042.0, "ephemeral_ports_exhausted")
                + &fail(1050.0, "connect_timeout")
                + &fail(1080.0, "connect_timeout")),
        );
        write(
            &root,
            "server/serve.log",
            "{\"event\":\"start\",\"pid\":2,\"role\":\"serve\",\"settings\":{},\"ts\":999.0}\n{\"event\":\"interval\",\"pid\":2,\"role\":\"serve\",\"connections\":1200,\"opened_total\":1200,\"failed_total\":0,\"ts\":1001.0}\n",
        );
        write(
            &root,
            "server/counters.nstat",
            &format!(
                "{TS_MARK}995.0\n#kernel\nTcpExtListenOverflows 10 0.0\n{TS_MARK}1090.0\n#kernel\nTcpExtListenOverflows 4221 0.0\n"
            ),
        );
        write(&root, "kernel.log", "[ 1.0] nothing\n");
        let report = crate::diagnosis::report::analyze(std::slice::from_ref(&root));
        let v = view(
            std::slice::from_ref(&root),
            &report.sources,
            &report.findings,
        )
        .unwrap();
        let names: Vec<&str> = v.hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(names, ["client-1", "client-2", "client-3", "server"]);
        assert_eq!(v.totals.client_connections, 1200);
        assert_eq!(v.hosts[3].server_connections, 1200);
        let texts: Vec<&str> = v.findings.iter().map(|f| f.text.as_str()).collect();
        assert!(
            texts.contains(&"client-2 ran out of ports for 198.18.0.1:8888 (7 times) while client-1 and client-3 did not"),
            "{texts:#?}"
        );
        assert!(
            texts.iter().any(|t| t.starts_with(
                "the server's ListenOverflows rose by 4,211 during the minute client-2's connects timed out"
            )),
            "{texts:#?}"
        );
        let rendered = v.render();
        assert!(rendered.contains("all 4 hosts") && rendered.contains("client-2"));
    }

    #[test]
    fn a_rise_far_outside_the_clients_window_is_not_blamed() {
        let row = HostRow {
            host: "client-2".into(),
            clients: 1,
            errors: [(FailureId::ConnectTimeout, 3)].into(),
            ..Default::default()
        };
        let mut a = Assigned {
            host_of: BTreeMap::new(),
            facts: BTreeMap::new(),
        };
        a.host_of.insert("f".into(), Some("client-2".into()));
        a.facts.insert(
            "f".into(),
            Facts {
                failures: vec![(5000.0, FailureId::ConnectTimeout, 3)],
                ..Default::default()
            },
        );
        let far = rise_during(
            &row,
            &a,
            "ListenOverflows",
            9,
            (Some(1000.0), Some(1100.0)),
            "server",
        );
        assert_eq!(far, None);
        let near = rise_during(
            &row,
            &a,
            "ListenOverflows",
            9,
            (Some(4900.0), Some(4950.0)),
            "server",
        );
        assert!(near.is_some(), "50 s of skew is tolerated");
    }

    #[test]
    fn one_hosts_logs_get_no_host_view() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "flood.log",
            "connections: 999, sockfd:1003, time_used:10\n",
        );
        let root = dir.path().to_path_buf();
        let report = crate::diagnosis::report::analyze(std::slice::from_ref(&root));
        assert!(
            view(
                std::slice::from_ref(&root),
                &report.sources,
                &report.findings
            )
            .is_none()
        );
    }
}
