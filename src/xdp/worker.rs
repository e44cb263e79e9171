//! One worker per AF_XDP socket, on a thread of its own: it takes a batch
//! of frames from the receive ring, reads each as a UDP datagram
//! ([`frame::read`]), asks the server's [`Handler`] as the socket path
//! does ([`Request::udp`]; through [`Handler::handle_local`], with the
//! state the handler keeps for this worker and the buffer an answer is
//! written into, given back once it is copied out: [`WorkerLocal`]), and
//! writes the answer over the query's frame, addresses swapped
//! ([`frame::reply`]), for the transmit ring. With
//! nothing to receive it waits in `poll` (bounded, so the stop is seen).
//!
//! An answer the handler gives later (the LS's forwarded queries, the TS's
//! delay fault) runs on the server's runtime; when it is ready it comes
//! back to the worker ([`Returns`]: a bounded channel and the worker's
//! [`Doorbell`], an eventfd that wakes its `poll`, written only when the
//! worker may be asleep), which writes it into a free frame, the
//! query's headers copied and swapped. An answer larger than the
//! interface's MTU leaves through the kernel's UDP socket on the same
//! address instead ([`KernelPath`]: the kernel fragments it, as on the
//! socket path), and so does a later one when the channel is full.
//!
//! With the server's queries to its backends going through the AF_XDP
//! sockets ([`super::upstream`]), a worker also takes queries to send from
//! its outbox (woken by the same doorbell) and writes each into a free
//! frame; and a frame to one of the addresses those queries leave from is
//! a backend's answer, handed to the server ([`UpstreamLink::deliver`])
//! instead of its handler.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use super::counters::XdpCounters;
use super::doorbell::Doorbell;
use super::frame;
use super::live::Live;
use super::ring::Xsk;
use super::upstream::{OUTBOX_MAX, Outbox, Outgoing, UpstreamLink, XskUpstream};
use crate::dns;
use crate::server::batch::{self, Peer};
use crate::server::detached::{Awaited, Detached};
use crate::server::local::WorkerLocal;
use crate::server::recycle;
use crate::server::udp::first;
use crate::server::{Action, Handler, Request};

/// Frames taken from the receive ring at a time.
const BATCH: u32 = 64;
/// The longest a worker waits for frames before it looks at the stop.
const WAIT: Duration = Duration::from_millis(200);
/// The longest a stopping worker pushes its transmit ring out.
const FINISH: Duration = Duration::from_millis(100);
/// How often a worker reads its socket's drops in the kernel.
const LOST_EVERY: Duration = Duration::from_secs(1);
/// Answers given later waiting for a worker to send them, at most (past
/// that they leave through the kernel).
const RETURNS_MAX: usize = 16_384;

/// The kernel's UDP socket on the address the XDP path serves, and the
/// runtime its sends and the later answers run on.
#[derive(Clone)]
pub struct KernelPath {
    /// The socket (a duplicate of the server's own; `MSG_DONTWAIT` sends).
    pub sock: Arc<std::net::UdpSocket>,
    /// The server's runtime, where answers given later are awaited.
    pub rt: tokio::runtime::Handle,
    /// Answers given later, in flight (with the LS, the server's whole
    /// count of answers awaited outside its server layer: a UDP worker's
    /// queries for encrypted backends too).
    pub later: Detached,
    /// Set once the server stops: the workers read no new client query
    /// (a query sent once `/ready` says stopping is not read, as on the
    /// sockets), while they still send the answers given later and the
    /// server's queries to its backends, and take the backends' answers.
    pub closing: Arc<AtomicBool>,
    /// Whether `sock` is bound to an unspecified address: a send then says
    /// the address the query came to (`IP_PKTINFO`).
    pub wildcard: bool,
}

impl KernelPath {
    fn peer(&self, d: &frame::Datagram) -> Peer {
        Peer {
            addr: d.src,
            local: self.wildcard.then_some(d.dst.ip()),
        }
    }

    /// Sends `bytes` to `peer` now, or drops it when the socket's buffer
    /// is full (as a UDP server under overload does).
    pub(crate) fn send(&self, bytes: Vec<u8>, peer: Peer) {
        let _ = batch::send_some(&*self.sock, &[(bytes, peer)]);
    }
}

/// What a worker needs besides its socket.
pub struct WorkerParts<H> {
    /// The server answering.
    pub handler: Arc<H>,
    /// Its counters.
    pub counters: Arc<XdpCounters>,
    /// The interface's MTU and MAC address as the keeper read them last
    /// (frames to another MAC are not answered), and whether it is gone.
    pub live: Arc<Live>,
    /// Answers given later in flight, at most (all of the server's queues).
    pub later_max: usize,
    /// The way out through the kernel.
    pub kernel: KernelPath,
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
    /// The server's queries to its backends through this worker, when on.
    pub upstream: Option<WorkerUpstream>,
}

/// What a worker needs to send the server's queries to its backends and
/// hand their answers back.
#[derive(Clone)]
pub struct WorkerUpstream {
    /// The backends' paths and the workers' outboxes.
    pub handle: Arc<XskUpstream>,
    /// The server's side.
    pub link: Arc<dyn UpstreamLink>,
    /// The index of the worker's interface.
    pub ifindex: u32,
}

/// The longest Ethernet, IP and UDP headers of a served frame (IPv6).
const HEAD_MAX: usize = 14 + 40 + 8;

/// An answer given later, back for its worker to send.
struct Later {
    /// The query frame's headers (up to its payload).
    head: [u8; HEAD_MAX],
    /// Where the datagram was in the query frame.
    d: frame::Datagram,
    /// The answer.
    answer: Vec<u8>,
    /// Its place in [`KernelPath::later`], held from the query until the
    /// answer is sent (or its future yields none, or it is dropped with a
    /// worker gone), so that a stop's drain never ends a worker with
    /// answers queued, and no way of dropping one leaves the count behind.
    _held: Awaited,
}

/// The way back to a worker for answers given later.
#[derive(Clone)]
struct Returns {
    tx: std::sync::mpsc::SyncSender<Box<Later>>,
    bell: Arc<Doorbell>,
}

impl Returns {
    /// Hands `later` to the worker, waking it when it may be asleep; gives
    /// it back when the channel is full or the worker gone.
    fn give(&self, later: Box<Later>) -> Result<(), Box<Later>> {
        self.bell
            .hand(&self.tx, later)
            .map_err(super::doorbell::given_back)
    }
}

/// Serves `xsk` until the stop.
pub fn run<H: Handler>(mut xsk: Xsk, parts: WorkerParts<H>) {
    let bell = match Doorbell::new() {
        Ok(bell) => Arc::new(bell),
        Err(err) => {
            tracing::warn!(%err, "xdp: no eventfd; this queue's worker stops");
            return;
        }
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(parts.later_max.min(RETURNS_MAX));
    let returns = Returns {
        tx,
        bell: bell.clone(),
    };
    let (out_tx, out_rx) = std::sync::mpsc::sync_channel::<Outgoing>(OUTBOX_MAX);
    if let Some(u) = &parts.upstream {
        let out = Outbox {
            tx: out_tx,
            bell: bell.clone(),
        };
        u.handle.register(u.ifindex, out);
    } else {
        drop(out_tx);
    }
    // The handler's state for this worker (the LS: its own counts).
    let mut local = parts.handler.worker_local();
    // The socket's drops in the kernel, read about once a second.
    let mut lost = xsk.lost().unwrap_or_default();
    let mut lost_read = std::time::Instant::now();
    while !parts.stop.load(Relaxed) && !parts.live.is_gone() {
        if lost_read.elapsed() >= LOST_EVERY {
            lost_read = std::time::Instant::now();
            if let Some(now) = xsk.lost() {
                parts.counters.add_lost(lost, now);
                lost = now;
            }
        }
        xsk.recycle();
        let got = xsk.serve(BATCH, |buf, len| {
            answer(&parts, (&returns, &mut local), buf, len)
        });
        // After each batch, and at least every `WAIT` when idle.
        parts.handler.local_idle(&mut local);
        let mut back = 0;
        while let Ok(later) = rx.try_recv() {
            back += 1;
            send_later(&mut xsk, &parts, *later);
        }
        if let Some(u) = &parts.upstream {
            while let Ok(query) = out_rx.try_recv() {
                back += 1;
                send_query(&mut xsk, &parts, u, query);
            }
        }
        bell.took(back);
        xsk.flush();
        // With nothing done, armed: it waits unless something was handed
        // meanwhile, and the next item handed rings.
        let rung = got == 0 && back == 0 && bell.arm() && xsk.wait(bell.fd(), WAIT);
        bell.woke(rung);
    }
    if let Some(u) = &parts.upstream {
        u.handle.unregister(u.ifindex, &bell);
        // Queries handed over meanwhile leave through the kernel.
        while let Ok(Outgoing { d, payload }) = out_rx.try_recv() {
            parts.counters.upstream_sockets.fetch_add(1, Relaxed);
            u.link.send_by_socket(d.dst, d.src, &payload);
        }
    }
    // Answers handed back meanwhile (past a drain's grace, or the
    // interface gone) leave through the kernel; the channel is closed at
    // once, so that an answer ready later goes through the kernel too (one
    // handed in between is dropped, its place given back).
    while let Ok(later) = rx.try_recv() {
        let Later { d, answer, .. } = *later;
        parts.counters.via_kernel.fetch_add(1, Relaxed);
        parts.kernel.send(answer, parts.kernel.peer(&d));
    }
    drop(rx);
    // The frames written are pushed out before the socket closes (not
    // waited for on an interface gone: they cannot leave).
    if !parts.live.is_gone() {
        xsk.finish(FINISH);
    }
}

/// Sends a query of the server's to a backend in a free frame, or through
/// the kernel's socket of its source address.
fn send_query<H: Handler>(
    xsk: &mut Xsk,
    parts: &WorkerParts<H>,
    u: &WorkerUpstream,
    query: Outgoing,
) {
    let Outgoing { d, payload } = query;
    let sent = xsk.send_new(|buf| {
        let room = buf.len().min(parts.live.max_frame());
        frame::reply(buf.get_mut(..room)?, &d, &payload)
    });
    let c = &parts.counters;
    if sent {
        c.upstream_xsk.fetch_add(1, Relaxed);
    } else {
        c.upstream_sockets.fetch_add(1, Relaxed);
        u.link.send_by_socket(d.dst, d.src, &payload);
    }
    // Kept for the backends' answers this worker copies out: a buffer
    // another thread made, freed here, would leave this thread's pages
    // empty and given back to the system, to be faulted in again.
    recycle::give(payload);
}

/// Sends an answer given later in a free frame, or through the kernel.
fn send_later<H: Handler>(xsk: &mut Xsk, parts: &WorkerParts<H>, later: Later) {
    let Later {
        head, d, answer, ..
    } = later;
    let start = d.payload.start;
    let sent = xsk.send_new(|buf| {
        let room = buf.len().min(parts.live.max_frame());
        let buf = buf.get_mut(..room)?;
        buf.get_mut(..start)?.copy_from_slice(head.get(..start)?);
        frame::reply(buf, &d, &answer)
    });
    let c = &parts.counters;
    if sent {
        c.answered.fetch_add(1, Relaxed);
        // Kept for the queries this worker copies for the server (see
        // `send_query`).
        recycle::give(answer);
    } else {
        c.via_kernel.fetch_add(1, Relaxed);
        parts.kernel.send(answer, parts.kernel.peer(&d));
    }
}

/// The answer frame to the frame of `len` bytes at the start of `buf`,
/// written over it; `None` when nothing goes back through the socket.
fn answer<H: Handler>(
    parts: &WorkerParts<H>,
    (returns, local): (&Returns, &mut WorkerLocal),
    buf: &mut [u8],
    len: usize,
) -> Option<usize> {
    let c = &parts.counters;
    let d = match buf.get(..len).map(frame::read) {
        Some(Ok(d)) if d.dst_mac != parts.live.mac() => {
            c.skip(frame::Skip::OtherHost);
            return None;
        }
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
    if let Some(u) = &parts.upstream
        && u.link.deliver(d.dst, d.src, raw)
    {
        c.upstream_answers.fetch_add(1, Relaxed);
        return None;
    }
    if parts.kernel.closing.load(Relaxed) {
        c.unanswered.fetch_add(1, Relaxed);
        return None;
    }
    // Past a `proxy_from` sender's PROXY header, its client asks; the
    // answer still goes to the sender.
    let (raw, client) = match parts.handler.proxy_gate() {
        None => (raw, d.src),
        Some(gate) => gate.datagram(raw, d.src)?,
    };
    let reply = match parts
        .handler
        .handle_local(Request::udp_on(raw, client, Some(d.dst)), local)
    {
        Action::Now(reply) => first(reply),
        // The server's UDP worker of the address answers it, through the
        // kernel's socket.
        Action::Handed => {
            c.via_kernel.fetch_add(1, Relaxed);
            return None;
        }
        Action::Later(fut) => {
            let k = &parts.kernel;
            let Some(held) = k.later.take(parts.later_max) else {
                parts.handler.inflight_refused();
                return reply_in_place(parts, local, buf, &d, dns::servfail_for(raw));
            };
            let mut head = [0u8; HEAD_MAX];
            let n = d.payload.start.min(HEAD_MAX);
            if let (Some(h), Some(b)) = (head.get_mut(..n), buf.get(..n)) {
                h.copy_from_slice(b);
            }
            let (kernel, returns) = (k.clone(), returns.clone());
            // Counted in flight (`held`) until the answer is sent, by the
            // worker or here through the kernel, or until it is dropped.
            k.rt.spawn(async move {
                let Some(answer) = first(fut.await) else {
                    return;
                };
                let later = Later {
                    head,
                    d,
                    answer,
                    _held: held,
                };
                if let Err(back) = returns.give(Box::new(later)) {
                    let Later { d, answer, .. } = *back;
                    kernel.send(answer, kernel.peer(&d));
                }
            });
            return None;
        }
    };
    reply_in_place(parts, local, buf, &d, reply)
}

/// `reply` (none: unanswered) written over the query's frame `buf`, the
/// datagram `d`: its length; through the kernel when it does not fit.
fn reply_in_place<H: Handler>(
    parts: &WorkerParts<H>,
    local: &mut WorkerLocal,
    buf: &mut [u8],
    d: &frame::Datagram,
    reply: Option<Vec<u8>>,
) -> Option<usize> {
    let c = &parts.counters;
    let Some(bytes) = reply else {
        c.unanswered.fetch_add(1, Relaxed);
        return None;
    };
    let room = buf.len().min(parts.live.max_frame());
    match buf.get_mut(..room).and_then(|b| frame::reply(b, d, &bytes)) {
        Some(n) => {
            c.answered.fetch_add(1, Relaxed);
            local.give_back(bytes);
            Some(n)
        }
        None => {
            c.via_kernel.fetch_add(1, Relaxed);
            parts.kernel.send(bytes, parts.kernel.peer(d));
            None
        }
    }
}
