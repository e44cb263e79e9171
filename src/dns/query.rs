//! Reading a client's query: [`decode_query`] never panics and turns every
//! problem into a [`Reject`], which [`Reject::response`] maps to the one
//! protocol outcome docs/CONFIG.md (the TS) asks for (drop, FORMERR, NOTIMP, BADVERS); the
//! header and OPT of an answer to it ([`response_metadata`],
//! [`response_edns`], [`add_ede`]).
use hickory_proto::op::{Edns, Header, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::limits::{TCP_PAYLOAD_MAX, Transport, UDP_PAYLOAD_MAX, UDP_PAYLOAD_PLAIN};
use super::writer::ResponseWriter;

/// A client query whose header, question and EDNS were read successfully.
#[derive(Debug, Clone)]
pub struct ClientQuery {
    /// The header as sent.
    pub header: Header,
    /// The one question, name case preserved as sent.
    pub query: Query,
    /// The client's OPT, if any.
    pub edns: Option<Edns>,
    /// Byte offset just past the question section.
    pub question_end: usize,
}

impl ClientQuery {
    /// The largest answer this client can take over `transport`.
    pub fn max_size(&self, transport: Transport) -> u16 {
        match transport {
            Transport::Tcp => TCP_PAYLOAD_MAX,
            Transport::Udp => match &self.edns {
                Some(e) => e.max_payload().clamp(UDP_PAYLOAD_PLAIN, UDP_PAYLOAD_MAX),
                None => UDP_PAYLOAD_PLAIN,
            },
        }
    }

    /// A response header for this query: ID, opcode, RD and CD copied (see
    /// [`response_metadata`]).
    pub fn response_metadata(&self, rcode: ResponseCode) -> Metadata {
        response_metadata(&self.header.metadata, rcode)
    }
}

/// The header of a response to a request whose header is `req`: QR=1, the
/// ID and opcode copied, AA, TC, RA, Z and AD clear. RD and CD are copied for
/// the opcodes this product answers (QUERY, where RFC 1035 and RFC 4035
/// define them, and NOTIFY, refused with its header mirrored); for any other
/// opcode they mean nothing, the answer is NOTIMP, and they are clear too.
pub fn response_metadata(req: &Metadata, rcode: ResponseCode) -> Metadata {
    let mut m = Metadata::response_from_request(req);
    m.response_code = rcode;
    if !matches!(req.op_code, OpCode::Query | OpCode::Notify) {
        m.recursion_desired = false;
        m.checking_disabled = false;
    }
    m
}

/// Why a packet is not a query to answer normally, and what to do instead.
#[derive(Debug, Clone)]
pub enum Reject {
    /// Say nothing: unreadable header, or a response (QR=1; answering it
    /// would make us a reflector).
    Drop,
    /// Answer with an error rcode.
    Rcode(Box<ErrorAnswer>),
}

/// An error answer to a query that could not be served normally.
#[derive(Debug, Clone)]
pub struct ErrorAnswer {
    /// The client's header.
    pub header: Header,
    /// The question, echoed when it could be read.
    pub query: Option<Query>,
    /// The client's OPT, if it was readable.
    pub edns: Option<Edns>,
    /// The rcode to answer with.
    pub rcode: ResponseCode,
}

impl Reject {
    /// The bytes to send for this rejection, or `None` to drop.
    pub fn response(&self) -> Option<Vec<u8>> {
        match self {
            Reject::Drop => None,
            Reject::Rcode(e) => {
                let m = response_metadata(&e.header.metadata, e.rcode);
                let edns = e.edns.as_ref().map(|_| response_edns(None));
                let mut w = ResponseWriter::new(m, e.query.as_ref(), edns.as_ref());
                Some(w.finish(TCP_PAYLOAD_MAX))
            }
        }
    }
}

/// Reads the header, the single question and the OPT of a query.
///
/// # Errors
/// A [`Reject`] saying how to answer a packet that is not a well-formed query:
/// dropped when the header is unreadable or QR=1, NOTIMP for an opcode other
/// than QUERY and NOTIFY, FORMERR for QDCOUNT != 1 or an unreadable body,
/// BADVERS for EDNS version > 0.
pub fn decode_query(raw: &[u8]) -> Result<ClientQuery, Reject> {
    let mut dec = BinDecoder::new(raw);
    let header = Header::read(&mut dec).map_err(|_| Reject::Drop)?;
    if header.metadata.message_type == MessageType::Response {
        return Err(Reject::Drop);
    }
    let rcode = |rcode, query: Option<Query>, edns: Option<Edns>| {
        Reject::Rcode(Box::new(ErrorAnswer {
            header,
            query,
            edns,
            rcode,
        }))
    };
    let supported = matches!(header.metadata.op_code, OpCode::Query | OpCode::Notify);
    if !supported || header.counts.queries != 1 {
        // Echo the question only when there is exactly one, and the OPT
        // whenever the rest of the message can be read (RFC 6891 §7).
        let mut questions = Vec::new();
        for _ in 0..header.counts.queries {
            match Query::read(&mut dec) {
                Ok(q) => questions.push(q),
                Err(_) => break,
            }
        }
        let edns = if questions.len() == usize::from(header.counts.queries) {
            read_edns(&mut dec, &header).ok().flatten()
        } else {
            None
        };
        let query = if questions.len() == 1 {
            questions.pop()
        } else {
            None
        };
        let (code, query) = if supported {
            (ResponseCode::FormErr, None)
        } else {
            (ResponseCode::NotImp, query)
        };
        return Err(rcode(code, query, edns));
    }
    let query = Query::read(&mut dec).map_err(|_| rcode(ResponseCode::FormErr, None, None))?;
    let question_end = dec.index();
    let edns = read_edns(&mut dec, &header)
        .map_err(|_| rcode(ResponseCode::FormErr, Some(query.clone()), None))?;
    if let Some(e) = &edns
        && e.version() > 0
    {
        return Err(rcode(ResponseCode::BADVERS, Some(query), edns));
    }
    Ok(ClientQuery {
        header,
        query,
        edns,
        question_end,
    })
}

/// Skips the answer and authority sections and finds the OPT in the additional one.
fn read_edns(dec: &mut BinDecoder<'_>, header: &Header) -> Result<Option<Edns>, ()> {
    let c = header.counts;
    let mut edns = None;
    let total = usize::from(c.answers) + usize::from(c.authorities);
    for _ in 0..total {
        Record::read(dec).map_err(|_| ())?;
    }
    for _ in 0..c.additionals {
        let rec = Record::read(dec).map_err(|_| ())?;
        if rec.record_type() == RecordType::OPT {
            if edns.is_some() || !rec.name.is_root() {
                return Err(()); // RFC 6891 §6.1.1: one OPT, owned by the root
            }
            edns = Some(Edns::from(&rec));
        }
    }
    Ok(edns)
}

/// The OPT this product puts in its answers: our payload size, version 0,
/// the client's DO bit copied, plus an optional Extended DNS Error.
pub fn response_edns(client: Option<&Edns>) -> Edns {
    let mut e = Edns::new();
    e.set_max_payload(UDP_PAYLOAD_MAX);
    e.set_version(0);
    if let Some(c) = client {
        e.set_dnssec_ok(c.flags().dnssec_ok);
    }
    e
}

/// Adds an Extended DNS Error (RFC 8914) option to `edns`.
pub fn add_ede(edns: &mut Edns, info_code: u16, text: &str) {
    let mut data = info_code.to_be_bytes().to_vec();
    data.extend_from_slice(text.as_bytes());
    edns.options_mut()
        .insert(EdnsOption::Unknown(u16::from(EdnsCode::Unknown(15)), data));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::fixtures::query_bytes;
    use crate::dns::synth::error_for;
    use hickory_proto::op::Message;
    use hickory_proto::rr::Name;

    #[test]
    fn decodes_a_plain_query_and_keeps_case() {
        let raw = query_bytes("WwW.ExAmple.COM.", RecordType::A, None);
        let q = decode_query(&raw).unwrap();
        assert_eq!(q.query.name().to_ascii(), "WwW.ExAmple.COM.");
        assert_eq!(q.question_end, raw.len());
        assert!(q.edns.is_none());
        assert_eq!(q.max_size(Transport::Udp), 512);
    }

    #[test]
    fn edns_size_is_clamped() {
        let raw = query_bytes("a.", RecordType::A, Some(4096));
        let q = decode_query(&raw).unwrap();
        assert_eq!(q.max_size(Transport::Udp), UDP_PAYLOAD_MAX);
        let raw = query_bytes("a.", RecordType::A, Some(100));
        assert_eq!(decode_query(&raw).unwrap().max_size(Transport::Udp), 512);
    }

    #[test]
    fn short_and_response_packets_are_dropped() {
        assert!(matches!(decode_query(&[1]), Err(Reject::Drop)));
        assert!(matches!(decode_query(&[0; 11]), Err(Reject::Drop)));
        let mut raw = query_bytes("a.", RecordType::A, None);
        raw[2] |= 0x80;
        assert!(matches!(decode_query(&raw), Err(Reject::Drop)));
    }

    #[test]
    fn qdcount_two_is_formerr_with_no_question() {
        let mut raw = query_bytes("a.", RecordType::A, None);
        raw[5] = 2;
        let resp = error_for(&raw, ResponseCode::NoError).unwrap();
        let m = Message::from_vec(&resp).unwrap();
        assert_eq!(m.response_code, ResponseCode::FormErr);
        assert!(m.queries.is_empty());
    }

    #[test]
    fn notimp_clears_the_flags_only_queries_define() {
        let mut raw = query_bytes("a.example.", RecordType::A, Some(1232));
        // Opcode 15 with AA, TC, RD, RA, Z, AD and CD all set.
        raw[2] = (15 << 3) | 0x07;
        raw[3] = 0xf0;
        let resp = error_for(&raw, ResponseCode::NoError).unwrap();
        assert_eq!(&resp[..2], &raw[..2], "ID kept");
        assert_eq!(resp[2], 0x80 | (15 << 3), "QR, the opcode, and no AA/TC/RD");
        assert_eq!(resp[3], 4, "NOTIMP, and no RA/Z/AD/CD");
        let m = Message::from_vec(&resp).unwrap();
        assert_eq!(m.queries.len(), 1, "question echoed");
        assert!(m.edns.is_some(), "OPT for an OPT");
    }

    #[test]
    fn answers_to_queries_and_notify_copy_rd_and_cd() {
        for (opcode, qdcount, rcode) in [(0u8, 2u8, 1u8), (0, 1, 5), (4, 1, 5)] {
            let mut raw = query_bytes("a.example.", RecordType::A, None);
            raw[2] = (opcode << 3) | 0x07;
            raw[3] = 0xf0;
            raw[5] = qdcount;
            let resp = error_for(&raw, ResponseCode::Refused).unwrap();
            let ctx = format!("opcode {opcode}, qdcount {qdcount}");
            assert_eq!(resp[2], 0x80 | (opcode << 3) | 0x01, "{ctx}: RD only");
            assert_eq!(resp[3], 0x10 | rcode, "{ctx}: CD only");
        }
    }

    #[test]
    fn badvers_carries_extended_rcode_in_opt() {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii("a.").unwrap(), RecordType::A));
        let mut e = Edns::new();
        e.set_version(1);
        m.set_edns(e);
        let raw = m.to_vec().unwrap();
        let resp = error_for(&raw, ResponseCode::NoError).unwrap();
        let r = Message::from_vec(&resp).unwrap();
        // BADVERS and BADSIG share code 16; hickory decodes it as BADSIG.
        assert_eq!(u16::from(r.response_code), 16);
        assert_eq!(r.edns.as_ref().unwrap().version(), 0);
    }
}
