//! A fleet (docs/DEPLOY.md "Anycast", "Secondaries and catalogs") in
//! network namespaces the test makes, every packet inside them:
//!
//! - a router running BIRD with ECMP (`merge paths`, L4 multipath hashing),
//!   BGP with BFD to three LS hosts, each running `dnslb ls` on the service
//!   address 192.0.2.53 / 2001:db8:53::53, `dnslb anycast` and BIRD on the
//!   shipped deploy/anycast/bird.conf;
//! - a primary `dnslb ts` (host p) serving fleet.test. from a file (SOA
//!   REFRESH 2 s, RETRY 1 s, EXPIRE 5 s) and publishing the catalog
//!   cat.fleet., and its secondaries, all consuming that catalog and
//!   NOTIFYed by the primary: a `dnslb ts` on each of hosts t1 and t2 (the
//!   LS hosts' backends, `catalog_from`) and Knot on host k (`catalog-role:
//!   interpret` with a catalog template);
//! - a client with four source addresses: dnsperf from one, a checker from
//!   the three others validating every answer (hN.fleet.test A 198.51.100.N).
//!
//! Asserted: the load spreads over the three LS (each LS's
//! `dnslb_queries_total` over a sixth of the sum); a rolling restart of
//! every LS (SIGTERM, start again, announced) under load loses nothing and
//! answers nothing wrong (checker and dnsperf); `kill -9` of one LS and
//! SIGSTOP of another each leave the router's table within 1.5 s, the
//! queries lost went out inside those windows only, none wrong; a change on
//! the primary (SIGHUP) is served by both dnslb secondaries and Knot within
//! 1 s, by exactly one IXFR each (the primary's counters: three incremental
//! IXFRs, no AXFR); the primary cut off from the fleet (the router's link
//! down; the process keeps its in-memory IXFR journal) past its REFRESH:
//! every secondary still serves, the checker loses nothing; changed while
//! cut off, then past EXPIRE: t1, t2 and Knot answer SERVFAIL for the zone,
//! t1 and t2 count it (`dnslb_ts_secondary_total{event="expired"}`) and all
//! three log it; the primary back: all serve the change within 5 s, t1 and
//! t2 by one IXFR each (no AXFR), Knot by AXFR (it drops an expired zone's
//! data); the primary started again with a zone added: t1, t2 and Knot
//! serve it within 5 s (the catalog), and again without it: gone from all
//! three (REFUSED).
//!
//! Runtime: about 30 s (BGP and BFD coming up, the drains of the rolling
//! restart, the EXPIRE). Skipped unless root with `ip`, bird, birdc,
//! dnsperf and knotd.
//! Every process is stopped by PID, every namespace deleted by guards.
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rustix::process::Signal;

use crate::kit::fleet::{
    CHECK_WAIT, Checker, Dnsperf, LsHost, Router, SERVICE4, SERVICE6, Sent, ask_in, kill_then_stop,
    metric_in, per_second, restart_by_term, tally,
};
use crate::kit::{BIN, Knot, Netns, Proc, need, netns_or_skip, poll_until, wait_log};

const HOSTS: usize = 3;
/// How long the routes may take to appear (BGP, BFD, the probe's rounds).
const CONVERGE: Duration = Duration::from_secs(30);
/// The generous bound on a withdrawal (the probe's worst case is 550 ms,
/// then a BGP update inside one machine).
const WITHDRAW_LIMIT: Duration = Duration::from_millis(1500);
/// The generous bound on a zone added or removed reaching every secondary
/// (NOTIFY, the catalog's transfer, the member's), and how long a wait
/// for an answer polls.
const FOLLOW: Duration = Duration::from_secs(5);
/// The bound on a change reaching every secondary (NOTIFY, one IXFR).
const CHANGE_LIMIT: Duration = Duration::from_secs(1);
/// The zone's SOA REFRESH, RETRY and EXPIRE (seconds): small, so that the
/// primary gone past EXPIRE takes seconds (Knot's least EXPIRE is 3 s).
const REFRESH: u32 = 2;
const RETRY: u32 = 1;
const EXPIRE: u32 = 5;
/// One ask's wait for its answer.
const ASK_WAIT: Duration = Duration::from_millis(200);
/// `drain_s` of the LS hosts.
const DRAIN_S: u64 = 2;
/// Host records in the zone: enough that the primary keeps a one-record
/// change for IXFR (it keeps none over half the zone's size).
const NAMES: u8 = 60;
/// The primary (host p, link 30); the secondaries t1, t2 (links 31, 32),
/// Knot (host k, link 33, on [`KNOT_PORT`]).
const PRIMARY: &str = "10.99.30.2:53";
const KNOT_NET: u8 = 33;
const KNOT_PORT: u16 = 5355;
/// `/metrics` of each dnslb process, on its namespace's loopback.
const METRICS: &str = "127.0.0.1:5390";

fn zone(serial: u32, extra: &str) -> String {
    let mut z = format!(
        "$ORIGIN fleet.test.\n$TTL 60\n\
         @ IN SOA ns.fleet.test. host.fleet.test. {serial} {REFRESH} {RETRY} {EXPIRE} 60\n\
         @ IN NS ns.fleet.test.\nns IN A 10.99.30.2\n"
    );
    for i in 1..=NAMES {
        z.push_str(&format!("h{i} IN A 198.51.100.{i}\n"));
    }
    z.push_str(extra);
    z
}

fn names() -> Vec<(String, Ipv4Addr)> {
    (1..=NAMES)
        .map(|i| (format!("h{i}.fleet.test."), Ipv4Addr::new(198, 51, 100, i)))
        .collect()
}

/// The primary serving the zone files `files`, publishing them in the
/// catalog cat.fleet.
fn primary_conf(files: &[&str]) -> String {
    let files: Vec<String> = files.iter().map(|f| format!("\"{f}\"")).collect();
    format!(
        "[[ts]]\nname = \"primary\"\nlisten = \"0.0.0.0:53\"\nzones = [{}]\ncatalog = \"cat.fleet.\"\n\
         axfr_allow = [\"10.99.0.0/16\", \"127.0.0.0/8\"]\n\
         notify = [\"10.99.31.2:53\", \"10.99.32.2:53\", \"10.99.{KNOT_NET}.2:{KNOT_PORT}\"]\n\
         metrics = \"{METRICS}\"\nworkers = 1\n",
        files.join(", ")
    )
}

/// A dnslb secondary consuming the primary's catalog: every zone listed
/// there (fleet.test.) a secondary zone of the primary.
fn secondary_conf(k: u8) -> String {
    format!(
        "[[ts]]\nname = \"sec\"\nlisten = \"10.99.3{k}.2:53\"\n\
         zones = []\ncatalog_from = {{ name = \"cat.fleet.\", primary = \"{PRIMARY}\" }}\n\
         state_dir = \"state\"\nmetrics = \"{METRICS}\"\nworkers = 1\n"
    )
}

fn ls_conf(bird_socket: &Path) -> String {
    format!(
        "[ls]\nlisten = [\"{SERVICE4}:53\", \"[{SERVICE6}]:53\"]\nworkers = 1\n\
         metrics = \"{METRICS}\"\nallow = [\"0.0.0.0/0\", \"::/0\"]\n\n\
         [ls.health]\nquery = \"fleet.test. SOA\"\n\n\
         [ls.anycast]\ndrain_s = {DRAIN_S}\nquery = \"fleet.test. SOA\"\nbird_socket = \"{}\"\n\n\
         [[ls.backend]]\nname = \"t1\"\naddr = \"10.99.31.2:53\"\n\n\
         [[ls.backend]]\nname = \"t2\"\naddr = \"10.99.32.2:53\"\n",
        bird_socket.display()
    )
}

/// A table server host: its namespace and the `dnslb ts` in it (dropped
/// first). `dir` holds its config (and state_dir).
struct TsHost {
    ts: Proc,
    dir: PathBuf,
    ns: Netns,
}

impl TsHost {
    fn start(
        router: &Router,
        ip: &Path,
        prefix: &str,
        tag: &str,
        net: u8,
        dir: PathBuf,
        conf: &str,
    ) -> TsHost {
        let ns = Netns::create(ip, prefix, tag);
        router.link(&ns, net);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ts.toml"), conf).unwrap();
        let ts = TsHost::spawn(&ns, &dir, tag);
        TsHost { ts, dir, ns }
    }

    fn spawn(ns: &Netns, dir: &Path, tag: &str) -> Proc {
        let conf = dir.join("ts.toml");
        let name = if tag == "p" { "primary" } else { "sec" };
        Proc::spawn(
            &format!("ts {tag}"),
            ns.command(
                Path::new(BIN),
                &["ts", "-c", conf.to_str().unwrap(), "--name", name],
            ),
        )
    }

    fn metrics(&self) -> SocketAddr {
        METRICS.parse().unwrap()
    }
}

/// The address of dnslb secondary `k` (0: t1, 1: t2).
fn sec_addr(k: usize) -> SocketAddr {
    format!("10.99.3{}.2:53", k + 1).parse().unwrap()
}

/// Waits until `server` (inside `ns`) answers `name A` with `want`; how
/// long after `since`.
fn wait_answer(
    ns: &Netns,
    server: SocketAddr,
    (name, want): (&str, Ipv4Addr),
    since: Instant,
) -> Option<Duration> {
    poll_until(FOLLOW, Duration::from_millis(10), || {
        let m = ask_in(ns, server, name, RecordType::A, ASK_WAIT)?;
        (m.metadata.response_code == ResponseCode::NoError && crate::kit::a_addrs(&m) == [want])
            .then(|| since.elapsed())
    })
}

/// Knot's host (k): its namespace and the knotd in it (dropped first),
/// consuming the primary's catalog.
struct KnotHost {
    knot: Knot,
    ns: Netns,
}

/// A secondary (dnslb or Knot) as a [`Fleet::restart_primary`] check sees it.
struct SecondaryAt<'a> {
    ns: &'a Netns,
    addr: SocketAddr,
    since: Instant,
}

/// The whole fleet. Field order is drop order: the processes (inside the
/// hosts) before the namespaces, the router last.
struct Fleet {
    hosts: Vec<LsHost>,
    knot: KnotHost,
    secondaries: Vec<TsHost>,
    primary: TsHost,
    client: Netns,
    router: Router,
    _dir: tempfile::TempDir,
}

impl Fleet {
    fn panic_with_logs(&self, what: &str) -> ! {
        let mut text = format!("{what}\n{}", self.router.describe());
        for h in &self.hosts {
            text.push_str(&h.describe());
        }
        for t in self.secondaries.iter().chain([&self.primary]) {
            text.push_str(&format!("--- ts {}\n{}", t.ns.name, t.ts.stderr_now()));
        }
        text.push_str(&self.knot.knot.logs());
        panic!("{text}");
    }

    /// Every secondary (t1, t2, Knot): its namespace and the address it
    /// answers at there.
    fn followers(&self) -> Vec<(&Netns, SocketAddr)> {
        let mut all: Vec<(&Netns, SocketAddr)> = (self.secondaries.iter().enumerate())
            .map(|(k, t)| (&t.ns, sec_addr(k)))
            .collect();
        let knot = SocketAddr::new([127, 0, 0, 1].into(), KNOT_PORT);
        all.push((&self.knot.ns, knot));
        all
    }

    /// The primary cut off from the fleet (`cut`: the router's link to it
    /// down, the others' packets to it answered "unreachable" by the
    /// router), or back; the process keeps running (its IXFR journal is
    /// in memory only: a restarted primary would answer with whole zones).
    fn cut_primary(&self, cut: bool) {
        let state = if cut { "down" } else { "up" };
        self.router.ns.ip(&["link", "set", "n30", state]);
    }

    /// The primary (stopped) started again serving `files`; `check` run on
    /// each secondary (t1, t2, Knot) with the time of the start.
    fn restart_primary(
        &mut self,
        files: &[&str],
        check: impl Fn(&SecondaryAt) -> Option<Duration>,
    ) -> Vec<Option<Duration>> {
        self.primary.ts.kill_hard();
        let p = &mut self.primary;
        std::fs::write(p.dir.join("ts.toml"), primary_conf(files)).unwrap();
        let since = Instant::now();
        p.ts = TsHost::spawn(&p.ns, &p.dir, "p");
        self.followers()
            .into_iter()
            .map(|(ns, addr)| check(&SecondaryAt { ns, addr, since }))
            .collect()
    }

    fn wait_hops(&self, want: &[usize], limit: Duration) -> Option<Duration> {
        self.router.wait_hops(want, HOSTS, limit)
    }

    /// `dnslb_queries_total` of each LS.
    fn ls_queries(&self) -> Vec<f64> {
        self.hosts
            .iter()
            .map(|h| metric_in(&h.ns, METRICS.parse().unwrap(), "dnslb_queries_total", &[]))
            .collect()
    }

    /// The primary's `dnslb_ts_xfr_total{kind}`.
    fn primary_xfr(&self, kind: &str) -> f64 {
        metric_in(
            &self.primary.ns,
            self.primary.metrics(),
            "dnslb_ts_xfr_total",
            &[("kind", kind)],
        )
    }

    /// `dnslb_ts_secondary_total{event}` of each dnslb secondary.
    fn secondary_events(&self, event: &str) -> Vec<f64> {
        self.secondaries
            .iter()
            .map(|t| {
                metric_in(
                    &t.ns,
                    t.metrics(),
                    "dnslb_ts_secondary_total",
                    &[("event", event)],
                )
            })
            .collect()
    }

    /// How long after `since` each secondary (t1, t2, Knot) and the
    /// service address answered `name` with `want` (each waited for up to
    /// [`FOLLOW`]).
    fn wait_everywhere(&self, name: &str, want: Ipv4Addr, since: Instant) -> Vec<Option<Duration>> {
        let mut took: Vec<Option<Duration>> = self
            .followers()
            .into_iter()
            .map(|(ns, addr)| wait_answer(ns, addr, (name, want), since))
            .collect();
        let service = SocketAddr::new(SERVICE4.parse().unwrap(), 53);
        took.push(wait_answer(&self.client, service, (name, want), since));
        took
    }
}

#[test]
fn a_fleet_spreads_restarts_fails_over_and_follows_its_primary() {
    const TEST: &str = "a_fleet_spreads_restarts_fails_over_and_follows_its_primary";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let Some([bird, birdc, dnsperf, knotd]) = need(TEST, ["bird", "birdc", "dnsperf", "knotd"])
    else {
        return;
    };
    let _load_lock = crate::kit::timed_blocking();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let prefix = Netns::unique_prefix("f");
    let mut router = Router::create(&ip, &prefix);
    let client = Netns::create(&ip, &prefix, "c");
    let sources = router.link_client(&client, 3);

    // The primary, its Knot secondary beside it, the two dnslb secondaries.
    let pdir = dir.path().join("p");
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::write(pdir.join("fleet.zone"), zone(1, "")).unwrap();
    let primary = TsHost::start(
        &router,
        &ip,
        &prefix,
        "p",
        30,
        pdir,
        &primary_conf(&["fleet.zone"]),
    );
    // Knot bootstraps at once and, refused, waits its retry (about 20 s):
    // it starts once the primary answers.
    let h1 = Ipv4Addr::new(198, 51, 100, 1);
    let primary_at = SocketAddr::new([127, 0, 0, 1].into(), 53);
    assert!(
        wait_answer(
            &primary.ns,
            primary_at,
            ("h1.fleet.test.", h1),
            Instant::now()
        )
        .is_some(),
        "the primary never answered:\n{}",
        primary.ts.stderr_now()
    );
    let knot_ns = Netns::create(&ip, &prefix, "k");
    router.link(&knot_ns, KNOT_NET);
    let knot = KnotHost {
        knot: Knot::catalog_consumer_in(
            &knotd,
            &knot_ns,
            KNOT_PORT,
            "cat.fleet.",
            PRIMARY.parse().unwrap(),
            "10.99.30.2",
        ),
        ns: knot_ns,
    };
    let secondaries: Vec<TsHost> = (1..=2u8)
        .map(|k| {
            let tag = format!("t{k}");
            let d = dir.path().join(&tag);
            TsHost::start(&router, &ip, &prefix, &tag, 30 + k, d, &secondary_conf(k))
        })
        .collect();
    let hosts: Vec<LsHost> = (1..=HOSTS)
        .map(|i| {
            LsHost::start(
                &router,
                &ip,
                &prefix,
                i,
                [&bird, &birdc],
                dir.path(),
                &ls_conf,
            )
        })
        .collect();
    router.start_bird(&bird, &birdc, dir.path(), HOSTS);
    let mut f = Fleet {
        hosts,
        knot,
        secondaries,
        primary,
        client,
        router,
        _dir: dir,
    };
    let all: Vec<usize> = (1..=HOSTS).collect();
    if f.wait_hops(&all, CONVERGE).is_none() {
        f.panic_with_logs("the service routes never had every LS host as next hop");
    }
    if f.wait_everywhere("h1.fleet.test.", h1, Instant::now())
        .iter()
        .any(Option::is_none)
    {
        f.panic_with_logs("the secondaries never served the zone");
    }
    let service6 = SocketAddr::new(SERVICE6.parse().unwrap(), 53);
    let v6 = ask_in(
        &f.client,
        service6,
        "h1.fleet.test.",
        RecordType::A,
        Duration::from_secs(2),
    );
    assert!(
        v6.is_some_and(|m| crate::kit::a_addrs(&m) == [h1]),
        "no answer over IPv6 through the router"
    );
    eprintln!("fleet up in {:?}", started.elapsed());

    // Load: dnsperf from one source address, the checker from three.
    let data = f._dir.path().join("queries.txt");
    let lines: String = names().iter().map(|(n, _)| format!("{n} A\n")).collect();
    std::fs::write(&data, lines).unwrap();
    let source0 = sources[0].to_string();
    let service = SocketAddr::new(SERVICE4.parse().unwrap(), 53);
    let t0 = Instant::now();
    let checker = Checker::start(&f.client, &sources[1..], service, &names());
    let perf = Dnsperf::start(&dnsperf, &f.client, SERVICE4, &source0, &data, 1500);

    // The load spreads: each LS counts over a sixth of the queries.
    let before = f.ls_queries();
    let spread = poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let now: Vec<f64> = f
            .ls_queries()
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect();
        let sum: f64 = now.iter().sum();
        (sum >= 3000.0).then_some(now)
    });
    let Some(spread) = spread else {
        f.panic_with_logs("fewer than 3,000 queries in 10 s");
    };
    let sum: f64 = spread.iter().sum();
    eprintln!("queries per LS: {spread:?}");
    assert!(
        spread.iter().all(|&n| n > sum / 6.0),
        "the load did not spread: {spread:?}"
    );

    // A rolling restart under load: nothing lost, nothing wrong.
    let t_roll = Instant::now();
    let drain = Duration::from_secs(DRAIN_S + 10);
    let limits = [WITHDRAW_LIMIT * 4, drain, CONVERGE];
    for k in 0..HOSTS {
        let (withdrawn, back) = restart_by_term(&f.router, &mut f.hosts, k, limits)
            .unwrap_or_else(|what| f.panic_with_logs(&what));
        eprintln!(
            "host {}: withdrawn {withdrawn:?} after SIGTERM, announced {back:?} after its start",
            k + 1
        );
    }
    let t_rolled = Instant::now();
    let stats = perf.stop();
    let (n, lost, wrong) = tally(&checker.snapshot(), t_roll, t_rolled);
    eprintln!(
        "rolling restart in {:?}: checker {n} queries, {lost} lost, {wrong} wrong; dnsperf {} sent, {} lost, rcodes {}",
        t_rolled - t_roll,
        stats.sent,
        stats.lost,
        stats.rcodes
    );
    assert_eq!(
        (lost, wrong),
        (0, 0),
        "checker, of {n} queries in the rolling restart"
    );
    assert_eq!(
        stats.lost, 0,
        "dnsperf through the rolling restart:\n{}",
        stats.text
    );
    assert!(
        stats.rcodes.starts_with("NOERROR") && !stats.rcodes.contains(','),
        "dnsperf's rcodes: {}",
        stats.rcodes
    );

    // kill -9 of host 1's LS, then SIGSTOP of host 2's.
    let perf = Dnsperf::start(&dnsperf, &f.client, SERVICE4, &source0, &data, 1500);
    let (w, resume) = kill_then_stop(&f.router, &mut f.hosts, WITHDRAW_LIMIT * 4)
        .unwrap_or_else(|what| f.panic_with_logs(what));
    // Hung a while longer (a hung LS does not come back at once): resumed
    // at once, it would answer the queries it holds inside the checker's
    // wait and hide them.
    std::thread::sleep(CHECK_WAIT + Duration::from_millis(200));
    // Both back: host 2 resumed, host 1 started again.
    drop(resume);
    f.hosts[0].restart_ls();
    if f.wait_hops(&all, CONVERGE).is_none() {
        f.panic_with_logs("hosts 1 and 2 never announced again");
    }
    let t_back = Instant::now();
    // dnsperf counts a query lost once its timeout (1 s) passes: let those
    // sent before the routes came back reach it.
    std::thread::sleep(Duration::from_millis(1100));
    let stats = perf.stop();
    // A query lost must have gone out inside a failure's window: from the
    // failure to the withdrawal seen, plus one checker wait.
    let slack = CHECK_WAIT + Duration::from_millis(100);
    let early = Duration::from_millis(50);
    let sent = checker.snapshot();
    let (_, lost_kill, wrong_kill) = tally(&sent, w.t_kill - early, w.end_kill + slack);
    let (_, lost_stop, wrong_stop) = tally(&sent, w.t_stop - early, w.end_stop + slack);
    let (_, lost_kill_only, _) = tally(&sent, w.t_kill - early, w.t_stop - early);
    let (n_all, lost_all, wrong_all) = tally(&sent, w.t_kill - early, t_back);
    let (took_kill, took_stop) = (w.took_kill, w.took_stop);
    eprintln!(
        "withdrawn after kill -9 in {took_kill:?} ({lost_kill_only} checker queries lost before the SIGSTOP, {lost_kill} to {:?} after the withdrawal), after SIGSTOP in {took_stop:?} ({lost_stop} lost); \
         {n_all} checker queries in all, {lost_all} lost; dnsperf {} sent, {} lost",
        slack, stats.sent, stats.lost
    );
    eprint!("checker per second:\n{}", per_second(&sent, t0));
    w.assert_withdrawn_within(WITHDRAW_LIMIT);
    assert_eq!(
        (wrong_all, wrong_kill, wrong_stop),
        (0, 0, 0),
        "wrong answers"
    );
    let in_window = |s: &Sent| {
        (s.at + early >= w.t_kill && s.at <= w.end_kill + slack)
            || (s.at + early >= w.t_stop && s.at <= w.end_stop + slack)
    };
    let outside = sent
        .iter()
        .filter(|s| s.right.is_none() && !in_window(s))
        .count();
    assert_eq!(
        outside, 0,
        "of {lost_all} lost queries, {outside} went out outside the failure windows"
    );

    // A change on the primary: every secondary serves it, by IXFR.
    let axfr_before = f.primary_xfr("axfr");
    let ixfr_before = f.primary_xfr("ixfr_incremental");
    std::fs::write(
        f.primary.dir.join("fleet.zone"),
        zone(2, "new IN A 192.0.2.99\n"),
    )
    .unwrap();
    let t_hup = Instant::now();
    f.primary.ts.signal(Signal::HUP);
    let took = f.wait_everywhere("new.fleet.test.", Ipv4Addr::new(192, 0, 2, 99), t_hup);
    eprintln!(
        "the change served by t1, t2, Knot, the service address after {took:?} (from SIGHUP)"
    );
    if took.iter().any(Option::is_none) {
        f.panic_with_logs(&format!(
            "the change was not served everywhere within {FOLLOW:?}: {took:?}"
        ));
    }
    assert!(
        took[..3].iter().flatten().all(|&t| t < CHANGE_LIMIT),
        "the change reached t1, t2, Knot after {took:?}, not all within {CHANGE_LIMIT:?}"
    );
    // Every secondary took it by one IXFR: three incremental IXFRs (t1, t2,
    // Knot), no AXFR.
    let ixfrs = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        let n = f.primary_xfr("ixfr_incremental") - ixfr_before;
        (n >= 3.0).then_some(n)
    });
    assert_eq!(
        ixfrs,
        Some(3.0),
        "incremental IXFRs answered by the primary"
    );
    assert_eq!(f.primary_xfr("axfr"), axfr_before, "AXFRs after the change");
    assert_eq!(
        f.secondary_events("ixfr"),
        vec![1.0, 1.0],
        "IXFRs applied by t1, t2"
    );

    // The primary cut off from the fleet past its REFRESH: a refresh of
    // each dnslb secondary fails, and every secondary keeps serving.
    let failed_before = f.secondary_events("failed");
    let expired_before = f.secondary_events("expired");
    let t_down = Instant::now();
    f.cut_primary(true);
    let failed = poll_until(Duration::from_secs(15), Duration::from_millis(100), || {
        let now = f.secondary_events("failed");
        now.iter()
            .zip(&failed_before)
            .all(|(a, b)| a > b)
            .then_some(())
    });
    if failed.is_none() {
        f.panic_with_logs("no secondary noticed its primary gone");
    }
    let t_noticed = Instant::now();
    eprintln!(
        "the secondaries' refresh failed {:?} after the primary was cut off",
        t_noticed - t_down
    );
    let still = f.wait_everywhere("new.fleet.test.", Ipv4Addr::new(192, 0, 2, 99), t_down);
    assert!(
        still.iter().all(Option::is_some),
        "served without the primary: {still:?}"
    );
    let sent = checker.finish();
    let (n, lost, wrong) = tally(&sent, t_down, t_noticed);
    assert_eq!(
        (lost, wrong),
        (0, 0),
        "checker, of {n} queries with the primary down"
    );

    // Changed while cut off (its NOTIFYs reach no one), then past EXPIRE:
    // every secondary answers SERVFAIL for the zone and says so.
    let ixfr_before = f.primary_xfr("ixfr_incremental");
    let axfr_before = f.primary_xfr("axfr");
    let sec_ixfr_before = f.secondary_events("ixfr");
    let sec_axfr_before = f.secondary_events("axfr");
    let later = ("later.fleet.test.", Ipv4Addr::new(192, 0, 2, 98));
    std::fs::write(
        f.primary.dir.join("fleet.zone"),
        zone(3, "new IN A 192.0.2.99\nlater IN A 192.0.2.98\n"),
    )
    .unwrap();
    f.primary.ts.signal(Signal::HUP);
    let expire = Duration::from_secs(EXPIRE.into());
    let expired = poll_until(expire * 3, Duration::from_millis(100), || {
        let counted = f
            .secondary_events("expired")
            .iter()
            .zip(&expired_before)
            .all(|(a, b)| a > b);
        let servfail = f.followers().iter().all(|(ns, addr)| {
            ask_in(ns, *addr, "h1.fleet.test.", RecordType::A, ASK_WAIT)
                .is_some_and(|m| m.metadata.response_code == ResponseCode::ServFail)
        });
        (counted && servfail).then(|| t_down.elapsed())
    });
    let Some(expired) = expired else {
        f.panic_with_logs(&format!(
            "the zone did not expire everywhere within {:?} of the primary cut off",
            expire * 3
        ));
    };
    eprintln!("SERVFAIL everywhere {expired:?} after the primary was cut off (EXPIRE {expire:?})");
    assert!(
        expired >= expire - Duration::from_secs(REFRESH.into()),
        "expired after {expired:?}, before EXPIRE ({expire:?}) since the last contact"
    );
    // Each logged its expiry before it answered SERVFAIL; the log's reader
    // may have the line only later.
    for t in &mut f.secondaries {
        let what = format!("ts {}'s expiry", t.ns.name);
        wait_log(&mut t.ts, FOLLOW, &what, |log| {
            log.contains("secondary zone expired").then_some(())
        });
    }
    wait_log(&mut f.knot.knot.proc, FOLLOW, "Knot's expiry", |log| {
        log.contains("[fleet.test.] zone expired").then_some(())
    });

    // The primary back: every secondary catches up by IXFR.
    let t_back = Instant::now();
    f.cut_primary(false);
    let took: Vec<Option<Duration>> = f
        .followers()
        .into_iter()
        .map(|(ns, addr)| wait_answer(ns, addr, later, t_back))
        .collect();
    eprintln!("the primary back: t1, t2, Knot caught up after {took:?}");
    if took.iter().any(Option::is_none) {
        f.panic_with_logs(&format!("not caught up within {FOLLOW:?}: {took:?}"));
    }
    // t1 and t2 by one IXFR each; Knot by AXFR: it drops an expired
    // zone's data (its log: "zone expired") and bootstraps it anew.
    let served = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        let ixfrs = f.primary_xfr("ixfr_incremental") - ixfr_before;
        let axfrs = f.primary_xfr("axfr") - axfr_before;
        (ixfrs >= 2.0 && axfrs >= 1.0).then_some((ixfrs, axfrs))
    });
    eprintln!("the primary answered (incremental IXFRs, AXFRs) {served:?} to catch up");
    let knot_log = f.knot.knot.proc.stderr_now();
    for l in knot_log.lines().filter(|l| {
        l.contains("[fleet.test.]") && (l.contains("expired") || l.contains("incoming"))
    }) {
        eprintln!("knot: {l}");
    }
    assert_eq!(
        served,
        Some((2.0, 1.0)),
        "transfers answered by the primary to catch up (t1, t2 by IXFR; Knot by AXFR)"
    );
    let applied = |event: &str, before: &[f64]| -> Vec<f64> {
        f.secondary_events(event)
            .iter()
            .zip(before)
            .map(|(a, b)| a - b)
            .collect()
    };
    assert_eq!(
        (
            applied("ixfr", &sec_ixfr_before),
            applied("axfr", &sec_axfr_before)
        ),
        (vec![1.0, 1.0], vec![0.0, 0.0]),
        "IXFRs and AXFRs applied by t1, t2 to catch up"
    );

    // The primary back with a zone added: both dnslb secondaries serve it
    // through the catalog; started again without it, it is gone from both.
    let extra = "$ORIGIN extra.test.\n$TTL 60\n@ IN SOA ns.extra.test. host.extra.test. 1 2 1 3600 60\n\
                 @ IN NS ns.extra.test.\nns IN A 10.99.30.2\nwww IN A 192.0.2.77\n";
    std::fs::write(f.primary.dir.join("extra.zone"), extra).unwrap();
    let www = ("www.extra.test.", Ipv4Addr::new(192, 0, 2, 77));
    let took = f.restart_primary(&["fleet.zone", "extra.zone"], |t| {
        wait_answer(t.ns, t.addr, www, t.since)
    });
    eprintln!("a zone added on the primary (restarted) served by t1, t2, Knot after {took:?}");
    if took.iter().any(Option::is_none) {
        f.panic_with_logs(&format!(
            "the added zone did not reach every secondary: {took:?}"
        ));
    }
    let took = f.restart_primary(&["fleet.zone"], |t| {
        poll_until(FOLLOW, Duration::from_millis(10), || {
            let m = ask_in(t.ns, t.addr, www.0, RecordType::A, ASK_WAIT)?;
            (m.metadata.response_code == ResponseCode::Refused).then(|| t.since.elapsed())
        })
    });
    eprintln!(
        "the zone removed from the primary (restarted) gone from t1, t2, Knot after {took:?}"
    );
    if took.iter().any(Option::is_none) {
        f.panic_with_logs(&format!("the removed zone still served: {took:?}"));
    }

    for h in &mut f.hosts {
        h.stop();
    }
    eprintln!("fleet test ran {:?}", started.elapsed());
}
