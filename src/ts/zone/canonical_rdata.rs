//! The canonical form of records a signature covers (RFC 4034 §6.2, with
//! RFC 6840 §5.1): the names inside the RDATA of the types RFC 4034 lists
//! lower-cased, and the records of an RRset in order of their canonical
//! RDATA, duplicates removed (§6.3).

/// One field of an RDATA layout.
#[derive(Clone, Copy)]
enum Field {
    /// That many bytes, copied.
    Fixed(usize),
    /// An uncompressed domain name, lower-cased.
    Name,
    /// A character-string (length byte and bytes), copied.
    Text,
}

use Field::{Fixed, Name, Text};

use crate::ts::wire::uncompressed_len;

/// The fields before the copied remainder, for the types whose RDATA holds
/// names that RFC 4034 §6.2 (as RFC 6840 §5.1 leaves it) lower-cases.
fn layout(rtype: u16) -> &'static [Field] {
    match rtype {
        // NS, MD, MF, CNAME, MB, MG, MR, PTR, DNAME
        2 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 39 => &[Name],
        // SOA (the counters follow), MINFO, RP
        6 | 14 | 17 => &[Name, Name],
        // MX, AFSDB, RT, KX
        15 | 18 | 21 | 36 => &[Fixed(2), Name],
        // PX
        26 => &[Fixed(2), Name, Name],
        // SRV
        33 => &[Fixed(6), Name],
        // NAPTR: order, preference, flags, services, regexp, replacement
        35 => &[Fixed(4), Text, Text, Text, Name],
        _ => &[],
    }
}

/// Whether RDATA of `rtype` holds names RFC 4034 §6.2 lower-cases: when
/// not, its canonical form is its bytes.
pub(in crate::ts::zone) fn has_names(rtype: u16) -> bool {
    !layout(rtype).is_empty()
}

/// Whether RDATA of `rtype` is one such name and nothing else (NS, CNAME,
/// PTR, DNAME and the like): its canonical form is that name lower-cased.
pub(in crate::ts::zone) fn is_one_name(rtype: u16) -> bool {
    matches!(layout(rtype), [Name])
}

/// Appends the canonical form of `rdata` (of type `rtype`) to `out`. RDATA
/// that does not fit its layout is copied as it is (it was encoded by this
/// crate, so it fits).
pub(in crate::ts::zone) fn rdata_into(rtype: u16, rdata: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(rdata);
    let mut pos = 0;
    for field in layout(rtype) {
        let Some(next) = (match *field {
            Fixed(n) => Some(pos + n),
            Text => rdata.get(pos).map(|&l| pos + 1 + usize::from(l)),
            Name => lower_name(&mut out[start..], pos),
        }) else {
            return;
        };
        pos = next;
    }
}

/// Lower-cases the uncompressed name at `pos` in `buf`; the offset past it.
fn lower_name(buf: &mut [u8], pos: usize) -> Option<usize> {
    let end = pos + uncompressed_len(buf.get(pos..)?)?;
    // Length bytes are at most 63: below the ASCII letters, left as they are.
    buf.get_mut(pos..end)?.make_ascii_lowercase();
    Some(end)
}

/// The records of an RRset, canonical RDATA each, sorted and without
/// duplicates (RFC 4034 §6.3).
pub(super) fn sorted(rtype: u16, records: impl Iterator<Item = impl AsRef<[u8]>>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = records
        .map(|r| {
            let mut c = Vec::with_capacity(r.as_ref().len());
            rdata_into(rtype, r.as_ref(), &mut c);
            c
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_rdata_are_lowered_where_rfc_4034_says_and_nowhere_else() {
        let mx = b"\x00\x0a\x04Mail\x07Example\x00";
        let mut out = Vec::new();
        rdata_into(15, mx, &mut out);
        assert_eq!(out, b"\x00\x0a\x04mail\x07example\x00");
        // TXT is text, not a name: kept.
        out.clear();
        rdata_into(16, b"\x03ABC", &mut out);
        assert_eq!(out, b"\x03ABC");
        // SOA: both names, not the counters.
        out.clear();
        let soa = b"\x02NS\x00\x02HM\x00\x00\x00\x00\x41\x00\x00\x00\x42\x00\x00\x00\x43\x00\x00\x00\x44\x00\x00\x00\x45";
        rdata_into(6, soa, &mut out);
        assert_eq!(&out[..8], b"\x02ns\x00\x02hm\x00");
        assert_eq!(&out[8..], &soa[8..]);
        // NAPTR: the flags and services text is left as it is.
        out.clear();
        let naptr = b"\x00\x01\x00\x02\x01U\x07E2U+sip\x00\x03SIP\x00";
        rdata_into(35, naptr, &mut out);
        assert_eq!(out, b"\x00\x01\x00\x02\x01U\x07E2U+sip\x00\x03sip\x00");
    }

    #[test]
    fn an_rrset_is_sorted_by_canonical_rdata_without_duplicates() {
        let got = sorted(2, [&b"\x01B\x00"[..], b"\x01a\x00", b"\x01b\x00"].iter());
        assert_eq!(got, vec![b"\x01a\x00".to_vec(), b"\x01b\x00".to_vec()]);
    }
}
