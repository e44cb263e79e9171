//! The shipped `config.toml` is "commented key by key" (README), and its
//! header says "Keys that are commented out show their default value": every
//! key the config accepts must be there, set or commented out. The keys a
//! section accepts are taken from `dnslb check` itself: an unknown key is
//! refused with the list of the valid ones.
use std::time::Duration;

use crate::kit::{crate_dir, run_dnslb};

/// A config whose section `header` (with what it needs) holds an unknown key.
const SECTIONS: &[(&str, &str)] = &[
    ("[ls]", "[ls]\nzzz_unknown = 1\n"),
    (
        "[[ls.backend]]",
        "[ls]\n[[ls.backend]]\nname = \"a\"\naddr = \"127.0.0.1:5301\"\nzzz_unknown = 1\n",
    ),
    ("[ls.health]", "[ls]\n[ls.health]\nzzz_unknown = 1\n"),
    ("[ls.cache]", "[ls]\n[ls.cache]\nzzz_unknown = 1\n"),
    ("[ls.anycast]", "[ls]\n[ls.anycast]\nzzz_unknown = 1\n"),
    ("[[ls.pool]]", "[ls]\n[[ls.pool]]\nzzz_unknown = 1\n"),
    (
        "[[ls.dynamic_block]]",
        "[ls]\n[[ls.dynamic_block]]\nzzz_unknown = 1\n",
    ),
    (
        "[[ts]]",
        "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\nzones = []\nzzz_unknown = 1\n",
    ),
    ("[[key]]", "[[key]]\nname = \"k\"\nzzz_unknown = 1\n"),
];

/// The keys `dnslb check` says `section` accepts.
fn valid_keys(config: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.toml"), config).unwrap();
    let out = run_dnslb(
        &["check", "-c", "c.toml"],
        dir.path(),
        None,
        Duration::from_secs(10),
    );
    let line = out
        .stderr_lines()
        .into_iter()
        .find(|l| l.contains("unknown key 'zzz_unknown'"))
        .unwrap_or_else(|| panic!("no unknown-key line: {}", out.stderr))
        .to_owned();
    let (_, list) = line
        .split_once("valid keys: ")
        .unwrap_or_else(|| panic!("no list of keys: {line}"));
    list.split(", ").map(|k| k.trim().to_owned()).collect()
}

#[test]
fn the_shipped_config_shows_every_key_of_every_section() {
    let shipped = std::fs::read_to_string(crate_dir().join("config.toml")).unwrap();
    // Every `key =` line, commented out or not, per section header seen last.
    let mut missing = Vec::new();
    for (header, config) in SECTIONS {
        let mut in_section = false;
        let mut present: Vec<String> = Vec::new();
        for line in shipped.lines() {
            let bare = line.trim_start_matches('#').trim();
            let is_header = bare.starts_with('[')
                && bare.ends_with(']')
                && !bare.contains(' ')
                && !bare.contains('"');
            if is_header {
                in_section = bare == *header;
                // A sub-table is a key of its parent.
                let inner = bare.trim_matches(|c| c == '[' || c == ']');
                let section = header.trim_matches(|c| c == '[' || c == ']');
                if let Some((parent, sub)) = inner.rsplit_once('.')
                    && parent == section
                {
                    present.push(sub.to_owned());
                }
                continue;
            }
            if in_section && let Some((key, _)) = bare.split_once('=') {
                present.push(key.trim().to_owned());
            }
        }
        for key in valid_keys(config) {
            if !present.contains(&key) {
                missing.push(format!("{header} {key}"));
            }
        }
    }
    assert!(missing.is_empty(), "not in config.toml: {missing:?}");
}
