//! A load's zone builders by origin ([`ByOrigin`]): an open-addressing
//! table of builder indices hashed by the origin's key (lower-cased wire
//! form), each beside the high half of its key's hash, and compared with
//! a builder's own key only when those agree: a new origin (most of a
//! start's look-ups) is found absent in the table alone, where a builder's
//! key looked at for each slot passed cost two cache misses (the builder,
//! its key). A load of 100,000 zones
//! copied each key into a map and hashed it with SipHash (twice: a look-up,
//! then the insertion); the keys here come from the operator's zone files
//! and config, never from the network, so the zone index's hash serves.
use crate::ts::zone::{ZoneBuilder, key_hash};

/// A free slot.
const EMPTY: u64 = u64::MAX;

/// A slot: the high half of the key's hash above the builder's index.
fn slot(hash: u64, index: u32) -> u64 {
    (hash & !u64::from(u32::MAX)) | u64::from(index)
}

/// The builder index of a slot.
fn index_of(slot: u64) -> u32 {
    slot as u32
}

/// Whether a slot's hash half is `hash`'s.
fn tagged(slot: u64, hash: u64) -> bool {
    (slot ^ hash) >> 32 == 0
}

/// The builders of a load by their origin's key; the builders themselves
/// are the caller's (each call is given them).
pub(super) struct ByOrigin {
    /// Slots ([`slot`]), [`EMPTY`] where none; a power of two long.
    table: Vec<u64>,
    /// Builders recorded.
    len: usize,
}

impl ByOrigin {
    /// Room for `n` builders without growing.
    pub(super) fn with_capacity(n: usize) -> Self {
        ByOrigin {
            table: vec![EMPTY; slots_for(n)],
            len: 0,
        }
    }

    /// The index in `builders` of the builder whose origin's key is `key`.
    pub(super) fn get(&self, builders: &[ZoneBuilder], key: &[u8]) -> Option<usize> {
        let mask = self.table.len() - 1;
        let hash = key_hash(key);
        let mut at = start(hash, mask);
        loop {
            match self.table[at] {
                EMPTY => return None,
                s if tagged(s, hash)
                    && builders
                        .get(index_of(s) as usize)
                        .is_some_and(|x| x.origin_key() == key) =>
                {
                    return Some(index_of(s) as usize);
                }
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// Records `builders[b]` (whose origin is not recorded yet).
    pub(super) fn insert(&mut self, builders: &[ZoneBuilder], b: usize) {
        let Some(index) = u32::try_from(b).ok() else {
            return;
        };
        let Some(builder) = builders.get(b) else {
            return;
        };
        if (self.len + 1) * 4 > self.table.len() * 3 {
            self.grow();
        }
        place(&mut self.table, builder.origin_key(), index);
        self.len += 1;
    }

    /// The table twice as long, every builder recorded placed again.
    fn grow(&mut self) {
        let slots = self.table.len() * 2;
        let old = std::mem::replace(&mut self.table, vec![EMPTY; slots]);
        for s in old.into_iter().filter(|&s| s != EMPTY) {
            place_hashed(&mut self.table, s);
        }
    }
}

/// Puts `index` in the first free slot from `key`'s.
fn place(table: &mut [u64], key: &[u8], index: u32) {
    place_hashed(table, slot(key_hash(key), index));
}

/// Puts the slot `s` in the first free slot from its own ([`start`]).
fn place_hashed(table: &mut [u64], s: u64) {
    let mask = table.len() - 1;
    let mut at = start(s, mask);
    while table[at] != EMPTY {
        at = (at + 1) & mask;
    }
    table[at] = s;
}

/// The first slot looked at for a key whose hash (or slot) is `hash`: its
/// high half's low bits, which a slot keeps (the table grows from the
/// slots alone; it never holds 2^32 slots).
fn start(hash: u64, mask: usize) -> usize {
    ((hash >> 32) as usize) & mask
}

/// Slots for `n` entries at most three quarters full: a power of two.
fn slots_for(n: usize) -> usize {
    (n + n / 3 + 1).next_power_of_two().max(8)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;

    fn builder(origin: &str) -> ZoneBuilder {
        ZoneBuilder::new(origin.parse::<Name>().unwrap(), 1)
    }

    /// Each builder is found by its origin's key, past the table's growth
    /// (sized for 2, given 40) and beside keys that share their start;
    /// another key is not found.
    #[test]
    fn each_builder_is_found_by_its_key_as_the_table_grows() {
        let mut builders = Vec::new();
        let mut by = ByOrigin::with_capacity(2);
        for i in 0..40 {
            builders.push(builder(&format!("z{i}.test.")));
            by.insert(&builders, builders.len() - 1);
        }
        builders.push(builder("test."));
        by.insert(&builders, builders.len() - 1);
        for (i, b) in builders.iter().enumerate() {
            assert_eq!(by.get(&builders, b.origin_key()), Some(i));
        }
        let other = builder("z40.test.");
        assert_eq!(by.get(&builders, other.origin_key()), None);
        assert_eq!(by.get(&builders, b"\x00"), None);
    }
}
