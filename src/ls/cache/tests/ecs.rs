//! Test-only module: built under #[cfg(test)] (see `cache/mod.rs`).
//! The key's RD, AD and EDNS Client Subnet (RFC 7871) parts, the lifetimes
//! bounded by every record (RFC 6604 CNAMEs, additional TTLs), and the
//! COOKIE (RFC 7873) a hit answers.
use super::*;

/// An ECS option's payload: IPv4, this source prefix and scope, the
/// prefix's bytes of `addr`.
fn ecs_v4(addr: [u8; 4], source: u8, scope: u8) -> Vec<u8> {
    let mut data = vec![0, 1, source, scope];
    data.extend_from_slice(&addr[..usize::from(source).div_ceil(8)]);
    data
}

/// A query for `qname` A with an OPT carrying the ECS option `ecs`.
fn ecs_query(qname: &str, ecs: &[u8]) -> Vec<u8> {
    let mut m = Message::new(0x3333, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name(qname), RecordType::A));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.options_mut().insert(EdnsOption::Unknown(8, ecs.to_vec()));
    m.set_edns(e);
    m.to_vec().unwrap()
}

/// A backend's answer to `q`: one A record `192.0.2.last`, TTL 300, and an
/// OPT carrying the ECS option `ecs` when given.
fn ecs_answer(q: &[u8], last: u8, ecs: Option<&[u8]>) -> Vec<u8> {
    let query = Message::from_vec(q).unwrap();
    let mut m = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    m.add_queries(query.queries.clone());
    m.add_answer(a(&query.queries[0].name().to_ascii(), 300, last));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    if let Some(data) = ecs {
        e.options_mut()
            .insert(EdnsOption::Unknown(8, data.to_vec()));
    }
    m.set_edns(e);
    m.to_vec().unwrap()
}

/// The raw payload of the ECS option of a raw message whose OPT is last
/// and holds that option alone.
fn ecs_of(raw: &[u8]) -> Option<Vec<u8>> {
    let m = Message::from_vec(raw).unwrap();
    let e = m.edns?;
    let _ = e.option(EdnsCode::Subnet)?;
    // The OPT is last: its RDATA is the option, code 8, its length, data.
    let at = raw.windows(2).rposition(|w| w == [0, 8])?;
    let len = usize::from(u16::from_be_bytes([raw[at + 2], raw[at + 3]]));
    (at + 4 + len == raw.len()).then(|| raw[at + 4..].to_vec())
}

fn raw_hit(c: &PacketCache, q: &[u8], now: Instant) -> (Hit, Vec<u8>) {
    let mut out = Vec::new();
    let h = c.lookup(q, Transport::Udp, now, &mut out);
    (h, out)
}

#[test]
fn an_ecs_answer_is_found_by_its_subnet_alone_and_carries_its_scope() {
    let c = cache(100);
    let t0 = Instant::now();
    let sub1 = ecs_v4([1, 2, 3, 0], 24, 0);
    let q1 = ecs_query("geo.example.", &sub1);
    let a1 = ecs_answer(&q1, 1, Some(&ecs_v4([1, 2, 3, 0], 24, 24)));
    c.insert(&q1, Transport::Udp, &a1, t0).unwrap();
    // The same subnet: a hit, scope echoed.
    let (h, out) = raw_hit(&c, &q1, t0);
    assert_eq!(h, Hit::Fresh);
    assert_eq!(a_last(&out), 1);
    assert_eq!(
        ecs_of(&out),
        Some(ecs_v4([1, 2, 3, 0], 24, 24)),
        "scope kept"
    );
    // Another subnet, another prefix, no ECS at all: misses.
    let q2 = ecs_query("geo.example.", &ecs_v4([5, 6, 7, 0], 24, 0));
    assert_eq!(raw_hit(&c, &q2, t0).0, Hit::Miss, "another /24");
    let q3 = ecs_query("geo.example.", &ecs_v4([1, 2, 0, 0], 16, 0));
    assert_eq!(raw_hit(&c, &q3, t0).0, Hit::Miss, "another prefix");
    let plain = query("geo.example.", RecordType::A, EDNS);
    assert_eq!(raw_hit(&c, &plain, t0).0, Hit::Miss, "no ECS");
    // Each kept apart.
    let a2 = ecs_answer(&q2, 2, Some(&ecs_v4([5, 6, 7, 0], 24, 24)));
    c.insert(&q2, Transport::Udp, &a2, t0).unwrap();
    let p = ecs_answer(&plain, 9, None);
    c.insert(&plain, Transport::Udp, &p, t0).unwrap();
    assert_eq!(a_last(&raw_hit(&c, &q1, t0).1), 1);
    assert_eq!(a_last(&raw_hit(&c, &q2, t0).1), 2);
    let (h, out) = raw_hit(&c, &plain, t0);
    assert_eq!((h, a_last(&out)), (Hit::Fresh, 9));
    assert_eq!(ecs_of(&out), None, "no ECS for a client without one");
    // A backend that ignores ECS: kept per subnet all the same, no option.
    let q4 = ecs_query("flat.example.", &ecs_v4([1, 2, 3, 0], 24, 0));
    c.insert(&q4, Transport::Udp, &ecs_answer(&q4, 4, None), t0)
        .unwrap();
    let (h, out) = raw_hit(&c, &q4, t0);
    assert_eq!((h, ecs_of(&out)), (Hit::Fresh, None));
}

#[test]
fn ecs_answers_that_name_no_subnet_of_their_query_are_not_kept() {
    let c = cache(100);
    let t0 = Instant::now();
    // A scope to a query without ECS: no subnet to keep it under.
    let plain = query("geo.example.", RecordType::A, EDNS);
    let scoped = ecs_answer(&plain, 1, Some(&ecs_v4([1, 2, 3, 0], 24, 24)));
    assert_eq!(
        c.insert(&plain, Transport::Udp, &scoped, t0),
        Err(Refused::Ecs)
    );
    // Scope 0 is global: kept.
    let global = ecs_answer(&plain, 1, Some(&ecs_v4([1, 2, 3, 0], 24, 0)));
    c.insert(&plain, Transport::Udp, &global, t0).unwrap();
    // Another subnet than asked.
    let q = ecs_query("geo.example.", &ecs_v4([1, 2, 3, 0], 24, 0));
    let other = ecs_answer(&q, 1, Some(&ecs_v4([9, 9, 9, 0], 24, 24)));
    assert_eq!(c.insert(&q, Transport::Udp, &other, t0), Err(Refused::Ecs));
    // A malformed ECS option (a bit past the prefix, a scope in a query, a
    // family unknown): the query has no key.
    for bad in [
        vec![0, 1, 24, 0, 1, 2, 3, 1],
        vec![0, 1, 23, 0, 1, 2, 3],
        ecs_v4([1, 2, 3, 0], 24, 24),
        vec![0, 3, 0, 0],
        vec![0, 1, 33, 0, 1, 2, 3, 4, 5],
    ] {
        assert!(
            c.key(&ecs_query("geo.example.", &bad), Transport::Udp)
                .is_none(),
            "{bad:?}"
        );
    }
    // Source 0 (the client asks that no address be used): its own key.
    let zero = ecs_query("geo.example.", &[0, 1, 0, 0]);
    assert!(c.key(&zero, Transport::Udp).is_some());
}

#[test]
fn rd_and_ad_are_in_the_key() {
    let c = cache(100);
    let t0 = Instant::now();
    let q = put(&c, "www.example.", t0);
    let norec = query("www.example.", RecordType::A, Ask { rd: false, ..PLAIN });
    assert_eq!(
        hit(&c, &norec, t0).0,
        Hit::Miss,
        "RD=0 is not an RD=1 entry"
    );
    let mut ad = q.clone();
    ad[3] |= 0x20;
    assert_eq!(hit(&c, &ad, t0).0, Hit::Miss, "AD=1 apart");
    assert_eq!(hit(&c, &q, t0).0, Hit::Fresh);
}

#[test]
fn an_nxdomain_with_a_cname_lives_no_longer_than_the_cname() {
    let c = cache(100);
    let t0 = Instant::now();
    let q = query("alias.example.", RecordType::A, PLAIN);
    let cname = Record::from_rdata(
        name("alias.example."),
        5,
        RData::CNAME(hickory_proto::rr::rdata::CNAME(name("nothere.example."))),
    );
    let nx = answer(&q, ResponseCode::NXDomain, vec![cname], vec![soa(300, 60)]);
    c.insert(&q, Transport::Udp, &nx, t0).unwrap();
    assert_eq!(hit(&c, &q, t0 + Duration::from_secs(4)).0, Hit::Fresh);
    assert_eq!(
        hit(&c, &q, t0 + Duration::from_secs(5)).0,
        Hit::Miss,
        "the CNAME's 5 s, not the SOA's 60"
    );
}

#[test]
fn additional_ttls_bound_a_positive_answer() {
    let c = cache(100);
    let t0 = Instant::now();
    let q = query("mx.example.", RecordType::MX, PLAIN);
    let mx = Record::from_rdata(
        name("mx.example."),
        3600,
        RData::MX(hickory_proto::rr::rdata::MX::new(10, name("mail.example."))),
    );
    let query_msg = Message::from_vec(&q).unwrap();
    let mut m = Message::new(0x1111, MessageType::Response, OpCode::Query);
    m.add_queries(query_msg.queries.clone());
    m.add_answer(mx);
    m.add_additional(a("mail.example.", 3, 25));
    let resp = m.to_vec().unwrap();
    c.insert(&q, Transport::Udp, &resp, t0).unwrap();
    assert_eq!(hit(&c, &q, t0 + Duration::from_secs(2)).0, Hit::Fresh);
    assert_eq!(
        hit(&c, &q, t0 + Duration::from_secs(3)).0,
        Hit::Miss,
        "the additional A's 3 s, not the MX's hour"
    );
}

/// The last byte of the first A record of a raw answer.
fn a_last(raw: &[u8]) -> u8 {
    let m = Message::from_vec(raw).unwrap();
    match m.answers[0].data {
        RData::A(a) => a.0.octets()[3],
        ref other => panic!("not an A: {other:?}"),
    }
}

/// A query for `qname` A with an OPT carrying the COOKIE `cookie`.
fn cookie_query(qname: &str, cookie: &[u8]) -> Vec<u8> {
    let mut m = Message::new(0x4444, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name(qname), RecordType::A));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.options_mut()
        .insert(EdnsOption::Unknown(10, cookie.to_vec()));
    m.set_edns(e);
    m.to_vec().unwrap()
}

/// The raw COOKIE option payload of a raw message whose OPT is last and
/// ends with that option.
fn cookie_of(raw: &[u8]) -> Option<Vec<u8>> {
    let m = Message::from_vec(raw).unwrap_or_else(|e| panic!("{e}: {raw:?}"));
    m.edns.as_ref()?.option(EdnsCode::Cookie)?;
    for len in [8usize, 16, 24, 40] {
        let at = raw.len().checked_sub(len + 4)?;
        if raw[at..at + 2] == [0, 10]
            && usize::from(u16::from_be_bytes([raw[at + 2], raw[at + 3]])) == len
        {
            return Some(raw[at + 4..].to_vec());
        }
    }
    None
}

#[test]
fn a_hit_answers_a_client_s_cookie() {
    let c = cache(100);
    let t0 = Instant::now();
    let (client1, client2) = ([1u8; 8], [2u8; 8]);
    let server = [9u8; 16];
    let q1 = cookie_query("www.example.", &client1);
    // The backend's answer carries client1's cookie and its server cookie.
    let asked = Message::from_vec(&q1).unwrap();
    let mut m = Message::new(asked.metadata.id, MessageType::Response, OpCode::Query);
    m.add_queries(asked.queries.clone());
    m.add_answer(a("www.example.", 300, 1));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.options_mut().insert(EdnsOption::Unknown(
        10,
        [client1.as_slice(), &server].concat(),
    ));
    m.set_edns(e);
    c.insert(&q1, Transport::Udp, &m.to_vec().unwrap(), t0)
        .unwrap();
    // A client cookie alone: none (nothing of client1's is replayed).
    let (h, out) = raw_hit(&c, &cookie_query("www.example.", &client2), t0);
    assert_eq!((h, cookie_of(&out)), (Hit::Fresh, None));
    // With a server cookie: echoed as sent (the one the client holds).
    let held = [client2.as_slice(), &[7u8; 16]].concat();
    let (h, out) = raw_hit(&c, &cookie_query("www.example.", &held), t0);
    assert_eq!((h, cookie_of(&out)), (Hit::Fresh, Some(held)));
    // No cookie sent, none answered; the same entry each time.
    let plain = query("www.example.", RecordType::A, Ask { rd: false, ..EDNS });
    let (h, out) = raw_hit(&c, &plain, t0);
    assert_eq!((h, cookie_of(&out)), (Hit::Fresh, None));
    assert_eq!(c.stats().entries, 1);
}
