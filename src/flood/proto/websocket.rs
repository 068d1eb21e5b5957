//! `--protocol websocket`: the RFC 6455 opening handshake (a GET with
//! `Upgrade: websocket` and a `Sec-WebSocket-Key` derived from the
//! connection number), verified by `101 Switching Protocols` and a
//! `Sec-WebSocket-Accept` equal to `tungstenite`'s derivation of the key.
//! During the hold each round sends one masked frame built with
//! `tungstenite`'s framing: the `--message` text, expected back as a text
//! frame (an echo service), or without `--message` a ping, expected back
//! as its pong. A close frame from the server is a refusal.
use std::io::Cursor;

use base64::Engine as _;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameHeader};

use super::http::{check_path, header_lines, parse_head};
use super::{Dialect, MAX_REPLY, ProtoFail, Refusal, Verdict, with_n};

/// The WebSocket dialect.
#[derive(Debug, Clone)]
pub struct WebSocket {
    host: String,
    path: String,
    headers: String,
    /// The text frame of each hold round; `None`: ping/pong.
    message: Option<String>,
}

/// Connection `k`'s Sec-WebSocket-Key: 16 bytes (its number and a fixed
/// tag), base64. Derived, not random, so the reply can be checked from `k`
/// alone; a load generator needs no unpredictability here.
pub fn key(k: u64) -> String {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&k.to_be_bytes());
    raw[8..].copy_from_slice(b"c1m-ws-k");
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The frame mask of connection `k` (never all zero).
fn mask(k: u64) -> [u8; 4] {
    ((k as u32) ^ 0x5a5a_a5a5 | 1).to_be_bytes()
}

impl WebSocket {
    pub fn new(
        host: &str,
        path: &str,
        headers: &[String],
        message: Option<String>,
    ) -> Result<WebSocket, String> {
        check_path(path)?;
        Ok(WebSocket {
            host: host.to_string(),
            path: path.to_string(),
            headers: header_lines(headers)?,
            message,
        })
    }

    /// The payload of connection `k`'s hold frame.
    fn payload(&self, k: u64) -> String {
        match &self.message {
            Some(m) => with_n(m, k),
            None => format!("c1m {k}"),
        }
    }

    fn verify_handshake(&self, k: u64, input: &[u8]) -> Verdict {
        let head = match parse_head(input) {
            Ok(Some(h)) => h,
            Ok(None) => return Verdict::More,
            Err(r) => return Verdict::Fail(r),
        };
        if head.code != 101 {
            return Verdict::Fail(Refusal::new(
                ProtoFail::Refused,
                format!(
                    "the WebSocket upgrade of {} was answered HTTP {} {}",
                    self.path, head.code, head.reason
                ),
            ));
        }
        let want = derive_accept_key(key(k).as_bytes());
        let got = head
            .headers
            .iter()
            .find(|(n, _)| n == "sec-websocket-accept")
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string());
        match got {
            Some(g) if g == want => Verdict::Done,
            Some(g) => Verdict::Fail(Refusal::new(
                ProtoFail::Mismatch,
                format!("Sec-WebSocket-Accept '{g}' is not '{want}' (RFC 6455 4.2.2)"),
            )),
            None => Verdict::Fail(Refusal::new(
                ProtoFail::Mismatch,
                "101 without Sec-WebSocket-Accept",
            )),
        }
    }

    /// Frames received during the hold: the echo or pong of this round;
    /// the server's own pings are passed over.
    fn verify_frames(&self, k: u64, input: &[u8]) -> Verdict {
        let mut cur = Cursor::new(input);
        loop {
            let start = cur.position() as usize;
            let (hdr, len) = match FrameHeader::parse(&mut cur) {
                Ok(Some(h)) => h,
                Ok(None) => return more(input),
                Err(e) => {
                    return Verdict::Fail(Refusal::new(
                        ProtoFail::Mismatch,
                        format!("not a WebSocket frame: {e}"),
                    ));
                }
            };
            let at = cur.position() as usize;
            let end = at.saturating_add(len as usize);
            if end > input.len() {
                let _ = start;
                return more(input);
            }
            let payload = &input[at..end];
            cur.set_position(end as u64);
            let expected = self.payload(k);
            match (hdr.opcode, self.message.is_some()) {
                (OpCode::Control(Control::Ping), _) => continue,
                (OpCode::Control(Control::Close), _) => {
                    let code = payload
                        .get(..2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]).to_string())
                        .unwrap_or_else(|| "none".into());
                    let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or(&[]));
                    return Verdict::Fail(Refusal::new(
                        ProtoFail::Refused,
                        format!("the server closed the WebSocket (code {code}) {reason}"),
                    ));
                }
                (OpCode::Data(Data::Text), true) | (OpCode::Control(Control::Pong), false)
                    if payload == expected.as_bytes() =>
                {
                    return Verdict::Done;
                }
                (op, _) => {
                    return Verdict::Fail(Refusal::new(
                        ProtoFail::Mismatch,
                        format!(
                            "expected {} '{expected}', got a {op} frame '{}'",
                            if self.message.is_some() {
                                "the text echo"
                            } else {
                                "the pong"
                            },
                            super::shown(payload)
                        ),
                    ));
                }
            }
        }
    }
}

fn more(input: &[u8]) -> Verdict {
    if input.len() >= MAX_REPLY {
        Verdict::Fail(Refusal::new(
            ProtoFail::Mismatch,
            format!("no complete WebSocket frame in {} bytes", input.len()),
        ))
    } else {
        Verdict::More
    }
}

impl Dialect for WebSocket {
    fn opening(&self, k: u64, out: &mut Vec<u8>) {
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: c1m\r\n{}\r\n",
            with_n(&self.path, k),
            self.host,
            key(k),
            with_n(&self.headers, k)
        );
        out.extend_from_slice(req.as_bytes());
    }

    fn verify(&self, k: u64, hold: bool, input: &[u8]) -> Verdict {
        if input.is_empty() {
            return Verdict::More;
        }
        if hold {
            self.verify_frames(k, input)
        } else {
            self.verify_handshake(k, input)
        }
    }

    fn keepalive(&self, k: u64, out: &mut Vec<u8>) {
        let payload = self.payload(k).into_bytes();
        let mut frame = match self.message {
            Some(_) => Frame::message(payload, OpCode::Data(Data::Text), true),
            None => Frame::ping(payload),
        };
        frame.header_mut().mask = Some(mask(k));
        // Writing into a Vec cannot fail.
        let _ = frame.format(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's side of a frame: unmasked.
    fn server_frame(op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let f = Frame::message(payload.to_vec(), op, true);
        f.format(&mut out).unwrap();
        out
    }

    #[test]
    fn the_accept_key_is_checked() {
        let ws = WebSocket::new("h", "/ws", &[], None).unwrap();
        let mut req = Vec::new();
        ws.opening(3, &mut req);
        let req = String::from_utf8(req).unwrap();
        assert!(
            req.contains(&format!("Sec-WebSocket-Key: {}\r\n", key(3))),
            "{req}"
        );
        // RFC 6455's own example key and accept value.
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let good = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key(3).as_bytes())
        );
        assert_eq!(ws.verify(3, false, good.as_bytes()), Verdict::Done);
        assert!(matches!(
            ws.verify(4, false, good.as_bytes()),
            Verdict::Fail(Refusal {
                kind: ProtoFail::Mismatch,
                ..
            })
        ));
        assert!(matches!(
            ws.verify(
                3,
                false,
                b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n"
            ),
            Verdict::Fail(Refusal {
                kind: ProtoFail::Refused,
                ..
            })
        ));
    }

    #[test]
    fn hold_rounds_are_echoed_text_or_pongs() {
        let ws = WebSocket::new("h", "/", &[], Some("hi {n}".into())).unwrap();
        let mut out = Vec::new();
        ws.keepalive(9, &mut out);
        assert_eq!(out[0], 0x81, "a final text frame");
        assert_eq!(out[1], 0x80 | 4, "masked, 4 bytes");
        let echo = server_frame(OpCode::Data(Data::Text), b"hi 9");
        assert_eq!(ws.verify(9, true, &echo[..3]), Verdict::More);
        assert_eq!(ws.verify(9, true, &echo), Verdict::Done);
        let ping = WebSocket::new("h", "/", &[], None).unwrap();
        let mut both = server_frame(OpCode::Control(Control::Ping), b"srv");
        both.extend(server_frame(OpCode::Control(Control::Pong), b"c1m 9"));
        assert_eq!(ping.verify(9, true, &both), Verdict::Done);
        let close = server_frame(OpCode::Control(Control::Close), b"\x03\xe8bye");
        assert!(matches!(
            ping.verify(9, true, &close),
            Verdict::Fail(r) if r.kind == ProtoFail::Refused && r.detail.contains("1000")
        ));
    }
}
