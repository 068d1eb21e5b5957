//! The tree shows the layers, and this test keeps it so: the leaf layer
//! (`src/sys/`, processes and the kernel) and the shared vocabulary
//! (`src/catalogue.rs`, `src/util.rs`) import nothing above them, and
//! `events` does not import `diagnosis`. A newcomer can then read `sys`
//! alone, and a change that makes a floor lean on a roof fails here.
use std::path::Path;

/// Modules of the crate a file imports (`crate::NAME`).
fn crate_imports(path: &Path) -> Vec<(usize, String)> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((n + 1, name));
            }
        }
        // `use crate::{a, b}` groups.
        if let Some(i) = code.find("crate::{") {
            let inner = &code[i + "crate::{".len()..];
            for part in inner.split([',', '}']) {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push((n + 1, name));
                }
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::` import in `files` must name one of `allowed`.
fn check(files: &[std::path::PathBuf], allowed: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for f in files {
        for (line, name) in crate_imports(f) {
            if !allowed.contains(&name.as_str()) {
                bad.push(format!("{}:{line} imports crate::{name}", f.display()));
            }
        }
    }
    bad
}

#[test]
fn the_leaf_layer_imports_nothing_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/sys"), &mut files);
    assert!(files.len() >= 5, "src/sys/ holds the leaf layer");
    let bad = check(&files, &["sys", "util"]);
    assert!(
        bad.is_empty(),
        "the leaf layer reaches up:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_shared_vocabulary_imports_nothing_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = [root.join("src/catalogue.rs"), root.join("src/util.rs")];
    let bad = check(&files, &["catalogue", "util"]);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let events = [root.join("src/events.rs")];
    let bad = check(&events, &["events", "catalogue", "util", "sys"]);
    assert!(
        bad.is_empty(),
        "events must not import diagnosis or above:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_checker_sees_an_upward_import() {
    let dir = tempfile::tempdir().expect("temp dir");
    let f = dir.path().join("x.rs");
    std::fs::write(&f, "use crate::sys::netns;\nuse crate::{util, harness};\nfn f() { crate::flood::run(); } // crate::diagnosis in a comment\n")
        .expect("write");
    let bad = check(&[f], &["sys", "util"]);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(
        bad[0].ends_with("imports crate::harness") || bad[1].ends_with("imports crate::harness")
    );
}
