//! `--protocol line`: connection `k` sends `--message` (`{n}` replaced by
//! `k`) and is verified when the reply contains `--expect` (text, `{n}`
//! replaced) or matches `/REGEX/`; without `--expect` it counts once the
//! message is written. The hold repeats the message. Like tcpkali's
//! `-m`/`--first-message`.
use regex::bytes::Regex;

use super::{Dialect, MAX_REPLY, ProtoFail, Refusal, Verdict, find, shown, with_n};

/// What a reply must hold.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Anything, or nothing at all.
    Nothing,
    Text(String),
    Regex(Regex),
}

/// The line dialect.
#[derive(Debug, Clone)]
pub struct Line {
    message: String,
    expect: Expect,
}

/// `--message`: `@FILE` read as is, else TEXT with `\n`, `\r`, `\t` and
/// `\\` escapes.
pub fn load_message(text: &str) -> Result<String, String> {
    if let Some(path) = text.strip_prefix('@') {
        return std::fs::read_to_string(path)
            .map_err(|e| format!("--message @{path}: cannot read the file: {e}"));
    }
    Ok(unescape(text))
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

impl Line {
    pub fn new(message: Option<String>, expect: Option<&str>) -> Result<Line, String> {
        let Some(message) = message else {
            return Err("--protocol line needs --message TEXT|@FILE".into());
        };
        if message.is_empty() {
            return Err("--message: empty (use --protocol connect to send nothing)".into());
        }
        let expect = match expect {
            None => Expect::Nothing,
            Some(e) if e.len() >= 2 && e.starts_with('/') && e.ends_with('/') => {
                let re = Regex::new(&e[1..e.len() - 1])
                    .map_err(|err| format!("--expect {e}: not a regular expression: {err}"))?;
                Expect::Regex(re)
            }
            Some("") => return Err("--expect: empty".into()),
            Some(e) => Expect::Text(unescape(e)),
        };
        Ok(Line { message, expect })
    }
}

impl Dialect for Line {
    fn opening(&self, k: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(with_n(&self.message, k).as_bytes());
    }

    fn verify(&self, k: u64, _hold: bool, input: &[u8]) -> Verdict {
        let found = match &self.expect {
            Expect::Nothing => return Verdict::Done,
            Expect::Text(t) => find(input, with_n(t, k).as_bytes()).is_some(),
            Expect::Regex(re) => re.is_match(input),
        };
        if found {
            Verdict::Done
        } else if input.len() >= MAX_REPLY {
            Verdict::Fail(Refusal::new(
                ProtoFail::Mismatch,
                format!(
                    "{} bytes came back without the expected reply, starting '{}'",
                    input.len(),
                    shown(input)
                ),
            ))
        } else {
            Verdict::More
        }
    }

    fn keepalive(&self, k: u64, out: &mut Vec<u8>) {
        self.opening(k, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_carries_the_connection_number_and_escapes() {
        let l = Line::new(Some(unescape("HELLO {n}\\r\\n")), None).unwrap();
        let mut out = Vec::new();
        l.opening(42, &mut out);
        assert_eq!(out, b"HELLO 42\r\n");
        assert_eq!(l.verify(42, false, b""), Verdict::Done);
    }

    #[test]
    fn text_and_regex_expectations() {
        let l = Line::new(Some("x".into()), Some("OK {n}")).unwrap();
        assert_eq!(l.verify(7, false, b"O"), Verdict::More);
        assert_eq!(l.verify(7, false, b"hi OK 7\n"), Verdict::Done);
        assert_eq!(l.verify(8, false, b"hi OK 7\n"), Verdict::More);
        let r = Line::new(Some("x".into()), Some("/^\\+OK [0-9]+/")).unwrap();
        assert_eq!(r.verify(1, false, b"+OK 12\r\n"), Verdict::Done);
        assert!(matches!(
            r.verify(1, false, &vec![b'a'; MAX_REPLY]),
            Verdict::Fail(Refusal {
                kind: ProtoFail::Mismatch,
                ..
            })
        ));
        let e = Line::new(Some("x".into()), Some("/(/")).unwrap_err();
        assert!(e.starts_with("--expect /(/"), "{e}");
        assert!(Line::new(None, None).unwrap_err().contains("--message"));
        let e = load_message("@/nonexistent/c1m-msg").unwrap_err();
        assert!(e.contains("/nonexistent/c1m-msg"), "{e}");
    }
}
