//! The TCP side, per RFC 7766: two-byte length framing, several queries in
//! flight per connection with answers sent as they complete (out of order),
//! an idle timeout, and a cap on connections.
//!
//! One task owns each connection: it reads into a buffer (so a `select!` can
//! never lose half a frame), hands each query to the handler straight from
//! that buffer, polls the deferred answers itself in reused slots
//! ([`AnswerSlots`]: no task per query), and writes replies through one
//! write buffer of its own (each message framed there, no copy per answer).
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{debug, error, warn};

use super::answer_slots::AnswerSlots;
use super::places::{NoPlace, Place, Places};
use super::{Action, Handler, Reply, Request, Shared, Transport};
use crate::dns;

/// A client that does not take an answer within this long is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a `proxy_from` sender has to send its whole PROXY header
/// after connecting (dnsdist's read timeout); then the connection closes.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Room kept free in a connection's buffer for each read.
const READ_AT_LEAST: usize = 1024;
/// A connection's buffer grown past this by a large frame shrinks back to it.
const KEEP_BUFFER: usize = 4096;
/// Pause after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one log line per this long about accept errors that persist.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// Accepts TCP connections on `listener` until the server stops, each served
/// by its own task under the connection cap `conns`; one refused at the cap or
/// past its source's share of it is told to the handler
/// ([`Handler::tcp_cap_refused`], [`Handler::tcp_share_refused`]).
pub(crate) async fn accept_loop<H: Handler>(
    listener: TcpListener,
    shared: Arc<Shared<H>>,
    conns: Arc<Places>,
) {
    let serve = |stream: TcpStream, peer, shared| {
        let local = stream.local_addr().ok();
        Connection::new(stream, peer, shared).at(local).serve()
    };
    let handler = shared.handler.clone();
    let at_cap = move |why| match why {
        NoPlace::Full => handler.tcp_cap_refused(),
        NoPlace::Share => handler.tcp_share_refused(),
    };
    let handler = shared.handler.clone();
    let admit = move |peer: SocketAddr| {
        let admitted = handler.admits_connection(peer.ip());
        if !admitted {
            handler.tcp_acl_refused();
        }
        admitted
    };
    accept_each(listener, shared, conns, (admit, serve), at_cap).await;
}

/// Accepts connections on `listener` until the server stops. One whose peer
/// `admit` refuses (the ACL: it counts it) is closed at once, before it takes a
/// place under the cap `conns`; past the cap, or past its source's share of
/// the cap once it is contended ([`Places`]: the connecting address's group),
/// one is closed at once (and `at_cap` called with why: a counter); else `serve` runs it (with `TCP_NODELAY` set)
/// on a task of the server's. Accept errors (EMFILE...) pause the loop and are
/// logged at most every [`ACCEPT_WARN_EVERY`].
pub(crate) async fn accept_each<H, A, F, Fut>(
    listener: TcpListener,
    shared: Arc<Shared<H>>,
    conns: Arc<Places>,
    (admit, serve): (A, F),
    at_cap: impl Fn(NoPlace),
) where
    H: Handler,
    A: Fn(SocketAddr) -> bool,
    F: Fn(TcpStream, SocketAddr, Arc<Shared<H>>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    // When the last accept error was logged, and how many came since.
    let mut warned: Option<Instant> = None;
    let mut unlogged = 0u64;
    loop {
        let (stream, peer) = tokio::select! {
            _ = shared.token.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(err) => {
                    // EMFILE, ECONNABORTED...: none of them ends the listener.
                    if warned.is_none_or(|at| at.elapsed() >= ACCEPT_WARN_EVERY) {
                        warn!(?err, since_last_line = unlogged, "accept error");
                        warned = Some(Instant::now());
                        unlogged = 0;
                    } else {
                        unlogged += 1;
                    }
                    tokio::select! {
                        _ = shared.token.cancelled() => return,
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        if !admit(peer) {
            debug!(%peer, "connection from outside the ACL, closing");
            drop(stream);
            continue;
        }
        let permit = match conns.try_take(peer.ip()) {
            Ok(place) => place,
            Err(why) => {
                debug!(%peer, ?why, "connection cap or its share reached, closing");
                at_cap(why);
                drop(stream);
                continue;
            }
        };
        // Answers (and a TLS handshake's flights) go out as they are written: with
        // Nagle's algorithm a small write waits for the ACK of the one before,
        // which a client's delayed ACK holds back ~40 ms.
        let _ = stream.set_nodelay(true);
        match shared.conn_threads.next() {
            Some(thread) => hand_over(thread, (stream, peer), &shared, serve.clone(), permit),
            None => {
                shared
                    .tracker
                    .spawn(holding(serve(stream, peer, shared.clone()), permit));
            }
        }
    }
}

/// Serves the connection `stream` from `peer` on `thread` (a worker's
/// runtime): taken off this runtime's epoll and registered with that
/// thread's, so its reads, its queries (the tasks it spawns) and their
/// upstream exchanges all run there; tracked by the server as its own tasks
/// are, and holding `permit` (its place under the cap) to its end.
fn hand_over<H, F, Fut>(
    thread: &tokio::runtime::Handle,
    (stream, peer): (TcpStream, SocketAddr),
    shared: &Arc<Shared<H>>,
    serve: F,
    permit: Place,
) where
    H: Handler,
    F: FnOnce(TcpStream, SocketAddr, Arc<Shared<H>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stream = match stream.into_std() {
        Ok(s) => s,
        Err(err) => {
            debug!(%peer, ?err, "cannot hand a connection over, closing");
            return;
        }
    };
    let server = shared.clone();
    let conn = async move {
        match TcpStream::from_std(stream) {
            Ok(stream) => holding(serve(stream, peer, server), permit).await,
            Err(err) => debug!(%peer, ?err, "cannot register a connection with its worker"),
        }
    };
    thread.spawn(shared.tracker.track_future(conn));
}

/// `conn`, then `held` dropped: a combinator, not an `async` block that awaits
/// `conn`, which would hold the connection's whole state twice (the block keeps
/// the future it captured beside the one it awaits).
pub(crate) fn holding<T>(conn: impl Future<Output = ()>, held: T) -> impl Future<Output = ()> {
    conn.map(move |()| drop(held))
}

/// A deferred answer in a connection's slots (the handler's `Action::Later`).
type Pending = std::pin::Pin<Box<dyn Future<Output = Reply> + Send>>;

/// One client connection: TCP here, or a TLS stream over one ([`super::tls`]).
pub(crate) struct Connection<H, S> {
    stream: S,
    peer: std::net::SocketAddr,
    /// The listener's address the connection came to, when known.
    local: Option<std::net::SocketAddr>,
    shared: Arc<Shared<H>>,
    /// Bytes read and not yet framed.
    buf: Vec<u8>,
    /// Deferred answers of this connection, each with its place under the
    /// in-flight bound and whether its answer is to be padded.
    pending: AnswerSlots<Pending, (Place, bool)>,
    /// One message at a time, framed, on its way out (kept between answers).
    out: Vec<u8>,
    /// Over DNS over TLS: its counters; answers to padded queries are padded
    /// (RFC 8467).
    encrypted: Option<Arc<super::tls_stats::TlsStats>>,
    /// A plain connection to a server with `proxy_from`: its first bytes
    /// are still to be judged ([`super::proxy_gate::ProxyGate::stream_start`]).
    awaiting_start: bool,
}

impl<H: Handler, S: AsyncRead + AsyncWrite + Unpin> Connection<H, S> {
    pub(crate) fn new(stream: S, peer: std::net::SocketAddr, shared: Arc<Shared<H>>) -> Self {
        Connection {
            stream,
            peer,
            local: None,
            buf: Vec::with_capacity(1024),
            pending: AnswerSlots::default(),
            out: Vec::new(),
            encrypted: None,
            awaiting_start: shared.handler.proxy_gate().is_some(),
            shared,
        }
    }

    /// The connection, come to the listener at `local` (the accepted
    /// socket's address; for dnstap's responder).
    pub(crate) fn at(mut self, local: Option<std::net::SocketAddr>) -> Self {
        self.local = local;
        self
    }

    /// A connection over DNS over TLS: as [`Connection::new`], its queries counted in
    /// `stats` and the answers to padded queries padded.
    pub(crate) fn encrypted(
        stream: S,
        peer: std::net::SocketAddr,
        shared: Arc<Shared<H>>,
        stats: Arc<super::tls_stats::TlsStats>,
    ) -> Self {
        Connection {
            encrypted: Some(stats),
            awaiting_start: false,
            ..Connection::new(stream, peer, shared)
        }
    }

    /// Serves the connection until the client closes it, it idles out, or the
    /// server stops. A plain function around an `async` block that borrows the
    /// connection it captured: an `async fn` taking it by value would hold it
    /// twice (its argument, and the local it is moved into).
    #[allow(clippy::manual_async_fn)] // as an `async fn` it would hold `self` twice
    pub(crate) fn serve(mut self) -> impl Future<Output = ()> {
        async move { self.run().await }
    }

    async fn run(&mut self) {
        let idle = self.shared.opts.tcp_idle_timeout;
        let max_pipeline = self.shared.opts.tcp_max_pipeline.max(1);
        // A trusted sender's header must come whole in a short while.
        let header_wait = self.awaiting_start
            && (self.shared.handler.proxy_gate()).is_some_and(|g| g.trusts(self.peer.ip()));
        let first_wait = if header_wait {
            idle.min(PROXY_HEADER_TIMEOUT)
        } else {
            idle
        };
        let mut deadline = Instant::now() + first_wait;
        // The client closed its side (its queries already read are still answered).
        let mut eof = false;
        // The server stops: no more queries are taken, those in progress are answered.
        let mut stopping = false;
        loop {
            // The queries already read, as many as the pipeline has room for:
            // the rest wait in the buffer (and nothing more is read) until
            // answers going out make room.
            if !stopping {
                let judging = self.awaiting_start;
                match self.drain_frames(max_pipeline).await {
                    Ok(true) => deadline = Instant::now() + idle,
                    // Its start judged: the idle timeout from now on.
                    Ok(false) if judging && !self.awaiting_start => {
                        deadline = Instant::now() + idle;
                    }
                    Ok(false) => {}
                    Err(()) => break,
                }
            }
            if (eof || stopping) && self.pending.is_empty() {
                break;
            }
            // Read straight into the buffer (no chunk on the task: an idle
            // connection's memory is its task, its buffer and its stream).
            if self.buf.capacity() - self.buf.len() < READ_AT_LEAST {
                self.buf.reserve(READ_AT_LEAST);
            }
            let reading = !eof && !stopping && self.pending.len() < max_pipeline;
            tokio::select! {
                _ = self.shared.abort.cancelled() => break,
                _ = self.shared.token.cancelled(), if !stopping => stopping = true,
                Some((reply, (place, pad))) = self.pending.next(), if !self.pending.is_empty() => {
                    drop(place);
                    if !self.write(padded(reply, pad)).await { break; }
                    if self.pending.is_empty() { deadline = Instant::now() + idle; }
                }
                r = self.stream.read_buf(&mut self.buf), if reading => {
                    match r {
                        Ok(0) => eof = true,
                        Ok(_) => {}
                        Err(err) => { debug!(peer = %self.peer, ?err, "tcp read error"); break; }
                    }
                }
                _ = sleep_until(deadline), if self.pending.is_empty() => {
                    debug!(peer = %self.peer, "tcp idle timeout");
                    if header_wait && self.awaiting_start
                        && let Some(gate) = self.shared.handler.proxy_gate()
                    {
                        gate.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    break;
                }
            }
        }
        // The answers still owed are dropped (and their places given back).
        self.pending.clear();
        // A TLS close flushes what the TLS layer still holds, then its
        // close_notify: a client that reads nothing (a zero window) would hold
        // that, its slot under the cap and the server's stop, for ever.
        tokio::select! {
            _ = self.shared.abort.cancelled() => {}
            r = timeout(WRITE_TIMEOUT, self.stream.shutdown()) => {
                if r.is_err() {
                    debug!(peer = %self.peer, "tcp close timed out");
                }
            }
        }
    }

    /// Handles the complete frames in the buffer while fewer than `max_pipeline`
    /// queries are in progress. `Ok(true)` if any was taken; `Err` when the
    /// connection must close.
    async fn drain_frames(&mut self, max_pipeline: usize) -> Result<bool, ()> {
        let mut any = false;
        if self.awaiting_start && !self.take_start()? {
            return Ok(false);
        }
        loop {
            if self.pending.len() >= max_pipeline {
                return Ok(any);
            }
            let Some(len) = self
                .buf
                .get(..2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            else {
                return Ok(any);
            };
            if len == 0 {
                return Err(()); // an empty message is no DNS message
            }
            if self.buf.len() < 2 + len {
                return Ok(any);
            }
            any = true;
            // The handler takes the query straight from the buffer (taken
            // out while it reads it: no copy); what it answers at once is
            // written once the frame has left the buffer.
            let buf = std::mem::take(&mut self.buf);
            let now = buf.get(2..2 + len).and_then(|frame| self.dispatch(frame));
            self.buf = buf;
            self.buf.drain(..2 + len);
            // The room a large frame made is given back once it is taken: one
            // read then brings no more than an ordinary buffer's worth.
            if self.buf.capacity() > KEEP_BUFFER && self.buf.len() < KEEP_BUFFER {
                self.buf.shrink_to(KEEP_BUFFER);
            }
            if let Some(reply) = now
                && !self.write(reply).await
            {
                return Err(());
            }
        }
    }

    /// Judges the connection's first bytes under the server's PROXY gate:
    /// `Ok(true)` once DNS frames may follow (a header taken: its client is
    /// the connection's from now on), `Ok(false)` while more bytes are
    /// needed, `Err` when the connection must close.
    fn take_start(&mut self) -> Result<bool, ()> {
        use super::proxy_gate::StreamStart;
        let Some(gate) = self.shared.handler.proxy_gate() else {
            self.awaiting_start = false;
            return Ok(true);
        };
        match gate.stream_start(&self.buf, self.peer) {
            StreamStart::More => return Ok(false),
            StreamStart::Refuse => {
                debug!(peer = %self.peer, "PROXY header refused, closing");
                return Err(());
            }
            StreamStart::Plain => {}
            StreamStart::Header(len, client) => {
                self.buf.drain(..len);
                self.peer = client;
            }
        }
        self.awaiting_start = false;
        Ok(true)
    }

    /// Hands the query `raw` (borrowed from the connection's buffer) to the
    /// handler: its answer when it is to be written now (padded as the
    /// query asks), or `None` when it is deferred (taken into
    /// `pending` under a place of the in-flight bound).
    fn dispatch(&mut self, raw: &[u8]) -> Option<Reply> {
        let req = Request {
            raw,
            src: self.peer,
            transport: Transport::Tcp,
            via: if self.encrypted.is_some() {
                crate::dns::Via::Dot
            } else {
                crate::dns::Via::Tcp
            },
            local: self.local,
        };
        if let Some(stats) = &self.encrypted {
            stats
                .dot_queries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let pad = self.encrypted.is_some() && dns::query_is_padded(raw);
        match self.shared.handler.handle(req) {
            Action::Now(reply) => Some(padded(reply, pad)),
            Action::Handed => None,
            Action::Later(fut) => match self.shared.inflight.take(self.peer.ip()) {
                Some(place) => {
                    self.pending.push(fut, (place, pad));
                    None
                }
                None => {
                    self.shared.handler.inflight_refused();
                    dns::servfail_for(raw).map(|b| padded(Reply::One(b), pad))
                }
            },
        }
    }

    /// Writes the reply's messages, each with its length prefix, a stream's
    /// one at a time as it builds them. `false` on failure (or a stream that
    /// aborts): the connection is then closed.
    async fn write(&mut self, reply: Reply) -> bool {
        match reply {
            Reply::Drop => true,
            Reply::One(b) => {
                let written = self.write_message(&b).await;
                super::recycle::give(b);
                written
            }
            Reply::Stream(mut s) => {
                while let Some(next) = s.next_message() {
                    let Ok(m) = next else {
                        debug!(peer = %self.peer, "answer aborted midway, closing");
                        return false;
                    };
                    if !self.write_message(&m).await {
                        return false;
                    }
                }
                true
            }
        }
    }

    /// Writes one message with its length prefix. `false` on failure, or
    /// for a message too long for the two-byte length: never skipped (the
    /// next message of a transfer would follow a gap), the connection is
    /// closed.
    async fn write_message(&mut self, m: &[u8]) -> bool {
        let Ok(len) = u16::try_from(m.len()) else {
            error!(peer = %self.peer, len = m.len(), "answer too long for tcp, connection closed");
            return false;
        };
        self.out.clear();
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(m);
        // Flushed too: what the TLS layer buffers when the socket is full would
        // otherwise wait for the next write (or the close) to go out.
        let (stream, out) = (&mut self.stream, &self.out);
        let write = async {
            stream.write_all(out).await?;
            stream.flush().await
        };
        let written = matches!(timeout(WRITE_TIMEOUT, write).await, Ok(Ok(())));
        // A transfer's large message does not keep its room for ever.
        if self.out.capacity() > KEEP_BUFFER {
            self.out = Vec::new();
        }
        if !written {
            debug!(peer = %self.peer, "tcp write failed or timed out");
        }
        written
    }
}

/// `reply`, its answer padded when `pad` (RFC 8467: the client padded its query).
pub(crate) fn padded(reply: Reply, pad: bool) -> Reply {
    match reply {
        Reply::One(mut b) if pad => {
            dns::pad_answer(&mut b);
            Reply::One(b)
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{MessageStream, ServerOptions, StreamAborted};
    use tokio::sync::Semaphore;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    /// A connection's future with 16 KiB of state held across an await.
    async fn big_connection() {
        let state = [7u8; 16 * 1024];
        tokio::task::yield_now().await;
        std::hint::black_box(&state);
    }

    #[test]
    fn a_connection_spawned_with_its_permit_and_admission_holds_its_state_once() {
        let alone = std::mem::size_of_val(&big_connection());
        assert!(alone >= 16 * 1024);
        let held = holding(big_connection(), Arc::new(()));
        assert!(std::mem::size_of_val(&held) < alone + 64, "{alone}");
        let admitted = super::super::if_admitted(Some(big_connection()));
        assert!(std::mem::size_of_val(&admitted) < alone + 64, "{alone}");
    }

    struct Silent;

    impl Handler for Silent {
        fn handle(&self, _: Request<'_>) -> Action {
            Action::Now(Reply::Drop)
        }
    }

    /// The messages given, in order.
    struct Messages(std::vec::IntoIter<Vec<u8>>);

    impl MessageStream for Messages {
        fn next_message(&mut self) -> Option<Result<Vec<u8>, StreamAborted>> {
            self.0.next().map(Ok)
        }
    }

    /// Answers every query later, each once `gate` gives it a permit (its
    /// first two bytes echoed); counts the queries it was handed.
    struct Gated {
        handled: Arc<std::sync::atomic::AtomicUsize>,
        gate: Arc<Semaphore>,
    }

    impl Handler for Gated {
        fn handle(&self, req: Request<'_>) -> Action {
            self.handled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (gate, id) = (self.gate.clone(), req.raw[..2].to_vec());
            Action::Later(Box::pin(async move {
                gate.acquire().await.unwrap().forget();
                Reply::One([&id[..], &[0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0]].concat())
            }))
        }
    }

    /// A server state around `handler` with `inflight` permits.
    fn shared_of<H: Handler>(handler: H, inflight: usize) -> Arc<Shared<H>> {
        Arc::new(Shared {
            handler: Arc::new(handler),
            inflight: crate::server::places::Places::new(inflight),
            opts: ServerOptions::default(),
            token: CancellationToken::new(),
            abort: CancellationToken::new(),
            tracker: TaskTracker::new(),
            conn_threads: crate::server::thread::ConnThreads::default(),
        })
    }

    /// `n` framed 12-byte queries, ids 0, 1, ...
    fn frames(n: u16) -> Vec<u8> {
        let mut out = Vec::new();
        for id in 0..n {
            out.extend_from_slice(&[0, 12]);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        }
        out
    }

    /// The next framed message from `theirs`.
    async fn next_frame(theirs: &mut tokio::io::DuplexStream) -> Vec<u8> {
        let mut len = [0u8; 2];
        theirs.read_exact(&mut len).await.unwrap();
        let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
        theirs.read_exact(&mut m).await.unwrap();
        m
    }

    /// 600 queries in one write: the connection takes `tcp_max_pipeline` (64)
    /// of them and no more until answers go out, one more for each answer; the
    /// client then half-closes and every query it sent is still answered.
    #[tokio::test(start_paused = true)]
    async fn queries_in_progress_stay_within_the_pipeline_bound() {
        let handled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let handler = Gated {
            handled: handled.clone(),
            gate: gate.clone(),
        };
        let shared = shared_of(handler, 10_000);
        let max = shared.opts.tcp_max_pipeline;
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let conn = Connection::new(ours, "127.0.0.1:1".parse().unwrap(), shared);
        let served = tokio::spawn(conn.serve());
        theirs.write_all(&frames(600)).await.unwrap();
        let handled_now = || handled.load(std::sync::atomic::Ordering::Relaxed);
        // The paused clock moves on only once every task waits.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(handled_now(), max);
        gate.add_permits(3);
        for _ in 0..3 {
            next_frame(&mut theirs).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(handled_now(), max + 3);
        theirs.shutdown().await.unwrap();
        gate.add_permits(600);
        let mut ids = std::collections::BTreeSet::new();
        for _ in 3..600 {
            let m = next_frame(&mut theirs).await;
            ids.insert(u16::from_be_bytes([m[0], m[1]]));
        }
        assert_eq!(handled_now(), 600);
        assert_eq!(ids.len(), 597, "every query answered once");
        let mut rest = Vec::new();
        theirs.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        served.await.unwrap();
    }

    /// Over DNS over TLS, the SERVFAIL of a query over the in-flight bound is
    /// padded when the query was (RFC 7830 §4), as every other answer is.
    #[tokio::test]
    async fn the_servfail_at_the_inflight_bound_is_padded_like_any_answer() {
        let handler = Gated {
            handled: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        };
        let shared = shared_of(handler, 0);
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let stats = Arc::new(crate::server::tls_stats::TlsStats::default());
        let peer = "127.0.0.1:1".parse().unwrap();
        let served = tokio::spawn(Connection::encrypted(ours, peer, shared, stats).serve());
        // `a. A` with an OPT carrying an empty padding option (code 12).
        let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 4, 0, 12, 0, 0]);
        assert!(dns::query_is_padded(&q));
        let framed = [&(q.len() as u16).to_be_bytes()[..], &q].concat();
        theirs.write_all(&framed).await.unwrap();
        let answer = next_frame(&mut theirs).await;
        assert_eq!(answer[3] & 0x0f, 2, "SERVFAIL");
        assert_eq!(answer.len() % dns::RESPONSE_BLOCK, 0, "padded: {answer:?}");
        drop(theirs);
        served.await.unwrap();
    }

    #[tokio::test]
    async fn a_message_too_long_to_frame_closes_the_connection_and_nothing_follows_it() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let shared = Arc::new(Shared {
            handler: Arc::new(Silent),
            inflight: crate::server::places::Places::new(1),
            opts: ServerOptions::default(),
            token: CancellationToken::new(),
            abort: CancellationToken::new(),
            tracker: TaskTracker::new(),
            conn_threads: crate::server::thread::ConnThreads::default(),
        });
        let mut conn = Connection::new(ours, "127.0.0.1:1".parse().unwrap(), shared);
        let messages = vec![vec![1u8; 20], vec![2u8; 65_536], vec![3u8; 20]];
        let reply = Reply::Stream(Box::new(Messages(messages.into_iter())));
        assert!(!conn.write(reply).await, "the connection is to close");
        drop(conn);
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).await.unwrap();
        let first: Vec<u8> = [&[0, 20][..], &[1u8; 20][..]].concat();
        assert_eq!(got, first, "the first message alone: none skipped");
    }
}
