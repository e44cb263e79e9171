//! The rise/fall hysteresis of one endpoint (pure): every endpoint starts up
//! (fail-open until its first probe ends), takes its first probe's result as
//! its state (as gdnsd's first round of monitoring), and from then on
//! changes state only after `fall` failures, or `rise` successes, in a row.

/// One endpoint's state: up or down, and how many results in a row have
/// disagreed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EndpointHealth {
    /// Whether the endpoint is up (answers may list it).
    pub(super) up: bool,
    /// Results in a row against `up` (failures while up, successes while down).
    pub(super) streak: u32,
    /// Whether a probe has ended yet (before: up by default).
    pub(super) probed: bool,
}

impl EndpointHealth {
    /// The state before the first probe: up (fail-open).
    pub(super) const START: Self = Self {
        up: true,
        streak: 0,
        probed: false,
    };

    /// The state after one probe's result (`ok`): the first result is the
    /// state; then `rise` and `fall` (0 counts as 1) apply.
    #[must_use]
    pub(super) fn step(self, ok: bool, rise: u32, fall: u32) -> Self {
        if ok == self.up || !self.probed {
            return Self {
                up: ok,
                streak: 0,
                probed: true,
            };
        }
        let need = if self.up { fall } else { rise }.max(1);
        let streak = self.streak.saturating_add(1);
        if streak >= need {
            Self {
                up: ok,
                streak: 0,
                probed: true,
            }
        } else {
            Self {
                up: self.up,
                streak,
                probed: true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EndpointHealth;

    /// The states after each of `results`, from an endpoint whose first
    /// probe found it up.
    fn run(results: &[bool], rise: u32, fall: u32) -> Vec<bool> {
        let mut h = EndpointHealth::START.step(true, rise, fall);
        results
            .iter()
            .map(|&ok| {
                h = h.step(ok, rise, fall);
                h.up
            })
            .collect()
    }

    #[test]
    fn the_first_result_is_the_state_whatever_rise_and_fall() {
        const { assert!(EndpointHealth::START.up, "up until probed") };
        let down = EndpointHealth::START.step(false, 2, 3);
        assert!(!down.up && down.probed);
        assert!(!down.step(true, 2, 3).up, "then rise applies");
        assert!(down.step(true, 2, 3).step(true, 2, 3).up);
        let up = EndpointHealth::START.step(true, 2, 3);
        assert!(up.up && up.probed);
        assert!(up.step(false, 2, 3).up, "then fall applies");
    }

    #[test]
    fn starts_up() {
        assert_eq!(run(&[true, true], 2, 3), [true, true]);
        assert_eq!(run(&[false], 1, 2), [true], "one failure short of fall");
    }

    #[test]
    fn goes_down_after_fall_failures_in_a_row() {
        assert_eq!(run(&[false, false, false], 2, 3), [true, true, false]);
    }

    #[test]
    fn a_success_resets_the_failures() {
        assert_eq!(
            run(&[false, false, true, false, false, false], 2, 3),
            [true, true, true, true, true, false]
        );
    }

    #[test]
    fn comes_back_after_rise_successes_in_a_row() {
        let r = run(&[false, true, false, true, true], 2, 1);
        assert_eq!(r, [false, false, false, false, true]);
    }

    #[test]
    fn zero_counts_as_one() {
        assert_eq!(run(&[false, true], 0, 0), [false, true]);
    }
}
