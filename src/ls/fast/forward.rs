//! A fast-path worker's queries: a client query admitted, answered from
//! the packet cache ([`reply::from_cache`]) or made a flight, its
//! [`Resolution`](crate::ls::resolution::Resolution) driven (attempts
//! launched on the upstream sockets, the reply made by [`reply::finish`]
//! when it ends), its attempts retired as late entries
//! when it ends first, and each upstream datagram judged by the upstream
//! core's check ([`accept`]) and handed to its flight.
use std::cmp::Reverse;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use smallvec::SmallVec;
use tokio::time::Instant;
use tracing::debug;

use super::flight::{Attempt, Flight, Late, TimerFor};
use super::worker::{self, Worker};
use crate::dns::{self, HEADER_LEN, Transport, WireHeader};
use crate::ls::backend::limit;
use crate::ls::balancer::Admission;
use crate::ls::loopmark::PlainAnswer;
use crate::ls::resolution::{End, Step, Verdict};
use crate::ls::state::Route;
use crate::ls::upstream::accept::{self, Reject};
use crate::ls::upstream::ids::{self, IdUse};
use crate::ls::upstream::sockets::Family;
use crate::ls::{reply, strategy};
use crate::server::{Reply, Request, batch, shed};

impl Worker {
    /// One client datagram.
    pub(super) fn on_client(&mut self, raw: &[u8], src: batch::Peer) {
        let req = Request {
            raw,
            src: src.addr,
            transport: Transport::Udp,
        };
        match self.balancer.admit(req) {
            Admission::Reply(Reply::One(b)) => self.to_clients.push_copy(&b, src),
            Admission::Reply(_) => {}
            Admission::Forward(state, admitted) => {
                // A cache hit is written where it is sent from: no flight,
                // no copy, no allocation.
                if state.route_at(admitted.route()).cache.is_some() {
                    let query = (raw, Transport::Udp, admitted.route());
                    let out = self.to_clients.push(src);
                    if reply::from_cache(&state, query, out) {
                        self.balancer.on_answer(src.addr.ip(), out);
                        return;
                    }
                    self.to_clients.pop();
                }
                let group = state.client_group(src.addr.ip());
                let now = Instant::now();
                let m = &self.balancer.metrics;
                // Over the in-flight bound, or over the client's share of
                // it while it is contended ([`crate::guard::fair`]); or no
                // backend of the route with room under its concurrency
                // limit ([`limit`]): SERVFAIL at once, written from the
                // header and question; nothing copied, no queueing.
                let shed = if !self.holders.admits(group, self.max_flights) {
                    Some(&m.shed_inflight)
                } else if !limit::any_room(&state.route_at(admitted.route()).backends, now) {
                    Some(&m.shed_limit)
                } else {
                    None
                };
                if let Some(counter) = shed {
                    counter.fetch_add(1, Relaxed);
                    let out = self.to_clients.push(src);
                    if shed::write_servfail(raw, admitted.question_end(), out) {
                        let pool = state.route_at(admitted.route()).counters.as_deref();
                        for answers in [Some(&m.answers), pool.map(|p| &p.answers)] {
                            if let Some(c) = answers.and_then(|a| a.get(2)) {
                                c.fetch_add(1, Relaxed);
                            }
                        }
                        m.client_latency.record(Duration::ZERO);
                    } else {
                        self.to_clients.pop();
                    }
                    return;
                }
                let mut buf = self.spare.pop().unwrap_or_default();
                buf.clear();
                buf.extend_from_slice(raw);
                let job = admitted.into_job(buf);
                let res = state.resolution(&job, now);
                self.holders.take(group);
                let idx = self.flights.insert(Flight {
                    state,
                    job,
                    client: src,
                    group,
                    res,
                    attempts: SmallVec::new(),
                    kept: None,
                    arrived: std::time::Instant::now(),
                    timer_at: None,
                });
                self.drive(idx, now);
            }
        }
    }

    /// Runs flight `idx`'s state machine at `now`: sends what it launches,
    /// arms its timer, or ends it.
    pub(super) fn drive(&mut self, idx: u32, now: Instant) {
        loop {
            let Some(f) = self.flights.get_mut(idx) else {
                return;
            };
            match f.res.poll(now, f.state.route(&f.job)) {
                Step::Launch { backend, hedge } => {
                    if hedge {
                        f.state.metrics.hedges.fetch_add(1, Relaxed);
                    }
                    if !self.launch(idx, backend)
                        && let Some(f) = self.flights.get_mut(idx)
                    {
                        f.res.on_outcome(backend, Verdict::Failed);
                    }
                }
                Step::Wait => {
                    let at = f.res.next_wakeup();
                    if f.timer_at != Some(at) {
                        f.timer_at = Some(at);
                        self.timers.push(Reverse((at, TimerFor::Flight(idx))));
                    }
                    return;
                }
                Step::Done(end) => {
                    let Some(mut f) = self.flights.remove(idx) else {
                        return;
                    };
                    self.holders.release(f.group);
                    // Those still asked become late entries.
                    let winner = end.backend();
                    let excused = strategy::excuses_silence(f.res.layout(), end);
                    // Backends charged a timeout by the reply itself.
                    let timed_out = matches!(end, End::OnTimeout { timed_out: true });
                    let route = f.state.route(&f.job);
                    for a in f.attempts.drain(..) {
                        let charged = timed_out && f.res.unfinished().any(|b| b == a.backend);
                        let who = (winner, excused, charged);
                        self.retire(a, route, f.res.deadline(), now, who);
                    }
                    let answered = reply::Answered {
                        backend: end.backend(),
                        route: f.job.route,
                        log: f.job.log.take(),
                    };
                    let reply = reply::finish(&f.state, &f.job, &f.res, end, f.kept.take());
                    answered.log(&f.state, &reply, f.arrived.elapsed());
                    self.answer(reply, f.client, f.arrived);
                    self.recycle(std::mem::take(&mut f.job.raw));
                    return;
                }
            }
        }
    }

    /// Counts a forwarded query's reply and queues it for the client.
    fn answer(&mut self, reply: Reply, to: batch::Peer, arrived: std::time::Instant) {
        self.balancer.metrics.answered(&reply, arrived);
        if let Reply::One(b) = reply {
            self.balancer.on_answer(to.addr.ip(), &b);
            self.to_clients.push_copy(&b, to);
            self.recycle(b);
        }
    }

    /// Queues flight `idx`'s query to `backend`; false when it cannot go.
    fn launch(&mut self, idx: u32, backend: usize) -> bool {
        let Some(f) = self.flights.get_mut(idx) else {
            return false;
        };
        let Some(b) = f.state.route(&f.job).backends.get(backend).cloned() else {
            return false;
        };
        // A random socket of the family; a worn one is replaced at once.
        let family = Family::of(b.addr);
        let Some((sock, id)) = self.ups.take(family, IdUse::Flight(idx), || {
            worker::open_upstream(family)
                .map_err(|err| debug!(?err, "cannot open an upstream socket: the worn one stays"))
                .ok()
        }) else {
            return false;
        };
        while self.to_upstream.len() <= sock {
            self.to_upstream.push(worker::upstream_queue());
        }
        if let Some(out) = self.to_upstream.get_mut(sock) {
            let query = out.push(b.addr);
            query.extend_from_slice(&f.job.raw);
            WireHeader::set_id(query, id);
            f.state
                .mark
                .stamp(query, f.job.question_end, b.speaks_edns());
        }
        f.attempts.push(Attempt {
            backend,
            sock,
            id,
            inflight: Some(b.begin()),
            refused: false,
        });
        true
    }

    /// An attempt whose flight ended without its answer: remembered until
    /// its deadline (for its latency and outstanding count) plus a grace.
    /// Unanswered at its deadline, it is a loss of its backend, unless that
    /// backend answered the client (`winner`: a re-ask's lost twin) or the
    /// answer excuses every other backend's silence (`excused`:
    /// [`strategy::excuses_silence`]). `charged`: the query timed out with
    /// this backend silent, and the reply charged it (its refused copy is
    /// not charged a second time).
    fn retire(
        &mut self,
        mut a: Attempt,
        route: &Route,
        deadline: Instant,
        now: Instant,
        (winner, excused, charged): (Option<usize>, bool, bool),
    ) {
        let addr = route.backends.get(a.backend).map(|b| b.addr);
        let Some(addr) = addr else { return };
        // A refused try was given up when the kernel refused it, before the
        // deadline however late the flight ends: still silent at the
        // deadline (it always is), a loss of its backend, unless that
        // backend won by another copy (a re-ask's twin).
        if a.refused
            && winner != Some(a.backend)
            && !charged
            && let Some(f) = a.inflight.as_mut()
        {
            f.rescued();
        }
        let entry = ids::Late::abandoned(
            addr,
            a.inflight.take(),
            deadline,
            route.adaptive_hedge_pct(),
            now,
            winner == Some(a.backend) || excused,
        );
        let (sock, id, at) = (a.sock, a.id, deadline.max(now));
        let li = self.late.insert(Late {
            sock,
            id,
            entry,
            timer_at: at,
        });
        if let Some(u) = self.ups.get_mut(sock) {
            u.ids.set(id, IdUse::Late(li));
        }
        self.timers.push(Reverse((at, TimerFor::Late(li))));
    }

    /// The upstream query `id` on socket `sock` that the kernel refused to
    /// send: its try ends at once, as a refused send ends one on the async
    /// path ([`crate::ls::pool`]: the exchange fails, its waiter is
    /// abandoned). Its flight hears `Failed` for its backend (the next
    /// backend is asked at once, or the client answered when none is left);
    /// the attempt stays marked in the flight until the flight ends and
    /// retires it as a late entry: in flight until the deadline, then a
    /// loss of its backend (a timeout, and a health loss), as a refused
    /// send is charged there, unless that backend won the query by another
    /// copy (a re-ask; the async path's `WonBy`). An ID no flight waits for
    /// (its flight ended first: already a late entry) is left as it is.
    pub(super) fn on_refused(&mut self, sock: usize, id: u16, now: Instant) {
        let Some(IdUse::Flight(idx)) = self.ups.get(sock).map(|u| u.ids.get(id)) else {
            return;
        };
        let Some(f) = self.flights.get_mut(idx) else {
            return;
        };
        let Some(a) = f
            .attempts
            .iter_mut()
            .find(|a| a.sock == sock && a.id == id && !a.refused)
        else {
            return;
        };
        a.refused = true;
        f.res.on_outcome(a.backend, Verdict::Failed);
        self.drive(idx, now);
    }

    /// One upstream datagram on socket `sock`, checked (RFC 5452,
    /// [`accept`]) and delivered: `Ok` when delivered (or its socket is
    /// gone), else why not, for the caller to count.
    pub(super) fn on_upstream(
        &mut self,
        sock: usize,
        resp: &[u8],
        from: SocketAddr,
        cut: bool,
        now: Instant,
    ) -> Result<(), Reject> {
        let h = accept::header(resp)?;
        let Some(u) = self.ups.get(sock) else {
            return Ok(());
        };
        let idx = match u.ids.get(h.id) {
            IdUse::Free => return Err(Reject::WrongId),
            IdUse::Late(li) => {
                let why = self
                    .late
                    .get(li)
                    .map_or(Reject::WrongSource, |l| accept::late(from, l.entry.addr));
                if why == Reject::Late
                    && let Some(mut l) = self.late.remove(li)
                {
                    l.entry.settle(now);
                    if let Some(u) = self.ups.get_mut(sock) {
                        u.ids.set(h.id, IdUse::Free);
                    }
                }
                return Err(why);
            }
            IdUse::Flight(idx) => idx,
        };
        let f = self.flights.get_mut(idx).ok_or(Reject::WrongId)?;
        let pos = f
            .attempts
            .iter()
            .position(|a| a.sock == sock && a.id == h.id && !a.refused)
            .ok_or(Reject::WrongId)?;
        let backend = f.attempts.get(pos).map_or(usize::MAX, |a| a.backend);
        let Some(addr) = f.state.route(&f.job).backends.get(backend).map(|b| b.addr) else {
            return Ok(());
        };
        let question = f
            .job
            .raw
            .get(HEADER_LEN..f.job.question_end)
            .unwrap_or_default();
        accept::check(&h, resp, from, addr, question)?;
        let question_len = question.len();
        let a = f.attempts.remove(pos);
        if let Some(u) = self.ups.get_mut(sock) {
            u.ids.set(h.id, IdUse::Free);
        }
        let Some(f) = self.flights.get_mut(idx) else {
            return Ok(());
        };
        let rtt = a
            .inflight
            .as_ref()
            .map_or(Duration::ZERO, |i| now.saturating_duration_since(i.sent()));
        drop(a);
        // A response cut short by its slot (longer than any UDP
        // client may take) is kept as a truncated answer: TC=1,
        // and the client asks again over TCP.
        // One walk over an answer for a client that sent no OPT gives both
        // whether it is usable and the OPT to take out of it.
        let plain = PlainAnswer::for_client(!f.job.ends_at_question(), resp);
        let verdict = f.state.route(&f.job).judge_response(
            backend,
            now,
            rtt,
            Some(h).filter(|_| plain.usable()),
        );
        let keep = f.res.on_outcome(backend, verdict);
        if keep || verdict == Verdict::Final {
            let mut buf = f
                .kept
                .take()
                .or_else(|| self.spare.pop())
                .unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(resp);
            if cut {
                // Cannot fail: its question was checked above. The cut
                // answer has an OPT of the LS's (rare: walked again).
                let _ = dns::cut_to_truncated(&mut buf, question_len);
                PlainAnswer::for_client(!f.job.ends_at_question(), &buf).apply(&mut buf);
            } else {
                plain.apply(&mut buf);
            }
            f.kept = Some(buf);
        }
        self.drive(idx, now);
        Ok(())
    }
}
