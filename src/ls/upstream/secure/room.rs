//! When an encrypted backend link is full, pure: a query that finds no
//! place on the link now is refused at once (its backend is full, as a
//! UDP backend past its limit), never queued inside the LS until its
//! deadline.
//!
//! A link has at most four connections for client queries, and on each a
//! bounded number of queries at once: over DoT [`DOT_DEPTH`] (what the
//! LS's own DoT server reads at once per connection: more would wait in the
//! backend's socket, unread), over DoQ the streams the backend grants (its
//! `max_concurrent_bidi_streams`; the LS's DoQ server grants 100). A new
//! connection is opened only when every open one is full (DoT: the TCP
//! pool's [`full`](crate::ls::upstream::tcp::full) with [`DOT_DEPTH`] and
//! its [`TCP_CONNS`](crate::ls::upstream::tcp::TCP_CONNS); DoQ:
//! [`quic_next`] with [`LINK_CONNS`]). So a link carries 256 queries at
//! once over DoT, 400 over DoQ to an LS of ours.
//!
//! The only wait a query may have is for a connection being opened (one
//! handshake at a time per link): bounded by its deadline and by the
//! link's few connections (each opened once); once a connection is open,
//! the query is placed or refused at once. Why not more connections, or
//! one per query as dnsdist does for a DoT backend without `maxInFlight`:
//! pipelining on a few reused connections (RFC 7766) keeps the handshakes
//! and the backend's connection count small; a DoQ link may open a second
//! to fourth connection because a DoQ server caps the streams of one (a
//! single connection carried 100 queries at once), as many as DoT's.
//!
//! Health probes never share these connections: each link has one more
//! connection of its own for its probes, so a link saturated by clients
//! with a healthy backend behind it stays up.

/// Connections a DoQ link opens for client queries, at most (as many as
/// a DoT link's, the TCP pool's `TCP_CONNS`).
pub const LINK_CONNS: usize = 4;

/// Queries in flight on one DoT connection, at most.
pub const DOT_DEPTH: usize = 64;

/// Where a DoQ query goes when no open connection grants a stream now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuicNext {
    /// Opens a connection (or waits for the one being opened).
    Open,
    /// Refused at once: the link is full.
    Full,
}

/// The next step of a DoQ query that found no stream free on any of the
/// `open` live connections (pure): another connection while fewer than
/// `max` are open, else refused.
pub fn quic_next(open: usize, max: usize) -> QuicNext {
    if open < max.max(1) {
        QuicNext::Open
    } else {
        QuicNext::Full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_doq_query_with_no_free_stream_opens_a_connection_under_the_bound_else_is_refused() {
        assert_eq!(quic_next(0, LINK_CONNS), QuicNext::Open);
        assert_eq!(quic_next(3, LINK_CONNS), QuicNext::Open);
        assert_eq!(quic_next(4, LINK_CONNS), QuicNext::Full);
        assert_eq!(quic_next(9, LINK_CONNS), QuicNext::Full);
        // A bound of 0 still allows one.
        assert_eq!(quic_next(0, 0), QuicNext::Open);
        assert_eq!(quic_next(1, 0), QuicNext::Full);
    }
}
