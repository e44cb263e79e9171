//! The TS's answers on the wire. [`PlainQuery::read`] reads an ordinary
//! query (header, one uncompressed question, at most an OPT) without
//! decoding it; [`assemble`] builds the answer around a compiled zone's
//! sections: the ID and the RD bit copied (AD and CD clear), the question echoed byte
//! for byte (0x20 case kept), the OPT, and when it does not fit the client's
//! size, the header, question and OPT alone with TC=1 (RFC 2181 §9). Nothing
//! is decoded or re-encoded per query: a query the plain reader declines
//! (EDNS version > 0, a compressed question, AXFR, NOTIFY, ...) takes the
//! full decoder's path in [`super::TableServer`], which ends in [`assemble`]
//! too.
use hickory_proto::rr::RecordType;

use super::wire::NameKey;
use super::zone::{Catalog, Question, Written, Zone};
use crate::dns::{HEADER_LEN, TCP_PAYLOAD_MAX, Transport, UDP_PAYLOAD_MAX, UDP_PAYLOAD_PLAIN};

/// What a query's OPT says that an answer depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOpt {
    /// The UDP payload size it advertises.
    pub payload: u16,
    /// DO: DNSSEC records wanted.
    pub dnssec_ok: bool,
    /// It carries an empty NSID option (RFC 5001).
    pub wants_nsid: bool,
    /// It carries an EDNS Client Subnet option (RFC 7871), well formed or not.
    pub client_subnet: bool,
}

/// An ordinary query, read in place.
#[derive(Clone)]
pub struct PlainQuery<'q> {
    /// Message ID.
    pub id: u16,
    /// The flags word as sent.
    pub flags: u16,
    /// The question section as sent.
    pub question: &'q [u8],
    /// The question's name, lower-cased.
    pub qname: NameKey,
    /// The question's type.
    pub qtype: RecordType,
    /// Its OPT, if any.
    pub opt: Option<ClientOpt>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|x| u16::from_be_bytes([x[0], x[1]]))
}

impl<'q> PlainQuery<'q> {
    /// Reads `raw` when it is a QUERY with one IN question whose name is
    /// uncompressed, no answer or authority records, and either nothing in
    /// additional or one well-formed version-0 OPT; not for zone transfers.
    /// `None` sends the query down the full decoder's path.
    pub fn read(raw: &'q [u8]) -> Option<Self> {
        let (id, end) = crate::dns::peek_plain_query(raw)?;
        if be16(raw, 6)? != 0 || be16(raw, 8)? != 0 {
            return None;
        }
        let question = raw.get(HEADER_LEN..end)?;
        let qname = NameKey::read(question)?;
        let qtype = be16(raw, end - 4)?;
        if be16(raw, end - 2)? != 1 || matches!(qtype, 251 | 252) {
            return None; // another class, IXFR, AXFR
        }
        let opt = match be16(raw, 10)? {
            0 => None,
            1 => Some(read_opt(raw.get(end..)?)?),
            _ => return None,
        };
        Some(PlainQuery {
            id,
            flags: be16(raw, 2)?,
            question,
            qname,
            qtype: RecordType::from(qtype),
            opt,
        })
    }

    /// The largest answer this client can take over `transport`.
    pub fn max_size(&self, transport: Transport) -> u16 {
        max_size(self.opt.map(|o| o.payload), transport)
    }
}

/// The largest answer a client advertising `payload` (none: no OPT) takes.
pub fn max_size(payload: Option<u16>, transport: Transport) -> u16 {
    match (transport, payload) {
        (Transport::Tcp, _) => TCP_PAYLOAD_MAX,
        (Transport::Udp, Some(p)) => p.clamp(UDP_PAYLOAD_PLAIN, UDP_PAYLOAD_MAX),
        (Transport::Udp, None) => UDP_PAYLOAD_PLAIN,
    }
}

/// A version-0 OPT owned by the root that ends the message, its options well formed.
fn read_opt(b: &[u8]) -> Option<ClientOpt> {
    if *b.first()? != 0 || be16(b, 1)? != 41 || *b.get(6)? != 0 {
        return None;
    }
    let rdlen = usize::from(be16(b, 9)?);
    let options = b.get(11..11 + rdlen)?;
    if b.len() != 11 + rdlen {
        return None;
    }
    let mut wants_nsid = false;
    let mut client_subnet = false;
    let mut pos = 0;
    while pos < options.len() {
        let code = be16(options, pos)?;
        let len = usize::from(be16(options, pos + 2)?);
        options.get(pos + 4..pos + 4 + len)?;
        wants_nsid |= code == 3 && len == 0;
        client_subnet |= code == 8;
        pos += 4 + len;
    }
    Some(ClientOpt {
        payload: be16(b, 3)?,
        dnssec_ok: be16(b, 7)? & 0x8000 != 0,
        wants_nsid,
        client_subnet,
    })
}

/// The OPT this product answers with when the query had one: payload 1232,
/// version 0, the client's DO bit, no options (as `dns::response_edns`).
pub fn opt_record(dnssec_ok: bool) -> [u8; 11] {
    let [p0, p1] = UDP_PAYLOAD_MAX.to_be_bytes();
    let flags = if dnssec_ok { 0x80 } else { 0 };
    [0, 0, 41, p0, p1, 0, 0, flags, 0, 0, 0]
}

/// The header and question of the query being answered.
#[derive(Clone, Copy)]
pub struct Asked<'a> {
    /// Message ID.
    pub id: u16,
    /// The flags word as sent (RD is copied).
    pub flags: u16,
    /// The question section to echo.
    pub question: &'a [u8],
    /// Its name, lower-cased.
    pub qname: &'a NameKey,
    /// Its type.
    pub qtype: RecordType,
    /// DO=1: DNSSEC records wanted (RFC 3225).
    pub dnssec_ok: bool,
}

/// The answer to `asked` from `zone` (a CNAME chain going on in the other
/// zones of `catalog`, see [`Zone::write_answer`]), with `opt` (the answer's
/// OPT record, rcode bits zero) when the query had one, within `max_size` bytes.
pub fn assemble(
    catalog: &Catalog,
    zone: &Zone,
    asked: Asked<'_>,
    opt: Option<&[u8]>,
    max_size: u16,
    transport: Transport,
) -> (Vec<u8>, Written) {
    // DO=1 answers carry signatures and proofs: room for a full EDNS one.
    let room = if asked.dnssec_ok { 1232 } else { 512 };
    let mut msg = Vec::with_capacity(room);
    msg.extend_from_slice(&[0; HEADER_LEN]);
    msg.extend_from_slice(asked.question);
    let question = Question {
        qname: asked.qname,
        qtype: asked.qtype,
        all_of_any: transport == Transport::Tcp,
        dnssec_ok: asked.dnssec_ok,
    };
    let w = zone.write_answer(&mut msg, question, catalog);
    // RD copied; AD and CD clear (RFC 4035 §3.1.6, as NSD and Knot answer).
    let mut flags = 0x8000 | (asked.flags & 0x0100) | u16::from(w.rcode.low());
    if w.authoritative {
        flags |= 0x0400;
    }
    let with_opt = u16::from(opt.is_some());
    let mut counts = [1, w.answers, w.authority, w.additional + with_opt];
    if let Some(o) = opt {
        msg.extend_from_slice(o);
    }
    if msg.len() > usize::from(max_size) {
        msg.truncate(HEADER_LEN + asked.question.len());
        if let Some(o) = opt {
            msg.extend_from_slice(o);
        }
        flags |= 0x0200;
        counts = [1, 0, 0, with_opt];
    }
    msg[0..2].copy_from_slice(&asked.id.to_be_bytes());
    msg[2..4].copy_from_slice(&flags.to_be_bytes());
    for (i, c) in counts.iter().enumerate() {
        msg[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
    (msg, w)
}
