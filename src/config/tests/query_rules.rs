//! Test-only module: built under #[cfg(test)] (see `config/mod.rs`).
//! Tests of `[[ls.rule]]` and `[[ls.response_rule]]`: every key and action form, the
//! defaults, and each rule reported at the line of its key.

use std::net::IpAddr;

use super::rules::rejects;
use super::*;

/// [`BASE`] (11 lines), a pool `org` of `ts1` (lines 13 to 16), a blank line,
/// then `rules` from line 18.
fn with(rules: &str) -> String {
    format!(
        "{BASE}\n[[ls.pool]]\nname = \"org\"\nbackends = [\"ts1\"]\nzones = [\"example.org\"]\n\n{rules}"
    )
}

fn rules_of(rules: &str) -> (Vec<RuleConfig>, Vec<ResponseRuleConfig>) {
    let ls = parse(&with(rules)).unwrap().ls.unwrap();
    (ls.rule, ls.response_rule)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn every_match_key_and_the_defaults() {
    let (rules, _) = rules_of(
        r#"[[ls.rule]]
name = "all"
match = { suffix = ["Example.COM", "test."], qtype = ["any", "AAAA", "TYPE65", 16], client = ["10.0.0.0/8", "192.0.2.1"], not_client = ["10.1.0.0/16"], transport = ["udp", "doh"], rd = true, do = false, opcode = "UPDATE", min_labels = 3, min_name_len = 20, edns_option = 10 }
action = "drop"
log = true
aa = true
ede = 17

[[ls.rule]]
name = "bare"
action = "refuse"
"#,
    );
    let m = &rules[0].matches;
    assert_eq!(
        m.suffix,
        vec![
            parse_name("example.com").unwrap(),
            parse_name("test").unwrap()
        ]
    );
    assert_eq!(m.qtype, vec![QType(255), QType(28), QType(65), QType(16)]);
    assert_eq!(m.client, vec![net("10.0.0.0/8"), net("192.0.2.1/32")]);
    assert_eq!(m.not_client, vec![net("10.1.0.0/16")]);
    assert_eq!(m.transport, vec![RuleTransport::Udp, RuleTransport::Doh]);
    assert_eq!((m.rd, m.dnssec_ok), (Some(true), Some(false)));
    assert_eq!(m.opcode, Some(Opcode(5)));
    assert_eq!(
        (m.min_labels, m.min_name_len, m.edns_option),
        (Some(3), Some(20), Some(10))
    );
    assert_eq!(
        (&rules[0].action, rules[0].log, rules[0].aa, rules[0].ede),
        (&RuleAction::Drop, true, true, 17)
    );
    let bare = &rules[1];
    assert_eq!(bare.matches, RuleMatch::default());
    assert_eq!(
        (&bare.action, bare.log, bare.aa, bare.ede),
        (&RuleAction::Refuse, false, false, EDE_BLOCKED)
    );
}

#[test]
fn every_action_form() {
    let mut text = String::new();
    for (i, action) in [
        "\"drop\"",
        "\"refuse\"",
        "\"nxdomain\"",
        "\"servfail\"",
        "\"truncate\"",
        "\"allow\"",
        "{ pool = \"org\" }",
        "{ spoof = [\"192.0.2.1\", \"2001:db8::1\"], ttl = 30 }",
        "{ spoof = [\"192.0.2.2\"] }",
        "{ spoof_cname = \"Target.example\" }",
        "{ delay_ms = 250 }",
        "{ rate = 100, then = \"truncate\" }",
        "{ rate = 5, then = { spoof = [\"192.0.2.9\"] } }",
    ]
    .iter()
    .enumerate()
    {
        text.push_str(&format!(
            "[[ls.rule]]\nname = \"r{i}\"\naction = {action}\n\n"
        ));
    }
    let (rules, _) = rules_of(&text);
    let actions: Vec<RuleAction> = rules.into_iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        vec![
            RuleAction::Drop,
            RuleAction::Refuse,
            RuleAction::Nxdomain,
            RuleAction::Servfail,
            RuleAction::Truncate,
            RuleAction::Allow,
            RuleAction::Pool("org".into()),
            RuleAction::Spoof {
                addrs: vec![ip("192.0.2.1"), ip("2001:db8::1")],
                ttl: 30
            },
            RuleAction::Spoof {
                addrs: vec![ip("192.0.2.2")],
                ttl: SPOOF_TTL_DEFAULT
            },
            RuleAction::SpoofCname {
                target: parse_name("target.example").unwrap(),
                ttl: SPOOF_TTL_DEFAULT
            },
            RuleAction::Delay { ms: 250 },
            RuleAction::Rate {
                qps: 100,
                then: Box::new(RuleAction::Truncate)
            },
            RuleAction::Rate {
                qps: 5,
                then: Box::new(RuleAction::Spoof {
                    addrs: vec![ip("192.0.2.9")],
                    ttl: SPOOF_TTL_DEFAULT
                })
            },
        ]
    );
}

#[test]
fn response_rules_parse() {
    let (_, rules) = rules_of(
        r#"[[ls.response_rule]]
name = "cap-ttl"
match = { rcode = ["NOERROR", 3], qtype = ["A"], answer_type = ["CNAME"], min_size = 512 }
action = { limit_ttl = { min = 10, max = 3600 } }
log = true

[[ls.response_rule]]
name = "no-servfail"
match = { rcode = ["servfail"] }
action = "drop"

[[ls.response_rule]]
name = "seen"
action = "log"

[[ls.response_rule]]
name = "fail"
action = "servfail"

[[ls.response_rule]]
name = "floor"
action = { limit_ttl = { min = 5 } }
"#,
    );
    assert_eq!(
        rules[0].matches,
        ResponseMatch {
            rcode: vec![Rcode(0), Rcode(3)],
            qtype: vec![QType(1)],
            answer_type: vec![QType(5)],
            min_size: Some(512),
        }
    );
    assert!(rules[0].log);
    let actions: Vec<ResponseAction> = rules.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [
            ResponseAction::LimitTtl { min: 10, max: 3600 },
            ResponseAction::Drop,
            ResponseAction::Log,
            ResponseAction::Servfail,
            ResponseAction::LimitTtl {
                min: 5,
                max: i32::MAX as u32
            },
        ]
    );
    assert_eq!(rules[1].matches.rcode, vec![Rcode(2)]);
}

/// Schema errors: at the line of the bad key or value, naming it.
#[test]
fn schema_errors_name_their_key_and_line() {
    let mut bad = Vec::new();
    for (rules, want) in [
        (
            "[[ls.rule]]\nname = \"x\"\nmatch = { sufix = [\"a\"] }\naction = \"drop\"\n",
            "config.toml:20: unknown key 'sufix' in [ls.rule.match] (did you mean 'suffix'?)",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\naction = \"block\"\n",
            "config.toml:20: ls.rule.action: expected one of drop, refuse, nxdomain, servfail, truncate, allow or a table ({ pool }, { spoof, ttl }, { spoof_cname, ttl }, { delay_ms }, { rate, then }), got \"block\"",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\naction = { pool = \"org\", delay_ms = 5 }\n",
            "config.toml:20: ls.rule.action: an action table holds exactly one action: { pool }, { spoof, ttl }, { spoof_cname, ttl }, { delay_ms }, { rate, then }; got pool and delay_ms",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\naction = { poool = \"org\" }\n",
            "config.toml:20: unknown key 'poool' in [ls.rule.action] (did you mean 'pool'?)",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\naction = { rate = 5 }\n",
            "config.toml:20: ls.rule.action: rate and then go together: { rate = N, then = \"drop\" }",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\naction = { delay_ms = 5, ttl = 3 }\n",
            "config.toml:20: ls.rule.action: ttl goes with spoof or spoof_cname only",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\nmatch = { client = [\"10.0.0.0/33\"] }\naction = \"drop\"\n",
            "config.toml:20: ls.rule.match.client: invalid network \"10.0.0.0/33\": expected CIDR like \"10.0.0.0/8\" or an IP address",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\nmatch = { qtype = [\"AA\"] }\naction = \"drop\"\n",
            "config.toml:20: ls.rule.match.qtype: unknown record type \"AA\": expected one like \"A\", \"ANY\" or \"TYPE65\"",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\nmatch = { transport = [\"quic\"] }\naction = \"drop\"\n",
            "config.toml:20: ls.rule.match.transport: expected one of udp, tcp, dot, doh, doq, got \"quic\"",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\naction = { spoof = [\"192.0.2.300\"] }\n",
            "config.toml:20: ls.rule.action.spoof: invalid IP address \"192.0.2.300\": expected one like \"192.0.2.1\" or \"2001:db8::1\"",
        ),
        (
            "[[ls.response_rule]]\nname = \"x\"\nmatch = { rcode = [\"NXDOMIAN\"] }\naction = \"drop\"\n",
            "config.toml:20: ls.response_rule.match.rcode: unknown rcode \"NXDOMIAN\": expected one of NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, YXDOMAIN, YXRRSET, NXRRSET, NOTAUTH, NOTZONE or a number 0 to 15",
        ),
        (
            "[[ls.response_rule]]\nname = \"x\"\naction = \"refuse\"\n",
            "config.toml:20: ls.response_rule.action: expected one of drop, servfail, log or { limit_ttl = { min, max } }, got \"refuse\"",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\naction = 3\n",
            "config.toml:20: ls.rule.action: invalid type: integer `3`, expected one of drop, refuse, nxdomain, servfail, truncate, allow or a table: { pool }, { spoof, ttl }, { spoof_cname, ttl }, { delay_ms }, { rate, then }",
        ),
        (
            "[[ls.response_rule]]\nname = \"x\"\naction = [\"drop\"]\n",
            "config.toml:20: ls.response_rule.action: invalid type: sequence, expected one of drop, servfail, log or { limit_ttl = { min, max } }",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\n",
            "config.toml:18: missing key 'action' in [[ls.rule]]",
        ),
    ] {
        let got = err(&with(rules));
        if got != want {
            bad.push(format!("{rules}\n  got: {got}\n want: {want}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}

/// Validation rules: at the line of the key that breaks it.
#[test]
fn rules_are_validated_at_their_lines() {
    for (rules, want) in [
        (
            "[[ls.rule]]\nname = \"x\"\naction = { pool = \"com\" }\n",
            "config.toml:20: ls.rule.action.pool: rule \"x\" names pool \"com\", which is not an [[ls.pool]] (pools: org)",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\naction = \"drop\"\n\n[[ls.rule]]\nname = \"x\"\naction = \"allow\"\n",
            "config.toml:23: ls.rule.name: duplicate rule name \"x\"",
        ),
        (
            "[[ls.rule]]\nname = \"\"\naction = \"drop\"\n",
            "config.toml:19: ls.rule.name: a rule name must not be empty",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\naction = { rate = 10, then = { rate = 5, then = \"drop\" } }\n",
            "config.toml:20: ls.rule.action.then.rate: rule \"x\": a rate's then cannot itself be a rate",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\naction = { rate = 0, then = \"drop\" }\n",
            "config.toml:20: ls.rule.action.rate: must be at least 1",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\naction = { delay_ms = 0 }\n",
            "config.toml:20: ls.rule.action.delay_ms: must be in [1, 10000], got 0",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\naction = { delay_ms = 10001 }\n",
            "config.toml:20: ls.rule.action.delay_ms: must be in [1, 10000], got 10001",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\naction = { spoof = [] }\n",
            "config.toml:20: ls.rule.action.spoof: rule \"x\" needs at least one address to spoof",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\naction = \"refuse\"\nede = 22\n",
            "config.toml:21: ls.rule.ede: must be 15 (Blocked), 16 (Censored) or 17 (Filtered), got 22",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\nmatch = { min_labels = 128 }\naction = \"drop\"\n",
            "config.toml:20: ls.rule.match.min_labels: must be at most 127, got 128",
        ),
        (
            "[[ls.rule]]\nname = \"x\"\naction = { spoof_cname = \"a.example\", ttl = 2147483648 }\n",
            "config.toml:20: ls.rule.action.ttl: must be at most 2147483647 (RFC 2181), got 2147483648",
        ),
        (
            "[[ls.response_rule]]\nname = \"x\"\naction = { limit_ttl = { min = 60, max = 30 } }\n",
            "config.toml:20: ls.response_rule.action.limit_ttl.min: min (60) must not exceed max (30)",
        ),
        (
            "[[ls.response_rule]]\nname = \"y\"\naction = \"drop\"\n\n[[ls.response_rule]]\nname = \"y\"\naction = \"log\"\n",
            "config.toml:23: ls.response_rule.name: duplicate response rule name \"y\"",
        ),
    ] {
        rejects(&with(rules), want);
    }
}
