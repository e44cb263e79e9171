//! PROJ tables: the course project's zone format, one record a line.
//!
//! ```text
//! # comment
//! www.example.com     192.0.2.10          A
//! WwW.ExPress.CO.Uk   203.0.113.7         A      # trailing comment
//! info.example.com    "hello, world"      TXT
//! ts1.example         -                   NS
//! ```
//!
//! A line is `<hostname> <value> <type>`, fields separated by any whitespace. The type is
//! one of A, AAAA, CNAME, TXT, NS (any case). Hostnames are fully qualified whether or not
//! they end with `.`, and keep the case they are written in. A TXT value may be a
//! double-quoted string (`\"` and `\\` escapes). NS with value `-` means "the hostname is a
//! name server of this table": the record is `origin NS hostname`. Every record gets the
//! TTL the caller passes. The first bad line is reported as `file:line: what is wrong`.
//!
//! This file reads a table's files and text; `line.rs` reads each line.
use std::path::Path;

use hickory_proto::rr::Name;

use crate::ts::error::ZoneError;

use crate::ts::source::{SourceRecord, decode, read_bytes};

mod line;

use line::parse_line;

/// Reads and parses the PROJ table `file`.
///
/// Owner names must be at or below `origin` (taken as fully qualified) unless it is the
/// root; every record gets `ttl`.
///
/// # Errors
///
/// [`ZoneError::Io`] if the file cannot be read; otherwise the first bad line as
/// [`ZoneError::Line`], including a line that is not valid UTF-8.
pub fn load_table(file: &Path, origin: &Name, ttl: u32) -> Result<Vec<SourceRecord>, ZoneError> {
    let mut records = Vec::new();
    visit_table_file(file, origin, ttl, |rec| {
        records.push(rec);
        Ok(())
    })?;
    Ok(records)
}

/// [`load_table`], handing each record to `each` as it is read instead of
/// collecting them (a big table is compiled without ever being held as
/// decoded records).
///
/// # Errors
/// As [`load_table`], or the first error `each` returns.
pub fn visit_table_file(
    file: &Path,
    origin: &Name,
    ttl: u32,
    each: impl FnMut(SourceRecord) -> Result<(), ZoneError>,
) -> Result<(), ZoneError> {
    visit_table_bytes(&read_bytes(file)?, file, origin, ttl, each)
}

/// [`visit_table_file`] of a table whose bytes were read already (`file`
/// names it in errors).
///
/// # Errors
/// As [`visit_table_file`], but for reading the file.
pub fn visit_table_bytes(
    bytes: &[u8],
    file: &Path,
    origin: &Name,
    ttl: u32,
    each: impl FnMut(SourceRecord) -> Result<(), ZoneError>,
) -> Result<(), ZoneError> {
    match decode(bytes) {
        Ok(text) => visit_table(text, file, origin, ttl, each),
        Err(bad) => {
            // The lines before the undecodable one may hold an earlier error: report that first.
            visit_table(bad.valid_prefix, file, origin, ttl, each)?;
            Err(ZoneError::line(file, bad.line, "not valid UTF-8"))
        }
    }
}

/// Every bad line of the PROJ table `file` (up to `max`), as `dnslb check`
/// lists them; an unreadable file is one problem. A line that is not valid
/// UTF-8 ends the list (what follows cannot be read as lines).
pub fn check_table_file(file: &Path, origin: &Name, max: usize) -> Vec<ZoneError> {
    let bytes = match read_bytes(file) {
        Ok(b) => b,
        Err(e) => return vec![e],
    };
    let (text, bad) = match decode(&bytes) {
        Ok(text) => (text, None),
        Err(bad) => (bad.valid_prefix, Some(bad.line)),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut origin = origin.clone();
    origin.set_fqdn(true);
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if problems.len() >= max {
            return problems;
        }
        if let Err(msg) = parse_line(line, &origin) {
            problems.push(ZoneError::line(file, index + 1, msg));
        }
    }
    if let Some(line) = bad.filter(|_| problems.len() < max) {
        problems.push(ZoneError::line(file, line, "not valid UTF-8"));
    }
    problems
}

/// Parses the text of a PROJ table; `file` is only used to name it in errors.
///
/// # Errors
///
/// The first bad line, as [`ZoneError::Line`].
pub fn parse_table(
    text: &str,
    file: &Path,
    origin: &Name,
    ttl: u32,
) -> Result<Vec<SourceRecord>, ZoneError> {
    // One record a line at most: reserve once rather than grow (and copy) a
    // big table step by step.
    let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
    let mut records = Vec::with_capacity(lines);
    visit_table(text, file, origin, ttl, |rec| {
        records.push(rec);
        Ok(())
    })?;
    Ok(records)
}

/// [`parse_table`], handing each record to `each` as it is read.
///
/// # Errors
/// The first bad line, as [`ZoneError::Line`], or the first error `each` returns.
pub fn visit_table(
    text: &str,
    file: &Path,
    origin: &Name,
    ttl: u32,
    mut each: impl FnMut(SourceRecord) -> Result<(), ZoneError>,
) -> Result<(), ZoneError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut fqdn_origin = origin.clone();
    fqdn_origin.set_fqdn(true);
    let origin = &fqdn_origin;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if let Some((name, data)) =
            parse_line(line, origin).map_err(|msg| ZoneError::line(file, number, msg))?
        {
            each(SourceRecord {
                name,
                ttl,
                data,
                line: number,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use hickory_proto::rr::rdata::NS;
    use hickory_proto::rr::{LowerName, RData, RecordType};

    use super::*;
    use crate::dns::parse_hostname;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn loader_reports_io_and_utf8_errors() {
        let dir = std::env::temp_dir().join(format!("dnslb-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let origin = Name::root();

        let missing = dir.join("missing.txt");
        assert!(matches!(
            load_table(&missing, &origin, 60),
            Err(ZoneError::Io { .. })
        ));

        let good = dir.join("good.txt");
        std::fs::write(&good, "www.example.com 192.0.2.1 A\n").unwrap();
        assert_eq!(load_table(&good, &origin, 60).unwrap()[0].ttl, 60);

        let bad_utf8 = dir.join("latin1.txt");
        std::fs::write(
            &bad_utf8,
            b"www.example.com 192.0.2.1 A\n# caf\xe9\nx.example 192.0.2.2 A\n",
        )
        .unwrap();
        assert_eq!(
            load_table(&bad_utf8, &origin, 60).unwrap_err().to_string(),
            format!("{}:2: not valid UTF-8", bad_utf8.display())
        );

        let earlier = dir.join("earlier.txt");
        std::fs::write(&earlier, b"www.example.com 1.2.3 A\n\xff\n").unwrap();
        assert_eq!(
            load_table(&earlier, &origin, 60).unwrap_err().to_string(),
            format!("{}:1: bad IPv4 address '1.2.3'", earlier.display())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn shipped(file: &str) -> Vec<SourceRecord> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("zones")
            .join(file);
        load_table(&path, &Name::root(), 300).unwrap()
    }

    /// Names a table holds apart from its origin (the owner of its `- NS` line).
    fn owners(records: &[SourceRecord]) -> BTreeSet<LowerName> {
        records
            .iter()
            .filter(|r| !r.name.is_root())
            .map(|r| LowerName::new(&r.name))
            .collect()
    }

    #[test]
    fn shipped_tables_load_and_are_disjoint() {
        let ts1 = shipped("ts1.txt");
        let ts2 = shipped("ts2.txt");
        for (table, server) in [(&ts1, "ts1.example."), (&ts2, "ts2.example.")] {
            assert!(table.len() >= 12);
            let ns: Vec<_> = table
                .iter()
                .filter(|r| r.data.record_type() == RecordType::NS)
                .collect();
            assert_eq!(ns.len(), 1);
            assert!(ns[0].name.is_root());
            assert_eq!(ns[0].data, RData::NS(NS(name(server))));
            for kind in [
                RecordType::A,
                RecordType::AAAA,
                RecordType::CNAME,
                RecordType::TXT,
            ] {
                assert!(
                    table.iter().any(|r| r.data.record_type() == kind),
                    "{server} {kind}"
                );
            }
        }
        let (one, two) = (owners(&ts1), owners(&ts2));
        assert!(
            one.is_disjoint(&two),
            "shared: {:?}",
            one.intersection(&two).collect::<Vec<_>>()
        );
        assert!(one.contains(&LowerName::new(&name("www.express.co.uk."))));
        assert!(
            ts1.iter()
                .any(|r| r.name.eq_case(&name("WwW.ExPress.CO.Uk.")))
        );
    }

    #[test]
    fn hostnames_list_mixes_both_tables_and_misses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/hostnames.txt");
        let text = std::fs::read_to_string(path).unwrap();
        let (one, two) = (owners(&shipped("ts1.txt")), owners(&shipped("ts2.txt")));
        let (mut in_one, mut in_two, mut neither) = (0, 0, 0);
        for host in text.lines().filter(|l| !l.trim().is_empty()) {
            let host = LowerName::new(&parse_hostname(host.trim()).unwrap());
            match (one.contains(&host), two.contains(&host)) {
                (true, _) => in_one += 1,
                (_, true) => in_two += 1,
                _ => neither += 1,
            }
        }
        assert!(in_one >= 3 && in_two >= 3, "{in_one} {in_two}");
        assert_eq!(neither, 3);
    }
}
