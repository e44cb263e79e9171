//! The catalog: the zones one TS serves, and which of them answers a name.
use super::Zone;
use crate::ts::wire::Key;

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

    /// The zone authoritative for `name` (lower-cased wire form), if any.
    pub fn find(&self, name: &Key) -> Option<&Zone> {
        self.zones.iter().find(|z| name.is_under(&z.origin_key))
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
