//! Test-only module: built under #[cfg(test)] (see `ls/rules/mod.rs`).
//! The query rules on made-up queries: each selector, each action, file
//! order, `allow`, rates, counts across a reload; the fixtures the other
//! files here share.
//!
//! # Layout
//! - `answers`: the answers a rule that acts makes up;
//! - `response`: the `[[ls.response_rule]]`s on made-up backend answers;
//! - `property`: random rule sets on random queries against a plain
//!   reading of the config.
use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::EdnsCode;

use super::*;
use crate::config::{Config, LsConfig, PoolConfig, RuleTransport};
use crate::dns::fixtures::query_bytes;

mod answers;
mod property;
mod response;

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

/// [`judge`] of `Q::new(name, qtype)`.
fn judged(s: &RuleSet, name: &str, qtype: RecordType) -> Option<(String, Act)> {
    judge(s, &Q::new(name, qtype))
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
    assert_eq!(judged(&s, "example.org.", RecordType::A), None);
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
        let got = judged(&s, name, RecordType::A);
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
    assert!(judged(&s, "www.example.com.", RecordType::A).is_some());
    assert!(judged(&s, "www.example.com.", RecordType::AAAA).is_none());
    assert!(judged(&s, "www.example.net.", RecordType::A).is_none());
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
        judged(&s, "www.example.com.", a),
        hit("narrow", Act::Nxdomain)
    );
    assert_eq!(judged(&s, "x.example.com.", a), hit("wide", Act::Refuse));
    assert_eq!(judged(&s, "other.", a), hit("all", Act::Servfail));
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
        judged(&s, "c.b.a.example.", RecordType::MX),
        hit("first", Act::Drop)
    );
    assert_eq!(
        judged(&s, "c.b.a.example.", RecordType::A),
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
        judged(&s, "x.", RecordType::MX),
        hit("to-net", Act::Pool(1))
    );
    let slow = Act::Delay(Duration::from_millis(250));
    assert_eq!(judged(&s, "x.", RecordType::TXT), hit("slow", slow));
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
fn a_proven_cookie_spares_truncate_only_as_a_stream_does() {
    let rules = [
        rule("tc", "qtype = [\"ANY\"]", "\"truncate\""),
        rule(
            "tc-rate",
            "qtype = [\"TXT\"]",
            "{ rate = 1, then = \"truncate\" }",
        ),
        rule("no-any", "qtype = [\"ANY\", \"TXT\"]", "\"refuse\""),
    ]
    .concat();
    let s = set(&rules);
    let q = Q::new("x.", RecordType::ANY);
    fn proven(q: &Q) -> QueryView<'_> {
        QueryView {
            cookie_ok: true,
            ..q.view()
        }
    }
    let now = Instant::now();
    let judged = |v: &QueryView<'_>| s.judge(v, now).map(|h| h.act);
    assert_eq!(judged(&q.view()), Some(Act::Truncate));
    assert_eq!(judged(&proven(&q)), Some(Act::Refuse), "the next rule");
    let txt = Q::new("x.", RecordType::TXT);
    for _ in 0..5 {
        assert_eq!(
            judged(&proven(&txt)),
            Some(Act::Refuse),
            "past the rate too"
        );
    }
    // Not counted toward the rate (as on a stream): the first unproven
    // query is within it, the next ones past it.
    let acts: Vec<_> = (0..3).map(|_| judged(&txt.view())).collect();
    assert_eq!(acts[0], Some(Act::Refuse), "within the rate");
    assert_eq!(acts[2], Some(Act::Truncate), "unproven, past the rate");
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
        judged(&s, "www.z777.example.", RecordType::A),
        hit("r777", Act::Drop)
    );
    assert_eq!(judged(&s, "www.z1000.example.", RecordType::A), None);
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
