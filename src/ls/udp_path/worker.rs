//! A fast-path worker: its state (its client socket, its upstream sockets,
//! opened here, each on a port the kernel picks, answers timed by their
//! arrival; its epoll set and what each socket is watched for; its flights,
//! late entries and timers; the send queues of a round; the free list of
//! byte buffers it reuses) and, in its one `impl`, what a flight makes it
//! do: its [`Resolution`](crate::ls::resolution::Resolution) driven
//! (attempts launched on the upstream sockets, the reply made by
//! [`reply::finish`] when it ends), its attempts retired as late entries
//! when it ends first, each upstream datagram judged by the upstream core's
//! check ([`accept`]) and handed to its flight, and which of its timers is
//! next (which heap entries are live: `timers`). A client query up to its
//! flight is `admitted`'s, the loop (its waits and rounds, the timers fired)
//! `rounds`': free functions over the worker, above it.
use std::cmp::Reverse;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;

use super::flight::{self, Attempt, Delayed, Flight, Late, Slab, TimerFor, Timers, Track};
use super::tap;
use super::timers::{next_live, timer_live};
use crate::dns::{self, HEADER_LEN, WireHeader};
use crate::dnstap::Staged;
use crate::guard::fair::Holders;
use crate::ls::balancer::{Balancer, KeptState};
use crate::ls::dynblock::WorkerCounts;
use crate::ls::handoff::Inbox;
use crate::ls::reply;
use crate::ls::resolution::{End, Step, Verdict};
use crate::ls::state::Route;
use crate::ls::upstream::ROTATE_AFTER;
use crate::ls::upstream::accept::{self, DropReason};
use crate::ls::upstream::ids::{self, IdUse};
use crate::ls::upstream::sockets::{self, Family, Sockets};
use crate::server::Reply;
use crate::server::backoff::RecvBackoff;
use crate::server::batch::{self, SendQueue};
use crate::server::event_loop::{LoopStop, Poller};
use crate::server::shed::QueueGate;

/// Upstream sockets per worker and address family: log2 of it is the
/// source-port entropy a query gets on top of its random ID.
pub const UPSTREAM_SOCKETS: usize = 8;
/// Upstream responses read per system call and socket.
pub(super) const UPSTREAM_SLOTS: usize = 8;
/// Byte buffers kept for reuse per worker, at most.
const SPARE_MAX: usize = 4096;

/// The client socket's token in the worker's epoll set (the upstream
/// sockets' are numbered after it, from [`UP`]).
pub(super) const CLIENT: u64 = 0;

/// Upstream socket slot `s`'s token in the worker's epoll set is `UP + s`.
pub(super) const UP: u64 = 1;
/// The epoll token of the eventfd of the queries the XDP workers hand over.
pub(super) const HANDOFF: u64 = u64::MAX - 1;

/// The longest a worker sleeps: an idle one hands its dynamic-block counts
/// in within this long of the tick calling for them (the wait's timeout,
/// and the client socket's receive timeout for the blocking receive).
pub(super) const HAND_IN_WAKE: Duration = Duration::from_millis(100);

/// What a socket in the worker's epoll set is watched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Watch {
    pub(super) read: bool,
    pub(super) write: bool,
}

/// A new upstream socket of `family` ([`sockets::open_std`]), its answers
/// timed by their arrival, not by when they are read.
pub(super) fn open_upstream(family: Family) -> std::io::Result<UdpSocket> {
    let s = sockets::open_std(family)?;
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
    pub(super) client: UdpSocket,
    /// The client socket's address, read once (for dnstap).
    pub(super) client_local: Option<SocketAddr>,
    /// Upstream sockets of both families, by slot (attempts name the slot).
    pub(super) ups: Sockets<UdpSocket>,
    /// Its epoll set: the client socket, every open upstream socket, the stop.
    pub(super) poller: Poller,
    /// What the client socket is watched for.
    pub(super) client_watch: Watch,
    /// Per upstream slot, what its socket is watched for (`None`: not in
    /// the set).
    pub(super) up_watch: Vec<Option<Watch>>,
    /// Upstream slots watched for writing now (a send pending on them):
    /// with none, and no send left pending by a flush, the flush looks at
    /// no slot's watch.
    pub(super) up_writes: usize,
    /// What the last wait found ready: the client socket, upstream slots.
    pub(super) client_ready: bool,
    pub(super) ups_ready: Vec<usize>,
    /// Stop seen: no client query is read any more.
    pub(super) stopping: bool,
    /// The client socket is set up for the blocking receive (blocking
    /// mode, its receive timeout the hand-in wake, named to the stop):
    /// with nothing in flight the worker sleeps in it (`rounds`).
    pub(super) block_ok: bool,
    /// Blocking receives entered (a test's count).
    #[cfg(test)]
    pub(super) blocks: Arc<std::sync::atomic::AtomicU64>,
    /// Client reads pause until then after receive errors in a row.
    pub(super) paused_until: Option<Instant>,
    pub(super) backoff: RecvBackoff,
    pub(super) gate: QueueGate,
    pub(super) flights: Slab<Flight>,
    /// Each flight's resolution and attempts, by its slot in `flights`
    /// (as many as it has slots): kept in place when it ends, for the
    /// next flight there ([`Track`]).
    pub(super) tracks: Vec<Track>,
    pub(super) late: Slab<Late>,
    /// Queries a `delay_ms` rule holds (at most `max_flights`).
    pub(super) delayed: Slab<Delayed>,
    pub(super) timers: Timers,
    /// Answers to clients, and queries per upstream socket slot, of this
    /// round (and those a full socket left pending).
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
    /// Timers pushed on its heap (a debug count: a cache hit pushes none).
    pub(super) timer_pushes: u64,
    /// The round's clock: every time the round's work needs is read from
    /// it, not from the OS, so a round reads the monotonic clock once (and
    /// the realtime clock once, when it reads a socket).
    pub(super) clock: RoundClock,
    /// The snapshot the worker admits its queries on, taken anew after a
    /// reload (checked at each round and each query: one atomic read).
    pub(super) kept: KeptState,
    /// The round's dnstap frames, encoded as its queries and answers come
    /// and go, handed to dnstap's queue at the end of its flush (`tap`).
    pub(super) tap_staged: Staged,
    /// The forwarded queries the XDP workers hand over, when the LS has an
    /// XDP path ([`crate::ls::handoff`]); its eventfd in the epoll set.
    pub(super) inbox: Option<Inbox>,
    /// The last wait found the inbox's eventfd written.
    pub(super) inbox_woken: bool,
    /// Where its queries for encrypted backends go ([`super::divert`]).
    pub(super) to_async: Option<super::divert::AsyncLane>,
}

/// The time of the current round (`now`: the monotonic clock when its
/// wait returned), and the moment datagrams are timed against: both clocks
/// read together (the kernel stamps a datagram in realtime; its arrival on
/// the monotonic clock is that moment less its wait). A round that reads
/// sockets has them read with `now` ([`RoundClock::read`]); any other
/// reads them on first use.
#[derive(Debug, Clone, Copy)]
pub(super) struct RoundClock {
    pub(super) now: Instant,
    stamps: Option<(Instant, std::time::SystemTime)>,
}

impl RoundClock {
    /// A round at `now`, the clocks for datagrams read when first needed.
    pub(super) fn at(now: Instant) -> Self {
        RoundClock { now, stamps: None }
    }

    /// A round now, both clocks read at once.
    pub(super) fn read() -> Self {
        let now = Instant::now();
        RoundClock {
            now,
            stamps: Some((now, std::time::SystemTime::now())),
        }
    }

    /// A round at `now` whose datagrams are timed against `sys` (a test's
    /// clocks: a `sys` ahead of the real one makes every datagram read
    /// seem to have waited that much longer).
    #[cfg(test)]
    pub(super) fn with_stamps(now: Instant, sys: std::time::SystemTime) -> Self {
        RoundClock {
            now,
            stamps: Some((now, sys)),
        }
    }

    /// Both clocks read again, for datagrams that arrived after the
    /// round's reading ([`RoundClock::stamps`] then returns this moment).
    pub(super) fn restamp(&mut self) {
        self.stamps = Some((Instant::now(), std::time::SystemTime::now()));
    }

    /// One moment on both clocks, to time the round's datagrams by (read
    /// once per round).
    pub(super) fn stamps(&mut self) -> (Instant, std::time::SystemTime) {
        *self
            .stamps
            .get_or_insert_with(|| (Instant::now(), std::time::SystemTime::now()))
    }
}

impl Worker {
    /// A worker serving `client` until `stop`, its metrics registered,
    /// receive timestamps asked for, and [`UPSTREAM_SOCKETS`] upstream
    /// sockets per family opened (one that cannot be opened is logged and
    /// left out), each socket in its epoll set for reading.
    ///
    /// # Errors
    /// The OS error of its epoll set.
    pub(super) fn new(
        balancer: Arc<Balancer>,
        client: UdpSocket,
        max_flights: usize,
        stop: Arc<LoopStop>,
    ) -> std::io::Result<Self> {
        let counts = balancer.dynblocks().worker_counts();
        let kept = balancer.keep_state();
        let poller = Poller::new(stop)?;
        poller.add(&client, CLIENT)?;
        let mut w = Worker {
            balancer,
            client_local: client.local_addr().ok(),
            client,
            ups: Sockets::new(ROTATE_AFTER),
            poller,
            client_watch: Watch {
                read: true,
                write: false,
            },
            up_watch: Vec::new(),
            up_writes: 0,
            client_ready: false,
            ups_ready: Vec::with_capacity(crate::server::event_loop::EVENTS),
            stopping: false,
            block_ok: false,
            #[cfg(test)]
            blocks: Arc::default(),
            paused_until: None,
            backoff: RecvBackoff::default(),
            gate: QueueGate::default(),
            flights: Slab::new(),
            tracks: Vec::new(),
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
            timer_pushes: 0,
            clock: RoundClock::at(Instant::now()),
            kept,
            tap_staged: Staged::default(),
            inbox: None,
            inbox_woken: false,
            to_async: None,
        };
        if let Some(inode) = crate::server::socket::socket_inode(&w.client) {
            w.balancer
                .metrics
                .client_sockets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(inode);
        }
        if let Err(err) = batch::enable_timestamps(&w.client) {
            debug!(
                ?err,
                "no receive timestamps: queries are not shed by their wait"
            );
        }
        // Handed queries wake the worker through its epoll set: it never
        // sleeps in the client socket's receive then.
        let local = w.client_local;
        match local
            .map(|l| w.balancer.handoffs().open(l))
            .transpose()?
            .flatten()
        {
            Some(inbox) => {
                w.poller.add(inbox.fd(), HANDOFF)?;
                w.inbox = Some(inbox);
            }
            None => w.set_up_blocking(),
        }
        for family in Family::ALL {
            for _ in 0..UPSTREAM_SOCKETS {
                match open_upstream(family) {
                    Ok(u) => w.ups.add(family, u),
                    Err(err) => debug!(?family, ?err, "cannot open an upstream socket"),
                }
            }
        }
        for slot in 0..w.ups.len() {
            w.watch_upstream(slot);
        }
        Ok(w)
    }

    /// Sets the client socket up for the blocking receive: blocking mode,
    /// its wait bounded by the hand-in wake, named to the stop (which wakes
    /// it); every other call on it waits for nothing (`MSG_DONTWAIT`).
    /// Failing that, the worker waits in `epoll_wait` only.
    pub(super) fn set_up_blocking(&mut self) {
        let done = self
            .client
            .set_read_timeout(Some(HAND_IN_WAKE))
            .and_then(|()| self.poller.stop().wake_reader(Some(&self.client)))
            .and_then(|()| self.client.set_nonblocking(false));
        match done {
            Ok(()) => self.block_ok = true,
            Err(err) => debug!(?err, "the worker waits in epoll_wait only"),
        }
    }

    /// Puts upstream slot `slot`'s socket in the epoll set when it is not
    /// there yet (a socket just opened), or sets whether it is watched for
    /// writing (a send pending on it). Every open upstream socket is in the
    /// set, used or idle: epoll reports only the ready ones, so an idle one
    /// costs a wake-up nothing, where adding a socket at its first ID in use
    /// and taking it out at its last would cost two `epoll_ctl` calls per
    /// query at low load. A datagram on an idle socket is read at once and
    /// refused as stray.
    pub(super) fn watch_upstream(&mut self, slot: usize) {
        let Some(u) = self.ups.get(slot) else {
            return;
        };
        if self.up_watch.len() <= slot {
            self.up_watch.resize(slot + 1, None);
        }
        let write = self.to_upstream.get(slot).is_some_and(|q| q.len() > 0);
        let token = UP + slot as u64;
        let (now, done) = match self.up_watch.get(slot).copied().flatten() {
            None => (
                Watch {
                    read: true,
                    write: false,
                },
                self.poller.add(&u.sock, token),
            ),
            Some(w) if w.write != write => (
                Watch { read: true, write },
                self.poller.set(&u.sock, token, true, write),
            ),
            Some(_) => return,
        };
        match done {
            Ok(()) => {
                if let Some(w) = self.up_watch.get_mut(slot) {
                    let was = w.is_some_and(|w| w.write);
                    if was != now.write {
                        self.up_writes = if now.write {
                            self.up_writes + 1
                        } else {
                            self.up_writes.saturating_sub(1)
                        };
                    }
                    *w = Some(now);
                }
            }
            Err(err) => debug!(?err, slot, "cannot watch an upstream socket"),
        }
    }

    /// Keeps a byte buffer for reuse.
    pub(super) fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < SPARE_MAX && buf.capacity() <= batch::SLOT {
            self.spare.push(buf);
        }
    }

    /// Pushes a timer on the heap.
    pub(super) fn arm(&mut self, at: Instant, what: TimerFor) {
        self.timers.push(Reverse((at, what)));
        self.timer_pushes += 1;
    }

    /// Runs flight `idx`'s state machine at `now`: sends what it launches,
    /// arms its timer, or ends it.
    pub(super) fn drive(&mut self, idx: u32, now: Instant) {
        loop {
            let Some((f, t)) = flight::both(&mut self.flights, &mut self.tracks, idx) else {
                return;
            };
            match t.res.poll(now, f.state.route(&f.job)) {
                Step::Launch { backend, hedge } => {
                    if hedge {
                        f.state.metrics.hedges.fetch_add(1, Relaxed);
                    }
                    if !self.launch(idx, backend, now)
                        && let Some(t) = flight::track(&mut self.tracks, idx)
                    {
                        t.res.on_outcome(backend, Verdict::Failed);
                    }
                }
                Step::Wait => {
                    let at = t.res.next_wakeup();
                    if f.timer_at != Some(at) {
                        f.timer_at = Some(at);
                        self.arm(at, TimerFor::Flight(idx));
                    }
                    return;
                }
                Step::Done(end) => {
                    self.end_flight(idx, end, now);
                    return;
                }
            }
        }
    }

    /// Ends flight `idx` as `end` says, at `now`: its place given back, its
    /// attempts still out retired as late entries, its reply made and
    /// queued. Worked on where it is in its slab, and dropped there: a
    /// flight is large, and moving it out by value cost a copy or two of it
    /// per query; its [`Track`] stays in place for the next flight in its
    /// slot, its attempts taken out one by one (no copy of the list made).
    fn end_flight(&mut self, idx: u32, end: End, now: Instant) {
        let Some((f, t)) = flight::both(&mut self.flights, &mut self.tracks, idx) else {
            return;
        };
        self.holders.release(f.group);
        // Those still asked become late entries.
        let winner = end.backend();
        let excused = end.excuses_silence(t.res.layout());
        // Backends charged a timeout by the reply itself.
        let timed_out = end.timed_out();
        let (state, deadline) = (Arc::clone(&f.state), t.res.deadline());
        let route = state.route(&f.job);
        while let Some(t) = flight::track(&mut self.tracks, idx)
            && !t.attempts.is_empty()
        {
            let a = t.attempts.remove(0);
            let charged = timed_out && t.res.unfinished().any(|b| b == a.backend);
            let who = (winner, excused, charged);
            self.retire(a, route, deadline, now, who);
        }
        let Some((f, t)) = flight::both(&mut self.flights, &mut self.tracks, idx) else {
            return;
        };
        let answered = reply::Answered {
            backend: end.backend(),
            route: f.job.route,
            log: f.job.log.take(),
        };
        let reply = reply::finish(&state, &f.job, &t.res, end, f.kept.take());
        let from_backend = answered.backend.is_some();
        let took = now.into_std().saturating_duration_since(f.arrived);
        answered.log(&state, &reply, took);
        let to = (f.client, f.received);
        let who = f.job.client.0.ip();
        let raw = std::mem::take(&mut f.job.raw);
        self.flights.discard(idx);
        self.answer(reply, to, (took, from_backend, who));
        self.recycle(raw);
    }

    /// Counts a forwarded query's reply and queues it for the client; a
    /// backend's answer (`from_backend`: not one the LS made up at the
    /// deadline) counts for the dynamic blocks too, and every one for
    /// `dnslb top` (by the client `who`).
    fn answer(
        &mut self,
        reply: Reply,
        (to, received): (batch::Peer, Instant),
        (took, from_backend, who): (Duration, bool, std::net::IpAddr),
    ) {
        self.balancer.metrics.answered_after(&reply, took);
        if let Reply::One(b) = reply {
            if from_backend {
                self.balancer.on_answer(who, &b, Some(&mut self.counts));
            } else {
                self.balancer.on_made_up(&b, Some(&mut self.counts));
            }
            self.to_clients.push_copy(&b, to);
            self.to_clients.stamp(received.into_std());
            self.recycle(b);
        }
    }

    /// Queues flight `idx`'s query to `backend` at `now`; false when it
    /// cannot go.
    fn launch(&mut self, idx: u32, backend: usize, now: Instant) -> bool {
        let Some((f, t)) = flight::both(&mut self.flights, &mut self.tracks, idx) else {
            return false;
        };
        // Borrowed from the flight's snapshot, not cloned (no count taken
        // and given back per query).
        let Some(b) = f.state.route(&f.job).backends.get(backend) else {
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
            if b.proxy {
                crate::ls::proxy_out::prefix(query, &f.job);
            }
        }
        t.attempts.push(Attempt {
            backend,
            sock,
            id,
            inflight: Some(b.begin_at(now)),
            refused: false,
        });
        // A socket just opened (a worn one replaced) joins the epoll set.
        if self.up_watch.get(sock).copied().flatten().is_none() {
            self.watch_upstream(sock);
        }
        true
    }

    /// An attempt whose flight ended without its answer: remembered until
    /// its deadline (for its latency and outstanding count) plus a grace.
    /// Unanswered at its deadline, it is a loss of its backend, unless that
    /// backend answered the client (`winner`: a re-ask's lost twin) or the
    /// answer excuses every other backend's silence (`excused`:
    /// [`End::excuses_silence`]). `charged`: the query timed out with
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
        self.arm(at, TimerFor::Late(li));
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
        let Some(t) = flight::track(&mut self.tracks, idx) else {
            return;
        };
        let Some(a) = t
            .attempts
            .iter_mut()
            .find(|a| a.sock == sock && a.id == id && !a.refused)
        else {
            return;
        };
        a.refused = true;
        t.res.on_outcome(a.backend, Verdict::Failed);
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
        let (f, t) =
            flight::both(&mut self.flights, &mut self.tracks, idx).ok_or(DropReason::WrongId)?;
        let pos = t
            .attempts
            .iter()
            .position(|a| a.sock == sock && a.id == h.id && !a.refused)
            .ok_or(DropReason::WrongId)?;
        let backend = t.attempts.get(pos).map_or(usize::MAX, |a| a.backend);
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
        let a = t.attempts.remove(pos);
        if let Some(u) = self.ups.get_mut(sock) {
            u.ids.set(h.id, IdUse::Free);
        }
        let Some((f, t)) = flight::both(&mut self.flights, &mut self.tracks, idx) else {
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
        let keep = t.res.on_outcome(backend, verdict);
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
        tap::accepted(
            (self.balancer.dnstap(), &mut self.tap_staged),
            &self.ups,
            sock,
            from,
            rtt,
            resp,
            || self.clock.stamps(),
        );
        self.drive(idx, now);
        Ok(())
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
