//! Service endpoints for the health-check tests (issue 38): a TCP listener,
//! a tiny HTTP/1.1 server answering a status of the test's choosing, one
//! that accepts and never answers, and a UDP DNS responder answering an
//! RCODE of the test's choosing; each on an address the test picks
//! (127.0.0.x), counting what reaches it, killed (its socket closed:
//! connections refused) and brought back on the same address.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Accepts connections and closes them.
    Tcp,
    /// Answers every HTTP request with the status in `answer`.
    Http,
    /// Accepts connections and holds them without a byte.
    Stalled,
    /// Answers DNS queries over UDP with the RCODE in `answer`.
    Dns,
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
        let task = if self.kind == Kind::Dns {
            let sock = UdpSocket::bind(self.addr)
                .await
                .unwrap_or_else(|e| panic!("bind udp {}: {e}", self.addr));
            tokio::spawn(serve_dns(sock, hits, answer))
        } else {
            let listener = TcpListener::bind(self.addr)
                .await
                .unwrap_or_else(|e| panic!("bind tcp {}: {e}", self.addr));
            tokio::spawn(serve_tcp(listener, self.kind, hits, answer))
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
        match kind {
            Kind::Http => {
                let status = answer.load(Ordering::SeqCst);
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), http_answer(conn, status)).await;
            }
            Kind::Stalled => held.push(conn),
            Kind::Tcp | Kind::Dns => drop(conn),
        }
    }
}

/// Reads a request's head (bounded) and answers it with `status`.
async fn http_answer(mut conn: TcpStream, status: u16) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let response =
        format!("HTTP/1.1 {status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = conn.write_all(response.as_bytes()).await;
}

async fn serve_dns(sock: UdpSocket, hits: Arc<AtomicU64>, answer: Arc<AtomicU16>) {
    let mut buf = [0u8; 1500];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let rcode: ResponseCode = answer.load(Ordering::SeqCst).into();
        let readable = Message::from_vec(&buf[..n]).is_ok_and(|m| !m.queries.is_empty());
        if !readable {
            continue;
        }
        let reply = answer_with_ttl(&buf[..n], rcode, 30);
        hits.fetch_add(1, Ordering::SeqCst);
        let _ = sock.send_to(&reply, from).await;
    }
}
