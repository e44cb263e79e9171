//! Test-only module: built under #[cfg(test)] (see `ls/rules/mod.rs`).
//! The rules on made-up queries: each selector, each action, file order,
//! `allow`, rates, the made-up answers, the response rules; and a property
//! test against a plain reading of the config.
use std::net::IpAddr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsCode;
use hickory_proto::rr::{RData, RecordType};

use std::time::{Duration, Instant};

use super::*;
use crate::config::{Config, PoolConfig, parse_name};
use crate::config::{LsConfig, RuleAction, RuleTransport};
use crate::dns::Transport;
use crate::dns::fixtures::query_bytes;

/// The `[ls]` of a config whose rules are `rules` (TOML), with a pool `org`.
fn ls(rules: &str) -> LsConfig {
    let text = format!(
        "[ls]\n[[ls.backend]]\nname = \"b\"\naddr = \"127.0.0.1:5301\"\n\
         [[ls.pool]]\nname = \"org\"\nbackends = [\"b\"]\nzones = [\"example.org\"]\n\
         [[ls.pool]]\nname = \"net\"\nbackends = [\"b\"]\nzones = [\"example.net\"]\n{rules}"
    );
    Config::from_toml(&text, std::path::Path::new("c.toml"))
        .unwrap()
        .ls
        .unwrap()
}

fn set(rules: &str) -> RuleSet {
    RuleSet::new(&ls(rules), None)
}

/// A query's view: `name`, `qtype`, from `client` by `transport`.
struct Q {
    raw: Vec<u8>,
    client: IpAddr,
    transport: RuleTransport,
}

impl Q {
    fn new(name: &str, qtype: RecordType) -> Self {
        Q {
            raw: query_bytes(name, qtype, Some(1232)),
            client: IpAddr::from([192, 0, 2, 1]),
            transport: RuleTransport::Udp,
        }
    }
    fn from(mut self, ip: &str) -> Self {
        self.client = ip.parse().unwrap();
        self
    }
    fn by(mut self, t: RuleTransport) -> Self {
        self.transport = t;
        self
    }
    fn plain(mut self) -> Self {
        let name = self.raw.clone();
        let end = crate::dns::peek_plain_query(&name).unwrap().1;
        self.raw.truncate(end);
        self.raw[11] = 0; // ARCOUNT 0: no OPT
        self
    }
    fn view(&self) -> QueryView<'_> {
        let end = crate::dns::peek_plain_query(&self.raw).unwrap().1;
        QueryView::read(&self.raw, end, self.client, self.transport).unwrap()
    }
}

/// The rule (by name) that acts on `q`, and its act.
fn judge(s: &RuleSet, q: &Q) -> Option<(String, Act)> {
    s.judge(&q.view(), Instant::now())
        .map(|h| (s.name(h.rule).unwrap().to_owned(), h.act))
}

fn hit(name: &str, act: Act) -> Option<(String, Act)> {
    Some((name.to_owned(), act))
}

fn rule(name: &str, m: &str, action: &str) -> String {
    format!("[[ls.rule]]\nname = \"{name}\"\nmatch = {{ {m} }}\naction = {action}\n")
}

#[test]
fn no_rules_no_hit() {
    let s = set("");
    assert!(s.is_empty());
    assert_eq!(judge(&s, &Q::new("example.org.", RecordType::A)), None);
}

#[test]
fn suffix_matches_at_label_boundaries_case_aside() {
    let s = set(&rule(
        "ads",
        "suffix = [\"Ads.Example.COM\", \"tracker.test\"]",
        "\"drop\"",
    ));
    for (name, matched) in [
        ("ads.example.com.", true),
        ("x.y.ADS.example.com.", true),
        ("badads.example.com.", false),
        ("example.com.", false),
        ("a.tracker.test.", true),
        ("tracker.test.", true),
        ("other.test.", false),
    ] {
        let got = judge(&s, &Q::new(name, RecordType::A));
        assert_eq!(got.is_some(), matched, "{name}");
    }
}

#[test]
fn each_selector_alone() {
    let a = RecordType::A;
    let cases: Vec<(&str, Q, bool)> = vec![
        (
            "qtype = [\"ANY\", \"TXT\"]",
            Q::new("x.", RecordType::ANY),
            true,
        ),
        (
            "qtype = [\"ANY\", \"TXT\"]",
            Q::new("x.", RecordType::TXT),
            true,
        ),
        ("qtype = [\"ANY\", \"TXT\"]", Q::new("x.", a), false),
        ("client = [\"192.0.2.0/24\"]", Q::new("x.", a), true),
        (
            "client = [\"192.0.2.0/24\"]",
            Q::new("x.", a).from("198.51.100.1"),
            false,
        ),
        (
            "client = [\"192.0.2.0/24\"]",
            Q::new("x.", a).from("::ffff:192.0.2.9"),
            true,
        ),
        // An IPv4-mapped network holds the IPv4 clients it maps.
        ("client = [\"::ffff:192.0.2.0/120\"]", Q::new("x.", a), true),
        (
            "not_client = [\"::ffff:192.0.2.0/120\"]",
            Q::new("x.", a).from("::ffff:192.0.2.7"),
            false,
        ),
        ("not_client = [\"192.0.2.0/24\"]", Q::new("x.", a), false),
        (
            "not_client = [\"192.0.2.0/24\"]",
            Q::new("x.", a).from("2001:db8::1"),
            true,
        ),
        ("transport = [\"tcp\", \"doh\"]", Q::new("x.", a), false),
        (
            "transport = [\"tcp\", \"doh\"]",
            Q::new("x.", a).by(RuleTransport::Doh),
            true,
        ),
        (
            "transport = [\"dot\"]",
            Q::new("x.", a).by(RuleTransport::Dot),
            true,
        ),
        ("rd = true", Q::new("x.", a), true),
        ("rd = false", Q::new("x.", a), false),
        ("do = false", Q::new("x.", a), true),
        ("do = true", Q::new("x.", a), false),
        ("do = false", Q::new("x.", a).plain(), true),
        ("opcode = \"QUERY\"", Q::new("x.", a), true),
        ("opcode = \"UPDATE\"", Q::new("x.", a), false),
        ("min_labels = 3", Q::new("a.b.c.", a), true),
        ("min_labels = 3", Q::new("b.c.", a), false),
        // "a.b." is 5 bytes of wire form: 1 a 1 b 0.
        ("min_name_len = 5", Q::new("a.b.", a), true),
        ("min_name_len = 6", Q::new("a.b.", a), false),
        ("edns_option = 10", Q::new("x.", a), false),
    ];
    for (m, q, want) in cases {
        let s = set(&rule("r", m, "\"refuse\""));
        assert_eq!(judge(&s, &q).is_some(), want, "{m} on {:?}", q.client);
    }
}

#[test]
fn do_bit_and_an_edns_option_are_read_from_the_opt() {
    let mut m = Message::from_vec(&query_bytes("x.", RecordType::A, Some(1232))).unwrap();
    let mut edns = m.edns.clone().unwrap();
    edns.set_dnssec_ok(true);
    edns.options_mut()
        .insert(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(
            u16::from(EdnsCode::Cookie),
            vec![1, 2, 3, 4, 5, 6, 7, 8],
        ));
    m.set_edns(edns);
    let q = Q {
        raw: m.to_vec().unwrap(),
        ..Q::new("x.", RecordType::A)
    };
    for (m, want) in [
        ("do = true", true),
        ("edns_option = 10", true),
        ("edns_option = 8", false),
        ("do = true, edns_option = 10, rd = true", true),
    ] {
        let s = set(&rule("r", m, "\"drop\""));
        assert_eq!(judge(&s, &q).is_some(), want, "{m}");
    }
}

#[test]
fn all_conditions_must_hold() {
    let s = set(&rule(
        "r",
        "suffix = [\"example.com\"], qtype = [\"A\"], transport = [\"udp\"]",
        "\"drop\"",
    ));
    assert!(judge(&s, &Q::new("www.example.com.", RecordType::A)).is_some());
    assert!(judge(&s, &Q::new("www.example.com.", RecordType::AAAA)).is_none());
    assert!(judge(&s, &Q::new("www.example.net.", RecordType::A)).is_none());
    let tcp = Q::new("www.example.com.", RecordType::A).by(RuleTransport::Tcp);
    assert!(judge(&s, &tcp).is_none());
}

#[test]
fn the_first_rule_in_file_order_acts_and_allow_stops() {
    let rules = [
        rule("narrow", "suffix = [\"www.example.com\"]", "\"nxdomain\""),
        rule("pass", "client = [\"10.0.0.0/8\"]", "\"allow\""),
        rule("wide", "suffix = [\"example.com\"]", "\"refuse\""),
        rule("all", "", "\"servfail\""),
    ]
    .concat();
    let s = set(&rules);
    let a = RecordType::A;
    assert_eq!(
        judge(&s, &Q::new("www.example.com.", a)),
        hit("narrow", Act::Nxdomain)
    );
    assert_eq!(
        judge(&s, &Q::new("x.example.com.", a)),
        hit("wide", Act::Refuse)
    );
    assert_eq!(judge(&s, &Q::new("other.", a)), hit("all", Act::Servfail));
    // allow comes before "wide" and "all": they are not checked.
    let inside = Q::new("x.example.com.", a).from("10.1.2.3");
    assert_eq!(judge(&s, &inside), hit("pass", Act::Allow));
    // ... but not before "narrow".
    let inside = Q::new("www.example.com.", a).from("10.1.2.3");
    assert_eq!(judge(&s, &inside), hit("narrow", Act::Nxdomain));
    let counts: Vec<(&str, &str, u64)> = s.counts().collect();
    assert_eq!(
        counts,
        [
            ("narrow", "nxdomain", 2),
            ("pass", "allow", 1),
            ("wide", "refuse", 1),
            ("all", "servfail", 1)
        ]
    );
}

#[test]
fn a_rule_naming_two_suffixes_of_a_name_is_checked_once_in_its_place() {
    let rules = [
        rule(
            "first",
            "suffix = [\"a.example\", \"example\"], qtype = [\"MX\"]",
            "\"drop\"",
        ),
        rule("second", "suffix = [\"b.a.example\"]", "\"refuse\""),
    ]
    .concat();
    let s = set(&rules);
    assert_eq!(
        judge(&s, &Q::new("c.b.a.example.", RecordType::MX)),
        hit("first", Act::Drop)
    );
    assert_eq!(
        judge(&s, &Q::new("c.b.a.example.", RecordType::A)),
        hit("second", Act::Refuse)
    );
}

#[test]
fn pool_and_delay_acts() {
    let rules = [
        rule("to-net", "qtype = [\"MX\"]", "{ pool = \"net\" }"),
        rule("slow", "qtype = [\"TXT\"]", "{ delay_ms = 250 }"),
    ]
    .concat();
    let s = set(&rules);
    assert_eq!(
        judge(&s, &Q::new("x.", RecordType::MX)),
        hit("to-net", Act::Pool(1))
    );
    let slow = Act::Delay(Duration::from_millis(250));
    assert_eq!(judge(&s, &Q::new("x.", RecordType::TXT)), hit("slow", slow));
    assert!(!slow.answers() && !Act::Pool(1).answers() && Act::Spoof.answers());
}

#[test]
fn truncate_and_delay_do_not_apply_on_streams() {
    let rules = [
        rule("tc", "qtype = [\"ANY\"]", "\"truncate\""),
        rule("slow", "qtype = [\"ANY\"]", "{ delay_ms = 10 }"),
        rule("no-any", "qtype = [\"ANY\"]", "\"refuse\""),
    ]
    .concat();
    let s = set(&rules);
    let any = || Q::new("x.", RecordType::ANY);
    assert_eq!(judge(&s, &any()), hit("tc", Act::Truncate));
    for t in [RuleTransport::Tcp, RuleTransport::Dot, RuleTransport::Doh] {
        assert_eq!(judge(&s, &any().by(t)), hit("no-any", Act::Refuse));
    }
}

#[test]
fn a_rate_acts_past_its_rate_per_client_group() {
    let s = set(&[
        rule("limit", "", "{ rate = 2, then = \"drop\" }"),
        rule("after", "qtype = [\"TXT\"]", "\"refuse\""),
    ]
    .concat());
    let t0 = Instant::now();
    let q = Q::new("x.", RecordType::A);
    let at = |q: &Q, ms: u64| {
        s.judge(&q.view(), t0 + Duration::from_millis(ms))
            .map(|h| h.act)
    };
    // A burst of one second's worth, then the `then` act.
    assert_eq!(at(&q, 0), None);
    assert_eq!(at(&q, 0), None);
    assert_eq!(at(&q, 0), Some(Act::Drop));
    // Under the rate, the next rules are checked.
    let txt = Q::new("x.", RecordType::TXT).from("192.0.2.200");
    assert_eq!(at(&txt, 0), Some(Act::Refuse));
    // Another client has its own bucket; IPv6 clients share one per /64.
    let v6a = Q::new("x.", RecordType::A).from("2001:db8::1");
    let v6b = Q::new("x.", RecordType::A).from("2001:db8::2");
    assert_eq!(
        (at(&v6a, 0), at(&v6b, 0), at(&v6a, 0)),
        (None, None, Some(Act::Drop))
    );
    // Refilled at the rate.
    assert_eq!(at(&q, 500), None);
    let counts: Vec<_> = s.counts().collect();
    assert_eq!(counts[0], ("limit", "drop", 2));
}

/// The answer `s` makes up for `q`, decoded.
fn made(s: &RuleSet, q: &Q, transport: Transport) -> Option<Message> {
    let h = s.judge(&q.view(), Instant::now())?;
    s.answer(h, &q.raw, transport)
        .map(|b| Message::from_vec(&b).unwrap())
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

#[test]
fn counts_survive_a_reload_by_rule_name() {
    let c = ls(&[rule("a", "", "\"drop\""), rule("b", "", "\"drop\"")].concat());
    let s = RuleSet::new(&c, None);
    s.judge(&Q::new("x.", RecordType::A).view(), Instant::now());
    let c2 = ls(&[rule("b", "", "\"drop\""), rule("a", "", "\"drop\"")].concat());
    let s2 = RuleSet::new(&c2, Some(&s));
    let counts: Vec<_> = s2.counts().collect();
    assert_eq!(counts, [("b", "drop", 0), ("a", "drop", 1)]);
}

#[test]
fn a_thousand_suffix_rules_find_the_one_that_holds() {
    let rules: String = (0..1000)
        .map(|i| {
            rule(
                &format!("r{i}"),
                &format!("suffix = [\"z{i}.example\"]"),
                "\"drop\"",
            )
        })
        .collect();
    let s = set(&rules);
    assert_eq!(
        judge(&s, &Q::new("www.z777.example.", RecordType::A)),
        hit("r777", Act::Drop)
    );
    assert_eq!(
        judge(&s, &Q::new("www.z1000.example.", RecordType::A)),
        None
    );
}

// --- response rules ---

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

// --- the property: the compiled rules say what a plain reading says ---

/// What the config says of `q`, read plainly: the first rule in file order
/// whose every condition holds and that acts.
fn reference(c: &LsConfig, q: &QueryView<'_>) -> Option<(usize, &'static str)> {
    let labels: Vec<Vec<u8>> = {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(&len) = q.name.get(pos) {
            if len == 0 {
                break;
            }
            out.push(q.name[pos + 1..pos + 1 + usize::from(len)].to_ascii_lowercase());
            pos += 1 + usize::from(len);
        }
        out
    };
    let under = |zone: &hickory_proto::rr::Name| {
        let z: Vec<Vec<u8>> = zone.iter().map(|l| l.to_ascii_lowercase()).collect();
        z.len() <= labels.len() && labels[labels.len() - z.len()..] == z[..]
    };
    let udp = q.transport == RuleTransport::Udp;
    for (i, r) in c.rule.iter().enumerate() {
        let m = &r.matches;
        let holds = (m.suffix.is_empty() || m.suffix.iter().any(under))
            && (m.qtype.is_empty() || m.qtype.iter().any(|t| t.0 == q.qtype))
            && (m.transport.is_empty() || m.transport.contains(&q.transport))
            && m.rd.is_none_or(|rd| rd == q.rd)
            && m.dnssec_ok.is_none_or(|d| d == q.dnssec_ok)
            && m.min_labels.is_none_or(|n| labels.len() >= usize::from(n))
            && (m.client.is_empty() || m.client.iter().any(|n| n.contains(&q.client)))
            && !m.not_client.iter().any(|n| n.contains(&q.client));
        let acts = match &r.action {
            RuleAction::Truncate | RuleAction::Delay { .. } => udp,
            _ => true,
        };
        if holds && acts {
            let kind = match &r.action {
                RuleAction::Delay { .. } => "delay",
                a => a.kind(),
            };
            return Some((i, kind));
        }
    }
    None
}

#[test]
fn random_rule_sets_on_random_queries_act_as_the_config_reads() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config as Cases, TestRunner};
    let suffix = prop_oneof![
        Just("example.org"),
        Just("Org"),
        Just("a.example.org"),
        Just("example.net"),
        Just("b.a.example.org"),
        Just("."),
    ];
    let cond = (
        prop::collection::vec(suffix, 0..3),
        prop::option::of(prop::sample::select(vec!["A", "AAAA", "MX"])),
        prop::option::of(prop::sample::select(vec![
            "192.0.2.0/24",
            "10.0.0.0/8",
            "::/0",
        ])),
        prop::option::of(prop::sample::select(vec!["udp", "tcp", "doh"])),
        prop::option::of(any::<bool>()),
        prop::option::of(0u8..5),
        prop::sample::select(vec![
            "\"drop\"",
            "\"refuse\"",
            "\"allow\"",
            "\"truncate\"",
            "{ delay_ms = 5 }",
            "{ pool = \"org\" }",
        ]),
        any::<bool>(),
    );
    let rules = prop::collection::vec(cond, 0..12);
    let label = prop::sample::select(vec!["www", "a", "B", "example", "ORG", "org", "net", "x"]);
    let query = (
        prop::collection::vec(label, 0..5),
        prop::sample::select(vec![RecordType::A, RecordType::AAAA, RecordType::MX]),
        prop::sample::select(vec!["192.0.2.9", "10.9.9.9", "2001:db8::9"]),
        prop::sample::select(vec![
            RuleTransport::Udp,
            RuleTransport::Tcp,
            RuleTransport::Doh,
        ]),
    );
    let mut runner = TestRunner::new(Cases {
        cases: 512,
        ..Cases::default()
    });
    runner
        .run(
            &(rules, prop::collection::vec(query, 1..8)),
            |(rules, queries)| {
                let mut text = String::new();
                for (i, (suffixes, qtype, client, transport, rd, labels, action, not)) in
                    rules.iter().enumerate()
                {
                    let mut m = Vec::new();
                    if !suffixes.is_empty() {
                        let s: Vec<String> = suffixes.iter().map(|s| format!("\"{s}\"")).collect();
                        m.push(format!("suffix = [{}]", s.join(", ")));
                    }
                    if let Some(t) = qtype {
                        m.push(format!("qtype = [\"{t}\"]"));
                    }
                    if let Some(c) = client {
                        let key = if *not { "not_client" } else { "client" };
                        m.push(format!("{key} = [\"{c}\"]"));
                    }
                    if let Some(t) = transport {
                        m.push(format!("transport = [\"{t}\"]"));
                    }
                    if let Some(rd) = rd {
                        m.push(format!("rd = {rd}"));
                    }
                    if let Some(n) = labels {
                        m.push(format!("min_labels = {n}"));
                    }
                    text.push_str(&rule(&format!("r{i}"), &m.join(", "), action));
                }
                let c = ls(&text);
                let s = RuleSet::new(&c, None);
                for (labels, qtype, client, transport) in &queries {
                    let name = format!("{}.", labels.join("."));
                    let name = if labels.is_empty() {
                        ".".to_owned()
                    } else {
                        name
                    };
                    let q = Q {
                        raw: query_bytes(&name, *qtype, Some(1232)),
                        client: client.parse().unwrap(),
                        transport: *transport,
                    };
                    let v = q.view();
                    let got = s.judge(&v, Instant::now()).map(|h| (h.rule, h.act.kind()));
                    let again = s.judge(&v, Instant::now()).map(|h| (h.rule, h.act.kind()));
                    prop_assert_eq!(got, again, "deterministic");
                    prop_assert_eq!(got, reference(&c, &v), "{} {:?}\n{}", name, q.client, text);
                }
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn pool_config_is_the_one_the_rules_index() {
    // The pool act's index is the pool's place in [[ls.pool]] (LsState::pools).
    let c = ls(&rule("p", "", "{ pool = \"net\" }"));
    assert_eq!(
        c.pool.iter().position(|p: &PoolConfig| p.name == "net"),
        Some(1)
    );
}
