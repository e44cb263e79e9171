//! `$GENERATE range lhs [ttl] [class] type rhs`, as BIND reads it (NSD 4.6
//! does not; Knot 3.2 neither): one record for each number of `range`
//! (`start-stop[/step]`), whose owner `lhs` and data `rhs` have each `$`
//! replaced by the number and each `${offset[,width[,base]]}` by the number
//! plus `offset`, zero-padded to `width`, in `base` (`d` decimal, `o` octal,
//! `x`/`X` hexadecimal, `n`/`N` reversed nibbles with dots, the width
//! counting the dots); `\$` and `$$` are a literal `$`. A quoted `rhs` is read again
//! as a record's data after the numbers are put in (`"10 mail$"` makes an
//! MX), as BIND does; the data may also be written as several fields. Each
//! record made is read as a record written on the `$GENERATE`'s line is.
//!
//! Bounds: a line makes at most [`LINE_MAX`] records and a zone file (with
//! what it includes) at most [`ZONE_MAX`] and [`BYTES_MAX`] bytes of text,
//! counted before any is made; a
//! reversed range, a step of 0, a bad modifier, a width over [`WIDTH_MAX`]
//! or a number below 0 is refused at the line.
use super::cursor;
use super::lexer::{self, LexError, MasterEntry, Token};

/// The most records one `$GENERATE` line makes (a /16's reverse zone is
/// 65,536 PTRs).
pub(super) const LINE_MAX: u64 = 65_536;

/// The most records the `$GENERATE` lines of one zone file make in all.
pub(super) const ZONE_MAX: u64 = 1_048_576;

/// The most bytes of text the `$GENERATE` lines of one zone file may make
/// in all, counted before any is made from each line's longest record (one
/// line of long data would otherwise make gigabytes).
pub(super) const BYTES_MAX: u64 = 256 << 20;

/// The widest a `${offset,width}` pads (a name is at most 255 bytes).
const WIDTH_MAX: usize = 255;

/// The longest a number without a width is written (2^32 + 2^32 in
/// octal, 12 digits; in nibbles, 17 with their dots).
const NUMBER_MAX: usize = 20;

/// What a zone file's `$GENERATE` lines made so far.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Generated {
    /// Records.
    pub(super) records: u64,
    /// Bytes of text, at most (each line's longest record times its count).
    pub(super) bytes: u64,
}

/// How a number is written.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Base {
    Dec,
    Oct,
    Hex,
    HexUpper,
    /// Reversed nibbles, dot-separated; upper case when `true`.
    Nibble(bool),
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Bytes copied as they are (escapes kept, for the record's reader).
    Text(Vec<u8>),
    /// The number plus `offset`, padded to `width`, in `base`.
    Number {
        offset: i64,
        width: usize,
        base: Base,
    },
}

/// A `$GENERATE` line read: the range and the templates of the record.
#[derive(Debug, PartialEq)]
struct Line {
    start: u64,
    stop: u64,
    step: u64,
    /// The owner's template, then each field's after it (TTL, class, type
    /// and data), a quoted field's without its quotes.
    fields: Vec<Vec<Part>>,
}

/// Reads the `$GENERATE` `entry` and hands each record it makes to
/// `record`, as an entry on its line; `made` counts what the zone file's
/// lines made so far.
///
/// # Errors
/// The line and what is wrong: with the line itself, or with a record it
/// makes (that record's number named), `record`'s error among them.
pub(super) fn expand(
    entry: &MasterEntry<'_>,
    made: &mut Generated,
    mut record: impl FnMut(&MasterEntry<'_>) -> Result<(), cursor::Bad>,
) -> Result<(), cursor::Bad> {
    let line = entry.first_line;
    let at = |msg: String| (line, format!("$GENERATE: {msg}"));
    let args = entry.tokens.get(1..).unwrap_or_default();
    let read = parse(args).map_err(at)?;
    let count = (read.stop - read.start) / read.step + 1;
    if count > LINE_MAX {
        return Err(at(format!(
            "{count} records in one line, over the {LINE_MAX} allowed"
        )));
    }
    let total = made.records + count;
    if total > ZONE_MAX {
        return Err(at(format!(
            "{total} records made in this zone, over the {ZONE_MAX} allowed"
        )));
    }
    let bytes = made.bytes + count * longest(&read.fields);
    if bytes > BYTES_MAX {
        return Err(at(format!(
            "up to {bytes} bytes of records made in this zone, over the {BYTES_MAX} allowed"
        )));
    }
    *made = Generated {
        records: total,
        bytes,
    };
    let lowest = read.fields.iter().flatten().filter_map(|part| match part {
        Part::Number { offset, .. } => Some(*offset),
        Part::Text(_) => None,
    });
    if let Some(offset) = lowest.min() {
        let value = i128::from(read.start) + i128::from(offset);
        if value < 0 {
            return Err(at(format!("number {value} below 0 (offset {offset})")));
        }
    }
    let mut text = Vec::with_capacity(128);
    let mut n = read.start;
    while n <= read.stop {
        text.clear();
        for field in &read.fields {
            render(field, n, &mut text);
            text.push(b' ');
        }
        one_record(&text, line, &mut record).map_err(|(_, m)| at(format!("at {n}: {m}")))?;
        n += read.step;
    }
    Ok(())
}

/// The most bytes of text one record of `fields` is written in.
fn longest(fields: &[Vec<Part>]) -> u64 {
    let part = |p: &Part| match p {
        Part::Text(t) => t.len(),
        Part::Number { width, .. } => (*width).max(NUMBER_MAX),
    };
    let all: usize = fields
        .iter()
        .map(|f| f.iter().map(part).sum::<usize>() + 1)
        .sum();
    all as u64
}

/// Hands `text`, one record made, to `record` as an entry on line `line`.
fn one_record(
    text: &[u8],
    line: usize,
    record: &mut impl FnMut(&MasterEntry<'_>) -> Result<(), cursor::Bad>,
) -> Result<(), cursor::Bad> {
    let mut result = Ok(());
    let mut seen = false;
    let lexed = lexer::each_entry(text, |made| {
        let fail = |msg: String| LexError { line, msg };
        if std::mem::replace(&mut seen, true) {
            return Err(fail("the record made spans more than one entry".into()));
        }
        // Every `$` written is put in or escaped: no directive can be made.
        if made
            .tokens
            .first()
            .is_some_and(|t| t.text.starts_with(b"$"))
        {
            return Err(fail("the record made reads as a directive".into()));
        }
        let tokens: Vec<Token<'_>> = made.tokens.iter().map(|t| Token { line, ..*t }).collect();
        let entry = MasterEntry {
            first_line: line,
            last_line: line,
            blank_owner: false,
            tokens,
        };
        if let Err(e) = record(&entry) {
            result = Err(e);
        }
        Ok(())
    });
    lexed.map_err(|e| (line, e.msg))?;
    result
}

/// Reads a `$GENERATE`'s arguments (after the keyword).
fn parse(args: &[Token<'_>]) -> Result<Line, String> {
    let [range, lhs, rest @ ..] = args else {
        return Err("needs a range, an owner, a type and data".into());
    };
    if rest.len() < 2 {
        return Err("needs a range, an owner, a type and data".into());
    }
    let (start, stop, step) = parse_range(range.text)?;
    let mut fields = vec![template(lhs.text)?];
    for token in rest {
        let text = if token.quoted {
            quoted_again(token.text)
        } else {
            token.text.to_vec()
        };
        fields.push(template(&text)?);
    }
    Ok(Line {
        start,
        stop,
        step,
        fields,
    })
}

/// `start-stop[/step]`: decimal numbers, `start` at most `stop`, `step` at
/// least 1.
fn parse_range(raw: &[u8]) -> Result<(u64, u64, u64), String> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    let number = |digits: &[u8]| -> Result<u64, String> {
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 10 {
            return Err(format!("bad range '{}' (start-stop[/step])", shown()));
        }
        let value: u64 = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad range '{}'", shown()))?;
        if value > u64::from(u32::MAX) {
            return Err(format!("range '{}': {value} is over 4294967295", shown()));
        }
        Ok(value)
    };
    let (span, step) = match raw.iter().position(|&b| b == b'/') {
        Some(i) => (&raw[..i], number(&raw[i + 1..])?),
        None => (raw, 1),
    };
    let dash = span
        .iter()
        .position(|&b| b == b'-')
        .ok_or_else(|| format!("bad range '{}' (start-stop[/step])", shown()))?;
    let (start, stop) = (number(&span[..dash])?, number(&span[dash + 1..])?);
    if start > stop {
        return Err(format!("range '{}' runs backwards", shown()));
    }
    if step == 0 {
        return Err(format!("range '{}' has a step of 0", shown()));
    }
    Ok((start, stop, step))
}

/// A quoted field as BIND reads it again: its text with `\"` made `"`,
/// every other escape kept.
fn quoted_again(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter().copied();
    while let Some(b) = bytes.next() {
        if b == b'\\' {
            match bytes.next() {
                Some(b'"') => out.push(b'"'),
                Some(next) => out.extend_from_slice(&[b'\\', next]),
                None => out.push(b'\\'),
            }
        } else {
            out.push(b);
        }
    }
    out
}

/// A field's template: `$`, `${offset[,width[,base]]}`, `\$` and `$$` a literal `$`
/// (kept escaped, as every escape is, for the record's reader).
fn template(raw: &[u8]) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut text = Vec::new();
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'\\' => {
                let end = (i + 2).min(raw.len());
                text.extend_from_slice(&raw[i..end]);
                i = end;
            }
            // `$$` is a `$`, as BIND reads it (escaped, for the reader).
            b'$' if raw.get(i + 1) == Some(&b'$') => {
                text.extend_from_slice(b"\\$");
                i += 2;
            }
            b'$' => {
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                if raw.get(i + 1) == Some(&b'{') {
                    let close = raw[i..]
                        .iter()
                        .position(|&c| c == b'}')
                        .ok_or_else(|| "a '${' with no '}'".to_owned())?;
                    parts.push(modifier(&raw[i + 2..i + close])?);
                    i += close + 1;
                } else {
                    parts.push(Part::Number {
                        offset: 0,
                        width: 0,
                        base: Base::Dec,
                    });
                    i += 1;
                }
            }
            _ => {
                text.push(b);
                i += 1;
            }
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// `offset[,width[,base]]`, the inside of `${...}`.
fn modifier(inside: &[u8]) -> Result<Part, String> {
    let shown = || format!("bad modifier '${{{}}}'", String::from_utf8_lossy(inside));
    let text = std::str::from_utf8(inside).map_err(|_| shown())?;
    let mut pieces = text.split(',');
    let offset_text = pieces.next().unwrap_or_default();
    let digits = offset_text.strip_prefix(['-', '+']).unwrap_or(offset_text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(shown());
    }
    let offset: i64 = offset_text
        .parse()
        .ok()
        .filter(|o: &i64| o.unsigned_abs() <= u64::from(u32::MAX))
        .ok_or_else(shown)?;
    let width = match pieces.next() {
        None => 0,
        Some(w) if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) => {
            let width: usize = w.parse().map_err(|_| shown())?;
            if width > WIDTH_MAX {
                return Err(format!("{}: width over {WIDTH_MAX}", shown()));
            }
            width
        }
        Some(_) => return Err(shown()),
    };
    let base = match pieces.next() {
        None => Base::Dec,
        Some("d") => Base::Dec,
        Some("o") => Base::Oct,
        Some("x") => Base::Hex,
        Some("X") => Base::HexUpper,
        Some("n") => Base::Nibble(false),
        Some("N") => Base::Nibble(true),
        Some(_) => return Err(shown()),
    };
    if pieces.next().is_some() {
        return Err(shown());
    }
    Ok(Part::Number {
        offset,
        width,
        base,
    })
}

/// `parts` with the number `n` put in, onto `out`.
fn render(parts: &[Part], n: u64, out: &mut Vec<u8>) {
    use std::io::Write;
    for part in parts {
        match part {
            Part::Text(text) => out.extend_from_slice(text),
            Part::Number {
                offset,
                width,
                base,
            } => {
                // Checked at least 0 before any record is made.
                let value = u64::try_from(i128::from(n) + i128::from(*offset)).unwrap_or(0);
                let w = *width;
                // Writing to a Vec cannot fail.
                let _ = match base {
                    Base::Dec => write!(out, "{value:0w$}"),
                    Base::Oct => write!(out, "{value:0w$o}"),
                    Base::Hex => write!(out, "{value:0w$x}"),
                    Base::HexUpper => write!(out, "{value:0w$X}"),
                    Base::Nibble(upper) => {
                        nibbles(value, w, *upper, out);
                        Ok(())
                    }
                };
            }
        }
    }
}

/// `value`'s nibbles, lowest first, separated by dots, until the value is
/// spent and `width` characters (dots counted) are written, as BIND does:
/// 18 at width 5 is `2.1.0`, at width 4 `2.1.` (a dot may end it).
fn nibbles(mut value: u64, mut width: usize, upper: bool, out: &mut Vec<u8>) {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    loop {
        width = width.saturating_sub(1);
        out.push(digits[usize::from((value & 0xf) as u8)]);
        value >>= 4;
        if value == 0 && width == 0 {
            break;
        }
        width = width.saturating_sub(1);
        out.push(b'.');
        if value == 0 && width == 0 {
            break;
        }
    }
}

#[allow(clippy::unwrap_used)]
#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(template_text: &str, n: u64) -> String {
        let parts = template(template_text.as_bytes()).unwrap();
        let mut out = Vec::new();
        render(&parts, n, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Each base and width as BIND 9.18 writes them (its
    /// `named-compilezone` output, read by hand).
    #[test]
    fn numbers_are_written_as_bind_writes_them() {
        assert_eq!(rendered("host$", 3), "host3");
        assert_eq!(rendered("${10,3,d}-x", 2), "012-x");
        assert_eq!(rendered("${0,4,x}.h", 18), "0012.h");
        assert_eq!(rendered("${0,0,X}", 255), "FF");
        assert_eq!(rendered("o${0,3,o}", 8), "o010");
        assert_eq!(rendered("${-1}", 1), "0");
        assert_eq!(rendered("a\\$b$", 7), "a\\$b7");
        assert_eq!(rendered("a$$b$", 7), "a\\$b7");
        for (width, n, want) in [
            (0, 0, "0"),
            (2, 0, "0."),
            (3, 1, "1.0"),
            (0, 18, "2.1"),
            (4, 18, "2.1."),
            (5, 18, "2.1.0"),
            (7, 255, "f.f.0.0"),
            (8, 4096, "0.0.0.1."),
            (1, 4096, "0.0.0.1"),
        ] {
            assert_eq!(
                rendered(&format!("${{0,{width},n}}"), n),
                want,
                "{width} {n}"
            );
        }
        assert_eq!(rendered("${0,3,N}", 0xab), "B.A");
    }

    /// A quoted field has `\"` undone, as BIND's lexer does; other escapes
    /// stay for the record's reader.
    #[test]
    fn a_quoted_field_is_read_again() {
        assert_eq!(quoted_again(br#"x\"y z\""#), br#"x"y z""#.to_vec());
        assert_eq!(quoted_again(br"a\$b\\"), br"a\$b\\".to_vec());
    }

    /// Bad ranges and modifiers are refused with what is wrong.
    #[test]
    fn bad_ranges_and_modifiers_are_refused() {
        assert_eq!(parse_range(b"1-10/3").unwrap(), (1, 10, 3));
        assert_eq!(parse_range(b"5-5").unwrap(), (5, 5, 1));
        for bad in [
            &b"10-1"[..],
            b"1-10/0",
            b"1",
            b"-3",
            b"a-b",
            b"1-99999999999",
            b"1-2/",
            b"1--2",
        ] {
            assert!(
                parse_range(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        for bad in [
            "${",
            "${}",
            "${x}",
            "${1,}",
            "${1,2,q}",
            "${1,2,d,4}",
            "${1,256}",
            "${99999999999}",
        ] {
            assert!(template(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    /// The zone's cap counts every line's records, before any is made.
    #[test]
    fn the_zone_cap_counts_every_line() {
        let text = b"$GENERATE 1-10 h$ A 10.0.0.1\n";
        let entries = lexer::entries(text).unwrap();
        let mut made = Generated {
            records: ZONE_MAX - 10,
            bytes: 0,
        };
        let mut owners = Vec::new();
        let mut keep = |e: &MasterEntry<'_>| {
            owners.push(String::from_utf8_lossy(e.tokens[0].text).into_owned());
            Ok(())
        };
        expand(&entries[0], &mut made, &mut keep).unwrap();
        assert_eq!(made.records, ZONE_MAX);
        let (line, msg) = expand(&entries[0], &mut made, &mut keep).unwrap_err();
        assert_eq!(line, 1);
        assert!(msg.contains("over the 1048576 allowed"), "{msg}");
        assert_eq!(owners.len(), 10);
        assert_eq!(owners[9], "h10");
    }
}
