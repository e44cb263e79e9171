//! Back-off for receive loops whose socket keeps failing.
//!
//! A UDP receive error is usually transient (an ICMP error queued on the
//! socket), so the first one is retried at once. One that persists must not
//! spin a core: each further error in a row doubles the pause, from
//! [`RecvBackoff::FIRST`] up to [`RecvBackoff::MAX`], and the next successful
//! receive resets it. The rule is pure; the loops do the sleeping (and race
//! it against their cancellation token).
use std::time::Duration;

/// Consecutive receive errors of one loop and the pause they call for.
#[derive(Debug, Default, Clone)]
pub(crate) struct RecvBackoff {
    /// Errors in a row since the last success.
    failures: u32,
}

impl RecvBackoff {
    /// The pause after the second error in a row.
    pub(crate) const FIRST: Duration = Duration::from_millis(1);
    /// The longest pause.
    pub(crate) const MAX: Duration = Duration::from_millis(100);

    /// Records one error; returns how long to pause before receiving again
    /// (`None`: retry at once, the error may have been a one-off).
    pub(crate) fn failure(&mut self) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        let doublings = self.failures.checked_sub(2)?;
        // 2^7 ms already passes MAX; capping the shift keeps it from overflowing.
        let pause = Self::FIRST.saturating_mul(1 << doublings.min(16));
        Some(pause.min(Self::MAX))
    }

    /// Records a successful receive: the next error is a one-off again.
    pub(crate) fn success(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pauses(b: &mut RecvBackoff, n: usize) -> Vec<Option<Duration>> {
        (0..n).map(|_| b.failure()).collect()
    }

    #[test]
    fn first_error_is_retried_at_once_then_pauses_double_up_to_the_cap() {
        let ms = |n| Some(Duration::from_millis(n));
        let mut b = RecvBackoff::default();
        assert_eq!(
            pauses(&mut b, 10),
            vec![
                None,
                ms(1),
                ms(2),
                ms(4),
                ms(8),
                ms(16),
                ms(32),
                ms(64),
                ms(100),
                ms(100)
            ]
        );
    }

    #[test]
    fn a_persistent_error_stays_at_the_cap_without_overflow() {
        let mut b = RecvBackoff::default();
        let last = (0..100_000).filter_map(|_| b.failure()).last();
        assert_eq!(last, Some(RecvBackoff::MAX));
        b.failures = u32::MAX - 1;
        assert_eq!(b.failure(), Some(RecvBackoff::MAX));
        assert_eq!(b.failure(), Some(RecvBackoff::MAX));
    }

    #[test]
    fn success_resets() {
        let mut b = RecvBackoff::default();
        let _ = pauses(&mut b, 5);
        b.success();
        assert_eq!(b.failure(), None);
        assert_eq!(b.failure(), Some(RecvBackoff::FIRST));
    }
}
