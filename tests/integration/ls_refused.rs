//! A backend's REFUSED ("not my zone") and zone transfers at the LS: when
//! every backend refused,
//! the client gets the REFUSED (as dnsdist passes it on), not a SERVFAIL
//! "every backend failed"; a refusal is no error of the backend (a stranger
//! cannot raise `dnslb_backend_errors_total` at will); under `partitioned`,
//! a backend that refused holds none of the name's zone, so the other's
//! NXDOMAIN is passed on with its own SOA; AXFR and IXFR are answered
//! REFUSED at the door and never forwarded (a TS may trust the LS's address).
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

use dnslb::config::{Layout, Order, Strategy};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::kit::{self, Fake, TestLs, Via, error_answer};

fn refused(q: &[u8]) -> Vec<u8> {
    error_answer(q, 5)
}

/// An authoritative NXDOMAIN to `q` with the zone's SOA
/// (`zone1.test. 60 SOA ns.zone1.test. ...`).
fn nxdomain(q: &[u8]) -> Vec<u8> {
    let mut m = Message::from_vec(q).unwrap();
    m.metadata.message_type = hickory_proto::op::MessageType::Response;
    m.metadata.authoritative = true;
    m.metadata.response_code = ResponseCode::NXDomain;
    let zone = hickory_proto::rr::Name::from_ascii("zone1.test.").unwrap();
    let soa = hickory_proto::rr::rdata::SOA::new(
        hickory_proto::rr::Name::from_ascii("ns.zone1.test.").unwrap(),
        hickory_proto::rr::Name::from_ascii("hostmaster.zone1.test.").unwrap(),
        7,
        3600,
        600,
        86400,
        60,
    );
    m.authorities.push(hickory_proto::rr::Record::from_rdata(
        zone,
        60,
        hickory_proto::rr::RData::SOA(soa),
    ));
    m.to_vec().unwrap()
}

async fn ls(backends: &[(&str, SocketAddr)], strategy: Strategy, layout: Layout) -> TestLs {
    let mut cfg = kit::ls_config(backends);
    cfg.workers = 1;
    cfg.timeout_ms = 1500;
    cfg.order = Order::Fixed;
    cfg.strategy = strategy;
    cfg.layout = layout;
    kit::start_ls(cfg).await
}

fn errors(ls: &TestLs) -> Vec<u64> {
    ls.balancer
        .state()
        .backends
        .iter()
        .map(|b| b.stats.errors.load(Relaxed))
        .collect()
}

/// Every backend answers REFUSED (a name outside their zones, CHAOS
/// `version.bind`): the client gets REFUSED, at once, and no backend's error
/// counter moved; nothing was made up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_refusing_passes_the_refusal_on_and_counts_no_error() {
    let r1 = Fake::answering(refused).await;
    let r2 = Fake::answering(refused).await;
    for layout in [Layout::Replicated, Layout::Partitioned] {
        for strategy in [Strategy::Hedge, Strategy::Race, Strategy::Sequential] {
            let ctx = format!("{layout} {strategy}");
            let ls = ls(&[("r1", r1.addr), ("r2", r2.addr)], strategy, layout).await;
            let q = kit::query("www.elsewhere.test.", RecordType::A, Some(1232));
            let m = kit::udp(ls.addr, &q).await;
            let synthesized = ls.balancer.metrics().synthesized.load(Relaxed);
            let errs = errors(&ls);
            ls.stop().await;
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::Refused,
                "{ctx}: {}",
                kit::show(&m)
            );
            assert_eq!(synthesized, 0, "{ctx}: made up");
            assert_eq!(errs, [0, 0], "{ctx}: backend errors counted");
        }
    }
}

/// One backend REFUSED, the other SERVFAIL: still SERVFAIL (no usable
/// answer), the refusing one not counted as an error, and the EDE text says
/// which refused and which failed instead of "every backend failed".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_beside_a_failure_is_servfail_with_a_true_text() {
    let r1 = Fake::answering(refused).await;
    let f2 = Fake::answering(|q| error_answer(q, 2)).await;
    let ls = ls(
        &[("r1", r1.addr), ("f2", f2.addr)],
        Strategy::Race,
        Layout::Replicated,
    )
    .await;
    let q = kit::query("www.elsewhere.test.", RecordType::A, Some(1232));
    let m = kit::udp(ls.addr, &q).await;
    let errs = errors(&ls);
    ls.stop().await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    let (code, text) = kit::ede(&m).expect("an EDE");
    assert_eq!(code, 22);
    assert_eq!(text, "no usable answer: refused by r1; failed: f2");
    assert_eq!(errs, [0, 1]);
}

/// Partitioned over two ordinary authoritative servers: one
/// holds zone1.test and says NXDOMAIN, the other serves another zone and
/// says REFUSED. The client gets the first's NXDOMAIN with its own SOA, not
/// a made-up one ("negative answers not conclusive").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_nxdomain_beside_a_refusal_is_passed_on() {
    let holder = Fake::answering(nxdomain).await;
    let other = Fake::answering(refused).await;
    for (first, second) in [("other", "holder"), ("holder", "other")] {
        let addr = |n: &str| {
            if n == "holder" {
                holder.addr
            } else {
                other.addr
            }
        };
        let ls = ls(
            &[(first, addr(first)), (second, addr(second))],
            Strategy::Hedge,
            Layout::Partitioned,
        )
        .await;
        let q = kit::query("nope.zone1.test.", RecordType::A, Some(1232));
        let m = kit::udp(ls.addr, &q).await;
        let synthesized = ls.balancer.metrics().synthesized.load(Relaxed);
        ls.stop().await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "{first} first"
        );
        assert!(m.metadata.authoritative, "{first} first: the holder's AA");
        let soa = m.authorities.first().map(|r| r.name.to_ascii());
        assert_eq!(
            soa.as_deref(),
            Some("zone1.test."),
            "{first} first: its SOA"
        );
        assert_eq!(synthesized, 0, "{first} first: made up");
    }
}

/// AXFR over TCP and IXFR over UDP and TCP sent to the LS: REFUSED at once
/// (EDE "Not Supported"), and no backend ever sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_transfers_are_refused_at_the_door_never_forwarded() {
    let backend = Fake::udp_tcp(
        |q, _| kit::Reply::Now(kit::empty_answer(q)),
        kit::empty_answer,
    )
    .await;
    let ls = ls(&[("b", backend.addr)], Strategy::Hedge, Layout::Replicated).await;
    for (qtype, via) in [
        (RecordType::AXFR, Via::Tcp),
        (RecordType::IXFR, Via::Udp),
        (RecordType::IXFR, Via::Tcp),
        (RecordType::AXFR, Via::Udp),
    ] {
        let q = kit::query("example.test.", qtype, Some(1232));
        let m = kit::ask_via(ls.addr, &q, via).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::Refused,
            "{qtype} over {via:?}"
        );
        assert_eq!(
            kit::ede(&m).map(|e| e.0),
            Some(21),
            "{qtype}: EDE Not Supported"
        );
    }
    let sent: u64 = ls
        .balancer
        .state()
        .backends
        .iter()
        .map(|b| b.stats.sent.load(Relaxed))
        .sum();
    ls.stop().await;
    assert_eq!(sent, 0, "a transfer was forwarded");
    assert_eq!(
        backend.queries.load(Relaxed),
        0,
        "the backend saw a transfer"
    );
}
