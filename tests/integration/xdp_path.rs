//! The LS through AF_XDP (`[ls.xdp]`), over a veth pair between two network
//! namespaces the test makes (198.18.0.0/15 and 2001:2::/48, the
//! benchmarking ranges): clients outside `allow` are dropped in the XDP
//! program and counted as the ACL's refusals, the others answered through
//! the AF_XDP socket, IPv6 included, a forwarded answer coming back to the
//! worker. A dynamic block whose action is drop holds in the program for as
//! long as the flood goes on (the program's drops renew it and are counted
//! as its own), while another client is answered. Cache hits are written
//! by the XDP worker and counted by `dnslb top` at once. The TS's XDP path is
//! `xdp.rs`'s.
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::kit::http::sample_u64;
use crate::kit::netns::ask_raw_in;
use crate::kit::{Netns, Proc, in_netns, netns_or_skip, poll_until};

const SERVER: &str = "198.18.0.1";
const CLIENT: &str = "198.18.0.2";
const SERVER6: &str = "2001:2::1";
const CLIENT6: &str = "2001:2::2";

/// Two namespaces joined by a veth pair, addressed; the server's interface name.
struct Pair {
    server: Netns,
    client: Netns,
    iface: String,
}

impl Pair {
    fn make(ip: &Path, tag: &str) -> Pair {
        let prefix = Netns::unique_prefix("x");
        let server = Netns::create(ip, &prefix, &format!("{tag}s"));
        let client = Netns::create(ip, &prefix, &format!("{tag}c"));
        let id = rand::random::<u16>();
        let iface = format!("xv{id:04x}s");
        server.veth(&iface, &client, &format!("xv{id:04x}c"));
        server.ip(&["addr", "add", &format!("{SERVER}/24"), "dev", &iface]);
        server.ip(&[
            "addr",
            "add",
            &format!("{SERVER6}/64"),
            "dev",
            &iface,
            "nodad",
        ]);
        let cif = format!("xv{id:04x}c");
        client.ip(&["addr", "add", &format!("{CLIENT}/24"), "dev", &cif]);
        client.ip(&[
            "addr",
            "add",
            &format!("{CLIENT6}/64"),
            "dev",
            &cif,
            "nodad",
        ]);
        Pair {
            server,
            client,
            iface,
        }
    }

    /// `dnslb ARGS` in `dir`, inside the server's namespace.
    fn dnslb(&self, name: &str, args: &[&str], dir: &Path) -> Proc {
        self.server.dnslb(name, args, dir)
    }

    /// `dnslb up` in `dir`, once its XDP path serves: an LS on `listen` (a
    /// TOML list) with `ls_keys` in its `[ls]`, `[ls.xdp]` on the server's
    /// interface and the tables `extra`, in front of one TS holding [`ZONE`].
    fn up(&self, dir: &Path, listen: &str, ls_keys: &str, extra: &str) -> Proc {
        std::fs::write(dir.join("x.test.zone"), ZONE).unwrap();
        let config = format!(
            "[ls]\nlisten = {listen}\nworkers = 1\n{ls_keys}\n\
             [ls.xdp]\ninterfaces = [\"{}\"]\n\n{extra}\n\
             [[ls.backend]]\nname = \"t\"\naddr = \"127.0.0.1:5301\"\n\n\
             [[ts]]\nname = \"t\"\nlisten = \"127.0.0.1:5301\"\nzones = [\"x.test.zone\"]\n",
            self.iface
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let ls = self.dnslb("up", &["up", "-c", "config.toml"], dir);
        wait_for_xdp(&ls);
        ls
    }
}

/// Waits for `proc`'s log to say the XDP path serves (or fails at once
/// when it says it does not).
fn wait_for_xdp(proc: &Proc) {
    let said = poll_until(Duration::from_secs(30), Duration::from_millis(50), || {
        let log = proc.stderr_now();
        assert!(
            !log.contains("serving it through sockets"),
            "XDP did not start: {log}"
        );
        log.contains("xdp: serving UDP through AF_XDP")
            .then_some(())
    });
    assert!(said.is_some(), "XDP never started: {}", proc.stderr_now());
}

/// A query for `name` `qtype`, ID `id`, with an OPT of `edns` bytes (and
/// DO when `dnssec`) when given.
fn query(id: u16, name: &str, qtype: RecordType, edns: Option<u16>, dnssec: bool) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

const ZONE: &str = "$ORIGIN x.test.\n$TTL 300\n\
@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 198.18.0.1\n\
www A 192.0.2.1\nwww AAAA 2001:db8::1\nalias CNAME alias2\nalias2 CNAME www\n\
*.wild A 192.0.2.9\n";

/// The zone above with `n` TXT records of 100 bytes at `big`, and 10 at `mid`.

#[test]
fn the_ls_drops_clients_outside_allow_in_the_program_and_answers_the_rest() {
    const TEST: &str = "the_ls_drops_clients_outside_allow_in_the_program_and_answers_the_rest";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let pair = Pair::make(&ip, "l");
    let dir = tempfile::tempdir().unwrap();
    // IPv4 clients are outside `allow`; IPv6 ones inside.
    let ls = pair.up(
        dir.path(),
        &format!("[\"{SERVER}:53\", \"[{SERVER6}]:53\"]"),
        "metrics = \"127.0.0.1:9101\"\nallow = [\"127.0.0.0/8\", \"2001:2::/64\"]\n",
        "",
    );
    let v6: SocketAddr = format!("[{SERVER6}]:53").parse().unwrap();
    let raw = query(42, "alias.x.test.", RecordType::A, Some(1232), false);
    let answer = poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        ask_raw_in(&pair.client.name, v6, &raw, Duration::from_millis(300)).filter(|a| {
            Message::from_vec(a)
                .is_ok_and(|m| m.response_code == ResponseCode::NoError && m.answers.len() == 3)
        })
    });
    assert!(
        answer.is_some(),
        "IPv6 client not answered: {}",
        ls.stderr_now()
    );
    // The IPv4 client: dropped in the program, counted as the ACL's.
    let v4: SocketAddr = format!("{SERVER}:53").parse().unwrap();
    assert_eq!(
        ask_raw_in(&pair.client.name, v4, &raw, Duration::from_secs(1)),
        None
    );
    let dropped = poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let m = pair.server.curl("http://127.0.0.1:9101/metrics");
        (sample_u64(&m, "dnslb_xdp_program_total{what=\"not_allowed\"}") >= 1
            && sample_u64(&m, "dnslb_refused_acl_total") >= 1)
            .then_some(())
    });
    assert!(dropped.is_some(), "the program's drop was not counted");
    // The IPv6 client's query was taken by a worker (and, forwarded, answered
    // by the UDP worker of its address, through the kernel's socket).
    let m = pair.server.curl("http://127.0.0.1:9101/metrics");
    let taken = sample_u64(&m, "dnslb_xdp_frames_total{result=\"answered\"}")
        + sample_u64(&m, "dnslb_xdp_frames_total{result=\"via_kernel\"}");
    assert!(taken >= 1, "{m}");
    drop(ls);
}

#[test]
fn a_drop_block_holds_in_the_program_for_as_long_as_the_flood_goes_on() {
    const TEST: &str = "a_drop_block_holds_in_the_program_for_as_long_as_the_flood_goes_on";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let pair = Pair::make(&ip, "d");
    // A second client address on the client's side: never over the rate.
    let other = "198.18.0.3";
    let cif = pair.iface.replace('s', "c");
    pair.client
        .ip(&["addr", "add", &format!("{other}/24"), "dev", &cif]);
    let dir = tempfile::tempdir().unwrap();
    // Over 50 queries/s for 1 s: dropped for 2 s, renewed while it goes on.
    let ls = pair.up(
        dir.path(),
        &format!("[\"{SERVER}:53\"]"),
        "metrics = \"127.0.0.1:9102\"\nallow = [\"127.0.0.0/8\", \"198.18.0.0/15\"]\n",
        "[[ls.dynamic_block]]\nname = \"flood\"\nkind = \"query-rate\"\nthreshold = 50\n\
         window_s = 1\nblock_s = 2\naction = \"drop\"\n",
    );
    let to: SocketAddr = format!("{SERVER}:53").parse().unwrap();
    let raw = query(7, "www.x.test.", RecordType::A, None, false);
    let answered = |from: &'static str| {
        let raw = raw.clone();
        in_netns(&pair.client.name, move || {
            let sock = UdpSocket::bind((from, 0)).unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            sock.send_to(&raw, to).unwrap();
            let mut buf = [0u8; 512];
            sock.recv_from(&mut buf).is_ok()
        })
    };
    let up = poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        answered(other).then_some(())
    });
    assert!(up.is_some(), "not answered: {}", ls.stderr_now());
    // The flood: 1,000 queries a second from CLIENT for 8 s (four times
    // block_s), bounded.
    let flood = {
        let (ns, raw) = (pair.client.name.clone(), raw.clone());
        std::thread::spawn(move || {
            in_netns(&ns, move || {
                let sock = UdpSocket::bind((CLIENT, 0)).unwrap();
                sock.set_nonblocking(true).unwrap();
                for _ in 0..8_000 {
                    let _ = sock.send_to(&raw, to);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        })
    };
    let blocked = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        ls.stderr_now().contains("dynamic block").then_some(())
    });
    assert!(blocked.is_some(), "never blocked: {}", ls.stderr_now());
    // The other client is answered throughout.
    let mut other_answered = 0;
    while !flood.is_finished() {
        other_answered += usize::from(answered(other));
        std::thread::sleep(Duration::from_millis(200));
    }
    flood.join().unwrap();
    let log = ls.stderr_now();
    assert!(
        !log.contains("dynamic block lifted"),
        "lifted while the flood went on: {log}"
    );
    assert_eq!(
        log.matches("rule=flood").count(),
        1,
        "blocked more than once: {log}"
    );
    assert!(other_answered >= 5, "the other client: {other_answered}");
    // Once it stops, the block lifts; the program's drops are the block's.
    let lifted = poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        ls.stderr_now()
            .contains("dynamic block lifted")
            .then_some(())
    });
    assert!(lifted.is_some(), "never lifted: {}", ls.stderr_now());
    let m = pair.server.curl("http://127.0.0.1:9102/metrics");
    let in_program = sample_u64(&m, "dnslb_xdp_program_total{what=\"blocked\"}");
    let counted = m
        .lines()
        .filter(|l| l.starts_with("dnslb_dynblock_queries_blocked_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum::<u64>();
    assert!(
        in_program >= 1_000 && counted >= in_program,
        "the program dropped {in_program}, the blocks counted {counted}:\n{m}"
    );
    // The program's filter follows the lift within its keeper's 100 ms.
    let again = poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
        answered(CLIENT).then_some(())
    });
    assert!(again.is_some(), "not answered after the block lifted");
    drop(ls);
}

/// A burst of forwarded queries through XDP, many in flight at once from
/// several client sockets: each one answered, right, with its own ID; they
/// went to the UDP worker of the address asked (answered through its
/// socket, counted as `via_kernel`), none shed, none made up.
#[test]
fn a_burst_of_forwarded_queries_is_answered_in_full_by_the_udp_workers() {
    const TEST: &str = "a_burst_of_forwarded_queries_is_answered_in_full_by_the_udp_workers";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let pair = Pair::make(&ip, "h");
    let dir = tempfile::tempdir().unwrap();
    let ls = pair.up(
        dir.path(),
        &format!("[\"{SERVER}:53\", \"[{SERVER6}]:53\"]"),
        "metrics = \"127.0.0.1:9103\"\nallow = [\"198.18.0.0/15\", \"2001:2::/64\"]\n",
        "",
    );
    // The TS behind answers (the first query may race its first health round).
    let to4: SocketAddr = format!("{SERVER}:53").parse().unwrap();
    let to6: SocketAddr = format!("[{SERVER6}]:53").parse().unwrap();
    let first = query(1, "first.wild.x.test.", RecordType::A, None, false);
    let up = poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        ask_raw_in(&pair.client.name, to4, &first, Duration::from_millis(500))
    });
    assert!(up.is_some(), "not answered: {}", ls.stderr_now());
    const SOCKETS: usize = 8;
    const EACH: usize = 100;
    let got = in_netns(&pair.client.name, move || {
        let threads: Vec<_> = (0..SOCKETS)
            .map(|s| {
                std::thread::spawn(move || {
                    let to = if s % 2 == 0 { to4 } else { to6 };
                    let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                    let sock = UdpSocket::bind(bind).unwrap();
                    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                    let mut wanted = std::collections::HashMap::new();
                    for i in 0..EACH {
                        let id = u16::try_from(s * EACH + i + 100).unwrap();
                        let name = format!("n{id}.wild.x.test.");
                        sock.send_to(&query(id, &name, RecordType::A, None, false), to)
                            .unwrap();
                        wanted.insert(id, name);
                    }
                    let mut right = 0;
                    let mut buf = [0u8; 1500];
                    while let Ok(n) = sock.recv(&mut buf) {
                        let Ok(m) = Message::from_vec(&buf[..n]) else {
                            continue;
                        };
                        let Some(name) = wanted.remove(&m.id) else {
                            continue;
                        };
                        let asked = m.queries.first().map(|q| q.name().to_ascii());
                        let a = m.answers.first().map(|r| r.data.to_string());
                        if m.response_code == ResponseCode::NoError
                            && asked.as_deref() == Some(name.as_str())
                            && a.as_deref() == Some("192.0.2.9")
                        {
                            right += 1;
                        }
                        if wanted.is_empty() {
                            break;
                        }
                    }
                    right
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum::<usize>()
    });
    let m = pair.server.curl("http://127.0.0.1:9103/metrics");
    assert_eq!(got, SOCKETS * EACH, "{m}\n{}", ls.stderr_now());
    assert!(
        sample_u64(&m, "dnslb_xdp_frames_total{result=\"via_kernel\"}") >= (SOCKETS * EACH) as u64,
        "the forwarded queries did not go to the UDP workers: {m}"
    );
    for line in [
        "dnslb_shed_total{reason=\"queue\"}",
        "dnslb_synthesized_total",
        "dnslb_answers_total{rcode=\"SERVFAIL\"}",
    ] {
        assert_eq!(sample_u64(&m, line), 0, "{line}: {m}");
    }
    drop(ls);
}

/// A cached answer is written by the XDP worker itself, again and again
/// (each with its query's ID and the cached records), and `dnslb top`
/// counts the queries and answers of the XDP path as they come, with no
/// tick waited for.
#[test]
fn cache_hits_are_answered_by_the_xdp_worker_and_counted_by_top() {
    const TEST: &str = "cache_hits_are_answered_by_the_xdp_worker_and_counted_by_top";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let pair = Pair::make(&ip, "c");
    let dir = tempfile::tempdir().unwrap();
    let ls = pair.up(
        dir.path(),
        &format!("[\"{SERVER}:53\"]"),
        "metrics = \"127.0.0.1:9104\"\nallow = [\"198.18.0.0/15\"]\n",
        "[ls.cache]\nmax_entries = 100\n",
    );
    let to: SocketAddr = format!("{SERVER}:53").parse().unwrap();
    let www = |id: u16| query(id, "WwW.x.test.", RecordType::A, Some(1232), false);
    let right = |a: &[u8], id: u16| {
        Message::from_vec(a).is_ok_and(|m| {
            m.id == id
                && m.response_code == ResponseCode::NoError
                && m.answers.first().map(|r| r.data.to_string()).as_deref() == Some("192.0.2.1")
        })
    };
    // The first is forwarded (the TS may race its first health round).
    let first = poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        ask_raw_in(&pair.client.name, to, &www(1), Duration::from_millis(500))
            .filter(|a| right(a, 1))
    });
    assert!(first.is_some(), "not answered: {}", ls.stderr_now());
    let before = pair.server.curl("http://127.0.0.1:9104/metrics");
    const HITS: u16 = 40;
    for id in 100..100 + HITS {
        let a = ask_raw_in(&pair.client.name, to, &www(id), Duration::from_secs(2));
        assert!(
            a.as_deref().is_some_and(|a| right(a, id)),
            "query {id}: {a:?}"
        );
    }
    let m = pair.server.curl("http://127.0.0.1:9104/metrics");
    let grew = |line: &str| sample_u64(&m, line) - sample_u64(&before, line);
    assert!(grew("dnslb_cache_hits_total") >= u64::from(HITS), "{m}");
    assert!(
        grew("dnslb_xdp_frames_total{result=\"answered\"}") >= u64::from(HITS),
        "the hits were not written by the XDP worker: {m}"
    );
    let top = pair.server.curl("http://127.0.0.1:9104/top?seconds=60&n=5");
    let report: serde_json::Value = serde_json::from_str(&top).unwrap();
    let count = |list: &str, key: &str| {
        report[list].as_array().and_then(|l| {
            l.iter()
                .find(|e| e["key"] == key)
                .and_then(|e| e["count"].as_u64())
        })
    };
    assert!(
        count("names", "www.x.test.").is_some_and(|n| n > u64::from(HITS)),
        "{top}"
    );
    assert!(
        count("rcodes", "NOERROR").is_some_and(|n| n > u64::from(HITS)),
        "{top}"
    );
    drop(ls);
}
