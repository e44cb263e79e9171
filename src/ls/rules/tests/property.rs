//! The property: the compiled rules say of random queries what a plain
//! reading of random rule sets says (the first rule in file order whose
//! every condition holds and that acts).
use super::*;
use crate::config::RuleAction;

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
