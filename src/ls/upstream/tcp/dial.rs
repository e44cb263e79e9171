//! How a pool's connections are opened ([`Dial`]): plain TCP
//! ([`PlainTcp`]), or whatever a pool was made with (DNS over TLS).
use std::net::SocketAddr;

use tokio::net::TcpStream;

/// The read half of a pooled connection.
pub type ConnRead = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
/// The write half of a pooled connection.
pub type ConnWrite = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;
/// What [`Dial::dial`] returns: a connection's halves, or why none.
pub type Dialed<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = std::io::Result<(ConnRead, ConnWrite)>> + Send + 'a>,
>;

/// How a pool's connections are opened: plain TCP ([`TcpConns::new`]),
/// or a stream over TCP (DNS over TLS, [`TcpConns::with_dial`]); the
/// framing, pipelining and matching are the same on every stream.
pub trait Dial: Send + Sync {
    /// A new connection to `addr`, ready for DNS messages.
    fn dial(&self, addr: SocketAddr) -> Dialed<'_>;
}

/// Plain TCP, no delay.
pub(super) struct PlainTcp;

impl Dial for PlainTcp {
    fn dial(&self, addr: SocketAddr) -> Dialed<'_> {
        Box::pin(async move {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            let (rd, wr) = s.into_split();
            Ok((Box::new(rd) as ConnRead, Box::new(wr) as ConnWrite))
        })
    }
}
