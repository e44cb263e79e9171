//! The LS's queries to its backends through the AF_XDP sockets (`[ls.xdp]
//! upstream = "xdp"`), over a veth pair between two network namespaces the
//! test makes: the LS serves clients through XDP on its end of the veth,
//! and its backends for two zones sit in the other namespace, across the
//! veth (one over IPv4, one over IPv6), so the kernel's route and neighbour
//! tables put them behind the XDP interface; the queries the LS forwards to
//! them leave in frames its workers write, and their answers come back to
//! the workers (`dnslb_xdp_upstream_total{via="xsk"}`). A backend across
//! `lo` (127.0.0.1) is reached through the sockets, counted so. A stop
//! (SIGTERM) with queries to a slow backend in flight through the XSK
//! answers them all before the LS exits. A TCP client's query goes
//! through the sockets, counted so. The interface lost and made again
//! while answers are on their way to its workers leaves none of them
//! counted in flight for good (a stop then waits for nothing).
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::kit::http::sample_u64;
use crate::kit::netns::{ask_raw_in, in_netns};
use crate::kit::{Netns, netns_or_skip, poll_until};
use rustix::process::Signal;

const LS: &str = "198.18.0.1";
const FAR: &str = "198.18.0.2";
const LS6: &str = "2001:2::1";
const FAR6: &str = "2001:2::2";
const METRICS: &str = "127.0.0.1:9131";

/// The LS's namespace and the backends' (`letter` marks the test's names),
/// joined by a veth pair with LS/LS6 on the LS's end (its name returned)
/// and FAR/FAR6 on the other.
fn pair(ip: &std::path::Path, letter: &str) -> (Netns, Netns, String) {
    let prefix = Netns::unique_prefix(letter);
    let lsns = Netns::create(ip, &prefix, "ls");
    let other = Netns::create(ip, &prefix, "far");
    let id = rand::random::<u16>();
    let iface = format!("x{letter}{id:04x}s");
    link(&lsns, &other, &iface);
    (lsns, other, iface)
}

/// The far end of the LS's end `iface` of the veth.
fn peer_of(iface: &str) -> String {
    format!("{}c", iface.trim_end_matches('s'))
}

/// The veth pair with LS/LS6 on `iface` (in `lsns`) and FAR/FAR6 on its
/// peer (in `other`).
fn link(lsns: &Netns, other: &Netns, iface: &str) {
    let peer = peer_of(iface);
    lsns.veth(iface, other, &peer);
    lsns.ip(&["addr", "add", &format!("{LS}/24"), "dev", iface]);
    lsns.ip(&["addr", "add", &format!("{LS6}/64"), "dev", iface, "nodad"]);
    other.ip(&["addr", "add", &format!("{FAR}/24"), "dev", &peer]);
    other.ip(&["addr", "add", &format!("{FAR6}/64"), "dev", &peer, "nodad"]);
}

/// A query for `name` A (or AAAA), ID `id`.
fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

/// A zone `origin` whose every name below it has the A record `a`.
fn zone(origin: &str, a: &str) -> String {
    format!(
        "$ORIGIN {origin}.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n\
         @ NS ns\nns A 192.0.2.53\n* A {a}\n"
    )
}

/// The LS (in the first namespace, XDP on its end of the veth) with three
/// pools: `x.test` asked of `far` (IPv4, across the veth), `y.test` of
/// `far6` (IPv6, across the veth), `z.test` of `near` (127.0.0.1).
fn config(iface: &str) -> String {
    format!(
        "[ls]\nlisten = [\"{LS}:53\"]\nworkers = 1\nmetrics = \"{METRICS}\"\n\
         allow = [\"127.0.0.0/8\", \"198.18.0.0/15\"]\n\
         [ls.health]\ninterval_ms = 200\n\n\
         [ls.xdp]\ninterfaces = [\"{iface}\"]\nupstream = \"xdp\"\n\n\
         [[ls.backend]]\nname = \"far\"\naddr = \"{FAR}:5301\"\n\n\
         [[ls.backend]]\nname = \"far6\"\naddr = \"[{FAR6}]:5301\"\n\n\
         [[ls.backend]]\nname = \"near\"\naddr = \"127.0.0.1:5302\"\n\n\
         [[ls.pool]]\nname = \"x\"\nbackends = [\"far\"]\nzones = [\"x.test\"]\n\n\
         [[ls.pool]]\nname = \"y\"\nbackends = [\"far6\"]\nzones = [\"y.test\"]\n\n\
         [[ls.pool]]\nname = \"z\"\nbackends = [\"near\"]\nzones = [\"z.test\"]\n\n\
         [[ts]]\nname = \"far\"\nlisten = \"{FAR}:5301\"\nzones = [\"x.zone\"]\n\n\
         [[ts]]\nname = \"far6\"\nlisten = \"[{FAR6}]:5301\"\nzones = [\"y.zone\"]\n\n\
         [[ts]]\nname = \"near\"\nlisten = \"127.0.0.1:5302\"\nzones = [\"z.zone\"]\n\n\
         [[ls.backend]]\nname = \"slow\"\naddr = \"{FAR}:5303\"\n\n\
         [[ls.pool]]\nname = \"s\"\nbackends = [\"slow\"]\nzones = [\"s.test\"]\n\n\
         [[ts]]\nname = \"slow\"\nlisten = \"{FAR}:5303\"\nzones = [\"s.zone\"]\nworkers = 1\n\
         fault = {{ delay_ms = {SLOW_MS}, delay_ratio = 1.0, drop_ratio = 0.0 }}\n"
    )
}

/// How long the slow backend (`s.test`) takes to answer.
const SLOW_MS: u64 = 700;

/// Asks a new name (never cached) under `zone` A of the LS from the
/// client namespace until it is answered with `a` (the backends are up
/// within a few health rounds).
fn answered(client: &Netns, zone: &str, a: &str) -> bool {
    let to: SocketAddr = format!("{LS}:53").parse().unwrap();
    let want: std::net::Ipv4Addr = a.parse().unwrap();
    poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        let name = format!("q{}.{zone}.", rand::random::<u32>());
        let raw = query(rand::random(), &name, RecordType::A);
        let m =
            Message::from_vec(&ask_raw_in(&client.name, to, &raw, Duration::from_secs(1))?).ok()?;
        (m.response_code == ResponseCode::NoError
            && m.answers.iter().any(|r| r.data == RData::A(want.into())))
        .then_some(())
    })
    .is_some()
}

#[test]
fn forwarded_queries_to_backends_behind_the_xdp_interface_leave_through_the_xsk() {
    const TEST: &str =
        "forwarded_queries_to_backends_behind_the_xdp_interface_leave_through_the_xsk";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let (lsns, other, iface) = pair(&ip, "u");

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("x.zone"), zone("x.test", "192.0.2.1")).unwrap();
    std::fs::write(d.join("y.zone"), zone("y.test", "192.0.2.2")).unwrap();
    std::fs::write(d.join("z.zone"), zone("z.test", "192.0.2.3")).unwrap();
    std::fs::write(d.join("s.zone"), zone("s.test", "192.0.2.4")).unwrap();
    std::fs::write(d.join("config.toml"), config(&iface)).unwrap();
    let ts_args = |name: &'static str| ["ts", "-c", "config.toml", "--name", name];
    let far = other.dnslb("far", &ts_args("far"), d);
    let far6 = other.dnslb("far6", &ts_args("far6"), d);
    let near = lsns.dnslb("near", &ts_args("near"), d);
    let ls = lsns.dnslb("ls", &["ls", "-c", "config.toml"], d);
    let started = poll_until(Duration::from_secs(30), Duration::from_millis(50), || {
        let log = ls.stderr_now();
        assert!(
            !log.contains("serving it through sockets"),
            "XDP did not start: {log}"
        );
        log.contains("xdp: serving UDP through AF_XDP")
            .then_some(())
    });
    assert!(started.is_some(), "XDP never started: {}", ls.stderr_now());

    // The backends across the veth: answered right, and once the keeper
    // has read their routes (within a second), through the XSK.
    let metrics = || lsns.curl(&format!("http://{METRICS}/metrics"));
    let xsk = |m: &str| sample_u64(m, "dnslb_xdp_upstream_total{via=\"xsk\"}");
    let sockets = |m: &str| sample_u64(m, "dnslb_xdp_upstream_total{via=\"sockets\"}");
    let through_xsk = poll_until(Duration::from_secs(20), Duration::from_millis(200), || {
        assert!(
            answered(&other, "x.test", "192.0.2.1"),
            "x.test not answered: {}\n{}",
            metrics(),
            ls.stderr_now()
        );
        (xsk(&metrics()) >= 1).then_some(())
    });
    assert!(
        through_xsk.is_some(),
        "no query went through the XSK: {}\n{}",
        metrics(),
        ls.stderr_now()
    );
    let m = metrics();
    let before = xsk(&m);
    for _ in 0..20 {
        assert!(answered(&other, "x.test", "192.0.2.1"));
    }
    let six = poll_until(Duration::from_secs(20), Duration::from_millis(200), || {
        assert!(
            answered(&other, "y.test", "192.0.2.2"),
            "y.test (IPv6 backend) not answered: {}",
            ls.stderr_now()
        );
        (xsk(&metrics()) >= before + 21).then_some(())
    });
    assert!(
        six.is_some(),
        "the IPv4 and IPv6 backends' queries did not all go through the XSK: {}",
        metrics()
    );
    let log = ls.stderr_now();
    assert!(
        log.contains("the backend's queries go through the AF_XDP sockets"),
        "{log}"
    );
    // The answers came back through the workers, and none was taken for a
    // forgery.
    let m = metrics();
    assert!(
        sample_u64(&m, "dnslb_xdp_upstream_answers_total") >= 21,
        "the answers did not come back through the workers: {m}"
    );
    for reason in ["wrong_source", "wrong_id", "wrong_question"] {
        let line = format!("dnslb_dropped_responses_total{{reason=\"{reason}\"}}");
        assert_eq!(sample_u64(&m, &line), 0, "{reason}: {m}");
    }

    // The backend across lo: through the sockets, counted so.
    let socks = sockets(&metrics());
    for _ in 0..5 {
        assert!(
            answered(&other, "z.test", "192.0.2.3"),
            "{}",
            ls.stderr_now()
        );
    }
    let m = metrics();
    assert!(sockets(&m) >= socks + 5, "{m}");

    // A TCP client's query is asked from its connection thread's own pool,
    // through the sockets even to a backend behind the XDP interface:
    // counted so, not lost from the count.
    let (socks, through) = (sockets(&m), xsk(&m));
    let to: SocketAddr = format!("{LS}:53").parse().unwrap();
    let raw = query(
        7,
        &format!("tcp{}.x.test.", rand::random::<u32>()),
        RecordType::A,
    );
    let answer = in_netns(&other.name, move || ask_tcp(to, &raw));
    let m = Message::from_vec(&answer).unwrap();
    assert_eq!(m.response_code, ResponseCode::NoError);
    let m = metrics();
    assert_eq!(sockets(&m), socks + 1, "{m}");
    assert_eq!(xsk(&m), through, "{m}");
    drop((ls, near, far, far6));
}

/// `raw` asked of `to` over TCP: the answer's bytes.
fn ask_tcp(to: SocketAddr, raw: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let len = u16::try_from(raw.len()).unwrap().to_be_bytes();
    s.write_all(&[&len[..], raw].concat()).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut answer).unwrap();
    answer
}

#[test]
fn a_stop_answers_the_queries_in_flight_through_the_xsk_before_the_ls_exits() {
    stop_with_slow_queries_in_flight(
        "a_stop_answers_the_queries_in_flight_through_the_xsk_before_the_ls_exits",
        "v",
        true,
    );
}

/// Just started, the LS has opened few of its lane's ports: the slow
/// queries open the others, each one's first query leaving through its
/// socket. The stop still answers every one with its backend's answer
/// (before the fix, the upstream sockets closed as soon as the server
/// layer had drained, which does not wait for the XDP workers' queries:
/// each ran to `timeout_ms` and got a made-up NXDOMAIN).
#[test]
fn a_stop_soon_after_the_start_answers_the_queries_in_flight_with_the_backends_answers() {
    stop_with_slow_queries_in_flight(
        "a_stop_soon_after_the_start_answers_the_queries_in_flight_with_the_backends_answers",
        "w",
        false,
    );
}

/// An LS over XDP with `upstream = "xdp"` asked 20 names of its slow
/// backend, then SIGTERMed well before their answers are due: every one is
/// answered NOERROR and the LS exits cleanly. With `warm`, 50 queries go
/// first (most of the lane's ports opened and served by the program, so
/// the slow ones leave through the XSK); without, one slow query only.
fn stop_with_slow_queries_in_flight(test: &str, letter: &str, warm: bool) {
    let Some(ip) = netns_or_skip(test) else {
        return;
    };
    let (lsns, other, iface) = pair(&ip, letter);

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (z, a) in [("x", "192.0.2.1"), ("y", "192.0.2.2"), ("z", "192.0.2.3")] {
        std::fs::write(d.join(format!("{z}.zone")), zone(&format!("{z}.test"), a)).unwrap();
    }
    std::fs::write(d.join("s.zone"), zone("s.test", "192.0.2.4")).unwrap();
    std::fs::write(d.join("config.toml"), config(&iface)).unwrap();
    let ts_args = |name: &'static str| ["ts", "-c", "config.toml", "--name", name];
    let far = other.dnslb("far", &ts_args("far"), d);
    let slow = other.dnslb("slow", &ts_args("slow"), d);
    let mut ls = lsns.dnslb("ls", &["ls", "-c", "config.toml"], d);
    let started = poll_until(Duration::from_secs(30), Duration::from_millis(50), || {
        ls.stderr_now()
            .contains("xdp: serving UDP through AF_XDP")
            .then_some(())
    });
    assert!(started.is_some(), "XDP never started: {}", ls.stderr_now());
    let metrics = || lsns.curl(&format!("http://{METRICS}/metrics"));
    let xsk = |m: &str| sample_u64(m, "dnslb_xdp_upstream_total{via=\"xsk\"}");
    // Both backends answer, and the path to them is through the XSK.
    if warm {
        let ready = poll_until(Duration::from_secs(20), Duration::from_millis(200), || {
            assert!(
                answered(&other, "x.test", "192.0.2.1"),
                "{}",
                ls.stderr_now()
            );
            (xsk(&metrics()) >= 1).then_some(())
        });
        assert!(ready.is_some(), "no query through the XSK: {}", metrics());
    }
    assert!(
        answered(&other, "s.test", "192.0.2.4"),
        "{}",
        ls.stderr_now()
    );
    // A new port's first query goes through its socket until the program
    // serves it: most of the ports opened first (or, not `warm`, the one
    // query above only).
    for _ in 0..if warm { 50 } else { 0 } {
        assert!(
            answered(&other, "x.test", "192.0.2.1"),
            "{}",
            ls.stderr_now()
        );
    }
    let sockets = |m: &str| sample_u64(m, "dnslb_xdp_upstream_total{via=\"sockets\"}");
    let m = metrics();
    let (before, sent_before) = (xsk(&m), xsk(&m) + sockets(&m));

    // The slow backend's queries in flight (sent through the XSK), then
    // SIGTERM well before their answers are due.
    const N: u16 = 20;
    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let to: SocketAddr = format!("{LS}:53").parse().unwrap();
    let client = other.name.clone();
    let asker = std::thread::spawn(move || {
        in_netns(&client, move || {
            let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
            for i in 0..N {
                let name = format!("stop{i}-{}.s.test.", rand::random::<u32>());
                sock.send_to(&query(i, &name, RecordType::A), to).unwrap();
            }
            sent_tx.send(()).unwrap();
            let mut codes = Vec::new();
            let mut buf = vec![0u8; 65_535];
            while codes.len() < usize::from(N) {
                let Ok((n, _)) = sock.recv_from(&mut buf) else {
                    break;
                };
                if let Ok(m) = Message::from_vec(&buf[..n]) {
                    codes.push(m.response_code);
                }
            }
            codes
        })
    });
    sent_rx.recv().unwrap();
    let sent = poll_until(Duration::from_secs(5), Duration::from_millis(10), || {
        let m = metrics();
        (xsk(&m) + sockets(&m) >= sent_before + u64::from(N)).then_some(m)
    });
    let m = sent.unwrap_or_else(|| panic!("the slow queries were not sent: {}", metrics()));
    if warm {
        assert!(xsk(&m) > before, "no slow query went through the XSK: {m}");
    }
    ls.signal(Signal::TERM);
    let status = ls.wait_exit(Duration::from_secs(15));
    let codes = asker.join().unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "{:?}: {}",
        status,
        ls.stderr_now()
    );
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == ResponseCode::NoError)
            .count(),
        usize::from(N),
        "answers {codes:?}: {}",
        ls.stderr_now()
    );
    drop((ls, far, slow));
}

/// The interface deleted while the answers of a slow backend (on
/// 127.0.0.1, so that it outlives the veth) stream back to the XDP worker,
/// three times over: every answer's place in flight is given back, sent or
/// not (a place kept for good would also eat `max_inflight`), so a stop
/// then finds nothing in flight and waits for nothing.
#[test]
fn an_interface_lost_with_answers_on_their_way_leaves_nothing_in_flight() {
    const TEST: &str = "an_interface_lost_with_answers_on_their_way_leaves_nothing_in_flight";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let (lsns, other, iface) = pair(&ip, "l");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("s.zone"), zone("s.test", "192.0.2.4")).unwrap();
    let config = format!(
        "[ls]\nlisten = [\"{LS}:53\"]\nworkers = 1\nmetrics = \"{METRICS}\"\n\
         allow = [\"127.0.0.0/8\", \"198.18.0.0/15\"]\n\n\
         [ls.xdp]\ninterfaces = [\"{iface}\"]\nupstream = \"xdp\"\n\n\
         [[ls.backend]]\nname = \"slow\"\naddr = \"127.0.0.1:5304\"\n\n\
         [[ls.pool]]\nname = \"s\"\nbackends = [\"slow\"]\nzones = [\"s.test\"]\n\n\
         [[ts]]\nname = \"slow\"\nlisten = \"127.0.0.1:5304\"\nzones = [\"s.zone\"]\nworkers = 1\n\
         fault = {{ delay_ms = {SLOW_MS}, delay_ratio = 1.0, drop_ratio = 0.0 }}\n"
    );
    std::fs::write(d.join("config.toml"), config).unwrap();
    let slow = lsns.dnslb("slow", &["ts", "-c", "config.toml", "--name", "slow"], d);
    let mut ls = lsns.dnslb("ls", &["ls", "-c", "config.toml"], d);
    let logged = |ls: &crate::kit::Proc, what: &str, n: usize| {
        poll_until(Duration::from_secs(30), Duration::from_millis(50), || {
            (ls.stderr_now().matches(what).count() >= n).then_some(())
        })
        .is_some()
    };
    assert!(
        logged(&ls, "xdp: serving UDP through AF_XDP", 1),
        "XDP never started: {}",
        ls.stderr_now()
    );
    assert!(
        answered(&other, "s.test", "192.0.2.4"),
        "{}",
        ls.stderr_now()
    );
    let metrics = || lsns.curl(&format!("http://{METRICS}/metrics"));
    let noerror = |m: &str| sample_u64(m, "dnslb_answers_total{rcode=\"NOERROR\"}");
    let to: SocketAddr = format!("{LS}:53").parse().unwrap();
    for round in 1..=3 {
        // A steady stream; once its slow answers come back steadily, the
        // interface goes (the stream's sends then fail).
        let before = noerror(&metrics());
        let client = other.name.clone();
        let asker = std::thread::spawn(move || {
            in_netns(&client, move || {
                let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
                for i in 0..3000u16 {
                    let name = format!("l{i}-{}.s.test.", rand::random::<u32>());
                    let _ = sock.send_to(&query(i, &name, RecordType::A), to);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        });
        let steady = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
            (noerror(&metrics()) >= before + 100).then_some(())
        });
        assert!(steady.is_some(), "no slow answers: {}", metrics());
        other.ip(&["link", "del", &peer_of(&iface)]);
        assert!(
            logged(&ls, "xdp: the interface is gone", round),
            "{}",
            ls.stderr_now()
        );
        asker.join().unwrap();
        link(&lsns, &other, &iface);
        assert!(
            logged(&ls, "xdp: the interface is back", round),
            "{}",
            ls.stderr_now()
        );
    }
    // Served again; the rounds' queries all ended (each within 700 ms of
    // its arrival, before this one's answer).
    assert!(
        answered(&other, "s.test", "192.0.2.4"),
        "{}",
        ls.stderr_now()
    );
    ls.signal(Signal::TERM);
    let status = ls.wait_exit(Duration::from_secs(15));
    let log = ls.stderr_now();
    assert!(status.is_some_and(|s| s.success()), "{status:?}: {log}");
    assert!(!log.contains("abandoned"), "{log}");
    drop((ls, slow));
}
