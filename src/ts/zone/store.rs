//! The compiled form of a zone: one byte arena of names and RRsets, and an
//! open-addressing index over it.
//!
//! Each name is stored once, as first written, followed by its RRsets, each
//! record in the wire form it leaves the server in minus the owner (type,
//! class, TTL, RDLENGTH, RDATA, names uncompressed). A `u32` table of arena
//! offsets, hashed by the lower-cased wire name, finds a name without
//! allocating or decoding. This file reads the layout ([`NameEntry`], [`Set`]);
//! `build.rs` writes it.
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

/// The compiled names and RRsets of one zone.
///
/// NameEntry: `[name len u8][owner as written][flags u8][set count u16][sets len u32]`
/// then each set: `[type u16][flags u8][record count u16][len u32]` and its
/// records, each `[type u16][class u16][ttl u32][rdlength u16][rdata]`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Store {
    pub(super) arena: Vec<u8>,
    pub(super) table: Box<[u32]>,
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

impl Store {
    /// The entry of `key` (a lower-cased wire name).
    pub(super) fn get(&self, key: &[u8]) -> Option<NameEntry<'_>> {
        self.get_at(key).map(|(e, _)| e)
    }

    /// [`Store::get`], with the entry's arena offset.
    pub(super) fn get_at(&self, key: &[u8]) -> Option<(NameEntry<'_>, u32)> {
        let mask = self.table.len().checked_sub(1)?;
        let mut i = (hash(key) as usize) & mask;
        loop {
            let off = *self.table.get(i)?;
            if off == EMPTY {
                return None;
            }
            let (e, _) = NameEntry::at(&self.arena, off as usize)?;
            if e.owner.eq_ignore_ascii_case(key) {
                return Some((e, off));
            }
            i = (i + 1) & mask;
        }
    }

    /// Every entry, in arena order.
    pub(super) fn entries(&self) -> impl Iterator<Item = NameEntry<'_>> + '_ {
        let mut off = 0;
        std::iter::from_fn(move || {
            let (e, next) = NameEntry::at(&self.arena, off)?;
            off = next;
            Some(e)
        })
    }

    /// Indexes the entries written into the arena.
    pub(super) fn index(&mut self) {
        let mut count: usize = 0;
        let mut off = 0;
        while let Some((_, next)) = NameEntry::at(&self.arena, off) {
            count += 1;
            off = next;
        }
        let slots = (count + count / 3 + 1).next_power_of_two();
        let mut table = vec![EMPTY; slots].into_boxed_slice();
        let mask = slots - 1;
        let mut off = 0;
        while let Some((e, next)) = NameEntry::at(&self.arena, off) {
            let mut i = (hash_lower(e.owner) as usize) & mask;
            while table[i] != EMPTY {
                i = (i + 1) & mask;
            }
            table[i] = u32::try_from(off).unwrap_or(EMPTY);
            off = next;
        }
        self.table = table;
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
    use super::{hash, hash_lower, lower8};

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
