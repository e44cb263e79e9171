//! Zone transfer out (AXFR, RFC 5936) so standard secondaries can replicate a
//! TS's zone: SOA, every record, SOA again, over as many TCP messages as needed.
use hickory_proto::op::ResponseCode;

use super::zone::Zone;
use crate::dns::{self, ClientQuery, ResponseWriter, Rr, TCP_PAYLOAD_MAX};

/// Target size of one transfer message (well under the 64 KiB TCP limit).
const XFR_MESSAGE_BUDGET: usize = 16_000;

/// The AXFR response messages for `zone`, answering `q`.
pub fn axfr_messages(zone: &Zone, q: &ClientQuery) -> Vec<Vec<u8>> {
    let soa = zone.soa_rr();
    let records: Vec<Rr<'_>> = std::iter::once(soa)
        .chain(zone.all_records())
        .chain(std::iter::once(soa))
        .collect();
    let mut out = Vec::new();
    let mut chunk: Vec<Rr<'_>> = Vec::new();
    let mut size = 0;
    let question_len = q.question_end.saturating_sub(dns::HEADER_LEN);
    for rr in records {
        let len = dns::rr_len(&rr);
        if !chunk.is_empty() && size + len > XFR_MESSAGE_BUDGET {
            out.push(message(q, &chunk, out.is_empty()));
            chunk.clear();
            size = 0;
        }
        if chunk.is_empty() {
            size = dns::HEADER_LEN + question_len;
        }
        size += len;
        chunk.push(rr);
    }
    if !chunk.is_empty() {
        out.push(message(q, &chunk, out.is_empty()));
    }
    out
}

fn message(q: &ClientQuery, records: &[Rr<'_>], first: bool) -> Vec<u8> {
    let mut meta = q.response_metadata(ResponseCode::NoError);
    meta.authoritative = true;
    // RFC 5936 §2.2: the question appears in the first message only (optional later).
    let query = if first { Some(&q.query) } else { None };
    let mut w = ResponseWriter::new(meta, query, None);
    for rr in records {
        w.answer(*rr);
    }
    w.finish(TCP_PAYLOAD_MAX)
}
