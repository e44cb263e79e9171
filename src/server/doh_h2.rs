//! DNS over HTTPS on HTTP/2, served with the `h2` crate in the connection's own
//! task: streams are accepted in a loop and each one's request (its body read,
//! the [`Handler`] asked, the answer sent) is polled in a [`FuturesUnordered`] of
//! that task, no task spawned per stream. [`sniff`] tells an HTTP/2 client (its
//! connection preface) from an HTTP/1.1 one where ALPN did not say.
//!
//! The limits are hyper 1.x's (which served HTTP/2 before): at most
//! [`MAX_STREAMS`] streams at once (REFUSED_STREAM past it), 80 KiB of request
//! headers, and h2's own guards against rapid reset (streams reset before they
//! are accepted, streams reset for errors: past either limit the connection ends
//! with GOAWAY ENHANCE_YOUR_CALM). An answer is written whole with `send_data`
//! (at most 64 KiB), so a client that reads nothing holds at most its streams'
//! answers: the stream limit bounds that too.
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use h2::RecvStream;
use h2::server::SendResponse;
use hyper::body::Bytes;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::doh::{
    DohRefusal, MAX_QUERY, MAX_STREAMS, Site, answer, error_headers, refused, reply_headers,
    wants_body,
};
use super::{Handler, Shared};

/// The flow-control window of a request stream: room for the largest query.
const STREAM_WINDOW: u32 = MAX_QUERY as u32;
/// The flow-control window of a connection (hyper's: 1 MiB).
const CONN_WINDOW: u32 = 1024 * 1024;
/// The largest request header list taken: room for the longest URL the HTTP
/// library takes (65,534 bytes: a GET's query of up to 49,139 bytes) and the
/// other headers. (hyper's is 16 KiB, which refused GETs of queries over about
/// 12 KB with 431.)
const MAX_HEADER_LIST: u32 = 80 * 1024;
/// The send capacity a stream may reserve ahead (hyper's: 400 KiB; answers are
/// sent without reserving, so it binds nothing here).
const MAX_SEND_BUFFER: usize = 400 * 1024;
/// Streams the server may reset for the client's errors before it ends the
/// connection (hyper's: 1024).
const MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// Streams the client may reset before the server has accepted them (h2's
/// default, which hyper kept).
const MAX_PENDING_ACCEPT_RESETS: usize = 20;

/// The connection preface an HTTP/2 client starts with (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads the client's first bytes until they are the HTTP/2 preface or differ from
/// it: whether it is HTTP/2, and `io` with those bytes put back. `None` when the
/// client closes (or fails) first.
pub(super) async fn sniff<S: AsyncRead + Unpin>(mut io: S) -> Option<(bool, Rewound<S>)> {
    let mut head = [0u8; PREFACE.len()];
    let mut len = 0;
    while len < head.len() && head[..len] == PREFACE[..len] {
        match io.read(&mut head[len..]).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => len += n,
        }
    }
    let h2 = head[..len] == PREFACE[..];
    Some((
        h2,
        Rewound {
            head,
            at: 0,
            len,
            io,
        },
    ))
}

/// A stream whose first bytes, already read, are read again first.
pub(super) struct Rewound<S> {
    /// The bytes read ahead.
    head: [u8; PREFACE.len()],
    /// How many of them have been read again.
    at: usize,
    /// How many there are.
    len: usize,
    /// The stream.
    io: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.len {
            let n = (this.len - this.at).min(buf.remaining());
            buf.put_slice(&this.head[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, b)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Serves HTTP/2 on `io` (the preface not yet read) until the client closes, the
/// connection has had no request in progress for the TCP idle timeout, or the
/// server stops: then gracefully (GOAWAY; requests in progress are answered, and
/// a client still holding the connection an idle timeout later is cut off), or at
/// once on `shared.abort`.
pub(super) async fn serve<H: Handler, S>(io: S, peer: SocketAddr, shared: &Shared<H>, site: &Site)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let idle = shared.opts.tcp_idle_timeout;
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(MAX_STREAMS)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS);
    let mut abort = pin!(shared.abort.cancelled());
    let mut stop = pin!(shared.token.cancelled());
    let handshake = tokio::select! {
        () = &mut abort => return,
        () = &mut stop => return,
        r = tokio::time::timeout(idle, builder.handshake::<_, Bytes>(io)) => r,
    };
    let Ok(Ok(mut conn)) = handshake else {
        return;
    };
    let mut streams = FuturesUnordered::new();
    // When the last request ended (or the connection began); the timer wakes
    // the loop at most once an idle timeout, and is set again then.
    let mut last = Instant::now();
    let mut timer = pin!(tokio::time::sleep_until(last + idle));
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            () = &mut abort => return,
            Some(()) = streams.next(), if !streams.is_empty() => {
                last = Instant::now();
            }
            accepted = conn.accept() => match accepted {
                Some(Ok((req, respond))) => {
                    let (head, body) = req.into_parts();
                    streams.push(stream(head, body, respond, peer, shared, site));
                }
                // Closed, or ended for an error (h2 has sent its GOAWAY).
                Some(Err(_)) | None => return,
            },
            () = &mut stop, if !closing => {
                conn.graceful_shutdown();
                closing = true;
                timer.as_mut().reset(Instant::now() + idle);
            }
            () = timer.as_mut() => {
                let now = Instant::now();
                if closing {
                    // Closing for an idle timeout, and still held: cut off.
                    return;
                }
                if streams.is_empty() && last + idle <= now {
                    // Idle as long as a TCP connection may be: closed (gracefully).
                    conn.graceful_shutdown();
                    closing = true;
                    timer.as_mut().reset(now + idle);
                } else if streams.is_empty() {
                    timer.as_mut().reset(last + idle);
                } else {
                    timer.as_mut().reset(now + idle);
                }
            }
        }
    }
}

/// One stream's request answered: its body read (within the idle timeout), the
/// handler asked, the answer (or an error status) sent.
///
/// A plain function around an `async` block that uses what it captured in
/// place: an `async fn` would hold its arguments twice (each moved into a local
/// of its own), which makes the stream's future too large for the allocator's
/// per-thread cache (1,032 bytes): a slower allocation a request.
#[allow(clippy::manual_async_fn)] // as an `async fn` it would hold its arguments twice
fn stream<'a, H: Handler>(
    head: Parts,
    mut body: RecvStream,
    mut respond: SendResponse<Bytes>,
    peer: SocketAddr,
    shared: &'a Shared<H>,
    site: &'a Site,
) -> impl Future<Output = ()> + 'a {
    async move {
        let work = async {
            if wants_body(&head, site) {
                match read_body(&mut body, shared.opts.tcp_idle_timeout).await {
                    Ok(b) => answer(&head, &b, peer, shared, site).await,
                    Err(code) => Err(refused(&site.stats, code)),
                }
            } else {
                answer(&head, &[], peer, shared, site).await
            }
        };
        // A stream the client resets is given up at once (its query's work, and
        // its place among the connection's streams, with it).
        let result = tokio::select! {
            biased;
            r = work => r,
            _ = poll_fn(|cx| respond.poll_reset(cx)) => return,
        };
        // A reset stream, or a closed connection: nobody to answer.
        let _ = match result {
            Ok(dns) => {
                let mut r = Response::new(());
                reply_headers(r.headers_mut(), &dns);
                site.advertise(r.headers_mut());
                if head.method == hyper::Method::HEAD {
                    // GET's headers, no body (RFC 9110 §9.3.2).
                    respond.send_response(r, true).map(drop)
                } else {
                    respond
                        .send_response(r, false)
                        .and_then(|mut send| send.send_data(Bytes::from(dns), true))
                }
            }
            Err(code) => {
                // A body refused unread (a PUT, a POST on another path) is
                // read first, within the same limits as a query's: answering
                // before it ends resets the stream (NO_ERROR), and curl
                // 7.x drops the status with it (exit 92). A body already
                // read (too large, too slow) is not waited for again.
                if !wants_body(&head, site) && !body.is_end_stream() {
                    let _ = read_body(&mut body, shared.opts.tcp_idle_timeout).await;
                }
                let mut r = Response::new(());
                *r.status_mut() = code;
                error_headers(r.headers_mut(), code);
                site.advertise(r.headers_mut());
                respond.send_response(r, true).map(drop)
            }
        };
    }
}

/// A request body as it comes: its first chunk kept as it is, later ones copied.
#[derive(Default)]
struct Body {
    /// The first chunk.
    first: Bytes,
    /// The whole body when it came in more than one chunk.
    more: Vec<u8>,
}

/// The whole body of `body` (at most [`MAX_QUERY`] bytes), read as its flow
/// control allows; the timer starts only if it has not all come already.
///
/// # Errors
/// 413 for a larger body, 408 when it has not come within `limit`, 400 when the
/// stream fails.
async fn read_body(body: &mut RecvStream, limit: Duration) -> Result<Bytes, StatusCode> {
    let mut acc = Body::default();
    let now = poll_fn(|cx| Poll::Ready(poll_body(body, &mut acc, cx))).await;
    match now {
        Poll::Ready(r) => r?,
        Poll::Pending => {
            let later = poll_fn(|cx| poll_body(body, &mut acc, cx));
            tokio::time::timeout(limit, later)
                .await
                .map_err(|_| StatusCode::REQUEST_TIMEOUT)??;
        }
    }
    Ok(if acc.more.is_empty() {
        acc.first
    } else {
        Bytes::from(acc.more)
    })
}

/// Reads what of `body` has come into `acc`, releasing its flow-control window as
/// it goes: ready at the body's end.
fn poll_body(
    body: &mut RecvStream,
    acc: &mut Body,
    cx: &mut Context<'_>,
) -> Poll<Result<(), StatusCode>> {
    loop {
        let chunk = match ready!(body.poll_data(cx)) {
            None => return Poll::Ready(Ok(())),
            Some(Err(_)) => return Poll::Ready(Err(StatusCode::BAD_REQUEST)),
            Some(Ok(chunk)) => chunk,
        };
        // The window is opened again as the body is read, whatever it holds.
        let _ = body.flow_control().release_capacity(chunk.len());
        let had = acc.first.len().max(acc.more.len());
        if had + chunk.len() > MAX_QUERY {
            return Poll::Ready(Err(DohRefusal::TooLarge.status()));
        }
        if had == 0 {
            acc.first = chunk;
        } else {
            if acc.more.is_empty() {
                acc.more.extend_from_slice(&acc.first);
            }
            acc.more.extend_from_slice(&chunk);
        }
    }
}
