//! What flood says on a connection, by protocol: `echo` (the seed's line,
//! the default, handled by the engine's own echo machine in
//! `engine::conn` so its per-connection cost never changes), and one
//! module each for `connect`, `line`, `http`, `websocket`, `redis` and
//! `mqtt` behind the small [`Dialect`] trait: the bytes a connection opens
//! with, the check of the reply (which classifies a refusal), and the bytes
//! of one keep-alive round during the hold.
//!
//! A dialect is one value per run, shared by every connection: it holds
//! the configuration (message, path, headers, client-id prefix) and no
//! per-connection state. Everything a connection needs is derived from its
//! number `k` and the bytes received, so the engine keeps no allocation
//! per connection; a reply that arrives in pieces is gathered by the
//! engine in a side table only while it is incomplete. [`Proto`] is the
//! enum the engine dispatches on (no `Box<dyn>`).
mod connect;
mod http;
mod line;
mod mqtt;
mod redis;
mod websocket;

use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::argv::Argv;
use crate::util::parse_duration;

pub use connect::Connect;
pub use http::Http;
pub use line::Line;
pub use mqtt::Mqtt;
pub use redis::Redis;
pub use websocket::WebSocket;

/// The longest reply a dialect waits for before calling it a mismatch.
pub const MAX_REPLY: usize = 64 * 1024;

/// `--protocol`: what flood speaks on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// The seed's line, echoed back byte for byte (c1m serve, the seed's reactor).
    #[default]
    Echo,
    /// An established connection counts; nothing is sent.
    Connect,
    /// --message sent, --expect awaited (tcpkali's -m).
    Line,
    /// An HTTP/1.1 keep-alive GET; the status line verifies.
    Http,
    /// The RFC 6455 upgrade, then text echo (--message) or ping/pong.
    Websocket,
    /// RESP PING, +PONG.
    Redis,
    /// MQTT 3.1.1 CONNECT/CONNACK, PINGREQ/PINGRESP.
    Mqtt,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::argv::value_name(self))
    }
}

/// The protocol flags of `c1m flood` (and of the lab's clients).
#[derive(Debug, Clone, PartialEq, Args)]
pub struct ProtoArgs {
    /// What to speak on each connection: echo (the default, c1m serve),
    /// connect, line, http, websocket, redis, mqtt.
    #[arg(long, value_enum, default_value_t)]
    pub protocol: Protocol,
    /// line: the message to send (TEXT with \n \r \t escapes, or @FILE);
    /// websocket: the text frame echoed during the hold; `{n}` is the
    /// connection number.
    #[arg(long, value_name = "TEXT|@FILE")]
    pub message: Option<String>,
    /// line: what the reply must contain (TEXT, with `{n}`), or /REGEX/;
    /// without it a connection counts once its message is written.
    #[arg(long, value_name = "TEXT|/REGEX/")]
    pub expect: Option<String>,
    /// http, websocket: the request path (`{n}` is the connection number).
    #[arg(long, default_value = "/")]
    pub path: String,
    /// http, websocket: an extra request header `Name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// mqtt: client id prefix; `{n}` in it is the connection number, else
    /// the number is appended.
    #[arg(long, default_value = "c1m-")]
    pub prefix: String,
    /// mqtt: the keep-alive announced in CONNECT; PINGREQ goes this often
    /// during the hold unless --message-interval says otherwise.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub keepalive: Duration,
}

impl Default for ProtoArgs {
    fn default() -> ProtoArgs {
        ProtoArgs {
            protocol: Protocol::Echo,
            message: None,
            expect: None,
            path: "/".into(),
            headers: Vec::new(),
            prefix: "c1m-".into(),
            keepalive: Duration::from_secs(60),
        }
    }
}

impl ProtoArgs {
    /// These flags on a child's command line (only those not at their
    /// default; `--name=value` so a value starting with `-` survives).
    pub fn argv(&self, mut a: Argv) -> Argv {
        let d = ProtoArgs::default();
        if self.protocol != d.protocol {
            a = a.value_enum("protocol", &self.protocol);
        }
        if let Some(m) = &self.message {
            a = a.arg(format!("--message={m}"));
        }
        if let Some(e) = &self.expect {
            a = a.arg(format!("--expect={e}"));
        }
        if self.path != d.path {
            a = a.arg(format!("--path={}", self.path));
        }
        for h in &self.headers {
            a = a.arg(format!("--header={h}"));
        }
        if self.prefix != d.prefix {
            a = a.arg(format!("--prefix={}", self.prefix));
        }
        if self.keepalive != d.keepalive {
            a = a.duration("keepalive", self.keepalive);
        }
        a
    }

    /// The protocol and the options it uses, for flood's `start` line.
    pub fn settings(&self) -> crate::events::ProtocolSettings {
        use Protocol as P;
        let p = self.protocol;
        let http_like = matches!(p, P::Http | P::Websocket);
        crate::events::ProtocolSettings {
            name: p.to_string(),
            message: matches!(p, P::Line | P::Websocket)
                .then(|| self.message.clone())
                .flatten(),
            expect: (p == P::Line).then(|| self.expect.clone()).flatten(),
            path: http_like.then(|| self.path.clone()),
            headers: if http_like {
                self.headers.clone()
            } else {
                Vec::new()
            },
            prefix: (p == P::Mqtt).then(|| self.prefix.clone()),
            keepalive_s: (p == P::Mqtt).then_some(self.keepalive.as_secs_f64()),
        }
    }

    /// The interval of the hold's rounds when --message-interval is not
    /// given: MQTT's keep-alive (a broker drops a client silent for 1.5
    /// keep-alives), none for the rest.
    pub fn default_interval(&self) -> Option<Duration> {
        (self.protocol == Protocol::Mqtt).then_some(self.keepalive)
    }
}

/// Why a reply did not verify, for the failure counters and the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoFail {
    /// The server says it holds as many clients as it may (Redis
    /// `maxclients`, MQTT "server unavailable").
    ConnectionLimit,
    /// The server speaks the protocol and said no (HTTP 4xx/5xx, a Redis
    /// error, an MQTT refusal code, a WebSocket close).
    Refused,
    /// The server does not speak this protocol.
    Mismatch,
}

/// A reply that did not verify: its class and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: ProtoFail,
    pub detail: String,
}

impl Refusal {
    pub fn new(kind: ProtoFail, detail: impl Into<String>) -> Refusal {
        Refusal {
            kind,
            detail: detail.into(),
        }
    }

    /// "the server does not speak P": the first bytes it sent, printable.
    pub fn mismatch(proto: &str, input: &[u8]) -> Refusal {
        Refusal::new(
            ProtoFail::Mismatch,
            format!(
                "the server does not speak {proto}: it answered '{}'",
                shown(input)
            ),
        )
    }
}

/// The first bytes of a reply, printable, for a message.
pub fn shown(input: &[u8]) -> String {
    let cut = &input[..input.len().min(60)];
    let line = cut.split(|&b| b == b'\n').next().unwrap_or(cut);
    String::from_utf8_lossy(line)
        .trim_end_matches('\r')
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect()
}

/// What the bytes received so far amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not complete yet: keep them and read on.
    More,
    /// The reply is complete and right.
    Done,
    /// The reply is complete, or enough of it, and wrong.
    Fail(Refusal),
}

/// One protocol: open, verify, keep alive. Implementations hold only the
/// run's configuration; `k` is the connection's number.
pub trait Dialect {
    /// The bytes connection `k` sends once connected, appended to `out`;
    /// nothing for a protocol where the server speaks first or not at all.
    fn opening(&self, k: u64, out: &mut Vec<u8>);
    /// Check the reply gathered so far: to the opening, or with `hold` to
    /// a keep-alive round. Called with empty `input` once the request is
    /// written, so a protocol that expects nothing verifies at once. A
    /// wrong reply is classified here ([`ProtoFail`]).
    fn verify(&self, k: u64, hold: bool, input: &[u8]) -> Verdict;
    /// The bytes of one keep-alive round during the hold, appended to
    /// `out`; nothing when the protocol keeps a connection idle.
    fn keepalive(&self, k: u64, out: &mut Vec<u8>);
}

/// The run's dialect: echo (the engine's own machine) or one of the rest.
#[derive(Debug, Clone, Default)]
pub enum Proto {
    #[default]
    Echo,
    Connect(Connect),
    Line(Line),
    Http(Http),
    WebSocket(WebSocket),
    Redis(Redis),
    Mqtt(Mqtt),
}

impl Proto {
    /// The dialect the flags ask for; `host` is the server's name (HTTP's
    /// Host header). The error names the flag at fault.
    pub fn from_args(a: &ProtoArgs, host: &str) -> Result<Proto, String> {
        let only = |flag: &str, set: bool, for_: &[Protocol]| -> Result<(), String> {
            if set && !for_.contains(&a.protocol) {
                let names: Vec<String> = for_.iter().map(|p| p.to_string()).collect();
                return Err(format!(
                    "{flag}: only for --protocol {} (this is --protocol {})",
                    names.join("|"),
                    a.protocol
                ));
            }
            Ok(())
        };
        let d = ProtoArgs::default();
        only(
            "--message",
            a.message.is_some(),
            &[Protocol::Line, Protocol::Websocket],
        )?;
        only("--expect", a.expect.is_some(), &[Protocol::Line])?;
        only(
            "--path",
            a.path != d.path,
            &[Protocol::Http, Protocol::Websocket],
        )?;
        only(
            "--header",
            !a.headers.is_empty(),
            &[Protocol::Http, Protocol::Websocket],
        )?;
        only("--prefix", a.prefix != d.prefix, &[Protocol::Mqtt])?;
        only("--keepalive", a.keepalive != d.keepalive, &[Protocol::Mqtt])?;
        let message = a.message.as_deref().map(line::load_message).transpose()?;
        Ok(match a.protocol {
            Protocol::Echo => Proto::Echo,
            Protocol::Connect => Proto::Connect(Connect),
            Protocol::Line => Proto::Line(Line::new(message, a.expect.as_deref())?),
            Protocol::Http => Proto::Http(Http::new(host, &a.path, &a.headers)?),
            Protocol::Websocket => {
                Proto::WebSocket(WebSocket::new(host, &a.path, &a.headers, message)?)
            }
            Protocol::Redis => Proto::Redis(Redis),
            Protocol::Mqtt => Proto::Mqtt(Mqtt::new(&a.prefix, a.keepalive)?),
        })
    }

    /// The protocol's name, as `--protocol` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Proto::Echo => "echo",
            Proto::Connect(_) => "connect",
            Proto::Line(_) => "line",
            Proto::Http(_) => "http",
            Proto::WebSocket(_) => "websocket",
            Proto::Redis(_) => "redis",
            Proto::Mqtt(_) => "mqtt",
        }
    }

    /// Does the client send the first bytes of a connection? (Every
    /// protocol here but `connect`, which sends nothing.)
    pub fn client_speaks_first(&self) -> bool {
        !matches!(self, Proto::Connect(_))
    }

    /// Does a hold round send anything? (`connect` keeps connections idle.)
    pub fn keeps_alive(&self) -> bool {
        !matches!(self, Proto::Connect(_))
    }

    /// The dialect behind a protocol other than echo.
    pub fn dialect(&self) -> Option<&dyn Dialect> {
        Some(match self {
            Proto::Echo => return None,
            Proto::Connect(d) => d,
            Proto::Line(d) => d,
            Proto::Http(d) => d,
            Proto::WebSocket(d) => d,
            Proto::Redis(d) => d,
            Proto::Mqtt(d) => d,
        })
    }
}

/// `{n}` in `template` replaced by `k`.
pub fn with_n(template: &str, k: u64) -> String {
    if template.contains("{n}") {
        template.replace("{n}", &k.to_string())
    } else {
        template.to_string()
    }
}

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_for_another_protocol_are_refused_by_name() {
        let a = ProtoArgs {
            protocol: Protocol::Redis,
            message: Some("x".into()),
            ..ProtoArgs::default()
        };
        let e = Proto::from_args(&a, "h").unwrap_err();
        assert!(e.contains("--message") && e.contains("redis"), "{e}");
        let a = ProtoArgs {
            protocol: Protocol::Mqtt,
            ..ProtoArgs::default()
        };
        assert_eq!(Proto::from_args(&a, "h").unwrap().name(), "mqtt");
        assert_eq!(a.default_interval(), Some(Duration::from_secs(60)));
    }

    #[test]
    fn the_start_line_carries_the_protocol_and_only_its_options() {
        let s = ProtoArgs::default().settings();
        assert_eq!((s.name.as_str(), s.describe()), ("echo", "echo".into()));
        let a = ProtoArgs {
            protocol: Protocol::Line,
            message: Some("HELLO {n}\\n".into()),
            expect: Some("/^OK/".into()),
            ..ProtoArgs::default()
        };
        let s = a.settings();
        assert_eq!(s.message.as_deref(), Some("HELLO {n}\\n"));
        assert_eq!(s.expect.as_deref(), Some("/^OK/"));
        assert_eq!((s.path, s.prefix, s.keepalive_s), (None, None, None));
        let s = ProtoArgs {
            protocol: Protocol::Mqtt,
            prefix: "dev-{n}".into(),
            ..ProtoArgs::default()
        }
        .settings();
        assert_eq!(s.describe(), "mqtt (client ids dev-{n}, keep-alive 60 s)");
        let s = ProtoArgs {
            protocol: Protocol::Http,
            path: "/health".into(),
            ..ProtoArgs::default()
        }
        .settings();
        assert_eq!(s.describe(), "http (path /health)");
    }

    #[test]
    fn shown_keeps_the_first_line_printable() {
        assert_eq!(shown(b"HTTP/1.1 400 Bad\r\nServer: x"), "HTTP/1.1 400 Bad");
        assert_eq!(shown(b"\x20\x02\x00\x05"), " ...");
    }
}
