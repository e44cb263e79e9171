//! `[[ls.rule]]` and `[[ls.response_rule]]` (docs/CONFIG.md (the LS) "Rules and dynamic
//! blocks", §7): the query rules checked in file order at the LS's door
//! ([`RuleConfig`]: a `match` of conditions, all of which must hold, and an
//! [`RuleAction`]) and the rules on the backend's answer
//! ([`ResponseRuleConfig`]). Only the schema and its values live here; the
//! rules they must follow are in `validate` (`check_rules`), and the
//! compiled, allocation-free form is the LS's (`ls::rules`).
//!
//! An action is a word (`"drop"`) or a table (`{ pool = "x" }`); a table
//! holds exactly one of `pool`, `spoof`, `spoof_cname`, `delay_ms` and
//! `rate` (with `ttl` beside a spoof, `then` beside a rate), so a typo or a
//! second action is an error at its line, never a silent choice.

use std::fmt;
use std::net::IpAddr;

use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::values::{de_name, de_names, de_nets, de_word_or_number, de_word_or_table};

/// The TTL of a spoofed answer when `ttl` is left out, in seconds.
pub const SPOOF_TTL_DEFAULT: u32 = 60;
/// The highest `rate` of a rule, in queries per second (as `rate_limit_qps`).
pub(super) const MAX_RULE_RATE: u32 = 10_000_000;
/// The longest `delay_ms`: past ten seconds a client has long given up.
pub const MAX_DELAY_MS: u64 = 10_000;
/// Extended DNS Error "Blocked" (RFC 8914 §4.16), the default of `ede`.
pub const EDE_BLOCKED: u16 = 15;
/// Extended DNS Error "Censored" (RFC 8914 §4.17).
pub const EDE_CENSORED: u16 = 16;
/// Extended DNS Error "Filtered" (RFC 8914 §4.18).
pub const EDE_FILTERED: u16 = 17;

keyword_enum! {
    /// A value of a rule's `match.transport`: how the query came.
    RuleTransport, default Udp {
        /// Plain DNS over UDP.
        Udp = "udp",
        /// Plain DNS over TCP.
        Tcp = "tcp",
        /// DNS over TLS (`[ls.tls]`).
        Dot = "dot",
        /// DNS over HTTPS (`[ls.https]`).
        Doh = "doh",
        /// DNS over QUIC (`[ls.quic]`).
        Doq = "doq",
    }
}

/// `[[ls.rule]]`: one query rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name used in metrics and logs (unique among the query rules, non-empty).
    pub name: String,
    /// The conditions, all of which must hold; none: every query. \[none\]
    #[serde(rename = "match", default)]
    pub matches: RuleMatch,
    /// What is done with a query that matches.
    pub action: RuleAction,
    /// Log each query the rule acts on (within a log budget). \[false\]
    #[serde(default)]
    pub log: bool,
    /// AA in the rule's made-up answers. \[false\]
    #[serde(default)]
    pub aa: bool,
    /// The Extended DNS Error of the rule's made-up answers: 15 (Blocked),
    /// 16 (Censored) or 17 (Filtered). \[15\]
    #[serde(default = "ede_blocked")]
    pub ede: u16,
}

/// `ede`'s default.
fn ede_blocked() -> u16 {
    EDE_BLOCKED
}

/// A query rule's `match`: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleMatch {
    /// The name is one of these or under one (label boundaries, case aside).
    #[serde(deserialize_with = "de_names")]
    pub suffix: Vec<Name>,
    /// The question's type is one of these (`"A"`, `"ANY"`, `"TYPE65"` or a number).
    pub qtype: Vec<QType>,
    /// The client is in one of these networks.
    #[serde(deserialize_with = "de_nets")]
    pub client: Vec<IpNet>,
    /// The client is in none of these networks.
    #[serde(deserialize_with = "de_nets")]
    pub not_client: Vec<IpNet>,
    /// The query came by one of these.
    pub transport: Vec<RuleTransport>,
    /// The query's RD flag is this.
    pub rd: Option<bool>,
    /// The query's DO bit (DNSSEC OK, in its OPT; no OPT is DO=0) is this.
    #[serde(rename = "do")]
    pub dnssec_ok: Option<bool>,
    /// The query's opcode is this (`"QUERY"`, `"NOTIFY"`, `"UPDATE"`... or a number).
    pub opcode: Option<Opcode>,
    /// The name has at least this many labels (the root has none).
    pub min_labels: Option<u8>,
    /// The name's wire form (root byte included) is at least this many bytes.
    pub min_name_len: Option<u16>,
    /// The query's OPT holds an option with this code.
    pub edns_option: Option<u16>,
}

/// What a query rule does (its `action`).
#[derive(Debug, Clone, PartialEq)]
pub enum RuleAction {
    /// No answer.
    Drop,
    /// REFUSED, with the rule's EDE.
    Refuse,
    /// NXDOMAIN, with the rule's EDE.
    Nxdomain,
    /// SERVFAIL, with the rule's EDE.
    Servfail,
    /// An empty TC=1 answer over UDP (the client asks again over TCP); on
    /// the stream transports the rule does not apply.
    Truncate,
    /// Forwarded as usual; the remaining rules are not checked.
    Allow,
    /// `{ pool = "x" }`: forwarded to that `[[ls.pool]]`'s backends.
    Pool(String),
    /// `{ spoof = [...], ttl = N }`: the addresses of the query's family
    /// (A or AAAA), NODATA for any other type.
    Spoof {
        /// The addresses, both families mixed.
        addrs: Vec<IpAddr>,
        /// Their TTL. \[60\]
        ttl: u32,
    },
    /// `{ spoof_cname = "target.", ttl = N }`: a CNAME to the target only.
    SpoofCname {
        /// Where the CNAME points.
        target: Name,
        /// Its TTL. \[60\]
        ttl: u32,
    },
    /// `{ delay_ms = N }`: forwarded after N ms over UDP (the worker goes on
    /// meanwhile); on the stream transports the rule does not apply.
    Delay {
        /// The delay.
        ms: u64,
    },
    /// `{ rate = N, then = <action> }`: up to N queries a second per client
    /// group pass on to the next rules; past it, `then` applies.
    Rate {
        /// Queries per second per client group.
        qps: u32,
        /// The action over the rate (not itself a rate).
        then: Box<RuleAction>,
    },
}

impl RuleAction {
    /// The action's name in metrics and logs (`drop`, `pool`, `spoof`...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Refuse => "refuse",
            Self::Nxdomain => "nxdomain",
            Self::Servfail => "servfail",
            Self::Truncate => "truncate",
            Self::Allow => "allow",
            Self::Pool(_) => "pool",
            Self::Spoof { .. } => "spoof",
            Self::SpoofCname { .. } => "spoof_cname",
            Self::Delay { .. } => "delay",
            Self::Rate { .. } => "rate",
        }
    }

    /// The action written as one word, if `word` is one.
    fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "drop" => Self::Drop,
            "refuse" => Self::Refuse,
            "nxdomain" => Self::Nxdomain,
            "servfail" => Self::Servfail,
            "truncate" => Self::Truncate,
            "allow" => Self::Allow,
            _ => return None,
        })
    }
}

/// The words an action may be, for messages.
const ACTION_WORDS: &str = "drop, refuse, nxdomain, servfail, truncate, allow";
/// The tables an action may be, for messages.
const ACTION_TABLES: &str =
    "{ pool }, { spoof, ttl }, { spoof_cname, ttl }, { delay_ms }, { rate, then }";

/// An action written as a table, before it is known to hold one action.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionTable {
    pool: Option<String>,
    #[serde(default, deserialize_with = "de_opt_ips")]
    spoof: Option<Vec<IpAddr>>,
    #[serde(default, deserialize_with = "de_opt_name")]
    spoof_cname: Option<Name>,
    ttl: Option<u32>,
    delay_ms: Option<u64>,
    rate: Option<u32>,
    then: Option<RuleAction>,
}

/// An IP address from a TOML string; its error shows the bad value.
struct IpDe(IpAddr);

impl<'de> Deserialize<'de> for IpDe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.trim().parse().map(IpDe).map_err(|_| {
            de::Error::custom(format!(
                "invalid IP address {text:?}: expected one like \"192.0.2.1\" or \"2001:db8::1\""
            ))
        })
    }
}

/// Deserializes a list of IP addresses that is present.
fn de_opt_ips<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<IpAddr>>, D::Error> {
    Vec::<IpDe>::deserialize(deserializer).map(|v| Some(v.into_iter().map(|a| a.0).collect()))
}

/// Deserializes a DNS name that is present.
fn de_opt_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Name>, D::Error> {
    de_name(deserializer).map(Some)
}

impl ActionTable {
    /// The one action the table holds, or what is wrong with it.
    fn action(self) -> Result<RuleAction, String> {
        let given: Vec<&str> = [
            ("pool", self.pool.is_some()),
            ("spoof", self.spoof.is_some()),
            ("spoof_cname", self.spoof_cname.is_some()),
            ("delay_ms", self.delay_ms.is_some()),
            ("rate", self.rate.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        if given.len() != 1 {
            return Err(format!(
                "an action table holds exactly one action: {ACTION_TABLES}; got {}",
                if given.is_empty() {
                    "none".to_owned()
                } else {
                    given.join(" and ")
                }
            ));
        }
        let spoofing = self.spoof.is_some() || self.spoof_cname.is_some();
        if self.ttl.is_some() && !spoofing {
            return Err("ttl goes with spoof or spoof_cname only".into());
        }
        if self.then.is_some() != self.rate.is_some() {
            return Err("rate and then go together: { rate = N, then = \"drop\" }".into());
        }
        let ttl = self.ttl.unwrap_or(SPOOF_TTL_DEFAULT);
        Ok(match (self.pool, self.spoof, self.spoof_cname) {
            (Some(pool), _, _) => RuleAction::Pool(pool),
            (_, Some(addrs), _) => RuleAction::Spoof { addrs, ttl },
            (_, _, Some(target)) => RuleAction::SpoofCname { target, ttl },
            _ => match (self.delay_ms, self.rate, self.then) {
                (Some(ms), _, _) => RuleAction::Delay { ms },
                (_, Some(qps), Some(then)) => RuleAction::Rate {
                    qps,
                    then: Box::new(then),
                },
                _ => return Err(format!("expected one of {ACTION_TABLES}")),
            },
        })
    }
}

impl<'de> Deserialize<'de> for RuleAction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        de_word_or_table(
            deserializer,
            &format!("one of {ACTION_WORDS} or a table: {ACTION_TABLES}"),
            |v| {
                RuleAction::from_word(v).ok_or_else(|| {
                    format!(
                        "expected one of {ACTION_WORDS} or a table ({ACTION_TABLES}), got {v:?}"
                    )
                })
            },
            ActionTable::action,
        )
    }
}

/// A record type in a rule: a mnemonic (`"AAAA"`, `"ANY"`, `"TYPE65"`) or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QType(pub u16);

impl QType {
    /// The type written as `text` (upper or lower case).
    fn parse(text: &str) -> Option<Self> {
        let upper = text.trim().to_ascii_uppercase();
        if let Some(n) = upper.strip_prefix("TYPE") {
            return n.parse().ok().map(QType);
        }
        upper
            .parse::<RecordType>()
            .ok()
            .map(|t| QType(u16::from(t)))
    }
}

impl fmt::Display for QType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match RecordType::from(self.0) {
            RecordType::Unknown(n) => write!(f, "TYPE{n}"),
            t => write!(f, "{t}"),
        }
    }
}

impl<'de> Deserialize<'de> for QType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        de_word_or_number(
            deserializer,
            "a record type like \"A\", \"ANY\" or \"TYPE65\", or its number",
            |v| {
                QType::parse(v).ok_or_else(|| {
                    format!(
                        "unknown record type {v:?}: expected one like \"A\", \"ANY\" or \"TYPE65\""
                    )
                })
            },
            |n| {
                u16::try_from(n)
                    .map(QType)
                    .map_err(|_| format!("a record type is 0 to 65535, got {n}"))
            },
        )
    }
}

/// The opcodes a rule may name, by their RFC names.
const OPCODES: [(&str, u8); 6] = [
    ("QUERY", 0),
    ("IQUERY", 1),
    ("STATUS", 2),
    ("NOTIFY", 4),
    ("UPDATE", 5),
    ("DSO", 6),
];

/// A DNS opcode in a rule: `"QUERY"`, `"NOTIFY"`, `"UPDATE"`... or a number 0 to 15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Opcode(pub u8);

impl<'de> Deserialize<'de> for Opcode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(HeaderCode {
                what: "opcode",
                expecting: "an opcode like \"QUERY\" or \"UPDATE\", or a number 0 to 15",
                names: &OPCODES,
            })
            .map(Opcode)
    }
}

/// A 4-bit header code in a rule, by one of its RFC `names` (any case) or
/// as a number 0 to 15: what [`Opcode`] and [`Rcode`] read.
struct HeaderCode {
    /// The code's kind in errors (`opcode`, `rcode`).
    what: &'static str,
    /// What serde's own errors say was expected.
    expecting: &'static str,
    /// The names a rule may give, with their codes.
    names: &'static [(&'static str, u8)],
}

impl Visitor<'_> for HeaderCode {
    type Value = u8;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u8, E> {
        self.names
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(v.trim()))
            .map(|&(_, code)| code)
            .ok_or_else(|| {
                let names: Vec<&str> = self.names.iter().map(|(n, _)| *n).collect();
                E::custom(format!(
                    "unknown {} {v:?}: expected one of {} or a number 0 to 15",
                    self.what,
                    names.join(", ")
                ))
            })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u8, E> {
        u8::try_from(v)
            .ok()
            .filter(|&c| c <= 15)
            .ok_or_else(|| E::custom(format!("an {} is 0 to 15, got {v}", self.what)))
    }
}

/// `[[ls.response_rule]]`: one rule on a backend's answer, before the cache
/// keeps it and the client gets it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseRuleConfig {
    /// Name used in metrics and logs (unique among the response rules, non-empty).
    pub name: String,
    /// The conditions, all of which must hold; none: every answer. \[none\]
    #[serde(rename = "match", default)]
    pub matches: ResponseMatch,
    /// What is done with an answer that matches.
    pub action: ResponseAction,
    /// Log each answer the rule acts on (within a log budget). \[false\]
    #[serde(default)]
    pub log: bool,
}

/// A response rule's `match`: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseMatch {
    /// The answer's rcode is one of these (`"NOERROR"`, `"NXDOMAIN"`... or a number).
    pub rcode: Vec<Rcode>,
    /// The question's type is one of these.
    pub qtype: Vec<QType>,
    /// The answer section holds a record of one of these types.
    pub answer_type: Vec<QType>,
    /// The answer is at least this many bytes.
    pub min_size: Option<u16>,
}

/// The rcodes a rule may name.
const RCODES: [(&str, u8); 11] = [
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
];

/// A header rcode in a rule: `"NOERROR"`, `"NXDOMAIN"`... or a number 0 to 15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rcode(pub u8);

impl<'de> Deserialize<'de> for Rcode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(HeaderCode {
                what: "rcode",
                expecting: "an rcode like \"NXDOMAIN\", or a number 0 to 15",
                names: &RCODES,
            })
            .map(Rcode)
    }
}

/// What a response rule does (its `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseAction {
    /// The answer is not sent (nor cached): the query ends unanswered.
    Drop,
    /// The client gets SERVFAIL instead (nothing cached).
    Servfail,
    /// `{ limit_ttl = { min, max } }`: every TTL of the answer (the OPT's
    /// aside) raised to `min` and lowered to `max`.
    LimitTtl {
        /// The lowest TTL.
        min: u32,
        /// The highest TTL.
        max: u32,
    },
    /// Logged and passed on unchanged; the next rules are checked too.
    Log,
}

impl ResponseAction {
    /// The action's name in metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Servfail => "servfail",
            Self::LimitTtl { .. } => "limit_ttl",
            Self::Log => "log",
        }
    }
}

/// `limit_ttl`'s table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TtlBounds {
    #[serde(default)]
    min: u32,
    #[serde(default = "max_ttl")]
    max: u32,
}

/// `limit_ttl.max`'s default: the largest TTL (RFC 2181 §8).
fn max_ttl() -> u32 {
    super::values::MAX_TTL
}

/// A response action written as a table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseActionTable {
    limit_ttl: TtlBounds,
}

/// The words a response action may be, for messages.
const RESPONSE_WORDS: &str = "drop, servfail, log or { limit_ttl = { min, max } }";

impl<'de> Deserialize<'de> for ResponseAction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        de_word_or_table(
            deserializer,
            &format!("one of {RESPONSE_WORDS}"),
            |v| match v {
                "drop" => Ok(ResponseAction::Drop),
                "servfail" => Ok(ResponseAction::Servfail),
                "log" => Ok(ResponseAction::Log),
                _ => Err(format!("expected one of {RESPONSE_WORDS}, got {v:?}")),
            },
            |t: ResponseActionTable| {
                Ok(ResponseAction::LimitTtl {
                    min: t.limit_ttl.min,
                    max: t.limit_ttl.max,
                })
            },
        )
    }
}
