//! The blocks at the door: a client query counted for the dynamic blocks
//! and judged by the blocks in force ([`block_check`]), before the query
//! rules, whatever its opcode; and the answer a block gives it
//! ([`blocked`] for a query the door reads, [`blocked_reject`] for a
//! message the door cannot serve: UPDATE, STATUS, IQUERY, DSO, a question
//! that cannot be read).
use hickory_proto::op::ResponseCode;

use super::dynblock::{BlockStop, DynBlocks, WorkerCounts};
use super::suffix;
use crate::config::DynAction;
use crate::dns::{self, Transport};
use crate::server::Request;

/// Dynamic blocks and blocks by hand, at the door before the rules: the
/// query from `req` for `qname` (wire form) of type `qtype` counted, then
/// judged by the set in force (published once a second): the action of the
/// block that stops it, if any. Counted in `mine` when a fast-path worker
/// asks. `proven`: whether the query carries a valid server cookie (asked
/// only of a `truncate` block over UDP).
pub(super) fn block_check(
    (dynblocks, proven): (&DynBlocks, impl FnOnce() -> bool),
    req: &Request<'_>,
    (qname, qtype): (&[u8], u16),
    mine: Option<&mut WorkerCounts>,
) -> Option<BlockStop> {
    let ip = req.src.ip();
    match mine {
        Some(mine) => dynblocks.count_query(mine, ip, qname, qtype),
        None => dynblocks.on_query(ip, qname, qtype),
    }
    // A `truncate` block spares TCP and a valid server cookie.
    let unproven = || req.transport == Transport::Udp && !proven();
    dynblocks.stop_unproven(ip, qname, unproven)
}

/// EDE 15, "Blocked" (RFC 8914).
const EDE_BLOCKED: u16 = 15;

/// The EDE text of a block's answer.
fn why_blocked(stop: BlockStop) -> &'static str {
    if stop.by_hand {
        "blocked by hand"
    } else {
        "blocked by a dynamic block"
    }
}

/// The answer to a message the door cannot serve (`err`: its NOTIMP or
/// FORMERR, built from what could be read of it) that a block stops with
/// `stop`, as [`blocked`] answers a query: nothing, REFUSED or NXDOMAIN
/// with EDE 15; under `truncate`, its own answer with TC=1 (over TCP,
/// where the block lets it through, the client gets that answer).
pub(super) fn blocked_reject(err: &dns::ErrorAnswer, stop: BlockStop) -> Option<Vec<u8>> {
    let rcode = match stop.action {
        DynAction::Drop => return None,
        DynAction::Refuse => ResponseCode::Refused,
        DynAction::Nxdomain => ResponseCode::NXDomain,
        DynAction::Truncate => err.rcode,
    };
    let truncate = stop.action == DynAction::Truncate;
    let mut meta = dns::response_metadata(&err.header.metadata, rcode);
    meta.truncation = truncate;
    let edns = err.edns.as_ref().map(|e| {
        let mut r = dns::response_edns(Some(e));
        if !truncate {
            dns::add_ede(&mut r, EDE_BLOCKED, why_blocked(stop));
        }
        r
    });
    let mut w = dns::ResponseWriter::new(meta, err.query.as_ref(), edns.as_ref());
    Some(w.finish(dns::TCP_PAYLOAD_MAX))
}

/// The answer to a query in `raw` a block stops with `action` (`None`: none).
pub(super) fn blocked(raw: &[u8], stop: BlockStop) -> Option<Vec<u8>> {
    let why = why_blocked(stop);
    match stop.action {
        DynAction::Drop => None,
        DynAction::Refuse => dns::error_with_ede(raw, ResponseCode::Refused, EDE_BLOCKED, why),
        DynAction::Nxdomain => dns::error_with_ede(raw, ResponseCode::NXDomain, EDE_BLOCKED, why),
        DynAction::Truncate => dns::decode_query(raw).ok().map(|q| dns::truncated_for(&q)),
    }
}

/// The question's name of a message `decode_query` answers `err` to, as
/// the blocks read it: lower-case wire form, empty when it has not one
/// question.
pub(super) fn question_of(err: &dns::ErrorAnswer) -> Vec<u8> {
    err.query
        .as_ref()
        .map_or_else(Vec::new, |q| suffix::lower_wire(q.name()))
}

/// The question's type of [`question_of`] (0 without one).
pub(super) fn qtype_of(err: &dns::ErrorAnswer) -> u16 {
    err.query.as_ref().map_or(0, |q| u16::from(q.query_type()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::fixtures::a_query as query;

    /// The EDE text of a block by hand says "by hand".
    #[test]
    fn a_block_by_hand_says_so_in_its_ede_text() {
        // With an OPT record: the EDE rides in it.
        let mut raw = query("x.example");
        raw[11] = 1;
        raw.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
        let says = |by_hand| {
            let stop = BlockStop {
                action: DynAction::Refuse,
                by_hand,
            };
            let reply = blocked(&raw, stop).unwrap();
            String::from_utf8_lossy(&reply).into_owned()
        };
        assert!(says(true).contains("blocked by hand"), "{}", says(true));
        assert!(!says(true).contains("dynamic"));
        assert!(says(false).contains("blocked by a dynamic block"));
    }

    /// A message of another opcode a block stops gets the block's answer,
    /// built from what could be read of it: REFUSED with EDE 15 and its
    /// question; nothing under `drop`; its own NOTIMP with TC=1 under
    /// `truncate`.
    #[test]
    fn a_message_of_another_opcode_gets_the_block_s_answer() {
        let mut raw = query("x.example");
        raw[2] = (raw[2] & !0x78) | (5 << 3);
        raw[11] = 1;
        raw.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
        let Err(dns::Reject::Rcode(err)) = dns::decode_query(&raw) else {
            panic!("an UPDATE is not served");
        };
        assert_eq!(err.rcode, ResponseCode::NotImp);
        assert_eq!(question_of(&err), b"\x01x\x07example\x00");
        assert_eq!(qtype_of(&err), 1);
        let stop = |action| BlockStop {
            action,
            by_hand: true,
        };
        let m = |b: Vec<u8>| hickory_proto::op::Message::from_vec(&b).unwrap();
        let refused = m(blocked_reject(&err, stop(DynAction::Refuse)).unwrap());
        assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
        assert_eq!(refused.metadata.op_code, hickory_proto::op::OpCode::Update);
        assert_eq!(refused.queries.len(), 1);
        let opt = refused.edns.expect("its OPT").options().as_ref().len();
        assert_eq!(opt, 1, "the EDE");
        assert_eq!(blocked_reject(&err, stop(DynAction::Drop)), None);
        let tc = m(blocked_reject(&err, stop(DynAction::Truncate)).unwrap());
        assert!(tc.metadata.truncation);
        assert_eq!(tc.metadata.response_code, ResponseCode::NotImp);
    }
}
