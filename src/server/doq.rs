//! DNS over QUIC (RFC 9250, ALPN `doq`) for any server, the LS's
//! `[ls.quic]` and a TS's `quic`: the QUIC endpoints ([`DoqListeners`],
//! built on quinn with rustls and ring), their limits (connections, streams
//! per connection, idle timeout, a Retry for unvalidated addresses once many
//! connections are open), and the protocol: one query per bidirectional
//! stream, a two-byte length prefix, the DNS ID 0 on the wire both ways, the
//! answer then the stream's FIN. Each query goes through the server's
//! [`super::Handler`] under its in-flight bound, as a TCP query (no
//! truncation; the TS's rate limiting is UDP's only); a zone transfer's
//! messages go one after another on its stream, each with its length, then
//! the FIN (RFC 9250 §4.2.2), each written within [`WRITE_TIMEOUT`]. A
//! returning client resumes its session and may send queries in 0-RTT:
//! those that change nothing are answered at once, the others wait for the
//! handshake ([`super::quic_early`]).
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use quinn::{Connection, Endpoint, Incoming, RecvStream, SendStream, VarInt};
use tokio::runtime::Handle;
use tracing::debug;

use super::quic_early::{EarlyDecision, Handshake, HandshakeWait, SessionStore, early_decision};
use super::tcp::padded;
use super::tls::CertSwap;
use super::{Action, Handler, Reply, Request, Shared};
use crate::dns::{self, Transport, Via};

/// The ALPN protocol of DNS over QUIC (RFC 9250 §4.1).
pub const ALPN_DOQ: &[u8] = b"doq";

/// The error codes of DNS over QUIC (RFC 9250 §4.3), as a connection's
/// close or a stream's reset carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum DoqError {
    /// The connection or stream is closed with nothing wrong (shutdown, idle).
    NoError = 0x0,
    /// The server could not answer (an answer that could not be written).
    Internal = 0x1,
    /// The peer broke the protocol (a non-zero DNS ID, a malformed frame).
    Protocol = 0x2,
    /// The stream was cancelled: by the client, or by the server when the
    /// query does not come whole in time or the client does not take the
    /// answer in time.
    RequestCancelled = 0x3,
    /// The server is too busy to take this connection or stream.
    ExcessiveLoad = 0x4,
}

impl DoqError {
    /// The code as QUIC carries it.
    pub fn code(self) -> VarInt {
        VarInt::from_u32(self as u32)
    }
}

/// Bidirectional streams (queries in progress) one connection may have open.
const MAX_STREAMS: u32 = 100;
/// A connection with no packet for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A query must arrive whole (with its FIN) within this long of its stream opening.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Each message of an answer must be taken by the client (its flow control)
/// within this long, or the stream is reset: a client that stops reading a
/// zone transfer does not hold its transfer slot for ever (as over TCP).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Past this many open connections a client with an address not yet
/// validated is sent a Retry first (a flood of spoofed Initials costs one
/// stateless packet each, no handshake).
const RETRY_ABOVE: usize = 256;
/// How long a Retry token is good for.
const RETRY_TOKEN_LIFETIME: Duration = Duration::from_secs(15);

/// The counters of DNS over QUIC (the metrics' `dnslb_doq_*`).
#[derive(Debug, Default)]
pub struct DoqStats {
    /// Connections whose handshake completed.
    pub connections: AtomicU64,
    /// Connections refused at once: the cap was full, or the source held its
    /// share of it (EXCESSIVE_LOAD).
    pub refused: AtomicU64,
    /// Retries sent to unvalidated addresses.
    pub retries: AtomicU64,
    /// Queries taken.
    pub queries: AtomicU64,
    /// Streams or connections ended with PROTOCOL_ERROR.
    pub protocol_errors: AtomicU64,
    /// Handshakes that resumed a session (no certificate sent).
    pub resumed: Arc<AtomicU64>,
    /// Queries that came in 0-RTT and were answered before the handshake
    /// completed (replay-safe ones).
    pub early_answered: AtomicU64,
    /// Queries that came in 0-RTT and waited for the handshake (not
    /// replay-safe: UPDATE, NOTIFY, zone transfers).
    pub early_held: AtomicU64,
}

/// Why the QUIC endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DoqSetupError {
    /// The TLS configuration is refused.
    #[error("cannot set up TLS for QUIC: {0}")]
    Tls(#[from] rustls::Error),
    /// quinn refuses the TLS configuration.
    #[error("cannot set up QUIC: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// The UDP socket cannot be taken by QUIC.
    #[error("cannot set up QUIC on the socket: {0}")]
    Io(#[from] std::io::Error),
}

/// The quinn server configuration of DoQ: TLS 1.3 only (QUIC's), ALPN
/// `doq`, the certificate of `certs` (a reload swaps it), session
/// resumption and 0-RTT (resumptions counted in `stats`), and the limits
/// above.
///
/// # Errors
/// rustls or quinn refuse the configuration.
pub fn quic_server_config(
    certs: Arc<CertSwap>,
    stats: &DoqStats,
) -> Result<quinn::ServerConfig, DoqSetupError> {
    let mut config = quic_tls(certs, ALPN_DOQ, stats.resumed.clone())?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .max_idle_timeout(Some(IDLE_TIMEOUT.try_into().unwrap_or(VarInt::MAX.into())));
    config
        .transport_config(Arc::new(transport))
        .retry_token_lifetime(RETRY_TOKEN_LIFETIME)
        .migration(false);
    Ok(config)
}

/// A QUIC server config of TLS 1.3 with `certs` (re-read on SIGHUP),
/// offering `alpn`, with session resumption (a stateful store, each ticket
/// good once, resumptions counted in `resumed`) and 0-RTT accepted (what
/// may be answered from it is the server's to decide: see
/// [`super::quic_early`]); its transport is the caller's.
///
/// # Errors
/// rustls or quinn refusing the TLS config.
pub(crate) fn quic_tls(
    certs: Arc<CertSwap>,
    alpn: &[u8],
    resumed: Arc<AtomicU64>,
) -> Result<quinn::ServerConfig, DoqSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    tls.alpn_protocols = vec![alpn.to_vec()];
    // Stateful resumption (no ticketer): rustls takes 0-RTT only so, and a
    // ticket is good for one resumption.
    tls.session_storage = SessionStore::new(resumed);
    // QUIC allows 0 or u32::MAX (RFC 9001 §4.6.1): the amount is QUIC's
    // flow control's.
    tls.max_early_data_size = u32::MAX;
    let crypto = QuicServerConfig::try_from(tls)?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
}

/// Bound UDP sockets (made non-blocking) and the QUIC server configuration
/// to serve on them. The endpoints are made where they are served
/// ([`QuicSockets::place`]): an endpoint's driver, its connections' drivers
/// and their tasks then run on that thread's runtime, as a TCP connection
/// handed to a connection thread does, and never hop between workers.
pub(crate) struct QuicSockets {
    sockets: Vec<std::net::UdpSocket>,
    config: quinn::ServerConfig,
}

impl QuicSockets {
    /// `config` to be served on each of `sockets`.
    ///
    /// # Errors
    /// A socket that cannot be made non-blocking.
    pub(crate) fn new(
        sockets: Vec<std::net::UdpSocket>,
        config: quinn::ServerConfig,
    ) -> Result<Self, DoqSetupError> {
        for sock in &sockets {
            sock.set_nonblocking(true)?;
        }
        Ok(QuicSockets { sockets, config })
    }

    /// The addresses the sockets are bound to.
    pub(crate) fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// Each socket's endpoint, made on the runtime of the next of `threads`
    /// (in turn; the caller's when there is none), with that thread's
    /// handle: the endpoint is served there.
    pub(crate) fn place(
        self,
        threads: &super::thread::ConnThreads,
    ) -> Vec<Result<(Endpoint, Option<Handle>), DoqSetupError>> {
        let config = self.config;
        self.sockets
            .into_iter()
            .map(|sock| {
                let thread = threads.next().cloned();
                let ep = {
                    let _in = thread.as_ref().map(Handle::enter);
                    endpoint(sock, &config)
                };
                ep.map(|ep| (ep, thread))
            })
            .collect()
    }
}

/// A quinn endpoint serving `config` on the bound non-blocking UDP `sock`,
/// its driver spawned on (and the socket registered with) the runtime this
/// is called in.
///
/// # Errors
/// A socket quinn cannot use.
fn endpoint(
    sock: std::net::UdpSocket,
    config: &quinn::ServerConfig,
) -> Result<Endpoint, DoqSetupError> {
    let runtime = Arc::new(quinn::TokioRuntime);
    let ep = Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config.clone()),
        sock,
        runtime,
    )?;
    Ok(ep)
}

/// The DoQ side of a server: its sockets and counters.
pub struct DoqListeners {
    /// One endpoint per `[ls.quic]` address, made where it is served.
    pub(crate) quic: QuicSockets,
    /// Counts them.
    pub(crate) stats: Arc<DoqStats>,
}

impl DoqListeners {
    /// DoQ on the bound UDP `sockets` with `config` (see [`quic_server_config`]).
    ///
    /// # Errors
    /// A socket that cannot be made non-blocking.
    pub fn new(
        sockets: Vec<std::net::UdpSocket>,
        config: quinn::ServerConfig,
        stats: Arc<DoqStats>,
    ) -> Result<Self, DoqSetupError> {
        let quic = QuicSockets::new(sockets, config)?;
        Ok(DoqListeners { quic, stats })
    }

    /// The addresses the endpoints are bound to.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.quic.local_addrs()
    }
}

/// What to do with a new connection attempt, given the connections open, the
/// cap, and whether the client's address is validated (pure: the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoqAdmission {
    /// Handshake with it.
    Accept,
    /// Send a Retry: it must prove its address first.
    Retry,
    /// Refuse it: the cap is full.
    Refuse,
}

/// The [`DoqAdmission`] of a connection attempt when `open` connections are
/// open of at most `cap`, the client's address `validated` or not.
pub fn admission(open: usize, cap: usize, validated: bool) -> DoqAdmission {
    if open >= cap {
        DoqAdmission::Refuse
    } else if !validated && open >= RETRY_ABOVE.min(cap / 2) {
        DoqAdmission::Retry
    } else {
        DoqAdmission::Accept
    }
}

/// Accepts connections on `ep` until the server stops, then closes them all
/// with DOQ_NO_ERROR. Each connection holds one of `places` for its life,
/// the places of every DoQ endpoint of the server together: the cap, the
/// Retry threshold and a source's share (past half the cap, an address or
/// an IPv6 /64 holds at most its share, as TCP's) are over all of them.
pub(crate) async fn serve_endpoint<H: Handler>(
    ep: Endpoint,
    shared: Arc<Shared<H>>,
    stats: Arc<DoqStats>,
    places: Arc<super::places::Places>,
) {
    let stop = shared.token.clone();
    loop {
        let incoming = tokio::select! {
            () = stop.cancelled() => break,
            i = ep.accept() => match i {
                Some(i) => i,
                None => break,
            },
        };
        if !shared
            .handler
            .admits_connection(incoming.remote_address().ip())
        {
            incoming.ignore();
            continue;
        }
        let (open, cap) = (places.held(), places.max());
        match admission(open, cap, incoming.remote_address_validated()) {
            DoqAdmission::Refuse => {
                stats.refused.fetch_add(1, Relaxed);
                incoming.refuse();
            }
            DoqAdmission::Retry => {
                stats.retries.fetch_add(1, Relaxed);
                if let Err(e) = incoming.retry() {
                    e.into_incoming().ignore();
                }
            }
            DoqAdmission::Accept => match places.try_take(incoming.remote_address().ip()) {
                Ok(place) => {
                    let conn = serve_connection(incoming, shared.clone(), stats.clone());
                    let thread = shared.conn_threads.next();
                    let conn = super::tcp::holding(conn, place);
                    super::thread::spawn_tracked(&shared.tracker, thread, conn);
                }
                Err(_) => {
                    stats.refused.fetch_add(1, Relaxed);
                    incoming.refuse();
                }
            },
        }
    }
    ep.close(DoqError::NoError.code(), b"");
    let _ = tokio::time::timeout(Duration::from_secs(1), ep.wait_idle()).await;
}

/// One connection: its handshake, then each bidirectional stream a query.
async fn serve_connection<H: Handler>(
    incoming: Incoming,
    shared: Arc<Shared<H>>,
    stats: Arc<DoqStats>,
) {
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            debug!(error = %e, "doq: connection not accepted");
            return;
        }
    };
    let stop = shared.token.clone();
    // The connection at once, so that streams sent in 0-RTT are taken
    // before the handshake completes; `done` resolves when it has (or
    // never, when it fails: the timeout, or `accept_bi` failing, ends it).
    let Ok((conn, done)) = connecting.into_0rtt() else {
        return; // never for a server's connection
    };
    let (handshake, wait) = Handshake::new();
    let done = tokio::time::timeout(super::tls::HANDSHAKE_TIMEOUT, done);
    let mut done = std::pin::pin!(done);
    let mut handshaking = true;
    let local = conn.local_ip();
    loop {
        let (send, recv) = tokio::select! {
            () = stop.cancelled() => {
                conn.close(DoqError::NoError.code(), b"");
                return;
            }
            r = &mut done, if handshaking => {
                // `done` says whether 0-RTT was accepted; a connection still
                // open is one whose handshake completed.
                if r.is_err() || conn.close_reason().is_some() {
                    // Failed, or not done in time: its streams give up.
                    conn.close(DoqError::NoError.code(), b"");
                    return;
                }
                handshaking = false;
                handshake.complete();
                stats.connections.fetch_add(1, Relaxed);
                continue;
            }
            s = conn.accept_bi() => match s {
                Ok(s) => s,
                Err(_) => return, // closed by the client, or idle
            },
        };
        let stream = Stream {
            conn: conn.clone(),
            shared: shared.clone(),
            stats: stats.clone(),
            local,
            handshake: wait.clone(),
        };
        shared.tracker.spawn(stream.serve(send, recv));
    }
}

/// One query stream of a connection.
struct Stream<H> {
    conn: Connection,
    shared: Arc<Shared<H>>,
    stats: Arc<DoqStats>,
    local: Option<std::net::IpAddr>,
    /// Whether the connection's handshake is complete (a query in 0-RTT
    /// that is not replay-safe waits for it).
    handshake: HandshakeWait,
}

/// What a query stream carried: its DNS message, or why it is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed<'a> {
    /// One DNS message with the ID 0.
    Query(&'a [u8]),
    /// Not one length-prefixed message with the ID 0: PROTOCOL_ERROR.
    Malformed,
}

/// Reads the stream's whole content `bytes` as RFC 9250 §4.2 says: a two-byte
/// length, that many bytes of DNS message and nothing after, the message's ID 0.
pub fn frame(bytes: &[u8]) -> Framed<'_> {
    let Some((len, msg)) = bytes.split_first_chunk::<2>() else {
        return Framed::Malformed;
    };
    let len = usize::from(u16::from_be_bytes(*len));
    if len < 12 || msg.len() != len || msg[..2] != [0, 0] {
        return Framed::Malformed;
    }
    Framed::Query(msg)
}

impl<H: Handler> Stream<H> {
    async fn serve(mut self, mut send: SendStream, mut recv: RecvStream) {
        let stop = self.shared.token.clone();
        let read = recv.read_to_end(2 + usize::from(u16::MAX));
        let bytes = tokio::select! {
            () = stop.cancelled() => return,
            r = tokio::time::timeout(QUERY_TIMEOUT, read) => match r {
                Ok(Ok(b)) => b,
                Ok(Err(_)) => return, // reset by the client, or too long: it is gone
                Err(_) => {
                    let _ = recv.stop(DoqError::RequestCancelled.code());
                    let _ = send.reset(DoqError::RequestCancelled.code());
                    return;
                }
            },
        };
        let raw = match frame(&bytes) {
            Framed::Query(raw) => raw,
            Framed::Malformed => {
                self.stats.protocol_errors.fetch_add(1, Relaxed);
                self.conn.close(DoqError::Protocol.code(), b"");
                return;
            }
        };
        self.stats.queries.fetch_add(1, Relaxed);
        match early_decision(raw, self.handshake.is_complete()) {
            EarlyDecision::Answer => {}
            EarlyDecision::AnswerEarly => {
                self.stats.early_answered.fetch_add(1, Relaxed);
            }
            EarlyDecision::Wait => {
                self.stats.early_held.fetch_add(1, Relaxed);
                let complete = tokio::select! {
                    () = stop.cancelled() => false,
                    c = self.handshake.complete() => c,
                };
                if !complete {
                    return; // never done: a replay, or a client gone
                }
            }
        }
        let peer = self.conn.remote_address();
        let pad = dns::query_is_padded(raw);
        let req = Request {
            raw,
            src: peer,
            transport: Transport::Tcp,
            via: Via::Doq,
            local: self.local.map(|ip| SocketAddr::new(ip, 0)),
        };
        let reply = match self.shared.handler.handle(req) {
            Action::Now(reply) => padded(reply, pad),
            Action::Handed => return,
            Action::Later(fut) => match self.shared.inflight.take(peer.ip()) {
                Some(place) => {
                    let abort = self.shared.abort.clone();
                    let reply = tokio::select! {
                        () = abort.cancelled() => None,
                        r = fut => Some(r),
                    };
                    drop(place);
                    match reply {
                        Some(r) => padded(r, pad),
                        None => {
                            let _ = send.reset(DoqError::Internal.code());
                            return;
                        }
                    }
                }
                None => {
                    self.shared.handler.inflight_refused();
                    match dns::servfail_for(raw) {
                        Some(b) => padded(Reply::One(b), pad),
                        None => Reply::Drop,
                    }
                }
            },
        };
        match write_reply(&mut send, reply).await {
            Written::All => {
                let _ = send.finish();
            }
            // The client did not take it in time: the server cancels.
            Written::TimedOut => {
                let _ = send.reset(DoqError::RequestCancelled.code());
            }
            Written::Failed => {
                let _ = send.reset(DoqError::Internal.code());
            }
        }
    }
}

/// How writing a reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// Every message written: the FIN follows.
    All,
    /// The client gave no room for a message within [`WRITE_TIMEOUT`]
    /// (it stopped reading): DOQ_REQUEST_CANCELLED.
    TimedOut,
    /// No answer, one too long, a transfer that failed, or a stream gone:
    /// DOQ_INTERNAL_ERROR.
    Failed,
}

/// Writes the reply's messages each with its length prefix (a zone
/// transfer's one after another on the stream).
async fn write_reply(send: &mut SendStream, reply: Reply) -> Written {
    match reply {
        Reply::Drop => Written::Failed,
        Reply::One(b) => {
            let written = write_message(send, &b).await;
            super::recycle::give(b);
            written
        }
        Reply::Stream(mut s) => {
            while let Some(next) = s.next_message() {
                let Ok(m) = next else { return Written::Failed };
                match write_message(send, &m).await {
                    Written::All => {}
                    other => return other,
                }
            }
            Written::All
        }
    }
}

/// One message with its two-byte length.
async fn write_message(send: &mut SendStream, m: &[u8]) -> Written {
    let Ok(len) = u16::try_from(m.len()) else {
        return Written::Failed;
    };
    let mut out = Vec::with_capacity(2 + m.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(m);
    let write = send.write_all(&out);
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => Written::All,
        Ok(Err(_)) => Written::Failed,
        Err(_) => Written::TimedOut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: u16) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1]);
        let mut f = u16::try_from(m.len()).unwrap().to_be_bytes().to_vec();
        f.extend(m);
        f
    }

    #[test]
    fn a_query_with_the_id_0_is_taken_and_any_other_is_a_protocol_error() {
        let ok = query(0);
        assert_eq!(frame(&ok), Framed::Query(&ok[2..]));
        assert_eq!(frame(&query(7)), Framed::Malformed);
    }

    #[test]
    fn a_frame_whose_length_is_not_its_content_is_a_protocol_error() {
        let mut long = query(0);
        long.push(0);
        assert_eq!(frame(&long), Framed::Malformed);
        let short = query(0);
        assert_eq!(frame(&short[..short.len() - 1]), Framed::Malformed);
        assert_eq!(frame(&[0]), Framed::Malformed);
        assert_eq!(frame(&[0, 3, 0, 0, 1]), Framed::Malformed);
    }

    #[test]
    fn past_the_threshold_an_unvalidated_address_is_retried_and_a_full_cap_refuses() {
        assert_eq!(admission(0, 1024, false), DoqAdmission::Accept);
        assert_eq!(admission(300, 1024, true), DoqAdmission::Accept);
        assert_eq!(admission(300, 1024, false), DoqAdmission::Retry);
        assert_eq!(admission(1024, 1024, true), DoqAdmission::Refuse);
        assert_eq!(admission(5, 10, false), DoqAdmission::Retry);
    }
}
