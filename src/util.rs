//! Small helpers every command needs: errno names and texts, durations and
//! counts from the command line, wall-clock timestamps, the page size, and
//! numbers and byte sizes for people (indicatif's `HumanCount` and
//! `HumanBytes`), and [`Repeats`]: alike lines of many worker processes
//! said once with a count. Kept here so that `serve`, `flood`, `analyze`
//! and `lab` name things the same way.
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;

/// The symbolic name of an errno value ("EAGAIN"), or `E<n>` if unknown.
pub fn errno_name(errno: i32) -> String {
    let e = Errno::from_raw(errno);
    if e == Errno::UnknownErrno {
        format!("E{errno}")
    } else {
        format!("{e:?}")
    }
}

/// The glibc strerror text of an errno value ("Resource temporarily unavailable").
pub fn errno_text(errno: i32) -> &'static str {
    Errno::from_raw(errno).desc()
}

/// The errno number for a symbolic name such as "EMFILE"; case-insensitive.
pub fn errno_from_name(name: &str) -> Option<i32> {
    let upper = name.to_ascii_uppercase();
    (1..134).find(|&n| {
        let e = Errno::from_raw(n);
        e != Errno::UnknownErrno && format!("{e:?}") == upper
    })
}

/// Seconds since the Unix epoch, with sub-second precision, for JSON lines.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Parse a duration given on the command line: "250ms", "3s", "2m", or a
/// bare number of seconds ("1.5"). The error names the text.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!(
            "'{text}' is not a duration (negative or not finite)"
        ));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("'{text}' is not a duration like 3s, 250ms or 2m: {e}"))
}

/// Parse a count such as "100000", "100k", "1.5M" or "1_000_000".
pub fn parse_count(text: &str) -> Result<u64, String> {
    let t: String = text
        .trim()
        .chars()
        .filter(|c| *c != '_' && *c != ',')
        .collect();
    let (num, mult) = match t.chars().last() {
        Some('k') | Some('K') => (&t[..t.len() - 1], 1_000f64),
        Some('m') | Some('M') => (&t[..t.len() - 1], 1_000_000f64),
        _ => (t.as_str(), 1f64),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a count like 5000, 100k or 1M"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("'{text}' is not a count (negative or not finite)"));
    }
    Ok((v * mult).round() as u64)
}

/// The page size in bytes (4096 if sysconf cannot say).
pub fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map(|p| p as u64)
        .unwrap_or(4096)
}

/// Add every count of `from` into `into` (errors by errno name, failures by
/// catalogue id...): how the counters of several processes are summed.
pub fn add_counts<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

/// A count with thousands separators: 1234567 -> "1,234,567".
pub fn thousands(n: u64) -> String {
    indicatif::HumanCount(n).to_string()
}

/// A size in bytes with binary units: 512 -> "512 B", 1536 -> "1.50 KiB",
/// 20447232 -> "19.50 MiB".
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// Lines that several worker processes report alike (one failure class
/// in one interval), said once with the workers and the summed count
/// instead of once per worker: 18 workers refused alike are one line.
#[derive(Debug)]
pub struct Repeats<K> {
    groups: Vec<Repeat<K>>,
}

impl<K> Default for Repeats<K> {
    fn default() -> Self {
        Repeats { groups: Vec::new() }
    }
}

/// One class of line, from one or more workers.
#[derive(Debug, Clone, PartialEq)]
pub struct Repeat<K> {
    /// What the lines have in common (their failure class).
    pub key: K,
    /// The workers that reported it, ascending, each once.
    pub workers: Vec<u32>,
    /// The counts the lines carried, added up.
    pub count: u64,
    /// The first line's own text (its specifics).
    pub example: String,
    /// The worker that wrote `example`.
    pub example_worker: u32,
    /// Calls of [`Repeats::take`] it waited through.
    age: u32,
}

impl<K: PartialEq> Repeats<K> {
    /// One line of worker `worker`.
    pub fn add(&mut self, key: K, worker: u32, count: u64, example: &str) {
        match self.groups.iter_mut().find(|g| g.key == key) {
            Some(g) => {
                if let Err(at) = g.workers.binary_search(&worker) {
                    g.workers.insert(at, worker);
                }
                g.count = g.count.saturating_add(count);
            }
            None => self.groups.push(Repeat {
                key,
                workers: vec![worker],
                count,
                example: example.to_string(),
                example_worker: worker,
                age: 0,
            }),
        }
    }

    /// The groups to say now, in the order they came: with `all` every one
    /// (the end of the run); otherwise those already there at the previous
    /// call, so that a worker whose interval ends a little after the
    /// others' joins their line instead of starting one of its own.
    pub fn take(&mut self, all: bool) -> Vec<Repeat<K>> {
        let (ready, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.groups)
            .into_iter()
            .partition(|g| all || g.age > 0);
        self.groups = wait;
        for g in &mut self.groups {
            g.age += 1;
        }
        ready
    }
}

impl<K> Repeat<K> {
    /// `worker 3`, or `18 workers (0-17)`.
    pub fn who(&self) -> String {
        match self.workers.as_slice() {
            [one] => format!("worker {one}"),
            many => format!("{} workers ({})", many.len(), ranges(many)),
        }
    }
}

/// Ascending numbers as ranges: `0-5, 7, 9-17`.
pub fn ranges(sorted: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        out.push(if j == i {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eighteen_alike_lines_are_one_with_the_workers_and_the_count() {
        let mut r: Repeats<&str> = Repeats::default();
        for w in (0..18).rev() {
            r.add("connection_refused", w, 5, &format!("refused on path {w}"));
        }
        r.add("fd_limit", 4, 1, "EMFILE");
        // A group waits one call, for the workers that report late.
        assert!(r.take(false).is_empty());
        r.add("connection_refused", 18, 5, "late");
        let said = r.take(false);
        assert_eq!(said.len(), 2, "{said:?}");
        assert_eq!(said[0].count, 19 * 5);
        assert_eq!(said[0].who(), "19 workers (0-18)");
        assert_eq!(
            (said[0].example.as_str(), said[0].example_worker),
            ("refused on path 17", 17)
        );
        assert_eq!(said[1].who(), "worker 4");
        assert!(r.take(false).is_empty());
        r.add("fd_limit", 1, 2, "EMFILE");
        assert_eq!(r.take(true).len(), 1, "the end says everything");
        assert_eq!(ranges(&[0, 1, 2, 5, 7, 8]), "0-2, 5, 7-8");
        assert_eq!(ranges(&[]), "");
    }

    #[test]
    fn errno_names_round_trip() {
        assert_eq!(errno_name(11), "EAGAIN");
        assert_eq!(errno_name(24), "EMFILE");
        assert_eq!(errno_from_name("emfile"), Some(24));
        assert_eq!(errno_from_name("ETIMEDOUT"), Some(110));
        assert_eq!(errno_from_name("ENOPE"), None);
        assert_eq!(errno_text(110), "Connection timed out");
    }

    #[test]
    fn durations_and_counts_parse_or_name_the_input() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").unwrap_err().contains("soon"));
        assert_eq!(parse_count("100k"), Ok(100_000));
        assert_eq!(parse_count("1.5M"), Ok(1_500_000));
        assert_eq!(parse_count("1_000_000"), Ok(1_000_000));
        assert!(parse_count("lots").unwrap_err().contains("lots"));
        assert_eq!(thousands(941999), "941,999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(20_447_232), "19.50 MiB");
    }
}
