//! Build script: records the commit the binary was built from, for the
//! `dnslb_build_info` metric and `/health`.
//!
//! `DNSLB_COMMIT` from the environment wins (for builds from a tarball or in
//! a packaging pipeline); otherwise `git rev-parse --short HEAD` in the
//! package folder; otherwise `unknown` (no git, or not a checkout). Nothing
//! here can fail the build.

// Cargo reads a build script's instructions from its stdout.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `git ARGS` in `dir`; its trimmed stdout when it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Asks cargo to run this script again when HEAD moves: HEAD itself (a
/// branch switch), the branch's ref (a commit) and packed-refs.
fn watch_head(dir: &Path) {
    let Some(git_dir) = git(dir, &["rev-parse", "--absolute-git-dir"]) else {
        return;
    };
    let git_dir = Path::new(&git_dir);
    println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
    // In a worktree, branches live in the common folder, not the worktree's.
    let common = git(dir, &["rev-parse", "--git-common-dir"])
        .map(|c| dir.join(c))
        .unwrap_or_else(|| git_dir.to_path_buf());
    if let Some(reference) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        let file = common.join(reference);
        if file.exists() {
            println!("cargo:rerun-if-changed={}", file.display());
        }
    }
    let packed = common.join("packed-refs");
    if packed.exists() {
        println!("cargo:rerun-if-changed={}", packed.display());
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DNSLB_COMMIT");
    let dir: PathBuf =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| ".".into(), Into::into);
    let dir = dir.as_path();
    let commit = commit(std::env::var("DNSLB_COMMIT").ok(), || {
        watch_head(dir);
        git(dir, &["rev-parse", "--short", "HEAD"])
    });
    println!("cargo:rustc-env=DNSLB_COMMIT={commit}");
}

/// The commit to record: `env` (`DNSLB_COMMIT`) trimmed when it is set and
/// not blank, else what `git` says, else `unknown`. (Tested by
/// tests/integration/build_info.rs, which includes this file.)
pub(crate) fn commit(env: Option<String>, git: impl FnOnce() -> Option<String>) -> String {
    match env {
        Some(c) if !c.trim().is_empty() => c.trim().to_owned(),
        _ => git().unwrap_or_else(|| "unknown".to_owned()),
    }
}
