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
    let decoded = zone.records();
    let records: Vec<Rr<'_>> = std::iter::once(soa)
        .chain(decoded.iter().map(|(name, ttl, data)| Rr {
            name,
            ttl: *ttl,
            data,
        }))
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

/// Tries per secondary before giving up on a NOTIFY (RFC 1996 §3.6).
const NOTIFY_TRIES: u32 = 3;
/// Wait for a NOTIFY acknowledgement.
const NOTIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Tells `target` that `zone` changed (RFC 1996): a NOTIFY with the zone's
/// SOA question, repeated until the secondary acknowledges it (same ID, QR=1)
/// or three tries are spent. Returns whether it was acknowledged.
pub async fn notify(target: std::net::SocketAddr, zone: &hickory_proto::rr::Name) -> bool {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::RecordType;

    let bind: std::net::SocketAddr = if target.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else {
        return false;
    };
    let mut buf = vec![0u8; 4096];
    for _ in 0..NOTIFY_TRIES {
        let id: u16 = rand::random();
        let mut m = Message::new(id, MessageType::Query, OpCode::Notify);
        m.metadata.authoritative = true;
        m.add_query(Query::query(zone.clone(), RecordType::SOA));
        let Ok(bytes) = m.to_vec() else { return false };
        if sock.send_to(&bytes, target).await.is_err() {
            continue;
        }
        let wait = async {
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    return false;
                };
                let acked = from == target
                    && buf
                        .get(..n)
                        .and_then(dns::WireHeader::read)
                        .is_some_and(|h| h.id == id && h.is_response());
                if acked {
                    return true;
                }
            }
        };
        if let Ok(true) = tokio::time::timeout(NOTIFY_WAIT, wait).await {
            return true;
        }
    }
    false
}
