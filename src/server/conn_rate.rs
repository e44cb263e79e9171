//! The per-client cap on new encrypted connections per second (`conn_rate_limit` of
//! `[ls.tls]` and `[ls.https]`): [`ConnRate`], checked right after `accept`, before
//! the TLS handshake (the expensive part), so that one client opening connections in a
//! loop cannot spend the server's CPU on handshakes. It is the queries' token bucket
//! ([`RateLimiter`], a bounded table per client IP) counting connections, quiet: what
//! it refuses is counted on /metrics, never logged. A reload swaps the limit in place.
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;

use crate::guard::rate::{RateLimiter, RateVerdict};

/// One limit in force: its settings and its table.
#[derive(Debug)]
struct Limit {
    per_sec: u32,
    v6_prefix: u8,
    table: RateLimiter,
}

/// The new-connection limit of one encrypted transport; off at 0.
#[derive(Debug, Default)]
pub struct ConnRate(ArcSwapOption<Limit>);

impl ConnRate {
    /// `per_sec` new connections per second per client IP (per `v6_prefix` for IPv6);
    /// 0 = off.
    pub fn new(per_sec: u32, v6_prefix: u8) -> Self {
        let gate = ConnRate::default();
        gate.set(per_sec, v6_prefix);
        gate
    }

    /// Applies new settings (a reload): the table is kept when they are unchanged,
    /// started anew when they change, dropped at 0.
    pub fn set(&self, per_sec: u32, v6_prefix: u8) {
        let same = self
            .0
            .load()
            .as_ref()
            .is_some_and(|l| l.per_sec == per_sec && l.v6_prefix == v6_prefix);
        if same {
            return;
        }
        let limit = (per_sec > 0).then(|| {
            Arc::new(Limit {
                per_sec,
                v6_prefix,
                table: RateLimiter::quiet(per_sec, v6_prefix),
            })
        });
        self.0.store(limit);
    }

    /// The limit in force (0: off).
    pub fn per_sec(&self) -> u32 {
        self.0.load().as_ref().map_or(0, |l| l.per_sec)
    }

    /// Whether a new connection from `ip` may go on to its handshake now.
    pub fn admit(&self, ip: IpAddr) -> bool {
        self.admit_at(ip, Instant::now())
    }

    /// [`ConnRate::admit`] at `now`.
    pub fn admit_at(&self, ip: IpAddr, now: Instant) -> bool {
        match &*self.0.load() {
            None => true,
            Some(l) => l.table.check_at(ip, now) == RateVerdict::Pass,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// How many of `n` connections from `from` at `at` are admitted.
    fn admitted(gate: &ConnRate, from: &str, n: usize, at: Instant) -> usize {
        (0..n).filter(|_| gate.admit_at(ip(from), at)).count()
    }

    #[test]
    fn a_burst_gets_one_seconds_worth_then_the_rate_per_client() {
        let gate = ConnRate::new(5, 64);
        let t0 = Instant::now();
        assert_eq!(admitted(&gate, "192.0.2.1", 50, t0), 5);
        // Another client has its own bucket.
        assert_eq!(admitted(&gate, "192.0.2.2", 50, t0), 5);
        // The rate refills: 1 more each 200 ms.
        let later = t0 + Duration::from_millis(400);
        assert_eq!(admitted(&gate, "192.0.2.1", 50, later), 2);
        // IPv6 clients share their /64.
        assert_eq!(admitted(&gate, "2001:db8::1", 2, t0), 2);
        assert_eq!(admitted(&gate, "2001:db8::2", 5, t0), 3);
        assert_eq!(admitted(&gate, "2001:db8:0:1::1", 9, t0), 5);
    }

    #[test]
    fn zero_is_off_and_a_reload_applies() {
        let gate = ConnRate::new(0, 64);
        let t0 = Instant::now();
        assert_eq!(admitted(&gate, "192.0.2.1", 100, t0), 100);
        gate.set(2, 64);
        assert_eq!(gate.per_sec(), 2);
        assert_eq!(admitted(&gate, "192.0.2.1", 10, t0), 2);
        // Unchanged settings keep the table (the client stays limited)...
        gate.set(2, 64);
        assert_eq!(admitted(&gate, "192.0.2.1", 10, t0), 0);
        // ...new ones start a fresh one; 0 turns it off.
        gate.set(4, 64);
        assert_eq!(admitted(&gate, "192.0.2.1", 10, t0), 4);
        gate.set(0, 64);
        assert_eq!(gate.per_sec(), 0);
        assert_eq!(admitted(&gate, "192.0.2.1", 10, t0), 10);
    }
}
