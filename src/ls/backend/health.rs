//! One backend's health ([`Health`]): up or down, and the evidence that
//! moves it. Pure rules and the per-backend state only: no socket, no clock
//! (times are [`super::clock_ms`] stamps handed in), no log (a change is
//! returned, its caller logs it). The probe loop is [`crate::ls::health`].
//!
//! The probes' rule is the house's one [`Hysteresis`]: `fall` failures in a
//! row mark a backend down, `rise` successes in a row mark it up, and a
//! result that agrees with the current state resets the count.
//!
//! Client queries are evidence too, kept apart from the probes'
//! ([`LossRecord`], pure): a client query a backend never answered by its
//! deadline — timed out, or rescued by another backend and silent since — is
//! a loss; `fall` losses in a row (no client answer in between; a probe's
//! success does not clear them) mark it down. A backend that answers probes
//! but loses client queries (response-rate limiting, an expired zone) would
//! otherwise be raised again by its probes at once: after a first such fall
//! one lost query marks it down again, and each relapse holds it down longer
//! before probes may raise it ([`hold_ms`]). A client answer forgives all,
//! and so does a minute without a loss ([`LOSS_MEMORY_MS`]). Probe answers
//! never do: the hold is for a backend that answers probes but not its
//! clients. Silence that is expected is no loss (a partition silent for
//! another partition's name: [`super::WonBy`]).
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hickory_proto::rr::{Name, RecordType};

use crate::config::HealthConfig;
use crate::hysteresis::Hysteresis;

/// The health settings in force.
#[derive(Debug, Clone)]
pub struct HealthPolicy {
    /// Time between probe rounds.
    pub interval: Duration,
    /// Probe after this many client queries as well (0 = off).
    pub every_queries: u64,
    /// The probe question.
    pub name: Name,
    /// The probe question's type.
    pub rtype: RecordType,
    /// Failures in a row to mark down.
    pub fall: u32,
    /// Successes in a row to mark up.
    pub rise: u32,
    /// Wait for one probe.
    pub timeout: Duration,
}

impl HealthPolicy {
    /// The policy of an `[ls.health]` section.
    pub fn from_config(c: &HealthConfig) -> Self {
        HealthPolicy {
            interval: Duration::from_millis(c.interval_ms.max(1)),
            every_queries: c.every_queries,
            name: c.query.name.clone(),
            rtype: c.query.rtype,
            fall: c.fall,
            rise: c.rise,
            timeout: Duration::from_millis(c.timeout_ms.max(1)),
        }
    }
}

/// The first relapse's hold: how long a backend marked down again for lost
/// client queries stays down whatever its probes say.
pub const HOLD_BASE_MS: u64 = 10_000;
/// The longest hold (each relapse doubles it up to this).
pub const HOLD_MAX_MS: u64 = 300_000;
/// How long losses are remembered: a loss more than this after the last
/// one (and after the end of the last hold) starts afresh, so losses
/// minutes apart (a restart now and then) are not "in a row".
pub const LOSS_MEMORY_MS: u64 = 60_000;

/// How long probes may not raise a backend marked down for lost client
/// queries for the `strikes`-th time in a row (pure): nothing the first time
/// (a backend that was restarting comes back by its probes as always), then
/// [`HOLD_BASE_MS`], doubling, at most [`HOLD_MAX_MS`].
pub fn hold_ms(strikes: u32) -> u64 {
    match strikes {
        0 | 1 => 0,
        k => HOLD_BASE_MS
            .checked_shl(k - 2)
            .unwrap_or(u64::MAX)
            .min(HOLD_MAX_MS),
    }
}

/// Client queries a backend lost, and what they hold against it (pure;
/// times are [`super::clock_ms`] stamps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossRecord {
    /// Losses in a row, with no client answer between them.
    pub streak: u32,
    /// Falls for losses since the backend last answered a client query.
    pub strikes: u32,
    /// Until when probes may not raise it.
    pub hold_until: u64,
    /// When the last loss was counted.
    pub last_loss: u64,
}

impl LossRecord {
    /// One client query lost at `now` by a backend that is `up`: true when
    /// it marks the backend down — `fall` losses in a row, or one while it is
    /// on probation (raised by probes after a fall for losses, no client
    /// answer since). A loss more than [`LOSS_MEMORY_MS`] after the last one
    /// and the end of the last hold forgets them first.
    pub fn lost(&mut self, up: bool, now: u64, fall: u32) -> bool {
        if !up {
            return false;
        }
        if now.saturating_sub(self.last_loss.max(self.hold_until)) > LOSS_MEMORY_MS {
            // Long enough ago to be another story.
            *self = LossRecord::default();
        }
        self.last_loss = now;
        self.streak = self.streak.saturating_add(1);
        let needed = if self.strikes > 0 { 1 } else { fall.max(1) };
        if self.streak < needed {
            return false;
        }
        self.streak = 0;
        self.strikes = self.strikes.saturating_add(1);
        self.hold_until = now.saturating_add(hold_ms(self.strikes));
        true
    }

    /// It answered a client query: every loss is forgiven.
    pub fn answered(&mut self) {
        *self = LossRecord::default();
    }

    /// Whether a successful probe at `now` may count towards raising it.
    pub fn probes_count(&self, now: u64) -> bool {
        now >= self.hold_until
    }
}

/// Whether an answer stamped `last` (0: never) is at most `window` before
/// `now` (pure). A client query lost within a query's lifetime of such an
/// answer proves nothing new about its backend: sent while it restarted, or
/// while the LS itself was behind (its own backlog), not to a backend gone
/// silent.
pub fn answered_within(last: u64, now: u64, window: Duration) -> bool {
    let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    last != 0 && now.saturating_sub(last) <= window
}

/// The probes' hysteresis (its state is the backend's, mirrored in
/// [`Health`]'s atomics for lock-free reads) and the client losses of one
/// backend.
#[derive(Debug)]
struct Evidence {
    probes: Hysteresis,
    losses: LossRecord,
}

/// One backend's health: whether it is up, whether it was ever found up,
/// the rule in force and the evidence so far. Changed only by
/// [`Health::observe`] (a probe), [`Health::lost`] (a client query lost),
/// [`Health::answered`] (a client query answered) and [`Health::set_up`]
/// (an operator, a test); each change is returned, for the caller to log.
#[derive(Debug)]
pub struct Health {
    /// True once a probe succeeded, false once marked down.
    up: AtomicBool,
    /// Whether any probe has succeeded yet (before that, it is not up).
    proven: AtomicBool,
    /// Lost client queries in a row that mark it down (0: losses never
    /// do); the probes' rule is in their [`Hysteresis`].
    fall: AtomicU32,
    /// A loss within this of a client answer proves nothing (a query's
    /// lifetime), ms.
    loss_window_ms: AtomicU64,
    evidence: Mutex<Evidence>,
    /// Whether the loss record holds anything (read without the lock per answer).
    has_losses: AtomicBool,
}

impl Health {
    /// A backend's health at the start. With health checks (`probed`) it is
    /// down until a probe succeeds; without, up from the start.
    pub fn new(probed: bool) -> Self {
        Health {
            up: AtomicBool::new(!probed),
            proven: AtomicBool::new(!probed),
            fall: AtomicU32::new(0),
            loss_window_ms: AtomicU64::new(0),
            evidence: Mutex::new(Evidence {
                probes: Hysteresis::new(0, 0, !probed),
                losses: LossRecord::default(),
            }),
            has_losses: AtomicBool::new(false),
        }
    }

    /// Sets the rule: `fall` failures in a row mark it down (probes, and
    /// lost client queries unless it answered one within `loss_window` — the
    /// client deadline — of the loss; 0: losses never do), `rise` probe
    /// successes mark it up.
    pub fn set_rule(&self, fall: u32, rise: u32, loss_window: Duration) {
        self.fall.store(fall, Relaxed);
        self.lock().probes.set_rule(rise, fall);
        let ms = u64::try_from(loss_window.as_millis()).unwrap_or(u64::MAX);
        self.loss_window_ms.store(ms, Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Evidence> {
        self.evidence.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether it is considered usable.
    pub fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }

    /// Whether a probe (or an operator) has ever found it up.
    pub fn is_proven(&self) -> bool {
        self.proven.load(Relaxed)
    }

    /// Marks it up or down (the probes' count starts again); returns the
    /// previous state.
    pub fn set_up(&self, up: bool) -> bool {
        let mut c = self.lock();
        c.probes.set(up);
        self.publish(up)
    }

    /// Publishes the state its hysteresis holds (under the lock); returns
    /// the previous one.
    fn publish(&self, up: bool) -> bool {
        if up {
            self.proven.store(true, Relaxed);
        }
        self.up.swap(up, Relaxed)
    }

    /// One probe result at `now`: the new state when it flips. A backend
    /// never found up yet goes up on its first success (it was only waiting
    /// to be heard from, not failing). A success does not count while it is
    /// held down for lost client queries.
    pub fn observe(&self, ok: bool, now: u64) -> Option<bool> {
        let mut c = self.lock();
        let flip = if ok && !self.is_proven() {
            c.probes.set(true);
            Some(true)
        } else if ok && !self.is_up() && !c.losses.probes_count(now) {
            None
        } else {
            c.probes.observe(ok)
        };
        if let Some(up) = flip {
            self.publish(up);
        }
        flip
    }

    /// A client query lost at `now` (see [`LossRecord::lost`]), its backend
    /// last heard from at `last_answer` (0: never): `Some(false)` when that
    /// marks it down. Nothing when losses do not count (`fall` 0) or it
    /// answered within the loss window ([`answered_within`]).
    pub fn lost(&self, now: u64, last_answer: u64) -> Option<bool> {
        let fall = self.fall.load(Relaxed);
        let window = Duration::from_millis(self.loss_window_ms.load(Relaxed));
        if fall == 0 || answered_within(last_answer, now, window) {
            return None;
        }
        let mut c = self.lock();
        let down = c.losses.lost(self.is_up(), now, fall);
        if down {
            c.probes.set(false);
            self.publish(false);
        }
        self.has_losses
            .store(c.losses != LossRecord::default(), Relaxed);
        down.then_some(false)
    }

    /// It answered a client query: its losses are forgiven.
    pub fn answered(&self) {
        if self.has_losses.load(Relaxed) {
            self.lock().losses.answered();
            self.has_losses.store(false, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_seq(up: bool, results: &[bool], fall: u32, rise: u32) -> Vec<bool> {
        let mut h = Hysteresis::new(rise, fall, up);
        let mut state = up;
        let mut out = Vec::new();
        for &ok in results {
            if let Some(s) = h.observe(ok) {
                state = s;
            }
            out.push(state);
        }
        out
    }

    #[test]
    fn falls_after_fall_failures_in_a_row() {
        assert_eq!(
            run_seq(true, &[false, false, false], 3, 2),
            vec![true, true, false]
        );
        // A success in between resets the count.
        assert_eq!(
            run_seq(true, &[false, false, true, false, false], 3, 2),
            vec![true; 5]
        );
    }

    #[test]
    fn rises_after_rise_successes_in_a_row() {
        assert_eq!(run_seq(false, &[true, true], 3, 2), vec![false, true]);
        assert_eq!(
            run_seq(false, &[true, false, true], 3, 2),
            vec![false, false, false]
        );
    }

    #[test]
    fn fall_losses_in_a_row_mark_down_and_a_client_answer_forgives_them() {
        let mut r = LossRecord::default();
        assert!(!r.lost(true, 1_000, 3));
        assert!(!r.lost(true, 1_100, 3));
        r.answered();
        assert!(!r.lost(true, 1_200, 3));
        assert!(!r.lost(true, 1_300, 3));
        assert!(r.lost(true, 1_400, 3), "the third in a row");
        assert_eq!(r.strikes, 1);
        // A first fall holds nothing: probes raise it as usual (a restart).
        assert!(r.probes_count(1_400));
        // Losses of a backend already down change nothing.
        assert!(!r.lost(false, 1_500, 3));
        assert_eq!(r.streak, 0);
    }

    #[test]
    fn a_relapse_falls_at_the_first_loss_and_is_held_longer_each_time() {
        let mut r = LossRecord::default();
        for t in 0..3 {
            r.lost(true, t, 3);
        }
        assert_eq!(r.strikes, 1);
        // Raised by its probes; the next lost client query marks it down again.
        assert!(r.lost(true, 5_000, 3), "on probation");
        assert_eq!(r.hold_until, 5_000 + HOLD_BASE_MS);
        assert!(!r.probes_count(5_000 + HOLD_BASE_MS - 1));
        assert!(r.probes_count(5_000 + HOLD_BASE_MS));
        assert!(r.lost(true, 20_000, 3));
        assert_eq!(r.hold_until, 20_000 + 2 * HOLD_BASE_MS);
        // It answers a client query again: forgiven, probes count at once.
        r.answered();
        assert!(r.probes_count(20_001));
        assert!(!r.lost(true, 30_000, 3), "a fresh streak");
    }

    #[test]
    fn losses_a_minute_apart_are_not_in_a_row() {
        let mut r = LossRecord::default();
        // Three losses minutes apart (a restart now and then): no fall.
        for t in [1_000, 200_000, 400_000] {
            assert!(!r.lost(true, t, 3));
        }
        // A first fall, raised by probes; a loss within the minute relapses...
        for t in [500_000, 500_100, 500_200] {
            r.lost(true, t, 3);
        }
        assert_eq!(r.strikes, 1);
        assert!(r.lost(true, 520_000, 3), "on probation");
        // ...one more than a minute after the last and its hold does not.
        let later = r.hold_until + LOSS_MEMORY_MS + 1;
        assert!(!r.lost(true, later, 3), "forgotten: a fresh streak");
        assert_eq!((r.strikes, r.streak), (0, 1));
    }

    #[test]
    fn holds_double_up_to_the_cap() {
        assert_eq!(hold_ms(0), 0);
        assert_eq!(hold_ms(1), 0);
        assert_eq!(hold_ms(2), HOLD_BASE_MS);
        assert_eq!(hold_ms(3), 2 * HOLD_BASE_MS);
        assert_eq!(hold_ms(7), HOLD_MAX_MS);
        assert_eq!(hold_ms(u32::MAX), HOLD_MAX_MS);
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        assert_eq!(run_seq(true, &[false], 0, 0), vec![false]);
    }

    #[test]
    fn a_timeout_counts_only_against_a_backend_silent_for_a_whole_query_lifetime() {
        let w = Duration::from_millis(1500);
        assert!(!answered_within(0, 10_000, w), "never answered");
        assert!(answered_within(9_000, 10_000, w));
        assert!(answered_within(8_500, 10_000, w), "at the edge");
        assert!(!answered_within(8_499, 10_000, w));
    }

    #[test]
    fn health_flips_are_returned_and_a_relapse_holds_probes_back() {
        let h = Health::new(true);
        h.set_rule(1, 1, Duration::from_millis(100));
        assert!(!h.is_up() && !h.is_proven(), "down until probed");
        assert_eq!(h.observe(true, 0), Some(true), "first success: up at once");
        assert_eq!(h.observe(true, 1), None, "no change, nothing to log");
        assert_eq!(h.lost(1_000, 0), Some(false), "fall 1: down");
        assert_eq!(
            h.observe(true, 1_001),
            Some(true),
            "a first fall holds nothing"
        );
        assert_eq!(h.lost(2_000, 0), Some(false), "on probation: down again");
        assert_eq!(h.observe(true, 2_000 + HOLD_BASE_MS - 1), None, "held");
        assert_eq!(h.observe(true, 2_000 + HOLD_BASE_MS), Some(true));
        h.answered();
        assert_eq!(h.lost(100_000, 99_950), None, "answered within the window");
        // Without a rule (fall 0) a loss never marks it down.
        let off = Health::new(false);
        assert_eq!(off.lost(1_000, 0), None);
        assert!(off.is_up());
    }
}
