//! When each target is probed (pure, the clock given as milliseconds since
//! the checker started): the first probe at once (the first round, which
//! decides the first states), then on the interval's grid from a jittered
//! offset within the interval (a probe started late, behind the
//! in-flight bound, does not shift the grid; slots missed are skipped), one
//! probe per target at a time and at most `max_in_flight` at once, that
//! bound from [`in_flight_bound`].
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The jittered phase of a target probed every `interval` ms, from a random
/// `draw`: within `[0, interval)` (its probes after the first are at
/// `phase + k * interval`).
#[must_use]
pub(super) fn first_due(interval: u64, draw: u64) -> u64 {
    draw % interval.max(1)
}

/// The next probe's time after the one due at `due` finished at `now`: the
/// first point of the grid `due + k * interval` (k >= 1) after `now`.
#[must_use]
pub(super) fn next_due(due: u64, interval: u64, now: u64) -> u64 {
    let interval = interval.max(1);
    let next = due.saturating_add(interval);
    if next > now {
        return next;
    }
    let missed = (now - due) / interval;
    due.saturating_add(interval.saturating_mul(missed + 1))
}

/// Room above the checks expected in flight: jitter bunches probes, and a
/// few fds are cheap.
const IN_FLIGHT_HEADROOM: usize = 64;

/// The bound on probes in flight for targets probed every `interval_ms`
/// with a timeout of `timeout_ms` (pairs of each probed target): the checks
/// due per second times their timeout, i.e. how many would be in flight if
/// every probe ran to its timeout (at most one per target), plus
/// [`IN_FLIGHT_HEADROOM`]; at most `fd_budget` (each probe holds a
/// descriptor), at least 1. Below it, no target waits behind the bound
/// however many of its peers time out.
#[must_use]
pub fn in_flight_bound(checks: impl IntoIterator<Item = (u64, u64)>, fd_budget: usize) -> usize {
    let mut wanted_ms_per_s: u128 = 0;
    let mut targets: usize = 0;
    for (interval_ms, timeout_ms) in checks {
        targets += 1;
        // The share of its time one target spends in flight, in 1/1000s.
        let busy = u128::from(timeout_ms.min(interval_ms)) * 1000 / u128::from(interval_ms.max(1));
        wanted_ms_per_s += busy;
    }
    let wanted = usize::try_from(wanted_ms_per_s.div_ceil(1000)).unwrap_or(usize::MAX);
    wanted
        .saturating_add(IN_FLIGHT_HEADROOM)
        .min(targets.max(1))
        .min(fd_budget)
        .max(1)
}

/// The probe plan of every target: the next due time of each target not in
/// flight, and the count in flight.
#[derive(Debug)]
pub(super) struct ProbePlan {
    /// Targets waiting, earliest first: (due ms, target).
    waiting: BinaryHeap<Reverse<(u64, usize)>>,
    /// Each target's interval (ms) and the due time of its last start.
    interval: Vec<u64>,
    started_due: Vec<u64>,
    /// Each target's jittered phase, until its first probe (at 0) ends.
    phase: Vec<Option<u64>>,
    in_flight: usize,
    max_in_flight: usize,
}

impl ProbePlan {
    /// A plan for targets probed every `intervals[i]` ms (`None`: never
    /// probed): each first probe at 0, the next ones on the grid from
    /// `first_due(interval, draw())`.
    pub(super) fn new(
        intervals: &[Option<u64>],
        max_in_flight: usize,
        mut draw: impl FnMut() -> u64,
    ) -> Self {
        let waiting = intervals
            .iter()
            .enumerate()
            .filter_map(|(i, iv)| iv.map(|_| Reverse((0, i))))
            .collect();
        Self {
            waiting,
            interval: intervals.iter().map(|iv| iv.unwrap_or(0)).collect(),
            started_due: vec![0; intervals.len()],
            phase: intervals
                .iter()
                .map(|iv| iv.map(|iv| first_due(iv, draw())))
                .collect(),
            in_flight: 0,
            max_in_flight: max_in_flight.max(1),
        }
    }

    /// A target due at `now` to start now, when the in-flight bound allows:
    /// it counts as in flight until [`finished`](Self::finished).
    pub(super) fn take_due(&mut self, now: u64) -> Option<usize> {
        if self.in_flight >= self.max_in_flight {
            return None;
        }
        let &Reverse((due, i)) = self.waiting.peek()?;
        if due > now {
            return None;
        }
        self.waiting.pop();
        self.started_due[i] = due;
        self.in_flight += 1;
        Some(i)
    }

    /// Target `i`'s probe ended at `now`: it waits for its next grid point.
    pub(super) fn finished(&mut self, i: usize, now: u64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let (Some(&due), Some(&iv)) = (self.started_due.get(i), self.interval.get(i)) else {
            return;
        };
        let next = match self.phase.get_mut(i).and_then(Option::take) {
            // After the first probe: the grid from the target's phase.
            Some(phase) if phase >= now => phase,
            Some(phase) => next_due(phase, iv, now),
            None => next_due(due, iv, now),
        };
        self.waiting.push(Reverse((next, i)));
    }

    /// When the next probe can start: the earliest due time, or `None` while
    /// the in-flight bound is reached (a probe's end frees a place) or
    /// nothing waits.
    #[must_use]
    pub(super) fn next_wake(&self) -> Option<u64> {
        if self.in_flight >= self.max_in_flight {
            return None;
        }
        self.waiting.peek().map(|&Reverse((due, _))| due)
    }
}

#[cfg(test)]
mod tests {
    use super::{ProbePlan, first_due, in_flight_bound, next_due};

    #[test]
    fn the_bound_is_the_checks_due_per_second_times_their_timeout() {
        // 40,000 targets every second, 500 ms timeouts: 20,000 if all time
        // out, plus the headroom.
        let many = std::iter::repeat_n((1_000, 500), 40_000);
        assert_eq!(in_flight_bound(many.clone(), 1_000_000), 20_064);
        // The fds allowed cap it.
        assert_eq!(in_flight_bound(many, 4_984), 4_984);
        // A target is in flight at most once, whatever its timeout.
        assert_eq!(in_flight_bound([(100, 5_000); 3], 1_000), 3);
        // Mixed: 1,000 x 0.2 + 100 x 1 = 300.
        let mixed =
            std::iter::repeat_n((5_000, 1_000), 1_000).chain(std::iter::repeat_n((250, 250), 100));
        assert_eq!(in_flight_bound(mixed, 1_000_000), 364);
        assert_eq!(in_flight_bound([], 0), 1);
    }

    #[test]
    fn the_phase_is_jittered_within_the_interval() {
        for draw in [0, 1, 99, 100, 12_345, u64::MAX] {
            assert!(first_due(100, draw) < 100);
        }
        assert_eq!(first_due(100, 250), 50);
        assert_eq!(first_due(0, 7), 0);
    }

    #[test]
    fn next_probes_keep_the_grid_and_skip_missed_slots() {
        assert_eq!(next_due(30, 100, 60), 130);
        assert_eq!(next_due(30, 100, 130), 230);
        assert_eq!(next_due(30, 100, 345), 430);
    }

    #[test]
    fn probes_start_when_due_one_per_target() {
        let draws = [10u64, 40];
        let mut d = draws.iter().copied();
        let mut p = ProbePlan::new(&[Some(100), Some(100)], 8, || d.next().unwrap_or(0));
        // The first round: every target at once.
        assert_eq!(p.next_wake(), Some(0));
        assert_eq!(p.take_due(0), Some(0));
        assert_eq!(p.take_due(0), Some(1));
        assert_eq!(p.take_due(0), None);
        // Target 0 is in flight: not started again however late it runs.
        assert_eq!(p.take_due(500), None);
        // Then each on the grid of its jittered phase (10 and 40).
        p.finished(0, 5);
        assert_eq!(p.next_wake(), Some(10));
        p.finished(1, 70);
        assert_eq!(p.take_due(9), None);
        assert_eq!(p.take_due(10), Some(0));
        assert_eq!(p.next_wake(), Some(140));
        p.finished(0, 60);
        assert_eq!(p.next_wake(), Some(110));
        assert_eq!(p.take_due(110), Some(0));
        assert_eq!(p.take_due(140), Some(1));
    }

    #[test]
    fn the_in_flight_bound_holds_probes_back_without_moving_the_grid() {
        let mut p = ProbePlan::new(&[Some(100); 3], 2, || 0);
        assert_eq!(p.take_due(0), Some(0));
        assert_eq!(p.take_due(0), Some(1));
        assert_eq!(p.take_due(0), None);
        assert_eq!(p.next_wake(), None);
        p.finished(0, 20);
        assert_eq!(p.take_due(20), Some(2));
        p.finished(2, 30);
        // Target 2 was due at 0 and started at 20: its next is 100, not 120.
        p.finished(1, 30);
        assert_eq!(p.take_due(100), Some(0));
        assert_eq!(p.take_due(100), Some(1));
        assert_eq!(p.take_due(100), None);
        p.finished(0, 101);
        assert_eq!(p.take_due(100), Some(2));
    }

    #[test]
    fn unprobed_targets_are_never_due() {
        let mut p = ProbePlan::new(&[None, Some(50)], 4, || 0);
        assert_eq!(p.take_due(1_000), Some(1));
        assert_eq!(p.take_due(1_000), None);
        assert_eq!(p.next_wake(), None);
    }
}
