//! The kit's DNS clients: building a query, asking over UDP (a fresh socket,
//! connected or not) and over TCP (one length-prefixed frame), and reading
//! an answer (its A addresses, SOA serial, NSID). Every wait is bounded.
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::procs::{Proc, poll_until_async};

/// How long a test waits for one answer before calling it lost.
pub const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// A query message for `name`/`qtype` with RD=0, optionally with an OPT of `edns_size`.
pub fn query(name: &str, qtype: RecordType, edns_size: Option<u16>) -> Message {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns_size {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m
}

/// The A addresses of the answer section, in the order they came.
pub fn a_addrs(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// The A addresses of the answer section, sorted.
pub fn a_addrs_sorted(m: &Message) -> Vec<Ipv4Addr> {
    let mut v = a_addrs(m);
    v.sort();
    v
}

/// Asserts that `m` answers the addresses `want` (in order); else fails
/// saying `what` and showing `m`.
#[track_caller]
pub fn assert_a(m: &Message, want: [u8; 4], what: &str) {
    assert_eq!(a_addrs(m), [Ipv4Addr::from(want)], "{what}: {}", show(m));
}

/// Asserts that `m`'s rcode is `want`; else fails saying `what` and
/// showing `m`.
#[track_caller]
pub fn assert_rcode(m: &Message, want: ResponseCode, what: &str) {
    assert_eq!(m.metadata.response_code, want, "{what}: {}", show(m));
}

/// One record as text: `name ttl type rdata`, name in lower case.
pub fn render(r: &Record) -> String {
    format!(
        "{} {} {} {}",
        r.name.to_ascii().to_lowercase(),
        r.ttl,
        r.record_type(),
        r.data
    )
}

/// A short rendering of an answer for failure messages.
pub fn show(m: &Message) -> String {
    let md = &m.metadata;
    let list = |rs: &[Record]| rs.iter().map(render).collect::<Vec<_>>().join("; ");
    format!(
        "rcode={} aa={} tc={} answer=[{}] authority=[{}]",
        md.response_code,
        md.authoritative,
        md.truncation,
        list(&m.answers),
        list(&m.authorities)
    )
}

/// The serial of the SOA in the answer section, if any.
pub fn soa_serial(m: &Message) -> Option<u32> {
    m.answers.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
}

/// An authoritative NOERROR answer holding exactly `want` (sorted) as its A records.
pub fn answers_a(m: &Message, want: &[Ipv4Addr]) -> bool {
    m.metadata.response_code == ResponseCode::NoError
        && m.metadata.authoritative
        && a_addrs_sorted(m) == want
}

/// The NSID payload of an answer, if it carries one.
pub fn nsid_of(m: &Message) -> Option<Vec<u8>> {
    match m.edns.as_ref()?.option(EdnsCode::NSID)? {
        EdnsOption::NSID(p) => Some(p.as_ref().to_vec()),
        _ => None,
    }
}

/// Sends raw bytes over UDP from a fresh socket; the answer, or `None` after [`ANSWER_WAIT`].
pub async fn udp_raw(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    udp_raw_wait(addr, bytes, ANSWER_WAIT).await
}

/// [`udp_raw`] with a chosen wait.
pub async fn udp_raw_wait(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    udp_raw_from(std::net::Ipv4Addr::LOCALHOST.into(), addr, bytes, wait).await
}

/// [`udp_raw_wait`] from a fresh socket on `src` (e.g. 127.0.0.2): the first
/// datagram that comes from `addr` (from its port, when `addr` is a wildcard).
///
/// The kernel may give the fresh socket a port that another test's server
/// used and that others still send to: an LS's query or health probe to a
/// stopped in-process TS (whose port was a `bind(port 0)` one), a late
/// answer. Such a datagram is not the answer and is skipped; taken as the
/// answer, it once read as "a SOA query answered with no record" in a busy
/// run of the suite.
pub async fn udp_raw_from(
    src: std::net::IpAddr,
    addr: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(SocketAddr::new(src, 0)).await.unwrap();
    sock.send_to(bytes, addr).await.unwrap();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, from) = match tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
            Ok(Ok(got)) => got,
            _ => return None,
        };
        if sent_by(addr, from) {
            return Some(buf[..n].to_vec());
        }
        eprintln!("kit: a datagram from {from} skipped: {addr} was asked");
    }
}

/// Whether a datagram from `from` is one from the server asked at `addr`.
fn sent_by(addr: SocketAddr, from: SocketAddr) -> bool {
    from == addr || (addr.ip().is_unspecified() && from.port() == addr.port())
}

/// Sends `m` over UDP and decodes the answer (panics if none comes).
pub async fn udp(addr: SocketAddr, m: &Message) -> Message {
    let raw = udp_raw(addr, &m.to_vec().unwrap())
        .await
        .expect("an answer over udp");
    Message::from_vec(&raw).unwrap()
}

/// `name` A over UDP (RD=0, no EDNS) from a fresh socket, decoded; panics
/// if no answer comes within [`ANSWER_WAIT`].
pub async fn ask_a(addr: SocketAddr, name: &str) -> Message {
    udp(addr, &query(name, RecordType::A, None)).await
}

/// `name qtype` with DO=1 and an OPT of 1232 bytes (a random ID) over a
/// new TCP connection, so that nothing is truncated; the answer decoded.
pub async fn ask_dnssec_tcp(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut q = query(name, qtype, None);
    q.metadata.id = rand::random();
    let mut e = Edns::new();
    e.set_max_payload(1232).set_dnssec_ok(true);
    q.set_edns(e);
    tcp(addr, &q).await
}

/// Sends `m` over a new TCP connection and decodes the first answer.
pub async fn tcp(addr: SocketAddr, m: &Message) -> Message {
    let mut s = tcp_sent(addr, m).await;
    let raw = tcp_recv(&mut s).await.expect("an answer over tcp");
    Message::from_vec(&raw).unwrap()
}

/// A new connection to `addr` with `m` sent on it (framed), its answers
/// for the caller to read.
pub async fn tcp_sent(addr: SocketAddr, m: &Message) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    tcp_send(&mut s, &m.to_vec().unwrap()).await;
    s
}

/// [`tcp`] from a connection bound to `src` (e.g. 127.0.1.2).
pub async fn tcp_from(src: std::net::IpAddr, addr: SocketAddr, m: &Message) -> Message {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(src, 0)).unwrap();
    let mut s = sock.connect(addr).await.unwrap();
    tcp_send(&mut s, &m.to_vec().unwrap()).await;
    let raw = tcp_recv(&mut s).await.expect("an answer over tcp");
    Message::from_vec(&raw).unwrap()
}

/// Writes one length-prefixed message.
pub async fn tcp_send(s: &mut TcpStream, bytes: &[u8]) {
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    s.write_all(&framed).await.unwrap();
}

/// Reads one length-prefixed message; `None` on EOF or after [`ANSWER_WAIT`].
pub async fn tcp_recv(s: &mut TcpStream) -> Option<Vec<u8>> {
    tokio::time::timeout(ANSWER_WAIT, read_frame(s))
        .await
        .ok()
        .flatten()
}

/// Reads one length-prefixed message, however long it takes; `None` on
/// EOF or an error (a fake server's read).
pub async fn read_frame(s: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.ok()?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

/// Writes `bytes` with its length prefix in one write; whether it went.
pub async fn write_frame(s: &mut (impl AsyncWriteExt + Unpin), bytes: &[u8]) -> bool {
    let mut framed = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    s.write_all(&framed).await.is_ok()
}

// ---------------------------------------------------------------------------
// Asks from a connected socket, matched by ID
// ---------------------------------------------------------------------------

/// A query for `name`/`qtype` with a random ID, RD as given, EDNS 1232.
pub fn query_rd(name: &str, qtype: RecordType, rd: bool) -> Message {
    let mut q = query(name, qtype, Some(1232));
    q.metadata.id = rand::random();
    q.metadata.recursion_desired = rd;
    q
}

/// Sends `q` over UDP from a fresh socket *connected* to `addr` and returns
/// the first response with its ID and QR=1, as bytes; `None` after `wait`
/// (or at once when the port is unreachable). An unconnected socket that
/// the kernel gave a dead backend's port would receive the LS's upstream
/// query instead.
pub async fn udp_exchange_raw(addr: SocketAddr, q: &Message, wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(addr).await.unwrap();
    sock.send(&q.to_vec().unwrap()).await.ok()?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n >= 12 && buf[..2] == q.metadata.id.to_be_bytes() && buf[2] & 0x80 != 0 {
            return Some(buf[..n].to_vec());
        }
    }
}

/// [`udp_exchange_raw`], decoded (`None` if it does not decode).
pub async fn udp_exchange(addr: SocketAddr, q: &Message, wait: Duration) -> Option<Message> {
    Message::from_vec(&udp_exchange_raw(addr, q, wait).await?).ok()
}

/// `name qtype` over UDP to `addr` (see [`query_rd`], [`udp_exchange`]).
pub async fn ask(
    addr: SocketAddr,
    name: &str,
    qtype: RecordType,
    rd: bool,
    wait: Duration,
) -> Option<Message> {
    udp_exchange(addr, &query_rd(name, qtype, rd), wait).await
}

/// Pause between two asks of [`poll_answer`] (a refused port answers at once).
pub const ASK_POLL: Duration = Duration::from_millis(20);
/// One ask's wait for its answer in [`poll_answer`].
pub const ASK_POLL_WAIT: Duration = Duration::from_millis(300);

/// Polls `addr` with `name qtype` (RD as given) until `done` holds for an answer: that
/// answer, or after `limit` the last one seen (if any); panics when a
/// process of `procs` exits.
pub async fn poll_answer(
    addr: SocketAddr,
    (name, qtype, rd): (&str, RecordType, bool),
    limit: Duration,
    procs: &mut [&mut Proc],
    done: impl Fn(&Message) -> bool,
) -> Result<Message, Option<Message>> {
    let mut last = None;
    let found = poll_until_async(limit, ASK_POLL, async || {
        for p in procs.iter_mut() {
            p.assert_running();
        }
        let m = ask(addr, name, qtype, rd, ASK_POLL_WAIT).await?;
        if done(&m) {
            return Some(m);
        }
        last = Some(m);
        None
    })
    .await;
    found.ok_or(last)
}

/// [`poll_answer`], panicking after `limit`.
pub async fn wait_for(
    addr: SocketAddr,
    name: &str,
    qtype: RecordType,
    rd: bool,
    limit: Duration,
    procs: &mut [&mut Proc],
    done: impl Fn(&Message) -> bool,
) -> Message {
    poll_answer(addr, (name, qtype, rd), limit, procs, done)
        .await
        .unwrap_or_else(|last| {
            panic!(
                "{addr}: no satisfying answer to {name} {qtype} within {limit:?}; last: {}",
                last.as_ref().map_or("none".into(), show)
            )
        })
}

/// A UDP socket on 127.0.0.1 with a 16 MiB receive buffer: a client whose
/// own queue holds every answer of a flood. Needs a running tokio runtime.
pub fn roomy_udp_socket() -> UdpSocket {
    let raw = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    raw.set_recv_buffer_size(16 << 20).unwrap();
    raw.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    raw.set_nonblocking(true).unwrap();
    UdpSocket::from_std(raw.into()).unwrap()
}

/// [`wait_for`] `zone SOA`, RD=0: the first answer `done` accepts.
pub async fn wait_soa(
    addr: SocketAddr,
    zone: &str,
    limit: Duration,
    procs: &mut [&mut Proc],
    done: impl Fn(&Message) -> bool,
) -> Message {
    wait_for(addr, zone, RecordType::SOA, false, limit, procs, done).await
}

/// How a probe is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Via {
    Udp,
    Tcp,
}

/// [`udp`] or [`tcp`], as `via` says: the answer, decoded (panics without one).
pub async fn ask_via(addr: SocketAddr, m: &Message, via: Via) -> Message {
    match via {
        Via::Udp => udp(addr, m).await,
        Via::Tcp => tcp(addr, m).await,
    }
}

/// Sends `bytes` and returns the raw answer, or an error text.
pub async fn send(addr: SocketAddr, bytes: &[u8], via: Via) -> Result<Message, String> {
    let raw = match via {
        Via::Udp => udp_raw(addr, bytes).await,
        Via::Tcp => {
            let mut s = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("tcp connect: {e}"))?;
            tcp_send(&mut s, bytes).await;
            tcp_recv(&mut s).await
        }
    };
    let raw = raw.ok_or_else(|| format!("no answer within {:?}", ANSWER_WAIT))?;
    Message::from_vec(&raw).map_err(|e| format!("undecodable answer: {e}"))
}

/// A client query with this ID, RD bit and (optionally) an OPT of 1232 bytes.
pub fn wire_query(name: &str, qtype: RecordType, id: u16, rd: bool, edns: bool) -> Vec<u8> {
    let mut m = query(name, qtype, edns.then_some(1232));
    m.metadata.id = id;
    m.metadata.recursion_desired = rd;
    m.to_vec().unwrap()
}

/// Offset just past the (uncompressed) question section of `raw`, if it is
/// whole (compare [`super::fakes::question_end`], which trusts its input).
pub fn checked_question_end(raw: &[u8]) -> Option<usize> {
    let mut i = 12;
    loop {
        let len = usize::from(*raw.get(i)?);
        if len == 0 {
            i += 1;
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        i += 1 + len;
    }
    Some(i + 4).filter(|&end| end <= raw.len())
}

/// The ID of a raw message.
pub fn id_of(raw: &[u8]) -> u16 {
    u16::from_be_bytes([raw[0], raw[1]])
}

/// Sends `q` over UDP from a fresh socket; the raw answer, decoded, and how long it took.
pub async fn exchange(addr: SocketAddr, q: &[u8]) -> (Vec<u8>, Message, Duration) {
    let t = Instant::now();
    let raw = udp_raw(addr, q).await.expect("an answer over udp");
    let took = t.elapsed();
    let m = Message::from_vec(&raw).expect("a decodable answer");
    (raw, m, took)
}

/// QR=1, the client's ID, one question, echoed byte for byte (case included).
pub fn assert_echo(q: &[u8], resp: &[u8]) {
    assert!(resp.len() >= 12, "a whole header");
    assert_eq!(id_of(resp), id_of(q), "client ID restored");
    assert_ne!(resp[2] & 0x80, 0, "QR=1");
    assert_eq!(u16::from_be_bytes([resp[4], resp[5]]), 1, "QDCOUNT=1");
    let end = checked_question_end(q).unwrap();
    assert_eq!(
        resp.get(12..end),
        Some(&q[12..end]),
        "question echoed byte for byte"
    );
}

/// `s` with the letters whose bit is set in `mask` upper-cased (0x20).
pub fn case_mix(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Reads from `s` until EOF or error; `true` if the peer closed (not a timeout).
pub async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 512];
    let fut = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(wait, fut).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram reaching the client's port from anyone but the server
    /// asked (here before the server's answer) is not taken for the answer.
    #[tokio::test]
    async fn the_answer_is_the_datagram_from_the_server_asked_not_a_stray_one() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let q = query("example.com.", RecordType::SOA, None)
            .to_vec()
            .unwrap();
        let serve = async {
            let mut buf = vec![0u8; 512];
            let (n, client) = server.recv_from(&mut buf).await.unwrap();
            // What a stopped TS's port still gets: an LS's query (no record).
            let stray = query("example.com.", RecordType::SOA, None);
            let stray = stray.to_vec().unwrap();
            stranger.send_to(&stray, client).await.unwrap();
            let mut answer = buf[..n].to_vec();
            answer[2] |= 0x80;
            server.send_to(&answer, client).await.unwrap();
            answer
        };
        let (got, answer) = tokio::join!(udp_raw(addr, &q), serve);
        assert_eq!(got, Some(answer));
    }
}
