//! The PROJ table parser on any text.
//!
//! Input: one control byte choosing the origin (the root, `example.com.` or
//! `Zone.Test.`), then the table (its UTF-8 prefix, as the loader reads it).
//! Property: no panic; an error names the file and a line of the input; the
//! records read are numbered by input line, carry the TTL given, and are at
//! or below the origin unless it is the root.
#![no_main]

use dnslb::ts::error::ZoneError;
use dnslb::ts::table::parse_table;
use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, body)) = data.split_first() else {
        return;
    };
    let origin = match ctl % 3 {
        0 => Name::root(),
        1 => Name::from_ascii("example.com.").expect("name"),
        _ => Name::from_ascii("Zone.Test").expect("name"),
    };
    let text = dnslb_fuzz::utf8_prefix(body);
    let file = dnslb_fuzz::fake_path("table.txt");
    let lines = dnslb_fuzz::line_bound(text);
    match parse_table(text, &file, &origin, 300) {
        Ok(records) => {
            for r in &records {
                assert!((1..lines).contains(&r.line), "record line {}", r.line);
                assert_eq!(r.ttl, 300);
                assert!(r.name.is_fqdn(), "owner {} not fully qualified", r.name);
                if !origin.is_root() {
                    assert!(origin.zone_of(&r.name), "{} outside {origin}", r.name);
                }
            }
        }
        Err(e @ ZoneError::Line { line, .. }) => {
            dnslb_fuzz::check_located(&e.to_string(), &file, line, lines);
        }
        Err(e) => panic!("parse_table read a file? {e}"),
    }
});
