//! `--protocol connect`: an established connection counts as verified;
//! nothing is sent, then or during the hold (tcpkali's connect-only mode,
//! and the way to load a server whose protocol flood does not speak).
use super::{Dialect, Verdict};

/// Connect only.
#[derive(Debug, Clone, Copy, Default)]
pub struct Connect;

impl Dialect for Connect {
    fn opening(&self, _k: u64, _out: &mut Vec<u8>) {}

    fn verify(&self, _k: u64, _hold: bool, _input: &[u8]) -> Verdict {
        Verdict::Done
    }

    fn keepalive(&self, _k: u64, _out: &mut Vec<u8>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_sent_and_the_connection_counts_at_once() {
        let mut out = Vec::new();
        Connect.opening(1, &mut out);
        Connect.keepalive(1, &mut out);
        assert!(out.is_empty());
        assert_eq!(Connect.verify(1, false, b""), Verdict::Done);
    }
}
