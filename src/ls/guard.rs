//! Client protection: the `allow` ACL and the per-client rate limit.
//!
//! The rate limiter is a token bucket per client IP, kept in a fixed-size,
//! direct-mapped table (bounded memory whatever the number of clients; a new
//! client whose slot is taken starts a fresh bucket there). Over the limit, a
//! UDP query is dropped, but every second one is answered with TC=1 so a
//! genuine client can retry over TCP (as BIND's RRL "slip" does).
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use ipnet::IpNet;

/// Slots of the rate-limit table.
const RATE_SLOTS: usize = 1 << 14;

/// Whether `ip` is inside one of `allow`.
pub fn allowed(allow: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
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

/// One client's bucket (pure state; see [`Bucket::take`]).
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    ip: Option<IpAddr>,
    tokens: f64,
    last: Option<Instant>,
    limited: u64,
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        ip: None,
        tokens: 0.0,
        last: None,
        limited: 0,
    };

    /// Refills at `qps` per second (burst of one second's worth) and takes a
    /// token for a query from `ip` at `now`.
    pub fn take(&mut self, ip: IpAddr, qps: f64, now: Instant) -> RateVerdict {
        if self.ip != Some(ip) {
            *self = Bucket {
                ip: Some(ip),
                tokens: qps,
                last: Some(now),
                limited: 0,
            };
        }
        let elapsed = self
            .last
            .map_or(0.0, |l| now.saturating_duration_since(l).as_secs_f64());
        self.tokens = (self.tokens + elapsed * qps).min(qps.max(1.0));
        self.last = Some(now);
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

/// The per-client limiter.
#[derive(Debug)]
pub struct RateLimiter {
    qps: f64,
    slots: Box<[Mutex<Bucket>]>,
}

impl RateLimiter {
    /// A limiter at `qps` per client.
    pub fn new(qps: u32) -> Self {
        RateLimiter {
            qps: f64::from(qps),
            slots: (0..RATE_SLOTS).map(|_| Mutex::new(Bucket::EMPTY)).collect(),
        }
    }

    /// Takes a token for a query from `ip`.
    pub fn check(&self, ip: IpAddr) -> RateVerdict {
        let h = match ip {
            IpAddr::V4(a) => super::order::name_hash(&a.octets()),
            IpAddr::V6(a) => super::order::name_hash(&a.octets()),
        };
        let slot = (h % self.slots.len() as u64) as usize;
        let Some(cell) = self.slots.get(slot) else {
            return RateVerdict::Pass;
        };
        let now = Instant::now();
        match cell.lock() {
            Ok(mut b) => b.take(ip, self.qps, now),
            Err(p) => p.into_inner().take(ip, self.qps, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut b = Bucket::EMPTY;
        let t0 = Instant::now();
        let mut pass = 0;
        let mut slip = 0;
        let mut drop = 0;
        // 1,000 queries within one second at a limit of 100 qps.
        for i in 0..1000u64 {
            match b.take(ip, 100.0, t0 + Duration::from_micros(i * 1000)) {
                RateVerdict::Pass => pass += 1,
                RateVerdict::Slip => slip += 1,
                RateVerdict::Drop => drop += 1,
            }
        }
        assert!((195..=205).contains(&pass), "pass {pass}");
        assert!((slip as i64 - drop as i64).abs() <= 1);
    }

    #[test]
    fn a_new_client_in_the_slot_starts_fresh() {
        let mut b = Bucket::EMPTY;
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let c: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..10 {
            b.take(a, 1.0, t0);
        }
        assert_eq!(b.take(c, 1.0, t0), RateVerdict::Pass);
    }
}
