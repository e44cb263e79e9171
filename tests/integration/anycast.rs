//! Anycast (docs/DEPLOY.md "A fleet", docs/DEPLOY.md "Anycast") in network
//! namespaces the test makes: a router running BIRD with ECMP (`merge paths`,
//! L4 multipath hashing), three LS hosts each running a `dnslb ts` (its
//! backend, answering `who.test A` with the host's own number), `dnslb ls`
//! on the service address 192.0.2.53 / 2001:db8:53::53 with `[ls.anycast]`,
//! `dnslb anycast` (the probe) and BIRD (BGP with BFD to the router, the
//! static protocols of deploy/anycast/bird.conf), and a client namespace
//! whose load threads ask through the router and record every query.
//!
//! - The service /32 and /128 appear on the router with three next hops,
//!   and the load reaches all three LS.
//! - `kill -9` of one LS and SIGSTOP of another: each next hop leaves the
//!   router's table within a generous 1.5 s (the probe: a refused port
//!   withdraws at once, two timed-out rounds of 200 ms do), and the queries
//!   lost all went out inside those windows (counted); none wrong.
//! - A rolling restart of every LS by SIGTERM under load loses nothing:
//!   /ready turns 503, the probe withdraws, the LS answers for `drain_s`,
//!   then exits; the new one is announced once it answers.
//! - A host whose backend hangs (SIGSTOP of its TS) stays announced: the
//!   probe asks `id.server. CH TXT`, which the LS answers itself.
//! - Without namespaces (any user): the probe's question is answered while
//!   the LS's only backend is a black hole; a stopping LS says so on `/ready` at
//!   once, answers through `drain_s`, then ends.
//!
//! Every process is stopped by PID and every namespace deleted by guards.
//! The namespace test is skipped unless root, with `ip`, `bird` and `birdc`
//! installed.
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::kit::fleet::{
    LsHost, Router, SERVICE4, SERVICE6, connected_udp, exchange_judged, kill_then_stop,
    restart_by_term,
};
use crate::kit::{BIN, Netns, Proc, enter_netns, need, netns_or_skip, poll_until};

const HOSTS: usize = 3;
/// How long a route may take to appear (BGP, BFD, `rise` rounds).
const CONVERGE: Duration = Duration::from_secs(30);
/// The generous end-to-end bound on a withdrawal (the design's worst case
/// is 550 ms of probing plus a BGP update inside one machine).
const WITHDRAW_LIMIT: Duration = Duration::from_millis(1500);
/// A client's wait for one answer.
const ANSWER_WAIT: Duration = Duration::from_millis(500);
/// `drain_s` of the LS hosts.
const DRAIN_S: u64 = 2;

fn zone(i: usize) -> String {
    format!(
        "$ORIGIN test.\n$TTL 60\n@ IN SOA ns.test. host.test. 1 3600 600 86400 60\n@ IN NS ns.test.\n\
         ns IN A 127.0.0.1\nwho IN A 10.0.0.{i}\n"
    )
}

fn ls_conf(bird_socket: &Path) -> String {
    format!(
        "[ls]\nlisten = [\"{SERVICE4}:53\", \"[{SERVICE6}]:53\"]\nworkers = 1\n\
         metrics = \"127.0.0.1:5390\"\nallow = [\"0.0.0.0/0\", \"::/0\"]\n\n\
         [ls.health]\nquery = \"test. SOA\"\n\n\
         [ls.anycast]\ndrain_s = {DRAIN_S}\nbird_socket = \"{}\"\n\n\
         [[ls.backend]]\nname = \"ts\"\naddr = \"127.0.0.1:5301\"\n",
        bird_socket.display()
    )
}

/// The fleet; field order is drop order: processes first, namespaces last.
struct Fleet {
    /// Each LS host's backend, `dnslb ts` inside its namespace.
    tss: Vec<Proc>,
    hosts: Vec<LsHost>,
    client: Netns,
    router: Router,
    _dir: tempfile::TempDir,
}

impl Fleet {
    fn start(ip: &Path, bird: &Path, birdc: &Path) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let prefix = Netns::unique_prefix("a");
        let mut router = Router::create(ip, &prefix);
        let client = Netns::create(ip, &prefix, "c");
        router.link_client(&client, 0);
        let mut hosts = Vec::new();
        let mut tss = Vec::new();
        for i in 1..=HOSTS {
            let h = LsHost::start(&router, ip, &prefix, i, [bird, birdc], dir.path(), &ls_conf);
            let zone_path = h.dir.join("test.zone");
            std::fs::write(&zone_path, zone(i)).unwrap();
            let ts_args = crate::kit::ts_args(5301, &[&zone_path]);
            let ts_args: Vec<&str> = ts_args.iter().map(String::as_str).collect();
            tss.push(Proc::spawn(
                &format!("ts{i}"),
                h.ns.command(Path::new(BIN), &ts_args),
            ));
            hosts.push(h);
        }
        router.start_bird(bird, birdc, dir.path(), HOSTS);
        Fleet {
            tss,
            hosts,
            client,
            router,
            _dir: dir,
        }
    }

    /// Waits until both routes lead to exactly `want`; how long it took.
    fn wait_hops(&mut self, want: &[usize], limit: Duration) -> Option<Duration> {
        self.router.wait_hops(want, HOSTS, limit)
    }

    fn panic_with_logs(&mut self, what: &str) -> ! {
        let mut text = format!("{what}\n{}", self.router.describe());
        for h in &self.hosts {
            text.push_str(&h.describe());
        }
        panic!("{text}");
    }
}

/// One query the client sent: when, and which host answered (None: lost).
#[derive(Debug, Clone, Copy)]
struct Sent {
    at: Instant,
    answer: Option<Result<usize, ()>>,
}

/// Client threads inside the client namespace, each asking `who.test A`
/// of the service address from 16 source ports in turn, one query at a
/// time, 2 ms apart; every query recorded.
struct Load {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Sent>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// `who.test A` with `id`.
fn who_query(id: u16) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii("who.test.").unwrap(),
        RecordType::A,
    ));
    m.to_vec().unwrap()
}

/// The host an answer names (10.0.0.N), `Err` for anything else.
fn host_of(raw: &[u8], id: u16) -> Option<Result<usize, ()>> {
    let m = Message::from_vec(raw).ok()?;
    if m.metadata.id != id {
        return None; // a late answer to an earlier query: keep waiting
    }
    let host = m.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => {
            let o = a.0.octets();
            (o[..3] == [10, 0, 0] && (1..=HOSTS).contains(&usize::from(o[3])))
                .then_some(usize::from(o[3]))
        }
        _ => None,
    });
    Some(host.ok_or(()))
}

impl Load {
    fn start(client: &Netns, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let name = client.name.clone();
        let handles = (0..threads)
            .map(|t| {
                let (stop, log, name) = (stop.clone(), log.clone(), name.clone());
                std::thread::spawn(move || {
                    enter_netns(&name);
                    let to: SocketAddr = SocketAddr::new(SERVICE4.parse::<IpAddr>().unwrap(), 53);
                    let any = IpAddr::from([0, 0, 0, 0]);
                    let socks = connected_udp(any, to, 16, ANSWER_WAIT);
                    let mut n: u32 = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n = n.wrapping_add(1);
                        let sock = &socks[n as usize % socks.len()];
                        let id = (t as u16) << 12 | (n as u16 & 0x0fff);
                        let at = Instant::now();
                        let answer = exchange_judged(sock, &who_query(id), ANSWER_WAIT, |raw| {
                            host_of(raw, id)
                        });
                        log.lock().unwrap().push(Sent { at, answer });
                        std::thread::sleep(Duration::from_millis(2));
                    }
                })
            })
            .collect();
        Load {
            stop,
            log,
            threads: handles,
        }
    }

    /// Stops the threads; every query they sent.
    fn finish(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    /// The hosts that answered so far.
    fn seen_hosts(&self) -> Vec<usize> {
        let mut seen: Vec<usize> = self
            .log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|s| s.answer.and_then(Result::ok))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen
    }
}

/// One v6 query from the client namespace: the host that answered.
fn ask_v6(client: &Netns) -> Option<usize> {
    let name = client.name.clone();
    std::thread::spawn(move || {
        enter_netns(&name);
        let s = UdpSocket::bind("[::]:0").unwrap();
        s.connect(SocketAddr::new(SERVICE6.parse::<IpAddr>().unwrap(), 53))
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.send(&who_query(7)).unwrap();
        let mut buf = [0u8; 1500];
        let len = s.recv(&mut buf).ok()?;
        host_of(&buf[..len], 7)?.ok()
    })
    .join()
    .unwrap()
}

#[test]
fn anycast_withdraws_failed_ls_in_a_second_and_a_rolling_restart_loses_nothing() {
    const TEST: &str =
        "anycast_withdraws_failed_ls_in_a_second_and_a_rolling_restart_loses_nothing";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let Some([bird, birdc]) = need(TEST, ["bird", "birdc"]) else {
        return;
    };
    let _load_lock = crate::kit::timed_blocking();
    let mut f = Fleet::start(&ip, &bird, &birdc);
    let all: Vec<usize> = (1..=HOSTS).collect();
    if f.wait_hops(&all, CONVERGE).is_none() {
        f.panic_with_logs("the service routes never had every LS host as next hop");
    }
    assert!(
        ask_v6(&f.client).is_some(),
        "no answer over IPv6 through the router"
    );

    // Host 3's backend hung (SIGSTOP of its TS): the LS still answers the
    // probe's `id.server. CH TXT` itself, so it stays announced (a probe
    // through the backend withdrew it within 400 ms).
    let hung = f.tss[2].pause();
    let moved = poll_until(WITHDRAW_LIMIT * 2, Duration::from_millis(20), || {
        (f.router.next_hops(false, HOSTS) != all).then_some(())
    });
    if moved.is_some() {
        f.panic_with_logs("host 3 withdrawn while only its backend hung");
    }
    drop(hung);

    // Load spreads over the three.
    let load = Load::start(&f.client, 4);
    let spread = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        (load.seen_hosts() == all).then_some(())
    });
    assert!(
        spread.is_some(),
        "the load reached only {:?}",
        load.seen_hosts()
    );

    // kill -9 of host 1's LS, then SIGSTOP of host 2's.
    let (w, resume) = kill_then_stop(&f.router, &mut f.hosts, WITHDRAW_LIMIT * 4)
        .unwrap_or_else(|what| f.panic_with_logs(what));
    eprintln!(
        "withdrawn after kill -9 in {:?}, after SIGSTOP in {:?}",
        w.took_kill, w.took_stop
    );
    w.assert_withdrawn_within(WITHDRAW_LIMIT);

    // Both back: host 2 resumed, host 1 started again.
    drop(resume);
    f.hosts[0].restart_ls();
    if f.wait_hops(&all, CONVERGE).is_none() {
        f.panic_with_logs("hosts 1 and 2 never announced again");
    }
    let sent = load.finish();
    let lost: Vec<&Sent> = sent.iter().filter(|s| s.answer.is_none()).collect();
    let wrong = sent.iter().filter(|s| s.answer == Some(Err(()))).count();
    assert_eq!(wrong, 0, "answers that named no host");
    // A query lost must have gone out inside a failure's window: from the
    // failure to the withdrawal seen, plus one client wait.
    let slack = ANSWER_WAIT + Duration::from_millis(100);
    let in_window = |s: &Sent| {
        (s.at + Duration::from_millis(50) >= w.t_kill && s.at <= w.end_kill + slack)
            || (s.at + Duration::from_millis(50) >= w.t_stop && s.at <= w.end_stop + slack)
    };
    let outside: Vec<_> = lost.iter().filter(|s| !in_window(s)).collect();
    eprintln!(
        "failures: {} queries, {} lost, all inside the windows: {}",
        sent.len(),
        lost.len(),
        outside.is_empty()
    );
    assert!(
        outside.is_empty(),
        "{} of {} lost queries went out outside the failure windows",
        outside.len(),
        lost.len()
    );

    // A rolling restart under load: nothing lost.
    let load = Load::start(&f.client, 4);
    let drain = Duration::from_secs(DRAIN_S + 10);
    let limits = [WITHDRAW_LIMIT * 4, drain, CONVERGE];
    for k in 0..HOSTS {
        if let Err(what) = restart_by_term(&f.router, &mut f.hosts, k, limits) {
            f.panic_with_logs(&what);
        }
    }
    let sent = load.finish();
    let lost = sent.iter().filter(|s| s.answer.is_none()).count();
    let wrong = sent.iter().filter(|s| s.answer == Some(Err(()))).count();
    eprintln!(
        "rolling restart: {} queries, {lost} lost, {wrong} wrong",
        sent.len()
    );
    assert_eq!((lost, wrong), (0, 0), "of {} queries", sent.len());

    // Stop everything by PID now (the guards would too).
    for h in &mut f.hosts {
        h.stop();
    }
    for ts in &mut f.tss {
        ts.kill_hard();
    }
}

/// Without namespaces: the probe's default question (`id.server. CH TXT`)
/// is answered by the LS itself at once while its only backend is a
/// black hole (a UDP socket never read), where `. SOA` waits for the LS's
/// 1.5 s deadline, longer than the probe's 150 ms timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_is_answered_by_the_ls_itself_while_its_backend_hangs() {
    use crate::kit::{ZoneDir, start_ls_role};
    use dnslb::anycast::decision::RoundVerdict;
    let hole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = ZoneDir::new();
    let path = dir.write(
        "config.toml",
        &format!(
            "[ls]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\nmetrics = \"127.0.0.1:0\"\n\n\
             [ls.anycast]\ndrain_s = 0\n\n[[ls.backend]]\nname = \"hole\"\naddr = \"{}\"\n",
            hole.local_addr().unwrap()
        ),
    );
    let run = start_ls_role(&path).await;
    let cfg = dnslb::config::Config::load(&path).unwrap();
    let anycast = cfg.ls.unwrap().anycast.unwrap();
    let wait = Duration::from_millis(anycast.timeout_ms);
    for _ in 0..5 {
        let got = dnslb::anycast::probe::dns(run.addr, &anycast.query, None, wait).await;
        assert_eq!(got.verdict, RoundVerdict::Good, "{}", anycast.query);
    }
    let soa = ". SOA".parse().unwrap();
    let through = dnslb::anycast::probe::dns(run.addr, &soa, None, wait)
        .await
        .verdict;
    assert_eq!(
        through,
        RoundVerdict::Lost,
        "a question for the backend waits for it"
    );
    run.stop().await;
    drop(hole);
}

/// Without namespaces: an LS with `[ls.anycast] drain_s = 2` told to stop
/// says "stopping" on `/ready` at once, still answers through the drain,
/// and then stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_turns_ready_to_503_at_once_answers_for_drain_s_then_ends() {
    use crate::kit::{ZoneDir, start_ls_role, start_ts_table, udp_ask};
    use dnslb::metrics::ReadyState;
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", "www.drain.example 10.8.1.1 A\n").await;
    let path = dir.write(
        "config.toml",
        &format!(
            "[ls]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\nmetrics = \"127.0.0.1:0\"\n\n\
             [ls.anycast]\ndrain_s = {DRAIN_S}\n\n\
             [[ls.backend]]\nname = \"ts\"\naddr = \"{}\"\n",
            ts.addr
        ),
    );
    let mut run = start_ls_role(&path).await;
    let name = "www.drain.example";
    let wait = Duration::from_secs(2);
    assert!(
        udp_ask(run.addr, name, wait).await.is_some(),
        "no answer before the stop"
    );
    let t = Instant::now();
    run.controls.send(dnslb::roles::Control::Shutdown).unwrap();
    let stopping = crate::kit::poll_until_async(wait, Duration::from_millis(5), async || {
        (run.ready.state() == ReadyState::Stopping).then_some(())
    })
    .await;
    assert!(stopping.is_some(), "/ready did not turn 503");
    // Through the drain (its first second at least, whatever the machine's
    // load), the LS answers.
    let mut answered = 0;
    while t.elapsed() < Duration::from_secs(DRAIN_S) - Duration::from_millis(700) {
        assert!(
            !run.task.is_finished(),
            "ended {:?} into a {DRAIN_S} s drain",
            t.elapsed()
        );
        let m = udp_ask(run.addr, name, wait).await;
        assert!(m.is_some(), "no answer {:?} into the drain", t.elapsed());
        answered += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered > 0);
    let ended = tokio::time::timeout(Duration::from_secs(DRAIN_S + 10), &mut run.task).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the LS did not end cleanly after the drain: {ended:?}"
    );
    assert!(
        t.elapsed() >= Duration::from_secs(DRAIN_S),
        "ended before drain_s"
    );
    ts.stop().await;
}
