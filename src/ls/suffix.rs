//! The suffix table of the `[[ls.pool]]` zones: which pool a query name goes to
//! (docs/CONFIG.md (the LS), "Pools and routes"). The pool whose zone is the longest suffix of
//! the name, label by label and case-insensitively (`example.org` holds
//! `example.org` and `www.example.org`, not `badexample.org`); `None` for a
//! name under no zone. Pure, and read on the wire bytes of the question in
//! place: a lookup allocates nothing.
//!
//! Each zone is kept as its lower-cased wire form under a hash of its labels
//! taken from the root down; a lookup hashes the query name's suffixes the
//! same way, root first (one pass over the name), finds each in a table sorted
//! by hash, confirms a hit byte for byte, and keeps the last (longest) one.
use hickory_proto::rr::Name;

/// The most labels a name can have: 255 bytes of wire form, two per label at
/// the least, the root's byte aside.
const MAX_LABELS: usize = 127;

/// The pools' zones, by hash of their labels.
#[derive(Debug, Default, Clone)]
pub struct SuffixTable {
    /// (hash of the zone's labels, index into `zones`), sorted by hash.
    index: Vec<(u64, usize)>,
    /// Each zone's lower-cased wire form (root byte included), and its pool.
    zones: Vec<(Box<[u8]>, usize)>,
}

/// The wire form of `name`, lower-cased (labels, then the root's zero byte).
pub fn lower_wire(name: &Name) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 1);
    for label in name.iter() {
        // A label of a parsed name is at most 63 bytes.
        wire.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    wire.push(0);
    wire
}

impl SuffixTable {
    /// The table of `zones`, each with the pool (index) that serves it. A zone
    /// given twice stays with its first pool (config validation refuses that).
    pub fn new<'a>(zones: impl IntoIterator<Item = (&'a Name, usize)>) -> Self {
        let mut table = SuffixTable::default();
        // The zones seen, to keep each once without a scan per zone (a
        // rule set may give hundreds of thousands).
        let mut seen = std::collections::HashSet::new();
        for (zone, pool) in zones {
            let wire = lower_wire(zone);
            if !seen.insert(wire.clone()) {
                continue;
            }
            let mut whole = None;
            suffixes(&wire, |start, hash| {
                if start == 0 {
                    whole = Some(hash);
                }
            });
            if let Some(hash) = whole {
                table.index.push((hash, table.zones.len()));
                table.zones.push((wire.into_boxed_slice(), pool));
            }
        }
        table.index.sort_unstable();
        table
    }

    /// Whether no pool has a zone (every name goes to every backend).
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The pool of the zone that is the longest suffix of `name` (a name's wire
    /// form, uncompressed: what follows the header of a plain query, root byte
    /// included; anything after the root byte is ignored); `None` when no zone
    /// is, or when `name` is not a plain wire name.
    pub fn lookup(&self, name: &[u8]) -> Option<usize> {
        let mut found = None;
        self.each_zone(name, |pool| found = Some(pool));
        found
    }

    /// Calls `hit` with the pool (index) of every zone that is a suffix of
    /// `name` (as [`SuffixTable::lookup`] reads it), the shortest first;
    /// not at all when `name` is not a plain wire name.
    pub fn each_zone(&self, name: &[u8], mut hit: impl FnMut(usize)) {
        if self.zones.is_empty() {
            return;
        }
        suffixes(name, |start, hash| {
            if let Some(pool) = self.find(hash, name.get(start..).unwrap_or_default()) {
                hit(pool);
            }
        });
    }

    /// The pool of the zone hashed `hash` whose wire form starts `suffix`.
    fn find(&self, hash: u64, suffix: &[u8]) -> Option<usize> {
        let from = self.index.partition_point(|&(h, _)| h < hash);
        self.index
            .get(from..)?
            .iter()
            .take_while(|&&(h, _)| h == hash)
            .filter_map(|&(_, z)| self.zones.get(z))
            .find(|(zone, _)| {
                suffix
                    .get(..zone.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(zone))
            })
            .map(|&(_, pool)| pool)
    }
}

/// Calls `each(start, hash)` for every suffix of the wire name `name`, the
/// root first, then one more label each time, up to the whole name (`start`
/// 0): `start` is where the suffix begins in `name`, `hash` the hash of its
/// labels, lower-cased, from the root down. When `name` is not a plain wire
/// name (a pointer, a label past the end, over 255 bytes), `each` is not
/// called at all.
pub(super) fn suffixes(name: &[u8], mut each: impl FnMut(usize, u64)) {
    let mut starts = [0u8; MAX_LABELS];
    let mut labels = 0;
    let mut pos = 0usize;
    loop {
        let Some(&len) = name.get(pos) else {
            return;
        };
        if len == 0 {
            break;
        }
        if len > 63 || pos + usize::from(len) + 1 >= 255 {
            return;
        }
        let Some(slot) = starts.get_mut(labels) else {
            return;
        };
        // Below 255: checked above.
        *slot = u8::try_from(pos).unwrap_or(u8::MAX);
        labels += 1;
        pos += 1 + usize::from(len);
    }
    let mut hash = FNV_OFFSET;
    each(pos, hash);
    for &start in starts.get(..labels).unwrap_or_default().iter().rev() {
        let start = usize::from(start);
        let len = name.get(start).copied().unwrap_or(0);
        hash = fnv(hash, len);
        for &b in name
            .get(start + 1..start + 1 + usize::from(len))
            .unwrap_or_default()
        {
            hash = fnv(hash, b.to_ascii_lowercase());
        }
        each(start, hash);
    }
}

/// FNV-1a's offset basis (64 bits).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// One byte into an FNV-1a hash.
fn fnv(hash: u64, byte: u8) -> u64 {
    (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dns::fixtures::{name, wire_name as wire};

    fn table(zones: &[(&str, usize)]) -> SuffixTable {
        let names: Vec<(Name, usize)> = zones.iter().map(|&(z, p)| (name(z), p)).collect();
        SuffixTable::new(names.iter().map(|(n, p)| (n, *p)))
    }

    #[test]
    fn a_zone_holds_itself_and_the_names_under_it_only() {
        let t = table(&[("example.org", 0)]);
        assert_eq!(t.lookup(&wire("example.org")), Some(0));
        assert_eq!(t.lookup(&wire("www.example.org")), Some(0));
        assert_eq!(t.lookup(&wire("a.b.c.example.org.")), Some(0));
        // Label-aligned: a longer label ending alike is another name.
        assert_eq!(t.lookup(&wire("badexample.org")), None);
        assert_eq!(t.lookup(&wire("org")), None);
        assert_eq!(t.lookup(&wire("example.com")), None);
        assert_eq!(t.lookup(&wire(".")), None);
    }

    #[test]
    fn the_longest_suffix_wins_whatever_the_order() {
        for zones in [
            [("example.org", 0), ("sub.example.org", 1), ("org", 2)],
            [("org", 2), ("sub.example.org", 1), ("example.org", 0)],
        ] {
            let t = table(&zones);
            assert_eq!(t.lookup(&wire("www.sub.example.org")), Some(1));
            assert_eq!(t.lookup(&wire("sub.example.org")), Some(1));
            assert_eq!(t.lookup(&wire("other.example.org")), Some(0));
            assert_eq!(t.lookup(&wire("xsub.example.org")), Some(0));
            assert_eq!(t.lookup(&wire("example.net.org")), Some(2));
            assert_eq!(t.lookup(&wire("example.net")), None);
        }
    }

    #[test]
    fn case_and_the_final_dot_do_not_matter() {
        let t = table(&[("Example.ORG.", 3)]);
        assert_eq!(t.lookup(&wire("WWW.example.org")), Some(3));
        assert_eq!(t.lookup(&wire("wWw.ExAmPlE.oRg")), Some(3));
        assert_eq!(t.lookup(&lower_wire(&name("www.EXAMPLE.org."))), Some(3));
    }

    #[test]
    fn the_root_zone_holds_every_name_but_loses_to_any_other() {
        let t = table(&[(".", 0), ("example.org", 1)]);
        assert_eq!(t.lookup(&wire(".")), Some(0));
        assert_eq!(t.lookup(&wire("example.com")), Some(0));
        assert_eq!(t.lookup(&wire("www.example.org")), Some(1));
    }

    #[test]
    fn an_empty_table_and_names_that_are_not_plain_route_nowhere() {
        assert_eq!(SuffixTable::default().lookup(&wire("example.org")), None);
        assert!(SuffixTable::default().is_empty());
        let t = table(&[(".", 0)]);
        // A compression pointer, a label past the end, no root byte.
        assert_eq!(t.lookup(&[3, b'w', b'w', b'w', 0xc0, 12]), None);
        assert_eq!(t.lookup(&[9, b'w', b'w', b'w']), None);
        assert_eq!(t.lookup(&[3, b'w', b'w', b'w']), None);
        assert_eq!(t.lookup(&[]), None);
        // Over 255 bytes of wire form.
        let long: Vec<u8> = (0..5)
            .flat_map(|_| std::iter::once(60).chain([b'a'; 60]))
            .chain([0])
            .collect();
        assert_eq!(t.lookup(&long), None);
        // What follows the name (type and class) is not read.
        let mut q = wire("www.example.org");
        q.extend_from_slice(&[0, 1, 0, 1]);
        assert_eq!(table(&[("example.org", 5)]).lookup(&q), Some(5));
    }

    #[test]
    fn a_zone_given_twice_keeps_its_first_pool() {
        let t = table(&[("example.org", 0), ("EXAMPLE.org.", 1)]);
        assert_eq!(t.lookup(&wire("example.org")), Some(0));
    }

    /// On random names over a few labels (zones, their neighbours, case
    /// changed), the table says what comparing the labels from the right,
    /// case aside, says: the zone with the most labels that ends the name.
    #[test]
    fn the_table_agrees_with_comparing_labels_from_the_right() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let zones: [&[&str]; 4] = [
            &["org"],
            &["example", "org"],
            &["sub", "example", "org"],
            &["EXAMPLE", "net"],
        ];
        let names: Vec<(Name, usize)> = zones
            .iter()
            .enumerate()
            .map(|(i, z)| (name(&z.join(".")), i))
            .collect();
        let t = SuffixTable::new(names.iter().map(|(n, p)| (n, *p)));
        let label = prop_oneof![
            Just("org"),
            Just("Org"),
            Just("example"),
            Just("eXample"),
            Just("sub"),
            Just("net"),
            Just("xorg"),
            Just("a"),
        ];
        let mut runner = TestRunner::new(Config {
            cases: 2048,
            ..Config::default()
        });
        runner
            .run(&prop::collection::vec(label, 0..6), |labels| {
                let want = zones
                    .iter()
                    .enumerate()
                    .filter(|(_, z)| {
                        z.len() <= labels.len()
                            && labels[labels.len() - z.len()..]
                                .iter()
                                .zip(z.iter())
                                .all(|(a, b)| a.eq_ignore_ascii_case(b))
                    })
                    .max_by_key(|(_, z)| z.len())
                    .map(|(i, _)| i);
                prop_assert_eq!(t.lookup(&wire(&labels.join("."))), want, "{:?}", labels);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        // Any bytes at all: an answer or none, never a panic.
        runner
            .run(&prop::collection::vec(any::<u8>(), 0..300), |bytes| {
                let _ = t.lookup(&bytes);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn many_zones_are_found_by_hash() {
        let zones: Vec<(Name, usize)> = (0..500)
            .map(|i| (name(&format!("z{i}.example")), i))
            .collect();
        let t = SuffixTable::new(zones.iter().map(|(n, p)| (n, *p)));
        for i in [0, 1, 250, 499] {
            assert_eq!(t.lookup(&wire(&format!("www.z{i}.example"))), Some(i));
        }
        assert_eq!(t.lookup(&wire("www.z500.example")), None);
    }
}
