//! The answers a query rule that acts makes up: the question, RA=0, AA,
//! the rule's EDE; spoofed addresses by family, NODATA for other types, a
//! spoofed CNAME.
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use super::*;
use crate::config::parse_name;
use crate::dns::Transport;

/// The answer `s` makes up for `q`, decoded.
fn made(s: &RuleSet, q: &Q, transport: Transport) -> Option<Message> {
    let h = s.judge(&q.view(), Instant::now())?;
    answer(s, h, &q.raw, transport).map(|b| Message::from_vec(&b).unwrap())
}

fn ede_of(m: &Message) -> Option<u16> {
    let e = m.edns.as_ref()?;
    e.options().as_ref().iter().find_map(|(code, opt)| {
        (u16::from(*code) == 15).then(|| match opt {
            hickory_proto::rr::rdata::opt::EdnsOption::Unknown(_, data) => {
                u16::from_be_bytes([data[0], data[1]])
            }
            _ => 0,
        })
    })
}

#[test]
fn made_up_answers_carry_the_question_ra0_aa_and_the_ede() {
    let rules = [
        rule("ref", "qtype = [\"MX\"]", "\"refuse\""),
        rule("nx", "qtype = [\"TXT\"]", "\"nxdomain\"") + "aa = true\nede = 16\n",
        rule("sf", "qtype = [\"SRV\"]", "\"servfail\"") + "ede = 17\n",
        rule("dr", "qtype = [\"NS\"]", "\"drop\""),
        rule("tc", "qtype = [\"ANY\"]", "\"truncate\""),
    ]
    .concat();
    let s = set(&rules);
    for (qtype, rcode, aa, ede) in [
        (RecordType::MX, ResponseCode::Refused, false, Some(15)),
        (RecordType::TXT, ResponseCode::NXDomain, true, Some(16)),
        (RecordType::SRV, ResponseCode::ServFail, false, Some(17)),
        (RecordType::ANY, ResponseCode::NoError, false, None),
    ] {
        let q = Q::new("Www.Example.COM.", qtype);
        let m = made(&s, &q, Transport::Udp).unwrap();
        assert_eq!(m.metadata.response_code, rcode, "{qtype}");
        assert_eq!(m.metadata.id, 0x1234);
        assert!(m.metadata.recursion_desired && !m.metadata.recursion_available);
        assert_eq!(m.metadata.authoritative, aa, "{qtype}");
        assert_eq!(m.metadata.truncation, qtype == RecordType::ANY);
        assert_eq!(m.queries[0].name().to_ascii(), "Www.Example.COM.");
        assert!(m.answers.is_empty() && m.authorities.is_empty());
        assert_eq!(ede_of(&m), ede, "{qtype}");
        // A client without OPT gets none back.
        let m = made(&s, &q.plain(), Transport::Udp).unwrap();
        assert!(m.edns.is_none());
        assert_eq!(m.metadata.response_code, rcode);
    }
    assert!(made(&s, &Q::new("x.", RecordType::NS), Transport::Udp).is_none());
}

#[test]
fn spoofed_answers_by_family_nodata_for_other_types() {
    let rules = [
        rule(
            "sp",
            "suffix = [\"spoof.test\"]",
            "{ spoof = [\"192.0.2.1\", \"2001:db8::1\", \"192.0.2.2\"], ttl = 30 }",
        ),
        rule(
            "v4",
            "suffix = [\"v4.test\"]",
            "{ spoof = [\"192.0.2.3\"] }",
        ),
        rule(
            "cn",
            "suffix = [\"cname.test\"]",
            "{ spoof_cname = \"target.example.\" }",
        ),
    ]
    .concat();
    let s = set(&rules);
    let data = |m: &Message| -> Vec<(String, u32, RData)> {
        m.answers
            .iter()
            .map(|r| (r.name.to_ascii(), r.ttl, r.data.clone()))
            .collect()
    };
    let a = |t: &str| RData::A(t.parse::<std::net::Ipv4Addr>().unwrap().into());
    let m = made(
        &s,
        &Q::new("www.spoof.test.", RecordType::A),
        Transport::Udp,
    )
    .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        data(&m),
        [
            ("www.spoof.test.".into(), 30, a("192.0.2.1")),
            ("www.spoof.test.".into(), 30, a("192.0.2.2"))
        ]
    );
    assert_eq!(ede_of(&m), Some(15));
    let m = made(
        &s,
        &Q::new("www.spoof.test.", RecordType::AAAA),
        Transport::Tcp,
    )
    .unwrap();
    assert_eq!(
        data(&m),
        [(
            "www.spoof.test.".into(),
            30,
            RData::AAAA("2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().into())
        )]
    );
    // NODATA: another type, or a family the list does not have; no SOA.
    for (name, qtype) in [
        ("spoof.test.", RecordType::MX),
        ("v4.test.", RecordType::AAAA),
    ] {
        let m = made(&s, &Q::new(name, qtype), Transport::Udp).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(
            m.answers.is_empty() && m.authorities.is_empty(),
            "{name} {qtype}"
        );
    }
    let m = made(&s, &Q::new("a.cname.test.", RecordType::A), Transport::Udp).unwrap();
    assert_eq!(
        data(&m),
        [(
            "a.cname.test.".into(),
            SPOOF_TTL,
            RData::CNAME(hickory_proto::rr::rdata::CNAME(
                parse_name("target.example").unwrap()
            ))
        )]
    );
}

const SPOOF_TTL: u32 = crate::config::SPOOF_TTL_DEFAULT;
