//! The partitioned layout's negative answers (docs/CONFIG.md (the LS)): a NODATA from one
//! backend is no more final than an NXDOMAIN, the first positive answer wins
//! whichever arrives first, a negative is passed on only when every backend
//! gave one, and a backend that was skipped as down or stayed silent makes
//! the others' negatives unproven (the `on_timeout` answer, at once). Also:
//! the hedge budget never turns a dead first backend into a wrong answer.
//!
//! In-process TS and LS on 127.0.0.1:0; the TS's fault knob delays the
//! positive backend so that the negative answer always arrives first.
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{RData, RecordType};

use dnslb::config::{HedgeDelay, Layout, LsConfig, OnTimeout, Order, Strategy};

use crate::kit::poll_until_async;
use crate::kit::{STRATEGIES, assert_echo, exchange, strategy_config, wire_query};
use crate::kit::{
    Stalled, TestLs, TestTs, ZoneDir, a_addrs, delay_all, start_ls, start_ts, start_ts_table,
    ts_settings,
};

/// Holds `rutgers.com` (and nothing under it).
const POSITIVE: &str = "rutgers.com 10.20.0.1 A\nonly.pos.test 10.20.0.2 A\n";
/// Holds `www.rutgers.com`: `rutgers.com` is an empty non-terminal here.
const ENT: &str = "www.rutgers.com 10.20.0.3 A\nonly.ent.test 10.20.0.4 A\n";
/// How late the positive backend answers: its negative partner always wins the race.
const POSITIVE_DELAY_MS: u64 = 30;
/// Queries per strategy.
const QUERIES: u16 = 200;
/// Queries sent at once.
const BATCH: usize = 50;

struct Pair {
    ent: TestTs,
    pos: TestTs,
    _dir: ZoneDir,
}

/// The ENT backend (fast) and the positive one (delayed).
async fn start_pair() -> Pair {
    let dir = ZoneDir::new();
    let ent = start_ts_table(&dir, "ent.txt", ENT).await;
    let mut pos = ts_settings(vec![dir.write("pos.txt", POSITIVE)]);
    pos.fault = delay_all(POSITIVE_DELAY_MS);
    let pos = start_ts(pos).await;
    Pair {
        ent,
        pos,
        _dir: dir,
    }
}

/// Partitioned, the ENT backend asked first, and a hedge delay / per-try
/// timeout far above the positive backend's delay: moving on after the
/// negative answer must not wait for either.
fn ent_first(p: &Pair, strategy: Strategy) -> LsConfig {
    let mut c = strategy_config(
        &[("ent", p.ent.addr), ("pos", p.pos.addr)],
        strategy,
        Layout::Partitioned,
    );
    c.order = Order::Fixed;
    c.hedge_delay_ms = HedgeDelay::Fixed(1_000);
    c.try_timeout_ms = 1_000;
    c.timeout_ms = 1_500;
    c
}

/// Asks `name`/`qtype` `n` times (in batches), checking each answer's echo;
/// returns the decoded answers.
async fn ask_many(ls: &TestLs, name: &str, qtype: RecordType, n: u16) -> Vec<Message> {
    let mut out = Vec::new();
    let ids: Vec<u16> = (1..=n).collect();
    for chunk in ids.chunks(BATCH) {
        let asks = chunk.iter().map(|&id| async move {
            let q = wire_query(name, qtype, id, false, true);
            let (raw, m, _) = exchange(ls.addr, &q).await;
            assert_echo(&q, &raw);
            m
        });
        out.extend(futures_util::future::join_all(asks).await);
    }
    out
}

/// The EDE (code, text) of an answer, if any.
fn ede(m: &Message) -> Option<(u16, String)> {
    let edns = m.edns.as_ref()?;
    let Some(EdnsOption::Unknown(15, data)) = edns.option(EdnsCode::Unknown(15)) else {
        return None;
    };
    let code = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
    Some((code, String::from_utf8_lossy(data.get(2..)?).into_owned()))
}

/// A made-up answer: AA=0, RA=0, the SOA with `synth_ttl`, EDE 22 naming `who`.
fn assert_synthesized(m: &Message, rcode: ResponseCode, synth_ttl: u32, who: &str, ctx: &str) {
    assert_eq!(m.response_code, rcode, "{ctx}");
    assert!(
        !m.authoritative,
        "{ctx}: made up, not the live backend's AA=1 answer"
    );
    assert!(!m.recursion_available, "{ctx}: RA=0");
    assert!(m.answers.is_empty(), "{ctx}");
    let soa = m.authorities.first().expect("an SOA in authority");
    assert_eq!(soa.ttl, synth_ttl, "{ctx}: SOA TTL = synth_ttl");
    assert!(matches!(soa.data, RData::SOA(_)), "{ctx}");
    let (code, text) = ede(m).unwrap_or_else(|| panic!("{ctx}: no EDE in {m:?}"));
    assert_eq!(code, 22, "{ctx}: EDE 22 No Reachable Authority");
    assert!(text.contains(who), "{ctx}: EDE text names {who}: {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_positive_answer_wins_over_an_empty_non_terminal_under_every_strategy() {
    let pair = start_pair().await;
    for strategy in STRATEGIES {
        let ls = start_ls(ent_first(&pair, strategy)).await;
        for m in ask_many(&ls, "RuTgErS.com.", RecordType::A, QUERIES).await {
            assert_eq!(m.response_code, ResponseCode::NoError, "{strategy}");
            assert_eq!(
                a_addrs(&m),
                vec![Ipv4Addr::new(10, 20, 0, 1)],
                "{strategy}: the ENT's NODATA was passed on instead of the record"
            );
        }
        // And an NXDOMAIN first (the name is unknown to the fast backend).
        for m in ask_many(&ls, "only.pos.test.", RecordType::A, 20).await {
            assert_eq!(a_addrs(&m), vec![Ipv4Addr::new(10, 20, 0, 2)], "{strategy}");
        }
        let wins = ls.balancer.state().backends[1].stats.wins.load(Relaxed);
        assert_eq!(
            wins,
            u64::from(QUERIES) + 20,
            "{strategy}: pos won them all"
        );
        assert_eq!(ls.synthesized(), 0, "answers the LS made up");
        ls.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_negative_passes_nodata_if_any_said_so_else_nxdomain() {
    let pair = start_pair().await;
    for strategy in STRATEGIES {
        let ls = start_ls(ent_first(&pair, strategy)).await;
        // www.rutgers.com AAAA: NODATA on ent, NXDOMAIN on pos -> NODATA.
        let q = wire_query("www.rutgers.com.", RecordType::AAAA, 0x4242, false, true);
        let (raw, m, _) = exchange(ls.addr, &q).await;
        assert_echo(&q, &raw);
        assert_eq!(m.response_code, ResponseCode::NoError, "{strategy}");
        assert!(m.answers.is_empty(), "{strategy}");
        assert!(m.authoritative, "{strategy}: a backend's own NODATA");
        // Nowhere: NXDOMAIN from both, the backends' own (AA=1, SOA TTL from the zone).
        let q = wire_query("nowhere.rutgers.com.", RecordType::A, 0x4343, false, true);
        let (raw, m, _) = exchange(ls.addr, &q).await;
        assert_echo(&q, &raw);
        assert_eq!(m.response_code, ResponseCode::NXDomain, "{strategy}");
        assert!(m.authoritative, "{strategy}: a backend's own NXDOMAIN");
        assert_eq!(ls.synthesized(), 0, "answers the LS made up");
        ls.stop().await;
    }
}

/// Waits until backend `i` of `ls` is marked down.
async fn wait_down(ls: &TestLs, i: usize) {
    let st = || ls.balancer.state();
    poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(5),
        async || (!st().backends[i].is_up()).then_some(()),
    )
    .await
    .expect("the backend was never marked down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_marked_down_makes_the_others_negative_unproven() {
    let _load = crate::kit::timed().await;
    for strategy in STRATEGIES {
        let pair = start_pair().await;
        let mut c = ent_first(&pair, strategy);
        c.timeout_ms = 3_000;
        c.synth_ttl = 4;
        c.health.interval_ms = 100;
        c.health.timeout_ms = 100;
        c.health.fall = 1;
        let ls = start_ls(c).await;
        assert!(ls.balancer.state().backends.iter().all(|b| b.is_up()));
        // The positive backend dies and is marked down.
        let Pair { ent, pos, _dir } = pair;
        pos.stop().await;
        wait_down(&ls, 1).await;
        for name in ["rutgers.com.", "only.pos.test."] {
            let ctx = format!("{strategy} {name}");
            let q = wire_query(name, RecordType::A, 0x5151, true, true);
            let started = std::time::Instant::now();
            let (raw, m, _) = exchange(ls.addr, &q).await;
            assert_echo(&q, &raw);
            assert_synthesized(&m, ResponseCode::NXDomain, 4, "pos", &ctx);
            // At once: the live backend's answer was the last one to wait for.
            assert!(
                started.elapsed() < Duration::from_millis(2_000),
                "{ctx}: waited {:?} with timeout_ms 3000",
                started.elapsed()
            );
        }
        // A name the live backend holds still answers.
        let q = wire_query("only.ent.test.", RecordType::A, 0x5252, false, false);
        let (_, m, _) = exchange(ls.addr, &q).await;
        assert_eq!(a_addrs(&m), vec![Ipv4Addr::new(10, 20, 0, 4)], "{strategy}");
        ls.stop().await;
        ent.stop().await;
    }
}

/// A stalled backend (up by its probes, silent to queries) beside a live
/// one: at the deadline the made-up answer, never the live NXDOMAIN; and
/// once the client timeouts have marked it down, the made-up answer at
/// once, still never the live NXDOMAIN (a resolver in front would cache it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_backend_never_lets_the_live_nxdomain_through() {
    for on_timeout in [OnTimeout::Nxdomain, OnTimeout::Servfail] {
        let dir = ZoneDir::new();
        let live = start_ts_table(&dir, "live.txt", ENT).await;
        for strategy in STRATEGIES {
            let hole = Stalled::start().await;
            let ctx = format!("{strategy} {on_timeout}");
            let mut c = strategy_config(
                &[("live", live.addr), ("hole", hole.addr)],
                strategy,
                Layout::Partitioned,
            );
            c.order = Order::Fixed;
            c.timeout_ms = 400;
            c.try_timeout_ms = 100;
            c.hedge_delay_ms = HedgeDelay::Fixed(50);
            c.on_timeout = on_timeout;
            c.synth_ttl = 5;
            c.health.fall = 1;
            let ls = start_ls(c).await;
            let rcode = match on_timeout {
                OnTimeout::Servfail => ResponseCode::ServFail,
                _ => ResponseCode::NXDomain,
            };
            // The hole is up: asked, silent, the deadline answers.
            let q = wire_query("rutgers.com.", RecordType::A, 0x6161, true, true);
            let (raw, m, took) = exchange(ls.addr, &q).await;
            assert_echo(&q, &raw);
            assert_synthesized(&m, rcode, 5, "hole", &ctx);
            assert!(took >= Duration::from_millis(400), "{ctx}: {took:?}");
            // That timeout marked it down (fall 1); its probes stop too.
            hole.mute_probes();
            wait_down(&ls, 1).await;
            for id in 0..20u16 {
                let q = wire_query("rutgers.com.", RecordType::A, 0x6200 + id, true, true);
                let (raw, m, _) = exchange(ls.addr, &q).await;
                assert_echo(&q, &raw);
                assert_synthesized(&m, rcode, 5, "hole", &format!("{ctx} (down)"));
            }
            ls.stop().await;
        }
    }
}

/// docs/CONFIG.md (the LS): a query the budget kept on its first backend still moves on to
/// the next once `try_timeout_ms` has passed without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_hedge_budget_still_fails_over_after_the_try_timeout() {
    let _load = crate::kit::timed().await;
    let dir = ZoneDir::new();
    let live = start_ts_table(&dir, "live.txt", POSITIVE).await;
    // Up by its probes (so it is asked first), silent to queries: it just died.
    let dead = Stalled::start().await;
    let mut c = strategy_config(
        &[("dead", dead.addr), ("live", live.addr)],
        Strategy::Hedge,
        Layout::Replicated,
    );
    c.order = Order::Fixed;
    c.hedge_delay_ms = HedgeDelay::Fixed(20);
    c.hedge_budget_pct = 0.0;
    c.try_timeout_ms = 200;
    c.timeout_ms = 1_500;
    let ls = start_ls(c).await;
    for id in 0..5u16 {
        let q = wire_query("rutgers.com.", RecordType::A, 0x7000 + id, false, false);
        let (raw, m, took) = exchange(ls.addr, &q).await;
        assert_echo(&q, &raw);
        assert_eq!(m.response_code, ResponseCode::NoError, "query {id}");
        assert_eq!(a_addrs(&m), vec![Ipv4Addr::new(10, 20, 0, 1)], "query {id}");
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_millis(1_200),
            "query {id}: answered after {took:?}: not the failover at try_timeout_ms"
        );
    }
    let met = ls.balancer.metrics();
    assert_eq!(met.hedges.load(Relaxed), 0, "the budget allowed no hedge");
    assert!(met.hedges_refused.load(Relaxed) >= 5, "refusals counted");
    assert_eq!(met.synthesized.load(Relaxed), 0);
    assert_eq!(
        dead.queries.load(Relaxed),
        5,
        "the dead backend was asked first"
    );
    ls.stop().await;
}

/// `dnslb resolve` through a partitioned LS prints the record a name has on
/// one backend although it is an empty non-terminal on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_prints_the_record_behind_an_empty_non_terminal() {
    let pair = start_pair().await;
    let ls = start_ls(ent_first(&pair, Strategy::Race)).await;
    let input = "rutgers.com\nwww.rutgers.com\nnowhere.rutgers.com\n";
    let addr: SocketAddr = ls.addr;
    let out = tokio::task::spawn_blocking(move || {
        crate::kit::run_dnslb(
            &["resolve", "-s", &addr.to_string()],
            std::path::Path::new("/"),
            Some(input.as_bytes()),
            Duration::from_secs(20),
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "rutgers.com 10.20.0.1 A\nwww.rutgers.com 10.20.0.3 A\nnowhere.rutgers.com - Error:HOST NOT FOUND\n"
    );
    ls.stop().await;
}
