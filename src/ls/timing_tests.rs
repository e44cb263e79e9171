//! The LS's timing on a made-up clock: the real policy (an [`LsState`]'s
//! route as the [`Pacing`] of a [`Resolution`], built from a TOML `[ls]` section), the
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

use super::balancer::Balancer;
use super::door::Admission;
use super::hedge::BUDGET_BURST;
use super::reply;
use super::resolution::{End, Pacing, Resolution, Step, Verdict};
use super::state::{Job, LsState};
use crate::config::Config;
use crate::dns::WireHeader;
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

/// A balancer over `n` backends with the `[ls]` keys in `keys`
/// ([`balancer`]), the instant it starts, and a query it admitted then,
/// whose first step asks b0 alone ([`Query::first_to_b0`]).
fn started(keys: &str, n: usize) -> (Balancer, Instant, Query) {
    let b = balancer(keys, n);
    let t0 = Instant::now();
    let q = Query::first_to_b0(&b, t0);
    (b, t0, q)
}

/// One client query admitted by a balancer, its resolution started at
/// `t0`, driven step by step on the made-up clock.
struct Query {
    state: Arc<LsState>,
    job: Job,
    res: Resolution,
}

impl Query {
    /// A query admitted by `b`, its resolution started at `t0`.
    fn new(b: &Balancer, t0: Instant) -> Self {
        let raw = client_query();
        let req = Request::udp(&raw, SocketAddr::from(([127, 0, 0, 1], 5353)));
        let (state, job) = match b.admit(req) {
            Admission::Forward(state, admitted) => (state, admitted.into_job(raw.clone())),
            Admission::Reply(_) => panic!("the test query was not forwarded"),
        };
        let res = state.resolution(&job, t0);
        Query { state, job, res }
    }

    /// A query admitted by `b` at `t0` whose first step asks b0 alone.
    fn first_to_b0(b: &Balancer, t0: Instant) -> Self {
        let mut q = Query::new(b, t0);
        assert_eq!(q.steps(t0), [launch(0, false), Step::Wait]);
        q
    }

    /// Every step at `now` until Wait or Done.
    fn steps(&mut self, now: Instant) -> Vec<Step> {
        let mut out = Vec::new();
        loop {
            let s = self.res.poll(now, self.state.route(&self.job));
            out.push(s);
            if !matches!(s, Step::Launch { .. }) {
                return out;
            }
        }
    }

    /// The wake-ups before `at` (looks for a lost copy: none is, here) do
    /// nothing, and the next one is `at`.
    fn wakes_until(&mut self, at: Instant) {
        while self.res.next_wakeup() < at {
            let look = self.res.next_wakeup();
            assert_eq!(self.steps(look), [Step::Wait]);
        }
        assert_eq!(self.res.next_wakeup(), at);
    }

    /// Nothing happens before `at` (the wake-ups before it do nothing, nor
    /// a microsecond before it), and at `at` exactly `backend` is asked (a
    /// hedge when `hedge`).
    fn launches_at(&mut self, at: Instant, backend: usize, hedge: bool) {
        self.wakes_until(at);
        assert_eq!(self.steps(at - US), [Step::Wait]);
        assert_eq!(self.steps(at), [launch(backend, hedge), Step::Wait]);
    }

    /// Nothing happens before `at`, and at `at` the query ends at its
    /// deadline.
    fn times_out_at(&mut self, at: Instant) -> End {
        self.wakes_until(at);
        assert_eq!(self.steps(at - US), [Step::Wait]);
        let end = End::OnTimeout { timed_out: true };
        assert_eq!(self.steps(at), [Step::Done(end)]);
        end
    }

    /// Polled at `at` (its deadline, every backend still silent), the
    /// query ends timed out; the reply is made, charging the silent ones.
    fn finish_at_deadline(&mut self, at: Instant) {
        let step = self.res.poll(at, self.state.route(&self.job));
        let Step::Done(end) = step else {
            panic!("not done at the deadline: {step:?}")
        };
        assert_eq!(end, End::OnTimeout { timed_out: true });
        self.finish(end, None);
    }

    /// Backend `i`'s response fed to the resolution as the drivers do.
    fn answer(&mut self, i: usize, resp: &[u8]) -> Verdict {
        // Stamped just before the deadline: the latest a test's answer comes.
        let at = self.res.deadline() - MS;
        let v = self
            .state
            .route(&self.job)
            .judge_response(i, at, 100 * US, WireHeader::read(resp));
        self.res.on_outcome(i, v);
        v
    }

    /// A backend's response to this query (upstream ID 0xbeef): `rcode`,
    /// AA (but on a SERVFAIL: a failing server's, not an authority's own,
    /// which is passed on when no backend answers), with one A record when
    /// `positive`.
    fn response(&self, rcode: u8, positive: bool) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&0xbeef_u16.to_be_bytes());
        let aa = if rcode == 2 { 0 } else { 0x0400 };
        r.extend_from_slice(&(0x8100_u16 | aa | u16::from(rcode)).to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, u8::from(positive), 0, 0, 0, 0]);
        r.extend_from_slice(self.job.question());
        if positive {
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 10, 0, 0, 1]);
        }
        r
    }

    /// b0's negative answer with `rcode` is judged `verdict`, and b1 is
    /// asked at once, when the query is next polled (at `at`); that answer.
    fn b0_says_no_then_b1_asked(&mut self, rcode: u8, verdict: Verdict, at: Instant) -> Vec<u8> {
        let no = self.response(rcode, false);
        assert_eq!(self.answer(0, &no), verdict);
        assert_eq!(self.steps(at), [launch(1, false), Step::Wait]);
        no
    }

    /// Backend `i`'s positive answer is final, and the query is won by it
    /// (a hedge's copy when `hedge`) when polled at `at`; its end and the
    /// winning response.
    fn won_by(&mut self, i: usize, hedge: bool, at: Instant) -> (End, Vec<u8>) {
        let resp = self.response(0, true);
        assert_eq!(self.answer(i, &resp), Verdict::Final);
        let end = End::Win { backend: i, hedge };
        assert_eq!(
            self.res.poll(at, self.state.route(&self.job)),
            Step::Done(end)
        );
        (end, resp)
    }

    /// The reply for how the query ended ([`reply::finish`]).
    fn finish(&self, end: End, kept: Option<Vec<u8>>) -> Reply {
        reply::finish(&self.state, &self.job, &self.res, end, kept)
    }
}

/// A balancer of `n` replicated backends hedging at adaptive delays
/// (2..200 ms; `keys` added to its `[ls]`), backends 0 and 1 seen
/// answering 100 times in `ms[0]` and `ms[1]` ms; with its state and the
/// route's spacing after each of the two (a hedge strategy's: always some).
fn hedging(keys: &str, n: usize, ms: [u32; 2]) -> (Balancer, Arc<LsState>, Duration, Duration) {
    let b = balancer(
        &format!(
            "strategy = \"hedge\"\nlayout = \"replicated\"\nhedge_delay_ms = \"adaptive\"\n\
             hedge_min_ms = 2\nhedge_max_ms = 200\n{keys}"
        ),
        n,
    );
    let state = b.state();
    for _ in 0..100 {
        for (i, &ms) in ms.iter().enumerate() {
            state.backends[i].hedge.observe(ms * MS, 95.0);
        }
    }
    let (d0, d1) = (state.all.spacing(0).unwrap(), state.all.spacing(1).unwrap());
    (b, state, d0, d1)
}

#[test]
fn hedge_fires_at_the_measured_delay_of_the_backend_just_asked() {
    // b0 answers in 30 ms, b1 in 80 ms; b2 has no samples yet.
    let (b, state, d0, d1) = hedging("hedge_percentile = 95", 3, [30, 80]);
    assert!(d0 >= 30 * MS && d0 < 31 * MS, "{d0:?}");
    assert!(d1 >= 80 * MS && d1 < 81 * MS, "{d1:?}");
    assert_eq!(
        state.all.spacing(2),
        Some(200 * MS),
        "unmeasured: hedge_max_ms"
    );

    let t0 = Instant::now();
    let mut q = Query::first_to_b0(&b, t0);
    q.launches_at(t0 + d0, 1, true);
    // The next hedge waits the delay of b1, the backend just asked.
    q.launches_at(t0 + d0 + d1, 2, true);
    assert_eq!(q.state.metrics.hedges_refused.load(Relaxed), 0);

    // The first hedge's answer wins; the client gets it with its own ID.
    let (end, resp) = q.won_by(1, true, t0 + d0 + d1 + MS);
    let reply = bytes(q.finish(end, Some(resp)));
    assert_eq!(WireHeader::read(&reply).map(|h| h.id), Some(CLIENT_ID));
    assert_eq!(q.state.backends[1].stats.wins.load(Relaxed), 1);
    assert_eq!(q.state.metrics.hedge_wins.load(Relaxed), 1);
}

/// Drives one query whose first backend stays silent past the hedge delay
/// (20 ms); true when a hedge went out, false when the budget refused and
/// the query failed over to b1 at exactly `try_timeout_ms` (500 ms).
fn silent_first_backend(b: &Balancer, t0: Instant) -> bool {
    let mut q = Query::first_to_b0(b, t0);
    assert_eq!(q.steps(t0 + 20 * MS - US), [Step::Wait]);
    match q.steps(t0 + 20 * MS).as_slice() {
        [Step::Launch { backend: 1, hedge }, Step::Wait] => {
            assert!(*hedge, "a delay-triggered launch is a hedge");
            true
        }
        [Step::Wait] => {
            // Failover, not a hedge.
            q.launches_at(t0 + 500 * MS, 1, false);
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
    let (b, t0, mut q) = started(
        "strategy = \"hedge\"\nlayout = \"partitioned\"\nhedge_delay_ms = 20\n\
         hedge_budget_pct = 0\ntry_timeout_ms = 500",
        2,
    );
    // b0 does not hold the name: b1 is asked at once, with no token.
    q.b0_says_no_then_b1_asked(3, Verdict::NxDomain, t0 + 5 * MS);
    assert_eq!(q.state.metrics.hedges_refused.load(Relaxed), 0);
    q.won_by(1, false, t0 + 6 * MS);

    // With b0 silent instead (a query sent after b0's answer above, which
    // the test stamps just before that query's deadline: not proof that
    // this copy was lost), the empty budget refuses the hedge and the
    // query still reaches b1 at the per-try timeout.
    assert!(!silent_first_backend(&b, t0 + 2 * Duration::from_secs(1)));
    assert_eq!(q.state.metrics.hedges_refused.load(Relaxed), 1);
}

#[test]
fn sequential_fails_over_every_try_timeout_until_the_deadline() {
    let (_b, t0, mut q) = started(
        "strategy = \"sequential\"\nlayout = \"replicated\"\ntry_timeout_ms = 500\n\
         timeout_ms = 1200\non_timeout = \"servfail\"",
        3,
    );
    assert_eq!(q.res.deadline(), t0 + 1200 * MS);
    for (i, at) in [(1, 500), (2, 1000)] {
        q.launches_at(t0 + at * MS, i, false);
    }
    // No one left to ask: the next wake-up is the deadline.
    let end = q.times_out_at(t0 + 1200 * MS);
    let reply = bytes(q.finish(end, None));
    let state = &q.state;
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
    let (_b, t0, mut q) = started(
        "strategy = \"sequential\"\nlayout = \"replicated\"\ntry_timeout_ms = 500",
        2,
    );
    let servfail = q.b0_says_no_then_b1_asked(2, Verdict::Failed, t0 + 3 * MS);
    // b1's SERVFAIL too, before the deadline: SERVFAIL, not on_timeout.
    assert_eq!(q.answer(1, &servfail), Verdict::Failed);
    let done = q.res.poll(t0 + 4 * MS, q.state.route(&q.job));
    assert_eq!(done, Step::Done(End::AllFailed));
}

#[test]
fn the_deadline_is_exact_and_cuts_a_pending_hedge() {
    let (_b, t0, mut q) = started(
        "strategy = \"hedge\"\nlayout = \"replicated\"\nhedge_delay_ms = 1000\n\
         timeout_ms = 300\non_timeout = \"nxdomain\"\nsynth_ttl = 7",
        2,
    );
    // The hedge would be due at 1000 ms; the deadline comes first.
    let end = q.times_out_at(t0 + 300 * MS);
    assert_eq!(q.res.asked().collect::<Vec<_>>(), [0], "b1 never asked");
    // A late answer changes nothing.
    let late = q.response(0, true);
    q.answer(0, &late);
    assert_eq!(
        q.res.poll(t0 + 301 * MS, q.state.route(&q.job)),
        Step::Done(end)
    );
    let reply = bytes(q.finish(end, None));
    let state = &q.state;
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
    let t0 = Instant::now();
    let mut q = Query::new(&b, t0);
    assert_eq!(
        q.steps(t0),
        [
            launch(0, false),
            launch(1, false),
            launch(2, false),
            Step::Wait
        ]
    );
    // Two partitions say no; the third's silence keeps the query open,
    // and it is asked again (unmeasured: 200 ms apart, then 400 at most).
    let nx = q.response(3, false);
    q.answer(0, &nx);
    q.answer(2, &nx);
    for at in [200, 400, 600, 1000, 1400] {
        q.launches_at(t0 + at * MS, 1, true);
    }
    q.times_out_at(t0 + 1500 * MS);
    assert_eq!(q.res.unfinished().collect::<Vec<_>>(), [1]);
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

/// Race over replicas, 100 ms per query, down after 3 failures, up after 2.
const RACE_100_MS_FALL_3: &str = "strategy = \"race\"\nlayout = \"replicated\"\n\
    timeout_ms = 100\n[ls.health]\nfall = 3\nrise = 2";

/// Whether each backend of `s` is up.
fn up(s: &LsState) -> Vec<bool> {
    s.backends.iter().map(|b| b.is_up()).collect()
}

#[test]
fn client_query_deadlines_count_as_health_failures() {
    let b = balancer(RACE_100_MS_FALL_3, 2);
    let t0 = Instant::now();
    for k in 0..3_u32 {
        let start = t0 + k * 200 * MS;
        let mut q = Query::new(&b, start);
        q.steps(start);
        // b1 answers; b0 is still silent, but the query ended before its
        // deadline, so b0's silence is not a health failure.
        let (end, resp) = q.won_by(1, false, start + MS);
        q.finish(end, Some(resp));
    }
    let state = b.state();
    assert!(state.backends[0].is_up());
    assert_eq!(state.backends[0].stats.timeouts.load(Relaxed), 0);
    // Three queries that reach their deadline with b0 and b1 silent.
    for k in 0..3_u32 {
        let start = t0 + Duration::from_secs(1) + k * 200 * MS;
        let mut q = Query::new(&b, start);
        q.steps(start);
        q.finish_at_deadline(start + 100 * MS);
        let up = up(&q.state);
        assert_eq!(up, [k < 2, k < 2], "after {} timed-out queries", k + 1);
    }
}

#[test]
fn timeouts_within_a_query_lifetime_of_an_answer_are_not_health_failures() {
    let b = balancer(RACE_100_MS_FALL_3, 2);
    let t0 = Instant::now();
    let state = b.state();
    // Both answered a client query at t0 (say, just after a restart).
    for i in 0..2 {
        let _ = state.all.judge_response(i, t0, 100 * US, None);
    }
    let timed_out = |start: Instant| {
        let mut q = Query::new(&b, start);
        q.steps(start);
        q.finish_at_deadline(start + 100 * MS);
    };
    // Queries sent before t0 whose deadlines fall within 100 ms of it: the
    // backends were alive meanwhile, so their silence proves nothing.
    for q in 0..3_u32 {
        timed_out(t0 - 90 * MS + q * 20 * MS);
    }
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
fn hedge_reasks_the_best_latency_backend_first_then_each_at_growing_gaps() {
    // b0 answers in 30 ms, b1 in 10 ms: b1 has the best latency.
    let (b, _, d0, d1) = hedging("timeout_ms = 1500", 2, [30, 10]);
    let t0 = Instant::now();
    let mut q = Query::first_to_b0(&b, t0);
    q.launches_at(t0 + d0, 1, true);
    // Both asked, both silent: b1 again, its delay after the last launch.
    let reask1 = t0 + d0 + d1;
    q.launches_at(reask1, 1, true);
    // Then b0, b0's delay after that.
    q.launches_at(reask1 + d0, 0, true);
    // Then each again at least 100 ms after its own last copy: b1 first.
    q.launches_at(reask1 + 100 * MS, 1, true);
    q.launches_at(reask1 + d0 + 100 * MS, 0, true);
    assert_eq!(q.state.metrics.hedges_refused.load(Relaxed), 0);
    // Any copy's answer wins.
    q.won_by(1, true, reask1 + d0 + 101 * MS);
}

#[test]
fn a_single_backend_is_reasked_after_the_delay_and_an_error_of_one_copy_waits_for_the_other() {
    let (_b, t0, mut q) = started(
        "strategy = \"hedge\"\nlayout = \"replicated\"\nhedge_delay_ms = 20\ntimeout_ms = 1500",
        1,
    );
    q.launches_at(t0 + 20 * MS, 0, true);
    // The next re-ask: 100 ms after that copy.
    assert_eq!(q.res.next_wakeup(), t0 + 120 * MS);
    // One copy's SERVFAIL: the other copy may still answer.
    let servfail = q.response(2, false);
    assert_eq!(q.answer(0, &servfail), Verdict::Failed);
    assert_eq!(q.steps(t0 + 30 * MS), [Step::Wait]);
    q.won_by(0, true, t0 + 31 * MS);
}

/// With no token the same backend is not asked again (not at the per-try
/// timeout for free either: that would be every query twice to a slow
/// backend).
#[test]
fn a_reask_takes_a_budget_token_and_without_one_is_not_sent() {
    let (_b, t0, mut q) = started(
        "strategy = \"hedge\"\nlayout = \"replicated\"\nhedge_delay_ms = 20\n\
         hedge_budget_pct = 0\ntry_timeout_ms = 500\ntimeout_ms = 1500",
        1,
    );
    // b0 serves other queries (it answers one at each turn).
    q.state.backends[0].heard_from(t0 + 20 * MS);
    // The re-ask's turn comes: refused; the next turn is tried later.
    assert_eq!(q.steps(t0 + 20 * MS), [Step::Wait]);
    assert_eq!(q.state.metrics.hedges_refused.load(Relaxed), 1);
    assert_eq!(q.res.next_wakeup(), t0 + 120 * MS);
    assert!(q.res.held_back());
    let mut at = t0 + 120 * MS;
    while at < t0 + 1500 * MS {
        q.state.backends[0].heard_from(at);
        assert_eq!(q.steps(at), [Step::Wait], "no copy sent");
        at = q.res.next_wakeup();
    }
    assert!(q.state.metrics.hedges_refused.load(Relaxed) > 1);
    q.times_out_at(t0 + 1500 * MS);
}

/// A restart under load: a backend silent to everyone is re-asked
/// without a budget token, so the budget a burst of such queries would
/// need is not what decides whether the name is found.
#[test]
fn a_backend_restarting_is_reasked_without_tokens() {
    let (_b, t0, mut q) = started(
        "strategy = \"hedge\"\nlayout = \"replicated\"\nhedge_delay_ms = 20\n\
         hedge_budget_pct = 0\ntry_timeout_ms = 500\ntimeout_ms = 1500",
        1,
    );
    // b0 answered a second ago, nothing since (killed, restarting).
    q.state.backends[0].heard_from(t0 - 1000 * MS);
    q.launches_at(t0 + 20 * MS, 0, true);
    q.launches_at(t0 + 120 * MS, 0, true);
    assert_eq!(q.state.metrics.hedges_refused.load(Relaxed), 0);
    q.won_by(0, true, t0 + 121 * MS);
}

#[test]
fn partitioned_reasks_the_last_backend_not_heard_from() {
    let (_b, t0, mut q) = started(
        "strategy = \"hedge\"\nlayout = \"partitioned\"\nhedge_delay_ms = 20\ntimeout_ms = 1500",
        2,
    );
    q.b0_says_no_then_b1_asked(3, Verdict::NxDomain, t0 + 5 * MS);
    // b1's datagram is lost: b1 (not b0, which said no) again after the delay.
    q.launches_at(t0 + 25 * MS, 1, true);
    assert_eq!(q.res.next_wakeup(), t0 + 125 * MS);
    q.won_by(1, true, t0 + 26 * MS);
}

#[test]
fn sequential_asks_the_next_backend_before_asking_any_again() {
    let (_b, t0, mut q) = started(
        "strategy = \"sequential\"\nlayout = \"replicated\"\ntry_timeout_ms = 500\n\
         timeout_ms = 2500\nhedge_delay_ms = 20",
        2,
    );
    q.launches_at(t0 + 500 * MS, 1, false);
    // Both silent: b0 then b1 asked again (with tokens), a per-try timeout
    // apart: a backend slower than that is not asked twice.
    q.launches_at(t0 + 1000 * MS, 0, true);
    q.launches_at(t0 + 1500 * MS, 1, true);
}

/// The hedge budget is a share of the queries sent upstream.
/// A query admitted but answered from the cache (no resolution) earns
/// nothing; each one that goes upstream earns its share.
#[test]
fn only_queries_sent_upstream_earn_the_hedge_budget() {
    let b = balancer("strategy = \"hedge\"\nhedge_budget_pct = 10", 1);
    let state = b.state();
    while state.budget.try_spend() {}
    let t0 = Instant::now();
    let raw = client_query();
    // 1,000 queries admitted and answered from a cache: no token.
    for _ in 0..1000 {
        let req = Request::udp(&raw, SocketAddr::from(([127, 0, 0, 1], 5353)));
        assert!(matches!(b.admit(req), Admission::Forward(..)));
    }
    assert_eq!(state.budget.tokens(), 0, "cache hits earned hedge tokens");
    // 1,000 that go upstream: 10 % of them.
    for _ in 0..1000 {
        let _ = Query::new(&b, t0);
    }
    assert_eq!(state.budget.tokens(), 100);
}
