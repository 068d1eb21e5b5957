//! `c1m analyze` streams its input: its peak resident memory stops growing
//! with the log (its batches in flight are bounded), so a log ten times
//! longer (110 MB instead of 11 MB) costs it no more memory. A test binary of its own, because a
//! child's peak RSS (`ru_maxrss`) starts at its parent's peak when it is
//! spawned (the kernel carries the pre-exec memory over), so the test
//! process must stay small: nothing else runs here, and the logs are
//! written line by line, never held in memory.
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Stdio;

mod common;

use common::*;

/// Write a client log of `lines` progress lines, with an EAGAIN error every
/// 1,000 lines (the seed's client 2 pattern, at length); returns its size.
fn write_long_log(path: &Path, lines: u64) -> u64 {
    let mut w = BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 1..=lines {
        writeln!(
            w,
            "connections: {}, sockfd:{}, time_used:1240",
            i * 1000 - 1,
            i * 1000 + 2
        )
        .unwrap();
        if i % 1000 == 0 {
            writeln!(w, " Error clientfd:{i}, errno:11").unwrap();
        }
    }
    w.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// Peak RSS (KiB) of `c1m analyze --json FILE`, which must succeed.
fn analyze_peak_rss_kib(file: &Path) -> u64 {
    let child = c1m(&["analyze", "--json", file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (code, kib) = wait_peak_rss_kib(child);
    assert_eq!(code, Some(0), "c1m analyze {}", file.display());
    kib
}

#[test]
fn memory_is_flat_on_a_long_log() {
    let dir = tempfile::tempdir().unwrap();
    let (medium, long) = (dir.path().join("medium.log"), dir.path().join("long.log"));
    let medium_kib = write_long_log(&medium, 200_000) / 1024;
    let long_kib = write_long_log(&long, 2_000_000) / 1024;
    let base = analyze_peak_rss_kib(&medium);
    let peak = analyze_peak_rss_kib(&long);
    // Flat: 100 MB more of log may cost at most 16 MiB more (run-to-run
    // noise is ~4 MiB), whereas holding the log would add all of it.
    assert!(
        peak <= base + 16 * 1024,
        "peak RSS {peak} KiB on a {long_kib} KiB log vs {base} KiB on a {medium_kib} KiB one"
    );
}
