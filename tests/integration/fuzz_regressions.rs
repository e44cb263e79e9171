//! Inputs the fuzz targets (fuzz/, scripts/fuzz) found to break a property,
//! kept as tests. Each input also stays in its target's corpus.
use std::path::Path;

use dnslb::ts::source::SourceRecord;
use dnslb::ts::zonefile::parse_zone_file;
use hickory_proto::rr::RecordType;

fn line_of(records: &[SourceRecord], kind: RecordType) -> Vec<usize> {
    records
        .iter()
        .filter(|r| r.data.record_type() == kind)
        .map(|r| r.line)
        .collect()
}

/// The rest of a `$TTL` or `$ORIGIN` line is read as a new entry, so
/// `$TTL 3600 @` names the owner of the records below it. Those records keep
/// the lines they are written on (they had none, line 0), and an error about
/// one of them names its line.
#[test]
fn an_owner_after_a_directive_keeps_the_lines_of_its_records() {
    let text = "\
$ORIGIN fixture.test.
$TTL 3600 @
      IN SOA ns1 hostmaster 2024060101 7200 3600 1209600 300
      IN NS ns1
$ORIGIN fixture.test. ns1 IN A 192.0.2.53
";
    let (zone, records) = parse_zone_file(text, Path::new("z.zone"), None).unwrap();
    assert_eq!(zone.to_string(), "fixture.test.");
    assert_eq!(line_of(&records, RecordType::SOA), [3]);
    assert_eq!(line_of(&records, RecordType::NS), [4]);
    assert_eq!(line_of(&records, RecordType::A), [5]);

    let bad = format!("{text}$TTL 60 @ CH TXT \"x\"\n");
    let err = parse_zone_file(&bad, Path::new("z.zone"), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "z.zone:6: class CH is not supported (only IN)"
    );
}

/// hickory names a directive by `$` and the capital letters after it, so
/// `$ORIGIN0fuzz.test.` sets the origin `0fuzz.test.`: the records it names
/// keep their lines (the SOA had line 0).
#[test]
fn an_argument_glued_to_its_directive_is_read_as_hickory_reads_it() {
    let text = "\
$ORIGIN0fuzz.test.
$TTL 300
@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300
  IN NS ns1
ns1 IN A 192.0.2.53
";
    let (zone, records) = parse_zone_file(text, Path::new("z.zone"), None).unwrap();
    assert_eq!(zone.to_string(), "0fuzz.test.");
    assert_eq!(line_of(&records, RecordType::SOA), [3]);
    assert_eq!(line_of(&records, RecordType::NS), [4]);
    assert_eq!(line_of(&records, RecordType::A), [5]);
}

/// hickory honours `$INCLUDE` after another directive's argument on the same
/// line too: refused there as at the start of a line, so loading a zone never
/// opens another file.
#[test]
fn an_include_after_a_directive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.zone");
    std::fs::write(&other, "www IN A 192.0.2.80\n").unwrap();
    let head = "\
$ORIGIN fuzz.test.
@ 300 IN SOA ns1 hostmaster 1 7200 3600 1209600 300
  IN NS ns1
";
    // Without the guard, hickory reads other.zone: www.fuzz.test. A 192.0.2.80.
    for line in [
        format!("$TTL 300 $INCLUDE {}", other.display()),
        format!("$ORIGIN fuzz.test. $INCLUDE{}", other.display()),
        format!("$TTL 300 $ORIGIN fuzz.test. $INCLUDE {}", other.display()),
    ] {
        let text = format!("{head}{line}\n");
        let err = parse_zone_file(&text, Path::new("z.zone"), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "z.zone:4: $INCLUDE is not supported",
            "{line}"
        );
    }
}

/// hickory's lexer makes `@` a word of its own: `@0 IN SOA` is the origin's
/// SOA with TTL 0, at its line (it had line 0).
#[test]
fn an_at_sign_glued_to_a_ttl_is_the_origin() {
    let text = "\
$ORIGIN example.test.
$TTL 300
@0 IN SOA ns1 hostmaster 1 3600 600 604800 60
@  IN NS ns1
ns1 IN A 192.0.2.53
";
    let (zone, records) = parse_zone_file(text, Path::new("z.zone"), None).unwrap();
    assert_eq!(zone.to_string(), "example.test.");
    assert_eq!(line_of(&records, RecordType::SOA), [3]);
    assert_eq!(line_of(&records, RecordType::NS), [4]);
}

/// A file that ends inside parentheses right after a word (no final newline)
/// is refused at its last line: hickory took the cut-off word for a record
/// type and made a record no line holds (reported at line 0).
#[test]
fn a_file_ending_inside_parentheses_is_refused_at_its_last_line() {
    let text = "\
$ORIGIN fuzz.test.
$TTL 300
@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300
  IN NS ns1
www.other.test. (
  2024060101 7200
loop IN CNAME www
big IN TXT";
    let err = parse_zone_file(text, Path::new("z.zone"), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "z.zone:8: unclosed parenthesis at the end of the file"
    );
}
