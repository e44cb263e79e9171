//! The string values of the schema: socket addresses, networks, DNS names and probe
//! questions, parsed while the file is read (so a bad one is a `file:line` error like any
//! other bad value) with errors that show the bad value, and their serde adapters (a value
//! written as a word or a table, or as a word or a number, among them); and
//! the keyword enums of the policy keys `[ls]` and `[[ls.pool]]` share ([`Strategy`],
//! [`Order`], [`Layout`], [`OnTimeout`]), and `[ls]`'s [`EcsMode`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Unexpected, Visitor, value::MapAccessDeserializer};

/// The largest TTL a record may carry (RFC 2181 §8).
pub(super) const MAX_TTL: u32 = i32::MAX as u32;

/// A config string that is not the value its key needs; the message shows the value (the
/// caller names the key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Not a DNS name.
    #[error("{text:?} is not a DNS name{}", because(why))]
    Name {
        /// The text as written.
        text: String,
        /// What the name parser said, when it said something.
        why: Option<String>,
    },
    /// A probe question that is not two words.
    #[error("expected \"NAME TYPE\", like \". SOA\" or \"example.com A\", got {text:?}")]
    QuestionShape {
        /// The question as written.
        text: String,
    },
    /// A probe question whose name is not a DNS name.
    #[error("{name}, got {text:?}")]
    QuestionName {
        /// The question as written.
        text: String,
        /// What is wrong with its name.
        name: Box<ValueError>,
    },
    /// A probe question whose type is not a record type.
    #[error("unknown record type {rtype:?}, got {text:?}")]
    RecordType {
        /// The question as written.
        text: String,
        /// The type as written.
        rtype: String,
    },
}

/// `": why"`, or nothing.
fn because(why: &Option<String>) -> String {
    why.as_deref().map(|w| format!(": {w}")).unwrap_or_default()
}

/// `ls.health.query`: the question the health probes ask, `NAME TYPE` in `config.toml`
/// (e.g. `". SOA"`, `"example.com A"`; the type is case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeQuestion {
    /// The name, fully qualified.
    pub name: Name,
    /// The record type.
    pub rtype: RecordType,
}

impl ProbeQuestion {
    /// `. SOA`, the default probe.
    pub fn root_soa() -> Self {
        Self {
            name: Name::root(),
            rtype: RecordType::SOA,
        }
    }
}

impl ProbeQuestion {
    /// `id.server. TXT`, the anycast probe's default (asked in class CH).
    pub fn id_server() -> Self {
        Self {
            name: Name::from_labels(vec!["id", "server"]).unwrap_or_default(),
            rtype: RecordType::TXT,
        }
    }

    /// Whether it is an identity question (RFC 4892: `id.server.` or
    /// `hostname.bind.` TXT, asked in class CH), which the LS answers
    /// itself.
    pub fn is_identity(&self) -> bool {
        self.rtype == RecordType::TXT && crate::dns::is_identity_name(&self.name.to_ascii())
    }
}

impl Default for ProbeQuestion {
    fn default() -> Self {
        Self::root_soa()
    }
}

impl fmt::Display for ProbeQuestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.rtype)
    }
}

impl FromStr for ProbeQuestion {
    type Err = ValueError;

    /// Parses `NAME TYPE`.
    fn from_str(text: &str) -> Result<Self, ValueError> {
        let mut words = text.split_whitespace();
        let (Some(name), Some(rtype), None) = (words.next(), words.next(), words.next()) else {
            return Err(ValueError::QuestionShape {
                text: text.to_owned(),
            });
        };
        let name = parse_name(name).map_err(|e| ValueError::QuestionName {
            text: text.to_owned(),
            name: Box::new(e),
        })?;
        let rtype = RecordType::from_str(&rtype.to_ascii_uppercase()).map_err(|_| {
            ValueError::RecordType {
                text: text.to_owned(),
                rtype: rtype.to_owned(),
            }
        })?;
        Ok(Self { name, rtype })
    }
}

impl<'de> Deserialize<'de> for ProbeQuestion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_str(deserializer, "a question like \". SOA\"", Self::from_str)
    }
}

/// Parses a DNS name (such as `.`, `example.com` or `example.com.`) and makes it fully
/// qualified.
///
/// # Errors
///
/// [`ValueError::Name`] when `text` is empty, holds white space, or is not a DNS name
/// (an empty label, a label over 63 bytes, a name over 255).
pub fn parse_name(text: &str) -> Result<Name, ValueError> {
    let bad = |why: Option<String>| ValueError::Name {
        text: text.to_owned(),
        why,
    };
    if text.is_empty() || text.chars().any(char::is_whitespace) {
        return Err(bad(None));
    }
    let text_for_hickory = decimal_escapes(text).ok_or_else(|| bad(None))?;
    let mut name = Name::from_ascii(&text_for_hickory).map_err(|e| {
        let why = e.to_string();
        let why = why.trim_end_matches([':', ' ']);
        bad((!why.is_empty()).then(|| why.to_owned()))
    })?;
    name.set_fqdn(true);
    Ok(name)
}

/// `text` with each RFC 1035 decimal escape `\DDD` written as hickory's
/// `Name::from_ascii` reads it right: that parser takes the three digits as
/// octal (`\065` became `5`, not `A`), so a name written with one named
/// another name. A dot becomes `\.`, a letter, digit, `-` or `_` itself,
/// any other byte `\` and the character (refused by the parser as before);
/// `None` for a value over 255 or a byte that is not ASCII.
fn decimal_escapes(text: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !text.contains('\\') {
        return Some(text.into());
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let digits = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(u8::is_ascii_digit));
        match (c, digits) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |v, &x| v * 10 + u32::from(x - b'0'));
                let v = u8::try_from(v).ok().filter(u8::is_ascii)?;
                if v.is_ascii_alphanumeric() || v == b'-' || v == b'_' {
                    out.push(char::from(v));
                } else {
                    out.push('\\');
                    out.push(char::from(v));
                }
                i += 4;
            }
            (b'\\', None) => {
                // `\X`: kept as it is, with the character it escapes.
                out.push('\\');
                let next = text.get(i + 1..)?.chars().next()?;
                out.push(next);
                i += 1 + next.len_utf8();
            }
            _ => {
                let ch = text.get(i..)?.chars().next()?;
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    Some(out.into())
}

/// Deserializes a string with `parse`, inside the deserializer so that toml points the
/// error at the bad string itself (not at the array holding it).
fn parse_str<'de, D, T, E>(
    deserializer: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, E>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    E: fmt::Display,
{
    struct ParseVisitor<T, E> {
        expecting: &'static str,
        parse: fn(&str) -> Result<T, E>,
    }

    impl<T, E: fmt::Display> Visitor<'_> for ParseVisitor<T, E> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_str<DE: de::Error>(self, v: &str) -> Result<T, DE> {
            (self.parse)(v).map_err(DE::custom)
        }
    }

    deserializer.deserialize_str(ParseVisitor { expecting, parse })
}

/// A socket address from a TOML string; its error shows the bad value.
pub(super) struct AddrDe(pub(super) SocketAddr);

impl<'de> Deserialize<'de> for AddrDe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_str(deserializer, "an address like \"127.0.0.1:5300\"", |text| {
            text.trim().parse().map(AddrDe).map_err(|_| {
                format!(
                    "invalid address {text:?}: expected IP:port, like \"127.0.0.1:5300\" or \"[::1]:5300\""
                )
            })
        })
    }
}

/// A network from a TOML string: CIDR (`10.0.0.0/8`) or a bare IP (a /32 or /128).
struct NetDe(IpNet);

impl<'de> Deserialize<'de> for NetDe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_str(deserializer, "a network like \"10.0.0.0/8\"", |text| {
            let trimmed = text.trim();
            let net = if trimmed.contains('/') {
                trimmed.parse::<IpNet>().ok()
            } else {
                trimmed.parse::<IpAddr>().ok().map(IpNet::from)
            };
            net.map(NetDe).ok_or_else(|| {
                format!(
                    "invalid network {text:?}: expected CIDR like \"10.0.0.0/8\" or an IP address"
                )
            })
        })
    }
}

/// Deserializes one socket address.
pub(super) fn de_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    AddrDe::deserialize(deserializer).map(|addr| addr.0)
}

/// Deserializes a list of socket addresses.
pub(super) fn de_addrs<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SocketAddr>, D::Error> {
    Vec::<AddrDe>::deserialize(deserializer).map(|v| v.into_iter().map(|a| a.0).collect())
}

/// Deserializes a socket address that is present (a missing key is `None`).
pub(super) fn de_opt_addr<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    de_addr(deserializer).map(Some)
}

/// Deserializes a DNS name given (the key present), made fully qualified.
pub(super) fn de_opt_name<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Name>, D::Error> {
    de_name(deserializer).map(Some)
}

/// Deserializes a list of networks.
pub(super) fn de_nets<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<NetDe>::deserialize(deserializer).map(|v| v.into_iter().map(|n| n.0).collect())
}

/// Deserializes a DNS name, made fully qualified.
pub(super) fn de_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Name, D::Error> {
    parse_str(deserializer, "a DNS name like \"example.com\"", parse_name)
}

/// A DNS name from a TOML string, made fully qualified.
struct NameDe(Name);

impl<'de> Deserialize<'de> for NameDe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        de_name(deserializer).map(NameDe)
    }
}

/// Deserializes a list of DNS names, each made fully qualified; a bad one is an error
/// at its own line.
pub(super) fn de_names<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Name>, D::Error> {
    Vec::<NameDe>::deserialize(deserializer).map(|v| v.into_iter().map(|n| n.0).collect())
}

/// Deserializes a value written either as a word or as a table (a rule's `action`,
/// `when_all_down`, `check`): `word` reads the word and `table` turns the table, as
/// `Table` reads it, into the value, each with its own message for a bad one;
/// `expecting` is what serde's own errors (a wrong type) say was expected.
pub(super) fn de_word_or_table<'de, D, T, Table>(
    deserializer: D,
    expecting: &str,
    word: fn(&str) -> Result<T, String>,
    table: fn(Table) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    Table: Deserialize<'de>,
{
    deserializer.deserialize_any(WordOr {
        expecting,
        word,
        table: Some(table),
        number: None,
    })
}

/// Deserializes a value written either as a word or as a whole number
/// (`hedge_delay_ms`, a rule's `qtype`): `word` reads the word and `number` the number,
/// each with its own message for a bad one; `expecting` is what serde's own errors (a
/// wrong type) say was expected.
pub(super) fn de_word_or_number<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    expecting: &str,
    word: fn(&str) -> Result<T, String>,
    number: fn(i128) -> Result<T, String>,
) -> Result<T, D::Error> {
    deserializer.deserialize_any(WordOr::<T, de::IgnoredAny> {
        expecting,
        word,
        table: None,
        number: Some(number),
    })
}

/// The visitor behind [`de_word_or_table`] and [`de_word_or_number`]: a word, or
/// (where the key takes one) a table or a whole number; anything else is serde's
/// "invalid type".
struct WordOr<'a, T, Table> {
    expecting: &'a str,
    word: fn(&str) -> Result<T, String>,
    table: Option<fn(Table) -> Result<T, String>>,
    number: Option<fn(i128) -> Result<T, String>>,
}

impl<'de, T, Table: Deserialize<'de>> Visitor<'de> for WordOr<'_, T, Table> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.word)(v).map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let Some(table) = self.table else {
            return Err(de::Error::invalid_type(Unexpected::Map, &self));
        };
        let t = Table::deserialize(MapAccessDeserializer::new(map))?;
        table(t).map_err(de::Error::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        match self.number {
            Some(number) => number(v.into()).map_err(E::custom),
            None => Err(E::invalid_type(Unexpected::Signed(v), &self)),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        match self.number {
            Some(number) => number(v.into()).map_err(E::custom),
            None => Err(E::invalid_type(Unexpected::Unsigned(v), &self)),
        }
    }
}

keyword_enum! {
    /// `ls.strategy`: how many backends a query goes to, and when.
    Strategy, default Hedge {
        /// Send to every usable backend at once; the first useful answer wins.
        Race = "race",
        /// Send to the first backend, then to the next after the hedge delay, and so on.
        Hedge = "hedge",
        /// One backend at a time; move on after `try_timeout_ms` or on SERVFAIL/REFUSED.
        Sequential = "sequential",
    }
}

keyword_enum! {
    /// `ls.order`: which backend is asked first (for hedge and sequential).
    Order, default LeastOutstanding {
        /// The backend with the fewest queries in flight.
        LeastOutstanding = "least-outstanding",
        /// Each backend in turn.
        RoundRobin = "round-robin",
        /// The backend that last answered this name, then the others.
        Sticky = "sticky",
        /// A hash of the query name picks the first backend.
        ConsistentHash = "consistent-hash",
        /// Config order.
        Fixed = "fixed",
        /// Random, in proportion to each backend's `weight`.
        WeightedRandom = "weighted-random",
    }
}

keyword_enum! {
    /// `ls.layout`: how names are spread over the backends.
    Layout, default Partitioned {
        /// Each backend holds some of the names: an NXDOMAIN moves on to the next backend.
        Partitioned = "partitioned",
        /// Every backend holds every name: the first authoritative answer is final.
        Replicated = "replicated",
    }
}

keyword_enum! {
    /// `ls.on_timeout`: the LS's answer when no backend gave a final one in time.
    OnTimeout, default Nxdomain {
        /// A synthesized NXDOMAIN (with an Extended DNS Error saying who was tried).
        Nxdomain = "nxdomain",
        /// A synthesized SERVFAIL.
        Servfail = "servfail",
        /// No answer at all.
        Drop = "drop",
    }
}

keyword_enum! {
    /// `ls.ecs`: what the LS does with a client's EDNS Client Subnet option
    /// (RFC 7871) on the query it forwards.
    EcsMode, default Pass {
        /// The client's option goes to the backend as sent (or none).
        Pass = "pass",
        /// The client's address at /24 (IPv4) or /56 (IPv6) when it sent no
        /// option, as dnsdist's `useClientSubnet`; a client's own is kept.
        Add = "add",
        /// Any option taken out: the backend sees the LS's address.
        Off = "off",
    }
}
