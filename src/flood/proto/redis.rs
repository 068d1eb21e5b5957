//! `--protocol redis`: RESP's inline `PING`, answered `+PONG`, once to
//! verify and once per keep-alive round. An error reply is classified:
//! `-ERR max number of clients reached` (the server's `maxclients`, which
//! Redis lowers itself to what its fd limit allows) is the server's
//! connection limit, any other error (`-NOAUTH`, `-DENIED`) a refusal, and
//! a reply that is not RESP at all a protocol mismatch, decided on the
//! first byte so that a wrong server fails at once.
use super::{Dialect, MAX_REPLY, ProtoFail, Refusal, Verdict, find};

/// The Redis dialect.
#[derive(Debug, Clone, Copy, Default)]
pub struct Redis;

const PING: &[u8] = b"PING\r\n";

impl Dialect for Redis {
    fn opening(&self, _k: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(PING);
    }

    fn verify(&self, _k: u64, _hold: bool, input: &[u8]) -> Verdict {
        let Some(&first) = input.first() else {
            return Verdict::More;
        };
        if !matches!(first, b'+' | b'-') {
            return Verdict::Fail(Refusal::mismatch("RESP", input));
        }
        let Some(end) = find(input, b"\r\n") else {
            return if input.len() >= MAX_REPLY {
                Verdict::Fail(Refusal::mismatch("RESP", input))
            } else {
                Verdict::More
            };
        };
        let line = String::from_utf8_lossy(&input[1..end]);
        if first == b'+' {
            return if line == "PONG" {
                Verdict::Done
            } else {
                Verdict::Fail(Refusal::new(
                    ProtoFail::Mismatch,
                    format!("PING answered '+{line}', not +PONG"),
                ))
            };
        }
        let kind = if line.contains("max number of clients reached") {
            ProtoFail::ConnectionLimit
        } else {
            ProtoFail::Refused
        };
        Verdict::Fail(Refusal::new(kind, format!("redis answered '-{line}'")))
    }

    fn keepalive(&self, k: u64, out: &mut Vec<u8>) {
        self.opening(k, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pong_verifies_and_errors_are_classified() {
        let r = Redis;
        assert_eq!(r.verify(0, false, b""), Verdict::More);
        assert_eq!(r.verify(0, false, b"+PO"), Verdict::More);
        assert_eq!(r.verify(0, false, b"+PONG\r\n"), Verdict::Done);
        let full = r.verify(0, false, b"-ERR max number of clients reached\r\n");
        assert!(
            matches!(&full, Verdict::Fail(f) if f.kind == ProtoFail::ConnectionLimit
                && f.detail == "redis answered '-ERR max number of clients reached'"),
            "{full:?}"
        );
        assert!(matches!(
            r.verify(0, false, b"-NOAUTH Authentication required.\r\n"),
            Verdict::Fail(Refusal {
                kind: ProtoFail::Refused,
                ..
            })
        ));
        // nginx's answer to "PING": not RESP, known from the first byte.
        let v = r.verify(0, false, b"HTTP/1.1 400 Bad Request\r\n");
        assert!(
            matches!(&v, Verdict::Fail(f) if f.kind == ProtoFail::Mismatch
                && f.detail.contains("HTTP/1.1 400 Bad Request")),
            "{v:?}"
        );
    }
}
