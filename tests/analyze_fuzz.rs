//! Robustness of the parsers and the whole analysis on hostile bytes: a
//! proptest over arbitrary byte lines and files (no panic, bounded output),
//! a short real log corrupted at every byte position, and a long log whose
//! kept state stays capped (`analyze_memory.rs` measures the memory). The
//! bench script runs the proptest longer (PROPTEST_CASES) for a bounded
//! time.
use std::io::{Cursor, Write};

use c1m::diagnosis::parse::{Scratch, parse_line};
use c1m::diagnosis::report::from_sources;
use c1m::diagnosis::source::{MAX_POINTS, read_input};
use proptest::prelude::*;

/// Read, classify and render bytes as one input; return the rendered sizes.
fn analyze_bytes(data: &[u8]) -> (usize, usize) {
    let (sources, stat) = read_input("fuzz.log", Cursor::new(data));
    for s in &sources {
        assert!(s.points.len() <= MAX_POINTS + 1);
    }
    let report = from_sources(sources, vec![stat], Vec::new());
    let text = report.render();
    let json = report.to_json();
    serde_json::from_str::<serde_json::Value>(&json).expect("the JSON report parses");
    (text.len(), json.len())
}

/// Pieces of real lines, so that random files hit the parsers' paths.
const PIECES: &[&[u8]] = &[
    b"connections: ",
    b"999, sockfd:",
    b"1002, time_used:1241",
    b" Error clientfd:59002, errno:11",
    b" RecvBuffer:Hello Server: client --> 1",
    b"## \xe5\xae\xa2\xe6\x88\xb7\xe7\xab\xaf2",
    b"connect: Connection timed out",
    b"accept4() failed (24: Too many open files)",
    b"(os error 24)",
    b"[ 12.5] nf_conntrack: table full, dropping packet",
    b"Possible SYN flooding on port [::]:",
    b"Out of memory: Killed process 1 (x) anon-rss:",
    b"TcpExtListenOverflows 5 0.0",
    b"TCP: inuse 5 orphan 1 tw 2 alloc 3 mem ",
    b"net.ipv4.tcp_mem = 1 2 3",
    b"net.netfilter.nf_conntrack_count = ",
    b"{\"ts\":1.0,\"role\":\"flood\",\"pid\":1,\"event\":\"interval\",\"connections\":",
    b"```",
    b"\n",
    b"\xff\xfe\x00\x1b",
    b"99999999999999999999999999",
    b"18446744073709551615",
    b"9223372036854775808",
    b"connections: 18446744073709551615, sockfd:1, time_used:18446744073709551615\n",
    b"connections: 1, sockfd:9223372036854775809, time_used:1\n",
];

fn piecewise() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            (0..PIECES.len()).prop_map(|i| PIECES[i].to_vec()),
            prop::collection::vec(any::<u8>(), 0..12),
        ],
        0..60,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn any_line_parses_without_panic(line in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut scratch = Scratch::default();
        let _ = parse_line(&line, &mut scratch);
    }

    #[test]
    fn any_file_of_real_pieces_analyzes_without_panic(data in piecewise()) {
        let (text, json) = analyze_bytes(&data);
        // Output is bounded by the evidence caps, not by the input size.
        prop_assert!(text < 200_000 && json < 400_000);
    }

    #[test]
    fn any_bytes_analyze_without_panic(data in prop::collection::vec(any::<u8>(), 0..2000)) {
        analyze_bytes(&data);
    }
}

#[test]
fn a_short_log_corrupted_at_every_byte_never_panics() {
    let seed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/seed.txt"
    ))
    .unwrap();
    // Client 2's end: progress, EAGAIN errors, RecvBuffer garbage, timeout.
    let mut log = b"## client 2\n```\n".to_vec();
    let lines: Vec<&[u8]> = seed.split(|&b| b == b'\n').collect();
    for l in &lines[1404..1471] {
        log.extend_from_slice(l);
        log.push(b'\n');
    }
    assert!(log.len() > 2000);
    let baseline = analyze_bytes(&log);
    assert!(baseline.0 > 0);
    for i in 0..log.len() {
        for b in [0x00u8, 0xff, b'\n', b'9', b':'] {
            let mut bad = log.clone();
            bad[i] = b;
            analyze_bytes(&bad);
        }
        // Cut there too.
        analyze_bytes(&log[..i]);
    }
}

/// A client log of `lines` progress lines, with an EAGAIN error every
/// 1,000 lines (the seed's client 2 pattern, at length).
fn long_log(lines: u64) -> Vec<u8> {
    let mut data = Vec::with_capacity(lines as usize * 48);
    for i in 1..=lines {
        writeln!(
            data,
            "connections: {}, sockfd:{}, time_used:1240",
            i * 1000 - 1,
            i * 1000 + 2
        )
        .unwrap();
        if i % 1000 == 0 {
            writeln!(data, " Error clientfd:{i}, errno:11").unwrap();
        }
    }
    data
}

#[test]
fn state_kept_is_bounded_on_a_long_log() {
    // 300,000 progress lines: the points, marks and evidence kept are capped.
    let data = long_log(300_000);
    let (sources, stat) = read_input("long.log", Cursor::new(&data));
    assert_eq!(stat.lines, 300_300);
    let s = &sources[0];
    assert!(s.points.len() <= MAX_POINTS + 1, "{}", s.points.len());
    assert!(s.marks.len() <= c1m::diagnosis::source::MAX_MARKS);
    assert!(s.obs.values().all(|o| o.evidence.len() <= 3));
    assert_eq!(s.obs[&c1m::diagnosis::FailureId::EagainMisuse].count, 300);
    assert_eq!(s.max_connections(), Some(299_999_999));
}
