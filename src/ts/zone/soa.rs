//! The zone's SOA record as answers write it: MNAME and RNAME compressed
//! against the origin where the message already holds it (RFC 1035 §4.1.4),
//! as NSD and Knot write them. Every negative answer carries the SOA, so the
//! bytes saved here are saved on every NXDOMAIN and NODATA (20 bytes for
//! `ns1.example.` and `hostmaster.example.`), and more of a signed negative
//! answer fits a small UDP size.

use crate::ts::wire::push_name_ref;

/// An SOA record, owner aside, kept in the parts an answer assembles.
#[derive(Debug, Clone, Default)]
pub(super) struct SoaWire {
    /// TYPE, CLASS and TTL.
    head: [u8; 8],
    /// MNAME and RNAME: the labels in front of the origin with `true` when
    /// the name ends in the origin, else the whole name with `false`.
    names: [(Box<[u8]>, bool); 2],
    /// SERIAL, REFRESH, RETRY, EXPIRE and MINIMUM.
    timers: [u8; 20],
}

impl SoaWire {
    /// Splits an SOA's uncompressed RDATA (`rdata`) for a zone whose
    /// lower-cased wire origin is `origin_key`; `None` when the RDATA is not
    /// an SOA's.
    pub(super) fn new(ttl: u32, rdata: &[u8], origin_key: &[u8]) -> Option<Self> {
        let mut head = [0u8; 8];
        head[..2].copy_from_slice(&6u16.to_be_bytes()); // SOA
        head[2..4].copy_from_slice(&1u16.to_be_bytes()); // IN
        head[4..].copy_from_slice(&ttl.to_be_bytes());
        let mname_len = name_len(rdata)?;
        let rname_len = name_len(rdata.get(mname_len..)?)?;
        let names_end = mname_len + rname_len;
        let timers = rdata.get(names_end..)?.try_into().ok()?;
        Some(SoaWire {
            head,
            names: [
                split(&rdata[..mname_len], origin_key),
                split(&rdata[mname_len..names_end], origin_key),
            ],
            timers,
        })
    }

    /// Appends the record (owner already written): its names point to the
    /// origin at `origin_at` in `msg`, or spell it (`origin_key`) when the
    /// message holds no copy to point to.
    pub(super) fn write(&self, msg: &mut Vec<u8>, origin_at: Option<usize>, origin_key: &[u8]) {
        msg.extend_from_slice(&self.head);
        let len_at = msg.len();
        msg.extend_from_slice(&[0, 0]);
        for (labels, under_origin) in &self.names {
            msg.extend_from_slice(labels);
            if *under_origin {
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

/// The length of the uncompressed wire name at the start of `wire`.
fn name_len(wire: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let len = usize::from(*wire.get(at)?);
        if len == 0 {
            return Some(at + 1);
        }
        if len > 63 {
            return None;
        }
        at += 1 + len;
    }
}

/// `name` as the labels in front of `origin_key` (and `true`) when it ends
/// in the origin on a label boundary, else whole (and `false`).
fn split(name: &[u8], origin_key: &[u8]) -> (Box<[u8]>, bool) {
    let mut at = 0;
    while at < name.len() {
        if name[at..].eq_ignore_ascii_case(origin_key) {
            return (name[..at].into(), true);
        }
        at += 1 + usize::from(name[at]);
    }
    (name.into(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.split('.').filter(|l| !l.is_empty()) {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    fn rdata(mname: &str, rname: &str) -> Vec<u8> {
        let mut r = wire(mname);
        r.extend(wire(rname));
        r.extend((1u8..=20).collect::<Vec<_>>());
        r
    }

    /// A message holding the origin at offset 12 + 4 (after `www.`).
    fn msg_with_origin(origin: &str) -> Vec<u8> {
        let mut m = vec![0u8; 12];
        m.extend(wire(&format!("www.{origin}")));
        m
    }

    #[test]
    fn names_under_the_origin_point_to_it() {
        let origin = wire("example.");
        let soa =
            SoaWire::new(300, &rdata("ns1.Example.", "hostmaster.example."), &origin).unwrap();
        let mut m = msg_with_origin("example.");
        let start = m.len();
        soa.write(&mut m, Some(16), &origin);
        let rec = &m[start..];
        assert_eq!(&rec[..8], &[0, 6, 0, 1, 0, 0, 1, 44]);
        let rdlen = usize::from(u16::from_be_bytes([rec[8], rec[9]]));
        assert_eq!(rdlen, rec.len() - 10);
        // 4 + pointer, 11 + pointer, 20 timers: 20 bytes fewer than whole names.
        assert_eq!(rdlen, 4 + 2 + 11 + 2 + 20);
        assert_eq!(&rec[10..16], &[3, b'n', b's', b'1', 0xC0, 16]);
        assert_eq!(&rec[rec.len() - 20..], &(1u8..=20).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn names_elsewhere_or_no_origin_in_the_message_are_spelled_out() {
        let origin = wire("example.");
        let whole = rdata("ns.other.", "hostmaster.example.");
        let soa = SoaWire::new(60, &whole, &origin).unwrap();
        let mut m = Vec::new();
        soa.write(&mut m, None, &origin);
        assert_eq!(&m[10..], &whole[..]);
        // Not a label boundary: `badexample.` does not end in `example.`.
        let soa = SoaWire::new(60, &rdata("badexample.", "a.badexample."), &origin).unwrap();
        let mut m = msg_with_origin("example.");
        soa.write(&mut m, Some(16), &origin);
        assert_eq!(m.len() - 25 - 10, 12 + 14 + 20);
    }

    #[test]
    fn the_root_zone_writes_its_names_whole() {
        let origin = wire(".");
        let whole = rdata("a.root-servers.net.", "nstld.verisign-grs.com.");
        let soa = SoaWire::new(86400, &whole, &origin).unwrap();
        let mut m = Vec::new();
        soa.write(&mut m, None, &origin);
        assert_eq!(&m[10..], &whole[..]);
    }

    #[test]
    fn rdata_that_is_not_an_soa_is_refused() {
        let origin = wire("example.");
        assert!(SoaWire::new(1, &[3, b'n', b's'], &origin).is_none());
        assert!(SoaWire::new(1, &rdata("a.", "b.")[..20], &origin).is_none());
    }
}
