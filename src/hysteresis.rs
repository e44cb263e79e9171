//! The rise/fall rule of a health check (pure, no clock): a state, up or
//! down, that changes only after `fall` failures in a row (while up) or
//! `rise` successes in a row (while down). A result that agrees with the
//! state starts the count again, and so does every change of state; a
//! threshold of 0 counts as 1. One rule for every prober of the house: the
//! LS's backend probes ([`crate::ls::backend::Health`]), the TS's endpoint
//! checker of service answers (whose first result is the state:
//! [`Hysteresis::first_result_is_state`]) and `dnslb anycast`'s announcer
//! (whose definite failure withdraws at once: [`Hysteresis::set`]).

/// One prober's state and the results in a row against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hysteresis {
    /// Successes in a row that raise it.
    rise: u32,
    /// Failures in a row that bring it down.
    fall: u32,
    /// The state.
    up: bool,
    /// Results in a row against `up` (failures while up, successes while down).
    streak: u32,
    /// The next result is the state, whatever `rise` and `fall`.
    first_is_state: bool,
}

impl Hysteresis {
    /// A state `start_up`, moved by `rise` successes or `fall` failures in a
    /// row.
    #[must_use]
    pub const fn new(rise: u32, fall: u32, start_up: bool) -> Self {
        Hysteresis {
            rise,
            fall,
            up: start_up,
            streak: 0,
            first_is_state: false,
        }
    }

    /// The same, its first result taken as its state at once (as gdnsd's
    /// first round of monitoring); `rise` and `fall` apply from then on.
    #[must_use]
    pub const fn first_result_is_state(mut self) -> Self {
        self.first_is_state = true;
        self
    }

    /// Whether it is up.
    #[must_use]
    pub const fn is_up(&self) -> bool {
        self.up
    }

    /// Whether it still waits for a first result that is its state
    /// ([`Hysteresis::first_result_is_state`]).
    #[must_use]
    pub const fn awaits_first(&self) -> bool {
        self.first_is_state
    }

    /// A new rule; the state and the count stay.
    pub fn set_rule(&mut self, rise: u32, fall: u32) {
        self.rise = rise;
        self.fall = fall;
    }

    /// One result (`ok`: a success): the new state when it changes.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if self.first_is_state {
            return self.set(ok);
        }
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak = self.streak.saturating_add(1);
        let needed = if self.up { self.fall } else { self.rise };
        if self.streak < needed.max(1) {
            return None;
        }
        self.set(ok)
    }

    /// The state is `up` now, whatever the count (a definite failure, an
    /// operator, evidence of another kind): the count starts again. The new
    /// state when it changes.
    pub fn set(&mut self, up: bool) -> Option<bool> {
        self.streak = 0;
        self.first_is_state = false;
        let was = std::mem::replace(&mut self.up, up);
        (was != up).then_some(up)
    }
}

#[cfg(test)]
mod tests {
    use super::Hysteresis;

    /// The states after each of `results`, from `h`.
    fn run(mut h: Hysteresis, results: &[bool]) -> Vec<bool> {
        results
            .iter()
            .map(|&ok| {
                h.observe(ok);
                h.is_up()
            })
            .collect()
    }

    #[test]
    fn falls_after_fall_failures_in_a_row() {
        let h = Hysteresis::new(2, 3, true);
        assert_eq!(run(h, &[false, false, false]), [true, true, false]);
    }

    #[test]
    fn rises_after_rise_successes_in_a_row() {
        let h = Hysteresis::new(2, 3, false);
        assert_eq!(run(h, &[true, true]), [false, true]);
    }

    #[test]
    fn a_result_that_agrees_with_the_state_starts_the_count_again() {
        let up = Hysteresis::new(2, 3, true);
        assert_eq!(
            run(up, &[false, false, true, false, false, false]),
            [true, true, true, true, true, false]
        );
        let down = Hysteresis::new(2, 3, false);
        assert_eq!(run(down, &[true, false, true]), [false, false, false]);
    }

    #[test]
    fn a_flap_never_changes_the_state_until_a_run_is_long_enough() {
        let h = Hysteresis::new(2, 2, true);
        let flap = [false, true, false, true, false, true, false, false];
        assert_eq!(
            run(h, &flap),
            [true, true, true, true, true, true, true, false]
        );
    }

    #[test]
    fn a_change_starts_the_count_again() {
        let mut h = Hysteresis::new(2, 2, true);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), Some(false));
        // Down now: one success is not yet `rise`.
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(true), Some(true));
        assert_eq!(h.observe(true), None, "no change, nothing returned");
    }

    #[test]
    fn a_rise_and_fall_of_one_or_zero_follow_every_result() {
        for n in [0, 1] {
            let h = Hysteresis::new(n, n, true);
            assert_eq!(
                run(h, &[false, true, true, false]),
                [false, true, true, false]
            );
        }
    }

    #[test]
    fn set_changes_the_state_at_once_and_starts_the_count_again() {
        let mut h = Hysteresis::new(3, 2, true);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.set(false), Some(false));
        assert_eq!(h.set(false), None, "no change");
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(true), None);
        h.set(false);
        assert_eq!(h.observe(true), None, "the count started again");
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(true), Some(true));
    }

    #[test]
    fn a_new_rule_keeps_the_state_and_the_count() {
        let mut h = Hysteresis::new(1, 3, true);
        h.observe(false);
        h.set_rule(1, 2);
        assert_eq!(h.observe(false), Some(false));
    }

    #[test]
    fn the_first_result_is_the_state_whatever_rise_and_fall() {
        let start = Hysteresis::new(2, 3, true).first_result_is_state();
        assert!(start.is_up() && start.awaits_first(), "up until probed");
        let mut down = start;
        assert_eq!(down.observe(false), Some(false));
        assert!(!down.awaits_first());
        assert_eq!(down.observe(true), None, "then rise applies");
        assert_eq!(down.observe(true), Some(true));
        let mut up = start;
        assert_eq!(up.observe(true), None, "up already: no change");
        assert!(!up.awaits_first());
        assert_eq!(up.observe(false), None, "then fall applies");
    }

    #[test]
    fn first_result_then_as_ever() {
        // From an endpoint whose first probe found it up.
        let first_up = |rise, fall| {
            let mut h = Hysteresis::new(rise, fall, true).first_result_is_state();
            h.observe(true);
            h
        };
        assert_eq!(run(first_up(2, 3), &[true, true]), [true, true]);
        assert_eq!(run(first_up(1, 2), &[false]), [true], "one short of fall");
        assert_eq!(
            run(first_up(2, 1), &[false, true, false, true, true]),
            [false, false, false, false, true]
        );
        assert_eq!(run(first_up(0, 0), &[false, true]), [false, true]);
    }
}
