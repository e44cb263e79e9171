//! Cache invalidation: a NOTIFY flood from a backend's address does not wedge
//! the cache, and a flush of a name written with a decimal escape removes it.
//!
//! Each case is held against dnsdist 1.7's packet cache on the same input.
use std::time::{Duration, Instant};

use dnslb::dns::Transport;

use crate::kit::*;

/// The wire form of `name` (dotted, no final dot).
fn wire_name(name: &str) -> Vec<u8> {
    let mut w = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        w.push(u8::try_from(label.len()).unwrap());
        w.extend_from_slice(label.as_bytes());
    }
    w.push(0);
    w
}

/// A plain query for `name` A IN with this ID, no OPT.
fn raw_query(name: &str, id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend(wire_name(name));
    q.extend_from_slice(&[0, 1, 0, 1]);
    q
}

/// A backend's answer to `q` (a [`raw_query`]): AA, one A record 192.0.2.1
/// of TTL 3600 owned by the question's name.
fn raw_answer(q: &[u8]) -> Vec<u8> {
    // Header and question only (the upstream query may carry an OPT).
    let mut end = 12;
    while q[end] != 0 {
        end += 1 + usize::from(q[end]);
    }
    let mut a = q[..end + 5].to_vec();
    a[2] = 0x84 | (q[2] & 0x01);
    a[3] = 0;
    a[7] = 1; // ANCOUNT
    a[11] = 0; // ARCOUNT
    a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    a.extend_from_slice(&3600u32.to_be_bytes());
    a.extend_from_slice(&[0, 4, 192, 0, 2, 1]);
    a
}

/// A NOTIFY (opcode 4, AA) for `zone` SOA IN.
fn raw_notify(zone: &str, id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x24, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend(wire_name(zone));
    q.extend_from_slice(&[0, 6, 0, 1]);
    q
}

/// A NOTIFY flood from a backend's address (here 127.0.0.1, which every
/// local client shares) must not stop the LS answering: each accepted
/// NOTIFY walks the whole cache on the worker that read it (12 ms for
/// 150,000 entries in the release build), so 10 s of NOTIFYs for a zone
/// with no cached name left the release binary answering 17 queries a
/// second instead of 75,000, and one worker silent for about 4 minutes
/// after the flood ended (its socket's 3 MB queue of NOTIFYs drained at 30
/// a second). dnsdist has no NOTIFY-driven flush: a NOTIFY is forwarded
/// like any query and costs what a query costs.
#[tokio::test]
async fn a_notify_flood_from_a_backends_address_does_not_wedge_the_cache() {
    let _load = heavy().await;
    let backend = Fake::udp(|q, _| Reply::Now(raw_answer(q))).await;
    let mut cfg = ls_config(&[("b1", backend.addr)]);
    cfg.cache = Some(dnslb::config::CacheConfig {
        max_entries: 200_000,
        ..Default::default()
    });
    let ls = start_ls(cfg).await;
    let cache = ls.balancer.state().cache.clone().unwrap();
    let now = Instant::now();
    for i in 0..100_000u32 {
        let q = raw_query(&format!("h{i}.example.net"), 1);
        cache
            .insert(&q, Transport::Udp, &raw_answer(&q), now)
            .unwrap();
    }
    let hit = udp_raw(ls.addr, &raw_query("h1.example.net", 7)).await;
    assert!(hit.is_some(), "a cached name is answered before the flood");
    // 2,000 NOTIFYs for a zone with nothing cached, from the backend's IP.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for id in 0..2_000u16 {
        let _ = sock.send_to(&raw_notify("example.org", id), ls.addr);
    }
    // Cached names asked from 16 source ports (so both workers are asked)
    // are answered at once, not after the NOTIFYs are worked off.
    let mut unanswered = 0;
    for i in 0..16u16 {
        let q = raw_query(&format!("h{i}.example.net"), 100 + i);
        if udp_raw_wait(ls.addr, &q, Duration::from_secs(2))
            .await
            .is_none()
        {
            unanswered += 1;
        }
    }
    assert_eq!(unanswered, 0, "cached names unanswered after the flood");
    ls.stop().await;
}

/// `POST /cache/flush?name=a\065b.example.com` is the name `aAb.example.com`
/// (RFC 1035 §5.1: `\DDD` is a decimal byte value), as dig, kdig and
/// dnsdist's `DNSName` read it. The name parser read the three digits as
/// octal: the flush removed `a5b.example.com` (nothing), answered 200 with
/// `removed: 0`, and the answer it was asked to remove stayed cached. The
/// same parser reads the zones of `[[ls.pool]]` (a pool for `x\046y.example`,
/// meant as `x\.y.example`, was refused as `x&y`).
#[tokio::test]
async fn a_flush_of_a_name_written_with_a_decimal_escape_removes_that_name() {
    let backend = Fake::udp(|q, _| Reply::Now(raw_answer(q))).await;
    let mut cfg = ls_config(&[("b1", backend.addr)]);
    cfg.cache = Some(dnslb::config::CacheConfig::default());
    let ls = start_ls(cfg).await;
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;
    assert!(
        udp_raw(ls.addr, &raw_query("aAb.example.com", 3))
            .await
            .is_some()
    );
    let r = http_request_with(
        metrics.addr,
        "POST",
        "/cache/flush?name=a%5C065b.example.com",
        &[("X-Dnslb-Flush", "1")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"removed\":1"), "{}", r.body);
    assert!(r.body.contains("aAb.example.com."), "{}", r.body);
    metrics.stop().await;
    ls.stop().await;
}
