//! Old data kept out of the packet cache, over real sockets: an LS with
//! `[ls.cache]` in front of a fake backend whose answers the test changes
//! (a table edited behind it).
//!
//! * an answer computed before a flush (a backend's NOTIFY) and received
//!   after it is not cached: the next query sees the new data (the flush
//!   generation);
//! * a newer answer that cannot be cached (TTL 0) retires the older entry:
//!   when the backend then goes silent, the old data is not served stale;
//!   while the backend answers, every query is forwarded and
//!   gets its answer, none the old data stale.
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::kit::*;

/// An answer to `q`: one A record 192.0.2.`last` of `ttl`, or with
/// `rcode` other than NOERROR no record.
fn answer(q: &[u8], rcode: ResponseCode, last: u8, ttl: u32) -> Vec<u8> {
    let query = Message::from_vec(q).unwrap();
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    // A SERVFAIL is a failing server's (an authority's own, AA=1, is final).
    m.metadata.authoritative = rcode != ResponseCode::ServFail;
    m.metadata.response_code = rcode;
    m.add_queries(query.queries.clone());
    if rcode == ResponseCode::NoError {
        let owner = query.queries[0].name().clone();
        m.add_answer(Record::from_rdata(
            owner,
            ttl,
            RData::A(A::new(192, 0, 2, last)),
        ));
    }
    m.to_vec().unwrap()
}

/// An LS with `[ls.cache]` in front of `backend` alone, a deadline of
/// `timeout_ms`, SERVFAIL when it passes.
async fn cached_ls(backend: &Fake, timeout_ms: u64) -> TestLs {
    let mut cfg = ls_config(&[("b1", backend.addr)]);
    cfg.cache = Some(dnslb::config::CacheConfig::default());
    cfg.timeout_ms = timeout_ms;
    cfg.on_timeout = dnslb::config::OnTimeout::Servfail;
    start_ls(cfg).await
}

fn notify(zone: &str) -> Vec<u8> {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Notify);
    m.add_query(Query::query(
        Name::from_ascii(zone).unwrap(),
        RecordType::SOA,
    ));
    m.to_vec().unwrap()
}

/// How long the backend takes to answer while its table is the old one:
/// the flush must have run within it.
const SLOW: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_computed_before_a_notify_flush_is_not_cached_after_it() {
    // Asked `www.example.` (the first query, and the LS's re-asks of it),
    // the backend answers from the old table: 192.0.2.1, computed at once
    // and sent `SLOW` later, as over a WAN. Asked `WWW.example.` (the test's
    // next query: the same cache key, told apart by its case) it answers
    // from the new table at once: 192.0.2.2.
    let backend = Fake::udp(move |q, _| {
        let m = Message::from_vec(q).unwrap();
        if m.queries[0].name().to_ascii() == "www.example." {
            Reply::After(SLOW, answer(q, ResponseCode::NoError, 1, 300))
        } else {
            Reply::Now(answer(q, ResponseCode::NoError, 2, 300))
        }
    })
    .await;
    let ls = cached_ls(&backend, 5000).await;
    let addr = ls.addr;
    let first = tokio::spawn(async move { ask_a(addr, "www.example.").await });
    let sent = poll_until_async(ANSWER_WAIT, ASK_POLL, async || {
        (backend.queries.load(Relaxed) >= 1).then_some(())
    })
    .await;
    assert!(sent.is_some(), "the query never reached the backend");
    // The table changes; the backend NOTIFYs the LS (from its address).
    let ack = udp_raw(ls.addr, &notify("example.")).await.expect("an ack");
    let ack = Message::from_vec(&ack).unwrap();
    assert_eq!(ack.metadata.response_code, ResponseCode::NoError);
    let flushed = poll_until_async(ANSWER_WAIT, ASK_POLL, async || {
        (ls.balancer.flushes().flushes[0].load(Relaxed) >= 1).then_some(())
    })
    .await;
    assert!(flushed.is_some(), "the NOTIFY flush never ran");
    assert!(
        !first.is_finished(),
        "the flush must run while the old answer is on its way (slow machine?)"
    );
    let old = first.await.unwrap();
    assert_a(&old, [192, 0, 2, 1], "the first answer");
    let next = ask_a(ls.addr, "WWW.example.").await;
    assert_a(
        &next,
        [192, 0, 2, 2],
        "the answer from before the flush was cached",
    );
    ls.stop().await;
}

/// What the switchable backend answers.
const OK: u8 = 0;
const TTL0: u8 = 1;
const SILENT: u8 = 2;
const FAIL: u8 = 3;

/// A backend answering as `mode` says: OK 192.0.2.1 TTL 1, TTL0
/// 192.0.2.200 TTL 0, SILENT nothing (its probes still answered), FAIL
/// SERVFAIL.
async fn switchable() -> (Fake, Arc<AtomicU8>) {
    let mode = Arc::new(AtomicU8::new(OK));
    let m2 = mode.clone();
    let backend = Fake::udp(move |q, _| match m2.load(Relaxed) {
        OK => Reply::Now(answer(q, ResponseCode::NoError, 1, 1)),
        TTL0 => Reply::Now(answer(q, ResponseCode::NoError, 200, 0)),
        FAIL => Reply::Now(answer(q, ResponseCode::ServFail, 0, 0)),
        _ => Reply::Drop,
    })
    .await;
    (backend, mode)
}

/// Asks `name` A with an OPT (so an EDE shows).
async fn ask_edns(ls: &TestLs, name: &str) -> Message {
    udp(ls.addr, &query(name, RecordType::A, Some(1232))).await
}

/// How long an entry of TTL 1 takes to expire, and a little more.
const EXPIRED: Duration = Duration::from_millis(1100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_answer_that_cannot_be_cached_is_not_undone_by_serve_stale() {
    let (backend, mode) = switchable().await;
    let ls = cached_ls(&backend, 300).await;
    let m = ask_edns(&ls, "s6.example.").await;
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(192, 0, 2, 1)]);
    tokio::time::sleep(EXPIRED).await;
    mode.store(TTL0, Relaxed);
    let m = ask_edns(&ls, "s6.example.").await;
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(192, 0, 2, 200)], "the new data");
    mode.store(SILENT, Relaxed);
    let m = ask_edns(&ls, "s6.example.").await;
    assert!(
        a_addrs(&m).is_empty() && ede(&m).is_none_or(|(code, _)| code != 3),
        "the superseded address came back stale: {}",
        show(&m)
    );
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    ls.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_answer_while_the_backend_answers() {
    let (backend, mode) = switchable().await;
    let ls = cached_ls(&backend, 300).await;
    ask_edns(&ls, "s1.example.").await;
    tokio::time::sleep(EXPIRED).await;
    mode.store(FAIL, Relaxed);
    let m = ask_edns(&ls, "s1.example.").await;
    assert_eq!(
        (a_addrs(&m), ede(&m).map(|e| e.0)),
        (vec![Ipv4Addr::new(192, 0, 2, 1)], Some(3)),
        "stale while the backend fails: {}",
        show(&m)
    );
    mode.store(TTL0, Relaxed);
    for i in 0..4 {
        let m = ask_edns(&ls, "s1.example.").await;
        assert_a(
            &m,
            [192, 0, 2, 200],
            &format!("query {i}: the backend answers, its answer is served"),
        );
    }
    ls.stop().await;
}
