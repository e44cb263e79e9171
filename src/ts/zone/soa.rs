//! The zone's SOA record as answers write it: MNAME and RNAME compressed
//! against the origin where the message already holds it (RFC 1035 §4.1.4),
//! as NSD and Knot write them. Every negative answer carries the SOA, so the
//! bytes saved here are saved on every NXDOMAIN and NODATA (20 bytes for
//! `ns1.example.` and `hostmaster.example.`), and more of a signed negative
//! answer fits a small UDP size.

use crate::ts::wire::{push_name_ref, uncompressed_len};

/// An SOA record, owner aside, kept in the parts an answer assembles: as
/// an answer writes it, and as a negative answer does (its TTL aside, the
/// same record: one copy of the names for both).
#[derive(Debug, Clone, Default)]
pub(super) struct SoaWire {
    /// TYPE, CLASS and TTL.
    head: [u8; 8],
    /// The TTL of the record in a negative answer: min(SOA TTL, MINIMUM)
    /// (RFC 2308 §3).
    negative_ttl: u32,
    /// MNAME then RNAME, each the labels in front of the origin when the
    /// name ends in the origin (its flag in `under` set), else the whole
    /// name: one allocation for both (a TS of 100,000 zones holds 200,000
    /// of these).
    names: Box<[u8]>,
    /// Where RNAME starts in `names`.
    rname_at: u16,
    /// Whether MNAME, and RNAME, end in the origin.
    under: [bool; 2],
    /// SERIAL, REFRESH, RETRY, EXPIRE and MINIMUM.
    timers: [u8; 20],
}

impl SoaWire {
    /// Splits an SOA's uncompressed RDATA (`rdata`) for a zone whose
    /// lower-cased wire origin is `origin_key`, served at `ttl` in answers
    /// and at `negative_ttl` in negative answers; `None` when the RDATA is
    /// not an SOA's.
    pub(super) fn new(
        (ttl, negative_ttl): (u32, u32),
        rdata: &[u8],
        origin_key: &[u8],
    ) -> Option<Self> {
        let mut head = [0u8; 8];
        head[..2].copy_from_slice(&6u16.to_be_bytes()); // SOA
        head[2..4].copy_from_slice(&1u16.to_be_bytes()); // IN
        head[4..].copy_from_slice(&ttl.to_be_bytes());
        let mname_len = uncompressed_len(rdata)?;
        let rname_len = uncompressed_len(rdata.get(mname_len..)?)?;
        let names_end = mname_len + rname_len;
        let timers = rdata.get(names_end..)?.try_into().ok()?;
        let (mname, m_under) = split(&rdata[..mname_len], origin_key);
        let (rname, r_under) = split(&rdata[mname_len..names_end], origin_key);
        Some(SoaWire {
            head,
            negative_ttl,
            names: [mname, rname].concat().into(),
            // A name is at most 255 bytes.
            rname_at: u16::try_from(mname.len()).ok()?,
            under: [m_under, r_under],
            timers,
        })
    }

    /// Appends the record (owner already written): its names point to the
    /// origin at `origin_at` in `msg`, or spell it (`origin_key`) when the
    /// message holds no copy to point to.
    pub(super) fn write(&self, msg: &mut Vec<u8>, origin_at: Option<usize>, origin_key: &[u8]) {
        self.write_at(&self.head, msg, origin_at, origin_key);
    }

    /// [`SoaWire::write`] as a negative answer writes it: at its TTL.
    pub(super) fn write_negative(
        &self,
        msg: &mut Vec<u8>,
        origin_at: Option<usize>,
        origin_key: &[u8],
    ) {
        let mut head = self.head;
        head[4..].copy_from_slice(&self.negative_ttl.to_be_bytes());
        self.write_at(&head, msg, origin_at, origin_key);
    }

    /// The record with `head` (type, class, TTL).
    fn write_at(
        &self,
        head: &[u8; 8],
        msg: &mut Vec<u8>,
        origin_at: Option<usize>,
        origin_key: &[u8],
    ) {
        msg.extend_from_slice(head);
        let len_at = msg.len();
        msg.extend_from_slice(&[0, 0]);
        let (mname, rname) = self.names.split_at(usize::from(self.rname_at));
        for (labels, under_origin) in [(mname, self.under[0]), (rname, self.under[1])] {
            msg.extend_from_slice(labels);
            if under_origin {
                match origin_at {
                    Some(at) => push_name_ref(msg, at),
                    None => msg.extend_from_slice(origin_key),
                }
            }
        }
        msg.extend_from_slice(&self.timers);
        // An SOA's RDATA is at most two names and 20 bytes: it fits.
        let len = u16::try_from(msg.len() - len_at - 2).unwrap_or(u16::MAX);
        msg[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
    }
}

/// `name` as the labels in front of `origin_key` (and `true`) when it ends
/// in the origin on a label boundary, else whole (and `false`).
fn split<'a>(name: &'a [u8], origin_key: &[u8]) -> (&'a [u8], bool) {
    let mut at = 0;
    while at < name.len() {
        if name[at..].eq_ignore_ascii_case(origin_key) {
            return (&name[..at], true);
        }
        at += 1 + usize::from(name[at]);
    }
    (name, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::fixtures::wire_name as wire;

    fn rdata(mname: &str, rname: &str) -> Vec<u8> {
        let mut r = wire(mname);
        r.extend(wire(rname));
        r.extend((1u8..=20).collect::<Vec<_>>());
        r
    }

    /// The record written for a zone `origin` after a question for
    /// `www.<origin>` (the origin at offset 16) when `in_question`, else
    /// into an empty message.
    fn written(origin: &str, ttl: u32, rdata: &[u8], in_question: bool) -> Vec<u8> {
        let origin_key = wire(origin);
        let soa = SoaWire::new((ttl, ttl), rdata, &origin_key).unwrap();
        let mut m = vec![0u8; 12];
        if in_question {
            m.extend(wire(&format!("www.{origin}")));
        }
        let start = m.len();
        soa.write(&mut m, in_question.then_some(16), &origin_key);
        let rec = m.split_off(start);
        let rdlen = usize::from(u16::from_be_bytes([rec[8], rec[9]]));
        assert_eq!(rdlen, rec.len() - 10, "RDLENGTH");
        rec
    }

    #[test]
    fn names_under_the_origin_point_to_it() {
        let rec = written(
            "example.",
            300,
            &rdata("ns1.Example.", "hostmaster.example."),
            true,
        );
        assert_eq!(&rec[..8], &[0, 6, 0, 1, 0, 0, 1, 44]);
        // 4 + pointer, 11 + pointer, 20 timers: 20 bytes fewer than whole names.
        assert_eq!(rec.len() - 10, 4 + 2 + 11 + 2 + 20);
        assert_eq!(&rec[10..16], &[3, b'n', b's', b'1', 0xC0, 16]);
        assert_eq!(&rec[rec.len() - 20..], &(1u8..=20).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn names_elsewhere_or_no_origin_in_the_message_are_spelled_out() {
        let whole = rdata("ns.other.", "hostmaster.example.");
        assert_eq!(&written("example.", 60, &whole, false)[10..], &whole[..]);
        assert_eq!(&written("example.", 60, &whole, true)[10..16], &whole[..6]);
        // Not a label boundary: `badexample.` does not end in `example.`.
        let bad = rdata("badexample.", "a.badexample.");
        assert_eq!(&written("example.", 60, &bad, true)[10..], &bad[..]);
        // The root zone: nothing to point to.
        let root = rdata("a.root-servers.net.", "nstld.verisign-grs.com.");
        assert_eq!(&written(".", 86400, &root, false)[10..], &root[..]);
    }

    #[test]
    fn a_negative_answer_writes_the_same_record_at_its_own_ttl() {
        let origin_key = wire("example.");
        let data = rdata("ns1.example.", "hostmaster.example.");
        let soa = SoaWire::new((3600, 300), &data, &origin_key).unwrap();
        let (mut answer, mut negative) = (vec![0u8; 12], vec![0u8; 12]);
        soa.write(&mut answer, Some(12), &origin_key);
        soa.write_negative(&mut negative, Some(12), &origin_key);
        assert_eq!(&answer[16..20], &3600u32.to_be_bytes());
        assert_eq!(&negative[16..20], &300u32.to_be_bytes());
        assert_eq!(answer[..16], negative[..16]);
        assert_eq!(answer[20..], negative[20..]);
    }

    #[test]
    fn rdata_that_is_not_an_soa_is_refused() {
        let origin = wire("example.");
        assert!(SoaWire::new((1, 1), &[3, b'n', b's'], &origin).is_none());
        assert!(SoaWire::new((1, 1), &rdata("a.", "b.")[..20], &origin).is_none());
    }
}
