//! The LS's counters: the whole LS's ([`LsMetrics`]), a pool's
//! ([`PoolMetrics`]), and answers counted by their full rcode
//! ([`RcodeCounts`]). Kept across reloads; read by `/metrics` and the status
//! page.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::dns::{self, WireHeader};
use crate::ls::latency::LatencyHistogram;
use crate::ls::upstream::DropCounters;
use crate::server::Reply;

/// Slots of a counter of answers by rcode: every rcode from 0 to 23
/// (BADCOOKIE) by its full value, and [`OTHER_RCODE`] for any above.
pub const RCODE_SLOTS: usize = 25;

/// The slot of an answers-by-rcode counter that counts every rcode above 23.
pub const OTHER_RCODE: usize = RCODE_SLOTS - 1;

/// Answers counted by rcode, one slot per [`RCODE_SLOTS`].
pub type RcodeCounts = [AtomicU64; RCODE_SLOTS];

/// The full rcode of the message `msg` (RFC 6891 §6.1.3): the header's 4
/// bits, and the upper 8 from its OPT's TTL field when it has an OPT (only
/// an answer with additional records is walked). `None` when the header
/// cannot be read.
pub fn full_rcode(msg: &[u8]) -> Option<u16> {
    let low = u16::from(WireHeader::read(msg)?.rcode());
    if dns::u16_at(msg, 10).is_none_or(|ar| ar == 0) {
        return Some(low);
    }
    let high = dns::walk_message(msg)
        .and_then(|w| w.opt)
        .and_then(|opt| opt.ttl_high_byte(msg))
        .unwrap_or(0);
    Some(u16::from(high) << 4 | low)
}

/// Counts the answer `msg` in `answers` by its full rcode.
pub(crate) fn count_answer(answers: &RcodeCounts, msg: &[u8]) {
    if let Some(rcode) = full_rcode(msg) {
        let slot = usize::from(rcode).min(OTHER_RCODE);
        if let Some(c) = answers.get(slot) {
            c.fetch_add(1, Relaxed);
        }
    }
}

/// Counts `reply` in `answers` by its full rcode.
fn count_rcode(answers: &RcodeCounts, reply: &Reply) {
    if let Reply::One(b) = reply {
        count_answer(answers, b);
    }
}

/// Counters of one pool (`[[ls.pool]]`), kept across reloads while a pool of
/// that name exists.
#[derive(Debug, Default)]
pub struct PoolMetrics {
    /// Client queries routed to the pool.
    pub queries: AtomicU64,
    /// Answers sent to those queries, by full rcode ([`RCODE_SLOTS`]).
    pub answers: RcodeCounts,
    /// Of those queries, answered fresh from the pool's cache.
    pub cache_hits: AtomicU64,
    /// Of those queries, looked up in the pool's cache and forwarded.
    pub cache_misses: AtomicU64,
    /// Of those queries, answered stale from the pool's cache.
    pub cache_stale: AtomicU64,
}

impl PoolMetrics {
    /// Counts a reply by its rcode.
    pub(crate) fn count_reply(&self, reply: &Reply) {
        count_rcode(&self.answers, reply);
    }
}

/// Counters of the LS as a whole.
#[derive(Debug, Default)]
pub struct LsMetrics {
    /// Client queries received (well-formed).
    pub queries: AtomicU64,
    /// Answers sent, by full rcode ([`RCODE_SLOTS`]).
    pub answers: RcodeCounts,
    /// Answers made up at the deadline or after every backend failed.
    pub synthesized: AtomicU64,
    /// Hedges sent after the hedge delay.
    pub hedges: AtomicU64,
    /// Hedges whose answer won.
    pub hedge_wins: AtomicU64,
    /// Hedges not sent because the budget was spent.
    pub hedges_refused: AtomicU64,
    /// Queries refused by the ACL.
    pub refused_acl: AtomicU64,
    /// Queries over the rate limit: dropped, or answered TC=1.
    pub rate_limited: AtomicU64,
    /// Queries refused because they carried this LS's own mark: they went
    /// round a forwarding loop ([`super::loopmark`]).
    pub loops_refused: AtomicU64,
    /// Health probe rounds completed.
    pub health_rounds: AtomicU64,
    /// Reloads (SIGHUP) whose `[ls]` was applied.
    pub reloads_applied: AtomicU64,
    /// Reloads refused (a bad config, or no `[ls]` in it): the old one serves on.
    pub reloads_refused: AtomicU64,
    /// Time from a client query's arrival to its answer (deferred answers).
    pub client_latency: LatencyHistogram,
    /// Upstream responses dropped as not matching.
    pub drops: Arc<DropCounters>,
    /// Client queries shed unanswered: they waited in the socket's queue
    /// longer than the LS's queue bound (overload).
    pub shed_queue: AtomicU64,
    /// Client queries shed with SERVFAIL: `max_inflight` reached.
    pub shed_inflight: AtomicU64,
    /// Client queries shed with SERVFAIL: no backend of their route with
    /// room under its adaptive concurrency limit ([`limit`]), or every one
    /// failed with an encrypted link among them full.
    pub shed_limit: AtomicU64,
    /// Plain TCP connections closed right after `accept`: the connection cap was full.
    pub tcp_cap_refused: AtomicU64,
    /// Plain TCP connections closed right after `accept`: the cap was
    /// contended and their source held its share of it.
    pub tcp_share_refused: AtomicU64,
    /// Plain TCP connections closed right after `accept`: the client is outside `allow`.
    pub tcp_acl_refused: AtomicU64,
    /// The UDP workers' client sockets (inodes): the queries the kernel
    /// dropped on them, their queues full, are shed too ([`LsMetrics::shed_socket`]).
    pub client_sockets: std::sync::Mutex<Vec<u64>>,
    /// The encrypted listeners' counters, set when `[ls.tls]` or `[ls.https]` is served.
    pub tls: std::sync::OnceLock<Arc<crate::server::tls_stats::TlsStats>>,
    /// DNS over QUIC's counters, set when `[ls.quic]` is served.
    pub doq: std::sync::OnceLock<Arc<crate::server::doq::DoqStats>>,
    /// DNS over HTTP/3's counters, set when `[ls.https]` serves `http3`.
    pub doh3: std::sync::OnceLock<Arc<crate::server::doh3::Doh3Stats>>,
    /// dnstap of the client and forwarder messages, set when `[ls.dnstap]`
    /// is on (`ls::tap` reads it on both drivers).
    pub dnstap: std::sync::OnceLock<crate::dnstap::Dnstap>,
    /// The AF_XDP path (`[ls.xdp]`), when on.
    pub xdp: Arc<crate::xdp::XdpCounters>,
}

impl LsMetrics {
    /// Client queries the kernel dropped before a worker could read them,
    /// its socket's queue full: overload that never reached the LS, read
    /// from the kernel's counters now.
    pub fn shed_socket(&self) -> u64 {
        let inodes = self
            .client_sockets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        crate::server::socket::udp_drops(&inodes)
    }

    /// Counts a forwarded query's reply (by rcode) and its latency.
    pub(crate) fn answered(&self, reply: &Reply, arrived: std::time::Instant) {
        self.answered_after(reply, arrived.elapsed());
    }

    /// [`LsMetrics::answered`] of a reply that took `took` (the caller's
    /// clock: no clock read here).
    pub(crate) fn answered_after(&self, reply: &Reply, took: Duration) {
        self.count_reply(reply);
        self.client_latency.record(took);
    }

    /// Counts a reply by its rcode.
    pub(crate) fn count_reply(&self, reply: &Reply) {
        count_rcode(&self.answers, reply);
    }
}
