//! Raw messages, read without decoding them (the LS forwards messages it
//! never fully decodes): the fixed header ([`WireHeader`]), a plain query's
//! ID and question ([`peek_plain_query`]), whether an upstream response
//! answers a question ([`answers_question`], [`same_question`],
//! [`rejects_query`]), and a cut response made a truncated answer
//! ([`cut_to_truncated`]).
use super::limits::{HEADER_LEN, NAME_MAX, UDP_PAYLOAD_MAX};

/// The fixed 12-byte header of a raw message, read without decoding the rest
/// (the LS forwards messages it never fully decodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireHeader {
    /// Message ID.
    pub id: u16,
    /// The flags word: QR, opcode, AA, TC, RD, RA, Z, AD, CD, RCODE.
    pub flags: u16,
    /// Number of questions.
    pub qdcount: u16,
    /// Number of answer records.
    pub ancount: u16,
    /// Number of authority records.
    pub nscount: u16,
}

impl WireHeader {
    /// Reads the header, or `None` if the message is shorter than one.
    pub fn read(raw: &[u8]) -> Option<Self> {
        let b = raw.get(..HEADER_LEN)?;
        let word = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        Some(WireHeader {
            id: word(0),
            flags: word(2),
            qdcount: word(4),
            ancount: word(6),
            nscount: word(8),
        })
    }

    /// QR: this is a response.
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// AA: the answer is authoritative.
    pub fn authoritative(&self) -> bool {
        self.flags & 0x0400 != 0
    }

    /// TC: the message was truncated.
    pub fn truncated(&self) -> bool {
        self.flags & 0x0200 != 0
    }

    /// The low four bits of the rcode.
    pub fn rcode(&self) -> u8 {
        (self.flags & 0x000f) as u8
    }

    /// Writes `id` into the header of `raw` (no-op on a runt).
    pub fn set_id(raw: &mut [u8], id: u16) {
        if let Some(b) = raw.get_mut(..2) {
            b.copy_from_slice(&id.to_be_bytes());
        }
    }
}

/// The ID and the end of the question of a plain query, read without
/// decoding: `Some` only for QR=0, opcode QUERY, QDCOUNT=1 and a question
/// whose name is uncompressed and well formed. Anything else goes through
/// [`decode_query`](super::decode_query), which decides how to reject it.
pub fn peek_plain_query(raw: &[u8]) -> Option<(u16, usize)> {
    let h = WireHeader::read(raw)?;
    // QR=0 and opcode 0 (QUERY), one question.
    if h.flags & 0xf800 != 0 || h.qdcount != 1 {
        return None;
    }
    let mut pos = HEADER_LEN;
    loop {
        let len = usize::from(*raw.get(pos)?);
        if len == 0 {
            pos += 1;
            break;
        }
        if len > 63 {
            return None; // a pointer or a reserved label type
        }
        pos += 1 + len;
        // The name's wire form, root byte included, is at most 255 bytes
        // (RFC 1035 §3.1): the labels so far leave room for the root.
        if pos - HEADER_LEN + 1 > NAME_MAX {
            return None;
        }
    }
    let end = pos + 4;
    (end <= raw.len()).then_some((h.id, end))
}

/// Whether the upstream response `resp` (header `h`) answers the query
/// whose raw question section is `question`: QR set and either the same
/// question ([`same_question`]) or no question at all with an error rcode
/// (not NOERROR or NXDOMAIN). A server that cannot read a query — two OPT
/// records, a name too long — answers FORMERR or NOTIMP without echoing it,
/// as NSD and our own TS do; dnsdist accepts those too. The ID, source and
/// socket checks (RFC 5452) are the caller's and stay as strict.
pub fn answers_question(h: &WireHeader, resp: &[u8], question: &[u8]) -> bool {
    h.is_response()
        && match h.qdcount {
            1 => same_question(resp, question),
            0 => !matches!(h.rcode(), 0 | 3),
            _ => false,
        }
}

/// Whether a response says the query itself is at fault: FORMERR or
/// NOTIMP (the server could not read it, or does not do what it asks),
/// with or without the question echoed. Not final: another backend is
/// asked (one broken backend must not answer for all); when every backend
/// asked rejects the query, the rejection is passed on to the client (the
/// query was at fault). Never counted as the backend's failure.
pub fn rejects_query(h: &WireHeader) -> bool {
    h.is_response() && matches!(h.rcode(), 1 | 4)
}

/// Turns the start of an upstream response cut short by its receive slot
/// (it was longer than the slot) into a well-formed truncated answer: its
/// header and the `question_len` bytes of question after it, TC=1, no
/// records but an OPT (UDP size [`UDP_PAYLOAD_MAX`]): a truncated answer to
/// an EDNS query still carries one (RFC 6891 §7), and the one the backend
/// sent was cut off with the records; the reply path removes it again for
/// a client that sent no OPT. A UDP client gets it as is (an answer that
/// large never fits its size) and asks again over TCP; a TCP client's query
/// is asked again of the backend over TCP. `false` (and `resp` unchanged)
/// when even the question was cut.
pub fn cut_to_truncated(resp: &mut Vec<u8>, question_len: usize) -> bool {
    let Some(h) = WireHeader::read(resp) else {
        return false;
    };
    let end = match h.qdcount {
        0 => HEADER_LEN,
        1 => HEADER_LEN + question_len,
        _ => return false,
    };
    if resp.len() < end {
        return false;
    }
    resp.truncate(end);
    if let Some(flags) = resp.get_mut(2) {
        *flags |= 0x02; // TC
    }
    if let Some(counts) = resp.get_mut(6..HEADER_LEN) {
        counts.fill(0);
        counts[5] = 1; // ARCOUNT: the OPT
    }
    let [hi, lo] = UDP_PAYLOAD_MAX.to_be_bytes();
    // Root owner, type OPT, class = UDP size, extended rcode, version and
    // flags 0, no options.
    resp.extend_from_slice(&[0, 0, 41, hi, lo, 0, 0, 0, 0, 0, 0]);
    true
}

/// True when `resp` carries, right after its header, the question `question`
/// (the raw question section of the query): the name compared without regard
/// to ASCII case, type and class exactly.
pub fn same_question(resp: &[u8], question: &[u8]) -> bool {
    let Some(theirs) = resp.get(HEADER_LEN..HEADER_LEN + question.len()) else {
        return false;
    };
    let split = question.len().saturating_sub(4);
    let (qn, qt) = question.split_at(split);
    let (tn, tt) = theirs.split_at(split);
    qn.eq_ignore_ascii_case(tn) && qt == tt
}

/// The conventional upper-case name of an rcode (`SERVFAIL`), if it has one.
pub fn rcode_mnemonic(code: u16) -> Option<&'static str> {
    Some(match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS",
        23 => "BADCOOKIE",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::fixtures::query_bytes;
    use crate::dns::query::{Reject, decode_query};
    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::RecordType;

    #[test]
    fn peek_agrees_with_the_full_decoder_on_plain_queries() {
        let raw = query_bytes("WwW.ExAmple.COM.", RecordType::A, Some(1232));
        let q = decode_query(&raw).unwrap();
        assert_eq!(
            peek_plain_query(&raw),
            Some((q.header.metadata.id, q.question_end))
        );
    }

    #[test]
    fn peek_leaves_anything_unusual_to_the_full_decoder() {
        let raw = query_bytes("a.example.", RecordType::A, None);
        let mut response = raw.clone();
        response[2] |= 0x80;
        assert_eq!(peek_plain_query(&response), None);
        let mut notify = raw.clone();
        notify[2] |= 4 << 3;
        assert_eq!(peek_plain_query(&notify), None);
        let mut two = raw.clone();
        two[5] = 2;
        assert_eq!(peek_plain_query(&two), None);
        // A compression pointer in the question, and a cut question.
        let mut ptr = raw[..12].to_vec();
        ptr.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        assert_eq!(peek_plain_query(&ptr), None);
        assert_eq!(peek_plain_query(&raw[..raw.len() - 1]), None);
        assert_eq!(peek_plain_query(&raw[..5]), None);
    }

    /// A query for a name of exactly `wire` bytes in wire form (root included).
    fn query_with_name_of(wire: usize) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        let mut left = wire - 1;
        while left > 0 {
            // Labels of up to 63 bytes; never one of length 0 before the end.
            let len = (left - 1).min(63);
            let len = if left - (len + 1) == 1 { len - 1 } else { len };
            q.push(u8::try_from(len).unwrap());
            q.extend(std::iter::repeat_n(b'a', len));
            left -= len + 1;
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    #[test]
    fn a_name_over_255_bytes_is_refused_by_the_peek_and_the_decoder() {
        let ok = query_with_name_of(NAME_MAX);
        assert_eq!(ok.len(), HEADER_LEN + NAME_MAX + 4);
        assert_eq!(peek_plain_query(&ok), Some((0x1234, ok.len())));
        assert_eq!(decode_query(&ok).unwrap().question_end, ok.len());
        let long = query_with_name_of(NAME_MAX + 1);
        assert_eq!(long.len(), HEADER_LEN + NAME_MAX + 1 + 4);
        assert_eq!(peek_plain_query(&long), None, "the root byte counts");
        let Err(Reject::Rcode(e)) = decode_query(&long) else {
            panic!("a 256-byte name must be rejected with an rcode");
        };
        assert_eq!(e.rcode, ResponseCode::FormErr);
    }

    fn response(flags: u16, qdcount: u16, rest: &[u8]) -> (WireHeader, Vec<u8>) {
        let mut r = vec![0, 7];
        r.extend_from_slice(&flags.to_be_bytes());
        r.extend_from_slice(&qdcount.to_be_bytes());
        r.extend_from_slice(&[0, 3, 0, 0, 0, 1]);
        r.extend_from_slice(rest);
        (WireHeader::read(&r).unwrap(), r)
    }

    #[test]
    fn an_error_answer_without_its_question_is_accepted_a_positive_one_is_not() {
        let question = b"\x03www\x04test\x00\x00\x01\x00\x01";
        let (h, r) = response(0x8400, 1, question);
        assert!(answers_question(&h, &r, question));
        let (h, r) = response(0x8400, 1, b"\x03www\x04tesT\x00\x00\x1c\x00\x01");
        assert!(!answers_question(&h, &r, question), "another type");
        // FORMERR, NOTIMP, SERVFAIL, REFUSED without a question: accepted.
        for rcode in [1u16, 2, 4, 5] {
            let (h, r) = response(0x8000 | rcode, 0, &[]);
            assert!(answers_question(&h, &r, question), "rcode {rcode}");
            assert_eq!(rejects_query(&h), matches!(rcode, 1 | 4), "rcode {rcode}");
        }
        // NOERROR or NXDOMAIN without a question: no answer to it.
        for rcode in [0u16, 3] {
            let (h, r) = response(0x8000 | rcode, 0, &[]);
            assert!(!answers_question(&h, &r, question), "rcode {rcode}");
            assert!(!rejects_query(&h));
        }
        // A query (QR=0) or two questions: never.
        let (h, r) = response(0x0001, 0, &[]);
        assert!(!answers_question(&h, &r, question) && !rejects_query(&h));
        let (h, r) = response(0x8001, 2, question);
        assert!(!answers_question(&h, &r, question));
        // FORMERR with the question echoed (our TS to two OPT records).
        let (h, _) = response(0x8001, 1, question);
        assert!(rejects_query(&h));
        let (h, _) = response(0x8005, 1, question);
        assert!(!rejects_query(&h), "REFUSED is the backend's");
    }

    #[test]
    fn a_cut_response_becomes_a_truncated_answer_to_its_question() {
        let question = b"\x03www\x04test\x00\x00\x10\x00\x01";
        let (_, mut r) = response(0x8400, 1, question);
        r.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60, 0, 200]);
        r.extend(std::iter::repeat_n(7u8, 100)); // cut mid-record
        assert!(cut_to_truncated(&mut r, question.len()));
        let m = Message::from_vec(&r).unwrap();
        assert!(m.metadata.truncation && m.metadata.authoritative);
        assert_eq!(m.metadata.id, 7);
        assert_eq!(m.queries.len(), 1);
        assert!(m.answers.is_empty() && m.authorities.is_empty());
        let edns = m
            .edns
            .expect("an OPT, as RFC 6891 §7 asks of a truncated EDNS answer");
        assert_eq!(edns.max_payload(), UDP_PAYLOAD_MAX);
        // Cut inside the question: left alone.
        let (_, mut r) = response(0x8400, 1, &question[..5]);
        let before = r.clone();
        assert!(!cut_to_truncated(&mut r, question.len()));
        assert_eq!(r, before);
    }
}
