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
