//! The async driver's timers, on tokio's paused clock: what a user waits
//! for, to the millisecond of virtual time. Each test runs on a
//! current-thread runtime started paused; the LS (or TS) and its fake
//! backends are tasks of that runtime speaking real loopback sockets, so
//! the clock jumps straight to the next timer whenever every task waits.
//!
//! Why that is deterministic: the clock only moves when the runtime finds
//! no task to run and no socket ready. Every datagram and segment here is
//! sent by a task of the same runtime, and loopback delivers it inside the
//! sending system call, so by the time the runtime looks, whatever was
//! sent is already readable: the clock never overtakes a message in flight.
//!
//! Timed here: the hedge delay and the `sequential` try timeout as a TCP
//! client sees them, the `on_timeout` answer at `timeout_ms` (also while
//! the LS stops, and after a reload that lengthened it), the TCP idle
//! timeout of the LS (counted from the last answer) and of the TS, the
//! health probes' `fall` and `rise` at the probe interval's rounds, and
//! `dnslb ls` waiting out its start-up round.
//!
//! Not timed: how long a stopping LS takes to end. It waits for its UDP
//! workers' threads (below), and while it waits on another thread the
//! paused clock runs ahead through whatever timers are left.
//!
//! The LS's TCP connections stay on the test's runtime here: on a
//! current-thread runtime `dnslb::ls::serve` keeps them where they were
//! accepted rather than hand them to its worker threads (as it does under
//! `dnslb ls`, each connection on one worker's runtime and clock).
//!
//! Not timed here: the UDP fast path (`dnslb::ls::udp_path`). Its workers run
//! on threads of their own, each with its own runtime on the real clock
//! (`dnslb::server::thread`), so a paused test clock does not reach their
//! timers, and a datagram a worker answers from another thread races the
//! auto-advance. Its timing rules are the same pure `Resolution` machine,
//! tested on a controlled clock in the library (`ls::timing_tests`); its
//! end-to-end behaviour has the wall-clock tests of the other modules.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, sleep_until};

use dnslb::config::{Config, HedgeDelay, LsConfig, OnTimeout, Order, Strategy};
use dnslb::metrics::{Readiness, ReadyState};
use dnslb::roles::ls::{LsRole, LsSockets};
use dnslb::roles::{Control, Controls, RoleError};
use dnslb::server::ServerOptions;

use crate::kit::{
    Fake, Reply, Stalled, ZoneDir, a_addrs, empty_answer, health_config, is_probe, ls_config,
    query, read_frame, start_ls, start_ts_with, tcp_send, ts_settings, wire_answer,
};

const MS: Duration = Duration::from_millis(1);

/// A backend that answers every client query at once with A 192.0.2.77.
async fn quick() -> Fake {
    Fake::answering(|q| wire_answer(q, 0)).await
}

/// `silent` then `quick` under `strategy`, asked in config order.
fn two_backends(strategy: Strategy, silent: SocketAddr, quick: SocketAddr) -> LsConfig {
    LsConfig {
        strategy,
        order: Order::Fixed,
        ..ls_config(&[("silent", silent), ("quick", quick)])
    }
}

/// Asks `name` A over a new TCP connection to `addr`: the answer and the
/// virtual time it took.
async fn timed_tcp(addr: SocketAddr, name: &str) -> (Message, Duration) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let t0 = Instant::now();
    tcp_send(&mut s, &query(name, RecordType::A, None).to_vec().unwrap()).await;
    let raw = read_frame(&mut s).await.expect("an answer over tcp");
    (Message::from_vec(&raw).unwrap(), t0.elapsed())
}

/// Starts an LS for `cfg` and asks it `a.example` A over TCP: the answer
/// and the virtual time it took.
async fn ask_new_ls(cfg: LsConfig) -> (Message, Duration) {
    let ls = start_ls(cfg).await;
    timed_tcp(ls.addr, "a.example").await
}

/// Lets every task woken at this instant run (and the messages they send
/// be read) before the test looks: yielding never moves the paused clock.
/// The longest chain here (a probe sent, the fake's answer, the pool's
/// reader, the probe round) needs four rounds of the scheduler; 32 leave
/// room.
async fn settle() {
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
}

/// Sleeps until `t0 + ms`, then [`settle`]s.
async fn at(t0: Instant, ms: u64) {
    sleep_until(t0 + Duration::from_millis(ms)).await;
    settle().await;
}

/// Under `hedge`, the first backend silent: the second is asked after
/// exactly the hedge delay, and its answer reaches the client then.
#[tokio::test(start_paused = true)]
async fn hedge_answers_after_exactly_the_hedge_delay() {
    let (silent, quick) = (Stalled::start().await, quick().await);
    let cfg = LsConfig {
        hedge_delay_ms: HedgeDelay::Fixed(40),
        ..two_backends(Strategy::Hedge, silent.addr, quick.addr)
    };
    let (m, took) = ask_new_ls(cfg).await;
    assert_eq!(
        a_addrs(&m),
        ["192.0.2.77".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(took, 40 * MS, "the hedge went out after the hedge delay");
    assert_eq!(silent.queries.load(Relaxed), 1);
    assert_eq!(quick.queries.load(Relaxed), 1);
}

/// Under `sequential`, the first backend silent: the second is asked after
/// exactly `try_timeout_ms`.
#[tokio::test(start_paused = true)]
async fn sequential_moves_on_after_exactly_the_try_timeout() {
    let (silent, quick) = (Stalled::start().await, quick().await);
    let cfg = LsConfig {
        try_timeout_ms: 300,
        ..two_backends(Strategy::Sequential, silent.addr, quick.addr)
    };
    let (m, took) = ask_new_ls(cfg).await;
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(
        took,
        300 * MS,
        "the next backend was asked at the try timeout"
    );
    assert_eq!(quick.queries.load(Relaxed), 1);
}

/// Every backend silent: the client gets the `on_timeout` answer (a
/// synthesized NXDOMAIN) at exactly `timeout_ms`, after both were asked.
#[tokio::test(start_paused = true)]
async fn all_silent_answers_on_timeout_at_exactly_timeout_ms() {
    let (s1, s2) = (Stalled::start().await, Stalled::start().await);
    let (m, took) = ask_new_ls(LsConfig {
        timeout_ms: 700,
        on_timeout: OnTimeout::Nxdomain,
        hedge_delay_ms: HedgeDelay::Fixed(40),
        ..two_backends(Strategy::Hedge, s1.addr, s2.addr)
    })
    .await;
    assert_eq!(m.response_code, ResponseCode::NXDomain);
    assert_eq!(
        took,
        700 * MS,
        "the synthesized answer came at the deadline"
    );
    assert!(s1.queries.load(Relaxed) >= 1 && s2.queries.load(Relaxed) >= 1);
}

/// Reads from `s` until the server closes it; the virtual time that took.
async fn time_to_close(s: &mut TcpStream) -> Duration {
    let t0 = Instant::now();
    assert!(read_frame(s).await.is_none(), "no answer was asked for");
    t0.elapsed()
}

/// The LS closes a TCP connection idle for exactly 10 s (the server
/// layer's default), counted from the connection, then from the last
/// answer sent: a query that takes a second to answer is not idle time.
#[tokio::test(start_paused = true)]
async fn ls_closes_an_idle_connection_after_exactly_the_idle_timeout() {
    let slow = Fake::udp(|q, _| Reply::After(Duration::from_secs(1), wire_answer(q, 0))).await;
    let ls = start_ls(ls_config(&[("slow", slow.addr)])).await;
    let idle = ServerOptions::default().tcp_idle_timeout;
    assert_eq!(idle, Duration::from_secs(10));

    let mut s = TcpStream::connect(ls.addr).await.unwrap();
    assert_eq!(time_to_close(&mut s).await, idle);

    // Asked 4 s in, answered 5 s in: closed 10 s after the answer.
    let mut s = TcpStream::connect(ls.addr).await.unwrap();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    tcp_send(
        &mut s,
        &query("a.example", RecordType::A, None).to_vec().unwrap(),
    )
    .await;
    assert!(read_frame(&mut s).await.is_some(), "the query is answered");
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    assert_eq!(time_to_close(&mut s).await, idle);
}

/// The TS honours the server layer's idle timeout as set.
#[tokio::test(start_paused = true)]
async fn ts_closes_an_idle_connection_after_exactly_the_idle_timeout() {
    let dir = ZoneDir::new();
    let settings = ts_settings(vec![dir.write("t.txt", "a.example 10.9.0.1 A\n")]);
    let opts = ServerOptions {
        workers: 1,
        tcp_idle_timeout: Duration::from_secs(3),
        ..ServerOptions::default()
    };
    let ts = start_ts_with(settings, opts).await;
    let mut s = TcpStream::connect(ts.addr).await.unwrap();
    assert_eq!(time_to_close(&mut s).await, Duration::from_secs(3));
}

/// A backend whose answers to the LS's probes (`. SOA`) are switched on and
/// off (the kit's [`Fake`] can only mute them for good); it answers nothing
/// else. Stopped when dropped.
struct ProbeSwitch {
    addr: SocketAddr,
    on: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl ProbeSwitch {
    async fn start() -> ProbeSwitch {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let on = Arc::new(AtomicBool::new(true));
        let on2 = on.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let q = &buf[..n];
                if is_probe(q) && on2.load(Relaxed) {
                    let _ = sock.send_to(&empty_answer(q), from).await;
                }
            }
        });
        ProbeSwitch { addr, on, task }
    }

    fn set(&self, on: bool) {
        self.on.store(on, Relaxed);
    }
}

impl Drop for ProbeSwitch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Probes every 1 s, each waiting 200 ms, `fall` 3, `rise` 2: a backend
/// silent from the start is marked down by the third round's timeout
/// (3.2 s), not a millisecond sooner; answering again from then, it is
/// marked up by the second round after (5 s), not a millisecond sooner.
#[tokio::test(start_paused = true)]
async fn health_falls_and_rises_at_the_probe_rounds() {
    let b = ProbeSwitch::start().await;
    let cfg = LsConfig {
        health: health_config(1000, 3, 2, 200),
        ..ls_config(&[("b", b.addr)])
    };
    let ls = start_ls(cfg).await;
    // The first round (start-up) found it up at once: no time passed.
    let t0 = Instant::now();
    let state = ls.balancer.state();
    let backend = &state.backends[0];
    assert!(backend.is_up());
    b.set(false);

    at(t0, 3199).await;
    assert!(backend.is_up(), "two failed rounds and a pending third");
    at(t0, 3200).await;
    assert!(!backend.is_up(), "down at the third round's probe timeout");

    b.set(true);
    at(t0, 4999).await;
    assert!(!backend.is_up(), "one good round of two");
    at(t0, 5000).await;
    assert!(backend.is_up(), "up at the second good round");
}

/// `dnslb ls` for `lsc`, started now in a task: its DNS address, its
/// readiness, the sender of its controls and the task.
async fn spawn_ls_role(
    lsc: LsConfig,
) -> (
    SocketAddr,
    Readiness,
    tokio::sync::mpsc::UnboundedSender<Control>,
    tokio::task::JoinHandle<Result<(), RoleError>>,
) {
    let sockets = LsSockets::bind(&lsc).await.unwrap();
    let addr = sockets.dns_addrs()[0];
    let cfg = Config {
        ls: Some(lsc),
        ts: Vec::new(),
        key: Vec::new(),
        path: PathBuf::new(),
    };
    let role = LsRole::new(cfg).unwrap();
    let ready = role.readiness();
    let (tx, controls) = Controls::channel();
    (addr, ready, tx, tokio::spawn(role.run(sockets, controls)))
}

/// A backend that does not answer the start-up probes holds `dnslb ls`
/// back for exactly the probe timeout (500 ms), then it serves.
#[tokio::test(start_paused = true)]
async fn ls_serves_after_exactly_the_first_rounds_limit() {
    let b = ProbeSwitch::start().await;
    b.set(false);
    let t0 = Instant::now();
    let (_, ready, _tx, _task) = spawn_ls_role(LsConfig {
        health: health_config(1000, 3, 2, 500),
        ..ls_config(&[("b", b.addr)])
    })
    .await;
    at(t0, 499).await;
    assert_eq!(ready.state(), ReadyState::Starting);
    at(t0, 500).await;
    assert_eq!(ready.state(), ReadyState::Serving);
}

/// Stopping drains: a query in flight when the stop comes is not cut off;
/// its client gets the `on_timeout` answer at its deadline, as if no stop
/// had come, and the LS then ends cleanly.
#[tokio::test(start_paused = true)]
async fn a_stopping_ls_answers_the_query_in_flight_at_its_deadline() {
    let silent = Stalled::start().await;
    let (addr, ready, tx, task) = spawn_ls_role(LsConfig {
        timeout_ms: 700,
        ..ls_config(&[("silent", silent.addr)])
    })
    .await;
    settle().await;
    assert_eq!(
        ready.state(),
        ReadyState::Serving,
        "probes answered: at once"
    );
    let client = tokio::spawn(timed_tcp(addr, "a.example"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.send(Control::Shutdown).unwrap();
    let (m, took) = client.await.unwrap();
    assert_eq!(m.response_code, ResponseCode::NXDomain);
    assert_eq!(took, 700 * MS, "answered at its deadline, not cut off");
    assert_eq!(ready.state(), ReadyState::Stopping);
    task.await.unwrap().unwrap();
}

/// An LS started with `timeout_ms` 700 and reloaded to 4,000 ms takes a TCP
/// query for a silent backend; then, when `back` is set, it is reloaded
/// back to 700 ms; then it is stopped. The query's answer and how long it
/// took.
async fn drained_after_reloads(back: bool) -> (Message, Duration) {
    let silent = Stalled::start().await;
    let cfg = LsConfig {
        timeout_ms: 700,
        ..ls_config(&[("silent", silent.addr)])
    };
    let ls = start_ls(cfg.clone()).await;
    ls.balancer.reload(&LsConfig {
        timeout_ms: 4000,
        ..cfg.clone()
    });
    settle().await;
    let client = tokio::spawn(timed_tcp(ls.addr, "a.example"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    if back {
        ls.balancer.reload(&cfg);
        settle().await;
    }
    let stopped = tokio::spawn(ls.stop());
    let answer = client.await.unwrap();
    stopped.await.unwrap();
    answer
}

/// A reload that lengthens `timeout_ms` lengthens the stop's drain with it:
/// a TCP query in flight when the stop comes is answered at its deadline
/// (4,000 ms, as reloaded), not cut off at the drain grace the LS started
/// with (700 ms and a second: its connection closed unanswered).
#[tokio::test(start_paused = true)]
async fn a_stopping_ls_drains_to_the_deadline_a_reload_lengthened() {
    let (m, took) = drained_after_reloads(false).await;
    assert_eq!(m.response_code, ResponseCode::NXDomain);
    assert_eq!(
        took,
        4000 * MS,
        "answered at its reloaded deadline, not cut off"
    );
}

/// A query admitted on a snapshot a later reload replaced keeps that
/// snapshot's deadline through the stop: `timeout_ms` reloaded to 4,000
/// ms, the query sent, `timeout_ms` reloaded back to 700 ms, then the
/// stop. The query is answered at its 4,000 ms deadline, not cut off at
/// the grace of the snapshot in force at the stop (700 ms and a second).
#[tokio::test(start_paused = true)]
async fn a_stopping_ls_drains_a_query_a_later_reload_did_not_shorten() {
    let (m, took) = drained_after_reloads(true).await;
    assert_eq!(m.response_code, ResponseCode::NXDomain);
    assert_eq!(
        took,
        4000 * MS,
        "answered at the deadline it was admitted with"
    );
}
