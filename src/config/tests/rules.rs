//! Test-only module: built under #[cfg(test)] (see `config/mod.rs`).
//! Tests of the validation rules: each problem names its line and key.

use super::*;

/// Asserts that `text` breaks exactly one rule, reported as `want` (line and message).
#[track_caller]
pub(super) fn rejects(text: &str, want: &str) {
    match Config::diagnose(text, Path::new(FILE)) {
        Ok(_) => panic!("accepted, wanted {want}"),
        Err(problems) => {
            let got: Vec<String> = problems.iter().map(ToString::to_string).collect();
            assert_eq!(got, vec![want.to_owned()]);
        }
    }
    assert_eq!(parse(text).unwrap_err().to_string(), want);
}

fn ls_with(lines: &str) -> String {
    BASE.replace("[ls]\n", &format!("[ls]\n{lines}\n"))
}

#[test]
fn base_is_valid() {
    parse(BASE).unwrap();
}

#[test]
fn rejects_an_empty_config() {
    rejects(
        "# nothing\n",
        "config.toml: nothing to run: the config has neither [ls] nor [[ts]]",
    );
}

#[test]
fn rejects_bad_ts_names() {
    let second = "\n[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5302\"\nzones = [\"b\"]\n";
    rejects(
        &format!("{BASE}{second}"),
        "config.toml:14: ts.name: duplicate table server name \"ts1\"",
    );
    rejects(
        &BASE.replace("name = \"ts1\"\nlisten", "name = \"\"\nlisten"),
        "config.toml:9: ts.name: a table server name must not be empty",
    );
}

#[test]
fn rejects_bad_backend_names() {
    let second = "[[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:5302\"\n\n[[ts]]";
    rejects(
        &BASE.replacen("[[ts]]", second, 1),
        "config.toml:9: ls.backend.name: duplicate backend name \"ts1\"",
    );
    rejects(
        &BASE.replace("name = \"ts1\"\naddr", "name = \" \"\naddr"),
        "config.toml:5: ls.backend.name: a backend name must not be empty",
    );
}

#[test]
fn rejects_ls_without_backends() {
    let text = "\n[ls]\nworkers = 1\n";
    rejects(
        text,
        "config.toml:2: ls.backend: [ls] needs at least one [[ls.backend]]",
    );
}

#[test]
fn rejects_listeners_on_one_address() {
    rejects(
        &BASE.replace("listen = \"127.0.0.1:5301\"", "listen = \"127.0.0.1:5300\""),
        "config.toml:10: ts.listen: 127.0.0.1:5300 is already used by ls.listen",
    );
    rejects(
        &ls_with("metrics = \"0.0.0.0:5301\""),
        "config.toml:11: ts.listen: 127.0.0.1:5301 is already used by ls.metrics (TCP)",
    );
    let two_ts =
        format!("{BASE}\n[[ts]]\nname = \"ts2\"\nlisten = \"127.0.0.1:5301\"\nzones = [\"b\"]\n");
    rejects(
        &two_ts,
        "config.toml:15: ts.listen: 127.0.0.1:5301 is already used by table server \"ts1\"",
    );
    // Within a TS's list too, and against another's list; a list written
    // over several lines names the address's own line.
    let listed = BASE.replace(
        "listen = \"127.0.0.1:5301\"",
        "listen = [\n  \"127.0.0.1:5301\",\n  \"[::1]:5301\",\n  \"0.0.0.0:5301\",\n]",
    );
    rejects(
        &listed,
        "config.toml:13: ts.listen: 0.0.0.0:5301 is already used by table server \"ts1\"",
    );
    let two_lists = BASE.replace(
        "listen = \"127.0.0.1:5301\"",
        "listen = [\"127.0.0.1:5301\", \"[::1]:5301\"]",
    ) + "\n[[ts]]\nname = \"ts2\"\nlisten = [\"127.0.0.2:5301\", \"[::]:5301\"]\nzones = [\"b\"]\n";
    rejects(
        &two_lists,
        "config.toml:15: ts.listen: [::]:5301 is already used by table server \"ts1\"",
    );
    let apart = BASE.replace(
        "listen = \"127.0.0.1:5301\"",
        "listen = [\"127.0.0.1:5301\", \"[::1]:5301\", \"127.0.0.2:5301\"]",
    );
    let c = parse(&apart).unwrap();
    assert_eq!(c.ts[0].listen.len(), 3);
    // Port 0 (the OS picks a free port) never conflicts.
    let text = BASE
        .replace("127.0.0.1:5300", "127.0.0.1:0")
        .replace("listen = \"127.0.0.1:5301\"", "listen = \"127.0.0.1:0\"");
    parse(&text).unwrap();
}

#[test]
fn ts_metrics_is_off_by_default_and_an_address_of_its_own() {
    let with = |addr: &str| format!("{BASE}metrics = \"{addr}\"\n");
    assert_eq!(parse(BASE).unwrap().ts[0].metrics, None);
    let c = parse(&with("127.0.0.1:9301")).unwrap();
    assert_eq!(c.ts[0].metrics, Some("127.0.0.1:9301".parse().unwrap()));
    rejects(
        &with("127.0.0.1:5300"),
        "config.toml:12: ts.metrics: 127.0.0.1:5300 is already used by ls.listen (TCP)",
    );
    rejects(
        &with("0.0.0.0:5301"),
        "config.toml:12: ts.metrics: 0.0.0.0:5301 is already used by table server \"ts1\" (TCP)",
    );
    let both = format!(
        "{}metrics = \"127.0.0.1:9300\"\n",
        ls_with("metrics = \"127.0.0.1:9300\"")
    );
    rejects(
        &both,
        "config.toml:13: ts.metrics: 127.0.0.1:9300 is already used by ls.metrics",
    );
    let two_ts = format!(
        "{}\n[[ts]]\nname = \"ts2\"\nlisten = \"127.0.0.1:5302\"\nzones = [\"b\"]\n\
         metrics = \"127.0.0.1:9301\"\n",
        with("127.0.0.1:9301")
    );
    rejects(
        &two_ts,
        "config.toml:18: ts.metrics: 127.0.0.1:9301 is already used by the metrics of \
         table server \"ts1\"",
    );
    let e = parse(&with("localhost")).unwrap_err().to_string();
    assert!(
        e.starts_with("config.toml:12: ts.metrics: invalid address"),
        "{e}"
    );
}

#[test]
fn rejects_a_backend_that_is_the_ls_itself() {
    rejects(
        &BASE.replace("addr = \"127.0.0.1:5301\"", "addr = \"127.0.0.1:5300\""),
        "config.toml:6: ls.backend.addr: 127.0.0.1:5300 is the LS's own listener; \
         it would forward to itself",
    );
    rejects(
        &BASE.replace("addr = \"127.0.0.1:5301\"", "addr = \"0.0.0.0:5301\""),
        "config.toml:6: ls.backend.addr: 0.0.0.0:5301 is not an address queries can be sent to",
    );
}

#[test]
fn rejects_out_of_range_numbers() {
    let cases = [
        (
            "hedge_percentile = 0",
            "ls.hedge_percentile: must be in (0, 100], got 0",
        ),
        (
            "hedge_percentile = 100.5",
            "ls.hedge_percentile: must be in (0, 100], got 100.5",
        ),
        (
            "hedge_percentile = nan",
            "ls.hedge_percentile: must be in (0, 100], got NaN",
        ),
        (
            "hedge_budget_pct = -1",
            "ls.hedge_budget_pct: must be in [0, 100], got -1",
        ),
        (
            "hedge_budget_pct = 101",
            "ls.hedge_budget_pct: must be in [0, 100], got 101",
        ),
        (
            "hedge_min_ms = 300",
            "ls.hedge_min_ms: hedge_min_ms (300) must not exceed hedge_max_ms (200)",
        ),
        ("workers = 0", "ls.workers: must be at least 1"),
        ("timeout_ms = 0", "ls.timeout_ms: must be at least 1"),
        (
            "try_timeout_ms = 0",
            "ls.try_timeout_ms: must be at least 1",
        ),
        ("max_inflight = 0", "ls.max_inflight: must be at least 1"),
        ("health.fall = 0", "ls.health.fall: must be at least 1"),
        ("health.rise = 0", "ls.health.rise: must be at least 1"),
        (
            "health.interval_ms = 0",
            "ls.health.interval_ms: must be at least 1",
        ),
        (
            "synth_ttl = 4294967295",
            "ls.synth_ttl: must be at most 2147483647 (RFC 2181), got 4294967295",
        ),
    ];
    for (line, msg) in cases {
        rejects(&ls_with(line), &format!("config.toml:2: {msg}"));
    }
    // Budget bounds are inclusive.
    parse(&ls_with("hedge_budget_pct = 0")).unwrap();
    parse(&ls_with("hedge_budget_pct = 100\nhedge_percentile = 100")).unwrap();
    parse(&ls_with("hedge_min_ms = 7\nhedge_max_ms = 7")).unwrap();
}

#[test]
fn min_above_max_points_at_the_key_that_is_written() {
    // hedge_min_ms is left at its default (2): the line is that of hedge_max_ms.
    rejects(
        &ls_with("\nhedge_max_ms = 1"),
        "config.toml:3: ls.hedge_min_ms: hedge_min_ms (2) must not exceed hedge_max_ms (1)",
    );
}

#[test]
fn rejects_bad_ts_values() {
    rejects(
        &BASE.replace("zones = [\"zones/ts1.txt\"]", "zones = []"),
        "config.toml:11: ts.zones: table server \"ts1\" needs at least one zone file",
    );
    rejects(
        &format!("{BASE}fault = {{ drop_ratio = 1.5 }}\n"),
        "config.toml:12: ts.fault.drop_ratio: must be in [0, 1], got 1.5",
    );
    rejects(
        &format!("{BASE}\n[ts.fault]\ndelay_ms = 1\ndelay_ratio = -0.1\n"),
        "config.toml:15: ts.fault.delay_ratio: must be in [0, 1], got -0.1",
    );
    rejects(
        &format!("{BASE}workers = 0\n"),
        "config.toml:12: ts.workers: must be at least 1",
    );
}

#[test]
fn problems_lists_every_rule_broken_in_file_order() {
    let text =
        ls_with("workers = 0\ntimeout_ms = 0").replace("zones = [\"zones/ts1.txt\"]", "zones = []");
    let problems = Config::diagnose(&text, Path::new(FILE)).unwrap_err();
    let lines: Vec<_> = problems.iter().map(ConfigError::line).collect();
    assert_eq!(lines, vec![Some(2), Some(3), Some(13)]);
    // Built in code: same problems, no lines and no file.
    let config = Config::parse(&text, Path::new("")).unwrap();
    let problems = config.problems();
    assert_eq!(problems.len(), 3);
    assert!(problems.iter().all(|p| p.line().is_none()));
    assert_eq!(problems[0].to_string(), "ls.workers: must be at least 1");
    assert_eq!(config.validate().unwrap_err(), problems[0]);
}

#[test]
fn configs_built_in_code_validate() {
    let mut ls = LsConfig::default();
    ls.backend.push(BackendConfig {
        name: "a".into(),
        addr: addr("127.0.0.1:5301"),
        weight: 1,
        notify_key: None,
        transport: Default::default(),
        tls_name: None,
        ca: None,
        proxy: false,
    });
    let config = Config {
        ls: Some(ls),
        ts: vec![TsConfig::new("a", addr("127.0.0.1:5301"), vec!["z".into()])],
        key: Vec::new(),
        path: PathBuf::new(),
    };
    config.validate().unwrap();
}

#[test]
fn rejects_integers_past_their_bounds() {
    let cases = [
        (
            "max_inflight = 2305843009213693952",
            "ls.max_inflight: must be at most 16777216, got 2305843009213693952",
        ),
        (
            "sticky_size = 4611686018427387904",
            "ls.sticky_size: must be at most 16777216, got 4611686018427387904",
        ),
        (
            "workers = 100000",
            "ls.workers: must be at most 1024, got 100000",
        ),
        (
            "timeout_ms = 3600001",
            "ls.timeout_ms: must be at most 3600000, got 3600001",
        ),
        (
            "try_timeout_ms = 18446744073709551615",
            "ls.try_timeout_ms: must be at most 3600000, got 18446744073709551615",
        ),
        (
            "hedge_delay_ms = 9999999999",
            "ls.hedge_delay_ms: must be at most 3600000, got 9999999999",
        ),
        (
            "rate_limit_qps = 4000000000",
            "ls.rate_limit_qps: must be at most 10000000, got 4000000000",
        ),
        (
            "rate_limit_v6_prefix = 0",
            "ls.rate_limit_v6_prefix: must be in [1, 128], got 0",
        ),
        (
            "rate_limit_v6_prefix = 129",
            "ls.rate_limit_v6_prefix: must be in [1, 128], got 129",
        ),
        (
            "health.fall = 4000000000",
            "ls.health.fall: must be at most 1000, got 4000000000",
        ),
        (
            "health.rise = 1001",
            "ls.health.rise: must be at most 1000, got 1001",
        ),
        (
            "health.timeout_ms = 86400000",
            "ls.health.timeout_ms: must be at most 3600000, got 86400000",
        ),
        (
            "health.interval_ms = 86400000",
            "ls.health.interval_ms: must be at most 3600000, got 86400000",
        ),
        (
            "health.every_queries = 18446744073709551615",
            "ls.health.every_queries: must be at most 1000000000, got 18446744073709551615",
        ),
    ];
    for (line, msg) in cases {
        rejects(&ls_with(line), &format!("config.toml:2: {msg}"));
    }
    // hedge_min/max: both over, hedge_min_ms within hedge_max_ms.
    match Config::diagnose(
        &ls_with("hedge_min_ms = 3600001\nhedge_max_ms = 3600002"),
        Path::new(FILE),
    ) {
        Err(p) => {
            let got: Vec<String> = p.iter().map(ToString::to_string).collect();
            assert_eq!(
                got,
                [
                    "config.toml:2: ls.hedge_min_ms: must be at most 3600000, got 3600001",
                    "config.toml:3: ls.hedge_max_ms: must be at most 3600000, got 3600002",
                ]
            );
        }
        Ok(_) => panic!("accepted"),
    }
    rejects(
        &BASE.replace(
            "addr = \"127.0.0.1:5301\"",
            "addr = \"127.0.0.1:5301\"\nweight = 4000000",
        ),
        "config.toml:7: ls.backend.weight: must be at most 1000000, got 4000000",
    );
    rejects(
        &format!("{BASE}workers = 5000\n"),
        "config.toml:12: ts.workers: must be at most 1024, got 5000",
    );
    rejects(
        &format!("{BASE}fault = {{ delay_ms = 99999999999 }}\n"),
        "config.toml:12: ts.fault.delay_ms: must be at most 3600000, got 99999999999",
    );
    // The bounds themselves are accepted.
    parse(&ls_with(
        "max_inflight = 16777216\nsticky_size = 16777216\nworkers = 1024\ntimeout_ms = 3600000\n\
         rate_limit_v6_prefix = 128\nrate_limit_qps = 10000000",
    ))
    .unwrap();
}

/// The LS forwards its clients' queries to a backend from its own
/// address (127.0.0.1 toward 127/8); a `[[ts]]` behind it that allows
/// transfers from that address without a key hands every client of the LS
/// the zone (an IXFR over UDP through the LS). Named secondaries, a key, or
/// a TS that is no backend of this LS are fine.
#[test]
fn a_ts_behind_the_ls_allows_no_transfer_from_the_ls_address_without_a_key() {
    rejects(
        &format!("{BASE}axfr_allow = [\"127.0.0.0/8\"]\n"),
        "config.toml:12: ts.axfr_allow: 127.0.0.0/8 holds 127.0.0.1, the address the LS of \
         this config forwards its clients' queries to table server \"ts1\" from (backend \
         \"ts1\"): every client of the LS could transfer its zones; list the secondaries' own \
         addresses, or set xfr_key",
    );
    // Listening on every address: the backend's 127.0.0.2 is still reached from 127.0.0.1.
    let any = BASE
        .replace("listen = \"127.0.0.1:5301\"", "listen = \"0.0.0.0:5301\"")
        .replace("addr = \"127.0.0.1:5301\"", "addr = \"127.0.0.2:5301\"");
    let text = format!("{any}axfr_allow = [\"127.0.0.1\"]\n");
    assert!(parse(&text).is_err(), "0.0.0.0 behind 127.0.0.2");
    for fine in [
        format!("{BASE}axfr_allow = [\"127.0.0.2/32\", \"192.0.2.53\"]\n"),
        format!(
            "{BASE}axfr_allow = [\"127.0.0.0/8\"]\nxfr_key = \"xfr\"\n\n[[key]]\nname = \"xfr\"\n\
             secret = \"kQn0sD3l9Ui1u6m2sXJ1mR0bJx6g7h8Zq2yq1cV4aUk=\"\n"
        ),
        BASE.replace("zones = [", "axfr_allow = [\"127.0.0.0/8\"]\nzones = [")
            .replace("listen = \"127.0.0.1:5301\"", "listen = \"127.0.0.1:5309\""),
    ] {
        parse(&fine).unwrap_or_else(|e| panic!("{e}\n{fine}"));
    }
}

#[test]
fn rejects_bad_dynamic_blocks_at_their_lines() {
    let rule = |lines: &str| format!("{BASE}\n[[ls.dynamic_block]]\nname = \"x\"\n{lines}");
    // Line 13 is the table, 14 its name, 15 on the keys given.
    rejects(
        &rule("kind = \"rcode-rate\"\nthreshold = 5\n"),
        "config.toml:13: ls.dynamic_block.rcode: rcode-rate needs rcode (e.g. \"NXDOMAIN\")",
    );
    rejects(
        &rule("threshold = 0\n"),
        "config.toml:15: ls.dynamic_block.threshold: must be above 0, got 0",
    );
    rejects(
        &rule("threshold = 5\nwindow_s = 0\n"),
        "config.toml:16: ls.dynamic_block.window_s: must be in [1, 3600], got 0",
    );
    rejects(
        &ls_with("api_key = \"short\""),
        "config.toml:2: ls.api_key: must be at least 16 characters, without leading or trailing white space",
    );
    let ok = rule(
        "kind = \"name-rate\"\nsuffix = \"example.com\"\nthreshold = 5\naction = \"truncate\"\n",
    );
    let c = parse(&ok).unwrap();
    let ls = c.ls.unwrap();
    assert_eq!(ls.dynamic_block[0].kind, DynKind::NameRate);
    assert_eq!(ls.dynamic_block[0].action, DynAction::Truncate);
    assert_eq!(ls.control_allow.len(), 2, "loopback by default");
    assert!(err(&rule("threshold = 5\nbogus = 1\n")).contains("bogus"));
    // `suffix` is read as every other name key: a wrong type says a name
    // was expected.
    assert_eq!(
        err(&rule("kind = \"name-rate\"\nsuffix = 1\nthreshold = 5\n")),
        "config.toml:16: ls.dynamic_block.suffix: invalid type: integer `1`, \
         expected a DNS name like \"example.com\"",
    );
}
