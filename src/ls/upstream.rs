//! One upstream exchange, with the forwarding safety of RFC 5452: every query
//! gets a fresh random ID and leaves from its own socket on a port the kernel
//! picks at random; a response counts only if it comes from the address the
//! query went to, carries the same ID and the same question. Anything else is
//! dropped, counted, and the wait goes on.
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

use crate::dns::{WireHeader, same_question};

/// Largest UDP response read from a backend. A datagram that fills it
/// entirely may have been cut short and is not trusted.
const UPSTREAM_UDP_BUFFER: usize = 4096;

/// Why an exchange gave no response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The deadline passed first.
    #[error("timed out")]
    Timeout,
    /// A socket error (connection refused, unreachable...).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The backend's response could not be used (oversized, bad TCP framing).
    #[error("unusable response")]
    Unusable,
}

/// Responses dropped because they did not match what was sent.
#[derive(Debug, Default)]
pub struct DropCounters {
    /// From an address other than the backend's.
    pub wrong_source: AtomicU64,
    /// With an ID other than the query's.
    pub wrong_id: AtomicU64,
    /// With another question, not a response, or too short to tell.
    pub wrong_question: AtomicU64,
}

impl DropCounters {
    /// All dropped responses.
    pub fn total(&self) -> u64 {
        self.wrong_source.load(Relaxed)
            + self.wrong_id.load(Relaxed)
            + self.wrong_question.load(Relaxed)
    }
}

/// Checks a response against the query it answers.
fn accept(resp: &[u8], id: u16, question: &[u8], drops: &DropCounters) -> bool {
    let Some(h) = WireHeader::read(resp) else {
        drops.wrong_question.fetch_add(1, Relaxed);
        return false;
    };
    if h.id != id {
        drops.wrong_id.fetch_add(1, Relaxed);
        return false;
    }
    if !h.is_response() || h.qdcount != 1 || !same_question(resp, question) {
        drops.wrong_question.fetch_add(1, Relaxed);
        return false;
    }
    true
}

/// Sends `query` (whose ID is `id`) to `addr` over UDP and waits until
/// `deadline` for a matching response.
///
/// # Errors
/// [`UpstreamError`]: timeout, socket error, or an oversized datagram.
pub async fn udp_exchange(
    addr: SocketAddr,
    query: &[u8],
    id: u16,
    question: &[u8],
    deadline: Instant,
    drops: &DropCounters,
) -> Result<Vec<u8>, UpstreamError> {
    let local: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).await?;
    sock.send_to(query, addr).await?;
    let mut buf = vec![0u8; UPSTREAM_UDP_BUFFER];
    loop {
        let (n, from) = timeout_at(deadline, sock.recv_from(&mut buf))
            .await
            .map_err(|_| UpstreamError::Timeout)??;
        if from != addr {
            drops.wrong_source.fetch_add(1, Relaxed);
            continue;
        }
        let Some(resp) = buf.get(..n) else { continue };
        if !accept(resp, id, question, drops) {
            continue;
        }
        if n == buf.len() {
            return Err(UpstreamError::Unusable);
        }
        buf.truncate(n);
        return Ok(buf);
    }
}

/// The same exchange over a new TCP connection (for truncated UDP answers).
///
/// # Errors
/// [`UpstreamError`]: timeout, connection error, or bad framing.
pub async fn tcp_exchange(
    addr: SocketAddr,
    query: &[u8],
    id: u16,
    question: &[u8],
    deadline: Instant,
    drops: &DropCounters,
) -> Result<Vec<u8>, UpstreamError> {
    let work = async {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let len = u16::try_from(query.len()).map_err(|_| UpstreamError::Unusable)?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(query);
        s.write_all(&framed).await?;
        loop {
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await?;
            let mut resp = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut resp).await?;
            if accept(&resp, id, question, drops) {
                return Ok(resp);
            }
        }
    };
    timeout_at(deadline, work)
        .await
        .map_err(|_| UpstreamError::Timeout)?
}
