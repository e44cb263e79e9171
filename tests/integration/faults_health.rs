//! Faults of the LS's health checks and upstream connections (issue 17,
//! items 13, 20, 21), over real sockets:
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

use dnslb::config::{HealthConfig, HedgeDelay, Order, Strategy};

use crate::harness::{
    Stalled, TestLs, ZoneDir, a_addrs, ls_config, query, start_ls, start_ts, tcp, ts_settings, udp,
};
use crate::procs::poll_until_async;

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

/// SPEC §5 / issue 17 item 21: backend 0 answers its probes (`. SOA`) but
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
    let ts = start_ts(ts_settings(vec![dir.write("t.txt", &table)])).await;
    let mut cfg = ls_config(&[("liar", liar.addr), ("live", ts.addr)]);
    cfg.order = order;
    cfg.strategy = Strategy::Hedge;
    cfg.hedge_delay_ms = HedgeDelay::Fixed(100);
    cfg.timeout_ms = 400;
    // Only the start-up probe: the liar's probes would pass anyway.
    cfg.health = HealthConfig {
        interval_ms: 60_000,
        fall: 3,
        rise: 2,
        timeout_ms: 500,
        ..HealthConfig::default()
    };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_losing_client_queries_is_marked_down_under_fixed() {
    liar_is_marked_down(Order::Fixed, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_losing_client_queries_is_marked_down_under_fixed_over_tcp() {
    liar_is_marked_down(Order::Fixed, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_losing_client_queries_is_marked_down_under_round_robin() {
    liar_is_marked_down(Order::RoundRobin, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_losing_client_queries_is_marked_down_under_sticky() {
    liar_is_marked_down(Order::Sticky, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_losing_client_queries_is_marked_down_under_consistent_hash() {
    liar_is_marked_down(Order::ConsistentHash, false).await;
}
