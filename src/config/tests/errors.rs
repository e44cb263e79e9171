//! Test-only module: built under #[cfg(test)] (see `config/mod.rs`).
//! Tests of parse errors: each names the file, the line and the key.

use super::*;

#[test]
fn unknown_key_at_top_level() {
    assert_eq!(
        err("[ls]\n\nlisten = []\n").lines().count(),
        1,
        "sanity: errors are one line"
    );
    let e = parse("# hi\nverbose = true\n").unwrap_err();
    assert_eq!(e.line(), Some(2));
    assert_eq!(
        e.to_string(),
        "config.toml:2: unknown key 'verbose' at top level; valid keys: ls, ts, key"
    );
    assert_eq!(
        err("\n[lss]\nworkers = 1\n"),
        "config.toml:2: unknown table 'lss' at top level (did you mean 'ls'?)"
    );
}

#[test]
fn unknown_key_in_ls() {
    let text = BASE.replace("[ls]\n", "[ls]\nworkers = 2\nhedge_dealy_ms = 20\n");
    assert_eq!(
        err(&text),
        "config.toml:3: unknown key 'hedge_dealy_ms' in [ls] (did you mean 'hedge_delay_ms'?)"
    );
    let text = format!("{BASE}\n[ls.health]\nfal = 2\n");
    assert_eq!(
        err(&text),
        "config.toml:14: unknown key 'fal' in [ls.health] (did you mean 'fall'?)"
    );
    let text = BASE.replace(
        "addr = \"127.0.0.1:5301\"",
        "addr = \"127.0.0.1:5301\"\nport = 1",
    );
    let e = err(&text);
    assert!(
        e.starts_with("config.toml:7: unknown key 'port' in [[ls.backend]]"),
        "{e}"
    );
}

#[test]
fn unknown_key_in_ts() {
    let text = format!("{BASE}on_mis = \"silent\"\n");
    assert_eq!(
        err(&text),
        "config.toml:12: unknown key 'on_mis' in [[ts]] (did you mean 'on_miss'?)"
    );
    // The second [[ts]], so the line must not be that of the first.
    let text = format!(
        "{BASE}\n[[ts]]\nname = \"ts2\"\nlisten = \"127.0.0.1:5302\"\nzones = []\ncolour = 1\n"
    );
    assert!(err(&text).starts_with("config.toml:17: unknown key 'colour' in [[ts]]"));
}

#[test]
fn unknown_key_in_fault() {
    errors_are([
        (
            format!("{BASE}fault = {{ delay_ms = 5, drop = 0.1 }}\n"),
            "config.toml:12: unknown key 'drop' in [ts.fault]; valid keys: delay_ms, delay_ratio, drop_ratio",
        ),
        (
            format!("{BASE}\n[ts.fault]\ndelay_ms = 5\ndelay_ration = 0.1\n"),
            "config.toml:15: unknown key 'delay_ration' in [ts.fault] (did you mean 'delay_ratio'?)",
        ),
    ]);
}

#[test]
fn bad_enum_value_lists_the_choices() {
    errors_are([
        (
            BASE.replace("[ls]\n", "[ls]\n# comment\n\n\n\nstrategy = \"fast\"\n"),
            "config.toml:6: ls.strategy: expected one of race, hedge, sequential, got \"fast\"",
        ),
        (
            BASE.replace("[ls]\n", "[ls]\norder = \"random\"\n"),
            "config.toml:2: ls.order: expected one of least-outstanding, round-robin, sticky, \
             consistent-hash, fixed, weighted-random, got \"random\"",
        ),
        (
            format!("{BASE}on_miss = \"ignore\"\n"),
            "config.toml:12: ts.on_miss: expected one of nxdomain, silent, got \"ignore\"",
        ),
        (
            BASE.replace("[ls]\n", "[ls]\non_timeout = 3\n"),
            "config.toml:2: ls.on_timeout: expected one of nxdomain, servfail, drop, got 3",
        ),
    ]);
}

#[test]
fn bad_cidr_names_the_key_and_line() {
    let text = BASE.replace(
        "[ls]\n",
        "[ls]\nallow = [\n  \"127.0.0.0/8\",\n  \"10.0.0.0/33\",\n]\n",
    );
    assert_eq!(
        err(&text),
        "config.toml:4: ls.allow: invalid network \"10.0.0.0/33\": expected CIDR like \
         \"10.0.0.0/8\" or an IP address"
    );
    let text = format!("{BASE}axfr_allow = [\"localhost\"]\n");
    assert!(err(&text).starts_with("config.toml:12: ts.axfr_allow: invalid network \"localhost\""));
}

#[test]
fn bad_address_names_the_key_and_line() {
    let text = BASE.replace("\"127.0.0.1:5301\"\n\n", "\"127.0.0.1\"\n\n");
    assert_eq!(
        err(&text),
        "config.toml:6: ls.backend.addr: invalid address \"127.0.0.1\": expected IP:port, \
         like \"127.0.0.1:5300\" or \"[::1]:5300\""
    );
}

#[test]
fn wrong_type_and_missing_key() {
    errors_are([
        (
            format!("{BASE}ttl = \"long\"\n"),
            "config.toml:12: ts.ttl: must be a whole number between 0 and 2147483647, got \"long\"",
        ),
        (
            format!("{BASE}ttl = -1\n"),
            "config.toml:12: ts.ttl: must be a whole number between 0 and 2147483647, got -1",
        ),
        (
            BASE.replace("zones = [\"zones/ts1.txt\"]\n", ""),
            "config.toml:8: missing key 'zones' in [[ts]]",
        ),
    ]);
}

/// A number past its type's range is told by the range,
/// not by a Rust type ("invalid value: integer 99999999999, expected u32").
#[test]
fn a_number_out_of_range_says_the_range() {
    errors_are([
        (
            format!("{BASE}ixfr_history = 99999999999\n"),
            "config.toml:12: ts.ixfr_history: must be a whole number between 0 and 4294967295, \
             got 99999999999",
        ),
        (
            format!("{BASE}ttl = 99999999999\n"),
            "config.toml:12: ts.ttl: must be a whole number between 0 and 2147483647, got 99999999999",
        ),
    ]);
}

#[test]
fn toml_syntax_errors_have_a_line() {
    let e = parse("[ls]\nworkers = 2\nworkers = 3\n").unwrap_err();
    assert_eq!(e.to_string(), "config.toml:3: duplicate key 'workers'");
    let e = parse("[ls]\n\nstrategy = hedge\n").unwrap_err();
    assert!(matches!(e, ConfigError::Parse { line: Some(3), .. }), "{e}");
    assert!(e.to_string().starts_with("config.toml:3: "));
    assert_eq!(e.to_string().lines().count(), 1);
}

/// `text`'s one problem, from [`Config::from_toml`] and from [`Config::diagnose`] (what
/// `dnslb check` prints): both must be `want`, and a parse error.
#[track_caller]
fn parse_rejects(text: &str, want: &str) {
    let e = parse(text).unwrap_err();
    assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
    assert_eq!(e.to_string(), want);
    let all = Config::diagnose(text, Path::new(FILE)).unwrap_err();
    let all: Vec<String> = all.iter().map(ToString::to_string).collect();
    assert_eq!(all, vec![want.to_owned()]);
}

#[test]
fn bad_health_query_is_a_parse_error_at_its_line() {
    let health = |query: &str| format!("{BASE}\n[ls.health]\ninterval_ms = 10\nquery = {query}\n");
    parse_rejects(
        &health("\"example.com BOGUS\""),
        "config.toml:15: ls.health.query: unknown record type \"BOGUS\", got \"example.com BOGUS\"",
    );
    parse_rejects(
        &health("\"a..b SOA\""),
        "config.toml:15: ls.health.query: \"a..b\" is not a DNS name: Malformed label, \
         got \"a..b SOA\"",
    );
    let shape = "config.toml:15: ls.health.query: expected \"NAME TYPE\", like \". SOA\" or \
                 \"example.com A\", got";
    parse_rejects(&health("\"\""), &format!("{shape} \"\""));
    parse_rejects(&health("\"SOA\""), &format!("{shape} \"SOA\""));
    parse_rejects(
        &health("\"example.com A IN\""),
        &format!("{shape} \"example.com A IN\""),
    );
    parse_rejects(
        &health("53"),
        "config.toml:15: ls.health.query: invalid type: integer `53`, expected a question \
         like \". SOA\"",
    );
    // Inline table, the key on the line of the table.
    let inline = BASE.replace(
        "[ls]\n",
        "[ls]\nhealth = { fall = 2, query = \". BOGUS\" }\n",
    );
    parse_rejects(
        &inline,
        "config.toml:2: ls.health.query: unknown record type \"BOGUS\", got \". BOGUS\"",
    );
}

#[test]
fn bad_origin_is_a_parse_error_at_its_line() {
    parse_rejects(
        &format!("{BASE}origin = \"bad..name\"\n"),
        "config.toml:12: ts.origin: \"bad..name\" is not a DNS name: Malformed label",
    );
    parse_rejects(
        &format!("{BASE}origin = \"\"\n"),
        "config.toml:12: ts.origin: \"\" is not a DNS name",
    );
    parse_rejects(
        &format!("{BASE}origin = \"example .com\"\n"),
        "config.toml:12: ts.origin: \"example .com\" is not a DNS name",
    );
    let long = "a".repeat(64);
    let e = err(&format!("{BASE}origin = \"{long}.example\"\n"));
    assert!(
        e.starts_with(&format!(
            "config.toml:12: ts.origin: \"{long}.example\" is not a DNS name"
        )),
        "{e}"
    );
    parse_rejects(
        &format!("{BASE}origin = 1\n"),
        "config.toml:12: ts.origin: invalid type: integer `1`, expected a DNS name like \
         \"example.com\"",
    );
    // In the second [[ts]]: its line, not the first one's.
    let second = "\n[[ts]]\nname = \"ts2\"\nlisten = \"127.0.0.1:5302\"\nzones = [\"b\"]\n\
                  origin = \"x..y\"\n";
    parse_rejects(
        &format!("{BASE}{second}"),
        "config.toml:17: ts.origin: \"x..y\" is not a DNS name: Malformed label",
    );
}
