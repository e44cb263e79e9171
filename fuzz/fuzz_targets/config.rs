//! The `config.toml` parser and validator on any text.
//!
//! Input: the file (its UTF-8 prefix). Property: no panic; every error
//! names the file, and its line when it has one lies in the input; the first
//! problem `Config::diagnose` lists is the one `Config::from_toml` returns.
#![no_main]

use dnslb::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

fn check(e: &ConfigError, file: &std::path::Path, lines: usize) {
    let rendered = e.to_string();
    assert_eq!(e.file(), file, "error names another file: {rendered}");
    match e.line() {
        Some(line) => dnslb_fuzz::check_located(&rendered, file, line, lines),
        None => assert!(
            rendered.starts_with(&format!("{}: ", file.display())),
            "error does not name the file: {rendered:?}"
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = dnslb_fuzz::utf8_prefix(data);
    let file = dnslb_fuzz::fake_path("config.toml");
    let lines = dnslb_fuzz::line_bound(text);
    let diagnosed = Config::diagnose(text, &file);
    let first = Config::from_toml(text, &file);
    match (diagnosed, first) {
        (Ok(_), Ok(_)) => {}
        (Err(all), Err(one)) => {
            assert!(!all.is_empty(), "diagnose failed without a problem");
            for e in &all {
                check(e, &file, lines);
            }
            assert_eq!(all.first(), Some(&one), "from_toml and diagnose disagree");
        }
        (d, f) => panic!("diagnose {:?} but from_toml {:?}", d.err(), f.err()),
    }
});
