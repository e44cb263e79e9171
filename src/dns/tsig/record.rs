//! The TSIG record on the wire (RFC 8945 §4.2): finding it at the end of a
//! message ([`find`]), read defensively, and writing one ([`append`]).
//!
//! A message carries at most one TSIG, the last record of its additional
//! section, class ANY, TTL 0; its owner (the key's name) and the algorithm
//! name are written in full (no compression pointer); its RDATA is read
//! field by field within RDLENGTH and must fill it exactly. Anything else
//! is [`Malformed`] (FORMERR).
use super::super::limits::HEADER_LEN;
use super::super::walk::{RecordAt, TYPE_TSIG, records, skip_questions, u16_at};

/// Class ANY, the TSIG record's class.
pub(super) const CLASS_ANY: u16 = 255;

/// A TSIG record that breaks the rules of RFC 8945 §4 (or a message that
/// cannot be walked): answered FORMERR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed TSIG record")]
pub struct Malformed;

/// A TSIG record read from a message; the slices borrow from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsigRecord<'a> {
    /// Offset of the record in the message: the message without it is
    /// `msg[..start]` (with ARCOUNT one less).
    pub start: usize,
    /// The key's name, in wire form, case as sent.
    pub key_name: &'a [u8],
    /// The algorithm's name, in wire form, case as sent.
    pub algorithm: &'a [u8],
    /// Time signed, seconds since the epoch (48 bits).
    pub time_signed: u64,
    /// Seconds of error allowed either side of `time_signed`.
    pub fudge: u16,
    /// The MAC (possibly truncated).
    pub mac: &'a [u8],
    /// The message's ID when it was signed.
    pub original_id: u16,
    /// The TSIG error (0 = none).
    pub error: u16,
    /// Other data (the server's time in a BADTIME answer).
    pub other: &'a [u8],
}

/// The offset just past an uncompressed name at `pos`, within `end`.
fn name_end(msg: &[u8], mut pos: usize, end: usize) -> Result<usize, Malformed> {
    let mut total = 0usize;
    loop {
        let len = usize::from(*msg.get(pos).ok_or(Malformed)?);
        if len & 0xc0 != 0 {
            return Err(Malformed); // a pointer, or a label type not in use
        }
        pos += 1 + len;
        total += 1 + len;
        if pos > end || total > 255 {
            return Err(Malformed);
        }
        if len == 0 {
            return Ok(pos);
        }
    }
}

/// Reads `n` bytes at `*pos` (within `end`) and moves past them.
fn take<'a>(msg: &'a [u8], pos: &mut usize, n: usize, end: usize) -> Result<&'a [u8], Malformed> {
    let stop = pos.checked_add(n).filter(|&s| s <= end).ok_or(Malformed)?;
    let out = msg.get(*pos..stop).ok_or(Malformed)?;
    *pos = stop;
    Ok(out)
}

/// A big-endian number of `n` bytes (at most 8) at `*pos`.
fn number(msg: &[u8], pos: &mut usize, n: usize, end: usize) -> Result<u64, Malformed> {
    Ok(take(msg, pos, n, end)?
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// What [`scan`] found in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan<'a> {
    /// No TSIG record: every record walked.
    Unsigned,
    /// The message cannot be walked (its header, a question or a record
    /// runs past its end, or its counts lie) before any TSIG is seen: not a
    /// TSIG matter, the ordinary checks answer it.
    Unreadable,
    /// A TSIG record that breaks the rules of RFC 8945 §4.
    Malformed,
    /// The TSIG record, well formed.
    Signed(TsigRecord<'a>),
}

/// The message's TSIG record: `Ok(None)` when it has none, [`Malformed`]
/// when the message cannot be walked, when a TSIG is not the one last
/// record of the additional section, or is not well formed.
///
/// # Errors
/// [`Malformed`], as above.
pub fn find(msg: &[u8]) -> Result<Option<TsigRecord<'_>>, Malformed> {
    match scan(msg) {
        Scan::Unsigned => Ok(None),
        Scan::Signed(r) => Ok(Some(r)),
        Scan::Unreadable | Scan::Malformed => Err(Malformed),
    }
}

/// [`find`], telling a message that cannot be walked before any TSIG
/// ([`Scan::Unreadable`]) from a malformed TSIG.
pub(super) fn scan(msg: &[u8]) -> Scan<'_> {
    let count = |i: usize| u16_at(msg, 4 + 2 * i).map(usize::from);
    let (Some(qd), Some(an), Some(ns), Some(ar)) = (count(0), count(1), count(2), count(3)) else {
        return Scan::Unreadable;
    };
    let Some(pos) = skip_questions(msg, HEADER_LEN, qd) else {
        return Scan::Unreadable;
    };
    let total = an + ns + ar;
    let mut found = None;
    for (i, r) in records(msg, pos, total).enumerate() {
        // A TSIG seen is the last record: a record that cannot be read
        // comes before any.
        let Some(r) = r else {
            return Scan::Unreadable;
        };
        if r.rtype == TYPE_TSIG {
            // Exactly one, the last record, in the additional section.
            if i + 1 != total || i < an + ns {
                return Scan::Malformed;
            }
            found = Some(r);
        }
    }
    let Some(r) = found else {
        return Scan::Unsigned;
    };
    match read_tsig(msg, &r) {
        Ok(t) => Scan::Signed(t),
        Err(Malformed) => Scan::Malformed,
    }
}

/// The TSIG record `r` of `msg`, read field by field.
fn read_tsig<'a>(msg: &'a [u8], r: &RecordAt) -> Result<TsigRecord<'a>, Malformed> {
    if r.rdata_end != msg.len() {
        return Err(Malformed);
    }
    let owner_end = name_end(msg, r.start, r.fixed)?;
    let class = u16_at(msg, r.fixed + 2).ok_or(Malformed)?;
    let ttl = msg.get(r.fixed + 4..r.fixed + 8).ok_or(Malformed)?;
    if owner_end != r.fixed || class != CLASS_ANY || ttl != [0, 0, 0, 0] {
        return Err(Malformed);
    }
    let end = r.rdata_end;
    let mut pos = r.rdata_start;
    let alg_end = name_end(msg, pos, end)?;
    let alg_len = alg_end - pos;
    let algorithm = take(msg, &mut pos, alg_len, end)?;
    let time_signed = number(msg, &mut pos, 6, end)?;
    let fudge = number(msg, &mut pos, 2, end)? as u16;
    let mac_len = number(msg, &mut pos, 2, end)? as usize;
    let mac = take(msg, &mut pos, mac_len, end)?;
    let original_id = number(msg, &mut pos, 2, end)? as u16;
    let error = number(msg, &mut pos, 2, end)? as u16;
    let other_len = number(msg, &mut pos, 2, end)? as usize;
    let other = take(msg, &mut pos, other_len, end)?;
    if pos != end {
        return Err(Malformed);
    }
    Ok(TsigRecord {
        start: r.start,
        key_name: msg.get(r.start..r.fixed).ok_or(Malformed)?,
        algorithm,
        time_signed,
        fudge,
        mac,
        original_id,
        error,
        other,
    })
}

/// Appends the TSIG record `f` (its `start` aside) to `msg` and adds one to
/// its ARCOUNT.
pub(super) fn append(msg: &mut Vec<u8>, f: &TsigRecord<'_>) {
    let rdlen = f.algorithm.len() + 6 + 2 + 2 + f.mac.len() + 2 + 2 + 2 + f.other.len();
    msg.extend_from_slice(f.key_name);
    msg.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
    msg.extend_from_slice(&[0, 0, 0, 0]);
    // Every field is bounded (names 255, MAC 64, other data 6): it fits.
    msg.extend_from_slice(&u16::try_from(rdlen).unwrap_or(u16::MAX).to_be_bytes());
    msg.extend_from_slice(f.algorithm);
    msg.extend_from_slice(&time48(f.time_signed));
    msg.extend_from_slice(&f.fudge.to_be_bytes());
    msg.extend_from_slice(&u16::try_from(f.mac.len()).unwrap_or(u16::MAX).to_be_bytes());
    msg.extend_from_slice(f.mac);
    msg.extend_from_slice(&f.original_id.to_be_bytes());
    msg.extend_from_slice(&f.error.to_be_bytes());
    msg.extend_from_slice(
        &u16::try_from(f.other.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    msg.extend_from_slice(f.other);
    if let Some(ar) = msg.get_mut(10..12) {
        let n = u16::from_be_bytes([ar[0], ar[1]]).saturating_add(1);
        ar.copy_from_slice(&n.to_be_bytes());
    }
}

/// `t` as the 48-bit big-endian time of a TSIG record.
pub(super) fn time48(t: u64) -> [u8; 6] {
    let b = t.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}
