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
//! Re-asks of a silent backend, and what the machine asks of the policy in
//! force, are `pacing`'s (its header tells why the schedule is what it is);
//! what a response means and what the answers add up to, `verdict`'s.
//!
//! # Layout
//! - `mod.rs`: [`Resolution`], the machine, and its moves ([`Step`], [`End`]);
//! - `verdict`: [`Verdict`] (one response, by its header), [`Tally`] and
//!   [`settle`] (a query with no final answer);
//! - `pacing`: [`Pacing`] (the policy's timing, the hedge budget, what a
//!   backend was [`Heard`] answering) and the re-ask schedule ([`reask_due`]).

mod pacing;
mod verdict;

use smallvec::SmallVec;
use tokio::time::Instant;

use crate::config::{Layout, Strategy};

pub use pacing::{
    Heard, LOSS_CHECKS_MAX, Pacing, REASK_GAP_CAP, REASK_MAX, REASK_STEP, loss_check_due, reask_due,
};
pub use verdict::{Settled, Tally, Verdict, classify, settle};

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
    /// No useful answer, and backend `backend` gave an authoritative
    /// SERVFAIL ([`Verdict::AuthFailed`]): its response is the answer (no
    /// stale one, no `on_timeout` one).
    Servfail {
        /// Backend index.
        backend: usize,
        /// The deadline passed.
        timed_out: bool,
    },
}

impl End {
    /// Whether this end excuses the silence of the backends that did not
    /// answer (pure; both drivers ask it of an ended query's other
    /// attempts): a positive answer in the partitioned layout (the others
    /// need not hold the name, and may be silent for names they do not
    /// hold).
    pub fn excuses_silence(self, layout: Layout) -> bool {
        layout == Layout::Partitioned && matches!(self, End::Win { .. })
    }

    /// The backend whose response the client gets, if any.
    pub fn backend(&self) -> Option<usize> {
        match *self {
            End::Win { backend, .. } | End::PassOn(backend) => Some(backend),
            End::Servfail { backend, .. } => Some(backend),
            End::AllFailed | End::OnTimeout { .. } => None,
        }
    }

    /// Whether the deadline passed (the backends still silent timed out).
    pub fn timed_out(&self) -> bool {
        matches!(
            self,
            End::OnTimeout { timed_out: true }
                | End::Servfail {
                    timed_out: true,
                    ..
                }
        )
    }
}

/// Candidates held inline (no allocation for up to this many backends).
const INLINE: usize = 8;

/// A launched candidate's progress (by its position among the candidates).
#[derive(Debug, Clone, Copy)]
struct Launched {
    /// Its outcome; `None` while it is pending.
    outcome: Option<Verdict>,
    /// Launched (or re-asked) as a hedge.
    hedged: bool,
    /// Its attempts still out (two once re-asked).
    pending: u8,
    /// Its re-asks so far (those the budget refused included).
    reasks: u8,
    /// The budget refused one of its re-asks.
    held: bool,
    /// Its free re-ask of a lost copy is spent.
    replaced: bool,
    /// When it was last sent a copy.
    sent_at: Instant,
    /// Looks for that copy's loss so far ([`loss_check_due`]).
    checks: u8,
    /// Its copy was found lost while candidates were left (the next one
    /// was asked for it: once).
    lost: bool,
}

/// One client query's progress; see the module docs.
#[derive(Debug, Clone)]
pub struct Resolution {
    strategy: Strategy,
    layout: Layout,
    candidates: SmallVec<[usize; INLINE]>,
    /// The candidates, at the end, asked only as a last resort (drained by
    /// hand under `partitioned`): once every other asked has answered, or
    /// at `last_resort_at`.
    last_resort: usize,
    /// When a last resort is asked anyway: the per-try timeout after the
    /// last other candidate was asked.
    last_resort_at: Option<Instant>,
    /// While candidates are left: when a silent copy's loss is next looked
    /// for ([`loss_check_due`]).
    loss_at: Option<Instant>,
    /// Per launched candidate (by position), in one list: a launch is one
    /// push, a restart one clear.
    launched: SmallVec<[Launched; INLINE]>,
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
        let mut res = Resolution {
            strategy,
            layout,
            candidates: SmallVec::new(),
            last_resort: 0,
            last_resort_at: None,
            loss_at: None,
            launched: SmallVec::new(),
            reasks_off: false,
            tally: Tally::default(),
            deadline,
            next_at: None,
            last_launch: now,
            failover: false,
            launch_now: true,
            end: None,
        };
        res.restart(strategy, layout, (candidates, backends), now, deadline);
        res
    }

    /// Makes this one a new query's, as [`Resolution::new`] would, in
    /// place: its lists cleared, not dropped (a fast-path worker reuses
    /// the resolution of a flight that ended, and copies none of it).
    pub fn restart(
        &mut self,
        strategy: Strategy,
        layout: Layout,
        (candidates, backends): (&[usize], usize),
        now: Instant,
        deadline: Instant,
    ) {
        self.restart_with(strategy, layout, backends, (now, deadline), |c| {
            c.extend_from_slice(candidates);
            0
        });
    }

    /// [`Resolution::restart`] with its candidates written in place by
    /// `fill`, given the list emptied (an order writes them straight into
    /// it: no list made, returned and copied in); `fill` returns how many of
    /// them, at the end, are a last resort ([`Resolution::set_last_resort`]).
    pub fn restart_with(
        &mut self,
        strategy: Strategy,
        layout: Layout,
        backends: usize,
        (now, deadline): (Instant, Instant),
        fill: impl FnOnce(&mut SmallVec<[usize; INLINE]>) -> usize,
    ) {
        self.strategy = strategy;
        self.layout = layout;
        self.candidates.clear();
        let last_resort = fill(&mut self.candidates);
        self.last_resort = last_resort.min(self.candidates.len());
        self.last_resort_at = None;
        self.loss_at = None;
        self.launched.clear();
        self.reasks_off = false;
        self.tally = Tally {
            backends,
            ..Tally::default()
        };
        self.deadline = deadline;
        self.next_at = None;
        self.last_launch = now;
        self.failover = false;
        self.launch_now = true;
        self.end = None;
    }

    /// The last `n` candidates are a last resort (a backend drained by hand
    /// under `partitioned`, which no other can stand in for): each is asked
    /// only once every candidate asked before it has answered (negative or
    /// failed), or, failing that, a per-try timeout after the last of the
    /// others was asked (so a silent other does not keep its names from
    /// being answered). Never as a hedge: no budget token is taken.
    pub fn set_last_resort(&mut self, n: usize) {
        self.last_resort = n.min(self.candidates.len());
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
        let asked = self.launched.len();
        // Candidates left to ask (last resorts apart).
        let left = asked < self.regular();
        if !left {
            // Loss is looked for by the re-ask schedule from here on.
            self.loss_at = None;
        }
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
        if left && self.copy_lost(now, pacing) {
            // The backend asked answered a query sent after this one's
            // copy: the copy was lost, its try is over; move on (a
            // failover, no budget token), as after a failed answer.
            return self.launch(now, false, pacing);
        }
        let answered = self.launched.iter().all(|l| l.outcome.is_some());
        if !left && asked < self.candidates.len() {
            let due = self.last_resort_at.is_some_and(|at| at <= now);
            if answered || due {
                return self.launch(now, false, pacing);
            }
        }
        if asked == self.candidates.len() && answered {
            self.tally.asked = self.launched.len();
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

    /// The candidates asked in turn (the last resorts apart).
    fn regular(&self) -> usize {
        self.candidates.len() - self.last_resort
    }

    /// While candidates are left: whether a silent copy is proven lost now
    /// (its backend answered a query sent after it: [`Heard::Later`]),
    /// looked for at [`loss_check_due`]'s times; sets `loss_at` to the next
    /// look. Never over TCP ([`Resolution::without_reasks`]).
    fn copy_lost(&mut self, now: Instant, pacing: &impl Pacing) -> bool {
        self.loss_at = None;
        if self.reasks_off {
            return false;
        }
        let last_launch = self.last_launch;
        let mut next: Option<Instant> = None;
        for (&c, l) in self.candidates.iter().zip(self.launched.iter_mut()) {
            if l.outcome.is_some() || l.lost {
                continue;
            }
            let after = pacing.loss_after(c);
            while l.checks < LOSS_CHECKS_MAX {
                let at = loss_check_due(after, l.reasks, l.checks, l.sent_at, last_launch);
                if at > now {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    break;
                }
                if pacing.heard(c, l.sent_at) == Heard::Later {
                    l.lost = true;
                    return true;
                }
                l.checks += 1;
            }
        }
        self.loss_at = next;
        false
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
            .zip(&self.launched)
            .enumerate()
            .filter(|(_, (_, l))| l.outcome.is_none() && l.reasks < REASK_MAX)
            .map(|(pos, (&c, l))| {
                let due = reask_due(pacing.reask_after(c), l.reasks, l.sent_at, last_launch);
                // Sooner where its loss is looked for first (a schedule
                // slower than its latency: `sequential`'s per-try timeout).
                let check = (l.checks < LOSS_CHECKS_MAX)
                    .then(|| {
                        let after = pacing.loss_after(c);
                        loss_check_due(after, l.reasks, l.checks, l.sent_at, last_launch)
                    })
                    .filter(|&at| at < due);
                (check.unwrap_or(due), l.reasks, pos, c, check.is_some())
            })
            // The earliest due; at a tie, the one asked again least often.
            .min_by_key(|&(due, k, pos, _, _)| (due, k, pos));
        let Some((due, _, pos, backend, check)) = target else {
            self.next_at = None;
            return None;
        };
        self.next_at = Some(due);
        if due > now {
            return None;
        }
        let Some(l) = self.launched.get_mut(pos) else {
            self.next_at = None;
            return None;
        };
        let heard = pacing.heard(backend, l.sent_at);
        if check && heard != Heard::Later {
            // Not proven lost yet: looked for again later, or re-asked on
            // its own schedule.
            l.checks += 1;
            self.next_at = Some(now);
            return None;
        }
        l.reasks = l.reasks.saturating_add(1);
        l.checks = 0;
        let free = match heard {
            Heard::Nothing => true,
            Heard::Later => !std::mem::replace(&mut l.replaced, true),
            Heard::Earlier | Heard::Away => false,
        };
        if !free && !pacing.take_hedge_token() {
            // No budget for a backend that is serving (only slow, or this
            // copy lost): this re-ask is not sent (its load is not
            // doubled); a later one may be, and the deadline's answer says
            // the LS did not ask again.
            if heard != Heard::Away {
                l.held = true;
            }
            // Its next turn counts from this one, as if it had been sent.
            l.sent_at = now;
            self.next_at = Some(now);
            return None;
        }
        l.pending = l.pending.saturating_add(1);
        l.hedged = true;
        l.sent_at = now;
        self.last_launch = now;
        Some(Step::Launch {
            backend,
            hedge: true,
        })
    }

    fn launch(&mut self, now: Instant, hedge: bool, pacing: &impl Pacing) -> Step {
        let Some(&backend) = self.candidates.get(self.launched.len()) else {
            return Step::Wait;
        };
        self.launched.push(Launched {
            outcome: None,
            hedged: hedge,
            pending: 1,
            reasks: 0,
            held: false,
            replaced: false,
            sent_at: now,
            checks: 0,
            lost: false,
        });
        self.last_launch = now;
        self.failover = false;
        // The last candidate's spacing is not worked out: the poll after
        // this launch (a driver polls until `Wait`) finds no one left and
        // sets the next wake-up by the re-ask schedule ([`Resolution::reask`]),
        // which would only overwrite it.
        self.next_at = if self.launched.len() < self.regular() {
            pacing.spacing(backend).map(|d| now + d)
        } else {
            None
        };
        if self.launched.len() == self.regular() && self.last_resort > 0 {
            self.last_resort_at = Some(now + pacing.try_timeout());
        }
        Step::Launch { backend, hedge }
    }

    fn finish(&mut self, end: End) -> Step {
        // No useful answer: an authoritative SERVFAIL, if one came, is it.
        let end = match (end, self.tally.servfail) {
            (End::AllFailed, Some(backend)) => End::Servfail {
                backend,
                timed_out: false,
            },
            (End::OnTimeout { timed_out }, Some(backend)) => End::Servfail { backend, timed_out },
            (end, _) => end,
        };
        self.end = Some(end);
        self.tally.asked = self.launched.len();
        Step::Done(end)
    }

    /// Backend `backend`'s outcome: a response's verdict, or `Failed` for
    /// an error or a timeout. Returns true when this response is the
    /// negative one to keep (it may be passed on later).
    pub fn on_outcome(&mut self, backend: usize, verdict: Verdict) -> bool {
        let Some(pos) = self
            .candidates
            .iter()
            .take(self.launched.len())
            .position(|&c| c == backend)
        else {
            return false;
        };
        let hedge = match self.launched.get_mut(pos) {
            Some(l) if l.outcome.is_none() && self.end.is_none() => {
                l.pending = l.pending.saturating_sub(1);
                let failed = matches!(
                    verdict,
                    Verdict::Failed | Verdict::Rejected | Verdict::Refused
                );
                if failed && l.pending > 0 {
                    // This backend's other attempt may still answer.
                    return false;
                }
                l.outcome = Some(verdict);
                l.hedged
            }
            _ => return false,
        };
        match verdict {
            Verdict::Final => {
                self.end = Some(End::Win { backend, hedge });
                false
            }
            Verdict::NxDomain | Verdict::NoData => {
                self.launch_now = true;
                self.tally.negative(backend, verdict) && self.tally.servfail.is_none()
            }
            Verdict::Failed => {
                self.launch_now = true;
                self.tally.failed += 1;
                false
            }
            Verdict::AuthFailed => {
                // Failed as any SERVFAIL (the next candidate is asked), but
                // kept: it outranks negatives, rejections and refusals.
                self.launch_now = true;
                self.tally.failed += 1;
                let keep = self.tally.servfail.is_none();
                if keep {
                    self.tally.servfail = Some(backend);
                }
                keep
            }
            Verdict::Rejected => {
                self.launch_now = true;
                self.tally.failed += 1;
                self.tally.rejected += 1;
                // Kept while no negative answer is: the driver keeps one
                // response, and a negative one outranks a rejection.
                let t = &self.tally;
                let keep = t.rejection.is_none() && t.negative.is_none() && t.servfail.is_none();
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
                let keep = t.refusal.is_none()
                    && t.rejection.is_none()
                    && t.negative.is_none()
                    && t.servfail.is_none();
                if keep {
                    t.refusal = Some(backend);
                }
                keep
            }
        }
    }

    /// When to poll again at the latest.
    pub fn next_wakeup(&self) -> Instant {
        let last_resort = self
            .last_resort_at
            .filter(|_| self.launched.len() < self.candidates.len());
        [self.next_at, self.loss_at, last_resort]
            .into_iter()
            .flatten()
            .fold(self.deadline, Instant::min)
    }

    /// Backends asked that have not answered (silent so far).
    pub fn unfinished(&self) -> impl Iterator<Item = usize> + '_ {
        self.candidates
            .iter()
            .zip(&self.launched)
            .filter(|(_, l)| l.outcome.is_none())
            .map(|(&i, _)| i)
    }

    /// Whether a backend still silent had a re-ask held back by the hedge
    /// budget: the LS did not ask again while time remained, so its
    /// silence proves nothing (the deadline's answer is SERVFAIL, not a
    /// made-up "no such name").
    pub fn held_back(&self) -> bool {
        self.launched.iter().any(|l| l.outcome.is_none() && l.held)
    }

    /// Backends asked so far, in order.
    pub fn asked(&self) -> impl Iterator<Item = usize> + '_ {
        self.candidates.iter().take(self.launched.len()).copied()
    }

    /// Whether backend `i` gave a negative answer.
    pub fn said_negative(&self, i: usize) -> bool {
        self.candidates
            .iter()
            .zip(&self.launched)
            .any(|(&c, l)| c == i && matches!(l.outcome, Some(Verdict::NxDomain | Verdict::NoData)))
    }

    /// Whether backend `i` refused the query (REFUSED).
    pub fn said_refused(&self, i: usize) -> bool {
        self.candidates
            .iter()
            .zip(&self.launched)
            .any(|(&c, l)| c == i && l.outcome == Some(Verdict::Refused))
    }

    /// The answers so far.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }
}

#[cfg(test)]
mod tests;
