//! `dnslb check`: validates a config and every zone it names, collecting all
//! problems as `file:line: what is wrong` lines.
use std::path::Path;

use crate::config::Config;
use crate::ts::{self, TsSettings, zonefile};

/// Every problem found in the config at `path` and its zones (empty: all good).
pub fn check(path: &Path) -> Vec<String> {
    let cfg = match Config::diagnose_file(path) {
        Ok(c) => c,
        Err(errs) => return errs.iter().map(ToString::to_string).collect(),
    };
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
        if files_ok && let Err(e) = ts::load_catalog(&settings, 1) {
            push(e.to_string());
        }
    }
    problems
}
