//! The sysctl tree: reading and writing kernel settings under `/proc/sys`
//! (this thread's network namespace for `net.*` keys), with errors that say
//! which key, which file and which errno. The root can be redirected with
//! `C1M_SYSCTL_ROOT` ([`Sysctl::from_env`]) so that tests exercise doctor's
//! whole save/apply/verify/rollback path on a fake tree in a temporary
//! directory; [`Sysctl::proc`] is always the real tree, for the reads serve,
//! flood and the lab make of their own namespace (somaxconn, the port
//! range, file-max) and the writes the lab makes inside a private one.
//! The tree's root is [`procfs::SYSCTL_ROOT`], the one `/proc` path list
//! being in [`crate::sys::procfs`].
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::procfs;
use crate::util::errno_name;

/// Why a key could not be read or written.
#[derive(Debug, Error)]
pub enum SysctlError {
    #[error(
        "'{key}' is not a sysctl name (dot-separated parts of letters, digits, '_' and '-'; no '/', no empty part)"
    )]
    InvalidKey { key: String },
    #[error(
        "{key}: absent ({path} does not exist: its module is not loaded, or this network namespace does not have it)"
    )]
    Absent { key: String, path: String },
    #[error("{key}: cannot {op} {path}: {errno} ({source})")]
    Io {
        key: String,
        path: String,
        op: &'static str,
        errno: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{key}: wrote '{wrote}' to {path} but it reads back '{read}' (the kernel rejected or adjusted it)"
    )]
    Verify {
        key: String,
        path: String,
        wrote: String,
        read: String,
    },
}

/// Whether `key` follows the sysctl-name grammar: two or more non-empty
/// dot-separated parts of ASCII letters, digits, `_` and `-`. Checked before
/// any path is built from a key, so a key read from a file can never name
/// a file outside the sysctl tree (`/etc/passwd`, `..`).
pub fn valid_key(key: &str) -> bool {
    key.split('.').count() >= 2
        && key.split('.').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        })
}

fn check_key(key: &str) -> Result<(), SysctlError> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(SysctlError::InvalidKey {
            key: key.to_string(),
        })
    }
}

/// Whether a key can be written, judged before writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writable {
    Yes,
    /// The file exists but has no write permission bit (e.g.
    /// `nf_conntrack_max` in a child network namespace).
    ReadOnlyKey,
    /// The whole tree is mounted read-only (containers).
    ReadOnlyMount,
    Absent,
}

/// A `/proc/sys`-like tree.
#[derive(Debug, Clone)]
pub struct Sysctl {
    root: PathBuf,
}

impl Default for Sysctl {
    fn default() -> Self {
        Sysctl::from_env()
    }
}

impl Sysctl {
    /// The tree at `root` (a fake one in tests).
    pub fn new(root: impl Into<PathBuf>) -> Sysctl {
        Sysctl { root: root.into() }
    }

    /// `$C1M_SYSCTL_ROOT` if set, else `/proc/sys`.
    pub fn from_env() -> Sysctl {
        Sysctl::new(
            std::env::var_os("C1M_SYSCTL_ROOT").unwrap_or_else(|| procfs::SYSCTL_ROOT.into()),
        )
    }

    /// The real `/proc/sys` of this thread's network namespace, whatever
    /// `C1M_SYSCTL_ROOT` says.
    pub fn proc() -> Sysctl {
        Sysctl::new(procfs::SYSCTL_ROOT)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this is the real `/proc/sys`.
    pub fn is_real(&self) -> bool {
        self.root == Path::new(procfs::SYSCTL_ROOT)
    }

    /// The file of a key: dots become slashes.
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key.replace('.', "/"))
    }

    /// The value of a key, trimmed; `Absent` if the file does not exist.
    pub fn read(&self, key: &str) -> Result<String, SysctlError> {
        check_key(key)?;
        let path = self.path(key);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(s.trim().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SysctlError::Absent {
                key: key.to_string(),
                path: path.display().to_string(),
            }),
            Err(e) => Err(io_err(key, &path, "read", e)),
        }
    }

    /// A key's value as whitespace-separated numbers, if it is present and
    /// numeric.
    pub fn read_numbers(&self, key: &str) -> Option<Vec<u64>> {
        self.read(key)
            .ok()?
            .split_whitespace()
            .map(|t| t.parse::<u64>().ok())
            .collect()
    }

    /// A key's single numeric value, if present.
    pub fn read_u64(&self, key: &str) -> Option<u64> {
        self.read_numbers(key)?.first().copied()
    }

    /// Write a value (one write(2), like `sysctl -w`).
    pub fn write(&self, key: &str, value: &str) -> Result<(), SysctlError> {
        check_key(key)?;
        let path = self.path(key);
        if !path.exists() {
            return Err(SysctlError::Absent {
                key: key.to_string(),
                path: path.display().to_string(),
            });
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| io_err(key, &path, "open for writing", e))?;
        f.write_all(format!("{value}\n").as_bytes())
            .map_err(|e| io_err(key, &path, "write", e))?;
        Ok(())
    }

    /// Write, then read back and compare (whitespace-insensitive).
    pub fn write_verified(&self, key: &str, value: &str) -> Result<(), SysctlError> {
        self.write(key, value)?;
        let read = self.read(key)?;
        if same_value(&read, value) {
            Ok(())
        } else {
            Err(SysctlError::Verify {
                key: key.to_string(),
                path: self.path(key).display().to_string(),
                wrote: value.to_string(),
                read,
            })
        }
    }

    /// Judge, before writing, whether a key can be written.
    pub fn writable(&self, key: &str) -> Writable {
        if !valid_key(key) {
            return Writable::Absent;
        }
        let path = self.path(key);
        let Ok(meta) = std::fs::metadata(&path) else {
            return Writable::Absent;
        };
        if mount_read_only(&self.root) {
            return Writable::ReadOnlyMount;
        }
        if meta.is_file() && meta.permissions().mode() & 0o222 == 0 {
            return Writable::ReadOnlyKey;
        }
        Writable::Yes
    }

    /// Whether the tree is mounted read-only.
    pub fn tree_writable(&self) -> bool {
        !mount_read_only(&self.root)
    }
}

/// A kernel value with its blanks (tabs) squashed to single spaces, for
/// display.
pub fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Two kernel values are the same if their blank-separated words are.
pub fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

fn io_err(key: &str, path: &Path, op: &'static str, e: std::io::Error) -> SysctlError {
    SysctlError::Io {
        key: key.to_string(),
        path: path.display().to_string(),
        op,
        errno: e
            .raw_os_error()
            .map(errno_name)
            .unwrap_or_else(|| "I/O error".into()),
        source: e,
    }
}

fn mount_read_only(path: &Path) -> bool {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        .unwrap_or(false)
}

impl From<SysctlError> for std::io::Error {
    /// The same kind as the failed call (NotFound for an absent key,
    /// InvalidData for a value the kernel did not keep), with the message.
    fn from(e: SysctlError) -> std::io::Error {
        let kind = match &e {
            SysctlError::InvalidKey { .. } => std::io::ErrorKind::InvalidInput,
            SysctlError::Absent { .. } => std::io::ErrorKind::NotFound,
            SysctlError::Io { source, .. } => source.kind(),
            SysctlError::Verify { .. } => std::io::ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, e.to_string())
    }
}
