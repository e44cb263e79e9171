//! Starting and stopping `dnslb up`, `dnslb ls` and `dnslb ts` as real
//! processes: every start binds its ports and answers, a client that asks
//! from the first moment gets only real records, a broken zone or a taken
//! port stops `up` before anything runs, a child that keeps failing is
//! reported (and comes back once fixed), SIGTERM answers every query in
//! flight, and hostile EDNS options cost no log lines.
//!
//! Each test writes its `config.toml` and copies of the `ls_procs` fixtures
//! (`tests/data/ls/ts1.txt`, `ts2.txt`) into a folder of its own; ports come
//! from [`free_ports`]; every process is stopped by its PID (the [`Proc`]
//! guard); readiness is polled with real DNS queries in bounded loops.
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use rustix::process::Signal;
use tokio_util::sync::CancellationToken;

use crate::kit;
use crate::kit::{
    POLL_WAIT, READY_LIMIT, TS1_NAMES, TS2_NAMES, answers_with, ede, ls_fixture, path_str, pids_of,
    proc_stat, runs_with, started_children, udp_ask, wait_answers, wait_log,
};
use crate::kit::{
    Proc, free_ports, kill_pid, local, ls_fixed_head_toml, pair_backends_toml, poll_until,
    poll_until_async, run_dnslb, ts_args, ts_toml,
};

/// How long a stopped `dnslb` may take to exit after SIGTERM (a busy machine).
const STOP_LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// A deployment's folder: config.toml and copies of the zone fixtures.

/// The ports of one deployment on 127.0.0.1.
struct Ports {
    ls: u16,
    ts1: u16,
    ts2: u16,
    metrics: u16,
}

/// A folder holding `config.toml`, `ts1.txt` and `ts2.txt` (copies of the
/// fixtures) for one `dnslb up` deployment on fixed ports.
struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
    ports: Ports,
}

impl Site {
    /// `[ls]` with `strategy`, fixed order (ts1 first), partitioned layout,
    /// a 20 ms hedge delay with a 100% budget, metrics on, and `ls_extra`
    /// lines; `[ls.health]` holds `health`; each `[[ts]]` has one worker and
    /// the `ts_extra` lines.
    fn new(strategy: &str, ls_extra: &str, health: &str, ts_extra: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let p = free_ports(4);
        let ports = Ports {
            ls: p[0],
            ts1: p[1],
            ts2: p[2],
            metrics: p[3],
        };
        for t in ["ts1.txt", "ts2.txt"] {
            std::fs::copy(ls_fixture(t), dir.path().join(t)).unwrap();
        }
        let zone = |t: &str| dir.path().join(format!("{t}.txt"));
        let ls_head = ls_fixed_head_toml(ports.ls, strategy, "partitioned");
        let text = format!(
            r#"{ls_head}hedge_delay_ms = 20
hedge_budget_pct = 100
metrics = "127.0.0.1:{metrics}"
{ls_extra}

[ls.health]
{health}

{backends}
{ts1_table}
{ts2_table}"#,
            metrics = ports.metrics,
            backends = pair_backends_toml(ports.ts1, ports.ts2),
            ts1_table = ts_toml("ts1", ports.ts1, path_str(&zone("ts1")), ts_extra),
            ts2_table = ts_toml("ts2", ports.ts2, path_str(&zone("ts2")), ts_extra),
        );
        let config = dir.path().join("config.toml");
        std::fs::write(&config, text).unwrap();
        Site { dir, config, ports }
    }

    fn config_str(&self) -> &str {
        path_str(&self.config)
    }

    /// The zone file of `ts` ("ts1" or "ts2") in this folder.
    fn zone(&self, ts: &str) -> PathBuf {
        self.dir.path().join(format!("{ts}.txt"))
    }

    /// Starts `dnslb up -c config.toml` in the folder.
    fn up(&self, name: &str) -> Proc {
        Proc::dnslb(name, &["up", "-c", self.config_str()], self.dir.path())
    }

    fn ls(&self) -> SocketAddr {
        local(self.ports.ls)
    }

    fn metrics(&self) -> SocketAddr {
        local(self.ports.metrics)
    }

    /// No socket holds a port of the deployment.
    fn ports_free(&self) -> bool {
        let p = &self.ports;
        ![p.ls, p.ts1, p.ts2, p.metrics].into_iter().any(port_in_use)
    }

    /// PIDs of processes (other than zombies) whose command line names this
    /// deployment's config: children of `up` left behind.
    fn processes_left(&self) -> Vec<u32> {
        let me = std::process::id();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me && runs_with(pid, self.config_str()))
            .filter(|&pid| proc_stat(pid).is_some_and(|(state, _)| state != 'Z'))
            .collect()
    }
}

/// Whether an IPv4 UDP socket, or a TCP socket other than one in
/// TIME_WAIT, has local port `port`, from the kernel's tables.
///
/// Read rather than probed by binding: a probe socket of ours would be
/// copied into any child another test forks meanwhile, and hold the port
/// until that child's `exec`, which could make the next `dnslb` fail to
/// bind it (the very failure test 1 looks for).
fn port_in_use(port: u16) -> bool {
    ["/proc/net/udp", "/proc/net/tcp"].into_iter().any(|table| {
        let text = std::fs::read_to_string(table).unwrap();
        text.lines().skip(1).any(|l| {
            // "sl local_address rem_address st ...", addresses as HEXIP:HEXPORT.
            let f: Vec<&str> = l.split_whitespace().collect();
            let local = f
                .get(1)
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            local == Some(port) && f.get(3) != Some(&"06")
        })
    })
}

/// Replaces `path` with `text` at once (write beside it, then rename), so a
/// table server starting meanwhile never reads half a file.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The last `n` lines of `text`, for failure messages.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------
// /metrics.

/// GET /metrics from `addr`; `None` if it cannot be had (not listening yet,
/// not a 200).
async fn metrics_text(addr: SocketAddr) -> Option<String> {
    let r = crate::kit::http_try_get(addr, "/metrics").await?;
    (r.status == 200).then_some(r.body)
}

/// The value of the first sample `name` whose labels include each of
/// `labels` (as `key="value"`).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        let wanted = n == name
            && labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        if wanted { value.parse().ok() } else { None }
    })
}

/// Polls /metrics until `dnslb_backend_up{backend="BACKEND"}` is `want`,
/// for up to `limit`; `up` must stay running meanwhile.
async fn wait_backend_up(
    up: &mut Proc,
    addr: SocketAddr,
    backend: &str,
    want: f64,
    limit: Duration,
) {
    let (name, labels) = ("dnslb_backend_up", [("backend", backend)]);
    let mut last = None;
    let got = poll_until_async(limit, Duration::from_millis(20), async || {
        up.assert_running();
        last = sample(&metrics_text(addr).await?, name, &labels);
        (last == Some(want)).then_some(())
    })
    .await;
    assert!(
        got.is_some(),
        "{name}{labels:?} is not {want} within {limit:?} (last seen {last:?})"
    );
}

const SECOND: Duration = Duration::from_secs(1);

/// Asks the LS at `ls` for `name` (each query waiting `wait`) until it
/// answers with `ip`: whether it did within `limit`. `up` must stay
/// running meanwhile.
async fn answered_within(
    up: &mut Proc,
    ls: SocketAddr,
    (name, ip): (&str, &str),
    limit: Duration,
    wait: Duration,
) -> bool {
    let answered = poll_until_async(limit, Duration::from_millis(20), async || {
        up.assert_running();
        let m = udp_ask(ls, name, wait).await?;
        answers_with(&m, ip).then_some(())
    })
    .await;
    answered.is_some()
}

// ---------------------------------------------------------------------------
// 1. Fifty starts of `dnslb up` in a row on the same ports.

const STARTS: usize = 50;

/// One start of `up`: answers a ts1 name, stops on SIGTERM with exit 0.
/// Returns how long it took to answer and to stop.
async fn one_start(site: &Site, i: usize) -> Result<(Duration, Duration), String> {
    let (name, ip) = TS1_NAMES[0];
    let mut up = site.up(&format!("dnslb up (start {i})"));
    let t = Instant::now();
    let ready = poll_until_async(READY_LIMIT, Duration::from_millis(10), async || {
        if let Some(m) = udp_ask(site.ls(), name, POLL_WAIT).await
            && answers_with(&m, ip)
        {
            return Some(None);
        }
        up.exited().map(Some)
    })
    .await;
    let ready_after = t.elapsed();
    match ready {
        Some(None) => {}
        Some(Some(status)) => {
            return Err(format!(
                "start {i}: exited ({status}) without answering:\n{}",
                tail(&up.stderr_now(), 3)
            ));
        }
        None => {
            return Err(format!(
                "start {i}: no answer for {name} within {READY_LIMIT:?}:\n{}",
                tail(&up.stderr_now(), 3)
            ));
        }
    }
    if let Some(status) = up.exited() {
        return Err(format!(
            "start {i}: exited ({status}) right after answering"
        ));
    }
    let t = Instant::now();
    up.signal(Signal::TERM);
    match up.wait_exit(STOP_LIMIT) {
        Some(status) if status.code() == Some(0) => Ok((ready_after, t.elapsed())),
        Some(status) => Err(format!(
            "start {i}: ended with {status} after SIGTERM:\n{}",
            tail(&up.stderr_now(), 3)
        )),
        None => Err(format!(
            "start {i}: still running {STOP_LIMIT:?} after SIGTERM"
        )),
    }
}

/// Milliseconds of `samples`: "min=.. p50=.. max=..".
fn spread(samples: &[Duration]) -> String {
    let mut ms: Vec<u128> = samples.iter().map(Duration::as_millis).collect();
    ms.sort_unstable();
    match (ms.first(), ms.last()) {
        (Some(lo), Some(hi)) => format!("min={lo}ms p50={}ms max={hi}ms", ms[ms.len() / 2]),
        _ => "none".to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_starts_fifty_times_in_a_row() {
    let site = Site::new("hedge", "", "interval_ms = 1000", "");
    let mut failures = Vec::new();
    let (mut ready, mut stop) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for i in 1..=STARTS {
        // The ports must be free again before each start (also after a failed one).
        let free = poll_until(Duration::from_secs(5), Duration::from_millis(10), || {
            site.ports_free().then_some(())
        });
        assert!(
            free.is_some(),
            "before start {i}: a port of the deployment is still taken 5 s after the last \
             dnslb up ended; failures so far: {failures:#?}"
        );
        match one_start(&site, i).await {
            Ok((r, s)) => {
                ready.push(r);
                stop.push(s);
            }
            Err(e) => failures.push(e),
        }
    }
    eprintln!(
        "startup: {} clean starts of {STARTS} in {:?}; first answer {}; stop {}",
        ready.len(),
        started.elapsed(),
        spread(&ready),
        spread(&stop)
    );
    assert!(
        failures.is_empty(),
        "{} of {STARTS} starts of dnslb up were not clean:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(ready.len(), STARTS);
    assert!(site.ports_free(), "ports taken after the last stop");
}

// ---------------------------------------------------------------------------
// 2. A client asking from the moment `up` is spawned gets only real records.

/// Time between two queries of the probing client.
const PROBE_EVERY: Duration = Duration::from_millis(3);
/// How long the first answer may take after `up` is spawned (`up` itself
/// waits up to 10 s for its table servers before it serves anyway).
const FIRST_ANSWER_LIMIT: Duration = Duration::from_secs(20);
/// Good answers the client collects before it stops sending.
const PROBE_ANSWERS: usize = 100;
/// How long the client keeps reading after it stopped sending: the LS's
/// deadline (1500 ms) plus a margin.
const LINGER: Duration = Duration::from_secs(3);

/// What the probing client saw.
#[derive(Default)]
struct Probed {
    sent: usize,
    /// (when the query was sent, since the probing started) of each query
    /// answered correctly.
    good: Vec<Duration>,
    /// Every answer that was not the real record, described.
    bad: Vec<String>,
    /// When the first answer (any) arrived, since the probing started.
    first_answer: Option<Duration>,
    /// Queries sent after the first one that got an answer, left without one.
    lost_after_first: Vec<u16>,
}

/// Live counters of the probing client, read by the test while it runs.
#[derive(Default)]
struct ProbeCounts {
    sent: AtomicUsize,
    good: AtomicUsize,
}

/// Sends a query every [`PROBE_EVERY`] from one socket connected to `ls`,
/// alternating a ts1-only and a ts2-only name, until `stop` is cancelled
/// (then reads for up to [`LINGER`] more); judges every answer.
async fn probe(
    ls: SocketAddr,
    stop: CancellationToken,
    counts: Arc<ProbeCounts>,
    limit: Duration,
) -> Probed {
    let names = [TS1_NAMES[0], TS2_NAMES[0]];
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(ls).await.unwrap();
    let t0 = Instant::now();
    let mut out = Probed::default();
    // id -> (name, address, sent at)
    let mut waiting: HashMap<u16, (&str, &str, Duration)> = HashMap::new();
    let mut first_answered_sent: Option<Duration> = None;
    let mut next_id: u16 = rand::random();
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = tokio::time::sleep(limit);
    tokio::pin!(end);
    let mut sending = true;
    let mut buf = vec![0u8; 65_535];
    loop {
        tokio::select! {
            () = &mut end => break,
            () = stop.cancelled(), if sending => {
                sending = false;
                end.as_mut().reset(tokio::time::Instant::now() + LINGER);
            }
            _ = tick.tick(), if sending => {
                let (name, ip) = names[usize::from(next_id) % names.len()];
                let mut q = kit::query(name, RecordType::A, Some(1232));
                q.metadata.id = next_id;
                // Refused (ICMP) while nothing listens yet: that query is lost.
                let _ = sock.send(&q.to_vec().unwrap()).await;
                waiting.insert(next_id, (name, ip, t0.elapsed()));
                next_id = next_id.wrapping_add(1);
                out.sent += 1;
                counts.sent.fetch_add(1, Ordering::Relaxed);
            }
            r = sock.recv(&mut buf) => {
                // An error is the ICMP refusal of an earlier query.
                let Ok(n) = r else { continue };
                let at = t0.elapsed();
                out.first_answer.get_or_insert(at);
                let Ok(m) = Message::from_vec(&buf[..n]) else {
                    out.bad.push(format!("at {at:?}: an undecodable answer ({n} bytes)"));
                    continue;
                };
                let id = m.metadata.id;
                let Some((name, ip, sent)) = waiting.remove(&id) else {
                    out.bad.push(format!("at {at:?}: an answer with unknown or repeated id {id}"));
                    continue;
                };
                let echoed = m.queries.first().map(|q| q.name().to_ascii());
                if answers_with(&m, ip) && m.authoritative && echoed == Some(format!("{name}.")) {
                    out.good.push(sent);
                    counts.good.fetch_add(1, Ordering::Relaxed);
                    first_answered_sent = Some(first_answered_sent.map_or(sent, |f| f.min(sent)));
                } else {
                    out.bad.push(format!(
                        "query for {name} sent at {sent:?}, answered at {at:?}: rcode {:?}, \
                         AA={}, answers {:?}, EDE {:?}",
                        m.response_code,
                        m.authoritative,
                        kit::a_addrs(&m),
                        ede(&m)
                    ));
                }
            }
        }
        if !sending
            && let Some(first) = first_answered_sent
            && waiting.values().all(|&(_, _, sent)| sent < first)
        {
            break; // everything sent since the LS listens has its answer
        }
    }
    if let Some(first) = first_answered_sent {
        out.lost_after_first = waiting
            .iter()
            .filter(|(_, (_, _, sent))| *sent > first)
            .map(|(&id, _)| id)
            .collect();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_answers_correctly_from_its_first_query() {
    for round in 1..=5 {
        let site = Site::new("hedge", "timeout_ms = 1500", "interval_ms = 1000", "");
        let stop = CancellationToken::new();
        let counts = Arc::new(ProbeCounts::default());
        let prober = tokio::spawn(probe(
            site.ls(),
            stop.clone(),
            counts.clone(),
            FIRST_ANSWER_LIMIT + LINGER + Duration::from_secs(5),
        ));
        // The client is already asking when `up` is spawned.
        let sending = poll_until_async(
            Duration::from_secs(5),
            Duration::from_millis(1),
            async || (counts.sent.load(Ordering::Relaxed) > 0).then_some(()),
        )
        .await;
        assert!(sending.is_some(), "the probing client sent nothing");
        let mut up = site.up(&format!("dnslb up (round {round})"));
        let spawned = Instant::now();
        let enough = poll_until_async(FIRST_ANSWER_LIMIT, Duration::from_millis(10), async || {
            up.assert_running();
            (counts.good.load(Ordering::Relaxed) >= PROBE_ANSWERS).then_some(())
        })
        .await;
        let serving_after = spawned.elapsed();
        stop.cancel();
        let p = prober.await.unwrap();
        assert!(
            p.bad.is_empty(),
            "round {round}: {} of {} answers were not the real record (first answer at {:?} \
             after the client started):\n{}",
            p.bad.len(),
            p.bad.len() + p.good.len(),
            p.first_answer,
            p.bad.join("\n")
        );
        assert!(
            enough.is_some() && p.first_answer.is_some(),
            "round {round}: {} good answers within {FIRST_ANSWER_LIMIT:?} of spawning dnslb up",
            p.good.len()
        );
        assert!(
            p.lost_after_first.is_empty(),
            "round {round}: {} queries sent after the first answered one got no answer",
            p.lost_after_first.len()
        );
        eprintln!(
            "startup: round {round}: {} queries sent, {} answered correctly, none wrong; \
             {PROBE_ANSWERS} answers {serving_after:?} after spawning up",
            p.sent,
            p.good.len()
        );
        up.signal(Signal::TERM);
        let status = up.wait_exit(STOP_LIMIT);
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "round {round}: dnslb up after SIGTERM: {status:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// 3. A broken zone or a taken TS port: `up` refuses, nothing runs.

/// How long a port of a refused deployment may look taken by another
/// test's socket.
const PORTS_FREE_LIMIT: Duration = Duration::from_secs(3);

/// How long `up` may take to refuse (it should take milliseconds).
const REFUSE_LIMIT: Duration = Duration::from_secs(10);

/// After `up` refused: every port is free and no child of it is left.
/// The ports are read from the kernel's tables, which also list the
/// sockets of the tests running beside this one: a client socket of
/// theirs may hold one of these numbers for a moment (s19's CI), so a port
/// must be free within [`PORTS_FREE_LIMIT`]; a socket of the deployment
/// left open stays taken and fails it.
fn assert_nothing_left(site: &Site, what: &str) {
    let deadline = std::time::Instant::now() + PORTS_FREE_LIMIT;
    while !site.ports_free() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        site.ports_free(),
        "{what}: a port of the deployment is taken"
    );
    let left = site.processes_left();
    assert!(left.is_empty(), "{what}: processes left running: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_refuses_a_broken_zone_or_a_taken_ts_port() {
    let _load = crate::kit::timed().await;
    // (a) A bad line in ts1's zone.
    let site = Site::new("hedge", "", "interval_ms = 1000", "");
    let zone = site.zone("ts1");
    let mut text = std::fs::read_to_string(&zone).unwrap();
    text.push_str("oops.example.com 1.2.3 A\n");
    let bad_line = text.lines().count();
    replace_file(&zone, &text);
    let t = Instant::now();
    let mut up = site.up("dnslb up (broken zone)");
    // The LS port never answers while `up` runs (a ts2 name, which a
    // running LS would find).
    let (name, _) = TS2_NAMES[0];
    let mut asked = 0;
    while up.exited().is_none() {
        assert!(
            t.elapsed() < REFUSE_LIMIT,
            "dnslb up with a broken zone still running after {REFUSE_LIMIT:?}:\n{}",
            up.stderr_now()
        );
        let answer = udp_ask(site.ls(), name, Duration::from_millis(20)).await;
        asked += 1;
        assert!(
            answer.is_none(),
            "the LS answered although a zone is broken: {answer:?}"
        );
    }
    let took = t.elapsed();
    let out = up.finish(STOP_LIMIT);
    assert_eq!(out.status.code(), Some(1), "broken zone: {}", out.stderr);
    let at = format!("{}:{bad_line}", path_str(&zone));
    assert!(
        out.stderr.lines().any(|l| l.contains(&at)),
        "stderr names {at}:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("panicked") && started_children(&out.stderr).is_empty(),
        "no child started:\n{}",
        out.stderr
    );
    assert_nothing_left(&site, "broken zone");
    eprintln!("startup: dnslb up refused a broken zone in {took:?} ({asked} probes unanswered)");

    // (b) ts1's port already taken, for UDP, for TCP, or both.
    for (held, udp, tcp) in [
        ("udp", true, false),
        ("tcp", false, true),
        ("udp+tcp", true, true),
    ] {
        let site = Site::new("hedge", "", "interval_ms = 1000", "");
        let addr = local(site.ports.ts1);
        let _udp = udp.then(|| UdpSocket::bind(addr).unwrap());
        let _tcp = tcp.then(|| TcpListener::bind(addr).unwrap());
        let t = Instant::now();
        let out = run_dnslb(
            &["up", "-c", site.config_str()],
            site.dir.path(),
            None,
            REFUSE_LIMIT,
        );
        let took = t.elapsed();
        assert!(
            !out.status.success() && out.status.code().is_some(),
            "ts1's port taken ({held}): {}\n{}",
            out.status,
            out.stderr
        );
        let lines = out.stderr_lines();
        assert_eq!(
            lines.len(),
            1,
            "ts1's port taken ({held}): one line on stderr, got:\n{}",
            out.stderr
        );
        assert!(
            lines[0].contains(&addr.to_string())
                && lines[0].contains("in use")
                && !lines[0].contains("panicked"),
            "ts1's port taken ({held}): the line names {addr} and says \"in use\": {:?}",
            lines[0]
        );
        drop((_udp, _tcp));
        assert_nothing_left(&site, &format!("ts1's port taken ({held})"));
        eprintln!("startup: dnslb up refused ts1's taken port ({held}) in {took:?}");
    }
}

/// README: `dnslb up` "binds every LS socket before it starts a table
/// server", and "a taken metrics port stops the LS at start with an error
/// naming `ls.metrics`". With the LS's DNS port taken (UDP or TCP) or its
/// metrics port taken, `up` exits 1 with a line naming the address (and
/// `ls.metrics` for the metrics port), and no table server was started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_a_taken_ls_port_starts_no_table_server() {
    for held in ["udp", "tcp", "metrics"] {
        let site = Site::new("hedge", "", "interval_ms = 1000", "");
        let addr = if held == "metrics" {
            site.metrics()
        } else {
            site.ls()
        };
        let _udp = (held == "udp").then(|| UdpSocket::bind(addr).unwrap());
        let _tcp = (held != "udp").then(|| TcpListener::bind(addr).unwrap());
        let out = run_dnslb(
            &["up", "-c", site.config_str()],
            site.dir.path(),
            None,
            REFUSE_LIMIT,
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "the LS's {held} port taken: {}\n{}",
            out.status,
            out.stderr
        );
        assert!(
            started_children(&out.stderr).is_empty() && !out.stderr.contains("panicked"),
            "the LS's {held} port taken: a table server was started:\n{}",
            out.stderr
        );
        let named = out.stderr_lines().into_iter().any(|l| {
            l.contains(&addr.to_string()) && (held != "metrics" || l.contains("ls.metrics"))
        });
        assert!(
            named,
            "the LS's {held} port taken: no line names {addr}{}:\n{}",
            if held == "metrics" {
                " and ls.metrics"
            } else {
                ""
            },
            out.stderr
        );
        drop((_udp, _tcp));
        assert_nothing_left(&site, &format!("the LS's {held} port taken"));
    }
}

/// A `dnslb ts` whose metrics port is taken stops at start with an error
/// naming `ts.metrics` and the address (as the LS's names `ls.metrics`).
#[test]
fn ts_with_a_taken_metrics_port_stops_naming_ts_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let [port, metrics] = free_ports(2)[..] else {
        unreachable!()
    };
    let zone = dir.path().join("ts1.txt");
    std::fs::copy(ls_fixture("ts1.txt"), &zone).unwrap();
    let extra = format!("metrics = \"{}\"", local(metrics));
    let config = dir.path().join("config.toml");
    std::fs::write(&config, kit::ts_toml("ts1", port, path_str(&zone), &extra)).unwrap();
    let _held = TcpListener::bind(local(metrics)).unwrap();
    let out = run_dnslb(
        &["ts", "-c", path_str(&config), "--name", "ts1"],
        dir.path(),
        None,
        REFUSE_LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{}\n{}", out.status, out.stderr);
    let named = out
        .stderr_lines()
        .into_iter()
        .any(|l| l.contains("ts.metrics") && l.contains(&local(metrics).to_string()));
    assert!(named, "no line names ts.metrics {metrics}:\n{}", out.stderr);
}

// ---------------------------------------------------------------------------
// 4. A TS child that keeps failing: reported, restarted with backoff, down
//    in /metrics, back once its zone is fixed.

/// The `restart_in` values (as printed) of the supervisor's lines about a
/// `ts` child that exited.
fn restart_delays(log: &str, ts: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(&format!("ts={ts} ")) && l.contains("restart_in="))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("restart_in="))
                .map(str::to_owned)
        })
        .collect()
}

/// A printed `Duration` (`200ms`, `1.6s`) in milliseconds.
fn millis(printed: &str) -> f64 {
    if let Some(ms) = printed.strip_suffix("ms") {
        ms.parse().unwrap()
    } else {
        printed.strip_suffix('s').unwrap().parse::<f64>().unwrap() * 1000.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_reports_a_child_that_keeps_failing() {
    let _load = crate::kit::timed().await;
    let site = Site::new("hedge", "", "interval_ms = 200\nfall = 2", "");
    let mut up = site.up("dnslb up");
    let up_pid = up.pid();
    let ls = site.ls();
    wait_answers(ls, TS1_NAMES[0].0, TS1_NAMES[0].1, &mut [&mut up]).await;
    wait_answers(ls, TS2_NAMES[0].0, TS2_NAMES[0].1, &mut [&mut up]).await;
    let old1 = wait_log(&mut up, READY_LIMIT, "start of ts1", |log| {
        pids_of(log, "ts1").first().copied()
    });
    wait_backend_up(&mut up, site.metrics(), "ts1", 1.0, READY_LIMIT).await;

    // Break ts1's zone, then kill ts1: every restart fails on the bad line.
    let zone = site.zone("ts1");
    let good = std::fs::read_to_string(&zone).unwrap();
    let bad = format!("{good}oops.example.com 1.2.3 A\n");
    let bad_at = format!("{}:{}", path_str(&zone), bad.lines().count());
    replace_file(&zone, &bad);
    let killed_at = Instant::now();
    kill_pid(old1, Signal::KILL).unwrap();

    // An ERROR from the supervisor naming ts1 and the child's own reason.
    let report = wait_log(&mut up, Duration::from_secs(20), "error about ts1", |log| {
        log.lines()
            .find(|l| l.contains("ERROR") && l.contains("ts=ts1 ") && l.contains(&bad_at))
            .map(str::to_owned)
    });
    let reported_after = killed_at.elapsed();
    let log = up.stderr_now();
    assert!(
        log.lines()
            .any(|l| l.starts_with("dnslb: error: ") && l.contains(&bad_at)),
        "the child's own error line is forwarded:\n{log}"
    );
    // Down in /metrics; ts2's names still answer.
    wait_backend_up(&mut up, site.metrics(), "ts1", 0.0, Duration::from_secs(10)).await;
    let down_after = killed_at.elapsed();
    for &(name, ip) in TS2_NAMES {
        let m = udp_ask(ls, name, Duration::from_secs(2)).await;
        let m = m.unwrap_or_else(|| panic!("no answer for {name} with ts1 failing"));
        assert!(answers_with(&m, ip), "{name} with ts1 failing: {m:?}");
    }
    // Restarted with backoff: at least one more failed start after the
    // report, each delay longer than the one before.
    let failing = wait_log(
        &mut up,
        Duration::from_secs(20),
        "another restart of ts1",
        |log| {
            let delays = restart_delays(log, "ts1");
            (delays.len() >= 4).then_some(delays)
        },
    );
    let ms: Vec<f64> = failing.iter().map(|d| millis(d)).collect();
    assert!(
        ms.windows(2).all(|w| w[1] > w[0]),
        "ts1's restart delays grow: {failing:?}"
    );
    let restarts = pids_of(&up.stderr_now(), "ts1").len() - 1;
    assert!(restarts >= 3, "ts1 restarted {restarts} times");

    // Fixed: ts1 comes back, serves through the LS and is up again.
    replace_file(&zone, &good);
    let fixed_at = Instant::now();
    let (name, ip) = TS1_NAMES[1];
    let back = answered_within(&mut up, ls, (name, ip), Duration::from_secs(30), SECOND).await;
    assert!(
        back,
        "ts1 not answering through the LS 30 s after its zone was fixed:\n{}",
        tail(&up.stderr_now(), 10)
    );
    wait_backend_up(&mut up, site.metrics(), "ts1", 1.0, Duration::from_secs(10)).await;
    let back_after = fixed_at.elapsed();
    // `up` logs a start after the spawn, in no set order with the child's
    // first answer: wait for the start of a ts1 still running.
    let new1 = wait_log(
        &mut up,
        READY_LIMIT,
        "the start of the ts1 serving",
        |log| {
            let last = pids_of(log, "ts1").last().copied();
            last.filter(|&pid| proc_stat(pid).is_some_and(|(state, _)| state != 'Z'))
        },
    );
    assert_eq!(
        proc_stat(new1).map(|s| s.1),
        Some(up_pid),
        "the new ts1 (pid {new1}) is a child of dnslb up"
    );
    eprintln!(
        "startup: ts1 failing: reported {reported_after:?} after SIGKILL ({report:?}); \
         down in /metrics after {down_after:?}; delays {failing:?}; back and up {back_after:?} \
         after the fix"
    );
    up.signal(Signal::TERM);
    let status = up.wait_exit(STOP_LIMIT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{status:?}");
}

// ---------------------------------------------------------------------------
// 5. SIGTERM answers every query in flight.

const DRAIN_QUERIES: usize = 1000;
const DRAIN_SOCKETS: usize = 8;
/// Each TS answers this late, so that every query is still in flight when
/// SIGTERM comes.
const TS_DELAY_MS: u64 = 1000;

/// A UDP socket connected to `to` with a receive buffer large enough for
/// its share of the answers arriving at once.
fn client_socket(to: SocketAddr) -> tokio::net::UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    let _ = s.set_recv_buffer_size(1 << 20);
    s.bind(&local(0).into()).unwrap();
    s.connect(&to.into()).unwrap();
    s.set_nonblocking(true).unwrap();
    tokio::net::UdpSocket::from_std(s.into()).unwrap()
}

/// Reads answers on `sock` until `want` have come or `limit` has passed:
/// id -> bytes (the last answer for an id), and how many answers repeated an id.
async fn collect(
    sock: Arc<tokio::net::UdpSocket>,
    want: usize,
    limit: Duration,
    got: Arc<AtomicUsize>,
) -> (HashMap<u16, Vec<u8>>, usize) {
    let mut answers = HashMap::new();
    let mut repeated = 0;
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = vec![0u8; 65_535];
    while answers.len() < want {
        let Ok(r) = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await else {
            break;
        };
        let Ok(n) = r else { continue };
        if n < 12 {
            continue;
        }
        let id = u16::from_be_bytes([buf[0], buf[1]]);
        if answers.insert(id, buf[..n].to_vec()).is_some() {
            repeated += 1;
        } else {
            got.fetch_add(1, Ordering::Relaxed);
        }
    }
    (answers, repeated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_queries_in_flight() {
    let _load = crate::kit::timed().await;
    let site = Site::new(
        "race",
        "timeout_ms = 4000",
        "interval_ms = 60000\nfall = 100\ntimeout_ms = 3000",
        &format!("fault = {{ delay_ms = {TS_DELAY_MS}, delay_ratio = 1.0, drop_ratio = 0.0 }}"),
    );
    let mut up = site.up("dnslb up");
    let ls = site.ls();
    let names: Vec<(&str, &str)> = TS1_NAMES.iter().chain(TS2_NAMES).copied().collect();
    // Readiness: each answer takes the TS's delay.
    for &(name, ip) in &names[..2] {
        let ready = answered_within(&mut up, ls, (name, ip), READY_LIMIT, 4 * SECOND).await;
        assert!(ready, "no answer for {name} within {READY_LIMIT:?}");
    }
    let counted = async || {
        let text = metrics_text(site.metrics()).await?;
        sample(&text, "dnslb_queries_total", &[])
    };
    let base = counted().await.expect("dnslb_queries_total in /metrics");

    let socks: Vec<Arc<tokio::net::UdpSocket>> = (0..DRAIN_SOCKETS)
        .map(|_| Arc::new(client_socket(ls)))
        .collect();
    let answered = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = socks
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let want = (k..DRAIN_QUERIES).step_by(DRAIN_SOCKETS).count();
            tokio::spawn(collect(
                s.clone(),
                want,
                Duration::from_secs(30),
                answered.clone(),
            ))
        })
        .collect();
    // Query i: id i, from socket i % DRAIN_SOCKETS, for names[i % 8].
    let first_sent = Instant::now();
    for i in 0..DRAIN_QUERIES {
        let (name, _) = names[i % names.len()];
        let mut q = kit::query(name, RecordType::A, Some(1232));
        q.metadata.id = u16::try_from(i).unwrap();
        socks[i % DRAIN_SOCKETS]
            .send(&q.to_vec().unwrap())
            .await
            .unwrap();
    }
    let sent_in = first_sent.elapsed();
    // All received by the LS (so all are in flight), then SIGTERM.
    let want = base + DRAIN_QUERIES as f64;
    let mut last = None;
    let received = poll_until_async(
        Duration::from_secs(20),
        Duration::from_millis(5),
        async || {
            last = counted().await;
            last.filter(|&n| n >= want)
        },
    )
    .await;
    assert!(
        received.is_some(),
        "dnslb_queries_total did not reach {want} (last {last:?})"
    );
    let before_term = answered.load(Ordering::Relaxed);
    let term_after = first_sent.elapsed();
    let term_at = Instant::now();
    up.signal(Signal::TERM);
    let status = up.wait_exit(Duration::from_secs(20));
    let exited_after = term_at.elapsed();
    let mut answers = HashMap::new();
    let mut repeated = 0;
    for r in readers {
        let (a, rep) = r.await.unwrap();
        answers.extend(a);
        repeated += rep;
    }
    eprintln!(
        "startup: drain: {DRAIN_QUERIES} queries sent in {sent_in:?}, all received by the LS \
         {term_after:?} after the first; {before_term} answered before SIGTERM; dnslb up exited \
         {exited_after:?} after SIGTERM; {} answers in all",
        answers.len()
    );
    assert!(
        before_term < DRAIN_QUERIES,
        "every query was answered before SIGTERM: nothing was in flight (the TS delay is \
         {TS_DELAY_MS} ms; SIGTERM came {term_after:?} after the first query)"
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "dnslb up after SIGTERM: {status:?}\n{}",
        tail(&up.stderr_now(), 10)
    );
    let mut wrong = Vec::new();
    for i in 0..DRAIN_QUERIES {
        let (name, ip) = names[i % names.len()];
        let id = u16::try_from(i).unwrap();
        match answers.get(&id).map(|b| Message::from_vec(b)) {
            None => wrong.push(format!("{id} ({name}): no answer")),
            Some(Err(e)) => wrong.push(format!("{id} ({name}): undecodable: {e}")),
            Some(Ok(m)) => {
                let echoed = m.queries.first().map(|q| q.name().to_ascii());
                if !(answers_with(&m, ip) && m.authoritative && echoed == Some(format!("{name}.")))
                {
                    wrong.push(format!(
                        "{id} ({name}): rcode {:?} AA={} answers {:?} EDE {:?}",
                        m.response_code,
                        m.authoritative,
                        kit::a_addrs(&m),
                        ede(&m)
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty() && repeated == 0 && answers.len() == DRAIN_QUERIES,
        "{} of {DRAIN_QUERIES} queries in flight at SIGTERM not answered correctly \
         ({repeated} repeated answers); first ones:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
}

// ---------------------------------------------------------------------------
// 6. Malformed EDNS options do not cost a log line each.

const HOSTILE_QUERIES: usize = 2000;
/// Malformed queries sent between two normal ones.
const HOSTILE_CHUNK: usize = 50;
/// Lines a server may log from the flood up to the end of its stop.
const LOG_LINES_MAX: usize = 10;

/// A query for `name` whose OPT holds a COOKIE option claiming 5 bytes of
/// which the record holds 2: hickory-proto reads it as "incomplete or poorly
/// formatted EDNS options".
fn hostile_query(name: &str, id: u16) -> Vec<u8> {
    let mut q = kit::query(name, RecordType::A, None);
    q.metadata.id = id;
    let mut b = q.to_vec().unwrap();
    assert_eq!(b[10..12], [0, 0], "no additional record yet");
    b[11] = 1; // ARCOUNT = 1
    b.extend_from_slice(&[
        0, // root owner
        0, 41, // OPT
        0x04, 0xD0, // UDP payload 1232
        0, 0, 0, 0, // extended rcode, version, flags
        0, 6, // RDLENGTH
        0, 10, // COOKIE
        0, 5, // option length, past the end of the record
        0xAA, 0xBB,
    ]);
    b
}

/// Sends [`HOSTILE_QUERIES`] malformed queries to `addr` in chunks, each
/// followed by a normal query from the same socket whose answer must come:
/// the server has read the chunk by then (one socket, read in order).
/// Returns how many malformed queries were answered.
async fn flood(addr: SocketAddr, what: &str) -> usize {
    let (name, ip) = TS1_NAMES[0];
    let sock = client_socket(addr);
    let mut buf = vec![0u8; 65_535];
    let mut answered = 0;
    let mut id: u16 = 0;
    for _ in 0..HOSTILE_QUERIES / HOSTILE_CHUNK {
        for _ in 0..HOSTILE_CHUNK {
            id = id.wrapping_add(1);
            sock.send(&hostile_query(name, id)).await.unwrap();
        }
        id = id.wrapping_add(1);
        let normal = id;
        let mut q = kit::query(name, RecordType::A, Some(1232));
        q.metadata.id = normal;
        sock.send(&q.to_vec().unwrap()).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await;
            let n = r
                .unwrap_or_else(|_| {
                    panic!("{what}: no answer to a normal query after a flood chunk")
                })
                .unwrap();
            let m = Message::from_vec(&buf[..n]).unwrap();
            if m.metadata.id == normal {
                assert!(answers_with(&m, ip), "{what}: {m:?}");
                break;
            }
            answered += 1;
        }
    }
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_edns_costs_no_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let (pt, pl) = (ports[0], ports[1]);
    let zone = ls_fixture("ts1.txt");
    let mut ts = Proc::dnslb("dnslb ts", &ts_args(pt, &[&zone]), dir.path());
    let config = dir.path().join("ls.toml");
    std::fs::write(
        &config,
        format!(
            "[ls]\nlisten = [\"127.0.0.1:{pl}\"]\nworkers = 1\n\n\
             [[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:{pt}\"\n"
        ),
    )
    .unwrap();
    let mut ls = Proc::dnslb("dnslb ls", &["ls", "-c", path_str(&config)], dir.path());
    let (name, ip) = TS1_NAMES[0];
    wait_answers(local(pt), name, ip, &mut [&mut ts]).await;
    wait_answers(local(pl), name, ip, &mut [&mut ls, &mut ts]).await;
    let lines_before = |p: &Proc| {
        p.stderr_now()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    };
    // Their start's last lines, written about when they first answered:
    // read before the count starts, or they would count as the flood's.
    ts.wait_line("table server ready", READY_LIMIT).await;
    ls.wait_line_where("the LS's workers line", READY_LIMIT, |l| l.contains("CPU"))
        .await;
    let (ts_before, ls_before) = (lines_before(&ts), lines_before(&ls));

    let t = Instant::now();
    let ts_answered = flood(local(pt), "dnslb ts").await;
    let ls_answered = flood(local(pl), "dnslb ls").await;
    let took = t.elapsed();

    // Stopped and read to the end of their output: every line counts.
    for p in [&mut ls, &mut ts] {
        p.signal(Signal::TERM);
    }
    let ls_out = ls.finish(STOP_LIMIT);
    let ts_out = ts.finish(STOP_LIMIT);
    eprintln!(
        "startup: {HOSTILE_QUERIES} malformed-EDNS queries each to dnslb ts ({ts_answered} \
         answered) and dnslb ls ({ls_answered} answered) in {took:?}"
    );
    for (what, out, before) in [
        ("dnslb ts", &ts_out, ts_before),
        ("dnslb ls", &ls_out, ls_before),
    ] {
        assert_eq!(out.status.code(), Some(0), "{what}: {}", out.status);
        let lines = out.stderr_lines();
        let new = &lines[before.min(lines.len())..];
        assert!(
            new.len() < LOG_LINES_MAX,
            "{what} logged {} lines for {HOSTILE_QUERIES} malformed queries and its stop; \
             the first ones:\n{}",
            new.len(),
            new[..new.len().min(5)].join("\n")
        );
    }
}
