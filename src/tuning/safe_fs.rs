//! Files that root writes on the host's behalf (doctor's and the lab's
//! state, the `--persist` files in /etc), opened so that no other local
//! user can steer what is read or written.
//!
//! - A directory is opened once, without following a symlink
//!   (`O_DIRECTORY|O_NOFOLLOW`), and checked with `fstat`: a real directory,
//!   owned by root (or by this process's user), not writable by group or
//!   others. Every file below it is then reached with `openat` from that
//!   descriptor, so swapping a path component afterwards changes nothing.
//! - A file is read with `O_NOFOLLOW` (a symlink is refused, not followed)
//!   and, for state, refused unless it is a regular file owned by root and
//!   not writable by group or others.
//! - A file is written atomically: a temporary file with a random name
//!   created with `O_CREAT|O_EXCL|O_NOFOLLOW`, written, fsynced, renamed over
//!   the target (which replaces a planted symlink instead of following it),
//!   then the directory fsynced so the rename survives a crash.
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, Flock, FlockArg, OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, mkdirat};
use nix::unistd::{UnlinkatFlags, fsync, unlinkat};

/// A directory held open by descriptor, checked to be trusted.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Whether a file or directory's owner and mode can be trusted: owned by
/// root or by this process's effective user, and not writable by group or
/// others.
fn check_trusted(st: &FileStat, path: &Path, what: &str) -> Result<()> {
    let euid = nix::unistd::geteuid().as_raw();
    if st.st_uid != 0 && st.st_uid != euid {
        bail!(
            "refusing {what} {}: it is owned by uid {}, not by root (another user could have planted it)",
            path.display(),
            st.st_uid
        );
    }
    if st.st_mode & 0o022 != 0 {
        bail!(
            "refusing {what} {}: its mode {:04o} lets group or others write it (another user could have changed it); fix with chmod go-w",
            path.display(),
            st.st_mode & 0o7777
        );
    }
    Ok(())
}

fn is_kind(st: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == kind
}

/// Open a directory without following a symlink at its last component.
fn open_dir(path: &Path) -> nix::Result<OwnedFd> {
    openat(
        AT_FDCWD,
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

impl Dir {
    /// Open the directory at `path`, creating it (and its missing parents)
    /// with `mode` when absent; refuse it when it is a symlink, not a
    /// directory, not owned by root, or writable by group or others.
    pub fn open(path: &Path, mode: u32) -> Result<Dir> {
        let fd = match open_dir(path) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create directory {}", parent.display()))?;
                }
                // mkdir is exclusive: it never reuses what another user
                // created in the meantime (that is checked below instead).
                match mkdirat(AT_FDCWD, path, Mode::from_bits_truncate(mode)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("cannot create directory {}", path.display())
                        });
                    }
                }
                open_dir(path).map_err(|e| dir_error(path, e))?
            }
            Err(e) => return Err(dir_error(path, e)),
        };
        let st = fstat(&fd).with_context(|| format!("cannot stat {}", path.display()))?;
        check_trusted(&st, path, "directory")?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Open the existing directory at `path` with the same checks as
    /// [`Dir::open`]; None when it does not exist.
    pub fn open_existing(path: &Path) -> Result<Option<Dir>> {
        let fd = match open_dir(path) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(dir_error(path, e)),
        };
        let st = fstat(&fd).with_context(|| format!("cannot stat {}", path.display()))?;
        check_trusted(&st, path, "directory")?;
        Ok(Some(Dir {
            fd,
            path: path.to_path_buf(),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The full path of `name` in this directory, for messages.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Open `name` for reading without following a symlink; None when it
    /// does not exist. Refuses anything but a regular file.
    fn open_file(&self, name: &str) -> Result<Option<(std::fs::File, FileStat)>> {
        let path = self.join(name);
        let fd = match openat(
            self.fd.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => bail!(
                "refusing {}: it is a symbolic link (c1m never follows one here)",
                path.display()
            ),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot open {}", path.display()));
            }
        };
        let st = fstat(&fd).with_context(|| format!("cannot stat {}", path.display()))?;
        if !is_kind(&st, SFlag::S_IFREG) {
            bail!("refusing {}: it is not a regular file", path.display());
        }
        Ok(Some((std::fs::File::from(fd), st)))
    }

    /// The bytes of `name` (no symlink followed), or None if absent.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some((mut f, _)) = self.open_file(name)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .with_context(|| format!("cannot read {}", self.join(name).display()))?;
        Ok(Some(buf))
    }

    /// Like [`Dir::read`], and also refuses a file that is not owned by
    /// root or that group or others may write.
    pub fn read_trusted(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some((mut f, st)) = self.open_file(name)? else {
            return Ok(None);
        };
        check_trusted(&st, &self.join(name), "file")?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .with_context(|| format!("cannot read {}", self.join(name).display()))?;
        Ok(Some(buf))
    }

    /// Replace `name` with `bytes` atomically (see the module docs).
    pub fn write_atomic(&self, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
        let target = self.join(name);
        let (tmp, fd) = self.create_temp(name, mode)?;
        let mut f = std::fs::File::from(fd);
        let written = f
            .write_all(bytes)
            .and_then(|_| f.sync_all())
            .with_context(|| format!("cannot write {}", self.join(&tmp).display()));
        drop(f);
        let renamed = written.and_then(|_| {
            renameat(self.fd.as_fd(), tmp.as_str(), self.fd.as_fd(), name).with_context(|| {
                format!(
                    "cannot rename {} to {}",
                    self.join(&tmp).display(),
                    target.display()
                )
            })
        });
        if let Err(e) = renamed {
            let _ = unlinkat(self.fd.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        fsync(self.fd.as_fd())
            .with_context(|| format!("cannot fsync directory {}", self.path.display()))
    }

    /// A new temporary file next to `name`, with a random name, created
    /// exclusively and never through a symlink.
    fn create_temp(&self, name: &str, mode: u32) -> Result<(String, OwnedFd)> {
        for _ in 0..16 {
            let tmp = format!(".{name}.{:016x}.tmp", random_u64());
            match openat(
                self.fd.as_fd(),
                tmp.as_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(mode),
            ) {
                Ok(fd) => return Ok((tmp, fd)),
                Err(Errno::EEXIST) => continue,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot create a temporary file in {}", self.path.display())
                    });
                }
            }
        }
        bail!(
            "cannot create a temporary file in {}: 16 random names were all taken",
            self.path.display()
        )
    }

    /// Take an exclusive lock on `name` (created 0600 if absent, never
    /// through a symlink), without waiting: None when another process
    /// holds it. The kernel drops the lock when the holder dies, however it
    /// dies.
    pub fn try_lock(&self, name: &str) -> Result<Option<Flock<OwnedFd>>> {
        let fd = openat(
            self.fd.as_fd(),
            name,
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .with_context(|| format!("cannot open lock file {}", self.join(name).display()))?;
        match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(lock)),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => {
                Err(e).with_context(|| format!("cannot lock {}", self.join(name).display()))
            }
        }
    }

    /// Remove `name` (never following a symlink); false if it was absent.
    pub fn remove(&self, name: &str) -> Result<bool> {
        match unlinkat(self.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => {
                fsync(self.fd.as_fd())
                    .with_context(|| format!("cannot fsync directory {}", self.path.display()))?;
                Ok(true)
            }
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => {
                Err(e).with_context(|| format!("cannot remove {}", self.join(name).display()))
            }
        }
    }
}

fn dir_error(path: &Path, e: Errno) -> anyhow::Error {
    let symlink = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    match e {
        Errno::ELOOP | Errno::ENOTDIR if symlink => anyhow::anyhow!(
            "refusing directory {}: it is a symbolic link (c1m never follows one here)",
            path.display()
        ),
        Errno::ENOTDIR => anyhow::anyhow!("refusing {}: it is not a directory", path.display()),
        e => anyhow::Error::new(e).context(format!("cannot open directory {}", path.display())),
    }
}

/// 64 unpredictable bits: the standard library's per-process random hash
/// keys, mixed with the time and a counter. The name only needs to be hard
/// to guess in advance; O_EXCL makes a collision harmless.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Split a file path into its directory and file name, for [`Dir`].
pub fn split(path: &Path) -> Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} does not name a file", path.display()))?
        .to_string();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_replaces_a_planted_symlink_instead_of_following_it() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let d = t.path().join("d");
        let dir = Dir::open(&d, 0o700).unwrap();
        std::os::unix::fs::symlink(&victim, d.join("f")).unwrap();
        assert!(
            dir.read("f")
                .unwrap_err()
                .to_string()
                .contains("symbolic link")
        );
        dir.write_atomic("f", b"new\n", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(dir.read("f").unwrap().unwrap(), b"new\n");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
    }

    #[test]
    fn a_new_directory_is_private_and_a_shared_one_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        Dir::open(&d, 0o700).unwrap();
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Dir::open(&d, 0o700).unwrap_err().to_string();
        assert!(e.contains("group or others"), "{e}");
        let link = t.path().join("link");
        std::os::unix::fs::symlink(t.path(), &link).unwrap();
        let e = Dir::open(&link, 0o700).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
    }

    #[test]
    fn a_group_writable_file_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let dir = Dir::open(t.path(), 0o700).unwrap();
        std::fs::write(t.path().join("s"), "x").unwrap();
        std::fs::set_permissions(t.path().join("s"), std::fs::Permissions::from_mode(0o620))
            .unwrap();
        let e = dir.read_trusted("s").unwrap_err().to_string();
        assert!(e.contains("group or others"), "{e}");
        assert_eq!(dir.read("s").unwrap().unwrap(), b"x");
    }
}
