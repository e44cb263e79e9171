//! An ordinary query as the TS's request pipeline reads it in place
//! ([`PlainQuery::read`]): the header, one uncompressed IN question and at
//! most one version-0 OPT, borrowed from the request, nothing decoded. A
//! query this reader declines (EDNS version > 0, a compressed question,
//! AXFR, NOTIFY, a TSIG, ...) takes the full decoder's path.
use hickory_proto::rr::RecordType;

use super::wire::NameKey;
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

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    use hickory_proto::rr::{DNSClass, Name};

    /// A query for `name`/`qtype`, with `edns` when given.
    fn query(qtype: RecordType, edns: Option<Edns>) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 0x1234;
        m.add_query(Query::query(
            Name::from_ascii("WwW.a.test.").unwrap(),
            qtype,
        ));
        if let Some(e) = edns {
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn a_plain_query_is_read_in_place_its_name_lower_cased() {
        let raw = query(RecordType::A, None);
        let q = PlainQuery::read(&raw).expect("read");
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.flags, u16::from_be_bytes([raw[2], raw[3]]));
        assert_eq!(q.question, &raw[HEADER_LEN..]);
        assert_eq!(q.qname.bytes(), b"\x03www\x01a\x04test\x00");
        assert_eq!(q.qtype, RecordType::A);
        assert_eq!(q.opt, None);
        assert_eq!(q.max_size(Transport::Udp), UDP_PAYLOAD_PLAIN);
        assert_eq!(q.max_size(Transport::Tcp), TCP_PAYLOAD_MAX);
    }

    #[test]
    fn an_opt_says_its_size_its_do_bit_and_which_options_it_carries() {
        let mut e = Edns::new();
        e.set_max_payload(4096);
        e.set_dnssec_ok(true);
        e.options_mut()
            .insert(EdnsOption::Unknown(u16::from(EdnsCode::NSID), vec![]));
        let raw = query(RecordType::AAAA, Some(e));
        let q = PlainQuery::read(&raw).expect("read");
        let opt = q.opt.expect("an OPT");
        assert_eq!(opt.payload, 4096);
        assert!(opt.dnssec_ok && opt.wants_nsid && !opt.client_subnet);
        assert_eq!(q.max_size(Transport::Udp), UDP_PAYLOAD_MAX, "clamped");
        let mut small = Edns::new();
        small.set_max_payload(100);
        let raw = query(RecordType::A, Some(small));
        let q = PlainQuery::read(&raw).expect("read");
        assert_eq!(q.max_size(Transport::Udp), UDP_PAYLOAD_PLAIN, "raised");
    }

    #[test]
    fn transfers_other_classes_and_more_records_take_the_decoder() {
        for t in [RecordType::AXFR, RecordType::IXFR] {
            assert!(PlainQuery::read(&query(t, None)).is_none(), "{t}");
        }
        let mut m = Message::query();
        let mut q = Query::query(Name::from_ascii("a.test.").unwrap(), RecordType::A);
        q.set_query_class(DNSClass::CH);
        m.add_query(q);
        assert!(PlainQuery::read(&m.to_vec().unwrap()).is_none(), "class CH");
        // ARCOUNT 1 with no record after the question.
        let mut lie = query(RecordType::A, None);
        lie[11] = 1;
        assert!(PlainQuery::read(&lie).is_none(), "ARCOUNT past the end");
        // An OPT of EDNS version 1.
        let mut e = Edns::new();
        e.set_version(1);
        assert!(PlainQuery::read(&query(RecordType::A, Some(e))).is_none());
        assert!(PlainQuery::read(&[0u8; 5]).is_none(), "a runt");
    }
}
