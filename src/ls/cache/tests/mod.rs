//! Test-only module: built under #[cfg(test)] (see `cache/mod.rs`).
//! Tests of the packet cache on a made-up clock, and their helpers (queries
//! and backends' answers built with hickory): `keep` what is kept and for how
//! long, `hits` what a hit looks like to its client (decoded), stale serving
//! and its failure-recheck, `memory` eviction, flushes, counters, reloads.
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::rdata::{A, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;
use crate::config::CacheConfig;

mod ecs;
mod hits;
mod keep;
mod memory;
mod supersede;

use crate::dns::fixtures::name;

/// A client's query options.
#[derive(Clone, Copy)]
struct Ask {
    id: u16,
    /// `Some((udp size, DO))`: with an OPT.
    edns: Option<(u16, bool)>,
    cd: bool,
    rd: bool,
}

const PLAIN: Ask = Ask {
    id: 0x1111,
    edns: None,
    cd: false,
    rd: true,
};
const EDNS: Ask = Ask {
    id: 0x2222,
    edns: Some((1232, false)),
    cd: false,
    rd: true,
};

fn query(qname: &str, qtype: RecordType, ask: Ask) -> Vec<u8> {
    let mut m = Message::new(ask.id, MessageType::Query, OpCode::Query);
    m.metadata.checking_disabled = ask.cd;
    m.metadata.recursion_desired = ask.rd;
    m.add_query(Query::query(name(qname), qtype));
    if let Some((size, dnssec_ok)) = ask.edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn a(owner: &str, ttl: u32, last: u8) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A::new(192, 0, 2, last)))
}

/// An SOA for `example.` with this TTL and MINIMUM.
fn soa(ttl: u32, minimum: u32) -> Record {
    let rdata = SOA::new(
        name("ns.example."),
        name("hostmaster.example."),
        1,
        3600,
        600,
        86400,
        minimum,
    );
    Record::from_rdata(name("example."), ttl, RData::SOA(rdata))
}

/// A backend's answer to `q` (its ID, question and OPT, the latter with
/// an NSID of the backend's), with these sections.
fn answer(q: &[u8], rcode: ResponseCode, answers: Vec<Record>, authority: Vec<Record>) -> Vec<u8> {
    let query = Message::from_vec(q).unwrap();
    let mut m = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.authoritative = true;
    m.metadata.response_code = rcode;
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.metadata.checking_disabled = query.metadata.checking_disabled;
    m.add_queries(query.queries.clone());
    m.add_answers(answers);
    m.add_authorities(authority);
    if let Some(qe) = &query.edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        e.set_dnssec_ok(qe.flags().dnssec_ok);
        e.options_mut().insert(EdnsOption::NSID(
            NSIDPayload::new(b"backend-1".to_vec()).unwrap(),
        ));
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn cache(max_entries: usize) -> PacketCache {
    cache_where(|c| c.max_entries = max_entries)
}

/// A cache whose config is the default changed by `set`.
fn cache_where(set: impl FnOnce(&mut CacheConfig)) -> PacketCache {
    let mut config = CacheConfig::default();
    set(&mut config);
    PacketCache::new(&config)
}

/// The decoded answer `cache` gives `q` at `now`, with what kind of hit.
fn hit(cache: &PacketCache, q: &[u8], now: Instant) -> (Hit, Option<Message>) {
    let mut out = Vec::with_capacity(4096);
    let h = cache.lookup(q, Transport::Udp, now, &mut out);
    (
        h,
        (h != Hit::Miss).then(|| Message::from_vec(&out).unwrap()),
    )
}

fn ttls(m: &Message) -> Vec<u32> {
    m.all_sections().map(|r| r.ttl).collect()
}

/// The EDE info codes of a message's OPT.
fn ede(m: &Message) -> Option<u16> {
    match m.edns.as_ref()?.option(EdnsCode::Unknown(15))? {
        EdnsOption::Unknown(_, data) => Some(u16::from_be_bytes([data[0], data[1]])),
        _ => None,
    }
}

/// Inserts a positive answer for `qname` at `now`; its query.
fn put(c: &PacketCache, qname: &str, now: Instant) -> Vec<u8> {
    put_as(c, qname, PLAIN, 300, now)
}

/// Inserts a positive answer of `ttl` for `qname` asked as `ask`, at
/// `now`; its query.
fn put_as(c: &PacketCache, qname: &str, ask: Ask, ttl: u32, now: Instant) -> Vec<u8> {
    put_over(c, qname, (ask, Transport::Udp), ttl, now)
}

/// [`put_as`] for a query that came over `transport`.
fn put_over(
    c: &PacketCache,
    qname: &str,
    how: (Ask, Transport),
    ttl: u32,
    now: Instant,
) -> Vec<u8> {
    let q = query(qname, RecordType::A, how.0);
    let resp = answer(&q, ResponseCode::NoError, vec![a(qname, ttl, 1)], vec![]);
    c.insert(&q, how.1, &resp, now).unwrap();
    q
}

/// Inserts positive answers for `n0.example.` to `n5.example.`; their
/// queries.
fn six(c: &PacketCache, now: Instant) -> Vec<Vec<u8>> {
    (0..6)
        .map(|i| put(c, &format!("n{i}.example."), now))
        .collect()
}
