//! The writer task: takes the frames the servers queued and writes them to
//! the collector, over a Unix socket or TCP.
//!
//! It connects, does Frame Streams' bidirectional handshake (READY, ACCEPT,
//! START: `frame.rs`), then writes the queue's frames in batches: woken by
//! the first frame in an empty queue, it lets the batch gather for
//! [`GATHER`] or until it holds `queue::BATCH_FRAMES`, whichever comes
//! first, then takes every frame queued (`queue.rs`) and writes them with
//! one write. So it wakes twice per batch, a few hundred times a second at
//! most at any rate, and at a low rate once per many queries rather than
//! once per query (a frame waits [`GATHER`] at most, and the write). A
//! connection that fails, a handshake refused, a collector that closes or
//! a write that fails: the writer counts the frames of the failed batch
//! dropped, logs once, and connects again after `supervise`'s [`Backoff`]
//! (doubling from [`RECONNECT`]'s `initial` to its `max`; a connection that
//! lived `stable_after` starts the doubling again). Meanwhile the queue
//! fills, and what does not fit is dropped by the producers ([`super::Dnstap`]):
//! the servers never wait for the collector.
//!
//! On shutdown (its token cancelled, or every producer gone) it writes what
//! is already queued, sends STOP, waits a moment for FINISH, and returns;
//! what was queued while no collector was there is counted dropped.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

use super::frame::{self, CONTENT_TYPE, ControlKind, Frame};
use super::queue::Queue;
use crate::supervise::Backoff;

/// Reconnection delays: 100 ms doubling up to 5 s; a connection that lived
/// 10 s starts again from 100 ms.
pub const RECONNECT: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(5),
    stable_after: Duration::from_secs(10),
};
/// How long connecting and the handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a stopping writer waits for the collector's FINISH.
const FINISH_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a batch gathers after its first frame, unless it fills first:
/// each frame is late by at most about this much (fstrm's flush timeout,
/// dnsdist's, is a second).
const GATHER: Duration = Duration::from_millis(10);
/// The batch buffer kept between writes, at most (a larger one, after a
/// burst, is given back).
const KEEP_BYTES: usize = 4 << 20;

/// Frames sent and dropped, for `/metrics`.
#[derive(Debug, Default)]
pub struct DnstapStats {
    /// Frames written to the collector.
    pub sent: AtomicU64,
    /// Frames lost: the queue full (a slow or absent collector), a write
    /// that failed, or queued at shutdown with no collector.
    pub dropped: AtomicU64,
    /// Whether the writer is connected now.
    pub connected: AtomicBool,
}

/// Where the collector listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapTarget {
    /// A Unix stream socket.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl fmt::Display for TapTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

/// Why a connection to the collector ended or never began.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    /// Connecting, reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The collector sent something that is no Frame Streams frame.
    #[error("{0}")]
    Frame(#[from] frame::FrameError),
    /// The collector refused the handshake.
    #[error("{0}")]
    Handshake(#[from] frame::HandshakeError),
    /// Connecting or the handshake took too long.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The collector closed the connection.
    #[error("the collector closed the connection")]
    Closed,
}

/// How one connection's session ended.
enum SessionEnd {
    /// Shutdown: the writer is done.
    Stopped,
    /// The collector went away: connect again.
    Lost(LinkError),
}

/// The writer task's state.
pub(super) struct Writer {
    /// Where to connect.
    pub(super) target: TapTarget,
    /// The frames the producers queued.
    pub(super) queue: Arc<Queue>,
    /// Sent and dropped frames.
    pub(super) stats: Arc<DnstapStats>,
    /// Reconnection delays.
    pub(super) backoff: Backoff,
}

impl Writer {
    /// Runs until shutdown: connect, stream, reconnect.
    pub(super) async fn run(mut self, token: CancellationToken) {
        // Connection failures in a row (a lost session counts as one, or
        // starts again at one when it lived long enough).
        let mut failures = 0u32;
        // Whether the failure in progress was logged at `warn` already.
        let mut quiet = false;
        loop {
            let connected = tokio::select! {
                r = timeout(HANDSHAKE_TIMEOUT, self.connect()) => {
                    r.unwrap_or(Err(LinkError::Timeout(HANDSHAKE_TIMEOUT)))
                }
                () = token.cancelled() => break,
            };
            let session = match connected {
                // Connected: the next failure is news again.
                Ok(Link::Unix(s)) => {
                    quiet = false;
                    self.after_session(s, failures, &token).await
                }
                Ok(Link::Tcp(s)) => {
                    quiet = false;
                    self.after_session(s, failures, &token).await
                }
                Err(e) => {
                    if quiet {
                        tracing::debug!(target = %self.target, error = %e, "dnstap: cannot connect to the collector");
                    } else {
                        tracing::warn!(target = %self.target, error = %e, "dnstap: cannot connect to the collector; retrying, frames dropped while the queue is full");
                        quiet = true;
                    }
                    Some(failures.saturating_add(1))
                }
            };
            let Some(n) = session else {
                return;
            };
            failures = n;
            tokio::select! {
                () = tokio::time::sleep(self.backoff.next_delay(failures)) => {}
                () = token.cancelled() => break,
            }
        }
        // Shut down with no collector: what waits in the queue is lost.
        self.queue.close();
        let lost = self.queue.take(&mut Vec::new());
        self.stats.dropped.fetch_add(lost, Ordering::Relaxed);
    }

    /// Streams on a connected link; returns the failure count to back off
    /// by, `None` when the writer stopped.
    async fn after_session<S>(
        &mut self,
        stream: S,
        failures: u32,
        token: &CancellationToken,
    ) -> Option<u32>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        tracing::info!(target = %self.target, "dnstap: connected to the collector");
        self.stats.connected.store(true, Ordering::Relaxed);
        let began = Instant::now();
        let end = self.session(stream, token).await;
        self.stats.connected.store(false, Ordering::Relaxed);
        match end {
            SessionEnd::Stopped => None,
            SessionEnd::Lost(e) => {
                tracing::warn!(target = %self.target, error = %e, "dnstap: lost the collector; reconnecting");
                Some(self.backoff.failures_after(failures, began.elapsed()))
            }
        }
    }

    /// Connects and does the handshake.
    async fn connect(&self) -> Result<Link, LinkError> {
        match &self.target {
            TapTarget::Unix(path) => {
                let mut s = tokio::net::UnixStream::connect(path).await?;
                handshake(&mut s).await?;
                Ok(Link::Unix(s))
            }
            TapTarget::Tcp(addr) => {
                let mut s = tokio::net::TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                handshake(&mut s).await?;
                Ok(Link::Tcp(s))
            }
        }
    }

    /// Writes the queue's frames to a link whose handshake is done until
    /// shutdown or the link fails.
    async fn session<S>(&mut self, stream: S, token: &CancellationToken) -> SessionEnd
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut buf = Vec::new();
        let mut scratch = [0u8; 512];
        loop {
            // A first frame (its wake-up kept if it came while the last
            // batch was written; frames queued before this session, while
            // no collector was there, need none), then the batch gathers.
            let (closed, empty) = self.queue.closed_and_empty();
            if closed {
                return self.stop(&mut rd, &mut wr, &mut buf).await;
            }
            if empty {
                tokio::select! {
                    () = self.queue.first_frame() => {}
                    () = token.cancelled() => return self.stop(&mut rd, &mut wr, &mut buf).await,
                    r = rd.read(&mut scratch) => return SessionEnd::Lost(read_ended(r)),
                }
            }
            tokio::select! {
                () = self.queue.batch_full() => {}
                () = tokio::time::sleep(GATHER) => {}
                () = token.cancelled() => return self.stop(&mut rd, &mut wr, &mut buf).await,
                r = rd.read(&mut scratch) => return SessionEnd::Lost(read_ended(r)),
            }
            let count = self.queue.take(&mut buf);
            if count == 0 {
                continue;
            }
            let written = tokio::select! {
                r = wr.write_all(&buf) => r,
                // A collector that stopped reading must not hold shutdown.
                () = token.cancelled() => Err(io::Error::other("shutdown while writing")),
            };
            if buf.capacity() > KEEP_BYTES {
                buf = Vec::new();
            }
            match written {
                Ok(()) => {
                    self.stats.sent.fetch_add(count, Ordering::Relaxed);
                }
                Err(e) => {
                    self.stats.dropped.fetch_add(count, Ordering::Relaxed);
                    if token.is_cancelled() {
                        return SessionEnd::Stopped;
                    }
                    return SessionEnd::Lost(e.into());
                }
            }
        }
    }

    /// Shutdown on a live link: writes what is queued, STOP, and waits a
    /// moment for FINISH.
    async fn stop<R, W>(&mut self, rd: &mut R, wr: &mut W, buf: &mut Vec<u8>) -> SessionEnd
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        self.queue.close();
        // The last batch: closed, the queue takes no more.
        let count = self.queue.take(buf);
        // Frames not written yet, counted dropped when it ends so.
        let mut pending = count;
        let stats = &self.stats;
        let drained = async {
            if count > 0 {
                wr.write_all(buf).await?;
                stats.sent.fetch_add(count, Ordering::Relaxed);
                pending = 0;
            }
            wr.write_all(&frame::encode_control(ControlKind::Stop, None))
                .await?;
            wr.flush().await?;
            let finish = read_control(rd).await?;
            if finish.kind != ControlKind::Finish {
                tracing::debug!(kind = ?finish.kind, "dnstap: the collector answered STOP with something else than FINISH");
            }
            Ok::<(), LinkError>(())
        };
        match timeout(FINISH_TIMEOUT, drained).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "dnstap: stopping"),
            Err(_) => tracing::debug!("dnstap: no FINISH from the collector in time"),
        }
        // What the collector could not take in time.
        self.stats.dropped.fetch_add(pending, Ordering::Relaxed);
        let _ = wr.shutdown().await;
        SessionEnd::Stopped
    }
}

/// Why a read from the collector ended the session: it sends nothing before
/// FINISH, so any read that ends is the collector gone (or talking out of
/// turn).
fn read_ended(r: io::Result<usize>) -> LinkError {
    match r {
        Ok(0) => LinkError::Closed,
        Ok(_) => LinkError::Handshake(frame::HandshakeError::Data),
        Err(e) => e.into(),
    }
}

/// A connected stream of either family.
enum Link {
    /// A Unix stream.
    Unix(tokio::net::UnixStream),
    /// A TCP stream.
    Tcp(tokio::net::TcpStream),
}

/// The writer's side of the handshake: READY, the collector's ACCEPT, START.
async fn handshake<S>(stream: &mut S) -> Result<(), LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    send_control(stream, ControlKind::Ready).await?;
    let accept = read_control(stream).await?;
    frame::check_accept(&Frame::ControlFrame(accept))?;
    send_control(stream, ControlKind::Start).await?;
    Ok(())
}

/// Writes and flushes a control frame of `kind` naming dnstap's content type.
async fn send_control<W: AsyncWrite + Unpin>(wr: &mut W, kind: ControlKind) -> io::Result<()> {
    wr.write_all(&frame::encode_control(kind, Some(CONTENT_TYPE)))
        .await?;
    wr.flush().await
}

/// Reads one control frame from the collector.
async fn read_control<R: AsyncRead + Unpin>(rd: &mut R) -> Result<frame::ControlFrame, LinkError> {
    let mut head = [0u8; 8];
    read_exact(rd, &mut head).await?;
    let (escape, len) = head.split_at(4);
    if escape != [0, 0, 0, 0] {
        return Err(frame::HandshakeError::Data.into());
    }
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > frame::CONTROL_MAX {
        return Err(frame::FrameError::ControlTooLong(len).into());
    }
    let mut payload = vec![0u8; len];
    read_exact(rd, &mut payload).await?;
    Ok(frame::decode_control(&payload)?)
}

/// `read_exact`, with an early end of stream as [`LinkError::Closed`].
async fn read_exact<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut [u8]) -> Result<(), LinkError> {
    match rd.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(LinkError::Closed),
        Err(e) => Err(e.into()),
    }
}
