//! One connection's state machine: connecting, sending its line
//! `Hello Server: client --> k\n`, awaiting the echo (checked byte by byte
//! against what was sent), then open; during the hold a message round
//! takes an open connection through sending and awaiting again. The
//! machine does the socket I/O and says what happened; the engine does the
//! counting, so other protocols can reuse the loop with another machine.
//!
//! Other protocols (`flood::proto`) reuse the same states and the raw
//! I/O below ([`Conn::write_from`], [`Conn::read_raw`]); their bytes and
//! checks come from the run's dialect, in the engine's `speak` module.
//!
//! Every exchange is timed from its own start: `since` is the instant just
//! before this connection's `connect()` while it connects, and the instant
//! its hold message was sent while that message is out. With `--fast-open`
//! and the server's cookie, the socket is writable before any handshake
//! (the line goes in the SYN), so "connected" is then nearly at once; the
//! echo still verifies the connection.
use std::io::{ErrorKind, Read, Write};
use std::time::Instant;

use mio::net::TcpStream;

const PREFIX: &[u8] = b"Hello Server: client --> ";
/// Longest line: the prefix, 20 digits of a u64 and the newline.
pub const MAX_MSG: usize = 48;

/// The line connection `k` sends; returns its length in `buf`.
pub fn message(k: u64, buf: &mut [u8; MAX_MSG]) -> usize {
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut v = k;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut len = PREFIX.len();
    for i in (0..n).rev() {
        buf[len] = digits[i];
        len += 1;
    }
    buf[len] = b'\n';
    len + 1
}

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum St {
    /// connect() issued, handshake not done.
    Connecting,
    /// Writing the first line.
    Sending,
    /// Waiting for the first line's echo.
    Awaiting,
    /// Verified and idle.
    Open,
    /// Writing a hold message.
    MsgSending,
    /// Waiting for a hold message's echo.
    MsgAwait,
}

impl St {
    /// Has this connection's first echo come back?
    pub fn verified(self) -> bool {
        matches!(self, St::Open | St::MsgSending | St::MsgAwait)
    }
}

/// One connection (or attempt) in the engine's slab.
pub struct Conn {
    /// `None` once closed; the slot then waits for reuse.
    pub stream: Option<TcpStream>,
    /// Its number: the line it sends says `client --> k`.
    pub k: u64,
    /// Index of its path in the engine's paths.
    pub path: u32,
    pub st: St,
    /// Bytes of the current line written and echoed so far.
    wr: u8,
    rd: u8,
    /// Bumped each time the slot is reused, so a stale deadline is ignored.
    pub epoch: u32,
    /// Start of the exchange being timed (see the module comment).
    pub since: Instant,
}

/// What a readiness event says about a connecting socket.
#[derive(Debug)]
pub enum Connect {
    /// Not done yet (a spurious wake-up).
    Waiting,
    /// The handshake is done: the line is next.
    Connected,
    /// connect() failed with this error (SO_ERROR).
    Failed(std::io::Error),
    /// The socket reports an error but SO_ERROR holds none.
    FailedWithoutCode,
}

/// What one read() on a connection amounted to.
#[derive(Debug)]
pub enum Received {
    /// Nothing to read (EAGAIN).
    Nothing,
    /// Bytes that matched so far (or unsolicited bytes on an idle
    /// connection, drained).
    Partial,
    /// The first echo is complete: the connection is verified.
    Verified,
    /// A hold message's echo is complete.
    Answered,
    /// A verified connection echoed something else; it stays open.
    WrongHoldEcho,
    /// The attempt's echo came back different.
    Mismatch,
    /// The peer closed the connection (orderly).
    Eof,
    /// read() failed.
    Failed(std::io::Error),
}

impl Conn {
    /// A connection whose `connect()` was issued at `since`.
    pub fn connecting(stream: TcpStream, k: u64, path: u32, since: Instant) -> Conn {
        Conn {
            stream: Some(stream),
            k,
            path,
            st: St::Connecting,
            wr: 0,
            rd: 0,
            epoch: 0,
            since,
        }
    }

    /// A readiness event on a connecting socket. SO_ERROR is read only
    /// when the event carries an error: a socket reported writable without
    /// EPOLLERR has finished its handshake (a failed connect always sets
    /// the error flag), which saves one getsockopt() per connection.
    pub fn on_connect_event(&mut self, writable: bool, error: bool) -> Connect {
        if error && let Some(s) = self.stream.as_ref() {
            match s.take_error() {
                Ok(Some(e)) | Err(e) => return Connect::Failed(e),
                Ok(None) => {}
            }
        }
        if !writable {
            return if error {
                Connect::FailedWithoutCode
            } else {
                Connect::Waiting
            };
        }
        self.st = St::Sending;
        self.wr = 0;
        self.rd = 0;
        Connect::Connected
    }

    /// Is a line being written?
    pub fn sending(&self) -> bool {
        matches!(self.st, St::Sending | St::MsgSending)
    }

    /// Open, verified and not busy with a message.
    pub fn idle(&self) -> bool {
        self.stream.is_some() && self.st == St::Open
    }

    /// Start a hold message on an open connection, timed from `now`;
    /// false when it is closed or still busy with the previous one.
    pub fn start_message(&mut self, now: Instant) -> bool {
        if !self.idle() {
            return false;
        }
        self.st = St::MsgSending;
        self.wr = 0;
        self.rd = 0;
        self.since = now;
        true
    }

    /// Write what is left of the line; adds the bytes written to
    /// `bytes_out`. Ok when written or when the socket is full (the rest
    /// goes at the next writable event).
    pub fn send(&mut self, bytes_out: &mut u64) -> std::io::Result<()> {
        let mut buf = [0u8; MAX_MSG];
        let len = message(self.k, &mut buf);
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        while (self.wr as usize) < len {
            match stream.write(&buf[self.wr as usize..len]) {
                Ok(0) => break,
                Ok(n) => {
                    self.wr += n as u8;
                    *bytes_out += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // --fast-open: the SYN went without the line (no room for
                // it); the line follows when the handshake is done.
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        if self.wr as usize == len {
            self.st = if self.st == St::Sending {
                St::Awaiting
            } else {
                St::MsgAwait
            };
        }
        Ok(())
    }

    /// The opening line is out on a socket that held its handshake's ACK
    /// for it: have what comes back acknowledged at once
    /// ([`super::socket::ack_replies_at_once`]).
    pub fn ack_replies_at_once(&self) {
        if let Some(s) = self.stream.as_ref() {
            super::socket::ack_replies_at_once(s);
        }
    }

    /// Write `bytes[from..]` (another protocol's request); returns how
    /// far it got: `bytes.len()` when all is written, less when the socket
    /// is full (the rest goes at the next writable event).
    pub fn write_from(
        &mut self,
        bytes: &[u8],
        mut from: usize,
        bytes_out: &mut u64,
    ) -> std::io::Result<usize> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(from);
        };
        while from < bytes.len() {
            match stream.write(&bytes[from..]) {
                Ok(0) => break,
                Ok(n) => {
                    from += n;
                    *bytes_out += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(from)
    }

    /// The request is written: await its reply.
    pub fn sent(&mut self) {
        self.st = match self.st {
            St::Sending => St::Awaiting,
            St::MsgSending => St::MsgAwait,
            st => st,
        };
    }

    /// The reply came: open and idle again; true when it was the first
    /// (the connection is now verified).
    pub fn replied(&mut self) -> bool {
        let first = !self.st.verified();
        self.st = St::Open;
        first
    }

    /// One read() into `scratch`, unchecked (another protocol's reply):
    /// `Partial` with the byte count when data came.
    pub fn read_raw(&mut self, scratch: &mut [u8]) -> (Received, usize) {
        let Some(stream) = self.stream.as_mut() else {
            return (Received::Nothing, 0);
        };
        loop {
            match stream.read(scratch) {
                Ok(0) => return (Received::Eof, 0),
                Ok(n) => return (Received::Partial, n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return (Received::Nothing, 0),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return (Received::Failed(e), 0),
            }
        }
    }

    /// One read() into `scratch`, checked against the line. Returns what
    /// it amounted to and how many bytes it read (0 unless data came).
    pub fn receive(&mut self, scratch: &mut [u8]) -> (Received, usize) {
        let Some(stream) = self.stream.as_mut() else {
            return (Received::Nothing, 0);
        };
        let n = loop {
            match stream.read(scratch) {
                Ok(0) => return (Received::Eof, 0),
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return (Received::Nothing, 0),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return (Received::Failed(e), 0),
            }
        };
        if !matches!(
            self.st,
            St::Awaiting | St::MsgAwait | St::Sending | St::MsgSending
        ) {
            return (Received::Partial, n); // unsolicited bytes on an idle connection
        }
        let mut expected = [0u8; MAX_MSG];
        let len = message(self.k, &mut expected);
        let from = self.rd as usize;
        if from + n > len || scratch[..n] != expected[from..from + n] {
            if self.st.verified() {
                self.st = St::Open;
                return (Received::WrongHoldEcho, n);
            }
            return (Received::Mismatch, n);
        }
        self.rd += n as u8;
        if self.rd as usize != len {
            return (Received::Partial, n);
        }
        let was = self.st;
        self.st = St::Open;
        self.rd = 0;
        self.wr = 0;
        if matches!(was, St::MsgAwait | St::MsgSending) {
            (Received::Answered, n)
        } else {
            (Received::Verified, n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_the_seed_line() {
        let mut b = [0u8; MAX_MSG];
        let n = message(0, &mut b);
        assert_eq!(&b[..n], b"Hello Server: client --> 0\n");
        let n = message(290998, &mut b);
        assert_eq!(&b[..n], b"Hello Server: client --> 290998\n");
        let n = message(u64::MAX, &mut b);
        assert_eq!(
            &b[..n],
            format!("Hello Server: client --> {}\n", u64::MAX).as_bytes()
        );
    }

    /// A connected pair: the machine's stream and the peer's end.
    fn pair() -> (Conn, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let client = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        client.set_nonblocking(true).expect("nonblocking");
        let (peer, _) = l.accept().expect("accept");
        let c = Conn::connecting(TcpStream::from_std(client), 7, 0, Instant::now());
        (c, peer)
    }

    /// Read until the machine reports something other than `Nothing`
    /// (the peer's bytes may take a moment on a loaded machine).
    fn receive_some(c: &mut Conn) -> Received {
        let mut scratch = [0u8; 4096];
        for _ in 0..2000 {
            match c.receive(&mut scratch).0 {
                Received::Nothing => std::thread::sleep(std::time::Duration::from_millis(1)),
                r => return r,
            }
        }
        Received::Nothing
    }

    #[test]
    fn a_connection_is_verified_by_its_echo_and_answers_hold_messages() {
        use std::io::{BufRead, BufReader};
        let (mut c, peer) = pair();
        let mut from_client = BufReader::new(&peer);
        let mut next_line = || {
            let mut line = Vec::new();
            from_client.read_until(b'\n', &mut line).expect("peer read");
            line
        };
        assert!(matches!(
            c.on_connect_event(true, false),
            Connect::Connected
        ));
        let mut out = 0;
        c.send(&mut out).expect("send");
        assert_eq!((c.st, out), (St::Awaiting, 27));
        let line = next_line();
        assert_eq!(line, b"Hello Server: client --> 7\n");
        // Half the echo, then the rest: verified only at the end.
        (&peer).write_all(&line[..10]).expect("peer write");
        assert!(matches!(receive_some(&mut c), Received::Partial));
        assert!(!c.st.verified());
        (&peer).write_all(&line[10..]).expect("peer write");
        assert!(matches!(receive_some(&mut c), Received::Verified));
        assert_eq!(c.st, St::Open);
        // A hold message: started once, timed from its send, answered by
        // its echo.
        let sent = Instant::now();
        assert!(c.start_message(sent));
        assert!(!c.start_message(sent), "a message is already out");
        assert_eq!(c.since, sent);
        c.send(&mut out).expect("send");
        assert_eq!(c.st, St::MsgAwait);
        assert_eq!(next_line(), line);
        (&peer).write_all(&line).expect("peer write");
        assert!(matches!(receive_some(&mut c), Received::Answered));
        // A wrong echo on a verified connection keeps it open.
        assert!(c.start_message(Instant::now()));
        c.send(&mut out).expect("send");
        assert_eq!(next_line(), line);
        (&peer)
            .write_all(b"Hello Server: client --> 8\n")
            .expect("peer write");
        assert!(matches!(receive_some(&mut c), Received::WrongHoldEcho));
        assert_eq!(c.st, St::Open);
        drop(peer);
        assert!(matches!(receive_some(&mut c), Received::Eof));
    }

    #[test]
    fn a_wrong_first_echo_fails_the_attempt() {
        let (mut c, peer) = pair();
        assert!(matches!(
            c.on_connect_event(true, false),
            Connect::Connected
        ));
        let mut out = 0;
        c.send(&mut out).expect("send");
        (&peer)
            .write_all(b"Hello Server: client --> 9\n")
            .expect("peer write");
        assert!(matches!(receive_some(&mut c), Received::Mismatch));
        assert!(!c.st.verified());
    }

    #[test]
    fn a_connect_event_without_writability_waits() {
        let (mut c, _peer) = pair();
        assert!(matches!(c.on_connect_event(false, false), Connect::Waiting));
        assert_eq!(c.st, St::Connecting);
        assert!(matches!(
            c.on_connect_event(false, true),
            Connect::FailedWithoutCode
        ));
    }
}
