//! The fast path's dnstap messages (`[ls.dnstap]`, by `ls::tap`): a UDP
//! client query as the worker reads it, the upstream queries and client
//! answers of a round as its flush sends them, an upstream answer once
//! accepted. Each asks the socket's address only when its kind is on.
use std::net::SocketAddr;
use std::time::Duration;

use super::worker::Worker;
use crate::dnstap::TapTransport;
use crate::ls::tap;

impl Worker {
    /// CLIENT_QUERY of a datagram from `src`.
    pub(super) fn tap_client_query(&self, raw: &[u8], src: SocketAddr) {
        let local = || self.client.local_addr().ok();
        tap::client_query(self.balancer.dnstap(), TapTransport::Udp, src, local, raw);
    }

    /// FORWARDER_QUERY of every upstream query and CLIENT_RESPONSE of every
    /// client answer queued for this round's flush.
    pub(super) fn tap_queued(&self) {
        let d = self.balancer.dnstap();
        for (i, out) in self.to_upstream.iter().enumerate() {
            if let Some(u) = self.ups.get(i) {
                tap::forwarder_queries(d, out.queued(), || u.sock.local_addr().ok());
            }
        }
        let local = || self.client.local_addr().ok();
        tap::client_responses(d, self.to_clients.queued(), local);
    }

    /// FORWARDER_RESPONSE of `resp`, accepted from `from` on upstream
    /// socket `sock`, `rtt` after its query left.
    pub(super) fn tap_accepted(&self, sock: usize, from: SocketAddr, rtt: Duration, resp: &[u8]) {
        let local = || self.ups.get(sock).and_then(|u| u.sock.local_addr().ok());
        let d = self.balancer.dnstap();
        tap::forwarder_response(d, TapTransport::Udp, local, from, rtt, resp);
    }
}
