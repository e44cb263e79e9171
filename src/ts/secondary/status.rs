//! What a secondary zone's task last did and plans next
//! ([`SecondaryStatus`], for `dnslb zone status`), and the requests made of
//! it by hand ([`Asks`]: `dnslb zone refresh|retransfer`): each is a ticket,
//! answered once an attempt that began after it has ended, so an attempt
//! already in flight when the request came is never taken for its answer.
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::time::Duration;

use tokio::sync::watch;

/// One attempt's outcome: when it ended, whether it did what it set out to,
/// what it brought (in words), and the serial served after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEnd {
    /// When it ended, seconds since the epoch.
    pub at_unix: u64,
    /// Whether the primary was reached and its answer taken.
    pub ok: bool,
    /// "up to date", "new version by ixfr", or the error.
    pub result: String,
    /// The serial served after it, if any.
    pub serial: Option<u32>,
}

/// What a secondary zone's task last did, and plans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecondaryStatus {
    /// The last attempt (a SOA check, an IXFR or an AXFR), whatever it brought.
    pub last_attempt: Option<AttemptEnd>,
    /// The last attempt that brought a new version (or a forced AXFR's).
    pub last_transfer: Option<AttemptEnd>,
    /// When the primary is asked next, seconds since the epoch (`None`:
    /// being asked now).
    pub next_check_unix: Option<u64>,
    /// When the zone expires without contact, seconds since the epoch
    /// (`None`: not known yet: no contact nor copy with its timers).
    pub expires_unix: Option<u64>,
    /// Expired: answered SERVFAIL.
    pub expired: bool,
}

/// A zone's status and the requests made of it by hand.
#[derive(Debug)]
pub struct Asks {
    status: Mutex<SecondaryStatus>,
    /// The next attempt is a full AXFR (`dnslb zone retransfer`).
    full: AtomicBool,
    /// The last ticket handed out.
    asked: std::sync::atomic::AtomicU64,
    /// The last ticket an ended attempt answers.
    done: watch::Sender<u64>,
}

impl Default for Asks {
    fn default() -> Self {
        Asks {
            status: Mutex::default(),
            full: AtomicBool::new(false),
            asked: std::sync::atomic::AtomicU64::new(0),
            done: watch::Sender::new(0),
        }
    }
}

/// `at` of a clock whose now is `now`, as seconds since the epoch `unix_now`.
pub fn to_unix(at: u64, now: u64, unix_now: u64) -> u64 {
    unix_now.saturating_add(at.saturating_sub(now))
}

impl Asks {
    fn lock(&self) -> std::sync::MutexGuard<'_, SecondaryStatus> {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The status now.
    pub fn status(&self) -> SecondaryStatus {
        self.lock().clone()
    }

    /// A request for an attempt (a full AXFR when `full`): its ticket. The
    /// caller wakes the zone's task.
    pub fn ask(&self, full: bool) -> u64 {
        if full {
            self.full.store(true, std::sync::atomic::Ordering::Release);
        }
        self.asked.fetch_add(1, AcqRel) + 1
    }

    /// An attempt begins: the last ticket it answers, and whether it is to
    /// be a full AXFR.
    pub fn begin(&self) -> (u64, bool) {
        let ticket = self.asked.load(Acquire);
        (ticket, self.full.swap(false, AcqRel))
    }

    /// The attempt that began with `ticket` ended with `attempt`; `new`:
    /// it brought a version.
    pub fn end(&self, ticket: u64, attempt: AttemptEnd, new: bool) {
        {
            let mut s = self.lock();
            if new {
                s.last_transfer = Some(attempt.clone());
                s.expired = false;
            }
            s.last_attempt = Some(attempt);
        }
        self.done.send_if_modified(|d| {
            let later = ticket > *d;
            if later {
                *d = ticket;
            }
            later
        });
    }

    /// The task waits: next asks at `next_unix`, expires at `expires_unix`.
    pub fn planned(&self, next_unix: Option<u64>, expires_unix: Option<u64>, expired: bool) {
        let mut s = self.lock();
        s.next_check_unix = next_unix;
        s.expires_unix = expires_unix;
        s.expired = expired;
    }

    /// Waits up to `limit` for an attempt that answers `ticket` to end:
    /// its outcome, or `None` past the limit.
    pub async fn wait(&self, ticket: u64, limit: Duration) -> Option<AttemptEnd> {
        let mut rx = self.done.subscribe();
        let ended = tokio::time::timeout(limit, rx.wait_for(|d| *d >= ticket)).await;
        match ended {
            Ok(Ok(_)) => self.lock().last_attempt.clone(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(result: &str) -> AttemptEnd {
        AttemptEnd {
            at_unix: 10,
            ok: true,
            result: result.into(),
            serial: Some(7),
        }
    }

    /// An attempt that began before a request does not answer it; the
    /// next one does, and takes the request for a full AXFR once.
    #[tokio::test]
    async fn a_request_is_answered_by_an_attempt_begun_after_it() {
        let a = Asks::default();
        let (before, full) = a.begin();
        assert_eq!((before, full), (0, false));
        let ticket = a.ask(true);
        a.end(before, attempt("up to date"), false);
        assert_eq!(a.wait(ticket, Duration::from_millis(20)).await, None);
        let (t, full) = a.begin();
        assert_eq!((t, full), (ticket, true));
        assert!(!a.begin().1, "the full AXFR is asked once");
        a.end(t, attempt("new version by axfr"), true);
        let got = a.wait(ticket, Duration::from_secs(5)).await.unwrap();
        assert_eq!(got.result, "new version by axfr");
        assert_eq!(a.status().last_transfer, Some(got));
    }

    #[test]
    fn a_time_of_the_task_clock_is_told_since_the_epoch() {
        assert_eq!(to_unix(150, 100, 1_000), 1_050);
        assert_eq!(to_unix(50, 100, 1_000), 1_000, "past: now");
    }
}
