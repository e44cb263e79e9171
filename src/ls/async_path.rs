//! The async driver (TCP, DoT and DoH clients' queries: the server layer's
//! `Handler`): the strategies, driven, for one client query sent across its
//! candidates and turned into a reply, over the shared upstream UDP sockets
//! ([`super::upstream::shared`]) and TCP connections.
//!
//! - `race`: every candidate at once;
//! - `hedge`: one, then the next each time the hedge delay passes (when the
//!   hedge budget refuses, the next one is still asked once `try_timeout_ms`
//!   has passed: that is failover, not a hedge);
//! - `sequential`: one, then the next after `try_timeout_ms`.
//!
//! Under every strategy, once every candidate has been asked, a backend
//! still silent is asked again at growing intervals while time remains,
//! each re-ask with a fresh upstream ID and a budget token (see
//! [`super::resolution`]); all copies stay open and any answer wins.
//!
//! The decisions (who next, when, and what the answers add up to) are the
//! pure state machine of [`super::resolution`]; this module is its async
//! driver (the one TCP clients take, and the server layer's [`Handler`]):
//! it runs the machine over the upstream pool's exchanges and hands the end
//! to [`super::reply`]. The UDP fast path ([`super::udp_path`]) is the other
//! driver of the same machine. A query is asked of its route's backends
//! (its pool's, or every backend) by its route's policy.
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{Fuse, FusedFuture};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::{Instant, sleep_until};

use super::backend::{Backend, WonBy};
use super::balancer::Balancer;
use super::door::{Admission, Admitted};
use super::handoff::{Handed, HandedQuery};
use super::loopmark::PlainAnswer;
use super::reply::{Answered, finish};
use super::resolution::{End, Resolution, Step, Verdict};
use super::state::{Job, LsMetrics, LsState};
use super::tap;
use super::upstream::UpstreamError;
use super::upstream::shared::{self, SharedSockets};
use crate::dns::{Transport, WireHeader};
use crate::dnstap::{TapTime, TapTransport};
use crate::server::{Action, Handler, Reply, Request, recycle};

/// The end of one upstream attempt.
struct Attempt {
    backend: usize,
    result: Result<Vec<u8>, UpstreamError>,
    rtt: Duration,
}

/// Asks `backend` (index `i`), retrying over TCP when a TCP client's answer
/// came back truncated. A TCP client's ANY goes to the backend over TCP at
/// once: over UDP an authoritative server answers ANY with one RRset (RFC
/// 8482), over TCP with all of them, which is what a client that chose TCP
/// gets from the server itself.
async fn attempt(
    state: &Arc<LsState>,
    i: usize,
    job: &Job,
    deadline: Instant,
    won_by: Arc<WonBy>,
) -> Attempt {
    let started = Instant::now();
    let Some(b) = state.route(job).backends.get(i).cloned() else {
        return Attempt {
            backend: i,
            result: Err(UpstreamError::Unusable),
            rtt: Duration::ZERO,
        };
    };
    let result = exchange(state, &b, job, deadline, won_by).await;
    Attempt {
        backend: i,
        result,
        rtt: started.elapsed(),
    }
}

async fn exchange(
    state: &Arc<LsState>,
    b: &Arc<Backend>,
    job: &Job,
    deadline: Instant,
    won_by: Arc<WonBy>,
) -> Result<Vec<u8>, UpstreamError> {
    let mut query = recycle::copy_of(&job.raw);
    // Marked, so that a loop back to this LS is refused (loopmark).
    state
        .mark
        .stamp(&mut query, job.question_end, b.speaks_edns());
    let question = job.question();
    if tcp_only(job) || b.link.is_some() {
        return over_tcp(state, b, (query, job), question, deadline, won_by).await;
    }
    let sent = Instant::now();
    let mut local = None;
    let head = b.proxy.then(|| super::proxy_out::header(job));
    let resp = pool_of(state)
        .exchange_from(
            (b.addr, &mut local, head.as_ref().map(|h| h.as_bytes())),
            &mut query,
            job.question_end,
            deadline,
            Some(b.begin().for_query(won_by.clone())),
            state.route(job).adaptive_hedge_pct(),
        )
        .await;
    // The query as it left (its upstream ID set by the exchange), and the
    // answer as accepted.
    let d = tap::of(&state.metrics);
    tap::forwarder_query(d, TapTransport::Udp, local, b.addr, &query);
    let resp = match resp {
        Ok(resp) => resp,
        Err(err) => {
            recycle::give(query);
            return Err(err);
        }
    };
    if let Some(e) = tap::forwarder_response_at(
        d,
        TapTransport::Udp,
        || local,
        b.addr,
        sent.elapsed(),
        &resp,
        TapTime::now,
    ) {
        d.log(&e);
    }
    let truncated = WireHeader::read(&resp).is_some_and(|h| h.truncated());
    if truncated && job.transport == Transport::Tcp {
        return over_tcp(state, b, (query, job), question, deadline, won_by).await;
    }
    recycle::give(query);
    Ok(resp)
}

/// Asks `b` over TCP (or over its encrypted link, when it has one),
/// counted in its in-flight queries ([`Backend::begin`])
/// until the answer or the deadline, even once the client's query no
/// longer waits for it: least-outstanding sees the backend busy, and a copy
/// abandoned before its deadline (another backend answered the client)
/// that is still unanswered at it, or whose connection failed, is a loss of
/// its backend, as on UDP ([`super::backend::InFlight::settle`]). A copy the
/// client's query still waits for is judged by the driver (a timeout
/// charged at the deadline by [`finish`]).
async fn over_tcp(
    state: &Arc<LsState>,
    b: &Arc<Backend>,
    (query, job): (Vec<u8>, &Job),
    question: &[u8],
    deadline: Instant,
    won_by: Arc<WonBy>,
) -> Result<Vec<u8>, UpstreamError> {
    let mut flight = b.begin().for_query(won_by);
    let (pool, addr, question) = (pool_of(state), b.addr, question.to_vec());
    let link = b.link.clone();
    // A backend with `proxy`: a connection of the query's own, opened by
    // its client's PROXY header.
    let head = b.proxy.then(|| super::proxy_out::header(job));
    let (mut tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let ask = async {
            match (&link, head) {
                (Some(link), _) => link.exchange(addr, &query, &question, deadline).await,
                (None, Some(head)) => {
                    let head = head.as_bytes();
                    super::proxy_out::exchange_tcp(addr, head, &query, &question, deadline).await
                }
                (None, None) => pool.tcp.exchange(addr, &query, &question, deadline).await,
            }
        };
        tokio::pin!(ask);
        let result = tokio::select! {
            r = &mut ask => r,
            () = tx.closed() => {
                // Abandoned: rescued by another backend before the deadline
                // (at it, the driver charged the silent ones itself).
                let rescued = Instant::now() < deadline;
                let result = ask.await;
                if rescued {
                    flight.rescued();
                    let now = Instant::now();
                    flight.settle(settle_at(result.is_ok(), now, deadline), deadline, None);
                }
                return;
            }
        };
        if let Err(UpstreamError::Full) = result {
            // Refused at once by its full link: never sent.
            flight.backend().stats.sent.fetch_sub(1, Relaxed);
        }
        let _ = tx.send(result);
    });
    rx.await.unwrap_or(Err(UpstreamError::Unusable))
}

/// The upstream sockets and connections a query asks its backends from:
/// this thread's own (a worker's: its answers are read on this thread,
/// [`shared::install`]), else the LS's shared pool, counted
/// (`off_worker`).
fn pool_of(state: &LsState) -> Arc<SharedSockets> {
    shared::local().unwrap_or_else(|| {
        state.metrics.drops.off_worker.fetch_add(1, Relaxed);
        state.pool.clone()
    })
}

/// When an abandoned TCP copy that ended at `now` is settled (pure): when
/// its answer came, or, with none (timed out, its connection failed), at
/// the deadline, which makes it a loss.
fn settle_at(answered: bool, now: Instant, deadline: Instant) -> Instant {
    if answered { now } else { now.max(deadline) }
}

/// Whether `job` goes to its backends over TCP only: a TCP client's ANY
/// ([`attempt`]).
fn tcp_only(job: &Job) -> bool {
    let question = job.question();
    let any = question.len() >= 4 && question[question.len() - 4..question.len() - 2] == [0, 255];
    any && job.transport == Transport::Tcp
}

/// Drives one client query to its reply.
pub(crate) async fn resolve(state: Arc<LsState>, mut job: Job) -> (Reply, Answered) {
    let log = job.log.take();
    let mut res = state.resolution(&job, Instant::now());
    if tcp_only(&job) {
        res.without_reasks();
    }
    let mut full = false;
    let (end, kept) = drive(&state, &job, &mut res, &mut full).await;
    if full && matches!(end, End::AllFailed) {
        // Every backend failed, a full link among them: shed as a UDP
        // query is when no backend has room (`dnslb_shed_total{reason="limit"}`).
        state.metrics.shed_limit.fetch_add(1, Relaxed);
    }
    let reply = finish(&state, &job, &res, end, kept);
    let answered = Answered {
        backend: end.backend(),
        route: job.route,
        log,
    };
    // The query's bytes, for the next query's.
    recycle::give(job.raw);
    (reply, answered)
}

/// Runs `res` over its attempts (each borrowing `job`: nothing shared is
/// allocated for them) until it ends: the end, and the answer kept. The
/// attempts left are abandoned on return, once the winner is noted.
/// `full`: set when a backend's link refused an attempt as full.
async fn drive(
    state: &Arc<LsState>,
    job: &Job,
    res: &mut Resolution,
    full: &mut bool,
) -> (End, Option<Vec<u8>>) {
    let deadline = res.deadline();
    let won_by = WonByCell::take();
    // The attempts: one in place (most queries make no other: nothing
    // allocated for the set), any other at once in a set made then.
    let mut first = std::pin::pin!(Fuse::terminated());
    let mut more = None;
    // The winning response, and the negative one that may be passed on.
    let mut kept: Option<Vec<u8>> = None;
    loop {
        match res.poll(Instant::now(), state.route(job)) {
            Step::Launch { backend, hedge } => {
                if hedge {
                    state.metrics.hedges.fetch_add(1, Relaxed);
                }
                let a = attempt(state, backend, job, deadline, won_by.0.clone());
                if first.is_terminated() {
                    first.set(a.fuse());
                } else {
                    more.get_or_insert_with(FuturesUnordered::new).push(a);
                }
            }
            Step::Done(end) => {
                // Before the other attempts are dropped (abandoned).
                if let Some(b) = end.backend().and_then(|i| state.route(job).backends.get(i)) {
                    won_by.set(b, end.excuses_silence(res.layout()));
                }
                return (end, kept);
            }
            Step::Wait => {
                let others = more
                    .as_ref()
                    .is_some_and(|m: &FuturesUnordered<_>| !m.is_empty());
                let done = tokio::select! {
                    biased;
                    a = first.as_mut(), if !first.is_terminated() => Some(a),
                    Some(a) = async { more.as_mut()?.next().await }, if others => Some(a),
                    _ = sleep_until(res.next_wakeup()) => None,
                };
                let Some(a) = done else { continue };
                *full |= matches!(a.result, Err(UpstreamError::Full));
                let Some((verdict, plain)) = judge(state, job, &a) else {
                    // Timed out: the query's deadline has come, and
                    // ends it (a backend still silent is charged
                    // then, once, however many copies it was sent).
                    continue;
                };
                let Attempt {
                    backend, result, ..
                } = a;
                let keep = res.on_outcome(backend, verdict);
                if keep || verdict == Verdict::Final {
                    kept = result.ok().map(|mut resp| {
                        plain.apply(&mut resp);
                        resp
                    });
                }
            }
        }
    }
}

thread_local! {
    /// Winner cells no flight holds any more, for the next queries.
    static WON_BY: std::cell::RefCell<Vec<Arc<WonBy>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Winner cells kept per thread.
const WON_BY_KEPT: usize = 64;

/// A query's winner cell ([`WonBy`]): one of this thread's free ones when
/// there is one; back to them when dropped if no flight holds it any more
/// (the usual case: its flights settled as their answers came), emptied.
struct WonByCell(Arc<WonBy>);

impl WonByCell {
    fn take() -> Self {
        let kept = WON_BY.try_with(|k| k.borrow_mut().pop()).ok().flatten();
        WonByCell(kept.unwrap_or_default())
    }
}

impl std::ops::Deref for WonByCell {
    type Target = WonBy;

    fn deref(&self) -> &WonBy {
        &self.0
    }
}

impl Drop for WonByCell {
    fn drop(&mut self) {
        if let Some(w) = Arc::get_mut(&mut self.0) {
            *w = WonBy::default();
            let _ = WON_BY.try_with(|k| {
                let mut k = k.borrow_mut();
                if k.len() < WON_BY_KEPT {
                    k.push(self.0.clone());
                }
            });
        }
    }
}

/// Counts one attempt's outcome on its backend and judges it, with what
/// its answer needs before the client gets it; `None` when it timed out (at
/// the query's deadline, which ends the query and charges the backends
/// still silent: [`finish`]). An answer whose extended rcode the client
/// (which sent no OPT) cannot be told is unusable.
fn judge(state: &LsState, job: &Job, a: &Attempt) -> Option<(Verdict, PlainAnswer)> {
    let route = state.route(job);
    if route.backends.get(a.backend).is_none() {
        return Some((Verdict::Failed, PlainAnswer::AsIs));
    }
    match &a.result {
        Ok(resp) => {
            let plain = job.plain_answer(resp);
            let header = WireHeader::read(resp).filter(|_| plain.usable());
            let verdict = route.judge_response(a.backend, Instant::now(), a.rtt, header);
            Some((verdict, plain))
        }
        Err(UpstreamError::Timeout) => None,
        Err(_) => Some((Verdict::Failed, PlainAnswer::AsIs)),
    }
}

impl Handler for Balancer {
    fn worker_local(&self) -> crate::server::local::WorkerLocal {
        super::xdp_local::worker_local(self)
    }

    fn handle_local(
        &self,
        req: Request<'_>,
        local: &mut crate::server::local::WorkerLocal,
    ) -> Action {
        super::xdp_local::handle_local(self, req, local)
    }

    fn local_idle(&self, local: &mut crate::server::local::WorkerLocal) {
        super::xdp_local::idle(self, local);
    }

    fn tcp_cap_refused(&self) {
        self.metrics
            .tcp_cap_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn tcp_share_refused(&self) {
        self.metrics
            .tcp_share_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A `proxy_from` sender's connection is let in: the ACL judges the
    /// client its header names, query by query.
    fn admits_connection(&self, ip: std::net::IpAddr) -> bool {
        self.state().allow.contains(ip) || self.proxy_gate.as_ref().is_some_and(|g| g.trusts(ip))
    }

    fn proxy_gate(&self) -> Option<&crate::server::proxy_gate::ProxyGate> {
        self.proxy_gate.as_ref()
    }

    fn inflight_refused(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let m = &self.metrics;
        m.shed_inflight.fetch_add(1, Relaxed);
        if let Some(c) = m.answers.get(2) {
            c.fetch_add(1, Relaxed);
        }
        self.dynblocks().on_made_up(2);
    }

    fn tcp_acl_refused(&self) {
        self.metrics
            .tcp_acl_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The longest deadline of the snapshot in force at the stop, and a
    /// margin, or longer for the queries of a snapshot a reload replaced
    /// ([`Balancer::drain_grace`]).
    fn drain_grace(&self) -> Option<std::time::Duration> {
        Some(Balancer::drain_grace(self))
    }

    /// Corked: the upstream UDP queries of one poll of the connection leave
    /// together ([`super::upstream::shared::corked`]).
    fn wrap_connection<F: std::future::Future + Send>(
        &self,
        conn: F,
    ) -> impl std::future::Future<Output = F::Output> + Send {
        super::upstream::shared::corked(conn)
    }

    fn handle(&self, req: Request<'_>) -> Action {
        let raw = req.raw;
        let (client, via, local) = (req.src, TapTransport::of(req.via), req.local);
        let d = self.dnstap();
        tap::client_query(d, via, client, || local, raw);
        let answered = |reply: &Reply| {
            if let Reply::One(answer) = reply {
                tap::client_response(d, via, client, local, None, answer);
            }
        };
        match self.admit(req) {
            Admission::Reply(reply) => {
                answered(&reply);
                Action::Now(reply)
            }
            Admission::Forward(state, admitted) => forward_admitted(self, req, state, admitted),
        }
    }
}

/// An admitted query `req` forwarded on the async path: answered from
/// the cache, handed to the UDP worker of its address (an XDP
/// worker's datagram), or resolved by a task. The UDP fast path sends
/// here the queries of a route with a backend reached over TLS or QUIC
/// (those go through the async upstream layer).
pub(crate) fn forward_admitted(
    b: &Balancer,
    req: Request<'_>,
    state: Arc<LsState>,
    admitted: Admitted,
) -> Action {
    forward_admitted_by(b, req, (state, admitted), None)
}

/// [`forward_admitted`] by a worker that keeps `mine` (an XDP worker's
/// counts, and the buffer a cache hit is written into).
pub(crate) fn forward_admitted_by(
    b: &Balancer,
    req: Request<'_>,
    (state, admitted): (Arc<LsState>, Admitted),
    mine: Option<super::xdp_local::Mine<'_>>,
) -> Action {
    let (counts, mut spare) = super::xdp_local::Mine::split(mine);
    let (raw, transport) = (req.raw, req.transport);
    let raw_in = raw;
    let (client, via, local) = (req.src, TapTransport::of(req.via), req.local);
    let d = b.dnstap();
    let answered = |reply: &Reply| {
        if let Reply::One(answer) = reply {
            tap::client_response(d, via, client, local, None, answer);
        }
    };
    // The query as `ecs` in `[ls]` makes it, before the cache
    // is asked: an added option is in the cache's key.
    let mut edited = Vec::new();
    let ecs = super::ecs::edit_query(raw, state.ecs, client.ip(), &mut edited);
    let raw = if ecs.is_some() { &edited[..] } else { raw };
    let mut hit = spare.as_deref_mut().map(std::mem::take).unwrap_or_default();
    let query = (raw, transport, admitted.route(), ecs);
    if super::reply::from_cache(&state, query, std::time::Instant::now(), &mut hit) {
        let asked = (raw, client.ip(), transport);
        super::cookies::stamp(b.cookies(), asked, &mut hit);
        b.on_answer(client.ip(), &hit, counts);
        let reply = Reply::One(hit);
        answered(&reply);
        return Action::Now(reply);
    }
    if let Some(spare) = spare {
        *spare = hit;
    }
    // A datagram an XDP worker read: forwarded by the UDP
    // worker of its address, as one its socket read.
    let encrypted = state
        .route_at(admitted.route())
        .backends
        .iter()
        .any(|b| b.link.is_some());
    // Behind `proxy_from`, `client` is the header's, not where the
    // answer goes (the sender): the XDP worker answers it itself.
    let proxied = b.proxy_gate.is_some();
    let (state, admitted) = match (req.via, local) {
        (crate::dns::Via::Udp, Some(to)) if !encrypted && !proxied => {
            match hand_off(b, to, client, (raw_in, state, admitted)) {
                Ok(action) => return action,
                Err(back) => *back,
            }
        }
        _ => (state, admitted),
    };
    let mut bytes = if ecs.is_some() {
        edited
    } else {
        recycle::copy_of(raw)
    };
    super::cookies::for_backend(b.cookies(), &mut bytes, client.ip());
    let mut job = admitted.into_job(bytes);
    job.ecs = ecs;
    job.client.1 = local;
    let metrics = b.metrics.clone();
    let arrived = std::time::Instant::now();
    // A combinator, not an `async` block: a block would hold the
    // job twice (its own, and the one `resolve` was given), which
    // makes the boxed future too large for the allocator's
    // per-thread cache (1,032 bytes), a slower allocation a query.
    let resolved = resolve(state.clone(), job);
    let dynblocks = b.dynblocks().clone();
    Action::Later(Box::pin(resolved.map(move |(reply, answered)| {
        LsMetrics::answered(&metrics, &reply, arrived);
        // A backend's answer counts for the dynamic blocks,
        // not one the LS made up at the deadline; both for
        // `dnslb top`.
        if let Reply::One(b) = &reply {
            let rcode = b.get(3).map_or(0, |b| b & 0x0f);
            if answered.backend.is_some() {
                dynblocks.on_answer(client.ip(), rcode, b.len());
            } else {
                dynblocks.on_made_up(rcode);
            }
        }
        answered.log(&state, &reply, arrived.elapsed());
        if let Reply::One(answer) = &reply {
            let d = tap::of(&metrics);
            let waited = Some(arrived.elapsed());
            tap::client_response(d, via, client, local, waited, answer);
        }
        reply
    })))
}

/// Hands the admitted query `raw` of `client` to `to` (the address it
/// came to) to the UDP worker of that address ([`super::handoff`]):
/// the action when one took it or it was shed (its worker behind);
/// else the query back, for the async path.
fn hand_off(
    b: &Balancer,
    to: std::net::SocketAddr,
    client: std::net::SocketAddr,
    (raw, state, admitted): (&[u8], Arc<LsState>, Admitted),
) -> Result<Action, Box<(Arc<LsState>, Admitted)>> {
    let q = HandedQuery {
        raw: recycle::copy_of(raw),
        client: crate::server::batch::Peer {
            addr: client,
            local: Some(to.ip()),
        },
        received: std::time::Instant::now(),
        state,
        admitted,
    };
    match b.handoffs().hand(to, client.port(), q) {
        Handed::Taken => Ok(Action::Handed),
        Handed::Full => {
            b.metrics.shed_queue.fetch_add(1, Relaxed);
            Ok(Action::Now(Reply::Drop))
        }
        Handed::NoWorker(q) => {
            let HandedQuery {
                raw,
                state,
                admitted,
                ..
            } = *q;
            recycle::give(raw);
            Err(Box::new((state, admitted)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_abandoned_tcp_copy_without_an_answer_is_settled_at_the_deadline() {
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_millis(1500);
        let early = t0 + Duration::from_millis(40);
        // Answered after the winner, before the deadline: heard from then.
        assert_eq!(settle_at(true, early, deadline), early);
        // A connection that failed early, or a timeout: a loss at the deadline.
        assert_eq!(settle_at(false, early, deadline), deadline);
        assert_eq!(settle_at(false, deadline, deadline), deadline);
    }
}
