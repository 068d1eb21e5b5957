//! Building a child's command line from typed arguments. serve starts its
//! workers, flood its shards, and the lab and its scenarios start serve and
//! flood, all by re-executing this binary; each clap `Args` struct writes
//! itself back as argv with `to_argv()` through this builder, so the flag
//! values are formatted in one way that the matching value parsers read
//! back exactly (durations in humantime's exact form, value enums by their
//! clap names). Each struct's round-trip test (`parse(to_argv(a)) == a`)
//! keeps the two sides in step.
//!
//! [`Procs`] lives here too: `serve` and `flood` take the same
//! `--procs auto|N` (serve's old `--workers` is a hidden alias).
use std::ffi::OsString;
use std::fmt::Display;
use std::time::Duration;

/// A command line under construction.
#[derive(Debug, Default, Clone)]
pub struct Argv(Vec<OsString>);

impl Argv {
    pub fn new() -> Argv {
        Argv::default()
    }

    /// A positional argument or a subcommand name.
    pub fn arg(mut self, value: impl Into<OsString>) -> Argv {
        self.0.push(value.into());
        self
    }

    /// `--name value`.
    pub fn opt(self, name: &str, value: impl Display) -> Argv {
        self.arg(format!("--{name}")).arg(value.to_string())
    }

    /// `--name value` for a path or other OS string.
    pub fn opt_os(self, name: &str, value: impl Into<OsString>) -> Argv {
        self.arg(format!("--{name}")).arg(value)
    }

    /// `--name value` when there is a value.
    pub fn opt_some(self, name: &str, value: Option<impl Display>) -> Argv {
        match value {
            Some(v) => self.opt(name, v),
            None => self,
        }
    }

    /// `--name` when set.
    pub fn flag(self, name: &str, set: bool) -> Argv {
        if set {
            self.arg(format!("--{name}"))
        } else {
            self
        }
    }

    /// `--name DURATION`, exact to the nanosecond (`1s 500ms`).
    pub fn duration(self, name: &str, d: Duration) -> Argv {
        self.opt(name, duration(d))
    }

    /// `--name VALUE` for a clap value enum, by its clap name.
    pub fn value_enum<T: clap::ValueEnum>(self, name: &str, v: &T) -> Argv {
        self.opt(name, value_name(v))
    }

    /// `--name a,b,c` (for a flag declared with `value_delimiter = ','`).
    pub fn list<T: Display>(self, name: &str, values: &[T]) -> Argv {
        if values.is_empty() {
            return self;
        }
        let joined: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        self.opt(name, joined.join(","))
    }

    pub fn into_vec(self) -> Vec<OsString> {
        self.0
    }
}

/// A duration as text that `util::parse_duration` reads back exactly.
pub fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The name clap gives a value enum's variant on the command line.
pub fn value_name<T: clap::ValueEnum>(v: &T) -> String {
    // Only variants marked `#[value(skip)]` have no name; none is.
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

/// `--procs`: how many processes, in serve and flood alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Procs {
    /// As many as the per-process fd limit requires for the connections.
    Auto,
    N(u32),
}

/// The most processes `--procs` takes (and `auto` sizes to).
pub const MAX_PROCS: u32 = 4096;

impl Procs {
    /// The fixed count, `None` for auto.
    pub fn count(self) -> Option<u32> {
        match self {
            Procs::Auto => None,
            Procs::N(n) => Some(n),
        }
    }
}

impl std::fmt::Display for Procs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Procs::Auto => f.write_str("auto"),
            Procs::N(n) => write!(f, "{n}"),
        }
    }
}

/// The value parser of `--procs`: "auto" or a count from 1 to [`MAX_PROCS`].
pub fn parse_procs(text: &str) -> Result<Procs, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("auto") {
        return Ok(Procs::Auto);
    }
    match t.parse::<u32>() {
        Ok(n) if (1..=MAX_PROCS).contains(&n) => Ok(Procs::N(n)),
        _ => Err(format!(
            "'{text}' is not 'auto' or a number of processes from 1 to {MAX_PROCS}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procs_parse_and_print_alike() {
        for p in [Procs::Auto, Procs::N(1), Procs::N(MAX_PROCS)] {
            assert_eq!(parse_procs(&p.to_string()), Ok(p));
        }
        assert_eq!(parse_procs("AUTO"), Ok(Procs::Auto));
        for bad in ["0", "4097", "zero", "-1", ""] {
            let e = parse_procs(bad).unwrap_err();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
        }
    }

    #[test]
    fn durations_read_back_exactly() {
        for d in [
            Duration::ZERO,
            Duration::from_millis(1500),
            Duration::new(3, 7),
            Duration::from_secs(86_400 * 3 + 1),
        ] {
            assert_eq!(crate::util::parse_duration(&duration(d)), Ok(d), "{d:?}");
        }
    }

    #[test]
    fn options_flags_and_lists_come_out_in_order() {
        let v = Argv::new()
            .arg("serve")
            .opt("port", 80)
            .opt_some("rate", None::<u32>)
            .flag("json", true)
            .flag("quiet", false)
            .list("fds", &[3, 4])
            .list("none", &[] as &[i32])
            .into_vec();
        assert_eq!(v, ["serve", "--port", "80", "--json", "--fds", "3,4"]);
    }
}
