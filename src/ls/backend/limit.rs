//! An adaptive concurrency limit per backend: the LS
//! sends a backend no more queries at once than it can answer without a
//! queue, so overload is shed at the LS's door, at once, instead of
//! queueing in the backend until every answer comes late.
//!
//! The limit is a gradient, as Netflix's concurrency-limits `Gradient2` and
//! Envoy's adaptive-concurrency filter compute it:
//! - answer latencies are gathered in windows (at least [`WINDOW_SAMPLES`]
//!   answers and [`WINDOW_TIME`]; the last [`KEPT`] kept); a window's
//!   latency is their median;
//! - the backend's no-load latency (`baseline`) is its fastest answer in
//!   the current and the previous [`EPOCH`] (a queue that never drains for
//!   that long raises it: the limit then settles higher), so it follows a
//!   backend that really became slower within two epochs;
//! - at each window's end ([`next_limit`], pure):
//!   `gradient = clamp(target / median, 0.5, 1)` with
//!   `target = TOLERANCE × baseline + SLACK`, and
//!   `new = limit × gradient + √limit`; a lower limit is taken at once (a
//!   queue is building: from the first limit, 4,096, to 256 in about four
//!   windows), a higher one smoothed
//!   (`limit ← (1 − SMOOTHING) × limit + SMOOTHING × new`), bounded to
//!   `[min, max]`. The `√limit` (queue allowance) is added only
//!   when the limit was used (half of it in flight at some time in the
//!   window) or the latency is over the target: an idle backend's limit
//!   does not creep. It starts at `max` (nothing changes until a backend's
//!   latency rises).
//!
//! What counts against the limit is the queries sent to the backend in the
//! last `horizon` and not answered yet ([`Young`]): `horizon = clamp(4 ×
//! target, 20 ms, 120 ms)`. A query silent for longer is presumed lost (a
//! dropped datagram, a name a backend never answers) and no longer
//! counted: a backend that drops queries for names it does not hold, or a
//! lossy path, does not fill its limit with queries that will never be
//! answered. For a backend slower than the horizon the limit becomes a
//! bound on what is sent per horizon.
//!
//! Only answers are samples: a query that times out says nothing about
//! the backend's queue (the deadline is the LS's, and the silence may be
//! the backend's rule, `on_miss = "silent"`).
//!
//! On by default (`backend_limit_max = 4096`, `backend_limit_min = 256`;
//! 0 turns it off): `bench/overload --nsd-core load`, an LS reading faster
//! than its one NSD answers at 1.5x its maximum, gave an answered p99 of
//! 17-20 ms in 10 of 10 rounds with it and up to 209 ms without (the
//! backend's queue growing to the deadline). On a host whose CPU is
//! contended the latency it watches includes the LS's own scheduling
//! delays; the floor of 256 queries in flight per backend keeps a normal
//! load from being shed there.
//!
//! Where it acts, when on (`[ls] backend_limit_min`/`backend_limit_max`): a UDP query whose route has no up backend with room is
//! answered SERVFAIL at once at the door (`dnslb_shed_total{reason="limit"}`);
//! otherwise the backends with room are asked first (those at their limit
//! are moved to the end of the candidate order, kept for failover, hedges
//! and the partitioned layout's negative answers). TCP, DoT and DoH queries
//! are not shed by it, only ordered.
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

/// Answers a window needs before it ends.
pub const WINDOW_SAMPLES: usize = 16;
/// The shortest window.
pub const WINDOW_TIME: Duration = Duration::from_millis(20);
/// Latencies kept per window (the last ones).
pub const KEPT: usize = 64;
/// How long an answer's latency stays a candidate for the baseline: the
/// baseline is the fastest of the current and the previous epoch.
pub const EPOCH: Duration = Duration::from_secs(60);
/// How much slower than its baseline a backend may answer before its limit
/// shrinks.
pub const TOLERANCE: f64 = 2.0;
/// Latency added to the target whatever the baseline: scheduling noise of
/// a loaded host is not a queue, and a queue this short is no harm.
pub const SLACK: Duration = Duration::from_millis(10);
/// Weight of a window's new limit.
pub const SMOOTHING: f64 = 0.2;
/// The time slot of the in-flight count.
pub const SLOT: Duration = Duration::from_millis(2);
/// Slots of the in-flight count: the longest horizon.
pub const SLOTS: usize = 64;
/// Bounds of the horizon past which a silent query is presumed lost.
pub const HORIZON_MIN: Duration = Duration::from_millis(20);
/// See [`HORIZON_MIN`] (at most `SLOTS × SLOT`).
pub const HORIZON_MAX: Duration = Duration::from_millis(120);

/// The limit's bounds; `max == 0`: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The lowest limit.
    pub min: u32,
    /// The highest (and first) limit; 0 = off.
    pub max: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            min: DEFAULT_MIN,
            max: DEFAULT_MAX,
        }
    }
}

/// `backend_limit_min`'s and `backend_limit_max`'s defaults, owned by the
/// config (the max is off: see the module doc).
pub use crate::config::{BACKEND_LIMIT_MAX as DEFAULT_MAX, BACKEND_LIMIT_MIN as DEFAULT_MIN};

/// The latency the limit aims at for a backend whose no-load latency is
/// `baseline`.
pub fn target(baseline: Duration) -> Duration {
    baseline.mul_f64(TOLERANCE) + SLACK
}

/// How long a silent query counts against the limit.
pub fn horizon(baseline: Duration) -> Duration {
    (target(baseline) * 4).clamp(HORIZON_MIN, HORIZON_MAX)
}

/// The limit after a window whose median latency was `median`, with
/// no-load latency `baseline`; `used`: half the limit was in flight at some
/// time in the window.
pub fn next_limit(limit: f64, baseline: Duration, median: Duration, used: bool, b: Bounds) -> f64 {
    let (min, max) = (f64::from(b.min.min(b.max)), f64::from(b.max));
    let t = target(baseline).as_secs_f64();
    let m = median.as_secs_f64().max(1e-6);
    let gradient = (t / m).clamp(0.5, 1.0);
    let queue = if used || gradient < 1.0 {
        limit.sqrt()
    } else {
        0.0
    };
    let new = limit * gradient + queue;
    // Down at once (a queue is building), up smoothed.
    let next = if new < limit {
        new
    } else {
        (1.0 - SMOOTHING) * limit + SMOOTHING * new
    };
    next.clamp(min, max)
}

/// Queries sent and not answered, by the slot they were sent in: a ring of
/// [`SLOTS`] counts, the newest slot `head`.
#[derive(Debug, Clone)]
pub struct Young {
    counts: [u32; SLOTS],
    head: u64,
    origin: Instant,
}

impl Young {
    fn new(origin: Instant) -> Self {
        Young {
            counts: [0; SLOTS],
            head: 0,
            origin,
        }
    }

    fn slot(&self, at: Instant) -> u64 {
        slots_in(at.saturating_duration_since(self.origin))
    }

    /// Moves the newest slot to `to`, emptying those it passes.
    fn advance(&mut self, to: u64) {
        if to <= self.head {
            return;
        }
        let steps = (to - self.head).min(SLOTS as u64);
        for k in 1..=steps {
            let i = ((self.head + k) % SLOTS as u64) as usize;
            if let Some(c) = self.counts.get_mut(i) {
                *c = 0;
            }
        }
        self.head = to;
    }

    /// One query sent at `now`, counted in `now`'s slot: the slot
    /// [`Young::ended`] takes it out of, also when `now` is older than the
    /// newest slot (a caller's time read earlier, e.g. its round's start);
    /// one older than the ring is not counted.
    pub fn sent(&mut self, now: Instant) {
        self.sent_in(self.slot(now));
    }

    /// [`Young::sent`] of a query sent in slot `s` ([`Young::slot`]: the
    /// clock's arithmetic done once for the send and the count after it).
    fn sent_in(&mut self, s: u64) {
        self.advance(s);
        let s = s.min(self.head);
        if self.head - s < SLOTS as u64 {
            let i = (s % SLOTS as u64) as usize;
            if let Some(c) = self.counts.get_mut(i) {
                *c = c.saturating_add(1);
            }
        }
    }

    /// The query sent at `sent` ended (answered, or given up): no longer
    /// counted, if it still was.
    pub fn ended(&mut self, sent: Instant) {
        self.ended_in(self.slot(sent));
    }

    /// [`Young::ended`] of the query sent in slot `s` ([`Young::slot`] of
    /// its send: worked out once, when it was sent).
    fn ended_in(&mut self, s: u64) {
        let s = s.min(self.head);
        if self.head - s < SLOTS as u64 {
            let i = (s % SLOTS as u64) as usize;
            if let Some(c) = self.counts.get_mut(i) {
                *c = c.saturating_sub(1);
            }
        }
    }

    /// Queries sent within `horizon` of `now` and not ended.
    pub fn count(&mut self, now: Instant, horizon: Duration) -> u32 {
        self.count_slots(now, horizon_slots(horizon))
    }

    /// Queries sent in the last `slots` slots (the newest included) at
    /// `now` and not ended: the ring's last `slots` counts, summed as at
    /// most two runs (a slot before the first is still 0).
    fn count_slots(&mut self, now: Instant, slots: usize) -> u32 {
        self.count_in(self.slot(now), slots)
    }

    /// [`Young::count_slots`] at slot `to`.
    fn count_in(&mut self, to: u64, slots: usize) -> u32 {
        self.advance(to);
        let slots = slots.clamp(1, SLOTS);
        let end = (self.head % SLOTS as u64) as usize + 1;
        let sum = |r: &[u32]| r.iter().map(|&c| u64::from(c)).sum::<u64>();
        let total = match end.checked_sub(slots) {
            Some(start) => sum(self.counts.get(start..end).unwrap_or_default()),
            None => {
                let wrapped = SLOTS - (slots - end);
                sum(self.counts.get(..end).unwrap_or_default())
                    + sum(self.counts.get(wrapped..).unwrap_or_default())
            }
        };
        u32::try_from(total).unwrap_or(u32::MAX)
    }
}

/// Whole [`SLOT`]s in `d`, in 64-bit arithmetic (no 128-bit division on
/// the per-query path).
fn slots_in(d: Duration) -> u64 {
    const SLOT_NS: u64 = SLOT.as_nanos() as u64;
    let ns = d
        .as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()));
    ns / SLOT_NS
}

/// The slots a `horizon` spans (within `1..=SLOTS`).
fn horizon_slots(horizon: Duration) -> usize {
    usize::try_from(slots_in(horizon))
        .unwrap_or(SLOTS)
        .clamp(1, SLOTS)
}

/// Moves the candidates (backend indexes) without room behind those with
/// room, keeping each side's order; nothing moves while all have room.
pub fn room_first(candidates: &mut [usize], has_room: impl Fn(usize) -> bool) {
    if candidates.iter().all(|&i| has_room(i)) {
        return;
    }
    candidates.sort_by_key(|&i| !has_room(i));
}

/// One backend's limit: the gradient's state and the in-flight count.
#[derive(Debug, Clone)]
pub struct Limiter {
    bounds: Bounds,
    limit: f64,
    young: Young,
    /// This window's latencies (µs), the last [`KEPT`].
    window: [u32; KEPT],
    samples: usize,
    /// When the window's time is up (its first answer's time plus
    /// [`WINDOW_TIME`]), once it has one.
    window_end: Option<Instant>,
    /// The most queries in flight seen in the window.
    peak: u32,
    /// The fastest answer of this epoch and of the previous one.
    epoch_min: Option<Duration>,
    prev_min: Option<Duration>,
    /// When the epoch ends (its start plus [`EPOCH`]): compared with, no
    /// time arithmetic per answer.
    epoch_end: Instant,
    /// The slots of the in-flight count's horizon ([`horizon`] of the
    /// baseline), kept up to date as the baseline changes.
    horizon_slots: usize,
}

impl Limiter {
    /// A limiter within `bounds`, its limit at their max, at `now`.
    pub fn new(bounds: Bounds, now: Instant) -> Self {
        Limiter {
            bounds,
            limit: f64::from(bounds.max),
            young: Young::new(now),
            window: [0; KEPT],
            samples: 0,
            window_end: None,
            peak: 0,
            epoch_min: None,
            prev_min: None,
            epoch_end: now + EPOCH,
            horizon_slots: horizon_slots(HORIZON_MAX),
        }
    }

    /// New bounds (a reload); the limit is brought within them.
    pub fn set_bounds(&mut self, bounds: Bounds) {
        if bounds != self.bounds {
            // Turned on: from its max, as a new limiter.
            if self.bounds.max == 0 {
                self.limit = f64::from(bounds.max);
            }
            self.bounds = bounds;
            self.limit = self
                .limit
                .clamp(f64::from(bounds.min.min(bounds.max)), f64::from(bounds.max));
        }
    }

    /// The limit now (0: off).
    pub fn limit(&self) -> u32 {
        if self.bounds.max == 0 {
            return 0;
        }
        self.limit as u32
    }

    /// The no-load latency, once an answer has come.
    pub fn baseline(&self) -> Option<Duration> {
        match (self.epoch_min, self.prev_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The slots of the horizon, for the baseline now (computed when the
    /// baseline changes, not per query).
    fn horizon_now(&self) -> usize {
        horizon_slots(self.baseline().map_or(HORIZON_MAX, horizon))
    }

    /// Queries counted against the limit at `now`.
    pub fn in_flight(&mut self, now: Instant) -> u32 {
        self.young.count_slots(now, self.horizon_slots)
    }

    /// Whether one more query may go at `now`.
    pub fn has_room(&mut self, now: Instant) -> bool {
        self.bounds.max == 0 || self.in_flight(now) < self.limit()
    }

    /// A query sent at `now`; the queries in flight then, and the slot it
    /// is counted in (for [`Limiter::ended_in`]).
    pub fn sent(&mut self, now: Instant) -> (u32, u64) {
        let s = self.young.slot(now);
        self.young.sent_in(s);
        let n = self.young.count_in(s, self.horizon_slots);
        self.peak = self.peak.max(n);
        (n, s)
    }

    /// The query sent at `sent` ended.
    pub fn ended(&mut self, sent: Instant) {
        self.young.ended(sent);
    }

    /// The query [`Limiter::sent`] counted in slot `slot` ended: as
    /// [`Limiter::ended`] of its send time, with no clock arithmetic (the
    /// slot was worked out when it was sent; the ring's origin never moves).
    pub fn ended_in(&mut self, slot: u64) {
        self.young.ended_in(slot);
    }

    /// An answer that took `rtt`, received at `now`; ends a window when
    /// it is due.
    pub fn sample(&mut self, rtt: Duration, now: Instant) {
        let before = self.baseline();
        if now >= self.epoch_end {
            self.prev_min = self.epoch_min.take();
            self.epoch_end = now + EPOCH;
        }
        self.epoch_min = Some(self.epoch_min.map_or(rtt, |m| m.min(rtt)));
        if self.baseline() != before {
            self.horizon_slots = self.horizon_now();
        }
        let us = u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX);
        if let Some(slot) = self.window.get_mut(self.samples % KEPT) {
            *slot = us;
        }
        self.samples += 1;
        let end = *self.window_end.get_or_insert_with(|| now + WINDOW_TIME);
        if self.samples < WINDOW_SAMPLES || now < end {
            return;
        }
        let kept = self.samples.min(KEPT);
        let mut w = self.window;
        let w = w.get_mut(..kept).unwrap_or_default();
        let mid = kept / 2;
        let (_, median, _) = w.select_nth_unstable(mid);
        let median = Duration::from_micros(u64::from(*median));
        let baseline = self.baseline().unwrap_or(median);
        let used = f64::from(self.peak) * 2.0 >= self.limit;
        if self.bounds.max > 0 {
            self.limit = next_limit(self.limit, baseline, median, used, self.bounds);
        }
        self.samples = 0;
        self.window_end = None;
        self.peak = self.in_flight(now);
    }
}

/// A backend's [`Limiter`], shared by the workers: behind a lock, with the
/// limit and the last in-flight count readable without it.
#[derive(Debug)]
pub struct Limit {
    inner: Mutex<Limiter>,
    limit: AtomicU32,
    in_flight: AtomicU32,
}

impl Default for Limit {
    fn default() -> Self {
        let l = Limiter::new(Bounds::default(), Instant::now());
        Limit {
            limit: AtomicU32::new(l.limit()),
            in_flight: AtomicU32::new(0),
            inner: Mutex::new(l),
        }
    }
}

impl Limit {
    fn with<T>(&self, f: impl FnOnce(&mut Limiter) -> T) -> T {
        let mut l = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let out = f(&mut l);
        self.limit.store(l.limit(), Relaxed);
        out
    }

    /// New bounds (config load or reload).
    pub fn set_bounds(&self, bounds: Bounds) {
        self.with(|l| l.set_bounds(bounds));
    }

    /// The limit now; 0 when off.
    pub fn current(&self) -> u32 {
        self.limit.load(Relaxed)
    }

    /// A query sent at `now`: the slot it is counted in, for
    /// [`Limit::ended_in`] (`None` while the limit is off: not counted).
    pub fn sent(&self, now: Instant) -> Option<u64> {
        if self.current() == 0 {
            return None;
        }
        let (n, slot) = self.with(|l| l.sent(now));
        self.in_flight.store(n, Relaxed);
        Some(slot)
    }

    /// The query sent at `sent` ended.
    pub fn ended(&self, sent: Instant) {
        self.end(|l| l.ended(sent));
    }

    /// The query [`Limit::sent`] counted in slot `slot` ended (no clock
    /// arithmetic per answer: [`Limiter::ended_in`]).
    pub fn ended_in(&self, slot: u64) {
        self.end(|l| l.ended_in(slot));
    }

    /// A query ended, as `end` takes it out of the count.
    fn end(&self, end: impl FnOnce(&mut Limiter)) {
        if self.current() == 0 {
            return;
        }
        self.with(end);
        self.in_flight
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .ok();
    }

    /// An answer that took `rtt`, at `now`.
    pub fn sample(&self, rtt: Duration, now: Instant) {
        if self.current() == 0 {
            return;
        }
        self.with(|l| l.sample(rtt, now));
    }

    /// Whether one more query may go at `now`: without the lock while the
    /// last count is under the limit.
    pub fn has_room(&self, now: Instant) -> bool {
        let limit = self.current();
        if limit == 0 || self.in_flight.load(Relaxed) < limit {
            return true;
        }
        let (n, limit) = self.with(|l| (l.in_flight(now), l.limit()));
        self.in_flight.store(n, Relaxed);
        limit == 0 || n < limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const US: Duration = Duration::from_micros(1);
    const B: Bounds = Bounds { min: 32, max: 4096 };

    #[test]
    fn at_or_under_the_target_the_limit_holds_or_grows_only_when_used() {
        let base = 100 * US;
        // target = 2 × 0.1 + 10 = 10.2 ms
        assert_eq!(target(base), 10_200 * US);
        assert_eq!(next_limit(1000.0, base, 2 * MS, false, B), 1000.0);
        let grown = next_limit(1000.0, base, 2 * MS, true, B);
        assert!((grown - (1000.0 + 0.2 * 1000f64.sqrt())).abs() < 1e-9);
        assert_eq!(next_limit(4096.0, base, base, true, B), 4096.0, "max");
    }

    #[test]
    fn over_the_target_the_limit_shrinks_to_an_equilibrium_and_never_below_min() {
        let base = 100 * US;
        // Twice the target: gradient 0.5.
        let l = next_limit(1000.0, base, 20_400 * US, false, B);
        assert!((l - (500.0 + 1000f64.sqrt())).abs() < 1e-9, "down at once");
        // Far over (a queue of 500 ms): halves at most per window.
        let mut l = 4096.0;
        for _ in 0..7 {
            l = next_limit(l, base, 500 * MS, false, B);
        }
        assert!(l < 80.0, "{l}: seven windows");
        for _ in 0..20 {
            l = next_limit(l, base, 500 * MS, false, B);
        }
        // Equilibrium of 0.5 l + √l = l: l = 4 < min.
        assert_eq!(l, 32.0);
        // Latency 10 % over the target: settles where √l / l = 0.09.
        let mut l = 4096.0;
        for _ in 0..2000 {
            l = next_limit(l, base, 11_220 * US, true, B);
        }
        let g: f64 = 1.0 / 1.1;
        let eq = (1.0 / (1.0 - g)).powi(2);
        assert!((l - eq).abs() < 1.0, "{l} vs {eq}");
    }

    #[test]
    fn the_in_flight_count_forgets_what_is_answered_and_what_is_too_old() {
        let t0 = Instant::now();
        let mut y = Young::new(t0);
        for i in 0..10u32 {
            y.sent(t0 + i * MS);
        }
        assert_eq!(y.count(t0 + 10 * MS, 20 * MS), 10);
        y.ended(t0 + 3 * MS);
        y.ended(t0 + 4 * MS);
        assert_eq!(y.count(t0 + 10 * MS, 20 * MS), 8);
        // 25 ms on: those sent before 6 ms are past a 20 ms horizon.
        assert_eq!(y.count(t0 + 25 * MS, 20 * MS), 4);
        // Ending a query long gone (its slot reused) changes nothing.
        y.sent(t0 + 200 * MS);
        y.ended(t0);
        assert_eq!(y.count(t0 + 200 * MS, 20 * MS), 1);
        // Past the whole ring: empty.
        assert_eq!(y.count(t0 + 10_000 * MS, 120 * MS), 0);
    }

    /// The count summed as the ring's runs equals the slot-by-slot sum
    /// of the last `horizon` slots, at every head (before and after the
    /// ring wraps) and every horizon.
    #[test]
    fn the_in_flight_count_is_the_sum_of_the_horizons_slots() {
        let t0 = Instant::now();
        let mut y = Young::new(t0);
        let mut sent = Vec::new();
        for step in 0..300u32 {
            // A few queries per slot, some ended: an uneven ring.
            let at = t0 + step * MS;
            for _ in 0..(step % 3) {
                y.sent(at);
                sent.push(at);
            }
            if step % 5 == 0 && step >= 7 {
                y.ended(t0 + (step - 7) * MS);
            }
            for horizon in [1, 2, 19, 20, 21, 63, 64, 120, 500] {
                let h = horizon * MS;
                let naive: u32 = {
                    y.advance(y.slot(at));
                    let slots = (h.as_nanos() / SLOT.as_nanos()).clamp(1, SLOTS as u128) as u64;
                    (0..slots)
                        .filter_map(|k| y.head.checked_sub(k))
                        .map(|s| y.counts[(s % SLOTS as u64) as usize])
                        .sum()
                };
                assert_eq!(y.count(at, h), naive, "step {step}, horizon {horizon} ms");
            }
        }
        // A send timed before the newest slot is counted in its own slot,
        // and its end takes it out again: nothing is left over.
        let t = t0 + 400 * MS;
        let before = y.count(t, 20 * MS);
        y.sent(t - 5 * MS);
        assert_eq!(y.count(t, 20 * MS), before + 1);
        y.ended(t - 5 * MS);
        assert_eq!(y.count(t, 20 * MS), before);
        assert_eq!(slots_in(Duration::from_secs(3)), 1500);
        assert_eq!(slots_in(3 * MS), 1);
    }

    /// A backend whose queue grows with what it is sent: latency = base +
    /// (in flight over its capacity) × service time. Driven window by
    /// window, the limit comes down from max to near the capacity and the
    /// latency back under the target.
    #[test]
    fn a_queueing_backend_is_held_near_its_capacity() {
        let t0 = Instant::now();
        let mut l = Limiter::new(B, t0);
        let base = 100 * US;
        let capacity = 50u32;
        let service = 100 * US;
        // Before the overload, it answered at its own speed.
        l.sample(base, t0);
        let mut now = t0;
        let mut last = Duration::ZERO;
        for _ in 0..400 {
            // A window: the LS keeps `limit` queries in flight (overload).
            let inflight = l.limit();
            let queued = inflight.saturating_sub(capacity);
            let rtt = base + service * queued;
            last = rtt;
            for _ in 0..WINDOW_SAMPLES {
                l.sent(now);
                l.ended(now);
                l.sample(rtt, now);
            }
            now += WINDOW_TIME;
            l.sample(rtt, now);
        }
        assert_eq!(l.baseline(), Some(base));
        assert!(l.limit() < 200, "limit {}", l.limit());
        assert!(last <= target(base) + 2 * MS, "latency {last:?}");
    }

    #[test]
    fn the_baseline_follows_a_slower_backend_after_two_epochs() {
        let t0 = Instant::now();
        let mut l = Limiter::new(B, t0);
        let window = |l: &mut Limiter, rtt: Duration, at: Instant| {
            for _ in 0..WINDOW_SAMPLES {
                l.sample(rtt, at);
            }
            l.sample(rtt, at + WINDOW_TIME);
        };
        window(&mut l, MS, t0);
        assert_eq!(l.baseline(), Some(MS));
        window(&mut l, 5 * MS, t0 + EPOCH);
        assert_eq!(l.baseline(), Some(MS), "the previous epoch's still counts");
        window(&mut l, 5 * MS, t0 + EPOCH * 2 + WINDOW_TIME);
        assert_eq!(l.baseline(), Some(5 * MS));
    }

    /// A window ends at its first answer's time plus [`WINDOW_TIME`] (with
    /// enough answers), an epoch at its start plus [`EPOCH`]: not a
    /// nanosecond before (both kept as the moment they end).
    #[test]
    fn a_window_and_an_epoch_end_at_their_moment_not_before() {
        let t0 = Instant::now();
        let ns = Duration::from_nanos(1);
        let mut l = Limiter::new(B, t0);
        for _ in 0..WINDOW_SAMPLES {
            l.sample(MS, t0);
        }
        assert_eq!(l.samples, WINDOW_SAMPLES, "enough answers, time not up");
        l.sample(MS, t0 + WINDOW_TIME - ns);
        assert_eq!(l.samples, WINDOW_SAMPLES + 1);
        l.sample(MS, t0 + WINDOW_TIME);
        assert_eq!(l.samples, 0, "ended at its time");
        l.sample(2 * MS, t0 + EPOCH - ns);
        assert_eq!((l.prev_min, l.epoch_min), (None, Some(MS)));
        l.sample(3 * MS, t0 + EPOCH);
        assert_eq!((l.prev_min, l.epoch_min), (Some(MS), Some(3 * MS)));
        l.sample(3 * MS, t0 + EPOCH * 2 - ns);
        assert_eq!(
            l.prev_min,
            Some(MS),
            "the next epoch from the answer that began it"
        );
        l.sample(3 * MS, t0 + EPOCH * 2);
        assert_eq!(l.prev_min, Some(3 * MS));
    }

    #[test]
    fn candidates_with_room_go_first_in_their_order() {
        let mut c = [3, 0, 2, 1];
        room_first(&mut c, |i| i != 0 && i != 2);
        assert_eq!(c, [3, 1, 0, 2]);
        let mut c = [3, 0, 2, 1];
        room_first(&mut c, |_| true);
        assert_eq!(c, [3, 0, 2, 1]);
    }

    #[test]
    fn turned_on_it_starts_at_its_max() {
        let lim = Limit::default();
        assert_eq!(lim.current(), DEFAULT_MAX, "on by default, at its max");
        lim.set_bounds(Bounds { min: 32, max: 0 });
        assert_eq!(lim.current(), 0, "off");
        lim.set_bounds(B);
        assert_eq!(lim.current(), 4096);
    }

    /// A query ended by the slot its send was counted in is taken out of
    /// the count exactly as one ended by its send time: in its own slot,
    /// whether the ring has moved on since (sent at the round's earlier
    /// time) or not; one older than the ring is not taken out of any.
    #[test]
    fn ending_by_the_slot_of_the_send_is_ending_by_its_time() {
        let t0 = Instant::now();
        let sends = [0, 3, 3, 40, 41, 41, 700, 2_000];
        let (mut by_time, mut by_slot) = (Limiter::new(B, t0), Limiter::new(B, t0));
        let mut slots = Vec::new();
        for &ms in &sends {
            by_time.sent(t0 + ms * MS);
            slots.push(by_slot.sent(t0 + ms * MS).1);
        }
        // A send timed before the newest slot (a round's earlier clock).
        by_time.sent(t0 + 1_500 * MS);
        slots.push(by_slot.sent(t0 + 1_500 * MS).1);
        let count = |l: &mut Limiter| l.young.count_slots(t0 + 2_000 * MS, SLOTS);
        assert_eq!(count(&mut by_time), count(&mut by_slot));
        let all: Vec<u32> = sends.iter().copied().chain([1_500]).collect();
        for (i, &ms) in all.iter().enumerate().rev() {
            by_time.ended(t0 + ms * MS);
            by_slot.ended_in(slots[i]);
            assert_eq!(
                (count(&mut by_time), by_time.young.counts),
                (count(&mut by_slot), by_slot.young.counts),
                "after the send at {ms} ms ended"
            );
        }
        assert_eq!(count(&mut by_slot), 0, "every query ended");
    }

    #[test]
    fn off_means_always_room_and_a_zero_limit() {
        let t0 = Instant::now();
        let off = Bounds { min: 32, max: 0 };
        let mut l = Limiter::new(off, t0);
        for _ in 0..10_000 {
            l.sent(t0);
        }
        assert!(l.has_room(t0));
        assert_eq!(l.limit(), 0);
        let shared = Limit::default();
        shared.set_bounds(off);
        assert_eq!(shared.current(), 0);
        assert!(shared.has_room(t0));
    }

    #[test]
    fn at_its_limit_a_backend_has_no_room_until_queries_end_or_grow_old() {
        let t0 = Instant::now();
        let small = Bounds { min: 4, max: 4 };
        let lim = Limit::default();
        lim.set_bounds(small);
        for _ in 0..4 {
            assert!(lim.has_room(t0));
            lim.sent(t0);
        }
        assert!(!lim.has_room(t0), "4 in flight, limit 4");
        lim.ended(t0);
        assert!(lim.has_room(t0), "one answered");
        lim.sent(t0);
        assert!(!lim.has_room(t0 + 10 * MS));
        // No baseline yet: presumed lost after the longest horizon.
        assert!(lim.has_room(t0 + HORIZON_MAX + SLOT));
    }
}
