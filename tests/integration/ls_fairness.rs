//! One client cannot starve the others at `max_inflight`: a client flooding names its backend never answers
//! (as `on_miss = "silent"` table servers do) holds at most its share of
//! the in-flight bound, and another client's queries for names that exist
//! are answered, not SERVFAIL.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

use crate::kit::{Fake, Reply, ls_config, poll_until_async, query, start_ls, wire_answer};

/// The LS's in-flight bound (one worker).
const MAX_INFLIGHT: usize = 64;
/// The victim's queries, one at a time.
const VICTIM_QUERIES: u16 = 100;

/// `name A` as wire bytes, with ID `id`.
fn wire(name: &str, id: u16) -> Vec<u8> {
    let mut m = query(name, RecordType::A, None);
    m.metadata.id = id;
    m.to_vec().unwrap()
}

/// A backend silent for names starting with `prefix` (nobody holds them),
/// answering the rest at once.
async fn silent_for(prefix: &'static str) -> Fake {
    Fake::udp(move |q, _| {
        let name = Message::from_vec(q).ok().and_then(|m| {
            let first = m.queries.first()?;
            Some(first.name().to_ascii())
        });
        match name {
            Some(name) if !name.starts_with(prefix) => Reply::Now(wire_answer(q, 0)),
            _ => Reply::Drop,
        }
    })
    .await
}

/// Client A on 127.0.0.2 floods names the backend never answers (a batch
/// of 50 every 10 ms) while client B on 127.0.0.3 asks 100 existing names
/// one after another: every one of B's gets its NOERROR answer. Before the
/// per-client share, A's queries held every place until their deadline
/// and most of B's got SERVFAIL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_flooding_unanswered_names_does_not_starve_another() {
    let _load = crate::kit::heavy().await;
    let started = Instant::now();
    // Silent for `x…` names (nobody holds them), answers the rest at once.
    let backend = silent_for("x").await;
    let mut cfg = ls_config(&[("silent-on-miss", backend.addr)]);
    cfg.workers = 1;
    cfg.max_inflight = MAX_INFLIGHT;
    cfg.timeout_ms = 1500;
    let ls = start_ls(cfg).await;
    let addr = ls.addr;

    // A: floods until told to stop, its answers (SERVFAIL) read and counted.
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let flood = {
        let (stop, refused) = (stop.clone(), refused.clone());
        tokio::spawn(async move {
            let sock = UdpSocket::bind("127.0.0.2:0").await.unwrap();
            let mut buf = vec![0u8; 4096];
            let (mut sent, mut servfail) = (0u32, 0u32);
            while !stop.load(Relaxed) {
                for _ in 0..50 {
                    let name = format!("x{sent}.nosuch.test");
                    sock.send_to(&wire(&name, sent as u16), addr).await.unwrap();
                    sent += 1;
                }
                let pause = tokio::time::sleep(Duration::from_millis(10));
                tokio::pin!(pause);
                loop {
                    tokio::select! {
                        () = &mut pause => break,
                        r = sock.recv_from(&mut buf) => {
                            if let Ok((n, _)) = r
                                && n >= 4
                                && buf[3] & 0x0f == 2
                            {
                                servfail += 1;
                                refused.store(servfail, Relaxed);
                            }
                        }
                    }
                }
            }
            (sent, servfail)
        })
    };
    // The flood has filled its share: the bound is contended.
    let m = ls.balancer.metrics();
    poll_until_async(
        Duration::from_secs(5),
        Duration::from_millis(10),
        || async { (m.shed_inflight.load(Relaxed) > 0).then_some(()) },
    )
    .await
    .expect("the flood reaches the in-flight bound");

    // B: existing names, one at a time.
    let victim = UdpSocket::bind("127.0.0.3:0").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (mut noerror, mut servfail, mut lost) = (0, 0, 0);
    for id in 0..VICTIM_QUERIES {
        let q = wire(&format!("www{id}.a.test"), id);
        victim.send_to(&q, addr).await.unwrap();
        let got = loop {
            match tokio::time::timeout(Duration::from_secs(3), victim.recv_from(&mut buf)).await {
                Ok(Ok((n, _))) => {
                    let m = Message::from_vec(&buf[..n]).unwrap();
                    if m.metadata.id == id {
                        break Some(m.metadata.response_code);
                    }
                }
                _ => break None,
            }
        };
        match got {
            Some(ResponseCode::NoError) => noerror += 1,
            Some(ResponseCode::ServFail) => servfail += 1,
            Some(other) => panic!("query {id}: {other:?}"),
            None => lost += 1,
        }
    }
    // The victim may be done before the flood has been held long (a fast
    // machine asks its 100 names in ~40 ms): the flood goes on until past
    // its share it has had 100 SERVFAILs, or 10 s.
    let _ = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(10),
        || async {
            (m.shed_inflight.load(Relaxed) > 100 && refused.load(Relaxed) > 100).then_some(())
        },
    )
    .await;
    stop.store(true, Relaxed);
    let (a_sent, a_servfail) = flood.await.unwrap();
    let shed = m.shed_inflight.load(Relaxed);
    eprintln!(
        "max_inflight {MAX_INFLIGHT}: flood sent {a_sent}, {a_servfail} SERVFAIL seen, \
         {shed} shed; victim: {noerror} NOERROR, {servfail} SERVFAIL, {lost} lost; {:.1?}",
        started.elapsed()
    );
    assert_eq!(
        (servfail, lost),
        (0, 0),
        "the victim's existing names are answered, never starved"
    );
    assert_eq!(noerror, usize::from(VICTIM_QUERIES));
    assert!(
        shed > 100 && a_servfail > 100,
        "the flood was held at its share (SERVFAIL past it)"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "bounded run");
    ls.stop().await;
}

/// Hostile read of the fixes (M1): the same over TCP. Client A on
/// 127.0.0.2 opens 4 connections and pipelines 16 queries on each for
/// names the backend never answers; client B on 127.0.0.3 then asks an
/// existing name over TCP: answered, not SERVFAIL. Before, fairness held
/// for UDP only, and A's 64 queries took every one of the 32 places.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pipelining_on_many_connections_does_not_starve_another() {
    use crate::kit::{tcp_recv, tcp_send};
    let backend = silent_for("flood").await;
    let mut cfg = ls_config(&[("b", backend.addr)]);
    cfg.max_inflight = 32;
    cfg.hedge_budget_pct = 0.0;
    let ls = start_ls(cfg).await;
    let connect_from = |src: [u8; 4]| async move {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind((std::net::Ipv4Addr::from(src), 0).into()).unwrap();
        s.connect(ls.addr).await.unwrap()
    };
    let mut flood = Vec::new();
    for c in 0..4u16 {
        let mut s = connect_from([127, 0, 0, 2]).await;
        for i in 0..16u16 {
            tcp_send(&mut s, &wire(&format!("flood{c}-{i}.example."), c * 16 + i)).await;
        }
        flood.push(s);
    }
    // The flood's queries are all read and in flight (or refused) before B asks.
    let shed = || ls.balancer.metrics().shed_inflight.load(Relaxed);
    let held = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(10),
        async || (ls.balancer.metrics().queries.load(Relaxed) >= 64).then_some(()),
    )
    .await;
    assert!(held.is_some(), "the flood's 64 queries read");
    let mut b = connect_from([127, 0, 0, 3]).await;
    tcp_send(&mut b, &wire("www.example.", 7)).await;
    let raw = tcp_recv(&mut b).await.expect("an answer for B");
    let m = Message::from_vec(&raw).unwrap();
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "B starved: {m:?}"
    );
    assert!(
        shed() >= 64 - 28,
        "A held at most its share: {} shed",
        shed()
    );
    drop(flood);
    ls.stop().await;
}
