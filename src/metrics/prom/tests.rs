//! Test-only module: built under #[cfg(test)] (see `prom/mod.rs`).
//! Tests of the Prometheus exposition: every family, its labels and values.
use std::time::Duration;

use super::*;
use crate::ls::latency::BUCKETS_US;
use crate::metrics::test_balancer as balancer;

#[test]
fn counters_gauges_and_labels() {
    let b = balancer(&[("ts1", "127.0.0.1:5301"), ("ts2", "127.0.0.1:5302")]);
    let m = b.metrics();
    m.queries.fetch_add(7, Relaxed);
    m.answers[0].fetch_add(5, Relaxed);
    m.answers[3].fetch_add(2, Relaxed);
    m.answers[9].fetch_add(1, Relaxed);
    m.drops.wrong_id.fetch_add(4, Relaxed);
    let s = b.state();
    s.backends[0].stats.wins.fetch_add(3, Relaxed);
    s.backends[1].stats.outstanding.fetch_add(2, Relaxed);
    // Backends start down until probed: ts1 has answered a probe.
    s.backends[0].set_up(true);
    s.backends[1].set_up(false);
    let text = render_prometheus(&b);
    for line in [
        "# HELP dnslb_queries_total Client queries received (well-formed).",
        "# TYPE dnslb_queries_total counter",
        "dnslb_queries_total 7",
        "# TYPE dnslb_answers_total counter",
        "dnslb_answers_total{rcode=\"NOERROR\"} 5",
        "dnslb_answers_total{rcode=\"NXDOMAIN\"} 2",
        "dnslb_answers_total{rcode=\"REFUSED\"} 0",
        "dnslb_answers_total{rcode=\"NOTAUTH\"} 1",
        "dnslb_dropped_responses_total{reason=\"wrong_id\"} 4",
        "dnslb_dropped_responses_total{reason=\"wrong_source\"} 0",
        "dnslb_backend_wins_total{backend=\"ts1\",addr=\"127.0.0.1:5301\"} 3",
        "dnslb_backend_wins_total{backend=\"ts2\",addr=\"127.0.0.1:5302\"} 0",
        "# TYPE dnslb_backend_outstanding gauge",
        "dnslb_backend_outstanding{backend=\"ts2\",addr=\"127.0.0.1:5302\"} 2",
        "dnslb_backend_up{backend=\"ts1\",addr=\"127.0.0.1:5301\"} 1",
        "dnslb_backend_up{backend=\"ts2\",addr=\"127.0.0.1:5302\"} 0",
        "# TYPE dnslb_backend_latency_seconds histogram",
    ] {
        assert_line(&text, line);
    }
    // Unseen uncommon rcodes are left out; the text ends with a newline.
    assert!(!text.contains("YXDOMAIN"));
    assert!(text.ends_with('\n'));
    // Every family has exactly one HELP and TYPE, before its samples.
    let mut seen = std::collections::HashSet::new();
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert!(seen.insert(l.split(' ').nth(2).unwrap()), "dup {l}");
    }
}

#[test]
fn each_pool_has_its_queries_and_answers_by_rcode() {
    let mut cfg =
        crate::metrics::test_config(&[("ts1", "127.0.0.1:5301"), ("ts2", "127.0.0.1:5302")]);
    let text = render_prometheus(&Balancer::new(&cfg));
    assert!(!text.contains("dnslb_pool_"), "no pools, no pool families");
    let zone = |z: &str| crate::config::parse_name(z).unwrap();
    cfg.pool = vec![
        crate::config::PoolConfig::new("org", &["ts2"], vec![zone("example.org")]),
        crate::config::PoolConfig::new("com", &["ts1", "ts2"], vec![zone("example.com")]),
    ];
    let b = Balancer::new(&cfg);
    let org = b.state().pools[0].counters.clone().unwrap();
    org.queries.fetch_add(4, Relaxed);
    org.answers[0].fetch_add(3, Relaxed);
    org.answers[3].fetch_add(1, Relaxed);
    // A reload that keeps the pool's name keeps its counters.
    b.reload(&cfg);
    let text = render_prometheus(&b);
    for line in [
        "# TYPE dnslb_pool_queries_total counter",
        "dnslb_pool_queries_total{pool=\"org\"} 4",
        "dnslb_pool_queries_total{pool=\"com\"} 0",
        "# TYPE dnslb_pool_answers_total counter",
        "dnslb_pool_answers_total{pool=\"org\",rcode=\"NOERROR\"} 3",
        "dnslb_pool_answers_total{pool=\"org\",rcode=\"NXDOMAIN\"} 1",
        "dnslb_pool_answers_total{pool=\"com\",rcode=\"SERVFAIL\"} 0",
    ] {
        assert_line(&text, line);
    }
}

/// `line` is a line of `text` (the other expositions' tests use it too).
#[track_caller]
pub(in crate::metrics) fn assert_line(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "missing {line:?} in\n{text}"
    );
}

#[test]
fn cache_families_appear_with_the_cache_only() {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};

    let b = balancer(&[("ts1", "127.0.0.1:5301")]);
    assert!(!render_prometheus(&b).contains("dnslb_cache_"));
    let cfg = crate::config::LsConfig {
        cache: Some(crate::config::CacheConfig::default()),
        backend: vec![crate::config::BackendConfig {
            name: "ts1".into(),
            addr: "127.0.0.1:5301".parse().unwrap(),
            weight: 1,
            notify_key: None,
            transport: Default::default(),
            tls_name: None,
            ca: None,
            proxy: false,
        }],
        ..crate::config::LsConfig::default()
    };
    b.reload(&cfg);
    let mut m = Message::query();
    m.add_query(Query::query(
        Name::from_ascii("www.example.").unwrap(),
        RecordType::A,
    ));
    let q = m.to_vec().unwrap();
    let cache = b.state().cache.clone().unwrap();
    let mut out = Vec::new();
    cache.lookup(
        &q,
        crate::dns::Transport::Udp,
        std::time::Instant::now(),
        &mut out,
    );
    let text = render_prometheus(&b);
    let cache: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("dnslb_cache_"))
        .collect();
    let samples: Vec<&str> = cache
        .iter()
        .copied()
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert_eq!(
        samples,
        [
            "dnslb_cache_hits_total 0",
            "dnslb_cache_misses_total 1",
            "dnslb_cache_stale_total 0",
            "dnslb_cache_evictions_total 0",
            "dnslb_cache_inserts_total 0",
            "dnslb_cache_entries 0",
            "dnslb_cache_flushes_total{by=\"notify\"} 0",
            "dnslb_cache_flushes_total{by=\"http\"} 0",
            "dnslb_cache_flushed_entries_total{by=\"notify\"} 0",
            "dnslb_cache_flushed_entries_total{by=\"http\"} 0",
        ]
    );
    assert!(cache.contains(&"# TYPE dnslb_cache_entries gauge"));
    assert!(cache.contains(&"# TYPE dnslb_cache_stale_total counter"));
}

#[test]
fn histogram_is_cumulative_in_seconds() {
    let b = balancer(&[("ts1", "127.0.0.1:5301")]);
    let h = &b.metrics().client_latency;
    h.record(Duration::from_micros(40));
    h.record(Duration::from_micros(700));
    h.record(Duration::from_secs(9));
    let text = render_prometheus(&b);
    for line in [
        "dnslb_client_latency_seconds_bucket{le=\"0.00005\"} 1",
        "dnslb_client_latency_seconds_bucket{le=\"0.0005\"} 1",
        "dnslb_client_latency_seconds_bucket{le=\"0.001\"} 2",
        "dnslb_client_latency_seconds_bucket{le=\"2.5\"} 2",
        "dnslb_client_latency_seconds_bucket{le=\"5\"} 2",
        "dnslb_client_latency_seconds_bucket{le=\"+Inf\"} 3",
        "dnslb_client_latency_seconds_sum 9.00074",
        "dnslb_client_latency_seconds_count 3",
        "dnslb_backend_latency_seconds_bucket{backend=\"ts1\",addr=\"127.0.0.1:5301\",le=\"+Inf\"} 0",
        "dnslb_backend_latency_seconds_count{backend=\"ts1\",addr=\"127.0.0.1:5301\"} 0",
    ] {
        assert_line(&text, line);
    }
    let buckets = text
        .lines()
        .filter(|l| l.starts_with("dnslb_client_latency_seconds_bucket"))
        .count();
    assert_eq!(buckets, BUCKETS_US.len() + 1);
}

#[test]
fn process_metrics_and_build_info() {
    let mut e = Expo(String::new());
    write_process(
        &mut e,
        &ProcessStats {
            cpu_seconds: Some(1.5),
            resident_memory_bytes: Some(4096),
            virtual_memory_bytes: None,
            open_fds: Some(7),
            max_fds: Some(1024),
            start_time_seconds: Some(1_700_000_000.25),
        },
    );
    for line in [
        "# TYPE process_cpu_seconds_total counter",
        "process_cpu_seconds_total 1.5",
        "# TYPE process_resident_memory_bytes gauge",
        "process_resident_memory_bytes 4096",
        "process_open_fds 7",
        "process_max_fds 1024",
        "# TYPE process_start_time_seconds gauge",
        "process_start_time_seconds 1700000000.25",
    ] {
        assert_line(&e.0, line);
    }
    // What could not be read is left out, family and all.
    assert!(!e.0.contains("process_virtual_memory_bytes"), "{}", e.0);
    // No limit on file descriptors: no process_max_fds (METRICS.md).
    let mut unlimited = Expo(String::new());
    let stats = ProcessStats {
        open_fds: Some(7),
        max_fds: None,
        ..ProcessStats::default()
    };
    write_process(&mut unlimited, &stats);
    assert!(
        unlimited.0.contains("process_open_fds 7"),
        "{}",
        unlimited.0
    );
    assert!(!unlimited.0.contains("process_max_fds"), "{}", unlimited.0);

    // The full exposition carries this process's figures and the build.
    let text = render_prometheus(&balancer(&[("ts1", "127.0.0.1:5301")]));
    let build =
        format!("dnslb_build_info{{version=\"{BUILD_VERSION}\",commit=\"{BUILD_COMMIT}\"}} 1");
    assert!(text.lines().any(|l| l == build), "{text}");
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        let prefix = format!("{family} ");
        assert!(
            text.lines().any(|l| l.starts_with(&prefix)),
            "{family}: {text}"
        );
    }
}

#[test]
fn label_values_are_escaped() {
    let b = balancer(&[("we\"ird\\na\nme", "[::1]:53")]);
    let text = render_prometheus(&b);
    assert!(
        text.contains(r#"dnslb_backend_sent_total{backend="we\"ird\\na\nme",addr="[::1]:53"} 0"#),
        "{text}"
    );
}
