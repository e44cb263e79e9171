//! The catalog: the zones one TS serves, and which of them answers a name.
use super::Zone;
use super::rtype::DS;
use crate::ts::wire::NameKey;

/// The zones one TS serves, most specific origin first.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    zones: Vec<Zone>,
}

impl Catalog {
    /// A catalog of `zones`.
    pub fn new(mut zones: Vec<Zone>) -> Self {
        zones.sort_by_key(|z| std::cmp::Reverse(z.origin.num_labels()));
        Catalog { zones }
    }

    /// The zone that answers `qtype` for `name` (lower-cased wire form), if
    /// any: the most specific one holding the name, except that a DS question
    /// at a zone's apex goes to the zone above it when this TS serves one
    /// (RFC 4035 §3.1.4.1: the DS set lives on the parent side of the cut),
    /// as NSD and Knot answer it.
    pub fn find(&self, name: &NameKey, qtype: u16) -> Option<&Zone> {
        let mut holding = self.zones.iter().filter(|z| name.is_under(&z.origin_key));
        let most_specific = holding.next()?;
        if qtype == DS && name.bytes() == &most_specific.origin_key[..] {
            return holding.next().or(Some(most_specific));
        }
        Some(most_specific)
    }

    /// The zones.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// The zones, by value.
    pub fn into_zones(self) -> Vec<Zone> {
        self.zones
    }
}
