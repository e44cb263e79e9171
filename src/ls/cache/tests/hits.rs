//! Test-only module: built under #[cfg(test)] (see `cache/mod.rs`).
//! What a hit looks like to its client: ID, case, TTLs, OPT, truncation, stale.
use super::*;

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
            ..PLAIN
        },
    );
    let (h, m) = hit(&c, &q2, t0 + Duration::from_millis(3900));
    let m = m.unwrap();
    assert_eq!(h, Hit::Fresh);
    assert_eq!(m.metadata.id, 0xbeef);
    assert!(
        m.metadata.recursion_desired,
        "RD as asked (it is in the key)"
    );
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
    let c = cache_where(|c| c.stale_ttl = 600);
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
    // The failure-recheck timer: answered stale at once for 30 s while no
    // backend is up; while one is, forwarded (a lost refresh is retried).
    let (h, m) = hit(&c, &q, expired + Duration::from_secs(29));
    assert_eq!((h, ede(&m.unwrap())), (Hit::Stale, Some(3)));
    // While a backend is up: the first query after the failure forwarded,
    // then one a second, the others stale at once.
    let up = |at: Duration| {
        c.serve(
            &q,
            Transport::Udp,
            expired + at,
            Want::Fresh,
            &mut Vec::new(),
        )
    };
    assert_eq!(up(Duration::from_secs(20)), Hit::Miss, "forwarded");
    assert_eq!(up(Duration::from_millis(20_500)), Hit::Stale);
    assert_eq!(up(Duration::from_secs(21)), Hit::Miss, "a second later");
    assert_eq!(up(Duration::from_millis(21_001)), Hit::Stale);
    assert_eq!(hit(&c, &q, expired + FAILURE_RECHECK).0, Hit::Miss);
    // Within the window only.
    let last = t0 + Duration::from_secs(60 + 599);
    assert_eq!(c.stale(&q, Transport::Udp, last, &mut out), Hit::Stale);
    let gone = t0 + Duration::from_secs(60 + 600);
    assert_eq!(c.stale(&q, Transport::Udp, gone, &mut out), Hit::Miss);
    // A fresh entry is served as one even after a failure.
    let q2 = put_as(&c, "ftp.example.", EDNS, 60, t0);
    assert_eq!(c.stale(&q2, Transport::Udp, t0, &mut out), Hit::Fresh);
    // A plain client gets the stale answer without an OPT (no EDE).
    let p = put_as(&c, "ftp.example.", PLAIN, 60, t0);
    assert_eq!(c.stale(&p, Transport::Udp, expired, &mut out), Hit::Stale);
    let m = Message::from_vec(&out).unwrap();
    assert!(m.edns.is_none());
    assert_eq!(ttls(&m), vec![30]);
    let s = c.stats();
    assert_eq!((s.stale, s.inserts, s.entries), (6, 3, 3));
    assert_eq!(s.misses, 4, "the first lookup, two while up, at 30 s");
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
    let never = cache_where(|c| c.stale_ttl = 0);
    never.insert(&q, Transport::Udp, &nx, t0).unwrap();
    let just = t0 + Duration::from_secs(60);
    assert_eq!(never.stale(&q, Transport::Udp, just, &mut out), Hit::Miss);
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
fn a_tcp_client_is_served_a_udp_clients_entry_never_the_reverse() {
    let c = cache(100);
    let t0 = Instant::now();
    let q = put_as(&c, "www.example.", EDNS, 60, t0);
    let mut out = Vec::new();
    assert_eq!(c.lookup(&q, Transport::Tcp, t0, &mut out), Hit::Fresh);
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.answers.len(), 1);
    // Kept for TCP only: a UDP client does not find it.
    let q2 = put_over(&c, "ftp.example.", (EDNS, Transport::Tcp), 60, t0);
    assert_eq!(c.lookup(&q2, Transport::Udp, t0, &mut out), Hit::Miss);
    assert_eq!(c.lookup(&q2, Transport::Tcp, t0, &mut out), Hit::Fresh);
    let s = c.stats();
    assert_eq!(
        (s.hits, s.misses),
        (2, 1),
        "a TCP miss then UDP hit is a hit"
    );
}

/// A name longer than an entry holds in place, and more records than it
/// keeps TTL offsets for in place, are kept and served whole: every TTL
/// aged; a name that differs only past the bytes held in place is a miss.
#[test]
fn a_long_name_and_many_records_are_kept_and_served_whole() {
    let c = cache(100);
    let t0 = Instant::now();
    let long = format!("{}.{}.example.", "a".repeat(60), "b".repeat(60));
    let q = query(&long, RecordType::A, PLAIN);
    let records: Vec<_> = (0..12u8).map(|i| a(&long, 100 + u32::from(i), i)).collect();
    let resp = answer(&q, ResponseCode::NoError, records, vec![]);
    c.insert(&q, Transport::Udp, &resp, t0).unwrap();
    let (h, m) = hit(&c, &q, t0 + Duration::from_secs(2));
    let m = m.unwrap();
    assert_eq!(h, Hit::Fresh);
    assert_eq!(m.queries[0].name().to_ascii(), long);
    let want: Vec<u32> = (0..12).map(|i| 98 + i).collect();
    assert_eq!(ttls(&m), want, "every record's TTL aged");
    let other = format!("{}.{}.example.", "a".repeat(60), "c".repeat(60));
    let q2 = query(&other, RecordType::A, PLAIN);
    assert_eq!(hit(&c, &q2, t0).0, Hit::Miss);
}
