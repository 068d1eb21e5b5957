//! `--protocol http`: an HTTP/1.1 keep-alive `GET --path` (with `--header`
//! lines), verified by the response's status line and headers parsed with
//! `httparse`, and its body read to its end (Content-Length or chunked) so
//! the next request on the connection starts clean. 2xx and 3xx verify;
//! 4xx and 5xx are refusals; bytes that are not an HTTP response are a
//! protocol mismatch. The hold repeats the request every
//! `--message-interval`, else the connection stays idle.
use super::{Dialect, MAX_REPLY, ProtoFail, Refusal, Verdict, find, with_n};

/// The HTTP dialect.
#[derive(Debug, Clone)]
pub struct Http {
    host: String,
    path: String,
    /// Extra header lines, each ending in CRLF.
    headers: String,
}

/// `--header` lines checked and joined, each ending in CRLF.
pub fn header_lines(headers: &[String]) -> Result<String, String> {
    let mut out = String::new();
    for h in headers {
        let Some((name, value)) = h.split_once(':') else {
            return Err(format!("--header '{h}': not 'Name: value'"));
        };
        let name = name.trim();
        if name.is_empty()
            || !name.bytes().all(|b| b.is_ascii_graphic())
            || h.contains(['\r', '\n'])
        {
            return Err(format!("--header '{h}': not a valid header line"));
        }
        out.push_str(&format!("{name}: {}\r\n", value.trim()));
    }
    Ok(out)
}

/// `--path`: must start with `/`.
pub fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.contains([' ', '\r', '\n']) {
        return Err(format!(
            "--path '{path}': must start with / and hold no spaces"
        ));
    }
    Ok(())
}

/// What the response head said, once complete.
pub struct Head {
    pub code: u16,
    pub reason: String,
    /// Length of the head in bytes.
    pub len: usize,
    pub content_length: Option<usize>,
    pub chunked: bool,
    /// The headers, lowercase names.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Parse a response head: `Ok(None)` while incomplete, `Err` for bytes
/// that are not an HTTP response.
pub fn parse_head(input: &[u8]) -> Result<Option<Head>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if input.len() < MAX_REPLY => return Ok(None),
        Ok(httparse::Status::Partial) => return Err(Refusal::mismatch("HTTP", input)),
        Err(e) => {
            let mut r = Refusal::mismatch("HTTP", input);
            r.detail.push_str(&format!(" ({e})"));
            return Err(r);
        }
    };
    let mut head = Head {
        code: resp.code.unwrap_or(0),
        reason: resp.reason.unwrap_or("").to_string(),
        len,
        content_length: None,
        chunked: false,
        headers: Vec::new(),
    };
    for h in resp.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(h.value);
        if name == "content-length" {
            head.content_length = value.trim().parse().ok();
        } else if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
            head.chunked = true;
        }
        head.headers.push((name, h.value.to_vec()));
    }
    Ok(Some(head))
}

impl Http {
    pub fn new(host: &str, path: &str, headers: &[String]) -> Result<Http, String> {
        check_path(path)?;
        Ok(Http {
            host: host.to_string(),
            path: path.to_string(),
            headers: header_lines(headers)?,
        })
    }
}

impl Dialect for Http {
    fn opening(&self, k: u64, out: &mut Vec<u8>) {
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: c1m\r\n{}\r\n",
            with_n(&self.path, k),
            self.host,
            with_n(&self.headers, k)
        );
        out.extend_from_slice(req.as_bytes());
    }

    fn verify(&self, _k: u64, _hold: bool, input: &[u8]) -> Verdict {
        let head = match parse_head(input) {
            Ok(Some(h)) => h,
            Ok(None) => return Verdict::More,
            Err(r) => return Verdict::Fail(r),
        };
        let body = &input[head.len..];
        let complete = if head.chunked {
            find(body, b"0\r\n\r\n").is_some()
        } else {
            body.len() >= head.content_length.unwrap_or(0)
        };
        if !complete {
            return if input.len() >= MAX_REPLY {
                Verdict::Fail(Refusal::new(
                    ProtoFail::Mismatch,
                    format!("HTTP {} body longer than {MAX_REPLY} bytes", head.code),
                ))
            } else {
                Verdict::More
            };
        }
        if (200..400).contains(&head.code) {
            return Verdict::Done;
        }
        Verdict::Fail(Refusal::new(
            ProtoFail::Refused,
            format!(
                "GET {} answered HTTP {} {}",
                self.path, head.code, head.reason
            ),
        ))
    }

    fn keepalive(&self, k: u64, out: &mut Vec<u8>) {
        self.opening(k, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http() -> Http {
        Http::new("example", "/n/{n}", &["X-Test: {n}".to_string()]).unwrap()
    }

    #[test]
    fn the_request_is_a_keep_alive_get() {
        let mut out = Vec::new();
        http().opening(5, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /n/5 HTTP/1.1\r\nHost: example\r\nUser-Agent: c1m\r\nX-Test: 5\r\n\r\n"
        );
        assert!(Http::new("h", "x", &[]).unwrap_err().contains("--path"));
        assert!(
            Http::new("h", "/", &["nocolon".into()])
                .unwrap_err()
                .contains("--header")
        );
    }

    #[test]
    fn status_and_body_decide() {
        let h = http();
        assert_eq!(h.verify(0, false, b""), Verdict::More);
        assert_eq!(
            h.verify(0, false, b"HTTP/1.1 200 OK\r\nContent-Le"),
            Verdict::More
        );
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        assert_eq!(h.verify(0, false, &ok[..ok.len() - 1]), Verdict::More);
        assert_eq!(h.verify(0, false, ok), Verdict::Done);
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        assert_eq!(h.verify(0, false, chunked), Verdict::Done);
        let nf = h.verify(
            0,
            false,
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(
            matches!(&nf, Verdict::Fail(r) if r.kind == ProtoFail::Refused && r.detail.contains("404 Not Found")),
            "{nf:?}"
        );
        // Redis's answer to a GET: not HTTP.
        let v = h.verify(0, false, b"-ERR unknown command 'GET'\r\n");
        assert!(
            matches!(&v, Verdict::Fail(r) if r.kind == ProtoFail::Mismatch),
            "{v:?}"
        );
    }
}
