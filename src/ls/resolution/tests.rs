//! Test-only module: built under #[cfg(test)] (see `ls/resolution/mod.rs`).
//! The machine on a made-up clock: each strategy and layout, the hedge
//! budget, re-asks, rejections and refusals, the deadline.
use std::cell::Cell;
use std::time::Duration;

use super::*;

mod loss;
mod servfail;

const MS: Duration = Duration::from_millis(1);

/// Hedge delay 20 ms, per-try timeout 200 ms, `tokens` hedges allowed.
struct Fixed {
    strategy: Strategy,
    tokens: Cell<u32>,
    refused: Cell<u32>,
    /// What the backends answered since a copy.
    heard: Cell<Heard>,
    /// Calls of `spacing` and of `reask_after` (the schedule worked out).
    spaced: Cell<u32>,
    reasked: Cell<u32>,
    /// A silent backend's first re-ask after its copy (20 ms).
    reask: Cell<Duration>,
    /// How soon a silent copy is looked at for proof of loss (an hour:
    /// never before the other timers).
    loss_after: Cell<Duration>,
}

impl Pacing for Fixed {
    fn spacing(&self, _i: usize) -> Option<Duration> {
        self.spaced.set(self.spaced.get() + 1);
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
        self.reasked.set(self.reasked.get() + 1);
        self.reask.get()
    }
    fn loss_after(&self, _i: usize) -> Duration {
        self.loss_after.get()
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
        spaced: Cell::new(0),
        reasked: Cell::new(0),
        reask: Cell::new(20 * MS),
        loss_after: Cell::new(Duration::from_secs(3600)),
    }
}

/// A resolution over backends 0..n (in order) starting at `t0`, deadline 1500 ms.
fn start(strategy: Strategy, layout: Layout, n: usize, t0: Instant) -> Resolution {
    let c: Vec<usize> = (0..n).collect();
    Resolution::new(strategy, layout, &c, n, t0, t0 + 1500 * MS)
}

/// The clock's origin `t0` (now), [`pacing`] with `tokens` and a [`start`]ed
/// resolution, all under `strategy`.
fn begin(
    strategy: Strategy,
    layout: Layout,
    n: usize,
    tokens: u32,
) -> (Instant, Fixed, Resolution) {
    let t0 = Instant::now();
    (t0, pacing(strategy, tokens), start(strategy, layout, n, t0))
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

/// The end: backend `backend`'s answer wins; `hedge`: it was a hedge.
fn win(backend: usize, hedge: bool) -> Step {
    Step::Done(End::Win { backend, hedge })
}

#[test]
fn hedge_asks_the_next_backend_after_the_delay_and_a_hedge_can_win() {
    let (t0, p, mut r) = begin(Strategy::Hedge, Layout::Replicated, 3, 10);
    assert_eq!(steps(&mut r, t0, &p), [launch(0, false), Step::Wait]);
    assert_eq!(r.next_wakeup(), t0 + 20 * MS);
    assert_eq!(steps(&mut r, t0 + 19 * MS, &p), [Step::Wait]);
    assert_eq!(
        steps(&mut r, t0 + 20 * MS, &p),
        [launch(1, true), Step::Wait]
    );
    assert_eq!(r.next_wakeup(), t0 + 40 * MS);
    r.on_outcome(1, Verdict::Final);
    assert_eq!(steps(&mut r, t0 + 25 * MS, &p), [win(1, true)]);
    // A late answer of the loser changes nothing.
    assert!(!r.on_outcome(0, Verdict::Final));
    assert_eq!(r.poll(t0 + 30 * MS, &p), win(1, true));
}

/// The last candidate's launch does not work out its spacing: the poll
/// after it works out its re-ask schedule (one `reask_after`), which sets
/// the wake-up; its spacing was only ever overwritten. A candidate with
/// others after it still gets its spacing (when the next one is asked).
#[test]
fn the_last_candidates_schedule_is_worked_out_once() {
    for strategy in [Strategy::Hedge, Strategy::Sequential, Strategy::Race] {
        let (t0, p, mut r) = begin(strategy, Layout::Replicated, 1, 10);
        assert_eq!(steps(&mut r, t0, &p), [launch(0, false), Step::Wait]);
        assert_eq!(
            (p.spaced.get(), p.reasked.get()),
            (0, 1),
            "{strategy:?}: one backend"
        );
        assert_eq!(r.next_wakeup(), t0 + 20 * MS, "{strategy:?}: its re-ask");
        let (t0, p, mut r) = begin(strategy, Layout::Replicated, 2, 10);
        steps(&mut r, t0, &p);
        assert_eq!(p.spaced.get(), 1, "{strategy:?}: two backends");
    }
}

#[test]
fn a_spent_budget_fails_over_at_the_per_try_timeout() {
    let (t0, p, mut r) = begin(Strategy::Hedge, Layout::Replicated, 2, 0);
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
    assert_eq!(r.poll(t0 + 201 * MS, &p), win(1, false));
}

#[test]
fn sequential_moves_on_after_the_try_timeout_or_at_once_after_an_error() {
    let (t0, p, mut r) = begin(Strategy::Sequential, Layout::Replicated, 3, 0);
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
    let (t0, p, mut r) = begin(Strategy::Hedge, Layout::Replicated, 2, 0);
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
    assert_eq!(r.poll(t0 + 2 * MS, &p), win(1, false));
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
    let (t0, p, mut r) = begin(Strategy::Race, Layout::Partitioned, 2, 0);
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
    let (t0, p, mut r) = begin(Strategy::Hedge, Layout::Partitioned, 2, 10);
    assert_eq!(steps(&mut r, t0, &p), [launch(0, false), Step::Wait]);
    assert!(r.on_outcome(0, Verdict::NoData), "the NODATA is kept");
    // At once, not after the hedge delay, and without a token.
    assert_eq!(steps(&mut r, t0 + MS, &p), [launch(1, false), Step::Wait]);
    r.on_outcome(1, Verdict::Final);
    assert_eq!(r.poll(t0 + 2 * MS, &p), win(1, false));
}

#[test]
fn partitioned_all_negative_passes_on_and_a_skipped_backend_makes_it_unproven() {
    let (t0, p, mut r) = begin(Strategy::Race, Layout::Partitioned, 2, 0);
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
    let (t0, p, mut r) = begin(Strategy::Race, Layout::Partitioned, 2, 0);
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
        let (t0, p, mut r) = begin(strategy, Layout::Replicated, 1, 10);
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
        assert_eq!(r.poll(t0 + 721 * MS, &p), win(0, true), "{strategy:?}");
    }
}

/// With no budget the same backend, serving others, is never asked
/// twice (no re-ask at the per-try timeout for free); moving on to
/// another backend stays free. The query says a re-ask was held back,
/// so its deadline answer is not a made-up "no such name".
#[test]
fn without_a_token_no_backend_is_asked_twice() {
    for strategy in [Strategy::Sequential, Strategy::Race, Strategy::Hedge] {
        let (t0, p, mut r) = begin(strategy, Layout::Replicated, 2, 0);
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
    let (t0, p, mut r) = begin(Strategy::Hedge, Layout::Partitioned, 2, 100);
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

/// Partitioned: a backend that refused holds no name of the
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

#[test]
fn a_restarted_resolution_is_a_new_one_whatever_its_last_query_left() {
    // A query that went everywhere: hedged, re-asked with the budget
    // refusing (held back), a negative answer tallied, ended at its deadline.
    let (t0, p, mut r) = begin(Strategy::Hedge, Layout::Partitioned, 3, 1);
    r.without_reasks();
    steps(&mut r, t0, &p);
    steps(&mut r, t0 + 20 * MS, &p);
    r.on_outcome(0, Verdict::NxDomain);
    steps(&mut r, t0 + 40 * MS, &p);
    steps(&mut r, t0 + 1500 * MS, &p);
    assert!(matches!(r.poll(t0 + 1500 * MS, &p), Step::Done(_)));
    // Made the next query's in place, over other candidates and times.
    let t1 = t0 + 2000 * MS;
    r.restart(
        Strategy::Sequential,
        Layout::Replicated,
        (&[2, 0], 3),
        t1,
        t1 + 900 * MS,
    );
    let fresh = Resolution::new(
        Strategy::Sequential,
        Layout::Replicated,
        &[2, 0],
        3,
        t1,
        t1 + 900 * MS,
    );
    assert_eq!(format!("{r:?}"), format!("{fresh:?}"));
    // And it runs as the fresh one does.
    let p = pacing(Strategy::Sequential, 0);
    assert_eq!(steps(&mut r, t1, &p), [launch(2, false), Step::Wait]);
    assert_eq!(r.next_wakeup(), t1 + 200 * MS);
    assert_eq!(
        steps(&mut r, t1 + 200 * MS, &p),
        [launch(0, false), Step::Wait]
    );
}

/// Only a positive answer under `partitioned` excuses the others' silence:
/// they need not hold the name. A negative answer passed on, a failure or a
/// timeout excuses nothing, and under `replicated` nothing does.
#[test]
fn a_partitioned_win_excuses_the_silence_of_the_others() {
    let win = End::Win {
        backend: 0,
        hedge: false,
    };
    assert!(win.excuses_silence(Layout::Partitioned));
    assert!(!win.excuses_silence(Layout::Replicated));
    for end in [
        End::PassOn(0),
        End::AllFailed,
        End::OnTimeout { timed_out: true },
    ] {
        assert!(!end.excuses_silence(Layout::Partitioned), "{end:?}");
    }
}
