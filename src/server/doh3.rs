//! DNS over HTTPS on HTTP/3 (RFC 9114 over QUIC, ALPN `h3`): the `[ls.https]`
//! listener's twin on UDP at the same port number (`http3 = true`). The QUIC
//! endpoints ([`Doh3Listeners`], quinn with rustls and ring) take connections
//! as DoQ's do ([`super::doq::admission`]: a cap, a Retry for unvalidated
//! addresses once many are open), past the `[ls]` ACL and `[ls.https]`'s
//! connection rate; the `h3` crate speaks HTTP/3 on each. A request is read
//! and answered by what HTTP/1.1 and HTTP/2 share ([`super::doh`]: the path,
//! GET `?dns=` and POST bodies, status codes, `Cache-Control`), its streams
//! polled in the connection's own task as HTTP/2's are ([`super::doh_h2`]).
//!
//! The limits: [`MAX_STREAMS`] requests at once per connection (QUIC's stream
//! credit), a request's headers and body each within the TCP idle timeout and
//! at most 80 KiB and [`MAX_QUERY`] bytes, flow-control windows sized to that,
//! and QUIC's idle timeout for a silent connection. A POST whose
//! `content-length` is not the length of its body is malformed (RFC 9114
//! §4.1.2): its stream is reset with H3_MESSAGE_ERROR.
//!
//! A returning client resumes its session; a request it sends in 0-RTT is
//! answered at once when its DNS query changes nothing, and otherwise once
//! the handshake completes ([`super::quic_early`]).
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::Poll;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use h3::server::{RequestResolver, RequestStream};
use hyper::body::{Buf, Bytes};
use hyper::{Response, StatusCode};
use quinn::{Endpoint, Incoming, VarInt};

use super::conn_rate::ConnRate;
use super::doh::{
    DohListeners, DohRoute, HttpQuery, MAX_QUERY, MAX_STREAMS, Site, answer, error_headers,
    query_of, refused, reply_headers, wants_body,
};
use super::doq::{DoqAdmission, DoqSetupError, QuicSockets, admission};
use super::forwarded::TrustedProxies;
use super::quic_early::{EarlyDecision, Handshake, HandshakeWait, early_decision};
use super::tls::CertSwap;
use super::tls_stats::TlsStats;
use super::{Handler, Shared};

/// The ALPN protocol of HTTP/3 (RFC 9114 §3.1).
pub const ALPN_H3: &[u8] = b"h3";
/// HTTP/3's "no error" (RFC 9114 §8.1): a connection closed at the server's stop.
const H3_NO_ERROR: u32 = 0x100;
/// Unidirectional streams a client may have open: its control stream, QPACK's
/// two, and room for reserved (grease) ones.
const UNI_STREAMS: u32 = 8;
/// A connection with no packet for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request header section taken (as HTTP/2's: room for a GET of the
/// largest query).
const MAX_FIELD_SECTION: u64 = 80 * 1024;
/// The flow-control window of a request stream: its headers and body.
const STREAM_WINDOW: u32 = 80 * 1024 + MAX_QUERY as u32;
/// The flow-control window of a connection (as HTTP/2's: 1 MiB).
const CONN_WINDOW: u32 = 1024 * 1024;

/// The counters of DNS over HTTP/3 (the metrics' `dnslb_doh3_*`); its requests
/// are counted among DoH's too.
#[derive(Debug, Default)]
pub struct Doh3Stats {
    /// Connections whose handshake completed.
    pub connections: AtomicU64,
    /// Connections refused at once: the cap was full.
    pub refused: AtomicU64,
    /// Retries sent to unvalidated addresses.
    pub retries: AtomicU64,
    /// Requests whose headers came (those carrying a query are DoH's queries too).
    pub requests: AtomicU64,
    /// Handshakes that resumed a session (no certificate sent).
    pub resumed: Arc<AtomicU64>,
    /// Requests that came in 0-RTT and were answered before the handshake
    /// completed (their queries replay-safe).
    pub early_answered: AtomicU64,
    /// Requests that came in 0-RTT and waited for the handshake.
    pub early_held: AtomicU64,
    /// POSTs whose `content-length` was not their body's length (reset
    /// with H3_MESSAGE_ERROR).
    pub malformed: AtomicU64,
}

/// The quinn server configuration of DoH/3: TLS 1.3 with ALPN `h3`, the
/// certificate of `certs` (a reload swaps it), session resumption and 0-RTT
/// (resumptions counted in `stats`), and the limits above.
///
/// # Errors
/// rustls or quinn refuse the configuration.
pub fn h3_server_config(
    certs: Arc<CertSwap>,
    stats: &Doh3Stats,
) -> Result<quinn::ServerConfig, DoqSetupError> {
    let mut config = super::doq::quic_tls(certs, ALPN_H3, stats.resumed.clone())?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(UNI_STREAMS))
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW))
        .receive_window(VarInt::from_u32(CONN_WINDOW))
        .max_idle_timeout(Some(IDLE_TIMEOUT.try_into().unwrap_or(VarInt::MAX.into())));
    config
        .transport_config(Arc::new(transport))
        .migration(false);
    Ok(config)
}

/// Binds a UDP socket at each of `addrs` (the TCP listeners' bound addresses,
/// so port 0 takes the port TCP got).
///
/// # Errors
/// The first address that cannot be bound.
pub fn bind_udp(
    addrs: &[SocketAddr],
) -> Result<Vec<std::net::UdpSocket>, super::socket::BindError> {
    addrs
        .iter()
        .map(|addr| {
            std::net::UdpSocket::bind(addr).map_err(|source| super::socket::BindError {
                addr: *addr,
                proto: "https (http3, udp)",
                source,
            })
        })
        .collect()
}

/// What every DoH/3 connection shares: DoH's path, counters, trusted proxies and
/// connection rate, and HTTP/3's own counters.
pub(crate) struct Doh3Side {
    route: Arc<DohRoute>,
    tls: Arc<TlsStats>,
    trusted: Arc<TrustedProxies>,
    conn_rate: Arc<ConnRate>,
    stats: Arc<Doh3Stats>,
}

/// The DoH/3 side of a server: its sockets and what their connections share.
pub struct Doh3Listeners {
    /// One endpoint per `[ls.https]` address, made where it is served.
    pub(crate) quic: QuicSockets,
    /// Shared by their connections.
    pub(crate) side: Arc<Doh3Side>,
}

impl Doh3Listeners {
    /// DoH/3 on the bound UDP `sockets` with `config` (see [`h3_server_config`]),
    /// answering as `doh` does (its path, counters, proxies and connection rate).
    ///
    /// # Errors
    /// A socket that cannot be made non-blocking.
    pub fn new(
        sockets: Vec<std::net::UdpSocket>,
        config: quinn::ServerConfig,
        doh: &DohListeners,
        stats: Arc<Doh3Stats>,
    ) -> Result<Self, DoqSetupError> {
        let quic = QuicSockets::new(sockets, config)?;
        let side = Arc::new(Doh3Side {
            route: doh.path.clone(),
            tls: doh.stats.clone(),
            trusted: doh.trusted.clone(),
            conn_rate: doh.conn_rate.clone(),
            stats,
        });
        Ok(Doh3Listeners { quic, side })
    }

    /// The addresses the endpoints are bound to.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.quic.local_addrs()
    }
}

/// Accepts connections on `ep` until the server stops, each holding one of
/// `places` for its life (the places of every DoH/3 endpoint of the server
/// together: the cap, the Retry threshold and a source's share are over all
/// of them); then
/// each connection ends gracefully (GOAWAY, its requests in progress answered)
/// and the endpoint closes once they have, or at the drain's abort.
pub(crate) async fn serve_endpoint<H: Handler>(
    ep: Endpoint,
    shared: Arc<Shared<H>>,
    side: Arc<Doh3Side>,
    places: Arc<super::places::Places>,
) {
    let stop = shared.token.clone();
    let port = ep.local_addr().map_or(0, |a| a.port());
    loop {
        let incoming = tokio::select! {
            () = stop.cancelled() => break,
            i = ep.accept() => match i {
                Some(i) => i,
                None => break,
            },
        };
        let ip = incoming.remote_address().ip();
        // A trusted proxy's requests name their clients: the ACL is theirs.
        if !(side.trusted.trusts(ip) || shared.handler.admits_connection(ip)) {
            side.tls.doh_acl_refused.fetch_add(1, Relaxed);
            incoming.ignore();
            continue;
        }
        match admission(
            places.held(),
            places.max(),
            incoming.remote_address_validated(),
        ) {
            DoqAdmission::Refuse => {
                side.stats.refused.fetch_add(1, Relaxed);
                incoming.refuse();
            }
            DoqAdmission::Retry => {
                side.stats.retries.fetch_add(1, Relaxed);
                if let Err(e) = incoming.retry() {
                    e.into_incoming().ignore();
                }
            }
            DoqAdmission::Accept if !side.conn_rate.admit(ip) => {
                side.tls.doh_rate_refused.fetch_add(1, Relaxed);
                incoming.refuse();
            }
            DoqAdmission::Accept => match places.try_take(ip) {
                Ok(place) => {
                    let conn = serve_connection(incoming, port, shared.clone(), side.clone());
                    let thread = shared.conn_threads.next();
                    let conn = super::tcp::holding(conn, place);
                    super::thread::spawn_tracked(&shared.tracker, thread, conn);
                }
                Err(_) => {
                    side.stats.refused.fetch_add(1, Relaxed);
                    incoming.refuse();
                }
            },
        }
    }
    tokio::select! {
        () = ep.wait_idle() => {}
        () = shared.abort.cancelled() => {}
    }
    ep.close(VarInt::from_u32(H3_NO_ERROR), b"");
    let _ = tokio::time::timeout(Duration::from_secs(1), ep.wait_idle()).await;
}

/// One connection: its QUIC handshake and HTTP/3's SETTINGS, then its requests
/// (polled together, so the handler may batch what one poll sends).
async fn serve_connection<H: Handler>(
    incoming: Incoming,
    port: u16,
    shared: Arc<Shared<H>>,
    side: Arc<Doh3Side>,
) {
    let Ok(connecting) = incoming.accept() else {
        return;
    };
    // The connection at once, so that requests sent in 0-RTT are taken
    // before the handshake completes.
    let Ok((conn, done)) = connecting.into_0rtt() else {
        return; // never for a server's connection
    };
    let site = Site {
        route: side.route.clone(),
        stats: side.tls.clone(),
        trusted: side.trusted.clone(),
        local: conn.local_ip().map(|ip| SocketAddr::new(ip, port)),
        alt_svc: None,
    };
    let (open, counted) = (conn.clone(), side.clone());
    let handshake = async move {
        // `done` says whether 0-RTT was accepted; a connection still open
        // is one whose handshake completed.
        let done = tokio::time::timeout(super::tls::HANDSHAKE_TIMEOUT, done).await;
        let done = done.is_ok() && open.close_reason().is_none();
        if done {
            counted.stats.connections.fetch_add(1, Relaxed);
        }
        done
    };
    let requests = serve_requests(conn, handshake, &shared, &site, &side.stats);
    shared.handler.wrap_connection(requests).await;
}

/// The QUIC connection of an HTTP/3 client.
type H3Conn = h3::server::Connection<h3_quinn::Connection, Bytes>;

/// HTTP/3 on `conn` until the client closes it, it fails, its `handshake`
/// (`true` once complete) fails, or the server stops: then GOAWAY, the
/// requests in progress answered (unless the drain is cut short), and the
/// connection closed with H3_NO_ERROR.
async fn serve_requests<H: Handler>(
    conn: quinn::Connection,
    handshake: impl Future<Output = bool>,
    shared: &Shared<H>,
    site: &Site,
    stats: &Doh3Stats,
) {
    let idle = shared.opts.tcp_idle_timeout;
    let peer = conn.remote_address();
    let (state, wait) = Handshake::new();
    let mut handshake = std::pin::pin!(handshake);
    let mut handshaking = true;
    let mut builder = h3::server::builder();
    // No grease (reserved frames and streams): aioquic (dnspython's HTTP/3)
    // misses the end of a response whose last frame is one it skips, and
    // times out waiting for it.
    builder
        .max_field_section_size(MAX_FIELD_SECTION)
        .send_grease(false);
    let h3 = builder.build::<_, Bytes>(h3_quinn::Connection::new(conn.clone()));
    let mut h3: H3Conn = tokio::select! {
        () = shared.token.cancelled() => return,
        r = tokio::time::timeout(idle, h3) => match r {
            Ok(Ok(h3)) => h3,
            _ => return,
        },
    };
    let mut streams = FuturesUnordered::new();
    // Made once: a cancellation future registers with its token when polled.
    let mut abort = pin!(shared.abort.cancelled());
    let mut stop = pin!(shared.token.cancelled());
    loop {
        tokio::select! {
            biased;
            () = &mut abort => break,
            done = &mut handshake, if handshaking => {
                if !done {
                    break; // failed, or not in time: its requests give up
                }
                handshaking = false;
                state.complete();
            }
            Some(()) = streams.next(), if !streams.is_empty() => {}
            () = &mut stop => {
                // GOAWAY: the streams already accepted are still answered.
                let _ = tokio::time::timeout(idle, h3.shutdown(0)).await;
                break;
            }
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    let wait = wait.clone();
                    streams.push(request(resolver, peer, wait, shared, site, stats));
                }
                // Closed by the client, idle, or ended for an error.
                Ok(None) | Err(_) => break,
            },
        }
    }
    if handshaking {
        // Requests waiting for a handshake that will not complete end now.
        drop(state);
    }
    tokio::select! {
        () = async { while streams.next().await.is_some() {} } => {}
        () = &mut abort => {}
    }
    conn.close(VarInt::from_u32(H3_NO_ERROR), b"");
    drop(h3);
}

/// A request stream of a connection.
type H3Stream = RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// One request answered: its headers and body read (each within the idle
/// timeout; a POST's body of its `content-length`, or the stream is reset
/// with H3_MESSAGE_ERROR), in 0-RTT only a replay-safe query answered before
/// the `handshake` completes, the handler asked, the answer (or an error
/// status) sent.
#[allow(clippy::manual_async_fn)] // as an `async fn` it would hold its arguments twice
fn request<'a, H: Handler>(
    resolver: RequestResolver<h3_quinn::Connection, Bytes>,
    peer: SocketAddr,
    mut handshake: HandshakeWait,
    shared: &'a Shared<H>,
    site: &'a Site,
    stats: &'a Doh3Stats,
) -> impl Future<Output = ()> + 'a {
    async move {
        let idle = shared.opts.tcp_idle_timeout;
        // Headers that do not come (a stream opened and left) give its place
        // up, and at a stop there is no request to wait for. They have most
        // often come with the stream: then no timer is set.
        let mut resolve = pin!(resolver.resolve_request());
        let resolved = match poll_fn(|cx| Poll::Ready(resolve.as_mut().poll(cx))).await {
            Poll::Ready(r) => r,
            Poll::Pending => tokio::select! {
                () = shared.token.cancelled() => return,
                r = tokio::time::timeout(idle, resolve) => match r {
                    Ok(r) => r,
                    Err(_) => return,
                },
            },
        };
        let Ok((req, mut stream)) = resolved else {
            return;
        };
        stats.requests.fetch_add(1, Relaxed);
        let (head, ()) = req.into_parts();
        let body = if wants_body(&head, site) {
            match read_body(&mut stream, &head, idle).await {
                Ok(b) => Ok(b),
                Err(BodyError::Malformed) => {
                    stats.malformed.fetch_add(1, Relaxed);
                    stream.stop_sending(h3::error::Code::H3_MESSAGE_ERROR);
                    stream.stop_stream(h3::error::Code::H3_MESSAGE_ERROR);
                    return;
                }
                Err(BodyError::Status(code)) => Err(refused(&site.stats, code)),
            }
        } else {
            Ok(Bytes::new())
        };
        if !handshake.is_complete() {
            match early_decision(&early_query(&head, &body, site), false) {
                EarlyDecision::Wait => {
                    stats.early_held.fetch_add(1, Relaxed);
                    let complete = tokio::select! {
                        () = shared.token.cancelled() => false,
                        c = handshake.complete() => c,
                    };
                    if !complete {
                        return; // never done: a replay, or a client gone
                    }
                }
                _ => {
                    stats.early_answered.fetch_add(1, Relaxed);
                }
            }
        }
        let result = match body {
            Ok(b) => answer(&head, &b, peer, shared, site).await,
            Err(code) => Err(code),
        };
        let mut r = Response::new(());
        let body = match result {
            Ok(dns) => {
                reply_headers(r.headers_mut(), &dns);
                if head.method == hyper::Method::HEAD {
                    // GET's headers, no body (RFC 9110 §9.3.2), and no length:
                    // aioquic takes a length its DATA frames do not carry for
                    // a broken response, and with it the whole connection.
                    r.headers_mut().remove(hyper::header::CONTENT_LENGTH);
                    None
                } else {
                    Some(Bytes::from(dns))
                }
            }
            Err(code) => {
                *r.status_mut() = code;
                error_headers(r.headers_mut(), code);
                None
            }
        };
        // A reset stream, or a closed connection: nobody to answer.
        if stream.send_response(r).await.is_err() {
            return;
        }
        if let Some(body) = body
            && stream.send_data(body).await.is_err()
        {
            return;
        }
        let _ = stream.finish().await;
    }
}

/// The DNS query a request carries, for deciding whether it may be answered
/// from 0-RTT (empty when it carries none: it then waits, and is refused as
/// usual once the handshake is done).
fn early_query(
    head: &hyper::http::request::Parts,
    body: &Result<Bytes, StatusCode>,
    site: &Site,
) -> Vec<u8> {
    let Ok(body) = body else { return Vec::new() };
    let http = HttpQuery {
        method: &head.method,
        path: head.uri.path(),
        query: head.uri.query(),
        content_type: head
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        body,
    };
    query_of(&http, &site.route.path).unwrap_or_default()
}

/// Why a request's body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyError {
    /// Its length is not its `content-length` (RFC 9114 §4.1.2): a stream error.
    Malformed,
    /// Answered with this status.
    Status(StatusCode),
}

/// The length a request's `content-length` headers declare: `Ok(None)` without
/// one, `Err` when one is not a number or two disagree (malformed).
fn declared_length(headers: &hyper::HeaderMap) -> Result<Option<u64>, ()> {
    let mut declared = None;
    for v in headers.get_all(hyper::header::CONTENT_LENGTH) {
        let n = std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or(())?;
        if declared.is_some_and(|d| d != n) {
            return Err(());
        }
        declared = Some(n);
    }
    Ok(declared)
}

/// The whole body of `stream` (at most [`MAX_QUERY`] bytes), as long as the
/// `content-length` of `head` says when it says one.
///
/// # Errors
/// Malformed when the body's length is not the declared one; 413 for a larger
/// body, 408 when it has not come within `limit`, 400 when the stream fails.
async fn read_body(
    stream: &mut H3Stream,
    head: &hyper::http::request::Parts,
    limit: Duration,
) -> Result<Bytes, BodyError> {
    let declared = declared_length(&head.headers).map_err(|()| BodyError::Malformed)?;
    let too_large = BodyError::Status(super::doh::DohRefusal::TooLarge.status());
    if declared.is_some_and(|n| n > MAX_QUERY as u64) {
        return Err(too_large);
    }
    let read = async {
        let mut body: Vec<u8> = Vec::with_capacity(declared.map_or(512, |n| n as usize));
        while let Some(mut chunk) = stream
            .recv_data()
            .await
            .map_err(|_| BodyError::Status(StatusCode::BAD_REQUEST))?
        {
            let len = body.len() + chunk.remaining();
            if declared.is_some_and(|n| len as u64 > n) {
                return Err(BodyError::Malformed);
            }
            if len > MAX_QUERY {
                return Err(too_large);
            }
            while chunk.has_remaining() {
                let part = chunk.chunk();
                body.extend_from_slice(part);
                let n = part.len();
                chunk.advance(n);
            }
        }
        if declared.is_some_and(|n| n != body.len() as u64) {
            return Err(BodyError::Malformed);
        }
        Ok(Bytes::from(body))
    };
    // Most often the body came with the headers: then no timer is set.
    let mut read = pin!(read);
    match poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
        Poll::Ready(r) => r,
        Poll::Pending => tokio::time::timeout(limit, read)
            .await
            .map_err(|_| BodyError::Status(StatusCode::REQUEST_TIMEOUT))?,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        for v in values {
            h.append(
                hyper::header::CONTENT_LENGTH,
                hyper::header::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_content_length_is_one_number_or_the_request_is_malformed() {
        assert_eq!(declared_length(&headers(&[])), Ok(None));
        assert_eq!(declared_length(&headers(&["49"])), Ok(Some(49)));
        assert_eq!(declared_length(&headers(&["49", "49"])), Ok(Some(49)));
        assert_eq!(declared_length(&headers(&["49", "50"])), Err(()));
        assert_eq!(declared_length(&headers(&["-1"])), Err(()));
        assert_eq!(declared_length(&headers(&["4x"])), Err(()));
        assert_eq!(
            declared_length(&headers(&["1000000000000"])),
            Ok(Some(1_000_000_000_000))
        );
    }
}
