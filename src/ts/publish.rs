//! The catalog zone a TS publishes (RFC 9432, version 2; `catalog` in its
//! `[[ts]]`): one PTR per zone it is primary for, at
//! `<id>.zones.<catalog>`, the ID a hash of the member's name (FNV-1a, 64
//! bits, of its lower-cased wire form without the final root byte: the
//! same across restarts, reloads and builds; docs/CONFIG.md `catalog` says
//! how to compute one), beside the apex's `NS invalid.` and `version TXT "2"`. The
//! SOA is made up as for a PROJ table, so its serial rises when the members
//! change, and the zone is transferred and NOTIFYed like any other.
use hickory_proto::rr::rdata::{NS, PTR, TXT};
use hickory_proto::rr::{Name, RData};

use super::source::SourceRecord;

/// The TTL of the catalog's records (RFC 9432 does not use it).
const TTL: u32 = 0;

/// A member's ID: FNV-1a (64 bits) over its name's lower-cased wire form
/// without the root byte, in 16 hex digits.
pub(super) fn member_id(zone: &Name) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for label in zone.iter() {
        let bytes = std::iter::once(u8::try_from(label.len()).unwrap_or(u8::MAX))
            .chain(label.iter().map(u8::to_ascii_lowercase));
        for b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The records (the SOA aside) of the catalog `catalog` listing `members`.
pub(super) fn catalog_records<'a>(
    catalog: &Name,
    members: impl IntoIterator<Item = &'a Name>,
) -> Vec<SourceRecord> {
    let rec = |name: Name, data: RData| SourceRecord {
        name,
        ttl: TTL,
        data,
        line: 0,
    };
    let mut out = vec![rec(
        catalog.clone(),
        RData::NS(NS(Name::from_labels(vec!["invalid"]).unwrap_or_default())),
    )];
    if let Ok(version) = catalog.prepend_label("version") {
        out.push(rec(version, RData::TXT(TXT::new(vec!["2".into()]))));
    }
    let Ok(zones) = catalog.prepend_label("zones") else {
        return out;
    };
    for m in members {
        if m == catalog {
            continue;
        }
        let mut name = m.clone();
        name.set_fqdn(true);
        if let Ok(owner) = zones.prepend_label(member_id(m).as_str()) {
            out.push(rec(owner, RData::PTR(PTR(name))));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::dns::fixtures::name;

    #[test]
    fn member_ids_are_stable_and_blind_to_case() {
        assert_eq!(
            member_id(&name("example.com.")),
            member_id(&name("Example.COM."))
        );
        assert_ne!(
            member_id(&name("example.com.")),
            member_id(&name("example.net."))
        );
        // Fixed: a change of this value renames every member for consumers.
        assert_eq!(member_id(&name("example.com.")), "95baea1edc288222");
    }

    #[test]
    fn a_catalog_lists_its_members_and_its_version() {
        let cat = name("cat.test.");
        let recs = catalog_records(&cat, [&name("a.test."), &cat]);
        let text: Vec<String> = recs
            .iter()
            .map(|r| format!("{} {}", r.name, r.data))
            .collect();
        assert_eq!(text[0], "cat.test. invalid.");
        assert_eq!(text[1], "version.cat.test. 2");
        assert_eq!(
            text[2],
            format!("{}.zones.cat.test. a.test.", member_id(&name("a.test.")))
        );
        assert_eq!(text.len(), 3, "the catalog is no member of itself");
    }
}
