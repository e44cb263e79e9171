//! The zone's SOA record as answers write it: MNAME and RNAME compressed
//! against the origin where the message already holds it (RFC 1035 §4.1.4),
//! as NSD and Knot write them. Every negative answer carries the SOA, so the
//! bytes saved here are saved on every NXDOMAIN and NODATA (20 bytes for
//! `ns1.example.` and `hostmaster.example.`), and more of a signed negative
//! answer fits a small UDP size.

use crate::ts::wire::{NAME_MAX, push_name_ref, uncompressed_len};

/// An SOA record, owner aside, kept in the parts an answer assembles: as
/// an answer writes it, and as a negative answer does (its TTL aside, the
/// same record: one copy of the names for both). It is also the zone's SOA
/// as read ([`SoaWire::rdata`]): a load decodes no SOA.
#[derive(Debug, Clone, Default)]
pub(super) struct SoaWire {
    /// TYPE, CLASS and TTL.
    head: [u8; 8],
    /// The TTL of the record in a negative answer: min(SOA TTL, MINIMUM)
    /// (RFC 2308 §3).
    negative_ttl: u32,
    /// MNAME then RNAME, each the labels in front of the origin when the
    /// name ends in the origin spelled as the origin's key (lower case),
    /// else the whole name as read: one allocation for both (a TS of
    /// 100,000 zones holds 200,000 of these).
    names: Box<[u8]>,
    /// Where RNAME starts in `names`.
    rname_at: u16,
    /// Per name, when it ends in the origin: how many of its bytes come
    /// before the origin (an answer points to the origin after them).
    front: [Option<u8>; 2],
    /// Per name: whether `names` holds it whole (it does not end in the
    /// origin, or ends in it spelled in another case), else its front only.
    whole: [bool; 2],
    /// SERIAL, REFRESH, RETRY, EXPIRE and MINIMUM.
    timers: [u8; 20],
}

impl SoaWire {
    /// Splits an SOA's uncompressed RDATA (`rdata`) for a zone whose
    /// lower-cased wire origin is `origin_key`, served at `ttl` in answers
    /// and at `negative_ttl` in negative answers; `None` when the RDATA is
    /// not an SOA's ([`soa_shape`]).
    pub(super) fn new(
        (ttl, negative_ttl): (u32, u32),
        rdata: &[u8],
        origin_key: &[u8],
    ) -> Option<Self> {
        let mut head = [0u8; 8];
        head[..2].copy_from_slice(&6u16.to_be_bytes()); // SOA
        head[2..4].copy_from_slice(&1u16.to_be_bytes()); // IN
        head[4..].copy_from_slice(&ttl.to_be_bytes());
        let (mname_len, names_end) = soa_shape(rdata)?;
        let timers = rdata.get(names_end..)?.try_into().ok()?;
        let (mname, rname) = (&rdata[..mname_len], &rdata[mname_len..names_end]);
        let (m_front, r_front) = (split(mname, origin_key), split(rname, origin_key));
        // Kept whole unless the origin is spelled as its key (the bytes
        // rebuilt from the front and the key are then the bytes read).
        let kept = |name: &'_ [u8], front: Option<usize>| match front {
            Some(at) if name[at..] == *origin_key => (at, false),
            _ => (name.len(), true),
        };
        let ((m_kept, m_whole), (r_kept, r_whole)) = (kept(mname, m_front), kept(rname, r_front));
        let names: Box<[u8]> = if m_kept == mname_len {
            // MNAME whole: RNAME's part right after it, in the RDATA.
            rdata[..mname_len + r_kept].into()
        } else {
            [&mname[..m_kept], &rname[..r_kept]].concat().into()
        };
        Some(SoaWire {
            head,
            negative_ttl,
            names,
            // A name is at most 255 bytes (soa_shape).
            rname_at: u16::try_from(m_kept).ok()?,
            front: [
                m_front.and_then(|f| u8::try_from(f).ok()),
                r_front.and_then(|f| u8::try_from(f).ok()),
            ],
            whole: [m_whole, r_whole],
            timers,
        })
    }

    /// The SOA's RDATA, as read (names uncompressed, as spelled): `origin_key`
    /// the zone's, as given to [`SoaWire::new`]. Empty for the default.
    pub(super) fn rdata(&self, origin_key: &[u8]) -> Vec<u8> {
        if self.head[..2] != 6u16.to_be_bytes() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(self.names.len() + 2 * origin_key.len() + 20);
        for (i, part) in self.parts().into_iter().enumerate() {
            out.extend_from_slice(part);
            if !self.whole[i] {
                out.extend_from_slice(origin_key);
            }
        }
        out.extend_from_slice(&self.timers);
        out
    }

    /// MNAME's and RNAME's bytes in `names`.
    fn parts(&self) -> [&[u8]; 2] {
        let (mname, rname) = self.names.split_at(usize::from(self.rname_at));
        [mname, rname]
    }

    /// The SERIAL.
    pub(super) fn serial(&self) -> u32 {
        u32::from_be_bytes([
            self.timers[0],
            self.timers[1],
            self.timers[2],
            self.timers[3],
        ])
    }

    /// Sets the SERIAL.
    pub(super) fn set_serial(&mut self, serial: u32) {
        self.timers[..4].copy_from_slice(&serial.to_be_bytes());
    }

    /// Whether both SOAs hold the same names (case aside) and timers, the
    /// SERIAL aside: `self` of a zone at `key`, `other` at `other_key`.
    pub(super) fn same_but_serial(&self, key: &[u8], other: &SoaWire, other_key: &[u8]) -> bool {
        self.timers[4..] == other.timers[4..]
            && (0..2).all(|i| {
                let (a_len, mut a) = self.spelled(key, i);
                let (b_len, mut b) = other.spelled(other_key, i);
                a_len == b_len && a.all(|x| b.next().is_some_and(|y| x.eq_ignore_ascii_case(&y)))
            })
    }

    /// Name `i` (0 MNAME, 1 RNAME) as read: its length, and its bytes.
    fn spelled<'a>(&'a self, key: &'a [u8], i: usize) -> (usize, impl Iterator<Item = u8> + 'a) {
        let part = self.parts()[i];
        let tail: &[u8] = if self.whole[i] { &[] } else { key };
        (part.len() + tail.len(), part.iter().chain(tail).copied())
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
        for (i, part) in self.parts().into_iter().enumerate() {
            match self.front[i] {
                Some(front) => {
                    msg.extend_from_slice(&part[..usize::from(front).min(part.len())]);
                    match origin_at {
                        Some(at) => push_name_ref(msg, at),
                        None => msg.extend_from_slice(origin_key),
                    }
                }
                None => msg.extend_from_slice(part),
            }
        }
        msg.extend_from_slice(&self.timers);
        // An SOA's RDATA is at most two names and 20 bytes: it fits.
        let len = u16::try_from(msg.len() - len_at - 2).unwrap_or(u16::MAX);
        msg[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
    }
}

/// Where `name` (uncompressed) meets `origin_key` when it ends in the
/// origin on a label boundary, case aside: the length of its labels in
/// front of the origin.
fn split(name: &[u8], origin_key: &[u8]) -> Option<usize> {
    // The origin's bytes are the name's last ones: one comparison, at the
    // one place they can start (if a label starts there).
    let at = name.len().checked_sub(origin_key.len())?;
    let mut label = 0;
    while label < at {
        label += 1 + usize::from(name[label]);
    }
    // The bytes as they are first (the origin is most often spelled as its
    // key): a byte-wise comparison is cheaper than a case-blind one.
    let tail = &name[at..];
    (label == at && (tail == origin_key || tail.eq_ignore_ascii_case(origin_key))).then_some(at)
}

/// Whether `rdata` is an SOA's: two uncompressed names of at most 255
/// bytes each, then 20 bytes of numbers. MNAME's length, and where the
/// numbers start.
pub(super) fn soa_shape(rdata: &[u8]) -> Option<(usize, usize)> {
    let mname = uncompressed_len(rdata).filter(|&n| n <= NAME_MAX)?;
    let rname = uncompressed_len(rdata.get(mname..)?).filter(|&n| n <= NAME_MAX)?;
    (rdata.len() == mname + rname + 20).then_some((mname, mname + rname))
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

    /// The RDATA given back as read, byte for byte, whichever way each name
    /// is kept: in front of the origin as its key spells it, whole in
    /// another case, whole elsewhere, the origin itself, the root zone's.
    #[test]
    fn the_rdata_is_given_back_as_read() {
        for (origin, mname, rname) in [
            ("example.", "ns1.example.", "hostmaster.example."),
            ("example.", "ns1.EXAMPLE.", "Hostmaster.Example."),
            ("example.", "ns.other.", "hostmaster.example."),
            ("example.", "example.", "example."),
            ("example.", "badexample.", "a.badexample."),
            (".", "a.root-servers.net.", "nstld.verisign-grs.com."),
            (".", ".", "."),
        ] {
            let key = wire(origin);
            let data = rdata(mname, rname);
            let soa = SoaWire::new((60, 60), &data, &key).unwrap();
            assert_eq!(soa.rdata(&key), data, "{mname} {rname} at {origin}");
            assert_eq!(soa.serial(), u32::from_be_bytes([1, 2, 3, 4]));
            let mut other = soa.clone();
            other.set_serial(99);
            assert_eq!(other.serial(), 99);
            assert_eq!(
                &other.rdata(&key)[data.len() - 20..][..4],
                &99u32.to_be_bytes()
            );
            assert!(soa.same_but_serial(&key, &other, &key));
        }
        assert!(SoaWire::default().rdata(&wire("example.")).is_empty());
    }

    /// The names compared case aside, the serial aside, the other timers
    /// not.
    #[test]
    fn same_but_serial_compares_names_case_aside_and_the_timers() {
        let key = wire("example.");
        let soa = |mname: &str, rname: &str, last: u8| {
            let mut data = rdata(mname, rname);
            *data.last_mut().unwrap() = last;
            SoaWire::new((60, 60), &data, &key).unwrap()
        };
        let base = soa("ns1.example.", "hostmaster.example.", 20);
        assert!(base.same_but_serial(&key, &soa("NS1.Example.", "hostmaster.EXAMPLE.", 20), &key));
        assert!(!base.same_but_serial(&key, &soa("ns2.example.", "hostmaster.example.", 20), &key));
        assert!(!base.same_but_serial(&key, &soa("ns1.example.", "hm.example.", 20), &key));
        assert!(!base.same_but_serial(&key, &soa("ns1.example.", "hostmaster.example.", 21), &key));
        // Whole against split: the same name.
        let other_key = wire("other.");
        let elsewhere = SoaWire::new(
            (60, 60),
            &rdata("ns1.example.", "hostmaster.example."),
            &other_key,
        )
        .unwrap();
        assert!(base.same_but_serial(&key, &elsewhere, &other_key));
    }

    #[test]
    fn an_soa_shape_is_two_names_and_twenty_bytes() {
        assert_eq!(soa_shape(&rdata("a.", "b.")), Some((3, 6)));
        assert_eq!(soa_shape(&rdata("a.", "b.")[..25]), None);
        let mut long = rdata("a.", "b.");
        long.push(0);
        assert_eq!(soa_shape(&long), None);
        // A compression pointer, a name over 255 bytes.
        assert_eq!(soa_shape(&[0xc0, 12, 0]), None);
        let mut big = Vec::new();
        for _ in 0..5 {
            big.push(63);
            big.extend([b'a'; 63]);
        }
        big.push(0);
        big.extend([0; 21]);
        assert_eq!(soa_shape(&big), None);
    }
}
