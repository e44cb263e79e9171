//! The records a signed zone denies with: NSEC (RFC 4034 §4) and NSEC3
//! (RFC 5155 §3, with RFC 9276's parameters: SHA-1, no salt, 0 extra
//! iterations, no opt-out), and the type bitmap both carry.
use data_encoding::BASE32HEX_NOPAD;

use super::super::nsec3::HASH_LEN;

/// NSEC3's one hash algorithm, SHA-1.
const SHA1: u8 = 1;

/// Appends the type bitmap of `types` (sorted, without duplicates) to
/// `out`: a window per 256 types used, each as long as its highest type
/// needs (RFC 4034 §4.1.2).
pub(super) fn bitmap_into(types: &[u16], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(&first) = types.get(i) {
        let window = first >> 8;
        let mut bits = [0u8; 32];
        let mut len = 0;
        while let Some(&t) = types.get(i).filter(|&&t| t >> 8 == window) {
            let low = usize::from(t & 0xff);
            bits[low / 8] |= 0x80 >> (low % 8);
            len = low / 8 + 1;
            i += 1;
        }
        out.push(window as u8);
        out.push(len as u8);
        out.extend_from_slice(&bits[..len]);
    }
}

/// An NSEC's RDATA: the next owner (lower-cased wire name) and the types
/// at this one.
pub(super) fn nsec_rdata(next: &[u8], types: &[u16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(next.len() + 2 + 8);
    out.extend_from_slice(next);
    bitmap_into(types, &mut out);
    out
}

/// An NSEC3's RDATA with RFC 9276's parameters: the next hash in the chain
/// and the types at the hashed name.
pub(super) fn nsec3_rdata(next: &[u8; HASH_LEN], types: &[u16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(6 + HASH_LEN + 8);
    // Algorithm, flags (no opt-out), iterations (0), salt length (0).
    out.extend_from_slice(&[SHA1, 0, 0, 0, 0]);
    out.push(HASH_LEN as u8);
    out.extend_from_slice(next);
    bitmap_into(types, &mut out);
    out
}

/// The NSEC3PARAM RDATA matching [`nsec3_rdata`].
pub(super) const NSEC3PARAM_RDATA: [u8; 5] = [SHA1, 0, 0, 0, 0];

/// The owner of the NSEC3 of `hash` in the zone `origin` (a lower-cased wire
/// name): the hash in base32hex, lower-case, as the first label.
pub(super) fn nsec3_owner(hash: &[u8; HASH_LEN], origin: &[u8]) -> Vec<u8> {
    let label = BASE32HEX_NOPAD.encode(hash).to_ascii_lowercase();
    let mut out = Vec::with_capacity(1 + label.len() + origin.len());
    out.push(label.len() as u8);
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(origin);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_are_encoded_as_rfc_4034_section_4_3_shows() {
        // A MX RRSIG NSEC TYPE1234 (RFC 4034 §4.3).
        let mut out = Vec::new();
        bitmap_into(&[1, 15, 46, 47, 1234], &mut out);
        let mut want = vec![0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b];
        want.extend_from_slice(&[0; 26]);
        want.push(0x20);
        assert_eq!(out, want);
        out.clear();
        bitmap_into(&[], &mut out);
        assert!(
            out.is_empty(),
            "an empty non-terminal's NSEC3 has no window"
        );
    }
}
