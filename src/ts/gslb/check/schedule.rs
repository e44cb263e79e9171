//! When each target is probed (pure, the clock given as milliseconds since
//! the checker started): the first probe at a jittered offset within the
//! interval, then on the interval's grid (a probe started late, behind the
//! in-flight bound, does not shift the grid; slots missed are skipped), one
//! probe per target at a time and at most `max_in_flight` at once.
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The first probe's time for a target probed every `interval` ms, from a
/// random `draw`: within `[0, interval)`.
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

/// The probe plan of every target: the next due time of each target not in
/// flight, and the count in flight.
#[derive(Debug)]
pub(super) struct ProbePlan {
    /// Targets waiting, earliest first: (due ms, target).
    waiting: BinaryHeap<Reverse<(u64, usize)>>,
    /// Each target's interval (ms) and the due time of its last start.
    interval: Vec<u64>,
    started_due: Vec<u64>,
    in_flight: usize,
    max_in_flight: usize,
}

impl ProbePlan {
    /// A plan for targets probed every `intervals[i]` ms (`None`: never
    /// probed), each first probe at `first_due(interval, draw())`.
    pub(super) fn new(
        intervals: &[Option<u64>],
        max_in_flight: usize,
        mut draw: impl FnMut() -> u64,
    ) -> Self {
        let waiting = intervals
            .iter()
            .enumerate()
            .filter_map(|(i, iv)| iv.map(|iv| Reverse((first_due(iv, draw()), i))))
            .collect();
        Self {
            waiting,
            interval: intervals.iter().map(|iv| iv.unwrap_or(0)).collect(),
            started_due: vec![0; intervals.len()],
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
        self.waiting.push(Reverse((next_due(due, iv, now), i)));
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
    use super::{ProbePlan, first_due, next_due};

    #[test]
    fn the_first_probe_is_jittered_within_the_interval() {
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
        assert_eq!(p.next_wake(), Some(10));
        assert_eq!(p.take_due(9), None);
        assert_eq!(p.take_due(10), Some(0));
        assert_eq!(p.take_due(10), None);
        assert_eq!(p.next_wake(), Some(40));
        assert_eq!(p.take_due(50), Some(1));
        // Target 0 is in flight: not started again however late it runs.
        assert_eq!(p.take_due(500), None);
        p.finished(0, 60);
        assert_eq!(p.next_wake(), Some(110));
        p.finished(1, 70);
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
