//! The buckets of response rate limiting: one token bucket per (client
//! network, answer class, name) [`RrlKey`], refilled at the rate up to a burst
//! of one second's worth, kept in a fixed-size set-associative table
//! ([`Buckets`]: [`SETS`] sets of [`WAYS`], the set chosen by a keyed hash
//! of the key, each behind its own lock), so memory is bounded whatever a
//! flood's sources and names, and the UDP workers seldom meet on a lock.
//!
//! A key not in its set takes a free way with a full bucket; in a full set
//! it takes the way of the least recently seen key, starting from an empty
//! bucket as of that key's last answer (as the LS's per-client limit does,
//! `guard::rate`): whoever comes into a set never holds more tokens than
//! its own bucket would in an unbounded table, so rotating keys through a
//! set only makes the limit stricter.
//!
//! Over the limit, every `slip`-th limited answer of a bucket slips (0:
//! none, 1: all), the rest are dropped. A bucket's episode of limiting
//! starts at its first limited answer and ends at the first answer it sees
//! after [`QUIET`] without one (the limiter logs both).
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::class::AnswerClass;
use crate::guard::keyed_hash::KeyedState;

/// Sets of the table.
pub const SETS: usize = 1 << 12;
/// Buckets per set ([`SETS`] × [`WAYS`] keys tracked at once: 32,768).
pub const WAYS: usize = 8;
/// A bucket's episode of limiting ends after this long without a limited answer.
pub const QUIET: Duration = Duration::from_secs(2);

/// What answers share a bucket: a client network, a class, a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RrlKey {
    /// The client's network: its address masked to the prefix (an IPv4
    /// address in the low 32 bits).
    pub net: u128,
    /// IPv6 (`net` is an IPv6 network).
    pub v6: bool,
    /// The answer's class.
    pub class: AnswerClass,
    /// The keyed hash of the name the answer is counted under.
    pub name: u64,
}

/// The rate, the burst, the slip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RrlLimits {
    /// Answers per second.
    pub rate: f64,
    /// Most answers at once (a full bucket).
    pub burst: f64,
    /// Every `slip`-th limited answer slips; 0: none.
    pub slip: u32,
}

impl RrlLimits {
    /// `rate` answers a second, a burst of one second's worth (at least
    /// one answer), `slip`.
    pub fn new(rate: u32, slip: u32) -> Self {
        let rate = f64::from(rate);
        RrlLimits {
            rate,
            burst: rate.max(1.0),
            slip,
        }
    }
}

/// What the buckets say of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RrlVerdict {
    /// Under the limit: sent.
    Pass,
    /// Over: sent truncated (TC=1).
    Slip,
    /// Over: dropped.
    Drop,
}

/// What one answer did to its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketTaken {
    /// The verdict on the answer.
    pub verdict: RrlVerdict,
    /// It started the bucket's episode of limiting.
    pub started: bool,
    /// It came after the bucket's episode had been quiet for [`QUIET`]:
    /// that episode is over, with this many limited answers.
    pub ended: Option<u64>,
}

/// One key's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    key: RrlKey,
    /// Tokens left as of `last`.
    tokens: f64,
    /// The key's last answer (and the bucket's last refill).
    last: Instant,
    /// Limited answers so far (every `slip`-th slips).
    limited: u64,
    /// Limited answers in the current episode.
    episode: u64,
    /// While limiting: its last limited answer.
    limiting: Option<Instant>,
}

impl Bucket {
    /// Refills to `now` and takes a token for one answer.
    fn take(&mut self, limits: RrlLimits, now: Instant) -> BucketTaken {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limits.rate).min(limits.burst);
        self.last = self.last.max(now);
        let quiet = |t: Instant| now.saturating_duration_since(t) >= QUIET;
        let ended = match self.limiting {
            Some(t) if quiet(t) => {
                self.limiting = None;
                Some(self.episode)
            }
            _ => None,
        };
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return BucketTaken {
                verdict: RrlVerdict::Pass,
                started: false,
                ended,
            };
        }
        let started = self.limiting.is_none();
        if started {
            self.episode = 0;
        }
        self.episode += 1;
        self.limited += 1;
        self.limiting = Some(self.limiting.map_or(now, |t| t.max(now)));
        let verdict = match limits.slip {
            0 => RrlVerdict::Drop,
            s if self.limited.is_multiple_of(u64::from(s)) => RrlVerdict::Slip,
            _ => RrlVerdict::Drop,
        };
        BucketTaken {
            verdict,
            started,
            ended,
        }
    }
}

/// One set of the table: the buckets of up to [`WAYS`] keys (pure state;
/// the clock is an argument).
#[derive(Debug, Clone, Default)]
pub struct BucketSet {
    ways: [Option<Bucket>; WAYS],
}

impl BucketSet {
    /// Takes a token for an answer of `key` at `now`.
    pub fn take(&mut self, key: RrlKey, limits: RrlLimits, now: Instant) -> BucketTaken {
        let i = match self
            .ways
            .iter()
            .position(|w| w.is_some_and(|b| b.key == key))
        {
            Some(i) => i,
            None => self.make_room(key, limits, now),
        };
        match self.ways.get_mut(i).and_then(Option::as_mut) {
            Some(b) => b.take(limits, now),
            // cannot happen: `i` is a way just found or filled
            None => BucketTaken {
                verdict: RrlVerdict::Pass,
                started: false,
                ended: None,
            },
        }
    }

    /// Puts a bucket for `key` in a free way (full), else in the least
    /// recently seen key's way (empty as of that key's last answer); its way.
    fn make_room(&mut self, key: RrlKey, limits: RrlLimits, now: Instant) -> usize {
        let (i, tokens, last) = match self.ways.iter().position(Option::is_none) {
            Some(i) => (i, limits.burst, now),
            None => {
                let lru = (self.ways.iter().enumerate())
                    .filter_map(|(i, w)| w.map(|b| (i, b.last)))
                    .min_by_key(|&(_, last)| last);
                let (i, last) = lru.unwrap_or((0, now));
                (i, 0.0, last)
            }
        };
        if let Some(way) = self.ways.get_mut(i) {
            *way = Some(Bucket {
                key,
                tokens,
                last,
                limited: 0,
                episode: 0,
                limiting: None,
            });
        }
        i
    }
}

/// The table: [`SETS`] [`BucketSet`]s, each behind its own lock, the set of a
/// key chosen by a hash keyed per table.
#[derive(Debug)]
pub struct Buckets {
    limits: RrlLimits,
    hasher: KeyedState,
    sets: Box<[Mutex<BucketSet>]>,
}

impl Buckets {
    /// A table of [`SETS`] sets at `limits`.
    pub fn new(limits: RrlLimits) -> Self {
        Buckets {
            limits,
            hasher: KeyedState::default(),
            sets: (0..SETS)
                .map(|_| Mutex::new(BucketSet::default()))
                .collect(),
        }
    }

    /// The limits it applies.
    pub fn limits(&self) -> RrlLimits {
        self.limits
    }

    /// Takes a token for an answer of `key` at `now`.
    pub fn take(&self, key: RrlKey, now: Instant) -> BucketTaken {
        let i = (self.hasher.hash_one(key) % self.sets.len() as u64) as usize;
        let Some(cell) = self.sets.get(i) else {
            return BucketTaken {
                verdict: RrlVerdict::Pass,
                started: false,
                ended: None,
            };
        };
        match cell.lock() {
            Ok(mut set) => set.take(key, self.limits, now),
            Err(poisoned) => poisoned.into_inner().take(key, self.limits, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(net: u128, name: u64) -> RrlKey {
        RrlKey {
            net,
            v6: false,
            class: AnswerClass::Positive,
            name,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The verdicts of `n` answers of `k`, one every `gap`, from `t0`.
    fn run(
        set: &mut BucketSet,
        k: RrlKey,
        limits: RrlLimits,
        t0: Instant,
        n: u64,
        gap: Duration,
    ) -> [u64; 3] {
        let mut counts = [0; 3];
        for i in 0..n {
            let v = set.take(k, limits, t0 + gap * i as u32).verdict;
            counts[v as usize] += 1;
        }
        counts
    }

    #[test]
    fn a_flood_gets_the_burst_then_the_rate_and_half_the_rest_slip() {
        let t0 = Instant::now();
        let mut set = BucketSet::default();
        // 2,000 answers over 2 s at 20 a second: the burst (20), then 20 a
        // second for the 2 s that follow the first answer.
        let [pass, slip, drop] = run(&mut set, key(1, 1), RrlLimits::new(20, 2), t0, 2000, ms(1));
        assert!((59..=61).contains(&pass), "passed {pass}");
        assert_eq!(pass + slip + drop, 2000);
        assert!(slip.abs_diff(drop) <= 1, "slip {slip} drop {drop}");
    }

    #[test]
    fn slip_0_drops_every_limited_answer_and_slip_1_slips_each() {
        let t0 = Instant::now();
        for (slip, want) in [(0, [10, 0, 90]), (1, [10, 90, 0]), (3, [10, 30, 60])] {
            let mut set = BucketSet::default();
            let got = run(
                &mut set,
                key(1, 1),
                RrlLimits::new(10, slip),
                t0,
                100,
                ms(0),
            );
            assert_eq!(got, want, "slip {slip}");
        }
    }

    #[test]
    fn each_network_class_and_name_has_its_own_bucket() {
        let t0 = Instant::now();
        let limits = RrlLimits::new(5, 2);
        let mut set = BucketSet::default();
        let [pass, ..] = run(&mut set, key(1, 1), limits, t0, 50, ms(0));
        assert_eq!(pass, 5);
        for other in [
            key(2, 1),
            key(1, 2),
            RrlKey {
                class: AnswerClass::Nxdomain,
                ..key(1, 1)
            },
            RrlKey {
                v6: true,
                ..key(1, 1)
            },
        ] {
            let [pass, ..] = run(&mut set, other, limits, t0, 5, ms(0));
            assert_eq!(pass, 5, "{other:?} is not limited by another's flood");
        }
    }

    #[test]
    fn a_limited_bucket_refills_at_the_rate() {
        let t0 = Instant::now();
        let limits = RrlLimits::new(10, 2);
        let mut set = BucketSet::default();
        let k = key(1, 1);
        run(&mut set, k, limits, t0, 30, ms(0));
        assert_ne!(set.take(k, limits, t0).verdict, RrlVerdict::Pass);
        // 100 ms: one token back; 1 s: the whole burst, no more.
        assert_eq!(set.take(k, limits, t0 + ms(100)).verdict, RrlVerdict::Pass);
        assert_ne!(set.take(k, limits, t0 + ms(100)).verdict, RrlVerdict::Pass);
        let [pass, ..] = run(&mut set, k, limits, t0 + Duration::from_secs(5), 30, ms(0));
        assert_eq!(pass, 10);
    }

    #[test]
    fn an_episode_starts_at_the_first_limited_answer_and_ends_after_a_quiet_spell() {
        let t0 = Instant::now();
        let limits = RrlLimits::new(2, 2);
        let mut set = BucketSet::default();
        let k = key(1, 1);
        let taken: Vec<BucketTaken> = (0..5).map(|_| set.take(k, limits, t0)).collect();
        let started: Vec<bool> = taken.iter().map(|t| t.started).collect();
        assert_eq!(started, [false, false, true, false, false]);
        // Still limiting within QUIET of its last limited answer.
        let t = set.take(k, limits, t0 + ms(1500));
        assert_eq!(t.ended, None);
        let t = set.take(k, limits, t0 + QUIET + ms(1600));
        assert_eq!(t.ended, Some(3), "three limited answers in the episode");
        assert_eq!(t.verdict, RrlVerdict::Pass);
        assert_eq!(
            set.take(k, limits, t0 + QUIET + ms(1600)).ended,
            None,
            "once"
        );
    }

    /// Keys rotated through one set never get more than their own
    /// bucket's worth: burst plus rate times the span of their answers.
    #[test]
    fn keys_rotating_through_a_full_set_gain_nothing() {
        let t0 = Instant::now();
        let limits = RrlLimits::new(10, 2);
        let mut set = BucketSet::default();
        let keys = (WAYS as u64 * 3) as usize;
        let mut passes = vec![0u32; keys];
        let (mut first, mut last) = (vec![None; keys], vec![t0; keys]);
        for i in 0..20_000u32 {
            let k = (i as usize * 7) % keys;
            let t = t0 + Duration::from_micros(u64::from(i) * 250);
            first[k].get_or_insert(t);
            last[k] = t;
            if set.take(key(k as u128, 0), limits, t).verdict == RrlVerdict::Pass {
                passes[k] += 1;
            }
        }
        for k in 0..keys {
            let span = last[k].duration_since(first[k].unwrap()).as_secs_f64();
            let allowed = (limits.burst + limits.rate * span + 1e-9).floor() as u32;
            assert!(passes[k] <= allowed, "key {k}: {} > {allowed}", passes[k]);
        }
    }

    #[test]
    fn the_table_keeps_its_keys_apart_under_its_locks() {
        let t0 = Instant::now();
        let table = Buckets::new(RrlLimits::new(3, 1));
        let verdicts: Vec<RrlVerdict> = (0..5).map(|_| table.take(key(9, 9), t0).verdict).collect();
        use RrlVerdict::{Pass, Slip};
        assert_eq!(verdicts, [Pass, Pass, Pass, Slip, Slip]);
        assert_eq!(table.take(key(9, 10), t0).verdict, Pass);
        assert_eq!(table.limits().burst, 3.0);
    }
}
