//! Test-only module: built under #[cfg(test)] (see `cache/mod.rs`).
//! Tests of the packet cache on a made-up clock: what is kept and for how
//! long, what a hit looks like to its client (decoded with hickory), stale
//! serving and its failure-recheck, eviction, flushes and counters.
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::rdata::{A, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;
use crate::config::CacheConfig;

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

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
    PacketCache::new(&CacheConfig {
        max_entries,
        ..CacheConfig::default()
    })
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

#[test]
fn keys_fold_case_and_keep_do_cd_edns_and_transport_apart() {
    let c = cache(100);
    let k = |q: &[u8], t| c.key(q, t).map(|(k, _)| (k.hash, k.to_stored()));
    let base = k(&query("www.example.", RecordType::A, PLAIN), Transport::Udp).unwrap();
    let upper = k(&query("WwW.ExAmPlE.", RecordType::A, PLAIN), Transport::Udp).unwrap();
    assert_eq!(base, upper, "case does not matter");
    let others = [
        query("www.example.", RecordType::AAAA, PLAIN),
        query("www.example.org.", RecordType::A, PLAIN),
        query("www.example.", RecordType::A, EDNS),
        query("www.example.", RecordType::A, Ask { cd: true, ..PLAIN }),
        query(
            "www.example.",
            RecordType::A,
            Ask {
                edns: Some((1232, true)),
                ..EDNS
            },
        ),
    ];
    for q in &others {
        assert_ne!(k(q, Transport::Udp).unwrap().1, base.1);
    }
    let tcp = k(&query("www.example.", RecordType::A, PLAIN), Transport::Tcp).unwrap();
    assert_ne!(tcp.1, base.1, "TCP apart from UDP");
    // The same ID or RD bit does not matter.
    let other_id = query(
        "www.example.",
        RecordType::A,
        Ask {
            id: 9,
            rd: false,
            ..PLAIN
        },
    );
    assert_eq!(k(&other_id, Transport::Udp).unwrap(), base);
}

#[test]
fn queries_that_are_not_plain_have_no_key() {
    let c = cache(100);
    let q = query("www.example.", RecordType::A, PLAIN);
    let mut response = q.clone();
    response[2] |= 0x80;
    let mut notify = q.clone();
    notify[2] |= 4 << 3;
    let mut two = q.clone();
    two[5] = 2;
    let mut v1 = query("www.example.", RecordType::A, EDNS);
    let at = v1.len() - 5; // the OPT's version byte
    v1[at] = 1;
    let mut pointer = q[..12].to_vec();
    pointer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    for (what, bad) in [
        ("a response", &response),
        ("a NOTIFY", &notify),
        ("two questions", &two),
        ("EDNS version 1", &v1),
        ("a compressed name", &pointer),
        ("a runt", &q[..11].to_vec()),
        ("a cut question", &q[..q.len() - 1].to_vec()),
    ] {
        assert!(c.key(bad, Transport::Udp).is_none(), "{what}");
        let mut out = Vec::new();
        assert_eq!(
            c.lookup(bad, Transport::Udp, Instant::now(), &mut out),
            Hit::Miss
        );
    }
}

#[test]
fn a_hit_restores_id_case_rd_and_ages_ttls_by_whole_seconds() {
    let c = cache(100);
    let t0 = Instant::now();
    let q = query("www.example.", RecordType::A, PLAIN);
    let resp = answer(
        &q,
        ResponseCode::NoError,
        vec![a("www.example.", 300, 1), a("www.example.", 600, 2)],
        vec![],
    );
    c.insert(&q, Transport::Udp, &resp, t0).unwrap();
    let q2 = query(
        "WWW.eXaMpLe.",
        RecordType::A,
        Ask {
            id: 0xbeef,
            rd: false,
            ..PLAIN
        },
    );
    let (h, m) = hit(&c, &q2, t0 + Duration::from_millis(3900));
    let m = m.unwrap();
    assert_eq!(h, Hit::Fresh);
    assert_eq!(m.metadata.id, 0xbeef);
    assert!(!m.metadata.recursion_desired, "RD from this client");
    assert!(m.metadata.authoritative, "the backend's flags kept");
    assert_eq!(m.queries[0].name().to_ascii(), "WWW.eXaMpLe.");
    assert_eq!(ttls(&m), vec![297, 597], "3 whole seconds");
    assert!(m.edns.is_none(), "no OPT for a client without one");
    // The answer stays fresh until its smallest TTL has passed.
    let (h, m) = hit(&c, &q2, t0 + Duration::from_millis(299_999));
    assert_eq!((h, ttls(&m.unwrap())), (Hit::Fresh, vec![1, 301]));
    assert_eq!(hit(&c, &q2, t0 + Duration::from_secs(300)).0, Hit::Miss);
}

#[test]
fn the_opt_is_made_for_the_client_and_backend_options_are_not_replayed() {
    let c = cache(100);
    let t0 = Instant::now();
    let do1 = Ask {
        edns: Some((4096, true)),
        ..EDNS
    };
    let q = query("www.example.", RecordType::A, do1);
    let resp = answer(
        &q,
        ResponseCode::NoError,
        vec![a("www.example.", 60, 1)],
        vec![],
    );
    assert!(
        Message::from_vec(&resp)
            .unwrap()
            .edns
            .unwrap()
            .option(EdnsCode::NSID)
            .is_some()
    );
    c.insert(&q, Transport::Udp, &resp, t0).unwrap();
    let (h, m) = hit(&c, &q, t0);
    assert_eq!(h, Hit::Fresh);
    let e = m.unwrap().edns.expect("an OPT for an EDNS client");
    assert!(e.flags().dnssec_ok, "DO echoed");
    assert_eq!(e.max_payload(), 1232, "the LS's UDP size");
    assert!(
        e.options().as_ref().is_empty(),
        "no NSID, cookie or padding replayed"
    );
    // DO=0 and plain clients do not get the DO=1 answer.
    for other in [EDNS, PLAIN] {
        let q = query("www.example.", RecordType::A, other);
        assert_eq!(hit(&c, &q, t0).0, Hit::Miss);
    }
}

#[test]
fn what_is_not_kept() {
    let c = PacketCache::new(&CacheConfig {
        neg_ttl: 0,
        ..CacheConfig::default()
    });
    let t0 = Instant::now();
    let q = query("www.example.", RecordType::A, EDNS);
    let ok = vec![a("www.example.", 60, 1)];
    let r = |rcode| answer(&q, rcode, ok.clone(), vec![]);
    assert_eq!(
        c.insert(&q, Transport::Udp, &r(ResponseCode::ServFail), t0),
        Err(Refused::Rcode)
    );
    assert_eq!(
        c.insert(&q, Transport::Udp, &r(ResponseCode::Refused), t0),
        Err(Refused::Rcode)
    );
    let mut tc = r(ResponseCode::NoError);
    tc[2] |= 0x02;
    assert_eq!(
        c.insert(&q, Transport::Udp, &tc, t0),
        Err(Refused::Truncated)
    );
    let zero = answer(
        &q,
        ResponseCode::NoError,
        vec![a("www.example.", 0, 1)],
        vec![],
    );
    assert_eq!(c.insert(&q, Transport::Udp, &zero, t0), Err(Refused::NoTtl));
    let other = query("ftp.example.", RecordType::A, EDNS);
    let theirs = answer(&other, ResponseCode::NoError, ok.clone(), vec![]);
    assert_eq!(
        c.insert(&q, Transport::Udp, &theirs, t0),
        Err(Refused::OtherQuestion)
    );
    // An extended rcode in the OPT (BADVERS is NOERROR in the header).
    let mut badvers = r(ResponseCode::NoError);
    let ext = badvers.len() - 13 - 6; // the OPT's extended-rcode byte, before NSID
    badvers[ext] = 1;
    assert_eq!(
        c.insert(&q, Transport::Udp, &badvers, t0),
        Err(Refused::OddOpt)
    );
    // A signed answer: a TSIG after the OPT makes the OPT not last, so add
    // it to an answer without one.
    let plain = query("www.example.", RecordType::A, PLAIN);
    let mut signed = answer(&plain, ResponseCode::NoError, ok.clone(), vec![]);
    signed[11] = 1;
    signed.extend_from_slice(&[0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        c.insert(&plain, Transport::Udp, &signed, t0),
        Err(Refused::Signed)
    );
    // A negative answer with neg_ttl = 0; one without an SOA.
    let nx = answer(&q, ResponseCode::NXDomain, vec![], vec![soa(300, 60)]);
    assert_eq!(c.insert(&q, Transport::Udp, &nx, t0), Err(Refused::NoTtl));
    let bare = answer(&q, ResponseCode::NXDomain, vec![], vec![]);
    assert_eq!(c.insert(&q, Transport::Udp, &bare, t0), Err(Refused::NoSoa));
    for junk in [&[][..], &r(ResponseCode::NoError)[..20], &q[..]] {
        assert!(c.insert(&q, Transport::Udp, junk, t0).is_err());
    }
    assert_eq!(c.stats().entries, 0);
    assert_eq!(hit(&c, &q, t0).0, Hit::Miss);
}

#[test]
fn negative_answers_live_for_the_soa_negative_ttl_capped_by_neg_ttl() {
    let c = PacketCache::new(&CacheConfig {
        neg_ttl: 100,
        max_ttl: 1000,
        ..CacheConfig::default()
    });
    let t0 = Instant::now();
    let cases = [
        ("a.example.", soa(300, 60), 60, ResponseCode::NXDomain),
        ("b.example.", soa(40, 60), 40, ResponseCode::NXDomain),
        ("c.example.", soa(3000, 3000), 100, ResponseCode::NXDomain),
        ("d.example.", soa(300, 50), 50, ResponseCode::NoError),
    ];
    for (qname, soa, life, rcode) in cases {
        let q = query(qname, RecordType::A, PLAIN);
        c.insert(
            &q,
            Transport::Udp,
            &answer(&q, rcode, vec![], vec![soa]),
            t0,
        )
        .unwrap();
        let before = t0 + Duration::from_secs(life - 1);
        let (h, m) = hit(&c, &q, before);
        assert_eq!(h, Hit::Fresh, "{qname}");
        assert_eq!(m.unwrap().metadata.response_code, rcode);
        let at = t0 + Duration::from_secs(life);
        assert_eq!(hit(&c, &q, at).0, Hit::Miss, "{qname} lives {life} s");
    }
    // Positive answers are capped by max_ttl.
    let q = query("e.example.", RecordType::A, PLAIN);
    let resp = answer(
        &q,
        ResponseCode::NoError,
        vec![a("e.example.", 86400, 1)],
        vec![],
    );
    c.insert(&q, Transport::Udp, &resp, t0).unwrap();
    assert_eq!(hit(&c, &q, t0 + Duration::from_secs(999)).0, Hit::Fresh);
    assert_eq!(hit(&c, &q, t0 + Duration::from_secs(1000)).0, Hit::Miss);
}

#[test]
fn an_answer_too_big_for_the_client_is_truncated_to_its_question() {
    let c = cache(100);
    let t0 = Instant::now();
    let q = query("big.example.", RecordType::TXT, EDNS);
    let txt = |i: usize| {
        Record::from_rdata(
            name("big.example."),
            60,
            RData::TXT(TXT::new(vec![format!("{i:0>200}")])),
        )
    };
    let resp = answer(&q, ResponseCode::NoError, (0..4).map(txt).collect(), vec![]);
    assert!(resp.len() > 800 && resp.len() < 1232);
    c.insert(&q, Transport::Udp, &resp, t0).unwrap();
    // The 1232 client gets it whole; a 512 client (same key) gets TC=1.
    let (_, m) = hit(&c, &q, t0);
    assert_eq!(m.unwrap().answers.len(), 4);
    let small = query(
        "big.example.",
        RecordType::TXT,
        Ask {
            edns: Some((512, false)),
            ..EDNS
        },
    );
    let mut out = Vec::new();
    assert_eq!(c.lookup(&small, Transport::Udp, t0, &mut out), Hit::Fresh);
    assert!(out.len() <= 512);
    let m = Message::from_vec(&out).unwrap();
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty() && m.authorities.is_empty());
    assert_eq!(m.queries.len(), 1);
    assert!(m.edns.is_some(), "the OPT stays with TC=1");
}

#[test]
fn stale_answers_carry_ttl_30_and_an_ede_and_recheck_for_30_s() {
    let c = PacketCache::new(&CacheConfig {
        stale_ttl: 600,
        ..CacheConfig::default()
    });
    let t0 = Instant::now();
    let q = query("www.example.", RecordType::A, EDNS);
    let resp = answer(
        &q,
        ResponseCode::NoError,
        vec![a("www.example.", 60, 1)],
        vec![soa(300, 300)],
    );
    c.insert(&q, Transport::Udp, &resp, t0).unwrap();
    let expired = t0 + Duration::from_secs(61);
    let mut out = Vec::new();
    assert_eq!(
        c.lookup(&q, Transport::Udp, expired, &mut out),
        Hit::Miss,
        "forwarded"
    );
    assert!(out.is_empty());
    assert_eq!(c.stale(&q, Transport::Udp, expired, &mut out), Hit::Stale);
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(ttls(&m), vec![30, 30]);
    assert_eq!(ede(&m), Some(EDE_STALE));
    // The failure-recheck timer: answered stale at once for 30 s.
    let (h, m) = hit(&c, &q, expired + Duration::from_secs(29));
    assert_eq!((h, ede(&m.unwrap())), (Hit::Stale, Some(3)));
    assert_eq!(hit(&c, &q, expired + FAILURE_RECHECK).0, Hit::Miss);
    // Within the window only.
    let last = t0 + Duration::from_secs(60 + 599);
    assert_eq!(c.stale(&q, Transport::Udp, last, &mut out), Hit::Stale);
    let gone = t0 + Duration::from_secs(60 + 600);
    assert_eq!(c.stale(&q, Transport::Udp, gone, &mut out), Hit::Miss);
    // A fresh entry is served as one even after a failure.
    let q2 = query("ftp.example.", RecordType::A, EDNS);
    let resp = answer(
        &q2,
        ResponseCode::NoError,
        vec![a("ftp.example.", 60, 1)],
        vec![],
    );
    c.insert(&q2, Transport::Udp, &resp, t0).unwrap();
    assert_eq!(c.stale(&q2, Transport::Udp, t0, &mut out), Hit::Fresh);
    // A plain client gets the stale answer without an OPT (no EDE).
    let p = query("ftp.example.", RecordType::A, PLAIN);
    let resp = answer(
        &p,
        ResponseCode::NoError,
        vec![a("ftp.example.", 60, 1)],
        vec![],
    );
    c.insert(&p, Transport::Udp, &resp, t0).unwrap();
    assert_eq!(c.stale(&p, Transport::Udp, expired, &mut out), Hit::Stale);
    let m = Message::from_vec(&out).unwrap();
    assert!(m.edns.is_none());
    assert_eq!(ttls(&m), vec![30]);
    let s = c.stats();
    assert_eq!((s.stale, s.inserts, s.entries), (4, 3, 3));
}

#[test]
fn a_stale_nxdomain_carries_ede_19_and_stale_ttl_0_is_never() {
    let t0 = Instant::now();
    let q = query("nope.example.", RecordType::A, EDNS);
    let nx = answer(&q, ResponseCode::NXDomain, vec![], vec![soa(60, 60)]);
    let c = cache(100);
    c.insert(&q, Transport::Udp, &nx, t0).unwrap();
    let mut out = Vec::new();
    let late = t0 + Duration::from_secs(120);
    assert_eq!(c.stale(&q, Transport::Udp, late, &mut out), Hit::Stale);
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ede(&m), Some(EDE_STALE_NXDOMAIN));
    let never = PacketCache::new(&CacheConfig {
        stale_ttl: 0,
        ..CacheConfig::default()
    });
    never.insert(&q, Transport::Udp, &nx, t0).unwrap();
    let just = t0 + Duration::from_secs(60);
    assert_eq!(never.stale(&q, Transport::Udp, just, &mut out), Hit::Miss);
}

/// Inserts a positive answer for `qname` at `now`.
fn put(c: &PacketCache, qname: &str, now: Instant) -> Vec<u8> {
    let q = query(qname, RecordType::A, PLAIN);
    let resp = answer(&q, ResponseCode::NoError, vec![a(qname, 300, 1)], vec![]);
    c.insert(&q, Transport::Udp, &resp, now).unwrap();
    q
}

#[test]
fn clock_evicts_the_entries_not_hit_since_the_hand_last_passed() {
    // 8 entries: 6 positive, 2 negative, one shard.
    let c = cache(8);
    let t0 = Instant::now();
    let qs: Vec<Vec<u8>> = (0..6)
        .map(|i| put(&c, &format!("n{i}.example."), t0))
        .collect();
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
    let qs: Vec<Vec<u8>> = (0..6)
        .map(|i| put(&c, &format!("n{i}.example."), t0))
        .collect();
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
    let c = PacketCache::new(&CacheConfig {
        max_entries: 4, // 3 positive
        stale_ttl: 10,
        ..CacheConfig::default()
    });
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
fn a_hit_writes_into_the_callers_buffer_without_growing_it() {
    let c = cache(100);
    let t0 = Instant::now();
    let q = put(&c, "www.example.", t0);
    let mut out = Vec::with_capacity(1232);
    let before = out.as_ptr();
    for _ in 0..3 {
        assert_eq!(c.lookup(&q, Transport::Udp, t0, &mut out), Hit::Fresh);
        assert_eq!(out.as_ptr(), before, "no reallocation");
    }
    assert_eq!(out.capacity(), 1232);
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
fn bytes_after_the_last_record_are_not_kept() {
    let c = cache(100);
    let t0 = Instant::now();
    let q = query("www.example.", RecordType::A, EDNS);
    let plain = query("www.example.", RecordType::A, PLAIN);
    let mut resp = answer(
        &plain,
        ResponseCode::NoError,
        vec![a("www.example.", 60, 1)],
        vec![],
    );
    resp.extend_from_slice(&[0, 0xff, 0, 0xfb, 0, 0]);
    c.insert(&q, Transport::Udp, &resp, t0).unwrap();
    let (h, m) = hit(&c, &q, t0);
    assert_eq!(h, Hit::Fresh);
    let m = m.unwrap();
    assert_eq!((m.answers.len(), m.additionals.len()), (1, 0));
    assert!(m.edns.is_some());
}
