//! The UDP side: one worker per SO_REUSEPORT socket, on a thread of its own
//! (see [`super::thread`]).
//!
//! A worker receives up to [`batch::BATCH`] datagrams per system call into
//! reused slots, asks the handler about each, and sends the batch's
//! immediate answers together (see [`batch`]). Deferred answers run as tracked tasks, each
//! holding an in-flight permit; with none left the client gets SERVFAIL at
//! once (blocking would only make the kernel drop datagrams silently). They
//! run on the worker's own thread; once stopped, the worker waits for them
//! (each ends by the drain grace at the latest) before its thread ends.
//! Receive errors in a row back off (see `server::backoff`) so a socket
//! that keeps failing does not spin a core.
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::backoff::RecvBackoff;
use super::batch::{self, Peer, RecvBatch};
use super::{Action, Handler, Reply, Request, Shared};
use crate::dns;

pub(crate) async fn run<H: Handler>(sock: Arc<UdpSocket>, shared: Arc<Shared<H>>) {
    let deferred = TaskTracker::new();
    serve(&sock, &shared, &deferred).await;
    deferred.close();
    deferred.wait().await;
}

async fn serve<H: Handler>(sock: &Arc<UdpSocket>, shared: &Shared<H>, deferred: &TaskTracker) {
    let mut slots = RecvBatch::default();
    // Immediate answers of one batch, sent together.
    let mut out: Vec<(Vec<u8>, Peer)> = Vec::with_capacity(batch::BATCH);
    let mut backoff = RecvBackoff::default();
    loop {
        tokio::select! {
            _ = shared.token.cancelled() => return,
            r = sock.readable() => if let Err(err) = r {
                debug!(?err, "udp readiness error");
                continue;
            },
        }
        let n = match slots.recv_ready(sock) {
            Ok(n) => n,
            Err(err) => {
                // Transient on an unconnected socket (e.g. ICMP errors):
                // keep serving, but do not spin if it persists.
                debug!(?err, "udp recv error");
                if let Some(pause) = backoff.failure() {
                    tokio::select! {
                        _ = shared.token.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
                continue;
            }
        };
        backoff.success();
        for i in 0..n {
            let Some((raw, meta)) = slots.get(i) else {
                continue;
            };
            let Some(peer) = meta.peer() else { continue };
            if meta.truncated || peer.addr.port() == 0 {
                continue; // no DNS query; nobody can receive an answer at port 0
            }
            handle_one(sock, shared, deferred, raw, peer, &mut out);
        }
        flush(sock, &mut out).await;
    }
}

/// Hands one datagram to the handler: an immediate answer joins `out`, a
/// deferred one runs as a tracked task under an in-flight permit.
fn handle_one<H: Handler>(
    sock: &Arc<UdpSocket>,
    shared: &Shared<H>,
    deferred: &TaskTracker,
    raw: &[u8],
    peer: Peer,
    out: &mut Vec<(Vec<u8>, Peer)>,
) {
    let req = Request::udp(raw, peer.addr);
    match shared.handler.handle(req) {
        Action::Now(reply) => {
            if let Some(bytes) = first(reply) {
                out.push((bytes, peer));
            }
        }
        Action::Later(fut) => match shared.inflight.take(peer.addr.ip()) {
            Some(permit) => {
                let sock = sock.clone();
                // Stopping does not cut a query short (it drains); only
                // the end of the drain grace does.
                let abort = shared.abort.clone();
                deferred.spawn(async move {
                    let reply = tokio::select! {
                        _ = abort.cancelled() => return,
                        r = fut => r,
                    };
                    drop(permit);
                    if let Some(bytes) = first(reply) {
                        // From the address the query came to (see `batch::Peer`).
                        batch::send_all(&sock, &[(bytes, peer)]).await;
                    }
                });
            }
            None => {
                shared.handler.inflight_refused();
                if let Some(b) = dns::servfail_for(raw) {
                    out.push((b, peer));
                }
            }
        },
    }
}

/// The one message a UDP reply carries (a zone transfer's first, if any).
fn first(reply: Reply) -> Option<Vec<u8>> {
    match reply {
        Reply::Drop => None,
        Reply::One(b) => Some(b),
        Reply::Stream(mut s) => s.next_message().and_then(Result::ok),
    }
}

/// Sends `out` in batches and empties it.
async fn flush(sock: &UdpSocket, out: &mut Vec<(Vec<u8>, Peer)>) {
    batch::send_all(sock, out).await;
    out.clear();
}
