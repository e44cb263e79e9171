//! The LS's PROXY protocol v2 family (`proxy_from` in `[ls]`): headers
//! taken, and refused with their datagram dropped or connection closed;
//! the TS's twin is `dnslb_ts_proxy_headers_total`.
use std::sync::atomic::AtomicU64;

use super::expo::Expo;
use crate::server::proxy_gate::ProxyGate;

/// `dnslb_proxy_headers_total`, zeros without `proxy_from`.
pub(super) fn write_proxy_headers(e: &mut Expo, gate: Option<&ProxyGate>) {
    let none = AtomicU64::new(0);
    e.by_label(
        "dnslb_proxy_headers_total",
        "PROXY protocol v2 headers (proxy_from): taken (accepted), or refused with their datagram dropped or connection closed (refused: a listed sender's missing, malformed or late header, or a header from a sender not listed).",
        "outcome",
        [
            ("accepted", gate.map_or(&none, |g| &g.accepted)),
            ("refused", gate.map_or(&none, |g| &g.refused)),
        ],
    );
}
