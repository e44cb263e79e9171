//! RFC 1035 master files (`.zone`), parsed with hickory-proto's zone parser, and
//! [`load_any`], which picks the format of a zone source by its file name.
//!
//! hickory's parser does the lexing and the RDATA; this module adds what a server needs
//! around it: `file:line` for the first error (hickory reports none), refusal of `$INCLUDE`,
//! exactly one SOA (its owner is the zone origin), every name at or below the origin, class
//! IN only, at most one CNAME per name, and a source line for every record.
//!
//! The error line is found by re-parsing prefixes of the text that end where an entry ends
//! (a line boundary outside parentheses and quotes), binary-searching for the shortest one
//! that fails: the error is on the last line of that prefix.
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;

use hickory_proto::rr::{DNSClass, LowerName, Name, RecordSet, RecordType, RrKey};
use hickory_proto::serialize::txt::{ParseError, Parser, parse_ttl};

use crate::ts::source::{SourceRecord, ZoneError};
use crate::ts::table::{self, decode, read_bytes};

/// hickory's message when the file never sets an origin and none was given.
const NO_ORIGIN: &str = "$ORIGIN was not specified";

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
    let is_master = is_master_file(file);
    let mut origin = origin.clone();
    origin.set_fqdn(true);
    if is_master {
        load_zone_file(file, (!origin.is_root()).then_some(&origin))
    } else {
        let records = table::load_table(file, &origin, ttl)?;
        Ok((origin, records))
    }
}

/// Reads `file` as [`load_any`] does and reports its first problem, without
/// keeping its records (a PROJ table is checked line by line).
///
/// # Errors
/// As [`load_any`].
pub fn check_file(file: &Path, origin: &Name, ttl: u32) -> Result<(), ZoneError> {
    if is_master_file(file) {
        return load_any(file, origin, ttl).map(drop);
    }
    let mut origin = origin.clone();
    origin.set_fqdn(true);
    table::visit_table_file(file, &origin, ttl, |_| Ok(()))
}

/// True for an RFC 1035 master file (`.zone`), false for a PROJ table.
pub fn is_master_file(file: &Path) -> bool {
    file.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("zone"))
}

/// Reads and parses the master file `file`; see [`parse_zone_file`].
///
/// # Errors
///
/// [`ZoneError::Io`] if the file cannot be read; `file:line: not valid UTF-8`; else as
/// [`parse_zone_file`].
pub fn load_zone_file(
    file: &Path,
    origin: Option<&Name>,
) -> Result<(Name, Vec<SourceRecord>), ZoneError> {
    let bytes = read_bytes(file)?;
    let text = decode(&bytes).map_err(|bad| ZoneError::line(file, bad.line, "not valid UTF-8"))?;
    parse_zone_file(text, file, origin)
}

/// Parses the text of an RFC 1035 master file; `file` is only used to name it in errors.
///
/// `origin` is the origin relative names start from until the file sets `$ORIGIN`. The
/// zone origin returned is the owner of the file's one SOA record. Names keep the case
/// hickory gives them (lowercase).
///
/// # Errors
///
/// The first problem as [`ZoneError::Line`]: a syntax or RDATA error (hickory's message),
/// `$INCLUDE is not supported`, no SOA or more than one, a name outside the zone origin,
/// a class other than IN, or more than one CNAME at a name.
pub fn parse_zone_file(
    text: &str,
    file: &Path,
    origin: Option<&Name>,
) -> Result<(Name, Vec<SourceRecord>), ZoneError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Refused before hickory sees the text, so it never opens another file. hickory
    // honours `$INCLUDE` at the start of a line, and after another directive's argument
    // on the same line (`$TTL 60 $INCLUDE /file`); anything there that looks like one is
    // refused.
    let include = |line: usize| ZoneError::line(file, line, "$INCLUDE is not supported");
    if let Some(index) = text.lines().position(|line| {
        line.get(..8)
            .is_some_and(|word| word.eq_ignore_ascii_case("$INCLUDE"))
    }) {
        return Err(include(index + 1));
    }
    let entries = scan(text);
    if let Some(entry) = entries
        .iter()
        .find(|e| directives(e).any(|(name, ..)| name.eq_ignore_ascii_case("INCLUDE")))
    {
        return Err(include(entry.first_line));
    }
    let (parsed_origin, sets) = match run_parser(text, origin) {
        Ok(parsed) => parsed,
        Err(_) => {
            let (line, err) = locate_error(text, &entries, origin);
            return Err(ZoneError::line(file, line, err));
        }
    };
    // hickory takes a word cut off by the end of the text inside parentheses for a
    // record type (`a ( 1 TXT` is a TXT record); its own error otherwise.
    if let Some(last) = entries.last().filter(|e| e.unclosed) {
        return Err(ZoneError::line(
            file,
            last.last_line,
            "unclosed parenthesis at the end of the file",
        ));
    }
    let lines = record_lines(&entries, origin);
    // A record whose line the tracking above misses (it follows hickory's
    // reading rules by hand) is placed on the file's last line, never line 0.
    let last_line = text.lines().count().max(1);
    let records = to_source_records(sets, &lines, last_line);
    check(records, &lines, &parsed_origin).map_err(|(line, msg)| ZoneError::line(file, line, msg))
}

/// Runs hickory's parser. With no origin given and no `$ORIGIN` in the text, names are
/// taken relative to the root (the zone origin comes from the SOA anyway).
fn run_parser(
    text: &str,
    origin: Option<&Name>,
) -> Result<(Name, BTreeMap<RrKey, RecordSet>), ParseError> {
    match Parser::new(text, None, origin.cloned()).parse() {
        Err(e) if origin.is_none() && e.to_string() == NO_ORIGIN => {
            Parser::new(text, None, Some(Name::root())).parse()
        }
        result => result,
    }
}

/// Finds the first error of a text that fails to parse: the last line of the shortest
/// failing prefix that ends with an entry, and hickory's message for it.
fn locate_error(text: &str, entries: &[Entry], origin: Option<&Name>) -> (usize, String) {
    let prefix_error = |end: usize| {
        text.get(..end)
            .and_then(|prefix| run_parser(prefix, origin).err())
    };
    // Invariant: the prefix ending with entries[hi] fails (the whole text does).
    let (mut lo, mut hi) = (0, entries.len().saturating_sub(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let fails = entries
            .get(mid)
            .is_some_and(|entry| prefix_error(entry.end).is_some());
        if fails {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let (line, end) = entries
        .get(lo)
        .map_or((1, text.len()), |entry| (entry.last_line, entry.end));
    let err = prefix_error(end)
        .or_else(|| run_parser(text, origin).err())
        .map_or_else(|| "parse error".to_owned(), |e| e.to_string());
    (line, err)
}

/// The source lines of the records of each RRset, in file order.
type Lines = HashMap<RrKey, Vec<usize>>;

/// Converts hickory's RRsets into records in file order, with their source lines.
fn to_source_records(
    sets: BTreeMap<RrKey, RecordSet>,
    lines: &Lines,
    unknown_line: usize,
) -> Vec<(SourceRecord, DNSClass)> {
    let mut records = Vec::new();
    for (key, set) in sets {
        let set_lines = lines.get(&key);
        for (index, record) in set.records_without_rrsigs().enumerate() {
            let line = set_lines
                .and_then(|l| l.get(index).or_else(|| l.first()))
                .copied()
                .unwrap_or(unknown_line);
            records.push((
                SourceRecord {
                    name: record.name.clone(),
                    ttl: record.ttl,
                    data: record.data.clone(),
                    line,
                },
                record.dns_class,
            ));
        }
    }
    records.sort_by_key(|(record, _)| record.line);
    records
}

/// The checks hickory leaves out; returns the zone origin (the SOA owner) and the records.
fn check(
    records: Vec<(SourceRecord, DNSClass)>,
    lines: &Lines,
    parsed_origin: &Name,
) -> Result<(Name, Vec<SourceRecord>), (usize, String)> {
    let mut soas = records
        .iter()
        .filter(|(record, _)| record.data.record_type() == RecordType::SOA)
        .map(|(record, _)| record);
    let Some(soa) = soas.next() else {
        return Err((1, format!("no SOA at the zone origin {parsed_origin}")));
    };
    if let Some(second) = soas.next() {
        return Err((
            second.line,
            format!("more than one SOA ({} and {})", soa.name, second.name),
        ));
    }
    let zone = soa.name.clone();
    for (record, class) in &records {
        if *class != DNSClass::IN {
            return Err((
                record.line,
                format!("class {class} is not supported (only IN)"),
            ));
        }
        if !zone.zone_of(&record.name) {
            return Err((record.line, format!("name outside origin {zone}")));
        }
    }
    // hickory keeps only the last of several CNAMEs at one name.
    let mut cnames: Vec<&Vec<usize>> = lines
        .iter()
        .filter(|(key, found)| key.record_type == RecordType::CNAME && found.len() > 1)
        .map(|(_, found)| found)
        .collect();
    cnames.sort();
    if let Some(&second) = cnames.first().and_then(|found| found.get(1)) {
        return Err((second, "more than one CNAME at this name".to_owned()));
    }
    Ok((
        zone,
        records.into_iter().map(|(record, _)| record).collect(),
    ))
}

/// One entry of a master file: a line, or several joined by parentheses.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    /// 1-based line the entry starts on.
    first_line: usize,
    /// 1-based line the entry ends on.
    last_line: usize,
    /// Byte offset just past the entry (past its final newline, if any).
    end: usize,
    /// The entry starts with white space: the owner is the previous entry's.
    blank_owner: bool,
    /// The words before any `(`, quotes removed; comments dropped.
    words: Vec<String>,
    /// The text ends inside this entry's parentheses.
    unclosed: bool,
}

/// Lexer state of [`scan`], following hickory's lexer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Lex {
    /// Between words.
    Gap,
    /// Inside an unquoted word.
    Word,
    /// Inside a directive's name: `$` and capital letters.
    Dollar,
    /// Inside a quoted string (which may span lines).
    Quote,
    /// Just after a backslash in a quoted string.
    Escape,
    /// In a `;` comment.
    Comment,
}

/// Splits a master file into entries, the way hickory's lexer sees them: `;` starts a
/// comment, `"` at the start of a word opens a quoted string (outside parentheses), `@`
/// is a word of its own, `$` and the capital letters after it name a directive, and
/// a line break inside parentheses or quotes does not end the entry.
fn scan(text: &str) -> Vec<Entry> {
    let starts_blank = |at: usize| {
        text.get(at..)
            .and_then(|rest| rest.chars().next())
            .is_some_and(|c| c.is_whitespace() && c != '\n' && c != '\r')
    };
    let new_entry = |line: usize, at: usize| Entry {
        first_line: line,
        last_line: line,
        end: at,
        blank_owner: starts_blank(at),
        words: Vec::new(),
        unclosed: false,
    };
    let mut entries = Vec::new();
    let mut line = 1;
    let mut entry = new_entry(1, 0);
    let mut entry_start = 0;
    let mut state = Lex::Gap;
    let mut in_list = false;
    let mut list_seen = false;
    let mut word = String::new();
    for (at, c) in text.char_indices() {
        match state {
            Lex::Quote | Lex::Escape => {
                if c == '\n' {
                    line += 1;
                }
                if state == Lex::Quote && c == '"' {
                    if !list_seen {
                        entry.words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    state = Lex::Gap;
                } else if state == Lex::Quote && c == '\\' {
                    state = Lex::Escape;
                } else {
                    word.push(c);
                    state = Lex::Quote;
                }
                continue;
            }
            Lex::Comment if c != '\n' => continue,
            Lex::Word => {
                if !(c.is_whitespace() || c == ';' || (in_list && c == ')')) {
                    word.push(c);
                    continue;
                }
                if !list_seen {
                    entry.words.push(std::mem::take(&mut word));
                }
                word.clear();
            }
            Lex::Dollar => {
                if c.is_ascii_uppercase() {
                    word.push(c);
                    continue;
                }
                // Anything else ends the name and starts the next word (`$ORIGIN0a.`).
                if !list_seen {
                    entry.words.push(std::mem::take(&mut word));
                }
                word.clear();
            }
            Lex::Comment | Lex::Gap => {}
        }
        state = Lex::Gap;
        match c {
            '\n' if in_list => line += 1,
            '\n' => {
                entry.last_line = line;
                entry.end = at + 1;
                entries.push(std::mem::replace(&mut entry, new_entry(line + 1, at + 1)));
                entry_start = at + 1;
                line += 1;
            }
            ';' => state = Lex::Comment,
            '(' if !in_list => {
                in_list = true;
                list_seen = true;
            }
            ')' if in_list => in_list = false,
            '"' if !in_list => state = Lex::Quote,
            // `@` is a word of its own (`@0` is `@` and `0`).
            '@' if !in_list => {
                if !list_seen {
                    entry.words.push("@".to_owned());
                }
            }
            '$' if !in_list => {
                word.push(c);
                state = Lex::Dollar;
            }
            c if c.is_whitespace() => {}
            c => {
                word.push(c);
                state = Lex::Word;
            }
        }
        if c == '\n' && !in_list {
            list_seen = false;
        }
    }
    if entry_start < text.len() {
        if matches!(state, Lex::Word | Lex::Dollar) && !list_seen {
            entry.words.push(word);
        }
        // A final newline inside parentheses or quotes does not start another line.
        entry.last_line = if text.ends_with('\n') { line - 1 } else { line }.max(entry.first_line);
        entry.end = text.len();
        entry.unclosed = in_list;
        entries.push(entry);
    }
    entries
}

/// A `$` directive as hickory's lexer splits it: `$` and capital letters name it, and
/// anything glued on (`$ORIGIN0a.test.`) is its argument.
fn split_directive(word: &str) -> Option<(&str, Option<&str>)> {
    let rest = word.strip_prefix('$')?;
    let end = rest
        .find(|c: char| !c.is_ascii_uppercase())
        .unwrap_or(rest.len());
    let (name, glued) = rest.split_at(end);
    Some((name, (!glued.is_empty()).then_some(glued)))
}

/// The directives an entry starts with, each with its argument and the number of words
/// it takes: hickory reads one argument, then the rest of the line afresh, so
/// `$TTL 60 $ORIGIN a.test. www A ...` holds two directives and a record.
fn directives(entry: &Entry) -> impl Iterator<Item = (&str, Option<&str>, usize)> {
    let mut words = entry.words.iter();
    let mut done = entry.blank_owner;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let Some((name, glued)) = words.next().and_then(|w| split_directive(w)) else {
            done = true;
            return None;
        };
        match glued {
            Some(argument) => Some((name, Some(argument), 1)),
            None => {
                let argument = words.next().map(String::as_str);
                Some((name, argument, 1 + usize::from(argument.is_some())))
            }
        }
    })
}

/// The lines where each RRset's records are written, found by following owner names,
/// `$ORIGIN` and the `[ttl] [class] type` fields the way hickory's parser does.
fn record_lines(entries: &[Entry], origin: Option<&Name>) -> Lines {
    let fqdn = |mut name: Name| {
        name.set_fqdn(true);
        name
    };
    let mut lines = Lines::new();
    let mut current_origin = origin.cloned().map(fqdn);
    let mut owner: Option<Name> = None;
    for entry in entries {
        let mut taken = 0;
        for (name, argument, used) in directives(entry) {
            if name == "ORIGIN"
                && let Some(origin) = argument
            {
                current_origin = Name::parse(origin, None).ok().map(fqdn);
            }
            taken += used;
        }
        // hickory reads the rest of a directive's line as a new entry: `$TTL 60 @`
        // sets the owner to the origin.
        let mut words = entry.words.iter().skip(taken);
        if !entry.blank_owner {
            let Some(first) = words.next() else {
                continue;
            };
            owner = if first == "@" {
                current_origin.clone()
            } else {
                Name::parse(first, current_origin.as_ref()).ok().map(fqdn)
            };
        }
        for word in words {
            let upper = word.to_ascii_uppercase();
            if parse_ttl(word).is_ok() || DNSClass::from_str(&upper).is_ok() {
                continue;
            }
            if let (Ok(record_type), Some(owner)) = (RecordType::from_str(&upper), &owner) {
                lines
                    .entry(RrKey::new(LowerName::new(owner), record_type))
                    .or_default()
                    .push(entry.first_line);
            }
            break;
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::A;

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

    fn lines_of(records: &[SourceRecord], owner: &str, kind: RecordType) -> Vec<usize> {
        let owner = name(owner);
        records
            .iter()
            .filter(|r| r.name == owner && r.data.record_type() == kind)
            .map(|r| r.line)
            .collect()
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
        assert!(error(&text).starts_with(&format!("z.zone:{}: ", HEAD_LINES + 1)));
    }

    #[test]
    fn error_inside_parentheses_is_reported_at_the_closing_line() {
        let text = HEAD.replacen("1      ; serial", "one    ; serial", 1);
        assert!(error(&text).starts_with("z.zone:8: "), "{}", error(&text));
    }

    #[test]
    fn quoted_strings_spanning_lines_and_semicolons_do_not_confuse_lines() {
        let text = format!(
            "{HEAD}t IN TXT \"two\nlines; ( not a comment\"\nu IN TXT \"x\" ; ( comment\nbad IN A x\n"
        );
        assert!(
            error(&text).starts_with(&format!("z.zone:{}: ", HEAD_LINES + 4)),
            "{}",
            error(&text)
        );
    }

    #[test]
    fn unclosed_parenthesis_is_reported_at_the_end() {
        let text = format!("{HEAD}x IN TXT ( \"a\"\n\"b\"\n");
        assert!(
            error(&text).starts_with(&format!("z.zone:{}: ", HEAD_LINES + 2)),
            "{}",
            error(&text)
        );
    }

    #[test]
    fn include_is_refused() {
        let text = format!("{HEAD}$INCLUDE /etc/passwd\n");
        assert_eq!(
            error(&text),
            format!("z.zone:{}: $INCLUDE is not supported", HEAD_LINES + 1)
        );
        assert_eq!(
            error("$include other.zone example.test.\n"),
            "z.zone:1: $INCLUDE is not supported"
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
            format!(
                "z.zone:{}: more than one SOA (example.test. and sub.example.test.)",
                HEAD_LINES + 1
            )
        );
        let text = format!("{HEAD}@ IN SOA ns1 hostmaster 2 2 3 4 5\n");
        assert!(
            error(&text).starts_with(&format!("z.zone:{}: ", HEAD_LINES + 1)),
            "{}",
            error(&text)
        );
    }

    #[test]
    fn names_outside_the_zone_are_refused() {
        let text = format!("{HEAD}www.example.org. IN A 192.0.2.1\n");
        assert_eq!(
            error(&text),
            format!(
                "z.zone:{}: name outside origin example.test.",
                HEAD_LINES + 1
            )
        );
    }

    #[test]
    fn other_classes_are_refused() {
        let text = format!("{HEAD}txt CH TXT \"x\"\n");
        assert_eq!(
            error(&text),
            format!(
                "z.zone:{}: class CH is not supported (only IN)",
                HEAD_LINES + 1
            )
        );
    }

    #[test]
    fn several_cnames_at_one_name_are_refused() {
        let text = format!("{HEAD}alias IN CNAME a\nalias IN CNAME b\n");
        assert_eq!(
            error(&text),
            format!(
                "z.zone:{}: more than one CNAME at this name",
                HEAD_LINES + 2
            )
        );
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

        std::fs::write(&zone, b"$TTL 60\n; caf\xe9\n").unwrap();
        assert_eq!(
            load_any(&zone, &Name::root(), 1).unwrap_err().to_string(),
            format!("{}:2: not valid UTF-8", zone.display())
        );
        assert!(matches!(
            load_any(&dir.join("none.zone"), &Name::root(), 1),
            Err(ZoneError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn scan_splits_entries_like_hickory() {
        let entries = scan("a IN SOA ( 1\n 2 ) ; c\n\n b \"q\nq\" x\nlast");
        let spans: Vec<(usize, usize, bool)> = entries
            .iter()
            .map(|e| (e.first_line, e.last_line, e.blank_owner))
            .collect();
        assert_eq!(
            spans,
            vec![(1, 2, false), (3, 3, false), (4, 5, true), (6, 6, false)]
        );
        assert_eq!(entries[0].words, vec!["a", "IN", "SOA"]);
        assert_eq!(entries[2].words, vec!["b", "q\nq", "x"]);
        assert_eq!(entries[3].words, vec!["last"]);
        assert_eq!(entries[3].end, 38);
    }
}
