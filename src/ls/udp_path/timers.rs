//! Which of a fast-path worker's timers are live (the worker fires them): one heap ([`Timers`]) for every
//! hedge, per-try and deadline timer of its flights and the two timers of
//! each late entry (its query's deadline, the end of its grace), and the
//! timer of each query a `delay_ms` rule holds. An entry is never removed from
//! the heap when its flight ends or moves its timer: it goes stale, and is
//! skipped when it reaches the top. The earliest live one is the timeout
//! of the worker's next wait ([`next_live`]): no other timer is armed.
use std::cmp::Reverse;

use tokio::time::Instant;

use super::flight::{Delayed, Flight, Late, Slab, TimerFor, Timers};

/// Whether the timer entry (`at`, `what`) is still armed: its flight or late
/// entry exists and is waiting for exactly `at` (a slot reused since, or a
/// timer moved, leaves a stale entry behind in the heap).
pub(super) fn timer_live(
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
pub(super) fn next_live(
    timers: &mut Timers,
    live: impl Fn(Instant, TimerFor) -> bool,
) -> Option<Instant> {
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
