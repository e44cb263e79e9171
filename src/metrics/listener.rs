//! The metrics server's listener: at most [`MAX_CONNECTIONS`] open
//! connections, none of which can hold a slot by sending slowly.
//!
//! A connection lives under two clocks, neither reset by a trickle of bytes:
//! - between requests (nothing read since its last answer), it is closed
//!   after [`IDLE_TIMEOUT`] without a byte either way;
//! - from the first byte of a request, the answer must start within
//!   [`REQUEST_TIMEOUT`]: the header-read timeout and whole-request deadline
//!   in one (our routes are answered from memory), however the bytes
//!   arrive. A slowloris that sends a header line every few seconds is closed
//!   after [`REQUEST_TIMEOUT`], not kept alive by each line.
//!
//! At the cap, a new connection is not refused: it takes the slot of the
//! connection chosen by [`victim`]: a connection idle between requests (the
//! one idle longest) before any connection with a request under way, and
//! among those the one whose request started first. A new connection counts
//! as under way from its accept (a client connects to ask). A probe
//! (`/health`, `/ready`) that connects during an attack has the newest
//! request of all and is answered within milliseconds: connections an
//! attacker keeps alive between requests go before it, and so do older
//! trickled requests, so the attacker would have to open [`MAX_CONNECTIONS`]
//! new connections within the probe's few milliseconds to push it out.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::debug;

/// Most HTTP connections open at once; past it a new one takes the slot of another.
const MAX_CONNECTIONS: usize = 64;
/// A connection between requests with no byte read or written for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// From a request's first byte to its answer's first byte, at most this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One open connection, as the listener sees it.
#[derive(Debug, Clone)]
struct Slot {
    id: u64,
    /// When its request started (or it was accepted), or when it was last
    /// answered.
    since: Instant,
    /// A request is under way (or none has come yet since the accept).
    in_request: bool,
    /// Cancelled to close the connection.
    kill: CancellationToken,
}

/// The open connections.
#[derive(Debug, Default)]
struct Slots {
    open: Vec<Slot>,
    next_id: u64,
}

/// Which of `open` gives its place to a newcomer: one idle between
/// requests (the longest idle) before one with a request under way (the
/// earliest started). `None` when `open` is empty.
fn victim(open: &[Slot]) -> Option<usize> {
    open.iter()
        .enumerate()
        .min_by_key(|(_, s)| (s.in_request, s.since))
        .map(|(i, _)| i)
}

/// Locks `m`, whether or not a holder panicked (the slot list stays usable).
fn lock(m: &Mutex<Slots>) -> std::sync::MutexGuard<'_, Slots> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A listener that holds at most [`MAX_CONNECTIONS`] open connections: past
/// that a new one takes the place of the [`victim`].
pub(super) struct Capped {
    inner: TcpListener,
    slots: Arc<Mutex<Slots>>,
}

impl Capped {
    /// Caps connections accepted on `inner`.
    pub(super) fn new(inner: TcpListener) -> Self {
        Self {
            inner,
            slots: Arc::new(Mutex::new(Slots::default())),
        }
    }
}

impl axum::serve::Listener for Capped {
    type Io = HttpConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (HttpConn, SocketAddr) {
        // axum's TcpListener impl retries transient accept errors itself.
        let (io, peer) = axum::serve::Listener::accept(&mut self.inner).await;
        let now = Instant::now();
        let kill = CancellationToken::new();
        let id = {
            let mut slots = lock(&self.slots);
            if slots.open.len() >= MAX_CONNECTIONS
                && let Some(i) = victim(&slots.open)
            {
                let gone = slots.open.swap_remove(i);
                gone.kill.cancel();
                debug!(%peer, in_request = gone.in_request, "metrics: connection cap reached; one closed");
            }
            let id = slots.next_id;
            slots.next_id += 1;
            slots.open.push(Slot {
                id,
                since: now,
                in_request: true,
                kill: kill.clone(),
            });
            id
        };
        let conn = HttpConn {
            io,
            timer: Box::pin(tokio::time::sleep_until(now + IDLE_TIMEOUT)),
            in_request: false,
            kill: Box::pin(kill.cancelled_owned()),
            id,
            slots: self.slots.clone(),
        };
        (conn, peer)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// One HTTP connection: holds its slot, fails with `TimedOut` when its clock
/// runs out and with `ConnectionReset` when its slot is taken.
pub(super) struct HttpConn {
    io: TcpStream,
    /// The idle or the request deadline, whichever applies now.
    timer: Pin<Box<Sleep>>,
    /// Bytes of a request read and its answer not started.
    in_request: bool,
    kill: Pin<Box<WaitForCancellationFutureOwned>>,
    id: u64,
    slots: Arc<Mutex<Slots>>,
}

impl Drop for HttpConn {
    fn drop(&mut self) {
        let mut slots = lock(&self.slots);
        if let Some(i) = slots.open.iter().position(|s| s.id == self.id) {
            slots.open.swap_remove(i);
        }
    }
}

impl HttpConn {
    /// Bytes were read: the first of a request starts its deadline; more do
    /// not move it. Between requests, a read is activity.
    fn on_read(&mut self) {
        if !self.in_request {
            self.in_request = true;
            let now = Instant::now();
            self.timer.as_mut().reset(now + REQUEST_TIMEOUT);
            self.mark(true, now);
        }
    }

    /// Records in the slot list whether a request is under way, and since when.
    fn mark(&self, in_request: bool, at: Instant) {
        let mut slots = lock(&self.slots);
        if let Some(s) = slots.open.iter_mut().find(|s| s.id == self.id) {
            s.in_request = in_request;
            s.since = at;
        }
    }

    /// Bytes were written (an answer): the request is over and the
    /// connection idles.
    fn on_write(&mut self) {
        let now = Instant::now();
        if self.in_request {
            self.in_request = false;
            self.mark(false, now);
        }
        self.timer.as_mut().reset(now + IDLE_TIMEOUT);
    }

    /// Closed to make room for another connection?
    fn killed(&mut self, cx: &mut Context<'_>) -> bool {
        self.kill.as_mut().poll(cx).is_ready()
    }

    /// `Pending` from the socket becomes an error once the deadline passed.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if self.killed(cx) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for HttpConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.killed(cx) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.on_read();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.pending(cx),
        }
    }
}

impl AsyncWrite for HttpConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.killed(cx) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.on_write();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.pending(cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.pending(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn slot(id: u64, since: Instant, in_request: bool) -> Slot {
        Slot {
            id,
            since,
            in_request,
            kill: CancellationToken::new(),
        }
    }

    #[test]
    fn the_victim_is_idle_before_busy_then_the_oldest() {
        let t = Instant::now();
        let s = |n| t + Duration::from_secs(n);
        assert_eq!(victim(&[]), None);
        // A connection idle between requests goes before any request under
        // way, even one idle for less time than the request is old: kept-alive
        // connections cannot shield themselves behind a waiting probe.
        let open = [
            slot(0, s(9), false),
            slot(1, s(5), true),
            slot(2, s(3), true),
        ];
        assert_eq!(victim(&open).map(|i| open[i].id), Some(0));
        // Only requests under way: the one that started first (a trickled
        // request), never the newest (a probe that just connected).
        let open = [
            slot(0, s(4), true),
            slot(1, s(2), true),
            slot(2, s(8), true),
        ];
        assert_eq!(victim(&open).map(|i| open[i].id), Some(1));
        // Only idle ones: the one idle longest.
        let open = [slot(0, s(4), false), slot(1, s(2), false)];
        assert_eq!(victim(&open).map(|i| open[i].id), Some(1));
    }

    /// A connection with no byte either way for IDLE_TIMEOUT is closed: one
    /// that never sent anything, IDLE_TIMEOUT after it was accepted; one
    /// answered, IDLE_TIMEOUT after its answer's last byte (METRICS.md:
    /// "closes one idle for 30 s"). On a paused clock, so exactly.
    #[tokio::test(start_paused = true)]
    async fn a_connection_idle_for_the_idle_timeout_is_closed() {
        use tokio::io::AsyncWriteExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut capped = Capped::new(listener);

        let _silent = TcpStream::connect(addr).await.unwrap();
        let (mut conn, _) = axum::serve::Listener::accept(&mut capped).await;
        closed_idle(&mut conn, Instant::now()).await;

        let _answered = TcpStream::connect(addr).await.unwrap();
        let (mut conn, _) = axum::serve::Listener::accept(&mut capped).await;
        tokio::time::sleep(IDLE_TIMEOUT - Duration::from_secs(1)).await;
        conn.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        closed_idle(&mut conn, Instant::now()).await;
    }

    /// `conn`'s next read fails with TimedOut exactly IDLE_TIMEOUT after
    /// `since` (a paused clock).
    async fn closed_idle(conn: &mut (impl tokio::io::AsyncRead + Unpin), since: Instant) {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 8];
        let end = tokio::time::timeout(2 * IDLE_TIMEOUT, conn.read(&mut buf))
            .await
            .expect("closed")
            .unwrap_err();
        assert_eq!(end.kind(), io::ErrorKind::TimedOut);
        assert_eq!(since.elapsed(), IDLE_TIMEOUT);
    }

    /// A request trickled a byte at a time is cut at REQUEST_TIMEOUT from its
    /// first byte, however often bytes come.
    #[tokio::test]
    async fn a_trickled_request_is_cut_at_the_request_deadline() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut capped = Capped::new(listener);
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut conn, _) = axum::serve::Listener::accept(&mut capped).await;
        let start = Instant::now();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e.kind()),
                }
            }
        });
        for _ in 0..40 {
            if client.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            if reader.is_finished() {
                break;
            }
        }
        let end = reader.await.unwrap();
        assert_eq!(end, Err(io::ErrorKind::TimedOut));
        let took = start.elapsed();
        assert!(
            took >= REQUEST_TIMEOUT && took <= REQUEST_TIMEOUT + Duration::from_secs(3),
            "{took:?}"
        );
    }
}
