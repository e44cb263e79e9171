//! What the docs promise of a running `dnslb ls`, checked on a real process
//! (the LS as `dnslb ls -c FILE`, its backends table servers in the test):
//!
//! * README: on SIGTERM "the LS stops reading new [queries], answers every
//!   query already in flight".
//! * METRICS.md `/ready`: during the first health round the metrics port is
//!   bound, and a probe's request waits and gets its answer (200,
//!   `serving`) once serving begins, never a 200 before.
//! * METRICS.md: `dnslb_late_responses_total` counts the upstream answers
//!   that came after their query was settled (a lost race), not as suspect.
//! * CONFIG.md: `hedge_percentile` chooses the adaptive hedge delay, and
//!   `sticky_size` bounds what the `sticky` order remembers.
//! * METRICS.md: `dnslb_shed_total{reason="queue"}` counts the stale
//!   queries of a standing receive queue, dropped unanswered.
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use rustix::process::Signal;
use tokio::net::UdpSocket;

use dnslb::config::Fault;

use crate::kit::{self, Stalled, TestTs, ZoneDir, start_ts, ts_settings};
use crate::kit::{Proc, free_ports, local, poll_until_async};
use crate::kit::{http_try_get, parse_exposition, value};

const TABLE: &str = "www.p.test 192.0.2.7 A\n";
const WANT: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 7);
/// How long the LS may take to come up.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// A TS serving [`TABLE`] with `fault`.
async fn ts(dir: &ZoneDir, file: &str, fault: Fault) -> TestTs {
    let mut s = ts_settings(vec![dir.write(file, TABLE)]);
    s.fault = fault;
    start_ts(s).await
}

fn delayed(ms: u64, ratio: f64) -> Fault {
    Fault {
        delay_ms: ms,
        delay_ratio: ratio,
        drop_ratio: 0.0,
    }
}

/// A `dnslb ls -c FILE` with `ls_keys` in `[ls]`, `health` in `[ls.health]`
/// and `backends`; its DNS and metrics addresses.
struct Ls {
    proc: Proc,
    dns: SocketAddr,
    metrics: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Ls {
    fn spawn(ls_keys: &str, health: &str, backends: &[SocketAddr]) -> Ls {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(2);
        let mut text = format!(
            "[ls]\nlisten = [\"127.0.0.1:{}\"]\nmetrics = \"127.0.0.1:{}\"\nworkers = 1\n{ls_keys}\n\
             [ls.health]\n{health}\n",
            ports[0], ports[1]
        );
        for (i, b) in backends.iter().enumerate() {
            text.push_str(&format!(
                "[[ls.backend]]\nname = \"b{i}\"\naddr = \"{b}\"\n"
            ));
        }
        let config = dir.path().join("config.toml");
        std::fs::write(&config, text).unwrap();
        let proc = Proc::dnslb(
            "dnslb ls",
            &["ls", "-c", config.to_str().unwrap()],
            Path::new("/"),
        );
        Ls {
            proc,
            dns: local(ports[0]),
            metrics: local(ports[1]),
            _dir: dir,
        }
    }

    /// Waits until `/ready` says 200.
    async fn ready(&mut self) {
        let m = self.metrics;
        let ok = poll_until_async(READY_LIMIT, Duration::from_millis(20), async || {
            self.proc.assert_running();
            http_try_get(m, "/ready").await.filter(|r| r.status == 200)
        })
        .await;
        assert!(ok.is_some(), "/ready never 200: {}", self.proc.stderr_now());
    }

    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let r = http_try_get(self.metrics, "/metrics")
            .await
            .expect("/metrics");
        value(&parse_exposition(&r.body), name, labels)
    }
}

/// Sends `www.p.test A` with `id` from `sock` (connected to the LS).
async fn send(sock: &UdpSocket, id: u16) {
    let mut q = kit::query("www.p.test", RecordType::A, Some(1232));
    q.metadata.id = id;
    sock.send(&q.to_vec().unwrap()).await.unwrap();
}

/// The next answer on `sock` within `wait`; `None` if none (or the port closed).
async fn recv(sock: &UdpSocket, wait: Duration) -> Option<Message> {
    let mut buf = vec![0u8; 65_535];
    let n = tokio::time::timeout(wait, sock.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    Message::from_vec(&buf[..n]).ok()
}

async fn client(ls: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.connect(ls).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_the_query_in_flight_and_reads_no_new_one() {
    let _load = crate::kit::timed().await;
    const DELAY_MS: u64 = 1500;
    let dir = ZoneDir::new();
    let ts1 = ts(&dir, "t.txt", delayed(DELAY_MS, 1.0)).await;
    let mut ls = Ls::spawn(
        "strategy = \"race\"\ntimeout_ms = 5000",
        "interval_ms = 60000\ntimeout_ms = 3000",
        &[ts1.addr],
    );
    ls.ready().await;
    let first = client(ls.dns).await;
    send(&first, 1).await;
    // The LS has read it (it is in flight: the TS holds it for DELAY_MS).
    let read = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(5),
        async || (ls.metric("dnslb_queries_total", &[]).await >= 1.0).then_some(()),
    )
    .await;
    assert!(read.is_some(), "the LS never counted the first query");
    let term_at = Instant::now();
    ls.proc.signal(Signal::TERM);
    let m = ls.metrics;
    let stopping = poll_until_async(
        Duration::from_secs(5),
        Duration::from_millis(2),
        async || {
            http_try_get(m, "/ready")
                .await
                .filter(|r| r.status == 503 && r.body.contains("stopping"))
        },
    )
    .await;
    assert!(
        stopping.is_some(),
        "/ready never said stopping after SIGTERM"
    );
    // Sent once the LS says it is stopping: never read, so never answered.
    let late = client(ls.dns).await;
    send(&late, 2).await;
    let answer = recv(&first, Duration::from_secs(6)).await;
    let answer = answer.unwrap_or_else(|| panic!("the query in flight at SIGTERM got no answer"));
    assert_eq!(answer.metadata.id, 1);
    assert_eq!(
        kit::a_addrs(&answer),
        vec![WANT],
        "the backend's answer: {answer:?}"
    );
    assert!(
        term_at.elapsed() < Duration::from_millis(DELAY_MS) + Duration::from_secs(3),
        "answered only {:?} after SIGTERM",
        term_at.elapsed()
    );
    let status = ls.proc.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "dnslb ls after SIGTERM"
    );
    let second = recv(&late, Duration::from_millis(500)).await;
    assert!(
        second.is_none(),
        "a query sent after /ready said stopping was answered: {second:?}"
    );
    ts1.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_waits_for_the_first_health_round_then_says_serving() {
    let _load = crate::kit::timed().await;
    const PROBE_MS: u64 = 1500;
    // A backend that never answers: the first round lasts the probe timeout.
    let silent = Stalled::start().await;
    silent.mute_probes();
    let started = Instant::now();
    let mut ls = Ls::spawn("", &format!("timeout_ms = {PROBE_MS}"), &[silent.addr]);
    let m = ls.metrics;
    // The port accepts before the round is over...
    let connected = poll_until_async(READY_LIMIT, Duration::from_millis(5), async || {
        ls.proc.assert_running();
        tokio::net::TcpStream::connect(m).await.ok()
    })
    .await;
    assert!(connected.is_some(), "the metrics port never accepted");
    let connected_after = started.elapsed();
    // ...and a /ready asked then is answered only once the LS serves: 200.
    let r = http_try_get(m, "/ready")
        .await
        .expect("an answer to /ready");
    let answered_after = started.elapsed();
    eprintln!(
        "promises: /ready: port accepting {connected_after:?} after start, answered {} {} \
         {answered_after:?} after start (probe timeout {PROBE_MS} ms)",
        r.status, r.body
    );
    assert_eq!(
        (r.status, r.body.contains("serving")),
        (200, true),
        "{}",
        r.body
    );
    assert!(
        answered_after >= Duration::from_millis(PROBE_MS),
        "/ready answered {answered_after:?} after start, before the first health round's \
         {PROBE_MS} ms were over"
    );
    ls.proc.signal(Signal::TERM);
    assert!(ls.proc.wait_exit(Duration::from_secs(10)).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_responses_of_lost_races_are_counted_and_not_suspect() {
    const N: u16 = 20;
    const SLOW_MS: u64 = 100;
    let dir = ZoneDir::new();
    let fast = ts(&dir, "fast.txt", Fault::default()).await;
    let slow = ts(&dir, "slow.txt", delayed(SLOW_MS, 1.0)).await;
    let mut ls = Ls::spawn(
        "strategy = \"race\"\nlayout = \"replicated\"\ntimeout_ms = 3000",
        "interval_ms = 60000",
        &[fast.addr, slow.addr],
    );
    ls.ready().await;
    // The slow TS's delay spares health probes (`. SOA`, see
    // `looks_like_health_probe` in src/ts/respond.rs), so the start-up
    // round's probes are answered at once and none of them comes late;
    // the next round is a minute away. Every late answer counted below is
    // a client query's.
    let before = ls.metric("dnslb_late_responses_total", &[]).await;
    assert_eq!(before, 0.0, "late responses before any client query");
    let sock = client(ls.dns).await;
    for id in 0..N {
        send(&sock, id).await;
        let a = recv(&sock, Duration::from_secs(4))
            .await
            .expect("an answer");
        assert_eq!(kit::a_addrs(&a), vec![WANT]);
    }
    // Each query went to both; the loser's answer comes after the winner's.
    let mut last = 0.0;
    let all = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || {
            last = ls.metric("dnslb_late_responses_total", &[]).await - before;
            (last >= f64::from(N)).then_some(())
        },
    )
    .await;
    assert!(all.is_some(), "dnslb_late_responses_total {last}, want {N}");
    assert_eq!(
        ls.metric("dnslb_late_responses_total", &[]).await - before,
        f64::from(N),
        "one late answer per query"
    );
    for reason in ["wrong_source", "wrong_id", "wrong_question"] {
        assert_eq!(
            ls.metric("dnslb_dropped_responses_total", &[("reason", reason)])
                .await,
            0.0,
            "a lost race's answer is not suspect ({reason})"
        );
    }
    ls.proc.signal(Signal::TERM);
    assert!(ls.proc.wait_exit(Duration::from_secs(10)).is_some());
    fast.stop().await;
    slow.stop().await;
}

/// Client queries through `ls` one at a time: how many of `n` took longer
/// than `slow`.
async fn count_slow(ls: SocketAddr, n: u16, slow: Duration) -> usize {
    let sock = client(ls).await;
    let mut count = 0;
    for id in 0..n {
        let t = Instant::now();
        send(&sock, id).await;
        let a = recv(&sock, Duration::from_secs(4))
            .await
            .expect("an answer");
        assert_eq!(kit::a_addrs(&a), vec![WANT]);
        count += usize::from(t.elapsed() > slow);
    }
    count
}

/// CONFIG.md: `hedge_percentile` is the percentile of a backend's recent
/// latency the adaptive hedge delay waits. The first backend (order
/// `fixed`) answers 20% of the queries after SLOW_MS, the rest at once; the
/// second at once. At the 50th percentile the delay is the fast answers'
/// (clamped to 1 ms), so a slow answer is hedged and the client hardly ever
/// waits SLOW_MS; at the 99th it is SLOW_MS itself, so about 20% wait it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedge_percentile_from_the_config_sets_the_adaptive_delay() {
    const SLOW_MS: u64 = 100;
    const WARM: u16 = 60; // the adaptive delay needs 50 samples
    const N: u16 = 100;
    let dir = ZoneDir::new();
    let bimodal = ts(&dir, "b.txt", delayed(SLOW_MS, 0.2)).await;
    let fast = ts(&dir, "f.txt", Fault::default()).await;
    let mut slow_at = Vec::new();
    for pct in [50, 99] {
        let mut ls = Ls::spawn(
            &format!(
                "strategy = \"hedge\"\norder = \"fixed\"\nlayout = \"replicated\"\n\
                 hedge_delay_ms = \"adaptive\"\nhedge_percentile = {pct}\nhedge_min_ms = 1\n\
                 hedge_max_ms = 200\nhedge_budget_pct = 100\ntimeout_ms = 3000"
            ),
            "interval_ms = 60000",
            &[bimodal.addr, fast.addr],
        );
        ls.ready().await;
        count_slow(ls.dns, WARM, Duration::from_millis(SLOW_MS)).await;
        let slow = count_slow(ls.dns, N, Duration::from_millis(SLOW_MS * 8 / 10)).await;
        let hedges = ls.metric("dnslb_hedges_total", &[]).await;
        eprintln!(
            "promises: hedge_percentile = {pct}: {slow} of {N} queries waited the slow answer, \
             {hedges} hedges in all"
        );
        slow_at.push(slow);
        ls.proc.signal(Signal::TERM);
        assert!(ls.proc.wait_exit(Duration::from_secs(10)).is_some());
    }
    // Bin(100, 0.2): 20 ± 4; under 8 with probability < 0.001.
    assert!(
        slow_at[0] <= 2 && slow_at[1] >= 8,
        "queries that waited the slow answer at the 50th and 99th percentiles: {slow_at:?} \
         (want about 0 and about 20 of {N})"
    );
    bimodal.stop().await;
    fast.stop().await;
}

/// METRICS.md `dnslb_shed_total{reason="queue"}`: queries that waited in a
/// standing receive queue past a tenth of `timeout_ms` are dropped
/// unanswered and counted so. The LS is stopped (SIGSTOP) while a flood
/// queues up, well over the 2,048 queries and the 100 ms the rule needs;
/// resumed, it finds them stale: some are shed as `queue`, and every query
/// is answered or counted as shed (by one reason or another).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standing_queue_of_stale_queries_is_shed_and_counted_as_queue() {
    let _load = kit::heavy().await;
    const FLOOD: u16 = 20_000;
    let dir = ZoneDir::new();
    let ts1 = ts(&dir, "t.txt", Fault::default()).await;
    let mut ls = Ls::spawn("timeout_ms = 1500", "interval_ms = 60000", &[ts1.addr]);
    ls.ready().await;
    let shed = async |ls: &Ls| {
        let mut by = Vec::new();
        for r in ["queue", "inflight", "socket"] {
            by.push(ls.metric("dnslb_shed_total", &[("reason", r)]).await);
        }
        by
    };
    let before = shed(&ls).await;
    // A client whose own queue holds every answer.
    let sock = kit::roomy_udp_socket();
    sock.connect(ls.dns).await.unwrap();
    let resume = ls.proc.pause();
    let paused_at = Instant::now();
    for id in 0..FLOOD {
        send(&sock, id).await;
    }
    // Past the rule's 100 ms of standing queue (the sends took some already).
    tokio::time::sleep(Duration::from_millis(300).saturating_sub(paused_at.elapsed())).await;
    drop(resume);
    let mut answered = std::collections::BTreeSet::new();
    let mut buf = vec![0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(3), sock.recv(&mut buf)).await {
        if n >= 2 {
            answered.insert(u16::from_be_bytes([buf[0], buf[1]]));
        }
    }
    ls.proc.assert_running();
    let after = shed(&ls).await;
    let by: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    eprintln!(
        "promises: flood of {FLOOD} at a stopped LS: {} answered; shed queue {}, inflight {}, \
         socket {}",
        answered.len(),
        by[0],
        by[1],
        by[2]
    );
    assert!(by[0] > 0.0, "no query shed as `queue`: {by:?}");
    assert_eq!(
        answered.len() as f64 + by[0] + by[2],
        f64::from(FLOOD),
        "every query answered or shed (inflight ones are answered SERVFAIL): {by:?}"
    );
    ls.proc.signal(Signal::TERM);
    assert!(ls.proc.wait_exit(Duration::from_secs(10)).is_some());
    ts1.stop().await;
}

/// Asks `name A` of `ls` and returns the third octet of the answer (which
/// backend answered, in [`sticky_size_from_the_config_bounds_the_memory`]).
async fn which(sock: &UdpSocket, name: &str) -> u8 {
    let q = kit::query(name, RecordType::A, Some(1232));
    sock.send(&q.to_vec().unwrap()).await.unwrap();
    let a = recv(sock, Duration::from_secs(4)).await.expect("an answer");
    let addrs = kit::a_addrs(&a);
    assert_eq!(addrs.len(), 1, "{name}: {a:?}");
    addrs[0].octets()[2]
}

/// CONFIG.md `sticky_size`: the most names the `sticky` order remembers.
/// Every round asks `n0` then two other names. With the default size `n0`
/// stays on the backend that first answered it; with `sticky_size = 1`
/// each other name takes the one slot, `n0` is forgotten and follows the
/// rotation (three steps a round), so it lands on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_size_from_the_config_bounds_the_memory() {
    const ROUNDS: usize = 10;
    let dir = ZoneDir::new();
    let table = |b: u8| -> String {
        (0..=2 * ROUNDS)
            .map(|k| format!("n{k}.s.test 10.9.{b}.{k} A\n"))
            .collect()
    };
    let mut backends = Vec::new();
    for b in [1u8, 2] {
        backends.push(
            start_ts(ts_settings(vec![
                dir.write(&format!("s{b}.txt"), &table(b)),
            ]))
            .await,
        );
    }
    let addrs: Vec<SocketAddr> = backends.iter().map(|t| t.addr).collect();
    let mut seen = Vec::new();
    for size in ["", "sticky_size = 1"] {
        let mut ls = Ls::spawn(
            &format!(
                "strategy = \"hedge\"\norder = \"sticky\"\nlayout = \"replicated\"\n\
                      hedge_delay_ms = 500\n{size}"
            ),
            "interval_ms = 60000",
            &addrs,
        );
        ls.ready().await;
        let sock = client(ls.dns).await;
        let mut n0_on = std::collections::BTreeSet::new();
        for r in 0..ROUNDS {
            n0_on.insert(which(&sock, "n0.s.test").await);
            which(&sock, &format!("n{}.s.test", 2 * r + 1)).await;
            which(&sock, &format!("n{}.s.test", 2 * r + 2)).await;
        }
        eprintln!("promises: sticky {size:?}: n0 answered by backends {n0_on:?}");
        seen.push(n0_on.len());
        ls.proc.signal(Signal::TERM);
        assert!(ls.proc.wait_exit(Duration::from_secs(10)).is_some());
    }
    assert_eq!(
        seen,
        [1, 2],
        "backends n0 landed on: default sticky_size, then sticky_size = 1"
    );
    for t in backends {
        t.stop().await;
    }
}
