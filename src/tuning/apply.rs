//! Changing the host, and undoing it exactly. [`apply`] saves every
//! original value to a state file before the first write, writes each key,
//! reads it back to verify, and if a write fails midway restores every key
//! it already wrote (a half-applied profile is worse than none). Keys that
//! cannot be written at all (absent, read-only) are reported and left out
//! before anything is written. [`rollback`] writes the saved values back,
//! removes the files [`persist`] wrote, and removes the state file; with no
//! state it says there is nothing to roll back.
//!
//! Paths are overridable for tests: the state file (`--state` or
//! `$C1M_STATE_DIR/doctor-state.json`, default `/var/lib/c1m`), the
//! persist directories (`$C1M_SYSCTL_D`, `$C1M_LIMITS_D`) and the sysctl
//! root (`$C1M_SYSCTL_ROOT`).
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::check::{Kind, Row, Status};
use super::sysctl::{Scope, Sysctl, Writable, same_value, scope, squash};
use crate::sys::limits::{self, Nofile};

/// The first line of every file c1m writes outside its state directory.
pub const HEADER_MARK: &str = "# Written by c1m doctor";
/// File name used in sysctl.d and limits.d.
pub const PERSIST_NAME: &str = "90-c1m.conf";

/// The default state file: `$C1M_STATE_DIR/doctor-state.json`, or
/// `/var/lib/c1m/doctor-state.json`.
pub fn default_state_path() -> PathBuf {
    let dir = std::env::var_os("C1M_STATE_DIR").unwrap_or_else(|| "/var/lib/c1m".into());
    PathBuf::from(dir).join("doctor-state.json")
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
        }
    }

    /// Read a state file; Ok(None) if it does not exist.
    pub fn load(path: &Path) -> Result<Option<State>> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let state = serde_json::from_str(&text).with_context(|| {
                    format!(
                        "state file {} is not a c1m doctor state (corrupt?)",
                        path.display()
                    )
                })?;
                Ok(Some(state))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read state file {}", path.display())),
        }
    }

    /// Write atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create state directory {}", dir.display()))?;
        }
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).context("serializing the state")?;
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        Ok(())
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

        let mut written: Vec<usize> = Vec::new(); // indexes into todo
        for (i, (idx, key, value)) in todo.iter().enumerate() {
            match sysctl.write_verified(key, value) {
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
                    None => remove_if_exists(state_path)?,
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

fn check_same_place(state: &State, sysctl: &Sysctl, path: &Path) -> Result<()> {
    let here = sysctl.root().display().to_string();
    if state.sysctl_root != here {
        bail!(
            "state file {} was written for sysctl root {}, not {here}; use another --state",
            path.display(),
            state.sysctl_root
        );
    }
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

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
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
}

impl RollbackReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Restore the saved values, remove persisted files and the state file.
pub fn rollback(sysctl: &Sysctl, state_path: &Path, dirs: &PersistDirs) -> Result<RollbackReport> {
    let state = State::load(state_path)?;
    let mut report = RollbackReport {
        state_file: state_path.display().to_string(),
        nothing_to_roll_back: false,
        keys: Vec::new(),
        removed_files: Vec::new(),
        errors: Vec::new(),
    };
    let mut files: Vec<PathBuf> = dirs.files().to_vec();
    if let Some(state) = &state {
        check_same_place(state, sysctl, state_path)?;
        for saved in state.keys.iter().rev() {
            let before = sysctl.read(&saved.key).ok();
            let shown_before = before.as_deref().map(squash);
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
                    report.errors.push(e.to_string());
                    (KeyStatus::Failed, Some(e.to_string()))
                }
            };
            report.keys.push(KeyReport {
                key: saved.key.clone(),
                status,
                before: shown_before,
                after: sysctl.read(&saved.key).ok().map(|v| squash(&v)),
                reason,
            });
        }
        report.keys.reverse();
        files.extend(state.persisted.iter().map(PathBuf::from));
    }
    files.sort();
    files.dedup();
    for f in files {
        // Bytes, not text: a file that is not UTF-8 is simply not ours.
        match std::fs::read(&f) {
            Ok(text) if text.starts_with(HEADER_MARK.as_bytes()) => {
                match std::fs::remove_file(&f) {
                    Ok(()) => report.removed_files.push(f.display().to_string()),
                    Err(e) => report
                        .errors
                        .push(format!("cannot remove {}: {e}", f.display())),
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => report.errors.push(format!(
                "cannot read {} to check whether c1m wrote it: {e}",
                f.display()
            )),
        }
    }
    if state.is_none() && report.removed_files.is_empty() {
        report.nothing_to_roll_back = true;
        return Ok(report);
    }
    if report.errors.is_empty() {
        remove_if_exists(state_path)?;
    }
    Ok(report)
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
    let mut written = Vec::new();
    for (dir, text) in [(&dirs.sysctl_d, sysctl_text), (&dirs.limits_d, limits_text)] {
        let path = dir.join(PERSIST_NAME);
        // Bytes, not text: a file that is not UTF-8 is not c1m's either,
        // and one that cannot be read is not overwritten blind.
        match std::fs::read(&path) {
            Ok(existing) if !existing.starts_with(HEADER_MARK.as_bytes()) => bail!(
                "{} exists and was not written by c1m; not overwriting it",
                path.display()
            ),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot read {} to check who wrote it; not overwriting it",
                        path.display()
                    )
                });
            }
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
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
