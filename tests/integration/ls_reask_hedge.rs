//! Re-asks under `hedge` (docs/CONFIG.md (the LS)), over
//! real sockets: once every usable backend has been asked, a query still
//! unanswered after another delay is asked again, so a lost datagram is
//! not waited out to the deadline.
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

use crate::kit::{self, Fake, Reply, Stalled};

/// A backend that loses the first copy of every question: it answers the
/// LS's probes, drops the first datagram asking a name and answers the
/// next ones (`qN.example. A` is 10.0.0.N). Its `queries` counts the
/// client-query datagrams received (probes not counted).
async fn first_copy_lost() -> Fake {
    let mut seen = HashSet::new();
    Fake::udp(move |q, _| {
        let Ok(m) = Message::from_vec(q) else {
            return Reply::Drop;
        };
        let Some(question) = m.queries.first() else {
            return Reply::Drop;
        };
        let name = question.name().to_lowercase().to_ascii();
        if seen.insert(name.clone()) {
            return Reply::Drop; // the first copy is lost
        }
        Reply::Now(answer(&m, &name))
    })
    .await
}

/// The number in `qN.example.`.
fn number(name: &str) -> u8 {
    name.trim_start_matches('q')
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The authoritative answer to `q`: one A record, 10.0.0.N.
fn answer(q: &Message, name: &str) -> Vec<u8> {
    let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
    r.metadata.authoritative = true;
    r.add_queries(q.queries.iter().cloned());
    let owner = q.queries[0].name().clone();
    let a = A(Ipv4Addr::new(10, 0, 0, number(name)));
    r.add_answer(Record::from_rdata(owner, 60, RData::A(a)));
    r.to_vec().unwrap()
}

/// Every query answered with its own record well before `timeout_ms`,
/// over UDP (the fast path) and TCP (the pool path), none with the
/// `on_timeout` answer; `backends` holds the lossy one first.
async fn every_query_answered(backends: &[(&str, SocketAddr)], lossy: &Fake) {
    let mut cfg = kit::ls_config(backends);
    cfg.strategy = dnslb::config::Strategy::Hedge;
    cfg.layout = dnslb::config::Layout::Replicated;
    cfg.hedge_delay_ms = dnslb::config::HedgeDelay::Fixed(30);
    cfg.timeout_ms = 1500;
    cfg.on_timeout = dnslb::config::OnTimeout::Servfail;
    let ls = kit::start_ls(cfg).await;
    let mut tasks = Vec::new();
    for n in 1..=40_u8 {
        let addr = ls.addr;
        tasks.push(tokio::spawn(async move {
            let q = kit::query(&format!("q{n}.example."), RecordType::A, Some(1232));
            let started = Instant::now();
            let m = if n % 2 == 0 {
                kit::udp(addr, &q).await
            } else {
                kit::tcp(addr, &q).await
            };
            (n, m, started.elapsed())
        }));
    }
    for t in tasks {
        let (n, m, took) = t.await.unwrap();
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "q{n}: {m:?}"
        );
        assert_eq!(kit::a_addrs(&m), [Ipv4Addr::new(10, 0, 0, n)], "q{n}");
        assert!(
            took < Duration::from_millis(1000),
            "q{n} took {took:?}: the lost copy was waited out (timeout_ms 1500)"
        );
    }
    // Each question went to the lossy backend twice: once lost, once re-asked.
    assert!(lossy.queries.load(Relaxed) >= 80);
    let m = ls.balancer.metrics();
    assert!(m.hedges.load(Relaxed) >= 40, "re-asks count as hedges");
    ls.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_backend_losing_a_datagram_is_reasked_before_the_deadline() {
    let _load = crate::kit::timed().await;
    let lossy = first_copy_lost().await;
    every_query_answered(&[("lossy", lossy.addr)], &lossy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_backend_up_losing_a_datagram_is_reasked_before_the_deadline() {
    let _load = crate::kit::timed().await;
    let lossy = first_copy_lost().await;
    // The other replica is dead: no probe answered, so it is marked down.
    let dead = Stalled::start().await;
    dead.mute_probes();
    every_query_answered(&[("lossy", lossy.addr), ("dead", dead.addr)], &lossy).await;
    assert_eq!(dead.queries.load(Relaxed), 0, "a backend down is not asked");
}
