//! One limits layer: every `/proc` path of the crate is written in
//! `src/sys/procfs.rs` and nowhere else, so that each kernel file is read
//! (and parsed) in one place. A `"/proc` string literal anywhere else under
//! `src/` fails this test, with the file and line to move into that module.
use std::path::{Path, PathBuf};

/// The one file allowed to name `/proc` paths.
const LAYER: &str = "src/sys/procfs.rs";

/// Lines of `text` holding a string literal that starts with `/proc`.
fn proc_literals(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.trim_start();
            !code.starts_with("//") && line.contains("\"/proc")
        })
        .map(|(n, _)| n + 1)
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn proc_paths_appear_only_in_the_limits_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 20, "src/ holds the crate");
    let layer = root.join(LAYER);
    assert!(files.contains(&layer), "{LAYER} exists");
    let mut bad = Vec::new();
    for f in files.iter().filter(|f| **f != layer) {
        let text =
            std::fs::read_to_string(f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
        for line in proc_literals(&text) {
            bad.push(format!(
                "{}:{line}",
                f.strip_prefix(root).unwrap_or(f).display()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "/proc is read outside {LAYER}; go through it instead:\n{}",
        bad.join("\n")
    );
    let own = std::fs::read_to_string(&layer).unwrap_or_else(|e| panic!("{LAYER}: {e}"));
    assert!(
        !proc_literals(&own).is_empty(),
        "{LAYER} names the /proc paths"
    );
}

#[test]
fn the_checker_sees_a_proc_literal_and_skips_comments() {
    let text = "// reads \"/proc/meminfo\" in a comment\nlet a = 1;\nlet t = std::fs::read_to_string(\"/proc/sys/fs/file-max\");\n";
    assert_eq!(proc_literals(text), [3]);
    assert!(proc_literals("let p = \"/tmp/x\";\n").is_empty());
}
