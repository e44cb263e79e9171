//! A zone's records as zone transfers read them: one at a time from the
//! compiled arena behind a [`Cursor`] (a full transfer holds no copy of the
//! zone), and the difference between two versions of a zone ([`diff`],
//! for IXFR) by a merge walk of both in canonical name order.
use std::cmp::Ordering;

use super::Zone;
use super::rrlist::RrList;
use super::store::{NameEntry, Store};
use crate::ts::wire::cmp_names;

/// Where a transfer stands in a zone's records: the arena offset of the
/// current name, and how many of its records were taken already.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    entry: usize,
    taken: usize,
    /// The current name's records were checked whole.
    checked: bool,
}

/// A record as [`record_at`] gives it: its owner as written, then
/// its type, class, TTL, RDLENGTH and RDATA.
pub type TransferRecord<'z> = (&'z [u8], &'z [u8]);

/// A record of the compiled zone that cannot be read back whole: the
/// transfer stops rather than leave it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the compiled zone cannot be read at arena offset {at}")]
pub struct Unreadable {
    /// The arena offset of the name whose records could not be read.
    pub at: usize,
}

/// Whether the sets of `e` parse exactly: every set's records as many as it
/// says, and nothing left over.
fn entry_is_whole(e: &NameEntry<'_>) -> bool {
    let mut bytes = 0;
    for set in e.sets() {
        let mut n = 0usize;
        let mut len = 0;
        for r in set.records() {
            n += 1;
            len += r.len();
        }
        if n != usize::from(set.count) || len != set.records.len() {
            return false;
        }
        bytes += 9 + set.records.len();
    }
    bytes == e.sets.len()
}

impl Cursor {
    /// Marks the record last returned by [`record_at`] as taken.
    pub fn take(&mut self) {
        self.taken += 1;
    }
}

/// The record at `cursor` (owner as written, then type, class, TTL,
/// RDLENGTH and RDATA), the SOA aside; `None` past the last one. The
/// cursor moves past the names whose records are all taken; it moves
/// past a record only with [`Cursor::take`].
///
/// # Errors
/// The arena cannot be read at the cursor ([`Unreadable`]).
pub fn record_at<'z>(
    zone: &'z Zone,
    cursor: &mut Cursor,
) -> Result<Option<TransferRecord<'z>>, Unreadable> {
    let arena = zone.store.arena();
    loop {
        if cursor.entry >= arena.len() {
            return Ok(None);
        }
        let unreadable = Unreadable { at: cursor.entry };
        let (e, next) = NameEntry::at(arena, cursor.entry).ok_or(unreadable)?;
        if !cursor.checked {
            if !entry_is_whole(&e) {
                return Err(unreadable);
            }
            cursor.checked = true;
        }
        if let Some(r) = e.sets().flat_map(|s| s.records()).nth(cursor.taken) {
            return Ok(Some((e.owner, r)));
        }
        *cursor = Cursor {
            entry: next,
            taken: 0,
            checked: false,
        };
    }
}

/// The records of `old` (the old version) absent from `new`, and
/// those of `new` absent from `old`, the SOAs aside, each list in
/// canonical order; `None` when together they pass `limit` bytes (a
/// difference that large is not worth keeping). Both zones are walked
/// once, side by side, in canonical name order.
pub fn diff(old: &Zone, new: &Zone, limit: usize) -> Option<(RrList, RrList)> {
    let (mut deleted, mut added) = (RrList::default(), RrList::default());
    if old.store.ptr_eq(&new.store) {
        return Some((deleted, added));
    }
    // Most reloads keep the names in the order they were (a table
    // rewritten with some addresses changed): walking both arenas side by
    // side then needs no sort. Otherwise both go in canonical order.
    let (mut a, mut b) = (arena_order(&old.store), arena_order(&new.store));
    let lockstep = a.len() == b.len()
        && a.iter().zip(&b).all(|(&x, &y)| {
            match (owner_at(&old.store, x), owner_at(&new.store, y)) {
                (Some(p), Some(q)) => p.eq_ignore_ascii_case(q),
                _ => false,
            }
        });
    if !lockstep {
        // Names added or removed (an IXFR's new names, patched in at
        // the arena's end): each name looked up in the other version,
        // only those whose records differ sorted.
        a = changed_names(&old.store, &new.store, &a);
        b = changed_names(&new.store, &old.store, &b);
        canonical(&old.store, &mut a);
        canonical(&new.store, &mut b);
    }
    let (mut i, mut j) = (0, 0);
    let (mut left, mut right) = (Vec::new(), Vec::new());
    loop {
        let ea = a
            .get(i)
            .and_then(|&o| NameEntry::at(old.store.arena(), o as usize));
        let eb = b
            .get(j)
            .and_then(|&o| NameEntry::at(new.store.arena(), o as usize));
        let order = match (ea, eb) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((x, _)), Some((y, _))) => cmp_names(x.owner, y.owner),
        };
        if let (Some((x, _)), Some((y, _)), Ordering::Equal) = (ea, eb, order)
            && x.sets == y.sets
        {
            // The same records, byte for byte: nothing to compare.
            i += 1;
            j += 1;
            continue;
        }
        left.clear();
        right.clear();
        if let (Some((x, _)), true) = (ea, order != Ordering::Greater) {
            left.extend(x.sets().flat_map(|s| s.records()));
            left.sort_unstable();
            i += 1;
        }
        if let (Some((y, _)), true) = (eb, order != Ordering::Less) {
            right.extend(y.sets().flat_map(|s| s.records()));
            right.sort_unstable();
            j += 1;
        }
        let owner_a = ea.map_or(&[][..], |(x, _)| x.owner);
        let owner_b = eb.map_or(&[][..], |(y, _)| y.owner);
        let (mut p, mut q) = (0, 0);
        while p < left.len() || q < right.len() {
            match (left.get(p), right.get(q)) {
                (Some(x), Some(y)) if x == y => {
                    p += 1;
                    q += 1;
                }
                (Some(x), y) if y.is_none_or(|y| x < y) => {
                    deleted.push(owner_a, x);
                    p += 1;
                }
                (_, Some(y)) => {
                    added.push(owner_b, y);
                    q += 1;
                }
                _ => break,
            }
        }
        if deleted.bytes() + added.bytes() > limit {
            return None;
        }
    }
    if lockstep {
        // Found in arena order: put in canonical order.
        deleted = deleted.sorted();
        added = added.sorted();
    }
    Some((deleted, added))
}

/// The owner of the name at arena offset `at`.
fn owner_at(store: &Store, at: u32) -> Option<&[u8]> {
    NameEntry::at(store.arena(), at as usize).map(|(e, _)| e.owner)
}

/// The arena offsets of every name of `store`, in arena order.
fn arena_order(store: &Store) -> Vec<u32> {
    let mut order = Vec::new();
    let mut off = 0;
    while let Some((_, next)) = NameEntry::at(store.arena(), off) {
        if let Ok(at) = u32::try_from(off) {
            order.push(at);
        }
        off = next;
    }
    order
}

/// The offsets of `order` (names of `store`) whose records `other` does
/// not hold byte for byte at the same name.
fn changed_names(store: &Store, other: &Store, order: &[u32]) -> Vec<u32> {
    let mut lower = [0u8; 255];
    order
        .iter()
        .copied()
        .filter(|&at| {
            let Some((e, _)) = NameEntry::at(store.arena(), at as usize) else {
                return true;
            };
            let Some(key) = lower.get_mut(..e.owner.len()) else {
                return true;
            };
            key.copy_from_slice(e.owner);
            key.make_ascii_lowercase();
            other.get(key).is_none_or(|o| o.sets != e.sets)
        })
        .collect()
}

/// Sorts the arena offsets `order` of names of `store` in canonical order.
fn canonical(store: &Store, order: &mut [u32]) {
    let owner = |at: &u32| owner_at(store, *at).unwrap_or_default();
    order.sort_unstable_by(|x, y| cmp_names(owner(x), owner(y)));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::TXT;
    use proptest::prelude::*;

    use super::super::fixtures::*;
    use super::{diff, record_at};
    use crate::ts::source::SourceRecord;
    use crate::ts::zone::rrlist::split_rr;

    /// A zone of `(name index, kind, value)` records under `test.`.
    fn small_zone(recs: &[(u8, bool, u8)]) -> super::Zone {
        let records: Vec<SourceRecord> = recs
            .iter()
            .map(|&(n, txt, v)| {
                let owner = format!("n{n}.{}test.", if n % 3 == 0 { "sub." } else { "" });
                let data = if txt {
                    RData::TXT(TXT::new(vec![format!("v{v}")]))
                } else {
                    a(&format!("192.0.2.{v}"))
                };
                rec(&owner, data)
            })
            .collect();
        zone(records)
    }

    /// Every record of `z` (the SOA aside), whole, owner lower-cased.
    fn all_records(z: &super::Zone) -> BTreeSet<Vec<u8>> {
        let mut out = BTreeSet::new();
        let mut cursor = super::Cursor::default();
        while let Some((owner, rest)) = record_at(z, &mut cursor).unwrap() {
            let mut rr = owner.to_ascii_lowercase();
            rr.extend_from_slice(rest);
            out.insert(rr);
            cursor.take();
        }
        out
    }

    fn lowered(list: &crate::ts::zone::rrlist::RrList) -> BTreeSet<Vec<u8>> {
        list.iter()
            .map(|rr| {
                let (owner, rest) = split_rr(rr).unwrap();
                let mut v = owner.to_ascii_lowercase();
                v.extend_from_slice(rest);
                v
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn the_diff_walk_is_the_set_difference(
            old in proptest::collection::vec((0u8..12, any::<bool>(), 1u8..4), 0..20),
            new in proptest::collection::vec((0u8..12, any::<bool>(), 1u8..4), 0..20),
        ) {
            let (zo, zn) = (small_zone(&old), small_zone(&new));
            let (ro, rn) = (all_records(&zo), all_records(&zn));
            let (deleted, added) = diff(&zo, &zn, usize::MAX).unwrap();
            let want_deleted: BTreeSet<Vec<u8>> = ro.difference(&rn).cloned().collect();
            let want_added: BTreeSet<Vec<u8>> = rn.difference(&ro).cloned().collect();
            prop_assert_eq!(lowered(&deleted), want_deleted);
            prop_assert_eq!(lowered(&added), want_added);
            prop_assert_eq!(deleted.len(), ro.difference(&rn).count(), "no duplicates");
            // In canonical order, as condensing needs.
            prop_assert_eq!(&deleted, &deleted.sorted());
            prop_assert_eq!(&added, &added.sorted());
        }
    }

    #[test]
    fn a_diff_past_its_limit_is_given_up() {
        let old = small_zone(&[(1, false, 1), (2, false, 1)]);
        let new = small_zone(&[(1, false, 2), (2, false, 2)]);
        let (d, a) = diff(&old, &new, usize::MAX).unwrap();
        assert_eq!((d.len(), a.len()), (2, 2));
        assert!(diff(&old, &new, d.bytes() + a.bytes() - 1).is_none());
        let (d, a) = diff(&old, &old.clone().with_serial(5), 0).unwrap();
        assert!(d.is_empty() && a.is_empty(), "same records");
    }

    #[test]
    fn a_record_that_cannot_be_read_stops_the_transfer_loudly() {
        use crate::server::MessageStream;
        use crate::ts::metrics::XfrCounters;
        use crate::ts::xfr::axfr::{Content, Transfer};
        use std::sync::Arc;
        use std::sync::atomic::Ordering::Relaxed;

        let z = small_zone(&[(1, false, 1), (2, false, 1), (4, true, 1)]);
        // The last name's records cut short.
        let arena = z.store.arena();
        let store = super::Store::of_parts(
            &arena[..arena.len() - 3],
            z.store.table_bytes(),
            z.store.rrsets(),
        );
        let bad = super::Zone { store, ..z.clone() };
        let mut cursor = super::Cursor::default();
        let mut read = 0;
        let err = loop {
            match record_at(&bad, &mut cursor) {
                Ok(Some(_)) => {
                    read += 1;
                    cursor.take();
                }
                Ok(None) => panic!("the cut was not seen"),
                Err(e) => break e,
            }
        };
        assert!(read <= 3, "at most the names before the cut: {read}");
        assert!(err.to_string().contains("cannot be read"));

        let raw = {
            let mut m = hickory_proto::op::Message::query();
            m.add_query(hickory_proto::op::Query::query(
                name("."),
                hickory_proto::rr::RecordType::AXFR,
            ));
            m.to_vec().unwrap()
        };
        let counters = Arc::new(XfrCounters::default());
        let full = |z: &super::Zone| {
            let c = Arc::clone(&counters);
            Transfer::new(z, Content::Full, (&raw, raw.len()), 16_000, c, None)
        };
        let mut t = full(&bad);
        assert_eq!(t.next_message(), Some(Err(crate::server::StreamAborted)));
        assert_eq!(t.next_message(), None, "nothing after the failure");
        assert_eq!(counters.failed.load(Relaxed), 1);
        let mut good = full(&z);
        assert!(matches!(good.next_message(), Some(Ok(_))));
        assert_eq!(good.next_message(), None);
    }

    #[test]
    fn names_in_another_order_diff_as_well() {
        let old = small_zone(&[(1, false, 1), (2, false, 1), (4, true, 1)]);
        let new = small_zone(&[(4, true, 1), (2, false, 2), (1, false, 1)]);
        let (d, a) = diff(&old, &new, usize::MAX).unwrap();
        assert_eq!((d.len(), a.len()), (1, 1));
        assert_eq!(
            split_rr(d.iter().next().unwrap()).unwrap().0,
            b"\x02n2\x04test\x00"
        );
    }
}
