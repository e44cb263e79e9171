//! The packet cache: a lost refresh is asked again once its backend
//! answers, a TTL past 2^31 is never served from the cache, a small client
//! sent to TCP by the cache gets the cached answer there.
//!
//! Each case is held against dnsdist 1.7.3's packet cache on the same
//! input.
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

use crate::kit::*;

/// A backend's NOERROR answer to `q`: one A record of `ttl`, plus (with
/// `extra_ttl`) an additional A record of that TTL; an OPT when `q` had one.
fn answer(q: &[u8], ttl: u32, extra_ttl: Option<u32>) -> Vec<u8> {
    let query = Message::from_vec(q).unwrap();
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    m.metadata.authoritative = true;
    m.add_queries(query.queries.clone());
    let name = query.queries[0].name().clone();
    m.add_answer(Record::from_rdata(
        name.clone(),
        ttl,
        RData::A(A::new(192, 0, 2, 7)),
    ));
    if let Some(t) = extra_ttl {
        m.add_additional(Record::from_rdata(name, t, RData::A(A::new(192, 0, 2, 8))));
    }
    if query.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// `name` A with this ID and an OPT (size 1232, DO=0).
fn query_with_id(name: &str, id: u16) -> Message {
    let mut m = query(name, RecordType::A, None);
    m.metadata.id = id;
    let mut e = Edns::new();
    e.set_max_payload(1232);
    m.set_edns(e);
    m
}

/// The backend drops client queries while this is set (probes still answered).
static SILENT: AtomicBool = AtomicBool::new(false);

#[tokio::test]
async fn a_name_whose_refresh_was_lost_is_asked_again_once_its_backend_answers() {
    let backend = Fake::udp(|q, _| {
        if SILENT.load(Relaxed) {
            Reply::Drop
        } else {
            Reply::Now(answer(q, 1, None))
        }
    })
    .await;
    let mut cfg = ls_config(&[("b1", backend.addr)]);
    cfg.cache = Some(dnslb::config::CacheConfig::default());
    cfg.timeout_ms = 300;
    let ls = start_ls(cfg).await;
    let first = udp(ls.addr, &query_with_id("www.example.", 1)).await;
    assert_eq!(first.answers[0].ttl, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // One refresh lost (a datagram dropped on the way): served stale, as
    // RFC 8767 wants.
    SILENT.store(true, Relaxed);
    let stale = udp(ls.addr, &query_with_id("www.example.", 2)).await;
    assert_eq!(ede(&stale).map(|e| e.0), Some(3));
    // The backend answers again (its probes never stopped answering): the
    // next client should get its answer, not 30 s more of stale ones.
    SILENT.store(false, Relaxed);
    let asked = backend.queries.load(Relaxed);
    let next = udp(ls.addr, &query_with_id("www.example.", 3)).await;
    assert_eq!(ede(&next), None, "stale although the backend answers");
    assert!(
        backend.queries.load(Relaxed) > asked,
        "the backend was not asked"
    );
    assert_eq!(next.answers[0].ttl, 1);
    ls.stop().await;
}

#[tokio::test]
async fn a_ttl_past_2_31_is_never_served_from_the_cache() {
    let backend = Fake::udp(|q, _| Reply::Now(answer(q, 300, Some(u32::MAX)))).await;
    let mut cfg = ls_config(&[("b1", backend.addr)]);
    cfg.cache = Some(dnslb::config::CacheConfig::default());
    let ls = start_ls(cfg).await;
    let _ = udp(ls.addr, &query_with_id("www.example.", 1)).await;
    let again = udp(ls.addr, &query_with_id("www.example.", 2)).await;
    // The additional record's TTL counts as 0 (RFC 2181 §8) and bounds the
    // answer's lifetime (as every record's TTL does): never kept.
    assert_eq!(backend.queries.load(Relaxed), 2, "not a hit");
    let cache = ls.balancer.state().cache.as_ref().unwrap().stats();
    assert_eq!(cache.entries, 0, "not kept");
    assert_eq!(again.metadata.response_code, ResponseCode::NoError);
    ls.stop().await;
}

/// A backend's answer to `q` of five 200-byte TXT records (about 1.1 KB).
fn large(q: &[u8]) -> Vec<u8> {
    use hickory_proto::rr::rdata::TXT;
    let query = Message::from_vec(q).unwrap();
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    m.metadata.authoritative = true;
    m.add_queries(query.queries.clone());
    let name = query.queries[0].name().clone();
    for c in b'A'..b'F' {
        let text = String::from_utf8(vec![c; 200]).unwrap();
        m.add_answer(Record::from_rdata(
            name.clone(),
            300,
            RData::TXT(TXT::new(vec![text])),
        ));
    }
    if query.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

#[tokio::test]
async fn a_small_client_sent_to_tcp_by_the_cache_gets_the_cached_answer_there() {
    // The first query gets a 1.1 KB answer; then the backend stays silent.
    let backend = Fake::udp(|q, n| {
        if n == 1 {
            Reply::Now(large(q))
        } else {
            Reply::Drop
        }
    })
    .await;
    let mut cfg = ls_config(&[("b1", backend.addr)]);
    cfg.cache = Some(dnslb::config::CacheConfig::default());
    cfg.timeout_ms = 300;
    let ls = start_ls(cfg).await;
    let mut big = query("www.example.", RecordType::TXT, None);
    let mut e = Edns::new();
    e.set_max_payload(1232);
    big.set_edns(e);
    let first = udp(ls.addr, &big).await;
    assert_eq!(first.answers.len(), 5);
    // A 512-byte client: TC=1 from the cache, so it asks over TCP.
    let mut small = big.clone();
    small.edns.as_mut().unwrap().set_max_payload(512);
    let cut = udp(ls.addr, &small).await;
    assert!(cut.metadata.truncation);
    let again = tcp(ls.addr, &small).await;
    assert_eq!(
        again.metadata.response_code,
        ResponseCode::NoError,
        "{again:?}"
    );
    assert_eq!(again.answers.len(), 5);
    ls.stop().await;
}
