//! The LS's TCP pool limits: a backend slow for some names is not sent
//! copies, and one early close does not limit a backend forever.
//!
//! A backend slow for some names is not treated as stalled (which would
//! send each such query four times over four connections), and one early
//! close with queries in flight does not shrink the per-connection limit
//! for good (a connection per query from then on).
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::kit::{
    Reply, Tasks, TcpStep, a_addrs, is_probe, ls_config, query, serve_tcp, serve_udp, start_ls,
    start_race_ls, tcp, udp_and_tcp, wire_answer,
};

/// Whether `q`'s first label starts with "slow".
fn is_slow(q: &[u8]) -> bool {
    q.get(13..17) == Some(b"slow")
}

/// A fake backend on UDP (answered at once) and TCP: queries for names
/// starting with "slow" answered in `slow`, others in 1 ms, each on its own
/// (pipelined). With `crash_once`, the first connection that gets a second
/// query before answering its first closes after that first answer,
/// leaving the second unanswered (a backend restarted, a one-off).
struct Fake {
    addr: SocketAddr,
    tcp_conns: Arc<AtomicU64>,
    tcp_queries: Arc<AtomicU64>,
    slow_queries: Arc<AtomicU64>,
    _tasks: Tasks,
}

impl Fake {
    async fn start(slow: Duration, crash_once: bool) -> Fake {
        let (sock, listener, addr) = udp_and_tcp().await;
        let tcp_conns = Arc::new(AtomicU64::new(0));
        let tcp_queries = Arc::new(AtomicU64::new(0));
        let slow_queries = Arc::new(AtomicU64::new(0));
        let crash = Arc::new(AtomicBool::new(crash_once));
        let u = serve_udp(sock, |q| match q.len() {
            17.. => Reply::Now(wire_answer(q, 0)),
            _ => Reply::Drop,
        });
        let (tq, sq) = (tcp_queries.clone(), slow_queries.clone());
        let t = serve_tcp(listener, tcp_conns.clone(), move |q, _, in_flight| {
            let probe = is_probe(q);
            if !probe {
                tq.fetch_add(1, Relaxed);
            }
            let slow_one = !probe && is_slow(q);
            if slow_one {
                sq.fetch_add(1, Relaxed);
            }
            if in_flight > 0 && crash.swap(false, Relaxed) {
                // The one in flight answered, this one never.
                return TcpStep::Close(Duration::from_millis(30));
            }
            let delay = if slow_one {
                slow
            } else if crash_once {
                Duration::from_millis(20)
            } else {
                Duration::from_millis(1)
            };
            TcpStep::Answer(delay, wire_answer(q, 0))
        });
        Fake {
            addr,
            tcp_conns,
            tcp_queries,
            slow_queries,
            _tasks: Tasks(vec![u, t]),
        }
    }
}

/// A backend whose TCP round trip is bimodal (1 ms for most names, 300 ms
/// for some: a slow zone, a cache miss behind it) is judged stalled on its
/// slow queries: after a run of fast answers the estimators say ~1 ms, so
/// 50 ms (`STALL_MIN`) with nothing read retires the connection and the
/// query is asked again on a new one, three times, the fourth (last) try
/// waiting. A slow query costs the backend four copies and three or four
/// more connections, and its client waits ~460 ms rather than 300. The
/// retired copies' answers come after their IDs left the table (dropped as
/// late): the slow mode reaches the estimators once per query at most, and
/// a run of fast answers washes it out again. Here: 5 slow TCP clients' ANY,
/// each after 15 fast ones, one at a time: 20 copies over 16 new
/// connections, waits of 458-505 ms. Reproduced with the release binary
/// (race, one fake backend, dnsperf -m tcp -c 1 -q 1, ANY): names slow one
/// in 16 plus 5% at random, 15 s: 288 client queries, 350 at the backend
/// (85 copies of slow ones) over 63 connections, max latency 708 ms;
/// dnsdist 1.7.3 on the same fake: 320 queries, 320 at the backend over 1
/// connection, max 325 ms. With slowness at random per copy (5%), 20 s:
/// 950 client queries, ~1,010 at the backend over 62 connections (dnsdist:
/// 1,004 and 1,004 over 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_slow_for_some_names_is_not_sent_copies() {
    let fake = Fake::start(Duration::from_millis(300), false).await;
    let ls = start_race_ls("bimodal", fake.addr, 1500).await;
    let conns_before = fake.tcp_conns.load(Relaxed);
    let slow = 5;
    let mut took = Vec::new();
    for i in 0..slow {
        // Fast answers between slow ones, as at 5%.
        for j in 0..15 {
            let m = tcp(
                ls.addr,
                &query(&format!("f{i}-{j}.example"), RecordType::ANY, None),
            )
            .await;
            assert_eq!(a_addrs(&m).len(), 1, "{m:?}");
        }
        let t = Instant::now();
        let m = tcp(
            ls.addr,
            &query(&format!("slow{i}.example"), RecordType::ANY, None),
        )
        .await;
        took.push(t.elapsed().as_millis());
        assert_eq!(a_addrs(&m).len(), 1, "{m:?}");
    }
    let copies = fake.slow_queries.load(Relaxed);
    let conns = fake.tcp_conns.load(Relaxed) - conns_before;
    // Each worker thread (2) keeps its own connections to the backend, and
    // the client connections are handed to them in turn: one each.
    assert!(
        copies <= slow + 1 && conns <= 2,
        "{slow} slow queries (300 ms, deadline 1500), each after 15 fast ones: the backend got \
         {copies} copies over {conns} new connections; the clients waited {took:?} ms"
    );
    ls.stop().await;
}

/// One early close of a TCP connection with a query in flight after one
/// answer (a backend restarted or crashed, an idle timeout racing a query)
/// sets the backend's per-connection limit to 1 for the life of the LS:
/// `per_conn` is only ever lowered (`fetch_min`). Every TCP query from then
/// on opens a connection of its own, which the LS closes after its answer
/// (TIME_WAIT on the LS's side): the churn the pool exists to avoid. Here:
/// two TCP clients' ANY at once (pipelined on one connection, which the
/// backend closes after the first answer), then 30 one at a time to the
/// same backend, now healthy: 30 new connections. Reproduced with the
/// release binary and a fake that does the same once: dnsperf -m tcp -c 1
/// -q 1, 10 s after it: 198 queries over 198 new connections, 178 sockets
/// in TIME_WAIT; -c 20 -q 20, 5 s: 629 q/s, 3,168 queries over ~3,170
/// connections, 1 SERVFAIL. dnsdist 1.7.3 on the same fake (same load):
/// 891 q/s, 4,469 NOERROR, ~100 connections; it keeps no learnt limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_early_close_does_not_limit_a_backend_forever() {
    let fake = Fake::start(Duration::from_millis(20), true).await;
    // One worker thread: both clients' queries share its connections to the
    // backend (each worker keeps its own), as the early close needs.
    let mut cfg = ls_config(&[("restarted", fake.addr)]);
    cfg.strategy = dnslb::config::Strategy::Race;
    cfg.layout = dnslb::config::Layout::Replicated;
    cfg.timeout_ms = 1500;
    cfg.workers = 1;
    let ls = start_ls(cfg).await;
    let addr = ls.addr;
    let two = (0..2).map(|i| {
        tokio::spawn(async move {
            tcp(
                addr,
                &query(&format!("c{i}.example"), RecordType::ANY, None),
            )
            .await
        })
    });
    for m in futures_util::future::join_all(two).await {
        assert_eq!(a_addrs(&m.unwrap()).len(), 1);
    }
    let conns_before = fake.tcp_conns.load(Relaxed);
    let n = 30;
    for i in 0..n {
        let m = tcp(
            ls.addr,
            &query(&format!("n{i}.example"), RecordType::ANY, None),
        )
        .await;
        assert_eq!(a_addrs(&m).len(), 1, "{m:?}");
    }
    let conns = fake.tcp_conns.load(Relaxed) - conns_before;
    assert!(
        conns <= 2,
        "after one early close (connections {conns_before} then), {n} TCP queries one at a \
         time to the healthy backend took {conns} new connections ({} queries in all)",
        fake.tcp_queries.load(Relaxed)
    );
    ls.stop().await;
}
