//! The string values of the schema: socket addresses, networks, DNS names and probe
//! questions, parsed with errors that show the bad value, and their serde adapters.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// Parses `NAME TYPE`; the error says what is wrong (the caller adds the key).
pub(super) fn parse_question(text: &str) -> Result<(Name, RecordType), String> {
    let mut words = text.split_whitespace();
    let (Some(name), Some(rtype), None) = (words.next(), words.next(), words.next()) else {
        return Err("expected \"NAME TYPE\", like \". SOA\" or \"example.com A\"".to_owned());
    };
    let name = parse_name(name)?;
    let rtype = RecordType::from_str(&rtype.to_ascii_uppercase())
        .map_err(|_| format!("unknown record type {rtype:?}"))?;
    Ok((name, rtype))
}

/// Parses a DNS name and makes it fully qualified.
pub(super) fn parse_name(text: &str) -> Result<Name, String> {
    if text.is_empty() || text.chars().any(char::is_whitespace) {
        return Err(format!("{text:?} is not a DNS name"));
    }
    let mut name = Name::from_ascii(text).map_err(|e| {
        let why = e.to_string();
        format!(
            "{text:?} is not a DNS name: {}",
            why.trim_end_matches([':', ' '])
        )
    })?;
    name.set_fqdn(true);
    Ok(name)
}

/// Deserializes a string with `parse`, inside the deserializer so that toml points the
/// error at the bad string itself (not at the array holding it).
fn parse_str<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct ParseVisitor<T> {
        expecting: &'static str,
        parse: fn(&str) -> Result<T, String>,
    }

    impl<T> Visitor<'_> for ParseVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
    }

    deserializer.deserialize_str(ParseVisitor { expecting, parse })
}

/// A socket address from a TOML string; its error shows the bad value.
struct AddrDe(SocketAddr);

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

/// Deserializes a list of networks.
pub(super) fn de_nets<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<NetDe>::deserialize(deserializer).map(|v| v.into_iter().map(|n| n.0).collect())
}
