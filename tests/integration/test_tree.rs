//! The test tree's own rules, as README.md and docs/ARCHITECTURE.md state
//! them: every file of this binary is a module `main.rs` lists (a file left
//! out would never run), `main.rs`'s table of features names every test
//! file and only those, and a test file imports helpers only from the kit
//! (`crate::kit`), never from another test file.
use std::path::{Path, PathBuf};

use crate::kit::crate_dir;

/// The `.rs` files below `dir`, with their paths from it.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn root() -> PathBuf {
    crate_dir().join("tests/integration")
}

/// The `mod NAME;` lines of a `main.rs` or `mod.rs`.
fn declared(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| {
            // `mod NAME;`, `pub mod NAME;`, `pub(crate) mod NAME;`...
            let (vis, name) = l.trim().split_once("mod ")?;
            let vis = vis.trim();
            (vis.is_empty() || vis.starts_with("pub")).then_some(())?;
            name.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

#[test]
fn every_file_of_the_binary_is_a_module_main_lists() {
    let mut missing = Vec::new();
    for file in rust_files(&root()) {
        let name = file.file_stem().unwrap().to_str().unwrap();
        if name == "main" || name == "mod" {
            continue;
        }
        let dir = file.parent().unwrap();
        let parent = if dir == root() {
            dir.join("main.rs")
        } else {
            dir.join("mod.rs")
        };
        if !declared(&parent).iter().any(|m| m == name) {
            missing.push(file.strip_prefix(root()).unwrap().display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "files no module list names: {missing:?}"
    );
}

/// The test files `main.rs`'s header names in its table of features
/// (`name.rs` in a `//! |` row), sorted, each once.
fn tabled(main: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(main).unwrap();
    let mut out: Vec<String> = (text.lines())
        .filter(|l| l.starts_with("//! |"))
        .flat_map(|l| l.split('`'))
        .filter_map(|w| w.strip_suffix(".rs"))
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn the_feature_table_names_every_test_file_and_no_other() {
    let main = root().join("main.rs");
    let mut files: Vec<String> = (declared(&main).into_iter())
        .filter(|m| m != "kit" && m != "peers")
        .collect();
    files.sort();
    let tabled = tabled(&main);
    let missing: Vec<&String> = files.iter().filter(|f| !tabled.contains(f)).collect();
    let unknown: Vec<&String> = tabled.iter().filter(|t| !files.contains(t)).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "main.rs's table of features: files it leaves out {missing:?}, names no file is {unknown:?}"
    );
}

#[test]
fn test_files_import_helpers_only_from_the_kit() {
    let kit = root().join("kit");
    let mut sideways = Vec::new();
    for file in rust_files(&root()) {
        if file.starts_with(&kit) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                let module: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // `crate::kit`, and `crate::peers` only in peers/'s own map.
                let own_map = module == "peers" && file.ends_with("peers/mod.rs");
                if module != "kit" && !own_map && rest[module.len()..].starts_with("::") {
                    let at = file.strip_prefix(root()).unwrap().display();
                    sideways.push(format!("{at}:{}: {}", i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        sideways.is_empty(),
        "test files importing from other test files (move the helper to kit/):\n{}",
        sideways.join("\n")
    );
}
