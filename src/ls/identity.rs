//! The LS's answers about itself (RFC 4892: `id.server.` and
//! `hostname.bind.`, CH TXT): what it tells (`[ls] identity`, else the
//! kernel's host name; `hide_identity`: REFUSED instead), and to whom first.
//!
//! `dnslb anycast`'s probe asks `id.server.` on the LS's own UDP path; a
//! client's dynamic block (a `name-rate` block keyed `server.` or `.`) or a
//! rule that drops names the LS does not serve must not withdraw the LS.
//! So the probe's question is answered at the door before the blocks and
//! the rules ([`IdentityAnswers::for_probe`]), and only the probe's: an
//! identity question over UDP from a loopback address (127.0.0.0/8, ::1,
//! or IPv4-mapped loopback), which the kernel never takes from a wire (a
//! martian source), so a remote client cannot earn the exemption by asking
//! it, nor by forging its source. Every other client's identity question
//! passes the blocks and the rules first ([`IdentityAnswers::answer`]).
//! Any other probe question meets them as every query does:
//! [`probe_warnings`] says so in `dnslb check`. Pure: no I/O.
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;

use super::rules::{Act, QueryView};
use crate::config::{DynKind, LsConfig, RuleTransport};
use crate::dns::{self, Via};

/// What the LS says of itself, built from `[ls]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityAnswers {
    /// The TXT string told.
    text: Vec<u8>,
    /// `hide_identity`: REFUSED to all but the probe.
    hidden: bool,
}

impl IdentityAnswers {
    /// From `[ls]`'s `identity` and `hide_identity`.
    pub fn from_config(c: &LsConfig) -> Self {
        let text = c
            .identity
            .as_ref()
            .map_or_else(|| dns::host_identity().to_vec(), |t| t.as_bytes().to_vec());
        Self {
            text,
            hidden: c.hide_identity,
        }
    }

    /// The answer to the query in `raw` (its one plain question ending at
    /// `question_end`) when it is the anycast probe's: an identity
    /// question over UDP (`via`) from a loopback `src`. Told even when
    /// hidden (a local user can read the host name anyway). `None`: not
    /// the probe's; the query goes on to the blocks and the rules.
    pub fn for_probe(
        &self,
        raw: &[u8],
        question_end: usize,
        src: IpAddr,
        via: Via,
    ) -> Option<Vec<u8>> {
        if !from_probe(src, via) {
            return None;
        }
        dns::identity_answer(raw, question_end, &self.text)
    }

    /// The answer to an identity question from any client, past the
    /// blocks and the rules: the text, or REFUSED when hidden. `None`:
    /// not an identity question.
    pub fn answer(&self, raw: &[u8], question_end: usize) -> Option<Vec<u8>> {
        if !self.hidden {
            return dns::identity_answer(raw, question_end, &self.text);
        }
        dns::is_identity_question(raw, question_end)
            .then(|| dns::error_for(raw, ResponseCode::Refused))
            .flatten()
    }
}

/// Whether a query from `src` by `via` may be the anycast probe's: UDP
/// (the probe asks nothing else) from a loopback address.
pub fn from_probe(src: IpAddr, via: Via) -> bool {
    matches!(via, Via::Udp) && src.to_canonical().is_loopback()
}

/// `dnslb check`'s warnings about the anycast probe's question at the door
/// of an LS configured by `c`: a rule that drops it or answers it itself,
/// and a `name-rate` dynamic block that a client's flood could set off on
/// its name. None for an identity question (answered before either when
/// the probe runs on the LS's host, as it sends from loopback) or without
/// `[ls.anycast]`.
pub fn probe_warnings(c: &LsConfig) -> Vec<String> {
    let Some(a) = c.anycast.as_ref().filter(|a| !a.query.is_identity()) else {
        return Vec::new();
    };
    let q = &a.query;
    let v6 = a
        .probe
        .or(c.listen.first().copied())
        .is_some_and(|p| p.is_ipv6());
    let src: IpAddr = if v6 {
        std::net::Ipv6Addr::LOCALHOST.into()
    } else {
        std::net::Ipv4Addr::LOCALHOST.into()
    };
    let mut out = Vec::new();
    let mut m = hickory_proto::op::Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(hickory_proto::op::Query::query(q.name.clone(), q.rtype));
    let raw = m.to_vec().unwrap_or_default();
    let rules = super::rules::RuleSet::new(c, None);
    let hit = dns::peek_plain_query(&raw)
        .and_then(|(_, end)| QueryView::read(&raw, end, src, RuleTransport::Udp))
        .and_then(|view| rules.judge(&view, std::time::Instant::now()))
        .filter(|h| h.act.answers());
    if let Some(hit) = hit {
        let name = rules.name(hit.rule).unwrap_or_default();
        out.push(if hit.act == Act::Drop {
            format!("warning: the rule \"{name}\" drops the probe's question \"{q}\" (from {src}): the LS would never be announced; ask \"id.server. TXT\", which the LS answers the probe before its rules")
        } else {
            format!("warning: the rule \"{name}\" answers the probe's question \"{q}\" itself ({}): the probe proves only the LS's door; ask \"id.server. TXT\"", hit.act.kind())
        });
    }
    for b in &c.dynamic_block {
        let keyed = b.suffix.as_ref().is_some_and(|s| {
            b.kind == DynKind::NameRate
                && s.zone_of(&q.name)
                && q.name.num_labels() > s.num_labels()
        });
        if keyed && !b.exclude.iter().any(|n| n.contains(&src)) {
            out.push(format!(
                "warning: the dynamic block \"{}\" (name-rate) can block the probe's question \"{q}\": any client's flood of names under it withdraws the LS; ask \"id.server. TXT\", which the LS answers the probe before its blocks",
                b.name
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{DNSClass, Name, RecordType};

    fn id_server() -> (Vec<u8>, usize) {
        let mut q = Query::query(Name::from_ascii("id.server.").unwrap(), RecordType::TXT);
        q.set_query_class(DNSClass::CH);
        let mut m = Message::query();
        m.add_query(q);
        let raw = m.to_vec().unwrap();
        let end = dns::peek_plain_query(&raw).unwrap().1;
        (raw, end)
    }

    fn rcode(raw: &[u8]) -> u8 {
        raw[3] & 0x0f
    }

    #[test]
    fn check_warns_of_a_rule_or_a_name_rate_block_that_stops_a_forwarded_probe_question() {
        let conf = |query: &str, rest: &str| {
            let text = format!(
                "[ls]\nmetrics = \"127.0.0.1:5390\"\n[ls.anycast]\nquery = \"{query}\"\n\
                 [[ls.backend]]\nname = \"b\"\naddr = \"127.0.0.1:5301\"\n{rest}"
            );
            let path = std::path::Path::new("c.toml");
            let c = crate::config::Config::from_toml(&text, path).unwrap();
            probe_warnings(c.ls.as_ref().unwrap())
        };
        let drop_rest = "[[ls.rule]]\nname = \"ours\"\nmatch = { suffix = [\"a.test\"] }\naction = \"allow\"\n\
                         [[ls.rule]]\nname = \"rest\"\nmatch = { suffix = [\".\"] }\naction = \"drop\"\n";
        let w = conf("www.b.test. A", drop_rest);
        assert!(w.len() == 1 && w[0].contains("\"rest\" drops"), "{w:?}");
        assert_eq!(conf("www.a.test. A", drop_rest), Vec::<String>::new());
        assert_eq!(conf("id.server. TXT", drop_rest), Vec::<String>::new());
        let refuse =
            "[[ls.rule]]\nname = \"r\"\nmatch = { qtype = [\"SOA\"] }\naction = \"refuse\"\n";
        let w = conf(". SOA", refuse);
        assert!(w.len() == 1 && w[0].contains("(refuse)"), "{w:?}");
        let block = "[[ls.dynamic_block]]\nname = \"floods\"\nkind = \"name-rate\"\nsuffix = \"test.\"\nthreshold = 5\n";
        let w = conf("www.b.test. A", block);
        assert!(
            w.len() == 1 && w[0].contains("\"floods\" (name-rate)"),
            "{w:?}"
        );
        assert_eq!(conf("test. SOA", block), Vec::<String>::new());
        assert_eq!(conf("id.server. TXT", block), Vec::<String>::new());
    }

    #[test]
    fn only_udp_from_loopback_is_the_probe() {
        for (src, via, probe) in [
            ("127.0.0.1", Via::Udp, true),
            ("127.9.8.7", Via::Udp, true),
            ("::1", Via::Udp, true),
            ("::ffff:127.0.0.1", Via::Udp, true),
            ("127.0.0.1", Via::Tcp, false),
            ("127.0.0.1", Via::Dot, false),
            ("127.0.0.1", Via::Doh, false),
            ("192.0.2.7", Via::Udp, false),
            ("10.0.0.1", Via::Udp, false),
            ("2001:db8::1", Via::Udp, false),
            ("::ffff:192.0.2.7", Via::Udp, false),
        ] {
            assert_eq!(
                from_probe(src.parse().unwrap(), via),
                probe,
                "{src} {via:?}"
            );
        }
    }

    #[test]
    fn the_identity_is_the_configured_text_or_refused_when_hidden_but_to_the_probe() {
        let (raw, end) = id_server();
        let told = |c: &LsConfig, src: &str| {
            let a = IdentityAnswers::from_config(c);
            let probe = a.for_probe(&raw, end, src.parse().unwrap(), Via::Udp);
            (probe, a.answer(&raw, end).unwrap())
        };
        let named = LsConfig {
            identity: Some("ls-7.example".into()),
            ..LsConfig::default()
        };
        let (probe, any) = told(&named, "127.0.0.1");
        assert!(String::from_utf8_lossy(&any).contains("ls-7.example"));
        assert_eq!(probe.as_deref(), Some(&any[..]));
        let (probe, _) = told(&named, "192.0.2.7");
        assert_eq!(probe, None, "a remote client is not the probe");
        let hidden = LsConfig {
            hide_identity: true,
            ..named.clone()
        };
        let (probe, any) = told(&hidden, "127.0.0.1");
        assert_eq!(rcode(&any), 5, "REFUSED when hidden");
        assert!(!String::from_utf8_lossy(&any).contains("ls-7"));
        let probe = probe.unwrap();
        assert_eq!(rcode(&probe), 0);
        assert!(String::from_utf8_lossy(&probe).contains("ls-7.example"));
        // Not an identity question: none of this applies.
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("id.server.").unwrap(),
            RecordType::TXT,
        ));
        let raw_in = m.to_vec().unwrap();
        let end_in = dns::peek_plain_query(&raw_in).unwrap().1;
        let a = IdentityAnswers::from_config(&hidden);
        assert_eq!(a.answer(&raw_in, end_in), None);
        let lo = "127.0.0.1".parse().unwrap();
        assert_eq!(a.for_probe(&raw_in, end_in, lo, Via::Udp), None);
    }
}
