//! A fast keyed hash for the per-query tables whose keys clients choose:
//! the in-flight places per client group ([`super::fair::Holders`], looked
//! up twice per forwarded query) and the LS's packet cache keys (once per
//! hit). std's `RandomState` (SipHash-1-3) cost ~180 instructions per
//! lookup of a client group and ~500 per cache key there (an eighth of a
//! cache hit's user-space work); this hash ~40 and ~90.
//!
//! It is the `foldhash` crate's fast hasher (hashbrown's default): 64-bit
//! words folded into the state by a 64x64->128-bit multiply with secret
//! keys, seeded at random per process and per table, so keys that collide
//! cannot be chosen without them. It is weaker than SipHash against an
//! attacker who learns about the keys from timings over many queries (as
//! foldhash says of itself); the worst case of either table is bounded
//! anyway: the places by the worker's `max_inflight`, the cache by its
//! `max_entries`.

/// The random keys of one table's hash: the `BuildHasher` of its map
/// (`KeyedState::default()`: keys of its own).
pub type KeyedState = foldhash::fast::RandomState;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::{BuildHasher, Hasher};
    use std::net::IpAddr;

    fn hash<T: std::hash::Hash>(s: &KeyedState, v: &T) -> u64 {
        s.hash_one(v)
    }

    #[test]
    fn equal_values_hash_alike_and_tables_differ_by_their_keys() {
        let (a, b) = (KeyedState::default(), KeyedState::default());
        let ip: IpAddr = [192, 0, 2, 1].into();
        assert_eq!(hash(&a, &ip), hash(&a, &ip));
        assert_ne!(hash(&a, &ip), hash(&b, &ip), "two tables, two keys");
    }

    /// Strings that differ only in trailing zero bytes, or by where a
    /// split falls, hash apart: the tail word carries the length.
    #[test]
    fn a_byte_string_tail_is_told_by_its_length() {
        let s = KeyedState::default();
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
        let s = KeyedState::default();
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
