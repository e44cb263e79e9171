//! DNS over HTTPS (RFC 8484): what both HTTP versions share, and HTTP/1.1 with
//! hyper. A connection comes over TLS ([`super::tls`]) or plain behind a
//! TLS-terminating proxy; `doh_conn.rs` accepts it and picks its HTTP version,
//! `doh_h2.rs` serves HTTP/2. [`query_of`] turns a request into the DNS query it
//! carries (GET `?dns=` base64url, POST `application/dns-message`) or the HTTP
//! status that refuses it; [`max_age`] is the answer's `Cache-Control`. Both are
//! pure; [`answer`] runs them for one request, asking the same [`Handler`] as the
//! other transports, and [`serve_http1`] serves an HTTP/1.1 connection.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::http::request::Parts;
use hyper::{HeaderMap, Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::forwarded::{ClientAddr, TrustedProxies};
use super::tls_stats::TlsStats;
use super::{Action, Handler, Reply, Request, Shared, Transport};
use crate::dns;
use crate::dns::{HEADER_LEN, records, skip_questions, u16_at};

/// The media type of a DNS message (RFC 8484 §6).
pub const DNS_MESSAGE: &str = "application/dns-message";
/// The largest query accepted: a DNS message's own limit over TCP.
pub const MAX_QUERY: usize = 65_535;
/// The header a proxy names the client in (believed from `trusted_proxies` only).
const X_FORWARDED_FOR: &str = "x-forwarded-for";
/// Streams one HTTP/2 connection may have open at once.
pub const MAX_STREAMS: u32 = 100;
/// The ALPN protocols of DNS over HTTPS, in the server's order of preference.
pub const ALPN_DOH: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a request carries no query: its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DohRefusal {
    /// 400: no `dns` parameter, not base64url, or not a DNS message.
    BadRequest,
    /// 404: another path.
    NotFound,
    /// 405: neither GET (or HEAD) nor POST; the response names them in `Allow`.
    MethodNotAllowed,
    /// 413: a body (or a query) over [`MAX_QUERY`] bytes.
    TooLarge,
    /// 415: a POST whose body is not `application/dns-message`.
    UnsupportedType,
}

impl DohRefusal {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

/// The parts of an HTTP request [`query_of`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct HttpQuery<'a> {
    /// GET, POST, ...
    pub method: &'a Method,
    /// The URL's path.
    pub path: &'a str,
    /// The URL's query string, without the `?`.
    pub query: Option<&'a str>,
    /// The `Content-Type` header.
    pub content_type: Option<&'a [u8]>,
    /// The body (empty for a GET).
    pub body: &'a [u8],
}

/// The methods a DoH path answers, as a 405's `Allow` header names them (RFC 9110
/// §15.5.6); HEAD is answered as GET, without the body (§9.3.2).
pub const ALLOW: &str = "GET, HEAD, POST";

/// The DNS query `req` carries when it asks on `path`, or the status refusing it.
///
/// # Errors
/// The [`DohRefusal`], checked in this order: path, method, then the query itself.
pub fn query_of(req: &HttpQuery<'_>, path: &str) -> Result<Vec<u8>, DohRefusal> {
    if req.path != path {
        return Err(DohRefusal::NotFound);
    }
    let raw = if req.method == Method::GET || req.method == Method::HEAD {
        let param = req
            .query
            .and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "dns")
                    .map(|(_, v)| v.into_owned())
            })
            .ok_or(DohRefusal::BadRequest)?;
        if param.len() > MAX_QUERY * 4 / 3 + 4 {
            return Err(DohRefusal::TooLarge);
        }
        // RFC 8484 §6: base64url without padding; padded is taken too.
        data_encoding::BASE64URL_NOPAD
            .decode(param.trim_end_matches('=').as_bytes())
            .map_err(|_| DohRefusal::BadRequest)?
    } else if req.method == Method::POST {
        let media = req
            .content_type
            .and_then(|c| std::str::from_utf8(c).ok())
            .map(|c| c.split(';').next().unwrap_or_default().trim());
        if !media.is_some_and(|m| m.eq_ignore_ascii_case(DNS_MESSAGE)) {
            return Err(DohRefusal::UnsupportedType);
        }
        super::recycle::copy_of(req.body)
    } else {
        return Err(DohRefusal::MethodNotAllowed);
    };
    if raw.len() > MAX_QUERY {
        return Err(DohRefusal::TooLarge);
    }
    if raw.len() < HEADER_LEN {
        return Err(DohRefusal::BadRequest);
    }
    Ok(raw)
}

/// `Cache-Control: max-age` of an answer (RFC 8484 §5.1): the smallest TTL of its
/// answer and authority records, and of a negative answer (no answer records) no
/// more than the MINIMUM of the SOA in its authority section; `None` when it has
/// no records (or is malformed).
pub fn max_age(answer: &[u8]) -> Option<u32> {
    const SOA: u16 = 6;
    let count = |i: usize| u16_at(answer, 4 + 2 * i).map(usize::from);
    let u32_at = |at: usize| {
        let b = answer.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let pos = skip_questions(answer, HEADER_LEN, count(0)?)?;
    let answers = count(1)?;
    let mut min: Option<u32> = None;
    for (i, r) in records(answer, pos, answers + count(2)?).enumerate() {
        let r = r?;
        let mut ttl = u32_at(r.fixed.checked_add(4)?)?;
        if answers == 0 && i >= answers && r.rtype == SOA {
            // MINIMUM: the last field of the SOA's RDATA.
            ttl = ttl.min(u32_at(r.rdata_end.checked_sub(4)?)?);
        }
        min = Some(min.map_or(ttl, |m| m.min(ttl)));
    }
    min
}

/// Where a DoH listener answers: the URL path queries are asked on, and whether
/// its answers advertise HTTP/3 on the same port (`Alt-Svc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DohRoute {
    /// The URL path.
    pub path: Box<str>,
    /// HTTP/3 is served too (`http3 = true`).
    pub http3: bool,
}

/// The DoH side of a server: its bound listeners, the TLS acceptor (none: plain
/// HTTP behind a proxy), the path and the handshake counters.
pub struct DohListeners {
    /// The TCP listeners, one per `[ls.https]` address.
    pub(crate) listeners: Vec<TcpListener>,
    /// Does the handshakes; `None` serves plain HTTP/1.1 and HTTP/2.
    pub(crate) acceptor: Option<TlsAcceptor>,
    /// The URL path queries are asked on (and whether HTTP/3 is advertised).
    pub(crate) path: Arc<DohRoute>,
    /// Counts the handshakes.
    pub(crate) stats: Arc<TlsStats>,
    /// The new-connection limit per client.
    pub(crate) conn_rate: Arc<super::conn_rate::ConnRate>,
    /// The proxies whose `X-Forwarded-For` names the client.
    pub(crate) trusted: Arc<TrustedProxies>,
}

impl DohListeners {
    /// DoH on `listeners` at `path`, over TLS with `config` when given.
    pub fn new(
        listeners: Vec<TcpListener>,
        config: Option<Arc<rustls::ServerConfig>>,
        path: &str,
        stats: Arc<TlsStats>,
    ) -> Self {
        DohListeners {
            listeners,
            acceptor: config.map(TlsAcceptor::from),
            path: Arc::new(DohRoute {
                path: path.into(),
                http3: false,
            }),
            stats,
            conn_rate: Arc::default(),
            trusted: Arc::default(),
        }
    }

    /// With `trusted` as the proxies whose `X-Forwarded-For` is believed.
    #[must_use]
    pub fn with_trusted_proxies(mut self, trusted: Arc<TrustedProxies>) -> Self {
        self.trusted = trusted;
        self
    }

    /// With answers advertising HTTP/3 on the listeners' ports (`Alt-Svc`).
    #[must_use]
    pub fn with_http3(mut self) -> Self {
        let path = self.path.path.clone();
        self.path = Arc::new(DohRoute { path, http3: true });
        self
    }

    /// With `conn_rate` as the limit on new connections per client.
    #[must_use]
    pub fn with_conn_rate(mut self, conn_rate: Arc<super::conn_rate::ConnRate>) -> Self {
        self.conn_rate = conn_rate;
        self
    }
}

/// HTTP/1.1 with hyper on `io` until it closes, it has had no request in progress
/// for the TCP idle timeout, or the server stops (then gracefully: requests in
/// progress are answered).
pub(super) async fn serve_http1<H: Handler, S>(
    io: S,
    peer: SocketAddr,
    shared: Arc<Shared<H>>,
    site: Site,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc_shared = shared.clone();
    let activity = Arc::new(Activity::default());
    let seen = activity.clone();
    let service = hyper::service::service_fn(move |req| {
        let (shared, site, seen) = (svc_shared.clone(), site.clone(), seen.clone());
        async move {
            let _busy = seen.begin();
            Ok::<_, Infallible>(respond(req, peer, &shared, &site).await)
        }
    });
    let idle = shared.opts.tcp_idle_timeout;
    let mut builder = hyper::server::conn::http1::Builder::new();
    // A request head sent a byte at a time (slowloris) is cut off.
    builder.timer(TokioTimer::new()).header_read_timeout(idle);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    loop {
        // With a request in progress, look again an idle timeout later (a
        // deadline already past would wake the loop at once, over and over).
        let deadline = match activity.busy() {
            0 => activity.idle_since() + idle,
            _ => Instant::now() + idle,
        };
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = shared.token.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => {
                // Idle as long as a TCP connection may be: closed (gracefully).
                if activity.busy() == 0 && activity.idle_since() + idle <= Instant::now() {
                    break;
                }
            }
        }
    }
    conn.as_mut().graceful_shutdown();
    // Requests in progress are answered; a client still holding the
    // connection an idle timeout later (half a request head...) is cut off.
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shared.abort.cancelled() => {}
        _ = tokio::time::sleep(idle) => {}
    }
}

/// When a connection last had a request, and how many it has in progress.
#[derive(Debug)]
struct Activity {
    /// The end of the last request (or the connection's start).
    last: std::sync::Mutex<Instant>,
    /// Requests in progress.
    busy: AtomicUsize,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            last: std::sync::Mutex::new(Instant::now()),
            busy: AtomicUsize::new(0),
        }
    }
}

impl Activity {
    /// A request begins; it ends when the guard is dropped.
    fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Relaxed);
        Busy(self.clone())
    }

    /// Requests in progress.
    fn busy(&self) -> usize {
        self.busy.load(Relaxed)
    }

    /// When the connection became idle (the end of its last request).
    fn idle_since(&self) -> Instant {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A request in progress on a connection ([`Activity::begin`]).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        *self
            .0
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        self.0.busy.fetch_sub(1, Relaxed);
    }
}

/// What a connection's requests are answered by: the path, the counters, the
/// trusted proxies; the listener's address it came to, when known; and the
/// `Alt-Svc` its answers carry.
#[derive(Clone)]
pub(super) struct Site {
    /// The path (and whether HTTP/3 is served).
    pub(super) route: Arc<DohRoute>,
    /// DoH's counters.
    pub(super) stats: Arc<TlsStats>,
    /// The proxies whose `X-Forwarded-For` is believed.
    pub(super) trusted: Arc<TrustedProxies>,
    /// The listener's address.
    pub(super) local: Option<SocketAddr>,
    /// `h3=":PORT"; ma=86400` when HTTP/3 is served on the listener's port.
    pub(super) alt_svc: Option<HeaderValue>,
}

impl Site {
    /// The site of a connection to `local` (TCP), advertising HTTP/3 on its port
    /// when the route serves it.
    pub(super) fn new(
        route: Arc<DohRoute>,
        stats: Arc<TlsStats>,
        trusted: Arc<TrustedProxies>,
        local: Option<SocketAddr>,
    ) -> Self {
        let alt_svc = match local {
            Some(at) if route.http3 => Some(alt_svc(at.port())),
            _ => None,
        };
        Site {
            route,
            stats,
            trusted,
            local,
            alt_svc,
        }
    }

    /// Adds the `Alt-Svc` header, when HTTP/3 is advertised.
    pub(super) fn advertise(&self, headers: &mut HeaderMap) {
        if let Some(v) = &self.alt_svc {
            headers.insert(hyper::header::ALT_SVC, v.clone());
        }
    }
}

/// The `Alt-Svc` value saying HTTP/3 is served on `port` of the same host, for a
/// day (RFC 7838, RFC 9114 §3.1.1).
pub fn alt_svc(port: u16) -> HeaderValue {
    HeaderValue::from_str(&format!("h3=\":{port}\"; ma=86400"))
        .unwrap_or_else(|_| HeaderValue::from_static("clear"))
}

/// The HTTP/1.1 response to one request from `peer`.
async fn respond<H: Handler>(
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared<H>,
    site: &Site,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = if wants_body(&parts, site) {
        // A body that does not come within the idle timeout (a slow or
        // missing one) ends the request, or it would hold its stream forever.
        let limit = shared.opts.tcp_idle_timeout;
        let code = match tokio::time::timeout(limit, Limited::new(body, MAX_QUERY).collect()).await
        {
            Ok(Ok(b)) => Ok(b.to_bytes()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                Err(DohRefusal::TooLarge.status())
            }
            Ok(Err(_)) => Err(StatusCode::BAD_REQUEST),
            Err(_) => Err(StatusCode::REQUEST_TIMEOUT),
        };
        match code {
            Ok(b) => b,
            Err(code) => return status(refused(&site.stats, code), site),
        }
    } else {
        Bytes::new()
    };
    match answer(&parts, &body, peer, shared, site).await {
        Ok(dns) => {
            let mut r = hyper::Response::new(Full::default());
            reply_headers(r.headers_mut(), &dns);
            site.advertise(r.headers_mut());
            *r.body_mut() = Full::new(Bytes::from(dns));
            r
        }
        Err(code) => status(code, site),
    }
}

/// Does the request carry its query in a body to read (a POST on the path)?
pub(super) fn wants_body(head: &Parts, site: &Site) -> bool {
    head.method == Method::POST && head.uri.path() == &*site.route.path
}

/// `code`, counted as a refused request.
pub(super) fn refused(stats: &TlsStats, code: StatusCode) -> StatusCode {
    stats.doh_refused.fetch_add(1, Relaxed);
    code
}

/// The DNS answer to the request `head` with `body` from `peer` (a trusted proxy
/// may name another client in `X-Forwarded-For`: the handler sees that one), or
/// the status of an error response (a refusal, counted, or 503).
pub(super) async fn answer<H: Handler>(
    head: &Parts,
    body: &[u8],
    peer: SocketAddr,
    shared: &Shared<H>,
    site: &Site,
) -> Result<Vec<u8>, StatusCode> {
    let (stats, trusted) = (&site.stats, &site.trusted);
    let http = HttpQuery {
        method: &head.method,
        path: head.uri.path(),
        query: head.uri.query(),
        content_type: head.headers.get(CONTENT_TYPE).map(|v| v.as_bytes()),
        body,
    };
    let raw = query_of(&http, &site.route.path).map_err(|r| refused(stats, r.status()))?;
    stats.doh_queries.fetch_add(1, Relaxed);
    let forwarded = head.headers.get_all(X_FORWARDED_FOR).iter();
    let client = trusted.client_of(peer, forwarded.map(|v| v.as_bytes()));
    if let ClientAddr::Malformed(_) = client {
        stats.doh_xff_malformed.fetch_add(1, Relaxed);
    }
    let req = Request {
        raw: &raw,
        src: client.addr(),
        transport: Transport::Tcp,
        via: crate::dns::Via::Doh,
        local: site.local,
    };
    let reply = match shared.handler.handle(req) {
        Action::Now(reply) => reply,
        Action::Handed => Reply::Drop,
        Action::Later(fut) => match shared.inflight.take(client.addr().ip()) {
            Some(permit) => {
                let reply = fut.await;
                drop(permit);
                reply
            }
            None => {
                shared.handler.inflight_refused();
                dns::servfail_for(&raw).map_or(Reply::Drop, Reply::One)
            }
        },
    };
    let pad = dns::query_is_padded(&raw);
    super::recycle::give(raw);
    match super::tcp::padded(reply, pad) {
        Reply::One(b) => Ok(b),
        Reply::Stream(mut s) => match s.next_message() {
            Some(Ok(b)) => Ok(b),
            _ => Err(StatusCode::SERVICE_UNAVAILABLE),
        },
        Reply::Drop => Err(StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// The headers of a response carrying `answer`: its type, its length (as RFC 8484's
/// examples show it; h2 adds none of its own) and `Cache-Control`.
pub(super) fn reply_headers(headers: &mut HeaderMap, answer: &[u8]) {
    headers.reserve(3);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(answer.len()));
    if let Some(age) = max_age(answer) {
        headers.insert(CACHE_CONTROL, cache_control(age));
    }
}

/// `max-age=AGE`, written without a formatter (itoa) or an allocation.
fn cache_control(age: u32) -> HeaderValue {
    const PREFIX: &[u8] = b"max-age=";
    let mut number = itoa::Buffer::new();
    let digits = number.format(age).as_bytes();
    // The prefix and a u32's ten digits at most.
    let mut buf = [0u8; PREFIX.len() + 10];
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    buf[PREFIX.len()..PREFIX.len() + digits.len()].copy_from_slice(digits);
    let digits = digits.len();
    // Visible ASCII only: a valid header value, so the fallback is never taken.
    HeaderValue::from_bytes(&buf[..PREFIX.len() + digits])
        .unwrap_or_else(|_| HeaderValue::from_static("max-age=0"))
}

/// An empty response with `code` (and `content-length: 0`, which hyper would add).
fn status(code: StatusCode, site: &Site) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    error_headers(r.headers_mut(), code);
    site.advertise(r.headers_mut());
    r
}

/// The headers of an error response with `code` and no body: `content-length: 0`,
/// and for a 405 the methods allowed ([`ALLOW`]).
pub(super) fn error_headers(headers: &mut HeaderMap, code: StatusCode) {
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    if code == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(hyper::header::ALLOW, HeaderValue::from_static(ALLOW));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `www.example.com A`, id 0x1234.
    fn query() -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        q
    }

    /// A request on `path` with `method` and the rest left out.
    fn req<'a>(method: &'a Method, path: &'a str) -> HttpQuery<'a> {
        HttpQuery {
            method,
            path,
            query: None,
            content_type: None,
            body: &[],
        }
    }

    /// A GET of `/dns-query?QUERY`.
    fn get(query: &str) -> Result<Vec<u8>, DohRefusal> {
        let r = HttpQuery {
            query: Some(query),
            ..req(&Method::GET, "/dns-query")
        };
        query_of(&r, "/dns-query")
    }

    /// A POST to `/dns-query` of `body`, of type `ct`.
    fn post(ct: Option<&str>, body: &[u8]) -> Result<Vec<u8>, DohRefusal> {
        let r = HttpQuery {
            content_type: ct.map(str::as_bytes),
            body,
            ..req(&Method::POST, "/dns-query")
        };
        query_of(&r, "/dns-query")
    }

    #[test]
    fn get_takes_the_dns_parameter_in_base64url() {
        let q = query();
        let b64 = data_encoding::BASE64URL_NOPAD.encode(&q);
        assert_eq!(get(&format!("dns={b64}")), Ok(q.clone()));
        let padded = data_encoding::BASE64URL.encode(&q);
        assert_eq!(get(&format!("ct=x&dns={padded}")), Ok(q));
        assert_eq!(get("x=1"), Err(DohRefusal::BadRequest));
        assert_eq!(get("dns=!!"), Err(DohRefusal::BadRequest));
        assert_eq!(get("dns=AAAA"), Err(DohRefusal::BadRequest));
        let huge = "A".repeat(100_000);
        assert_eq!(get(&format!("dns={huge}")), Err(DohRefusal::TooLarge));
    }

    #[test]
    fn post_takes_a_dns_message_body() {
        let q = query();
        assert_eq!(post(Some(DNS_MESSAGE), &q), Ok(q.clone()));
        assert_eq!(
            post(Some("Application/DNS-Message; x=1"), &q),
            Ok(q.clone())
        );
        assert_eq!(
            post(Some("text/plain"), &q),
            Err(DohRefusal::UnsupportedType)
        );
        assert_eq!(post(None, &q), Err(DohRefusal::UnsupportedType));
        assert_eq!(post(Some(DNS_MESSAGE), &[]), Err(DohRefusal::BadRequest));
    }

    #[test]
    fn another_path_or_method_is_refused() {
        let not_found = query_of(&req(&Method::GET, "/"), "/dns-query");
        assert_eq!(not_found, Err(DohRefusal::NotFound));
        let put = query_of(&req(&Method::PUT, "/dns-query"), "/dns-query");
        assert_eq!(put, Err(DohRefusal::MethodNotAllowed));
        let mut headers = HeaderMap::new();
        error_headers(&mut headers, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers["allow"], "GET, HEAD, POST");
        // HEAD is GET's twin.
        let b64 = data_encoding::BASE64URL_NOPAD.encode(&query());
        let head = HttpQuery {
            query: Some(&format!("dns={b64}")),
            ..req(&Method::HEAD, "/dns-query")
        };
        assert_eq!(query_of(&head, "/dns-query"), Ok(query()));
        let all = [
            DohRefusal::BadRequest,
            DohRefusal::NotFound,
            DohRefusal::MethodNotAllowed,
            DohRefusal::TooLarge,
            DohRefusal::UnsupportedType,
        ];
        let statuses: Vec<u16> = all.iter().map(|r| r.status().as_u16()).collect();
        assert_eq!(statuses, [400, 404, 405, 413, 415]);
    }

    #[test]
    fn max_age_is_the_smallest_ttl_of_answer_and_authority() {
        let mut a = query();
        a[2] = 0x81;
        a[7] = 2; // ANCOUNT
        a[9] = 1; // NSCOUNT
        for ttl in [300u32, 60, 3600] {
            a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
            a.extend_from_slice(&ttl.to_be_bytes());
            a.extend_from_slice(&[0, 4, 192, 0, 2, 1]);
        }
        assert_eq!(max_age(&a), Some(60));
        assert_eq!(max_age(&query()), None);
        assert_eq!(max_age(&a[..a.len() - 3]), None);
    }

    /// An NXDOMAIN with the SOA at TTL 3600, MINIMUM 60: `max-age=60` (RFC 8484
    /// §5.1); the same SOA beside an answer record does not cap it.
    #[test]
    fn a_negative_answer_lives_no_longer_than_its_soa_minimum() {
        let soa = |ttl: u32, minimum: u32| {
            let mut r = vec![0xc0, 0x0c, 0, 6, 0, 1];
            r.extend_from_slice(&ttl.to_be_bytes());
            let mut rdata = vec![0, 0]; // MNAME and RNAME: the root
            for v in [1u32, 7200, 900, 1_209_600, minimum] {
                rdata.extend_from_slice(&v.to_be_bytes());
            }
            r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            r.extend_from_slice(&rdata);
            r
        };
        let mut nx = query();
        nx[2] = 0x81;
        nx[3] = 0x83;
        nx[9] = 1; // NSCOUNT
        nx.extend_from_slice(&soa(3600, 60));
        assert_eq!(max_age(&nx), Some(60));
        let mut low_ttl = query();
        low_ttl[9] = 1;
        low_ttl.extend_from_slice(&soa(30, 60));
        assert_eq!(max_age(&low_ttl), Some(30));
        let mut positive = query();
        positive[7] = 1; // ANCOUNT
        positive[9] = 1;
        positive.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 1]);
        positive.extend_from_slice(&soa(3600, 60));
        assert_eq!(max_age(&positive), Some(3600));
    }

    #[test]
    fn alt_svc_names_the_port_for_a_day() {
        assert_eq!(alt_svc(8443), "h3=\":8443\"; ma=86400");
    }

    #[test]
    fn cache_control_is_written_in_decimal() {
        for age in [0, 7, 10, 300, 86_400, u32::MAX] {
            assert_eq!(cache_control(age), format!("max-age={age}").as_str());
        }
    }
}
