//! Protocol I/O shared by the LS and the TS: sockets, framing, limits, shutdown.
//!
//! A [`Handler`] turns one request into an [`Action`]: an answer now, or a
//! future answer that the server drives under its in-flight bound. The server
//! knows sockets, not DNS policy: [`udp`] runs one worker per SO_REUSEPORT
//! socket, each on a thread of its own ([`thread`]; the LS's fast path runs
//! a blocking loop of its own there, [`event_loop`]); [`tcp`] speaks RFC 7766
//! (pipelining, out-of-order answers, idle timeout, connection cap; a
//! connection's deferred answers polled in its `answer_slots`; message
//! buffers reused per thread through `recycle`). Every task belongs to the server's
//! [`TaskTracker`] and stops when its [`CancellationToken`] is cancelled.
//! The LS's encrypted listeners: [`tls`] (DNS over TLS) and [`doh`] (DNS over
//! HTTPS; a connection's handshake and HTTP version in `doh_conn`, HTTP/2 in
//! `doh_h2`), counted in [`tls_stats`], new connections capped per client by
//! [`conn_rate`] before their handshake, and the client behind a trusted proxy
//! read by [`forwarded`].
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::OptionFuture;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::dns::{Transport, Via};

mod answer_slots;
pub(crate) mod backoff;
pub(crate) mod batch;
pub mod conn_rate;
pub mod detached;
pub mod doh;
pub mod doh3;
mod doh_conn;
mod doh_h2;
pub mod doq;
pub(crate) mod event_loop;
pub mod fdlimit;
pub mod forwarded;
pub mod local;
pub(crate) mod places;
pub mod proxy_gate;
pub mod quic_early;
pub(crate) mod recycle;
pub mod shed;
pub mod socket;
pub mod tcp;
pub mod thread;
pub mod tls;
pub mod tls_stats;
pub mod udp;

/// One packet from a client, borrowed from the server's receive buffer.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The whole DNS message as received.
    pub raw: &'a [u8],
    /// The client's address.
    pub src: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// Which kind of listener it came by (DoT and DoH are TCP to `transport`).
    pub via: Via,
    /// The listener's address it came to, when known (TCP, DoT, DoH: the
    /// accepted socket's; `None` from [`Request::udp`]).
    pub local: Option<SocketAddr>,
}

impl<'a> Request<'a> {
    /// A datagram from `src` on a UDP listener.
    #[must_use]
    pub fn udp(raw: &'a [u8], src: SocketAddr) -> Self {
        Self {
            raw,
            src,
            transport: Transport::Udp,
            via: Via::Udp,
            local: None,
        }
    }

    /// A datagram from `src` on a UDP listener whose address is `local`
    /// (`None` when unknown).
    #[must_use]
    pub fn udp_on(raw: &'a [u8], src: SocketAddr, local: Option<SocketAddr>) -> Self {
        Self {
            local,
            ..Self::udp(raw, src)
        }
    }
}

/// What to send back.
#[derive(Debug, Default)]
pub enum Reply {
    /// Nothing.
    #[default]
    Drop,
    /// One message.
    One(Vec<u8>),
    /// Messages built one at a time as the writer asks for them, in order
    /// (zone transfers over TCP; over UDP only the first is sent).
    Stream(Box<dyn MessageStream>),
}

/// A transfer that fails midway: the connection is closed so the client
/// never takes what it got for the whole answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the answer could not be completed")]
pub struct StreamAborted;

/// A producer of the messages of one multi-message answer (a zone transfer),
/// pulled by the writer one at a time, so only the message being written is
/// held in memory.
pub trait MessageStream: Send {
    /// The next message; `None` when the answer is complete; `Err` when it
    /// cannot be completed (the writer then closes the connection).
    fn next_message(&mut self) -> Option<Result<Vec<u8>, StreamAborted>>;
}

impl std::fmt::Debug for dyn MessageStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageStream")
    }
}

/// A [`MessageStream`] whose every message passes through a hook before it
/// leaves (a signer, for one), in order.
pub struct EachMessage<F> {
    inner: Box<dyn MessageStream>,
    hook: F,
}

impl<F: FnMut(&mut Vec<u8>) -> Result<(), StreamAborted> + Send> EachMessage<F> {
    /// The messages of `inner`, each passed through `hook` (an `Err` from it
    /// aborts the answer).
    pub fn new(inner: Box<dyn MessageStream>, hook: F) -> Self {
        EachMessage { inner, hook }
    }
}

impl<F: FnMut(&mut Vec<u8>) -> Result<(), StreamAborted> + Send> MessageStream for EachMessage<F> {
    fn next_message(&mut self) -> Option<Result<Vec<u8>, StreamAborted>> {
        let mut msg = match self.inner.next_message()? {
            Ok(m) => m,
            Err(e) => return Some(Err(e)),
        };
        Some((self.hook)(&mut msg).map(|()| msg))
    }
}

/// A reply that will be ready later.
pub type Deferred = Pin<Box<dyn Future<Output = Reply> + Send + 'static>>;

/// A handler's decision for one request.
pub enum Action {
    /// Reply at once.
    Now(Reply),
    /// Reply when the future completes. The server runs it only when it is
    /// under its in-flight bound; otherwise the client gets SERVFAIL at once.
    Later(Deferred),
    /// Another worker took it and answers it (the LS's UDP workers take the
    /// XDP workers' forwarded queries): nothing to send here.
    Handed,
}

/// Turns requests into answers. Implemented by the LS and the TS.
pub trait Handler: Send + Sync + 'static {
    /// Decides what to do with one request. Must not block.
    fn handle(&self, req: Request<'_>) -> Action;

    /// A plain TCP connection was closed right after `accept`: the cap
    /// [`ServerOptions::tcp_max_connections`] was full. For a counter; must not block.
    fn tcp_cap_refused(&self) {}

    /// A plain TCP connection was closed right after `accept`: the cap was
    /// contended and its source held its share of it. For a counter; must
    /// not block. Counted at the cap by default.
    fn tcp_share_refused(&self) {
        self.tcp_cap_refused();
    }

    /// Whether a new connection from `ip` may be served at all (the LS's
    /// `allow`): asked right after `accept`, before the connection takes a
    /// place under its cap or starts a TLS handshake. Must not block.
    fn admits_connection(&self, _ip: std::net::IpAddr) -> bool {
        true
    }

    /// A plain TCP connection was closed right after `accept`: its client is
    /// not admitted ([`Handler::admits_connection`]). For a counter; must not block.
    fn tcp_acl_refused(&self) {}

    /// A deferred request was answered SERVFAIL at once, its future
    /// dropped: the server's in-flight bound
    /// ([`ServerOptions::max_inflight`]) was full. For counters (the LS's
    /// `shed{reason="inflight"}` and its SERVFAIL answers); must not block.
    fn inflight_refused(&self) {}

    /// Wraps the future of a connection whose requests are polled together
    /// (DNS over HTTP/2: the requests of one read in one poll), so the
    /// handler can batch what one poll of it sends (the LS corks its
    /// upstream UDP queries into one `sendmmsg`). The future itself by default.
    fn wrap_connection<F: Future + Send>(&self, conn: F) -> impl Future<Output = F::Output> + Send {
        conn
    }

    /// How long the queries in flight may take once the server stops, as
    /// the handler's configuration says now (the LS's longest deadline and
    /// a margin: a reload may have lengthened it since the server started
    /// with [`ServerOptions::drain_grace`]). The server waits the longer of
    /// the two. `None` by default. Must not block.
    fn drain_grace(&self) -> Option<Duration> {
        None
    }
    /// Who may put a PROXY protocol v2 header before a UDP query or at a
    /// plain TCP connection's start (`proxy_from`), and its counters;
    /// `None` (by default): no header is looked for.
    fn proxy_gate(&self) -> Option<&proxy_gate::ProxyGate> {
        None
    }

    /// What a worker that calls [`Handler::handle_local`] keeps for this
    /// handler ([`local::WorkerLocal`]): made once per worker. Nothing of
    /// the handler's by default.
    fn worker_local(&self) -> local::WorkerLocal {
        local::WorkerLocal::default()
    }

    /// [`Handler::handle`] by a worker that keeps `local` for the handler
    /// from query to query (an XDP worker); an answer made at once may be
    /// written into `local.spare`, which the worker gives back once it is
    /// sent. [`Handler::handle`] by default.
    fn handle_local(&self, req: Request<'_>, local: &mut local::WorkerLocal) -> Action {
        let _ = local;
        self.handle(req)
    }

    /// Called by such a worker at least every few hundred milliseconds,
    /// busy or idle (the LS hands its counts in for the dynamic blocks'
    /// tick). Nothing by default; must not block.
    fn local_idle(&self, _local: &mut local::WorkerLocal) {}
}

/// Limits of one server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// UDP sockets (and worker threads) per listen address.
    pub workers: usize,
    /// Deferred answers in flight, UDP and TCP together; past it, SERVFAIL at once.
    pub max_inflight: usize,
    /// Concurrent TCP connections; past it, new connections are closed at once.
    pub tcp_max_connections: usize,
    /// A TCP connection with no query in progress for this long is closed.
    pub tcp_idle_timeout: Duration,
    /// Queries one TCP connection may have in progress (RFC 7766 pipelining).
    pub tcp_max_pipeline: usize,
    /// After shutdown is asked, how long queries already in flight may take to
    /// be answered before they are abandoned (at least: see
    /// [`Handler::drain_grace`]).
    pub drain_grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_inflight: 65_536,
            tcp_max_connections: 1_024,
            tcp_idle_timeout: Duration::from_secs(10),
            tcp_max_pipeline: 64,
            drain_grace: Duration::from_secs(5),
        }
    }
}

/// Bound sockets of one server, not yet serving.
pub struct Listeners {
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    addrs: Vec<SocketAddr>,
    dot: Option<tls::DotListeners>,
    doh: Option<doh::DohListeners>,
    doq: Option<doq::DoqListeners>,
    doh3: Option<doh3::Doh3Listeners>,
}

impl Listeners {
    /// A duplicate of the first UDP socket (sharing its address and port),
    /// for a path that answers some datagrams outside the server (AF_XDP).
    ///
    /// # Errors
    /// No UDP socket, or the OS error of duplicating it.
    pub fn udp_dup(&self) -> std::io::Result<std::net::UdpSocket> {
        let first = self
            .udp
            .first()
            .ok_or_else(|| std::io::Error::other("no UDP socket"))?;
        Ok(socket2::SockRef::from(first).try_clone()?.into())
    }

    /// Binds UDP (`workers` SO_REUSEPORT sockets) and TCP on each address.
    /// Port 0 picks one free port shared by UDP and TCP of that address.
    ///
    /// # Errors
    /// The address cannot be bound (in use, not local, no permission).
    pub fn bind(addrs: &[SocketAddr], workers: usize) -> Result<Self, socket::BindError> {
        let mut l = Listeners {
            udp: Vec::new(),
            tcp: Vec::new(),
            addrs: Vec::new(),
            dot: None,
            doh: None,
            doq: None,
            doh3: None,
        };
        for addr in addrs {
            let (udp, tcp, bound) = socket::bind_pair(*addr, workers.max(1))?;
            l.udp.extend(udp);
            l.tcp.push(tcp);
            l.addrs.push(bound);
        }
        Ok(l)
    }

    /// Takes the UDP sockets out, for a caller that serves UDP itself (the
    /// LS's fast path); [`serve`] then serves TCP only.
    pub fn take_udp(&mut self) -> Vec<UdpSocket> {
        std::mem::take(&mut self.udp)
    }

    /// Serves DNS over QUIC on `doq` too (the LS's `[ls.quic]`).
    pub fn set_doq(&mut self, doq: doq::DoqListeners) {
        self.doq = Some(doq);
    }

    /// Serves DNS over HTTP/3 on `doh3` too (`[ls.https]` with `http3`).
    pub fn set_doh3(&mut self, doh3: doh3::Doh3Listeners) {
        self.doh3 = Some(doh3);
    }

    /// Serves DNS over TLS on `dot` too (the LS's `[ls.tls]`).
    pub fn set_dot(&mut self, dot: tls::DotListeners) {
        self.dot = Some(dot);
    }

    /// Serves DNS over HTTPS on `doh` too (the LS's `[ls.https]`).
    pub fn set_doh(&mut self, doh: doh::DohListeners) {
        self.doh = Some(doh);
    }

    /// The addresses actually bound (with the real port when 0 was asked).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

/// Adds one to the counter `field` picks of `stats`, each time it is called
/// (a connection past the cap or past its source's share of it: both are
/// the encrypted transports' `cap`).
fn counting(
    stats: Arc<tls_stats::TlsStats>,
    field: fn(&tls_stats::TlsStats) -> &std::sync::atomic::AtomicU64,
) -> impl Fn(places::NoPlace) {
    move |_| _ = field(&stats).fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `admitted`, and when not, one more in `refused`.
fn counted(admitted: bool, refused: &std::sync::atomic::AtomicU64) -> bool {
    if !admitted {
        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    admitted
}

/// `serve`, if there is one: a combinator, not an `async` block, which would
/// hold the connection's whole state twice (see [`tcp::holding`]).
fn if_admitted(serve: Option<impl Future<Output = ()>>) -> impl Future<Output = ()> {
    OptionFuture::from(serve).map(drop)
}

/// Whether a new encrypted connection from `peer` goes on to its handshake under
/// `gate`; one that does not is counted in `refused` (and closed by its caller
/// dropping it, right after `accept`).
fn admit(
    gate: &conn_rate::ConnRate,
    peer: SocketAddr,
    refused: &std::sync::atomic::AtomicU64,
) -> bool {
    let admitted = gate.admit(peer.ip());
    if !admitted {
        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    admitted
}

/// A QUIC endpoint made where it will be served, or `None` (logged, and
/// `died` cancelled: the server stops whole rather than serve without it)
/// when quinn could not take its socket.
fn quic_placed<T>(placed: Result<T, doq::DoqSetupError>, died: &CancellationToken) -> Option<T> {
    placed
        .inspect_err(|err| {
            tracing::error!(%err, "cannot serve quic on a socket");
            died.cancel();
        })
        .ok()
}

/// Shared state of a running server, handed to every listener task.
pub(crate) struct Shared<H> {
    pub(crate) handler: Arc<H>,
    pub(crate) inflight: places::Places,
    pub(crate) opts: ServerOptions,
    /// Cancelled to stop accepting: listeners end, queries in flight finish.
    pub(crate) token: CancellationToken,
    /// Cancelled when the drain grace is over: whatever is left is abandoned.
    pub(crate) abort: CancellationToken,
    pub(crate) tracker: TaskTracker,
    /// Where accepted connections are served (none: on the acceptor's runtime).
    pub(crate) conn_threads: thread::ConnThreads,
}

/// Serves `listeners` with `handler` until `token` is cancelled, then
/// drains: the listeners stop taking queries, every query already in flight
/// is answered (TCP connections finish their pipelined queries and close),
/// and whatever is still running after [`ServerOptions::drain_grace`] is
/// abandoned. Returns when every task has stopped.
pub async fn serve<H: Handler>(
    listeners: Listeners,
    handler: Arc<H>,
    opts: ServerOptions,
    token: CancellationToken,
) {
    serve_on(
        listeners,
        handler,
        opts,
        token,
        thread::ConnThreads::default(),
    )
    .await;
}

/// As [`serve`], each accepted TCP, DoT or DoH connection served on one of
/// `conn_threads` (the LS's worker threads), to its end; the accept loops
/// (the caps, the ACL and the connection rate checked before a hand-over)
/// run on the caller's runtime. Those threads must run until this returns.
pub async fn serve_on<H: Handler>(
    listeners: Listeners,
    handler: Arc<H>,
    opts: ServerOptions,
    token: CancellationToken,
    conn_threads: thread::ConnThreads,
) {
    let tracker = TaskTracker::new();
    // What the server's own tasks and threads watch: `token`'s child,
    // cancelled (with `abort`) when this future is dropped before its end
    // (a task aborted), so the UDP worker threads, which outlive the
    // caller's runtime, stop and close their sockets then too. Nothing is
    // joined on drop: each thread ends on its own at its next wake-up.
    let stop = token.child_token();
    let abort = CancellationToken::new();
    let _on_drop = (stop.clone().drop_guard(), abort.clone().drop_guard());
    let grace = opts.drain_grace;
    // Cancelled when a worker or listener ends on its own (a panic): the
    // server then stops whole rather than serve half (UDP without TCP).
    let died = CancellationToken::new();
    let shared = Arc::new(Shared {
        handler,
        inflight: places::Places::new(opts.max_inflight),
        opts,
        token: stop.clone(),
        abort: abort.clone(),
        tracker: tracker.clone(),
        conn_threads,
    });
    for (i, sock) in listeners.udp.into_iter().enumerate() {
        // Without a stop that wakes it, a worker never waits in its receive.
        let wake = match udp::wake_on_stop(&sock, stop.clone()) {
            Ok((wake, task)) => {
                tracker.spawn(task);
                Some(wake)
            }
            Err(err) => {
                tracing::debug!(?err, "no stop wake for a udp worker");
                None
            }
        };
        let shared = shared.clone();
        thread::start(&tracker, &format!("udp-{i}"), sock, &died, move |s| {
            udp::run(s, shared, wake)
        });
    }
    // TCP, DoT and DoH each have a cap: together they must fit the limit.
    let kinds = 1 + usize::from(listeners.dot.is_some()) + usize::from(listeners.doh.is_some());
    let cap = fdlimit::connection_cap(shared.opts.tcp_max_connections, kinds);
    if cap < shared.opts.tcp_max_connections {
        tracing::warn!(
            cap,
            wanted = shared.opts.tcp_max_connections,
            "the open-file limit lowers the tcp connection cap"
        );
    }
    let conns = Arc::new(places::Places::for_connections(cap));
    let mut accepts = Vec::new();
    for l in listeners.tcp {
        accepts.push(tracker.spawn(tcp::accept_loop(l, shared.clone(), conns.clone())));
    }
    if let Some(dot) = listeners.dot {
        // Its own cap, as large as TCP's: one transport cannot starve the other.
        let conns = Arc::new(places::Places::for_connections(cap));
        for l in dot.listeners {
            let (acceptor, stats) = (dot.acceptor.clone(), dot.stats.clone());
            let gate = dot.conn_rate.clone();
            let serve = move |stream, peer: SocketAddr, shared| {
                let admitted = admit(&gate, peer, &stats.dot_rate_refused);
                let serve = admitted.then(|| {
                    tls::serve_connection(stream, peer, shared, acceptor.clone(), stats.clone())
                });
                if_admitted(serve)
            };
            let at_cap = counting(dot.stats.clone(), |s| &s.dot_cap_refused);
            let (handler, stats) = (shared.handler.clone(), dot.stats.clone());
            let acl = move |peer: SocketAddr| {
                counted(handler.admits_connection(peer.ip()), &stats.dot_acl_refused)
            };
            let accept = tcp::accept_each(l, shared.clone(), conns.clone(), (acl, serve), at_cap);
            accepts.push(tracker.spawn(accept));
        }
    }
    if let Some(doh) = listeners.doh {
        let conns = Arc::new(places::Places::for_connections(cap));
        for l in doh.listeners {
            let (acceptor, path, stats) =
                (doh.acceptor.clone(), doh.path.clone(), doh.stats.clone());
            let (gate, trusted) = (doh.conn_rate.clone(), doh.trusted.clone());
            let serve = move |stream, peer: SocketAddr, shared| {
                let admitted = admit(&gate, peer, &stats.doh_rate_refused);
                let serve = admitted.then(|| {
                    doh_conn::serve_connection(
                        stream,
                        peer,
                        shared,
                        acceptor.clone(),
                        path.clone(),
                        stats.clone(),
                        trusted.clone(),
                    )
                });
                if_admitted(serve)
            };
            let at_cap = counting(doh.stats.clone(), |s| &s.doh_cap_refused);
            let (handler, stats) = (shared.handler.clone(), doh.stats.clone());
            let trusted = doh.trusted.clone();
            // A trusted proxy's requests name their clients: the ACL is
            // theirs, checked per request.
            let acl = move |peer: SocketAddr| {
                let ip = peer.ip();
                counted(
                    trusted.trusts(ip) || handler.admits_connection(ip),
                    &stats.doh_acl_refused,
                )
            };
            let accept = tcp::accept_each(l, shared.clone(), conns.clone(), (acl, serve), at_cap);
            accepts.push(tracker.spawn(accept));
        }
    }
    // Each QUIC endpoint is made and served on a connection thread, its
    // connections on one each (in turn), with every task they spawn.
    // Each QUIC server's cap is one over all its endpoints (as TCP's over
    // its listeners), as large as TCP's.
    if let Some(h3) = listeners.doh3 {
        let conns = Arc::new(places::Places::for_connections(cap));
        for placed in h3.quic.place(&shared.conn_threads) {
            let Some((ep, thread)) = quic_placed(placed, &died) else {
                continue;
            };
            let serve = doh3::serve_endpoint(ep, shared.clone(), h3.side.clone(), conns.clone());
            accepts.push(thread::spawn_tracked(&tracker, thread.as_ref(), serve));
        }
    }
    if let Some(doq) = listeners.doq {
        let conns = Arc::new(places::Places::for_connections(cap));
        for placed in doq.quic.place(&shared.conn_threads) {
            let Some((ep, thread)) = quic_placed(placed, &died) else {
                continue;
            };
            let serve = doq::serve_endpoint(ep, shared.clone(), doq.stats.clone(), conns.clone());
            accepts.push(thread::spawn_tracked(&tracker, thread.as_ref(), serve));
        }
    }
    for accept in accepts {
        let (died, stop) = (died.clone(), stop.clone());
        tracker.spawn(async move {
            let end = accept.await;
            if end.is_err() || !stop.is_cancelled() {
                tracing::error!(panicked = end.is_err(), "a tcp listener ended");
                died.cancel();
            }
        });
    }
    tracker.close();
    tokio::select! {
        () = stop.cancelled() => {}
        () = died.cancelled() => {
            tracing::error!("a server task died: stopping the server rather than serve half of it");
            token.cancel();
        }
    }
    // Read at the stop, not at the start: a reload may have changed it.
    let grace = grace.max(shared.handler.drain_grace().unwrap_or_default());
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(grace = ?grace, "queries still in flight after the drain grace; abandoned");
        abort.cancel();
        tracker.wait().await;
    }
}
