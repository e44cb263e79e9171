//! Encoding answers: [`ResponseWriter`] writes a message straight from
//! borrowed records ([`Rr`]), so a server can answer from its tables without
//! cloning them, truncating with TC=1 past the client's size.
use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::fixtures::query_bytes;
    use crate::dns::limits::TCP_PAYLOAD_MAX;
    use crate::dns::query::decode_query;
    use hickory_proto::op::Message;
    use hickory_proto::rr::RecordType;
    use hickory_proto::rr::rdata::A;

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
}
