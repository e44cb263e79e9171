//! One worker per AF_XDP socket, on a thread of its own: it takes a batch
//! of frames from the receive ring, reads each as a UDP datagram
//! ([`frame::read`]), asks the server's [`Handler`] exactly as the socket
//! path does ([`Request::udp`]), and writes the answer over the query's
//! frame, addresses swapped ([`frame::reply`]), for the transmit ring. With
//! nothing to receive it waits in `poll` (bounded, so the stop is seen).
//!
//! Two answers leave through the kernel's UDP socket on the same address
//! instead ([`KernelPath`]): one larger than the interface's MTU (the
//! kernel fragments it, as it would on the socket path), and one the
//! handler gives later (the TS's delay fault), run on the server's runtime.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use super::counters::XdpCounters;
use super::frame;
use super::ring::Xsk;
use crate::dns;
use crate::server::batch::{self, Peer};
use crate::server::udp::first;
use crate::server::{Action, Handler, Request};

/// Frames taken from the receive ring at a time.
const BATCH: u32 = 64;
/// The longest a worker waits for frames before it looks at the stop.
const WAIT: Duration = Duration::from_millis(200);
/// Answers given later, at most, in flight for one server's workers.
const LATER_MAX: usize = 4096;

/// The kernel's UDP socket on the address the XDP path serves, and the
/// runtime its sends and the later answers run on.
#[derive(Clone)]
pub struct KernelPath {
    /// The socket (a duplicate of the server's own).
    pub sock: Arc<tokio::net::UdpSocket>,
    /// The server's runtime.
    pub rt: tokio::runtime::Handle,
    /// Answers given later, in flight.
    pub later: Arc<AtomicUsize>,
}

impl KernelPath {
    fn peer(&self, d: &frame::Datagram) -> Peer {
        let wildcard = self.sock.local_addr().is_ok_and(|a| a.ip().is_unspecified());
        Peer {
            addr: d.src,
            local: wildcard.then_some(d.dst.ip()),
        }
    }

    fn send(&self, bytes: Vec<u8>, peer: Peer) {
        let sock = self.sock.clone();
        self.rt.spawn(async move {
            batch::send_all(&sock, &[(bytes, peer)]).await;
        });
    }
}

/// What a worker needs besides its socket.
pub struct WorkerParts<H> {
    /// The server answering.
    pub handler: Arc<H>,
    /// Its counters.
    pub counters: Arc<XdpCounters>,
    /// The largest frame sent (the MTU plus the Ethernet header).
    pub max_frame: usize,
    /// The way out through the kernel.
    pub kernel: KernelPath,
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
}

/// Serves `xsk` until the stop.
pub fn run<H: Handler>(mut xsk: Xsk, parts: WorkerParts<H>) {
    while !parts.stop.load(Relaxed) {
        xsk.recycle();
        let got = xsk.serve(BATCH, |buf, len| answer(&parts, buf, len));
        if got == 0 {
            xsk.wait(WAIT);
        }
    }
}

/// The answer frame to the frame of `len` bytes at the start of `buf`,
/// written over it; `None` when nothing goes back through the socket.
fn answer<H: Handler>(parts: &WorkerParts<H>, buf: &mut [u8], len: usize) -> Option<usize> {
    let c = &parts.counters;
    let d = match buf.get(..len).map(frame::read) {
        Some(Ok(d)) => d,
        Some(Err(skip)) => {
            c.skip(skip);
            return None;
        }
        None => {
            c.skip(frame::Skip::Short);
            return None;
        }
    };
    let raw = buf.get(d.payload.clone())?;
    let reply = match parts.handler.handle(Request::udp(raw, d.src)) {
        Action::Now(reply) => first(reply),
        Action::Later(fut) => {
            let k = &parts.kernel;
            if k.later.fetch_add(1, Relaxed) >= LATER_MAX {
                k.later.fetch_sub(1, Relaxed);
                parts.handler.inflight_refused();
                dns::servfail_for(raw)
            } else {
                let (peer, kernel) = (k.peer(&d), k.clone());
                k.rt.spawn(async move {
                    let reply = fut.await;
                    kernel.later.fetch_sub(1, Relaxed);
                    if let Some(bytes) = first(reply) {
                        batch::send_all(&kernel.sock, &[(bytes, peer)]).await;
                    }
                });
                c.via_kernel.fetch_add(1, Relaxed);
                return None;
            }
        }
    };
    let Some(bytes) = reply else {
        c.unanswered.fetch_add(1, Relaxed);
        return None;
    };
    let room = buf.len().min(parts.max_frame);
    match buf.get_mut(..room).and_then(|b| frame::reply(b, &d, &bytes)) {
        Some(n) => {
            c.answered.fetch_add(1, Relaxed);
            Some(n)
        }
        None => {
            c.via_kernel.fetch_add(1, Relaxed);
            parts.kernel.send(bytes, parts.kernel.peer(&d));
            None
        }
    }
}

