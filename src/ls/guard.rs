//! Client protection: the `allow` ACL and the per-client rate limit.
//!
//! The rate limiter is a token bucket per client IP (a burst of one second's
//! worth, refilled at the rate), kept in a fixed-size, set-associative table:
//! [`RATE_SETS`] sets of [`RATE_WAYS`] buckets, the set chosen by a keyed
//! hash of the address, so memory is bounded whatever the number of clients
//! and nobody can pick addresses that crowd one set.
//!
//! A collision never refills a bucket. A client takes a free way with a full
//! bucket (it has never been seen, so that is what it is owed); when its set
//! is full, it replaces the least recently seen client and starts from an
//! *empty* bucket as of that client's last query. Every client ever evicted
//! from a set was last seen no later than that, so whether the newcomer is
//! new or is coming back after an eviction, it never holds more tokens than
//! its own bucket would if the table were unbounded: rotating addresses
//! through a set only makes the limit stricter. (Under such pressure genuine
//! clients of the set are squeezed too; that is the price of bounded memory.)
//!
//! Over the limit, a UDP query is dropped, but every second one is answered
//! with TC=1 so a genuine client can retry over TCP (as BIND's RRL "slip"
//! does).
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use ipnet::IpNet;

/// Sets of the rate-limit table.
pub const RATE_SETS: usize = 1 << 11;
/// Buckets per set ([`RATE_SETS`] × [`RATE_WAYS`] clients tracked at once).
pub const RATE_WAYS: usize = 8;

/// `ip`, with an IPv4-mapped IPv6 address turned into the IPv4 one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is inside one of `allow`.
pub fn allowed(allow: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    allow.iter().any(|n| n.contains(&ip))
}

/// What the limiter says about one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    /// Under the limit.
    Pass,
    /// Over: drop it.
    Drop,
    /// Over: answer TC=1 so the client retries over TCP.
    Slip,
}

/// One client's token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// The client.
    ip: IpAddr,
    /// Tokens left as of `last`.
    tokens: f64,
    /// When the client was last seen (and the bucket last refilled).
    last: Instant,
    /// Queries over the limit so far (every second one slips).
    limited: u64,
}

impl Bucket {
    /// Refills at `qps` per second up to `burst` and takes a token at `now`.
    fn take(&mut self, qps: f64, burst: f64, now: Instant) -> RateVerdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * qps).min(burst);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            RateVerdict::Pass
        } else {
            self.limited += 1;
            if self.limited.is_multiple_of(2) {
                RateVerdict::Slip
            } else {
                RateVerdict::Drop
            }
        }
    }
}

/// One set of the table: the buckets of up to [`RATE_WAYS`] clients (pure
/// state; the clock is an argument, see [`RateSet::take`]).
#[derive(Debug, Clone, Default)]
pub struct RateSet {
    ways: [Option<Bucket>; RATE_WAYS],
}

impl RateSet {
    /// Takes a token for a query from `ip` at `now`, at `qps` per second with
    /// a burst of one second's worth (at least one query).
    pub fn take(&mut self, ip: IpAddr, qps: f64, now: Instant) -> RateVerdict {
        let burst = qps.max(1.0);
        let bucket = self.bucket_for(ip, burst, now);
        bucket.take(qps, burst, now)
    }

    /// The bucket of `ip`: its own, a fresh full one in a free way, or, when
    /// the set is full, the least recently seen client's way with an empty
    /// bucket as of that client's last query (see the module doc).
    fn bucket_for(&mut self, ip: IpAddr, burst: f64, now: Instant) -> &mut Bucket {
        let (i, start) = match self.ways.iter().position(|w| w.is_some_and(|b| b.ip == ip)) {
            Some(i) => (i, None),
            None => match self.ways.iter().position(Option::is_none) {
                Some(i) => (i, Some((burst, now))),
                None => {
                    let (i, last) = self.least_recent().unwrap_or((0, now));
                    (i, Some((0.0, last)))
                }
            },
        };
        // cannot fail because `i` is a position in `self.ways` found above
        let way = &mut self.ways[i];
        match (start, way) {
            (None, Some(b)) => b,
            (start, way) => {
                let (tokens, last) = start.unwrap_or((burst, now));
                way.insert(Bucket {
                    ip,
                    tokens,
                    last,
                    limited: 0,
                })
            }
        }
    }

    /// The way of the least recently seen client, and when that was.
    fn least_recent(&self) -> Option<(usize, Instant)> {
        self.ways
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.map(|b| (i, b.last)))
            .min_by_key(|&(_, last)| last)
    }
}

/// The per-client limiter: [`RATE_SETS`] [`RateSet`]s, each behind its own lock.
#[derive(Debug)]
pub struct RateLimiter {
    qps: f64,
    /// Keyed per limiter, so clients cannot choose addresses that share a set.
    hasher: RandomState,
    sets: Box<[Mutex<RateSet>]>,
}

impl RateLimiter {
    /// A limiter at `qps` per client.
    pub fn new(qps: u32) -> Self {
        RateLimiter {
            qps: f64::from(qps),
            hasher: RandomState::new(),
            sets: (0..RATE_SETS)
                .map(|_| Mutex::new(RateSet::default()))
                .collect(),
        }
    }

    /// Takes a token for a query from `ip`.
    pub fn check(&self, ip: IpAddr) -> RateVerdict {
        let ip = canonical(ip);
        let set = (self.hasher.hash_one(ip) % self.sets.len() as u64) as usize;
        let Some(cell) = self.sets.get(set) else {
            return RateVerdict::Pass;
        };
        let now = Instant::now();
        match cell.lock() {
            Ok(mut s) => s.take(ip, self.qps, now),
            Err(p) => p.into_inner().take(ip, self.qps, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    /// Per client: normal answers, and the times of its first and last query.
    #[derive(Default)]
    struct Seen {
        passes: u32,
        first: Option<Instant>,
        last: Option<Instant>,
    }

    /// Runs `queries` (client, time) through one set at `qps`, and checks
    /// that no client passed more than its burst plus `qps` times the span
    /// of its own queries (what an unbounded table would allow).
    fn assert_never_over(queries: &[(IpAddr, Instant)], qps: f64) -> HashMap<IpAddr, Seen> {
        let mut set = RateSet::default();
        let mut seen: HashMap<IpAddr, Seen> = HashMap::new();
        for &(ip, t) in queries {
            let s = seen.entry(ip).or_default();
            s.first.get_or_insert(t);
            s.last = Some(t);
            if set.take(ip, qps, t) == RateVerdict::Pass {
                s.passes += 1;
            }
        }
        for (ip, s) in &seen {
            let (Some(first), Some(last)) = (s.first, s.last) else {
                continue;
            };
            let span = last.duration_since(first).as_secs_f64();
            let allowed = (qps.max(1.0) + qps * span + 1e-9).floor() as u32;
            assert!(
                s.passes <= allowed,
                "{ip}: {} passes, allowed {allowed} over {span} s",
                s.passes
            );
        }
        seen
    }

    #[test]
    fn acl_matches_networks_and_mapped_v4() {
        let allow: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        assert!(allowed(&allow, "127.0.0.1".parse().unwrap()));
        assert!(allowed(&allow, "::1".parse().unwrap()));
        assert!(allowed(&allow, "::ffff:127.0.0.9".parse().unwrap()));
        assert!(!allowed(&allow, "192.0.2.1".parse().unwrap()));
        assert!(!allowed(&[], "127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bucket_allows_the_rate_and_slips_every_second_excess() {
        let mut set = RateSet::default();
        let t0 = Instant::now();
        let mut pass = 0;
        let mut slip = 0;
        let mut drop = 0;
        // 1,000 queries within one second at a limit of 100 qps.
        for i in 0..1000u64 {
            match set.take(ip(1), 100.0, t0 + Duration::from_micros(i * 1000)) {
                RateVerdict::Pass => pass += 1,
                RateVerdict::Slip => slip += 1,
                RateVerdict::Drop => drop += 1,
            }
        }
        assert!((195..=205).contains(&pass), "pass {pass}");
        assert!((slip as i64 - drop as i64).abs() <= 1);
    }

    #[test]
    fn a_new_client_with_room_in_its_set_gets_a_full_burst() {
        let mut set = RateSet::default();
        let t0 = Instant::now();
        for _ in 0..100 {
            set.take(ip(1), 10.0, t0);
        }
        let passes = (0..20)
            .filter(|_| set.take(ip(2), 10.0, t0) == RateVerdict::Pass)
            .count();
        assert_eq!(passes, 10, "a newcomer's burst is one second's worth");
    }

    #[test]
    fn clients_taking_turns_in_a_full_set_never_refill_each_other() {
        // One more client than the set has ways, in turn, 100 rounds at
        // 10 rounds a second: with direct mapping (or fresh buckets on
        // eviction) every query would pass.
        let t0 = Instant::now();
        let clients = u32::try_from(RATE_WAYS).unwrap() + 1;
        let mut queries = Vec::new();
        for round in 0..100u64 {
            for c in 0..clients {
                queries.push((ip(c), t0 + Duration::from_millis(round * 100)));
            }
        }
        let seen = assert_never_over(&queries, 1.0);
        assert_eq!(seen.len(), RATE_WAYS + 1);
    }

    #[test]
    fn a_client_evicting_another_starts_empty_as_of_its_last_query() {
        let t0 = Instant::now();
        let mut set = RateSet::default();
        let clients = u32::try_from(RATE_WAYS).unwrap();
        for c in 0..clients {
            assert_eq!(set.take(ip(c), 10.0, t0), RateVerdict::Pass);
        }
        // Half a second later the set is full: the newcomer gets what an
        // empty bucket refills in that half second (5 at 10 qps), not 10.
        let t1 = t0 + Duration::from_millis(500);
        let passes = (0..20)
            .filter(|_| set.take(ip(100), 10.0, t1) == RateVerdict::Pass)
            .count();
        assert_eq!(passes, 5);
        // The client it evicted was the least recently seen one (the
        // first), and the others kept their buckets: 9 tokens + 5 refilled.
        let kept = (0..20)
            .filter(|_| set.take(ip(clients - 1), 10.0, t1) == RateVerdict::Pass)
            .count();
        assert_eq!(kept, 10, "burst caps the refill");
    }

    #[test]
    fn a_set_idle_for_a_whole_burst_gives_a_newcomer_a_full_bucket() {
        let t0 = Instant::now();
        let mut set = RateSet::default();
        for c in 0..u32::try_from(RATE_WAYS).unwrap() {
            set.take(ip(c), 10.0, t0);
        }
        let t1 = t0 + Duration::from_secs(2);
        let passes = (0..20)
            .filter(|_| set.take(ip(100), 10.0, t1) == RateVerdict::Pass)
            .count();
        assert_eq!(passes, 10);
    }

    #[test]
    fn rotating_many_addresses_through_one_set_never_beats_the_limit() {
        // A deterministic pseudo-random mix: 64 clients (8 per way), bursts
        // and pauses, 20,000 queries over about 20 seconds, two rates.
        for qps in [1.0, 7.0] {
            let t0 = Instant::now();
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let mut t = t0;
            let mut queries = Vec::new();
            for _ in 0..20_000 {
                let r = next();
                t += Duration::from_micros(r % 2000);
                queries.push((ip(u32::try_from((r >> 32) % 64).unwrap()), t));
            }
            assert_never_over(&queries, qps);
        }
    }

    #[test]
    fn the_limiter_keys_mapped_v4_like_v4() {
        let limiter = RateLimiter::new(1);
        assert_eq!(
            limiter.check("192.0.2.1".parse().unwrap()),
            RateVerdict::Pass
        );
        assert_ne!(
            limiter.check("::ffff:192.0.2.1".parse().unwrap()),
            RateVerdict::Pass
        );
        assert_eq!(
            limiter.check("192.0.2.2".parse().unwrap()),
            RateVerdict::Pass
        );
    }
}
