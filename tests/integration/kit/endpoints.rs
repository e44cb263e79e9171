//! Service endpoints for the health-check tests: a TCP listener,
//! a tiny HTTP/1.1 server answering a status of the test's choosing, one
//! that accepts and never answers, and a UDP DNS responder answering an
//! RCODE of the test's choosing; each on an address the test picks
//! (127.0.0.x), counting what reaches it, killed (its socket closed:
//! connections refused) and brought back on the same address. And hostile
//! ones (`service_hostile`): a TCP server that answers a request with bytes of
//! the test's choosing (a banner, a bare-LF or endless status line), one
//! that accepts and resets, DNS responders that answer with another ID or
//! with more bytes than a checker reads.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use crate::kit::answer_with_ttl;

/// What an [`Endpoint`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Accepts connections and closes them.
    Tcp,
    /// Answers every HTTP request with the status in `answer`.
    Http,
    /// Accepts connections and holds them without a byte.
    Stalled,
    /// Answers DNS queries over UDP with the RCODE in `answer`.
    Dns,
    /// Reads a request's head (or waits at most a second for one), sends
    /// these bytes, then holds the connection (`true`) or closes it.
    Script(Arc<[u8]>, bool),
    /// Accepts connections and resets them (`SO_LINGER` 0).
    Reset,
    /// Answers DNS queries with NOERROR and TXT records up to this many
    /// bytes, however large.
    DnsPadded(usize),
    /// Answers DNS queries with NOERROR under another ID than the query's.
    DnsWrongId,
}

/// An endpoint served by a task of the test's runtime; dropping it stops
/// the task (its socket closed).
pub struct Endpoint {
    pub addr: SocketAddr,
    kind: Kind,
    /// Connections accepted (TCP kinds) or queries answered (DNS).
    hits: Arc<AtomicU64>,
    /// The HTTP status or DNS RCODE answered.
    answer: Arc<AtomicU16>,
    task: Option<JoinHandle<()>>,
}

impl Endpoint {
    /// A TCP listener on `addr` that accepts connections and closes them.
    pub async fn tcp(addr: SocketAddr) -> Endpoint {
        Endpoint::start(addr, Kind::Tcp, 0).await
    }

    /// An HTTP/1.1 server on `addr` answering every request with `status`.
    pub async fn http(addr: SocketAddr, status: u16) -> Endpoint {
        Endpoint::start(addr, Kind::Http, status).await
    }

    /// A TCP listener on `addr` that accepts and never sends a byte.
    pub async fn stalled(addr: SocketAddr) -> Endpoint {
        Endpoint::start(addr, Kind::Stalled, 0).await
    }

    /// A UDP DNS responder on `addr` answering every query with `rcode`
    /// (NOERROR with an A record).
    pub async fn dns(addr: SocketAddr, rcode: ResponseCode) -> Endpoint {
        Endpoint::start(addr, Kind::Dns, u16::from(rcode)).await
    }

    /// A TCP server on `addr` answering each connection with `reply` (after
    /// the request's head, or a second without one), then holding it open
    /// (`hold`) or closing it.
    pub async fn scripted(addr: SocketAddr, reply: &[u8], hold: bool) -> Endpoint {
        Endpoint::start(addr, Kind::Script(reply.into(), hold), 0).await
    }

    /// A TCP listener on `addr` that accepts connections and resets them.
    pub async fn resetting(addr: SocketAddr) -> Endpoint {
        Endpoint::start(addr, Kind::Reset, 0).await
    }

    /// A UDP DNS responder on `addr` answering NOERROR with TXT records
    /// filling at least `size` bytes (past any EDNS limit).
    pub async fn dns_padded(addr: SocketAddr, size: usize) -> Endpoint {
        Endpoint::start(addr, Kind::DnsPadded(size), 0).await
    }

    /// A UDP DNS responder on `addr` answering NOERROR under another ID.
    pub async fn dns_wrong_id(addr: SocketAddr) -> Endpoint {
        Endpoint::start(addr, Kind::DnsWrongId, 0).await
    }

    async fn start(addr: SocketAddr, kind: Kind, answer: u16) -> Endpoint {
        let mut e = Endpoint {
            addr,
            kind,
            hits: Arc::new(AtomicU64::new(0)),
            answer: Arc::new(AtomicU16::new(answer)),
            task: None,
        };
        e.revive().await;
        e
    }

    /// Connections accepted, or DNS queries answered, so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// From now on answers with HTTP status (or DNS RCODE) `answer`.
    pub fn set_answer(&self, answer: u16) {
        self.answer.store(answer, Ordering::SeqCst);
    }

    /// Stops serving: the socket is closed once this returns (connections
    /// refused, datagrams answered by ICMP port unreachable).
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Serves again on the same address (after [`Endpoint::kill`]).
    pub async fn revive(&mut self) {
        self.kill().await;
        let (hits, answer) = (Arc::clone(&self.hits), Arc::clone(&self.answer));
        let task = if matches!(self.kind, Kind::Dns | Kind::DnsPadded(_) | Kind::DnsWrongId) {
            let sock = UdpSocket::bind(self.addr)
                .await
                .unwrap_or_else(|e| panic!("bind udp {}: {e}", self.addr));
            tokio::spawn(serve_dns(sock, self.kind.clone(), hits, answer))
        } else {
            let listener = TcpListener::bind(self.addr)
                .await
                .unwrap_or_else(|e| panic!("bind tcp {}: {e}", self.addr));
            tokio::spawn(serve_tcp(listener, self.kind.clone(), hits, answer))
        };
        self.task = Some(task);
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn serve_tcp(
    listener: TcpListener,
    kind: Kind,
    hits: Arc<AtomicU64>,
    answer: Arc<AtomicU16>,
) {
    // Held connections live as long as the task (a kill closes them too).
    let mut held: Vec<TcpStream> = Vec::new();
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        hits.fetch_add(1, Ordering::SeqCst);
        match &kind {
            Kind::Http => {
                let status = answer.load(Ordering::SeqCst);
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), http_answer(conn, status)).await;
            }
            Kind::Stalled => held.push(conn),
            Kind::Script(reply, hold) => {
                let (reply, hold) = (Arc::clone(reply), *hold);
                let mut conn = conn;
                // A task per connection: a slow request or an endless reply
                // must not hold up the next connection.
                tokio::spawn(async move {
                    let head = Duration::from_secs(1);
                    let _ = tokio::time::timeout(head, read_head(&mut conn)).await;
                    let _ = conn.write_all(&reply).await;
                    if hold {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                });
            }
            Kind::Reset => {
                let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
                drop(conn);
            }
            Kind::Tcp | Kind::Dns | Kind::DnsPadded(_) | Kind::DnsWrongId => drop(conn),
        }
    }
}

/// Reads a request's head (at most 8 KiB); false when the peer went first.
async fn read_head(conn: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// Reads a request's head (bounded) and answers it with `status`.
async fn http_answer(mut conn: TcpStream, status: u16) {
    if !read_head(&mut conn).await {
        return;
    }
    let response =
        format!("HTTP/1.1 {status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = conn.write_all(response.as_bytes()).await;
}

async fn serve_dns(sock: UdpSocket, kind: Kind, hits: Arc<AtomicU64>, answer: Arc<AtomicU16>) {
    let mut buf = [0u8; 1500];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let rcode: ResponseCode = answer.load(Ordering::SeqCst).into();
        let Some(query) = Message::from_vec(&buf[..n])
            .ok()
            .filter(|m| !m.queries.is_empty())
        else {
            continue;
        };
        let reply = match kind {
            Kind::DnsPadded(size) => padded(&query, size),
            Kind::DnsWrongId => {
                let mut r = answer_with_ttl(&buf[..n], ResponseCode::NoError, 30);
                r[0] ^= 0x55;
                r
            }
            _ => answer_with_ttl(&buf[..n], rcode, 30),
        };
        hits.fetch_add(1, Ordering::SeqCst);
        let _ = sock.send_to(&reply, from).await;
    }
}

/// A NOERROR answer to `query` with TXT records of 255-byte strings at its
/// name filling at least `size` bytes.
fn padded(query: &Message, size: usize) -> Vec<u8> {
    use hickory_proto::rr::rdata::TXT;
    use hickory_proto::rr::{RData, Record};
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    m.metadata.authoritative = true;
    m.add_queries(query.queries.clone());
    let name = query.queries[0].name().clone();
    let mut len = 0;
    while len < size {
        let txt = TXT::new(vec!["x".repeat(255)]);
        m.add_answer(Record::from_rdata(name.clone(), 30, RData::TXT(txt)));
        len += 256 + 12;
    }
    m.to_vec().unwrap()
}
