//! One client query's progress across its candidate backends, as a pure
//! state machine: no sockets, no clock of its own (every call is given
//! `now`), so the strategies' timing (hedge delay, budget, failover,
//! deadline) and the layouts' rules are unit-tested with made-up times.
//!
//! A driver (the async one in [`super::async_path`]) calls [`Resolution::poll`]
//! until it says [`Step::Wait`], sends what it was told to launch, feeds each
//! backend's outcome to [`Resolution::on_outcome`], and polls again at the
//! latest at [`Resolution::next_wakeup`]. [`Step::Done`] says how the query
//! ends.
//!
//! Re-asks (every strategy): once every candidate has been asked, a
//! backend still silent is asked again, with a fresh ID, while time
//! remains: first one hedge delay (its high latency percentile; under
//! `sequential`, `try_timeout_ms`) after the last launch, then at growing
//! gaps after its own last copy, at most
//! [`REASK_MAX`] times per query ([`reask_due`]). All copies stay open;
//! any answer wins. Silence has two causes the LS cannot tell apart at
//! once: a lost datagram (answered by the first re-ask, milliseconds
//! later) and a backend restarting or stalled for a moment (a `kill -9`
//! of a `dnslb ts` under `dnslb up` is back in about 0.3 s: the later,
//! spread-out re-asks at ~100, 300 and 700 ms reach it inside the default
//! 1.5 s deadline). Either way a name that exists is not answered "no such
//! name" while time remained to ask again.
//!
//! Why a schedule in the LS and not a word from the supervisor: it works
//! the same for a plain `dnslb ls` in front of any server, for a restart
//! the supervisor does not see (a TS under systemd, a remote NSD), and for
//! loss; and it needs no channel between processes. The growing gaps keep
//! a backend that is down for good from being sent more than seven copies
//! of a query, and the budget bounds them all together. Under `sequential`
//! the first re-ask waits `try_timeout_ms`, as a move to the next backend
//! does; and no re-ask comes before twice the backend's measured latency
//! (the route's [`Pacing::reask_after`]): a backend that answers, slowly,
//! is not asked twice.
//!
//! A re-ask of a backend that is still answering other queries takes a
//! token of the hedge budget: re-asking the *same* backend is extra load
//! exactly like a hedge, so a backend that is only slow (slower than its
//! delay, or than `try_timeout_ms`) is not sent every query twice when the
//! budget is spent (with `hedge_budget_pct = 0`, never). Two re-asks are
//! free ([`Pacing::heard`]): of a backend that has answered nothing since
//! this query's last copy went out (restarting, or cut off: a copy adds no
//! load to a server that is not serving, and a restart under load must not
//! spend the budget a burst of queries needs); and, once per backend and
//! query, of one that has since answered a query sent *after* that copy (a
//! server answers in order, so this copy was lost: the re-ask replaces it,
//! it adds nothing). A refused re-ask holds back only
//! that copy: the schedule goes on, and a later due re-ask may find a
//! token. The gaps stop growing at [`REASK_GAP_CAP`], so a backend back
//! after a second (a third crash in a minute under `dnslb up` restarts after
//! 800 ms) is still asked before the default deadline.
//!
//! At the deadline, a query whose silent backend had a re-ask held back by
//! the budget ([`Resolution::held_back`]) is not answered "no such name":
//! time remained to ask again and the LS did not, so the `on_timeout =
//! "nxdomain"` answer becomes SERVFAIL (the client's retry may get the
//! name). Over TCP (a TCP client's ANY, which the
//! async driver sends its backends over TCP only) nothing is re-asked:
//! no datagram is lost there, and a stalled connection is the TCP pool's
//! to retire. What stays free of the budget: moving on to a backend *not
//! yet asked* (failover at `try_timeout_ms` when the budget
//! refused a hedge, or at once after a negative or failed answer).
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use smallvec::SmallVec;
use tokio::time::Instant;

use crate::config::{Layout, Strategy};
use crate::dns::WireHeader;

/// What one backend's response means for the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Ends the query: the client gets this response.
    Final,
    /// Partitioned: "no such name" from this backend; ask the others.
    NxDomain,
    /// Partitioned: the name exists here but has no records of this type
    /// (or is only the parent of other names); ask the others.
    NoData,
    /// An error rcode, or no usable response: as if this backend had not answered.
    Failed,
    /// FORMERR or NOTIMP: the backend could not read the query, or does not
    /// implement it. Not final (another backend may answer it) and no fault
    /// of the backend's own; passed on when every backend asked said so (the
    /// client's query is at fault, e.g. two OPT records).
    Rejected,
    /// REFUSED: "not my zone" (or "not for you"). Not final and no fault of
    /// the backend's; under `partitioned`, it holds no name of the query's
    /// zone, so the others' negative answers are conclusive without it; the
    /// REFUSED is passed on when every backend refused.
    Refused,
}

/// Classifies a response by its header (pure): rcode, AA and the counts of
/// answer and authority records. Any answer with records is positive (also
/// an NXDOMAIN holding a CNAME into another backend's names). A NOERROR
/// answer with no records is a referral (positive) when it is not
/// authoritative and carries authority records, else NODATA.
pub fn classify(h: &WireHeader, layout: Layout) -> Verdict {
    let negative = match ResponseCode::from_low(h.rcode()) {
        ResponseCode::Refused => return Verdict::Refused,
        ResponseCode::ServFail | ResponseCode::FormErr | ResponseCode::NotImp => {
            return Verdict::Failed;
        }
        // An NXDOMAIN that carries records is a CNAME whose target this
        // backend does not hold (RFC 6604): the CNAME is a positive answer.
        ResponseCode::NXDomain if h.ancount > 0 => return Verdict::Final,
        ResponseCode::NXDomain => Verdict::NxDomain,
        ResponseCode::NoError
            if h.ancount == 0 && (h.authoritative() || h.nscount == 0) && !h.truncated() =>
        {
            Verdict::NoData
        }
        _ => return Verdict::Final,
    };
    match layout {
        Layout::Partitioned => negative,
        Layout::Replicated => Verdict::Final,
    }
}

/// How a query with no final answer ends, once every candidate asked has
/// answered or the deadline has passed (pure; see [`settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Every backend gave a negative answer: pass this backend's on (a
    /// NODATA when any backend said NODATA, as the name exists somewhere).
    PassOn(usize),
    /// Every backend asked failed (error rcodes) before the deadline: SERVFAIL.
    AllFailed,
    /// Every backend asked rejected the query (FORMERR, NOTIMP), or refused
    /// it with every backend refusing or rejecting: pass this backend's
    /// rejection (else its refusal) on.
    Rejected(usize),
    /// Some backend was not heard from (down, silent, failed): the negatives
    /// prove nothing, so the `on_timeout` answer.
    Unproven,
}

/// What the answers so far add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Backends in the snapshot.
    pub backends: usize,
    /// Backends asked.
    pub asked: usize,
    /// NXDOMAIN answers.
    pub nxdomain: usize,
    /// NODATA answers.
    pub nodata: usize,
    /// Error answers and errors (rejections included).
    pub failed: usize,
    /// Rejections (FORMERR, NOTIMP) among `failed`.
    pub rejected: usize,
    /// The backend whose rejection would be passed on (the first).
    pub rejection: Option<usize>,
    /// Refusals (REFUSED) among `failed`.
    pub refused: usize,
    /// The backend whose refusal would be passed on (the first).
    pub refusal: Option<usize>,
    /// The backend whose negative answer would be passed on.
    pub negative: Option<usize>,
    /// Whether `negative` is a NODATA.
    pub negative_is_nodata: bool,
}

impl Tally {
    /// Counts one negative answer of backend `at`; true when it becomes the
    /// one to pass on (the first NODATA, else the latest NXDOMAIN), so the
    /// driver keeps its bytes.
    pub fn negative(&mut self, at: usize, verdict: Verdict) -> bool {
        if verdict == Verdict::NoData {
            self.nodata += 1;
            if !self.negative_is_nodata {
                self.negative = Some(at);
                self.negative_is_nodata = true;
                return true;
            }
            false
        } else {
            self.nxdomain += 1;
            if !self.negative_is_nodata {
                self.negative = Some(at);
                return true;
            }
            false
        }
    }
}

/// The end of a query that got no final answer (pure). `timed_out`: the
/// deadline passed with some backend still silent.
pub fn settle(t: &Tally, timed_out: bool) -> Settled {
    let negatives = t.nxdomain + t.nodata;
    // A backend that refused holds no name of the query's zone: it is as
    // good as a negative answer for the partitioned rule.
    let heard = negatives + t.refused;
    match t.negative {
        Some(at) if !timed_out && heard == t.backends && t.asked == t.backends => {
            Settled::PassOn(at)
        }
        _ if !timed_out && negatives == 0 && t.failed > 0 && t.failed == t.asked => {
            let every_refused = t.refused == t.backends && t.asked == t.backends;
            match (t.rejection, t.refusal) {
                (Some(at), _) if t.rejected + t.refused == t.failed => Settled::Rejected(at),
                (None, Some(at)) if every_refused => Settled::Rejected(at),
                _ => Settled::AllFailed,
            }
        }
        _ => Settled::Unproven,
    }
}

/// Re-asks of one backend per query at most: with the default deadline
/// (1.5 s) and a warm LS's 2 ms delay they go at 2, 102, 302, 702 and
/// 1,102 ms after its first copy; under `sequential` (500 ms) at 500 and
/// 1,000 ms.
pub const REASK_MAX: u8 = 6;
/// The least gap before a second re-ask, doubled for each one after it: a
/// backend silent past its first re-ask is not losing one datagram but
/// restarting, stalled or slow, and is asked at growing intervals.
pub const REASK_STEP: Duration = Duration::from_millis(100);

/// The longest gap between two re-asks of one backend (unless its own
/// delay is longer): a backend back from a restart is asked within this.
pub const REASK_GAP_CAP: Duration = Duration::from_millis(400);

/// When a silent backend's re-ask number `k` (0: the first) is due (pure):
/// its first one `after` (its hedge delay; `try_timeout_ms` under
/// `sequential`) past the last launch to any backend; each later one
/// `max(after, min(REASK_STEP * 2^(k-1), REASK_GAP_CAP))` past its own last
/// copy `sent`, and
/// never sooner than `after` past the last launch (re-asks of several
/// backends are spaced, not sent in a burst).
pub fn reask_due(after: Duration, k: u8, sent: Instant, last_launch: Instant) -> Instant {
    let spaced = last_launch + after;
    if k == 0 {
        return spaced;
    }
    let shift = u32::from(k.min(16));
    let grown = after.max(
        REASK_STEP
            .saturating_mul(1 << (shift - 1))
            .min(REASK_GAP_CAP),
    );
    (sent + grown).max(spaced)
}

/// What a resolution needs to know of the policy in force.
pub trait Pacing {
    /// After asking backend `i`, how long before the next is asked anyway
    /// (the hedge delay or the per-try timeout); `None` under `race`.
    fn spacing(&self, i: usize) -> Option<Duration>;
    /// Per-try timeout: how long a query the hedge budget kept on its
    /// backends waits before failing over regardless.
    fn try_timeout(&self) -> Duration;
    /// How long after its last copy a silent backend `i` is first asked
    /// again (the hedge delay: the backend's high latency percentile).
    fn reask_after(&self, i: usize) -> Duration;
    /// Takes a token of the hedge budget for a delay-triggered hedge or a
    /// re-ask; false (and counted) when it is spent.
    fn take_hedge_token(&self) -> bool;
    /// What backend `i` has answered since a copy sent at `sent`.
    fn heard(&self, i: usize, sent: Instant) -> Heard;
}

/// What a backend has answered since a query's copy went out
/// ([`Pacing::heard`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// Nothing (less its usual latency before the copy): restarting or cut
    /// off; a re-ask is free.
    Nothing,
    /// A query sent after the copy: the copy was lost; one re-ask is free.
    Later,
    /// Only queries sent before the copy: it serves, slowly perhaps; a
    /// re-ask is extra load and takes a budget token.
    Earlier,
    /// Never heard from, or not for longer than a restart takes: its
    /// silence is its answer ("nobody answers"); a re-ask takes a token,
    /// and one refused does not make the deadline's answer SERVFAIL.
    Away,
}

/// The driver's next move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Ask backend `backend` now; `hedge`: sent by the hedge timer.
    Launch {
        /// Backend index.
        backend: usize,
        /// A delay-triggered hedge (not the first, not a failover).
        hedge: bool,
    },
    /// Nothing to do before the next outcome or [`Resolution::next_wakeup`].
    Wait,
    /// The query is over.
    Done(End),
}

/// How a query ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Backend `backend`'s response is the answer; `hedge`: it was a hedge.
    Win {
        /// Backend index.
        backend: usize,
        /// Whether that attempt was a delay-triggered hedge.
        hedge: bool,
    },
    /// Every backend answered negatively, or every backend asked rejected
    /// the query: backend `backend`'s response is the answer.
    PassOn(usize),
    /// Every backend asked failed before the deadline: SERVFAIL.
    AllFailed,
    /// No conclusive answer: the `on_timeout` answer. `timed_out`: the
    /// deadline passed (else some backend was down or failed).
    OnTimeout {
        /// The deadline passed.
        timed_out: bool,
    },
}

impl End {
    /// The backend whose response the client gets, if any.
    pub fn backend(&self) -> Option<usize> {
        match *self {
            End::Win { backend, .. } | End::PassOn(backend) => Some(backend),
            End::AllFailed | End::OnTimeout { .. } => None,
        }
    }
}

/// Candidates held inline (no allocation for up to this many backends).
const INLINE: usize = 8;

/// One client query's progress; see the module docs.
#[derive(Debug, Clone)]
pub struct Resolution {
    strategy: Strategy,
    layout: Layout,
    candidates: SmallVec<[usize; INLINE]>,
    /// Per launched candidate (by position): its outcome (`None` while it
    /// is pending), and whether it was launched as a hedge.
    outcomes: SmallVec<[Option<Verdict>; INLINE]>,
    hedged: SmallVec<[bool; INLINE]>,
    /// Per launched candidate: its attempts still out (two once re-asked).
    pending: SmallVec<[u8; INLINE]>,
    /// Per launched candidate: its re-asks so far (those the budget
    /// refused included), and when it was last sent a copy.
    reasks: SmallVec<[u8; INLINE]>,
    sent_at: SmallVec<[Instant; INLINE]>,
    /// Per launched candidate: the budget refused one of its re-asks.
    held: SmallVec<[bool; INLINE]>,
    /// Per launched candidate: its free re-ask of a lost copy is spent.
    replaced: SmallVec<[bool; INLINE]>,
    /// No re-asks: the driver asks the backends over TCP only
    /// ([`Resolution::without_reasks`]).
    reasks_off: bool,
    tally: Tally,
    deadline: Instant,
    next_at: Option<Instant>,
    last_launch: Instant,
    /// The hedge budget refused: the timer now waits for the failover time.
    failover: bool,
    /// An outcome asks for the next candidate at once.
    launch_now: bool,
    end: Option<End>,
}

impl Resolution {
    /// A query that started at `now`, with its candidates in order, among
    /// `backends` in the snapshot, ending at `deadline` at the latest.
    pub fn new(
        strategy: Strategy,
        layout: Layout,
        candidates: &[usize],
        backends: usize,
        now: Instant,
        deadline: Instant,
    ) -> Self {
        Resolution {
            strategy,
            layout,
            candidates: candidates.iter().copied().collect(),
            outcomes: SmallVec::new(),
            hedged: SmallVec::new(),
            pending: SmallVec::new(),
            reasks: SmallVec::new(),
            sent_at: SmallVec::new(),
            held: SmallVec::new(),
            replaced: SmallVec::new(),
            reasks_off: false,
            tally: Tally {
                backends,
                ..Tally::default()
            },
            deadline,
            next_at: None,
            last_launch: now,
            failover: false,
            launch_now: true,
            end: None,
        }
    }

    /// No backend is asked twice: for a query the driver sends its backends
    /// over TCP only (a TCP client's ANY), where no datagram is lost and a
    /// stalled connection is the TCP pool's to retire; a re-ask would only
    /// load a slow backend.
    pub fn without_reasks(&mut self) {
        self.reasks_off = true;
    }

    /// When the query ends at the latest.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The layout the outcomes are judged by.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The next move at `now`.
    pub fn poll(&mut self, now: Instant, pacing: &impl Pacing) -> Step {
        if let Some(end) = self.end {
            return Step::Done(end);
        }
        if now >= self.deadline {
            return self.finish(End::OnTimeout { timed_out: true });
        }
        let left = self.outcomes.len() < self.candidates.len();
        if self.launch_now && left {
            // The first candidate, every one under race, or the next one
            // after a negative or failed answer (never held back by the budget).
            self.launch_now = self.strategy == Strategy::Race;
            return self.launch(now, false, pacing);
        }
        if left && self.next_at.is_some_and(|at| at <= now) {
            let hedge = self.strategy == Strategy::Hedge && !self.failover;
            if hedge && !pacing.take_hedge_token() {
                // No budget for a hedge: stay with the backends asked
                // until the per-try timeout, then fail over regardless.
                self.failover = true;
                self.next_at = Some(self.last_launch + pacing.try_timeout());
                return self.poll(now, pacing);
            }
            return self.launch(now, hedge, pacing);
        }
        if !left && self.outcomes.iter().all(Option::is_some) {
            self.tally.asked = self.outcomes.len();
            return match settle(&self.tally, false) {
                Settled::PassOn(i) => self.finish(End::PassOn(i)),
                Settled::Rejected(i) => self.finish(End::PassOn(i)),
                Settled::AllFailed => self.finish(End::AllFailed),
                Settled::Unproven => self.finish(End::OnTimeout { timed_out: false }),
            };
        }
        if !left {
            return self.reask(now, pacing);
        }
        Step::Wait
    }

    /// Everyone asked, someone silent: re-asks the unanswered backend
    /// whose next re-ask is due first ([`reask_due`]), under every
    /// strategy; a backend still answering others only with a budget
    /// token (a refused re-ask is skipped and remembered, the schedule
    /// goes on).
    fn reask(&mut self, now: Instant, pacing: &impl Pacing) -> Step {
        if self.reasks_off {
            self.next_at = None;
            return Step::Wait;
        }
        // Each pass takes one due re-ask: sent, or held back by the budget
        // (then the next due one is looked at); at most REASK_MAX per
        // candidate, so this ends.
        loop {
            match self.next_reask(now, pacing) {
                Some(step) => return step,
                None if self.next_at.is_some_and(|at| at <= now) => {}
                None => return Step::Wait,
            }
        }
    }

    /// One pass of [`Resolution::reask`]: `Some` launch, or `None` with
    /// `next_at` set to the next due re-ask (or cleared: none left).
    fn next_reask(&mut self, now: Instant, pacing: &impl Pacing) -> Option<Step> {
        let last_launch = self.last_launch;
        let target = self
            .candidates
            .iter()
            .zip(&self.outcomes)
            .zip(self.reasks.iter().zip(&self.sent_at))
            .enumerate()
            .filter(|(_, ((_, o), (k, _)))| o.is_none() && **k < REASK_MAX)
            .map(|(pos, ((&c, _), (&k, &sent)))| {
                let due = reask_due(pacing.reask_after(c), k, sent, last_launch);
                (due, k, pos, c)
            })
            // The earliest due; at a tie, the one asked again least often.
            .min_by_key(|&(due, k, pos, _)| (due, k, pos));
        let Some((due, _, pos, backend)) = target else {
            self.next_at = None;
            return None;
        };
        self.next_at = Some(due);
        if due > now {
            return None;
        }
        if let Some(k) = self.reasks.get_mut(pos) {
            *k = k.saturating_add(1);
        }
        let sent = self.sent_at.get(pos).copied().unwrap_or(last_launch);
        let heard = pacing.heard(backend, sent);
        let free = match heard {
            Heard::Nothing => true,
            Heard::Later => self
                .replaced
                .get_mut(pos)
                .is_some_and(|r| !std::mem::replace(r, true)),
            Heard::Earlier | Heard::Away => false,
        };
        if !free && !pacing.take_hedge_token() {
            // No budget for a backend that is serving (only slow, or this
            // copy lost): this re-ask is not sent (its load is not
            // doubled); a later one may be, and the deadline's answer says
            // the LS did not ask again.
            if let Some(h) = self.held.get_mut(pos)
                && heard != Heard::Away
            {
                *h = true;
            }
            // Its next turn counts from this one, as if it had been sent.
            if let Some(s) = self.sent_at.get_mut(pos) {
                *s = now;
            }
            self.next_at = Some(now);
            return None;
        }
        if let Some(p) = self.pending.get_mut(pos) {
            *p = p.saturating_add(1);
        }
        if let Some(h) = self.hedged.get_mut(pos) {
            *h = true;
        }
        if let Some(s) = self.sent_at.get_mut(pos) {
            *s = now;
        }
        self.last_launch = now;
        Some(Step::Launch {
            backend,
            hedge: true,
        })
    }

    fn launch(&mut self, now: Instant, hedge: bool, pacing: &impl Pacing) -> Step {
        let Some(&backend) = self.candidates.get(self.outcomes.len()) else {
            return Step::Wait;
        };
        self.outcomes.push(None);
        self.hedged.push(hedge);
        self.pending.push(1);
        self.reasks.push(0);
        self.sent_at.push(now);
        self.held.push(false);
        self.replaced.push(false);
        self.last_launch = now;
        self.failover = false;
        self.next_at = pacing.spacing(backend).map(|d| now + d);
        Step::Launch { backend, hedge }
    }

    fn finish(&mut self, end: End) -> Step {
        self.end = Some(end);
        self.tally.asked = self.outcomes.len();
        Step::Done(end)
    }

    /// Backend `backend`'s outcome: a response's verdict, or `Failed` for
    /// an error or a timeout. Returns true when this response is the
    /// negative one to keep (it may be passed on later).
    pub fn on_outcome(&mut self, backend: usize, verdict: Verdict) -> bool {
        let Some(pos) = self
            .candidates
            .iter()
            .take(self.outcomes.len())
            .position(|&c| c == backend)
        else {
            return false;
        };
        match self.outcomes.get_mut(pos) {
            Some(slot @ None) if self.end.is_none() => {
                let out = self.pending.get_mut(pos);
                let still_out = out.map_or(0, |p| {
                    *p = p.saturating_sub(1);
                    *p
                });
                let failed = matches!(
                    verdict,
                    Verdict::Failed | Verdict::Rejected | Verdict::Refused
                );
                if failed && still_out > 0 {
                    // This backend's other attempt may still answer.
                    return false;
                }
                *slot = Some(verdict);
            }
            _ => return false,
        }
        match verdict {
            Verdict::Final => {
                let hedge = self.hedged.get(pos).copied().unwrap_or(false);
                self.end = Some(End::Win { backend, hedge });
                false
            }
            Verdict::NxDomain | Verdict::NoData => {
                self.launch_now = true;
                self.tally.negative(backend, verdict)
            }
            Verdict::Failed => {
                self.launch_now = true;
                self.tally.failed += 1;
                false
            }
            Verdict::Rejected => {
                self.launch_now = true;
                self.tally.failed += 1;
                self.tally.rejected += 1;
                // Kept while no negative answer is: the driver keeps one
                // response, and a negative one outranks a rejection.
                let keep = self.tally.rejection.is_none() && self.tally.negative.is_none();
                if keep {
                    self.tally.rejection = Some(backend);
                }
                keep
            }
            Verdict::Refused => {
                self.launch_now = true;
                self.tally.failed += 1;
                self.tally.refused += 1;
                // Kept while nothing else is: a negative answer or a
                // rejection outranks a refusal.
                let t = &mut self.tally;
                let keep = t.refusal.is_none() && t.rejection.is_none() && t.negative.is_none();
                if keep {
                    t.refusal = Some(backend);
                }
                keep
            }
        }
    }

    /// When to poll again at the latest.
    pub fn next_wakeup(&self) -> Instant {
        match self.next_at {
            Some(at) => at.min(self.deadline),
            None => self.deadline,
        }
    }

    /// Backends asked that have not answered (silent so far).
    pub fn unfinished(&self) -> impl Iterator<Item = usize> + '_ {
        self.candidates
            .iter()
            .zip(&self.outcomes)
            .filter(|(_, o)| o.is_none())
            .map(|(&i, _)| i)
    }

    /// Whether a backend still silent had a re-ask held back by the hedge
    /// budget: the LS did not ask again while time remained, so its
    /// silence proves nothing (the deadline's answer is SERVFAIL, not a
    /// made-up "no such name").
    pub fn held_back(&self) -> bool {
        self.outcomes
            .iter()
            .zip(&self.held)
            .any(|(o, &h)| o.is_none() && h)
    }

    /// Backends asked so far, in order.
    pub fn asked(&self) -> impl Iterator<Item = usize> + '_ {
        self.candidates.iter().take(self.outcomes.len()).copied()
    }

    /// Whether backend `i` gave a negative answer.
    pub fn said_negative(&self, i: usize) -> bool {
        self.candidates
            .iter()
            .zip(&self.outcomes)
            .any(|(&c, o)| c == i && matches!(o, Some(Verdict::NxDomain | Verdict::NoData)))
    }

    /// Whether backend `i` refused the query (REFUSED).
    pub fn said_refused(&self, i: usize) -> bool {
        self.candidates
            .iter()
            .zip(&self.outcomes)
            .any(|(&c, o)| c == i && *o == Some(Verdict::Refused))
    }

    /// The answers so far.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A response header: rcode, AA, answer and authority counts.
    fn hdr(rcode: u8, aa: bool, an: u16, ns: u16) -> WireHeader {
        WireHeader {
            id: 1,
            flags: 0x8000 | if aa { 0x0400 } else { 0 } | u16::from(rcode),
            qdcount: 1,
            ancount: an,
            nscount: ns,
        }
    }

    #[test]
    fn verdicts() {
        use Layout::*;
        assert_eq!(classify(&hdr(0, true, 1, 0), Partitioned), Verdict::Final);
        assert_eq!(
            classify(&hdr(3, true, 0, 1), Partitioned),
            Verdict::NxDomain
        );
        assert_eq!(classify(&hdr(3, true, 0, 1), Replicated), Verdict::Final);
        // A CNAME whose target another partition holds: NXDOMAIN with the CNAME.
        assert_eq!(classify(&hdr(3, true, 1, 1), Partitioned), Verdict::Final);
        // NODATA (AA, SOA in authority) is as inconclusive as NXDOMAIN.
        assert_eq!(classify(&hdr(0, true, 0, 1), Partitioned), Verdict::NoData);
        assert_eq!(classify(&hdr(0, false, 0, 0), Partitioned), Verdict::NoData);
        assert_eq!(classify(&hdr(0, true, 0, 1), Replicated), Verdict::Final);
        // A referral (no AA, NS in authority) is a positive answer.
        assert_eq!(classify(&hdr(0, false, 0, 2), Partitioned), Verdict::Final);
        for rc in [1, 2, 4] {
            assert_eq!(
                classify(&hdr(rc, false, 0, 0), Partitioned),
                Verdict::Failed
            );
            assert_eq!(classify(&hdr(rc, false, 0, 0), Replicated), Verdict::Failed);
        }
        for layout in [Partitioned, Replicated] {
            assert_eq!(classify(&hdr(5, false, 0, 0), layout), Verdict::Refused);
        }
    }

    fn tally(backends: usize, answers: &[Verdict]) -> Tally {
        let mut t = Tally {
            backends,
            asked: answers.len(),
            ..Tally::default()
        };
        for (i, v) in answers.iter().enumerate() {
            match v {
                Verdict::Failed => t.failed += 1,
                Verdict::Final => unreachable!("a final answer ends the query"),
                v => {
                    t.negative(i, *v);
                }
            }
        }
        t
    }

    #[test]
    fn every_backend_negative_passes_nodata_before_nxdomain() {
        use Verdict::*;
        assert_eq!(
            settle(&tally(3, &[NxDomain, NoData, NxDomain]), false),
            Settled::PassOn(1)
        );
        assert_eq!(
            settle(&tally(2, &[NxDomain, NxDomain]), false),
            Settled::PassOn(1)
        );
        assert_eq!(
            settle(&tally(2, &[NoData, NoData]), false),
            Settled::PassOn(0)
        );
    }

    #[test]
    fn a_backend_not_heard_from_makes_negatives_unproven() {
        use Verdict::*;
        // One of two backends skipped as down.
        assert_eq!(settle(&tally(2, &[NxDomain]), false), Settled::Unproven);
        // One failed, one negative.
        assert_eq!(
            settle(&tally(2, &[NxDomain, Failed]), false),
            Settled::Unproven
        );
        // One silent until the deadline.
        let mut t = tally(2, &[NxDomain]);
        t.asked = 2;
        assert_eq!(settle(&t, true), Settled::Unproven);
    }

    #[test]
    fn all_failed_is_servfail_before_the_deadline_only() {
        use Verdict::*;
        assert_eq!(
            settle(&tally(2, &[Failed, Failed]), false),
            Settled::AllFailed
        );
        assert_eq!(
            settle(&tally(2, &[Failed, Failed]), true),
            Settled::Unproven
        );
    }

    // ---- the state machine, on a made-up clock ----

    const MS: Duration = Duration::from_millis(1);

    /// Hedge delay 20 ms, per-try timeout 200 ms, `tokens` hedges allowed.
    struct Fixed {
        strategy: Strategy,
        tokens: Cell<u32>,
        refused: Cell<u32>,
        /// What the backends answered since a copy.
        heard: Cell<Heard>,
    }

    impl Pacing for Fixed {
        fn spacing(&self, _i: usize) -> Option<Duration> {
            match self.strategy {
                Strategy::Hedge => Some(20 * MS),
                Strategy::Sequential => Some(200 * MS),
                Strategy::Race => None,
            }
        }
        fn try_timeout(&self) -> Duration {
            200 * MS
        }
        fn reask_after(&self, _i: usize) -> Duration {
            20 * MS
        }
        fn take_hedge_token(&self) -> bool {
            let t = self.tokens.get();
            if t == 0 {
                self.refused.set(self.refused.get() + 1);
                return false;
            }
            self.tokens.set(t - 1);
            true
        }
        fn heard(&self, _i: usize, _sent: Instant) -> Heard {
            self.heard.get()
        }
    }

    fn pacing(strategy: Strategy, tokens: u32) -> Fixed {
        Fixed {
            strategy,
            tokens: Cell::new(tokens),
            refused: Cell::new(0),
            heard: Cell::new(Heard::Earlier),
        }
    }

    /// A resolution over backends 0..n (in order) starting at `t0`, deadline 1500 ms.
    fn start(strategy: Strategy, layout: Layout, n: usize, t0: Instant) -> Resolution {
        let c: Vec<usize> = (0..n).collect();
        Resolution::new(strategy, layout, &c, n, t0, t0 + 1500 * MS)
    }

    /// Every step at `now` until Wait or Done.
    fn steps(r: &mut Resolution, now: Instant, p: &Fixed) -> Vec<Step> {
        let mut out = Vec::new();
        loop {
            let s = r.poll(now, p);
            out.push(s);
            if !matches!(s, Step::Launch { .. }) {
                return out;
            }
        }
    }

    fn launch(backend: usize, hedge: bool) -> Step {
        Step::Launch { backend, hedge }
    }

    #[test]
    fn hedge_asks_the_next_backend_after_the_delay_and_a_hedge_can_win() {
        let t0 = Instant::now();
        let p = pacing(Strategy::Hedge, 10);
        let mut r = start(Strategy::Hedge, Layout::Replicated, 3, t0);
        assert_eq!(steps(&mut r, t0, &p), [launch(0, false), Step::Wait]);
        assert_eq!(r.next_wakeup(), t0 + 20 * MS);
        assert_eq!(steps(&mut r, t0 + 19 * MS, &p), [Step::Wait]);
        assert_eq!(
            steps(&mut r, t0 + 20 * MS, &p),
            [launch(1, true), Step::Wait]
        );
        assert_eq!(r.next_wakeup(), t0 + 40 * MS);
        r.on_outcome(1, Verdict::Final);
        let end = End::Win {
            backend: 1,
            hedge: true,
        };
        assert_eq!(steps(&mut r, t0 + 25 * MS, &p), [Step::Done(end)]);
        // A late answer of the loser changes nothing.
        assert!(!r.on_outcome(0, Verdict::Final));
        assert_eq!(r.poll(t0 + 30 * MS, &p), Step::Done(end));
    }

    #[test]
    fn a_spent_budget_fails_over_at_the_per_try_timeout() {
        let t0 = Instant::now();
        let p = pacing(Strategy::Hedge, 0);
        let mut r = start(Strategy::Hedge, Layout::Replicated, 2, t0);
        assert_eq!(steps(&mut r, t0, &p), [launch(0, false), Step::Wait]);
        // The hedge delay passes: no token, so no hedge; wait for the failover.
        assert_eq!(steps(&mut r, t0 + 20 * MS, &p), [Step::Wait]);
        assert_eq!(p.refused.get(), 1);
        assert_eq!(r.next_wakeup(), t0 + 200 * MS);
        assert_eq!(steps(&mut r, t0 + 199 * MS, &p), [Step::Wait]);
        // Failover is not a hedge and takes no token.
        assert_eq!(
            steps(&mut r, t0 + 200 * MS, &p),
            [launch(1, false), Step::Wait]
        );
        assert_eq!(p.refused.get(), 1);
        r.on_outcome(1, Verdict::Final);
        let end = End::Win {
            backend: 1,
            hedge: false,
        };
        assert_eq!(r.poll(t0 + 201 * MS, &p), Step::Done(end));
    }

    #[test]
    fn sequential_moves_on_after_the_try_timeout_or_at_once_after_an_error() {
        let t0 = Instant::now();
        let p = pacing(Strategy::Sequential, 0);
        let mut r = start(Strategy::Sequential, Layout::Replicated, 3, t0);
        assert_eq!(steps(&mut r, t0, &p), [launch(0, false), Step::Wait]);
        assert_eq!(steps(&mut r, t0 + 199 * MS, &p), [Step::Wait]);
        assert_eq!(
            steps(&mut r, t0 + 200 * MS, &p),
            [launch(1, false), Step::Wait]
        );
        r.on_outcome(1, Verdict::Failed); // SERVFAIL: next at once
        assert_eq!(
            steps(&mut r, t0 + 210 * MS, &p),
            [launch(2, false), Step::Wait]
        );
        assert_eq!(p.refused.get(), 0, "no budget involved");
    }

    /// A try that failed without an answer (the fast path's refused send,
    /// the async path's send error) moves `hedge` on at once, not at the
    /// hedge delay, and not as a hedge (no budget token); when every try
    /// failed the query ends at once, SERVFAIL.
    #[test]
    fn hedge_moves_on_at_once_after_a_failed_try_and_all_failed_ends_at_once() {
        let t0 = Instant::now();
        let p = pacing(Strategy::Hedge, 0);
        let mut r = start(Strategy::Hedge, Layout::Replicated, 2, t0);
        assert_eq!(steps(&mut r, t0, &p), [launch(0, false), Step::Wait]);
        r.on_outcome(0, Verdict::Failed);
        assert_eq!(steps(&mut r, t0, &p), [launch(1, false), Step::Wait]);
        assert_eq!(p.refused.get(), 0, "no budget involved");
        r.on_outcome(1, Verdict::Failed);
        assert_eq!(steps(&mut r, t0, &p), [Step::Done(End::AllFailed)]);
    }

    #[test]
    fn a_rejection_is_not_final_and_passed_on_only_when_every_backend_rejects() {
        let t0 = Instant::now();
        let p = pacing(Strategy::Race, 0);
        // One backend rejects, the other answers: the answer wins.
        let mut r = start(Strategy::Race, Layout::Replicated, 2, t0);
        assert_eq!(
            steps(&mut r, t0, &p),
            [launch(0, false), launch(1, false), Step::Wait]
        );
        assert!(r.on_outcome(0, Verdict::Rejected), "the rejection is kept");
        assert_eq!(r.poll(t0 + MS, &p), Step::Wait);
        r.on_outcome(1, Verdict::Final);
        let win = End::Win {
            backend: 1,
            hedge: false,
        };
        assert_eq!(r.poll(t0 + 2 * MS, &p), Step::Done(win));
        // Both reject: the first rejection is passed on.
        let mut r = start(Strategy::Race, Layout::Replicated, 2, t0);
        steps(&mut r, t0, &p);
        assert!(r.on_outcome(1, Verdict::Rejected));
        assert!(!r.on_outcome(0, Verdict::Rejected), "the first is kept");
        assert_eq!(r.poll(t0 + MS, &p), Step::Done(End::PassOn(1)));
        // A rejection and a SERVFAIL: SERVFAIL, as when all fail.
        let mut r = start(Strategy::Race, Layout::Replicated, 2, t0);
        steps(&mut r, t0, &p);
        r.on_outcome(0, Verdict::Rejected);
        r.on_outcome(1, Verdict::Failed);
        assert_eq!(r.poll(t0 + MS, &p), Step::Done(End::AllFailed));
        // Partitioned: a negative answer outranks a rejection.
        let mut r = start(Strategy::Race, Layout::Partitioned, 2, t0);
        steps(&mut r, t0, &p);
        assert!(r.on_outcome(0, Verdict::Rejected));
        assert!(
            r.on_outcome(1, Verdict::NxDomain),
            "the negative replaces it"
        );
        assert_eq!(
            r.poll(t0 + MS, &p),
            Step::Done(End::OnTimeout { timed_out: false })
        );
    }

    #[test]
    fn race_asks_everyone_and_all_failing_is_servfail() {
        let t0 = Instant::now();
        let p = pacing(Strategy::Race, 0);
        let mut r = start(Strategy::Race, Layout::Partitioned, 2, t0);
        assert_eq!(
            steps(&mut r, t0, &p),
            [launch(0, false), launch(1, false), Step::Wait]
        );
        r.on_outcome(0, Verdict::Failed);
        assert_eq!(r.poll(t0 + MS, &p), Step::Wait);
        r.on_outcome(1, Verdict::Failed);
        assert_eq!(r.poll(t0 + 2 * MS, &p), Step::Done(End::AllFailed));
    }

    #[test]
    fn partitioned_negatives_move_on_at_once_and_the_positive_wins() {
        let t0 = Instant::now();
        let p = pacing(Strategy::Hedge, 10);
        let mut r = start(Strategy::Hedge, Layout::Partitioned, 2, t0);
        assert_eq!(steps(&mut r, t0, &p), [launch(0, false), Step::Wait]);
        assert!(r.on_outcome(0, Verdict::NoData), "the NODATA is kept");
        // At once, not after the hedge delay, and without a token.
        assert_eq!(steps(&mut r, t0 + MS, &p), [launch(1, false), Step::Wait]);
        r.on_outcome(1, Verdict::Final);
        let end = End::Win {
            backend: 1,
            hedge: false,
        };
        assert_eq!(r.poll(t0 + 2 * MS, &p), Step::Done(end));
    }

    #[test]
    fn partitioned_all_negative_passes_on_and_a_skipped_backend_makes_it_unproven() {
        let t0 = Instant::now();
        let p = pacing(Strategy::Race, 0);
        let mut r = start(Strategy::Race, Layout::Partitioned, 2, t0);
        steps(&mut r, t0, &p);
        assert!(r.on_outcome(0, Verdict::NxDomain));
        assert!(r.on_outcome(1, Verdict::NoData), "NODATA preferred");
        assert_eq!(r.poll(t0 + MS, &p), Step::Done(End::PassOn(1)));

        // Three backends, one down (not a candidate).
        let mut r = Resolution::new(
            Strategy::Race,
            Layout::Partitioned,
            &[0, 2],
            3,
            t0,
            t0 + 1500 * MS,
        );
        steps(&mut r, t0, &p);
        r.on_outcome(0, Verdict::NxDomain);
        r.on_outcome(2, Verdict::NxDomain);
        assert_eq!(
            r.poll(t0 + MS, &p),
            Step::Done(End::OnTimeout { timed_out: false })
        );
        assert!(r.said_negative(0) && r.said_negative(2) && !r.said_negative(1));
    }

    #[test]
    fn the_deadline_ends_it_and_names_the_silent() {
        let t0 = Instant::now();
        let p = pacing(Strategy::Race, 0);
        let mut r = start(Strategy::Race, Layout::Partitioned, 2, t0);
        steps(&mut r, t0, &p);
        r.on_outcome(0, Verdict::NxDomain);
        assert_eq!(r.poll(t0 + 1499 * MS, &p), Step::Wait);
        assert_eq!(r.next_wakeup(), t0 + 1500 * MS);
        assert_eq!(
            r.poll(t0 + 1500 * MS, &p),
            Step::Done(End::OnTimeout { timed_out: true })
        );
        assert_eq!(r.unfinished().collect::<Vec<_>>(), [1]);
    }

    // ---- re-asks ----

    #[test]
    fn reasks_come_at_growing_gaps_spaced_from_the_last_launch() {
        let t0 = Instant::now();
        // The first: its delay after the last launch (to anyone).
        assert_eq!(reask_due(2 * MS, 0, t0, t0 + 5 * MS), t0 + 7 * MS);
        // Then at least 100, 200, 400 ms after its own last copy...
        assert_eq!(reask_due(2 * MS, 1, t0, t0), t0 + 100 * MS);
        assert_eq!(reask_due(2 * MS, 2, t0, t0), t0 + 200 * MS);
        assert_eq!(reask_due(2 * MS, 3, t0, t0), t0 + 400 * MS);
        // ... or its own delay, when that is longer...
        assert_eq!(reask_due(200 * MS, 1, t0, t0), t0 + 200 * MS);
        assert_eq!(reask_due(500 * MS, 2, t0, t0), t0 + 500 * MS);
        // ... and never within its delay of another launch.
        assert_eq!(reask_due(2 * MS, 1, t0, t0 + 99 * MS), t0 + 101 * MS);
        assert!(reask_due(MS, 200, t0, t0) <= t0 + REASK_GAP_CAP);
    }

    /// Asks `r` at each of `times` (ms after `t0`) and returns the launches.
    fn launches_over(r: &mut Resolution, t0: Instant, p: &Fixed, until: u64) -> Vec<(u64, Step)> {
        let mut out = Vec::new();
        for ms in 0..until {
            for s in steps(r, t0 + u32::try_from(ms).unwrap() * MS, p) {
                if matches!(s, Step::Launch { .. }) {
                    out.push((ms, s));
                }
            }
        }
        out
    }

    /// A lost datagram under `sequential` (one backend) or `race`: asked
    /// again after the delay, then at growing gaps up to 400 ms, while time
    /// remains, each with a token (the backend serves others); an answer
    /// to any copy wins.
    #[test]
    fn every_strategy_reasks_a_silent_backend_while_time_remains() {
        for strategy in [Strategy::Sequential, Strategy::Race, Strategy::Hedge] {
            let t0 = Instant::now();
            let p = pacing(strategy, 10);
            let mut r = start(strategy, Layout::Replicated, 1, t0);
            let got = launches_over(&mut r, t0, &p, 1500);
            let want: Vec<(u64, Step)> = [
                (0, false),
                (20, true),
                (120, true),
                (320, true),
                (720, true),
                (1120, true),
            ]
            .iter()
            .map(|&(ms, h)| (ms, launch(0, h)))
            .collect();
            assert_eq!(got, want, "{strategy:?}");
            assert_eq!(p.tokens.get(), 5, "{strategy:?}: a token each");
            assert_eq!(r.poll(t0 + 1499 * MS, &p), Step::Wait);
            // The restarted backend answers the copy of 720 ms.
            r.on_outcome(0, Verdict::Final);
            let end = End::Win {
                backend: 0,
                hedge: true,
            };
            assert_eq!(r.poll(t0 + 721 * MS, &p), Step::Done(end), "{strategy:?}");
        }
    }

    /// F2: with no budget the same backend, serving others, is never asked
    /// twice (no re-ask at the per-try timeout for free); moving on to
    /// another backend stays free. The query says a re-ask was held back,
    /// so its deadline answer is not a made-up "no such name".
    #[test]
    fn without_a_token_no_backend_is_asked_twice() {
        for strategy in [Strategy::Sequential, Strategy::Race, Strategy::Hedge] {
            let t0 = Instant::now();
            let p = pacing(strategy, 0);
            let mut r = start(strategy, Layout::Replicated, 2, t0);
            let got = launches_over(&mut r, t0, &p, 1500);
            let backends: Vec<usize> = got
                .iter()
                .filter_map(|(_, s)| match s {
                    Step::Launch { backend, .. } => Some(*backend),
                    _ => None,
                })
                .collect();
            assert_eq!(backends, [0, 1], "{strategy:?}: each once");
            assert!(p.refused.get() >= 2, "{strategy:?}: re-asks tried, refused");
            assert!(r.held_back(), "{strategy:?}");
            assert_eq!(
                r.poll(t0 + 1500 * MS, &p),
                Step::Done(End::OnTimeout { timed_out: true })
            );
        }
    }

    /// A partitioned query whose other backend said "no": the silent one
    /// (restarting) is asked again until it answers, not answered "no such
    /// name" after the first re-ask.
    #[test]
    fn a_partition_silent_while_it_restarts_is_asked_until_it_answers() {
        let t0 = Instant::now();
        let p = pacing(Strategy::Hedge, 100);
        let mut r = start(Strategy::Hedge, Layout::Partitioned, 2, t0);
        assert_eq!(steps(&mut r, t0, &p), [launch(0, false), Step::Wait]);
        assert_eq!(
            steps(&mut r, t0 + 20 * MS, &p),
            [launch(1, true), Step::Wait]
        );
        r.on_outcome(1, Verdict::NxDomain);
        let got = launches_over(&mut r, t0 + 21 * MS, &p, 1479);
        let at: Vec<u64> = got.iter().map(|(ms, _)| ms + 21).collect();
        assert_eq!(at, [40, 140, 340, 740, 1140]);
        assert!(got.iter().all(|(_, s)| *s == launch(0, true)));
        r.on_outcome(0, Verdict::Final);
        assert!(matches!(
            r.poll(t0 + 741 * MS, &p),
            Step::Done(End::Win { backend: 0, .. })
        ));
    }

    /// A backend that answers nothing since the copy (restarting) is
    /// re-asked without a token: a restart under load does not spend the
    /// budget, and the query is not held back.
    #[test]
    fn a_backend_silent_to_everyone_is_reasked_free() {
        let t0 = Instant::now();
        let p = pacing(Strategy::Hedge, 0);
        p.heard.set(Heard::Nothing);
        let mut r = start(Strategy::Hedge, Layout::Replicated, 1, t0);
        let got = launches_over(&mut r, t0, &p, 1500);
        assert_eq!(got.len(), 6, "the first copy and five re-asks: {got:?}");
        assert_eq!(p.refused.get(), 0);
        assert!(!r.held_back());
    }

    /// Hostile read (today): a backend never heard from (or silent for
    /// long) is away: its re-asks take tokens, and one refused does not
    /// turn the deadline's "nobody answers" NXDOMAIN into SERVFAIL.
    #[test]
    fn a_backend_away_is_reasked_with_tokens_and_its_silence_is_its_answer() {
        let t0 = Instant::now();
        let p = pacing(Strategy::Hedge, 0);
        p.heard.set(Heard::Away);
        let mut r = start(Strategy::Hedge, Layout::Replicated, 1, t0);
        let got = launches_over(&mut r, t0, &p, 1500);
        assert_eq!(got.len(), 1, "no re-ask without a token: {got:?}");
        assert!(p.refused.get() >= 1);
        assert!(!r.held_back(), "its silence proves what it can");
    }

    /// A backend that answered a copy sent after this one (so this one was
    /// lost) gets one re-ask free; more take tokens.
    #[test]
    fn a_lost_copy_is_replaced_once_free() {
        let t0 = Instant::now();
        let p = pacing(Strategy::Sequential, 0);
        p.heard.set(Heard::Later);
        let mut r = start(Strategy::Sequential, Layout::Replicated, 1, t0);
        let got = launches_over(&mut r, t0, &p, 1500);
        let at: Vec<u64> = got.iter().map(|(ms, _)| *ms).collect();
        assert_eq!(at, [0, 20], "one free re-ask");
        assert!(p.refused.get() >= 1);
        assert!(r.held_back());
    }

    // ---- refusals (REFUSED: "not my zone") ----

    /// Every backend refused: the first refusal is passed on (as dnsdist
    /// does), not a made-up SERVFAIL; a refusal among other failures, or
    /// with a backend not asked (down), is SERVFAIL as before.
    #[test]
    fn a_refusal_is_passed_on_only_when_every_backend_refused() {
        let t0 = Instant::now();
        let p = pacing(Strategy::Race, 0);
        for layout in [Layout::Replicated, Layout::Partitioned] {
            let mut r = start(Strategy::Race, layout, 2, t0);
            steps(&mut r, t0, &p);
            assert!(r.on_outcome(1, Verdict::Refused), "{layout}: kept");
            assert!(
                !r.on_outcome(0, Verdict::Refused),
                "{layout}: the first kept"
            );
            assert_eq!(r.poll(t0 + MS, &p), Step::Done(End::PassOn(1)), "{layout}");
            assert!(r.said_refused(0) && r.said_refused(1));
        }
        // A refusal and a SERVFAIL: SERVFAIL.
        let mut r = start(Strategy::Race, Layout::Replicated, 2, t0);
        steps(&mut r, t0, &p);
        r.on_outcome(0, Verdict::Refused);
        r.on_outcome(1, Verdict::Failed);
        assert_eq!(r.poll(t0 + MS, &p), Step::Done(End::AllFailed));
        // A refusal and a rejection: the rejection (the query is at fault).
        let mut r = start(Strategy::Race, Layout::Replicated, 2, t0);
        steps(&mut r, t0, &p);
        assert!(r.on_outcome(0, Verdict::Refused));
        assert!(r.on_outcome(1, Verdict::Rejected), "outranks the refusal");
        assert_eq!(r.poll(t0 + MS, &p), Step::Done(End::PassOn(1)));
        // One of two backends down (not a candidate), the other refused.
        let mut r = Resolution::new(
            Strategy::Race,
            Layout::Replicated,
            &[0],
            2,
            t0,
            t0 + 1500 * MS,
        );
        steps(&mut r, t0, &p);
        r.on_outcome(0, Verdict::Refused);
        assert_eq!(r.poll(t0 + MS, &p), Step::Done(End::AllFailed));
    }

    /// Partitioned (ls-core S1): a backend that refused holds no name of the
    /// zone, so the other's NXDOMAIN (or NODATA) is conclusive and passed
    /// on, whichever answered first; a backend silent still makes it
    /// unproven.
    #[test]
    fn partitioned_a_refusal_makes_the_others_negatives_conclusive() {
        let t0 = Instant::now();
        let p = pacing(Strategy::Hedge, 10);
        for refused_first in [true, false] {
            let mut r = start(Strategy::Hedge, Layout::Partitioned, 2, t0);
            assert_eq!(steps(&mut r, t0, &p), [launch(0, false), Step::Wait]);
            let (first, second) = if refused_first {
                (Verdict::Refused, Verdict::NxDomain)
            } else {
                (Verdict::NxDomain, Verdict::Refused)
            };
            assert!(r.on_outcome(0, first));
            assert_eq!(steps(&mut r, t0 + MS, &p), [launch(1, false), Step::Wait]);
            assert_eq!(
                r.on_outcome(1, second),
                refused_first,
                "the negative is kept"
            );
            let negative = if refused_first { 1 } else { 0 };
            assert_eq!(r.poll(t0 + 2 * MS, &p), Step::Done(End::PassOn(negative)));
        }
        // Three backends: one refused, one NXDOMAIN, one silent to the deadline.
        let p = pacing(Strategy::Race, 0);
        let mut r = start(Strategy::Race, Layout::Partitioned, 3, t0);
        steps(&mut r, t0, &p);
        r.on_outcome(0, Verdict::Refused);
        r.on_outcome(1, Verdict::NxDomain);
        assert_eq!(r.poll(t0 + MS, &p), Step::Wait);
        assert_eq!(
            r.poll(t0 + 1500 * MS, &p),
            Step::Done(End::OnTimeout { timed_out: true })
        );
    }
}
