//! Slow backends that answer in time: not marked down, not sent double
//! the load by `sequential`, a stuck pooled TCP connection replaced, a
//! re-asked backend that answered not charged a timeout, an extended rcode
//! kept with the LS's own OPT.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use dnslb::config::{Order, Strategy};

use crate::kit::{
    Fake, Reply, ZoneDir, a_addrs, empty_answer, health_config, is_probe, ls_config, query,
    read_frame, serve_udp, start_ls, start_ts_table, tcp, udp, udp_and_tcp, wait_settled,
    wire_answer, write_frame,
};

/// A NOERROR answer to `q` holding one A record 192.0.2.77 (TC as given).
fn a_answer(q: &[u8], truncated: bool) -> Vec<u8> {
    let mut m = Message::from_vec(q).unwrap();
    m.metadata.message_type = hickory_proto::op::MessageType::Response;
    m.metadata.authoritative = true;
    m.metadata.truncation = truncated;
    if !truncated {
        let name = m.queries[0].name().clone();
        m.answers.push(hickory_proto::rr::Record::from_rdata(
            name,
            60,
            hickory_proto::rr::RData::A(Ipv4Addr::new(192, 0, 2, 77).into()),
        ));
    }
    m.to_vec().unwrap()
}

/// A UDP backend that answers probes at once and client queries after
/// `delay`, except every `drop_every`-th client query (0: none), which it
/// never answers. Counts the client queries it received.
async fn slow_udp(delay: Duration, drop_every: u64) -> Fake {
    Fake::udp(move |q, k| {
        if drop_every > 0 && k.is_multiple_of(drop_every) {
            Reply::Drop
        } else {
            Reply::After(delay, a_answer(q, false))
        }
    })
    .await
}

/// Under `race`, a backend that answers 95% of client queries within 100 ms
/// (a fifth of the deadline) but is always beaten by a faster one is marked
/// down "client queries lost" after `fall` of its rare drops: its answers,
/// all late losers, never count as heard, so nothing clears its loss streak,
/// and once on probation one drop marks it down again. A backend as lossy
/// that wins races is never marked down (its wins clear the streak).
/// Reproduced with `dnslb up` (race, fall 2, 150 ms, 1% drop): 2,000 queries,
/// "backend down ... why=client queries lost" twice in 7 s; the same loss
/// without the delay: 9 timeouts, never down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slower_backend_that_answers_in_time_is_not_marked_down() {
    let slow = slow_udp(Duration::from_millis(100), 20).await;
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", "n.example 192.0.2.10 A\n").await;
    let mut cfg = ls_config(&[("fast", ts.addr), ("slow", slow.addr)]);
    cfg.strategy = Strategy::Race;
    cfg.order = Order::Fixed;
    cfg.timeout_ms = 500;
    cfg.health = health_config(60_000, 3, 2, 500);
    let ls = start_ls(cfg).await;
    let slow_b = ls.balancer.state().backends[1].clone();
    assert!(slow_b.is_up(), "up by its start-up probe");
    let mut down_after = None;
    for i in 0..120 {
        let m = udp(ls.addr, &query("n.example", RecordType::A, None)).await;
        assert_eq!(a_addrs(&m), vec![Ipv4Addr::new(192, 0, 2, 10)], "{m:?}");
        // Let the slow backend's answer (or a drop's deadline) pass.
        tokio::time::sleep(Duration::from_millis(10)).await;
        if down_after.is_none() && !slow_b.is_up() {
            down_after = Some(i);
        }
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let received = slow.queries.load(Relaxed);
    assert_eq!(
        down_after,
        None,
        "the slow backend answered {} of {received} client queries within 100 ms, \
         yet was marked down (is_up now {})",
        received - received / 20,
        slow_b.is_up()
    );
    assert!(received >= 100, "the slow backend was raced: {received}");
    ls.stop().await;
    ts.stop().await;
}

/// docs/CONFIG.md (the LS): `sequential` asks one backend at a time; only `hedge` re-asks,
/// within the hedge budget. A single backend answering every query in 300 ms
/// (within the 1 s deadline) gets each query twice: the re-ask after
/// `try_timeout_ms` doubles the load on a backend that is slow, with no
/// budget. Reproduced with `dnslb up` (one TS delaying every answer 700 ms,
/// try 500, deadline 1500): 300 client queries, `backend_sent_total` 600,
/// 275 late responses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_does_not_double_the_load_on_a_slow_backend() {
    let slow = slow_udp(Duration::from_millis(300), 0).await;
    let mut cfg = ls_config(&[("slow", slow.addr)]);
    cfg.strategy = Strategy::Sequential;
    cfg.try_timeout_ms = 100;
    cfg.timeout_ms = 1000;
    let ls = start_ls(cfg).await;
    let clients = 20;
    for _ in 0..clients {
        let m = udp(ls.addr, &query("n.example", RecordType::A, None)).await;
        assert_eq!(m.response_code, ResponseCode::NoError, "{m:?}");
    }
    let received = slow.queries.load(Relaxed);
    assert!(
        received <= clients + clients / 10,
        "{clients} client queries, each answered in 300 ms, reached the backend {received} times"
    );
    ls.stop().await;
}

/// A TCP backend whose every connection answers its first two queries and
/// then reads on but never answers again (a hung handler, or a middlebox
/// that forgot the connection); new connections work. UDP answers TC=1 so
/// the LS asks again over TCP; probes are answered.
async fn stuck_after_two() -> (SocketAddr, Arc<AtomicU64>, Vec<tokio::task::JoinHandle<()>>) {
    let (udp_sock, listener, addr) = udp_and_tcp().await;
    let conns = Arc::new(AtomicU64::new(0));
    let c2 = conns.clone();
    let u = serve_udp(udp_sock, |q| {
        Reply::Now(if is_probe(q) {
            empty_answer(q)
        } else {
            a_answer(q, true)
        })
    });
    let t = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            c2.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let mut answered = 0;
                loop {
                    let Some(q) = read_frame(&mut s).await else {
                        return;
                    };
                    if answered < 2 {
                        answered += 1;
                        let r = a_answer(&q, false);
                        if !write_frame(&mut s, &r).await {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, conns, vec![u, t])
}

/// A pooled TCP connection to a backend that stopped answering on it keeps
/// taking every TCP query while traffic flows (each query refreshes it, so
/// the idle close never comes): every one fails at the deadline, forever,
/// though a new connection would be answered. dnsdist (tcpRecvTimeout 1)
/// on the same fake answered 10 of 10, over 6 connections; /tmp/r3/dnslb
/// answered 3, then 0 of 15 over 25 s, with one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_pooled_tcp_connection_is_replaced() {
    let (addr, conns, tasks) = stuck_after_two().await;
    let mut cfg = ls_config(&[("stuck", addr)]);
    cfg.timeout_ms = 400;
    let ls = start_ls(cfg).await;
    let mut answered = 0;
    for i in 0..10 {
        let m = tcp(
            ls.addr,
            &query(&format!("q{i}.example"), RecordType::A, None),
        )
        .await;
        if a_addrs(&m) == vec![Ipv4Addr::new(192, 0, 2, 77)] {
            answered += 1;
        }
    }
    let opened = conns.load(Relaxed);
    assert!(
        answered >= 8,
        "{answered} of 10 TCP queries answered over {opened} backend connection(s)"
    );
    ls.stop().await;
    for t in tasks {
        t.abort();
    }
}

/// A re-asked backend that answered the client's query is charged a
/// timeout for its other copy: a backend that drops the first copy of each
/// query and answers the re-ask at once (every client answered, by it, well
/// before the deadline) shows `timeouts` equal to `wins`, though
/// `dnslb_backend_timeouts_total` counts "client deadlines hit while it was
/// asked". Reproduced under `hedge` (one backend, re-asked after 40 ms):
/// 10 UDP and 10 TCP queries, 20 NOERROR, wins 20, timeouts 20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reasked_backend_that_answered_is_not_charged_a_timeout() {
    let mut seen = std::collections::HashSet::new();
    let fake = Fake::udp(move |q, _| {
        if seen.insert(Message::from_vec(q).unwrap().queries[0].name().clone()) {
            Reply::Drop // the first copy of each name: lost
        } else {
            Reply::Now(a_answer(q, false))
        }
    })
    .await;
    let mut cfg = ls_config(&[("a", fake.addr)]);
    cfg.strategy = Strategy::Hedge;
    cfg.hedge_delay_ms = dnslb::config::HedgeDelay::Fixed(40);
    cfg.hedge_budget_pct = 100.0;
    cfg.timeout_ms = 800;
    let ls = start_ls(cfg).await;
    for i in 0..10 {
        let (d, t) = (format!("d{i}.example"), format!("t{i}.example"));
        let by_udp = udp(ls.addr, &query(&d, RecordType::A, None)).await;
        let by_tcp = tcp(ls.addr, &query(&t, RecordType::A, None)).await;
        for (how, m) in [("udp", by_udp), ("tcp", by_tcp)] {
            let want = vec![Ipv4Addr::new(192, 0, 2, 77)];
            assert_eq!(a_addrs(&m), want, "{how} {i}: {m:?}");
        }
    }
    // Every copy answered or settled at its deadline.
    let b = ls.balancer.state().backends[0].clone();
    wait_settled(&b).await;
    let (wins, timeouts) = (b.stats.wins.load(Relaxed), b.stats.timeouts.load(Relaxed));
    assert_eq!(wins, 20);
    assert_eq!(
        timeouts, 0,
        "20 client queries, each answered by this backend after its re-ask, counted {timeouts} timeouts"
    );
    ls.stop().await;
}

/// A client query without EDNS gets an OPT the LS adds for its loop mark
/// when the backend speaks EDNS; the LS takes that OPT out of the answer,
/// and with it the upper eight bits of the answer's rcode (RFC 6891 §6.1.3):
/// an answer whose extended rcode is BADVERS (16) reaches the client as
/// NOERROR with no records. The LS also judges the answer by its low four
/// bits alone (a NODATA, final). Reproduced with /tmp/r3/dnslb and a fake
/// backend: `dig +noedns` through the LS said NOERROR, the backend direct
/// said BADVERS. No sane backend sends BADVERS to a version 0 query, so
/// this needs a broken one; an error must not become a positive answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_rcode_is_not_lost_with_the_opt_the_ls_added() {
    // Probes get the fake's plain answer (with their OPT); queries BADVERS
    // (extended rcode 1, with 0 in the header).
    let fake = Fake::udp(|q, _| Reply::Now(wire_answer(q, 1))).await;
    let mut cfg = ls_config(&[("badvers", fake.addr)]);
    cfg.timeout_ms = 500;
    let ls = start_ls(cfg).await;
    assert!(ls.balancer.state().backends[0].speaks_edns());
    let m = udp(ls.addr, &query("x.example", RecordType::A, None)).await;
    assert_ne!(
        m.response_code,
        ResponseCode::NoError,
        "the backend answered BADVERS; the non-EDNS client got {m:?}"
    );
    ls.stop().await;
}
