//! Names and RDATA encoded as the arena keeps them (uncompressed, names as
//! spelled), the lower-cased key a name is found by, and when two RDATA are
//! the same record (RFC 4343's case-blind names).
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::ts::source::BuildError;

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
    let mut wire = Vec::with_capacity(name.len() + 2);
    wire_into(name, &mut wire)?;
    wire.make_ascii_lowercase();
    Ok(wire)
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
    let (mut ca, mut cb) = (Vec::with_capacity(a.len()), Vec::with_capacity(b.len()));
    super::canonical_rdata::rdata_into(rtype, a, &mut ca);
    super::canonical_rdata::rdata_into(rtype, b, &mut cb);
    ca == cb
}
