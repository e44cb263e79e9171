//! Answers made up rather than looked up: the LS's synthesized answer when
//! no backend gave a final one ([`synthesized`], with an Extended DNS
//! Error), an empty TC=1 answer, and error answers to raw or decoded queries.
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData};

use super::limits::{TCP_PAYLOAD_MAX, Transport};
use super::query::{ClientQuery, add_ede, decode_query, response_edns};
use super::writer::{ResponseWriter, Rr};

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

/// Extended DNS Error "Not Supported" (RFC 8914 §4.22).
pub const EDE_NOT_SUPPORTED: u16 = 21;

/// An answer with `rcode` for the query in `raw`, echoing its question and
/// OPT, with an Extended DNS Error `info_code` and `text` when the query
/// had an OPT; or the rejection the packet itself calls for.
pub fn error_with_ede(
    raw: &[u8],
    rcode: ResponseCode,
    info_code: u16,
    text: &str,
) -> Option<Vec<u8>> {
    let q = match decode_query(raw) {
        Ok(q) => q,
        Err(r) => return r.response(),
    };
    let meta = q.response_metadata(rcode);
    let edns = q.edns.as_ref().map(|e| {
        let mut r = response_edns(Some(e));
        add_ede(&mut r, info_code, text);
        r
    });
    Some(ResponseWriter::new(meta, Some(&q.query), edns.as_ref()).finish(TCP_PAYLOAD_MAX))
}

/// An answer with `rcode` and no records to a query already decoded,
/// echoing its question and OPT.
pub fn rcode_answer(q: &ClientQuery, rcode: ResponseCode) -> Vec<u8> {
    let meta = q.response_metadata(rcode);
    let edns = q.edns.as_ref().map(|e| response_edns(Some(e)));
    ResponseWriter::new(meta, Some(&q.query), edns.as_ref()).finish(TCP_PAYLOAD_MAX)
}
