//! Test-only module: built under #[cfg(test)] (see `ls/resolution/tests.rs`).
//! An authoritative SERVFAIL (a TS service with no live endpoint it can
//! see) is not final: the other backends are asked; it is the answer only
//! when none gives a useful one: the machine on a made-up clock.
use super::*;

/// Replicated: the first replica's authoritative SERVFAIL moves the query
/// on at once, and the other replica's positive answer wins.
#[test]
fn an_authoritative_servfail_moves_on_and_another_replica_answers() {
    for strategy in [Strategy::Hedge, Strategy::Sequential, Strategy::Race] {
        let (t0, p, mut r) = begin(strategy, Layout::Replicated, 2, 0);
        let first = steps(&mut r, t0, &p);
        assert_eq!(first[0], launch(0, false), "{strategy:?}");
        assert!(r.on_outcome(0, Verdict::AuthFailed), "its bytes are kept");
        let next = steps(&mut r, t0, &p);
        if strategy != Strategy::Race {
            assert_eq!(next, [launch(1, false), Step::Wait], "{strategy:?}");
        } else {
            assert_eq!(next, [Step::Wait], "{strategy:?}");
        }
        r.on_outcome(1, Verdict::Final);
        assert_eq!(steps(&mut r, t0, &p), [win(1, false)], "{strategy:?}");
    }
}

/// When no backend gives a useful answer, the authoritative SERVFAIL is
/// the end (passed on, never the `on_timeout` or a stale answer): every
/// other backend failed, or the deadline passed with one silent.
#[test]
fn with_no_useful_answer_the_authoritative_servfail_is_the_end() {
    let (t0, p, mut r) = begin(Strategy::Hedge, Layout::Replicated, 2, 0);
    steps(&mut r, t0, &p);
    r.on_outcome(0, Verdict::Failed);
    steps(&mut r, t0, &p);
    assert!(r.on_outcome(1, Verdict::AuthFailed));
    let end = End::Servfail {
        backend: 1,
        timed_out: false,
    };
    assert_eq!(steps(&mut r, t0, &p), [Step::Done(end)]);
    assert_eq!(end.backend(), Some(1));

    let (t0, p, mut r) = begin(Strategy::Hedge, Layout::Replicated, 2, 10);
    steps(&mut r, t0, &p);
    assert!(r.on_outcome(0, Verdict::AuthFailed));
    steps(&mut r, t0, &p);
    let end = End::Servfail {
        backend: 0,
        timed_out: true,
    };
    assert_eq!(r.poll(r.deadline(), &p), Step::Done(end));
    assert!(end.timed_out());
}

/// Partitioned: an authoritative SERVFAIL outranks the others' negative
/// answers (the partition that holds the name says it has no answer now:
/// no "no such name" is made of it), and a positive answer still wins.
#[test]
fn partitioned_an_authoritative_servfail_outranks_negatives_not_a_positive() {
    let (t0, p, mut r) = begin(Strategy::Hedge, Layout::Partitioned, 3, 0);
    steps(&mut r, t0, &p);
    assert!(r.on_outcome(0, Verdict::NxDomain));
    steps(&mut r, t0, &p);
    assert!(
        r.on_outcome(1, Verdict::AuthFailed),
        "replaces the negative"
    );
    steps(&mut r, t0, &p);
    assert!(!r.on_outcome(2, Verdict::NoData), "the SERVFAIL stays kept");
    let end = End::Servfail {
        backend: 1,
        timed_out: false,
    };
    assert_eq!(steps(&mut r, t0, &p), [Step::Done(end)]);

    let (t0, p, mut r) = begin(Strategy::Hedge, Layout::Partitioned, 2, 0);
    steps(&mut r, t0, &p);
    r.on_outcome(0, Verdict::AuthFailed);
    steps(&mut r, t0, &p);
    r.on_outcome(1, Verdict::Final);
    assert_eq!(steps(&mut r, t0, &p), [win(1, false)]);
}
