//! DNS over HTTP/3's families (`dnslb_doh3_*`, only with `[ls.https] http3`):
//! connections, requests, connections refused, Retries sent, resumptions,
//! 0-RTT requests and malformed ones. Its queries
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
    e.counter(
        "dnslb_doh3_resumed_total",
        "DNS over HTTP/3 handshakes that resumed an earlier session (no certificate sent).",
        s.resumed.load(Relaxed),
    );
    e.counter(
        "dnslb_doh3_early_answered_total",
        "HTTP/3 requests sent in 0-RTT and answered before the handshake completed (replay-safe queries).",
        s.early_answered.load(Relaxed),
    );
    e.counter(
        "dnslb_doh3_early_held_total",
        "HTTP/3 requests sent in 0-RTT that waited for the handshake (queries that are not replay-safe).",
        s.early_held.load(Relaxed),
    );
    e.counter(
        "dnslb_doh3_malformed_total",
        "HTTP/3 POSTs whose content-length was not their body's length, reset with H3_MESSAGE_ERROR.",
        s.malformed.load(Relaxed),
    );
}
