//! DNS over QUIC to a backend (RFC 9250, ALPN `doq`): a few connections
//! (up to its `max`, [`super::room::LINK_CONNS`] for client queries), each
//! reused while it lives; each query on a stream of its own with ID 0, its
//! answer checked against its question. A query takes a stream on the first
//! connection that grants one now; when none does, another connection is
//! opened (one handshake at a time, under the redial back-off) while fewer
//! than `max` are open, else the query is refused at once
//! ([`UpstreamError::Full`], [`quic_next`]): it never waits for a stream.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::FutureExt;

use super::guard::Guard;
use super::policy::FailReason;
use super::room::{QuicNext, quic_next};
use crate::ls::upstream::accept;
use crate::ls::upstream::error::UpstreamError;

/// The largest DNS message and its length prefix.
const FRAME_MAX: usize = 2 + 65_535;

/// The QUIC connections to one backend.
pub(super) struct QuicLink {
    pub(super) addr: SocketAddr,
    /// The name the certificate must carry, as quinn takes it.
    pub(super) name: String,
    pub(super) config: quinn::ClientConfig,
    pub(super) guard: Arc<Guard>,
    endpoint: Mutex<Option<quinn::Endpoint>>,
    /// The open connections, the first filled first.
    conns: Mutex<Vec<quinn::Connection>>,
    /// One connection opened at a time.
    opening: tokio::sync::Mutex<()>,
    /// Connections open at once, at most.
    max: usize,
}

type Streams = (quinn::SendStream, quinn::RecvStream);

fn io(e: impl std::error::Error + Send + Sync + 'static) -> UpstreamError {
    UpstreamError::Io(std::io::Error::other(e))
}

impl QuicLink {
    pub(super) fn new(
        (addr, name): (SocketAddr, String),
        config: quinn::ClientConfig,
        guard: Arc<Guard>,
        max: usize,
    ) -> Self {
        QuicLink {
            addr,
            name,
            config,
            guard,
            endpoint: Mutex::new(None),
            conns: Mutex::new(Vec::new()),
            opening: tokio::sync::Mutex::new(()),
            max,
        }
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, Vec<quinn::Connection>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A stream on the first open connection that grants one now (closed
    /// connections dropped on the way), and how many are open.
    fn free_stream(&self) -> (Option<Streams>, usize) {
        let mut conns = self.conns();
        conns.retain(|c| c.close_reason().is_none());
        for c in conns.iter() {
            // Polled once: a stream if the backend's credit allows one now
            // (dropping the pending future takes none).
            if let Some(Ok(streams)) = c.open_bi().now_or_never() {
                return (Some(streams), conns.len());
            }
        }
        (None, conns.len())
    }

    /// A stream for one query: on an open connection, or on a new one while
    /// fewer than `max` are open (waiting for the one another query is
    /// opening, once); else refused.
    async fn stream(&self) -> Result<Streams, UpstreamError> {
        let (found, open) = self.free_stream();
        if let Some(s) = found {
            return Ok(s);
        }
        if quic_next(open, self.max) == QuicNext::Full {
            return Err(UpstreamError::Full);
        }
        let _opening = self.opening.lock().await;
        // Another query may have opened one meanwhile.
        let (found, open) = self.free_stream();
        if let Some(s) = found {
            return Ok(s);
        }
        if quic_next(open, self.max) == QuicNext::Full {
            return Err(UpstreamError::Full);
        }
        let conn = self.connect().await?;
        self.conns().push(conn.clone());
        match conn.open_bi().now_or_never() {
            Some(Ok(streams)) => Ok(streams),
            Some(Err(e)) => Err(io(e)),
            None => Err(UpstreamError::Full),
        }
    }

    /// The client endpoint, made on first use (it needs the runtime).
    fn endpoint(&self) -> Result<quinn::Endpoint, UpstreamError> {
        let mut ep = self.endpoint.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ep) = ep.as_ref() {
            return Ok(ep.clone());
        }
        let any: SocketAddr = if self.addr.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let made = quinn::Endpoint::client(any)?;
        *ep = Some(made.clone());
        Ok(made)
    }

    /// A new connection.
    async fn connect(&self) -> Result<quinn::Connection, UpstreamError> {
        if !self.guard.may_try() {
            return Err(UpstreamError::Io(std::io::Error::other(
                "backing off after failed connections",
            )));
        }
        let ep = self.endpoint()?;
        let connecting = match ep.connect_with(self.config.clone(), self.addr, &self.name) {
            Ok(c) => c,
            Err(e) => {
                self.guard.failed(&e, FailReason::Connect);
                return Err(io(e));
            }
        };
        match connecting.await {
            Ok(c) => {
                self.guard.succeeded();
                Ok(c)
            }
            Err(e) => {
                let reason = match e {
                    quinn::ConnectionError::TimedOut => FailReason::Connect,
                    _ => FailReason::Handshake,
                };
                self.guard.failed(&e, reason);
                Err(io(e))
            }
        }
    }

    /// Asks `query` (ID set to 0) on a stream of its own; its answer if it
    /// answers `question`. Refused at once when the link is full.
    pub(super) async fn exchange(
        &self,
        query: &[u8],
        question: &[u8],
    ) -> Result<Vec<u8>, UpstreamError> {
        let len = u16::try_from(query.len()).map_err(|_| UpstreamError::Unusable)?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(query);
        if let Some(id) = framed.get_mut(2..4) {
            id.copy_from_slice(&[0, 0]);
        }
        let (mut send, mut recv) = self.stream().await?;
        send.write_all(&framed).await.map_err(io)?;
        send.finish().map_err(io)?;
        let data = recv.read_to_end(FRAME_MAX).await.map_err(io)?;
        let n = match data.get(..2) {
            Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
            _ => return Err(UpstreamError::Unusable),
        };
        let resp = data.get(2..2 + n).ok_or(UpstreamError::Unusable)?;
        let h = accept::header(resp).map_err(|_| UpstreamError::Unusable)?;
        if h.id != 0 || accept::answers(&h, resp, question).is_err() {
            return Err(UpstreamError::Unusable);
        }
        Ok(resp.to_vec())
    }
}
