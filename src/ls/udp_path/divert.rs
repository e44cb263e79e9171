//! The UDP fast path's queries for an encrypted backend: a query whose
//! route has a backend reached over TLS or QUIC (`transport` in
//! `[[ls.backend]]`) is not made a flight of the worker (its upstream
//! sockets are UDP) but handed to the async path
//! ([`crate::ls::async_path::forward_admitted`]): the cache, the strategies, hedging
//! and failover across the route's backends (UDP and encrypted alike) as
//! for a TCP client, and the answer (cut to the client's UDP size as any
//! UDP answer) sent from a copy of the worker's client socket, from the
//! address the query came to. A whole query, not one attempt: the worker's
//! loop stays free of tasks, and a route mixing UDP and TLS backends hedges
//! between them on one driver.
use std::net::UdpSocket;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::ls::balancer::Balancer;
use crate::ls::door::Admitted;
use crate::ls::state::LsState;
use crate::server::batch::{self, Peer};
use crate::server::{Action, Reply, Request};

/// Where a worker's diverted queries go: the runtime their tasks run on,
/// the copy of its client socket their answers leave from, and the places
/// of its share of `max_inflight` they hold while they wait (a flood of
/// queries for an encrypted route is SERVFAIL past it, as on any path,
/// never an unbounded heap of tasks).
pub(crate) struct AsyncLane {
    rt: tokio::runtime::Handle,
    sock: Arc<UdpSocket>,
    places: Arc<Semaphore>,
}

impl AsyncLane {
    /// The lane of a worker serving `client`, with `max` places; `None`
    /// when the socket cannot be copied (its queries for encrypted
    /// backends then fail).
    pub(crate) fn new(rt: tokio::runtime::Handle, client: &UdpSocket, max: usize) -> Option<Self> {
        let sock = Arc::new(client.try_clone().ok()?);
        let places = Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS)));
        Some(AsyncLane { rt, sock, places })
    }
}

/// Whether `admitted` (of `state`) goes to a backend reached encrypted.
pub(super) fn encrypted(state: &LsState, admitted: &Admitted) -> bool {
    state
        .route_at(admitted.route())
        .backends
        .iter()
        .any(|b| b.link.is_some())
}

/// Hands the admitted query `req` to the async path; an answer it has at
/// once is returned for the worker's batch.
pub(super) fn divert(
    lane: &AsyncLane,
    balancer: &Balancer,
    req: Request<'_>,
    to: Peer,
    (state, admitted): (Arc<LsState>, Admitted),
) -> Option<Vec<u8>> {
    let raw = req.raw;
    match crate::ls::async_path::forward_admitted(balancer, req, state, admitted) {
        Action::Now(Reply::One(answer)) => Some(answer),
        Action::Later(answer) => {
            let Ok(place) = lane.places.clone().try_acquire_owned() else {
                crate::server::Handler::inflight_refused(balancer);
                return crate::dns::servfail_for(raw);
            };
            let sock = lane.sock.clone();
            // Counted until it is sent: the stop waits for it.
            let held = balancer.detached().take(usize::MAX);
            lane.rt.spawn(async move {
                let reply = answer.await;
                drop(place);
                if let Reply::One(answer) = reply {
                    let _ = batch::send_some(&*sock, &[(answer, to)]);
                }
                drop(held);
            });
            None
        }
        _ => None,
    }
}
