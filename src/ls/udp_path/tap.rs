//! The fast path's dnstap messages (`[ls.dnstap]`, by `ls::tap`): a UDP
//! client query as the worker reads it, the upstream queries and client
//! answers of a round as its flush sends them (each send pass of it), an upstream answer once
//! accepted. Free functions over the worker's sockets and queues; each asks
//! a socket's address only when its kind is on.
use std::net::SocketAddr;
use std::time::Duration;

use std::net::UdpSocket;

use crate::dnstap::{Dnstap, TapKind, TapTime, TapTransport};
use crate::ls::tap;
use crate::ls::upstream::sockets::Sockets;
use crate::server::batch::SendQueue;

/// CLIENT_QUERY of a datagram from `src`, read on the client socket at
/// `local` (read once per socket).
pub(super) fn client_query(d: &Dnstap, local: Option<SocketAddr>, raw: &[u8], src: SocketAddr) {
    tap::client_query(d, TapTransport::Udp, src, || local, raw);
}

/// FORWARDER_QUERY of every upstream query queued in `to_upstream` since
/// its queue's last send (queue `i` goes out on upstream socket `i` of
/// `ups`): called before each send pass of a round's flush, so that the
/// next try a refused send queues is written too. Queues with nothing
/// queued are passed over at the cost of a length test (a flush looks at
/// every one); the others' frames go out with one clock read and under one
/// lock, each socket's address asked once.
pub(super) fn forwarder_queued(d: &Dnstap, ups: &Sockets<UdpSocket>, to_upstream: &[SendQueue]) {
    if !d.enabled(TapKind::ForwarderQuery) {
        return;
    }
    let mut busy = to_upstream
        .iter()
        .enumerate()
        .filter(|(_, out)| out.len() > 0)
        .filter_map(|(i, out)| Some((ups.get(i)?, out)))
        .peekable();
    if busy.peek().is_none() {
        return;
    }
    let now = TapTime::now();
    d.log_each(busy.flat_map(|(u, out)| {
        let local = u.local_addr(|s| s.local_addr().ok());
        out.queued()
            .map(move |(query, to)| tap::forwarder_query_at(local, to.addr, query, now))
    }));
}

/// CLIENT_RESPONSE of every client answer queued in `to_clients` since its
/// last send (sent on the client socket at `client`): called just before it
/// is sent, after the upstream sends (whose refusals may answer clients).
pub(super) fn answers_queued(d: &Dnstap, client: Option<SocketAddr>, to_clients: &SendQueue) {
    tap::client_responses(d, to_clients.queued_stamped(), client);
}

/// FORWARDER_RESPONSE of `resp`, accepted from `from` on upstream socket
/// `sock` of `ups`, `rtt` after its query left.
pub(super) fn accepted(
    d: &Dnstap,
    ups: &Sockets<UdpSocket>,
    sock: usize,
    from: SocketAddr,
    rtt: Duration,
    resp: &[u8],
) {
    let local = || {
        ups.get(sock)
            .and_then(|u| u.local_addr(|s| s.local_addr().ok()))
    };
    tap::forwarder_response(d, TapTransport::Udp, local, from, rtt, resp);
}
