//! The command line as people use it: short flags that mean the same in
//! every command, tcpkali's --connect-rate, `serve --bind localhost`,
//! examples and exit codes at the end of every --help, completions and the
//! manual page, the git revision in --version, one error prefix style, and
//! --plot with a name that is not .svg.
use std::process::{Command, Output};

use c1m::flood::args::FloodArgs;
use c1m::reactor::args::ServeArgs;

fn c1m(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_c1m"))
        .args(args)
        .output()
        .expect("run c1m")
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn short_flags_and_aliases_parse_to_the_long_ones() {
    let a = FloodArgs::try_parse_from([
        "127.0.0.1",
        "8888",
        "-c",
        "5k",
        "-r",
        "2k",
        "-w",
        "50",
        "-T",
        "3s",
        "-j",
    ])
    .unwrap();
    let b = FloodArgs::try_parse_from([
        "127.0.0.1",
        "8888",
        "--connections",
        "5000",
        "--connect-rate",
        "2000",
        "--window",
        "50",
        "--hold",
        "3s",
        "--json",
    ])
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.connections, 5000);
    // The default run is bounded: 10 s of hold, forever on request.
    let d = FloodArgs::try_parse_from(["127.0.0.1", "8888"]).unwrap();
    assert_eq!(d.hold.0, Some(std::time::Duration::from_secs(10)));
    assert_eq!(
        FloodArgs::try_parse_from(["h", "1", "-T", "forever"])
            .unwrap()
            .hold
            .0,
        None
    );
    // serve --bind takes a name, as flood's HOST does.
    let s = ServeArgs::try_parse_from(["--bind", "localhost"]).unwrap();
    assert!(s.bind.is_loopback(), "{}", s.bind);
    // -j and -n mean the same in every command that has them.
    for args in [
        &["doctor", "-j", "-n", "1000"][..],
        &[
            "analyze",
            "-j",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/seed.txt"),
        ][..],
    ] {
        let o = c1m(args);
        assert!(
            o.status.code().is_some_and(|c| c < 2),
            "{args:?}: {}",
            out(&o)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(v.is_object(), "{args:?}");
    }
    // -q: the verdict alone.
    let o = c1m(&["doctor", "-q", "-n", "1000"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("verdict: "), "{text}");
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/seed.txt");
    let o = c1m(&["analyze", "-q", seed]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.starts_with("verdict: ") && text.lines().count() <= 6,
        "{text}"
    );
    // No "tip: use '-- -c'" any more: -c is a flag.
    let o = c1m(&["flood", "127.0.0.1", "1", "-c", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).contains("--connections"), "{}", out(&o));
    assert!(!out(&o).contains("tip:"), "{}", out(&o));
}

#[test]
fn every_help_ends_with_examples_and_exit_codes() {
    for cmd in [
        vec!["--help"],
        vec!["doctor", "--help"],
        vec!["lab", "--help"],
        vec!["serve", "--help"],
        vec!["flood", "--help"],
        vec!["analyze", "--help"],
        vec!["completions", "--help"],
        vec!["man", "--help"],
    ] {
        let o = c1m(&cmd);
        assert_eq!(o.status.code(), Some(0), "{cmd:?}");
        let text = String::from_utf8_lossy(&o.stdout);
        let ex = text
            .find("Examples:")
            .unwrap_or_else(|| panic!("{cmd:?}: {text}"));
        let exit = text
            .rfind("Exit status:")
            .unwrap_or_else(|| panic!("{cmd:?}: {text}"));
        assert!(ex < exit, "{cmd:?}: {text}");
        // The exit codes are the last paragraph.
        assert!(!text[exit..].contains("\n\n"), "{cmd:?}: {text}");
    }
}

#[test]
fn completions_man_and_version() {
    for shell in ["bash", "zsh", "fish"] {
        let o = c1m(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("doctor") && text.contains("analyze"),
            "{shell}"
        );
        assert!(text.contains("connect-rate"), "{shell}");
    }
    let o = c1m(&["man"]);
    assert_eq!(o.status.code(), Some(0));
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(page.contains(".TH c1m 1"), "{page}");
    assert!(page.contains("doctor"), "{page}");
    let o = c1m(&["man", "doctor"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("\\-\\-target"));
    let o = c1m(&["man", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        out(&o).starts_with("c1m man: error: no command 'nosuch'"),
        "{}",
        out(&o)
    );
    let v = String::from_utf8_lossy(&c1m(&["--version"]).stdout).into_owned();
    assert!(v.starts_with("c1m 0.") && v.contains("(git "), "{v}");
}

#[test]
fn errors_say_which_command_and_plot_says_it_writes_svg() {
    let o = c1m(&["doctor", "--profile", "/nonexistent/p.conf"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with("c1m doctor: error: "),
        "{}",
        out(&o)
    );
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("x.png");
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/seed.txt");
    let o = c1m(&["analyze", seed, "--plot", png.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(!png.exists());
    let svg = dir.path().join("x.svg");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    assert!(out(&o).contains("--plot writes SVG"), "{}", out(&o));
}

#[test]
fn sources_take_flood_syntax_in_the_lab_and_bad_ones_are_named() {
    // A count and a list parse alike in doctor and the lab (one parser).
    for sources in ["4", "127.0.0.2-127.0.0.11,127.0.1.1"] {
        let o = c1m(&[
            "doctor",
            "--role",
            "client",
            "-n",
            "1000",
            "-q",
            "--sources",
            sources,
        ]);
        assert!(
            o.status.code().is_some_and(|c| c < 2),
            "{sources}: {}",
            out(&o)
        );
    }
    for (args, says) in [
        (
            &["lab", "--sources", "ten"][..],
            "neither a count nor an address list",
        ),
        (&["lab", "--sources", "0"][..], "at least 1"),
        (&["lab", "--sources", "300"][..], "from 1 to 254"),
        (
            &["lab", "--sources", "10.0.0.1-10.0.0.9"][..],
            "not an IPv4 loopback address",
        ),
        (
            &["lab", "--clients", "3", "--sources", "127.0.0.2-3"][..],
            "each client needs at least one",
        ),
        (
            &["lab", "--hosts", "--sources", "127.0.0.2-127.0.0.9"][..],
            "give a count, not a list",
        ),
    ] {
        let o = c1m(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", out(&o));
        assert!(out(&o).contains("--sources"), "{args:?}: {}", out(&o));
        assert!(out(&o).contains(says), "{args:?}: {}", out(&o));
    }
}
