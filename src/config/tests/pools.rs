//! Test-only module: built under #[cfg(test)] (see `config/mod.rs`).
//! Tests of `[[ls.pool]]`: its keys and defaults, and each of its rules reported at the
//! line of its key.

use super::rules::rejects;
use super::*;

/// [`BASE`] with `timeout_ms = 900` for its `listen` (line 2) and a second backend
/// `ts2` (lines 8 to 10): 15 lines.
fn two() -> String {
    BASE.replace("listen = [\"127.0.0.1:5300\"]", "timeout_ms = 900")
        .replace(
            "[[ts]]",
            "[[ls.backend]]\nname = \"ts2\"\naddr = \"127.0.0.1:5302\"\n\n[[ts]]",
        )
}

/// [`two`] and a blank line (line 16), then `pools` (from line 17).
fn with(pools: &str) -> String {
    format!("{}\n{pools}", two())
}

fn zone(text: &str) -> Name {
    parse_name(text).unwrap()
}

#[test]
fn a_pool_takes_the_ls_policy_where_it_sets_none() {
    let text = with(
        "[[ls.pool]]\nname = \"org\"\nbackends = [\"ts2\"]\nzones = [\"example.org\", \"Example.NET.\"]\n\n\
         [[ls.pool]]\nname = \"com\"\nbackends = [\"ts1\", \"ts2\"]\nzones = [\"com\"]\n\
         strategy = \"race\"\norder = \"fixed\"\nlayout = \"replicated\"\ntimeout_ms = 300\non_timeout = \"servfail\"\n",
    );
    let config = parse(&text).unwrap();
    let ls = config.ls.unwrap();
    assert_eq!(ls.pool.len(), 2);
    let org = &ls.pool[0];
    assert_eq!(
        *org,
        PoolConfig::new(
            "org",
            &["ts2"],
            vec![zone("example.org"), zone("example.net")]
        )
    );
    assert_eq!(ls.policy_of(org).strategy, Strategy::Hedge);
    assert_eq!(ls.policy_of(org).order, Order::LeastOutstanding);
    assert_eq!(ls.policy_of(org).layout, Layout::Partitioned);
    assert_eq!(ls.policy_of(org).timeout_ms, 900);
    assert_eq!(ls.policy_of(org).on_timeout, OnTimeout::Nxdomain);
    let com = &ls.pool[1];
    assert_eq!(com.backends, ["ts1", "ts2"]);
    assert_eq!(ls.policy_of(com).strategy, Strategy::Race);
    assert_eq!(ls.policy_of(com).order, Order::Fixed);
    assert_eq!(ls.policy_of(com).layout, Layout::Replicated);
    assert_eq!(ls.policy_of(com).timeout_ms, 300);
    assert_eq!(ls.policy_of(com).on_timeout, OnTimeout::Servfail);
    assert_eq!(ls.longest_timeout_ms(), 900);
    assert_eq!(zone_text(&zone("Example.NET.")), "example.net");
    assert_eq!(zone_text(&Name::root()), ".");
}

#[test]
fn no_pool_by_default_and_a_longer_pool_deadline_is_the_longest() {
    let ls = parse(&two()).unwrap().ls.unwrap();
    assert!(ls.pool.is_empty());
    assert_eq!(ls.longest_timeout_ms(), 900);
    let text = with(
        "[[ls.pool]]\nname = \"p\"\nbackends = [\"ts1\"]\nzones = [\"p\"]\ntimeout_ms = 2500\n",
    );
    assert_eq!(parse(&text).unwrap().ls.unwrap().longest_timeout_ms(), 2500);
}

#[test]
fn unknown_keys_and_bad_values_in_a_pool_name_the_key_and_line() {
    let text =
        with("[[ls.pool]]\nname = \"org\"\nbackends = [\"ts2\"]\nzone = [\"example.org\"]\n");
    assert_eq!(
        err(&text),
        "config.toml:20: unknown key 'zone' in [[ls.pool]] (did you mean 'zones'?)"
    );
    let text = with(
        "[[ls.pool]]\nname = \"org\"\nbackends = [\"ts2\"]\nzones = [\"example.org\"]\nstrategy = \"fastest\"\n",
    );
    assert_eq!(
        err(&text),
        "config.toml:21: ls.pool.strategy: expected one of race, hedge, sequential, got \"fastest\""
    );
    // A bad zone is an error at its own line, like any typed value.
    let text = with(
        "[[ls.pool]]\nname = \"org\"\nbackends = [\"ts2\"]\nzones = [\n  \"example.org\",\n  \"bad..name\",\n]\n",
    );
    let e = err(&text);
    assert!(
        e.starts_with("config.toml:22: ") && e.contains("\"bad..name\" is not a DNS name"),
        "{e}"
    );
}

#[test]
fn every_policy_key_is_a_key_of_ls_and_of_a_pool_and_the_pools_wins() {
    let ls_keys = toml_keys::<LsConfig>();
    let pool_keys = toml_keys::<PoolConfig>();
    for key in PolicyConfig::KEYS {
        assert!(ls_keys.iter().any(|k| k == key), "[ls] {key}");
        assert!(pool_keys.iter().any(|k| k == key), "[[ls.pool]] {key}");
    }
    let ls = LsConfig::default();
    assert_eq!(ls.policy_of(&PoolConfig::default()), ls.policy());
    let own = "name = \"p\"\nstrategy = \"race\"\norder = \"fixed\"\nlayout = \"replicated\"\n\
               timeout_ms = 7\non_timeout = \"drop\"\n";
    let pool: PoolConfig = toml::from_str(own).unwrap();
    let policy = ls.policy_of(&pool);
    assert_ne!(policy, ls.policy());
    assert_eq!(
        policy,
        PolicyConfig {
            strategy: Strategy::Race,
            order: Order::Fixed,
            layout: Layout::Replicated,
            timeout_ms: 7,
            on_timeout: OnTimeout::Drop,
        }
    );
}

#[test]
fn a_misspelt_or_bad_policy_key_is_named_at_its_line_in_ls_and_in_a_pool() {
    let pool = "[[ls.pool]]\nname = \"org\"\nbackends = [\"ts2\"]\nzones = [\"example.org\"]\n";
    errors_are([
        (
            BASE.replace("[ls]\n", "[ls]\n\nstratgy = \"race\"\n"),
            "config.toml:3: unknown key 'stratgy' in [ls] (did you mean 'strategy'?)",
        ),
        (
            BASE.replace("[ls]\n", "[ls]\n\ntimeout_ms = -5\n"),
            "config.toml:3: ls.timeout_ms: must be a whole number between 0 and 18446744073709551615, got -5",
        ),
        (
            with(&format!("{pool}on_timout = \"drop\"\n")),
            "config.toml:21: unknown key 'on_timout' in [[ls.pool]] (did you mean 'on_timeout'?)",
        ),
        (
            with(&format!("{pool}layout = 1\n")),
            "config.toml:21: ls.pool.layout: expected one of partitioned, replicated, got 1",
        ),
    ]);
}

#[test]
fn rejects_a_pool_naming_an_unknown_backend() {
    rejects(
        &with(
            "[[ls.pool]]\nname = \"org\"\nbackends = [\"ts2\", \"ts9\"]\nzones = [\"example.org\"]\n",
        ),
        "config.toml:19: ls.pool.backends: pool \"org\" names backend \"ts9\", which is not an [[ls.backend]] (backends: ts1, ts2)",
    );
    rejects(
        &with(
            "[[ls.pool]]\nname = \"org\"\nbackends = [\"ts2\", \"ts2\"]\nzones = [\"example.org\"]\n",
        ),
        "config.toml:19: ls.pool.backends: pool \"org\" names backend \"ts2\" twice",
    );
}

#[test]
fn rejects_one_zone_in_two_pools_whatever_its_case_and_final_dot() {
    let first = "[[ls.pool]]\nname = \"org\"\nbackends = [\"ts2\"]\nzones = [\"example.org\"]\n\n";
    let second = "[[ls.pool]]\nname = \"other\"\nbackends = [\"ts1\"]\nzones = [\n  \"a.test\",\n  \"EXAMPLE.org.\",\n]\n";
    rejects(
        &with(&format!("{first}{second}")),
        "config.toml:27: ls.pool.zones: zone \"example.org\" is already served by pool \"org\"",
    );
    rejects(
        &with(
            "[[ls.pool]]\nname = \"org\"\nbackends = [\"ts2\"]\nzones = [\"example.org\", \"example.org.\"]\n",
        ),
        "config.toml:20: ls.pool.zones: pool \"org\" lists zone \"example.org\" twice",
    );
    // A zone under another pool's zone is no conflict: the longest suffix wins.
    let nested =
        "[[ls.pool]]\nname = \"sub\"\nbackends = [\"ts1\"]\nzones = [\"sub.example.org\"]\n";
    parse(&with(&format!("{first}{nested}"))).unwrap();
}

#[test]
fn rejects_duplicate_empty_and_memberless_pools() {
    let pool = |name: &str, zone: &str| {
        format!("[[ls.pool]]\nname = \"{name}\"\nbackends = [\"ts1\"]\nzones = [\"{zone}\"]\n\n")
    };
    rejects(
        &with(&format!("{}{}", pool("a", "a.test"), pool("a", "b.test"))),
        "config.toml:23: ls.pool.name: duplicate pool name \"a\"",
    );
    rejects(
        &with(&pool(" ", "a.test")),
        "config.toml:18: ls.pool.name: a pool name must not be empty",
    );
    rejects(
        &with("[[ls.pool]]\nname = \"org\"\nbackends = []\nzones = [\"example.org\"]\n"),
        "config.toml:19: ls.pool.backends: pool \"org\" needs at least one backend",
    );
    // No `zones` key at all: at the pool's name.
    rejects(
        &with("[[ls.pool]]\nname = \"org\"\nbackends = [\"ts1\"]\n"),
        "config.toml:18: ls.pool.zones: pool \"org\" needs at least one zone",
    );
}

#[test]
fn rejects_a_pool_deadline_out_of_range() {
    let pool = "[[ls.pool]]\nname = \"org\"\nbackends = [\"ts2\"]\nzones = [\"example.org\"]\n";
    rejects(
        &with(&format!("{pool}timeout_ms = 0\n")),
        "config.toml:21: ls.pool.timeout_ms: must be at least 1",
    );
    rejects(
        &with(&format!("{pool}timeout_ms = 3600001\n")),
        "config.toml:21: ls.pool.timeout_ms: must be at most 3600000, got 3600001",
    );
}

#[test]
fn dnslb_check_lists_every_pool_problem_in_file_order() {
    let text = with(
        "[[ls.pool]]\nname = \"org\"\nbackends = [\"nope\"]\nzones = [\"example.org\"]\n\n\
         [[ls.pool]]\nname = \"org\"\nbackends = [\"ts1\"]\nzones = [\"Example.org\"]\n",
    );
    let problems: Vec<String> = Config::diagnose(&text, Path::new(FILE))
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        [
            "config.toml:19: ls.pool.backends: pool \"org\" names backend \"nope\", which is not an [[ls.backend]] (backends: ts1, ts2)",
            "config.toml:23: ls.pool.name: duplicate pool name \"org\"",
            "config.toml:25: ls.pool.zones: zone \"example.org\" is already served by pool \"org\"",
        ]
    );
}

#[test]
fn a_pool_reads_a_cache_of_its_own_and_its_rules_are_reported_at_its_line() {
    // Lines 17-20: the pool; 21-23: its cache table.
    let pool = "[[ls.pool]]\nname = \"org\"\nbackends = [\"ts2\"]\nzones = [\"example.org\"]\n";
    let text = with(&format!(
        "{pool}[ls.pool.cache]\nmax_entries = 500\nneg_ttl = 60\n"
    ));
    let ls = parse(&text).unwrap().ls.unwrap();
    let cache = ls.pool[0].cache.unwrap();
    assert_eq!((cache.max_entries, cache.neg_ttl), (500, 60));
    assert_eq!(cache.max_ttl, CacheConfig::default().max_ttl);
    assert_eq!(ls.cache, None, "no [ls.cache]: only the pool caches");
    let inline = with(&format!("{pool}cache = {{ max_entries = 7 }}\n"));
    let ls = parse(&inline).unwrap().ls.unwrap();
    assert_eq!(ls.pool[0].cache.unwrap().max_entries, 7);
    let bad = with(&format!("{pool}[ls.pool.cache]\nmax_entries = 0\n"));
    assert_eq!(
        parse(&bad).unwrap_err().to_string(),
        "config.toml:22: ls.pool.cache.max_entries: must be at least 1 \
         (omit the pool's cache to use [ls.cache])"
    );
}

#[test]
fn a_decimal_escape_in_a_zone_is_read_as_rfc_1035_says() {
    // `\065` is 'A' (decimal), not '5' (the octal reading), and `\046` a
    // dot inside a label, as `\.` is.
    let wire = |n: &Name| n.iter().map(<[u8]>::to_vec).collect::<Vec<_>>();
    assert_eq!(wire(&zone(r"a\065b.example")), wire(&zone("aAb.example")));
    assert_eq!(wire(&zone(r"a\046b.example")), wire(&zone(r"a\.b.example")));
    assert_eq!(wire(&zone(r"x\045y")), wire(&zone("x-y")));
    for bad in [r"a\256b", r"a\200b", "a+b.example"] {
        assert!(parse_name(bad).is_err(), "{bad}");
    }
}
