//! Upstream UDP sockets shared by all queries: a pool per address family of
//! long-lived sockets, each bound to a port the kernel picks at random, with
//! a table of queries in flight keyed by ID.
//!
//! Forwarding safety (RFC 5452): every upstream query gets a fresh random ID
//! (unique on its socket) and leaves from a socket picked at random in the
//! pool; each socket is replaced by a new one on a new random port after
//! [`ROTATE_AFTER`] queries. A response is delivered only if a query with its
//! ID is waiting on that socket, it comes from the address that query went
//! to, and it carries the same question; anything else is dropped and counted.
//!
//! Compared with one socket per query (what Unbound does), this spends four
//! system calls per forwarded query instead of about nine, at the price of
//! log2([`POOL_SOCKETS`]) bits of port entropy per query instead of ~15; the
//! 16-bit random ID and the exact source and question checks stay the same.
//!
//! A query abandoned before its answer came (a hedge's loser, a query past
//! its deadline) is remembered as "late" until [`LATE_GRACE`] past its
//! deadline, so its answer is counted `late` rather than as a forgery. One
//! sweeper task per pool wakes every [`LATE_CHECK`], whatever the traffic,
//! and settles the late queries that reached their deadline: their backend's
//! in-flight count is released and their latency sample is the time they
//! waited, capped at the deadline (not the time the sweep happened to run).
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::backend::InFlight;
use super::order::name_hash;
use super::upstream::{DropCounters, UpstreamError};
use crate::dns::{HEADER_LEN, WireHeader};
use crate::server::backoff::Backoff;
use crate::server::batch::RecvBatch;

/// Sockets per address family.
pub const POOL_SOCKETS: usize = 64;
/// Queries one socket sends before it is replaced by one on a new port.
pub const ROTATE_AFTER: u64 = 20_000;
/// Responses read per system call on one socket (each socket has its own
/// slots, so this stays small: 64 sockets per address family).
const RECV_SLOTS: usize = 4;
/// How often the sweeper settles abandoned queries that reached their
/// deadline (and stops retired sockets whose last query has ended).
pub const LATE_CHECK: Duration = Duration::from_millis(100);

/// A query waiting for its response.
struct Waiter {
    addr: SocketAddr,
    question_hash: u64,
    question_len: usize,
    tx: oneshot::Sender<Vec<u8>>,
    /// Keeps the backend's `outstanding` count until the answer or the deadline.
    inflight: Option<InFlight>,
    deadline: Instant,
    /// Percentile for the adaptive hedge delay, when it is in use.
    hedge_pct: Option<f64>,
}

/// A query whose client was answered (or gave up) before this backend did.
struct Late {
    addr: SocketAddr,
    inflight: Option<InFlight>,
    deadline: Instant,
    hedge_pct: Option<f64>,
}

impl Late {
    /// Releases the query's in-flight count and feeds its backend's latency
    /// figures with how long it waited: until `now` (its answer came), but
    /// never past its deadline, however late this runs.
    fn settle(&mut self, now: Instant) {
        if let Some(f) = self.inflight.take() {
            f.settle(now, self.deadline, self.hedge_pct);
        }
    }
}

/// The queries of one socket: waiting ones, and recently abandoned ones
/// whose answer may still arrive (a hedge's loser, a query past its deadline).
#[derive(Default)]
struct Table {
    waiting: HashMap<u16, Waiter>,
    late: HashMap<u16, Late>,
}

impl Table {
    fn id_in_use(&self, id: u16) -> bool {
        self.waiting.contains_key(&id) || self.late.contains_key(&id)
    }

    /// Remembers an abandoned query until [`LATE_GRACE`] past its deadline
    /// (the sweeper forgets it then). Constant time: the table is never
    /// scanned here. When it already holds [`LATE_MAX`] queries (abandoned
    /// faster than they expire: a flood), this one is not remembered: its
    /// in-flight count is released at once, without a latency sample (it
    /// neither answered nor reached its deadline), and its answer, if it
    /// comes, is dropped as unexpected.
    fn abandon(&mut self, id: u16, now: Instant) {
        let Some(w) = self.waiting.remove(&id) else {
            return;
        };
        let mut late = Late {
            addr: w.addr,
            inflight: w.inflight,
            deadline: w.deadline,
            hedge_pct: w.hedge_pct,
        };
        if now >= late.deadline {
            // Given up at its deadline: no longer in flight.
            late.settle(now);
        } else if let Some(f) = late.inflight.as_mut() {
            // Answered by another backend: still silent at the deadline, a loss.
            f.rescued();
        }
        if self.late.len() < LATE_MAX {
            self.late.insert(id, late);
        }
        // Otherwise `late` is dropped here, and its in-flight count with it.
    }

    /// Settles the abandoned queries that reached their deadline and
    /// forgets those past the grace period.
    fn expire(&mut self, now: Instant) {
        self.late.retain(|_, l| {
            if now >= l.deadline {
                l.settle(now);
            }
            now < l.deadline + LATE_GRACE
        });
    }
}

/// How long after its deadline an abandoned query's answer is still
/// expected (and not taken for a forgery).
pub const LATE_GRACE: Duration = Duration::from_secs(3);
/// Abandoned queries remembered per socket.
pub const LATE_MAX: usize = 4096;

/// One pooled socket and the queries waiting on it.
struct PoolSocket {
    sock: UdpSocket,
    table: Mutex<Table>,
    uses: AtomicU64,
    /// Queries it sends before it is replaced (around [`ROTATE_AFTER`],
    /// drawn at random so that sockets do not all wear out together).
    budget: u64,
    /// Whether `table.late` may hold entries (read without the lock).
    has_late: AtomicBool,
    /// Stops the socket's reader (a child of the pool's token).
    stop: CancellationToken,
}

impl PoolSocket {
    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the maps inconsistent.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Settles and forgets what expired of its late queries, if it has any.
    fn sweep(&self, now: Instant) {
        if self.has_late.load(Relaxed) {
            let mut t = self.table();
            t.expire(now);
            self.has_late.store(!t.late.is_empty(), Relaxed);
        }
    }
}

/// Hash of a question section: the name without regard to ASCII case, then
/// type and class exactly (see [`crate::dns::same_question`]).
fn question_hash(q: &[u8]) -> u64 {
    let split = q.len().saturating_sub(4);
    let (name, tail) = q.split_at(split);
    name_hash(name) ^ name_hash(tail).rotate_left(17)
}

/// Removes a waiter when its exchange ends, however it ends.
struct WaitGuard<'a> {
    sock: &'a PoolSocket,
    id: u16,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        // Still waiting means nobody answered in time: its answer may yet come.
        let mut t = self.sock.table();
        if t.waiting.contains_key(&self.id) {
            t.abandon(self.id, Instant::now());
            self.sock.has_late.store(!t.late.is_empty(), Relaxed);
        }
    }
}

/// The sockets of one address family.
struct Family {
    unspecified: SocketAddr,
    slots: Vec<ArcSwapOption<PoolSocket>>,
}

/// Every socket of the pool: those in use, and the retired ones still
/// waiting for the answers to their last queries.
struct Sockets {
    v4: Family,
    v6: Family,
    retired: Mutex<Vec<Arc<PoolSocket>>>,
}

impl Sockets {
    fn retired(&self) -> MutexGuard<'_, Vec<Arc<PoolSocket>>> {
        // A panic while holding the lock cannot leave the list inconsistent.
        self.retired.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sockets in use.
    fn current(&self) -> impl Iterator<Item = Arc<PoolSocket>> + '_ {
        self.v4
            .slots
            .iter()
            .chain(&self.v6.slots)
            .filter_map(ArcSwapOption::load_full)
    }

    /// One sweep at `now`: settles the late queries that reached their
    /// deadline on every socket, and stops the retired sockets that have no
    /// query waiting or late any more.
    fn sweep(&self, now: Instant) {
        for ps in self.current() {
            ps.sweep(now);
        }
        self.retired().retain(|ps| {
            ps.sweep(now);
            // Read until no answer is expected: none waiting, none late.
            let done = {
                let t = ps.table();
                t.waiting.is_empty() && t.late.is_empty()
            };
            if done {
                ps.stop.cancel();
            }
            !done
        });
    }
}

/// Settles late queries every [`LATE_CHECK`], on a steady tick that traffic
/// does not delay, until `token` is cancelled.
async fn sweep_loop(sockets: Arc<Sockets>, token: CancellationToken) {
    let mut tick = tokio::time::interval(LATE_CHECK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => sockets.sweep(Instant::now()),
        }
    }
}

/// Abandoned queries a pool remembers, from [`UpstreamPool::late_entries`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LateEntries {
    /// On all the sockets in use.
    pub total: usize,
    /// On the socket that holds the most (never more than [`LATE_MAX`]).
    pub fullest: usize,
}

/// The upstream socket pool; its tasks (one reader per socket, one sweeper)
/// stop when it is shut down or dropped.
pub struct UpstreamPool {
    /// Reused TCP connections to the backends.
    pub tcp: super::upstream::TcpPool,
    sockets: Arc<Sockets>,
    drops: Arc<DropCounters>,
    token: CancellationToken,
    tracker: TaskTracker,
    /// Whether the sweeper task has been started (with the first socket).
    sweeping: AtomicBool,
}

impl UpstreamPool {
    /// An empty pool; sockets are bound on first use.
    pub fn new(drops: Arc<DropCounters>) -> Self {
        let family = |ip: SocketAddr| Family {
            unspecified: ip,
            slots: (0..POOL_SOCKETS).map(|_| ArcSwapOption::empty()).collect(),
        };
        UpstreamPool {
            tcp: super::upstream::TcpPool::new(drops.clone()),
            sockets: Arc::new(Sockets {
                v4: family((Ipv4Addr::UNSPECIFIED, 0).into()),
                v6: family((Ipv6Addr::UNSPECIFIED, 0).into()),
                retired: Mutex::new(Vec::new()),
            }),
            drops,
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
            sweeping: AtomicBool::new(false),
        }
    }

    /// How many abandoned queries the sockets in use remember now (whose
    /// answers may still come; see [`LATE_GRACE`]). A read-only look for
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

    /// The socket of a random slot, binding (or rotating) it when needed.
    async fn pick(&self, addr: SocketAddr) -> Result<Arc<PoolSocket>, UpstreamError> {
        let fam = if addr.is_ipv4() {
            &self.sockets.v4
        } else {
            &self.sockets.v6
        };
        let i = rand::random_range(0..fam.slots.len());
        let Some(slot) = fam.slots.get(i) else {
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
        let sock = match UdpSocket::bind(fam.unspecified).await {
            Ok(sock) => sock,
            Err(err) => return current.ok_or(err.into()),
        };
        let fresh = Arc::new(PoolSocket {
            sock,
            table: Mutex::new(Table::default()),
            uses: AtomicU64::new(1),
            budget: super::fast::wear_budget(ROTATE_AFTER, rand::random::<f64>()),
            has_late: AtomicBool::new(false),
            stop: self.token.child_token(),
        });
        if let Some(old) = slot.swap(Some(fresh.clone())) {
            // Its reader keeps going until the sweeper sees no query waiting
            // and no late answer expected.
            self.sockets.retired().push(old);
        }
        self.tracker
            .spawn(read_loop(fresh.clone(), self.drops.clone()));
        if !self.sweeping.swap(true, Relaxed) {
            self.tracker
                .spawn(sweep_loop(self.sockets.clone(), self.token.clone()));
        }
        Ok(fresh)
    }

    /// Sends `query` (whose question section ends at `question_end`) to
    /// `addr` with a fresh random ID and waits until `deadline` for the
    /// matching response. `query`'s ID is overwritten. `inflight` (the
    /// backend's in-flight count) is released when the answer comes, even
    /// after this call has been abandoned, or at the deadline; a late answer
    /// also feeds the backend's latency (and, with `hedge_pct`, its adaptive
    /// hedge delay).
    ///
    /// # Errors
    /// Timeout, a socket error, or no free ID on the chosen socket.
    pub async fn exchange(
        &self,
        addr: SocketAddr,
        query: &mut [u8],
        question_end: usize,
        deadline: Instant,
        inflight: Option<InFlight>,
        hedge_pct: Option<f64>,
    ) -> Result<Vec<u8>, UpstreamError> {
        let question = query.get(HEADER_LEN..question_end).unwrap_or_default();
        let (question_hash, question_len) = (question_hash(question), question.len());
        let ps = self.pick(addr).await?;
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut table = ps.table();
            let mut id = None;
            for _ in 0..16 {
                let candidate: u16 = rand::random();
                if !table.id_in_use(candidate) {
                    id = Some(candidate);
                    break;
                }
            }
            let id = id.ok_or(UpstreamError::Unusable)?;
            table.waiting.insert(
                id,
                Waiter {
                    addr,
                    question_hash,
                    question_len,
                    tx,
                    inflight,
                    deadline,
                    hedge_pct,
                },
            );
            id
        };
        let _guard = WaitGuard { sock: &ps, id };
        WireHeader::set_id(query, id);
        ps.sock.send_to(query, addr).await?;
        match timeout_at(deadline, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(UpstreamError::Unusable),
            Err(_) => Err(UpstreamError::Timeout),
        }
    }
}

impl Drop for UpstreamPool {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Reads one socket's responses and hands each to the query it answers,
/// until the socket's `stop` token is cancelled.
async fn read_loop(ps: Arc<PoolSocket>, drops: Arc<DropCounters>) {
    let mut slots = RecvBatch::with_slots(RECV_SLOTS);
    let mut backoff = Backoff::default();
    loop {
        tokio::select! {
            _ = ps.stop.cancelled() => return,
            r = ps.sock.readable() => if r.is_err() { continue },
        }
        let n = match slots.recv_ready(&ps.sock) {
            Ok(n) => {
                backoff.success();
                n
            }
            Err(_) => {
                // E.g. ICMP port unreachable from a dead backend: keep
                // reading, but do not spin if the error persists.
                if let Some(pause) = backoff.failure() {
                    tokio::select! {
                        _ = ps.stop.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
                continue;
            }
        };
        for i in 0..n {
            if let Some((resp, meta)) = slots.get(i)
                && let Some(from) = meta.src
            {
                // A response that filled its slot may have been cut short.
                deliver(&ps, resp, from, meta.truncated, &drops);
            }
        }
    }
}

/// Checks one datagram against the waiting queries (RFC 5452) and delivers it.
fn deliver(ps: &PoolSocket, resp: &[u8], from: SocketAddr, oversized: bool, drops: &DropCounters) {
    let Some(h) = WireHeader::read(resp) else {
        drops.wrong_question.fetch_add(1, Relaxed);
        return;
    };
    let mut table = ps.table();
    let Some(w) = table.waiting.get(&h.id) else {
        match table.late.get(&h.id) {
            Some(l) if l.addr == from => {
                if let Some(mut l) = table.late.remove(&h.id) {
                    l.settle(Instant::now());
                }
                drops.late.fetch_add(1, Relaxed);
            }
            _ => {
                drops.wrong_id.fetch_add(1, Relaxed);
            }
        }
        return;
    };
    if w.addr != from {
        drops.wrong_source.fetch_add(1, Relaxed);
        return;
    }
    let question = resp.get(HEADER_LEN..HEADER_LEN + w.question_len);
    // The same question, or none at all in an error answer (a server that
    // could not read the query; see `dns::answers_question`).
    let answers = h.is_response()
        && match h.qdcount {
            1 => question.map(question_hash) == Some(w.question_hash),
            0 => !matches!(h.rcode(), 0 | 3),
            _ => false,
        };
    if !answers {
        drops.wrong_question.fetch_add(1, Relaxed);
        return;
    }
    if let Some(w) = table.waiting.remove(&h.id) {
        drop(table);
        let mut resp = resp.to_vec();
        if oversized {
            // Cut short by its slot: a truncated answer (TC=1), which a
            // TCP client's query asks again of the backend over TCP.
            let _ = crate::dns::cut_to_truncated(&mut resp, w.question_len);
        }
        let _ = w.tx.send(resp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BackendConfig;
    use crate::ls::backend::Backend;

    const MS: Duration = Duration::from_millis(1);

    fn backend(addr: SocketAddr) -> Arc<Backend> {
        Arc::new(Backend::from_config(
            &BackendConfig {
                name: "b".into(),
                addr,
                weight: 1,
            },
            false,
        ))
    }

    /// Puts a waiting query for `b` with `deadline` into `t` under `id`;
    /// returns when it was sent.
    fn wait_on(t: &mut Table, id: u16, b: &Arc<Backend>, deadline: Duration) -> Instant {
        let f = b.begin();
        let sent = f.sent();
        let (tx, _rx) = oneshot::channel();
        t.waiting.insert(
            id,
            Waiter {
                addr: b.addr,
                question_hash: 0,
                question_len: 0,
                tx,
                inflight: Some(f),
                deadline: sent + deadline,
                hedge_pct: Some(95.0),
            },
        );
        sent
    }

    fn outstanding(b: &Backend) -> u32 {
        b.stats.outstanding.load(Relaxed)
    }

    fn samples(b: &Backend) -> u64 {
        b.stats.latency.snapshot().count
    }

    #[test]
    fn question_hash_ignores_name_case_only() {
        let a = b"\x03WwW\x07example\x03com\x00\x00\x01\x00\x01";
        let b = b"\x03www\x07EXAMPLE\x03com\x00\x00\x01\x00\x01";
        let c = b"\x03www\x07example\x03com\x00\x00\x1c\x00\x01";
        assert_eq!(question_hash(a), question_hash(b));
        assert_ne!(question_hash(a), question_hash(c));
    }

    #[test]
    fn an_abandoned_query_is_settled_at_its_deadline_with_the_deadline_as_its_sample() {
        let b = backend("127.0.0.1:53".parse().unwrap());
        let mut t = Table::default();
        let sent = wait_on(&mut t, 7, &b, 300 * MS);
        t.abandon(7, sent + 10 * MS);
        assert_eq!((t.late.len(), outstanding(&b), samples(&b)), (1, 1, 0));
        t.expire(sent + 299 * MS);
        assert_eq!(
            (outstanding(&b), samples(&b)),
            (1, 0),
            "before its deadline"
        );
        // A sweep that runs long after the deadline still records 300 ms.
        t.expire(sent + 2_000 * MS);
        assert_eq!((outstanding(&b), samples(&b)), (0, 1));
        assert_eq!(b.stats.latency_us.load(Relaxed), 300_000);
        // Remembered until the grace period ends (so its answer counts as late)...
        assert!(t.late.contains_key(&7));
        t.expire(sent + 300 * MS + LATE_GRACE);
        // ...then forgotten.
        assert!(t.late.is_empty());
        assert_eq!(samples(&b), 1);
    }

    #[test]
    fn deadline_samples_feed_the_adaptive_hedge_delay_capped_too() {
        let b = backend("127.0.0.1:53".parse().unwrap());
        let mut t = Table::default();
        let mut last = Instant::now();
        for id in 0..crate::ls::hedge::MIN_SAMPLES as u16 {
            let sent = wait_on(&mut t, id, &b, 300 * MS);
            t.abandon(id, sent + MS);
            last = sent;
        }
        t.expire(last + 10_000 * MS);
        let p95 = b.hedge.percentile().unwrap();
        // 300 ms, within the window's two significant figures.
        assert!(p95 >= 299 * MS && p95 <= 302 * MS, "{p95:?}");
    }

    #[test]
    fn a_query_abandoned_after_its_deadline_is_settled_at_the_deadline() {
        let b = backend("127.0.0.1:53".parse().unwrap());
        let mut t = Table::default();
        let sent = wait_on(&mut t, 7, &b, 300 * MS);
        t.abandon(7, sent + 900 * MS);
        assert_eq!((outstanding(&b), samples(&b)), (0, 1));
        assert_eq!(b.stats.latency_us.load(Relaxed), 300_000);
        assert!(t.late.contains_key(&7), "its answer may still come");
    }

    #[test]
    fn a_late_answer_before_the_deadline_records_its_own_latency() {
        let b = backend("127.0.0.1:53".parse().unwrap());
        let mut t = Table::default();
        let sent = wait_on(&mut t, 7, &b, 300 * MS);
        t.abandon(7, sent + 10 * MS);
        let mut l = t.late.remove(&7).unwrap();
        l.settle(sent + 42 * MS);
        assert_eq!((outstanding(&b), samples(&b)), (0, 1));
        assert_eq!(b.stats.latency_us.load(Relaxed), 42_000);
        // Settling twice records nothing more.
        l.settle(sent + 50 * MS);
        assert_eq!(samples(&b), 1);
    }

    #[test]
    fn a_full_table_is_not_scanned_and_releases_the_newcomer_without_a_sample() {
        let old = backend("127.0.0.1:53".parse().unwrap());
        let new = backend("127.0.0.1:54".parse().unwrap());
        let mut t = Table::default();
        for id in 0..LATE_MAX {
            let id = u16::try_from(id).unwrap();
            let sent = wait_on(&mut t, id, &old, 100 * MS);
            t.abandon(id, sent);
        }
        // Abandoned before its deadline: released, but no sample (it has
        // neither answered nor waited its full time).
        let early = u16::try_from(LATE_MAX).unwrap();
        let early_sent = wait_on(&mut t, early, &new, 100 * MS);
        t.abandon(early, early_sent + 50 * MS);
        assert_eq!((outstanding(&new), samples(&new)), (0, 0));
        // Abandoned at its deadline: settled there, as always.
        let timed_out = early + 1;
        let timed_out_sent = wait_on(&mut t, timed_out, &new, 100 * MS);
        t.abandon(timed_out, timed_out_sent + 200 * MS);
        assert_eq!((outstanding(&new), samples(&new)), (0, 1));
        assert_eq!(new.stats.latency_us.load(Relaxed), 100_000);
        // Neither is remembered, and the remembered ones, all past their
        // deadline by now, were not swept: that is the sweeper's job.
        assert_eq!(t.late.len(), LATE_MAX);
        assert!(!t.late.contains_key(&early) && !t.late.contains_key(&timed_out));
        assert_eq!(outstanding(&old), u32::try_from(LATE_MAX).unwrap());
        assert_eq!(samples(&old), 0);
    }

    /// A query for `www.test. A` with ID 0, and where its question ends.
    fn wire_query() -> (Vec<u8>, usize) {
        let mut q = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x03www\x04test\x00\x00\x01\x00\x01");
        let end = q.len();
        (q, end)
    }

    /// The steady tick, over real sockets: queries abandoned on sockets that
    /// keep receiving datagrams (every 10 ms, well under [`LATE_CHECK`]) are
    /// still settled soon after their deadline, each with a sample capped at
    /// the deadline. A timer reset by every datagram would never fire here.
    #[tokio::test]
    async fn late_queries_expire_on_a_steady_tick_however_busy_their_socket() {
        const QUERIES: usize = 8;
        const DEADLINE: Duration = Duration::from_millis(300);
        // Reads nothing, answers nothing.
        let blackhole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = backend(blackhole.local_addr().unwrap());
        let drops = Arc::new(DropCounters::default());
        let pool = UpstreamPool::new(drops.clone());
        let start = Instant::now();
        let deadline = start + DEADLINE;
        let abandoned = (0..QUERIES).map(|_| {
            let (pool, b) = (&pool, &b);
            async move {
                let (mut q, end) = wire_query();
                let exchange = pool.exchange(b.addr, &mut q, end, deadline, Some(b.begin()), None);
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
        // Each sample is the time waited up to the deadline, not the time of the sweep.
        let lat = b.stats.latency.snapshot();
        assert_eq!(lat.count, QUERIES as u64);
        assert!(b.stats.latency_us.load(Relaxed) <= 300_000);
        assert!(lat.sum_us <= QUERIES as u64 * 300_000);
        // Still remembered for their grace period (a late answer is `late`, not forged).
        assert_eq!(pool.late_entries().total, QUERIES);
        assert_eq!(drops.late.load(Relaxed), 0);
        pool.shutdown().await;
    }
}
