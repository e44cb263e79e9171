//! The upstream core: what both LS drivers use to ask a backend and to judge
//! its answer. The drivers are [`super::fast`] (the UDP fast path: one
//! worker per client socket, sync, no allocation per query) and
//! [`super::pool`] (async: TCP clients' queries and health probes); they
//! own their waiting and timing, the rules live here, once:
//!
//! - [`accept`]: the RFC 5452 check of a response against the query it
//!   answers (ID, source, question), one [`Reject`] per reason, counted in
//!   [`DropCounters`] the same on every path (UDP fast path, async pool,
//!   TCP connections).
//! - [`ids`]: which IDs are in use on an upstream socket ([`ids::Ids`]),
//!   and the late entry ([`ids::Late`]) of a query whose asker stopped
//!   waiting: settled at its deadline, its answer counted `late` (not as a
//!   forgery) until [`LATE_GRACE`] past it.
//! - [`sockets`]: opening an upstream UDP socket on a random port
//!   ([`sockets::open`]), the address [`Family`] (one socket index for v4
//!   and v6), and the rotation of worn sockets after about [`ROTATE_AFTER`]
//!   queries ([`sockets::Sockets`], [`wear_budget`]).
//! - [`tcp`]: TCP exchanges, over reused connections ([`TcpPool`]) or one
//!   of their own ([`tcp_exchange`]).
//!
//! This module holds what all of them share: [`UpstreamError`] and the
//! [`DropCounters`].
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

pub mod accept;
pub mod ids;
pub mod sockets;
pub mod tcp;

pub use accept::Reject;
pub use sockets::{Family, wear_budget};
pub use tcp::{
    Choice, TCP_CONNS, TCP_IDLE, TCP_PIPELINE, TCP_TRIES, TcpPool, choose, stall_after,
    tcp_exchange,
};

/// Queries one upstream socket sends before it is replaced by one on a new
/// port (on average: see [`wear_budget`]).
pub const ROTATE_AFTER: u64 = 20_000;
/// How long after its query's deadline an answer is still expected (and
/// counted as late, not as a forgery).
pub const LATE_GRACE: Duration = Duration::from_secs(3);

/// Why an exchange gave no response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The deadline passed first.
    #[error("timed out")]
    Timeout,
    /// A socket error (connection refused, unreachable...).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The backend's response could not be used (oversized, bad TCP framing).
    #[error("unusable response")]
    Unusable,
}

/// Responses dropped because they did not match what was sent.
#[derive(Debug, Default)]
pub struct DropCounters {
    /// From an address other than the backend's.
    pub wrong_source: AtomicU64,
    /// With an ID other than the query's.
    pub wrong_id: AtomicU64,
    /// With another question, not a response, or too short to tell.
    pub wrong_question: AtomicU64,
    /// Not dropped as suspect: answers that came after their query was
    /// settled (a hedge's loser) or past its deadline.
    pub late: AtomicU64,
}

impl DropCounters {
    /// All dropped responses.
    pub fn total(&self) -> u64 {
        self.wrong_source.load(Relaxed)
            + self.wrong_id.load(Relaxed)
            + self.wrong_question.load(Relaxed)
    }

    /// Counts one response not taken, by its reason.
    pub fn count(&self, why: Reject) {
        let counter = match why {
            Reject::WrongSource => &self.wrong_source,
            Reject::WrongId => &self.wrong_id,
            Reject::WrongQuestion => &self.wrong_question,
            Reject::Late => &self.late,
        };
        counter.fetch_add(1, Relaxed);
    }
}
