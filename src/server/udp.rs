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
//!
//! With no deferred answer running, nothing but the worker needs its thread,
//! so it waits for the next batch in the receive itself
//! ([`RecvBatch::recv_waiting`]: the socket in blocking mode, its wait
//! bounded by [`WAIT_BOUND`]) rather than in the runtime's `epoll_wait`: a
//! wake-up is then one `recvmmsg` and one `sendmmsg`, with no turn of the
//! runtime around them (dnsdist's UDP listeners, and the LS's idle fast-path
//! worker, wait the same way; NSD's wait in `epoll_wait`). The stop wakes that receive ([`wake_on_stop`]: the
//! socket shut for reading). While a deferred answer runs, the worker waits
//! on the runtime, which runs it.
use std::io;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::backoff::RecvBackoff;
use super::batch::{self, Peer, RecvBatch};
use super::event_loop::{LoopStop, stop_on};
use super::{Action, Handler, Reply, Request, Shared};
use crate::dns;

/// Serves `sock` until the stop, then waits for its deferred answers. With
/// `stop` (set with `shared.token`, and waking the receive: [`wake_on_stop`])
/// the worker may wait in the receive itself.
pub(crate) async fn run<H: Handler>(
    sock: Arc<UdpSocket>,
    shared: Arc<Shared<H>>,
    stop: Option<Arc<LoopStop>>,
) {
    let deferred = TaskTracker::new();
    serve(&sock, &shared, &deferred, stop.as_deref()).await;
    deferred.close();
    deferred.wait().await;
}

/// The longest a worker waits in its receive before it looks at the stop
/// again on its own: only a net under the stop's wake-up ([`wake_on_stop`]),
/// so long that a stop it missed is seen, not hidden.
const WAIT_BOUND: Duration = Duration::from_secs(30);

async fn serve<H: Handler>(
    sock: &Arc<UdpSocket>,
    shared: &Shared<H>,
    deferred: &TaskTracker,
    stop: Option<&LoopStop>,
) {
    let mut slots = RecvBatch::default();
    // Immediate answers of one batch, sent together.
    let mut out: Vec<(Vec<u8>, Peer)> = Vec::with_capacity(batch::BATCH);
    let mut backoff = RecvBackoff::default();
    let blocking = stop.filter(|_| set_up_blocking(sock));
    let mut stopping = false;
    loop {
        if stopping {
            return;
        }
        let got = if let Some(stop) = blocking.filter(|_| deferred.is_empty()) {
            let got = slots.recv_waiting(&**sock);
            // Woken by the stop, or stopped while it read: the batch's
            // queries are answered (the empty datagrams the shut socket
            // returns are none), then the worker ends.
            stopping = stop.is_set();
            match got {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                got => got,
            }
        } else {
            tokio::select! {
                _ = shared.token.cancelled() => return,
                r = sock.readable() => if let Err(err) = r {
                    debug!(?err, "udp readiness error");
                    continue;
                },
            }
            slots.recv_ready(sock)
        };
        let n = match got {
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
            if meta.truncated || raw.is_empty() || peer.addr.port() == 0 {
                continue; // no DNS query; nobody can receive an answer at port 0
            }
            handle_one(sock, shared, deferred, raw, peer, &mut out);
        }
        flush(sock, &mut out).await;
    }
}

/// Puts `sock` in blocking mode with its receive wait bounded by
/// [`WAIT_BOUND`], for [`RecvBatch::recv_waiting`]; every other call on it
/// passes `MSG_DONTWAIT` (the batch's receive and send), so none of them
/// waits. False when it cannot (the worker then waits on the runtime only).
fn set_up_blocking(sock: &UdpSocket) -> bool {
    let s = socket2::SockRef::from(sock);
    let done = s
        .set_read_timeout(Some(WAIT_BOUND))
        .and_then(|()| s.set_nonblocking(false));
    if let Err(err) = &done {
        debug!(?err, "the udp worker waits on its runtime only");
        let _ = s.set_nonblocking(true);
    }
    done.is_ok()
}

/// The stop of a worker that may wait in `sock`'s receive: the LS's loop
/// stop ([`LoopStop`]: a flag the worker reads without a lock, and the socket
/// shut for reading when it is set, which wakes a receive blocked on it),
/// set once `token` is cancelled or the task [`stop_on`] is dropped unfinished
/// (its runtime shut down, its server's task aborted). The task is returned
/// for the caller's runtime.
///
/// # Errors
/// The OS error of making the eventfd or duplicating the socket's descriptor.
pub(crate) fn wake_on_stop(
    sock: &UdpSocket,
    token: CancellationToken,
) -> io::Result<(Arc<LoopStop>, impl Future<Output = ()> + Send + 'static)> {
    let stop = LoopStop::new()?;
    let dup: std::net::UdpSocket = socket2::SockRef::from(sock).try_clone()?.into();
    stop.wake_reader(Some(&dup))?;
    Ok((stop.clone(), stop_on(token, stop)))
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
    let (raw, src) = match shared.handler.proxy_gate() {
        None => (raw, peer.addr),
        Some(gate) => match gate.datagram(raw, peer.addr) {
            Some(taken) => taken,
            None => return,
        },
    };
    let req = Request::udp(raw, src);
    match shared.handler.handle(req) {
        Action::Now(reply) => {
            if let Some(bytes) = first(reply) {
                out.push((bytes, peer));
            }
        }
        Action::Handed => {}
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
pub(crate) fn first(reply: Reply) -> Option<Vec<u8>> {
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
