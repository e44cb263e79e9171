//! Test-only module: built under #[cfg(test)] (see `cache/mod.rs`).
//! What keeps old data out: the flush generation (an answer from before a
//! flush is not kept after it) and a newer answer that cannot be kept
//! retiring the older entry (neither fresh nor stale again).
use super::*;

#[test]
fn an_answer_to_a_query_sent_before_a_flush_is_not_kept_after_it() {
    let c = cache(100);
    let t0 = Instant::now();
    let q = query("www.example.", RecordType::A, PLAIN);
    let old = answer(
        &q,
        ResponseCode::NoError,
        vec![a("www.example.", 300, 1)],
        vec![],
    );
    let sent = c.generation();
    // The flush runs while the query is upstream (it finds nothing).
    assert_eq!(c.flush(&name("example."), true), 0);
    assert_eq!(
        c.insert_since(&q, Transport::Udp, &old, t0, sent),
        Err(Refused::Flushed)
    );
    assert_eq!(hit(&c, &q, t0).0, Hit::Miss, "not kept");
    // A flush of another name or zone does not hold it back (else a NOTIFY
    // for any zone would keep every answer in flight out of the cache; at
    // 8 NOTIFYs a second nothing would be cached).
    let sent = c.generation();
    c.flush(&name("other.test."), false);
    c.flush_zones(&[name("test."), name("example.org.")]);
    c.insert_since(&q, Transport::Udp, &old, t0, sent).unwrap();
    assert_eq!(hit(&c, &q, t0).0, Hit::Fresh);
    // Among others, one that covers it does.
    let sent = c.generation();
    c.flush(&name("other.test."), false);
    c.flush_zones(&[name("test."), name("example.")]);
    c.flush(&name("more.test."), false);
    assert_eq!(
        c.insert_since(&q, Transport::Udp, &old, t0, sent),
        Err(Refused::Flushed)
    );
    // So does one of the name itself; and more flushes since than are
    // remembered hold back any answer.
    let sent = c.generation();
    c.flush(&name("www.example."), false);
    assert!(c.insert_since(&q, Transport::Udp, &old, t0, sent).is_err());
    let sent = c.generation();
    for _ in 0..=FLUSHES_KEPT {
        c.flush(&name("other.test."), false);
    }
    assert!(c.insert_since(&q, Transport::Udp, &old, t0, sent).is_err());
    // A query sent after the flush is kept.
    let sent = c.generation();
    c.insert_since(&q, Transport::Udp, &old, t0, sent).unwrap();
    assert_eq!(hit(&c, &q, t0).0, Hit::Fresh);
}

#[test]
fn a_newer_answer_that_cannot_be_kept_retires_the_older_one() {
    let c = cache_where(|c| c.stale_ttl = 86400);
    let t0 = Instant::now();
    for newer in [
        // TTL 0, a negative without SOA, a signed answer.
        "ttl0", "nosoa", "tcp-ttl0",
    ] {
        let q = put_as(&c, "s6.example.", EDNS, 3, t0);
        let later = t0 + Duration::from_secs(4);
        let (t, resp) = match newer {
            "ttl0" | "tcp-ttl0" => (
                if newer == "ttl0" {
                    Transport::Udp
                } else {
                    Transport::Tcp
                },
                answer(
                    &q,
                    ResponseCode::NoError,
                    vec![a("s6.example.", 0, 200)],
                    vec![],
                ),
            ),
            _ => (
                Transport::Udp,
                answer(&q, ResponseCode::NXDomain, vec![], vec![]),
            ),
        };
        assert!(c.insert(&q, t, &resp, later).unwrap_err().supersedes());
        let mut out = Vec::new();
        assert_eq!(
            c.stale(&q, Transport::Udp, later, &mut out),
            Hit::Miss,
            "{newer}: the old data is not served stale"
        );
        assert_eq!(c.stats().entries, 0, "{newer}");
    }
}

#[test]
fn a_failure_does_not_retire_the_entry_and_a_refresh_ends_the_recheck() {
    let c = cache_where(|c| c.stale_ttl = 86400);
    let t0 = Instant::now();
    let q = put_as(&c, "s1.example.", EDNS, 3, t0);
    let later = t0 + Duration::from_secs(4);
    // SERVFAIL and TC=1 say nothing of the data: the entry stays for stale.
    let sf = answer(&q, ResponseCode::ServFail, vec![], vec![]);
    assert_eq!(
        c.insert(&q, Transport::Udp, &sf, later),
        Err(Refused::Rcode)
    );
    let mut out = Vec::new();
    assert_eq!(c.stale(&q, Transport::Udp, later, &mut out), Hit::Stale);
    // In the failure-recheck window, with a backend up, a forwarded query
    // answered with data that cannot be kept: no more stale answers.
    let up = |at: Instant| c.serve(&q, Transport::Udp, at, Want::Fresh, &mut Vec::new());
    let t1 = later + Duration::from_secs(1);
    assert_eq!(up(t1), Hit::Miss, "forwarded");
    let ttl0 = answer(
        &q,
        ResponseCode::NoError,
        vec![a("s1.example.", 0, 200)],
        vec![],
    );
    assert!(c.insert(&q, Transport::Udp, &ttl0, t1).is_err());
    for ms in [100, 500, 1500, 2500] {
        assert_eq!(
            up(t1 + Duration::from_millis(ms)),
            Hit::Miss,
            "every query forwarded while the backend answers"
        );
    }
}
