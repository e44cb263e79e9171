//! qload's connections, one kind a transport, opened before the clock
//! starts and reused: DoQ (RFC 9250: a stream a query, the ID 0, a two-byte
//! length), DoT (queries pipelined on one TLS stream, distinct IDs, answers
//! matched by ID in any order), DoH over HTTP/2 (h2) and over HTTP/3 (h3 on
//! quinn), a request a query, POST or GET.
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use data_encoding::BASE64URL_NOPAD;
use hyper::body::{Buf, Bytes};
use quinn::crypto::rustls::QuicClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::tls::{Trust, client_config};

/// The transports qload speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Transport {
    /// DNS over QUIC (ALPN `doq`).
    Doq,
    /// DNS over TLS (ALPN `dot`).
    Dot,
    /// DNS over HTTPS on HTTP/2 (ALPN `h2`).
    Doh2,
    /// DNS over HTTPS on HTTP/3 (ALPN `h3`).
    Doh3,
}

/// Where and how to connect: the same for each connection.
pub(crate) struct Target<'a> {
    pub(crate) transport: Transport,
    pub(crate) server: SocketAddr,
    pub(crate) sni: String,
    pub(crate) trust: Trust<'a>,
    pub(crate) path: String,
    pub(crate) get: bool,
}

/// How an HTTP request is made: its URI's authority and path, POST or GET.
pub(crate) struct Http {
    authority: String,
    path: String,
    get: bool,
}

impl Http {
    fn request(&self, q: &Bytes) -> anyhow::Result<hyper::Request<()>> {
        let b = hyper::Request::builder().header("accept", "application/dns-message");
        let b = if self.get {
            let uri = format!(
                "https://{}{}?dns={}",
                self.authority,
                self.path,
                BASE64URL_NOPAD.encode(q)
            );
            b.method("GET").uri(uri)
        } else {
            b.method("POST")
                .uri(format!("https://{}{}", self.authority, self.path))
                .header("content-type", "application/dns-message")
                .header("content-length", q.len())
        };
        Ok(b.body(())?)
    }
}

/// One open connection.
pub(crate) enum Conn {
    Doq(quinn::Connection),
    Dot(Dot),
    /// With a flag raised when the HTTP/2 connection ends.
    Doh2(h2::client::SendRequest<Bytes>, Http, Rc<Cell<bool>>),
    Doh3(
        h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
        Http,
        quinn::Connection,
    ),
}

/// A DoT connection: queries go to its writer task, answers come back by
/// ID from its reader task.
pub(crate) struct Dot {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    waiting: Rc<RefCell<HashMap<u16, oneshot::Sender<Vec<u8>>>>>,
    next_id: Cell<u16>,
    /// Raised when the reader has seen the connection end.
    gone: Rc<Cell<bool>>,
}

/// The largest DNS message (an HTTP body longer is no answer).
const MAX_DNS: usize = 65_535;

/// The largest answer read over DoQ (a length prefix and a message).
const MAX_DOQ: usize = 2 + MAX_DNS;

impl Conn {
    /// Opens one connection to `t` (on a LocalSet: DoT's and DoH/2's tasks
    /// are spawned on it).
    pub(crate) async fn open(t: &Target<'_>) -> anyhow::Result<Conn> {
        let http = || Http {
            authority: format!("{}:{}", t.sni, t.server.port()),
            path: t.path.clone(),
            get: t.get,
        };
        match t.transport {
            Transport::Doq => Ok(Conn::Doq(quic(t, b"doq").await?)),
            Transport::Doh3 => {
                let conn = quic(t, b"h3").await?;
                let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
                    .await
                    .context("HTTP/3 settings")?;
                tokio::task::spawn_local(async move {
                    std::future::poll_fn(|cx| driver.poll_close(cx)).await
                });
                Ok(Conn::Doh3(send, http(), conn))
            }
            Transport::Dot => Ok(Conn::Dot(dot(t).await?)),
            Transport::Doh2 => {
                let tls = tcp_tls(t, b"h2").await?;
                let (send, conn) = h2::client::Builder::new()
                    .initial_window_size(1 << 20)
                    .initial_connection_window_size(1 << 22)
                    .handshake::<_, Bytes>(tls)
                    .await
                    .context("HTTP/2 handshake")?;
                let gone = Rc::new(Cell::new(false));
                let ended = Rc::clone(&gone);
                tokio::task::spawn_local(async move {
                    let _ = conn.await;
                    ended.set(true);
                });
                Ok(Conn::Doh2(send, http(), gone))
            }
        }
    }

    /// Asks `q` (ID 0) and waits for its answer: the answer and the ID it
    /// should carry.
    pub(crate) async fn ask(&self, q: &Bytes) -> anyhow::Result<(Vec<u8>, u16)> {
        match self {
            Conn::Doq(c) => {
                let (mut send, mut recv) = c.open_bi().await?;
                let mut framed = Vec::with_capacity(2 + q.len());
                framed.extend_from_slice(&u16::try_from(q.len())?.to_be_bytes());
                framed.extend_from_slice(q);
                send.write_all(&framed).await?;
                send.finish()?;
                let got = recv.read_to_end(MAX_DOQ).await?;
                let (len, msg) = got.split_first_chunk::<2>().context("no length")?;
                if usize::from(u16::from_be_bytes(*len)) != msg.len() {
                    bail!("a DoQ answer's length is not its stream's");
                }
                Ok((msg.to_vec(), 0))
            }
            Conn::Dot(d) => d.ask(q).await,
            Conn::Doh2(send, http, _) => {
                let mut send = send.clone().ready().await?;
                let (resp, mut body) = send.send_request(http.request(q)?, http.get)?;
                if !http.get {
                    body.send_data(q.clone(), true)?;
                }
                let resp = resp.await?;
                if resp.status() != 200 {
                    bail!("HTTP status {}", resp.status());
                }
                let mut body = resp.into_body();
                let mut out = Vec::new();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk?;
                    let _ = body.flow_control().release_capacity(chunk.len());
                    out.extend_from_slice(&chunk);
                    if out.len() > MAX_DNS {
                        bail!("an HTTP body past {MAX_DNS} bytes");
                    }
                }
                Ok((out, 0))
            }
            Conn::Doh3(send, http, _) => {
                let mut send = send.clone();
                let mut stream = send.send_request(http.request(q)?).await?;
                if !http.get {
                    stream.send_data(q.clone()).await?;
                }
                stream.finish().await?;
                let resp = stream.recv_response().await?;
                if resp.status() != 200 {
                    bail!("HTTP status {}", resp.status());
                }
                let mut out = Vec::new();
                while let Some(mut chunk) = stream.recv_data().await? {
                    out.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
                    if out.len() > MAX_DNS {
                        bail!("an HTTP body past {MAX_DNS} bytes");
                    }
                }
                Ok((out, 0))
            }
        }
    }

    /// Closes a QUIC connection at once (the others close with the process).
    pub(crate) fn close(&self) {
        match self {
            Conn::Doq(c) | Conn::Doh3(_, _, c) => c.close(0u32.into(), b"done"),
            Conn::Dot(_) | Conn::Doh2(..) => {}
        }
    }

    /// Whether the connection has ended (closed by the server, reset, timed
    /// out idle): nothing sent on it can be answered any more.
    pub(crate) fn dead(&self) -> bool {
        match self {
            Conn::Doq(c) | Conn::Doh3(_, _, c) => c.close_reason().is_some(),
            Conn::Dot(d) => d.gone.get() || d.tx.is_closed(),
            Conn::Doh2(_, _, gone) => gone.get(),
        }
    }
}

/// A QUIC connection of its own endpoint (its own UDP socket, as a client
/// of its own) offering `alpn`, its handshake done.
async fn quic(t: &Target<'_>, alpn: &[u8]) -> anyhow::Result<quinn::Connection> {
    let tls = client_config(&t.trust, alpn, true)?;
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(quinn::VarInt::from_u32(30_000).into()));
    config.transport_config(Arc::new(transport));
    let bind: SocketAddr = if t.server.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let mut ep = quinn::Endpoint::client(bind)?;
    ep.set_default_client_config(config);
    let conn = ep
        .connect(t.server, &t.sni)?
        .await
        .with_context(|| format!("QUIC handshake with {}", t.server))?;
    Ok(conn)
}

/// A TCP connection (no Nagle) with its TLS handshake done, offering `alpn`.
async fn tcp_tls(
    t: &Target<'_>,
    alpn: &[u8],
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(t.server)
        .await
        .with_context(|| format!("TCP connect to {}", t.server))?;
    tcp.set_nodelay(true)?;
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(client_config(&t.trust, alpn, false)?));
    let name = ServerName::try_from(t.sni.clone())?;
    connector
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS handshake with {}", t.server))
}

/// A DoT connection: its writer task sends what is queued in one write,
/// its reader task hands each answer to the query of its ID.
async fn dot(t: &Target<'_>) -> anyhow::Result<Dot> {
    let tls = tcp_tls(t, b"dot").await?;
    let (r, mut w) = tokio::io::split(tls);
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let waiting: Rc<RefCell<HashMap<u16, oneshot::Sender<Vec<u8>>>>> = Rc::default();
    tokio::task::spawn_local(async move {
        let mut buf = Vec::with_capacity(64 << 10);
        while let Some(first) = rx.recv().await {
            buf.extend_from_slice(&first);
            while let Ok(more) = rx.try_recv() {
                buf.extend_from_slice(&more);
            }
            if w.write_all(&buf).await.is_err() || w.flush().await.is_err() {
                break;
            }
            buf.clear();
        }
    });
    let by_id = Rc::clone(&waiting);
    let gone = Rc::new(Cell::new(false));
    let ended = Rc::clone(&gone);
    tokio::task::spawn_local(async move {
        let mut r = BufReader::with_capacity(64 << 10, r);
        let mut msg = Vec::new();
        while let Ok(len) = r.read_u16().await {
            msg.resize(usize::from(len), 0);
            if r.read_exact(&mut msg).await.is_err() {
                break;
            }
            let Some(id) = msg.first_chunk::<2>().map(|id| u16::from_be_bytes(*id)) else {
                continue;
            };
            if let Some(tx) = by_id.borrow_mut().remove(&id) {
                let _ = tx.send(std::mem::take(&mut msg));
            }
        }
        // The connection is gone: every query still waiting fails now.
        ended.set(true);
        by_id.borrow_mut().clear();
    });
    Ok(Dot {
        tx,
        waiting,
        next_id: Cell::new(0),
        gone,
    })
}

impl Dot {
    async fn ask(&self, q: &Bytes) -> anyhow::Result<(Vec<u8>, u16)> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut waiting = self.waiting.borrow_mut();
            if waiting.len() > usize::from(u16::MAX) {
                bail!("every DNS ID in flight");
            }
            let mut id = self.next_id.get();
            while waiting.contains_key(&id) {
                id = id.wrapping_add(1);
            }
            self.next_id.set(id.wrapping_add(1));
            waiting.insert(id, tx);
            id
        };
        // Dropped (the query timed out) or done, its ID is free again.
        let _free = Forget(&self.waiting, id);
        let mut framed = Vec::with_capacity(2 + q.len());
        framed.extend_from_slice(&u16::try_from(q.len())?.to_be_bytes());
        framed.extend_from_slice(q);
        framed[2..4].copy_from_slice(&id.to_be_bytes());
        self.tx
            .send(framed)
            .map_err(|_| anyhow!("the connection closed"))?;
        let got = rx.await.map_err(|_| anyhow!("the connection closed"));
        Ok((got?, id))
    }
}

/// Takes a DoT query's ID out of the waiting map when the query ends,
/// answered or not.
struct Forget<'a>(&'a RefCell<HashMap<u16, oneshot::Sender<Vec<u8>>>>, u16);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().remove(&self.1);
    }
}
