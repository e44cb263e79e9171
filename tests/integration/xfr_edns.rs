//! EDNS in zone transfers: "If an OPT record is present
//! in a received request, compliant responders MUST include an OPT record
//! in their respective responses" (RFC 6891 §6.1.1; RFC 5936 §2.2.5 asks it
//! of the first AXFR message). NSD and Knot put one in every message.
//!
//! A TS in the test process serves a table of 3,000 names (several AXFR
//! messages); every message of an AXFR over TCP carries an OPT when the
//! request had one, and none when it had none; an IXFR over UDP the same.
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use tokio::net::TcpStream;

use crate::kit::{self, ZoneDir, query, read_frame, tcp_send, udp_exchange};

/// A table of `n` names under `opt.test.`.
fn table(n: usize) -> String {
    let mut t = String::from("ns1.opt.test - NS\nns1.opt.test 192.0.2.53 A\n");
    for i in 0..n {
        t.push_str(&format!(
            "host{i}.opt.test 10.8.{}.{} A\n",
            i >> 8,
            i & 0xff
        ));
    }
    t
}

/// Every message of an AXFR of `opt.test.` from `addr`, asked with EDNS
/// when `edns`.
async fn axfr(addr: std::net::SocketAddr, edns: bool) -> Vec<Message> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let q = query("opt.test.", RecordType::AXFR, edns.then_some(1232));
    tcp_send(&mut s, &q.to_vec().unwrap()).await;
    let mut out: Vec<Message> = Vec::new();
    let soas = |out: &[Message]| {
        out.iter()
            .flat_map(|m| &m.answers)
            .filter(|r| r.record_type() == RecordType::SOA)
            .count()
    };
    while soas(&out) < 2 {
        let raw = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s))
            .await
            .expect("the next message within 5 s")
            .expect("the transfer goes on to its last SOA");
        out.push(Message::from_vec(&raw).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_answers_carry_an_opt_when_the_request_had_one() {
    let dir = ZoneDir::new();
    let zone = dir.write("opt.txt", &table(3000));
    let mut settings = kit::ts_settings(vec![zone]);
    settings.origin = "opt.test.".parse().unwrap();
    let ts = kit::start_ts(settings).await;

    let with = axfr(ts.addr, true).await;
    assert!(with.len() > 2, "several messages: {}", with.len());
    for (i, m) in with.iter().enumerate() {
        let edns = m
            .edns
            .as_ref()
            .unwrap_or_else(|| panic!("AXFR message {i} of {} without an OPT", with.len()));
        assert_eq!(edns.version(), 0);
    }
    let records: usize = with.iter().map(|m| m.answers.len()).sum();
    assert_eq!(records, 3000 + 2 + 2, "SOA, NS, ns1, the hosts, SOA");
    let without = axfr(ts.addr, false).await;
    assert!(
        without.iter().all(|m| m.edns.is_none()),
        "no OPT asked, none sent"
    );

    // IXFR over UDP (the serial we serve: the SOA alone, RFC 1995 §2).
    let soa = kit::soa_serial(&kit::udp(ts.addr, &query("opt.test.", RecordType::SOA, None)).await)
        .unwrap();
    for edns in [true, false] {
        let mut q = query("opt.test.", RecordType::IXFR, edns.then_some(1232));
        let soa_rr = kit::udp(ts.addr, &query("opt.test.", RecordType::SOA, None))
            .await
            .answers[0]
            .clone();
        q.add_authority(soa_rr);
        let m = udp_exchange(ts.addr, &q, Duration::from_secs(2))
            .await
            .expect("an IXFR answer over UDP");
        assert_eq!(kit::soa_serial(&m), Some(soa), "{}", kit::show(&m));
        assert_eq!(m.edns.is_some(), edns, "IXFR over UDP, EDNS {edns}");
    }
    ts.stop().await;
}
