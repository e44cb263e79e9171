//! The LS's timing on a made-up clock: the real policy ([`LsState`] as the
//! [`Pacing`] of a [`Resolution`], built from a TOML `[ls]` section), the
//! real hedge budget and adaptive delay, the real health hysteresis and the
//! real reply ([`reply::finish`]), driven with invented
//! `tokio::time::Instant`s. Nothing waits and no socket is opened (the
//! backends' addresses are never contacted), so every bound below is exact
//! and no test depends on the machine's speed.
//!
//! Covered: the hedge (at the measured delay of the backend just asked),
//! the hedge budget (its burst, its share of client queries, the failover
//! at `try_timeout_ms` when it is spent, and that it never holds back a
//! partitioned move-on), the re-ask of a backend still silent once every
//! backend was asked (best latency first, once each, budget-limited under
//! hedge, also a single backend, also a partitioned one not heard from),
//! sequential failover, the deadline, and health
//! hysteresis (fall/rise on a probe schedule, and client-query deadlines
//! counting as failures).
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::Instant;

use super::balancer::{Admission, Balancer};
use super::hedge::BUDGET_BURST;
use super::reply;
use super::resolution::{End, Pacing, Resolution, Step, Verdict};
use super::state::{Job, LsState};
use crate::config::Config;
use crate::dns::{Transport, WireHeader};
use crate::server::{Reply, Request};

const MS: Duration = Duration::from_millis(1);
const US: Duration = Duration::from_micros(1);
const CLIENT_ID: u16 = 0x5a5a;

/// A balancer over `n` backends `b0..` (fixed order, all up) with the
/// `[ls]` keys in `keys`.
fn balancer(keys: &str, n: usize) -> Balancer {
    let mut text = format!("[ls]\nworkers = 1\norder = \"fixed\"\n{keys}\n");
    for i in 0..n {
        text += &format!(
            "[[ls.backend]]\nname = \"b{i}\"\naddr = \"127.0.0.1:{}\"\n",
            20 + i
        );
    }
    let config = match Config::from_toml(&text, Path::new("timing.toml")) {
        Ok(c) => c,
        Err(e) => panic!("bad test config: {e}\n{text}"),
    };
    let Some(ls) = config.ls else {
        panic!("no [ls] in the test config");
    };
    let b = Balancer::new(&ls);
    for backend in &b.state().backends {
        backend.set_up(true);
    }
    b
}

/// `www.example.com A` with an OPT record (so synthesized answers carry
/// their Extended DNS Error), ID [`CLIENT_ID`].
fn client_query() -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&CLIENT_ID.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
    for label in ["www", "example", "com"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    // OPT: root owner, type 41, UDP size 1232, no options.
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    q
}

/// A client query admitted by `b`: the snapshot it runs on and its job.
fn admit(b: &Balancer) -> (Arc<LsState>, Job) {
    let raw = client_query();
    let req = Request {
        raw: &raw,
        src: SocketAddr::from(([127, 0, 0, 1], 5353)),
        transport: Transport::Udp,
    };
    match b.admit(req) {
        Admission::Forward(state, admitted) => (state, admitted.into_job(raw.clone())),
        Admission::Reply(_) => panic!("the test query was not forwarded"),
    }
}

/// A backend's response to `job` (upstream ID 0xbeef): `rcode`, AA, with
/// one A record when `positive`.
fn response(job: &Job, rcode: u8, positive: bool) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&0xbeef_u16.to_be_bytes());
    r.extend_from_slice(&(0x8500_u16 | u16::from(rcode)).to_be_bytes());
    r.extend_from_slice(&[0, 1, 0, u8::from(positive), 0, 0, 0, 0]);
    r.extend_from_slice(job.question());
    if positive {
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 10, 0, 0, 1]);
    }
    r
}

/// Feeds backend `i`'s response to the resolution as the drivers do.
fn answer(state: &LsState, res: &mut Resolution, i: usize, resp: &[u8]) -> Verdict {
    // Stamped just before the deadline: the latest a test's answer comes.
    let at = res.deadline() - MS;
    let v = state.judge_response(i, at, 100 * US, WireHeader::read(resp));
    res.on_outcome(i, v);
    v
}

/// Every step at `now` until Wait or Done.
fn steps(res: &mut Resolution, now: Instant, state: &LsState) -> Vec<Step> {
    let mut out = Vec::new();
    loop {
        let s = res.poll(now, state);
        out.push(s);
        if !matches!(s, Step::Launch { .. }) {
            return out;
        }
    }
}

fn launch(backend: usize, hedge: bool) -> Step {
    Step::Launch { backend, hedge }
}

/// The bytes of a [`Reply::One`].
fn bytes(reply: Reply) -> Vec<u8> {
    match reply {
        Reply::One(b) => b,
        other => panic!("expected one message, got {other:?}"),
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn hedge_fires_at_the_measured_delay_of_the_backend_just_asked() {
    let b = balancer(
        "strategy = \"hedge\"\nlayout = \"replicated\"\nhedge_delay_ms = \"adaptive\"\n\
         hedge_percentile = 95\nhedge_min_ms = 2\nhedge_max_ms = 200",
        3,
    );
    let state = b.state();
    // b0 answers in 30 ms, b1 in 80 ms; b2 has no samples yet.
    for _ in 0..100 {
        state.backends[0].hedge.observe(30 * MS, 95.0);
        state.backends[1].hedge.observe(80 * MS, 95.0);
    }
    // cannot fail because the strategy is hedge, whose spacing is always Some.
    let (d0, d1) = (state.spacing(0).unwrap(), state.spacing(1).unwrap());
    assert!(d0 >= 30 * MS && d0 < 31 * MS, "{d0:?}");
    assert!(d1 >= 80 * MS && d1 < 81 * MS, "{d1:?}");
    assert_eq!(state.spacing(2), Some(200 * MS), "unmeasured: hedge_max_ms");

    let (state, job) = admit(&b);
    let t0 = Instant::now();
    let mut res = state.resolution(&job, t0);
    assert_eq!(steps(&mut res, t0, &state), [launch(0, false), Step::Wait]);
    assert_eq!(res.next_wakeup(), t0 + d0);
    assert_eq!(steps(&mut res, t0 + d0 - US, &state), [Step::Wait]);
    assert_eq!(
        steps(&mut res, t0 + d0, &state),
        [launch(1, true), Step::Wait]
    );
    // The next hedge waits the delay of b1, the backend just asked.
    assert_eq!(res.next_wakeup(), t0 + d0 + d1);
    assert_eq!(steps(&mut res, t0 + d0 + d1 - US, &state), [Step::Wait]);
    assert_eq!(
        steps(&mut res, t0 + d0 + d1, &state),
        [launch(2, true), Step::Wait]
    );
    assert_eq!(state.metrics.hedges_refused.load(Relaxed), 0);

    // The first hedge's answer wins; the client gets it with its own ID.
    let resp = response(&job, 0, true);
    assert_eq!(answer(&state, &mut res, 1, &resp), Verdict::Final);
    let end = End::Win {
        backend: 1,
        hedge: true,
    };
    assert_eq!(res.poll(t0 + d0 + d1 + MS, &*state), Step::Done(end));
    let reply = bytes(reply::finish(&state, &job, &res, end, Some(resp)));
    assert_eq!(WireHeader::read(&reply).map(|h| h.id), Some(CLIENT_ID));
    assert_eq!(state.backends[1].stats.wins.load(Relaxed), 1);
    assert_eq!(state.metrics.hedge_wins.load(Relaxed), 1);
}

/// Drives one query whose first backend stays silent past the hedge delay
/// (20 ms); true when a hedge went out, false when the budget refused and
/// the query failed over to b1 at exactly `try_timeout_ms` (500 ms).
fn silent_first_backend(b: &Balancer, t0: Instant) -> bool {
    let (state, job) = admit(b);
    let mut res = state.resolution(&job, t0);
    assert_eq!(steps(&mut res, t0, &state), [launch(0, false), Step::Wait]);
    assert_eq!(steps(&mut res, t0 + 20 * MS - US, &state), [Step::Wait]);
    match steps(&mut res, t0 + 20 * MS, &state).as_slice() {
        [Step::Launch { backend: 1, hedge }, Step::Wait] => {
            assert!(*hedge, "a delay-triggered launch is a hedge");
            true
        }
        [Step::Wait] => {
            assert_eq!(res.next_wakeup(), t0 + 500 * MS);
            assert_eq!(steps(&mut res, t0 + 500 * MS - US, &state), [Step::Wait]);
            assert_eq!(
                steps(&mut res, t0 + 500 * MS, &state),
                [launch(1, false), Step::Wait],
                "failover, not a hedge"
            );
            false
        }
        other => panic!("unexpected steps {other:?}"),
    }
}

#[test]
fn the_hedge_budget_spends_its_burst_then_a_tenth_of_queries_then_fails_over() {
    let b = balancer(
        "strategy = \"hedge\"\nlayout = \"replicated\"\nhedge_delay_ms = 20\n\
         hedge_budget_pct = 10\ntry_timeout_ms = 500",
        2,
    );
    let t0 = Instant::now();
    let queries = 200_u64;
    let hedges = (0..queries)
        .filter(|&q| silent_first_backend(&b, t0 + Duration::from_secs(q)))
        .count() as u64;
    // The bucket starts full (the burst) and earns a tenth of a token per
    // client query once below it: 199 queries earned 19 whole tokens.
    assert_eq!(hedges, BUDGET_BURST + (queries - 1) / 10);
    assert_eq!(b.metrics().hedges_refused.load(Relaxed), queries - hedges);
}

#[test]
fn a_spent_budget_never_holds_back_a_partitioned_move_on() {
    let b = balancer(
        "strategy = \"hedge\"\nlayout = \"partitioned\"\nhedge_delay_ms = 20\n\
         hedge_budget_pct = 0\ntry_timeout_ms = 500",
        2,
    );
    let (state, job) = admit(&b);
    let t0 = Instant::now();
    let mut res = state.resolution(&job, t0);
    assert_eq!(steps(&mut res, t0, &state), [launch(0, false), Step::Wait]);
    // b0 does not hold the name: b1 is asked at once, with no token.
    let nx = response(&job, 3, false);
    assert_eq!(answer(&state, &mut res, 0, &nx), Verdict::NxDomain);
    assert_eq!(
        steps(&mut res, t0 + 5 * MS, &state),
        [launch(1, false), Step::Wait]
    );
    assert_eq!(state.metrics.hedges_refused.load(Relaxed), 0);
    let found = response(&job, 0, true);
    assert_eq!(answer(&state, &mut res, 1, &found), Verdict::Final);
    let end = End::Win {
        backend: 1,
        hedge: false,
    };
    assert_eq!(res.poll(t0 + 6 * MS, &*state), Step::Done(end));

    // With b0 silent instead, the empty budget refuses the hedge and the
    // query still reaches b1 at the per-try timeout.
    assert!(!silent_first_backend(&b, t0));
    assert_eq!(state.metrics.hedges_refused.load(Relaxed), 1);
}

#[test]
fn sequential_fails_over_every_try_timeout_until_the_deadline() {
    let b = balancer(
        "strategy = \"sequential\"\nlayout = \"replicated\"\ntry_timeout_ms = 500\n\
         timeout_ms = 1200\non_timeout = \"servfail\"",
        3,
    );
    let (state, job) = admit(&b);
    let t0 = Instant::now();
    let mut res = state.resolution(&job, t0);
    assert_eq!(res.deadline(), t0 + 1200 * MS);
    assert_eq!(steps(&mut res, t0, &state), [launch(0, false), Step::Wait]);
    for (i, at) in [(1, 500), (2, 1000)] {
        let at = t0 + at * MS;
        assert_eq!(res.next_wakeup(), at);
        assert_eq!(steps(&mut res, at - US, &state), [Step::Wait]);
        assert_eq!(steps(&mut res, at, &state), [launch(i, false), Step::Wait]);
    }
    // No one left to ask: the next wake-up is the deadline.
    assert_eq!(res.next_wakeup(), t0 + 1200 * MS);
    assert_eq!(steps(&mut res, t0 + 1200 * MS - US, &state), [Step::Wait]);
    let end = End::OnTimeout { timed_out: true };
    assert_eq!(steps(&mut res, t0 + 1200 * MS, &state), [Step::Done(end)]);
    let reply = bytes(reply::finish(&state, &job, &res, end, None));
    // cannot fail because the reply is the LS's own answer, made above.
    let h = WireHeader::read(&reply).unwrap();
    assert_eq!((h.id, h.rcode()), (CLIENT_ID, 2), "on_timeout = servfail");
    assert!(!h.authoritative());
    assert!(contains(&reply, "no answer from b0, b1, b2 within 1200 ms"));
    for backend in &state.backends {
        assert_eq!(backend.stats.timeouts.load(Relaxed), 1, "{}", backend.name);
    }
    assert_eq!(state.metrics.synthesized.load(Relaxed), 1);
}

#[test]
fn sequential_moves_on_at_once_after_a_servfail() {
    let b = balancer(
        "strategy = \"sequential\"\nlayout = \"replicated\"\ntry_timeout_ms = 500",
        2,
    );
    let (state, job) = admit(&b);
    let t0 = Instant::now();
    let mut res = state.resolution(&job, t0);
    assert_eq!(steps(&mut res, t0, &state), [launch(0, false), Step::Wait]);
    let servfail = response(&job, 2, false);
    assert_eq!(answer(&state, &mut res, 0, &servfail), Verdict::Failed);
    assert_eq!(
        steps(&mut res, t0 + 3 * MS, &state),
        [launch(1, false), Step::Wait]
    );
    // b1's SERVFAIL too, before the deadline: SERVFAIL, not on_timeout.
    assert_eq!(answer(&state, &mut res, 1, &servfail), Verdict::Failed);
    assert_eq!(res.poll(t0 + 4 * MS, &*state), Step::Done(End::AllFailed));
}

#[test]
fn the_deadline_is_exact_and_cuts_a_pending_hedge() {
    let b = balancer(
        "strategy = \"hedge\"\nlayout = \"replicated\"\nhedge_delay_ms = 1000\n\
         timeout_ms = 300\non_timeout = \"nxdomain\"\nsynth_ttl = 7",
        2,
    );
    let (state, job) = admit(&b);
    let t0 = Instant::now();
    let mut res = state.resolution(&job, t0);
    assert_eq!(steps(&mut res, t0, &state), [launch(0, false), Step::Wait]);
    // The hedge would be due at 1000 ms; the deadline comes first.
    assert_eq!(res.next_wakeup(), t0 + 300 * MS);
    assert_eq!(steps(&mut res, t0 + 300 * MS - US, &state), [Step::Wait]);
    let end = End::OnTimeout { timed_out: true };
    assert_eq!(steps(&mut res, t0 + 300 * MS, &state), [Step::Done(end)]);
    assert_eq!(res.asked().collect::<Vec<_>>(), [0], "b1 never asked");
    // A late answer changes nothing.
    let late = response(&job, 0, true);
    answer(&state, &mut res, 0, &late);
    assert_eq!(res.poll(t0 + 301 * MS, &*state), Step::Done(end));
    let reply = bytes(reply::finish(&state, &job, &res, end, None));
    // cannot fail because the reply is the LS's own answer, made above.
    let h = WireHeader::read(&reply).unwrap();
    assert_eq!((h.id, h.rcode(), h.ancount), (CLIENT_ID, 3, 0));
    assert!(!h.authoritative());
    assert_eq!(h.nscount, 1, "an SOA in the authority section");
    assert!(contains(&reply, "within 300 ms"));
    assert_eq!(state.backends[0].stats.timeouts.load(Relaxed), 1);
    assert_eq!(state.backends[1].stats.timeouts.load(Relaxed), 0);
}

#[test]
fn race_waits_for_the_deadline_when_every_backend_is_silent() {
    let b = balancer(
        "strategy = \"race\"\nlayout = \"partitioned\"\ntimeout_ms = 1500",
        3,
    );
    let (state, job) = admit(&b);
    let t0 = Instant::now();
    let mut res = state.resolution(&job, t0);
    assert_eq!(
        steps(&mut res, t0, &state),
        [
            launch(0, false),
            launch(1, false),
            launch(2, false),
            Step::Wait
        ]
    );
    // Two partitions say no; the third's silence keeps the query open.
    let nx = response(&job, 3, false);
    answer(&state, &mut res, 0, &nx);
    answer(&state, &mut res, 2, &nx);
    assert_eq!(steps(&mut res, t0 + 1499 * MS, &state), [Step::Wait]);
    let end = End::OnTimeout { timed_out: true };
    assert_eq!(steps(&mut res, t0 + 1500 * MS, &state), [Step::Done(end)]);
    assert_eq!(res.unfinished().collect::<Vec<_>>(), [1]);
}

#[test]
fn health_falls_after_fall_probe_rounds_and_rises_after_rise() {
    let b = Balancer::new(
        &Config::from_toml(
            "[ls]\nworkers = 1\n[ls.health]\ninterval_ms = 1000\nfall = 3\nrise = 2\n\
             [[ls.backend]]\nname = \"b0\"\naddr = \"127.0.0.1:20\"\n",
            Path::new("timing.toml"),
        )
        .unwrap() // cannot fail because the literal above is a valid config
        .ls
        .unwrap(), // cannot fail because it has an [ls] section
    );
    let state = b.state();
    let p = state.health.clone();
    let b0 = &state.backends[0];
    assert!(!b0.is_up(), "down until a probe has succeeded");
    // The backend answers until 2.5 s, is gone until 7.5 s, then answers
    // again; a probe round every interval_ms.
    let alive = |t: Duration| t < 2500 * MS || t >= 7500 * MS;
    let mut seen = Vec::new();
    let mut t = Duration::ZERO;
    while t <= 10_000 * MS {
        b0.probed(alive(t));
        seen.push((t.as_millis(), b0.is_up()));
        t += p.interval;
    }
    assert_eq!(
        seen,
        [
            (0, true), // first success of a backend never up: up at once
            (1000, true),
            (2000, true),
            (3000, true), // failures 1 and 2 of fall = 3
            (4000, true),
            (5000, false), // the third: down, (fall - 1) intervals after the first
            (6000, false),
            (7000, false),
            (8000, false), // success 1 of rise = 2
            (9000, true),  // the second: up
            (10000, true),
        ]
    );
}

#[test]
fn client_query_deadlines_count_as_health_failures() {
    let b = balancer(
        "strategy = \"race\"\nlayout = \"replicated\"\ntimeout_ms = 100\n\
         [ls.health]\nfall = 3\nrise = 2",
        2,
    );
    let t0 = Instant::now();
    for q in 0..3_u32 {
        let (state, job) = admit(&b);
        let start = t0 + q * 200 * MS;
        let mut res = state.resolution(&job, start);
        steps(&mut res, start, &state);
        // b1 answers; b0 is still silent, but the query ended before its
        // deadline, so b0's silence is not a health failure.
        let resp = response(&job, 0, true);
        answer(&state, &mut res, 1, &resp);
        let end = End::Win {
            backend: 1,
            hedge: false,
        };
        assert_eq!(res.poll(start + MS, &*state), Step::Done(end));
        reply::finish(&state, &job, &res, end, Some(resp));
    }
    let state = b.state();
    assert!(state.backends[0].is_up());
    assert_eq!(state.backends[0].stats.timeouts.load(Relaxed), 0);
    // Three queries that reach their deadline with b0 and b1 silent.
    for q in 0..3_u32 {
        let (state, job) = admit(&b);
        let start = t0 + Duration::from_secs(1) + q * 200 * MS;
        let mut res = state.resolution(&job, start);
        steps(&mut res, start, &state);
        let end = res.poll(start + 100 * MS, &*state);
        assert_eq!(end, Step::Done(End::OnTimeout { timed_out: true }));
        let Step::Done(end) = end else { unreachable!() };
        reply::finish(&state, &job, &res, end, None);
        let up = state.backends.iter().map(|b| b.is_up()).collect::<Vec<_>>();
        assert_eq!(up, [q < 2, q < 2], "after {} timed-out queries", q + 1);
    }
}

#[test]
fn timeouts_within_a_query_lifetime_of_an_answer_are_not_health_failures() {
    let b = balancer(
        "strategy = \"race\"\nlayout = \"replicated\"\ntimeout_ms = 100\n\
         [ls.health]\nfall = 3\nrise = 2",
        2,
    );
    let t0 = Instant::now();
    let state = b.state();
    // Both answered a client query at t0 (say, just after a restart).
    for i in 0..2 {
        let _ = state.judge_response(i, t0, 100 * US, None);
    }
    let timed_out = |start: Instant| {
        let (state, job) = admit(&b);
        let mut res = state.resolution(&job, start);
        steps(&mut res, start, &state);
        let end = res.poll(start + 100 * MS, &*state);
        let Step::Done(end) = end else {
            panic!("not done at the deadline: {end:?}")
        };
        reply::finish(&state, &job, &res, end, None);
    };
    // Queries sent before t0 whose deadlines fall within 100 ms of it: the
    // backends were alive meanwhile, so their silence proves nothing.
    for q in 0..3_u32 {
        timed_out(t0 - 90 * MS + q * 20 * MS);
    }
    let up = |s: &LsState| s.backends.iter().map(|b| b.is_up()).collect::<Vec<_>>();
    assert_eq!(up(&b.state()), [true, true]);
    assert_eq!(b.state().backends[0].stats.timeouts.load(Relaxed), 3);
    // A whole query lifetime later, silence counts: three mark them down.
    for q in 0..3_u32 {
        timed_out(t0 + Duration::from_secs(1) + q * 200 * MS);
    }
    assert_eq!(up(&b.state()), [false, false]);
}

// ---- re-asks: every backend asked, the query still unanswered ----

#[test]
fn hedge_reasks_the_best_latency_backend_once_every_backend_was_asked() {
    let b = balancer(
        "strategy = \"hedge\"\nlayout = \"replicated\"\nhedge_delay_ms = \"adaptive\"\n\
         hedge_percentile = 95\nhedge_min_ms = 2\nhedge_max_ms = 200\ntimeout_ms = 1500",
        2,
    );
    let state = b.state();
    // b0 answers in 30 ms, b1 in 10 ms: b1 has the best latency.
    for _ in 0..100 {
        state.backends[0].hedge.observe(30 * MS, 95.0);
        state.backends[1].hedge.observe(10 * MS, 95.0);
    }
    // cannot fail because the strategy is hedge, whose spacing is always Some.
    let (d0, d1) = (state.spacing(0).unwrap(), state.spacing(1).unwrap());
    let (state, job) = admit(&b);
    let t0 = Instant::now();
    let mut res = state.resolution(&job, t0);
    assert_eq!(steps(&mut res, t0, &state), [launch(0, false), Step::Wait]);
    assert_eq!(
        steps(&mut res, t0 + d0, &state),
        [launch(1, true), Step::Wait]
    );
    // Both asked, both silent: b1 again, its delay after the last launch.
    assert_eq!(res.next_wakeup(), t0 + d0 + d1);
    assert_eq!(steps(&mut res, t0 + d0 + d1 - US, &state), [Step::Wait]);
    let reask1 = t0 + d0 + d1;
    assert_eq!(
        steps(&mut res, reask1, &state),
        [launch(1, true), Step::Wait]
    );
    // Then b0 once, b0's delay after that; then nobody more (one re-ask each).
    assert_eq!(res.next_wakeup(), reask1 + d0);
    assert_eq!(
        steps(&mut res, reask1 + d0, &state),
        [launch(0, true), Step::Wait]
    );
    let deadline = res.deadline();
    assert_eq!(res.next_wakeup(), deadline);
    assert_eq!(steps(&mut res, deadline - US, &state), [Step::Wait]);
    assert_eq!(state.metrics.hedges_refused.load(Relaxed), 0);
    // Either copy's answer wins.
    let resp = response(&job, 0, true);
    assert_eq!(answer(&state, &mut res, 1, &resp), Verdict::Final);
    let end = End::Win {
        backend: 1,
        hedge: true,
    };
    assert_eq!(res.poll(reask1 + d0 + MS, &*state), Step::Done(end));
}

#[test]
fn a_single_backend_is_reasked_after_the_delay_and_an_error_of_one_copy_waits_for_the_other() {
    let b = balancer(
        "strategy = \"hedge\"\nlayout = \"replicated\"\nhedge_delay_ms = 20\ntimeout_ms = 1500",
        1,
    );
    let (state, job) = admit(&b);
    let t0 = Instant::now();
    let mut res = state.resolution(&job, t0);
    assert_eq!(steps(&mut res, t0, &state), [launch(0, false), Step::Wait]);
    assert_eq!(res.next_wakeup(), t0 + 20 * MS);
    assert_eq!(steps(&mut res, t0 + 20 * MS - US, &state), [Step::Wait]);
    assert_eq!(
        steps(&mut res, t0 + 20 * MS, &state),
        [launch(0, true), Step::Wait]
    );
    // At most one re-ask per backend: the deadline is next.
    assert_eq!(res.next_wakeup(), t0 + 1500 * MS);
    // One copy's SERVFAIL: the other copy may still answer.
    let servfail = response(&job, 2, false);
    assert_eq!(answer(&state, &mut res, 0, &servfail), Verdict::Failed);
    assert_eq!(steps(&mut res, t0 + 30 * MS, &state), [Step::Wait]);
    let resp = response(&job, 0, true);
    assert_eq!(answer(&state, &mut res, 0, &resp), Verdict::Final);
    let end = End::Win {
        backend: 0,
        hedge: true,
    };
    assert_eq!(res.poll(t0 + 31 * MS, &*state), Step::Done(end));
}

#[test]
fn a_reask_takes_a_budget_token_and_without_one_waits_for_the_try_timeout() {
    let b = balancer(
        "strategy = \"hedge\"\nlayout = \"replicated\"\nhedge_delay_ms = 20\n\
         hedge_budget_pct = 0\ntry_timeout_ms = 500\ntimeout_ms = 1500",
        1,
    );
    let (state, job) = admit(&b);
    let t0 = Instant::now();
    let mut res = state.resolution(&job, t0);
    assert_eq!(steps(&mut res, t0, &state), [launch(0, false), Step::Wait]);
    // The hedge delay passes: no token, no re-ask.
    assert_eq!(steps(&mut res, t0 + 20 * MS, &state), [Step::Wait]);
    assert_eq!(state.metrics.hedges_refused.load(Relaxed), 1);
    assert_eq!(res.next_wakeup(), t0 + 500 * MS);
    assert_eq!(steps(&mut res, t0 + 500 * MS - US, &state), [Step::Wait]);
    // At the per-try timeout, as a failover (not a hedge, no token).
    assert_eq!(
        steps(&mut res, t0 + 500 * MS, &state),
        [launch(0, false), Step::Wait]
    );
    assert_eq!(state.metrics.hedges_refused.load(Relaxed), 1);
    assert_eq!(res.next_wakeup(), t0 + 1500 * MS);
}

#[test]
fn partitioned_reasks_the_last_backend_not_heard_from() {
    let b = balancer(
        "strategy = \"hedge\"\nlayout = \"partitioned\"\nhedge_delay_ms = 20\ntimeout_ms = 1500",
        2,
    );
    let (state, job) = admit(&b);
    let t0 = Instant::now();
    let mut res = state.resolution(&job, t0);
    assert_eq!(steps(&mut res, t0, &state), [launch(0, false), Step::Wait]);
    let nx = response(&job, 3, false);
    assert_eq!(answer(&state, &mut res, 0, &nx), Verdict::NxDomain);
    assert_eq!(
        steps(&mut res, t0 + 5 * MS, &state),
        [launch(1, false), Step::Wait]
    );
    // b1's datagram is lost: b1 (not b0, which said no) again after the delay.
    assert_eq!(res.next_wakeup(), t0 + 25 * MS);
    assert_eq!(steps(&mut res, t0 + 25 * MS - US, &state), [Step::Wait]);
    assert_eq!(
        steps(&mut res, t0 + 25 * MS, &state),
        [launch(1, true), Step::Wait]
    );
    assert_eq!(res.next_wakeup(), t0 + 1500 * MS);
    let found = response(&job, 0, true);
    assert_eq!(answer(&state, &mut res, 1, &found), Verdict::Final);
    let end = End::Win {
        backend: 1,
        hedge: true,
    };
    assert_eq!(res.poll(t0 + 26 * MS, &*state), Step::Done(end));
}

#[test]
fn sequential_asks_each_backend_once_and_never_again() {
    let b = balancer(
        "strategy = \"sequential\"\nlayout = \"replicated\"\ntry_timeout_ms = 500\n\
         timeout_ms = 2500\nhedge_budget_pct = 0",
        2,
    );
    let (state, job) = admit(&b);
    let t0 = Instant::now();
    let mut res = state.resolution(&job, t0);
    assert_eq!(steps(&mut res, t0, &state), [launch(0, false), Step::Wait]);
    assert_eq!(res.next_wakeup(), t0 + 500 * MS);
    assert_eq!(
        steps(&mut res, t0 + 500 * MS, &state),
        [launch(1, false), Step::Wait]
    );
    // Both silent: no second copy to either (a slow backend's load is not
    // doubled), the deadline ends it.
    assert_eq!(res.next_wakeup(), t0 + 2500 * MS);
    assert_eq!(steps(&mut res, t0 + 1500 * MS, &state), [Step::Wait]);
}
