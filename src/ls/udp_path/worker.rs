//! A fast-path worker: its state (its client socket, its upstream sockets,
//! opened here, each on a port the kernel picks, answers timed by their
//! arrival; its flights, late entries and timers; the send queues of a round;
//! the free list of byte buffers it reuses) and everything it does, in one
//! `impl`: its loop (`run`: wait, read upstream answers, read client queries,
//! fire timers, flush), a client query admitted, answered from the packet
//! cache ([`reply::from_cache`]) or made a flight, its
//! [`Resolution`](crate::ls::resolution::Resolution) driven (attempts
//! launched on the upstream sockets, the reply made by [`reply::finish`]
//! when it ends), its attempts retired as late entries when it ends first,
//! each upstream datagram judged by the upstream core's check ([`accept`])
//! and handed to its flight, and its timers fired (which heap entries are
//! live: `timers`).
use std::cmp::Reverse;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::flight::{Attempt, Delayed, Flight, Late, Slab, TimerFor, Timers};
use super::tap;
use super::timers::{next_live, rearm, timer_live};
use crate::dns::{self, HEADER_LEN, WireHeader};
use crate::guard::fair::Holders;
use crate::ls::balancer::{Admission, Balancer};
use crate::ls::dynblock::WorkerCounts;
use crate::ls::resolution::{End, Step, Verdict};
use crate::ls::state::Route;
use crate::ls::upstream::ROTATE_AFTER;
use crate::ls::upstream::accept::{self, DropReason};
use crate::ls::upstream::ids::{self, IdUse};
use crate::ls::upstream::sockets::{self, Family, Sockets};
use crate::ls::{async_path, reply};
use crate::server::backoff::RecvBackoff;
use crate::server::batch::{self, RecvBatch, SendQueue};
use crate::server::shed::{QueueGate, arrival, queue_bound, waited};
use crate::server::{Reply, Request};

/// Upstream sockets per worker and address family: log2 of it is the
/// source-port entropy a query gets on top of its random ID.
pub const UPSTREAM_SOCKETS: usize = 8;
/// Upstream responses read per system call and socket.
const UPSTREAM_SLOTS: usize = 8;
/// Byte buffers kept for reuse per worker, at most.
const SPARE_MAX: usize = 4096;

/// A new upstream socket of `family` ([`sockets::open`]), its answers timed
/// by their arrival, not by when they are read.
pub(super) fn open_upstream(family: Family) -> std::io::Result<UdpSocket> {
    let s = sockets::open(family)?;
    let _ = batch::enable_timestamps(&s);
    Ok(s)
}

/// The send queue of one upstream socket: room for a full client batch
/// (the queries of one round spread over the sockets at random).
pub(super) fn upstream_queue() -> SendQueue {
    SendQueue::with_buffers(batch::BATCH, Family::V4.unspecified())
}

/// One worker; see the parent module's docs.
pub(super) struct Worker {
    pub(super) balancer: Arc<Balancer>,
    pub(super) client: Arc<UdpSocket>,
    /// The client socket's address, read once (for dnstap).
    pub(super) client_local: Option<SocketAddr>,
    /// Upstream sockets of both families, by slot (attempts name the slot).
    pub(super) ups: Sockets<UdpSocket>,
    pub(super) flights: Slab<Flight>,
    pub(super) late: Slab<Late>,
    /// Queries a `delay_ms` rule holds (at most `max_flights`).
    pub(super) delayed: Slab<Delayed>,
    pub(super) timers: Timers,
    /// Answers to clients, and queries per upstream socket slot, of this round.
    pub(super) to_clients: SendQueue,
    pub(super) to_upstream: Vec<SendQueue>,
    /// Byte buffers for queries and kept responses, for reuse.
    pub(super) spare: Vec<Vec<u8>>,
    /// The upstream queries (socket slot, ID) the kernel refused to send in
    /// this round's flush, for their flights (kept from round to round).
    pub(super) refused: Vec<(usize, u16)>,
    pub(super) max_flights: usize,
    /// The places of `max_flights` each client group holds.
    pub(super) holders: Holders,
    /// The places of the queries a `delay_ms` rule holds, per client
    /// group: bounded and shared as the flights are.
    pub(super) held: Holders,
    /// Its counts for the dynamic blocks, handed in once a second.
    pub(super) counts: WorkerCounts,
    /// A client query as `ecs` in `[ls]` edits it (reused).
    pub(super) ecs_scratch: Vec<u8>,
    /// Times its sleep was moved in the runtime's timer wheel (a debug
    /// count: a cache hit moves none).
    pub(super) sleep_moves: u64,
}

/// The longest a worker sleeps: an idle one hands its dynamic-block counts
/// in within this long of the tick calling for them.
const HAND_IN_WAKE: Duration = Duration::from_millis(100);

impl Worker {
    /// A worker serving `client`, its metrics registered, receive
    /// timestamps asked for, and [`UPSTREAM_SOCKETS`] upstream sockets per
    /// family opened (one that cannot be opened is logged and left out).
    pub(super) fn new(balancer: Arc<Balancer>, client: Arc<UdpSocket>, max_flights: usize) -> Self {
        let counts = balancer.dynblocks().worker_counts();
        let mut w = Worker {
            balancer,
            client_local: client.local_addr().ok(),
            client,
            ups: Sockets::new(ROTATE_AFTER),
            flights: Slab::new(),
            late: Slab::new(),
            delayed: Slab::new(),
            timers: Timers::new(),
            to_clients: SendQueue::default(),
            to_upstream: (0..2 * UPSTREAM_SOCKETS)
                .map(|_| upstream_queue())
                .collect(),
            spare: Vec::new(),
            refused: Vec::new(),
            max_flights: max_flights.max(1),
            holders: Holders::default(),
            held: Holders::default(),
            counts,
            ecs_scratch: Vec::new(),
            sleep_moves: 0,
        };
        if let Some(inode) = crate::server::socket::socket_inode(w.client.as_ref()) {
            w.balancer
                .metrics
                .client_sockets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(inode);
        }
        if let Err(err) = batch::enable_timestamps(w.client.as_ref()) {
            debug!(
                ?err,
                "no receive timestamps: queries are not shed by their wait"
            );
        }
        for family in Family::ALL {
            for _ in 0..UPSTREAM_SOCKETS {
                match open_upstream(family) {
                    Ok(u) => w.ups.add(family, u),
                    Err(err) => debug!(?family, ?err, "cannot open an upstream socket"),
                }
            }
        }
        w
    }

    /// Keeps a byte buffer for reuse.
    pub(super) fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < SPARE_MAX && buf.capacity() <= batch::SLOT {
            self.spare.push(buf);
        }
    }

    pub(super) async fn run(&mut self, stop: CancellationToken) {
        let mut client_slots = RecvBatch::with_timestamps(batch::BATCH);
        // One per address family.
        let mut up_slots = [
            RecvBatch::with_timestamps(UPSTREAM_SLOTS),
            RecvBatch::with_timestamps(UPSTREAM_SLOTS),
        ];
        let mut backoff = RecvBackoff::default();
        let mut gate = QueueGate::default();
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        let mut stopping = false;
        loop {
            if stopping && self.flights.len == 0 {
                return;
            }
            // Wait for anything: a client query, an upstream answer, a timer, stop.
            let _ = poll_fn(|cx| {
                let mut ready = false;
                if !stopping && stopped.as_mut().poll(cx).is_ready() {
                    stopping = true;
                    ready = true;
                }
                if !stopping && self.client.poll_recv_ready(cx).is_ready() {
                    ready = true;
                }
                // Only sockets with an ID in use can bring an answer the
                // worker waits for: the idle ones (all of them while every
                // query is a cache hit) cost nothing per wake-up.
                for u in self.ups.open().filter(|u| u.ids.live() > 0) {
                    if u.sock.poll_recv_ready(cx).is_ready() {
                        ready = true;
                    }
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    ready = true;
                }
                if ready {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            // Then take whatever is ready, everywhere (tokio calls the
            // closures only for sockets it saw ready). The answers arrived
            // by `round` are all read before the timers due by then fire.
            let round = Instant::now();
            self.read_upstream(&mut up_slots);
            let mut full = false;
            if !stopping {
                match client_slots.recv_ready(&self.client) {
                    Ok(n) => {
                        backoff.success();
                        full = n == batch::BATCH;
                        let bound = queue_bound(self.balancer.state().policy.timeout);
                        let (read_at, now) = (SystemTime::now(), Instant::now());
                        for i in 0..n {
                            if let Some((raw, meta)) = client_slots.get(i)
                                && let Some(src) = meta.peer()
                                && !meta.truncated
                                && src.addr.port() != 0
                            {
                                let wait = waited(meta.stamp, read_at);
                                if gate.shed(wait, now, bound) {
                                    self.balancer.metrics.shed_queue.fetch_add(1, Relaxed);
                                    continue;
                                }
                                // When it arrived: the batch's time less
                                // its wait in the kernel, no clock read.
                                let at = wait.map_or(now, |w| now.checked_sub(w).unwrap_or(now));
                                self.on_client(raw, src, at);
                            }
                        }
                        if n < batch::BATCH {
                            gate.drained();
                        }
                    }
                    Err(err) => {
                        debug!(?err, "udp recv error");
                        if let Some(pause) = backoff.failure() {
                            tokio::time::sleep(pause).await;
                        }
                    }
                }
            }
            if stopping && self.delayed.len > 0 {
                self.release_delayed();
            }
            self.fire_timers(round);
            self.flush().await;
            // Idle, it still wakes ten times a second to hand its counts in.
            // The sleep is moved only earlier, or once it has gone off: not
            // on every round (see `rearm`).
            self.balancer.dynblocks().hand_in(&mut self.counts);
            let wake = Instant::now() + HAND_IN_WAKE;
            let next = self.next_timer().map_or(wake, |t| t.min(wake));
            if let Some(at) = rearm(sleep.deadline(), sleep.is_elapsed(), next) {
                sleep.as_mut().reset(at);
                self.sleep_moves += 1;
            }
            if full {
                // More client queries are queued, so the wait above would
                // return at once without asking the kernel what else is
                // ready: tokio learns of the upstream sockets' new answers
                // only when its driver polls epoll, which on this thread
                // happens when the worker yields. Unasked, the answers wait
                // for the next coop yield, some past their hedge delay.
                tokio::task::yield_now().await;
            }
        }
    }

    /// Reads every upstream socket that is ready and has an ID in use,
    /// retired ones included (`slots`: one batch per family, v4 then v6). A
    /// datagram that reaches an idle socket could only be judged stray: it
    /// waits in the kernel's buffer (bounded) until the socket is used again,
    /// and is read and refused then.
    pub(super) fn read_upstream(&mut self, slots: &mut [RecvBatch; 2]) {
        for s in 0..self.ups.len() {
            while let Some(u) = self.ups.get(s).filter(|u| u.ids.live() > 0) {
                let Some(batch) = slots.get_mut(u.family.index()) else {
                    break;
                };
                let n = match batch.recv_ready(&u.sock) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let (now, now_sys) = (Instant::now(), SystemTime::now());
                for i in 0..n {
                    if let Some((resp, meta)) = batch.get(i)
                        && let Some(from) = meta.src
                    {
                        let at = arrival(meta.stamp, now, now_sys);
                        if let Err(why) = self.on_upstream(s, resp, from, meta.truncated, at) {
                            self.balancer.metrics.drops.count(why);
                        }
                    }
                }
                if n < UPSTREAM_SLOTS {
                    break;
                }
            }
        }
    }

    /// Sends this round's upstream queries and client answers, in batches.
    /// An upstream query the kernel refuses (any error but `EAGAIN`) ends
    /// its try at once ([`Worker::on_refused`]); what its flight does next
    /// (the next backend asked, or its client answered) is sent in the same
    /// flush.
    pub(super) async fn flush(&mut self) {
        tap::queued(
            self.balancer.dnstap(),
            self.client_local,
            &self.ups,
            &self.to_upstream,
            &self.to_clients,
        );
        loop {
            for (i, out) in self.to_upstream.iter_mut().enumerate() {
                if out.len() == 0 {
                    continue;
                }
                match self.ups.get(i) {
                    Some(u) => {
                        let refused = &mut self.refused;
                        out.flush_noting(&u.sock, |query| {
                            if let Some(id) = query.first_chunk::<2>() {
                                refused.push((i, u16::from_be_bytes(*id)));
                            }
                        })
                        .await;
                    }
                    None => out.clear(),
                }
            }
            if self.refused.is_empty() {
                break;
            }
            // Each refusal ends a try; a flight has finitely many, so this ends.
            let now = Instant::now();
            let mut refused = std::mem::take(&mut self.refused);
            for (sock, id) in refused.drain(..) {
                self.on_refused(sock, id, now);
            }
            self.refused = refused;
        }
        self.to_clients.flush(&self.client).await;
        // Retired sockets whose last ID cleared are closed.
        self.ups.reap(|_, sock| drop(sock));
    }

    /// One client datagram, arrived `at`.
    pub(super) fn on_client(&mut self, raw: &[u8], src: batch::Peer, at: Instant) {
        tap::client_query(self.balancer.dnstap(), self.client_local, raw, src.addr);
        let req = Request::udp(raw, src.addr);
        match self.balancer.admit_by(req, Some(&mut self.counts)) {
            Admission::Reply(Reply::One(b)) => {
                self.to_clients.push_copy(&b, src);
                self.to_clients.stamp(at.into_std());
            }
            Admission::Reply(_) => {}
            Admission::Forward(state, admitted) => match admitted.delay() {
                Some(delay) => self.hold(raw, (src, at), state, admitted, delay),
                None => self.forward(raw, (src, at), state, admitted),
            },
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
                    let excused = async_path::excuses_silence(f.res.layout(), end);
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
                    let from_backend = answered.backend.is_some();
                    answered.log(&f.state, &reply, f.arrived.elapsed());
                    self.answer(reply, (f.client, f.received), (f.arrived, from_backend));
                    self.recycle(std::mem::take(&mut f.job.raw));
                    return;
                }
            }
        }
    }

    /// Counts a forwarded query's reply and queues it for the client; a
    /// backend's answer (`from_backend`: not one the LS made up at the
    /// deadline) counts for the dynamic blocks too.
    fn answer(
        &mut self,
        reply: Reply,
        (to, received): (batch::Peer, Instant),
        (arrived, from_backend): (std::time::Instant, bool),
    ) {
        self.balancer.metrics.answered(&reply, arrived);
        if let Reply::One(b) = reply {
            if from_backend {
                self.balancer
                    .on_answer(to.addr.ip(), &b, Some(&mut self.counts));
            }
            self.to_clients.push_copy(&b, to);
            self.to_clients.stamp(received.into_std());
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
            open_upstream(family)
                .map_err(|err| debug!(?err, "cannot open an upstream socket: the worn one stays"))
                .ok()
        }) else {
            return false;
        };
        while self.to_upstream.len() <= sock {
            self.to_upstream.push(upstream_queue());
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
    /// [`async_path::excuses_silence`]). `charged`: the query timed out with
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
        let entry = ids::LateEntry::abandoned(
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
    /// path ([`crate::ls::upstream::shared`]: the exchange fails, its waiter is
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
    ) -> Result<(), DropReason> {
        let h = accept::header(resp)?;
        let Some(u) = self.ups.get(sock) else {
            return Ok(());
        };
        let idx = match u.ids.get(h.id) {
            IdUse::Free => return Err(DropReason::WrongId),
            IdUse::Late(li) => {
                let why = self.late.get(li).map_or(DropReason::WrongSource, |l| {
                    accept::late(from, l.entry.addr)
                });
                if why == DropReason::Late
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
        let f = self.flights.get_mut(idx).ok_or(DropReason::WrongId)?;
        let pos = f
            .attempts
            .iter()
            .position(|a| a.sock == sock && a.id == h.id && !a.refused)
            .ok_or(DropReason::WrongId)?;
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
        let plain = f.job.plain_answer(resp);
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
                f.job.plain_answer(&buf).apply(&mut buf);
            } else {
                plain.apply(&mut buf);
            }
            f.kept = Some(buf);
        }
        tap::accepted(self.balancer.dnstap(), &self.ups, sock, from, rtt, resp);
        self.drive(idx, now);
        Ok(())
    }

    /// Runs every timer due at `now`.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, what))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !timer_live((&self.flights, &self.late, &self.delayed), at, what) {
                continue;
            }
            match what {
                TimerFor::Flight(idx) => {
                    if let Some(f) = self.flights.get_mut(idx) {
                        f.timer_at = None;
                    }
                    self.drive(idx, now);
                }
                TimerFor::Delayed(di) => {
                    if let Some(d) = self.delayed.remove(di) {
                        self.go_on(d);
                    }
                }
                TimerFor::Late(li) => {
                    let Some(l) = self.late.get_mut(li) else {
                        continue;
                    };
                    if l.entry.expire(now) {
                        // At its deadline: no longer in flight; forgotten after the grace.
                        let again = l.entry.forget_at();
                        l.timer_at = again;
                        self.timers.push(Reverse((again, TimerFor::Late(li))));
                        continue;
                    }
                    if let Some(mut l) = self.late.remove(li) {
                        l.entry.settle(now);
                        if let Some(u) = self.ups.get_mut(l.sock) {
                            u.ids.set(l.id, IdUse::Free);
                        }
                    }
                }
            }
        }
    }

    /// When the next live timer is due. Timers of flights that have ended
    /// (most hedge timers: the answer came first) stay in the heap until
    /// they reach its top; they are dropped here, so the worker never wakes
    /// up only to find them stale (at moderate rates that was a wake-up per
    /// millisecond, as many as one per ten queries).
    pub(super) fn next_timer(&mut self) -> Option<Instant> {
        let slabs = (&self.flights, &self.late, &self.delayed);
        next_live(&mut self.timers, |at, what| timer_live(slabs, at, what))
    }
}
