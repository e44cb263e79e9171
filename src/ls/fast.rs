//! The LS's UDP fast path: one worker per SO_REUSEPORT client socket that
//! owns everything a UDP client query needs, so a query never leaves it. Each
//! worker runs alone on a thread of its own (`server::thread`): its sockets
//! are in that thread's epoll, its timer in that thread's timer wheel.
//!
//! A worker owns its client socket, [`UPSTREAM_SOCKETS`] upstream sockets
//! (each on a port the kernel picks at random), a table of queries in flight
//! indexed by upstream ID (one per upstream socket), and one timer heap for
//! every hedge, per-try and deadline timer of its queries. Client queries
//! and upstream responses are read in batches (`recvmmsg`); the upstream
//! queries and the client answers of one round leave in batches
//! (`sendmmsg`). No task per query, no channel, no wake-up of another task:
//! the decisions are the pure [`Resolution`] state machine, the replies are
//! made by [`reply::finish`], as on the async path that TCP clients use.
//!
//! Forwarding safety (RFC 5452): every upstream query gets a random ID free
//! on a socket picked at random; a response is accepted only on that socket,
//! with that ID, from the address it was sent to, carrying the same question;
//! anything else is dropped and counted. A socket is replaced by one on a new
//! port after about [`ROTATE_AFTER`] queries (a budget drawn at random per
//! socket, so they do not wear out together) at once, and the retired one
//! is still read until no ID is in use on it (see [`sockets`]). An
//! answer that comes after its query ended (a hedge's loser) is counted as
//! late, and still feeds its backend's latency, until [`LATE_GRACE`] past the
//! query's deadline.
//!
//! Nothing is allocated per query once a worker is warm: a query's bytes,
//! the response kept for it, and the datagrams of a round live in buffers
//! that are reused (a free list of byte buffers, [`SendQueue`]s); candidate
//! lists are inline. The reply is the kept response patched in place.
//!
//! Overload is shed, not queued. Each datagram carries the time the kernel
//! received it (`SO_TIMESTAMPNS`):
//! - once client queries have waited in the socket longer than
//!   [`queue_bound`] (a tenth of `timeout_ms`, at most [`MAX_QUEUE_WAIT`])
//!   for [`STANDING`] on end and for more than [`BURST`] queries — a
//!   standing queue, not a burst or a scheduling hiccup — each query read that waited longer is dropped,
//!   counted as shed (`queue`), until the waits are back under the bound
//!   (CoDel's rule, see [`QueueGate`]). Answering them would only make
//!   every later query wait as long;
//! - an upstream answer is timed by when it arrived, not by when the worker
//!   got round to reading it, and the answers already arrived are read
//!   before any deadline of the round is judged: the LS's own backlog never
//!   makes a backend look slow or dead;
//! - with `max_inflight` (split across workers) reached, a query is
//!   answered SERVFAIL at once from its header and question, before it is
//!   copied anywhere, counted as shed (`inflight`).
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::poll_fn;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use smallvec::SmallVec;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::backend::InFlight;
use super::balancer::{Admission, Balancer};
use super::reply;
use super::resolution::{Resolution, Step, Verdict};
use super::state::{Job, LsState};
use crate::dns::{self, HEADER_LEN, Transport, WireHeader};
use crate::server::backoff::Backoff;
use crate::server::batch::{self, RecvBatch, SendQueue};
use crate::server::{Reply, Request};
use sockets::{IdUse, Sockets, Upstream};

mod sockets;
pub use sockets::wear_budget;

/// Upstream sockets per worker and address family: log2 of it is the
/// source-port entropy a query gets on top of its random ID.
pub const UPSTREAM_SOCKETS: usize = 8;
/// Queries one upstream socket sends before it is replaced.
pub const ROTATE_AFTER: u64 = 20_000;
/// How long after its query's deadline an answer is still expected (and
/// counted as late, not as a forgery).
pub const LATE_GRACE: Duration = Duration::from_secs(3);
/// Upstream responses read per system call and socket.
const UPSTREAM_SLOTS: usize = 8;
/// The longest a client query may wait in the socket's queue, whatever
/// `timeout_ms` (see [`queue_bound`]).
pub const MAX_QUEUE_WAIT: Duration = Duration::from_millis(5);
/// The shortest queue bound (a tiny `timeout_ms` still leaves room for a
/// burst to be read).
const MIN_QUEUE_WAIT: Duration = Duration::from_millis(2);
/// A datagram's wait longer than this is no wait but the realtime clock
/// stepped: it is ignored.
const CLOCK_STEP: Duration = Duration::from_secs(10);
/// How long client queries must keep waiting past the queue bound before
/// they are shed (CoDel's interval): a burst or a pause of the process
/// shorter than this sheds nothing.
pub const STANDING: Duration = Duration::from_millis(100);
/// Queries read past the queue bound before it counts as standing,
/// however long they take to read: a client's burst of this many (twice the
/// thousand one stub may send at once) is answered, not shed, even by a
/// slow build on a busy machine.
pub const BURST: u32 = 2048;
/// How long a gate that shed queries stays wary: within this of its last
/// shed, a queue standing for [`REENTER`] (no [`BURST`] needed) is shed. An
/// overloaded LS's clients come back in bursts (their retries, a load
/// generator's window refilled by its timeouts); each would otherwise
/// wait a full [`STANDING`] and overflow the socket before shedding starts.
pub const RECENT: Duration = Duration::from_secs(10);
/// How long waits past the bound must last, within [`RECENT`] of a shed,
/// before shedding resumes.
pub const REENTER: Duration = Duration::from_millis(10);
/// Byte buffers kept for reuse per worker, at most.
const SPARE_MAX: usize = 4096;

/// How long a client query may wait in the socket's queue before it is
/// shed: a tenth of the query deadline, within
/// [`MIN_QUEUE_WAIT`]..=[`MAX_QUEUE_WAIT`]. Past it, the answer would come
/// late enough that the client is likely retrying already.
pub fn queue_bound(timeout: Duration) -> Duration {
    (timeout / 10).clamp(MIN_QUEUE_WAIT, MAX_QUEUE_WAIT)
}

/// How long a datagram the kernel received at `stamp` had waited when read
/// at `now` (realtime clock); `None` without a timestamp, or when the clock
/// stepped (a negative wait, or one past [`CLOCK_STEP`]).
fn waited(stamp: Option<SystemTime>, now: SystemTime) -> Option<Duration> {
    let w = now.duration_since(stamp?).ok()?;
    (w < CLOCK_STEP).then_some(w)
}

/// Decides which client queries are shed by their wait in the queue.
///
/// A query that waited no longer than the bound passes and ends a standing
/// queue. Past the bound, queries still pass until the waits have been
/// past it for [`STANDING`] and for more than [`BURST`] queries; from then on every query past the bound is
/// shed, and also, right away, any past the bound within [`STANDING`] of
/// the last one shed (the queue is still standing: shedding resumes at
/// once rather than after another interval), and within [`RECENT`] of it
/// any once the waits have been past the bound for [`REENTER`] (CoDel
/// re-enters its dropping state quickly too). A queue read empty ends a
/// standing queue too ([`QueueGate::drained`]).
#[derive(Debug, Default)]
pub struct QueueGate {
    /// Since when the waits have been past the bound.
    above_since: Option<Instant>,
    /// Queries read past the bound since then.
    above: u32,
    /// When a query was last shed.
    last_shed: Option<Instant>,
}

impl QueueGate {
    /// Whether to shed a query read at `now` that waited `wait` (`None`:
    /// unknown, passes) with the queue bound `bound`.
    pub fn shed(&mut self, wait: Option<Duration>, now: Instant, bound: Duration) -> bool {
        let Some(wait) = wait else { return false };
        if wait <= bound {
            self.drained();
            return false;
        }
        let since = *self.above_since.get_or_insert(now);
        self.above = self.above.saturating_add(1);
        let lasted = now.saturating_duration_since(since);
        let since_shed = self.last_shed.map(|t| now.saturating_duration_since(t));
        let standing = (lasted >= STANDING && self.above > BURST)
            || since_shed.is_some_and(|d| d < STANDING)
            || (lasted >= REENTER && since_shed.is_some_and(|d| d < RECENT));
        if standing {
            self.last_shed = Some(now);
        }
        standing
    }

    /// The queue was read empty: whatever waited before is gone.
    pub fn drained(&mut self) {
        self.above_since = None;
        self.above = 0;
    }
}

/// When a datagram received at `stamp` arrived, on the monotonic clock,
/// given that `now` and `now_sys` are the same moment on both clocks.
fn arrival(stamp: Option<SystemTime>, now: Instant, now_sys: SystemTime) -> Instant {
    waited(stamp, now_sys).map_or(now, |w| now.checked_sub(w).unwrap_or(now))
}

/// Writes into `out` a SERVFAIL for the query `raw` whose question ends at
/// `question_end`: its header (ID, opcode, RD and CD kept; QR set) and its
/// question, no records, no OPT. Nothing is decoded or allocated.
fn write_servfail(raw: &[u8], question_end: usize, out: &mut Vec<u8>) -> bool {
    let Some(head) = raw.get(..question_end) else {
        return false;
    };
    let (Some(&f0), Some(&f1)) = (raw.get(2), raw.get(3)) else {
        return false;
    };
    out.extend_from_slice(head);
    if let Some(flags) = out.get_mut(2..4) {
        // QR, opcode and RD; CD; rcode 2 (SERVFAIL).
        flags.copy_from_slice(&[0x80 | (f0 & 0x79), (f1 & 0x10) | 2]);
    }
    if let Some(counts) = out.get_mut(4..HEADER_LEN) {
        counts.copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    }
    true
}

/// A new upstream socket of `family`'s address family, on a port the
/// kernel picks at random.
fn open_upstream(family: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(family),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if family.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // Answers come in bursts (a batch of queries goes out at once):
    // a small buffer would drop them. Best effort, as for client sockets.
    let _ = s.set_recv_buffer_size(crate::server::socket::UDP_RECV_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&family.into())?;
    // Answers are timed by their arrival, not by when they are read.
    let _ = batch::enable_timestamps(&s);
    UdpSocket::from_std(s.into())
}

/// The unspecified address of address family `family` (0: IPv4, 1: IPv6), port 0.
fn family_addr(family: usize) -> SocketAddr {
    if family == 0 {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    }
}

/// One upstream query of a flight.
struct Attempt {
    backend: usize,
    sock: usize,
    id: u16,
    /// Keeps the backend's `outstanding` until the answer or the deadline.
    inflight: Option<InFlight>,
}

/// One client query in flight.
struct Flight {
    state: Arc<LsState>,
    job: Job,
    client: batch::Peer,
    res: Resolution,
    attempts: SmallVec<[Attempt; 4]>,
    /// The winning response, or the negative one that may be passed on.
    kept: Option<Vec<u8>>,
    arrived: std::time::Instant,
    /// The time of this flight's pending timer entry (stale ones are skipped).
    timer_at: Option<Instant>,
}

/// An upstream query whose flight has ended.
struct Late {
    sock: usize,
    id: u16,
    addr: SocketAddr,
    inflight: Option<InFlight>,
    /// The query's deadline: its backend's answer counts until then; the
    /// entry is forgotten [`LATE_GRACE`] after it.
    deadline: Instant,
    /// When its pending timer entry fires (an entry for another time is
    /// stale: its slot was reused).
    timer_at: Instant,
    hedge_pct: Option<f64>,
}

impl Late {
    /// Feeds the backend's latency with what the query took (at most up to
    /// its deadline) and releases its in-flight count.
    fn settle(&mut self, now: Instant) {
        if let Some(f) = self.inflight.take() {
            f.settle(now, self.deadline, self.hedge_pct);
        }
    }
}

/// What a timer entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerFor {
    Flight(u32),
    Late(u32),
}

/// A slab: values by index, with a free list (no allocation once warm).
struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Slab<T> {
    fn new() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    fn insert(&mut self, v: T) -> u32 {
        self.len += 1;
        if let Some(i) = self.free.pop()
            && let Some(slot) = self.items.get_mut(i as usize)
        {
            *slot = Some(v);
            return i;
        }
        self.items.push(Some(v));
        u32::try_from(self.items.len() - 1).unwrap_or(u32::MAX)
    }

    fn get(&self, i: u32) -> Option<&T> {
        self.items.get(i as usize)?.as_ref()
    }

    fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.items.get_mut(i as usize)?.as_mut()
    }

    fn remove(&mut self, i: u32) -> Option<T> {
        let v = self.items.get_mut(i as usize)?.take()?;
        self.free.push(i);
        self.len -= 1;
        Some(v)
    }
}

/// One worker; see the module docs.
struct Worker {
    balancer: Arc<Balancer>,
    client: Arc<UdpSocket>,
    /// Upstream sockets of both families, by slot (attempts name the slot).
    ups: Sockets<UdpSocket>,
    flights: Slab<Flight>,
    late: Slab<Late>,
    timers: BinaryHeap<Reverse<(Instant, TimerFor)>>,
    /// Answers to clients, and queries per upstream socket slot, of this round.
    to_clients: SendQueue,
    to_upstream: Vec<SendQueue>,
    /// Byte buffers for queries and kept responses, for reuse.
    spare: Vec<Vec<u8>>,
    max_flights: usize,
}

/// Serves UDP clients on `client` until `stop` is cancelled, then answers
/// the queries still in flight (each ends by its deadline) and returns.
pub(crate) async fn run(
    balancer: Arc<Balancer>,
    client: Arc<UdpSocket>,
    max_flights: usize,
    stop: CancellationToken,
) {
    let nowhere = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let mut w = Worker {
        balancer,
        client,
        ups: Sockets::new(ROTATE_AFTER),
        flights: Slab::new(),
        late: Slab::new(),
        timers: BinaryHeap::new(),
        to_clients: SendQueue::default(),
        // Queries of one round spread over the sockets at random: each
        // socket's queue has room for a full client batch from the start.
        to_upstream: (0..2 * UPSTREAM_SOCKETS)
            .map(|_| SendQueue::with_buffers(batch::BATCH, nowhere))
            .collect(),
        spare: Vec::new(),
        max_flights: max_flights.max(1),
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
    for family in 0..2 {
        let fam = family_addr(family);
        for _ in 0..UPSTREAM_SOCKETS {
            match open_upstream(fam) {
                Ok(u) => w.ups.add(family, u),
                Err(err) => debug!(%fam, ?err, "cannot open an upstream socket"),
            }
        }
    }
    w.run(stop).await;
}

impl Worker {
    async fn run(&mut self, stop: CancellationToken) {
        let mut client_slots = RecvBatch::with_timestamps(batch::BATCH);
        // One per address family.
        let mut up_slots = [
            RecvBatch::with_timestamps(UPSTREAM_SLOTS),
            RecvBatch::with_timestamps(UPSTREAM_SLOTS),
        ];
        let mut backoff = Backoff::default();
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
                for u in self.ups.open() {
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
                                self.on_client(raw, src);
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
            self.fire_timers(round);
            self.flush().await;
            let next = self
                .next_timer()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            if sleep.deadline() != next {
                sleep.as_mut().reset(next);
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

    /// Reads every upstream socket that is ready, retired ones included
    /// (`slots`: one batch per family, v4 then v6).
    fn read_upstream(&mut self, slots: &mut [RecvBatch; 2]) {
        for s in 0..self.ups.len() {
            while let Some(u) = self.ups.get(s) {
                let Some(batch) = slots.get_mut(u.family) else {
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
                        self.on_upstream(s, resp, from, meta.truncated, at);
                    }
                }
                if n < UPSTREAM_SLOTS {
                    break;
                }
            }
        }
    }

    fn upstream(&mut self, sock: usize) -> Option<&mut Upstream<UdpSocket>> {
        self.ups.get_mut(sock)
    }

    /// One client datagram.
    fn on_client(&mut self, raw: &[u8], src: batch::Peer) {
        let req = Request {
            raw,
            src: src.addr,
            transport: Transport::Udp,
        };
        match self.balancer.admit(req) {
            Admission::Reply(Reply::One(b)) => self.to_clients.push_copy(&b, src),
            Admission::Reply(_) => {}
            Admission::Forward(state, admitted) => {
                if self.flights.len >= self.max_flights {
                    // Over the in-flight bound: SERVFAIL at once, written
                    // from the header and question; nothing copied, no queueing.
                    let m = &self.balancer.metrics;
                    m.shed_inflight.fetch_add(1, Relaxed);
                    let out = self.to_clients.push(src);
                    if write_servfail(raw, admitted.question_end(), out) {
                        if let Some(c) = m.answers.get(2) {
                            c.fetch_add(1, Relaxed);
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
                let now = Instant::now();
                let res = state.resolution(&job, now);
                let idx = self.flights.insert(Flight {
                    state,
                    job,
                    client: src,
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
    fn drive(&mut self, idx: u32, now: Instant) {
        loop {
            let Some(f) = self.flights.get_mut(idx) else {
                return;
            };
            match f.res.poll(now, f.state.as_ref()) {
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
                    // Those still asked become late entries.
                    let winner = end.backend();
                    for a in f.attempts.drain(..) {
                        self.retire(a, &f.state, f.res.deadline(), now, winner);
                    }
                    let answered = reply::Answered {
                        backend: end.backend(),
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
            self.to_clients.push_copy(&b, to);
            self.recycle(b);
        }
    }

    /// Keeps a byte buffer for reuse.
    fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < SPARE_MAX && buf.capacity() <= batch::SLOT {
            self.spare.push(buf);
        }
    }

    /// Queues flight `idx`'s query to `backend`; false when it cannot go.
    fn launch(&mut self, idx: u32, backend: usize) -> bool {
        let Some(f) = self.flights.get_mut(idx) else {
            return false;
        };
        let Some(b) = f.state.backends.get(backend).cloned() else {
            return false;
        };
        // A random socket of the family; a worn one is replaced at once.
        let family = usize::from(b.addr.is_ipv6());
        let Some((sock, id)) = self.ups.take(family, IdUse::Flight(idx), || {
            open_upstream(family_addr(family))
                .map_err(|err| debug!(?err, "cannot open an upstream socket: the worn one stays"))
                .ok()
        }) else {
            return false;
        };
        while self.to_upstream.len() <= sock {
            let nowhere = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
            self.to_upstream
                .push(SendQueue::with_buffers(batch::BATCH, nowhere));
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
        });
        true
    }

    /// An attempt whose flight ended without its answer: remembered until
    /// its deadline (for its latency and outstanding count) plus a grace.
    /// Unanswered at its deadline, it is a loss of its backend, unless that
    /// backend answered the client (`winner`: a re-ask's lost twin).
    fn retire(
        &mut self,
        mut a: Attempt,
        state: &LsState,
        deadline: Instant,
        now: Instant,
        winner: Option<usize>,
    ) {
        let addr = state.backends.get(a.backend).map(|b| b.addr);
        let Some(addr) = addr else { return };
        let mut late = Late {
            sock: a.sock,
            id: a.id,
            addr,
            inflight: a.inflight.take(),
            deadline,
            timer_at: deadline.max(now),
            hedge_pct: state.adaptive_hedge_pct(),
        };
        if now >= deadline {
            late.settle(now);
        } else if let Some(f) = late.inflight.as_mut()
            && winner != Some(a.backend)
        {
            // Answered by another backend: still silent at the deadline, a loss.
            f.rescued();
        }
        let (sock, id, at) = (late.sock, late.id, late.timer_at);
        let li = self.late.insert(late);
        if let Some(u) = self.upstream(sock) {
            u.set(id, IdUse::Late(li));
        }
        self.timers.push(Reverse((at, TimerFor::Late(li))));
    }

    /// One upstream datagram on socket `sock`, checked (RFC 5452) and delivered.
    fn on_upstream(&mut self, sock: usize, resp: &[u8], from: SocketAddr, cut: bool, now: Instant) {
        let drops = self.balancer.metrics.drops.clone();
        let Some(h) = WireHeader::read(resp) else {
            drops.wrong_question.fetch_add(1, Relaxed);
            return;
        };
        let Some(u) = self.upstream(sock) else { return };
        match u.get(h.id) {
            IdUse::Free => {
                drops.wrong_id.fetch_add(1, Relaxed);
            }
            IdUse::Late(li) => {
                let ok = self.late.get_mut(li).is_some_and(|l| l.addr == from);
                if !ok {
                    drops.wrong_source.fetch_add(1, Relaxed);
                    return;
                }
                if let Some(mut l) = self.late.remove(li) {
                    l.settle(now);
                    if let Some(u) = self.upstream(sock) {
                        u.set(h.id, IdUse::Free);
                    }
                }
                drops.late.fetch_add(1, Relaxed);
            }
            IdUse::Flight(idx) => {
                let Some(f) = self.flights.get_mut(idx) else {
                    drops.wrong_id.fetch_add(1, Relaxed);
                    return;
                };
                let Some(pos) = f
                    .attempts
                    .iter()
                    .position(|a| a.sock == sock && a.id == h.id)
                else {
                    drops.wrong_id.fetch_add(1, Relaxed);
                    return;
                };
                let backend = f.attempts.get(pos).map_or(usize::MAX, |a| a.backend);
                let Some(addr) = f.state.backends.get(backend).map(|b| b.addr) else {
                    return;
                };
                if addr != from {
                    drops.wrong_source.fetch_add(1, Relaxed);
                    return;
                }
                let question = f
                    .job
                    .raw
                    .get(HEADER_LEN..f.job.question_end)
                    .unwrap_or_default();
                if !dns::answers_question(&h, resp, question) {
                    drops.wrong_question.fetch_add(1, Relaxed);
                    return;
                }
                let question_len = question.len();
                let a = f.attempts.remove(pos);
                if let Some(u) = self.upstream(sock) {
                    u.set(h.id, IdUse::Free);
                }
                let Some(f) = self.flights.get_mut(idx) else {
                    return;
                };
                let rtt = a
                    .inflight
                    .as_ref()
                    .map_or(Duration::ZERO, |i| now.saturating_duration_since(i.sent()));
                drop(a);
                // A response cut short by its slot (longer than any UDP
                // client may take) is kept as a truncated answer: TC=1,
                // and the client asks again over TCP.
                let verdict = f.state.judge_response(backend, now, rtt, Some(h));
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
                        // Cannot fail: its question was checked above.
                        let _ = dns::cut_to_truncated(&mut buf, question_len);
                    }
                    f.kept = Some(buf);
                }
                self.drive(idx, now);
            }
        }
    }

    /// Runs every timer due at `now`.
    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, what))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !timer_live(&self.flights, &self.late, at, what) {
                continue;
            }
            match what {
                TimerFor::Flight(idx) => {
                    if let Some(f) = self.flights.get_mut(idx) {
                        f.timer_at = None;
                    }
                    self.drive(idx, now);
                }
                TimerFor::Late(li) => {
                    let Some(l) = self.late.get_mut(li) else {
                        continue;
                    };
                    if now < l.deadline + LATE_GRACE {
                        // At its deadline: no longer in flight; forgotten after the grace.
                        l.settle(now);
                        let again = l.deadline + LATE_GRACE;
                        l.timer_at = again;
                        self.timers.push(Reverse((again, TimerFor::Late(li))));
                        continue;
                    }
                    if let Some(mut l) = self.late.remove(li) {
                        l.settle(now);
                        if let Some(u) = self.upstream(l.sock) {
                            u.set(l.id, IdUse::Free);
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
    fn next_timer(&mut self) -> Option<Instant> {
        let (flights, late) = (&self.flights, &self.late);
        next_live(&mut self.timers, |at, what| {
            timer_live(flights, late, at, what)
        })
    }

    /// Sends this round's upstream queries and client answers, in batches.
    async fn flush(&mut self) {
        for (i, out) in self.to_upstream.iter_mut().enumerate() {
            if out.len() == 0 {
                continue;
            }
            match self.ups.get(i) {
                Some(u) => out.flush(&u.sock).await,
                None => out.clear(),
            }
        }
        self.to_clients.flush(&self.client).await;
        // Retired sockets whose last ID cleared are closed.
        self.ups.reap(|_, sock| drop(sock));
    }
}

/// Whether the timer entry (`at`, `what`) is still armed: its flight or late
/// entry exists and is waiting for exactly `at` (a slot reused since, or a
/// timer moved, leaves a stale entry behind in the heap).
fn timer_live(flights: &Slab<Flight>, late: &Slab<Late>, at: Instant, what: TimerFor) -> bool {
    match what {
        TimerFor::Flight(idx) => flights.get(idx).is_some_and(|f| f.timer_at == Some(at)),
        TimerFor::Late(li) => late.get(li).is_some_and(|l| l.timer_at == at),
    }
}

/// The earliest timer of `timers` that `live` accepts, dropping every
/// earlier one (stale: its flight ended, or moved its timer).
fn next_live(
    timers: &mut BinaryHeap<Reverse<(Instant, TimerFor)>>,
    live: impl Fn(Instant, TimerFor) -> bool,
) -> Option<Instant> {
    while let Some(Reverse((at, what))) = timers.peek().copied() {
        if live(at, what) {
            return Some(at);
        }
        timers.pop();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_next_wake_up_is_the_earliest_live_timer_and_stale_ones_are_dropped() {
        let t0 = Instant::now();
        let mut timers = BinaryHeap::new();
        // Flights 0..4 armed at 1..5 ms; 0, 1 and 3 have ended since.
        for i in 0..5u32 {
            timers.push(Reverse((t0 + (i + 1) * MS, TimerFor::Flight(i))));
        }
        timers.push(Reverse((t0 + 9 * MS, TimerFor::Late(0))));
        let ended = [0u32, 1, 3];
        let live = |_, what| match what {
            TimerFor::Flight(i) => !ended.contains(&i),
            TimerFor::Late(_) => true,
        };
        assert_eq!(next_live(&mut timers, live), Some(t0 + 3 * MS));
        assert_eq!(timers.len(), 4, "the two stale ones before it dropped");
        // Flight 2 fires: the one behind it is stale, then a late entry is next.
        timers.pop();
        assert_eq!(next_live(&mut timers, live), Some(t0 + 5 * MS));
        timers.pop();
        assert_eq!(next_live(&mut timers, live), Some(t0 + 9 * MS));
        // Nothing live: no wake-up at all.
        assert_eq!(next_live(&mut timers, |_, _| false), None);
        assert!(timers.is_empty());
    }

    #[test]
    fn the_queue_bound_is_a_tenth_of_the_deadline_within_limits() {
        assert_eq!(queue_bound(1500 * MS), MAX_QUEUE_WAIT);
        assert_eq!(queue_bound(30 * MS), 3 * MS);
        assert_eq!(queue_bound(MS), MIN_QUEUE_WAIT);
    }

    #[test]
    fn a_wait_is_read_from_the_kernel_stamp_unless_the_clock_stepped() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(waited(Some(t), t + 30 * MS), Some(30 * MS));
        assert_eq!(waited(None, t), None);
        assert_eq!(waited(Some(t + MS), t), None, "stamped in the future");
        assert_eq!(waited(Some(t), t + CLOCK_STEP), None, "a step, not a wait");
        let now = Instant::now() + Duration::from_secs(60);
        assert_eq!(arrival(Some(t), now, t + 30 * MS), now - 30 * MS);
        assert_eq!(arrival(None, now, t), now);
    }

    #[test]
    fn a_burst_or_a_pause_sheds_nothing_a_standing_queue_is_shed() {
        let bound = 20 * MS;
        let mut g = QueueGate::default();
        let t0 = Instant::now();
        // A pause of 40 ms: the queries read after it waited up to 40 ms,
        // and the backlog is gone in well under STANDING.
        for ms in 0..40u32 {
            let wait = Some(Duration::from_millis(u64::from(40 - ms)));
            assert!(!g.shed(wait, t0 + ms * MS, bound), "burst at {ms} ms");
        }
        assert!(!g.shed(Some(MS), t0 + 40 * MS, bound));
        // A query past the bound long after, once the queue was read
        // empty in between, starts a new interval.
        assert!(!g.shed(Some(30 * MS), t0 + 45 * MS, bound));
        g.drained();
        assert!(!g.shed(Some(30 * MS), t0 + 500 * MS, bound));
        g.drained();
        // A burst of BURST queries read slowly (over 1 s), all past the
        // bound: answered.
        for i in 0..BURST {
            let at = t0 + Duration::from_secs(1) + i * (Duration::from_secs(1) / BURST);
            assert!(!g.shed(Some(30 * MS), at, bound), "burst query {i}");
        }
        g.drained();
        // A standing queue: waits past the bound for 100 ms on end, 30
        // queries read a millisecond.
        let t1 = t0 + Duration::from_secs(3);
        let mut shed_from = None;
        for ms in 0..200u32 {
            for _ in 0..30 {
                if g.shed(Some(25 * MS), t1 + ms * MS, bound) && shed_from.is_none() {
                    shed_from = Some(ms);
                }
            }
        }
        assert_eq!(shed_from, Some(100), "shed once standing for STANDING");
        // Read slowly, the queue counts as standing once BURST queries were read.
        let mut slow = QueueGate::default();
        let shed = (0..=BURST).map(|i| slow.shed(Some(25 * MS), t1 + i * MS, bound));
        assert_eq!(shed.filter(|&s| s).count(), 1, "the query after BURST");
        // Drained under the bound for a moment: a query under it passes...
        assert!(!g.shed(Some(5 * MS), t1 + 200 * MS, bound));
        // ...and shedding resumes at once while the queue is still standing.
        assert!(g.shed(Some(25 * MS), t1 + 210 * MS, bound));
        // Unknown waits always pass.
        assert!(!g.shed(None, t1 + 211 * MS, bound));
        // Drained; long after the last shed, a wait past the bound is a new burst.
        assert!(!g.shed(Some(MS), t1 + 300 * MS, bound));
        assert!(!g.shed(Some(25 * MS), t1 + 400 * MS, bound));
        assert!(!g.shed(Some(MS), t1 + 401 * MS, bound));
        assert!(!g.shed(Some(25 * MS), t1 + 500 * MS, bound));
        // Seconds later (still within RECENT of the last shed), a burst past
        // the bound is shed once it has lasted REENTER, without BURST queries.
        let t2 = t1 + Duration::from_secs(5);
        g.drained();
        let shed: Vec<bool> = (0..=12u32)
            .map(|ms| g.shed(Some(25 * MS), t2 + ms * MS, bound))
            .collect();
        assert_eq!(shed.iter().position(|&s| s), Some(10), "{shed:?}");
        // Past RECENT, a burst is a burst again.
        g.drained();
        let t3 = t2 + 12 * MS + RECENT;
        assert!((0..50u32).all(|ms| !g.shed(Some(25 * MS), t3 + ms * MS, bound)));
    }

    /// With `max_inflight` reached (one query held by a backend that
    /// answers only health probes), further queries get SERVFAIL at once,
    /// each counted as shed; the backend is charged with nothing for them
    /// and stays up.
    #[tokio::test]
    async fn over_max_inflight_is_servfail_at_once_and_counted_as_shed() {
        use crate::config::{BackendConfig, LsConfig};
        // The stalled backend: answers the root probe, never a client query.
        let backend = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let baddr = backend.local_addr().unwrap();
        let stalled = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = backend.recv_from(&mut buf).await {
                if n > 12 && buf[12] == 0 {
                    buf[2] |= 0x84;
                    let _ = backend.send_to(&buf[..n], from).await;
                }
            }
        });
        let cfg = LsConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            workers: 1,
            max_inflight: 1,
            timeout_ms: 10_000,
            backend: vec![BackendConfig {
                name: "stalled".into(),
                addr: baddr,
                weight: 1,
            }],
            ..LsConfig::default()
        };
        let balancer = Arc::new(Balancer::new(&cfg));
        let listeners = crate::server::Listeners::bind(&cfg.listen, 1).unwrap();
        let ls = listeners.local_addrs()[0];
        super::super::health::first_round(&balancer, Duration::from_secs(2)).await;
        let token = CancellationToken::new();
        let server = tokio::spawn(super::super::run::serve(
            balancer.clone(),
            listeners,
            super::super::run::server_options(&cfg),
            token.clone(),
        ));
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let query = |id: u8| {
            let mut q = vec![0, id, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            q.extend_from_slice(&[3, b'w', b'w', b'w', 0, 0, 1, 0, 1]);
            q
        };
        // The first query takes the one place in flight (its answer would
        // come at the deadline, long after this test).
        client.send_to(&query(1), ls).await.unwrap();
        let m = balancer.metrics();
        let started = std::time::Instant::now();
        while balancer.state().backends[0].stats.sent.load(Relaxed) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "never forwarded"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut buf = [0u8; 512];
        for id in 2..12u8 {
            client.send_to(&query(id), ls).await.unwrap();
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
                .await
                .expect("SERVFAIL at once, not at the deadline")
                .unwrap();
            assert!(n >= 12 && buf[1] == id, "the answer to query {id}");
            assert_eq!(buf[3] & 0x0f, 2, "SERVFAIL");
        }
        assert_eq!(m.shed_inflight.load(Relaxed), 10);
        assert_eq!(m.shed_queue.load(Relaxed), 0);
        let b = &balancer.state().backends[0];
        assert_eq!(
            b.stats.sent.load(Relaxed),
            1,
            "shed queries are not forwarded"
        );
        assert_eq!(b.stats.timeouts.load(Relaxed), 0);
        assert_eq!(b.stats.errors.load(Relaxed), 0);
        assert!(b.is_up(), "the backend is not blamed for the LS's bound");
        // The held query would be answered at its deadline: not waited for.
        token.cancel();
        server.abort();
        stalled.abort();
    }

    #[test]
    fn servfail_is_written_from_the_header_and_question() {
        // ID 0xbeef, RD and CD set, one question, an OPT record after it.
        let mut q = vec![0xbe, 0xef, 0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(&[3, b'w', b'w', b'w', 0, 0, 1, 0, 1]);
        let end = q.len();
        q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        assert!(write_servfail(&q, end, &mut out));
        let m = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.id, 0xbeef);
        assert_eq!(
            m.metadata.response_code,
            hickory_proto::op::ResponseCode::ServFail
        );
        assert!(m.metadata.recursion_desired && m.metadata.checking_disabled);
        assert!(!m.metadata.authoritative && !m.metadata.recursion_available);
        assert_eq!(m.queries.len(), 1);
        assert!(m.additionals.is_empty() && m.answers.is_empty());
        assert!(!write_servfail(&q[..4], end, &mut Vec::new()));
    }
}
