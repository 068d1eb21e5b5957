//! `--protocol mqtt`: MQTT 3.1.1 `CONNECT` (clean session, client id from
//! `--prefix` and the connection number, keep-alive `--keepalive`),
//! verified by a `CONNACK` with return code 0; `PINGREQ` each hold round,
//! answered by `PINGRESP`. Packets are encoded and decoded with the
//! `mqttbytes` codec (rumqtt's). CONNACK refusal codes map to failures:
//! 3 "server unavailable" is the broker's connection limit, the others
//! (protocol version, client id, credentials, authorisation) refusals.
use std::time::Duration;

use bytes::BytesMut;
use mqttbytes::v4::{self, ConnectReturnCode, Packet, PingReq};

use super::{Dialect, ProtoFail, Refusal, Verdict};

/// The MQTT dialect.
#[derive(Debug, Clone)]
pub struct Mqtt {
    prefix: String,
    keepalive_s: u16,
}

/// The largest packet accepted from the broker.
const MAX_PACKET: usize = 64 * 1024;

impl Mqtt {
    pub fn new(prefix: &str, keepalive: Duration) -> Result<Mqtt, String> {
        let s = keepalive.as_secs();
        if s == 0 || s > u16::MAX as u64 {
            return Err(format!(
                "--keepalive {}: MQTT's keep-alive is 1 to 65535 seconds",
                crate::argv::duration(keepalive)
            ));
        }
        Ok(Mqtt {
            prefix: prefix.to_string(),
            keepalive_s: s as u16,
        })
    }

    /// Connection `k`'s client id.
    pub fn client_id(&self, k: u64) -> String {
        if self.prefix.contains("{n}") {
            super::with_n(&self.prefix, k)
        } else {
            format!("{}{k}", self.prefix)
        }
    }
}

fn refusal(code: ConnectReturnCode) -> Refusal {
    let (kind, text) = match code {
        ConnectReturnCode::ServiceUnavailable => {
            (ProtoFail::ConnectionLimit, "3 server unavailable")
        }
        ConnectReturnCode::RefusedProtocolVersion => {
            (ProtoFail::Refused, "1 unacceptable protocol version")
        }
        ConnectReturnCode::BadClientId => (ProtoFail::Refused, "2 identifier rejected"),
        ConnectReturnCode::BadUserNamePassword => {
            (ProtoFail::Refused, "4 bad user name or password")
        }
        ConnectReturnCode::NotAuthorized => (ProtoFail::Refused, "5 not authorized"),
        ConnectReturnCode::Success => (ProtoFail::Mismatch, "0 accepted"),
    };
    Refusal::new(kind, format!("the broker refused CONNECT: CONNACK {text}"))
}

impl Dialect for Mqtt {
    fn opening(&self, k: u64, out: &mut Vec<u8>) {
        let mut c = v4::Connect::new(self.client_id(k));
        c.keep_alive = self.keepalive_s;
        c.clean_session = true;
        let mut buf = BytesMut::with_capacity(64);
        // Encoding fails only for a field over 65535 bytes; the id is short.
        if c.write(&mut buf).is_ok() {
            out.extend_from_slice(&buf);
        }
    }

    fn verify(&self, _k: u64, hold: bool, input: &[u8]) -> Verdict {
        let Some(&first) = input.first() else {
            return Verdict::More;
        };
        // The first byte says it at once: a CONNACK is 0x20, a PINGRESP
        // 0xD0; anything else is not this broker's answer (and waiting
        // for the "remaining length" of, say, an HTTP error page would
        // only end in a timeout).
        let want = if hold { 0xD0 } else { 0x20 };
        if first != want {
            let mut r = Refusal::mismatch("MQTT", input);
            r.detail.push_str(&format!(
                " (first byte 0x{first:02x}, not the {} 0x{want:02x})",
                if hold { "PINGRESP" } else { "CONNACK" }
            ));
            return Verdict::Fail(r);
        }
        let mut buf = BytesMut::from(input);
        match v4::read(&mut buf, MAX_PACKET) {
            Err(mqttbytes::Error::InsufficientBytes(_)) => Verdict::More,
            Ok(Packet::ConnAck(a)) if !hold => match a.code {
                ConnectReturnCode::Success => Verdict::Done,
                code => Verdict::Fail(refusal(code)),
            },
            Ok(Packet::PingResp) if hold => Verdict::Done,
            Ok(p) => Verdict::Fail(Refusal::new(
                ProtoFail::Mismatch,
                format!(
                    "expected {}, the broker sent {p:?}",
                    if hold { "PINGRESP" } else { "CONNACK" }
                ),
            )),
            Err(mqttbytes::Error::InvalidConnectReturnCode(c)) => Verdict::Fail(Refusal::new(
                ProtoFail::Mismatch,
                format!("CONNACK with return code {c}, which MQTT 3.1.1 does not define"),
            )),
            Err(e) => {
                let mut r = Refusal::mismatch("MQTT", input);
                r.detail.push_str(&format!(" ({e:?})"));
                Verdict::Fail(r)
            }
        }
    }

    fn keepalive(&self, _k: u64, out: &mut Vec<u8>) {
        let mut buf = BytesMut::with_capacity(2);
        if PingReq.write(&mut buf).is_ok() {
            out.extend_from_slice(&buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqttbytes::v4::ConnAck;

    #[test]
    fn connect_carries_the_client_id_and_keepalive() {
        let m = Mqtt::new("dev-{n}-x", Duration::from_secs(30)).unwrap();
        assert_eq!(m.client_id(12), "dev-12-x");
        assert_eq!(
            Mqtt::new("c1m-", Duration::from_secs(1))
                .unwrap()
                .client_id(3),
            "c1m-3"
        );
        let mut out = Vec::new();
        m.opening(12, &mut out);
        let mut buf = BytesMut::from(&out[..]);
        match v4::read(&mut buf, MAX_PACKET).unwrap() {
            Packet::Connect(c) => {
                assert_eq!(c.client_id, "dev-12-x");
                assert_eq!(c.keep_alive, 30);
                assert!(c.clean_session);
            }
            p => panic!("{p:?}"),
        }
        let mut ping = Vec::new();
        m.keepalive(0, &mut ping);
        assert_eq!(ping, [0xC0, 0x00]);
        assert!(Mqtt::new("x", Duration::from_millis(500)).is_err());
    }

    #[test]
    fn connack_codes_map_to_failures() {
        let m = Mqtt::new("c", Duration::from_secs(60)).unwrap();
        let ack = |code| {
            let mut b = BytesMut::new();
            ConnAck::new(code, false).write(&mut b).unwrap();
            b.to_vec()
        };
        let ok = ack(ConnectReturnCode::Success);
        assert_eq!(m.verify(0, false, &ok[..1]), Verdict::More);
        assert_eq!(m.verify(0, false, &ok), Verdict::Done);
        assert!(matches!(
            m.verify(0, false, &ack(ConnectReturnCode::ServiceUnavailable)),
            Verdict::Fail(r) if r.kind == ProtoFail::ConnectionLimit
        ));
        assert!(matches!(
            m.verify(0, false, &ack(ConnectReturnCode::NotAuthorized)),
            Verdict::Fail(r) if r.kind == ProtoFail::Refused && r.detail.contains("5 not authorized")
        ));
        assert_eq!(m.verify(0, true, &[0xD0, 0x00]), Verdict::Done);
        assert!(matches!(
            m.verify(0, false, b"HTTP/1.1 400 Bad Request\r\n"),
            Verdict::Fail(r) if r.kind == ProtoFail::Mismatch
        ));
    }
}
