//! The pure decision of `dnslb anycast`: probe rounds in, announce or
//! withdraw out, with the hysteresis of `rise` and `fall` (no clock, no
//! sockets: the driver in `mod.rs` feeds it one [`RoundVerdict`] a round).
//!
//! A round that times out is ambiguous (one lost datagram, a stall) and is
//! only believed `fall` times in a row; a definite failure (the port refused,
//! `/ready` saying 503 because a stop began) withdraws at once. With the
//! defaults (a round every 200 ms, a 150 ms timeout, `fall` 2) a hung LS is
//! withdrawn at most 550 ms after its last good answer, a dead or stopping
//! one within one round.
use crate::hysteresis::Hysteresis;

/// What one probe round saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RoundVerdict {
    /// The LS answered the DNS query and `/ready` said 200.
    Good,
    /// Something timed out: no answer within the round's timeout.
    Lost,
    /// A definite no: a port refused, `/ready` not 200, no route to it.
    Down,
}

impl RoundVerdict {
    /// The worse of two parts of one round (the DNS query, `/ready`).
    pub fn and(self, other: RoundVerdict) -> RoundVerdict {
        self.max(other)
    }
}

/// The log line a round's parts (the DNS query's verdict, `/ready`'s) call
/// for, given the last round's (`last`, updated): said once when what
/// fails changes, and once when both are good again; `None` otherwise. A
/// probe that never gets an answer says why, not only "withdrawn".
pub fn round_note(
    last: &mut (RoundVerdict, RoundVerdict),
    now: (RoundVerdict, RoundVerdict),
) -> Option<&'static str> {
    if *last == now {
        return None;
    }
    *last = now;
    Some(match now {
        (RoundVerdict::Good, RoundVerdict::Good) => "the ls answers the probe again",
        (RoundVerdict::Lost, _) => {
            "probe: no answer to the DNS question within timeout_ms (a hung ls, a rule or block dropping it?)"
        }
        (RoundVerdict::Down, _) => "probe: the DNS question refused (nothing listens there?)",
        (RoundVerdict::Good, RoundVerdict::Lost) => {
            "probe: no answer from /ready within timeout_ms"
        }
        (RoundVerdict::Good, RoundVerdict::Down) => {
            "probe: /ready not 200 or refused (the ls is stopping?)"
        }
    })
}

/// A change to tell BIRD about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteChange {
    /// Enable the protocols: the address is announced.
    Announce,
    /// Disable them: the address is withdrawn.
    Withdraw,
}

/// Whether the address should be announced, from the rounds seen so far
/// (the house's one [`Hysteresis`]: a good round is a success, a lost or
/// definite failure a failure, and a definite one withdraws at once). It
/// starts withdrawn: an LS is announced only once it has answered.
#[derive(Debug, Clone)]
pub struct Announcer {
    state: Hysteresis,
}

impl Announcer {
    /// Withdrawn, announcing after `rise` good rounds in a row and
    /// withdrawing after `fall` lost ones (each at least 1).
    pub fn new(rise: u32, fall: u32) -> Self {
        Announcer {
            state: Hysteresis::new(rise, fall, false),
        }
    }

    /// Whether the address should be announced now.
    pub fn announced(&self) -> bool {
        self.state.is_up()
    }

    /// Takes one round's verdict; the change it makes, if any.
    pub fn observe(&mut self, v: RoundVerdict) -> Option<RouteChange> {
        let flip = match v {
            RoundVerdict::Good => self.state.observe(true),
            RoundVerdict::Lost => self.state.observe(false),
            RoundVerdict::Down => self.state.set(false),
        };
        flip.map(|up| {
            if up {
                RouteChange::Announce
            } else {
                RouteChange::Withdraw
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::RoundVerdict::{Down, Good, Lost};
    use super::*;

    #[test]
    fn a_failing_part_is_said_once_and_the_recovery_once() {
        let mut last = (Good, Good);
        assert_eq!(round_note(&mut last, (Good, Good)), None);
        let lost = round_note(&mut last, (Lost, Good)).unwrap();
        assert!(lost.contains("no answer to the DNS question"), "{lost}");
        assert_eq!(round_note(&mut last, (Lost, Good)), None, "once");
        let ready = round_note(&mut last, (Good, Down)).unwrap();
        assert!(ready.contains("/ready"), "{ready}");
        assert!(
            round_note(&mut last, (Good, Good))
                .unwrap()
                .contains("again")
        );
        assert_eq!(round_note(&mut last, (Good, Good)), None);
    }

    fn up(rise: u32, fall: u32) -> Announcer {
        let mut a = Announcer::new(rise, fall);
        for _ in 1..rise {
            assert_eq!(a.observe(Good), None);
        }
        assert_eq!(a.observe(Good), Some(RouteChange::Announce));
        a
    }

    #[test]
    fn starts_withdrawn_and_announces_after_rise_good_rounds_in_a_row() {
        let mut a = Announcer::new(3, 2);
        assert!(!a.announced());
        assert_eq!(a.observe(Good), None);
        assert_eq!(a.observe(Good), None);
        assert_eq!(a.observe(Lost), None);
        assert_eq!(a.observe(Good), None);
        assert_eq!(a.observe(Good), None);
        assert_eq!(a.observe(Good), Some(RouteChange::Announce));
        assert!(a.announced());
        assert_eq!(a.observe(Good), None);
    }

    #[test]
    fn one_lost_round_is_forgiven_fall_in_a_row_withdraw() {
        let mut a = up(3, 2);
        assert_eq!(a.observe(Lost), None);
        assert_eq!(a.observe(Good), None);
        assert_eq!(a.observe(Lost), None);
        assert!(a.announced());
        assert_eq!(a.observe(Lost), Some(RouteChange::Withdraw));
        assert!(!a.announced());
        assert_eq!(a.observe(Lost), None);
    }

    #[test]
    fn a_definite_failure_withdraws_at_once() {
        let mut a = up(3, 2);
        assert_eq!(a.observe(Down), Some(RouteChange::Withdraw));
        // Back only after `rise` good rounds again.
        assert_eq!(a.observe(Good), None);
        assert_eq!(a.observe(Good), None);
        assert_eq!(a.observe(Good), Some(RouteChange::Announce));
    }

    #[test]
    fn a_round_is_as_bad_as_its_worst_part() {
        assert_eq!(Good.and(Good), Good);
        assert_eq!(Good.and(Lost), Lost);
        assert_eq!(Lost.and(Down), Down);
        assert_eq!(Down.and(Good), Down);
    }

    /// A controlled clock: rounds start every `interval` ms and end by
    /// `timeout`; the LS hangs at `fail_at` (every round starting after it
    /// times out). When the withdrawal is decided, in ms.
    fn hung_withdrawn_at(interval: u64, timeout: u64, fall: u32, fail_at: u64) -> u64 {
        let mut a = up(1, fall);
        let mut start = 0;
        loop {
            start += interval;
            let (v, end) = if start < fail_at {
                (Good, start + 1)
            } else {
                (Lost, start + timeout)
            };
            if a.observe(v) == Some(RouteChange::Withdraw) {
                return end;
            }
            assert!(start < fail_at + 10_000, "never withdrawn");
        }
    }

    #[test]
    fn with_the_defaults_a_hung_ls_is_withdrawn_within_a_second() {
        let d = crate::config::AnycastConfig::default();
        for fail_at in (1..2_000).step_by(7) {
            let at = hung_withdrawn_at(d.interval_ms, d.timeout_ms, d.fall, fail_at);
            assert!(at > fail_at, "withdrawn before it failed");
            assert!(at - fail_at <= 600, "{} ms after the failure", at - fail_at);
        }
    }
}
