//! One name's lookup over the wire: a connected UDP socket per try, the
//! answer checked against the query (RFC 5452), TCP after TC=1, and the
//! outcome read from the answer (the A records at the end of the CNAME chain).
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use super::options::AddressType;
use super::outcome::Outcome;
use crate::dns::UDP_PAYLOAD_MAX;

/// Largest DNS message; the receive buffer size.
const MAX_MESSAGE: usize = 65_535;

/// The result of looking up one name.
#[derive(Debug)]
pub(super) enum Lookup {
    /// The outcome, and whether the server answered at all (a timeout or a local
    /// failure on every try is not an answer).
    Done { outcome: Outcome, answered: bool },
    /// The UDP query was refused (ICMP port unreachable).
    Refused,
}

impl Lookup {
    pub(super) fn answered(&self) -> bool {
        matches!(self, Lookup::Done { answered: true, .. })
    }

    pub(super) fn into_outcome(self) -> Outcome {
        match self {
            Lookup::Done { outcome, .. } => outcome,
            Lookup::Refused => Outcome::Failed("connection refused".into()),
        }
    }
}

/// What one exchange with the server gave.
#[derive(Debug)]
enum Attempt {
    /// A matching answer.
    Answer(Message),
    /// A matching answer with TC=1 (UDP only).
    Truncated,
    TimedOut,
    /// ICMP port unreachable on the UDP socket.
    Refused,
    Failed(String),
}

/// The per-lookup settings, copied into every task.
#[derive(Debug, Clone, Copy)]
pub(super) struct Client {
    pub(super) server: SocketAddr,
    pub(super) timeout: Duration,
    pub(super) tries: u32,
    /// A or AAAA.
    pub(super) qtype: AddressType,
}

impl Client {
    /// Asks for `name`'s A (or AAAA) records: UDP, TCP on TC=1, a new try on timeout.
    pub(super) async fn lookup(self, name: &Name) -> Lookup {
        let question = Query::query(name.clone(), self.qtype.record_type());
        let done = |outcome, answered| Lookup::Done { outcome, answered };
        // Whether any try got an answer (a TC=1 one whose TCP retry then failed).
        let mut heard = false;
        for _ in 0..self.tries {
            let id: u16 = rand::random();
            let bytes = match encode_query(id, &question) {
                Ok(bytes) => bytes,
                Err(e) => return done(Outcome::Failed(format!("cannot encode: {e}")), false),
            };
            // A TC=1 answer over UDP is an answer, whatever TCP then gives.
            let attempt = match self.udp(&bytes, id, &question).await {
                Attempt::Truncated => {
                    heard = true;
                    self.tcp(&bytes, id, &question).await
                }
                other => other,
            };
            match attempt {
                Attempt::Answer(msg) => return done(outcome_of(&msg, name, self.qtype), true),
                Attempt::TimedOut => continue,
                Attempt::Refused => return Lookup::Refused,
                Attempt::Failed(why) => return done(Outcome::Failed(why), heard),
                Attempt::Truncated => {
                    return done(Outcome::Failed("truncated answer over TCP".into()), true);
                }
            }
        }
        done(Outcome::TimedOut, heard)
    }

    /// One query over a fresh connected UDP socket; waits up to the timeout for a
    /// matching answer, ignoring any other datagram.
    async fn udp(self, bytes: &[u8], id: u16, question: &Query) -> Attempt {
        let local: SocketAddr = if self.server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = match UdpSocket::bind(local).await {
            Ok(s) => s,
            Err(e) => return Attempt::Failed(format!("cannot open a UDP socket: {e}")),
        };
        // Connected: the kernel only delivers datagrams from the server's address.
        if let Err(e) = sock.connect(self.server).await {
            return udp_error(&e);
        }
        if let Err(e) = sock.send(bytes).await {
            return udp_error(&e);
        }
        let deadline = Instant::now() + self.timeout;
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => return Attempt::TimedOut,
                Ok(Err(e)) => return udp_error(&e),
                Ok(Ok(n)) => n,
            };
            let Some(msg) = buf.get(..n).and_then(|b| Message::from_vec(b).ok()) else {
                tracing::debug!(server = %self.server, "ignored an undecodable datagram");
                continue;
            };
            if !answers(&msg, id, question) {
                tracing::debug!(server = %self.server, "ignored an answer to another query");
                continue;
            }
            return if msg.metadata.truncation {
                Attempt::Truncated
            } else {
                Attempt::Answer(msg)
            };
        }
    }

    /// One query over a new TCP connection (RFC 7766 framing), within the timeout.
    async fn tcp(self, bytes: &[u8], id: u16, question: &Query) -> Attempt {
        let Ok(len) = u16::try_from(bytes.len()) else {
            return Attempt::Failed("query too long for TCP".into());
        };
        let exchange = async {
            let mut stream = TcpStream::connect(self.server).await?;
            let mut framed = Vec::with_capacity(bytes.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(bytes);
            stream.write_all(&framed).await?;
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await?;
            let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut answer).await?;
            Ok::<_, io::Error>(answer)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Attempt::TimedOut,
            Ok(Err(e)) => Attempt::Failed(format!("TCP retry after a truncated answer: {e}")),
            Ok(Ok(answer)) => match Message::from_vec(&answer) {
                Ok(msg) if answers(&msg, id, question) => Attempt::Answer(msg),
                Ok(_) => Attempt::Failed("answer over TCP to another query".into()),
                Err(e) => Attempt::Failed(format!("undecodable answer over TCP: {e}")),
            },
        }
    }
}

/// Maps a UDP socket error: `ECONNREFUSED` means nothing listens there.
fn udp_error(e: &io::Error) -> Attempt {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        Attempt::Refused
    } else {
        Attempt::Failed(format!("UDP: {e}"))
    }
}

/// The wire form of a recursive A query with ID `id` and EDNS(0).
fn encode_query(id: u16, question: &Query) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(question.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD_MAX);
    msg.set_edns(edns);
    msg.to_vec()
}

/// Whether `msg` is the response to our query `id` for `question` (RFC 5452 §9.1):
/// its question echoed, or none for an error a server gives a query it could not
/// read or will not answer (FORMERR, SERVFAIL, NOTIMP, REFUSED without a question,
/// as NSD and dnslb's own TS answer; the LS accepts them the same way).
fn answers(msg: &Message, id: u16, question: &Query) -> bool {
    let error_without_question = msg.queries.is_empty()
        && matches!(
            msg.metadata.response_code,
            ResponseCode::FormErr
                | ResponseCode::ServFail
                | ResponseCode::NotImp
                | ResponseCode::Refused
        );
    msg.metadata.id == id
        && msg.metadata.message_type == MessageType::Response
        && msg.metadata.op_code == OpCode::Query
        && (error_without_question
            || matches!(msg.queries.as_slice(), [q] if q.name() == question.name()
            && q.query_type() == question.query_type()
            && q.query_class() == question.query_class()))
}

/// The outcome an answer gives for `qname`: the A (or AAAA, `qtype`) records at
/// the end of the CNAME chain that starts at `qname`, in answer order.
fn outcome_of(msg: &Message, qname: &Name, qtype: AddressType) -> Outcome {
    match msg.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Outcome::NotFound,
        other => return Outcome::Failed(rcode_mnemonic(other)),
    }
    let mut owners = vec![qname];
    // Each step adds one CNAME target; the bound stops loops.
    for _ in 0..msg.answers.len() {
        let Some(last) = owners.last().copied() else {
            break;
        };
        let next = msg.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if &r.name == last => Some(&target.0),
            _ => None,
        });
        match next {
            Some(target) if !owners.contains(&target) => owners.push(target),
            _ => break,
        }
    }
    let addrs: Vec<IpAddr> = msg
        .answers
        .iter()
        .filter(|r| r.dns_class == DNSClass::IN && owners.contains(&&r.name))
        .filter_map(|r| match (&r.data, qtype) {
            (RData::A(a), AddressType::A) => Some(IpAddr::V4(a.0)),
            (RData::AAAA(a), AddressType::Aaaa) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    if addrs.is_empty() {
        Outcome::NotFound
    } else {
        Outcome::Addresses(addrs)
    }
}

/// The conventional upper-case name of an rcode (`SERVFAIL`), or `RCODE<n>`.
fn rcode_mnemonic(code: ResponseCode) -> String {
    let n = u16::from(code);
    crate::dns::rcode_mnemonic(n).map_or_else(|| format!("RCODE{n}"), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Record;
    use hickory_proto::rr::RecordType;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME};

    use crate::dns::fixtures::name;

    fn response(rcode: ResponseCode, answers: Vec<Record>) -> Message {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.add_query(Query::query(name("www.example.com."), RecordType::A));
        m.add_answers(answers);
        m
    }

    fn a(owner: &str, ip: [u8; 4]) -> Record {
        Record::from_rdata(name(owner), 300, RData::A(A(Ipv4Addr::from(ip))))
    }

    fn cname(owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), 300, RData::CNAME(CNAME(name(target))))
    }

    #[test]
    fn outcome_follows_the_cname_chain() {
        let m = response(
            ResponseCode::NoError,
            vec![
                cname("www.example.com.", "Mid.Example.com."),
                cname("mid.example.com.", "end.example.net."),
                a("unrelated.example.", [10, 0, 0, 1]),
                a("end.example.net.", [192, 0, 2, 7]),
                a("END.example.net.", [192, 0, 2, 8]),
            ],
        );
        assert_eq!(
            outcome_of(&m, &name("WWW.example.com."), AddressType::A),
            Outcome::Addresses(vec![[192, 0, 2, 7].into(), [192, 0, 2, 8].into()])
        );
    }

    #[test]
    fn cname_loops_end() {
        let m = response(
            ResponseCode::NoError,
            vec![
                cname("www.example.com.", "b.example."),
                cname("b.example.", "www.example.com."),
            ],
        );
        assert_eq!(
            outcome_of(&m, &name("www.example.com."), AddressType::A),
            Outcome::NotFound
        );
    }

    #[test]
    fn rcodes_map_to_outcomes() {
        let q = name("www.example.com.");
        assert_eq!(
            outcome_of(
                &response(ResponseCode::NXDomain, vec![]),
                &q,
                AddressType::A
            ),
            Outcome::NotFound
        );
        let nodata = Record::from_rdata(
            name("www.example.com."),
            300,
            RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
        );
        assert_eq!(
            outcome_of(
                &response(ResponseCode::NoError, vec![nodata]),
                &q,
                AddressType::A
            ),
            Outcome::NotFound
        );
        assert_eq!(
            outcome_of(
                &response(ResponseCode::ServFail, vec![]),
                &q,
                AddressType::A
            ),
            Outcome::Failed("SERVFAIL".into())
        );
        assert_eq!(
            outcome_of(&response(ResponseCode::Refused, vec![]), &q, AddressType::A),
            Outcome::Failed("REFUSED".into())
        );
        assert_eq!(rcode_mnemonic(ResponseCode::Unknown(12)), "RCODE12");
    }

    #[test]
    fn only_the_matching_response_is_accepted() {
        let question = Query::query(name("www.example.com."), RecordType::A);
        let ok = response(ResponseCode::NoError, vec![]);
        assert!(answers(&ok, 7, &question));
        assert!(!answers(&ok, 8, &question));
        let upper = Query::query(name("WWW.EXAMPLE.COM."), RecordType::A);
        assert!(answers(&ok, 7, &upper));
        let other = Query::query(name("www.example.org."), RecordType::A);
        assert!(!answers(&ok, 7, &other));
        let aaaa = Query::query(name("www.example.com."), RecordType::AAAA);
        assert!(!answers(&ok, 7, &aaaa));
        let mut query = ok.clone();
        query.metadata.message_type = MessageType::Query;
        assert!(!answers(&query, 7, &question));
        let mut empty = ok;
        empty.queries.clear();
        assert!(!answers(&empty, 7, &question));
    }

    #[test]
    fn query_is_recursive_with_edns() {
        let question = Query::query(name("Www.Example.com."), RecordType::A);
        let msg = Message::from_vec(&encode_query(4242, &question).unwrap()).unwrap();
        assert_eq!(msg.metadata.id, 4242);
        assert!(msg.metadata.recursion_desired);
        assert_eq!(msg.queries, vec![question]);
        assert!(msg.edns.is_some());
    }
}
