//! What the packet cache keys on besides the question, over real sockets:
//! an LS with `[ls.cache]` in front of a fake backend that tailors its
//! answers (GeoDNS-like) by the EDNS Client Subnet option (RFC 7871) and
//! reports the RD bit it saw.
//!
//! * one subnet's tailored answer is never served to another subnet, nor to
//!   a client without ECS; a hit for the same subnet carries the scope the
//!   backend returned (a resolver downstream caches it per subnet too);
//! * an RD=0 query is not answered from an RD=1 entry (a recursive
//!   backend's no-snooping policy holds through the LS).
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering::Relaxed;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{RData, Record, RecordType};

use crate::kit::*;

/// The client subnet of a query's ECS option, if it has one.
fn subnet_of(m: &Message) -> Option<ClientSubnet> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some(*s),
        _ => None,
    }
}

/// A GeoDNS-like backend's answer: for a query with ECS `a.b.c.0/24`,
/// `10.a.b.c` with the option echoed at scope 24; without ECS `10.0.0.0`
/// and no option; TTL 300.
fn geo_answer(q: &[u8]) -> Vec<u8> {
    let query = Message::from_vec(q).unwrap();
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    m.metadata.authoritative = true;
    m.metadata.response_code = ResponseCode::NoError;
    m.add_queries(query.queries.clone());
    let owner = query.queries[0].name().clone();
    let subnet = subnet_of(&query);
    let addr = match subnet.as_ref().map(ClientSubnet::addr) {
        Some(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            Ipv4Addr::new(10, a, b, c)
        }
        _ => Ipv4Addr::new(10, 0, 0, 0),
    };
    m.add_answer(Record::from_rdata(owner, 300, RData::A(A(addr))));
    if query.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        if let Some(mut s) = subnet {
            s.set_scope_prefix(24);
            e.options_mut().insert(EdnsOption::Subnet(s));
        }
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// `name` A with an OPT carrying ECS `subnet` (a.b.c.0/24) when given.
fn ask_from(name: &str, subnet: Option<[u8; 3]>) -> Message {
    let mut m = query(name, RecordType::A, Some(1232));
    if let Some([a, b, c]) = subnet {
        let s = ClientSubnet::new(IpAddr::V4(Ipv4Addr::new(a, b, c, 0)), 24, 0);
        m.edns
            .as_mut()
            .unwrap()
            .options_mut()
            .insert(EdnsOption::Subnet(s));
    }
    m
}

/// An LS with the default `[ls.cache]` in front of `backend` alone.
async fn cached_ls(backend: &Fake) -> TestLs {
    let mut cfg = ls_config(&[("b1", backend.addr)]);
    cfg.cache = Some(dnslb::config::CacheConfig::default());
    start_ls(cfg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subnet_s_tailored_answer_reaches_no_other_subnet_and_keeps_its_scope() {
    let backend = Fake::answering(geo_answer).await;
    let ls = cached_ls(&backend).await;
    let (one, two) = ([1, 2, 3], [5, 6, 7]);
    let first = udp(ls.addr, &ask_from("geo.example.", Some(one))).await;
    assert_eq!(a_addrs(&first), [Ipv4Addr::new(10, 1, 2, 3)]);
    let other = udp(ls.addr, &ask_from("geo.example.", Some(two))).await;
    assert_a(&other, [10, 5, 6, 7], "another subnet's own answer");
    let plain = udp(ls.addr, &ask_from("geo.example.", None)).await;
    assert_a(
        &plain,
        [10, 0, 0, 0],
        "a client without ECS never gets a subnet's answer",
    );
    assert!(subnet_of(&plain).is_none());
    assert_eq!(
        backend.queries.load(Relaxed),
        3,
        "three answers, three asks"
    );
    // Each again: from the cache, as the backend said it.
    for (subnet, last) in [
        (Some(one), [10, 1, 2, 3]),
        (Some(two), [10, 5, 6, 7]),
        (None, [10, 0, 0, 0]),
    ] {
        let m = udp(ls.addr, &ask_from("geo.example.", subnet)).await;
        assert_eq!(a_addrs(&m), [Ipv4Addr::from(last)], "{subnet:?}");
        match subnet {
            Some([a, b, c]) => {
                let s = subnet_of(&m).expect("the ECS option on a hit");
                assert_eq!(s.addr(), IpAddr::V4(Ipv4Addr::new(a, b, c, 0)));
                assert_eq!(
                    (s.source_prefix(), s.scope_prefix()),
                    (24, 24),
                    "scope kept"
                );
            }
            None => assert!(subnet_of(&m).is_none()),
        }
    }
    assert_eq!(backend.queries.load(Relaxed), 3, "hits");
    let s = ls.balancer.state().cache.as_ref().unwrap().stats();
    assert_eq!((s.hits, s.entries), (3, 3));
    ls.stop().await;
}

/// A recursive-like backend: 192.0.2.1 to an RD=1 query, 192.0.2.0 to an
/// RD=0 one (what it would refuse), TTL 300.
fn rd_answer(q: &[u8]) -> Vec<u8> {
    let query = Message::from_vec(q).unwrap();
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.add_queries(query.queries.clone());
    let last = u8::from(query.metadata.recursion_desired);
    let owner = query.queries[0].name().clone();
    m.add_answer(Record::from_rdata(
        owner,
        300,
        RData::A(A::new(192, 0, 2, last)),
    ));
    m.to_vec().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rd_0_query_is_not_answered_from_an_rd_1_entry() {
    let backend = Fake::answering(rd_answer).await;
    let ls = cached_ls(&backend).await;
    let rec = udp(ls.addr, &query_rd("www.example.", RecordType::A, true)).await;
    assert_eq!(a_addrs(&rec), [Ipv4Addr::new(192, 0, 2, 1)]);
    let norec = udp(ls.addr, &query_rd("www.example.", RecordType::A, false)).await;
    assert_a(&norec, [192, 0, 2, 0], "the backend's RD=0 answer");
    assert!(!norec.metadata.recursion_desired);
    let again = udp(ls.addr, &query_rd("www.example.", RecordType::A, false)).await;
    assert_eq!(a_addrs(&again), [Ipv4Addr::new(192, 0, 2, 0)]);
    assert_eq!(backend.queries.load(Relaxed), 2, "the last one a hit");
    ls.stop().await;
}
