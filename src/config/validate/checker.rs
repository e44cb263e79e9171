//! [`ConfigChecker`]: the problems found so far, each with the line of its key
//! when the text is known; and the rule every named table shares (names
//! non-empty and unique), and when two listen addresses clash ([`overlap`]).
use std::net::SocketAddr;
use std::path::Path;

use crate::config::error::ConfigError;
use crate::config::source_map::{SourceMap, display_path};

/// Collects validation problems, finding each one's line.
pub(super) struct ConfigChecker<'a> {
    /// The config file.
    pub(super) file: &'a Path,
    /// Where keys are in the file, when the text is known.
    pub(super) map: Option<&'a SourceMap<'a>>,
    /// The problems found so far.
    pub(super) out: Vec<ConfigError>,
}

impl ConfigChecker<'_> {
    /// Records a problem with the key at `paths[0]` (dotted, with array indices, e.g.
    /// `ts.1.name`); the line is that of the first path found in the file, else of the
    /// nearest enclosing table.
    pub(super) fn push(&mut self, paths: &[&str], msg: String) {
        let problem = self.problem(paths, msg);
        self.out.push(problem);
    }

    /// The problem `msg` with the key at `paths[0]`, as [`ConfigChecker::push`] records it.
    pub(super) fn problem(&self, paths: &[&str], msg: String) -> ConfigError {
        let line = self.map.and_then(|map| map.line_of_any(paths));
        let key = paths.first().map(|p| display_path(p)).unwrap_or_default();
        let msg = if key.is_empty() {
            msg
        } else {
            format!("{key}: {msg}")
        };
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            line,
            msg,
        }
    }

    /// Records "must be at most `max`" when `v` exceeds it.
    pub(super) fn at_most<T: PartialOrd + std::fmt::Display>(&mut self, v: T, max: T, path: &str) {
        if v > max {
            self.push(&[path], format!("must be at most {max}, got {v}"));
        }
    }

    /// Records `msg` unless `ok`.
    pub(super) fn require(&mut self, ok: bool, path: &str, msg: impl FnOnce() -> String) {
        if !ok {
            self.push(&[path], msg());
        }
    }
}

/// Names under `table` (an array of tables) must be non-empty and unique.
pub(super) fn check_names<'n>(
    names: impl Iterator<Item = &'n str>,
    table: &str,
    what: &str,
    check: &mut ConfigChecker<'_>,
) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, name) in names.enumerate() {
        let path = format!("{table}.{i}.name");
        if name.trim().is_empty() {
            check.push(&[&path], format!("a {what} name must not be empty"));
        } else if seen.contains(&name) {
            check.push(&[&path], format!("duplicate {what} name {name:?}"));
        }
        seen.push(name);
    }
}

/// Whether sockets bound to `a` and `b` would compete for the same port.
pub(in crate::config) fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}
