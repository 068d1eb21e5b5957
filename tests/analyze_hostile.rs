//! `c1m analyze` against hostile input: trees with symbolic link loops,
//! FIFOs, sockets and devices, unreadable files, 100 MB lines, binary data,
//! gzip bombs, truncated or garbage-tailed gzip, 20,000 section headers and
//! millions of empty lines. Each case asserts that analyze ends within a
//! time bound (it is killed and the test fails otherwise), that its peak
//! resident memory (`ru_maxrss` from `wait4`, measured, not guessed) stays
//! within a bound, that it does not panic, and, where the input breaks off,
//! that no complete line before the break is lost.
//!
//! The inputs are generated into a tempdir at test time, written as
//! streams, and a large report is scanned, never parsed: a child's peak RSS
//! starts at its parent's peak when it is spawned, so this process stays
//! small. The cases run one at a time (a lock held for the whole case), so
//! their time bounds are not shared with each other on a 2-core machine.
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;

mod common;

use common::*;

/// Most cases: a streaming analyze stays near 15 MiB whatever the input.
const FLAT_KIB: u64 = 48 * 1024;
/// No case may take longer than this (a hang is a failure, not a wait).
const LIMIT: Duration = Duration::from_secs(20);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Take the lock for a whole case: generating inputs and running analyze.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reports larger than this are scanned, not parsed (see the module doc).
const PARSE_MAX: u64 = 1 << 20;

/// What one bounded run of `c1m analyze --json` gave.
struct Run {
    code: Option<i32>,
    /// The report parsed (`Null` when it was too large to parse here).
    report: Value,
    /// Where the report is.
    stdout: std::path::PathBuf,
    stderr: String,
    kib: u64,
    took: Duration,
}

/// `c1m analyze --json ARGS` with stdin from `stdin` (or none), bounded by
/// `limit`; asserts no panic and that `--json` printed a report.
fn analyze_bounded(dir: &Path, args: &[&str], stdin: Option<&Path>, limit: Duration) -> Run {
    analyze_as(dir, args, stdin, limit, None)
}

/// `analyze_bounded`, run as user and group `uid` when given (root's tests
/// drop to an unprivileged user to meet a permission root would bypass).
fn analyze_as(
    dir: &Path,
    args: &[&str],
    stdin: Option<&Path>,
    limit: Duration,
    uid: Option<u32>,
) -> Run {
    use std::os::unix::process::CommandExt;
    let (out, err) = (dir.join(".stdout"), dir.join(".stderr"));
    let start = std::time::Instant::now();
    let mut cmd = c1m(&["analyze", "--json"]);
    if let Some(id) = uid {
        cmd.uid(id).gid(id);
    }
    let child = cmd
        .args(args)
        .stdin(match stdin {
            Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
            None => Stdio::null(),
        })
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let what = format!("c1m analyze --json {}", args.join(" "));
    let (code, kib, _) = wait_bounded_peak_rss_kib(child, limit, &what);
    let took = start.elapsed();
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(
        !stderr.contains("panicked") && code != Some(101),
        "{what} panicked: {stderr}"
    );
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(size > 0, "{what}: no JSON report; stderr: {stderr}");
    let report = if size <= PARSE_MAX {
        serde_json::from_slice(&std::fs::read(&out).unwrap())
            .unwrap_or_else(|e| panic!("{what}: no JSON report ({e}); stderr: {stderr}"))
    } else {
        Value::Null
    };
    eprintln!("{what}: exit {code:?}, {kib} KiB peak, {took:?}");
    Run {
        code,
        report,
        stdout: out,
        stderr,
        kib,
        took,
    }
}

fn analyze(dir: &Path, args: &[&str]) -> Run {
    analyze_bounded(dir, args, None, LIMIT)
}

fn within(run: &Run, kib: u64, time: Duration, case: &str) {
    assert!(
        run.kib <= kib,
        "{case}: peak RSS {} KiB over {kib} KiB",
        run.kib
    );
    assert!(
        run.took <= time,
        "{case}: took {:?} over {time:?}",
        run.took
    );
}

/// The seed client's progress line for the `i`-th thousand connections.
fn progress(i: u64) -> String {
    format!(
        "connections: {}, sockfd:{}, time_used:1241\n",
        i * 1000 - 1,
        i * 1000 + 2
    )
}

/// A client log of `n` progress lines.
fn client_log(n: u64) -> Vec<u8> {
    (1..=n).flat_map(|i| progress(i).into_bytes()).collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn input<'a>(report: &'a Value, path: &Path) -> &'a Value {
    let name = path.display().to_string();
    report["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} was not read: {report:#}"))
}

fn paths_of(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn symlink_loops_read_each_file_once_and_end() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("logs");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("client.log"), client_log(50)).unwrap();
    std::fs::write(tree.join("sub/client2.log"), client_log(20)).unwrap();
    // Two loops (one alone read every file 41 times; two never ended), a
    // link back up, and a second link to a file.
    std::os::unix::fs::symlink(".", tree.join("self")).unwrap();
    std::os::unix::fs::symlink(".", tree.join("sub/again")).unwrap();
    std::os::unix::fs::symlink("..", tree.join("sub/up")).unwrap();
    std::os::unix::fs::symlink("client.log", tree.join("same.log")).unwrap();
    let run = analyze(dir.path(), &[s(&tree)]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    within(&run, FLAT_KIB, Duration::from_secs(5), "symlink loops");
    let inputs = paths_of(&run.report["inputs"]);
    assert_eq!(inputs.len(), 2, "each file once: {inputs:?}");
    assert_eq!(
        run.report["totals"]["client_connections_printed"],
        49_999 + 19_999
    );
    let skipped = paths_of(&run.report["input_skipped"]);
    for p in ["self", "sub/again", "sub/up"] {
        let p = tree.join(p).display().to_string();
        assert!(skipped.contains(&p), "{p} not said skipped: {skipped:?}");
        assert!(
            run.stderr.contains(&format!("{p}: skipped")),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn fifos_sockets_and_devices_in_a_tree_are_skipped_saying_so() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("logs");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("client.log"), client_log(10)).unwrap();
    let fifo = tree.join("a.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let sock = tree.join("b.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    // A character device that never ends (a link: mknod needs root).
    let dev = tree.join("c.dev");
    std::os::unix::fs::symlink("/dev/zero", &dev).unwrap();
    let run = analyze(dir.path(), &[s(&tree)]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    within(&run, FLAT_KIB, Duration::from_secs(5), "special files");
    assert_eq!(paths_of(&run.report["inputs"]).len(), 1);
    let skipped = &run.report["input_skipped"];
    for (p, what) in [
        (&fifo, "a FIFO"),
        (&sock, "a socket"),
        (&dev, "a character device"),
    ] {
        let e = skipped
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == s(p))
            .unwrap_or_else(|| panic!("{} not skipped: {skipped}", p.display()));
        assert!(e["error"].as_str().unwrap().starts_with(what), "{e}");
        assert!(
            run.stderr
                .contains(&format!("{}: skipped: {what}", p.display()))
        );
    }
}

#[test]
fn a_fifo_or_stdin_named_explicitly_is_read() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let writer = {
        let fifo = fifo.clone();
        // Blocks in open until analyze opens the FIFO for reading.
        std::thread::spawn(move || std::fs::write(fifo, client_log(30)))
    };
    let run = analyze(dir.path(), &[s(&fifo)]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    writer.join().unwrap().unwrap();
    assert_eq!(input(&run.report, &fifo)["lines"], 30);
    let log = dir.path().join("stdin.log");
    std::fs::write(&log, client_log(7)).unwrap();
    let run = analyze_bounded(dir.path(), &["-"], Some(&log), LIMIT);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.report["inputs"][0]["path"], "-");
    assert_eq!(run.report["inputs"][0]["lines"], 7);
}

#[test]
fn a_file_that_fails_to_read_even_for_root_is_an_error_naming_it() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("logs");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("client.log"), client_log(10)).unwrap();
    // A regular file whose first read fails with EIO whoever reads it (the
    // reader's own memory at address 0), and a dangling link.
    let mem = tree.join("mem");
    std::os::unix::fs::symlink("/proc/self/mem", &mem).unwrap();
    let dangling = tree.join("gone.log");
    std::os::unix::fs::symlink("nowhere.log", &dangling).unwrap();
    let run = analyze(dir.path(), &[s(&tree)]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    within(&run, FLAT_KIB, Duration::from_secs(5), "unreadable");
    let errors = paths_of(&run.report["input_errors"]);
    for p in [&mem, &dangling] {
        let p = p.display().to_string();
        assert!(errors.contains(&p), "{p} not an error: {errors:?}");
        assert_eq!(
            run.stderr.matches(&format!("error: {p}:")).count(),
            1,
            "{p} said once: {}",
            run.stderr
        );
    }
    // The readable file is still analyzed.
    assert_eq!(input(&run.report, &tree.join("client.log"))["lines"], 10);
}

#[test]
fn a_file_without_read_permission_is_an_error_naming_it() {
    let _one = one_at_a_time();
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // Root reads a file whatever its mode: as root, analyze runs as
    // `nobody`, who may enter the folder and read everything but the
    // locked file.
    let nobody = (unsafe { libc::geteuid() } == 0).then_some(65534);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let locked = dir.path().join("locked.log");
    std::fs::write(&locked, client_log(10)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let ok = dir.path().join("ok.log");
    std::fs::write(&ok, client_log(5)).unwrap();
    let run = analyze_as(dir.path(), &[s(&locked), s(&ok)], None, LIMIT, nobody);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(paths_of(&run.report["input_errors"]).contains(&s(&locked).to_string()));
    assert_eq!(input(&run.report, &ok)["lines"], 5);
}

#[test]
fn a_100_mb_line_is_cut_in_flat_memory() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.log");
    let mut w = BufWriter::new(std::fs::File::create(&path).unwrap());
    w.write_all(progress(1).as_bytes()).unwrap();
    let block = vec![b'x'; 1 << 20];
    for _ in 0..100 {
        w.write_all(&block).unwrap();
    }
    w.write_all(b"\n").unwrap();
    w.write_all(progress(2).as_bytes()).unwrap();
    w.flush().unwrap();
    drop(w);
    let run = analyze(dir.path(), &[s(&path)]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    within(&run, FLAT_KIB, Duration::from_secs(10), "100 MB line");
    assert_eq!(input(&run.report, &path)["lines"], 3);
    let src = &run.report["sources"][0];
    assert_eq!(src["connections_max"], 1999, "the line after the long one");
    assert_eq!(src["lines"]["corrupted"], 1, "the cut line");
}

#[test]
fn binary_data_is_survived_and_records_around_it_count() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("binary.log");
    let mut w = BufWriter::new(std::fs::File::create(&path).unwrap());
    w.write_all(progress(1).as_bytes()).unwrap();
    // 16 MiB of xorshift bytes: every byte value, newlines at random.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ random(u64::MAX);
    let mut buf = vec![0u8; 1 << 16];
    for _ in 0..256 {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        w.write_all(&buf).unwrap();
    }
    w.write_all(b"\n").unwrap();
    w.write_all(progress(5).as_bytes()).unwrap();
    w.flush().unwrap();
    drop(w);
    let run = analyze(dir.path(), &[s(&path)]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    within(&run, FLAT_KIB, Duration::from_secs(10), "binary data");
    let src = &run.report["sources"][0];
    assert_eq!(src["connections_max"], 4999, "{src}");
    assert!(src["lines"]["corrupted"].as_u64().unwrap() > 1000, "{src}");
}

#[test]
fn a_gzip_bomb_is_read_in_flat_memory() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.log.gz");
    // 256 MiB of zero bytes (one line, no newline) behind a record, about
    // 250 KiB compressed.
    let mut enc = GzEncoder::new(
        BufWriter::new(std::fs::File::create(&path).unwrap()),
        Compression::fast(),
    );
    enc.write_all(progress(3).as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap().flush().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 2 << 20);
    let run = analyze(dir.path(), &[s(&path)]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    within(&run, FLAT_KIB, Duration::from_secs(15), "gzip bomb");
    let inp = input(&run.report, &path);
    assert_eq!(inp["lines"], 2);
    assert_eq!(inp["bytes"], progress(3).len() as u64 + (256 << 20));
    assert_eq!(run.report["sources"][0]["connections_max"], 2999);
}

/// What a gzip reader gets out of `gz` before it ends or fails: the lines
/// it completes. Read through flate2 as analyze does.
fn complete_lines_before_the_break(gz: &[u8]) -> u64 {
    use std::io::Read;
    let mut out = Vec::new();
    let _ = flate2::read::MultiGzDecoder::new(gz).read_to_end(&mut out);
    out.iter().filter(|&&b| b == b'\n').count() as u64
}

#[test]
fn truncated_gzip_keeps_every_line_before_the_break() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let full = gzip(&client_log(60_000));
    let path = dir.path().join("cut.log.gz");
    let cut = &full[..full.len() * 6 / 10];
    std::fs::write(&path, cut).unwrap();
    let want = complete_lines_before_the_break(cut);
    assert!(want > 30_000, "the prefix holds most lines: {want}");
    let run = analyze(dir.path(), &[s(&path)]);
    assert_eq!(
        run.code,
        Some(2),
        "a read error is an error: {}",
        run.stderr
    );
    within(&run, FLAT_KIB, Duration::from_secs(5), "truncated gzip");
    let inp = input(&run.report, &path);
    assert_eq!(inp["lines"], want, "{inp}");
    assert!(
        inp["error"].as_str().unwrap().contains("read error"),
        "{inp}"
    );
    assert_eq!(run.report["sources"][0]["connections_max"], want * 1000 - 1);
    assert!(run.stderr.contains(&format!("error: {}:", path.display())));
}

#[test]
fn garbage_tailed_gzip_keeps_every_line_then_says_the_error() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let n = 60_000;
    for (name, tail) in [
        // What `gzip -t` accepts ("trailing zero bytes ignored").
        ("zeros.log.gz", vec![0u8; 4096]),
        (
            "garbage.log.gz",
            b"\x1f\x8bnot a gzip member at all".to_vec(),
        ),
    ] {
        let path = dir.path().join(name);
        let mut gz = gzip(&client_log(n));
        gz.extend_from_slice(&tail);
        std::fs::write(&path, gz).unwrap();
        let run = analyze(dir.path(), &[s(&path)]);
        within(&run, FLAT_KIB, Duration::from_secs(5), name);
        let inp = input(&run.report, &path);
        assert_eq!(inp["lines"], n, "{name}: every line kept: {inp}");
        assert_eq!(run.report["sources"][0]["connections_max"], n * 1000 - 1);
        assert_eq!(
            run.code,
            Some(2),
            "{name}: the tail is said: {}",
            run.stderr
        );
        assert!(inp["error"].is_string(), "{name}: {inp}");
    }
}

#[test]
fn twenty_thousand_section_headers_are_linear() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    // `headers` distinct headers (quadratic: 4.8 s here for 40,000 before
    // the map), each second one with a record, so half become sources.
    let write = |name: &str, headers: u64| {
        let path = dir.path().join(name);
        let mut w = BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..headers {
            writeln!(w, "## client {i}").unwrap();
            if i % 2 == 0 {
                w.write_all(progress(i + 1).as_bytes()).unwrap();
            }
        }
        w.flush().unwrap();
        path
    };
    let half = write("half.md", 20_000);
    let path = write("sections.md", 40_000);
    let small = analyze(dir.path(), &[s(&half)]);
    let run = analyze(dir.path(), &[s(&path)]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    // Linear in time: 5.7 s here before the map, and 1.9 s with the
    // conntrack rule still quadratic.
    // Memory: bounded here, and per source below.
    within(
        &run,
        320 * 1024,
        Duration::from_millis(2500),
        "section headers",
    );
    assert_eq!(count_in(&run.stdout, b"\"section\": \"client "), 20_000);
    // Linear in memory: the 10,000 sources the second run adds cost what
    // a source costs (its state, about 3 KiB, its evidence lines, failure
    // and counter maps and notes: about 10 KiB each here on 2026-12-03),
    // not more for being many.
    let per_source = run.kib.saturating_sub(small.kib) / 10_000;
    assert!(
        per_source <= 16,
        "section headers: {per_source} KiB per added source ({} KiB for 10,000, {} KiB for 20,000)",
        small.kib,
        run.kib
    );
}

/// Occurrences of `needle` in a file, read in blocks (a few MiB of report
/// parsed into a `Value` would raise this process's peak RSS, and with it
/// every later child's).
fn count_in(path: &Path, needle: &[u8]) -> usize {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut carry: Vec<u8> = Vec::new();
    let mut n = 0;
    loop {
        let got = f.read(&mut buf).unwrap();
        if got == 0 {
            return n;
        }
        carry.extend_from_slice(&buf[..got]);
        n += memchr::memmem::find_iter(&carry, needle).count();
        let keep = carry.len().min(needle.len() - 1);
        carry.drain(..carry.len() - keep);
    }
}

#[test]
fn millions_of_empty_lines_keep_memory_flat() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blank.log");
    let mut w = BufWriter::new(std::fs::File::create(&path).unwrap());
    w.write_all(progress(1).as_bytes()).unwrap();
    let blank = vec![b'\n'; 1 << 20];
    for _ in 0..40 {
        w.write_all(&blank).unwrap();
    }
    w.write_all(progress(2).as_bytes()).unwrap();
    w.flush().unwrap();
    drop(w);
    let run = analyze(dir.path(), &[s(&path)]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    // 299 MiB before the batches had a line cap.
    within(&run, FLAT_KIB, Duration::from_secs(10), "empty lines");
    assert_eq!(input(&run.report, &path)["lines"], 2 + 40 * (1 << 20));
    assert_eq!(run.report["sources"][0]["connections_max"], 1999);
}
