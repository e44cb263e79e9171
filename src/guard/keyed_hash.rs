//! A fast keyed hash for the per-query tables whose keys clients choose:
//! the in-flight places per client group ([`super::fair::Holders`], looked
//! up twice per forwarded query) and the LS's packet cache keys (once per
//! hit). std's `RandomState` (SipHash-1-3) cost ~180 instructions per
//! lookup of a client group and ~500 per cache key there (issue 40: an
//! eighth of a cache hit's user-space work); this hash ~40 and ~90.
//!
//! The construction is foldhash's (hashbrown's default hasher): each
//! 64-bit word of input is folded into the state by a 64×64→128-bit
//! multiply with a secret key, the product's halves XORed; the tail of a
//! byte string is one word carrying its length (strings that differ only
//! by trailing zero bytes do not end alike). Both keys are drawn at random
//! per table ([`KeyedState::new`]), so keys that collide cannot be chosen
//! without them. It is weaker than SipHash against an attacker who learns
//! about the keys from timings over many queries (as foldhash says of
//! itself); the worst case of either table is bounded anyway: the places
//! by the worker's `max_inflight`, the cache by its `max_entries`.
use std::hash::{BuildHasher, Hasher};

/// The random keys of one table's hash: the [`BuildHasher`] of its map.
#[derive(Debug, Clone, Copy)]
pub struct KeyedState {
    seed: u64,
    key: u64,
}

impl KeyedState {
    /// Keys drawn at random.
    pub fn new() -> Self {
        let [seed, key]: [u64; 2] = rand::random();
        // An even key loses the product's low bit: odd.
        KeyedState { seed, key: key | 1 }
    }
}

impl Default for KeyedState {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildHasher for KeyedState {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            state: self.seed,
            key: self.key,
        }
    }
}

/// The hasher of one value under a [`KeyedState`].
#[derive(Debug, Clone, Copy)]
pub struct KeyedHasher {
    state: u64,
    key: u64,
}

/// The 128-bit product of `a` and `b`, its halves XORed.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl KeyedHasher {
    #[inline]
    fn word(&mut self, w: u64) {
        self.state = fold(self.state ^ w, self.key);
    }
}

impl Hasher for KeyedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.word(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        let mut b = [0u8; 8];
        if let Some(head) = b.get_mut(..rest.len()) {
            head.copy_from_slice(rest);
        }
        // At most 7 bytes: the eighth carries their count (0 for none).
        let [.., last] = &mut b;
        *last = rest.len() as u8;
        self.word(u64::from_le_bytes(b));
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.word(u64::from(n));
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.word(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.word(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.word(n);
    }

    #[inline]
    fn write_u128(&mut self, n: u128) {
        self.word(n as u64);
        self.word((n >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.word(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // One more fold under a different key: every input bit reaches
        // every output bit (a table takes its bucket from the low bits).
        fold(self.state, self.key.rotate_left(32) | 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::IpAddr;

    fn hash<T: std::hash::Hash>(s: &KeyedState, v: &T) -> u64 {
        s.hash_one(v)
    }

    #[test]
    fn equal_values_hash_alike_and_tables_differ_by_their_keys() {
        let (a, b) = (KeyedState::new(), KeyedState::new());
        let ip: IpAddr = [192, 0, 2, 1].into();
        assert_eq!(hash(&a, &ip), hash(&a, &ip));
        assert_ne!(hash(&a, &ip), hash(&b, &ip), "two tables, two keys");
    }

    /// Strings that differ only in trailing zero bytes, or by where a
    /// split falls, hash apart: the tail word carries the length.
    #[test]
    fn a_byte_string_tail_is_told_by_its_length() {
        let s = KeyedState::new();
        let one = |bytes: &[u8]| {
            let mut h = s.build_hasher();
            h.write(bytes);
            h.finish()
        };
        let all: HashSet<u64> = (0..=17)
            .map(|n| one(&vec![0u8; n]))
            .chain([
                one(b"ab"),
                one(b"ab\0"),
                one(b"abcdefgh"),
                one(b"abcdefgh\0"),
            ])
            .collect();
        assert_eq!(all.len(), 22);
    }

    /// Consecutive client addresses spread over a table's buckets: the low
    /// bits (a small table's bucket) take every value about as often
    /// (64 each on average; the bounds are six standard deviations off).
    #[test]
    fn consecutive_addresses_spread_over_the_low_bits() {
        let s = KeyedState::new();
        let mut buckets = [0u32; 64];
        for i in 0..64 * 64u32 {
            let ip = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
            let h = hash(&s, &ip);
            if let Some(b) = buckets.get_mut((h % 64) as usize) {
                *b += 1;
            }
        }
        assert!(
            buckets.iter().all(|&n| (16..=128).contains(&n)),
            "{buckets:?}"
        );
    }
}
