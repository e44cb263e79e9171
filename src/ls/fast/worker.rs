//! A fast-path worker's state: its client socket, its upstream sockets
//! (opened here, each on a port the kernel picks, answers timed by their
//! arrival), its flights, late entries and timers, the send queues of a
//! round, and the free list of byte buffers it reuses. The loop that drives
//! it is in the parent module; `forward` and `timers` add what it does.
use std::sync::Arc;

use tokio::net::UdpSocket;
use tracing::debug;

use super::flight::{Delayed, Flight, Late, Slab, Timers};
use crate::guard::fair::Holders;
use crate::ls::balancer::Balancer;
use crate::ls::upstream::ROTATE_AFTER;
use crate::ls::upstream::sockets::{self, Family, Sockets};
use crate::server::batch::{self, SendQueue};

/// Upstream sockets per worker and address family: log2 of it is the
/// source-port entropy a query gets on top of its random ID.
pub const UPSTREAM_SOCKETS: usize = 8;
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
}

impl Worker {
    /// A worker serving `client`, its metrics registered, receive
    /// timestamps asked for, and [`UPSTREAM_SOCKETS`] upstream sockets per
    /// family opened (one that cannot be opened is logged and left out).
    pub(super) fn new(balancer: Arc<Balancer>, client: Arc<UdpSocket>, max_flights: usize) -> Self {
        let mut w = Worker {
            balancer,
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
}
