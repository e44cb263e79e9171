//! Whether a backend's answer can be served to another client at all:
//! every name in it that a reader decodes (each record's owner, and the
//! names inside the RDATA of the types that carry one) must not read bytes
//! a hit rewrites ([`names_stay_put`]): the header (ID, RD, TC, the counts
//! when an OPT is added or the answer cut) and the records' TTL fields
//! (aged on every hit). A compression pointer into either would read other
//! bytes for each client; no server writes one (names start at offset 12,
//! and a TTL is no name), so such an answer is not kept.
//!
//! Pointers are followed (at most [`HOPS`] of them, so a loop ends), each
//! must point back (RFC 1035 §4.1.4: to a prior occurrence), and every
//! label must lie within the message.
use crate::dns::{HEADER_LEN, RecordAt};

/// Most compression pointers followed in one name.
const HOPS: usize = 64;

/// Where the names of a record type's RDATA are: the offset of the first
/// and how many follow one another; `None` for types whose RDATA holds no
/// name a reader decodes (or NAPTR, placed by [`naptr_name`]).
fn rdata_names(rtype: u16) -> Option<(usize, usize)> {
    Some(match rtype {
        // NS, MD, MF, CNAME, MB, MG, MR, PTR, NXT, NSEC, DNAME, TKEY
        2..=5 | 7..=9 | 12 | 30 | 47 | 39 | 249 => (0, 1),
        // SOA, MINFO, RP
        6 | 14 | 17 => (0, 2),
        // MX, AFSDB, RT, KX, SVCB, HTTPS
        15 | 18 | 21 | 36 | 64 | 65 => (2, 1),
        // PX
        26 => (2, 2),
        // SRV
        33 => (6, 1),
        // SIG, RRSIG: the signer
        24 | 46 => (18, 1),
        _ => return None,
    })
}

/// The TTL fields of the records so far (ascending offsets) and of the
/// record being read: the bytes a hit ages.
pub(super) struct Ttls<'a> {
    pub(super) before: &'a [u16],
    pub(super) own: usize,
}

impl Ttls<'_> {
    /// Whether `start..end` touches a TTL field.
    fn touch(&self, start: usize, end: usize) -> bool {
        let overlaps = |t: usize| t < end && start < t + 4;
        let i = self
            .before
            .partition_point(|&t| usize::from(t) + 4 <= start);
        self.before
            .get(i)
            .is_some_and(|&t| overlaps(usize::from(t)))
            || overlaps(self.own)
    }
}

/// The end of the name at `pos` as it is written (where the record goes
/// on), if the name, pointers followed, lies within `msg`, every pointer
/// of it points back and past the header, and none of its bytes is a TTL.
fn name_end(msg: &[u8], mut pos: usize, ttls: &Ttls<'_>) -> Option<usize> {
    let mut end = None;
    for _ in 0..HOPS {
        let len = *msg.get(pos)?;
        let width = if len & 0xc0 == 0xc0 {
            2
        } else {
            1 + usize::from(len)
        };
        if ttls.touch(pos, pos + width) {
            return None;
        }
        match len & 0xc0 {
            0x00 if len == 0 => return Some(end.unwrap_or(pos + 1)),
            0x00 => pos += width,
            0xc0 => {
                let low = *msg.get(pos + 1)?;
                end.get_or_insert(pos + 2);
                let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                if target < HEADER_LEN || target >= pos {
                    return None;
                }
                pos = target;
            }
            _ => return None,
        }
    }
    None
}

/// NAPTR's replacement name: past order, preference and three
/// character-strings.
fn naptr_name(msg: &[u8], r: &RecordAt) -> Option<usize> {
    let mut at = r.rdata_start + 4;
    for _ in 0..3 {
        at += 1 + usize::from(*msg.get(at)?);
    }
    (at < r.rdata_end).then_some(at)
}

/// Whether record `r`'s owner and RDATA names stay put when the header
/// changes (see the module header).
pub(super) fn names_stay_put(msg: &[u8], r: &RecordAt, ttls_before: &[u16]) -> bool {
    let ttls = Ttls {
        before: ttls_before,
        own: r.fixed + 4,
    };
    if name_end(msg, r.start, &ttls).is_none() {
        return false;
    }
    let (mut at, count) = match (r.rtype, rdata_names(r.rtype)) {
        (35, _) => match naptr_name(msg, r) {
            Some(at) => (at, 1),
            None => return false,
        },
        (_, Some((offset, count))) => (r.rdata_start + offset, count),
        (_, None) => return true,
    };
    for _ in 0..count {
        if at >= r.rdata_end {
            return true; // a short RDATA: nothing more to read
        }
        match name_end(msg, at, &ttls) {
            Some(end) => at = end,
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header, then `www.` at 12 and a name pointing at it.
    fn msg(pointer_to: u8) -> Vec<u8> {
        let mut m = vec![0; HEADER_LEN];
        m.extend_from_slice(b"\x03www\x00");
        m.extend_from_slice(&[0xc0, pointer_to]);
        m
    }

    const NO_TTLS: Ttls<'static> = Ttls {
        before: &[],
        own: usize::MAX - 4,
    };

    #[test]
    fn pointers_into_the_header_forward_or_round_in_circles_are_refused() {
        assert_eq!(name_end(&msg(12), 12, &NO_TTLS), Some(17));
        assert_eq!(
            name_end(&msg(12), 17, &NO_TTLS),
            Some(19),
            "ends where the pointer is"
        );
        assert_eq!(name_end(&msg(11), 17, &NO_TTLS), None, "into the header");
        assert_eq!(name_end(&msg(0), 17, &NO_TTLS), None);
        assert_eq!(
            name_end(&msg(17), 17, &NO_TTLS),
            None,
            "a pointer to itself"
        );
        assert_eq!(name_end(&msg(18), 17, &NO_TTLS), None, "forward");
        assert_eq!(name_end(&msg(40), 17, &NO_TTLS), None, "past the end");
        assert_eq!(name_end(&[0x40, 0], 0, &NO_TTLS), None, "an extended label");
    }

    #[test]
    fn a_name_reading_a_ttl_field_is_refused() {
        // `www.` at 12..17, a pointer to 14 at 17: fine unless a TTL lies
        // under the bytes it reads.
        let m = msg(12);
        let ttl_at = |t: u16| Ttls {
            before: &[],
            own: usize::from(t),
        };
        assert_eq!(name_end(&m, 17, &ttl_at(30)), Some(19));
        assert_eq!(name_end(&m, 17, &ttl_at(14)), None, "the label read");
        assert_eq!(name_end(&m, 17, &ttl_at(18)), None, "the pointer itself");
        let before = [10u16];
        let earlier = Ttls {
            before: &before,
            own: 40,
        };
        assert_eq!(name_end(&m, 17, &earlier), None, "an earlier record's TTL");
    }
}
