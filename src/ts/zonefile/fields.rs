//! The fields of master-file records in presentation form, each turned into its wire
//! form: domain names (escapes, `@`, relative names), character strings, integers,
//! TTLs, hex, base64 and base32hex, RRSIG times, record types and classes, and the
//! type bitmaps of NSEC, NSEC3 and CSYNC.
//!
//! Escapes follow RFC 1035 §5.1: `\X` is the character X, `\DDD` the byte whose value
//! is the *decimal* number DDD (0 to 255).

use std::collections::BTreeSet;

use data_encoding::{BASE32HEX_NOPAD, BASE64, HEXLOWER_PERMISSIVE};

/// The longest domain name on the wire, root byte included (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;
/// The longest label.
const MAX_LABEL: usize = 63;

/// Decodes the escapes of `raw`: `\DDD` (decimal, at most 255) and `\X`; a
/// backslash before fewer than three digits escapes the first of them, as
/// NSD reads it (`\1b` is `1b`).
///
/// # Errors
/// A `\DDD` over 255, a backslash at the end.
pub(super) fn unescape(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len());
    unescape_onto(raw, &mut out)?;
    Ok(out)
}

/// [`unescape`], appended to `out`.
///
/// # Errors
/// As [`unescape`] (`out` then holds part of it).
fn unescape_onto(raw: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mut at = 0;
    while let Some(&c) = raw.get(at) {
        if c != b'\\' {
            out.push(c);
            at += 1;
            continue;
        }
        let (byte, used) = escape_at(raw, at)?;
        out.push(byte);
        at += used;
    }
    Ok(())
}

/// The byte an escape at `raw[at]` (a backslash) stands for, and the bytes it takes.
fn escape_at(raw: &[u8], at: usize) -> Result<(u8, usize), String> {
    let digits = raw
        .get(at + 1..at + 4)
        .filter(|d| d.iter().all(u8::is_ascii_digit));
    if let Some(d) = digits {
        let value = d.iter().fold(0u32, |n, &c| n * 10 + u32::from(c - b'0'));
        let byte =
            u8::try_from(value).map_err(|_| format!("escape \\{} is over 255", quoted(d)))?;
        return Ok((byte, 4));
    }
    match raw.get(at + 1) {
        Some(&c) => Ok((c, 2)),
        None => Err("backslash at the end of a field".into()),
    }
}

/// The longest token an error message quotes whole.
const QUOTED_MAX: usize = 256;

/// A token as an error message quotes it: its text (bytes that are not
/// UTF-8 shown as U+FFFD), its middle cut out past [`QUOTED_MAX`] bytes (a
/// broken or hostile file's token may be 100 MB: never copied whole).
pub(super) fn quoted(raw: &[u8]) -> String {
    if raw.len() <= QUOTED_MAX {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let (head, tail) = (&raw[..QUOTED_MAX / 2], &raw[raw.len() - QUOTED_MAX / 4..]);
    format!(
        "{}…[{} bytes cut]…{}",
        String::from_utf8_lossy(head),
        raw.len() - head.len() - tail.len(),
        String::from_utf8_lossy(tail)
    )
}

/// Refuses a token longer than `max` wire bytes could be written as (4
/// bytes of text each: `\DDD`) before anything is made of it: a hostile
/// file's one huge token costs no copies of itself.
///
/// # Errors
/// The token's length and what it was read as.
fn too_long(raw: &[u8], max: usize, what: &str) -> Result<(), String> {
    if raw.len() > 4 * max {
        return Err(format!(
            "{what} of {} bytes of text (at most {max} bytes once read)",
            raw.len()
        ));
    }
    Ok(())
}

/// A character string (RFC 1035 §3.3) in wire form: its length byte and its bytes.
///
/// # Errors
/// A bad escape, more than 255 bytes.
pub(super) fn char_string(raw: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    too_long(raw, 255, "character string")?;
    // Unescaped in place after its length byte (set once it is known).
    let len_at = out.len();
    out.push(0);
    unescape_onto(raw, out)?;
    let n = out.len() - len_at - 1;
    let len =
        u8::try_from(n).map_err(|_| format!("character string of {n} bytes (at most 255)"))?;
    out[len_at] = len;
    Ok(())
}

/// A domain name in wire form (uncompressed, case kept): `@` is `origin`; a name not
/// ending in an unescaped dot is relative to `origin`.
///
/// # Errors
/// An empty label, a label over 63 bytes, a name over 255, a relative name with no
/// origin, a bad escape.
pub(super) fn name(raw: &[u8], origin: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let mut wire = Vec::with_capacity(raw.len() + 2 + origin.map_or(0, <[u8]>::len));
    name_onto(raw, origin, &mut wire)?;
    Ok(wire)
}

/// [`name`], appended to `out`: a record's names written where its data
/// is, and its owner into a buffer kept from one record to the next, with
/// no allocation of their own.
///
/// # Errors
/// As [`name`] (`out` then holds part of the name).
pub(super) fn name_onto(
    raw: &[u8],
    origin: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    too_long(raw, MAX_NAME, "name")?;
    let shown = || quoted(raw);
    let no_origin = || format!("relative name '{}' with no origin ($ORIGIN)", shown());
    if raw == b"@" {
        out.extend_from_slice(origin.ok_or_else(no_origin)?);
        return Ok(());
    }
    if raw == b"." {
        out.push(0);
        return Ok(());
    }
    if raw.is_empty() {
        return Err("empty name".into());
    }
    // Each label written in place after its length byte (0 until the label
    // ends).
    let start = out.len();
    out.reserve(raw.len() + 2 + origin.map_or(0, <[u8]>::len));
    out.push(0);
    let mut length_at = start;
    let mut absolute = false;
    let mut at = 0;
    let end_label = |wire: &mut Vec<u8>, length_at: &mut usize| -> Result<(), String> {
        let len = wire.len() - *length_at - 1;
        if len == 0 {
            return Err(format!("empty label in '{}'", shown()));
        }
        if len > MAX_LABEL {
            return Err(format!(
                "label of {len} bytes in '{}' (at most 63)",
                shown()
            ));
        }
        wire[*length_at] = len as u8;
        *length_at = wire.len();
        // The next label's length byte, or the root.
        wire.push(0);
        Ok(())
    };
    while let Some(&c) = raw.get(at) {
        match c {
            b'.' => {
                end_label(out, &mut length_at)?;
                if at + 1 == raw.len() {
                    absolute = true;
                }
                at += 1;
            }
            b'\\' => {
                let (byte, used) = escape_at(raw, at)?;
                out.push(byte);
                at += used;
            }
            _ => {
                // The run of plain bytes up to the next dot or backslash,
                // copied at once (most names are only that).
                let end = raw[at..]
                    .iter()
                    .position(|&c| c == b'.' || c == b'\\')
                    .map_or(raw.len(), |p| at + p);
                out.extend_from_slice(&raw[at..end]);
                at = end;
            }
        }
    }
    if !absolute {
        end_label(out, &mut length_at)?;
        let origin = origin.ok_or_else(no_origin)?;
        out.pop();
        out.extend_from_slice(origin);
    }
    let len = out.len() - start;
    if len > MAX_NAME {
        return Err(format!("name '{}' of {len} bytes (at most 255)", shown()));
    }
    Ok(())
}

/// `raw` as text, for numbers and keywords (no escapes allowed there).
pub(super) fn text(raw: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(raw).map_err(|_| "not valid UTF-8".into())
}

/// An unsigned decimal integer of at most `max`, named `what` in errors.
///
/// # Errors
/// Not a decimal number, or over `max`.
pub(super) fn number(raw: &[u8], max: u64, what: &str) -> Result<u64, String> {
    // The digits read as bytes (an SOA has five numbers, an MX one): no
    // UTF-8 check and no `str` parse but for the error's text.
    let mut value = (!raw.is_empty()).then_some(0u64);
    for &c in raw {
        if !c.is_ascii_digit() {
            value = None;
            break;
        }
        value = value.and_then(|v| v.checked_mul(10)?.checked_add(u64::from(c - b'0')));
    }
    match value.filter(|n| *n <= max) {
        Some(n) => Ok(n),
        None => {
            let s = text(raw)?;
            Err(format!("bad {what} '{s}' (a number from 0 to {max})"))
        }
    }
}

/// An IPv4 address in dotted decimal, read from bytes as
/// `Ipv4Addr::from_str` reads it (four parts of one to three digits, none
/// with a leading zero, each at most 255), with no UTF-8 check nor `str`
/// parse: a zone of many A records reads one a record.
pub(super) fn ipv4(raw: &[u8]) -> Option<[u8; 4]> {
    // One pass over the bytes: each part's value and digit count as they
    // come, checked at its dot (or at the end, for the fourth).
    let mut out = [0u8; 4];
    let (mut part, mut value, mut digits, mut first) = (0usize, 0u16, 0u8, 0u8);
    for &c in raw {
        if c == b'.' {
            if digits == 0 || (digits > 1 && first == b'0') || value > 255 {
                return None;
            }
            *out.get_mut(part)? = value as u8;
            part += 1;
            (value, digits) = (0, 0);
            continue;
        }
        if !c.is_ascii_digit() || digits == 3 {
            return None;
        }
        if digits == 0 {
            first = c;
        }
        value = value * 10 + u16::from(c - b'0');
        digits += 1;
    }
    if part != 3 || digits == 0 || (digits > 1 && first == b'0') || value > 255 {
        return None;
    }
    out[3] = value as u8;
    Some(out)
}

/// An 8-bit number.
pub(super) fn u8_of(raw: &[u8], what: &str) -> Result<u8, String> {
    number(raw, u8::MAX.into(), what).map(|n| n as u8)
}

/// A 16-bit number.
pub(super) fn u16_of(raw: &[u8], what: &str) -> Result<u16, String> {
    number(raw, u16::MAX.into(), what).map(|n| n as u16)
}

/// A 32-bit number.
pub(super) fn u32_of(raw: &[u8], what: &str) -> Result<u32, String> {
    number(raw, u32::MAX.into(), what).map(|n| n as u32)
}

/// The largest TTL (RFC 2181 §8): a TTL written above it is read as 0.
pub(super) const TTL_MAX: u32 = i32::MAX as u32;

/// A TTL: seconds, or BIND's units (`1h30m`, `2w`), up to 2^32-1; the caller
/// reads one over [`TTL_MAX`] as 0 (RFC 2181 §8), with a warning.
///
/// # Errors
/// Not a TTL.
pub(super) fn ttl(raw: &[u8]) -> Result<u32, String> {
    duration(raw, "TTL")
}

/// A time in seconds as a TTL is written (the SOA's timers): seconds, or BIND's units.
///
/// # Errors
/// Not a number of seconds, or over 2^32-1.
pub(super) fn duration(raw: &[u8], what: &str) -> Result<u32, String> {
    // Read as bytes (digits and unit letters are ASCII; any other byte is
    // no duration): the text is made for the error alone.
    let bad = || match text(raw) {
        Ok(s) => format!("bad {what} '{s}'"),
        Err(e) => e,
    };
    if raw.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut value: Option<u64> = None;
    for &c in raw {
        if c.is_ascii_digit() {
            value = Some(
                value
                    .unwrap_or(0)
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(c - b'0')))
                    .filter(|v| *v <= u64::from(u32::MAX))
                    .ok_or_else(bad)?,
            );
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            b's' => 1,
            b'm' => 60,
            b'h' => 3600,
            b'd' => 86_400,
            b'w' => 604_800,
            _ => return Err(bad()),
        };
        let term = value.take().ok_or_else(bad)? * unit;
        total = total
            .checked_add(term)
            .filter(|t| *t <= u64::from(u32::MAX))
            .ok_or_else(bad)?;
    }
    total = total.checked_add(value.unwrap_or(0)).ok_or_else(bad)?;
    u32::try_from(total).map_err(|_| bad())
}

/// True if `raw` reads as a TTL (starts with a digit).
pub(super) fn looks_like_ttl(raw: &[u8]) -> bool {
    raw.first().is_some_and(u8::is_ascii_digit)
}

/// Hex digits (white space between tokens allowed by the caller joining them).
///
/// # Errors
/// Not hex, or an odd number of digits.
pub(super) fn hex(joined: &[u8]) -> Result<Vec<u8>, String> {
    HEXLOWER_PERMISSIVE
        .decode(joined)
        .map_err(|_| format!("bad hex '{}'", quoted(joined)))
}

/// Base64 (RFC 4648 §4, padded).
///
/// # Errors
/// Not base64.
pub(super) fn base64(joined: &[u8]) -> Result<Vec<u8>, String> {
    BASE64
        .decode(joined)
        .map_err(|_| format!("bad base64 '{}'", quoted(joined)))
}

/// Base32hex without padding (RFC 4648 §7), either case, as NSEC3 writes hashes.
///
/// # Errors
/// Not base32hex.
pub(super) fn base32hex(raw: &[u8]) -> Result<Vec<u8>, String> {
    BASE32HEX_NOPAD
        .decode(&raw.to_ascii_uppercase())
        .map_err(|_| format!("bad base32hex '{}'", quoted(raw)))
}

/// An RRSIG time (RFC 4034 §3.2): `YYYYMMDDHHmmSS` in UTC, or seconds since the epoch;
/// the wire value is modulo 2^32 (serial number arithmetic, RFC 1982).
///
/// # Errors
/// Neither form, or a date that does not exist.
pub(crate) fn rrsig_time(raw: &[u8]) -> Result<u32, String> {
    let s = text(raw)?;
    let bad = || format!("bad signature time '{s}' (YYYYMMDDHHmmSS or seconds)");
    if !s.bytes().all(|c| c.is_ascii_digit()) || s.is_empty() {
        return Err(bad());
    }
    if s.len() != 14 {
        return s.parse::<u32>().map_err(|_| bad());
    }
    let part = |from: usize, to: usize| s[from..to].parse::<i64>().map_err(|_| bad());
    let (year, month, day) = (part(0, 4)?, part(4, 6)?, part(6, 8)?);
    let (hour, minute, second) = (part(8, 10)?, part(10, 12)?, part(12, 14)?);
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let in_month = usize::try_from(month - 1)
        .ok()
        .and_then(|m| month_days.get(m))
        .copied();
    let Some(days_in_month) = in_month else {
        return Err(bad());
    };
    if year < 1970 || day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return Err(bad());
    }
    let mut days: i64 = (1970..year).map(|y| if leap(y) { 366 } else { 365 }).sum();
    days += month_days[..(month - 1) as usize].iter().sum::<i64>();
    days += day - 1;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    Ok((secs % (1i64 << 32)) as u32)
}

/// Record types by mnemonic (RFC 3597 `TYPEnnn` is handled by [`type_code`]).
const TYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("MD", 3),
    ("MF", 4),
    ("CNAME", 5),
    ("SOA", 6),
    ("MB", 7),
    ("MG", 8),
    ("MR", 9),
    ("NULL", 10),
    ("WKS", 11),
    ("PTR", 12),
    ("HINFO", 13),
    ("MINFO", 14),
    ("MX", 15),
    ("TXT", 16),
    ("RP", 17),
    ("AFSDB", 18),
    ("X25", 19),
    ("ISDN", 20),
    ("RT", 21),
    ("NSAP", 22),
    ("NSAP-PTR", 23),
    ("SIG", 24),
    ("KEY", 25),
    ("PX", 26),
    ("GPOS", 27),
    ("AAAA", 28),
    ("LOC", 29),
    ("NXT", 30),
    ("EID", 31),
    ("NIMLOC", 32),
    ("SRV", 33),
    ("ATMA", 34),
    ("NAPTR", 35),
    ("KX", 36),
    ("CERT", 37),
    ("A6", 38),
    ("DNAME", 39),
    ("SINK", 40),
    ("OPT", 41),
    ("APL", 42),
    ("DS", 43),
    ("SSHFP", 44),
    ("IPSECKEY", 45),
    ("RRSIG", 46),
    ("NSEC", 47),
    ("DNSKEY", 48),
    ("DHCID", 49),
    ("NSEC3", 50),
    ("NSEC3PARAM", 51),
    ("TLSA", 52),
    ("SMIMEA", 53),
    ("HIP", 55),
    ("NINFO", 56),
    ("RKEY", 57),
    ("TALINK", 58),
    ("CDS", 59),
    ("CDNSKEY", 60),
    ("OPENPGPKEY", 61),
    ("CSYNC", 62),
    ("ZONEMD", 63),
    ("SVCB", 64),
    ("HTTPS", 65),
    ("SPF", 99),
    ("UINFO", 100),
    ("UID", 101),
    ("GID", 102),
    ("UNSPEC", 103),
    ("NID", 104),
    ("L32", 105),
    ("L64", 106),
    ("LP", 107),
    ("EUI48", 108),
    ("EUI64", 109),
    ("TKEY", 249),
    ("TSIG", 250),
    ("IXFR", 251),
    ("AXFR", 252),
    ("MAILB", 253),
    ("MAILA", 254),
    ("ANY", 255),
    ("URI", 256),
    ("CAA", 257),
    ("AVC", 258),
    ("DOA", 259),
    ("AMTRELAY", 260),
    ("TA", 32768),
    ("DLV", 32769),
];

/// The code of a record type: a mnemonic (any case) or `TYPEnnn`.
pub(super) fn type_code(raw: &[u8]) -> Option<u16> {
    // The common types by their length and letters, any case (a letter
    // ORed with 0x20 is its lower case, and no other byte becomes one).
    let lower = |i: usize| raw.get(i).map_or(0, |&c| c | 0x20);
    let common = match raw.len() {
        1 if lower(0) == b'a' => Some(1),
        2 if (lower(0), lower(1)) == (b'n', b's') => Some(2),
        2 if (lower(0), lower(1)) == (b'm', b'x') => Some(15),
        3 if raw.eq_ignore_ascii_case(b"SOA") => Some(6),
        3 if raw.eq_ignore_ascii_case(b"TXT") => Some(16),
        3 if raw.eq_ignore_ascii_case(b"SRV") => Some(33),
        4 if raw.eq_ignore_ascii_case(b"AAAA") => Some(28),
        5 if raw.eq_ignore_ascii_case(b"CNAME") => Some(5),
        _ => None,
    };
    if common.is_some() {
        return common;
    }
    upper_case(raw, |upper| {
        if let Some(digits) = upper.strip_prefix(b"TYPE") {
            return generic_number(digits);
        }
        TYPES
            .iter()
            .find(|(name, _)| name.as_bytes() == upper)
            .map(|&(_, code)| code)
    })
}

/// `f` of `raw` in upper case, copied on the stack when short (as every
/// type and class is: two of them a record).
fn upper_case<R>(raw: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    let mut buf = [0u8; 24];
    match buf.get_mut(..raw.len()) {
        Some(upper) => {
            upper.copy_from_slice(raw);
            upper.make_ascii_uppercase();
            f(upper)
        }
        None => f(&raw.to_ascii_uppercase()),
    }
}

/// The mnemonic of a type code, or `TYPEnnn`.
pub(super) fn type_name(code: u16) -> String {
    TYPES
        .iter()
        .find(|&&(_, c)| c == code)
        .map_or_else(|| format!("TYPE{code}"), |(name, _)| (*name).to_owned())
}

/// The code of a class: `IN`, `CH`, `HS`, `CS` or `CLASSnnn`, in any case.
pub(super) fn class_code(raw: &[u8]) -> Option<u16> {
    // Two letters, or `CLASS` and digits: any other word (every record's
    // type is tried as a class first) is none, without a copy.
    if let [a, b] = *raw {
        // Any case (see `type_code`): no copy.
        return match (a | 0x20, b | 0x20) {
            (b'i', b'n') => Some(1),
            (b'c', b's') => Some(2),
            (b'c', b'h') => Some(3),
            (b'h', b's') => Some(4),
            _ => None,
        };
    }
    if !raw
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"CLASS"))
    {
        return None;
    }
    // `CLASS` and digits (which have no case).
    raw.get(5..).and_then(generic_number)
}

/// The number of `TYPEnnn` / `CLASSnnn`: decimal digits, at most 65535.
fn generic_number(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The type bitmap of NSEC, NSEC3 and CSYNC (RFC 4034 §4.1.2) for `types`.
///
/// # Errors
/// A word that is not a type.
pub(super) fn type_bitmap<'a>(types: impl Iterator<Item = &'a [u8]>) -> Result<Vec<u8>, String> {
    let mut codes = BTreeSet::new();
    for t in types {
        let code =
            type_code(t).ok_or_else(|| format!("unknown type '{}' in the bitmap", quoted(t)))?;
        codes.insert(code);
    }
    let mut out = Vec::new();
    let mut window: Option<(u8, [u8; 32], usize)> = None;
    let flush = |out: &mut Vec<u8>, w: &(u8, [u8; 32], usize)| {
        out.push(w.0);
        out.push(w.2 as u8);
        out.extend_from_slice(&w.1[..w.2]);
    };
    for code in codes {
        let [hi, lo] = code.to_be_bytes();
        if window.as_ref().is_some_and(|w| w.0 != hi)
            && let Some(w) = window.take()
        {
            flush(&mut out, &w);
        }
        let w = window.get_or_insert((hi, [0; 32], 0));
        let byte = usize::from(lo / 8);
        w.1[byte] |= 0x80 >> (lo % 8);
        w.2 = w.2.max(byte + 1);
    }
    if let Some(w) = window {
        flush(&mut out, &w);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_decimal() {
        assert_eq!(unescape(b"\\065\\066").unwrap(), b"AB");
        assert_eq!(unescape(b"a\\059b").unwrap(), b"a;b");
        assert_eq!(unescape(b"\\089\\\"\\\\").unwrap(), b"Y\"\\");
        assert_eq!(unescape(b"\\000").unwrap(), [0]);
        assert!(unescape(b"\\256").unwrap_err().contains("over 255"));
        // Fewer than three digits: the first digit, escaped (as NSD).
        assert_eq!(unescape(b"\\12").unwrap(), b"12");
        assert_eq!(unescape(b"a\\1b").unwrap(), b"a1b");
        assert_eq!(name(b"a\\1.", None).unwrap(), b"\x02a1\x00");
        assert!(unescape(b"x\\").is_err());
    }

    #[test]
    fn names() {
        let origin = b"\x07example\x04test\x00";
        assert_eq!(name(b"a\\065b", Some(origin)).unwrap()[..4], *b"\x03aAb");
        assert_eq!(name(b"\\089.", None).unwrap(), b"\x01Y\x00");
        assert_eq!(name(b"z\\000z.", None).unwrap(), b"\x03z\x00z\x00");
        assert_eq!(name(b"a\\.b.", None).unwrap(), b"\x03a.b\x00");
        assert_eq!(name(b"@", Some(origin)).unwrap(), origin);
        assert_eq!(name(b".", None).unwrap(), [0]);
        assert_eq!(
            name(b"www", Some(origin)).unwrap(),
            b"\x03www\x07example\x04test\x00"
        );
        assert_eq!(name(b"WwW.Ex.", None).unwrap(), b"\x03WwW\x02Ex\x00");
        assert!(name(b"www", None).unwrap_err().contains("no origin"));
        assert!(name(b"a..b.", None).unwrap_err().contains("empty label"));
        assert!(name(&[b'x'; 64], Some(origin)).unwrap_err().contains("63"));
        let long = [b"a.".repeat(127), b".".to_vec()].concat();
        assert!(name(&long[1..], None).is_err());
    }

    /// The byte readers read what the `str` parsers they replace read,
    /// and refuse the rest with the same messages.
    #[test]
    fn bytes_read_as_the_str_parsers_read_them() {
        let mut words: Vec<Vec<u8>> = [
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "0.1.2.03",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.4 ",
            "+1.2.3.4",
            "1.2.3.-4",
            "1000.1.1.1",
            "",
            ".",
            "a.b.c.d",
            "192.0.2.1",
            "10.0.0.00",
            "0",
            "00",
            "007",
            "18446744073709551615",
            "18446744073709551616",
            "+5",
            "-5",
            " 5",
            "5 ",
            "4294967295",
            "4294967296",
            "1h",
            "1H30M",
            "2w",
            "1x",
            "h",
            "1h1",
            "99999999999",
            "3600",
            "1d2h3m4s",
        ]
        .iter()
        .map(|w| w.as_bytes().to_vec())
        .collect();
        words.push(b"1.2.3.\xe9".to_vec());
        words.push(vec![b'1', 0xe9]);
        words.push("1\u{0663}".as_bytes().to_vec());
        for i in 0..3000u32 {
            let w = format!("{}.{}.{}.{}", i % 300, i / 7 % 260, i / 13 % 1000, i % 10);
            words.push(w.into_bytes());
        }
        for w in &words {
            let s = std::str::from_utf8(w).ok();
            let std_ip = s.and_then(|s| s.parse::<std::net::Ipv4Addr>().ok());
            assert_eq!(ipv4(w), std_ip.map(|ip| ip.octets()), "{w:?}");
            let std_number = |max: u64| match s {
                None => Err("not valid UTF-8".to_owned()),
                Some(s) => s
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n <= max && !s.starts_with('+'))
                    .ok_or_else(|| format!("bad serial '{s}' (a number from 0 to {max})")),
            };
            for max in [255, 65_535, u64::from(u32::MAX), u64::MAX] {
                assert_eq!(number(w, max, "serial"), std_number(max), "{w:?}");
            }
        }
        assert_eq!(
            duration(&[b'1', 0xe9], "TTL").unwrap_err(),
            "not valid UTF-8"
        );
        assert_eq!(
            duration("1\u{e9}".as_bytes(), "TTL").unwrap_err(),
            "bad TTL '1\u{e9}'"
        );
        assert_eq!(duration(b"", "TTL").unwrap_err(), "bad TTL ''");
        assert_eq!(duration(b"1h30m", "TTL"), Ok(5400));
    }

    #[test]
    fn common_types_and_classes_read_as_the_table_reads_them() {
        // Every mnemonic, in any case, reads as the table says; near misses
        // of the common ones (a byte that is a letter's only once ORed with
        // 0x20, a letter short or over) read as none.
        for (name, code) in TYPES {
            for spelled in [name.to_string(), name.to_ascii_lowercase()] {
                assert_eq!(type_code(spelled.as_bytes()), Some(*code), "{spelled}");
            }
        }
        for word in [
            "\x01", "N\x13", "\x0ds", "AA", "AAA", "AAAAA", "SO", "TX", "NSX", "CNAM",
        ] {
            assert_eq!(type_code(word.as_bytes()), None, "{word:?}");
        }
        for raw in [&[0x01u8][..], &[b'N', 0x13], &[0x0e, b'S'], &[0x0d, 0x18]] {
            assert_eq!(type_code(raw), None, "{raw:?}");
            assert_eq!(class_code(raw), None, "{raw:?}");
        }
        for (word, want) in [
            ("in", Some(1)),
            ("Ch", Some(3)),
            ("HS", Some(4)),
            ("cs", Some(2)),
            ("class1", Some(1)),
            ("CLASS65535", Some(65535)),
            ("CLASS65536", None),
            ("CLASS", None),
            ("CLASSx", None),
            ("A", None),
            ("NS", None),
            ("ANY", None),
            ("I", None),
        ] {
            assert_eq!(class_code(word.as_bytes()), want, "{word}");
        }
    }

    #[test]
    fn ttls() {
        assert_eq!(ttl(b"3600").unwrap(), 3600);
        assert_eq!(ttl(b"1h30m").unwrap(), 5400);
        assert_eq!(ttl(b"1W").unwrap(), 604_800);
        assert_eq!(ttl(b"2147483648").unwrap(), 2_147_483_648);
        assert!(ttl(b"4294967296").is_err());
        assert!(ttl(b"h").is_err());
        assert!(ttl(b"1x").is_err());
    }

    #[test]
    fn rrsig_times() {
        assert_eq!(rrsig_time(b"19700101000000").unwrap(), 0);
        // RFC 4034 §3.3's example.
        assert_eq!(rrsig_time(b"20030322173103").unwrap(), 1_048_354_263);
        assert_eq!(rrsig_time(b"1048354263").unwrap(), 1_048_354_263);
        assert_eq!(rrsig_time(b"21060207062816").unwrap(), 0);
        assert!(rrsig_time(b"20030230000000").is_err());
        assert!(rrsig_time(b"2003032217310x").is_err());
    }

    #[test]
    fn types_and_bitmaps() {
        assert_eq!(type_code(b"aaaa"), Some(28));
        assert_eq!(type_code(b"TYPE65534"), Some(65534));
        assert_eq!(type_code(b"TYPE65536"), None);
        assert_eq!(type_code(b"BOGUS"), None);
        assert_eq!(class_code(b"CLASS1"), Some(1));
        // RFC 4034 §4.3's example: A MX RRSIG NSEC TYPE1234.
        let bitmap =
            type_bitmap([&b"A"[..], b"MX", b"RRSIG", b"NSEC", b"TYPE1234"].into_iter()).unwrap();
        let want: Vec<u8> = [
            &[0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03][..],
            &[0x04, 0x1b],
            &[0; 26],
            &[0x20],
        ]
        .concat();
        assert_eq!(bitmap, want);
        assert!(type_bitmap([&b"NOPE"[..]].into_iter()).is_err());
    }

    #[test]
    fn a_huge_token_is_refused_by_its_length_alone() {
        let huge = vec![b'x'; 100_000];
        let e = name(&huge, Some(b"\x00")).unwrap_err();
        assert_eq!(
            e,
            "name of 100000 bytes of text (at most 255 bytes once read)"
        );
        let mut out = Vec::new();
        let e = char_string(&huge, &mut out).unwrap_err();
        assert!(
            e.starts_with("character string of 100000 bytes of text"),
            "{e}"
        );
        assert!(out.is_empty(), "nothing copied");
        // As long as four bytes of text a byte may make: read, then judged.
        let escaped = "\\065".repeat(63).into_bytes();
        assert_eq!(name(&escaped, Some(b"\x00")).unwrap()[0], 63);
    }
}
