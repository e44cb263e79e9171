//! The answers a rule makes up ([`answer`]): REFUSED, NXDOMAIN,
//! SERVFAIL, the spoofed addresses or CNAME, and TC=1. Each echoes the
//! question (name as sent) and the ID, copies RD, says RA=0 (as the backends
//! answer: a resolver in front takes RA=1 without AA for a lame recursive
//! server), AA as the rule's `aa` says, and carries, when the client sent an
//! OPT, the rule's Extended DNS Error (RFC 8914: 15 Blocked, 16 Censored or
//! 17 Filtered; TC=1 carries none: it blocks nothing). No SOA is added to a
//! negative answer (NXDOMAIN, or the NODATA of a spoof asked for another
//! type): none exists for a name the rule made up, so resolvers do not cache
//! it negatively (RFC 2308 §5) and the rule, not a cache, keeps answering.
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RData;
use hickory_proto::rr::rdata::{A, AAAA, CNAME};

use super::set::{Act, RuleHit, RuleSet};
use crate::dns::{self, Rr, Transport};

/// Record types the spoofed answers tell apart.
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// The answer `hit` (a hit of `set`) makes up for the query `raw` (already read by the
/// door), sized for `transport`; `None` for a hit that answers nothing
/// (drop, or an act that forwards), or a query that cannot be decoded
/// (then its rejection, if any, is what the client gets).
pub fn answer(set: &RuleSet, hit: RuleHit, raw: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let made = &set.rules.get(hit.rule)?.made;
    let rcode = match hit.act {
        Act::Drop | Act::Allow | Act::Pool(_) | Act::Delay(_) => return None,
        Act::Refuse => ResponseCode::Refused,
        Act::Nxdomain => ResponseCode::NXDomain,
        Act::Servfail => ResponseCode::ServFail,
        Act::Truncate | Act::Spoof | Act::SpoofCname => ResponseCode::NoError,
    };
    let q = match dns::decode_query(raw) {
        Ok(q) => q,
        Err(reject) => return reject.response(),
    };
    let mut meta = q.response_metadata(rcode);
    meta.recursion_available = false;
    meta.authoritative = made.aa;
    meta.truncation = hit.act == Act::Truncate;
    let edns = q.edns.as_ref().map(|e| {
        let mut r = dns::response_edns(Some(e));
        if hit.act != Act::Truncate {
            dns::add_ede(&mut r, made.ede, "");
        }
        r
    });
    let qtype = u16::from(q.query.query_type());
    let mut data: Vec<RData> = Vec::new();
    match hit.act {
        Act::Spoof if qtype == TYPE_A => {
            data.extend(made.v4.iter().map(|&a| RData::A(A(a))));
        }
        Act::Spoof if qtype == TYPE_AAAA => {
            data.extend(made.v6.iter().map(|&a| RData::AAAA(AAAA(a))));
        }
        Act::SpoofCname => {
            if let Some(target) = &made.cname {
                data.push(RData::CNAME(CNAME(target.clone())));
            }
        }
        _ => {}
    }
    let mut w = dns::ResponseWriter::new(meta, Some(&q.query), edns.as_ref());
    for d in &data {
        w.answer(Rr {
            name: q.query.name(),
            ttl: made.ttl,
            data: d,
        });
    }
    Some(w.finish(q.max_size(transport)))
}
