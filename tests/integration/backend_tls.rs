//! Backends reached encrypted (`transport = "tls" | "quic"`, `tls_name`,
//! `ca` in `[[ls.backend]]`): an LS answers through a second LS's DoT and
//! DoQ listeners (real DoT/DoQ servers of ours, in front of a TS), through
//! dnsdist's DoT (`addTLSLocal`) and Unbound's (`tls-service-key`), over
//! UDP and TCP clients alike; its connections are reused; a certificate for
//! another name or from an unknown CA keeps the backend down (counted by
//! reason) while the clients get the other backend or the `on_timeout`
//! answer; a DoT backend killed and restarted is reconnected; a hedge
//! between a TLS and a UDP backend answers at the fast one's pace.
//!
//! dnsdist and Unbound tests are skipped without the program, unless
//! `DNSLB_REQUIRE_PEERS=1`.
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::kit::tls::{Pki, TABLE};
use crate::kit::{
    LsRoleRun, delay_all, free_ports, need, or_skip, path_str, poll_until_async, query,
    start_ls_role, start_ts, start_ts_table, tcp, ts_settings, udp_raw_wait,
};

/// The probe every LS here sends: a name the table (and Unbound's
/// local data) answers, so a probe proves the whole path.
const HEALTH: &str = "[ls.health]\ninterval_ms = 200\nquery = \"www.example.com A\"\n";

/// The answer [`TABLE`] gives.
const WWW: [u8; 4] = [192, 0, 2, 10];

/// `www.example.com A` over UDP to `addr`: the answer, if one came in 3 s.
async fn ask(addr: SocketAddr) -> Option<Message> {
    let q = query("www.example.com", RecordType::A, Some(1232));
    let raw = udp_raw_wait(addr, &q.to_vec().unwrap(), Duration::from_secs(3)).await?;
    Message::from_vec(&raw).ok()
}

fn is_www(m: &Message) -> bool {
    m.metadata.response_code == ResponseCode::NoError
        && crate::kit::a_addrs(m) == vec![std::net::Ipv4Addr::from(WWW)]
}

/// Polls until `addr` answers `www.example.com` right (15 s at most).
async fn answers_within(addr: SocketAddr, limit: Duration) -> bool {
    poll_until_async(limit, Duration::from_millis(50), async || {
        ask(addr).await.filter(is_www).map(|_| ())
    })
    .await
    .is_some()
}

/// An LS of ours with `[ls.tls]` and `[ls.quic]` (a leaf of `pki` for
/// `dns.test` and 127.0.0.1) in front of `ts`, its config `far.toml` in
/// `dir` on the ports `ports` (plain, dot, doq): restartable on them.
async fn far_ls(pki: &Pki, ts: SocketAddr, ports: [u16; 3]) -> LsRoleRun {
    let cert = pki.path().join("far.pem");
    if !cert.exists() {
        pki.leaf("far");
    }
    let (cert, key) = (path_str(&cert), pki.path().join("far.key"));
    let key = path_str(&key);
    let [plain, dot, doq] = ports;
    let text = format!(
        "[ls]\nlisten = [\"127.0.0.1:{plain}\"]\n\n\
         [ls.tls]\nlisten = [\"127.0.0.1:{dot}\"]\ncert = \"{cert}\"\nkey = \"{key}\"\n\n\
         [ls.quic]\nlisten = [\"127.0.0.1:{doq}\"]\ncert = \"{cert}\"\nkey = \"{key}\"\n\n\
         {HEALTH}\n[[ls.backend]]\nname = \"ts\"\naddr = \"{ts}\"\n"
    );
    let config = pki.path().join("far.toml");
    std::fs::write(&config, text).unwrap();
    start_ls_role(&config).await
}

/// The LS under test: `[ls]` keys `ls_keys`, then the backends `backends`
/// (their TOML tables), its config `front.toml` in `dir`.
async fn front_ls(dir: &Path, ls_keys: &str, backends: &str) -> LsRoleRun {
    let port = free_ports(1)[0];
    let text = format!("[ls]\nlisten = [\"127.0.0.1:{port}\"]\n{ls_keys}\n{HEALTH}\n{backends}");
    let config = dir.join("front.toml");
    std::fs::write(&config, text).unwrap();
    start_ls_role(&config).await
}

/// A `[[ls.backend]]` table.
fn backend(name: &str, addr: SocketAddr, transport: &str, extra: &str) -> String {
    format!(
        "[[ls.backend]]\nname = \"{name}\"\naddr = \"{addr}\"\ntransport = \"{transport}\"\n{extra}\n"
    )
}

/// `ca` (and `tls_name`, when given) as a backend's keys.
fn trust(ca: &Path, name: Option<&str>) -> String {
    let mut s = format!("ca = \"{}\"\n", path_str(ca));
    if let Some(n) = name {
        s.push_str(&format!("tls_name = \"{n}\"\n"));
    }
    s
}

/// A failure counter of the front LS for `backend` and `reason`.
fn failures(run: &LsRoleRun, backend: &str, reason: &str) -> u64 {
    let text = dnslb::metrics::render_prometheus(&run.balancer);
    text.lines()
        .filter(|l| l.starts_with("dnslb_backend_link_failures_total{"))
        .filter(|l| l.contains(&format!("backend=\"{backend}\"")))
        .filter(|l| l.contains(&format!("reason=\"{reason}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn backend_up(run: &LsRoleRun, name: &str) -> bool {
    let state = run.balancer.state();
    state.backends.iter().any(|b| b.name == name && b.is_up())
}

/// UDP and TCP clients get the table's answer through the far LS's DoT
/// (checked for `dns.test`) and DoQ (checked for its IP, the default), and
/// 200 UDP queries over DoT open no more than a few connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dot_and_doq_backends_answer_udp_and_tcp_clients_over_reused_connections() {
    let pki = or_skip!(Pki::new("backend_tls"));
    let ts = start_ts_table(&pki.dir, "t.txt", TABLE).await;
    let p = free_ports(3);
    let far = far_ls(&pki, ts.addr, [p[0], p[1], p[2]]).await;
    let (dot, doq) = (crate::kit::local(p[1]), crate::kit::local(p[2]));
    for (transport, addr, name) in [("tls", dot, Some("dns.test")), ("quic", doq, None)] {
        let b = backend("far", addr, transport, &trust(&pki.ca(), name));
        let front = front_ls(pki.path(), "", &b).await;
        assert!(
            backend_up(&front, "far"),
            "{transport}: the probes over it passed"
        );
        let m = ask(front.addr).await.expect("an answer over udp");
        assert!(is_www(&m), "{transport}, udp client: {m}");
        let q = query("www.example.com", RecordType::A, None);
        let m = tcp(front.addr, &q).await;
        assert!(is_www(&m), "{transport}, tcp client: {m}");
        if transport == "tls" {
            let stats = far.balancer.metrics().tls.get().unwrap();
            let before = stats.handshakes.load(Relaxed);
            let asks: Vec<_> = (0..200).map(|_| ask(front.addr)).collect();
            let answered = futures_util::future::join_all(asks).await;
            assert!(answered.iter().all(|m| m.as_ref().is_some_and(is_www)));
            let opened = stats.handshakes.load(Relaxed) - before;
            assert!(opened <= 4, "200 queries opened {opened} TLS connections");
        }
        front.stop().await;
    }
    far.stop().await;
    ts.stop().await;
}

/// A backend whose certificate is for another name, or from a CA the LS
/// does not trust, is down and counted by reason; the clients get the
/// other (UDP) backend's answer, or with it alone the `on_timeout` one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_certificate_for_another_name_or_from_an_unknown_ca_keeps_the_backend_down() {
    let pki = or_skip!(Pki::new("backend_tls"));
    let other = or_skip!(Pki::new("backend_tls"));
    let ts = start_ts_table(&pki.dir, "t.txt", TABLE).await;
    let p = free_ports(3);
    let far = far_ls(&pki, ts.addr, [p[0], p[1], p[2]]).await;
    let dot = crate::kit::local(p[1]);
    let cases = [
        ("name", trust(&pki.ca(), Some("wrong.test"))),
        ("unknown_ca", trust(&other.ca(), Some("dns.test"))),
    ];
    for (reason, keys) in cases {
        let mut b = backend("bad", dot, "tls", &keys);
        b.push_str(&backend("plain", ts.addr, "udp", ""));
        let front = front_ls(pki.path(), "", &b).await;
        for _ in 0..5 {
            let m = ask(front.addr).await.expect("an answer");
            assert!(is_www(&m), "{reason}: the udp backend answers: {m}");
        }
        assert!(!backend_up(&front, "bad"), "{reason}: the backend is down");
        assert!(backend_up(&front, "plain"));
        let all: Vec<(&str, u64)> = [
            "name",
            "unknown_ca",
            "expired",
            "certificate",
            "handshake",
            "connect",
        ]
        .into_iter()
        .map(|r| (r, failures(&front, "bad", r)))
        .collect();
        assert!(
            failures(&front, "bad", reason) >= 1,
            "{reason}: counted: {all:?}"
        );
        let others: u64 = ["name", "unknown_ca", "expired", "handshake", "connect"]
            .iter()
            .filter(|r| **r != reason)
            .map(|r| failures(&front, "bad", r))
            .sum();
        assert_eq!(others, 0, "{reason}: counted under its reason only");
        front.stop().await;
    }
    // Alone: the clients get the on_timeout answer, never a hang.
    let b = backend("bad", dot, "tls", &trust(&pki.ca(), Some("wrong.test")));
    let keys = "timeout_ms = 400\non_timeout = \"servfail\"\n";
    let front = front_ls(pki.path(), keys, &b).await;
    let m = ask(front.addr).await.expect("an answer");
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m}");
    front.stop().await;
    far.stop().await;
    ts.stop().await;
}

/// A DoT backend (and a DoQ one) stopped and started again on the same
/// ports: the LS answers again without a restart of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_and_restarted_encrypted_backend_is_reconnected() {
    let pki = or_skip!(Pki::new("backend_tls"));
    let ts = start_ts_table(&pki.dir, "t.txt", TABLE).await;
    let p = free_ports(3);
    let ports = [p[0], p[1], p[2]];
    let far = far_ls(&pki, ts.addr, ports).await;
    let mut b = backend(
        "dot",
        crate::kit::local(p[1]),
        "tls",
        &trust(&pki.ca(), None),
    );
    b.push_str(&backend(
        "doq",
        crate::kit::local(p[2]),
        "quic",
        &trust(&pki.ca(), None),
    ));
    let keys = "timeout_ms = 400\non_timeout = \"servfail\"\n";
    let front = front_ls(pki.path(), keys, &b).await;
    assert!(answers_within(front.addr, Duration::from_secs(5)).await);
    far.stop().await;
    let m = ask(front.addr).await.expect("an answer");
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "backends gone: {m}"
    );
    let far = far_ls(&pki, ts.addr, ports).await;
    let t = Instant::now();
    assert!(
        answers_within(front.addr, Duration::from_secs(15)).await,
        "not reconnected"
    );
    let back = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || (backend_up(&front, "dot") && backend_up(&front, "doq")).then_some(()),
    )
    .await;
    assert!(back.is_some(), "both backends up again");
    eprintln!("answered again {:?} after the restart", t.elapsed());
    front.stop().await;
    far.stop().await;
    ts.stop().await;
}

/// A hedge between a TLS backend (fast) and a UDP one (slowed by 300 ms):
/// every answer comes at the fast one's pace, whichever was asked first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hedge_between_a_tls_and_a_udp_backend_answers_at_the_fast_ones_pace() {
    let pki = or_skip!(Pki::new("backend_tls"));
    let ts = start_ts_table(&pki.dir, "t.txt", TABLE).await;
    let mut slow = ts_settings(vec![pki.dir.write("s.txt", TABLE)]);
    slow.fault = delay_all(300);
    let slow = start_ts(slow).await;
    let p = free_ports(3);
    let far = far_ls(&pki, ts.addr, [p[0], p[1], p[2]]).await;
    let mut b = backend(
        "dot",
        crate::kit::local(p[1]),
        "tls",
        &trust(&pki.ca(), None),
    );
    b.push_str(&backend("slow", slow.addr, "udp", ""));
    let keys =
        "strategy = \"hedge\"\nhedge_delay_ms = 20\nhedge_budget_pct = 100\ntimeout_ms = 1500\n";
    let front = front_ls(pki.path(), keys, &b).await;
    for i in 0..20 {
        let t = Instant::now();
        let m = ask(front.addr).await.expect("an answer");
        assert!(is_www(&m), "{m}");
        let took = t.elapsed();
        assert!(took < Duration::from_millis(250), "query {i} took {took:?}");
    }
    let state = front.balancer.state();
    let sent = |name: &str| {
        let b = state.backends.iter().find(|b| b.name == name).unwrap();
        b.stats.sent.load(Relaxed)
    };
    assert!(sent("dot") >= 20, "the tls backend answered every query");
    assert!(sent("slow") >= 1, "the udp backend was asked too");
    assert!(front.balancer.metrics().hedges.load(Relaxed) >= 1);
    front.stop().await;
    far.stop().await;
    slow.stop().await;
    ts.stop().await;
}

/// UDP queries for a route with an encrypted backend wait on the async
/// path holding places of `max_inflight`: past it they are SERVFAIL at
/// once and counted as shed (a flood makes no unbounded heap of tasks),
/// and the places come back as the answers do.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn udp_queries_for_a_tls_backend_are_held_to_max_inflight() {
    let pki = or_skip!(Pki::new("backend_tls"));
    let mut slow = ts_settings(vec![pki.dir.write("s.txt", TABLE)]);
    slow.fault = delay_all(400);
    let slow = start_ts(slow).await;
    let p = free_ports(3);
    let far = far_ls(&pki, slow.addr, [p[0], p[1], p[2]]).await;
    let b = backend(
        "dot",
        crate::kit::local(p[1]),
        "tls",
        &trust(&pki.ca(), None),
    );
    let keys = "workers = 1
max_inflight = 4
timeout_ms = 3000
";
    let front = front_ls(pki.path(), keys, &b).await;
    let asks: Vec<_> = (0..40).map(|_| ask(front.addr)).collect();
    let answers = futures_util::future::join_all(asks).await;
    let answered = answers.iter().flatten().filter(|m| is_www(m)).count();
    let servfail = answers
        .iter()
        .flatten()
        .filter(|m| m.metadata.response_code == ResponseCode::ServFail)
        .count();
    assert_eq!(answered + servfail, 40, "each answered or refused");
    assert!((1..=8).contains(&answered), "a few held places: {answered}");
    let shed = front.balancer.metrics().shed_inflight.load(Relaxed);
    assert!(shed as usize >= servfail, "counted: {shed} for {servfail}");
    // The places came back with the answers.
    let m = ask(front.addr).await.expect("an answer");
    assert!(is_www(&m), "{m}");
    front.stop().await;
    far.stop().await;
    slow.stop().await;
}

/// dnsdist 1.7's DoT (`addTLSLocal`) in front of a TS, and Unbound's
/// (`tls-service-key`, the name from local data): third-party DoT servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dnsdist_and_unbound_dot_servers_answer_as_backends() {
    let pki = or_skip!(Pki::new("backend_tls"));
    let [dnsdist, unbound] = or_skip!(need("backend_tls", ["dnsdist", "unbound"]));
    let (cert, key) = pki.leaf("peer");
    let ts = start_ts_table(&pki.dir, "t.txt", TABLE).await;
    let p = free_ports(5);
    let dd = crate::kit::dnsdist::Dnsdist::dot_in_front_of(
        &dnsdist,
        (p[0], p[1], p[2]),
        (&cert, &key),
        ts.addr,
    );
    let udir = crate::kit::ZoneDir::new();
    let conf = format!(
        "{}  interface: 127.0.0.1@{tls}\n  tls-port: {tls}\n  tls-service-key: \"{}\"\n  tls-service-pem: \"{}\"\n  local-zone: \"example.com.\" static\n  local-data: \"www.example.com. 60 IN A 192.0.2.10\"\n",
        crate::kit::unbound::server_clause(p[3], udir.path()),
        path_str(&key),
        path_str(&cert),
        tls = p[4],
    );
    let _ub = crate::kit::unbound::spawn_unbound(&unbound, udir.path(), &conf);
    for (name, port) in [("dnsdist", p[1]), ("unbound", p[4])] {
        let addr = crate::kit::local(port);
        let b = backend(name, addr, "tls", &trust(&pki.ca(), Some("dns.test")));
        // The peer may still be starting: the probes bring it up.
        let dir = crate::kit::ZoneDir::new();
        let front = front_ls(dir.path(), "", &b).await;
        assert!(
            answers_within(front.addr, Duration::from_secs(15)).await,
            "{name}: no answer over its DoT"
        );
        assert!(backend_up(&front, name));
        front.stop().await;
    }
    drop(dd);
    ts.stop().await;
}
