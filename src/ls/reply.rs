//! The reply to a client query, as both drivers make it (the async one in
//! [`super::async_path`], the UDP fast path in [`super::udp_path`]): from how its
//! [`Resolution`] ended, [`finish`] makes the winner's response the client's
//! answer (counted, NSID-labelled, sticky-remembered, the client's ID
//! restored, TC=1 when too large), passes on a negative answer every backend
//! agreed on, or makes one up (SERVFAIL, or the `on_timeout` answer), and
//! charges the backends still silent at the deadline with a loss. All of it
//! on the query's route: its pool's backends and policy, its pool's counters.
//! With a packet cache ([`super::cache`]), the winner's answer is offered to
//! it, a query that ended without a final answer (nor an authoritative
//! SERVFAIL) gets a stale one from it when it has one, and [`from_cache`]
//! answers at the door. The response
//! rules (`[[ls.response_rule]]`, [`super::rules::ResponseRules`]) judge the
//! winner's answer first: dropped, turned into SERVFAIL (neither cached), or
//! its TTLs clamped before the cache keeps it. Every answer is mended for a
//! query whose ECS option the door edited (`ecs` in `[ls]`,
//! [`super::ecs::mend_answer`]): a winner's once the cache has it (keyed and
//! kept with the option), a hit, a stale or a made-up one before it leaves.
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;

use super::cache::{Hit, Want};
use super::ecs::{EcsEdit, mend_answer};
use super::resolution::{End, Resolution};
use super::rules::{ResponseVerdict, limit_ttls};
use super::state::{Job, LsState, Route};
use crate::config::OnTimeout;
use crate::dns::{self, Transport, WireHeader};
use crate::logging::QueryLine;
use crate::server::Reply;

/// Who answered a query, for the query log.
pub(crate) struct Answered {
    /// The backend whose response the client got (none for a made-up one),
    /// an index of the backends of the route `route`.
    pub(crate) backend: Option<usize>,
    /// The query's route ([`Job::route`]).
    pub(crate) route: Option<usize>,
    /// The query's log line, when the query log is on.
    pub(crate) log: Option<QueryLine>,
}

impl Answered {
    /// Writes the query's log line, if the query log is on.
    pub(crate) fn log(self, state: &LsState, reply: &Reply, took: Duration) {
        if let Some(line) = self.log {
            let route = state.route_at(self.route);
            let backend = self.backend.and_then(|i| route.backends.get(i));
            line.log(reply, backend.map(|b| b.name.as_str()), took);
        }
    }
}

/// The reply for how the query ended. `kept`: the winner's response, or
/// the negative one to pass on, as the client may have it: an OPT the LS
/// added for its mark taken out when it was kept, and an answer whose
/// extended rcode the client could not be told never kept
/// ([`super::loopmark::PlainAnswer`], one walk in each driver).
pub(crate) fn finish(
    state: &LsState,
    job: &Job,
    res: &Resolution,
    end: End,
    kept: Option<Vec<u8>>,
) -> Reply {
    let route = state.route(job);
    // A final answer goes through `win`, which mends it itself.
    let final_answer = kept.is_some() && passes_on(end);
    let mut reply = reply_on(state, route, job, res, end, kept);
    if !final_answer {
        mend(job, &mut reply);
    }
    if let Some(pool) = &route.counters {
        pool.count_reply(&reply);
    }
    reply
}

/// Whether the query ends with a backend's response passed on (when kept):
/// a winner, an agreed negative or rejection, an authoritative SERVFAIL.
fn passes_on(end: End) -> bool {
    matches!(end, End::Win { .. } | End::PassOn(_) | End::Servfail { .. })
}

/// Mends `reply` for `job`'s ECS edit, if the door made one.
fn mend(job: &Job, reply: &mut Reply) {
    if let (Some(edit), Reply::One(answer)) = (job.ecs, reply) {
        mend_answer(answer, edit);
    }
}

/// [`finish`] on the query's `route`.
fn reply_on(
    state: &LsState,
    route: &Route,
    job: &Job,
    res: &Resolution,
    end: End,
    kept: Option<Vec<u8>>,
) -> Reply {
    let p = &route.policy;
    if end.timed_out() {
        // The backends still silent at the deadline timed out.
        for i in res.unfinished() {
            if let Some(b) = route.backends.get(i) {
                b.lost(res.deadline());
            }
        }
    }
    let final_answer = kept.is_some() && passes_on(end);
    // An authoritative SERVFAIL (the authority sees no live answer) is
    // never replaced by a stale one: that would serve the dead endpoints.
    let authoritative = matches!(end, End::Servfail { .. });
    if !final_answer
        && !authoritative
        && let Some(reply) = stale(route, job)
    {
        // No final answer: a cached one, stale, before any made up.
        return reply;
    }
    match (end, kept) {
        (End::Win { backend, hedge }, Some(resp)) => win(state, route, job, (backend, hedge), resp),
        (End::PassOn(backend) | End::Servfail { backend, .. }, Some(resp)) => {
            win(state, route, job, (backend, false), resp)
        }
        (End::Servfail { backend, .. }, None) => {
            let name = route.backends.get(backend).map_or("", |b| b.name.as_str());
            let text = format!("authoritative SERVFAIL from {name}");
            synthesize(state, route, job, ResponseCode::ServFail, &text)
        }
        (End::AllFailed, _) => {
            let text = all_failed_text(route, res);
            synthesize(state, route, job, ResponseCode::ServFail, &text)
        }
        (end, _) => {
            let unheard = backend_names(route, |i| !res.said_negative(i) && !res.said_refused(i));
            let who = if unheard.is_empty() {
                "any backend".to_owned()
            } else {
                unheard.join(", ")
            };
            let t = res.tally();
            let timed_out = matches!(end, End::OnTimeout { timed_out: true });
            if timed_out && res.held_back() {
                // The budget held back a re-ask while time remained: the
                // silence proves nothing, and "no such name" would be made
                // up; SERVFAIL lets the client ask again.
                let text = format!(
                    "no answer from {who} within {} ms; not asked again: hedge budget spent",
                    p.timeout.as_millis()
                );
                return held_back(state, route, job, &text);
            }
            let text = if timed_out {
                format!("no answer from {who} within {} ms", p.timeout.as_millis())
            } else if t.nxdomain + t.nodata > 0 {
                format!("negative answers not conclusive; not heard from {who}")
            } else {
                format!("no usable answer from {who}")
            };
            on_timeout(state, route, job, &text)
        }
    }
}

/// The names of the route's backends whose index `pick` holds, in order.
fn backend_names(route: &Route, pick: impl Fn(usize) -> bool) -> Vec<&str> {
    route
        .backends
        .iter()
        .enumerate()
        .filter(|(i, _)| pick(*i))
        .map(|(_, b)| b.name.as_str())
        .collect()
}

/// The EDE text of the SERVFAIL made when no backend asked gave a usable
/// answer: which failed, and which refused (REFUSED is an answer, "not my
/// zone": not called a failure), and, when some refused, which were not
/// asked (down).
fn all_failed_text(route: &Route, res: &Resolution) -> String {
    let tried: Vec<usize> = res.asked().collect();
    let refused = backend_names(route, |i| res.said_refused(i));
    let failed = backend_names(route, |i| tried.contains(&i) && !res.said_refused(i));
    if refused.is_empty() {
        return format!("every backend failed: {}", failed.join(", "));
    }
    let mut parts = vec![format!("refused by {}", refused.join(", "))];
    if !failed.is_empty() {
        parts.push(format!("failed: {}", failed.join(", ")));
    }
    let unasked = backend_names(route, |i| !tried.contains(&i));
    if !unasked.is_empty() {
        parts.push(format!("not asked (down): {}", unasked.join(", ")));
    }
    format!("no usable answer: {}", parts.join("; "))
}

/// The client's answer from backend `i` of `route` (`hedge`: it answered a
/// hedge): counted, remembered for `sticky`, labelled with the backend's
/// name when the client asked for an NSID and the backend sent none, with
/// the client's ID restored; TC=1 instead when it is larger than the client
/// can take over its transport.
fn win(
    state: &LsState,
    route: &Route,
    job: &Job,
    (i, hedge): (usize, bool),
    mut resp: Vec<u8>,
) -> Reply {
    // The response rules, before the cache keeps the answer.
    if !state.response_rules.is_empty() {
        match state.response_rules.judge(&resp, Instant::now()) {
            ResponseVerdict::Pass => {}
            ResponseVerdict::Drop => return Reply::Drop,
            ResponseVerdict::Servfail => {
                let mut reply = dns::servfail_for(&job.raw).map_or(Reply::Drop, Reply::One);
                mend(job, &mut reply);
                return reply;
            }
            ResponseVerdict::LimitTtl { min, max } => {
                limit_ttls(&mut resp, min, max);
            }
        }
    }
    if let Some(cache) = &route.cache {
        // Kept if the cache's rules allow (see `cache::stored`) and no
        // flush began since the query was admitted; a refusal is no error:
        // the answer still goes to the client (and retires an older entry).
        let _ = cache.insert_since(
            &job.raw,
            job.transport,
            &resp,
            Instant::now(),
            job.cache_generation,
        );
    }
    // The client's answer from here on.
    if let Some(edit) = job.ecs {
        mend_answer(&mut resp, edit);
    }
    if let Some(b) = route.backends.get(i) {
        b.stats.wins.fetch_add(1, Relaxed);
        dns::nsid_for_client(&job.raw, &mut resp, &b.name, job.transport);
    }
    if hedge {
        state.metrics.hedge_wins.fetch_add(1, Relaxed);
    }
    route.remember(job, i, &resp);
    WireHeader::set_id(&mut resp, job.client_id);
    if resp.len() > dns::client_max_size(&job.raw, job.transport) {
        // A backend that ignores the client's size limit must not make the
        // LS an amplifier: the client gets TC=1 and asks again over TCP.
        let mut reply = dns::decode_query(&job.raw).map_or_else(
            |_| dns::servfail_for(&job.raw).map_or(Reply::Drop, Reply::One),
            |q| Reply::One(dns::truncated_for(&q)),
        );
        mend(job, &mut reply);
        return reply;
    }
    Reply::One(resp)
}

/// The cache's answer at `now` to `raw` (over `transport`, routed to `pool`
/// at the door; `ecs`: what the door changed of its ECS option, the answer
/// mended by it) written into `out` and counted by its rcode, the pool's
/// count too: fresh, or stale while its name's last query failed and no
/// backend of its route is up (RFC 8767's failure-recheck). `false` (and
/// `out` to be ignored) when there is none: forward the query. Allocates
/// nothing when `out` has room. `now` is the caller's clock reading (the
/// UDP fast path's round's: no clock read per hit).
pub(crate) fn from_cache(
    state: &LsState,
    (raw, transport, pool, ecs): (&[u8], Transport, Option<usize>, Option<EcsEdit>),
    now: Instant,
    out: &mut Vec<u8>,
) -> bool {
    let route = state.route_at(pool);
    let Some(cache) = &route.cache else {
        return false;
    };
    let want = if route.any_up() {
        Want::Fresh
    } else {
        Want::FreshOrRecheck
    };
    let hit = cache.serve(raw, transport, now, want, out);
    let counters = route.counters.as_deref();
    if let Some(p) = counters {
        match hit {
            Hit::Fresh => &p.cache_hits,
            Hit::Stale => &p.cache_stale,
            Hit::Miss => &p.cache_misses,
        }
        .fetch_add(1, Relaxed);
    }
    if hit == Hit::Miss {
        return false;
    }
    if let Some(edit) = ecs {
        mend_answer(out, edit);
    }
    let m = &state.metrics;
    for answers in [Some(&m.answers), counters.map(|p| &p.answers)]
        .into_iter()
        .flatten()
    {
        super::state::count_answer(answers, out);
    }
    m.client_latency.record(Duration::ZERO);
    true
}

/// A stale answer from `route`'s cache (TTL 30, EDE 3 or 19) for a query
/// that ended without a final one, if the cache has its name (RFC 8767).
fn stale(route: &Route, job: &Job) -> Option<Reply> {
    let cache = route.cache.as_ref()?;
    let mut out = Vec::new();
    let hit = cache.stale(&job.raw, job.transport, Instant::now(), &mut out);
    if hit == Hit::Miss {
        return None;
    }
    if let Some(p) = &route.counters {
        let n = if hit == Hit::Stale {
            &p.cache_stale
        } else {
            &p.cache_hits
        };
        n.fetch_add(1, Relaxed);
    }
    Some(Reply::One(out))
}

/// A made-up answer with `rcode`.
fn synthesize(state: &LsState, route: &Route, job: &Job, rcode: ResponseCode, text: &str) -> Reply {
    state.metrics.synthesized.fetch_add(1, Relaxed);
    // Decoded only here, off the forwarding path.
    match dns::decode_query(&job.raw) {
        Ok(q) => Reply::One(dns::synthesized(
            &q,
            job.transport,
            rcode,
            route.policy.synth_ttl,
            text,
        )),
        Err(reject) => reject.response().map_or(Reply::Drop, Reply::One),
    }
}

/// The `on_timeout` answer of `route`.
/// The deadline's answer when the hedge budget held back a re-ask of a
/// backend still silent: SERVFAIL where `on_timeout` would make up an
/// NXDOMAIN (`servfail` and `drop` as configured).
fn held_back(state: &LsState, route: &Route, job: &Job, text: &str) -> Reply {
    match route.policy.on_timeout {
        OnTimeout::Nxdomain => synthesize(state, route, job, ResponseCode::ServFail, text),
        _ => on_timeout(state, route, job, text),
    }
}

fn on_timeout(state: &LsState, route: &Route, job: &Job, text: &str) -> Reply {
    match route.policy.on_timeout {
        OnTimeout::Nxdomain => synthesize(state, route, job, ResponseCode::NXDomain, text),
        OnTimeout::Servfail => synthesize(state, route, job, ResponseCode::ServFail, text),
        OnTimeout::Drop => {
            state.metrics.synthesized.fetch_add(1, Relaxed);
            Reply::Drop
        }
    }
}
