//! Upstream errors and drop counters, and the TCP exchange used when a UDP
//! answer comes back truncated (UDP goes through [`super::pool`]). A TCP
//! response counts only if it carries the query's ID and question.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::dns::{WireHeader, same_question};

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
    /// Not dropped as suspect: answers that came after their query was
    /// settled (a hedge's loser) or past its deadline.
    pub late: AtomicU64,
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
