//! `flood --reconnect`: when a verified connection is lost during the hold,
//! open a new one, as real clients do, after a delay drawn with exponential
//! backoff and full jitter (uniform in 0..min(max, min x 2^attempt), the
//! AWS architecture blog's "full jitter"), or at once with
//! `--reconnect-backoff 0` (the naive client that makes a reconnect storm).
//! A reconnect that fails is tried again with the next attempt's backoff.
//! This file owns the schedule and the account (reconnects, attempts, the
//! peak attempt rate, the time back to the target); the loop admits due
//! reconnects through [`Engine::admit_reconnects`] within the window.
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Engine;

/// `--reconnect-backoff MIN..MAX`, or `0` (no backoff at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// No backoff: reconnect at once (a naive client).
    pub fn none() -> Backoff {
        Backoff {
            min: Duration::ZERO,
            max: Duration::ZERO,
        }
    }

    /// The delay before attempt `attempt` (0 = the first reconnect), with
    /// `r` a uniform random number: full jitter over the exponential step.
    pub fn delay(&self, attempt: u32, r: u64) -> Duration {
        if self.max.is_zero() {
            return Duration::ZERO;
        }
        let step = self
            .min
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        let nanos = step.as_nanos() as u64;
        Duration::from_nanos(if nanos == 0 { 0 } else { r % (nanos + 1) })
    }
}

impl fmt::Display for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.max.is_zero() {
            return f.write_str("0");
        }
        write!(
            f,
            "{}..{}",
            crate::argv::duration(self.min),
            crate::argv::duration(self.max)
        )
    }
}

/// The value parser of `--reconnect-backoff`: `0` (none) or `MIN..MAX`
/// (`100ms..30s`), MIN above zero and not above MAX.
pub fn parse_backoff(text: &str) -> Result<Backoff, String> {
    let t = text.trim();
    if t == "0" || t == "0s" || t == "none" {
        return Ok(Backoff::none());
    }
    let (a, b) = t
        .split_once("..")
        .ok_or_else(|| format!("'{t}': expected MIN..MAX (100ms..30s) or 0"))?;
    let min = crate::util::parse_duration(a)?;
    let max = crate::util::parse_duration(b)?;
    if min.is_zero() || min > max {
        return Err(format!(
            "'{t}': MIN must be above zero and at most MAX (or give 0 for no backoff)"
        ));
    }
    Ok(Backoff { min, max })
}

/// What reconnecting did (flood's summary `reconnect`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReconnectSummary {
    /// `--reconnect-backoff` as given.
    pub backoff: String,
    /// Verified connections lost during the hold (each one reconnected).
    pub lost: u64,
    /// Connection attempts made to replace them, and how many failed.
    pub attempts: u64,
    pub failed: u64,
    /// Replacements verified.
    pub reconnects: u64,
    /// Most reconnect attempts started within one second (over several
    /// processes: the sum of each one's peak, an upper bound).
    pub peak_attempts_per_s: u64,
    /// Seconds from the first loss until this process held its share again
    /// (`None`: it never got back).
    pub recovered_s: Option<f64>,
}

impl ReconnectSummary {
    /// Add another process's account (the parent summing its workers).
    pub fn merge(&mut self, o: &ReconnectSummary) {
        if self.backoff.is_empty() {
            self.backoff = o.backoff.clone();
        }
        self.lost += o.lost;
        self.attempts += o.attempts;
        self.failed += o.failed;
        self.reconnects += o.reconnects;
        self.peak_attempts_per_s += o.peak_attempts_per_s;
        // The run is back when its slowest process is.
        self.recovered_s = match (self.recovered_s, o.recovered_s) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, None) if o.lost > 0 => a.and(None),
            (a, b) => a.or(b),
        };
    }
}

/// The schedule of one process.
pub(super) struct Reconnector {
    backoff: Backoff,
    /// (when, attempt) of reconnects not started yet.
    due: BinaryHeap<Reverse<(Instant, u32)>>,
    /// slot -> (epoch, attempt) of reconnects in flight.
    in_flight: HashMap<u32, (u32, u32)>,
    rng: u64,
    /// Attempts started in the current one-second bucket.
    bucket: (Instant, u64),
    first_loss: Option<Instant>,
    pub(super) s: ReconnectSummary,
}

impl Reconnector {
    pub(super) fn new(backoff: Backoff) -> Reconnector {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ (u64::from(std::process::id()) << 32);
        Reconnector {
            backoff,
            due: BinaryHeap::new(),
            in_flight: HashMap::new(),
            rng: seed | 1,
            bucket: (Instant::now(), 0),
            first_loss: None,
            s: ReconnectSummary {
                backoff: backoff.to_string(),
                ..Default::default()
            },
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn schedule(&mut self, now: Instant, attempt: u32) {
        let r = self.random();
        let at = now + self.backoff.delay(attempt, r);
        self.due.push(Reverse((at, attempt)));
    }

    /// A verified connection was lost: reconnect it.
    pub(super) fn lost(&mut self, now: Instant) {
        self.s.lost += 1;
        self.first_loss.get_or_insert(now);
        self.s.recovered_s = None;
        self.schedule(now, 0);
    }

    /// The attempt of the next reconnect due by `now`, if any.
    fn pop_due(&mut self, now: Instant) -> Option<u32> {
        match self.due.peek() {
            Some(Reverse((at, _))) if *at <= now => self.due.pop().map(|Reverse((_, a))| a),
            _ => None,
        }
    }

    /// When the next reconnect is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    fn started(&mut self, now: Instant, slot: u32, epoch: u32, attempt: u32) {
        self.s.attempts += 1;
        self.in_flight.insert(slot, (epoch, attempt));
        if now.duration_since(self.bucket.0) >= Duration::from_secs(1) {
            self.bucket = (now, 0);
        }
        self.bucket.1 += 1;
        self.s.peak_attempts_per_s = self.s.peak_attempts_per_s.max(self.bucket.1);
    }

    /// The attempt in `slot` failed: when it was a reconnect, try again
    /// with the next backoff step.
    pub(super) fn failed(&mut self, now: Instant, slot: u32, epoch: u32) {
        if let Some((e, attempt)) = self.in_flight.remove(&slot)
            && e == epoch
        {
            self.s.failed += 1;
            self.schedule(now, attempt.saturating_add(1));
        }
    }

    /// The connection in `slot` was verified.
    pub(super) fn verified(&mut self, slot: u32, epoch: u32) {
        if let Some((e, _)) = self.in_flight.remove(&slot)
            && e == epoch
        {
            self.s.reconnects += 1;
        }
    }

    /// Note when the process holds its `target` again after a loss.
    fn check_recovered(&mut self, now: Instant, open: u64, target: u64) {
        if let Some(t) = self.first_loss
            && self.s.recovered_s.is_none()
            && open >= target
            && self.due.is_empty()
        {
            self.s.recovered_s = Some(now.duration_since(t).as_secs_f64());
        }
    }
}

impl Engine<'_> {
    /// During the hold, start the reconnects that are due, within the
    /// window of attempts in flight.
    pub(super) fn admit_reconnects(&mut self, now: Instant) {
        if self.phase != crate::flood::stats::Phase::Hold || self.reconnect.is_none() {
            return;
        }
        while (self.in_flight as usize) < self.shard.window {
            let Some(attempt) = self.reconnect.as_mut().and_then(|r| r.pop_due(now)) else {
                break;
            };
            match self.open_one() {
                Some(slot) => {
                    let epoch = self.conns[slot as usize].epoch;
                    if let Some(r) = self.reconnect.as_mut() {
                        r.started(now, slot, epoch, attempt);
                    }
                }
                // Not even a socket: try again later.
                None => {
                    if let Some(r) = self.reconnect.as_mut() {
                        r.s.failed += 1;
                        r.schedule(now, attempt.saturating_add(1));
                    }
                    break;
                }
            }
        }
        let (open, target) = (self.counters.connections, self.shard.connections);
        if let Some(r) = self.reconnect.as_mut() {
            r.check_recovered(now, open, target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_parses_grows_exponentially_with_full_jitter_and_prints_back() {
        let b = parse_backoff("100ms..30s").unwrap();
        assert_eq!(b, Backoff::default());
        assert_eq!(b.to_string(), "100ms..30s");
        assert_eq!(parse_backoff("0").unwrap(), Backoff::none());
        assert_eq!(Backoff::none().to_string(), "0");
        assert!(parse_backoff("30s..1s").is_err());
        assert!(parse_backoff("0..1s").is_err());
        assert!(parse_backoff("often").is_err());
        // The upper end doubles per attempt, capped at max; every delay is
        // within 0..=step.
        assert_eq!(
            b.delay(0, u64::MAX),
            Duration::from_nanos(u64::MAX % 100_000_001)
        );
        for (attempt, step_ms) in [
            (0u32, 100u64),
            (1, 200),
            (3, 800),
            (8, 25_600),
            (9, 30_000),
            (40, 30_000),
        ] {
            for r in [0u64, 1, 12345, u64::MAX / 3, u64::MAX] {
                assert!(
                    b.delay(attempt, r) <= Duration::from_millis(step_ms),
                    "{attempt} {r}"
                );
            }
        }
        let spread: std::collections::BTreeSet<u128> = (0..50u64)
            .map(|i| {
                b.delay(2, i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                    .as_millis()
            })
            .collect();
        assert!(spread.len() > 20, "jitter spreads the delays: {spread:?}");
        assert_eq!(Backoff::none().delay(5, 99), Duration::ZERO);
    }

    #[test]
    fn a_failed_reconnect_is_tried_again_and_the_account_adds_up() {
        let mut r = Reconnector::new(Backoff::none());
        let t = Instant::now();
        r.lost(t);
        r.lost(t);
        assert_eq!(r.pop_due(t), Some(0));
        r.started(t, 7, 1, 0);
        r.failed(t, 7, 1);
        assert_eq!(r.pop_due(t), Some(0));
        assert_eq!(r.pop_due(t), Some(1), "the failed one, one step on");
        r.started(t, 8, 1, 1);
        r.started(t, 9, 1, 0);
        r.verified(8, 1);
        r.verified(9, 2); // a stale epoch: not this reconnect
        r.check_recovered(t + Duration::from_millis(500), 10, 10);
        assert_eq!(
            (r.s.lost, r.s.attempts, r.s.failed, r.s.reconnects),
            (2, 3, 1, 1)
        );
        assert_eq!(r.s.peak_attempts_per_s, 3);
        assert_eq!(r.s.recovered_s, Some(0.5));
        let mut sum = ReconnectSummary::default();
        sum.merge(&r.s);
        sum.merge(&r.s);
        assert_eq!(
            (sum.lost, sum.reconnects, sum.recovered_s),
            (4, 2, Some(0.5))
        );
    }
}
