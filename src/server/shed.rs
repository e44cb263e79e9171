//! Load shedding by queue wait, for a server that reads its clients' UDP
//! queries itself (the LS's fast path; the TS sheds by its in-flight permits
//! in [`super::udp`]): overload is shed, not queued.
//!
//! Each datagram carries the time the kernel received it (`SO_TIMESTAMPNS`,
//! [`super::batch`]). Once client queries have waited in the socket longer
//! than [`queue_bound`] (a tenth of the query deadline, at most
//! [`MAX_QUEUE_WAIT`]) for [`STANDING`] on end and for more than [`BURST`]
//! queries — a standing queue, not a burst or a scheduling hiccup — each
//! query read that waited longer is dropped until the waits are back under
//! the bound (CoDel's rule, see [`QueueGate`]). Answering them would only
//! make every later query wait as long. Which late query goes is the door's
//! call ([`QueueGate::shed_late`]): one the door answers itself (a block, a
//! rule, the ACL: a flood already singled out) is dropped unanswered; one to
//! be forwarded is spared while such queries are a small share of the late
//! ones, so a flood the door stops cheaply does not cost the other clients
//! their answers. A query shed for another reason
//! (the in-flight bound) is answered SERVFAIL at once, written from its
//! header and question ([`write_servfail`]).
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::dns::HEADER_LEN;

/// The longest a client query may wait in the socket's queue, whatever
/// `timeout_ms` (see [`queue_bound`]).
pub const MAX_QUEUE_WAIT: Duration = Duration::from_millis(5);
/// The shortest queue bound (a tiny `timeout_ms` still leaves room for a
/// burst to be read).
const MIN_QUEUE_WAIT: Duration = Duration::from_millis(2);
/// A datagram's wait longer than this is no wait but the realtime clock
/// stepped: it is ignored.
const CLOCK_STEP: Duration = Duration::from_secs(10);
/// How long client queries must keep waiting past the queue bound before
/// they are shed (CoDel's interval): a burst or a pause of the process
/// shorter than this sheds nothing.
pub const STANDING: Duration = Duration::from_millis(100);
/// Queries read past the queue bound before it counts as standing,
/// however long they take to read: a client's burst of this many (twice the
/// thousand one stub may send at once) is answered, not shed, even by a
/// slow build on a busy machine.
pub const BURST: u32 = 2048;
/// How long a gate that shed queries stays wary: within this of its last
/// shed, a queue standing for [`REENTER`] (no [`BURST`] needed) is shed. An
/// overloaded LS's clients come back in bursts (their retries, a load
/// generator's window refilled by its timeouts); each would otherwise
/// wait a full [`STANDING`] and overflow the socket before shedding starts.
pub const RECENT: Duration = Duration::from_secs(10);
/// How long waits past the bound must last, within [`RECENT`] of a shed,
/// before shedding resumes.
pub const REENTER: Duration = Duration::from_millis(10);
/// A late query to be forwarded is spared while at most one in this many
/// late queries is (see [`QueueGate::shed_late`]).
pub const SPARE_SHARE: u32 = 4;
/// A late query to be forwarded is spared only while its wait is at most
/// this many queue bounds: a queue still growing when the door's own
/// queries are shed sheds the others too.
pub const SPARE_WAIT: u32 = 4;
/// The late queries [`QueueGate::shed_late`] judges the share by: the
/// counts are halved past this many, a window over the most recent ones.
const SHARE_WINDOW: u32 = 4096;
/// How long a client query may wait in the socket's queue before it is
/// shed: a tenth of the query deadline, within
/// [`MIN_QUEUE_WAIT`]..=[`MAX_QUEUE_WAIT`]. Past it, the answer would come
/// late enough that the client is likely retrying already.
pub fn queue_bound(timeout: Duration) -> Duration {
    (timeout / 10).clamp(MIN_QUEUE_WAIT, MAX_QUEUE_WAIT)
}

/// How long a datagram the kernel received at `stamp` had waited when read
/// at `now` (realtime clock); `None` without a timestamp, or when the clock
/// stepped (a negative wait, or one past [`CLOCK_STEP`]).
pub(crate) fn waited(stamp: Option<SystemTime>, now: SystemTime) -> Option<Duration> {
    let w = now.duration_since(stamp?).ok()?;
    (w < CLOCK_STEP).then_some(w)
}

/// Decides which client queries are shed by their wait in the queue.
///
/// A query that waited no longer than the bound passes and ends a standing
/// queue. Past the bound, queries still pass until the waits have been
/// past it for [`STANDING`] and for more than [`BURST`] queries; from then on every query past the bound is
/// shed, and also, right away, any past the bound within [`STANDING`] of
/// the last one shed (the queue is still standing: shedding resumes at
/// once rather than after another interval), and within [`RECENT`] of it
/// any once the waits have been past the bound for [`REENTER`] (CoDel
/// re-enters its dropping state quickly too). A queue read empty ends a
/// standing queue too ([`QueueGate::drained`]).
///
/// [`QueueGate::shed`] says which queries are late (past the bound in a
/// standing queue); [`QueueGate::shed_late`], once the door has read a late
/// one, which of them go.
#[derive(Debug, Default)]
pub struct QueueGate {
    /// Since when the waits have been past the bound.
    above_since: Option<Instant>,
    /// Queries read past the bound since then.
    above: u32,
    /// When a query was last shed.
    last_shed: Option<Instant>,
    /// Late queries the door answered itself, in the window.
    late_door: u32,
    /// Late queries the door passed on to be forwarded, in the window.
    late_forward: u32,
}

/// What the door made of a late query ([`QueueGate::shed_late`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// Answered (or dropped) at the door: a block, a rule, the ACL, the
    /// rate limit, a malformed query. Nothing more to spend on it.
    Answered,
    /// Passed on: to be answered from the cache or forwarded.
    Forward,
}

impl QueueGate {
    /// Whether to shed a query read at `now` that waited `wait` (`None`:
    /// unknown, passes) with the queue bound `bound`.
    pub fn shed(&mut self, wait: Option<Duration>, now: Instant, bound: Duration) -> bool {
        let Some(wait) = wait else { return false };
        if wait <= bound {
            self.drained();
            return false;
        }
        let since = *self.above_since.get_or_insert(now);
        self.above = self.above.saturating_add(1);
        let lasted = now.saturating_duration_since(since);
        let since_shed = self.last_shed.map(|t| now.saturating_duration_since(t));
        let standing = (lasted >= STANDING && self.above > BURST)
            || since_shed.is_some_and(|d| d < STANDING)
            || (lasted >= REENTER && since_shed.is_some_and(|d| d < RECENT));
        if standing {
            self.last_shed = Some(now);
        }
        standing
    }

    /// Whether a late query (one [`QueueGate::shed`] said to shed) that
    /// waited `wait`, under the queue bound `bound`, is shed after all, now
    /// that the door has read it as `door`.
    ///
    /// One the door answers itself is shed: dropped unanswered (its answer
    /// is not worth the queue; a flood singled out by a block goes on
    /// being counted by it). One to be forwarded is spared (answered late)
    /// while at most one late query in [`SPARE_SHARE`] is to be forwarded,
    /// over the last [`SHARE_WINDOW`] or so, and its wait is at most
    /// [`SPARE_WAIT`] bounds: shedding the door's own queries then drains
    /// the queue, and the other clients keep their answers. Past either,
    /// it is shed, as every late query was.
    pub fn shed_late(&mut self, door: Door, wait: Duration, bound: Duration) -> bool {
        if self.late_door.saturating_add(self.late_forward) >= SHARE_WINDOW {
            self.late_door /= 2;
            self.late_forward /= 2;
        }
        match door {
            Door::Answered => {
                self.late_door += 1;
                true
            }
            Door::Forward => {
                self.late_forward += 1;
                let few = self.late_forward.saturating_mul(SPARE_SHARE)
                    <= self.late_door.saturating_add(self.late_forward);
                !(few && wait <= bound.saturating_mul(SPARE_WAIT))
            }
        }
    }

    /// The queue was read empty: whatever waited before is gone.
    pub fn drained(&mut self) {
        self.above_since = None;
        self.above = 0;
    }
}

/// When a datagram received at `stamp` arrived, on the monotonic clock,
/// given that `now` and `now_sys` are the same moment on both clocks.
pub(crate) fn arrival(stamp: Option<SystemTime>, now: Instant, now_sys: SystemTime) -> Instant {
    waited(stamp, now_sys).map_or(now, |w| now.checked_sub(w).unwrap_or(now))
}

/// Writes into `out` a SERVFAIL for the query `raw` whose question ends at
/// `question_end`: its header (ID, opcode, RD and CD kept; QR set) and its
/// question, no records, no OPT. Nothing is decoded or allocated.
pub(crate) fn write_servfail(raw: &[u8], question_end: usize, out: &mut Vec<u8>) -> bool {
    let Some(head) = raw.get(..question_end) else {
        return false;
    };
    let (Some(&f0), Some(&f1)) = (raw.get(2), raw.get(3)) else {
        return false;
    };
    out.extend_from_slice(head);
    if let Some(flags) = out.get_mut(2..4) {
        // QR, opcode and RD; CD; rcode 2 (SERVFAIL).
        flags.copy_from_slice(&[0x80 | (f0 & 0x79), (f1 & 0x10) | 2]);
    }
    if let Some(counts) = out.get_mut(4..HEADER_LEN) {
        counts.copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_queue_bound_is_a_tenth_of_the_deadline_within_limits() {
        assert_eq!(queue_bound(1500 * MS), MAX_QUEUE_WAIT);
        assert_eq!(queue_bound(30 * MS), 3 * MS);
        assert_eq!(queue_bound(MS), MIN_QUEUE_WAIT);
    }

    #[test]
    fn a_wait_is_read_from_the_kernel_stamp_unless_the_clock_stepped() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(waited(Some(t), t + 30 * MS), Some(30 * MS));
        assert_eq!(waited(None, t), None);
        assert_eq!(waited(Some(t + MS), t), None, "stamped in the future");
        assert_eq!(waited(Some(t), t + CLOCK_STEP), None, "a step, not a wait");
        let now = Instant::now() + Duration::from_secs(60);
        assert_eq!(arrival(Some(t), now, t + 30 * MS), now - 30 * MS);
        assert_eq!(arrival(None, now, t), now);
    }

    #[test]
    fn a_burst_or_a_pause_sheds_nothing_a_standing_queue_is_shed() {
        let bound = 20 * MS;
        let mut g = QueueGate::default();
        let t0 = Instant::now();
        // A pause of 40 ms: the queries read after it waited up to 40 ms,
        // and the backlog is gone in well under STANDING.
        for ms in 0..40u32 {
            let wait = Some(Duration::from_millis(u64::from(40 - ms)));
            assert!(!g.shed(wait, t0 + ms * MS, bound), "burst at {ms} ms");
        }
        assert!(!g.shed(Some(MS), t0 + 40 * MS, bound));
        // A query past the bound long after, once the queue was read
        // empty in between, starts a new interval.
        assert!(!g.shed(Some(30 * MS), t0 + 45 * MS, bound));
        g.drained();
        assert!(!g.shed(Some(30 * MS), t0 + 500 * MS, bound));
        g.drained();
        // A burst of BURST queries read slowly (over 1 s), all past the
        // bound: answered.
        for i in 0..BURST {
            let at = t0 + Duration::from_secs(1) + i * (Duration::from_secs(1) / BURST);
            assert!(!g.shed(Some(30 * MS), at, bound), "burst query {i}");
        }
        g.drained();
        // A standing queue: waits past the bound for 100 ms on end, 30
        // queries read a millisecond.
        let t1 = t0 + Duration::from_secs(3);
        let mut shed_from = None;
        for ms in 0..200u32 {
            for _ in 0..30 {
                if g.shed(Some(25 * MS), t1 + ms * MS, bound) && shed_from.is_none() {
                    shed_from = Some(ms);
                }
            }
        }
        assert_eq!(shed_from, Some(100), "shed once standing for STANDING");
        // Read slowly, the queue counts as standing once BURST queries were read.
        let mut slow = QueueGate::default();
        let shed = (0..=BURST).map(|i| slow.shed(Some(25 * MS), t1 + i * MS, bound));
        assert_eq!(shed.filter(|&s| s).count(), 1, "the query after BURST");
        // Drained under the bound for a moment: a query under it passes...
        assert!(!g.shed(Some(5 * MS), t1 + 200 * MS, bound));
        // ...and shedding resumes at once while the queue is still standing.
        assert!(g.shed(Some(25 * MS), t1 + 210 * MS, bound));
        // Unknown waits always pass.
        assert!(!g.shed(None, t1 + 211 * MS, bound));
        // Drained; long after the last shed, a wait past the bound is a new burst.
        assert!(!g.shed(Some(MS), t1 + 300 * MS, bound));
        assert!(!g.shed(Some(25 * MS), t1 + 400 * MS, bound));
        assert!(!g.shed(Some(MS), t1 + 401 * MS, bound));
        assert!(!g.shed(Some(25 * MS), t1 + 500 * MS, bound));
        // Seconds later (still within RECENT of the last shed), a burst past
        // the bound is shed once it has lasted REENTER, without BURST queries.
        let t2 = t1 + Duration::from_secs(5);
        g.drained();
        let shed: Vec<bool> = (0..=12u32)
            .map(|ms| g.shed(Some(25 * MS), t2 + ms * MS, bound))
            .collect();
        assert_eq!(shed.iter().position(|&s| s), Some(10), "{shed:?}");
        // Past RECENT, a burst is a burst again.
        g.drained();
        let t3 = t2 + 12 * MS + RECENT;
        assert!((0..50u32).all(|ms| !g.shed(Some(25 * MS), t3 + ms * MS, bound)));
    }

    /// A standing queue of a flood the door answers itself (a block's
    /// REFUSED), with another client's queries among it (one in 26, as the
    /// benchmark's 2,000 a second beside 50,000): the flood's late queries
    /// are shed, the other client's are answered, late.
    #[test]
    fn a_flood_the_door_answers_is_shed_the_others_are_spared() {
        let bound = 5 * MS;
        let mut g = QueueGate::default();
        let (mut shed_door, mut shed_forward, mut forward) = (0, 0, 0);
        for i in 0..26_000u32 {
            let door = if i % 26 == 25 {
                Door::Forward
            } else {
                Door::Answered
            };
            let shed = g.shed_late(door, 12 * MS, bound);
            match door {
                Door::Answered => shed_door += u32::from(shed),
                Door::Forward => {
                    forward += 1;
                    shed_forward += u32::from(shed);
                }
            }
        }
        assert_eq!(shed_door, 25_000, "every late query of the flood");
        assert_eq!((forward, shed_forward), (1000, 0), "none of the others");
        // The queue still grows: past SPARE_WAIT bounds, shed too.
        let long = bound * SPARE_WAIT + MS;
        assert!(g.shed_late(Door::Forward, long, bound));
        assert!(!g.shed_late(Door::Forward, bound * SPARE_WAIT, bound));
    }

    /// With nothing for the door to answer (a flood of names it forwards),
    /// or the forwarded queries over one in [`SPARE_SHARE`] of the late
    /// ones, every late query is shed, as before: they are the load.
    #[test]
    fn late_queries_to_forward_are_shed_when_they_are_the_load() {
        let bound = 5 * MS;
        let mut g = QueueGate::default();
        assert!((0..10_000).all(|_| g.shed_late(Door::Forward, 6 * MS, bound)));
        // Half and half, long enough for the window to forget the above.
        let mut g = QueueGate::default();
        let spared = (0..20_000u32)
            .filter(|i| {
                let door = if i % 2 == 0 {
                    Door::Answered
                } else {
                    Door::Forward
                };
                !g.shed_late(door, 6 * MS, bound)
            })
            .count();
        assert_eq!(spared, 0);
        // Then the flood the door answers takes over: sparing resumes
        // within a window.
        let spared = (0..2 * SHARE_WINDOW)
            .filter(|i| {
                let door = if i % 10 == 9 {
                    Door::Forward
                } else {
                    Door::Answered
                };
                let shed = g.shed_late(door, 6 * MS, bound);
                door == Door::Forward && !shed
            })
            .count();
        assert!(spared > 0, "spared once the door's share is back");
    }

    #[test]
    fn servfail_is_written_from_the_header_and_question() {
        // ID 0xbeef, RD and CD set, one question, an OPT record after it.
        let mut q = vec![0xbe, 0xef, 0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(&[3, b'w', b'w', b'w', 0, 0, 1, 0, 1]);
        let end = q.len();
        q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        assert!(write_servfail(&q, end, &mut out));
        let m = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.id, 0xbeef);
        assert_eq!(
            m.metadata.response_code,
            hickory_proto::op::ResponseCode::ServFail
        );
        assert!(m.metadata.recursion_desired && m.metadata.checking_disabled);
        assert!(!m.metadata.authoritative && !m.metadata.recursion_available);
        assert_eq!(m.queries.len(), 1);
        assert!(m.additionals.is_empty() && m.answers.is_empty());
        assert!(!write_servfail(&q[..4], end, &mut Vec::new()));
    }
}
