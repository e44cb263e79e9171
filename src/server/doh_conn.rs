//! One accepted DNS over HTTPS connection ([`serve_connection`]): the TLS
//! handshake when the listener has an acceptor, then HTTP/2 ([`super::doh_h2`],
//! its future handed to the handler's [`Handler::wrap_connection`]) or
//! HTTP/1.1 ([`super::doh`]), as ALPN chose or, where it did not, as the
//! client's first bytes say.
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use super::doh::{DohRoute, Site, serve_http1};
use super::doh_h2;
use super::forwarded::TrustedProxies;
use super::tls_stats::TlsStats;
use super::{Handler, Shared};

/// Serves one accepted DoH connection: the TLS handshake when there is an acceptor
/// (bounded and counted as DoT's), then HTTP/2 or HTTP/1.1: as ALPN chose, or
/// (plain, or no ALPN) as the client's first bytes say.
pub(crate) async fn serve_connection<H: Handler>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared<H>>,
    acceptor: Option<TlsAcceptor>,
    path: Arc<DohRoute>,
    stats: Arc<TlsStats>,
    trusted: Arc<TrustedProxies>,
) {
    let local = stream.local_addr().ok();
    let Some(acceptor) = acceptor else {
        let site = Site::new(path, stats, trusted, local);
        return Box::pin(serve_sniffed(stream, peer, shared, site)).await;
    };
    let stop = shared.token.clone();
    let Some(tls) = super::tls::handshake(stream, acceptor, stop, &stats).await else {
        return;
    };
    let site = Site::new(path, stats, trusted, local);
    // Each protocol's state on the heap, as large as it needs: inline, every
    // connection would hold room for the largest of them.
    match tls.get_ref().1.alpn_protocol() {
        Some(b"h2") => {
            let conn = doh_h2::serve(tls, peer, &shared, &site);
            Box::pin(shared.handler.wrap_connection(conn)).await;
        }
        Some(_) => Box::pin(serve_http1(tls, peer, shared, site)).await,
        None => Box::pin(serve_sniffed(tls, peer, shared, site)).await,
    }
}

/// HTTP/2 when the client's first bytes are its connection preface, else HTTP/1.1;
/// a client silent for the idle timeout is closed.
async fn serve_sniffed<H: Handler, S>(io: S, peer: SocketAddr, shared: Arc<Shared<H>>, site: Site)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let idle = shared.opts.tcp_idle_timeout;
    let sniffed = tokio::select! {
        _ = shared.token.cancelled() => return,
        r = tokio::time::timeout(idle, doh_h2::sniff(io)) => r,
    };
    match sniffed {
        Ok(Some((true, io))) => {
            let conn = doh_h2::serve(io, peer, &shared, &site);
            Box::pin(shared.handler.wrap_connection(conn)).await;
        }
        Ok(Some((false, io))) => Box::pin(serve_http1(io, peer, shared, site)).await,
        Ok(None) | Err(_) => {}
    }
}
