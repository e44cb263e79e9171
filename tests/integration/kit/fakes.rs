//! Fake backends for the LS: servers in the test process that answer, stay
//! silent, answer late or answer wrong the way a broken table server would.
//! One [`Fake`] does them all: it answers the LS's health probes (until
//! muted) and hands every client query to the test's [`Reply`] function.
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsOption, NSIDPayload};
use hickory_proto::rr::rdata::{A, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UdpSocket};

use super::client::{read_frame, write_frame};

/// Whether `q` asks about the root name: the LS's health probe (`. SOA`).
pub fn is_probe(q: &[u8]) -> bool {
    q.get(12) == Some(&0)
}

/// The query `q` itself turned into an answer with `rcode` (QR=1, the
/// question echoed, nothing else changed).
pub fn error_answer(q: &[u8], rcode: u8) -> Vec<u8> {
    let mut r = q.to_vec();
    r[2] |= 0x80; // QR
    r[3] = (r[3] & 0xf0) | rcode;
    r
}

/// A NOERROR answer with no records to `q` (AA=1): what a stalled backend
/// still sends its health probes.
pub fn empty_answer(q: &[u8]) -> Vec<u8> {
    let mut m = Message::from_vec(q).unwrap();
    m.metadata.message_type = MessageType::Response;
    m.metadata.authoritative = true;
    m.to_vec().unwrap()
}

/// An answer to `query` (AA=1, question echoed) of `records` TXT records of
/// 213 bytes each (a pointer, 10 bytes of type to RDLENGTH, a 200-byte
/// string), with an OPT of 1232: 25 records make 5,365 bytes.
pub fn txt_answer(query: &[u8], records: usize) -> Vec<u8> {
    let q = Message::from_vec(query).unwrap();
    let mut m = Message::response(q.metadata.id, q.metadata.op_code);
    m.metadata.authoritative = true;
    m.add_queries(q.queries.clone());
    let name = q.queries[0].name().clone();
    for i in 0..records {
        let text = format!("{i:03}{}", "x".repeat(197));
        m.add_answer(Record::from_rdata(
            name.clone(),
            300,
            RData::TXT(TXT::new(vec![text])),
        ));
    }
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    m.set_edns(edns);
    m.to_vec().unwrap()
}

/// The answer to `q` (AA=1) with A records 10.0.0.0, 10.0.0.1, ... until
/// the message holds `size` bytes or fewer (16 bytes a compressed A record).
pub fn a_flood_answer(q: &[u8], size: usize) -> Vec<u8> {
    let mut m = Message::from_vec(q).unwrap();
    m.metadata.message_type = MessageType::Response;
    m.metadata.authoritative = true;
    let name = m.queries[0].name().clone();
    let room = size - q.len();
    for i in 0..room / 16 {
        let addr = Ipv4Addr::from(0x0A00_0000 + i as u32);
        m.answers
            .push(Record::from_rdata(name.clone(), 300, RData::A(A(addr))));
    }
    m.to_vec().unwrap()
}

/// End of the question section of `q` (one question, no compression).
pub fn question_end(q: &[u8]) -> usize {
    let mut i = 12;
    while i < q.len() && q[i] != 0 {
        i += usize::from(q[i]) + 1;
    }
    i + 5
}

/// An answer to `q` built byte by byte: AA, NOERROR in the header, one A record 192.0.2.77
/// (none for a probe, the root's SOA), and when `q` carries an OPT, an OPT
/// (payload 1232) whose extended-rcode byte is `ext` (0 for a probe).
pub fn wire_answer(q: &[u8], ext: u8) -> Vec<u8> {
    let end = question_end(q);
    let probe = is_probe(q);
    let has_opt = q.len() > end && q[10..12] != [0, 0];
    let mut r = q[..end].to_vec();
    r[2] = 0x84 | (q[2] & 1);
    r[3] = 0;
    let an = u8::from(!probe);
    let ar = u8::from(has_opt);
    r[4..12].copy_from_slice(&[0, 1, 0, an, 0, 0, 0, ar]);
    if !probe {
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 77]);
    }
    if has_opt {
        let ext = if probe { 0 } else { ext };
        r.extend_from_slice(&[0, 0, 41, 4, 0xd0, ext, 0, 0, 0, 0, 0]);
    }
    r
}

/// What a [`Fake`] does with one client query.
pub enum Reply {
    /// Sends these bytes at once.
    Now(Vec<u8>),
    /// Sends these bytes after the delay (the next queries are read meanwhile).
    After(Duration, Vec<u8>),
    /// Sends each of these at once, in order.
    Many(Vec<Vec<u8>>),
    /// Sends nothing.
    Drop,
}

/// What a [`Fake`] answers a query over TCP.
pub type TcpAnswer = fn(&[u8]) -> Vec<u8>;

/// A UDP socket on 127.0.0.1 and a TCP listener on the same port: the
/// first port 0 gives whose TCP side is free too.
pub async fn udp_and_tcp() -> (UdpSocket, TcpListener, SocketAddr) {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp, addr);
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// A fake backend on 127.0.0.1: over UDP it answers the LS's health probes
/// with [`empty_answer`] (until [`Fake::mute_probes`]) and gives every
/// client query, counted, to the test's reply function; over TCP (with
/// [`Fake::udp_tcp`]) it answers each framed query, probes too, with the
/// TCP function. Stopped when dropped.
pub struct Fake {
    pub addr: SocketAddr,
    /// Client queries received over UDP (probes not counted).
    pub queries: Arc<AtomicU64>,
    probes: Arc<AtomicBool>,
    _tasks: Tasks,
}

impl Fake {
    /// UDP only: `reply(query, n)` for the `n`th client query (from 1).
    pub async fn udp(reply: impl FnMut(&[u8], u64) -> Reply + Send + 'static) -> Fake {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Fake::serve(sock, None, reply)
    }

    /// UDP only: every client query gets `answer(query)` at once.
    pub async fn answering(answer: fn(&[u8]) -> Vec<u8>) -> Fake {
        Fake::udp(move |q, _| Reply::Now(answer(q))).await
    }

    /// UDP as [`Fake::udp`] and TCP on the same port: every framed query
    /// on a connection gets `tcp(query)`.
    pub async fn udp_tcp(
        reply: impl FnMut(&[u8], u64) -> Reply + Send + 'static,
        tcp: TcpAnswer,
    ) -> Fake {
        let (udp, listener, _) = udp_and_tcp().await;
        Fake::serve(udp, Some((listener, tcp)), reply)
    }

    fn serve(
        sock: UdpSocket,
        tcp: Option<(TcpListener, TcpAnswer)>,
        mut reply: impl FnMut(&[u8], u64) -> Reply + Send + 'static,
    ) -> Fake {
        let addr = sock.local_addr().unwrap();
        let queries = Arc::new(AtomicU64::new(0));
        let probes = Arc::new(AtomicBool::new(true));
        let (q2, p2) = (queries.clone(), probes.clone());
        let mut tasks = vec![serve_udp(sock, move |q| {
            if is_probe(q) {
                if p2.load(Relaxed) {
                    return Reply::Now(empty_answer(q));
                }
                return Reply::Drop;
            }
            let nth = q2.fetch_add(1, Relaxed) + 1;
            reply(q, nth)
        })];
        if let Some((listener, answer)) = tcp {
            tasks.push(tokio::spawn(async move {
                while let Ok((mut s, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        while let Some(q) = read_frame(&mut s).await {
                            if !write_frame(&mut s, &answer(&q)).await {
                                return;
                            }
                        }
                    });
                }
            }));
        }
        Fake {
            addr,
            queries,
            probes,
            _tasks: Tasks(tasks),
        }
    }

    /// From now on the probes go unanswered too.
    pub fn mute_probes(&self) {
        self.probes.store(false, Relaxed);
    }
}

/// Tasks serving a fake backend, aborted when dropped.
pub struct Tasks(pub Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Serves UDP on `sock`: every datagram (a health probe too) goes to
/// `reply(query)`, which says what goes back to its sender. Stops when
/// aborted.
pub fn serve_udp(
    sock: UdpSocket,
    mut reply: impl FnMut(&[u8]) -> Reply + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let sock = Arc::new(sock);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            match reply(&buf[..n]) {
                Reply::Now(bytes) => {
                    let _ = sock.send_to(&bytes, from).await;
                }
                Reply::After(delay, bytes) => {
                    let s = sock.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = s.send_to(&bytes, from).await;
                    });
                }
                Reply::Many(all) => {
                    for bytes in all {
                        let _ = sock.send_to(&bytes, from).await;
                    }
                }
                Reply::Drop => {}
            }
        }
    })
}

/// A stalled backend: it answers the LS's health probes (so it counts as
/// up) but never a client query. [`Fake::mute_probes`] silences the
/// probes too.
pub struct Stalled(Fake);

impl Stalled {
    pub async fn start() -> Stalled {
        Stalled(Fake::udp(|_, _| Reply::Drop).await)
    }
}

/// A [`Stalled`] backend and an `[ls]` section ([`ls_config`](super::ls_config))
/// holding it alone, named `silent`.
pub async fn silent_backend_config() -> (Stalled, dnslb::config::LsConfig) {
    let silent = Stalled::start().await;
    let cfg = super::ls_config(&[("silent", silent.addr)]);
    (silent, cfg)
}

impl Deref for Stalled {
    type Target = Fake;

    fn deref(&self) -> &Fake {
        &self.0
    }
}

/// What a [`serve_tcp`] backend does with one framed query.
pub enum TcpStep {
    /// Answers with these bytes after the delay; the next queries on the
    /// connection are read meanwhile (answers go out of order).
    Answer(Duration, Vec<u8>),
    /// Closes the connection after the delay, once the answers in flight
    /// are written (as NSD does at its `tcp-query-count`: however busy the
    /// machine, never before them), leaving this query unanswered.
    Close(Duration),
}

/// Serves TCP on `listener` (each accepted connection counted in `conns`):
/// every framed query goes to `step(query, nth, in_flight)`, `nth` its
/// number on its connection (from 1), `in_flight` the answers still to be
/// sent on it. Stops when aborted.
pub fn serve_tcp(
    listener: TcpListener,
    conns: Arc<AtomicU64>,
    step: impl Fn(&[u8], u64, u64) -> TcpStep + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    let step = Arc::new(step);
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            conns.fetch_add(1, Relaxed);
            let step = step.clone();
            tokio::spawn(async move {
                let (mut rd, wr) = s.into_split();
                let wr = Arc::new(tokio::sync::Mutex::new(wr));
                let in_flight = Arc::new(AtomicU64::new(0));
                let mut nth = 0;
                while let Some(q) = read_frame(&mut rd).await {
                    nth += 1;
                    match step(&q, nth, in_flight.load(Relaxed)) {
                        TcpStep::Close(after) => {
                            tokio::time::sleep(after).await;
                            while in_flight.load(Relaxed) > 0 {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                            let _ = wr.lock().await.shutdown().await;
                            return;
                        }
                        TcpStep::Answer(after, r) => {
                            in_flight.fetch_add(1, Relaxed);
                            let (wr, in_flight) = (wr.clone(), in_flight.clone());
                            tokio::spawn(async move {
                                tokio::time::sleep(after).await;
                                write_frame(&mut *wr.lock().await, &r).await;
                                in_flight.fetch_sub(1, Relaxed);
                            });
                        }
                    }
                }
            });
        }
    })
}

pub fn a_300(q: &[u8]) -> Vec<u8> {
    answer_with_ttl(q, ResponseCode::NoError, 300)
}

/// The address a fake backend answers with: .9 when the query had DO=1,
/// so a DO=0 client that got it would show.
fn address(q: &Message) -> A {
    let dnssec_ok = q.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
    A::new(192, 0, 2, if dnssec_ok { 9 } else { 7 })
}

/// A backend's answer to `q` with `rcode`: NOERROR with one A record of
/// `ttl`, NXDOMAIN with an SOA (TTL 300, MINIMUM `ttl`), anything else
/// bare; with an OPT carrying the backend's NSID when the query had one.
pub fn answer_with_ttl(q: &[u8], rcode: ResponseCode, ttl: u32) -> Vec<u8> {
    let query = Message::from_vec(q).unwrap();
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    // A SERVFAIL is a failing server's (an authority's own, AA=1, is final).
    m.metadata.authoritative = rcode != ResponseCode::ServFail;
    m.metadata.response_code = rcode;
    m.add_queries(query.queries.clone());
    let name = query.queries[0].name().clone();
    match rcode {
        ResponseCode::NoError => {
            m.add_answer(Record::from_rdata(name, ttl, RData::A(address(&query))));
        }
        ResponseCode::NXDomain => {
            let soa = SOA::new(
                Name::from_ascii("ns.example.").unwrap(),
                Name::from_ascii("hostmaster.example.").unwrap(),
                1,
                3600,
                600,
                86400,
                ttl,
            );
            let zone = Name::from_ascii("example.").unwrap();
            m.add_authority(Record::from_rdata(zone, 300, RData::SOA(soa)));
        }
        _ => {}
    }
    if let Some(e) = &query.edns {
        let mut r = Edns::new();
        r.set_max_payload(1232);
        r.set_dnssec_ok(e.flags().dnssec_ok);
        let nsid = NSIDPayload::new(b"backend-nsid".to_vec()).unwrap();
        r.options_mut().insert(EdnsOption::NSID(nsid));
        m.set_edns(r);
    }
    m.to_vec().unwrap()
}
