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
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::backend::InFlight;
use super::order::name_hash;
use super::upstream::{DropCounters, UpstreamError};
use crate::dns::{HEADER_LEN, WireHeader};

/// Sockets per address family.
pub const POOL_SOCKETS: usize = 64;
/// Queries one socket sends before it is replaced by one on a new port.
pub const ROTATE_AFTER: u64 = 20_000;
/// Largest UDP response read from a backend; one that fills it is not trusted.
const RECV_BUFFER: usize = 4096;
/// How often a retired socket checks whether its last query has ended.
const RETIRE_CHECK: Duration = Duration::from_millis(500);
/// How often abandoned queries are checked against their deadline.
const LATE_CHECK: Duration = Duration::from_millis(100);

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
    /// Feeds the backend's latency figures with what this query took (or
    /// has taken so far, at its deadline) and releases its in-flight count.
    fn settle(&mut self) {
        if let Some(f) = self.inflight.take() {
            let rtt = f.elapsed();
            f.backend().observe_latency(rtt);
            if let Some(pct) = self.hedge_pct {
                f.backend().hedge.observe(rtt, pct);
            }
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

    /// Remembers an abandoned query until [`LATE_GRACE`] past its deadline;
    /// bounded by [`LATE_MAX`].
    fn abandon(&mut self, id: u16) {
        let Some(w) = self.waiting.remove(&id) else {
            return;
        };
        let mut late = Late {
            addr: w.addr,
            inflight: w.inflight,
            deadline: w.deadline,
            hedge_pct: w.hedge_pct,
        };
        let now = Instant::now();
        if now >= late.deadline {
            // Given up at its deadline: no longer in flight.
            late.settle();
        }
        if self.late.len() >= LATE_MAX {
            self.expire(now);
        }
        if self.late.len() < LATE_MAX {
            self.late.insert(id, late);
        } else {
            late.settle();
        }
    }

    /// Settles the abandoned queries past their deadline and forgets those
    /// past the grace period.
    fn expire(&mut self, now: Instant) {
        self.late.retain(|_, l| {
            if now >= l.deadline {
                l.settle();
            }
            now < l.deadline + LATE_GRACE
        });
    }
}

/// How long after its deadline an abandoned query's answer is still
/// expected (and not taken for a forgery).
const LATE_GRACE: Duration = Duration::from_secs(3);
/// Abandoned queries remembered per socket.
const LATE_MAX: usize = 4096;

/// One pooled socket and the queries waiting on it.
struct PoolSocket {
    sock: UdpSocket,
    table: Mutex<Table>,
    uses: AtomicU64,
    retired: AtomicBool,
    /// Whether `table.late` may hold entries (read without the lock).
    has_late: AtomicBool,
}

impl PoolSocket {
    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the maps inconsistent.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
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
            t.abandon(self.id);
            self.sock.has_late.store(true, Relaxed);
        }
    }
}

/// The sockets of one address family.
struct Family {
    unspecified: SocketAddr,
    slots: Vec<ArcSwapOption<PoolSocket>>,
}

/// The upstream socket pool; its reader tasks stop when it is shut down or dropped.
pub struct UpstreamPool {
    v4: Family,
    v6: Family,
    drops: Arc<DropCounters>,
    token: CancellationToken,
    tracker: TaskTracker,
}

impl UpstreamPool {
    /// An empty pool; sockets are bound on first use.
    pub fn new(drops: Arc<DropCounters>) -> Self {
        let family = |ip: SocketAddr| Family {
            unspecified: ip,
            slots: (0..POOL_SOCKETS).map(|_| ArcSwapOption::empty()).collect(),
        };
        UpstreamPool {
            v4: family((Ipv4Addr::UNSPECIFIED, 0).into()),
            v6: family((Ipv6Addr::UNSPECIFIED, 0).into()),
            drops,
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }

    /// Stops every reader task and waits for them.
    pub async fn shutdown(&self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// The socket of a random slot, binding (or rotating) it when needed.
    async fn pick(&self, addr: SocketAddr) -> Result<Arc<PoolSocket>, UpstreamError> {
        let fam = if addr.is_ipv4() { &self.v4 } else { &self.v6 };
        let i = rand::random_range(0..fam.slots.len());
        let Some(slot) = fam.slots.get(i) else {
            return Err(UpstreamError::Unusable);
        };
        if let Some(s) = slot.load_full()
            && s.uses.fetch_add(1, Relaxed) < ROTATE_AFTER
        {
            return Ok(s);
        }
        // Empty, or worn out: a new socket on a new random port.
        let fresh = Arc::new(PoolSocket {
            sock: UdpSocket::bind(fam.unspecified).await?,
            table: Mutex::new(Table::default()),
            uses: AtomicU64::new(1),
            retired: AtomicBool::new(false),
            has_late: AtomicBool::new(false),
        });
        if let Some(old) = slot.swap(Some(fresh.clone())) {
            old.retired.store(true, Relaxed);
        }
        self.tracker.spawn(read_loop(
            fresh.clone(),
            self.drops.clone(),
            self.token.clone(),
        ));
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

/// Reads one socket's responses and hands each to the query it answers.
async fn read_loop(ps: Arc<PoolSocket>, drops: Arc<DropCounters>, token: CancellationToken) {
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let (n, from) = tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(LATE_CHECK), if ps.has_late.load(Relaxed) => {
                let mut t = ps.table();
                t.expire(Instant::now());
                ps.has_late.store(!t.late.is_empty(), Relaxed);
                continue;
            }
            _ = tokio::time::sleep(RETIRE_CHECK), if ps.retired.load(Relaxed) => {
                if ps.table().waiting.is_empty() {
                    return;
                }
                continue;
            }
            r = ps.sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(_) => continue, // e.g. ICMP port unreachable from a dead backend
            },
        };
        let Some(resp) = buf.get(..n) else { continue };
        deliver(&ps, resp, from, n == buf.len(), &drops);
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
                    l.settle();
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
    if !h.is_response() || h.qdcount != 1 || question.map(question_hash) != Some(w.question_hash) {
        drops.wrong_question.fetch_add(1, Relaxed);
        return;
    }
    if let Some(w) = table.waiting.remove(&h.id) {
        drop(table);
        if oversized {
            // May have been cut short: the exchange fails rather than trust it.
            drop(w.tx);
        } else {
            let _ = w.tx.send(resp.to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_hash_ignores_name_case_only() {
        let a = b"\x03WwW\x07example\x03com\x00\x00\x01\x00\x01";
        let b = b"\x03www\x07EXAMPLE\x03com\x00\x00\x01\x00\x01";
        let c = b"\x03www\x07example\x03com\x00\x00\x1c\x00\x01";
        assert_eq!(question_hash(a), question_hash(b));
        assert_ne!(question_hash(a), question_hash(c));
    }
}
