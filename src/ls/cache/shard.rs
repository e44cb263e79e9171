//! One shard of the cache ([`Shard`]): an index from a key's hash to its
//! slot, and two CLOCK rings of slots, one for positive answers and one for
//! negative ones, each with a fixed capacity (see the parent module for why
//! CLOCK and why two rings). Pure: no lock, no clock of its own; the caller
//! holds the shard's lock and passes the time.
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::key::CacheKey;
use super::stored::Entry;

/// The ring of positive answers.
const POSITIVE: usize = 0;
/// The ring of negative answers.
const NEGATIVE: usize = 1;

/// One cached answer in its ring.
#[derive(Debug)]
pub(super) struct Slot {
    /// Its key's hash (the index's key).
    hash: u64,
    /// The answer (shared with the hits writing it out).
    pub(super) entry: Arc<Entry>,
    /// CLOCK's reference bit: set by a hit, cleared as the hand passes.
    referenced: bool,
    /// Until when its name is answered stale at once, after a query for it
    /// ended without an answer (RFC 8767's failure-recheck timer).
    pub(super) failed_until: Option<Instant>,
    /// While a backend of its route is up, when the next query for it in
    /// that window is forwarded (the others are answered stale at once).
    pub(super) retry_at: Option<Instant>,
}

/// A CLOCK ring: slots in a circle, a hand, a capacity.
#[derive(Debug, Default)]
struct Ring {
    /// The slots, at most `cap`.
    slots: Vec<Slot>,
    /// Most slots.
    cap: usize,
    /// Where the hand stands.
    hand: usize,
}

impl Ring {
    /// The slot to replace: the first the hand finds unreferenced (clearing
    /// the bits it passes) or expired past the stale window. Found within
    /// two turns, since the first clears every bit.
    fn victim(&mut self, now: Instant, stale: Duration) -> usize {
        let len = self.slots.len();
        for _ in 0..=2 * len {
            let at = if self.hand < len { self.hand } else { 0 };
            self.hand = (at + 1) % len.max(1);
            let Some(s) = self.slots.get_mut(at) else {
                return 0;
            };
            let useless = now >= s.entry.expires + stale;
            if !s.referenced || useless {
                return at;
            }
            s.referenced = false;
        }
        0
    }
}

/// Counters of one shard, summed by [`super::PacketCache::stats`].
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counts {
    /// Fresh answers served.
    pub(super) hits: u64,
    /// Stale answers served.
    pub(super) stale: u64,
    /// Entries pushed out to make room.
    pub(super) evictions: u64,
    /// Entries stored.
    pub(super) inserts: u64,
}

/// A hasher that passes a `u64` through: the index's keys are already
/// hashes (under the cache's random keys).
#[derive(Debug, Default)]
pub(super) struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One shard: the index and the two rings.
#[derive(Debug)]
pub(super) struct Shard {
    /// Key hash to (ring, slot).
    index: HashMap<u64, (usize, usize), BuildHasherDefault<Identity>>,
    /// Positive and negative answers.
    rings: [Ring; 2],
    /// This shard's counters.
    pub(super) counts: Counts,
}

impl Shard {
    /// A shard holding at most `positive` positive and `negative` negative
    /// answers (the index is allocated whole now).
    pub(super) fn new(positive: usize, negative: usize) -> Self {
        let ring = |cap: usize| Ring {
            slots: Vec::with_capacity(cap),
            cap,
            hand: 0,
        };
        Shard {
            index: HashMap::with_capacity_and_hasher(
                positive + negative,
                BuildHasherDefault::default(),
            ),
            rings: [ring(positive), ring(negative)],
            counts: Counts::default(),
        }
    }

    /// Entries held.
    pub(super) fn len(&self) -> usize {
        self.rings.iter().map(|r| r.slots.len()).sum()
    }

    /// The slot of `key`, its key compared in full (a hash collision is a
    /// miss, never another name's answer).
    pub(super) fn get(&mut self, key: &CacheKey) -> Option<&mut Slot> {
        let &(ring, at) = self.index.get(&key.hash)?;
        let slot = self.rings.get_mut(ring)?.slots.get_mut(at)?;
        key.same(&slot.entry.key).then_some(slot)
    }

    /// Marks a slot got by [`Shard::get`] as used (CLOCK's bit).
    pub(super) fn touch(slot: &mut Slot) {
        slot.referenced = true;
    }

    /// Stores `entry` under `hash`, replacing the entry of the same key,
    /// else taking a free slot of its ring, else evicting (expired past
    /// `stale` first). Nothing is stored in a ring of capacity 0.
    pub(super) fn insert(&mut self, hash: u64, entry: Entry, now: Instant, stale: Duration) {
        let ring = if entry.kind.negative() {
            NEGATIVE
        } else {
            POSITIVE
        };
        let slot = Slot {
            hash,
            entry: Arc::new(entry),
            referenced: false,
            failed_until: None,
            retry_at: None,
        };
        if let Some(&(r, at)) = self.index.get(&hash) {
            if r == ring
                && let Some(old) = self.rings.get_mut(r).and_then(|r| r.slots.get_mut(at))
            {
                *old = slot;
                self.counts.inserts += 1;
                return;
            }
            self.remove_at(r, at);
        }
        let Some(rg) = self.rings.get_mut(ring) else {
            return;
        };
        if rg.cap == 0 {
            return;
        }
        self.counts.inserts += 1;
        if rg.slots.len() < rg.cap {
            rg.slots.push(slot);
            self.index.insert(hash, (ring, rg.slots.len() - 1));
            return;
        }
        let at = rg.victim(now, stale);
        if let Some(old) = rg.slots.get_mut(at) {
            let gone = std::mem::replace(old, slot);
            self.index.remove(&gone.hash);
            self.index.insert(hash, (ring, at));
            self.counts.evictions += 1;
        }
    }

    /// Removes the entry of `key`, if there is one (its key compared in
    /// full); whether there was.
    pub(super) fn remove(&mut self, key: &CacheKey) -> bool {
        let Some(&(r, at)) = self.index.get(&key.hash) else {
            return false;
        };
        let mine = self
            .rings
            .get(r)
            .and_then(|rg| rg.slots.get(at))
            .is_some_and(|s| key.same(&s.entry.key));
        if mine {
            self.remove_at(r, at);
        }
        mine
    }

    /// Removes every entry `pred` picks; how many.
    pub(super) fn remove_if(&mut self, pred: impl Fn(&Entry) -> bool) -> usize {
        let mut removed = 0;
        for r in 0..self.rings.len() {
            let mut at = 0;
            while let Some(s) = self.rings.get(r).and_then(|rg| rg.slots.get(at)) {
                if pred(&s.entry) {
                    self.remove_at(r, at);
                    removed += 1;
                } else {
                    at += 1;
                }
            }
        }
        removed
    }

    /// Removes the slot at `at` of ring `r`; the last slot takes its place.
    fn remove_at(&mut self, r: usize, at: usize) {
        let Some(rg) = self.rings.get_mut(r) else {
            return;
        };
        if at >= rg.slots.len() {
            return;
        }
        let gone = rg.slots.swap_remove(at);
        self.index.remove(&gone.hash);
        if let Some(moved) = rg.slots.get(at) {
            self.index.insert(moved.hash, (r, at));
        }
        if rg.hand >= rg.slots.len() {
            rg.hand = 0;
        }
    }
}
