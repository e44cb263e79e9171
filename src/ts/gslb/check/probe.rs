//! One probe of one endpoint (the I/O): a TCP connect, an HTTP/1.1 GET of
//! which only the status line is read, or a DNS query over UDP; each bounded
//! by the target's timeout as a whole.
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::board::ProbeResult;
use super::spec::{Probe, Target};

/// The most bytes read looking for an HTTP status line.
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
/// from its status line alone; `None` when the line is not one.
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
        if let Some(status) = buf.get(..len).and_then(status_of) {
            return Ok(Some(status));
        }
    }
    Ok(None)
}

/// Whether `text` can go into a request line or header as it is: no
/// spaces or control characters (nothing that could end the line early).
fn header_safe(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b > b' ' && b != 0x7f)
}

/// The status code of an HTTP/1.x response starting `head`, once its status
/// line is complete (`HTTP/1.1 200 OK\r\n`).
fn status_of(head: &[u8]) -> Option<u16> {
    let end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(head.get(..end)?).ok()?;
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// Whether a UDP query for `qname`/`qtype` to `to` gets a response with the
/// query's ID and question whose RCODE is NOERROR or NXDOMAIN. Datagrams
/// that are not that response are read past (the timeout bounds the wait).
async fn dns_answers(to: SocketAddr, qname: &str, qtype: u16) -> io::Result<bool> {
    let id: u16 = rand::random();
    let name =
        Name::from_ascii(qname).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let question = Query::query(name, RecordType::from(qtype));
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.add_query(question.clone());
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
        let Some(Ok(resp)) = buf.get(..n).map(Message::from_vec) else {
            continue;
        };
        let echoed = matches!(resp.queries.as_slice(), [q] if q.name() == question.name()
            && q.query_type() == question.query_type());
        if resp.metadata.id == id && resp.metadata.message_type == MessageType::Response && echoed {
            return Ok(matches!(
                resp.metadata.response_code,
                ResponseCode::NoError | ResponseCode::NXDomain
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{header_safe, status_of};

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
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\nServer: x\r\n"), Some(200));
        assert_eq!(
            status_of(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_of(b"HTTP/1.1 204\r\n"), Some(204));
    }

    #[test]
    fn anything_else_gives_none() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK"), None, "line not complete");
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b"HTTP/2 200\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 20x OK\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 2000 OK\r\n"), None);
    }
}
