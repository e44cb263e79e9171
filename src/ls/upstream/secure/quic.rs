//! DNS over QUIC to a backend (RFC 9250, ALPN `doq`): one connection,
//! reused while it lives and opened again (one handshake at a time, under
//! the redial back-off) when it closed; each query on a stream of its own
//! with ID 0, its answer checked against its question.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use super::guard::Guard;
use super::policy::FailReason;
use crate::ls::upstream::accept;
use crate::ls::upstream::error::UpstreamError;

/// The largest DNS message and its length prefix.
const FRAME_MAX: usize = 2 + 65_535;

/// The QUIC connection to one backend.
pub(super) struct QuicLink {
    pub(super) addr: SocketAddr,
    /// The name the certificate must carry, as quinn takes it.
    pub(super) name: String,
    pub(super) config: quinn::ClientConfig,
    pub(super) guard: Arc<Guard>,
    endpoint: Mutex<Option<quinn::Endpoint>>,
    conn: tokio::sync::Mutex<Option<quinn::Connection>>,
}

fn io(e: impl std::error::Error + Send + Sync + 'static) -> UpstreamError {
    UpstreamError::Io(std::io::Error::other(e))
}

impl QuicLink {
    pub(super) fn new(
        addr: SocketAddr,
        name: String,
        config: quinn::ClientConfig,
        guard: Arc<Guard>,
    ) -> Self {
        QuicLink {
            addr,
            name,
            config,
            guard,
            endpoint: Mutex::new(None),
            conn: tokio::sync::Mutex::new(None),
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

    /// The live connection, or a new one.
    async fn connection(&self) -> Result<quinn::Connection, UpstreamError> {
        let mut held = self.conn.lock().await;
        if let Some(c) = held.as_ref()
            && c.close_reason().is_none()
        {
            return Ok(c.clone());
        }
        *held = None;
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
                *held = Some(c.clone());
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
    /// answers `question`. A connection found closed when the stream is
    /// opened is replaced once.
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
        let mut tries = 0;
        let (mut send, mut recv) = loop {
            tries += 1;
            let conn = self.connection().await?;
            match conn.open_bi().await {
                Ok(streams) => break streams,
                Err(_) if tries < 2 => {}
                Err(e) => return Err(io(e)),
            }
        };
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
