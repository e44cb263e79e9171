//! Test-only module: built under #[cfg(test)] (see `cache/mod.rs`).
//! What the cache keeps and for how long: keys, the insert rules, lifetimes.
use super::*;

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
    // The same ID does not matter.
    let other_id = query("www.example.", RecordType::A, Ask { id: 9, ..PLAIN });
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
    let axfr = query("example.", RecordType::AXFR, PLAIN);
    let mut pointer = q[..12].to_vec();
    pointer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    for (what, bad) in [
        ("a response", &response),
        ("a NOTIFY", &notify),
        ("two questions", &two),
        ("EDNS version 1", &v1),
        ("a compressed name", &pointer),
        ("a zone transfer", &axfr),
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
fn what_is_not_kept() {
    let c = cache_where(|c| c.neg_ttl = 0);
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
    // A name pointing into the header (which a hit rewrites).
    let mut into_header = answer(&plain, ResponseCode::NoError, ok.clone(), vec![]);
    assert_eq!(
        into_header[29..31],
        [0xc0, 12],
        "the owner points at the question"
    );
    into_header[30] = 11;
    let refused = c.insert(&plain, Transport::Udp, &into_header, t0);
    assert_eq!(refused, Err(Refused::HeaderPointer));
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
    let c = cache_where(|c| (c.neg_ttl, c.max_ttl) = (100, 1000));
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
    let q = put_as(&c, "e.example.", PLAIN, 86400, t0);
    assert_eq!(hit(&c, &q, t0 + Duration::from_secs(999)).0, Hit::Fresh);
    assert_eq!(hit(&c, &q, t0 + Duration::from_secs(1000)).0, Hit::Miss);
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

#[test]
fn an_answer_past_max_entry_bytes_is_not_kept() {
    let c = cache(100);
    let t0 = Instant::now();
    let q = query("www.example.", RecordType::A, EDNS);
    // Past MAX_ENTRY bytes (here over TCP, where an answer may be 64 KiB).
    let many: Vec<Record> = (0..300).map(|i| a("www.example.", 60, i as u8)).collect();
    let big = answer(&q, ResponseCode::NoError, many, vec![]);
    assert!(big.len() > stored::MAX_ENTRY);
    assert_eq!(
        c.insert(&q, Transport::Tcp, &big, t0),
        Err(Refused::TooLarge)
    );
    let fits: Vec<Record> = (0..100).map(|i| a("www.example.", 60, i as u8)).collect();
    let fits = answer(&q, ResponseCode::NoError, fits, vec![]);
    assert!(fits.len() <= stored::MAX_ENTRY);
    assert_eq!(c.insert(&q, Transport::Tcp, &fits, t0), Ok(()));
    assert_eq!(c.stats().entries, 1);
}

#[test]
fn a_key_read_into_one_that_held_a_longer_name_is_the_key_read_afresh() {
    let c = cache(100);
    let long = query(
        "a-much-longer-name.www.example.org.",
        RecordType::AAAA,
        EDNS,
    );
    let short = query("WWW.example.", RecordType::A, PLAIN);
    let mut key = crate::ls::cache::CacheKey::empty();
    assert!(crate::ls::cache::key::read_into(&long, Transport::Tcp, &c.hasher, &mut key).is_some());
    let client = crate::ls::cache::key::read_into(&short, Transport::Udp, &c.hasher, &mut key);
    let (fresh, fresh_client) = c.key(&short, Transport::Udp).unwrap();
    assert_eq!(client, Some(fresh_client));
    assert_eq!(key.hash, fresh.hash);
    assert_eq!(key.to_stored(), fresh.to_stored());
    assert!(key.same(&fresh.to_stored()));
}
