//! A master file's records as the reader makes them ([`WireRecords`]):
//! owners and RDATA in wire form, side by side in one buffer, each owner
//! written once for the records that follow it. The zone builder takes
//! them as they are (a load of 100,000 zones spent a quarter of its work
//! turning each record into hickory's types and back); [`SourceRecord`]s
//! are made from them only for the callers that want those.
use std::path::{Path, PathBuf};

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, Restrict};

use crate::ts::source::{SourceRecord, WireRecord};

/// One record of [`WireRecords`]: where its owner and RDATA lie in the
/// buffer, its type, class, TTL and line.
#[derive(Debug, Clone, Copy)]
struct Slot {
    owner: usize,
    owner_len: u8,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: usize,
    rdata_len: u16,
    line: u32,
}

/// The most text [`WireRecords::for_text`] reserves room for at once.
const RESERVED_TEXT: usize = 1 << 20;

/// The records of a master file, in file order, in wire form.
#[derive(Debug, Clone, Default)]
pub struct WireRecords {
    bytes: Vec<u8>,
    slots: Vec<Slot>,
    /// Where the owner last pushed lies, while the records that follow
    /// share it.
    owner_at: Option<(usize, u8)>,
    /// The types under 64 among the records, a bit each (bit `t` for type
    /// `t`): [`WireRecords::may_hold`] answers from it, with no walk.
    types: u64,
    /// Bytes of `bytes` that are owners (each written once for the records
    /// that follow it): the rest is RDATA.
    owner_bytes: usize,
    /// Where the records of each file begin, when the file includes others
    /// (`$INCLUDE`): the first record's index, and the file's (0 the file
    /// itself, `n` the `n`th of `included`). Empty for a file that includes
    /// none (most): every record is its own.
    from: Vec<(usize, usize)>,
    /// The files included, in the order read.
    included: Vec<IncludedFile>,
}

/// A file a master file included (`$INCLUDE`): its path, as resolved, and
/// its `fstat` just after it was read (a reload reads the zone again when
/// it changed).
#[derive(Debug, Clone)]
pub struct IncludedFile {
    /// The path the file was opened at.
    pub path: PathBuf,
    /// Its `fstat` after the read.
    pub meta: std::fs::Metadata,
}

impl WireRecords {
    /// Room for the records of a master file of `text_len` bytes, about:
    /// reserved once, not grown a record at a time (a TS of 100,000 small
    /// zones reads 100,000 files). Written in wire form a record takes
    /// about as many bytes as its line, and a line is rarely under 24.
    /// A file past [`RESERVED_TEXT`] gets that much room and grows from
    /// there: its comments, long lines or signatures would otherwise
    /// reserve up to twice its size again in address space, before a record
    /// is read (a 150 MB file ended the process under a 500 MB `ulimit -v`).
    pub(super) fn for_text(text_len: usize) -> Self {
        let text_len = text_len.min(RESERVED_TEXT);
        WireRecords {
            bytes: Vec::with_capacity(text_len + 64),
            slots: Vec::with_capacity(text_len / 24 + 4),
            owner_at: None,
            types: 0,
            owner_bytes: 0,
            from: Vec::new(),
            included: Vec::new(),
        }
    }

    /// Notes an included file (`file`, read): the records pushed next are
    /// its own. Returns its number for [`WireRecords::back_to`].
    pub(super) fn include(&mut self, file: IncludedFile) -> usize {
        self.included.push(file);
        let n = self.included.len();
        self.mark(n);
        n
    }

    /// The records pushed next are file `n`'s again (0: the file itself).
    pub(super) fn back_to(&mut self, n: usize) {
        self.mark(n);
    }

    /// Records from the next one on are file `n`'s.
    fn mark(&mut self, n: usize) {
        let at = self.slots.len();
        if self.from.is_empty() {
            self.from.push((0, 0));
        }
        match self.from.last_mut() {
            Some(last) if last.0 == at => last.1 = n,
            _ => self.from.push((at, n)),
        }
        // A new file's first record writes its owner again.
        self.owner_at = None;
    }

    /// The included file record `index` was read from, `None` for the
    /// file itself.
    pub fn file_of(&self, index: usize) -> Option<&Path> {
        if self.from.is_empty() {
            return None;
        }
        let at = self.from.partition_point(|&(first, _)| first <= index);
        let n = self.from.get(at.checked_sub(1)?)?.1;
        self.included
            .get(n.checked_sub(1)?)
            .map(|f| f.path.as_path())
    }

    /// The files included (`$INCLUDE`), in the order read.
    pub fn included(&self) -> &[IncludedFile] {
        &self.included
    }

    /// Starts a new owner (wire form): the records pushed next are its own.
    pub(super) fn set_owner(&mut self) {
        self.owner_at = None;
    }

    /// Adds a record of `owner` (the owner in force: written once, by the
    /// first of its records).
    ///
    /// # Errors
    /// RDATA over 65,535 bytes, or an owner over 255 (never from the reader).
    pub(super) fn push(
        &mut self,
        owner: &[u8],
        (rtype, class, ttl): (u16, u16, u32),
        rdata: &[u8],
        line: usize,
    ) -> Result<(), String> {
        let rdata_len = u16::try_from(rdata.len()).map_err(|_| "record data over 65,535 bytes")?;
        let (at, len) = match self.owner_at {
            Some(o) => o,
            None => {
                let len = u8::try_from(owner.len()).map_err(|_| "a name over 255 bytes")?;
                self.bytes.extend_from_slice(owner);
                self.owner_bytes += owner.len();
                let o = (self.bytes.len() - owner.len(), len);
                self.owner_at = Some(o);
                o
            }
        };
        if let Some(bit) = 1u64.checked_shl(u32::from(rtype)) {
            self.types |= bit;
        }
        self.slots.push(Slot {
            owner: at,
            owner_len: len,
            rtype,
            class,
            ttl,
            rdata: self.bytes.len(),
            rdata_len,
            line: u32::try_from(line).unwrap_or(u32::MAX),
        });
        self.bytes.extend_from_slice(rdata);
        Ok(())
    }

    /// The records, in file order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = WireRecord<'_>> + '_ {
        self.slots.iter().map(|s| WireRecord {
            owner: &self.bytes[s.owner..s.owner + usize::from(s.owner_len)],
            rtype: s.rtype,
            class: s.class,
            ttl: s.ttl,
            rdata: &self.bytes[s.rdata..s.rdata + usize::from(s.rdata_len)],
            line: s.line as usize,
        })
    }

    /// Whether a record of type `rtype` may be among them: `false` means
    /// none is (known for the types under 64: the DNSSEC types a load
    /// looks for in every file, which most hold none of); `true` for a type
    /// of 64 or more.
    pub fn may_hold(&self, rtype: u16) -> bool {
        1u64.checked_shl(u32::from(rtype))
            .is_none_or(|bit| self.types & bit != 0)
    }

    /// Bytes of owners and RDATA held: a bound on the RDATA of the records.
    pub fn data_len(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes of the owners held (each written once for the records that
    /// follow it): a bound on the bytes of the distinct owners.
    pub fn owner_len(&self) -> usize {
        self.owner_bytes
    }

    /// Bytes of the records' RDATA.
    pub fn rdata_len(&self) -> usize {
        self.bytes.len() - self.owner_bytes
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The records as [`SourceRecord`]s (names and the types the tests
    /// look into decoded), each with `keep`'s approval.
    ///
    /// # Errors
    /// The line and message of a record hickory cannot decode.
    pub fn source_records(
        &self,
        keep: impl Fn(&WireRecord<'_>) -> bool,
    ) -> Result<Vec<SourceRecord>, (usize, String)> {
        self.iter()
            .filter(|r| keep(r))
            .map(|r| {
                let at = |m: String| (r.line, m);
                Ok(SourceRecord {
                    name: wire_name(r.owner).map_err(at)?,
                    ttl: r.ttl,
                    data: rdata_of(r.rtype, r.rdata).map_err(at)?,
                    line: r.line,
                })
            })
            .collect()
    }
}

/// A wire name (as `fields::name` makes them) as a hickory name.
pub(super) fn wire_name(wire: &[u8]) -> Result<Name, String> {
    let mut decoder = BinDecoder::new(wire);
    Name::read(&mut decoder).map_err(|e| format!("bad name: {e}"))
}

/// The hickory record data of wire RDATA of type `code`: the types the zone builder or
/// the tests look into decoded, the others kept as they are.
pub(crate) fn rdata_of(code: u16, wire: &[u8]) -> Result<RData, String> {
    let rtype = RecordType::from(code);
    match code {
        1 | 28 | 2 | 5 | 12 | 15 | 6 | 16 => {
            let len = u16::try_from(wire.len()).map_err(|_| "record data over 65,535 bytes")?;
            let mut decoder = BinDecoder::new(wire);
            RData::read(&mut decoder, rtype, Restrict::new(len))
                .map_err(|e| format!("cannot decode the {rtype} data: {e}"))
        }
        _ => Ok(RData::Unknown {
            code: rtype,
            rdata: if wire.is_empty() {
                NULL::new()
            } else {
                NULL::with(wire.to_vec())
            },
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A big file's records get room for a first part of it, not for its
    /// whole size at once: a terabyte's worth was an allocation that
    /// failed and ended the process.
    #[test]
    fn a_big_files_records_are_not_reserved_whole() {
        let r = WireRecords::for_text(1 << 40);
        assert!(r.bytes.capacity() <= RESERVED_TEXT + 64);
        assert!(r.slots.capacity() <= RESERVED_TEXT / 24 + 4);
        // A small file's are, once.
        let r = WireRecords::for_text(2400);
        assert!(r.bytes.capacity() >= 2464 && r.slots.capacity() >= 104);
    }

    /// A type under 64 is held only once a record of it is pushed; one of
    /// 64 or more always may be.
    #[test]
    fn the_types_held_are_known_for_those_under_64() {
        let mut r = WireRecords::for_text(100);
        assert!(!r.may_hold(1) && !r.may_hold(46) && !r.may_hold(63));
        assert!(r.may_hold(64) && r.may_hold(65_535));
        r.push(b"\x00", (46, 1, 300), b"x", 1).unwrap();
        r.push(b"\x00", (1, 1, 300), &[192, 0, 2, 1], 2).unwrap();
        assert!(r.may_hold(46) && r.may_hold(1));
        // One owner, written once for both: its byte, and 5 of RDATA.
        assert_eq!((r.owner_len(), r.rdata_len(), r.data_len()), (1, 5, 6));
        assert!(!r.may_hold(47) && !r.may_hold(0) && !r.may_hold(63));
    }
}
