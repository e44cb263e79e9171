//! DNS wire-format helpers shared by the LS and the TS, on top of hickory-proto.
//!
//! Everything here treats its input as hostile: [`decode_query`] never panics,
//! and turns every problem into a [`Reject`], which [`Reject::response`] maps to
//! the one protocol outcome SPEC §4 asks for (drop, FORMERR, NOTIMP, ...).
//! [`ResponseWriter`] encodes answers straight from borrowed records, so a
//! server can answer from its tables without cloning them. NSID (RFC 5001)
//! on raw messages lives in the `nsid` submodule: [`nsid_for_client`] is the
//! LS's step on every answer it passes on.
use hickory_proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

mod nsid;
pub use nsid::{
    LS_NSID_PREFIX, NSID_OPTION, NsidEdit, add_nsid, client_max_size, nsid_for_client,
    query_wants_nsid,
};

/// Largest UDP payload this product sends, whatever a client advertises
/// (the DNS Flag Day 2020 value, also NSD's and Knot's default).
pub const UDP_PAYLOAD_MAX: u16 = 1232;
/// UDP payload for a client without EDNS (RFC 1035).
pub const UDP_PAYLOAD_PLAIN: u16 = 512;
/// Largest DNS message (TCP).
pub const TCP_PAYLOAD_MAX: u16 = u16::MAX;
/// Length of the fixed DNS header.
pub const HEADER_LEN: usize = 12;

/// How a query arrived; decides the size limit of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Datagram: answers are limited by EDNS and truncated with TC=1.
    Udp,
    /// Stream (RFC 7766): answers up to 64 KiB.
    Tcp,
}

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

/// One resource record to write: borrowed owner, TTL and data (class IN).
#[derive(Debug, Clone, Copy)]
pub struct Rr<'a> {
    /// Owner name (written with compression against earlier names).
    pub name: &'a Name,
    /// TTL in seconds.
    pub ttl: u32,
    /// The record data.
    pub data: &'a RData,
}

/// Builds one response message section by section.
///
/// Records are pushed into answer, authority and additional in that order;
/// [`ResponseWriter::finish`] sets the counts and, when the message is larger
/// than the limit, returns the header, question and OPT alone with TC=1.
pub struct ResponseWriter<'q> {
    meta: Metadata,
    query: Option<&'q Query>,
    edns: Option<&'q Edns>,
    answer: Vec<Rr<'q>>,
    authority: Vec<Rr<'q>>,
    additional: Vec<Rr<'q>>,
}

impl<'q> ResponseWriter<'q> {
    /// A response with header `meta`, echoing `query` and carrying `edns`.
    pub fn new(meta: Metadata, query: Option<&'q Query>, edns: Option<&'q Edns>) -> Self {
        ResponseWriter {
            meta,
            query,
            edns,
            answer: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
        }
    }

    /// Appends to the answer section.
    pub fn answer(&mut self, rr: Rr<'q>) {
        self.answer.push(rr);
    }

    /// Appends to the authority section.
    pub fn authority(&mut self, rr: Rr<'q>) {
        self.authority.push(rr);
    }

    /// Appends to the additional section.
    pub fn additional(&mut self, rr: Rr<'q>) {
        self.additional.push(rr);
    }

    /// Encodes the message within `max_size` bytes, truncating with TC=1 if needed.
    pub fn finish(&mut self, max_size: u16) -> Vec<u8> {
        let mut buf = Vec::with_capacity(512);
        match self.encode(&mut buf, false) {
            Ok(()) if buf.len() <= usize::from(max_size) => buf,
            _ => {
                // Too big (or unencodable): TC=1 with the question and OPT only.
                buf.clear();
                if self.encode(&mut buf, true).is_err() {
                    buf.clear();
                    let mut m = self.meta;
                    m.response_code = ResponseCode::ServFail;
                    header_only(m, &mut buf);
                }
                buf
            }
        }
    }

    fn encode(&self, buf: &mut Vec<u8>, truncated: bool) -> Result<(), hickory_proto::ProtoError> {
        let mut enc = BinEncoder::new(buf);
        let mut meta = self.meta;
        let (an, ns, ar): (&[Rr<'_>], &[Rr<'_>], &[Rr<'_>]) = if truncated {
            meta.truncation = true;
            (&[], &[], &[])
        } else {
            (&self.answer, &self.authority, &self.additional)
        };
        let opt_count = u16::from(self.edns.is_some());
        let counts = HeaderCounts {
            queries: u16::from(self.query.is_some()),
            answers: count(an)?,
            authorities: count(ns)?,
            additionals: count(ar)?.saturating_add(opt_count),
        };
        Header {
            metadata: meta,
            counts,
        }
        .emit(&mut enc)?;
        if let Some(q) = self.query {
            q.emit(&mut enc)?;
        }
        for rr in an.iter().chain(ns).chain(ar) {
            emit_rr(&mut enc, rr)?;
        }
        if let Some(e) = self.edns {
            let mut e = e.clone();
            e.set_rcode_high(meta.response_code.high());
            Record::from(&e).emit(&mut enc)?;
        }
        Ok(())
    }
}

fn count(rrs: &[Rr<'_>]) -> Result<u16, hickory_proto::ProtoError> {
    u16::try_from(rrs.len()).map_err(|_| hickory_proto::ProtoError::from("too many records"))
}

fn header_only(meta: Metadata, buf: &mut Vec<u8>) {
    let mut enc = BinEncoder::new(buf);
    let h = Header {
        metadata: meta,
        counts: HeaderCounts::default(),
    };
    // A bare 12-byte header always encodes.
    let _ = h.emit(&mut enc);
}

/// Writes one record: owner (compressed), type, class IN, TTL, RDATA.
fn emit_rr(enc: &mut BinEncoder<'_>, rr: &Rr<'_>) -> Result<(), hickory_proto::ProtoError> {
    rr.name.emit(enc)?;
    rr.data.record_type().emit(enc)?;
    DNSClass::IN.emit(enc)?;
    enc.emit_u32(rr.ttl)?;
    let place = enc.place::<u16>()?;
    rr.data.emit(enc)?;
    let len = enc.len_since_place(&place);
    let len = u16::try_from(len).map_err(|_| hickory_proto::ProtoError::from("rdata too long"))?;
    place.replace(enc, len)?;
    Ok(())
}

/// The fixed 12-byte header of a raw message, read without decoding the rest
/// (the LS forwards messages it never fully decodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireHeader {
    /// Message ID.
    pub id: u16,
    /// The flags word: QR, opcode, AA, TC, RD, RA, Z, AD, CD, RCODE.
    pub flags: u16,
    /// Number of questions.
    pub qdcount: u16,
    /// Number of answer records.
    pub ancount: u16,
    /// Number of authority records.
    pub nscount: u16,
}

impl WireHeader {
    /// Reads the header, or `None` if the message is shorter than one.
    pub fn read(raw: &[u8]) -> Option<Self> {
        let b = raw.get(..HEADER_LEN)?;
        let word = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        Some(WireHeader {
            id: word(0),
            flags: word(2),
            qdcount: word(4),
            ancount: word(6),
            nscount: word(8),
        })
    }

    /// QR: this is a response.
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// AA: the answer is authoritative.
    pub fn authoritative(&self) -> bool {
        self.flags & 0x0400 != 0
    }

    /// TC: the message was truncated.
    pub fn truncated(&self) -> bool {
        self.flags & 0x0200 != 0
    }

    /// The low four bits of the rcode.
    pub fn rcode(&self) -> u8 {
        (self.flags & 0x000f) as u8
    }

    /// Writes `id` into the header of `raw` (no-op on a runt).
    pub fn set_id(raw: &mut [u8], id: u16) {
        if let Some(b) = raw.get_mut(..2) {
            b.copy_from_slice(&id.to_be_bytes());
        }
    }
}

/// The ID and the end of the question of a plain query, read without
/// decoding: `Some` only for QR=0, opcode QUERY, QDCOUNT=1 and a question
/// whose name is uncompressed and well formed. Anything else goes through
/// [`decode_query`], which decides how to reject it.
pub fn peek_plain_query(raw: &[u8]) -> Option<(u16, usize)> {
    let h = WireHeader::read(raw)?;
    // QR=0 and opcode 0 (QUERY), one question.
    if h.flags & 0xf800 != 0 || h.qdcount != 1 {
        return None;
    }
    let mut pos = HEADER_LEN;
    loop {
        let len = usize::from(*raw.get(pos)?);
        if len == 0 {
            pos += 1;
            break;
        }
        if len > 63 {
            return None; // a pointer or a reserved label type
        }
        pos += 1 + len;
        // The name's wire form, root byte included, is at most 255 bytes
        // (RFC 1035 §3.1): the labels so far leave room for the root.
        if pos - HEADER_LEN + 1 > NAME_MAX {
            return None;
        }
    }
    let end = pos + 4;
    (end <= raw.len()).then_some((h.id, end))
}

/// The longest name in wire form, root byte included (RFC 1035 §3.1).
pub const NAME_MAX: usize = 255;

/// Whether the upstream response `resp` (header `h`) answers the query
/// whose raw question section is `question`: QR set and either the same
/// question ([`same_question`]) or no question at all with an error rcode
/// (not NOERROR or NXDOMAIN). A server that cannot read a query — two OPT
/// records, a name too long — answers FORMERR or NOTIMP without echoing it,
/// as NSD and our own TS do; dnsdist accepts those too. The ID, source and
/// socket checks (RFC 5452) are the caller's and stay as strict.
pub fn answers_question(h: &WireHeader, resp: &[u8], question: &[u8]) -> bool {
    h.is_response()
        && match h.qdcount {
            1 => same_question(resp, question),
            0 => !matches!(h.rcode(), 0 | 3),
            _ => false,
        }
}

/// Whether a response says the query itself is at fault: FORMERR or
/// NOTIMP (the server could not read it, or does not do what it asks),
/// with or without the question echoed. Not final: another backend is
/// asked (one broken backend must not answer for all); when every backend
/// asked rejects the query, the rejection is passed on to the client (the
/// query was at fault). Never counted as the backend's failure.
pub fn rejects_query(h: &WireHeader) -> bool {
    h.is_response() && matches!(h.rcode(), 1 | 4)
}

/// Turns the start of an upstream response cut short by its receive slot
/// (it was longer than the slot) into a well-formed truncated answer: its
/// header and the `question_len` bytes of question after it, TC=1, no
/// records but an OPT (UDP size [`UDP_PAYLOAD_MAX`]): a truncated answer to
/// an EDNS query still carries one (RFC 6891 §7), and the one the backend
/// sent was cut off with the records; the reply path removes it again for
/// a client that sent no OPT. A UDP client gets it as is (an answer that
/// large never fits its size) and asks again over TCP; a TCP client's query
/// is asked again of the backend over TCP. `false` (and `resp` unchanged)
/// when even the question was cut.
pub fn cut_to_truncated(resp: &mut Vec<u8>, question_len: usize) -> bool {
    let Some(h) = WireHeader::read(resp) else {
        return false;
    };
    let end = match h.qdcount {
        0 => HEADER_LEN,
        1 => HEADER_LEN + question_len,
        _ => return false,
    };
    if resp.len() < end {
        return false;
    }
    resp.truncate(end);
    if let Some(flags) = resp.get_mut(2) {
        *flags |= 0x02; // TC
    }
    if let Some(counts) = resp.get_mut(6..HEADER_LEN) {
        counts.fill(0);
        counts[5] = 1; // ARCOUNT: the OPT
    }
    let [hi, lo] = UDP_PAYLOAD_MAX.to_be_bytes();
    // Root owner, type OPT, class = UDP size, extended rcode, version and
    // flags 0, no options.
    resp.extend_from_slice(&[0, 0, 41, hi, lo, 0, 0, 0, 0, 0, 0]);
    true
}

/// True when `resp` carries, right after its header, the question `question`
/// (the raw question section of the query): the name compared without regard
/// to ASCII case, type and class exactly.
pub fn same_question(resp: &[u8], question: &[u8]) -> bool {
    let Some(theirs) = resp.get(HEADER_LEN..HEADER_LEN + question.len()) else {
        return false;
    };
    let split = question.len().saturating_sub(4);
    let (qn, qt) = question.split_at(split);
    let (tn, tt) = theirs.split_at(split);
    qn.eq_ignore_ascii_case(tn) && qt == tt
}

/// The conventional upper-case name of an rcode (`SERVFAIL`), if it has one.
pub fn rcode_mnemonic(code: u16) -> Option<&'static str> {
    Some(match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS",
        23 => "BADCOOKIE",
        _ => return None,
    })
}

/// Extended DNS Error "No Reachable Authority" (RFC 8914 §4.23).
pub const EDE_NO_REACHABLE_AUTHORITY: u16 = 22;

/// The answer the LS makes up when no backend gave a final one: the client's
/// ID and question, QR=1, RD copied, RA=0, AA=0, a root SOA whose negative
/// TTL is `synth_ttl` (RFC 2308), and, when the query had an OPT, an OPT with
/// an Extended DNS Error (code 22) whose text says what happened. It is
/// sized for the client's `transport` like any other answer.
pub fn synthesized(
    q: &ClientQuery,
    transport: Transport,
    rcode: ResponseCode,
    synth_ttl: u32,
    ede_text: &str,
) -> Vec<u8> {
    let mut meta = q.response_metadata(rcode);
    // RA=0 as the backends answer: a resolver in front takes a server that
    // says RA=1 without AA for a lame recursive one.
    meta.recursion_available = false;
    meta.authoritative = false;
    let soa = synth_soa(synth_ttl);
    let root = Name::root();
    let edns = q.edns.as_ref().map(|e| {
        let mut r = response_edns(Some(e));
        let text: String = ede_text.chars().take(EDE_TEXT_MAX).collect();
        add_ede(&mut r, EDE_NO_REACHABLE_AUTHORITY, &text);
        r
    });
    let mut w = ResponseWriter::new(meta, Some(&q.query), edns.as_ref());
    w.authority(Rr {
        name: &root,
        ttl: synth_ttl,
        data: &soa,
    });
    w.finish(q.max_size(transport))
}

/// Longest EDE text put in a synthesized answer.
const EDE_TEXT_MAX: usize = 200;

fn synth_soa(ttl: u32) -> RData {
    let name = |s: &str| Name::from_ascii(s).unwrap_or_else(|_| Name::root());
    RData::SOA(hickory_proto::rr::rdata::SOA::new(
        name("lb.dnslb.invalid."),
        name("hostmaster.dnslb.invalid."),
        0,
        3600,
        600,
        86400,
        ttl,
    ))
}

/// An empty TC=1 answer to `q` (question and OPT only): "ask again over TCP".
pub fn truncated_for(q: &ClientQuery) -> Vec<u8> {
    let mut meta = q.response_metadata(ResponseCode::NoError);
    meta.truncation = true;
    let edns = q.edns.as_ref().map(|e| response_edns(Some(e)));
    ResponseWriter::new(meta, Some(&q.query), edns.as_ref()).finish(TCP_PAYLOAD_MAX)
}

/// Upper bound of the wire size of `rr` (uncompressed).
pub fn rr_len(rr: &Rr<'_>) -> usize {
    let mut scratch = Vec::with_capacity(64);
    let mut enc = BinEncoder::new(&mut scratch);
    // An RDATA that cannot encode is counted as the largest possible.
    let rdata = match rr.data.emit(&mut enc) {
        Ok(()) => scratch.len(),
        Err(_) => usize::from(u16::MAX),
    };
    rr.name.len() + 2 + 10 + rdata
}

/// A SERVFAIL for whatever can be read of `raw`, or `None` when nothing can
/// (used when a server is over its in-flight bound).
pub fn servfail_for(raw: &[u8]) -> Option<Vec<u8>> {
    error_for(raw, ResponseCode::ServFail)
}

/// An answer with `rcode` for the query in `raw`, echoing its question and
/// OPT, or the rejection the packet itself calls for.
pub fn error_for(raw: &[u8], rcode: ResponseCode) -> Option<Vec<u8>> {
    match decode_query(raw) {
        Ok(q) => Some(rcode_answer(&q, rcode)),
        Err(r) => r.response(),
    }
}

/// An answer with `rcode` and no records to a query already decoded,
/// echoing its question and OPT.
pub fn rcode_answer(q: &ClientQuery, rcode: ResponseCode) -> Vec<u8> {
    let meta = q.response_metadata(rcode);
    let edns = q.edns.as_ref().map(|e| response_edns(Some(e)));
    ResponseWriter::new(meta, Some(&q.query), edns.as_ref()).finish(TCP_PAYLOAD_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Message;
    use hickory_proto::rr::rdata::A;

    fn query_bytes(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

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
    fn writer_truncates_with_tc() {
        let raw = query_bytes("big.", RecordType::A, None);
        let q = decode_query(&raw).unwrap();
        let owner = Name::from_ascii("big.").unwrap();
        let data: Vec<RData> = (0..100u8).map(|i| RData::A(A::new(10, 0, 0, i))).collect();
        let mut w = ResponseWriter::new(
            q.response_metadata(ResponseCode::NoError),
            Some(&q.query),
            None,
        );
        for d in &data {
            w.answer(Rr {
                name: &owner,
                ttl: 60,
                data: d,
            });
        }
        let small = w.finish(512);
        let m = Message::from_vec(&small).unwrap();
        assert!(m.truncation);
        assert!(m.answers.is_empty());
        let full = w.finish(TCP_PAYLOAD_MAX);
        let m = Message::from_vec(&full).unwrap();
        assert!(!m.truncation);
        assert_eq!(m.answers.len(), 100);
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

    #[test]
    fn peek_agrees_with_the_full_decoder_on_plain_queries() {
        let raw = query_bytes("WwW.ExAmple.COM.", RecordType::A, Some(1232));
        let q = decode_query(&raw).unwrap();
        assert_eq!(
            peek_plain_query(&raw),
            Some((q.header.metadata.id, q.question_end))
        );
    }

    #[test]
    fn peek_leaves_anything_unusual_to_the_full_decoder() {
        let raw = query_bytes("a.example.", RecordType::A, None);
        let mut response = raw.clone();
        response[2] |= 0x80;
        assert_eq!(peek_plain_query(&response), None);
        let mut notify = raw.clone();
        notify[2] |= 4 << 3;
        assert_eq!(peek_plain_query(&notify), None);
        let mut two = raw.clone();
        two[5] = 2;
        assert_eq!(peek_plain_query(&two), None);
        // A compression pointer in the question, and a cut question.
        let mut ptr = raw[..12].to_vec();
        ptr.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        assert_eq!(peek_plain_query(&ptr), None);
        assert_eq!(peek_plain_query(&raw[..raw.len() - 1]), None);
        assert_eq!(peek_plain_query(&raw[..5]), None);
    }

    /// A query for a name of exactly `wire` bytes in wire form (root included).
    fn query_with_name_of(wire: usize) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        let mut left = wire - 1;
        while left > 0 {
            // Labels of up to 63 bytes; never one of length 0 before the end.
            let len = (left - 1).min(63);
            let len = if left - (len + 1) == 1 { len - 1 } else { len };
            q.push(u8::try_from(len).unwrap());
            q.extend(std::iter::repeat_n(b'a', len));
            left -= len + 1;
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    #[test]
    fn a_name_over_255_bytes_is_refused_by_the_peek_and_the_decoder() {
        let ok = query_with_name_of(NAME_MAX);
        assert_eq!(ok.len(), HEADER_LEN + NAME_MAX + 4);
        assert_eq!(peek_plain_query(&ok), Some((0x1234, ok.len())));
        assert_eq!(decode_query(&ok).unwrap().question_end, ok.len());
        let long = query_with_name_of(NAME_MAX + 1);
        assert_eq!(long.len(), HEADER_LEN + NAME_MAX + 1 + 4);
        assert_eq!(peek_plain_query(&long), None, "the root byte counts");
        let Err(Reject::Rcode(e)) = decode_query(&long) else {
            panic!("a 256-byte name must be rejected with an rcode");
        };
        assert_eq!(e.rcode, ResponseCode::FormErr);
    }

    fn response(flags: u16, qdcount: u16, rest: &[u8]) -> (WireHeader, Vec<u8>) {
        let mut r = vec![0, 7];
        r.extend_from_slice(&flags.to_be_bytes());
        r.extend_from_slice(&qdcount.to_be_bytes());
        r.extend_from_slice(&[0, 3, 0, 0, 0, 1]);
        r.extend_from_slice(rest);
        (WireHeader::read(&r).unwrap(), r)
    }

    #[test]
    fn an_error_answer_without_its_question_is_accepted_a_positive_one_is_not() {
        let question = b"\x03www\x04test\x00\x00\x01\x00\x01";
        let (h, r) = response(0x8400, 1, question);
        assert!(answers_question(&h, &r, question));
        let (h, r) = response(0x8400, 1, b"\x03www\x04tesT\x00\x00\x1c\x00\x01");
        assert!(!answers_question(&h, &r, question), "another type");
        // FORMERR, NOTIMP, SERVFAIL, REFUSED without a question: accepted.
        for rcode in [1u16, 2, 4, 5] {
            let (h, r) = response(0x8000 | rcode, 0, &[]);
            assert!(answers_question(&h, &r, question), "rcode {rcode}");
            assert_eq!(rejects_query(&h), matches!(rcode, 1 | 4), "rcode {rcode}");
        }
        // NOERROR or NXDOMAIN without a question: no answer to it.
        for rcode in [0u16, 3] {
            let (h, r) = response(0x8000 | rcode, 0, &[]);
            assert!(!answers_question(&h, &r, question), "rcode {rcode}");
            assert!(!rejects_query(&h));
        }
        // A query (QR=0) or two questions: never.
        let (h, r) = response(0x0001, 0, &[]);
        assert!(!answers_question(&h, &r, question) && !rejects_query(&h));
        let (h, r) = response(0x8001, 2, question);
        assert!(!answers_question(&h, &r, question));
        // FORMERR with the question echoed (our TS to two OPT records).
        let (h, _) = response(0x8001, 1, question);
        assert!(rejects_query(&h));
        let (h, _) = response(0x8005, 1, question);
        assert!(!rejects_query(&h), "REFUSED is the backend's");
    }

    #[test]
    fn a_cut_response_becomes_a_truncated_answer_to_its_question() {
        let question = b"\x03www\x04test\x00\x00\x10\x00\x01";
        let (_, mut r) = response(0x8400, 1, question);
        r.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60, 0, 200]);
        r.extend(std::iter::repeat_n(7u8, 100)); // cut mid-record
        assert!(cut_to_truncated(&mut r, question.len()));
        let m = Message::from_vec(&r).unwrap();
        assert!(m.metadata.truncation && m.metadata.authoritative);
        assert_eq!(m.metadata.id, 7);
        assert_eq!(m.queries.len(), 1);
        assert!(m.answers.is_empty() && m.authorities.is_empty());
        let edns = m
            .edns
            .expect("an OPT, as RFC 6891 §7 asks of a truncated EDNS answer");
        assert_eq!(edns.max_payload(), UDP_PAYLOAD_MAX);
        // Cut inside the question: left alone.
        let (_, mut r) = response(0x8400, 1, &question[..5]);
        let before = r.clone();
        assert!(!cut_to_truncated(&mut r, question.len()));
        assert_eq!(r, before);
    }
}
