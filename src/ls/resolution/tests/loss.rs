//! Test-only module: built under #[cfg(test)] (see `ls/resolution/tests.rs`).
//! A lost copy is not waited out, and a last resort (a drained partition)
//! is asked only once the others have answered: the machine on a made-up
//! clock.
use super::*;

/// The launch times (ms after `t0`) of `got`.
fn times(got: &[(u64, Step)]) -> Vec<u64> {
    got.iter().map(|(ms, _)| *ms).collect()
}

/// Under `sequential` (re-ask schedule of 200 ms here) a copy proven lost
/// (the backend answered a query sent after it) is asked again as soon
/// as that is seen, then at the hedge-like gaps: six copies in the
/// deadline, not three. The first replacement is free; the others take
/// tokens.
#[test]
fn a_copy_proven_lost_is_asked_again_without_waiting_the_try_timeout() {
    let (t0, p, mut r) = begin(Strategy::Sequential, Layout::Replicated, 1, 10);
    p.reask.set(200 * MS);
    p.loss_after.set(5 * MS);
    p.heard.set(Heard::Later);
    let got = launches_over(&mut r, t0, &p, 1500);
    assert_eq!(times(&got), [0, 5, 105, 305, 705, 1105]);
    assert!(got.iter().skip(1).all(|(_, s)| *s == launch(0, true)));
    assert_eq!(p.tokens.get(), 6, "the first replacement free");
}

/// A copy not proven lost (the backend answered only older queries: it
/// is slow, not losing) waits for its per-try timeout as before: a slow
/// backend is not asked twice sooner.
#[test]
fn a_slow_backend_is_not_asked_again_before_its_schedule() {
    let (t0, p, mut r) = begin(Strategy::Sequential, Layout::Replicated, 1, 10);
    p.reask.set(200 * MS);
    p.loss_after.set(5 * MS);
    for heard in [Heard::Earlier, Heard::Nothing, Heard::Away] {
        p.heard.set(heard);
        let mut r2 = r.clone();
        let got = launches_over(&mut r2, t0, &p, 450);
        assert_eq!(times(&got), [0, 200, 400], "{heard:?}");
    }
    // The looks for proof come at doubling gaps: 5, 10, 20, 40, ... ms.
    assert_eq!(steps(&mut r, t0, &p), [launch(0, false), Step::Wait]);
    p.heard.set(Heard::Earlier);
    let mut looks = Vec::new();
    while r.next_wakeup() < t0 + 200 * MS {
        let now = r.next_wakeup();
        looks.push(now - t0);
        assert_eq!(steps(&mut r, now, &p), [Step::Wait]);
    }
    assert_eq!(
        looks,
        [5 * MS, 10 * MS, 20 * MS, 40 * MS, 80 * MS, 160 * MS]
    );
    // Proof seen at a later look: asked again then.
    let (t0, p, mut r) = begin(Strategy::Sequential, Layout::Replicated, 1, 10);
    p.reask.set(200 * MS);
    p.loss_after.set(5 * MS);
    steps(&mut r, t0, &p);
    assert_eq!(steps(&mut r, t0 + 5 * MS, &p), [Step::Wait]);
    p.heard.set(Heard::Later);
    assert_eq!(r.next_wakeup(), t0 + 10 * MS);
    assert_eq!(
        steps(&mut r, t0 + 10 * MS, &p),
        [launch(0, true), Step::Wait]
    );
}

/// With backends left to ask, a copy proven lost ends its try: the next
/// backend is asked then (a failover, no token), not after the per-try
/// timeout; the lost one is asked again once everyone has been.
#[test]
fn sequential_moves_on_once_the_copy_is_proven_lost() {
    for layout in [Layout::Replicated, Layout::Partitioned] {
        let (t0, p, mut r) = begin(Strategy::Sequential, layout, 2, 0);
        p.loss_after.set(5 * MS);
        p.heard.set(Heard::Later);
        assert_eq!(steps(&mut r, t0, &p), [launch(0, false), Step::Wait]);
        assert_eq!(r.next_wakeup(), t0 + 5 * MS, "{layout:?}");
        assert_eq!(
            steps(&mut r, t0 + 5 * MS, &p),
            [launch(1, false), Step::Wait],
            "{layout:?}"
        );
        // Backend 1 does not hold the name; backend 0's lost copy is
        // replaced (free, once).
        r.on_outcome(1, Verdict::NxDomain);
        let got = launches_over(&mut r, t0 + 6 * MS, &p, 100);
        assert_eq!(got.first(), Some(&(4, launch(0, true))), "{layout:?}");
        r.on_outcome(0, Verdict::Final);
        assert!(matches!(
            r.poll(t0 + 20 * MS, &p),
            Step::Done(End::Win { backend: 0, .. })
        ));
    }
}

/// Over TCP only (no datagram lost) nothing is looked for, nor re-asked.
#[test]
fn no_loss_is_looked_for_over_tcp() {
    let (t0, p, mut r) = begin(Strategy::Sequential, Layout::Replicated, 2, 10);
    r.without_reasks();
    p.loss_after.set(5 * MS);
    p.heard.set(Heard::Later);
    let got = launches_over(&mut r, t0, &p, 1500);
    assert_eq!(times(&got), [0, 200]);
}

/// The last candidate a last resort (a drained partition): asked only
/// once every other has answered, never as a hedge, under every strategy.
#[test]
fn a_last_resort_is_asked_once_the_others_have_answered() {
    for strategy in [Strategy::Sequential, Strategy::Race, Strategy::Hedge] {
        let (t0, p, mut r) = begin(strategy, Layout::Partitioned, 3, 10);
        r.set_last_resort(1);
        let first = steps(&mut r, t0, &p);
        let got = launches_over(&mut r, t0, &p, 150);
        let asked: Vec<Step> = first
            .iter()
            .copied()
            .filter(|s| matches!(s, Step::Launch { .. }))
            .chain(got.iter().map(|(_, s)| *s))
            .filter(|s| *s != launch(0, true) && *s != launch(1, true))
            .collect();
        assert!(
            !asked
                .iter()
                .any(|s| matches!(s, Step::Launch { backend: 2, .. })),
            "{strategy:?}: the last resort asked while the others are silent: {asked:?}"
        );
        let now = t0 + 150 * MS;
        r.on_outcome(0, Verdict::NxDomain);
        if strategy == Strategy::Sequential && r.asked().count() < 2 {
            assert_eq!(steps(&mut r, now, &p), [launch(1, false), Step::Wait]);
        }
        r.on_outcome(1, Verdict::NoData);
        assert_eq!(
            steps(&mut r, now, &p),
            [launch(2, false), Step::Wait],
            "{strategy:?}"
        );
        r.on_outcome(2, Verdict::Final);
        assert_eq!(r.poll(now, &p), win(2, false), "{strategy:?}");
    }
}

/// Every other backend silent: the last resort is asked anyway at the
/// per-try timeout after the last of them (its names are no one else's),
/// and every backend's "no" is a real NXDOMAIN passed on.
#[test]
fn a_last_resort_is_asked_at_the_try_timeout_and_completes_the_proof() {
    let (t0, p, mut r) = begin(Strategy::Race, Layout::Partitioned, 2, 0);
    r.set_last_resort(1);
    assert_eq!(steps(&mut r, t0, &p), [launch(0, false), Step::Wait]);
    assert_eq!(r.next_wakeup(), t0 + 20 * MS, "backend 0's re-ask");
    let got = launches_over(&mut r, t0 + MS, &p, 300);
    let last: Vec<u64> = got
        .iter()
        .filter(|(_, s)| *s == launch(1, false))
        .map(|(ms, _)| ms + 1)
        .collect();
    assert_eq!(last, [200], "at the per-try timeout");
    r.on_outcome(0, Verdict::NxDomain);
    r.on_outcome(1, Verdict::NxDomain);
    assert_eq!(r.poll(t0 + 301 * MS, &p), Step::Done(End::PassOn(1)));
}
