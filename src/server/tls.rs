//! DNS over TLS (RFC 7858, ALPN `dot`): the TLS set-up ([`server_config`]: TLS 1.2 and
//! 1.3 with the ring provider, session tickets and a session cache), the certificate
//! that a reload swaps under running connections ([`CertSwap`]), the handshake with
//! its timeout and its failures counted by reason ([`TlsStats`], in [`super::tls_stats`]), and then the TCP
//! listener's own connection handling over the TLS stream ([`super::tcp`]): the same
//! framing, pipelining, out-of-order answers and idle timeout.
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::FutureExt;
use futures_util::future::OptionFuture;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::tls_stats::{HandshakeFailure, TlsStats};
use crate::config::{CertError, load_certified_key};

/// A client that has not finished its handshake within this long is disconnected.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// TLS 1.2 sessions kept for resumption by session id (TLS 1.3 resumes by ticket).
const SESSION_CACHE: usize = 4096;
/// The ALPN protocol of DNS over TLS (RFC 7858 as registered).
pub const ALPN_DOT: &[u8] = b"dot";

/// The certificate and key served to new connections; [`CertSwap::reload`] replaces
/// them while the connections already open keep theirs.
#[derive(Debug)]
pub struct CertSwap(ArcSwap<CertifiedKey>);

impl CertSwap {
    /// When the certificate served now expires (Unix seconds; 0 when unknown).
    pub fn not_after(&self) -> i64 {
        crate::config::not_after(&self.0.load()).unwrap_or(0)
    }

    /// Reads the PEM chain at `cert` and the key at `key`.
    ///
    /// # Errors
    /// As [`load_certified_key`].
    pub fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, CertError> {
        Ok(CertSwap(ArcSwap::from_pointee(load_certified_key(
            cert, key,
        )?)))
    }

    /// Re-reads the files: new connections get the new pair. A pair that cannot be
    /// served is refused and the old one stays.
    ///
    /// # Errors
    /// As [`load_certified_key`].
    pub fn reload(&self, cert: &std::path::Path, key: &std::path::Path) -> Result<(), CertError> {
        self.0.store(Arc::new(load_certified_key(cert, key)?));
        Ok(())
    }
}

impl ResolvesServerCert for CertSwap {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Why the TLS server could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS: {0}")]
pub struct TlsSetupError(#[from] rustls::Error);

/// The rustls server configuration of an encrypted transport: TLS 1.2 and 1.3, the
/// ring provider, the ALPN protocols `alpn` ([`ALPN_DOT`] for DNS over TLS), the
/// certificate of `certs`, session tickets (rotated) and a session cache for
/// resumption.
///
/// # Errors
/// The provider refuses the protocol versions, or no ticket key can be made.
pub fn server_config(
    certs: Arc<CertSwap>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    Ok(Arc::new(config))
}

/// The DoT side of a server: its bound listeners, the acceptor and the counters.
pub struct DotListeners {
    /// The TCP listeners, one per `[ls.tls]` address.
    pub(crate) listeners: Vec<TcpListener>,
    /// Does the handshakes.
    pub(crate) acceptor: TlsAcceptor,
    /// Counts them.
    pub(crate) stats: Arc<TlsStats>,
    /// The new-connection limit per client.
    pub(crate) conn_rate: Arc<super::conn_rate::ConnRate>,
}

impl DotListeners {
    /// DoT on `listeners`, with `config` (see [`server_config`]), counted in `stats`.
    pub fn new(
        listeners: Vec<TcpListener>,
        config: Arc<ServerConfig>,
        stats: Arc<TlsStats>,
    ) -> Self {
        DotListeners {
            listeners,
            acceptor: TlsAcceptor::from(config),
            stats,
            conn_rate: Arc::default(),
        }
    }

    /// With `conn_rate` as the limit on new connections per client.
    #[must_use]
    pub fn with_conn_rate(mut self, conn_rate: Arc<super::conn_rate::ConnRate>) -> Self {
        self.conn_rate = conn_rate;
        self
    }
}

/// The TLS handshake of an accepted connection (DoT's and DoH's), bounded by
/// [`HANDSHAKE_TIMEOUT`]: the TLS stream, or `None` when it failed (counted in
/// `stats` by reason, never logged) or the server stopped first.
pub(crate) async fn handshake(
    stream: tokio::net::TcpStream,
    acceptor: TlsAcceptor,
    stop: tokio_util::sync::CancellationToken,
    stats: &TlsStats,
) -> Option<TlsStream<tokio::net::TcpStream>> {
    let handshake = tokio::select! {
        _ = stop.cancelled() => return None,
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
    };
    match handshake {
        Err(_) => stats.failed(HandshakeFailure::Timeout),
        Ok(Err(err)) => stats.failed(HandshakeFailure::of(&err)),
        Ok(Ok(tls)) => {
            stats.done(tls.get_ref().1.handshake_kind());
            return Some(tls);
        }
    }
    None
}

/// Serves one accepted DoT connection: the [`handshake`], then DNS as over TCP.
///
/// Combinators, not one `async fn`: the handshake's state and the connection's
/// then share their room (an `async fn` kept both, and every argument twice:
/// 5.8 KiB an idle connection instead of about 2).
pub(crate) fn serve_connection<H: super::Handler>(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    shared: Arc<super::Shared<H>>,
    acceptor: TlsAcceptor,
    stats: Arc<TlsStats>,
) -> impl std::future::Future<Output = ()> {
    let (stop, counted) = (shared.token.clone(), stats.clone());
    let local = stream.local_addr().ok();
    let shake = async move { handshake(stream, acceptor, stop, &counted).await };
    shake.then(move |tls| {
        let conn = tls.map(|tls| {
            super::tcp::Connection::encrypted(tls, peer, shared, stats)
                .at(local)
                .serve()
        });
        OptionFuture::from(conn).map(drop)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use rustls::HandshakeKind;

    use super::*;

    fn io_of(e: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn failures_are_named_by_their_cause() {
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(HandshakeFailure::of(&eof), HandshakeFailure::Eof);
        let garbage = io_of(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert_eq!(HandshakeFailure::of(&garbage), HandshakeFailure::NotTls);
        let alpn = io_of(rustls::Error::NoApplicationProtocol);
        assert_eq!(HandshakeFailure::of(&alpn), HandshakeFailure::Alpn);
        let alert = io_of(rustls::Error::AlertReceived(
            rustls::AlertDescription::BadCertificate,
        ));
        assert_eq!(HandshakeFailure::of(&alert), HandshakeFailure::Alert);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(HandshakeFailure::of(&reset), HandshakeFailure::Other);
    }

    #[test]
    fn every_reason_has_its_own_counter() {
        let stats = TlsStats::default();
        for (i, why) in HandshakeFailure::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                stats.failed(why);
            }
        }
        let counts: Vec<u64> = stats.failures.iter().map(|c| c.load(Relaxed)).collect();
        assert_eq!(counts, [1, 2, 3, 4, 5, 6, 7]);
        stats.done(Some(HandshakeKind::Full));
        stats.done(Some(HandshakeKind::Resumed));
        assert_eq!(stats.handshakes.load(Relaxed), 2);
        assert_eq!(stats.resumed.load(Relaxed), 1);
    }
}
