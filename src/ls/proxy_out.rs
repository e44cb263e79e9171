//! The PROXY protocol v2 header the LS sends a backend with `proxy = true`
//! in `[[ls.backend]]`: the client's address and port and the LS's address
//! it reached ([`crate::ls::state::Job::client`]; past a `proxy_from`
//! sender's header, the client that header names).
//!
//! Over UDP the header goes before each datagram's DNS message, written in
//! place in the datagram's buffer ([`prefix`]: no allocation once the
//! buffer has grown); every try, hedge and re-ask of one query carries the
//! same one. Over TCP it opens the connection, so a connection carries one
//! client's queries only: [`exchange_tcp`] asks on a connection opened
//! with that client's header, kept after the answer for the same client's
//! next query ([`super::proxy_conns`]: one client connection, one backend
//! connection, as dnsdist), never another client's; at most [`MAX_OPEN`]
//! such connections are open at once, past which the oldest waiting one is
//! closed, or else the try fails at once (as a refused connection: the
//! next backend is asked).
//! A health check sends a LOCAL header ([`Built::local`]). The answer comes
//! back as from any backend: no header on it.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};

use crate::dns::proxy_v2::Built;
use crate::dns::{HEADER_LEN, Transport, WireHeader};
use crate::ls::state::Job;
use crate::ls::upstream::UpstreamError;

use super::proxy_conns::{self, Held};

/// The most TCP connections to `proxy` backends open at once, all backends
/// together: each TCP query to one has a connection of its own, and a
/// flood of TCP clients' ANY queries must not open one each without end.
pub const MAX_OPEN: usize = 1024;

/// The places under [`MAX_OPEN`].
static OPEN: Semaphore = Semaphore::const_new(MAX_OPEN);

/// The header a backend with `proxy` is sent before `job`'s query: PROXY,
/// for the client's transport (a TCP, DoT or DoH client's as a stream).
#[must_use]
pub fn header(job: &Job) -> Built {
    let (client, reached) = job.client;
    let reached = reached.unwrap_or_else(|| unspecified(client));
    Built::proxy(client, reached, job.transport == Transport::Tcp)
}

/// The address "unknown" of `client`'s family, port 0.
fn unspecified(client: SocketAddr) -> SocketAddr {
    let ip = match client.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

/// Puts `job`'s header before the DNS message in `datagram` (its ID and
/// loop mark already written), moving the message up in place.
pub fn prefix(datagram: &mut Vec<u8>, job: &Job) {
    prepend(datagram, header(job).as_bytes());
}

/// `head` before `buf`'s bytes, in place: no allocation when `buf` has the
/// room.
pub fn prepend(buf: &mut Vec<u8>, head: &[u8]) {
    let n = buf.len();
    buf.extend_from_slice(head);
    buf.copy_within(..n, head.len());
    if let Some(front) = buf.get_mut(..head.len()) {
        front.copy_from_slice(head);
    }
}

/// Asks `addr` for `query` over a TCP connection that opened with `head`
/// (one its client's earlier query left, else a new one), and takes its
/// one answer by `deadline`: the first message with `query`'s ID and
/// `question`. The connection is then kept for the client's next query.
///
/// # Errors
/// The connection's error, the deadline, or an answer that is not the
/// query's (bad framing, another ID or question).
pub async fn exchange_tcp(
    addr: SocketAddr,
    head: &[u8],
    query: &[u8],
    question: &[u8],
    deadline: Instant,
) -> Result<Vec<u8>, UpstreamError> {
    let len = u16::try_from(query.len()).map_err(|_| UpstreamError::Unusable)?;
    let mut framed = Vec::with_capacity(head.len() + 2 + query.len());
    framed.extend_from_slice(head);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    let ask = async {
        // A kept connection first: one the backend closed meanwhile fails
        // before any answer, and the query is asked again on a new one.
        if let Some(mut held) = proxy_conns::take(addr, head)
            && let Ok(resp) = ask_on(&mut held.conn, &framed[head.len()..]).await
        {
            return Ok((resp, held));
        }
        let place = match OPEN.try_acquire() {
            Ok(p) => p,
            Err(_) if proxy_conns::close_one() => {
                OPEN.try_acquire().map_err(|_| UpstreamError::Unusable)?
            }
            Err(_) => return Err(UpstreamError::Unusable),
        };
        let conn = TcpStream::connect(addr).await?;
        conn.set_nodelay(true)?;
        let mut held = Held { conn, place };
        let resp = ask_on(&mut held.conn, &framed).await?;
        Ok::<_, UpstreamError>((resp, held))
    };
    let (resp, held) = timeout_at(deadline, ask)
        .await
        .map_err(|_| UpstreamError::Timeout)??;
    if answers(query, question, &resp) {
        proxy_conns::put(addr, head, held);
        Ok(resp)
    } else {
        Err(UpstreamError::Unusable)
    }
}

/// Writes `out` on `conn` and reads one length-prefixed message back.
async fn ask_on(conn: &mut TcpStream, out: &[u8]) -> Result<Vec<u8>, UpstreamError> {
    conn.write_all(out).await?;
    let mut size = [0u8; 2];
    conn.read_exact(&mut size).await?;
    let mut resp = vec![0u8; usize::from(u16::from_be_bytes(size))];
    conn.read_exact(&mut resp).await?;
    Ok(resp)
}

/// Whether `resp` is a response to `query` (its ID) with its question.
fn answers(query: &[u8], question: &[u8], resp: &[u8]) -> bool {
    let id = |m: &[u8]| WireHeader::read(m).map(|h| h.id);
    let end = HEADER_LEN + question.len();
    id(query).is_some()
        && id(query) == id(resp)
        && WireHeader::read(resp).is_some_and(|h| h.is_response())
        && resp
            .get(HEADER_LEN..end)
            .is_some_and(|q| q.eq_ignore_ascii_case(question))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::proxy_v2::{self, ProxyCommand};

    #[test]
    fn prepend_moves_the_message_up_and_puts_the_header_first() {
        let mut buf = b"dns-message".to_vec();
        buf.reserve(64);
        let cap = buf.capacity();
        let client = "192.0.2.7:4000".parse().unwrap();
        let head = Built::proxy(client, "127.0.0.1:53".parse().unwrap(), false);
        prepend(&mut buf, head.as_bytes());
        assert_eq!(buf.capacity(), cap, "no allocation with room");
        let (h, rest) = proxy_v2::parse_datagram(&buf).unwrap();
        assert_eq!(h.command, ProxyCommand::Proxy);
        assert_eq!(h.client_or("10.0.0.1:1".parse().unwrap()), client);
        assert_eq!(rest, b"dns-message");
    }

    #[tokio::test]
    async fn past_the_open_connections_bound_a_try_fails_without_connecting() {
        let all = OPEN.try_acquire_many(MAX_OPEN as u32).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        // Port 9 on loopback refuses: a connection tried would be an I/O error.
        let addr = "127.0.0.1:9".parse().unwrap();
        let got = exchange_tcp(addr, b"", b"query-bytes!", b"", deadline).await;
        assert!(matches!(got, Err(UpstreamError::Unusable)), "{got:?}");
        drop(all);
        let got = exchange_tcp(addr, b"", b"query-bytes!", b"", deadline).await;
        assert!(matches!(got, Err(UpstreamError::Io(_))), "{got:?}");
    }

    #[test]
    fn an_unknown_reached_address_is_written_as_the_clients_family_unspecified() {
        assert_eq!(
            unspecified("192.0.2.1:5".parse().unwrap()),
            "0.0.0.0:0".parse().unwrap()
        );
        assert_eq!(
            unspecified("[2001:db8::1]:5".parse().unwrap()),
            "[::]:0".parse().unwrap()
        );
    }
}
