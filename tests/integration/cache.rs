//! The LS's packet cache end to end, over real sockets: an in-process LS
//! with `[ls.cache]` in front of fake backends that count what reaches them.
//! A repeated question is answered from memory with the client's ID and
//! case and its TTLs aged; DO, EDNS and transport are kept apart; what is
//! not an answer (SERVFAIL) is not kept; a negative answer lives for its
//! SOA's negative TTL; a smaller client gets TC=1 and over TCP the whole
//! answer; with the backend gone (or two real table servers SIGKILLed, or a
//! partition out), a cached name is answered stale (TTL 30, EDE 3) and one
//! never cached by `on_timeout`, and fresh again once they are back; a
//! pool's own cache keeps its entries and counters apart; the counters show
//! on /metrics and the status page.
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::EdnsCode;

use crate::kit::*;

/// An LS with the default `[ls.cache]` in front of `backend` alone.
async fn cached_ls(backend: &Fake, timeout_ms: u64) -> TestLs {
    let mut cfg = ls_config(&[("b1", backend.addr)]);
    cfg.cache = Some(dnslb::config::CacheConfig::default());
    cfg.timeout_ms = timeout_ms;
    start_ls(cfg).await
}

/// A backend that answers the first query it gets (NOERROR, TTL 1 s), then
/// drops every query.
async fn once_then_silent() -> Fake {
    Fake::udp(|q, n| {
        if n == 1 {
            Reply::Now(answer_with_ttl(q, ResponseCode::NoError, 1))
        } else {
            Reply::Drop
        }
    })
    .await
}

fn stats(ls: &TestLs) -> dnslb::ls::cache::CacheStats {
    ls.balancer.state().cache.as_ref().unwrap().stats()
}

/// `name` A with this ID, RD=0, and an OPT of `edns` (size, DO) if given.
fn ask_msg(name: &str, id: u16, edns: Option<(u16, bool)>) -> Message {
    let mut m = query(name, RecordType::A, None);
    m.metadata.id = id;
    if let Some((size, dnssec_ok)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    m
}

#[tokio::test]
async fn a_repeated_question_is_answered_from_memory_with_its_id_case_and_ttl_aged() {
    let backend = Fake::answering(a_300).await;
    let ls = cached_ls(&backend, 1500).await;
    let first = udp(ls.addr, &ask_msg("www.example.", 0x1111, None)).await;
    assert_eq!(first.answers[0].ttl, 300);
    assert_eq!(backend.queries.load(Relaxed), 1);
    // Time passes in whole seconds.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let again = udp(ls.addr, &ask_msg("WwW.eXaMpLe.", 0xbeef, None)).await;
    assert_eq!(backend.queries.load(Relaxed), 1, "not asked again");
    assert_eq!(again.metadata.id, 0xbeef);
    assert_eq!(again.queries[0].name().to_ascii(), "WwW.eXaMpLe.");
    assert_eq!(again.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_addrs(&again), a_addrs(&first));
    let ttl = again.answers[0].ttl;
    assert!(
        (290..=298).contains(&ttl),
        "aged by 2 s or a little more: {ttl}"
    );
    assert!(again.edns.is_none(), "no OPT for a client without one");
    let s = stats(&ls);
    assert_eq!((s.hits, s.inserts, s.entries), (1, 1, 1));
    ls.stop().await;
}

#[tokio::test]
async fn do_and_edns_are_kept_apart_and_the_backends_nsid_is_not_replayed() {
    let backend = Fake::answering(a_300).await;
    let ls = cached_ls(&backend, 1500).await;
    let asks = [None, Some((1232, false)), Some((1232, true))];
    for (round, want_queries) in [(0u16, 3), (1, 3)] {
        for (i, edns) in asks.iter().enumerate() {
            let id = round * 16 + u16::try_from(i).unwrap();
            let m = udp(ls.addr, &ask_msg("www.example.", id, *edns)).await;
            let last = if edns.is_some_and(|e| e.1) { 9 } else { 7 };
            assert_eq!(
                a_addrs(&m),
                vec![std::net::Ipv4Addr::new(192, 0, 2, last)],
                "{edns:?}"
            );
            assert_eq!(
                m.edns.is_some(),
                edns.is_some(),
                "an OPT iff the query had one"
            );
            if let (1, Some(e)) = (round, &m.edns) {
                assert_eq!(e.flags().dnssec_ok, edns.unwrap().1, "DO echoed");
                assert!(e.option(EdnsCode::NSID).is_none(), "no NSID from the cache");
            }
        }
        assert_eq!(backend.queries.load(Relaxed), want_queries);
    }
    assert_eq!(stats(&ls).hits, 3);
    ls.stop().await;
}

#[tokio::test]
async fn servfail_is_not_kept_and_a_negative_answer_lives_for_its_soa_minimum() {
    let failing = Fake::answering(|q| answer_with_ttl(q, ResponseCode::ServFail, 0)).await;
    let ls = cached_ls(&failing, 1500).await;
    for _ in 0..2 {
        let m = ask_a(ls.addr, "www.example.").await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    }
    assert_eq!(failing.queries.load(Relaxed), 2, "asked each time");
    assert_eq!(stats(&ls).entries, 0);
    ls.stop().await;

    // SOA TTL 300, MINIMUM 1: kept for 1 s (RFC 2308), not 300.
    let nx = Fake::answering(|q| answer_with_ttl(q, ResponseCode::NXDomain, 1)).await;
    let ls = cached_ls(&nx, 1500).await;
    for _ in 0..2 {
        let m = ask_a(ls.addr, "nope.example.").await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(m.authorities.len(), 1, "the SOA");
    }
    assert_eq!(nx.queries.load(Relaxed), 1, "the NXDOMAIN was kept");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let m = ask_a(ls.addr, "nope.example.").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        nx.queries.load(Relaxed),
        2,
        "expired after the SOA's MINIMUM"
    );
    ls.stop().await;
}

#[tokio::test]
async fn a_small_client_gets_tc_and_over_tcp_the_whole_cached_answer() {
    // 4 TXT records: about 900 bytes.
    let backend = Fake::answering(|q| txt_answer(q, 4)).await;
    let ls = cached_ls(&backend, 1500).await;
    let q = |size: u16| query("big.example.", RecordType::TXT, Some(size));
    let whole = udp(ls.addr, &q(1232)).await;
    assert_eq!(whole.answers.len(), 4);
    assert!(!whole.metadata.truncation);
    // Same key (EDNS, DO=0, UDP): from the cache, cut for 512 bytes.
    let small = udp_raw(ls.addr, &q(512).to_vec().unwrap()).await.unwrap();
    assert!(small.len() <= 512);
    let small = Message::from_vec(&small).unwrap();
    assert!(small.metadata.truncation, "TC=1 for a 512-byte client");
    assert!(small.answers.is_empty());
    assert_eq!(
        backend.queries.load(Relaxed),
        1,
        "the 512 client was answered from memory"
    );
    // Over TCP: the UDP client's entry serves (complete: a truncated answer
    // is never kept), whole, not cut.
    let over_tcp = tcp(ls.addr, &q(1232)).await;
    assert_eq!(over_tcp.answers.len(), 4);
    assert!(!over_tcp.metadata.truncation);
    assert_eq!(
        backend.queries.load(Relaxed),
        1,
        "the UDP entry answers TCP"
    );
    let s = stats(&ls);
    assert_eq!((s.hits, s.misses, s.inserts, s.entries), (2, 1, 1, 1));
    ls.stop().await;
}

#[tokio::test]
async fn a_tcp_answer_never_reaches_a_udp_client() {
    // 8 TXT records: about 1,800 bytes, more than any UDP client takes.
    let backend = Fake::answering(|q| txt_answer(q, 8)).await;
    let ls = cached_ls(&backend, 1500).await;
    let q = query("big.example.", RecordType::TXT, Some(1232));
    let over_tcp = tcp(ls.addr, &q).await;
    assert_eq!(over_tcp.answers.len(), 8);
    let asked = backend.queries.load(Relaxed);
    // Over UDP: not the TCP entry (too large: it would be cut); asked anew,
    // and the backend's TC=1 is not kept.
    let small = udp_raw(ls.addr, &q.to_vec().unwrap()).await.unwrap();
    assert!(small.len() <= 1232);
    assert!(Message::from_vec(&small).unwrap().metadata.truncation);
    assert!(backend.queries.load(Relaxed) > asked, "asked over UDP");
    let again = tcp(ls.addr, &q).await;
    assert_eq!(again.answers.len(), 8);
    assert_eq!(stats(&ls).hits, 1, "the TCP entry serves TCP");
    ls.stop().await;
}

#[tokio::test]
async fn with_the_backend_silent_a_cached_name_is_answered_stale() {
    // The first query gets a 1 s answer; then the backend stays silent.
    let backend = once_then_silent().await;
    let ls = cached_ls(&backend, 300).await;
    let edns = Some((1232, false));
    let first = udp(ls.addr, &ask_msg("www.example.", 1, edns)).await;
    assert_eq!(first.answers[0].ttl, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Expired: asked again, no answer by the deadline, served stale.
    let stale = udp(ls.addr, &ask_msg("www.example.", 2, edns)).await;
    // (Asked again once more under hedge: a re-ask after another delay.)
    let asked = backend.queries.load(Relaxed);
    assert!(asked >= 2, "{asked}");
    assert_eq!(stale.metadata.id, 2);
    assert_eq!(a_addrs(&stale), a_addrs(&first));
    assert_eq!(stale.answers[0].ttl, 30);
    assert_eq!(ede(&stale).map(|e| e.0), Some(3), "EDE 3 Stale Answer");
    // While the backend is up (its probes answer), each query asks it and
    // is served stale at its deadline; lost queries mark it down (`fall`).
    let b = ls.balancer.state().backends[0].clone();
    for id in 10..40 {
        if !b.is_up() {
            break;
        }
        let m = udp(ls.addr, &ask_msg("www.example.", id, edns)).await;
        assert_eq!(ede(&m).map(|e| e.0), Some(3));
    }
    assert!(!b.is_up(), "lost queries never marked it down");
    // Down, and within 30 s of a failure: stale at once, the backend not
    // asked.
    let sent = b.stats.sent.load(Relaxed);
    let at_once = udp(ls.addr, &ask_msg("www.example.", 3, edns)).await;
    assert_eq!(ede(&at_once).map(|e| e.0), Some(3));
    assert_eq!(b.stats.sent.load(Relaxed), sent, "not asked");
    // A name never cached gets the on_timeout answer.
    let never = udp(ls.addr, &ask_msg("ftp.example.", 4, edns)).await;
    assert_eq!(never.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ede(&never).map(|e| e.0), Some(22));
    assert!(stats(&ls).stale >= 3);
    ls.stop().await;
}

#[tokio::test]
async fn the_cache_counters_show_on_metrics() {
    let backend = Fake::answering(a_300).await;
    let mut cfg = ls_config(&[("b1", backend.addr)]);
    cfg.cache = Some(dnslb::config::CacheConfig::default());
    let zone = dnslb::config::parse_name("example.").unwrap();
    cfg.pool = vec![dnslb::config::PoolConfig::new("p", &["b1"], vec![zone])];
    let ls = start_ls(cfg).await;
    for _ in 0..3 {
        ask_a(ls.addr, "www.example.").await;
    }
    let metrics =
        TestMetrics::start(ls.balancer.clone(), dnslb::metrics::StatusExtra::default()).await;
    let body = http_get(metrics.addr, "/metrics").await.body;
    let e = parse_exposition(&body);
    assert_eq!(value(&e, "dnslb_cache_hits_total", &[]), 2.0);
    assert_eq!(value(&e, "dnslb_cache_misses_total", &[]), 1.0);
    assert_eq!(value(&e, "dnslb_cache_inserts_total", &[]), 1.0);
    assert_eq!(value(&e, "dnslb_cache_entries", &[]), 1.0);
    assert_eq!(value(&e, "dnslb_queries_total", &[]), 3.0);
    assert_eq!(
        value(&e, "dnslb_answers_total", &[("rcode", "NOERROR")]),
        3.0
    );
    // The hits count in their pool's answers too.
    let pool = [("pool", "p"), ("rcode", "NOERROR")];
    assert_eq!(value(&e, "dnslb_pool_answers_total", &pool), 3.0);
    let page = http_get(metrics.addr, "/").await.body;
    assert!(
        page.contains("cache hits / misses / stale / entries"),
        "{page}"
    );
    assert!(page.contains("2 / 1 / 0 / 1"), "{page}");
    metrics.stop().await;
    ls.stop().await;
}

#[tokio::test]
async fn a_pool_with_a_cache_of_its_own_keeps_its_entries_and_counters_apart() {
    let org = Fake::answering(a_300).await;
    let com = Fake::answering(a_300).await;
    let mut cfg = ls_config(&[("org", org.addr), ("com", com.addr)]);
    cfg.cache = Some(dnslb::config::CacheConfig::default());
    let zone = |z: &str| vec![dnslb::config::parse_name(z).unwrap()];
    let mut own = dnslb::config::PoolConfig::new("org", &["org"], zone("example.org."));
    own.cache = Some(dnslb::config::CacheConfig {
        max_entries: 2,
        ..Default::default()
    });
    let shared = dnslb::config::PoolConfig::new("com", &["com"], zone("example.com."));
    cfg.pool = vec![own, shared];
    let ls = start_ls(cfg).await;
    // Three org names through a 2-entry cache: the first is pushed out.
    for n in ["a", "b", "c", "a"] {
        ask_a(ls.addr, &format!("{n}.example.org.")).await;
    }
    assert_eq!(org.queries.load(Relaxed), 4, "a was evicted");
    for _ in 0..2 {
        ask_a(ls.addr, "www.example.com.").await;
    }
    assert_eq!(
        com.queries.load(Relaxed),
        1,
        "the com pool shares [ls.cache]"
    );
    // A name under no pool: every backend, the [ls.cache].
    for _ in 0..2 {
        ask_a(ls.addr, "www.example.net.").await;
    }
    let state = ls.balancer.state();
    assert_eq!(state.caches().count(), 2);
    assert_eq!(state.cache.as_ref().unwrap().stats().entries, 2, "com, net");
    let metrics =
        TestMetrics::start(ls.balancer.clone(), dnslb::metrics::StatusExtra::default()).await;
    let e = parse_exposition(&http_get(metrics.addr, "/metrics").await.body);
    let pool = |p: &'static str| [("pool", p)];
    assert_eq!(
        value(&e, "dnslb_pool_cache_misses_total", &pool("org")),
        4.0
    );
    assert_eq!(value(&e, "dnslb_pool_cache_hits_total", &pool("org")), 0.0);
    assert_eq!(value(&e, "dnslb_pool_cache_hits_total", &pool("com")), 1.0);
    assert_eq!(value(&e, "dnslb_pool_cache_entries", &pool("org")), 2.0);
    assert!(value(&e, "dnslb_pool_cache_evictions_total", &pool("org")) >= 2.0);
    assert!(
        matching(&e, "dnslb_pool_cache_entries", &pool("com")).is_empty(),
        "com has no cache of its own"
    );
    // The totals add both caches: 2 (org) + 2 (com, net) entries.
    assert_eq!(value(&e, "dnslb_cache_entries", &[]), 4.0);
    // A flush reaches every cache.
    let all = dnslb::config::parse_name("a.example.org.").unwrap();
    let com_name = dnslb::config::parse_name("example.com.").unwrap();
    assert_eq!(state.flush_cache(&all, false), 1);
    assert_eq!(state.flush_cache(&com_name, true), 1);
    metrics.stop().await;
    ls.stop().await;
}

#[tokio::test]
async fn with_a_partition_out_its_cached_names_are_answered_stale() {
    // Partitioned: "a" holds www, "b" says NXDOMAIN for it. Then "a" goes
    // silent: "b"'s NXDOMAIN is not conclusive, so the cached answer is
    // served stale, not the on_timeout answer.
    let a = once_then_silent().await;
    let b = Fake::answering(|q| answer_with_ttl(q, ResponseCode::NXDomain, 60)).await;
    let mut cfg = ls_config(&[("a", a.addr), ("b", b.addr)]);
    cfg.cache = Some(dnslb::config::CacheConfig::default());
    cfg.layout = dnslb::config::Layout::Partitioned;
    cfg.timeout_ms = 300;
    let ls = start_ls(cfg).await;
    let edns = Some((1232, false));
    let first = udp(ls.addr, &ask_msg("www.example.", 1, edns)).await;
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = udp(ls.addr, &ask_msg("www.example.", 2, edns)).await;
    assert_eq!(stale.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_addrs(&stale), a_addrs(&first));
    assert_eq!(ede(&stale).map(|e| e.0), Some(3), "{stale:?}");
    ls.stop().await;
}

/// `dnslb ts` on `port` serving `table` (a PROJ table for `example.`) with
/// every TTL 1 s, ready.
async fn ts_process(port: u16, table: &std::path::Path) -> Proc {
    let args = [
        "ts",
        "--listen",
        &local(port).to_string(),
        "--zone",
        table.to_str().unwrap(),
        "--origin",
        "example.",
        "--ttl",
        "1",
        "--workers",
        "1",
    ];
    let mut ts = Proc::dnslb("dnslb ts", &args, table.parent().unwrap());
    wait_soa(local(port), "example.", READY_LIMIT, &mut [&mut ts], |m| {
        m.metadata.response_code == ResponseCode::NoError
    })
    .await;
    ts
}

#[tokio::test]
async fn both_table_servers_killed_cached_names_are_stale_then_fresh_once_they_are_back() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t.txt");
    let names: Vec<String> = (1..=5).map(|i| format!("host{i}.example.")).collect();
    let text: String = (1..=5)
        .map(|i| format!("host{i}.example 192.0.2.{i} A\n"))
        .collect();
    std::fs::write(&table, text).unwrap();
    let ports = free_ports(2);
    let mut ts: Vec<Proc> = Vec::new();
    for &p in &ports {
        ts.push(ts_process(p, &table).await);
    }
    let mut cfg = ls_config(&[("ts1", local(ports[0])), ("ts2", local(ports[1]))]);
    cfg.cache = Some(dnslb::config::CacheConfig::default());
    cfg.timeout_ms = 400;
    cfg.health = health_config(200, 2, 1, 200);
    let ls = start_ls(cfg).await;
    let edns = Some((1232, false));
    let mut first = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let m = udp(ls.addr, &ask_msg(n, i as u16, edns)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        first.push(a_addrs(&m));
    }
    for t in &mut ts {
        t.kill_hard();
    }
    // Every TTL past (1 s): each cached name stale, TTL 30, EDE 3.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (i, n) in names.iter().enumerate() {
        let m = udp(ls.addr, &ask_msg(n, 100 + i as u16, edns)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{n}");
        assert_eq!(a_addrs(&m), first[i]);
        assert!(m.answers.iter().all(|r| r.ttl == 30), "{m:?}");
        assert_eq!(ede(&m).map(|e| e.0), Some(3), "{n}");
    }
    // A name never cached: the on_timeout answer.
    let never = udp(ls.addr, &ask_msg("host9.example.", 200, edns)).await;
    assert_eq!(never.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ede(&never).map(|e| e.0), Some(22));
    // Back on the same ports: once the LS sees them up, fresh answers.
    ts.clear();
    for &p in &ports {
        ts.push(ts_process(p, &table).await);
    }
    let state = ls.balancer.state();
    let up_by = std::time::Instant::now() + Duration::from_secs(30);
    while !state.backends.iter().all(|b| b.is_up()) {
        assert!(std::time::Instant::now() < up_by, "never marked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stale = stats(&ls).stale;
    for (i, n) in names.iter().enumerate() {
        let m = udp(ls.addr, &ask_msg(n, 300 + i as u16, edns)).await;
        assert_eq!(ede(&m), None, "{n} still stale: {m:?}");
        assert_eq!(m.answers[0].ttl, 1);
    }
    assert_eq!(stats(&ls).stale, stale, "the stale counter stopped");
    ls.stop().await;
}
