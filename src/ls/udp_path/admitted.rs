//! A client query the door admitted, on the UDP path: answered from the
//! packet cache, shed (the in-flight bound, the backends' limits), or made
//! a flight ([`Worker::forward`]); or first held by a `delay_ms` rule
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
use super::worker::Worker;
use crate::dns::Transport;
use crate::ls::backend;
use crate::ls::balancer::Admitted;
use crate::ls::ecs::{self, EcsEdit};
use crate::ls::reply;
use crate::ls::state::{LsMetrics, LsState};
use crate::server::{batch, shed};

impl Worker {
    /// A query a `delay_ms` rule holds: a copy kept with a timer on the
    /// heap, the worker free meanwhile ([`Worker::go_on`] when it fires).
    /// Past `max_flights` queries held at once, or past the client's fair
    /// share of them once half are taken ([`crate::guard::fair`]), it gets
    /// SERVFAIL at once (counted as shed by the in-flight bound).
    pub(super) fn hold(
        &mut self,
        raw: &[u8],
        (src, received): (batch::Peer, Instant),
        state: Arc<LsState>,
        admitted: Admitted,
        delay: Duration,
    ) {
        let group = state.client_group(src.addr.ip());
        if !self.held.try_take(group, self.max_flights) {
            let shed = (&*state, &admitted);
            self.servfail_now(raw, (src, received), shed, |m| &m.shed_inflight);
            return;
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(raw);
        let at = self.clock.now + delay;
        let di = self.delayed.insert(Delayed {
            raw: buf,
            client: src,
            state,
            admitted,
            group,
            at,
            received,
        });
        self.arm(at, TimerFor::Delayed(di));
    }

    /// A held query's delay is over: it goes on as if just admitted.
    pub(super) fn go_on(&mut self, d: Delayed) {
        let Delayed {
            raw,
            client,
            state,
            admitted,
            group,
            received,
            ..
        } = d;
        self.held.release(group);
        self.forward(&raw, (client, received), state, admitted);
        self.spare.push(raw);
    }

    /// Every held query goes on now (the worker is stopping).
    pub(super) fn release_delayed(&mut self) {
        for d in self.delayed.drain() {
            self.go_on(d);
        }
    }

    /// An admitted query (arrived `received`), its ECS option edited first
    /// under `ecs` in `[ls]` ([`ecs::edit_query`], into the worker's scratch
    /// buffer: no allocation once it has grown), then
    /// [`Worker::forward_edited`].
    pub(super) fn forward(
        &mut self,
        raw: &[u8],
        (src, received): (batch::Peer, Instant),
        state: Arc<LsState>,
        admitted: Admitted,
    ) {
        let mut scratch = std::mem::take(&mut self.ecs_scratch);
        let edit = ecs::edit_query(raw, state.ecs, src.addr.ip(), &mut scratch);
        let query = if edit.is_some() { &scratch[..] } else { raw };
        self.forward_edited((query, edit), (src, received), state, admitted);
        self.ecs_scratch = scratch;
    }

    /// An admitted query (`raw` as the door edited it by `edit`): answered
    /// from the cache, shed, or made a flight.
    fn forward_edited(
        &mut self,
        (raw, edit): (&[u8], Option<EcsEdit>),
        (src, received): (batch::Peer, Instant),
        state: Arc<LsState>,
        admitted: Admitted,
    ) {
        // A cache hit is written where it is sent from: no flight,
        // no copy, no allocation.
        if state.route_at(admitted.route()).cache.is_some() {
            let query = (raw, Transport::Udp, admitted.route(), edit);
            let out = self.to_clients.push_at(src, received.into_std());
            if reply::from_cache(&state, query, self.clock.now.into_std(), out) {
                self.balancer
                    .on_answer(src.addr.ip(), out, Some(&mut self.counts));
                return;
            }
            self.to_clients.pop();
        }
        let group = state.client_group(src.addr.ip());
        let now = self.clock.now;
        // Over the in-flight bound, or over the client's share of
        // it while it is contended ([`crate::guard::fair`]); or no
        // backend of the route with room under its concurrency
        // limit ([`backend::any_room`]): SERVFAIL at once, written from the
        // header and question; nothing copied, no queueing.
        // The in-flight bound is judged first (its count when both refuse),
        // its place taken in the same lookup when the backends have room.
        let room = backend::any_room(&state.route_at(admitted.route()).backends, now);
        let shed: Option<fn(&LsMetrics) -> &AtomicU64> = if room {
            if self.holders.try_take(group, self.max_flights) {
                None
            } else {
                Some(|m| &m.shed_inflight)
            }
        } else if self.holders.admits(group, self.max_flights) {
            Some(|m| &m.shed_limit)
        } else {
            Some(|m| &m.shed_inflight)
        };
        if let Some(counter) = shed {
            self.servfail_now(raw, (src, received), (&state, &admitted), counter);
            return;
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(raw);
        let mut job = admitted.into_job(buf);
        job.ecs = edit;
        let idx = self.flights.insert(Flight {
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
        let Some(f) = self.flights.get(idx) else {
            return;
        };
        match self.tracks.get_mut(idx as usize) {
            Some(t) => {
                t.attempts.clear();
                f.state.restart_resolution(&f.job, now, &mut t.res);
            }
            None => self.tracks.push(Track {
                res: f.state.resolution(&f.job, now),
                attempts: SmallVec::new(),
            }),
        }
        self.drive(idx, now);
    }

    /// A SERVFAIL at once to the query in `raw` from `src` (shed: counted
    /// in `counter`), written from its header and question; nothing
    /// copied, no queueing.
    fn servfail_now(
        &mut self,
        raw: &[u8],
        (src, received): (batch::Peer, Instant),
        (state, admitted): (&LsState, &Admitted),
        counter: fn(&LsMetrics) -> &AtomicU64,
    ) {
        let m = &self.balancer.metrics;
        counter(m).fetch_add(1, Relaxed);
        let out = self.to_clients.push_at(src, received.into_std());
        if shed::write_servfail(raw, admitted.question_end(), out) {
            let pool = state.route_at(admitted.route()).counters.as_deref();
            for answers in [Some(&m.answers), pool.map(|p| &p.answers)] {
                if let Some(c) = answers.and_then(|a| a.get(2)) {
                    c.fetch_add(1, Relaxed);
                }
            }
            m.client_latency.record(Duration::ZERO);
            self.balancer.on_made_up(out, Some(&mut self.counts));
        } else {
            self.to_clients.pop();
        }
    }
}
