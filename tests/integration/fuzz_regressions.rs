//! Inputs the fuzz targets (fuzz/, scripts/fuzz) found to break a property,
//! kept as tests. Each input also stays in its target's corpus.
use std::path::Path;

use dnslb::ts::zonefile::parse_zone_file;

use crate::kit::ZoneDir;

/// hickory read the rest of a `$TTL` or `$ORIGIN` line as a new entry (`$TTL
/// 3600 @` named an owner) and gave the records below no line (line 0). The
/// reader of our own, as NSD, takes one argument: anything more is refused at
/// its line.
#[test]
fn words_after_a_directive_are_refused_at_their_line() {
    let text = "\
$ORIGIN fixture.test.
$TTL 3600 @
      IN SOA ns1 hostmaster 2024060101 7200 3600 1209600 300
";
    let err = parse_zone_file(text, Path::new("z.zone"), None).unwrap_err();
    assert_eq!(err.to_string(), "z.zone:2: unexpected '@' after $TTL");
}

/// hickory named a directive by `$` and the capital letters after it, so
/// `$ORIGIN0fuzz.test.` set the origin `0fuzz.test.` and its records had line
/// 0. Now an unknown directive, refused at its line.
#[test]
fn an_argument_glued_to_its_directive_is_refused() {
    let text = "\
$TTL 300
$ORIGIN0fuzz.test.
@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300
";
    let err = parse_zone_file(text, Path::new("z.zone"), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "z.zone:2: unknown directive '$ORIGIN0fuzz.test.'"
    );
}

/// hickory honours `$INCLUDE` after another directive's argument on the same
/// line too: a `$INCLUDE` begins its own line, and one after another
/// directive is refused there, its file never opened.
#[test]
fn an_include_after_a_directive_is_refused() {
    let dir = ZoneDir::new();
    let other = dir.write("other.zone", "www IN A 192.0.2.80\n");
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
            "z.zone:4: $INCLUDE must begin its own line",
            "{line}"
        );
    }
}

/// hickory's lexer made `@` a word of its own (`@0 IN SOA` was the origin's
/// SOA with TTL 0, at line 0). As in BIND and NSD, `@0` is a name: here the
/// SOA's owner, so the NS at the origin is outside the zone, at its line.
#[test]
fn an_at_sign_glued_to_a_ttl_is_a_name() {
    let text = "\
$ORIGIN example.test.
$TTL 300
@0 IN SOA ns1 hostmaster 1 3600 600 604800 60
@  IN NS ns1
";
    let err = parse_zone_file(text, Path::new("z.zone"), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "z.zone:4: example.test. is outside the zone \\@0.example.test."
    );
}

/// A file that ends inside parentheses right after a word (no final newline)
/// is refused at the line the parenthesis opens: hickory took the cut-off
/// word for a record type and made a record no line holds (line 0).
#[test]
fn a_file_ending_inside_parentheses_is_refused_where_it_opens() {
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
        "z.zone:5: parenthesis opened here is not closed at the end of the file"
    );
}
