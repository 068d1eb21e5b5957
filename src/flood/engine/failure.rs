//! The failure keys of flood: why one attempt or one verified connection
//! ended, as a closed enum instead of strings. A key is what the counters,
//! the per-interval notes and the path retirement group failures by; its
//! name (`as_str`) is the string the JSON lines and summaries have always
//! carried ("ECONNREFUSED", "ECHO_TIMEOUT", "EOF", ...).
use nix::errno::Errno;

use crate::catalogue::FailureId;
use crate::flood::proto::ProtoFail;

/// Why an attempt failed or a verified connection was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKey {
    /// A call failed with one of the errnos flood tells apart (see
    /// [`FailKey::from_errno`]); a connect that `--connect-timeout` gave
    /// up is `Errno(ETIMEDOUT)` as well.
    Errno(Errno),
    /// An errno outside that set ("EOTHER").
    OtherErrno,
    /// Connected, but the echo did not come back in time.
    EchoTimeout,
    /// The server closed a verified connection.
    Eof,
    /// The server closed the connection before echoing.
    EofBeforeEcho,
    /// The echo came back different.
    EchoMismatch,
    /// A protocol's reply did not verify (see `flood::proto`).
    Protocol(ProtoFail),
}

/// The errnos that get a key of their own.
const NAMED: [Errno; 18] = [
    Errno::EADDRNOTAVAIL,
    Errno::EAGAIN,
    Errno::ECONNREFUSED,
    Errno::ETIMEDOUT,
    Errno::ECONNRESET,
    Errno::EPIPE,
    Errno::EMFILE,
    Errno::ENFILE,
    Errno::ENOBUFS,
    Errno::ENOMEM,
    Errno::ENETUNREACH,
    Errno::EHOSTUNREACH,
    Errno::EADDRINUSE,
    Errno::ECONNABORTED,
    Errno::ENOSPC,
    Errno::EACCES,
    Errno::EPERM,
    Errno::EINVAL,
];

impl FailKey {
    /// The key of a failed call's errno.
    pub fn from_errno(errno: i32) -> FailKey {
        let e = Errno::from_raw(errno);
        if NAMED.contains(&e) {
            FailKey::Errno(e)
        } else {
            FailKey::OtherErrno
        }
    }

    /// The name counters and notes carry.
    pub fn as_str(self) -> &'static str {
        match self {
            FailKey::Errno(e) => match e {
                Errno::EADDRNOTAVAIL => "EADDRNOTAVAIL",
                Errno::EAGAIN => "EAGAIN",
                Errno::ECONNREFUSED => "ECONNREFUSED",
                Errno::ETIMEDOUT => "ETIMEDOUT",
                Errno::ECONNRESET => "ECONNRESET",
                Errno::EPIPE => "EPIPE",
                Errno::EMFILE => "EMFILE",
                Errno::ENFILE => "ENFILE",
                Errno::ENOBUFS => "ENOBUFS",
                Errno::ENOMEM => "ENOMEM",
                Errno::ENETUNREACH => "ENETUNREACH",
                Errno::EHOSTUNREACH => "EHOSTUNREACH",
                Errno::EADDRINUSE => "EADDRINUSE",
                Errno::ECONNABORTED => "ECONNABORTED",
                Errno::ENOSPC => "ENOSPC",
                Errno::EACCES => "EACCES",
                Errno::EPERM => "EPERM",
                Errno::EINVAL => "EINVAL",
                _ => "EOTHER",
            },
            FailKey::OtherErrno => "EOTHER",
            FailKey::EchoTimeout => "ECHO_TIMEOUT",
            FailKey::Eof => "EOF",
            FailKey::EofBeforeEcho => "EOF_BEFORE_ECHO",
            FailKey::EchoMismatch => "ECHO_MISMATCH",
            FailKey::Protocol(ProtoFail::ConnectionLimit) => "SERVER_FULL",
            FailKey::Protocol(ProtoFail::Refused) => "PROTO_REFUSED",
            FailKey::Protocol(ProtoFail::Mismatch) => "PROTO_MISMATCH",
        }
    }

    /// The errno this key stands for, if it is one.
    pub fn errno(self) -> Option<i32> {
        match self {
            FailKey::Errno(e) => Some(e as i32),
            _ => None,
        }
    }

    /// A timeout: on a path that works this is congestion (a full accept
    /// queue answers SYNs late), not a dead path.
    pub fn is_timeout(self) -> bool {
        matches!(
            self,
            FailKey::Errno(Errno::ETIMEDOUT) | FailKey::EchoTimeout
        )
    }

    /// Consecutive failures of this key after which a path is given up:
    /// few for the errnos that say the path itself is unusable.
    pub fn retire_after(self) -> u32 {
        match self {
            FailKey::Errno(
                Errno::EADDRNOTAVAIL
                | Errno::EAGAIN
                | Errno::ECONNREFUSED
                | Errno::ENETUNREACH
                | Errno::EHOSTUNREACH,
            ) => 8,
            // A server that speaks another protocol, or refuses this
            // request, answers every attempt the same way.
            FailKey::Protocol(ProtoFail::Mismatch | ProtoFail::Refused) => 8,
            _ => 64,
        }
    }

    /// The catalogue id: flood's own keys by meaning, errnos through
    /// [`FailureId::from_errno`] for the call that failed.
    pub fn failure(self, call: &str, errno: Option<i32>) -> Option<FailureId> {
        match self {
            FailKey::Errno(Errno::ETIMEDOUT) | FailKey::EchoTimeout => {
                Some(FailureId::ConnectTimeout)
            }
            FailKey::Eof | FailKey::EofBeforeEcho => Some(FailureId::PeerDisconnect),
            FailKey::EchoMismatch => None,
            FailKey::Protocol(ProtoFail::ConnectionLimit) => Some(FailureId::ServerConnectionLimit),
            FailKey::Protocol(ProtoFail::Mismatch) => Some(FailureId::ProtocolMismatch),
            FailKey::Protocol(ProtoFail::Refused) => Some(FailureId::ProtocolRefused),
            FailKey::Errno(_) | FailKey::OtherErrno => {
                errno.and_then(|e| FailureId::from_errno(call, e))
            }
        }
    }
}

/// Keys sort by name, the order notes have always come in.
impl Ord for FailKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str()
            .cmp(other.as_str())
            .then_with(|| self.errno().cmp(&other.errno()))
    }
}

impl PartialOrd for FailKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The errno of a failed call (EIO when the error carries none).
pub fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl std::fmt::Display for FailKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_keep_their_names_and_others_share_one() {
        assert_eq!(
            FailKey::from_errno(libc::ECONNREFUSED).as_str(),
            "ECONNREFUSED"
        );
        assert_eq!(FailKey::from_errno(libc::EMFILE).as_str(), "EMFILE");
        assert_eq!(FailKey::from_errno(libc::ENOTSOCK), FailKey::OtherErrno);
        assert_eq!(FailKey::from_errno(libc::ENOTSOCK).as_str(), "EOTHER");
        for e in NAMED {
            let k = FailKey::from_errno(e as i32);
            assert_eq!(k.as_str(), format!("{e:?}"), "{e:?}");
            assert_eq!(k.errno(), Some(e as i32));
        }
        assert_eq!(FailKey::Eof.errno(), None);
    }

    #[test]
    fn path_errors_retire_a_path_sooner_than_the_rest() {
        assert_eq!(FailKey::from_errno(libc::EADDRNOTAVAIL).retire_after(), 8);
        assert_eq!(FailKey::from_errno(libc::ECONNREFUSED).retire_after(), 8);
        assert_eq!(FailKey::from_errno(libc::ETIMEDOUT).retire_after(), 64);
        assert_eq!(FailKey::EchoMismatch.retire_after(), 64);
        assert!(FailKey::EchoTimeout.is_timeout());
        assert!(FailKey::from_errno(libc::ETIMEDOUT).is_timeout());
        assert!(!FailKey::Eof.is_timeout());
    }

    #[test]
    fn keys_map_to_the_catalogue() {
        let t = FailKey::from_errno(libc::ETIMEDOUT);
        assert_eq!(t.failure("recv", None), Some(FailureId::ConnectTimeout));
        assert_eq!(
            FailKey::EchoTimeout.failure("recv", Some(libc::ETIMEDOUT)),
            Some(FailureId::ConnectTimeout)
        );
        assert_eq!(
            FailKey::EofBeforeEcho.failure("recv", None),
            Some(FailureId::PeerDisconnect)
        );
        assert_eq!(FailKey::EchoMismatch.failure("recv", None), None);
        assert_eq!(
            FailKey::from_errno(libc::EADDRNOTAVAIL).failure("connect", Some(libc::EADDRNOTAVAIL)),
            Some(FailureId::EphemeralPortsExhausted)
        );
        assert_eq!(
            FailKey::from_errno(libc::EMFILE).failure("socket", Some(libc::EMFILE)),
            Some(FailureId::FdLimit)
        );
    }
}
