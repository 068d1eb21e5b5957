//! Changing the host, and undoing it exactly. [`apply`] saves every
//! original value to a state file before the first write, writes each key,
//! reads it back to verify, and if a write fails midway restores every key
//! it already wrote (a half-applied profile is worse than none). Keys that
//! cannot be written at all (absent, read-only) are reported and left out
//! before anything is written. [`rollback`] writes the saved values back,
//! removes the files [`persist`] wrote, and removes the state file; with no
//! state it says there is nothing to roll back.
//!
//! The state is root's alone: it lives in a root-owned 0700 directory, is
//! read and written only through [`safe_fs`] (no symlink followed, atomic
//! replace, owner and mode checked) and every key in it must be a sysctl
//! name before a path is built from it. Host-wide originals are restored
//! whatever happened to the network namespace they were saved in, so a run
//! killed with SIGKILL is always recoverable with `c1m doctor --rollback`.
//!
//! Paths are overridable for tests: the state file (`--state` or
//! `$C1M_STATE_DIR/doctor-state.json`, default `/var/lib/c1m`), the
//! persist directories (`$C1M_SYSCTL_D`, `$C1M_LIMITS_D`) and the sysctl
//! root (`$C1M_SYSCTL_ROOT`).
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::check::{Kind, Row, Status};
use super::safe_fs::{self, Dir};
use super::sysctl::{Scope, Sysctl, Writable, same_value, scope, squash, valid_key};
use crate::sys::limits::{self, Nofile};

/// The first line of every file c1m writes outside its state directory.
pub const HEADER_MARK: &str = "# Written by c1m doctor";
/// File name used in sysctl.d and limits.d.
pub const PERSIST_NAME: &str = "90-c1m.conf";

/// The state directory: `$C1M_STATE_DIR` (for tests; it gets the same
/// checks), or `/var/lib/c1m`. Root-owned, 0700, created on first use.
pub fn state_dir() -> PathBuf {
    std::env::var_os("C1M_STATE_DIR")
        .unwrap_or_else(|| "/var/lib/c1m".into())
        .into()
}

/// The default state file: `<state dir>/doctor-state.json`.
pub fn default_state_path() -> PathBuf {
    state_dir().join("doctor-state.json")
}

/// The lab's state file, `<state dir>/lab-state.json`: one fixed place, so
/// that what a lab killed before its rollback left changed is found by the
/// next lab and by `c1m doctor --rollback`.
pub fn lab_state_path() -> PathBuf {
    state_dir().join("lab-state.json")
}

/// Where `--persist` writes.
#[derive(Debug, Clone)]
pub struct PersistDirs {
    pub sysctl_d: PathBuf,
    pub limits_d: PathBuf,
}

impl PersistDirs {
    /// `$C1M_SYSCTL_D` or `/etc/sysctl.d`; `$C1M_LIMITS_D` or
    /// `/etc/security/limits.d`.
    pub fn from_env() -> PersistDirs {
        PersistDirs {
            sysctl_d: std::env::var_os("C1M_SYSCTL_D")
                .unwrap_or_else(|| "/etc/sysctl.d".into())
                .into(),
            limits_d: std::env::var_os("C1M_LIMITS_D")
                .unwrap_or_else(|| "/etc/security/limits.d".into())
                .into(),
        }
    }

    fn files(&self) -> [PathBuf; 2] {
        [
            self.sysctl_d.join(PERSIST_NAME),
            self.limits_d.join(PERSIST_NAME),
        ]
    }
}

/// One saved original value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub key: String,
    pub original: String,
}

/// The state file: what to restore, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub written_by: String,
    pub created_unix: f64,
    pub sysctl_root: String,
    /// The network namespace the net.* keys were written in
    /// (`net:[4026531840]`).
    pub netns: Option<String>,
    pub keys: Vec<Saved>,
    /// Files written by --persist.
    pub persisted: Vec<String>,
    /// The boot the values were saved in (see [`boot_id`]).
    #[serde(default)]
    pub boot_id: Option<String>,
}

impl State {
    fn new(sysctl: &Sysctl) -> State {
        State {
            version: 1,
            written_by: format!("c1m doctor {}", env!("CARGO_PKG_VERSION")),
            created_unix: crate::util::unix_now(),
            sysctl_root: sysctl.root().display().to_string(),
            netns: current_netns(),
            keys: Vec::new(),
            persisted: Vec::new(),
            boot_id: boot_id(),
        }
    }

    /// Read a state file; Ok(None) if it does not exist. The file and its
    /// directory must be owned by root and not writable by group or others
    /// (see [`safe_fs`]), no symlink is followed, and every key must be a
    /// sysctl name: a state file is never trusted to name a path.
    pub fn load(path: &Path) -> Result<Option<State>> {
        let (dir, name) = safe_fs::split(path)?;
        let Some(dir) = Dir::open_existing(&dir)? else {
            return Ok(None);
        };
        let Some(bytes) = dir.read_trusted(&name)? else {
            return Ok(None);
        };
        let state: State = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "state file {} is not a c1m doctor state (corrupt?)",
                path.display()
            )
        })?;
        if let Some(bad) = state.keys.iter().find(|k| !valid_key(&k.key)) {
            bail!(
                "refusing state file {}: '{}' is not a sysctl name (the file was tampered with?)",
                path.display(),
                bad.key
            );
        }
        Ok(Some(state))
    }

    /// Write atomically into a private directory (created 0700 if absent;
    /// see [`safe_fs`]).
    pub fn save(&self, path: &Path) -> Result<()> {
        let (dir, name) = safe_fs::split(path)?;
        let text = serde_json::to_string_pretty(self).context("serializing the state")?;
        Dir::open(&dir, 0o700)?.write_atomic(&name, text.as_bytes(), 0o600)
    }
}

/// Remove a state file (no symlink followed); nothing if it is absent.
fn remove_state(path: &Path) -> Result<()> {
    let (dir, name) = safe_fs::split(path)?;
    if let Some(dir) = Dir::open_existing(&dir)? {
        dir.remove(&name)?;
    }
    Ok(())
}

/// The boot this process runs in: values saved in another boot were reset
/// by the reboot.
pub fn boot_id() -> Option<String> {
    crate::sys::procfs::boot_id()
}

/// Whether a network namespace (`net:[4026532...]`) still exists. A
/// namespace that no longer exists took its per-namespace keys with it.
pub fn netns_exists(id: &str) -> bool {
    current_netns().as_deref() == Some(id) || crate::sys::procfs::netns_exists(id)
}

/// Test-only crash point: with `C1M_TEST_KILL_AFTER_WRITES=N`, the process
/// kills itself with SIGKILL once N sysctl writes of an apply are done
/// (N = 0: right after the state is saved, before the first write). The
/// crash-consistency tests use it to stop an apply at every point.
fn crash_point(writes_done: usize) {
    if std::env::var("C1M_TEST_KILL_AFTER_WRITES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        == Some(writes_done)
    {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// The network namespace of this process, as `/proc/self/ns/net` names it.
pub fn current_netns() -> Option<String> {
    crate::sys::procfs::netns(crate::sys::procfs::Target::This)
}

/// Whether this process runs in a network namespace other than PID 1's
/// (None when PID 1's namespace cannot be read).
pub fn in_child_netns() -> Option<bool> {
    use crate::sys::procfs::{Target, netns};
    let init = netns(Target::Pid(1))?;
    let mine = netns(Target::This)?;
    Some(init != mine)
}

/// What happened to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Written and verified.
    Applied,
    /// Already satisfied the profile.
    AlreadyOk,
    /// Not written, on purpose (n/a, or global with --netns-only).
    Skipped,
    /// Could not be written.
    Failed,
    /// Written, then put back because a later write failed.
    Restored,
    /// Not attempted because an earlier write failed.
    NotAttempted,
}

/// One key of an apply or rollback report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyReport {
    pub key: String,
    pub status: KeyStatus,
    pub before: Option<String>,
    pub after: Option<String>,
    pub reason: Option<String>,
}

/// What `apply` did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub state_file: String,
    pub keys: Vec<KeyReport>,
    /// Set when a write failed midway and everything was restored.
    pub aborted: Option<String>,
    /// This process's open-files limit before and after raising the soft
    /// limit to the hard one (None with --pid, or when not asked).
    pub nofile: Option<(Nofile, Nofile)>,
}

impl ApplyReport {
    /// The keys written, each as "key before -> after", for notes and
    /// reports.
    pub fn written(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| k.status == KeyStatus::Applied)
            .map(|k| {
                format!(
                    "{} {} -> {}",
                    k.key,
                    k.before.as_deref().unwrap_or("?"),
                    k.after.as_deref().unwrap_or("?")
                )
            })
            .collect()
    }

    /// True when nothing failed.
    pub fn ok(&self) -> bool {
        self.aborted.is_none() && self.keys.iter().all(|k| k.status != KeyStatus::Failed)
    }
}

/// Options of [`apply`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Write only per-network-namespace keys (skip fs.*, vm.* and the few
    /// global net.* keys): for trying a profile inside `unshare -n`
    /// without touching the host.
    pub netns_only: bool,
    /// Raise this process's soft RLIMIT_NOFILE to its hard limit.
    pub raise_own_nofile: bool,
}

/// Apply the `fix` rows of a check. See the module docs for the order of
/// operations.
pub fn apply(
    sysctl: &Sysctl,
    state_path: &Path,
    rows: &[Row],
    opts: ApplyOptions,
) -> Result<ApplyReport> {
    let mut keys = Vec::new();
    let mut todo: Vec<(usize, String, String)> = Vec::new(); // (report index, key, value)
    for row in rows.iter().filter(|r| r.kind == Kind::Sysctl) {
        let mut rep = KeyReport {
            key: row.check.clone(),
            status: KeyStatus::Skipped,
            before: (row.current != "-").then(|| row.current.clone()),
            after: None,
            reason: None,
        };
        match row.status {
            Status::Ok => rep.status = KeyStatus::AlreadyOk,
            Status::NotApplicable => rep.reason = Some(row.why.clone()),
            Status::Cannot => {
                rep.status = KeyStatus::Failed;
                rep.reason = Some(row.why.clone());
            }
            Status::Fix => {
                let value = row.apply_value.clone().unwrap_or_default();
                if opts.netns_only && scope(&row.check) != Scope::Netns {
                    rep.reason = Some("host-wide key, not written with --netns-only".to_string());
                } else {
                    match sysctl.writable(&row.check) {
                        Writable::Yes => todo.push((keys.len(), row.check.clone(), value)),
                        Writable::Absent => {
                            rep.status = KeyStatus::Failed;
                            rep.reason = Some(format!(
                                "absent: {} does not exist (module not loaded?)",
                                sysctl.path(&row.check).display()
                            ));
                        }
                        Writable::ReadOnlyKey => {
                            rep.status = KeyStatus::Failed;
                            rep.reason = Some("read-only key (EPERM on write)".into());
                        }
                        Writable::ReadOnlyMount => {
                            rep.status = KeyStatus::Failed;
                            rep.reason = Some(format!(
                                "{} is mounted read-only (EROFS)",
                                sysctl.root().display()
                            ));
                        }
                    }
                }
            }
        }
        keys.push(rep);
    }

    let mut aborted = None;
    if !todo.is_empty() {
        let previous = State::load(state_path)?;
        let mut state = match &previous {
            Some(s) => {
                check_same_place(s, sysctl, state_path)?;
                s.clone()
            }
            None => State::new(sysctl),
        };
        // Save every original before the first write (keep older originals:
        // a second apply must not forget the first one's).
        let mut pre = Vec::new();
        for (_, key, _) in &todo {
            let original = sysctl
                .read(key)
                .with_context(|| format!("reading {key} before writing it"))?;
            if !state.keys.iter().any(|s| &s.key == key) {
                state.keys.push(Saved {
                    key: key.clone(),
                    original: original.clone(),
                });
            }
            pre.push(original);
        }
        state.save(state_path)?;
        crash_point(0);

        let mut written: Vec<usize> = Vec::new(); // indexes into todo
        for (i, (idx, key, value)) in todo.iter().enumerate() {
            let result = sysctl.write_verified(key, value);
            crash_point(i + 1);
            match result {
                Ok(()) => {
                    keys[*idx].status = KeyStatus::Applied;
                    keys[*idx].after = sysctl.read(key).ok().map(|v| squash(&v));
                    written.push(i);
                }
                Err(e) => {
                    keys[*idx].status = KeyStatus::Failed;
                    keys[*idx].reason = Some(e.to_string());
                    keys[*idx].after = sysctl.read(key).ok().map(|v| squash(&v));
                    // A failed verify may have changed the key: restore it too.
                    if keys[*idx]
                        .after
                        .as_deref()
                        .is_some_and(|a| !same_value(a, &pre[i]))
                    {
                        if let Err(re) = sysctl.write(key, &pre[i]) {
                            keys[*idx].reason =
                                Some(format!("{e}; putting back '{}' failed too: {re}", pre[i]));
                        }
                        keys[*idx].after = sysctl.read(key).ok().map(|v| squash(&v));
                    }
                    for (rest_idx, _, _) in &todo[i + 1..] {
                        keys[*rest_idx].status = KeyStatus::NotAttempted;
                    }
                    aborted = Some(format!(
                        "writing {key} failed: {e}; restored the {} key(s) already written",
                        written.len()
                    ));
                    break;
                }
            }
        }
        if aborted.is_some() {
            let mut restore_failed = Vec::new();
            for &i in written.iter().rev() {
                let (idx, key, _) = &todo[i];
                match sysctl.write_verified(key, &pre[i]) {
                    Ok(()) => {
                        keys[*idx].status = KeyStatus::Restored;
                        keys[*idx].after = sysctl.read(key).ok().map(|v| squash(&v));
                    }
                    Err(e) => {
                        keys[*idx].reason = Some(format!("restore failed: {e}"));
                        restore_failed.push(key.clone());
                    }
                }
            }
            if restore_failed.is_empty() {
                // Nothing changed: put the state file back as it was.
                match &previous {
                    Some(p) => p.save(state_path)?,
                    None => remove_state(state_path)?,
                }
            } else {
                aborted = Some(format!(
                    "{}; could NOT restore {} (originals kept in {}; run c1m doctor --rollback)",
                    aborted.unwrap_or_default(),
                    restore_failed.join(", "),
                    state_path.display()
                ));
            }
        }
    }

    let nofile = if opts.raise_own_nofile {
        Some(limits::raise_soft_to_hard()?)
    } else {
        None
    };
    Ok(ApplyReport {
        state_file: state_path.display().to_string(),
        keys,
        aborted,
        nofile,
    })
}

fn check_same_root(state: &State, sysctl: &Sysctl, path: &Path) -> Result<()> {
    let here = sysctl.root().display().to_string();
    if state.sysctl_root != here {
        bail!(
            "state file {} was written for sysctl root {}, not {here}; use another --state",
            path.display(),
            state.sysctl_root
        );
    }
    Ok(())
}

fn check_same_place(state: &State, sysctl: &Sysctl, path: &Path) -> Result<()> {
    check_same_root(state, sysctl, path)?;
    let ns = current_netns();
    let has_netns_keys = state.keys.iter().any(|k| scope(&k.key) == Scope::Netns);
    if has_netns_keys && state.netns.is_some() && ns != state.netns {
        bail!(
            "state file {} holds net.* keys saved in network namespace {}, but this process is in {}; run c1m doctor there",
            path.display(),
            state.netns.as_deref().unwrap_or("?"),
            ns.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}

/// What `rollback` did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub state_file: String,
    /// True when there was no state file and no persisted file.
    pub nothing_to_roll_back: bool,
    pub keys: Vec<KeyReport>,
    pub removed_files: Vec<String>,
    pub errors: Vec<String>,
    /// Per-namespace keys left in the state file for a rollback run inside
    /// the (still existing) namespace they were saved in.
    pub kept_in_state: Vec<String>,
}

impl RollbackReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Restore the saved values, remove persisted files and the state file.
///
/// The files `--persist` wrote are removed first, whatever the namespace.
/// Host-wide keys are restored whatever happened to the network namespace
/// the state was saved in. Per-namespace keys saved in another namespace
/// are not written here: when that namespace no longer exists they went
/// with it (said, and dropped); when it still exists they stay in the state
/// file for a rollback run inside it. Values saved before the last reboot
/// are not written back: the reboot reset them.
/// `dirs`: also remove c1m's files from these directories even when the
/// state does not list them (doctor); None for the lab, which never
/// persists and must not remove what doctor persisted.
pub fn rollback(
    sysctl: &Sysctl,
    state_path: &Path,
    dirs: Option<&PersistDirs>,
) -> Result<RollbackReport> {
    let state = State::load(state_path)?;
    let mut report = RollbackReport {
        state_file: state_path.display().to_string(),
        nothing_to_roll_back: false,
        keys: Vec::new(),
        removed_files: Vec::new(),
        errors: Vec::new(),
        kept_in_state: Vec::new(),
    };
    let mut files: Vec<PathBuf> = dirs.map(|d| d.files().to_vec()).unwrap_or_default();
    if let Some(state) = &state {
        files.extend(state.persisted.iter().map(PathBuf::from));
    }
    files.sort();
    files.dedup();
    for f in files {
        remove_persisted(&f, &mut report);
    }
    let mut kept = Vec::new();
    if let Some(state) = &state {
        check_same_root(state, sysctl, state_path)?;
        let elsewhere = state
            .netns
            .as_deref()
            .filter(|&ns| current_netns().as_deref() != Some(ns));
        let gone = elsewhere.is_some_and(|ns| !netns_exists(ns));
        let now = boot_id();
        let rebooted = state.boot_id.is_some() && now.is_some() && state.boot_id != now;
        for saved in state.keys.iter().rev() {
            let skip = if rebooted {
                Some("saved before the last reboot, which reset it; not written".to_string())
            } else if let Some(ns) = elsewhere.filter(|_| scope(&saved.key) == Scope::Netns) {
                if gone {
                    Some(format!(
                        "saved in network namespace {ns}, which no longer exists: the value went with it"
                    ))
                } else {
                    kept.push(saved.clone());
                    Some(format!(
                        "saved in network namespace {ns}, which still exists: kept in {}; run c1m doctor --rollback inside it",
                        state_path.display()
                    ))
                }
            } else {
                None
            };
            report.keys.push(match skip {
                Some(why) => KeyReport {
                    key: saved.key.clone(),
                    status: KeyStatus::Skipped,
                    before: sysctl.read(&saved.key).ok().map(|v| squash(&v)),
                    after: None,
                    reason: Some(why),
                },
                None => restore_one(sysctl, saved, &mut report.errors),
            });
        }
        report.keys.reverse();
        kept.reverse();
    }
    if state.is_none() && report.removed_files.is_empty() {
        report.nothing_to_roll_back = true;
        return Ok(report);
    }
    if report.errors.is_empty() {
        match state {
            Some(mut s) if !kept.is_empty() => {
                report.kept_in_state = kept.iter().map(|k| k.key.clone()).collect();
                s.keys = kept;
                s.persisted.clear();
                s.save(state_path)?;
            }
            _ => remove_state(state_path)?,
        }
    }
    Ok(report)
}

/// Write one saved value back (unless it is already there).
fn restore_one(sysctl: &Sysctl, saved: &Saved, errors: &mut Vec<String>) -> KeyReport {
    let before = sysctl.read(&saved.key).ok();
    let unchanged = before
        .as_deref()
        .is_some_and(|b| same_value(b, &saved.original));
    let result = if unchanged {
        Ok(())
    } else {
        sysctl.write_verified(&saved.key, &saved.original)
    };
    let (status, reason) = match result {
        Ok(()) if unchanged => (KeyStatus::AlreadyOk, None),
        Ok(()) => (KeyStatus::Applied, None),
        Err(e) => {
            errors.push(e.to_string());
            (KeyStatus::Failed, Some(e.to_string()))
        }
    };
    KeyReport {
        key: saved.key.clone(),
        status,
        before: before.as_deref().map(squash),
        after: sysctl.read(&saved.key).ok().map(|v| squash(&v)),
        reason,
    }
}

/// Remove one file `--persist` wrote, if it is there and c1m wrote it
/// (its first line is [`HEADER_MARK`]). Only files named [`PERSIST_NAME`]
/// are considered, never through a symlink.
fn remove_persisted(f: &Path, report: &mut RollbackReport) {
    let result = (|| -> Result<bool> {
        let (dir, name) = safe_fs::split(f)?;
        if name != PERSIST_NAME {
            bail!(
                "the state names {}, which is not a file c1m writes; left alone",
                f.display()
            );
        }
        let Some(dir) = Dir::open_existing(&dir)? else {
            return Ok(false);
        };
        // Bytes, not text: a file that is not UTF-8 is simply not ours.
        match dir.read(&name)? {
            Some(text) if text.starts_with(HEADER_MARK.as_bytes()) => dir.remove(&name),
            _ => Ok(false),
        }
    })();
    match result {
        Ok(true) => report.removed_files.push(f.display().to_string()),
        Ok(false) => {}
        Err(e) => report.errors.push(format!("{e:#}")),
    }
}

/// What `persist` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct PersistReport {
    pub files: Vec<String>,
    /// A systemd drop-in to install by hand for services (printed).
    pub systemd_drop_in: String,
}

/// Write `sysctl.d` and `limits.d` files holding the profile's values (the
/// sysctl rows that now pass, and `nofile` for the open-files limit), each
/// with a header saying c1m wrote it, and record them in the state file so
/// that `rollback` removes them. Refuses to overwrite a file c1m did not
/// write.
pub fn persist(
    sysctl: &Sysctl,
    state_path: &Path,
    dirs: &PersistDirs,
    rows: &[Row],
    nofile: u64,
    context: &str,
) -> Result<PersistReport> {
    let header = format!(
        "{HEADER_MARK} --apply --persist ({context}) at unix time {:.0}.\n# `c1m doctor --rollback` removes this file.\n",
        crate::util::unix_now()
    );
    let mut sysctl_text = header.clone();
    for row in rows
        .iter()
        .filter(|r| r.kind == Kind::Sysctl && r.status == Status::Ok)
    {
        if let Ok(v) = sysctl.read(&row.check) {
            sysctl_text.push_str(&format!("{} = {}\n", row.check, squash(&v)));
        }
    }
    let limits_text = format!(
        "{header}*    soft nofile {nofile}\n*    hard nofile {nofile}\nroot soft nofile {nofile}\nroot hard nofile {nofile}\n"
    );
    // Check both files before writing either.
    let mut targets = Vec::new();
    for (dir, text) in [(&dirs.sysctl_d, sysctl_text), (&dirs.limits_d, limits_text)] {
        let path = dir.join(PERSIST_NAME);
        let dir = Dir::open(dir, 0o755)?;
        // Bytes, not text: a file that is not UTF-8 is not c1m's either;
        // one that cannot be read (or is a symlink) is not overwritten.
        match dir
            .read(PERSIST_NAME)
            .with_context(|| format!("not overwriting {}", path.display()))?
        {
            Some(existing) if !existing.starts_with(HEADER_MARK.as_bytes()) => bail!(
                "{} exists and was not written by c1m; not overwriting it",
                path.display()
            ),
            _ => {}
        }
        targets.push((dir, path, text));
    }
    let mut written = Vec::new();
    for (dir, path, text) in targets {
        dir.write_atomic(PERSIST_NAME, text.as_bytes(), 0o644)?;
        written.push(path.display().to_string());
    }
    let mut state = match State::load(state_path)? {
        Some(s) => s,
        None => State::new(sysctl),
    };
    for f in &written {
        if !state.persisted.contains(f) {
            state.persisted.push(f.clone());
        }
    }
    state.save(state_path)?;
    Ok(PersistReport {
        files: written,
        systemd_drop_in: format!(
            "# /etc/systemd/system/<your-service>.service.d/c1m.conf\n[Service]\nLimitNOFILE={nofile}\n"
        ),
    })
}
