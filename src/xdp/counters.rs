//! What the XDP path did, for `/metrics`: the frames its workers took and
//! what became of each, and the XDP program's own counters (copied from its
//! per-CPU map about once a second).
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use super::frame::Skip;

/// Counters shared by the workers of one server and its metrics.
#[derive(Debug, Default)]
pub struct XdpCounters {
    /// Whether the XDP path ever started (its families are written from
    /// then on, 0 sockets included: an interface gone shows as such).
    pub started: AtomicBool,
    /// AF_XDP sockets serving (queues, all interfaces).
    pub sockets: AtomicU64,
    /// Answers sent back through the AF_XDP socket.
    pub answered: AtomicU64,
    /// Answers sent through the kernel's socket instead: larger than the
    /// interface's MTU (the kernel fragments them), or answered later.
    pub via_kernel: AtomicU64,
    /// Frames with no answer: the handler dropped the query.
    pub unanswered: AtomicU64,
    /// Frames not read as a datagram to serve, by [`Skip::ALL`] order.
    pub skipped: [AtomicU64; Skip::ALL.len()],
    /// Handed to a socket by the program, dropped by the kernel: its
    /// receive ring was full (the workers behind).
    pub lost_rx_ring_full: AtomicU64,
    /// The same: no free frame in its fill ring.
    pub lost_fill_ring_empty: AtomicU64,
    /// The same, for other reasons (the socket's `rx_dropped`, which
    /// counts the fill ring's too, less those).
    pub lost_rx_dropped: AtomicU64,
    /// Whether the server's queries to its backends may go through the
    /// AF_XDP sockets (`upstream_*` written from then on).
    pub upstream_on: AtomicBool,
    /// The server's queries to its backends sent in a frame of an AF_XDP socket.
    pub upstream_xsk: AtomicU64,
    /// The same queries sent through a kernel socket: a backend the route and
    /// neighbour tables do not put behind an XDP interface, or no room on the
    /// way to a worker or in its socket.
    pub upstream_sockets: AtomicU64,
    /// Datagrams to the addresses the server's queries leave from, taken by
    /// the workers for the server to judge as its backends' answers.
    pub upstream_answers: AtomicU64,
    /// The program's: datagrams handed to a socket.
    pub program_to_user: AtomicU64,
    /// The program's: datagrams of blocked clients dropped.
    pub program_blocked: AtomicU64,
    /// The program's: datagrams passed to the kernel, no socket on their queue.
    pub program_no_socket: AtomicU64,
    /// The program's: datagrams of clients outside the allowed networks dropped.
    pub program_not_allowed: AtomicU64,
}

/// One socket's drops, as the kernel counts them (`XDP_STATISTICS`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    /// Its receive ring was full.
    pub rx_ring_full: u64,
    /// Its fill ring was empty.
    pub fill_ring_empty: u64,
    /// Dropped for other reasons.
    pub rx_dropped: u64,
}

impl XdpCounters {
    /// A socket's drops now `now`, `before` at the last call: the
    /// difference added (a count that went back adds nothing).
    pub fn add_lost(&self, before: Lost, now: Lost) {
        let more = |b: u64, n: u64| n.saturating_sub(b);
        (self.lost_rx_ring_full).fetch_add(more(before.rx_ring_full, now.rx_ring_full), Relaxed);
        (self.lost_fill_ring_empty)
            .fetch_add(more(before.fill_ring_empty, now.fill_ring_empty), Relaxed);
        (self.lost_rx_dropped).fetch_add(more(before.rx_dropped, now.rx_dropped), Relaxed);
    }

    /// One more frame skipped, for `why`.
    pub fn skip(&self, why: Skip) {
        if let Some(c) = Skip::ALL
            .iter()
            .position(|s| *s == why)
            .and_then(|i| self.skipped.get(i))
        {
            c.fetch_add(1, Relaxed);
        }
    }
}
