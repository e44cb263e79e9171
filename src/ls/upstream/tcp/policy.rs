//! The TCP pool's decisions, pure: which connection a query goes to
//! ([`choose`]), when a quiet connection is suspected stalled
//! ([`stall_after`], over RFC 6298 estimators: [`rtt_sample`]), the
//! per-connection limit a backend shows ([`learnt_limit`]), the verdict on
//! an answer no query waits for ([`unmatched`]), and the race of a query's
//! copies ([`next`]); and the pool's bounds (connections, pipelining,
//! tries, idle time).
use std::time::Duration;

use tokio::time::Instant;

use crate::ls::upstream::accept::DropReason;

/// Connections kept open to one backend, at most.
pub const TCP_CONNS: usize = 4;
/// Queries in flight on one connection before another one is opened (the
/// LS's own TCP server allows 64 per connection).
pub const TCP_PIPELINE: usize = 32;
/// A connection with nothing in flight for this long is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// Tries of one exchange at most: a connection that closes under a query
/// (or is left as stalled) is replaced and the query asked again, while its
/// deadline allows.
pub const TCP_TRIES: u32 = 4;
/// Tries not spent (a connection closed under a query after answering
/// others: the backend's per-connection limit) of one exchange, at most.
pub const SHED_MAX: u32 = 16;
/// How long a learnt per-connection limit holds before it is learnt anew
/// (the backend may have been restarted with another one).
pub const PER_CONN_TTL: Duration = Duration::from_secs(60);

/// A stall is never suspected sooner than this after a query's write.
pub const STALL_MIN: Duration = Duration::from_millis(50);

/// Where the next query to a backend goes (see [`choose`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// On open connection `.0`.
    Use(usize),
    /// On a new connection.
    Open,
}

/// Picks a connection for one more query (pure): the least loaded of the
/// open connections (`loads`: queries in flight on each) while it has fewer
/// than `pipeline`; else a new one while there are fewer than `max`; else,
/// at the bound, the least loaded however deep its pipeline.
pub fn choose(loads: &[usize], max: usize, pipeline: usize) -> Choice {
    let least = loads
        .iter()
        .enumerate()
        .min_by_key(|&(i, &n)| (n, i))
        .map(|(i, &n)| (i, n));
    match least {
        Some((i, n)) if n < pipeline || loads.len() >= max.max(1) => Choice::Use(i),
        _ => Choice::Open,
    }
}

/// Whether a pool that caps its connections' depth is full for one more
/// query (pure): every connection that takes queries has `depth` in flight
/// (`loads`) and no other may be opened (`spent`: those that take no more,
/// used up or suspected stalled, still count against `max`). A full pool
/// refuses the query at once rather than queue it on a connection whose
/// backend reads no more (an encrypted link: [`crate::ls::upstream::secure`]).
pub fn full(loads: &[usize], spent: usize, max: usize, depth: usize) -> bool {
    loads.len() + spent >= max.max(1) && loads.iter().all(|&n| n >= depth)
}

/// How long a query with `time_left` until its deadline may wait with
/// nothing read on its connection before the connection is suspected
/// stalled (pure), from the backend's smoothed TCP round trip `srtt` and its
/// mean deviation `rttvar` (RFC 6298's estimators): twice the round trip
/// plus four deviations, and at least a quarter of the time left (a backend
/// slow for some names, fast for most, is waited for) and [`STALL_MIN`];
/// never without a measured round trip (a first query waits for its
/// deadline).
pub fn stall_after(rtt: Option<(Duration, Duration)>, time_left: Duration) -> Option<Duration> {
    rtt.map(|(srtt, rttvar)| (srtt * 2 + rttvar * 4).max(time_left / 4).max(STALL_MIN))
}

/// The per-connection limit learnt from a backend's early close (pure): it
/// closed a connection with queries unanswered after answering `now`; it
/// had last done so after `before` (`usize::MAX`: never). Two such closes
/// after as many answers teach that many; one (a crash, a restart, an idle
/// timeout racing a query) teaches nothing.
pub fn learnt_limit(before: usize, now: usize) -> Option<usize> {
    (now > 0 && before == now).then_some(now)
}

/// RFC 6298's round-trip estimators, in microseconds: `(srtt, rttvar)` after
/// a sample (pure).
pub fn rtt_sample(est: Option<(u64, u64)>, sample: u64) -> (u64, u64) {
    match est {
        None => (sample, sample / 2),
        Some((srtt, rttvar)) => {
            let rttvar = (3 * rttvar + srtt.abs_diff(sample)) / 4;
            ((7 * srtt + sample) / 8, rttvar)
        }
    }
}

/// The verdict on an answer whose ID no query on its connection waits for
/// (pure): [`DropReason::Late`] while the ID is reserved for a query that ended
/// unanswered (`forget_at`: until when), else [`DropReason::WrongId`] (never
/// sent, or long forgotten).
pub fn unmatched(forget_at: Option<Instant>, now: Instant) -> DropReason {
    match forget_at {
        Some(t) if now < t => DropReason::Late,
        _ => DropReason::WrongId,
    }
}

/// One of the (at most two) copies of a query in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The copy asked last.
    Current,
    /// The copy left on a connection suspected stalled, still waited for.
    Left,
}

/// What happened while a query waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A copy's answer came.
    Answer(Which),
    /// A copy's connection closed or broke before its answer.
    Closed(Which),
    /// The current copy's stall check came.
    StallCheck {
        /// Nothing was read on its connection since its write.
        nothing_read: bool,
        /// The deadline has not come yet.
        before_deadline: bool,
    },
    /// The query's deadline came.
    Deadline,
}

/// What a waiting query does next (see [`next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// That copy's answer is the query's; the other, if any, ends (its
    /// answer, when it comes, counts as late, not as a loss).
    Won(Which),
    /// Waits on (a closed left copy is dropped; a stall check passed).
    Wait,
    /// Retires the current copy's connection (no new queries on it), keeps
    /// the copy waiting as the left one, and asks again on another.
    Leave,
    /// The current copy's connection closed: asks again on another (a left
    /// copy still waits).
    AskAgain,
    /// Unanswered by the deadline.
    TimedOut,
}

/// The race of a query's copies (pure): the first answer of either wins; a
/// connection on which nothing was read by the stall check, before the
/// deadline, is left (the copy on it still waits).
pub fn next(event: Event) -> Next {
    match event {
        Event::Answer(which) => Next::Won(which),
        Event::Closed(Which::Left) => Next::Wait,
        Event::Closed(Which::Current) => Next::AskAgain,
        Event::StallCheck {
            nothing_read: true,
            before_deadline: true,
        } => Next::Leave,
        Event::StallCheck { .. } => Next::Wait,
        Event::Deadline => Next::TimedOut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_is_suspected_only_well_past_the_measured_round_trip() {
        let ms = Duration::from_millis;
        // No round trip measured yet: only the deadline tells.
        assert_eq!(stall_after(None, ms(1_500)), None);
        // A fast backend: a quarter of the time left, or the floor.
        assert_eq!(stall_after(Some((ms(1), ms(0))), ms(1_500)), Some(ms(375)));
        assert_eq!(stall_after(Some((ms(1), ms(0))), ms(100)), Some(STALL_MIN));
        // A slow one is waited for: twice its round trip and more.
        assert_eq!(
            stall_after(Some((ms(900), ms(50))), ms(1_500)),
            Some(ms(2_000))
        );
        // The estimators follow RFC 6298 (alpha 1/8, beta 1/4).
        let e = rtt_sample(None, 1_000);
        assert_eq!(e, (1_000, 500));
        let e = rtt_sample(Some(e), 9_000);
        assert_eq!(e, (2_000, (3 * 500 + 8_000) / 4));
        // A steady 900 ms backend never drops below its round trip.
        let mut e = rtt_sample(None, 900_000);
        for _ in 0..100 {
            e = rtt_sample(Some(e), 900_000);
        }
        assert_eq!(e.0, 900_000);
    }

    #[test]
    fn a_copy_left_on_a_stalled_connection_races_the_next() {
        let check = |nothing_read, before_deadline| Event::StallCheck {
            nothing_read,
            before_deadline,
        };
        // Nothing read by the stall check, time left: left (it waits on).
        assert_eq!(next(check(true, true)), Next::Leave);
        // Something read (the backend is alive), or no time left: waited for.
        assert_eq!(next(check(false, true)), Next::Wait);
        assert_eq!(next(check(true, false)), Next::Wait);
        // Either copy's answer wins, the left one's too.
        assert_eq!(next(Event::Answer(Which::Left)), Next::Won(Which::Left));
        assert_eq!(
            next(Event::Answer(Which::Current)),
            Next::Won(Which::Current)
        );
        // The left copy's connection closing leaves the current one waiting;
        // the current one's asks again (the left still waits).
        assert_eq!(next(Event::Closed(Which::Left)), Next::Wait);
        assert_eq!(next(Event::Closed(Which::Current)), Next::AskAgain);
        assert_eq!(next(Event::Deadline), Next::TimedOut);
    }

    /// Every connection used up (a learnt limit of one query each): a burst
    /// of queries waits for one to close rather than opening more than
    /// [`TCP_CONNS`], also those that found room before the opening lock.

    #[test]
    fn an_id_never_sent_is_a_wrong_id_one_whose_query_ended_is_late() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        assert_eq!(unmatched(None, now), DropReason::WrongId);
        assert_eq!(unmatched(Some(later), now), DropReason::Late);
        // Past its grace period: forgotten.
        assert_eq!(unmatched(Some(now), later), DropReason::WrongId);
    }

    #[test]
    fn a_limit_is_learnt_from_two_early_closes_after_as_many_answers() {
        // The first early close teaches nothing (a crash looks the same).
        assert_eq!(learnt_limit(usize::MAX, 1), None);
        assert_eq!(learnt_limit(1, 1), Some(1));
        assert_eq!(learnt_limit(5, 5), Some(5));
        // Different counts: nothing yet.
        assert_eq!(learnt_limit(1, 5), None);
        // Closed before any answer: nothing to learn.
        assert_eq!(learnt_limit(0, 0), None);
    }

    #[test]
    fn a_capped_pool_is_full_only_when_every_connection_is_and_no_more_may_open() {
        // Room on one connection: not full.
        assert!(!full(&[64, 63, 64, 64], 0, 4, 64));
        // Every one at its depth, at the bound: full.
        assert!(full(&[64, 64, 64, 64], 0, 4, 64));
        assert!(full(&[70, 64, 64, 64], 0, 4, 64));
        // A connection may still be opened: not full.
        assert!(!full(&[64, 64, 64], 0, 4, 64));
        assert!(!full(&[], 0, 4, 64));
        // Used-up or stalled connections count against the bound.
        assert!(full(&[64, 64], 2, 4, 64));
        assert!(full(&[], 4, 4, 64));
    }

    #[test]
    fn queries_fill_a_connection_before_another_is_opened_up_to_the_bound() {
        assert_eq!(choose(&[], 4, 32), Choice::Open);
        assert_eq!(choose(&[0], 4, 32), Choice::Use(0));
        assert_eq!(choose(&[31], 4, 32), Choice::Use(0));
        assert_eq!(choose(&[32], 4, 32), Choice::Open);
        // The least loaded first.
        assert_eq!(choose(&[32, 5, 3], 4, 32), Choice::Use(2));
        assert_eq!(choose(&[32, 32, 32], 4, 32), Choice::Open);
        // At the bound: deeper pipelines, never more connections.
        assert_eq!(choose(&[40, 33, 35, 32], 4, 32), Choice::Use(3));
        assert_eq!(choose(&[500, 500, 500, 499], 4, 32), Choice::Use(3));
        // A bound of 0 still allows one.
        assert_eq!(choose(&[], 0, 32), Choice::Open);
        assert_eq!(choose(&[90], 0, 32), Choice::Use(0));
    }
}
