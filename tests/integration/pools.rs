//! Pools and routes (docs/CONFIG.md (the LS), `[[ls.pool]]`), end to end over real sockets:
//!
//! * a query under a pool's zone is asked of that pool's backends only (the
//!   fake backends' own counters, and the LS's per-backend `sent`, say so),
//!   the longest zone suffix wins, and a name under no zone goes to every
//!   backend, over UDP (the fast path) and TCP (the async driver); the pool
//!   counts its queries and answers on `/metrics`;
//! * a partitioned deployment split by zone (two TS, one zone each, a pool
//!   each) with one TS stopped answers the other pool's names, a missing one
//!   too, with the live TS's own answers at once, not the `on_timeout`
//!   answer (without pools the missing name gets the made-up one);
//! * a reload (the service's SIGHUP) that gives a pool another backend
//!   takes effect at once;
//! * `dnslb check` reports a pool naming an unknown backend and a zone in two
//!   pools, at their lines.
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::net::TcpStream;

use dnslb::config::{Layout, PoolConfig, parse_name};
use dnslb::metrics::StatusExtra;
use dnslb::roles::Control;

use crate::kit::{
    Fake, TestLs, TestMetrics, ZoneDir, a_addrs, ede, empty_answer, http_get, ls_config,
    parse_exposition, poll_until_async, query, read_frame, run_dnslb, start_ls, start_ls_role,
    start_ts_table, tcp_send, udp_exchange, value, wait_settled,
};

/// How long a count or a reload may take to show.
const LIMIT: Duration = Duration::from_secs(10);
/// Queries per name.
const N: u64 = 4;

#[derive(Clone, Copy, Debug)]
enum Via {
    Udp,
    Tcp,
}

/// `name` A (with EDNS) over `via`, decoded (waiting up to [`LIMIT`]).
async fn ask(addr: SocketAddr, via: Via, name: &str) -> Message {
    let q = query(name, RecordType::A, Some(1232));
    match via {
        Via::Udp => udp_exchange(addr, &q, LIMIT)
            .await
            .unwrap_or_else(|| panic!("{name}: no answer over UDP")),
        Via::Tcp => {
            let mut s = TcpStream::connect(addr).await.unwrap();
            tcp_send(&mut s, &q.to_vec().unwrap()).await;
            let raw = tokio::time::timeout(LIMIT, read_frame(&mut s)).await;
            let raw = raw.ok().flatten();
            Message::from_vec(&raw.unwrap_or_else(|| panic!("{name}: no answer over TCP"))).unwrap()
        }
    }
}

/// A pool `name` of `backends` serving `zones`.
fn pool(name: &str, backends: &[&str], zones: &[&str]) -> PoolConfig {
    let zones = zones.iter().map(|z| parse_name(z).unwrap()).collect();
    PoolConfig::new(name, backends, zones)
}

/// Three fakes `a`, `b`, `c` that hold no name (every answer NODATA, AA=1),
/// behind a partitioned LS: each query is asked of every backend of its
/// route, once each, and the NODATA passed on once all have said it.
/// `org` = a for `example.org`, `sub` = b for `sub.example.org`, `net` = b
/// and c for `example.net`.
async fn three_pools() -> ([Fake; 3], TestLs) {
    let fakes = [
        Fake::answering(empty_answer).await,
        Fake::answering(empty_answer).await,
        Fake::answering(empty_answer).await,
    ];
    let mut cfg = ls_config(&[
        ("a", fakes[0].addr),
        ("b", fakes[1].addr),
        ("c", fakes[2].addr),
    ]);
    cfg.layout = Layout::Partitioned;
    cfg.pool = vec![
        pool("org", &["a"], &["example.org"]),
        pool("sub", &["b"], &["sub.example.org"]),
        pool("net", &["b", "c"], &["Example.NET."]),
    ];
    let ls = start_ls(cfg).await;
    (fakes, ls)
}

/// Client queries each fake received, and upstream queries the LS sent each backend.
fn counts(fakes: &[Fake; 3], ls: &TestLs) -> [(u64, u64); 3] {
    let state = ls.balancer.state();
    std::array::from_fn(|i| {
        (
            fakes[i].queries.load(Relaxed),
            state.backends[i].stats.sent.load(Relaxed),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_zone_is_asked_of_its_pool_s_backends_only() {
    for via in [Via::Udp, Via::Tcp] {
        let (fakes, ls) = three_pools().await;
        for (name, asked) in [
            ("www.example.org", [true, false, false]),
            // The longest suffix wins over example.org.
            ("www.sub.example.org", [false, true, false]),
            ("WWW.EXAMPLE.NET", [false, true, true]),
            // Under no zone (label-aligned: not under example.org): every backend.
            ("badexample.org", [true, true, true]),
            ("www.example.com", [true, true, true]),
        ] {
            let before = counts(&fakes, &ls);
            for _ in 0..N {
                let m = ask(ls.addr, via, name).await;
                assert_eq!(m.response_code, ResponseCode::NoError, "{via:?} {name}");
                assert!(
                    m.authoritative && ede(&m).is_none(),
                    "{via:?} {name}: {m:?}"
                );
            }
            let want: [u64; 3] = std::array::from_fn(|i| before[i].0 + N * u64::from(asked[i]));
            let arrived = poll_until_async(LIMIT, Duration::from_millis(5), async || {
                let now = counts(&fakes, &ls);
                (0..3).all(|i| now[i].0 == want[i]).then_some(())
            })
            .await;
            for b in &ls.balancer.state().backends {
                wait_settled(b).await;
            }
            let after = counts(&fakes, &ls);
            assert!(
                arrived.is_some(),
                "{via:?} {name}: {after:?}, wanted {want:?}"
            );
            for i in 0..3 {
                let sent = after[i].1 - before[i].1;
                assert_eq!(
                    sent,
                    N * u64::from(asked[i]),
                    "{via:?} {name}: sent to backend {i}"
                );
                assert_eq!(
                    after[i].0, want[i],
                    "{via:?} {name}: received by backend {i}"
                );
            }
        }
        // The pools' own counters: 4 queries each, every one NOERROR.
        let metrics = TestMetrics::start(ls.balancer.clone(), StatusExtra::default()).await;
        let e = parse_exposition(&http_get(metrics.addr, "/metrics").await.body);
        for p in ["org", "sub", "net"] {
            let queries = value(&e, "dnslb_pool_queries_total", &[("pool", p)]);
            let noerror = value(
                &e,
                "dnslb_pool_answers_total",
                &[("pool", p), ("rcode", "NOERROR")],
            );
            assert_eq!((queries, noerror), (N as f64, N as f64), "{via:?} pool {p}");
        }
        let page = http_get(metrics.addr, "/").await.body;
        assert!(page.contains("<tr data-pool=\"net\">") && page.contains("example.net"));
        metrics.stop().await;
        ls.stop().await;
    }
}

/// Holds `www.example.org` (the `org` partition).
const ORG: &str = "www.example.org 10.1.0.1 A\n";
/// Holds `www.example.com` (the `com` partition).
const COM: &str = "www.example.com 10.2.0.1 A\n";
/// The deadline: far above an answer's time, so an answer that waited
/// for it (or for a hedge to the stopped TS) shows.
const DEADLINE_MS: u64 = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_down_leaves_the_other_pool_s_answers_real_and_prompt() {
    let _load = crate::kit::timed().await;
    let dir = ZoneDir::new();
    let org = start_ts_table(&dir, "org.txt", ORG).await;
    let com = start_ts_table(&dir, "com.txt", COM).await;
    let backends = [("org", org.addr), ("com", com.addr)];
    let mut plain = ls_config(&backends);
    plain.timeout_ms = DEADLINE_MS;
    let mut pooled = plain.clone();
    pooled.pool = vec![
        pool("org", &["org"], &["example.org"]),
        pool("com", &["com"], &["example.com"]),
    ];
    let (plain, pooled) = (start_ls(plain).await, start_ls(pooled).await);
    org.stop().await;

    for via in [Via::Udp, Via::Tcp] {
        for (name, rcode, addrs) in [
            (
                "www.example.com",
                ResponseCode::NoError,
                vec![Ipv4Addr::new(10, 2, 0, 1)],
            ),
            // Only com's TS was asked: its NXDOMAIN is the answer.
            ("nope.example.com", ResponseCode::NXDomain, vec![]),
        ] {
            let started = Instant::now();
            let m = ask(pooled.addr, via, name).await;
            let took = started.elapsed();
            assert_eq!(m.response_code, rcode, "{via:?} {name}");
            assert_eq!(a_addrs(&m), addrs, "{via:?} {name}");
            assert!(
                m.authoritative,
                "{via:?} {name}: the TS's own answer (AA=1)"
            );
            assert_eq!(ede(&m), None, "{via:?} {name}: not made up");
            assert!(
                took < Duration::from_millis(DEADLINE_MS / 2),
                "{via:?} {name}: {took:?}, near the {DEADLINE_MS} ms deadline"
            );
        }
        // Without pools, com's NXDOMAIN proves nothing while org is silent.
        let m = ask(plain.addr, via, "nope.example.com").await;
        let (code, _) = ede(&m).expect("the on_timeout answer, with its EDE");
        assert_eq!(
            (m.response_code, code),
            (ResponseCode::NXDomain, 22),
            "{via:?}"
        );
        assert!(!m.authoritative, "{via:?}: made up");
        // The stopped partition's own names get the on_timeout answer,
        // naming only its backend.
        let m = ask(pooled.addr, via, "www.example.org").await;
        let (code, text) = ede(&m).expect("the on_timeout answer, with its EDE");
        assert_eq!(code, 22, "{via:?}");
        assert!(
            text.contains("org") && !text.contains("com"),
            "{via:?}: {text}"
        );
    }
    pooled.stop().await;
    plain.stop().await;
    com.stop().await;
}

/// A config file at `path`: an LS on 127.0.0.1:0 in front of `one` and
/// `two`, with one pool `r` of `member` serving `r.test`.
fn write_config(path: &Path, backends: &[(&str, SocketAddr)], member: &str) {
    let mut text = "[ls]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n".to_owned();
    for (name, addr) in backends {
        text += &format!("\n[[ls.backend]]\nname = \"{name}\"\naddr = \"{addr}\"\n");
    }
    text +=
        &format!("\n[[ls.pool]]\nname = \"r\"\nbackends = [\"{member}\"]\nzones = [\"r.test\"]\n");
    std::fs::write(path, text).unwrap();
}

/// Whether `n` answers in a row for `www.r.test` are all `want`.
async fn answers_all(addr: SocketAddr, want: Ipv4Addr, n: usize) -> bool {
    for _ in 0..n {
        if a_addrs(&ask(addr, Via::Udp, "www.r.test").await) != [want] {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_moves_a_zone_to_another_backend_takes_effect() {
    let dir = ZoneDir::new();
    let one = start_ts_table(&dir, "1.txt", "www.r.test 192.0.2.1 A\n").await;
    let two = start_ts_table(&dir, "2.txt", "www.r.test 192.0.2.2 A\n").await;
    let backends = [("one", one.addr), ("two", two.addr)];
    let path = dir.path().join("config.toml");
    write_config(&path, &backends, "one");
    let ls = start_ls_role(&path).await;
    let (addr, balancer) = (ls.addr, &ls.balancer);
    assert!(answers_all(addr, Ipv4Addr::new(192, 0, 2, 1), 8).await);

    write_config(&path, &backends, "two");
    ls.controls.send(Control::Reload).unwrap();
    let moved = poll_until_async(LIMIT, Duration::from_millis(5), async || {
        (balancer.metrics().reloads_applied.load(Relaxed) == 1).then_some(())
    })
    .await;
    assert!(moved.is_some(), "the reload was not applied");
    let state = balancer.state();
    let members: Vec<&str> = state.pools[0]
        .backends
        .iter()
        .map(|b| b.name.as_str())
        .collect();
    assert_eq!(members, ["two"]);
    assert!(answers_all(addr, Ipv4Addr::new(192, 0, 2, 2), 8).await);

    ls.controls.send(Control::Shutdown).unwrap();
    let end = tokio::time::timeout(Duration::from_secs(15), ls.task).await;
    end.expect("the LS ended").unwrap().expect("a clean stop");
    one.stop().await;
    two.stop().await;
}

#[test]
fn dnslb_check_reports_an_unknown_backend_and_a_zone_in_two_pools_at_their_lines() {
    let dir = ZoneDir::new();
    let text = "[ls]\n\n[[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:5301\"\n\n\
                [[ls.pool]]\nname = \"a\"\nbackends = [\"ts1\", \"ts7\"]\nzones = [\"example.org\"]\n\n\
                [[ls.pool]]\nname = \"b\"\nbackends = [\"ts1\"]\nzones = [\"EXAMPLE.ORG.\"]\n";
    let path = dir.write("config.toml", text);
    let out = run_dnslb(
        &["check", "-c", path.to_str().unwrap()],
        dir.path(),
        None,
        Duration::from_secs(30),
    );
    assert!(!out.status.success(), "{out:#?}");
    let file = path.display();
    assert_eq!(
        out.stderr_lines(),
        [
            format!(
                "{file}:9: ls.pool.backends: pool \"a\" names backend \"ts7\", \
                 which is not an [[ls.backend]] (backends: ts1)"
            ),
            format!(
                "{file}:15: ls.pool.zones: zone \"example.org\" is already served by pool \"a\""
            ),
        ]
    );
}
