//! `[[ts.service]]` through a TS run as `dnslb ts` runs it
//! (`TsRole`, its endpoint checker started with it), against real TCP
//! endpoints on 127.0.0.x that the test stops and starts again:
//!
//! * a dead endpoint leaves the answers and comes back after `rise`; an AXFR
//!   meanwhile still carries every endpoint (fail-open for secondaries);
//!   other types at the name get NODATA with the SOA;
//! * `failover` moves to the second group and back; `when_all_down` as
//!   every endpoint, a fallback CNAME, or SERVFAIL;
//! * a view picks the group by source address (127.0.0.2 vs 127.0.0.3) and
//!   by ECS (`dig +subnet`), the scope echoed;
//! * weights hold over many queries (chi-square);
//! * a malformed ECS option (RFC 7871 §6) is FORMERR, on UDP and TCP;
//! * a view chosen by ECS through a real Unbound in front (`subnetcache`,
//!   `send-client-subnet`), the scope echoed to Unbound's clients, each
//!   subnet's answer kept apart in Unbound's cache; and through the LS with
//!   `[ls.cache]`: clients of two views never get each other's answer; with
//!   `ecs = "add"` each client (by its /24) gets its own view's answer,
//!   cached apart, and no ECS it did not send; with `off` a client's ECS
//!   is not seen by the TS.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use tokio::net::TcpListener;

use crate::kit::{ServiceTs, ZoneDir, need, poll_until_async, query, run_tool, udp_raw_from};

/// How long an endpoint's death or return may take to show: checks every
/// 100 ms, 2 in a row, plus slack for a loaded machine.
const LIMIT: Duration = Duration::from_secs(10);

/// The TS under test, serving example.org.
type Ts = ServiceTs;

/// The endpoints of [`ServiceTs::start_two_dcs`]'s groups.
const DC1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const DC2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

/// The zone every TS here serves: example.org with its SOA, NS and the
/// NS's address.
const ZONE: &str = "$ORIGIN example.org.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.53\n";

impl ServiceTs {
    /// Starts a TS serving example.org with the `[[ts.service]]` tables `services`.
    async fn start_org(dir: &ZoneDir, services: &str) -> Ts {
        Ts::start(dir, "example.org", services).await
    }

    /// Starts a TS whose `www.example.org` fails over from dc1 (192.0.2.1)
    /// to dc2 (198.51.100.1), save for the clients of a view, `clients`
    /// (TOML strings), who get dc2 first.
    async fn start_two_dcs(dir: &ZoneDir, clients: &str) -> Ts {
        let services = format!(
            "[[ts.service]]\nname = \"www.example.org\"\nselect = \"failover\"\n\
             endpoint = [ {{ addr = \"192.0.2.1\", group = \"dc1\" }}, {{ addr = \"198.51.100.1\", group = \"dc2\" }} ]\n\
             view = [ {{ clients = [{clients}], groups = [\"dc2\", \"dc1\"] }} ]\n"
        );
        Ts::start_org(dir, &services).await
    }

    /// Asks `name A` until `want` holds for the sorted addresses.
    async fn until(&self, name: &str, want: &[Ipv4Addr]) {
        let mut last = Vec::new();
        let got = poll_until_async(LIMIT, Duration::from_millis(50), async || {
            last = addrs(&self.ask(name, RecordType::A).await);
            (last == want).then_some(())
        })
        .await;
        assert!(got.is_some(), "{name}: wanted {want:?}, last {last:?}");
    }
}

/// The A addresses of `m`, sorted.
fn addrs(m: &Message) -> Vec<Ipv4Addr> {
    crate::kit::a_addrs_sorted(m)
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// TCP endpoints on 127.0.0.x, all on one port, stopped and started again.
struct Endpoints {
    port: u16,
    up: Vec<(u8, Option<TcpListener>)>,
}

impl Endpoints {
    /// Listeners on 127.0.0.`lasts`, one port for all (a few tries to find one free on each).
    async fn start(lasts: &[u8]) -> Endpoints {
        for _ in 0..20 {
            let first = TcpListener::bind((ip(lasts[0]), 0)).await.unwrap();
            let port = first.local_addr().unwrap().port();
            let mut up = vec![(lasts[0], Some(first))];
            for &l in &lasts[1..] {
                match TcpListener::bind((ip(l), port)).await {
                    Ok(s) => up.push((l, Some(s))),
                    Err(_) => break,
                }
            }
            if up.len() == lasts.len() {
                return Endpoints { port, up };
            }
        }
        panic!("no port free on every endpoint address");
    }

    /// Stops 127.0.0.`last` (connections refused).
    fn kill(&mut self, last: u8) {
        for (l, s) in &mut self.up {
            if *l == last {
                *s = None;
            }
        }
    }

    /// Starts 127.0.0.`last` again.
    async fn revive(&mut self, last: u8) {
        let port = self.port;
        for (l, s) in &mut self.up {
            if *l == last {
                *s = Some(TcpListener::bind((ip(last), port)).await.unwrap());
            }
        }
    }

    /// The service's `check` line.
    fn check(&self) -> String {
        format!(
            "check = {{ kind = \"tcp\", port = {}, interval_ms = 100, timeout_ms = 500, rise = 2, fall = 2 }}\n",
            self.port
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_leaves_the_answers_and_comes_back_and_axfr_keeps_it() {
    let dir = ZoneDir::new();
    let mut eps = Endpoints::start(&[2, 3]).await;
    let services = format!(
        "[[ts.service]]\nname = \"www.example.org\"\n{}endpoint = [ {{ addr = \"127.0.0.2\" }}, {{ addr = \"127.0.0.3\" }} ]\n",
        eps.check()
    );
    let ts = Ts::start_org(&dir, &services).await;
    ts.until("www.example.org", &[ip(2), ip(3)]).await;
    let m = ts.ask("www.example.org", RecordType::A).await;
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers[0].ttl, 30, "the service's ttl");

    eps.kill(3);
    ts.until("www.example.org", &[ip(2)]).await;
    let mut metrics = String::new();
    ts.table.write_service_metrics(&mut metrics);
    assert!(
        metrics.contains(
            "dnslb_ts_endpoint_up{service=\"www.example.org.\",endpoint=\"127.0.0.3\"} 0"
        ),
        "{metrics}"
    );
    // Other types: NODATA with the SOA; AAAA too (no IPv6 endpoint).
    for t in [RecordType::AAAA, RecordType::TXT] {
        let m = ts.ask("www.example.org", t).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty(), "{t}: {m:?}");
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA, "{t}");
    }
    // A transfer carries every endpoint, the dead one too.
    if let Some([dig]) = need("service_answers axfr", ["dig"]) {
        let (port, ip_text) = (ts.addr.port().to_string(), format!("@{}", ts.addr.ip()));
        let out = tokio::task::spawn_blocking(move || {
            run_tool(
                dig.to_str().unwrap(),
                &[&ip_text, "-p", &port, "example.org", "AXFR", "+tcp"],
            )
        })
        .await
        .unwrap();
        for want in ["127.0.0.2", "127.0.0.3"] {
            assert!(
                out.stdout
                    .lines()
                    .any(|l| l.starts_with("www.example.org.") && l.ends_with(want)),
                "{want} missing from the AXFR:\n{}",
                out.stdout
            );
        }
    }

    eps.revive(3).await;
    ts.until("www.example.org", &[ip(2), ip(3)]).await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_moves_and_comes_back_and_all_down_answers_each_way() {
    let dir = ZoneDir::new();
    let mut eps = Endpoints::start(&[4, 5]).await;
    let body = format!(
        "select = \"failover\"\n{}endpoint = [ {{ addr = \"127.0.0.4\", group = \"dc1\" }}, {{ addr = \"127.0.0.5\", group = \"dc2\" }} ]\n",
        eps.check()
    );
    let services = format!(
        "[[ts.service]]\nname = \"fo.example.org\"\nwhen_all_down = {{ fallback = \"sorry.example.org\" }}\n{body}\
         [[ts.service]]\nname = \"sf.example.org\"\nwhen_all_down = \"servfail\"\n{body}\
         [[ts.service]]\nname = \"open.example.org\"\n{body}"
    );
    let ts = Ts::start_org(&dir, &services).await;
    ts.until("fo.example.org", &[ip(4)]).await;
    eps.kill(4);
    ts.until("fo.example.org", &[ip(5)]).await;
    // A DO=1 query (every validating resolver's, Unbound's) in this
    // unsigned zone gets the same live answer, not the zone's every
    // endpoint.
    let mut q = query("fo.example.org", RecordType::A, Some(1232));
    if let Some(e) = q.edns.as_mut() {
        e.set_dnssec_ok(true);
    }
    assert_eq!(addrs(&crate::kit::udp(ts.addr, &q).await), [ip(5)]);
    eps.revive(4).await;
    ts.until("fo.example.org", &[ip(4)]).await;

    eps.kill(4);
    eps.kill(5);
    // All down: every endpoint (the default), the fallback, SERVFAIL.
    ts.until("open.example.org", &[ip(4), ip(5)]).await;
    let got = poll_until_async(LIMIT, Duration::from_millis(50), async || {
        let m = ts.ask("fo.example.org", RecordType::A).await;
        m.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(c) => Some(c.0.to_ascii()),
            _ => None,
        })
    })
    .await;
    assert_eq!(got.as_deref(), Some("sorry.example.org."));
    let m = ts.ask("sf.example.org", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(m.answers.is_empty());

    eps.revive(5).await;
    ts.until("sf.example.org", &[ip(5)]).await;
    ts.until("fo.example.org", &[ip(5)]).await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_pick_the_group_by_source_address_and_by_ecs_with_the_scope_echoed() {
    let dir = ZoneDir::new();
    let ts = Ts::start_two_dcs(&dir, "\"127.0.0.2/32\", \"10.0.0.0/8\"").await;
    let from = |l: u8| IpAddr::from(ip(l));
    let m = ts.ask_from(from(2), "www.example.org", RecordType::A).await;
    assert_eq!(addrs(&m), [DC2], "127.0.0.2 is in the view");
    let m = ts.ask_from(from(3), "www.example.org", RecordType::A).await;
    assert_eq!(addrs(&m), [DC1], "127.0.0.3 is not");

    let Some([dig]) = need("service_answers ecs", ["dig"]) else {
        ts.stop().await;
        return;
    };
    let (port, at) = (ts.addr.port().to_string(), format!("@{}", ts.addr.ip()));
    let run = |subnet: &'static str| {
        let (dig, port, at) = (dig.clone(), port.clone(), at.clone());
        tokio::task::spawn_blocking(move || {
            let args = [
                &at[..],
                "-p",
                &port,
                "+norec",
                "+tries=1",
                "+time=2",
                subnet,
                "www.example.org",
                "A",
            ];
            run_tool(dig.to_str().unwrap(), &args).stdout
        })
    };
    let inside = run("+subnet=10.1.2.0/24").await.unwrap();
    assert!(inside.contains("198.51.100.1"), "{inside}");
    // The longest view network of the family is /32: the scope echoed.
    assert!(inside.contains("CLIENT-SUBNET: 10.1.2.0/24/32"), "{inside}");
    let outside = run("+subnet=192.0.2.0/24").await.unwrap();
    assert!(outside.contains("192.0.2.1"), "{outside}");
    assert!(
        outside.contains("CLIENT-SUBNET: 192.0.2.0/24/32"),
        "{outside}"
    );
    // A source prefix of 0: no view by ECS (the source address decides), scope 0.
    let zero = run("+subnet=0.0.0.0/0").await.unwrap();
    assert!(zero.contains("192.0.2.1"), "{zero}");
    assert!(zero.contains("CLIENT-SUBNET: 0.0.0.0/0/0"), "{zero}");
    ts.stop().await;
}

/// `dig @addr +subnet=... www.example.org A` (recursion desired), its output.
async fn dig_subnet(dig: &std::path::Path, addr: SocketAddr, subnet: Option<&str>) -> String {
    let (dig, at, port) = (
        dig.to_owned(),
        format!("@{}", addr.ip()),
        addr.port().to_string(),
    );
    let subnet = subnet.map(|s| format!("+subnet={s}"));
    tokio::task::spawn_blocking(move || {
        let mut args = vec![at, "-p".into(), port, "+tries=1".into(), "+time=3".into()];
        args.extend(subnet);
        args.extend(["www.example.org".into(), "A".into()]);
        run_tool(dig.to_str().unwrap(), &args).stdout
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_by_ecs_through_unbound_with_the_scope_echoed() {
    use crate::kit::{Unbound, free_port};
    let Some([unbound, dig]) = need("service_answers through unbound", ["unbound", "dig"]) else {
        return;
    };
    let dir = ZoneDir::new();
    let ts = Ts::start_two_dcs(&dir, "\"10.0.0.0/8\"").await;
    // Unbound sends ECS to the TS's address only (`send-client-subnet`):
    // the client's option when it sent one, else its own address's /24.
    let extra = format!(
        "  send-client-subnet: {}\n  max-client-subnet-ipv4: 24\n",
        ts.addr.ip()
    );
    let mut ub = Unbound::start_for(
        &unbound,
        free_port(),
        ("example.org.", ts.addr),
        "subnetcache iterator",
        &extra,
    );
    ub.wait_ready().await;
    // Each subnet twice: the second from Unbound's cache, which keeps the
    // answers apart by the scope the TS returned (/8, the view's network).
    for round in 0..2 {
        for (subnet, want, scope) in [
            ("10.1.2.0/24", "198.51.100.1", "10.1.2.0/24/8"),
            ("192.0.2.0/24", "192.0.2.1", "192.0.2.0/24/8"),
            ("10.9.9.0/24", "198.51.100.1", "10.9.9.0/24/8"),
        ] {
            let out = dig_subnet(&dig, ub.addr, Some(subnet)).await;
            assert!(
                out.contains("status: NOERROR"),
                "round {round} {subnet}: {out}"
            );
            assert!(out.contains(want), "round {round} {subnet}: {out}");
            assert!(
                out.contains(&format!("CLIENT-SUBNET: {scope}")),
                "round {round} {subnet}: the scope echoed: {out}"
            );
        }
        // No ECS from the client: Unbound sends 127.0.0.0/24, outside the view.
        let out = dig_subnet(&dig, ub.addr, None).await;
        assert!(
            out.contains("192.0.2.1") && !out.contains("198.51.100.1"),
            "{out}"
        );
    }
    ub.proc.assert_running();
    drop(ub);
    ts.stop().await;
}

/// `name` A with an OPT carrying ECS `subnet` (a /24) when given.
fn ecs_query(name: &str, subnet: Option<[u8; 3]>) -> Message {
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
    let mut m = query(name, RecordType::A, Some(1232));
    if let (Some([a, b, c]), Some(edns)) = (subnet, m.edns.as_mut()) {
        let s = ClientSubnet::new(IpAddr::V4(Ipv4Addr::new(a, b, c, 0)), 24, 0);
        edns.options_mut().insert(EdnsOption::Subnet(s));
    }
    m
}

/// The (source, scope) prefixes of `m`'s ECS option, if it has one.
fn ecs_prefixes(m: &Message) -> Option<(u8, u8)> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.source_prefix(), s.scope_prefix())),
        _ => None,
    }
}

/// The zone's other names echo a well-formed ECS option with scope 0
/// (RFC 7871 §7.2.1: their answers suit every subnet; gdnsd does so), the
/// service's name with its views' scope; no option sent, none back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_no_service_holds_echo_the_ecs_option_with_scope_0() {
    use crate::kit::udp;
    let dir = ZoneDir::new();
    let ts = Ts::start_two_dcs(&dir, "\"10.0.0.0/8\"").await;
    for (name, rcode) in [
        ("ns.example.org", ResponseCode::NoError),
        ("nothing.example.org", ResponseCode::NXDomain),
    ] {
        let m = udp(ts.addr, &ecs_query(name, Some([10, 1, 2]))).await;
        assert_eq!(m.metadata.response_code, rcode, "{name}");
        assert_eq!(ecs_prefixes(&m), Some((24, 0)), "{name}");
        let m = udp(ts.addr, &ecs_query(name, None)).await;
        assert_eq!(ecs_prefixes(&m), None, "{name} without ECS");
    }
    let m = udp(ts.addr, &ecs_query("www.example.org", Some([10, 1, 2]))).await;
    assert_eq!(
        ecs_prefixes(&m),
        Some((24, 8)),
        "the service: its view's /8"
    );
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_ls_cache_two_views_never_get_each_other_s_answer() {
    use crate::kit::{ls_config, start_ls, udp};
    let dir = ZoneDir::new();
    let ts = Ts::start_two_dcs(&dir, "\"10.0.0.0/8\"").await;
    let mut cfg = ls_config(&[("ts1", ts.addr)]);
    cfg.cache = Some(dnslb::config::CacheConfig::default());
    let ls = start_ls(cfg).await;
    // Twice each, in turns: the second round from the cache.
    for round in 0..2 {
        for (subnet, want, ecs) in [
            (Some([10, 1, 2]), DC2, Some((24, 8))),
            (Some([192, 0, 2]), DC1, Some((24, 8))),
            (Some([10, 9, 9]), DC2, Some((24, 8))),
            (None, DC1, None),
        ] {
            let m = udp(ls.addr, &ecs_query("www.example.org", subnet)).await;
            assert_eq!(addrs(&m), [want], "round {round} {subnet:?}");
            assert_eq!(ecs_prefixes(&m), ecs, "round {round} {subnet:?}");
        }
    }
    let stats = ls.balancer.state().cache.as_ref().unwrap().stats();
    assert_eq!(stats.hits, 4, "the second round came from the cache");
    ls.stop().await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_ls_ecs_add_gives_each_client_its_view_and_off_hides_a_client_s_option() {
    use crate::kit::{ls_config, start_ls, tcp, tcp_from, udp, udp_raw_from};
    use dnslb::config::{CacheConfig, EcsMode};
    let dir = ZoneDir::new();
    let ts = Ts::start_two_dcs(&dir, "\"127.0.1.0/24\"").await;
    let (near, far) = (IpAddr::from(ip(2)), IpAddr::from([127, 0, 1, 2]));
    let name = "www.example.org";

    // add: the TS sees each client's /24 (the LS itself asks from 127.0.0.1,
    // outside the view), so 127.0.1.2 gets DC2 and 127.0.0.2 DC1; twice
    // each, the second round from the cache, keyed by the added /24.
    let mut cfg = ls_config(&[("ts1", ts.addr)]);
    cfg.cache = Some(CacheConfig::default());
    cfg.ecs = EcsMode::Add;
    let ls = start_ls(cfg).await;
    let hits = || ls.balancer.state().cache.as_ref().unwrap().stats().hits;
    let mut after_first = 0;
    for round in 0..2 {
        for (from, want) in [(near, DC1), (far, DC2)] {
            for edns in [None, Some(1232)] {
                let q = query(name, RecordType::A, edns).to_vec().unwrap();
                let raw = udp_raw_from(from, ls.addr, &q, Duration::from_secs(2))
                    .await
                    .expect("an answer");
                let m = Message::from_vec(&raw).unwrap();
                let case = format!("round {round} from {from} edns {edns:?}");
                assert_eq!(addrs(&m), [want], "{case}");
                // It sent no ECS: it gets none back; and no OPT without one.
                assert_eq!(ecs_prefixes(&m), None, "{case}");
                assert_eq!(m.edns.is_some(), edns.is_some(), "{case}");
            }
        }
        if round == 0 {
            after_first = hits();
        }
    }
    assert_eq!(
        hits() - after_first,
        4,
        "the second round came from the cache"
    );
    // Over TCP (the async path) too.
    let m = tcp_from(far, ls.addr, &query(name, RecordType::A, Some(1232))).await;
    assert_eq!((addrs(&m), ecs_prefixes(&m)), (vec![DC2], None), "tcp");
    ls.stop().await;

    // off: a client's ECS naming the view's network is not seen by the TS,
    // which answers by the LS's address (DC1).
    let mut cfg = ls_config(&[("ts1", ts.addr)]);
    cfg.cache = Some(CacheConfig::default());
    cfg.ecs = EcsMode::Off;
    let ls = start_ls(cfg).await;
    let q = ecs_query(name, Some([127, 0, 1]));
    for round in 0..2 {
        let m = udp(ls.addr, &q).await;
        assert_eq!((addrs(&m), ecs_prefixes(&m)), (vec![DC1], None), "{round}");
    }
    let m = tcp(ls.addr, &q).await;
    assert_eq!((addrs(&m), ecs_prefixes(&m)), (vec![DC1], None), "tcp");
    ls.stop().await;
    ts.stop().await;
}

/// A query for `name` A with an OPT holding one ECS option whose data is
/// `ecs` (family, source, scope, address), built by hand: dig and hickory
/// would not send a malformed one.
fn raw_ecs_query(name: &str, ecs: &[u8]) -> Vec<u8> {
    let mut q = vec![0xBE, 0xEF, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.split('.') {
        q.push(u8::try_from(label.len()).unwrap());
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0]);
    q.extend_from_slice(&u16::try_from(4 + ecs.len()).unwrap().to_be_bytes());
    q.extend_from_slice(&[0, 8]);
    q.extend_from_slice(&u16::try_from(ecs.len()).unwrap().to_be_bytes());
    q.extend_from_slice(ecs);
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_ecs_option_is_formerr_on_udp_and_tcp() {
    use crate::kit::{Via, send};
    let dir = ZoneDir::new();
    let ts = Ts::start_two_dcs(&dir, "\"10.0.0.0/8\"").await;
    // Each is FORMERR, never answered NOERROR by the source address.
    let bad: [(&str, &[u8]); 7] = [
        ("IPv4 /33", &[0, 1, 33, 0, 10, 0, 0, 0, 0]),
        ("/24 with 2 octets", &[0, 1, 24, 0, 10, 1]),
        (
            "10.255.0.0/9 (bits past the prefix)",
            &[0, 1, 9, 0, 10, 255],
        ),
        ("family 3", &[0, 3, 8, 0, 10]),
        ("a scope in a query", &[0, 1, 8, 8, 10]),
        ("a 2-octet option", &[0, 1]),
        ("/0 with an octet", &[0, 1, 0, 0, 10]),
    ];
    for via in [Via::Udp, Via::Tcp] {
        for name in ["www.example.org", "ns.example.org"] {
            for (what, ecs) in bad {
                let m = send(ts.addr, &raw_ecs_query(name, ecs), via).await.unwrap();
                assert_eq!(
                    m.response_code,
                    ResponseCode::FormErr,
                    "{name} {what} {via:?}"
                );
                assert!(m.answers.is_empty(), "{name} {what} {via:?}");
            }
            // The same query with a well-formed option is answered.
            let good = raw_ecs_query(name, &[0, 1, 8, 0, 10]);
            let m = send(ts.addr, &good, via).await.unwrap();
            assert_eq!(m.response_code, ResponseCode::NoError, "{name} {via:?}");
            assert_eq!(m.answers.len(), 1, "{name} {via:?}");
        }
    }
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_hold_over_many_queries() {
    let dir = ZoneDir::new();
    let services = "[[ts.service]]\nname = \"w.example.org\"\nselect = \"weighted\"\n\
        endpoint = [ { addr = \"192.0.2.1\", weight = 1 }, { addr = \"192.0.2.2\", weight = 2 },\n\
                     { addr = \"192.0.2.3\", weight = 3 }, { addr = \"192.0.2.4\", weight = 4 } ]\n";
    let ts = Ts::start_org(&dir, services).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let q = query("w.example.org", RecordType::A, None)
        .to_vec()
        .unwrap();
    let mut counts = [0u64; 4];
    let mut buf = vec![0u8; 512];
    let n = 10_000;
    for _ in 0..n {
        sock.send_to(&q, ts.addr).await.unwrap();
        let (len, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        let m = Message::from_vec(&buf[..len]).unwrap();
        let got = addrs(&m);
        assert_eq!(got.len(), 1, "pick = 1");
        counts[usize::from(got[0].octets()[3] - 1)] += 1;
    }
    let x2: f64 = counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let expected = n as f64 * (i + 1) as f64 / 10.0;
            (c as f64 - expected).powi(2) / expected
        })
        .sum();
    // 3 degrees of freedom: 16.27 is the 0.999 quantile.
    assert!(x2 < 16.27, "chi-square {x2} for {counts:?}");
    ts.stop().await;
}

/// `delv` (the zone's DS as its trust anchor) on `name A` at `ts`: the A
/// addresses it validated, sorted, or its whole output when it did not
/// call the answer "fully validated".
fn delv_a(anchor: &std::path::Path, ts: SocketAddr, name: &str) -> Result<Vec<Ipv4Addr>, String> {
    let out = crate::kit::delv(anchor, "example.org", ts, name, "A");
    if !out.stdout.contains("; fully validated") {
        return Err(format!("{}{}", out.stdout, out.stderr));
    }
    let mut v: Vec<Ipv4Addr> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(3) == Some(&"A")).then(|| f[4].parse().unwrap())
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Asks `delv` `name A` until it validates exactly `want`.
async fn until_validated(anchor: &std::path::Path, ts: SocketAddr, name: &str, want: &[Ipv4Addr]) {
    let mut last = Ok(Vec::new());
    let got = poll_until_async(LIMIT, Duration::from_millis(100), async || {
        let (a, n) = (anchor.to_owned(), name.to_owned());
        last = tokio::task::spawn_blocking(move || delv_a(&a, ts, &n))
            .await
            .unwrap();
        (last.as_deref() == Ok(want)).then_some(())
    })
    .await;
    assert!(
        got.is_some(),
        "{name}: wanted {want:?} validated, last {last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_signed_zone_delv_validates_the_live_set_through_a_kill_and_the_axfr_verifies() {
    let test = "service_answers signed";
    let Some([_, _, _, dig, _]) = need(
        test,
        [
            "delv",
            "timeout",
            "dnssec-dsfromkey",
            "dig",
            "dnssec-verify",
        ],
    ) else {
        return;
    };
    let dir = ZoneDir::new();
    let keys = dir.path().join("keys");
    let mut eps = Endpoints::start(&[2, 3, 4]).await;
    let zone = format!("{ZONE}sorry A 192.0.2.80\n");
    let ts_lines = format!("dnssec = {{ keys = {:?} }}\n", keys.display().to_string());
    // www: every live endpoint; w2: 2 drawn of 3 by weight; fb: its one
    // endpoint (127.0.0.9) never listens: the fallback CNAME once it is down.
    let services = format!(
        "[[ts.service]]\nname = \"www.example.org\"\n{c}endpoint = [ {{ addr = \"127.0.0.2\" }}, {{ addr = \"127.0.0.3\" }} ]\n\
         [[ts.service]]\nname = \"w2.example.org\"\nselect = \"weighted\"\npick = 2\n{c}endpoint = [ {{ addr = \"127.0.0.2\" }}, {{ addr = \"127.0.0.3\" }}, {{ addr = \"127.0.0.4\" }} ]\n\
         [[ts.service]]\nname = \"fb.example.org\"\nwhen_all_down = {{ fallback = \"sorry.example.org\" }}\n{c}endpoint = [ {{ addr = \"127.0.0.9\" }} ]\n",
        c = eps.check()
    );
    let ts = Ts::start_in(&dir, "example.org", &zone, &ts_lines, &services).await;
    let anchor = crate::kit::anchor(&keys, "example.org.", dir.path());
    let addr = ts.addr;

    until_validated(&anchor, addr, "www.example.org", &[ip(2), ip(3)]).await;
    eps.kill(3);
    until_validated(&anchor, addr, "www.example.org", &[ip(2)]).await;
    // The weighted draws: only the live two, each draw validated.
    for _ in 0..6 {
        let a = anchor.clone();
        let got = tokio::task::spawn_blocking(move || delv_a(&a, addr, "w2.example.org"))
            .await
            .unwrap();
        assert_eq!(got, Ok(vec![ip(2), ip(4)]), "w2 after the kill");
    }
    // A DO=1 query sees the same as DO=0: the live set, with its RRSIG.
    let q = {
        let mut q = query("www.example.org", RecordType::A, Some(1232));
        q.edns.as_mut().unwrap().set_dnssec_ok(true);
        q.to_vec().unwrap()
    };
    let raw = udp_raw_from(Ipv4Addr::LOCALHOST.into(), addr, &q, Duration::from_secs(2))
        .await
        .unwrap();
    let m = Message::from_vec(&raw).unwrap();
    assert_eq!(addrs(&m), [ip(2)], "{m:?}");
    assert!(
        m.answers
            .iter()
            .any(|r| r.record_type() == RecordType::RRSIG),
        "{m:?}"
    );
    // All down: the fallback CNAME, signed, to an A in the zone.
    let out = poll_until_async(LIMIT, Duration::from_millis(100), async || {
        let a = anchor.clone();
        let out = tokio::task::spawn_blocking(move || {
            crate::kit::delv(&a, "example.org", addr, "fb.example.org", "A")
        })
        .await
        .unwrap();
        out.stdout.contains("CNAME").then_some(out)
    })
    .await
    .expect("fb: the fallback CNAME");
    assert!(
        out.stdout.contains("; fully validated") && out.stdout.contains("192.0.2.80"),
        "{}{}",
        out.stdout,
        out.stderr
    );

    // The transfer: every endpoint (fail-open), and it verifies.
    let (port, at) = (addr.port().to_string(), format!("@{}", addr.ip()));
    let axfr = tokio::task::spawn_blocking(move || {
        run_tool(
            dig.to_str().unwrap(),
            &[
                &at,
                "-p",
                &port,
                "example.org",
                "AXFR",
                "+tcp",
                "+nocmd",
                "+nostats",
            ],
        )
    })
    .await
    .unwrap();
    assert!(
        axfr.stdout
            .lines()
            .any(|l| l.starts_with("www.example.org.") && l.ends_with("127.0.0.3")),
        "{}",
        axfr.stdout
    );
    let file = dir.path().join("example.org.axfr");
    std::fs::write(&file, crate::kit::axfr_zone_file(&axfr.stdout)).unwrap();
    let f = file.display().to_string();
    let verify = tokio::task::spawn_blocking(move || {
        run_tool("dnssec-verify", &["-z", "-o", "example.org.", &f])
    })
    .await
    .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        verify.stdout,
        verify.stderr
    );

    eps.revive(3).await;
    until_validated(&anchor, addr, "www.example.org", &[ip(2), ip(3)]).await;
    ts.stop().await;
}
