//! The LS's health checks and upstream connections under faults, over real
//! sockets:
//! - a backend that answers its probes but loses every client query is
//!   marked down under every order, over UDP and TCP, though another backend
//!   rescued each query;
//! - two LSes that list each other do not forward each other's probes (or a
//!   client's query) round and round;
//! - TCP exchanges with a backend reuse a few connections.
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use dnslb::config::{HedgeDelay, Layout, Order, Strategy};

use crate::kit::poll_until_async;
use crate::kit::{
    Stalled, TestLs, ZoneDir, a_addrs, health_config, ls_config, query, start_ls, start_ls_at,
    start_ts, start_ts_table, tcp, ts_settings, udp,
};

/// Upper bound of any wait for a state to flip.
const LIMIT: Duration = Duration::from_secs(10);
/// Names the table server holds, `n0.example` .. (each its own address).
const NAMES: u8 = 40;

fn name(k: u8) -> String {
    format!("n{k}.example")
}

fn addr_of(k: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 21, 0, k)
}

/// One query for name `k` (UDP or TCP); asserts its answer is the table's.
async fn ask_right(ls: &TestLs, k: u8, over_tcp: bool) -> Duration {
    let q = query(&name(k), RecordType::A, None);
    let t = Instant::now();
    let m: Message = if over_tcp {
        tcp(ls.addr, &q).await
    } else {
        udp(ls.addr, &q).await
    };
    let took = t.elapsed();
    assert_eq!(m.response_code, ResponseCode::NoError, "{m:?}");
    assert_eq!(a_addrs(&m), vec![addr_of(k)], "name {k}");
    took
}

/// docs/CONFIG.md (the LS): backend 0 answers its probes (`. SOA`) but
/// drops every client query; backend 1 answers everything. Each query the
/// liar is asked first is rescued by the hedge to backend 1, and still counts
/// as the liar's loss: after `fall` of them it is marked down, its
/// `timeouts` counter has grown, and from then on no client query reaches
/// it (so none waits the hedge delay).
async fn liar_is_marked_down(order: Order, over_tcp: bool) {
    let liar = Stalled::start().await;
    let dir = ZoneDir::new();
    let table: String = (0..NAMES)
        .map(|k| format!("{} {} A\n", name(k), addr_of(k)))
        .collect();
    let ts = start_ts_table(&dir, "t.txt", &table).await;
    let mut cfg = ls_config(&[("liar", liar.addr), ("live", ts.addr)]);
    cfg.order = order;
    // Replicated: the live backend holds every name, so the liar's silence
    // is a loss. (Partitioned, a positive answer from another partition
    // excuses it: silence for a name it need not hold is expected there,
    // ls_reask.rs; the liar is caught by its own names' timeouts.)
    cfg.layout = Layout::Replicated;
    cfg.strategy = Strategy::Hedge;
    cfg.hedge_delay_ms = HedgeDelay::Fixed(100);
    cfg.timeout_ms = 400;
    // Only the start-up probe: the liar's probes would pass anyway.
    cfg.health = health_config(60_000, 3, 2, 500);
    let ls = start_ls(cfg).await;
    let liar_b = ls.balancer.state().backends[0].clone();
    assert!(liar_b.is_up(), "up by its start-up probe");

    // Every answer right, however long the liar keeps it waiting.
    let mut k = 0u8;
    let down = poll_until_async(LIMIT, Duration::ZERO, async || {
        if !liar_b.is_up() {
            return Some(());
        }
        ask_right(&ls, k % NAMES, over_tcp).await;
        k = k.wrapping_add(1);
        None
    })
    .await;
    let lost = liar.queries.load(Relaxed);
    assert!(
        down.is_some(),
        "{order:?} tcp={over_tcp}: the liar lost {lost} client queries and was never marked down \
         (timeouts counted: {})",
        liar_b.stats.timeouts.load(Relaxed)
    );
    let timeouts = liar_b.stats.timeouts.load(Relaxed);
    assert!(
        timeouts >= 3,
        "{order:?}: timeouts {timeouts} after its fall"
    );

    // From now on: not asked at all, every answer at once.
    let mut took = Vec::new();
    for k in 0..NAMES {
        took.push(ask_right(&ls, k, over_tcp).await);
    }
    let slowest = took.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{order:?} tcp={over_tcp}: liar down after {lost} lost queries, {timeouts} timeouts; \
         then {NAMES} answers, slowest {slowest:?}"
    );
    assert_eq!(
        liar.queries.load(Relaxed),
        lost,
        "{order:?}: a client query went to the backend marked down"
    );
    assert!(!liar_b.is_up(), "still down");
    ls.stop().await;
    ts.stop().await;
}

/// One test of [`liar_is_marked_down`] per order (and transport).
macro_rules! liar_tests {
    ($($name:ident: $order:expr, $over_tcp:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            liar_is_marked_down($order, $over_tcp).await;
        }
    )*};
}

liar_tests! {
    a_backend_losing_client_queries_is_marked_down_under_fixed: Order::Fixed, false;
    a_backend_losing_client_queries_is_marked_down_under_fixed_over_tcp: Order::Fixed, true;
    a_backend_losing_client_queries_is_marked_down_under_round_robin: Order::RoundRobin, false;
    a_backend_losing_client_queries_is_marked_down_under_sticky: Order::Sticky, false;
    a_backend_losing_client_queries_is_marked_down_under_consistent_hash: Order::ConsistentHash, false;
}

/// Sockets of this host connected to `port` on the far side, in any state
/// (established, closing, TIME_WAIT): the connections opened to a server on
/// `port`, read from `/proc/net/tcp{,6}`.
fn connections_to(port: u16) -> usize {
    let want = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|text| {
            text.lines()
                .skip(1)
                .filter(|l| {
                    l.split_whitespace()
                        .nth(2)
                        .is_some_and(|rem| rem.ends_with(&want))
                })
                .count()
        })
        .sum()
}

/// TCP clients' ANY queries (sent to the backend over TCP
/// at once) and their TC=1 answers (asked again over TCP) reuse a few
/// connections to the backend instead of one each: 2,000 such queries from
/// 8 clients leave at most a handful of sockets towards the backend's port
/// (a closed one stays in TIME_WAIT for a minute, so none escapes the
/// count), and every answer is the table's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_exchanges_with_a_backend_reuse_a_few_connections() {
    use crate::kit::{tcp_recv, tcp_send};
    const CLIENTS: usize = 8;
    const EACH: usize = 250;
    const BIG: u8 = 40;
    let dir = ZoneDir::new();
    let mut table: String = (0..NAMES)
        .map(|k| format!("{} {} A\n", name(k), addr_of(k)))
        .collect();
    // Too big for 512 bytes: over UDP without EDNS the answer is TC=1.
    for k in 0..BIG {
        table.push_str(&format!("big.example 10.13.0.{k} A\n"));
    }
    let ts = start_ts_table(&dir, "t.txt", &table).await;
    let ls = start_ls(ls_config(&[("ts", ts.addr)])).await;
    let before = connections_to(ts.addr.port());
    let clients = (0..CLIENTS).map(|c| {
        let addr = ls.addr;
        tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            for i in 0..EACH {
                let k = u8::try_from((c * EACH + i) % usize::from(NAMES)).unwrap();
                let (q, want) = if i % 2 == 0 {
                    (query(&name(k), RecordType::ANY, None), vec![addr_of(k)])
                } else {
                    let all = (0..BIG).map(|k| Ipv4Addr::new(10, 13, 0, k)).collect();
                    (query("big.example", RecordType::A, None), all)
                };
                tcp_send(&mut s, &q.to_vec().unwrap()).await;
                let raw = tcp_recv(&mut s).await.expect("an answer over tcp");
                let m = Message::from_vec(&raw).unwrap();
                assert_eq!(m.response_code, ResponseCode::NoError, "{m:?}");
                assert!(!m.metadata.truncation, "a TCP client gets the whole answer");
                let mut got = a_addrs(&m);
                got.sort();
                assert_eq!(got, want, "query {i} of client {c}");
            }
        })
    });
    for c in futures_util::future::join_all(clients).await {
        c.unwrap();
    }
    let opened = connections_to(ts.addr.port()).saturating_sub(before);
    eprintln!(
        "{} TCP exchanges with the backend over {opened} connections",
        CLIENTS * EACH
    );
    assert!(
        opened <= 2 * dnslb::ls::upstream::TCP_CONNS,
        "{opened} connections to the backend for {} queries",
        CLIENTS * EACH
    );
    ls.stop().await;
    ts.stop().await;
}

/// A backend that answers every query with an empty NOERROR (UDP and TCP),
/// except that over TCP it closes the connection, unanswered, on every
/// `nth` query. Returns its address and the TCP connections it accepted.
async fn closing_backend(
    nth: u64,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
    tokio::task::JoinHandle<()>,
) {
    use crate::kit::{empty_answer, tcp_recv, tcp_send};
    // The TCP listener's port may be some other test's UDP port: try again.
    let mut tries = 0;
    let (tcp_l, addr, udp_s) = loop {
        let tcp_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp_l.local_addr().unwrap();
        match tokio::net::UdpSocket::bind(addr).await {
            Ok(udp_s) => break (tcp_l, addr, udp_s),
            Err(e) if tries < 50 => {
                tries += 1;
                eprintln!("closing_backend: {addr} over UDP: {e}; another port");
            }
            Err(e) => panic!("no port free for TCP and UDP: {e}"),
        }
    };
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        let udp_side = async {
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, from)) = udp_s.recv_from(&mut buf).await {
                let _ = udp_s.send_to(&empty_answer(&buf[..n]), from).await;
            }
        };
        let tcp_side = async {
            let mut served = 0u64;
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut s, _)) = tcp_l.accept().await {
                count.fetch_add(1, Relaxed);
                // Where this connection's unanswered query falls.
                let first = served;
                served += nth;
                conns.spawn(async move {
                    let mut k = first;
                    while let Some(q) = tcp_recv(&mut s).await {
                        k += 1;
                        if k.is_multiple_of(nth) {
                            return; // closed under the query
                        }
                        tcp_send(&mut s, &empty_answer(&q)).await;
                    }
                });
            }
        };
        tokio::join!(udp_side, tcp_side);
    });
    (addr, accepted, task)
}

/// A backend that closes a pooled connection with a query
/// in flight fails only that query on it, which is asked again once on a new
/// connection: every client query is answered by the backend (NOERROR, not
/// the LS's SERVFAIL), over one connection per `nth - 1` answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_closing_a_pooled_connection_costs_no_answer() {
    use crate::kit::{tcp_recv, tcp_send};
    const QUERIES: u64 = 60;
    const NTH: u64 = 3;
    let (addr, accepted, task) = closing_backend(NTH).await;
    let ls = start_ls(ls_config(&[("closing", addr)])).await;
    let mut s = tokio::net::TcpStream::connect(ls.addr).await.unwrap();
    for i in 0..QUERIES {
        // ANY from a TCP client goes to the backend over TCP at once.
        let q = query(&format!("q{i}.example"), RecordType::ANY, None);
        tcp_send(&mut s, &q.to_vec().unwrap()).await;
        let raw = tcp_recv(&mut s).await.expect("an answer over tcp");
        let m = Message::from_vec(&raw).unwrap();
        assert_eq!(m.response_code, ResponseCode::NoError, "query {i}: {m:?}");
        assert!(m.metadata.authoritative, "query {i}: the backend's answer");
    }
    let conns = accepted.load(Relaxed);
    eprintln!("{QUERIES} queries, every {NTH}rd closed under: {conns} connections");
    assert!(
        (QUERIES / NTH..=QUERIES / (NTH - 1) + 2).contains(&conns),
        "{conns} connections for {QUERIES} queries"
    );
    ls.stop().await;
    task.abort();
}

/// Upstream queries an LS has sent to its backends (client queries forwarded).
fn sent(ls: &TestLs) -> u64 {
    ls.balancer
        .state()
        .backends
        .iter()
        .map(|b| b.stats.sent.load(Relaxed))
        .sum()
}

/// Two LSes that list each other as their backend. With
/// no client traffic, each one's health probes reach the other, which
/// forwards them back: the first LS recognises its own mark and refuses
/// them instead of forwarding them again, so each LS forwards about one
/// query per probe of the other (not ~20,000 a second). A client's query
/// (with EDNS, as dig and resolvers send) goes round once and is answered
/// REFUSED (the loop refusal passed back), instead of going round until the
/// end of time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_lses_listing_each_other_do_not_loop() {
    let _load = crate::kit::timed().await;
    const QUIET: Duration = Duration::from_secs(3);
    const INTERVAL_MS: u64 = 100;
    let ports = crate::kit::free_ports(2);
    let (a_addr, b_addr) = (crate::kit::local(ports[0]), crate::kit::local(ports[1]));
    let health = health_config(INTERVAL_MS, 2, 1, 300);
    let mut cfg_a = ls_config(&[("b", b_addr)]);
    cfg_a.health = health.clone();
    let mut cfg_b = ls_config(&[("a", a_addr)]);
    cfg_b.health = health;
    let a = start_ls_at(cfg_a, a_addr).await;
    let b = start_ls_at(cfg_b, b_addr).await;
    tokio::time::sleep(QUIET).await;
    let (sa, sb) = (sent(&a), sent(&b));
    let refused = |ls: &TestLs| ls.balancer.metrics().loops_refused.load(Relaxed);
    let probes = QUIET.as_millis() as u64 / INTERVAL_MS;
    eprintln!(
        "{QUIET:?} without clients: A forwarded {sa}, B {sb} queries; refused as loops: A {}, B {}; \
         ~{probes} probe rounds each",
        refused(&a),
        refused(&b)
    );
    // One forwarded query per probe of the other, with room for the rounds
    // the timing of a busy machine adds.
    for (who, n) in [("A", sa), ("B", sb)] {
        assert!(
            n <= 4 * probes,
            "{who} forwarded {n} queries in {QUIET:?}: a loop"
        );
    }
    assert!(
        refused(&a) > 0 && refused(&b) > 0,
        "each saw its own probes come back"
    );
    // A probe of the other comes back REFUSED: its own loop refusal, which
    // the other passes on as every backend of it refused.

    // A client query: still tried (all backends down), round once, answered.
    // Without EDNS too: the LS gives the copy it forwards an OPT for its
    // mark (B's probe answers show it speaks EDNS), and the client gets none.
    for (how, name, edns) in [
        ("with EDNS", "x.example", Some(1232)),
        ("without EDNS", "y.example", None),
    ] {
        let before = (sent(&a), sent(&b));
        let t = Instant::now();
        let m = udp(a_addr, &query(name, RecordType::A, edns)).await;
        let took = t.elapsed();
        // The loop refusal, passed back by B and then by A.
        assert_eq!(m.response_code, ResponseCode::Refused, "{how}: {m:?}");
        if edns.is_none() {
            assert!(m.edns.is_none(), "an OPT for a client that sent none");
        }
        assert!(
            took < Duration::from_millis(1000),
            "{how}: answered after {took:?}"
        );
        // Its round trip, plus the probes meanwhile.
        let (da, db) = (sent(&a) - before.0, sent(&b) - before.1);
        eprintln!("query {how} answered in {took:?}; meanwhile A forwarded {da}, B {db}");
        assert!(
            da <= 20 && db <= 20,
            "{how}: A forwarded {da}, B {db}: the query looped"
        );
    }
    a.stop().await;
    b.stop().await;
}

/// The mark's OPT, added to a query without EDNS that goes to a backend
/// speaking EDNS, never reaches the client: an answer has an OPT exactly
/// when the query had one, over UDP and TCP (RFC 6891 §7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_edns_gets_no_opt_though_the_forwarded_copy_had_one() {
    let dir = ZoneDir::new();
    let ts = start_ts(ts_settings(vec![
        dir.write("t.txt", &format!("{} {} A\n", name(1), addr_of(1))),
    ]))
    .await;
    let ls = start_ls(ls_config(&[("ts", ts.addr)])).await;
    assert!(
        ls.balancer.state().backends[0].speaks_edns(),
        "its probe answer had an OPT"
    );
    for over_tcp in [false, true] {
        for edns in [None, Some(1232)] {
            let q = query(&name(1), RecordType::A, edns);
            let m = if over_tcp {
                tcp(ls.addr, &q).await
            } else {
                udp(ls.addr, &q).await
            };
            assert_eq!(a_addrs(&m), vec![addr_of(1)]);
            assert_eq!(
                m.edns.is_some(),
                edns.is_some(),
                "tcp={over_tcp} edns={edns:?}: {m:?}"
            );
        }
    }
    ls.stop().await;
    ts.stop().await;
}
