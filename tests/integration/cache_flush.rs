//! Invalidation that beats TTLs (docs/CONFIG.md (the LS), "Packet cache"), over real sockets:
//!
//! * a `dnslb ts` process whose `notify` lists the LS: its table edited and
//!   reloaded, its NOTIFY flushes the zone from the LS's cache and the next
//!   query sees the new address at once; the TS's NOTIFY is acknowledged;
//! * a NOTIFY from an address that is no backend's is REFUSED and flushes
//!   nothing; one from a backend's address (another port) over UDP or TCP
//!   is acknowledged (RFC 1996 §4.7) and flushes; with no cache it is
//!   acknowledged too; it is never forwarded;
//! * `POST /cache/flush?name=N[&zone=1]` on the metrics listener, and its
//!   400, 405 and 404 answers;
//! * `dnslb cache flush` against a running LS, and its errors.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::TcpStream;

use crate::kit::a_300;
use crate::kit::*;
use crate::kit::{TsProc, assert_all_acknowledged, tbl_table};

/// How long a NOTIFY may take to arrive and be acted on.
const NOTIFY_LIMIT: Duration = Duration::from_secs(10);
/// How long `dnslb cache flush` may take.
const CLI_LIMIT: Duration = Duration::from_secs(10);

/// A NOTIFY for `zone` (SOA IN) with ID `id`.
fn notify(zone: &str, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Notify);
    m.add_query(Query::query(
        Name::from_ascii(zone).unwrap(),
        RecordType::SOA,
    ));
    m.to_vec().unwrap()
}

/// `raw` is the acknowledgement of NOTIFY `id` for `zone` (RFC 1996 §4.7).
fn assert_acknowledged(raw: &[u8], id: u16, zone: &str) {
    let m = Message::from_vec(raw).unwrap();
    assert_eq!(m.metadata.id, id);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.op_code, OpCode::Notify);
    assert!(m.metadata.authoritative, "AA=1");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.queries.len(), 1);
    assert_eq!(m.queries[0].name().to_ascii(), zone);
    assert_eq!(m.queries[0].query_type(), RecordType::SOA);
}

/// The cache's counters.
fn stats(ls: &TestLs) -> dnslb::ls::cache::CacheStats {
    ls.balancer.state().cache.as_ref().unwrap().stats()
}

/// NOTIFY flushes counted, and entries they removed.
fn notify_flushes(ls: &TestLs) -> (u64, u64) {
    let f = ls.balancer.flushes();
    (f.flushes[0].load(Relaxed), f.entries[0].load(Relaxed))
}

/// Waits for the flusher to count `n` NOTIFY flushes (it removes the
/// entries after the NOTIFY is acknowledged); then the flushes and entries.
async fn flushed(ls: &TestLs, n: u64) -> (u64, u64) {
    let done = poll_until_async(NOTIFY_LIMIT, ASK_POLL, async || {
        (notify_flushes(ls).0 >= n).then_some(())
    })
    .await;
    assert!(done.is_some(), "the flusher never counted {n} flushes");
    notify_flushes(ls)
}

/// The fake backend was asked `n` client queries in all.
fn assert_asked(backend: &Fake, n: u64, why: &str) {
    assert_eq!(backend.queries.load(Relaxed), n, "{why}");
}

/// An LS in front of a fake backend answering every name with an A record
/// (TTL 300), with `[ls.cache]` if `cache`.
async fn ls_before_fake(cache: bool) -> (Fake, TestLs) {
    let backend = Fake::answering(a_300).await;
    let mut cfg = ls_config(&[("b1", backend.addr)]);
    cfg.cache = cache.then(dnslb::config::CacheConfig::default);
    let ls = start_ls(cfg).await;
    (backend, ls)
}

/// Asks `names` (A) of the LS, each answered.
async fn ask_all(ls: &TestLs, names: &[&str]) {
    for name in names {
        let m = ask_a(ls.addr, name).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_reload_s_notify_flushes_the_zone_and_the_next_query_sees_the_new_address() {
    let ls_port = free_port();
    let (_dir, table, mut ts) = TsProc::start_tbl(ls_port).await;
    let mut cfg = ls_config(&[("ts1", ts.addr)]);
    cfg.cache = Some(dnslb::config::CacheConfig::default());
    let ls = start_ls_at(cfg, local(ls_port)).await;

    let old = [Ipv4Addr::new(192, 0, 2, 1)];
    let first = ask_a(ls.addr, "www.tbl.test.").await;
    assert_eq!(a_addrs(&first), old, "{}", show(&first));
    let again = ask_a(ls.addr, "www.tbl.test.").await;
    assert_eq!(a_addrs(&again), old);
    let s = stats(&ls);
    assert_eq!((s.hits, s.entries), (1, 1), "the second ask is a hit");

    // The table's address changes; the TS reloads and NOTIFYs the LS.
    std::fs::write(&table, tbl_table("").replace("192.0.2.1 A", "192.0.2.2 A")).unwrap();
    ts.reload();
    let flushed = poll_until_async(NOTIFY_LIMIT, ASK_POLL, async || {
        (notify_flushes(&ls).0 >= 1).then_some(())
    })
    .await;
    assert!(
        flushed.is_some(),
        "no NOTIFY flush within {NOTIFY_LIMIT:?}; TS stderr:\n{}",
        ts.stderr_now()
    );
    assert_eq!(notify_flushes(&ls), (1, 1), "one flush, of the one entry");
    let new = ask_a(ls.addr, "www.tbl.test.").await;
    assert_a(&new, [192, 0, 2, 2], "the changed address");
    assert_eq!(stats(&ls).hits, 1, "asked of the TS, not the cache");

    // The TS had its answer: acknowledged, never retried.
    ts.wait_log("notify acknowledged", 1, NOTIFY_LIMIT).await;
    let log = ts.stderr_now();
    assert_all_acknowledged(&log, "the LS");
    assert!(!log.contains("notify rejected"), "{log}");
    assert_eq!(log.matches("notify acknowledged").count(), 1, "{log}");
    ls.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_from_no_backend_s_address_is_refused_and_one_from_a_backend_s_flushes() {
    let (backend, ls) = ls_before_fake(true).await;
    ask_all(&ls, &["www.example."]).await;
    assert_eq!(stats(&ls).entries, 1);

    // From 127.0.0.2: no backend's address.
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let raw = udp_raw_from(other, ls.addr, &notify("example.", 0x1234), ANSWER_WAIT)
        .await
        .expect("an answer to the NOTIFY");
    let m = Message::from_vec(&raw).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.op_code, OpCode::Notify);
    assert_eq!(stats(&ls).entries, 1, "still cached");
    ask_all(&ls, &["www.example."]).await;
    assert_asked(&backend, 1, "answered from the cache");
    assert_eq!(ls.balancer.flushes().notify_refused.load(Relaxed), 1);
    assert_eq!(notify_flushes(&ls), (0, 0));

    // From the backend's address (another port): acknowledged, flushed.
    let raw = udp_raw(ls.addr, &notify("Example.", 0x4321))
        .await
        .expect("an answer to the NOTIFY");
    assert_acknowledged(&raw, 0x4321, "Example.");
    assert_eq!(flushed(&ls, 1).await, (1, 1));
    assert_eq!(stats(&ls).entries, 0);
    assert_asked(&backend, 1, "the NOTIFY is not forwarded");
    ask_all(&ls, &["www.example."]).await;
    assert_asked(&backend, 2, "asked again after the flush");
    ls.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_s_notify_over_tcp_flushes_the_zone_and_only_it() {
    let (backend, ls) = ls_before_fake(true).await;
    ask_all(&ls, &["a.example.", "b.sub.example.", "example.org."]).await;
    assert_eq!(stats(&ls).entries, 3);
    let mut s = TcpStream::connect(ls.addr).await.unwrap();
    tcp_send(&mut s, &notify("example.", 77)).await;
    let raw = tcp_recv(&mut s).await.expect("an answer over TCP");
    assert_acknowledged(&raw, 77, "example.");
    let flushes = flushed(&ls, 1).await;
    let left = stats(&ls).entries;
    assert_eq!((flushes, left), ((1, 2), 1), "example.org. stays");
    ask_all(&ls, &["example.org."]).await;
    ls.stop().await;
    assert_asked(&backend, 3, "example.org. from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cache_a_backend_s_notify_is_acknowledged_and_counted() {
    let (backend, ls) = ls_before_fake(false).await;
    let raw = udp_raw(ls.addr, &notify("example.", 9))
        .await
        .expect("an answer to the NOTIFY");
    assert_acknowledged(&raw, 9, "example.");
    assert_asked(&backend, 0, "not forwarded");
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;
    let text = http_get(metrics.addr, "/metrics").await.body;
    let e = parse_exposition(&text);
    assert_eq!(
        value(&e, "dnslb_notify_total", &[("result", "accepted")]),
        1.0
    );
    assert_eq!(
        value(&e, "dnslb_notify_total", &[("result", "refused")]),
        0.0
    );
    assert!(!text.contains("dnslb_cache_"), "no cache families:\n{text}");
    metrics.stop().await;
    ls.stop().await;
}

/// `POST /cache/flush` with query `q` to `addr`, as `dnslb cache flush`
/// sends it (its header): status and body.
async fn post_flush(addr: SocketAddr, q: &str) -> (u16, String) {
    let path = format!("/cache/flush{q}");
    let r = http_request_with(addr, "POST", &path, &[("X-Dnslb-Flush", "1")]).await;
    (r.status, r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_a_web_page_could_send_is_refused_and_flushes_walk_one_at_a_time() {
    let (_backend, ls) = ls_before_fake(true).await;
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;
    ask_all(&ls, &["a.example."]).await;
    let path = "/cache/flush?name=.&zone=1";
    // An HTML form's POST, and a script on a rebound name (it may
    // set the header, but a browser adds its Origin).
    let form = [
        ("Origin", "http://evil.example"),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let rebound = [
        ("Origin", "http://attacker.example:5390"),
        ("X-Dnslb-Flush", "1"),
    ];
    let fetch = [("Sec-Fetch-Site", "same-origin"), ("X-Dnslb-Flush", "1")];
    for headers in [&form[..], &rebound, &fetch, &[]] {
        let r = http_request_with(metrics.addr, "POST", path, headers).await;
        assert_eq!(r.status, 403, "{headers:?}: {}", r.body);
    }
    assert_eq!(stats(&ls).entries, 1, "nothing flushed");

    // While another flush holds the walk, one waits, then gets 503.
    let walking = ls.balancer.flushes().http_walk.lock().await;
    let r = http_request_with(metrics.addr, "POST", path, &[("X-Dnslb-Flush", "1")]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.headers.get("retry-after").map(String::as_str), Some("1"));
    assert_eq!(stats(&ls).entries, 1, "nothing flushed meanwhile");
    drop(walking);
    let (status, body) = post_flush(metrics.addr, "?name=.&zone=1").await;
    assert_eq!((status, stats(&ls).entries), (200, 0), "{body}");
    metrics.stop().await;
    ls.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_flood_from_a_backend_s_address_is_held_to_its_budget() {
    let (_backend, ls) = ls_before_fake(true).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(ls.addr).await.unwrap();
    let sent: u16 = 200;
    for id in 0..sent {
        sock.send(&notify(&format!("z{id}.example."), id))
            .await
            .unwrap();
    }
    let mut acked = 0u64;
    let mut buf = [0u8; 512];
    // Every answer the LS will send is out once a second passes quietly.
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
        assert_eq!(
            Message::from_vec(&buf[..n]).unwrap().metadata.response_code,
            ResponseCode::NoError
        );
        acked += 1;
    }
    let f = ls.balancer.flushes();
    let limited = f.notify_limited.load(Relaxed);
    assert!(
        (50..=80).contains(&acked),
        "the burst of 50 and what 10 a second refills: {acked} of {sent}"
    );
    assert_eq!(
        acked + limited,
        u64::from(sent),
        "the rest dropped and counted"
    );
    assert_eq!(f.notify_accepted.load(Relaxed), acked);
    ls.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_cache_flush_removes_a_name_or_a_zone() {
    let (backend, ls) = ls_before_fake(true).await;
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;
    let names = ["a.example.", "b.sub.example.", "example.org."];
    ask_all(&ls, &names).await;
    assert_eq!(stats(&ls).entries, 3);

    let (status, body) = post_flush(metrics.addr, "?name=A.Example").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["removed"], 1, "{body}");
    assert_eq!(v["zone"], false, "{body}");
    assert_eq!(stats(&ls).entries, 2);
    let (_, body) = post_flush(metrics.addr, "?name=a.example.").await;
    assert!(body.contains("\"removed\":0"), "gone already: {body}");

    // The zone: a.example. and b.sub.example., not example.org.
    ask_all(&ls, &["a.example."]).await;
    let (status, body) = post_flush(metrics.addr, "?name=example%2E&zone=1").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"removed\":2"), "{body}");
    assert_eq!(stats(&ls).entries, 1);
    let asked = backend.queries.load(Relaxed);
    ask_all(&ls, &["example.org."]).await;
    assert_asked(&backend, asked, "example.org. kept");
    ask_all(&ls, &["b.sub.example."]).await;
    assert_asked(&backend, asked + 1, "b.sub.example. flushed");

    for (q, says) in [
        ("", "missing name"),
        ("?zone=1", "missing name"),
        ("?name=a..b", "name:"),
        ("?name=a.&zone=maybe", "zone:"),
    ] {
        let (status, body) = post_flush(metrics.addr, q).await;
        assert_eq!(status, 400, "{q:?}: {body}");
        assert!(body.contains(says), "{q:?}: {body}");
    }
    let get = http_get(metrics.addr, "/cache/flush?name=a.example").await;
    assert_eq!(get.status, 405);
    assert_eq!(get.headers.get("allow").map(String::as_str), Some("POST"));

    let e = parse_exposition(&http_get(metrics.addr, "/metrics").await.body);
    let by = |name, by| value(&e, name, &[("by", by)]);
    assert_eq!(by("dnslb_cache_flushes_total", "http"), 3.0);
    assert_eq!(by("dnslb_cache_flushed_entries_total", "http"), 3.0);
    assert_eq!(by("dnslb_cache_flushes_total", "notify"), 0.0);
    metrics.stop().await;
    ls.stop().await;

    // An LS without a cache: nothing to flush, 404.
    let (_b, bare) = ls_before_fake(false).await;
    let metrics = TestMetrics::start(bare.balancer.clone(), Default::default()).await;
    let (status, body) = post_flush(metrics.addr, "?name=a.example").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no packet cache"), "{body}");
    metrics.stop().await;
    bare.stop().await;
}

/// `dnslb cache flush ARGS`, run to its end off the runtime's threads.
async fn cli(args: &[&str]) -> Output {
    let mut all = vec!["cache".to_owned(), "flush".to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        run_dnslb(&args, Path::new("/"), None, CLI_LIMIT)
    })
    .await
    .unwrap()
}

/// A config whose `[ls]` has `metrics` (when given), in `dir`.
fn config(dir: &Path, metrics: Option<SocketAddr>) -> String {
    let metrics = metrics
        .map(|m| format!("metrics = \"{m}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "[ls]\nlisten = [\"127.0.0.1:0\"]\n{metrics}\n{}",
        backend_toml("ts1", local(5301))
    );
    let path = dir.join(format!("config-{}.toml", metrics.len()));
    std::fs::write(&path, text).unwrap();
    path_str(&path).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnslb_cache_flush_asks_a_running_ls_and_says_how_many() {
    let (_backend, ls) = ls_before_fake(true).await;
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;
    ask_all(&ls, &["a.example.", "b.sub.example.", "example.org."]).await;
    let dir = tempfile::tempdir().unwrap();
    let with_metrics = config(dir.path(), Some(metrics.addr));

    let out = cli(&["www.nowhere.example", "-c", &with_metrics]).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "0 entries removed (name www.nowhere.example.)\n"
    );
    let out = cli(&["example", "--zone", "-c", &with_metrics]).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.stdout, "2 entries removed (zone example.)\n");
    let addr = metrics.addr.to_string();
    let out = cli(&["example.org.", "--addr", &addr]).await;
    assert_eq!(out.stdout, "1 entry removed (name example.org.)\n");
    assert_eq!(stats(&ls).entries, 0);

    // Errors: one line, exit 1.
    let bad_name = cli(&["a..b", "--addr", &addr]).await;
    let no_metrics = cli(&["x.example", "-c", &config(dir.path(), None)]).await;
    metrics.stop().await;
    let not_running = cli(&["x.example", "-c", &with_metrics]).await;
    for (out, says) in [
        (bad_name, "a..b"),
        (no_metrics, "no ls.metrics address"),
        (not_running, "cannot reach the LS at"),
    ] {
        assert_eq!(out.status.code(), Some(1), "{says}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        let lines = out.stderr_lines();
        assert_eq!(lines.len(), 1, "{}", out.stderr);
        assert!(lines[0].starts_with("dnslb: error: "), "{}", lines[0]);
        assert!(lines[0].contains(says), "{says}: {}", lines[0]);
    }
    ls.stop().await;

    // An LS without a cache says so.
    let (_b, bare) = ls_before_fake(false).await;
    let metrics = TestMetrics::start(bare.balancer.clone(), Default::default()).await;
    let out = cli(&["a.example", "--addr", &metrics.addr.to_string()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("HTTP 404"), "{}", out.stderr);
    assert!(out.stderr.contains("no packet cache"), "{}", out.stderr);
    metrics.stop().await;
    bare.stop().await;
}

/// A pool's own cache (no `[ls.cache]`) is flushed by a NOTIFY and by
/// `POST /cache/flush` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_s_own_cache_is_flushed_by_notify_and_by_http() {
    let backend = Fake::answering(a_300).await;
    let mut cfg = ls_config(&[("b1", backend.addr)]);
    let zone = vec![Name::from_ascii("example.").unwrap()];
    let mut pool = dnslb::config::PoolConfig::new("p", &["b1"], zone);
    pool.cache = Some(dnslb::config::CacheConfig::default());
    cfg.pool = vec![pool];
    let ls = start_ls(cfg).await;
    assert!(ls.balancer.state().cache.is_none(), "no [ls.cache]");
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;

    ask_all(&ls, &["a.example.", "a.example."]).await;
    assert_asked(&backend, 1, "the second from the pool's cache");
    let raw = udp_raw(ls.addr, &notify("example.", 5)).await.unwrap();
    assert_acknowledged(&raw, 5, "example.");
    assert_eq!(flushed(&ls, 1).await, (1, 1));

    ask_all(&ls, &["a.example."]).await;
    assert_asked(&backend, 2, "asked again after the NOTIFY");
    let (status, body) = post_flush(metrics.addr, "?name=a.example").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"removed\":1"), "{body}");
    metrics.stop().await;
    ls.stop().await;
}
