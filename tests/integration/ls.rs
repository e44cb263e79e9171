//! The load balancer over real sockets (docs/CONFIG.md (the LS)): strategies × layouts, the
//! partitioned NXDOMAIN rule, the deadline and its synthesized answer, what
//! wins, hedging, sequential moves, a burst from one client, RFC 5452 checks
//! against a forging backend, TC over TCP, the in-flight bound, and the
//! per-backend counters.
//!
//! Backends are either in-process TS (from the kit) or fake servers
//! written here: a UDP socket on 127.0.0.1:0 driven by a task that answers
//! with an error rcode, stays silent, answers TC=1 (with a TCP listener on
//! the same port serving the full answer), or forges responses.
//!
//! Timing: nothing sleeps to wait for readiness (every server is bound before
//! the LS starts, and answers are awaited). Timing bounds are generous, and
//! the tests that assert them hold [`crate::kit::timed`] while the one burst
//! test holds [`crate::kit::heavy`], so the burst never skews their clocks.
use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{RData, RecordType};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::net::UdpSocket;

use dnslb::config::{Fault, HedgeDelay, Layout, LsConfig, OnMiss, OnTimeout, Order, Strategy};

use crate::kit::{
    Reply, STRATEGIES, Tasks, TestLs, TestTs, ZoneDir, a_addrs, assert_echo, checked_question_end,
    delay_all, empty_answer, exchange, heavy, id_of, is_probe, query, read_frame, serve_udp,
    start_ls, start_ts, start_ts_table, strategy_config, tcp, timed, ts_settings, udp_and_tcp,
    udp_raw_wait, wire_query, write_frame,
};

/// The names of the first TS (partitioned layout).
const TABLE1: &str = "\
www.a.test    192.0.2.1    A
www.a.test    192.0.2.2    A
mail.a.test   192.0.2.3    A
v6.a.test     2001:db8::1  AAAA
";

/// The names of the second TS (partitioned layout).
const TABLE2: &str = "\
www.b.test    198.51.100.1  A
api.b.test    198.51.100.2  A
api.b.test    198.51.100.3  A
txt.b.test    \"hello\"     TXT
";

// ---------------------------------------------------------------------------
// Helpers: table servers
// ---------------------------------------------------------------------------

/// Two TS and the folder of their tables.
struct Pair {
    ts1: TestTs,
    ts2: TestTs,
    _dir: ZoneDir,
}

impl Pair {
    fn backends(&self) -> [(&'static str, SocketAddr); 2] {
        [("ts1", self.ts1.addr), ("ts2", self.ts2.addr)]
    }
}

/// How one TS of a [`Pair`] behaves.
#[derive(Clone, Copy, Default)]
struct Knobs {
    silent: bool,
    delay_ms: u64,
}

const NORMAL: Knobs = Knobs {
    silent: false,
    delay_ms: 0,
};

/// A TS that answers everything after `delay_ms`.
const fn delayed(delay_ms: u64) -> Knobs {
    Knobs { delay_ms, ..NORMAL }
}

/// A replicated pair whose first TS answers after `delay_ms`, the second at once.
async fn slow_first(delay_ms: u64) -> Pair {
    start_pair(Layout::Replicated, delayed(delay_ms), NORMAL).await
}

/// Two TS: disjoint tables when partitioned, the same (both tables) when replicated.
async fn start_pair(layout: Layout, k1: Knobs, k2: Knobs) -> Pair {
    let dir = ZoneDir::new();
    let (z1, z2) = if layout == Layout::Replicated {
        let both = format!("{TABLE1}{TABLE2}");
        (dir.write("ts1.txt", &both), dir.write("ts2.txt", &both))
    } else {
        (dir.write("ts1.txt", TABLE1), dir.write("ts2.txt", TABLE2))
    };
    let settings = |path, k: Knobs| {
        let mut s = ts_settings(vec![path]);
        if k.silent {
            s.on_miss = OnMiss::Silent;
        }
        if k.delay_ms > 0 {
            s.fault = delay_all(k.delay_ms);
        }
        s
    };
    let ts1 = start_ts(settings(z1, k1)).await;
    let ts2 = start_ts(settings(z2, k2)).await;
    Pair {
        ts1,
        ts2,
        _dir: dir,
    }
}

/// An LS in front of the replicated `pair` that asks ts1 first and hedges
/// to ts2 after `delay_ms` within a budget of `budget_pct`.
async fn fixed_hedge_ls(pair: &Pair, delay_ms: u64, budget_pct: f64) -> TestLs {
    let mut c = strategy_config(&pair.backends(), Strategy::Hedge, Layout::Replicated);
    c.order = Order::Fixed;
    c.hedge_delay_ms = HedgeDelay::Fixed(delay_ms);
    c.hedge_budget_pct = budget_pct;
    start_ls(c).await
}

/// [`cfg`] with a 1.5 s deadline and a hedge delay and per-try timeout of
/// 1 s: an answer well before 1 s waited out neither.
fn cfg_long_waits(backends: &[(&str, SocketAddr)], strategy: Strategy, layout: Layout) -> LsConfig {
    let mut c = strategy_config(backends, strategy, layout);
    c.timeout_ms = 1500;
    c.hedge_delay_ms = HedgeDelay::Fixed(1000);
    c.try_timeout_ms = 1000;
    c
}

// ---------------------------------------------------------------------------
// Helpers: wire format
// ---------------------------------------------------------------------------

/// A response to `query` built byte by byte: `id`, QR=1, AA=1, RD copied, TC
/// as asked, `rcode`, the question exactly as sent, and one A record (name
/// compressed to the question's) per address.
fn raw_response(query: &[u8], id: u16, rcode: u8, tc: bool, addrs: &[Ipv4Addr]) -> Vec<u8> {
    let end = checked_question_end(query).expect("a readable question");
    let mut r = query[..end].to_vec();
    r[0..2].copy_from_slice(&id.to_be_bytes());
    // AA, but on a SERVFAIL: a failing server's (an authority's own,
    // AA=1, is passed on when no backend answers).
    let aa = if rcode == 2 { 0 } else { 0x04 };
    r[2] = 0x80 | aa | (query[2] & 0x01) | if tc { 0x02 } else { 0 };
    r[3] = rcode & 0x0f;
    r[4..6].copy_from_slice(&1u16.to_be_bytes());
    r[6..8].copy_from_slice(&(addrs.len() as u16).to_be_bytes());
    r[8..12].fill(0);
    for a in addrs {
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&a.octets());
    }
    r
}

/// [`exchange`], asserting the answer echoes `q` ([`assert_echo`]).
async fn exchange_echoed(addr: SocketAddr, q: &[u8]) -> (Message, Duration) {
    let (raw, m, took) = exchange(addr, q).await;
    assert_echo(q, &raw);
    (m, took)
}

/// The upstream counters of backend `i`: (sent, answered, wins, timeouts, errors, outstanding).
pub(crate) fn stats(ls: &TestLs, i: usize) -> (u64, u64, u64, u64, u64, u32) {
    let st = ls.balancer.state();
    let s = &st.backends[i].stats;
    (
        s.sent.load(Relaxed),
        s.answered.load(Relaxed),
        s.wins.load(Relaxed),
        s.timeouts.load(Relaxed),
        s.errors.load(Relaxed),
        s.outstanding.load(Relaxed),
    )
}

fn answers(ls: &TestLs, rcode: ResponseCode) -> u64 {
    ls.balancer.metrics().answers[usize::from(u16::from(rcode) & 0xf)].load(Relaxed)
}

// ---------------------------------------------------------------------------
// Helpers: fake backends
// ---------------------------------------------------------------------------

/// The full answer of the [`Mode::Truncated`] fake over TCP.
const FULL: [Ipv4Addr; 3] = [
    Ipv4Addr::new(192, 0, 2, 10),
    Ipv4Addr::new(192, 0, 2, 11),
    Ipv4Addr::new(192, 0, 2, 12),
];

/// What a fake backend does with each UDP query.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Answers at once with this rcode and no records.
    Rcode(ResponseCode),
    /// Never answers.
    Silent,
    /// Answers TC=1 with no records over UDP; the full answer is served over
    /// TCP on the same port.
    Truncated,
}

/// A fake backend on 127.0.0.1.
struct Fake {
    addr: SocketAddr,
    udp_queries: Arc<AtomicU64>,
    tcp_queries: Arc<AtomicU64>,
    _tasks: Tasks,
}

async fn start_fake(mode: Mode) -> Fake {
    let udp_queries = Arc::new(AtomicU64::new(0));
    let tcp_queries = Arc::new(AtomicU64::new(0));
    // For TC the TCP listener must get the UDP socket's port.
    let (sock, listener) = if matches!(mode, Mode::Truncated) {
        let (sock, listener, _) = udp_and_tcp().await;
        (sock, Some(listener))
    } else {
        (UdpSocket::bind("127.0.0.1:0").await.unwrap(), None)
    };
    let addr = sock.local_addr().unwrap();
    let counter = udp_queries.clone();
    let mut tasks = vec![serve_udp(sock, move |q| {
        if is_probe(q) {
            // Up by its health probes, whatever it does with queries.
            return Reply::Now(empty_answer(q));
        }
        counter.fetch_add(1, Relaxed);
        let rcode = match mode {
            Mode::Rcode(rc) => u16::from(rc) as u8,
            Mode::Silent => return Reply::Drop,
            Mode::Truncated => 0,
        };
        let truncated = matches!(mode, Mode::Truncated);
        Reply::Now(raw_response(q, id_of(q), rcode, truncated, &[]))
    })];
    if let Some(listener) = listener {
        let counter = tcp_queries.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    loop {
                        let Some(q) = read_frame(&mut s).await else {
                            return;
                        };
                        counter.fetch_add(1, Relaxed);
                        let resp = raw_response(&q, id_of(&q), 0, false, &FULL);
                        if !write_frame(&mut s, &resp).await {
                            return;
                        }
                    }
                });
            }
        }));
    }
    Fake {
        addr,
        udp_queries,
        tcp_queries,
        _tasks: Tasks(tasks),
    }
}

/// The address the forging backend's genuine answer carries.
const GENUINE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
/// The address every forged response carries.
const FORGED: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 66);

/// A backend that answers each upstream query with three forgeries and then
/// the genuine answer: (1) right ID and question from another socket, (2)
/// from its own socket with a wrong ID, (3) right ID with another question.
/// Records each upstream query's source address and ID.
struct Forger {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<(SocketAddr, u16)>>>,
    _task: Tasks,
}

async fn start_forger() -> Forger {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let task = Tasks(vec![tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let q = buf[..n].to_vec();
            if is_probe(&q) {
                let _ = sock.send_to(&empty_answer(&q), from).await;
                continue;
            }
            let id = id_of(&q);
            log.lock().unwrap().push((from, id));
            // (1) wrong source: everything else right.
            let forged = raw_response(&q, id, 0, false, &[FORGED]);
            let _ = other.send_to(&forged, from).await;
            // (2) wrong ID.
            let forged = raw_response(&q, id ^ 0x5a5a, 0, false, &[FORGED]);
            let _ = sock.send_to(&forged, from).await;
            // (3) another question: the first label's letters replaced.
            let mut forged = raw_response(&q, id, 0, false, &[FORGED]);
            let first = usize::from(forged[12]);
            for b in &mut forged[13..13 + first] {
                *b = if b.eq_ignore_ascii_case(&b'x') {
                    b'y'
                } else {
                    b'x'
                };
            }
            let _ = sock.send_to(&forged, from).await;
            // The genuine answer, last.
            let genuine = raw_response(&q, id, 0, false, &[GENUINE]);
            let _ = sock.send_to(&genuine, from).await;
        }
    })]);
    Forger {
        addr,
        seen,
        _task: task,
    }
}

// ---------------------------------------------------------------------------
// 1. Strategies × layouts
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_strategy_and_layout_answers_names_of_either_backend() {
    let names = [
        ("WwW.A.TeSt.", RecordType::A, 1usize),
        ("v6.A.test.", RecordType::AAAA, 1),
        ("Api.B.TEST.", RecordType::A, 2),
        ("txt.b.TEST.", RecordType::TXT, 2),
    ];
    for layout in [Layout::Partitioned, Layout::Replicated] {
        let pair = start_pair(layout, NORMAL, NORMAL).await;
        for strategy in STRATEGIES {
            let mut c = strategy_config(&pair.backends(), strategy, layout);
            c.hedge_delay_ms = HedgeDelay::Fixed(20);
            let ls = start_ls(c).await;
            for (i, (name, qtype, holder)) in names.iter().enumerate() {
                let ctx = format!("{layout} {strategy} {name} {qtype}");
                let id = 0x1200 + i as u16;
                let q = wire_query(name, *qtype, id, true, true);
                let (raw, m, _) = exchange(ls.addr, &q).await;
                let ts = if *holder == 1 { &pair.ts1 } else { &pair.ts2 };
                let (_, want, _) = exchange(ts.addr, &q).await;
                assert_eq!(
                    want.response_code,
                    ResponseCode::NoError,
                    "{ctx}: the TS holds it"
                );
                assert!(!want.answers.is_empty(), "{ctx}");
                assert_echo(&q, &raw);
                assert_eq!(m.response_code, ResponseCode::NoError, "{ctx}");
                assert!(m.authoritative, "{ctx}: the TS's AA=1 passed on");
                assert!(!m.truncation, "{ctx}");
                assert_eq!(m.answers, want.answers, "{ctx}: the TS's own answer");
                assert_eq!(m.authorities, want.authorities, "{ctx}");
            }
            let met = ls.balancer.metrics();
            assert_eq!(met.queries.load(Relaxed), names.len() as u64);
            assert_eq!(answers(&ls, ResponseCode::NoError), names.len() as u64);
            assert_eq!(met.synthesized.load(Relaxed), 0);
            ls.stop().await;
        }
    }
}

// ---------------------------------------------------------------------------
// 2. Partitioned: NXDOMAIN from everyone ends the query at once
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_miss_is_nxdomain_well_before_the_deadline() {
    let _load = timed().await;
    let pair = start_pair(Layout::Partitioned, NORMAL, NORMAL).await;
    for strategy in STRATEGIES {
        // Neither a hedge delay nor a per-try timeout may be waited out.
        let c = cfg_long_waits(&pair.backends(), strategy, Layout::Partitioned);
        let ls = start_ls(c).await;
        let q = wire_query("NoSuch.Name.TEST.", RecordType::A, 0x4242, false, true);
        let (raw, m, took) = exchange(ls.addr, &q).await;
        let (_, d1, _) = exchange(pair.ts1.addr, &q).await;
        let (_, d2, _) = exchange(pair.ts2.addr, &q).await;
        assert_eq!(d1.response_code, ResponseCode::NXDomain);
        assert_eq!(d2.response_code, ResponseCode::NXDomain);
        assert_echo(&q, &raw);
        assert!(
            took < Duration::from_millis(500),
            "{strategy}: NXDOMAIN after {took:?} (timeout 1500 ms)"
        );
        assert_eq!(m.response_code, ResponseCode::NXDomain, "{strategy}");
        assert!(
            m.authoritative,
            "{strategy}: a TS's answer, not a made-up one"
        );
        assert!(m.answers.is_empty(), "{strategy}");
        assert_eq!(m.authorities.len(), 1, "{strategy}");
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
        assert!(
            m.authorities == d1.authorities || m.authorities == d2.authorities,
            "{strategy}: the TS's SOA: {:?}",
            m.authorities
        );
        let met = ls.balancer.metrics();
        assert_eq!(met.synthesized.load(Relaxed), 0, "{strategy}");
        assert_eq!(answers(&ls, ResponseCode::NXDomain), 1, "{strategy}");
        // Both partitions were asked, neither timed out.
        for i in 0..2 {
            let (sent, answered, _, timeouts, errors, _) = stats(&ls, i);
            assert_eq!(
                (sent, answered, timeouts, errors),
                (1, 1, 0, 0),
                "{strategy} ts{i}"
            );
        }
        ls.stop().await;
    }
}

// ---------------------------------------------------------------------------
// 3. The deadline: synthesized answers
// ---------------------------------------------------------------------------

const SYNTH_TIMEOUT: Duration = Duration::from_millis(300);

/// Checks the two made-up answers of an LS with `on_timeout` = `rcode`.
async fn check_synthesized(ls: &TestLs, rcode: ResponseCode) {
    let with_opt = wire_query("Missing.Name.TEST.", RecordType::A, 0xa001, true, true);
    let plain = wire_query(
        "other.MISSING.test.",
        RecordType::AAAA,
        0xa002,
        false,
        false,
    );
    let (a, b) = tokio::join!(exchange(ls.addr, &with_opt), exchange(ls.addr, &plain));
    for ((q, rd), (raw, m, took)) in [((&with_opt, true), a), ((&plain, false), b)] {
        let ctx = format!("{rcode} rd={rd}");
        assert!(
            took >= SYNTH_TIMEOUT && took < SYNTH_TIMEOUT + Duration::from_millis(400),
            "{ctx}: answered after {took:?}, deadline {SYNTH_TIMEOUT:?}"
        );
        assert_echo(q, &raw);
        assert_eq!(m.response_code, rcode, "{ctx}");
        assert!(!m.authoritative, "{ctx}: AA=0");
        assert!(!m.recursion_available, "{ctx}: RA=0, as a backend's answer");
        assert_eq!(m.recursion_desired, rd, "{ctx}: RD copied");
        assert!(!m.truncation, "{ctx}");
        assert!(m.answers.is_empty(), "{ctx}");
        assert_eq!(m.authorities.len(), 1, "{ctx}");
        let soa = &m.authorities[0];
        assert_eq!(soa.ttl, 7, "{ctx}: SOA TTL = synth_ttl");
        match &soa.data {
            RData::SOA(s) => assert_eq!(s.minimum, 7, "{ctx}: negative TTL = synth_ttl"),
            other => panic!("{ctx}: not an SOA: {other:?}"),
        }
        if rd {
            let edns = m.edns.as_ref().expect("an OPT, as the query had one");
            let Some(EdnsOption::Unknown(15, data)) = edns.option(EdnsCode::Unknown(15)) else {
                panic!("{ctx}: no EDE option: {edns:?}");
            };
            assert!(data.len() >= 2, "{ctx}");
            assert_eq!(u16::from_be_bytes([data[0], data[1]]), 22, "{ctx}: EDE 22");
            let text = String::from_utf8_lossy(&data[2..]);
            assert!(
                text.contains("ts1") && text.contains("ts2"),
                "{ctx}: EDE text names both backends: {text:?}"
            );
        } else {
            assert!(m.edns.is_none(), "{ctx}: no OPT without one in the query");
            assert_eq!(&raw[10..12], &[0, 0], "{ctx}: ARCOUNT=0");
        }
    }
    let met = ls.balancer.metrics();
    assert_eq!(met.queries.load(Relaxed), 2, "{rcode}");
    assert_eq!(met.synthesized.load(Relaxed), 2, "{rcode}");
    assert_eq!(answers(ls, rcode), 2, "{rcode}");
    for i in 0..2 {
        let (sent, answered, wins, _, _, outstanding) = stats(ls, i);
        // Each query asked, and asked again while time remained.
        assert!(sent >= 2, "{rcode} backend {i}: {sent}");
        assert_eq!(
            (answered, wins, outstanding),
            (0, 0, 0),
            "{rcode} backend {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_gives_the_on_timeout_answer() {
    let _load = timed().await;
    let silent = Knobs {
        silent: true,
        ..NORMAL
    };
    let pair = start_pair(Layout::Partitioned, silent, silent).await;
    let mk = |on_timeout| {
        let mut c = strategy_config(&pair.backends(), Strategy::Race, Layout::Partitioned);
        c.timeout_ms = SYNTH_TIMEOUT.as_millis() as u64;
        c.synth_ttl = 7;
        c.on_timeout = on_timeout;
        c
    };
    let nx = start_ls(mk(OnTimeout::Nxdomain)).await;
    let sf = start_ls(mk(OnTimeout::Servfail)).await;
    let dr = start_ls(mk(OnTimeout::Drop)).await;
    let drop_check = async {
        let q = wire_query("Missing.Name.TEST.", RecordType::A, 0xa003, true, true);
        // Well past the deadline: an answer would have come by now.
        let got = udp_raw_wait(dr.addr, &q, SYNTH_TIMEOUT + Duration::from_millis(700)).await;
        assert!(got.is_none(), "on_timeout = drop answered: {got:?}");
        let met = dr.balancer.metrics();
        assert_eq!(met.queries.load(Relaxed), 1);
        let sent: u64 = met.answers.iter().map(|c| c.load(Relaxed)).sum();
        assert_eq!(sent, 0, "no answer counted");
    };
    tokio::join!(
        check_synthesized(&nx, ResponseCode::NXDomain),
        check_synthesized(&sf, ResponseCode::ServFail),
        drop_check,
    );
}

// ---------------------------------------------------------------------------
// 4. What wins
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_are_never_final() {
    let _load = timed().await;
    // The TS answers 50 ms late, so the fake's SERVFAIL always comes first.
    let pair = slow_first(50).await;
    let fake = start_fake(Mode::Rcode(ResponseCode::ServFail)).await;
    for strategy in STRATEGIES {
        let backends = [("fake", fake.addr), ("ts1", pair.ts1.addr)];
        let mut c = cfg_long_waits(&backends, strategy, Layout::Replicated);
        c.order = Order::Fixed;
        let ls = start_ls(c).await;
        let before = fake.udp_queries.load(Relaxed);
        let q = wire_query("Mail.A.test.", RecordType::A, 0x0b0b, true, false);
        let (m, took) = exchange_echoed(ls.addr, &q).await;
        assert_eq!(m.response_code, ResponseCode::NoError, "{strategy}");
        assert_eq!(a_addrs(&m), vec![Ipv4Addr::new(192, 0, 2, 3)], "{strategy}");
        assert!(
            took < Duration::from_millis(500),
            "{strategy}: moved on after SERVFAIL only after {took:?}"
        );
        assert_eq!(
            fake.udp_queries.load(Relaxed) - before,
            1,
            "{strategy}: fake asked"
        );
        let (sent, answered, wins, _, errors, _) = stats(&ls, 0);
        assert_eq!(
            (sent, answered, wins, errors),
            (1, 1, 0, 1),
            "{strategy}: fake"
        );
        let (sent, answered, wins, _, errors, _) = stats(&ls, 1);
        assert_eq!(
            (sent, answered, wins, errors),
            (1, 1, 1, 0),
            "{strategy}: ts1"
        );
        assert_eq!(ls.synthesized(), 0, "answers the LS made up");
        ls.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_backends_failing_is_servfail_before_the_deadline() {
    let _load = timed().await;
    let f1 = start_fake(Mode::Rcode(ResponseCode::ServFail)).await;
    let f2 = start_fake(Mode::Rcode(ResponseCode::Refused)).await;
    for layout in [Layout::Partitioned, Layout::Replicated] {
        for strategy in STRATEGIES {
            let ctx = format!("{layout} {strategy}");
            let mut c = cfg_long_waits(&[("f1", f1.addr), ("f2", f2.addr)], strategy, layout);
            c.order = Order::Fixed;
            let ls = start_ls(c).await;
            let q = wire_query("www.a.test.", RecordType::A, 0x0c0c, true, true);
            let (m, took) = exchange_echoed(ls.addr, &q).await;
            assert!(
                took < Duration::from_millis(500),
                "{ctx}: SERVFAIL after {took:?} (timeout 1500 ms)"
            );
            assert_eq!(m.response_code, ResponseCode::ServFail, "{ctx}");
            assert!(m.answers.is_empty(), "{ctx}");
            // A REFUSED ("not my zone") is no error of the backend.
            for (i, want_errors) in [(0, 1), (1, 0)] {
                let (sent, answered, wins, timeouts, errors, _) = stats(&ls, i);
                assert_eq!(
                    (sent, answered, wins, timeouts, errors),
                    (1, 1, 0, 0, want_errors),
                    "{ctx}: backend {i}"
                );
            }
            assert_eq!(answers(&ls, ResponseCode::ServFail), 1, "{ctx}");
            ls.stop().await;
        }
    }
}

// ---------------------------------------------------------------------------
// 5–6. Hedging and sequential moves
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedge_and_sequential_route_around_a_slow_backend() {
    let _load = timed().await;
    // ts1 answers after a second: an answer well before it came from ts2.
    let pair = slow_first(1000).await;

    // Hedge after 20 ms.
    let ls = fixed_hedge_ls(&pair, 20, 100.0).await;
    let q = wire_query("WWW.b.test.", RecordType::A, 0x0d0d, false, false);
    let (m, took) = exchange_echoed(ls.addr, &q).await;
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(a_addrs(&m), vec![Ipv4Addr::new(198, 51, 100, 1)]);
    assert!(
        took < Duration::from_millis(700),
        "hedged answer after {took:?}"
    );
    assert!(
        ls.balancer.metrics().hedges.load(Relaxed) >= 1,
        "a hedge counted"
    );
    let (sent1, _, wins1, _, _, _) = stats(&ls, 0);
    let (sent2, answered2, wins2, _, _, _) = stats(&ls, 1);
    assert_eq!((sent1, wins1), (1, 0), "ts1 asked first, lost");
    assert_eq!((sent2, answered2, wins2), (1, 1, 1), "ts2 won");
    ls.stop().await;

    // Sequential: the per-try timeout of 50 ms moves on to ts2.
    let mut c = strategy_config(&pair.backends(), Strategy::Sequential, Layout::Replicated);
    c.order = Order::Fixed;
    c.try_timeout_ms = 50;
    let ls = start_ls(c).await;
    let q = wire_query("api.B.test.", RecordType::A, 0x0e0e, false, false);
    let (m, took) = exchange_echoed(ls.addr, &q).await;
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(a_addrs(&m).len(), 2);
    assert!(
        took < Duration::from_millis(700),
        "sequential answer after {took:?}"
    );
    assert_eq!(
        ls.balancer.metrics().hedges.load(Relaxed),
        0,
        "no hedges in sequential"
    );
    assert_eq!(stats(&ls, 0).0, 1, "ts1 asked first");
    assert_eq!(stats(&ls, 1).2, 1, "ts2 won");
    ls.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_moves_on_at_once_after_servfail() {
    let _load = timed().await;
    let pair = start_pair(Layout::Replicated, NORMAL, NORMAL).await;
    let fake = start_fake(Mode::Rcode(ResponseCode::ServFail)).await;
    let mut c = strategy_config(
        &[("fake", fake.addr), ("ts2", pair.ts2.addr)],
        Strategy::Sequential,
        Layout::Replicated,
    );
    c.order = Order::Fixed;
    c.try_timeout_ms = 1000;
    c.timeout_ms = 1500;
    let ls = start_ls(c).await;
    let q = wire_query("v6.a.TEST.", RecordType::AAAA, 0x0f0f, true, true);
    let (m, took) = exchange_echoed(ls.addr, &q).await;
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].record_type(), RecordType::AAAA);
    assert!(
        took < Duration::from_millis(500),
        "waited {took:?} after a SERVFAIL (try_timeout 1000 ms)"
    );
    assert_eq!(
        fake.udp_queries.load(Relaxed),
        1,
        "the fake was asked first"
    );
    assert_eq!(stats(&ls, 0).4, 1, "the SERVFAIL counted as an error");
}

// ---------------------------------------------------------------------------
// 7. A burst from one client socket
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_queries_from_one_socket() {
    const N: usize = 1000;
    let _load = heavy().await;
    let pair = start_pair(Layout::Partitioned, NORMAL, NORMAL).await;
    let mut c = strategy_config(&pair.backends(), Strategy::Hedge, Layout::Partitioned);
    // This test is about cross-talk, not speed: a deadline long enough that a
    // busy CI machine cannot turn a hit into a made-up NXDOMAIN.
    c.timeout_ms = 10_000;
    let ls = start_ls(c).await;

    // name, type, rcode, answer count
    let hits: [(&str, RecordType, usize); 6] = [
        ("www.a.test.", RecordType::A, 2),
        ("mail.a.test.", RecordType::A, 1),
        ("v6.a.test.", RecordType::AAAA, 1),
        ("www.b.test.", RecordType::A, 1),
        ("api.b.test.", RecordType::A, 2),
        ("txt.b.test.", RecordType::TXT, 1),
    ];
    let mut rng = StdRng::seed_from_u64(0x1000_0001);
    let base: u16 = rng.random();
    let mut expected: HashMap<u16, (Vec<u8>, ResponseCode, usize)> = HashMap::new();
    let mut packets = Vec::with_capacity(N);
    for i in 0..N {
        let id = (i as u16) ^ base; // distinct
        let (name, qtype, rcode, count) = if rng.random_range(0..4) == 0 {
            (
                format!("miss{i}.test."),
                RecordType::A,
                ResponseCode::NXDomain,
                0,
            )
        } else {
            let (n, t, c) = hits[rng.random_range(0..hits.len())];
            (n.to_owned(), t, ResponseCode::NoError, c)
        };
        // Random case, to check every echo is its own query's.
        let name: String = name
            .chars()
            .map(|ch| {
                if rng.random() {
                    ch.to_ascii_uppercase()
                } else {
                    ch
                }
            })
            .collect();
        let q = wire_query(&name, qtype, id, true, i % 2 == 0);
        let end = checked_question_end(&q).unwrap();
        expected.insert(id, (q[12..end].to_vec(), rcode, count));
        packets.push(q);
    }
    assert_eq!(expected.len(), N);

    // One client socket with a big receive buffer, drained by its own task.
    let std_sock = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    let _ = std_sock.set_recv_buffer_size(4 << 20);
    std_sock
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    std_sock.set_nonblocking(true).unwrap();
    let sock = Arc::new(UdpSocket::from_std(std_sock.into()).unwrap());
    let rx = sock.clone();
    let receiver = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut got: HashMap<u16, Vec<u8>> = HashMap::new();
        let mut dups = 0usize;
        let mut buf = vec![0u8; 65_535];
        while got.len() < N {
            match tokio::time::timeout_at(deadline, rx.recv_from(&mut buf)).await {
                Ok(Ok((n, _))) => {
                    let r = buf[..n].to_vec();
                    if r.len() < 12 || got.insert(id_of(&r), r).is_some() {
                        dups += 1;
                    }
                }
                Ok(Err(e)) => panic!("recv: {e}"),
                Err(_) => break,
            }
        }
        (got, dups)
    });
    let t = Instant::now();
    for p in &packets {
        sock.send_to(p, ls.addr).await.unwrap();
    }
    let (got, dups) = receiver.await.unwrap();
    let took = t.elapsed();
    assert_eq!(dups, 0, "duplicate or runt answers");
    assert_eq!(got.len(), N, "answers lost ({took:?})");
    for (id, raw) in &got {
        let (question, rcode, count) = expected.get(id).expect("an answer to a query sent");
        let end = 12 + question.len();
        assert_eq!(
            raw.get(12..end),
            Some(&question[..]),
            "id {id}: its own question"
        );
        let m = Message::from_vec(raw).unwrap();
        assert_eq!(m.response_code, *rcode, "id {id}");
        assert_eq!(m.answers.len(), *count, "id {id}");
    }
    let met = ls.balancer.metrics();
    assert_eq!(met.queries.load(Relaxed), N as u64);
    assert_eq!(
        answers(&ls, ResponseCode::NoError) + answers(&ls, ResponseCode::NXDomain),
        N as u64
    );
    assert_eq!(met.synthesized.load(Relaxed), 0);
    // (Dropped upstream responses are not asserted here: a late answer to a
    // query already settled may reach a new query's socket on a reused port.)
}

// ---------------------------------------------------------------------------
// 8. Forwarding safety (RFC 5452)
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_responses_are_dropped_and_counted() {
    let forger = start_forger().await;
    let ls = start_ls(strategy_config(
        &[("forger", forger.addr)],
        Strategy::Race,
        Layout::Partitioned,
    ))
    .await;
    let client_ids: Vec<u16> = (0..8u16).map(|i| 0x1111 * (i + 1)).collect();
    for (i, id) in client_ids.iter().enumerate() {
        let q = wire_query(
            &format!("WWW{i}.Forge.TEST."),
            RecordType::A,
            *id,
            true,
            i % 2 == 0,
        );
        let (raw, m, _) = exchange(ls.addr, &q).await;
        assert_echo(&q, &raw);
        assert_eq!(m.response_code, ResponseCode::NoError);
        assert_eq!(a_addrs(&m), vec![GENUINE], "query {i}: the genuine answer");
    }
    // The forger sent one of each forgery per client query, each before the
    // genuine answer on the same path, so each was read and judged before
    // the genuine one settled its query: every one is counted, exactly.
    let drops = &ls.balancer.metrics().drops;
    let sent = client_ids.len() as u64;
    assert_eq!(
        drops.wrong_source.load(Relaxed),
        sent,
        "forgeries from a wrong source counted"
    );
    assert_eq!(drops.wrong_id.load(Relaxed), sent, "wrong ids counted");
    assert_eq!(
        drops.wrong_question.load(Relaxed),
        sent,
        "wrong questions counted"
    );

    let seen = forger.seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        client_ids.len(),
        "one upstream query per client query"
    );
    // A fresh random ID: at most one may equal its client's ID by chance (2^-16 each).
    let same_id = seen
        .iter()
        .zip(&client_ids)
        .filter(|((_, up), client)| up == *client)
        .count();
    assert!(same_id <= 1, "upstream IDs copy the client's: {seen:?}");
    // Random source ports: eight queries leave from several ports, not one or two.
    let ports: BTreeSet<u16> = seen.iter().map(|(a, _)| a.port()).collect();
    assert!(ports.len() >= 4, "source ports barely vary: {seen:?}");
}

// ---------------------------------------------------------------------------
// 9. Truncation
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_answers_are_fetched_over_tcp_for_tcp_clients() {
    let fake = start_fake(Mode::Truncated).await;
    let ls = start_ls(strategy_config(
        &[("tc", fake.addr)],
        Strategy::Race,
        Layout::Partitioned,
    ))
    .await;

    // A TCP client: the LS retries over TCP and returns the full answer.
    let m = query("Big.TC.test.", RecordType::A, None);
    let resp = tcp(ls.addr, &m).await;
    assert_eq!(resp.metadata.id, m.metadata.id);
    assert_eq!(resp.response_code, ResponseCode::NoError);
    assert!(!resp.truncation, "TC=0 over TCP");
    assert_eq!(a_addrs(&resp), FULL.to_vec());
    assert_eq!(resp.queries[0].name().to_ascii(), "Big.TC.test.");
    assert_eq!(fake.udp_queries.load(Relaxed), 1);
    assert_eq!(fake.tcp_queries.load(Relaxed), 1, "one upstream TCP retry");

    // A UDP client: TC=1 passed through.
    let q = wire_query("Big.TC.test.", RecordType::A, 0x7c7c, true, true);
    let (raw, m, _) = exchange(ls.addr, &q).await;
    assert_echo(&q, &raw);
    assert!(m.truncation, "TC=1 passed to the UDP client");
    assert!(m.answers.is_empty());
    assert_eq!(m.response_code, ResponseCode::NoError);
}

// ---------------------------------------------------------------------------
// 10. The in-flight bound
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_inflight_is_servfail_at_once() {
    let _load = timed().await;
    let slow = delayed(300);
    let pair = start_pair(Layout::Partitioned, slow, slow).await;
    let mut c = strategy_config(
        &[("ts1", pair.ts1.addr)],
        Strategy::Race,
        Layout::Partitioned,
    );
    c.max_inflight = 1;
    // No re-ask of the slow one (it would be a second copy upstream).
    c.hedge_budget_pct = 0.0;
    let ls = start_ls(c).await;
    // Both from one socket: the LS takes one socket's datagrams in order, so
    // the first holds the only slot when the second arrives.
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let q1 = wire_query("www.a.test.", RecordType::A, 0x0001, true, false);
    let q2 = wire_query("Mail.A.test.", RecordType::A, 0x0002, true, false);
    let t = Instant::now();
    sock.send_to(&q1, ls.addr).await.unwrap();
    sock.send_to(&q2, ls.addr).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let mut recv = async || {
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        (buf[..n].to_vec(), t.elapsed())
    };
    let (first, t1) = recv().await;
    assert_echo(&q2, &first);
    let m = Message::from_vec(&first).unwrap();
    assert_eq!(m.response_code, ResponseCode::ServFail, "over the bound");
    // "At once" is the order, not a wall-clock bound (a loaded machine can
    // take 200 ms to run anything): the SERVFAIL came first, before the
    // backend's 300 ms answer to the query that held the slot, and the
    // refused query never went upstream (below).
    let (second, t2) = recv().await;
    assert!(
        t1 < t2,
        "SERVFAIL after {t1:?}, the slow answer after {t2:?}"
    );
    assert_echo(&q1, &second);
    let m = Message::from_vec(&second).unwrap();
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(a_addrs(&m).len(), 2);
    assert!(
        t2 >= Duration::from_millis(250),
        "the slow one came after {t2:?}"
    );
    assert_eq!(stats(&ls, 0).0, 1, "the refused query never went upstream");
}

// ---------------------------------------------------------------------------
// 11. Per-backend counters
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_backend_counters_add_up() {
    let pair = start_pair(Layout::Partitioned, NORMAL, NORMAL).await;
    let mut c = strategy_config(&pair.backends(), Strategy::Sequential, Layout::Partitioned);
    c.order = Order::Fixed;
    let ls = start_ls(c).await;
    let on_ts1 = ["www.a.test.", "mail.a.test.", "WWW.A.TEST."];
    let on_ts2 = ["www.b.test.", "api.b.test."];
    let misses = ["nope1.test.", "nope2.test."];
    for (i, name) in on_ts1.iter().chain(&on_ts2).chain(&misses).enumerate() {
        let q = wire_query(name, RecordType::A, 0x5000 + i as u16, true, false);
        let (raw, m, _) = exchange(ls.addr, &q).await;
        assert_echo(&q, &raw);
        let want = if misses.contains(name) {
            ResponseCode::NXDomain
        } else {
            ResponseCode::NoError
        };
        assert_eq!(m.response_code, want, "{name}");
    }
    let (n1, n2, nm) = (
        on_ts1.len() as u64,
        on_ts2.len() as u64,
        misses.len() as u64,
    );
    // ts1 is asked every query and wins its own names; ts2 is asked whatever
    // ts1 did not hold and wins those (the last NXDOMAIN is the final one).
    assert_eq!(
        stats(&ls, 0),
        (n1 + n2 + nm, n1 + n2 + nm, n1, 0, 0, 0),
        "ts1"
    );
    assert_eq!(stats(&ls, 1), (n2 + nm, n2 + nm, n2 + nm, 0, 0, 0), "ts2");
    let met = ls.balancer.metrics();
    assert_eq!(met.queries.load(Relaxed), n1 + n2 + nm);
    assert_eq!(answers(&ls, ResponseCode::NoError), n1 + n2);
    assert_eq!(answers(&ls, ResponseCode::NXDomain), nm);
    assert_eq!(met.synthesized.load(Relaxed), 0);
    assert_eq!(met.hedges.load(Relaxed), 0);
    assert_eq!(met.drops.total(), 0);
}

// ---------------------------------------------------------------------------
// Extra: the deadline's bookkeeping and a long synthesized answer
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn deadline_counts_a_timeout_for_each_silent_backend_only() {
    let _load = timed().await;
    let pair = start_pair(Layout::Partitioned, NORMAL, NORMAL).await;
    let silent = start_fake(Mode::Silent).await;
    let mut c = strategy_config(
        &[("ts1", pair.ts1.addr), ("mute", silent.addr)],
        Strategy::Race,
        Layout::Partitioned,
    );
    c.timeout_ms = SYNTH_TIMEOUT.as_millis() as u64;
    // One client-query timeout is enough to mark a backend down.
    c.health.fall = 1;
    let ls = start_ls(c).await;
    let q = wire_query("nowhere.test.", RecordType::A, 0x3131, true, true);
    let (m, took) = exchange_echoed(ls.addr, &q).await;
    assert_eq!(m.response_code, ResponseCode::NXDomain);
    assert!(!m.authoritative, "made up at the deadline");
    assert!(took >= SYNTH_TIMEOUT, "answered after {took:?}");
    // Asked, and asked again while time remained (re-asks)...
    assert!(silent.udp_queries.load(Relaxed) >= 1);
    // ts1 said NXDOMAIN at once: it answered, it did not time out.
    let (sent, answered, wins, timeouts, errors, _) = stats(&ls, 0);
    assert_eq!((sent, answered, wins, errors), (1, 1, 0, 0), "ts1");
    assert_eq!(
        timeouts, 0,
        "ts1 answered, yet a timeout was counted against it"
    );
    // The silent one timed out: counted, and (fall = 1) marked down.
    let (sent, answered, _, timeouts, errors, _) = stats(&ls, 1);
    assert!(sent >= 1, "the silent backend");
    assert_eq!((answered, errors), (0, 0), "the silent backend");
    // ...but its timeout counted once.
    assert_eq!(timeouts, 1, "the silent backend's timeout was not counted");
    let st = ls.balancer.state();
    assert!(st.backends[0].is_up(), "ts1 answered: still up");
    assert!(
        !st.backends[1].is_up(),
        "a client-query timeout is a health failure (fall = 1)"
    );
}

/// A name of 250 bytes on the wire (four 60-letter labels and `test`).
fn long_name() -> String {
    let label = |c: char| std::iter::repeat_n(c, 60).collect::<String>();
    format!(
        "{}.{}.{}.{}.test.",
        label('a'),
        label('B'),
        label('c'),
        label('D')
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn long_synthesized_answer_is_not_truncated() {
    let _load = timed().await;
    let f1 = start_fake(Mode::Silent).await;
    let f2 = start_fake(Mode::Silent).await;
    // Backend names long enough for the EDE text to reach its cap.
    let n1 = format!("backend-{}-1", "x".repeat(90));
    let n2 = format!("backend-{}-2", "y".repeat(90));
    let mut c = strategy_config(
        &[(n1.as_str(), f1.addr), (n2.as_str(), f2.addr)],
        Strategy::Race,
        Layout::Partitioned,
    );
    c.timeout_ms = SYNTH_TIMEOUT.as_millis() as u64;
    let ls = start_ls(c).await;
    let name = long_name();

    // Over TCP (no size limit but 64 KiB) and over UDP with EDNS 1232.
    let over_tcp = async {
        let mut m = query(&name, RecordType::A, Some(1232));
        m.metadata.recursion_desired = true;
        tcp(ls.addr, &m).await
    };
    let q = wire_query(&name, RecordType::A, 0x2a2a, true, true);
    let (resp_tcp, (raw, resp_udp, _)) = tokio::join!(over_tcp, exchange(ls.addr, &q));
    assert_echo(&q, &raw);
    for (how, m) in [("tcp", resp_tcp), ("udp", resp_udp)] {
        assert_eq!(m.response_code, ResponseCode::NXDomain, "{how}");
        assert!(!m.truncation, "{how}: a made-up answer truncated ({m:?})");
        assert_eq!(m.authorities.len(), 1, "{how}: the SOA");
        assert!(m.edns.is_some(), "{how}: the OPT");
    }
}

// ---------------------------------------------------------------------------
// The hedge budget and the adaptive delay (issue: cutting the tail)
// ---------------------------------------------------------------------------

/// docs/CONFIG.md (the LS): "A hedge budget caps the extra upstream queries (default 10% of
/// client queries, token bucket)". ts1 (asked first) answers after 150 ms,
/// ts2 at once; a hedge after 10 ms would win every query. With a 10% budget
/// the bucket holds its burst plus 10% of the queries: the rest wait for ts1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedge_budget_stops_hedges_when_spent() {
    let _load = timed().await;
    let pair = slow_first(150).await;
    let ls = fixed_hedge_ls(&pair, 10, 10.0).await;
    const N: u64 = 160;
    let burst = dnslb::ls::hedge::BUDGET_BURST;
    let mut tasks = Vec::new();
    for k in 0..N {
        let addr = ls.addr;
        tasks.push(tokio::spawn(async move {
            let q = wire_query("www.a.test.", RecordType::A, k as u16, false, false);
            let (_, m, took) = exchange(addr, &q).await;
            assert_eq!(m.response_code, ResponseCode::NoError);
            took
        }));
    }
    let mut slow_answers = 0u64;
    for t in tasks {
        if t.await.unwrap() >= Duration::from_millis(140) {
            slow_answers += 1;
        }
    }
    let met = ls.balancer.metrics();
    let (hedges, refused) = (met.hedges.load(Relaxed), met.hedges_refused.load(Relaxed));
    eprintln!("budget: {hedges} hedges sent, {refused} refused, {slow_answers} slow answers");
    // Every query wanted a hedge (and, once the budget was spent, some
    // wanted a re-ask too, refused as well); the budget allowed burst + 10%.
    assert!(hedges + refused >= N);
    assert!(hedges <= burst + N / 10 + 1, "{hedges} hedges > budget");
    // The refused ones waited for ts1; the hedged ones did not.
    assert!(
        slow_answers >= N - burst - N / 10 - 1,
        "only {slow_answers} waited for ts1"
    );
    assert!(
        slow_answers + hedges >= N,
        "a query neither hedged nor waiting"
    );
    ls.stop().await;

    // A zero budget never hedges.
    let ls = fixed_hedge_ls(&pair, 10, 0.0).await;
    let q = wire_query("www.a.test.", RecordType::A, 7, false, false);
    let (_, m, took) = exchange(ls.addr, &q).await;
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert!(
        took >= Duration::from_millis(140),
        "answered after {took:?}"
    );
    let met = ls.balancer.metrics();
    assert_eq!(met.hedges.load(Relaxed), 0);
    assert_eq!(met.hedges_refused.load(Relaxed), 1);
    assert_eq!(stats(&ls, 1).0, 0, "ts2 never asked");
    ls.stop().await;
}

/// The adaptive delay: ts1 (asked first) stalls 2% of its answers by 100 ms.
/// Once enough samples exist, the delay is ts1's p95, clamped to
/// `hedge_min_ms` (its fast answers take well under a millisecond), so every
/// stall is hedged to ts2 after about 2 ms instead of the 200 ms maximum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_delay_hedges_stalls_after_the_measured_percentile() {
    let _load = timed().await;
    let dir = ZoneDir::new();
    let table = format!("{TABLE1}{TABLE2}");
    let mut s1 = ts_settings(vec![dir.write("ts1.txt", &table)]);
    s1.fault = Fault {
        delay_ms: 100,
        delay_ratio: 0.02,
        drop_ratio: 0.0,
    };
    let ts1 = start_ts(s1).await;
    let ts2 = start_ts_table(&dir, "ts2.txt", &table).await;
    let mut c = strategy_config(
        &[("ts1", ts1.addr), ("ts2", ts2.addr)],
        Strategy::Hedge,
        Layout::Replicated,
    );
    c.order = Order::Fixed;
    c.hedge_delay_ms = HedgeDelay::Adaptive;
    c.hedge_min_ms = 2;
    c.hedge_max_ms = 200;
    c.hedge_budget_pct = 100.0;
    let ls = start_ls(c).await;
    // Warm-up: the first samples (while the delay is still the maximum).
    for k in 0..120u16 {
        let q = wire_query("www.a.test.", RecordType::A, k, false, false);
        exchange(ls.addr, &q).await;
    }
    let hedges_before = ls.balancer.metrics().hedge_wins.load(Relaxed);
    let mut worst = Duration::ZERO;
    // Answers that took as long as a stall: what a stall not hedged costs.
    let mut slow = 0;
    for k in 0..600u16 {
        let q = wire_query("www.b.test.", RecordType::A, 1000 + k, false, false);
        let (_, m, took) = exchange(ls.addr, &q).await;
        assert_eq!(m.response_code, ResponseCode::NoError);
        worst = worst.max(took);
        slow += usize::from(took >= Duration::from_millis(100));
    }
    let won = ls.balancer.metrics().hedge_wins.load(Relaxed) - hedges_before;
    eprintln!(
        "adaptive: {won} hedges won in 600 queries, {slow} answers of 100 ms or more, worst {worst:?}"
    );
    // ~12 stalls expected (P(none) < 1e-5): each hedged after about 2 ms and
    // won, none waited out its 100 ms. A delay that had not adapted (the
    // 200 ms maximum, past the stall) would leave all of them slow (P(at
    // most 2 stalls) < 1e-3); a busy machine may make an answer or two slow.
    assert!(won >= 1, "no hedge won");
    assert!(
        slow <= 2,
        "{slow} answers took 100 ms or more (worst {worst:?}): stalls were not hedged"
    );
    ls.stop().await;
    ts1.stop().await;
    ts2.stop().await;
}
