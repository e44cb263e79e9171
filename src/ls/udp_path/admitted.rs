//! A client query on the UDP path, from the door on, as free functions over
//! the [`Worker`]: read by the door ([`on_client_late`]: answered there, or
//! admitted), then answered from the packet cache, shed (the in-flight
//! bound, the backends' limits), or made a flight the worker drives
//! ([`forward`]); or first held by a `delay_ms` rule
//! (`[[ls.rule]]`, [`crate::ls::rules`]): a copy kept in the worker's slab of
//! [`Delayed`] with a timer on its heap, so the worker serves other queries
//! meanwhile; when the timer fires the query goes on as if just admitted.
//! Bounded by `max_flights` held at once, shared fairly between clients
//! ([`crate::guard::fair`]; past it SERVFAIL at once); released at once when
//! the worker stops.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

use smallvec::SmallVec;

use super::flight::{Delayed, Flight, TimerFor, Track};
use super::tap;
use super::worker::Worker;
use crate::dns::Transport;
use crate::ls::backend;
use crate::ls::door::{Admission, Admitted};
use crate::ls::ecs::{self, EcsEdit};
use crate::ls::reply;
use crate::ls::state::{LsMetrics, LsState};
use crate::server::shed::Door;
use crate::server::{Reply, Request, batch, shed};

/// One client datagram, arrived `at` (a test's: the worker's rounds
/// call [`on_client_late`]).
#[cfg(test)]
pub(super) fn on_client(w: &mut Worker, raw: &[u8], src: batch::Peer, at: Instant) {
    on_client_late(w, raw, (src, src.addr), at, None);
}

/// One client datagram, arrived `at`; `late`: its wait and the queue
/// bound when the queue gate found it late ([`QueueGate::shed`](crate::server::shed::QueueGate::shed)). A
/// late one is read by the door first, which then says whether it goes
/// ([`QueueGate::shed_late`](crate::server::shed::QueueGate::shed_late): one the door would answer itself is
/// dropped, one to be forwarded is spared while such are few): shed,
/// it is counted as such (`queue`) and nothing else is done for it.
/// `src` is where the answer goes, `who` the client (the one a
/// `proxy_from` sender's PROXY header names, else `src`'s address): the
/// door, the flight and everything per client judge `who`.
pub(super) fn on_client_late(
    w: &mut Worker,
    raw: &[u8],
    (src, who): (batch::Peer, std::net::SocketAddr),
    at: Instant,
    late: Option<(Duration, Duration)>,
) {
    // Its CLIENT_QUERY frame first (a late one's once it is spared).
    let tap_query = |w: &mut Worker| {
        tap::client_query(
            (w.balancer.dnstap(), &mut w.tap_staged),
            w.client_local,
            raw,
            who,
            || w.clock.stamps(),
        );
    };
    if late.is_none() {
        tap_query(w);
    }
    let req = Request::udp_on(raw, who, w.client_local);
    let state = Arc::clone(w.balancer.refresh(&mut w.kept));
    let mine = (Some(&mut w.counts), Some(&mut w.tap_staged));
    let admission = w.balancer.admit_on(state, req, mine, late.is_some());
    if let Some((wait, bound)) = late {
        let door = match &admission {
            Admission::Reply(_) => Door::Answered,
            Admission::Forward(..) => Door::Forward,
        };
        if w.gate.shed_late(door, wait, bound) {
            w.balancer.metrics.shed_queue.fetch_add(1, Relaxed);
            return;
        }
        // Its CLIENT_QUERY before its rule's frame, as one on time.
        tap_query(w);
        if let Admission::Forward(state, admitted) = &admission {
            let req = Request::udp_on(raw, who, w.client_local);
            let staged = Some(&mut w.tap_staged);
            w.balancer.spared(state, &req, admitted, staged);
        }
    }
    match admission {
        Admission::Reply(Reply::One(b)) => {
            w.to_clients.push_copy(&b, src);
            w.to_clients.stamp(at.into_std());
        }
        Admission::Reply(_) => {}
        Admission::Forward(state, admitted) => match admitted.delay() {
            Some(delay) => hold(w, raw, (src, at), state, admitted, delay),
            None => forward(w, raw, (src, at), state, admitted),
        },
    }
}

/// A query a `delay_ms` rule holds: a copy kept with a timer on the
/// heap, the worker free meanwhile ([`go_on`] when it fires).
/// Past `max_flights` queries held at once, or past the client's fair
/// share of them once half are taken ([`crate::guard::fair`]), it gets
/// SERVFAIL at once (counted as shed by the in-flight bound).
pub(super) fn hold(
    w: &mut Worker,
    raw: &[u8],
    (src, received): (batch::Peer, Instant),
    state: Arc<LsState>,
    admitted: Admitted,
    delay: Duration,
) {
    let group = state.client_group(admitted.client().ip());
    if !w.held.try_take(group, w.max_flights) {
        let shed = (&*state, &admitted);
        servfail_now(w, raw, (src, received), shed, |m| &m.shed_inflight);
        return;
    }
    let mut buf = w.spare.pop().unwrap_or_default();
    buf.clear();
    buf.extend_from_slice(raw);
    let at = w.clock.now + delay;
    let di = w.delayed.insert(Delayed {
        raw: buf,
        client: src,
        state,
        admitted,
        group,
        at,
        received,
    });
    w.arm(at, TimerFor::Delayed(di));
}

/// A held query's delay is over: it goes on as if just admitted.
pub(super) fn go_on(w: &mut Worker, d: Delayed) {
    let Delayed {
        raw,
        client,
        state,
        admitted,
        group,
        received,
        ..
    } = d;
    w.held.release(group);
    forward(w, &raw, (client, received), state, admitted);
    w.spare.push(raw);
}

/// Every held query goes on now (the worker is stopping).
pub(super) fn release_delayed(w: &mut Worker) {
    for d in w.delayed.drain() {
        go_on(w, d);
    }
}

/// An admitted query (arrived `received`), its ECS option edited first
/// under `ecs` in `[ls]` ([`ecs::edit_query`], into the worker's scratch
/// buffer: no allocation once it has grown), then
/// [`forward_edited`].
pub(super) fn forward(
    w: &mut Worker,
    raw: &[u8],
    (src, received): (batch::Peer, Instant),
    state: Arc<LsState>,
    admitted: Admitted,
) {
    if super::divert::encrypted(&state, &admitted)
        && let Some(lane) = &w.to_async
    {
        let req = Request::udp_on(raw, admitted.client(), w.client_local);
        let balancer = w.balancer.clone();
        let admitted = (state, admitted);
        if let Some(answer) = super::divert::divert(lane, &balancer, req, src, admitted) {
            w.to_clients.push_copy(&answer, src);
            w.to_clients.stamp(received.into_std());
        }
        return;
    }
    let mut scratch = std::mem::take(&mut w.ecs_scratch);
    let edit = ecs::edit_query(raw, state.ecs, admitted.client().ip(), &mut scratch);
    let query = if edit.is_some() { &scratch[..] } else { raw };
    forward_edited(w, (query, edit), (src, received), state, admitted);
    w.ecs_scratch = scratch;
}

/// An admitted query (`raw` as the door edited it by `edit`): answered
/// from the cache, shed, or made a flight.
fn forward_edited(
    w: &mut Worker,
    (raw, edit): (&[u8], Option<EcsEdit>),
    (src, received): (batch::Peer, Instant),
    state: Arc<LsState>,
    admitted: Admitted,
) {
    // A cache hit is written where it is sent from: no flight,
    // no copy, no allocation.
    if state.route_at(admitted.route()).cache.is_some() {
        let query = (raw, Transport::Udp, admitted.route(), edit);
        let out = w.to_clients.push_at(src, received.into_std());
        if reply::from_cache(&state, query, w.clock.now.into_std(), out) {
            let who = admitted.client().ip();
            let client = (raw, who, Transport::Udp);
            crate::ls::cookies::stamp(w.balancer.cookies(), client, out);
            w.balancer.on_answer(who, out, Some(&mut w.counts));
            return;
        }
        w.to_clients.pop();
    }
    let who = admitted.client().ip();
    let group = state.client_group(who);
    let now = w.clock.now;
    // Over the in-flight bound, or over the client's share of
    // it while it is contended ([`crate::guard::fair`]); or no
    // backend of the route with room under its concurrency
    // limit ([`backend::any_room`]): SERVFAIL at once, written from the
    // header and question; nothing copied, no queueing.
    // The in-flight bound is judged first (its count when both refuse),
    // its place taken in the same lookup when the backends have room.
    let room = backend::any_room(&state.route_at(admitted.route()).backends, now);
    let shed: Option<fn(&LsMetrics) -> &AtomicU64> = if room {
        if w.holders.try_take(group, w.max_flights) {
            None
        } else {
            Some(|m| &m.shed_inflight)
        }
    } else if w.holders.admits(group, w.max_flights) {
        Some(|m| &m.shed_limit)
    } else {
        Some(|m| &m.shed_inflight)
    };
    if let Some(counter) = shed {
        servfail_now(w, raw, (src, received), (&state, &admitted), counter);
        return;
    }
    let mut buf = w.spare.pop().unwrap_or_default();
    buf.clear();
    buf.extend_from_slice(raw);
    crate::ls::cookies::for_backend(w.balancer.cookies(), &mut buf, who);
    let mut job = admitted.into_job(buf);
    job.ecs = edit;
    // The address the query came to: its socket's, with the IP the
    // kernel told when that is a wildcard.
    job.client.1 =
        (w.client_local).map(|l| std::net::SocketAddr::new(src.local.unwrap_or(l.ip()), l.port()));
    let idx = w.flights.insert(Flight {
        state,
        job,
        client: src,
        group,
        kept: None,
        arrived: now.into_std(),
        received,
        timer_at: None,
    });
    // Its resolution made in its slot's track, that of the flight that
    // ended there (a new slot's track is the one new track made).
    let Some(f) = w.flights.get(idx) else {
        return;
    };
    match w.tracks.get_mut(idx as usize) {
        Some(t) => {
            t.attempts.clear();
            f.state.restart_resolution(&f.job, now, &mut t.res);
        }
        None => w.tracks.push(Track {
            res: f.state.resolution(&f.job, now),
            attempts: SmallVec::new(),
        }),
    }
    w.drive(idx, now);
}

/// A SERVFAIL at once to the query in `raw` from `src` (shed: counted
/// in `counter`), written from its header and question; nothing
/// copied, no queueing.
fn servfail_now(
    w: &mut Worker,
    raw: &[u8],
    (src, received): (batch::Peer, Instant),
    (state, admitted): (&LsState, &Admitted),
    counter: fn(&LsMetrics) -> &AtomicU64,
) {
    let m = &w.balancer.metrics;
    counter(m).fetch_add(1, Relaxed);
    let out = w.to_clients.push_at(src, received.into_std());
    if shed::write_servfail(raw, admitted.question_end(), out) {
        let pool = state.route_at(admitted.route()).counters.as_deref();
        for answers in [Some(&m.answers), pool.map(|p| &p.answers)] {
            if let Some(c) = answers.and_then(|a| a.get(2)) {
                c.fetch_add(1, Relaxed);
            }
        }
        m.client_latency.record(Duration::ZERO);
        w.balancer.on_made_up(out, Some(&mut w.counts));
    } else {
        w.to_clients.pop();
    }
}
