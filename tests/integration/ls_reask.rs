//! Re-asks and what silence means, over real
//! sockets: a backend silent for a moment (a lost datagram, a restart) is
//! asked again while time remains under every strategy, so a name that
//! exists is not answered with the made-up NXDOMAIN; the same backend is
//! asked twice only with a hedge-budget token; and a partition silent for
//! the other partition's names is not marked down for it.
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

use crate::kit::{self, Fake, Reply, Via};
use dnslb::config::{HedgeDelay, Layout, Order, Strategy};

/// Answers of the background traffic before the lossy names are asked:
/// enough for the adaptive hedge delay to be measured (a few hundred ms of
/// a query every 2 ms).
const WARM_ANSWERS: u32 = 200;

/// The question's name, lower case, and the message, of a client query.
fn read(q: &[u8]) -> Option<(Message, String)> {
    let m = Message::from_vec(q).ok()?;
    let name = m.queries.first()?.name().to_lowercase().to_ascii();
    Some((m, name))
}

/// The number in `hN.<zone>` (`qN.example.`).
fn number(name: &str) -> u8 {
    name.trim_start_matches(['q', 'h'])
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// An authoritative answer to `q`: one A record 10.0.0.N, or NXDOMAIN.
fn answer(q: &Message, name: &str, exists: bool) -> Vec<u8> {
    let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
    r.metadata.authoritative = true;
    r.add_queries(q.queries.iter().cloned());
    if exists {
        let owner = q.queries[0].name().clone();
        let a = A(Ipv4Addr::new(10, 0, 0, number(name)));
        r.add_answer(Record::from_rdata(owner, 60, RData::A(a)));
    } else {
        r.metadata.response_code = ResponseCode::NXDomain;
    }
    r.to_vec().unwrap()
}

/// A backend that loses the first copy of every question and answers the
/// next ones (probes answered).
async fn first_copy_lost() -> Fake {
    let mut seen = HashSet::new();
    Fake::udp(move |q, _| {
        let Some((m, name)) = read(q) else {
            return Reply::Drop;
        };
        if seen.insert(name.clone()) {
            return Reply::Drop;
        }
        Reply::Now(answer(&m, &name, true))
    })
    .await
}

/// Two partitions: ts1 holds the `z1.test.` names and is silent (as if
/// restarting) until the instant set in the returned cell; ts2 holds the
/// `z2.test.` names and answers NXDOMAIN for the others at once.
async fn restarting_partitions() -> (Arc<Mutex<Option<Instant>>>, Fake, Fake) {
    let dead_until: Arc<Mutex<Option<Instant>>> = Arc::default();
    let dead = dead_until.clone();
    let ts1 = Fake::udp(move |q, _| {
        let down = dead.lock().unwrap().is_some_and(|t| Instant::now() < t);
        match read(q) {
            Some((m, name)) if !down => Reply::Now(answer(&m, &name, name.ends_with("z1.test."))),
            _ => Reply::Drop,
        }
    })
    .await;
    let ts2 = Fake::udp(|q, _| match read(q) {
        Some((m, name)) => Reply::Now(answer(&m, &name, name.ends_with("z2.test."))),
        None => Reply::Drop,
    })
    .await;
    (dead_until, ts1, ts2)
}

/// Warms an LS in front of [`restarting_partitions`] up: enough samples
/// for the adaptive delay (2 ms on loopback), every `z1` name answered.
async fn warm_up(ls: SocketAddr) {
    for n in 0..120 {
        let q = kit::query(&format!("h{}.z1.test.", n % 50), RecordType::A, None);
        assert_eq!(
            kit::udp(ls, &q).await.metadata.response_code,
            ResponseCode::NoError
        );
    }
}

/// Asks `qN.example. A` for each N of `names`, even ones over UDP (the
/// fast path), odd ones over TCP (the async path), all at once; each
/// answer's rcode and addresses.
async fn ask_all(ls: SocketAddr, names: impl Iterator<Item = String>) -> Vec<(String, Message)> {
    let mut tasks = Vec::new();
    for (i, name) in names.enumerate() {
        tasks.push(tokio::spawn(async move {
            let q = kit::query(&name, RecordType::A, Some(1232));
            let via = if i % 2 == 0 { Via::Udp } else { Via::Tcp };
            (name, kit::ask_via(ls, &q, via).await)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Under `sequential` and `race` (which never asked a backend
/// twice) one lost datagram became the default `on_timeout` answer, a
/// made-up NXDOMAIN for a name that exists. Now the silent backend is
/// asked again: every name answered with its record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_datagram_is_asked_again_under_sequential_and_race() {
    for strategy in [Strategy::Sequential, Strategy::Race] {
        let lossy = first_copy_lost().await;
        let mut cfg = kit::ls_config(&[("lossy", lossy.addr)]);
        cfg.strategy = strategy;
        cfg.layout = Layout::Replicated;
        cfg.timeout_ms = 1500;
        // on_timeout left at its default (nxdomain).
        let ls = kit::start_ls(cfg).await;
        let names = (1..=20).map(|n| format!("q{n}.example."));
        for (name, m) in ask_all(ls.addr, names).await {
            kit::assert_rcode(&m, ResponseCode::NoError, &format!("{strategy:?} {name}"));
            assert_eq!(
                kit::a_addrs(&m),
                [Ipv4Addr::new(10, 0, 0, number(&name))],
                "{strategy:?} {name}"
            );
        }
        assert!(lossy.queries.load(Relaxed) >= 40, "{strategy:?}");
        ls.stop().await;
    }
}

/// With `hedge_budget_pct = 0` a backend slower than
/// `try_timeout_ms` was asked every query twice (the re-ask at the per-try
/// timeout took no token). Now each query goes to it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_budget_a_slow_backend_is_asked_each_query_once() {
    for strategy in [Strategy::Hedge, Strategy::Sequential, Strategy::Race] {
        let slow = Fake::udp(|q, _| match read(q) {
            Some((m, name)) => Reply::After(Duration::from_millis(700), answer(&m, &name, true)),
            None => Reply::Drop,
        })
        .await;
        let mut cfg = kit::ls_config(&[("slow", slow.addr)]);
        cfg.strategy = strategy;
        cfg.layout = Layout::Replicated;
        cfg.hedge_budget_pct = 0.0;
        cfg.try_timeout_ms = 500;
        cfg.timeout_ms = 1500;
        let ls = kit::start_ls(cfg).await;
        let answers = ask_all(ls.addr, (1..=6).map(|n| format!("q{n}.example."))).await;
        for (name, m) in answers {
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        }
        assert_eq!(
            slow.queries.load(Relaxed),
            6,
            "{strategy:?}: each query sent once, not re-asked without a token"
        );
        assert_eq!(ls.balancer.metrics().hedges.load(Relaxed), 0);
        ls.stop().await;
    }
}

/// A table server restarting (silent for 400 ms, the
/// `dnslb up` restart after a `kill -9` is ~0.3 s) while a query for its
/// names is in flight, on a warm LS (adaptive delay at its 2 ms minimum,
/// so the one re-ask there was went out long before it was back): the
/// query was answered the made-up NXDOMAIN after 1.5 s. Now it is asked
/// again while time remains, and answered once the table server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_server_back_from_a_restart_answers_the_query_in_flight() {
    let (dead_until, ts1, ts2) = restarting_partitions().await;
    let cfg = kit::ls_config(&[("ts1", ts1.addr), ("ts2", ts2.addr)]);
    // Defaults: hedge, least-outstanding, partitioned, on_timeout nxdomain.
    let ls = kit::start_ls(cfg).await;
    warm_up(ls.addr).await;
    for path in [Via::Udp, Via::Tcp] {
        *dead_until.lock().unwrap() = Some(Instant::now() + Duration::from_millis(400));
        let q = kit::query("h7.z1.test.", RecordType::A, Some(1232));
        let started = Instant::now();
        let m = kit::ask_via(ls.addr, &q, path).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{path:?}: a made-up answer for a name ts1 holds: {m:?}"
        );
        assert_eq!(kit::a_addrs(&m), [Ipv4Addr::new(10, 0, 0, 7)], "{path:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(390),
            "{path:?}: answered while ts1 was down?"
        );
    }
    ls.stop().await;
}

/// Partitioned, backends silent for names they do not hold
/// (`on_miss = "silent"`), round-robin: a partition asked only for the
/// other's names was charged every such query as lost, marked down, and
/// its own names answered the made-up NXDOMAIN. A positive answer from
/// the other partition excuses that silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_silent_for_the_others_names_is_not_marked_down() {
    let holder = |zone: &'static str| {
        Fake::udp(move |q, _| match read(q) {
            Some((m, name)) if name.ends_with(zone) => Reply::Now(answer(&m, &name, true)),
            _ => Reply::Drop,
        })
    };
    let (s1, s2) = (holder("z1.test.").await, holder("z2.test.").await);
    let mut cfg = kit::ls_config(&[("s1", s1.addr), ("s2", s2.addr)]);
    cfg.order = Order::RoundRobin;
    cfg.layout = Layout::Partitioned;
    cfg.hedge_delay_ms = HedgeDelay::Fixed(20);
    cfg.timeout_ms = 600;
    let ls = kit::start_ls(cfg).await;
    // Only s2's names, half of them asked of s1 first.
    for round in 0..4 {
        let names = (1..=10).map(|n| format!("h{n}.z2.test."));
        for (name, m) in ask_all(ls.addr, names).await {
            kit::assert_rcode(&m, ResponseCode::NoError, &format!("{round} {name}"));
        }
    }
    // Every copy s1 left unanswered has reached its deadline.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let s1_state = &ls.balancer.state().backends[0];
    assert!(
        s1_state.is_up(),
        "s1 marked down for silence the layout expects"
    );
    let q = kit::query("h3.z1.test.", RecordType::A, None);
    let m = kit::udp(ls.addr, &q).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    ls.stop().await;
}

/// Hostile read of the fixes (H1): a restart under load. With the budget
/// at 0 (a burst of queries in flight during a restart spends any budget),
/// 300 queries sent while ts1 is silent for 400 ms were answered the
/// made-up NXDOMAIN once their re-asks were refused. A backend silent to
/// everyone is re-asked without a token: every name is found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_load_needs_no_budget_to_find_the_names() {
    let (dead_until, ts1, ts2) = restarting_partitions().await;
    let mut cfg = kit::ls_config(&[("ts1", ts1.addr), ("ts2", ts2.addr)]);
    cfg.hedge_budget_pct = 0.0;
    let ls = kit::start_ls(cfg).await;
    warm_up(ls.addr).await;
    *dead_until.lock().unwrap() = Some(Instant::now() + Duration::from_millis(400));
    let got = ask_all(ls.addr, (0..300).map(|n| format!("h{}.z1.test.", n % 100))).await;
    let wrong: Vec<_> = got
        .iter()
        .filter(|(_, m)| m.metadata.response_code != ResponseCode::NoError)
        .map(|(name, m)| format!("{name}: {:?}", m.metadata.response_code))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of 300 not found: {wrong:?}",
        wrong.len()
    );
    for (name, m) in &got {
        assert_eq!(
            kit::a_addrs(m),
            [Ipv4Addr::new(10, 0, 0, number(name))],
            "{name}"
        );
    }
    ls.stop().await;
}

/// Hostile read of the fixes (H1c): loss beyond the budget. A backend that
/// serves other queries but loses every copy of some (a path losing more
/// than the budget covers), `hedge_budget_pct = 0`: those queries got the
/// made-up NXDOMAIN although the LS held its re-asks back. Now their one
/// free re-ask is sent and, held back after that, the deadline's answer is
/// SERVFAIL (the client asks again), never "no such name".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_the_budget_did_not_let_the_ls_ask_again_is_not_nxdomain() {
    let (b, copies) = loses_first_copies(u32::MAX).await;
    let mut cfg = kit::ls_config(&[("b", b.addr)]);
    cfg.hedge_budget_pct = 0.0;
    cfg.strategy = Strategy::Sequential;
    let ls = kit::start_ls(cfg).await;
    // Others' names answered all along, so b is serving.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        let addr = ls.addr;
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Relaxed) {
                let q = kit::query(&format!("h{}.example.", n % 50), RecordType::A, None);
                assert_eq!(
                    kit::udp(addr, &q).await.metadata.response_code,
                    ResponseCode::NoError
                );
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let got = ask_all(ls.addr, (0..6).map(|n| format!("lost{n}.example."))).await;
    stop.store(true, Relaxed);
    traffic.await.unwrap();
    for (name, m) in &got {
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::ServFail,
            "{name}: the LS did not ask again, yet answered {m:?}"
        );
        let asked = copies.lock().unwrap().get(name).copied().unwrap_or(0);
        assert!(asked >= 2, "{name}: the lost copy replaced once: {asked}");
    }
    ls.stop().await;
}

/// Hostile read (today): backends that answer their probes but never a
/// client query (silent for every name) are the mission's "nobody
/// answers": each query is answered the synthesized NXDOMAIN at its
/// deadline, the tenth as the first. With the held-back rule applied to
/// them, every query after the budget's first tokens got SERVFAIL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_that_never_answer_a_client_get_the_synthesized_nxdomain_every_time() {
    let silent = || {
        Fake::udp(|q, _| {
            if kit::is_probe(q) {
                Reply::Now(kit::wire_answer(q, 0))
            } else {
                Reply::Drop
            }
        })
    };
    let (s1, s2) = (silent().await, silent().await);
    let mut cfg = kit::ls_config(&[("s1", s1.addr), ("s2", s2.addr)]);
    cfg.timeout_ms = 300;
    cfg.hedge_budget_pct = 0.0;
    cfg.strategy = Strategy::Race;
    let ls = kit::start_ls(cfg).await;
    let got = ask_all(ls.addr, (0..10).map(|n| format!("q{n}.example."))).await;
    for (name, m) in &got {
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "{name}: {m:?}"
        );
    }
    ls.stop().await;
}

/// A backend that loses the first `lose` copies of every `lostN` name
/// (every copy with `u32::MAX`) and answers everything else at once: the
/// copies each `lostN` got.
async fn loses_first_copies(
    lose: u32,
) -> (Fake, Arc<Mutex<std::collections::HashMap<String, u32>>>) {
    let copies: Arc<Mutex<std::collections::HashMap<String, u32>>> = Arc::default();
    let seen = copies.clone();
    let fake = Fake::udp(move |q, _| {
        let Some((m, name)) = read(q) else {
            return Reply::Drop;
        };
        if name.starts_with("lost") {
            let mut seen = seen.lock().unwrap();
            let n = seen.entry(name.clone()).or_default();
            *n += 1;
            if *n <= lose {
                return Reply::Drop;
            }
        }
        Reply::Now(answer(&m, &name, true))
    })
    .await;
    (fake, copies)
}

/// Loss alone never ends in a made-up answer while time remains: under
/// `sequential` (per-try timeout 500 ms, deadline 1.5 s: the LS asked at
/// 0, 500 and 1,000 ms) three copies of a query lost in a row made the
/// default NXDOMAIN for a name that exists (and under `partitioned`, with
/// a second backend saying "no", two). A copy is known lost once the
/// backend has answered a query sent after it, and is asked again then:
/// every name found, under every strategy and layout, the other names'
/// traffic going on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_lost_in_a_row_are_asked_again_while_time_remains() {
    let combos = [
        (Strategy::Sequential, Layout::Replicated),
        (Strategy::Sequential, Layout::Partitioned),
        (Strategy::Hedge, Layout::Partitioned),
        (Strategy::Race, Layout::Replicated),
    ];
    for (strategy, layout) in combos {
        let (lossy, copies) = loses_first_copies(3).await;
        let other = Fake::udp(|q, _| match read(q) {
            Some((m, name)) => Reply::Now(answer(&m, &name, false)),
            None => Reply::Drop,
        })
        .await;
        let backends = match layout {
            Layout::Replicated => vec![("lossy", lossy.addr)],
            Layout::Partitioned => vec![("lossy", lossy.addr), ("other", other.addr)],
        };
        let mut cfg = kit::ls_config(&backends);
        cfg.strategy = strategy;
        cfg.layout = layout;
        // Defaults: try_timeout_ms 500, timeout_ms 1500, on_timeout nxdomain.
        let ls = kit::start_ls(cfg).await;
        // The other names answered all along (a query every 2 ms).
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let answered = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let traffic = {
            let (stop, answered, addr) = (stop.clone(), answered.clone(), ls.addr);
            tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(Relaxed) {
                    let q = kit::query(&format!("h{}.example.", n % 50), RecordType::A, None);
                    let m = kit::udp(addr, &q).await;
                    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
                    n += 1;
                    answered.store(n, Relaxed);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        // Warm: the adaptive delay measured over a few hundred answers.
        while answered.load(Relaxed) < WARM_ANSWERS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let got = ask_all(ls.addr, (1..=12).map(|n| format!("lost{n}.example."))).await;
        stop.store(true, Relaxed);
        traffic.await.unwrap();
        for (name, m) in &got {
            let what = format!("{strategy:?} {layout:?} {name}");
            kit::assert_rcode(m, ResponseCode::NoError, &what);
            assert_eq!(
                kit::a_addrs(m),
                [Ipv4Addr::new(10, 0, 0, number(name))],
                "{what}"
            );
            let asked = copies.lock().unwrap().get(name).copied().unwrap_or(0);
            assert!(asked >= 4, "{what}: {asked} copies");
        }
        ls.stop().await;
    }
}
