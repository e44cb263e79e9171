//! EDNS(0) padding (RFC 7830) of answers sent over an encrypted transport, by
//! the block-length policy of RFC 8467 §4.1: when the client padded its query,
//! the answer is padded to a multiple of 468 bytes, so its length says little
//! about the name asked.

use super::nsid::{find_option, query_option};
use super::walk::walk_message;

/// The EDNS option code of padding (RFC 7830).
pub const PADDING_OPTION: u16 = 12;
/// Answers are padded to a multiple of this many bytes (RFC 8467 §4.1).
pub const RESPONSE_BLOCK: usize = 468;

/// Whether `query` carries a padding option: its answer is to be padded.
pub fn query_is_padded(query: &[u8]) -> bool {
    query_option(query, PADDING_OPTION).is_some()
}

/// Pads `answer` in place to a multiple of [`RESPONSE_BLOCK`] bytes with a padding
/// option in its OPT, when that OPT is the message's last record (as it is in the
/// LS's answers) and has none yet; otherwise, or past 65,535 bytes, leaves it as it
/// is. Whether it padded.
pub fn pad_answer(answer: &mut Vec<u8>) -> bool {
    let Some(opt) = walk_message(answer).and_then(|w| w.opt) else {
        return false;
    };
    let rdata = answer
        .get(opt.rdata_start..opt.rdata_end)
        .unwrap_or_default();
    // Options that overrun the RDATA, or a padding option already there: untouched.
    if find_option(rdata, PADDING_OPTION) != Ok(None) || opt.rdata_end != answer.len() {
        return false;
    }
    let pad = (RESPONSE_BLOCK - (answer.len() + 4) % RESPONSE_BLOCK) % RESPONSE_BLOCK;
    let added = 4 + pad;
    let Some(rdlen) = super::u16_at(answer, opt.rdlen_at)
        .and_then(|l| u16::try_from(usize::from(l) + added).ok())
    else {
        return false;
    };
    if answer.len() + added > usize::from(u16::MAX) {
        return false;
    }
    if let Some(field) = answer.get_mut(opt.rdlen_at..opt.rdlen_at + 2) {
        field.copy_from_slice(&rdlen.to_be_bytes());
    }
    answer.extend_from_slice(&PADDING_OPTION.to_be_bytes());
    // `pad` < 468: it fits.
    answer.extend_from_slice(&u16::try_from(pad).unwrap_or_default().to_be_bytes());
    answer.resize(answer.len() + pad, 0);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `www.example.com A` with an OPT whose RDATA is `options`.
    fn with_opt(options: &[u8], flags: u8, an: &[u8]) -> Vec<u8> {
        let ancount = u8::from(!an.is_empty());
        let mut m = vec![0x12, 0x34, flags, 0, 0, 1, 0, ancount, 0, 0, 0, 1];
        m.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        m.extend_from_slice(an);
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
        m.extend_from_slice(&u16::try_from(options.len()).unwrap().to_be_bytes());
        m.extend_from_slice(options);
        m
    }

    const A_RECORD: [u8; 16] = [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 10];

    #[test]
    fn a_padded_query_is_seen() {
        assert!(query_is_padded(&with_opt(&[0, 12, 0, 3, 0, 0, 0], 1, &[])));
        assert!(!query_is_padded(&with_opt(&[0, 3, 0, 0], 1, &[])));
        assert!(!query_is_padded(&with_opt(&[], 1, &[])[..40]));
    }

    #[test]
    fn an_answer_is_padded_to_a_whole_block() {
        let mut a = with_opt(&[], 0x81, &A_RECORD);
        let before = a.clone();
        assert!(pad_answer(&mut a));
        assert_eq!(a.len(), RESPONSE_BLOCK);
        let w = walk_message(&a).unwrap();
        let opt = w.opt.unwrap();
        assert_eq!(
            opt.rdata_end,
            a.len(),
            "the OPT's RDLENGTH covers the padding"
        );
        assert_eq!(&a[..before.len() - 2], &before[..before.len() - 2]);
        // Padded once only.
        assert!(!pad_answer(&mut a));
        assert_eq!(a.len(), RESPONSE_BLOCK);
    }

    #[test]
    fn an_answer_without_opt_is_left_alone() {
        let mut a = vec![0x12, 0x34, 0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(!pad_answer(&mut a));
        assert_eq!(a.len(), 12);
    }
}
