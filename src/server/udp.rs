//! The UDP side: one worker task per SO_REUSEPORT socket.
//!
//! A worker receives into one reused buffer, asks the handler, and sends
//! immediate answers itself. Deferred answers run as tracked tasks, each
//! holding an in-flight permit; with none left the client gets SERVFAIL at
//! once (blocking would only make the kernel drop datagrams silently).
//! Receive errors in a row back off (see `server::backoff`) so a socket
//! that keeps failing does not spin a core.
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tracing::debug;

use super::backoff::Backoff;
use super::{Action, Handler, Reply, Request, Shared, Transport};
use crate::dns;

/// Largest datagram accepted.
const RECV_BUFFER: usize = 65_535;

pub(crate) async fn run<H: Handler>(sock: Arc<UdpSocket>, shared: Arc<Shared<H>>) {
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut backoff = Backoff::default();
    loop {
        let (len, src) = tokio::select! {
            _ = shared.token.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
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
            },
        };
        backoff.success();
        let Some(raw) = buf.get(..len) else { continue };
        if src.port() == 0 {
            continue; // nobody can receive an answer at port 0
        }
        let req = Request {
            raw,
            src,
            transport: Transport::Udp,
        };
        match shared.handler.handle(req) {
            Action::Now(reply) => send(&sock, reply, src).await,
            Action::Later(fut) => match shared.inflight.clone().try_acquire_owned() {
                Ok(permit) => {
                    let sock = sock.clone();
                    // Stopping does not cut a query short (it drains); only
                    // the end of the drain grace does.
                    let abort = shared.abort.clone();
                    shared.tracker.spawn(async move {
                        let reply = tokio::select! {
                            _ = abort.cancelled() => return,
                            r = fut => r,
                        };
                        drop(permit);
                        send(&sock, reply, src).await;
                    });
                }
                Err(_) => {
                    if let Some(b) = dns::servfail_for(raw) {
                        send(&sock, Reply::One(b), src).await;
                    }
                }
            },
        }
    }
}

async fn send(sock: &UdpSocket, reply: Reply, dst: SocketAddr) {
    let bytes = match reply {
        Reply::Drop => return,
        Reply::One(b) => b,
        Reply::Many(v) => match v.into_iter().next() {
            Some(b) => b,
            None => return,
        },
    };
    if let Err(err) = sock.send_to(&bytes, dst).await {
        debug!(%dst, ?err, "udp send failed");
    }
}
