//! A dead backend leaves nothing behind: two backends, one a live TS and one
//! a blackhole (a UDP socket on 127.0.0.1 that reads queries and never
//! answers), under steady load for many seconds.
//!
//! - Through the LS (`race`, `replicated`, health probes off): every client
//!   query is answered by the live TS; the blackhole is raced until the
//!   client queries it lost (rescued by the live TS each time) mark it down,
//!   and not asked after that; its in-flight count stays within what the
//!   deadline allows and drops to zero once the load stops; the live
//!   backend's latency figures stay small; the blackhole's samples never
//!   exceed the deadline.
//! - Through the upstream pool directly (the same race, one level down):
//!   the late tables hold what the grace period allows, far from
//!   [`LATE_MAX`], and in-flight counts are released while traffic flows.
//!
//! A target of its own so that its load does not share the machine with the
//! other tests; its two tests take [`kit::heavy`] (the suite's one load
//! policy) so they do not share it with each other either. Load loops are paced and bounded in count and time.
//!
//! They catch a late-query timer that traffic keeps pushing back only when
//! the traffic is dense (every pool socket receiving more often than every
//! `LATE_CHECK`): a debug build on two busy cores reaches about 3,700 of the
//! 5,000 queries/s asked for, which is dense enough. The pool's unit test
//! `late_queries_expire_on_a_steady_tick_however_busy_their_socket` checks
//! the same property with a fixed datagram rate, whatever the machine.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

#[path = "integration/kit/mod.rs"]
#[allow(dead_code, unused_imports)]
mod kit;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;
use tokio::time::{Instant, MissedTickBehavior};

use dnslb::config::{Layout, Strategy};
use dnslb::ls::backend::Backend;
use dnslb::ls::latency::BUCKETS_US;
use dnslb::ls::upstream::DropCounters;
use dnslb::ls::upstream::LATE_GRACE;
use dnslb::ls::upstream::ids::LATE_MAX;
use dnslb::ls::upstream::shared::{LATE_CHECK, SharedSockets};

use kit::{
    ANSWER_WAIT, TestTs, ZoneDir, a_addrs, ls_config, query, start_ls, start_ts, ts_settings,
};

/// Client queries per second asked for (paced, so never exceeded).
const TARGET_QPS: u64 = 5_000;
/// Concurrent client sockets, each with one query outstanding at a time.
const CLIENTS: u64 = 50;
/// How long the LS test keeps the load on.
const LS_RUN: Duration = Duration::from_secs(20);
/// The LS's `timeout_ms`.
const LS_TIMEOUT: Duration = Duration::from_millis(1_000);
/// Names in the live TS's table.
const NAMES: usize = 20;

/// A blackhole: reads and counts queries, never answers.
struct Blackhole {
    addr: SocketAddr,
    received: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_blackhole() -> Blackhole {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            // Up by its start-up health probe; a black hole for queries.
            if kit::is_probe(&buf[..n]) {
                let _ = sock.send_to(&kit::empty_answer(&buf[..n]), from).await;
                continue;
            }
            count.fetch_add(1, Relaxed);
        }
    });
    Blackhole {
        addr,
        received,
        task,
    }
}

/// The live TS's names and their addresses.
fn names() -> Vec<(String, Ipv4Addr)> {
    (0..NAMES)
        .map(|i| {
            let octet = u8::try_from(i + 1).unwrap();
            (format!("h{i}.bh.test."), Ipv4Addr::new(192, 0, 2, octet))
        })
        .collect()
}

/// A live TS serving [`names`].
async fn start_live() -> (TestTs, ZoneDir) {
    let dir = ZoneDir::new();
    let table: String = names()
        .iter()
        .map(|(n, a)| format!("{n}  {a}  A\n"))
        .collect();
    let ts = start_ts(ts_settings(vec![dir.write("live.txt", &table)])).await;
    (ts, dir)
}

/// What one client saw.
#[derive(Default)]
struct ClientReport {
    sent: u64,
    answered_right: u64,
    /// Datagrams with an ID other than the outstanding query's.
    stray: u64,
    /// The first few things that went wrong.
    failures: Vec<String>,
    latencies: Vec<Duration>,
}

impl ClientReport {
    fn fail(&mut self, why: String) {
        if self.failures.len() < 5 {
            self.failures.push(why);
        }
    }
}

/// One client socket: a query every `period` (never faster, never more than
/// `max` of them, never past `until`), each awaited and checked against the
/// live TS's table before the next.
async fn client(
    ls: SocketAddr,
    c: u64,
    period: Duration,
    max: u64,
    until: Instant,
) -> ClientReport {
    let names = names();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut rep = ClientReport::default();
    let mut buf = vec![0u8; 4096];
    for seq in 0..max {
        tick.tick().await;
        if Instant::now() >= until {
            break;
        }
        let (name, addr) = &names[usize::try_from((c + seq * CLIENTS) % NAMES as u64).unwrap()];
        let id = u16::try_from(seq % 65_536).unwrap();
        let mut m = query(name, RecordType::A, None);
        m.metadata.id = id;
        let q = m.to_vec().unwrap();
        let asked = Instant::now();
        sock.send_to(&q, ls).await.unwrap();
        rep.sent += 1;
        let resp = loop {
            match tokio::time::timeout_at(asked + ANSWER_WAIT, sock.recv_from(&mut buf)).await {
                Ok(Ok((n, _))) if n >= 2 && buf[..2] == id.to_be_bytes() => {
                    break Some(buf[..n].to_vec());
                }
                Ok(Ok(_)) => rep.stray += 1,
                Ok(Err(e)) => panic!("client recv: {e}"),
                Err(_) => break None,
            }
        };
        let Some(resp) = resp else {
            rep.fail(format!("{name} id {id}: no answer"));
            continue;
        };
        rep.latencies.push(asked.elapsed());
        // Everything past the header of the query is its question.
        if resp.get(12..q.len()) != Some(&q[12..]) {
            rep.fail(format!("{name} id {id}: question not echoed"));
            continue;
        }
        match Message::from_vec(&resp) {
            Ok(a) if a.response_code == ResponseCode::NoError && a_addrs(&a) == [*addr] => {
                rep.answered_right += 1;
            }
            Ok(a) => rep.fail(format!(
                "{name} id {id}: {:?} {:?}",
                a.response_code,
                a_addrs(&a)
            )),
            Err(e) => rep.fail(format!("{name} id {id}: undecodable: {e}")),
        }
    }
    rep
}

/// What `window` of load at [`TARGET_QPS`] can leave in flight or
/// remembered, with a slack of 500.
fn load_bound(window: Duration) -> u64 {
    TARGET_QPS * u64::try_from(window.as_millis()).unwrap() / 1000 + 500
}

/// The 99th percentile of `v` (sorted in place).
fn p99(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default()
}

/// Samples of a histogram above `bound`.
fn samples_above(b: &Backend, bound: Duration) -> u64 {
    let snap = b.stats.latency.snapshot();
    let bound_us = u64::try_from(bound.as_micros()).unwrap();
    // Bucket i holds samples in (BUCKETS_US[i-1], BUCKETS_US[i]]; the last is +Inf.
    let first_above = BUCKETS_US
        .iter()
        .position(|&b| b >= bound_us)
        .map_or(BUCKETS_US.len(), |i| i + 1);
    snap.counts.iter().skip(first_above).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_with_a_blackholed_backend_leaves_nothing_behind() {
    let _load = kit::heavy().await;
    let (live, _dir) = start_live().await;
    let hole = start_blackhole().await;
    let mut c = ls_config(&[("live", live.addr), ("dead", hole.addr)]);
    c.strategy = Strategy::Race;
    c.layout = Layout::Replicated;
    c.timeout_ms = u64::try_from(LS_TIMEOUT.as_millis()).unwrap();
    // No probes: only the client queries it loses can mark the blackhole down.
    c.health.interval_ms = 3_600_000;
    let ls = start_ls(c).await;
    let state = ls.balancer.state();
    let (live_b, dead_b) = (state.backends[0].clone(), state.backends[1].clone());
    assert_eq!(
        (live_b.name.as_str(), dead_b.name.as_str()),
        ("live", "dead")
    );

    // Sample the blackhole's in-flight count while the load runs.
    let done = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (done, dead_b) = (done.clone(), dead_b.clone());
        tokio::spawn(async move {
            let mut max = 0u32;
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            while !done.load(Relaxed) {
                tick.tick().await;
                max = max.max(dead_b.stats.outstanding.load(Relaxed));
            }
            max
        })
    };

    let period = Duration::from_micros(1_000_000 * CLIENTS / TARGET_QPS);
    let per_client = TARGET_QPS * LS_RUN.as_secs() / CLIENTS;
    let start = Instant::now();
    let until = start + LS_RUN;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(client(ls.addr, c, period, per_client, until)))
        .collect();
    let mut reports = Vec::new();
    for c in clients {
        reports.push(c.await.unwrap());
    }
    let took = start.elapsed();
    done.store(true, Relaxed);
    let max_outstanding = monitor.await.unwrap();

    // Once the load stops, the blackhole's in-flight count drains.
    let stopped = Instant::now();
    while dead_b.stats.outstanding.load(Relaxed) > 0
        && stopped.elapsed() < LS_TIMEOUT + Duration::from_secs(4)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained_in = stopped.elapsed();
    let left = dead_b.stats.outstanding.load(Relaxed);

    let sent: u64 = reports.iter().map(|r| r.sent).sum();
    let right: u64 = reports.iter().map(|r| r.answered_right).sum();
    let stray: u64 = reports.iter().map(|r| r.stray).sum();
    let failures: Vec<String> = reports.iter().flat_map(|r| r.failures.clone()).collect();
    let mut latencies: Vec<Duration> = reports.into_iter().flat_map(|r| r.latencies).collect();
    let client_p99 = p99(&mut latencies);
    let qps = sent as f64 / took.as_secs_f64();
    let live_p99 = live_b.stats.latency.snapshot().quantile(0.99).unwrap();
    let live_ewma = Duration::from_micros(live_b.stats.latency_us.load(Relaxed));
    let live_hedge = live_b.hedge.percentile();
    let dead_ewma = Duration::from_micros(dead_b.stats.latency_us.load(Relaxed));
    let dead_over = samples_above(&dead_b, LS_TIMEOUT);
    let asked_dead = hole.received.load(Relaxed);
    eprintln!(
        "blackhole race: {sent} queries in {took:.1?} = {qps:.0} qps (target {TARGET_QPS}); \
         client p99 {client_p99:?}; dead outstanding max {max_outstanding}, {left} left \
         {drained_in:.1?} after the load; live p99 {live_p99:?} ewma {live_ewma:?} \
         hedge p95 {live_hedge:?}; dead ewma {dead_ewma:?}, {dead_over} samples over \
         the deadline; blackhole got {asked_dead}"
    );

    assert!(
        failures.is_empty(),
        "wrong or missing answers: {failures:?}"
    );
    assert_eq!(right, sent);
    assert_eq!(stray, 0, "answers to queries no longer asked");
    assert!(
        sent >= TARGET_QPS * LS_RUN.as_secs() / 10,
        "too little load to mean anything: {sent}"
    );
    // Raced at first (every query of the first deadline at least), then
    // marked down by the queries it lost though the live TS answered them,
    // and asked no more: probes are off, so nothing else could mark it.
    let first_deadline = TARGET_QPS * u64::try_from(LS_TIMEOUT.as_millis()).unwrap() / 1000;
    assert!(
        asked_dead >= first_deadline.min(sent) / 2,
        "the blackhole was asked only {asked_dead} of {sent} queries: not raced"
    );
    assert!(
        !dead_b.is_up(),
        "the blackhole lost every query and is still up"
    );
    assert!(
        asked_dead * 2 < sent,
        "the blackhole was asked {asked_dead} of {sent} queries: not marked down by its losses"
    );
    let metrics = ls.balancer.metrics();
    assert_eq!(metrics.queries.load(Relaxed), sent);
    assert_eq!(metrics.synthesized.load(Relaxed), 0);
    assert_eq!(metrics.drops.total(), 0, "nothing looked forged");

    // In flight on the blackhole: at most what the deadline (plus a sweep
    // period or two) lets pile up at the rate asked for, with slack.
    let bound = load_bound(LS_TIMEOUT + 3 * LATE_CHECK);
    assert!(
        u64::from(max_outstanding) <= bound,
        "blackhole outstanding reached {max_outstanding}, bound {bound}"
    );
    assert_eq!(left, 0, "still in flight {drained_in:?} after the load");

    // The live backend's latency is its own: small.
    let small = LS_TIMEOUT / 4;
    assert!(live_p99 < small, "live p99 {live_p99:?}");
    assert!(live_ewma < small, "live latency average {live_ewma:?}");
    assert!(
        live_hedge.is_some_and(|d| d < small),
        "live hedge p95 {live_hedge:?}"
    );
    // The blackhole's samples stop at the deadline, however late they are settled.
    assert_eq!(dead_over, 0, "blackhole samples past the deadline");
    assert!(
        dead_ewma <= LS_TIMEOUT,
        "blackhole latency average {dead_ewma:?}"
    );

    ls.stop().await;
    live.stop().await;
}

/// The pool's race: the live answer wins, the blackhole's query is
/// abandoned. Returns whether the live answer came.
async fn pool_race(
    pool: &SharedSockets,
    live: (&Arc<Backend>, &[u8]),
    dead: &Arc<Backend>,
    timeout: Duration,
) -> bool {
    let end = live.1.len();
    let deadline = Instant::now() + timeout;
    let (mut q1, mut q2) = (live.1.to_vec(), live.1.to_vec());
    let l = pool.exchange(live.0.addr, &mut q1, end, (deadline, Some(live.0.begin())));
    let d = pool.exchange(dead.addr, &mut q2, end, (deadline, Some(dead.begin())));
    tokio::select! {
        r = l => r.is_ok(),
        _ = d => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_late_tables_stay_small_and_release_in_flight_under_load() {
    const RUN: Duration = Duration::from_secs(8);
    const TIMEOUT: Duration = Duration::from_millis(300);
    let _load = kit::heavy().await;
    let (live, _dir) = start_live().await;
    let hole = start_blackhole().await;
    let backend = |name: &str, addr| {
        Arc::new(Backend::from_config(
            &dnslb::config::BackendConfig {
                name: name.into(),
                addr,
                weight: 1,
                notify_key: None,
                transport: Default::default(),
                tls_name: None,
                ca: None,
                proxy: false,
            },
            false,
        ))
    };
    let (live_b, dead_b) = (backend("live", live.addr), backend("dead", hole.addr));
    let drops = Arc::new(DropCounters::default());
    let pool = Arc::new(SharedSockets::new(drops.clone()));

    let period = Duration::from_micros(1_000_000 * CLIENTS / TARGET_QPS);
    let start = Instant::now();
    let until = start + RUN;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (pool, live_b, dead_b) = (pool.clone(), live_b.clone(), dead_b.clone());
            tokio::spawn(async move {
                let mut m = query(&names()[c as usize % NAMES].0, RecordType::A, None);
                m.metadata.id = 0;
                let q = m.to_vec().unwrap();
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
                let (mut sent, mut won) = (0u64, 0u64);
                while sent < TARGET_QPS * RUN.as_secs() / CLIENTS {
                    tick.tick().await;
                    if Instant::now() >= until {
                        break;
                    }
                    sent += 1;
                    won += u64::from(pool_race(&pool, (&live_b, &q), &dead_b, TIMEOUT).await);
                }
                (sent, won)
            })
        })
        .collect();

    // Sample while the load runs: late tables and the blackhole's in-flight count.
    let (mut max_total, mut max_fullest, mut max_outstanding) = (0, 0, 0);
    let mut settled_while_loaded = false;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while start.elapsed() < RUN {
        tick.tick().await;
        let late = pool.late_entries();
        max_total = max_total.max(late.total);
        max_fullest = max_fullest.max(late.fullest);
        let out = dead_b.stats.outstanding.load(Relaxed);
        max_outstanding = max_outstanding.max(out);
        // Past the first deadline, the blackhole's queries must be settling:
        // each is charged as a timeout at its deadline (a timeout feeds no
        // latency sample).
        if start.elapsed() > TIMEOUT + 3 * LATE_CHECK && dead_b.stats.timeouts.load(Relaxed) > 0 {
            settled_while_loaded = true;
        }
    }
    let (mut sent, mut won) = (0, 0);
    for c in clients {
        let (s, w) = c.await.unwrap();
        sent += s;
        won += w;
    }
    let took = start.elapsed();
    let qps = sent as f64 / took.as_secs_f64();
    let dead_count = dead_b.stats.timeouts.load(Relaxed);
    let dead_over = samples_above(&dead_b, TIMEOUT);
    eprintln!(
        "pool race: {sent} races in {took:.1?} = {qps:.0}/s; late entries max {max_total} \
         (fullest socket {max_fullest}, LATE_MAX {LATE_MAX}); dead outstanding max \
         {max_outstanding}; dead timeouts {dead_count}, latency samples over the deadline {dead_over}"
    );

    assert_eq!(won, sent, "the live backend answered every race");
    assert!(
        sent >= TARGET_QPS * RUN.as_secs() / 10,
        "too little load: {sent}"
    );
    // Remembered for the deadline plus the grace period, no longer.
    let bound = usize::try_from(load_bound(TIMEOUT + LATE_GRACE + 3 * LATE_CHECK)).unwrap();
    assert!(
        max_total <= bound,
        "late entries reached {max_total}, bound {bound}"
    );
    assert!(
        max_fullest < LATE_MAX / 4,
        "a late table reached {max_fullest} of {LATE_MAX}"
    );
    let bound = u32::try_from(load_bound(TIMEOUT + 3 * LATE_CHECK)).unwrap();
    assert!(
        max_outstanding <= bound,
        "blackhole outstanding reached {max_outstanding}, bound {bound}"
    );
    assert!(
        settled_while_loaded,
        "no blackhole query settled under load"
    );
    assert_eq!(dead_over, 0, "blackhole samples past the deadline");
    assert_eq!(drops.total(), 0);

    pool.shutdown().await;
    live.stop().await;
}
