//! Forwarding loops: each LS marks the queries it sends upstream (client
//! queries it forwards and its own health probes) with an EDNS option of
//! its own, and never forwards a query that carries its own mark: the query
//! went round and came back (two LSes that list each other, or a longer
//! ring). Such a query is answered REFUSED at once, so the LS before it in
//! the ring moves on or fails the query, instead of every hop sending it on
//! with a fresh deadline, forever (measured before: ~20,000 queries/s per LS
//! between two idle LSes, from their health probes alone).
//!
//! The mark is an option of the local/experimental range (RFC 6891 §9,
//! [`OPTION_CODE`]) whose payload is the LS's random [`Mark`]; backends
//! ignore options they do not know (RFC 6891 §6.1.2), and an LS further on
//! keeps the marks it was given and adds its own. Only a query's copy sent
//! upstream is marked (never the bytes the LS answers from), and only when
//! that is safe: one question, no answer or authority records, no TSIG or
//! SIG(0) (the signature covers the bytes). A query without EDNS gets an OPT
//! for the mark (payload 512, as without EDNS) only when its backend has
//! shown it speaks EDNS (its probe answers carry an OPT): a server without
//! EDNS would answer FORMERR; the LS takes that OPT out of the answer before
//! the client, which sent none, gets it. Other queries go unmarked: a ring
//! can still carry those, as through any forwarder without such a mark.
use crate::dns::{
    HEADER_LEN, MessageWalk, RecordAt, TYPE_OPT, TYPE_SIG, TYPE_TSIG, WireHeader, records, u16_at,
    walk_answer, walk_message,
};

/// EDNS option code of the mark (local/experimental use, RFC 6891 §9).
pub const OPTION_CODE: u16 = 65_053;
/// Bytes of the mark's payload.
pub const MARK_LEN: usize = 8;

/// One LS's mark: random, kept across reloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark([u8; MARK_LEN]);

impl Mark {
    /// A fresh random mark.
    pub fn random() -> Self {
        Mark(rand::random())
    }

    /// The mark with these bytes (tests).
    pub fn from_bytes(b: [u8; MARK_LEN]) -> Self {
        Mark(b)
    }

    /// Adds this mark to `query` (a copy to send upstream, its question
    /// ending at `question_end`) when that is safe (see the module docs);
    /// true when it did. A query with no additional records at all gets an
    /// OPT of its own (payload size 512, as without EDNS) when `add_opt`:
    /// its backend is known to speak EDNS, and the LS takes the OPT out of
    /// the answer again ([`PlainAnswer`]).
    pub fn stamp(&self, query: &mut Vec<u8>, question_end: usize, add_opt: bool) -> bool {
        if add_opt && query.len() == question_end && set_arcount_one(query) {
            // The OPT goes last, written with the mark in one append: no
            // walk to find it again, no bytes moved.
            if !WireHeader::read(query).is_some_and(|h| markable(&h, question_end)) {
                // Not a query the mark is safe in: its OPT stays empty (the
                // answer loses it all the same, [`PlainAnswer`]).
                query.extend_from_slice(&opt_head(0));
                return false;
            }
            query.extend_from_slice(&opt_head(OPTION_LEN as u16));
            query.extend_from_slice(&self.option());
            return true;
        }
        let Some(opt) = find_opt(query, question_end) else {
            return false;
        };
        let Ok(rdlen) = u16::try_from(opt.rdata_end - opt.rdata_start + OPTION_LEN) else {
            return false;
        };
        // An OPT that ends the query (the usual place) grows by an append.
        if opt.rdata_end == query.len() {
            query.extend_from_slice(&self.option());
        } else {
            query.splice(opt.rdata_end..opt.rdata_end, self.option());
        }
        if let Some(field) = query.get_mut(opt.rdlen_at..opt.rdlen_at + 2) {
            field.copy_from_slice(&rdlen.to_be_bytes());
        }
        true
    }

    /// The mark as an EDNS option: code, length, payload.
    fn option(&self) -> [u8; OPTION_LEN] {
        let mut option = [0u8; OPTION_LEN];
        option[..2].copy_from_slice(&OPTION_CODE.to_be_bytes());
        option[2..4].copy_from_slice(&(MARK_LEN as u16).to_be_bytes());
        option[4..].copy_from_slice(&self.0);
        option
    }

    /// Whether `query` (its question ending at `question_end`) carries this
    /// mark: this LS sent it, and it came back.
    pub fn carried_by(&self, query: &[u8], question_end: usize) -> bool {
        if query.len() <= question_end {
            return false; // no additional section: the common case, at once
        }
        let Some(opt) = find_opt(query, question_end) else {
            return false;
        };
        let mut rdata = query
            .get(opt.rdata_start..opt.rdata_end)
            .unwrap_or_default();
        while let [c0, c1, l0, l1, rest @ ..] = rdata {
            let len = usize::from(u16::from_be_bytes([*l0, *l1]));
            let Some(data) = rest.get(..len) else {
                return false;
            };
            if u16::from_be_bytes([*c0, *c1]) == OPTION_CODE && data == self.0 {
                return true;
            }
            rdata = rest.get(len..).unwrap_or_default();
        }
        false
    }
}

/// Bytes of the mark's option: code, length, payload.
const OPTION_LEN: usize = 4 + MARK_LEN;

/// Sets the ARCOUNT of a query that has no additional records (its ARCOUNT
/// 0) to one, for the OPT [`Mark::stamp`] appends; false when it has some.
fn set_arcount_one(query: &mut [u8]) -> bool {
    match query.get_mut(10..12) {
        Some(ar) if ar == [0, 0] => {
            ar.copy_from_slice(&[0, 1]);
            true
        }
        _ => false,
    }
}

/// An OPT record up to its RDATA (root owner, payload 512 as without EDNS,
/// no flags), its RDATA `rdlen` bytes.
fn opt_head(rdlen: u16) -> [u8; 11] {
    let [l0, l1] = rdlen.to_be_bytes();
    [0, 0, 41, 2, 0, 0, 0, 0, 0, l0, l1]
}

/// What an answer for a client that sent no OPT needs before it is passed
/// on, read in one walk over it ([`PlainAnswer::of`]). The LS may have given
/// the query an OPT of its own for its mark ([`Mark::stamp`]); the client,
/// which sent none, must get none (RFC 6891 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainAnswer {
    /// Passed on as it is: it has no OPT, a signed one (the signature
    /// covers the bytes), or cannot be walked.
    AsIs,
    /// Passed on without its OPT record, the bytes `start..end`.
    WithoutOpt {
        /// Offset of the OPT's owner name.
        start: usize,
        /// Offset just past its RDATA.
        end: usize,
    },
    /// Unusable: its OPT carries an extended rcode (the upper bits, RFC
    /// 6891 §6.1.3: BADVERS, BADCOOKIE, ...) that the client cannot be
    /// told: read from its header alone it would mean another rcode, often
    /// NOERROR. Such an answer is judged failed: another backend is asked.
    LosesRcode,
}

impl PlainAnswer {
    /// What `resp`, an answer for a client that sent an OPT
    /// (`client_has_opt`) or none, needs: always [`PlainAnswer::AsIs`] for
    /// the former; else the verdict of one walk ([`PlainAnswer::of`]).
    /// `resp` passed the upstream check against its query's question
    /// section, `question_len` bytes ([`crate::ls::upstream::accept`]): the
    /// walk starts past it ([`walk_answer`]).
    pub fn for_client(client_has_opt: bool, resp: &[u8], question_len: usize) -> Self {
        if client_has_opt || u16_at(resp, 10).is_none_or(|ar| ar == 0) {
            return PlainAnswer::AsIs;
        }
        PlainAnswer::of_walk(resp, walk_answer(resp, question_len))
    }

    /// What `resp`, an answer for a client that sent no OPT, needs.
    pub fn of(resp: &[u8]) -> Self {
        if u16_at(resp, 10).is_none_or(|ar| ar == 0) {
            return PlainAnswer::AsIs; // no additional section: at once
        }
        PlainAnswer::of_walk(resp, walk_message(resp))
    }

    /// The verdict on `resp` from its walk.
    fn of_walk(resp: &[u8], walk: Option<MessageWalk>) -> Self {
        let Some((opt, signed)) = walk.and_then(|w| Some((w.opt?, w.signed))) else {
            return PlainAnswer::AsIs;
        };
        if opt.ttl_high_byte(resp).is_some_and(|ext| ext != 0) {
            PlainAnswer::LosesRcode
        } else if signed {
            PlainAnswer::AsIs
        } else {
            PlainAnswer::WithoutOpt {
                start: opt.start,
                end: opt.rdata_end,
            }
        }
    }

    /// Whether the answer can be passed on at all.
    pub fn usable(self) -> bool {
        self != PlainAnswer::LosesRcode
    }

    /// Makes `resp` (the bytes this was read from, or a copy of them) what
    /// the client gets: takes its OPT out and lowers its ARCOUNT for
    /// [`PlainAnswer::WithoutOpt`]; leaves it as it is otherwise.
    pub fn apply(self, resp: &mut Vec<u8>) {
        let PlainAnswer::WithoutOpt { start, end } = self else {
            return;
        };
        let Some(ar) = u16_at(resp, 10).and_then(|n| n.checked_sub(1)) else {
            return;
        };
        if start > end || end > resp.len() {
            return;
        }
        resp.drain(start..end);
        if let Some(field) = resp.get_mut(10..12) {
            field.copy_from_slice(&ar.to_be_bytes());
        }
    }
}

/// Whether `resp` carries an OPT record (its sender speaks EDNS).
pub fn has_opt(resp: &[u8]) -> bool {
    walk_message(resp).is_some_and(|w| w.opt.is_some())
}

/// Whether a query with header `h`, its question ending at `question_end`,
/// may be marked: one question, no answer or authority records.
fn markable(h: &WireHeader, question_end: usize) -> bool {
    h.qdcount == 1 && h.ancount == 0 && h.nscount == 0 && question_end >= HEADER_LEN
}

/// The OPT of a query that may be marked: one question ending at
/// `question_end`, no answer or authority records, exactly one OPT (owned
/// by the root), no TSIG or SIG(0), every record within the message.
fn find_opt(msg: &[u8], question_end: usize) -> Option<RecordAt> {
    if !markable(&WireHeader::read(msg)?, question_end) {
        return None;
    }
    let mut additional = records(msg, question_end, usize::from(u16_at(msg, 10)?));
    let mut opt = None;
    for r in &mut additional {
        let r = r?;
        match r.rtype {
            TYPE_OPT if opt.is_none() && r.root_owned() => opt = Some(r),
            TYPE_OPT | TYPE_TSIG | TYPE_SIG => return None,
            _ => {}
        }
    }
    (additional.pos() == msg.len()).then_some(opt).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::{Name, RecordType};

    /// A query for `www.example. A`, with an OPT when `edns`; and where its
    /// question ends.
    fn query(edns: bool) -> (Vec<u8>, usize) {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("www.example.").unwrap(),
            RecordType::A,
        ));
        let end = m.to_vec().unwrap().len();
        if edns {
            m.set_edns(Edns::new());
        }
        (m.to_vec().unwrap(), end)
    }

    #[test]
    fn a_stamped_query_carries_its_mark_and_stays_a_valid_query() {
        let (a, b) = (Mark::from_bytes([1; 8]), Mark::from_bytes([2; 8]));
        let (mut q, end) = query(true);
        assert!(!a.carried_by(&q, end));
        assert!(a.stamp(&mut q, end, false));
        assert!(a.carried_by(&q, end));
        assert!(!b.carried_by(&q, end), "another LS's mark");
        // The next LS adds its own; both are found.
        assert!(b.stamp(&mut q, end, false));
        assert!(a.carried_by(&q, end) && b.carried_by(&q, end));
        let m = Message::from_vec(&q).expect("still decodes");
        let opts = m.edns.expect("its OPT").options().as_ref().len();
        assert_eq!(opts, 2);
    }

    #[test]
    fn a_query_without_edns_gets_an_opt_for_the_mark_only_when_asked_to() {
        let a = Mark::from_bytes([1; 8]);
        let (mut q, end) = query(false);
        let before = q.clone();
        // Its backend may not speak EDNS: left alone.
        assert!(!a.stamp(&mut q, end, false));
        assert_eq!(q, before);
        assert!(!a.carried_by(&q, end));
        assert!(a.stamp(&mut q, end, true));
        assert!(a.carried_by(&q, end));
        let m = Message::from_vec(&q).expect("still decodes");
        assert_eq!(m.edns.expect("an OPT").max_payload(), 512);
        // The backend's answer (with an OPT) loses it again.
        let mut resp = Message::from_vec(&q).unwrap();
        resp.metadata.message_type = hickory_proto::op::MessageType::Response;
        let mut bytes = resp.to_vec().unwrap();
        assert!(has_opt(&bytes));
        let plain = PlainAnswer::of(&bytes);
        assert!(matches!(plain, PlainAnswer::WithoutOpt { .. }));
        assert_eq!(
            PlainAnswer::for_client(true, &bytes, end - HEADER_LEN),
            PlainAnswer::AsIs
        );
        assert_eq!(
            PlainAnswer::for_client(false, &bytes, end - HEADER_LEN),
            plain
        );
        plain.apply(&mut bytes);
        assert!(!has_opt(&bytes));
        let m = Message::from_vec(&bytes).expect("decodes");
        assert!(m.edns.is_none());
        assert_eq!(m.queries.len(), 1);
        assert_eq!(
            PlainAnswer::of(&bytes),
            PlainAnswer::AsIs,
            "nothing left to take out"
        );
    }

    #[test]
    fn an_added_opt_is_the_one_an_edns_query_would_have_had() {
        let a = Mark::from_bytes([7, 6, 5, 4, 3, 2, 1, 0]);
        let (q, end) = query(false);
        // Written at once with its mark, the same bytes as an empty OPT
        // (payload 512) added first and then found and marked.
        let mut fast = q.clone();
        assert!(a.stamp(&mut fast, end, true));
        let mut walked = q.clone();
        walked[11] = 1;
        walked.extend_from_slice(&[0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert!(a.stamp(&mut walked, end, false));
        assert_eq!(fast, walked);
        let mut mark = vec![0xfe, 0x1d, 0, 8];
        mark.extend_from_slice(&[7, 6, 5, 4, 3, 2, 1, 0]);
        assert_eq!(
            fast[q.len()..q.len() + 11],
            [0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 12]
        );
        assert_eq!(fast[q.len() + 11..], mark[..]);
        // Two questions: not markable; it gets its empty OPT all the same.
        let mut two = q.clone();
        two[5] = 2;
        let end = two.len();
        assert!(!a.stamp(&mut two, end, true));
        assert_eq!(two[11], 1);
        assert_eq!(two[end..], [0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn a_mark_goes_inside_an_opt_that_is_not_the_last_record() {
        let a = Mark::from_bytes([1; 8]);
        let (mut q, end) = query(true);
        // An A record after the OPT (ARCOUNT 2).
        let record = [0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1];
        q[11] = 2;
        q.extend_from_slice(&record);
        assert!(a.stamp(&mut q, end, true));
        assert!(a.carried_by(&q, end));
        assert_eq!(q[q.len() - record.len()..], record, "moved, intact");
        let m = Message::from_vec(&q).expect("still decodes");
        assert_eq!(m.edns.expect("its OPT").options().as_ref().len(), 1);
    }

    #[test]
    fn an_extended_rcode_a_plain_client_cannot_be_told_is_unusable() {
        let a = Mark::from_bytes([1; 8]);
        let (mut q, end) = query(false);
        assert!(a.stamp(&mut q, end, true));
        // BADVERS: rcode 16, its upper bits (1) in the OPT's TTL field.
        let mut bytes = q.clone();
        bytes[2] |= 0x80;
        let at = bytes.len() - (4 + MARK_LEN) - 11 + 5;
        assert_eq!(bytes[at - 4..at - 2], [0, 41]);
        bytes[at] = 1;
        let plain = PlainAnswer::of(&bytes);
        assert_eq!(plain, PlainAnswer::LosesRcode);
        assert_eq!(
            PlainAnswer::for_client(false, &bytes, end - HEADER_LEN),
            PlainAnswer::LosesRcode
        );
        assert!(!plain.usable());
        assert!(
            PlainAnswer::for_client(true, &bytes, end - HEADER_LEN).usable(),
            "an EDNS client"
        );
        // Signed, the answer keeps its OPT, and is unusable all the same.
        let mut signed = bytes.clone();
        signed[11] = 2;
        signed.extend_from_slice(&[0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0]);
        assert_eq!(PlainAnswer::of(&signed), PlainAnswer::LosesRcode);
        signed[at] = 0;
        assert_eq!(PlainAnswer::of(&signed), PlainAnswer::AsIs);
    }

    #[test]
    fn queries_it_cannot_mark_safely_are_left_alone() {
        let a = Mark::from_bytes([1; 8]);
        // A record after the OPT that is not an OPT (here a TSIG type) or cut short.
        let (mut q, end) = query(true);
        q[11] = 2; // ARCOUNT 2
        q.extend_from_slice(&[0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0]);
        assert!(!a.stamp(&mut q.clone(), end, true), "signed");
        let (mut q, end) = query(true);
        q.truncate(q.len() - 1);
        assert!(!a.stamp(&mut q, end, true), "cut short");
    }
}
