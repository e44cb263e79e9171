//! Upstream TCP answers: a slow one within the deadline is kept, one with an
//! ID never sent counts as `wrong_id`, a backend whose TCP is dead is
//! avoided for truncated answers.
//!
//! Each case is held against dnsdist 1.7.3 on the same fake backend.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use dnslb::config::{Layout, Strategy};

use crate::kit::{
    TcpStep, a_addrs, is_probe, ls_config, query, read_frame, serve_tcp, start_ls, tcp, tcp_sent,
    udp_and_tcp, wait_settled, wire_answer,
};

/// Answers every UDP query on `sock` at once (probes included); with
/// `truncated`, every answer but a probe's with TC=1.
fn answer_udp(sock: tokio::net::UdpSocket, truncated: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            if n >= 17 {
                let mut r = wire_answer(&buf[..n], 0);
                if truncated && !is_probe(&buf[..n]) {
                    r[2] |= 0x02;
                }
                let _ = sock.send_to(&r, from).await;
            }
        }
    })
}

/// The LS's answer over TCP to a client's ANY for `name`.
async fn any_over_tcp(ls: std::net::SocketAddr, name: &str) -> Message {
    tcp(ls, &query(name, RecordType::ANY, None)).await
}

/// A backend whose TCP answers come after `slow` for names starting with
/// "slow" and at once for the others; UDP answered at once. Returns its
/// address, its TCP queries for slow names, and its tasks.
async fn bimodal(
    slow: Duration,
) -> (
    std::net::SocketAddr,
    Arc<AtomicU64>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let (sock, listener, addr) = udp_and_tcp().await;
    let u = answer_udp(sock, false);
    let slow_copies = Arc::new(AtomicU64::new(0));
    let sc = slow_copies.clone();
    let t = serve_tcp(listener, Arc::new(AtomicU64::new(0)), move |q, _, _| {
        if q.get(13..17) == Some(b"slow") {
            sc.fetch_add(1, Relaxed);
            TcpStep::Answer(slow, wire_answer(q, 0))
        } else {
            TcpStep::Answer(Duration::from_millis(1), wire_answer(q, 0))
        }
    });
    (addr, slow_copies, vec![u, t])
}

/// A query whose backend answers over TCP within the deadline, but later
/// than a quarter of the time left, is lost once the backend's round trip
/// has been measured: `ask` leaves the "stalled" connection at
/// `stall_after` (time left / 4), dropping the query's ID from that
/// connection's table, so the first copy's answer, when it comes in time,
/// is dropped as late; the second copy, asked on a new connection, cannot
/// come back before the deadline. The client gets SERVFAIL (or nothing)
/// though the backend answered in time. A query asked before any round
/// trip is measured is waited for and answered. Reproduced with the
/// release binary (sequential, `timeout_ms = 1500`, a fake backend
/// answering UDP with TC=1 and TCP at once except names "slow*" after
/// 1,250 ms): five fast `dig +tcp`, then three `dig +tcp slowN.example`:
/// SERVFAIL after 1.53 s each, the backend got each slow name twice over a
/// new connection each; on a fresh LS (no round trip yet) the same query is
/// NOERROR after 1.27 s. dnsdist 1.7.3 on the same backend: NOERROR after
/// 1.27 s, every time, one copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_tcp_answer_within_the_deadline_is_not_dropped() {
    let (addr, slow_copies, tasks) = bimodal(Duration::from_millis(2_500)).await;
    let mut cfg = ls_config(&[("slowish", addr)]);
    cfg.strategy = Strategy::Race;
    cfg.layout = Layout::Replicated;
    cfg.timeout_ms = 3_000;
    let ls = start_ls(cfg).await;
    // The round trip measured: fast answers over TCP.
    for i in 0..10 {
        let fast = any_over_tcp(ls.addr, &format!("f{i}.example")).await;
        assert_eq!(a_addrs(&fast).len(), 1, "{fast:?}");
    }
    let t = Instant::now();
    // Waited for longer than the deadline: the LS's reply, whatever it is.
    let mut s = tcp_sent(ls.addr, &query("slow.example", RecordType::ANY, None)).await;
    let raw = tokio::time::timeout(Duration::from_secs(6), read_frame(&mut s))
        .await
        .ok()
        .flatten();
    let took = t.elapsed();
    let m = Message::from_vec(&raw.expect("a reply by the deadline")).unwrap();
    assert_eq!(
        a_addrs(&m).len(),
        1,
        "the backend answered after 2.5 s of a 3 s deadline; the client got, after {took:?}, \
         {m:?} ({} copies sent)",
        slow_copies.load(Relaxed)
    );
    ls.stop().await;
    for t in tasks {
        t.abort();
    }
}

/// A TCP answer whose ID no query on its connection ever had is counted
/// as `late` ("its query gave up"), not `wrong_id`: `deliver` cannot tell
/// an ID never sent from one whose query ended. On UDP the same answer
/// counts `wrong_id` (a late entry is kept per socket), so
/// `dnslb_dropped_responses_total{reason="wrong_id"}`, the counter an
/// operator watches for spoofing or a broken backend, stays 0 while every
/// TCP answer of a backend is dropped. Reproduced with the release binary
/// (a fake backend answering TCP with the query's ID + 1, UDP with TC=1):
/// three `dig +tcp`, SERVFAIL each after 1.5 s; /metrics: late 3, wrong_id
/// 0. dnsdist 1.7.3 on the same backend drops the connection at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_answer_with_an_id_never_sent_counts_as_wrong_id() {
    let (sock, listener, addr) = udp_and_tcp().await;
    let u = answer_udp(sock, false);
    let t = serve_tcp(listener, Arc::new(AtomicU64::new(0)), |q, _, _| {
        let mut r = wire_answer(q, 0);
        let id = u16::from_be_bytes([r[0], r[1]]).wrapping_add(1);
        r[..2].copy_from_slice(&id.to_be_bytes());
        TcpStep::Answer(Duration::from_millis(1), r)
    });
    let mut cfg = ls_config(&[("wrongid", addr)]);
    cfg.timeout_ms = 300;
    let ls = start_ls(cfg).await;
    for i in 0..3 {
        let m = any_over_tcp(ls.addr, &format!("w{i}.example")).await;
        assert!(a_addrs(&m).is_empty(), "{m:?}");
    }
    let drops = &ls.balancer.metrics().drops;
    let (wrong_id, late) = (drops.wrong_id.load(Relaxed), drops.late.load(Relaxed));
    assert!(
        wrong_id >= 3 && late == 0,
        "3 TCP answers with an ID never sent: wrong_id {wrong_id}, late {late}"
    );
    ls.stop().await;
    u.abort();
    t.abort();
}

/// A truncated UDP answer asked again over TCP (`async_path::exchange`'s TC
/// path) is invisible to the balancer: its UDP flight has ended, the TCP
/// exchange holds no `InFlight` (the ANY path does: `b.begin()`), so
/// least-outstanding sees the backend idle, and a backend whose TCP never
/// answers is never charged a timeout nor marked down. Every TCP client's
/// query goes to it first and waits for the hedge or try timeout.
/// Reproduced with the release binary (default hedge, least-outstanding,
/// `timeout_ms = 1500`; two fake backends answering UDP with TC=1, one
/// accepting TCP and never answering): `dnsperf -m tcp -c 5 -Q 100 -l 20`
/// (A queries): 2,000 NOERROR, average latency 464 ms (max 550 ms); the
/// dead backend was sent 1,986 queries, `dnslb_backend_timeouts_total` 0,
/// `dnslb_backend_up` 1 throughout. The same load as ANY (the TCP-only
/// path, counted busy): 106 of 2,000 went to the dead backend, average
/// 10 ms. dnsdist 1.7.3 (leastOutstanding) on the same pair: 882 answered,
/// 591 lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_whose_tcp_is_dead_is_avoided_for_truncated_answers() {
    let mut backends = Vec::new();
    let mut tasks = Vec::new();
    let dead_tcp = Arc::new(AtomicU64::new(0));
    for dead in [true, false] {
        let (sock, listener, addr) = udp_and_tcp().await;
        tasks.push(answer_udp(sock, true));
        let seen = dead_tcp.clone();
        tasks.push(serve_tcp(
            listener,
            Arc::new(AtomicU64::new(0)),
            move |q, _, _| {
                if dead {
                    seen.fetch_add(1, Relaxed);
                    TcpStep::Answer(Duration::from_secs(60), wire_answer(q, 0))
                } else {
                    TcpStep::Answer(Duration::from_millis(1), wire_answer(q, 0))
                }
            },
        ));
        backends.push(addr);
    }
    let mut cfg = ls_config(&[("tcpdead", backends[0]), ("ok", backends[1])]);
    cfg.timeout_ms = 1500;
    // Replicated: every name on both, so the dead TCP's silence is a loss
    // (partitioned, the other's positive answer would excuse it).
    cfg.layout = Layout::Replicated;
    let ls = start_ls(cfg).await;
    let addr = ls.addr;
    let clients = (0..5).map(|c| {
        tokio::spawn(async move {
            for i in 0..10 {
                let m = tcp(
                    addr,
                    &query(&format!("c{c}-{i}.example"), RecordType::A, None),
                )
                .await;
                assert_eq!(a_addrs(&m).len(), 1, "{m:?}");
            }
        })
    });
    for c in futures_util::future::join_all(clients).await {
        c.unwrap();
    }
    let to_dead = dead_tcp.load(Relaxed);
    let b = ls.balancer.state().backends[0].clone();
    assert!(
        to_dead <= 25,
        "50 TCP client queries (5 at a time), every UDP answer truncated: {to_dead} went over \
         TCP to the backend whose TCP never answers; it was charged {} timeouts",
        b.stats.timeouts.load(Relaxed)
    );
    // Each copy it never answered (another backend answered the client) is
    // a loss of it, once settled at its deadline, as on UDP.
    wait_settled(&b).await;
    assert_eq!(
        b.stats.timeouts.load(Relaxed),
        to_dead,
        "copies the backend whose TCP never answers was sent, each charged once"
    );
    ls.stop().await;
    for t in tasks {
        t.abort();
    }
}
