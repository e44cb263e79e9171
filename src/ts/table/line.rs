//! One line of a PROJ table: `<hostname> <value> <type>`, fields split by
//! white space (a TXT value may be quoted), into an owner and its record data.
use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, TXT};
use hickory_proto::rr::{Name, RData};
use smallvec::SmallVec;

use crate::dns::parse_hostname;

/// The record types a PROJ table can hold, as named in error messages.
const TYPES_HINT: &str = "PROJ tables hold A, AAAA, CNAME, TXT, NS";

/// The shape of a line, as named in error messages.
const SHAPE: &str = "'<hostname> <value> <type>'";

/// The longest TXT character-string, in bytes; longer values are split.
const MAX_TXT_STRING: usize = 255;

/// Parses one line: `Ok(None)` for a blank or comment line, `Err(message)` for a bad one.
pub(super) fn parse_line(line: &str, origin: &Name) -> Result<Option<(Name, RData)>, String> {
    if line.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    let fields = split_fields(line)?;
    let count = fields.len();
    let [host, value, .., kind] = fields.as_slice() else {
        return match count {
            0 => Ok(None),
            _ => Err(format!("expected {SHAPE}, got {}", plural(count, "field"))),
        };
    };
    let kind = Kind::parse(kind)?;
    if count > 3 {
        let hint = if kind == Kind::Txt {
            " (a TXT value with spaces needs double quotes)"
        } else {
            ""
        };
        return Err(format!("expected {SHAPE}, got {count} fields{hint}"));
    }
    if host.quoted || (value.quoted && kind != Kind::Txt) {
        return Err("quotes are only allowed around a TXT value".into());
    }
    let owner =
        parse_hostname(&host.text).map_err(|why| format!("bad hostname '{}': {why}", host.text))?;
    let value_text = value.text.as_ref();
    let record = match kind {
        Kind::A => {
            let ip: Ipv4Addr = value_text
                .parse()
                .map_err(|_| format!("bad IPv4 address '{value_text}'"))?;
            (owner, RData::A(A(ip)))
        }
        Kind::Aaaa => {
            let ip: Ipv6Addr = value_text
                .parse()
                .map_err(|_| format!("bad IPv6 address '{value_text}'"))?;
            (owner, RData::AAAA(AAAA(ip)))
        }
        Kind::Cname => {
            if value_text == "-" {
                return Err("bad CNAME target '-': '-' is only meaningful for NS".into());
            }
            let target = parse_hostname(value_text)
                .map_err(|why| format!("bad CNAME target '{value_text}': {why}"))?;
            (owner, RData::CNAME(CNAME(target)))
        }
        Kind::Ns if value_text == "-" => (origin.clone(), RData::NS(NS(owner))),
        Kind::Ns => {
            let target = parse_hostname(value_text)
                .map_err(|why| format!("bad NS target '{value_text}': {why}"))?;
            (owner, RData::NS(NS(target)))
        }
        Kind::Txt => (owner, RData::TXT(txt(value_text.as_bytes()))),
    };
    // Owner names only: NS and CNAME targets may be anywhere (`-` NS puts the origin as owner).
    if !origin.is_root() && !origin.zone_of(&record.0) {
        return Err(format!("{} is outside the zone {origin}", record.0));
    }
    Ok(Some(record))
}

/// The record types of a PROJ table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    A,
    Aaaa,
    Cname,
    Txt,
    Ns,
}

impl Kind {
    /// Parses the type field (case-insensitive).
    fn parse(field: &Field<'_>) -> Result<Self, String> {
        let text = field.text.as_ref();
        let kind = match text.to_ascii_uppercase().as_str() {
            "A" if !field.quoted => Kind::A,
            "AAAA" if !field.quoted => Kind::Aaaa,
            "CNAME" if !field.quoted => Kind::Cname,
            "TXT" if !field.quoted => Kind::Txt,
            "NS" if !field.quoted => Kind::Ns,
            _ => return Err(format!("unknown type '{text}' ({TYPES_HINT})")),
        };
        Ok(kind)
    }
}

/// One whitespace-separated field of a line.
#[derive(Debug, PartialEq)]
struct Field<'a> {
    /// The text, with quotes and escapes removed if it was quoted.
    text: Cow<'a, str>,
    /// Whether it was written as a double-quoted string.
    quoted: bool,
}

/// Splits a line into fields, stopping at a `#` outside quotes.
fn split_fields(line: &str) -> Result<SmallVec<[Field<'_>; 4]>, String> {
    let mut fields = SmallVec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() || rest.starts_with('#') {
            return Ok(fields);
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            let (text, after) = unquote(quoted)?;
            if after.starts_with(|c: char| !c.is_whitespace() && c != '#') {
                return Err("expected a space after the closing quote".into());
            }
            fields.push(Field {
                text: Cow::Owned(text),
                quoted: true,
            });
            rest = after;
        } else {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '#')
                .unwrap_or(rest.len());
            let (text, after) = rest.split_at(end);
            fields.push(Field {
                text: Cow::Borrowed(text),
                quoted: false,
            });
            rest = after;
        }
    }
}

/// Reads a quoted string whose opening quote is already consumed: returns the unescaped
/// text and what follows the closing quote.
fn unquote(s: &str) -> Result<(String, &str), String> {
    let mut text = String::new();
    let mut chars = s.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((text, &s[at + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped @ ('"' | '\\'))) => text.push(escaped),
                Some((_, other)) => {
                    return Err(format!(
                        "bad escape '\\{other}' in quoted string (only \\\" and \\\\)"
                    ));
                }
                None => break,
            },
            c => text.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

/// A TXT rdata holding `value`, split into character-strings of at most 255 bytes.
fn txt(value: &[u8]) -> TXT {
    if value.is_empty() {
        return TXT::from_bytes(vec![value]);
    }
    TXT::from_bytes(value.chunks(MAX_TXT_STRING).collect())
}

/// `1 field`, `2 fields`.
fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("{count} {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use hickory_proto::rr::{LowerName, RecordType};

    use super::super::parse_table;
    use super::*;
    use crate::ts::error::ZoneError;
    use crate::ts::source::SourceRecord;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn parse(text: &str) -> Result<Vec<SourceRecord>, ZoneError> {
        parse_table(text, Path::new("t.txt"), &Name::root(), 300)
    }

    fn parse_in(text: &str, origin: &str) -> Result<Vec<SourceRecord>, ZoneError> {
        parse_table(text, Path::new("t.txt"), &name(origin), 300)
    }

    /// The error text for a one-line table.
    fn error(line: &str) -> String {
        parse(line).unwrap_err().to_string()
    }

    fn one(line: &str) -> SourceRecord {
        let mut records = parse(line).unwrap();
        assert_eq!(records.len(), 1, "{line}");
        records.remove(0)
    }

    fn txt_strings(data: &RData) -> Vec<Vec<u8>> {
        match data {
            RData::TXT(txt) => txt.txt_data.iter().map(|s| s.to_vec()).collect(),
            other => panic!("not TXT: {other:?}"),
        }
    }

    #[test]
    fn each_type_parses() {
        let a = one("www.google.com 8.6.4.2 A");
        assert_eq!(a.name, name("www.google.com."));
        assert!(a.name.is_fqdn());
        assert_eq!(a.data, RData::A(A(Ipv4Addr::new(8, 6, 4, 2))));
        assert_eq!((a.ttl, a.line), (300, 1));

        let aaaa = one("v6.example.com. 2001:db8::1 AAAA");
        assert_eq!(aaaa.name, name("v6.example.com."));
        assert_eq!(aaaa.data, RData::AAAA(AAAA("2001:db8::1".parse().unwrap())));

        let cname = one("alias.example.com www.example.com CNAME");
        assert_eq!(cname.data, RData::CNAME(CNAME(name("www.example.com."))));

        let txt = one("t.example.com hello TXT");
        assert_eq!(txt_strings(&txt.data), vec![b"hello".to_vec()]);

        let ns = one("sub.example.com ns1.example.net NS");
        assert_eq!(ns.name, name("sub.example.com."));
        assert_eq!(ns.data, RData::NS(NS(name("ns1.example.net."))));
    }

    #[test]
    fn type_is_case_insensitive_and_case_of_names_is_kept() {
        let record = one("WwW.ExPress.CO.Uk 111.32.4.1 a");
        assert!(record.name.eq_case(&name("WwW.ExPress.CO.Uk.")));
        assert!(!record.name.eq_case(&name("www.express.co.uk.")));
        assert_eq!(record.data.record_type(), RecordType::A);
        let cname = one("x.example Target.Example.COM cname");
        match &cname.data {
            RData::CNAME(CNAME(target)) => assert!(target.eq_case(&name("Target.Example.COM."))),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            one("x.example ::1 aAaA").data.record_type(),
            RecordType::AAAA
        );
        assert_eq!(one("x.example y Txt").data.record_type(), RecordType::TXT);
        assert_eq!(one("x.example - ns").data.record_type(), RecordType::NS);
    }

    #[test]
    fn ns_dash_makes_the_hostname_a_server_of_the_origin() {
        let ns = one("ts1.example - NS");
        assert!(ns.name.is_root());
        assert_eq!(ns.data, RData::NS(NS(name("ts1.example."))));

        let records = parse_in(
            "ts1.example - NS\nwww.example.com 192.0.2.1 A",
            "example.com",
        )
        .unwrap();
        assert_eq!(records[0].name, name("example.com."));
        assert_eq!(records[0].data, RData::NS(NS(name("ts1.example."))));
    }

    #[test]
    fn quoted_txt_keeps_spaces_hashes_and_escapes() {
        let txt = one(r#"info.example.com "hello  world # not a comment" TXT # a comment"#);
        assert_eq!(
            txt_strings(&txt.data),
            vec![b"hello  world # not a comment".to_vec()]
        );
        let txt = one(r#"q.example "say \"hi\" \\ bye" TXT"#);
        assert_eq!(txt_strings(&txt.data), vec![br#"say "hi" \ bye"#.to_vec()]);
        let txt = one(r#"e.example "" TXT"#);
        assert_eq!(txt_strings(&txt.data), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn long_txt_is_split_into_255_byte_strings() {
        let value = "x".repeat(600);
        let txt = one(&format!("long.example \"{value}\" TXT"));
        let strings = txt_strings(&txt.data);
        assert_eq!(
            strings.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![255, 255, 90]
        );
        assert_eq!(strings.concat(), value.as_bytes());
        let exact = one(&format!("e.example {} TXT", "y".repeat(255)));
        assert_eq!(txt_strings(&exact.data).len(), 1);
    }

    #[test]
    fn comments_blank_lines_crlf_and_no_final_newline() {
        let text = "# a table\r\n\r\n   \t\r\n  # indented comment\r\nwww.example.com\t192.0.2.1   A # trailing\r\nmail.example.com 192.0.2.2 A#tight\r\nlast.example.com 192.0.2.3 A";
        let records = parse(text).unwrap();
        let lines: Vec<usize> = records.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![5, 6, 7]);
        assert_eq!(records[2].data, RData::A(A(Ipv4Addr::new(192, 0, 2, 3))));
        assert!(parse("").unwrap().is_empty());
        assert!(parse("\u{feff}# bom\nwww.example.com 192.0.2.1 A\n").is_ok());
    }

    #[test]
    fn names_may_end_with_a_dot_and_repeat_as_an_rrset() {
        let records = parse("a.example. 192.0.2.1 A\nA.example 192.0.2.2 A\n").unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].name, records[1].name);
        assert_eq!(
            LowerName::new(&records[1].name),
            LowerName::new(&name("a.example."))
        );
    }

    #[test]
    fn hostname_rules() {
        assert!(parse("*.example.com 192.0.2.1 A").is_ok());
        assert!(parse("_sip._udp.example.com x TXT").is_ok());
        assert!(parse("my-host.example.com 192.0.2.1 A").is_ok());
        assert!(parse(". 192.0.2.1 A").is_ok());
        let label63 = "a".repeat(63);
        assert!(parse(&format!("{label63}.example 192.0.2.1 A")).is_ok());
        let long_ok = vec!["a".repeat(63); 3].join(".") + "." + &"b".repeat(61); // 253 chars = 255 wire bytes
        assert!(
            parse(&format!("{long_ok} 192.0.2.1 A")).is_ok(),
            "{}",
            long_ok.len()
        );

        assert_eq!(
            error("a..b 192.0.2.1 A"),
            "t.txt:1: bad hostname 'a..b': empty label"
        );
        assert_eq!(
            error(".a 192.0.2.1 A"),
            "t.txt:1: bad hostname '.a': empty label"
        );
        assert_eq!(
            error("a.. 192.0.2.1 A"),
            "t.txt:1: bad hostname 'a..': empty label"
        );
        assert_eq!(
            error(&format!("{}.example 192.0.2.1 A", "a".repeat(64))),
            format!(
                "t.txt:1: bad hostname '{}.example': label longer than 63 bytes",
                "a".repeat(64)
            )
        );
        let too_long = long_ok.clone() + "b";
        assert_eq!(
            error(&format!("{too_long} 192.0.2.1 A")),
            format!("t.txt:1: bad hostname '{too_long}': longer than 255 bytes")
        );
        assert_eq!(
            error("wh!y.example 192.0.2.1 A"),
            "t.txt:1: bad hostname 'wh!y.example': bad character '!'"
        );
        assert_eq!(
            error("www.*.example 192.0.2.1 A"),
            "t.txt:1: bad hostname 'www.*.example': '*' is only allowed as the whole first label"
        );
        assert_eq!(
            error("a*.example 192.0.2.1 A"),
            "t.txt:1: bad hostname 'a*.example': '*' is only allowed as the whole first label"
        );
        assert_eq!(
            error("bücher.example 192.0.2.1 A"),
            "t.txt:1: bad hostname 'bücher.example': bad character 'ü'"
        );
    }

    #[test]
    fn field_count_errors() {
        assert_eq!(
            error("www.google.com 8.6.4.2"),
            "t.txt:1: expected '<hostname> <value> <type>', got 2 fields"
        );
        assert_eq!(
            error("www.google.com"),
            "t.txt:1: expected '<hostname> <value> <type>', got 1 field"
        );
        assert_eq!(
            error("www.google.com 8.6.4.2 8.6.4.3 A"),
            "t.txt:1: expected '<hostname> <value> <type>', got 4 fields"
        );
        assert_eq!(
            error("t.example hello world TXT"),
            "t.txt:1: expected '<hostname> <value> <type>', got 4 fields (a TXT value with spaces needs double quotes)"
        );
        assert_eq!(
            error("www.google.com # 8.6.4.2 A"),
            "t.txt:1: expected '<hostname> <value> <type>', got 1 field"
        );
    }

    #[test]
    fn value_and_type_errors() {
        assert_eq!(
            error("www.google.com 8.6.4 A"),
            "t.txt:1: bad IPv4 address '8.6.4'"
        );
        assert_eq!(
            error("www.google.com ::1 A"),
            "t.txt:1: bad IPv4 address '::1'"
        );
        assert_eq!(
            error("www.google.com 8.6.4.2 AAAA"),
            "t.txt:1: bad IPv6 address '8.6.4.2'"
        );
        assert_eq!(
            error("www.google.com 10 MX"),
            "t.txt:1: unknown type 'MX' (PROJ tables hold A, AAAA, CNAME, TXT, NS)"
        );
        assert_eq!(
            error("www.google.com 8.6.4.2 \"A\""),
            "t.txt:1: unknown type 'A' (PROJ tables hold A, AAAA, CNAME, TXT, NS)"
        );
        assert_eq!(
            error("c.example a..b CNAME"),
            "t.txt:1: bad CNAME target 'a..b': empty label"
        );
        assert_eq!(
            error("c.example - CNAME"),
            "t.txt:1: bad CNAME target '-': '-' is only meaningful for NS"
        );
        assert_eq!(
            error("n.example a_b!c NS"),
            "t.txt:1: bad NS target 'a_b!c': bad character '!'"
        );
        assert_eq!(
            error("www.google.com \"8.6.4.2\" A"),
            "t.txt:1: quotes are only allowed around a TXT value"
        );
        assert_eq!(
            error("\"www.google.com\" x TXT"),
            "t.txt:1: quotes are only allowed around a TXT value"
        );
    }

    #[test]
    fn quoting_errors() {
        assert_eq!(
            error("t.example \"open TXT"),
            "t.txt:1: unterminated quoted string"
        );
        assert_eq!(
            error("t.example \"ends in \\"),
            "t.txt:1: unterminated quoted string"
        );
        assert_eq!(
            error(r#"t.example "a\nb" TXT"#),
            r#"t.txt:1: bad escape '\n' in quoted string (only \" and \\)"#
        );
        assert_eq!(
            error(r#"t.example "a"b TXT"#),
            "t.txt:1: expected a space after the closing quote"
        );
    }

    #[test]
    fn nul_byte_is_refused() {
        assert_eq!(
            error("www.example.com 192.0.2.1\0 A"),
            "t.txt:1: contains a NUL byte"
        );
    }

    #[test]
    fn first_error_wins_with_its_line() {
        let text = "# header\nwww.example.com 192.0.2.1 A\n\nbad.example 300.1.1.1 A\nworse.example x MX\n";
        assert_eq!(
            parse(text).unwrap_err().to_string(),
            "t.txt:4: bad IPv4 address '300.1.1.1'"
        );
        let err = parse(text).unwrap_err();
        assert_eq!(
            err,
            ZoneError::Line {
                file: PathBuf::from("t.txt"),
                line: 4,
                msg: "bad IPv4 address '300.1.1.1'".into()
            }
        );
    }

    #[test]
    fn origin_is_enforced_for_owner_names() {
        let ok = parse_in(
            "example.com 192.0.2.1 A\nWWW.Example.COM 192.0.2.2 A\nts1.elsewhere.net - NS\n",
            "example.com.",
        )
        .unwrap();
        assert_eq!(ok.len(), 3);
        assert_eq!(
            parse_in(
                "www.example.com 192.0.2.1 A\nwww.example.org 192.0.2.2 A",
                "example.com"
            )
            .unwrap_err()
            .to_string(),
            "t.txt:2: www.example.org. is outside the zone example.com."
        );
        assert_eq!(
            parse_in("badexample.com 192.0.2.1 A", "example.com")
                .unwrap_err()
                .to_string(),
            "t.txt:1: badexample.com. is outside the zone example.com."
        );
        // CNAME and NS targets may point anywhere.
        assert!(parse_in("a.example.com www.example.org CNAME", "example.com").is_ok());
    }
}
