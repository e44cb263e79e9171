//! Test-only module: built under #[cfg(test)] (see `config/mod.rs`).
//! Tests of `[ls.cache]`: off when omitted, the documented defaults, every key read, unknown
//! keys named, and its rules reported with `file:line`.

use super::*;

/// `BASE` with `table` (a `[ls.cache]` table and its keys) after the `[ls]` keys.
fn with_cache(table: &str) -> String {
    BASE.replace("[[ls.backend]]", &format!("{table}\n\n[[ls.backend]]"))
}

/// Every problem `text` has, as printed.
fn problems(text: &str) -> Vec<String> {
    match Config::diagnose(text, Path::new(FILE)) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn the_cache_is_off_unless_its_table_is_written() {
    let config = parse(BASE).unwrap();
    assert_eq!(config.ls.unwrap().cache, None);
}

#[test]
fn an_empty_table_turns_the_cache_on_with_the_spec_defaults() {
    let config = parse(&with_cache("[ls.cache]")).unwrap();
    let cache = config.ls.unwrap().cache.unwrap();
    assert_eq!(
        cache,
        CacheConfig {
            max_entries: 100_000,
            max_ttl: 86_400,
            neg_ttl: 3_600,
            stale_ttl: 86_400,
        }
    );
    assert_eq!(cache, CacheConfig::default());
}

#[test]
fn every_cache_key_is_read() {
    let text = with_cache("[ls.cache]\nmax_entries = 7\nmax_ttl = 600\nneg_ttl = 0\nstale_ttl = 0");
    let cache = parse(&text).unwrap().ls.unwrap().cache.unwrap();
    assert_eq!(
        (
            cache.max_entries,
            cache.max_ttl,
            cache.neg_ttl,
            cache.stale_ttl
        ),
        (7, 600, 0, 0)
    );
    // Dotted keys under [ls] say the same.
    let text = BASE.replace("[ls]\n", "[ls]\ncache.max_entries = 9\n");
    let cache = parse(&text).unwrap().ls.unwrap().cache.unwrap();
    assert_eq!(cache.max_entries, 9);
    assert_eq!(cache.max_ttl, 86_400);
}

#[test]
fn an_unknown_cache_key_is_named_with_its_line() {
    let text = with_cache("[ls.cache]\nmax_entries = 5\nstale_tll = 10");
    assert_eq!(
        err(&text),
        "config.toml:6: unknown key 'stale_tll' in [ls.cache] (did you mean 'stale_ttl'?)"
    );
    let e = err(&with_cache("[ls.cache]\ncolour = 1"));
    let want = "config.toml:5: unknown key 'colour' in [ls.cache]; valid keys:";
    assert!(e.starts_with(want), "{e}");
}

#[test]
fn a_cache_value_of_the_wrong_type_names_its_key() {
    let text = with_cache("[ls.cache]\nmax_ttl = -1");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.line(), Some(5));
    assert!(e.message().starts_with("ls.cache.max_ttl: "), "{e}");
}

#[test]
fn cache_rules_are_reported_at_their_key() {
    let cases = [
        (
            "max_entries = 0",
            "ls.cache.max_entries: must be at least 1 (omit [ls.cache] to turn the cache off)",
        ),
        (
            "max_entries = 16777217",
            "ls.cache.max_entries: must be at most 16777216, got 16777217",
        ),
        (
            "max_ttl = 0\nneg_ttl = 0",
            "ls.cache.max_ttl: must be at least 1 (omit [ls.cache] to turn the cache off)",
        ),
        (
            "max_ttl = 4294967295\nneg_ttl = 0",
            "ls.cache.max_ttl: must be at most 2147483647 (RFC 2181), got 4294967295",
        ),
        (
            "stale_ttl = 2147483648",
            "ls.cache.stale_ttl: must be at most 2147483647 (RFC 2181), got 2147483648",
        ),
        (
            "neg_ttl = 7200\nmax_ttl = 60",
            "ls.cache.neg_ttl: neg_ttl (7200) must not exceed max_ttl (60)",
        ),
    ];
    for (keys, want) in cases {
        let text = with_cache(&format!("[ls.cache]\n{keys}"));
        assert_eq!(problems(&text), vec![format!("config.toml:5: {want}")]);
        assert_eq!(
            parse(&text).unwrap_err().to_string(),
            format!("config.toml:5: {want}")
        );
    }
    // The bounds are inclusive; zero negative and stale lifetimes are allowed.
    let text = "[ls.cache]\nmax_entries = 16777216\nmax_ttl = 60\nneg_ttl = 60\nstale_ttl = 0";
    parse(&with_cache(text)).unwrap();
    parse(&with_cache("[ls.cache]\nneg_ttl = 0\nmax_entries = 1")).unwrap();
}

#[test]
fn a_cache_built_in_code_validates_like_one_read_from_a_file() {
    let mut config = parse(BASE).unwrap();
    let ls = config.ls.as_mut().unwrap();
    ls.cache = Some(CacheConfig {
        max_entries: 0,
        ..CacheConfig::default()
    });
    let problems: Vec<String> = config.problems().iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        vec![
            "config.toml: ls.cache.max_entries: must be at least 1 (omit [ls.cache] to turn the cache off)"
        ]
    );
}
