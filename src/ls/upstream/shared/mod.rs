//! The upstream UDP sockets of the async driver: a pool per worker thread
//! for the TCP, DoT and DoH clients' queries of the connections it serves
//! ([`install`], [`local`]: the queries and their answers stay on that
//! thread), and the LS's shared one (health probes, and queries off the
//! workers); a pool per address family
//! of long-lived sockets, each bound to a port the kernel picks at random,
//! with a table of queries in flight keyed by ID; a thin wrapper over the
//! upstream core ([`super`]), which holds the rules.
//!
//! Forwarding safety (RFC 5452): every upstream query gets a fresh random ID
//! (unique on its socket) and leaves from a socket picked at random in the
//! pool; each socket is replaced by a new one on a new random port after
//! about [`ROTATE_AFTER`] queries ([`super::wear_budget`]). A
//! response is delivered only if it passes [`super::accept`]'s
//! check (a query with its ID waiting on that socket, from the address that
//! query went to, with the same question); anything else is dropped and
//! counted, as on the fast path.
//!
//! Compared with one socket per query (what Unbound does), this spends four
//! system calls per forwarded query instead of about nine, at the price of
//! log2([`SHARED_SOCKETS`]) bits of port entropy per query instead of ~15; the
//! 16-bit random ID and the exact source and question checks stay the same.
//!
//! A query abandoned before its answer came (a hedge's loser, a query past
//! its deadline) is remembered as "late" ([`super::ids::LateEntry`])
//! until [`LATE_GRACE`](super::LATE_GRACE) past its deadline, so its answer is counted `late`
//! rather than as a forgery. One sweeper task per pool wakes every
//! [`LATE_CHECK`], whatever the traffic, and settles the late queries that
//! reached their deadline: their backend's in-flight count is released (no
//! latency sample: no answer came; a timeout is counted as one, not as a
//! latency).
//!
//! # Map
//! - this file: [`SharedSockets`], the pool: its sockets by family, the
//!   exchange, the reader and the sweeper;
//! - `socket.rs`: one socket of the pool, its ID table and its wait guard;
//! - `cork.rs`: a DoH poll's queries held and sent together ([`corked`]);
//! - `xsk.rs`: the queries the XDP workers send ([`XskLane`]: `[ls.xdp]
//!   upstream = "xdp"`), on sockets of the same kind.
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::time::{Instant, MissedTickBehavior, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ids::{Waiter, random_free_id};
use super::sockets::{self, Family};
use super::{DropCounters, TcpConns, UpstreamError};
use crate::dns::{HEADER_LEN, WireHeader};
use crate::ls::backend::InFlight;
use crate::server::backoff::RecvBackoff;
use crate::server::batch::RecvBatch;
use crate::xdp::upstream::{UpstreamLink, XskUpstream};

mod cork;
mod socket;
mod xsk;

pub use cork::corked;
use socket::{SharedSocket, WaitGuard};
pub use xsk::{XSK_PORTS, XskLane};

/// Sockets per address family.
pub const SHARED_SOCKETS: usize = 64;
/// How often the sweeper settles abandoned queries that reached their
/// deadline (and stops retired sockets whose last query has ended).
pub const LATE_CHECK: Duration = Duration::from_millis(100);
/// Every socket of the pool: those in use, by [`Family`] index and slot,
/// and the retired ones still waiting for the answers to their last queries.
struct SocketSet {
    families: [Vec<ArcSwapOption<SharedSocket>>; 2],
    retired: Mutex<Vec<Arc<SharedSocket>>>,
    /// The sockets of the queries sent by the XDP workers, when on.
    xsk: ArcSwapOption<XskLane>,
}

impl SocketSet {
    fn retired(&self) -> MutexGuard<'_, Vec<Arc<SharedSocket>>> {
        // A panic while holding the lock cannot leave the list inconsistent.
        self.retired.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sockets in use.
    fn current(&self) -> impl Iterator<Item = Arc<SharedSocket>> + '_ {
        self.families
            .iter()
            .flatten()
            .filter_map(ArcSwapOption::load_full)
    }

    /// One sweep at `now`: settles the late queries that reached their
    /// deadline on every socket, and stops the retired sockets that have no
    /// query waiting or late any more.
    fn sweep(&self, now: Instant) {
        for ps in self.current() {
            ps.sweep(now);
        }
        self.retired().retain(|ps| !ps.sweep_retired(now));
        if let Some(lane) = self.xsk.load_full() {
            lane.sweep(now);
        }
    }
}

/// Settles late queries every [`LATE_CHECK`], on a steady tick that traffic
/// does not delay, until `token` is cancelled.
async fn sweep_loop(sockets: Arc<SocketSet>, token: CancellationToken) {
    let mut tick = tokio::time::interval(LATE_CHECK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => sockets.sweep(Instant::now()),
        }
    }
}

/// Abandoned queries a pool remembers, from [`SharedSockets::late_entries`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LateEntries {
    /// On all the sockets in use.
    pub total: usize,
    /// On the socket that holds the most (never more than [`LATE_MAX`](super::ids::LATE_MAX)).
    pub fullest: usize,
}

/// The upstream socket pool; its tasks (one reader per socket, one sweeper)
/// stop when it is shut down or dropped.
pub struct SharedSockets {
    /// Reused TCP connections to the backends.
    pub tcp: TcpConns,
    sockets: Arc<SocketSet>,
    drops: Arc<DropCounters>,
    token: CancellationToken,
    tracker: TaskTracker,
    /// Whether the sweeper task has been started (with the first socket).
    sweeping: AtomicBool,
    /// Whether it is a worker thread's own ([`SharedSockets::for_thread`]).
    thread_owned: bool,
    /// A connection thread's pool: the shared pool's sockets, whose XDP
    /// lane (when on) counts this pool's queries as sent through the
    /// sockets ([`SharedSockets::counted_by`]).
    counted_by: Option<Arc<SocketSet>>,
}

impl SharedSockets {
    /// An empty pool of [`SHARED_SOCKETS`] sockets per family; sockets are
    /// bound on first use.
    pub fn new(drops: Arc<DropCounters>) -> Self {
        Self::with_sockets(drops, SHARED_SOCKETS, false)
    }

    /// A worker thread's own pool ([`install`]), empty, of `per_family`
    /// sockets per family (at least one: a share of [`SHARED_SOCKETS`]); an
    /// answer it reads for a query asked on another thread is counted
    /// (`off_thread`).
    pub fn for_thread(drops: Arc<DropCounters>, per_family: usize) -> Self {
        Self::with_sockets(drops, per_family, true)
    }

    fn with_sockets(drops: Arc<DropCounters>, per_family: usize, thread_owned: bool) -> Self {
        let slots = || {
            (0..per_family.max(1))
                .map(|_| ArcSwapOption::empty())
                .collect()
        };
        SharedSockets {
            tcp: TcpConns::new(drops.clone()),
            sockets: Arc::new(SocketSet {
                families: [slots(), slots()],
                retired: Mutex::new(Vec::new()),
                xsk: ArcSwapOption::empty(),
            }),
            drops,
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
            sweeping: AtomicBool::new(false),
            thread_owned,
            counted_by: None,
        }
    }

    /// This (connection thread's) pool with its UDP queries counted as
    /// sent through the sockets (`dnslb_xdp_upstream_total{via="sockets"}`)
    /// whenever `shared` sends its own through the XDP workers
    /// ([`SharedSockets::attach_xsk`]): only the shared pool's queries (the
    /// UDP clients') go through them.
    #[must_use]
    pub fn counted_by(mut self, shared: &SharedSockets) -> Self {
        self.counted_by = Some(shared.sockets.clone());
        self
    }

    /// How many abandoned queries the sockets in use remember now (whose
    /// answers may still come; see [`LATE_GRACE`](super::LATE_GRACE)). A read-only look for
    /// tests and diagnostics; it takes each socket's lock briefly.
    pub fn late_entries(&self) -> LateEntries {
        self.sockets.current().map(|ps| ps.table().late.len()).fold(
            LateEntries::default(),
            |acc, n| LateEntries {
                total: acc.total + n,
                fullest: acc.fullest.max(n),
            },
        )
    }

    /// Stops every task of the pool and waits for them.
    pub async fn shutdown(&self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.tcp.shutdown().await;
    }

    /// The socket of a random slot, binding (or rotating) it when needed;
    /// in a corked poll ([`corked`]), the socket chosen so for the poll's
    /// first query of this family.
    async fn pick(&self, addr: SocketAddr) -> Result<Arc<SharedSocket>, UpstreamError> {
        let family = Family::of(addr);
        let key = (Arc::as_ptr(&self.sockets) as usize, family.index());
        if let Some(s) = cork::chosen(key)
            && s.uses.fetch_add(1, Relaxed) < s.budget
        {
            return Ok(s);
        }
        let ps = self.pick_slot(family).await?;
        cork::choose(key, &ps);
        Ok(ps)
    }

    /// The socket of a random slot of `family`, binding (or rotating) it when
    /// needed.
    async fn pick_slot(&self, family: Family) -> Result<Arc<SharedSocket>, UpstreamError> {
        let Some(slots) = self.sockets.families.get(family.index()) else {
            return Err(UpstreamError::Unusable);
        };
        let Some(slot) = slots.get(rand::random_range(0..slots.len())) else {
            return Err(UpstreamError::Unusable);
        };
        let current = slot.load_full();
        if let Some(s) = &current
            && s.uses.fetch_add(1, Relaxed) < s.budget
        {
            return Ok(s.clone());
        }
        // Empty, or worn out: a new socket on a new random port. A worn
        // one that cannot be replaced keeps serving: a socket is never the
        // reason a query is not sent.
        let sock = match sockets::open(family) {
            Ok(sock) => sock,
            Err(err) => return current.ok_or(err.into()),
        };
        let fresh = Arc::new(SharedSocket::fresh(
            sock,
            &self.token,
            &self.tracker,
            self.thread_owned,
        ));
        if let Some(old) = slot.swap(Some(fresh.clone())) {
            // Its reader keeps going until the sweeper sees no query waiting
            // and no late answer expected.
            self.sockets.retired().push(old);
        }
        self.tracker
            .spawn(read_loop(fresh.clone(), self.drops.clone(), family));
        self.start_sweeper();
        Ok(fresh)
    }

    /// A socket of the XDP lane for source `src`, its reader started when
    /// it is new.
    fn pick_lane(&self, lane: &XskLane, src: IpAddr) -> Result<Arc<SharedSocket>, UpstreamError> {
        let (ps, fresh) = lane.pick(src)?;
        if fresh {
            let family = Family::of(SocketAddr::new(src, 0));
            self.tracker
                .spawn(read_loop(ps.clone(), self.drops.clone(), family));
            self.start_sweeper();
        }
        Ok(ps)
    }

    /// The sweeper, started once.
    fn start_sweeper(&self) {
        if !self.sweeping.swap(true, Relaxed) {
            self.tracker
                .spawn(sweep_loop(self.sockets.clone(), self.token.clone()));
        }
    }

    /// Sends the queries of [`SharedSockets::exchange_from`] to backends the
    /// XDP workers reach through them ([`XskLane`]); the server's side of
    /// `up`, for the workers.
    pub fn attach_xsk(&self, up: Arc<XskUpstream>) -> Arc<dyn UpstreamLink> {
        let (token, tracker) = (self.token.clone(), self.tracker.clone());
        let lane = Arc::new(XskLane::new(up, self.drops.clone(), token, tracker));
        self.sockets.xsk.store(Some(lane.clone()));
        lane
    }

    /// Back to the sockets alone (the XDP path did not start).
    pub fn detach_xsk(&self) {
        self.sockets.xsk.store(None);
    }

    /// Sends `query` (whose question section ends at `question_end`) to
    /// `addr` with a fresh random ID and waits until `deadline` for the
    /// matching response. `query`'s ID is overwritten. `inflight` (the
    /// backend's in-flight count) is released when the answer comes, even
    /// after this call has been abandoned, or at the deadline; a late answer
    /// also feeds the backend's latency (its adaptive hedge delay only
    /// through [`SharedSockets::exchange_from`]'s `hedge_pct`).
    ///
    /// # Errors
    /// Timeout, a socket error, or no free ID on the chosen socket.
    pub async fn exchange(
        &self,
        addr: SocketAddr,
        query: &mut [u8],
        question_end: usize,
        (deadline, inflight): (Instant, Option<InFlight>),
    ) -> Result<Vec<u8>, UpstreamError> {
        let mut local = None;
        let to = (addr, &mut local);
        // Never through the XDP workers: a probe's datagram is the kernel's
        // own, which keeps its neighbour table current.
        let wait = (deadline, inflight, None);
        self.ask(to, query, question_end, wait, (false, None)).await
    }

    /// As [`SharedSockets::exchange`] to `addr`, writing to `local` the
    /// address of the socket the query left from (for dnstap), once picked;
    /// through the XDP workers when the pool has them
    /// ([`SharedSockets::attach_xsk`]) and they reach `addr`. With a
    /// PROXY header `head` (a backend with `proxy`), the datagram is the
    /// header and then the query, through the sockets.
    pub async fn exchange_from(
        &self,
        (addr, local, head): (SocketAddr, &mut Option<SocketAddr>, Option<&[u8]>),
        query: &mut [u8],
        question_end: usize,
        deadline: Instant,
        inflight: Option<InFlight>,
        hedge_pct: Option<f64>,
    ) -> Result<Vec<u8>, UpstreamError> {
        let wait = (deadline, inflight, hedge_pct);
        let to = (addr, local);
        self.ask(to, query, question_end, wait, (head.is_none(), head))
            .await
    }

    /// The exchange of [`SharedSockets::exchange_from`]; through the XDP
    /// workers only when `lane_ok`; `head` before the query when given.
    async fn ask(
        &self,
        (addr, local): (SocketAddr, &mut Option<SocketAddr>),
        query: &mut [u8],
        question_end: usize,
        (deadline, inflight, hedge_pct): (Instant, Option<InFlight>, Option<f64>),
        (lane_ok, head): (bool, Option<&[u8]>),
    ) -> Result<Vec<u8>, UpstreamError> {
        let question = query.get(HEADER_LEN..question_end).unwrap_or_default();
        let question = smallvec::SmallVec::from_slice(question);
        let lane = lane_ok.then(|| self.sockets.xsk.load_full()).flatten();
        let via = lane.as_ref().and_then(|l| Some((l, l.path(addr)?)));
        let (ps, via) = match via.and_then(|(l, p)| Some((self.pick_lane(l, p.src).ok()?, p))) {
            Some((ps, path)) => (ps, Some(path)),
            None => (self.pick(addr).await?, None),
        };
        *local = ps.local;
        let (tx, rx) = super::mailbox::channel();
        let id = {
            let mut table = ps.table();
            let id = random_free_id(|id| !table.id_in_use(id)).ok_or(UpstreamError::Unusable)?;
            table.waiting.insert(
                id,
                Waiter {
                    addr,
                    question,
                    tx,
                    inflight,
                    deadline,
                    hedge_pct,
                    thread: std::thread::current().id(),
                },
            );
            id
        };
        let _guard = WaitGuard { sock: &ps, id };
        WireHeader::set_id(query, id);
        let proxied = head.map(|h| [h, &*query].concat());
        let query = proxied.as_deref().unwrap_or(query);
        match (&lane, via) {
            (Some(lane), Some(path)) => lane.send(&path, &ps, addr, query).await?,
            _ => {
                let counted = self.counted_by.as_ref().filter(|_| lane_ok);
                let shared = counted.and_then(|s| s.xsk.load_full());
                if let Some(lane) = lane.as_ref().or(shared.as_ref()) {
                    lane.count_sockets();
                }
                if !cork::hold(&ps, id, query, addr) {
                    ps.sock.send_to(query, addr).await?;
                }
            }
        }
        match timeout_at(deadline, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(UpstreamError::Unusable),
            Err(_) => Err(UpstreamError::Timeout),
        }
    }
}

impl Drop for SharedSockets {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

thread_local! {
    /// This thread's own pool: set on each of the LS's worker threads
    /// ([`install`]), whose TCP, DoT and DoH connections ask their backends
    /// from it, so the answers are read on the thread that asked.
    static LOCAL: RefCell<Option<Arc<SharedSockets>>> = const { RefCell::new(None) };
}

/// Makes `pool` this thread's own ([`local`]), for as long as the thread
/// lives (or until another replaces it). Its sockets are opened, and their
/// readers run, on this thread's runtime.
pub fn install(pool: Arc<SharedSockets>) {
    LOCAL.with_borrow_mut(|p| *p = Some(pool));
}

/// This thread's own pool, if it has one ([`install`]).
pub fn local() -> Option<Arc<SharedSockets>> {
    LOCAL.with_borrow(Clone::clone)
}

thread_local! {
    /// The receive slots of this thread's socket readers, by address family:
    /// a reader uses them only between its wake-up and its next wait, so the
    /// readers of one thread share them (a full batch per call, whatever
    /// the number of sockets).
    static SLOTS: RefCell<[Option<RecvBatch>; 2]> = const { RefCell::new([None, None]) };
}

/// Reads one socket's responses and hands each to the query it answers,
/// until the socket's `stop` token is cancelled.
async fn read_loop(ps: Arc<SharedSocket>, drops: Arc<DropCounters>, family: Family) {
    let mut backoff = RecvBackoff::default();
    loop {
        tokio::select! {
            _ = ps.stop.cancelled() => return,
            r = ps.sock.readable() => if r.is_err() { continue },
        }
        let read = SLOTS.with_borrow_mut(|[v4, v6]| {
            let slots = match family {
                Family::V4 => v4,
                Family::V6 => v6,
            }
            .get_or_insert_with(RecvBatch::default);
            let n = slots.recv_ready(&ps.sock)?;
            for i in 0..n {
                if let Some((resp, meta)) = slots.get(i)
                    && let Some(from) = meta.src
                {
                    // A response that filled its slot may have been cut short.
                    ps.deliver(resp, from, meta.truncated, &drops);
                }
            }
            Ok::<_, std::io::Error>(())
        });
        match read {
            Ok(()) => backoff.success(),
            Err(_) => {
                // E.g. ICMP port unreachable from a dead backend: keep
                // reading, but do not spin if the error persists.
                if let Some(pause) = backoff.failure() {
                    tokio::select! {
                        _ = ps.stop.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    use crate::ls::upstream::ids::tests::{MS, backend, outstanding};

    /// A query for `www.test. A` with ID 0, and where its question ends.
    fn wire_query() -> (Vec<u8>, usize) {
        let mut q = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x03www\x04test\x00\x00\x01\x00\x01");
        let end = q.len();
        (q, end)
    }

    /// The steady tick, over real sockets: queries abandoned on sockets that
    /// keep receiving datagrams (every 10 ms, well under [`LATE_CHECK`]) are
    /// still settled soon after their deadline (without a latency sample:
    /// no answer came). A timer reset by every datagram would never fire here.
    #[tokio::test]
    async fn late_queries_expire_on_a_steady_tick_however_busy_their_socket() {
        const QUERIES: usize = 8;
        const DEADLINE: Duration = Duration::from_millis(300);
        // Reads nothing, answers nothing.
        let blackhole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = backend(blackhole.local_addr().unwrap());
        let drops = Arc::new(DropCounters::default());
        let pool = SharedSockets::new(drops.clone());
        let start = Instant::now();
        let deadline = start + DEADLINE;
        let abandoned = (0..QUERIES).map(|_| {
            let (pool, b) = (&pool, &b);
            async move {
                let (mut q, end) = wire_query();
                let exchange = pool.exchange(b.addr, &mut q, end, (deadline, Some(b.begin())));
                // Given up long before the deadline, as a race's loser is.
                let r = tokio::time::timeout(20 * MS, exchange).await;
                assert!(r.is_err(), "the blackhole answered: {r:?}");
            }
        });
        futures_util::future::join_all(abandoned).await;
        assert_eq!(outstanding(&b), QUERIES as u32);
        assert_eq!(pool.late_entries().total, QUERIES);

        // Junk to every socket in use, every 10 ms (dropped and counted).
        let ports: Vec<u16> = pool
            .sockets
            .current()
            .map(|ps| ps.sock.local_addr().unwrap().port())
            .collect();
        let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut tick = tokio::time::interval(10 * MS);
        let mut settled_at = None;
        while start.elapsed() < DEADLINE + 10 * LATE_CHECK {
            tick.tick().await;
            for &port in &ports {
                junk.send_to(b"x", (Ipv4Addr::LOCALHOST, port))
                    .await
                    .unwrap();
            }
            if settled_at.is_none() && outstanding(&b) == 0 {
                settled_at = Some(start.elapsed());
            }
        }
        assert!(
            drops.wrong_question.load(Relaxed) > 0,
            "the junk reached the sockets"
        );
        let settled_at = settled_at.expect("abandoned queries settled while traffic flowed");
        assert!(settled_at >= DEADLINE, "settled at {settled_at:?}");
        // A timeout is not a latency: nothing recorded.
        assert_eq!(b.stats.latency.snapshot().count, 0);
        assert_eq!(b.stats.latency_us.load(Relaxed), 0);
        // Still remembered for their grace period (a late answer is `late`, not forged).
        assert_eq!(pool.late_entries().total, QUERIES);
        assert_eq!(drops.late.load(Relaxed), 0);
        pool.shutdown().await;
    }
}
