//! The compiled form of a zone: one byte arena of names and RRsets, and an
//! open-addressing index over it, in one shared allocation.
//!
//! Each name is stored once, as first written, followed by its RRsets, each
//! record in the wire form it leaves the server in minus the owner (type,
//! class, TTL, RDLENGTH, RDATA, names uncompressed). A `u32` table of arena
//! offsets, hashed by the lower-cased wire name, finds a name without
//! allocating or decoding. This file reads the layout ([`NameEntry`], [`Set`])
//! and freezes it ([`StoreBuilder::freeze`]); `build.rs` and `patch.rs`
//! write it.
use std::sync::Arc;

use hickory_proto::rr::DNSClass;

use crate::ts::wire::push_name_ref;

/// An empty table slot.
pub(super) const EMPTY: u32 = u32::MAX;
/// NameEntry flag: the name exists only as the parent of others (RFC 8020).
pub(super) const ENTRY_EMPTY: u8 = 1;
/// NameEntry flag: the name owns only NSEC3 records (and their RRSIGs): hashed
/// names are no names of the zone (RFC 5155 §7.2.8), so lookups pass them by.
pub(super) const ENTRY_NSEC3: u8 = 2;
/// RRset flag: served only to queries with the DO bit: the RRSIGs of one
/// covered type (RFC 4035 §3.1.1), written beside that RRset.
pub const SET_DO_ONLY: u8 = 1;
pub(super) use super::rtype::RRSIG;

/// The compiled names and RRsets of one zone, frozen, shared by the copies
/// of its zone.
///
/// One allocation: `[slots u32][rrsets u32]`, the index (`slots` arena
/// offsets, native `u32`s, [`EMPTY`] where free), then the arena. A query
/// at 100,000 small zones finds its zone's index and names a line or two
/// from each other, not behind three pointers to three places (a struct of
/// the arena's and the index's pointers, then each of them).
///
/// NameEntry: `[name len u8][owner as written][flags u8][set count u16][sets len u32]`
/// then each set: `[type u16][flags u8][record count u16][len u32]` and its
/// records, each `[type u16][class u16][ttl u32][rdlength u16][rdata]`.
#[derive(Clone, Default, PartialEq, Eq)]
pub(super) struct Store {
    bytes: Arc<[u8]>,
}

/// The bytes before a [`Store`]'s index: its slot and RRset counts.
const HEAD: usize = 8;

/// The arena of a zone being written, frozen into its [`Store`] once whole.
#[derive(Debug, Default)]
pub(super) struct StoreBuilder {
    pub(super) arena: Vec<u8>,
    pub(super) rrsets: usize,
}

/// One name in the arena.
#[derive(Clone, Copy)]
pub(super) struct NameEntry<'s> {
    pub(super) owner: &'s [u8],
    pub(super) flags: u8,
    pub(super) sets: &'s [u8],
}

/// One RRset in the arena.
#[derive(Clone, Copy)]
pub(super) struct Set<'s> {
    pub(super) rtype: u16,
    pub(super) flags: u8,
    pub(super) count: u16,
    pub(super) records: &'s [u8],
}

pub(super) fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |x| u16::from_be_bytes([x[0], x[1]]))
}

pub(super) fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}

/// Hash of a lower-cased wire name: word-at-a-time mixing, then the
/// MurmurHash3 finalizer so that the low bits (the table index) depend on
/// every byte. Also a load's index of its builders by origin
/// (`ts/load/origins.rs`).
pub(crate) fn hash(key: &[u8]) -> u64 {
    hash_folded(key, |w| w)
}

/// [`hash`] of `name` lower-cased, with no lower-cased copy of it made
/// (each word folded as it is read, [`lower8`]): a zone's build hashes
/// every owner.
pub(super) fn hash_lower(name: &[u8]) -> u64 {
    hash_folded(name, lower8)
}

/// The eight bytes of `w` ASCII-lower-cased at once (as
/// `u8::to_ascii_lowercase` does each: `A`-`Z` gain 0x20, every other byte
/// is kept): a byte's high bit, set by adding 0x3f to its low seven bits,
/// says it is at least `A`; set by adding 0x25, above `Z` (no carry
/// crosses a byte: the low seven bits plus 0x3f stay under 0x100).
fn lower8(w: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low = w & LOW7;
    let from_a = low + 0x3f3f_3f3f_3f3f_3f3f;
    let past_z = low + 0x2525_2525_2525_2525;
    let upper = from_a & !past_z & !w & HIGH;
    w | (upper >> 2)
}

/// [`hash`], each word of the key passed through `fold` first.
#[inline(always)]
fn hash_folded(key: &[u8], fold: impl Fn(u64) -> u64) -> u64 {
    let mut h = key.len() as u64;
    for c in key.chunks(8) {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        let w = fold(u64::from_le_bytes(w));
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl<'s> NameEntry<'s> {
    /// The entry at `off` and the offset just past it.
    pub(super) fn at(arena: &'s [u8], off: usize) -> Option<(NameEntry<'s>, usize)> {
        let len = usize::from(*arena.get(off)?);
        let owner = arena.get(off + 1..off + 1 + len)?;
        let p = off + 1 + len;
        let flags = *arena.get(p)?;
        let sets_len = usize::try_from(be32(arena, p + 3)).ok()?;
        let sets = arena.get(p + 7..p + 7 + sets_len)?;
        Some((NameEntry { owner, flags, sets }, p + 7 + sets_len))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.flags & ENTRY_EMPTY != 0
    }

    pub(super) fn sets(&self) -> impl Iterator<Item = Set<'s>> + 's {
        let b = self.sets;
        let mut pos = 0;
        std::iter::from_fn(move || {
            let len = usize::try_from(be32(b, pos + 5)).ok()?;
            let set = Set {
                rtype: be16(b, pos),
                flags: *b.get(pos + 2)?,
                count: be16(b, pos + 3),
                records: b.get(pos + 9..pos + 9 + len)?,
            };
            pos += 9 + len;
            Some(set)
        })
    }

    /// The RRset of `rtype` served to a query with (or without) the DO bit.
    pub(super) fn set(&self, rtype: u16) -> Option<Set<'s>> {
        self.sets()
            .find(|s| s.rtype == rtype && s.flags & SET_DO_ONLY == 0)
    }

    /// True for the owner of an NSEC3 record: no name of the zone.
    pub(super) fn is_nsec3(&self) -> bool {
        self.flags & ENTRY_NSEC3 != 0
    }

    /// The RRSIGs covering this name's RRset of `covered`.
    pub(super) fn sigs(&self, covered: u16) -> Option<Set<'s>> {
        self.sig_sets().find(|s| s.covered() == covered)
    }

    /// Every RRSIG set of this name, one per covered type.
    pub(super) fn sig_sets(&self) -> impl Iterator<Item = Set<'s>> + 's {
        self.sets()
            .filter(|s| s.rtype == RRSIG && s.flags & SET_DO_ONLY != 0)
    }
}

impl<'s> Set<'s> {
    /// For an RRSIG set, the type its records cover (RFC 4034 §3.1.1).
    pub(super) fn covered(&self) -> u16 {
        be16(self.records, 10)
    }

    /// Each record: type, class, TTL, RDLENGTH and RDATA.
    pub(super) fn records(self) -> impl Iterator<Item = &'s [u8]> + 's {
        let b = self.records;
        let mut pos = 0;
        std::iter::from_fn(move || {
            let end = pos + 10 + usize::from(be16(b, pos + 8));
            let r = b.get(pos..end)?;
            pos = end;
            Some(r)
        })
    }
}

/// The `u32` at `at` of `b` in native order (0 past its end).
fn ne32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]))
}

impl Store {
    /// Slots of the index.
    fn slots(&self) -> usize {
        ne32(&self.bytes, 0) as usize
    }

    /// The names and their RRsets.
    pub(super) fn arena(&self) -> &[u8] {
        self.bytes.get(HEAD + 4 * self.slots()..).unwrap_or(&[])
    }

    /// RRsets in the arena.
    pub(super) fn rrsets(&self) -> usize {
        ne32(&self.bytes, 4) as usize
    }

    /// Bytes of the arena and the index.
    pub(super) fn compiled_bytes(&self) -> usize {
        self.bytes.len().saturating_sub(HEAD)
    }

    /// True when both are one store (copies of one zone's).
    pub(super) fn ptr_eq(&self, other: &Store) -> bool {
        Arc::ptr_eq(&self.bytes, &other.bytes)
    }

    /// The entry of `key` (a lower-cased wire name).
    pub(super) fn get(&self, key: &[u8]) -> Option<NameEntry<'_>> {
        self.get_at(key).map(|(e, _)| e)
    }

    /// [`Store::get`], with the entry's arena offset.
    pub(super) fn get_at(&self, key: &[u8]) -> Option<(NameEntry<'_>, u32)> {
        let slots = self.slots();
        let mask = slots.checked_sub(1)?;
        let table = self.bytes.get(HEAD..HEAD + 4 * slots)?;
        let arena = self.bytes.get(HEAD + 4 * slots..)?;
        let mut i = (hash(key) as usize) & mask;
        loop {
            let off = ne32(table, 4 * i);
            if off == EMPTY {
                return None;
            }
            let (e, _) = NameEntry::at(arena, off as usize)?;
            if e.owner.eq_ignore_ascii_case(key) {
                return Some((e, off));
            }
            i = (i + 1) & mask;
        }
    }

    /// Every entry, in arena order.
    pub(super) fn entries(&self) -> impl Iterator<Item = NameEntry<'_>> + '_ {
        entries_of(self.arena())
    }

    /// A store of `arena` (written, not indexed) and `table`, as they are:
    /// a test's broken store.
    #[cfg(test)]
    pub(super) fn of_parts(arena: &[u8], table: &[u8], rrsets: usize) -> Store {
        let mut bytes = Vec::with_capacity(HEAD + table.len() + arena.len());
        bytes.extend_from_slice(&head(table.len() / 4, rrsets));
        bytes.extend_from_slice(table);
        bytes.extend_from_slice(arena);
        Store {
            bytes: bytes.into(),
        }
    }

    /// The index (`slots` arena offsets as native `u32`s), as
    /// [`Store::of_parts`] takes it.
    #[cfg(test)]
    pub(super) fn table_bytes(&self) -> &[u8] {
        self.bytes.get(HEAD..HEAD + 4 * self.slots()).unwrap_or(&[])
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("slots", &self.slots())
            .field("rrsets", &self.rrsets())
            .field("arena_bytes", &self.arena().len())
            .finish()
    }
}

/// A [`Store`]'s first bytes: its slot and RRset counts (each below 2^32:
/// the arena's offsets are `u32`s).
fn head(slots: usize, rrsets: usize) -> [u8; HEAD] {
    let mut h = [0u8; HEAD];
    h[..4].copy_from_slice(&u32::try_from(slots).unwrap_or(u32::MAX).to_ne_bytes());
    h[4..].copy_from_slice(&u32::try_from(rrsets).unwrap_or(u32::MAX).to_ne_bytes());
    h
}

/// Every entry of `arena`, in its order.
fn entries_of(arena: &[u8]) -> impl Iterator<Item = NameEntry<'_>> + '_ {
    let mut off = 0;
    std::iter::from_fn(move || {
        let (e, next) = NameEntry::at(arena, off)?;
        off = next;
        Some(e)
    })
}

impl StoreBuilder {
    /// The store of the entries written, indexed: its count of slots a
    /// power of two at least a third above its names'.
    pub(super) fn freeze(self) -> Store {
        let StoreBuilder { arena, rrsets } = self;
        let count = entries_of(&arena).count();
        let slots = (count + count / 3 + 1).next_power_of_two();
        let mask = slots - 1;
        let at = HEAD + 4 * slots;
        let mut bytes = Vec::with_capacity(at + arena.len());
        bytes.extend_from_slice(&head(slots, rrsets));
        bytes.resize(at, 0xff);
        let mut off = 0;
        while let Some((e, next)) = NameEntry::at(&arena, off) {
            let mut i = (hash_lower(e.owner) as usize) & mask;
            while ne32(&bytes[HEAD..at], 4 * i) != EMPTY {
                i = (i + 1) & mask;
            }
            let place = HEAD + 4 * i;
            bytes[place..place + 4]
                .copy_from_slice(&u32::try_from(off).unwrap_or(EMPTY).to_ne_bytes());
            off = next;
        }
        bytes.extend_from_slice(&arena);
        // The builder's arena goes before the copy into the shared
        // allocation: a zone of a million names holds two copies of its
        // records at once, not three.
        drop(arena);
        Store {
            bytes: bytes.into(),
        }
    }
}

/// Appends one record (minus owner) to `out`: type, class IN, TTL, RDLENGTH, RDATA.
pub(super) fn push_record(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    let [t0, t1] = rtype.to_be_bytes();
    let [c0, c1] = u16::from(DNSClass::IN).to_be_bytes();
    let [l0, l1, l2, l3] = ttl.to_be_bytes();
    // rdata_into keeps RDATA under 64 KiB.
    let [r0, r1] = (rdata.len() as u16).to_be_bytes();
    // The ten bytes before the RDATA at once (a load writes every record).
    out.extend_from_slice(&[t0, t1, c0, c1, l0, l1, l2, l3, r0, r1]);
    out.extend_from_slice(rdata);
}

/// Appends the records of `set`, each owned by the name at `owner_at`;
/// `rdata_at` gets the offset of each record's RDATA (for names to follow).
pub(super) fn push_set(
    msg: &mut Vec<u8>,
    owner_at: usize,
    set: Set<'_>,
    rdata_at: Option<&mut [usize]>,
) -> u16 {
    let mut slots = rdata_at.map(|s| s.iter_mut());
    let mut n = 0;
    for r in set.records() {
        push_name_ref(msg, owner_at);
        if let Some(slot) = slots.as_mut().and_then(|s| s.next()) {
            *slot = msg.len() + 10;
        }
        msg.extend_from_slice(r);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::{Store, StoreBuilder, hash, hash_lower, lower8};

    /// An entry of `owner` with no RRsets.
    fn push_bare(b: &mut StoreBuilder, owner: &[u8]) {
        b.arena.push(owner.len() as u8);
        b.arena.extend_from_slice(owner);
        b.arena.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
    }

    /// Frozen, the store finds every name written (by its lower-cased
    /// key, whatever the case written), at the offset it was written at,
    /// and no other; the arena and the RRset count are kept.
    #[test]
    fn a_frozen_store_finds_each_name_it_holds_and_no_other() {
        for count in [1usize, 2, 3, 5, 12, 100, 1000] {
            let mut b = StoreBuilder::default();
            let mut at = Vec::new();
            for i in 0..count {
                at.push(b.arena.len() as u32);
                push_bare(&mut b, format!("\x03W{i:02}\x04Test\x00").as_bytes());
            }
            b.rrsets = 3 * count;
            let arena = b.arena.clone();
            let store = b.freeze();
            assert_eq!(store.arena(), &arena[..]);
            assert_eq!(store.rrsets(), 3 * count);
            let slots = store.table_bytes().len() / 4;
            assert!(
                slots.is_power_of_two() && slots * 3 >= count * 4,
                "{count}: {slots}"
            );
            assert_eq!(store.compiled_bytes(), arena.len() + 4 * slots);
            for (i, &want) in at.iter().enumerate() {
                let key = format!("\x03w{i:02}\x04test\x00");
                let (e, off) = store.get_at(key.as_bytes()).expect("held");
                assert_eq!(
                    (off, e.owner),
                    (want, format!("\x03W{i:02}\x04Test\x00").as_bytes())
                );
            }
            assert!(store.get(b"\x03w99\x05other\x00").is_none());
            assert_eq!(store.entries().count(), count);
        }
    }

    /// A store with nothing in it, or with an index pointing past its
    /// arena, answers nothing and does not fail.
    #[test]
    fn an_empty_or_broken_store_finds_nothing() {
        for store in [Store::default(), StoreBuilder::default().freeze()] {
            assert!(store.get(b"\x00").is_none());
            assert_eq!(
                (store.arena().len(), store.rrsets(), store.entries().count()),
                (0, 0, 0)
            );
        }
        let mut b = StoreBuilder::default();
        push_bare(&mut b, b"\x01a\x00");
        let whole = b.freeze();
        let cut = Store::of_parts(&whole.arena()[..3], whole.table_bytes(), 0);
        assert!(cut.get(b"\x01a\x00").is_none());
        assert_eq!(cut.entries().count(), 0);
    }

    /// Every byte, at every place of a word, folds as `to_ascii_lowercase`
    /// folds it, whatever its neighbours.
    #[test]
    fn a_word_is_lower_cased_as_its_bytes_are() {
        for b in 0..=255u8 {
            for at in 0..8 {
                for fill in [0u8, b'A', b'z', b'@', b'[', 0x7f, 0x80, 0xc1, 0xff] {
                    let mut w = [fill; 8];
                    w[at] = b;
                    let want = w.map(|c| c.to_ascii_lowercase());
                    assert_eq!(
                        lower8(u64::from_le_bytes(w)).to_le_bytes(),
                        want,
                        "{b:#x} at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_name_hashes_as_its_lower_cased_copy() {
        let names: [&[u8]; 5] = [
            b"",
            b"\x03WwW\x07Example\x04TEST\x00",
            b"\x01*\x02Z9\x00",
            b"\x05\xc9T\xe9[@\x00",
            b"\x3fABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_\x00",
        ];
        for name in names {
            assert_eq!(
                hash_lower(name),
                hash(&name.to_ascii_lowercase()),
                "{name:?}"
            );
        }
    }
}
