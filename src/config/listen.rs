//! `listen` in `[[ts]]`: one address (`listen = "127.0.0.1:5301"`) or a
//! list of them (`listen = ["127.0.0.1:5301", "[::1]:5301"]`, as NSD's
//! `ip-address:` lines and Knot's `listen:`), read into a list of at least
//! one. The TS serves UDP and TCP on each.
use std::net::SocketAddr;

use serde::de::{self, Deserializer, IntoDeserializer, SeqAccess, Visitor};

use super::values::AddrDe;

/// Deserializes `listen`: an address, or a non-empty list of them.
pub(super) fn de_listen<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SocketAddr>, D::Error> {
    deserializer.deserialize_any(OneOrMore)
}

/// The visitor of [`de_listen`].
struct OneOrMore;

impl<'de> Visitor<'de> for OneOrMore {
    type Value = Vec<SocketAddr>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an address like \"127.0.0.1:5301\", or a list of them")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        let one: AddrDe = serde::Deserialize::deserialize(text.into_deserializer())?;
        Ok(vec![one.0])
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut all = Vec::new();
        while let Some(one) = seq.next_element::<AddrDe>()? {
            all.push(one.0);
        }
        if all.is_empty() {
            return Err(de::Error::custom(
                "listen needs at least one address, like \"127.0.0.1:5301\"",
            ));
        }
        Ok(all)
    }
}

#[allow(clippy::unwrap_used)]
#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct T {
        #[serde(deserialize_with = "de_listen")]
        listen: Vec<SocketAddr>,
    }

    fn read(text: &str) -> Result<Vec<SocketAddr>, String> {
        toml::from_str::<T>(text)
            .map(|t| t.listen)
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn listen_is_one_address_or_a_list_of_them() {
        let a: SocketAddr = "127.0.0.1:5301".parse().unwrap();
        let b: SocketAddr = "[::1]:5301".parse().unwrap();
        assert_eq!(read("listen = \"127.0.0.1:5301\"").unwrap(), [a]);
        assert_eq!(read("listen = [\"127.0.0.1:5301\"]").unwrap(), [a]);
        assert_eq!(
            read("listen = [\"127.0.0.1:5301\", \"[::1]:5301\"]").unwrap(),
            [a, b]
        );
        assert!(
            read("listen = []")
                .unwrap_err()
                .contains("at least one address")
        );
        let bad = read("listen = [\"127.0.0.1:5301\", \"nowhere\"]").unwrap_err();
        assert!(bad.contains("invalid address \"nowhere\""), "{bad}");
        let bad = read("listen = 5301").unwrap_err();
        assert!(bad.contains("or a list of them"), "{bad}");
    }
}
