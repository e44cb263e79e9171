//! RFC 1035 master files (`.zone`), read by a reader of our own, and [`load_any`], which
//! picks the format of a zone source by its file name.
//!
//! The reader follows RFC 1035 §5.1 as NSD 4.6 reads it: `lexer` splits the text into
//! entries and tokens (parentheses, quoted strings, `;` comments, backslash escapes);
//! `reader` reads the directives (`$ORIGIN`, `$TTL`, `$INCLUDE`: `include` reads the
//! file named, beside the including file, and locates its problems in it; `$GENERATE`:
//! `generate` makes its records, as BIND does), the owner (`@`, relative names, a blank owner for the
//! previous one), TTL and class in either order, and the type (a mnemonic or RFC 3597's
//! `TYPEnnn`); `rdata` turns the data into wire form per type (or from RFC 3597's
//! `\# LENGTH HEX` for any type; `loc` and `svcb` the two types with a syntax of
//! their own, `extra` the other types NSD reads), `cursor` walks a record's fields,
//! and `fields` reads each field. A record without a TTL takes `$TTL`, or 3600 when
//! the file sets none (as NSD 4.6 does); a TTL over 2^31-1 is read as 0 with a warning
//! (RFC 2181 §8, as BIND does). Every error names `file:line` (a message quoting a huge
//! token is cut); `dnslb check` gets every bad line ([`check_file_all`]), a load the
//! first. The checks a server needs follow: exactly one SOA (its owner is the zone
//! origin), every name at or below the origin, class IN only; the zone builder then
//! refuses a CNAME beside other data, a second CNAME or DNAME, data below a DNAME and
//! a record no message can carry. The file is read as bytes (a Latin-1 TXT is served
//! as written, as NSD does); a bare CR ends a line (as NSD and BIND read it), a NUL
//! byte is refused.
//!
//! The reader makes each record's owner and RDATA in wire form ([`WireRecords`]), which
//! a TS's load hands to the zone builder as they are. The functions that return
//! [`SourceRecord`]s decode them into hickory [`RData`](hickory_proto::rr::RData): A,
//! AAAA, NS, CNAME, PTR, MX, SOA and TXT into their own variants, every other type as
//! [`RData::Unknown`](hickory_proto::rr::RData::Unknown) holding the wire bytes.
use std::path::Path;

use hickory_proto::rr::Name;

use crate::ts::error::ZoneError;

use crate::ts::source::{SourceRecord, read_bytes};
use crate::ts::table;

mod cursor;
mod extra;
mod fields;
mod generate;
mod include;
mod lexer;
mod loc;
mod rdata;
mod reader;
mod records;
mod svcb;
mod wire;

pub(crate) use fields::rrsig_time;
use reader::{Reader, check, name_wire};
pub use records::{IncludedFile, WireRecords};

/// Loads a zone source, choosing the format by extension: `.zone` is an RFC 1035 master
/// file (whose origin is its SOA owner; `origin`, unless it is the root, is the initial
/// origin for relative names), anything else a PROJ table with origin `origin`.
///
/// Returns the zone origin and the records.
///
/// # Errors
///
/// [`ZoneError::Io`] if the file cannot be read, else the first problem as
/// [`ZoneError::Line`].
pub fn load_any(
    file: &Path,
    origin: &Name,
    ttl: u32,
) -> Result<(Name, Vec<SourceRecord>), ZoneError> {
    load_any_noting(file, origin, ttl, &mut Vec::new())
}

/// [`load_any`], with the warnings about a master file (a TTL over 2^31-1
/// read as 0) added to `warnings` as `file:line: warning: ...` lines.
///
/// # Errors
/// As [`load_any`].
pub fn load_any_noting(
    file: &Path,
    origin: &Name,
    ttl: u32,
    warnings: &mut Vec<String>,
) -> Result<(Name, Vec<SourceRecord>), ZoneError> {
    let is_master = is_master_file(file);
    let mut origin = origin.clone();
    origin.set_fqdn(true);
    if is_master {
        load_zone_file_noting(file, (!origin.is_root()).then_some(&origin), warnings)
    } else {
        let records = table::load_table(file, &origin, ttl)?;
        Ok((origin, records))
    }
}

/// Reads `file` as [`load_any`] does and reports its problems: every bad
/// line, up to [`MAX_PROBLEMS`] (as `named-checkzone` lists them), without
/// keeping its records. An unreadable file is one problem.
pub fn check_file_all(file: &Path, origin: &Name) -> Vec<ZoneError> {
    let mut origin = origin.clone();
    origin.set_fqdn(true);
    if !is_master_file(file) {
        return table::check_table_file(file, &origin, MAX_PROBLEMS);
    }
    match read_bytes(file) {
        Err(e) => vec![e],
        Ok(bytes) => {
            let start = (!origin.is_root()).then_some(&origin);
            read_master(&bytes, file, start, MAX_PROBLEMS).problems
        }
    }
}

/// The most problems [`check_file_all`] lists for one file.
pub const MAX_PROBLEMS: usize = 100;

/// True for an RFC 1035 master file (`.zone`), false for a PROJ table.
pub fn is_master_file(file: &Path) -> bool {
    // The usual spelling, `NAME.zone`, told from the bytes (`extension`
    // walks the path's components: a tenth of a load's work outside the
    // files, 100,000 times); anything else as `extension` says.
    let bytes = file.as_os_str().as_encoded_bytes();
    if let Some(dot) = bytes.len().checked_sub(5)
        && dot > 0
        && bytes[dot - 1] != b'/'
        && bytes[dot..].eq_ignore_ascii_case(b".zone")
    {
        return true;
    }
    file.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("zone"))
}

/// Reads and parses the master file `file`; see [`parse_zone_file`]. The file need not
/// be UTF-8: a master file is bytes (RFC 1035 §5.1), and NSD serves a Latin-1 TXT as
/// written.
///
/// # Errors
///
/// [`ZoneError::Io`] if the file cannot be read; else as [`parse_zone_file`].
pub fn load_zone_file(
    file: &Path,
    origin: Option<&Name>,
) -> Result<(Name, Vec<SourceRecord>), ZoneError> {
    load_zone_file_noting(file, origin, &mut Vec::new())
}

/// [`load_zone_file`], with the file's warnings added to `warnings`.
///
/// # Errors
/// As [`load_zone_file`].
pub fn load_zone_file_noting(
    file: &Path,
    origin: Option<&Name>,
    warnings: &mut Vec<String>,
) -> Result<(Name, Vec<SourceRecord>), ZoneError> {
    let bytes = read_bytes(file)?;
    let mut read = read_master(&bytes, file, origin, 1);
    warnings.append(&mut read.warnings);
    first_problem(read, file).and_then(|z| decoded(z, file))
}

/// [`load_any_noting`] of a master file whose bytes were read already
/// (`file` names it in errors), its records in wire form as the zone
/// builder takes them: the load reads each file once, and takes its
/// fingerprint from the same bytes.
///
/// # Errors
/// As [`parse_zone_file`].
pub(crate) fn parse_master_noting(
    bytes: &[u8],
    file: &Path,
    origin: &Name,
    warnings: &mut Vec<String>,
) -> Result<(Name, WireRecords), ZoneError> {
    let mut origin = origin.clone();
    origin.set_fqdn(true);
    let mut read = read_master(bytes, file, (!origin.is_root()).then_some(&origin), 1);
    warnings.append(&mut read.warnings);
    first_problem(read, file)
}

/// The records of a zone read, as [`SourceRecord`]s.
///
/// # Errors
/// A record hickory cannot decode, at its line.
fn decoded(
    (origin, records): (Name, WireRecords),
    file: &Path,
) -> Result<(Name, Vec<SourceRecord>), ZoneError> {
    let records = records
        .source_records(|_| true)
        .map_err(|(line, msg)| ZoneError::line(file, line, msg))?;
    Ok((origin, records))
}

/// The zone read, or its first problem.
fn first_problem(read: Parsed, file: &Path) -> Result<(Name, WireRecords), ZoneError> {
    match (read.problems.into_iter().next(), read.zone) {
        (Some(problem), _) => Err(problem),
        (None, Some(zone)) => Ok(zone),
        (None, None) => Err(ZoneError::Io {
            file: file.to_path_buf(),
            msg: "read nothing".into(),
        }),
    }
}

/// Parses the text of an RFC 1035 master file; `file` is only used to name it in errors.
///
/// `origin` is the origin relative names start from until the file sets `$ORIGIN`. The
/// zone origin returned is the owner of the file's one SOA record. Names keep the case
/// of the file.
///
/// # Errors
///
/// The first problem as [`ZoneError::Line`]: a syntax or RDATA error,
/// a `$INCLUDE` that cannot be read or loops, no SOA or more than one, a name outside the zone origin,
/// a class other than IN (the zone builder refuses a CNAME beside other data and the rest).
pub fn parse_zone_file(
    text: &str,
    file: &Path,
    origin: Option<&Name>,
) -> Result<(Name, Vec<SourceRecord>), ZoneError> {
    first_problem(read_master(text.as_bytes(), file, origin, 1), file)
        .and_then(|z| decoded(z, file))
}

/// What reading a master file found.
struct Parsed {
    /// The zone origin and records, when there is no problem.
    zone: Option<(Name, WireRecords)>,
    /// The problems, in file order.
    problems: Vec<ZoneError>,
    /// `file:line: warning: ...` lines.
    warnings: Vec<String>,
}

/// Reads the bytes of a master file, listing up to `max` problems (the
/// reading stops at a lexical error: what follows it cannot be read), and
/// the files it includes.
fn read_master(text: &[u8], file: &Path, origin: Option<&Name>, max: usize) -> Parsed {
    let mut read = Parsed {
        zone: None,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let at = |(line, msg): (usize, String)| ZoneError::line(file, line, msg);
    let mut reader = Reader::new(match origin.map(name_wire).transpose() {
        Ok(wire) => wire,
        Err(msg) => {
            read.problems.push(at((1, msg)));
            return read;
        }
    });
    // Each entry read as the lexer ends it: the tokens of a big file never
    // sit in memory together (a signed zone's are ten times its records').
    let mut records = WireRecords::for_text(text.len());
    let mut walk = include::Walk {
        reader: &mut reader,
        records: &mut records,
        problems: &mut read.problems,
        max,
        open: vec![std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf())],
    };
    walk.text(text, file, 0);
    if let Some((line, value, n)) = reader.ttls_over {
        let others = match n {
            1 => String::new(),
            n => format!(" ({n} such TTLs in this file)"),
        };
        read.warnings.push(format!(
            "{}:{line}: warning: TTL {value} is over 2147483647 and read as 0 (RFC 2181 §8){others}",
            file.display()
        ));
    }
    if !read.problems.is_empty() {
        return read;
    }
    // The origin in force at the end (made by `fields::name`: a name) names
    // the zone only when it has no SOA: decoded then.
    match check(&records, reader.origin.as_deref(), max) {
        Ok(zone) => read.zone = Some((zone, records)),
        Err(problems) => read
            .problems
            .extend(problems.into_iter().map(|(index, (line, msg))| {
                let from = index.and_then(|i| records.file_of(i)).unwrap_or(file);
                ZoneError::line(from, line, msg)
            })),
    }
    read
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, RecordType};

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn parse(text: &str) -> Result<(Name, Vec<SourceRecord>), ZoneError> {
        parse_zone_file(text, Path::new("z.zone"), None)
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    /// The bytes' test says what `extension` says, for every spelling.
    #[test]
    fn a_master_file_is_told_by_its_extension_however_spelled() {
        for path in [
            "a.zone",
            "dir/b.ZONE",
            "/etc/dnslb/z.Zone",
            "..zone",
            "d/..zone",
            ".zone",
            "d/.zone",
            "zone",
            "a.zone/",
            "a.zone/.",
            "a.txt",
            "a.zonex",
            "a.zon",
            "a/.zone/",
            "",
            "/",
            "x.y.zone",
            "d.zone/t.txt",
        ] {
            let p = Path::new(path);
            let want = p
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("zone"));
            assert_eq!(is_master_file(p), want, "{path:?}");
        }
    }

    const HEAD: &str = "$ORIGIN example.test.
$TTL 3600
@ IN SOA ns1 hostmaster (
        1      ; serial
        7200   ; refresh
        3600   ; retry
        1209600 ; expire
        300 )  ; minimum
  IN NS ns1
ns1 IN A 192.0.2.53
";

    /// Lines in [`HEAD`].
    const HEAD_LINES: usize = 10;

    /// `text` is refused at line `n` after [`HEAD`].
    fn assert_error_at(text: &str, n: usize) {
        let e = error(text);
        assert!(e.starts_with(&head_line(n, "")), "{e}");
    }

    /// The error text of line `n` after [`HEAD`]: `z.zone:LINE: msg`.
    fn head_line(n: usize, msg: &str) -> String {
        format!("z.zone:{}: {msg}", HEAD_LINES + n)
    }

    fn lines_of(records: &[SourceRecord], owner: &str, kind: RecordType) -> Vec<usize> {
        let owner = name(owner);
        records
            .iter()
            .filter(|r| r.name == owner && r.data.record_type() == kind)
            .map(|r| r.line)
            .collect()
    }

    /// The reader's buffers go from one file to the next on a thread: the
    /// next file starts with no owner (a blank one is refused; the same
    /// owner text is read under its own origin), whatever the last one
    /// left in them, a long owner and a bad line included.
    #[test]
    fn each_file_starts_afresh_on_a_thread_that_read_another() {
        let long = format!("{}.example.test.", "x".repeat(60));
        let first = format!(
            "{HEAD}www A 192.0.2.1\n{long} TXT \"{}\"\n",
            "t".repeat(200)
        );
        let (_, records) = parse(&first).unwrap();
        assert_eq!(records.last().map(|r| r.name.clone()), Some(name(&long)));
        // A bad file between: its reader dropped mid-way.
        assert!(parse(&format!("{HEAD}www A 192.0.2.300\n")).is_err());
        let other = HEAD.replace("example.test.", "other.test.");
        let (origin, records) = parse(&format!("{other}www A 192.0.2.2\n")).unwrap();
        assert_eq!(origin, name("other.test."));
        assert_eq!(
            lines_of(&records, "www.other.test.", RecordType::A),
            vec![HEAD_LINES + 1]
        );
        assert_eq!(
            lines_of(&records, "www.example.test.", RecordType::A),
            Vec::<usize>::new()
        );
        // A first record with a blank owner: none left from the file before.
        let blank = "$ORIGIN b.test.\n  A 192.0.2.3\n@ SOA ns h 1 2 3 4 5\n";
        assert!(
            error(blank).starts_with("z.zone:2: a record with a blank owner"),
            "{}",
            error(blank)
        );
    }

    #[test]
    fn shipped_example_zone_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/example.zone");
        let (origin, records) = load_zone_file(&path, None).unwrap();
        assert_eq!(origin, name("example.test."));
        assert_eq!(records.len(), 15);
        assert!(
            records
                .iter()
                .all(|r| r.line > 0 && origin.zone_of(&r.name))
        );
        assert_eq!(
            lines_of(&records, "example.test.", RecordType::SOA),
            vec![6]
        );
        assert_eq!(
            lines_of(&records, "www.example.test.", RecordType::A),
            vec![22, 23, 24]
        );
        let status = records
            .iter()
            .find(|r| r.name == name("status.example.test."))
            .unwrap();
        assert_eq!(status.ttl, 300);
        assert_eq!(records.iter().filter(|r| r.ttl == 3600).count(), 14);
        // The same through load_any, whatever the configured origin says.
        let (origin, again) = load_any(&path, &Name::root(), 60).unwrap();
        assert_eq!(origin, name("example.test."));
        assert_eq!(again, records);
    }

    #[test]
    fn records_come_in_file_order_with_their_lines() {
        let text = format!("{HEAD}www IN A 192.0.2.1\n  IN A 192.0.2.2\n\nmail 60 A 192.0.2.3\n");
        let (origin, records) = parse(&text).unwrap();
        assert_eq!(origin, name("example.test."));
        let lines: Vec<usize> = records.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 9, 10, 11, 12, 14]);
        assert_eq!(records[5].ttl, 60);
        assert_eq!(records[5].data, RData::A(A(Ipv4Addr::new(192, 0, 2, 3))));
    }

    #[test]
    fn broken_record_is_reported_at_its_line() {
        let n = HEAD_LINES + 3;
        let text = format!(
            "{HEAD}www IN A 192.0.2.1\n; comment\nbad IN A 300.1.1.1\nlater IN A 192.0.2.9\n"
        );
        let err = parse(&text).unwrap_err();
        match &err {
            ZoneError::Line { line, msg, .. } => {
                assert_eq!(*line, n, "{err}");
                assert!(
                    msg.contains("300.1.1.1") || msg.contains("address"),
                    "{msg}"
                );
            }
            other => panic!("{other:?}"),
        }
        // An unknown type, right after the multi-line SOA.
        let text = HEAD.replacen("  IN NS ns1", "  IN BOGUS ns1", 1);
        assert!(error(&text).starts_with("z.zone:9: "), "{}", error(&text));
        // Relative origin files too: a bad line at the very end without a newline.
        let text = format!("{HEAD}www IN AAAA 192.0.2.1");
        assert_error_at(&text, 1);
    }

    #[test]
    fn error_inside_parentheses_is_reported_at_the_line_of_the_field() {
        let text = HEAD.replacen("1      ; serial", "one    ; serial", 1);
        assert_eq!(
            error(&text),
            "z.zone:4: bad serial 'one' (a number from 0 to 4294967295)"
        );
    }

    #[test]
    fn quoted_strings_spanning_lines_and_semicolons_do_not_confuse_lines() {
        let text = format!(
            "{HEAD}t IN TXT \"two\nlines; ( not a comment\"\nu IN TXT \"x\" ; ( comment\nbad IN A x\n"
        );
        assert_error_at(&text, 4);
    }

    #[test]
    fn unclosed_parenthesis_is_reported_where_it_opens() {
        let text = format!("{HEAD}x IN TXT ( \"a\"\n\"b\"\n\n");
        assert_eq!(
            error(&text),
            head_line(
                1,
                "parenthesis opened here is not closed at the end of the file"
            )
        );
    }

    /// A file that is not a zone file is read as one, and refused at its
    /// first line that is not a record (the `$INCLUDE` names it).
    #[test]
    fn an_include_of_a_file_that_is_no_zone_file_is_refused() {
        let text = format!("{HEAD}$INCLUDE /proc/self/status\n");
        let e = error(&text);
        assert!(e.starts_with("/proc/self/status:1: "), "{e}");
        let e = error("$include /nonexistent/other.zone example.test.\n");
        assert!(
            e.starts_with("z.zone:1: $INCLUDE: /nonexistent/other.zone"),
            "{e}"
        );
    }

    #[test]
    fn missing_or_extra_soa_is_refused() {
        assert_eq!(
            error("$ORIGIN example.test.\n$TTL 60\nwww A 192.0.2.1\n"),
            "z.zone:1: no SOA at the zone origin example.test."
        );
        assert_eq!(error(""), "z.zone:1: no SOA at the zone origin .");
        let text = format!("{HEAD}sub IN SOA ns1 hostmaster 1 2 3 4 5\n");
        assert_eq!(
            error(&text),
            head_line(1, "more than one SOA (example.test. and sub.example.test.)")
        );
        let text = format!("{HEAD}@ IN SOA ns1 hostmaster 2 2 3 4 5\n");
        assert_error_at(&text, 1);
    }

    #[test]
    fn names_outside_the_zone_are_refused() {
        let text = format!("{HEAD}www.example.org. IN A 192.0.2.1\n");
        assert_eq!(
            error(&text),
            head_line(1, "www.example.org. is outside the zone example.test.")
        );
    }

    #[test]
    fn other_classes_are_refused() {
        let text = format!("{HEAD}txt CH TXT \"x\"\n");
        assert_eq!(
            error(&text),
            head_line(1, "class CH is not supported (only IN)")
        );
    }

    #[test]
    fn several_cnames_at_one_name_are_left_to_the_zone_builder() {
        // Two equal CNAMEs are one (as NSD, Knot and BIND load them): only the
        // builder, which merges duplicates, can tell (tests/integration/zonefile_reader.rs).
        let text = format!("{HEAD}alias IN CNAME a\nalias IN CNAME A\n");
        let (_, records) = parse(&text).unwrap();
        assert_eq!(
            lines_of(&records, "alias.example.test.", RecordType::CNAME).len(),
            2
        );
    }

    #[test]
    fn every_bad_line_is_listed_up_to_the_limit() {
        let text =
            format!("{HEAD}a A 300.1.1.1\nb A 1.2.3\nc BOGUS 1\nd A 192.0.2.1\ne TXT \"open\n");
        let file = Path::new("z.zone");
        let lines = |max| -> Vec<String> {
            read_master(text.as_bytes(), file, None, max)
                .problems
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            lines(MAX_PROBLEMS),
            [
                head_line(1, "bad IPv4 address '300.1.1.1'"),
                head_line(2, "bad IPv4 address '1.2.3'"),
                head_line(3, "unknown type 'BOGUS'"),
                head_line(5, "quoted string not closed"),
            ]
        );
        assert_eq!(lines(2).len(), 2);
        // Loading stops at the first.
        assert_eq!(error(&text), lines(1)[0]);
    }

    #[test]
    fn origin_comes_from_the_soa_or_the_caller() {
        // Absolute names only, no $ORIGIN: the SOA owner is the origin.
        let text = "$TTL 60\nzone.test. IN SOA ns.zone.test. h.zone.test. 1 2 3 4 5\nwww.zone.test. A 192.0.2.1\n";
        let (origin, records) = parse(text).unwrap();
        assert_eq!(origin, name("zone.test."));
        assert_eq!(records.len(), 2);
        // Relative names with the caller's origin.
        let text = "$TTL 60\n@ IN SOA ns h 1 2 3 4 5\nwww A 192.0.2.1\n";
        let (origin, records) =
            parse_zone_file(text, Path::new("z.zone"), Some(&name("given.test"))).unwrap();
        assert_eq!(origin, name("given.test."));
        assert_eq!(records[1].name, name("www.given.test."));
        assert_eq!(records[1].line, 3);
        // `@` with no origin anywhere.
        assert!(error(text).starts_with("z.zone:2: "), "{}", error(text));
    }

    #[test]
    fn any_record_type_hickory_knows_is_kept() {
        let text = format!(
            "{HEAD}@ MX 10 mail\n_sip._tcp SRV 0 5 5060 sip\n@ CAA 0 issue \"ca.example\"\n"
        );
        let (_, records) = parse(&text).unwrap();
        let kinds: Vec<RecordType> = records
            .iter()
            .skip(3)
            .map(|r| r.data.record_type())
            .collect();
        assert_eq!(
            kinds,
            vec![RecordType::MX, RecordType::SRV, RecordType::CAA]
        );
    }

    #[test]
    fn load_any_picks_the_format_by_extension() {
        let dir = std::env::temp_dir().join(format!("dnslb-zonefile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let table = dir.join("t.txt");
        std::fs::write(&table, "www.example.com 192.0.2.1 A\n").unwrap();
        let (origin, records) = load_any(&table, &name("example.com"), 42).unwrap();
        assert_eq!(origin, name("example.com."));
        assert_eq!(records[0].ttl, 42);

        let zone = dir.join("z.ZONE");
        std::fs::write(&zone, "$TTL 60\n@ SOA ns h 1 2 3 4 5\nwww A 192.0.2.1\n").unwrap();
        let (origin, records) = load_any(&zone, &name("example.com."), 42).unwrap();
        assert_eq!(origin, name("example.com."));
        assert_eq!(records[1].ttl, 60);

        // Bytes that are not UTF-8 are bytes (a Latin-1 TXT, as NSD serves it).
        std::fs::write(
            &zone,
            b"$TTL 60\n; caf\xe9\n@ SOA ns h 1 2 3 4 5\nt TXT caf\xe9\n",
        )
        .unwrap();
        let (_, records) = load_any(&zone, &name("example.com."), 1).unwrap();
        assert_eq!(records[1].line, 4);
        assert_eq!(
            records[1].data,
            RData::TXT(hickory_proto::rr::rdata::TXT::from_bytes(vec![b"caf\xe9"]))
        );
        assert!(matches!(
            load_any(&dir.join("none.zone"), &Name::root(), 1),
            Err(ZoneError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The wire bytes of a record's data, whatever variant holds them.
    fn data_wire(data: &RData) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = hickory_proto::serialize::binary::BinEncoder::new(&mut out);
        enc.set_name_encoding(hickory_proto::serialize::binary::NameEncoding::Uncompressed);
        hickory_proto::serialize::binary::BinEncodable::emit(data, &mut enc).unwrap();
        out
    }

    #[test]
    fn owners_ttls_classes_and_origins() {
        let text = "$ORIGIN example.test.\n@ SOA ns h 1 2 3 4 5\n\
                    a 60 IN A 192.0.2.1\n\
                    \tIN 70 A 192.0.2.2\n\
                    \tA 192.0.2.3\n\
                    $ORIGIN sub\n\
                    b CLASS1 TYPE1 192.0.2.4\n\
                    @ 1h TXT x\n\
                    $TTL 5\n\
                    c A 192.0.2.5\n";
        let (origin, records) = parse(text).unwrap();
        assert_eq!(origin, name("example.test."));
        let got: Vec<(String, u32, usize)> = records
            .iter()
            .map(|r| (r.name.to_string(), r.ttl, r.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("example.test.".into(), 3600, 2),
                ("a.example.test.".into(), 60, 3),
                ("a.example.test.".into(), 70, 4),
                // No $TTL yet: 3600, an explicit TTL does not carry over (NSD 4.6).
                ("a.example.test.".into(), 3600, 5),
                ("b.sub.example.test.".into(), 3600, 7),
                ("sub.example.test.".into(), 3600, 8),
                ("c.sub.example.test.".into(), 5, 10),
            ]
        );
        assert_eq!(records[4].data, RData::A(A(Ipv4Addr::new(192, 0, 2, 4))));
    }

    /// An owner written as the record before wrote it is that record's
    /// name (read once), until `$ORIGIN` moves: then `@` and relative names
    /// are read again, under the new origin; case is kept as written.
    #[test]
    fn an_owner_written_again_is_the_same_name_until_the_origin_moves() {
        let text = "$ORIGIN example.test.\n@ SOA ns h 1 2 3 4 5\n@ A 192.0.2.1\n\
                    www A 192.0.2.2\nwww A 192.0.2.3\nWWW A 192.0.2.4\n\
                    $ORIGIN sub.example.test.\n@ A 192.0.2.5\nwww A 192.0.2.6\n\
                    $TTL 60\nwww A 192.0.2.7\n";
        let (_, records) = parse(text).unwrap();
        let got: Vec<(String, usize)> = records
            .iter()
            .map(|r| (r.name.to_string(), r.line))
            .collect();
        assert_eq!(
            got,
            [
                ("example.test.", 2),
                ("example.test.", 3),
                ("www.example.test.", 4),
                ("www.example.test.", 5),
                ("WWW.example.test.", 6),
                ("sub.example.test.", 8),
                ("www.sub.example.test.", 9),
                ("www.sub.example.test.", 11),
            ]
            .map(|(n, l)| (n.to_owned(), l))
        );
        // A bad owner leaves the one before in force for a blank owner, and
        // the same bad owner again is refused again.
        let text =
            format!("{HEAD}www A 192.0.2.1\nw..x A 192.0.2.2\n A 192.0.2.3\nw..x A 192.0.2.4\n");
        let file = Path::new("z.zone");
        let problems: Vec<String> = read_master(text.as_bytes(), file, None, MAX_PROBLEMS)
            .problems
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with(&head_line(2, "")), "{problems:?}");
        assert!(problems[1].starts_with(&head_line(4, "")), "{problems:?}");
    }

    #[test]
    fn hard_cases_read_as_nsd_reads_them() {
        let text = format!(
            "{HEAD}k TXT ( \"v=DKIM1; k=rsa; \"\n  \"p=AB)C\" )  ; comment\n\
             q TXT \"\\065\\066\" a\\059b\n\
             a\\065b A 192.0.2.1\n\
             \\089 A 192.0.2.2\n\
             z\\000z A 192.0.2.3\n\
             g TYPE65280 \\# 2 abcd\n\
             @ SPF \"v=spf1 -all\"\n\
             d DNAME @\n\
             c CNAME @\n"
        );
        let (_, records) = parse(&text).unwrap();
        let data: Vec<Vec<u8>> = records.iter().skip(3).map(|r| data_wire(&r.data)).collect();
        assert_eq!(data[0], b"\x10v=DKIM1; k=rsa; \x06p=AB)C");
        assert_eq!(data[1], b"\x02AB\x03a;b");
        let owners: Vec<&[u8]> = records[5..8]
            .iter()
            .map(|r| r.name.iter().next().unwrap())
            .collect();
        assert_eq!(owners, [&b"aAb"[..], b"Y", b"z\0z"]);
        assert_eq!(records[8].data.record_type(), RecordType::Unknown(65280));
        assert_eq!(data[5], [0xab, 0xcd]);
        assert_eq!(u16::from(records[9].data.record_type()), 99);
        assert_eq!(data[7], b"\x07example\x04test\x00");
        assert_eq!(data[8], b"\x07example\x04test\x00");
    }
}
