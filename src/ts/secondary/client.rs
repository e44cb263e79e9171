//! The transfer client: one AXFR or IXFR (RFC 5936, RFC 1995) from a
//! primary over TCP, TSIG on every message checked when the zone has a key
//! (RFC 8945 §5.3.1: the first and the last signed, at most 99 unsigned in
//! a row), bounded in messages, bytes and time. What it read is handed back
//! whole or not at all: a transfer cut, refused, too big or too slow is an
//! error and changes nothing. At most [`MAX_TRANSFERS_IN`] transfers run at
//! once from one primary ([`TransferSlots`]): the rest wait their turn.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::records::{Answer, Rec, TransferReader, TransferRefused, soa_serial};
use crate::clock::unix_now;
use crate::dns::tsig::{Key, Signer, StreamVerifier, TsigError, find};

/// The most transfers a TS runs at once from one primary: a catalog of
/// 50,000 members is transferred 8 at a time (one socket each), not all at
/// once (sockets past the file limit, a SYN flood at the primary); 8 is
/// also what a dnslb primary serves at once (past that it answers
/// SERVFAIL). NSD's `xfrd-tcp-max` (128) and Knot's background workers
/// bound theirs the same way.
pub const MAX_TRANSFERS_IN: usize = 8;

/// The transfer slots of each primary ([`MAX_TRANSFERS_IN`] each).
#[derive(Debug, Default)]
pub struct TransferSlots {
    by_primary: std::sync::Mutex<std::collections::HashMap<SocketAddr, Arc<Semaphore>>>,
}

impl TransferSlots {
    /// A slot for a transfer from `primary`, once one is free; held until
    /// dropped.
    pub async fn take(&self, primary: SocketAddr) -> Option<OwnedSemaphorePermit> {
        let slots = self
            .by_primary
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(primary)
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_TRANSFERS_IN)))
            .clone();
        // Never closed: `None` cannot happen.
        slots.acquire_owned().await.ok()
    }
}

/// How much one transfer may bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of messages, all told.
    pub max_bytes: usize,
    /// Messages.
    pub max_messages: usize,
    /// From connecting to the last message.
    pub timeout: Duration,
    /// For each step (connecting, sending, each read): a primary that
    /// stops sending (hung, or stopped) fails the transfer after this, and
    /// the zone's retry and expiry go on.
    pub io_timeout: Duration,
}

impl Default for Limits {
    /// 128 MiB, a million messages, ten minutes, ten seconds a step: far
    /// above a zone of a million names (about 40 MB by AXFR), and a bound
    /// on what a hostile primary can make the TS hold (the records read
    /// take several times their wire size in memory until the transfer
    /// ends).
    fn default() -> Self {
        Limits {
            max_bytes: 128 << 20,
            max_messages: 1_000_000,
            timeout: Duration::from_secs(600),
            io_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a transfer brought nothing.
#[derive(Debug, thiserror::Error)]
pub enum XfrError {
    /// The connection failed, or the request could not be sent.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The answer was cut (the primary closed or reset the connection, or
    /// it failed) after the request was sent.
    #[error("the answer was cut: {0}")]
    Cut(std::io::Error),
    /// The transfer took longer than its limit.
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    /// More messages or bytes than the limits.
    #[error("the transfer passed its limit of {0}")]
    TooBig(&'static str),
    /// A message's TSIG did not verify, or the answer did not end signed.
    #[error("TSIG: {0}")]
    Tsig(TsigError),
    /// The primary answered with an error.
    #[error("the primary answered {0}")]
    Rcode(ResponseCode),
    /// A message that is no answer to our request.
    #[error("not an answer to the request: {0}")]
    Stray(&'static str),
    /// The zone transferred cannot be served (records it cannot hold).
    #[error("the zone cannot be served: {0}")]
    Unusable(String),
    /// The records do not make a transfer, or do not apply.
    #[error(transparent)]
    TransferRefused(#[from] TransferRefused),
}

impl XfrError {
    /// Whether the primary answered an IXFR with something that is no
    /// usable IXFR (cut short, malformed, not applying, or "not
    /// implemented"), so that an AXFR may well be fine, as Knot and BIND
    /// take it; not a primary out of reach, silent, refusing, or failing
    /// its TSIG, which an AXFR would meet as well.
    pub fn axfr_may_do(&self) -> bool {
        match self {
            XfrError::Cut(_) | XfrError::Stray(_) | XfrError::TransferRefused(_) => true,
            XfrError::Rcode(rcode) => {
                matches!(rcode, ResponseCode::NotImp | ResponseCode::FormErr)
            }
            XfrError::Io(_)
            | XfrError::Timeout(_)
            | XfrError::TooBig(_)
            | XfrError::Tsig(_)
            | XfrError::Unusable(_) => false,
        }
    }
}

/// What a transfer brought, and what it cost.
#[derive(Debug)]
pub struct Fetched {
    /// The answer.
    pub answer: Answer,
    /// Its messages.
    pub messages: usize,
    /// Its bytes.
    pub bytes: usize,
}

/// The request: an IXFR from `ours` (our SOA, sent in the authority
/// section), or an AXFR.
fn request(zone: &Name, ours: Option<&Rec>, id: u16) -> Result<Vec<u8>, XfrError> {
    let qtype = if ours.is_some() {
        RecordType::IXFR
    } else {
        RecordType::AXFR
    };
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(zone.clone(), qtype));
    if let Some(soa) = ours {
        m.add_authority(soa.clone());
    }
    m.to_vec()
        .map_err(|_| XfrError::Stray("the request cannot be encoded"))
}

/// Transfers `zone` from `primary`: by IXFR from the serial of `ours`
/// when given, else by AXFR; signed with `key` when given.
///
/// # Errors
/// See [`XfrError`]: nothing of a failed transfer is kept.
pub async fn fetch(
    primary: SocketAddr,
    zone: &Name,
    ours: Option<&Rec>,
    key: Option<Arc<Key>>,
    limits: Limits,
) -> Result<Fetched, XfrError> {
    let transfer = async {
        let id: u16 = rand::random();
        let mut req = request(zone, ours, id)?;
        let mut verifier = key.map(|k| {
            let mut signer = Signer::request(k.clone());
            signer.sign(&mut req);
            StreamVerifier::new(k, signer.last_mac())
        });
        let step = |d| XfrError::Timeout(d);
        let io = limits.io_timeout;
        let mut stream = tokio::time::timeout(io, TcpStream::connect(primary))
            .await
            .map_err(|_| step(io))??;
        let len = u16::try_from(req.len()).map_err(|_| XfrError::Stray("request too long"))?;
        let mut out = Vec::with_capacity(req.len() + 2);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&req);
        tokio::time::timeout(io, stream.write_all(&out))
            .await
            .map_err(|_| step(io))??;
        let mut reader = TransferReader::new(ours.and_then(soa_serial));
        let (mut messages, mut bytes) = (0usize, 0usize);
        let mut buf = Vec::new();
        while !reader.done() {
            let len = tokio::time::timeout(io, stream.read_u16())
                .await
                .map_err(|_| step(io))?
                .map_err(XfrError::Cut)?;
            let len = usize::from(len);
            messages += 1;
            bytes += len + 2;
            if messages > limits.max_messages {
                return Err(XfrError::TooBig("messages"));
            }
            if bytes > limits.max_bytes {
                return Err(XfrError::TooBig("bytes"));
            }
            buf.resize(len, 0);
            tokio::time::timeout(io, stream.read_exact(&mut buf))
                .await
                .map_err(|_| step(io))?
                .map_err(XfrError::Cut)?;
            let plain = match &mut verifier {
                Some(v) => {
                    v.check(&buf, unix_now()).map_err(XfrError::Tsig)?;
                    without_tsig(&buf)
                }
                None => buf.clone(),
            };
            let msg =
                Message::from_vec(&plain).map_err(|_| XfrError::Stray("unreadable message"))?;
            if msg.metadata.id != id || msg.metadata.message_type != MessageType::Response {
                return Err(XfrError::Stray("another ID, or no response"));
            }
            if msg.metadata.response_code != ResponseCode::NoError {
                return Err(XfrError::Rcode(msg.metadata.response_code));
            }
            if let Some(q) = msg.queries.first()
                && !q.name().eq_ignore_root(zone)
            {
                return Err(XfrError::Stray("another zone's question"));
            }
            for rec in msg.answers {
                reader.push(rec)?;
            }
            reader.message_ended();
        }
        if verifier.as_ref().is_some_and(|v| !v.ends_signed()) {
            return Err(XfrError::Tsig(TsigError::BadSig));
        }
        Ok(Fetched {
            answer: reader.finish()?,
            messages,
            bytes,
        })
    };
    tokio::time::timeout(limits.timeout, transfer)
        .await
        .map_err(|_| XfrError::Timeout(limits.timeout))?
}

/// `msg` without its TSIG record (ARCOUNT one less), or as it is.
fn without_tsig(msg: &[u8]) -> Vec<u8> {
    let Ok(Some(r)) = find(msg) else {
        return msg.to_vec();
    };
    let mut out = msg.get(..r.start).unwrap_or(msg).to_vec();
    if let Some(ar) = out.get_mut(10..12) {
        let n = u16::from_be_bytes([ar[0], ar[1]]).saturating_sub(1);
        ar.copy_from_slice(&n.to_be_bytes());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A primary that takes the connection and then says nothing (hung, or
    /// SIGSTOPped) fails the transfer after `io_timeout`, not after the
    /// whole transfer's ten minutes: the zone's retry and expiry go on.
    #[tokio::test(start_paused = true)]
    async fn a_silent_primary_fails_the_transfer_after_one_step_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let primary = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            // Held open, never answered, until the test ends.
            std::future::pending::<()>().await;
            drop(conn);
        });
        let limits = Limits {
            io_timeout: Duration::from_secs(10),
            ..Limits::default()
        };
        let start = tokio::time::Instant::now();
        let zone = Name::from_ascii("z.test.").unwrap();
        let got = fetch(primary, &zone, None, None, limits).await;
        assert!(
            matches!(got, Err(XfrError::Timeout(d)) if d == limits.io_timeout),
            "{got:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{:?}",
            start.elapsed()
        );
        held.abort();
    }
}
