//! Hedging policy: the adaptive hedge delay and the hedge budget.
//!
//! The delay for a backend is a high percentile (`hedge_percentile`) of its
//! recent latency, read from a rotating HDR histogram at microsecond
//! resolution (loopback answers take tens of µs), clamped to
//! [`hedge_min_ms`, `hedge_max_ms`]; until enough samples exist it is the
//! maximum. The budget is a token bucket that earns `hedge_budget_pct`% of a
//! token per client query: no token, no delay-triggered hedge (Dean &
//! Barroso's "tail at scale" hedging at a few percent of extra load).
//!
//! Everything here is synchronous and socket-free; the per-query path reads
//! one atomic for the delay and does one CAS for the budget.
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::ls::latency::micros;

/// Samples a window needs before its percentile is trusted.
pub const MIN_SAMPLES: u64 = 50;
/// A window is rotated after this many samples...
const WINDOW_SAMPLES: u64 = 4096;
/// ... or this much time, whichever comes first.
const WINDOW_AGE: Duration = Duration::from_secs(10);
/// The cached delay is recomputed every this many samples.
const RECOMPUTE_EVERY: u64 = 32;
/// Highest latency recorded (µs); slower samples saturate here.
const MAX_TRACKED_US: u64 = 60_000_000;
/// Hedge tokens the budget can bank (a burst after a quiet spell).
pub const BUDGET_BURST: u64 = 100;
/// Fixed-point scale of the budget (milli-tokens).
const MILLI: u64 = 1000;

/// The hedge delay from a measured percentile, clamped (pure).
/// `None` (not enough samples yet) gives the maximum.
pub fn clamp_delay(percentile: Option<Duration>, min: Duration, max: Duration) -> Duration {
    match percentile {
        Some(p) => p.clamp(min, max.max(min)),
        None => max.max(min),
    }
}

/// A rotating latency histogram: the current window, and the last full one
/// for while the current one is young.
#[derive(Debug)]
pub struct LatencyWindow {
    cur: Histogram<u64>,
    prev: Histogram<u64>,
    /// When the current window is old ([`WINDOW_AGE`] after it began):
    /// compared with, no time arithmetic per sample.
    ends: Instant,
}

impl LatencyWindow {
    /// An empty window starting at `now`.
    pub fn new(now: Instant) -> Self {
        let h = || {
            #[allow(clippy::expect_used)]
            Histogram::new_with_bounds(1, MAX_TRACKED_US, 2).expect("valid bounds") // cannot fail because 1 <= MAX_TRACKED_US and 2 sig. figures are constants hdrhistogram accepts
        };
        LatencyWindow {
            cur: h(),
            prev: h(),
            ends: now + WINDOW_AGE,
        }
    }

    /// Records one latency, rotating the window when it is full or old.
    pub fn record(&mut self, rtt: Duration, now: Instant) {
        if self.cur.len() >= WINDOW_SAMPLES || now >= self.ends {
            self.rotate(now);
        }
        self.cur
            .saturating_record(micros(rtt).clamp(1, MAX_TRACKED_US));
    }

    /// Starts a new window at `now`, the current one kept as the last.
    /// Once per window, out of line: the per-sample path keeps fewer
    /// registers.
    #[cold]
    #[inline(never)]
    fn rotate(&mut self, now: Instant) {
        std::mem::swap(&mut self.cur, &mut self.prev);
        self.cur.reset();
        self.ends = now + WINDOW_AGE;
    }

    /// Samples in the current window.
    pub fn len(&self) -> u64 {
        self.cur.len()
    }

    /// True when no sample is in the current window.
    pub fn is_empty(&self) -> bool {
        self.cur.is_empty()
    }

    /// The `pct` percentile (0–100) of the current window, or of the last
    /// one while the current has too few samples; `None` if neither has enough.
    pub fn percentile(&self, pct: f64) -> Option<Duration> {
        let q = (pct / 100.0).clamp(0.0, 1.0);
        [&self.cur, &self.prev]
            .into_iter()
            .find(|h| h.len() >= MIN_SAMPLES)
            .map(|h| Duration::from_micros(h.value_at_quantile(q)))
    }
}

/// One backend's adaptive delay: its latency window and the cached delay.
#[derive(Debug)]
pub struct AdaptiveDelay {
    window: Mutex<LatencyWindow>,
    samples: AtomicU64,
    /// Cached percentile in µs; 0 = not enough samples.
    cached_us: AtomicU64,
}

impl Default for AdaptiveDelay {
    fn default() -> Self {
        AdaptiveDelay {
            window: Mutex::new(LatencyWindow::new(Instant::now())),
            samples: AtomicU64::new(0),
            cached_us: AtomicU64::new(0),
        }
    }
}

impl AdaptiveDelay {
    /// Records a latency; recomputes the cached percentile now and then.
    pub fn observe(&self, rtt: Duration, pct: f64) {
        self.observe_at(rtt, pct, Instant::now());
    }

    /// [`AdaptiveDelay::observe`] of a latency measured at `now` (the
    /// caller's clock: no clock read here).
    pub fn observe_at(&self, rtt: Duration, pct: f64, now: Instant) {
        let n = self.samples.fetch_add(1, Relaxed) + 1;
        let mut w = match self.window.lock() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        w.record(rtt, now);
        if n.is_multiple_of(RECOMPUTE_EVERY) || n <= MIN_SAMPLES {
            self.recompute(&w, pct);
        }
    }

    /// Caches the percentile of `w`. One sample in [`RECOMPUTE_EVERY`], out
    /// of line: the per-sample path keeps fewer registers.
    #[cold]
    #[inline(never)]
    fn recompute(&self, w: &LatencyWindow, pct: f64) {
        let us = w.percentile(pct).map_or(0, |d| micros(d).max(1));
        self.cached_us.store(us, Relaxed);
    }

    /// The measured percentile, if enough samples exist.
    pub fn percentile(&self) -> Option<Duration> {
        match self.cached_us.load(Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }
}

/// The hedge budget: a token bucket earning `pct`% of a token per client query.
#[derive(Debug)]
pub struct HedgeBudget {
    /// Milli-tokens banked.
    milli: AtomicU64,
    /// Milli-tokens earned per client query.
    earn: u64,
}

impl HedgeBudget {
    /// A budget of `pct` percent of client queries, starting full.
    pub fn new(pct: f64) -> Self {
        let earn = (pct.clamp(0.0, 100.0) * MILLI as f64 / 100.0).round() as u64;
        HedgeBudget {
            milli: AtomicU64::new(if earn > 0 { BUDGET_BURST * MILLI } else { 0 }),
            earn,
        }
    }

    /// One client query arrived: earn a share of a token.
    pub fn earn(&self) {
        if self.earn == 0 {
            return;
        }
        let cap = BUDGET_BURST * MILLI;
        let _ = self.milli.fetch_update(Relaxed, Relaxed, |m| {
            (m < cap).then(|| (m + self.earn).min(cap))
        });
    }

    /// Takes a token for one hedge; false when the budget is spent.
    pub fn try_spend(&self) -> bool {
        self.milli
            .fetch_update(Relaxed, Relaxed, |m| m.checked_sub(MILLI))
            .is_ok()
    }

    /// Whole tokens banked.
    pub fn tokens(&self) -> u64 {
        self.milli.load(Relaxed) / MILLI
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// `n` samples of `rtt` recorded at `at`.
    fn record_n(w: &mut LatencyWindow, n: u64, rtt: Duration, at: Instant) {
        for _ in 0..n {
            w.record(rtt, at);
        }
    }

    #[test]
    fn clamp_uses_max_until_measured() {
        assert_eq!(clamp_delay(None, 2 * MS, 200 * MS), 200 * MS);
        assert_eq!(
            clamp_delay(Some(Duration::from_micros(50)), 2 * MS, 200 * MS),
            2 * MS
        );
        assert_eq!(clamp_delay(Some(30 * MS), 2 * MS, 200 * MS), 30 * MS);
        assert_eq!(clamp_delay(Some(900 * MS), 2 * MS, 200 * MS), 200 * MS);
    }

    #[test]
    fn percentile_needs_enough_samples_and_has_microsecond_resolution() {
        let t0 = Instant::now();
        let mut w = LatencyWindow::new(t0);
        record_n(&mut w, MIN_SAMPLES - 1, Duration::from_micros(40), t0);
        assert_eq!(w.percentile(95.0), None);
        // 95 fast (40 µs) and 5 slow (50 ms) answers: p95 is fast, p99 slow.
        let mut w = LatencyWindow::new(t0);
        for i in 0..100 {
            let rtt = if i < 95 {
                Duration::from_micros(40)
            } else {
                50 * MS
            };
            w.record(rtt, t0);
        }
        let p95 = w.percentile(95.0).unwrap();
        assert!(
            p95 >= Duration::from_micros(39) && p95 <= Duration::from_micros(41),
            "{p95:?}"
        );
        let p99 = w.percentile(99.0).unwrap();
        assert!(p99 >= 49 * MS, "{p99:?}");
    }

    #[test]
    fn window_rotates_and_forgets_old_latency() {
        let t0 = Instant::now();
        let mut w = LatencyWindow::new(t0);
        record_n(&mut w, 200, 100 * MS, t0);
        // After two rotations (by age) only the new, fast samples remain.
        let t1 = t0 + WINDOW_AGE;
        record_n(&mut w, 200, Duration::from_micros(80), t1);
        let t2 = t1 + WINDOW_AGE;
        record_n(&mut w, 200, Duration::from_micros(80), t2);
        let p = w.percentile(99.0).unwrap();
        assert!(p < MS, "{p:?}");
    }

    #[test]
    fn a_full_window_rotates_at_its_next_sample() {
        let t0 = Instant::now();
        let mut w = LatencyWindow::new(t0);
        record_n(&mut w, WINDOW_SAMPLES, 100 * MS, t0);
        assert_eq!(w.len(), WINDOW_SAMPLES);
        w.record(Duration::from_micros(80), t0);
        assert_eq!(w.len(), 1, "a new window");
        assert!(w.percentile(50.0).unwrap() >= 99 * MS, "the last one's");
    }

    /// The delay is worked out for each of the first [`MIN_SAMPLES`]
    /// samples, then at every [`RECOMPUTE_EVERY`]th, and read from its
    /// cache in between.
    #[test]
    fn the_cached_delay_is_recomputed_at_its_samples_only() {
        let t0 = Instant::now();
        let us = Duration::from_micros;
        let d = AdaptiveDelay::default();
        for _ in 1..MIN_SAMPLES {
            d.observe_at(us(40), 99.0, t0);
        }
        assert_eq!(d.percentile(), None);
        d.observe_at(us(40), 99.0, t0);
        assert_eq!(d.percentile(), Some(us(40)), "the 50th sample");
        // The p99 of the window is slow from the next sample on; the cache
        // keeps the last figure until the 64th.
        for _ in MIN_SAMPLES + 1..2 * RECOMPUTE_EVERY {
            d.observe_at(us(1_000), 99.0, t0);
        }
        assert_eq!(d.percentile(), Some(us(40)));
        d.observe_at(us(1_000), 99.0, t0);
        let p = d.percentile().unwrap();
        assert!(p >= us(1_000) && p < us(1_010), "{p:?}");
    }

    #[test]
    fn young_window_falls_back_to_the_previous_one() {
        let t0 = Instant::now();
        let mut w = LatencyWindow::new(t0);
        record_n(&mut w, 100, 5 * MS, t0);
        w.record(Duration::from_micros(10), t0 + WINDOW_AGE);
        let p = w.percentile(50.0).unwrap();
        assert!(p >= 4 * MS, "{p:?}");
    }

    #[test]
    fn budget_earns_its_share_and_caps() {
        let b = HedgeBudget::new(10.0);
        // Starts with a full burst.
        for _ in 0..BUDGET_BURST {
            assert!(b.try_spend());
        }
        assert!(!b.try_spend());
        // 10% of 1,000 queries = 100 hedges.
        for _ in 0..1000 {
            b.earn();
        }
        let mut spent = 0;
        while b.try_spend() {
            spent += 1;
        }
        assert_eq!(spent, 100);
        // The bank is capped.
        for _ in 0..100_000 {
            b.earn();
        }
        assert_eq!(b.tokens(), BUDGET_BURST);
    }

    #[test]
    fn zero_budget_never_hedges() {
        let b = HedgeBudget::new(0.0);
        for _ in 0..1000 {
            b.earn();
        }
        assert!(!b.try_spend());
    }
}
