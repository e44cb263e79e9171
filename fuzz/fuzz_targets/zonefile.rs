//! The RFC 1035 master file reader (`dnslb::ts::zonefile`) on any text.
//!
//! Input: one control byte choosing the initial origin (none, `fuzz.test.`
//! or `Example.COM.`), then the file (its UTF-8 prefix, as the loader reads
//! it). Property: no panic, no hang; an error names the file and a line of
//! the input; the records read are numbered by input line and lie inside the
//! zone origin returned.
#![no_main]

use dnslb::ts::error::ZoneError;
use dnslb::ts::zonefile::parse_zone_file;
use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, body)) = data.split_first() else {
        return;
    };
    let origin = match ctl % 3 {
        0 => None,
        1 => Some(Name::from_ascii("fuzz.test.").expect("name")),
        _ => Some(Name::from_ascii("Example.COM.").expect("name")),
    };
    let text = dnslb_fuzz::utf8_prefix(body);
    let file = dnslb_fuzz::fake_path("input.zone");
    let lines = dnslb_fuzz::line_bound(text);
    match parse_zone_file(text, &file, origin.as_ref()) {
        Ok((zone, records)) => {
            for r in &records {
                assert!((1..lines).contains(&r.line), "record line {}", r.line);
                assert!(zone.zone_of(&r.name), "{} outside {zone}", r.name);
            }
        }
        Err(e @ ZoneError::Line { line, .. }) => {
            dnslb_fuzz::check_located(&e.to_string(), &file, line, lines);
        }
        Err(e) => panic!("parse_zone_file read a file? {e}"),
    }
});
