//! The catalog: the zones one TS serves, and which of them answers a name;
//! a new catalog with some zones replaced or gone, in one linear pass (a
//! batch of secondary zones installed at once).
use std::collections::{HashMap, HashSet};

use super::Zone;
use super::rtype::DS;
use super::store::hash;
use crate::ts::wire::NameKey;

/// The zones one TS serves, most specific origin first.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    zones: Vec<Zone>,
    /// By origin (lower-cased wire form), the zone's index, when there are
    /// more zones than [`SCAN_MAX`]: a query then looks up each of its
    /// name's suffixes (at most its label count), not every zone. An
    /// open-addressing table of indices into `zones` hashed by the origin
    /// (a map holding a copy of each origin was an allocation a zone).
    by_origin: Option<Box<[u64]>>,
    /// Bit `n` set when some zone's origin has `n` labels (the root none):
    /// a query looks up only the suffixes of those label counts (at
    /// 100,000 zones `zK.test.`, `www.zK.test.` is no zone's, and is not
    /// hashed and looked for).
    depths: u128,
}

/// A free slot of the table by origin.
const FREE: u64 = u64::MAX;

/// A slot of the table by origin: the high half of the origin's hash above
/// the zone's index. A look-up compares a zone's origin only where the
/// halves agree: the first of a query's suffixes (`www.example.com.` in
/// `example.com.`) is no zone's origin, and is found absent without the
/// zone and origin of each slot it passes read (two cache misses each, at
/// 100,000 zones).
fn slot(hash: u64, index: u32) -> u64 {
    (hash & !u64::from(u32::MAX)) | u64::from(index)
}

/// Up to this many zones a scan of them is as cheap as hashing the name's
/// suffixes (the common TS serves a handful).
const SCAN_MAX: usize = 16;

impl Catalog {
    /// A catalog of `zones`.
    pub fn new(mut zones: Vec<Zone>) -> Self {
        zones.sort_by_key(|z| std::cmp::Reverse(z.origin.num_labels()));
        Catalog::indexed(zones)
    }

    /// A catalog of `zones`, already most specific first.
    fn indexed(zones: Vec<Zone>) -> Self {
        let by_origin = (zones.len() > SCAN_MAX).then(|| origin_table(&zones));
        let depths = zones
            .iter()
            .fold(0, |held, z| held | depth_bit(z.origin.num_labels().into()));
        Catalog {
            zones,
            by_origin,
            depths,
        }
    }

    /// Whether some zone's origin has `labels` labels.
    fn holds_depth(&self, labels: usize) -> bool {
        self.depths & depth_bit(labels) != 0
    }

    /// The zone whose origin is `key` (lower-cased wire form) in `table`
    /// (see [`origin_table`]).
    fn looked_up(&self, table: &[u64], key: &[u8]) -> Option<&Zone> {
        let mask = table.len().checked_sub(1)?;
        let h = hash(key);
        let mut at = (h as usize) & mask;
        loop {
            let s = *table.get(at)?;
            if s == FREE {
                return None;
            }
            if (s ^ h) >> 32 == 0 {
                let zone = self.zones.get(s as u32 as usize)?;
                if &zone.origin_key[..] == key {
                    return Some(zone);
                }
            }
            at = (at + 1) & mask;
        }
    }

    /// The zone that answers `qtype` for `name` (lower-cased wire form), if
    /// any: the most specific one holding the name, except that a DS question
    /// at a zone's apex goes to the zone above it when this TS serves one
    /// (RFC 4035 §3.1.4.1: the DS set lives on the parent side of the cut),
    /// as NSD and Knot answer it.
    pub fn find(&self, name: &NameKey, qtype: u16) -> Option<&Zone> {
        match &self.by_origin {
            None => answering(
                self.zones.iter().filter(|z| name.is_under(&z.origin_key)),
                name,
                qtype,
            ),
            // The name's suffixes, longest first, down to the root: those
            // as long as some zone's origin.
            Some(by_origin) => answering(
                (0..=name.labels())
                    .filter(|&skip| self.holds_depth(name.labels() - skip))
                    .filter_map(|skip| self.looked_up(by_origin, name.suffix(skip).1)),
                name,
                qtype,
            ),
        }
    }

    /// This catalog with `put` in place of the zones of their origins (or
    /// beside them) and the zones whose origins (lower-cased wire form) are
    /// in `gone` removed: linear in the zones served, whatever the size of
    /// the batch (the zones kept are already in order; `put` is sorted and
    /// merged in). A zone given twice in `put`: the last one.
    pub fn replaced(&self, put: Vec<Zone>, gone: &HashSet<Box<[u8]>>) -> Catalog {
        let mut last: HashMap<Box<[u8]>, Zone> = HashMap::with_capacity(put.len());
        for z in put {
            last.insert(Box::from(&z.origin_key[..]), z);
        }
        let removed: HashSet<&[u8]> = last.keys().chain(gone).map(|k| &**k).collect();
        let mut new: Vec<&Zone> = last
            .values()
            .filter(|z| !gone.contains(&z.origin_key[..]))
            .collect();
        new.sort_by_key(|z| std::cmp::Reverse(z.origin.num_labels()));
        let mut zones = Vec::with_capacity(self.zones.len() + new.len());
        let mut new = new.into_iter().peekable();
        for z in self
            .zones
            .iter()
            .filter(|z| !removed.contains(&*z.origin_key))
        {
            let labels = z.origin.num_labels();
            while let Some(n) = new.next_if(|n| n.origin.num_labels() >= labels) {
                zones.push(n.clone());
            }
            zones.push(z.clone());
        }
        zones.extend(new.cloned());
        Catalog::indexed(zones)
    }

    /// Gives each of `zones` (the versions that replace this catalog's)
    /// the query counters of the zone of its origin here, when there is
    /// one: they go on from its counts; a new zone keeps its own, at zero.
    pub fn carry_queries(&self, zones: &mut [Zone]) {
        for z in zones {
            if let Some(o) = self.with_origin(z.origin_wire())
                && !std::sync::Arc::ptr_eq(&o.queries, &z.queries)
            {
                z.queries = std::sync::Arc::clone(&o.queries);
            }
        }
    }

    /// The zone whose origin is `key` (lower-cased wire form), if any: one
    /// hash lookup when there are many zones (a reload of 100,000 zones
    /// pairs each new zone with its old version this way).
    pub fn with_origin(&self, key: &[u8]) -> Option<&Zone> {
        match &self.by_origin {
            Some(by_origin) => self.looked_up(by_origin, key),
            None => self.zones.iter().find(|z| &z.origin_key[..] == key),
        }
    }

    /// The zone whose origin is `origin` (any case, with or without the
    /// root), if any.
    pub fn named(&self, origin: &hickory_proto::rr::Name) -> Option<&Zone> {
        super::key_of(origin)
            .ok()
            .and_then(|key| self.with_origin(&key))
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

/// [`Catalog::depths`]'s bit for `labels` labels (a name has at most 127;
/// more share the last bit).
fn depth_bit(labels: usize) -> u128 {
    1 << labels.min(127)
}

/// The index of `zones` by origin: a slot a zone and a third more (a
/// power of two), each [`FREE`] or a zone's [`slot`], found from the hash
/// of its origin by linear probing. Of zones of one origin, the last (as a
/// map collected from them keeps it). Zones past the 2^32nd (terabytes of
/// them) are not indexed.
fn origin_table(zones: &[Zone]) -> Box<[u64]> {
    let slots = (zones.len() + zones.len() / 3 + 1).next_power_of_two();
    let mut table = vec![FREE; slots].into_boxed_slice();
    let mask = slots - 1;
    for (i, zone) in zones.iter().enumerate() {
        let Ok(index) = u32::try_from(i) else {
            break;
        };
        let h = hash(&zone.origin_key);
        let mut at = (h as usize) & mask;
        while let Some(&s) = table.get(at).filter(|&&s| s != FREE) {
            if (s ^ h) >> 32 == 0
                && zones
                    .get(s as u32 as usize)
                    .is_some_and(|z| z.origin_key == zone.origin_key)
            {
                break;
            }
            at = (at + 1) & mask;
        }
        table[at] = slot(h, index);
    }
    table
}

/// Of the zones `holding` the name (most specific first), the one that
/// answers `qtype`: the first, but for a DS at its apex the one above it.
fn answering<'a>(
    mut holding: impl Iterator<Item = &'a Zone>,
    name: &NameKey,
    qtype: u16,
) -> Option<&'a Zone> {
    let most_specific = holding.next()?;
    if qtype == DS && name.bytes() == &most_specific.origin_key[..] {
        return holding.next().or(Some(most_specific));
    }
    Some(most_specific)
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Query;
    use hickory_proto::rr::RecordType;
    use hickory_proto::serialize::binary::BinEncodable;

    use super::super::fixtures::{name, zone_at};
    use super::*;

    /// The origin of the zone `catalog` finds for `qname`/`qtype`.
    fn found(catalog: &Catalog, qname: &str, qtype: RecordType) -> Option<String> {
        let question = Query::query(name(qname), qtype).to_bytes().unwrap();
        let key = NameKey::read(&question).unwrap();
        catalog
            .find(&key, u16::from(qtype))
            .map(|z| z.origin().to_ascii())
    }

    /// With more zones than a scan is kept for, the lookup by suffix picks
    /// what the scan picks: the most specific zone, the parent for a DS at
    /// a child's apex, the root zone last, and nothing outside every zone.
    #[test]
    fn many_zones_are_found_by_suffix_as_a_scan_finds_them() {
        let origins = ["test.", "sub.z1.test.", "a.b.sub.z1.test.", "."];
        let mut zones: Vec<Zone> = (0..40)
            .map(|i| zone_at(&format!("z{i}.test."), Vec::new()))
            .collect();
        zones.extend(origins.iter().map(|o| zone_at(o, Vec::new())));
        let many = Catalog::new(zones);
        assert!(many.by_origin.is_some());
        let few = Catalog::new(origins.iter().map(|o| zone_at(o, Vec::new())).collect());
        assert!(few.by_origin.is_none());
        let (a, ds) = (RecordType::A, RecordType::DS);
        for (catalog, qname, qtype, want) in [
            (&many, "www.z7.test.", a, "z7.test."),
            (&many, "WWW.Z7.TEST.", a, "z7.test."),
            (&many, "z7.test.", ds, "test."),
            (&many, "x.sub.z1.test.", a, "sub.z1.test."),
            (&many, "sub.z1.test.", ds, "z1.test."),
            (&many, "c.a.b.sub.z1.test.", a, "a.b.sub.z1.test."),
            (&many, "a.b.sub.z1.test.", ds, "sub.z1.test."),
            (&many, "nowhere.test.", a, "test."),
            (&many, "example.org.", a, "."),
            (&many, ".", ds, "."),
            (&few, "x.sub.z1.test.", a, "sub.z1.test."),
            (&few, "sub.z1.test.", ds, "test."),
            (&few, "a.b.sub.z1.test.", ds, "sub.z1.test."),
            (&few, "example.org.", a, "."),
        ] {
            assert_eq!(
                found(catalog, qname, qtype).as_deref(),
                Some(want),
                "{qname} {qtype}"
            );
        }
        let no_root = Catalog::new(
            (0..40)
                .map(|i| zone_at(&format!("z{i}.test."), Vec::new()))
                .collect(),
        );
        assert_eq!(found(&no_root, "example.org.", RecordType::A), None);
    }

    /// A catalog knows the label counts of its zones' origins (a query
    /// looks up its suffixes of those counts only): kept through a
    /// replacement, the root zone's none.
    #[test]
    fn a_catalog_holds_the_label_counts_of_its_origins() {
        let zones: Vec<Zone> = (0..20)
            .map(|i| zone_at(&format!("z{i}.test."), Vec::new()))
            .chain([zone_at("a.b.sub.z1.test.", Vec::new())])
            .collect();
        let catalog = Catalog::new(zones);
        let held = |c: &Catalog| (0..8).filter(|&n| c.holds_depth(n)).collect::<Vec<_>>();
        assert_eq!(held(&catalog), [2, 5]);
        let put = vec![zone_at(".", Vec::new()), zone_at("test.", Vec::new())];
        let gone: HashSet<Box<[u8]>> = [b"\x01a\x01b\x03sub\x02z1\x04test\x00".as_slice()]
            .into_iter()
            .map(Box::from)
            .collect();
        assert_eq!(held(&catalog.replaced(put, &gone)), [0, 1, 2]);
        assert!(Catalog::default().depths == 0);
    }

    /// A batch replaced, added and removed in one pass finds what a
    /// catalog built from scratch of the same zones finds: most specific
    /// first, the last of an origin given twice, the removed gone.
    #[test]
    fn a_catalog_replaced_in_one_pass_finds_what_a_new_one_finds() {
        let old = Catalog::new(
            (0..30)
                .map(|i| zone_at(&format!("z{i}.test."), Vec::new()))
                .chain([zone_at("test.", Vec::new())])
                .collect(),
        );
        let put = vec![
            zone_at("sub.z1.test.", Vec::new()),
            zone_at("Z2.test.", Vec::new()),
            zone_at(".", Vec::new()),
            zone_at("gone.test.", Vec::new()),
        ];
        let gone: HashSet<Box<[u8]>> = [b"\x02z3\x04test\x00".as_slice(), b"\x04gone\x04test\x00"]
            .into_iter()
            .map(Box::from)
            .collect();
        let new = old.replaced(put, &gone);
        // Two new (sub.z1, the root), z2 replaced, z3 gone, gone.test. never in.
        assert_eq!(new.zones().len(), 31 + 2 - 1);
        let labels: Vec<usize> = new
            .zones()
            .iter()
            .map(|z| z.origin.num_labels() as usize)
            .collect();
        assert!(labels.windows(2).all(|w| w[0] >= w[1]), "{labels:?}");
        for (qname, qtype, want) in [
            ("x.sub.z1.test.", RecordType::A, Some("sub.z1.test.")),
            ("sub.z1.test.", RecordType::DS, Some("z1.test.")),
            ("www.z2.test.", RecordType::A, Some("Z2.test.")),
            ("www.z3.test.", RecordType::A, Some("test.")),
            ("www.gone.test.", RecordType::A, Some("test.")),
            ("example.org.", RecordType::A, Some(".")),
        ] {
            assert_eq!(found(&new, qname, qtype).as_deref(), want, "{qname}");
        }
        assert!(new.with_origin(b"\x02z3\x04test\x00").is_none());
        assert!(new.with_origin(b"\x02z4\x04test\x00").is_some());
        assert_eq!(old.zones().len(), 31, "the old one unchanged");
    }
}
