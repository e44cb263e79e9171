//! The LS's query and answer counters agree: every
//! answer counted in `dnslb_answers_total` answers a query counted in
//! `dnslb_queries_total`, the ones answered at the door (a NOTIFY
//! acknowledged, a malformed query, a zone transfer) too;
//! and an extended rcode is counted by its full value, BADVERS as BADVERS
//! and BADCOOKIE as BADCOOKIE, not by the header's low 4 bits.
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use crate::kit::{self, Fake, TestLs};

fn totals(ls: &TestLs) -> (u64, u64) {
    let m = ls.balancer.metrics();
    let answers = m.answers.iter().map(|c| c.load(Relaxed)).sum();
    (m.queries.load(Relaxed), answers)
}

/// A NOTIFY acknowledged, a message without a question (FORMERR), an AXFR
/// (REFUSED at the door) and one query forwarded: four queries, four
/// answers. Before, the LS counted the door's answers but not their queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_counted_answers_a_query_counted() {
    let backend = Fake::answering(kit::empty_answer).await;
    let mut cfg = kit::ls_config(&[("b", backend.addr)]);
    cfg.workers = 1;
    let ls = kit::start_ls(cfg).await;

    let mut notify = Message::new(0x4242, MessageType::Query, OpCode::Notify);
    notify.add_query(Query::query(
        Name::from_ascii("example.test.").unwrap(),
        RecordType::SOA,
    ));
    let ack = kit::udp_raw(ls.addr, &notify.to_vec().unwrap()).await;
    assert!(ack.is_some(), "NOTIFY acknowledged");
    assert_eq!(totals(&ls), (1, 1), "after the NOTIFY");

    // A header alone: QDCOUNT 0, answered FORMERR.
    let formerr = kit::udp_raw(ls.addr, &[0, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]).await;
    assert!(formerr.is_some(), "FORMERR");
    assert_eq!(totals(&ls), (2, 2), "after the FORMERR");

    let axfr = kit::query("example.test.", RecordType::AXFR, None);
    kit::tcp(ls.addr, &axfr).await;
    kit::udp(
        ls.addr,
        &kit::query("www.example.test.", RecordType::A, None),
    )
    .await;
    let after = totals(&ls);
    ls.stop().await;
    assert_eq!(after, (4, 4), "after the transfer and a query");
}

/// A backend's answer whose OPT carries the upper bits of its rcode
/// (BADVERS = 16: header 0, OPT 1; BADCOOKIE = 23: header 7, OPT 1), passed
/// to a client that sent EDNS: counted under 16 and 23, not as NOERROR and
/// YXRRSET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_rcode_is_counted_by_its_full_value() {
    fn badvers(q: &[u8]) -> Vec<u8> {
        kit::wire_answer(q, 1)
    }
    fn badcookie(q: &[u8]) -> Vec<u8> {
        let mut r = kit::wire_answer(q, 1);
        r[3] = 7;
        r
    }
    for (what, answer, full, low) in [
        ("BADVERS", badvers as fn(&[u8]) -> Vec<u8>, 16, 0),
        ("BADCOOKIE", badcookie, 23, 7),
    ] {
        let backend = Fake::answering(answer).await;
        let mut cfg = kit::ls_config(&[("b", backend.addr)]);
        cfg.workers = 1;
        let ls = kit::start_ls(cfg).await;
        let q = kit::query("x.example.test.", RecordType::A, Some(1232));
        let got = kit::udp_exchange_raw(ls.addr, &q, Duration::from_secs(5)).await;
        assert!(got.is_some(), "{what}: no answer");
        let m = ls.balancer.metrics();
        let by = |i: usize| m.answers[i].load(Relaxed);
        let (full_n, low_n) = (by(full), by(low));
        ls.stop().await;
        assert_eq!((full_n, low_n), (1, 0), "{what}: counted under {low}");
    }
}

/// Hostile read of the fixes (M2): a TCP query refused at `max_inflight`
/// got its SERVFAIL but was counted nowhere (neither an answer nor a shed
/// query; ~700,000 such SERVFAILs left every counter at 0). Now it is
/// counted as both, as the UDP path counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_query_refused_at_max_inflight_is_counted_shed_and_answered() {
    let slow =
        Fake::udp(|q, _| kit::Reply::After(Duration::from_millis(300), kit::empty_answer(q))).await;
    let mut cfg = kit::ls_config(&[("slow", slow.addr)]);
    cfg.max_inflight = 1;
    cfg.hedge_budget_pct = 0.0;
    let ls = kit::start_ls(cfg).await;
    let mut s = tokio::net::TcpStream::connect(ls.addr).await.unwrap();
    for (id, name) in [(1u16, "a.example."), (2, "b.example.")] {
        let mut m = kit::query(name, RecordType::A, None);
        m.metadata.id = id;
        kit::tcp_send(&mut s, &m.to_vec().unwrap()).await;
    }
    let mut rcodes = Vec::new();
    for _ in 0..2 {
        let raw = kit::tcp_recv(&mut s).await.expect("two answers");
        let m = Message::from_vec(&raw).unwrap();
        rcodes.push((m.metadata.id, m.metadata.response_code));
    }
    rcodes.sort_by_key(|(id, _)| *id);
    assert_eq!(
        rcodes[1].1,
        hickory_proto::op::ResponseCode::ServFail,
        "{rcodes:?}"
    );
    let m = ls.balancer.metrics();
    assert_eq!(m.shed_inflight.load(Relaxed), 1);
    assert_eq!(
        m.answers.get(2).map(|c| c.load(Relaxed)),
        Some(1),
        "one SERVFAIL counted"
    );
    assert_eq!(totals(&ls), (2, 2), "two queries, two answers");
    ls.stop().await;
}
