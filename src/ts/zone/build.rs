//! Compiling a zone: [`ZoneBuilder`] takes records one at a time (a big
//! table never sits in memory as decoded records), checks them against the
//! zone (origin, one SOA at the apex, no CNAME beside other data), and
//! [`ZoneBuilder::finish`] writes the arena of `store.rs` in one pass:
//! names grouped by hashing, RRsets with one TTL each (RFC 2181 §5.2),
//! empty non-terminals added (RFC 8020).
//!
//! [`ZoneBuilder::finish_noting`] reads as its steps: the records sorted
//! by owner, each owner's RRsets checked and written (`by_owner.rs`), the
//! empty names and the indices added, the SOA served, the zone made.
//!
//! Every problem is a [`BuildError`], located as `file:line` by
//! [`ZoneError::Build`] (both in `ts/error.rs`, below the parsers and this
//! builder alike).
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::Zone;
use super::by_owner::{
    ByOwner, FirstError, OwnerRecords, PendingRecord, below_dname, empty_non_terminals, file_of,
    write_owners,
};
use super::canon;
use super::encode::{MESSAGE_HEAD, in_zone, key_of, rdata_into, wire_into};
use super::nsec3::Nsec3Chain;
use super::owners::Owners;
use super::rrsets::push_entry;
use super::rtype::{NSEC, NSEC3PARAM};
use super::soa::{SoaWire, soa_shape};
use super::store::{ENTRY_EMPTY, RRSIG, Store, StoreBuilder};
use crate::ts::error::{BuildError, ZoneError};
use crate::ts::source::{SourceRecord, WireRecord};

/// Compiles a zone record by record, so a big table never sits in memory
/// as decoded records: each one costs its owner number, type, TTL, line and
/// RDATA bytes until [`ZoneBuilder::finish`] writes the arena.
pub struct ZoneBuilder {
    origin: Name,
    origin_key: Vec<u8>,
    owners: Owners,
    pending: Vec<PendingRecord>,
    rdata: Vec<u8>,
    /// An owner and its RDATA being encoded (reused: no allocation a record).
    scratch: (Vec<u8>, Vec<u8>),
    soa: Option<(u32, SoaGiven)>,
    soa_source: Option<(usize, usize)>,
    /// Where the first NS RDATA at the apex lies in `rdata`: decoded by
    /// [`ZoneBuilder::finish`] only for a zone with no SOA (PROJ tables).
    apex_ns: Option<(u32, usize)>,
    /// The owner of the last record added, by number: the next record of
    /// the same owner written the same (a file's `@` again) is not looked up.
    last_owner: Option<u32>,
    /// Which of the types whose indices a zone builds were added
    /// ([`SEEN_NSEC`], [`SEEN_NSEC3PARAM`]): a zone with none (most) builds
    /// none, with no walk of its arena.
    seen: u8,
}

/// [`ZoneBuilder::seen`]: an NSEC was added.
const SEEN_NSEC: u8 = 1;
/// [`ZoneBuilder::seen`]: an NSEC3PARAM was added.
const SEEN_NSEC3PARAM: u8 = 2;
/// [`ZoneBuilder::seen`]: an RRSIG was added (else the SOA has none to
/// look up for negative answers).
const SEEN_RRSIG: u8 = 4;

/// The longest SOA RDATA: two names of at most 255 bytes and five numbers.
const SOA_RDATA_MAX: usize = 2 * 255 + 20;

/// A zone's SOA as the builder was given it (with its TTL, beside).
enum SoaGiven {
    /// Read from a file: where its RDATA, as read, lies in `rdata` (not a
    /// record of `pending`). [`ZoneBuilder::finish`] writes the SOA served
    /// from these bytes; it is decoded only when asked (a transfer).
    Read { at: u32, len: u16 },
    /// Given decoded ([`ZoneBuilder::set_soa`], or made up for a zone with
    /// none). Boxed: an `RData` is a few hundred bytes, which every builder
    /// (moved from thread to thread and into its vector) carried.
    Decoded(Box<RData>),
}

impl ZoneBuilder {
    /// A builder for the zone at `origin`, sized for about `records` records.
    pub fn new(origin: Name, records: usize) -> Self {
        let origin_key = key_of(&origin).unwrap_or_else(|_| vec![0]);
        Self::with_key(origin, origin_key, records)
    }

    /// [`ZoneBuilder::new`] with the origin's key (lower-cased wire form)
    /// made already: a load of 100,000 zones has it from each file.
    pub fn with_key(origin: Name, origin_key: Vec<u8>, records: usize) -> Self {
        Self::with_room(origin, origin_key, records, records * 4)
    }

    /// [`ZoneBuilder::with_key`] with room for `rdata` bytes of RDATA (a
    /// master file's records in wire form hold at most their buffer's):
    /// reserved once, not reserved and then grown.
    pub fn with_room(origin: Name, origin_key: Vec<u8>, records: usize, rdata: usize) -> Self {
        Self::with_sizes(origin, origin_key, (records, records * 24), rdata)
    }

    /// [`ZoneBuilder::with_room`] with room for `names` bytes of owner names
    /// (a master file's records in wire form say how many at most): a TS
    /// of 100,000 small zones holds every builder until the last file is
    /// read, and 24 bytes a record for the names was three times theirs.
    pub fn with_sizes(
        origin: Name,
        origin_key: Vec<u8>,
        (records, names): (usize, usize),
        rdata: usize,
    ) -> Self {
        ZoneBuilder {
            origin,
            origin_key,
            owners: Owners::with_room(records, names),
            pending: Vec::with_capacity(records),
            rdata: Vec::with_capacity(rdata),
            scratch: (Vec::new(), Vec::new()),
            soa: None,
            soa_source: None,
            apex_ns: None,
            last_owner: None,
            seen: 0,
        }
    }

    /// The zone's origin.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The zone's origin in lower-cased wire form (its key).
    pub fn origin_key(&self) -> &[u8] {
        &self.origin_key
    }

    /// Whether an RRSIG was added: without one the zone is not signed in
    /// its files (no lookup of its apex needed to say so).
    pub fn has_signatures(&self) -> bool {
        self.seen & SEEN_RRSIG != 0
    }

    /// The first record held at `owner`: its file index, line and type.
    pub fn first_at(&self, owner: &Name) -> Option<(usize, usize, u16)> {
        self.first_where(owner, |_| true)
    }

    /// The first record of a type `wanted` takes at `owner`: its file
    /// index, line and type, as [`ZoneBuilder::first_at`].
    pub fn first_where(
        &self,
        owner: &Name,
        wanted: impl Fn(u16) -> bool,
    ) -> Option<(usize, usize, u16)> {
        let mut wire = Vec::new();
        wire_into(owner, &mut wire).ok()?;
        // Length bytes are at most 63: below every upper-case letter.
        wire.make_ascii_lowercase();
        let o = self.owners.find(&wire)?;
        let p = self
            .pending
            .iter()
            .find(|p| p.owner == o && wanted(p.rtype))?;
        Some((p.file as usize, p.line as usize, p.rtype))
    }

    /// Makes room for `bytes` more bytes of RDATA (a master file's records
    /// in wire form hold at most that many): one reservation, not a copy
    /// at each doubling of a zone's few hundred bytes.
    pub fn reserve_rdata(&mut self, bytes: usize) {
        self.rdata.reserve(bytes);
    }

    /// Makes room for `records` more records. Capacity never written costs
    /// no resident memory, so a generous guess (from a file's size) is cheap
    /// and spares the copies of a growing table.
    pub fn reserve(&mut self, records: usize) {
        self.pending.reserve(records);
        self.rdata.reserve(records * 4);
    }

    /// Adds one record read from line `rec.line` of `file` (index `file_idx`
    /// in the TS's zone list).
    ///
    /// # Errors
    /// A record outside the origin, an SOA away from the apex or a second
    /// SOA, data that cannot be encoded: `file:line: what is wrong`.
    pub fn add(
        &mut self,
        file_idx: usize,
        file: &Path,
        rec: &SourceRecord,
    ) -> Result<(), ZoneError> {
        let err = |reason: BuildError| ZoneError::build(file, rec.line, reason);
        // Encoded, then added as a record read in wire form is.
        let (mut owner, mut rdata) = std::mem::take(&mut self.scratch);
        let encoded =
            wire_into(&rec.name, &mut owner).and_then(|()| rdata_into(&rec.data, &mut rdata));
        let added = encoded.map_err(err).and_then(|()| {
            let read = WireRecord {
                owner: &owner,
                rtype: u16::from(rec.data.record_type()),
                class: 1,
                ttl: rec.ttl,
                rdata: &rdata,
                line: rec.line,
            };
            self.add_read(file_idx, file, &read)
        });
        self.scratch = (owner, rdata);
        added
    }

    /// Adds one record read in wire form from line `rec.line` of `file`
    /// (index `file_idx`), as [`Self::add`] adds a decoded one: only the
    /// SOA and the first NS at the apex are decoded.
    ///
    /// # Errors
    /// As [`Self::add`].
    pub fn add_read(
        &mut self,
        file_idx: usize,
        file: &Path,
        rec: &WireRecord<'_>,
    ) -> Result<(), ZoneError> {
        let err = |reason: BuildError| ZoneError::build(file, rec.line, reason);
        let shown = || {
            Name::read(&mut BinDecoder::new(rec.owner))
                .map_or_else(|_| "?".into(), |n| n.to_string())
        };
        // Tested on the wire name as written (a key made of each record's
        // owner was a tenth of a load's work).
        let Some(apex) = in_zone(rec.owner, &self.origin_key) else {
            return Err(err(BuildError::OutsideZone {
                name: shown(),
                origin: self.origin.to_string(),
            }));
        };
        if rec.rtype == u16::from(RecordType::SOA) {
            if !apex {
                return Err(err(BuildError::SoaOffApex {
                    name: shown(),
                    origin: self.origin.to_string(),
                }));
            }
            if self.soa.is_some() {
                return Err(err(BuildError::SecondSoa));
            }
            // Kept as read (not decoded): its shape checked here.
            let bad = || {
                err(BuildError::Encode {
                    rtype: RecordType::SOA,
                    reason: "not two names and five numbers".into(),
                })
            };
            soa_shape(rec.rdata).ok_or_else(bad)?;
            // Its bytes as read, beside the records' (at most
            // SOA_RDATA_MAX bytes: soa_shape checked them).
            let at = u32::try_from(self.rdata.len()).map_err(|_| err(BuildError::RdataOver4G))?;
            let len = u16::try_from(rec.rdata.len()).map_err(|_| bad())?;
            self.rdata.extend_from_slice(rec.rdata);
            self.soa = Some((rec.ttl, SoaGiven::Read { at, len }));
            self.soa_source = Some((file_idx, rec.line));
            return Ok(());
        }
        if apex && self.apex_ns.is_none() && rec.rtype == u16::from(RecordType::NS) {
            // Where `push` puts its RDATA.
            self.apex_ns = u32::try_from(self.rdata.len())
                .ok()
                .map(|at| (at, rec.rdata.len()));
        }
        let owner = match self.last_owner {
            Some(o) if self.owners.name(o) == rec.owner => o,
            _ => {
                let o = self.owners.intern(rec.owner).map_err(err)?;
                self.last_owner = Some(o);
                o
            }
        };
        let size = MESSAGE_HEAD + rec.owner.len() + 10 + rec.rdata.len();
        if size > usize::from(u16::MAX) {
            return Err(err(BuildError::RecordOverMessage { size }));
        }
        self.push(owner, rec.rtype, rec.ttl, (file_idx, rec.line), rec.rdata)
            .map_err(err)
    }

    /// Adds one record given in wire form (owner uncompressed, as spelled),
    /// with no file behind it: one a signer made, or one of a compiled zone
    /// being signed again. The SOA is [`Self::set_soa`]'s.
    pub(super) fn add_wire(
        &mut self,
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        rdata: &[u8],
    ) -> Result<(), BuildError> {
        let owner = self.owners.intern(owner)?;
        self.push(owner, rtype, ttl, (usize::MAX, usize::MAX), rdata)
    }

    /// Sets the zone's SOA (from the zone being signed again), and the
    /// file and line it came from.
    pub(super) fn set_soa(&mut self, ttl: u32, soa: RData, source: Option<(usize, usize)>) {
        self.soa = Some((ttl, SoaGiven::Decoded(Box::new(soa))));
        self.soa_source = source;
    }

    fn push(
        &mut self,
        owner: u32,
        rtype: u16,
        ttl: u32,
        (file, line): (usize, usize),
        rdata: &[u8],
    ) -> Result<(), BuildError> {
        let rdata_at = u32::try_from(self.rdata.len()).map_err(|_| BuildError::RdataOver4G)?;
        let rdata_len = u16::try_from(rdata.len()).map_err(|_| BuildError::RdataOver64K)?;
        self.seen |= match rtype {
            NSEC => SEEN_NSEC,
            NSEC3PARAM => SEEN_NSEC3PARAM,
            RRSIG => SEEN_RRSIG,
            _ => 0,
        };
        self.rdata.extend_from_slice(rdata);
        self.pending.push(PendingRecord {
            owner,
            rtype,
            file: u32::try_from(file).unwrap_or(u32::MAX),
            ttl,
            line: u32::try_from(line).unwrap_or(u32::MAX),
            rdata_at,
            rdata_len,
        });
        Ok(())
    }

    /// Compiles the zone. Without an SOA among the records, `default_soa`
    /// makes one from the origin and the first NS target at the apex (the
    /// PROJ-table case). Time and memory are linear in the records: names are
    /// grouped by hashing, not sorting.
    ///
    /// # Errors
    /// A CNAME beside other data or a second CNAME (the first such record in
    /// file order), as `file:line: what is wrong`.
    pub fn finish(
        self,
        files: &[PathBuf],
        default_soa: impl FnOnce(&Name, Option<&Name>) -> (u32, SOA),
    ) -> Result<Zone, ZoneError> {
        self.finish_noting(files, default_soa, &mut Vec::new())
    }

    /// [`Self::finish`], with the warnings about the zone added to
    /// `warnings` as `file:line: warning: ...` lines: an RRset whose records
    /// have different TTLs (served at the lowest, RFC 2181 §5.2; NSD and BIND
    /// warn too).
    ///
    /// # Errors
    /// As [`Self::finish`]; also a second DNAME at a name, and data below a
    /// DNAME (RFC 6672 §2.3, as NSD and Knot refuse it).
    pub fn finish_noting(
        self,
        files: &[PathBuf],
        default_soa: impl FnOnce(&Name, Option<&Name>) -> (u32, SOA),
        warnings: &mut Vec<String>,
    ) -> Result<Zone, ZoneError> {
        let ZoneBuilder {
            origin,
            origin_key,
            owners,
            pending,
            rdata,
            soa,
            soa_source,
            apex_ns,
            seen,
            ..
        } = self;
        let apex_ns = apex_ns_target(apex_ns.filter(|_| soa.is_none()), &rdata);
        let by_owner = ByOwner::sort(owners.spans.len(), &pending);
        let empty = empty_non_terminals(&owners, &origin_key);
        let records = OwnerRecords {
            owners: &owners,
            pending: &pending,
            rdata: &rdata,
            by_owner: &by_owner,
        };
        let mut errors = FirstError::new(files, &pending);
        below_dname(&records, origin.num_labels() as usize, &mut errors);
        let apex_soa_ttl = soa.as_ref().map(|s| s.0);
        let written = write_owners(&records, &origin_key, apex_soa_ttl, &empty, &mut errors);
        errors.result()?;
        warnings.extend(written.ttl_warning(files));
        let soa_read = SoaRead::kept(soa.as_ref(), &rdata);
        drop((pending, rdata, by_owner, owners));
        let (store, nsec, nsec3) = indexed(written.store, &empty, seen, &origin_key);
        let soa_synthesized = soa.is_none();
        let served = served_soa(soa, soa_source, files, || {
            default_soa(&origin, apex_ns.as_ref())
        })?;
        let mut zone = Zone {
            origin,
            origin_key: super::zone::OriginKey::from_slice(&origin_key),
            soa_ttl: served.ttl,
            soa: served.decoded.map(OnceLock::from).unwrap_or_default(),
            soa_record: SoaWire::default(),
            negative_soa_sigs: Box::default(),
            nsec,
            nsec3,
            soa_synthesized,
            soa_source,
            store,
            has_delegations: written.has_delegations,
            has_wildcards: written.has_wildcards,
            has_dnames: written.has_dnames,
            signed: None,
            expired: false,
            queries: Arc::default(),
        };
        let wire = soa_read.bytes().unwrap_or(&served.encoded);
        let compiled = zone.compile_soa_wire(wire, seen & SEEN_RRSIG != 0);
        compiled.map_err(|reason| soa_error(files, zone.soa_source, reason))?;
        Ok(zone)
    }
}

/// The first apex NS's target, decoded from its RDATA at `apex_ns` in
/// `rdata`: the made-up SOA's primary (given only when there is no SOA).
fn apex_ns_target(apex_ns: Option<(u32, usize)>, rdata: &[u8]) -> Option<Name> {
    let (at, len) = apex_ns?;
    let wire = rdata.get(at as usize..at as usize + len)?;
    Name::read(&mut BinDecoder::new(wire)).ok()
}

/// The SOA as read from a file, kept (on the stack) past the records'
/// buffer, which is let go before the zone's indices are built.
struct SoaRead {
    buf: [u8; SOA_RDATA_MAX],
    len: Option<usize>,
}

impl SoaRead {
    /// The RDATA of `soa` in `rdata` when it was read (not given decoded).
    fn kept(soa: Option<&(u32, SoaGiven)>, rdata: &[u8]) -> Self {
        let mut kept = SoaRead {
            buf: [0u8; SOA_RDATA_MAX],
            len: None,
        };
        if let Some((_, SoaGiven::Read { at, len })) = soa
            && let Some(bytes) = rdata.get(*at as usize..*at as usize + usize::from(*len))
            && let Some(room) = kept.buf.get_mut(..bytes.len())
        {
            room.copy_from_slice(bytes);
            kept.len = Some(bytes.len());
        }
        kept
    }

    /// The SOA's RDATA, if it was read.
    fn bytes(&self) -> Option<&[u8]> {
        self.len.and_then(|n| self.buf.get(..n))
    }
}

/// `store` with the names of `empty` added (lower-cased: they were never
/// written on their own), frozen, with the NSEC order and NSEC3 chain of
/// the zone at `origin_key` when it holds such records (`seen`).
fn indexed(
    mut store: StoreBuilder,
    empty: &[Vec<u8>],
    seen: u8,
    origin_key: &[u8],
) -> (Store, Arc<[u32]>, Option<Arc<Nsec3Chain>>) {
    for key in empty {
        let _ = push_entry(&mut store, key, ENTRY_EMPTY, &[], &[]);
    }
    let store = store.freeze();
    let nsec = if seen & SEEN_NSEC != 0 {
        canon::nsec_order(&store)
    } else {
        canon::no_nsec()
    };
    let nsec3 = if seen & SEEN_NSEC3PARAM != 0 {
        Nsec3Chain::of(&store, origin_key)
    } else {
        None
    };
    (store, nsec, nsec3)
}

/// The SOA a zone serves.
struct ServedSoa {
    ttl: u32,
    /// Its RDATA decoded: none when read from a file (decoded only when asked).
    decoded: Option<Box<RData>>,
    /// Its RDATA encoded, when decoded.
    encoded: Vec<u8>,
}

/// The SOA a zone serves: `soa` as given, else the one `made_up` makes.
///
/// # Errors
/// A decoded SOA that cannot be encoded, at its `file:line` (`soa_source`
/// in `files`).
fn served_soa(
    soa: Option<(u32, SoaGiven)>,
    soa_source: Option<(usize, usize)>,
    files: &[PathBuf],
    made_up: impl FnOnce() -> (u32, SOA),
) -> Result<ServedSoa, ZoneError> {
    let (soa_ttl, decoded) = match soa {
        Some((ttl, SoaGiven::Read { .. })) => (ttl, None),
        Some((ttl, SoaGiven::Decoded(data))) => (ttl, Some(data)),
        None => {
            let (ttl, soa) = made_up();
            (ttl, Some(Box::new(RData::SOA(soa))))
        }
    };
    // A decoded SOA is encoded, and kept decoded.
    let mut encoded = Vec::new();
    if let Some(data) = &decoded {
        rdata_into(data, &mut encoded).map_err(|reason| soa_error(files, soa_source, reason))?;
    }
    Ok(ServedSoa {
        ttl: soa_ttl,
        decoded,
        encoded,
    })
}

/// `reason`, a problem with the SOA, at its `file:line` (`soa_source` in
/// `files`; the first file's line 0 when it was made up).
fn soa_error(
    files: &[PathBuf],
    soa_source: Option<(usize, usize)>,
    reason: BuildError,
) -> ZoneError {
    let (idx, line) = soa_source.unwrap_or((0, 0));
    ZoneError::build(file_of(files, idx), line, reason)
}

/// Builds a zone from records, given per file (index into `files`) in
/// file order; see [`ZoneBuilder`].
///
/// # Errors
/// As [`ZoneBuilder::add`] and [`ZoneBuilder::finish`].
pub fn zone(
    origin: Name,
    chunks: Vec<(usize, Vec<SourceRecord>)>,
    files: &[PathBuf],
    default_soa: impl FnOnce(&Name, Option<&Name>) -> (u32, SOA),
) -> Result<Zone, ZoneError> {
    let total = chunks.iter().map(|(_, r)| r.len()).sum();
    let mut b = ZoneBuilder::new(origin, total);
    let unnamed = PathBuf::new();
    for (idx, records) in &chunks {
        let file = files.get(*idx).unwrap_or(&unnamed);
        for rec in records {
            b.add(*idx, file, rec)?;
        }
    }
    b.finish(files, default_soa)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use hickory_proto::rr::rdata::CNAME;

    #[test]
    fn cname_beside_data_is_refused() {
        let err = super::zone(
            Name::root(),
            vec![(
                0,
                vec![
                    rec("a.test.", a("1.1.1.1")),
                    rec("a.test.", RData::CNAME(CNAME(name("b.test.")))),
                ],
            )],
            &[PathBuf::from("t.txt")],
            |_, _| soa(),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("t.txt:1: a.test. has a CNAME"),
            "{err}"
        );
    }

    /// A zone read from a file keeps its SOA as read: nothing decoded by
    /// the build; asked for it (a transfer), the SOA of the file, names
    /// spelled as written; its serial read from the bytes and changed in
    /// both.
    #[test]
    fn an_soa_read_is_decoded_only_when_asked() {
        use crate::dns::fixtures::wire_name as wire;
        let build = |mname: &str, serial: u32| {
            let mut soa_rdata = wire(mname);
            soa_rdata.extend(wire("Hostmaster.Z.test."));
            for n in [serial, 3600, 600, 86400, 60] {
                soa_rdata.extend(n.to_be_bytes());
            }
            let mut b = ZoneBuilder::new(name("z.test."), 2);
            let file = PathBuf::from("z.zone");
            let owner = wire("Z.test.");
            for (rtype, rdata) in [(6, &soa_rdata[..]), (1, &[192, 0, 2, 1][..])] {
                let rec = WireRecord {
                    owner: &owner,
                    rtype,
                    class: 1,
                    ttl: 300,
                    rdata,
                    line: 1,
                };
                b.add_read(0, &file, &rec).unwrap();
            }
            b.finish(std::slice::from_ref(&file), |_, _| soa()).unwrap()
        };
        let z = build("NS1.z.TEST.", 7);
        assert!(z.soa.get().is_none(), "decoded by the build");
        assert_eq!(z.serial(), 7);
        let want = SOA::new(
            name("NS1.z.TEST."),
            name("Hostmaster.Z.test."),
            7,
            3600,
            600,
            86400,
            60,
        );
        let spelled = |d: &RData| match d {
            RData::SOA(s) => (s.mname.to_string(), s.rname.to_string(), s.serial),
            _ => panic!("{d:?}"),
        };
        assert_eq!(z.soa_rr().data, &RData::SOA(want.clone()));
        assert_eq!(
            spelled(z.soa_rr().data),
            ("NS1.z.TEST.".into(), "Hostmaster.Z.test.".into(), 7)
        );
        let z9 = z.clone().with_serial(9);
        assert_eq!((z9.serial(), spelled(z9.soa_rr().data).2), (9, 9));
        // Decoded before the serial changed: changed too.
        assert_eq!(
            z.clone().with_serial(10).soa_rr().data,
            &RData::SOA({
                let mut s = want;
                s.serial = 10;
                s
            })
        );
        assert!(z.same_data(&build("ns1.Z.test.", 8)));
        assert!(!z.same_data(&build("ns2.z.test.", 7)));
        // A made-up SOA is given decoded.
        let made = super::zone(
            name("z.test."),
            vec![(0, vec![])],
            &[PathBuf::new()],
            |_, _| soa(),
        )
        .unwrap();
        assert!(made.soa.get().is_some());
        assert_eq!(made.serial(), 1);
    }

    #[test]
    fn an_soa_not_shaped_as_one_is_refused_at_its_line() {
        let mut b = ZoneBuilder::new(name("z.test."), 1);
        let owner = b"\x01z\x04test\x00";
        let rec = WireRecord {
            owner,
            rtype: 6,
            class: 1,
            ttl: 300,
            rdata: b"\x01a\x00\x01b\x00\x00\x00",
            line: 4,
        };
        let err = b
            .add_read(0, std::path::Path::new("z.zone"), &rec)
            .unwrap_err();
        assert!(err.to_string().starts_with("z.zone:4:"), "{err}");
    }
}
