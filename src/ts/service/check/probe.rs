//! One probe of one endpoint (the I/O): a TCP connect, an HTTP/1.1 GET of
//! which only the status code is read, or a DNS query over UDP; each bounded
//! by the target's timeout as a whole.
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::board::ProbeResult;
use super::spec::{Probe, Target};
use crate::dns::HEADER_LEN;

/// The most bytes read looking for an HTTP status code (13 make one; an
/// answer that has not shown one by then, a byte at a time, is not HTTP).
const STATUS_LINE_MAX: usize = 256;

/// The largest DNS response read (the header and rcode are all we need).
const DNS_RESPONSE_MAX: usize = 1232;

/// Probes `target` once: `Ok` when it answered as its check expects, `Fail`
/// when it refused or answered otherwise, `Timeout` when `timeout_ms`
/// passed first. [`Probe::None`] is always `Ok`.
pub(super) async fn probe(target: &Target) -> ProbeResult {
    let limit = Duration::from_millis(target.check.timeout_ms.max(1));
    let addr = target.addr;
    let attempt = async {
        match &target.check.probe {
            Probe::None => Ok(true),
            Probe::Tcp { port } => TcpStream::connect((addr, *port)).await.map(|_| true),
            Probe::Http {
                port,
                path,
                expect,
                host,
            } => http_status(SocketAddr::new(addr, *port), path, host.as_deref())
                .await
                .map(|status| status == Some(*expect)),
            Probe::Dns { port, qname, qtype } => {
                dns_answers(SocketAddr::new(addr, *port), qname, *qtype).await
            }
        }
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(Ok(true)) => ProbeResult::Ok,
        Ok(Ok(false) | Err(_)) => ProbeResult::Fail,
        Err(_) => ProbeResult::Timeout,
    }
}

/// The status code of `GET path` at `to` (HTTP/1.1, `Connection: close`),
/// read as soon as it is whole ([`status_of`]); `None` when the answer is
/// not an HTTP/1.x status line.
async fn http_status(to: SocketAddr, path: &str, host: Option<&str>) -> io::Result<Option<u16>> {
    let host = host.map_or_else(|| to.to_string(), str::to_owned);
    let path = if path.starts_with('/') { path } else { "/" };
    if !header_safe(&host) || !header_safe(path) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "HTTP check's path or host holds a space or control character",
        ));
    }
    let mut conn = TcpStream::connect(to).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: dnslb-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await?;
    let mut buf = [0u8; STATUS_LINE_MAX];
    let mut len = 0;
    while len < buf.len() {
        let Some(rest) = buf.get_mut(len..) else {
            break;
        };
        let n = conn.read(rest).await?;
        if n == 0 {
            break;
        }
        len += n;
        match buf.get(..len).map_or(Head::NotHttp, status_of) {
            Head::Code(status) => return Ok(Some(status)),
            Head::NotHttp => return Ok(None),
            Head::More => {}
        }
    }
    Ok(None)
}

/// Whether `text` can go into a request line or header as it is: no
/// spaces or control characters (nothing that could end the line early).
fn header_safe(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b > b' ' && b != 0x7f)
}

/// What the first bytes of an answer say so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// The status code, whole.
    Code(u16),
    /// Not whole yet: read on.
    More,
    /// Not an HTTP/1.x status line, however it goes on.
    NotHttp,
}

/// The status code of an HTTP/1.x answer starting `head`, as soon as it is
/// whole: `HTTP/1.x`, a space, three digits, then a space or the line's end
/// (CRLF, or a bare LF, which RFC 9112 §2.2 lets a recipient take as one).
/// The reason phrase is not waited for: a status line of any length, or one
/// that trickles in, is judged by its first 13 bytes (as gdnsd's
/// `http_status` reads it); bytes that cannot begin one (a banner) end the
/// reading at once.
fn status_of(head: &[u8]) -> Head {
    const PREFIX: &[u8] = b"HTTP/1.";
    let n = head.len().min(PREFIX.len());
    if head.get(..n) != PREFIX.get(..n) {
        return Head::NotHttp;
    }
    // "HTTP/1." minor SP d d d end
    let Some(tail) = head.get(PREFIX.len()..) else {
        return Head::More;
    };
    let shape: [fn(u8) -> bool; 6] = [
        |b| b.is_ascii_digit(),
        |b| b == b' ',
        |b| b.is_ascii_digit(),
        |b| b.is_ascii_digit(),
        |b| b.is_ascii_digit(),
        |b| matches!(b, b' ' | b'\r' | b'\n'),
    ];
    for (i, ok) in shape.iter().enumerate() {
        match tail.get(i) {
            None => return Head::More,
            Some(&b) if !ok(b) => return Head::NotHttp,
            Some(_) => {}
        }
    }
    let code = tail
        .get(2..5)
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse().ok());
    code.map_or(Head::NotHttp, Head::Code)
}

/// Whether a UDP query for `qname`/`qtype` to `to` gets a response with the
/// query's ID and question whose RCODE is NOERROR or NXDOMAIN. Datagrams
/// that are not that response are read past (the timeout bounds the wait).
async fn dns_answers(to: SocketAddr, qname: &str, qtype: u16) -> io::Result<bool> {
    let id: u16 = rand::random();
    let name =
        Name::from_ascii(qname).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(name, RecordType::from(qtype)));
    let wire = msg
        .to_vec()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let local: IpAddr = match to {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = UdpSocket::bind((local, 0)).await?;
    sock.connect(to).await?;
    sock.send(&wire).await?;
    let mut buf = [0u8; DNS_RESPONSE_MAX];
    loop {
        let n = sock.recv(&mut buf).await?;
        if let Some(up) = buf.get(..n).and_then(|resp| judge_dns(resp, &wire)) {
            return Ok(up);
        }
    }
}

/// The verdict on `resp` as the answer to `query` (no OPT: its question
/// ends it): `None` when it is not that answer (another ID, not a response,
/// another question), else whether its RCODE is NOERROR or NXDOMAIN. Only
/// the header and the question are read: an answer cut short by the
/// receive buffer (a server that sends more than [`DNS_RESPONSE_MAX`]
/// bytes to a query without EDNS) or holding records a full decoder would
/// refuse is judged by its RCODE all the same, not waited out as silence.
fn judge_dns(resp: &[u8], query: &[u8]) -> Option<bool> {
    let question = query.get(HEADER_LEN..)?;
    let head = resp.get(..HEADER_LEN)?;
    let same_id = head.get(..2) == query.get(..2);
    // QR set, OPCODE 0 (QUERY); QDCOUNT 1.
    let response = head[2] & 0xF8 == 0x80;
    let one_question = head.get(4..6) == Some(&[0, 1][..]);
    let echoed = resp
        .get(HEADER_LEN..HEADER_LEN + question.len())
        .is_some_and(|q| q.eq_ignore_ascii_case(question));
    if !(same_id && response && one_question && echoed) {
        return None;
    }
    Some(matches!(head[3] & 0x0F, 0 | 3))
}

#[cfg(test)]
mod tests {
    use super::{Head, header_safe, judge_dns, status_of};

    #[test]
    fn paths_and_hosts_cannot_end_the_request_line() {
        assert!(header_safe("/health?x=1"));
        assert!(header_safe("www.example.com:8080"));
        assert!(!header_safe("/a b"));
        assert!(!header_safe("/a\r\nX-Evil: 1"));
        assert!(!header_safe(""));
    }

    #[test]
    fn the_status_line_gives_the_code() {
        assert_eq!(
            status_of(b"HTTP/1.1 200 OK\r\nServer: x\r\n"),
            Head::Code(200)
        );
        assert_eq!(
            status_of(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Head::Code(503)
        );
        assert_eq!(status_of(b"HTTP/1.1 204\r\n"), Head::Code(204));
        // A bare LF ends a line too (RFC 9112 §2.2; curl and gdnsd take it).
        assert_eq!(status_of(b"HTTP/1.1 200 OK\nServer: x\n"), Head::Code(200));
        assert_eq!(status_of(b"HTTP/1.1 301\n"), Head::Code(301));
        // The code is whole before the reason phrase ends: a long or slow
        // reason phrase is not waited for.
        assert_eq!(status_of(b"HTTP/1.1 200 "), Head::Code(200));
        assert_eq!(
            status_of(b"HTTP/1.1 200 AAAAAAAAAAAAAAAAAAAA"),
            Head::Code(200)
        );
    }

    #[test]
    fn a_partial_line_asks_for_more() {
        for head in [
            &b""[..],
            b"H",
            b"HTTP/1.",
            b"HTTP/1.1 ",
            b"HTTP/1.1 20",
            b"HTTP/1.1 200",
        ] {
            assert_eq!(status_of(head), Head::More, "{head:?}");
        }
    }

    #[test]
    fn anything_else_is_not_http() {
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), Head::NotHttp);
        assert_eq!(status_of(b"S"), Head::NotHttp, "told at the first byte");
        assert_eq!(status_of(b"HTTP/2 200\r\n"), Head::NotHttp);
        assert_eq!(status_of(b"HTTP/1.1 20x OK\r\n"), Head::NotHttp);
        assert_eq!(status_of(b"HTTP/1.1 2000 OK\r\n"), Head::NotHttp);
        assert_eq!(status_of(b"HTTP/1.1  200 OK\r\n"), Head::NotHttp);
    }

    /// The query `judge_dns` is given: ID 0x1234, `example.org. SOA`.
    fn soa_query() -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x07example\x03org\x00\x00\x06\x00\x01");
        q
    }

    /// A response to `soa_query` with `flags3` (the RCODE's byte) and
    /// `extra` bytes after the question (answer records, or a part of one).
    fn response(id: [u8; 2], flags3: u8, extra: &[u8]) -> Vec<u8> {
        let q = soa_query();
        let mut r = vec![id[0], id[1], 0x84, flags3, 0, 1, 0, 1, 0, 0, 0, 0];
        r.extend_from_slice(&q[12..]);
        r.extend_from_slice(extra);
        r
    }

    #[test]
    fn a_dns_answer_is_judged_by_id_question_and_rcode() {
        let q = soa_query();
        let id = [0x12, 0x34];
        for (id, rcode, want, what) in [
            (id, 0, Some(true), "NOERROR"),
            (id, 3, Some(true), "NXDOMAIN"),
            (id, 2, Some(false), "SERVFAIL"),
            (id, 5, Some(false), "REFUSED"),
            ([0x12, 0x35], 0, None, "another ID"),
        ] {
            assert_eq!(judge_dns(&response(id, rcode, &[]), &q), want, "{what}");
        }
        let mut query_back = response([0x12, 0x34], 0, &[]);
        query_back[2] = 0x04;
        assert_eq!(judge_dns(&query_back, &q), None, "not a response");
        let mut other = response([0x12, 0x34], 0, &[]);
        other[20] = b'X';
        assert_eq!(judge_dns(&other, &q), None, "another question");
        let mut upper = response([0x12, 0x34], 0, &[]);
        upper[13] = b'E';
        assert_eq!(judge_dns(&upper, &q), Some(true), "the case may differ");
        assert_eq!(judge_dns(&q[..10], &q), None, "short");
    }

    /// An answer larger than the receive buffer arrives cut short; it is
    /// judged by its rcode, not refused by the full decoder and waited out
    /// as silence (a timeout: the endpoint down while answering).
    #[test]
    fn an_answer_cut_short_by_the_buffer_is_judged_by_its_rcode() {
        let q = soa_query();
        // An answer record begun and not finished.
        let cut = response(
            [0x12, 0x34],
            0,
            &[0xC0, 0x0C, 0, 16, 0, 1, 0, 0, 0, 30, 0x0F],
        );
        assert_eq!(judge_dns(&cut, &q), Some(true));
    }
}
