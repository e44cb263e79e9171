//! One probe round of `dnslb anycast`: a real DNS query to the LS over UDP
//! and `GET /ready` on its metrics listener, side by side, each bounded by
//! the round's timeout, each judged a [`RoundVerdict`].
//!
//! The DNS question is by default `id.server. TXT` in class CH (RFC 4892),
//! which the LS answers itself on the path every query takes, without a
//! backend: a hung or dead backend does not withdraw the LS, a hung LS is.
//!
//! An identity question carries the LS's probe token (read from its live
//! control, `mod.rs`) in the EDNS option [`dns::PROBE_OPTION`], so the LS
//! answers it before its dynamic blocks and rules (`crate::ls::identity`):
//! a client's flood or a rule that drops names not served cannot withdraw
//! it. The LS acknowledges a token it took ([`DnsRound::token_taken`]); an
//! answer without it says the token is stale (the LS restarted).
//!
//! A DNS answer counts whatever its RCODE: the LS answered, and what its
//! backends say is its own health checks' business (withdrawing on SERVFAIL
//! would move an overloaded LS's load onto its peers, and on with a cascade).
//! An answer must match the query (ID, QR, question), else it is ignored and
//! the wait goes on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::DNSClass;
use hickory_proto::rr::rdata::opt::EdnsOption;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

use super::decision::RoundVerdict;
use crate::config::ProbeQuestion;
use crate::dns;
use crate::ls::identity::ProbeToken;

/// One DNS half of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsRound {
    /// Its verdict.
    pub verdict: RoundVerdict,
    /// Whether the answer acknowledged the probe token (the question was
    /// answered as the probe's, before the blocks and rules).
    pub token_taken: bool,
}

impl DnsRound {
    /// A round without an answer.
    fn without(verdict: RoundVerdict) -> Self {
        Self {
            verdict,
            token_taken: false,
        }
    }
}

/// The verdict of an I/O error: a refusal (nothing listens, no route) is
/// definite, anything else too (the round cannot be done).
fn io_verdict(_e: &std::io::Error) -> RoundVerdict {
    RoundVerdict::Down
}

/// Asks `q` of `addr` over UDP, waiting at most `wait`; an identity
/// question carries `token` when given.
pub async fn dns(
    addr: SocketAddr,
    q: &ProbeQuestion,
    token: Option<&ProbeToken>,
    wait: Duration,
) -> DnsRound {
    dns_until(addr, q, token, Instant::now() + wait).await
}

/// [`dns`], waiting until `deadline`.
pub(super) async fn dns_until(
    addr: SocketAddr,
    q: &ProbeQuestion,
    token: Option<&ProbeToken>,
    deadline: Instant,
) -> DnsRound {
    let id: u16 = rand::random();
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(question(q));
    if let Some(t) = token.filter(|_| q.is_identity()) {
        let mut edns = Edns::new();
        edns.options_mut().insert(EdnsOption::Unknown(
            dns::PROBE_OPTION,
            t.as_bytes().to_vec(),
        ));
        m.set_edns(edns);
    }
    let Ok(bytes) = m.to_vec() else {
        return DnsRound::without(RoundVerdict::Down);
    };
    let sock = match socket_to(addr).await {
        Ok(s) => s,
        Err(e) => return DnsRound::without(io_verdict(&e)),
    };
    if let Err(e) = sock.send(&bytes).await {
        return DnsRound::without(io_verdict(&e));
    }
    let mut buf = vec![0u8; 4096];
    loop {
        match timeout_at(deadline, sock.recv(&mut buf)).await {
            Err(_) => return DnsRound::without(RoundVerdict::Lost),
            // ECONNREFUSED: the ICMP port unreachable of a dead LS.
            Ok(Err(e)) => return DnsRound::without(io_verdict(&e)),
            Ok(Ok(n)) => {
                if let Some(token_taken) = answers(&buf[..n], id, q) {
                    return DnsRound {
                        verdict: RoundVerdict::Good,
                        token_taken,
                    };
                }
            }
        }
    }
}

/// A UDP socket connected to `addr`, sending from loopback (127.0.0.1 or
/// ::1) when `addr` is on this host (the LS's `allow` lets loopback in by
/// default), else from the address the kernel picks (it refuses a
/// loopback source towards a remote `addr`).
async fn socket_to(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let (lo, any): (IpAddr, IpAddr) = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::LOCALHOST.into(), Ipv4Addr::UNSPECIFIED.into()),
        SocketAddr::V6(_) => (Ipv6Addr::LOCALHOST.into(), Ipv6Addr::UNSPECIFIED.into()),
    };
    if let Ok(sock) = UdpSocket::bind((lo, 0)).await
        && sock.connect(addr).await.is_ok()
    {
        return Ok(sock);
    }
    let sock = UdpSocket::bind((any, 0)).await?;
    sock.connect(addr).await?;
    Ok(sock)
}

/// The question asked for `q`: class CH for an identity question
/// (`id.server.`/`hostname.bind.` TXT, which the LS answers itself, RFC
/// 4892), IN for any other.
fn question(q: &ProbeQuestion) -> Query {
    let mut query = Query::query(q.name.clone(), q.rtype);
    if q.is_identity() {
        query.set_query_class(DNSClass::CH);
    }
    query
}

/// Whether `raw` is an answer to the query `id` for `q` (`None`: not one),
/// and whether it acknowledges the probe token.
fn answers(raw: &[u8], id: u16, q: &ProbeQuestion) -> Option<bool> {
    let m = Message::from_vec(raw).ok()?;
    let matches = m.metadata.id == id
        && m.metadata.message_type == hickory_proto::op::MessageType::Response
        && m.queries.first().is_some_and(|mq| {
            let asked = question(q);
            mq.name() == &q.name
                && mq.query_type() == q.rtype
                && mq.query_class() == asked.query_class()
        });
    matches.then(|| dns::probe_option(raw).is_some())
}

/// `GET /ready` of the metrics listener at `addr`, waiting at most `wait`:
/// 200 is good, any other status a definite no (503: a stop began).
pub async fn ready(addr: SocketAddr, wait: Duration) -> RoundVerdict {
    let deadline = Instant::now() + wait;
    let round = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET /ready HTTP/1.0\r\nHost: dnslb\r\nConnection: close\r\n\r\n")
            .await?;
        // The status line is all that is read (and at most 64 bytes of it).
        let mut head = [0u8; 64];
        let mut got = 0;
        while got < 12 {
            let n = s.read(&mut head[got..]).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        std::io::Result::Ok(status_of(&head[..got]))
    };
    match timeout_at(deadline, round).await {
        Err(_) => RoundVerdict::Lost,
        Ok(Err(e)) => io_verdict(&e),
        Ok(Ok(Some(200))) => RoundVerdict::Good,
        Ok(Ok(_)) => RoundVerdict::Down,
    }
}

/// The status code of an HTTP/1.x status line's start.
fn status_of(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head.get(..12)?).ok()?;
    if !text.starts_with("HTTP/1.") {
        return None;
    }
    text.get(9..12)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_is_read() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_of(b"HTTP/1.0 503 Service"), Some(503));
        assert_eq!(status_of(b"HTTP/1.1 2"), None);
        assert_eq!(status_of(b"SSH-2.0-OpenSSH_9.2p1"), None);
    }

    #[test]
    fn only_a_matching_answer_counts() {
        let q = ProbeQuestion::root_soa();
        let mut m = Message::query();
        m.metadata.id = 7;
        m.add_query(Query::query(q.name.clone(), q.rtype));
        let query = m.to_vec().unwrap();
        assert_eq!(answers(&query, 7, &q), None, "a query is no answer");
        m.metadata.message_type = hickory_proto::op::MessageType::Response;
        m.metadata.response_code = hickory_proto::op::ResponseCode::ServFail;
        let answer = m.to_vec().unwrap();
        assert_eq!(answers(&answer, 7, &q), Some(false), "any rcode counts");
        assert_eq!(answers(&answer, 8, &q), None, "another id");
        assert_eq!(answers(&answer[..5], 7, &q), None, "cut short");
        let mut edns = Edns::new();
        edns.options_mut()
            .insert(EdnsOption::Unknown(dns::PROBE_OPTION, Vec::new()));
        m.set_edns(edns);
        let acked = m.to_vec().unwrap();
        assert_eq!(answers(&acked, 7, &q), Some(true), "the token taken");
    }

    #[tokio::test]
    async fn a_closed_port_is_down_and_a_silent_one_lost() {
        let wait = Duration::from_millis(100);
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let q = ProbeQuestion::root_soa();
        assert_eq!(dns(addr, &q, None, wait).await.verdict, RoundVerdict::Lost);
        drop(silent);
        assert_eq!(dns(addr, &q, None, wait).await.verdict, RoundVerdict::Down);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepted by the kernel, never answered: a hung LS.
        assert_eq!(ready(addr, wait).await, RoundVerdict::Lost);
        drop(listener);
        assert_eq!(ready(addr, wait).await, RoundVerdict::Down);
    }
}
