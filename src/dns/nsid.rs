//! NSID, the name server identifier (RFC 5001), on raw wire bytes.
//!
//! A client asks "which server answered?" with an empty NSID option (code 3)
//! in the OPT of its query; a server that has an identifier puts it, as the
//! option's payload, in the OPT of its answer (`dig +nsid`, `kdig +nsid`).
//!
//! The LS forwards the client's query bytes as they came, so a backend sees
//! the client's request and answers it, or not. [`nsid_for_client`] then
//! edits the raw response the LS passes on, without decoding it: a backend's
//! NSID goes through untouched; when there is none, the LS adds one naming
//! the backend, [`LS_NSID_PREFIX`] followed by its name in `config.toml`
//! (`dnslb-ls:ts1`), so the client still learns who answered, and can tell
//! a backend's own identifier from the LS's label.
//!
//! The edit is made only when it is safe: the response has exactly one OPT
//! (a backend that answered without EDNS is left as it is: an OPT made up
//! by the LS would claim EDNS support the backend does not have), no TSIG or
//! SIG(0) (the signature covers the bytes), every record lies within the
//! message, and the grown message fits what the client can take (over UDP the
//! client's advertised size, clamped as for every answer of this product to
//! [512, 1232]; over TCP 65 535 bytes). Otherwise the response is unchanged.
use super::limits::{TCP_PAYLOAD_MAX, Transport, UDP_PAYLOAD_MAX, UDP_PAYLOAD_PLAIN};
use super::walk::{MessageWalk, u16_at, walk_message};

/// EDNS option code of NSID (RFC 5001 §2.3).
pub const NSID_OPTION: u16 = 3;

/// What the LS puts before a backend's name when it labels an answer
/// whose backend sent no NSID of its own.
pub const LS_NSID_PREFIX: &str = "dnslb-ls:";

/// What an NSID edit did to a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsidEdit {
    /// The NSID option was appended to the response's OPT.
    Added,
    /// The query did not ask: no OPT, no NSID option, a non-empty one, or an
    /// unreadable query.
    NotAsked,
    /// The response already carries an NSID (passed through as it is).
    AlreadyThere,
    /// The response has no OPT (the server answered without EDNS).
    NoOpt,
    /// The response is signed (TSIG or SIG(0)); editing it would break that.
    Signed,
    /// With the option the response would exceed what the client can take.
    TooBig,
    /// The response could not be walked (cut short, malformed, several OPTs).
    Unreadable,
}

/// Walks the whole message ([`walk_message`]); `None` also when its OPT is
/// not owned by the root (RFC 6891 §6.1.1).
fn walk(msg: &[u8]) -> Option<MessageWalk> {
    walk_message(msg).filter(|w| w.opt.is_none_or(|o| o.root_owned()))
}

/// [`walk`] of a query whose OPT is looked for: a message without an
/// additional record (ARCOUNT 0, as most queries without EDNS are) has no
/// OPT, and is not walked (as walked, it would be found to have none, or
/// be unreadable: either way no OPT).
fn walk_for_opt(query: &[u8]) -> Option<MessageWalk> {
    if u16_at(query, 10)? == 0 {
        return None;
    }
    walk(query)
}

/// The payload of the first option `code` in an OPT's RDATA; `Err` when
/// the options overrun it.
pub(super) fn find_option(rdata: &[u8], code: u16) -> Result<Option<&[u8]>, ()> {
    let mut pos = 0;
    let mut hit = None;
    while pos < rdata.len() {
        let c = u16_at(rdata, pos).ok_or(())?;
        let len = usize::from(u16_at(rdata, pos + 2).ok_or(())?);
        let data = rdata.get(pos + 4..pos + 4 + len).ok_or(())?;
        if c == code && hit.is_none() {
            hit = Some(data);
        }
        pos += 4 + len;
    }
    Ok(hit)
}

/// Whether `query`'s OPT carries an empty NSID option: the client asks
/// which server answered (RFC 5001 §2.1). A non-empty one is not a request.
pub fn query_wants_nsid(query: &[u8]) -> bool {
    query_option(query, NSID_OPTION).is_some_and(<[u8]>::is_empty)
}

/// The payload of `query`'s first EDNS option `code`, when its OPT has one.
pub(super) fn query_option(query: &[u8], code: u16) -> Option<&[u8]> {
    let opt = walk_for_opt(query)?.opt?;
    let rdata = query.get(opt.rdata_start..opt.rdata_end)?;
    find_option(rdata, code).ok().flatten()
}

/// The largest answer the sender of `query` can take over `transport`: over
/// UDP its advertised payload size clamped to [512, 1232] (512 without an
/// OPT), as [`super::ClientQuery::max_size`] says; over TCP 65 535.
pub fn client_max_size(query: &[u8], transport: Transport) -> usize {
    let size = match transport {
        Transport::Tcp => TCP_PAYLOAD_MAX,
        Transport::Udp => match walk_for_opt(query).and_then(|w| w.opt) {
            Some(opt) => opt
                .class(query)
                .unwrap_or(UDP_PAYLOAD_PLAIN)
                .clamp(UDP_PAYLOAD_PLAIN, UDP_PAYLOAD_MAX),
            None => UDP_PAYLOAD_PLAIN,
        },
    };
    usize::from(size)
}

/// Appends an NSID option carrying `nsid` to the OPT of the response `resp`
/// and fixes the OPT's RDLENGTH, unless the response already has an NSID,
/// has no OPT, is signed, cannot be walked, or would grow past `max_size`
/// bytes. `resp` is changed only when [`NsidEdit::Added`] is returned.
pub fn add_nsid(resp: &mut Vec<u8>, nsid: &[u8], max_size: usize) -> NsidEdit {
    let Some(w) = walk(resp) else {
        return NsidEdit::Unreadable;
    };
    let Some(opt) = w.opt else {
        return NsidEdit::NoOpt;
    };
    let rdata = resp.get(opt.rdata_start..opt.rdata_end).unwrap_or_default();
    match find_option(rdata, NSID_OPTION) {
        Err(()) => return NsidEdit::Unreadable,
        Ok(Some(_)) => return NsidEdit::AlreadyThere,
        Ok(None) => {}
    }
    if w.signed {
        return NsidEdit::Signed;
    }
    let grown = 4 + nsid.len();
    let (Ok(len), Ok(rdlen)) = (
        u16::try_from(nsid.len()),
        u16::try_from(opt.rdata_end - opt.rdata_start + grown),
    ) else {
        return NsidEdit::TooBig;
    };
    if resp.len() + grown > max_size {
        return NsidEdit::TooBig;
    }
    let mut option = Vec::with_capacity(grown);
    option.extend_from_slice(&NSID_OPTION.to_be_bytes());
    option.extend_from_slice(&len.to_be_bytes());
    option.extend_from_slice(nsid);
    resp.splice(opt.rdata_end..opt.rdata_end, option);
    if let Some(field) = resp.get_mut(opt.rdlen_at..opt.rdlen_at + 2) {
        field.copy_from_slice(&rdlen.to_be_bytes());
    }
    NsidEdit::Added
}

/// The LS's NSID step on a backend's response `resp` to the client query
/// `query` (raw bytes, as forwarded): when the client asked for NSID and the
/// response carries none, appends `dnslb-ls:<backend_name>` (see the module
/// doc for when it is left alone). Works on the raw bytes of both messages,
/// before or after the client's ID is restored; call it once per answer
/// passed on, whatever path (UDP, TCP, a TC=1 retry) produced it.
pub fn nsid_for_client(
    query: &[u8],
    resp: &mut Vec<u8>,
    backend_name: &str,
    transport: Transport,
) -> NsidEdit {
    if !query_wants_nsid(query) {
        return NsidEdit::NotAsked;
    }
    let nsid = format!("{LS_NSID_PREFIX}{backend_name}");
    add_nsid(resp, nsid.as_bytes(), client_max_size(query, transport))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
    use hickory_proto::rr::rdata::{A, TXT};
    use hickory_proto::rr::{RData, Record, RecordType};

    use crate::dns::fixtures::name;

    /// A query for `www.example.` A, with an OPT of `size` carrying `options`.
    fn query(edns: Option<(u16, Vec<EdnsOption>)>) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(name("www.example."), RecordType::A));
        if let Some((size, options)) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            for o in options {
                e.options_mut().insert(o);
            }
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    /// Asserts that the LS's edit of `resp` for query `q` is `want`, and that it leaves
    /// `resp` as it was.
    #[track_caller]
    fn leaves_alone(q: &[u8], resp: &[u8], transport: Transport, want: NsidEdit) {
        let mut after = resp.to_vec();
        assert_eq!(nsid_for_client(q, &mut after, "ts1", transport), want);
        assert_eq!(after, resp);
    }

    fn nsid_request() -> EdnsOption {
        EdnsOption::NSID(NSIDPayload::new(Vec::new()).unwrap())
    }

    /// A response with `answers` A records (compressed owners), an SOA-less
    /// authority, and an OPT carrying `options` when `edns` is given.
    fn response(answers: u8, edns: Option<Vec<EdnsOption>>) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        let owner = name("www.example.");
        m.add_query(Query::query(owner.clone(), RecordType::A));
        for i in 0..answers {
            m.add_answer(Record::from_rdata(
                owner.clone(),
                60,
                RData::A(A::new(192, 0, 2, i)),
            ));
        }
        m.add_additional(Record::from_rdata(
            name("extra.example."),
            60,
            RData::TXT(TXT::new(vec!["x".into()])),
        ));
        if let Some(options) = edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            for o in options {
                e.options_mut().insert(o);
            }
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    fn nsid_of(resp: &[u8]) -> Option<Vec<u8>> {
        let m = Message::from_vec(resp).unwrap();
        match m.edns.as_ref()?.option(EdnsCode::NSID)? {
            EdnsOption::NSID(p) => Some(p.as_ref().to_vec()),
            _ => None,
        }
    }

    #[test]
    fn only_an_empty_nsid_option_is_a_request() {
        assert!(query_wants_nsid(&query(Some((1232, vec![nsid_request()])))));
        assert!(!query_wants_nsid(&query(Some((1232, vec![])))));
        assert!(!query_wants_nsid(&query(None)));
        let payload = EdnsOption::NSID(NSIDPayload::new(b"x".to_vec()).unwrap());
        assert!(!query_wants_nsid(&query(Some((1232, vec![payload])))));
        let cookie = EdnsOption::Unknown(10, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        let q = query(Some((1232, vec![cookie, nsid_request()])));
        assert!(query_wants_nsid(&q), "found among other options");
    }

    #[test]
    fn adds_the_backend_name_to_a_response_without_nsid() {
        let q = query(Some((1232, vec![nsid_request()])));
        let cookie = EdnsOption::Unknown(10, vec![9; 16]);
        let mut resp = response(3, Some(vec![cookie]));
        let before = Message::from_vec(&resp).unwrap();
        let edit = nsid_for_client(&q, &mut resp, "ts1", Transport::Udp);
        assert_eq!(edit, NsidEdit::Added);
        assert_eq!(nsid_of(&resp).unwrap(), b"dnslb-ls:ts1");
        let after = Message::from_vec(&resp).unwrap();
        assert_eq!(after.answers, before.answers, "records kept");
        assert_eq!(after.additionals, before.additionals);
        let cookie = after.edns.as_ref().unwrap().option(EdnsCode::Cookie);
        assert!(cookie.is_some(), "other options kept");
    }

    #[test]
    fn a_backend_nsid_passes_through_untouched() {
        let q = query(Some((1232, vec![nsid_request()])));
        let own = EdnsOption::NSID(NSIDPayload::new(b"nsd-1".to_vec()).unwrap());
        let resp = response(1, Some(vec![own]));
        leaves_alone(&q, &resp, Transport::Udp, NsidEdit::AlreadyThere);
    }

    #[test]
    fn nothing_is_added_unless_asked_or_without_an_opt() {
        let resp = response(1, Some(vec![]));
        let plain = query(Some((1232, vec![])));
        leaves_alone(&plain, &resp, Transport::Udp, NsidEdit::NotAsked);

        // The backend dropped EDNS: the LS does not make an OPT up.
        let asking = query(Some((1232, vec![nsid_request()])));
        leaves_alone(&asking, &response(1, None), Transport::Udp, NsidEdit::NoOpt);
    }

    #[test]
    fn never_grows_a_udp_answer_past_the_client_size() {
        // 512-byte client: a response 10 bytes short of it cannot take a
        // 13-byte option; over TCP it can.
        let q = query(Some((512, vec![nsid_request()])));
        let pad = 502 - response(0, Some(vec![])).len() - 4;
        let mut resp = response(0, Some(vec![EdnsOption::Unknown(65001, vec![0; pad])]));
        assert_eq!(resp.len(), 502);
        let before = resp.clone();
        leaves_alone(&q, &resp, Transport::Udp, NsidEdit::TooBig);
        assert_eq!(
            nsid_for_client(&q, &mut resp, "ts1", Transport::Tcp),
            NsidEdit::Added
        );
        assert_eq!(resp.len(), 502 + 4 + 12);
        // Exactly at the limit is fine.
        let mut resp = before.clone();
        assert_eq!(add_nsid(&mut resp, b"123456", 512), NsidEdit::Added);
        assert_eq!(resp.len(), 512);
    }

    #[test]
    fn the_client_size_is_read_from_its_opt_and_clamped() {
        let sized = |s| query(Some((s, vec![])));
        assert_eq!(client_max_size(&sized(4096), Transport::Udp), 1232);
        assert_eq!(client_max_size(&sized(1000), Transport::Udp), 1000);
        assert_eq!(client_max_size(&sized(100), Transport::Udp), 512);
        assert_eq!(client_max_size(&query(None), Transport::Udp), 512);
        assert_eq!(client_max_size(&sized(100), Transport::Tcp), 65_535);
    }

    #[test]
    fn a_signed_response_is_left_alone() {
        let q = query(Some((1232, vec![nsid_request()])));
        let mut resp = response(1, Some(vec![]));
        // Append a TSIG-typed record (root owner, empty RDATA) after the OPT.
        resp.extend_from_slice(&[0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0]);
        let arcount = u16::from_be_bytes([resp[10], resp[11]]) + 1;
        resp[10..12].copy_from_slice(&arcount.to_be_bytes());
        leaves_alone(&q, &resp, Transport::Tcp, NsidEdit::Signed);
    }

    #[test]
    fn the_opt_need_not_be_the_last_record() {
        let mut resp = response(2, Some(vec![]));
        // The message ends with the TXT (owner `extra` + a pointer to
        // `example.`: 8 bytes, then 10 fixed, then 2 of RDATA) and the empty
        // OPT; swap them, the pointer still points back into the question.
        let opt_rr = [0u8, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];
        assert!(resp.ends_with(&opt_rr), "the OPT is encoded last, empty");
        let cut = resp.len() - opt_rr.len() - 20;
        let txt = resp[cut..cut + 20].to_vec();
        assert!(txt.starts_with(b"\x05extra\xc0"), "{txt:?}");
        resp.truncate(cut);
        resp.extend_from_slice(&opt_rr);
        resp.extend_from_slice(&txt);
        assert_eq!(add_nsid(&mut resp, b"id", 1232), NsidEdit::Added);
        let m = Message::from_vec(&resp).unwrap();
        assert_eq!(m.additionals.len(), 1, "the TXT still reads");
        assert_eq!(m.additionals[0].name, name("extra.example."));
        assert_eq!(nsid_of(&resp).unwrap(), b"id");
    }

    #[test]
    fn cut_or_malformed_input_never_panics_and_is_left_alone() {
        let q = query(Some((1232, vec![nsid_request()])));
        let full = response(3, Some(vec![EdnsOption::Unknown(10, vec![1; 8])]));
        for cut in 0..full.len() {
            let mut resp = full[..cut].to_vec();
            let edit = nsid_for_client(&q, &mut resp, "ts1", Transport::Udp);
            assert_eq!(edit, NsidEdit::Unreadable, "cut at {cut}");
            assert_eq!(resp, &full[..cut]);
            // A cut query is no request, and does not panic either.
            let _ = query_wants_nsid(&q[..cut.min(q.len())]);
            let _ = client_max_size(&q[..cut.min(q.len())], Transport::Udp);
        }
        // Every single-byte corruption: no panic, and no change unless added.
        for i in 0..full.len() {
            for v in [0x00, 0x3f, 0x40, 0xc0, 0xff] {
                let mut resp = full.clone();
                resp[i] = v;
                let before = resp.clone();
                if nsid_for_client(&q, &mut resp, "ts1", Transport::Udp) != NsidEdit::Added {
                    assert_eq!(resp, before);
                }
            }
        }
        // An option list overrunning the OPT's RDATA.
        let mut resp = response(0, Some(vec![EdnsOption::Unknown(10, vec![1; 8])]));
        let n = resp.len();
        resp[n - 9] = 200; // the cookie's length, low byte
        assert_eq!(add_nsid(&mut resp, b"x", 1232), NsidEdit::Unreadable);
        // Two OPTs.
        let mut two = response(0, Some(vec![]));
        two.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        two[11] += 1;
        assert_eq!(add_nsid(&mut two, b"x", 1232), NsidEdit::Unreadable);
    }

    #[test]
    fn compressed_names_in_every_section_are_skipped() {
        // 3 answers and an additional whose owners are compression pointers.
        let q = query(Some((1232, vec![nsid_request()])));
        let mut resp = response(3, Some(vec![]));
        let owner_ptr = [0xc0, 0x0c];
        assert!(
            resp.windows(2).filter(|w| *w == owner_ptr).count() >= 3,
            "the answers' owners are pointers to the question"
        );
        assert_eq!(
            nsid_for_client(&q, &mut resp, "a-backend", Transport::Udp),
            NsidEdit::Added
        );
        assert_eq!(nsid_of(&resp).unwrap(), b"dnslb-ls:a-backend");
    }
}
