//! Who is asked first: each load-balancing order is a pure function from the
//! backends' states (and the query's key) to a candidate sequence.
//!
//! Only usable (up) backends are candidates; when none is up, every backend
//! is, so the LS still tries rather than fail blind. Strategies walk the
//! sequence: `hedge` and `sequential` one after another, `race` all at once.
use smallvec::SmallVec;

use crate::config::Order;

use super::backend::BackendView;

/// Everything an order may look at besides the backends.
#[derive(Debug, Clone, Copy)]
pub struct OrderKey<'a> {
    /// Hash of the lower-cased query name ([`name_hash`]).
    pub name_hash: u64,
    /// A counter that goes up by one per client query (round-robin).
    pub tick: u64,
    /// For `sticky`: the backend that last answered this name, if remembered.
    pub sticky: Option<usize>,
    /// For `weighted-random`: a fresh random number.
    pub random: u64,
    /// Stable hashes of the backends' names, by index (`consistent-hash`).
    pub backend_hashes: &'a [u64],
}

/// FNV-1a over the bytes of a DNS name with ASCII letters lower-cased, so that
/// `WWW.Example.COM` and `www.example.com` hash alike. Stable across runs.
pub fn name_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Whether order `kind` reads the query's [`name_hash`] (consistent-hash
/// picks by it, sticky remembers by it): for the others the door does not
/// take it (an FNV-1a pass over the name, ~200 instructions a query).
pub fn reads_name(kind: Order) -> bool {
    matches!(kind, Order::ConsistentHash | Order::Sticky)
}

/// A 64-bit mixer (splitmix64's finaliser): spreads `x` over all bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Backends held inline in a candidate sequence (no allocation up to this many).
pub const INLINE: usize = 8;

/// A candidate sequence: backend indexes, first asked first.
pub type Candidates = SmallVec<[usize; INLINE]>;

/// The candidate sequence for one query.
#[cfg(test)]
pub fn order(kind: Order, views: &[BackendView], key: &OrderKey<'_>) -> Candidates {
    let mut c = Candidates::new();
    order_into(kind, views, key, &mut c);
    c
}

/// The candidate sequence for one query, written into `c` (emptied
/// first): the caller's list, a query's resolution's own (no list made
/// and returned by value to be copied in).
pub fn order_into(kind: Order, views: &[BackendView], key: &OrderKey<'_>, c: &mut Candidates) {
    c.clear();
    c.extend(views.iter().filter(|v| v.up).map(|v| v.index));
    if c.is_empty() {
        c.extend(views.iter().map(|v| v.index));
    }
    let view = |i: usize| views.iter().find(|v| v.index == i);
    match kind {
        Order::Fixed => {}
        Order::RoundRobin => rotate(c, key.tick),
        Order::LeastOutstanding => c.sort_by_key(|&i| {
            let v = view(i);
            (
                v.map_or(u32::MAX, |v| v.outstanding),
                v.map_or(u64::MAX, |v| v.latency_us),
                i,
            )
        }),
        Order::Sticky => {
            rotate(c, key.tick);
            if let Some(s) = key.sticky
                && let Some(pos) = c.iter().position(|&i| i == s)
            {
                let first = c.remove(pos);
                c.insert(0, first);
            }
        }
        Order::ConsistentHash => {
            // Rendezvous hashing: the highest score wins; removing a backend
            // moves only the names it held, adding one takes ~1/N of names.
            let score = |i: usize| {
                let bh = key.backend_hashes.get(i).copied().unwrap_or(i as u64);
                mix(bh ^ mix(key.name_hash))
            };
            c.sort_by_key(|&i| std::cmp::Reverse(score(i)));
        }
        Order::WeightedRandom => {
            // Efraimidis–Spirakis: key u^(1/w), largest first; weight 0 goes last.
            let mut r = key.random;
            let mut keyed: SmallVec<[(f64, usize); INLINE]> = c
                .iter()
                .map(|&i| {
                    r = mix(r.wrapping_add(0x9e37_79b9_7f4a_7c15));
                    let u = ((r >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                    let w = f64::from(view(i).map_or(0, |v| v.weight));
                    let k = if w > 0.0 { u.powf(1.0 / w) } else { -1.0 };
                    (k, i)
                })
                .collect();
            keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
            c.clear();
            c.extend(keyed.into_iter().map(|(_, i)| i));
        }
    }
}

fn rotate(c: &mut [usize], tick: u64) {
    if !c.is_empty() {
        let k = (tick % c.len() as u64) as usize;
        c.rotate_left(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views(n: usize) -> Vec<BackendView> {
        (0..n)
            .map(|index| BackendView {
                index,
                outstanding: 0,
                latency_us: 0,
                up: true,
                weight: 1,
            })
            .collect()
    }

    /// The order `how` gives `v` at `tick`.
    fn ranks(how: Order, v: &[BackendView], tick: u64) -> Vec<usize> {
        order(how, v, &key(tick)).to_vec()
    }

    fn key(tick: u64) -> OrderKey<'static> {
        OrderKey {
            name_hash: 0,
            tick,
            sticky: None,
            random: tick,
            backend_hashes: &[],
        }
    }

    #[test]
    fn fixed_keeps_config_order_and_skips_down() {
        let mut v = views(3);
        assert_eq!(ranks(Order::Fixed, &v, 5), [0, 1, 2]);
        v[0].up = false;
        assert_eq!(ranks(Order::Fixed, &v, 5), [1, 2]);
    }

    #[test]
    fn all_down_means_all_candidates() {
        let mut v = views(3);
        for x in &mut v {
            x.up = false;
        }
        assert_eq!(ranks(Order::Fixed, &v, 0), [0, 1, 2]);
    }

    #[test]
    fn round_robin_rotates() {
        let v = views(3);
        assert_eq!(ranks(Order::RoundRobin, &v, 0), [0, 1, 2]);
        assert_eq!(ranks(Order::RoundRobin, &v, 1), [1, 2, 0]);
        assert_eq!(ranks(Order::RoundRobin, &v, 5), [2, 0, 1]);
    }

    #[test]
    fn least_outstanding_then_latency_then_index() {
        let mut v = views(3);
        v[0].outstanding = 5;
        v[1].outstanding = 1;
        v[2].outstanding = 1;
        v[1].latency_us = 900;
        v[2].latency_us = 100;
        assert_eq!(ranks(Order::LeastOutstanding, &v, 0), [2, 1, 0]);
        v[2].latency_us = 900;
        assert_eq!(ranks(Order::LeastOutstanding, &v, 0), [1, 2, 0]);
    }

    #[test]
    fn sticky_puts_the_remembered_backend_first_unless_down() {
        let mut v = views(3);
        let mut k = key(0);
        k.sticky = Some(2);
        assert_eq!(order(Order::Sticky, &v, &k)[0], 2);
        v[2].up = false;
        assert_eq!(order(Order::Sticky, &v, &k).to_vec(), vec![0, 1]);
    }

    #[test]
    fn weighted_random_follows_weights() {
        let mut v = views(3);
        v[0].weight = 1;
        v[1].weight = 2;
        v[2].weight = 7;
        let mut firsts = [0u32; 3];
        for t in 0..10_000u64 {
            let k = OrderKey {
                random: mix(t),
                ..key(t)
            };
            firsts[order(Order::WeightedRandom, &v, &k)[0]] += 1;
        }
        for (i, share) in [0.1, 0.2, 0.7].iter().enumerate() {
            let got = f64::from(firsts[i]) / 10_000.0;
            assert!(
                (got - share).abs() < 0.05 * share.max(0.1) + 0.01,
                "{i}: {got} vs {share}"
            );
        }
    }

    #[test]
    fn consistent_hash_moves_about_one_nth() {
        let names4: Vec<u64> = ["ts1", "ts2", "ts3", "ts4"]
            .iter()
            .map(|n| name_hash(n.as_bytes()))
            .collect();
        let first = |hashes: &[u64], nh: u64| {
            let v = views(hashes.len());
            let k = OrderKey {
                name_hash: nh,
                backend_hashes: hashes,
                ..key(0)
            };
            hashes[order(Order::ConsistentHash, &v, &k)[0]]
        };
        let names: Vec<u64> = (0..10_000)
            .map(|i| name_hash(format!("host{i}.example.").as_bytes()))
            .collect();
        // Remove ts4: only the names it held move.
        let three = &names4[..3];
        let mut moved = 0;
        for &n in &names {
            let before = first(&names4, n);
            let after = first(three, n);
            if before != after {
                assert_eq!(before, names4[3], "a name not on the removed backend moved");
                moved += 1;
            }
        }
        let share = f64::from(moved) / names.len() as f64;
        assert!((share - 0.25).abs() < 0.03, "moved {share}");
        // Stable: order does not depend on position in the config.
        let shuffled = [names4[2], names4[0], names4[3], names4[1]];
        for &n in names.iter().take(500) {
            assert_eq!(first(&names4, n), first(&shuffled, n));
        }
    }
}
