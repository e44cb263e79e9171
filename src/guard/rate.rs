//! The per-client rate limit.
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
//!
//! Logging: a client's first query over the limit logs one `info` line, and
//! so does the end of its episode (no query over the limit for
//! [`RATE_QUIET`], seen by [`RateLimiter::sweep`], or its bucket evicted).
//! A flood from many (spoofed) sources cannot turn that into a line per
//! packet: at most [`RATE_LOG_LINES`] such lines per [`RATE_LOG_INTERVAL`]
//! ([`LimitLog`]); the rest are counted and summed up in one line per kind
//! ("N more clients rate limited") when the interval is over.
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::acl::canonical;
use super::log_budget::{Change, LimitLog};

/// Sets of the rate-limit table.
pub const RATE_SETS: usize = 1 << 11;
/// Buckets per set ([`RATE_SETS`] × [`RATE_WAYS`] clients tracked at once).
pub const RATE_WAYS: usize = 8;
/// A limited client is no longer limited after this long without a query
/// over the limit.
pub const RATE_QUIET: Duration = Duration::from_secs(2);
/// How often [`RateLimiter::sweep`] should run.
pub const RATE_SWEEP: Duration = Duration::from_secs(1);
/// The interval of the rate-limit log's budget.
pub const RATE_LOG_INTERVAL: Duration = Duration::from_secs(5);
/// Per-client rate-limit lines (started or stopped) per [`RATE_LOG_INTERVAL`].
pub const RATE_LOG_LINES: u64 = 10;

/// The rate-limit bucket of `ip`: the address itself for IPv4 (and IPv4-mapped
/// IPv6), its first `v6_prefix` bits for IPv6, so that a holder of a /64
/// cannot rotate addresses inside it to multiply its rate (dnsdist masks to
/// /64 too; BIND's RRL to /56).
pub fn rate_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u32::from(v6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
        v4 => v4,
    }
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
    /// While the client is limited: its last query over the limit.
    over_since: Option<Instant>,
    /// Queries over the limit in the current episode.
    episode: u64,
}

/// A client's rate-limit episode that has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// The client.
    pub ip: IpAddr,
    /// Its queries over the limit during the episode.
    pub over: u64,
}

/// What one query did to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// The verdict on the query.
    pub verdict: RateVerdict,
    /// The query started the client's episode (its first over the limit).
    pub started: bool,
    /// The client whose bucket was evicted for this one, if it was limited.
    pub evicted: Option<Ended>,
}

impl Bucket {
    /// Refills at `qps` per second up to `burst` and takes a token at `now`;
    /// true with a query that starts an episode.
    fn take(&mut self, qps: f64, burst: f64, now: Instant) -> (RateVerdict, bool) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * qps).min(burst);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return (RateVerdict::Pass, false);
        }
        self.limited += 1;
        let started = self.over_since.is_none();
        if started {
            self.episode = 0;
        }
        self.episode += 1;
        self.over_since = Some(self.over_since.map_or(now, |t| t.max(now)));
        let verdict = if self.limited.is_multiple_of(2) {
            RateVerdict::Slip
        } else {
            RateVerdict::Drop
        };
        (verdict, started)
    }

    /// Ends the episode if the client is limited.
    fn end(&mut self) -> Option<Ended> {
        self.over_since.take().map(|_| Ended {
            ip: self.ip,
            over: self.episode,
        })
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
        self.take_noted(ip, qps, now).verdict
    }

    /// [`RateSet::take`], saying which episodes the query started or ended.
    pub fn take_noted(&mut self, ip: IpAddr, qps: f64, now: Instant) -> Taken {
        let burst = qps.max(1.0);
        let (bucket, evicted) = self.bucket_for(ip, burst, now);
        let (verdict, started) = bucket.take(qps, burst, now);
        Taken {
            verdict,
            started,
            evicted,
        }
    }

    /// Ends the episode of every client with no query over the limit since
    /// `quiet` before `now` (every limited client with `quiet` zero), and
    /// adds them to `ended`.
    pub fn sweep(&mut self, now: Instant, quiet: Duration, ended: &mut Vec<Ended>) {
        for b in self.ways.iter_mut().flatten() {
            if b.over_since
                .is_some_and(|t| now.saturating_duration_since(t) >= quiet)
                && let Some(e) = b.end()
            {
                ended.push(e);
            }
        }
    }

    /// The bucket of `ip`: its own, a fresh full one in a free way, or, when
    /// the set is full, the least recently seen client's way with an empty
    /// bucket as of that client's last query (see the module doc). With it,
    /// the episode of the client it evicted, if that one was limited.
    fn bucket_for(&mut self, ip: IpAddr, burst: f64, now: Instant) -> (&mut Bucket, Option<Ended>) {
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
            (None, Some(b)) => (b, None),
            (start, way) => {
                let evicted = way.as_mut().and_then(Bucket::end);
                let (tokens, last) = start.unwrap_or((burst, now));
                let bucket = way.insert(Bucket {
                    ip,
                    tokens,
                    last,
                    limited: 0,
                    over_since: None,
                    episode: 0,
                });
                (bucket, evicted)
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
    /// IPv6 clients share a bucket per prefix of this length.
    v6_prefix: u8,
    /// Keyed per limiter, so clients cannot choose addresses that share a set.
    hasher: RandomState,
    sets: Box<[Mutex<RateSet>]>,
    /// The budget of the started/stopped lines.
    log: LimitLog,
    /// Logs nothing (a limit counted on /metrics only).
    quiet: bool,
}

impl RateLimiter {
    /// A limiter at `qps` per client (per `v6_prefix` for IPv6).
    pub fn new(qps: u32, v6_prefix: u8) -> Self {
        RateLimiter {
            qps: f64::from(qps),
            v6_prefix,
            hasher: RandomState::new(),
            sets: (0..RATE_SETS)
                .map(|_| Mutex::new(RateSet::default()))
                .collect(),
            log: LimitLog::new(Instant::now(), RATE_LOG_INTERVAL, RATE_LOG_LINES),
            quiet: false,
        }
    }

    /// A limiter at `qps` that logs nothing (its caller counts what it refuses),
    /// needing no [`RateLimiter::sweep`].
    pub fn quiet(qps: u32, v6_prefix: u8) -> Self {
        RateLimiter {
            quiet: true,
            ..Self::new(qps, v6_prefix)
        }
    }

    /// Takes a token for a query from `ip`; logs the start of its episode
    /// (and the end of the one it evicted), within the log's budget.
    pub fn check(&self, ip: IpAddr) -> RateVerdict {
        self.check_at(ip, Instant::now())
    }

    /// [`RateLimiter::check`] at `now`.
    pub fn check_at(&self, ip: IpAddr, now: Instant) -> RateVerdict {
        let ip = rate_key(ip, self.v6_prefix);
        let set = (self.hasher.hash_one(ip) % self.sets.len() as u64) as usize;
        let Some(cell) = self.sets.get(set) else {
            return RateVerdict::Pass;
        };
        let taken = match cell.lock() {
            Ok(mut s) => s.take_noted(ip, self.qps, now),
            Err(p) => p.into_inner().take_noted(ip, self.qps, now),
        };
        if self.quiet {
            return taken.verdict;
        }
        // Logged outside the set's lock.
        if let Some(e) = taken.evicted {
            self.log_ended(e, now);
        }
        if taken.started && self.admit(now, Change::Started) {
            tracing::info!(client = %ip, limit_qps = self.qps, "client rate limited");
        }
        taken.verdict
    }

    /// Ends (and logs) the episodes quiet for [`RATE_QUIET`], and the
    /// summary of an interval that is over. Call it every [`RATE_SWEEP`].
    pub fn sweep(&self, now: Instant) {
        self.sweep_with(now, RATE_QUIET);
    }

    /// Ends every episode (the limiter is being replaced) and logs them.
    pub fn end_all(&self, now: Instant) {
        self.sweep_with(now, Duration::ZERO);
    }

    fn sweep_with(&self, now: Instant, quiet: Duration) {
        let mut ended = Vec::new();
        for cell in &*self.sets {
            match cell.lock() {
                Ok(mut s) => s.sweep(now, quiet, &mut ended),
                Err(p) => p.into_inner().sweep(now, quiet, &mut ended),
            }
        }
        for e in ended {
            self.log_ended(e, now);
        }
        self.roll(now);
    }

    fn log_ended(&self, e: Ended, now: Instant) {
        if self.admit(now, Change::Stopped) {
            tracing::info!(client = %e.ip, over_limit = e.over, "client no longer rate limited");
        }
    }

    /// [`LimitLog::admit`], after logging the summary of a past interval.
    fn admit(&self, now: Instant, change: Change) -> bool {
        self.roll(now);
        self.log.admit(change)
    }

    fn roll(&self, now: Instant) {
        if let Some(more) = self.log.roll(now) {
            if more.started > 0 {
                let n = more.started;
                tracing::info!(clients = n, interval = ?self.log.interval(), "{n} more clients rate limited");
            }
            if more.stopped > 0 {
                let n = more.stopped;
                tracing::info!(clients = n, interval = ?self.log.interval(), "{n} more clients no longer rate limited");
            }
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
        one_bucket("192.0.2.1", "::ffff:192.0.2.1", "192.0.2.2");
    }

    /// Through a limiter of 1 qps (IPv6 by /64): `first` passes, `same`
    /// (of its key) is over, `other` (another key) passes.
    #[track_caller]
    fn one_bucket(first: &str, same: &str, other: &str) {
        let limiter = RateLimiter::new(1, 64);
        let check = |ip: &str| limiter.check(ip.parse().unwrap());
        assert_eq!(check(first), RateVerdict::Pass);
        assert_ne!(check(same), RateVerdict::Pass);
        assert_eq!(check(other), RateVerdict::Pass);
    }

    #[test]
    fn ipv6_clients_of_one_prefix_share_a_key() {
        let key = |ip: &str, prefix| rate_key(ip.parse().unwrap(), prefix);
        let a = key("2001:db8:1:2:aaaa::1", 64);
        assert_eq!(a, key("2001:db8:1:2:ffff:1:2:3", 64));
        assert_eq!(a, "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_ne!(a, key("2001:db8:1:3::1", 64));
        // /56: the fourth group's low byte is masked off too.
        assert_eq!(key("2001:db8:1:2ff::1", 56), key("2001:db8:1:200::9", 56));
        assert_ne!(key("2001:db8:1:2::1", 128), key("2001:db8:1:2::2", 128));
        assert_eq!(key("::ffff:192.0.2.1", 64), key("192.0.2.1", 64));
        assert_eq!(key("192.0.2.1", 1), "192.0.2.1".parse::<IpAddr>().unwrap());
        // One bucket through the limiter: the second address of the /64 is over.
        one_bucket("2001:db8::1", "2001:db8::2", "2001:db8:0:1::1");
    }

    #[test]
    fn an_episode_starts_once_and_ends_after_quiet() {
        let t0 = Instant::now();
        let mut set = RateSet::default();
        let ms = |n| t0 + Duration::from_millis(n);
        assert!(!set.take_noted(ip(1), 1.0, t0).started, "the burst passes");
        let first = set.take_noted(ip(1), 1.0, ms(1));
        assert_eq!(first.verdict, RateVerdict::Drop);
        assert!(first.started);
        // Further queries over the limit are the same episode.
        for i in 2..20 {
            assert!(!set.take_noted(ip(1), 1.0, ms(i)).started);
        }
        let mut ended = Vec::new();
        set.sweep(
            ms(19) + RATE_QUIET - Duration::from_millis(1),
            RATE_QUIET,
            &mut ended,
        );
        assert!(ended.is_empty(), "not quiet long enough yet");
        set.sweep(ms(19) + RATE_QUIET, RATE_QUIET, &mut ended);
        assert_eq!(
            ended,
            [Ended {
                ip: ip(1),
                over: 19
            }]
        );
        set.sweep(ms(19) + RATE_QUIET * 2, RATE_QUIET, &mut ended);
        assert_eq!(ended.len(), 1, "an episode ends once");
        // Over the limit again later: a new episode.
        let later = ms(19) + RATE_QUIET * 3;
        while set.take_noted(ip(1), 1.0, later).verdict == RateVerdict::Pass {}
        set.sweep(later + RATE_QUIET, RATE_QUIET, &mut ended);
        assert_eq!(ended.get(1), Some(&Ended { ip: ip(1), over: 1 }));
    }

    #[test]
    fn evicting_a_limited_client_ends_its_episode() {
        let t0 = Instant::now();
        let mut set = RateSet::default();
        let clients = u32::try_from(RATE_WAYS).unwrap();
        let mut started = 0;
        for c in 0..clients {
            for _ in 0..3 {
                started += usize::from(set.take_noted(ip(c), 1.0, t0).started);
            }
        }
        assert_eq!(started, RATE_WAYS);
        // A newcomer in the full set evicts the least recently seen client.
        let t1 = t0 + Duration::from_millis(10);
        let taken = set.take_noted(ip(100), 1.0, t1);
        assert_eq!(taken.evicted, Some(Ended { ip: ip(0), over: 2 }));
        assert!(taken.started, "it starts with an empty bucket");
    }

    #[test]
    fn a_flood_from_many_sources_logs_a_bounded_number_of_lines() {
        // Every source limited: one episode each, but the lines stay within
        // the budget while the counts add up.
        let t0 = Instant::now();
        let log = LimitLog::new(t0, RATE_LOG_INTERVAL, RATE_LOG_LINES);
        let mut set = RateSet::default();
        let mut lines = 0;
        let mut episodes = 0;
        for c in 0..1000 {
            for _ in 0..3 {
                let taken = set.take_noted(ip(c), 1.0, t0);
                for change in [
                    taken.started.then_some(Change::Started),
                    taken.evicted.map(|_| Change::Stopped),
                ]
                .into_iter()
                .flatten()
                {
                    episodes += 1;
                    lines += u64::from(log.admit(change));
                }
            }
        }
        let more = log.roll(t0 + RATE_LOG_INTERVAL).unwrap();
        assert_eq!(lines, RATE_LOG_LINES);
        assert_eq!(lines + more.started + more.stopped, episodes);
        // 1,000 episodes started; all but the last set's worth were evicted.
        assert_eq!(episodes, 1000 + 1000 - RATE_WAYS as u64);
    }
}
