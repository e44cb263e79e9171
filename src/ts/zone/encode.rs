//! Names and RDATA encoded as the arena keeps them (uncompressed, names as
//! spelled), the lower-cased key a name is found by, and when two RDATA are
//! the same record (RFC 4343's case-blind names).
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::ts::error::BuildError;

/// Writes `name` uncompressed, as spelled, into `out` (cleared first).
pub(super) fn wire_into(name: &Name, out: &mut Vec<u8>) -> Result<(), BuildError> {
    out.clear();
    name_onto(name, out)
}

/// Appends `name` uncompressed, as spelled, to `out`.
fn name_onto(name: &Name, out: &mut Vec<u8>) -> Result<(), BuildError> {
    let start = out.len();
    // Label by label (hickory's encoder would also record compression
    // pointers, which a zone has no use for), with the RFC 1035 limits
    // checked as it checked them.
    for label in name.iter() {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|&l| l <= 63)
            .ok_or(BuildError::LabelTooLong)?;
        out.push(len);
        out.extend_from_slice(label);
    }
    out.push(0);
    if out.len() - start > 255 {
        return Err(BuildError::NameOver255);
    }
    Ok(())
}

/// A name's wire form, lower-cased (an index key).
pub(crate) fn key_of(name: &Name) -> Result<Vec<u8>, BuildError> {
    // `len` is the text's: a byte a label (its dot) and the labels' bytes,
    // one short of the wire form's root byte: exact, so a key boxed for a
    // zone is not copied again.
    let mut wire = Vec::with_capacity(name.len() + 1);
    wire_into(name, &mut wire)?;
    wire.make_ascii_lowercase();
    Ok(wire)
}

/// Where the uncompressed wire name `name` (as spelled, any case) stands
/// to the zone at `origin` (lower-cased wire form): `Some(true)` at the
/// apex, `Some(false)` below it, `None` outside it or when `name` is no
/// name (a label over 63 bytes, a length running past its end, over 255
/// bytes). Compared in place, label boundaries followed by the length
/// bytes (an escaped dot, `a\.b`, is a byte of its label), case aside
/// (ASCII only, as DNS compares names; length bytes are below every
/// letter): each record of a zone file is tested, with no copy of it.
pub(crate) fn in_zone(name: &[u8], origin: &[u8]) -> Option<bool> {
    if name.len() > 255 {
        return None;
    }
    let mut at = 0;
    loop {
        let rest = name.get(at..)?;
        if rest.len() <= origin.len() {
            // Names are mostly written in the origin's case: the bytes
            // compared at once first, letter by letter only when they differ.
            let same = rest == origin || rest.eq_ignore_ascii_case(origin);
            return (rest.len() == origin.len() && same).then_some(at == 0);
        }
        let len = usize::from(rest[0]);
        if len == 0 || len > 63 {
            return None;
        }
        at += 1 + len;
    }
}

/// Encodes `data`'s RDATA, names uncompressed, into `out` (cleared first).
pub(super) fn rdata_into(data: &RData, out: &mut Vec<u8>) -> Result<(), BuildError> {
    out.clear();
    // The types of a big table, written directly.
    match data {
        RData::A(a) => {
            out.extend_from_slice(&a.0.octets());
            return Ok(());
        }
        RData::AAAA(a) => {
            out.extend_from_slice(&a.0.octets());
            return Ok(());
        }
        // Every zone's SOA and NS, and the names of MX, CNAME and PTR,
        // written as hickory's encoder writes them (names uncompressed, as
        // spelled) without its bookkeeping of compression pointers.
        RData::SOA(s) => {
            name_onto(&s.mname, out)?;
            name_onto(&s.rname, out)?;
            out.extend_from_slice(&s.serial.to_be_bytes());
            for t in [s.refresh, s.retry, s.expire] {
                out.extend_from_slice(&t.to_be_bytes());
            }
            out.extend_from_slice(&s.minimum.to_be_bytes());
            return Ok(());
        }
        RData::NS(n) => return name_onto(&n.0, out),
        RData::CNAME(n) => return name_onto(&n.0, out),
        RData::PTR(n) => return name_onto(&n.0, out),
        RData::MX(m) => {
            out.extend_from_slice(&m.preference.to_be_bytes());
            return name_onto(&m.exchange, out);
        }
        _ => {}
    }
    let mut enc = BinEncoder::new(out);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    data.emit(&mut enc).map_err(|e| BuildError::Encode {
        rtype: data.record_type(),
        reason: e.to_string(),
    })?;
    if out.len() > usize::from(u16::MAX) {
        return Err(BuildError::RdataOver64K);
    }
    Ok(())
}

/// A DNS message's header: with it, a record over 65,535 bytes can be
/// neither answered nor transferred (BIND refuses it at load: "ran out of
/// space"), so it is refused with its line.
pub(super) const MESSAGE_HEAD: usize = 12;

/// Whether two RDATA of type `rtype` are the same record: equal, or equal
/// but for the case of names in them (RFC 4343; RFC 2181 §5: an RRset has
/// no duplicates). The names compared case-blind are those RFC 4034 §6.2
/// lists, and the next owner of an NSEC.
pub(super) fn same_rdata(rtype: u16, a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    if a.len() != b.len() {
        return false;
    }
    if rtype == u16::from(RecordType::NSEC) {
        // The next owner name, then the type bitmaps (no letters in a
        // name's length bytes: ASCII case folding leaves them alone).
        let Some(end) = crate::ts::wire::uncompressed_len(a) else {
            return false;
        };
        return a[..end].eq_ignore_ascii_case(&b[..end]) && a[end..] == b[end..];
    }
    // No names in it: the bytes decide (A, AAAA, TXT: most RRsets of more
    // than one record). One name and nothing else (NS, CNAME, PTR...): the
    // name decides, case aside. Neither needs the canonical forms' copies.
    if !super::canonical_rdata::has_names(rtype) {
        return false;
    }
    if super::canonical_rdata::is_one_name(rtype)
        && crate::ts::wire::uncompressed_len(a) == Some(a.len())
    {
        return a.eq_ignore_ascii_case(b);
    }
    let (mut ca, mut cb) = (Vec::with_capacity(a.len()), Vec::with_capacity(b.len()));
    super::canonical_rdata::rdata_into(rtype, a, &mut ca);
    super::canonical_rdata::rdata_into(rtype, b, &mut cb);
    ca == cb
}

#[cfg(test)]
mod tests {
    use super::{in_zone, same_rdata};

    /// `text` (dots between labels, `\.` a dot inside one) in wire form.
    fn wire(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut label = Vec::new();
        let mut chars = text.bytes();
        while let Some(c) = chars.next() {
            match c {
                b'\\' => label.extend(chars.next()),
                b'.' => {
                    out.push(label.len() as u8);
                    out.append(&mut label);
                }
                c => label.push(c),
            }
        }
        assert!(label.is_empty(), "{text}: end it with a dot");
        out.push(0);
        out
    }

    #[test]
    fn a_name_is_in_the_zone_at_its_apex_or_below_whatever_its_case() {
        let origin = wire("example.test.");
        let at = |name: &str| in_zone(&wire(name), &origin);
        assert_eq!(at("example.test."), Some(true));
        assert_eq!(at("EXAMPLE.Test."), Some(true));
        assert_eq!(at("www.example.test."), Some(false));
        assert_eq!(at("a.b.WWW.Example.TEST."), Some(false));
        // Outside: a sibling, a parent, a name that only ends in the same
        // bytes (not at a label's start), the root.
        assert_eq!(at("example.org."), None);
        assert_eq!(at("test."), None);
        assert_eq!(at("myexample.test."), None);
        assert_eq!(at("www.xexample.test."), None);
        assert_eq!(at("."), None);
        // An escaped dot is a byte of its label: `www\.example.test.` is
        // two labels, `www.example` and `test`, outside the zone; and one
        // below the apex whose label holds a dot is inside it.
        assert_eq!(at("www\\.example.test."), None);
        assert_eq!(at("a\\.b.example.test."), Some(false));
        // One label holding the origin's bytes but its root: the name's
        // last 14 bytes are the origin's, not at a label's start.
        let mut one = vec![13];
        one.extend_from_slice(&origin[..13]);
        one.push(0);
        assert_eq!(&one[one.len() - origin.len()..], &origin[..]);
        assert_eq!(in_zone(&one, &origin), None, "one label, outside");
    }

    /// Two records are one when their canonical forms are (RFC 4034 §6.2):
    /// the names of the types it lists case aside, every other byte as is.
    #[test]
    fn the_same_record_is_found_case_aside_in_names_only() {
        let (ns, mx, txt, a) = (2, 15, 16, 1);
        let name = |t: &str| wire(t);
        assert!(same_rdata(ns, &name("NS1.Example."), &name("ns1.example.")));
        assert!(!same_rdata(
            ns,
            &name("ns1.example."),
            &name("ns2.example.")
        ));
        assert!(same_rdata(5, &name("A.b."), &name("a.B.")), "CNAME");
        let mx_of = |pref: u8, t: &str| [vec![0, pref], name(t)].concat();
        assert!(same_rdata(mx, &mx_of(10, "Mail.x."), &mx_of(10, "mail.X.")));
        assert!(!same_rdata(
            mx,
            &mx_of(10, "mail.x."),
            &mx_of(20, "mail.x.")
        ));
        // No names: case is data.
        assert!(!same_rdata(txt, b"\x03abc", b"\x03ABC"));
        assert!(same_rdata(txt, b"\x03abc", b"\x03abc"));
        assert!(!same_rdata(a, &[192, 0, 2, 1], &[192, 0, 2, 2]));
        // A name's length bytes are no letters: another split of the same
        // letters is another name.
        assert!(!same_rdata(ns, b"\x01a\x02bc\x00", b"\x02ab\x01c\x00"));
    }

    #[test]
    fn the_root_zone_holds_every_name() {
        let root = [0u8];
        assert_eq!(in_zone(&[0], &root), Some(true));
        assert_eq!(in_zone(&wire("Www.Example."), &root), Some(false));
    }

    #[test]
    fn what_is_no_name_is_in_no_zone() {
        let origin = wire("example.test.");
        let mut long = wire("example.test.");
        for _ in 0..62 {
            long.splice(0..0, *b"\x03abc");
        }
        assert!(long.len() > 255);
        assert_eq!(in_zone(&long, &origin), None, "over 255 bytes");
        let mut label64 = vec![64];
        label64.extend_from_slice(&[b'a'; 64]);
        label64.extend_from_slice(&origin);
        assert_eq!(in_zone(&label64, &origin), None, "a label over 63");
        assert_eq!(in_zone(b"\x05ab", &origin), None, "runs past its end");
        assert_eq!(in_zone(b"", &origin), None);
        // A root label before the end: the name ends there.
        let mut early = vec![0];
        early.extend_from_slice(&origin);
        assert_eq!(in_zone(&early, &origin), None);
    }
}
