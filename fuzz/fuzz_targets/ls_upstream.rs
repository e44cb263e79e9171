//! The load balancer's upstream path: a backend that sends any bytes back.
//!
//! The client query is forwarded as `Balancer::admit` would (its ID and
//! question end from `peek_plain_query`, else `decode_query`); the response
//! then goes through what the LS does to every response (src/ls/udp_path/worker.rs
//! `on_upstream`, src/ls/async_path.rs `win`): the header is read, a response
//! that is not one, or carries another question, is dropped; the rest is
//! classified by its header, gets the NSID edit, and the client's ID back.
//!
//! Input: one control byte (bit 0: TCP; bit 1: replicated layout), the
//! query's length (two bytes, big-endian), the query, then the response.
//! Property: no panic; the answer passed on carries the client's ID and the
//! question; the NSID edit adds exactly one option or changes nothing; and a
//! response hickory-proto can read is still readable after the edit, with the
//! same records and options plus the NSID (compared under the client's ID).
#![no_main]

use dnslb::config::Layout;
use dnslb::dns::{self, HEADER_LEN, NsidEdit, WireHeader};
use dnslb::ls::resolution::{Verdict, classify};
use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use libfuzzer_sys::fuzz_target;

const BACKEND: &str = "ts1";

/// What `Balancer::admit` reads of a query it forwards: ID and question end.
fn forwardable(raw: &[u8]) -> Option<(u16, usize)> {
    dns::peek_plain_query(raw).or_else(|| match dns::decode_query(raw) {
        Ok(q) if q.header.metadata.op_code == OpCode::Query => {
            Some((q.header.metadata.id, q.question_end))
        }
        _ => None,
    })
}

fuzz_target!(|data: &[u8]| {
    let [ctl, hi, lo, rest @ ..] = data else {
        return;
    };
    let transport = dnslb_fuzz::transport(*ctl);
    let layout = if ctl & 2 == 0 {
        Layout::Partitioned
    } else {
        Layout::Replicated
    };
    let qlen = usize::from(u16::from_be_bytes([*hi, *lo]));
    let Some((query, resp)) = rest.split_at_checked(qlen) else {
        return;
    };
    let Some((client_id, question_end)) = forwardable(query) else {
        return;
    };
    let question = query.get(HEADER_LEN..question_end).unwrap_or_default();

    // The backend's response: dropped unless it answers this question.
    let Some(h) = WireHeader::read(resp) else {
        return;
    };
    if !h.is_response() || h.qdcount != 1 || !dns::same_question(resp, question) {
        return;
    }
    let verdict = classify(&h, layout);
    if layout == Layout::Replicated {
        assert!(
            // A REFUSED is kept (passed on when every backend refused), and an
            // authoritative SERVFAIL (passed on when no answer is useful).
            matches!(
                verdict,
                Verdict::Final | Verdict::Failed | Verdict::Refused | Verdict::AuthFailed
            ),
            "replicated layout with a negative verdict {verdict:?}"
        );
    }
    if verdict == Verdict::Failed {
        return;
    }

    // Passed on to the client (a final answer, or the last negative one).
    let mut out = resp.to_vec();
    let edit = dns::nsid_for_client(query, &mut out, BACKEND, transport);
    WireHeader::set_id(&mut out, client_id);

    assert_eq!(WireHeader::read(&out).map(|h| h.id), Some(client_id));
    assert!(
        dns::same_question(&out, question),
        "question lost in the edit"
    );
    let nsid = format!("{}{BACKEND}", dns::LS_NSID_PREFIX);
    if edit == NsidEdit::Added {
        assert!(dns::query_wants_nsid(query), "NSID added unasked");
        assert_eq!(out.len(), resp.len() + 4 + nsid.len(), "edit size");
        assert!(
            out.len() <= dns::client_max_size(query, transport),
            "the edit grew the answer past the client's size"
        );
    } else {
        assert_eq!(out.get(2..), resp.get(2..), "changed without saying so");
    }

    // Compared with the response under the client's ID: a compression
    // pointer into the header (garbage, yet readable) reads the ID as a name.
    let mut relabelled = resp.to_vec();
    WireHeader::set_id(&mut relabelled, client_id);
    let Ok(before) = Message::from_vec(&relabelled) else {
        return;
    };
    let after = match Message::from_vec(&out) {
        Ok(m) => m,
        Err(e) => panic!(
            "edit {edit:?} broke a readable response: {e}\nquery {query:02x?}\nresponse {resp:02x?}"
        ),
    };
    assert_eq!(before.queries, after.queries);
    assert_eq!(before.answers, after.answers);
    assert_eq!(before.authorities, after.authorities);
    assert_eq!(before.additionals, after.additionals);
    match (&before.edns, &after.edns) {
        (None, None) => assert_ne!(edit, NsidEdit::Added),
        (Some(b), Some(a)) => {
            assert_eq!(b.max_payload(), a.max_payload());
            assert_eq!(b.flags(), a.flags());
            assert_eq!(b.version(), a.version());
            let (bo, ao) = (&b.options().options, &a.options().options);
            if edit == NsidEdit::Added {
                assert!(b.option(EdnsCode::NSID).is_none(), "NSID added twice");
                assert_eq!(ao.len(), bo.len() + 1);
                assert_eq!(ao.get(..bo.len()), Some(bo.as_slice()));
                match ao.last() {
                    Some((EdnsCode::NSID, EdnsOption::NSID(p))) => {
                        assert_eq!(p.as_ref(), nsid.as_bytes());
                    }
                    other => panic!("last option is not our NSID: {other:?}"),
                }
            } else {
                assert_eq!(bo, ao);
            }
        }
        (b, a) => panic!("the OPT came or went: {b:?} -> {a:?}"),
    }
});
