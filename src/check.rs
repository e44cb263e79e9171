//! `dnslb check`: validates a config and every zone it names, collecting all
//! problems as `file:line: what is wrong` lines, and warnings (which do not
//! make the config bad) as `file:line: warning: what to know` lines.
use std::path::Path;

use crate::config::Config;
use crate::ts::{self, TsSettings, zonefile};

/// What `dnslb check` found.
#[derive(Debug, Default)]
pub struct Checked {
    /// Problems: the config is bad while there is one.
    pub problems: Vec<String>,
    /// Warnings: worth knowing, the config is good all the same.
    pub warnings: Vec<String>,
}

/// Every problem found in the config at `path` and its zones (empty: all good).
pub fn check(path: &Path) -> Vec<String> {
    check_all(path).problems
}

/// Every problem and warning found in the config at `path` and its zones.
pub fn check_all(path: &Path) -> Checked {
    let cfg = match Config::diagnose_file(path) {
        Ok(c) => c,
        Err(errs) => {
            return Checked {
                problems: errs.iter().map(ToString::to_string).collect(),
                warnings: Vec::new(),
            };
        }
    };
    let mut warnings = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut push = |p: String| {
        if !problems.contains(&p) {
            problems.push(p);
        }
    };
    for tc in &cfg.ts {
        let settings = TsSettings::from_config(tc);
        // Each file on its own first, so every bad file is reported.
        let mut files_ok = true;
        for file in &settings.zones {
            if let Err(e) = zonefile::check_file(file, &settings.origin, settings.ttl) {
                push(e.to_string());
                files_ok = false;
            }
        }
        // Then the zones they build together (e.g. a CNAME beside other data).
        if files_ok && let Err(e) = ts::load_catalog_noting(&settings, 1, &mut warnings) {
            push(e.to_string());
        }
    }
    // A file named by several table servers is warned about once.
    let mut seen = std::collections::HashSet::new();
    warnings.retain(|w| seen.insert(w.clone()));
    Checked { problems, warnings }
}
