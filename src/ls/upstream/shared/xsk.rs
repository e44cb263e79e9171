//! The pool's queries to backends behind the XDP interfaces, sent by the
//! XDP workers (`[ls.xdp] upstream = "xdp"`): [`XskLane`], the pool's side
//! of [`crate::xdp::upstream`].
//!
//! The queries leave from a few sockets of the pool's own kind
//! ([`SharedSocket`]: an ID table, late entries, a reader), each bound to
//! the address the kernel's route gives as the source (one the XDP
//! interface holds) on a port the kernel picks at random: the socket keeps
//! the port the program serves for the workers, and reads what the program
//! passes to the kernel. A worker writes the query in a frame from that
//! address and port; the backend's answer comes to a worker, which hands it
//! here ([`UpstreamLink::deliver`]) to be judged on its socket exactly as a
//! datagram the socket read (RFC 5452: ID, source, question; counted in the
//! same [`DropCounters`]). Timeouts, hedging, late entries and in-flight
//! counts are the pool's own code paths: only the way out differs.
//!
//! Forwarding safety: [`XSK_PORTS`] sockets per source address, one drawn
//! at random per query, each replaced on a new random port after about
//! [`ROTATE_AFTER`] queries, random IDs: the pool's rules, over fewer ports
//! than its [`super::SHARED_SOCKETS`] (the program serves a few dozen
//! addresses at most).
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::socket::SharedSocket;
use crate::ls::upstream::sockets::open_at;
use crate::ls::upstream::{DropCounters, UpstreamError};
use crate::server::batch::{Peer, send_some};
use crate::xdp::route::XskPath;
use crate::xdp::upstream::{UpstreamLink, XskUpstream};

/// Sockets (ports) per source address.
pub const XSK_PORTS: usize = 16;

/// The pool's queries through the XDP workers; see the module's header.
pub struct XskLane {
    up: Arc<XskUpstream>,
    /// The sockets in use, by source address ([`XSK_PORTS`] slots each).
    slots: Mutex<HashMap<IpAddr, Vec<Option<Arc<SharedSocket>>>>>,
    /// Replaced sockets still waiting for answers to their last queries.
    retired: Mutex<Vec<Arc<SharedSocket>>>,
    /// Every socket open (in use or retired), by its address: where a
    /// worker's datagram to that address is judged.
    by_addr: ArcSwap<HashMap<SocketAddr, Arc<SharedSocket>>>,
    /// Each socket's address with the version of the reply addresses that
    /// first held it: its queries go through a worker once the programs
    /// serve that version (before, its answers would reach the kernel).
    ready_at: ArcSwap<HashMap<SocketAddr, u64>>,
    /// Held while the maps above are made anew, one maker at a time (the
    /// last made holds every socket open).
    publishing: Mutex<()>,
    drops: Arc<DropCounters>,
    /// The pool's token (each socket's reader stops with a child of it).
    token: CancellationToken,
    tracker: TaskTracker,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl XskLane {
    /// A lane over `up`, its sockets' readers under `token` and `tracker`
    /// (the pool's).
    pub(super) fn new(
        up: Arc<XskUpstream>,
        drops: Arc<DropCounters>,
        token: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        XskLane {
            up,
            slots: Mutex::new(HashMap::new()),
            retired: Mutex::new(Vec::new()),
            by_addr: ArcSwap::default(),
            ready_at: ArcSwap::default(),
            publishing: Mutex::new(()),
            drops,
            token,
            tracker,
        }
    }

    /// How a worker reaches `backend`, if one does.
    pub(super) fn path(&self, backend: SocketAddr) -> Option<XskPath> {
        self.up.path(backend.ip())
    }

    /// One query went through a kernel socket instead.
    pub(super) fn count_sockets(&self) {
        self.up.counters.upstream_sockets.fetch_add(1, Relaxed);
    }

    /// The socket of a random slot of source `src`, opening (or rotating)
    /// it when needed; true when it is new (its reader is the caller's to
    /// start).
    ///
    /// # Errors
    /// No socket could be bound to `src` (and the slot had none).
    pub(super) fn pick(&self, src: IpAddr) -> Result<(Arc<SharedSocket>, bool), UpstreamError> {
        let fresh = {
            let mut slots = locked(&self.slots);
            let all = slots.entry(src).or_insert_with(|| vec![None; XSK_PORTS]);
            let i = rand::random_range(0..all.len());
            let Some(slot) = all.get_mut(i) else {
                return Err(UpstreamError::Unusable);
            };
            if let Some(s) = slot.as_ref()
                && s.uses.fetch_add(1, Relaxed) < s.budget
            {
                return Ok((s.clone(), false));
            }
            // Empty, or worn out: a new socket on a new random port; a worn
            // one that cannot be replaced keeps serving.
            let sock = match open_at(SocketAddr::new(src, 0)) {
                Ok(sock) => sock,
                Err(err) => return slot.clone().map(|s| (s, false)).ok_or(err.into()),
            };
            let fresh = Arc::new(SharedSocket::fresh(sock, &self.token, &self.tracker, false));
            if let Some(old) = slot.replace(fresh.clone()) {
                locked(&self.retired).push(old);
            }
            fresh
        };
        self.publish();
        Ok((fresh, true))
    }

    /// Sends `query` (its ID set, waiting on `ps`) to `to` through a worker
    /// over `path`, or through `ps` itself (counted) when the programs do
    /// not serve its address yet or no worker takes it.
    ///
    /// # Errors
    /// The socket's, when it sends.
    pub(super) async fn send(
        &self,
        path: &XskPath,
        ps: &SharedSocket,
        to: SocketAddr,
        query: &[u8],
    ) -> Result<(), UpstreamError> {
        let served = self.up.served_version();
        if let Some(from) = ps.local
            && self
                .ready_at
                .load()
                .get(&from)
                .is_some_and(|v| *v <= served)
            && self
                .up
                .send(path, from, to, crate::server::recycle::copy_of(query))
                .map_err(crate::server::recycle::give)
                .is_ok()
        {
            return Ok(());
        }
        self.count_sockets();
        ps.sock.send_to(query, to).await?;
        Ok(())
    }

    /// Settles the late queries at `now` on every socket, and closes the
    /// retired ones that expect no more answers.
    pub(super) fn sweep(&self, now: Instant) {
        let current = self.current();
        for ps in current {
            ps.sweep(now);
        }
        let before = locked(&self.retired).len();
        locked(&self.retired).retain(|ps| !ps.sweep_retired(now));
        if locked(&self.retired).len() != before {
            self.publish();
        }
    }

    /// The sockets in use (not the retired ones).
    fn current(&self) -> Vec<Arc<SharedSocket>> {
        let slots = locked(&self.slots);
        slots.values().flatten().flatten().cloned().collect()
    }

    /// The sockets open, by address, made the ones workers deliver to and
    /// the program serves.
    fn publish(&self) {
        let _one = locked(&self.publishing);
        let mut all: HashMap<SocketAddr, Arc<SharedSocket>> = HashMap::new();
        let current = self.current();
        let retired = locked(&self.retired).clone();
        for ps in current.into_iter().chain(retired) {
            if let Some(a) = ps.local {
                all.insert(a, ps);
            }
        }
        let mut addrs: Vec<SocketAddr> = all.keys().copied().collect();
        addrs.sort();
        self.by_addr.store(Arc::new(all));
        let version = self.up.set_reply_addrs(addrs.clone());
        let before = self.ready_at.load();
        let ready = (addrs.into_iter())
            .map(|a| (a, before.get(&a).copied().unwrap_or(version)))
            .collect();
        self.ready_at.store(Arc::new(ready));
    }
}

impl UpstreamLink for XskLane {
    fn deliver(&self, to: SocketAddr, from: SocketAddr, payload: &[u8]) -> bool {
        let all = self.by_addr.load();
        let Some(ps) = all.get(&to) else {
            return false;
        };
        ps.deliver(payload, from, false, &self.drops);
        true
    }

    fn send_by_socket(&self, from: SocketAddr, to: SocketAddr, payload: &[u8]) {
        let all = self.by_addr.load();
        if let Some(ps) = all.get(&from) {
            // Not sent (the socket's buffer full): lost, as on the wire; its
            // query times out.
            let _ = send_some(&ps.sock, &[(payload.to_vec(), Peer::from(to))]);
        }
    }
}
