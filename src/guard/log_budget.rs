//! The budget of a log that a flood could turn into a line per packet: at
//! most so many lines per interval, the rest counted and summed up when the
//! interval is over ([`LimitLog`]). The rate limiter's started/stopped lines,
//! the LS's refused NOTIFYs and the TS's TSIG refusals each keep within one.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A kind of rate-limit line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A client's episode started.
    Started,
    /// A client's episode ended.
    Stopped,
}

/// Lines a [`LimitLog`] held back in an interval, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Suppressed {
    /// Episodes started.
    pub started: u64,
    /// Episodes ended.
    pub stopped: u64,
}

/// The rate-limit log's budget: at most `max_lines` lines per `interval`
/// (intervals counted from `epoch`), the rest counted. Lock-free, as a flood
/// can reach it from every worker at once; racing at an interval's end may
/// let a line or two more through, and never loses a count.
#[derive(Debug)]
pub struct LimitLog {
    epoch: Instant,
    interval: Duration,
    max_lines: u64,
    /// The current interval's number.
    window: AtomicU64,
    /// Lines asked for in the current interval.
    lines: AtomicU64,
    more_started: AtomicU64,
    more_stopped: AtomicU64,
}

impl LimitLog {
    /// A budget of `max_lines` per `interval`, the first starting at `epoch`.
    pub fn new(epoch: Instant, interval: Duration, max_lines: u64) -> Self {
        LimitLog {
            epoch,
            interval: interval.max(Duration::from_millis(1)),
            max_lines,
            window: AtomicU64::new(0),
            lines: AtomicU64::new(0),
            more_started: AtomicU64::new(0),
            more_stopped: AtomicU64::new(0),
        }
    }

    /// The length of one interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether a line of `change` may be written now (call [`LimitLog::roll`]
    /// first); if not, it is counted for the summary.
    pub fn admit(&self, change: Change) -> bool {
        if self.lines.fetch_add(1, Ordering::AcqRel) < self.max_lines {
            return true;
        }
        let more = match change {
            Change::Started => &self.more_started,
            Change::Stopped => &self.more_stopped,
        };
        more.fetch_add(1, Ordering::AcqRel);
        false
    }

    /// For a log of matches (each a [`Change::Started`]): starts a new
    /// interval if `now` is past the current one, with an `info` line saying
    /// how many `what` lines the old one held back, then whether this line
    /// may be written.
    pub fn admit_match(&self, now: Instant, what: &str) -> bool {
        if let Some(more) = self.roll(now) {
            tracing::info!(
                held_back = more.started,
                "{} more {what} lines held back",
                more.started
            );
        }
        self.admit(Change::Started)
    }

    /// Starts a new interval if `now` is past the current one; then, what
    /// the old one held back (`None` when nothing was, or no new interval).
    pub fn roll(&self, now: Instant) -> Option<Suppressed> {
        let n = now.saturating_duration_since(self.epoch).as_nanos() / self.interval.as_nanos();
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let current = self.window.load(Ordering::Acquire);
        if n <= current
            || self
                .window
                .compare_exchange(current, n, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return None;
        }
        self.lines.store(0, Ordering::Release);
        let more = Suppressed {
            started: self.more_started.swap(0, Ordering::AcqRel),
            stopped: self.more_stopped.swap(0, Ordering::AcqRel),
        };
        (more != Suppressed::default()).then_some(more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_budget_holds_back_and_sums_up() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let log = LimitLog::new(t0, s(5), 10);
        let admitted = (0..50).filter(|_| log.admit(Change::Started)).count();
        assert_eq!(admitted, 10);
        assert_eq!(log.roll(t0 + s(4)), None, "the interval is not over");
        assert!(!log.admit(Change::Stopped));
        assert_eq!(
            log.roll(t0 + s(5)),
            Some(Suppressed {
                started: 40,
                stopped: 1
            })
        );
        assert_eq!(log.roll(t0 + s(6)), None, "summed up once");
        assert!(log.admit(Change::Stopped), "a new interval's budget");
        // A quiet interval has nothing to sum up.
        assert_eq!(log.roll(t0 + s(20)), None);
    }
}
