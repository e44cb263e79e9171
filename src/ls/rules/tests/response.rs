//! The `[[ls.response_rule]]`s on made-up backend answers: file order,
//! each selector, TTLs clamped.
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use super::*;
use crate::config::parse_name;

/// An answer from a backend: `rcode`, the question `qtype`, answer records
/// `answers` (type A at TTL 300, or CNAME), an OPT.
fn answer(rcode: ResponseCode, qtype: RecordType, cname: bool, n: usize) -> Vec<u8> {
    let mut m = Message::from_vec(&query_bytes("www.example.org.", qtype, Some(1232))).unwrap();
    m.metadata.message_type = hickory_proto::op::MessageType::Response;
    m.metadata.response_code = rcode;
    let name = parse_name("www.example.org").unwrap();
    if cname {
        m.add_answer(hickory_proto::rr::Record::from_rdata(
            name.clone(),
            300,
            RData::CNAME(hickory_proto::rr::rdata::CNAME(
                parse_name("t.example").unwrap(),
            )),
        ));
    }
    for i in 0..n {
        m.add_answer(hickory_proto::rr::Record::from_rdata(
            name.clone(),
            300 + i as u32,
            RData::A(std::net::Ipv4Addr::new(192, 0, 2, i as u8).into()),
        ));
    }
    m.to_vec().unwrap()
}

fn rrule(name: &str, m: &str, action: &str) -> String {
    format!("[[ls.response_rule]]\nname = \"{name}\"\nmatch = {{ {m} }}\naction = {action}\n")
}

#[test]
fn response_rules_decide_in_file_order() {
    let c = ls(&[
        rrule("seen", "rcode = [\"NXDOMAIN\"]", "\"log\""),
        rrule("nx", "rcode = [\"NXDOMAIN\"], qtype = [\"MX\"]", "\"drop\""),
        rrule("sf", "rcode = [\"SERVFAIL\"]", "\"servfail\""),
        rrule("cn", "answer_type = [\"CNAME\"]", "\"drop\""),
        rrule(
            "big",
            "min_size = 200",
            "{ limit_ttl = { min = 60, max = 100 } }",
        ),
    ]
    .concat());
    let r = ResponseRules::new(&c, None);
    let now = Instant::now();
    let nx = ResponseCode::NXDomain;
    assert_eq!(
        r.judge(&answer(nx, RecordType::MX, false, 0), now),
        ResponseVerdict::Drop
    );
    assert_eq!(
        r.judge(&answer(nx, RecordType::A, false, 0), now),
        ResponseVerdict::Pass
    );
    let sf = answer(ResponseCode::ServFail, RecordType::A, false, 0);
    assert_eq!(r.judge(&sf, now), ResponseVerdict::Servfail);
    let cn = answer(ResponseCode::NoError, RecordType::A, true, 1);
    assert_eq!(r.judge(&cn, now), ResponseVerdict::Drop);
    let small = answer(ResponseCode::NoError, RecordType::A, false, 1);
    assert!(small.len() < 200);
    assert_eq!(r.judge(&small, now), ResponseVerdict::Pass);
    let big = answer(ResponseCode::NoError, RecordType::A, false, 10);
    assert_eq!(
        r.judge(&big, now),
        ResponseVerdict::LimitTtl { min: 60, max: 100 }
    );
    let counts: Vec<_> = r.counts().collect();
    assert_eq!(
        counts,
        [
            ("seen", "log", 2),
            ("nx", "drop", 1),
            ("sf", "servfail", 1),
            ("cn", "drop", 1),
            ("big", "limit_ttl", 1)
        ]
    );
}

#[test]
fn limit_ttls_clamps_every_record_but_the_opt() {
    let mut a = answer(ResponseCode::NoError, RecordType::A, true, 3);
    assert!(limit_ttls(&mut a, 301, 301));
    let m = Message::from_vec(&a).unwrap();
    assert!(m.answers.iter().all(|r| r.ttl == 301));
    assert_eq!(m.edns.as_ref().unwrap().max_payload(), 1232);
    let mut a = answer(ResponseCode::NoError, RecordType::A, false, 3);
    assert!(limit_ttls(&mut a, 0, 10));
    let m = Message::from_vec(&a).unwrap();
    assert!(m.answers.iter().all(|r| r.ttl == 10));
    // A message cut short: false, never a panic.
    let mut cut = a[..a.len() - 3].to_vec();
    assert!(!limit_ttls(&mut cut, 0, 10));
}
