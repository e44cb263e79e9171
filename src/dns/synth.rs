//! Answers made up rather than looked up: the LS's synthesized answer when
//! no backend gave a final one ([`synthesized`], with an Extended DNS
//! Error), an empty TC=1 answer, and error answers to raw or decoded queries.
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData};

use super::header::peek_plain_query;
use super::limits::{HEADER_LEN, TCP_PAYLOAD_MAX, Transport, UDP_PAYLOAD_MAX};
use super::query::{ClientQuery, add_ede, decode_query, response_edns};
use super::walk::u16_at;
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
    plain_error(raw, rcode, None).or_else(|| decoded_error(raw, rcode, None))
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
    let ede = Some((info_code, text));
    plain_error(raw, rcode, ede).or_else(|| decoded_error(raw, rcode, ede))
}

/// [`error_for`]'s and [`error_with_ede`]'s answer by decoding the query
/// (what [`plain_error`] stands in for), or the rejection the packet calls
/// for.
fn decoded_error(raw: &[u8], rcode: ResponseCode, ede: Option<(u16, &str)>) -> Option<Vec<u8>> {
    let q = match decode_query(raw) {
        Ok(q) => q,
        Err(r) => return r.response(),
    };
    let meta = q.response_metadata(rcode);
    let edns = q.edns.as_ref().map(|e| {
        let mut r = response_edns(Some(e));
        if let Some((code, text)) = ede {
            add_ede(&mut r, code, text);
        }
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

/// OPT's record type.
const OPT_TYPE: u16 = 41;
/// An OPT record with no options: root name, type, class (payload), TTL
/// (extended rcode, version, flags), RDLENGTH.
const BARE_OPT_LEN: usize = 1 + 2 + 2 + 4 + 2;
/// DO in the OPT's flags' first byte.
const DO_BIT: u8 = 0x80;

/// [`error_for`]'s and [`error_with_ede`]'s answer (the same bytes) written
/// straight from the query, without decoding it, for the common case: a
/// plain query ([`peek_plain_query`]) with no answer or authority records
/// and either nothing after its question or one bare OPT (version 0, no
/// options). `None` for anything else, which the decoding path answers:
/// that is where its rejections (FORMERR, BADVERS) live. One allocation, the
/// answer's, where decoding and writing cost seven; this is the answer a
/// dynamic block's `refuse` sends each query of a flood.
fn plain_error(raw: &[u8], rcode: ResponseCode, ede: Option<(u16, &str)>) -> Option<Vec<u8>> {
    let (_, end) = peek_plain_query(raw)?;
    let code = u8::try_from(u16::from(rcode)).ok().filter(|c| *c < 16)?;
    let count = |at: usize| u16_at(raw, at);
    if count(6)? != 0 || count(8)? != 0 {
        return None;
    }
    let opt = match count(10)? {
        0 if raw.len() == end => None,
        1 => {
            let rest = raw.get(end..)?;
            let bare = rest.len() == BARE_OPT_LEN
                && rest.first() == Some(&0)
                && u16_at(rest, 1) == Some(OPT_TYPE)
                && rest.get(5..7) == Some(&[0, 0][..])
                && u16_at(rest, 9) == Some(0);
            if !bare {
                return None;
            }
            Some(rest.get(7).copied().unwrap_or(0) & DO_BIT)
        }
        _ => return None,
    };
    let ede = ede.filter(|_| opt.is_some());
    let ede_len = ede.map_or(0, |(_, text)| 4 + 2 + text.len());
    let ede_data = u16::try_from(ede.map_or(0, |(_, text)| 2 + text.len())).ok()?;
    let rdlen = u16::try_from(ede_len).ok()?;
    let mut out = Vec::with_capacity(end + opt.map_or(0, |_| BARE_OPT_LEN + ede_len));
    out.extend_from_slice(raw.get(..end)?);
    // QR=1, opcode QUERY, AA=0, TC=0, RD copied; RA=0, Z=0, AD=0, CD copied, RCODE.
    let flags = [0x80 | (raw.get(2)? & 0x01), (raw.get(3)? & 0x10) | code];
    out.get_mut(2..4)?.copy_from_slice(&flags);
    out.get_mut(HEADER_LEN - 2..HEADER_LEN)?
        .copy_from_slice(&u16::from(opt.is_some()).to_be_bytes());
    if let Some(dnssec_ok) = opt {
        out.push(0);
        out.extend_from_slice(&OPT_TYPE.to_be_bytes());
        out.extend_from_slice(&UDP_PAYLOAD_MAX.to_be_bytes());
        out.extend_from_slice(&[0, 0, dnssec_ok, 0]);
        out.extend_from_slice(&rdlen.to_be_bytes());
        if let Some((info_code, text)) = ede {
            out.extend_from_slice(&EDE_OPTION.to_be_bytes());
            out.extend_from_slice(&ede_data.to_be_bytes());
            out.extend_from_slice(&info_code.to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
    Some(out)
}

/// The Extended DNS Error option's code (RFC 8914).
const EDE_OPTION: u16 = 15;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A plain query: any flags but QR and opcode, one question of `labels`,
    /// `qtype`, `qclass`, and an OPT (payload, DO, the flags' other bits) or none.
    fn query(
        flags: u16,
        labels: &[Vec<u8>],
        (qtype, qclass): (u16, u16),
        opt: Option<(u16, bool, u16)>,
    ) -> Vec<u8> {
        let mut q = vec![0x12, 0x34];
        q.extend_from_slice(&(flags & 0x07ff).to_be_bytes());
        q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())]);
        for l in labels {
            q.push(u8::try_from(l.len()).unwrap());
            q.extend_from_slice(l);
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&qclass.to_be_bytes());
        if let Some((payload, dnssec_ok, z)) = opt {
            let bits = (u16::from(dnssec_ok) << 15) | (z & 0x7fff);
            q.push(0);
            q.extend_from_slice(&OPT_TYPE.to_be_bytes());
            q.extend_from_slice(&payload.to_be_bytes());
            q.extend_from_slice(&[0, 0]);
            q.extend_from_slice(&bits.to_be_bytes());
            q.extend_from_slice(&[0, 0]);
        }
        q
    }

    const RCODES: [ResponseCode; 5] = [
        ResponseCode::Refused,
        ResponseCode::NXDomain,
        ResponseCode::ServFail,
        ResponseCode::FormErr,
        ResponseCode::NoError,
    ];

    proptest! {
        #[test]
        fn the_plain_answer_is_the_decoded_one(
            flags in any::<u16>(),
            labels in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..20), 0..5),
            qtype in any::<u16>(),
            qclass in any::<u16>(),
            opt in prop::option::of((any::<u16>(), any::<bool>(), any::<u16>())),
            rcode in 0..RCODES.len(),
            ede in any::<bool>(),
        ) {
            let raw = query(flags, &labels, (qtype, qclass), opt);
            let rcode = RCODES[rcode];
            let ede = ede.then_some((15, "blocked by a dynamic block"));
            let plain = plain_error(&raw, rcode, ede);
            prop_assert!(plain.is_some());
            prop_assert_eq!(plain, decoded_error(&raw, rcode, ede));
        }
    }

    #[test]
    fn anything_but_the_common_case_is_left_to_the_decoding_path() {
        let plain = query(0x0100, &[b"a".to_vec()], (1, 1), None);
        // An OPT with an option (a cookie), a version 1 OPT, a record in the
        // answer section, bytes after the question, a second question.
        let mut cookie = query(0, &[b"a".to_vec()], (1, 1), Some((1232, false, 0)));
        let len = cookie.len();
        cookie[len - 1] = 12;
        cookie.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        let mut version = query(0, &[b"a".to_vec()], (1, 1), Some((1232, false, 0)));
        version[len - 5] = 1;
        let mut answer = plain.clone();
        answer[7] = 1;
        let mut trailing = plain.clone();
        trailing.push(0);
        let mut two = plain.clone();
        two[5] = 2;
        for raw in [cookie, version, answer, trailing, two] {
            assert_eq!(
                plain_error(&raw, ResponseCode::Refused, Some((15, "x"))),
                None
            );
            assert!(error_with_ede(&raw, ResponseCode::Refused, 15, "x").is_some());
        }
        assert!(plain_error(&plain, ResponseCode::Refused, None).is_some());
    }
}
