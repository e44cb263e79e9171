//! One master file read and parsed, on any thread of the load ([`Parsed`]):
//! its bytes read once (fingerprinted from the same bytes), its records
//! added to a builder of their zone, its DNSSEC records decoded for the
//! checks of a pre-signed zone. A file whose bytes are not in memory is
//! asked for and parsed later ([`parse_file_or_ask`], [`parse_asked`]).
use std::path::Path;

use hickory_proto::rr::Name;

use crate::ts::error::ZoneError;
use crate::ts::source::{ReadFile, SourceRecord};
use crate::ts::zone::ZoneBuilder;
use crate::ts::zone::rtype::{NSEC, NSEC3, NSEC3PARAM, RRSIG, SOA};
use crate::ts::zonefile;

use super::bytes::{NotInMemory, with_asked_bytes, with_file_bytes, with_file_bytes_or_ask};
use super::settle::{FileRead, content, includes_of};

/// A master file read and parsed (on any thread): the content read, the
/// zone's origin (and its key, lower-cased wire form) and records, its
/// zone's builder holding them (or the first record it refused), its DNSSEC
/// records decoded (the checks of a pre-signed zone read them), and the
/// file's warnings.
pub(super) struct Parsed {
    /// The file read: its content, and (once [`parse_file`] has it) the
    /// file, open.
    pub(super) read: FileRead,
    pub(super) origin: Name,
    pub(super) key: Option<Box<[u8]>>,
    pub(super) records: zonefile::WireRecords,
    /// The records added to a builder of their own (`None` without a key):
    /// the zone's, unless another file began it already.
    pub(super) built: Option<Result<ZoneBuilder, ZoneError>>,
    pub(super) signed: Vec<SourceRecord>,
    pub(super) warnings: Vec<String>,
}

/// Reads the master file `file` (index `index` in the TS's list) once
/// (its bytes parsed and fingerprinted) and adds its records to a builder
/// of their zone, `origin` the TS's (see `zonefile::parse_master_noting`).
pub(super) fn parse_file(
    index: usize,
    file: &Path,
    origin: &Name,
) -> Result<Box<Parsed>, ZoneError> {
    with_file_bytes(file, |bytes| parse_bytes(index, file, bytes, origin)).map(noting_file)
}

/// [`parse_file`] if `file`'s bytes are in memory, else the file asked
/// for ([`NotInMemory`]: [`parse_asked`] parses it).
pub(super) fn parse_file_or_ask(
    index: usize,
    file: &Path,
    origin: &Name,
) -> Result<Result<Box<Parsed>, ZoneError>, NotInMemory> {
    Ok(
        with_file_bytes_or_ask(file, |bytes| parse_bytes(index, file, bytes, origin))?
            .map(noting_file),
    )
}

/// [`parse_file`] of the file [`parse_file_or_ask`] asked for.
pub(super) fn parse_asked(
    index: usize,
    file: &Path,
    asked: NotInMemory,
    origin: &Name,
) -> Result<Box<Parsed>, ZoneError> {
    with_asked_bytes(file, asked, |bytes| parse_bytes(index, file, bytes, origin)).map(noting_file)
}

/// A file parsed, with the file its bytes were read from noted in it.
fn noting_file((mut parsed, opened): (Box<Parsed>, ReadFile)) -> Box<Parsed> {
    let includes = parsed.read.includes.take();
    parsed.read = FileRead::read(parsed.read.content, opened).including(includes);
    parsed
}

/// [`parse_file`] of the bytes read from `file`.
fn parse_bytes(
    index: usize,
    file: &Path,
    bytes: &[u8],
    origin: &Name,
) -> Result<Box<Parsed>, ZoneError> {
    let mut warnings = Vec::new();
    let (origin, records) = zonefile::parse_master_noting(bytes, file, origin, &mut warnings)?;
    // Looked for only in a file that holds one (most hold none).
    let signed = if [RRSIG, NSEC, NSEC3, NSEC3PARAM]
        .iter()
        .any(|&t| records.may_hold(t))
    {
        records
            .source_records(|r| matches!(r.rtype, RRSIG | NSEC | NSEC3 | NSEC3PARAM))
            .map_err(|(line, msg)| ZoneError::line(file, line, msg))?
    } else {
        Vec::new()
    };
    // The origin is the SOA's owner (zonefile's check): its key is that
    // owner lower-cased, with no round trip through hickory's name.
    let key = match records.iter().find(|r| r.rtype == SOA) {
        Some(r) => Some(r.owner.to_ascii_lowercase()),
        None => crate::ts::zone::key_of(&origin).ok(),
    };
    let boxed = key.as_deref().map(Box::<[u8]>::from);
    let built = key.map(|k| {
        // Room for what the records hold, no more: every builder is held
        // until the last file is read.
        let room = (records.len(), records.owner_len());
        let mut b = ZoneBuilder::with_sizes(origin.clone(), k, room, records.rdata_len());
        for (n, rec) in records.iter().enumerate() {
            // A record of an included file is located in it.
            b.add_read(index, records.file_of(n).unwrap_or(file), &rec)?;
        }
        Ok(b)
    });
    Ok(Box::new(Parsed {
        read: FileRead::known(content(bytes)).including(includes_of(records.included())),
        origin,
        key: boxed,
        records,
        built,
        signed,
        warnings,
    }))
}
