//! The rise/fall hysteresis of one endpoint (pure): every endpoint starts up
//! (fail-open at start) and changes state only after `fall` failures, or
//! `rise` successes, in a row.

/// One endpoint's state: up or down, and how many results in a row have
/// disagreed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EndpointHealth {
    /// Whether the endpoint is up (answers may list it).
    pub(super) up: bool,
    /// Results in a row against `up` (failures while up, successes while down).
    pub(super) streak: u32,
}

impl EndpointHealth {
    /// The state before the first probe: up (fail-open).
    pub(super) const START: Self = Self {
        up: true,
        streak: 0,
    };

    /// The state after one probe's result (`ok`); `rise` and `fall` of 0 count as 1.
    #[must_use]
    pub(super) fn step(self, ok: bool, rise: u32, fall: u32) -> Self {
        if ok == self.up {
            return Self {
                up: self.up,
                streak: 0,
            };
        }
        let need = if self.up { fall } else { rise }.max(1);
        let streak = self.streak.saturating_add(1);
        if streak >= need {
            Self { up: ok, streak: 0 }
        } else {
            Self {
                up: self.up,
                streak,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EndpointHealth;

    fn run(results: &[bool], rise: u32, fall: u32) -> Vec<bool> {
        let mut h = EndpointHealth::START;
        results
            .iter()
            .map(|&ok| {
                h = h.step(ok, rise, fall);
                h.up
            })
            .collect()
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
