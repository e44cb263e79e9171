//! [`Rrl`]: the `rrl` of a `[[ts]]` compiled (its exempt networks, its
//! prefixes, its [`Buckets`]) and its decision on one answer ([`Rrl::check`],
//! a [`RrlDecision`]); [`limit`]: a UDP answer as that decision lets it go (sent,
//! sent truncated, dropped), counted in [`RrlCounters`].
//!
//! Logging: a bucket that starts limiting logs one `info` line ("ratelimit
//! block", as NSD says it: the client's network, the class and name) and
//! one when its episode is over; a flood from many networks cannot turn
//! that into a line per packet: at most [`LOG_LINES`] such lines per
//! [`LOG_INTERVAL`] ([`LimitLog`]), the rest summed up in one line.
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;

use super::buckets::{Buckets, RrlKey, RrlLimits, RrlVerdict};
use super::class::{AnswerClass, classify, slipped};
use crate::config::RrlConfig;
use crate::guard::keyed_hash::KeyedState;
use crate::guard::log_budget::{Change, LimitLog};
use crate::guard::netset::NetSet;
use crate::server::Reply;
use crate::ts::metrics::{RequestOutcome, RrlCounters, Unanswered};
use crate::ts::zone::Catalog;

/// The interval of the log's budget.
pub const LOG_INTERVAL: Duration = Duration::from_secs(5);
/// Lines (started or ended) per [`LOG_INTERVAL`].
pub const LOG_LINES: u64 = 10;

/// One answer to decide on.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The client.
    pub src: IpAddr,
    /// What the answer is.
    pub class: AnswerClass,
    /// The name it is counted under (lower-cased wire form).
    pub name: &'a [u8],
    /// The client sent a valid server cookie (RFC 7873): never limited.
    pub cookie_ok: bool,
}

/// The decision on one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RrlDecision {
    /// Under the limit: sent.
    Pass,
    /// An exempt client (network or cookie): sent, never counted.
    Exempt,
    /// Over the limit under `log_only`: sent, counted.
    WouldLimit,
    /// Over: sent truncated.
    Slip,
    /// Over: dropped.
    Drop,
}

/// Response rate limiting as one `[[ts]]`'s `rrl` sets it.
#[derive(Debug)]
pub struct Rrl {
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    exempt: NetSet,
    log_only: bool,
    buckets: Buckets,
    /// Keys the names' hashes (per table: names that collide cannot be chosen).
    names: KeyedState,
    log: LimitLog,
}

impl Rrl {
    /// The limiter of `c`; `None` when it is off (`responses_per_s = 0`).
    pub fn new(c: &RrlConfig) -> Option<Rrl> {
        c.is_on().then(|| Rrl {
            ipv4_prefix: c.ipv4_prefix.min(32),
            ipv6_prefix: c.ipv6_prefix.min(128),
            exempt: NetSet::new(&c.exempt),
            log_only: c.log_only,
            buckets: Buckets::new(RrlLimits::new(c.responses_per_s, c.slip)),
            names: KeyedState::default(),
            log: LimitLog::new(Instant::now(), LOG_INTERVAL, LOG_LINES),
        })
    }

    /// The network of `ip` (an IPv4-mapped IPv6 address as its IPv4
    /// one): its address masked to the prefix, and the prefix's length.
    pub fn network(&self, ip: IpAddr) -> (IpAddr, u8) {
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.ipv4_prefix));
                let net = u32::from(a) & mask.unwrap_or(0);
                (IpAddr::V4(net.into()), self.ipv4_prefix)
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.ipv6_prefix));
                let net = u128::from(a) & mask.unwrap_or(0);
                (IpAddr::V6(net.into()), self.ipv6_prefix)
            }
        }
    }

    /// Whether a client at `src` (with a valid server cookie: `cookie_ok`)
    /// is never limited: a valid cookie, or an `exempt` network.
    pub fn exempts(&self, src: IpAddr, cookie_ok: bool) -> bool {
        cookie_ok || self.exempt.contains(src)
    }

    /// The decision on `ask` at `now`; logs a bucket's episode starting
    /// and ending, within the log's budget.
    pub fn check(&self, ask: Ask<'_>, now: Instant) -> RrlDecision {
        if self.exempts(ask.src, ask.cookie_ok) {
            return RrlDecision::Exempt;
        }
        let (net, _) = self.network(ask.src);
        let key = RrlKey {
            net: match net {
                IpAddr::V4(a) => u128::from(u32::from(a)),
                IpAddr::V6(a) => u128::from(a),
            },
            v6: net.is_ipv6(),
            class: ask.class,
            name: self.names.hash_one(ask.name),
        };
        let taken = self.buckets.take(key, now);
        self.roll(now);
        if let Some(limited) = taken.ended {
            self.log_change(Change::Stopped, ask, limited);
        }
        if taken.started {
            self.log_change(Change::Started, ask, 0);
        }
        match (taken.verdict, self.log_only) {
            (RrlVerdict::Pass, _) => RrlDecision::Pass,
            (_, true) => RrlDecision::WouldLimit,
            (RrlVerdict::Slip, false) => RrlDecision::Slip,
            (RrlVerdict::Drop, false) => RrlDecision::Drop,
        }
    }

    /// Starts the log's next interval when `now` is past the current one,
    /// with one line summing up the lines the last one held back (at the
    /// first answer after it, so a flood's summary comes with the traffic
    /// that follows it).
    fn roll(&self, now: Instant) {
        if let Some(more) = self.log.roll(now) {
            let (interval, n) = (self.log.interval(), more.started + more.stopped);
            tracing::info!(
                lines = n,
                ?interval,
                "rrl: {n} more ratelimit lines held back"
            );
        }
    }

    /// Logs a bucket's episode starting or ending (`limited` answers in
    /// it), within the budget.
    fn log_change(&self, change: Change, ask: Ask<'_>, limited: u64) {
        if !self.log.admit(change) {
            return;
        }
        let (net, len) = self.network(ask.src);
        let name = name_text(ask.name);
        let class = ask.class.label();
        let limit = self.buckets.limits().rate;
        match (change, self.log_only) {
            (Change::Started, false) => {
                tracing::info!(client = %format_args!("{net}/{len}"), class, %name, limit, "rrl: ratelimit block");
            }
            (Change::Started, true) => {
                tracing::info!(client = %format_args!("{net}/{len}"), class, %name, limit, "rrl: ratelimit would block (log_only)");
            }
            (Change::Stopped, _) => {
                tracing::info!(client = %format_args!("{net}/{len}"), class, %name, limited, "rrl: ratelimit unblock");
            }
        }
    }
}

/// `name` (wire form) as text, for a log line.
fn name_text(name: &[u8]) -> String {
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    let mut d = BinDecoder::new(name);
    hickory_proto::rr::Name::read(&mut d).map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// The UDP answer `reply` (its request's `outcome`) to `client` (its
/// address, and whether it sent a valid server cookie) as `rrl` lets it
/// go, its name's zone looked up in `catalog`, counted in `counters`: sent,
/// sent truncated (a slip), or dropped (then unanswered, reason `rrl`). A
/// reply that is no single message, or no answer to a QUERY, goes as it is.
pub fn limit(
    rrl: &Rrl,
    catalog: &Catalog,
    counters: &RrlCounters,
    client: (IpAddr, bool),
    (reply, outcome): (Reply, RequestOutcome),
) -> (Reply, RequestOutcome) {
    let Reply::One(msg) = reply else {
        return (reply, outcome);
    };
    let count = |c: &AtomicU64| c.fetch_add(1, Relaxed);
    // Exempt clients before any reading of the answer.
    if rrl.exempts(client.0, client.1) {
        count(&counters.exempt);
        return (Reply::One(msg), outcome);
    }
    let rcode = match outcome {
        RequestOutcome::Answered(rcode) => rcode,
        RequestOutcome::Unanswered(_) => ResponseCode::NoError,
    };
    let Some(c) = classify(&msg, rcode, catalog) else {
        return (Reply::One(msg), outcome);
    };
    let ask = Ask {
        src: client.0,
        class: c.class,
        name: c.name.bytes(),
        cookie_ok: client.1,
    };
    match rrl.check(ask, Instant::now()) {
        RrlDecision::Pass => (Reply::One(msg), outcome),
        RrlDecision::Exempt => {
            count(&counters.exempt);
            (Reply::One(msg), outcome)
        }
        RrlDecision::WouldLimit => {
            count(&counters.would_limit);
            (Reply::One(msg), outcome)
        }
        RrlDecision::Slip => {
            count(&counters.slipped);
            (Reply::One(slipped(msg)), outcome)
        }
        RrlDecision::Drop => {
            count(&counters.dropped);
            let dropped = RequestOutcome::Unanswered(Unanswered::RateLimited);
            (Reply::Drop, dropped)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrl(line: impl FnOnce(&mut RrlConfig)) -> Rrl {
        let mut c = RrlConfig {
            responses_per_s: 10,
            ..RrlConfig::default()
        };
        line(&mut c);
        Rrl::new(&c).unwrap()
    }

    fn ask(src: &str, name: &'static [u8]) -> Ask<'static> {
        Ask {
            src: src.parse().unwrap(),
            class: AnswerClass::Positive,
            name,
            cookie_ok: false,
        }
    }

    /// The decisions on `n` answers of `a` at `now`, counted by kind.
    fn tally(r: &Rrl, a: Ask<'_>, n: usize, now: Instant) -> [usize; 5] {
        let mut t = [0; 5];
        for _ in 0..n {
            t[r.check(a, now) as usize] += 1;
        }
        t
    }

    const WWW: &[u8] = b"\x03www\x07example\x00";

    #[test]
    fn off_without_a_rate() {
        assert!(Rrl::new(&RrlConfig::default()).is_none());
    }

    #[test]
    fn a_network_shares_one_limit_and_another_has_its_own() {
        let r = rrl(|_| {});
        let now = Instant::now();
        // Ten from one /24, then 30 more from its other addresses.
        assert_eq!(tally(&r, ask("192.0.2.1", WWW), 10, now), [10, 0, 0, 0, 0]);
        let [pass, _, _, slip, drop] = tally(&r, ask("192.0.2.200", WWW), 30, now);
        assert_eq!((pass, slip, drop), (0, 15, 15));
        assert_eq!(
            tally(&r, ask("192.0.3.1", WWW), 10, now)[0],
            10,
            "another /24"
        );
        // IPv6: one /56 shares, an IPv4-mapped address is its IPv4 one.
        assert_eq!(tally(&r, ask("2001:db8:0:ff::1", WWW), 10, now)[0], 10);
        assert_eq!(
            tally(&r, ask("2001:db8:0:1::2", WWW), 1, now)[0],
            0,
            "same /56"
        );
        assert_eq!(
            tally(&r, ask("2001:db8:0:100::2", WWW), 1, now)[0],
            1,
            "next /56"
        );
        assert_eq!(
            tally(&r, ask("::ffff:192.0.2.9", WWW), 1, now)[0],
            0,
            "mapped"
        );
    }

    #[test]
    fn exempt_networks_and_cookies_are_never_limited() {
        let r = rrl(|c| c.exempt = vec!["198.51.100.0/24".parse().unwrap()]);
        let now = Instant::now();
        let exempt = tally(&r, ask("198.51.100.7", WWW), 100, now);
        assert_eq!(exempt, [0, 100, 0, 0, 0]);
        let mut a = ask("192.0.2.1", WWW);
        tally(&r, a, 50, now);
        a.cookie_ok = true;
        assert_eq!(tally(&r, a, 100, now), [0, 100, 0, 0, 0], "a valid cookie");
    }

    #[test]
    fn log_only_limits_nothing_and_counts_what_it_would() {
        let r = rrl(|c| c.log_only = true);
        let t = tally(&r, ask("192.0.2.1", WWW), 100, Instant::now());
        assert_eq!(t, [10, 0, 90, 0, 0]);
    }

    #[test]
    fn prefixes_set_the_networks() {
        let r = rrl(|c| {
            c.ipv4_prefix = 32;
            c.ipv6_prefix = 64;
        });
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(r.network(ip("192.0.2.77")), (ip("192.0.2.77"), 32));
        assert_eq!(
            r.network(ip("2001:db8:1:2:3::4")),
            (ip("2001:db8:1:2::"), 64)
        );
        let r = rrl(|_| {});
        assert_eq!(r.network(ip("192.0.2.77")), (ip("192.0.2.0"), 24));
        assert_eq!(
            r.network(ip("2001:db8:1:2ff::4")),
            (ip("2001:db8:1:200::"), 56)
        );
        assert_eq!(name_text(WWW), "www.example.");
    }
}
