//! The load balancer's backend health, orders and protection over real sockets
//! (docs/CONFIG.md (the LS) "Backends' health", "Order", "Protection"; §6 SIGHUP reload).
//!
//! Table servers run in-process (the kit) or, where one must die and come
//! back on the same port, as real `dnslb ts` processes owned by a [`Proc`]
//! that stops them by PID when dropped (SIGTERM, bounded wait, SIGKILL).
//! Nothing sleeps and hopes: every wait polls real state (DNS answers,
//! `Backend::is_up`, counters) until a bounded deadline, and every timing
//! assertion states its margin.
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::RecordType;
use rustix::process::Signal;
use tokio::net::{TcpStream, UdpSocket};

use dnslb::config::{Fault, HealthConfig, HedgeDelay, Layout, LsConfig, Order, Strategy};

use crate::kit::{Proc, free_port, health_config, local, poll_until_async, silent_backend_config};
use crate::kit::{
    Stalled, TestLs, TestTs, ZoneDir, a_addrs, delay_all, ls_config, query, start_ls, start_ts,
    start_ts_table, tcp, tcp_recv, ts_settings, udp, udp_raw, udp_raw_wait,
};

/// Pause between two polls of some state.
const POLL: Duration = Duration::from_millis(2);
/// Upper bound of any wait for a server to come up or a state to flip.
const LIMIT: Duration = Duration::from_secs(8);

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// Starts `dnslb ARGS` (from `/`; every path it is given is absolute).
fn spawn(args: &[&str]) -> Proc {
    Proc::dnslb(&format!("dnslb {}", args.join(" ")), args, Path::new("/"))
}

/// Starts `dnslb ts --listen ADDR --zone ZONE` and waits until it answers
/// `probe` directly. Retries when the port was taken meanwhile (another
/// test's ephemeral socket may hold it for a moment).
async fn start_ts_proc(addr: SocketAddr, zone: &Path, probe: &str) -> Proc {
    let listen = addr.to_string();
    let zone = zone.to_str().unwrap().to_owned();
    let deadline = Instant::now() + LIMIT;
    let q = query(probe, RecordType::A, None).to_vec().unwrap();
    'spawn: loop {
        let mut p = spawn(&["ts", "--listen", &listen, "--zone", &zone, "--workers", "1"]);
        loop {
            assert!(
                Instant::now() < deadline,
                "dnslb ts on {addr} not ready:\n{}",
                p.stderr_now()
            );
            if udp_raw_wait(addr, &q, Duration::from_millis(50))
                .await
                .is_some()
            {
                return p;
            }
            if p.exited().is_some() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue 'spawn;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Clients and helpers
// ---------------------------------------------------------------------------

/// One UDP query for `name A`: the answer (if any within `wait`) and how long it took.
async fn ask(addr: SocketAddr, name: &str, wait: Duration) -> (Option<Message>, Duration) {
    let bytes = query(name, RecordType::A, None).to_vec().unwrap();
    let t = Instant::now();
    let raw = udp_raw_wait(addr, &bytes, wait).await;
    let took = t.elapsed();
    (raw.map(|r| Message::from_vec(&r).unwrap()), took)
}

/// Polls `cond` every [`POLL`] until it holds (returns the time it took) or `limit` passes.
async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    poll_until_async(limit, POLL, async || cond().then(|| t.elapsed())).await
}

fn is_up(ls: &TestLs, i: usize) -> bool {
    ls.balancer.state().backends[i].is_up()
}

fn sent(ls: &TestLs, i: usize) -> u64 {
    ls.balancer.state().backends[i].stats.sent.load(Relaxed)
}

fn wins(ls: &TestLs, i: usize) -> u64 {
    ls.balancer.state().backends[i].stats.wins.load(Relaxed)
}

fn rounds(ls: &TestLs) -> u64 {
    ls.balancer.metrics().health_rounds.load(Relaxed)
}

/// Waits for the probe loop to have completed `n` rounds.
async fn wait_rounds(ls: &TestLs, n: u64) {
    let ok = wait_until(LIMIT, || rounds(ls) >= n).await;
    assert!(ok.is_some(), "fewer than {n} health rounds");
}

// ---------------------------------------------------------------------------
// 1. A killed TS is marked down, bypassed, and marked up again
// ---------------------------------------------------------------------------

const INTERVAL_MS: u64 = 200;
const FALL: u32 = 3;
const RISE: u32 = 2;
const PROBE_TIMEOUT_MS: u64 = 50;
/// Slack on the down/up times: scheduling on a loaded 2-core box running the
/// whole suite (up to ~250 ms seen) and the 2 ms poll.
const HEALTH_MARGIN_MS: u64 = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_ts_is_marked_down_bypassed_and_marked_up_again() {
    let _load = crate::kit::timed().await;
    let dir = ZoneDir::new();
    let z1 = dir.write("ts1.txt", "one.example 10.1.1.1 A\n");
    let names: Vec<String> = (0..30).map(|i| format!("live{i}.example")).collect();
    let table2: String = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n} 10.1.2.{i} A\n"))
        .collect();
    let z2 = dir.write("ts2.txt", &table2);
    let a1 = local(free_port());
    let mut p1 = start_ts_proc(a1, &z1, "one.example").await;
    let ts2 = start_ts(ts_settings(vec![z2])).await;

    let mut cfg = ls_config(&[("ts1", a1), ("ts2", ts2.addr)]);
    cfg.order = Order::Fixed; // the one about to die is asked first
    cfg.strategy = Strategy::Hedge;
    cfg.hedge_delay_ms = HedgeDelay::Fixed(50);
    cfg.health = health_config(INTERVAL_MS, FALL, RISE, PROBE_TIMEOUT_MS);
    let ls = start_ls(cfg).await;
    wait_rounds(&ls, 1).await;
    assert!(is_up(&ls, 0) && is_up(&ls, 1));

    // Kill ts1: marked down after `fall` failed probes.
    p1.kill_hard();
    let down = wait_until(LIMIT, || !is_up(&ls, 0))
        .await
        .expect("the killed TS is never marked down");
    let max_down =
        Duration::from_millis(FALL as u64 * INTERVAL_MS + PROBE_TIMEOUT_MS + HEALTH_MARGIN_MS);
    // `fall` failures in a row cannot come sooner than (fall-1) intervals + one timeout.
    let min_down = Duration::from_millis((FALL as u64 - 1) * INTERVAL_MS + PROBE_TIMEOUT_MS - 50);
    eprintln!(
        "health: killed TS marked down after {} ms (bound {} ms = fall {FALL} x interval \
         {INTERVAL_MS} + probe timeout {PROBE_TIMEOUT_MS} + {HEALTH_MARGIN_MS} margin; floor {} ms)",
        down.as_millis(),
        max_down.as_millis(),
        min_down.as_millis()
    );
    assert!(
        down <= max_down,
        "marked down after {down:?} > {max_down:?}"
    );
    assert!(
        down >= min_down,
        "marked down after {down:?}: fewer than fall={FALL} failed probes?"
    );
    assert!(is_up(&ls, 1), "the live TS went down too");

    // Down: client queries go straight to ts2, never waiting the 50 ms hedge delay on ts1.
    let sent0 = sent(&ls, 0);
    let rounds0 = rounds(&ls);
    let t = Instant::now();
    let mut took_all = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (m, took) = ask(ls.addr, name, Duration::from_secs(2)).await;
        let m = m.unwrap_or_else(|| panic!("no answer for {name}"));
        assert_eq!(m.response_code, ResponseCode::NoError, "{name}");
        assert_eq!(
            a_addrs(&m),
            vec![Ipv4Addr::new(10, 1, 2, i as u8)],
            "{name}"
        );
        took_all.push(took);
    }
    took_all.sort();
    let worst = took_all[took_all.len() - 1];
    // An LS that still asks the dead backend first waits the 50 ms hedge delay on
    // every one of them. Allowed: one scheduling hiccup over 40 ms in 30 queries.
    let slow = took_all
        .iter()
        .filter(|t| **t >= Duration::from_millis(40))
        .count();
    assert!(
        slow <= 1,
        "{slow} of {} queries took >= 40 ms (sorted: {took_all:?}): waited on the dead backend",
        names.len()
    );
    let elapsed = t.elapsed();
    let grew = sent(&ls, 0) - sent0;
    let probe_rounds = rounds(&ls) - rounds0;
    let by_interval = elapsed.as_millis() as u64 / INTERVAL_MS + 1;
    eprintln!(
        "health: {} queries while ts1 down: median latency {:?}, worst {worst:?}; ts1 `sent` \
         grew by {grew} over {elapsed:?} ({probe_rounds} probe rounds)",
        names.len(),
        took_all[took_all.len() / 2]
    );
    assert!(
        grew <= probe_rounds + 1 && grew <= by_interval,
        "the dead backend's sent grew by {grew} in {elapsed:?} ({probe_rounds} probe rounds)"
    );

    // Restart it on the same port: marked up after `rise` good probes.
    let spawned = Instant::now();
    let _p1 = start_ts_proc(a1, &z1, "one.example").await;
    let up = wait_until(LIMIT, || is_up(&ls, 0))
        .await
        .expect("the restarted TS is never marked up");
    let since_spawn = spawned.elapsed();
    let max_up = Duration::from_millis(RISE as u64 * INTERVAL_MS + HEALTH_MARGIN_MS);
    let min_up = Duration::from_millis((RISE as u64 - 1) * INTERVAL_MS - 30);
    eprintln!(
        "health: restarted TS marked up {} ms after it answered ({} ms after spawn; bound {} \
         ms = rise {RISE} x interval {INTERVAL_MS} + {HEALTH_MARGIN_MS} margin)",
        up.as_millis(),
        since_spawn.as_millis(),
        max_up.as_millis()
    );
    assert!(up <= max_up, "marked up {up:?} after ready > {max_up:?}");
    assert!(
        since_spawn >= min_up,
        "marked up {since_spawn:?} after spawn: fewer than rise={RISE} good probes?"
    );
    let (m, _) = ask(ls.addr, "one.example", Duration::from_secs(2)).await;
    assert_eq!(
        a_addrs(&m.expect("an answer")),
        vec![Ipv4Addr::new(10, 1, 1, 1)]
    );
    ls.stop().await;
    ts2.stop().await;
}

/// docs/CONFIG.md (the LS): "active probes every interval_ms". A probe that waits its whole
/// timeout must not push the next round back, or detection takes
/// fall x (interval + timeout) instead of fall x interval + timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_probe_does_not_stretch_the_probe_period() {
    let _load = crate::kit::timed().await;
    // A backend that answers the start-up probe, then nothing, plus a live one.
    let silent = Stalled::start().await;
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", "a.example 10.9.0.1 A\n").await;
    let mut cfg = ls_config(&[("silent", silent.addr), ("live", ts.addr)]);
    // Default probe timeout (500 ms) > interval (200 ms).
    cfg.health = health_config(INTERVAL_MS, FALL, RISE, 500);
    let ls = start_ls(cfg).await;
    assert!(is_up(&ls, 0), "up after its start-up probe");
    // The periodic rounds start one interval after start-up.
    silent.mute_probes();
    let down = wait_until(LIMIT, || !is_up(&ls, 0))
        .await
        .expect("never marked down");
    // Probes at interval, 2 x interval, 3 x interval; the third fails one timeout later.
    let bound = Duration::from_millis(FALL as u64 * INTERVAL_MS + 500 + 300);
    let r = rounds(&ls);
    eprintln!(
        "health: silent backend marked down after {} ms (bound {} ms), {r} rounds",
        down.as_millis(),
        bound.as_millis()
    );
    assert!(down <= bound, "marked down after {down:?} > {bound:?}");
    ls.stop().await;
    ts.stop().await;
}

// ---------------------------------------------------------------------------
// 2. Client-query timeouts count as failures
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_query_timeouts_count_as_health_failures() {
    // Up by its start-up probe, silent to client queries.
    let (_silent, mut cfg) = silent_backend_config().await;
    // Periodic probes effectively off: a round every minute.
    cfg.health = health_config(60_000, 3, 2, 10_000);
    cfg.timeout_ms = 150;
    let ls = start_ls(cfg).await;
    for k in 1..=3u32 {
        let (m, took) = ask(ls.addr, &format!("q{k}.example"), Duration::from_secs(2)).await;
        let m = m.expect("a synthesized answer at the deadline");
        assert_eq!(m.response_code, ResponseCode::NXDomain);
        assert!(!m.authoritative, "made up, not authoritative");
        assert!(
            took >= Duration::from_millis(140),
            "answered before the deadline"
        );
        // The failure is recorded before the client gets its answer.
        assert_eq!(
            is_up(&ls, 0),
            k < 3,
            "after {k} timed-out client queries (fall 3)"
        );
        let timeouts = ls.balancer.state().backends[0].stats.timeouts.load(Relaxed);
        assert_eq!(timeouts, u64::from(k), "the backend's `timeouts` counter");
    }
    assert_eq!(rounds(&ls), 0, "a probe ran: the test proves nothing");
    ls.stop().await;
}

// ---------------------------------------------------------------------------
// 3. All down: still tried
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_all_are_down_every_backend_is_still_tried() {
    let dir = ZoneDir::new();
    let z1 = dir.write("ts1.txt", "x1.example 10.3.1.1 A\n");
    let z2 = dir.write("ts2.txt", "x2.example 10.3.2.1 A\n");
    let a1 = local(free_port());
    let a2 = local(free_port());
    let mut p1 = start_ts_proc(a1, &z1, "x1.example").await;
    let mut p2 = start_ts_proc(a2, &z2, "x2.example").await;
    let mut cfg = ls_config(&[("ts1", a1), ("ts2", a2)]);
    cfg.order = Order::Fixed;
    cfg.hedge_delay_ms = HedgeDelay::Fixed(50);
    // Quick to fall; never rises within the test.
    cfg.health = health_config(100, 2, 1000, 100);
    let ls = start_ls(cfg).await;
    wait_rounds(&ls, 1).await;
    assert!(is_up(&ls, 0) && is_up(&ls, 1));

    p1.kill_hard();
    p2.kill_hard();
    let down = wait_until(LIMIT, || !is_up(&ls, 0) && !is_up(&ls, 1)).await;
    assert!(down.is_some(), "both killed backends never marked down");

    // Bring ts2 back; health does not mark it up (rise = 1000).
    let _p2 = start_ts_proc(a2, &z2, "x2.example").await;
    let (m, took) = ask(ls.addr, "x2.example", Duration::from_secs(3)).await;
    let m = m.expect("an answer");
    eprintln!("health: all down, query answered by the restarted TS in {took:?}");
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(a_addrs(&m), vec![Ipv4Addr::new(10, 3, 2, 1)]);
    assert!(
        !is_up(&ls, 0) && !is_up(&ls, 1),
        "a backend was marked up: the test proves nothing"
    );
    assert!(ls.balancer.state().backends[1].stats.wins.load(Relaxed) >= 1);
    ls.stop().await;
}

// ---------------------------------------------------------------------------
// 4. Orders
// ---------------------------------------------------------------------------

const NAMES: usize = 20;

fn name(k: usize) -> String {
    format!("h{k}.example")
}

/// Two TS holding the same 20 names (replicated), ts1 answering 10.4.1.K and
/// ts2 10.4.2.K, so each answer says which backend gave it.
async fn replicated_pair(fault2: Fault) -> (ZoneDir, TestTs, TestTs) {
    let dir = ZoneDir::new();
    let table = |b: u8| -> String {
        (0..NAMES)
            .map(|k| format!("{} 10.4.{b}.{k} A\n", name(k)))
            .collect()
    };
    let ts1 = start_ts_table(&dir, "ts1.txt", &table(1)).await;
    let mut s2 = ts_settings(vec![dir.write("ts2.txt", &table(2))]);
    s2.fault = fault2;
    let ts2 = start_ts(s2).await;
    (dir, ts1, ts2)
}

fn order_config(ts1: &TestTs, ts2: &TestTs, order: Order) -> LsConfig {
    let mut cfg = ls_config(&[("ts1", ts1.addr), ("ts2", ts2.addr)]);
    cfg.layout = Layout::Replicated;
    cfg.strategy = Strategy::Hedge;
    cfg.order = order;
    cfg.hedge_delay_ms = HedgeDelay::Fixed(500); // fast TS: no hedges, sent = first tries
    cfg
}

/// Asks `name(k)` and returns which backend (0 or 1) answered it.
async fn ask_which(ls: &TestLs, k: usize) -> usize {
    let (m, _) = ask(ls.addr, &name(k), Duration::from_secs(2)).await;
    let m = m.unwrap_or_else(|| panic!("no answer for {}", name(k)));
    assert_eq!(m.response_code, ResponseCode::NoError, "{}", name(k));
    let a = a_addrs(&m);
    assert_eq!(a.len(), 1, "{}: {a:?}", name(k));
    let [_, _, b, kk] = a[0].octets();
    assert_eq!(usize::from(kk), k);
    usize::from(b) - 1
}

/// Queries `n` times, names in turn; returns (sent, wins) per backend,
/// [`report`]ed as `order`.
async fn run_sequential(ls: &TestLs, n: usize, order: &str) -> [(u64, u64); 2] {
    let split = run_names(ls, (0..n).map(|i| i % NAMES)).await.0;
    report(order, &split);
    split
}

/// Queries the names `ks` one after another: (sent, wins) per backend
/// meanwhile, and the backends each name landed on, in turn.
async fn run_names(
    ls: &TestLs,
    ks: impl IntoIterator<Item = usize>,
) -> ([(u64, u64); 2], BTreeMap<usize, Vec<usize>>) {
    let before = [(sent(ls, 0), wins(ls, 0)), (sent(ls, 1), wins(ls, 1))];
    let mut landed: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for k in ks {
        landed.entry(k).or_default().push(ask_which(ls, k).await);
    }
    let split = [0, 1].map(|b| (sent(ls, b) - before[b].0, wins(ls, b) - before[b].1));
    (split, landed)
}

fn report(order: &str, split: &[(u64, u64); 2]) {
    let total = (split[0].0 + split[1].0).max(1) as f64;
    eprintln!(
        "order {order}: ts1 sent {} wins {} ({:.1}%), ts2 sent {} wins {} ({:.1}%)",
        split[0].0,
        split[0].1,
        100.0 * split[0].0 as f64 / total,
        split[1].0,
        split[1].1,
        100.0 * split[1].0 as f64 / total
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_round_robin_splits_evenly() {
    let (_dir, ts1, ts2) = replicated_pair(Fault::default()).await;
    let ls = start_ls(order_config(&ts1, &ts2, Order::RoundRobin)).await;
    let split = run_sequential(&ls, 200, "round-robin").await;
    assert_eq!(ls.balancer.metrics().hedges.load(Relaxed), 0);
    assert_eq!(split[0].0 + split[1].0, 200);
    // One rotation counter per LS (`LsState::tick`, shared by all workers),
    // one step per client query: sequential queries alternate exactly.
    for (b, (s, w)) in split.iter().enumerate() {
        assert_eq!(
            *s,
            100,
            "ts{}: sent {s} of 200 (round-robin alternates)",
            b + 1
        );
        assert_eq!(s, w, "ts{}: every query sent is a win here", b + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_fixed_sends_everything_to_the_first() {
    let (_dir, ts1, ts2) = replicated_pair(Fault::default()).await;
    let ls = start_ls(order_config(&ts1, &ts2, Order::Fixed)).await;
    let split = run_sequential(&ls, 200, "fixed").await;
    assert_eq!(split[0], (200, 200));
    assert_eq!(split[1], (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_weighted_random_follows_the_weights() {
    // 800 queries rather than 200: the ±7% band is then 4.6 standard deviations wide.
    const N: usize = 800;
    let (_dir, ts1, ts2) = replicated_pair(Fault::default()).await;
    let mut cfg = order_config(&ts1, &ts2, Order::WeightedRandom);
    cfg.backend[0].weight = 1;
    cfg.backend[1].weight = 3;
    let ls = start_ls(cfg).await;
    let split = run_sequential(&ls, N, "weighted-random 1:3").await;
    assert_eq!(ls.balancer.metrics().hedges.load(Relaxed), 0);
    assert_eq!((split[0].0 + split[1].0) as usize, N);
    let share2 = split[1].0 as f64 / N as f64;
    assert!(
        (share2 - 0.75).abs() <= 0.07,
        "ts2 (weight 3) got {:.1}% of first tries, expected 75% ± 7%",
        share2 * 100.0
    );
}

/// A mix of the 20 names, 10 rounds, each round in another order (so neither
/// the query count nor the position of a name lines up with a rotation).
fn mixed_rounds() -> Vec<usize> {
    (0..10)
        .flat_map(|r| (0..NAMES).map(move |j| (7 * j + 3 * r) % NAMES))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_sticky_keeps_each_name_on_the_backend_that_answered_it() {
    let (_dir, ts1, ts2) = replicated_pair(Fault::default()).await;
    let mut cfg = order_config(&ts1, &ts2, Order::Sticky);
    // Probes can never flip a backend (fall = rise = 1000): the test sets up/down itself.
    cfg.health = health_config(60_000, 1000, 1000, 500);
    let ls = start_ls(cfg).await;
    let state = ls.balancer.state();
    // First answers: names 0..9 while only ts2 is usable, names 10..19 while only ts1 is.
    state.backends[0].set_up(false);
    for k in 0..NAMES / 2 {
        assert_eq!(ask_which(&ls, k).await, 1);
    }
    state.backends[0].set_up(true);
    state.backends[1].set_up(false);
    for k in NAMES / 2..NAMES {
        assert_eq!(ask_which(&ls, k).await, 0);
    }
    state.backends[1].set_up(true);
    // Now both are up: every later query of a name goes to the backend that answered it.
    let (split, landed) = run_names(&ls, mixed_rounds()).await;
    report("sticky", &split);
    for (k, on) in &landed {
        let want = usize::from(*k < NAMES / 2);
        assert!(
            on.iter().all(|&b| b == want),
            "{} first answered by ts{}, later by {:?}",
            name(*k),
            want + 1,
            on.iter().map(|b| b + 1).collect::<Vec<_>>()
        );
    }
    assert_eq!(split, [(100, 100), (100, 100)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_consistent_hash_pins_names_and_spreads_them() {
    let (_dir, ts1, ts2) = replicated_pair(Fault::default()).await;
    let ls = start_ls(order_config(&ts1, &ts2, Order::ConsistentHash)).await;
    let (split, landed) = run_names(&ls, mixed_rounds()).await;
    report("consistent-hash", &split);
    let mut per_backend = [0usize; 2];
    for (k, on) in &landed {
        assert!(
            on.iter().all(|&b| b == on[0]),
            "{} landed on {:?}",
            name(*k),
            on.iter().map(|b| b + 1).collect::<Vec<_>>()
        );
        per_backend[on[0]] += 1;
    }
    eprintln!(
        "order consistent-hash: {} names on ts1, {} on ts2",
        per_backend[0], per_backend[1]
    );
    // Rendezvous hashing over two backends sends each name to either with
    // probability 1/2: 20 names land 10 ± 2.2 on each. The hash is stable
    // (FNV-1a of the name, the backends' names), so this split is the same
    // on every run; at least 6 of 20 on each (a fair split is in 6..=14 with
    // probability 0.96) says the hash really spreads.
    assert!(
        per_backend.iter().all(|&n| n >= 6),
        "20 names not spread: {per_backend:?} names on ts1, ts2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn order_least_outstanding_avoids_a_slow_backend() {
    const CLIENTS: usize = 20;
    const EACH: usize = 20;
    let slow = delay_all(30);
    let (_dir, ts1, ts2) = replicated_pair(slow).await;
    let mut cfg = order_config(&ts1, &ts2, Order::LeastOutstanding);
    cfg.hedge_delay_ms = HedgeDelay::Fixed(200);
    let ls = start_ls(cfg).await;
    let addr = ls.addr;
    let t = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(async move {
                for i in 0..EACH {
                    let n = name((c + i) % NAMES);
                    let (m, _) = ask(addr, &n, Duration::from_secs(2)).await;
                    assert_eq!(m.expect("an answer").response_code, ResponseCode::NoError);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let split = [(sent(&ls, 0), wins(&ls, 0)), (sent(&ls, 1), wins(&ls, 1))];
    let hedges = ls.balancer.metrics().hedges.load(Relaxed);
    report("least-outstanding (ts2 +30 ms)", &split);
    eprintln!(
        "order least-outstanding: {} queries from {CLIENTS} clients in {:?}, {hedges} hedges",
        CLIENTS * EACH,
        t.elapsed()
    );
    // First tries sent to ts2 are at most everything sent to it.
    let total = (CLIENTS * EACH) as f64;
    let share2 = split[1].0 as f64 / total;
    assert!(
        share2 < 0.35,
        "slow ts2 got {:.1}% of first tries",
        share2 * 100.0
    );
    assert!(
        split[1].0 > 0,
        "the slow backend got nothing: under load it should take some (not `fixed`)"
    );
}

// ---------------------------------------------------------------------------
// 5. ACL
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_refuses_clients_outside_allow_over_udp_and_closes_their_tcp() {
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", "acl.example 10.5.0.1 A\n").await;
    let mut cfg = ls_config(&[("ts1", ts.addr)]);
    cfg.allow = vec!["10.0.0.0/8".parse().unwrap()];
    let strict = start_ls(cfg).await;
    let open = start_ls(ls_config(&[("ts1", ts.addr)])).await;

    let mut q = query("AcL.ExAmple", RecordType::A, None);
    q.metadata.id = 0x5151;
    let raw = q.to_vec().unwrap();
    let by_udp = udp_raw(strict.addr, &raw)
        .await
        .expect("an answer over udp");
    // Over TCP the connection is closed right after accept: no answer at all.
    let mut s = TcpStream::connect(strict.addr).await.unwrap();
    let _ = crate::kit::write_frame(&mut s, &raw).await;
    assert!(tcp_recv(&mut s).await.is_none(), "an answer over tcp");
    {
        let (how, back) = ("udp", by_udp);
        let m = Message::from_vec(&back).unwrap();
        assert_eq!(m.response_code, ResponseCode::Refused, "{how}");
        assert_eq!(m.metadata.id, 0x5151, "{how}");
        assert_eq!(m.message_type, MessageType::Response, "{how}");
        assert!(m.answers.is_empty(), "{how}");
        assert_eq!(m.queries.len(), 1, "{how}");
        // The question is echoed byte for byte (case kept).
        assert_eq!(
            back.get(12..raw.len()),
            raw.get(12..),
            "{how}: question not echoed"
        );
    }
    assert_eq!(sent(&strict, 0), 0, "a refused query was forwarded");
    assert_eq!(strict.balancer.metrics().refused_acl.load(Relaxed), 1);
    assert_eq!(strict.balancer.metrics().tcp_acl_refused.load(Relaxed), 1);

    for (how, m) in [
        ("udp", udp(open.addr, &q).await),
        ("tcp", tcp(open.addr, &q).await),
    ] {
        assert_eq!(m.response_code, ResponseCode::NoError, "{how}");
        assert_eq!(a_addrs(&m), vec![Ipv4Addr::new(10, 5, 0, 1)], "{how}");
    }
    strict.stop().await;
    open.stop().await;
    ts.stop().await;
}

// ---------------------------------------------------------------------------
// 6. Rate limit
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_answers_about_the_limit_and_slips_half_the_rest() {
    let _load = crate::kit::timed().await;
    const BURST: u16 = 1000;
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", "rl.example 10.6.0.1 A\n").await;
    let mut cfg = ls_config(&[("ts1", ts.addr)]);
    cfg.rate_limit_qps = 100;
    let ls = start_ls(cfg).await;

    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let rx = sock.clone();
    let receiver = tokio::spawn(async move {
        let mut got: BTreeMap<u16, Message> = BTreeMap::new();
        let mut buf = vec![0u8; 4096];
        // Ends 500 ms after the last datagram (the senders finish within ~1 s).
        let hard = Instant::now() + Duration::from_secs(5);
        while Instant::now() < hard {
            match tokio::time::timeout(Duration::from_millis(500), rx.recv_from(&mut buf)).await {
                Ok(Ok((n, _))) => {
                    let m = Message::from_vec(&buf[..n]).unwrap();
                    got.insert(m.metadata.id, m);
                }
                _ => break,
            }
        }
        got
    });
    // 1,000 queries in 100 batches of 10, one batch every 10 ms: about one second.
    let start = tokio::time::Instant::now();
    for batch in 0..BURST / 10 {
        tokio::time::sleep_until(start + Duration::from_millis(u64::from(batch) * 10)).await;
        for j in 0..10 {
            let mut q = query("rl.example", RecordType::A, None);
            q.metadata.id = batch * 10 + j;
            sock.send_to(&q.to_vec().unwrap(), ls.addr).await.unwrap();
        }
    }
    let send_time = start.elapsed();
    let got = receiver.await.unwrap();
    let normal = got
        .values()
        .filter(|m| {
            m.response_code == ResponseCode::NoError
                && !m.truncation
                && a_addrs(m) == vec![Ipv4Addr::new(10, 6, 0, 1)]
        })
        .count();
    let slipped = got
        .values()
        .filter(|m| m.truncation && m.answers.is_empty() && m.queries.len() == 1)
        .count();
    let dropped = usize::from(BURST) - got.len();
    let rest = usize::from(BURST) - normal;
    eprintln!(
        "rate limit 100 qps: {BURST} queries in {send_time:?}: {normal} answered, {slipped} \
         TC=1, {dropped} dropped"
    );
    assert_eq!(
        normal + slipped,
        got.len(),
        "answers neither normal nor TC=1 with no records"
    );
    assert!(
        send_time < Duration::from_millis(1300),
        "the burst took {send_time:?}: the bound below assumes ~1 s"
    );
    assert!(
        (100..=250).contains(&normal),
        "{normal} normal answers (expected one second's bucket plus ~1 s of refill)"
    );
    let half = rest as f64 / 2.0;
    assert!(
        (slipped as f64 - half).abs() <= 0.1 * rest as f64,
        "of {rest} over the limit, {slipped} slipped (TC=1) and {dropped} dropped"
    );
    // The LS's own accounting: every query either passed or was limited.
    let passed = ls.balancer.metrics().queries.load(Relaxed) as usize;
    let limited = ls.balancer.metrics().rate_limited.load(Relaxed) as usize;
    assert_eq!(
        passed + limited,
        usize::from(BURST),
        "passed {passed}, limited {limited}"
    );
    assert!(normal <= passed);

    // TCP from the same client is not limited.
    let m = tcp(ls.addr, &query("rl.example", RecordType::A, None)).await;
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert!(!m.truncation);
    assert_eq!(a_addrs(&m), vec![Ipv4Addr::new(10, 6, 0, 1)]);
    ls.stop().await;
    ts.stop().await;
}

// ---------------------------------------------------------------------------
// 7. Reload
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_switches_backends_for_new_queries_and_finishes_those_in_flight() {
    let dir = ZoneDir::new();
    let mut s1 = ts_settings(vec![dir.write("ts1.txt", "old.example 10.7.1.1 A\n")]);
    s1.fault = delay_all(300);
    let ts1 = start_ts(s1).await;
    let ts3 = start_ts_table(&dir, "ts3.txt", "new.example 10.7.3.1 A\n").await;
    let mut cfg1 = ls_config(&[("ts1", ts1.addr)]);
    cfg1.timeout_ms = 2000;
    let ls = start_ls(cfg1.clone()).await;
    let old = ls.balancer.state();

    let addr = ls.addr;
    let in_flight = tokio::spawn(async move { ask(addr, "old.example", LIMIT).await });
    let started = wait_until(LIMIT, || {
        old.backends[0].stats.outstanding.load(Relaxed) >= 1
    })
    .await;
    assert!(started.is_some(), "the slow query never reached ts1");

    let mut cfg2 = cfg1.clone();
    cfg2.backend = ls_config(&[("ts3", ts3.addr)]).backend;
    ls.balancer.reload(&cfg2);
    let names: Vec<String> = ls
        .balancer
        .state()
        .backends
        .iter()
        .map(|b| b.name.clone())
        .collect();
    assert_eq!(names, ["ts3"]);

    let (m, _) = ask(ls.addr, "new.example", Duration::from_secs(2)).await;
    let m = m.expect("an answer from ts3");
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(a_addrs(&m), vec![Ipv4Addr::new(10, 7, 3, 1)]);
    assert!(
        !in_flight.is_finished(),
        "the old query ended before the new one was answered"
    );
    let (m, _) = ask(ls.addr, "old.example", Duration::from_secs(2)).await;
    assert_eq!(m.expect("an answer").response_code, ResponseCode::NXDomain);
    assert_eq!(
        old.backends[0].stats.sent.load(Relaxed),
        1,
        "ts1 asked after the reload"
    );

    let (m, took) = in_flight.await.unwrap();
    let m = m.expect("the query in flight on the old snapshot got no answer");
    eprintln!("reload: query in flight across the reload answered after {took:?}");
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(a_addrs(&m), vec![Ipv4Addr::new(10, 7, 1, 1)]);
    assert!(took >= Duration::from_millis(300));
    ls.stop().await;
    ts1.stop().await;
    ts3.stop().await;
}

fn ls_toml(listen: SocketAddr, backend: (&str, SocketAddr), extra: &str) -> String {
    format!(
        "[ls]\nlisten = [\"{listen}\"]\nworkers = 1\ntimeout_ms = 1000\n{extra}\n\
         [ls.health]\ninterval_ms = 200\n\n\
         [[ls.backend]]\nname = \"{}\"\naddr = \"{}\"\n",
        backend.0, backend.1
    )
}

/// Polls `addr` with `name A` until the answer is NOERROR with `want`.
async fn wait_answer(addr: SocketAddr, name: &str, want: Ipv4Addr) -> Option<Duration> {
    let t = Instant::now();
    poll_until_async(LIMIT, Duration::from_millis(10), async || {
        let (m, _) = ask(addr, name, Duration::from_millis(200)).await;
        m.is_some_and(|m| m.response_code == ResponseCode::NoError && a_addrs(&m) == [want])
            .then(|| t.elapsed())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_ls_process_and_refuses_a_broken_config() {
    let dir = ZoneDir::new();
    let ipa = Ipv4Addr::new(10, 8, 0, 1);
    let ipb = Ipv4Addr::new(10, 8, 0, 2);
    let ta = start_ts_table(&dir, "a.txt", "a.example 10.8.0.1 A\n").await;
    let tb = start_ts_table(&dir, "b.txt", "b.example 10.8.0.2 A\n").await;
    let tc = start_ts_table(&dir, "c.txt", "c.example 10.8.0.3 A\n").await;
    let listen = local(free_port());
    let config: PathBuf = dir.path().join("config.toml");
    std::fs::write(&config, ls_toml(listen, ("a", ta.addr), "")).unwrap();
    let mut ls = spawn(&["ls", "-c", config.to_str().unwrap()]);
    let ready = wait_answer(listen, "a.example", ipa).await;
    assert!(
        ls.exited().is_none(),
        "dnslb ls exited:\n{}",
        ls.stderr_now()
    );
    assert!(ready.is_some(), "dnslb ls not ready:\n{}", ls.stderr_now());

    // A new backend, SIGHUP: used.
    std::fs::write(&config, ls_toml(listen, ("b", tb.addr), "")).unwrap();
    ls.signal(Signal::HUP);
    let took = wait_answer(listen, "b.example", ipb).await;
    assert!(
        took.is_some(),
        "new backend not used after SIGHUP:\n{}",
        ls.stderr_now()
    );
    eprintln!("reload: dnslb ls used the new backend {took:?} after SIGHUP");
    let (m, _) = ask(listen, "a.example", Duration::from_secs(2)).await;
    assert_eq!(
        m.expect("an answer").response_code,
        ResponseCode::NXDomain,
        "the old backend is still asked"
    );

    // A broken config (unknown key) naming yet another backend: refused, old one serves.
    std::fs::write(
        &config,
        ls_toml(listen, ("c", tc.addr), "no_such_key = true"),
    )
    .unwrap();
    ls.signal(Signal::HUP);
    let logged = wait_until(LIMIT, || ls.stderr_now().contains("reload refused")).await;
    assert!(
        logged.is_some(),
        "no `reload refused` line:\n{}",
        ls.stderr_now()
    );
    let line = ls
        .stderr_now()
        .lines()
        .find(|l| l.contains("reload refused"))
        .unwrap()
        .to_owned();
    eprintln!("reload: {line}");
    assert!(
        line.contains("no_such_key"),
        "the line does not name the problem: {line}"
    );
    let (m, _) = ask(listen, "b.example", Duration::from_secs(2)).await;
    let m = m.expect("an answer after the refused reload");
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(a_addrs(&m), vec![ipb]);
    let (m, _) = ask(listen, "c.example", Duration::from_secs(2)).await;
    assert_eq!(
        m.expect("an answer").response_code,
        ResponseCode::NXDomain,
        "the broken config's backend is used"
    );
    assert!(
        ls.exited().is_none(),
        "dnslb ls died on a broken reload:\n{}",
        ls.stderr_now()
    );
    drop(ls);
    ta.stop().await;
    tb.stop().await;
    tc.stop().await;
}

// ---------------------------------------------------------------------------
// every_queries: a sweep after every N client queries
// ---------------------------------------------------------------------------

/// docs/CONFIG.md (the LS): "active probes every `interval_ms` and after every `every_queries`
/// client queries". With the interval at a minute, the 4th client query (and
/// not the 3rd) triggers a sweep, which finds the silent backend and marks it
/// down (fall 1) long before the interval would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_queries_triggers_a_probe_sweep() {
    let _load = crate::kit::timed().await;
    let dir = ZoneDir::new();
    let live = start_ts_table(&dir, "t.txt", "e.example 10.7.0.1 A\n").await;
    let silent = Stalled::start().await;
    let mut cfg = ls_config(&[("live", live.addr), ("silent", silent.addr)]);
    cfg.order = Order::Fixed; // client queries only ever reach the live one
    cfg.strategy = Strategy::Hedge;
    cfg.hedge_delay_ms = HedgeDelay::Fixed(1_000);
    cfg.health = HealthConfig {
        every_queries: 4,
        ..health_config(60_000, 1, 1, 50)
    };
    let ls = start_ls(cfg).await;
    // Up by its start-up probe; from now on it answers nothing.
    silent.mute_probes();
    for _ in 0..3 {
        let (m, _) = ask(ls.addr, "e.example", Duration::from_secs(2)).await;
        assert_eq!(m.expect("an answer").response_code, ResponseCode::NoError);
    }
    assert_eq!(rounds(&ls), 0, "no sweep before the 4th query");
    assert!(is_up(&ls, 1));
    let (m, _) = ask(ls.addr, "e.example", Duration::from_secs(2)).await;
    assert_eq!(m.expect("an answer").response_code, ResponseCode::NoError);
    let took = wait_until(LIMIT, || !is_up(&ls, 1))
        .await
        .expect("the sweep never marked the silent backend down");
    eprintln!(
        "every_queries: silent backend down {} ms after the 4th query",
        took.as_millis()
    );
    assert!(
        took < Duration::from_secs(2),
        "down after {took:?}: not the query trigger"
    );
    assert!(is_up(&ls, 0), "the live backend stays up");
    ls.stop().await;
    live.stop().await;
}
