//! Backend health: active probes and rise/fall hysteresis.
//!
//! [`Hysteresis::observe`] is the pure rule: `fall` failures in a row mark a
//! backend down, `rise` successes in a row mark it up, and a result that
//! agrees with the current state resets the count. The probe loop sends the
//! configured question to every backend each `interval_ms`, and again after
//! every `every_queries` client queries when that is set. Each flip is
//! logged once. Probes run on their own task, never in a client's path.
//!
//! Client queries are evidence too, kept apart from the probes'
//! ([`LossRecord`], pure): a client query a backend never answered by its
//! deadline — timed out, or rescued by another backend and silent since — is
//! a loss; `fall` losses in a row (no client answer in between; a probe's
//! success does not clear them) mark it down. A backend that answers probes
//! but loses client queries (response-rate limiting, an expired zone) would
//! otherwise be raised again by its probes at once: after a first such fall
//! one lost query marks it down again, and each relapse holds it down longer
//! before probes may raise it ([`hold_ms`]). A client answer forgives all.
//! Probes carry the LS's loop mark ([`super::loopmark`]).
//! Probes carry the LS's loop marker ([`crate::ls::loopmark`]).
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::backend::Backend;
use super::{Balancer, LsState};
use crate::dns::WireHeader;

/// Consecutive results against the current state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hysteresis {
    /// Results in a row that disagree with the current state.
    pub streak: u32,
}

impl Hysteresis {
    /// Feeds one result to a backend that is now `up`; returns the new
    /// state when it flips.
    pub fn observe(&mut self, up: bool, ok: bool, fall: u32, rise: u32) -> Option<bool> {
        if ok == up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if up { fall } else { rise };
        if self.streak >= needed.max(1) {
            self.streak = 0;
            Some(!up)
        } else {
            None
        }
    }
}

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

/// The first relapse's hold: how long a backend marked down again for lost
/// client queries stays down whatever its probes say.
pub const HOLD_BASE_MS: u64 = 10_000;
/// The longest hold (each relapse doubles it up to this).
pub const HOLD_MAX_MS: u64 = 300_000;

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
/// times are [`super::backend::clock_ms`] stamps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossRecord {
    /// Losses in a row, with no client answer between them.
    pub streak: u32,
    /// Falls for losses since the backend last answered a client query.
    pub strikes: u32,
    /// Until when probes may not raise it.
    pub hold_until: u64,
}

impl LossRecord {
    /// One client query lost at `now` by a backend that is `up`: true when
    /// it marks the backend down — `fall` losses in a row, or one while it is
    /// on probation (raised by probes after a fall for losses, no client
    /// answer since).
    pub fn lost(&mut self, up: bool, now: u64, fall: u32) -> bool {
        if !up {
            return false;
        }
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

/// A backend's health state: the probes' hysteresis and its client losses.
#[derive(Debug, Default)]
struct Cell {
    probes: Hysteresis,
    losses: LossRecord,
}

/// Per-backend health state, beside the backend's up/down flag.
#[derive(Debug, Default)]
pub struct HealthCell {
    cell: Mutex<Cell>,
    /// Whether `losses` holds anything (read without the lock per answer).
    has_losses: AtomicBool,
}

impl HealthCell {
    fn lock(&self) -> std::sync::MutexGuard<'_, Cell> {
        self.cell.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies one probe result to `b` under `p`, logging a flip. A backend
    /// never found up yet goes up on its first success (it was only waiting
    /// to be heard from, not failing). A success does not count while `b`
    /// is held down for lost client queries.
    pub fn record(&self, b: &Backend, ok: bool, p: &HealthPolicy, why: &str) {
        let mut c = self.lock();
        let now = super::backend::clock_ms(Instant::now());
        let flip = if ok && !b.is_proven() {
            c.probes = Hysteresis::default();
            Some(true)
        } else if ok && !b.is_up() && !c.losses.probes_count(now) {
            None
        } else {
            c.probes.observe(b.is_up(), ok, p.fall, p.rise)
        };
        drop(c);
        self.apply(b, flip, why);
    }

    /// A client query `b` lost (see [`LossRecord::lost`]) at `now`
    /// ([`super::backend::clock_ms`]), under `fall`.
    pub fn record_loss(&self, b: &Backend, now: u64, fall: u32) {
        let mut c = self.lock();
        let down = c.losses.lost(b.is_up(), now, fall);
        if down {
            c.probes = Hysteresis::default();
        }
        self.has_losses
            .store(c.losses != LossRecord::default(), Relaxed);
        drop(c);
        if down {
            self.apply(b, Some(false), "client queries lost");
        }
    }

    /// `b` answered a client query: its losses are forgiven.
    pub fn answered(&self) {
        if self.has_losses.load(Relaxed) {
            self.lock().losses.answered();
            self.has_losses.store(false, Relaxed);
        }
    }

    fn apply(&self, b: &Backend, flip: Option<bool>, why: &str) {
        match flip {
            Some(true) => {
                b.set_up(true);
                info!(backend = %b.name, addr = %b.addr, "backend up");
            }
            Some(false) => {
                b.set_up(false);
                warn!(backend = %b.name, addr = %b.addr, why, "backend down");
            }
            None => {}
        }
    }
}

/// One probe of `b`, waiting at most `wait`: true when it answered with
/// anything but SERVFAIL.
async fn probe(state: &LsState, b: &Backend, p: &HealthPolicy, wait: Duration) -> bool {
    let mut m = Message::query();
    m.add_query(Query::query(p.name.clone(), p.rtype));
    let Ok(question_end) = m.to_vec().map(|b| b.len()) else {
        return false;
    };
    // With EDNS, to carry the LS's mark: another LS that forwards it back
    // here gets REFUSED (a forwarding loop), not a fresh query each round.
    m.set_edns(hickory_proto::op::Edns::new());
    let Ok(mut bytes) = m.to_vec() else {
        return false;
    };
    state.mark.stamp(&mut bytes, question_end, false);
    let deadline = Instant::now() + wait;
    match state
        .pool
        .exchange(b.addr, &mut bytes, question_end, deadline, None, None)
        .await
    {
        Ok(resp) => {
            // A backend that speaks EDNS may get an OPT the client did not send.
            b.set_speaks_edns(super::loopmark::has_opt(&resp));
            WireHeader::read(&resp)
                .is_some_and(|h| ResponseCode::from_low(h.rcode()) != ResponseCode::ServFail)
        }
        Err(_) => false,
    }
}

/// Probes every backend of the current snapshot once, concurrently.
async fn sweep(balancer: &Balancer) {
    let state = balancer.state();
    let Some(p) = state.health.clone() else {
        return;
    };
    let probes = state.backends.iter().map(|b| {
        let state = state.clone();
        let p = p.clone();
        async move {
            let ok = probe(&state, b, &p, p.timeout).await;
            b.health.record(b, ok, &p, "probe failed");
        }
    });
    futures_util::future::join_all(probes).await;
}

/// How often the start-up round sends another probe to a backend that has
/// not answered yet (each probe still waits the configured timeout).
const FIRST_ROUND_EVERY: Duration = Duration::from_millis(100);

/// The start-up round: probes every backend not yet up, every
/// [`FIRST_ROUND_EVERY`], until each has answered a probe or `limit` has
/// passed. Returns the names of the backends still not up (empty when
/// health checks are off: then every backend is up from the start).
///
/// Serving only after this keeps a backend that is still starting from being
/// taken for one that is down (or, worse, from being skipped while the
/// others' negative answers are passed on).
pub async fn first_round(balancer: &Balancer, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut probes = futures_util::stream::FuturesUnordered::new();
    loop {
        let state = balancer.state();
        let Some(p) = state.health.clone() else {
            return Vec::new();
        };
        let late: Vec<Arc<Backend>> = state
            .backends
            .iter()
            .filter(|b| !b.is_up())
            .cloned()
            .collect();
        let now = Instant::now();
        if late.is_empty() || now >= deadline {
            return late.iter().map(|b| b.name.clone()).collect();
        }
        let wait = p.timeout.min(deadline - now);
        for b in late {
            let (state, p) = (state.clone(), p.clone());
            probes.push(async move {
                let ok = probe(&state, &b, &p, wait).await;
                // Failures are not held against a backend still starting.
                if ok {
                    b.health.record(&b, ok, &p, "probe failed");
                }
            });
        }
        let next = Instant::now() + FIRST_ROUND_EVERY;
        while Instant::now() < next {
            tokio::select! {
                Some(()) = futures_util::StreamExt::next(&mut probes), if !probes.is_empty() => {
                    if state.backends.iter().all(|b| b.is_up()) {
                        break;
                    }
                }
                () = tokio::time::sleep_until(next) => {}
            }
        }
    }
}

/// Wakes the probe loop after every `every_queries` client queries.
#[derive(Debug, Default)]
pub struct QueryTrigger {
    pub(crate) notify: Notify,
}

impl QueryTrigger {
    /// Called per client query with the running count.
    pub fn on_query(&self, count: u64, every: u64) {
        if every > 0 && count.is_multiple_of(every) {
            self.notify.notify_one();
        }
    }
}

/// Sweeps allowed in flight at once (probes slower than the interval overlap).
const MAX_SWEEPS: usize = 8;

/// The probe loop: a sweep every interval (and per query trigger) until
/// `token` is cancelled. Sweeps run on their own, so a probe that waits its
/// whole timeout never pushes the next round back.
pub async fn run(balancer: Arc<Balancer>, token: CancellationToken) {
    let interval_of = |b: &Balancer| {
        b.state()
            .health
            .as_ref()
            .map_or(Duration::from_secs(1), |p| p.interval)
    };
    let mut period = interval_of(&balancer);
    // The first round comes one interval after start, like every other.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweeps = tokio::task::JoinSet::new();
    loop {
        let start = tokio::select! {
            _ = token.cancelled() => break,
            _ = ticker.tick() => true,
            _ = balancer.trigger.notify.notified() => true,
            Some(_) = sweeps.join_next(), if !sweeps.is_empty() => {
                // Count rounds for observability (and tests waiting on a round).
                balancer.metrics().health_rounds.fetch_add(1, Relaxed);
                false
            }
        };
        if start && sweeps.len() < MAX_SWEEPS {
            let b = balancer.clone();
            sweeps.spawn(async move { sweep(&b).await });
        }
        // A reload may have changed the interval.
        let now = interval_of(&balancer);
        if now != period {
            period = now;
            ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
    }
    sweeps.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_seq(up: bool, results: &[bool], fall: u32, rise: u32) -> Vec<bool> {
        let mut h = Hysteresis::default();
        let mut state = up;
        let mut out = Vec::new();
        for &ok in results {
            if let Some(s) = h.observe(state, ok, fall, rise) {
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
}
