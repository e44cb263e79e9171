//! Test-only module: built under #[cfg(test)] (see `cache/mod.rs`).
//! Bounds and bookkeeping: CLOCK eviction, negatives apart, flushes, counters,
//! shards, reloads.
use super::*;

#[test]
fn clock_evicts_the_entries_not_hit_since_the_hand_last_passed() {
    // 8 entries: 6 positive, 2 negative, one shard.
    let c = cache(8);
    let t0 = Instant::now();
    let qs = six(&c, t0);
    assert_eq!(c.stats().entries, 6);
    for q in [&qs[0], &qs[2], &qs[4]] {
        assert_eq!(hit(&c, q, t0).0, Hit::Fresh);
    }
    for i in 0..3 {
        put(&c, &format!("new{i}.example."), t0);
    }
    let kept: Vec<bool> = qs.iter().map(|q| hit(&c, q, t0).0 == Hit::Fresh).collect();
    assert_eq!(kept, vec![true, false, true, false, true, false]);
    let s = c.stats();
    assert_eq!((s.entries, s.evictions, s.inserts), (6, 3, 9));
}

#[test]
fn a_flood_of_negatives_never_pushes_out_a_positive_answer() {
    let c = cache(8);
    let t0 = Instant::now();
    let qs = six(&c, t0);
    for i in 0..100 {
        let q = query(&format!("random{i}.example."), RecordType::A, PLAIN);
        let nx = answer(&q, ResponseCode::NXDomain, vec![], vec![soa(60, 60)]);
        c.insert(&q, Transport::Udp, &nx, t0).unwrap();
    }
    // Past their expiry too: kept for stale serving.
    let late = t0 + Duration::from_secs(400);
    let mut out = Vec::new();
    for q in &qs {
        assert_eq!(c.stale(q, Transport::Udp, late, &mut out), Hit::Stale);
    }
    assert_eq!(c.stats().entries, 8);
}

#[test]
fn an_entry_expired_past_the_stale_window_goes_first() {
    // 3 positive entries.
    let c = cache_where(|c| (c.max_entries, c.stale_ttl) = (4, 10));
    let t0 = Instant::now();
    let old = put(&c, "old.example.", t0);
    let t1 = t0 + Duration::from_secs(400);
    let a1 = put(&c, "a.example.", t1);
    let b1 = put(&c, "b.example.", t1);
    for q in [&old, &a1, &b1] {
        // Referenced (the old one through a stale serve).
        let mut out = Vec::new();
        assert_ne!(
            c.stale(q, Transport::Udp, t0 + Duration::from_secs(305), &mut out),
            Hit::Miss
        );
    }
    put(&c, "c.example.", t1);
    assert_eq!(hit(&c, &a1, t1).0, Hit::Fresh);
    assert_eq!(hit(&c, &b1, t1).0, Hit::Fresh);
    let mut out = Vec::new();
    assert_eq!(c.stale(&old, Transport::Udp, t1, &mut out), Hit::Miss);
}

#[test]
fn flush_removes_a_name_or_a_whole_zone() {
    let c = cache(100);
    let t0 = Instant::now();
    let names = [
        "example.",
        "www.example.",
        "a.b.example.",
        "example.org.",
        "xexample.",
    ];
    let qs: Vec<Vec<u8>> = names.iter().map(|n| put(&c, n, t0)).collect();
    let aaaa = query("www.example.", RecordType::AAAA, EDNS);
    let resp = answer(&aaaa, ResponseCode::NoError, vec![], vec![soa(60, 60)]);
    c.insert(&aaaa, Transport::Udp, &resp, t0).unwrap();
    assert_eq!(c.flush(&name("WWW.Example."), false), 2, "both types");
    assert_eq!(hit(&c, &qs[1], t0).0, Hit::Miss);
    assert_eq!(hit(&c, &qs[0], t0).0, Hit::Fresh);
    assert_eq!(c.flush(&name("example"), true), 2);
    let left: Vec<bool> = qs.iter().map(|q| hit(&c, q, t0).0 == Hit::Fresh).collect();
    assert_eq!(left, vec![false, false, false, true, true]);
    assert_eq!(c.flush(&Name::root(), true), 2);
    assert_eq!(c.stats().entries, 0);
}

#[test]
fn counters_count_hits_misses_and_inserts() {
    let c = cache(100);
    let t0 = Instant::now();
    let q = put(&c, "www.example.", t0);
    let other = query("ftp.example.", RecordType::A, PLAIN);
    hit(&c, &q, t0);
    hit(&c, &q, t0);
    hit(&c, &other, t0);
    assert_eq!(
        c.stats(),
        CacheStats {
            hits: 2,
            misses: 1,
            stale: 0,
            evictions: 0,
            inserts: 1,
            entries: 1,
        }
    );
}

#[test]
fn many_entries_spread_over_shards_and_all_are_found() {
    let c = cache(10_000);
    let t0 = Instant::now();
    let qs: Vec<Vec<u8>> = (0..2000)
        .map(|i| put(&c, &format!("h{i}.example."), t0))
        .collect();
    assert!(qs.iter().all(|q| hit(&c, q, t0).0 == Hit::Fresh));
    assert_eq!(c.stats().entries, 2000);
}

#[test]
fn a_reload_keeps_the_cache_unless_its_table_changed() {
    use crate::config::{BackendConfig, LsConfig};
    use crate::ls::Balancer;

    let mut cfg = LsConfig {
        cache: Some(CacheConfig::default()),
        backend: vec![BackendConfig {
            name: "ts1".into(),
            addr: "127.0.0.1:5301".parse().unwrap(),
            weight: 1,
            notify_key: None,
            transport: Default::default(),
            tls_name: None,
            ca: None,
            proxy: false,
        }],
        ..LsConfig::default()
    };
    let b = Balancer::new(&cfg);
    let first = b.state().cache.clone().unwrap();
    put(&first, "www.example.", Instant::now());
    cfg.timeout_ms = 900;
    b.reload(&cfg);
    let kept = b.state().cache.clone().unwrap();
    assert!(
        Arc::ptr_eq(&first, &kept),
        "same [ls.cache]: the same cache, warm"
    );
    cfg.cache = Some(CacheConfig {
        neg_ttl: 60,
        ..CacheConfig::default()
    });
    b.reload(&cfg);
    let new = b.state().cache.clone().unwrap();
    assert!(!Arc::ptr_eq(&first, &new));
    assert_eq!(new.stats().entries, 0);
    cfg.cache = None;
    b.reload(&cfg);
    assert!(b.state().cache.is_none());
}
