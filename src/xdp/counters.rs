//! What the XDP path did, for `/metrics`: the frames its workers took and
//! what became of each, and the XDP program's own counters (copied from its
//! per-CPU map about once a second).
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::frame::Skip;

/// Counters shared by the workers of one server and its metrics.
#[derive(Debug, Default)]
pub struct XdpCounters {
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
    /// The program's: datagrams handed to a socket.
    pub program_to_user: AtomicU64,
    /// The program's: datagrams of blocked clients dropped.
    pub program_blocked: AtomicU64,
    /// The program's: datagrams passed to the kernel, no socket on their queue.
    pub program_no_socket: AtomicU64,
    /// The program's: datagrams of clients outside the allowed networks dropped.
    pub program_not_allowed: AtomicU64,
}

impl XdpCounters {
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
