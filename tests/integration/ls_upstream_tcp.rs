//! The LS's upstream TCP: a slow TCP backend answering in time is not given
//! up, an answer the LS cannot pass on does not end the query, a silent
//! re-asked backend is charged once, a backend closing each connection after
//! one answer is served.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use dnslb::config::{HedgeDelay, Layout, Order, Strategy};

use crate::kit::{
    Reply, Tasks, TcpStep, ZoneDir, a_addrs, delay_all, is_probe, ls_config, query, serve_tcp,
    serve_udp, silent_backend_config, start_ls, start_race_ls, start_ts, tcp, ts_settings, udp,
    udp_and_tcp, wait_settled, wire_answer,
};

/// A fake backend on UDP and TCP: every query answered with [`wire_answer`]
/// (extended rcode `ext` for client queries that carry an OPT), over UDP at
/// once, over TCP after `tcp_delay` (each query on its own, answers
/// written as they are ready). Counts TCP connections and client queries.
struct Fake {
    addr: SocketAddr,
    tcp_conns: Arc<AtomicU64>,
    tcp_queries: Arc<AtomicU64>,
    udp_queries: Arc<AtomicU64>,
    _tasks: Tasks,
}

impl Fake {
    async fn start(tcp_delay: Duration, ext: u8) -> Fake {
        Fake::start_closing(tcp_delay, ext, 0).await
    }

    /// [`Fake::start`], closing each TCP connection after answering its
    /// first `per_conn` queries (0: never), as NSD's `tcp-query-count` does.
    async fn start_closing(tcp_delay: Duration, ext: u8, per_conn: u64) -> Fake {
        let (sock, listener, addr) = udp_and_tcp().await;
        let (tcp_conns, tcp_queries, udp_queries) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let uq = udp_queries.clone();
        let u = serve_udp(sock, move |q| {
            if q.len() < 17 {
                return Reply::Drop;
            }
            if !is_probe(q) {
                uq.fetch_add(1, Relaxed);
            }
            Reply::Now(wire_answer(q, ext))
        });
        let tq = tcp_queries.clone();
        let t = serve_tcp(listener, tcp_conns.clone(), move |q, nth, _| {
            if per_conn > 0 && nth > per_conn {
                // Its last answer out, the connection goes.
                return TcpStep::Close(tcp_delay + Duration::from_millis(5));
            }
            let probe = is_probe(q);
            if !probe {
                tq.fetch_add(1, Relaxed);
            }
            let after = if probe { Duration::ZERO } else { tcp_delay };
            TcpStep::Answer(after, wire_answer(q, ext))
        });
        Fake {
            addr,
            tcp_conns,
            tcp_queries,
            udp_queries,
            _tasks: Tasks(vec![u, t]),
        }
    }
}

const ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 77);

/// A backend that answers every TCP query in 600 ms, within the 1 s
/// deadline, has each pooled connection given up as stalled at 500 ms
/// (nothing read since the query was written): the query is asked again on
/// a fresh connection with 500 ms left, and that one is given up at the
/// deadline too. No TCP query to it is ever answered, each costs the
/// backend two queries and two connections, and once queries overlap a
/// stall's close fails the others' second tries (connection reset): every
/// backend "failed", SERVFAIL. Reproduced with the release binary (one fake
/// backend answering TCP in 900 ms, default 1500 ms deadline, race): 8
/// sparse TCP clients' ANY queries, 8 NXDOMAIN (synthesized, at 1.51 s)
/// over 16 backend connections; dnsperf -m tcp at 50 q/s for 10 s: 497
/// SERVFAIL and 3 NXDOMAIN of 500, 1,000 queries to the backend over 32
/// connections, none answered. The binary before 73580c1 (/tmp/r3/dnslb)
/// answered 8 of 8 in 0.91 s and 500 of 500 NOERROR over 2 connections;
/// dnsdist 1.7.3 on the same fake answered 8 of 8 in 0.93 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_tcp_backend_that_answers_in_time_is_not_given_up() {
    let fake = Fake::start(Duration::from_millis(600), 0).await;
    let ls = start_race_ls("slow", fake.addr, 1000).await;
    let clients = 5;
    let mut answered = 0;
    let mut rcodes = Vec::new();
    for i in 0..clients {
        let q = query(&format!("s{i}.example"), RecordType::ANY, None);
        let m = tcp(ls.addr, &q).await;
        rcodes.push(m.response_code);
        if a_addrs(&m) == [ANSWER] {
            answered += 1;
        }
    }
    let (conns, sent) = (fake.tcp_conns.load(Relaxed), fake.tcp_queries.load(Relaxed));
    assert!(
        answered == clients && sent <= clients + 1 && conns <= 2,
        "a backend answering every TCP query in 600 ms (deadline 1000): {answered} of {clients} \
         TCP clients' ANY answered ({rcodes:?}); it got {sent} queries over {conns} connections"
    );
    ls.stop().await;
}

/// A client query without EDNS whose backend answers with an extended
/// rcode in the OPT the LS added for its loop mark now gets SERVFAIL, but
/// that answer still ends the query: it is judged by its header's low four
/// bits (BADVERS is NOERROR there: a final answer) before `win` turns it
/// into SERVFAIL. Under `race` the broken backend, faster, wins every
/// query; the backend that holds the name is never waited for. docs/CONFIG.md (the LS): an
/// answer the LS cannot use (SERVFAIL...) is never final, the LS moves on.
/// Reproduced with the release binary and one fake backend that adds
/// BADVERS to answers of queries carrying an OPT: non-EDNS clients got
/// SERVFAIL, 3 of 3 over UDP and 2 of 2 over TCP (the binary before
/// 73580c1: NOERROR with the record; an EDNS client: the record, BADVERS).
/// dnsdist 1.7.3 on the same fake answered all 5 with the record: it
/// forwards the client's query without an OPT of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_the_ls_cannot_pass_on_does_not_end_the_query() {
    // BADVERS in the OPT (extended rcode 1, header rcode 0) to every client
    // query that carries an OPT: the LS's own, for its loop mark.
    let broken = Fake::start(Duration::ZERO, 1).await;
    let dir = ZoneDir::new();
    let mut settings = ts_settings(vec![dir.write("t.txt", "n.example 192.0.2.10 A\n")]);
    settings.fault = delay_all(30);
    let good = start_ts(settings).await;
    let mut cfg = ls_config(&[("broken", broken.addr), ("good", good.addr)]);
    cfg.strategy = Strategy::Race;
    cfg.order = Order::Fixed;
    cfg.layout = Layout::Replicated;
    cfg.timeout_ms = 1000;
    let ls = start_ls(cfg).await;
    assert!(ls.balancer.state().backends[0].speaks_edns());
    let clients = 10;
    let mut rcodes = Vec::new();
    let mut answered = 0;
    for i in 0..clients {
        let q = query("n.example", RecordType::A, None);
        let m = if i % 2 == 0 {
            udp(ls.addr, &q).await
        } else {
            tcp(ls.addr, &q).await
        };
        rcodes.push(m.response_code);
        if a_addrs(&m) == [Ipv4Addr::new(192, 0, 2, 10)] {
            answered += 1;
        }
    }
    assert_eq!(
        answered,
        clients,
        "the good backend holds the name ({} queries reached the broken one); \
         non-EDNS clients got {rcodes:?}",
        broken.udp_queries.load(Relaxed) + broken.tcp_queries.load(Relaxed)
    );
    ls.stop().await;
    good.stop().await;
}

/// A TCP client's query (the async driver) re-asked of a backend silent to
/// the deadline charges that backend two timeouts, one per copy: the first
/// copy's timeout is judged (`Backend::lost`) and, its twin still out, the
/// backend stays unfinished, so the deadline charges it again. A UDP
/// client's query (the fast path) charges one. With `fall = 2` one TCP
/// client's query marks the backend down "client queries lost". Reproduced
/// with the release binary (hedge, 40 ms, budget 100%, 400 ms, fall 2, a
/// fake answering probes only): one TCP client query, 2 upstream queries,
/// `dnslb_backend_timeouts_total` 2 and the backend down; one UDP client
/// query, 2 upstream queries, +1. Predates 73580c1, which fixed the twin's
/// charge only when its backend answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_reasked_backend_is_charged_one_timeout_per_client_query() {
    let (silent, mut cfg) = silent_backend_config().await;
    cfg.strategy = Strategy::Hedge;
    cfg.hedge_delay_ms = HedgeDelay::Fixed(40);
    cfg.hedge_budget_pct = 100.0;
    cfg.timeout_ms = 400;
    cfg.health.interval_ms = 60_000;
    cfg.health.fall = 2;
    let ls = start_ls(cfg).await;
    let b = ls.balancer.state().backends[0].clone();
    assert!(b.is_up());
    let m = tcp(ls.addr, &query("t.example", RecordType::A, None)).await;
    assert_eq!(m.response_code, ResponseCode::NXDomain, "{m:?}");
    wait_settled(&b).await;
    let by_tcp = b.stats.timeouts.load(Relaxed);
    let up_after_tcp = b.is_up();
    let sent_tcp = silent.queries.load(Relaxed);
    let m = udp(ls.addr, &query("u.example", RecordType::A, None)).await;
    assert_eq!(m.response_code, ResponseCode::NXDomain, "{m:?}");
    wait_settled(&b).await;
    let by_udp = b.stats.timeouts.load(Relaxed) - by_tcp;
    let sent_udp = silent.queries.load(Relaxed) - sent_tcp;
    assert!(
        by_tcp == 1 && up_after_tcp,
        "one TCP client query ({sent_tcp} upstream) charged {by_tcp} timeout(s), up after it: \
         {up_after_tcp} (fall 2); one UDP client query ({sent_udp} upstream) charged {by_udp}"
    );
    ls.stop().await;
}

/// A backend that serves one query per TCP connection and then closes it
/// (NSD's `tcp-query-count: 1`, dnsdist's `setMaxTCPQueriesPerConnection`)
/// gets the LS's TCP queries pipelined 32 to a connection: it answers the
/// first and closes, the others are asked once more, again pipelined on
/// one connection, and fail (connection reset): SERVFAIL, every backend
/// "failed". Here, 20 TCP clients' ANY at once: 2 NOERROR, 18 SERVFAIL,
/// over 2 connections. Reproduced with the release binary (race, one fake
/// backend, dnsperf -m tcp, ANY, 100 q/s for 5 s): 276 NOERROR, 224
/// SERVFAIL of 500; the binary before 73580c1: 323 and 177 (it predates
/// 73580c1, whose retry path it is). dnsdist 1.7.3 on the same fake: 500
/// of 500 NOERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_closing_each_tcp_connection_after_one_answer_is_served() {
    let fake = Fake::start_closing(Duration::from_millis(20), 0, 1).await;
    let ls = start_race_ls("one-per-conn", fake.addr, 1500).await;
    let clients = 20;
    let asks = (0..clients).map(|i| {
        let addr = ls.addr;
        tokio::spawn(async move {
            let q = query(&format!("c{i}.example"), RecordType::ANY, None);
            tcp(addr, &q).await
        })
    });
    let mut rcodes = Vec::new();
    let mut answered = 0;
    for m in futures_util::future::join_all(asks).await {
        let m = m.unwrap();
        rcodes.push(m.response_code);
        if a_addrs(&m) == [ANSWER] {
            answered += 1;
        }
    }
    assert_eq!(
        answered,
        clients,
        "{clients} TCP clients' ANY at once; the backend got {} queries over {} connections; \
         the clients got {rcodes:?}",
        fake.tcp_queries.load(Relaxed),
        fake.tcp_conns.load(Relaxed)
    );
    ls.stop().await;
}
