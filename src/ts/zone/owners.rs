//! The owners of a zone being built ([`Owners`]): each distinct name, case
//! aside, numbered once in order of first appearance. A zone of a few
//! owners (most of a TS of 100,000 zones) finds them by comparing each, with
//! no index: the index is made once the zone has more than [`SCAN`].
use super::store::{EMPTY, hash_lower};
use crate::ts::error::BuildError;

/// The owners of a zone being built: each distinct name (case aside) once,
/// as first written, in order of first appearance.
pub(super) struct Owners {
    /// Owner names in wire form, concatenated.
    pub(super) names: Vec<u8>,
    /// Per owner: where its name starts in `names`, its length.
    pub(super) spans: Vec<(u32, u8)>,
    /// Open-addressing index of owner numbers by lower-cased name: empty
    /// while there are at most [`SCAN`] owners (compared one by one).
    table: Vec<u32>,
}

/// Owners a zone finds by comparing each, before it makes its index: a
/// small zone's names are fewer comparisons than one hash, and the index
/// is an allocation a zone.
const SCAN: usize = 8;

impl Owners {
    /// Room for `n` owners whose names take `bytes` bytes in all.
    pub(super) fn with_room(n: usize, bytes: usize) -> Self {
        Owners {
            names: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(n),
            table: Vec::new(),
        }
    }

    /// The owner among the first ones (no index yet) whose name is `wire`.
    fn scan(&self, wire: &[u8]) -> Option<u32> {
        (0..self.spans.len() as u32).find(|&o| same_name(self.name(o), wire))
    }

    pub(super) fn name(&self, owner: u32) -> &[u8] {
        let (start, len) = self.spans[owner as usize];
        &self.names[start as usize..start as usize + usize::from(len)]
    }

    /// The owner number of `wire` (a wire name, any case), if seen.
    pub(super) fn find(&self, wire: &[u8]) -> Option<u32> {
        if self.table.is_empty() {
            return self.scan(wire);
        }
        let mask = self.table.len() - 1;
        let mut i = (hash_lower(wire) as usize) & mask;
        loop {
            match self.table[i] {
                EMPTY => return None,
                o if same_name(self.name(o), wire) => return Some(o),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Makes the index when a name past the first [`SCAN`] may come, and
    /// doubles it when it is three quarters full.
    fn grow(&mut self) {
        if self.spans.len() < SCAN || (self.spans.len() + 1) * 4 <= self.table.len() * 3 {
            return;
        }
        let wanted = (self.spans.len() + 1) * 4 / 3 + 1;
        let slots = (self.table.len() * 2)
            .max(wanted.next_power_of_two())
            .max(16);
        let mask = slots - 1;
        let mut table = vec![EMPTY; slots];
        for o in 0..self.spans.len() as u32 {
            let mut i = (hash_lower(self.name(o)) as usize) & mask;
            while table[i] != EMPTY {
                i = (i + 1) & mask;
            }
            table[i] = o;
        }
        self.table = table;
    }

    /// The owner number of `wire` (as written), added when new.
    pub(super) fn intern(&mut self, wire: &[u8]) -> Result<u32, BuildError> {
        self.grow();
        if wire.len() > 255 {
            return Err(BuildError::NameTooLong);
        }
        // Where a new name goes in the index (none yet: no slot).
        let mut slot = None;
        if self.table.is_empty() {
            if let Some(o) = self.scan(wire) {
                return Ok(o);
            }
        } else {
            let mask = self.table.len() - 1;
            let mut i = (hash_lower(wire) as usize) & mask;
            loop {
                match self.table[i] {
                    EMPTY => break,
                    o if same_name(self.name(o), wire) => return Ok(o),
                    _ => i = (i + 1) & mask,
                }
            }
            slot = Some(i);
        }
        let owner = u32::try_from(self.spans.len()).map_err(|_| BuildError::TooManyNames)?;
        let start = u32::try_from(self.names.len()).map_err(|_| BuildError::TooManyNames)?;
        let len = u8::try_from(wire.len()).map_err(|_| BuildError::NameTooLong)?;
        self.names.extend_from_slice(wire);
        self.spans.push((start, len));
        if let Some(i) = slot {
            self.table[i] = owner;
        }
        Ok(owner)
    }
}

/// Whether two wire names are the same name, case aside: the bytes at once
/// first (a zone's names are mostly written in one case), letter by letter
/// only when they differ.
fn same_name(a: &[u8], b: &[u8]) -> bool {
    a == b || a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::{Owners, SCAN};

    fn wire(label: &str) -> Vec<u8> {
        let mut w = vec![label.len() as u8];
        w.extend_from_slice(label.as_bytes());
        w.extend_from_slice(b"\x04test\x00");
        w
    }

    /// Numbered once each, case aside, in order of first appearance: the
    /// first owners compared one by one, then through the index made past
    /// [`SCAN`], and found again either way.
    #[test]
    fn names_are_numbered_once_across_the_scan_and_the_index() {
        for capacity in [0, 4, 1000] {
            let mut owners = Owners::with_room(capacity, capacity * 24);
            let count = SCAN * 5 + 3;
            for round in 0..2 {
                for i in 0..count {
                    let name = if round == 0 {
                        format!("n{i}")
                    } else {
                        format!("N{i}")
                    };
                    let o = owners.intern(&wire(&name)).unwrap();
                    assert_eq!(o as usize, i, "{name} (capacity {capacity})");
                }
            }
            assert_eq!(owners.spans.len(), count);
            for i in 0..count {
                assert_eq!(owners.find(&wire(&format!("N{i}"))), Some(i as u32));
                // As first written.
                assert_eq!(owners.name(i as u32), wire(&format!("n{i}")));
            }
            assert_eq!(owners.find(&wire("absent")), None);
            // A name past 255 bytes is refused.
            assert!(owners.intern(&[1; 256]).is_err());
        }
        let mut few = Owners::with_room(2, 48);
        assert_eq!(few.find(&wire("a")), None);
        assert_eq!(few.intern(&wire("a")).unwrap(), 0);
        assert_eq!(few.find(&wire("A")), Some(0));
        assert!(few.table.is_empty(), "no index for a few names");
    }
}
