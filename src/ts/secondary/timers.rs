//! When a secondary zone asks its primary again (RFC 1034 §4.3.5, RFC
//! 1996): refresh after the SOA's REFRESH since the last contact, retry
//! after RETRY when an attempt failed, expired after EXPIRE without
//! contact; a NOTIFY asks at once. The moment the copy expires is itself an
//! attempt, as Knot makes it: a primary whose EXPIRE is shorter than its
//! REFRESH (or RETRY) is asked again as the zone expires, not a REFRESH
//! later, so it answers SERVFAIL only while the primary does not answer.
//! Once expired, the expiry wakes nothing more: the zone waits for its next
//! attempt alone. Pure: times are seconds on a clock the caller gives
//! (monotonic in the driver, made up in the tests).

/// The SOA timers that rule a zone, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoaTimers {
    /// REFRESH: how long after a contact the primary is asked again.
    pub refresh: u32,
    /// RETRY: how long after a failed attempt it is tried again.
    pub retry: u32,
    /// EXPIRE: how long without contact the zone is served.
    pub expire: u32,
}

/// The least a timer is taken as (a zone with REFRESH 0 would ask in a
/// loop): one second.
const TIMER_MIN: u32 = 1;

impl SoaTimers {
    /// The timers of an SOA's fields, each at least one second.
    pub fn new(refresh: u32, retry: u32, expire: u32) -> Self {
        SoaTimers {
            refresh: refresh.max(TIMER_MIN),
            retry: retry.max(TIMER_MIN),
            expire: expire.max(TIMER_MIN),
        }
    }
}

/// Where a secondary zone stands with its primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    timers: Option<SoaTimers>,
    /// The last time the primary answered (a transfer, or "up to date"):
    /// `None` before any, and for a copy read from disk.
    contact: Option<u64>,
    /// When the copy served started to count towards EXPIRE: the contact,
    /// or the start for a copy from disk.
    since: Option<u64>,
    /// When the next attempt is due.
    next: u64,
    /// When the last attempt ended (`None`: none yet): one that ended at
    /// or past the expiry was the expiry's own.
    asked: Option<u64>,
    /// A NOTIFY came since the last attempt.
    notified: bool,
}

/// What the secondary does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshStep {
    /// Ask the primary (SOA check by IXFR, or a first AXFR).
    Ask,
    /// Nothing before `at`.
    Wait {
        /// When to look again.
        at: u64,
    },
}

impl Schedule {
    /// A zone with nothing yet: asks at once.
    pub fn empty(now: u64) -> Self {
        Schedule {
            timers: None,
            contact: None,
            since: None,
            next: now,
            asked: None,
            notified: false,
        }
    }

    /// A zone whose copy was read from disk at `now` (as old as `age`
    /// seconds at most, from the file's time): served, and asked for at
    /// once; its EXPIRE counts from when the copy was last confirmed.
    pub fn from_disk(now: u64, timers: SoaTimers, age: u64) -> Self {
        Schedule {
            timers: Some(timers),
            contact: None,
            since: Some(now.saturating_sub(age)),
            next: now,
            asked: None,
            notified: false,
        }
    }

    /// The primary answered at `now` (a transfer applied, or the serial
    /// is current); `timers` are those of the SOA now served.
    pub fn contacted(&mut self, now: u64, timers: SoaTimers) {
        self.timers = Some(timers);
        self.contact = Some(now);
        self.since = Some(now);
        self.next = now + u64::from(timers.refresh);
        self.asked = Some(now);
        self.notified = false;
    }

    /// An attempt failed at `now`: again after RETRY (one second with no
    /// SOA known yet, up to a minute: the zone has no timers yet).
    pub fn failed(&mut self, now: u64, attempts_without_zone: u32) {
        let retry = match self.timers {
            Some(t) => u64::from(t.retry),
            None => 1u64 << attempts_without_zone.min(6),
        };
        self.next = now + retry;
        self.asked = Some(now);
        self.notified = false;
    }

    /// A NOTIFY for this zone was accepted: ask at once.
    pub fn notified(&mut self, now: u64) {
        self.notified = true;
        self.next = self.next.min(now);
    }

    /// What to do at `now`: a wait is always for a time after `now`.
    pub fn step(&self, now: u64) -> RefreshStep {
        let due = self.due();
        if self.notified || now >= due {
            RefreshStep::Ask
        } else {
            RefreshStep::Wait { at: due }
        }
    }

    /// When the next attempt is due: the one the timers set, or the
    /// expiry when it comes first and no attempt was made since it.
    fn due(&self) -> u64 {
        match self.expires_at() {
            Some(at) if self.asked.is_none_or(|asked| asked < at) => self.next.min(at),
            _ => self.next,
        }
    }

    /// When the copy served expires (`None`: nothing served yet).
    pub fn expires_at(&self) -> Option<u64> {
        Some(self.since? + u64::from(self.timers?.expire))
    }

    /// Whether the copy served has expired at `now`: EXPIRE seconds passed
    /// without the primary answering.
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at().is_some_and(|at| now >= at)
    }

    /// The last time the primary answered.
    pub fn last_contact(&self) -> Option<u64> {
        self.contact
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: SoaTimers = SoaTimers {
        refresh: 100,
        retry: 10,
        expire: 1000,
    };

    #[test]
    fn an_empty_zone_asks_at_once_and_backs_off_while_the_primary_is_silent() {
        let mut s = Schedule::empty(50);
        assert_eq!(s.step(50), RefreshStep::Ask);
        assert!(!s.expired(10_000), "nothing served: nothing expires");
        s.failed(50, 0);
        assert_eq!(s.step(50), RefreshStep::Wait { at: 51 });
        s.failed(51, 10);
        assert_eq!(
            s.step(51),
            RefreshStep::Wait { at: 51 + 64 },
            "capped at 64 s"
        );
    }

    #[test]
    fn refresh_after_contact_retry_after_failure_expire_without_contact() {
        let mut s = Schedule::empty(0);
        s.contacted(0, T);
        assert_eq!(s.step(0), RefreshStep::Wait { at: 100 });
        assert_eq!(s.step(99), RefreshStep::Wait { at: 100 });
        assert_eq!(s.step(100), RefreshStep::Ask, "REFRESH");
        s.failed(100, 0);
        assert_eq!(s.step(105), RefreshStep::Wait { at: 110 }, "RETRY");
        assert_eq!(s.step(110), RefreshStep::Ask);
        // Failures all along: served until EXPIRE after the last contact.
        let mut now = 110;
        while now < 1000 {
            s.failed(now, 0);
            now += 10;
            assert!(!s.expired(now - 1));
        }
        assert!(s.expired(1000));
        assert_eq!(s.expires_at(), Some(1000));
        // The primary back: counted from the new contact.
        s.contacted(1200, T);
        assert!(!s.expired(1200));
        assert_eq!(s.expires_at(), Some(2200));
        assert_eq!(s.last_contact(), Some(1200));
    }

    #[test]
    fn a_notify_asks_at_once_and_a_wait_never_sleeps_past_expiry() {
        let mut s = Schedule::empty(0);
        s.contacted(0, SoaTimers::new(5000, 10, 1000));
        assert_eq!(s.step(1), RefreshStep::Wait { at: 1000 }, "wakes to expire");
        s.notified(3);
        assert_eq!(s.step(3), RefreshStep::Ask);
        s.contacted(3, T);
        assert_eq!(s.step(3), RefreshStep::Wait { at: 103 });
    }

    #[test]
    fn an_expired_zone_waits_for_its_next_attempt_not_for_its_past_expiry() {
        let mut s = Schedule::empty(0);
        s.contacted(0, SoaTimers::new(5000, 600, 1000));
        // The primary silent since: the last failure past the expiry.
        s.failed(1200, 0);
        assert!(s.expired(1200));
        for now in 1200..1800 {
            assert_eq!(s.step(now), RefreshStep::Wait { at: 1800 }, "at {now}");
        }
        assert_eq!(s.step(1800), RefreshStep::Ask);
        // A copy from disk already past its EXPIRE: asked at once, then
        // RETRY, never a wait for the expiry gone by.
        let mut d = Schedule::from_disk(10_000, SoaTimers::new(5000, 600, 1000), 3000);
        assert!(d.expired(10_000));
        assert_eq!(d.step(10_000), RefreshStep::Ask);
        d.failed(10_000, 0);
        assert_eq!(d.step(10_001), RefreshStep::Wait { at: 10_600 });
    }

    #[test]
    fn a_zone_is_asked_for_again_as_it_expires_when_its_expire_is_shorter() {
        // REFRESH 15, RETRY 15, EXPIRE 5: asked at 5, as the copy expires.
        let mut s = Schedule::empty(0);
        s.contacted(0, SoaTimers::new(15, 15, 5));
        assert_eq!(s.step(4), RefreshStep::Wait { at: 5 });
        assert!(s.expired(5));
        assert_eq!(s.step(5), RefreshStep::Ask, "asked as the zone expires");
        s.contacted(5, SoaTimers::new(15, 15, 5));
        assert!(!s.expired(6), "served again");
        assert_eq!(s.step(6), RefreshStep::Wait { at: 10 });
        // The primary silent at the expiry: RETRY from there, once.
        assert_eq!(s.step(10), RefreshStep::Ask);
        s.failed(10, 0);
        assert_eq!(s.step(11), RefreshStep::Wait { at: 25 });
        // A RETRY that would come after the expiry: asked at the expiry.
        let mut r = Schedule::empty(0);
        r.contacted(0, SoaTimers::new(100, 50, 60));
        r.failed(30, 0);
        assert_eq!(r.step(31), RefreshStep::Wait { at: 60 });
        assert_eq!(r.step(60), RefreshStep::Ask);
    }

    #[test]
    fn every_wait_is_for_a_time_to_come() {
        // Timers of every order, the primary answering one attempt in
        // three: the schedule never hands back a time gone by.
        for (refresh, retry, expire) in [(15, 15, 5), (100, 10, 1000), (5, 50, 20), (1, 1, 1)] {
            let timers = SoaTimers::new(refresh, retry, expire);
            let mut s = Schedule::empty(0);
            s.contacted(0, timers);
            let mut attempts = 0u32;
            for now in 0..5000 {
                match s.step(now) {
                    RefreshStep::Wait { at } => assert!(at > now, "{timers:?} at {now}"),
                    RefreshStep::Ask if attempts % 3 == 2 => {
                        attempts += 1;
                        s.contacted(now, timers);
                    }
                    RefreshStep::Ask => {
                        attempts += 1;
                        s.failed(now, 0);
                    }
                }
            }
        }
    }

    #[test]
    fn a_copy_from_disk_is_served_asks_at_once_and_keeps_its_age() {
        let s = Schedule::from_disk(500, T, 200);
        assert_eq!(s.step(500), RefreshStep::Ask);
        assert_eq!(s.expires_at(), Some(1300));
        assert_eq!(s.last_contact(), None);
        // Zero timers are taken as one second.
        assert_eq!(SoaTimers::new(0, 0, 0), SoaTimers::new(1, 1, 1));
    }
}
