//! DNS over HTTP/3's families (`dnslb_doh3_*`, only with `[ls.https] http3`):
//! connections, requests, connections refused and Retries sent. Its queries
//! are DoH's too (`dnslb_encrypted_queries_total{transport="https"}`).
use std::sync::atomic::Ordering::Relaxed;

use super::expo::Expo;
use crate::server::doh3::Doh3Stats;

/// Writes the families of `s`.
pub(crate) fn write_doh3(e: &mut Expo, s: &Doh3Stats) {
    e.counter(
        "dnslb_doh3_connections_total",
        "DNS over HTTP/3 connections whose handshake completed.",
        s.connections.load(Relaxed),
    );
    e.counter(
        "dnslb_doh3_requests_total",
        "HTTP/3 requests received (those carrying a query are counted among DNS over HTTPS's too).",
        s.requests.load(Relaxed),
    );
    e.counter(
        "dnslb_doh3_refused_total",
        "DNS over HTTP/3 connections refused at once: the connection cap was full.",
        s.refused.load(Relaxed),
    );
    e.counter(
        "dnslb_doh3_retries_total",
        "QUIC Retry packets sent to HTTP/3 clients whose address was not yet validated.",
        s.retries.load(Relaxed),
    );
}
