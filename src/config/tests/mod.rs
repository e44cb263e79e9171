//! Test-only module: built under #[cfg(test)] (see `config/mod.rs`).
//! Tests of parsing: the shipped config, defaults, every key, and paths. Error messages
//! are tested in `errors`, the validation rules in `rules`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use serde::Deserialize;
use serde::de;

use super::*;

mod cache;
mod errors;
mod pools;
mod query_rules;
mod rules;
mod scale;
mod tls;

const FILE: &str = "config.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new(FILE))
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

/// Asserts that each config text of `cases` fails to parse with its error
/// (a failing row shows its text).
#[track_caller]
pub(super) fn errors_are<const N: usize>(cases: [(String, &str); N]) {
    for (text, want) in cases {
        assert_eq!(err(&text), want, "config:\n{text}");
    }
}

/// The keys of the table `T` reads, as serde lists them when it refuses an unknown one.
pub(super) fn toml_keys<T: de::DeserializeOwned + fmt::Debug>() -> Vec<String> {
    let err = toml::from_str::<T>("zzz_unknown = 1").unwrap_err();
    let msg = err.message();
    let (_, expected) = msg.split_once("expected").unwrap();
    let keys: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!keys.is_empty(), "{msg}");
    keys
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A minimal valid config with one backend and one ts, for the rule tests.
const BASE: &str = r#"[ls]
listen = ["127.0.0.1:5300"]

[[ls.backend]]
name = "ts1"
addr = "127.0.0.1:5301"

[[ts]]
name = "ts1"
listen = "127.0.0.1:5301"
zones = ["zones/ts1.txt"]
"#;

#[test]
fn shipped_config_parses_to_the_default_deployment() {
    let path = Path::new("/etc/dnslb/config.toml");
    let config = Config::from_toml(include_str!("../../../config.toml"), path).unwrap();
    assert_eq!(config.path, path);
    let ls = config.ls.as_ref().unwrap();
    assert_eq!(ls.listen, vec![addr("127.0.0.1:5300")]);
    assert_eq!(ls.strategy, Strategy::Hedge);
    assert_eq!(ls.order, Order::LeastOutstanding);
    assert_eq!(ls.layout, Layout::Partitioned);
    assert_eq!(ls.metrics, Some(addr("127.0.0.1:5390")));
    assert_eq!(ls.health, HealthConfig::default());
    assert_eq!(
        ls.backend,
        vec![
            BackendConfig {
                name: "ts1".into(),
                addr: addr("127.0.0.1:5301"),
                weight: 1,
                notify_key: None,
                transport: Default::default(),
                tls_name: None,
                ca: None,
                proxy: false,
            },
            BackendConfig {
                name: "ts2".into(),
                addr: addr("127.0.0.1:5302"),
                weight: 1,
                notify_key: None,
                transport: Default::default(),
                tls_name: None,
                ca: None,
                proxy: false,
            },
        ]
    );
    // Everything else is at its default.
    let expected = LsConfig {
        metrics: ls.metrics,
        backend: ls.backend.clone(),
        ..LsConfig::default()
    };
    assert_eq!(*ls, expected);

    assert_eq!(config.ts.len(), 2);
    let ts1 = config.ts_by_name("ts1").unwrap();
    let want = TsConfig::new(
        "ts1",
        addr("127.0.0.1:5301"),
        vec![PathBuf::from("/etc/dnslb/zones/ts1.txt")],
    );
    assert_eq!(*ts1, want);
    let ts2 = config.ts_by_name("ts2").unwrap();
    assert_eq!(ts2.listen, [addr("127.0.0.1:5302")]);
    assert_eq!(ts2.zones, vec![PathBuf::from("/etc/dnslb/zones/ts2.txt")]);
    assert!(
        ts2.axfr_allow.is_empty(),
        "no transfers from the LS's address"
    );
    assert!(config.ts_by_name("ts3").is_none());
}

#[test]
fn shipped_config_mentions_every_key() {
    let text = include_str!("../../../config.toml");
    let tables = [
        ("[ls]", toml_keys::<LsConfig>()),
        ("[ls.health]", toml_keys::<HealthConfig>()),
        ("[ls.cache]", toml_keys::<CacheConfig>()),
        ("[[ls.backend]]", toml_keys::<BackendConfig>()),
        ("[[ls.pool]]", toml_keys::<PoolConfig>()),
        ("[[ts]]", toml_keys::<TsConfig>()),
        ("[ts.fault]", toml_keys::<Fault>()),
        ("[[ts.service]]", toml_keys::<ServiceConfig>()),
        ("[ls.tls]", toml_keys::<TlsConfig>()),
        ("[ls.https]", toml_keys::<HttpsConfig>()),
        ("[ls.anycast]", toml_keys::<AnycastConfig>()),
        ("[[ls.dynamic_block]]", toml_keys::<DynBlockConfig>()),
        ("[[key]]", toml_keys::<KeyConfig>()),
    ];
    let mut missing = Vec::new();
    for (table, keys) in &tables {
        for key in keys {
            // A key is shown as `key = ...`, or as a table of its own.
            let shown = text.contains(&format!("{key} =")) || text.contains(&format!(".{key}]"));
            if !shown {
                missing.push(format!("{table} {key}"));
            }
        }
    }
    assert!(missing.is_empty(), "not in config.toml: {missing:?}");
}

#[test]
fn omitted_keys_take_the_spec_defaults() {
    let config = parse(
        "[ls]\n[[ls.backend]]\nname = \"a\"\naddr = \"10.0.0.1:53\"\n\
         [[ts]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nzones = [\"z.txt\"]\n",
    )
    .unwrap();
    let ls = config.ls.unwrap();
    assert_eq!(ls.listen, vec![addr("127.0.0.1:5300")]);
    assert_eq!(ls.workers, available_cores());
    assert_eq!(ls.strategy, Strategy::Hedge);
    assert_eq!(ls.order, Order::LeastOutstanding);
    assert_eq!(ls.layout, Layout::Partitioned);
    assert_eq!(ls.timeout_ms, 1500);
    assert_eq!(ls.on_timeout, OnTimeout::Nxdomain);
    assert_eq!(ls.synth_ttl, 5);
    assert_eq!(ls.try_timeout_ms, 500);
    assert_eq!(ls.hedge_delay_ms, HedgeDelay::Adaptive);
    assert_eq!(ls.hedge_percentile, 95.0);
    assert_eq!(ls.hedge_min_ms, 2);
    assert_eq!(ls.hedge_max_ms, 200);
    assert_eq!(ls.hedge_budget_pct, 10.0);
    assert_eq!(ls.max_inflight, 65536);
    assert_eq!(
        ls.allow,
        [
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16"
        ]
        .map(net)
        .to_vec()
    );
    assert_eq!(ls.rate_limit_qps, 0);
    assert_eq!(ls.metrics, None);
    assert_eq!(ls.sticky_size, 100_000);
    let h = &ls.health;
    assert_eq!(h.query, ProbeQuestion::root_soa());
    assert_eq!(
        (h.interval_ms, h.every_queries, h.fall, h.rise, h.timeout_ms),
        (1000, 0, 3, 2, 500)
    );
    assert_eq!(ls.backend[0].weight, 1);
    let ts = &config.ts[0];
    assert!(ts.origin.is_root());
    assert_eq!(ts.ttl, 300);
    assert_eq!(ts.on_miss, OnMiss::Nxdomain);
    assert!(ts.axfr_allow.is_empty());
    assert!(ts.notify.is_empty());
    assert_eq!(ts.fault, Fault::default());
    assert_eq!(ts.workers, None);
    assert_eq!(ts.worker_count(), available_cores());
    assert_eq!(
        *ts,
        TsConfig::new("t", addr("127.0.0.1:0"), vec!["z.txt".into()])
    );
}

#[test]
fn ts_only_config_has_no_ls() {
    let config =
        parse("[[ts]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nzones = [\"z.txt\"]\n").unwrap();
    assert!(config.ls.is_none());
}

#[test]
fn every_key_is_read() {
    let config = parse(
        r#"
[ls]
listen = ["127.0.0.1:6300", "[::1]:6300"]
workers = 3
strategy = "sequential"
order = "weighted-random"
layout = "replicated"
timeout_ms = 900
on_timeout = "drop"
synth_ttl = 7
try_timeout_ms = 300
hedge_delay_ms = 20
hedge_percentile = 99.5
hedge_min_ms = 1
hedge_max_ms = 50
hedge_budget_pct = 5.5
max_inflight = 10
allow = ["0.0.0.0/0", "192.0.2.7", "2001:db8::1"]
rate_limit_qps = 100
metrics = "127.0.0.1:9999"
sticky_size = 10
health = { interval_ms = 10, every_queries = 100, query = "example.com a", fall = 1, rise = 4, timeout_ms = 9 }
backend = [{ name = "x", addr = "[::1]:53", weight = 3 }]

[[ts]]
name = "t"
listen = "127.0.0.1:6301"
zones = ["/abs/a.zone", "b.txt"]
origin = "example.com"
ttl = 60
on_miss = "silent"
axfr_allow = ["::1"]
notify = ["127.0.0.1:53"]
fault.delay_ms = 30
fault.delay_ratio = 0.5
fault.drop_ratio = 1
workers = 2
"#,
    )
    .unwrap();
    let ls = config.ls.unwrap();
    assert_eq!(ls.health.query.to_string(), "example.com. A");
    assert_eq!(ls.backend[0].weight, 3);
    // Every key as written; nothing else moved from its default.
    let want = LsConfig {
        listen: vec![addr("127.0.0.1:6300"), addr("[::1]:6300")],
        workers: 3,
        strategy: Strategy::Sequential,
        order: Order::WeightedRandom,
        layout: Layout::Replicated,
        timeout_ms: 900,
        on_timeout: OnTimeout::Drop,
        synth_ttl: 7,
        try_timeout_ms: 300,
        hedge_delay_ms: HedgeDelay::Fixed(20),
        hedge_percentile: 99.5,
        hedge_min_ms: 1,
        hedge_max_ms: 50,
        hedge_budget_pct: 5.5,
        max_inflight: 10,
        allow: vec![
            net("0.0.0.0/0"),
            net("192.0.2.7/32"),
            net("2001:db8::1/128"),
        ],
        rate_limit_qps: 100,
        metrics: Some(addr("127.0.0.1:9999")),
        sticky_size: 10,
        health: HealthConfig {
            interval_ms: 10,
            every_queries: 100,
            query: ProbeQuestion {
                name: Name::from_ascii("example.com.").unwrap(),
                rtype: RecordType::A,
            },
            fall: 1,
            rise: 4,
            timeout_ms: 9,
        },
        backend: ls.backend.clone(),
        ..LsConfig::default()
    };
    assert_eq!(ls, want);
    let ts = &config.ts[0];
    assert_eq!(
        ts.zones,
        vec![PathBuf::from("/abs/a.zone"), PathBuf::from("b.txt")]
    );
    assert_eq!(ts.origin, Name::from_ascii("example.com.").unwrap());
    assert!(ts.origin.is_fqdn());
    assert_eq!(ts.ttl, 60);
    assert_eq!(ts.on_miss, OnMiss::Silent);
    assert_eq!(ts.axfr_allow, vec![net("::1/128")]);
    assert_eq!(ts.notify, vec![addr("127.0.0.1:53")]);
    assert_eq!(
        ts.fault,
        Fault {
            delay_ms: 30,
            delay_ratio: 0.5,
            drop_ratio: 1.0
        }
    );
    assert_eq!(ts.workers, Some(2));
}

#[test]
fn hedge_delay_is_a_number_or_adaptive() {
    let delay = |v: &str| {
        let text = BASE.replace("[ls]\n", &format!("[ls]\nhedge_delay_ms = {v}\n"));
        parse(&text).map(|c| c.ls.unwrap().hedge_delay_ms)
    };
    assert_eq!(delay("20").unwrap(), HedgeDelay::Fixed(20));
    assert_eq!(delay("0").unwrap(), HedgeDelay::Fixed(0));
    assert_eq!(delay("\"adaptive\"").unwrap(), HedgeDelay::Adaptive);
    for bad in ["\"fast\"", "-5", "2.5"] {
        let e = delay(bad).unwrap_err();
        assert_eq!(e.line(), Some(2), "{e}");
        assert!(
            e.to_string()
                .starts_with("config.toml:2: ls.hedge_delay_ms: "),
            "{e}"
        );
        assert!(e.to_string().contains("\"adaptive\""), "{e}");
    }
    assert_eq!(HedgeDelay::Fixed(20).to_string(), "20");
    assert_eq!(HedgeDelay::Adaptive.to_string(), "adaptive");
}

#[test]
fn percentages_accept_integers_and_floats() {
    let text = BASE.replace(
        "[ls]\n",
        "[ls]\nhedge_percentile = 90\nhedge_budget_pct = 2.5\n",
    );
    let ls = parse(&text).unwrap().ls.unwrap();
    assert_eq!(ls.hedge_percentile, 90.0);
    assert_eq!(ls.hedge_budget_pct, 2.5);
}

#[test]
fn keyword_names_match_serde() {
    fn check<T: for<'de> Deserialize<'de> + PartialEq + fmt::Debug + Copy>(
        all: &[T],
        name: impl Fn(T) -> &'static str,
    ) {
        for &v in all {
            let parsed: T =
                T::deserialize(de::value::StrDeserializer::<de::value::Error>::new(name(v)))
                    .unwrap();
            assert_eq!(parsed, v);
        }
    }
    check(Strategy::ALL, Strategy::as_str);
    check(Order::ALL, Order::as_str);
    check(Layout::ALL, Layout::as_str);
    check(OnTimeout::ALL, OnTimeout::as_str);
    check(OnMiss::ALL, OnMiss::as_str);
    assert_eq!(Order::ConsistentHash.to_string(), "consistent-hash");
}

#[test]
fn relative_zone_paths_resolve_against_the_config_folder() {
    let config = Config::from_toml(BASE, Path::new("/srv/dns/config.toml")).unwrap();
    assert_eq!(
        config.ts[0].zones,
        vec![PathBuf::from("/srv/dns/zones/ts1.txt")]
    );
    let config = Config::from_toml(BASE, Path::new("config.toml")).unwrap();
    assert_eq!(config.ts[0].zones, vec![PathBuf::from("zones/ts1.txt")]);
    let text = BASE.replace("zones/ts1.txt", "/var/zones/ts1.txt");
    let config = Config::from_toml(&text, Path::new("/srv/dns/config.toml")).unwrap();
    assert_eq!(
        config.ts[0].zones,
        vec![PathBuf::from("/var/zones/ts1.txt")]
    );
}

#[test]
fn load_reads_the_file_and_reports_io_errors() {
    let dir = std::env::temp_dir().join(format!("dnslb-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, BASE).unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.path, path);
    assert_eq!(config.ts[0].zones, vec![dir.join("zones/ts1.txt")]);
    std::fs::remove_dir_all(&dir).unwrap();
    let e = Config::load(&path).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read: ", path.display()))
    );
}

#[test]
fn probe_questions_and_names_parse_like_the_config() {
    let q: ProbeQuestion = "  Example.COM.   aaaa ".parse().unwrap();
    assert_eq!(q.name, Name::from_ascii("example.com.").unwrap());
    assert_eq!(q.rtype, RecordType::AAAA);
    assert_eq!(q.to_string(), "Example.COM. AAAA");
    let root: ProbeQuestion = ". SOA".parse().unwrap();
    assert_eq!(root, ProbeQuestion::default());
    assert_eq!(root.to_string(), ". SOA");
    assert_eq!(
        "a..b SOA".parse::<ProbeQuestion>(),
        Err(ValueError::QuestionName {
            text: "a..b SOA".into(),
            name: Box::new(ValueError::Name {
                text: "a..b".into(),
                why: Some("Malformed label".into())
            })
        })
    );
    assert!(matches!(
        "x. TYPE99999".parse::<ProbeQuestion>(),
        Err(ValueError::RecordType { .. })
    ));
    let origin = parse_name("example.com").unwrap();
    assert!(origin.is_fqdn());
    assert_eq!(origin, Name::from_ascii("example.com.").unwrap());
    assert!(parse_name(".").unwrap().is_root());
}
