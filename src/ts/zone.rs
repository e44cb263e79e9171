//! Zones in memory, compiled to wire format, and authoritative lookup.
//!
//! A [`Zone`] keeps its records the way they leave the server: at load (and
//! reload) every RRset is encoded once into one byte arena per zone, each
//! record as its wire form minus the owner (type, class, TTL, RDLENGTH,
//! RDATA, names uncompressed). A name is stored once, as first written, next
//! to its RRsets; an open-addressing table of `u32` offsets into the arena
//! finds it by its lower-cased wire form. Nothing else is kept per name, so
//! a million-name table costs a few tens of bytes a name, and a lookup
//! neither allocates nor decodes.
//!
//! [`Zone::write_answer`] turns a question into the answer, authority and
//! additional sections by copying those bytes behind a compression pointer
//! to the owner (the question's name, a CNAME target or an NS target written
//! earlier in the same message), following RFC 1034 §4.3.2 (delegations,
//! CNAME chains, wildcards), RFC 2308 (SOA in negative answers), RFC 8020
//! (empty non-terminals answer NODATA) and RFC 8482 (a UDP question for ANY
//! gets one RRset). Each RRset carries a flags byte; [`SET_DO_ONLY`] is
//! reserved for the records a signed zone serves only to DO=1 queries
//! (RRSIGs beside an answer, NSEC/NSEC3 proofs beside a negative), so those
//! variants need no second layout.
//! A [`Catalog`] is the set of zones one TS serves.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding,
};

use super::source::{SourceRecord, ZoneError};
use super::wire::{Key, NAME_MAX, name_at, push_name_ref};
use crate::dns::{HEADER_LEN, Rr};

/// Most CNAMEs (written or synthesized from DNAMEs) followed inside one
/// zone: a chain of this many still reaches its target's data (NSD follows
/// long chains; loops end sooner, at a name already written).
const MAX_CNAME_CHAIN: usize = 16;
/// An empty table slot.
const EMPTY: u32 = u32::MAX;
/// Entry flag: the name exists only as the parent of others (RFC 8020).
const ENTRY_EMPTY: u8 = 1;
/// RRset flag: served only to queries with the DO bit (reserved for signed zones).
pub const SET_DO_ONLY: u8 = 1;

/// The compiled names and RRsets of one zone.
///
/// Entry: `[name len u8][owner as written][flags u8][set count u16][sets len u32]`
/// then each set: `[type u16][flags u8][record count u16][len u32]` and its
/// records, each `[type u16][class u16][ttl u32][rdlength u16][rdata]`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Store {
    arena: Vec<u8>,
    table: Box<[u32]>,
    rrsets: usize,
}

/// One name in the arena.
#[derive(Clone, Copy)]
struct Entry<'s> {
    owner: &'s [u8],
    flags: u8,
    sets: &'s [u8],
}

/// One RRset in the arena.
#[derive(Clone, Copy)]
struct Set<'s> {
    rtype: u16,
    flags: u8,
    count: u16,
    records: &'s [u8],
}

fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |x| u16::from_be_bytes([x[0], x[1]]))
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}

/// Hash of a lower-cased wire name: word-at-a-time mixing, then the
/// MurmurHash3 finalizer so that the low bits (the table index) depend on
/// every byte.
fn hash(key: &[u8]) -> u64 {
    let mut h = key.len() as u64;
    for c in key.chunks(8) {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl<'s> Entry<'s> {
    /// The entry at `off` and the offset just past it.
    fn at(arena: &'s [u8], off: usize) -> Option<(Entry<'s>, usize)> {
        let len = usize::from(*arena.get(off)?);
        let owner = arena.get(off + 1..off + 1 + len)?;
        let p = off + 1 + len;
        let flags = *arena.get(p)?;
        let sets_len = usize::try_from(be32(arena, p + 3)).ok()?;
        let sets = arena.get(p + 7..p + 7 + sets_len)?;
        Some((Entry { owner, flags, sets }, p + 7 + sets_len))
    }

    fn is_empty(&self) -> bool {
        self.flags & ENTRY_EMPTY != 0
    }

    fn sets(&self) -> impl Iterator<Item = Set<'s>> + 's {
        let b = self.sets;
        let mut pos = 0;
        std::iter::from_fn(move || {
            let len = usize::try_from(be32(b, pos + 5)).ok()?;
            let set = Set {
                rtype: be16(b, pos),
                flags: *b.get(pos + 2)?,
                count: be16(b, pos + 3),
                records: b.get(pos + 9..pos + 9 + len)?,
            };
            pos += 9 + len;
            Some(set)
        })
    }

    /// The RRset of `rtype` served to a query with (or without) the DO bit.
    fn set(&self, rtype: u16) -> Option<Set<'s>> {
        self.sets()
            .find(|s| s.rtype == rtype && s.flags & SET_DO_ONLY == 0)
    }
}

impl<'s> Set<'s> {
    /// Each record: type, class, TTL, RDLENGTH and RDATA.
    fn records(&self) -> impl Iterator<Item = &'s [u8]> + 's {
        let b = self.records;
        let mut pos = 0;
        std::iter::from_fn(move || {
            let end = pos + 10 + usize::from(be16(b, pos + 8));
            let r = b.get(pos..end)?;
            pos = end;
            Some(r)
        })
    }
}

impl Store {
    /// The entry of `key` (a lower-cased wire name).
    fn get(&self, key: &[u8]) -> Option<Entry<'_>> {
        let mask = self.table.len().checked_sub(1)?;
        let mut i = (hash(key) as usize) & mask;
        loop {
            let off = *self.table.get(i)?;
            if off == EMPTY {
                return None;
            }
            let (e, _) = Entry::at(&self.arena, off as usize)?;
            if e.owner.eq_ignore_ascii_case(key) {
                return Some(e);
            }
            i = (i + 1) & mask;
        }
    }

    /// Every entry, in arena order.
    fn entries(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        let mut off = 0;
        std::iter::from_fn(move || {
            let (e, next) = Entry::at(&self.arena, off)?;
            off = next;
            Some(e)
        })
    }

    /// Indexes the entries written into the arena.
    fn index(&mut self) {
        let mut count: usize = 0;
        let mut off = 0;
        while let Some((_, next)) = Entry::at(&self.arena, off) {
            count += 1;
            off = next;
        }
        let slots = (count + count / 3 + 1).next_power_of_two();
        let mut table = vec![EMPTY; slots].into_boxed_slice();
        let mask = slots - 1;
        let mut off = 0;
        while let Some((e, next)) = Entry::at(&self.arena, off) {
            let mut lower = [0u8; 255];
            let n = e.owner.len();
            lower[..n].copy_from_slice(e.owner);
            lower[..n].make_ascii_lowercase();
            let mut i = (hash(&lower[..n]) as usize) & mask;
            while table[i] != EMPTY {
                i = (i + 1) & mask;
            }
            table[i] = u32::try_from(off).unwrap_or(EMPTY);
            off = next;
        }
        self.table = table;
    }
}

/// One authoritative zone.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: Name,
    /// The origin, lower-cased wire form.
    origin_key: Box<[u8]>,
    soa_ttl: u32,
    soa: RData,
    /// The SOA record (minus owner) for SOA answers and for negative answers
    /// (TTL min(SOA TTL, MINIMUM), RFC 2308 §3).
    soa_record: Box<[u8]>,
    negative_soa_record: Box<[u8]>,
    /// True when no file gave an SOA (PROJ tables): the serial is ours to manage.
    soa_synthesized: bool,
    /// Which file (index into the TS's zone list) and line gave the SOA.
    soa_source: Option<(usize, usize)>,
    store: Arc<Store>,
    /// Whether any NS set sits below the apex (enables the delegation walk).
    has_delegations: bool,
    has_wildcards: bool,
    /// Whether any name owns a DNAME (enables the redirection walk).
    has_dnames: bool,
}

/// What a name is in a zone.
enum Found<'z> {
    Node(Entry<'z>),
    /// Exists only as the parent of other names (or the apex with no records of its own).
    Empty,
    Missing,
}

/// What [`Zone::write_answer`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// NOERROR or NXDOMAIN.
    pub rcode: ResponseCode,
    /// AA: false only for referrals.
    pub authoritative: bool,
    /// Records in the answer section.
    pub answers: u16,
    /// Records in the authority section.
    pub authority: u16,
    /// Records in the additional section.
    pub additional: u16,
}

impl Written {
    fn new() -> Self {
        Written {
            rcode: ResponseCode::NoError,
            authoritative: true,
            answers: 0,
            authority: 0,
            additional: 0,
        }
    }
}

/// Writes `name` uncompressed, as spelled, into `out` (cleared first).
fn wire_into(name: &Name, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    // Label by label (hickory's encoder would also record compression
    // pointers, which a zone has no use for), with the RFC 1035 limits
    // checked as it checked them.
    for label in name.iter() {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|&l| l <= 63)
            .ok_or("label longer than 63 bytes")?;
        out.push(len);
        out.extend_from_slice(label);
    }
    out.push(0);
    if out.len() > 255 {
        return Err("name longer than 255 bytes".into());
    }
    Ok(())
}

/// A name's wire form, lower-cased (an index key).
fn key_of(name: &Name) -> Result<Vec<u8>, String> {
    let mut wire = Vec::with_capacity(name.len() + 2);
    wire_into(name, &mut wire)?;
    wire.make_ascii_lowercase();
    Ok(wire)
}

/// Encodes `data`'s RDATA, names uncompressed, into `out` (cleared first).
fn rdata_into(data: &RData, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    // The types of a big table, written directly.
    match data {
        RData::A(a) => {
            out.extend_from_slice(&a.0.octets());
            return Ok(());
        }
        RData::AAAA(a) => {
            out.extend_from_slice(&a.0.octets());
            return Ok(());
        }
        _ => {}
    }
    let mut enc = BinEncoder::new(out);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    data.emit(&mut enc)
        .map_err(|e| format!("cannot encode the {} record: {e}", data.record_type()))?;
    if out.len() > usize::from(u16::MAX) {
        return Err("record data over 65,535 bytes".into());
    }
    Ok(())
}

/// Appends one record (minus owner) to `out`: type, class IN, TTL, RDLENGTH, RDATA.
fn push_record(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    // rdata_into keeps RDATA under 64 KiB.
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// Records of one owner and type while a zone is built: their RDATA as
/// (start, length) in the builder's RDATA buffer, and each record's TTL.
/// The records of one RRset share the lowest TTL among them (RFC 2181
/// §5.2), except RRSIGs: those at one name sign different RRsets, so each
/// keeps its own (RFC 4034 §3).
struct Building {
    rtype: u16,
    ttl: u32,
    data: Vec<(usize, usize, u32)>,
}

/// One record read, waiting for its zone to be compiled.
struct Pending {
    owner: u32,
    rtype: u16,
    file: u32,
    ttl: u32,
    line: u32,
    rdata_at: u32,
    rdata_len: u16,
}

/// The first error by position in the records (file order).
struct FirstError(Option<(usize, ZoneError)>);

impl FirstError {
    fn keep(&mut self, at: usize, err: ZoneError) {
        if self.0.as_ref().is_none_or(|(a, _)| at < *a) {
            self.0 = Some((at, err));
        }
    }
}

/// The owners of a zone being built: each distinct name (case aside) once,
/// as first written, in order of first appearance.
struct Owners {
    /// Owner names in wire form, concatenated.
    names: Vec<u8>,
    /// Per owner: where its name starts in `names`, its length.
    spans: Vec<(u32, u8)>,
    /// Open-addressing index of owner numbers by lower-cased name.
    table: Vec<u32>,
}

impl Owners {
    fn with_capacity(n: usize) -> Self {
        Owners {
            names: Vec::with_capacity(n * 24),
            spans: Vec::with_capacity(n),
            table: vec![EMPTY; (n + n / 3 + 1).next_power_of_two()],
        }
    }

    fn name(&self, owner: u32) -> &[u8] {
        let (start, len) = self.spans[owner as usize];
        &self.names[start as usize..start as usize + usize::from(len)]
    }

    /// The owner number of `lower` (a lower-cased wire name), if seen.
    fn find(&self, lower: &[u8]) -> Option<u32> {
        let mask = self.table.len() - 1;
        let mut i = (hash(lower) as usize) & mask;
        loop {
            match self.table[i] {
                EMPTY => return None,
                o if self.name(o).eq_ignore_ascii_case(lower) => return Some(o),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Doubles the index when it is three quarters full.
    fn grow(&mut self) {
        if (self.spans.len() + 1) * 4 <= self.table.len() * 3 {
            return;
        }
        let slots = (self.table.len() * 2).max(16);
        let mask = slots - 1;
        let mut table = vec![EMPTY; slots];
        let mut lower = [0u8; 255];
        for o in 0..self.spans.len() as u32 {
            let name = self.name(o);
            let lower = &mut lower[..name.len()];
            lower.copy_from_slice(name);
            lower.make_ascii_lowercase();
            let mut i = (hash(lower) as usize) & mask;
            while table[i] != EMPTY {
                i = (i + 1) & mask;
            }
            table[i] = o;
        }
        self.table = table;
    }

    /// The owner number of `wire` (as written), added when new.
    fn intern(&mut self, wire: &[u8]) -> Result<u32, String> {
        self.grow();
        let mut lower = [0u8; 255];
        let lower = lower.get_mut(..wire.len()).ok_or("name too long")?;
        lower.copy_from_slice(wire);
        lower.make_ascii_lowercase();
        let mask = self.table.len() - 1;
        let mut i = (hash(lower) as usize) & mask;
        loop {
            match self.table[i] {
                EMPTY => break,
                o if self.name(o).eq_ignore_ascii_case(lower) => return Ok(o),
                _ => i = (i + 1) & mask,
            }
        }
        let owner = u32::try_from(self.spans.len()).map_err(|_| "too many names")?;
        let start = u32::try_from(self.names.len()).map_err(|_| "too many names")?;
        let len = u8::try_from(wire.len()).map_err(|_| "name too long")?;
        self.names.extend_from_slice(wire);
        self.spans.push((start, len));
        self.table[i] = owner;
        Ok(owner)
    }
}

/// Compiles a zone record by record, so a big table never sits in memory
/// as decoded records: each one costs its owner number, type, TTL, line and
/// RDATA bytes until [`ZoneBuilder::finish`] writes the arena.
pub struct ZoneBuilder {
    origin: Name,
    origin_key: Vec<u8>,
    owners: Owners,
    pending: Vec<Pending>,
    rdata: Vec<u8>,
    scratch: Vec<u8>,
    soa: Option<(u32, RData)>,
    soa_source: Option<(usize, usize)>,
    apex_ns: Option<Name>,
}

impl ZoneBuilder {
    /// A builder for the zone at `origin`, sized for about `records` records.
    pub fn new(origin: Name, records: usize) -> Self {
        let origin_key = key_of(&origin).unwrap_or_else(|_| vec![0]);
        ZoneBuilder {
            origin,
            origin_key,
            owners: Owners::with_capacity(records),
            pending: Vec::with_capacity(records),
            rdata: Vec::with_capacity(records * 4),
            scratch: Vec::with_capacity(256),
            soa: None,
            soa_source: None,
            apex_ns: None,
        }
    }

    /// The zone's origin.
    pub fn origin(&self) -> &Name {
        &self.origin
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
        let err = |msg: String| ZoneError::line(file, rec.line, msg);
        if !self.origin.zone_of(&rec.name) {
            return Err(err(format!(
                "{} is outside the zone {}",
                rec.name, self.origin
            )));
        }
        let rtype = rec.data.record_type();
        if rtype == RecordType::SOA {
            if !rec.name.eq_ignore_root(&self.origin) {
                let msg = format!(
                    "SOA at {} is not at the zone apex {}",
                    rec.name, self.origin
                );
                return Err(err(msg));
            }
            if self.soa.is_some() {
                return Err(err("a second SOA".into()));
            }
            self.soa = Some((rec.ttl, rec.data.clone()));
            self.soa_source = Some((file_idx, rec.line));
            return Ok(());
        }
        if let (None, RData::NS(ns)) = (&self.apex_ns, &rec.data)
            && rec.name.eq_ignore_root(&self.origin)
        {
            self.apex_ns = Some(ns.0.clone());
        }
        wire_into(&rec.name, &mut self.scratch).map_err(err)?;
        let owner = self.owners.intern(&self.scratch).map_err(err)?;
        rdata_into(&rec.data, &mut self.scratch).map_err(err)?;
        let rdata_at =
            u32::try_from(self.rdata.len()).map_err(|_| err("zone over 4 GiB".into()))?;
        self.rdata.extend_from_slice(&self.scratch);
        self.pending.push(Pending {
            owner,
            rtype: u16::from(rtype),
            file: u32::try_from(file_idx).unwrap_or(u32::MAX),
            ttl: rec.ttl,
            line: u32::try_from(rec.line).unwrap_or(u32::MAX),
            rdata_at,
            rdata_len: self.scratch.len() as u16,
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
        let ZoneBuilder {
            origin,
            origin_key,
            owners,
            pending,
            rdata,
            soa,
            soa_source,
            apex_ns,
            ..
        } = self;
        let unnamed = PathBuf::new();
        let file_of = |idx: u32| files.get(idx as usize).unwrap_or(&unnamed);
        // The records of each owner, in file order (a counting sort).
        let owner_count = owners.spans.len();
        let mut starts = vec![0u32; owner_count + 1];
        for p in &pending {
            starts[p.owner as usize + 1] += 1;
        }
        for i in 0..owner_count {
            starts[i + 1] += starts[i];
        }
        let mut by_owner = vec![0u32; pending.len()];
        let mut fill = starts.clone();
        for (at, p) in pending.iter().enumerate() {
            by_owner[fill[p.owner as usize] as usize] = at as u32;
            fill[p.owner as usize] += 1;
        }
        drop(fill);

        // Empty non-terminals: ancestors (below the apex) that own nothing,
        // and the apex itself when it owns nothing.
        let apex_labels = origin.num_labels() as usize;
        let mut empty: Vec<Vec<u8>> = Vec::new();
        for o in 0..owner_count {
            let Some(k) = Key::read(owners.name(o as u32)) else {
                continue;
            };
            for skip in 1..k.labels().saturating_sub(apex_labels) {
                let (_, up) = k.suffix(skip);
                if owners.find(up).is_none() {
                    empty.push(up.to_vec());
                }
            }
        }
        if owners.find(&origin_key).is_none() {
            empty.push(origin_key.clone());
        }
        empty.sort_unstable();
        empty.dedup();
        let mut first_error = FirstError(None);
        let mut store = Store::default();
        // The arena's size, at most (duplicates aside): reserved once, so it
        // is never copied while it grows.
        let most = owners.names.len()
            + owner_count * 8
            + empty.iter().map(|k| k.len() + 8).sum::<usize>()
            + pending
                .iter()
                .map(|p| 19 + usize::from(p.rdata_len))
                .sum::<usize>();
        store.arena.reserve(most);
        let mut has_delegations = false;
        let mut has_wildcards = false;
        let mut has_dnames = false;
        let mut sets: Vec<Building> = Vec::new();
        let (cname, ns) = (u16::from(RecordType::CNAME), u16::from(RecordType::NS));
        for o in 0..owner_count {
            let run = &by_owner[starts[o] as usize..starts[o + 1] as usize];
            let name = owners.name(o as u32);
            sets.clear();
            for &at in run {
                let p = &pending[at as usize];
                // RRSIG and NSEC may sit beside a CNAME (RFC 4035 §2.5).
                let beside =
                    |t: u16| t == u16::from(RecordType::RRSIG) || t == u16::from(RecordType::NSEC);
                let has_cname = sets.iter().any(|s| s.rtype == cname);
                let has_other = sets.iter().any(|s| s.rtype != cname && !beside(s.rtype));
                if (has_cname && !beside(p.rtype)) || (p.rtype == cname && has_other) {
                    let shown = Name::read(&mut BinDecoder::new(name))
                        .map_or_else(|_| "?".into(), |n| n.to_string());
                    let msg = format!("{shown} has a CNAME and other data (RFC 1034 §3.6.2)");
                    let e = ZoneError::line(file_of(p.file), p.line as usize, msg);
                    first_error.keep(at as usize, e);
                    continue;
                }
                let bytes = (p.rdata_at as usize, usize::from(p.rdata_len));
                let same = |d: &(usize, usize, u32)| {
                    rdata[d.0..d.0 + d.1] == rdata[bytes.0..bytes.0 + bytes.1]
                };
                match sets.iter_mut().find(|s| s.rtype == p.rtype) {
                    Some(set) => {
                        set.ttl = set.ttl.min(p.ttl);
                        if !set.data.iter().any(same) {
                            set.data.push((bytes.0, bytes.1, p.ttl));
                        }
                    }
                    None => sets.push(Building {
                        rtype: p.rtype,
                        ttl: p.ttl,
                        data: vec![(bytes.0, bytes.1, p.ttl)],
                    }),
                }
            }
            let is_apex = name.eq_ignore_ascii_case(&origin_key);
            has_wildcards |= name.starts_with(&[1, b'*']);
            has_delegations |= !is_apex && sets.iter().any(|s| s.rtype == ns);
            has_dnames |= sets.iter().any(|s| s.rtype == u16::from(RecordType::DNAME));
            if let Err(msg) = push_entry(&mut store, name, 0, &sets, &rdata) {
                let first = run.first().map_or(0, |&a| a);
                let p = &pending[first as usize];
                first_error.keep(
                    first as usize,
                    ZoneError::line(file_of(p.file), p.line as usize, msg),
                );
            }
        }
        if let Some((_, err)) = first_error.0 {
            return Err(err);
        }
        drop((pending, rdata, by_owner, starts, owners));
        for key in &empty {
            // Lower-cased spelling: the name was never written on its own.
            let _ = push_entry(&mut store, key, ENTRY_EMPTY, &[], &[]);
        }

        store.arena.shrink_to_fit();
        store.index();

        let soa_synthesized = soa.is_none();
        let (soa_ttl, soa) = match soa {
            Some(s) => s,
            None => {
                let (ttl, soa) = default_soa(&origin, apex_ns.as_ref());
                (ttl, RData::SOA(soa))
            }
        };
        let mut zone = Zone {
            origin,
            origin_key: origin_key.into_boxed_slice(),
            soa_ttl,
            soa,
            soa_record: Box::default(),
            negative_soa_record: Box::default(),
            soa_synthesized,
            soa_source,
            store: Arc::new(store),
            has_delegations,
            has_wildcards,
            has_dnames,
        };
        zone.compile_soa().map_err(|m| {
            let (idx, line) = zone.soa_source.unwrap_or((0, 0));
            ZoneError::line(files.get(idx).unwrap_or(&unnamed), line, m)
        })?;
        Ok(zone)
    }
}

impl Zone {
    /// Builds a zone from records, given per file (index into `files`) in
    /// file order; see [`ZoneBuilder`].
    ///
    /// # Errors
    /// As [`ZoneBuilder::add`] and [`ZoneBuilder::finish`].
    pub fn build(
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

    /// Encodes the SOA records served in answers and negative answers.
    fn compile_soa(&mut self) -> Result<(), String> {
        let minimum = match &self.soa {
            RData::SOA(s) => s.minimum,
            _ => self.soa_ttl,
        };
        let mut rdata = Vec::with_capacity(64);
        rdata_into(&self.soa, &mut rdata)?;
        let soa = u16::from(RecordType::SOA);
        let mut rec = Vec::with_capacity(rdata.len() + 10);
        push_record(&mut rec, soa, self.soa_ttl, &rdata);
        self.soa_record = rec.clone().into_boxed_slice();
        rec.clear();
        push_record(&mut rec, soa, self.soa_ttl.min(minimum), &rdata);
        self.negative_soa_record = rec.into_boxed_slice();
        Ok(())
    }

    /// The zone's apex name.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// True when the SOA was synthesized rather than read from a file.
    pub fn soa_synthesized(&self) -> bool {
        self.soa_synthesized
    }

    /// The file (index into the zone list) and line of the SOA, when read from a file.
    pub fn soa_source(&self) -> Option<(usize, usize)> {
        self.soa_source
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        match &self.soa {
            RData::SOA(s) => s.serial,
            _ => 0,
        }
    }

    /// The same zone with another SOA serial (the records are shared, not copied).
    pub fn with_serial(mut self, serial: u32) -> Self {
        if let RData::SOA(s) = &mut self.soa {
            s.serial = serial;
        }
        // The SOA encoded before; only its serial changed.
        if self.compile_soa().is_err() {
            self.soa_record = Box::default();
        }
        self
    }

    /// True when both zones hold the same records (the serial aside).
    pub fn same_data(&self, other: &Zone) -> bool {
        let strip = |z: &Zone| match &z.soa {
            RData::SOA(s) => {
                let mut s = s.clone();
                s.serial = 0;
                Some(s)
            }
            _ => None,
        };
        self.origin == other.origin
            && self.soa_ttl == other.soa_ttl
            && strip(self) == strip(other)
            && self.store.arena == other.store.arena
    }

    /// Number of RRsets, the SOA included.
    pub fn rrset_count(&self) -> usize {
        1 + self.store.rrsets
    }

    /// Bytes of compiled records and index (the zone's share of memory).
    pub fn compiled_bytes(&self) -> usize {
        self.store.arena.len() + self.store.table.len() * 4
    }

    /// The SOA record as stored (for answers to SOA queries and transfers).
    pub fn soa_rr(&self) -> Rr<'_> {
        Rr {
            name: &self.origin,
            ttl: self.soa_ttl,
            data: &self.soa,
        }
    }

    /// Every record of the zone except the SOA, decoded (for a zone transfer).
    pub fn records(&self) -> Vec<(Name, u32, RData)> {
        let mut out = Vec::new();
        let mut buf = Vec::with_capacity(512);
        for e in self.store.entries() {
            for set in e.sets() {
                for r in set.records() {
                    buf.clear();
                    buf.extend_from_slice(e.owner);
                    buf.extend_from_slice(r);
                    let mut dec = BinDecoder::new(&buf);
                    if let Ok(rec) = Record::<RData>::read(&mut dec) {
                        let ttl = rec.ttl;
                        out.push((rec.name, ttl, rec.data));
                    }
                }
            }
        }
        out
    }

    /// Writes the answer to a question for `qname` (which must be at or below
    /// the origin) and `qtype` after the header and question already in `msg`,
    /// whose name sits at [`HEADER_LEN`] as the client spelled it. Records
    /// owned by the question's name point to it, so the client's spelling
    /// (and 0x20 case) is kept. `all_of_any`: answer ANY with every RRset (TCP);
    /// otherwise with one (RFC 8482 §4.1).
    ///
    /// A CNAME is followed (RFC 1034 §4.3.2 step 3a) while its target lies in
    /// the zone, and each name of the chain is looked up as the question's
    /// own: at or below a cut it ends in a referral, a missing name in
    /// NXDOMAIN, an empty non-terminal or a name without the type in NODATA,
    /// each negative with the SOA (RFC 2308 §2.1, §2.2). A chain stops at a
    /// name it has already written, so a loop returns each CNAME once, and
    /// after [`MAX_CNAME_CHAIN`] + 1 lookups (a chain of that many CNAMEs
    /// still ends in its data). Questions for CNAME or ANY at a CNAME's owner get the CNAME alone.
    ///
    /// A name below a DNAME's owner (RFC 6672 §3.1; not below a cut) gets
    /// the DNAME and a CNAME synthesized from it (owned by the name, the
    /// DNAME's TTL, the owner's suffix replaced by the DNAME's target, the
    /// rest lower-cased), followed as any CNAME; YXDOMAIN when that name
    /// would exceed 255 bytes (§2.2); a CNAME question ends at that CNAME.
    /// A DNAME met again is not written twice, and ends the chain when its
    /// target lies below its owner. At the owner itself the DNAME is
    /// ordinary data. All as NSD 4.6 answers.
    pub fn write_answer(
        &self,
        msg: &mut Vec<u8>,
        qname: &Key,
        qtype: RecordType,
        all_of_any: bool,
    ) -> Written {
        let mut w = Written::new();
        let qt = u16::from(qtype);
        let mut owner_at = HEADER_LEN;
        let mut key = qname.clone();
        // Where each name of the chain is written in `msg` (uncompressed).
        // One lookup per CNAME followed, and one for the name it ends at.
        let mut chain = [0usize; MAX_CNAME_CHAIN + 1];
        // Where each DNAME owner written so far sits in `msg`.
        let mut dnames = [0usize; MAX_CNAME_CHAIN + 1];
        for step in 0..=MAX_CNAME_CHAIN {
            chain[step] = owner_at;
            if let Some((at, dname)) = self.dname_above(&key) {
                let again = dnames[..step]
                    .iter()
                    .any(|&d| d != 0 && name_at(msg, d).eq_ignore_ascii_case(&key.bytes()[at..]));
                dnames[step] = owner_at + at;
                match Self::synthesize(msg, &key, owner_at, at, dname, again, &mut w) {
                    Some(_) if qtype == RecordType::CNAME => return w,
                    Some(target_at) => {
                        let Some(target) = msg.get(target_at..).and_then(Key::read) else {
                            return w;
                        };
                        if !target.is_under(&self.origin_key) {
                            return w;
                        }
                        let seen = chain[..=step]
                            .iter()
                            .any(|&at| name_at(msg, at).eq_ignore_ascii_case(target.bytes()));
                        if seen {
                            return w;
                        }
                        owner_at = target_at;
                        key = target;
                        continue;
                    }
                    None => return w,
                }
            }
            if self.has_delegations && self.referral(msg, &key, owner_at, qt, &mut w) {
                // After a CNAME the answer section holds this zone's data: the
                // answer stays authoritative, the referral rides along (as NSD).
                w.authoritative |= w.answers > 0;
                return w;
            }
            let first = w.answers;
            let at_apex = key.bytes() == &*self.origin_key;
            if at_apex && (qtype == RecordType::SOA || qtype == RecordType::ANY) {
                w.answers += self.push_soa(msg, owner_at);
                if qtype == RecordType::SOA || !all_of_any {
                    return w;
                }
            }
            let node = match self.find(&key) {
                Found::Node(n) => n,
                Found::Empty => {
                    if w.answers == first {
                        self.push_negative(msg, qname, &mut w);
                    }
                    return w;
                }
                Found::Missing => {
                    w.rcode = ResponseCode::NXDomain;
                    self.push_negative(msg, qname, &mut w);
                    return w;
                }
            };
            let cname = match node.set(u16::from(RecordType::CNAME)) {
                Some(c) if !matches!(qtype, RecordType::CNAME | RecordType::ANY) => c,
                _ => {
                    let before = w.answers;
                    if qtype == RecordType::ANY {
                        for set in node.sets().filter(|s| s.flags & SET_DO_ONLY == 0) {
                            if w.answers > before && !all_of_any {
                                break;
                            }
                            w.answers += push_set(msg, owner_at, set, None);
                        }
                    } else if let Some(set) = node.set(qt) {
                        w.answers += push_set(msg, owner_at, set, None);
                    }
                    if w.answers == before {
                        self.push_negative(msg, qname, &mut w);
                    }
                    return w;
                }
            };
            let mut target_at = [0usize; 1];
            w.answers += push_set(msg, owner_at, cname, Some(&mut target_at[..]));
            let Some(target) = msg.get(target_at[0]..).and_then(Key::read) else {
                return w;
            };
            if !target.is_under(&self.origin_key) {
                return w; // out of zone: the client's resolver follows it
            }
            let seen = chain[..=step]
                .iter()
                .any(|&at| name_at(msg, at).eq_ignore_ascii_case(target.bytes()));
            if seen {
                return w; // a loop: every CNAME of it is written once
            }
            owner_at = target_at[0];
            key = target;
        }
        w
    }

    /// The DNAME at the closest ancestor of `name` (in this zone, below no
    /// cut) that owns one, and that owner's offset in `name`.
    fn dname_above(&self, name: &Key) -> Option<(usize, Set<'_>)> {
        if !self.has_dnames {
            return None;
        }
        let apex_labels = self.origin.num_labels() as usize;
        let labels = name.labels();
        // From the apex down to the name's parent: a cut or a DNAME higher
        // up occludes what lies below it.
        for n in apex_labels..labels {
            let (at, owner) = name.suffix(labels - n);
            let Some(e) = self.store.get(owner).filter(|e| !e.is_empty()) else {
                continue;
            };
            if n > apex_labels && e.set(u16::from(RecordType::NS)).is_some() {
                return None; // the referral's
            }
            if let Some(d) = e.set(u16::from(RecordType::DNAME)) {
                return Some((at, d));
            }
        }
        None
    }

    /// Writes `dname` (owned by the suffix at `at` of `name`, written at
    /// `owner_at`; unless `written` already) and the CNAME it synthesizes
    /// for `name`; the offset of that CNAME's target in `msg`. `None` when
    /// the target would exceed 255 bytes (YXDOMAIN set) or when a DNAME met
    /// again points below itself (it would grow the name forever; NSD
    /// stops there too).
    fn synthesize(
        msg: &mut Vec<u8>,
        name: &Key,
        owner_at: usize,
        at: usize,
        dname: Set<'_>,
        written: bool,
        w: &mut Written,
    ) -> Option<usize> {
        let record = dname.records().next()?;
        let ttl = be32(record, 4);
        let mut new = [0u8; NAME_MAX];
        let target = Key::read(record.get(10..)?)?;
        let owner = &name.bytes()[at..];
        if written && target.is_under(owner) {
            return None;
        }
        if !written {
            w.answers += push_set(msg, owner_at + at, dname, None);
        }
        // The target as the zone spells it.
        let suffix = record.get(10..10 + target.wire_len())?;
        let len = at + suffix.len();
        if len > NAME_MAX {
            w.rcode = ResponseCode::YXDomain;
            return None;
        }
        new[..at].copy_from_slice(&name.bytes()[..at]);
        new[at..len].copy_from_slice(suffix);
        push_name_ref(msg, owner_at);
        let rdata = &new[..len];
        push_record(msg, u16::from(RecordType::CNAME), ttl, rdata);
        w.answers += 1;
        Some(msg.len() - len)
    }

    /// The SOA as an answer owned by the name at `owner_at`.
    fn push_soa(&self, msg: &mut Vec<u8>, owner_at: usize) -> u16 {
        push_name_ref(msg, owner_at);
        msg.extend_from_slice(&self.soa_record);
        1
    }

    /// The SOA in the authority section of a negative answer, owned by the
    /// origin as it ends the question's name.
    fn push_negative(&self, msg: &mut Vec<u8>, qname: &Key, w: &mut Written) {
        match qname.offset_of(&self.origin_key) {
            Some(at) if self.origin_key.len() > 1 => push_name_ref(msg, HEADER_LEN + at),
            _ => msg.extend_from_slice(&self.origin_key),
        }
        msg.extend_from_slice(&self.negative_soa_record);
        w.authority += 1;
    }

    /// The entry of `key`: its own, a wildcard's, or none (empty non-terminal or missing).
    fn find(&self, key: &Key) -> Found<'_> {
        if let Some(e) = self.store.get(key.bytes()) {
            return if e.is_empty() {
                Found::Empty
            } else {
                Found::Node(e)
            };
        }
        if self.has_wildcards {
            // The closest encloser (RFC 4592 §3.3.1), then its wildcard.
            for skip in 1..=key.labels() {
                let (_, up) = key.suffix(skip);
                if self.store.get(up).is_some() || up.len() <= self.origin_key.len() {
                    return match Key::wildcard_of(up).and_then(|w| self.store.get(w.bytes())) {
                        Some(e) if !e.is_empty() => Found::Node(e),
                        _ => Found::Missing,
                    };
                }
            }
        }
        Found::Missing
    }

    /// A referral when `name` (the question's or a CNAME target's, written
    /// at `written_at` in `msg`) is at or below a delegation point (not for DS
    /// at the cut): the NS set in authority, glue from the zone in additional.
    fn referral(
        &self,
        msg: &mut Vec<u8>,
        name: &Key,
        written_at: usize,
        qt: u16,
        w: &mut Written,
    ) -> bool {
        let apex_labels = self.origin.num_labels() as usize;
        let labels = name.labels();
        // Walk from just below the apex down to the name itself.
        for n in (apex_labels + 1)..=labels {
            let (at, cut) = name.suffix(labels - n);
            let Some(ns) = self
                .store
                .get(cut)
                .filter(|e| !e.is_empty())
                .and_then(|e| e.set(u16::from(RecordType::NS)))
            else {
                continue;
            };
            if n == labels && qt == u16::from(RecordType::DS) {
                return false;
            }
            w.authoritative = false;
            let mut targets = [0usize; 32];
            w.authority += push_set(msg, written_at + at, ns, Some(&mut targets[..]));
            let written = usize::from(ns.count).min(targets.len());
            for &t in &targets[..written] {
                let Some(glue) = msg
                    .get(t..)
                    .and_then(Key::read)
                    .and_then(|k| self.store.get(k.bytes()))
                else {
                    continue;
                };
                for rtype in [RecordType::A, RecordType::AAAA] {
                    if let Some(set) = glue.set(u16::from(rtype)) {
                        w.additional += push_set(msg, t, set, None);
                    }
                }
            }
            return true;
        }
        false
    }
}

/// Appends an entry for the owner `owner_wire` with `sets` (whose RDATA
/// lies in `rdata`) to the arena.
fn push_entry(
    store: &mut Store,
    owner_wire: &[u8],
    flags: u8,
    sets: &[Building],
    rdata: &[u8],
) -> Result<(), String> {
    let arena = &mut store.arena;
    let start = arena.len();
    let name_len = u8::try_from(owner_wire.len()).map_err(|_| "name too long".to_string())?;
    let set_count = u16::try_from(sets.len()).map_err(|_| "too many types".to_string())?;
    arena.push(name_len);
    arena.extend_from_slice(owner_wire);
    arena.push(flags);
    arena.extend_from_slice(&set_count.to_be_bytes());
    let sets_len_at = arena.len();
    arena.extend_from_slice(&[0; 4]);
    for set in sets {
        let head = arena.len();
        let count = u16::try_from(set.data.len()).map_err(|_| "RRset too large".to_string())?;
        arena.extend_from_slice(&set.rtype.to_be_bytes());
        arena.push(0);
        arena.extend_from_slice(&count.to_be_bytes());
        arena.extend_from_slice(&[0; 4]);
        let rrsig = set.rtype == u16::from(RecordType::RRSIG);
        for &(at, len, own) in &set.data {
            let ttl = if rrsig { own } else { set.ttl };
            push_record(arena, set.rtype, ttl, &rdata[at..at + len]);
        }
        let len = u32::try_from(arena.len() - head - 9).map_err(|_| "RRset too large")?;
        arena[head + 5..head + 9].copy_from_slice(&len.to_be_bytes());
    }
    let sets_len = u32::try_from(arena.len() - sets_len_at - 4).map_err(|_| "zone too large")?;
    arena[sets_len_at..sets_len_at + 4].copy_from_slice(&sets_len.to_be_bytes());
    if u32::try_from(arena.len()).is_err() {
        arena.truncate(start);
        return Err("zone over 4 GiB of records".into());
    }
    store.rrsets += sets.len();
    Ok(())
}

/// Appends the records of `set`, each owned by the name at `owner_at`;
/// `rdata_at` gets the offset of each record's RDATA (for names to follow).
fn push_set(
    msg: &mut Vec<u8>,
    owner_at: usize,
    set: Set<'_>,
    rdata_at: Option<&mut [usize]>,
) -> u16 {
    let mut slots = rdata_at.map(|s| s.iter_mut());
    let mut n = 0;
    for r in set.records() {
        push_name_ref(msg, owner_at);
        if let Some(slot) = slots.as_mut().and_then(|s| s.next()) {
            *slot = msg.len() + 10;
        }
        msg.extend_from_slice(r);
        n += 1;
    }
    n
}

/// The zones one TS serves, most specific origin first.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    zones: Vec<Zone>,
}

impl Catalog {
    /// A catalog of `zones`.
    pub fn new(mut zones: Vec<Zone>) -> Self {
        zones.sort_by_key(|z| std::cmp::Reverse(z.origin.num_labels()));
        Catalog { zones }
    }

    /// The zone authoritative for `name` (lower-cased wire form), if any.
    pub fn find(&self, name: &Key) -> Option<&Zone> {
        self.zones.iter().find(|z| name.is_under(&z.origin_key))
    }

    /// The zones.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// The zones, by value.
    pub fn into_zones(self) -> Vec<Zone> {
        self.zones
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::Transport;
    use crate::ts::answer::{Asked, assemble};
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::rdata::{A, CNAME, NS};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn rec(n: &str, data: RData) -> SourceRecord {
        SourceRecord {
            name: name(n),
            ttl: 300,
            data,
            line: 1,
        }
    }

    fn a(ip: &str) -> RData {
        RData::A(A(ip.parse().unwrap()))
    }

    fn soa() -> (u32, SOA) {
        (
            300,
            SOA::new(name("ns."), name("hostmaster."), 1, 3600, 600, 86400, 60),
        )
    }

    fn zone(records: Vec<SourceRecord>) -> Zone {
        Zone::build(
            Name::root(),
            vec![(0, records)],
            &[PathBuf::from("t")],
            |_, _| soa(),
        )
        .unwrap()
    }

    /// The answer to `qname`/`qtype` within `max` bytes over `transport`,
    /// parsed back; its ID and question are checked.
    fn ask_over(
        z: &Zone,
        qname: &str,
        qtype: RecordType,
        max: u16,
        transport: Transport,
    ) -> Message {
        let question = Query::query(name(qname), qtype).to_bytes().unwrap();
        let key = Key::read(&question).unwrap();
        let asked = Asked {
            id: 7,
            flags: 0x0100,
            question: &question,
            qname: &key,
            qtype,
        };
        let (msg, _) = assemble(z, asked, None, max, transport);
        let m = Message::from_vec(&msg).unwrap();
        assert_eq!(m.id, 7);
        assert_eq!(m.queries[0].name().to_ascii(), name(qname).to_ascii());
        m
    }

    /// The whole answer message to `qname`/`qtype`, over TCP, parsed back.
    fn ask(z: &Zone, qname: &str, qtype: RecordType) -> Message {
        ask_over(z, qname, qtype, u16::MAX, Transport::Tcp)
    }

    #[test]
    fn hit_nodata_nxdomain_and_ent() {
        let z = zone(vec![
            rec("www.google.com.", a("8.6.4.2")),
            rec("www.google.com.", a("8.6.4.3")),
        ]);
        let ans = ask(&z, "WWW.Google.com.", RecordType::A);
        assert_eq!(ans.metadata.response_code, ResponseCode::NoError);
        assert!(ans.metadata.authoritative && ans.metadata.recursion_desired);
        assert_eq!(ans.answers.len(), 2);
        assert_eq!(ans.answers[0].name.to_ascii(), "WWW.Google.com.");
        let nodata = ask(&z, "WWW.Google.com.", RecordType::AAAA);
        assert!(nodata.answers.is_empty());
        assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
        assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(nodata.authorities[0].ttl, 60);
        let ent = ask(&z, "google.com.", RecordType::A);
        assert_eq!(ent.metadata.response_code, ResponseCode::NoError);
        assert_eq!(ent.authorities.len(), 1);
        let miss = ask(&z, "mail.google.com.", RecordType::A);
        assert_eq!(miss.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(miss.authorities[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn cname_is_followed_inside_the_zone() {
        let z = zone(vec![
            rec("alias.test.", RData::CNAME(CNAME(name("www.test.")))),
            rec("www.test.", a("1.2.3.4")),
            rec("dangling.test.", RData::CNAME(CNAME(name("nowhere.test.")))),
        ]);
        let ans = ask(&z, "alias.test.", RecordType::A);
        assert_eq!(ans.answers.len(), 2);
        assert_eq!(ans.answers[1].name.to_ascii(), "www.test.");
        assert_eq!(ans.answers[1].data, a("1.2.3.4"));
        assert_eq!(ask(&z, "alias.test.", RecordType::CNAME).answers.len(), 1);
        let ans = ask(&z, "dangling.test.", RecordType::A);
        assert_eq!(ans.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(ans.answers.len(), 1);
    }

    #[test]
    fn a_chain_of_the_most_cnames_reaches_the_data_and_one_more_stops() {
        // c0 -> c1 -> ... -> c{n} holding the A: n CNAMEs.
        let chain = |n: usize| {
            let mut records: Vec<_> = (0..n)
                .map(|i| {
                    let target = name(&format!("c{}.test.", i + 1));
                    rec(&format!("c{i}.test."), RData::CNAME(CNAME(target)))
                })
                .collect();
            records.push(rec(&format!("c{n}.test."), a("1.2.3.4")));
            zone(records)
        };
        let ans = ask(&chain(MAX_CNAME_CHAIN), "c0.test.", RecordType::A);
        assert_eq!(ans.answers.len(), MAX_CNAME_CHAIN + 1);
        assert_eq!(ans.answers[MAX_CNAME_CHAIN].data, a("1.2.3.4"));
        // MAX + 1 lookups, each writing a CNAME; the resolver follows the last.
        let ans = ask(&chain(MAX_CNAME_CHAIN + 1), "c0.test.", RecordType::A);
        assert_eq!(ans.answers.len(), MAX_CNAME_CHAIN + 1);
        assert!(
            ans.answers
                .iter()
                .all(|r| r.record_type() == RecordType::CNAME)
        );
    }

    #[test]
    fn cname_loops_write_each_record_once() {
        let z = zone(vec![
            rec("a.test.", RData::CNAME(CNAME(name("b.test.")))),
            rec("b.test.", RData::CNAME(CNAME(name("A.test.")))),
            rec("self.test.", RData::CNAME(CNAME(name("self.test.")))),
            rec("l1.test.", RData::CNAME(CNAME(name("l2.test.")))),
            rec("l2.test.", RData::CNAME(CNAME(name("l3.test.")))),
            rec("l3.test.", RData::CNAME(CNAME(name("l2.test.")))),
        ]);
        for (q, len) in [("a.test.", 2), ("SELF.test.", 1), ("l1.test.", 3)] {
            let ans = ask(&z, q, RecordType::A);
            assert_eq!(ans.answers.len(), len, "{q}");
            assert_eq!(ans.metadata.response_code, ResponseCode::NoError, "{q}");
        }
    }

    /// A zone with a delegated `sub.test.` and CNAMEs into it.
    fn delegating() -> Zone {
        zone(vec![
            rec("sub.test.", RData::NS(NS(name("ns.sub.test.")))),
            rec("ns.sub.test.", a("6.6.6.6")),
            rec("www.test.", RData::CNAME(CNAME(name("host.sub.test.")))),
            rec("glued.test.", RData::CNAME(CNAME(name("ns.sub.test.")))),
            rec("tocut.test.", RData::CNAME(CNAME(name("sub.test.")))),
        ])
    }

    #[test]
    fn cname_into_a_delegation_is_the_cname_and_a_referral() {
        let z = delegating();
        for q in ["www.test.", "glued.test.", "tocut.test."] {
            let ans = ask(&z, q, RecordType::A);
            assert_eq!(ans.metadata.response_code, ResponseCode::NoError, "{q}");
            assert!(ans.metadata.authoritative, "{q}: AA as NSD sets it");
            assert_eq!(ans.answers.len(), 1, "{q}: the CNAME alone");
            assert_eq!(ans.answers[0].record_type(), RecordType::CNAME, "{q}");
            assert_eq!(ans.authorities.len(), 1, "{q}");
            assert_eq!(ans.authorities[0].record_type(), RecordType::NS, "{q}");
            assert_eq!(ans.authorities[0].name.to_ascii(), "sub.test.", "{q}");
            assert_eq!(ans.additionals.len(), 1, "{q}: the glue");
            assert_eq!(ans.additionals[0].data, a("6.6.6.6"), "{q}");
        }
        // DS at the cut is the parent's: NODATA after the CNAME.
        let ds = ask(&z, "tocut.test.", RecordType::DS);
        assert!(ds.metadata.authoritative);
        assert_eq!(ds.answers.len(), 1);
        assert_eq!(ds.authorities[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn cname_to_an_empty_non_terminal_is_nodata_with_the_soa() {
        let z = zone(vec![
            rec("x.y.test.", a("1.2.3.4")),
            rec("toent.test.", RData::CNAME(CNAME(name("y.test.")))),
        ]);
        let ans = ask(&z, "toent.test.", RecordType::A);
        assert_eq!(ans.metadata.response_code, ResponseCode::NoError);
        assert_eq!(ans.answers.len(), 1);
        assert_eq!(ans.authorities.len(), 1);
        assert_eq!(ans.authorities[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn any_at_a_cname_owner_is_the_cname_alone() {
        let z = zone(vec![
            rec("alias.test.", RData::CNAME(CNAME(name("www.test.")))),
            rec("www.test.", a("1.2.3.4")),
        ]);
        for transport in [Transport::Udp, Transport::Tcp] {
            let ans = ask_over(&z, "alias.test.", RecordType::ANY, 1232, transport);
            assert_eq!(ans.answers.len(), 1, "{transport:?}");
            assert_eq!(ans.answers[0].record_type(), RecordType::CNAME);
            assert!(ans.authorities.is_empty(), "{transport:?}");
        }
    }

    /// A DNAME as the zone-file reader gives it: its wire RDATA, unparsed.
    fn dname(target: &str) -> RData {
        let mut wire = Vec::new();
        wire_into(&name(target), &mut wire).unwrap();
        RData::Unknown {
            code: RecordType::DNAME,
            rdata: hickory_proto::rr::rdata::NULL::with(wire),
        }
    }

    /// A zone with DNAMEs: into the zone, out of it, into a delegation, in
    /// a loop, onto a name below itself, and below a cut.
    fn redirecting() -> Zone {
        let mut ttl600 = rec("dn.test.", dname("Target.test."));
        ttl600.ttl = 600;
        zone(vec![
            ttl600,
            rec("dn.test.", a("1.1.1.1")),
            rec("www.target.test.", a("2.2.2.2")),
            // Occluded by the DNAME (RFC 6672 §2.4; NSD refuses such a zone).
            rec("www.dn.test.", a("6.6.6.6")),
            rec("out.test.", dname("example.org.")),
            rec("sub.test.", RData::NS(NS(name("ns.sub.test.")))),
            rec("ns.sub.test.", a("6.6.6.6")),
            rec("todel.test.", dname("sub.test.")),
            rec("deep.sub.test.", dname("target.test.")),
            rec("loop.test.", dname("loop2.test.")),
            rec("loop2.test.", dname("loop.test.")),
            rec("grow.test.", dname("x.grow.test.")),
            rec("cn.test.", RData::CNAME(CNAME(name("www.dn.test.")))),
        ])
    }

    #[test]
    fn dname_synthesizes_a_cname_and_follows_it() {
        let z = redirecting();
        let ans = ask(&z, "WWW.dn.test.", RecordType::A);
        assert_eq!(ans.metadata.response_code, ResponseCode::NoError);
        assert!(ans.metadata.authoritative);
        let [d, c, hit] = &ans.answers[..] else {
            panic!("{:?}", ans.answers)
        };
        assert_eq!((d.name.to_ascii(), d.ttl), ("dn.test.".into(), 600));
        assert_eq!(d.data, dname("Target.test."));
        // Owned by the question's name, the DNAME's TTL, the prefix lower-cased.
        assert_eq!(c.name.to_ascii(), "WWW.dn.test.");
        assert_eq!(c.ttl, 600);
        assert_eq!(c.data, RData::CNAME(CNAME(name("www.Target.test."))));
        // The target's address, not the occluded one at the name itself.
        assert_eq!(hit.data, a("2.2.2.2"));
        // The target's NODATA and NXDOMAIN, with the SOA.
        let nodata = ask(&z, "www.dn.test.", RecordType::AAAA);
        assert_eq!(nodata.answers.len(), 2);
        assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
        let nx = ask(&z, "a.b.dn.test.", RecordType::A);
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(nx.answers.len(), 2);
        // A CNAME question ends at the synthesized CNAME.
        let cname = ask(&z, "www.dn.test.", RecordType::CNAME);
        assert_eq!(cname.answers.len(), 2);
        assert!(cname.authorities.is_empty());
        // A CNAME into a DNAME'd name: CNAME, DNAME, CNAME, A.
        assert_eq!(ask(&z, "cn.test.", RecordType::A).answers.len(), 4);
        // This zone is the root's: example.org. is in it, and missing.
        let out = ask(&z, "www.out.test.", RecordType::A);
        assert_eq!(out.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(out.answers.len(), 2);
        assert_eq!(
            out.answers[1].data,
            RData::CNAME(CNAME(name("www.example.org.")))
        );
    }

    #[test]
    fn dname_at_its_owner_and_below_a_cut_is_not_synthesized() {
        let z = redirecting();
        let own = ask(&z, "dn.test.", RecordType::DNAME);
        assert_eq!(own.answers.len(), 1);
        assert_eq!(
            ask(&z, "dn.test.", RecordType::A).answers[0].data,
            a("1.1.1.1")
        );
        let nodata = ask(&z, "dn.test.", RecordType::AAAA);
        assert!(nodata.answers.is_empty());
        assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
        // Below a cut: the child's DNAME, so a referral.
        let below = ask(&z, "www.deep.sub.test.", RecordType::A);
        assert!(!below.metadata.authoritative);
        assert!(below.answers.is_empty());
        assert_eq!(below.authorities[0].record_type(), RecordType::NS);
    }

    #[test]
    fn dname_into_a_delegation_loops_and_long_names() {
        let z = redirecting();
        let del = ask(&z, "www.todel.test.", RecordType::A);
        assert!(del.metadata.authoritative);
        assert_eq!(del.answers.len(), 2);
        assert_eq!(del.authorities[0].record_type(), RecordType::NS);
        assert_eq!(del.additionals[0].data, a("6.6.6.6"));
        // A loop through two DNAMEs: each DNAME and CNAME once.
        let lp = ask(&z, "a.loop.test.", RecordType::A);
        assert_eq!(lp.metadata.response_code, ResponseCode::NoError);
        assert_eq!(lp.answers.len(), 4);
        // A DNAME onto a name below itself is applied once.
        let grow = ask(&z, "a.grow.test.", RecordType::A);
        assert_eq!(grow.answers.len(), 2);
        assert_eq!(
            grow.answers[1].data,
            RData::CNAME(CNAME(name("a.x.grow.test.")))
        );
        // A synthesized name over 255 bytes: YXDOMAIN with the DNAME.
        let label = "a".repeat(60);
        let long = format!("{label}.{label}.{label}.{}.dn.test.", "b".repeat(59));
        // 252 bytes in wire format; `target` is 4 bytes longer than `dn`.
        let wire_len = long.len() + 1;
        assert!(wire_len <= NAME_MAX && wire_len + 4 > NAME_MAX);
        let yx = ask(&z, &long, RecordType::A);
        assert_eq!(yx.metadata.response_code, ResponseCode::YXDomain);
        assert_eq!(yx.answers.len(), 1);
        assert_eq!(yx.answers[0].record_type(), RecordType::DNAME);
    }

    #[test]
    fn cname_beside_data_is_refused() {
        let err = Zone::build(
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

    #[test]
    fn wildcard_and_delegation() {
        let z = zone(vec![
            rec("*.w.test.", a("5.5.5.5")),
            rec("sub.test.", RData::NS(NS(name("ns.sub.test.")))),
            rec("ns.sub.test.", a("6.6.6.6")),
        ]);
        let ans = ask(&z, "x.w.test.", RecordType::A);
        assert_eq!(ans.answers.len(), 1);
        assert_eq!(ans.answers[0].name.to_ascii(), "x.w.test.");
        let ans = ask(&z, "deep.sub.test.", RecordType::A);
        assert!(!ans.metadata.authoritative);
        assert_eq!(ans.authorities.len(), 1);
        assert_eq!(ans.authorities[0].name.to_ascii(), "sub.test.");
        assert_eq!(ans.additionals.len(), 1);
        assert_eq!(ans.additionals[0].name.to_ascii(), "ns.sub.test.");
        // DS at the cut is the parent's: not a referral.
        let ds = ask(&z, "sub.test.", RecordType::DS);
        assert!(ds.metadata.authoritative && ds.answers.is_empty());
    }

    #[test]
    fn any_is_one_rrset_over_udp_and_all_over_tcp() {
        let z = zone(vec![
            rec("m.test.", a("1.1.1.1")),
            rec(
                "m.test.",
                RData::AAAA("2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().into()),
            ),
        ]);
        assert_eq!(ask(&z, "m.test.", RecordType::ANY).answers.len(), 2);
        let udp = ask_over(&z, "m.test.", RecordType::ANY, 512, Transport::Udp);
        assert_eq!(udp.answers.len(), 1);
    }

    #[test]
    fn truncation_keeps_the_question_alone() {
        let many: Vec<_> = (0..60)
            .map(|i| rec("big.test.", a(&format!("10.0.0.{i}"))))
            .collect();
        let z = zone(many);
        let m = ask_over(&z, "big.test.", RecordType::A, 512, Transport::Udp);
        assert!(m.metadata.truncation && m.answers.is_empty() && m.queries.len() == 1);
        assert_eq!(ask(&z, "big.test.", RecordType::A).answers.len(), 60);
    }

    #[test]
    fn same_data_ignores_serial_and_records_round_trip() {
        let z1 = zone(vec![rec("a.test.", a("1.1.1.1"))]);
        let z2 = z1.clone().with_serial(99);
        assert!(z1.same_data(&z2));
        assert_eq!(z2.serial(), 99);
        let z3 = zone(vec![rec("a.test.", a("1.1.1.2"))]);
        assert!(!z1.same_data(&z3));
        let recs = z1.records();
        assert_eq!(recs, vec![(name("a.test."), 300, a("1.1.1.1"))]);
    }
}
