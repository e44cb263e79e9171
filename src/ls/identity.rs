//! The LS's answers about itself (RFC 4892: `id.server.` and
//! `hostname.bind.`, CH TXT): what it tells (`[ls] identity`, else the
//! kernel's host name; `hide_identity`: REFUSED instead), and to whom first.
//!
//! `dnslb anycast`'s probe asks `id.server.` on the LS's own UDP path; a
//! client's dynamic block (a `name-rate` block keyed `server.` or `.`) or a
//! rule that drops names the LS does not serve must not withdraw the LS.
//! So the probe's question is answered at the door before the blocks and
//! the rules ([`IdentityAnswers::for_probe`]), and only the probe's: an
//! identity question carrying, in the EDNS option [`dns::PROBE_OPTION`],
//! the LS's [`ProbeToken`], a random secret made at start that only a
//! caller the live control lets in can read (`GET /probe-token` on the
//! metrics listener: `control_allow`, and the `api_key` wherever a
//! state-changing request needs it). Not the source address: a forwarder
//! on the LS's host (dnsdist, a local stub) passes its remote clients'
//! questions on from loopback, but it cannot give them a token
//! they never saw. Every other identity question passes the blocks and the
//! rules first and is told REFUSED under `hide_identity`
//! ([`IdentityAnswers::answer`]). Any other probe question meets them as
//! every query does: [`probe_warnings`] says so in `dnslb check`. Pure: no
//! I/O.
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;

use super::control::keys_match;
use super::rules::{Act, QueryView};
use crate::config::{DynKind, LsConfig, RuleTransport};
use crate::dns;

/// The probe token's length in bytes.
const TOKEN_LEN: usize = 16;

/// The secret that sets `dnslb anycast`'s probe apart from every other
/// client: random, made once when the LS starts (a reload keeps it), read
/// by the probe through the live control and sent in [`dns::PROBE_OPTION`].
#[derive(Clone, PartialEq, Eq)]
pub struct ProbeToken([u8; TOKEN_LEN]);

impl std::fmt::Debug for ProbeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeToken(…)")
    }
}

impl ProbeToken {
    /// A new random token.
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// Its bytes, as the probe sends them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Its text form (lower-case hex), as `GET /probe-token` gives it.
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }

    /// The token written as [`ProbeToken::to_hex`] writes it.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.trim().as_bytes())
            .ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// Whether `given` is this token (compared in constant time).
    pub fn is(&self, given: &[u8]) -> bool {
        keys_match(&self.0, given)
    }
}

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
    /// `question_end`) when it is the anycast probe's: an identity question
    /// carrying `token` in [`dns::PROBE_OPTION`]. Told even when hidden
    /// (whoever may read the token may read the host name), with the option
    /// acknowledged (empty) in an OPT, so that the probe knows its token
    /// was taken. `None`: not the probe's (no token, or another one); the
    /// query goes on to the blocks and the rules as any client's.
    pub fn for_probe(
        &self,
        raw: &[u8],
        question_end: usize,
        token: &ProbeToken,
    ) -> Option<Vec<u8>> {
        if !dns::is_identity_question(raw, question_end) {
            return None;
        }
        if !dns::probe_option(raw).is_some_and(|given| token.is(given)) {
            return None;
        }
        dns::identity_answer(raw, question_end, &self.text).map(dns::with_probe_ack)
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

/// `dnslb check`'s warnings about the anycast probe's question at the door
/// of an LS configured by `c`: a rule that drops it or answers it itself,
/// and a `name-rate` dynamic block that a client's flood could set off on
/// its name. None for an identity question (answered before either when it
/// carries the probe token, as `dnslb anycast`'s does) or without
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
            format!("warning: the rule \"{name}\" drops the probe's question \"{q}\" (from {src}): the LS would never be announced; ask \"id.server. TXT\", which the LS answers the probe (its token) before its rules")
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
        ch_txt("id.server.", DNSClass::CH, None)
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

    /// `name` CH TXT carrying `token` (if any) in the probe's option.
    fn ch_txt(name: &str, class: DNSClass, token: Option<&[u8]>) -> (Vec<u8>, usize) {
        use hickory_proto::op::Edns;
        use hickory_proto::rr::rdata::opt::EdnsOption;
        let mut q = Query::query(Name::from_ascii(name).unwrap(), RecordType::TXT);
        q.set_query_class(class);
        let mut m = Message::query();
        m.add_query(q);
        if let Some(t) = token {
            let mut edns = Edns::new();
            edns.options_mut()
                .insert(EdnsOption::Unknown(dns::PROBE_OPTION, t.to_vec()));
            m.set_edns(edns);
        }
        let raw = m.to_vec().unwrap();
        let end = dns::peek_plain_query(&raw).unwrap().1;
        (raw, end)
    }

    #[test]
    fn only_an_identity_question_with_the_right_token_is_the_probe() {
        let token = ProbeToken::random();
        let other = ProbeToken::random();
        assert_ne!(token, other);
        assert_eq!(ProbeToken::from_hex(&token.to_hex()), Some(token.clone()));
        assert_eq!(ProbeToken::from_hex("abc"), None);
        assert!(
            !format!("{token:?}").contains(&token.to_hex()),
            "Debug tells the token"
        );
        let hidden = LsConfig {
            identity: Some("ls-7.example".into()),
            hide_identity: true,
            ..LsConfig::default()
        };
        let a = IdentityAnswers::from_config(&hidden);
        let (ch, tok) = (DNSClass::CH, Some(token.as_bytes()));
        let (theirs, short) = (Some(other.as_bytes()), Some(&token.as_bytes()[..8]));
        for (what, name, class, given, probe) in [
            ("the token", "id.server.", ch, tok, true),
            ("the token", "hostname.bind.", ch, tok, true),
            ("no option", "id.server.", ch, None, false),
            ("another token", "id.server.", ch, theirs, false),
            ("half the token", "id.server.", ch, short, false),
            ("an empty option", "id.server.", ch, Some(&[][..]), false),
            ("class IN", "id.server.", DNSClass::IN, tok, false),
            ("another name", "version.bind.", ch, tok, false),
        ] {
            let (raw, end) = ch_txt(name, class, given);
            let told = a.for_probe(&raw, end, &token);
            assert_eq!(told.is_some(), probe, "{what} {name} {class:?}");
            if let Some(ans) = told {
                assert_eq!(rcode(&ans), 0);
                assert!(String::from_utf8_lossy(&ans).contains("ls-7.example"));
                assert_eq!(dns::probe_option(&ans), Some(&[][..]), "acknowledged");
            } else if class == DNSClass::CH && name != "version.bind." {
                // Any other client: REFUSED while hidden.
                assert_eq!(rcode(&a.answer(&raw, end).unwrap()), 5, "{what}");
            }
        }
    }

    #[test]
    fn the_identity_is_the_configured_text_or_refused_when_hidden() {
        let (raw, end) = id_server();
        let named = LsConfig {
            identity: Some("ls-7.example".into()),
            ..LsConfig::default()
        };
        let any = IdentityAnswers::from_config(&named)
            .answer(&raw, end)
            .unwrap();
        assert_eq!(rcode(&any), 0);
        assert!(String::from_utf8_lossy(&any).contains("ls-7.example"));
        let hidden = LsConfig {
            hide_identity: true,
            ..named.clone()
        };
        let a = IdentityAnswers::from_config(&hidden);
        let any = a.answer(&raw, end).unwrap();
        assert_eq!(rcode(&any), 5, "REFUSED when hidden");
        assert!(!String::from_utf8_lossy(&any).contains("ls-7"));
        // Not an identity question: none of this applies.
        let (raw_in, end_in) = ch_txt("id.server.", DNSClass::IN, None);
        assert_eq!(a.answer(&raw_in, end_in), None);
    }
}
