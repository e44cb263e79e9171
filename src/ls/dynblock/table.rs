//! One worker's bounded counting table ([`CountTable`]): a fixed number of
//! keys (client groups or names), each with a row of counters, kept in a
//! set-associative array ([`CountTable::new`]'s `sets` × `ways`), the set chosen
//! by a hash keyed at random per table (nobody can aim addresses at one
//! set). It is allocated whole at its first key (an idle table costs
//! nothing), and never again.
//!
//! When a key's set is full, the way with the least weight (events seen,
//! halved at every tick: recent activity) gives its place, the newcomer's
//! counters starting at zero: a space-saving sketch that keeps the heavy
//! hitters. Counters are only ever lower bounds of what a key really sent
//! (an evicted key's counts are forgotten, never handed to another key), so
//! a flood of forged sources cannot get anyone blocked who did not cross a
//! threshold by itself; under such a flood a key survives while it is
//! heavier than the newcomers crowding its set (see `docs/DEPLOY.md`
//! "Under attack").
//!
//! [`DynName`] is a name held inline (lower case wire form), so a table of
//! names allocates nothing per key either.
use std::hash::{BuildHasher, Hash, Hasher, RandomState};

/// A DNS name in lower-case wire form, held inline, optionally tagged with
/// the rule it is counted for.
#[derive(Clone, Copy)]
pub(crate) struct DynName {
    tag: u8,
    len: u8,
    bytes: [u8; 255],
}

impl DynName {
    /// `wire` (a name in wire form, no compression; its end found by its
    /// root label, bytes past it ignored) lower-cased, tagged `tag`; `None`
    /// when it is not a name that fits.
    pub(crate) fn new(tag: u8, wire: &[u8]) -> Option<Self> {
        let end = name_end(wire)?;
        let mut bytes = [0u8; 255];
        let src = wire.get(..end)?;
        let dst = bytes.get_mut(..end)?;
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s.to_ascii_lowercase();
        }
        Some(DynName {
            tag,
            len: u8::try_from(end).ok()?,
            bytes,
        })
    }

    /// The rule it is counted for.
    pub(crate) fn tag(&self) -> u8 {
        self.tag
    }

    /// The name, lower-case wire form.
    pub(crate) fn wire(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl PartialEq for DynName {
    fn eq(&self, other: &Self) -> bool {
        self.tag == other.tag && self.wire() == other.wire()
    }
}

impl Eq for DynName {}

impl PartialOrd for DynName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DynName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.tag, self.wire()).cmp(&(other.tag, other.wire()))
    }
}

impl Hash for DynName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.tag.hash(state);
        self.wire().hash(state);
    }
}

impl std::fmt::Debug for DynName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", wire_text(self.wire()), self.tag)
    }
}

/// The length of the name at the start of `wire` (its root label
/// included); `None` if it is cut short, compressed or longer than 255.
pub(crate) fn name_end(wire: &[u8]) -> Option<usize> {
    let mut at = 0usize;
    loop {
        let len = usize::from(*wire.get(at)?);
        if len == 0 {
            let end = at + 1;
            return (end <= 255).then_some(end);
        }
        if len > 63 {
            return None;
        }
        at += 1 + len;
        if at >= 255 {
            return None;
        }
    }
}

/// The offsets of the labels of the name at the start of `wire` (the root
/// label's too, last), at most 128.
pub(crate) fn label_starts(wire: &[u8]) -> smallvec::SmallVec<[u8; 32]> {
    let mut out = smallvec::SmallVec::new();
    let mut at = 0usize;
    while let Some(&len) = wire.get(at) {
        let Ok(pos) = u8::try_from(at) else { break };
        out.push(pos);
        if len == 0 || len > 63 {
            break;
        }
        at += 1 + usize::from(len);
    }
    out
}

/// A wire name as text (`www.example.com.`; the root is `.`).
pub(crate) fn wire_text(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut at = 0usize;
    while let Some(&len) = wire.get(at) {
        if len == 0 || len > 63 {
            break;
        }
        let label = wire
            .get(at + 1..at + 1 + usize::from(len))
            .unwrap_or_default();
        for &b in label {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("\\{b:03}"));
            }
        }
        out.push('.');
        at += 1 + usize::from(len);
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// The bounded table; see the module's docs.
pub(crate) struct CountTable<K> {
    sets: usize,
    ways: usize,
    cols: usize,
    keys: Vec<Option<K>>,
    weight: Vec<u32>,
    counts: Vec<u64>,
    hasher: RandomState,
}

impl<K: Hash + Eq + Copy> CountTable<K> {
    /// A table of `sets` × `ways` keys with `cols` counters each (an empty
    /// one, holding nothing, when any of them is 0).
    pub(crate) fn new(sets: usize, ways: usize, cols: usize) -> Self {
        CountTable {
            sets: sets.max(1),
            ways: ways.max(1),
            cols,
            keys: Vec::new(),
            weight: Vec::new(),
            counts: Vec::new(),
            hasher: RandomState::new(),
        }
    }

    /// Keys it can hold (once in use; nothing is allocated before its first key).
    pub(crate) fn capacity(&self) -> usize {
        if self.cols == 0 {
            0
        } else {
            self.sets * self.ways
        }
    }

    /// Keys it holds room for now: 0 until its first key, then [`CountTable::capacity`].
    pub(crate) fn allocated(&self) -> usize {
        self.keys.len()
    }

    /// Adds `n` to counter `col` of `key`, making room for it if needed
    /// (one event of weight).
    pub(crate) fn add(&mut self, key: K, col: usize, n: u64) {
        if let Some(c) = self.row_mut(key).and_then(|row| row.get_mut(col)) {
            *c = c.saturating_add(n);
        }
    }

    /// The counters of `key`, making room for it if needed (one event of
    /// weight); `None` for a table that holds nothing.
    pub(crate) fn row_mut(&mut self, key: K) -> Option<&mut [u64]> {
        let slot = self.slot(key, 1)?;
        let cols = self.cols;
        self.counts.get_mut(slot * cols..(slot + 1) * cols)
    }

    /// Adds `row` to the counters of `key` (making room for it if needed),
    /// with `weight` events of weight: how a worker's counts are merged.
    pub(crate) fn add_row(&mut self, key: K, weight: u32, row: &[u64]) {
        let Some(slot) = self.slot(key, weight) else {
            return;
        };
        let cols = self.cols;
        if let Some(sum) = self.counts.get_mut(slot * cols..(slot + 1) * cols) {
            for (a, b) in sum.iter_mut().zip(row) {
                *a = a.saturating_add(*b);
            }
        }
    }

    /// Every key with its weight and counters (those with a counter above
    /// zero), then the table emptied, its room kept.
    pub(crate) fn take_each(&mut self, mut each: impl FnMut(K, u32, &[u64])) {
        let cols = self.cols;
        for (slot, key) in self.keys.iter_mut().enumerate() {
            let Some(k) = key.take() else { continue };
            let weight = self.weight.get_mut(slot).map_or(0, std::mem::take);
            let row = self
                .counts
                .get_mut(slot * cols..(slot + 1) * cols)
                .unwrap_or_default();
            if row.iter().any(|&c| c > 0) {
                each(k, weight, row);
            }
            row.fill(0);
        }
    }

    /// The slot of `key`: its own, a free way of its set, or the lightest
    /// way's (whose key is forgotten); its weight taken up by `weight`.
    fn slot(&mut self, key: K, weight: u32) -> Option<usize> {
        if self.cols == 0 {
            return None;
        }
        if self.keys.is_empty() {
            // The whole table at its first key, once: an idle one costs nothing.
            let slots = self.sets * self.ways;
            self.keys = vec![None; slots];
            self.weight = vec![0; slots];
            self.counts = vec![0; slots * self.cols];
        }
        let set = usize::try_from(self.hasher.hash_one(key)).unwrap_or(0) % self.sets;
        let base = set * self.ways;
        let mut lightest = base;
        for slot in base..base + self.ways {
            match self.keys.get(slot)? {
                Some(k) if *k == key => {
                    let w = self.weight.get_mut(slot)?;
                    *w = w.saturating_add(weight);
                    return Some(slot);
                }
                None => {
                    lightest = slot;
                    break;
                }
                Some(_) => {
                    if self.weight.get(slot) < self.weight.get(lightest) {
                        lightest = slot;
                    }
                }
            }
        }
        *self.keys.get_mut(lightest)? = Some(key);
        *self.weight.get_mut(lightest)? = weight.max(1);
        let row = lightest * self.cols;
        self.counts.get_mut(row..row + self.cols)?.fill(0);
        Some(lightest)
    }

    /// Zeroes the counters of every key `pick` says.
    pub(crate) fn zero_where(&mut self, pick: impl Fn(&K) -> bool) {
        let cols = self.cols;
        for (slot, key) in self.keys.iter().enumerate() {
            if key.as_ref().is_some_and(&pick)
                && let Some(row) = self.counts.get_mut(slot * cols..(slot + 1) * cols)
            {
                row.fill(0);
            }
        }
    }

    /// Every key with a counter above zero, with its counters; then
    /// counters `zero(col)` says are zeroed, and weights halved (a tick).
    pub(crate) fn drain_into(
        &mut self,
        mut each: impl FnMut(K, &[u64]),
        zero: impl Fn(usize) -> bool,
    ) {
        let cols = self.cols;
        for (slot, key) in self.keys.iter_mut().enumerate() {
            let Some(k) = key else { continue };
            let row = self
                .counts
                .get_mut(slot * cols..(slot + 1) * cols)
                .unwrap_or_default();
            if row.iter().any(|&c| c > 0) {
                each(*k, row);
            }
            for (col, c) in row.iter_mut().enumerate() {
                if zero(col) {
                    *c = 0;
                }
            }
            if let Some(w) = self.weight.get_mut(slot) {
                *w >>= 1;
                if *w == 0 && row.iter().all(|&c| c == 0) {
                    *key = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    fn counted(t: &mut CountTable<IpAddr>) -> Vec<(IpAddr, u64)> {
        let mut out = Vec::new();
        t.drain_into(|k, row| out.push((k, row[0])), |_| false);
        out.sort();
        out
    }

    #[test]
    fn a_heavy_key_survives_a_flood_of_new_keys_and_nobody_inherits_counts() {
        let mut t = CountTable::new(4, 4, 1);
        assert_eq!(t.capacity(), 16);
        let heavy = ip(1);
        // The heavy client sends 10 for every 1 of 100,000 distinct sources.
        for n in 0..100_000u32 {
            if n % 10 == 0 {
                for _ in 0..10 {
                    t.add(heavy, 0, 1);
                }
            }
            t.add(ip(1000 + n), 0, 1);
        }
        let got = counted(&mut t);
        assert!(got.len() <= 16, "bounded: {}", got.len());
        let h = got.iter().find(|(k, _)| *k == heavy).expect("kept");
        assert_eq!(h.1, 100_000, "every one of its queries counted");
        // A forged source's count is only ever what it sent itself.
        assert!(
            got.iter()
                .filter(|(k, _)| *k != heavy)
                .all(|(_, c)| *c == 1)
        );
    }

    #[test]
    fn a_tick_zeroes_the_asked_columns_and_forgets_idle_keys() {
        let mut t = CountTable::new(8, 2, 2);
        t.add(ip(1), 0, 3);
        t.add(ip(1), 1, 5);
        let mut seen = Vec::new();
        t.drain_into(|k, row| seen.push((k, row.to_vec())), |col| col == 0);
        assert_eq!(seen, [(ip(1), vec![3, 5])]);
        let mut seen = Vec::new();
        t.drain_into(|k, row| seen.push((k, row.to_vec())), |_| true);
        assert_eq!(seen, [(ip(1), vec![0, 5])]);
        let mut seen = Vec::new();
        t.drain_into(|k, row| seen.push((k, row.to_vec())), |_| true);
        assert!(seen.is_empty());
        assert!(t.keys.iter().all(Option::is_none), "idle and empty: gone");
    }

    #[test]
    fn names_are_keyed_case_blind_and_printed() {
        let a = DynName::new(1, b"\x03WWW\x07Example\x03com\x00\x00\x01").unwrap();
        let b = DynName::new(1, b"\x03www\x07example\x03COM\x00").unwrap();
        assert_eq!(a, b);
        assert_ne!(
            a,
            DynName::new(2, b"\x03www\x07example\x03com\x00").unwrap()
        );
        assert_eq!(wire_text(a.wire()), "www.example.com.");
        assert_eq!(wire_text(b"\x00"), ".");
        assert_eq!(&label_starts(a.wire())[..], &[0, 4, 12, 16]);
        assert!(DynName::new(0, b"\x03ab").is_none(), "cut short");
        assert!(DynName::new(0, b"\xc0\x0c").is_none(), "compressed");
    }
}
