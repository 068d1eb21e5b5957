//! Free loopback ports for a test: a run of consecutive ports picked at
//! random inside a band and checked to all bind on 127.0.0.1. Each test
//! file has a band of its own, so test binaries running at once (and other
//! suites on the same machine) rarely pick the same ports, and a port taken
//! between the pick and the use only costs a retry.
use std::net::TcpListener;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

/// `c1m serve`'s tests.
pub const SERVE_BAND: Range<u16> = 10000..14000;
/// `c1m flood`'s tests (the echo server).
pub const FLOOD_BAND: Range<u16> = 14000..18000;
/// `--metrics` tests (serve, flood, their endpoints and Prometheus).
pub const METRICS_BAND: Range<u16> = 18000..20000;

/// A pseudo-random number below `limit` from the clock, the pid and a
/// counter (no rand crate needed for picking ports and test data).
pub fn random(limit: u64) -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x =
        t ^ ((std::process::id() as u64) << 32) ^ N.fetch_add(0x9e37_79b9, Ordering::Relaxed);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x % limit.max(1)
}

/// Bind `count` consecutive ports on 127.0.0.1 at a random base in `band`;
/// the listeners are held until the caller drops them.
pub fn bind_run(band: Range<u16>, count: u16) -> (u16, Vec<TcpListener>) {
    let room = (band.end - band.start).saturating_sub(count) as u64;
    for _ in 0..500 {
        let base = band.start + random(room) as u16;
        let ls: Vec<TcpListener> = (base..base + count)
            .map_while(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if ls.len() == count as usize {
            return (base, ls);
        }
    }
    panic!("no run of {count} free ports in {band:?}");
}

/// A base port such that `base..base+count` all bound on 127.0.0.1 just now
/// (released again: the caller's process binds them).
pub fn free_base(band: Range<u16>, count: u16) -> u16 {
    bind_run(band, count).0
}
