//! Memory of the `sticky` order: which backend last gave a positive answer for
//! a name. A fixed-size, direct-mapped table of atomics: bounded memory, no
//! lock; a new name whose slot is taken evicts the old one.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Backend index bits in a slot (the rest holds the name hash's top bits).
const INDEX_BITS: u32 = 16;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

/// A bounded map from name hash to backend index.
#[derive(Debug)]
pub struct StickyTable {
    slots: Box<[AtomicU64]>,
}

impl StickyTable {
    /// A table with `size` slots (at least one, at most the bound config
    /// validation sets, so that a config built in code cannot ask for an
    /// allocation that panics either).
    pub fn new(size: usize) -> Self {
        let size = size.clamp(1, crate::config::MAX_STICKY_SIZE);
        StickyTable {
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn slot(&self, name_hash: u64) -> Option<&AtomicU64> {
        let i = (name_hash % self.slots.len() as u64) as usize;
        self.slots.get(i)
    }

    fn tag(name_hash: u64) -> u64 {
        name_hash & !INDEX_MASK
    }

    /// The backend remembered for this name, if any.
    pub fn get(&self, name_hash: u64) -> Option<usize> {
        let v = self.slot(name_hash)?.load(Relaxed);
        // 0 is "empty": indexes are stored plus one.
        let idx = v & INDEX_MASK;
        (idx != 0 && v & !INDEX_MASK == Self::tag(name_hash)).then(|| (idx - 1) as usize)
    }

    /// Remembers `backend` for this name (evicting whatever shared its slot).
    pub fn set(&self, name_hash: u64, backend: usize) {
        let idx = (backend as u64 + 1) & INDEX_MASK;
        if let Some(s) = self.slot(name_hash) {
            s.store(Self::tag(name_hash) | idx, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_evicts() {
        let t = StickyTable::new(1);
        let a = 0xdead_0000_0000_0000;
        let b = 0xbeef_0000_0000_0000;
        assert_eq!(t.get(a), None);
        t.set(a, 1);
        assert_eq!(t.get(a), Some(1));
        t.set(b, 0);
        assert_eq!(t.get(b), Some(0));
        assert_eq!(t.get(a), None, "a was evicted by b");
    }

    #[test]
    fn many_slots_keep_many_names() {
        let t = StickyTable::new(1024);
        for i in 0..100u64 {
            t.set(
                super::super::order::name_hash(format!("n{i}").as_bytes()),
                (i % 3) as usize,
            );
        }
        for i in 0..100u64 {
            let h = super::super::order::name_hash(format!("n{i}").as_bytes());
            if let Some(b) = t.get(h) {
                assert_eq!(b, (i % 3) as usize);
            }
        }
    }
}
