//! DNS over TLS to a backend (RFC 7858): the connections of the TCP pool
//! ([`crate::ls::upstream::tcp`]: pipelined, answers matched by ID and
//! question, idle-closed, replaced when they break) opened by [`TlsDial`],
//! a TLS handshake (ALPN `dot`, sessions resumed) over a fresh TCP
//! connection, unless the redial back-off says wait.
use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::guard::Guard;
use super::policy::FailReason;
use crate::ls::upstream::tcp::{ConnRead, ConnWrite, Dial, Dialed};

/// Opens DNS-over-TLS connections to one backend.
pub(super) struct TlsDial {
    pub(super) connector: TlsConnector,
    pub(super) name: ServerName<'static>,
    pub(super) guard: Arc<Guard>,
}

impl Dial for TlsDial {
    fn dial(&self, addr: SocketAddr) -> Dialed<'_> {
        Box::pin(async move {
            if !self.guard.may_try() {
                return Err(std::io::Error::other(
                    "backing off after failed connections",
                ));
            }
            let tcp = match TcpStream::connect(addr).await {
                Ok(tcp) => tcp,
                Err(e) => {
                    self.guard.failed(&e, FailReason::Connect);
                    return Err(e);
                }
            };
            tcp.set_nodelay(true)?;
            match self.connector.connect(self.name.clone(), tcp).await {
                Ok(tls) => {
                    self.guard.succeeded();
                    let (rd, wr) = tokio::io::split(tls);
                    Ok((Box::new(rd) as ConnRead, Box::new(wr) as ConnWrite))
                }
                Err(e) => {
                    self.guard.failed(&e, FailReason::Handshake);
                    Err(e)
                }
            }
        })
    }
}
