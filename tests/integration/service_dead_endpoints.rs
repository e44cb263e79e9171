//! What a `[[ts.service]]` answers when its endpoints die, as `dnslb ts`
//! runs it (`ServiceTs`), against real TCP endpoints on 127.0.0.1 and ::1:
//!
//! * the fallback CNAME is one decision for the name: with the IPv4
//!   endpoints dead and an IPv6 one live, A answers fail-open and AAAA the
//!   live address (no CNAME beside them); with every endpoint dead, every
//!   type gets the CNAME, and its target, held by the TS's zone, is chased
//!   as the zone's own CNAMEs are;
//! * a view's group order is a hard restriction: its groups dead and
//!   another live, `servfail` answers SERVFAIL and fail-open answers only
//!   the view's endpoints, never the other group's;
//! * service answers carry the TS's NSID when asked;
//! * `when_all_down = "servfail"` behind an LS with `[ls.cache]`: the TS's
//!   SERVFAIL (AA=1, an Extended DNS Error saying no endpoint is live) is
//!   passed on, never replaced by the stale answer of the dead endpoint;
//!   but it is not final: behind a replicated LS, a replica that sees the
//!   endpoints down does not keep the one that sees them up from answering;
//! * `dnslb check` refuses a service in a secondary zone below its file
//!   zone, naming the service's file and line.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::{RData, RecordType};
use tokio::net::TcpListener;

use crate::kit::{ServiceTs, ZoneDir, free_port, nsid_of, poll_until_async, query, run_dnslb};

/// How long an endpoint's death may take to show: checks every 100 ms, 2
/// in a row, plus slack for a loaded machine.
const LIMIT: Duration = Duration::from_secs(10);

/// example.org with the fallback's target, `sorry A 192.0.2.99`.
const ZONE: &str = "$ORIGIN example.org.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.53\nsorry A 192.0.2.99\n";

/// The service's `check` line: tcp on `port`, fast.
fn check(port: u16) -> String {
    format!(
        "check = {{ kind = \"tcp\", port = {port}, interval_ms = 100, timeout_ms = 500, rise = 2, fall = 2 }}\n"
    )
}

/// The answer of `ts` to `name qtype` from 127.0.0.1.
async fn ask(ts: &ServiceTs, name: &str, qtype: RecordType) -> Message {
    ts.ask(name, qtype).await
}

/// The answer records of `m` as text: `CNAME target`, `A addr`, `AAAA addr`.
fn records(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| match &r.data {
            RData::CNAME(c) => format!("{} CNAME {}", r.name, c.0),
            RData::A(a) => format!("{} A {}", r.name, a.0),
            RData::AAAA(a) => format!("{} AAAA {}", r.name, a.0),
            other => format!("{} {other:?}", r.name),
        })
        .collect()
}

/// Asks until `want` holds for `records` of the answer; the last answer.
async fn until(ts: &ServiceTs, name: &str, qtype: RecordType, want: &[&str]) -> Message {
    let mut last = None;
    let got = poll_until_async(LIMIT, Duration::from_millis(50), async || {
        let m = ask(ts, name, qtype).await;
        let ok = records(&m) == want;
        last = Some(m.clone());
        ok.then_some(m)
    })
    .await;
    got.unwrap_or_else(|| panic!("{name} {qtype}: wanted {want:?}, last {last:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_cname_is_one_decision_for_the_name_and_its_target_is_chased() {
    let dir = ZoneDir::new();
    // One port on 127.0.0.1 and ::1.
    let (v4, v6, port) = loop {
        let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = v4.local_addr().unwrap().port();
        if let Ok(v6) = TcpListener::bind((Ipv6Addr::LOCALHOST, port)).await {
            break (v4, v6, port);
        }
    };
    let services = format!(
        "[[ts.service]]\nname = \"ds.example.org\"\nttl = 5\n\
         when_all_down = {{ fallback = \"sorry.example.org\" }}\n{}\
         endpoint = [ {{ addr = \"127.0.0.1\" }}, {{ addr = \"::1\" }} ]\n",
        check(port)
    );
    let ts = ServiceTs::start_in(&dir, "example.org", ZONE, "", &services).await;
    let name = "ds.example.org";
    until(&ts, name, RecordType::A, &["ds.example.org. A 127.0.0.1"]).await;
    until(&ts, name, RecordType::AAAA, &["ds.example.org. AAAA ::1"]).await;

    // IPv4 dead, IPv6 live: no CNAME at the name for any type; A answers
    // fail-open (its every endpoint), AAAA the live one, TXT the NODATA.
    drop(v4);
    let down = poll_until_async(LIMIT, Duration::from_millis(50), async || {
        let mut metrics = String::new();
        ts.table.write_service_metrics(&mut metrics);
        metrics.contains("endpoint=\"127.0.0.1\"} 0").then_some(())
    })
    .await;
    assert!(down.is_some(), "127.0.0.1 never went down");
    let a = ask(&ts, name, RecordType::A).await;
    assert_eq!(records(&a), ["ds.example.org. A 127.0.0.1"], "{a:?}");
    let aaaa = ask(&ts, name, RecordType::AAAA).await;
    assert_eq!(records(&aaaa), ["ds.example.org. AAAA ::1"], "{aaaa:?}");
    let txt = ask(&ts, name, RecordType::TXT).await;
    assert_eq!(txt.metadata.response_code, ResponseCode::NoError);
    assert!(txt.answers.is_empty(), "{txt:?}");

    // Every endpoint dead: the CNAME for every type, its target chased in
    // the zone (A: the target's address; AAAA: the target's NODATA).
    drop(v6);
    let cname = "ds.example.org. CNAME sorry.example.org.";
    let a = until(
        &ts,
        name,
        RecordType::A,
        &[cname, "sorry.example.org. A 192.0.2.99"],
    )
    .await;
    assert!(a.metadata.authoritative);
    assert_eq!(a.answers[0].ttl, 5, "the service's ttl");
    let aaaa = ask(&ts, name, RecordType::AAAA).await;
    assert_eq!(records(&aaaa), [cname], "{aaaa:?}");
    assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
    assert_eq!(aaaa.authorities[0].record_type(), RecordType::SOA);
    for t in [RecordType::TXT, RecordType::MX, RecordType::CNAME] {
        let m = ask(&ts, name, t).await;
        assert_eq!(records(&m), [cname], "{t}: {m:?}");
    }
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_s_group_order_is_a_hard_restriction() {
    let dir = ZoneDir::new();
    // dc1: 127.0.0.1 live; dc2: 127.0.0.4, nothing listening.
    let port = free_port();
    let _dc1 = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .unwrap();
    let body = format!(
        "select = \"failover\"\n{}endpoint = [ {{ addr = \"127.0.0.1\", group = \"dc1\" }}, {{ addr = \"127.0.0.4\", group = \"dc2\" }} ]\n\
         view = [ {{ clients = [\"127.0.0.2/32\"], groups = [\"dc2\"] }} ]\n",
        check(port)
    );
    let services = format!(
        "[[ts.service]]\nname = \"v.example.org\"\nwhen_all_down = \"servfail\"\n{body}\
         [[ts.service]]\nname = \"va.example.org\"\n{body}"
    );
    let ts = ServiceTs::start_in(&dir, "example.org", ZONE, "", &services).await;
    // Outside the view: dc1, once dc2 is seen down (it is not dc1's anyway).
    until(
        &ts,
        "va.example.org",
        RecordType::A,
        &["va.example.org. A 127.0.0.1"],
    )
    .await;
    let view = IpAddr::from([127, 0, 0, 2]);
    let got = poll_until_async(LIMIT, Duration::from_millis(50), async || {
        let m = ts.ask_from(view, "v.example.org", RecordType::A).await;
        (m.metadata.response_code == ResponseCode::ServFail).then_some(m)
    })
    .await;
    assert!(got.is_some(), "the view's group dead: SERVFAIL");
    // Fail-open: the view's endpoints only, not dc1's live one.
    let m = ts.ask_from(view, "va.example.org", RecordType::A).await;
    assert_eq!(records(&m), ["va.example.org. A 127.0.0.4"], "{m:?}");
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_answers_carry_the_nsid_when_asked() {
    let dir = ZoneDir::new();
    let services = "[[ts.service]]\nname = \"www.example.org\"\n\
                    endpoint = [ { addr = \"192.0.2.1\" } ]\n\
                    when_all_down = \"servfail\"\n";
    let ts = ServiceTs::start_in(&dir, "example.org", ZONE, "nsid = \"ts-svc\"\n", services).await;
    for (name, qtype) in [
        ("www.example.org", RecordType::A),
        ("www.example.org", RecordType::AAAA),
        ("sorry.example.org", RecordType::A),
    ] {
        let mut q = query(name, qtype, Some(1232));
        if let Some(e) = q.edns.as_mut() {
            e.options_mut()
                .insert(EdnsOption::NSID(NSIDPayload::new(Vec::new()).unwrap()));
        }
        let m = crate::kit::udp(ts.addr, &q).await;
        assert_eq!(
            nsid_of(&m).as_deref(),
            Some(&b"ts-svc"[..]),
            "{name} {qtype}: {m:?}"
        );
        // Without asking: none.
        let m = ask(&ts, name, qtype).await;
        assert!(m.edns.is_none(), "{name} {qtype}");
    }
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servfail_behind_the_ls_cache_is_passed_on_not_the_stale_dead_endpoint() {
    use crate::kit::{ls_config, start_ls, udp};
    let dir = ZoneDir::new();
    let port = free_port();
    let endpoint = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .unwrap();
    let services = format!(
        "[[ts.service]]\nname = \"down.example.org\"\nttl = 1\nwhen_all_down = \"servfail\"\n{}\
         endpoint = [ {{ addr = \"127.0.0.1\" }} ]\n",
        check(port)
    );
    let ts = ServiceTs::start_in(&dir, "example.org", ZONE, "", &services).await;
    let mut cfg = ls_config(&[("ts1", ts.addr)]);
    cfg.cache = Some(dnslb::config::CacheConfig::default());
    let ls = start_ls(cfg).await;
    let name = "down.example.org";
    let live = poll_until_async(LIMIT, Duration::from_millis(50), async || {
        let m = udp(ls.addr, &query(name, RecordType::A, Some(1232))).await;
        (records(&m) == ["down.example.org. A 127.0.0.1"]).then_some(())
    })
    .await;
    assert!(
        live.is_some(),
        "the live endpoint through the LS (and cached)"
    );

    drop(endpoint);
    // The TS's own SERVFAIL: AA=1 and an Extended DNS Error saying why.
    let at_ts = poll_until_async(LIMIT, Duration::from_millis(50), async || {
        let m = crate::kit::udp(ts.addr, &query(name, RecordType::A, Some(1232))).await;
        (m.metadata.response_code == ResponseCode::ServFail).then_some(m)
    })
    .await
    .expect("the TS answers SERVFAIL once the endpoint is down");
    assert!(at_ts.metadata.authoritative, "{at_ts:?}");
    let ede = at_ts
        .edns
        .as_ref()
        .and_then(|e| e.option(EdnsCode::Unknown(15)).cloned());
    assert!(
        matches!(&ede, Some(EdnsOption::Unknown(15, data)) if data.ends_with(b"no live endpoint (when_all_down = servfail)")),
        "{ede:?}"
    );
    // Through the LS, once the cached answer's second is over: SERVFAIL,
    // never the dead endpoint from the cache, stale.
    let through = poll_until_async(LIMIT, Duration::from_millis(100), async || {
        let m = udp(ls.addr, &query(name, RecordType::A, Some(1232))).await;
        (m.metadata.response_code == ResponseCode::ServFail).then_some(())
    })
    .await;
    let stats = || ls.balancer.state().cache.as_ref().unwrap().stats();
    assert!(
        through.is_some(),
        "the LS kept answering the dead endpoint: {:?}",
        stats()
    );
    for _ in 0..5 {
        let m = udp(ls.addr, &query(name, RecordType::A, Some(1232))).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");
        assert!(m.answers.is_empty(), "{m:?}");
    }
    assert_eq!(stats().stale, 0, "no stale answer served");
    ls.stop().await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_ls_asks_the_replica_that_sees_the_endpoint_up_after_a_servfail() {
    use crate::kit::{ls_config, start_ls, udp};
    // Two replicas of one service, `servfail` when all are down: one
    // checks a closed port (a partition: it sees the endpoint down), the
    // other an open one (it sees it up).
    let open = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let service = |port: u16| {
        format!(
            "[[ts.service]]\nname = \"rep.example.org\"\nttl = 1\nwhen_all_down = \"servfail\"\n{}\
             endpoint = [ {{ addr = \"127.0.0.1\" }} ]\n",
            check(port)
        )
    };
    let (dir1, dir2) = (ZoneDir::new(), ZoneDir::new());
    let cut = ServiceTs::start_in(&dir1, "example.org", ZONE, "", &service(free_port())).await;
    let up = ServiceTs::start_in(
        &dir2,
        "example.org",
        ZONE,
        "",
        &service(open.local_addr().unwrap().port()),
    )
    .await;
    let name = "rep.example.org";
    let seen = poll_until_async(LIMIT, Duration::from_millis(50), async || {
        let a = udp(cut.addr, &query(name, RecordType::A, Some(1232))).await;
        let b = udp(up.addr, &query(name, RecordType::A, Some(1232))).await;
        (a.metadata.response_code == ResponseCode::ServFail
            && a.metadata.authoritative
            && records(&b) == ["rep.example.org. A 127.0.0.1"])
        .then_some(())
    })
    .await;
    assert!(seen.is_some(), "one replica sees the endpoint down, one up");
    let mut cfg = ls_config(&[("cut", cut.addr), ("up", up.addr)]);
    cfg.strategy = dnslb::config::Strategy::Hedge;
    cfg.layout = dnslb::config::Layout::Replicated;
    let ls = start_ls(cfg).await;
    // Every answer through the LS is the live endpoint, over UDP (the fast
    // path) and TCP (the async one): the cut replica's SERVFAIL is not
    // final while the other may answer.
    for i in 0..40 {
        let q = query(name, RecordType::A, Some(1232));
        let m = if i % 4 == 3 {
            crate::kit::tcp(ls.addr, &q).await
        } else {
            udp(ls.addr, &q).await
        };
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "query {i}: {m:?}"
        );
        assert_eq!(records(&m), ["rep.example.org. A 127.0.0.1"], "query {i}");
    }
    ls.stop().await;
    cut.stop().await;
    up.stop().await;
    drop(open);
}

#[test]
fn check_refuses_a_service_in_a_secondary_zone_below_its_file_zone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("example.org.zone"), ZONE).unwrap();
    let port = free_port();
    for name in ["www.example.org", "app.www.example.org"] {
        let config = format!(
            "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:{port}\"\n\
             zones = [\"example.org.zone\", {{ name = \"www.example.org\", primary = \"127.0.0.1:5300\" }}]\n\
             [[ts.service]]\nname = \"{name}\"\nendpoint = [ {{ addr = \"192.0.2.1\" }} ]\n"
        );
        std::fs::write(dir.path().join("c.toml"), config).unwrap();
        let out = run_dnslb(&["check", "-c", "c.toml"], dir.path(), None, LIMIT);
        assert!(!out.status.success(), "{name}: accepted:\n{}", out.stdout);
        assert!(
            out.stderr.contains("c.toml:6:")
                && out
                    .stderr
                    .contains(&format!("{name}. is in www.example.org., a secondary zone")),
            "{name}:\n{}",
            out.stderr
        );
    }
}

#[test]
fn check_names_the_service_and_its_line_for_too_many_endpoints_of_one_family() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("example.org.zone"), ZONE).unwrap();
    let endpoints: Vec<String> = (0..65_536u32)
        .map(|i| {
            format!(
                "{{ addr = \"10.{}.{}.{}\" }}",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            )
        })
        .collect();
    let config = format!(
        "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:{}\"\nzones = [\"example.org.zone\"]\n\
         [[ts.service]]\nname = \"big.example.org\"\nendpoint = [ {} ]\n",
        free_port(),
        endpoints.join(", ")
    );
    std::fs::write(dir.path().join("c.toml"), config).unwrap();
    let out = run_dnslb(
        &["check", "-c", "c.toml"],
        dir.path(),
        None,
        Duration::from_secs(120),
    );
    assert!(!out.status.success(), "accepted:\n{}", out.stdout);
    assert!(
        out.stderr
            .contains("c.toml:6: ts.service.name: big.example.org. has 65536 IPv4 endpoints"),
        "{}",
        out.stderr
    );
}
