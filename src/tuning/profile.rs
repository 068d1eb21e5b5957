//! Tuning profiles: small human-edited files in `profiles/` that say, per
//! role, which kernel settings and limits a C1M run needs, how each one is
//! compared (at least / at most / exactly), and which failure of the
//! catalogue it prevents. This module owns the file format, `include`
//! resolution and the little arithmetic that lets a value scale with the
//! target (`2*target + 10000`).
//!
//! The format, one setting per line (also documented at the top of
//! `profiles/base.conf` and in the README):
//!
//! ```text
//! # a comment; blank lines are ignored
//! include base.conf
//! KEY  OP  VALUE  | FAILURE_ID | why, one short sentence (optional)
//! ```
//!
//! - KEY is a sysctl name (`net.core.somaxconn`) or `rlimit.nofile.soft` /
//!   `rlimit.nofile.hard`.
//! - OP is `>=` (at least), `<=` (at most) or `=` (exactly).
//! - VALUE is one or more numbers or expressions separated by blanks
//!   (`1024 65535`, `2*target + 10000`, `min(65535, target)`), with
//!   `+ - * /`, parentheses, `min(..)`, `max(..)` and the variables `target`
//!   (the `--target` connections), `mem_pages` (RAM in pages) and
//!   `nofile_hard` (the process's hard open-files limit). Multi-value keys
//!   compare element by element. With `=`, a value that is not arithmetic is
//!   compared as text.
//! - FAILURE_ID is a catalogue id (`accept_queue_overflow`); an unknown id is
//!   an error naming the file and line.
//!
//! A later line for the same key replaces an earlier one (a role profile
//! overrides its base). A file included twice is read once.
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;
use thiserror::Error;

use crate::catalogue::FailureId;

/// The profiles shipped with c1m, compiled in so that the binary works from
/// any directory. Files on disk (see [`ProfileSource`]) take precedence.
pub const BUILTIN: &[(&str, &str)] = &[
    ("base.conf", include_str!("../../profiles/base.conf")),
    ("server.conf", include_str!("../../profiles/server.conf")),
    ("client.conf", include_str!("../../profiles/client.conf")),
    ("lab.conf", include_str!("../../profiles/lab.conf")),
];

/// A problem in a profile, always naming the file and line.
#[derive(Debug, Error)]
pub enum ProfileError {
    #[error("{file}:{line}: {problem}")]
    Syntax {
        file: String,
        line: usize,
        problem: String,
    },
    #[error("cannot read profile {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no profile named '{0}' (looked for {0}.conf in the profile directory and the built-in profiles: base, server, client, lab)"
    )]
    NotFound(String),
}

/// How a current value is compared with the wanted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    AtLeast,
    AtMost,
    Exactly,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::AtLeast => ">=",
            Op::AtMost => "<=",
            Op::Exactly => "=",
        }
    }
}

/// Where a line came from, for messages: `profiles/base.conf:12`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The variables a value may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vars {
    pub target: u64,
    pub mem_pages: u64,
    pub nofile_hard: u64,
    /// File structures the host has in use now (`fs.file-nr`'s first
    /// field): what `fs.file-max` must leave room for besides the target.
    pub files_in_use: u64,
}

impl Vars {
    fn get(&self, name: &str) -> Option<f64> {
        match name {
            "target" => Some(self.target as f64),
            "mem_pages" => Some(self.mem_pages as f64),
            "nofile_hard" => Some(self.nofile_hard as f64),
            "files_in_use" => Some(self.files_in_use as f64),
            _ => None,
        }
    }
}

const VARIABLES: &[&str] = &["target", "mem_pages", "nofile_hard", "files_in_use"];

/// An arithmetic expression over the variables.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    Var(String),
    Bin(Box<Expr>, char, Box<Expr>),
    Call(String, Vec<Expr>),
}

impl Expr {
    pub fn eval(&self, vars: &Vars) -> Result<f64, String> {
        Ok(match self {
            Expr::Num(n) => *n,
            Expr::Var(v) => vars
                .get(v)
                .ok_or_else(|| format!("unknown variable '{v}'"))?,
            Expr::Bin(a, op, b) => {
                let (a, b) = (a.eval(vars)?, b.eval(vars)?);
                match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    _ => {
                        if b == 0.0 {
                            return Err("division by zero".into());
                        }
                        a / b
                    }
                }
            }
            Expr::Call(f, args) => {
                let vals = args
                    .iter()
                    .map(|a| a.eval(vars))
                    .collect::<Result<Vec<_>, _>>()?;
                let fold = if f == "max" { f64::max } else { f64::min };
                vals.into_iter()
                    .reduce(fold)
                    .ok_or_else(|| format!("{f}() needs at least one argument"))?
            }
        })
    }
}

/// The wanted value of a setting, as written in the profile.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// One or more numbers (element-wise for multi-value keys).
    Numbers(Vec<Expr>),
    /// Text compared exactly (only with `=`); may be empty.
    Text(String),
}

/// A concrete wanted value once the variables are known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Wanted {
    Numbers(Vec<u64>),
    Text(String),
}

impl fmt::Display for Wanted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wanted::Numbers(ns) => {
                let parts: Vec<String> = ns.iter().map(|n| n.to_string()).collect();
                f.write_str(&parts.join(" "))
            }
            Wanted::Text(t) => f.write_str(t),
        }
    }
}

/// One setting of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub op: Op,
    pub value: Value,
    /// The value text as written, for display (`2*target + 10000`).
    pub value_text: String,
    pub prevents: FailureId,
    pub why: Option<String>,
    pub origin: Origin,
}

impl Entry {
    /// The wanted value for these variables. Numbers round up; a negative
    /// result is an error naming the line.
    pub fn wanted(&self, vars: &Vars) -> Result<Wanted, ProfileError> {
        match &self.value {
            Value::Text(t) => Ok(Wanted::Text(t.clone())),
            Value::Numbers(exprs) => {
                let mut out = Vec::with_capacity(exprs.len());
                for e in exprs {
                    let v = e.eval(vars).map_err(|p| self.error(p))?;
                    if !v.is_finite() || v < 0.0 {
                        return Err(self.error(format!(
                            "value '{}' is negative or not finite ({v}) for these settings",
                            self.value_text
                        )));
                    }
                    let (min, max) = bounds(&self.key);
                    let v = v.ceil();
                    // Compared as floats: a huge value never saturates into
                    // u64::MAX and passes.
                    if v > max as f64 {
                        return Err(self.error(format!(
                            "value '{}' is {v:.0} for these settings, above {max}, the most the kernel accepts",
                            self.value_text
                        )));
                    }
                    if v < min as f64 {
                        return Err(self.error(format!(
                            "value '{}' is {v:.0} for these settings, below {min}: the host would be crippled (or the kernel refuses it)",
                            self.value_text
                        )));
                    }
                    out.push(v as u64);
                }
                if self.key == "net.ipv4.ip_local_port_range"
                    && let [low, high] = out[..]
                    && low > high
                {
                    return Err(self.error(format!(
                        "the range {low} {high} is empty (the kernel refuses a low end above the high end)"
                    )));
                }
                Ok(Wanted::Numbers(out))
            }
        }
    }

    fn error(&self, problem: String) -> ProfileError {
        ProfileError::Syntax {
            file: self.origin.file.clone(),
            line: self.origin.line,
            problem: format!("{}: {problem}", self.key),
        }
    }

    /// Whether `current` (the text read from the kernel) satisfies the wanted
    /// value. Whitespace differences do not matter.
    pub fn satisfied(&self, current: &str, wanted: &Wanted) -> bool {
        compare(self.op, current, wanted)
    }

    /// The value to write to make `current` satisfy the entry: the wanted
    /// value for `=`, and for `>=`/`<=` the element-wise max/min of current
    /// and wanted, so that elements already better are kept.
    pub fn value_to_write(&self, current: &str, wanted: &Wanted) -> String {
        match (self.op, wanted) {
            (Op::Exactly, w) | (_, w @ Wanted::Text(_)) => w.to_string(),
            (op, Wanted::Numbers(ws)) => {
                let cur = numbers(current);
                let vals: Vec<String> = ws
                    .iter()
                    .enumerate()
                    .map(|(i, w)| match cur.as_ref().and_then(|c| c.get(i)) {
                        Some(c) if op == Op::AtLeast => (*c).max(*w),
                        Some(c) => (*c).min(*w),
                        None => *w,
                    })
                    .map(|v| v.to_string())
                    .collect();
                vals.join(" ")
            }
        }
    }
}

/// The most descriptors a process may have: the kernel's largest
/// `fs.nr_open` on 64 bits (INT_MAX rounded down to a multiple of 64).
pub const NR_OPEN_MAX: u64 = 2_147_483_584;

/// The values a profile may ask for `key` (each element of a list), both
/// ends included: what the kernel accepts, and no less than a working host
/// needs (`fs.file-max = 0` leaves no process able to open a file). Keys
/// without an entry: any `long`.
pub fn bounds(key: &str) -> (u64, u64) {
    const INT: u64 = i32::MAX as u64;
    const LONG: u64 = i64::MAX as u64;
    match key {
        "fs.file-max" => (1024, LONG),
        "fs.nr_open" | "rlimit.nofile.soft" | "rlimit.nofile.hard" => (1024, NR_OPEN_MAX),
        "fs.epoll.max_user_watches" | "net.ipv4.tcp_mem" => (1, LONG),
        "net.core.somaxconn"
        | "net.ipv4.tcp_max_syn_backlog"
        | "net.core.netdev_max_backlog"
        | "net.ipv4.tcp_rmem"
        | "net.ipv4.tcp_wmem" => (1, INT),
        "net.ipv4.ip_local_port_range" => (1, 65535),
        "net.ipv4.tcp_fin_timeout" => (1, 120),
        "net.ipv4.tcp_syncookies" | "net.ipv4.tcp_tw_reuse" => (0, 2),
        "net.netfilter.nf_conntrack_max"
        | "net.ipv4.tcp_max_orphans"
        | "net.ipv4.tcp_max_tw_buckets" => (0, INT),
        _ => (0, LONG),
    }
}

/// Parse whitespace-separated unsigned numbers; None if any is not one.
pub fn numbers(text: &str) -> Option<Vec<u64>> {
    text.split_whitespace()
        .map(|t| t.parse::<u64>().ok())
        .collect()
}

/// Compare a current kernel value with a wanted one.
pub fn compare(op: Op, current: &str, wanted: &Wanted) -> bool {
    match wanted {
        Wanted::Text(t) => {
            let a: Vec<&str> = current.split_whitespace().collect();
            let b: Vec<&str> = t.split_whitespace().collect();
            a == b
        }
        Wanted::Numbers(ws) => {
            let Some(cur) = numbers(current) else {
                return false;
            };
            if cur.len() != ws.len() {
                return false;
            }
            cur.iter().zip(ws).all(|(c, w)| match op {
                Op::AtLeast => c >= w,
                Op::AtMost => c <= w,
                Op::Exactly => c == w,
            })
        }
    }
}

/// A loaded profile: its entries in file order (after includes and
/// overrides), the files it read, and non-fatal warnings.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub name: String,
    pub files: Vec<String>,
    pub entries: Vec<Entry>,
    pub warnings: Vec<String>,
}

/// Where profile files are looked up.
#[derive(Debug, Clone)]
pub enum ProfileSource {
    /// A directory on disk (files included by name are resolved against the
    /// including file's directory).
    Dir(PathBuf),
    /// The compiled-in copies of `profiles/`.
    Builtin,
}

impl ProfileSource {
    /// `$C1M_PROFILE_DIR` if set; else the `profiles/` directory of the
    /// source tree this binary was built from, if it still exists (so an
    /// edited profile takes effect without a rebuild); else the built-in
    /// copies.
    pub fn default_source() -> ProfileSource {
        if let Some(dir) = std::env::var_os("C1M_PROFILE_DIR") {
            return ProfileSource::Dir(PathBuf::from(dir));
        }
        let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        if tree.join("base.conf").is_file() {
            return ProfileSource::Dir(tree);
        }
        ProfileSource::Builtin
    }
}

/// Load a profile by name (`server`, looked up as `server.conf` in the
/// source) or by path (anything containing a `/` or ending in `.conf` that
/// exists on disk).
pub fn load(name_or_path: &str, source: &ProfileSource) -> Result<Profile, ProfileError> {
    let mut loader = Loader::default();
    let path = Path::new(name_or_path);
    let is_path = name_or_path.contains('/') || (name_or_path.ends_with(".conf") && path.exists());
    if is_path {
        loader.load_file(&ProfileSource::Dir(PathBuf::new()), path, 0)?;
    } else {
        let file = format!("{name_or_path}.conf");
        match source {
            ProfileSource::Dir(dir) if dir.join(&file).is_file() => {
                loader.load_file(source, &dir.join(&file), 0)?
            }
            _ if BUILTIN.iter().any(|(n, _)| *n == file) => {
                loader.load_file(&ProfileSource::Builtin, Path::new(&file), 0)?
            }
            _ => return Err(ProfileError::NotFound(name_or_path.to_string())),
        }
    }
    let (files, entries, warnings) = loader.into_entries();
    Ok(Profile {
        name: name_or_path.to_string(),
        files,
        entries,
        warnings,
    })
}

/// Parse profile text directly (used by tests and by `load`). `file` names
/// the text in messages; includes resolve against `source`.
pub fn parse_str(file: &str, text: &str, source: &ProfileSource) -> Result<Profile, ProfileError> {
    let mut loader = Loader::default();
    loader.parse_text(source, Path::new(file), file, text, 0)?;
    let (mut files, entries, warnings) = loader.into_entries();
    files.insert(0, file.to_string());
    Ok(Profile {
        name: file.to_string(),
        files,
        entries,
        warnings,
    })
}

impl Loader {
    fn into_entries(self) -> (Vec<String>, Vec<Entry>, Vec<String>) {
        let mut v: Vec<(usize, Entry)> = self.entries.into_values().collect();
        v.sort_by_key(|(pos, _)| *pos);
        (
            self.files,
            v.into_iter().map(|(_, e)| e).collect(),
            self.warnings,
        )
    }
}

#[derive(Default)]
struct Loader {
    /// key -> (first position, entry); a later line replaces the entry but
    /// keeps the first position, so the table keeps the base's order.
    entries: BTreeMap<String, (usize, Entry)>,
    order: usize,
    files: Vec<String>,
    seen: HashSet<String>,
    warnings: Vec<String>,
}

impl Loader {
    fn load_file(
        &mut self,
        source: &ProfileSource,
        path: &Path,
        depth: usize,
    ) -> Result<(), ProfileError> {
        let (shown, text) = match source {
            ProfileSource::Builtin => {
                let name = path.to_string_lossy().to_string();
                let text = BUILTIN
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, t)| t.to_string())
                    .ok_or_else(|| ProfileError::NotFound(name.clone()))?;
                (format!("{name} (built in)"), text)
            }
            ProfileSource::Dir(_) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| ProfileError::Read {
                    file: shown.clone(),
                    source: e,
                })?;
                (shown, text)
            }
        };
        let key = match source {
            ProfileSource::Builtin => shown.clone(),
            ProfileSource::Dir(_) => std::fs::canonicalize(path)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| shown.clone()),
        };
        if !self.seen.insert(key) {
            return Ok(());
        }
        self.files.push(shown.clone());
        self.parse_text(source, path, &shown, &text, depth)
    }

    fn parse_text(
        &mut self,
        source: &ProfileSource,
        path: &Path,
        shown: &str,
        text: &str,
        depth: usize,
    ) -> Result<(), ProfileError> {
        for (i, raw) in text.lines().enumerate() {
            let lineno = i + 1;
            let err = |problem: String| ProfileError::Syntax {
                file: shown.to_string(),
                line: lineno,
                problem,
            };
            let line = match raw.find('#') {
                Some(p) => &raw[..p],
                None => raw,
            }
            .trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("include")
                && (rest.is_empty() || rest.starts_with(char::is_whitespace))
            {
                let target = rest.trim();
                if target.is_empty() {
                    return Err(err("include needs a file name".into()));
                }
                if depth >= 8 {
                    return Err(err(format!(
                        "include {target}: includes nested more than 8 deep (a cycle?)"
                    )));
                }
                let inc = match source {
                    ProfileSource::Builtin => PathBuf::from(target),
                    ProfileSource::Dir(_) => {
                        path.parent().unwrap_or_else(|| Path::new(".")).join(target)
                    }
                };
                let inc_source = match source {
                    ProfileSource::Builtin => ProfileSource::Builtin,
                    ProfileSource::Dir(_) => ProfileSource::Dir(PathBuf::new()),
                };
                self.load_file(&inc_source, &inc, depth + 1)
                    .map_err(|e| match e {
                        ProfileError::Read { source, .. } => err(format!(
                            "include {target}: cannot read {}: {source}",
                            inc.display()
                        )),
                        ProfileError::NotFound(n) => {
                            err(format!("include {target}: no built-in profile {n}"))
                        }
                        other => other,
                    })?;
                continue;
            }
            let entry = parse_line(line).map_err(err)?;
            let entry = Entry {
                origin: Origin {
                    file: shown.to_string(),
                    line: lineno,
                },
                ..entry
            };
            if !known_key_shape(&entry.key) {
                self.warnings.push(format!(
                    "{shown}:{lineno}: unknown key '{}' (not a sysctl name nor rlimit.nofile.soft/hard); ignored",
                    entry.key
                ));
                continue;
            }
            self.order += 1;
            let pos = self
                .entries
                .get(&entry.key)
                .map(|(p, _)| *p)
                .unwrap_or(self.order);
            self.entries.insert(entry.key.clone(), (pos, entry));
        }
        Ok(())
    }
}

/// Keys that are rlimits (handled by the limits module, not /proc/sys).
pub const RLIMIT_KEYS: &[&str] = &["rlimit.nofile.soft", "rlimit.nofile.hard"];

fn known_key_shape(key: &str) -> bool {
    if key.starts_with("rlimit.") {
        return RLIMIT_KEYS.contains(&key);
    }
    let parts: Vec<&str> = key.split('.').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// Parse `KEY OP VALUE | FAILURE_ID | why` (comment already stripped).
fn parse_line(line: &str) -> Result<Entry, String> {
    let mut fields = line.splitn(3, '|');
    let setting = fields.next().unwrap_or("").trim();
    let id_text = fields.next().map(str::trim).ok_or_else(|| {
        format!("'{line}': expected KEY OP VALUE | FAILURE_ID | why (the failure id is missing)")
    })?;
    let why = fields
        .next()
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty());
    let prevents = FailureId::from_str(id_text).map_err(|_| {
        let ids: Vec<&str> = FailureId::all().map(|f| f.as_str()).collect();
        format!("unknown failure id '{id_text}' (known: {})", ids.join(", "))
    })?;
    let key_end = setting
        .find(|c: char| c.is_whitespace() || c == '>' || c == '<' || c == '=')
        .ok_or_else(|| format!("'{setting}': expected KEY OP VALUE, no comparison found"))?;
    let key = setting[..key_end].to_string();
    let rest = setting[key_end..].trim_start();
    let (op, value_text) = if let Some(v) = rest.strip_prefix(">=") {
        (Op::AtLeast, v)
    } else if let Some(v) = rest.strip_prefix("<=") {
        (Op::AtMost, v)
    } else if let Some(v) = rest.strip_prefix('=') {
        (Op::Exactly, v)
    } else {
        return Err(format!(
            "{key}: expected a comparison >=, <= or = after the key, found '{rest}'"
        ));
    };
    let value_text = value_text.trim().to_string();
    let value = match parse_values(&value_text) {
        Ok(exprs) if !exprs.is_empty() => Value::Numbers(exprs),
        Ok(_) if op == Op::Exactly => Value::Text(String::new()),
        Ok(_) => return Err(format!("{key}: {} needs a value", op.symbol())),
        Err(_) if op == Op::Exactly && !value_text.contains(['(', ')', '*', '/', '+']) => {
            Value::Text(value_text.clone())
        }
        Err(problem) => return Err(format!("{key}: value '{value_text}': {problem}")),
    };
    Ok(Entry {
        key,
        op,
        value,
        value_text,
        prevents,
        why,
        origin: Origin {
            file: String::new(),
            line: 0,
        },
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Sym(char),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            let s: String = chars[start..i].iter().filter(|c| **c != '_').collect();
            let n: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
            out.push(Tok::Num(n));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if "+-*/(),".contains(c) {
            out.push(Tok::Sym(c));
            i += 1;
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(out)
}

/// Parse a blank-separated list of expressions: `1024 65535`,
/// `2*target + 10000`. Each expression is read greedily; a new one starts
/// where the previous one cannot continue.
pub fn parse_values(text: &str) -> Result<Vec<Expr>, String> {
    let toks = tokenize(text)?;
    let mut p = Parser { toks, pos: 0 };
    let mut out = Vec::new();
    while p.pos < p.toks.len() {
        out.push(p.expr()?);
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut left = self.term()?;
        while let Some(Tok::Sym(c @ ('+' | '-'))) = self.peek().cloned() {
            self.pos += 1;
            let right = self.term()?;
            left = Expr::Bin(Box::new(left), c, Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut left = self.factor()?;
        while let Some(Tok::Sym(c @ ('*' | '/'))) = self.peek().cloned() {
            self.pos += 1;
            let right = self.factor()?;
            left = Expr::Bin(Box::new(left), c, Box::new(right));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Expr, String> {
        let tok = self.peek().cloned().ok_or("expression ends too early")?;
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(Expr::Num(n)),
            Tok::Ident(name) => {
                if let Some(Tok::Sym('(')) = self.peek() {
                    if name != "max" && name != "min" {
                        return Err(format!("unknown function '{name}' (known: max, min)"));
                    }
                    self.pos += 1;
                    let mut args = vec![self.expr()?];
                    loop {
                        match self.peek() {
                            Some(Tok::Sym(',')) => {
                                self.pos += 1;
                                args.push(self.expr()?);
                            }
                            Some(Tok::Sym(')')) => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(format!("{name}(: expected ',' or ')'")),
                        }
                    }
                    Ok(Expr::Call(name, args))
                } else if VARIABLES.contains(&name.as_str()) {
                    Ok(Expr::Var(name))
                } else {
                    Err(format!(
                        "unknown variable '{name}' (known: {})",
                        VARIABLES.join(", ")
                    ))
                }
            }
            Tok::Sym('(') => {
                let e = self.expr()?;
                match self.peek() {
                    Some(Tok::Sym(')')) => {
                        self.pos += 1;
                        Ok(e)
                    }
                    _ => Err("missing ')'".into()),
                }
            }
            Tok::Sym(c) => Err(format!("unexpected '{c}'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(target: u64) -> Vars {
        Vars {
            target,
            mem_pages: 6_000_000,
            nofile_hard: 20_000,
            files_in_use: 449,
        }
    }

    fn entry<'a>(p: &'a Profile, key: &str) -> &'a Entry {
        p.entries.iter().find(|e| e.key == key).unwrap()
    }

    #[test]
    fn builtin_profiles_include_base_and_scale_with_the_target() {
        for role in ["server", "client", "lab"] {
            let p = load(role, &ProfileSource::Builtin).unwrap();
            assert!(p.warnings.is_empty(), "{role}: {:?}", p.warnings);
            let fm = entry(&p, "fs.file-max");
            assert_eq!(fm.op, Op::AtLeast);
            assert_eq!(fm.prevents, FailureId::SystemFdLimit);
            assert!(fm.origin.file.starts_with("base.conf"), "{}", fm.origin);
            assert_eq!(
                fm.wanted(&vars(1_000_000)).unwrap(),
                Wanted::Numbers(vec![2_010_000])
            );
            assert_eq!(
                fm.wanted(&vars(200_000)).unwrap(),
                Wanted::Numbers(vec![410_000])
            );
            let ct = entry(&p, "net.netfilter.nf_conntrack_max");
            assert_eq!(
                ct.wanted(&vars(1_000_000)).unwrap(),
                Wanted::Numbers(vec![1_200_000])
            );
            let nr = entry(&p, "fs.nr_open");
            assert_eq!(
                nr.wanted(&vars(1_000_000)).unwrap(),
                Wanted::Numbers(vec![1_001_000])
            );
            // Target-scaled values scale down too: a 1,000-connection run
            // asks for no C1M-sized TIME-WAIT table or backlog.
            let tw = entry(&p, "net.ipv4.tcp_max_tw_buckets");
            assert_eq!(tw.wanted(&vars(1000)).unwrap(), Wanted::Numbers(vec![2000]));
            let nd = entry(&p, "net.core.netdev_max_backlog");
            assert_eq!(nd.wanted(&vars(1000)).unwrap(), Wanted::Numbers(vec![1000]));
            assert_eq!(
                nd.wanted(&vars(1_000_000)).unwrap(),
                Wanted::Numbers(vec![16384])
            );
            assert_eq!(
                nr.wanted(&vars(5_000_000)).unwrap(),
                Wanted::Numbers(vec![5_001_000])
            );
        }
        let server = load("server", &ProfileSource::Builtin).unwrap();
        assert_eq!(
            entry(&server, "net.core.somaxconn").prevents,
            FailureId::AcceptQueueOverflow
        );
        assert!(
            !server
                .entries
                .iter()
                .any(|e| e.key == "net.ipv4.ip_local_port_range")
        );
        let client = load("client", &ProfileSource::Builtin).unwrap();
        let range = entry(&client, "net.ipv4.ip_local_port_range");
        assert_eq!(range.op, Op::Exactly);
        assert_eq!(
            range.wanted(&vars(1)).unwrap(),
            Wanted::Numbers(vec![1024, 65535])
        );
        assert!(!client.entries.iter().any(|e| e.key == "net.core.somaxconn"));
        let lab = load("lab", &ProfileSource::Builtin).unwrap();
        assert!(lab.entries.iter().any(|e| e.key == "net.core.somaxconn"));
        assert!(
            lab.entries
                .iter()
                .any(|e| e.key == "net.ipv4.ip_local_port_range")
        );
        // base.conf is included twice (via server and client) but read once.
        assert_eq!(
            lab.files
                .iter()
                .filter(|f| f.starts_with("base.conf"))
                .count(),
            1
        );
        assert!(load("nosuch", &ProfileSource::Builtin).is_err());
    }

    #[test]
    fn comparisons_at_least_at_most_exactly_element_wise_and_text() {
        let n = |v: &[u64]| Wanted::Numbers(v.to_vec());
        assert!(compare(Op::AtLeast, "65535", &n(&[65535])));
        assert!(compare(Op::AtLeast, "70000", &n(&[65535])));
        assert!(!compare(Op::AtLeast, "4096", &n(&[65535])));
        assert!(compare(Op::AtMost, "30", &n(&[30])));
        assert!(!compare(Op::AtMost, "60", &n(&[30])));
        assert!(compare(Op::Exactly, "1024\t65535", &n(&[1024, 65535])));
        assert!(!compare(Op::Exactly, "32768\t60999", &n(&[1024, 65535])));
        assert!(!compare(Op::Exactly, "1024", &n(&[1024, 65535])));
        assert!(compare(Op::AtLeast, "10 20 30", &n(&[10, 20, 30])));
        assert!(!compare(Op::AtLeast, "10 19 30", &n(&[10, 20, 30])));
        assert!(!compare(Op::AtLeast, "", &n(&[1])));
        assert!(compare(Op::Exactly, "cubic", &Wanted::Text("cubic".into())));
        assert!(compare(Op::Exactly, "", &Wanted::Text(String::new())));
        assert!(!compare(Op::Exactly, "bbr", &Wanted::Text("cubic".into())));
    }

    #[test]
    fn value_to_write_keeps_elements_that_are_already_better() {
        let p = parse_str(
            "t.conf",
            "net.ipv4.tcp_mem >= 100 200 300 | tcp_memory_pressure\n\
             net.ipv4.tcp_fin_timeout <= 30 | orphan_sockets\n\
             net.ipv4.tcp_rmem = 4096 4096 16777216 | tcp_memory_pressure\n",
            &ProfileSource::Builtin,
        )
        .unwrap();
        let w = |k: &str| entry(&p, k).wanted(&vars(1)).unwrap();
        let e = entry(&p, "net.ipv4.tcp_mem");
        assert_eq!(
            e.value_to_write("50 250 100", &w("net.ipv4.tcp_mem")),
            "100 250 300"
        );
        let e = entry(&p, "net.ipv4.tcp_fin_timeout");
        assert_eq!(e.value_to_write("60", &w("net.ipv4.tcp_fin_timeout")), "30");
        let e = entry(&p, "net.ipv4.tcp_rmem");
        assert_eq!(
            e.value_to_write("4096 131072 33554432", &w("net.ipv4.tcp_rmem")),
            "4096 4096 16777216"
        );
    }

    #[test]
    fn expressions_evaluate_with_precedence_functions_and_rounding_up() {
        let ev = |t: &str| -> Vec<f64> {
            parse_values(t)
                .unwrap()
                .iter()
                .map(|e| e.eval(&vars(1000)).unwrap())
                .collect()
        };
        assert_eq!(ev("2*target + 10000"), vec![12000.0]);
        assert_eq!(ev("(target + 1) * 2"), vec![2002.0]);
        assert_eq!(ev("1024 65535"), vec![1024.0, 65535.0]);
        assert_eq!(ev("mem_pages/8 mem_pages/4"), vec![750_000.0, 1_500_000.0]);
        assert_eq!(ev("max(5, target) min(5, target, 7)"), vec![1000.0, 5.0]);
        assert_eq!(ev("1_000_000 - 1"), vec![999_999.0]);
        let p = parse_str(
            "t.conf",
            "net.ipv4.tcp_max_orphans >= 12*target/10 + 0.5 | orphan_sockets\n",
            &ProfileSource::Builtin,
        )
        .unwrap();
        assert_eq!(
            p.entries[0].wanted(&vars(3)).unwrap(),
            Wanted::Numbers(vec![5])
        );
        let p = parse_str(
            "t.conf",
            "fs.file-max >= 10 - target | system_fd_limit\n",
            &ProfileSource::Builtin,
        )
        .unwrap();
        let err = p.entries[0].wanted(&vars(100)).unwrap_err().to_string();
        assert!(
            err.starts_with("t.conf:1:") && err.contains("negative"),
            "{err}"
        );
    }

    #[test]
    fn malformed_lines_name_file_line_and_problem() {
        let cases = [
            ("fs.file-max >= 10\n", "failure id is missing"),
            (
                "fs.file-max >= 10 | no_such_failure\n",
                "unknown failure id 'no_such_failure'",
            ),
            (
                "fs.file-max 10 | system_fd_limit\n",
                "expected a comparison",
            ),
            ("fs.file-max >= | system_fd_limit\n", "needs a value"),
            (
                "fs.file-max >= 2*targets | system_fd_limit\n",
                "unknown variable 'targets'",
            ),
            (
                "fs.file-max >= 2*(target | system_fd_limit\n",
                "missing ')'",
            ),
            (
                "fs.file-max >= sqrt(4) | system_fd_limit\n",
                "unknown function 'sqrt'",
            ),
            (
                "fs.file-max >= 4 $ | system_fd_limit\n",
                "unexpected character '$'",
            ),
            ("include\n", "include needs a file name"),
        ];
        for (text, problem) in cases {
            let text = format!("# comment\n\n{text}");
            let err = parse_str("bad.conf", &text, &ProfileSource::Builtin)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("bad.conf:3: "), "{err}");
            assert!(err.contains(problem), "{text:?}: {err}");
        }
        // A non-arithmetic `=` value is text.
        let p = parse_str(
            "t.conf",
            "net.ipv4.tcp_congestion_control = cubic | connect_timeout\n",
            &ProfileSource::Builtin,
        )
        .unwrap();
        assert_eq!(p.entries[0].value, Value::Text("cubic".into()));
    }

    #[test]
    fn values_the_kernel_refuses_or_that_cripple_the_host_name_file_and_line() {
        let cases = [
            ("fs.file-max = 0", "below 1024"),
            (
                "fs.file-max >= 1_000_000_000_000_000_000_000_000",
                "above 9223372036854775807",
            ),
            ("fs.file-max >= target * target * target * 10", "above"),
            ("fs.nr_open >= 3000000000", "above 2147483584"),
            ("rlimit.nofile.hard >= target * 10000", "above 2147483584"),
            ("net.ipv4.ip_local_port_range = 1024 70000", "above 65535"),
            ("net.ipv4.ip_local_port_range = 60000 1024", "is empty"),
            ("net.core.somaxconn >= 0", "below 1"),
            ("net.ipv4.tcp_fin_timeout <= 600", "above 120"),
        ];
        for (line, problem) in cases {
            let text = format!("# comment\n{line} | system_fd_limit\n");
            let p = parse_str("b.conf", &text, &ProfileSource::Builtin).unwrap();
            let err = p.entries[0]
                .wanted(&vars(1_000_000))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("b.conf:2: "), "{line}: {err}");
            assert!(err.contains(problem), "{line}: {err}");
        }
        // The built-in profiles stay within bounds at a large target.
        for name in ["base", "server", "client", "lab"] {
            let p = load(name, &ProfileSource::Builtin).unwrap();
            for e in &p.entries {
                e.wanted(&vars(10_000_000)).unwrap();
            }
        }
    }

    #[test]
    fn unknown_keys_warn_and_are_skipped() {
        let p = parse_str(
            "w.conf",
            "rlimit.nproc >= 10 | fd_limit\nnot a key >= 1 | fd_limit\nnet.core.somaxconn >= 1 | accept_queue_overflow\n",
            &ProfileSource::Builtin,
        );
        // "not a key" has no comparison right after the key: an error.
        assert!(p.unwrap_err().to_string().starts_with("w.conf:2:"));
        let p = parse_str(
            "w.conf",
            "rlimit.nproc >= 10 | fd_limit\nnet..core >= 1 | fd_limit\nnet.core.somaxconn >= 1 | accept_queue_overflow\n",
            &ProfileSource::Builtin,
        )
        .unwrap();
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert!(p.warnings[0].starts_with("w.conf:1: unknown key 'rlimit.nproc'"));
        assert!(p.warnings[1].starts_with("w.conf:2: unknown key 'net..core'"));
    }

    #[test]
    fn includes_resolve_relative_override_and_report_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("common.conf"),
            "net.core.somaxconn >= 100 | accept_queue_overflow\nfs.file-max >= target | system_fd_limit\n",
        )
        .unwrap();
        std::fs::write(
            d.join("mine.conf"),
            "include common.conf\ninclude common.conf\nnet.core.somaxconn >= 200 | accept_queue_overflow | mine\n",
        )
        .unwrap();
        std::fs::write(
            d.join("loop.conf"),
            "include loop.conf\nfs.nr_open >= 1 | fd_limit\n",
        )
        .unwrap();
        std::fs::write(d.join("broken.conf"), "\ninclude missing.conf\n").unwrap();
        let src = ProfileSource::Dir(d.to_path_buf());
        let p = load("mine", &src).unwrap();
        assert_eq!(p.entries.len(), 2);
        // The override keeps the base's position and takes the new value.
        assert_eq!(p.entries[0].key, "net.core.somaxconn");
        assert_eq!(p.entries[0].value_text, "200");
        assert_eq!(p.entries[0].why.as_deref(), Some("mine"));
        assert!(p.entries[0].origin.file.ends_with("mine.conf"));
        assert_eq!(p.entries[0].origin.line, 3);
        assert_eq!(p.files.len(), 2);
        let by_path = load(
            d.join("mine.conf").to_str().unwrap(),
            &ProfileSource::Builtin,
        )
        .unwrap();
        assert_eq!(by_path.entries, p.entries);
        assert_eq!(load("loop", &src).unwrap().entries.len(), 1);
        let err = load("broken", &src).unwrap_err().to_string();
        assert!(err.contains("broken.conf:2: include missing.conf"), "{err}");
    }
}
