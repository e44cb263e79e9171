//! A fast-path worker's timers, fired: one heap ([`Timers`]) for every
//! hedge, per-try and deadline timer of its flights and the two timers of
//! each late entry (its query's deadline, the end of its grace). An entry is never removed from
//! the heap when its flight ends or moves its timer: it goes stale, and is
//! skipped when it reaches the top.
use std::cmp::Reverse;

use tokio::time::Instant;

use super::flight::{Delayed, Flight, Late, Slab, TimerFor, Timers};
use super::worker::Worker;
use crate::ls::upstream::ids::IdUse;

impl Worker {
    /// Runs every timer due at `now`.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, what))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !timer_live((&self.flights, &self.late, &self.delayed), at, what) {
                continue;
            }
            match what {
                TimerFor::Flight(idx) => {
                    if let Some(f) = self.flights.get_mut(idx) {
                        f.timer_at = None;
                    }
                    self.drive(idx, now);
                }
                TimerFor::Delayed(di) => {
                    if let Some(d) = self.delayed.remove(di) {
                        self.go_on(d);
                    }
                }
                TimerFor::Late(li) => {
                    let Some(l) = self.late.get_mut(li) else {
                        continue;
                    };
                    if l.entry.expire(now) {
                        // At its deadline: no longer in flight; forgotten after the grace.
                        let again = l.entry.forget_at();
                        l.timer_at = again;
                        self.timers.push(Reverse((again, TimerFor::Late(li))));
                        continue;
                    }
                    if let Some(mut l) = self.late.remove(li) {
                        l.entry.settle(now);
                        if let Some(u) = self.ups.get_mut(l.sock) {
                            u.ids.set(l.id, IdUse::Free);
                        }
                    }
                }
            }
        }
    }

    /// When the next live timer is due. Timers of flights that have ended
    /// (most hedge timers: the answer came first) stay in the heap until
    /// they reach its top; they are dropped here, so the worker never wakes
    /// up only to find them stale (at moderate rates that was a wake-up per
    /// millisecond, as many as one per ten queries).
    pub(super) fn next_timer(&mut self) -> Option<Instant> {
        let slabs = (&self.flights, &self.late, &self.delayed);
        next_live(&mut self.timers, |at, what| timer_live(slabs, at, what))
    }
}

/// Whether the timer entry (`at`, `what`) is still armed: its flight or late
/// entry exists and is waiting for exactly `at` (a slot reused since, or a
/// timer moved, leaves a stale entry behind in the heap).
fn timer_live(
    (flights, late, delayed): (&Slab<Flight>, &Slab<Late>, &Slab<Delayed>),
    at: Instant,
    what: TimerFor,
) -> bool {
    match what {
        TimerFor::Flight(idx) => flights.get(idx).is_some_and(|f| f.timer_at == Some(at)),
        TimerFor::Late(li) => late.get(li).is_some_and(|l| l.timer_at == at),
        TimerFor::Delayed(di) => delayed.get(di).is_some_and(|d| d.at == at),
    }
}

/// The earliest timer of `timers` that `live` accepts, dropping every
/// earlier one (stale: its flight ended, or moved its timer).
fn next_live(timers: &mut Timers, live: impl Fn(Instant, TimerFor) -> bool) -> Option<Instant> {
    while let Some(Reverse((at, what))) = timers.peek().copied() {
        if live(at, what) {
            return Some(at);
        }
        timers.pop();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_next_wake_up_is_the_earliest_live_timer_and_stale_ones_are_dropped() {
        let t0 = Instant::now();
        let mut timers = Timers::new();
        // Flights 0..4 armed at 1..5 ms; 0, 1 and 3 have ended since.
        for i in 0..5u32 {
            timers.push(Reverse((t0 + (i + 1) * MS, TimerFor::Flight(i))));
        }
        timers.push(Reverse((t0 + 9 * MS, TimerFor::Late(0))));
        let ended = [0u32, 1, 3];
        let live = |_, what| match what {
            TimerFor::Flight(i) => !ended.contains(&i),
            TimerFor::Late(_) | TimerFor::Delayed(_) => true,
        };
        assert_eq!(next_live(&mut timers, live), Some(t0 + 3 * MS));
        assert_eq!(timers.len(), 4, "the two stale ones before it dropped");
        // Flight 2 fires: the one behind it is stale, then a late entry is next.
        timers.pop();
        assert_eq!(next_live(&mut timers, live), Some(t0 + 5 * MS));
        timers.pop();
        assert_eq!(next_live(&mut timers, live), Some(t0 + 9 * MS));
        // Nothing live: no wake-up at all.
        assert_eq!(next_live(&mut timers, |_, _| false), None);
        assert!(timers.is_empty());
    }
}
