//! A backend the kernel refuses to send to, over real sockets: the first
//! backend is a broadcast address (127.255.255.255:53: `sendmmsg(2)` and
//! `sendto(2)` fail with `EACCES`, the socket has no `SO_BROADCAST`), the
//! second a TS. Over UDP (the fast path) as over TCP (the async path) the
//! refused try ends at once: the TS answers long before the 10 s deadline,
//! the 8 s hedge delay or the 8 s per-try timeout would have let it be asked,
//! and with every backend refused the client gets SERVFAIL at once. The
//! refused backend is charged the same way on both paths: sent, in flight
//! until the deadline (then a timeout), never answered.
//!
//! No wall-clock bound is asserted: an answer at all within the 5 s the
//! client waits is the proof (nothing could have been asked of the TS
//! before 8 s otherwise).
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use dnslb::config::{HedgeDelay, Layout, LsConfig, Order, Strategy};

use crate::kit::{
    self, TestLs, TestMetrics, ZoneDir, a_addrs, http_get, parse_exposition, query, udp_exchange,
    value,
};

const ZONE: &str = "$ORIGIN example.\n$TTL 300\n\
    @ SOA ns hostmaster 1 3600 600 86400 300\n\
    @ NS ns\n\
    ns A 192.0.2.1\n\
    www A 192.0.2.10\n";

/// How long the client waits for an answer: well under the hedge delay and
/// the per-try timeout (8 s), let alone the deadline (10 s).
const WAIT: Duration = Duration::from_secs(5);

const STRATEGIES: [Strategy; 3] = [Strategy::Hedge, Strategy::Sequential, Strategy::Race];

/// The kernel refuses to send to it (a broadcast address).
fn refused(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 255, 255, 255], port))
}

/// An LS with one worker over `backends` asked in order under `strategy`,
/// with a 10 s deadline, an 8 s hedge delay and per-try timeout, and no
/// health probes after the first round; every backend marked up (the
/// refused one fails its probe, and a down backend is not asked); and its
/// `/metrics` listener.
async fn ls(backends: &[(&str, SocketAddr)], strategy: Strategy) -> (TestLs, TestMetrics) {
    let mut c: LsConfig = kit::ls_config(backends);
    c.workers = 1;
    c.strategy = strategy;
    c.order = Order::Fixed;
    c.layout = Layout::Replicated;
    c.timeout_ms = 10_000;
    c.hedge_delay_ms = HedgeDelay::Fixed(8_000);
    c.try_timeout_ms = 8_000;
    c.health.interval_ms = 3_600_000;
    c.health.timeout_ms = 100;
    let ls = kit::start_ls(c).await;
    for b in &ls.balancer.state().backends {
        b.set_up(true);
    }
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;
    (ls, metrics)
}

/// Backend `name`'s counters from the LS's `/metrics`: (sent, answered,
/// wins, timeouts, errors, outstanding).
async fn counters(m: &TestMetrics, name: &str) -> [f64; 6] {
    let e = parse_exposition(&http_get(m.addr, "/metrics").await.body);
    let want = [("backend", name)];
    [
        "dnslb_backend_sent_total",
        "dnslb_backend_answered_total",
        "dnslb_backend_wins_total",
        "dnslb_backend_timeouts_total",
        "dnslb_backend_errors_total",
        "dnslb_backend_outstanding",
    ]
    .map(|family| value(&e, family, &want))
}

/// After `n` queries with the refused backend tried first, each answered by
/// the TS: the refused backend sent `n`, each in flight until the deadline
/// (no timeout yet, no error); the TS sent, answered and won `n`.
async fn assert_charged(m: &TestMetrics, n: f64, what: &str) {
    assert_eq!(
        counters(m, "refused").await,
        [n, 0.0, 0.0, 0.0, 0.0, n],
        "{what}"
    );
    assert_eq!(counters(m, "ts").await, [n, n, n, 0.0, 0.0, 0.0], "{what}");
}

/// `www.example. A` over TCP, within [`WAIT`].
async fn over_tcp(addr: SocketAddr, q: &Message) -> Message {
    tokio::time::timeout(WAIT, kit::tcp(addr, q))
        .await
        .expect("answered over tcp long before the hedge delay")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_backend_is_skipped_at_once_over_udp_as_over_tcp() {
    let dir = ZoneDir::new();
    let ts = kit::start_ts(kit::ts_settings(vec![dir.write("example.zone", ZONE)])).await;
    for strategy in STRATEGIES {
        let (ls, m) = ls(&[("refused", refused(53)), ("ts", ts.addr)], strategy).await;
        let q = query("www.example.", RecordType::A, None);

        // UDP: the fast path.
        let a = udp_exchange(ls.addr, &q, WAIT)
            .await
            .unwrap_or_else(|| panic!("{strategy}: no answer over udp before the hedge delay"));
        assert_eq!(a.response_code, ResponseCode::NoError, "{strategy}");
        assert_eq!(a_addrs(&a), [Ipv4Addr::new(192, 0, 2, 10)], "{strategy}");
        // No hedge: the TS was asked because the first try failed, not by
        // the timer.
        assert_charged(&m, 1.0, &format!("{strategy}: udp")).await;
        let hedges = ls
            .balancer
            .metrics()
            .hedges
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(hedges, 0, "{strategy}");

        // TCP: the async path, charged the same way.
        let a = over_tcp(ls.addr, &q).await;
        assert_eq!(a_addrs(&a), [Ipv4Addr::new(192, 0, 2, 10)], "{strategy}");
        assert_charged(&m, 2.0, &format!("{strategy}: udp then tcp")).await;
        m.stop().await;
        ls.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_refused_is_servfail_at_once_over_udp_as_over_tcp() {
    for strategy in STRATEGIES {
        let (ls, m) = ls(&[("r1", refused(53)), ("r2", refused(54))], strategy).await;
        let q = query("www.example.", RecordType::A, None);
        let a = udp_exchange(ls.addr, &q, WAIT)
            .await
            .unwrap_or_else(|| panic!("{strategy}: no SERVFAIL over udp before the deadline"));
        assert_eq!(a.response_code, ResponseCode::ServFail, "{strategy}: udp");
        let a = over_tcp(ls.addr, &q).await;
        assert_eq!(a.response_code, ResponseCode::ServFail, "{strategy}: tcp");
        for name in ["r1", "r2"] {
            assert_eq!(
                counters(&m, name).await,
                [2.0, 0.0, 0.0, 0.0, 0.0, 2.0],
                "{strategy}: {name}, asked once over each path"
            );
        }
        m.stop().await;
        ls.stop().await;
    }
}
