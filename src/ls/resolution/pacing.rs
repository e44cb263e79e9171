//! What a [`Resolution`](super::Resolution) asks of the policy in force
//! ([`Pacing`]: the spacing of its launches, the hedge budget, what a
//! backend was [`Heard`] answering) and the re-ask schedule ([`reask_due`]),
//! pure.
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
//! A lost copy is not waited out: where the schedule above is slower
//! than the backend's own pace (`sequential`'s per-try timeout), the
//! machine looks sooner for proof that a silent copy was lost, the backend
//! having answered a query sent *after* it ([`Heard::Later`]): first at the
//! re-ask the hedge delay would give it ([`Pacing::loss_after`]), then at
//! doubling gaps ([`loss_check_due`]), until its own re-ask is due. A copy
//! proven lost is then re-asked at once (under the same free-once/token
//! rule), or, while backends are left to ask, the next one is asked (its
//! try is over, as after a failed answer). So with loss alone the silent
//! backend is asked six times within the default deadline, not
//! three, under every strategy: the made-up answer needs every copy lost.
//!
//! At the deadline, a query whose silent backend had a re-ask held back by
//! the budget ([`Resolution::held_back`](super::Resolution::held_back)) is
//! not answered "no such name": time remained to ask again and the LS did
//! not, so the `on_timeout = "nxdomain"` answer becomes SERVFAIL (the
//! client's retry may get the name). Over TCP (a TCP client's ANY, which the
//! async driver sends its backends over TCP only) nothing is re-asked:
//! no datagram is lost there, and a stalled connection is the TCP pool's
//! to retire. What stays free of the budget: moving on to a backend *not
//! yet asked* (failover at `try_timeout_ms` when the budget
//! refused a hedge, or at once after a negative or failed answer).

use std::time::Duration;

use tokio::time::Instant;

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

/// Looks for a lost copy's proof per copy at most ([`loss_check_due`]).
pub const LOSS_CHECKS_MAX: u8 = 12;

/// When a silent backend's copy is next looked at for proof of its loss
/// (pure): at the re-ask it would get under a schedule of `loss_after`
/// ([`reask_due`]; `k` re-asks so far, its copy `sent`), then `checks`
/// looks later at gaps of `loss_after` doubling each time (1, 2, 4, ...).
pub fn loss_check_due(
    loss_after: Duration,
    k: u8,
    checks: u8,
    sent: Instant,
    last_launch: Instant,
) -> Instant {
    let first = reask_due(loss_after, k, sent, last_launch);
    let gaps = (1u32 << u32::from(checks.min(LOSS_CHECKS_MAX))) - 1;
    first + loss_after.saturating_mul(gaps)
}

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
    /// How soon after a copy to backend `i` its loss can be told from its
    /// answers to later queries (its hedge delay, at least twice its
    /// measured latency): a copy still silent then is looked at for proof
    /// of loss ([`loss_check_due`]).
    fn loss_after(&self, i: usize) -> Duration;
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
